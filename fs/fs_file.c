/*
 * Open files: connect, accept and shared opens, reads, writes, poll,
 * release and the args xattr.
 *
 * The shape is 9front sshnet's: per file a queue of parked reads and a
 * queue of parked writes; one service step (fs_file_service, a loop task
 * deferred by the channel's watcher and by interrupts) pairs them with the
 * channel's data and space and answers what it can.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <linux/fuse.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/log.h"
#include "fs_private.h"

/* Streams; and writers of one open file reach us in parallel (Linux >=
 * 6.2, for writes that stay within the size fs_tree.c reports), so a
 * writer queued behind a parked one waits here, where a signal is
 * answered, not in the kernel's inode lock, where it is not. */
#define FS_STREAM_FLAGS (FOPEN_DIRECT_IO | FOPEN_NONSEEKABLE | FOPEN_STREAM | \
                         FOPEN_PARALLEL_DIRECT_WRITES)
/* A shared name's writers go one at a time (the kernel's inode lock), so
 * no write is interleaved with another open's. */
#define FS_SHARED_FLAGS (FOPEN_DIRECT_IO | FOPEN_NONSEEKABLE | FOPEN_STREAM)

/* The name of the channel file attribute holding chan->args (fs.h). */
#define FS_XATTR_ARGS "user.chanfs.args"

static void fs_file_service(void *arg);

int fs_reply_open(fuse_req_t req, uint64_t fh, uint32_t open_flags)
{
	struct fuse_open_out out;

	memset(&out, 0, sizeof out);
	out.fh = fh;
	out.open_flags = open_flags;
	return fuse_reply_buf(req, (const char *)&out, sizeof out);
}

static struct fs_file *fs_file_of(struct fuse_file_info *fi)
{
	return (struct fs_file *)(uintptr_t)fi->fh;
}

static const char *fs_file_path(const struct fs_file *f, char *buf, size_t len)
{
	struct fs_node n = { .kind = f->kind, .cd = f->cd, .name = f->name,
	                     .path = "status" };

	return fs_node_path(&n, buf, len);
}

static struct fs_file *fs_file_new(struct fs *fs, const struct fs_node *n)
{
	struct fs_file *f = calloc(1, sizeof *f);

	if (!f)
		return NULL;
	if (n->kind == FS_CHAN && !(f->name = strdup(n->name))) {
		free(f);
		return NULL;
	}
	f->fs = fs;
	f->kind = n->kind;
	f->ino = n->ino;
	f->cd = n->cd;
	TAILQ_INIT(&f->reads);
	TAILQ_INIT(&f->writes);
	TAILQ_INIT(&f->flushes);
	loop_task_init(&f->task, fs_file_service, f);
	TAILQ_INSERT_TAIL(&fs->files, f, link);
	if (f->kind == FS_CHAN)
		fs_node_opened(fs, f->ino);
	return f;
}

/* The file is gone for the kernel (released, or its open failed): its
 * channel reference goes back to the directory (a shared channel's other
 * opens keep their watchers). */
static void fs_file_free(struct fs_file *f)
{
	loop_cancel(f->fs->loop, &f->task);
	TAILQ_REMOVE(&f->fs->files, f, link);
	if (f->kind == FS_CHAN)
		fs_node_closed(f->fs, f->ino);
	if (f->ph)
		fuse_pollhandle_destroy(f->ph);
	if (f->c) {
		chan_watch_remove(f->c, &f->watch);
		if (f->cd->ops->release)
			f->cd->ops->release(f->cd->ctx, f->name, f->c);
		else
			chan_close(f->c);
	}
	free(f->text);
	free(f->name);
	free(f);
}

/* The channel changed: answer what can be answered, in the flush.  Every
 * watcher call is a readiness edge (chan.h), which a poller hears of. */
static void fs_file_watch(struct chan *c, void *arg)
{
	struct fs_file *f = arg;

	(void)c;
	f->edge = true;
	loop_defer(f->fs->loop, &f->task);
}

/* Called by libfuse when the kernel interrupts r (possibly from inside
 * fuse_req_interrupt_func).  Replying here would deadlock on libfuse's
 * request lock, so only flag it and let the service answer EINTR. */
