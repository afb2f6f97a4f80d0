/* vsock_dir: vsock's two directories, as registered through chandir. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/vsock.h"

struct fixture {
	struct loop *loop;
	struct chan_set chans;
	struct vsock *v;
	struct chandirs dirs;
};

static int setup(void **state)
{
	static struct fixture fx;
	struct vsock_config cfg = { .guest_cid = 3, .buf_size = 4096,
	                            .connect_timeout_ms = 1000,
	                            .close_timeout_ms = 1000, .backlog = 4 };

	fx.loop = loop_new();
	chan_set_init(&fx.chans);
	fx.v = vsock_new(fx.loop, &cfg, &fx.chans);
	if (!fx.loop || !fx.v)
		return -1;
	chandirs_init(&fx.dirs);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	vsock_free(fx->v);
	loop_free(fx->loop);
	return 0;
}

struct names {
	char list[8][16];
	unsigned n;
};

static void add_name(void *arg, const char *name)
{
	struct names *n = arg;

	if (n->n < 8)
		strncpy(n->list[n->n++], name, 15);
}

static void test_register_adds_vsock_and_vsock_listen(void **state)
{
	struct fixture *fx = *state;
	struct chandir *c, *l;

	assert_int_equal(vsock_register(fx->v, &fx->dirs), 0);
	assert_int_equal(fx->dirs.count, 2);
	c = chandir_find(&fx->dirs, "vsock");
	l = chandir_find(&fx->dirs, "vsock/listen");
	assert_non_null(c);
	assert_non_null(l);
	assert_int_equal(c->mode, CHANDIR_CONNECT);
	assert_int_equal(l->mode, CHANDIR_ACCEPT);
	/* vsock lists nothing of its own; status comes once, from vsock. */
	assert_null(c->ops->list);
	assert_non_null(c->ops->status);
	assert_null(l->ops->status);
	/* A second registration finds the paths taken. */
	assert_int_equal(vsock_register(fx->v, &fx->dirs), -EEXIST);
}

static void test_names_are_canonical_decimal_ports(void **state)
{
	static const char *const good[] = { "0", "1234", "4294967294" };
	static const char *const bad[] = { "", "01", "-1", "+1", "12a",
	                                   "4294967295", "99999999999", "listen" };
	struct fixture *fx = *state;
	struct chandir *c, *l;
	size_t i;

	assert_int_equal(vsock_register(fx->v, &fx->dirs), 0);
	c = chandir_find(&fx->dirs, "vsock");
	l = chandir_find(&fx->dirs, "vsock/listen");
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_int_equal(c->ops->lookup(c->ctx, good[i]), 0);
		assert_int_equal(l->ops->lookup(l->ctx, good[i]), 0);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(c->ops->lookup(c->ctx, bad[i]), -ENOENT);
		assert_int_equal(l->ops->lookup(l->ctx, bad[i]), -ENOENT);
	}
}

static void test_open_is_connect_and_accept(void **state)
{
	struct fixture *fx = *state;
	struct chandir *c, *l;
	struct chan *ch = NULL;

	assert_int_equal(vsock_register(fx->v, &fx->dirs), 0);
	c = chandir_find(&fx->dirs, "vsock");
	l = chandir_find(&fx->dirs, "vsock/listen");
	/* No driver runs: a connect fails at once. */
	assert_int_equal(c->ops->open(c->ctx, "1234", &ch), -ENOTCONN);
	/* Nobody is queued; the accept made the port listen. */
	assert_int_equal(l->ops->open(l->ctx, "5000", &ch), -EAGAIN);
	assert_int_equal(vsock_listening(fx->v, NULL, 0), 1);
}

static void test_listen_lists_the_listening_ports(void **state)
{
	struct fixture *fx = *state;
	struct names n = { .n = 0 };
	struct chandir *l;

	assert_int_equal(vsock_register(fx->v, &fx->dirs), 0);
	l = chandir_find(&fx->dirs, "vsock/listen");
	vsock_listen(fx->v, 7000);
	vsock_listen(fx->v, 42);
	l->ops->list(l->ctx, add_name, &n);
	assert_int_equal(n.n, 2);
	assert_string_equal(n.list[0], "7000");
	assert_string_equal(n.list[1], "42");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_adds_vsock_and_vsock_listen,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_are_canonical_decimal_ports,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_is_connect_and_accept,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_lists_the_listening_ports,
		                                setup, teardown),
	};

	log_init("test-vsock-dir", false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
