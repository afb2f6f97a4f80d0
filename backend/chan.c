#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "chanfs/chan.h"

void chan_set_init(struct chan_set *s)
{
	TAILQ_INIT(&s->all);
	s->count = 0;
}

/* Every host-visible change goes through here.  The watcher only records
 * work, but it is outside code: callers that touch c after a callback hold
 * a reference across it (the hiredis "in callback" guard) so a callback
 * that drops the last reference cannot free c under them. */
static void chan_notify(struct chan *c)
{
	struct chan_watcher *w;

	LIST_FOREACH(w, &c->watchers, link)
		w->fn(c, w->arg);
}

/* to_host became non-empty: there is something to read (unless it is
 * lent bytes coming home, chan_guest_unlend: readable all along). */
static void chan_to_host_readable(struct ring *r, void *arg)
{
	struct chan *c = arg;

	(void)r;
	if (!c->lend_len)
		chan_notify(c);
}

/* to_guest dropped to its low-water mark: there is room to write. */
static void chan_to_guest_writable(struct ring *r, void *arg)
{
	(void)r;
	chan_notify(arg);
}

/* Once the connection is over the device may already have dropped its
 * reference and freed be_ctx, so no backend op is called any more. */
static bool chan_device_gone(const struct chan *c)
{
	return c->state == CHAN_CLOSED || c->state == CHAN_RESET;
}

struct chan *chan_new(struct chan_set *s, uint32_t window,
                      const struct chan_backend *be, void *be_ctx,
                      const char *name)
{
	struct chan *c;
	int err;

	if (!s || !be || window == 0 || (window & (window - 1))) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	err = ring_init(&c->to_host, window);
	if (err == 0) {
		err = ring_init(&c->to_guest, window);
		if (err)
			ring_destroy(&c->to_host);
	}
	if (err) {
		free(c);
		errno = -err;
		return NULL;
	}
	/* A writer parked on a full window is woken when half of it is free,
	 * not at every byte the guest takes (chan_poll agrees: POLLOUT means
	 * at least that much room). */
	ring_set_notify(&c->to_host, chan_to_host_readable, NULL, c, 0);
	ring_set_notify(&c->to_guest, NULL, chan_to_guest_writable, c,
	                window > 1 ? window / 2 : 0);
	c->state = CHAN_CONNECTING;
	c->refs = 1;
	snprintf(c->name, sizeof c->name, "%s", name ? name : "chan");
	c->be = be;
	c->be_ctx = be_ctx;
	c->set = s;
	LIST_INIT(&c->watchers);
	TAILQ_INSERT_TAIL(&s->all, c, link);
	s->count++;
	return c;
}

void chan_ref(struct chan *c)
{
	c->refs++;
}

void chan_unref(struct chan *c)
{
	if (!c)
		return;
	if (c->refs == 0)
		abort();	/* a reference counting bug: fail loudly */
	if (--c->refs > 0)
		return;
	if (c->set) {
		TAILQ_REMOVE(&c->set->all, c, link);
		c->set->count--;
	}
	ring_destroy(&c->to_host);
	ring_destroy(&c->to_guest);
	free(c->args);
	free(c);
}

int chan_set_args(struct chan *c, const char *args)
{
	char *copy = NULL;

	if (args && !(copy = strdup(args)))
		return -ENOMEM;
	free(c->args);
	c->args = copy;
	return 0;
}

/* --- device side -------------------------------------------------------- */

/* to_guest is discarded: so is what the device had not taken of a parked
 * write (its writer learns how much went through chan_unpark). */
static void chan_park_drop(struct chan *c)
{
	c->park_len = 0;
}

void chan_opened(struct chan *c)
{
	if (c->state != CHAN_CONNECTING)
		return;
	c->state = CHAN_OPEN;
	chan_notify(c);
}

void chan_guest_eof(struct chan *c)
{
	if (chan_device_gone(c) || c->guest_eof)
		return;
	c->guest_eof = true;
	chan_notify(c);
}

void chan_guest_norecv(struct chan *c)
{
	if (chan_device_gone(c) || c->guest_norecv)
		return;
	c->guest_norecv = true;
	/* Nobody will take what is still queued for the guest. */
	chan_ref(c);
	chan_park_drop(c);
	ring_reset(&c->to_guest);
	chan_notify(c);
	chan_unref(c);
}

void chan_closed(struct chan *c)
{
	if (chan_device_gone(c))
		return;
	chan_ref(c);
	c->state = CHAN_CLOSED;
	chan_park_drop(c);
	ring_reset(&c->to_guest);
	chan_notify(c);
	chan_unref(c);
}

