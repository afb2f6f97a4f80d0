/*
 * guest_vsock.c — the simulated guest's vsock driver: queues, buffers,
 * packet I/O and the loop step.  The connection state machine is in
 * guest_vsock_conn.c.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chanfs/virtio.h"
#include "guest_vsock_priv.h"

uint64_t guest_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void guest_error(struct guest *g, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	g->st.errors++;
	if (g->o.on_error)
		g->o.on_error(g->o.on_error_arg, msg);
	else
		fprintf(stderr, "guest: error: %s\n", msg);
}

static const char *const guest_op_names[] = {
	"INVALID", "REQUEST", "RESPONSE", "RST", "SHUTDOWN", "RW",
	"CREDIT_UPDATE", "CREDIT_REQUEST",
};

const char *guest_op_name(uint16_t op)
{
	return op < sizeof(guest_op_names) / sizeof(guest_op_names[0]) ?
	       guest_op_names[op] : "unknown";
}

void guest_trace(struct guest *g, const char *dir,
                 const struct virtio_vsock_hdr *h)
{
	if (!g->o.verbose)
		return;
	fprintf(stderr, "guest: %s %s %" PRIu64 ":%u -> %" PRIu64
	        ":%u len=%u flags=%u buf_alloc=%u fwd_cnt=%u\n", dir,
	        guest_op_name(le16toh(h->op)), (uint64_t)le64toh(h->src_cid),
	        le32toh(h->src_port), (uint64_t)le64toh(h->dst_cid),
	        le32toh(h->dst_port), le32toh(h->len), le32toh(h->flags),
	        le32toh(h->buf_alloc), le32toh(h->fwd_cnt));
}

/* --- buffers -------------------------------------------------------------- */

static size_t guest_align(size_t n, size_t a)
{
	return (n + a - 1) & ~(a - 1);
}

/* Bytes of guest memory the buffer pools need. */
static size_t guest_pool_bytes(const struct guest_opts *o, unsigned n)
{
	size_t rx, tx;

	if (o->layout == GUEST_LAYOUT_A)
		rx = (size_t)n * (64 + guest_align(o->rx_buf_size, 64));
	else
		rx = (size_t)n * guest_align(GUEST_HDR_LEN + o->rx_buf_size, 64);
	tx = (size_t)n * guest_align(GUEST_TX_PAYLOAD_OFF + GUEST_MAX_PKT, 64);
	return rx + tx;
}

static int guest_pools_init(struct guest *g)
{
	unsigned n = g->o.queue_size, i;
	size_t rxsz, txsz = guest_align(GUEST_TX_PAYLOAD_OFF + GUEST_MAX_PKT,
	                                 64);

	g->rx = calloc(n, sizeof(*g->rx));
	g->rx_free = calloc(n, sizeof(*g->rx_free));
	g->tx = calloc(n, sizeof(*g->tx));
	if (!g->rx || !g->rx_free || !g->tx)
		return -ENOMEM;
	g->nrx = g->ntx = n;
	for (i = 0; i < n; i++) {
		struct guest_rxbuf *b = &g->rx[i];

		if (g->o.layout == GUEST_LAYOUT_A) {
			/* Separate allocations, as Linux 6.1 does. */
			b->hdr_gpa = vmm_alloc(g->vmm, 64, 64);
			b->data_gpa = vmm_alloc(g->vmm, g->o.rx_buf_size, 64);
			if (!b->hdr_gpa || !b->data_gpa)
				return -ENOMEM;
			b->hdr = vmm_ptr(g->vmm, b->hdr_gpa, GUEST_HDR_LEN);
			b->data = vmm_ptr(g->vmm, b->data_gpa,
			                  g->o.rx_buf_size);
		} else {
			rxsz = GUEST_HDR_LEN + g->o.rx_buf_size;
			b->hdr_gpa = vmm_alloc(g->vmm, rxsz, 64);
			if (!b->hdr_gpa)
				return -ENOMEM;
			b->hdr = vmm_ptr(g->vmm, b->hdr_gpa, rxsz);
			b->data_gpa = b->hdr_gpa + GUEST_HDR_LEN;
			b->data = b->hdr + GUEST_HDR_LEN;
		}
		g->rx_free[g->nrx_free++] = i;
	}
	for (i = 0; i < n; i++) {
		struct guest_txbuf *t = &g->tx[i];

		t->gpa = vmm_alloc(g->vmm, txsz, 64);
		if (!t->gpa)
			return -ENOMEM;
		t->p = vmm_ptr(g->vmm, t->gpa, txsz);
		SLIST_INSERT_HEAD(&g->tx_free, t, link);
	}
	return 0;
}

