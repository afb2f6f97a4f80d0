/*
 * vsock: the device through its real interfaces.  Guest memory is a memfd,
 * both rings are real split rings started with vq_start, and the test acts
 * as a Linux-like driver: it writes descriptors and packets into guest
 * memory, kicks through the vu_device callbacks, runs the loop, and reads
 * what the device put in the used rings.  The host side is the chan API.
 *
 * Guest memory (one region, gpa 0):
 *   RXR      rx ring: desc +0, avail +0x1000, used +0x2000 (size 64)
 *   TXR      tx ring, same layout
 *   RXB + k * STRIDE  rx buffer k (k < 32, descriptors 2k and 2k+1):
 *            two-descriptor layout (Linux 6.1): header at +0 (44 bytes),
 *            data at +0x100; one-buffer layout: header then data at +0
 *   TXB + k * STRIDE  tx buffer k, the same
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>

#include "chanfs/chan.h"
#include "chanfs/gmem.h"
#include "chanfs/loop.h"
#include "chanfs/virtio.h"
#include "chanfs/vq.h"
#include "chanfs/vsock.h"
#include "chanfs/vu.h"
#include "logcap.h"

#define QSZ      64
#define NBUF     (QSZ / 2)
#define STRIDE   0x20000ULL
#define RXR      0x0000ULL
#define TXR      0x4000ULL
#define RXB      0x100000ULL
#define TXB      (RXB + NBUF * STRIDE)
#define MEM      (TXB + NBUF * STRIDE)
#define DATA_OFF 0x100
#define HDR      44

#define CID      3
#define WINDOW   4096          /* our per-connection window */
#define GUEST_BUF 65536        /* the guest's buf_alloc unless a test says */
#define BACKLOG  2
#define LISTEN   5000

#define OP_REQUEST        VIRTIO_VSOCK_OP_REQUEST
#define OP_RESPONSE       VIRTIO_VSOCK_OP_RESPONSE
#define OP_RST            VIRTIO_VSOCK_OP_RST
#define OP_SHUTDOWN       VIRTIO_VSOCK_OP_SHUTDOWN
#define OP_RW             VIRTIO_VSOCK_OP_RW
#define OP_CREDIT_UPDATE  VIRTIO_VSOCK_OP_CREDIT_UPDATE
#define OP_CREDIT_REQUEST VIRTIO_VSOCK_OP_CREDIT_REQUEST
#define SHUT_R            VIRTIO_VSOCK_SHUTDOWN_RCV
#define SHUT_S            VIRTIO_VSOCK_SHUTDOWN_SEND

/* One split ring as the test driver sees it. */
struct drv {
	struct vq vq;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, last_used;
	uint16_t base;          /* where a (re)started queue resumes */
	bool busy[NBUF];
	bool running;
};

/* A packet the device wrote into an rx buffer. */
struct pkt {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
	uint32_t used_len;
	uint8_t data[GUEST_BUF + 1024];
};

struct fx {
	struct loop *loop;
	struct chan_set chans;
	struct vsock *v;
	const struct vu_device *dev;
	struct gmem mem;
	struct drv rx, tx;
	bool rx_two;            /* rx buffers: 44 + data descriptors */
	uint32_t rx_data;       /* data bytes per rx buffer */
	bool tx_two;            /* tx packets: header and payload descriptors */
	struct pkt *pk;         /* NBUF packets from rx_take */
	unsigned incoming;      /* on_incoming calls */
	unsigned own_incoming;  /* on_incoming_own calls (vsock_listen_to) */
	uint64_t features;      /* ring features queue_start negotiates */
	uint32_t incoming_port;
};

static void *gpa(struct fx *f, uint64_t a, uint64_t len)
{
	void *p = gmem_gpa(&f->mem, a, len);

	assert_non_null(p);
	return p;
}

static void on_incoming(void *arg, uint32_t port)
{
	struct fx *f = arg;

	f->incoming++;
	f->incoming_port = port;
}

/* Run the loop until the deferred work (fills, continuations) is done. */
static void settle(struct fx *f)
{
	int i;

	for (i = 0; i < 8; i++)
		loop_turn(f->loop, false);
}

/* ---- the driver ---------------------------------------------------------- */

static void drv_layout(struct fx *f, struct drv *d, uint64_t base)
{
	d->desc = gpa(f, base, 16ULL * QSZ);
	d->avail = gpa(f, base + 0x1000, 6 + 2ULL * QSZ);
	d->used = gpa(f, base + 0x2000, 6 + 8ULL * QSZ);
}

/* Start (or restart) queue q at the index the driver is at, as vu does. */
static void queue_start(struct fx *f, unsigned q)
{
	struct drv *d = q == 0 ? &f->rx : &f->tx;

	vq_init(&d->vq, q == 0 ? "vsock q0" : "vsock q1");
	assert_int_equal(vq_start(&d->vq, &f->mem, QSZ, d->desc, d->avail,
	                          d->used, d->base, f->features), 0);
	d->running = true;
	f->dev->queue_started(f->v, q, &d->vq);
	f->dev->queue_kicked(f->v, q, &d->vq);
}

/* Stop queue q as vu does on GET_VRING_BASE. */
static void queue_stop(struct fx *f, unsigned q)
{
	struct drv *d = q == 0 ? &f->rx : &f->tx;

	if (!d->running)
		return;
	f->dev->queue_stopped(f->v, q, &d->vq);
	vq_flush(&d->vq);
	d->base = vq_stop(&d->vq);
	d->running = false;
}

static void set_desc(struct drv *d, unsigned i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
	d->desc[i].addr = htole64(addr);
	d->desc[i].len = htole32(len);
	d->desc[i].flags = htole16(flags);
	d->desc[i].next = htole16(next);
}

static void publish(struct drv *d, uint16_t head)
{
	d->avail->ring[d->avail_idx % QSZ] = htole16(head);
	d->avail_idx++;
	__atomic_store_n(&d->avail->idx, htole16(d->avail_idx),
	                 __ATOMIC_RELEASE);
}

static int free_slot(struct drv *d)
{
	int k;

	for (k = 0; k < NBUF; k++)
		if (!d->busy[k])
			return k;
	fail_msg("no free buffer slot");
	return -1;
}

/* Post n rx buffers in the current layout and kick. */
static void rx_post(struct fx *f, unsigned n)
{
	struct drv *d = &f->rx;
	unsigned i;

	for (i = 0; i < n; i++) {
		int k = free_slot(d);
		uint64_t base = RXB + (uint64_t)k * STRIDE;

		if (f->rx_two) {
			set_desc(d, 2 * k, base, HDR,
			         VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
			         2 * k + 1);
			set_desc(d, 2 * k + 1, base + DATA_OFF, f->rx_data,
			         VRING_DESC_F_WRITE, 0);
		} else {
			set_desc(d, 2 * k, base, HDR + f->rx_data,
			         VRING_DESC_F_WRITE, 0);
		}
		d->busy[k] = true;
		publish(d, 2 * k);
	}
	if (d->running)
		f->dev->queue_kicked(f->v, 0, &d->vq);
}

/* Run the loop, then take every used rx buffer as a packet into f->pk.
 * Returns the count. */
static unsigned rx_take(struct fx *f)
{
	struct drv *d = &f->rx;
	unsigned n = 0;

	settle(f);
	while (d->last_used != le16toh(__atomic_load_n(&d->used->idx,
	                                               __ATOMIC_ACQUIRE))) {
		struct vring_used_elem *u = &d->used->ring[d->last_used % QSZ];
		uint32_t id = le32toh(u->id), len = le32toh(u->len);
		uint64_t base = RXB + (uint64_t)(id / 2) * STRIDE;
		struct pkt *p = &f->pk[n];
		struct virtio_vsock_hdr h;
		const uint8_t *data;

		assert_true(id % 2 == 0 && id / 2 < NBUF);
		assert_true(d->busy[id / 2]);
		assert_true(len >= HDR);
		d->busy[id / 2] = false;
		d->last_used++;
		memcpy(&h, gpa(f, base, HDR), HDR);
		/* The device must not care which layout it was given. */
		data = gpa(f, f->rx_two ? base + DATA_OFF : base + HDR,
		           f->rx_data);
		p->src_cid = le64toh(h.src_cid);
		p->dst_cid = le64toh(h.dst_cid);
		p->src_port = le32toh(h.src_port);
		p->dst_port = le32toh(h.dst_port);
		p->len = le32toh(h.len);
		p->type = le16toh(h.type);
		p->op = le16toh(h.op);
		p->flags = le32toh(h.flags);
		p->buf_alloc = le32toh(h.buf_alloc);
		p->fwd_cnt = le32toh(h.fwd_cnt);
		p->used_len = len;
		assert_int_equal(p->src_cid, 2);
		assert_int_equal(p->dst_cid, CID);
		assert_int_equal(p->type, VIRTIO_VSOCK_TYPE_STREAM);
		assert_int_equal(len, HDR + p->len);
		assert_true(p->len <= f->rx_data);
		memcpy(p->data, data, p->len);
		n++;
		assert_true(n <= NBUF);
	}
	return n;
}

/* Post one packet from the guest with a full header, without a kick.
 * Returns its tx slot; *data (if not NULL) is where its payload lies in
 * guest memory. */
