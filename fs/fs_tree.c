#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chanfs/chandir.h"
#include "chanfs/log.h"
#include "fs_private.h"

/* Fixed names change only with a new chanfs, so the kernel may cache
 * them; per-connection names must be looked up again at every open. */
#define FS_FIXED_TIMEOUT 60.0

void fs_nodes_init(struct fs_nodes *n)
{
	n->slots = NULL;
	n->nslots = 0;
	n->count = 0;
	n->next_ino = FS_INO_DYNAMIC;
}

void fs_nodes_free(struct fs_nodes *n)
{
	size_t i;

	for (i = 0; i < n->nslots; i++) {
		struct fs_node *d = n->slots[i], *next;

		for (; d; d = next) {
			next = d->next;
			free(d->name);
			free(d);
		}
	}
	free(n->slots);
	fs_nodes_init(n);
}

static int fs_nodes_grow(struct fs_nodes *n)
{
	size_t nslots = n->nslots ? n->nslots * 2 : 64, i;
	struct fs_node **slots = calloc(nslots, sizeof *slots);

	if (!slots)
		return -ENOMEM;
	for (i = 0; i < n->nslots; i++) {
		struct fs_node *d = n->slots[i], *next;

		for (; d; d = next) {
			next = d->next;
			d->next = slots[d->ino & (nslots - 1)];
			slots[d->ino & (nslots - 1)] = d;
		}
	}
	free(n->slots);
	n->slots = slots;
	n->nslots = nslots;
	return 0;
}

static struct fs_node **fs_nodes_find(struct fs_nodes *n, uint64_t ino)
{
	struct fs_node **p;

	if (!n->nslots)
		return NULL;
	for (p = &n->slots[ino & (n->nslots - 1)]; *p; p = &(*p)->next)
		if ((*p)->ino == ino)
			return p;
	return NULL;
}

/* A new channel node for name in cd. */
static struct fs_node *fs_nodes_add(struct fs_nodes *n, struct chandir *cd,
                                    const char *name)
{
	struct fs_node *d;
	size_t slot;

	if (n->count >= n->nslots && fs_nodes_grow(n) < 0)
		return NULL;
	d = calloc(1, sizeof *d);
	if (!d || !(d->name = strdup(name))) {
		free(d);
		return NULL;
	}
	d->ino = n->next_ino++;
	d->kind = FS_CHAN;
	d->cd = cd;
	clock_gettime(CLOCK_REALTIME, &d->born);
	slot = d->ino & (n->nslots - 1);
	d->next = n->slots[slot];
	n->slots[slot] = d;
	n->count++;
	return d;
}

/* A fixed node: the next id, with name and path copied (NULL and -ENOMEM
 * when out of memory). */
static struct fs_node *fs_fixed_add(struct fs *fs, enum fs_kind kind,
                                    const char *name, size_t name_len,
                                    const char *path, size_t path_len,
                                    uint64_t parent)
{
	struct fs_node *n = &fs->fixed[fs->nfixed];

	memset(n, 0, sizeof *n);
	n->ino = FS_INO_ROOT + fs->nfixed;
	n->kind = kind;
	n->parent = parent;
	n->name = strndup(name, name_len);
	n->path = strndup(path, path_len);
	if (!n->name || !n->path) {
		free(n->name);
		free(n->path);
		return NULL;
	}
	fs->nfixed++;
	return n;
}

/* The fixed directory parent has at name (name_len bytes), or NULL. */
static struct fs_node *fs_subdir(struct fs *fs, uint64_t parent,
                                 const char *name, size_t name_len)
{
	unsigned i;

	for (i = 1; i < fs->nfixed; i++) {
		struct fs_node *n = &fs->fixed[i];

		if (n->kind == FS_DIR && n->parent == parent &&
		    strlen(n->name) == name_len &&
		    !memcmp(n->name, name, name_len))
			return n;
	}
	return NULL;
}

/* The directory at path (one or two components) and its parent, made
 * when missing. */
static struct fs_node *fs_dir_make(struct fs *fs, const char *path)
{
	const char *slash = strchr(path, '/');
	size_t top_len = slash ? (size_t)(slash - path) : strlen(path);
	struct fs_node *top, *sub, *root = &fs->fixed[0];