/* Post every free RX buffer the ring takes. */
static void guest_rx_refill(struct guest *g)
{
	while (g->nrx_free) {
		unsigned i = g->rx_free[g->nrx_free - 1];
		struct guest_rxbuf *b = &g->rx[i];
		struct vmm_sg sg[2];
		unsigned n;
		int r;

		if (g->o.layout == GUEST_LAYOUT_A) {
			sg[0] = (struct vmm_sg){ b->hdr_gpa, GUEST_HDR_LEN };
			sg[1] = (struct vmm_sg){ b->data_gpa, g->o.rx_buf_size };
			n = 2;
		} else {
			sg[0] = (struct vmm_sg){ b->hdr_gpa,
			                         GUEST_HDR_LEN + g->o.rx_buf_size };
			n = 1;
		}
		r = vmm_vq_add(g->vmm, GUEST_RXQ, NULL, 0, sg, n, b);
		if (r < 0)
			break;
		g->nrx_free--;
		g->rx_kick = true;
	}
}

/* Put one packet on the tx queue now: -EAGAIN when no buffer or
 * descriptor is free. */
static int guest_tx_now(struct guest *g, const struct virtio_vsock_hdr *h,
                        const void *payload, size_t plen)
{
	struct guest_txbuf *t = SLIST_FIRST(&g->tx_free);
	struct vmm_sg sg[2];
	unsigned n;
	int r;

	if (!t)
		return -EAGAIN;
	if (plen > GUEST_MAX_PKT)
		return -EMSGSIZE;
	memcpy(t->p, h, GUEST_HDR_LEN);
	if (g->o.layout == GUEST_LAYOUT_A) {
		sg[0] = (struct vmm_sg){ t->gpa, GUEST_HDR_LEN };
		n = 1;
		if (plen) {
			memcpy(t->p + GUEST_TX_PAYLOAD_OFF, payload, plen);
			sg[1] = (struct vmm_sg){ t->gpa + GUEST_TX_PAYLOAD_OFF,
			                         (uint32_t)plen };
			n = 2;
		}
	} else {
		if (plen)
			memcpy(t->p + GUEST_HDR_LEN, payload, plen);
		sg[0] = (struct vmm_sg){ t->gpa, (uint32_t)(GUEST_HDR_LEN + plen) };
		n = 1;
	}
	r = vmm_vq_add(g->vmm, GUEST_TXQ, sg, n, NULL, 0, t);
	if (r == -ENOSPC)
		return -EAGAIN;
	if (r < 0)
		return r;
	SLIST_REMOVE_HEAD(&g->tx_free, link);
	g->tx_kick = true;
	g->st.tx_pkts++;
	g->st.tx_bytes += plen;
	guest_trace(g, "tx", h);
	return 0;
}

/* Packets queued behind the TX ring keep their order, control and data
 * alike (guest_tx_data queues behind them too). */
int guest_tx_ctl(struct guest *g, const struct virtio_vsock_hdr *h,
                 const void *payload, size_t plen)
{
	struct guest_ctl *q;
	int r;

	if (STAILQ_EMPTY(&g->ctlq)) {
		r = guest_tx_now(g, h, payload, plen);
		if (r != -EAGAIN)
			return r;
	}
	if (plen > GUEST_MAX_PKT)
		return -EMSGSIZE;
	q = malloc(sizeof(*q) + plen);
	if (!q)
		return -ENOMEM;
	q->hdr = *h;
	q->plen = plen;
	if (plen)
		memcpy(q->payload, payload, plen);
	STAILQ_INSERT_TAIL(&g->ctlq, q, link);
	return 0;
}

