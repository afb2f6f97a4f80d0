/*
 * The console device through real files: the chanfs binary mounted in a
 * temporary directory with --console-socket and two --port names, the
 * simulated virtio-console guest (tests/vmm/guest_console.h) in this
 * process, and serial/NAME opened, read and written with O_NONBLOCK from
 * this same thread (the guest runs between the calls, so nothing here
 * may block).  Runs in every virtqueue variant (CONSOLE_VARIANT, as the
 * device test).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_console.h>

#include "chanfs/virtio.h"
#include "guest_console.h"
#include "vsock_harness.h"

#define WAIT_MS 10000

static struct gcon_opts variant_opts(void)
{
	const char *v = getenv("CONSOLE_VARIANT");
	struct gcon_opts o = { .layout = GCON_LAYOUT_B, .timeout_ms = WAIT_MS };

	if (v && !strcmp(v, "a")) {
		o.layout = GCON_LAYOUT_A;
		o.features = VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) |
		             VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT);
		o.indirect = true;
	} else if (v && !strcmp(v, "b")) {
		o.features = VBIT(VIRTIO_F_IN_ORDER_BIT) |
		             VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) |
		             VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT);
		o.indirect = true;
	}
	return o;
}

/* chanfs with the console device (ports org.test.a, org.test.b) and the
 * guest connected and told every port's name. */
static struct gcon *up(struct vh *h, const char *const extra[])
{
	char sock[128];
	const char *args[16] = { "--console-socket", NULL, "--port",
	                         "org.test.a", "--port", "org.test.b" };
	struct gcon_opts o = variant_opts();
	struct gcon *g;
	unsigned n = 6, i;

	snprintf(sock, sizeof sock, "%s/console.sock", h->dir);
	args[1] = sock;
	for (i = 0; extra && extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	assert_int_equal(vh_start_chanfs(h, args), 0);
	g = gcon_connect(sock, 2, &o);
	assert_non_null(g);
	for (i = 0; i < WAIT_MS / 50; i++) {
		if (gcon_port(g, 0)->name[0] && gcon_port(g, 1)->name[0])
			break;
		gcon_poll(g, 50);
	}
	assert_string_equal(gcon_port(g, 0)->name, "org.test.a");
	assert_string_equal(gcon_port(g, 1)->name, "org.test.b");
	return g;
}

static int port_open(struct vh *h, const char *name)
{
	char rel[64];
	int fd;

	snprintf(rel, sizeof rel, "serial/%s", name);
	fd = open(vh_path(h, rel), O_RDWR | O_NONBLOCK);
	assert_return_code(fd, errno);
	return fd;
}

/* Poll the guest until the status file has what (bounded). */
static void wait_status(struct vh *h, struct gcon *g, const char *what)
{
	char *s = NULL;
	int i;

	for (i = 0; i < WAIT_MS / 20; i++) {
		free(s);
		s = vh_status(h);
		if (s && strstr(s, what))
			break;
		gcon_poll(g, 20);
	}
	if (!s || !strstr(s, what))
		fail_msg("status lacks \"%s\":\n%s", what, s ? s : "(none)");
	free(s);
}

static bool host_open_is(struct gcon *g, unsigned port, bool open)
{
	int i;

	for (i = 0; i < WAIT_MS / 20; i++) {
		if (gcon_port(g, port)->host_open == open)
			return true;
		gcon_poll(g, 20);
	}
	return false;
}

static uint8_t pattern(unsigned seed, size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13) ^ (uint8_t)seed;
}

static void console_files_list_open_and_status(void **state)
{
	struct vh *h = *state;
	char out[256];
	struct gcon *g = up(h, NULL);
	int fd;

	assert_int_equal(vh_sh(h, "ls \"$MNT/serial\"", out, sizeof out), 0);
	assert_string_equal(out, "org.test.a\norg.test.b\n");
	wait_status(h, g, "console: running, 2 ports");
	wait_status(h, g, "serial org.test.b console port 1, guest closed");
	/* A host open: the guest hears PORT_OPEN 1; the last close: 0. */
	fd = port_open(h, "org.test.b");
	assert_true(host_open_is(g, 1, true));
	assert_false(gcon_port(g, 0)->host_open);
	assert_int_equal(gcon_open(g, 1), 0);
	wait_status(h, g, "serial org.test.b console port 1, guest open "
	            "(opened 1 times), 1 open");
	assert_int_equal(gcon_close(g, 1), 0);
	wait_status(h, g, "console port 1, guest closed (opened 1 times)");
	close(fd);
	assert_true(host_open_is(g, 1, false));
	assert_int_equal(gcon_port(g, 1)->host_opens, 1);
	assert_int_equal(gcon_port(g, 1)->host_closes, 1);
	assert_int_equal(gcon_errors(g), 0);
	gcon_free(g);
}

