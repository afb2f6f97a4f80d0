/*
 * fuzz_fuse — the FUSE request sequence against fs/, with a fake session.
 *
 * The fs layer's request handlers (fs_private.h) are called as libfuse
 * would call them, with fake requests; the fuse_reply_* functions, the
 * interrupt registration and the poll notification are replaced at link
 * time (-Wl,--wrap) so every answer is seen.  The channels come from the
 * fake provider of tests/fakedir.h, registered through chandir as a device
 * registers its directories (vsock, vsock/listen, shared, parentless/svc);
 * the input plays each channel's guest side (opened, data, EOF,
 * no-receive, closed, reset, drained, incoming).
 *
 * The input is a sequence of records, each an op byte and four argument
 * bytes (a, b, c, d), then for LOOKUP and WRITE a length byte and that
 * many bytes:
 *   LOOKUP    parent (a % 5: root, vsock, vsock/listen, a node looked up
 *             earlier, else for a < 80 the fixed node (a / 5) % (fixed
 *             nodes + 2) + 1 (shared, parentless, parentless/svc, status
 *             and two unknown ids among them), else ino a), name (the
 *             bytes)
 *   OPEN      node (as LOOKUP's parent), flags (b: O_ACCMODE, O_NONBLOCK)
 *   READ      file a, size 1 << (b % 17), no lock owner if c >= 0xe0
 *             (a page-cache read: refused)
 *   WRITE     file a, O_NONBLOCK per b, the bytes; when c & 0x10, the
 *             bytes repeated to 512 times their length, in the request
 *             buffer libfuse would have filled (fs->buf: a parked write
 *             may take it)
 *   POLL      file a, with a poll handle unless b & 1
 *   INTERRUPT request a of those not answered yet
 *   FLUSH, RELEASE  file a (a FLUSH parks until what was written
 *             reached the guest)
 *   GETATTR, READDIR (after OPENDIR), name changes: node a; a GETATTR
 *             with b's top two bits set is a LISTXATTR (c odd) or a
 *             GETXATTR of user.chanfs.args (or, d odd, user.x), size d
 *   FORGET    once, a node looked up (a % count) as often as looked up
 *   GUEST     connection a, action b (see guest()), c/d arguments
 *   TURN      one loop turn (the flush: parked requests answered)
 * The windows are 4 KiB, 64 KiB for an input of odd length (large
 * writes can then be settled: answered with their rest still parked);
 * odd-numbered channels take parked writes (fakedir's parks).
 * "File a" is the a-th open file (a % count), as the kernel only names
 * files it opened; a request in flight on a released file is what the
 * kernel never sends, so RELEASE only comes for a file with no parked
 * request unless d & 1 (then fs must still answer each one once).
 *
 * Checked: what the guest takes of a channel that is not shared is, in
 * order, the bytes of the writes to it, of each exactly what its answer
 * said was written (a write not answered yet may have given any prefix);
 * each request is answered exactly once and, at the end (after
 * fs_files_free), every one was; READ replies no more than asked, WRITE
 * no more than given; an interrupted parked request is answered; no poll
 * handle or channel is left; every accept wait fs started it ended; each
 * shared open's reference was given back through the release op.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "chanfs/chan.h"
#include "chanfs/log.h"
#include "chanfs/ring.h"
#include "fakedir.h"
#include "fs_private.h"

#define CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "fuzz_fuse: %s:%d: check failed: %s\n", \
		        __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

#define MAX_REQS 64
#define MAX_FILES 16
#define MAX_CONNS 16
#define MAX_INOS 16
#define WIN 4096
#define WIN_BIG 65536
/* A request buffer as large as fs's mount asks for is not needed: the
 * largest write here, and a header's room before it. */
#define REQ_HDR 80
#define REQ_BUF (REQ_HDR + 255 * 512)

