/*
 * guest_vsock_conn.c — the simulated guest's connections, as Linux's
 * virtio_transport_common.c runs them: credit both ways, SHUTDOWN per
 * direction, close as SHUTDOWN then wait for RST.  Packets from the device
 * are dispatched in guest_vsock_recv.c.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "guest_vsock_priv.h"

/* --- byte queue ----------------------------------------------------------- */

int guest_bytes_append(struct guest_bytes *q, const void *p, size_t n)
{
	if (q->head + q->len + n > q->cap) {
		if (q->head) {
			memmove(q->buf, q->buf + q->head, q->len);
			q->head = 0;
		}
		if (q->len + n > q->cap) {
			size_t cap = q->cap ? q->cap : 4096;
			uint8_t *b;

			while (cap < q->len + n)
				cap *= 2;
			b = realloc(q->buf, cap);
			if (!b)
				return -ENOMEM;
			q->buf = b;
			q->cap = cap;
		}
	}
	memcpy(q->buf + q->head + q->len, p, n);
	q->len += n;
	return 0;
}

static void guest_bytes_consume(struct guest_bytes *q, size_t n)
{
	if (n > q->len)
		n = q->len;
	q->head += n;
	q->len -= n;
	if (!q->len)
		q->head = 0;
}

/* --- table ---------------------------------------------------------------- */

static unsigned guest_hash(uint32_t lport, uint32_t rport)
{
	return (lport * 2654435761u ^ rport) % GUEST_HASH;
}

struct guest_conn *guest_lookup(struct guest *g, uint32_t lport,
                                uint32_t rport)
{
	struct guest_conn *c;

	LIST_FOREACH(c, &g->hash[guest_hash(lport, rport)], hlink)
		if (c->lport == lport && c->rport == rport)
			return c;
	return NULL;
}

struct guest_listener *guest_listener_find(struct guest *g, uint32_t port)
{
	struct guest_listener *l;

	LIST_FOREACH(l, &g->listeners, link)
		if (l->port == port)
			return l;
	return NULL;
}

static void guest_timer_at(struct guest *g, uint64_t t)
{
	if (t && t < g->next_timer)
		g->next_timer = t;
}

struct guest_conn *guest_conn_alloc(struct guest *g, uint32_t lport,
                                    uint32_t rport,
                                    const struct guest_conn_ops *ops,
                                    void *arg)
{
	struct guest_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->g = g;
	c->lport = lport;
	c->rport = rport;
	c->buf_alloc = g->o.buf_alloc;
	c->ops = ops;
	c->arg = arg;
	c->serial = g->serial++;
	LIST_INSERT_HEAD(&g->hash[guest_hash(lport, rport)], c, hlink);
	TAILQ_INSERT_TAIL(&g->conns, c, all);
	g->nconns++;
	g->st.conns_opened++;
	g->st.conns_active++;
	return c;
}

void guest_conn_dirty(struct guest_conn *c)
{
	if (c->dirty || c->dead)
		return;
	c->dirty = true;
	TAILQ_INSERT_TAIL(&c->g->dirty, c, dlink);
}

static void guest_conn_unwait(struct guest_conn *c)
{
	if (!c->want_tx)
		return;
	c->want_tx = false;
	TAILQ_REMOVE(&c->g->txwait, c, wlink);
}

/* The connection is over: it leaves the table at once (later packets for
 * its ports get RST) and is reaped at the end of the step. */
void guest_conn_finish(struct guest_conn *c, enum guest_conn_state st,
                       int err)
{
	struct guest *g = c->g;

	if (c->dead)
		return;
	c->state = st;
	c->error = err;
	c->deadline = 0;
	c->tick_ms = 0;
	LIST_REMOVE(c, hlink);
	guest_conn_unwait(c);
	if (c->dirty)
		TAILQ_REMOVE(&g->dirty, c, dlink);
	c->dirty = false;
	c->dead = true;
	TAILQ_INSERT_TAIL(&g->dead, c, dlink);
}

void guest_conn_end_rst(struct guest_conn *c)
{
	if (c->peer_rst && !c->peer_rst_orderly)
		guest_conn_finish(c, GUEST_CONN_RESET, ECONNRESET);
	else
		guest_conn_finish(c, GUEST_CONN_CLOSED, 0);
}

const char *guest_conn_state_name(const struct guest_conn *c)
{
	switch (c->state) {
	case GUEST_CONN_CONNECTING:
		return "connecting";
	case GUEST_CONN_ESTABLISHED:
		return "established";
	case GUEST_CONN_CLOSING:
		return "closing";
	case GUEST_CONN_CLOSED:
		return c->error == ETIMEDOUT ? "close-timeout" : "closed";
	case GUEST_CONN_RESET:
		switch (c->error) {
		case ECONNREFUSED:
			return "refused";
		case ETIMEDOUT:
			return "timeout";
		case ECONNABORTED:
			return "aborted";
		case EPROTO:
			return "proto";
		default:
			return "reset";
		}
	}
	return "?";
}