static void fs_req_interrupted(fuse_req_t req, void *data)
{
	struct fs_req *r = data;

	(void)req;
	r->interrupted = true;
	loop_defer(r->file->fs->loop, &r->file->task);
}

static struct fs_req *fs_req_park(struct fs_file *f, fuse_req_t req,
                                  enum fs_req_kind kind)
{
	struct fs_req *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->req = req;
	r->file = f;
	r->kind = kind;
	if (kind == FS_REQ_READ) {
		TAILQ_INSERT_TAIL(&f->reads, r, link);
		/* The device may now answer it from guest memory. */
		chan_read_waiting(f->c, true);
	}
	else if (kind == FS_REQ_WRITE)
		TAILQ_INSERT_TAIL(&f->writes, r, link);
	else if (kind == FS_REQ_FLUSH)
		TAILQ_INSERT_TAIL(&f->flushes, r, link);
	else
		f->opening = r;
	/* A waiting accept is counted (vsock: the port keeps listening). */
	if (kind == FS_REQ_OPEN && f->cd->mode == CHANDIR_ACCEPT && !f->c) {
		r->waiting = true;
		if (f->cd->ops->wait)
			f->cd->ops->wait(f->cd->ctx, f->name, true);
	}
	fuse_req_interrupt_func(req, fs_req_interrupted, r);
	return r;
}

static void fs_req_done(struct fs_file *f, struct fs_req *r)
{
	if (r->kind == FS_REQ_READ) {
		TAILQ_REMOVE(&f->reads, r, link);
		chan_read_waiting(f->c, false);
	}
	else if (r->kind == FS_REQ_WRITE)
		TAILQ_REMOVE(&f->writes, r, link);
	else if (r->kind == FS_REQ_FLUSH)
		TAILQ_REMOVE(&f->flushes, r, link);
	else
		f->opening = NULL;
	if (r->timer)
		event_free(r->timer);
	if (r->waiting && f->cd->ops->wait)
		f->cd->ops->wait(f->cd->ctx, f->name, false);
	if (r->taken_buf) {
		f->fs->taken_bufs--;
		if (f->fs->nspare < FS_SPARE_BUFS)
			f->fs->spare[f->fs->nspare++] = r->own;
		else
			free(r->own);
	} else {
		free(r->own);
	}
	free(r);
}

static unsigned fs_file_mask(const struct fs_file *f)
{
	unsigned m;

	if (f->kind == FS_STATUS)
		return POLLIN | POLLRDNORM;
	if (!f->c || f->opening)
		return 0;
	m = chan_poll(f->c);
	if (m & POLLIN)
		m |= POLLRDNORM;
	if (m & POLLOUT)
		m |= POLLWRNORM;
	return m;
}

/* --- open ---------------------------------------------------------------- */

/* The open failed (or was interrupted): answer it and forget the file. */
static void fs_open_fail(struct fs_file *f, int err)
{
	char path[FS_PATH_MAX];

	if (f->opening) {
		log_debug("fs: OPEN %s: %s", fs_file_path(f, path, sizeof path),
		          strerror(err));
		fuse_reply_err(f->opening->req, err);
		fs_req_done(f, f->opening);
	}
	fs_file_free(f);
}

/* Tell the kernel the file is open.  If the reply cannot be delivered the
 * kernel never learnt of the file and sends no RELEASE: free it here. */
static bool fs_open_finish(struct fs_file *f, fuse_req_t req)
{
	char path[FS_PATH_MAX];

	if (f->c) {
		/* A connect already watched the channel while it waited. */
		chan_watch_remove(f->c, &f->watch);
		chan_watch_add(f->c, &f->watch, fs_file_watch, f);
	}
	/* A read-only file has written nothing for a close to wait for:
	 * the kernel then sends no FLUSH (one request less per close). */
	if (fs_reply_open(req, (uintptr_t)f,
	                  (f->kind == FS_STATUS ? FOPEN_DIRECT_IO
	                   : f->cd->mode == CHANDIR_SHARED ? FS_SHARED_FLAGS
	                                                   : FS_STREAM_FLAGS) |
	                  (f->rdonly ? FOPEN_NOFLUSH : 0)) < 0) {
		fs_file_free(f);
		return false;
	}
	log_debug("fs: OPEN %s: %s", fs_file_path(f, path, sizeof path),
	          f->c ? f->c->name : "ok");
	return true;
}