/* 1 MiB each way on both ports at once through the files. */
static void console_files_carry_data_both_ways(void **state)
{
	struct vh *h = *state;
	struct gcon *g = up(h, NULL);
	const size_t n = 1u << 20;
	size_t hs[2] = { 0 }, hg[2] = { 0 }, gs[2] = { 0 }, gg[2] = { 0 };
	uint8_t buf[8192];
	int fd[2], spins = 0;
	unsigned p;
	bool done = false;

	fd[0] = port_open(h, "org.test.a");
	fd[1] = port_open(h, "org.test.b");
	gcon_open(g, 0);
	gcon_open(g, 1);
	wait_status(h, g, "console port 1, guest open");
	while (!done) {
		done = true;
		for (p = 0; p < 2; p++) {
			size_t i, k;
			ssize_t r;

			k = n - hs[p] < sizeof buf ? n - hs[p] : sizeof buf;
			for (i = 0; i < k; i++)
				buf[i] = pattern(p, hs[p] + i);
			if (k && (r = write(fd[p], buf, k)) > 0)
				hs[p] += (size_t)r;
			else if (k)
				assert_int_equal(errno, EAGAIN);
			k = n - gs[p] < sizeof buf ? n - gs[p] : sizeof buf;
			for (i = 0; i < k; i++)
				buf[i] = pattern(p + 10, gs[p] + i);
			if (k) {
				r = gcon_write(g, p, buf, k);
				assert_true(r >= 0);
				gs[p] += (size_t)r;
			}
			r = read(fd[p], buf, sizeof buf);
			if (r > 0) {
				for (i = 0; i < (size_t)r; i++)
					if (buf[i] != pattern(p + 10, hg[p] + i))
						fail_msg("port %u: host byte %zu",
						         p, hg[p] + i);
				hg[p] += (size_t)r;
			} else {
				assert_int_equal(r, -1);
				assert_int_equal(errno, EAGAIN);
			}
			k = gcon_read(g, p, buf, sizeof buf);
			for (i = 0; i < k; i++)
				if (buf[i] != pattern(p, gg[p] + i))
					fail_msg("port %u: guest byte %zu", p,
					         gg[p] + i);
			gg[p] += k;
			if (hg[p] < n || gg[p] < n)
				done = false;
		}
		if (gcon_poll(g, 20) == 0 && ++spins > WAIT_MS / 20)
			fail_msg("no progress: host %zu %zu, guest %zu %zu",
			         hg[0], hg[1], gg[0], gg[1]);
	}
	assert_int_equal(gcon_errors(g), 0);
	close(fd[0]);
	close(fd[1]);
	gcon_free(g);
}

/* The guest takes nothing on port a: its writer gets EAGAIN and no
 * POLLOUT, one log line; port b carries data on. */
static void console_files_unread_port_waits_alone(void **state)
{
	struct vh *h = *state;
	struct gcon *g;
	uint8_t buf[4096];
	struct pollfd pf;
	char in[16] = "";
	size_t got = 0;
	int fa, fb, i;
	ssize_t r = 0;

	g = up(h, NULL);
	fa = port_open(h, "org.test.a");
	fb = port_open(h, "org.test.b");
	gcon_rx_hold(g, 0, true);
	gcon_open(g, 0);
	gcon_open(g, 1);
	wait_status(h, g, "console port 1, guest open");
	memset(buf, 'x', sizeof buf);
	for (i = 0; i < 1000; i++) {
		r = write(fa, buf, sizeof buf);
		if (r < 0) {
			assert_int_equal(errno, EAGAIN);
			gcon_poll(g, 50);
			if ((r = write(fa, buf, sizeof buf)) < 0)
				break;
		}
	}
	assert_true(r < 0 && errno == EAGAIN);
	pf.fd = fa;
	pf.events = POLLOUT;
	assert_int_equal(poll(&pf, 1, 0), 0);
	assert_int_equal(write(fb, "on b", 4), 4);
	for (i = 0; i < WAIT_MS / 20 && got < 4; i++) {
		gcon_poll(g, 20);
		got += gcon_read(g, 1, in + got, sizeof in - got);
	}
	assert_string_equal(in, "on b");
	wait_status(h, g, "unread windows 1");
	assert_int_equal(gcon_errors(g), 0);
	close(fa);
	close(fb);
	gcon_free(g);
}

/* Hostile control messages reach the real daemon: one line each in its
 * log, the ports go on. */
static void console_files_hostile_guest_logged_ports_go_on(void **state)
{
	struct vh *h = *state;
	static const uint8_t shortmsg[3] = { 1, 2, 3 };
	struct gcon *g = up(h, NULL);
	size_t off = vh_log_size(h);
	char *log;
	int i, fd;

	for (i = 0; i < 3; i++) {
		gcon_send_ctl_raw(g, shortmsg, sizeof shortmsg);
		gcon_send_ctl(g, 7, VIRTIO_CONSOLE_PORT_OPEN, 1);
		gcon_send_ctl(g, 0, 99, 0);
	}
	wait_status(h, g, "short 3, no such port 3, bad event 3");
	log = vh_log_since(h, off);
	assert_non_null(log);
	assert_non_null(strstr(log, "message of 3 bytes, shorter than 8"));
	assert_non_null(strstr(log, "for port 7, which does not exist"));
	assert_null(strstr(strstr(log, "for port 7") + 1, "for port 7"));
	free(log);
	fd = port_open(h, "org.test.a");
	assert_true(host_open_is(g, 0, true));
	close(fd);
	assert_int_equal(gcon_errors(g), 0);
	gcon_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			console_files_list_open_and_status, vh_setup,
			vh_teardown),
		cmocka_unit_test_setup_teardown(
			console_files_carry_data_both_ways, vh_setup,
			vh_teardown),
		cmocka_unit_test_setup_teardown(
			console_files_unread_port_waits_alone, vh_setup,
			vh_teardown),
		cmocka_unit_test_setup_teardown(
			console_files_hostile_guest_logged_ports_go_on,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