static int tx_post_raw(struct fx *f, const struct virtio_vsock_hdr *h,
                       const void *payload, uint32_t plen, uint8_t **data)
{
	struct drv *d = &f->tx;
	int k = free_slot(d);
	uint64_t base = RXB + (NBUF + (uint64_t)k) * STRIDE;
	uint64_t at = f->tx_two ? base + DATA_OFF : base + HDR;

	memcpy(gpa(f, base, HDR), h, HDR);
	if (plen)
		memcpy(gpa(f, at, plen), payload, plen);
	if (f->tx_two && plen) {
		set_desc(d, 2 * k, base, HDR, VRING_DESC_F_NEXT, 2 * k + 1);
		set_desc(d, 2 * k + 1, at, plen, 0, 0);
	} else {
		set_desc(d, 2 * k, base, HDR + plen, 0, 0);
	}
	if (data)
		*data = gpa(f, at, plen ? plen : 1);
	d->busy[k] = true;
	publish(d, 2 * k);
	return k;
}

/* Take the tx chains the device completed: returns how many. */
static unsigned tx_reap(struct fx *f)
{
	struct drv *d = &f->tx;
	unsigned n = 0;

	while (d->last_used != le16toh(d->used->idx)) {
		uint32_t id = le32toh(d->used->ring[d->last_used % QSZ].id);

		assert_int_equal(le32toh(d->used->ring[d->last_used % QSZ].len),
		                 0);
		d->busy[id / 2] = false;
		d->last_used++;
		n++;
	}
	return n;
}

/* Send one packet from the guest with a full header and kick. */
static void tx_raw(struct fx *f, const struct virtio_vsock_hdr *h,
                   const void *payload, uint32_t plen)
{
	int k = tx_post_raw(f, h, payload, plen, NULL);

	f->dev->queue_kicked(f->v, 1, &f->tx.vq);
	/* The device handles tx synchronously and returns every buffer. */
	tx_reap(f);
	assert_false(f->tx.busy[k]);
}

static void hdr_init(struct virtio_vsock_hdr *h, uint16_t op,
                     uint32_t gport, uint32_t hport, uint32_t len,
                     uint32_t flags, uint32_t buf_alloc, uint32_t fwd_cnt)
{
	h->src_cid = htole64(CID);
	h->dst_cid = htole64(2);
	h->src_port = htole32(gport);
	h->dst_port = htole32(hport);
	h->len = htole32(len);
	h->type = htole16(VIRTIO_VSOCK_TYPE_STREAM);
	h->op = htole16(op);
	h->flags = htole32(flags);
	h->buf_alloc = htole32(buf_alloc);
	h->fwd_cnt = htole32(fwd_cnt);
}

/* A well-formed guest packet (buf_alloc GUEST_BUF, fwd_cnt as given). */
static void tx(struct fx *f, uint16_t op, uint32_t gport, uint32_t hport,
               uint32_t flags, uint32_t fwd_cnt, const void *payload,
               uint32_t plen)
{
	struct virtio_vsock_hdr h;

	hdr_init(&h, op, gport, hport, plen, flags, GUEST_BUF, fwd_cnt);
	tx_raw(f, &h, payload, plen);
}

/* ---- fixture --------------------------------------------------------------- */

static int fx_setup_cfg(void **state, const struct vsock_config *cfg)
{
	struct fx *f = calloc(1, sizeof *f);
	int fd;

	assert_non_null(f);
	f->pk = calloc(NBUF, sizeof *f->pk);
	assert_non_null(f->pk);
	f->loop = loop_new();
	assert_non_null(f->loop);
	chan_set_init(&f->chans);
	f->v = vsock_new(f->loop, cfg, &f->chans);
	assert_non_null(f->v);
	f->dev = vsock_vu_device();
	vsock_on_incoming(f->v, on_incoming, f);

	gmem_init(&f->mem);
	fd = memfd_create("vsock-test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, MEM), 0);
	assert_int_equal(gmem_add(&f->mem, 0, MEM, 0x7f0000000000ULL, 0, fd),
	                 0);
	close(fd);
	drv_layout(f, &f->rx, RXR);
	drv_layout(f, &f->tx, TXR);
	f->rx_two = true;
	f->rx_data = 4096;
	queue_start(f, 0);
	queue_start(f, 1);
	settle(f);
	*state = f;
	return 0;
}

static const struct vsock_config fx_cfg = {
	.guest_cid = CID,
	.buf_size = WINDOW,
	.connect_timeout_ms = 20,
	.close_timeout_ms = 20,
	.backlog = BACKLOG,
};

static int fx_setup(void **state)
{
	return fx_setup_cfg(state, &fx_cfg);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	vsock_free(f->v);
	/* Every channel is gone: the tests closed their host references and
	 * the device dropped its own. */
	assert_int_equal(f->chans.count, 0);
	if (f->rx.running)
		vq_stop(&f->rx.vq);
	if (f->tx.running)
		vq_stop(&f->tx.vq);
	gmem_clear(&f->mem);
	loop_free(f->loop);
	free(f->pk);
	free(f);
	return 0;
}

/* A guest connection from gport to host port LISTEN, accepted.  The rx
 * ring is left with no buffers. */
static struct chan *guest_connect(struct fx *f, uint32_t gport)
{
	struct chan *c = NULL;

	vsock_listen(f->v, LISTEN);
	tx(f, OP_REQUEST, gport, LISTEN, 0, 0, NULL, 0);
	rx_post(f, 1);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RESPONSE);
	assert_int_equal(f->pk[0].src_port, LISTEN);
	assert_int_equal(f->pk[0].dst_port, gport);
	assert_int_equal(vsock_accept(f->v, LISTEN, &c), 0);
	assert_non_null(c);
	return c;
}

static void host_write_all(struct chan *c, const void *buf, size_t len)
{
	assert_int_equal(chan_write(c, buf, len), (ssize_t)len);
}

static void fill_pattern(uint8_t *b, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7 + seed);
}

/* ---- connection setup ------------------------------------------------------ */

static void vsock_request_to_unlistened_port_is_answered_with_rst(void **state)
{
	struct fx *f = *state;
	struct chan *c;

	rx_post(f, 4);
	tx(f, OP_REQUEST, 1000, 4444, 0, 0, NULL, 0);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[0].src_port, 4444);
	assert_int_equal(f->pk[0].dst_port, 1000);
	assert_int_equal(f->pk[0].len, 0);
	assert_int_equal(vsock_accept(f->v, 4444, &c), -EAGAIN);
	assert_int_equal(f->chans.count, 0);
}

static void vsock_request_to_listening_port_gets_response_and_accept(void **state)
{
	struct fx *f = *state;
	struct chan *c = NULL, *c2 = NULL;

	vsock_listen(f->v, LISTEN);
	rx_post(f, 4);
	tx(f, OP_REQUEST, 1000, LISTEN, 0, 0, NULL, 0);
	assert_int_equal(f->incoming, 1);
	assert_int_equal(f->incoming_port, LISTEN);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RESPONSE);
	assert_int_equal(f->pk[0].src_port, LISTEN);
	assert_int_equal(f->pk[0].dst_port, 1000);
	assert_int_equal(f->pk[0].buf_alloc, WINDOW);
	assert_int_equal(f->pk[0].fwd_cnt, 0);
	assert_int_equal(vsock_accept(f->v, LISTEN, &c), 0);
	assert_int_equal(c->state, CHAN_OPEN);
	assert_int_equal(vsock_accept(f->v, LISTEN, &c2), -EAGAIN);
	chan_close(c);
}

static void vsock_request_beyond_backlog_is_answered_with_rst(void **state)
{
	struct fx *f = *state;
	struct chan *c;
	unsigned i;

	vsock_listen(f->v, LISTEN);
	rx_post(f, 4);
	for (i = 0; i < BACKLOG + 1; i++)
		tx(f, OP_REQUEST, 1000 + i, LISTEN, 0, 0, NULL, 0);
	assert_int_equal(rx_take(f), BACKLOG + 1);
	for (i = 0; i < BACKLOG; i++)
		assert_int_equal(f->pk[i].op, OP_RESPONSE);
	assert_int_equal(f->pk[BACKLOG].op, OP_RST);
	assert_int_equal(f->pk[BACKLOG].dst_port, 1000 + BACKLOG);
	for (i = 0; i < BACKLOG; i++) {
		assert_int_equal(vsock_accept(f->v, LISTEN, &c), 0);
		chan_close(c);
	}
}

static void on_incoming_own(void *arg, uint32_t port)
{
	struct fx *f = arg;

	f->own_incoming++;
	f->incoming_port = port;
}

/* A port with its own user: its connections are told to that user alone,
 * and vsock/listen does not list it. */
static void vsock_listen_to_tells_its_user_and_is_not_listed(void **state)
{
	struct fx *f = *state;
	struct chan *c;
	uint32_t ports[4];

	vsock_listen(f->v, 6000);
	vsock_listen_to(f->v, LISTEN, on_incoming_own, f);
	assert_int_equal(vsock_listening(f->v, ports, 4), 1);
	assert_int_equal(ports[0], 6000);
	rx_post(f, 1);
	tx(f, OP_REQUEST, 1000, LISTEN, 0, 0, NULL, 0);
	assert_int_equal(f->own_incoming, 1);
	assert_int_equal(f->incoming, 0);
	assert_int_equal(f->incoming_port, LISTEN);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RESPONSE);
	assert_int_equal(vsock_accept(f->v, LISTEN, &c), 0);
	chan_close(c);
}

