# Hybrid vsock sockets (uds_socat.sh): services the host reaches with
# "CONNECT <port>" through chanfs --uds, and a guest client of host port
# 6000 that retries (RST while nothing listens at PATH_6000) until the
# host's socat listens there.
chanfs-guest listen 1234 echo -b
chanfs-guest listen 1235 source -n 32M -b
chanfs-guest listen 1236 sink -n 32M -b
chanfs-guest connect 2:6000 sink -n 1M -r 200 &
