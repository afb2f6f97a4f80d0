/*
 * close(2) keeps its promise (README, "what close guarantees"): it returns
 * 0 only once everything written reached guest buffers, and fails when it
 * cannot, so a writer never exits 0 after chanfs dropped its tail.
 *
 *  - A guest reading slowly: the tail left in the window when the writer
 *    closes takes longer than --close-timeout to drain and be read.  The
 *    close waits for the drain (bounded by the same time), and the wait
 *    for the guest's RST starts only once SHUTDOWN is sent, so the guest
 *    reads every byte; or, if the machine is too slow for the drain, the
 *    close says ETIMEDOUT.  Never 0 with bytes missing.
 *  - A guest not reading at all: close fails with ETIMEDOUT after the
 *    linger time; a non-blocking close does not wait and says EAGAIN.
 *  - Writes larger than the window: the rest of each that fits in the
 *    window is answered at once and read in place, not copied into the
 *    window; a close still waits for it, and a close that does not wait
 *    leaves it queued for the guest.
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
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define TOTAL (192u << 10)
#define CHUNK 4096

static void test_close_waits_for_a_slow_guest_to_have_the_tail(void **state)
{
	struct vh *h = *state;
	/* window 64K drains in ~650 ms at 100 B/ms, the guest's own 64K
	 * buffer is read in another ~650 ms: together more than the 1 s
	 * close timeout, each alone less */
	const char *cargs[] = { "--buf-size", "64K", "--close-timeout", "1000",
	                        NULL };
	const char *gargs[] = { "--buf-alloc", "64K", "-l", "8:slow=100",
	                        NULL };
	struct vh_guest *g;
	const char *l;
	uint64_t fnv;
	int fd, rc, err;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	fd = open(vh_path(h, "vsock/8"), O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	fnv = vh_write_stream(h, fd, TOTAL, CHUNK);
	assert_true(fnv != 0);
	errno = 0;
	rc = close(fd);
	err = errno;
	fprintf(stderr, "close: %d (%s)\n", rc, rc ? strerror(err) : "ok");

	l = vh_guest_wait(g, "conn lport=8 svc=slow", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	fprintf(stderr, "guest: %s\n", l);
	if (rc == 0) {
		/* 0 promises every byte */
		assert_true(vh_kv_u64(l, "rx") == TOTAL);
		assert_true(vh_kv_hex(l, "rx_fnv") == fnv);
		assert_non_null(strstr(l, "status=closed"));
	} else {
		assert_int_equal(err, ETIMEDOUT);
	}
	assert_int_equal(vh_guest_stop(g), 0);
}

/* The guest's end of connection port: every byte arrived, in order. */
static void guest_has(struct vh_guest *g, unsigned port, uint64_t total,
                      uint64_t fnv)
{
	char needle[64];
	const char *l;

	snprintf(needle, sizeof needle, "conn lport=%u svc=slow", port);
	l = vh_guest_wait(g, needle, 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	fprintf(stderr, "guest: %s\n", l);
	assert_true(vh_kv_u64(l, "rx") == total);
	assert_true(vh_kv_hex(l, "rx_fnv") == fnv);
	assert_non_null(strstr(l, "status=closed"));
}

#define BIG_TOTAL (768u << 10)
#define BIG_CHUNK (192u << 10)

/* A 64K window, a guest reading port 8 as svc ("slow=B/ms"), and
 * BIG_TOTAL bytes written to it in BIG_CHUNK writes: the guest, the fd
 * (*fd) and the bytes' checksum (*fnv). */
static struct vh_guest *big_writes(struct vh *h, const char *svc, int *fd,
                                   uint64_t *fnv)
{
	const char *cargs[] = { "--buf-size", "64K", NULL };
	const char *gargs[] = { "--buf-alloc", "64K", "-l", svc, NULL };
	struct vh_guest *g;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	*fd = open(vh_path(h, "vsock/8"), O_WRONLY | O_CLOEXEC);
	assert_true(*fd >= 0);
	*fnv = vh_write_stream(h, *fd, BIG_TOTAL, BIG_CHUNK);
	assert_true(*fnv != 0);
	return g;
}

static void test_close_waits_for_the_rest_of_large_writes(void **state)
{
	struct vh *h = *state;
	struct vh_guest *g;
	uint64_t fnv;
	int fd;

	g = big_writes(h, "8:slow=2000", &fd, &fnv);
	assert_int_equal(close(fd), 0);
	guest_has(g, 8, BIG_TOTAL, fnv);
	assert_int_equal(vh_guest_stop(g), 0);
}

static void test_a_close_that_does_not_wait_leaves_the_rest_of_a_large_write_queued(void **state)
{
	struct vh *h = *state;
	struct vh_guest *g;
	uint64_t fnv, total = BIG_TOTAL;
	ssize_t n;
	int fd, rc;

	g = big_writes(h, "8:slow=1000", &fd, &fnv);
	/* A non-blocking write makes the close non-blocking too (FLUSH
	 * carries no flags).  It waits behind the last write's rest. */
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	n = write(fd, "x", 1);
	if (n == 1) {
		fnv = guest_fnv1a(fnv, "x", 1);
		total++;
	} else {
		assert_int_equal(n, -1);
		assert_int_equal(errno, EAGAIN);
	}
	errno = 0;
	rc = close(fd);
	fprintf(stderr, "write: %zd, close: %d (%s)\n", n, rc,
	        rc ? strerror(errno) : "ok");
	if (rc)
		assert_int_equal(errno, EAGAIN);
	guest_has(g, 8, total, fnv);
	assert_int_equal(vh_guest_stop(g), 0);
}

/* 72K to a guest that takes 16K and reads nothing: the write returns once
 * its rest fits in the 64K window, and close waits for those bytes too. */
static void test_close_after_a_large_write_to_a_guest_that_does_not_read_fails(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "--buf-size", "64K", "--close-timeout", "300",
	                        NULL };
	const char *gargs[] = { "--buf-alloc", "16K",
	                        "-l", "9:slow=100,delay=600000", NULL };
	static uint8_t buf[72u << 10];
	struct vh_guest *g;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	fd = open(vh_path(h, "vsock/9"), O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, sizeof buf), sizeof buf);
	errno = 0;
	assert_int_equal(close(fd), -1);
	assert_int_equal(errno, ETIMEDOUT);
	vh_guest_kill(g);
}