/* chan_abort (a host side that rejects what the guest said): RST at
 * once, and what the host had queued for the guest is not sent. */
static void vsock_host_abort_sends_rst_and_discards_queued_data(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);

	host_write_all(c, "lost", 4);
	chan_abort(c);
	settle(f);
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[0].dst_port, 1000);
	assert_int_equal(f->pk[0].len, 0);
}

static void vsock_accept_on_a_new_port_starts_listening(void **state)
{
	struct fx *f = *state;
	struct chan *c;

	assert_int_equal(vsock_accept(f->v, 6000, &c), -EAGAIN);
	rx_post(f, 1);
	tx(f, OP_REQUEST, 1000, 6000, 0, 0, NULL, 0);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RESPONSE);
	assert_int_equal(vsock_accept(f->v, 6000, &c), 0);
	chan_close(c);
}

static void vsock_accept_returns_a_connection_the_guest_already_ended(void **state)
{
	struct fx *f = *state;
	struct chan *c = NULL, *d = NULL;
	char out[16];

	vsock_listen(f->v, LISTEN);
	rx_post(f, 4);
	tx(f, OP_REQUEST, 1000, LISTEN, 0, 0, NULL, 0);
	tx(f, OP_REQUEST, 2000, LISTEN, 0, 0, NULL, 0);
	assert_int_equal(rx_take(f), 2);
	assert_int_equal(f->pk[0].op, OP_RESPONSE);
	assert_int_equal(f->pk[1].op, OP_RESPONSE);
	/* Both end before the host accepts: 1000 in order, 2000 with RST. */
	tx(f, OP_RW, 1000, LISTEN, 0, 0, "early", 5);
	tx(f, OP_SHUTDOWN, 1000, LISTEN, SHUT_R | SHUT_S, 0, NULL, 0);
	tx(f, OP_RST, 2000, LISTEN, 0, 0, NULL, 0);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[0].dst_port, 1000);
	assert_int_equal(vsock_accept(f->v, LISTEN, &c), 0);
	assert_int_equal(chan_read(c, out, sizeof out), 5);
	assert_memory_equal(out, "early", 5);
	assert_int_equal(chan_read(c, out, sizeof out), 0);
	assert_int_equal(vsock_accept(f->v, LISTEN, &d), 0);
	assert_int_equal(chan_read(d, out, sizeof out), -ECONNRESET);
	chan_close(c);
	chan_close(d);
	assert_int_equal(rx_take(f), 0);
}

static int fx_setup_short_listen(void **state)
{
	struct vsock_config cfg = fx_cfg;

	cfg.accept_timeout_ms = 20;
	cfg.listen_linger_ms = 20;
	return fx_setup_cfg(state, &cfg);
}

/* Run the loop (its timers) until cond holds; bounded against a hang. */
#define RUN_UNTIL(f, cond) do { \
	int i_; \
	for (i_ = 0; i_ < 1000 && !(cond); i_++) \
		loop_turn((f)->loop, true); \
	assert_true(cond); \
} while (0)

static void vsock_accepted_port_listens_while_wanted_then_stops(void **state)
{
	struct fx *f = *state;
	struct chan *c = NULL;
	uint32_t ports[4];

	vsock_listen(f->v, 7000);
	assert_int_equal(vsock_accept(f->v, 6000, &c), -EAGAIN);
	vsock_accept_wait(f->v, 6000, true);
	assert_int_equal(vsock_listening(f->v, ports, 4), 2);
	/* A waiter keeps it listening past the linger time. */
	usleep(40 * 1000);
	settle(f);
	rx_post(f, 2);
	tx(f, OP_REQUEST, 1000, 6000, 0, 0, NULL, 0);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RESPONSE);
	assert_int_equal(vsock_accept(f->v, 6000, &c), 0);
	vsock_accept_wait(f->v, 6000, false);
	chan_close(c);
	rx_post(f, 4);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_SHUTDOWN);
	tx(f, OP_RST, 1000, 6000, 0, 0, NULL, 0);
	assert_int_equal(f->chans.count, 0);
	/* Nobody waits: it stops; the -l port does not. */
	RUN_UNTIL(f, vsock_listening(f->v, ports, 4) == 1);
	assert_int_equal(ports[0], 7000);
	tx(f, OP_REQUEST, 1001, 6000, 0, 0, NULL, 0);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[0].dst_port, 1001);
	assert_int_equal(f->chans.count, 0);
}

static void vsock_queued_connection_not_accepted_in_time_is_reset(void **state)
{
	struct fx *f = *state;
	struct logcap cap;
	char text[512];

	vsock_listen(f->v, LISTEN);
	rx_post(f, 4);
	tx(f, OP_REQUEST, 1000, LISTEN, 0, 0, NULL, 0);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RESPONSE);
	logcap_begin(&cap);
	RUN_UNTIL(f, f->chans.count == 0);
	assert_int_equal(logcap_end(&cap, text, sizeof text), 1);
	assert_non_null(strstr(text, "not accepted within 20 ms; RST"));
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[0].dst_port, 1000);
}

static void vsock_connect_sends_request_and_response_opens(void **state)
{
	struct fx *f = *state;
	struct chan *c = NULL;

	assert_int_equal(vsock_connect(f->v, 1234, &c), 0);
	assert_int_equal(c->state, CHAN_CONNECTING);
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_REQUEST);
	assert_int_equal(f->pk[0].dst_port, 1234);
	assert_true(f->pk[0].src_port >= 49152);
	assert_int_equal(f->pk[0].buf_alloc, WINDOW);
	tx(f, OP_RESPONSE, 1234, f->pk[0].src_port, 0, 0, NULL, 0);
	assert_int_equal(c->state, CHAN_OPEN);
	/* The connect timer is off: running the loop changes nothing. */
	settle(f);
	assert_int_equal(c->state, CHAN_OPEN);
	chan_close(c);
}

static void vsock_connect_answered_with_rst_is_refused(void **state)
{
	struct fx *f = *state;
	struct chan *c = NULL;
	char b[4];

	assert_int_equal(vsock_connect(f->v, 1234, &c), 0);
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 1);
	tx(f, OP_RST, 1234, f->pk[0].src_port, 0, 0, NULL, 0);
	assert_int_equal(c->state, CHAN_RESET);
	assert_int_equal(chan_read(c, b, sizeof b), -ECONNREFUSED);
	/* An RST is never answered. */
	assert_int_equal(rx_take(f), 0);
	chan_close(c);
}

static void vsock_connect_without_answer_times_out_with_rst(void **state)
{
	struct fx *f = *state;
	struct chan *c = NULL;
	uint32_t port;
	char b[4];
	int i;

	assert_int_equal(vsock_connect(f->v, 1234, &c), 0);
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 1);
	port = f->pk[0].src_port;
	/* Wait for the timer: each blocking turn ends when an event fired. */
	for (i = 0; i < 100 && c->state == CHAN_CONNECTING; i++)
		loop_turn(f->loop, true);
	assert_int_equal(c->state, CHAN_RESET);
	assert_int_equal(chan_read(c, b, sizeof b), -ETIMEDOUT);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[0].src_port, port);
	assert_int_equal(f->pk[0].dst_port, 1234);
	chan_close(c);
}

static void vsock_connect_uses_a_fresh_ephemeral_port_each_time(void **state)
{
	struct fx *f = *state;
	struct chan *a = NULL, *b = NULL;

	assert_int_equal(vsock_connect(f->v, 1234, &a), 0);
	assert_int_equal(vsock_connect(f->v, 1234, &b), 0);
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 2);
	assert_int_equal(f->pk[0].op, OP_REQUEST);
	assert_int_equal(f->pk[1].op, OP_REQUEST);
	assert_int_equal(f->pk[0].src_port, 49152);
	assert_int_equal(f->pk[1].src_port, 49153);
	chan_close(a);
	chan_close(b);
	/* Closed while connecting: each gets an RST. */
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 2);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[1].op, OP_RST);
}

static void vsock_connect_without_running_driver_is_enotconn(void **state)
{
	struct fx *f = *state;
	struct chan *c = NULL;

	queue_stop(f, 0);
	assert_int_equal(vsock_connect(f->v, 1234, &c), -ENOTCONN);
	queue_start(f, 0);
	assert_int_equal(vsock_connect(f->v, 1234, &c), 0);
	chan_close(c);
}

/* ---- data ------------------------------------------------------------------- */

static void check_guest_to_host(struct fx *f, bool two)
{
	struct chan *c;
	uint8_t in[3000], out[4096];

	f->tx_two = two;
	c = guest_connect(f, 1000);
	fill_pattern(in, sizeof in, 1);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, in, sizeof in);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, in, 10);
	assert_int_equal(chan_read(c, out, sizeof out), sizeof in + 10);
	assert_memory_equal(out, in, sizeof in);
	assert_memory_equal(out + sizeof in, in, 10);
	assert_int_equal(chan_read(c, out, sizeof out), -EAGAIN);
	chan_close(c);
}

static void vsock_guest_data_reaches_host_from_one_descriptor(void **state)
{
	check_guest_to_host(*state, false);
}

static void vsock_guest_data_reaches_host_from_two_descriptors(void **state)
{
	check_guest_to_host(*state, true);
}