/* --- sending -------------------------------------------------------------- */

void guest_conn_hdr(const struct guest_conn *c, uint16_t op,
                    struct virtio_vsock_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = htole64(c->g->cid);
	h->dst_cid = htole64(GUEST_HOST_CID);
	h->src_port = htole32(c->lport);
	h->dst_port = htole32(c->rport);
	h->type = htole16(VIRTIO_VSOCK_TYPE_STREAM);
	h->op = htole16(op);
	h->buf_alloc = htole32(c->buf_alloc);
	h->fwd_cnt = htole32(c->fwd_cnt);
}

void guest_conn_ctl(struct guest_conn *c, uint16_t op, uint32_t flags)
{
	struct guest *g = c->g;
	struct virtio_vsock_hdr h;

	guest_conn_hdr(c, op, &h);
	h.flags = htole32(flags);
	c->last_fwd_cnt = c->fwd_cnt;
	if (op == VIRTIO_VSOCK_OP_RST)
		g->st.rst_sent++;
	else if (op == VIRTIO_VSOCK_OP_CREDIT_UPDATE)
		g->st.credit_updates_sent++;
	else if (op == VIRTIO_VSOCK_OP_CREDIT_REQUEST)
		g->st.credit_requests_sent++;
	if (guest_tx_ctl(g, &h, NULL, 0) < 0)
		guest_error(g, "out of memory queueing %s", guest_op_name(op));
}

/* RST for a packet that belongs to no connection. */
void guest_rst_reply(struct guest *g, const struct virtio_vsock_hdr *in)
{
	struct virtio_vsock_hdr h;

	memset(&h, 0, sizeof(h));
	h.src_cid = htole64(g->cid);
	h.dst_cid = in->src_cid;
	h.src_port = in->dst_port;
	h.dst_port = in->src_port;
	h.type = htole16(VIRTIO_VSOCK_TYPE_STREAM);
	h.op = htole16(VIRTIO_VSOCK_OP_RST);
	g->st.rst_sent++;
	guest_tx_ctl(g, &h, NULL, 0);
}

uint32_t guest_conn_credit(const struct guest_conn *c)
{
	uint32_t inflight = c->tx_cnt - c->peer_fwd_cnt;

	return inflight >= c->peer_buf_alloc ? 0 :
	       c->peer_buf_alloc - inflight;
}

ssize_t guest_conn_write(struct guest_conn *c, const void *buf, size_t len)
{
	struct guest *g = c->g;
	const uint8_t *p = buf;
	size_t done = 0;

	if (c->state != GUEST_CONN_ESTABLISHED)
		return -ENOTCONN;
	if ((c->shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) ||
	    (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_RCV))
		return -EPIPE;
	while (done < len) {
		struct virtio_vsock_hdr h;
		uint32_t credit = c->ignore_credit ? UINT32_MAX :
		                  guest_conn_credit(c);
		size_t n = len - done;
		uint32_t inflight;
		int r;

		if (!credit) {
			c->credit_stalls++;
			if (g->o.credit_request && !c->credit_requested) {
				c->credit_requested = true;
				guest_conn_ctl(c, VIRTIO_VSOCK_OP_CREDIT_REQUEST,
				               0);
			}
			break;
		}
		if (n > credit)
			n = credit;
		if (n > GUEST_MAX_PKT)
			n = GUEST_MAX_PKT;
		guest_conn_hdr(c, VIRTIO_VSOCK_OP_RW, &h);
		h.len = htole32((uint32_t)n);
		r = guest_tx_data(g, &h, p + done, n);
		if (r == -EAGAIN) {
			if (!c->want_tx) {
				c->want_tx = true;
				TAILQ_INSERT_TAIL(&g->txwait, c, wlink);
			}
			break;
		}
		if (r < 0)
			return done ? (ssize_t)done : r;
		c->last_fwd_cnt = c->fwd_cnt;
		c->tx_cnt += (uint32_t)n;
		c->tx_total += n;
		done += n;
		inflight = c->tx_cnt - c->peer_fwd_cnt;
		if (inflight > c->inflight_max)
			c->inflight_max = inflight;
	}
	return (ssize_t)done;
}

