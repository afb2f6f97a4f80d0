/*
 * usock — UNIX stream sockets at a path, shared by the vhost-user server
 * (vu.c), the hybrid vsock sockets (vsock_uds.c) and the serial ports'
 * chardev sockets (serial_sock.c).
 */
#ifndef CHANFS_USOCK_H
#define CHANFS_USOCK_H

#include <stdbool.h>
#include <sys/types.h>

/* Listen at path (nonblocking, close-on-exec, mode 0600 before anyone can
 * connect) with the given backlog.  A stale socket there (nobody answers
 * a connect) is replaced; a socket someone listens on, or anything that
 * is not a socket, is left alone.  Log lines start with "who: path: ".
 * Returns the fd, or -errno after a log line: ENAMETOOLONG, EEXIST (not a
 * socket), EADDRINUSE (someone listens there), or the socket, bind,
 * chmod or listen error. */
int usock_listen(const char *path, int backlog, const char *who);

/* Accept the next connection on the listening fd lfd (non-blocking,
 * close-on-exec).  Returns its fd; -EAGAIN when there is nothing to do now
 * (none waiting, EINTR, ECONNABORTED); any other -errno after one log line
 * "who: path: accept: ...", after which the caller stops watching lfd for
 * a while (out of fds, say: a listener that stays ready would spin). */
int usock_accept(int lfd, const char *who, const char *path);

/* Start a non-blocking connect to path.  Returns the fd with *done true
 * (connected) or false (in progress: wait for writability, then
 * usock_connect_result), or -errno (ENOENT, ECONNREFUSED, EAGAIN for a
 * full backlog, ENAMETOOLONG...); logs nothing. */
int usock_connect(const char *path, bool *done);
/* The outcome of an in-progress connect on fd: 0 or -errno. */
int usock_connect_result(int fd);

/* The peer's pid (SO_PEERCRED; its uid in *uid when not NULL), or 0
 * when the kernel does not say. */
pid_t usock_peer_pid(int fd, uid_t *uid);
/* The peer has hung up (its end is closed; data may be left to read). */
bool usock_peer_gone(int fd);

#endif