void chan_reset(struct chan *c, int err)
{
	if (chan_device_gone(c))
		return;
	chan_ref(c);
	c->state = CHAN_RESET;
	c->error = err > 0 ? err : ECONNRESET;
	chan_park_drop(c);
	ring_reset(&c->to_guest);
	chan_notify(c);
	chan_unref(c);
}

size_t chan_guest_send(struct chan *c, const struct iovec *iov, int iovcnt)
{
	size_t n;

	if (chan_device_gone(c) || c->guest_eof)
		return 0;
	chan_ref(c);
	n = ring_writev(&c->to_host, iov, iovcnt);
	c->rx_bytes += n;
	chan_unref(c);
	return n;
}

bool chan_guest_can_lend(struct chan *c)
{
	if (chan_device_gone(c) || c->guest_eof ||
	    (c->readers == 0 && !c->lend_warm) || !ring_empty(&c->to_host))
		return false;
	return ring_alloc(&c->to_host) == 0;
}

void chan_guest_lend(struct chan *c, const struct iovec *iov, unsigned cnt)
{
	unsigned i = c->lend ? c->lend_cnt : 0;
	size_t was = c->lend_len, n = 0;

	for (; i < cnt; i++)
		n += iov[i].iov_len;
	c->lend = iov;
	c->lend_cnt = cnt;
	c->lend_len += n;
	c->rx_bytes += n;
	/* Readable from nothing, as to_host's own edge would say. */
	if (!was && n) {
		chan_ref(c);
		chan_notify(c);
		chan_unref(c);
	}
}

size_t chan_guest_unlend(struct chan *c)
{
	struct iovec rest[CHAN_LEND_MAX];
	unsigned i, k = 0;
	size_t n = 0;

	if (!c->lend)
		return 0;
	for (i = c->lend_idx; c->lend_len && i < c->lend_cnt; i++) {
		size_t off = i == c->lend_idx ? c->lend_off : 0;

		rest[k].iov_base = (uint8_t *)c->lend[i].iov_base + off;
		rest[k++].iov_len = c->lend[i].iov_len - off;
	}
	/* lend_len still set: no readable edge for bytes readable before. */
	if (k) {
		chan_ref(c);
		n = ring_writev(&c->to_host, rest, (int)k);
		chan_unref(c);
	}
	c->lend_warm = c->lend_took;
	c->lend_took = false;
	c->lend = NULL;
	c->lend_cnt = c->lend_idx = 0;
	c->lend_off = c->lend_len = 0;
	return n;
}

int chan_guest_reserve(struct chan *c, struct iovec iov[2], size_t max)
{
	if (chan_device_gone(c) || c->guest_eof)
		return 0;
	return ring_reserve(&c->to_host, iov, max);
}

void chan_guest_commit(struct chan *c, size_t n)
{
	if (n > ring_space(&c->to_host))
		n = ring_space(&c->to_host);
	chan_ref(c);
	ring_commit(&c->to_host, n);
	c->rx_bytes += n;
	chan_unref(c);
}

int chan_guest_peek(const struct chan *c, struct iovec iov[3], size_t max)
{
	size_t used = ring_used(&c->to_guest);
	int n = ring_peek(&c->to_guest, iov, max);

	if (max > used && c->park_len) {
		iov[n].iov_base = (void *)c->park;
		iov[n].iov_len = max - used < c->park_len ? max - used :
		                 c->park_len;
		n++;
	}
	return n;
}

/* The device took k bytes of the parked write in place. */
static void chan_park_took(struct chan *c, size_t k)
{
	c->park += k;
	c->park_len -= k;
	c->park_took += k;
	c->written += k;
}

void chan_guest_took(struct chan *c, size_t n)
{
	struct chan_watcher *w;
	size_t ring = ring_used(&c->to_guest), k = 0;

	if (n > ring + c->park_len)
		n = ring + c->park_len;
	chan_ref(c);
	c->tx_bytes += n;
	if (n > ring) {
		k = n - ring;
		chan_park_took(c, k);
		n = ring;
	}
	ring_consume(&c->to_guest, n);
	/* The parked writer may be done, or may now fit in the window. */
	if (k)
		chan_notify(c);
	LIST_FOREACH(w, &c->watchers, link) {
		if (w->mark && c->tx_bytes >= w->mark) {
			w->mark = 0;
			w->fn(c, w->arg);
		}
	}
	chan_unref(c);
}

/* --- host side ---------------------------------------------------------- */

