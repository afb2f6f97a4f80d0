/*
 * services: the connect-string rules, routing, backlog and timeouts, with
 * the vsock device faked at link time (-Wl,--wrap: vsock_listen_to,
 * vsock_accept).  A guest connection is a channel with
 * a fake backend that records how the host side let go (close or abort);
 * the test is the guest (chan_guest_send) and the opener (the chandir
 * ops).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/loop.h"
#include "chanfs/services.h"
#include "logcap.h"

#define PORT 5000
#define BACKLOG 2
#define TIMEOUT_MS 30
#define MAXQ 8

/* One faked guest connection. */
struct gconn {
	struct chan *c;              /* the device's reference */
	int closed, aborted;         /* how the host side let go */
};

struct fx {
	struct loop *l;
	struct chan_set chans;
	struct chandirs dirs;
	struct chandir *dir;
	struct services *s;
	void (*incoming)(void *arg, uint32_t port);
	void *incoming_arg;
	uint32_t listened;
	struct chan *queue[MAXQ];    /* what vsock_accept hands out */
	unsigned nq;
	struct gconn g[MAXQ];
	unsigned ng;
	char ready[MAXQ][64];
	unsigned nready;
};

static struct fx *fx;

/* --- the fake vsock ------------------------------------------------------- */

void __wrap_vsock_listen_to(struct vsock *v, uint32_t port,
                            void (*fn)(void *arg, uint32_t port), void *arg);
int __wrap_vsock_accept(struct vsock *v, uint32_t port, struct chan **out);

void __wrap_vsock_listen_to(struct vsock *v, uint32_t port,
                            void (*fn)(void *arg, uint32_t port), void *arg)
{
	(void)v;
	fx->listened = port;
	fx->incoming = fn;
	fx->incoming_arg = arg;
}

int __wrap_vsock_accept(struct vsock *v, uint32_t port, struct chan **out)
{
	(void)v;
	assert_int_equal(port, PORT);
	if (!fx->nq)
		return -EAGAIN;
	*out = fx->queue[0];
	memmove(fx->queue, fx->queue + 1, --fx->nq * sizeof fx->queue[0]);
	return 0;
}

static void be_close(struct chan *c)
{
	((struct gconn *)c->be_ctx)->closed++;
}

static void be_abort(struct chan *c)
{
	((struct gconn *)c->be_ctx)->aborted++;
}

static const struct chan_backend be = {
	.host_close = be_close,
	.host_abort = be_abort,
};

static void on_ready(void *arg, struct chandir *d, const char *name)
{
	(void)arg;
	assert_ptr_equal(d, fx->dir);
	assert_true(fx->nready < MAXQ);
	snprintf(fx->ready[fx->nready++], sizeof fx->ready[0], "%s", name);
}

static void turns(unsigned n)
{
	while (n--)
		loop_turn(fx->l, false);
}

/* A guest connection arrives on the service port, with data (len bytes,
 * may hold NULs) already sent. */
static struct gconn *guest(const void *data, size_t len)
{
	struct gconn *g = &fx->g[fx->ng];
	struct chan *host;
	char name[32];

	assert_true(fx->ng < MAXQ);
	snprintf(name, sizeof name, "vsock 3:%u-2:%u", 1000 + fx->ng, PORT);
	fx->ng++;
	g->c = chan_new(&fx->chans, 4096, &be, g, name);
	assert_non_null(g->c);
	chan_opened(g->c);
	/* vsock_accept hands the host a reference of its own */
	host = g->c;
	chan_ref(host);
	if (len) {
		struct iovec iov = { (void *)data, len };

		assert_int_equal(chan_guest_send(g->c, &iov, 1), len);
	}
	fx->queue[fx->nq++] = host;
	fx->incoming(fx->incoming_arg, PORT);
	turns(2);
	return g;
}

static void send_more(struct gconn *g, const void *data, size_t len)
{
	struct iovec iov = { (void *)data, len };

	assert_int_equal(chan_guest_send(g->c, &iov, 1), len);
	turns(2);
}

