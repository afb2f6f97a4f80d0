#!/usr/bin/env bash
# Edge-triggered epoll (EPOLLIN|EPOLLET, as tokio/mio use it) against the
# real guest's echo: 20 echoes in a row, each read until EAGAIN and then
# waited for with epoll_wait, so every one needs its own notification.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs
e2e_boot services

e2e_client epoll-echo "$MNT/vsock/7000" 20

e2e_pass "an EPOLLET reader sees 20 echoes in a row"
