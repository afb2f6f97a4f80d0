/*
 * The console device (backend/console.c) against the simulated
 * virtio-console guest (tests/vmm/guest_console.h): the device, its vu
 * server and the serial port table run on their loop in a second thread;
 * the test is the guest (main thread) and the host side, whose file
 * operations (the `serial` directory's open/release, chan_read,
 * chan_write) it runs on the loop thread through a pipe.  Each test runs
 * in every virtqueue variant (CONSOLE_VARIANT: "" plain, "a" Linux 6.1's
 * two-descriptor buffers with EVENT_IDX and indirect tables, "b" one
 * buffer with IN_ORDER, EVENT_IDX and indirect tables).
 *
 * The device's log lines go to stderr, which each test copies into a
 * file (a thread tees it) to count them.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <linux/virtio_console.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/console.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/serial.h"
#include "chanfs/virtio.h"
#include "chanfs/vu.h"
#include "guest_console.h"
#include "vmm.h"

#define WAIT_MS 5000
#define NAME_A "org.test.a"
#define NAME_B "org.test.b"

struct dev {
	pthread_t th;
	struct loop *l;
	struct chan_set chans;
	struct serial *s;
	struct chandirs dirs;
	struct console *con;
	struct vu *vu;
	int cmd[2], done[2];
	struct event *cmd_ev;
	char dir[64], sock[96], log[96];
	int saved_stderr, tee[2], log_fd;
	pthread_t tee_th;
	unsigned marks;            /* log_count's markers */
	struct chan *open[4];      /* the host's open of port i (test's) */
	struct gcon *g;
};

struct call {
	void (*fn)(struct dev *d, void *arg);
	void *arg;
};

static void dev_cmd(evutil_socket_t fd, short what, void *arg)
{
	struct dev *d = arg;
	struct call c;
	char b = 1;

	(void)what;
	if (read(fd, &c, sizeof c) != sizeof c)
		return;
	if (!c.fn)
		loop_stop(d->l);
	else
		c.fn(d, c.arg);
	if (write(d->done[1], &b, 1) != 1)
		abort();
}

/* Run fn(d, arg) on the loop thread and wait for it. */
static void on_loop(struct dev *d, void (*fn)(struct dev *, void *), void *arg)
{
	struct call c = { fn, arg };
	char b;

	assert_int_equal(write(d->cmd[1], &c, sizeof c), sizeof c);
	assert_int_equal(read(d->done[0], &b, 1), 1);
}

static void *dev_thread(void *arg)
{
	struct dev *d = arg;

	loop_run(d->l);
	return NULL;
}

/* Copy what reaches stderr to the real stderr and to the log file. */
static void *tee_thread(void *arg)
{
	struct dev *d = arg;
	char buf[4096];
	ssize_t n;

	while ((n = read(d->tee[0], buf, sizeof buf)) > 0) {
		if (write(d->saved_stderr, buf, (size_t)n) < 0 ||
		    write(d->log_fd, buf, (size_t)n) < 0)
			break;
	}
	return NULL;
}

static const char *variant(void)
{
	const char *v = getenv("CONSOLE_VARIANT");

	return v ? v : "";
}

static struct gcon_opts variant_opts(void)
{
	struct gcon_opts o = { .layout = GCON_LAYOUT_B };

	if (!strcmp(variant(), "a")) {
		o.layout = GCON_LAYOUT_A;
		o.features = VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) |
		             VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT);
		o.indirect = true;
	} else if (!strcmp(variant(), "b")) {
		o.features = VBIT(VIRTIO_F_IN_ORDER_BIT) |
		             VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) |
		             VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT);
		o.indirect = true;
	}
	return o;
}

