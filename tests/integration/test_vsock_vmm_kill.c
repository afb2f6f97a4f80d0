/*
 * The VMM dies mid-transfer: with the simulated guest killed (SIGKILL)
 * while five transfers run in both directions, every blocked read and
 * write on the open files ends with ECONNRESET and so does every later
 * one; nothing hangs.  A new VMM then connects and new connections work,
 * with the same chanfs process.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define NWORK 5
#define PROGRESS (1u << 20)

struct work {
	const char *what;
	int fd;
	bool writer;
	atomic_uint_fast64_t bytes;
	atomic_bool finished;
	int err;             /* errno that ended it (0: EOF) */
};

static void *work_run(void *arg)
{
	struct work *w = arg;
	static uint8_t zeros[65536];
	uint8_t buf[65536];

	for (;;) {
		ssize_t r = w->writer ? write(w->fd, zeros, sizeof(zeros)) :
		            read(w->fd, buf, sizeof(buf));

		if (r <= 0) {
			w->err = r < 0 ? errno : 0;
			break;
		}
		atomic_fetch_add(&w->bytes, (uint64_t)r);
	}
	atomic_store(&w->finished, true);
	return NULL;
}

static bool wait_until(bool (*cond)(struct work *), struct work *w, int ms)
{
	int i;

	for (i = 0; i < ms / 10; i++) {
		if (cond(w))
			return true;
		usleep(10000);
	}
	return cond(w);
}

static bool moved(struct work *w)
{
	return atomic_load(&w->bytes) >= PROGRESS || atomic_load(&w->finished);
}

static bool finished(struct work *w)
{
	return atomic_load(&w->finished);
}

static void test_vmm_killed_files_reset_then_reconnect(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "-l", "6000", NULL };
	const char *g1args[] = {
		"-l", "7:echo", "-l", "8:sink", "-l", "9:source=64G",
		"-c", "6000:send=64G", NULL,
	};
	const char *g2args[] = { "-l", "7:echo", NULL };
	struct work w[NWORK] = {
		{ .what = "echo writer", .writer = true },
		{ .what = "echo reader" },
		{ .what = "sink writer", .writer = true },
		{ .what = "source reader" },
		{ .what = "accepted reader" },
	};
	pthread_t th[NWORK];
	struct vh_guest *g;
	pid_t pid;
	unsigned i;
	char c;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	pid = h->chanfs;
	g = vh_start_guest(h, g1args);
	assert_non_null(g);

	w[0].fd = open(vh_path(h, "vsock/7"), O_RDWR | O_CLOEXEC);
	w[1].fd = w[0].fd;
	w[2].fd = open(vh_path(h, "vsock/8"), O_WRONLY | O_CLOEXEC);
	w[3].fd = open(vh_path(h, "vsock/9"), O_RDONLY | O_CLOEXEC);
	w[4].fd = open(vh_path(h, "vsock/listen/6000"), O_RDONLY | O_CLOEXEC);
	for (i = 0; i < NWORK; i++) {
		assert_true(w[i].fd >= 0);
		assert_int_equal(pthread_create(&th[i], NULL, work_run, &w[i]),
		                 0);
	}
	for (i = 0; i < NWORK; i++) {
		assert_true(wait_until(moved, &w[i], VH_TIMEOUT_MS));
		assert_false(atomic_load(&w[i].finished));
	}

	vh_guest_kill(g);

	for (i = 0; i < NWORK; i++) {
		bool done = wait_until(finished, &w[i], VH_TIMEOUT_MS);

		fprintf(stderr, "%s: %s after %" PRIu64 " bytes: %s\n",
		        w[i].what, done ? "ended" : "STILL BLOCKED",
		        (uint64_t)atomic_load(&w[i].bytes),
		        w[i].err ? strerror(w[i].err) : "EOF");
	}
	for (i = 0; i < NWORK; i++) {
		assert_true(atomic_load(&w[i].finished));
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].err, ECONNRESET);
	}
	/* and every later read and write says so too */
	for (i = 0; i < NWORK; i++) {
		if (i == 1)
			continue;
		if (i != 2) {
			assert_int_equal(read(w[i].fd, &c, 1), -1);
			assert_int_equal(errno, ECONNRESET);
		}
		if (i != 3 && i != 4) {
			assert_int_equal(write(w[i].fd, "x", 1), -1);
			assert_int_equal(errno, ECONNRESET);
		}
		close(w[i].fd);
	}

	/* a new VMM, the same chanfs: new connections work */
	assert_true(vh_chanfs_alive(h));
	g = vh_start_guest(h, g2args);
	assert_non_null(g);
	fd = open(vh_path(h, "vsock/7"), O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	for (i = 0; i < 16; i++) {
		/* ping-pong in pieces well inside the windows: an echo of one
		 * big write would fill both directions and stall */
		static uint8_t out[64 << 10], in[64 << 10];
		size_t got = 0;

		guest_data_fill(h->seed, i * sizeof(out), out, sizeof(out));
		assert_int_equal(vh_write_all(fd, out, sizeof(out)),
		                 sizeof(out));
		while (got < sizeof(in)) {
			ssize_t r = read(fd, in + got, sizeof(in) - got);

			assert_true(r > 0);
			got += (size_t)r;
		}
		assert_memory_equal(in, out, sizeof(in));
	}
	close(fd);
	assert_non_null(vh_guest_wait(g, "conn lport=7 svc=echo status=closed",
	                              1, VH_TIMEOUT_MS));
	assert_int_equal(h->chanfs, pid);
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_vmm_killed_files_reset_then_reconnect,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
