#!/usr/bin/env bash
# Test 1: the shell's own tools reach the real guest's services through
# chanfs's files — a line written with echo to an echo service comes back
# on the same fd (exec 3<>), echo > file reaches a guest sink whole, and
# cat of a guest source ends at EOF with exactly what the guest sent.  The
# guest CID chanfs serves (--cid) is the one the guest's driver reads.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs --cid 42
e2e_boot services

grep -q 'chanfs-e2e: modules loaded.* cid 42[[:space:]]*$' "$SERIAL" ||
	e2e_fail "the guest does not report CID 42: $(grep 'modules loaded' "$SERIAL")"
grep -q 'guest cid 42' "$MNT/status" ||
	e2e_fail "status does not show guest cid 42: $(cat "$MNT/status")"

# echo / read on one fd.
exec 3<>"$MNT/vsock/7000" || e2e_fail "open vsock/7000"
echo "hello, guest" >&3 || e2e_fail "echo to vsock/7000"
read -r -t "$E2E_WAIT" line <&3 || e2e_fail "no line back from the echo service"
[[ "$line" == "hello, guest" ]] || e2e_fail "echo service answered '$line'"
exec 3>&-

# echo > file: the guest sink reports the digest of exactly that line.
echo "to the sink" >"$MNT/vsock/7008" || e2e_fail "echo > vsock/7008"
e2e_expect_sha "$(echo "to the sink" | sha256sum | awk '{ print $1 }')"

# cat of a source ends at EOF (timeout only bounds a hang) with the bytes
# the guest reports having sent.
want=$(e2e_pattern_sha 100000)
got=$(timeout "$E2E_WAIT" cat "$MNT/vsock/7005" | sha256sum | awk '{ print $1 }')
[[ "${PIPESTATUS[0]}" == 0 ]] || e2e_fail "cat vsock/7005 did not end at EOF"
[[ "$got" == "$want" ]] || e2e_fail "cat vsock/7005: sha256 $got, want $want"
e2e_expect_sha "$want"

# A port nobody listens on in the guest is refused.
if err=$(cat "$MNT/vsock/7999" 2>&1); then
	e2e_fail "cat of an unserved port succeeded"
fi
[[ "$err" == *"Connection refused"* ]] || e2e_fail "unserved port: '$err', not ECONNREFUSED"

e2e_pass "echo/read on one fd, echo > sink, cat of a source to EOF, refused port, CID 42"