/* A device with ports names[0..n) and windows of window bytes. */
static struct dev *dev_new(const char *const *names, unsigned n, bool con,
                           uint32_t window)
{
	struct dev *d = calloc(1, sizeof *d);
	struct console_config cfg = { names, n, con };

	assert_non_null(d);
	snprintf(d->dir, sizeof d->dir, "/tmp/chanfs-con-XXXXXX");
	assert_non_null(mkdtemp(d->dir));
	snprintf(d->sock, sizeof d->sock, "%s/vu.sock", d->dir);
	snprintf(d->log, sizeof d->log, "%s/log", d->dir);
	/* The device's lines, to count them. */
	fflush(stderr);
	d->saved_stderr = dup(2);
	d->log_fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
	                 0600);
	assert_return_code(d->log_fd, errno);
	assert_int_equal(pipe(d->tee), 0);
	assert_return_code(dup2(d->tee[1], 2), errno);
	close(d->tee[1]);
	setvbuf(stderr, NULL, _IONBF, 0);
	assert_int_equal(pthread_create(&d->tee_th, NULL, tee_thread, d), 0);
	log_init("chanfs", false);
	d->l = loop_new();
	assert_non_null(d->l);
	chan_set_init(&d->chans);
	chandirs_init(&d->dirs);
	d->s = serial_new(d->l, &d->chans, window);
	assert_non_null(d->s);
	assert_int_equal(serial_register(d->s, &d->dirs), 0);
	d->con = console_new(d->l, d->s, &cfg);
	assert_non_null(d->con);
	d->vu = vu_new(d->l, d->sock, console_vu_device(d->con), d->con);
	assert_non_null(d->vu);
	assert_int_equal(pipe(d->cmd), 0);
	assert_int_equal(pipe(d->done), 0);
	d->cmd_ev = event_new(loop_base(d->l), d->cmd[0], EV_READ | EV_PERSIST,
	                      dev_cmd, d);
	assert_non_null(d->cmd_ev);
	event_add(d->cmd_ev, NULL);
	assert_int_equal(pthread_create(&d->th, NULL, dev_thread, d), 0);
	return d;
}

static void dev_close_all(struct dev *d, void *arg);

static void dev_free(struct dev *d)
{
	char path[128];

	gcon_free(d->g);
	on_loop(d, dev_close_all, NULL);
	on_loop(d, NULL, NULL);
	pthread_join(d->th, NULL);
	event_free(d->cmd_ev);
	vu_free(d->vu);
	console_free(d->con);
	serial_free(d->s);
	loop_free(d->l);
	close(d->cmd[0]);
	close(d->cmd[1]);
	close(d->done[0]);
	close(d->done[1]);
	fflush(stderr);
	dup2(d->saved_stderr, 2);   /* the pipe's last writer goes */
	pthread_join(d->tee_th, NULL);
	close(d->tee[0]);
	close(d->log_fd);
	close(d->saved_stderr);
	unlink(d->log);
	snprintf(path, sizeof path, "%s", d->dir);
	rmdir(path);
	free(d);
}

/* How many log lines contain what.  Lines pass the tee in order: once a
 * marker written after them is in the file, so are they. */
static void h_nop(struct dev *d, void *arg)
{
	(void)d;
	(void)arg;
}

static bool log_has(struct dev *d, const char *what)
{
	FILE *f = fopen(d->log, "r");
	char line[1024];
	bool found = false;

	assert_non_null(f);
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, what) != NULL;
	fclose(f);
	return found;
}

static unsigned log_count(struct dev *d, const char *what)
{
	char mark[64];
	FILE *f;
	char line[1024];
	unsigned n = 0, i;

	on_loop(d, h_nop, NULL);   /* the loop's lines are written */
	snprintf(mark, sizeof mark, "test: log mark %u", ++d->marks);
	fprintf(stderr, "%s\n", mark);
	for (i = 0; i < WAIT_MS / 10 && !log_has(d, mark); i++)
		usleep(10000);
	f = fopen(d->log, "r");
	assert_non_null(f);
	while (fgets(line, sizeof line, f))
		if (strstr(line, what))
			n++;
	fclose(f);
	return n;
}

/* --- host side operations, on the loop thread --------------------------- */

struct hop {
	unsigned port;
	const char *name;
	void *buf;
	size_t len;
	ssize_t r;
	char *text;
};

static void h_open(struct dev *d, void *arg)
{
	struct hop *h = arg;
	struct chandir *dir = chandir_find(&d->dirs, "serial");

	h->r = dir->ops->open(dir->ctx, h->name, &d->open[h->port]);
}

static void h_close(struct dev *d, void *arg)
{
	struct hop *h = arg;
	struct chandir *dir = chandir_find(&d->dirs, "serial");

	if (dir->ops->release)
		dir->ops->release(dir->ctx, h->name, d->open[h->port]);
	else
		chan_close(d->open[h->port]);
	d->open[h->port] = NULL;
}

static const char *port_name(unsigned port)
{
	return port == 0 ? NAME_A : NAME_B;
}

