/*
 * fuzz_vsock — the vsock packet handler against a hostile guest, with a
 * host side poking at the channels in between.  Each input runs a fresh
 * device on started rx/tx rings over memfd guest memory; the input is a
 * script of records (well-formed descriptors, hostile packet bytes):
 *
 *   byte 0        bit 0: rx buffers are 44 + data descriptors (Linux 6.1)
 *                 bit 1: tx packets are split into two descriptors
 *                 bit 2: EVENT_IDX
 *   The named services take host port 5001 (services.h); a host accept
 *   on channel i % 4 == 1 is an open of services/a instead.
 *   then records, each starting with one byte whose low 3 bits pick:
 *     0 TX raw      le16 n, then n packet bytes (header + payload) as sent
 *     1 RX post     byte: count (low 3 bits + 1), data size 2^(bits 3-6)
 *     2 host        byte: action (low 3 bits) on channel (high bits % 8)
 *                   listen / accept / write / read / shutdown / close /
 *                   connect / status
 *     3 run         run the loop's deferred work
 *     4 take        the driver reads every used rx buffer
 *     5 queue       byte: stop or start rx or tx (GET_VRING_BASE / start)
 *     6 reset       the front-end goes away and comes back
 *     7 TX fixed    as 0, but CIDs, type and len are made plausible so the
 *                   input reaches the connection state machine
 * A record cut short by the end of the input ends the script.
 *
 * Checked on every rx buffer the device returns: used len = 44 + hdr.len
 * within the buffer, host → guest CIDs, STREAM, a known op, and a
 * connection's data is the host's bytes in order (byte o of a channel's
 * stream is o % 251, o counted from the REQUEST or RESPONSE that
 * started it).  The other way, every data packet's payload is rewritten
 * as its connection's stream (by ports, from its REQUEST on; not to the
 * services port, whose connect strings must stay as they are), and what
 * the host reads of a channel must continue what it read before, by
 * chan_read or in place.  tx buffers come
 * back with len 0, at once while both rings run (the device leaves tx alone
 * while rx is stopped) and all of them by the end if both run then; at the
 * end every channel is released.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/event.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/gmem.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/services.h"
#include "chanfs/virtio.h"
#include "chanfs/vq.h"
#include "chanfs/vsock.h"
#include "chanfs/vu.h"

#define CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "fuzz_vsock: %s:%d: check failed: %s\n", \
		        __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

#define QSZ     16
#define NBUF    (QSZ / 2)
#define STRIDE  0x12000ULL      /* 64 KiB + header and slack */
#define RXR     0x0000ULL
#define TXR     0x4000ULL
#define RXB     0x10000ULL
#define TXB     (RXB + NBUF * STRIDE)
#define MEM     (TXB + NBUF * STRIDE)
#define DOFF    0x100
#define HDR     44
#define CID     3
#define NCHAN   8

struct drv {
	struct vq vq;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, last_used, base;
	uint32_t buf_len[NBUF];
	bool busy[NBUF];
	bool running;
};

/* Guest memory is mapped once: per input it would dominate the run. */
struct env {
	struct gmem mem;
	uint8_t *base;
};

/* One connection's stream, by its ports: the offset of its next byte. */
struct flow {
	uint32_t src, dst;
	uint64_t next;
	bool live;
};

struct run {
	struct env *env;
	struct loop *loop;
	struct chan_set chans;
	struct vsock *v;
	const struct vu_device *dev;
	struct drv rx, tx;
	uint64_t features;
	bool rx_two, tx_two;
	struct chan *ch[NCHAN];
	/* A parked write per channel (chan_park, from park_buf) and a
	 * parked read (chan_read_waiting): the in-place paths. */
	uint8_t park_buf[NCHAN][8192];
	size_t park_len[NCHAN];
	bool waiting[NCHAN];
	bool lends;             /* a read waited: tx chains may be held */
	uint64_t wrote[NCHAN];  /* bytes of the channel's stream taken */
	int read_next[NCHAN];   /* the next byte a read must give, or -1 */
	struct flow tx_flows[32]; /* guest → host streams, by ports */
	bool tx_unchecked;      /* tx_flows was full: a payload kept as is */
	struct flow flows[32];  /* host → guest data seen, per connection */
	struct chandirs dirs;
	struct services *svc;
	struct chandir *sdir;
};

