/*
 * vq against hostile descriptor tables: each must break the queue with one
 * log line, map nothing outside guest memory, and leave another queue on
 * the same memory working (vq_fixture.h).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
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

#include "vq_fixture.h"

/* ---- hostile tables ----------------------------------------------------- */

static void vq_breaks_on_a_descriptor_loop(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(r->desc, 0, DATA, 16, R | N, 1);
	set_desc(r->desc, 1, DATA, 16, R | N, 2);
	set_desc(r->desc, 2, DATA, 16, R | N, 0);
	post(r, 0);
	pop_breaks(f, "loops");
}

static void vq_breaks_on_a_loop_of_zero_length_descriptors(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(r->desc, 6, 0, 0, W | N, 6);
	post(r, 6);
	pop_breaks(f, "descriptor 6: chain loops");
}

static void vq_breaks_on_a_loop_inside_an_indirect_table(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vring_desc *t = table_at(f, IND, 4);

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(t, 0, DATA, 16, R | N, 3);
	set_desc(t, 3, DATA, 16, R | N, 0);
	set_desc(r->desc, 0, IND, 4 * 16, I, 0);
	post(r, 0);
	pop_breaks(f, "indirect descriptor 3: chain loops");
}

static void vq_breaks_on_an_indirect_table_inside_an_indirect_table(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vring_desc *t = table_at(f, IND, 2);

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(t, 0, DATA, 16, R | N, 1);
	set_desc(t, 1, IND, 2 * 16, I, 0);
	set_desc(r->desc, 0, IND, 2 * 16, I, 0);
	post(r, 0);
	pop_breaks(f, "indirect descriptor 1 points to another indirect");
}

static void vq_breaks_on_next_out_of_range(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(r->desc, 2, DATA, 16, R | N, 8);
	post(r, 2);
	pop_breaks(f, "descriptor 2: next 8 out of range");
}

static void vq_breaks_on_next_out_of_range_in_an_indirect_table(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vring_desc *t = table_at(f, IND, 2);

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(t, 0, DATA, 16, R | N, 1);
	set_desc(t, 1, DATA, 16, R | N, 2); /* table has 2 entries */
	set_desc(r->desc, 0, IND, 2 * 16, I, 0);
	post(r, 0);
	pop_breaks(f, "indirect descriptor 1: next 2 out of range");
}

static void vq_breaks_on_a_head_out_of_range(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	post(r, 8);
	pop_breaks(f, "head 8 out of range");
}

static void vq_breaks_on_lengths_overflowing_32_bits(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	uint64_t big = 1ULL << 32;
	int fd = memfd_create("vq-big", MFD_CLOEXEC);

	/* A sparse 4 GiB + 4 KiB region, so every address is valid and
	 * only the sum is wrong. */
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)(big + 4096)), 0);
	assert_int_equal(gmem_add(&f->mem, big, big + 4096, 0x7e0000000000,
	                          0, fd), 0);
	close(fd);
	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(r->desc, 0, big, UINT32_MAX, R | N, 1);
	set_desc(r->desc, 1, big, 1, W, 0);
	post(r, 0);
	pop_breaks(f, "descriptor 1: len 1 makes the chain longer than 4 GiB");
}

static void vq_breaks_on_an_address_outside_guest_memory(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(r->desc, 0, DATA, 16, R | N, 1);
	set_desc(r->desc, 1, MEM_END - 8, 16, W, 0);
	post(r, 0);
	pop_breaks(f, "descriptor 1: 0x1fff8+16 outside guest memory");
}

static void vq_breaks_on_an_address_range_that_wraps(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(r->desc, 0, UINT64_MAX - 7, 16, W, 0);
	post(r, 0);
	pop_breaks(f, "0xfffffffffffffff8+16 outside guest memory");
}

static void vq_breaks_when_avail_idx_moves_by_more_than_the_queue_size(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	post_writable(r, 0, 16);
	assert_int_equal(vq_pop(&r->vq, f->e[1]), 1);
	r->avail->idx = htole16(1 + 9);
	pop_breaks(f, "avail index moved from 1 to 10 (queue size 8)");
}

