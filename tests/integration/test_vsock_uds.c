/*
 * Hybrid vsock sockets (--uds PATH, vsock_uds.h) against the simulated
 * guest: a Firecracker-style client reaches a guest echo service and
 * bytes written right after its CONNECT line are not lost; half-close
 * both ways; flow control both ways; a guest connection to a host port
 * nobody listens on goes to PATH_PORT (a -l port wins; no socket there
 * is RST); every malformed
 * CONNECT line, a client that never finishes its line and a CONNECT to a
 * guest port nobody listens on close the socket with one log line while
 * the daemon keeps serving; a --uds path someone listens on or that is
 * not a socket is refused, a stale one replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "uds_client.h"
#include "vsock_harness.h"

static const char *uds_path(const struct vh *h, char *buf, size_t size,
                            const char *suffix)
{
	snprintf(buf, size, "%s/hv.sock%s", h->dir, suffix);
	return buf;
}

/* One write carries the CONNECT line and the first stream bytes. */
static void test_uds_connect_reaches_guest_and_keeps_bytes_after_newline(
	void **state)
{
	struct vh *h = *state;
	char path[160], line[64], buf[64];
	const char *cargs[] = { "--uds", uds_path(h, path, sizeof path, ""),
	                        NULL };
	const char *gargs[] = { "-l", "1234:echo", NULL };
	static const char msg[] = "CONNECT 1234\nfirst bytes";
	struct vh_guest *g;
	unsigned hp;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	fd = uc_dial(path);
	assert_true(fd >= 0);
	assert_int_equal(vh_write_all(fd, msg, sizeof msg - 1),
	                 sizeof msg - 1);
	assert_true(uc_read_line(fd, line, sizeof line) > 0);
	assert_int_equal(sscanf(line, "OK %u\n", &hp), 1);
	assert_true(hp >= 49152 && hp <= 65535);
	assert_int_equal(uc_read_full(fd, buf, 11), 11);
	assert_memory_equal(buf, "first bytes", 11);
	assert_int_equal(vh_write_all(fd, "more", 4), 4);
	assert_int_equal(uc_read_full(fd, buf, 4), 4);
	assert_memory_equal(buf, "more", 4);
	close(fd);
	snprintf(line, sizeof line, "conn lport=1234 rport=%u svc=echo rx=15",
	         hp);
	assert_non_null(vh_guest_wait(g, line, 1, VH_TIMEOUT_MS));
	assert_int_equal(vh_guest_stop(g), 0);
}

/* Host shutdown(SHUT_WR) → vsock SHUTDOWN; the echo answers everything
 * it got, then its close is EOF on the socket. */
static void test_uds_host_half_close_reaches_guest(void **state)
{
	struct vh *h = *state;
	char path[160];
	const char *cargs[] = { "--uds", uds_path(h, path, sizeof path, ""),
	                        NULL };
	const char *gargs[] = { "-l", "1234:echo", NULL };
	static uint8_t out[1 << 20], in[1 << 20];
	struct vh_guest *g;
	unsigned hp;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	guest_data_fill(h->seed, 0, out, sizeof out);

	fd = uc_connect_port(path, 1234, &hp);
	assert_true(fd >= 0);
	/* 1 MiB is four windows each way: write and read as the socket
	 * lets us, shut down our side after the last byte. */
	{
		size_t wr = 0, rd = 0;
		ssize_t n;

		while (rd < sizeof in) {
			short ev = uc_poll(fd, (short)(POLLIN |
			                   (wr < sizeof out ? POLLOUT : 0)),
			                   VH_TIMEOUT_MS);

			assert_true(ev != 0);
			if ((ev & POLLOUT) && wr < sizeof out) {
				n = send(fd, out + wr, sizeof out - wr,
				         MSG_DONTWAIT);
				assert_true(n > 0);
				wr += (size_t)n;
				if (wr == sizeof out)
					assert_int_equal(
						shutdown(fd, SHUT_WR), 0);
			}
			if (ev & POLLIN) {
				n = read(fd, in + rd, sizeof in - rd);
				assert_true(n > 0);
				rd += (size_t)n;
			}
		}
	}
	assert_memory_equal(in, out, sizeof out);
	/* the guest's close is a clean EOF (not a reset) */
	assert_true(uc_poll(fd, POLLIN, VH_TIMEOUT_MS) != 0);
	assert_int_equal(read(fd, in, 1), 0);
	close(fd);
	assert_non_null(vh_guest_wait(g, "conn lport=1234 svc=echo "
	                              "status=closed rx=1048576", 1,
	                              VH_TIMEOUT_MS));
	assert_int_equal(vh_guest_stop(g), 0);
}

