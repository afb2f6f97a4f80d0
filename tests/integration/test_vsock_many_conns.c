/*
 * Scale: 1000 connections open at once, half opened by each side (500
 * host opens of MNT/vsock/7 against the guest's echo, 500 guest connects
 * to host port 6000 accepted through MNT/vsock/listen/6000 and echoed by
 * the host), random sizes, every byte checked on both sides.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

#define HALF 500
#define MAX_SIZE (16u << 10)

struct hc {
	int fd;
	bool ours;            /* host opened it (guest echo), else accepted */
	uint64_t seed, size;  /* ours: what we send */
	uint64_t wr, rd;
	bool done, bad;
};

/* Our connection: send the data, check it comes back. */
static void ours_io(struct hc *c, short rev)
{
	uint8_t buf[MAX_SIZE], want[MAX_SIZE];
	ssize_t n;

	if ((rev & POLLOUT) && c->wr < c->size) {
		size_t len = (size_t)(c->size - c->wr);

		guest_data_fill(c->seed, c->wr, buf, len);
		n = write(c->fd, buf, len);
		if (n <= 0) {
			fprintf(stderr, "write: %s\n", strerror(errno));
			c->bad = true;
			return;
		}
		c->wr += (uint64_t)n;
	}
	if (rev & (POLLIN | POLLHUP | POLLERR)) {
		n = read(c->fd, buf, sizeof(buf));
		if (n <= 0 || c->rd + (uint64_t)n > c->size) {
			fprintf(stderr, "read %zd: %s\n", n, strerror(errno));
			c->bad = true;
			return;
		}
		guest_data_fill(c->seed, c->rd, want, (size_t)n);
		if (memcmp(buf, want, (size_t)n)) {
			fprintf(stderr, "echo mismatch near %" PRIu64 "\n",
			        c->rd);
			c->bad = true;
			return;
		}
		c->rd += (uint64_t)n;
	}
	if (c->rd == c->size)
		c->done = true;
}

/* An accepted connection: echo until the guest's EOF. */
static void theirs_io(struct hc *c, short rev)
{
	uint8_t buf[MAX_SIZE];
	ssize_t n;

	if (!(rev & (POLLIN | POLLHUP | POLLERR)))
		return;
	n = read(c->fd, buf, sizeof(buf));
	if (n < 0) {
		fprintf(stderr, "accepted read: %s\n", strerror(errno));
		c->bad = true;
		return;
	}
	if (n == 0) {
		c->done = true;
		return;
	}
	c->rd += (uint64_t)n;
	/* the guest reads all it sent back, so this never parks long */
	if (vh_write_all(c->fd, buf, (size_t)n) != n) {
		fprintf(stderr, "accepted write: %s\n", strerror(errno));
		c->bad = true;
	}
}

static void test_thousand_concurrent_connections(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "-l", "6000", "--backlog", "600", NULL };
	char conn_arg[64];
	const char *gargs[] = { "-l", "7:echo", "-c", conn_arg, NULL };
	static struct hc c[2 * HALF];
	static struct pollfd pfd[2 * HALF];
	char lpath[256], cpath[256];
	uint64_t rng = h->seed;
	struct vh_guest *g;
	unsigned i, left;
	int r;

	assert_true(vh_raise_nofile(4 * HALF + 64) >= 2 * HALF + 64);
	snprintf(conn_arg, sizeof(conn_arg), "6000:echo-check=1-%u,n=%u",
	         MAX_SIZE, HALF);
	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	snprintf(lpath, sizeof(lpath), "%s", vh_path(h, "vsock/listen/6000"));
	snprintf(cpath, sizeof(cpath), "%s", vh_path(h, "vsock/7"));

	/* open all 1000 before moving a byte */
	for (i = 0; i < HALF; i++) {
		c[i].fd = open(lpath, O_RDWR | O_CLOEXEC);
		if (c[i].fd < 0)
			fprintf(stderr, "accept #%u: %s\n", i, strerror(errno));
		assert_true(c[i].fd >= 0);
	}
	for (i = HALF; i < 2 * HALF; i++) {
		c[i].fd = open(cpath, O_RDWR | O_CLOEXEC);
		if (c[i].fd < 0)
			fprintf(stderr, "connect #%u: %s\n", i, strerror(errno));
		assert_true(c[i].fd >= 0);
		c[i].ours = true;
		c[i].seed = guest_rand(&rng);
		c[i].size = 1 + guest_rand(&rng) % MAX_SIZE;
	}
	assert_non_null(vh_guest_wait(g, "open svc=echo", HALF,
	                              VH_TIMEOUT_MS));

	for (left = 2 * HALF; left;) {
		for (i = 0; i < 2 * HALF; i++) {
			pfd[i].fd = c[i].done ? -1 : c[i].fd;
			pfd[i].events = POLLIN;
			if (c[i].ours && c[i].wr < c[i].size)
				pfd[i].events |= POLLOUT;
		}
		r = poll(pfd, 2 * HALF, VH_TIMEOUT_MS);
		assert_true(r > 0);
		for (i = 0; i < 2 * HALF; i++) {
			if (c[i].done || !pfd[i].revents)
				continue;
			if (c[i].ours)
				ours_io(&c[i], pfd[i].revents);
			else
				theirs_io(&c[i], pfd[i].revents);
			assert_false(c[i].bad);
			if (c[i].done) {
				close(c[i].fd);
				left--;
			}
		}
	}

	fprintf(stderr, "chanfs VmHWM %ld KiB with %u connections\n",
	        vh_chanfs_hwm_kb(h), 2 * HALF);
	assert_non_null(vh_guest_wait(g, "conn svc=echo-check", HALF,
	                              VH_TIMEOUT_MS));
	assert_int_equal(vh_guest_count(g, "conn svc=echo-check check=ok"),
	                 HALF);
	assert_non_null(vh_guest_wait(g, "conn lport=7 svc=echo", HALF,
	                              VH_TIMEOUT_MS));
	assert_int_equal(vh_guest_count(g, "conn lport=7 svc=echo "
	                                "status=closed"), HALF);
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_thousand_concurrent_connections,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
