/*
 * guest_vsock_recv.c — packets from the device, as Linux's
 * virtio_transport_recv_pkt takes them: check the addressing, find the
 * connection (or the listener a REQUEST is for, or answer RST), take the
 * peer's credit from every packet, then act on the op in the connection's
 * state.  Whatever the device gets wrong is counted as an error.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>

#include "guest_vsock_priv.h"

/* Every packet carries the peer's credit. */
static void guest_conn_space(struct guest_conn *c,
                             const struct virtio_vsock_hdr *h)
{
	uint32_t fwd = le32toh(h->fwd_cnt);
	uint32_t moved = fwd - c->peer_fwd_cnt;
	uint32_t sent = c->tx_cnt - c->peer_fwd_cnt;

	c->peer_buf_alloc = le32toh(h->buf_alloc);
	if (moved > sent) {
		guest_error(c->g, "conn %u:%u: host fwd_cnt %u is beyond the "
		            "%u bytes we sent (was %u)", c->lport, c->rport,
		            fwd, c->tx_cnt, c->peer_fwd_cnt);
		return;
	}
	c->peer_fwd_cnt = fwd;
	if (moved) {
		c->credit_requested = false;
		guest_conn_dirty(c);
	}
}

static void guest_accept(struct guest *g, struct guest_listener *l,
                         const struct virtio_vsock_hdr *h, uint32_t plen)
{
	struct guest_conn *c;

	if (!l->ops) {
		g->st.ignored_requests++;
		return;
	}
	if (plen)
		guest_error(g, "rx: REQUEST to port %u carries %u bytes",
		            l->port, plen);
	c = guest_conn_alloc(g, l->port, le32toh(h->src_port), l->ops, NULL);
	if (!c) {
		guest_rst_reply(g, h);
		return;
	}
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	c->peer_fwd_cnt = c->tx_cnt = le32toh(h->fwd_cnt);
	c->state = GUEST_CONN_ESTABLISHED;
	guest_conn_ctl(c, VIRTIO_VSOCK_OP_RESPONSE, 0);
	if (l->accept_fn)
		l->accept_fn(l->larg, c);
	guest_conn_dirty(c);
}

static void guest_recv_rw(struct guest_conn *c, const uint8_t *payload,
                          uint32_t plen)
{
	struct guest *g = c->g;

	if (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) {
		guest_error(g, "conn %u:%u: host sent %u bytes after "
		            "SHUTDOWN(SEND)", c->lport, c->rport, plen);
		return;
	}
	if (c->shutdown & VIRTIO_VSOCK_SHUTDOWN_RCV)
		return; /* in flight before it saw our shutdown: dropped */
	if (c->rxq.len + plen > c->buf_alloc) {
		guest_error(g, "conn %u:%u: host sent %u bytes with %zu of "
		            "our credit left", c->lport, c->rport, plen,
		            c->buf_alloc - c->rxq.len);
		return;
	}
	if (guest_bytes_append(&c->rxq, payload, plen) < 0) {
		guest_error(g, "conn %u:%u: out of memory", c->lport, c->rport);
		return;
	}
	c->rx_total += plen;
	c->rx_pkts++;
	guest_conn_dirty(c);
}