static void vsock_host_data_fills_two_descriptor_rx_buffers(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	uint8_t in[WINDOW];
	unsigned n;

	fill_pattern(in, sizeof in, 3);
	f->rx_data = 1500;
	host_write_all(c, in, sizeof in);
	rx_post(f, 4);
	n = rx_take(f);
	assert_int_equal(n, 3);
	assert_int_equal(f->pk[0].op, OP_RW);
	assert_int_equal(f->pk[0].len, 1500);
	assert_int_equal(f->pk[1].len, 1500);
	assert_int_equal(f->pk[2].len, WINDOW - 3000);
	assert_memory_equal(f->pk[0].data, in, 1500);
	assert_memory_equal(f->pk[1].data, in + 1500, 1500);
	assert_memory_equal(f->pk[2].data, in + 3000, WINDOW - 3000);
	assert_int_equal(f->pk[2].buf_alloc, WINDOW);
	assert_int_equal(c->tx_bytes, WINDOW);
	chan_close(c);
}

static void vsock_host_data_fills_one_descriptor_rx_buffers(void **state)
{
	struct fx *f = *state;
	struct chan *c;
	uint8_t in[WINDOW];

	f->rx_two = false;
	f->rx_data = 65536;
	c = guest_connect(f, 1000);
	fill_pattern(in, sizeof in, 5);
	host_write_all(c, in, sizeof in);
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RW);
	assert_int_equal(f->pk[0].len, WINDOW);
	assert_memory_equal(f->pk[0].data, in, WINDOW);
	chan_close(c);
}

static void vsock_host_data_waits_for_rx_buffers(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);

	host_write_all(c, "abc", 3);
	assert_int_equal(rx_take(f), 0);
	rx_post(f, 1);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].len, 3);
	assert_memory_equal(f->pk[0].data, "abc", 3);
	chan_close(c);
}

/* ---- small-write coalescing ------------------------------------------------ */

static int fx_setup_long_coalesce(void **state)
{
	struct vsock_config cfg = fx_cfg;

	cfg.coalesce_us = 60u * 1000 * 1000;  /* longer than any test */
	return fx_setup_cfg(state, &cfg);
}

static int fx_setup_short_coalesce(void **state)
{
	struct vsock_config cfg = fx_cfg;

	cfg.coalesce_us = 2000;
	return fx_setup_cfg(state, &cfg);
}

/* After a small packet, more small data waits for company while the guest
 * is silent (a credit update is not an answer); data from the guest (an
 * answer: request/response) sends it at once, all of it in one packet. */
static void vsock_small_writes_wait_while_the_guest_sends_no_data(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);

	rx_post(f, 4);
	host_write_all(c, "a", 1);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].len, 1);
	host_write_all(c, "b", 1);
	host_write_all(c, "c", 1);
	assert_int_equal(rx_take(f), 0);
	tx(f, OP_CREDIT_UPDATE, 1000, LISTEN, 0, 1, NULL, 0);
	assert_int_equal(rx_take(f), 0);
	tx(f, OP_RW, 1000, LISTEN, 0, 1, "x", 1);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RW);
	assert_int_equal(f->pk[0].len, 2);
	assert_memory_equal(f->pk[0].data, "bc", 2);
	chan_close(c);
}

/* A buffer's worth is not small: it goes at once. */
static void vsock_a_buffers_worth_of_writes_is_not_held(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	uint8_t in[WINDOW];

	fill_pattern(in, sizeof in, 4);
	rx_post(f, 4);
	host_write_all(c, "a", 1);
	assert_int_equal(rx_take(f), 1);
	host_write_all(c, in, sizeof in);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].len, WINDOW);
	assert_memory_equal(f->pk[0].data, in, WINDOW);
	chan_close(c);
}

/* The host's close does not wait for company: held data goes, then the
 * SHUTDOWN. */
static void vsock_host_close_sends_held_small_data_at_once(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);

	rx_post(f, 4);
	host_write_all(c, "a", 1);
	assert_int_equal(rx_take(f), 1);
	host_write_all(c, "b", 1);
	assert_int_equal(rx_take(f), 0);
	chan_close(c);
	assert_int_equal(rx_take(f), 2);
	assert_int_equal(f->pk[0].op, OP_RW);
	assert_memory_equal(f->pk[0].data, "b", 1);
	assert_int_equal(f->pk[1].op, OP_SHUTDOWN);
	tx(f, OP_RST, 1000, LISTEN, 0, 0, NULL, 0);
}

/* Held data goes by itself once the wait is over. */
static void vsock_held_small_data_goes_after_the_wait(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	unsigned got = 0;

	rx_post(f, 4);
	host_write_all(c, "a", 1);
	assert_int_equal(rx_take(f), 1);
	host_write_all(c, "b", 1);
	RUN_UNTIL(f, (got += rx_take(f)) == 1);
	assert_int_equal(f->pk[0].len, 1);
	assert_memory_equal(f->pk[0].data, "b", 1);
	chan_close(c);
}

/* ---- turns -------------------------------------------------------------------- */

static int fx_setup_big_window(void **state)
{
	struct vsock_config cfg = fx_cfg;

	cfg.buf_size = 1u << 20;
	return fx_setup_cfg(state, &cfg);
}

static unsigned tx_used_new(struct drv *d)
{
	return (uint16_t)(le16toh(__atomic_load_n(&d->used->idx,
	                                          __ATOMIC_ACQUIRE)) -
	                  d->last_used);
}

/* While host data waits for RX buffers, one TX run handles 256 KiB of
 * guest packets; the rest follows in the next loop turn, after the RX
 * fill had its turn.  With nothing waiting for the guest it takes all. */
static void vsock_tx_run_yields_to_waiting_host_data(void **state)
{
	struct fx *f = *state;
	struct chan *a = guest_connect(f, 1000);
	struct chan *b = guest_connect(f, 2000);
	static uint8_t pay[65536], out[65536];
	struct virtio_vsock_hdr h;
	struct drv *d = &f->tx;
	uint64_t got = 0;
	unsigned round, i;
	ssize_t n;

	fill_pattern(pay, sizeof pay, 6);
	for (round = 0; round < 2; round++) {
		if (round == 0)
			host_write_all(a, "hello", 5);  /* no RX buffer yet */
		for (i = 0; i < 5; i++) {
			int k = free_slot(d);
			uint64_t base = TXB + (uint64_t)k * STRIDE;

			hdr_init(&h, OP_RW, 2000, LISTEN, sizeof pay, 0,
			         GUEST_BUF, 0);
			memcpy(gpa(f, base, HDR), &h, HDR);
			memcpy(gpa(f, base + HDR, sizeof pay), pay, sizeof pay);
			set_desc(d, 2 * k, base, HDR + sizeof pay, 0, 0);
			d->busy[k] = true;
			publish(d, 2 * k);
		}
		f->dev->queue_kicked(f->v, 1, &d->vq);
		assert_int_equal(tx_used_new(d), round == 0 ? 4 : 5);
		settle(f);
		assert_int_equal(tx_used_new(d), 5);
		while (d->last_used != le16toh(d->used->idx)) {
			uint32_t id = le32toh(d->used->ring[d->last_used %
			                                    QSZ].id);

			d->busy[id / 2] = false;
			d->last_used++;
		}
		while ((n = chan_read(b, out, sizeof out)) > 0) {
			assert_memory_equal(out, pay, (size_t)n);
			got += (uint64_t)n;
		}
		if (round == 0) {
			/* the host data goes; then nothing waits */
			rx_post(f, 1);
			assert_int_equal(rx_take(f), 1);
			assert_memory_equal(f->pk[0].data, "hello", 5);
		}
	}
	assert_int_equal(got, 10 * sizeof pay);
	chan_close(a);
	chan_close(b);
}

/* ---- credit ----------------------------------------------------------------- */

static void vsock_host_data_never_exceeds_guest_credit(void **state)
{
	struct fx *f = *state;
	struct virtio_vsock_hdr h;
	struct chan *c = guest_connect(f, 1000);
	uint8_t in[3000];
	unsigned n, i;
	uint32_t total = 0;

	fill_pattern(in, sizeof in, 9);
	/* The guest's window is 1000 bytes. */
	hdr_init(&h, OP_CREDIT_UPDATE, 1000, LISTEN, 0, 0, 1000, 0);
	tx_raw(f, &h, NULL, 0);
	host_write_all(c, in, sizeof in);
	rx_post(f, 8);
	n = rx_take(f);
	for (i = 0; i < n; i++)
		if (f->pk[i].op == OP_RW)
			total += f->pk[i].len;
	assert_int_equal(total, 1000);
	/* Blocked with data waiting: one CREDIT_REQUEST. */
	assert_int_equal(f->pk[n - 1].op, OP_CREDIT_REQUEST);
	assert_int_equal(n, 2);
	assert_int_equal(rx_take(f), 0);

	/* The guest read 600 bytes: 600 more may come. */
	hdr_init(&h, OP_CREDIT_UPDATE, 1000, LISTEN, 0, 0, 1000, 600);
	tx_raw(f, &h, NULL, 0);
	n = rx_take(f);
	assert_int_equal(n, 2);
	assert_int_equal(f->pk[0].op, OP_RW);
	assert_int_equal(f->pk[0].len, 600);
	assert_memory_equal(f->pk[0].data, in + 1000, 600);
	assert_int_equal(f->pk[1].op, OP_CREDIT_REQUEST);
	chan_close(c);
}

