/*
 * fuzz_vq — the descriptor walker and used-ring writer against a hostile
 * driver.  The input is laid out as guest memory (see fuzz_vq.h); a device
 * script then pops, completes, flushes and restarts until the ring is
 * empty or broken.  Whatever the input, every mapped iovec must lie in
 * guest memory, lengths must add up, a broken queue must stay dead, and a
 * healthy one must end with every popped chain in the used ring.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/virtio_ring.h>

#include "chanfs/gmem.h"
#include "chanfs/virtio.h"
#include "chanfs/vq.h"
#include "fuzz_vq.h"

#define POOL 8          /* chains the device holds at once */
#define TOUCH 64        /* bytes the device reads/writes per iovec */

#define CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "fuzz_vq: %s:%d: check failed: %s\n", \
		        __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

/* Set up once and reused by every input: mapping memory per input would
 * dominate the run time. */
struct env {
	struct gmem mem;
	int call;
	struct vq_elem *pool; /* POOL elements */
};

struct run {
	struct env *env;
	struct vq vq;
	uint16_t num;
	uint64_t features;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint32_t rng;
	bool held[POOL];
	unsigned nheld;
	bool aliased; /* a writable buffer overlapped the used ring */
};

static void env_region(struct env *env, uint64_t gpa, uint64_t size,
                       uint64_t uva)
{
	int fd = memfd_create("fuzz-vq", MFD_CLOEXEC);

	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)size) == 0);
	CHECK(gmem_add(&env->mem, gpa, size, uva, 0, fd) == 0);
	close(fd);
}

static struct env *env_get(void)
{
	static struct env *env;

	if (env)
		return env;
	env = calloc(1, sizeof *env);
	CHECK(env);
	gmem_init(&env->mem);
	env_region(env, 0, FUZZ_VQ_REGION, 0x100000000000ULL);
	env_region(env, FUZZ_VQ_REGION, FUZZ_VQ_REGION, 0x200000000000ULL);
	env_region(env, FUZZ_VQ_BIG, FUZZ_VQ_BIG_SIZE, 0x300000000000ULL);
	env->call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(env->call >= 0);
	env->pool = calloc(POOL, sizeof *env->pool);
	CHECK(env->pool);
	return env;
}

static uint32_t rnd(struct run *r)
{
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 17;
	r->rng ^= r->rng << 5;
	return r->rng;
}

/* Which region holds iov wholly, or -1. */
static int region_of(const struct gmem *m, const struct iovec *v)
{
	unsigned i;

	for (i = 0; i < m->n; i++) {
		const uint8_t *b = v->iov_base;
		const struct gmem_region *g = &m->r[i];

		if (b >= g->host && v->iov_len <= g->size &&
		    (uint64_t)(b - g->host) <= g->size - v->iov_len)
			return (int)i;
	}
	return -1;
}

static bool overlaps(const void *a, size_t alen, const void *b, size_t blen)
{
	const uint8_t *x = a, *y = b;

	return x < y + blen && y < x + alen;
}

/* The device's view of a popped chain: check it, read a little of what is
 * readable.  The sparse region is never touched (it would fill up). */
static void check_elem(struct run *r, const struct vq_elem *e)
{
	const struct gmem *m = &r->env->mem;
	uint64_t out = 0, in = 0;
	volatile uint8_t sink = 0;
	unsigned j;

	CHECK(e->id < r->num);
	CHECK(e->out_num + e->in_num <= VQ_ELEM_MAX_IOV);
	for (j = 0; j < e->out_num + e->in_num; j++) {
		int reg = region_of(m, &e->iov[j]);

		CHECK(reg >= 0);
		CHECK(e->iov[j].iov_len > 0);
		if (j < e->out_num) {
			out += e->iov[j].iov_len;
			if (m->r[reg].gpa != FUZZ_VQ_BIG)
				sink ^= *(const uint8_t *)e->iov[j].iov_base;
		} else {
			in += e->iov[j].iov_len;
		}
	}
	CHECK(out == e->out_len);
	CHECK(in == e->in_len);
	(void)sink;
}