static void guest_recv_established(struct guest_conn *c,
                                   const struct virtio_vsock_hdr *h,
                                   const uint8_t *payload, uint32_t plen)
{
	struct guest *g = c->g;
	uint16_t op = le16toh(h->op);

	switch (op) {
	case VIRTIO_VSOCK_OP_RW:
		guest_recv_rw(c, payload, plen);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		guest_conn_dirty(c);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		guest_conn_ctl(c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		c->peer_shutdown |= le32toh(h->flags) & GUEST_SHUTDOWN_BOTH;
		guest_conn_dirty(c);
		if (c->peer_shutdown == GUEST_SHUTDOWN_BOTH && !c->rxq.len) {
			guest_conn_ctl(c, VIRTIO_VSOCK_OP_RST, 0);
			guest_conn_finish(c, GUEST_CONN_CLOSED, 0);
		}
		break;
	case VIRTIO_VSOCK_OP_RST:
		g->st.rst_recv++;
		if (c->peer_rst)
			break;
		if (c->rxq.len) {
			/* Often in the same batch as the last data and the
			 * peer's SHUTDOWN: Linux keeps the data readable. */
			c->peer_rst = true;
			c->peer_rst_orderly =
				c->peer_shutdown == GUEST_SHUTDOWN_BOTH;
			c->peer_shutdown = GUEST_SHUTDOWN_BOTH;
			guest_conn_dirty(c);
			break;
		}
		guest_conn_finish(c, GUEST_CONN_RESET, ECONNRESET);
		break;
	default:
		guest_error(g, "conn %u:%u: unexpected %s (op %u) while "
		            "established", c->lport, c->rport,
		            guest_op_name(op), op);
		break;
	}
}

void guest_conn_recv(struct guest *g, const struct virtio_vsock_hdr *h,
                     const uint8_t *payload, uint32_t plen)
{
	uint16_t op = le16toh(h->op);
	uint32_t sport = le32toh(h->src_port), dport = le32toh(h->dst_port);
	struct guest_conn *c;
	struct guest_listener *l;

	if (le64toh(h->src_cid) != GUEST_HOST_CID ||
	    le64toh(h->dst_cid) != g->cid) {
		guest_error(g, "rx: %s from cid %" PRIu64 " to cid %" PRIu64
		            " (we are %" PRIu64 ")", guest_op_name(op),
		            (uint64_t)le64toh(h->src_cid),
		            (uint64_t)le64toh(h->dst_cid), g->cid);
		return;
	}
	if (le16toh(h->type) != VIRTIO_VSOCK_TYPE_STREAM) {
		guest_error(g, "rx: %s of type %u for port %u",
		            guest_op_name(op), le16toh(h->type), dport);
		if (op != VIRTIO_VSOCK_OP_RST)
			guest_rst_reply(g, h);
		return;
	}
	if (op != VIRTIO_VSOCK_OP_RW && plen)
		guest_error(g, "rx: %s for %u:%u carries %u bytes",
		            guest_op_name(op), dport, sport, plen);
	c = guest_lookup(g, dport, sport);
	if (!c) {
		if (op == VIRTIO_VSOCK_OP_RST) {
			g->st.rst_recv++;
			return;
		}
		if (op == VIRTIO_VSOCK_OP_REQUEST &&
		    (l = guest_listener_find(g, dport))) {
			guest_accept(g, l, h, plen);
			return;
		}
		guest_rst_reply(g, h);
		return;
	}
	/* An RST's credit fields mean nothing (hosts send zeros). */
	if (op != VIRTIO_VSOCK_OP_RST)
		guest_conn_space(c, h);
	switch (c->state) {
	case GUEST_CONN_CONNECTING:
		if (op == VIRTIO_VSOCK_OP_RESPONSE) {
			c->state = GUEST_CONN_ESTABLISHED;
			c->deadline = 0;
			guest_conn_dirty(c);
		} else if (op == VIRTIO_VSOCK_OP_RST) {
			g->st.rst_recv++;
			guest_conn_finish(c, GUEST_CONN_RESET, ECONNREFUSED);
		} else {
			guest_error(g, "conn %u:%u: %s while connecting",
			            c->lport, c->rport, guest_op_name(op));
			guest_conn_ctl(c, VIRTIO_VSOCK_OP_RST, 0);
			guest_conn_finish(c, GUEST_CONN_RESET, EPROTO);
		}
		break;
	case GUEST_CONN_ESTABLISHED:
		guest_recv_established(c, h, payload, plen);
		break;
	case GUEST_CONN_CLOSING:
		/* Linux's disconnecting state: only RST matters. */
		if (op == VIRTIO_VSOCK_OP_RST) {
			g->st.rst_recv++;
			guest_conn_finish(c, GUEST_CONN_CLOSED, 0);
		} else if (op == VIRTIO_VSOCK_OP_SHUTDOWN) {
			c->peer_shutdown |= le32toh(h->flags) &
			                    GUEST_SHUTDOWN_BOTH;
		}
		break;
	default:
		break;
	}
}