static void vsock_credit_update_follows_host_reads(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	uint8_t in[WINDOW], out[WINDOW];

	fill_pattern(in, sizeof in, 2);
	/* A little read: the guest still has most of the window. */
	tx(f, OP_RW, 1000, LISTEN, 0, 0, in, 100);
	assert_int_equal(chan_read(c, out, sizeof out), 100);
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 0);
	/* Half the window read since the guest last heard: update. */
	tx(f, OP_RW, 1000, LISTEN, 0, 0, in, WINDOW / 2);
	assert_int_equal(chan_read(c, out, sizeof out), WINDOW / 2);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_CREDIT_UPDATE);
	assert_int_equal(f->pk[0].buf_alloc, WINDOW);
	assert_int_equal(f->pk[0].fwd_cnt, 100 + WINDOW / 2);
	chan_close(c);
}

static void vsock_credit_update_when_guest_saw_a_full_window(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	uint8_t in[WINDOW], out[8];

	fill_pattern(in, sizeof in, 4);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, in, WINDOW);
	rx_post(f, 2);
	assert_int_equal(chan_read(c, out, 1), 1);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_CREDIT_UPDATE);
	assert_int_equal(f->pk[0].fwd_cnt, 1);
	/* One more byte of credit is usable now. */
	tx(f, OP_RW, 1000, LISTEN, 0, 0, in, 1);
	assert_int_equal(c->state, CHAN_OPEN);
	chan_close(c);
}

static void vsock_credit_request_is_answered_with_credit_update(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	uint8_t in[300], out[300];

	fill_pattern(in, sizeof in, 6);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, in, sizeof in);
	assert_int_equal(chan_read(c, out, 200), 200);
	rx_post(f, 2);
	tx(f, OP_CREDIT_REQUEST, 1000, LISTEN, 0, 0, NULL, 0);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_CREDIT_UPDATE);
	assert_int_equal(f->pk[0].buf_alloc, WINDOW);
	assert_int_equal(f->pk[0].fwd_cnt, 200);
	chan_close(c);
}

/* ---- shutdown and close ----------------------------------------------------- */

static void vsock_guest_shutdown_both_ends_in_order_with_rst(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	char out[16];

	tx(f, OP_RW, 1000, LISTEN, 0, 0, "bye", 3);
	tx(f, OP_SHUTDOWN, 1000, LISTEN, SHUT_R | SHUT_S, 0, NULL, 0);
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[0].dst_port, 1000);
	assert_int_equal(chan_read(c, out, sizeof out), 3);
	assert_int_equal(chan_read(c, out, sizeof out), 0);
	assert_int_equal(chan_write(c, "x", 1), -EPIPE);
	chan_close(c);
	/* The connection is gone: nothing more is sent. */
	assert_int_equal(rx_take(f), 0);
}

static void vsock_guest_shutdown_send_gives_eof_and_host_still_replies(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	char out[16];

	tx(f, OP_SHUTDOWN, 1000, LISTEN, SHUT_S, 0, NULL, 0);
	assert_int_equal(chan_read(c, out, sizeof out), 0);
	host_write_all(c, "reply", 5);
	chan_close(c);
	rx_post(f, 4);
	assert_int_equal(rx_take(f), 3);
	assert_int_equal(f->pk[0].op, OP_RW);
	assert_memory_equal(f->pk[0].data, "reply", 5);
	assert_int_equal(f->pk[1].op, OP_SHUTDOWN);
	assert_int_equal(f->pk[1].flags, SHUT_R | SHUT_S);
	/* Nothing flows either way any more. */
	assert_int_equal(f->pk[2].op, OP_RST);
}

static void vsock_guest_shutdown_rcv_makes_host_writes_fail(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	char out[16];

	tx(f, OP_SHUTDOWN, 1000, LISTEN, SHUT_R, 0, NULL, 0);
	assert_int_equal(chan_write(c, "x", 1), -EPIPE);
	/* The other direction still works. */
	tx(f, OP_RW, 1000, LISTEN, 0, 0, "in", 2);
	assert_int_equal(chan_read(c, out, sizeof out), 2);
	chan_close(c);
}

static void vsock_host_close_drains_then_shuts_down_and_waits_for_rst(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	FILE *m;
	char *text = NULL;
	size_t len = 0;

	host_write_all(c, "last", 4);
	chan_close(c);
	rx_post(f, 4);
	assert_int_equal(rx_take(f), 2);
	assert_int_equal(f->pk[0].op, OP_RW);
	assert_memory_equal(f->pk[0].data, "last", 4);
	assert_int_equal(f->pk[1].op, OP_SHUTDOWN);
	assert_int_equal(f->pk[1].flags, SHUT_R | SHUT_S);
	assert_int_equal(f->chans.count, 1);
	tx(f, OP_RST, 1000, LISTEN, 0, 0, NULL, 0);
	assert_int_equal(f->chans.count, 0);
	assert_int_equal(rx_take(f), 0);
	m = open_memstream(&text, &len);
	vsock_status(f->v, m);
	fclose(m);
	assert_non_null(strstr(text, "0 connections"));
	free(text);
}

static void vsock_close_without_guest_rst_times_out_with_rst(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	int i;

	chan_close(c);
	rx_post(f, 4);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_SHUTDOWN);
	for (i = 0; i < 100 && f->chans.count; i++)
		loop_turn(f->loop, true);
	assert_int_equal(f->chans.count, 0);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[0].dst_port, 1000);
}

static void vsock_host_shutdown_sends_shutdown_send_after_data(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	char out[8];

	host_write_all(c, "x", 1);
	chan_shutdown(c);
	rx_post(f, 4);
	assert_int_equal(rx_take(f), 2);
	assert_int_equal(f->pk[0].op, OP_RW);
	assert_int_equal(f->pk[1].op, OP_SHUTDOWN);
	assert_int_equal(f->pk[1].flags, SHUT_S);
	/* The guest may still send. */
	tx(f, OP_RW, 1000, LISTEN, 0, 0, "yz", 2);
	assert_int_equal(chan_read(c, out, sizeof out), 2);
	/* Its SHUTDOWN(SEND) ends it: nothing flows any more. */
	tx(f, OP_SHUTDOWN, 1000, LISTEN, SHUT_S, 0, NULL, 0);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(chan_read(c, out, sizeof out), 0);
	chan_close(c);
}

/* ---- a misbehaving guest ----------------------------------------------------- */

enum bad {
	BAD_CREDIT, BAD_OP, BAD_LEN, BAD_SRC_CID, BAD_DST_CID, BAD_TYPE,
	BAD_REQUEST_AGAIN, BAD_RESPONSE, BAD_COUNT
};

static const char *const bad_words[BAD_COUNT] = {
	"beyond the credit", "op 99", "larger than", "source CID",
	"destination CID", "type", "connection exists", "not connecting",
};

/* Each misbehaviour resets its connection with one log line naming it, an
 * RST, and ECONNRESET after the data already accepted; a second
 * connection keeps flowing both ways. */
static void check_misbehaviour(struct fx *f, enum bad bad)
{
	struct chan *victim = guest_connect(f, 1000);
	struct chan *other = guest_connect(f, 2000);
	struct virtio_vsock_hdr h;
	uint8_t in[WINDOW], out[WINDOW + 8];
	struct logcap cap;
	char log[2048];
	int lines;

	fill_pattern(in, sizeof in, 8);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, in, 10);

	hdr_init(&h, OP_RW, 1000, LISTEN, 0, 0, GUEST_BUF, 0);
	switch (bad) {
	case BAD_CREDIT:
		h.len = htole32(WINDOW - 10 + 1);
		break;
	case BAD_OP:
		h.op = htole16(99);
		break;
	case BAD_LEN:
		h.len = htole32(100);
		break;
	case BAD_SRC_CID:
		h.src_cid = htole64(CID + 1);
		break;
	case BAD_DST_CID:
		h.dst_cid = htole64(7);
		break;
	case BAD_TYPE:
		h.type = htole16(2);
		break;
	case BAD_REQUEST_AGAIN:
		h.op = htole16(OP_REQUEST);
		break;
	case BAD_RESPONSE:
		h.op = htole16(OP_RESPONSE);
		break;
	case BAD_COUNT:
		break;
	}
	logcap_begin(&cap);
	if (bad == BAD_CREDIT)
		tx_raw(f, &h, in, WINDOW - 10 + 1);
	else
		tx_raw(f, &h, in, 10);
	lines = logcap_end(&cap, log, sizeof log);
	assert_int_equal(lines, 1);
	if (!strstr(log, "3:1000-2:5000") || !strstr(log, bad_words[bad]))
		fail_msg("log \"%s\" does not name the connection and \"%s\"",
		         log, bad_words[bad]);

	rx_post(f, 4);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[0].dst_port, 1000);
	assert_int_equal(victim->state, CHAN_RESET);
	assert_int_equal(chan_read(victim, out, sizeof out), 10);
	assert_int_equal(chan_read(victim, out, sizeof out), -ECONNRESET);

	tx(f, OP_RW, 2000, LISTEN, 0, 0, in, 20);
	assert_int_equal(chan_read(other, out, sizeof out), 20);
	host_write_all(other, "ok", 2);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RW);
	assert_int_equal(f->pk[0].dst_port, 2000);
	chan_close(victim);
	chan_close(other);
}

