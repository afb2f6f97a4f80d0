/*
 * vsock host → guest: the pull-based RX fill (seed 003).
 *
 * Nothing is pushed at the guest when it happens: events only mark work
 * (a control packet queued, a channel with data and credit in the
 * round-robin) and schedule one fill per loop turn.  The fill takes an RX
 * buffer only when it has something to put in it: control packets first
 * (the peer's requests before our data, seed 004), then one data packet
 * per connection per round, so no connection starves another.  Buffers may
 * be one descriptor or a 44-byte header plus a data descriptor (Linux
 * 6.1); the packet is written across whatever iovecs the chain has.
 */
#include <endian.h>
#include <string.h>

#include <event2/event.h>

#include "chanfs/chan.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/ring.h"
#include "chanfs/vq.h"
#include "vsock_priv.h"

/* Scatter len bytes into the writable part of e at offset off. */
static void vsock_rx_scatter(const struct vq_elem *e, size_t off,
                             const void *src, size_t len)
{
	vq_iov_write(e->iov + e->out_num, e->in_num, off, src, len);
}

static void vsock_rx_hdr(const struct vsock *v, const struct vq_elem *e,
                         uint32_t host_port, uint32_t guest_port,
                         uint16_t op, uint32_t flags, uint32_t len,
                         uint32_t buf_alloc, uint32_t fwd_cnt)
{
	struct virtio_vsock_hdr h = {
		.src_cid = htole64(VSOCK_HOST_CID),
		.dst_cid = htole64(v->cfg.guest_cid),
		.src_port = htole32(host_port),
		.dst_port = htole32(guest_port),
		.len = htole32(len),
		.type = htole16(VIRTIO_VSOCK_TYPE_STREAM),
		.op = htole16(op),
		.flags = htole32(flags),
		.buf_alloc = htole32(buf_alloc),
		.fwd_cnt = htole32(fwd_cnt),
	};

	vsock_rx_scatter(e, 0, &h, sizeof h);
}

/* A header for c: every packet tells the guest our current window. */
static void vsock_rx_conn_hdr(struct vsock_conn *c, const struct vq_elem *e,
                              uint16_t op, uint32_t flags, uint32_t len)
{
	vsock_rx_hdr(c->v, e, c->host_port, c->guest_port, op, flags, len,
	             c->buf_alloc, c->fwd_cnt);
	c->last_fwd_sent = c->fwd_cnt;
	c->pkts_out++;
}

/* Write the control packet at the head of the FIFO into e. */
static uint32_t vsock_rx_ctl(struct vsock *v, const struct vq_elem *e)
{
	struct vsock_ctl *q = TAILQ_FIRST(&v->ctlq);
	struct vsock_conn *c = q->conn;
	unsigned bit;
	uint16_t op;
	uint32_t flags = 0;

	if (!c) {
		TAILQ_REMOVE(&v->ctlq, q, link);
		q->queued = false;
		vsock_rx_hdr(v, e, q->host_port, q->guest_port,
		             VIRTIO_VSOCK_OP_RST, 0, 0, 0, 0);
		TAILQ_INSERT_TAIL(&v->rst_free, q, link);
		return VSOCK_HDR_SIZE;
	}
	bit = c->ctl_pending & -c->ctl_pending;
	c->ctl_pending &= ~bit;
	if (!c->ctl_pending) {
		TAILQ_REMOVE(&v->ctlq, q, link);
		q->queued = false;
	}
	switch (bit) {
	case VSOCK_CTL_REQUEST:
		op = VIRTIO_VSOCK_OP_REQUEST;
		break;
	case VSOCK_CTL_RESPONSE:
		op = VIRTIO_VSOCK_OP_RESPONSE;
		break;
	case VSOCK_CTL_CREDIT_UPDATE:
		op = VIRTIO_VSOCK_OP_CREDIT_UPDATE;
		break;
	case VSOCK_CTL_CREDIT_REQUEST:
		op = VIRTIO_VSOCK_OP_CREDIT_REQUEST;
		break;
	default:
		op = VIRTIO_VSOCK_OP_SHUTDOWN;
		flags = c->local_shut_want;
		break;
	}
	vsock_rx_conn_hdr(c, e, op, flags, 0);
	if (op == VIRTIO_VSOCK_OP_SHUTDOWN) {
		c->local_shut |= flags;
		if (vsock_conn_done(c)) {
			vsock_conn_finish(c);
		} else {
			vsock_conn_shutdown_sent(c);
			vsock_conn_update_rr(c);
		}
	}
	return VSOCK_HDR_SIZE;
}