static int setup_cfg(void **state, unsigned backlog)
{
	struct services_config cfg = { .port = PORT,
	                               .accept_timeout_ms = TIMEOUT_MS,
	                               .backlog = backlog };

	fx = calloc(1, sizeof *fx);
	assert_non_null(fx);
	fx->l = loop_new();
	assert_non_null(fx->l);
	chan_set_init(&fx->chans);
	chandirs_init(&fx->dirs);
	chandirs_on_ready(&fx->dirs, on_ready, NULL);
	fx->s = services_new(fx->l, (struct vsock *)fx, &fx->dirs, &cfg);
	assert_non_null(fx->s);
	fx->dir = chandir_find(&fx->dirs, "services");
	assert_non_null(fx->dir);
	assert_int_equal(fx->dir->mode, CHANDIR_ACCEPT);
	assert_int_equal(fx->listened, PORT);
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return setup_cfg(state, BACKLOG);
}

static int teardown(void **state)
{
	unsigned i;

	(void)state;
	services_free(fx->s);
	assert_null(fx->incoming);
	for (i = 0; i < fx->ng; i++)
		chan_unref(fx->g[i].c);
	assert_int_equal(fx->chans.count, 0);
	loop_free(fx->l);
	free(fx);
	return 0;
}

static int dir_open(const char *name, struct chan **out)
{
	return fx->dir->ops->open(fx->dir->ctx, name, out);
}

static void add_name(void *arg, const char *name)
{
	char *buf = arg;

	strcat(buf, name);
	strcat(buf, " ");
}

static void listing(char *buf)
{
	buf[0] = 0;
	fx->dir->ops->list(fx->dir->ctx, add_name, buf);
}

static char *status(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	fx->dir->ops->status(fx->dir->ctx, out);
	fclose(out);
	return text;
}

/* A rejected connection: reset (aborted), with exactly one log line that
 * names its guest port and holds want. */
static void expect_rejected(const void *data, size_t len, const char *want)
{
	char log[1024], port[32];
	struct logcap cap;
	struct gconn *g;
	struct chan *c;

	logcap_begin(&cap);
	g = guest(data, len);
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	snprintf(port, sizeof port, "3:%u-2:%u", 1000 + fx->ng - 1, PORT);
	assert_non_null(strstr(log, port));
	assert_non_null(strstr(log, want));
	assert_int_equal(g->aborted, 1);
	assert_int_equal(g->closed, 0);
	assert_int_equal(fx->nready, 0);
	assert_int_equal(dir_open("a", &c), -EAGAIN);
}

/* --- routing -------------------------------------------------------------- */

static void services_connect_string_routes_and_leaves_the_rest(void **state)
{
	static const char msg[] = "pipe:echo\0hello";
	char buf[16], names[64];
	struct gconn *g;
	struct chan *c;

	(void)state;
	g = guest(msg, sizeof msg - 1);
	assert_int_equal(fx->nready, 1);
	assert_string_equal(fx->ready[0], "echo");
	listing(names);
	assert_string_equal(names, "echo ");
	assert_int_equal(dir_open("echo", &c), 0);
	assert_ptr_equal(c, g->c);
	assert_null(c->args);
	assert_int_equal(chan_read(c, buf, sizeof buf), 5);
	assert_memory_equal(buf, "hello", 5);
	/* the opener's now: nothing left waiting */
	assert_int_equal(dir_open("echo", &c), -EAGAIN);
	listing(names);
	assert_string_equal(names, "");
	chan_close(c);
	assert_int_equal(g->closed, 1);
	assert_int_equal(g->aborted, 0);
}

static void services_args_go_with_the_channel(void **state)
{
	static const char msg[] = "pipe:qemud:network x=1:y";
	struct chan *c;
	char *st;

	(void)state;
	guest(msg, sizeof msg);
	st = status();
	assert_non_null(strstr(st, "services/qemud: 1 waiting"));
	assert_non_null(strstr(st, "args=network x=1:y\n"));
	free(st);
	assert_int_equal(dir_open("qemud", &c), 0);
	assert_string_equal(c->args, "network x=1:y");
	chan_close(c);
}

