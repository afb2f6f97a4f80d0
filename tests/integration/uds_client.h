/*
 * uds_client — the host side of the hybrid-socket tests (vsock_uds.h):
 * a Firecracker-style client of chanfs's --uds socket, and waiting for
 * chanfs's log lines.  Every wait is bounded (VH_TIMEOUT_MS unless said)
 * to catch hangs; none is a measurement.
 */
#ifndef CHANFS_TESTS_UDS_CLIENT_H
#define CHANFS_TESTS_UDS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vh;

/* A blocking stream socket connected to path, or -errno. */
int uc_dial(const char *path);
/* A listening socket bound at path (backlog 64), or -errno. */
int uc_listen(const char *path);
/* Wait up to ms for events on fd: the revents, 0 on timeout. */
short uc_poll(int fd, short events, int ms);
/* Read one line ("\n" included) a byte at a time, so nothing after it is
 * taken: its length, 0 at EOF (or ECONNRESET) before any byte,
 * -ETIMEDOUT, -errno. */
ssize_t uc_read_line(int fd, char *buf, size_t max);
/* Read until len bytes or EOF: the count, or -ETIMEDOUT / -errno. */
ssize_t uc_read_full(int fd, void *buf, size_t len);
/* Connect to path and CONNECT to port: the connected fd after its
 * "OK <n>\n" (*host_port gets n), or -errno (-ECONNRESET: closed instead,
 * -EPROTO: another answer). */
int uc_connect_port(const char *path, unsigned port, unsigned *host_port);
/* CONNECT to port (an echo service) and see msg come back: 0, or
 * -errno (-EPROTO: something else came back). */
int uc_echo_once(const char *path, unsigned port, const char *msg);
/* Is the next thing on fd its end, EOF or ECONNRESET (true: a peer that
 * closes with our bytes unread makes the kernel say ECONNRESET), rather
 * than data or nothing within the timeout (false)? */
bool uc_closed(int fd);
/* Lines of chanfs's log after offset off containing needle. */
unsigned uc_log_count(const struct vh *h, size_t off, const char *needle);
/* Wait until at least n such lines are there; returns the count seen. */
unsigned uc_log_wait(const struct vh *h, size_t off, const char *needle,
                     unsigned n);

#endif
