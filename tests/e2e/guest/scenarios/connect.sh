# The guest connects to host ports (test 4).  6000-6002 listen from the
# start (chanfs -l); 6003 only once the host opens vsock/listen/6003, so
# its client retries while it is refused.
chanfs-guest connect 2:6000 source -n 1M -r 200 &
chanfs-guest connect 2:6001 echo -r 200 &
chanfs-guest connect 2:6002 source -n 64K -c 8 -r 200 &
chanfs-guest connect 2:6003 sink -n 1M -r 200 &
