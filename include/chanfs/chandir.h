/*
 * chandir — the one seam between the devices and the file system.
 *
 * A device offers directories of channels (chan.h): vsock offers `vsock`
 * and `vsock/listen`, the serial ports `serial`, the named services
 * `services`.  fs/ turns every registered directory into a directory of
 * files and knows nothing else about the device behind it: it includes
 * chan.h and this header, never a device header, and devices never include
 * fs/ headers.
 *
 * What an open of `<path>/<name>` means is the directory's mode:
 *   CHANDIR_CONNECT  every open makes a new channel (vsock/<port>: a
 *                    connect).  open() returns one in CONNECTING or OPEN;
 *                    the file's open waits while it is CONNECTING (even
 *                    with O_NONBLOCK) and fails with the channel's error
 *                    if it is reset meanwhile.
 *   CHANDIR_ACCEPT   every open takes the next waiting channel
 *                    (vsock/listen/<port>, services/<name>).  open()
 *                    returns -EAGAIN when none waits: the file's open
 *                    then fails EAGAIN (O_NONBLOCK) or waits, counted with
 *                    wait(name, true) until the device calls
 *                    chandir_ready(d, name) and a retried open() succeeds
 *                    (or the opener gives up: wait(name, false)).
 *   CHANDIR_SHARED   every open shares the one channel the name has
 *                    (serial/<name>): open() returns it with a host
 *                    reference (chan_ref) each time; the file keeps one
 *                    inode per name, so the kernel serialises its writers.
 * Per-open names (CONNECT, ACCEPT) get a fresh inode at every lookup so one
 * connection's parked write never holds up another's.
 *
 * Every function here and every op is called on the loop thread.  Ops are
 * called synchronously from FUSE requests: they must not block, and must
 * not call back into the file system (chandir_ready only records work).
 */
#ifndef CHANFS_CHANDIR_H
#define CHANFS_CHANDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct chan;

enum chandir_mode { CHANDIR_CONNECT, CHANDIR_ACCEPT, CHANDIR_SHARED };

/* Longest name in a directory (a path component). */
#define CHANDIR_NAME_MAX 255
/* Writes up to this size to a CHANDIR_ATOMIC directory's file are taken
 * whole or not at all (PIPE_BUF semantics): never split, never
 * interleaved with another writer's. */
#define CHANDIR_ATOMIC_MAX 4096

/* Flags of a directory. */
enum {
	CHANDIR_ATOMIC = 1 << 0,    /* writes up to CHANDIR_ATOMIC_MAX whole */
	CHANDIR_NO_LINGER = 1 << 1, /* close(2) does not wait for delivery:
	                               the data stays queued in the channel */
};

struct chandir_ops {
	/* 0 when name may be opened (whether or not anything waits), else
	 * -ENOENT.  Called for every lookup. */
	int (*lookup)(void *ctx, const char *name);
	/* For readdir: call add(arg, name) for each name to list, in a stable
	 * order (NULL: an unlisted directory).  Subdirectories registered
	 * below this one are listed by fs/ itself. */
	void (*list)(void *ctx, void (*add)(void *arg, const char *name),
	             void *arg);
	/* Open name (see the modes above): 0 with *out holding a host
	 * reference for the caller, or -errno (-EAGAIN: nothing waits,
	 * ACCEPT only; -ENOTCONN, -EADDRINUSE, -ENOMEM...). */
	int (*open)(void *ctx, const char *name, struct chan **out);
	/* ACCEPT: an opener starts (true) or stops (false) waiting on name.
	 * NULL: nothing to count. */
	void (*wait)(void *ctx, const char *name, bool waiting);
	/* The file's last close gives back the reference open() returned
	 * (fs/ removed its watcher first).  NULL: chan_close(c). */
	void (*release)(void *ctx, const char *name, struct chan *c);
	/* Lines of the `status` file about this directory (NULL: none). */
	void (*status)(void *ctx, FILE *out);
};

struct chandir {
	const char *path;            /* "vsock", "vsock/listen", "serial" */
	enum chandir_mode mode;
	unsigned flags;              /* CHANDIR_ATOMIC, CHANDIR_NO_LINGER */
	const struct chandir_ops *ops;
	void *ctx;
	struct chandirs *set;
};

/* Every registered directory, in registration order (at most
 * CHANDIRS_MAX).  Created by main, filled by the devices before fs_new
 * (fs/ builds its tree then: a later registration is not served), served
 * by fs/.  "status" is the status file's name: no path may start with
 * that component (fs_new fails with EEXIST). */
#define CHANDIRS_MAX 16
struct chandirs {
	struct chandir dirs[CHANDIRS_MAX];
	unsigned count;
	void (*ready)(void *arg, struct chandir *d, const char *name);
	void *ready_arg;
};

void chandirs_init(struct chandirs *r);

/* Register a directory.  path is one or two components of
 * [A-Za-z0-9._-] joined by '/' (a two-component path's parent need not be
 * registered: fs/ makes it an empty directory); path and ops must outlive
 * r.  Returns the directory, or NULL with errno EINVAL (bad path, no ops
 * or no lookup/open op), EEXIST (path taken) or ENOSPC (CHANDIRS_MAX
 * reached). */
struct chandir *chandir_add(struct chandirs *r, const char *path,
                            enum chandir_mode mode, unsigned flags,
                            const struct chandir_ops *ops, void *ctx);
/* The directory registered at path, or NULL. */
struct chandir *chandir_find(struct chandirs *r, const char *path);

/* Device side: a waiting open of name in d may now succeed (a channel was
 * queued); fs/ retries the opens waiting there on its next turn. */
void chandir_ready(struct chandir *d, const char *name);

/* fs/ side: fn is what chandir_ready calls (one receiver; NULL removes). */
void chandirs_on_ready(struct chandirs *r,
                       void (*fn)(void *arg, struct chandir *d,
                                  const char *name),
                       void *arg);

/* True when name is a valid path component for a channel directory:
 * 1..CHANDIR_NAME_MAX bytes, not "." or "..", no '/' or NUL. */
bool chandir_name_ok(const char *name);

#endif
