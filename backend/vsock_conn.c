/*
 * vsock connections: the table, states, timers, the control FIFO, credit
 * both ways, and the chan backend through which the host side reaches us.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "chanfs/chan.h"
#include "chanfs/log.h"
#include "chanfs/ring.h"
#include "vsock_priv.h"

static void vsock_conn_held_remove(struct vsock_conn *c);

#define VSOCK_SHUT_BOTH \
	(VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)
#define VSOCK_MIN_BUCKETS 64u

static const struct chan_backend vsock_chan_backend;

const char *vsock_conn_state_name(enum vsock_conn_state s)
{
	switch (s) {
	case VSOCK_CONNECTING:
		return "connecting";
	case VSOCK_ESTABLISHED:
		return "established";
	case VSOCK_PEER_CLOSED:
		return "peer-closed";
	case VSOCK_LOCAL_CLOSED:
		return "local-closed";
	case VSOCK_RESET:
		return "reset";
	}
	return "?";
}

/* --- the table ------------------------------------------------------------ */

static unsigned vsock_hash(uint32_t host_port, uint32_t guest_port,
                           unsigned nbuckets)
{
	uint64_t k = ((uint64_t)host_port << 32) | guest_port;

	/* Ports a guest picks are often sequential: mix before masking. */
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return (unsigned)k & (nbuckets - 1);
}

int vsock_conn_table_init(struct vsock *v)
{
	v->buckets = calloc(VSOCK_MIN_BUCKETS, sizeof *v->buckets);
	if (!v->buckets)
		return -ENOMEM;
	v->nbuckets = VSOCK_MIN_BUCKETS;
	v->nconns = 0;
	TAILQ_INIT(&v->conns);
	return 0;
}

void vsock_conn_table_free(struct vsock *v)
{
	free(v->buckets);
	v->buckets = NULL;
	v->nbuckets = 0;
}

struct vsock_conn *vsock_conn_find(const struct vsock *v, uint32_t host_port,
                                   uint32_t guest_port)
{
	struct vsock_conn *c;

	c = v->buckets[vsock_hash(host_port, guest_port, v->nbuckets)];
	for (; c; c = c->hnext)
		if (c->host_port == host_port && c->guest_port == guest_port)
			return c;
	return NULL;
}

/* Keep chains short as connections pile up; a failed allocation only
 * costs speed, so it is not an error. */
static void vsock_conn_table_grow(struct vsock *v)
{
	unsigned n = v->nbuckets * 2, i;
	struct vsock_conn **b, *c, *next;

	if (v->nconns < v->nbuckets || n > (1u << 24))
		return;
	b = calloc(n, sizeof *b);
	if (!b)
		return;
	for (i = 0; i < v->nbuckets; i++) {
		for (c = v->buckets[i]; c; c = next) {
			unsigned h = vsock_hash(c->host_port, c->guest_port, n);

			next = c->hnext;
			c->hnext = b[h];
			b[h] = c;
		}
	}
	free(v->buckets);
	v->buckets = b;
	v->nbuckets = n;
}

static void vsock_conn_unlink(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	struct vsock_conn **p;

	p = &v->buckets[vsock_hash(c->host_port, c->guest_port, v->nbuckets)];
	for (; *p; p = &(*p)->hnext) {
		if (*p == c) {
			*p = c->hnext;
			break;
		}
	}
	TAILQ_REMOVE(&v->conns, c, link);
	v->nconns--;
}

struct vsock_conn *vsock_conn_new(struct vsock *v, uint32_t host_port,
                                  uint32_t guest_port,
                                  enum vsock_conn_state state)
{
	struct vsock_conn *c = calloc(1, sizeof *c);
	char name[64];
	unsigned h;

