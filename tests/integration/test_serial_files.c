/*
 * serial/<name> through the real chanfs mount, with a fake chardev peer in
 * a thread of this test standing in for QEMU's virtserialport socket:
 * shell tools (echo, cat, head, exec 3<>), two writers whose lines arrive
 * whole, what files do while the socket is down (reads wait and never see
 * EOF, writes queue, poll says writable only), status, listen mode and a
 * second peer.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#include "vsock_harness.h"

/* --- the fake chardev peer ---------------------------------------------- */

struct peer {
	char path[160];
	bool server;          /* we listen, chanfs connects (QEMU server=on) */
	atomic_bool echo;     /* write back what arrives */
	atomic_bool stop;
	atomic_bool drop;     /* close the connection now (QEMU goes away) */
	atomic_int conns;     /* connections so far */
	atomic_int fd;        /* the connection, or -1 */
	int lfd;
	pthread_mutex_t mu;
	char *got;            /* everything received, all connections */
	size_t len, cap;
	pthread_t th;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	size_t len = strlen(path);

	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	assert_true(len < sizeof sa->sun_path);
	memcpy(sa->sun_path, path, len);
	return 0;
}

static int peer_open(struct peer *p)
{
	struct sockaddr_un sa;
	int fd;

	unix_addr(p->path, &sa);
	if (p->server) {
		struct pollfd pf = { .fd = p->lfd, .events = POLLIN };

		if (poll(&pf, 1, 20) != 1)
			return -1;
		return accept(p->lfd, NULL, NULL);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		poll(NULL, 0, 20);
		return -1;
	}
	return fd;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	char buf[65536];

	while (!p->stop) {
		int fd = p->fd;
		struct pollfd pf;
		ssize_t n;

		if (fd < 0) {
			if ((fd = peer_open(p)) >= 0) {
				p->conns++;
				p->fd = fd;
			}
			continue;
		}
		if (p->drop) {
			p->fd = -1;
			close(fd);
			p->drop = false;
			/* Gone for a while, as a restarting QEMU is. */
			poll(NULL, 0, 300);
			continue;
		}
		pf.fd = fd;
		pf.events = POLLIN;
		if (poll(&pf, 1, 20) != 1)
			continue;
		n = read(fd, buf, sizeof buf);
		if (n <= 0) {
			p->fd = -1;
			close(fd);
			continue;
		}
		pthread_mutex_lock(&p->mu);
		if (p->len + (size_t)n > p->cap) {
			p->cap = (p->len + (size_t)n) * 2;
			p->got = realloc(p->got, p->cap + 1);
		}
		memcpy(p->got + p->len, buf, (size_t)n);
		p->len += (size_t)n;
		p->got[p->len] = '\0';
		pthread_mutex_unlock(&p->mu);
		if (p->echo) {
			for (ssize_t off = 0, w; off < n; off += w) {
				w = write(fd, buf + off, (size_t)(n - off));
				if (w <= 0)
					break;
			}
		}
	}
	if (p->fd >= 0)
		close(p->fd);
	return NULL;
}

/* Start a peer on dir/name: a server (listening now) or a client. */
static struct peer *peer_start(const char *dir, const char *name, bool server,
                               bool echo)
{
	struct peer *p = calloc(1, sizeof *p);
	struct sockaddr_un sa;

	snprintf(p->path, sizeof p->path, "%s/%s", dir, name);
	p->server = server;
	p->echo = echo;
	p->fd = -1;
	p->lfd = -1;
	pthread_mutex_init(&p->mu, NULL);
	if (server) {
		unix_addr(p->path, &sa);
		p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa),
		                 0);
		assert_int_equal(listen(p->lfd, 4), 0);
	}
	assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
	return p;
}

static void peer_stop(struct peer *p)
{
	p->stop = true;
	pthread_join(p->th, NULL);
	if (p->lfd >= 0) {
		close(p->lfd);
		unlink(p->path);
	}
	free(p->got);
	free(p);
}