struct echo_server {
	int lfd;
	uint64_t rx, tx;
	int err;
};

/* Accept one connection; read all of it to EOF (the guest's SHUTDOWN),
 * then write it all back (the other direction still works), then close. */
static void *echo_server(void *arg)
{
	struct echo_server *e = arg;
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	ssize_t n;
	int fd;

	if (!buf || !uc_poll(e->lfd, POLLIN, VH_TIMEOUT_MS)) {
		e->err = ETIMEDOUT;
		free(buf);
		return NULL;
	}
	fd = accept(e->lfd, NULL, NULL);
	if (fd < 0) {
		e->err = errno;
		free(buf);
		return NULL;
	}
	n = uc_read_full(fd, buf, cap);
	if (n < 0 || (size_t)n == cap)
		e->err = n < 0 ? (int)-n : EFBIG;
	else {
		e->rx = (uint64_t)n;
		if (vh_write_all(fd, buf, (size_t)n) == n)
			e->tx = (uint64_t)n;
	}
	close(fd);
	free(buf);
	return NULL;
}

struct opener {
	char path[256];
	ssize_t len;
	int err;
};

/* Open (a blocking accept) and read to EOF. */
static void *opener_read(void *arg)
{
	struct opener *o = arg;
	char buf[4096];
	int fd = open(o->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		o->err = errno;
		return NULL;
	}
	o->len = uc_read_full(fd, buf, sizeof buf);
	if (o->len < 0)
		o->err = (int)-o->len;
	close(fd);
	return NULL;
}

/* Guest → host port 6000 with nobody listening in the vsock sense:
 * PATH_6000 gets it.  The guest's SHUTDOWN(SEND) is EOF on the socket
 * and the echo written after it still reaches the guest.  A -l port and
 * a waiting vsock/listen opener win over their sockets; a port without
 * one is RST. */