/* Write one data packet of the connection at the head of the round-robin
 * into e (which has room past the header); it goes to the back. */
static uint32_t vsock_rx_data(struct vsock *v, const struct vq_elem *e)
{
	struct vsock_conn *c = TAILQ_FIRST(&v->rr);
	struct iovec src[3];
	uint32_t n, off = 0;
	bool small;
	int i, cnt;

	TAILQ_REMOVE(&v->rr, c, rr_link);
	c->in_rr = false;
	n = e->in_len - VSOCK_HDR_SIZE;
	if (n > VSOCK_MAX_RX_PAYLOAD)
		n = VSOCK_MAX_RX_PAYLOAD;
	/* All there is, and less than both the buffer and the credit allow:
	 * a small write (coalescing, vsock_priv.h). */
	small = chan_guest_pending(c->chan) < n &&
	        chan_guest_pending(c->chan) < vsock_conn_peer_credit(c) &&
	        chan_guest_pending(c->chan) < VSOCK_SMALL_PKT;
	if (n > vsock_conn_peer_credit(c))
		n = vsock_conn_peer_credit(c);
	if (n > chan_guest_pending(c->chan))
		n = (uint32_t)chan_guest_pending(c->chan);
	/* to_guest, then a parked host write straight from its buffer */
	cnt = chan_guest_peek(c->chan, src, n);
	for (i = 0; i < cnt; i++) {
		vsock_rx_scatter(e, VSOCK_HDR_SIZE + off, src[i].iov_base,
		                 src[i].iov_len);
		off += (uint32_t)src[i].iov_len;
	}
	vsock_rx_conn_hdr(c, e, VIRTIO_VSOCK_OP_RW, 0, n);
	c->tx_cnt += n;
	vsock_conn_sent_data(c, small);
	chan_guest_took(c->chan, n);
	vsock_conn_after_data(c);
	return VSOCK_HDR_SIZE + n;
}

/* Fill e with the next packet; returns the bytes written. */
static uint32_t vsock_rx_one(struct vsock *v, const struct vq_elem *e)
{
	if (e->in_len < VSOCK_HDR_SIZE) {
		log_warnx("vsock rx: head %u: %u writable bytes cannot hold "
		          "the %d-byte header; returned empty", e->id,
		          e->in_len, VSOCK_HDR_SIZE);
		return 0;
	}
	if (!TAILQ_EMPTY(&v->ctlq))
		return vsock_rx_ctl(v, e);
	if (e->in_len == VSOCK_HDR_SIZE) {
		/* Only data is waiting and it does not fit: say so once per
		 * session, not once per buffer. */
		if (!v->warned_small_rx)
			log_warnx("vsock rx: head %u: a header-only buffer "
			          "cannot carry data; returned empty", e->id);
		v->warned_small_rx = true;
		return 0;
	}
	return vsock_rx_data(v, e);
}

/* vq_drain's test: control packets or data with credit are waiting. */
static bool vsock_rx_want(void *arg)
{
	struct vsock *v = arg;

	return !TAILQ_EMPTY(&v->ctlq) || !TAILQ_EMPTY(&v->rr);
}

/* vq_drain's handler: fill one buffer. */
static uint32_t vsock_rx_buf(void *arg, const struct vq_elem *e)
{
	struct vsock *v = arg;

	v->pkts_tx++;
	return vsock_rx_one(v, e);
}

void vsock_rx_fill(void *arg)
{
	struct vsock *v = arg;
	struct vsock_conn *c;

	/* Host-side events recorded inside chan calls. */
	while ((c = TAILQ_FIRST(&v->todo)) != NULL) {
		TAILQ_REMOVE(&v->todo, c, todo_link);
		c->in_todo = false;
		vsock_conn_do_todo(c);
	}
	/* RX buffers are wanted only when there is something to send: the
	 * guest's refills need not wake us (vq_drain, lazy kicks). */
	if (v->vq[VSOCK_RXQ])
		v->vq[VSOCK_RXQ]->lazy_kicks = true;
	vsock_drain(v, VSOCK_RXQ, v->rx_elem, vsock_rx_buf, vsock_rx_want,
	            &v->fill_task);
}
