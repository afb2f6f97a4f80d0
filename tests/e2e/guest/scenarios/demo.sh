# contrib/demo.sh's guest: services to try from the host, and a guest that
# connects back.
chanfs-guest listen 1234 echo -b
chanfs-guest listen 1235 source -n 1M -b
chanfs-guest listen 1236 cat -b
# Every second, a line for whoever reads vsock/listen/5555 on the host.
(
	n=0
	while :; do
		n=$((n + 1))
		echo "hello $n from the guest ($(uname -r), up $(cut -d' ' -f1 /proc/uptime) s)" |
			chanfs-guest connect 2:5555 send -r 1000 -q
		sleep 1
	done
) &