static struct env *env_get(void)
{
	static struct env *env;
	int fd;

	if (env)
		return env;
	env = calloc(1, sizeof *env);
	CHECK(env);
	gmem_init(&env->mem);
	fd = memfd_create("fuzz-vsock", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)MEM) == 0);
	CHECK(gmem_add(&env->mem, 0, MEM, 0x7f0000000000ULL, 0, fd) == 0);
	close(fd);
	env->base = gmem_gpa(&env->mem, 0, MEM);
	CHECK(env->base);
	return env;
}

static void *gp(struct run *r, uint64_t a)
{
	return r->env->base + a;
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
	return -1;
}

static void queue_start(struct run *r, unsigned q)
{
	struct drv *d = q ? &r->tx : &r->rx;

	if (d->running)
		return;
	vq_init(&d->vq, q ? "vsock q1" : "vsock q0");
	CHECK(vq_start(&d->vq, &r->env->mem, QSZ, d->desc, d->avail, d->used,
	               d->base, r->features) == 0);
	d->running = true;
	r->dev->queue_started(r->v, q, &d->vq);
	r->dev->queue_kicked(r->v, q, &d->vq);
}

static void queue_stop(struct run *r, unsigned q)
{
	struct drv *d = q ? &r->tx : &r->rx;

	if (!d->running)
		return;
	r->dev->queue_stopped(r->v, q, &d->vq);
	vq_flush(&d->vq);
	d->base = vq_stop(&d->vq);
	d->running = false;
}

/* The driver takes every used tx buffer: sent, nothing written. */
static void tx_take(struct run *r)
{
	struct drv *d = &r->tx;

	while (d->last_used != le16toh(__atomic_load_n(&d->used->idx,
	                                               __ATOMIC_ACQUIRE))) {
		struct vring_used_elem *u = &d->used->ring[d->last_used % QSZ];
		uint32_t id = le32toh(u->id);

		CHECK(le32toh(u->len) == 0);
		CHECK(id % 2 == 0 && id / 2 < NBUF);
		CHECK(d->busy[id / 2]);
		d->busy[id / 2] = false;
		d->last_used++;
	}
}

static void settle(struct run *r)
{
	int i;

	for (i = 0; i < 4; i++)
		loop_turn(r->loop, false);
	tx_take(r);
}

/* Once both rings run and the loop has turned, every tx buffer the
 * driver posted has been handled (none is kept, none is lost). */
static void check_tx_done(struct run *r)
{
	int k;

	if (!r->rx.running || !r->tx.running)
		return;
	for (k = 0; k < NBUF; k++)
		CHECK(!r->tx.busy[k]);
}

/* Byte o of every channel's stream, either way. */
static uint8_t stream_byte(uint64_t o)
{
	return (uint8_t)(o % 251);
}

/* The flow of ports (src, dst) in table t: found, or a free one made
 * (starting at 0), or NULL when t is full. */
static struct flow *flow_of(struct flow *t, uint32_t src, uint32_t dst,
                            bool make)
{
	struct flow *free_f = NULL;
	unsigned i;

	for (i = 0; i < 32; i++) {
		if (t[i].live && t[i].src == src && t[i].dst == dst)
			return &t[i];
		if (!t[i].live && !free_f)
			free_f = &t[i];
	}
	if (make && free_f)
		*free_f = (struct flow){ .src = src, .dst = dst, .live = true };
	return make ? free_f : NULL;
}