static void dev_close_all(struct dev *d, void *arg)
{
	struct hop h = { 0 };
	unsigned i;

	(void)arg;
	for (i = 0; i < 2; i++) {
		if (!d->open[i])
			continue;
		h.port = i;
		h.name = port_name(i);
		h_close(d, &h);
	}
}

static void h_write(struct dev *d, void *arg)
{
	struct hop *h = arg;

	h->r = chan_write(d->open[h->port], h->buf, h->len);
}

static void h_read(struct dev *d, void *arg)
{
	struct hop *h = arg;

	h->r = chan_read(d->open[h->port], h->buf, h->len);
}

static void h_status(struct dev *d, void *arg)
{
	struct hop *h = arg;
	struct chandir *dir = chandir_find(&d->dirs, "serial");
	size_t len;
	FILE *f = open_memstream(&h->text, &len);

	console_status(d->con, f);
	dir->ops->status(dir->ctx, f);
	fclose(f);
}

static void host_open(struct dev *d, unsigned port)
{
	struct hop h = { .port = port, .name = port_name(port) };

	on_loop(d, h_open, &h);
	assert_int_equal(h.r, 0);
}

static void host_close(struct dev *d, unsigned port)
{
	struct hop h = { .port = port, .name = port_name(port) };

	on_loop(d, h_close, &h);
}

static ssize_t host_write(struct dev *d, unsigned port, const void *buf,
                          size_t len)
{
	struct hop h = { .port = port, .buf = (void *)buf, .len = len };

	on_loop(d, h_write, &h);
	return h.r;
}

static ssize_t host_read(struct dev *d, unsigned port, void *buf, size_t len)
{
	struct hop h = { .port = port, .buf = buf, .len = len };

	on_loop(d, h_read, &h);
	return h.r;
}

/* The status text (free it). */
static char *status(struct dev *d)
{
	struct hop h = { 0 };

	on_loop(d, h_status, &h);
	return h.text;
}

static void assert_status_has(struct dev *d, const char *what)
{
	char *s = status(d);

	if (!strstr(s, what))
		fail_msg("status lacks \"%s\":\n%s", what, s);
	free(s);
}

/* --- guest side -------------------------------------------------------- */

static bool named(struct gcon *g, void *arg)
{
	unsigned n = *(unsigned *)arg, i;

	for (i = 0; i < n; i++)
		if (!gcon_port(g, i)->name[0])
			return false;
	return true;
}

static bool host_opened(struct gcon *g, void *arg)
{
	return gcon_port(g, *(unsigned *)arg)->host_open;
}

static bool host_closed(struct gcon *g, void *arg)
{
	return !gcon_port(g, *(unsigned *)arg)->host_open;
}

/* Connect the guest and wait for every port's name. */
static struct gcon *guest_up(struct dev *d, unsigned nports,
                             const struct gcon_opts *extra)
{
	struct gcon_opts o = variant_opts();
	struct gcon *g;

	if (extra) {
		o.no_device_ready = extra->no_device_ready;
		o.ctl_buf_size = extra->ctl_buf_size;
		o.no_multiport = extra->no_multiport;
	}
	g = gcon_connect(d->sock, nports, &o);
	assert_non_null(g);
	d->g = g;
	if (!o.no_device_ready && !o.no_multiport && !o.ctl_buf_size)
		assert_int_equal(gcon_until(g, named, &nports, WAIT_MS), 1);
	return g;
}

/* Poll the guest a little (what the device sends meanwhile arrives). */
static void settle(struct gcon *g)
{
	while (gcon_poll(g, 100) > 0)
		;
}

/* The status shows what the device has heard: poll until it says so. */
static void wait_status(struct dev *d, const char *what)
{
	int i;

	for (i = 0; i < WAIT_MS / 20; i++) {
		char *s = status(d);
		bool ok = strstr(s, what) != NULL;

		free(s);
		if (ok)
			return;
		gcon_poll(d->g, 20);
	}
	assert_status_has(d, what);
}

/* The guest reads len bytes of port into buf (bounded wait); returns the
 * count it got. */
static size_t guest_read_n(struct gcon *g, unsigned port, void *buf,
                           size_t len)
{
	size_t got = 0;
	int spins = 0;

	while (got < len && spins++ < WAIT_MS / 20) {
		gcon_poll(g, 20);
		got += gcon_read(g, port, (uint8_t *)buf + got, len - got);
	}
	return got;
}

static uint8_t pattern(unsigned seed, size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13) ^ (uint8_t)seed;
}

/* --- tests ------------------------------------------------------------ */

