/* serial: the port table and the `serial` directory (one shared channel
 * per port, open for the daemon's life, whatever its transport does). */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/loop.h"
#include "chanfs/serial.h"

struct fake_transport {
	unsigned wrote, consumed_calls, opened, closed;
	size_t consumed;
};

static void ft_wrote(void *ctx)
{
	((struct fake_transport *)ctx)->wrote++;
}

static void ft_consumed(void *ctx, size_t n)
{
	struct fake_transport *t = ctx;

	t->consumed_calls++;
	t->consumed += n;
}

static void ft_open(void *ctx, bool open)
{
	struct fake_transport *t = ctx;

	if (open)
		t->opened++;
	else
		t->closed++;
}

static void ft_status(void *ctx, FILE *out)
{
	(void)ctx;
	fputs(" socket disconnected (fake)", out);
}

static const struct serial_port_ops ft_ops = {
	.host_wrote = ft_wrote,
	.host_consumed = ft_consumed,
	.host_open = ft_open,
	.status = ft_status,
};

static void add_name(void *arg, const char *name)
{
	char *buf = arg;

	strcat(buf, name);
	strcat(buf, ";");
}

static void test_port_names_follow_the_file_rule_and_are_unique(void **state)
{
	static const char *bad[] = { "", ".", "..", "a/b", "sp ace", "é",
	                             "a:b", "x\n" };
	struct chan_set chans;
	struct serial *s;
	char longname[CHANDIR_NAME_MAX + 2];

	(void)state;
	chan_set_init(&chans);
	s = serial_new(NULL, &chans, 4096);
	assert_non_null(s);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		assert_null(serial_port_add(s, bad[i], NULL, NULL));
		assert_int_equal(errno, EINVAL);
	}
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_null(serial_port_add(s, longname, NULL, NULL));
	longname[CHANDIR_NAME_MAX] = '\0';
	assert_non_null(serial_port_add(s, longname, NULL, NULL));
	assert_non_null(serial_port_add(s, "org.qemu.guest_agent.0", NULL,
	                                NULL));
	errno = 0;
	assert_null(serial_port_add(s, "org.qemu.guest_agent.0", NULL, NULL));
	assert_int_equal(errno, EEXIST);
	assert_int_equal(chans.count, 2);
	serial_free(s);
	assert_int_equal(chans.count, 0);
	errno = 0;
	assert_null(serial_new(NULL, &chans, 3000));
	assert_int_equal(errno, EINVAL);
}

static void test_directory_is_shared_atomic_and_does_not_linger(void **state)
{
	struct chandirs r;
	struct chan_set chans;
	struct serial *s;
	struct chandir *d;
	char names[64] = "";

	(void)state;
	chandirs_init(&r);
	chan_set_init(&chans);
	s = serial_new(NULL, &chans, 4096);
	assert_non_null(serial_port_add(s, "b", NULL, NULL));
	assert_non_null(serial_port_add(s, "a", NULL, NULL));
	assert_int_equal(serial_register(s, &r), 0);
	assert_int_equal(serial_register(s, &r), -EEXIST);
	d = chandir_find(&r, "serial");
	assert_non_null(d);
	assert_int_equal(d->mode, CHANDIR_SHARED);
	assert_int_equal(d->flags, CHANDIR_ATOMIC | CHANDIR_NO_LINGER);
	assert_int_equal(d->ops->lookup(d->ctx, "a"), 0);
	assert_int_equal(d->ops->lookup(d->ctx, "c"), -ENOENT);
	d->ops->list(d->ctx, add_name, names);
	assert_string_equal(names, "b;a;");	/* the order they were added */
	serial_free(s);
}