/* Fill the guest's buffer and leave data in the window (the guest does
 * not read yet); returns the fd. */
static int fill(struct vh *h, int flags)
{
	static uint8_t buf[CHUNK];
	int fd = open(vh_path(h, "vsock/9"), O_WRONLY | O_CLOEXEC | flags);
	unsigned i;

	assert_true(fd >= 0);
	if (flags & O_NONBLOCK) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		size_t n;
		unsigned polls = 0;

		/* A full window says EAGAIN; but when the writer outran
		 * chanfs the window may be full with what the guest's 16K
		 * still takes in whole.  Write on as room comes until more
		 * than the guest's buffer went in: then data stays in the
		 * window however the two were scheduled. */
		assert_int_equal(write(fd, buf, CHUNK), CHUNK);
		for (n = CHUNK;;) {
			while (write(fd, buf, CHUNK) > 0)
				n += CHUNK;
			assert_int_equal(errno, EAGAIN);
			if (n > (16u << 10))
				break;
			assert_int_equal(poll(&pfd, 1, VH_TIMEOUT_MS), 1);
			polls++;
		}
		fprintf(stderr, "non-blocking fill: %zu bytes, %u polls\n",
		        n, polls);
		return fd;
	}
	/* the guest's 16K buffer, then half the 16K window: a blocking
	 * writer that parks on a full window is woken at half of it, which
	 * the guest's 16K always brings */
	for (i = 0; i < (24u << 10) / CHUNK; i++)
		assert_int_equal(write(fd, buf, CHUNK), CHUNK);
	return fd;
}

static void test_close_to_a_guest_that_does_not_read_fails(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "--buf-size", "16K", "--close-timeout", "300",
	                        NULL };
	const char *gargs[] = { "--buf-alloc", "16K",
	                        "-l", "9:slow=100,delay=600000", NULL };
	struct vh_guest *g;
	size_t logoff;
	char *log;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	logoff = vh_log_size(h);

	fd = fill(h, 0);
	errno = 0;
	assert_int_equal(close(fd), -1);
	assert_int_equal(errno, ETIMEDOUT);

	fd = fill(h, O_NONBLOCK);
	errno = 0;
	assert_int_equal(close(fd), -1);
	assert_int_equal(errno, EAGAIN);

	log = vh_log_since(h, logoff);
	assert_non_null(log);
	assert_non_null(strstr(log, "not delivered to the guest after 300 ms"));
	free(log);
	vh_guest_kill(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_close_waits_for_a_slow_guest_to_have_the_tail,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_close_to_a_guest_that_does_not_read_fails,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_close_waits_for_the_rest_of_large_writes,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_close_after_a_large_write_to_a_guest_that_does_not_read_fails,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_a_close_that_does_not_wait_leaves_the_rest_of_a_large_write_queued,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