static void test_uds_guest_connects_reach_path_port(void **state)
{
	struct vh *h = *state;
	char path[160], p6000[160], p7000[160], p7001[160];
	const char *cargs[] = { "--uds", uds_path(h, path, sizeof path, ""),
	                        "-l", "7000", NULL };
	const char *gargs[] = { "-l", "99:echo", "-c",
	                        "6000:echo-check=300000", "-c",
	                        "7000:send=1000", "-c", "7001:send=500", "-c",
	                        "6001:send=10", NULL };
	struct echo_server e = { 0 };
	struct opener o = { 0 };
	struct vh_guest *g;
	const char *l;
	pthread_t th, tho;
	char buf[2048];
	int lfd7, lfd71, fd;
	size_t off;

	uds_path(h, p6000, sizeof p6000, "_6000");
	uds_path(h, p7000, sizeof p7000, "_7000");
	uds_path(h, p7001, sizeof p7001, "_7001");
	e.lfd = uc_listen(p6000);
	assert_true(e.lfd >= 0);
	lfd7 = uc_listen(p7000);
	assert_true(lfd7 >= 0);
	lfd71 = uc_listen(p7001);
	assert_true(lfd71 >= 0);
	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	off = vh_log_size(h);
	assert_int_equal(pthread_create(&th, NULL, echo_server, &e), 0);
	/* an opener waits on vsock/listen/7001 before the guest comes */
	snprintf(o.path, sizeof o.path, "%s", vh_path(h, "vsock/listen/7001"));
	assert_int_equal(pthread_create(&tho, NULL, opener_read, &o), 0);
	assert_int_equal(vh_sh(h, "i=0; until ls \"$MNT/vsock/listen\" | "
	                       "grep -qx 7001; do i=$((i+1)); "
	                       "[ $i -lt 6000 ] || exit 1; sleep 0.02; done",
	                       NULL, 0), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	l = vh_guest_wait(g, "conn rport=6000 svc=echo-check", 1,
	                  VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_non_null(strstr(l, "check=ok"));
	assert_int_equal(vh_kv_u64(l, "rx"), 300000);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(e.err, 0);
	assert_int_equal(e.rx, 300000);
	assert_int_equal(e.tx, 300000);

	/* -l 7000 wins: the socket gets nothing, the file the connection
	 * (chanfs connects to PATH_P before it answers the guest, so once
	 * the guest is connected a wrong choice would show) */
	assert_non_null(vh_guest_wait(g, "open rport=7000 svc=send", 1,
	                              VH_TIMEOUT_MS));
	assert_int_equal(uc_poll(lfd7, POLLIN, 0), 0);
	fd = open(vh_path(h, "vsock/listen/7000"),
	          O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_SETFL, 0), 0);
	assert_int_equal(uc_read_full(fd, buf, sizeof buf), 1000);
	close(fd);
	/* so does the waiting opener */
	assert_non_null(vh_guest_wait(g, "open rport=7001 svc=send", 1,
	                              VH_TIMEOUT_MS));
	assert_int_equal(uc_poll(lfd71, POLLIN, 0), 0);
	assert_int_equal(pthread_join(tho, NULL), 0);
	assert_int_equal(o.err, 0);
	assert_int_equal(o.len, 500);

	/* nothing at PATH_6001: RST, one log line */
	l = vh_guest_wait(g, "conn rport=6001 svc=send", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_non_null(strstr(l, "status=refused"));
	assert_int_equal(uc_log_wait(h, off, "hv.sock_6001:", 1), 1);
	assert_int_equal(vh_guest_stop(g), 0);
	close(lfd7);
	close(lfd71);
	close(e.lfd);
}

/* Every malformed line is closed with one log line naming why; so is a
 * client that never finishes its line; CONNECT to a guest port nobody
 * listens on is closed too; a good client is served afterwards. */
static void test_uds_bad_connect_lines_close_with_one_log_line(void **state)
{
	struct vh *h = *state;
	char path[160];
	const char *cargs[] = { "--uds", uds_path(h, path, sizeof path, ""),
	                        "--connect-timeout", "500", NULL };
	const char *gargs[] = { "-l", "1234:echo", NULL };
	static const struct {
		const char *send, *why;
	} bad[] = {
		{ "CONNECT 1234 and more words to fill", "no newline" },
		{ "CONNECT 123456789012345678901234", "no newline" },
		{ "CONNECT abc\n", "port is not a number" },
		{ "CONNECT -1\n", "port is not a number" },
		{ "CONNECT +1234\n", "port is not a number" },
		{ "CONNECT 0x10\n", "port is not a number" },
		{ "CONNECT \n", "port is not a number" },
		{ "CONNECT 1234\r\n", "port is not a number" },
		{ "CONNECT 4294967296\n", "port out of range" },
		{ "CONNECT 99999999999\n", "port out of range" },
		{ "CONNECT 1234 extra\n", "extra words" },
		{ "CONNECT  1234\n", "port is not a number" },
		{ "connect 1234\n", "not a CONNECT line" },
		{ "HELLO\n", "not a CONNECT line" },
		{ "\n", "not a CONNECT line" },
	};
	struct vh_guest *g;
	unsigned i, hp, before;
	size_t off;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		off = vh_log_size(h);
		fd = uc_dial(path);
		assert_true(fd >= 0);
		assert_int_equal(vh_write_all(fd, bad[i].send,
		                              strlen(bad[i].send)),
		                 strlen(bad[i].send));
		if (!uc_closed(fd))
			fail_msg("'%s' was not closed", bad[i].send);
		close(fd);
		if (uc_log_wait(h, off, "bad CONNECT line", 1) != 1 ||
		    uc_log_count(h, off, bad[i].why) != 1)
			fail_msg("'%s': no single log line saying '%s'",
			         bad[i].send, bad[i].why);
	}

	/* the largest port parses (and nobody listens there) */
	off = vh_log_size(h);
	assert_int_equal(uc_connect_port(path, 4294967295u, &hp),
	                 -ECONNRESET);
	assert_int_equal(uc_log_wait(h, off, ":4294967295-2:", 1), 1);
	/* nobody listens on guest port 4321: closed, one line */
	off = vh_log_size(h);
	assert_int_equal(uc_connect_port(path, 4321, &hp), -ECONNRESET);
	assert_int_equal(uc_log_wait(h, off, "Connection refused", 1), 1);

	/* a client that sends nothing, or half a line, is closed */
	off = vh_log_size(h);
	fd = uc_dial(path);
	assert_true(fd >= 0);
	assert_true(uc_closed(fd));
	close(fd);
	fd = uc_dial(path);
	assert_true(fd >= 0);
	assert_int_equal(vh_write_all(fd, "CONNECT 12", 10), 10);
	assert_true(uc_closed(fd));
	close(fd);
	assert_int_equal(uc_log_wait(h, off, "no CONNECT line within 500 ms",
	                             2), 2);
	/* a client that leaves mid-line */
	off = vh_log_size(h);
	fd = uc_dial(path);
	assert_true(fd >= 0);
	assert_int_equal(vh_write_all(fd, "CONN", 4), 4);
	close(fd);
	assert_int_equal(uc_log_wait(h, off, "ended before its CONNECT line",
	                             1), 1);

	/* still serving */
	before = vh_guest_count(g, "conn lport=1234 svc=echo");
	assert_int_equal(uc_echo_once(path, 1234, "ping"), 0);
	assert_non_null(vh_guest_wait(g, "conn lport=1234 svc=echo", before + 1,
	                              VH_TIMEOUT_MS));
	assert_true(vh_chanfs_alive(h));
	assert_int_equal(vh_guest_stop(g), 0);
}

/* Wait until the status line of the channel starting with name shows
 * at least min bytes held in its window ring ("to_host", "to_guest"). */
static bool uds_window_held(const struct vh *h, const char *name,
                            const char *ring, unsigned min)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	unsigned waited, held = 0;
	char *st, *p, key[16];

	snprintf(key, sizeof key, " %s ", ring);
	for (waited = 0; waited < VH_TIMEOUT_MS; waited += 20) {
		st = vh_status(h);
		p = st ? strstr(st, name) : NULL;
		p = p ? strstr(p, key) : NULL;
		if (!p || sscanf(p + strlen(key), "%u/", &held) != 1)
			held = 0;
		free(st);
		if (held >= min)
			return true;
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "%s: %s holds %u bytes, not %u\n", name, ring, held,
	        min);
	return false;
}