/* Write up to len bytes into the writable part, as an RX fill would. */
static void fill_elem(struct run *r, const struct vq_elem *e, uint32_t len)
{
	const struct gmem *m = &r->env->mem;
	size_t used_len = FUZZ_VQ_USED_SIZE(r->num) + 2;
	unsigned j;

	for (j = e->out_num; j < e->out_num + e->in_num && len > 0; j++) {
		size_t n = e->iov[j].iov_len < len ? e->iov[j].iov_len : len;
		int reg = region_of(m, &e->iov[j]);

		len -= (uint32_t)n;
		if (reg < 0 || m->r[reg].gpa == FUZZ_VQ_BIG)
			continue;
		if (n > TOUCH)
			n = TOUCH;
		if (overlaps(e->iov[j].iov_base, n, r->used, used_len))
			r->aliased = true;
		memset(e->iov[j].iov_base, 0xa5, n);
	}
}

static void dead_queue_stays_dead(struct run *r)
{
	struct vq_elem *spare = &r->env->pool[0];
	unsigned k;

	CHECK(r->vq.broken);
	CHECK(vq_pop(&r->vq, spare) == -EIO);
	CHECK(!vq_has_avail(&r->vq));
	CHECK(!vq_flush(&r->vq));
	CHECK(!vq_enable_notify(&r->vq));
	for (k = 0; k < POOL; k++)
		if (r->held[k])
			CHECK(vq_push(&r->vq, &r->env->pool[k], 0) == -EIO);
}

static void push_one(struct run *r, unsigned k)
{
	const struct vq_elem *e = &r->env->pool[k];
	uint32_t len = e->in_len;

	/* 64-bit: in_len + 1 may be 2^32. */
	switch (rnd(r) % 4) {
	case 0:
		len = (uint32_t)(rnd(r) % ((uint64_t)e->in_len + 1));
		break;
	case 1: /* more than the buffer holds: clamped by vq_push */
		len = e->in_len + rnd(r) % 64;
		if (len < e->in_len)
			len = UINT32_MAX;
		break;
	}
	fill_elem(r, e, len < e->in_len ? len : e->in_len);
	CHECK(vq_push(&r->vq, e, len) == 0);
	r->held[k] = false;
	r->nheld--;
}

static void start(struct run *r, uint16_t base)
{
	CHECK(vq_start(&r->vq, &r->env->mem, r->num, r->desc, r->avail,
	               r->used, base, r->features) == 0);
}

static void restart(struct run *r)
{
	uint16_t base = vq_stop(&r->vq);
	unsigned k;

	/* Chains popped and not completed come back: the index returned is
	 * where the used ring stands. */
	if (!r->aliased && !r->vq.broken)
		CHECK(base == le16toh(r->used->idx));
	for (k = 0; k < POOL; k++)
		r->held[k] = false;
	r->nheld = 0;
	start(r, base);
}

/* The driver runs concurrently: it may post more, or rewrite a descriptor
 * or an avail entry between two pops.  Or the front-end restarts us. */
static void driver_acts(struct run *r)
{
	uint32_t what = rnd(r) % 16;
	uint8_t *p;

	if (what == 0) {
		restart(r);
	} else if (what == 1) {
		r->avail->idx = htole16((uint16_t)(le16toh(r->avail->idx) +
		                                   rnd(r) % 4));
	} else if (what == 2) {
		p = (uint8_t *)r->desc + rnd(r) % (16u * r->num);
		*p = (uint8_t)rnd(r);
	} else if (what == 3) {
		r->avail->ring[rnd(r) % r->num] =
			htole16((uint16_t)(rnd(r) % (r->num + 1u)));
	}
}

