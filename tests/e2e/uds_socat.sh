#!/usr/bin/env bash
# Hybrid vsock sockets (--uds PATH, Firecracker-compatible) with socat as
# the host program and a real guest: "CONNECT 1234" reaches the guest's
# echo service, the line after it comes back and the guest's EOF ends
# socat (half-close both ways); 32 MiB each way through the socket, the
# guest's SHA-256 equal to the host's; the guest's connection to host
# port 6000 reaches a socat UNIX-LISTEN:PATH_6000 server both ways.
. "$(dirname "$0")/lib.sh"
command -v socat >/dev/null || e2e_fail "socat is not installed (contrib/deps.sh installs it)"
e2e_init
UDS=$E2E_DIR/hv.sock
e2e_start_chanfs --uds "$UDS"
e2e_wait "the --uds socket" test -S "$UDS"
e2e_boot uds

# -t: after its stdin's EOF socat waits this long for the other way to
# end too (a bound on a hang only: it ends at the guest's EOF).
SOCAT=(socat -t "$E2E_WAIT" -T "$E2E_WAIT")

# The echo: the answer line, then our line back, then EOF.
out=$(printf 'CONNECT 1234\nhello through the socket\n' |
	timeout "$E2E_WAIT" "${SOCAT[@]}" - "UNIX-CONNECT:$UDS") ||
	e2e_fail "socat to CONNECT 1234 failed"
want=$'OK [0-9]+\nhello through the socket'
[[ "$out" =~ ^$want$ ]] || e2e_fail "CONNECT 1234: got '$out'"
e2e_serial_wait "echo 3:1234 2:[0-9]* bytes 25\>"

sha=$(e2e_pattern_sha 32M)
# Guest to host: the answer line, then the source's 32 MiB to its EOF.
t0=$(e2e_now)
got=$(printf 'CONNECT 1235\n' | timeout "$E2E_WAIT" "${SOCAT[@]}" - "UNIX-CONNECT:$UDS" |
	{ read -r ok && [[ "$ok" =~ ^OK\ [0-9]+$ ]] || echo "bad answer '$ok'"; sha256sum; }) ||
	e2e_fail "socat to CONNECT 1235 failed"
[[ "$got" == "$sha  -" ]] || e2e_fail "32 MiB from the guest through the socket: $got, want $sha"
e2e_expect_sha "$sha"
e2e_log "32 MiB guest to host through the socket in $(e2e_since "$t0") s"

# Host to guest: 32 MiB of the pattern after the line; the sink replies
# its digest.
t0=$(e2e_now)
got=$( { printf 'CONNECT 1236\n'; "$CHANFS_GUEST" gen 32M; } |
	timeout "$E2E_WAIT" "${SOCAT[@]}" - "UNIX-CONNECT:$UDS") ||
	e2e_fail "socat to CONNECT 1236 failed"
want="^OK [0-9]+"$'\n'"$sha\$"
[[ "$got" =~ $want ]] || e2e_fail "32 MiB to the guest through the socket: got '$got', want the digest $sha"
e2e_serial_wait "sink 3:1236 .* bytes 33554432 sha256 $sha"
e2e_log "32 MiB host to guest through the socket in $(e2e_since "$t0") s"

# The guest connects to host port 6000 (nobody listens in vsock terms):
# chanfs connects to PATH_6000, where socat serves 1 MiB and reads the
# guest sink's digest back.
sha=$(e2e_pattern_sha 1M)
got=$("$CHANFS_GUEST" gen 1M |
	timeout "$E2E_WAIT" "${SOCAT[@]}" - "UNIX-LISTEN:${UDS}_6000") ||
	e2e_fail "socat UNIX-LISTEN:${UDS}_6000 failed"
[[ "$got" == "$sha" ]] || e2e_fail "guest to host port 6000: the guest's digest '$got', want $sha"
e2e_serial_wait "sink 3:[0-9]* 2:6000 bytes 1048576 sha256 $sha"

e2e_pass "socat CONNECT 1234 echoes; 32 MiB each way through the socket, sha256 equal; guest to port 6000 reaches socat UNIX-LISTEN:PATH_6000"
