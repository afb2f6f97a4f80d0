/*
 * chan: every state transition and return code of chan.h, against a
 * recording backend and a recording watcher.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chanfs/chan.h"

#define WIN 16

struct rec {
	unsigned wrote, consumed_calls, shutdowns, closes, watches;
	size_t consumed;
	bool unref_in_watch;	/* the watcher drops a reference, once */
};

static struct rec *rec_of(struct chan *c)
{
	return c->be_ctx;
}

static void be_host_wrote(struct chan *c)
{
	rec_of(c)->wrote++;
}

static void be_host_consumed(struct chan *c, size_t n)
{
	rec_of(c)->consumed_calls++;
	rec_of(c)->consumed += n;
}

static void be_host_shutdown(struct chan *c)
{
	rec_of(c)->shutdowns++;
}

static void be_host_close(struct chan *c)
{
	rec_of(c)->closes++;
}

static const struct chan_backend be = {
	.host_wrote = be_host_wrote,
	.host_consumed = be_host_consumed,
	.host_shutdown = be_host_shutdown,
	.host_close = be_host_close,
};

/* A device that reads a parked write in place (chan_guest_peek). */
static const struct chan_backend be_parked = {
	.host_wrote = be_host_wrote,
	.host_consumed = be_host_consumed,
	.host_shutdown = be_host_shutdown,
	.host_close = be_host_close,
	.reads_parked = true,
};

static void watcher(struct chan *c, void *arg)
{
	struct rec *r = arg;

	r->watches++;
	if (r->unref_in_watch) {
		r->unref_in_watch = false;
		chan_unref(c);
	}
}

struct fix {
	struct chan_set set;
	struct rec rec;
	struct chan *c;
	struct chan_watcher w;
};

/* A channel with the device's reference and a host reference, watched. */
static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof *f);

	chan_set_init(&f->set);
	f->c = chan_new(&f->set, WIN, &be, &f->rec, "vsock 3:1234-2:1025");
	if (!f->c)
		return -1;
	chan_ref(f->c);
	chan_watch_add(f->c, &f->w, watcher, &f->rec);
	*state = f;
	return 0;
}

static int setup_open(void **state)
{
	struct fix *f;

	if (setup(state))
		return -1;
	f = *state;
	chan_opened(f->c);
	f->rec.watches = 0;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	chan_close(f->c);
	chan_unref(f->c);
	assert_int_equal(f->set.count, 0);
	assert_true(TAILQ_EMPTY(&f->set.all));
	free(f);
	return 0;
}

static void send_str(struct chan *c, const char *s)
{
	struct iovec iov = { .iov_base = (void *)s, .iov_len = strlen(s) };

	assert_int_equal(chan_guest_send(c, &iov, 1), strlen(s));
}

/* --- creation ----------------------------------------------------------- */

static void test_new_rejects_window_not_power_of_two(void **state)
{
	struct chan_set s;

	(void)state;
	chan_set_init(&s);
	errno = 0;
	assert_null(chan_new(&s, 3000, &be, NULL, "x"));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(chan_new(&s, 0, &be, NULL, "x"));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(chan_new(&s, 16, NULL, NULL, "x"));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(s.count, 0);
}

static void test_new_channel_is_connecting_with_one_reference_in_its_set(void **state)
{
	struct chan_set s;
	struct chan *c;

	(void)state;
	chan_set_init(&s);
	c = chan_new(&s, 4096, &be, NULL, "a name that is longer than sixty-four bytes, so it must be cut short");
	assert_non_null(c);
	assert_int_equal(c->state, CHAN_CONNECTING);
	assert_int_equal(c->refs, 1);
	assert_int_equal(c->to_host.cap, 4096);
	assert_int_equal(c->to_guest.cap, 4096);
	assert_int_equal(strlen(c->name), sizeof c->name - 1);
	assert_int_equal(s.count, 1);
	assert_ptr_equal(TAILQ_FIRST(&s.all), c);
	assert_string_equal(chan_state_name(c), "connecting");
	chan_unref(c);
	assert_int_equal(s.count, 0);
}

/* An open channel whose device reads parked writes in place. */
static int setup_parked(void **state)
{
	struct fix *f;

	if (setup_open(state))
		return -1;
	f = *state;
	f->c->be = &be_parked;
	return 0;
}