enum { OP_LOOKUP, OP_OPEN, OP_READ, OP_WRITE, OP_POLL, OP_INTERRUPT,
       OP_FLUSH, OP_RELEASE, OP_GETATTR, OP_READDIR, OP_FORGET, OP_NAMES,
       OP_GUEST, OP_TURN, OP_COUNT };

/* A request the harness sent: its address is the fuse_req_t. */
struct freq {
	bool live;               /* sent, not answered yet */
	bool interrupted;
	int op;
	size_t size;             /* READ: asked; WRITE: given */
	uint64_t fh;             /* OPEN: the answer's file handle */
	bool opened;             /* OPEN answered with a handle */
	fuse_interrupt_func_t fn;
	void *fn_data;
	struct seg *seg;         /* WRITE: its bytes in the stream's model */
	size_t min_ans;          /* WRITE: the guest has this much of it */
};

/* The model of one channel's host-to-guest stream: its writes in order,
 * each a copy of its bytes; what the guest took of the first. */
#define MAX_SEGS 32
struct seg {
	uint8_t *data;
	size_t len;
	size_t ans;              /* the answer's count, once answered */
	bool answered;
	size_t took;             /* bytes the guest took of it */
	struct freq *q;          /* its request, while q->seg is this */
};

struct stream {
	struct seg segs[MAX_SEGS];
	unsigned head, n;        /* live segs: head .. head + n - 1 */
	uint64_t fh;             /* the one file that writes it */
	bool untracked;          /* shared, or too many writes: not checked */
};

struct run {
	struct loop *loop;
	struct chan_set chans;
	struct chandirs dirs;
	struct fakedir dir;
	struct fs fs;
	struct freq reqs[MAX_REQS];
	uint64_t files[MAX_FILES];       /* open file handles */
	unsigned nfiles;
	uint64_t inos[MAX_INOS];         /* node ids LOOKUP answered */
	uint64_t lookups[MAX_INOS];      /* ... and how often */
	unsigned ninos;
	unsigned pollhandles;
	struct stream streams[MAX_CONNS];  /* by fakedir conns index */
};

static struct run *cur;

/* --- the fake session ------------------------------------------------- */

static struct freq *fq(fuse_req_t req)
{
	struct freq *q = (struct freq *)req;

	CHECK(q >= cur->reqs && q < cur->reqs + MAX_REQS);
	return q;
}

/* Every reply ends the request; a second one is a bug. */
static struct freq *answered(fuse_req_t req)
{
	struct freq *q = fq(req);

	CHECK(q->live);
	q->live = false;
	return q;
}

void *__wrap_fuse_req_userdata(fuse_req_t req);
void *__wrap_fuse_req_userdata(fuse_req_t req)
{
	(void)fq(req);
	return &cur->fs;
}

void __wrap_fuse_req_interrupt_func(fuse_req_t req, fuse_interrupt_func_t fn,
                                    void *data);
void __wrap_fuse_req_interrupt_func(fuse_req_t req, fuse_interrupt_func_t fn,
                                    void *data)
{
	struct freq *q = fq(req);

	CHECK(q->live);
	q->fn = fn;
	q->fn_data = data;
	/* As libfuse: an interrupt that came first is delivered at once. */
	if (fn && q->interrupted)
		fn(req, data);
}

int __wrap_fuse_reply_err(fuse_req_t req, int err);
static void seg_answered(struct freq *q, size_t count)
{
	struct seg *g = q->seg;

	/* Never fewer than the guest already has of it. */
	CHECK(q->min_ans <= count);
	if (!g)
		return;
	CHECK(g->took <= count);
	g->ans = count;
	g->answered = true;
}

int __wrap_fuse_reply_err(fuse_req_t req, int err)
{
	struct freq *q;

	CHECK(err >= 0);
	q = answered(req);
	if (q->op == OP_WRITE)
		seg_answered(q, 0);
	return 0;
}