	if (!c)
		return NULL;
	c->v = v;
	c->host_port = host_port;
	c->guest_port = guest_port;
	c->state = state;
	snprintf(name, sizeof name, VSOCK_CONN_FMT, VSOCK_CONN_ARGS(c));
	c->chan = chan_new(v->chans, v->cfg.buf_size, &vsock_chan_backend, c,
	                   name);
	if (!c->chan) {
		int err = errno;

		free(c);
		errno = err;
		return NULL;
	}
	c->buf_alloc = c->chan->to_host.cap;
	c->ctl.conn = c;
	c->ctl.host_port = host_port;
	c->ctl.guest_port = guest_port;
	h = vsock_hash(host_port, guest_port, v->nbuckets);
	c->hnext = v->buckets[h];
	v->buckets[h] = c;
	TAILQ_INSERT_TAIL(&v->conns, c, link);
	v->nconns++;
	vsock_conn_table_grow(v);
	return c;
}

void vsock_conn_remove(struct vsock_conn *c, bool send_rst)
{
	struct vsock *v = c->v;

	c->state = VSOCK_RESET;
	vsock_conn_unlink(c);
	if (c->ctl.queued)
		TAILQ_REMOVE(&v->ctlq, &c->ctl, link);
	if (c->in_rr)
		TAILQ_REMOVE(&v->rr, c, rr_link);
	vsock_conn_held_remove(c);
	if (c->in_todo)
		TAILQ_REMOVE(&v->todo, c, todo_link);
	if (c->timer)
		event_free(c->timer);
	/* The RST outlives the connection: a new one on the same ports must
	 * not find this one. */
	if (send_rst)
		vsock_ctl_queue_rst(v, c->host_port, c->guest_port);
	/* The host may keep the channel open (reading what is left); from
	 * now on its calls reach no connection. */
	c->chan->be_ctx = NULL;
	chan_unref(c->chan);
	free(c);
}

void vsock_conn_reset(struct vsock_conn *c, int err, bool send_rst)
{
	chan_reset(c->chan, err);
	vsock_conn_remove(c, send_rst);
}

void vsock_conn_finish(struct vsock_conn *c)
{
	log_debug(VSOCK_CONN_FMT ": closed", VSOCK_CONN_ARGS(c));
	chan_closed(c->chan);
	vsock_conn_remove(c, true);
}

void vsock_conn_reset_all(struct vsock *v, int err)
{
	struct vsock_conn *c;

	while ((c = TAILQ_FIRST(&v->conns)) != NULL)
		vsock_conn_reset(c, err, false);
	vsock_ctl_clear(v);
}

/* --- timers ----------------------------------------------------------------- */

static void vsock_conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct vsock_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == VSOCK_CONNECTING) {
		log_info(VSOCK_CONN_FMT ": connect timed out after %u ms; RST",
		         VSOCK_CONN_ARGS(c), c->v->cfg.connect_timeout_ms);
		vsock_conn_reset(c, ETIMEDOUT, true);
		return;
	}
	if ((c->local_shut & VSOCK_SHUT_BOTH) != VSOCK_SHUT_BOTH)
		log_info(VSOCK_CONN_FMT ": closed by the host with %u bytes not "
		         "delivered after %u ms (the guest does not read); RST",
		         VSOCK_CONN_ARGS(c), (unsigned)chan_guest_pending(c->chan),
		         c->v->cfg.close_timeout_ms);
	else
		log_info(VSOCK_CONN_FMT ": close timed out after %u ms "
		         "without the guest's RST; RST", VSOCK_CONN_ARGS(c),
		         c->v->cfg.close_timeout_ms);
	vsock_conn_reset(c, ECONNRESET, true);
}

void vsock_conn_arm_timer(struct vsock_conn *c, unsigned ms)
{
	if (!c->v->vq[VSOCK_RXQ]) {
		/* A paused guest cannot answer: its time does not count. */
		c->timer_held = true;
		c->timer_left_ms = ms;
		if (c->timer)
			evtimer_del(c->timer);
		return;
	}
	if (!c->timer) {
		c->timer = evtimer_new(loop_base(c->v->loop),
		                       vsock_conn_timeout, c);
		if (!c->timer) {
			log_warnx(VSOCK_CONN_FMT ": cannot create timer",
			          VSOCK_CONN_ARGS(c));
			return;
		}
	}
	loop_timer_ms(c->timer, ms);
}