/* A connection waiting for its opener holds no window buffer; one with
 * bytes after the NUL keeps them. */
static void services_a_waiting_connection_gives_its_window_back(void **state)
{
	static const char bare[] = "pipe:idle", more[] = "pipe:busy\0x";
	struct gconn *g1, *g2;

	(void)state;
	g1 = guest(bare, sizeof bare);
	g2 = guest(more, sizeof more - 1);
	assert_int_equal(fx->nready, 2);
	assert_null(g1->c->to_host.buf);
	assert_non_null(g2->c->to_host.buf);
	assert_int_equal(ring_used(&g2->c->to_host), 1);
}

static void services_empty_args_are_empty_not_absent(void **state)
{
	static const char msg[] = "pipe:x:";
	struct chan *c;

	(void)state;
	guest(msg, sizeof msg);
	assert_int_equal(dir_open("x", &c), 0);
	assert_string_equal(c->args, "");
	chan_close(c);
}

static void services_connect_string_in_pieces_routes_once_whole(void **state)
{
	struct gconn *g;
	struct chan *c;

	(void)state;
	g = guest("pi", 2);
	send_more(g, "pe:sl", 5);
	assert_int_equal(fx->nready, 0);
	assert_int_equal(dir_open("slow", &c), -EAGAIN);
	send_more(g, "ow\0!", 4);
	assert_int_equal(fx->nready, 1);
	assert_int_equal(dir_open("slow", &c), 0);
	assert_int_equal(chan_read(c, (char[4]){ 0 }, 4), 1);
	chan_close(c);
}

static void services_two_connections_are_two_opens_in_order(void **state)
{
	static const char msg[] = "pipe:svc";
	struct gconn *a, *b;
	struct chan *c, *d;

	(void)state;
	a = guest(msg, sizeof msg);
	b = guest(msg, sizeof msg);
	assert_int_equal(fx->nready, 2);
	assert_int_equal(dir_open("svc", &c), 0);
	assert_int_equal(dir_open("svc", &d), 0);
	assert_ptr_equal(c, a->c);
	assert_ptr_equal(d, b->c);
	assert_int_equal(dir_open("svc", &c), -EAGAIN);
	chan_close(a->c);
	chan_close(b->c);
}

static void services_lookup_accepts_any_valid_name(void **state)
{
	char name[300];

	(void)state;
	assert_int_equal(fx->dir->ops->lookup(fx->dir->ctx, "anything"), 0);
	assert_int_equal(fx->dir->ops->lookup(fx->dir->ctx, "a.b_c-D9"), 0);
	assert_int_equal(fx->dir->ops->lookup(fx->dir->ctx, "a:b"), -ENOENT);
	assert_int_equal(fx->dir->ops->lookup(fx->dir->ctx, "a b"), -ENOENT);
	assert_int_equal(fx->dir->ops->lookup(fx->dir->ctx, ".."), -ENOENT);
	memset(name, 'n', 250);
	name[250] = 0;
	assert_int_equal(fx->dir->ops->lookup(fx->dir->ctx, name), 0);
	name[250] = 'n';
	name[251] = 0;
	assert_int_equal(fx->dir->ops->lookup(fx->dir->ctx, name), -ENOENT);
}

static void services_waiting_openers_show_in_status(void **state)
{
	char *st;

	(void)state;
	fx->dir->ops->wait(fx->dir->ctx, "later", true);
	st = status();
	assert_non_null(strstr(st, "services/later: 0 waiting, 1 openers"));
	free(st);
	fx->dir->ops->wait(fx->dir->ctx, "later", false);
	st = status();
	assert_null(strstr(st, "services/later"));
	free(st);
}

/* --- bad input ------------------------------------------------------------ */

