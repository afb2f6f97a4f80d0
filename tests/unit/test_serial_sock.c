/* serial_sock: the chardev socket transport against test sockets standing
 * in for QEMU (a listening server for connect mode, clients for listen
 * mode), on a real loop. */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "logcap.h"

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/loop.h"
#include "chanfs/serial.h"
#include "chanfs/serial_sock.h"
#include "chanfs/usock.h"

#define WINDOW 4096u

struct fx {
	struct loop *l;
	struct chan_set chans;
	struct chandirs dirs;
	struct serial *s;
	struct serial_sock *t;
	struct chan *c;
	char dir[64];
	char path[128];
};

static uint8_t pat(size_t i)
{
	return (uint8_t)(i ^ (i >> 8) ^ (i >> 16));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Turn the loop for about ms milliseconds (waiting, never asserting on
 * time). */
static void run_for(struct fx *f, unsigned ms)
{
	double end = now_s() + ms / 1000.0;

	while (now_s() < end) {
		loop_turn(f->l, false);
		poll(NULL, 0, 2);
	}
}

/* Turn the loop until cond holds; fail after 10 s (a hang). */
#define RUN_UNTIL(f, cond)                                                  \
	do {                                                                \
		double end_ = now_s() + 10;                                 \
		while (!(cond)) {                                           \
			assert_true(now_s() < end_);                        \
			loop_turn((f)->l, false);                           \
			poll(NULL, 0, 1);                                   \
		}                                                           \
	} while (0)

/* A port with windows of window bytes. */
static void fx_init_window(struct fx *f, bool listen, uint32_t window)
{
	struct serial_sock_spec sp;
	struct chandir *d;
	char why[160];
	char arg[200];

	memset(f, 0, sizeof *f);
	strcpy(f->dir, "/tmp/test-serial-sock.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/port.sock", f->dir);
	f->l = loop_new();
	assert_non_null(f->l);
	chan_set_init(&f->chans);
	chandirs_init(&f->dirs);
	f->s = serial_new(f->l, &f->chans, window);
	assert_non_null(f->s);
	assert_int_equal(serial_register(f->s, &f->dirs), 0);
	snprintf(arg, sizeof arg, "port0=%s%s", f->path,
	         listen ? ",listen" : "");
	assert_int_equal(serial_sock_parse(arg, &sp, why, sizeof why), 0);
	f->t = serial_sock_new(f->l, f->s, &sp);
	serial_sock_spec_free(&sp);
	assert_non_null(f->t);
	d = chandir_find(&f->dirs, "serial");
	assert_int_equal(d->ops->open(d->ctx, "port0", &f->c), 0);
}

static void fx_init(struct fx *f, bool listen)
{
	fx_init_window(f, listen, WINDOW);
}

static void fx_done(struct fx *f)
{
	struct chandir *d = chandir_find(&f->dirs, "serial");

	d->ops->release(d->ctx, "port0", f->c);
	serial_sock_free(f->t);
	serial_free(f->s);
	loop_free(f->l);
	unlink(f->path);
	rmdir(f->dir);
}

static char *fx_status(struct fx *f)
{
	struct chandir *d = chandir_find(&f->dirs, "serial");
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	d->ops->status(d->ctx, out);
	fclose(out);
	return text;
}

static bool status_has(struct fx *f, const char *what)
{
	char *s = fx_status(f);
	bool yes = strstr(s, what) != NULL;

	free(s);
	return yes;
}

static int client_connect(const char *path)
{
	bool done = false;
	int fd = usock_connect(path, &done);

	assert_true(fd >= 0);
	assert_true(done);
	return fd;
}

/* Accept from srv (non-blocking) while turning the loop. */
static int accept_peer(struct fx *f, int srv)
{
	int c = -1;

	RUN_UNTIL(f, (c = accept4(srv, NULL, NULL, SOCK_NONBLOCK)) >= 0);
	return c;
}

/* Read exactly n bytes from non-blocking fd while turning the loop. */
static void peer_read(struct fx *f, int fd, uint8_t *buf, size_t n)
{
	double end = now_s() + 10;
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		assert_true(r < 0 && errno == EAGAIN);
		assert_true(now_s() < end);
		loop_turn(f->l, false);
		poll(NULL, 0, 1);
	}
}