/* Move a waiting open on: 1 when it is open now, 0 while it still waits,
 * -1 when it failed (f is freed). */
static int fs_open_progress(struct fs_file *f)
{
	struct fs_req *r = f->opening;
	fuse_req_t req;
	int rc;

	if (r->interrupted) {
		fs_open_fail(f, EINTR);
		return -1;
	}
	if (f->cd->mode == CHANDIR_ACCEPT && !f->c) {
		rc = f->cd->ops->open(f->cd->ctx, f->name, &f->c);
		if (rc == -EAGAIN)
			return 0;
		if (rc < 0) {
			fs_open_fail(f, -rc);
			return -1;
		}
	}
	if (f->c->state == CHAN_CONNECTING)
		return 0;
	if (f->cd->mode == CHANDIR_CONNECT && f->c->state == CHAN_RESET) {
		fs_open_fail(f, f->c->error);
		return -1;
	}
	req = r->req;
	fs_req_done(f, r);
	return fs_open_finish(f, req) ? 1 : -1;
}

static void fs_open_channel(fuse_req_t req, struct fs_file *f, int flags)
{
	char path[FS_PATH_MAX];
	int rc;

	rc = f->cd->ops->open(f->cd->ctx, f->name, &f->c);
	/* Only accept honours O_NONBLOCK: a connect always waits for the
	 * guest's answer (bounded by the connect timeout). */
	if (rc == -EAGAIN && f->cd->mode == CHANDIR_ACCEPT &&
	    !(flags & O_NONBLOCK))
		rc = 0;
	if (rc < 0) {
		log_debug("fs: OPEN %s: %s", fs_file_path(f, path, sizeof path),
		          strerror(-rc));
		fuse_reply_err(req, -rc);
		fs_file_free(f);
		return;
	}
	if (f->c && f->c->state != CHAN_CONNECTING) {
		/* An accepted connection the guest already reset still opens:
		 * its data reads, then the error (chandir.h). */
		if (f->cd->mode == CHANDIR_CONNECT && f->c->state == CHAN_RESET) {
			fuse_reply_err(req, f->c->error);
			fs_file_free(f);
			return;
		}
		fs_open_finish(f, req);
		return;
	}
	if (!fs_req_park(f, req, FS_REQ_OPEN)) {
		fuse_reply_err(req, ENOMEM);
		fs_file_free(f);
		return;
	}
	if (f->c)
		chan_watch_add(f->c, &f->watch, fs_file_watch, f);
	log_debug("fs: OPEN %s: waiting for the guest",
	          fs_file_path(f, path, sizeof path));
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_node *n = fs_node_get(fs, ino);
	struct fs_file *f;
	char path[FS_PATH_MAX];
	int rc;

	if (!n) {
		log_warnx("fs: OPEN: unknown node %lu", (unsigned long)ino);
		fuse_reply_err(req, ENOENT);
		return;
	}
	switch (n->kind) {
	case FS_DIR:
		fuse_reply_err(req, EISDIR);
		return;
	case FS_STATUS:
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			log_info("fs: OPEN status: read-only, opened for writing");
			fuse_reply_err(req, EACCES);
			return;
		}
		f = fs_file_new(fs, n);
		if (!f) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		f->rdonly = true;
		rc = fs_status_snapshot(fs, &f->text, &f->text_len);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			fs_file_free(f);
			return;
		}
		fs_open_finish(f, req);
		return;
	case FS_CHAN:
		break;
	}
	f = fs_file_new(fs, n);
	if (!f) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	log_debug("fs: OPEN %s flags 0%o", fs_node_path(n, path, sizeof path),
	          fi->flags);
	f->rdonly = (fi->flags & O_ACCMODE) == O_RDONLY;
	f->nonblock = fi->flags & O_NONBLOCK;
	fs_open_channel(req, f, fi->flags);
}

