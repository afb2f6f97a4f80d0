#!/usr/bin/env bash
# Test 7: QEMU killed (SIGKILL) mid-transfer: every open file fails
# cleanly (ECONNRESET for reads, EPIPE/ECONNRESET for writes), nothing
# hangs, new opens fail while no VMM is there, status still answers; a new
# QEMU on the same socket works without restarting chanfs.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs
e2e_boot services

e2e_client broken "echo:$MNT/vsock/7000" "read:$MNT/vsock/7007" \
	"write:$MNT/vsock/7008" "read:$MNT/vsock/7001" -- kill -KILL "$QEMU_PID"
wait "$QEMU_PID" 2>/dev/null
QEMU_PID=

timeout "$E2E_WAIT" cat "$MNT/status" >/dev/null || e2e_fail "status fails without a VMM"
rc=0
timeout "$E2E_WAIT" cat "$MNT/vsock/7000" >/dev/null 2>"$E2E_DIR/err" || rc=$?
((rc != 0)) || e2e_fail "a connect without a VMM succeeded"
((rc != 124)) || e2e_fail "a connect without a VMM hung"
e2e_log "connect without a VMM: $(cat "$E2E_DIR/err")"

# The same chanfs, the same socket, a new QEMU.
e2e_boot services "$E2E_DIR/serial2.log"
e2e_client echo "$MNT/vsock/7000" 1M
e2e_client read "$MNT/vsock/7003" 1M
e2e_client write "$MNT/vsock/7004" 1M

e2e_pass "files failed cleanly when QEMU died; a new QEMU works on the same chanfs"