/* Flow control both ways.  A guest that does not read: chanfs stops
 * reading the socket once its window to the guest is full (the client's
 * writes stop being taken, status shows the window held).  A client that
 * does not read: chanfs stops taking from the channel, the guest is held
 * back by credit, and then every byte arrives in order. */
static void test_uds_flow_control_both_ways(void **state)
{
	struct vh *h = *state;
	char path[160], needle[96];
	const char *cargs[] = { "--uds", uds_path(h, path, sizeof path, ""),
	                        NULL };
	const char *gargs[] = { "-l", "1236:sink,delay=600000", "-l",
	                        "1235:source=16M", NULL };
	static uint8_t buf[1 << 16];
	uint64_t written = 0, rd = 0, fnv = GUEST_FNV_INIT;
	struct vh_guest *g;
	const char *l;
	unsigned hp;
	ssize_t n;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	/* socket → guest: write until nothing is taken for 500 ms */
	fd = uc_connect_port(path, 1236, &hp);
	assert_true(fd >= 0);
	memset(buf, 'x', sizeof buf);
	while (written < (64u << 20) && uc_poll(fd, POLLOUT, 500)) {
		n = send(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0)
			written += (uint64_t)n;
	}
	/* the guest's 256 KiB and our 256 KiB window, plus socket buffers */
	assert_true(written > (256u << 10));
	assert_true(written < (2u << 20));
	/* what chanfs holds: between half its window (where it reads again)
	 * and all of it */
	snprintf(needle, sizeof needle, "vsock 3:1236-2:%u open", hp);
	assert_true(uds_window_held(h, needle, "to_guest", 128u << 10));
	close(fd);

	/* guest → socket: we read nothing until the guest stalls */
	fd = uc_connect_port(path, 1235, &hp);
	assert_true(fd >= 0);
	snprintf(needle, sizeof needle, "stall lport=1235 rport=%u", hp);
	assert_non_null(vh_guest_wait(g, needle, 1, VH_TIMEOUT_MS));
	/* and chanfs keeps what the full socket cannot take in its window
	 * (a relay that read on regardless would leave to_host empty) */
	snprintf(needle, sizeof needle, "vsock 3:1235-2:%u open", hp);
	assert_true(uds_window_held(h, needle, "to_host", 1));
	while ((n = uc_read_full(fd, buf, sizeof buf)) > 0) {
		fnv = guest_fnv1a(fnv, buf, (size_t)n);
		rd += (uint64_t)n;
	}
	assert_int_equal(n, 0);
	close(fd);
	assert_int_equal(rd, 16u << 20);
	snprintf(needle, sizeof needle,
	         "conn lport=1235 rport=%u svc=source status=closed", hp);
	l = vh_guest_wait(g, needle, 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_true(vh_kv_hex(l, "tx_fnv") == fnv);
	assert_int_equal(vh_guest_stop(g), 0);
}

/* The --uds path: a socket someone listens on and a file that is not a
 * socket are refused (exit 2, one line naming the path); a stale socket
 * is replaced and served. */
static void test_uds_path_live_or_not_socket_refused_stale_replaced(
	void **state)
{
	struct vh *h = *state;
	char path[160], other[160], out[4096];
	const char *cargs[] = { "--uds", uds_path(h, path, sizeof path, ""),
	                        NULL };
	static const char run[] =
		"\"$CHANFS_EXE\" -f -s \"$DIR/other.sock\" --uds \"$1\" "
		"\"$MNT\" 2>\"$DIR/err\"; echo \"rc=$?\"; cat \"$DIR/err\"";
	char script[512];
	struct stat st;
	unsigned hp;
	int lfd, fd;
	FILE *f;

	/* someone listens there */
	lfd = uc_listen(path);
	assert_true(lfd >= 0);
	snprintf(script, sizeof script, "set -- '%s'; %s", path, run);
	assert_int_equal(vh_sh(h, script, out, sizeof out), 0);
	if (!strstr(out, "rc=2") || !strstr(out, "is listening there"))
		fail_msg("live socket: %s", out);
	close(lfd);
	/* not a socket */
	uds_path(h, other, sizeof other, ".file");
	f = fopen(other, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(script, sizeof script, "set -- '%s'; %s", other, run);
	assert_int_equal(vh_sh(h, script, out, sizeof out), 0);
	if (!strstr(out, "rc=2") || !strstr(out, "not a socket"))
		fail_msg("regular file: %s", out);

	/* the socket file lfd left behind is stale: replaced, mode 0600 */
	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(uc_log_wait(h, 0, "replacing a stale socket", 1) == 1);
	/* no VMM yet: CONNECT is closed (ENOTCONN), served all the same */
	fd = uc_connect_port(path, 1234, &hp);
	assert_int_equal(fd, -ECONNRESET);
	assert_true(uc_log_wait(h, 0, "CONNECT 1234: Transport endpoint is "
	                        "not connected", 1) == 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_uds_connect_reaches_guest_and_keeps_bytes_after_newline,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_uds_host_half_close_reaches_guest,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_uds_flow_control_both_ways,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_uds_guest_connects_reach_path_port,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_uds_bad_connect_lines_close_with_one_log_line,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_uds_path_live_or_not_socket_refused_stale_replaced,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