/* Read n bytes from the port's channel while turning the loop. */
static void host_read(struct fx *f, uint8_t *buf, size_t n, size_t step)
{
	size_t got = 0;

	while (got < n) {
		size_t want = n - got < step ? n - got : step;
		ssize_t r = chan_read(f->c, buf + got, want);

		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		assert_int_equal(r, -EAGAIN);
		RUN_UNTIL(f, !ring_empty(&f->c->to_host));
	}
}

/* A connect-mode port connected to a test server (*srv) standing in for
 * QEMU; returns the server's end of the connection. */
static int fx_connected_window(struct fx *f, int *srv, uint32_t window)
{
	fx_init_window(f, false, window);
	*srv = usock_listen(f->path, 4, "test");
	assert_true(*srv >= 0);
	RUN_UNTIL(f, serial_sock_connected(f->t));
	return accept_peer(f, *srv);
}

static int fx_connected(struct fx *f, int *srv)
{
	return fx_connected_window(f, srv, WINDOW);
}

/* And its end: the test's sockets, then the fixture. */
static void fx_connected_done(struct fx *f, int peer, int srv)
{
	close(peer);
	close(srv);
	fx_done(f);
}

/* n bytes of the pattern (malloc'd). */
static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = pat(i);
	return p;
}

static void test_connect_mode_retries_quietly_until_qemu_listens(void **state)
{
	struct logcap cap;
	char log[4096];
	struct fx f;
	int srv, peer;

	(void)state;
	logcap_begin(&cap);
	fx_init(&f, false);
	run_for(&f, 700);	/* several attempts: 100, 200, 400 ms */
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	assert_non_null(strstr(log, "serial port0: cannot connect to"));
	assert_non_null(strstr(log, "No such file or directory"));
	assert_false(serial_sock_connected(f.t));
	assert_true(status_has(&f, " socket disconnected (connecting to"));

	logcap_begin(&cap);
	srv = usock_listen(f.path, 4, "test");
	assert_true(srv >= 0);
	RUN_UNTIL(&f, serial_sock_connected(f.t));
	peer = accept_peer(&f, srv);
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	assert_non_null(strstr(log, "serial port0: connected to"));
	assert_true(status_has(&f, " socket connected to "));
	fx_connected_done(&f, peer, srv);
}

static void test_any_bytes_cross_both_ways_unchanged(void **state)
{
	uint8_t out[256 * 16], in[sizeof out];
	struct fx f;
	int srv, peer;

	(void)state;
	for (size_t i = 0; i < sizeof out; i++)
		out[i] = (uint8_t)(255 - i % 256);	/* 0xff, NUL, all */
	peer = fx_connected(&f, &srv);
	/* The peer's garbage is the host's data. */
	assert_int_equal(write(peer, out, sizeof out), (ssize_t)sizeof out);
	host_read(&f, in, sizeof in, sizeof in);
	assert_memory_equal(in, out, sizeof out);
	/* And the host's reaches the peer. */
	assert_int_equal(chan_write(f.c, out, 4000), 4000);
	peer_read(&f, peer, in, 4000);
	assert_memory_equal(in, out, 4000);
	fx_connected_done(&f, peer, srv);
}

static void test_what_the_peer_sent_goes_into_the_window_in_one_read(void **state)
{
	/* More than one read of a 64 KiB buffer, less than the window and
	 * than the peer's socket buffer. */
	enum { N = 96 * 1024, BIG = 256 * 1024 };
	uint8_t *out = pattern(N), *in = malloc(N);
	struct fx f;
	int srv, peer;

	(void)state;
	peer = fx_connected_window(&f, &srv, BIG);
	assert_int_equal(write(peer, out, N), N);
	/* A UNIX socket queues it for chanfs at once; one loop turn (one
	 * readiness) takes all of it, straight into to_host. */
	loop_turn(f.l, false);
	assert_int_equal(ring_used(&f.c->to_host), N);
	assert_int_equal(f.c->rx_bytes, N);
	assert_int_equal(serial_sock_held(f.t), 0);
	host_read(&f, in, N, N);
	assert_memory_equal(in, out, N);
	free(out);
	free(in);
	fx_connected_done(&f, peer, srv);
}