void __wrap_fuse_reply_none(fuse_req_t req);
void __wrap_fuse_reply_none(fuse_req_t req)
{
	(void)answered(req);
}

int __wrap_fuse_reply_buf(fuse_req_t req, const char *buf, size_t size);
int __wrap_fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	struct freq *q = answered(req);
	struct fuse_open_out out;

	CHECK(size == 0 || buf);
	if (q->op == OP_OPEN) {
		/* fs_reply_open's raw fuse_open_out */
		CHECK(size == sizeof out);
		memcpy(&out, buf, sizeof out);
		CHECK(out.fh != 0);
		q->fh = out.fh;
		q->opened = true;
	} else if (q->op == OP_READ) {
		CHECK(size <= q->size);
	}
	return 0;
}

int __wrap_fuse_reply_iov(fuse_req_t req, const struct iovec *iov, int count);
int __wrap_fuse_reply_iov(fuse_req_t req, const struct iovec *iov, int count)
{
	struct freq *q = answered(req);
	size_t n = 0;
	int i;

	CHECK(q->op == OP_READ && count >= 0);
	for (i = 0; i < count; i++)
		n += iov[i].iov_len;
	CHECK(n <= q->size);
	return 0;
}

int __wrap_fuse_reply_write(fuse_req_t req, size_t count);
int __wrap_fuse_reply_write(fuse_req_t req, size_t count)
{
	struct freq *q = answered(req);

	CHECK(q->op == OP_WRITE && count <= q->size);
	seg_answered(q, count);
	return 0;
}

int __wrap_fuse_reply_poll(fuse_req_t req, unsigned revents);
int __wrap_fuse_reply_poll(fuse_req_t req, unsigned revents)
{
	(void)revents;
	CHECK(answered(req)->op == OP_POLL);
	return 0;
}

int __wrap_fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e);
int __wrap_fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	unsigned i;

	(void)answered(req);
	CHECK(e->ino != 0);
	for (i = 0; i < cur->ninos; i++)
		if (cur->inos[i] == e->ino)
			break;
	if (i == cur->ninos && cur->ninos < MAX_INOS)
		cur->inos[cur->ninos++] = e->ino;
	if (i < cur->ninos)
		cur->lookups[i]++;
	return 0;
}

int __wrap_fuse_reply_attr(fuse_req_t req, const struct stat *attr,
                           double timeout);
int __wrap_fuse_reply_attr(fuse_req_t req, const struct stat *attr,
                           double timeout)
{
	(void)attr;
	(void)timeout;
	(void)answered(req);
	return 0;
}

/* The size of an attribute (a GETXATTR or LISTXATTR of size 0). */
int __wrap_fuse_reply_xattr(fuse_req_t req, size_t count);
int __wrap_fuse_reply_xattr(fuse_req_t req, size_t count)
{
	(void)count;
	(void)answered(req);
	return 0;
}

int __wrap_fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi);
int __wrap_fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	(void)fi;
	answered(req)->opened = true;    /* OPENDIR */
	return 0;
}

/* Poll handles are the harness's allocations: fs must destroy each. */
void __wrap_fuse_pollhandle_destroy(struct fuse_pollhandle *ph);
void __wrap_fuse_pollhandle_destroy(struct fuse_pollhandle *ph)
{
	CHECK(ph && cur->pollhandles > 0);
	cur->pollhandles--;
	free(ph);
}

int __wrap_fuse_lowlevel_notify_poll(struct fuse_pollhandle *ph);
int __wrap_fuse_lowlevel_notify_poll(struct fuse_pollhandle *ph)
{
	CHECK(ph);
	return 0;
}

/* The guest takes the bytes of v from channel k: the next of its
 * stream's, a write answered giving exactly its count, one not answered
 * yet at most all of it. */
