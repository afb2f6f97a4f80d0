/*
 * usock — UNIX stream socket paths shared by the vhost-user listener and
 * the serial chardev sockets.
 */
#ifndef CHANFS_USOCK_H
#define CHANFS_USOCK_H

#include <stdbool.h>
#include <sys/types.h>

/* Listen at path (mode 0600, set before listen() so there is no moment
 * in which others may connect), non-blocking and close-on-exec.  A
 * socket file already there is replaced only when nobody answers on it
 * (a dead daemon's); a live listener or a file that is not a socket is
 * left alone.  Every failure logs one line prefixed "who: path: ".
 * Returns the fd, or -ENAMETOOLONG, -EEXIST (not a socket), -EADDRINUSE
 * (someone listens there) or the errno of the failing call. */
int usock_listen(const char *path, const char *who);

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