/* --- control FIFO ----------------------------------------------------------- */

void vsock_ctl_queue(struct vsock_conn *c, unsigned bits)
{
	struct vsock *v = c->v;

	c->ctl_pending |= bits;
	if (!c->ctl.queued) {
		TAILQ_INSERT_TAIL(&v->ctlq, &c->ctl, link);
		c->ctl.queued = true;
	}
	vsock_rx_schedule(v);
}

bool vsock_ctl_queue_rst(struct vsock *v, uint32_t host_port,
                         uint32_t guest_port)
{
	struct vsock_ctl *e = TAILQ_FIRST(&v->rst_free);

	if (!e) {
		/* Counted, and logged at powers of two so a flood of bad
		 * packets cannot flood the log either. */
		v->rst_dropped++;
		if ((v->rst_dropped & (v->rst_dropped - 1)) == 0)
			log_warnx("vsock: %d RST replies pending, dropped "
			          "%llu so far", VSOCK_RST_MAX,
			          (unsigned long long)v->rst_dropped);
		return false;
	}
	TAILQ_REMOVE(&v->rst_free, e, link);
	e->conn = NULL;
	e->host_port = host_port;
	e->guest_port = guest_port;
	e->queued = true;
	TAILQ_INSERT_TAIL(&v->ctlq, e, link);
	vsock_rx_schedule(v);
	return true;
}

void vsock_ctl_clear(struct vsock *v)
{
	struct vsock_ctl *e;

	while ((e = TAILQ_FIRST(&v->ctlq)) != NULL) {
		TAILQ_REMOVE(&v->ctlq, e, link);
		e->queued = false;
		if (e->conn)
			e->conn->ctl_pending = 0;
		else
			TAILQ_INSERT_TAIL(&v->rst_free, e, link);
	}
}

/* --- credit ------------------------------------------------------------------ */

uint32_t vsock_conn_peer_credit(const struct vsock_conn *c)
{
	/* u32 arithmetic as the spec defines it; a guest whose fwd_cnt runs
	 * ahead of what we sent (or whose buf_alloc shrank) gets nothing. */
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	if (in_flight >= c->peer_buf_alloc)
		return 0;
	return c->peer_buf_alloc - in_flight;
}

uint32_t vsock_conn_our_credit(const struct vsock_conn *c)
{
	uint32_t used = c->rx_cnt - c->fwd_cnt;

	if (used >= c->buf_alloc)
		return 0;
	return c->buf_alloc - used;
}

bool vsock_conn_can_send(const struct vsock_conn *c)
{
	switch (c->state) {
	case VSOCK_ESTABLISHED:
	case VSOCK_PEER_CLOSED:
	case VSOCK_LOCAL_CLOSED:
		break;
	default:
		return false;
	}
	if ((c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_RCV) ||
	    (c->local_shut & VIRTIO_VSOCK_SHUTDOWN_SEND))
		return false;
	return chan_guest_pending(c->chan) > 0;
}

static uint64_t vsock_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void vsock_conn_sent_data(struct vsock_conn *c, bool small)
{
	if (!small) {
		c->small_at_us = 0;
		return;
	}
	c->small_at_us = vsock_now_us();
	c->small_rx_cnt = c->rx_cnt;
}

/* Should c's small data wait for more (VSOCK_SMALL_PKT)?  Only right
 * after a small packet, while the guest has sent no data since, and never
 * once the host is closing (its close waits for the data). */
static bool vsock_conn_hold(struct vsock_conn *c, uint64_t *left_us)
{
	uint64_t wait = c->v->cfg.coalesce_us, now;

	if (!c->small_at_us || c->rx_cnt != c->small_rx_cnt ||
	    c->host_closed || c->local_shut_want ||
	    chan_guest_pending(c->chan) >= VSOCK_SMALL_PKT)
		return false;
	now = vsock_now_us();
	if (now - c->small_at_us >= wait)
		return false;
	*left_us = wait - (now - c->small_at_us);
	return true;
}