/* Wait until what the peer received contains needle. */
static bool peer_wait(struct peer *p, const char *needle)
{
	double end = now_s() + VH_TIMEOUT_MS / 1000.0;

	while (now_s() < end) {
		bool yes;

		pthread_mutex_lock(&p->mu);
		yes = p->got && strstr(p->got, needle);
		pthread_mutex_unlock(&p->mu);
		if (yes)
			return true;
		poll(NULL, 0, 10);
	}
	fprintf(stderr, "peer never received '%s'\n", needle);
	return false;
}

static size_t peer_len(struct peer *p)
{
	size_t n;

	pthread_mutex_lock(&p->mu);
	n = p->len;
	pthread_mutex_unlock(&p->mu);
	return n;
}

/* Send from the peer once it is connected. */
static void peer_send(struct peer *p, const char *s)
{
	double end = now_s() + VH_TIMEOUT_MS / 1000.0;

	while (p->fd < 0) {
		assert_true(now_s() < end);
		poll(NULL, 0, 10);
	}
	assert_int_equal(write(p->fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* --- chanfs --------------------------------------------------------------- */

/* chanfs with one port; buf_size (--buf-size) NULL for the default. */
static void start_chanfs_buf(struct vh *h, const char *spec,
                             const char *buf_size)
{
	char arg[256];
	const char *args[] = { "--serial", arg, buf_size ? "--buf-size" : NULL,
	                       buf_size, NULL };

	snprintf(arg, sizeof arg, "%s", spec);
	assert_int_equal(vh_start_chanfs(h, args), 0);
}

static void start_chanfs(struct vh *h, const char *spec)
{
	start_chanfs_buf(h, spec, NULL);
}

static bool status_has(struct vh *h, const char *what)
{
	double end = now_s() + VH_TIMEOUT_MS / 1000.0;

	while (now_s() < end) {
		char *s = vh_status(h);
		bool yes = s && strstr(s, what);

		if (yes || now_s() + 0.05 >= end)
			fprintf(stderr, "%s", s ? s : "(no status)\n");
		free(s);
		if (yes)
			return true;
		poll(NULL, 0, 50);
	}
	return false;
}

/* --- the tests ---------------------------------------------------------- */

static void test_shell_tools_reach_the_chardev_peer(void **state)
{
	struct vh *h = *state;
	struct peer *p = peer_start(h->dir, "qemu.sock", true, true);
	char spec[200], out[256];

	snprintf(spec, sizeof spec, "chanfs.test=%s", p->path);
	start_chanfs(h, spec);
	assert_true(status_has(h, "serial chanfs.test socket connected to "));

	assert_int_equal(vh_sh(h, "ls \"$MNT/serial\"", out, sizeof out), 0);
	assert_string_equal(out, "chanfs.test\n");
	/* exec 3<>: one fd writes and reads the peer's echo */
	assert_int_equal(vh_sh(h, "exec 3<>\"$MNT/serial/chanfs.test\"; "
	                       "echo ping >&3; read -r l <&3; echo \"got $l\"",
	                       out, sizeof out), 0);
	assert_string_equal(out, "got ping\n");
	p->echo = false;
	/* echo >: the peer gets the line whole */
	assert_int_equal(vh_sh(h, "echo hello > \"$MNT/serial/chanfs.test\"",
	                       NULL, 0), 0);
	assert_true(peer_wait(p, "ping\nhello\n"));
	/* cat of a file into the port */
	assert_int_equal(vh_sh(h, "seq 1 2000 > \"$DIR/seq\"; cat \"$DIR/seq\" "
	                       "> \"$MNT/serial/chanfs.test\"", NULL, 0), 0);
	assert_true(peer_wait(p, "hello\n1\n2\n3\n"));
	assert_true(peer_wait(p, "\n1999\n2000\n"));
	assert_int_equal(peer_len(p), 5 + 6 + 8893);
	/* head -c reads what the peer sends, exactly */
	peer_send(p, "from the peer\n");
	assert_int_equal(vh_sh(h, "head -c 14 \"$MNT/serial/chanfs.test\"",
	                       out, sizeof out), 0);
	assert_string_equal(out, "from the peer\n");
	peer_stop(p);
}

#define LINES 300
#define LINE_LEN 3000   /* under the 4 KiB a write is kept whole */

struct writer {
	const char *path;
	char tag;
	unsigned short_writes;
};

/* A non-blocking writer, as a program with a poll loop writes: a short
 * count is followed by the rest of the line, so only a write that is
 * taken whole or not at all (EAGAIN) keeps the line together. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char line[LINE_LEN];
	int fd = open(w->path, O_WRONLY | O_NONBLOCK);

	if (fd < 0)
		return (void *)1;
	for (int i = 0; i < LINES; i++) {
		int n = snprintf(line, sizeof line, "%c%04d ", w->tag, i);
		size_t off = 0;

		memset(line + n, w->tag, LINE_LEN - n - 1);
		line[LINE_LEN - 1] = '\n';
		while (off < LINE_LEN) {
			ssize_t r = write(fd, line + off, LINE_LEN - off);
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			if (r > 0) {
				if ((size_t)r < LINE_LEN - off)
					w->short_writes++;
				off += (size_t)r;
				continue;
			}
			if (r < 0 && errno != EAGAIN) {
				close(fd);
				return (void *)1;
			}
			poll(&pf, 1, 1000);
		}
	}
	return close(fd) == 0 ? NULL : (void *)1;
}

static void test_two_writers_lines_arrive_whole(void **state)
{
	struct vh *h = *state;
	struct peer *p = peer_start(h->dir, "qemu.sock", true, false);
	struct writer w[2] = { { .tag = 'A' }, { .tag = 'B' } };
	pthread_t th[2];
	char spec[200];
	int next[2] = { 0, 0 };
	void *rc;

	snprintf(spec, sizeof spec, "p=%s", p->path);
	/* A 4 KiB window: the port is full time and again, so a write that
	 * did not wait for room for all of it would be split. */
	start_chanfs_buf(h, spec, "4K");
	for (int i = 0; i < 2; i++) {
		w[i].path = vh_path(h, "serial/p");
		w[i].path = strdup(w[i].path);
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]),
		                 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], &rc), 0);
		assert_null(rc);
		free((char *)w[i].path);
	}
	{
		double end = now_s() + VH_TIMEOUT_MS / 1000.0;

		while (peer_len(p) < 2u * LINES * LINE_LEN) {
			assert_true(now_s() < end);
			poll(NULL, 0, 10);
		}
	}
	assert_int_equal(peer_len(p), 2u * LINES * LINE_LEN);
	/* Every line is one writer's, whole, and each writer's in order. */
	for (size_t off = 0; off < p->len; off += LINE_LEN) {
		const char *l = p->got + off;
		char tag = l[0];
		char want[8];
		int k = tag == 'A' ? 0 : 1;

		assert_true(tag == 'A' || tag == 'B');
		snprintf(want, sizeof want, "%c%04d ", tag, next[k]++);
		assert_memory_equal(l, want, 6);
		for (size_t i = 6; i < LINE_LEN - 1; i++)
			if (l[i] != tag)
				fail_msg("line at %zu: byte %zu is '%c', not '%c'",
				         off, i, l[i], tag);
		assert_int_equal(l[LINE_LEN - 1], '\n');
	}
	assert_int_equal(next[0], LINES);
	assert_int_equal(next[1], LINES);
	assert_int_equal(w[0].short_writes + w[1].short_writes, 0);
	peer_stop(p);
}

