#!/usr/bin/env bash
# Named services: two guest processes `chanfs-guest pipe sums:...` (each
# its own vsock connection to the service port, 5000) wait in
# services/sums; two host opens of services/sums get the two streams,
# each carrying 1 MiB of the pattern each way: the host checks every byte
# it reads (and that each stream is exactly 1 MiB, so no two streams were
# mixed), each guest process reports the SHA-256 of what it sent and of
# what it received.  Then README's example: `chanfs-guest pipe
# sha256:hostname` answered by the host's shell (args from the
# user.chanfs.args attribute, sha256sum on the same fd).
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs --accept-timeout 120000
e2e_boot pipes

waiting() {
	grep -q '^services/sums: 2 waiting' "$MNT/status" &&
		grep -q '^services/sha256: 1 waiting' "$MNT/status"
}
e2e_wait "the guest connections waiting in services/" waiting
listed=$(ls "$MNT/services" | tr '\n' ' ')
[[ "$listed" == "sha256 sums " ]] || e2e_fail "ls services: '$listed', not 'sha256 sums '"

e2e_client parallel "echo:$MNT/services/sums:1Mx2"

want=$(e2e_pattern_sha 1M)
for who in a b; do
	for dir in sent received; do
		e2e_serial_wait "^chanfs-guest: pipe sums:from-$who 3:[0-9]* 2:5000 $dir bytes 1048576 sha256 $want"
	done
done
# README's example, host side: the args from the open file's attribute,
# the request read to its EOF, the answer written back on the same fd.
exec 3<>"$MNT/services/sha256" || e2e_fail "cannot open services/sha256"
if command -v getfattr >/dev/null; then
	args=$(getfattr --only-values -n user.chanfs.args /proc/self/fd/3)
else
	args=$(python3 -c 'import os, sys; sys.stdout.write(os.getxattr("/proc/self/fd/3", "user.chanfs.args").decode())')
fi
[[ "$args" == hostname ]] || e2e_fail "user.chanfs.args is '$args', not hostname"
sha256sum <&3 >&3 || e2e_fail "sha256sum through services/sha256 failed"
exec 3>&-
e2e_serial_wait "chanfs-e2e: answer $(echo chanfs-e2e-guest | sha256sum | awk '{ print $1 }')  -"
[[ -z "$(ls "$MNT/services")" ]] || e2e_fail "services still lists '$(ls "$MNT/services")'"

e2e_pass "two guest pipes to one service were two host streams, 1 MiB each way, checksums equal"