static void stream_took(unsigned k, const struct iovec *v)
{
	struct stream *st = &cur->streams[k];
	const uint8_t *p = v->iov_base;
	size_t left = v->iov_len, cap, m;
	struct seg *g;

	if (st->untracked)
		return;
	while (left) {
		CHECK(st->n > 0);       /* bytes nobody wrote */
		g = &st->segs[st->head];
		cap = g->answered ? g->ans : g->len;
		if (g->took == cap) {
			/* What follows is the next write's; of a write not
			 * answered yet the guest has all, so its answer must
			 * say all. */
			CHECK(st->n > 1);
			if (!g->answered && g->q && g->q->seg == g) {
				g->q->min_ans = g->len;
				g->q->seg = NULL;
			}
			free(g->data);
			st->head = (st->head + 1) % MAX_SEGS;
			st->n--;
			continue;
		}
		m = cap - g->took < left ? cap - g->took : left;
		CHECK(memcmp(p, g->data + g->took, m) == 0);
		g->took += m;
		p += m;
		left -= m;
	}
}

/* A write of buf[0, len) by file fh, about to be sent as q: its place in
 * its channel's stream. */
static void stream_write(struct freq *q, uint64_t fh, const char *buf,
                         size_t len)
{
	struct fs_file *f = (struct fs_file *)(uintptr_t)fh;
	struct stream *st;
	struct seg *g;
	unsigned k;

	for (k = 0; k < cur->dir.nconns; k++)
		if (cur->dir.conns[k] == f->c)
			break;
	if (k == cur->dir.nconns || k >= MAX_CONNS)
		return;
	st = &cur->streams[k];
	if (!st->fh)
		st->fh = fh;
	if (f->cd->mode == CHANDIR_SHARED || st->fh != fh ||
	    st->n == MAX_SEGS)
		st->untracked = true;
	if (st->untracked)
		return;
	g = &st->segs[(st->head + st->n) % MAX_SEGS];
	memset(g, 0, sizeof *g);
	g->data = malloc(len ? len : 1);
	CHECK(g->data);
	memcpy(g->data, buf, len);
	g->len = len;
	st->n++;
	q->seg = g;
	g->q = q;
}

/* b: what the guest of connection a does. */
static void guest(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	static const int errs[] = { ECONNRESET, ECONNREFUSED, ETIMEDOUT };
	static char data[256];
	struct iovec iov[3];
	struct chan *ch;
	unsigned i = a;
	int n;

	if ((b & 7) == 7) {
		/* a guest connects to name c (vsock/listen, or
		 * parentless/svc when d is odd, with args when d & 2) and
		 * waits to be accepted */
		char name[4];

		snprintf(name, sizeof name, "%u", c % 32);
		(void)fakedir_incoming(&cur->dir,
		                       d & 1 ? cur->dir.svc : cur->dir.listen,
		                       name, d & 2 ? "a=1" : NULL);
		return;
	}
	if (cur->dir.nconns == 0)
		return;
	ch = cur->dir.conns[i % cur->dir.nconns];
	switch (b & 7) {
	case 0:
		chan_opened(ch);
		break;
	case 1:
		memset(data, c, sizeof data);
		iov[0].iov_base = data;
		iov[0].iov_len = (size_t)d % sizeof data + 1;
		(void)chan_guest_send(ch, iov, 1);
		break;
	case 2:
		chan_guest_eof(ch);
		break;
	case 3:
		chan_guest_norecv(ch);
		break;
	case 4:
		chan_closed(ch);
		break;
	case 5:
		chan_reset(ch, errs[c % 3]);
		break;
	default:
		/* the guest takes what the host wrote: the window's bytes,
		 * then a parked write's */
		n = chan_guest_peek(ch, iov, (size_t)d * 64 + 1);
		if (n > 0) {
			size_t len = 0;
			int j;

			for (j = 0; j < n; j++) {
				stream_took(i % cur->dir.nconns, &iov[j]);
				len += iov[j].iov_len;
			}
			CHECK(len <= (size_t)d * 64 + 1);
			chan_guest_took(ch, len);
		}
		break;
	}
}

