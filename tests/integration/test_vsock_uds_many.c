/*
 * 2000 clients connect to the --uds socket at once while chanfs has only
 * 256 fds: accepting pauses (one log line for the episode) without a busy
 * loop, the files keep working meanwhile, the clients wait in the
 * backlog, every one of them is answered OK in turn as others close, and
 * a client that comes afterwards still echoes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "uds_client.h"
#include "vsock_harness.h"

#define NSOCK 2000
#define CHANFS_NOFILE 256

static void test_uds_2000_sockets_at_once(void **state)
{
	struct vh *h = *state;
	char path[160], buf[8];
	const char *cargs[] = { "--uds", path, "--buf-size", "16K", NULL };
	const char *gargs[] = { "-l", "1234:echo", NULL };
	static struct pollfd p[NSOCK];
	static size_t got[NSOCK];
	static char line[NSOCK][24];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit rl, low;
	unsigned i, left = NSOCK, hp;
	struct vh_guest *g;
	size_t off;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/hv.sock", h->dir);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(rl.rlim_max >= NSOCK + 64);
	/* chanfs inherits the low limit; we take ours back after */
	low = rl;
	low.rlim_cur = CHANFS_NOFILE;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	fd = vh_start_chanfs(h, cargs);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(fd, 0);
	assert_true(vh_raise_nofile(NSOCK + 64) >= NSOCK + 64);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	off = vh_log_size(h);

	/* all at once: each connects (the backlog holds them) and sends its
	 * line before chanfs accepted it */
	strcpy(sa.sun_path, path);
	for (i = 0; i < NSOCK; i++) {
		p[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(p[i].fd >= 0);
		if (connect(p[i].fd, (struct sockaddr *)&sa, sizeof sa) < 0)
			fail_msg("connect %u: %s", i, strerror(errno));
		assert_int_equal(write(p[i].fd, "CONNECT 1234\n", 13), 13);
		p[i].events = POLLIN;
	}
	/* out of fds, chanfs still serves the files */
	assert_int_equal(uc_log_wait(h, off, "accept: Too many open files", 1),
	                 1);
	fd = open(vh_path(h, "vsock/1234"), O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(vh_write_all(fd, "file", 4), 4);
	assert_int_equal(uc_read_full(fd, buf, 4), 4);
	assert_memory_equal(buf, "file", 4);
	close(fd);

	/* every one is answered; we close each once it is, which gives
	 * chanfs the fds for the next ones */
	while (left) {
		int r = poll(p, NSOCK, VH_TIMEOUT_MS);

		if (r <= 0)
			fail_msg("%u sockets never answered", left);
		for (i = 0; i < NSOCK; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			n = read(p[i].fd, line[i] + got[i],
			         sizeof line[i] - 1 - got[i]);
			if (n <= 0)
				fail_msg("socket %u closed after '%.*s' (%s)",
				         i, (int)got[i], line[i],
				         n < 0 ? strerror(errno) : "EOF");
			got[i] += (size_t)n;
			if (!memchr(line[i], '\n', got[i]))
				continue;
			line[i][got[i]] = '\0';
			if (sscanf(line[i], "OK %u\n", &hp) != 1)
				fail_msg("socket %u: '%s'", i, line[i]);
			close(p[i].fd);
			p[i].fd = -1;
			left--;
		}
	}
	/* one episode, logged once */
	assert_int_equal(uc_log_count(h, off, "accept: Too many open files"),
	                 1);
	assert_int_equal(uc_log_wait(h, off, "accepting again", 1), 1);

	/* and afterwards a client still echoes */
	assert_int_equal(uc_echo_once(path, 1234, "after"), 0);
	assert_non_null(vh_guest_wait(g, "conn lport=1234 svc=echo rx=5", 1,
	                              VH_TIMEOUT_MS));
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_uds_2000_sockets_at_once,
		                                vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
