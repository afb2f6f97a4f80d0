# A slow reader for close(2)'s promise (close_linger.sh): a sink of 2 MiB
# reading at about 200 KiB/s (ports 7010-7019 belong to these tests).
chanfs-guest listen 7010 sink -n 2M -R 200K -b
