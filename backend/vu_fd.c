/*
 * The fds a front-end hands over: what they are, learnt without a single
 * call that could reach their file system, and a thread that closes the
 * ones we cannot vouch for (vu.h, "Peer fds").
 *
 * Why a thread: closing a file on a FUSE mount sends FLUSH and waits for
 * the answer.  On chanfs's own mount only our loop can answer, so a close
 * from the loop would wait for itself for good (D state, SIGKILL does not
 * help); on someone else's hung mount it would wait for them.  The closer
 * waits instead, and the loop goes on answering.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chanfs/log.h"
#include "vu_priv.h"

struct vu_closer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int *fds;
	size_t n, cap;
	bool stop;           /* vu is gone: drain, then free ourselves */
};

enum vu_fd_kind vu_fd_classify(int fd, char *link, size_t len)
{
	static const char eventfd[] = "anon_inode:[eventfd]";
	char path[40];
	ssize_t n;
	int seals;

	/* readlink of /proc/self/fd/N is answered by the kernel from the
	 * dentry (d_path): it never asks the file's file system. */
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	n = readlink(path, link, len - 1);
	if (n < 0) {
		snprintf(link, len, "(no /proc/self/fd: %s)", strerror(errno));
		return VU_FD_OTHER;
	}
	link[n] = 0;
	if ((size_t)n == sizeof eventfd - 1 && !memcmp(link, eventfd,
	                                               (size_t)n))
		return VU_FD_EVENTFD;
	/* In-kernel objects with no file system behind them and nothing to
	 * wait for at close (a socket may linger: not these). */
	if (!strncmp(link, "pipe:", 5) || !strncmp(link, "anon_inode:", 11))
		return VU_FD_KERNEL;
	/* F_GET_SEALS is answered from the inode for shmem (memfd, tmpfs)
	 * and hugetlbfs files, and fails with EINVAL for every other file
	 * without calling into it. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return VU_FD_OTHER;
	return (seals & F_SEAL_SHRINK) ? VU_FD_SEALED : VU_FD_SHMEM;
}

const char *vu_fd_kind_name(enum vu_fd_kind k)
{
	switch (k) {
	case VU_FD_EVENTFD:
		return "an eventfd";
	case VU_FD_SEALED:
		return "a sealed memory file";
	case VU_FD_SHMEM:
		return "an unsealed memory file";
	case VU_FD_KERNEL:
		return "a pipe or another kernel object";
	case VU_FD_OTHER:
	case VU_FD_UNKNOWN:
		break;
	}
	return "a file, socket or device";
}

bool vu_fd_on_mount(const struct vu *vu, const char *link)
{
	size_t n;

	if (!vu->mountpoint)
		return false;
	n = strlen(vu->mountpoint);
	return !strncmp(link, vu->mountpoint, n) &&
	       (link[n] == '/' || link[n] == 0);
}

static void *vu_closer_run(void *arg)
{
	struct vu_closer *c = arg;
	sigset_t all;

	/* Signals are the loop's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&c->mu);
	for (;;) {
		int fd;

		while (c->n == 0 && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->n == 0)
			break;
		fd = c->fds[--c->n];
		pthread_mutex_unlock(&c->mu);
		close(fd);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->fds);
	free(c);
	return NULL;
}

/* Started on first use, so that it is born after fuse_daemonize's fork
 * (threads do not survive a fork). */
static struct vu_closer *vu_closer_get(struct vu *vu)
{
	struct vu_closer *c = vu->closer;
	pthread_t th;

	if (c)
		return c;
	if (!(c = calloc(1, sizeof *c)))
		return NULL;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&th, NULL, vu_closer_run, c) != 0) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
		free(c);
		return NULL;
	}
	pthread_detach(th);
	vu->closer = c;
	return c;
}

void vu_fd_close(struct vu *vu, int fd, enum vu_fd_kind kind)
{
	struct vu_closer *c;
	bool queued = false;

	char link[256];

	if (fd < 0)
		return;
	if (kind == VU_FD_UNKNOWN)
		kind = vu_fd_classify(fd, link, sizeof link);
	/* eventfds, pipes and shmem files have nothing to flush. */
	if (kind != VU_FD_OTHER) {
		close(fd);
		return;
	}
	if ((c = vu_closer_get(vu))) {
		pthread_mutex_lock(&c->mu);
		if (c->n == c->cap) {
			size_t cap = c->cap ? 2 * c->cap : 16;
			int *f = realloc(c->fds, cap * sizeof *f);

			if (f) {
				c->fds = f;
				c->cap = cap;
			}
		}
		if (c->n < c->cap) {
			c->fds[c->n++] = fd;
			queued = true;
			pthread_cond_signal(&c->cv);
		}
		pthread_mutex_unlock(&c->mu);
	}
	/* Leaking one fd beats waiting on ourselves. */
	if (!queued)
		log_warnx("vu: no closer thread: front-end fd %d left open", fd);
}

void vu_fd_close_conn(struct vu *vu, int fd)
{
	int queued = -1;

	if (fd < 0)
		return;
	/* Once shut down, nothing more can arrive; with no byte queued no
	 * peer fd rides along (fds travel with at least one byte), and the
	 * close cannot wait. */
	shutdown(fd, SHUT_RDWR);
	if (ioctl(fd, FIONREAD, &queued) == 0 && queued == 0) {
		close(fd);
		return;
	}
	vu_fd_close(vu, fd, VU_FD_OTHER);
}

void vu_fd_closer_free(struct vu *vu)
{
	struct vu_closer *c = vu->closer;

	if (!c)
		return;
	vu->closer = NULL;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}