/* A packet to the guest: a REQUEST or RESPONSE starts its connection's
 * stream, data continues it (a connection first seen with data, as after
 * the rings restarted, starts where that data does). */
static void flow_seen(struct run *r, const struct virtio_vsock_hdr *h,
                      const uint8_t *data)
{
	uint32_t src = le32toh(h->src_port), dst = le32toh(h->dst_port);
	uint32_t len = le32toh(h->len), j;
	uint16_t op = le16toh(h->op);
	struct flow *f = flow_of(r->flows, src, dst, false);

	if (op == VIRTIO_VSOCK_OP_REQUEST || op == VIRTIO_VSOCK_OP_RESPONSE) {
		if ((f = flow_of(r->flows, src, dst, true)))
			f->next = 0;
		return;
	}
	if (op == VIRTIO_VSOCK_OP_RST) {
		if (f)
			f->live = false;
		return;
	}
	if (op != VIRTIO_VSOCK_OP_RW || len == 0)
		return;
	if (!f) {
		if (!(f = flow_of(r->flows, src, dst, true)))
			return;
		f->next = data[0];
	}
	for (j = 0; j < len; j++)
		CHECK(data[j] == stream_byte(f->next + j));
	f->next += len;
}

/* The driver takes every used rx buffer, checking what the device wrote. */
static void rx_take(struct run *r)
{
	struct drv *d = &r->rx;

	while (d->last_used != le16toh(__atomic_load_n(&d->used->idx,
	                                               __ATOMIC_ACQUIRE))) {
		struct vring_used_elem *u = &d->used->ring[d->last_used % QSZ];
		uint32_t id = le32toh(u->id), len = le32toh(u->len), k;
		struct virtio_vsock_hdr h;
		uint16_t op;

		CHECK(id % 2 == 0 && id / 2 < NBUF);
		k = id / 2;
		CHECK(d->busy[k]);
		d->busy[k] = false;
		d->last_used++;
		CHECK(len <= d->buf_len[k]);
		if (len == 0)
			continue;	/* a buffer the device could not use */
		CHECK(len >= HDR);
		memcpy(&h, gp(r, RXB + k * STRIDE), HDR);
		op = le16toh(h.op);
		CHECK(le64toh(h.src_cid) == 2);
		CHECK(le64toh(h.dst_cid) == CID);
		CHECK(le16toh(h.type) == VIRTIO_VSOCK_TYPE_STREAM);
		CHECK(op >= VIRTIO_VSOCK_OP_REQUEST &&
		      op <= VIRTIO_VSOCK_OP_CREDIT_REQUEST);
		CHECK(len == HDR + le32toh(h.len));
		CHECK(op == VIRTIO_VSOCK_OP_RW || le32toh(h.len) == 0);
		flow_seen(r, &h, gp(r, RXB + k * STRIDE +
		                    (r->rx_two ? DOFF : HDR)));
	}
}

static void rx_post(struct run *r, uint8_t arg)
{
	struct drv *d = &r->rx;
	unsigned n = (arg & 7) + 1, i;
	uint32_t data = 1u << ((arg >> 3) & 15);

	if (data > 65536)
		data = 65536;
	for (i = 0; i < n; i++) {
		int k = free_slot(d);
		uint64_t base;

		if (k < 0)
			break;
		base = RXB + (uint64_t)k * STRIDE;
		if (r->rx_two) {
			set_desc(d, 2 * k, base, HDR,
			         VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
			         2 * k + 1);
			set_desc(d, 2 * k + 1, base + DOFF, data,
			         VRING_DESC_F_WRITE, 0);
			d->buf_len[k] = HDR + data;
		} else {
			/* Any size, even too small for a header. */
			set_desc(d, 2 * k, base, data, VRING_DESC_F_WRITE, 0);
			d->buf_len[k] = data;
		}
		d->busy[k] = true;
		publish(d, 2 * k);
	}
	if (d->running)
		r->dev->queue_kicked(r->v, 0, &d->vq);
}

