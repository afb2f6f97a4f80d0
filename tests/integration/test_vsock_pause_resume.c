/*
 * The VMM stops the rings under running transfers and starts them again:
 * a VM pause (GET_VRING_BASE, later SET_VRING_BASE with the same base,
 * ADDR, KICK, as QEMU 7.2 does for QMP stop/cont) and a memory table sent
 * again while the rings run keep every connection and every byte, both
 * ways: an echo stream, a stream into a guest sink and one from a guest
 * source, checked byte for byte and by the guest's checksums.  A guest
 * driver restart (rings set up anew, base 0) still resets the connections,
 * and new ones work after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define BYTES (16u << 20)
#define CHUNK (64u << 10)
/* How far a stream may run before the rings stop the first and the second
 * time.  Each stream waits at its limit until the test raises it, so no
 * stream can end before a pause however the daemon schedules the two
 * directions: the writers wait themselves, the echo reader gets no more
 * than the echo writer sent, and the guest's source no more than the
 * source reader took plus chanfs's window (credit). */
#define LIMIT_FIRST (4u << 20)
#define LIMIT_SECOND (8u << 20)

enum role { ECHO_WRITER, ECHO_READER, SINK_WRITER, SOURCE_READER, NROLES };

struct stream {
	enum role role;
	atomic_uint_fast64_t *limit;   /* wait at this offset (the run's) */
	int fd;
	uint64_t seed;           /* the data we write or expect (echo) */
	atomic_uint_fast64_t moved;
	atomic_bool finished;
	uint64_t fnv;            /* of what we wrote or read */
	int err;                 /* errno that ended it early (0: none) */
	bool wrong;              /* echoed data differs */
};

static void *stream_run(void *arg)
{
	struct stream *s = arg;
	static _Thread_local uint8_t buf[CHUNK], want[CHUNK];
	uint64_t off = 0;
	ssize_t r;

	s->fnv = GUEST_FNV_INIT;
	for (;;) {
		while (off >= atomic_load(s->limit) && off < BYTES)
			usleep(1000);
		if (s->role == ECHO_WRITER || s->role == SINK_WRITER) {
			size_t n = BYTES - off < CHUNK ? BYTES - off : CHUNK;

			if (!n)
				break;
			guest_data_fill(s->seed, off, buf, n);
			r = vh_write_all(s->fd, buf, n);
			if (r < 0) {
				s->err = (int)-r;
				break;
			}
			s->fnv = guest_fnv1a(s->fnv, buf, n);
		} else {
			size_t n = CHUNK;

			if (s->role == ECHO_READER && BYTES - off < n)
				n = BYTES - off;
			if (!n)
				break;
			r = read(s->fd, buf, n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				s->err = errno;
				break;
			}
			if (r == 0)
				break;
			if (s->role == ECHO_READER) {
				guest_data_fill(s->seed, off, want, (size_t)r);
				if (memcmp(buf, want, (size_t)r)) {
					s->wrong = true;
					break;
				}
			}
			s->fnv = guest_fnv1a(s->fnv, buf, (size_t)r);
		}
		off += (uint64_t)r;
		atomic_store(&s->moved, off);
	}
	/* The sink reports its checksum at our EOF. */
	if (s->role == SINK_WRITER)
		close(s->fd);
	atomic_store(&s->finished, true);
	return NULL;
}

struct run {
	struct vh *h;
	struct vh_guest *g;
	struct stream s[NROLES];
	pthread_t th[NROLES];
	atomic_uint_fast64_t limit;      /* how far the streams may run */
};

static const char *const role_name[NROLES] = {
	"echo writer", "echo reader", "sink writer", "source reader",
};