int guest_tx_data(struct guest *g, const struct virtio_vsock_hdr *h,
                  const void *payload, size_t plen)
{
	/* Linux has one FIFO for control and data packets: data queues
	 * behind earlier control packets.  Refusing data until the queue is
	 * empty, as this guest once did, starves every source while other
	 * connections' sinks keep it filled with CREDIT_UPDATEs (seen: 32
	 * sources at 0.3-11 MB/s beside 32 sinks at 49 MB/s, each with
	 * credit to spare). */
	if (!STAILQ_EMPTY(&g->ctlq))
		return guest_tx_ctl(g, h, payload, plen);
	return guest_tx_now(g, h, payload, plen);
}

static void guest_ctlq_flush(struct guest *g)
{
	struct guest_ctl *q;

	while ((q = STAILQ_FIRST(&g->ctlq))) {
		if (guest_tx_now(g, &q->hdr, q->payload, q->plen) == -EAGAIN)
			return;
		STAILQ_REMOVE_HEAD(&g->ctlq, link);
		free(q);
	}
}

int guest_send_raw(struct guest *g, const struct virtio_vsock_hdr *hdr,
                   const void *payload, size_t payload_len)
{
	return guest_tx_ctl(g, hdr, payload, payload_len);
}

/* --- used buffers --------------------------------------------------------- */

static int guest_tx_reap(struct guest *g)
{
	void *tok;
	uint32_t len;
	int r, n = 0;

	while ((r = vmm_vq_get_used(g->vmm, GUEST_TXQ, &tok, &len)) == 1) {
		struct guest_txbuf *t = tok;

		if (len)
			guest_error(g, "tx: used len %u for a device-readable "
			            "buffer", len);
		SLIST_INSERT_HEAD(&g->tx_free, t, link);
		n++;
	}
	if (r < 0) {
		guest_error(g, "tx queue: device broke the used ring");
		return r;
	}
	if (n)
		g->tx_freed = true;
	return 0;
}

static int guest_rx_reap(struct guest *g)
{
	void *tok;
	uint32_t len;
	int r;

	while ((r = vmm_vq_get_used(g->vmm, GUEST_RXQ, &tok, &len)) == 1) {
		struct guest_rxbuf *b = tok;
		struct virtio_vsock_hdr h;
		uint32_t plen;

		g->rx_free[g->nrx_free++] = (unsigned)(b - g->rx);
		if (len < GUEST_HDR_LEN) {
			guest_error(g, "rx: used len %u shorter than the "
			            "header", len);
			continue;
		}
		memcpy(&h, b->hdr, GUEST_HDR_LEN);
		plen = le32toh(h.len);
		if (plen > len - GUEST_HDR_LEN) {
			guest_error(g, "rx: header len %u but %u payload bytes "
			            "written (op %s)", plen, len - GUEST_HDR_LEN,
			            guest_op_name(le16toh(h.op)));
			continue;
		}
		if (plen < len - GUEST_HDR_LEN)
			guest_error(g, "rx: used len %u but header len %u",
			            len, plen);
		g->st.rx_pkts++;
		g->st.rx_bytes += plen;
		guest_trace(g, "rx", &h);
		guest_conn_recv(g, &h, b->data, plen);
	}
	if (r < 0) {
		guest_error(g, "rx queue: device broke the used ring");
		return r;
	}
	return 0;
}

/* --- setup ---------------------------------------------------------------- */

struct guest *guest_new(const char *sock, const struct guest_opts *opts)
{
	struct guest *g = calloc(1, sizeof(*g));
	struct vmm_opts vo = { 0 };
	const uint8_t *cfg;
	uint32_t cfglen;
	uint64_t cid;
	size_t mem;
	int r, e;

