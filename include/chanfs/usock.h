/*
 * usock — listening UNIX stream sockets at a path, shared by the
 * vhost-user server (vu.c) and the hybrid vsock sockets (vsock_uds.c).
 */
#ifndef CHANFS_USOCK_H
#define CHANFS_USOCK_H

/* Listen at path (nonblocking, close-on-exec, mode 0600 before anyone can
 * connect) with the given backlog.  A stale socket there (nobody answers
 * a connect) is replaced; a socket someone listens on, or anything that
 * is not a socket, is left alone.  Log lines start with "who: path: ".
 * Returns the fd, or -errno after a log line: ENAMETOOLONG, EEXIST (not a
 * socket), EADDRINUSE (someone listens there), or the socket, bind,
 * chmod or listen error. */
int usock_listen(const char *path, int backlog, const char *who);

#endif