/* A packet the guest sends (n >= HDR bytes at p): a REQUEST starts its
 * ports' stream, a data packet's payload becomes the next of it. */
static void tx_stream(struct run *r, uint8_t *p, uint32_t n)
{
	struct virtio_vsock_hdr h;
	struct flow *f;
	uint32_t len, j;

	memcpy(&h, p, HDR);
	len = le32toh(h.len);
	if (le32toh(h.dst_port) == 5001)
		return;         /* the services port: see above */
	if (le16toh(h.op) == VIRTIO_VSOCK_OP_REQUEST) {
		f = flow_of(r->tx_flows, le32toh(h.src_port),
		            le32toh(h.dst_port), true);
		if (f)
			f->next = 0;
		else
			r->tx_unchecked = true;
		return;
	}
	if (le16toh(h.op) != VIRTIO_VSOCK_OP_RW || len > n - HDR)
		return;
	f = flow_of(r->tx_flows, le32toh(h.src_port), le32toh(h.dst_port),
	            true);
	if (!f) {
		r->tx_unchecked = true;
		return;
	}
	for (j = 0; j < len; j++)
		p[HDR + j] = stream_byte(f->next + j);
	f->next += len;
}

/* The host read bytes [p, p + n) of channel i: the next of its stream. */
static void host_got(struct run *r, unsigned i, const uint8_t *p, size_t n)
{
	size_t j;

	if (i % 4 == 1 || n == 0 || r->tx_unchecked)
		return;         /* a service's: not rewritten */
	if (r->read_next[i] < 0)
		r->read_next[i] = p[0];
	for (j = 0; j < n; j++) {
		CHECK(p[j] == r->read_next[i]);
		r->read_next[i] = (r->read_next[i] + 1) % 251;
	}
}

static void tx_send(struct run *r, const uint8_t *pkt, uint32_t n, bool fix)
{
	struct drv *d = &r->tx;
	int k = free_slot(d);
	uint64_t base;
	uint8_t *p;

	if (k < 0 || !d->running)
		return;
	base = TXB + (uint64_t)k * STRIDE;
	p = gp(r, base);
	memcpy(p, pkt, n);
	if (fix && n >= HDR) {
		struct virtio_vsock_hdr h;

		memcpy(&h, p, HDR);
		h.src_cid = htole64(CID);
		h.dst_cid = htole64(2);
		h.type = htole16(VIRTIO_VSOCK_TYPE_STREAM);
		if (le32toh(h.len) > n - HDR)
			h.len = htole32(n - HDR);
		memcpy(p, &h, HDR);
	}
	if (n >= HDR)
		tx_stream(r, p, n);
	if (r->tx_two && n > HDR) {
		/* The header alone, then the payload elsewhere. */
		memmove(p + DOFF, p + HDR, n - HDR);
		set_desc(d, 2 * k, base, HDR, VRING_DESC_F_NEXT, 2 * k + 1);
		set_desc(d, 2 * k + 1, base + DOFF, n - HDR, 0, 0);
	} else {
		set_desc(d, 2 * k, base, n, 0, 0);
	}
	d->busy[k] = true;
	publish(d, 2 * k);
	r->dev->queue_kicked(r->v, 1, &d->vq);
	tx_take(r);
	/* The device handles tx synchronously while both rings run; with
	 * the rx ring stopped it leaves tx alone (a REQUEST's RESPONSE has
	 * nowhere to go) until the rx ring starts again. */
	if (r->rx.running && !r->lends)
		CHECK(!d->busy[k]);
}

/* A write as fs/ makes it when the window is full: parked, read in place
 * by the device; the next write (or the close) takes it back and copies
 * what the device did not take into the window. */
