/*
 * uds_client — see uds_client.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "uds_client.h"
#include "vsock_harness.h"

/* An unbound stream socket and path's address: the fd or -errno. */
static int uc_socket(const char *path, struct sockaddr_un *sa)
{
	int fd;

	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa->sun_path)
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

int uc_dial(const char *path)
{
	struct sockaddr_un sa;
	int fd = uc_socket(path, &sa), rc;

	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int uc_listen(const char *path)
{
	struct sockaddr_un sa;
	int fd = uc_socket(path, &sa), rc;

	if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	                listen(fd, 64) < 0)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

short uc_poll(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	if (poll(&p, 1, ms) <= 0)
		return 0;
	return p.revents;
}

ssize_t uc_read_line(int fd, char *buf, size_t max)
{
	size_t n = 0;
	ssize_t r;

	while (n + 1 < max) {
		if (!uc_poll(fd, POLLIN, VH_TIMEOUT_MS))
			return -ETIMEDOUT;
		r = read(fd, buf + n, 1);
		if (r < 0 && errno == ECONNRESET && n == 0)
			break;   /* closed with our bytes unread: closed */
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

ssize_t uc_read_full(int fd, void *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	while (n < len) {
		if (!uc_poll(fd, POLLIN, VH_TIMEOUT_MS))
			return -ETIMEDOUT;
		r = read(fd, (char *)buf + n, len - n);
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

int uc_connect_port(const char *path, unsigned port, unsigned *host_port)
{
	char line[64];
	ssize_t n;
	int fd = uc_dial(path);

	if (fd < 0)
		return fd;
	n = snprintf(line, sizeof line, "CONNECT %u\n", port);
	if (vh_write_all(fd, line, (size_t)n) != n) {
		close(fd);
		return -EIO;
	}
	n = uc_read_line(fd, line, sizeof line);
	if (n <= 0) {
		close(fd);
		return n == 0 ? -ECONNRESET : (int)n;
	}
	if (sscanf(line, "OK %u\n", host_port) != 1) {
		fprintf(stderr, "uds: answer '%s'\n", line);
		close(fd);
		return -EPROTO;
	}
	return fd;
}

int uc_echo_once(const char *path, unsigned port, const char *msg)
{
	size_t len = strlen(msg);
	char buf[256];
	unsigned hp;
	ssize_t n;
	int fd = uc_connect_port(path, port, &hp);

	if (fd < 0)
		return fd;
	if (len > sizeof buf || vh_write_all(fd, msg, len) != (ssize_t)len) {
		close(fd);
		return -EIO;
	}
	n = uc_read_full(fd, buf, len);
	close(fd);
	if (n < 0)
		return (int)n;
	return (size_t)n == len && !memcmp(buf, msg, len) ? 0 : -EPROTO;
}

bool uc_closed(int fd)
{
	char c;
	ssize_t n;

	if (!uc_poll(fd, POLLIN, VH_TIMEOUT_MS))
		return false;
	n = read(fd, &c, 1);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

unsigned uc_log_count(const struct vh *h, size_t off, const char *needle)
{
	char *t = vh_log_since(h, off), *p;
	unsigned n = 0;

	for (p = t; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(t);
	return n;
}

unsigned uc_log_wait(const struct vh *h, size_t off, const char *needle,
                     unsigned n)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	unsigned got = 0, waited;

	for (waited = 0; waited < VH_TIMEOUT_MS; waited += 20) {
		got = uc_log_count(h, off, needle);
		if (got >= n)
			break;
		nanosleep(&ts, NULL);
	}
	return got;
}