static void test_every_open_shares_the_one_open_channel(void **state)
{
	struct fake_transport ft = { 0 };
	struct chandirs r;
	struct chan_set chans;
	struct serial *s;
	struct serial_port *p;
	struct chandir *d;
	struct chan *c1, *c2, *x = NULL;

	(void)state;
	chandirs_init(&r);
	chan_set_init(&chans);
	s = serial_new(NULL, &chans, 4096);
	p = serial_port_add(s, "port0", &ft_ops, &ft);
	assert_non_null(p);
	assert_string_equal(serial_port_name(p), "port0");
	assert_int_equal(serial_register(s, &r), 0);
	d = chandir_find(&r, "serial");
	assert_int_equal(serial_port_chan(p)->state, CHAN_OPEN);
	assert_int_equal(d->ops->open(d->ctx, "nope", &x), -ENOENT);
	assert_false(serial_port_host_open(p));
	assert_int_equal(d->ops->open(d->ctx, "port0", &c1), 0);
	assert_int_equal(d->ops->open(d->ctx, "port0", &c2), 0);
	assert_ptr_equal(c1, c2);
	assert_ptr_equal(c1, serial_port_chan(p));
	assert_int_equal(c1->refs, 3);	/* the port's and two opens */
	assert_int_equal(ft.opened, 1);
	assert_true(serial_port_host_open(p));
	d->ops->release(d->ctx, "port0", c1);
	assert_int_equal(ft.closed, 0);
	assert_true(serial_port_host_open(p));
	d->ops->release(d->ctx, "port0", c2);
	assert_int_equal(ft.closed, 1);
	assert_false(serial_port_host_open(p));
	assert_int_equal(serial_port_chan(p)->refs, 1);
	/* Still open: the port outlives its files. */
	assert_int_equal(serial_port_chan(p)->state, CHAN_OPEN);
	serial_free(s);
}

static void test_with_no_transport_up_reads_wait_and_writes_queue(void **state)
{
	struct fake_transport ft = { 0 };
	struct chan_set chans;
	struct serial *s;
	struct chan *c;
	char buf[8192];
	struct iovec iov;
	ssize_t n;

	(void)state;
	chan_set_init(&chans);
	s = serial_new(NULL, &chans, 4096);
	c = serial_port_chan(serial_port_add(s, "p", &ft_ops, &ft));
	/* A read waits: never EOF, the port comes back. */
	assert_int_equal(chan_read(c, buf, sizeof buf), -EAGAIN);
	assert_int_equal(chan_poll(c), POLLOUT);
	memset(buf, 'x', sizeof buf);
	assert_int_equal(chan_write(c, buf, 3000), 3000);
	assert_int_equal(ft.wrote, 1);
	assert_int_equal(chan_write(c, buf, 3000), 1096);
	assert_int_equal(chan_write(c, buf, 1), -EAGAIN);
	assert_int_equal(chan_poll(c), 0);	/* full: no POLLOUT, no HUP */
	/* The transport delivers; the host reads what it sends. */
	chan_guest_took(c, 4096);
	assert_int_equal(chan_poll(c), POLLOUT);
	iov.iov_base = "hello";
	iov.iov_len = 5;
	assert_int_equal(chan_guest_send(c, &iov, 1), 5);
	assert_int_equal(chan_poll(c), POLLIN | POLLOUT);
	n = chan_read(c, buf, sizeof buf);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(ft.consumed, 5);
	assert_int_equal(chan_read(c, buf, sizeof buf), -EAGAIN);
	serial_free(s);
}

static void test_status_names_each_port_with_its_transport(void **state)
{
	struct fake_transport ft = { 0 };
	struct chandirs r;
	struct chan_set chans;
	struct serial *s;
	struct chandir *d;
	struct chan *c;
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	(void)state;
	chandirs_init(&r);
	chan_set_init(&chans);
	s = serial_new(NULL, &chans, 4096);
	serial_port_add(s, "qga", &ft_ops, &ft);
	serial_port_add(s, "bare", NULL, NULL);
	serial_register(s, &r);
	d = chandir_find(&r, "serial");
	assert_int_equal(d->ops->open(d->ctx, "qga", &c), 0);
	out = open_memstream(&text, &len);
	d->ops->status(d->ctx, out);
	fclose(out);
	assert_string_equal(text,
	                    "serial qga socket disconnected (fake), 1 open\n"
	                    "serial bare, 0 opens\n");
	free(text);
	d->ops->release(d->ctx, "qga", c);
	serial_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_port_names_follow_the_file_rule_and_are_unique),
		cmocka_unit_test(test_directory_is_shared_atomic_and_does_not_linger),
		cmocka_unit_test(test_every_open_shares_the_one_open_channel),
		cmocka_unit_test(test_with_no_transport_up_reads_wait_and_writes_queue),
		cmocka_unit_test(test_status_names_each_port_with_its_transport),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
