/*
 * Accepting guest connections: the guest connects to host port 5555
 * twice; two opens of MNT/vsock/listen/5555 get the two separate streams;
 * an O_NONBLOCK open with nobody waiting fails with EAGAIN; a blocking
 * open waits until the next guest connects.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

struct stream {
	const char *path;
	int err;
	uint64_t len, fnv;
};

/* open (blocking accept), read to EOF */
static void *drain(void *arg)
{
	struct stream *s = arg;
	char buf[65536];
	ssize_t r;
	int fd = open(s->path, O_RDONLY | O_CLOEXEC);

	s->fnv = GUEST_FNV_INIT;
	if (fd < 0) {
		s->err = errno;
		return NULL;
	}
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		s->fnv = guest_fnv1a(s->fnv, buf, (size_t)r);
		s->len += (uint64_t)r;
	}
	if (r < 0)
		s->err = errno;
	close(fd);
	return NULL;
}

static void test_listen_opens_accept_separate_streams(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "-l", "5555", NULL };
	/* the echo listener keeps each guest up until we stop it: a VMM that
	 * left would take its queued connections with it */
	const char *g1args[] = { "-l", "99:echo", "-c", "5555:send=1000",
	                         "-c", "5555:send=2000", NULL };
	const char *g2args[] = { "-l", "99:echo", "-c", "5555:send=3000",
	                         NULL };
	char path[256];
	struct stream s[3];
	struct vh_guest *g;
	const char *l;
	pthread_t th;
	unsigned i;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	snprintf(path, sizeof(path), "%s", vh_path(h, "vsock/listen/5555"));
	g = vh_start_guest(h, g1args);
	assert_non_null(g);

	memset(s, 0, sizeof(s));
	for (i = 0; i < 2; i++) {
		s[i].path = path;
		drain(&s[i]);
		assert_int_equal(s[i].err, 0);
	}
	/* two streams, one of each size, each with the guest's checksum */
	assert_true((s[0].len == 1000 && s[1].len == 2000) ||
	            (s[0].len == 2000 && s[1].len == 1000));
	for (i = 0; i < 2; i++) {
		char needle[64];

		snprintf(needle, sizeof(needle), "conn svc=send tx=%" PRIu64,
		         s[i].len);
		l = vh_guest_wait(g, needle, 1, VH_TIMEOUT_MS);
		assert_non_null(l);
		assert_true(vh_kv_hex(l, "tx_fnv") == s[i].fnv);
		assert_non_null(strstr(l, "status=closed"));
	}
	assert_int_equal(vh_guest_stop(g), 0);

	/* nobody waiting: O_NONBLOCK says EAGAIN */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EAGAIN);

	/* a blocking open waits for the next guest connection (a new VMM) */
	s[2].path = path;
	assert_int_equal(pthread_create(&th, NULL, drain, &s[2]), 0);
	g = vh_start_guest(h, g2args);
	assert_non_null(g);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(s[2].err, 0);
	assert_int_equal(s[2].len, 3000);
	l = vh_guest_wait(g, "conn svc=send tx=3000", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_true(vh_kv_hex(l, "tx_fnv") == s[2].fnv);
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_listen_opens_accept_separate_streams,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
