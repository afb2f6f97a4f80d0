#!/usr/bin/env bash
# Test 2: 32 MiB each way through one connection per direction; the
# guest's SHA-256 equals the host's, and every byte is where the pattern
# puts it.  Prints the throughput (not asserted).
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs
e2e_boot services

want=$(e2e_pattern_sha 32M)
# Guest to host: read to EOF, every byte checked against the pattern.
e2e_client read "$MNT/vsock/7001" 32M
e2e_expect_sha "$want"
# Host to guest: the sink replies its digest, which e2e-client compares.
e2e_client write "$MNT/vsock/7002" 32M
e2e_serial_wait "sink 3:7002 .* bytes 33554432 sha256 $want"

e2e_pass "32 MiB to and from the guest, sha256 $want on both sides"