static void run_start(struct run *x, struct vh *h, struct vh_guest *g)
{
	unsigned i;
	int echo = open(vh_path(h, "vsock/7"), O_RDWR | O_CLOEXEC);

	memset(x, 0, sizeof(*x));
	x->h = h;
	x->g = g;
	atomic_store(&x->limit, LIMIT_FIRST);
	assert_true(echo >= 0);
	x->s[ECHO_WRITER].fd = x->s[ECHO_READER].fd = echo;
	x->s[ECHO_WRITER].seed = x->s[ECHO_READER].seed = h->seed ^ 1;
	x->s[SINK_WRITER].fd = open(vh_path(h, "vsock/8"),
	                            O_WRONLY | O_CLOEXEC);
	x->s[SINK_WRITER].seed = h->seed ^ 2;
	x->s[SOURCE_READER].fd = open(vh_path(h, "vsock/9"),
	                              O_RDONLY | O_CLOEXEC);
	for (i = 0; i < NROLES; i++) {
		x->s[i].role = (enum role)i;
		x->s[i].limit = &x->limit;
		assert_true(x->s[i].fd >= 0);
		assert_int_equal(pthread_create(&x->th[i], NULL, stream_run,
		                                &x->s[i]), 0);
	}
}

/* Every stream moved at least bytes and none is over: data is in flight
 * both ways. */
static void run_wait_moved(struct run *x, uint64_t bytes)
{
	unsigned i;
	int t;

	for (i = 0; i < NROLES; i++) {
		for (t = 0; t < VH_TIMEOUT_MS / 10; t++) {
			if (atomic_load(&x->s[i].moved) >= bytes ||
			    atomic_load(&x->s[i].finished))
				break;
			usleep(10000);
		}
		if (atomic_load(&x->s[i].finished))
			fail_msg("%s ended after %" PRIu64 " bytes (%s) before "
			         "the rings stopped", role_name[i],
			         (uint64_t)atomic_load(&x->s[i].moved),
			         strerror(x->s[i].err));
		assert_true(atomic_load(&x->s[i].moved) >= bytes);
	}
}

static bool run_any_finished(struct run *x)
{
	unsigned i;

	for (i = 0; i < NROLES; i++)
		if (atomic_load(&x->s[i].finished))
			return true;
	return false;
}

/* Signal the guest and wait for its line saying it acted. */
static void guest_signal(struct run *x, int sig, const char *line,
                         unsigned nth)
{
	assert_int_equal(kill(x->g->pid, sig), 0);
	assert_non_null(vh_guest_wait(x->g, line, nth, VH_TIMEOUT_MS));
}

/* Join, then check every byte: the echo compared as it came back, the
 * sink's and the source's checksums as the guest reports them. */