void fs_file_ready(void *arg, struct chandir *d, const char *name)
{
	struct fs *fs = arg;
	struct fs_file *f;

	/* Oldest open first: the loop runs tasks in the order queued. */
	TAILQ_FOREACH(f, &fs->files, link)
		if (f->opening && f->kind == FS_CHAN && f->cd == d && !f->c &&
		    !strcmp(f->name, name))
			loop_defer(fs->loop, &f->task);
}

/* --- read ---------------------------------------------------------------- */

/* Answer req from the channel if a read would not block; false if it
 * would (-EAGAIN). */
static bool fs_read_now(struct fs_file *f, fuse_req_t req, size_t size)
{
	struct iovec iov[CHAN_PEEK_MAX];
	size_t n = 0;
	int cnt, i;

	if (size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return true;
	}
	cnt = chan_peekv(f->c, iov, CHAN_PEEK_MAX, size);
	if (cnt == -EAGAIN)
		return false;
	if (cnt < 0) {
		fuse_reply_err(req, -cnt);
		return true;
	}
	if (cnt == 0) {
		fuse_reply_buf(req, NULL, 0);	/* EOF */
		return true;
	}
	/* Straight from the ring (or the guest's own buffers, lent for this
	 * turn) into the reply, then let the bytes go. */
	for (i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	fuse_reply_iov(req, iov, cnt);
	chan_consume(f->c, n);
	return true;
}

static void fs_status_read(fuse_req_t req, struct fs_file *f, size_t size,
                           off_t off)
{
	size_t start = off < 0 ? f->text_len : (size_t)off;

	if (start > f->text_len)
		start = f->text_len;
	if (size > f->text_len - start)
		size = f->text_len - start;
	fuse_reply_buf(req, f->text + start, size);
}

/* The kernel lets a direct-io file be mapped MAP_PRIVATE (only MAP_SHARED
 * gets ENODEV, on 6.1 as on 6.18), and a fault on such a mapping reads
 * the page through the page cache: from a stream that would eat bytes no
 * read() ever returns.  Page-cache reads are the ones without a lock
 * owner (every read() carries its caller's, FUSE_READ_LOCKOWNER); refuse
 * them, so the fault is SIGBUS for the mapper and the stream is intact. */
static bool fs_read_from_page_cache(struct fs_file *f, fuse_req_t req,
                                    const struct fuse_file_info *fi,
                                    size_t size, off_t off)
{
	if (fi->lock_owner != 0)
		return false;
	log_warnx("fs: READ %s size %zu offset %lld from the page cache (a "
	          "private mapping of a stream?): refused",
	          f->c ? f->c->name : "?", size,
	          (long long)off);
	fuse_reply_err(req, EIO);
	return true;
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                struct fuse_file_info *fi)
{
	struct fs_file *f = fs_file_of(fi);

	(void)ino;
	if (f->kind == FS_STATUS) {
		fs_status_read(req, f, size, off);
		return;
	}
	if (fs_read_from_page_cache(f, req, fi, size, off))
		return;
	f->nonblock = fi->flags & O_NONBLOCK;
	/* Parked readers are first in line for the data. */
	if (TAILQ_EMPTY(&f->reads) && fs_read_now(f, req, size))
		return;
	if (fi->flags & O_NONBLOCK) {
		fuse_reply_err(req, EAGAIN);
		return;
	}
	if (!fs_req_park(f, req, FS_REQ_READ)) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	TAILQ_LAST(&f->reads, fs_reqq)->size = size;
	log_debug("fs: READ %s size %zu: parked", f->c->name, size);
}

static void fs_serve_reads(struct fs_file *f)
{
	struct fs_req *r, *next;

	while ((r = TAILQ_FIRST(&f->reads)) != NULL) {
		if (!fs_read_now(f, r->req, r->size))
			break;
		fs_req_done(f, r);
	}
	for (r = TAILQ_FIRST(&f->reads); r; r = next) {
		next = TAILQ_NEXT(r, link);
		if (r->interrupted) {
			fuse_reply_err(r->req, EINTR);
			fs_req_done(f, r);
		}
	}
}

/* --- write --------------------------------------------------------------- */

/* A write to a CHANDIR_ATOMIC file of up to CHANDIR_ATOMIC_MAX bytes is
 * taken whole or not at all (one that could never fit the window is
 * taken as it fits: waiting would be forever). */
static bool fs_write_whole(const struct fs_file *f, size_t len)
{
	return (f->cd->flags & CHANDIR_ATOMIC) && len <= CHANDIR_ATOMIC_MAX &&
	       len <= f->c->to_guest.cap;
}

/* chan_write, but all or -EAGAIN when whole.  A whole write that must
 * wait sets f->room_mark: the channel's watchers fire when the window
 * drains to half, but a whole write may need more room than that, so its
 * file also waits for the delivery count at which it fits. */
static ssize_t fs_chan_write(struct fs_file *f, const char *buf, size_t len,
                             bool whole)
{
	uint32_t room = ring_space(&f->c->to_guest);
	ssize_t rc;

	if (whole && room < len) {
		rc = chan_write(f->c, buf, 0);
		if (rc < 0 && rc != -EAGAIN)
			return rc;
		f->room_mark = f->c->tx_bytes + (len - room);
		return -EAGAIN;
	}
	return chan_write(f->c, buf, len);
}

static ssize_t fs_write_offer(struct fs_file *f, struct fs_req *r);

/* May a parked write keep libfuse's request buffer (where p lies) rather
 * than copy len bytes of it?  When it is large, the buffer is the one
 * libfuse filled, and not too many are held. */
static bool fs_write_can_take_buf(const struct fs_file *f, const char *p,
                                  size_t len)
{
	const struct fs *fs = f->fs;
	const char *mem = fs->buf.mem;

	return len >= FS_TAKE_MIN && fs->taken_bufs < FS_TAKE_BUFS && mem &&
	       !(fs->buf.flags & FUSE_BUF_IS_FD) && p >= mem &&
	       p + len <= mem + fs->buf.size;
}

/* A blocking write too large for the window whose buffer can be taken
 * parks whole, none of it copied into the window: the device reads it in
 * place after the window's bytes (fs_write_offer), and only a rest that
 * fits at the end is copied. */
static bool fs_write_parks_whole(const struct fs_file *f, const char *buf,
                                 size_t size)
{
	return !f->nonblock && f->cd->mode != CHANDIR_SHARED &&
	       !fs_write_whole(f, size) && size > chan_write_room(f->c) &&
	       fs_write_can_take_buf(f, buf, size);
}

void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                 size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs_file *f = fs_file_of(fi);
	bool nonblock = fi->flags & O_NONBLOCK;
	ssize_t n = 0;
	struct fs_req *r;

	(void)ino;
	(void)off;
	if (f->kind == FS_STATUS) {
		fuse_reply_err(req, EBADF);
		return;
	}
	f->nonblock = nonblock;
	/* Behind a parked writer a new write must wait its turn.  (What
	 * fits goes into the window even when the guest could take it
	 * straight from the request: answering at once lets the writer
	 * prepare its next write while we fill guest buffers.) */
	if (TAILQ_EMPTY(&f->writes) && !fs_write_parks_whole(f, buf, size)) {
		n = fs_chan_write(f, buf, size, fs_write_whole(f, size));
		if (n == (ssize_t)size) {
			fuse_reply_write(req, size);
			return;
		}
		if (n < 0 && n != -EAGAIN) {
			fuse_reply_err(req, (int)-n);
			return;
		}
		if (n < 0)
			n = 0;
	}
	if (nonblock) {
		if (n > 0)
			fuse_reply_write(req, n);
		else
			fuse_reply_err(req, EAGAIN);
		return;
	}
	/* libfuse reuses its buffer for the next request: take the buffer
	 * (a large rest) or keep our own copy of what is not taken yet. */
	r = fs_req_park(f, req, FS_REQ_WRITE);
	if (r) {
		r->len = size - n;
		if (fs_write_can_take_buf(f, buf + n, r->len)) {
			r->own = f->fs->buf.mem;
			r->taken_buf = true;
			f->fs->buf.mem = NULL;
			f->fs->taken_bufs++;
			r->data = buf + n;
		} else if ((r->own = malloc(r->len)) != NULL) {
			memcpy(r->own, buf + n, r->len);
			r->data = r->own;
		}
	}
	if (!r || !r->data) {
		if (r)
			fs_req_done(f, r);
		if (n > 0)
			fuse_reply_write(req, n);
		else
			fuse_reply_err(req, ENOMEM);
		return;
	}
	r->taken = n;
	/* The service sets the watcher's mark for the room it waits for. */
	if (f->room_mark)
		loop_defer(f->fs->loop, &f->task);
	log_debug("fs: WRITE %s size %zu: %zd taken, rest parked", f->c->name,
	          size, n);
	/* Offered to the device at once; an error is answered by the
	 * service. */
	if (r == TAILQ_FIRST(&f->writes) && fs_write_offer(f, r) < 0)
		loop_defer(f->fs->loop, &f->task);
}

