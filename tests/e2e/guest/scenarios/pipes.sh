# Two guest processes pipe the same named service (services_pipe.sh):
# each sends 1 MiB of the pattern through `chanfs-guest pipe` and reports
# (on the console) the SHA-256 of what it sent and of what the host sent
# back.  The connections wait at the host until services/sums is opened.
for who in a b; do
	chanfs-guest gen 1M |
		chanfs-guest pipe "sums:from-$who" -r 200 >/dev/null &
done
# README's example: a request with args; the host's answer on the console.
echo chanfs-e2e-guest |
	chanfs-guest pipe sha256:hostname -r 200 2>/dev/null |
	sed 's/^/chanfs-e2e: answer /' &