	top = fs_subdir(fs, FS_INO_ROOT, path, top_len);
	if (!top) {
		top = fs_fixed_add(fs, FS_DIR, path, top_len, path, top_len,
		                   FS_INO_ROOT);
		if (!top)
			return NULL;
		root->nsubdirs++;
	}
	if (!slash)
		return top;
	sub = fs_subdir(fs, top->ino, slash + 1, strlen(slash + 1));
	if (!sub) {
		sub = fs_fixed_add(fs, FS_DIR, slash + 1, strlen(slash + 1),
		                   path, strlen(path), top->ino);
		if (!sub)
			return NULL;
		top->nsubdirs++;
	}
	return sub;
}

int fs_tree_init(struct fs *fs, struct chandirs *dirs)
{
	struct fs_node *n;
	unsigned i;

	fs->dirs = dirs;
	fs->nfixed = 0;
	fs->shared = NULL;
	fs_nodes_init(&fs->nodes);
	if (!fs_fixed_add(fs, FS_DIR, "", 0, "", 0, FS_INO_ROOT))
		return -ENOMEM;
	for (i = 0; i < dirs->count; i++) {
		struct chandir *cd = &dirs->dirs[i];

		if (!strncmp(cd->path, "status", 6) &&
		    (cd->path[6] == 0 || cd->path[6] == '/')) {
			log_warnx("fs: directory %s: the name status is taken "
			          "by the status file", cd->path);
			return -EEXIST;
		}
		n = fs_dir_make(fs, cd->path);
		if (!n)
			return -ENOMEM;
		n->cd = cd;
	}
	n = fs_fixed_add(fs, FS_STATUS, "status", 6, "status", 6, FS_INO_ROOT);
	if (!n)
		return -ENOMEM;
	fs->status_ino = n->ino;
	return 0;
}

void fs_tree_free(struct fs *fs)
{
	unsigned i;

	for (i = 0; i < fs->nfixed; i++) {
		free(fs->fixed[i].name);
		free(fs->fixed[i].path);
	}
	fs->nfixed = 0;
	fs->shared = NULL;
	memset(fs->idle, 0, sizeof fs->idle);
	fs_nodes_free(&fs->nodes);
}

const struct fs_node *fs_dir_node(const struct fs *fs, const char *path)
{
	unsigned i;

	for (i = 0; i < fs->nfixed; i++)
		if (fs->fixed[i].kind == FS_DIR &&
		    !strcmp(fs->fixed[i].path, path))
			return &fs->fixed[i];
	return NULL;
}

const struct fs_node *fs_node_get(struct fs *fs, fuse_ino_t ino)
{
	struct fs_node **p;

	if (ino >= FS_INO_ROOT && ino < FS_INO_ROOT + fs->nfixed)
		return &fs->fixed[ino - FS_INO_ROOT];
	p = fs_nodes_find(&fs->nodes, ino);
	return p ? *p : NULL;
}

const char *fs_node_path(const struct fs_node *n, char *buf, size_t len)
{
	if (n->kind == FS_CHAN)
		snprintf(buf, len, "%s/%s", n->cd->path, n->name);
	else if (n->kind == FS_DIR && n->ino == FS_INO_ROOT)
		snprintf(buf, len, "/");
	else
		snprintf(buf, len, "%s", n->path);
	return buf;
}

static void fs_node_stat(struct fs *fs, const struct fs_node *n,
                         struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = n->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	switch (n->kind) {
	case FS_DIR:
		st->st_mode = S_IFDIR | 0700;
		/* ".", the entry, each subdirectory's "..". */
		st->st_nlink = 2 + n->nsubdirs;
		break;
	case FS_STATUS:
		/* Read-only text: the mode says so. */
		st->st_mode = S_IFREG | 0400;
		st->st_nlink = 1;
		break;
	case FS_CHAN:
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		/* A write past the size takes the kernel's inode lock
		 * exclusively, even with FOPEN_PARALLEL_DIRECT_WRITES: a
		 * second writer of the file would then wait there,
		 * deaf to signals, behind one parked for flow control.
		 * A stream has no size; this one is the largest single
		 * write(2) (MAX_RW_COUNT), so no write goes past it.
		 * A shared name wants exactly that lock (its writers
		 * one at a time, each write whole): size 0. */
		if (n->cd->mode != CHANDIR_SHARED)
			st->st_size = FS_STREAM_SIZE;
		break;
	}
	if (n->kind == FS_CHAN)
		st->st_atim = st->st_mtim = st->st_ctim = n->born;
	else
		st->st_atim = st->st_mtim = st->st_ctim = fs->born;
}