struct reader {
	int fd;
	atomic_bool done;
	ssize_t n;
	char buf[64];
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	r->n = read(r->fd, r->buf, sizeof r->buf - 1);
	r->done = true;
	return NULL;
}

static void test_while_the_socket_is_down_reads_wait_and_writes_queue(void **state)
{
	struct vh *h = *state;
	char sock[200], spec[240], buf[16];
	struct pollfd pf;
	struct reader r = { 0 };
	struct peer *p;
	pthread_t th;
	int fd;

	snprintf(sock, sizeof sock, "%s/later.sock", h->dir);
	snprintf(spec, sizeof spec, "p=%s", sock);
	start_chanfs(h, spec);	/* nobody listens there yet */
	assert_true(status_has(h, "serial p socket disconnected (connecting to "));

	fd = open(vh_path(h, "serial/p"), O_RDWR | O_NONBLOCK);
	assert_true(fd >= 0);
	/* O_NONBLOCK: EAGAIN, not EOF. */
	assert_int_equal(read(fd, buf, sizeof buf), -1);
	assert_int_equal(errno, EAGAIN);
	/* poll: writable (writes queue), nothing to read, no hang-up. */
	pf.fd = fd;
	pf.events = POLLIN | POLLOUT | POLLRDHUP;
	assert_int_equal(poll(&pf, 1, 0), 1);
	assert_int_equal(pf.revents, POLLOUT);
	/* A write while down returns at once: queued in the port. */
	assert_int_equal(vh_sh(h, "echo queued > \"$MNT/serial/p\"", NULL, 0),
	                 0);
	/* A blocking read waits, and does not return 0. */
	r.fd = open(vh_path(h, "serial/p"), O_RDONLY);
	assert_true(r.fd >= 0);
	assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
	poll(NULL, 0, 500);
	assert_false(r.done);

	/* QEMU comes up: the queued line goes out, the peer's line comes in
	 * and wakes the reader. */
	p = peer_start(h->dir, "later.sock", true, false);
	assert_true(peer_wait(p, "queued\n"));
	assert_true(status_has(h, "serial p socket connected to "));
	peer_send(p, "wake\n");
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(r.n, 5);
	assert_memory_equal(r.buf, "wake\n", 5);
	close(r.fd);

	/* QEMU goes away and comes back: chanfs reconnects by itself; what
	 * was written meanwhile arrives. */
	p->drop = true;
	assert_true(status_has(h, "serial p socket disconnected"));
	assert_int_equal(write(fd, "again\n", 6), 6);
	assert_true(peer_wait(p, "queued\nagain\n"));
	assert_true(status_has(h, "serial p socket connected to "));
	assert_int_equal(p->conns, 2);
	close(fd);
	peer_stop(p);
}