static void run_check(struct run *x)
{
	const char *l;
	unsigned i;

	for (i = 0; i < NROLES; i++) {
		assert_int_equal(pthread_join(x->th[i], NULL), 0);
		fprintf(stderr, "%s: %" PRIu64 " bytes, %s\n", role_name[i],
		        (uint64_t)atomic_load(&x->s[i].moved),
		        x->s[i].err ? strerror(x->s[i].err) :
		        x->s[i].wrong ? "WRONG DATA" : "ok");
	}
	for (i = 0; i < NROLES; i++) {
		assert_int_equal(x->s[i].err, 0);
		assert_false(x->s[i].wrong);
	}
	assert_int_equal(atomic_load(&x->s[ECHO_READER].moved), BYTES);
	close(x->s[ECHO_WRITER].fd);
	close(x->s[SOURCE_READER].fd);
	l = vh_guest_wait(x->g, "conn lport=8 svc=sink", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_int_equal(vh_kv_u64(l, "rx"), BYTES);
	assert_true(vh_kv_hex(l, "rx_fnv") == x->s[SINK_WRITER].fnv);
	l = vh_guest_wait(x->g, "conn lport=9 svc=source", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_int_equal(vh_kv_u64(l, "tx"), BYTES);
	assert_int_equal(atomic_load(&x->s[SOURCE_READER].moved), BYTES);
	assert_true(vh_kv_hex(l, "tx_fnv") == x->s[SOURCE_READER].fnv);
	l = vh_guest_wait(x->g, "conn lport=7 svc=echo", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_non_null(strstr(l, "status=closed"));
	assert_int_equal(vh_kv_u64(l, "rx"), BYTES);
}

static const char *const gargs[] = {
	"-l", "7:echo", "-l", "8:sink", "-l", "9:source=16M", NULL,
};

/* chanfs and the guest, the four streams under way. */
static struct vh_guest *run_begin(struct run *x, struct vh *h)
{
	struct vh_guest *g;

	assert_int_equal(vh_start_chanfs(h, NULL), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	run_start(x, h, g);
	run_wait_moved(x, 256u << 10);
	return g;
}

/* No connection was reset, and the guest saw no protocol error. */
static void no_resets(struct vh *h, struct vh_guest *g)
{
	char *log = vh_log_since(h, 0);

	assert_non_null(log);
	if (strstr(log, "resetting"))
		fail_msg("chanfs reset connections:\n%s", log);
	free(log);
	assert_int_equal(vh_guest_count(g, "error"), 0);
	assert_int_equal(vh_guest_stop(g), 0);
}

static void test_pause_and_resume_keep_every_byte_both_ways(void **state)
{
	struct vh *h = *state;
	struct vh_guest *g;
	struct run x;
	unsigned i;

	g = run_begin(&x, h);
	guest_signal(&x, SIGUSR1, "paused", 1);
	/* Paused: the host side waits (nothing ends), chanfs keeps the
	 * connections. */
	usleep(300 * 1000);
	for (i = 0; i < NROLES; i++)
		assert_false(atomic_load(&x.s[i].finished));
	assert_true(vh_chanfs_alive(h));
	guest_signal(&x, SIGUSR2, "resumed", 1);
	/* Once more, further on. */
	atomic_store(&x.limit, LIMIT_SECOND);
	run_wait_moved(&x, 1u << 20);
	guest_signal(&x, SIGUSR1, "paused", 2);
	usleep(100 * 1000);
	guest_signal(&x, SIGUSR2, "resumed", 2);
	atomic_store(&x.limit, BYTES);
	run_check(&x);
	no_resets(h, g);
}

static void test_mem_table_while_running_keeps_every_byte(void **state)
{
	struct vh *h = *state;
	struct vh_guest *g;
	struct run x;
	unsigned n;

	g = run_begin(&x, h);
	guest_signal(&x, SIGRTMIN + 1, "remapped", 1);
	atomic_store(&x.limit, BYTES);
	/* And again and again while the streams run. */
	for (n = 2; !run_any_finished(&x); n++) {
		guest_signal(&x, SIGRTMIN + 1, "remapped", n);
		usleep(5000);
	}
	fprintf(stderr, "%u memory tables sent under the streams\n", n - 1);
	run_check(&x);
	no_resets(h, g);
}

static void test_driver_restart_resets_connections_new_ones_work(void **state)
{
	struct vh *h = *state;
	struct vh_guest *g;
	struct run x;
	unsigned i;
	char buf[16];
	int fd, t;

	g = run_begin(&x, h);
	guest_signal(&x, SIGRTMIN, "restarted", 1);
	/* The streams waiting at their limit go on and find the reset. */
	atomic_store(&x.limit, BYTES);
	for (i = 0; i < NROLES; i++) {
		for (t = 0; t < VH_TIMEOUT_MS / 10; t++) {
			if (atomic_load(&x.s[i].finished))
				break;
			usleep(10000);
		}
		assert_true(atomic_load(&x.s[i].finished));
		assert_int_equal(pthread_join(x.th[i], NULL), 0);
		/* A cut stream fails; it never looks like a clean end. */
		if (x.s[i].role == SINK_WRITER || x.s[i].role == ECHO_WRITER)
			assert_true(x.s[i].err == ECONNRESET ||
			            x.s[i].err == EPIPE);
		else
			assert_int_equal(x.s[i].err, ECONNRESET);
	}
	close(x.s[ECHO_WRITER].fd);
	close(x.s[SOURCE_READER].fd);
	/* The same guest, its driver back: a new connection works. */
	fd = open(vh_path(h, "vsock/7"), O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(vh_write_all(fd, "again", 5), 5);
	for (i = 0; i < 5; i += (unsigned)t) {
		t = (int)read(fd, buf + i, 5 - i);
		assert_true(t > 0);
	}
	assert_memory_equal(buf, "again", 5);
	close(fd);
	assert_int_equal(vh_guest_count(g, "error"), 0);
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_pause_and_resume_keep_every_byte_both_ways,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_mem_table_while_running_keeps_every_byte,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_driver_restart_resets_connections_new_ones_work,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
