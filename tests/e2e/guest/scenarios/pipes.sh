# Two guest processes pipe the same named service (services_pipe.sh):
# each sends 1 MiB of the pattern through `chanfs-guest pipe` and reports
# (on the console) the SHA-256 of what it sent and of what the host sent
# back.  The connections wait at the host until services/sums is opened.
for who in a b; do
	chanfs-guest gen 1M |
		chanfs-guest pipe "sums:from-$who" -r 200 >/dev/null &
done
