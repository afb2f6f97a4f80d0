/*
 * usock — UNIX stream sockets at a path (usock.h).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "chanfs/log.h"
#include "chanfs/usock.h"

/* Whether someone listens on the socket at sa: a live chanfs (or any
 * server) must keep its socket, a dead one's file may go.  Returns 0 when
 * nobody answers, -EADDRINUSE (logged) when someone does, -errno (logged)
 * when we cannot tell. */
static int usock_probe(const struct sockaddr_un *sa, const char *who)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int r, err;

	if (fd < 0) {
		log_warn("%s: socket", who);
		return -errno;
	}
	/* Non-blocking: a full backlog (EAGAIN) is a live listener too. */
	r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
	err = errno;
	close(fd);
	if (r == 0 || err == EAGAIN || err == EINPROGRESS) {
		log_warnx("%s: %s: another chanfs (or another program) is "
		          "listening there: refusing to take its socket",
		          who, sa->sun_path);
		return -EADDRINUSE;
	}
	if (err == ECONNREFUSED)
		return 0;
	log_warnx("%s: %s: cannot tell whether the socket is in use: %s",
	          who, sa->sun_path, strerror(err));
	return -err;
}

int usock_listen(const char *path, int backlog, const char *who)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		log_warnx("%s: %s: socket path too long", who, path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("%s: %s: exists and is not a socket", who,
			          path);
			return -EEXIST;
		}
		if ((fd = usock_probe(&sa, who)) < 0)
			return fd;
		log_info("%s: %s: replacing a stale socket (nobody answers "
		         "on it)", who, path);
		if (unlink(path) < 0) {
			log_warn("%s: %s: cannot remove stale socket", who, path);
			return -errno;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warn("%s: socket", who);
		return -errno;
	}
	/* chmod before listen: until listen() nobody can connect, so there
	 * is no window in which the socket is open to others. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    chmod(path, 0600) < 0 || listen(fd, backlog) < 0) {
		int err = errno;

		log_warn("%s: %s: cannot listen", who, path);
		close(fd);
		return -err;
	}
	return fd;
}

int usock_accept(int lfd, const char *who, const char *path)
{
	int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (c >= 0)
		return c;
	if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
		return -EAGAIN;
	c = -errno;
	log_warn("%s: %s: accept", who, path);
	return c;
}

int usock_connect(const char *path, bool *done)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		*done = true;
		return fd;
	}
	err = errno;
	if (err == EINPROGRESS) {
		*done = false;
		return fd;
	}
	close(fd);
	return -err;
}

int usock_connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

pid_t usock_peer_pid(int fd, uid_t *uid)
{
	struct ucred cr;
	socklen_t len = sizeof cr;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return 0;
	if (uid)
		*uid = cr.uid;
	return cr.pid;
}

bool usock_peer_gone(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLRDHUP };

	return poll(&pf, 1, 0) == 1 &&
	       (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}
