/*
 * fs — the FUSE file system where every guest connection is a file, driven
 * by the same loop as the devices (FUSE low-level API, no libfuse threads).
 *
 * The tree (first version):
 *   vsock/<port>         open = connect to guest port <port> (waits for the
 *                        guest's answer, even with O_NONBLOCK)
 *   vsock/listen/<port>  open = accept the next guest connection to host
 *                        port <port> (O_NONBLOCK: EAGAIN if none is queued);
 *                        one the guest already ended opens too
 *   vsock/listen         lists the ports listening now (vsock_listening)
 *   status               text snapshot taken at open: device state, guest
 *                        CID, every channel with state and byte counts
 * Each LOOKUP of a per-connection name gets a fresh node id (entry and attr
 * timeouts 0) so no two connections share an inode and one connection's
 * parked write never holds up another's (DESIGN.md, measured facts).
 *
 * Requests that cannot be answered now (read with nothing there, write that
 * does not fit, open waiting for the guest) are parked on their open file
 * and answered from a deferred task when the channel's watcher fires;
 * interrupts only flag the request, the EINTR reply is sent from the loop.
 *
 * Errors the host sees (each file operation × condition):
 *   open vsock/<port>   no driver running → ENOTCONN (at once); no free
 *                       host port → EADDRINUSE; guest RST → ECONNREFUSED;
 *                       no answer in --connect-timeout → ETIMEDOUT; device
 *                       gone meanwhile → ECONNRESET; signal → EINTR
 *   open vsock/listen/N nothing queued and O_NONBLOCK → EAGAIN; else waits
 *                       (signal → EINTR); while it waits the port listens
 *                       (vsock_accept_wait)
 *   open status         for writing → EACCES
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
 *   poll                POLLIN/POLLOUT/POLLERR/POLLHUP as chan_poll(); every
 *                       watcher edge is notified (edge-triggered epoll)
 *   close (FLUSH)       waits until everything written through the file
 *                       before it is in guest buffers → 0; not within
 *                       close_timeout_ms → ETIMEDOUT; discarded → the reset's
 *                       error or EPIPE; O_NONBLOCK (as of the last open,
 *                       read or write) with data on its way → EAGAIN at
 *                       once; signal → EINTR
 *   last close          the connection is shut down in order (what is still
 *                       queued reaches the guest first)
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

#include "chanfs/vsock.h"

struct loop;
struct chan_set;
struct vsock;

/* --- command line -------------------------------------------------------- */

struct fs_options {
	char *socket;             /* -s: vhost-user socket path (absolute) */
	char *mountpoint;         /* absolute, an existing directory */
	struct vsock_config vsock;
	uint32_t *listen;         /* -l ports, nlisten of them */
	unsigned nlisten;
	char *uds;                /* --uds: hybrid socket path, or NULL */
	char *fuse_opts;          /* every -o joined with ',', or NULL */
	bool foreground;          /* -f (also implied by -d) */
	bool debug;               /* -d: protocol traces */
};

/* Returned by fs_options_parse when --help or --version was printed. */
#define FS_OPTIONS_DONE 1

/* Parse argv into o (zeroed and defaulted first).  Returns 0 to run,
 * FS_OPTIONS_DONE after printing help or the version to stdout (exit 0),
 * or -EINVAL after printing one line naming the bad option or value to
 * stderr (exit 2).  Free o with fs_options_free in every case. */
int fs_options_parse(struct fs_options *o, int argc, char **argv);
void fs_options_free(struct fs_options *o);

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
 * channels come from v (connect, accept, incoming notifications) and chans
 * (status).  SIGINT, SIGTERM and SIGHUP stop the loop; so does an unmount
 * from outside (fusermount3 -u).  Returns NULL with errno set and a log
 * line: EINVAL when libfuse rejected a mount option (it printed which),
 * else the mount failure. */
struct fs *fs_new(struct loop *l, struct chan_set *chans, struct vsock *v,
                  const struct fs_config *cfg);
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
