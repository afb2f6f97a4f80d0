/*
 * The FUSE session on the loop: mount, the /dev/fuse read event, signals,
 * and the table of operations.  libfuse never runs its own loop or
 * threads here: the session fd is nonblocking and read from a libevent
 * event, so every request is handled on the one loop thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/log.h"
#include "fs_private.h"

/* Big writes arrive whole (libfuse derives max_pages from it). */
#define FS_MAX_WRITE (1u << 20)

static void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = FS_MAX_WRITE;
	/* Asynchronous direct I/O may split one write into requests sent in
	 * parallel; a stream wants them whole and in order. */
	conn->want &= ~FUSE_CAP_ASYNC_DIO;
	/* "> vsock/N" then comes as an open flag, not a SETATTR. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	log_debug("fs: INIT protocol 7.%u, max_write %u", conn->proto_minor,
	          conn->max_write);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_op_init,
	.lookup = fs_op_lookup,
	.forget = fs_op_forget,
	.forget_multi = fs_op_forget_multi,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.mknod = fs_op_mknod,
	.mkdir = fs_op_mkdir,
	.unlink = fs_op_unlink,
	.rmdir = fs_op_unlink,
	.symlink = fs_op_symlink,
	.link = fs_op_link,
	.rename = fs_op_rename,
	.create = fs_op_create,
	.open = fs_op_open,
	.read = fs_op_read,
	.write = fs_op_write,
	.flush = fs_op_flush,
	.release = fs_op_release,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.poll = fs_op_poll,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
};

/* One request per readiness of /dev/fuse: the loop's flush (guest
 * buffers filled and signalled, parked requests answered) runs after
 * each, devices get their turn between requests, and no turn ends with a
 * read that finds nothing (the level-triggered event fires again while
 * requests wait).  Reading until EAGAIN cost that empty read per request
 * when requests come one at a time, as a writer's or an echo's do. */
static void fs_on_fuse(evutil_socket_t fd, short what, void *arg)
{
	struct fs *fs = arg;
	int res;

	(void)fd;
	(void)what;
	/* A parked write took the last buffer (fs_file.c). */
	if (!fs->buf.mem && fs->nspare)
		fs->buf.mem = fs->spare[--fs->nspare];
	res = fuse_session_receive_buf(fs->se, &fs->buf);
	if (res == -EINTR || res == -EAGAIN)
		return;
	if (fuse_session_exited(fs->se)) {
		/* ENODEV: fusermount3 -u or an aborted connection. */
		log_info("fs: %s was unmounted", fs->mountpoint);
		fs->unmounted = true;
		loop_stop(fs->loop);
		return;
	}
	if (res <= 0) {
		log_warnx("fs: reading /dev/fuse: %s",
		          res < 0 ? strerror(-res) : "end of file");
		loop_stop(fs->loop);
		return;
	}
	fuse_session_process_buf(fs->se, &fs->buf);
}

static void fs_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct fs *fs = arg;

	(void)what;
	log_info("fs: SIG%s: unmounting %s", sigabbrev_np((int)sig),
	         fs->mountpoint);
	loop_stop(fs->loop);
}

static int fs_add_events(struct fs *fs)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct event_base *base = loop_base(fs->loop);
	int fd = fuse_session_fd(fs->se);
	size_t i;

	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	fs->fuse_ev = event_new(base, fd, EV_READ | EV_PERSIST, fs_on_fuse, fs);
	if (!fs->fuse_ev || event_add(fs->fuse_ev, NULL) < 0)
		return -ENOMEM;
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		fs->sig_ev[i] = evsignal_new(base, sigs[i], fs_on_signal, fs);
		if (!fs->sig_ev[i] || event_add(fs->sig_ev[i], NULL) < 0)
			return -ENOMEM;
	}
	return 0;
}

static void fs_del_events(struct fs *fs)
{
	size_t i;

	if (fs->fuse_ev)
		event_free(fs->fuse_ev);
	fs->fuse_ev = NULL;
	for (i = 0; i < sizeof fs->sig_ev / sizeof fs->sig_ev[0]; i++) {
		if (fs->sig_ev[i])
			event_free(fs->sig_ev[i]);
		fs->sig_ev[i] = NULL;
	}
}

/* The argument vector libfuse parses: our fixed mount options first, the
 * user's -o after them. */
static int fs_fuse_args(struct fuse_args *args, const char *user_opts)
{
	if (fuse_opt_add_arg(args, "chanfs") < 0 ||
	    fuse_opt_add_arg(args, "-o") < 0 ||
	    fuse_opt_add_arg(args, "fsname=chanfs,subtype=chanfs,"
	                     "default_permissions") < 0)
		return -ENOMEM;
	if (user_opts && *user_opts &&
	    (fuse_opt_add_arg(args, "-o") < 0 ||
	     fuse_opt_add_arg(args, user_opts) < 0))
		return -ENOMEM;
	return 0;
}

/* --- auto_unmount ---------------------------------------------------------
 *
 * With -o auto_unmount, fusermount3 waits for its socket to us to close,
 * then unmounts if opening the mountpoint says ENOTCONN (the connection is
 * dead).  When we are killed, the kernel releases our files in no set
 * order: if the socket goes before /dev/fuse, fusermount3's open finds the
 * connection alive, its request is aborted a moment later (ECONNABORTED,
 * not ENOTCONN) and the dead mount stays (seen: 2 of 40 SIGKILLs under
 * load).  So a watchdog child holds a copy of the socket, and dies only
 * when we have (PR_SET_PDEATHSIG comes after all our files are released):
 * by then the connection is dead. */