static const char *const two[] = { NAME_A, NAME_B };

static void console_handshake_names_ports_and_tracks_opens(void **state)
{
	struct dev *d = dev_new(two, 2, false, 65536);
	unsigned one = 1, zero = 0;
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, NULL);
	assert_int_equal(gcon_max_nr_ports(g), 2);
	assert_true(gcon_features(g) & VBIT(VIRTIO_CONSOLE_F_MULTIPORT));
	assert_string_equal(gcon_port(g, 0)->name, NAME_A);
	assert_string_equal(gcon_port(g, 1)->name, NAME_B);
	assert_false(gcon_port(g, 0)->is_console);
	assert_int_equal(gcon_events(g, VIRTIO_CONSOLE_PORT_ADD), 2);
	assert_int_equal(gcon_events(g, VIRTIO_CONSOLE_CONSOLE_PORT), 0);
	assert_status_has(d, "device ready");
	assert_status_has(d, "serial " NAME_B " console port 1, guest closed");

	/* The host opens port 1: the guest hears PORT_OPEN 1, port 0
	 * stays closed for it. */
	host_open(d, 1);
	assert_int_equal(gcon_until(g, host_opened, &one, WAIT_MS), 1);
	settle(g);
	assert_false(gcon_port(g, 0)->host_open);
	assert_int_equal(gcon_port(g, 1)->host_opens, 1);

	/* The guest opens and closes it: status follows. */
	assert_int_equal(gcon_open(g, 1), 0);
	wait_status(d, "console port 1, guest open (opened 1 times)");
	assert_int_equal(gcon_close(g, 1), 0);
	wait_status(d, "console port 1, guest closed (opened 1 times)");

	/* The host's last close: PORT_OPEN 0. */
	host_close(d, 1);
	assert_int_equal(gcon_until(g, host_closed, &one, WAIT_MS), 1);
	assert_int_equal(gcon_port(g, 1)->host_closes, 1);

	/* A port opened before the guest is ready is announced after
	 * PORT_READY: port 0 now. */
	host_open(d, 0);
	assert_int_equal(gcon_until(g, host_opened, &zero, WAIT_MS), 1);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static void console_host_open_before_guest_is_sent_after_port_ready(
	void **state)
{
	struct dev *d = dev_new(two, 2, false, 65536);
	unsigned one = 1;
	struct gcon *g;

	(void)state;
	host_open(d, 1);
	g = guest_up(d, 2, NULL);
	assert_int_equal(gcon_until(g, host_opened, &one, WAIT_MS), 1);
	settle(g);
	assert_false(gcon_port(g, 0)->host_open);
	assert_int_equal(gcon_port(g, 1)->host_opens, 1);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static void console_port0_is_offered_as_console(void **state)
{
	struct dev *d = dev_new(two, 2, true, 65536);
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, NULL);
	settle(g);
	assert_true(gcon_port(g, 0)->is_console);
	assert_false(gcon_port(g, 1)->is_console);
	assert_int_equal(gcon_events(g, VIRTIO_CONSOLE_CONSOLE_PORT), 1);
	/* Linux opens its console port at once. */
	wait_status(d, "console port 0, guest open");
	assert_status_has(d, "(port 0 a console)");
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

/* Move n bytes of pattern seed each way on every port at once, through
 * windows of the device's size; check every byte. */
static void both_ways(struct dev *d, struct gcon *g, unsigned nports,
                      size_t n)
{
	size_t hsent[2] = { 0 }, hgot[2] = { 0 }, gsent[2] = { 0 };
	size_t ggot[2] = { 0 };
	uint8_t buf[8192];
	unsigned p, spins = 0;
	bool done = false;

	while (!done) {
		done = true;
		for (p = 0; p < nports; p++) {
			size_t i, k;
			ssize_t r;

			/* host → guest */
			k = n - hsent[p] < sizeof buf ? n - hsent[p] :
			    sizeof buf;
			for (i = 0; i < k; i++)
				buf[i] = pattern(p, hsent[p] + i);
			if (k) {
				r = host_write(d, p, buf, k);
				if (r != -EAGAIN) {
					assert_true(r > 0);
					hsent[p] += (size_t)r;
				}
			}
			/* guest → host */
			k = n - gsent[p] < sizeof buf ? n - gsent[p] :
			    sizeof buf;
			for (i = 0; i < k; i++)
				buf[i] = pattern(p + 10, gsent[p] + i);
			if (k) {
				r = gcon_write(g, p, buf, k);
				assert_true(r >= 0);
				gsent[p] += (size_t)r;
			}
			/* the host reads */
			r = host_read(d, p, buf, sizeof buf);
			if (r != -EAGAIN) {
				assert_true(r > 0);
				for (i = 0; i < (size_t)r; i++)
					if (buf[i] != pattern(p + 10,
					                      hgot[p] + i))
						fail_msg("port %u: host byte "
						         "%zu differs", p,
						         hgot[p] + i);
				hgot[p] += (size_t)r;
			}
			/* the guest reads */
			k = gcon_read(g, p, buf, sizeof buf);
			for (i = 0; i < k; i++)
				if (buf[i] != pattern(p, ggot[p] + i))
					fail_msg("port %u: guest byte %zu "
					         "differs", p, ggot[p] + i);
			ggot[p] += k;
			if (hgot[p] < n || ggot[p] < n)
				done = false;
			assert_true(hgot[p] <= n && ggot[p] <= n);
		}
		if (gcon_poll(g, 20) == 0 && ++spins > WAIT_MS / 20)
			fail_msg("no progress: host got %zu/%zu, guest got "
			         "%zu/%zu", hgot[0], hgot[1], ggot[0], ggot[1]);
	}
}

static void console_data_both_ways_on_two_ports(void **state)
{
	struct dev *d = dev_new(two, 2, false, 65536);
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, NULL);
	host_open(d, 0);
	host_open(d, 1);
	assert_int_equal(gcon_open(g, 0), 0);
	assert_int_equal(gcon_open(g, 1), 0);
	wait_status(d, "console port 1, guest open");
	both_ways(d, g, 2, 1u << 20);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static bool tx_stalled(struct gcon *g, void *arg)
{
	(void)arg;
	return gcon_port(g, 1)->tx_inflight > 0;
}

/* The guest sends what it can of out[*sent, len) on port. */
static void guest_send_more(struct gcon *g, unsigned port, const uint8_t *out,
                            size_t len, size_t *sent)
{
	ssize_t r;

	while (*sent < len) {
		r = gcon_write(g, port, out + *sent, len - *sent);
		assert_true(r >= 0);
		if (r == 0)
			return;
		*sent += (size_t)r;
	}
}

/* The host reads len bytes of port into in while the guest sends the
 * rest of out; then checks they are out, once each, and nothing more. */
static void host_read_all(struct dev *d, struct gcon *g, unsigned port,
                          uint8_t *in, const uint8_t *out, size_t len,
                          size_t sent)
{
	size_t got = 0;
	ssize_t r;

	while (got < len) {
		r = host_read(d, port, in + got, len - got);
		if (r == -EAGAIN) {
			guest_send_more(g, port, out, len, &sent);
			assert_true(gcon_poll(g, WAIT_MS) >= 0);
			continue;
		}
		assert_true(r > 0);
		got += (size_t)r;
	}
	assert_memory_equal(in, out, len);
	settle(g);
	assert_int_equal(gcon_port(g, port)->tx_inflight, 0);
	assert_int_equal(host_read(d, port, in, 1), -EAGAIN);
}

static void console_guest_tx_waits_for_room_and_loses_nothing(void **state)
{
	struct dev *d = dev_new(two, 2, false, 16384);
	static uint8_t out[100000], in[100000];
	size_t i, sent = 0;
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, NULL);
	host_open(d, 1);
	for (i = 0; i < sizeof out; i++)
		out[i] = pattern(7, i);
	/* Far more than the 16 KiB window, the host not reading: the device
	 * stops taking buffers, they stay the guest's. */
	guest_send_more(g, 1, out, sizeof out, &sent);
	settle(g);
	assert_true(tx_stalled(g, NULL));
	assert_status_has(d, "guest data waits for room");
	/* The host reads: everything arrives, in order, once. */
	host_read_all(d, g, 1, in, out, sizeof out, sent);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static void console_pause_midway_takes_no_byte_twice(void **state)
{
	struct dev *d = dev_new(two, 2, false, 65536);
	static uint8_t out[101000], in[101000];
	size_t i, sent;
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, NULL);
	host_open(d, 0);
	for (i = 0; i < sizeof out; i++)
		out[i] = pattern(3, i);
	/* 1000 bytes, then 4 KiB buffers: the 64 KiB window ends inside
	 * one, which the device holds half taken across the pause. */
	assert_int_equal(gcon_write(g, 0, out, 1000), 1000);
	sent = 1000;
	guest_send_more(g, 0, out, sizeof out, &sent);
	assert_int_equal(sent, sizeof out);
	settle(g);
	assert_status_has(d, "guest data waits for room");
	assert_int_equal(gcon_pause(g), 0);
	assert_int_equal(gcon_resume(g), 0);
	host_read_all(d, g, 0, in, out, sizeof out, sent);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static void console_guest_not_reading_blocks_only_its_port(void **state)
{
	struct dev *d = dev_new(two, 2, false, 16384);
	uint8_t buf[4096];
	size_t total = 0;
	unsigned i;
	ssize_t r;
	struct gcon *g;

	(void)state;
	memset(buf, 'x', sizeof buf);
	g = guest_up(d, 2, NULL);
	host_open(d, 0);
	host_open(d, 1);
	gcon_open(g, 0);
	gcon_open(g, 1);
	wait_status(d, "console port 1, guest open");
	/* Port 0's guest takes nothing: no receive buffer comes back. */
	gcon_rx_hold(g, 0, true);
	for (i = 0; i < 200; i++) {
		r = host_write(d, 0, buf, sizeof buf);
		if (r == -EAGAIN) {
			settle(g);
			r = host_write(d, 0, buf, sizeof buf);
			if (r == -EAGAIN)
				break;
		}
		assert_true(r > 0);
		total += (size_t)r;
	}
	assert_int_equal(r, -EAGAIN);
	/* Its posted buffers (128 x 4 KiB) and the window took what they
	 * could, then the writer waits. */
	assert_true(total <= 128 * 4096 + 16384);
	/* Port 1 still carries data both ways. */
	{
		static const char msg[] = "still here";
		char in[64] = "";

		assert_int_equal(host_write(d, 1, msg, sizeof msg), sizeof msg);
		assert_int_equal(guest_read_n(g, 1, in, sizeof msg),
		                 sizeof msg);
		assert_string_equal(in, msg);
		assert_int_equal(gcon_write(g, 1, msg, sizeof msg), sizeof msg);
		settle(g);
		assert_int_equal(host_read(d, 1, in, sizeof in), sizeof msg);
	}
	assert_int_equal(log_count(d, "window full and the guest"), 1);
	assert_status_has(d, "unread windows 1");
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static void console_hostile_control_messages_one_line_each(void **state)
{
	struct dev *d = dev_new(two, 2, false, 65536);
	static const uint8_t shortmsg[4] = { 0, 0, 0, 0 };
	uint8_t longmsg[16] = { 0 };
	unsigned one = 1, i, adds;
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, NULL);
	longmsg[4] = VIRTIO_CONSOLE_PORT_OPEN;
	longmsg[6] = 1;
	for (i = 0; i < 3; i++) {
		assert_int_equal(gcon_send_ctl_raw(g, shortmsg, 4), 0);
		assert_int_equal(gcon_send_ctl_raw(g, longmsg, 16), 0);
		assert_int_equal(gcon_send_ctl(g, 2,
		                 VIRTIO_CONSOLE_PORT_OPEN, 1), 0);
		assert_int_equal(gcon_send_ctl(g, VIRTIO_CONSOLE_BAD_ID,
		                 VIRTIO_CONSOLE_PORT_READY, 1), 0);
		assert_int_equal(gcon_send_ctl(g, 0, 42, 1), 0);
		assert_int_equal(gcon_send_ctl(g, 1,
		                 VIRTIO_CONSOLE_PORT_NAME, 1), 0);
		settle(g);
	}
	adds = gcon_events(g, VIRTIO_CONSOLE_PORT_ADD);
	/* DEVICE_READY over and over: one line, the ports announced again
	 * (bits, not a queue: nothing piles up). */
	for (i = 0; i < 50; i++)
		assert_int_equal(gcon_send_ctl(g, VIRTIO_CONSOLE_BAD_ID,
		                 VIRTIO_CONSOLE_DEVICE_READY, 1), 0);
	settle(g);
	assert_true(gcon_events(g, VIRTIO_CONSOLE_PORT_ADD) > adds);
	assert_true(gcon_events(g, VIRTIO_CONSOLE_PORT_ADD) <= adds + 2 * 50);
	settle(g);
	assert_int_equal(log_count(d, "shorter than 8"), 1);
	assert_int_equal(log_count(d, "a driver's are 8"), 1);
	assert_int_equal(log_count(d, "which does not exist"), 1);
	/* A device's events and unknown ones: one kind, one line. */
	assert_int_equal(log_count(d, "is not a driver's message"), 1);
	/* 50 of a kind: the first and the 10th are logged, the 10th with
	 * its count. */
	assert_int_equal(log_count(d, "DEVICE_READY again"), 2);
	assert_int_equal(log_count(d, "(10 times)"), 1);
	assert_status_has(d, "short 3, oversized 3, no such port 6, "
	                  "bad event 6, repeated DEVICE_READY 50");
	/* The ports work as before. */
	host_open(d, 1);
	assert_int_equal(gcon_until(g, host_opened, &one, WAIT_MS), 1);
	assert_int_equal(gcon_open(g, 0), 0);
	assert_int_equal(gcon_open(g, 1), 0);
	host_open(d, 0);
	wait_status(d, "console port 1, guest open");
	both_ways(d, g, 2, 65536);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static void console_out_of_order_and_failed_messages_ignored(void **state)
{
	struct dev *d = dev_new(two, 2, false, 65536);
	struct gcon_opts o = { .no_device_ready = true };
	unsigned two_ports = 2;
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, &o);
	/* Before DEVICE_READY: no port was added. */
	assert_int_equal(gcon_send_ctl(g, 0, VIRTIO_CONSOLE_PORT_READY, 1), 0);
	assert_int_equal(gcon_send_ctl(g, 1, VIRTIO_CONSOLE_PORT_OPEN, 1), 0);
	assert_int_equal(gcon_send_ctl(g, VIRTIO_CONSOLE_BAD_ID,
	                 VIRTIO_CONSOLE_DEVICE_READY, 0), 0);
	settle(g);
	assert_int_equal(gcon_events(g, VIRTIO_CONSOLE_PORT_ADD), 0);
	assert_int_equal(gcon_events(g, VIRTIO_CONSOLE_PORT_NAME), 0);
	assert_int_equal(log_count(d, "which was not added yet"), 1);
	assert_int_equal(log_count(d, "before its PORT_READY"), 0);
	assert_int_equal(log_count(d, "failed to set the device up"), 1);
	assert_status_has(d, "waiting for DEVICE_READY");
	/* Then the real handshake works. */
	assert_int_equal(gcon_send_ctl(g, VIRTIO_CONSOLE_BAD_ID,
	                 VIRTIO_CONSOLE_DEVICE_READY, 1), 0);
	assert_int_equal(gcon_until(g, named, &two_ports, WAIT_MS), 1);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static void console_small_control_buffers_returned_empty(void **state)
{
	struct dev *d = dev_new(two, 2, false, 65536);
	struct gcon_opts o = { .ctl_buf_size = 12 };
	unsigned one = 1;
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, &o);
	settle(g);
	/* PORT_ADD (8 bytes) fits, PORT_NAME (8 + 11) never does: the
	 * device gives the buffer back empty and drops the message (the
	 * guest reposting at once does not make it spin), one line. */
	assert_int_equal(gcon_events(g, VIRTIO_CONSOLE_PORT_ADD), 2);
	assert_int_equal(gcon_events(g, VIRTIO_CONSOLE_PORT_NAME), 0);
	assert_int_equal(log_count(d, "too small for a 19-byte message"), 1);
	assert_status_has(d, "small buffers 2");
	/* The ports work: the host's open reaches the guest. */
	host_open(d, 1);
	assert_int_equal(gcon_until(g, host_opened, &one, WAIT_MS), 1);
	dev_free(d);
}

static void console_single_port_driver_without_multiport(void **state)
{
	struct dev *d = dev_new(two, 2, false, 65536);
	struct gcon_opts o = { .no_multiport = true };
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, &o);
	assert_false(gcon_features(g) & VBIT(VIRTIO_CONSOLE_F_MULTIPORT));
	host_open(d, 0);
	wait_status(d, "single-port driver");
	both_ways(d, g, 1, 200000);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static void console_driver_restart_announces_ports_again(void **state)
{
	struct dev *d = dev_new(two, 2, false, 65536);
	unsigned one = 1, two_ports = 2;
	static const char msg[] = "after the restart";
	char in[64] = "";
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, NULL);
	host_open(d, 1);
	assert_int_equal(gcon_until(g, host_opened, &one, WAIT_MS), 1);
	assert_int_equal(gcon_open(g, 1), 0);
	wait_status(d, "console port 1, guest open");
	/* The guest's driver starts over: the device forgets what the
	 * guest knew, the ports and the host's open stay. */
	assert_int_equal(gcon_restart(g), 0);
	assert_int_equal(gcon_until(g, named, &two_ports, WAIT_MS), 1);
	assert_int_equal(gcon_until(g, host_opened, &one, WAIT_MS), 1);
	assert_int_equal(gcon_events(g, VIRTIO_CONSOLE_PORT_ADD), 2);
	assert_status_has(d, "console port 1, guest closed (opened 1 times)");
	assert_int_equal(gcon_open(g, 1), 0);
	wait_status(d, "console port 1, guest open (opened 2 times)");
	assert_int_equal(host_write(d, 1, msg, sizeof msg), sizeof msg);
	assert_int_equal(guest_read_n(g, 1, in, sizeof msg), sizeof msg);
	assert_string_equal(in, msg);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static void console_broken_port_queue_leaves_other_ports_working(
	void **state)
{
	struct dev *d = dev_new(two, 2, false, 65536);
	struct vmm_vq_layout lay;
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, NULL);
	host_open(d, 0);
	host_open(d, 1);
	gcon_open(g, 0);
	gcon_open(g, 1);
	wait_status(d, "console port 1, guest open");
	/* Port 1's transmit queue (5) gets a head beyond the table: vq
	 * breaks that queue alone, with one line. */
	assert_int_equal(vmm_vq_layout(gcon_vmm(g), 5, &lay), 0);
	vmm_vq_publish_raw(gcon_vmm(g), 5, (uint16_t)(lay.num + 7));
	vmm_vq_kick(gcon_vmm(g), 5);
	settle(g);
	assert_int_equal(log_count(d, "queue broken"), 1);
	assert_int_equal(log_count(d, "console q5"), 1);
	/* Port 0 both ways, the control queue too. */
	both_ways(d, g, 1, 65536);
	host_close(d, 0);
	assert_int_equal(gcon_until(g, host_closed, &(unsigned){ 0 }, WAIT_MS),
	                 1);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

static void console_data_waits_for_the_guest_to_open_the_port(void **state)
{
	struct dev *d = dev_new(two, 2, false, 16384);
	static uint8_t out[16384], in[16384];
	size_t i;
	struct gcon *g;

	(void)state;
	g = guest_up(d, 2, NULL);
	host_open(d, 1);
	for (i = 0; i < sizeof out; i++)
		out[i] = pattern(5, i);
	/* The guest has the port closed (Linux would discard what came):
	 * the host's data waits in the window, the writer then waits. */
	assert_int_equal(host_write(d, 1, out, sizeof out), sizeof out);
	assert_int_equal(host_write(d, 1, out, 1), -EAGAIN);
	settle(g);
	assert_int_equal(gcon_port(g, 1)->rx_total, 0);
	/* It opens the port: everything arrives, once, in order. */
	assert_int_equal(gcon_open(g, 1), 0);
	assert_int_equal(guest_read_n(g, 1, in, sizeof in), sizeof in);
	assert_memory_equal(in, out, sizeof in);
	/* A closed port's full window is no fault. */
	assert_int_equal(log_count(d, "window full"), 0);
	assert_int_equal(gcon_errors(g), 0);
	dev_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(console_handshake_names_ports_and_tracks_opens),
		cmocka_unit_test(
			console_host_open_before_guest_is_sent_after_port_ready),
		cmocka_unit_test(console_port0_is_offered_as_console),
		cmocka_unit_test(console_data_both_ways_on_two_ports),
		cmocka_unit_test(
			console_data_waits_for_the_guest_to_open_the_port),
		cmocka_unit_test(
			console_guest_tx_waits_for_room_and_loses_nothing),
		cmocka_unit_test(console_pause_midway_takes_no_byte_twice),
		cmocka_unit_test(console_driver_restart_announces_ports_again),
		cmocka_unit_test(console_guest_not_reading_blocks_only_its_port),
		cmocka_unit_test(console_hostile_control_messages_one_line_each),
		cmocka_unit_test(
			console_broken_port_queue_leaves_other_ports_working),
		cmocka_unit_test(
			console_out_of_order_and_failed_messages_ignored),
		cmocka_unit_test(console_small_control_buffers_returned_empty),
		cmocka_unit_test(console_single_port_driver_without_multiport),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