static void vq_breaks_on_indirect_with_next(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vring_desc *t = table_at(f, IND, 1);

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(t, 0, DATA, 16, W, 0);
	set_desc(r->desc, 0, IND, 16, I | N, 1);
	set_desc(r->desc, 1, DATA, 16, W, 0);
	post(r, 0);
	pop_breaks(f, "descriptor 0 has both INDIRECT and NEXT");
}

static void vq_breaks_on_indirect_when_not_negotiated(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vring_desc *t = table_at(f, IND, 1);

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(t, 0, DATA, 16, W, 0);
	set_desc(r->desc, 0, IND, 16, I, 0);
	post(r, 0);
	pop_breaks(f, "not negotiated");
}

static void vq_breaks_on_an_indirect_table_not_a_multiple_of_16(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(r->desc, 0, IND, 24, I, 0);
	post(r, 0);
	pop_breaks(f, "indirect table length 24");
}

static void vq_breaks_on_an_empty_indirect_table(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(r->desc, 0, IND, 0, I, 0);
	post(r, 0);
	pop_breaks(f, "indirect table length 0");
}

static void vq_breaks_on_an_indirect_table_outside_guest_memory(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(r->desc, 0, MEM_END - 16, 32, I, 0);
	post(r, 0);
	pop_breaks(f, "indirect table 0x1fff0+32 outside guest memory");
}

static void vq_breaks_on_an_oversized_indirect_table(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(r->desc, 0, 0, (VQ_MAX_SIZE + 1) * 16, I, 0);
	post(r, 0);
	pop_breaks(f, "exceeds");
}

static void vq_breaks_on_a_readable_descriptor_after_a_writable_one(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(r->desc, 0, DATA, 16, W | N, 1);
	set_desc(r->desc, 1, DATA, 16, R, 0);
	post(r, 0);
	pop_breaks(f, "descriptor 1 is device-readable after");
}

static void vq_breaks_on_a_chain_longer_than_elem_max_iov(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	uint16_t k;

	ring_start(f, r, "rx", RING1, 512, 0, 0);
	for (k = 0; k < VQ_ELEM_MAX_IOV; k++)
		set_desc(r->desc, k, DATA + k, 1, W | N, k + 1);
	set_desc(r->desc, VQ_ELEM_MAX_IOV, DATA, 1, W, 0);
	post(r, 0);
	pop_breaks(f, "more than 256 iovecs at descriptor 256");
}

static void vq_breaks_on_an_indirect_chain_longer_than_elem_max_iov(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	/* 256 buffers of two pieces each (across the region edge) need 512
	 * iovecs: the limit is on iovecs, not descriptors. */
	struct vring_desc *t = table_at(f, IND, 200);
	uint16_t k;

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	for (k = 0; k < 200; k++)
		set_desc(t, k, REGION - 1, 2, W | N, k + 1);
	set_desc(t, 199, REGION - 1, 2, W, 0);
	set_desc(r->desc, 0, IND, 200 * 16, I, 0);
	post(r, 0);
	pop_breaks(f, "at indirect descriptor 128");
}

static void vq_broken_queue_completes_nothing(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	post_writable(r, 0, 16);
	assert_int_equal(vq_pop(&r->vq, f->e[1]), 1);
	post(r, 9);
	pop_breaks(f, "head 9 out of range");
	assert_int_equal(vq_push(&r->vq, f->e[1], 16), -EIO);
	assert_false(vq_flush(&f->r.vq));
	assert_int_equal(used_idx(r), 0);
	assert_int_equal(used_id(r, 0), UNUSED_MARK);
}

