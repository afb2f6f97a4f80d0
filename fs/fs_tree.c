#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chanfs/log.h"
#include "chanfs/vsock.h"
#include "fs_private.h"

/* Fixed names change only with a new chanfs, so the kernel may cache
 * them; per-connection names must be looked up again at every open. */
#define FS_FIXED_TIMEOUT 60.0

static const struct fs_node fs_fixed[] = {
	{ .ino = FS_INO_ROOT, .kind = FS_ROOT },
	{ .ino = FS_INO_VSOCK, .kind = FS_VSOCK_DIR },
	{ .ino = FS_INO_LISTEN, .kind = FS_LISTEN_DIR },
	{ .ino = FS_INO_STATUS, .kind = FS_STATUS },
};

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

static struct fs_node *fs_nodes_add(struct fs_nodes *n, enum fs_kind kind,
                                    uint32_t port)
{
	struct fs_node *d;
	size_t slot;

	if (n->count >= n->nslots && fs_nodes_grow(n) < 0)
		return NULL;
	d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->ino = n->next_ino++;
	d->kind = kind;
	d->port = port;
	clock_gettime(CLOCK_REALTIME, &d->born);
	slot = d->ino & (n->nslots - 1);
	d->next = n->slots[slot];
	n->slots[slot] = d;
	n->count++;
	return d;
}

const struct fs_node *fs_node_get(struct fs *fs, fuse_ino_t ino)
{
	struct fs_node **p;

	if (ino >= FS_INO_ROOT && ino <= FS_INO_STATUS)
		return &fs_fixed[ino - FS_INO_ROOT];
	p = fs_nodes_find(&fs->nodes, ino);
	return p ? *p : NULL;
}

const char *fs_node_path(const struct fs_node *n, char *buf, size_t len)
{
	switch (n->kind) {
	case FS_ROOT:
		snprintf(buf, len, "/");
		break;
	case FS_VSOCK_DIR:
		snprintf(buf, len, "vsock");
		break;
	case FS_LISTEN_DIR:
		snprintf(buf, len, "vsock/listen");
		break;
	case FS_STATUS:
		snprintf(buf, len, "status");
		break;
	case FS_CONNECT:
		snprintf(buf, len, "vsock/%u", n->port);
		break;
	case FS_ACCEPT:
		snprintf(buf, len, "vsock/listen/%u", n->port);
		break;
	}
	return buf;
}

static bool fs_kind_is_dir(enum fs_kind k)
{
	return k == FS_ROOT || k == FS_VSOCK_DIR || k == FS_LISTEN_DIR;
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
	case FS_ROOT:
	case FS_VSOCK_DIR:
		st->st_mode = S_IFDIR | 0700;
		st->st_nlink = 3;	/* ".", the entry, one subdirectory */
		break;
	case FS_LISTEN_DIR:
		st->st_mode = S_IFDIR | 0700;
		st->st_nlink = 2;
		break;
	case FS_STATUS:
		/* Read-only text: the mode says so. */
		st->st_mode = S_IFREG | 0400;
		st->st_nlink = 1;
		break;
	case FS_CONNECT:
	case FS_ACCEPT:
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		/* A write past the size takes the kernel's inode lock
		 * exclusively, even with FOPEN_PARALLEL_DIRECT_WRITES: a
		 * second writer of the file would then wait there,
		 * deaf to signals, behind one parked for flow control.
		 * A stream has no size; this one is the largest single
		 * write(2) (MAX_RW_COUNT), so no write goes past it. */
		st->st_size = FS_STREAM_SIZE;
		break;
	}
	if (n->kind == FS_CONNECT || n->kind == FS_ACCEPT)
		st->st_atim = st->st_mtim = st->st_ctim = n->born;
	else
		st->st_atim = st->st_mtim = st->st_ctim = fs->born;
}

/* A port name is canonical decimal: no sign, no leading zero, below
 * VMADDR_PORT_ANY (-1U, "any port" in the vsock API). */
