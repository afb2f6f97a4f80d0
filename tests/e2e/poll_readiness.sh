#!/usr/bin/env bash
# Test 5: poll and select on the files see the real guest's readiness:
# a fresh connection is writable and not readable, the echo makes it
# readable, reading everything clears it; a source's data and its EOF are
# readable; a guest that does not read makes the file unwritable (EAGAIN,
# no POLLOUT) until it starts reading.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs
e2e_boot services

e2e_poll_checks

e2e_pass "POLLIN, POLLOUT and EOF follow the guest"
