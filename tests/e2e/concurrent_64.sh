#!/usr/bin/env bash
# Test 3: 64 connections at once, both directions at the same time: 32
# echo streams (each writes 256 KiB while reading it back), 16 reads of a
# guest source and 16 writes to a guest sink (1 MiB each), all checked.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs --backlog 128
e2e_boot services

e2e_client parallel "echo:$MNT/vsock/7000:256Kx32" \
	"read:$MNT/vsock/7003:1Mx16" "write:$MNT/vsock/7004:1Mx16"
# The guest saw the 16 sinks' bytes whole.
n=$(grep -c "sink 3:7004 .* bytes 1048576 sha256 $(e2e_pattern_sha 1M)" "$SERIAL")
((n == 16)) || e2e_fail "the guest reports $n whole 1 MiB sinks, not 16"

e2e_pass "64 concurrent connections, every stream intact"
