/*
 * vsock guest → host: packets from the tx queue.
 *
 * The guest is untrusted.  A packet that cannot be attributed (shorter
 * than the header) is dropped; one that names a connection but breaks the
 * protocol (wrong CID, wrong type, len past the buffer, data past our
 * credit, an op the state does not allow, an unknown op) resets that
 * connection with one log line; every other connection is untouched.
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "chanfs/chan.h"
#include "chanfs/loop.h"
#include "chanfs/log.h"
#include "chanfs/vq.h"
#include "vsock_priv.h"

/* A packet header in host byte order. */
struct vsock_pkt {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

const char *vsock_op_name(uint16_t op)
{
	static const char *const names[] = {
		[VIRTIO_VSOCK_OP_INVALID] = "INVALID",
		[VIRTIO_VSOCK_OP_REQUEST] = "REQUEST",
		[VIRTIO_VSOCK_OP_RESPONSE] = "RESPONSE",
		[VIRTIO_VSOCK_OP_RST] = "RST",
		[VIRTIO_VSOCK_OP_SHUTDOWN] = "SHUTDOWN",
		[VIRTIO_VSOCK_OP_RW] = "RW",
		[VIRTIO_VSOCK_OP_CREDIT_UPDATE] = "CREDIT_UPDATE",
		[VIRTIO_VSOCK_OP_CREDIT_REQUEST] = "CREDIT_REQUEST",
	};

	if (op < sizeof names / sizeof names[0])
		return names[op];
	return "unknown op";
}

static void vsock_tx_parse(const struct virtio_vsock_hdr *h,
                           struct vsock_pkt *p)
{
	p->src_cid = le64toh(h->src_cid);
	p->dst_cid = le64toh(h->dst_cid);
	p->src_port = le32toh(h->src_port);
	p->dst_port = le32toh(h->dst_port);
	p->len = le32toh(h->len);
	p->type = le16toh(h->type);
	p->op = le16toh(h->op);
	p->flags = le32toh(h->flags);
	p->buf_alloc = le32toh(h->buf_alloc);
	p->fwd_cnt = le32toh(h->fwd_cnt);
}

/* A connection broke the protocol: one line, RST, the host sees
 * ECONNRESET (data already accepted stays readable). */
static void vsock_tx_misbehaved(struct vsock_conn *c,
                                const struct vsock_pkt *p,
                                const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void vsock_tx_misbehaved(struct vsock_conn *c,
                                const struct vsock_pkt *p,
                                const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	c->v->pkts_rejected++;
	log_warnx(VSOCK_CONN_FMT ": %s: %s; connection reset",
	          VSOCK_CONN_ARGS(c), vsock_op_name(p->op), why);
	vsock_conn_reset(c, ECONNRESET, true);
}

/* A packet for no connection that we reject: one line, and an RST unless
 * it was one. */
static void vsock_tx_refuse(struct vsock *v, const struct vsock_pkt *p,
                            bool warn, const char *why)
{
	bool rst = p->op != VIRTIO_VSOCK_OP_RST;
	const char *reply = rst ? "RST" : "dropped";

	v->pkts_rejected++;
	if (rst && !vsock_ctl_queue_rst(v, p->dst_port, p->src_port))
		reply = "RST dropped (reply queue full)";
	if (warn)
		log_warnx("vsock %llu:%u-%llu:%u: %s: %s; %s",
		          (unsigned long long)p->src_cid, p->src_port,
		          (unsigned long long)p->dst_cid, p->dst_port,
		          vsock_op_name(p->op), why, reply);
	else
		log_info("vsock %llu:%u-%llu:%u: %s: %s; %s",
		         (unsigned long long)p->src_cid, p->src_port,
		         (unsigned long long)p->dst_cid, p->dst_port,
		         vsock_op_name(p->op), why, reply);
}

/* A guest connects to a host port. */
static void vsock_tx_request(struct vsock *v, const struct vsock_pkt *p)
{
	struct vsock_conn *c;
	char why[64];
	bool queue = vsock_listener_can_queue(v, p->dst_port, why, sizeof why);

	if (!queue && !vsock_listener_fallback_ok(v, p->dst_port)) {
		vsock_tx_refuse(v, p, false, why);
		return;
	}
	c = vsock_conn_new(v, p->dst_port, p->src_port, VSOCK_ESTABLISHED);
	if (!c) {
		vsock_tx_refuse(v, p, true, "cannot allocate a connection");
		return;
	}
	c->pkts_in++;
	c->peer_buf_alloc = p->buf_alloc;
	c->peer_fwd_cnt = p->fwd_cnt;
	chan_opened(c->chan);
	if (!queue && !vsock_listener_fallback(c))
		return;
	vsock_ctl_queue(c, VSOCK_CTL_RESPONSE);
	log_debug(VSOCK_CONN_FMT ": connected", VSOCK_CONN_ARGS(c));
	if (queue)
		vsock_listener_enqueue(v, c->host_port, c->chan);
}

/* Take back what is lent: the host's read was answered (or never came),
 * what it left goes into to_host after the bytes it read, and the held
 * chains are completed (in order with VIRTIO_F_IN_ORDER: vq_push waits
 * for the earlier ones). */
static void vsock_tx_unlend(struct vsock *v)
{
	struct vsock_lend *l = &v->lend;
	struct vq_elem e;
	unsigned i;

	if (!l->chan)
		return;
	chan_guest_unlend(l->chan);
	memset(&e, 0, offsetof(struct vq_elem, iov));
	for (i = 0; i < l->nheld; i++) {
		e.id = l->held[i].id;
		e.seq = l->held[i].seq;
		e.in_len = l->held[i].in_len;
		vq_push(l->vq, &e, 0);
	}
	l->nheld = l->niov = 0;
	chan_unref(l->chan);
	l->chan = NULL;
	loop_cancel(v->loop, &l->task);
}

void vsock_tx_lend_end(struct vsock *v)
{
	struct vq *vq = v->lend.vq;

	if (!v->lend.chan)
		return;
	vsock_tx_unlend(v);
	vq_flush(vq);
}

void vsock_tx_lend_task(void *arg)
{
	vsock_tx_lend_end(arg);
}

/* Lend the payload to a host read parked on c's channel instead of
 * copying it into the window (true: lent, the chain is held until
 * lend.task, this turn).  Bytes lent already go before anything copied,
 * so a packet that cannot be lent takes them back first. */
static bool vsock_tx_lend(struct vsock_conn *c, const struct vq_elem *e,
                          const struct vsock_pkt *p)
{
	struct vsock *v = c->v;
	struct vsock_lend *l = &v->lend;
	unsigned n;

	if (l->chan && l->chan != c->chan)
		return false;
	if (!v->vq[VSOCK_TXQ] || l->nheld == VSOCK_LEND_CHAINS ||
	    l->niov + e->out_num > CHAN_LEND_MAX ||
	    !chan_guest_can_lend(c->chan)) {
		vsock_tx_unlend(v);
		return false;
	}
	n = vq_iov_slice(e->iov, e->out_num, VSOCK_HDR_SIZE, p->len,
	                 l->iov + l->niov);
	l->held[l->nheld].id = e->id;
	l->held[l->nheld].seq = e->seq;
	l->held[l->nheld].in_len = e->in_len;
	l->nheld++;
	l->niov += n;
	if (!l->chan) {
		chan_ref(c->chan);
		l->chan = c->chan;
		l->vq = v->vq[VSOCK_TXQ];
	}
	/* The readable edge queues the reader's service; the take-back is
	 * queued after it. */
	chan_guest_lend(c->chan, l->iov, l->niov);
	loop_defer(v->loop, &l->task);
	v->tx_held = true;
	v->pkts_lent++;
	return true;
}

/* Returns false when c was reset (and is gone). */
static bool vsock_tx_rw(struct vsock_conn *c, const struct vq_elem *e,
                        const struct vsock_pkt *p)
{
	struct iovec iov[VQ_ELEM_MAX_IOV];
	uint32_t credit;
	size_t took;
	int n;

	if (c->state == VSOCK_CONNECTING) {
		vsock_tx_misbehaved(c, p, "data before RESPONSE");
		return false;
	}
	if (c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_SEND) {
		vsock_tx_misbehaved(c, p, "data after SHUTDOWN(SEND)");
		return false;
	}
	credit = vsock_conn_our_credit(c);
	if (p->len > credit) {
		vsock_tx_misbehaved(c, p, "%u bytes beyond the credit given "
		                    "(%u)", p->len, credit);
		return false;
	}
	c->rx_cnt += p->len;
	if (p->len == 0)
		return true;
	if (c->host_closed) {
		/* Nobody reads any more: drop it, as consumed. */
		c->fwd_cnt += p->len;
		return true;
	}
	if (vsock_tx_lend(c, e, p))
		return true;
	n = (int)vq_iov_slice(e->iov, e->out_num, VSOCK_HDR_SIZE, p->len,
	                      iov);
	took = chan_guest_send(c->chan, iov, n);
	if (took < p->len) {
		/* Within our credit the window always has room; if it did
		 * not, the accounting is off and the stream is corrupt. */
		c->rx_cnt -= p->len - (uint32_t)took;
		vsock_tx_misbehaved(c, p, "channel took %zu of %u bytes", took,
		                    p->len);
		return false;
	}
	return true;
}

static void vsock_tx_shutdown(struct vsock_conn *c, const struct vsock_pkt *p)
{
	uint32_t flags = p->flags & (VIRTIO_VSOCK_SHUTDOWN_RCV |
	                             VIRTIO_VSOCK_SHUTDOWN_SEND);
	uint32_t fresh = flags & ~c->peer_shut;

	if (c->state == VSOCK_CONNECTING) {
		vsock_tx_misbehaved(c, p, "SHUTDOWN before RESPONSE");
		return;
	}
	c->peer_shut |= flags;
	if (c->state == VSOCK_ESTABLISHED && c->peer_shut)
		c->state = VSOCK_PEER_CLOSED;
	if (fresh & VIRTIO_VSOCK_SHUTDOWN_SEND)
		chan_guest_eof(c->chan);
	if (fresh & VIRTIO_VSOCK_SHUTDOWN_RCV)
		chan_guest_norecv(c->chan);
	/* Linux's rule: when the guest has shut both ways (or we both
	 * stopped sending), nothing more can flow; end it with RST. */
	if (vsock_conn_done(c)) {
		vsock_conn_finish(c);
		return;
	}
	vsock_conn_after_data(c);
}

static void vsock_tx_rst(struct vsock_conn *c)
{
	log_debug(VSOCK_CONN_FMT ": RST from the guest (%s)",
	          VSOCK_CONN_ARGS(c), vsock_conn_state_name(c->state));
	switch (c->state) {
	case VSOCK_CONNECTING:
		vsock_conn_reset(c, ECONNREFUSED, false);
		break;
	case VSOCK_LOCAL_CLOSED:
		/* The answer to our SHUTDOWN: an orderly end. */
		chan_closed(c->chan);
		vsock_conn_remove(c, false);
		break;
	default:
		vsock_conn_reset(c, ECONNRESET, false);
		break;
	}
}

static void vsock_tx_conn(struct vsock_conn *c, const struct vq_elem *e,
                          const struct vsock_pkt *p)
{
	c->pkts_in++;
	/* Lent bytes come before whatever this packet changes (EOF, reset,
	 * more data copied into the window). */
	if (c->v->lend.chan == c->chan && p->op != VIRTIO_VSOCK_OP_RW)
		vsock_tx_unlend(c->v);
	if (p->op == VIRTIO_VSOCK_OP_RST) {
		vsock_tx_rst(c);
		return;
	}
	/* Every header carries the guest's current window. */
	vsock_conn_peer_credit_update(c, p->buf_alloc, p->fwd_cnt);
	switch (p->op) {
	case VIRTIO_VSOCK_OP_REQUEST:
		vsock_tx_misbehaved(c, p, "connection exists (%s)",
		                    vsock_conn_state_name(c->state));
		return;
	case VIRTIO_VSOCK_OP_RESPONSE:
		if (c->state != VSOCK_CONNECTING) {
			vsock_tx_misbehaved(c, p, "not connecting (%s)",
			                    vsock_conn_state_name(c->state));
			return;
		}
		c->state = VSOCK_ESTABLISHED;
		if (c->timer)
			evtimer_del(c->timer);
		log_debug(VSOCK_CONN_FMT ": connected", VSOCK_CONN_ARGS(c));
		chan_opened(c->chan);
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		vsock_tx_shutdown(c, p);
		return;
	case VIRTIO_VSOCK_OP_RW:
		if (!vsock_tx_rw(c, e, p))
			return;
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		vsock_ctl_queue(c, VSOCK_CTL_CREDIT_UPDATE);
		break;
	default:
		vsock_tx_misbehaved(c, p, "op %u not supported", p->op);
		return;
	}
	vsock_conn_after_data(c);
}

static void vsock_tx_packet(struct vsock *v, const struct vq_elem *e)
{
	struct virtio_vsock_hdr raw;
	struct vsock_pkt p;
	struct vsock_conn *c;
	char why[128];

	v->pkts_rx++;
	if (e->out_len < VSOCK_HDR_SIZE) {
		v->pkts_rejected++;
		log_warnx("vsock tx: head %u: %u readable bytes, shorter than "
		          "the %d-byte header; dropped", e->id, e->out_len,
		          VSOCK_HDR_SIZE);
		return;
	}
	vq_iov_read(e->iov, e->out_num, 0, &raw, sizeof raw);
	vsock_tx_parse(&raw, &p);
	c = vsock_conn_find(v, p.dst_port, p.src_port);

	why[0] = '\0';
	if (p.src_cid != v->cfg.guest_cid)
		snprintf(why, sizeof why, "source CID %llu is not the guest's "
		         "(%llu)", (unsigned long long)p.src_cid,
		         (unsigned long long)v->cfg.guest_cid);
	else if (p.dst_cid != VSOCK_HOST_CID)
		snprintf(why, sizeof why, "destination CID %llu is not the "
		         "host's (%d)", (unsigned long long)p.dst_cid,
		         VSOCK_HOST_CID);
	else if (p.type != VIRTIO_VSOCK_TYPE_STREAM)
		snprintf(why, sizeof why, "type %u is not STREAM", p.type);
	else if (p.len > VSOCK_MAX_PAYLOAD)
		snprintf(why, sizeof why, "len %u exceeds the %u-byte maximum",
		         p.len, VSOCK_MAX_PAYLOAD);
	else if (p.len > e->out_len - VSOCK_HDR_SIZE)
		snprintf(why, sizeof why, "len %u larger than the %u payload "
		         "bytes in the buffer", p.len,
		         e->out_len - VSOCK_HDR_SIZE);
	if (why[0]) {
		if (c)
			vsock_tx_misbehaved(c, &p, "%s", why);
		else
			vsock_tx_refuse(v, &p, true, why);
		return;
	}

	if (c) {
		vsock_tx_conn(c, e, &p);
		return;
	}
	switch (p.op) {
	case VIRTIO_VSOCK_OP_REQUEST:
		vsock_tx_request(v, &p);
		break;
	case VIRTIO_VSOCK_OP_RST:
		/* Nothing to reset, and an RST is never answered. */
		log_debug("vsock %llu:%u-2:%u: RST for no connection",
		          (unsigned long long)p.src_cid, p.src_port,
		          p.dst_port);
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		/* Control for a connection that has just ended in order (the
		 * guest's close crossed our RST): normal, answered quietly. */
		v->pkts_rejected++;
		vsock_ctl_queue_rst(v, p.dst_port, p.src_port);
		log_debug("vsock %llu:%u-2:%u: %s for no connection; RST",
		          (unsigned long long)p.src_cid, p.src_port,
		          p.dst_port, vsock_op_name(p.op));
		break;
	default:
		vsock_tx_refuse(v, &p, false, "no such connection");
		break;
	}
}

/* vq_drain's handler: one packet; TX buffers have nothing to write. */
static uint32_t vsock_tx_one(void *arg, const struct vq_elem *e)
{
	struct vsock *v = arg;

	v->tx_turn_bytes += e->out_len;
	v->tx_held = false;
	vsock_tx_packet(v, e);
	return v->tx_held ? VQ_HELD : 0;
}

/* vq_drain's test: this turn's TX byte budget is not spent yet, or the
 * host has nothing for the guest waiting (then there is nobody to yield
 * to). */
static bool vsock_tx_want(void *arg)
{
	const struct vsock *v = arg;

	return v->tx_turn_bytes < VSOCK_TX_TURN_BYTES || TAILQ_EMPTY(&v->rr);
}

void vsock_tx_run(struct vsock *v)
{
	v->tx_turn_bytes = 0;
	vsock_drain(v, VSOCK_TXQ, v->tx_elem, vsock_tx_one, vsock_tx_want,
	            &v->tx_task);
	/* Spent: the rest next turn, after the RX fill had its turn (guest
	 * packets are large, RX buffers small: counted in packets, the
	 * guest's sending would crowd out the host's). */
	if (!vsock_tx_want(v))
		loop_defer_next(v->loop, &v->tx_task);
}

void vsock_tx_task(void *arg)
{
	vsock_tx_run(arg);
}