static void vsock_data_beyond_credit_resets_only_that_connection(void **state)
{
	check_misbehaviour(*state, BAD_CREDIT);
}

static void vsock_unknown_op_resets_only_that_connection(void **state)
{
	check_misbehaviour(*state, BAD_OP);
}

static void vsock_len_past_the_buffer_resets_only_that_connection(void **state)
{
	check_misbehaviour(*state, BAD_LEN);
}

static void vsock_wrong_source_cid_resets_only_that_connection(void **state)
{
	check_misbehaviour(*state, BAD_SRC_CID);
}

static void vsock_wrong_destination_cid_resets_only_that_connection(void **state)
{
	check_misbehaviour(*state, BAD_DST_CID);
}

static void vsock_wrong_type_resets_only_that_connection(void **state)
{
	check_misbehaviour(*state, BAD_TYPE);
}

static void vsock_second_request_resets_only_that_connection(void **state)
{
	check_misbehaviour(*state, BAD_REQUEST_AGAIN);
}

static void vsock_unasked_response_resets_only_that_connection(void **state)
{
	check_misbehaviour(*state, BAD_RESPONSE);
}

static void vsock_rw_for_no_connection_is_answered_with_rst(void **state)
{
	struct fx *f = *state;
	struct logcap cap;
	char log[1024];

	rx_post(f, 2);
	logcap_begin(&cap);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, "zz", 2);
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	assert_non_null(strstr(log, "1000"));
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	assert_int_equal(f->pk[0].src_port, LISTEN);
	assert_int_equal(f->pk[0].dst_port, 1000);
	assert_int_equal(f->chans.count, 0);
}

static void vsock_packet_shorter_than_header_is_dropped(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	struct drv *d = &f->tx;
	struct logcap cap;
	char log[1024], out[8];
	int k = free_slot(d);
	uint64_t base = RXB + (NBUF + (uint64_t)k) * STRIDE;

	set_desc(d, 2 * k, base, 20, 0, 0);
	d->busy[k] = true;
	publish(d, 2 * k);
	logcap_begin(&cap);
	f->dev->queue_kicked(f->v, 1, &d->vq);
	assert_int_equal(logcap_end(&cap, log, sizeof log), 1);
	assert_int_equal(le16toh(d->used->idx), d->last_used + 1);
	d->last_used++;
	d->busy[k] = false;
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 0);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, "ok", 2);
	assert_int_equal(chan_read(c, out, sizeof out), 2);
	chan_close(c);
}

static void vsock_rst_replies_are_bounded_and_dropped_counted(void **state)
{
	struct fx *f = *state;
	struct logcap cap;
	char log[65536];
	FILE *m;
	char *text = NULL;
	size_t len = 0;
	unsigned i, got = 0, n;

	/* No rx buffers: every RST reply waits. */
	logcap_begin(&cap);
	for (i = 0; i < 300; i++)
		tx(f, OP_RW, 1000 + i, LISTEN, 0, 0, "z", 1);
	logcap_end(&cap, log, sizeof log);
	m = open_memstream(&text, &len);
	vsock_status(f->v, m);
	fclose(m);
	assert_non_null(strstr(text, "44 RST replies dropped"));
	free(text);
	do {
		rx_post(f, NBUF);
		n = rx_take(f);
		got += n;
	} while (n);
	assert_int_equal(got, 256);
}

/* ---- fairness and ordering ---------------------------------------------------- */

static void vsock_rx_round_robin_alternates_between_connections(void **state)
{
	struct fx *f = *state;
	struct chan *a = guest_connect(f, 1000);
	struct chan *b = guest_connect(f, 2000);
	uint8_t in[WINDOW];
	unsigned i;

	fill_pattern(in, sizeof in, 1);
	f->rx_data = 512;
	host_write_all(a, in, sizeof in);
	host_write_all(b, in, sizeof in);
	rx_post(f, 8);
	assert_int_equal(rx_take(f), 8);
	for (i = 0; i < 8; i++) {
		assert_int_equal(f->pk[i].op, OP_RW);
		assert_int_equal(f->pk[i].len, 512);
		assert_int_equal(f->pk[i].dst_port, i % 2 ? 2000 : 1000);
	}
	chan_close(a);
	chan_close(b);
}

static void vsock_rx_sends_control_replies_before_data(void **state)
{
	struct fx *f = *state;
	struct chan *a = guest_connect(f, 1000);
	struct chan *b;
	uint8_t in[WINDOW];

	fill_pattern(in, sizeof in, 1);
	host_write_all(a, in, sizeof in);
	tx(f, OP_REQUEST, 2000, LISTEN, 0, 0, NULL, 0);
	rx_post(f, 1);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RESPONSE);
	assert_int_equal(f->pk[0].dst_port, 2000);
	rx_post(f, 1);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RW);
	assert_int_equal(vsock_accept(f->v, LISTEN, &b), 0);
	chan_close(a);
	chan_close(b);
}

/* ---- the driver and the front-end go away ------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Run the loop for ms milliseconds of wall clock (timers due meanwhile
 * fire). */
static void run_for_ms(struct fx *f, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	bool done = false;
	struct event *t = evtimer_new(loop_base(f->loop), on_timer, &done);

	assert_non_null(t);
	evtimer_add(t, &tv);
	while (!done)
		loop_turn(f->loop, true);
	event_free(t);
}

/* Append the payload of the RW packets for gport among the n taken by
 * rx_take to buf at *got. */
static void pk_data(struct fx *f, unsigned n, uint32_t gport, char *buf,
                    size_t max, size_t *got)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		if (f->pk[i].op != OP_RW || f->pk[i].dst_port != gport)
			continue;
		assert_true(*got + f->pk[i].len <= max);
		memcpy(buf + *got, f->pk[i].data, f->pk[i].len);
		*got += f->pk[i].len;
	}
}

/* A VM pause (QMP stop, then cont): the rings stop and start again where
 * they were.  Connections, the data on its way both ways and what the host
 * writes meanwhile all survive; nothing touches the rings meanwhile, and
 * nothing moves until both rings run again. */
static void vsock_rings_stopped_and_started_again_keep_every_byte(
	void **state)
{
	struct fx *f = *state;
	struct chan *a = guest_connect(f, 1000);
	struct chan *b = guest_connect(f, 2000);
	char out[16], ina[16], inb[16];
	size_t na = 0, nb = 0;
	unsigned n;

	tx(f, OP_RW, 1000, LISTEN, 0, 0, "ab", 2);
	host_write_all(a, "xyz", 3);
	queue_stop(f, 0);
	queue_stop(f, 1);
	assert_int_equal(chan_read(a, out, sizeof out), 2);
	assert_memory_equal(out, "ab", 2);
	assert_int_equal(chan_read(a, out, sizeof out), -EAGAIN);
	assert_int_equal(chan_read(b, out, sizeof out), -EAGAIN);
	host_write_all(b, "123", 3);
	rx_post(f, 4);
	assert_int_equal(rx_take(f), 0);
	queue_start(f, 0);
	assert_int_equal(rx_take(f), 0);
	queue_start(f, 1);
	n = rx_take(f);
	pk_data(f, n, 1000, ina, sizeof ina, &na);
	pk_data(f, n, 2000, inb, sizeof inb, &nb);
	assert_int_equal(na, 3);
	assert_memory_equal(ina, "xyz", 3);
	assert_int_equal(nb, 3);
	assert_memory_equal(inb, "123", 3);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, "cd", 2);
	assert_int_equal(chan_read(a, out, sizeof out), 2);
	assert_memory_equal(out, "cd", 2);
	chan_close(a);
	chan_close(b);
}

/* Neither the connect timeout nor the close timeout counts while the
 * rings are stopped: the guest cannot answer then. */
static void vsock_timers_wait_while_the_rings_are_stopped(void **state)
{
	struct fx *f = *state;
	struct chan *a = guest_connect(f, 1000);
	struct chan *h = NULL;
	uint32_t port;
	int i;

	assert_int_equal(vsock_connect(f->v, 1234, &h), 0);
	rx_post(f, 2);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_REQUEST);
	port = f->pk[0].src_port;
	queue_stop(f, 0);
	queue_stop(f, 1);
	chan_close(a);
	/* Five times either timeout (20 ms). */
	run_for_ms(f, 100);
	assert_int_equal(h->state, CHAN_CONNECTING);
	assert_int_equal(f->chans.count, 2);
	queue_start(f, 0);
	queue_start(f, 1);
	tx(f, OP_RESPONSE, 1234, port, 0, 0, NULL, 0);
	assert_int_equal(h->state, CHAN_OPEN);
	/* The closed one says SHUTDOWN first, then its timer runs again. */
	rx_post(f, 4);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_SHUTDOWN);
	assert_int_equal(f->pk[0].dst_port, 1000);
	for (i = 0; i < 100 && f->chans.count > 1; i++)
		loop_turn(f->loop, true);
	assert_int_equal(f->chans.count, 1);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_RST);
	chan_close(h);
}

/* The device really ends (vu found the driver restarted its rings, or the
 * front-end went away): every connection is reset. */
