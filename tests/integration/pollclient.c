/*
 * pollclient — a small poll(2)/select(2) client for chanfs files, used by
 * the vsock integration tests (and handy by hand).
 *
 *   pollclient [--select] pollin FILE    open; nothing readable yet; write
 *                                        "ping\n"; wait for readable; read
 *                                        "ping\n" back (a guest echo)
 *   pollclient [--select] pollout FILE   open; writable; write while
 *                                        writable until it is not (the
 *                                        window is full); wait until
 *                                        writable again (credit returned)
 *   pollclient [--select] pollhup FILE N open; wait for readable; read N
 *                                        bytes and then EOF; poll reports
 *                                        POLLHUP (select: readable, read 0)
 *   pollclient [--select] waitin FILE    open; wait for readable with no
 *                                        data yet sent by us (a guest that
 *                                        sends later); read what came
 *   pollclient epollin FILE N            edge-triggered epoll (EPOLLIN|
 *                                        EPOLLET), O_NONBLOCK: N rounds of
 *                                        write a line, wait for the edge,
 *                                        read to EAGAIN (a guest echo)
 *   pollclient epollout FILE N           edge-triggered epoll (EPOLLOUT|
 *                                        EPOLLET), O_NONBLOCK: N rounds of
 *                                        write to EAGAIN, wait for the
 *                                        edge (a guest that reads slowly)
 *
 * Prints "ok ..." lines and exits 0, or "FAIL: ..." and exits 1.  Waits are
 * bounded (60 s) against hangs; nothing is measured.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

#define PC_WAIT_MS 60000
#define PC_CHUNK 4096
#define PC_FILL_MAX (256u << 20)

static bool use_select;

static int fail(const char *fmt, const char *arg)
{
	printf("FAIL: ");
	printf(fmt, arg);
	printf("\n");
	return 1;
}

/* Wait for events on fd (poll or select); returns the poll-style revents
 * seen (0 on timeout). */
