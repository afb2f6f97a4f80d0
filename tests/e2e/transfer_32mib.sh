#!/usr/bin/env bash
# Test 2: 32 MiB each way through one connection per direction; the
# guest's SHA-256 equals the host's, and every byte is where the pattern
# puts it.  Prints the throughput (not asserted).
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs
e2e_boot services

e2e_transfer_32mib

e2e_pass "32 MiB to and from the guest, sha256 $(e2e_pattern_sha 32M) on both sides"