static void host_write(struct run *r, unsigned i, size_t len, bool park)
{
	struct chan *c = r->ch[i];
	size_t took, k;
	ssize_t n;

	if (r->park_len[i]) {
		CHECK(chan_park_rest(c) <= r->park_len[i]);
		took = chan_unpark(c);
		CHECK(took <= r->park_len[i]);
		r->wrote[i] += took;
		n = took < r->park_len[i] ?
		    chan_write(c, r->park_buf[i] + took, r->park_len[i] - took) :
		    0;
		if (n > 0)
			r->wrote[i] += (size_t)n;
		r->park_len[i] = 0;
		return;
	}
	if (len > sizeof(r->park_buf[i]))
		len = sizeof(r->park_buf[i]);
	for (k = 0; k < len; k++)
		r->park_buf[i][k] = stream_byte(r->wrote[i] + k);
	if (park) {
		if (chan_park(c, r->park_buf[i], len) == 0)
			r->park_len[i] = len;
	} else if ((n = chan_write(c, r->park_buf[i], len)) > 0) {
		r->wrote[i] += (size_t)n;
	}
}

/* A read as fs/ makes it when nothing is there: it waits (the device may
 * lend guest TX buffers to it), then takes what chan_peekv describes,
 * touching every byte (guest memory while lent), and consumes part. */
static void host_read_parked(struct run *r, unsigned i, size_t max)
{
	struct chan *c = r->ch[i];
	struct iovec iov[CHAN_PEEK_MAX];
	size_t total = 0, use, k;
	int n, j;

	if (!r->waiting[i]) {
		chan_read_waiting(c, true);
		r->waiting[i] = r->lends = true;
		return;
	}
	n = chan_peekv(c, iov, CHAN_PEEK_MAX, max);
	for (j = 0; j < n; j++)
		total += iov[j].iov_len;
	CHECK(total <= max);
	/* What is consumed must continue the stream; the rest is read
	 * again next time. */
	use = total - total / 4;
	for (j = 0; j < n && use; j++) {
		k = iov[j].iov_len < use ? iov[j].iov_len : use;
		host_got(r, i, iov[j].iov_base, k);
		use -= k;
	}
	if (n > 0)
		chan_consume(c, total - total / 4);
	chan_read_waiting(c, false);
	r->waiting[i] = false;
}

/* The host side lets go of channel i as fs/ does at release. */
static void host_close(struct run *r, unsigned i)
{
	if (r->park_len[i])
		host_write(r, i, 0, false);
	if (r->waiting[i])
		chan_read_waiting(r->ch[i], false);
	r->waiting[i] = false;
	chan_close(r->ch[i]);
	r->ch[i] = NULL;
}

/* Slot i is about to get a new channel: its streams start over. */
static void new_chan(struct run *r, unsigned i)
{
	r->wrote[i] = 0;
	r->read_next[i] = -1;
}

