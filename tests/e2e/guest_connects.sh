#!/usr/bin/env bash
# Test 4: the guest connects to host ports and vsock/listen/<port> accepts
# those connections: ports given with -l take connections from the start
# (queued until the host opens the file), a port without -l listens from
# the first open of its file (the guest is refused and retries until
# then); one guest source, one echo, eight at once, one sink.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs -l 6000 -l 6001 -l 6002
e2e_boot connect

L=$MNT/vsock/listen
e2e_client read "$L/6000" 1M
e2e_client echo "$L/6001" 256K
e2e_client parallel "read:$L/6002:64Kx8"
e2e_client write "$L/6003" 1M

e2e_serial_wait "source 3:[0-9]* 2:6000 bytes 1048576 sha256 $(e2e_pattern_sha 1M)"
e2e_serial_wait "echo 3:[0-9]* 2:6001 bytes 262144"
n=$(grep -c "source 3:[0-9]* 2:6002 bytes 65536 sha256 $(e2e_pattern_sha 64K)" "$SERIAL")
((n == 8)) || e2e_fail "the guest reports $n of 8 sources to port 6002"
e2e_serial_wait "sink 3:[0-9]* 2:6003 bytes 1048576 sha256 $(e2e_pattern_sha 1M)"

e2e_pass "guest connections to -l ports and to a port opened later were accepted"
