/*
 * nullfs — the baseline of the vsock benchmark: a minimal FUSE file system
 * (low-level API, one thread, as chanfs) whose one file, "null", takes
 * every write whole and answers every read with zeros, direct_io and
 * non-seekable like a chanfs stream.  What chanfs costs beyond this is the
 * device and the channel.
 *
 *   nullfs [-f] [-o OPTIONS] MOUNTPOINT
 *
 * INIT asks for the same as chanfs: max_write 1 MiB, no asynchronous
 * direct I/O.
 */
#define FUSE_USE_VERSION 34

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <fuse_lowlevel.h>

#define NULLFS_INO 2
#define NULLFS_NAME "null"
#define NULLFS_MAX (1u << 20)

static const char nullfs_zeros[NULLFS_MAX];

static void nullfs_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0666;
		st->st_nlink = 1;
	}
}

static void nullfs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = NULLFS_MAX;
	conn->want &= ~FUSE_CAP_ASYNC_DIO;
}

static void nullfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	if (parent != FUSE_ROOT_ID || strcmp(name, NULLFS_NAME)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = NULLFS_INO;
	e.attr_timeout = 1.0;
	e.entry_timeout = 1.0;
	nullfs_stat(NULLFS_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void nullfs_getattr(fuse_req_t req, fuse_ino_t ino,
                           struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != NULLFS_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	nullfs_stat(ino, &st);
	fuse_reply_attr(req, &st, 1.0);
}

static void nullfs_open(fuse_req_t req, fuse_ino_t ino,
                        struct fuse_file_info *fi)
{
	if (ino != NULLFS_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	fi->direct_io = 1;
	fi->nonseekable = 1;
	fuse_reply_open(req, fi);
}

static void nullfs_read(fuse_req_t req, fuse_ino_t ino, size_t size,
                        off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)off;
	(void)fi;
	if (size > NULLFS_MAX)
		size = NULLFS_MAX;
	fuse_reply_buf(req, nullfs_zeros, size);
}

static void nullfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                         size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)off;
	(void)fi;
	fuse_reply_write(req, size);
}

static void nullfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
                           off_t off, struct fuse_file_info *fi)
{
	static const char *const names[] = { ".", "..", NULLFS_NAME };
	char buf[512];
	size_t len = 0;
	struct stat st;
	off_t i;

	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	for (i = off; i < 3; i++) {
		size_t n;

		nullfs_stat(i == 2 ? NULLFS_INO : FUSE_ROOT_ID, &st);
		n = fuse_add_direntry(req, buf + len, sizeof(buf) - len,
		                      names[i], &st, i + 1);
		if (n > sizeof(buf) - len)
			break;
		len += n;
	}
	fuse_reply_buf(req, buf, len < size ? len : size);
}

static const struct fuse_lowlevel_ops nullfs_ops = {
	.init = nullfs_init,
	.lookup = nullfs_lookup,
	.getattr = nullfs_getattr,
	.open = nullfs_open,
	.read = nullfs_read,
	.write = nullfs_write,
	.readdir = nullfs_readdir,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct fuse_session *se;
	int r = 1;

	if (fuse_parse_cmdline(&args, &opts) != 0)
		return 1;
	if (opts.show_help || !opts.mountpoint) {
		printf("usage: %s [-f] [-o OPTIONS] MOUNTPOINT\n", argv[0]);
		fuse_cmdline_help();
		free(opts.mountpoint);
		fuse_opt_free_args(&args);
		return opts.show_help ? 0 : 2;
	}
	se = fuse_session_new(&args, &nullfs_ops, sizeof(nullfs_ops), NULL);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	fuse_daemonize(opts.foreground);
	/* one thread, as chanfs */
	r = fuse_session_loop(se) ? 1 : 0;
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
out:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return r;
}