static void vsock_conn_held_add(struct vsock_conn *c, uint64_t left_us)
{
	struct vsock *v = c->v;
	struct timeval tv = { .tv_sec = (time_t)(left_us / 1000000u),
	                      .tv_usec = (suseconds_t)(left_us % 1000000u) };

	if (c->held)
		return;
	TAILQ_INSERT_TAIL(&v->held, c, held_link);
	c->held = true;
	/* One timer for every held connection: the first one's wait.  Those
	 * held later are released with it, a little early. */
	if (v->coalesce_timer && !evtimer_pending(v->coalesce_timer, NULL))
		evtimer_add(v->coalesce_timer, &tv);
}

static void vsock_conn_held_remove(struct vsock_conn *c)
{
	if (!c->held)
		return;
	TAILQ_REMOVE(&c->v->held, c, held_link);
	c->held = false;
}

void vsock_conn_release_held(struct vsock *v)
{
	struct vsock_conn *c;

	while ((c = TAILQ_FIRST(&v->held)) != NULL) {
		vsock_conn_held_remove(c);
		c->small_at_us = 0;
		vsock_conn_update_rr(c);
	}
}

void vsock_conn_update_rr(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	bool can = vsock_conn_can_send(c);
	bool credit = vsock_conn_peer_credit(c) > 0;
	uint64_t left_us;

	if (can && credit && !c->in_rr && vsock_conn_hold(c, &left_us)) {
		vsock_conn_held_add(c, left_us);
		return;
	}
	vsock_conn_held_remove(c);
	if (can && credit && !c->in_rr) {
		TAILQ_INSERT_TAIL(&v->rr, c, rr_link);
		c->in_rr = true;
		vsock_rx_schedule(v);
	} else if (!(can && credit) && c->in_rr) {
		TAILQ_REMOVE(&v->rr, c, rr_link);
		c->in_rr = false;
	}
	/* Blocked on the guest's window with data waiting: ask once; any
	 * packet showing credit clears the request. */
	if (can && !credit && !c->credit_requested) {
		c->credit_requested = true;
		vsock_ctl_queue(c, VSOCK_CTL_CREDIT_REQUEST);
	}
}

void vsock_conn_peer_credit_update(struct vsock_conn *c, uint32_t buf_alloc,
                                   uint32_t fwd_cnt)
{
	c->peer_buf_alloc = buf_alloc;
	c->peer_fwd_cnt = fwd_cnt;
	if (vsock_conn_peer_credit(c) > 0)
		c->credit_requested = false;
	vsock_conn_update_rr(c);
}

/* Is the guest's view of our free space worth refreshing?  Either half a
 * window was read since we last told it, or it believed the window full
 * (it is waiting for exactly this). */
static bool vsock_conn_credit_stale(const struct vsock_conn *c)
{
	uint32_t advanced = c->fwd_cnt - c->last_fwd_sent;
	uint32_t guest_view_used = c->rx_cnt - c->last_fwd_sent;

	if (advanced == 0)
		return false;
	return advanced >= c->buf_alloc / 2 || guest_view_used >= c->buf_alloc;
}

/* --- half-closes ------------------------------------------------------------- */

bool vsock_conn_done(const struct vsock_conn *c)
{
	if (!(c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_SEND))
		return false;
	return (c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_RCV) ||
	       (c->local_shut & VIRTIO_VSOCK_SHUTDOWN_SEND);
}

/* Queue our SHUTDOWN once what the host wrote before it has reached the
 * guest (or never will: the guest receives no more). */
static void vsock_conn_check_shutdown(struct vsock_conn *c)
{
	if (!(c->local_shut_want & ~c->local_shut))
		return;
	if (c->state == VSOCK_CONNECTING || c->state == VSOCK_RESET)
		return;
	if (!(c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_RCV) &&
	    chan_guest_pending(c->chan))
		return;
	vsock_ctl_queue(c, VSOCK_CTL_SHUTDOWN);
}