#define FS_FD_SCAN 1024

/* The open descriptors below FS_FD_SCAN, as bits. */
static void fs_fds_open(uint64_t bits[FS_FD_SCAN / 64])
{
	int fd;

	memset(bits, 0, FS_FD_SCAN / 8);
	for (fd = 0; fd < FS_FD_SCAN; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			bits[fd / 64] |= 1ull << (fd % 64);
}

/* The one socket the mount opened (libfuse keeps fusermount3's socket
 * without telling), or -1. */
static int fs_mount_socket(const uint64_t before[FS_FD_SCAN / 64], int fuse_fd)
{
	uint64_t after[FS_FD_SCAN / 64];
	struct stat st;
	int fd, found = -1;

	fs_fds_open(after);
	for (fd = 0; fd < FS_FD_SCAN; fd++) {
		if (fd == fuse_fd || !(after[fd / 64] >> (fd % 64) & 1) ||
		    (before[fd / 64] >> (fd % 64) & 1))
			continue;
		if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
			if (found >= 0)
				return -1;
			found = fd;
		}
	}
	return found;
}

/* Fork the watchdog for fs->mount_sock (from the process that serves). */
static void fs_watchdog_start(struct fs *fs)
{
	pid_t parent = getpid(), pid;

	if (fs->mount_sock < 0)
		return;
	pid = fork();
	if (pid < 0) {
		log_warnx("fs: auto_unmount watchdog: fork: %s",
		          strerror(errno));
		return;
	}
	if (pid > 0) {
		fs->watchdog = pid;
		return;
	}
	/* The child: the socket alone, until the parent is gone. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(0);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (fs->mount_sock > 0)
		close_range(0, (unsigned)fs->mount_sock - 1, 0);
	close_range((unsigned)fs->mount_sock + 1, ~0u, 0);
	for (;;)
		pause();
}

static void fs_watchdog_stop(struct fs *fs)
{
	if (fs->watchdog <= 0)
		return;
	kill(fs->watchdog, SIGKILL);
	while (waitpid(fs->watchdog, NULL, 0) < 0 && errno == EINTR)
		;
	fs->watchdog = 0;
}

struct fs *fs_new(struct loop *l, struct chan_set *chans,
                  struct chandirs *dirs, const struct fs_config *cfg)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	bool auto_unmount = cfg->fuse_opts &&
	                    strstr(cfg->fuse_opts, "auto_unmount");
	uint64_t fds[FS_FD_SCAN / 64];
	struct fs *fs;
	int err;

	fs = calloc(1, sizeof *fs);
	if (!fs)
		return NULL;
	fs->mount_sock = -1;
	fs->loop = l;
	fs->chans = chans;
	fs->status = cfg->status;
	fs->status_arg = cfg->status_arg;
	fs->linger_ms = cfg->close_timeout_ms ? cfg->close_timeout_ms : 2000;
	fs->uid = getuid();
	fs->gid = getgid();
	clock_gettime(CLOCK_REALTIME, &fs->born);
	TAILQ_INIT(&fs->files);
	err = -fs_tree_init(fs, dirs);
	if (err)
		goto fail;
	fs->mountpoint = strdup(cfg->mountpoint);
	if (!fs->mountpoint || fs_fuse_args(&args, cfg->fuse_opts) < 0) {
		err = ENOMEM;
		goto fail;
	}
	fs->se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, fs);
	if (!fs->se) {
		/* libfuse printed the line naming the bad option. */
		err = EINVAL;
		goto fail;
	}
	if (auto_unmount)
		fs_fds_open(fds);
	if (fuse_session_mount(fs->se, fs->mountpoint) != 0) {
		log_warnx("fs: cannot mount on %s", fs->mountpoint);
		err = EIO;
		goto fail;
	}
	fs->mounted = true;
	if (auto_unmount)
		fs->mount_sock = fs_mount_socket(fds,
		                                 fuse_session_fd(fs->se));
	err = -fs_add_events(fs);
	if (err) {
		log_warnx("fs: cannot watch /dev/fuse: %s", strerror(err));
		goto fail;
	}
	chandirs_on_ready(dirs, fs_file_ready, fs);
	fuse_opt_free_args(&args);
	log_info("fs: mounted on %s", fs->mountpoint);
	return fs;
fail:
	fuse_opt_free_args(&args);
	fs_free(fs);
	errno = err;
	return NULL;
}

int fs_daemonize(struct fs *fs, bool foreground)
{
	if (foreground) {
		fs_watchdog_start(fs);
		return 0;
	}
	if (fuse_daemonize(0) != 0)
		return -EIO;
	fs_watchdog_start(fs);
	/* stderr is /dev/null now. */
	log_to_syslog();
	/* The child carries on with the parent's event base. */
	if (event_reinit(loop_base(fs->loop)) < 0)
		return -EIO;
	return 0;
}

bool fs_unmounted(const struct fs *fs)
{
	return fs->unmounted;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	fs_watchdog_stop(fs);
	fs_del_events(fs);
	fs_files_free(fs);
	if (fs->dirs)
		chandirs_on_ready(fs->dirs, NULL, NULL);
	if (fs->se) {
		/* After an outside unmount this only closes the fd. */
		if (fs->mounted)
			fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se);
	}
	free(fs->buf.mem);
	while (fs->nspare)
		free(fs->spare[--fs->nspare]);
	fs_tree_free(fs);
	free(fs->mountpoint);
	free(fs);
}