static void fs_reply_entry(fuse_req_t req, struct fs *fs,
                           const struct fs_node *n, double timeout)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof e);
	e.ino = n->ino;
	e.generation = 0;
	fs_node_stat(fs, n, &e.attr);
	/* A connection's node is new at every lookup and its attributes
	 * never change: caching them spares the GETATTR of open's
	 * permission check (default_permissions). */
	e.attr_timeout = n->ino >= FS_INO_DYNAMIC ? FS_FIXED_TIMEOUT : timeout;
	e.entry_timeout = timeout;
	fuse_reply_entry(req, &e);
}

/* --- idle per-connection nodes ------------------------------------------- */

static struct fs_node **fs_idle_slot(struct fs *fs, const struct chandir *cd,
                                     const char *name)
{
	uint64_t h = 14695981039346656037ull ^ (uintptr_t)cd;

	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 1099511628211ull;
	return &fs->idle[h & (FS_IDLE_SLOTS - 1)];
}

static void fs_idle_put(struct fs *fs, struct fs_node *d)
{
	struct fs_node **slot = fs_idle_slot(fs, d->cd, d->name);

	d->next_idle = *slot;
	*slot = d;
	d->idle = true;
}

static void fs_idle_unlink(struct fs *fs, struct fs_node *d)
{
	struct fs_node **p;

	for (p = fs_idle_slot(fs, d->cd, d->name); *p; p = &(*p)->next_idle)
		if (*p == d) {
			*p = d->next_idle;
			break;
		}
	d->idle = false;
}

/* The idle node of name in cd, taken out of the idle set, or NULL. */
static struct fs_node *fs_idle_take(struct fs *fs, const struct chandir *cd,
                                    const char *name)
{
	struct fs_node *d;

	for (d = *fs_idle_slot(fs, cd, name); d; d = d->next_idle)
		if (d->cd == cd && !strcmp(d->name, name)) {
			fs_idle_unlink(fs, d);
			return d;
		}
	return NULL;
}

static struct fs_node *fs_dynamic_node(struct fs *fs, fuse_ino_t ino)
{
	struct fs_node **p;

	if (ino < FS_INO_DYNAMIC)
		return NULL;
	p = fs_nodes_find(&fs->nodes, ino);
	return p ? *p : NULL;
}

void fs_node_opened(struct fs *fs, fuse_ino_t ino)
{
	struct fs_node *d = fs_dynamic_node(fs, ino);

	if (!d)
		return;
	d->nopen++;
	d->claimed = false;
	if (d->idle)		/* opened without a lookup (/proc/PID/fd/N) */
		fs_idle_unlink(fs, d);
}

void fs_node_closed(struct fs *fs, fuse_ino_t ino)
{
	struct fs_node *d = fs_dynamic_node(fs, ino);

	if (!d || !d->nopen)
		return;
	if (!--d->nopen && !d->claimed && d->cd->mode != CHANDIR_SHARED)
		fs_idle_put(fs, d);
}

/* A SHARED name keeps one node while the kernel knows it: its writers
 * then share the inode, and with it the kernel's write lock. */
static struct fs_node *fs_shared_find(struct fs *fs, const struct chandir *cd,
                                      const char *name)
{
	struct fs_node *n;

	for (n = fs->shared; n; n = n->next_shared)
		if (n->cd == cd && !strcmp(n->name, name))
			return n;
	return NULL;
}

/* name in the channel directory cd: a node, or the error to answer. */
static int fs_lookup_chan(struct fs *fs, struct chandir *cd, const char *name,
                          struct fs_node **out)
{
	struct fs_node *d;

	if (!chandir_name_ok(name) || cd->ops->lookup(cd->ctx, name) < 0)
		return -ENOENT;
	if (cd->mode == CHANDIR_SHARED && (d = fs_shared_find(fs, cd, name))) {
		d->nlookup++;
		*out = d;
		return 0;
	}
	/* A per-connection name: its idle node if there is one (the
	 * kernel's revalidation of the dentry then keeps it, sparing a
	 * second LOOKUP), else a fresh id.  Either way the node is claimed
	 * until its OPEN, so two opens racing through lookup never share
	 * an inode (and with it the kernel's write lock). */
	if (cd->mode != CHANDIR_SHARED && (d = fs_idle_take(fs, cd, name))) {
		d->nlookup++;
		d->claimed = true;
		clock_gettime(CLOCK_REALTIME, &d->born);
		*out = d;
		return 0;
	}
	d = fs_nodes_add(&fs->nodes, cd, name);
	if (!d)
		return -ENOMEM;
	d->nlookup = 1;
	d->claimed = cd->mode != CHANDIR_SHARED;
	if (cd->mode == CHANDIR_SHARED) {
		d->next_shared = fs->shared;
		fs->shared = d;
	}
	*out = d;
	return 0;
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_node *dir = fs_node_get(fs, parent);
	struct fs_node *d;
	char path[FS_PATH_MAX];
	int rc;

