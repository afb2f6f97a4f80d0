/*
 * vmm_echo.c — a guest that streams bytes through chanfs-echodev and checks
 * what comes back (see vmm_echo.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm_echo.h"

#define ECHO_TX 0
#define ECHO_RX 1
#define ECHO_MAX_SEG 3
#define ECHO_SLOTS 64

struct echo_buf {
	uint64_t seq;            /* order it was added in, per queue */
	uint64_t gpa;            /* slot memory */
	uint32_t cap;            /* slot size */
	unsigned nseg;
	struct vmm_sg sg[ECHO_MAX_SEG];
};

struct echo_dir {
	struct echo_buf *buf;
	unsigned n;
	unsigned *free;          /* stack of free slots */
	unsigned nfree;
	uint64_t seq_added, seq_done;
};

struct echo {
	struct vmm *v;
	struct vmm_echo_opts o;
	struct vmm_echo_result *res;
	uint64_t rng;
	struct echo_dir tx, rx;
};

static uint64_t echo_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint32_t echo_rand(struct echo *e, uint32_t bound)
{
	e->rng = echo_mix(e->rng);
	return (uint32_t)(e->rng >> 32) % bound;
}

/* Byte off of the stream: random access, so the checker needs no state. */
static uint8_t echo_byte(uint64_t seed, uint64_t off)
{
	return (uint8_t)(echo_mix(seed ^ (off >> 3) * 0x100000001b3ULL) >>
	                 (8 * (off & 7)));
}