	if (!g)
		return NULL;
	if (opts)
		g->o = *opts;
	if (!g->o.queue_size)
		g->o.queue_size = 128;
	if (!g->o.buf_alloc)
		g->o.buf_alloc = GUEST_DEFAULT_BUF_ALLOC;
	if (!g->o.rx_buf_size)
		g->o.rx_buf_size = g->o.layout == GUEST_LAYOUT_A ? 4096 :
		                   65536;
	if (!g->o.connect_timeout_ms)
		g->o.connect_timeout_ms = 2000;
	if (!g->o.close_timeout_ms)
		g->o.close_timeout_ms = 8000;
	STAILQ_INIT(&g->ctlq);
	SLIST_INIT(&g->tx_free);
	LIST_INIT(&g->listeners);
	TAILQ_INIT(&g->conns);
	TAILQ_INIT(&g->dirty);
	TAILQ_INIT(&g->dead);
	TAILQ_INIT(&g->txwait);
	g->next_port = 49152;
	g->next_timer = UINT64_MAX;

	mem = guest_pool_bytes(&g->o, g->o.queue_size) + (8u << 20);
	mem = guest_align(mem, 2u << 20);
	vo.num_queues = 2;
	vo.queue_size = g->o.queue_size;
	vo.features = g->o.features;
	vo.mem_size = mem;
	vo.indirect = g->o.indirect;
	vo.timeout_ms = g->o.vmm_timeout_ms;
	g->vmm = vmm_connect(sock, &vo);
	if (!g->vmm)
		goto fail;
	cfg = vmm_config(g->vmm, &cfglen);
	if (cfglen < 8) {
		fprintf(stderr, "guest: GET_CONFIG gave %u bytes, want 8\n",
		        cfglen);
		errno = EPROTO;
		goto fail;
	}
	memcpy(&cid, cfg, 8);
	g->cid = le64toh(cid);
	r = guest_pools_init(g);
	if (r < 0) {
		fprintf(stderr, "guest: guest memory too small for the "
		        "buffers\n");
		errno = -r;
		goto fail;
	}
	guest_rx_refill(g);
	vmm_vq_kick(g->vmm, GUEST_RXQ);
	g->rx_kick = false;
	return g;
fail:
	e = errno;
	guest_free(g);
	errno = e;
	return NULL;
}

void guest_free(struct guest *g)
{
	struct guest_ctl *q;

	if (!g)
		return;
	guest_conns_free(g);
	while ((q = STAILQ_FIRST(&g->ctlq))) {
		STAILQ_REMOVE_HEAD(&g->ctlq, link);
		free(q);
	}
	vmm_disconnect(g->vmm);
	free(g->rx);
	free(g->rx_free);
	free(g->tx);
	free(g);
}

/* --- the VMM pauses, resumes, resets the driver ---------------------------- */

static int guest_work(struct guest *g);

int guest_pause(struct guest *g)
{
	/* What the device completed before the stop is the driver's. */
	int r = guest_work(g);

	return r < 0 ? r : vmm_stop(g->vmm);
}

int guest_resume(struct guest *g)
{
	return vmm_resume(g->vmm);
}

int guest_restart(struct guest *g)
{
	struct guest_conn *c;
	struct guest_ctl *q;
	unsigned i;
	int r;

	/* Linux resets its sockets without a word to the host. */
	TAILQ_FOREACH(c, &g->conns, all)
		if (!c->dead)
			guest_conn_finish(c, GUEST_CONN_RESET, ECONNRESET);
	while ((q = STAILQ_FIRST(&g->ctlq))) {
		STAILQ_REMOVE_HEAD(&g->ctlq, link);
		free(q);
	}
	r = vmm_restart_driver(g->vmm);
	if (r < 0)
		return r;
	g->nrx_free = 0;
	for (i = 0; i < g->nrx; i++)
		g->rx_free[g->nrx_free++] = i;
	SLIST_INIT(&g->tx_free);
	for (i = 0; i < g->ntx; i++)
		SLIST_INSERT_HEAD(&g->tx_free, &g->tx[i], link);
	guest_rx_refill(g);
	vmm_vq_kick(g->vmm, GUEST_RXQ);
	g->rx_kick = g->tx_kick = false;
	guest_conns_reap(g);
	return 0;
}