/* Random tables: every pop either maps only guest memory, with lengths
 * that add up, or breaks the queue. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t rnd_addr(uint64_t *s)
{
	switch (rnd(s) % 6) {
	case 0: return DATA + rnd(s) % 0x4000;
	case 1: return REGION - rnd(s) % 64;
	case 2: return IND + 16 * (rnd(s) % 8);
	case 3: return MEM_END - rnd(s) % 64;
	case 4: return UINT64_MAX - rnd(s) % 64;
	default: return rnd(s);
	}
}

static uint32_t rnd_len(uint64_t *s)
{
	switch (rnd(s) % 5) {
	case 0: return 0;
	case 1: return 1 + rnd(s) % 64;
	case 2: return 16 * (uint32_t)(rnd(s) % 10);
	case 3: return (uint32_t)rnd(s);
	default: return 1 + rnd(s) % 0x2000;
	}
}

static bool inside_guest(const struct gmem *m, const struct iovec *v)
{
	unsigned i;

	for (i = 0; i < m->n; i++) {
		const uint8_t *b = v->iov_base;

		if (b >= m->r[i].host && v->iov_len <= m->r[i].size &&
		    b - m->r[i].host <= (ptrdiff_t)(m->r[i].size - v->iov_len))
			return true;
	}
	return false;
}

static void vq_random_tables_map_only_guest_memory_or_break(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vring_desc *t = table_at(f, IND, 8);
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	unsigned iter, popped = 0, broken = 0;
	int quiet = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int saved = dup(2);

	assert_true(quiet >= 0 && saved >= 0);
	dup2(quiet, 2);
	for (iter = 0; iter < 3000; iter++) {
		uint16_t k, start = (uint16_t)rnd(&s);
		int rc;

		ring_start(f, r, "rx", RING1, 8, rnd(&s) & 1 ? F_INDIRECT : 0,
		           start);
		for (k = 0; k < 8; k++) {
			set_desc(r->desc, k, rnd_addr(&s), rnd_len(&s),
			         rnd(&s) % 8, rnd(&s) % 10);
			set_desc(t, k, rnd_addr(&s), rnd_len(&s),
			         rnd(&s) % 8, rnd(&s) % 10);
		}
		/* Mostly sane chains: the flags bias NEXT off sometimes. */
		for (k = 0; k < 8; k++)
			if (rnd(&s) % 3 == 0)
				r->desc[k].flags &= htole16(~N);
		for (k = 0; k < 8; k++)
			r->avail->ring[k] = htole16(rnd(&s) % 10);
		r->avail->idx = htole16(start + rnd(&s) % 10);
		while ((rc = vq_pop(&r->vq, f->e[0])) == 1) {
			struct vq_elem *e = f->e[0];
			uint64_t out = 0, in = 0;
			unsigned j;

			assert_true(e->out_num + e->in_num <= VQ_ELEM_MAX_IOV);
			for (j = 0; j < e->out_num + e->in_num; j++) {
				assert_true(inside_guest(&f->mem, &e->iov[j]));
				*(j < e->out_num ? &out : &in) +=
					e->iov[j].iov_len;
			}
			assert_int_equal(out, e->out_len);
			assert_int_equal(in, e->in_len);
			assert_int_equal(vq_push(&r->vq, e, (uint32_t)rnd(&s)),
			                 0);
			popped++;
		}
		vq_flush(&r->vq);
		if (rc < 0)
			broken++;
	}
	dup2(saved, 2);
	close(saved);
	close(quiet);
	/* Both outcomes must have been exercised. */
	assert_true(popped > 100);
	assert_true(broken > 100);
	assert_other_queue_works(f);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(vq_breaks_on_a_descriptor_loop),
		T(vq_breaks_on_a_loop_of_zero_length_descriptors),
		T(vq_breaks_on_a_loop_inside_an_indirect_table),
		T(vq_breaks_on_an_indirect_table_inside_an_indirect_table),
		T(vq_breaks_on_next_out_of_range),
		T(vq_breaks_on_next_out_of_range_in_an_indirect_table),
		T(vq_breaks_on_a_head_out_of_range),
		T(vq_breaks_on_lengths_overflowing_32_bits),
		T(vq_breaks_on_an_address_outside_guest_memory),
		T(vq_breaks_on_an_address_range_that_wraps),
		T(vq_breaks_when_avail_idx_moves_by_more_than_the_queue_size),
		T(vq_breaks_on_indirect_with_next),
		T(vq_breaks_on_indirect_when_not_negotiated),
		T(vq_breaks_on_an_indirect_table_not_a_multiple_of_16),
		T(vq_breaks_on_an_empty_indirect_table),
		T(vq_breaks_on_an_indirect_table_outside_guest_memory),
		T(vq_breaks_on_an_oversized_indirect_table),
		T(vq_breaks_on_a_readable_descriptor_after_a_writable_one),
		T(vq_breaks_on_a_chain_longer_than_elem_max_iov),
		T(vq_breaks_on_an_indirect_chain_longer_than_elem_max_iov),
		T(vq_broken_queue_completes_nothing),
		T(vq_random_tables_map_only_guest_memory_or_break),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
