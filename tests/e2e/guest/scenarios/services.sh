# Guest services for the host to connect to (tests 1, 2, 3, 5, 6, 7).
# Sizes are fixed per port: a sink with -n replies its digest after
# exactly that many bytes.
chanfs-guest listen 7000 echo -b
chanfs-guest listen 7001 source -n 32M -b
chanfs-guest listen 7002 sink -n 32M -b
chanfs-guest listen 7003 source -n 1M -b
chanfs-guest listen 7004 sink -n 1M -b
chanfs-guest listen 7005 source -n 100000 -b
# Starts reading 10 s after the connection: backpressure on the host.
chanfs-guest listen 7006 sink -n 4M -d 10000 -b
# Endless for any test: streams that something else cuts.
chanfs-guest listen 7007 source -n 1024G -b -q
chanfs-guest listen 7008 sink -b