static void vsock_device_reset_resets_every_connection(void **state)
{
	struct fx *f = *state;
	struct chan *a = guest_connect(f, 1000);
	struct chan *b = guest_connect(f, 2000);
	struct chan *h = NULL, *c = NULL;
	char out[8];

	assert_int_equal(vsock_connect(f->v, 1234, &h), 0);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, "ab", 2);
	/* vu stops both rings, then resets the device. */
	queue_stop(f, 0);
	queue_stop(f, 1);
	f->dev->reset(f->v);
	assert_int_equal(chan_read(a, out, sizeof out), 2);
	assert_int_equal(chan_read(a, out, sizeof out), -ECONNRESET);
	assert_int_equal(chan_read(b, out, sizeof out), -ECONNRESET);
	assert_int_equal(chan_read(h, out, sizeof out), -ECONNRESET);
	assert_int_equal(chan_write(b, "x", 1), -ECONNRESET);
	assert_int_equal(vsock_connect(f->v, 1234, &c), -ENOTCONN);
	chan_close(a);
	chan_close(b);
	chan_close(h);

	/* The driver is loaded again: the same ports connect anew. */
	queue_start(f, 0);
	queue_start(f, 1);
	assert_int_equal(rx_take(f), 0);
	a = guest_connect(f, 1000);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, "cd", 2);
	assert_int_equal(chan_read(a, out, sizeof out), 2);
	chan_close(a);
}

static void vsock_front_end_reset_drops_queued_connections(void **state)
{
	struct fx *f = *state;
	struct chan *c = NULL;
	FILE *m;
	char *text = NULL;
	size_t len = 0;

	vsock_listen(f->v, LISTEN);
	tx(f, OP_REQUEST, 1000, LISTEN, 0, 0, NULL, 0);
	queue_stop(f, 0);
	queue_stop(f, 1);
	f->dev->reset(f->v);
	assert_int_equal(vsock_accept(f->v, LISTEN, &c), -EAGAIN);
	assert_int_equal(f->chans.count, 0);
	m = open_memstream(&text, &len);
	vsock_status(f->v, m);
	fclose(m);
	assert_non_null(strstr(text, "no front-end"));
	free(text);
	queue_start(f, 0);
	queue_start(f, 1);
	c = guest_connect(f, 1000);
	chan_close(c);
}

static void vsock_status_names_state_cid_and_connections(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	FILE *m;
	char *text = NULL;
	size_t len = 0;

	tx(f, OP_RW, 1000, LISTEN, 0, 0, "abc", 3);
	m = open_memstream(&text, &len);
	vsock_status(f->v, m);
	fclose(m);
	assert_non_null(strstr(text, "running"));
	assert_non_null(strstr(text, "guest cid 3"));
	assert_non_null(strstr(text, "3:1000-2:5000 established"));
	assert_non_null(strstr(text, "guest->host 3 bytes"));
	free(text);
	chan_close(c);
}

static void vsock_config_space_is_the_guest_cid(void **state)
{
	struct fx *f = *state;
	uint8_t b[8];
	uint64_t cid;

	assert_int_equal(f->dev->config_size, 8);
	assert_int_equal(f->dev->num_queues, 2);
	f->dev->get_config(f->v, 0, b, 8);
	memcpy(&cid, b, 8);
	assert_int_equal(le64toh(cid), CID);
}

/* ---- reads answered in place ------------------------------------------------
 * While a host read is parked (chan_read_waiting), a guest packet's payload
 * is lent to it from the TX buffer, and the chain completes only after the
 * loop turn's flush (where fs answers the read); what the read did not take
 * is copied into the window then, in order. */

/* Post a data packet from gport without a kick; *data: its payload in
 * guest memory. */
static int tx_post(struct fx *f, uint32_t gport, const char *payload,
                   uint8_t **data)
{
	struct virtio_vsock_hdr h;
	uint32_t plen = (uint32_t)strlen(payload);

	hdr_init(&h, OP_RW, gport, LISTEN, plen, 0, GUEST_BUF, 0);
	return tx_post_raw(f, &h, payload, plen, data);
}

static void tx_kick(struct fx *f)
{
	f->dev->queue_kicked(f->v, 1, &f->tx.vq);
}

static void read_all_expect(struct chan *c, const char *want)
{
	char out[64];
	size_t n = strlen(want);

	assert_true(n < sizeof out);
	assert_int_equal(chan_read(c, out, sizeof out), (ssize_t)n);
	assert_memory_equal(out, want, n);
	assert_int_equal(chan_read(c, out, sizeof out), -EAGAIN);
}

static void vsock_parked_read_takes_tx_payload_in_place_chain_completes_after(
	void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	struct iovec iov[CHAN_PEEK_MAX];
	uint8_t *p;
	char *text;
	size_t len;
	FILE *m;

	chan_read_waiting(c, true);
	tx_post(f, 1000, "hello world", &p);
	tx_kick(f);
	/* Held: the read has not been answered yet. */
	assert_int_equal(tx_reap(f), 0);
	assert_true(chan_poll(c) & POLLIN);
	assert_int_equal(ring_used(&c->to_host), 0);
	assert_int_equal(chan_peekv(c, iov, CHAN_PEEK_MAX, 100), 1);
	assert_ptr_equal(iov[0].iov_base, p);
	assert_int_equal(iov[0].iov_len, 11);
	chan_consume(c, 11);
	chan_read_waiting(c, false);
	assert_int_equal(tx_reap(f), 0);
	settle(f);
	assert_int_equal(tx_reap(f), 1);
	assert_int_equal(c->rx_bytes, 11);
	assert_int_equal(chan_read(c, iov, 1), -EAGAIN);
	/* The credit counts the bytes read in place. */
	tx(f, OP_CREDIT_REQUEST, 1000, LISTEN, 0, 0, NULL, 0);
	rx_post(f, 1);
	assert_int_equal(rx_take(f), 1);
	assert_int_equal(f->pk[0].op, OP_CREDIT_UPDATE);
	assert_int_equal(f->pk[0].fwd_cnt, 11);
	m = open_memstream(&text, &len);
	vsock_status(f->v, m);
	fclose(m);
	assert_non_null(strstr(text, "1 lent to reads"));
	free(text);
	chan_close(c);
}

/* Without a waiting read the chain completes in the run, as always. */
static void vsock_tx_payload_without_a_waiting_read_is_copied_at_once(
	void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);

	tx_post(f, 1000, "abc", NULL);
	tx_kick(f);
	assert_int_equal(tx_reap(f), 1);
	assert_int_equal(ring_used(&c->to_host), 3);
	read_all_expect(c, "abc");
	chan_close(c);
}

static void vsock_read_smaller_than_the_packets_takes_part_rest_in_order(
	void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	struct iovec iov[CHAN_PEEK_MAX];
	uint8_t *p, *q;

	chan_read_waiting(c, true);
	tx_post(f, 1000, "abcdef", &p);
	tx_post(f, 1000, "ghij", &q);
	tx_kick(f);
	assert_int_equal(tx_reap(f), 0);
	/* Both packets are lent, as two iovecs; the read takes 3 bytes. */
	assert_int_equal(chan_peekv(c, iov, CHAN_PEEK_MAX, 100), 2);
	assert_ptr_equal(iov[0].iov_base, p);
	assert_ptr_equal(iov[1].iov_base, q);
	assert_int_equal(chan_peekv(c, iov, CHAN_PEEK_MAX, 3), 1);
	assert_int_equal(iov[0].iov_len, 3);
	chan_consume(c, 3);
	chan_read_waiting(c, false);
	settle(f);
	assert_int_equal(tx_reap(f), 2);
	/* The rest went into the window before the turn ended; a packet
	 * after it follows it. */
	assert_int_equal(ring_used(&c->to_host), 7);
	tx(f, OP_RW, 1000, LISTEN, 0, 0, "kl", 2);
	read_all_expect(c, "defghijkl");
	assert_int_equal(c->rx_bytes, 12);
	chan_close(c);
}

/* A read that goes (interrupted, released) before taking anything: the
 * data waits in the window, the chains complete within the turn. */
static void vsock_reader_leaving_mid_turn_leaves_the_data_in_the_window(
	void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);

	chan_read_waiting(c, true);
	tx_post(f, 1000, "stay", NULL);
	tx_kick(f);
	assert_int_equal(tx_reap(f), 0);
	chan_read_waiting(c, false);
	settle(f);
	assert_int_equal(tx_reap(f), 1);
	read_all_expect(c, "stay");
	/* Nobody took lent bytes: the next packet is copied at once. */
	tx_post(f, 1000, "next", NULL);
	tx_kick(f);
	assert_int_equal(tx_reap(f), 1);
	read_all_expect(c, "next");
	chan_close(c);
}

/* A reader that took lent bytes is streaming: its next read is on its
 * way, so the next packet is lent even before that read is parked, and
 * the read that arrives in the same turn takes it in place. */
static void vsock_streaming_reader_gets_the_next_packet_in_place(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	struct iovec iov[CHAN_PEEK_MAX];
	uint8_t *p;

	chan_read_waiting(c, true);
	tx_post(f, 1000, "one", NULL);
	tx_kick(f);
	assert_int_equal(chan_peekv(c, iov, CHAN_PEEK_MAX, 64), 1);
	chan_consume(c, 3);
	chan_read_waiting(c, false);
	settle(f);
	assert_int_equal(tx_reap(f), 1);
	tx_post(f, 1000, "two", &p);
	tx_kick(f);
	assert_int_equal(tx_reap(f), 0);
	assert_int_equal(chan_peekv(c, iov, CHAN_PEEK_MAX, 64), 1);
	assert_ptr_equal(iov[0].iov_base, p);
	chan_consume(c, 3);
	settle(f);
	assert_int_equal(tx_reap(f), 1);
	assert_int_equal(chan_read(c, iov, 1), -EAGAIN);
	chan_close(c);
}