static void test_a_full_port_stops_reading_and_loses_nothing(void **state)
{
	enum { N = 300000 };
	uint8_t *out = pattern(N), *in = malloc(N);
	size_t sent = 0;
	struct fx f;
	int srv, peer;

	(void)state;
	peer = fx_connected(&f, &srv);
	/* Far more than the 4 KiB window: the peer's writes stall in its
	 * socket until the host reads, and nothing is held beyond the
	 * window on the way. */
	{
		double end = now_s() + 30;
		bool stalled = false;
		size_t got = 0;

		while (got < N) {
			ssize_t w, r;

			assert_true(now_s() < end);
			if (sent < N) {
				w = write(peer, out + sent, N - sent);
				if (w > 0)
					sent += (size_t)w;
				else
					stalled |= w < 0 && errno == EAGAIN;
			}
			r = chan_read(f.c, in + got, 1000);
			if (r > 0)
				got += (size_t)r;
			else
				assert_int_equal(r, -EAGAIN);
			assert_true(ring_used(&f.c->to_host) <= WINDOW);
			assert_true(serial_sock_held(f.t) <= WINDOW);
			loop_turn(f.l, false);
		}
		assert_true(stalled);
	}
	assert_memory_equal(in, out, N);
	free(out);
	free(in);
	fx_connected_done(&f, peer, srv);
}

static void test_a_peer_that_vanishes_mid_transfer_loses_nothing(void **state)
{
	enum { N = 100000 };
	uint8_t *out = pattern(N), *in = malloc(N);
	uint8_t queued[3000], got[3000];
	struct logcap cap;
	char log[4096];
	struct fx f;
	int srv, peer;

	(void)state;
	memset(queued, 'q', sizeof queued);
	peer = fx_connected(&f, &srv);
	/* The socket takes it all; the port takes 4 KiB; the peer goes. */
	assert_int_equal(write(peer, out, N), N);
	RUN_UNTIL(&f, ring_full(&f.c->to_host));
	logcap_begin(&cap);
	close(peer);
	RUN_UNTIL(&f, !serial_sock_connected(f.t));
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	assert_non_null(strstr(log, "went away"));
	/* What it sent waits in the transport, counted in status. */
	assert_int_equal(serial_sock_held(f.t) + WINDOW, N);
	assert_true(status_has(&f, "bytes held"));
	/* Host writes while the socket is down queue in the port. */
	assert_int_equal(chan_write(f.c, queued, sizeof queued),
	                 (ssize_t)sizeof queued);
	/* The host reads every byte, in order, then waits (no EOF). */
	host_read(&f, in, N, 1500);
	assert_memory_equal(in, out, N);
	assert_int_equal(chan_read(f.c, in, 1), -EAGAIN);
	/* The next connection delivers what was queued. */
	peer = accept_peer(&f, srv);
	RUN_UNTIL(&f, serial_sock_connected(f.t));
	peer_read(&f, peer, got, sizeof got);
	assert_memory_equal(got, queued, sizeof got);
	free(out);
	free(in);
	fx_connected_done(&f, peer, srv);
}

static void test_what_the_socket_did_not_take_goes_to_the_next_peer(void **state)
{
	enum { N = 1 << 20 };
	uint8_t *out = pattern(N), *in = malloc(N);
	size_t written = 0, first, rest;
	struct fx f;
	int srv, peer;

	(void)state;
	peer = fx_connected(&f, &srv);
	/* The peer reads nothing: its socket fills, then the ring. */
	while (written < N) {
		ssize_t w = chan_write(f.c, out + written, N - written);

		if (w > 0) {
			written += (size_t)w;
			continue;
		}
		assert_int_equal(w, -EAGAIN);
		run_for(&f, 20);
		if (chan_write(f.c, out + written, 0) == 0 &&
		    ring_full(&f.c->to_guest))
			break;
	}
	assert_true(ring_full(&f.c->to_guest));
	first = f.c->tx_bytes;	/* what the socket took */
	close(peer);
	RUN_UNTIL(&f, !serial_sock_connected(f.t));
	/* Nothing the ring held is gone. */
	assert_int_equal(ring_used(&f.c->to_guest), WINDOW);
	assert_int_equal(first + WINDOW, written);
	peer = accept_peer(&f, srv);
	RUN_UNTIL(&f, serial_sock_connected(f.t));
	/* The next peer gets exactly the continuation. */
	rest = written - first;
	peer_read(&f, peer, in, rest);
	assert_memory_equal(in, out + first, rest);
	free(out);
	free(in);
	fx_connected_done(&f, peer, srv);
}

