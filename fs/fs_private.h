/*
 * fs internals shared by the fs/ files (not a module contract: see
 * include/chanfs/fs.h for that).
 *
 *   fs_session.c  mount, the /dev/fuse event, signals, the ops table
 *   fs_tree.c     node ids, lookup, forget, getattr, setattr, readdir
 *   fs_file.c     open (connect, accept), read, write, poll, release:
 *                 parked requests and their service task
 *   fs_status.c   the status snapshot
 */
#ifndef CHANFS_FS_PRIVATE_H
#define CHANFS_FS_PRIVATE_H

#define FUSE_USE_VERSION 310

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "chanfs/chan.h"
#include "chanfs/fs.h"
#include "chanfs/loop.h"

struct chan;
struct event;

enum fs_kind {
	FS_ROOT,
	FS_VSOCK_DIR,
	FS_LISTEN_DIR,
	FS_STATUS,
	FS_CONNECT,      /* vsock/<port> */
	FS_ACCEPT,       /* vsock/listen/<port> */
};

/* The size connection files report (see fs_node_stat). */
#define FS_STREAM_SIZE 0x7ffff000

/* Fixed node ids; per-connection names get ids from FS_INO_DYNAMIC up. */
#define FS_INO_ROOT    FUSE_ROOT_ID
#define FS_INO_VSOCK   2
#define FS_INO_LISTEN  3
#define FS_INO_STATUS  4
#define FS_INO_DYNAMIC 16

struct fs_node {
	uint64_t ino;
	enum fs_kind kind;
	uint32_t port;           /* FS_CONNECT, FS_ACCEPT */
	uint64_t nlookup;        /* dynamic nodes: freed when FORGET zeroes it */
	struct timespec born;
	struct fs_node *next;    /* hash chain */
};

/* Dynamic nodes by id.  Ids only grow, so id & mask spreads them evenly. */
struct fs_nodes {
	struct fs_node **slots;
	size_t nslots;           /* power of two */
	size_t count;
	uint64_t next_ino;
};

enum fs_req_kind { FS_REQ_OPEN, FS_REQ_READ, FS_REQ_WRITE, FS_REQ_FLUSH };

/* A request that could not be answered at once. */
struct fs_req {
	fuse_req_t req;
	struct fs_file *file;
	enum fs_req_kind kind;
	bool interrupted;        /* set by the interrupt callback only */
	bool waiting;            /* OPEN: counted by vsock_accept_wait */
	size_t size;             /* READ: bytes asked for */
	const char *data;        /* WRITE: the part not yet taken, in own */
	void *own;               /* WRITE: our copy, or the request buffer
	                            taken from libfuse (taken_buf) */
	bool taken_buf;
	size_t len, off;         /* WRITE: data length, bytes of it taken */
	size_t taken;            /* WRITE: bytes of the whole request taken */
	bool parked;             /* WRITE: data + off is chan_park'ed */
	uint64_t mark;           /* FLUSH: chan_written() when it came */
	struct event *timer;     /* FLUSH: the linger time */
	bool expired;            /* FLUSH: the linger time is over */
	TAILQ_ENTRY(fs_req) link;
};
TAILQ_HEAD(fs_reqq, fs_req);

/* One open (or opening) file; its address is the FUSE file handle. */
struct fs_file {
	struct fs *fs;
	enum fs_kind kind;
	uint64_t ino;
	uint32_t port;
	struct chan *c;          /* channel files, once connected/accepted */
	struct chan_watcher watch; /* on c */
	char *text;              /* FS_STATUS snapshot */
	size_t text_len;
	struct fs_req *opening;  /* open still waiting for the guest */
	struct fs_reqq reads, writes, flushes;
	bool nonblock;           /* O_NONBLOCK as of the last open, read or
	                            write (FLUSH does not carry the flags) */
	struct fuse_pollhandle *ph;  /* latest poll handle, or NULL */
	bool edge;               /* a readiness edge since the last POLL
	                            reply or notification */
	struct loop_task task;   /* fs_file_service */
	TAILQ_ENTRY(fs_file) link;
};

/* A parked write of at least FS_TAKE_MIN bytes keeps libfuse's request
 * buffer instead of a copy, FS_TAKE_BUFS at most at a time (each is as big
 * as the largest request); FS_SPARE_BUFS of them are kept for reuse. */
#define FS_TAKE_MIN (32u << 10)
#define FS_TAKE_BUFS 16
#define FS_SPARE_BUFS 4

struct fs {
	struct loop *loop;
	struct chan_set *chans;
	struct vsock *vsock;
	void (*status)(void *arg, FILE *out); /* fs_config's */
	void *status_arg;
	struct fuse_session *se;
	struct fuse_buf buf;     /* reused for every request; a parked write
	                            may take it (mem NULL: libfuse allocates
	                            the next, or fs_on_fuse gives a spare) */
	void *spare[FS_SPARE_BUFS]; /* request buffers given back */
	unsigned nspare;
	unsigned taken_bufs;     /* held by parked writes (<= FS_TAKE_BUFS) */
	struct event *fuse_ev;
	struct event *sig_ev[3];
	char *mountpoint;
	bool mounted, unmounted;
	unsigned linger_ms;      /* FLUSH waits this long for delivery */
	uid_t uid;
	gid_t gid;
	struct timespec born;
	struct fs_nodes nodes;
	TAILQ_HEAD(, fs_file) files;
};

/* fs_tree.c */
void fs_nodes_init(struct fs_nodes *n);
void fs_nodes_free(struct fs_nodes *n);
/* The node for ino (fixed or dynamic), or NULL. */
const struct fs_node *fs_node_get(struct fs *fs, fuse_ino_t ino);
void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_op_forget_multi(fuse_req_t req, size_t count,
                        struct fuse_forget_data *forgets);
void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                   int to_set, struct fuse_file_info *fi);
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi);
void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                 mode_t mode, dev_t rdev);
void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                  mode_t mode, struct fuse_file_info *fi);
void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                 mode_t mode);
void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                   const char *name);
void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                const char *newname);
void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                  fuse_ino_t newparent, const char *newname,
                  unsigned int flags);
/* "vsock/1234" for a node, for log lines. */
const char *fs_node_path(const struct fs_node *n, char *buf, size_t len);

/* fs_file.c */
void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                struct fuse_file_info *fi);
void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                 size_t size, off_t off, struct fuse_file_info *fi);
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                struct fuse_pollhandle *ph);
/* vsock_on_incoming callback: wake the opens waiting on port. */
void fs_file_incoming(void *arg, uint32_t port);
/* Answer everything parked with ECONNRESET, close and free every file. */
void fs_files_free(struct fs *fs);
/* Reply to an open with raw flags (libfuse 3.14 cannot say FOPEN_STREAM). */
int fs_reply_open(fuse_req_t req, uint64_t fh, uint32_t open_flags);

/* fs_status.c */
/* The status text as of now, malloc'ed into *text; 0 or -errno. */
int fs_status_snapshot(struct fs *fs, char **text, size_t *len);

#endif
