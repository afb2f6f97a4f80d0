#!/usr/bin/env bash
# Test 6: a guest driver reset — the guest unbinds its vsock device from
# vmw_vsock_virtio_transport (the driver resets the device; its sockets
# are reset without a word to the host), unloads the module and loads it
# again.  chanfs resets the old connections (reads and writes fail with
# ECONNRESET/EPIPE, nothing hangs) and new connections work.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs
e2e_boot services

e2e_client echo "$MNT/vsock/7000" 64K
e2e_client broken "echo:$MNT/vsock/7000" "read:$MNT/vsock/7007" \
	"write:$MNT/vsock/7008" -- \
	sh -c 'echo reset-transport > "$1"' sh "$MNT/vsock/9999"
e2e_serial_wait 'chanfs-e2e: reset done'

e2e_client echo "$MNT/vsock/7000" 1M
e2e_client read "$MNT/vsock/7003" 1M
e2e_client write "$MNT/vsock/7004" 1M

e2e_pass "old connections reset by the driver reset; new ones work"
