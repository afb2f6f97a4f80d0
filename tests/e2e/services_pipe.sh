#!/usr/bin/env bash
# Named services: two guest processes `chanfs-guest pipe sums:...` (each
# its own vsock connection to the service port, 5000) wait in
# services/sums; two host opens of services/sums get the two streams,
# each carrying 1 MiB of the pattern each way: the host checks every byte
# it reads (and that each stream is exactly 1 MiB, so no two streams were
# mixed), each guest process reports the SHA-256 of what it sent and of
# what it received.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs --accept-timeout 120000
e2e_boot pipes

waiting() { grep -q '^services/sums: 2 waiting' "$MNT/status"; }
e2e_wait "two guest connections waiting for services/sums" waiting
[[ "$(ls "$MNT/services")" == sums ]] || e2e_fail "ls services: '$(ls "$MNT/services")', not sums"

e2e_client parallel "echo:$MNT/services/sums:1Mx2"

want=$(e2e_pattern_sha 1M)
for who in a b; do
	for dir in sent received; do
		e2e_serial_wait "^chanfs-guest: pipe sums:from-$who 3:[0-9]* 2:5000 $dir bytes 1048576 sha256 $want"
	done
done
[[ -z "$(ls "$MNT/services")" ]] || e2e_fail "services still lists '$(ls "$MNT/services")'"

e2e_pass "two guest pipes to one service were two host streams, 1 MiB each way, checksums equal"