/* --- requests --------------------------------------------------------------- */

static struct freq *req_new(int op)
{
	unsigned i;

	for (i = 0; i < MAX_REQS; i++) {
		struct freq *q = &cur->reqs[i];

		if (!q->live) {
			memset(q, 0, sizeof *q);
			q->live = true;
			q->op = op;
			return q;
		}
	}
	return NULL;
}

/* A large write as libfuse hands it over: in fs->buf, after the
 * header, which a parked write may take (fs_on_fuse then gives the next
 * request a spare, or libfuse allocates one). */
static const char *big_write(const uint8_t *bytes, size_t len, size_t *size)
{
	struct fs *fs = &cur->fs;
	char *p;
	size_t i;

	if (!fs->buf.mem && fs->nspare)
		fs->buf.mem = fs->spare[--fs->nspare];
	if (!fs->buf.mem) {
		fs->buf.mem = malloc(REQ_BUF);
		CHECK(fs->buf.mem);
	}
	fs->buf.size = REQ_BUF;
	p = (char *)fs->buf.mem + REQ_HDR;
	for (i = 0; i < 512; i++)
		memcpy(p + i * len, bytes, len);
	*size = len * 512;
	return p;
}

static fuse_ino_t dir_ino(const char *path)
{
	const struct fs_node *n = fs_dir_node(&cur->fs, path);

	CHECK(n);
	return n->ino;
}

static fuse_ino_t pick_ino(uint8_t a)
{
	switch (a % 5) {
	case 0:
		return FS_INO_ROOT;
	case 1:
		return dir_ino("vsock");
	case 2:
		return dir_ino("vsock/listen");
	case 3:
		if (cur->ninos)
			return cur->inos[(a / 5) % cur->ninos];
		return cur->fs.status_ino;
	default:
		if (a < 80)
			return FS_INO_ROOT + (a / 5) % (cur->fs.nfixed + 2);
		return a;
	}
}

/* The file handle of open file a, or 0 when none is open. */
static uint64_t pick_file(uint8_t a, unsigned *slot)
{
	if (cur->nfiles == 0)
		return 0;
	*slot = a % cur->nfiles;
	return cur->files[*slot];
}

/* An open that was answered with a handle: the kernel's open file. */
static void collect_opens(void)
{
	unsigned i;

	for (i = 0; i < MAX_REQS; i++) {
		struct freq *q = &cur->reqs[i];

		if (q->op == OP_OPEN && q->opened && !q->live) {
			q->opened = false;
			if (cur->nfiles < MAX_FILES)
				cur->files[cur->nfiles++] = q->fh;
			else
				/* the kernel would release what it cannot
				 * hold: so do we, at once */
				cur->files[cur->nfiles - 1] = q->fh;
		}
	}
}

/* Requests parked on file fh (not answered yet). */
static bool file_busy(uint64_t fh)
{
	struct fs_file *f = (struct fs_file *)(uintptr_t)fh;

	return f->opening || !TAILQ_EMPTY(&f->reads) ||
	       !TAILQ_EMPTY(&f->writes) || !TAILQ_EMPTY(&f->flushes);
}

static void release(uint64_t fh, unsigned slot)
{
	struct fuse_file_info fi = { .fh = fh };
	struct freq *q = req_new(OP_RELEASE);

	if (!q)
		return;
	fs_op_release((fuse_req_t)q, 0, &fi);
	CHECK(!q->live);
	cur->files[slot] = cur->files[--cur->nfiles];
}

