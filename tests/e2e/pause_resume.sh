#!/usr/bin/env bash
# Test 8: a VM pause keeps every connection and every byte.  With an echo
# stream and 32 MiB each way under way (every byte checked against the
# pattern, the guest sink's SHA-256 compared), QMP "stop" pauses the VM
# for 3 s (QEMU stops the vhost rings: GET_VRING_BASE), then "cont" starts
# them again from the same base.  Nothing is reset; every stream finishes
# whole.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs
e2e_boot services

# moved PORT: bytes moved so far on the connection to guest port PORT,
# both directions added (0 when there is none).
moved() {
	awk -v p="vsock 3:$1-" 'index($0, p) {
		for (i = 1; i < NF; i++)
			if ($i == "guest->host" || $i == "host->guest")
				n += $(i + 1)
	} END { print n + 0 }' "$MNT/status"
}
# in_flight MIN: every stream moved MIN bytes and the client still runs.
in_flight() {
	local p
	kill -0 "$client" 2>/dev/null || e2e_fail "the streams ended before the pause"
	for p in 7000 7001 7002; do
		(($(moved $p) >= $1)) || return 1
	done
}

# The echo moves several times faster than the one-way streams (8 MiB
# took 0.3 s, 32 MiB one way 4-5 s): 64 MiB keeps it running until all
# three have moved a MiB (with 8 MiB it sometimes ended before).
"$E2E_CLIENT" parallel "echo:$MNT/vsock/7000:64M" "read:$MNT/vsock/7001:32M" \
	"write:$MNT/vsock/7002:32M" >"$E2E_DIR/client.log" 2>&1 &
client=$!
e2e_wait "data moving on every stream" in_flight $((1 << 20))
before="$(moved 7000) $(moved 7001) $(moved 7002)"

e2e_qmp stop
grep -q '^vsock: stopped' "$MNT/status" || e2e_fail "status does not say the rings stopped"
sleep 3
kill -0 "$client" 2>/dev/null || e2e_fail "a stream ended while the VM was paused"
grep -q 'resetting' "$E2E_DIR/chanfs.log" && e2e_fail "chanfs reset connections on the pause"
e2e_log "paused 3 s with bytes moved $before (echo, read, write); after: $(moved 7000) $(moved 7001) $(moved 7002)"
e2e_qmp cont

rc=0
wait "$client" || rc=$?
cat "$E2E_DIR/client.log"
((rc == 0)) || e2e_fail "a stream did not survive the pause (status $rc)"
e2e_serial_wait "sink 3:7002 .* bytes 33554432 sha256 $(e2e_pattern_sha 32M)"
grep -q 'resetting' "$E2E_DIR/chanfs.log" && e2e_fail "chanfs reset connections"

# And the VM goes on serving new connections.
e2e_client echo "$MNT/vsock/7000" 64K

e2e_pass "echo + 32 MiB each way survived a 3 s QMP stop/cont byte for byte"