static size_t peek_all(struct chan *c, char *out, size_t max)
{
	struct iovec iov[3];
	size_t n = 0;
	int i, cnt = chan_guest_peek(c, iov, max);

	for (i = 0; i < cnt; i++) {
		memcpy(out + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	return n;
}

/* A parked write's bytes follow the window's; the device takes them in
 * place, they count as written when taken, the writer hears of it, and
 * unpark tells how many went. */
static void test_parked_write_follows_the_window_and_is_taken_in_place(void **state)
{
	struct fix *f = *state;
	char out[16];
	static const char park[] = "cdefgh";

	assert_int_equal(chan_write(f->c, "ab", 2), 2);
	f->rec.wrote = 0;
	assert_int_equal(chan_park(f->c, park, 6), 0);
	assert_int_equal(f->rec.wrote, 1);
	assert_int_equal(chan_guest_pending(f->c), 8);
	assert_false(chan_poll(f->c) & POLLOUT);
	assert_int_equal(peek_all(f->c, out, sizeof out), 8);
	assert_memory_equal(out, "abcdefgh", 8);
	assert_int_equal(peek_all(f->c, out, 3), 3);
	assert_memory_equal(out, "abc", 3);
	assert_int_equal(chan_park(f->c, "x", 1), -EBUSY);
	f->rec.watches = 0;
	chan_guest_took(f->c, 1);
	assert_int_equal(f->rec.watches, 0);   /* the window's byte only */
	chan_guest_took(f->c, 3);
	assert_int_equal(f->rec.watches, 1);   /* the parked writer's */
	assert_int_equal(f->c->tx_bytes, 4);
	assert_int_equal(chan_written(f->c), 4);
	assert_int_equal(peek_all(f->c, out, sizeof out), 4);
	assert_memory_equal(out, "efgh", 4);
	assert_int_equal(chan_unpark(f->c), 2);
	assert_int_equal(chan_guest_pending(f->c), 0);
	assert_int_equal(chan_unpark(f->c), 0);
	assert_true(chan_poll(f->c) & POLLOUT);
}

/* A device that reads only the window gets no parked writes; a channel
 * that cannot take writes refuses one as chan_write would. */
static void test_park_refused_by_a_window_only_device_and_after_errors(void **state)
{
	struct fix *f = *state;

	f->c->be = &be;
	assert_int_equal(chan_park(f->c, "abc", 3), -ENOTSUP);
	f->c->be = &be_parked;
	chan_guest_norecv(f->c);
	assert_int_equal(chan_park(f->c, "abc", 3), -EPIPE);
}

/* A reset discards what the device had not taken of a parked write;
 * unpark still tells what it took before. */
static void test_reset_discards_the_rest_of_a_parked_write(void **state)
{
	struct fix *f = *state;

	assert_int_equal(chan_park(f->c, "abcdef", 6), 0);
	chan_guest_took(f->c, 2);
	chan_reset(f->c, ECONNRESET);
	assert_int_equal(chan_guest_pending(f->c), 0);
	assert_int_equal(chan_unpark(f->c), 2);
	assert_int_equal(chan_delivered(f->c, 6), -ECONNRESET);
}

/* An idle channel holds no window memory: each ring's buffer comes with
 * its first byte, in whichever direction data flows. */
static void test_rings_are_allocated_only_when_data_flows(void **state)
{
	struct fix *f = *state;
	char buf[8];

	assert_null(f->c->to_host.buf);
	assert_null(f->c->to_guest.buf);
	assert_int_equal(chan_read(f->c, buf, sizeof buf), -EAGAIN);
	assert_null(f->c->to_host.buf);
	send_str(f->c, "hi");
	assert_non_null(f->c->to_host.buf);
	assert_null(f->c->to_guest.buf);
	assert_int_equal(chan_write(f->c, "yo", 2), 2);
	assert_non_null(f->c->to_guest.buf);
}

/* --- connecting --------------------------------------------------------- */

static void test_connecting_read_write_peek_say_enotconn_and_poll_is_empty(void **state)
{
	struct fix *f = *state;
	struct iovec iov[2];
	char b[4];

	assert_int_equal(chan_read(f->c, b, sizeof b), -ENOTCONN);
	assert_int_equal(chan_peek(f->c, iov, sizeof b), -ENOTCONN);
	assert_int_equal(chan_write(f->c, "x", 1), -ENOTCONN);
	assert_int_equal(chan_poll(f->c), 0);
	assert_int_equal(f->rec.wrote, 0);
}

static void test_opened_moves_to_open_and_wakes_the_watcher_once(void **state)
{
	struct fix *f = *state;

	chan_opened(f->c);
	assert_int_equal(f->c->state, CHAN_OPEN);
	assert_string_equal(chan_state_name(f->c), "open");
	assert_int_equal(f->rec.watches, 1);
	chan_opened(f->c);
	assert_int_equal(f->rec.watches, 1);
	assert_int_equal(chan_poll(f->c), POLLOUT);
}

static void test_reset_while_connecting_reports_the_error(void **state)
{
	struct fix *f = *state;
	char b[4];

	chan_reset(f->c, ECONNREFUSED);
	assert_int_equal(f->c->state, CHAN_RESET);
	assert_int_equal(f->rec.watches, 1);
	assert_int_equal(chan_read(f->c, b, sizeof b), -ECONNREFUSED);
	assert_int_equal(chan_write(f->c, "x", 1), -ECONNREFUSED);
	/* An open that is no longer possible is ignored. */
	chan_opened(f->c);
	assert_int_equal(f->c->state, CHAN_RESET);
}

static void test_close_while_connecting_tells_the_device(void **state)
{
	struct fix *f = *state;

	chan_close(f->c);
	assert_int_equal(f->rec.closes, 1);
	assert_true(f->c->host_closed);
	assert_true(LIST_EMPTY(&f->c->watchers));
	assert_int_equal(f->c->refs, 1);
	chan_close(f->c);	/* a second call is a no-op */
	assert_int_equal(f->rec.closes, 1);
	assert_int_equal(f->c->refs, 1);
}

static void test_shutdown_while_connecting_is_remembered_but_not_sent(void **state)
{
	struct fix *f = *state;

	chan_shutdown(f->c);
	assert_true(f->c->host_shut);
	assert_int_equal(f->rec.shutdowns, 0);
	chan_opened(f->c);
	assert_int_equal(chan_write(f->c, "x", 1), -EPIPE);
}

/* --- reading ------------------------------------------------------------ */

static void test_read_when_empty_says_eagain(void **state)
{
	struct fix *f = *state;
	char b[4];

	assert_int_equal(chan_read(f->c, b, sizeof b), -EAGAIN);
	assert_false(chan_poll(f->c) & POLLIN);
}

static void test_guest_data_wakes_the_watcher_on_the_first_byte_only(void **state)
{
	struct fix *f = *state;

	send_str(f->c, "ab");
	assert_int_equal(f->rec.watches, 1);
	send_str(f->c, "cd");
	assert_int_equal(f->rec.watches, 1);
	assert_true(chan_poll(f->c) & POLLIN);
	assert_int_equal(f->c->rx_bytes, 4);
}

static void test_read_returns_what_is_there_and_returns_credit(void **state)
{
	struct fix *f = *state;
	char b[8];

	send_str(f->c, "hello");
	assert_int_equal(chan_read(f->c, b, 3), 3);
	assert_memory_equal(b, "hel", 3);
	assert_int_equal(f->rec.consumed, 3);
	assert_int_equal(chan_read(f->c, b, sizeof b), 2);
	assert_memory_equal(b, "lo", 2);
	assert_int_equal(f->rec.consumed, 5);
	assert_int_equal(f->rec.consumed_calls, 2);
	assert_int_equal(chan_read(f->c, b, sizeof b), -EAGAIN);
}

static void test_guest_send_beyond_the_window_is_cut_short(void **state)
{
	struct fix *f = *state;
	char big[WIN + 5];
	struct iovec iov[2] = {
		{ .iov_base = big, .iov_len = 10 },
		{ .iov_base = big + 10, .iov_len = sizeof big - 10 },
	};

	memset(big, 'x', sizeof big);
	assert_int_equal(chan_guest_send(f->c, iov, 2), WIN);
	assert_int_equal(f->c->rx_bytes, WIN);
}

static void test_guest_reserve_and_commit_append_in_place(void **state)
{
	struct fix *f = *state;
	struct iovec iov[2];
	char b[WIN];
	int n;

	f->rec.watches = 0;
	send_str(f->c, "0123456789");
	assert_int_equal(chan_read(f->c, b, 10), 10);
	/* The free space, wrapped: the whole window in two pieces. */
	n = chan_guest_reserve(f->c, iov, WIN * 2);
	assert_int_equal(n, 2);
	assert_int_equal(iov[0].iov_len + iov[1].iov_len, WIN);
	memcpy(iov[0].iov_base, "abc", 3);
	f->rec.watches = 0;
	chan_guest_commit(f->c, 3);
	assert_int_equal(f->rec.watches, 1);	/* readable */
	assert_int_equal(f->c->rx_bytes, 13);
	assert_int_equal(chan_read(f->c, b, sizeof b), 3);
	assert_memory_equal(b, "abc", 3);
	/* max bounds it; a commit beyond the free space is cut to it. */
	assert_int_equal(chan_guest_reserve(f->c, iov, 2), 1);
	assert_int_equal(iov[0].iov_len, 2);
	chan_guest_commit(f->c, WIN + 7);
	assert_int_equal(ring_used(&f->c->to_host), WIN);
	assert_int_equal(f->c->rx_bytes, 13 + WIN);
	assert_int_equal(chan_guest_reserve(f->c, iov, WIN), 0);
	/* After EOF nothing more is taken. */
	assert_int_equal(chan_read(f->c, b, sizeof b), WIN);
	chan_guest_eof(f->c);
	assert_int_equal(chan_guest_reserve(f->c, iov, WIN), 0);
}

static void test_peek_describes_wrapped_data_as_two_iovecs(void **state)
{
	struct fix *f = *state;
	struct iovec iov[2];
	char b[WIN];

	memset(b, 'a', sizeof b);
	send_str(f->c, "0123456789ab");	/* 12 */
	assert_int_equal(chan_read(f->c, b, 10), 10);
	send_str(f->c, "cdefghij");	/* wraps: 2 + 8 */
	assert_int_equal(chan_peek(f->c, iov, WIN), 2);
	assert_int_equal(iov[0].iov_len + iov[1].iov_len, 10);
	assert_memory_equal(iov[0].iov_base, "abcdef", iov[0].iov_len);
	assert_int_equal(f->rec.consumed, 10);
	chan_consume(f->c, 10);
	assert_int_equal(f->rec.consumed, 20);
	assert_int_equal(chan_peek(f->c, iov, WIN), -EAGAIN);
}

static void test_peek_with_max_zero_returns_zero_and_consumes_nothing(void **state)
{
	struct fix *f = *state;
	struct iovec iov[2];

	send_str(f->c, "x");
	assert_int_equal(chan_peek(f->c, iov, 0), 0);
	chan_consume(f->c, 0);
	assert_int_equal(f->rec.consumed_calls, 0);
	assert_int_equal(chan_peek(f->c, iov, 1), 1);
}

static void test_guest_eof_drains_data_then_reads_zero(void **state)
{
	struct fix *f = *state;
	struct iovec iov[2];
	char b[8];

	send_str(f->c, "xy");
	f->rec.watches = 0;
	chan_guest_eof(f->c);
	assert_true(f->c->guest_eof);
	assert_int_equal(f->rec.watches, 1);
	chan_guest_eof(f->c);
	assert_int_equal(f->rec.watches, 1);
	assert_int_equal(chan_read(f->c, b, sizeof b), 2);
	assert_int_equal(chan_read(f->c, b, sizeof b), 0);
	assert_int_equal(chan_peek(f->c, iov, sizeof b), 0);
	assert_true(chan_poll(f->c) & POLLIN);
	assert_false(chan_poll(f->c) & POLLHUP);
	/* Still writable: the other direction is open. */
	assert_int_equal(chan_write(f->c, "z", 1), 1);
	/* Data after EOF is not taken. */
	assert_int_equal(chan_guest_send(f->c, &(struct iovec){ b, 1 }, 1), 0);
}

/* --- writing ------------------------------------------------------------ */

static void test_write_takes_what_fits_then_says_eagain(void **state)
{
	struct fix *f = *state;
	char big[WIN + 4];

	memset(big, 'w', sizeof big);
	assert_int_equal(chan_write(f->c, big, 10), 10);
	assert_int_equal(f->rec.wrote, 1);
	assert_int_equal(chan_write(f->c, big, sizeof big), WIN - 10);
	assert_int_equal(f->rec.wrote, 2);
	assert_int_equal(chan_write(f->c, big, 1), -EAGAIN);
	assert_int_equal(f->rec.wrote, 2);
	assert_false(chan_poll(f->c) & POLLOUT);
}

static void test_write_of_zero_bytes_returns_zero(void **state)
{
	struct fix *f = *state;

	assert_int_equal(chan_write(f->c, "", 0), 0);
	assert_int_equal(f->rec.wrote, 0);
}

static void test_guest_taking_half_the_window_wakes_the_writer(void **state)
{
	struct fix *f = *state;
	char big[WIN];

	memset(big, 'w', sizeof big);
	assert_int_equal(chan_write(f->c, big, WIN), WIN);
	f->rec.watches = 0;
	chan_guest_took(f->c, WIN / 2 - 1);
	assert_int_equal(f->rec.watches, 0);
	assert_false(chan_poll(f->c) & POLLOUT);
	/* Not polled-writable yet, but a write still takes what fits. */
	assert_int_equal(chan_write(f->c, big, WIN), WIN / 2 - 1);
	chan_guest_took(f->c, WIN / 2);
	assert_int_equal(f->rec.watches, 1);
	assert_true(chan_poll(f->c) & POLLOUT);
	assert_int_equal(f->c->tx_bytes, WIN - 1);
}

static void test_guest_took_more_than_queued_is_clamped(void **state)
{
	struct fix *f = *state;

	assert_int_equal(chan_write(f->c, "abc", 3), 3);
	chan_guest_took(f->c, 100);
	assert_int_equal(f->c->tx_bytes, 3);
	assert_int_equal(ring_used(&f->c->to_guest), 0);
}

/* What close(2) waits for: everything written up to a mark delivered. */
static void test_delivery_mark_fires_once_the_guest_took_the_bytes(void **state)
{
	struct fix *f = *state;
	uint64_t mark;

	assert_int_equal(chan_write(f->c, "abcdef", 6), 6);
	mark = chan_written(f->c);
	assert_int_equal(mark, 6);
	assert_int_equal(chan_delivered(f->c, mark), 0);
	chan_watch_delivered(f->c, &f->w, mark);
	f->rec.watches = 0;
	chan_guest_took(f->c, 5);
	assert_int_equal(f->rec.watches, 0);
	assert_int_equal(chan_delivered(f->c, mark), 0);
	chan_guest_took(f->c, 1);
	assert_int_equal(f->rec.watches, 1);
	assert_int_equal(chan_delivered(f->c, mark), 1);
	/* One shot: the mark is gone. */
	assert_int_equal(chan_write(f->c, "g", 1), 1);
	chan_guest_took(f->c, 1);
	assert_int_equal(f->rec.watches, 1);
}

static void test_discarded_bytes_are_never_delivered(void **state)
{
	struct fix *f = *state;

	assert_int_equal(chan_write(f->c, "abc", 3), 3);
	chan_guest_norecv(f->c);
	assert_int_equal(chan_delivered(f->c, chan_written(f->c)), -EPIPE);
	assert_int_equal(chan_delivered(f->c, 0), 1);
	chan_reset(f->c, ECONNRESET);
	assert_int_equal(chan_delivered(f->c, 3), -ECONNRESET);
}

static void test_guest_norecv_makes_writes_fail_with_epipe(void **state)
{
	struct fix *f = *state;

	assert_int_equal(chan_write(f->c, "abc", 3), 3);
	chan_guest_norecv(f->c);
	assert_true(f->c->guest_norecv);
	assert_int_equal(f->rec.watches, 1);
	assert_int_equal(ring_used(&f->c->to_guest), 0);
	assert_int_equal(chan_write(f->c, "x", 1), -EPIPE);
	assert_int_equal(chan_write(f->c, "", 0), -EPIPE);
	assert_true(chan_poll(f->c) & POLLOUT);
	assert_false(chan_poll(f->c) & POLLHUP);
	chan_guest_norecv(f->c);
	assert_int_equal(f->rec.watches, 1);
}

static void test_host_shutdown_is_sent_once_and_makes_writes_fail(void **state)
{
	struct fix *f = *state;

	chan_shutdown(f->c);
	assert_true(f->c->host_shut);
	assert_int_equal(f->rec.shutdowns, 1);
	assert_int_equal(f->rec.watches, 1);
	chan_shutdown(f->c);
	assert_int_equal(f->rec.shutdowns, 1);
	assert_int_equal(chan_write(f->c, "x", 1), -EPIPE);
	/* Reading goes on. */
	send_str(f->c, "r");
	assert_true(chan_poll(f->c) & POLLIN);
}

static void test_guest_eof_after_host_shutdown_is_a_hangup(void **state)
{
	struct fix *f = *state;

	chan_shutdown(f->c);
	assert_false(chan_poll(f->c) & POLLHUP);
	chan_guest_eof(f->c);
	assert_true(chan_poll(f->c) & POLLHUP);
	assert_false(chan_poll(f->c) & POLLERR);
}

/* --- closed ------------------------------------------------------------- */

static void test_closed_keeps_data_readable_then_reads_zero_and_writes_epipe(void **state)
{
	struct fix *f = *state;
	char b[8];

	send_str(f->c, "end");
	assert_int_equal(chan_write(f->c, "lost", 4), 4);
	f->rec.watches = 0;
	chan_closed(f->c);
	assert_int_equal(f->c->state, CHAN_CLOSED);
	assert_string_equal(chan_state_name(f->c), "closed");
	assert_int_equal(f->rec.watches, 1);
	assert_int_equal(ring_used(&f->c->to_guest), 0);
	assert_int_equal(chan_write(f->c, "x", 1), -EPIPE);
	assert_int_equal(chan_poll(f->c), POLLIN | POLLOUT | POLLHUP);
	assert_int_equal(chan_read(f->c, b, sizeof b), 3);
	assert_int_equal(chan_read(f->c, b, sizeof b), 0);
}

static void test_after_closed_no_backend_op_is_called(void **state)
{
	struct fix *f = *state;
	char b[8];

	send_str(f->c, "abc");
	chan_closed(f->c);
	assert_int_equal(chan_read(f->c, b, sizeof b), 3);
	assert_int_equal(f->rec.consumed_calls, 0);
	chan_shutdown(f->c);
	assert_int_equal(f->rec.shutdowns, 0);
	chan_close(f->c);
	assert_int_equal(f->rec.closes, 0);
	assert_int_equal(f->c->refs, 1);
}

static void test_closed_is_final(void **state)
{
	struct fix *f = *state;

	chan_closed(f->c);
	f->rec.watches = 0;
	chan_reset(f->c, ECONNRESET);
	chan_closed(f->c);
	chan_guest_eof(f->c);
	chan_guest_norecv(f->c);
	assert_int_equal(f->c->state, CHAN_CLOSED);
	assert_int_equal(f->rec.watches, 0);
	assert_int_equal(chan_guest_send(f->c, &(struct iovec){ "x", 1 }, 1), 0);
}

/* --- reset -------------------------------------------------------------- */

static void test_reset_keeps_data_readable_then_reports_the_error(void **state)
{
	struct fix *f = *state;
	struct iovec iov[2];
	char b[8];

	send_str(f->c, "left");
	assert_int_equal(chan_write(f->c, "lost", 4), 4);
	f->rec.watches = 0;
	chan_reset(f->c, ECONNRESET);
	assert_int_equal(f->c->state, CHAN_RESET);
	assert_int_equal(f->c->error, ECONNRESET);
	assert_string_equal(chan_state_name(f->c), "reset");
	assert_int_equal(f->rec.watches, 1);
	assert_int_equal(ring_used(&f->c->to_guest), 0);
	assert_int_equal(chan_poll(f->c), POLLIN | POLLOUT | POLLERR | POLLHUP);
	assert_int_equal(chan_write(f->c, "x", 1), -ECONNRESET);
	assert_int_equal(chan_write(f->c, "", 0), -ECONNRESET);
	assert_int_equal(chan_read(f->c, b, sizeof b), 4);
	assert_int_equal(chan_read(f->c, b, sizeof b), -ECONNRESET);
	assert_int_equal(chan_peek(f->c, iov, sizeof b), -ECONNRESET);
}

static void test_reset_with_a_timeout_reports_etimedout(void **state)
{
	struct fix *f = *state;
	char b[8];

	chan_reset(f->c, ETIMEDOUT);
	assert_int_equal(chan_read(f->c, b, sizeof b), -ETIMEDOUT);
}

static void test_reset_without_an_errno_reports_econnreset(void **state)
{
	struct fix *f = *state;

	chan_reset(f->c, 0);
	assert_int_equal(f->c->error, ECONNRESET);
}

static void test_reset_is_final(void **state)
{
	struct fix *f = *state;

	chan_reset(f->c, ECONNREFUSED);
	f->rec.watches = 0;
	chan_closed(f->c);
	chan_reset(f->c, ETIMEDOUT);
	assert_int_equal(f->c->state, CHAN_RESET);
	assert_int_equal(f->c->error, ECONNREFUSED);
	assert_int_equal(f->rec.watches, 0);
	chan_close(f->c);
	assert_int_equal(f->rec.closes, 0);
}

/* --- references --------------------------------------------------------- */

static void test_close_of_an_open_channel_tells_the_device_and_keeps_its_reference(void **state)
{
	struct fix *f = *state;

	chan_close(f->c);
	assert_int_equal(f->rec.closes, 1);
	assert_int_equal(f->c->refs, 1);
	assert_int_equal(f->set.count, 1);
	/* The device finishes in order; the watcher is gone. */
	f->rec.watches = 0;
	chan_closed(f->c);
	assert_int_equal(f->rec.watches, 0);
}

static void test_last_unref_frees_and_leaves_the_set(void **state)
{
	struct chan_set s;
	struct chan *a, *b;

	(void)state;
	chan_set_init(&s);
	a = chan_new(&s, 16, &be, NULL, "a");
	b = chan_new(&s, 16, &be, NULL, "b");
	assert_int_equal(s.count, 2);
	chan_ref(a);
	chan_unref(a);
	assert_int_equal(s.count, 2);
	chan_unref(a);
	assert_int_equal(s.count, 1);
	assert_ptr_equal(TAILQ_FIRST(&s.all), b);
	chan_unref(b);
	assert_int_equal(s.count, 0);
	chan_unref(NULL);
}

/* The device's reset drops its reference from inside the watcher while the
 * host already let go: the channel must survive until chan_closed returns
 * (the sanitizer build turns a use after free here into a failure). */
static void test_channel_survives_a_watcher_that_drops_the_last_reference(void **state)
{
	struct chan_set s;
	struct rec r = { 0 };
	struct chan_watcher w;
	struct chan *c;
	char big[16];

	(void)state;
	chan_set_init(&s);
	c = chan_new(&s, 16, &be, &r, "x");
	chan_opened(c);
	memset(big, 'b', sizeof big);
	assert_int_equal(chan_write(c, big, sizeof big), 16);
	chan_watch_add(c, &w, watcher, &r);
	r.unref_in_watch = true;
	/* Discarding the full to_guest fires writable, then the state change
	 * fires again: two watcher calls, the first one freeing. */
	chan_closed(c);
	assert_int_equal(r.watches, 2);
	assert_int_equal(s.count, 0);
}

static void test_unwatched_channel_fires_nothing(void **state)
{
	struct fix *f = *state;

	chan_watch_remove(f->c, &f->w);
	chan_watch_remove(f->c, &f->w);
	assert_true(LIST_EMPTY(&f->c->watchers));
	send_str(f->c, "x");
	chan_guest_eof(f->c);
	assert_int_equal(f->rec.watches, 0);
}

/* A shared channel: every watcher sees every edge, a delivery mark wakes
 * only the watcher that set it, and removing one leaves the others. */
static void test_every_watcher_fires_and_a_mark_wakes_only_its_own(void **state)
{
	struct fix *f = *state;
	struct rec r2 = { 0 }, r3 = { 0 };
	struct chan_watcher w2, w3;
	uint64_t mark;

	chan_watch_add(f->c, &w2, watcher, &r2);
	chan_watch_add(f->c, &w3, watcher, &r3);
	f->rec.watches = 0;
	send_str(f->c, "x");
	assert_int_equal(f->rec.watches, 1);
	assert_int_equal(r2.watches, 1);
	assert_int_equal(r3.watches, 1);

	assert_int_equal(chan_write(f->c, "ab", 2), 2);
	mark = chan_written(f->c);
	chan_watch_delivered(f->c, &w2, mark);
	f->rec.watches = r2.watches = r3.watches = 0;
	chan_guest_took(f->c, 2);
	assert_int_equal(f->rec.watches, 0);
	assert_int_equal(r2.watches, 1);
	assert_int_equal(r3.watches, 0);

	chan_watch_remove(f->c, &w2);
	chan_guest_eof(f->c);
	assert_int_equal(r2.watches, 1);
	assert_int_equal(r3.watches, 1);
	assert_int_equal(f->rec.watches, 1);
	chan_watch_remove(f->c, &w3);
}

static void test_args_are_copied_replaced_and_cleared(void **state)
{
	struct fix *f = *state;
	char said[] = "tcp:5555";

	assert_null(f->c->args);
	assert_int_equal(chan_set_args(f->c, said), 0);
	said[0] = 'X';
	assert_string_equal(f->c->args, "tcp:5555");
	assert_int_equal(chan_set_args(f->c, "other"), 0);
	assert_string_equal(f->c->args, "other");
	assert_int_equal(chan_set_args(f->c, NULL), 0);
	assert_null(f->c->args);
	assert_int_equal(chan_set_args(f->c, "freed with the channel"), 0);
}

/* --- describe ----------------------------------------------------------- */

static void test_describe_names_state_flags_and_counts(void **state)
{
	struct fix *f = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *out;
	char b[2];

	send_str(f->c, "abc");
	assert_int_equal(chan_read(f->c, b, 2), 2);
	assert_int_equal(chan_write(f->c, "xyz", 3), 3);
	chan_guest_took(f->c, 1);
	chan_guest_eof(f->c);
	chan_shutdown(f->c);
	out = open_memstream(&text, &len);
	chan_describe(f->c, out);
	fclose(out);
	assert_string_equal(text, "vsock 3:1234-2:1025 open guest-eof host-shut "
	                    "rx 3 tx 1 to_host 1/16 to_guest 2/16\n");
	free(text);
}

static void test_describe_names_the_reset_error(void **state)
{
	struct fix *f = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	chan_reset(f->c, ECONNREFUSED);
	out = open_memstream(&text, &len);
	chan_describe(f->c, out);
	fclose(out);
	assert_non_null(strstr(text, " reset (Connection refused) "));
	free(text);
}

/* --- guest bytes lent in place ------------------------------------------ */

static void test_lending_needs_a_waiting_read_and_an_empty_window(void **state)
{
	struct fix *f = *state;

	assert_false(chan_guest_can_lend(f->c));
	chan_read_waiting(f->c, true);
	assert_true(chan_guest_can_lend(f->c));
	send_str(f->c, "a");
	assert_false(chan_guest_can_lend(f->c));   /* behind to_host's */
	chan_consume(f->c, 1);
	assert_true(chan_guest_can_lend(f->c));
	chan_guest_eof(f->c);
	assert_false(chan_guest_can_lend(f->c));
	chan_read_waiting(f->c, false);
}

/* Lent bytes are read in place, after nothing; the rest goes into to_host
 * in order when the device takes them back, without a second edge. */
static void test_lent_bytes_are_read_in_place_and_the_rest_comes_home(void **state)
{
	struct fix *f = *state;
	static char a[] = "hello", b[] = "world!";
	struct iovec lend[2] = { { a, 5 }, { b, 6 } };
	struct iovec iov[CHAN_PEEK_MAX];
	char out[16];

	chan_read_waiting(f->c, true);
	assert_true(chan_guest_can_lend(f->c));
	chan_guest_lend(f->c, lend, 1);
	assert_int_equal(f->rec.watches, 1);
	chan_guest_lend(f->c, lend, 2);            /* appended: no new edge */
	assert_int_equal(f->rec.watches, 1);
	assert_int_equal(f->c->rx_bytes, 11);
	assert_true(chan_poll(f->c) & POLLIN);
	assert_int_equal(chan_peekv(f->c, iov, CHAN_PEEK_MAX, 64), 2);
	assert_ptr_equal(iov[0].iov_base, a);
	assert_ptr_equal(iov[1].iov_base, b);
	assert_int_equal(chan_peekv(f->c, iov, CHAN_PEEK_MAX, 7), 2);
	assert_int_equal(iov[1].iov_len, 2);
	chan_consume(f->c, 3);
	assert_int_equal(f->rec.consumed, 3);
	assert_int_equal(chan_peekv(f->c, iov, CHAN_PEEK_MAX, 64), 2);
	assert_ptr_equal(iov[0].iov_base, a + 3);
	assert_int_equal(iov[0].iov_len, 2);
	chan_read_waiting(f->c, false);
	assert_int_equal(chan_guest_unlend(f->c), 8);
	assert_int_equal(f->rec.watches, 1);
	assert_int_equal(chan_guest_unlend(f->c), 0);
	/* The device's memory may change now: the bytes are ours. */
	memset(a, 'x', 5);
	memset(b, 'x', 6);
	assert_int_equal(chan_read(f->c, out, sizeof out), 8);
	assert_memory_equal(out, "loworld!", 8);
	assert_int_equal(f->rec.consumed, 11);
	assert_int_equal(chan_read(f->c, out, sizeof out), -EAGAIN);
}

static void test_reset_keeps_lent_bytes_readable_then_the_error(void **state)
{
	struct fix *f = *state;
	static char a[] = "data";
	struct iovec lend[1] = { { a, 4 } };
	char out[16];

	chan_read_waiting(f->c, true);
	assert_true(chan_guest_can_lend(f->c));
	chan_guest_lend(f->c, lend, 1);
	chan_reset(f->c, ECONNRESET);
	assert_true(chan_poll(f->c) & POLLIN);
	assert_int_equal(chan_read(f->c, out, 2), 2);
	assert_memory_equal(out, "da", 2);
	assert_int_equal(chan_guest_unlend(f->c), 2);
	assert_int_equal(chan_read(f->c, out, sizeof out), 2);
	assert_memory_equal(out, "ta", 2);
	assert_int_equal(chan_read(f->c, out, sizeof out), -ECONNRESET);
	chan_read_waiting(f->c, false);
}

/* A reader that took lent bytes stays one to lend to until a lend it
 * does not read. */
static void test_a_reader_that_read_in_place_is_lent_to_again(void **state)
{
	struct fix *f = *state;
	static char a[] = "ab";
	struct iovec lend[1] = { { a, 2 } };
	char out[4];

	chan_read_waiting(f->c, true);
	chan_guest_lend(f->c, lend, 1);
	assert_int_equal(chan_read(f->c, out, sizeof out), 2);
	chan_read_waiting(f->c, false);
	assert_int_equal(chan_guest_unlend(f->c), 0);
	assert_true(chan_guest_can_lend(f->c));
	chan_guest_lend(f->c, lend, 1);
	assert_int_equal(chan_guest_unlend(f->c), 2);
	assert_false(chan_guest_can_lend(f->c));   /* to_host has bytes */
	assert_int_equal(chan_read(f->c, out, sizeof out), 2);
	assert_false(chan_guest_can_lend(f->c));   /* that lend went unread */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_rejects_window_not_power_of_two),
		cmocka_unit_test_setup_teardown(test_every_watcher_fires_and_a_mark_wakes_only_its_own, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_args_are_copied_replaced_and_cleared, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_rings_are_allocated_only_when_data_flows, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_parked_write_follows_the_window_and_is_taken_in_place, setup_parked, teardown),
		cmocka_unit_test_setup_teardown(test_park_refused_by_a_window_only_device_and_after_errors, setup_parked, teardown),
		cmocka_unit_test_setup_teardown(test_reset_discards_the_rest_of_a_parked_write, setup_parked, teardown),
		cmocka_unit_test(test_new_channel_is_connecting_with_one_reference_in_its_set),
		cmocka_unit_test_setup_teardown(test_connecting_read_write_peek_say_enotconn_and_poll_is_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_opened_moves_to_open_and_wakes_the_watcher_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_while_connecting_reports_the_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_while_connecting_tells_the_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_while_connecting_is_remembered_but_not_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_when_empty_says_eagain, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_guest_data_wakes_the_watcher_on_the_first_byte_only, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_read_returns_what_is_there_and_returns_credit, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_guest_send_beyond_the_window_is_cut_short, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_peek_describes_wrapped_data_as_two_iovecs, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_peek_with_max_zero_returns_zero_and_consumes_nothing, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_guest_eof_drains_data_then_reads_zero, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_write_takes_what_fits_then_says_eagain, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_write_of_zero_bytes_returns_zero, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_guest_taking_half_the_window_wakes_the_writer, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_guest_took_more_than_queued_is_clamped, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_guest_norecv_makes_writes_fail_with_epipe, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_host_shutdown_is_sent_once_and_makes_writes_fail, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_guest_eof_after_host_shutdown_is_a_hangup, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_closed_keeps_data_readable_then_reads_zero_and_writes_epipe, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_after_closed_no_backend_op_is_called, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_closed_is_final, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_reset_keeps_data_readable_then_reports_the_error, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_reset_with_a_timeout_reports_etimedout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_without_an_errno_reports_econnreset, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_reset_is_final, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_close_of_an_open_channel_tells_the_device_and_keeps_its_reference, setup_open, teardown),
		cmocka_unit_test(test_last_unref_frees_and_leaves_the_set),
		cmocka_unit_test(test_channel_survives_a_watcher_that_drops_the_last_reference),
		cmocka_unit_test_setup_teardown(test_unwatched_channel_fires_nothing, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_mark_fires_once_the_guest_took_the_bytes, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_discarded_bytes_are_never_delivered, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_guest_reserve_and_commit_append_in_place, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_describe_names_state_flags_and_counts, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_describe_names_the_reset_error, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_lending_needs_a_waiting_read_and_an_empty_window, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_lent_bytes_are_read_in_place_and_the_rest_comes_home, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_reset_keeps_lent_bytes_readable_then_the_error, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_a_reader_that_read_in_place_is_lent_to_again, setup_open, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