static void test_listen_mode_serves_one_peer_and_refuses_a_second(void **state)
{
	struct logcap cap;
	char log[4096], buf[8];
	struct stat st;
	struct fx f;
	int p1, p2, p3;

	(void)state;
	fx_init(&f, true);
	assert_int_equal(stat(f.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(status_has(&f, " socket disconnected (listening on "));
	p1 = client_connect(f.path);
	RUN_UNTIL(&f, serial_sock_connected(f.t));
	assert_true(status_has(&f, " socket connected on "));

	logcap_begin(&cap);
	p2 = client_connect(f.path);
	run_for(&f, 50);
	{
		double end = now_s() + 10;

		while (read(p2, buf, sizeof buf) != 0) {
			assert_true(now_s() < end);
			run_for(&f, 5);
		}
	}
	/* A peer that keeps trying: turned away each time, logged once. */
	for (int i = 0; i < 3; i++) {
		int again = client_connect(f.path);
		double end = now_s() + 10;

		while (read(again, buf, sizeof buf) != 0) {
			assert_true(now_s() < end);
			run_for(&f, 5);
		}
		close(again);
	}
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	assert_non_null(strstr(log, "refused a second peer"));
	assert_true(status_has(&f, ", 4 other peers refused"));
	/* The first peer is still the port's. */
	assert_int_equal(write(p1, "x", 1), 1);
	RUN_UNTIL(&f, !ring_empty(&f.c->to_host));
	assert_int_equal(chan_read(f.c, buf, sizeof buf), 1);
	assert_int_equal(buf[0], 'x');
	close(p1);
	RUN_UNTIL(&f, !serial_sock_connected(f.t));
	/* The next peer is served. */
	p3 = client_connect(f.path);
	RUN_UNTIL(&f, serial_sock_connected(f.t));
	assert_int_equal(chan_write(f.c, "yz", 2), 2);
	fcntl(p3, F_SETFL, O_NONBLOCK);
	peer_read(&f, p3, (uint8_t *)buf, 2);
	assert_memory_equal(buf, "yz", 2);
	close(p2);
	close(p3);
	fx_done(&f);
	/* The listening socket goes with the transport. */
	assert_int_equal(stat(f.path, &st), -1);
}

static void test_listen_mode_a_restarted_peer_is_never_refused(void **state)
{
	struct logcap cap;
	char log[4096];
	uint8_t fill[WINDOW + 100], buf[4];
	struct fx f;
	int p1, p2;

	(void)state;
	memset(fill, 'f', sizeof fill);
	fx_init(&f, true);
	p1 = client_connect(f.path);
	RUN_UNTIL(&f, serial_sock_connected(f.t));
	/* A full port: the transport does not read p1 any more. */
	assert_int_equal(write(p1, fill, sizeof fill), (ssize_t)sizeof fill);
	RUN_UNTIL(&f, ring_full(&f.c->to_host));
	logcap_begin(&cap);
	close(p1);
	p2 = client_connect(f.path);	/* before chanfs saw p1 go */
	run_for(&f, 100);
	logcap_end(&cap, log, sizeof log);
	assert_null(strstr(log, "refused"));
	assert_true(serial_sock_connected(f.t));
	/* p1's bytes first, all of them; then p2's. */
	assert_int_equal(write(p2, "new", 3), 3);
	{
		uint8_t in[sizeof fill];

		host_read(&f, in, sizeof in, sizeof in);
		assert_memory_equal(in, fill, sizeof fill);
	}
	host_read(&f, buf, 3, 3);
	assert_memory_equal(buf, "new", 3);
	close(p2);
	fx_done(&f);
}

static void test_listen_mode_keeps_a_live_socket_and_replaces_a_stale_one(void **state)
{
	struct serial_sock_spec sp = { .name = "other", .listen = true };
	struct fx f;
	int fd;

	(void)state;
	fx_init(&f, true);
	/* A second transport on a live socket: refused, left alone. */
	sp.path = f.path;
	errno = 0;
	assert_null(serial_sock_new(f.l, f.s, &sp));
	assert_int_equal(errno, EADDRINUSE);
	fx_done(&f);
	/* A dead one's socket file is replaced. */
	fx_init(&f, false);
	fx_done(&f);
	memset(&f, 0, sizeof f);
	{
		char dir[] = "/tmp/test-serial-sock.XXXXXX";
		char path[128];
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct serial_sock *t;
		struct serial *s;
		struct chan_set chans;
		struct loop *l = loop_new();

		assert_non_null(mkdtemp(dir));
		snprintf(path, sizeof path, "%s/s", dir);
		strcpy(sa.sun_path, path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
		close(fd);	/* bound, never listened: stale */
		chan_set_init(&chans);
		s = serial_new(l, &chans, WINDOW);
		sp.path = path;
		t = serial_sock_new(l, s, &sp);
		assert_non_null(t);
		serial_sock_free(t);
		serial_free(s);
		loop_free(l);
		rmdir(dir);
	}
}

static void test_parse_takes_name_path_listen_and_names_what_is_wrong(void **state)
{
	static const struct {
		const char *arg, *why;
	} bad[] = {
		{ "qga", "no '='" },
		{ "=/x", "empty port NAME" },
		{ "a b=/x", "is not 1 to 255 of" },
		{ "..=/x", "is not 1 to 255 of" },
		{ "a/b=/x", "is not 1 to 255 of" },
		{ "qga=", "empty PATH" },
		{ "qga=,listen", "empty PATH" },
		{ "qga=/x,listen,x", "unknown option ',listen,x'" },
		{ "qga=/x,server", "unknown option ',server'" },
		{ "qga=/x,", "unknown option ','" },
		{ "qga=/a/very/long/path/that/goes/on/and/on/and/on/and/on/and/"
		  "on/and/on/and/on/and/on/and/on/and/on/and/on/and/on.sock",
		  "a socket address holds at most 107" },
	};
	struct serial_sock_spec sp;
	char why[200];

	(void)state;
	assert_int_equal(serial_sock_parse("org.qemu.guest_agent.0=/run/q.sock",
	                                   &sp, why, sizeof why), 0);
	assert_string_equal(sp.name, "org.qemu.guest_agent.0");
	assert_string_equal(sp.path, "/run/q.sock");
	assert_false(sp.listen);
	serial_sock_spec_free(&sp);
	assert_int_equal(serial_sock_parse("p=rel/x=y.sock,listen", &sp, why,
	                                   sizeof why), 0);
	assert_string_equal(sp.name, "p");
	assert_string_equal(sp.path, "rel/x=y.sock");
	assert_true(sp.listen);
	serial_sock_spec_free(&sp);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = '\0';
		assert_int_equal(serial_sock_parse(bad[i].arg, &sp, why,
		                                   sizeof why), -EINVAL);
		if (!strstr(why, bad[i].why))
			fail_msg("%s: '%s' does not say '%s'", bad[i].arg, why,
			         bad[i].why);
		assert_null(sp.name);
		assert_null(sp.path);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_mode_retries_quietly_until_qemu_listens),
		cmocka_unit_test(test_any_bytes_cross_both_ways_unchanged),
		cmocka_unit_test(test_what_the_peer_sent_goes_into_the_window_in_one_read),
		cmocka_unit_test(test_a_full_port_stops_reading_and_loses_nothing),
		cmocka_unit_test(test_a_peer_that_vanishes_mid_transfer_loses_nothing),
		cmocka_unit_test(test_what_the_socket_did_not_take_goes_to_the_next_peer),
		cmocka_unit_test(test_listen_mode_serves_one_peer_and_refuses_a_second),
		cmocka_unit_test(test_listen_mode_a_restarted_peer_is_never_refused),
		cmocka_unit_test(test_listen_mode_keeps_a_live_socket_and_replaces_a_stale_one),
		cmocka_unit_test(test_parse_takes_name_path_listen_and_names_what_is_wrong),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