void guest_conn_shutdown(struct guest_conn *c, uint32_t flags)
{
	flags &= GUEST_SHUTDOWN_BOTH & ~c->shutdown;
	if (!flags)
		return;
	c->shutdown |= flags;
	if (c->state == GUEST_CONN_ESTABLISHED)
		guest_conn_ctl(c, VIRTIO_VSOCK_OP_SHUTDOWN, flags);
}

void guest_conn_close(struct guest_conn *c)
{
	switch (c->state) {
	case GUEST_CONN_CONNECTING:
		guest_conn_ctl(c, VIRTIO_VSOCK_OP_RST, 0);
		guest_conn_finish(c, GUEST_CONN_RESET, ECONNABORTED);
		break;
	case GUEST_CONN_ESTABLISHED:
		if (c->peer_shutdown == GUEST_SHUTDOWN_BOTH) {
			/* The peer is done both ways: nothing to wait for
			 * (Linux answers RST even after the peer's RST). */
			guest_conn_ctl(c, VIRTIO_VSOCK_OP_RST, 0);
			guest_conn_end_rst(c);
			break;
		}
		c->shutdown = GUEST_SHUTDOWN_BOTH;
		guest_conn_ctl(c, VIRTIO_VSOCK_OP_SHUTDOWN, GUEST_SHUTDOWN_BOTH);
		c->state = GUEST_CONN_CLOSING;
		c->deadline = guest_now_ms() + c->g->o.close_timeout_ms;
		guest_timer_at(c->g, c->deadline);
		guest_conn_unwait(c);
		break;
	default:
		break;
	}
}

void guest_conn_reset(struct guest_conn *c)
{
	if (c->dead)
		return;
	guest_conn_ctl(c, VIRTIO_VSOCK_OP_RST, 0);
	guest_conn_finish(c, GUEST_CONN_RESET, ECONNABORTED);
}

void guest_conn_set_tick(struct guest_conn *c, unsigned ms)
{
	c->tick_ms = ms;
	if (ms) {
		c->next_tick = guest_now_ms() + ms;
		guest_timer_at(c->g, c->next_tick);
	}
}

/* --- receiving ------------------------------------------------------------ */

size_t guest_conn_peek(struct guest_conn *c, const uint8_t **p)
{
	*p = c->rxq.buf + c->rxq.head;
	return c->rxq.len;
}