static void vsock_rst_while_chains_are_held_keeps_the_lent_data(void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);
	struct virtio_vsock_hdr h;
	char out[16];

	chan_read_waiting(c, true);
	tx_post(f, 1000, "last", NULL);
	hdr_init(&h, OP_RST, 1000, LISTEN, 0, 0, GUEST_BUF, 0);
	tx_post_raw(f, &h, NULL, 0, NULL);
	tx_kick(f);
	/* The RST takes the lent bytes back first: both chains are done. */
	assert_int_equal(tx_reap(f), 2);
	assert_int_equal(c->state, CHAN_RESET);
	assert_int_equal(chan_read(c, out, sizeof out), 4);
	assert_memory_equal(out, "last", 4);
	assert_int_equal(chan_read(c, out, sizeof out), -ECONNRESET);
	chan_read_waiting(c, false);
	settle(f);
	assert_int_equal(tx_reap(f), 0);
	chan_close(c);
}

/* The host closes the file while its bytes are lent: the chains still
 * complete within the turn, and the channel goes when the device lets
 * go of it. */
static void vsock_host_close_while_chains_are_held_completes_them(
	void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);

	chan_read_waiting(c, true);
	tx_post(f, 1000, "bye", NULL);
	tx_kick(f);
	assert_int_equal(tx_reap(f), 0);
	chan_read_waiting(c, false);
	chan_close(c);
	settle(f);
	assert_int_equal(tx_reap(f), 1);
	tx(f, OP_RST, 1000, LISTEN, 0, 0, NULL, 0);
	settle(f);
	assert_int_equal(f->chans.count, 0);
}

/* A pause (GET_VRING_BASE) while chains are held: they are completed
 * before the ring stops, so a resumed ring does not pop them again, and
 * their bytes wait in the window. */
static void vsock_rings_stopped_while_chains_are_held_complete_them_first(
	void **state)
{
	struct fx *f = *state;
	struct chan *c = guest_connect(f, 1000);

	chan_read_waiting(c, true);
	tx_post(f, 1000, "xyz", NULL);
	tx_kick(f);
	assert_int_equal(tx_reap(f), 0);
	queue_stop(f, 0);
	assert_int_equal(tx_reap(f), 1);
	queue_stop(f, 1);
	read_all_expect(c, "xyz");
	queue_start(f, 0);
	queue_start(f, 1);
	settle(f);
	assert_int_equal(tx_reap(f), 0);
	assert_int_equal(chan_read(c, f->pk[0].data, 16), -EAGAIN);
	assert_int_equal(c->rx_bytes, 3);
	chan_read_waiting(c, false);
	chan_close(c);
}

/* VIRTIO_F_IN_ORDER: a chain completed in the run (another connection's)
 * waits for the held one before it, and both are used in one batch: one
 * entry with the last buffer's id, the index moved by two. */
static void vsock_held_chains_complete_in_order_with_in_order(void **state)
{
	struct fx *f = *state;
	struct drv *d = &f->tx;
	struct chan *a, *b;
	uint16_t at;
	int ka, kb;

	queue_stop(f, 1);
	f->features = VBIT(VIRTIO_F_IN_ORDER_BIT);
	queue_start(f, 1);
	a = guest_connect(f, 1000);
	b = guest_connect(f, 2000);
	chan_read_waiting(a, true);
	ka = tx_post(f, 1000, "held", NULL);
	kb = tx_post(f, 2000, "done", NULL);
	tx_kick(f);
	at = d->last_used;
	assert_int_equal(le16toh(d->used->idx), at);
	assert_int_equal(ring_used(&b->to_host), 4);
	chan_read_waiting(a, false);
	settle(f);
	assert_int_equal(le16toh(d->used->idx), (uint16_t)(at + 2));
	assert_int_equal(le32toh(d->used->ring[at % QSZ].id), 2 * kb);
	d->busy[ka] = d->busy[kb] = false;
	d->last_used = at + 2;
	read_all_expect(a, "held");
	read_all_expect(b, "done");
	chan_close(a);
	chan_close(b);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(vsock_parked_read_takes_tx_payload_in_place_chain_completes_after),
		T(vsock_tx_payload_without_a_waiting_read_is_copied_at_once),
		T(vsock_read_smaller_than_the_packets_takes_part_rest_in_order),
		T(vsock_reader_leaving_mid_turn_leaves_the_data_in_the_window),
		T(vsock_streaming_reader_gets_the_next_packet_in_place),
		T(vsock_rst_while_chains_are_held_keeps_the_lent_data),
		T(vsock_host_close_while_chains_are_held_completes_them),
		T(vsock_rings_stopped_while_chains_are_held_complete_them_first),
		T(vsock_held_chains_complete_in_order_with_in_order),
		T(vsock_request_to_unlistened_port_is_answered_with_rst),
		T(vsock_request_to_listening_port_gets_response_and_accept),
		T(vsock_request_beyond_backlog_is_answered_with_rst),
		T(vsock_host_abort_sends_rst_and_discards_queued_data),
		T(vsock_listen_to_tells_its_user_and_is_not_listed),
		T(vsock_accept_on_a_new_port_starts_listening),
		T(vsock_accept_returns_a_connection_the_guest_already_ended),
		cmocka_unit_test_setup_teardown(
			vsock_accepted_port_listens_while_wanted_then_stops,
			fx_setup_short_listen, fx_teardown),
		cmocka_unit_test_setup_teardown(
			vsock_queued_connection_not_accepted_in_time_is_reset,
			fx_setup_short_listen, fx_teardown),
		T(vsock_connect_sends_request_and_response_opens),
		T(vsock_connect_answered_with_rst_is_refused),
		T(vsock_connect_without_answer_times_out_with_rst),
		T(vsock_connect_uses_a_fresh_ephemeral_port_each_time),
		T(vsock_connect_without_running_driver_is_enotconn),
		T(vsock_guest_data_reaches_host_from_one_descriptor),
		T(vsock_guest_data_reaches_host_from_two_descriptors),
		T(vsock_host_data_fills_two_descriptor_rx_buffers),
		T(vsock_host_data_fills_one_descriptor_rx_buffers),
		T(vsock_host_data_waits_for_rx_buffers),
		cmocka_unit_test_setup_teardown(
			vsock_tx_run_yields_to_waiting_host_data,
			fx_setup_big_window, fx_teardown),
		cmocka_unit_test_setup_teardown(
			vsock_small_writes_wait_while_the_guest_sends_no_data,
			fx_setup_long_coalesce, fx_teardown),
		cmocka_unit_test_setup_teardown(
			vsock_a_buffers_worth_of_writes_is_not_held,
			fx_setup_long_coalesce, fx_teardown),
		cmocka_unit_test_setup_teardown(
			vsock_host_close_sends_held_small_data_at_once,
			fx_setup_long_coalesce, fx_teardown),
		cmocka_unit_test_setup_teardown(
			vsock_held_small_data_goes_after_the_wait,
			fx_setup_short_coalesce, fx_teardown),
		T(vsock_host_data_never_exceeds_guest_credit),
		T(vsock_credit_update_follows_host_reads),
		T(vsock_credit_update_when_guest_saw_a_full_window),
		T(vsock_credit_request_is_answered_with_credit_update),
		T(vsock_guest_shutdown_both_ends_in_order_with_rst),
		T(vsock_guest_shutdown_send_gives_eof_and_host_still_replies),
		T(vsock_guest_shutdown_rcv_makes_host_writes_fail),
		T(vsock_host_close_drains_then_shuts_down_and_waits_for_rst),
		T(vsock_close_without_guest_rst_times_out_with_rst),
		T(vsock_host_shutdown_sends_shutdown_send_after_data),
		T(vsock_data_beyond_credit_resets_only_that_connection),
		T(vsock_unknown_op_resets_only_that_connection),
		T(vsock_len_past_the_buffer_resets_only_that_connection),
		T(vsock_wrong_source_cid_resets_only_that_connection),
		T(vsock_wrong_destination_cid_resets_only_that_connection),
		T(vsock_wrong_type_resets_only_that_connection),
		T(vsock_second_request_resets_only_that_connection),
		T(vsock_unasked_response_resets_only_that_connection),
		T(vsock_rw_for_no_connection_is_answered_with_rst),
		T(vsock_packet_shorter_than_header_is_dropped),
		T(vsock_rst_replies_are_bounded_and_dropped_counted),
		T(vsock_rx_round_robin_alternates_between_connections),
		T(vsock_rx_sends_control_replies_before_data),
		T(vsock_rings_stopped_and_started_again_keep_every_byte),
		T(vsock_timers_wait_while_the_rings_are_stopped),
		T(vsock_device_reset_resets_every_connection),
		T(vsock_front_end_reset_drops_queued_connections),
		T(vsock_status_names_state_cid_and_connections),
		T(vsock_config_space_is_the_guest_cid),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
