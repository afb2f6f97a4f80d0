#!/usr/bin/env bash
# close(2)'s promise with a real guest: `cat` writes 2 MiB into a guest
# sink that reads at about 200 KiB/s and closes at once.  The tail still in
# chanfs's window takes longer than --close-timeout (500 ms) to reach the
# guest, so the close cannot return 0 at once; chanfs must either deliver
# every byte before close returns 0 (the guest's SHA-256 equals the
# host's) or make the close fail, so cat exits non-zero.  Exiting 0 with
# bytes missing is the failure.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs --close-timeout 500
e2e_boot linger

want=$(e2e_pattern_sha 2M)
rc=0
"$CHANFS_GUEST" gen 2M | cat >"$MNT/vsock/7010" 2>"$E2E_DIR/cat.err" || rc=$?
e2e_log "cat exited $rc: $(cat "$E2E_DIR/cat.err")"
e2e_serial_wait "sink 3:7010 .* bytes [0-9]* sha256"
line=$(grep -e "sink 3:7010 .* bytes [0-9]* sha256" "$SERIAL" | head -n 1)
e2e_log "guest: $line"
if [[ $rc -eq 0 ]]; then
	[[ $line == *"bytes 2097152 sha256 $want"* ]] ||
		e2e_fail "close returned 0 but the guest did not get the 2 MiB whole"
	e2e_pass "close returned 0 and the guest has all 2 MiB (sha256 equal)"
fi
grep -q "close timed out\|Connection timed out\|write error" "$E2E_DIR/cat.err" ||
	e2e_fail "cat failed without saying the close failed"
e2e_pass "the close failed (cat exit $rc) instead of losing the tail silently"