static uint64_t echo_fnv(uint64_t h, const uint8_t *p, size_t n)
{
	while (n--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static int echo_fail(struct echo *e, const char *fmt, ...)
{
	va_list ap;

	if (e->res->error[0])
		return -1;
	va_start(ap, fmt);
	vsnprintf(e->res->error, sizeof(e->res->error), fmt, ap);
	va_end(ap);
	return -1;
}

static int echo_dir_init(struct echo *e, struct echo_dir *d, uint32_t cap)
{
	unsigned i;

	d->n = ECHO_SLOTS;
	d->buf = calloc(d->n, sizeof(*d->buf));
	d->free = calloc(d->n, sizeof(*d->free));
	if (!d->buf || !d->free)
		return echo_fail(e, "out of memory");
	for (i = 0; i < d->n; i++) {
		d->buf[i].cap = cap;
		d->buf[i].gpa = vmm_alloc(e->v, cap, 1);
		if (!d->buf[i].gpa)
			return echo_fail(e, "guest memory exhausted");
		d->free[d->nfree++] = d->n - 1 - i;
	}
	return 0;
}

/* Count the buffer if a segment crosses the region boundary. */
static void echo_count_straddle(struct echo *e, const struct echo_buf *b)
{
	uint64_t bd = vmm_region_boundary(e->v);
	unsigned i;

	for (i = 0; bd && i < b->nseg; i++) {
		if (b->sg[i].gpa < bd && b->sg[i].gpa + b->sg[i].len > bd) {
			e->res->straddled++;
			return;
		}
	}
}

/* Cut [gpa, gpa + len) into nseg non-empty segments at random points. */
static void echo_split(struct echo *e, struct echo_buf *b, uint32_t len,
                       unsigned nseg)
{
	uint64_t at = b->gpa;
	unsigned i;

	if (nseg > len)
		nseg = len;
	b->nseg = nseg;
	for (i = 0; i < nseg; i++) {
		uint32_t left = len - (nseg - 1 - i); /* keep 1 byte each */
		uint32_t n = i + 1 == nseg ? len : 1 + echo_rand(e, left);

		b->sg[i].gpa = at;
		b->sg[i].len = n;
		at += n;
		len -= n;
	}
}

static int echo_add_tx(struct echo *e)
{
	struct echo_dir *d = &e->tx;
	uint64_t left = e->o.bytes - e->res->sent;
	struct echo_buf *b;
	uint32_t len, i;
	uint64_t bd;
	uint8_t *p;
	int r;

	if (!left || !d->nfree)
		return 0;
	b = &d->buf[d->free[d->nfree - 1]];
	len = 1 + echo_rand(e, e->o.max_chunk);
	/* a chunk in the slot across the boundary crosses it */
	bd = vmm_region_boundary(e->v);
	if (bd > b->gpa && bd < b->gpa + b->cap && b->gpa + len <= bd)
		len = (uint32_t)(bd - b->gpa) + 1;
	if (len > left)
		len = (uint32_t)left;
	p = vmm_ptr(e->v, b->gpa, len);
	for (i = 0; i < len; i++)
		p[i] = echo_byte(e->o.seed, e->res->sent + i);
	echo_split(e, b, len, 1 + echo_rand(e, ECHO_MAX_SEG));
	r = vmm_vq_add(e->v, ECHO_TX, b->sg, b->nseg, NULL, 0, b);
	if (r == -ENOSPC)
		return 0;
	if (r < 0)
		return echo_fail(e, "tx add: %s", strerror(-r));
	d->nfree--;
	b->seq = d->seq_added++;
	echo_count_straddle(e, b);
	e->res->sum_tx = echo_fnv(e->res->sum_tx, p, len);
	e->res->sent += len;
	return 1;
}

static int echo_add_rx(struct echo *e)
{
	struct echo_dir *d = &e->rx;
	struct echo_buf *b;
	int r;

	if (!d->nfree)
		return 0;
	b = &d->buf[d->free[d->nfree - 1]];
	if (echo_rand(e, 2)) {
		/* Linux 6.1's layout: a 44-byte header, then the rest */
		b->nseg = 2;
		b->sg[0] = (struct vmm_sg){ b->gpa, 44 };
		b->sg[1] = (struct vmm_sg){ b->gpa + 44, b->cap - 44 };
	} else {
		echo_split(e, b, b->cap, 1 + echo_rand(e, 2));
	}
	r = vmm_vq_add(e->v, ECHO_RX, NULL, 0, b->sg, b->nseg, b);
	if (r == -ENOSPC)
		return 0;
	if (r < 0)
		return echo_fail(e, "rx add: %s", strerror(-r));
	d->nfree--;
	b->seq = d->seq_added++;
	echo_count_straddle(e, b);
	return 1;
}

/* Take every used tx buffer; returns how many, or -1. */
static int echo_reap_tx(struct echo *e)
{
	struct echo_dir *d = &e->tx;
	int n = 0, r;

	for (;;) {
		struct echo_buf *b;
		uint32_t len;
		void *tok;

		r = vmm_vq_get_used(e->v, ECHO_TX, &tok, &len);
		if (r < 0)
			return echo_fail(e, "tx used ring: device fault");
		if (r == 0)
			return n;
		b = tok;
		if (b->seq != d->seq_done)
			return echo_fail(e, "tx buffer %llu came back where "
			                 "%llu was due (not in add order)",
			                 (unsigned long long)b->seq,
			                 (unsigned long long)d->seq_done);
		if (len != 0)
			return echo_fail(e, "tx buffer %llu: used len %u, "
			                 "expected 0", (unsigned long long)b->seq,
			                 len);
		d->seq_done++;
		d->free[d->nfree++] = (unsigned)(b - d->buf);
		e->res->tx_bufs++;
		n++;
	}
}

static int echo_reap_rx(struct echo *e)
{
	struct echo_dir *d = &e->rx;
	int n = 0, r;

	for (;;) {
		struct echo_buf *b;
		uint32_t len, i;
		uint8_t *p;
		void *tok;

		r = vmm_vq_get_used(e->v, ECHO_RX, &tok, &len);
		if (r < 0)
			return echo_fail(e, "rx used ring: device fault");
		if (r == 0)
			return n;
		b = tok;
		if (b->seq != d->seq_done)
			return echo_fail(e, "rx buffer %llu came back where "
			                 "%llu was due (not in add order)",
			                 (unsigned long long)b->seq,
			                 (unsigned long long)d->seq_done);
		if (len > b->cap || e->res->received + len > e->res->sent)
			return echo_fail(e, "rx buffer %llu: used len %u "
			                 "(cap %u, %llu bytes unechoed)",
			                 (unsigned long long)b->seq, len, b->cap,
			                 (unsigned long long)(e->res->sent -
			                                      e->res->received));
		p = vmm_ptr(e->v, b->gpa, len);
		for (i = 0; i < len; i++)
			if (p[i] != echo_byte(e->o.seed, e->res->received + i))
				return echo_fail(e, "byte %llu differs: got "
				                 "0x%02x, sent 0x%02x",
				                 (unsigned long long)(e->res->received + i),
				                 p[i], echo_byte(e->o.seed,
				                                 e->res->received + i));
		e->res->sum_rx = echo_fnv(e->res->sum_rx, p, len);
		e->res->received += len;
		d->seq_done++;
		d->free[d->nfree++] = (unsigned)(b - d->buf);
		e->res->rx_bufs++;
		n++;
	}
}

static int64_t echo_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int echo_loop(struct echo *e)
{
	static const unsigned qs[2] = { ECHO_TX, ECHO_RX };
	int64_t last = echo_now_ms();
	int r, t;

	while (e->res->received < e->o.bytes ||
	       e->tx.seq_done < e->tx.seq_added) {
		while ((r = echo_add_rx(e)) > 0)
			;
		if (r < 0)
			return r;
		while ((r = echo_add_tx(e)) > 0)
			;
		if (r < 0)
			return r;
		vmm_vq_kick(e->v, ECHO_RX);
		vmm_vq_kick(e->v, ECHO_TX);
		t = echo_reap_tx(e);
		r = echo_reap_rx(e);
		if (t < 0 || r < 0)
			return -1;
		if (t > 0 || r > 0) {
			last = echo_now_ms();
			continue;
		}
		if (echo_now_ms() - last > e->o.stall_ms)
			return echo_fail(e, "stalled: sent %llu, received "
			                 "%llu, tx outstanding %u, rx posted %u",
			                 (unsigned long long)e->res->sent,
			                 (unsigned long long)e->res->received,
			                 vmm_vq_outstanding(e->v, ECHO_TX),
			                 vmm_vq_outstanding(e->v, ECHO_RX));
		r = vmm_wait_any(e->v, qs, 2, 1000);
		if (r < 0)
			return echo_fail(e, "waiting for used buffers: %s",
			                 strerror(-r));
	}
	if (e->res->sum_rx != e->res->sum_tx)
		return echo_fail(e, "checksums differ");
	return 0;
}

int vmm_echo_run(struct vmm *v, const struct vmm_echo_opts *opts,
                 struct vmm_echo_result *res)
{
	struct vmm_vq_stats st;
	struct echo e = { .v = v, .res = res };
	uint64_t bd, cap;
	int r;

	memset(res, 0, sizeof(*res));
	res->sum_tx = res->sum_rx = 0xcbf29ce484222325ULL;
	if (opts)
		e.o = *opts;
	if (!e.o.bytes)
		e.o.bytes = 4u << 20;
	if (!e.o.max_chunk)
		e.o.max_chunk = 64u << 10;
	if (!e.o.rx_size)
		e.o.rx_size = 16u << 10;
	if (e.o.rx_size < 64)
		e.o.rx_size = 64;
	if (!e.o.stall_ms)
		e.o.stall_ms = 60000;
	e.rng = echo_mix(e.o.seed + 1);
	/* rx buffers stay posted after a run; a second run would get them */
	if (vmm_vq_outstanding(v, ECHO_RX) || vmm_vq_outstanding(v, ECHO_TX)) {
		echo_fail(&e, "queues already have buffers outstanding");
		return -1;
	}
	/* With two regions, the first slot of one direction is centred on
	 * the boundary (slot 0 is the first one used). */
	bd = vmm_region_boundary(v);
	cap = e.o.straddle_rx ? e.o.rx_size : e.o.max_chunk;
	if (bd && vmm_alloc_mark(v) + cap / 2 < bd)
		vmm_alloc(v, bd - cap / 2 - vmm_alloc_mark(v), 1);
	if (e.o.straddle_rx) {
		r = echo_dir_init(&e, &e.rx, e.o.rx_size);
		if (r == 0)
			r = echo_dir_init(&e, &e.tx, e.o.max_chunk);
	} else {
		r = echo_dir_init(&e, &e.tx, e.o.max_chunk);
		if (r == 0)
			r = echo_dir_init(&e, &e.rx, e.o.rx_size);
	}
	if (r == 0)
		r = echo_loop(&e);
	vmm_vq_stats(v, ECHO_TX, &st);
	res->tx_entries = st.used_entries;
	res->tx_signals = st.signals;
	vmm_vq_stats(v, ECHO_RX, &st);
	res->rx_entries = st.used_entries;
	res->rx_signals = st.signals;
	/* The slots' guest memory stays allocated: rx buffers are still
	 * posted in it (their tokens are never looked at again: a second
	 * run on this vmm is refused above). */
	free(e.tx.buf);
	free(e.tx.free);
	free(e.rx.buf);
	free(e.rx.free);
	return r;
}