/* Run the device script until the ring is drained; false once broken. */
static bool round_run(struct run *r)
{
	unsigned step, k, steps = 4u * r->num + 64;
	int rc;

	for (step = 0; step < steps; step++) {
		uint32_t op = rnd(r) % 16;

		if (op < 7) {
			if (r->nheld == POOL)
				continue;
			for (k = 0; r->held[k]; k++)
				;
			rc = vq_pop(&r->vq, &r->env->pool[k]);
			if (rc < 0) {
				CHECK(rc == -EIO);
				dead_queue_stays_dead(r);
				return false;
			}
			if (rc == 1) {
				check_elem(r, &r->env->pool[k]);
				r->held[k] = true;
				r->nheld++;
			} else if (r->nheld == 0) {
				break;
			}
		} else if (op < 12) {
			if (r->nheld == 0)
				continue;
			k = rnd(r) % POOL;
			while (!r->held[k])
				k = (k + 1) % POOL;
			push_one(r, k);
		} else if (op < 14) {
			vq_flush(&r->vq);
		} else if (op == 14) {
			if (rnd(r) & 1)
				vq_disable_notify(&r->vq);
			else
				vq_enable_notify(&r->vq);
		} else {
			driver_acts(r);
		}
	}
	/* Complete everything still held: every popped chain then has its
	 * used entry. */
	for (k = 0; k < POOL; k++)
		if (r->held[k])
			push_one(r, k);
	vq_flush(&r->vq);
	CHECK(!r->vq.broken);
	/* Unless the device's own writes landed on the used ring (the
	 * driver made a buffer of it), every popped chain is now used. */
	if (!r->aliased) {
		CHECK(r->vq.used_idx == r->vq.last_avail);
		CHECK(le16toh(r->used->idx) == r->vq.used_idx);
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env *env = env_get();
	struct run r;
	uint16_t start_idx, incr;
	uint64_t sig;
	size_t img, a_len;

	if (size < FUZZ_VQ_HDR)
		return 0;
	memset(&r, 0, sizeof r);
	r.env = env;
	r.num = (uint16_t)(1u << (data[1] & 7));
	if (data[0] & FUZZ_VQ_F_INDIRECT)
		r.features |= VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT);
	if (data[0] & FUZZ_VQ_F_EVENT)
		r.features |= VBIT(VIRTIO_RING_F_EVENT_IDX_BIT);
	if (data[0] & FUZZ_VQ_F_INORDER)
		r.features |= VBIT(VIRTIO_F_IN_ORDER_BIT);
	start_idx = (uint16_t)(data[2] | data[3] << 8);
	incr = (uint16_t)(data[4] | data[5] << 8);
	r.rng = 0x9e3779b9u ^ (uint32_t)(data[6] | data[7] << 8);

	/* Lay the image over regions A and B. */
	img = size - FUZZ_VQ_HDR;
	if (img > FUZZ_VQ_MEM)
		img = FUZZ_VQ_MEM;
	a_len = img < FUZZ_VQ_REGION ? img : FUZZ_VQ_REGION;
	memset(env->mem.r[0].host, 0, FUZZ_VQ_REGION);
	memset(env->mem.r[1].host, 0, FUZZ_VQ_REGION);
	memcpy(env->mem.r[0].host, data + FUZZ_VQ_HDR, a_len);
	memcpy(env->mem.r[1].host, data + FUZZ_VQ_HDR + a_len, img - a_len);

	r.desc = gmem_gpa(&env->mem, 0, 16ULL * r.num);
	r.avail = gmem_gpa(&env->mem, FUZZ_VQ_AVAIL(r.num), 6 + 2ULL * r.num);
	r.used = gmem_gpa(&env->mem, FUZZ_VQ_USED(r.num),
	                  FUZZ_VQ_USED_SIZE(r.num) + 2);
	CHECK(r.desc && r.avail && r.used);
	/* The used index is the device's: consistent with last_avail. */
	r.used->idx = htole16(start_idx);

	vq_init(&r.vq, "fuzz");
	vq_set_call(&r.vq, env->call);
	start(&r, start_idx);
	if (round_run(&r)) {
		/* The driver offers more (re-using the same ring entries). */
		r.avail->idx = htole16((uint16_t)(le16toh(r.avail->idx) + incr));
		round_run(&r);
	}
	vq_stop(&r.vq);
	while (read(env->call, &sig, sizeof sig) == (ssize_t)sizeof sig)
		;
	return 0;
}