/* The head write's bytes the device took in place count as taken. */
static void fs_write_unpark(struct fs_file *f, struct fs_req *r)
{
	size_t n;

	if (!r->parked)
		return;
	n = chan_unpark(f->c);
	r->parked = false;
	r->off += n;
	r->taken += n;
}

/* The head write's rest fits in the window's room: the write is answered
 * as if it had been copied there, and the rest stays parked for the device
 * to read in place.  The writes behind it wait, so nothing enters the
 * window before those bytes and the window's room stays at least their
 * count (what a release copies there, fs_write_end). */
static void fs_write_settle(struct fs_req *r)
{
	fuse_reply_write(r->req, r->taken + r->len - r->off);
	r->req = NULL;
	r->settled = true;
}

/* Offer the rest of the head write: parked in place for the device to
 * copy into guest buffers straight from our buffer (no copy into the
 * window) when it does not fit, or when it does and is large (the write
 * is settled: answered at once); else into the window when all of it
 * fits (the write is done), else (a device that reads only the window)
 * what fits.  Returns the bytes the window took, 0 when parked, or
 * chan_write's error. */
static ssize_t fs_write_offer(struct fs_file *f, struct fs_req *r)
{
	size_t rest = r->len - r->off;
	bool whole = r->off == 0 && fs_write_whole(f, r->len);
	bool fits = rest <= chan_write_room(f->c);
	ssize_t n;
	int rc;

	/* Not a whole (atomic) write, nor one to a shared channel: another
	 * open's writes would go into the window ahead of the parked
	 * bytes. */
	if (!whole && f->cd->mode != CHANDIR_SHARED &&
	    (!fits || (rest >= FS_TAKE_MIN && !r->interrupted))) {
		rc = chan_park(f->c, r->data + r->off, rest);
		if (rc == 0) {
			r->parked = true;
			if (fits)
				fs_write_settle(r);
			return 0;
		}
		if (rc != -ENOTSUP && rc != -EBUSY)
			return rc;
	}
	n = fs_chan_write(f, r->data + r->off, rest, whole);
	if (n > 0) {
		r->off += n;
		r->taken += n;
	}
	return n;
}