int guest_remap(struct guest *g)
{
	return vmm_set_mem_table(g->vmm);
}

uint64_t guest_cid(const struct guest *g)
{
	return g->cid;
}

uint64_t guest_features(const struct guest *g)
{
	return vmm_features(g->vmm);
}

void guest_get_stats(const struct guest *g, struct guest_stats *st)
{
	*st = g->st;
}

/* --- the loop step -------------------------------------------------------- */

static int guest_work(struct guest *g)
{
	int r;

	r = guest_tx_reap(g);
	if (r < 0)
		return r;
	guest_ctlq_flush(g);
	r = guest_rx_reap(g);
	if (r < 0)
		return r;
	guest_rx_refill(g);
	guest_conns_run(g);
	guest_ctlq_flush(g);
	if (g->rx_kick)
		vmm_vq_kick(g->vmm, GUEST_RXQ);
	if (g->tx_kick)
		vmm_vq_kick(g->vmm, GUEST_TXQ);
	g->rx_kick = g->tx_kick = false;
	guest_conns_reap(g);
	return 0;
}

static void guest_drain_fd(int fd)
{
	uint64_t cnt;

	if (read(fd, &cnt, sizeof(cnt)) < 0)
		return;
}

int guest_step(struct guest *g, int extra_fd, int max_wait_ms)
{
	struct pollfd p[4];
	uint64_t now;
	int r, r0, r1, timeout;
	unsigned n, i;

	r = guest_work(g);
	if (r < 0)
		return r;
	/* Re-arm both queues' interrupts and look once more (the
	 * enable-then-check that closes the race with the device). */
	r0 = vmm_vq_wait(g->vmm, GUEST_RXQ, 0);
	r1 = vmm_vq_wait(g->vmm, GUEST_TXQ, 0);
	/* Connections ended: let the caller look before we sleep. */
	if (r0 == 1 || r1 == 1 || g->more_work || g->reaped) {
		g->reaped = false;
		return 0;
	}
	if (r0 < 0)
		return r0;
	if (r1 < 0)
		return r1;

	timeout = max_wait_ms;
	now = guest_now_ms();
	if (g->next_timer != UINT64_MAX) {
		uint64_t d = g->next_timer > now ? g->next_timer - now : 0;

		if (timeout < 0 || d < (uint64_t)timeout)
			timeout = (int)d;
	}
	p[0] = (struct pollfd){ .fd = vmm_vq_call_fd(g->vmm, GUEST_RXQ),
	                        .events = POLLIN };
	p[1] = (struct pollfd){ .fd = vmm_vq_call_fd(g->vmm, GUEST_TXQ),
	                        .events = POLLIN };
	p[2] = (struct pollfd){ .fd = vmm_sock(g->vmm), .events = POLLRDHUP };
	n = 3;
	if (extra_fd >= 0)
		p[n++] = (struct pollfd){ .fd = extra_fd, .events = POLLIN };
	r = poll(p, n, timeout);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < 2; i++)
		if (p[i].revents & POLLIN)
			guest_drain_fd(p[i].fd);
	if (p[2].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
		/* Take what the device completed before it went. */
		guest_work(g);
		return -ECONNRESET;
	}
	if (n > 3 && (p[3].revents & (POLLIN | POLLHUP | POLLERR)))
		return 1;
	return 0;
}

int guest_flush(struct guest *g, int timeout_ms)
{
	uint64_t end = guest_now_ms() + (uint64_t)timeout_ms;
	int r;

	for (;;) {
		r = guest_work(g);
		if (r < 0)
			return r;
		if (STAILQ_EMPTY(&g->ctlq) &&
		    !vmm_vq_outstanding(g->vmm, GUEST_TXQ))
			return 0;
		if (guest_now_ms() >= end)
			return -ETIMEDOUT;
		r = guest_step(g, -1, 10);
		if (r < 0)
			return r;
	}
}
