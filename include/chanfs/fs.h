/*
 * fs — the FUSE file system where every guest channel is a file, driven
 * by the same loop as the devices (FUSE low-level API, no libfuse threads).
 *
 * The tree is made of the directories the devices register (chandir.h);
 * fs/ knows no device.  The root lists `status` and the first component
 * of every registered path; a two-component directory lives under its
 * parent (an empty directory when nobody registered the parent).  A
 * directory lists its subdirectories and, when it has a list op, the
 * first 256 names that op gives.  With vsock's directories
 * (vsock_register):
 *   vsock/<port>         CONNECT: open = connect to guest port <port>
 *                        (waits for the guest's answer, even with
 *                        O_NONBLOCK)
 *   vsock/listen/<port>  ACCEPT: open = accept the next guest connection
 *                        to host port <port> (O_NONBLOCK: EAGAIN if none is
 *                        queued); one the guest already ended opens too
 *   vsock/listen         lists the ports listening now
 *   status               text snapshot taken at open: each directory's
 *                        status lines in registration order (vsock: device
 *                        state, guest CID), fs_config's, then every channel
 *                        with state and byte counts
 * Each LOOKUP of a CONNECT or ACCEPT name gets a fresh node id (entry and
 * attr timeouts 0) so no two connections share an inode and one
 * connection's parked write never holds up another's (DESIGN.md, measured
 * facts).  A SHARED name keeps one node id while the kernel knows it and
 * reports size 0 without FOPEN_PARALLEL_DIRECT_WRITES: the kernel then
 * lets one writer of the name in at a time, so writes from different
 * opens are never interleaved; every open holds the one channel with its
 * own watcher, so one edge wakes every parked read, write and poll of
 * every open, and each byte read goes to one reader.
 *
 * Requests that cannot be answered now (read with nothing there, write that
 * does not fit, open waiting for the guest) are parked on their open file
 * and answered from a deferred task when the channel's watcher fires;
 * interrupts only flag the request, the EINTR reply is sent from the loop.
 *
 * Errors the host sees (each file operation × condition):
 *   open, CONNECT       the directory's open error at once (vsock: no
 *                       driver running → ENOTCONN; no free host port →
 *                       EADDRINUSE); then the channel's reset error while
 *                       it is connecting (vsock: guest RST → ECONNREFUSED;
 *                       no answer in --connect-timeout → ETIMEDOUT; device
 *                       gone meanwhile → ECONNRESET); signal → EINTR
 *   open, ACCEPT        nothing queued and O_NONBLOCK → EAGAIN; else waits
 *                       until chandir_ready names it (signal → EINTR);
 *                       while it waits it is counted by the directory's
 *                       wait op (vsock: the port listens)
 *   open, SHARED        the directory's open error, else at once (a
 *                       channel still CONNECTING is waited for, as for
 *                       CONNECT)
 *   open status         for writing → EACCES
 *   open a directory    EISDIR; a name the directory's lookup refuses →
 *                       ENOENT
 *   read                data → at once, short reads normal; guest EOF or
 *                       orderly close, drained → 0; reset, drained →
 *                       ECONNRESET / ETIMEDOUT...; nothing and O_NONBLOCK →
 *                       EAGAIN; else waits (signal → EINTR)
 *   write               takes what fits; a blocking writer waits until all
 *                       is taken (signal after some bytes → that count,
 *                       before any → EINTR, also for one queued behind
 *                       another writer of the file: FS_STREAM_SIZE and
 *                       FOPEN_PARALLEL_DIRECT_WRITES let the kernel pass it
 *                       on); O_NONBLOCK → partial count or
 *                       EAGAIN; guest receives no more / orderly closed →
 *                       EPIPE; reset → ECONNRESET...
 *   write, CHANDIR_ATOMIC  up to CHANDIR_ATOMIC_MAX (4 KiB) bytes, and no
 *                       more than the window: taken whole or not at all
 *                       (O_NONBLOCK → EAGAIN, never a partial count; a
 *                       blocking one parks whole until it fits); larger
 *                       writes as above
 *   poll                POLLIN/POLLOUT/POLLERR/POLLHUP as chan_poll(); every
 *                       watcher edge is notified (edge-triggered epoll).
 *                       POLLOUT means half the window is free: with a
 *                       window of 8 KiB or more, an atomic write then fits
 *   close (FLUSH)       waits until everything written through the file
 *                       before it is in guest buffers → 0; not within
 *                       close_timeout_ms → ETIMEDOUT; discarded → the reset's
 *                       error or EPIPE; O_NONBLOCK (as of the last open,
 *                       read or write) with data on its way → EAGAIN at
 *                       once; signal → EINTR.  A SHARED name's close
 *                       waits for everything any of its opens wrote
 *                       before it.  CHANDIR_NO_LINGER → 0 at once (the
 *                       data stays queued in the channel)
 *   last close          the channel goes back to its directory (release
 *                       op; default chan_close: the connection is shut
 *                       down in order, what is still queued reaches the
 *                       guest first)
 *   getxattr            user.chanfs.args on an open channel file → the
 *                       channel's args (chan->args: what the guest sent
 *                       with the connection, e.g. a named service's
 *                       pipe:<name>:<args>); none (NULL), another name, or
 *                       a node with no open channel → ENODATA; a buffer
 *                       too small → ERANGE.  listxattr lists it when set
 *   mmap                MAP_SHARED → ENODEV (the kernel, direct-io); the
 *                       kernel lets MAP_PRIVATE through, but its page-cache
 *                       reads (no lock owner) are refused EIO, so touching
 *                       the mapping is SIGBUS and no stream byte is taken
 *   symlink, link, rename, mknod, create, mkdir, unlink, rmdir → EPERM
 * When the daemon stops, every parked request (and close) is answered
 * ECONNRESET.
 */