static void test_listen_mode_serves_one_peer_and_refuses_a_second(void **state)
{
	struct vh *h = *state;
	char sock[200], spec[240], out[64];
	struct sockaddr_un sa;
	struct stat st;
	struct peer *p;
	size_t logoff;
	int second;

	snprintf(sock, sizeof sock, "%s/chanfs-serial.sock", h->dir);
	snprintf(spec, sizeof spec, "p=%s,listen", sock);
	start_chanfs(h, spec);
	assert_int_equal(stat(sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(status_has(h, "serial p socket disconnected (listening on "));
	p = peer_start(h->dir, "chanfs-serial.sock", false, true);
	assert_true(status_has(h, "serial p socket connected on "));
	assert_int_equal(vh_sh(h, "exec 3<>\"$MNT/serial/p\"; echo one >&3; "
	                       "read -r l <&3; echo \"$l\"", out, sizeof out), 0);
	assert_string_equal(out, "one\n");

	/* A second peer is turned away with one line; the first stays. */
	logoff = vh_log_size(h);
	unix_addr(sock, &sa);
	second = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(second, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(read(second, out, sizeof out), 0);
	close(second);
	{
		char *log = vh_log_since(h, logoff);

		assert_non_null(strstr(log, "serial p: "));
		assert_non_null(strstr(log, "refused a second peer"));
		free(log);
	}
	assert_int_equal(vh_sh(h, "exec 3<>\"$MNT/serial/p\"; echo two >&3; "
	                       "read -r l <&3; echo \"$l\"", out, sizeof out), 0);
	assert_string_equal(out, "two\n");
	assert_int_equal(p->conns, 1);
	peer_stop(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_shell_tools_reach_the_chardev_peer,
		                                vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(test_two_writers_lines_arrive_whole,
		                                vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(test_while_the_socket_is_down_reads_wait_and_writes_queue,
		                                vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(test_listen_mode_serves_one_peer_and_refuses_a_second,
		                                vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