/* The parked write at the head is finished: all of it, what was taken
 * before an error or interrupt, or the error itself. */
static void fs_write_end(struct fs_file *f, struct fs_req *r, int err)
{
	fs_write_unpark(f, r);
	if (r->settled) {
		/* Answered already: what the device did not take goes into
		 * the window (it fits), as if it had been copied there. */
		if (r->off < r->len)
			(void)chan_write(f->c, r->data + r->off,
			                 r->len - r->off);
		fs_req_done(f, r);
		return;
	}
	if (r->taken > 0)
		fuse_reply_write(r->req, r->taken);
	else
		fuse_reply_err(r->req, err);
	fs_req_done(f, r);
}

static void fs_serve_writes(struct fs_file *f)
{
	struct fs_req *r, *next;
	ssize_t n;

	f->room_mark = 0;
	while ((r = TAILQ_FIRST(&f->writes)) != NULL) {
		/* A settled write is done once the device took its rest (or
		 * the channel dropped it: the next FLUSH says so). */
		if (r->settled && chan_park_rest(f->c))
			break;
		fs_write_unpark(f, r);
		if (r->off == r->len || r->settled) {
			fs_write_end(f, r, 0);
			continue;
		}
		n = fs_write_offer(f, r);
		if (n > 0)
			continue;
		if (n == 0 && r->parked) {
			if (!r->interrupted)
				break;
			fs_write_end(f, r, EINTR);
			continue;
		}
		if (n != -EAGAIN) {
			fs_write_end(f, r, (int)-n);
			continue;
		}
		if (!r->interrupted)
			break;
		f->room_mark = 0;
		fs_write_end(f, r, EINTR);
	}
	/* Writers behind the head have nothing taken: EINTR is exact. */
	for (r = TAILQ_FIRST(&f->writes); r; r = next) {
		next = TAILQ_NEXT(r, link);
		if (r->interrupted)
			fs_write_end(f, r, EINTR);
	}
}