static void request(uint8_t op, uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                    const uint8_t *bytes, size_t len)
{
	struct fuse_file_info fi = { 0 };
	char name[64];
	struct freq *q;
	unsigned slot = 0, i;
	uint64_t fh;
	struct stat st;

	if (op == OP_GUEST) {
		guest(a, b, c, d);
		collect_opens();
		return;
	}
	if (op == OP_TURN) {
		CHECK(loop_turn(cur->loop, false) >= 0);
		/* An OPEN answered in the turn (a connect the guest took)
		 * is a file now, before a new request reuses its slot. */
		collect_opens();
		return;
	}
	if (op == OP_INTERRUPT) {
		/* the a-th request still waiting for its answer */
		unsigned n = 0;

		for (i = 0; i < MAX_REQS; i++)
			n += cur->reqs[i].live;
		if (n == 0)
			return;
		n = a % n;
		for (i = 0; i < MAX_REQS; i++) {
			q = &cur->reqs[i];
			if (q->live && n-- == 0) {
				q->interrupted = true;
				if (q->fn)
					q->fn((fuse_req_t)q, q->fn_data);
				return;
			}
		}
		return;
	}
	if (!(q = req_new(op)))
		return;
	switch (op) {
	case OP_LOOKUP:
		snprintf(name, sizeof name, "%.*s", (int)len, (const char *)bytes);
		fs_op_lookup((fuse_req_t)q, pick_ino(a), name);
		break;
	case OP_OPEN:
		fi.flags = (b & 3) | ((b & 4) ? O_NONBLOCK : 0);
		fs_op_open((fuse_req_t)q, pick_ino(a), &fi);
		break;
	case OP_READ:
	case OP_WRITE:
	case OP_POLL:
	case OP_FLUSH:
		if (!(fh = pick_file(a, &slot))) {
			q->live = false;
			return;
		}
		fi.fh = fh;
		fi.flags = (b & 4) ? O_NONBLOCK | O_RDWR : O_RDWR;
		/* read(2) and close(2) carry their caller's lock owner; a
		 * page-cache read (a fault on a private mapping) carries
		 * none, and fs refuses it: when c's top three bits are set
		 * (one in eight; zeroes, common in inputs, get an owner). */
		fi.lock_owner = (c & 0xe0) != 0xe0 ? 0x1000u + c : 0;
		if (op == OP_READ) {
			q->size = (size_t)1 << (b % 17);
			fs_op_read((fuse_req_t)q, 0, q->size, 0, &fi);
		} else if (op == OP_WRITE) {
			const char *buf = (const char *)bytes;

			q->size = len;
			if ((c & 0x10) && len)
				buf = big_write(bytes, len, &q->size);
			stream_write(q, fh, buf, q->size);
			fs_op_write((fuse_req_t)q, 0, buf, q->size, 0, &fi);
		} else if (op == OP_POLL) {
			struct fuse_pollhandle *ph = NULL;

			if (!(b & 1)) {
				ph = malloc(16);
				CHECK(ph);
				cur->pollhandles++;
			}
			fs_op_poll((fuse_req_t)q, 0, &fi, ph);
		} else {
			fs_op_flush((fuse_req_t)q, 0, &fi);
		}
		break;
	case OP_RELEASE:
		q->live = false;
		if ((fh = pick_file(a, &slot)) && (!file_busy(fh) || (d & 1)))
			release(fh, slot);
		return;
	case OP_GETATTR:
		if ((b & 0xc0) != 0xc0)
			fs_op_getattr((fuse_req_t)q, pick_ino(a), NULL);
		else if (c & 1)
			fs_op_listxattr((fuse_req_t)q, pick_ino(a), d);
		else
			fs_op_getxattr((fuse_req_t)q, pick_ino(a),
			               d & 1 ? "user.x" : "user.chanfs.args", d);
		break;
	case OP_READDIR:
		fs_op_opendir((fuse_req_t)q, pick_ino(a), &fi);
		if (!q->opened)
			break;      /* not a directory: no READDIR follows */
		q->opened = false;
		q->live = true;
		fs_op_readdir((fuse_req_t)q, pick_ino(a), (size_t)b * 16 + 1,
		              c % 8, &fi);
		break;
	case OP_FORGET:
		/* The kernel forgets only what it looked up, at most as
		 * often. */
		if (cur->ninos == 0) {
			q->live = false;
			return;
		}
		i = a % cur->ninos;
		fs_op_forget((fuse_req_t)q, cur->inos[i], 1);
		if (--cur->lookups[i] == 0) {
			cur->ninos--;
			cur->inos[i] = cur->inos[cur->ninos];
			cur->lookups[i] = cur->lookups[cur->ninos];
		}
		break;
	default:
		memset(&st, 0, sizeof st);
		switch (b % 5) {
		case 0:
			fs_op_setattr((fuse_req_t)q, pick_ino(a), &st, c, NULL);
			break;
		case 1:
			fs_op_mknod((fuse_req_t)q, pick_ino(a), "x", 0600, 0);
			break;
		case 2:
			fs_op_mkdir((fuse_req_t)q, pick_ino(a), "x", 0700);
			break;
		case 3:
			fs_op_unlink((fuse_req_t)q, pick_ino(a), "1");
			break;
		default:
			fs_op_create((fuse_req_t)q, pick_ino(a), "x", 0600, &fi);
			break;
		}
		break;
	}
	collect_opens();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run r;
	size_t pos = 0;
	unsigned i;

	memset(&r, 0, sizeof r);
	cur = &r;
	log_init("fuzz_fuse", getenv("FUZZ_FUSE_DEBUG") != NULL);
	r.loop = loop_new();
	CHECK(r.loop);
	chan_set_init(&r.chans);
	chandirs_init(&r.dirs);
	CHECK(fakedir_register(&r.dir, &r.dirs, &r.chans,
	                       size % 2 ? WIN_BIG : WIN, MAX_CONNS) == 0);
	r.dir.parks = true;
	r.fs.loop = r.loop;
	r.fs.chans = &r.chans;
	r.fs.uid = getuid();
	r.fs.gid = getgid();
	/* Longer than any run: a FLUSH waits for delivery, an interrupt
	 * or the end. */
	r.fs.linger_ms = 60000;
	clock_gettime(CLOCK_REALTIME, &r.fs.born);
	TAILQ_INIT(&r.fs.files);
	CHECK(fs_tree_init(&r.fs, &r.dirs) == 0);
	chandirs_on_ready(&r.dirs, fs_file_ready, &r.fs);

	while (size - pos >= 5) {
		const uint8_t *h = data + pos;
		size_t len = 0;

		pos += 5;
		if (h[0] % OP_COUNT == OP_LOOKUP || h[0] % OP_COUNT == OP_WRITE) {
			if (pos < size)
				len = data[pos++];
			if (len > size - pos)
				len = size - pos;
		}
		request(h[0] % OP_COUNT, h[1], h[2], h[3], h[4], data + pos,
		        len);
		pos += len;
	}

	/* The kernel's unmount: every file let go; nothing left waiting. */
	CHECK(loop_turn(r.loop, false) >= 0);
	fs_files_free(&r.fs);
	for (i = 0; i < MAX_REQS; i++)
		CHECK(!r.reqs[i].live);
	CHECK(r.pollhandles == 0);
	CHECK(r.dir.waits == 0);
	fakedir_forget(&r.dir);
	CHECK(loop_turn(r.loop, false) >= 0);
	CHECK(r.chans.count == 0);
	fs_tree_free(&r.fs);
	CHECK(r.fs.taken_bufs == 0);
	for (i = 0; i < MAX_CONNS; i++)
		while (r.streams[i].n) {
			free(r.streams[i].segs[r.streams[i].head].data);
			r.streams[i].head = (r.streams[i].head + 1) % MAX_SEGS;
			r.streams[i].n--;
		}
	free(r.fs.buf.mem);
	while (r.fs.nspare)
		free(r.fs.spare[--r.fs.nspare]);
	loop_free(r.loop);
	cur = NULL;
	return 0;
}