static short pc_wait(int fd, short events, int timeout_ms)
{
	if (!use_select) {
		struct pollfd p = { .fd = fd, .events = events };
		int r;

		do
			r = poll(&p, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		return r > 0 ? p.revents : 0;
	} else {
		fd_set rd, wr, ex;
		struct timeval tv = { timeout_ms / 1000,
		                      (timeout_ms % 1000) * 1000 };
		short rev = 0;
		int r;

		FD_ZERO(&rd);
		FD_ZERO(&wr);
		FD_ZERO(&ex);
		if (events & POLLIN)
			FD_SET(fd, &rd);
		if (events & POLLOUT)
			FD_SET(fd, &wr);
		FD_SET(fd, &ex);
		do
			r = select(fd + 1, &rd, &wr, &ex, &tv);
		while (r < 0 && errno == EINTR);
		if (r <= 0)
			return 0;
		if (FD_ISSET(fd, &rd))
			rev |= POLLIN;
		if (FD_ISSET(fd, &wr))
			rev |= POLLOUT;
		if (FD_ISSET(fd, &ex))
			rev |= POLLPRI;
		return rev;
	}
}

static int pc_pollin(int fd)
{
	char buf[16];
	ssize_t n;
	short rev;

	rev = pc_wait(fd, POLLIN, 0);
	if (rev & POLLIN)
		return fail("%s", "readable before anything was sent");
	if (write(fd, "ping\n", 5) != 5)
		return fail("write: %s", strerror(errno));
	rev = pc_wait(fd, POLLIN, PC_WAIT_MS);
	if (!(rev & POLLIN))
		return fail("%s", "never readable after the guest echoed");
	n = read(fd, buf, sizeof(buf));
	if (n != 5 || memcmp(buf, "ping\n", 5))
		return fail("%s", "read back something other than ping");
	printf("ok pollin\n");
	return 0;
}

static int pc_waitin(int fd)
{
	char buf[65536];
	ssize_t n;
	short rev;

	rev = pc_wait(fd, POLLIN, PC_WAIT_MS);
	if (!(rev & POLLIN))
		return fail("%s", "never readable while the guest sent");
	n = read(fd, buf, sizeof(buf));
	if (n <= 0)
		return fail("%s", "readable, but read gave no data");
	printf("ok waitin bytes=%zd\n", n);
	return 0;
}

static int pc_pollout(int fd)
{
	static char buf[PC_CHUNK];
	unsigned long filled = 0;
	short rev;

	memset(buf, 'x', sizeof(buf));
	rev = pc_wait(fd, POLLOUT, PC_WAIT_MS);
	if (!(rev & POLLOUT))
		return fail("%s", "not writable on a fresh connection");
	/* Writable means at least half the window is free, so a small
	 * blocking write never parks. */
	while (pc_wait(fd, POLLOUT, 0) & POLLOUT) {
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return fail("write: %s", strerror(errno));
		filled += sizeof(buf);
		if (filled > PC_FILL_MAX)
			return fail("%s", "still writable after 256 MiB: no "
			            "flow control");
	}
	printf("ok window full after %lu bytes\n", filled);
	rev = pc_wait(fd, POLLOUT, PC_WAIT_MS);
	if (!(rev & POLLOUT))
		return fail("%s", "never writable again as the guest read");
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return fail("write after POLLOUT: %s", strerror(errno));
	printf("ok pollout filled=%lu\n", filled);
	return 0;
}

static int pc_pollhup(int fd, unsigned long want)
{
	static char buf[65536];
	unsigned long got = 0;
	ssize_t n;
	short rev;

	for (;;) {
		rev = pc_wait(fd, POLLIN, PC_WAIT_MS);
		if (!(rev & (POLLIN | POLLHUP)))
			return fail("%s", "never readable while the guest "
			            "sent and closed");
		n = read(fd, buf, sizeof(buf));
		if (n < 0)
			return fail("read: %s", strerror(errno));
		if (n == 0)
			break;
		got += (unsigned long)n;
	}
	if (got != want) {
		printf("FAIL: read %lu bytes, want %lu\n", got, want);
		return 1;
	}
	rev = pc_wait(fd, POLLIN, 0);
	if (!use_select && !(rev & POLLHUP))
		return fail("%s", "no POLLHUP after the guest closed");
	if (!(rev & POLLIN))
		return fail("%s", "EOF not readable");
	if (read(fd, buf, 1) != 0)
		return fail("%s", "read after EOF did not return 0");
	printf("ok pollhup bytes=%lu\n", got);
	return 0;
}

/* An edge-triggered epoll set on fd for events; -1 on failure. */
static int pc_epoll(int fd, unsigned events)
{
	struct epoll_event ev = { .events = events | EPOLLET, .data.fd = fd };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -1;
	return ep;
}

/* Wait for an edge with one of events; 0 on timeout or error. */
static unsigned pc_epoll_wait(int ep, unsigned events)
{
	struct epoll_event ev;
	int r;

	for (;;) {
		r = epoll_wait(ep, &ev, 1, PC_WAIT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		if (ev.events & events)
			return ev.events;
		/* another edge (EPOLLOUT while we wait to read): again */
	}
}

/* Every echo is seen through an edge: a reader that drained to EAGAIN is
 * woken by the next arrival. */
static int pc_epollin(int fd, unsigned long rounds)
{
	char line[32], buf[64];
	unsigned long i;
	size_t len, got;
	ssize_t n;
	int ep = pc_epoll(fd, EPOLLIN);

	if (ep < 0)
		return fail("epoll: %s", strerror(errno));
	for (i = 0; i < rounds; i++) {
		len = (size_t)snprintf(line, sizeof(line), "ping %lu\n", i);
		if (write(fd, line, len) != (ssize_t)len)
			return fail("write: %s", strerror(errno));
		got = 0;
		while (got < len) {
			n = read(fd, buf + got, sizeof(buf) - got);
			if (n > 0) {
				got += (size_t)n;
				continue;
			}
			if (n == 0)
				return fail("%s", "EOF instead of the echo");
			if (errno != EAGAIN)
				return fail("read: %s", strerror(errno));
			if (!pc_epoll_wait(ep, EPOLLIN)) {
				printf("FAIL: round %lu: no EPOLLIN edge for the "
				       "echo (%zu of %zu bytes read)\n", i, got,
				       len);
				return 1;
			}
		}
		if (got != len || memcmp(buf, line, len))
			return fail("%s", "the echo differs from the line sent");
	}
	close(ep);
	printf("ok epollin rounds=%lu\n", rounds);
	return 0;
}

/* Every time the window fills, an edge says when it has room again. */
static int pc_epollout(int fd, unsigned long rounds)
{
	static char buf[PC_CHUNK];
	unsigned long i, filled = 0;
	ssize_t n;
	int ep = pc_epoll(fd, EPOLLOUT);

	if (ep < 0)
		return fail("epoll: %s", strerror(errno));
	memset(buf, 'x', sizeof(buf));
	for (i = 0; i < rounds; i++) {
		while ((n = write(fd, buf, sizeof(buf))) > 0) {
			filled += (unsigned long)n;
			if (filled > PC_FILL_MAX)
				return fail("%s", "never EAGAIN: no flow "
				            "control");
		}
		if (errno != EAGAIN)
			return fail("write: %s", strerror(errno));
		if (!pc_epoll_wait(ep, EPOLLOUT)) {
			printf("FAIL: round %lu: no EPOLLOUT edge after the "
			       "window filled (%lu bytes written)\n", i,
			       filled);
			return 1;
		}
	}
	close(ep);
	printf("ok epollout rounds=%lu bytes=%lu\n", rounds, filled);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode, *path;
	int i = 1, fd, r;

	if (i < argc && !strcmp(argv[i], "--select")) {
		use_select = true;
		i++;
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: pollclient [--select] pollin|pollout|"
		        "pollhup|waitin|epollin|epollout FILE [N]\n");
		return 2;
	}
	mode = argv[i];
	path = argv[i + 1];
	fd = open(path, O_RDWR | O_CLOEXEC |
	          (!strncmp(mode, "epoll", 5) ? O_NONBLOCK : 0));
	if (fd < 0)
		return fail("open: %s", strerror(errno));
	if (!strcmp(mode, "pollin"))
		r = pc_pollin(fd);
	else if (!strcmp(mode, "waitin"))
		r = pc_waitin(fd);
	else if (!strcmp(mode, "pollout"))
		r = pc_pollout(fd);
	else if (!strcmp(mode, "epollin") && argc - i >= 3)
		r = pc_epollin(fd, strtoul(argv[i + 2], NULL, 0));
	else if (!strcmp(mode, "epollout") && argc - i >= 3)
		r = pc_epollout(fd, strtoul(argv[i + 2], NULL, 0));
	else if (!strcmp(mode, "pollhup") && argc - i >= 3)
		r = pc_pollhup(fd, strtoul(argv[i + 2], NULL, 0));
	else
		r = fail("unknown mode %s", mode);
	close(fd);
	return r;
}
