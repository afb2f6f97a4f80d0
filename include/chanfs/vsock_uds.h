/*
 * vsock_uds — Firecracker-style hybrid vsock: host programs reach the
 * guest through UNIX sockets instead of files (--uds PATH), as they do
 * with Firecracker's vsock device or rust-vmm's vhost-device-vsock.
 *
 * Host → guest.  chanfs listens on PATH.  A client connects and sends one
 * line, then the stream:
 *     CONNECT <port>\n
 * <port> is decimal digits, value 0..4294967295 (leading zeros allowed;
 * no sign, no spaces around it, no other words, no "\r"); the whole line,
 * "\n" included, is at most VSOCK_UDS_LINE_MAX (32) bytes.
 * chanfs connects to the guest's port (vsock_connect) and, once the guest
 * accepts, answers
 *     OK <host-port>\n
 * (the host-side port chanfs assigned, as Firecracker answers); from then
 * on every byte is relayed both ways.  Bytes the client sent after the
 * "\n" (even in the same write) are the first bytes of the stream: chanfs
 * reads the socket only up to the "\n" until the guest accepted.
 * The socket is closed, with one log line naming the socket and why, when:
 * the line is malformed (longer than 32 bytes without "\n", not
 * "CONNECT", a port that is not a number or out of range, extra words),
 * the client ends or does not finish its line within connect_timeout_ms
 * (--connect-timeout), the guest refuses (RST) or does not answer within
 * connect_timeout_ms, no driver is running, or no host port is free.
 *
 * Guest → host.  A guest connection to host port P that no listening port
 * takes (a waiting vsock/listen/P opener or a -l P port: see
 * vsock_on_unlistened) goes to the UNIX socket listening at "PATH_P"
 * (nonblocking connect; nothing is sent before the stream).  When that
 * connect fails (no such socket, nobody listening, its backlog full) the
 * guest gets RST, with one log line.
 *
 * Either way, once relaying: a client shutdown(SHUT_WR) (EOF on the
 * socket) becomes a vsock SHUTDOWN(SEND) after what it sent before;
 * a guest SHUTDOWN(SEND) (or orderly close) becomes shutdown(SHUT_WR) on
 * the socket once the data before it was written.  When both directions
 * ended, or the guest reset the connection (socket closed after the data
 * already received), or the client went away (EPIPE/ECONNRESET: the vsock
 * connection is shut down in order), the socket is closed.  Flow control
 * holds both ways: the socket is not read while the channel's window to
 * the guest is full, the channel is not read while the socket is not
 * writable.  Sockets share the connection table, its limits and `status`
 * with the files (they are ordinary channels of the chan_set).
 *
 * Many clients: accept() failing for lack of fds (EMFILE, ENFILE) or
 * memory stops accepting, with one log line per episode, until a socket
 * of ours closes or VSOCK_UDS_RETRY_MS passed; clients wait in the
 * listen backlog meanwhile.
 *
 * Everything runs on the loop: all sockets are nonblocking.
 */
#ifndef CHANFS_VSOCK_UDS_H
#define CHANFS_VSOCK_UDS_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct vsock;

/* Longest CONNECT line, "\n" included. */
#define VSOCK_UDS_LINE_MAX 32
/* How long accepting pauses after accept() ran out of fds or memory (it
 * resumes earlier when one of our sockets closes). */
#define VSOCK_UDS_RETRY_MS 200

struct vsock_uds;

/* Listen on path (a stale socket there is replaced, anything else is an
 * error; mode 0600) and serve it on l through v; registers the guest →
 * host fallback with vsock_on_unlistened.  line_timeout_ms bounds the
 * wait for a client's CONNECT line.  Returns NULL with errno set and a
 * log line: ENAMETOOLONG (path, or path_PORT, too long for sun_path),
 * EEXIST (not a socket), EADDRINUSE (someone listens there), ENOMEM, or
 * the bind/listen error. */
struct vsock_uds *vsock_uds_new(struct loop *l, struct vsock *v,
                                const char *path, unsigned line_timeout_ms);
/* Parse one whole CONNECT line (line[0..len), its "\n" last): 0 with
 * *port, or -EINVAL with *why naming what is wrong ("not a CONNECT
 * line", "port is not a number", "port out of range", "extra words after
 * the port").  The 32-byte bound is the reader's. */
int vsock_uds_parse_connect(const char *line, size_t len, uint32_t *port,
                            const char **why);
/* Close every socket (their vsock connections are shut down in order),
 * stop listening, remove the socket file, unregister the fallback.
 * u may be NULL. */
void vsock_uds_free(struct vsock_uds *u);

#endif