static void services_longest_name_is_accepted(void **state)
{
	char msg[SERVICES_CONNECT_MAX];
	struct chan *c;

	(void)state;
	/* "pipe:" + 250 + NUL = 256 bytes */
	memcpy(msg, "pipe:", 5);
	memset(msg + 5, 'n', sizeof msg - 6);
	msg[sizeof msg - 1] = 0;
	guest(msg, sizeof msg);
	assert_int_equal(fx->nready, 1);
	assert_int_equal(dir_open(msg + 5, &c), 0);
	chan_close(c);
}

static void services_no_nul_within_256_bytes_is_reset(void **state)
{
	char msg[SERVICES_CONNECT_MAX + 1];

	(void)state;
	memcpy(msg, "pipe:", 5);
	memset(msg + 5, 'n', sizeof msg - 6);
	msg[sizeof msg - 1] = 0;	/* the 257th byte: too late */
	expect_rejected(msg, sizeof msg, "no NUL within 256 bytes");
}

static void services_255_bytes_without_nul_wait_for_more(void **state)
{
	char msg[SERVICES_CONNECT_MAX - 1];
	struct gconn *g;

	(void)state;
	memcpy(msg, "pipe:", 5);
	memset(msg + 5, 'n', sizeof msg - 5);
	g = guest(msg, sizeof msg);
	assert_int_equal(g->aborted, 0);
	send_more(g, "", 1);
	assert_int_equal(fx->nready, 1);
	assert_int_equal(g->aborted, 0);
}

static void services_empty_name_is_reset(void **state)
{
	(void)state;
	expect_rejected("pipe:", 6, "empty service name");
}

static void services_empty_name_before_args_is_reset(void **state)
{
	(void)state;
	expect_rejected("pipe::args", 11, "empty service name");
}

static void services_bad_name_character_is_reset(void **state)
{
	(void)state;
	expect_rejected("pipe:a/b", 9, "byte 0x2f at 1 of the service name");
}

static void services_dot_names_are_reset(void **state)
{
	(void)state;
	expect_rejected("pipe:..", 8, "\".\" or \"..\"");
}

static void services_control_byte_in_args_is_reset(void **state)
{
	(void)state;
	expect_rejected("pipe:a:x\ny", 11, "byte 0x0a at 1 of the args");
}

static void services_other_prefix_is_reset(void **state)
{
	(void)state;
	expect_rejected("GET / HTTP/1.0\r\n", 17, "does not start with");
}

/* What can no longer become a good connect string is reset at once, not
 * after 256 bytes or the timeout. */
static void services_other_prefix_is_reset_before_any_nul(void **state)
{
	(void)state;
	expect_rejected("GET / HTTP/1.0\r\n", 16, "does not start with");
}

static void services_bad_name_byte_is_reset_before_any_nul(void **state)
{
	(void)state;
	expect_rejected("pipe:ab\n", 8, "byte 0x0a at 2 of the service name");
}

static void services_bad_args_byte_is_reset_before_any_nul(void **state)
{
	(void)state;
	expect_rejected("pipe:ab:\x7f", 9, "byte 0x7f at 0 of the args");
}

static void services_empty_name_is_reset_before_any_nul(void **state)
{
	(void)state;
	expect_rejected("pipe::", 6, "empty service name");
}

static void services_guest_eof_before_nul_is_reset(void **state)
{
	char log[512];
	struct logcap cap;
	struct gconn *g;

	(void)state;
	g = guest("pipe:half", 9);
	logcap_begin(&cap);
	chan_guest_eof(g->c);
	turns(2);
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	assert_non_null(strstr(log, "before the connect string's NUL"));
	assert_int_equal(g->aborted, 1);
}

static void services_guest_gone_before_anything_is_dropped(void **state)
{
	char log[512];
	struct logcap cap;
	struct gconn *g;

	(void)state;
	g = guest(NULL, 0);
	logcap_begin(&cap);
	chan_reset(g->c, ECONNRESET);
	turns(2);
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	assert_non_null(strstr(log, "ended before its connect string"));
	assert_int_equal(fx->nready, 0);
}

