/*
 * fs internals shared by the fs/ files (not a module contract: see
 * include/chanfs/fs.h for that).
 *
 *   fs_session.c  mount, the /dev/fuse event, signals, the ops table
 *   fs_tree.c     the tree from the registered directories (chandir.h),
 *                 node ids, lookup, forget, getattr, setattr, readdir
 *   fs_file.c     open (connect, accept, shared), read, write, poll,
 *                 release, xattrs: parked requests and their service task
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
#include "chanfs/chandir.h"
#include "chanfs/fs.h"
#include "chanfs/loop.h"

struct chan;
struct event;

enum fs_kind {
	FS_DIR,          /* the root, a registered directory, or the parent of
	                    a two-component one nobody registered */
	FS_STATUS,
	FS_CHAN,         /* <directory>/<name>: a channel file */
};

/* The size connection files report (see fs_node_stat). */
#define FS_STREAM_SIZE 0x7ffff000

/* Fixed node ids: the root, then the directories in the order the tree
 * met them (a parent just before its first child), then status: with
 * vsock's two directories, vsock is 2, vsock/listen 3, status 4.
 * Channel nodes get ids from FS_INO_DYNAMIC up. */
#define FS_INO_ROOT    FUSE_ROOT_ID
#define FS_FIXED_MAX   (2 + 2 * CHANDIRS_MAX)
#define FS_INO_DYNAMIC 64
/* Buckets of the idle per-connection nodes, by (directory, name). */
#define FS_IDLE_SLOTS  256

/* Longest path of a node, for log lines ("vsock/listen/1234"). */
#define FS_PATH_MAX (3 * (CHANDIR_NAME_MAX + 1))

struct fs_node {
	uint64_t ino;
	enum fs_kind kind;
	struct chandir *cd;      /* FS_CHAN: its directory; FS_DIR: the
	                            registered one, or NULL (root, parent
	                            only) */
	char *name;              /* FS_CHAN: the channel's name; FS_DIR: the
	                            last component ("" for the root) */
	char *path;              /* FS_DIR: the whole path ("" for the root) */
	uint64_t parent;         /* FS_DIR: the parent directory's id */
	unsigned nsubdirs;       /* FS_DIR */
	uint64_t nlookup;        /* dynamic nodes: freed when FORGET zeroes it */
	struct timespec born;
	struct fs_node *next;    /* hash chain */
	struct fs_node *next_shared; /* fs->shared: SHARED names' nodes */
	/* Per-connection names (CONNECT, ACCEPT): a node the kernel still
	 * knows, with no open file and no lookup waiting for its OPEN, is
	 * idle and handed to the next lookup of its name (fs_tree.c). */
	unsigned nopen;          /* open files on it */
	bool claimed;            /* looked up, not opened since */
	bool idle;               /* in fs->idle */
	struct fs_node *next_idle;
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
	bool waiting;            /* OPEN: counted by the directory's wait op */
	size_t size;             /* READ: bytes asked for */
	const char *data;        /* WRITE: the part not yet taken, in own */
	void *own;               /* WRITE: our copy, or the request buffer
	                            taken from libfuse (taken_buf) */
	bool taken_buf;
	size_t len, off;         /* WRITE: data length, bytes of it taken */
	size_t taken;            /* WRITE: bytes of the whole request taken */
	bool parked;             /* WRITE: data + off is chan_park'ed */
	bool settled;            /* WRITE: answered (req is gone): its parked
	                            rest fitted in the window's room, and is
	                            read in place instead of copied there */
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
	struct chandir *cd;      /* FS_CHAN: the directory */
	char *name;              /* FS_CHAN: the name opened in it */
	struct chan *c;          /* channel files, once connected/accepted */
	struct chan_watcher watch; /* on c */
	char *text;              /* FS_STATUS snapshot */
	size_t text_len;
	struct fs_req *opening;  /* open still waiting for the guest */
	uint64_t room_mark;      /* a whole write waits for tx_bytes to reach
	                            it: then it fits (0: none waits) */
	struct fs_reqq reads, writes, flushes;
	bool rdonly;             /* opened O_RDONLY: nothing to flush */
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
	struct chandirs *dirs;
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
	int mount_sock;           /* fusermount3's auto_unmount socket, or -1 */
	pid_t watchdog;          /* holds mount_sock until we are gone, or 0 */
	unsigned linger_ms;      /* FLUSH waits this long for delivery */
	uid_t uid;
	gid_t gid;
	struct timespec born;
	struct fs_node fixed[FS_FIXED_MAX]; /* ids 1..nfixed */
	unsigned nfixed;
	uint64_t status_ino;
	struct fs_node *shared;  /* SHARED names looked up, by next_shared */
	struct fs_node *idle[FS_IDLE_SLOTS]; /* idle nodes by (dir, name) */
	struct fs_nodes nodes;
	TAILQ_HEAD(, fs_file) files;
};

/* fs_tree.c */
void fs_nodes_init(struct fs_nodes *n);
void fs_nodes_free(struct fs_nodes *n);
/* Build the fixed nodes from the directories registered in dirs (fs->dirs
 * set to it): 0, -ENOMEM, or -EEXIST (logged) when a directory is named
 * status.  fs_tree_free frees them and every dynamic node. */
int fs_tree_init(struct fs *fs, struct chandirs *dirs);
void fs_tree_free(struct fs *fs);
/* The fixed directory node at path ("" for the root), or NULL. */
const struct fs_node *fs_dir_node(const struct fs *fs, const char *path);
/* The node for ino (fixed or dynamic), or NULL. */
const struct fs_node *fs_node_get(struct fs *fs, fuse_ino_t ino);
/* A file of node ino was opened / is gone (fs_file.c): a per-connection
 * node with no open file and no pending lookup becomes idle. */
void fs_node_opened(struct fs *fs, fuse_ino_t ino);
void fs_node_closed(struct fs *fs, fuse_ino_t ino);
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
/* "vsock/1234" for a node, for log lines (len: FS_PATH_MAX). */
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
/* chandirs_on_ready receiver: wake the opens waiting on d's name. */
void fs_file_ready(void *arg, struct chandir *d, const char *name);
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                    size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
/* Answer everything parked with ECONNRESET, close and free every file. */
void fs_files_free(struct fs *fs);
/* Reply to an open with raw flags (libfuse 3.14 cannot say FOPEN_STREAM). */
int fs_reply_open(fuse_req_t req, uint64_t fh, uint32_t open_flags);

/* fs_status.c */
/* The status text as of now, malloc'ed into *text; 0 or -errno. */
int fs_status_snapshot(struct fs *fs, char **text, size_t *len);

#endif
