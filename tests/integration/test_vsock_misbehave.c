/*
 * A misbehaving guest connection is reset, alone: data beyond credit, an
 * unknown op, a header len larger than the buffer, a wrong source CID and
 * RW on a connection that does not exist each end that connection (the
 * host file reads ECONNRESET; chanfs logs a line naming it) while another
 * connection keeps flowing through the guest's echo.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define FLOW_CHUNK (64u << 10)

struct flow {
	int fd;
	uint64_t seed;
	atomic_bool stop;
	atomic_uint_fast64_t bytes;
	int err;              /* errno, or -1 on a data mismatch */
};

/* Write a chunk, read it back, compare; until told to stop. */
static void *flow_run(void *arg)
{
	struct flow *f = arg;
	static uint8_t out[FLOW_CHUNK], in[FLOW_CHUNK];
	uint64_t off = 0;

	while (!atomic_load(&f->stop)) {
		size_t got = 0;

		guest_data_fill(f->seed, off, out, sizeof(out));
		if (vh_write_all(f->fd, out, sizeof(out)) != sizeof(out)) {
			f->err = errno;
			return NULL;
		}
		while (got < sizeof(in)) {
			ssize_t r = read(f->fd, in + got, sizeof(in) - got);

			if (r <= 0) {
				f->err = r < 0 ? errno : EPIPE;
				return NULL;
			}
			got += (size_t)r;
		}
		if (memcmp(in, out, sizeof(in))) {
			f->err = -1;
			return NULL;
		}
		off += sizeof(out);
		atomic_store(&f->bytes, off);
	}
	return NULL;
}

/* The flow must move on while we look elsewhere. */
static void flow_progresses(struct vh *h, struct flow *f)
{
	uint64_t before = atomic_load(&f->bytes);
	int i;

	(void)h;
	for (i = 0; i < 12000 && atomic_load(&f->bytes) <= before &&
	     !f->err; i++)
		usleep(10000);
	assert_int_equal(f->err, 0);
	assert_true(atomic_load(&f->bytes) > before);
}

/* A line of text that names both ports. */
static bool names_both(const char *text, const char *a, const char *b)
{
	const char *line = text;

	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);

		if (memmem(line, n, a, strlen(a)) && memmem(line, n, b, strlen(b)))
			return true;
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

/* chanfs logged a line naming the connection (its two ports). */
static void logged(struct vh *h, size_t from, uint64_t lport, uint64_t rport)
{
	char *log = NULL, lp[32], rp[32];
	bool found = false;
	int i;

	snprintf(lp, sizeof(lp), "%" PRIu64, lport);
	snprintf(rp, sizeof(rp), "%" PRIu64, rport);
	for (i = 0; i < 500 && !found; i++) {
		free(log);
		log = vh_log_since(h, from);
		found = log && names_both(log, lp, rp);
		if (!found)
			usleep(10000);
	}
	if (!found)
		fprintf(stderr, "no log line naming ports %s and %s in:\n%s\n",
		        lp, rp, log ? log : "");
	free(log);
	assert_true(found);
}

static void test_misbehaving_connection_is_reset_alone(void **state)
{
	struct vh *h = *state;
	static const char *const kinds[] = {
		"overrun", "unknown-op", "hdr-len", "wrong-cid",
	};
	const char *cargs[] = { "-l", "6001", "-l", "6002", "-l", "6003",
	                        "-l", "6004", NULL };
	const char *gargs[] = {
		"-l", "7:echo",
		"-c", "6001:bad=overrun,after=7",
		"-c", "6002:bad=unknown-op,after=7",
		"-c", "6003:bad=hdr-len,after=7",
		"-c", "6004:bad=wrong-cid,after=7",
		"-c", "6005:bad=noconn,after=7",
		NULL,
	};
	struct flow f = { .fd = -1 };
	static char buf[1 << 20];
	struct vh_guest *g;
	const char *l;
	pthread_t th;
	size_t log0;
	unsigned i;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	log0 = vh_log_size(h);

	/* the good connection; accepting it sets the misbehaviours off */
	f.seed = h->seed;
	f.fd = open(vh_path(h, "vsock/7"), O_RDWR | O_CLOEXEC);
	assert_true(f.fd >= 0);
	assert_int_equal(pthread_create(&th, NULL, flow_run, &f), 0);
	flow_progresses(h, &f);

	for (i = 0; i < 4; i++) {
		char path[64], needle[64];
		uint64_t lport, got = 0;
		ssize_t r;
		int fd;

		snprintf(path, sizeof(path), "vsock/listen/%u", 6001 + i);
		fd = open(vh_path(h, path), O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		assert_true(fd >= 0);
		/* the go signal: misbehave now that the file is open */
		assert_int_equal(write(fd, "go", 2), 2);
		/* wait until the host has answered the misbehaviour with RST */
		snprintf(needle, sizeof(needle), "conn rport=%u svc=bad-%s",
		         6001 + i, kinds[i]);
		l = vh_guest_wait(g, needle, 1, VH_TIMEOUT_MS);
		assert_non_null(l);
		assert_non_null(strstr(l, "status=reset"));
		lport = vh_kv_u64(l, "lport");
		/* what was accepted can still be read, then the reset */
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			got += (uint64_t)r;
		fprintf(stderr, "%s: read %" PRIu64 " bytes, then %s\n",
		        kinds[i], got, r < 0 ? strerror(errno) : "EOF");
		assert_int_equal(r, -1);
		assert_int_equal(errno, ECONNRESET);
		close(fd);
		logged(h, log0, lport, 6001 + i);
		flow_progresses(h, &f);
	}

	/* RW for a connection the host never saw: RST, and a log line */
	l = vh_guest_wait(g, "conn rport=6005 svc=bad-noconn", 1,
	                  VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_non_null(strstr(l, "status=reset"));
	logged(h, log0, vh_kv_u64(l, "lport"), 6005);
	flow_progresses(h, &f);

	atomic_store(&f.stop, true);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(f.err, 0);
	close(f.fd);
	l = vh_guest_wait(g, "conn lport=7 svc=echo", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_non_null(strstr(l, "status=closed"));
	/* exit 0: the host did nothing wrong in return */
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_misbehaving_connection_is_reset_alone,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