static void wait_until_let_go(struct gconn *g)
{
	unsigned i;

	for (i = 0; i < 100000 && !g->aborted && !g->closed; i++)
		loop_turn(fx->l, true);
}

static void services_silent_guest_is_reset_after_the_timeout(void **state)
{
	char log[512];
	struct logcap cap;
	struct gconn *g;

	(void)state;
	g = guest("pipe:sil", 8);
	logcap_begin(&cap);
	wait_until_let_go(g);
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	assert_non_null(strstr(log, "no connect string within 30 ms"));
	assert_int_equal(g->aborted, 1);
}

static void services_unopened_connection_is_reset_after_the_timeout(void **state)
{
	static const char msg[] = "pipe:nobody";
	char log[512], names[64];
	struct logcap cap;
	struct gconn *g;
	struct chan *c;

	(void)state;
	g = guest(msg, sizeof msg);
	assert_int_equal(fx->nready, 1);
	logcap_begin(&cap);
	wait_until_let_go(g);
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	assert_non_null(strstr(log, "\"nobody\" not opened within 30 ms"));
	assert_int_equal(g->aborted, 1);
	assert_int_equal(dir_open("nobody", &c), -EAGAIN);
	listing(names);
	assert_string_equal(names, "");
}

static void services_connection_beyond_the_backlog_is_reset(void **state)
{
	static const char msg[] = "pipe:busy";
	struct gconn *third, *other;
	struct chan *c;
	unsigned i;

	(void)state;
	for (i = 0; i < BACKLOG; i++)
		guest(msg, sizeof msg);
	{
		char log[512];
		struct logcap cap;

		logcap_begin(&cap);
		third = guest(msg, sizeof msg);
		assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
		assert_non_null(strstr(log, "already has 2 connections "
		                            "waiting"));
	}
	assert_int_equal(third->aborted, 1);
	/* the backlog is per name */
	other = guest("pipe:idle", 10);
	assert_int_equal(other->aborted, 0);
	for (i = 0; i < BACKLOG; i++) {
		assert_int_equal(dir_open("busy", &c), 0);
		assert_ptr_equal(c, fx->g[i].c);
		chan_close(c);
	}
}

static void services_free_resets_what_it_holds(void **state)
{
	struct gconn *a, *b;

	(void)state;
	a = guest("pipe:", 5);
	b = guest("pipe:held", 10);
	services_free(fx->s);
	fx->s = NULL;
	assert_int_equal(a->aborted, 1);
	assert_int_equal(b->aborted, 1);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(services_connect_string_routes_and_leaves_the_rest),
		T(services_args_go_with_the_channel),
		T(services_a_waiting_connection_gives_its_window_back),
	T(services_a_waiting_connection_gives_its_window_back),
		T(services_empty_args_are_empty_not_absent),
		T(services_connect_string_in_pieces_routes_once_whole),
		T(services_two_connections_are_two_opens_in_order),
		T(services_lookup_accepts_any_valid_name),
		T(services_waiting_openers_show_in_status),
		T(services_longest_name_is_accepted),
		T(services_no_nul_within_256_bytes_is_reset),
		T(services_255_bytes_without_nul_wait_for_more),
		T(services_empty_name_is_reset),
		T(services_empty_name_before_args_is_reset),
		T(services_bad_name_character_is_reset),
		T(services_dot_names_are_reset),
		T(services_control_byte_in_args_is_reset),
		T(services_other_prefix_is_reset),
		T(services_other_prefix_is_reset_before_any_nul),
		T(services_bad_name_byte_is_reset_before_any_nul),
		T(services_bad_args_byte_is_reset_before_any_nul),
		T(services_empty_name_is_reset_before_any_nul),
		T(services_guest_eof_before_nul_is_reset),
		T(services_guest_gone_before_anything_is_dropped),
		T(services_silent_guest_is_reset_after_the_timeout),
		T(services_unopened_connection_is_reset_after_the_timeout),
		T(services_connection_beyond_the_backlog_is_reset),
		T(services_free_resets_what_it_holds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