void guest_conn_consume(struct guest_conn *c, size_t n)
{
	uint32_t delta;

	if (n > c->rxq.len)
		n = c->rxq.len;
	if (!n)
		return;
	guest_bytes_consume(&c->rxq, n);
	c->fwd_cnt += (uint32_t)n;
	if (c->state != GUEST_CONN_ESTABLISHED ||
	    (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND))
		return;
	/* Linux: update when the credit the peer believes we have runs low
	 * (less than one full packet), or when our queue ran dry. */
	delta = c->fwd_cnt - c->last_fwd_cnt;
	if (delta && (c->buf_alloc - delta < GUEST_MAX_PKT || !c->rxq.len))
		guest_conn_ctl(c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
}

size_t guest_conn_read(struct guest_conn *c, void *buf, size_t len)
{
	const uint8_t *p;
	size_t n = guest_conn_peek(c, &p);

	if (n > len)
		n = len;
	memcpy(buf, p, n);
	guest_conn_consume(c, n);
	return n;
}

bool guest_conn_eof(const struct guest_conn *c)
{
	if (c->rxq.len)
		return false;
	return (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) || c->dead;
}

/* --- listening and connecting --------------------------------------------- */

int guest_listen(struct guest *g, uint32_t port,
                 const struct guest_conn_ops *ops,
                 void (*accept_fn)(void *larg, struct guest_conn *c),
                 void *larg)
{
	struct guest_listener *l;

	if (guest_listener_find(g, port))
		return -EADDRINUSE;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->port = port;
	l->ops = ops;
	l->accept_fn = accept_fn;
	l->larg = larg;
	LIST_INSERT_HEAD(&g->listeners, l, link);
	return 0;
}

void guest_unlisten(struct guest *g, uint32_t port)
{
	struct guest_listener *l = guest_listener_find(g, port);

	if (l) {
		LIST_REMOVE(l, link);
		free(l);
	}
}

static uint32_t guest_ephemeral_port(struct guest *g, uint32_t host_port)
{
	uint32_t port;
	unsigned tries;

	for (tries = 0; tries < 65536; tries++) {
		port = g->next_port++;
		if (g->next_port > 65535)
			g->next_port = 1024;
		if (!guest_lookup(g, port, host_port) &&
		    !guest_listener_find(g, port))
			return port;
	}
	return 0;
}

struct guest_conn *guest_conn_phantom(struct guest *g, uint32_t host_port,
                                      const struct guest_conn_ops *ops,
                                      void *arg)
{
	uint32_t port = guest_ephemeral_port(g, host_port);
	struct guest_conn *c;

	if (!port) {
		errno = EADDRINUSE;
		return NULL;
	}
	c = guest_conn_alloc(g, port, host_port, ops, arg);
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->outgoing = true;
	c->state = GUEST_CONN_ESTABLISHED;
	guest_conn_dirty(c);
	return c;
}

struct guest_conn *guest_connect(struct guest *g, uint32_t host_port,
                                 const struct guest_conn_ops *ops,
                                 void *arg)
{
	struct guest_conn *c;
	uint32_t port = guest_ephemeral_port(g, host_port);

	if (!port) {
		errno = EADDRINUSE;
		return NULL;
	}
	c = guest_conn_alloc(g, port, host_port, ops, arg);
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->outgoing = true;
	c->state = GUEST_CONN_CONNECTING;
	c->deadline = guest_now_ms() + g->o.connect_timeout_ms;
	guest_timer_at(g, c->deadline);
	guest_conn_ctl(c, VIRTIO_VSOCK_OP_REQUEST, 0);
	return c;
}

/* --- the step ------------------------------------------------------------- */

static void guest_conn_timeout(struct guest_conn *c)
{
	c->deadline = 0;
	if (c->state == GUEST_CONN_CONNECTING) {
		guest_conn_ctl(c, VIRTIO_VSOCK_OP_RST, 0);
		guest_conn_finish(c, GUEST_CONN_RESET, ETIMEDOUT);
	} else if (c->state == GUEST_CONN_CLOSING) {
		guest_conn_ctl(c, VIRTIO_VSOCK_OP_RST, 0);
		guest_conn_finish(c, GUEST_CONN_CLOSED, ETIMEDOUT);
	}
}

static void guest_timers(struct guest *g)
{
	struct guest_conn *c, *n;
	uint64_t now = guest_now_ms(), next = UINT64_MAX;

	if (now < g->next_timer)
		return;
	for (c = TAILQ_FIRST(&g->conns); c; c = n) {
		n = TAILQ_NEXT(c, all);
		if (c->dead)
			continue;
		if (c->deadline && c->deadline <= now)
			guest_conn_timeout(c);
		if (c->dead)
			continue;
		if (c->tick_ms && c->next_tick <= now) {
			c->next_tick = now + c->tick_ms;
			guest_conn_dirty(c);
		}
		if (c->deadline && c->deadline < next)
			next = c->deadline;
		if (c->tick_ms && c->next_tick < next)
			next = c->next_tick;
	}
	g->next_timer = next;
}

void guest_conns_run(struct guest *g)
{
	struct guest_conn *c;
	unsigned budget = 4 * g->nconns + 64;

	guest_timers(g);
	if (g->tx_freed) {
		g->tx_freed = false;
		while ((c = TAILQ_FIRST(&g->txwait))) {
			guest_conn_unwait(c);
			guest_conn_dirty(c);
		}
	}
	g->more_work = false;
	while ((c = TAILQ_FIRST(&g->dirty))) {
		if (!budget--) {
			g->more_work = true;
			break;
		}
		TAILQ_REMOVE(&g->dirty, c, dlink);
		c->dirty = false;
		if (c->ops && c->ops->pump)
			c->ops->pump(c);
		/* What came before the peer's RST is read: now it ends. */
		if (c->peer_rst && !c->dead && !c->rxq.len)
			guest_conn_end_rst(c);
	}
}

void guest_conns_reap(struct guest *g)
{
	struct guest_conn *c;

	while ((c = TAILQ_FIRST(&g->dead))) {
		TAILQ_REMOVE(&g->dead, c, dlink);
		TAILQ_REMOVE(&g->conns, c, all);
		g->reaped = true;
		g->nconns--;
		g->st.conns_active--;
		if (c->ops && c->ops->done)
			c->ops->done(c);
		free(c->rxq.buf);
		free(c);
	}
}

void guest_conns_free(struct guest *g)
{
	struct guest_conn *c;
	struct guest_listener *l;

	while ((c = TAILQ_FIRST(&g->conns))) {
		TAILQ_REMOVE(&g->conns, c, all);
		free(c->rxq.buf);
		free(c);
	}
	while ((l = LIST_FIRST(&g->listeners))) {
		LIST_REMOVE(l, link);
		free(l);
	}
	g->nconns = 0;
}

unsigned guest_conn_count(const struct guest *g)
{
	return g->nconns;
}

struct guest_conn *guest_conn_first(struct guest *g)
{
	return TAILQ_FIRST(&g->conns);
}

struct guest_conn *guest_conn_next(struct guest_conn *c)
{
	return TAILQ_NEXT(c, all);
}