static void host(struct run *r, uint8_t arg)
{
	static const uint32_t ports[4] = { 5000, 5001, 1024, 0xffffffffu };
	unsigned i = (arg >> 3) % NCHAN;
	struct chan **c = &r->ch[i];
	uint8_t buf[8192];
	ssize_t got;
	FILE *null;

	switch (arg & 7) {
	case 0:
		vsock_listen(r->v, ports[i % 4]);
		break;
	case 1:
		if (!*c)
			new_chan(r, i);
		if (!*c && (i % 4 == 1 ?
		            r->sdir->ops->open(r->sdir->ctx, "a", c) :
		            vsock_accept(r->v, ports[i % 4], c)) < 0)
			*c = NULL;
		break;
	case 2:
		/* Bit 7: park the write instead of copying it. */
		if (*c)
			host_write(r, i, (size_t)(arg >> 3) * 97 + 1, arg & 0x80);
		break;
	case 3:
		/* Bit 7: a read that waits, then reads in place. */
		if (*c && (arg & 0x80))
			host_read_parked(r, i, (size_t)(arg >> 3) * 331 + 1);
		else if (*c && (got = chan_read(*c, buf,
		                                (size_t)(arg >> 3) * 131 + 1)) > 0)
			host_got(r, i, buf, (size_t)got);
		break;
	case 4:
		if (*c)
			chan_shutdown(*c);
		break;
	case 5:
		host_close(r, i);
		break;
	case 6:
		if (!*c)
			new_chan(r, i);
		if (!*c && vsock_connect(r->v, ports[i % 4], c) < 0)
			*c = NULL;
		break;
	case 7:
		null = fopen("/dev/null", "w");
		if (null) {
			vsock_status(r->v, null);
			r->sdir->ops->status(r->sdir->ctx, null);
			fclose(null);
		}
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vsock_config cfg = {
		.guest_cid = CID,
		.buf_size = 4096,
		.connect_timeout_ms = 60000,
		.close_timeout_ms = 60000,
		.backlog = 2,
	};
	struct run r;
	size_t pos = 1;
	unsigned i;

	if (size < 1)
		return 0;
	memset(&r, 0, sizeof r);
	r.env = env_get();
	r.rx_two = data[0] & 1;
	r.tx_two = data[0] & 2;
	r.features = (data[0] & 4) ? VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) : 0;
	memset(r.env->base, 0, 0x8000);
	r.rx.desc = gp(&r, RXR);
	r.rx.avail = gp(&r, RXR + 0x1000);
	r.rx.used = gp(&r, RXR + 0x2000);
	r.tx.desc = gp(&r, TXR);
	r.tx.avail = gp(&r, TXR + 0x1000);
	r.tx.used = gp(&r, TXR + 0x2000);
	r.loop = loop_new();
	CHECK(r.loop);
	chan_set_init(&r.chans);
	r.v = vsock_new(r.loop, &cfg, &r.chans);
	CHECK(r.v);
	chandirs_init(&r.dirs);
	r.svc = services_new(r.loop, r.v, &r.dirs, &(struct services_config){
		.port = 5001, .accept_timeout_ms = 60000, .backlog = 2 });
	CHECK(r.svc);
	r.sdir = chandir_find(&r.dirs, "services");
	CHECK(r.sdir);
	r.dev = vsock_vu_device();
	queue_start(&r, 0);
	queue_start(&r, 1);

	while (pos < size) {
		uint8_t rec = data[pos++];
		uint32_t n;

		switch (rec & 7) {
		case 0:
		case 7:
			if (size - pos < 2)
				goto out;
			n = data[pos] | (uint32_t)data[pos + 1] << 8;
			pos += 2;
			if (n > size - pos)
				n = (uint32_t)(size - pos);
			tx_send(&r, data + pos, n, (rec & 7) == 7);
			pos += n;
			break;
		case 1:
			if (pos >= size)
				goto out;
			rx_post(&r, data[pos++]);
			break;
		case 2:
			if (pos >= size)
				goto out;
			host(&r, data[pos++]);
			break;
		case 3:
			settle(&r);
			break;
		case 4:
			settle(&r);
			rx_take(&r);
			break;
		case 5:
			if (pos >= size)
				goto out;
			if (data[pos] & 2)
				queue_start(&r, data[pos] & 1);
			else
				queue_stop(&r, data[pos] & 1);
			pos++;
			break;
		case 6:
			queue_stop(&r, 0);
			queue_stop(&r, 1);
			r.dev->reset(r.v);
			queue_start(&r, 0);
			queue_start(&r, 1);
			break;
		}
	}
out:
	settle(&r);
	rx_take(&r);
	check_tx_done(&r);
	for (i = 0; i < NCHAN; i++)
		host_close(&r, i);
	settle(&r);
	services_free(r.svc);
	queue_stop(&r, 0);
	queue_stop(&r, 1);
	vsock_free(r.v);
	CHECK(r.chans.count == 0);
	loop_free(r.loop);
	return 0;
}