/* --- close: FLUSH lingers until the data reached the guest ------------- */

static void fs_flush_expired(evutil_socket_t fd, short what, void *arg)
{
	struct fs_req *r = arg;

	(void)fd;
	(void)what;
	r->expired = true;
	loop_defer(r->file->fs->loop, &r->file->task);
}

/* Answer the parked flushes that are settled: delivered (0), never to be
 * (the write error), interrupted (EINTR), or out of time (ETIMEDOUT).
 * The rest wait for the earliest mark still outstanding (or for the room
 * a whole write waits for, if that comes first). */
static void fs_serve_flushes(struct fs_file *f)
{
	struct fs_req *r, *next;
	uint64_t mark = 0;
	int rc, err;

	for (r = TAILQ_FIRST(&f->flushes); r; r = next) {
		next = TAILQ_NEXT(r, link);
		rc = chan_delivered(f->c, r->mark);
		if (rc > 0)
			err = 0;
		else if (rc < 0)
			err = -rc;
		else if (r->interrupted)
			err = EINTR;
		else if (r->expired)
			err = ETIMEDOUT;
		else {
			if (!mark || r->mark < mark)
				mark = r->mark;
			continue;
		}
		if (err == ETIMEDOUT)
			log_info("fs: close %s: %llu bytes not delivered to the "
			         "guest after %u ms; close fails with ETIMEDOUT",
			         f->c->name, (unsigned long long)
			         (r->mark - f->c->tx_bytes), f->fs->linger_ms);
		else if (err)
			log_debug("fs: FLUSH %s: %s", f->c->name, strerror(err));
		fuse_reply_err(r->req, err);
		fs_req_done(f, r);
	}
	if (f->room_mark && (!mark || f->room_mark < mark))
		mark = f->room_mark;
	chan_watch_delivered(f->c, &f->watch, mark);
}

/* Sent at every close(2) of a descriptor (RELEASE follows the last one).
 * Like a socket's close with SO_LINGER: answered once everything written
 * through the file so far is in guest buffers, or with an error when it
 * cannot be or the linger time runs out.  A non-blocking file does not
 * wait: EAGAIN tells its data is still on its way (it keeps draining). */
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_file *f = fs_file_of(fi);
	struct fs_req *r;
	uint64_t mark;
	int rc;

	(void)ino;
	/* No channel, or a directory whose closes do not wait (its data
	 * stays queued in the channel). */
	if (!f->c || (f->cd->flags & CHANDIR_NO_LINGER)) {
		fuse_reply_err(req, 0);
		return;
	}
	/* A settled write's rest counts as written. */
	mark = chan_written(f->c);
	if (!TAILQ_EMPTY(&f->writes) && TAILQ_FIRST(&f->writes)->settled)
		mark += chan_park_rest(f->c);
	rc = chan_delivered(f->c, mark);
	if (rc != 0) {
		fuse_reply_err(req, rc > 0 ? 0 : -rc);
		return;
	}
	if (f->nonblock) {
		log_debug("fs: FLUSH %s: non-blocking, %llu bytes on their way",
		          f->c->name,
		          (unsigned long long)(mark - f->c->tx_bytes));
		fuse_reply_err(req, EAGAIN);
		return;
	}
	r = fs_req_park(f, req, FS_REQ_FLUSH);
	if (r) {
		r->mark = mark;
		r->timer = evtimer_new(loop_base(f->fs->loop), fs_flush_expired,
		                       r);
	}
	if (!r || !r->timer) {
		if (r)
			fs_req_done(f, r);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	loop_timer_ms(r->timer, f->fs->linger_ms);
	log_debug("fs: FLUSH %s: waiting for %llu bytes to reach the guest",
	          f->c->name, (unsigned long long)(mark - f->c->tx_bytes));
	/* Also settles an interrupt that came before the park. */
	loop_defer(f->fs->loop, &f->task);
}