void vsock_conn_shutdown_sent(struct vsock_conn *c)
{
	if (c->host_closed &&
	    (c->local_shut & VSOCK_SHUT_BOTH) == VSOCK_SHUT_BOTH)
		vsock_conn_arm_timer(c, c->v->cfg.close_timeout_ms);
}

void vsock_conn_after_data(struct vsock_conn *c)
{
	vsock_conn_update_rr(c);
	vsock_conn_check_shutdown(c);
}

void vsock_conn_do_todo(struct vsock_conn *c)
{
	if (c->host_aborted) {
		log_debug(VSOCK_CONN_FMT ": aborted by the host; RST",
		          VSOCK_CONN_ARGS(c));
		vsock_conn_remove(c, true);
		return;
	}
	if (c->host_closed) {
		if (c->state == VSOCK_CONNECTING) {
			/* Given up before the guest answered. */
			log_debug(VSOCK_CONN_FMT ": closed while connecting; "
			          "RST", VSOCK_CONN_ARGS(c));
			vsock_conn_remove(c, true);
			return;
		}
		if (c->state != VSOCK_LOCAL_CLOSED) {
			c->state = VSOCK_LOCAL_CLOSED;
			c->local_shut_want |= VSOCK_SHUT_BOTH;
			/* The linger bound for what the host's close left
			 * undelivered (the close itself already waited, and
			 * failed, for it): a guest that never reads must not
			 * keep the connection forever.  The wait for the
			 * guest's RST starts afresh once SHUTDOWN is sent. */
			vsock_conn_arm_timer(c, c->v->cfg.close_timeout_ms);
		}
	}
	vsock_conn_check_shutdown(c);
	/* A closing or shut host waits for its data: no more coalescing. */
	if (c->held)
		vsock_conn_update_rr(c);
}

/* --- the chan backend: called inside chan calls, so only record ------------- */

static void vsock_conn_todo(struct vsock_conn *c)
{
	if (!c->in_todo) {
		TAILQ_INSERT_TAIL(&c->v->todo, c, todo_link);
		c->in_todo = true;
	}
	vsock_rx_schedule(c->v);
}

static void vsock_be_host_wrote(struct chan *ch)
{
	struct vsock_conn *c = ch->be_ctx;

	if (c)
		vsock_conn_update_rr(c);
}

static void vsock_be_host_consumed(struct chan *ch, size_t n)
{
	struct vsock_conn *c = ch->be_ctx;

	if (!c)
		return;
	c->fwd_cnt += (uint32_t)n;
	/* Nobody is going to send more: credit would be noise. */
	if (c->state == VSOCK_CONNECTING || c->host_closed ||
	    (c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_SEND))
		return;
	if (vsock_conn_credit_stale(c))
		vsock_ctl_queue(c, VSOCK_CTL_CREDIT_UPDATE);
}

static void vsock_be_host_shutdown(struct chan *ch)
{
	struct vsock_conn *c = ch->be_ctx;

	if (!c)
		return;
	c->local_shut_want |= VIRTIO_VSOCK_SHUTDOWN_SEND;
	vsock_conn_todo(c);
}

static void vsock_be_host_close(struct chan *ch)
{
	struct vsock_conn *c = ch->be_ctx;

	if (!c)
		return;
	c->host_closed = true;
	vsock_conn_todo(c);
}

static void vsock_be_host_abort(struct chan *ch)
{
	struct vsock_conn *c = ch->be_ctx;

	if (!c)
		return;
	c->host_closed = c->host_aborted = true;
	vsock_conn_todo(c);
}

static const struct chan_backend vsock_chan_backend = {
	.host_wrote = vsock_be_host_wrote,
	.host_consumed = vsock_be_host_consumed,
	.host_shutdown = vsock_be_host_shutdown,
	.host_close = vsock_be_host_close,
	.host_abort = vsock_be_host_abort,
	.reads_parked = true,
};