void chan_watch_add(struct chan *c, struct chan_watcher *w, chan_watch_fn fn,
                    void *arg)
{
	w->fn = fn;
	w->arg = arg;
	w->mark = 0;
	LIST_INSERT_HEAD(&c->watchers, w, link);
}

void chan_watch_remove(struct chan *c, struct chan_watcher *w)
{
	struct chan_watcher *it;

	/* Look it up rather than trust w's links: a second remove, or a
	 * watcher of another channel, must not corrupt the list. */
	LIST_FOREACH(it, &c->watchers, link) {
		if (it == w) {
			LIST_REMOVE(w, link);
			w->mark = 0;
			return;
		}
	}
}

/* What a read finds when to_host is empty. */
static int chan_read_empty(const struct chan *c)
{
	switch (c->state) {
	case CHAN_CONNECTING:
		return -ENOTCONN;
	case CHAN_RESET:
		return -c->error;
	case CHAN_CLOSED:
		return 0;
	case CHAN_OPEN:
		break;
	}
	return c->guest_eof ? 0 : -EAGAIN;
}

ssize_t chan_read(struct chan *c, void *buf, size_t len)
{
	struct iovec iov[2];
	size_t done = 0;
	int n, i;

	n = chan_peek(c, iov, len);
	if (n <= 0)
		return n;
	for (i = 0; i < n; i++) {
		memcpy((uint8_t *)buf + done, iov[i].iov_base, iov[i].iov_len);
		done += iov[i].iov_len;
	}
	chan_consume(c, done);
	return done;
}

int chan_peekv(struct chan *c, struct iovec *iov, int niov, size_t max)
{
	size_t got = 0;
	unsigned i;
	int n;

	if (max == 0)
		return 0;
	if (ring_empty(&c->to_host) && !c->lend_len)
		return chan_read_empty(c);
	n = ring_peek(&c->to_host, iov, max);
	for (i = 0; i < (unsigned)n; i++)
		got += iov[i].iov_len;
	/* Then what is lent, in place. */
	for (i = c->lend_idx; c->lend_len && i < c->lend_cnt && n < niov &&
	     got < max; i++) {
		size_t off = i == c->lend_idx ? c->lend_off : 0;
		size_t len = c->lend[i].iov_len - off;

		if (len > max - got)
			len = max - got;
		if (len == 0)
			continue;
		iov[n].iov_base = (uint8_t *)c->lend[i].iov_base + off;
		iov[n++].iov_len = len;
		got += len;
	}
	return n;
}

/* The host read k lent bytes. */
static void chan_lend_took(struct chan *c, size_t k)
{
	c->lend_took = true;
	c->lend_len -= k;
	while (k && c->lend_idx < c->lend_cnt) {
		size_t left = c->lend[c->lend_idx].iov_len - c->lend_off;

		if (k < left) {
			c->lend_off += k;
			return;
		}
		k -= left;
		c->lend_idx++;
		c->lend_off = 0;
	}
}

void chan_consume(struct chan *c, size_t n)
{
	size_t ring = ring_used(&c->to_host);

	if (n > ring + c->lend_len)
		n = ring + c->lend_len;
	if (n == 0)
		return;
	ring_consume(&c->to_host, n < ring ? n : ring);
	if (n > ring)
		chan_lend_took(c, n - ring);
	/* Credit goes back only while there is a connection to give it to. */
	if (!chan_device_gone(c) && c->be->host_consumed)
		c->be->host_consumed(c, n);
}

void chan_read_waiting(struct chan *c, bool waiting)
{
	if (waiting)
		c->readers++;
	else if (c->readers)
		c->readers--;
}

void chan_trim(struct chan *c)
{
	/* Lent bytes come home into that buffer (chan_guest_can_lend). */
	if (c->lend)
		return;
	ring_release(&c->to_host);
}

/* Why a write cannot take anything, or 0 if it can. */
static int chan_write_error(const struct chan *c)
{
	switch (c->state) {
	case CHAN_CONNECTING:
		return -ENOTCONN;
	case CHAN_RESET:
		return -c->error;
	case CHAN_CLOSED:
		return -EPIPE;
	case CHAN_OPEN:
		break;
	}
	if (c->guest_norecv || c->host_shut)
		return -EPIPE;
	return 0;
}

ssize_t chan_write(struct chan *c, const void *buf, size_t len)
{
	size_t n;
	int err;

	err = chan_write_error(c);
	if (err)
		return err;
	/* Before len 0's answer: a probe must learn that a write cannot
	 * take data (uds reads its socket only as far as a write fits). */
	if (ring_alloc(&c->to_guest) < 0)
		return -ENOMEM;
	if (len == 0)
		return 0;
	n = ring_write(&c->to_guest, buf, len);
	if (n == 0)
		return -EAGAIN;
	c->written += n;
	if (c->be->host_wrote)
		c->be->host_wrote(c);
	return n;
}