	if (!dir) {
		log_warnx("fs: LOOKUP %s: unknown parent node %lu", name,
		          (unsigned long)parent);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (dir->kind != FS_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (dir->ino == FS_INO_ROOT && !strcmp(name, "status")) {
		fs_reply_entry(req, fs, fs_node_get(fs, fs->status_ino),
		               FS_FIXED_TIMEOUT);
		return;
	}
	d = fs_subdir(fs, dir->ino, name, strlen(name));
	if (d) {
		fs_reply_entry(req, fs, d, FS_FIXED_TIMEOUT);
		return;
	}
	if (!dir->cd) {
		log_debug("fs: LOOKUP %s: no such entry in %s", name,
		          fs_node_path(dir, path, sizeof path));
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = fs_lookup_chan(fs, dir->cd, name, &d);
	if (rc < 0) {
		log_debug("fs: LOOKUP %s/%s: %s", dir->path, name,
		          strerror(-rc));
		fuse_reply_err(req, -rc);
		return;
	}
	log_debug("fs: LOOKUP %s -> node %llu", fs_node_path(d, path, sizeof path),
	          (unsigned long long)d->ino);
	fs_reply_entry(req, fs, d, 0.0);
}

static void fs_forget_one(struct fs *fs, uint64_t ino, uint64_t nlookup)
{
	struct fs_node **p, *d;

	if (ino < FS_INO_DYNAMIC)
		return;		/* fixed nodes live as long as the mount */
	p = fs_nodes_find(&fs->nodes, ino);
	if (!p) {
		log_warnx("fs: FORGET: unknown node %llu",
		          (unsigned long long)ino);
		return;
	}
	d = *p;
	d->nlookup = nlookup >= d->nlookup ? 0 : d->nlookup - nlookup;
	if (d->nlookup)
		return;
	*p = d->next;
	fs->nodes.count--;
	if (d->idle)
		fs_idle_unlink(fs, d);
	if (d->cd->mode == CHANDIR_SHARED) {
		struct fs_node **s;

		for (s = &fs->shared; *s; s = &(*s)->next_shared)
			if (*s == d) {
				*s = d->next_shared;
				break;
			}
	}
	free(d->name);
	free(d);
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_forget_one(fuse_req_userdata(req), ino, nlookup);
	fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count,
                        struct fuse_forget_data *forgets)
{
	struct fs *fs = fuse_req_userdata(req);
	size_t i;

	for (i = 0; i < count; i++)
		fs_forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_node *n = fs_node_get(fs, ino);
	struct stat st;

	(void)fi;
	if (!n) {
		log_warnx("fs: GETATTR: unknown node %lu", (unsigned long)ino);
		fuse_reply_err(req, ENOENT);
		return;
	}
	fs_node_stat(fs, n, &st);
	fuse_reply_attr(req, &st, n->ino < FS_INO_DYNAMIC ? FS_FIXED_TIMEOUT : 0.0);
}

/* Truncation is accepted and ignored (a shell's "> vsock/N" may send it):
 * a stream has no size.  Anything else would pretend to change what is
 * fixed. */
void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                   int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_node *n = fs_node_get(fs, ino);
	const int harmless = FUSE_SET_ATTR_SIZE;
	struct stat st;
	char path[FS_PATH_MAX];

	(void)attr;
	(void)fi;
	if (!n) {
		log_warnx("fs: SETATTR: unknown node %lu", (unsigned long)ino);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (to_set & ~harmless) {
		log_info("fs: SETATTR %s: attributes 0x%x cannot be changed",
		         fs_node_path(n, path, sizeof path), to_set & ~harmless);
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && n->kind == FS_DIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	fs_node_stat(fs, n, &st);
	fuse_reply_attr(req, &st, n->ino < FS_INO_DYNAMIC ? FS_FIXED_TIMEOUT : 0.0);
}

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_node *n = fs_node_get(fs, ino);

	if (!n) {
		log_warnx("fs: OPENDIR: unknown node %lu", (unsigned long)ino);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->kind != FS_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

struct fs_dirent {
	const char *name;
	uint64_t ino;
	mode_t type;
};

/* A directory's list op names at most this many (the first ones). */
#define FS_LISTED_MAX 256
#define FS_DIRENTS_MAX (3 + FS_FIXED_MAX + FS_LISTED_MAX)

struct fs_dirents {
	struct fs_dirent ents[FS_DIRENTS_MAX];
	size_t count;
	char *names[FS_LISTED_MAX];  /* the list op's names, copied */
	size_t nnames;
};

static void fs_dirents_add(struct fs_dirents *d, const char *name,
                           uint64_t ino, mode_t type)
{
	if (d->count < FS_DIRENTS_MAX)
		d->ents[d->count++] = (struct fs_dirent){ name, ino, type };
}

/* The list op's add: a name the directory holds now. */
static void fs_dirents_listed(void *arg, const char *name)
{
	struct fs_dirents *d = arg;
	char *copy;

	if (d->nnames >= FS_LISTED_MAX || !chandir_name_ok(name) ||
	    !(copy = strdup(name)))
		return;
	d->names[d->nnames++] = copy;
	/* Not a node id: each lookup of a per-open name gets a fresh one. */
	fs_dirents_add(d, copy, FS_INO_DYNAMIC - 1, S_IFREG);
}

static void fs_dirents_fill(struct fs *fs, const struct fs_node *n,
                            struct fs_dirents *d)
{
	unsigned i;

	fs_dirents_add(d, ".", n->ino, S_IFDIR);
	fs_dirents_add(d, "..", n->parent, S_IFDIR);
	if (n->ino == FS_INO_ROOT)
		fs_dirents_add(d, "status", fs->status_ino, S_IFREG);
	for (i = 1; i < fs->nfixed; i++)
		if (fs->fixed[i].kind == FS_DIR && fs->fixed[i].parent == n->ino)
			fs_dirents_add(d, fs->fixed[i].name, fs->fixed[i].ino,
			               S_IFDIR);
	/* Names are listed when the directory lists them (vsock/<port> is
	 * not: each open of one is a new connection). */
	if (n->cd && n->cd->ops->list)
		n->cd->ops->list(n->cd->ctx, fs_dirents_listed, d);
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_node *n = fs_node_get(fs, ino);
	struct fs_dirents *d;
	size_t used = 0, i;
	char *buf;

	(void)fi;
	if (!n || n->kind != FS_DIR) {
		fuse_reply_err(req, n ? ENOTDIR : ENOENT);
		return;
	}
	d = calloc(1, sizeof *d);
	buf = malloc(size ? size : 1);
	if (!d || !buf) {
		free(d);
		free(buf);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fs_dirents_fill(fs, n, d);
	for (i = off >= 0 ? (size_t)off : d->count; i < d->count; i++) {
		struct stat st = { .st_ino = d->ents[i].ino,
		                   .st_mode = d->ents[i].type };
		size_t need = fuse_add_direntry(req, buf + used, size - used,
		                                d->ents[i].name, &st,
		                                (off_t)(i + 1));

		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
	for (i = 0; i < d->nnames; i++)
		free(d->names[i]);
	free(d);
}

/* Names exist because chanfs serves them; none can be made or removed. */
static void fs_refuse_change(fuse_req_t req, const char *op, fuse_ino_t parent,
                             const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_node *dir = fs_node_get(fs, parent);
	char path[FS_PATH_MAX];

	log_info("fs: %s %s/%s: the tree is fixed, names cannot be created or removed",
	         op, dir ? fs_node_path(dir, path, sizeof path) : "?", name);
	fuse_reply_err(req, EPERM);
}

void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                 mode_t mode, dev_t rdev)
{
	(void)mode;
	(void)rdev;
	fs_refuse_change(req, "MKNOD", parent, name);
}

void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                  mode_t mode, struct fuse_file_info *fi)
{
	(void)mode;
	(void)fi;
	fs_refuse_change(req, "CREATE", parent, name);
}

void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                 mode_t mode)
{
	(void)mode;
	fs_refuse_change(req, "MKDIR", parent, name);
}

void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_refuse_change(req, "UNLINK", parent, name);
}

void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                   const char *name)
{
	(void)link;
	fs_refuse_change(req, "SYMLINK", parent, name);
}

void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                const char *newname)
{
	(void)ino;
	fs_refuse_change(req, "LINK", newparent, newname);
}

void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                  fuse_ino_t newparent, const char *newname,
                  unsigned int flags)
{
	(void)newparent;
	(void)newname;
	(void)flags;
	fs_refuse_change(req, "RENAME", parent, name);
}
