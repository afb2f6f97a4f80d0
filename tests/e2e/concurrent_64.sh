#!/usr/bin/env bash
# Test 3: 64 connections at once, both directions at the same time: 32
# echo streams (each writes 256 KiB while reading it back), 16 reads of a
# guest source and 16 writes to a guest sink (1 MiB each), all checked.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs --backlog 128
e2e_boot services

e2e_concurrent_64

e2e_pass "64 concurrent connections, every stream intact"