static bool fs_parse_port(const char *name, uint32_t *port)
{
	uint64_t v = 0;
	const char *p;

	if (!*name || (name[0] == '0' && name[1]))
		return false;
	for (p = name; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v >= UINT32_MAX)
			return false;
	}
	*port = (uint32_t)v;
	return true;
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

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_node *dir = fs_node_get(fs, parent);
	enum fs_kind kind;
	struct fs_node *d;
	uint32_t port;
	char path[64];

	if (!dir) {
		log_warnx("fs: LOOKUP %s: unknown parent node %lu", name,
		          (unsigned long)parent);
		fuse_reply_err(req, ENOENT);
		return;
	}
	switch (dir->kind) {
	case FS_ROOT:
		if (strcmp(name, "vsock") == 0)
			fs_reply_entry(req, fs, fs_node_get(fs, FS_INO_VSOCK),
			               FS_FIXED_TIMEOUT);
		else if (strcmp(name, "status") == 0)
			fs_reply_entry(req, fs, fs_node_get(fs, FS_INO_STATUS),
			               FS_FIXED_TIMEOUT);
		else
			goto noent;
		return;
	case FS_VSOCK_DIR:
		if (strcmp(name, "listen") == 0) {
			fs_reply_entry(req, fs, fs_node_get(fs, FS_INO_LISTEN),
			               FS_FIXED_TIMEOUT);
			return;
		}
		kind = FS_CONNECT;
		break;
	case FS_LISTEN_DIR:
		kind = FS_ACCEPT;
		break;
	default:
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!fs_parse_port(name, &port)) {
		log_info("fs: LOOKUP %s/%s: not a port number (0..4294967294)",
		         fs_node_path(dir, path, sizeof path), name);
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* A fresh id per lookup: every open of this name is its own inode. */
	d = fs_nodes_add(&fs->nodes, kind, port);
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	d->nlookup = 1;
	log_debug("fs: LOOKUP %s -> node %llu", fs_node_path(d, path, sizeof path),
	          (unsigned long long)d->ino);
	fs_reply_entry(req, fs, d, 0.0);
	return;
noent:
	log_debug("fs: LOOKUP %s: no such entry", name);
	fuse_reply_err(req, ENOENT);
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
	char path[64];

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
	if ((to_set & FUSE_SET_ATTR_SIZE) && fs_kind_is_dir(n->kind)) {
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
	if (!fs_kind_is_dir(n->kind)) {
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

/* vsock/listen lists the ports listening now (the first 256). */
#define FS_LISTEN_LISTED 256
#define FS_DIRENTS_MAX (4 + FS_LISTEN_LISTED)

static void fs_listen_ents(struct fs *fs, struct fs_dirent *ents,
                           size_t *count, char names[][12])
{
	uint32_t ports[FS_LISTEN_LISTED];
	size_t n, i;

	n = vsock_listening(fs->vsock, ports, FS_LISTEN_LISTED);
	if (n > FS_LISTEN_LISTED)
		n = FS_LISTEN_LISTED;
	for (i = 0; i < n; i++) {
		snprintf(names[i], sizeof names[i], "%u", ports[i]);
		/* Not a node id: each lookup of a port name gets a fresh
		 * one. */
		ents[(*count)++] = (struct fs_dirent){ names[i],
		                                       FS_INO_DYNAMIC - 1,
		                                       S_IFREG };
	}
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_node *n = fs_node_get(fs, ino);
	struct fs_dirent ents[FS_DIRENTS_MAX];
	char names[FS_LISTEN_LISTED][12];
	size_t count = 0, used = 0, i;
	char *buf;

	(void)fi;
	if (!n || !fs_kind_is_dir(n->kind)) {
		fuse_reply_err(req, n ? ENOTDIR : ENOENT);
		return;
	}
	ents[count++] = (struct fs_dirent){ ".", n->ino, S_IFDIR };
	switch (n->kind) {
	case FS_ROOT:
		ents[count++] = (struct fs_dirent){ "..", FS_INO_ROOT, S_IFDIR };
		ents[count++] = (struct fs_dirent){ "status", FS_INO_STATUS, S_IFREG };
		ents[count++] = (struct fs_dirent){ "vsock", FS_INO_VSOCK, S_IFDIR };
		break;
	case FS_VSOCK_DIR:
		/* Ports are not listed: each open of one is a new connection. */
		ents[count++] = (struct fs_dirent){ "..", FS_INO_ROOT, S_IFDIR };
		ents[count++] = (struct fs_dirent){ "listen", FS_INO_LISTEN, S_IFDIR };
		break;
	default:
		ents[count++] = (struct fs_dirent){ "..", FS_INO_VSOCK, S_IFDIR };
		if (n->kind == FS_LISTEN_DIR)
			fs_listen_ents(fs, ents, &count, names);
		break;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = off >= 0 ? (size_t)off : count; i < count; i++) {
		struct stat st = { .st_ino = ents[i].ino, .st_mode = ents[i].type };
		size_t need = fuse_add_direntry(req, buf + used, size - used,
		                                ents[i].name, &st, (off_t)(i + 1));

		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/* Names exist because chanfs serves them; none can be made or removed. */
static void fs_refuse_change(fuse_req_t req, const char *op, fuse_ino_t parent,
                             const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_node *dir = fs_node_get(fs, parent);
	char path[64];

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