#ifndef CHANFS_FS_H
#define CHANFS_FS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct loop;
struct chan_set;
struct chandirs;

/* --- the file system ----------------------------------------------------- */

struct fs_config {
	const char *mountpoint;   /* absolute path of an existing directory */
	const char *fuse_opts;    /* extra mount options ("allow_other,..."),
	                             or NULL */
	/* Lines of `status` about the transport (the front-end), printed
	 * after the device's; NULL for none. */
	void (*status)(void *arg, FILE *out);
	void *status_arg;
	unsigned close_timeout_ms; /* linger: how long a close waits for its
	                              data to reach the guest (0: 2000) */
};

struct fs;

/* Create the FUSE session, mount it at cfg->mountpoint and serve it on l:
 * the tree is made of the directories registered in dirs (chandir.h: every
 * directory must be registered before this call; fs/ becomes dirs' one
 * chandir_ready receiver until fs_free), chans is listed in status.
 * SIGINT, SIGTERM and SIGHUP stop the loop; so does an unmount from
 * outside (fusermount3 -u).  Returns NULL with errno set and a log line:
 * EINVAL when libfuse rejected a mount option (it printed which), EEXIST
 * when a directory's first component is "status" (the status file's
 * name), ENOMEM, else the mount failure. */
struct fs *fs_new(struct loop *l, struct chan_set *chans,
                  struct chandirs *dirs, const struct fs_config *cfg);
/* Unless foreground, detach from the terminal (fuse_daemonize: stdio goes
 * to /dev/null, so later log lines go to syslog: log_to_syslog) and
 * re-initialise the loop after the fork.  Returns 0 or -errno. */
int fs_daemonize(struct fs *fs, bool foreground);
/* True when the loop stopped because the file system was unmounted from
 * outside (rather than by a signal). */
bool fs_unmounted(const struct fs *fs);
/* Answer every parked request (ECONNRESET), close every open file's
 * channel, unmount (unless already unmounted from outside) and free.
 * Call before the devices are freed.  fs may be NULL. */
void fs_free(struct fs *fs);

#endif