/* --- poll and the service step ---------------------------------------- */

/* Notify on every edge since the last POLL reply, even when the mask is
 * the one last replied: an edge-triggered epoll reader that drained the
 * file to EAGAIN sends no POLL, and only this wakes it for the next
 * arrival.  The handle is kept: the kernel's handle names the file, not
 * one poll, so later edges before its next POLL still reach it. */
static void fs_poll_notify(struct fs_file *f)
{
	if (!f->ph || !f->edge)
		return;
	f->edge = false;
	fuse_lowlevel_notify_poll(f->ph);
}

static void fs_file_service(void *arg)
{
	struct fs_file *f = arg;

	if (f->opening && fs_open_progress(f) <= 0)
		return;
	if (!f->c)
		return;
	fs_serve_reads(f);
	fs_serve_writes(f);
	fs_serve_flushes(f);
	fs_poll_notify(f);
}

void fs_op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                struct fuse_pollhandle *ph)
{
	struct fs_file *f = fs_file_of(fi);
	unsigned mask;

	(void)ino;
	/* Directories have no file handle; they never block. */
	if (!f) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);
		return;
	}
	mask = fs_file_mask(f);
	if (ph) {
		if (f->ph)
			fuse_pollhandle_destroy(f->ph);
		f->ph = ph;
	}
	/* The reply tells the state as of now: only later edges notify. */
	f->edge = false;
	fuse_reply_poll(req, mask);
}

/* Answer whatever is still parked on f (there should be nothing: the
 * kernel releases a file only when no call on it is running). */
static void fs_file_drain(struct fs_file *f, int err)
{
	struct fs_req *r;

	while ((r = TAILQ_FIRST(&f->reads)) != NULL) {
		fuse_reply_err(r->req, err);
		fs_req_done(f, r);
	}
	while ((r = TAILQ_FIRST(&f->writes)) != NULL)
		fs_write_end(f, r, err);
	while ((r = TAILQ_FIRST(&f->flushes)) != NULL) {
		fuse_reply_err(r->req, err);
		fs_req_done(f, r);
	}
	if (f->opening) {
		fuse_reply_err(f->opening->req, err);
		fs_req_done(f, f->opening);
	}
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_file *f = fs_file_of(fi);
	char path[FS_PATH_MAX];

	(void)ino;
	log_debug("fs: RELEASE %s%s%s", fs_file_path(f, path, sizeof path),
	          f->c ? " " : "", f->c ? f->c->name : "");
	fs_file_drain(f, EBADF);
	/* chan_close: the device shuts the connection down in order. */
	fs_file_free(f);
	fuse_reply_err(req, 0);
}

void fs_files_free(struct fs *fs)
{
	struct fs_file *f;

	while ((f = TAILQ_FIRST(&fs->files)) != NULL) {
		fs_file_drain(f, ECONNRESET);
		fs_file_free(f);
	}
}

/* --- the args attribute ------------------------------------------------ */

/* The channel of an open file on node ino (a shared name's opens all hold
 * the same one), or NULL. */
static struct chan *fs_node_chan(struct fs *fs, fuse_ino_t ino)
{
	struct fs_file *f;

	TAILQ_FOREACH(f, &fs->files, link)
		if (f->ino == ino && f->c && !f->opening)
			return f->c;
	return NULL;
}

/* The attribute list/value reply: the size alone when size is 0, ERANGE
 * when it does not fit. */
static void fs_reply_xattr_data(fuse_req_t req, const char *data, size_t len,
                                size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, data, len);
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                    size_t size)
{
	struct chan *c = fs_node_chan(fuse_req_userdata(req), ino);

	if (strcmp(name, FS_XATTR_ARGS) != 0 || !c || !c->args) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	fs_reply_xattr_data(req, c->args, strlen(c->args), size);
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct chan *c = fs_node_chan(fuse_req_userdata(req), ino);

	if (!c || !c->args)
		fs_reply_xattr_data(req, "", 0, size);
	else
		fs_reply_xattr_data(req, FS_XATTR_ARGS, sizeof FS_XATTR_ARGS,
		                    size);
}