int chan_park(struct chan *c, const void *buf, size_t len)
{
	int err = chan_write_error(c);

	if (err)
		return err;
	if (!c->be->reads_parked)
		return -ENOTSUP;
	if (c->park)
		return -EBUSY;
	if (len == 0)
		return 0;
	c->park = buf;
	c->park_len = len;
	c->park_took = 0;
	if (c->be->host_wrote)
		c->be->host_wrote(c);
	return 0;
}

size_t chan_unpark(struct chan *c)
{
	size_t took = c->park_took;

	c->park = NULL;
	c->park_len = 0;
	c->park_took = 0;
	return took;
}

uint64_t chan_written(const struct chan *c)
{
	return c->written;
}

int chan_delivered(const struct chan *c, uint64_t mark)
{
	if (c->tx_bytes >= mark)
		return 1;
	/* to_guest was discarded: the rest never reaches the guest. */
	if (c->state == CHAN_RESET)
		return -c->error;
	if (c->state == CHAN_CLOSED || c->guest_norecv)
		return -EPIPE;
	return 0;
}

void chan_watch_delivered(struct chan *c, struct chan_watcher *w,
                          uint64_t mark)
{
	(void)c;
	w->mark = mark;
}

unsigned chan_poll(const struct chan *c)
{
	unsigned mask = 0;

	if (c->state == CHAN_CONNECTING)
		return 0;
	/* Readable whenever a read would not say EAGAIN: data, EOF or the
	 * error; writable whenever a write would not say EAGAIN (an error
	 * counts, as for sockets). */
	if (chan_read_empty(c) != -EAGAIN || !ring_empty(&c->to_host) ||
	    c->lend_len)
		mask |= POLLIN;
	if (chan_write_error(c) ||
	    (ring_used(&c->to_guest) <= c->to_guest.lowat && !c->park_len))
		mask |= POLLOUT;
	if (c->state == CHAN_RESET)
		mask |= POLLERR;
	if (chan_device_gone(c) ||
	    (c->guest_eof && (c->guest_norecv || c->host_shut)))
		mask |= POLLHUP;
	return mask;
}

void chan_shutdown(struct chan *c)
{
	if (c->host_shut)
		return;
	c->host_shut = true;
	if (chan_device_gone(c) || c->state == CHAN_CONNECTING)
		return;
	chan_ref(c);
	if (c->be->host_shutdown)
		c->be->host_shutdown(c);
	chan_notify(c);
	chan_unref(c);
}

static void chan_release(struct chan *c, bool abort)
{
	void (*op)(struct chan *);

	if (!c || c->host_closed)
		return;
	c->host_closed = true;
	while (!LIST_EMPTY(&c->watchers)) {
		struct chan_watcher *w = LIST_FIRST(&c->watchers);

		LIST_REMOVE(w, link);
		w->mark = 0;
	}
	op = abort && c->be->host_abort ? c->be->host_abort : c->be->host_close;
	if (!chan_device_gone(c) && op)
		op(c);
	chan_unref(c);
}

void chan_close(struct chan *c)
{
	chan_release(c, false);
}

void chan_abort(struct chan *c)
{
	chan_release(c, true);
}

/* --- both --------------------------------------------------------------- */

const char *chan_state_name(const struct chan *c)
{
	switch (c->state) {
	case CHAN_CONNECTING:
		return "connecting";
	case CHAN_OPEN:
		return "open";
	case CHAN_CLOSED:
		return "closed";
	case CHAN_RESET:
		return "reset";
	}
	return "?";
}

void chan_describe(const struct chan *c, FILE *out)
{
	fprintf(out, "%s %s", c->name, chan_state_name(c));
	if (c->state == CHAN_RESET)
		fprintf(out, " (%s)", strerror(c->error));
	if (c->guest_eof)
		fputs(" guest-eof", out);
	if (c->guest_norecv)
		fputs(" guest-norecv", out);
	if (c->host_shut)
		fputs(" host-shut", out);
	if (c->host_closed)
		fputs(" host-closed", out);
	fprintf(out, " rx %" PRIu64 " tx %" PRIu64
	        " to_host %" PRIu32 "/%" PRIu32 " to_guest %" PRIu32 "/%" PRIu32
	        "\n", c->rx_bytes, c->tx_bytes,
	        ring_used(&c->to_host), c->to_host.cap,
	        ring_used(&c->to_guest), c->to_guest.cap);
}
