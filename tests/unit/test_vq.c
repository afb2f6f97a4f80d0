/*
 * vq: well-formed chains, completion order, IN_ORDER batching,
 * notification and start/stop, against a test driver writing rings into
 * memfd-backed guest memory (vq_fixture.h).  Hostile tables are in
 * test_vq_hostile.c.
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
#include <unistd.h>

#include <cmocka.h>

#include "vq_fixture.h"

/* ---- well-formed chains ------------------------------------------------ */

static void vq_pop_maps_readable_then_writable_descriptors(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vq_elem *e = f->e[0];

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(r->desc, 5, DATA, 100, R | N, 2);
	set_desc(r->desc, 2, DATA + 100, 50, R | N, 7);
	set_desc(r->desc, 7, DATA + 0x1000, 200, W | N, 0);
	set_desc(r->desc, 0, DATA + 0x2000, 10, W, 1);
	post(r, 5);
	assert_true(vq_has_avail(&r->vq));
	assert_int_equal(vq_pop(&r->vq, e), 1);
	assert_int_equal(e->id, 5);
	assert_int_equal(e->out_num, 2);
	assert_int_equal(e->in_num, 2);
	assert_int_equal(e->out_len, 150);
	assert_int_equal(e->in_len, 210);
	assert_ptr_equal(e->iov[0].iov_base, gpa(f, DATA, 100));
	assert_int_equal(e->iov[0].iov_len, 100);
	assert_ptr_equal(e->iov[1].iov_base, gpa(f, DATA + 100, 50));
	assert_ptr_equal(e->iov[2].iov_base, gpa(f, DATA + 0x1000, 200));
	assert_int_equal(e->iov[2].iov_len, 200);
	assert_ptr_equal(e->iov[3].iov_base, gpa(f, DATA + 0x2000, 10));
	assert_false(vq_has_avail(&r->vq));
	assert_int_equal(vq_pop(&r->vq, e), 0);
}

static void vq_pop_splits_a_buffer_that_crosses_a_region_edge(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vq_elem *e = f->e[0];

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(r->desc, 0, REGION - 100, 200, W, 0);
	post(r, 0);
	assert_int_equal(vq_pop(&r->vq, e), 1);
	assert_int_equal(e->in_num, 2);
	assert_int_equal(e->in_len, 200);
	assert_ptr_equal(e->iov[0].iov_base, gpa(f, REGION - 100, 100));
	assert_int_equal(e->iov[0].iov_len, 100);
	assert_ptr_equal(e->iov[1].iov_base, gpa(f, REGION, 100));
	assert_int_equal(e->iov[1].iov_len, 100);
}

static void vq_pop_maps_zero_length_descriptors_to_no_iovec(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vq_elem *e = f->e[0];

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_desc(r->desc, 0, DATA, 0, R | N, 1);
	set_desc(r->desc, 1, MEM_END + 0x1000, 0, W | N, 2);
	set_desc(r->desc, 2, DATA, 8, W, 0);
	post(r, 0);
	assert_int_equal(vq_pop(&r->vq, e), 1);
	assert_int_equal(e->out_num, 0);
	assert_int_equal(e->in_num, 1);
	assert_int_equal(e->in_len, 8);
}

static void vq_pop_maps_an_indirect_table(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vq_elem *e = f->e[0];
	struct vring_desc *t = table_at(f, IND, 3);

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(t, 0, DATA, 44, R | N, 2);
	set_desc(t, 2, DATA + 0x100, 4096, W | N, 1);
	set_desc(t, 1, REGION + 0x100, 8, W, 0);
	set_desc(r->desc, 4, IND, 3 * 16, I, 0);
	post(r, 4);
	assert_int_equal(vq_pop(&r->vq, e), 1);
	assert_int_equal(e->id, 4);
	assert_int_equal(e->out_num, 1);
	assert_int_equal(e->in_num, 2);
	assert_int_equal(e->out_len, 44);
	assert_int_equal(e->in_len, 4104);
	assert_ptr_equal(e->iov[1].iov_base, gpa(f, DATA + 0x100, 4096));
	assert_ptr_equal(e->iov[2].iov_base, gpa(f, REGION + 0x100, 8));
}

static void vq_pop_maps_direct_descriptors_followed_by_indirect(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vq_elem *e = f->e[0];
	struct vring_desc *t = table_at(f, IND, 2);

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(r->desc, 0, DATA, 16, R | N, 1);
	set_desc(r->desc, 1, IND, 2 * 16, I, 0);
	set_desc(t, 0, DATA + 16, 16, R | N, 1);
	set_desc(t, 1, DATA + 32, 64, W, 0);
	post(r, 0);
	assert_int_equal(vq_pop(&r->vq, e), 1);
	assert_int_equal(e->out_num, 2);
	assert_int_equal(e->in_num, 1);
	assert_int_equal(e->out_len, 32);
	assert_int_equal(e->in_len, 64);
	assert_ptr_equal(e->iov[0].iov_base, gpa(f, DATA, 16));
	assert_ptr_equal(e->iov[1].iov_base, gpa(f, DATA + 16, 16));
}

static void vq_pop_reads_an_indirect_table_that_crosses_a_region_edge(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vq_elem *e = f->e[0];
	/* Entry 0 ends region A, entry 1 starts region B; entry 2 half in
	 * each. */
	uint64_t tab = REGION - 16 - 8;
	uint8_t raw[48];
	struct vring_desc d[3];

	ring_start(f, r, "rx", RING1, 8, F_INDIRECT, 0);
	set_desc(d, 0, DATA, 10, R | N, 1);
	set_desc(d, 1, DATA + 10, 20, W | N, 2);
	set_desc(d, 2, DATA + 30, 30, W, 0);
	memcpy(raw, d, sizeof raw);
	memcpy(gpa(f, tab, 24), raw, 24);
	memcpy(gpa(f, REGION, 24), raw + 24, 24);
	set_desc(r->desc, 0, tab, 48, I, 0);
	post(r, 0);
	assert_int_equal(vq_pop(&r->vq, e), 1);
	assert_int_equal(e->out_len, 10);
	assert_int_equal(e->in_len, 50);
	assert_int_equal(e->in_num, 2);
	assert_ptr_equal(e->iov[2].iov_base, gpa(f, DATA + 30, 30));
}

static void vq_pop_returns_0_while_a_queue_full_of_chains_is_outstanding(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	uint16_t k;

	ring_start(f, r, "rx", RING1, 4, 0, 0);
	for (k = 0; k < 4; k++)
		post_writable(r, k, 16);
	for (k = 0; k < 4; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	/* A driver re-offering buffers still in flight is wrong, but the
	 * index moved by no more than num: we just wait. */
	for (k = 0; k < 4; k++)
		post(r, k);
	assert_int_equal(vq_pop(&r->vq, f->e[4]), 0);
	assert_false(r->vq.broken);
	/* Nothing to pop, so nothing to report: no caller spins. */
	assert_false(vq_has_avail(&r->vq));
	assert_false(vq_enable_notify(&r->vq));
	assert_int_equal(vq_push(&r->vq, f->e[0], 16), 0);
	assert_true(vq_has_avail(&r->vq));
	assert_int_equal(vq_pop(&r->vq, f->e[4]), 1);
}

/* ---- completion order ----------------------------------------------- */

static void vq_writes_used_entries_in_pop_order_whatever_the_completion_order(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	uint16_t k;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	for (k = 0; k < 4; k++)
		post_writable(r, 3 - k, 64); /* heads 3, 2, 1, 0 */
	for (k = 0; k < 4; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);

	assert_int_equal(vq_push(&r->vq, f->e[2], 12), 0);
	assert_int_equal(used_id(r, 0), UNUSED_MARK);
	assert_int_equal(vq_push(&r->vq, f->e[0], 10), 0);
	assert_int_equal(used_id(r, 0), 3);
	assert_int_equal(used_id(r, 1), UNUSED_MARK);
	assert_int_equal(vq_push(&r->vq, f->e[3], 13), 0);
	assert_int_equal(used_id(r, 1), UNUSED_MARK);
	/* Not visible before the flush. */
	assert_int_equal(used_idx(r), 0);
	assert_int_equal(vq_push(&r->vq, f->e[1], 11), 0);
	assert_true(vq_flush(&r->vq));
	assert_int_equal(used_idx(r), 4);
	for (k = 0; k < 4; k++) {
		assert_int_equal(used_id(r, k), 3 - k);
		assert_int_equal(used_len(r, k), 10 + k);
	}
}

static void vq_push_clamps_len_to_the_writable_bytes(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	post_writable(r, 1, 64);
	assert_int_equal(vq_pop(&r->vq, f->e[0]), 1);
	assert_int_equal(vq_push(&r->vq, f->e[0], 1000), 0);
	vq_flush(&r->vq);
	assert_int_equal(used_len(r, 0), 64);
}

static void vq_push_of_an_element_twice_is_refused(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	post_writable(r, 1, 64);
	post_writable(r, 2, 64);
	assert_int_equal(vq_pop(&r->vq, f->e[0]), 1);
	assert_int_equal(vq_pop(&r->vq, f->e[1]), 1);
	assert_int_equal(vq_push(&r->vq, f->e[1], 1), 0);
	assert_int_equal(vq_push(&r->vq, f->e[1], 1), -EINVAL);
	assert_int_equal(vq_push(&r->vq, f->e[0], 1), 0);
	vq_flush(&r->vq);
	assert_int_equal(used_idx(r), 2);
	assert_false(r->vq.broken);
}

static void vq_push_of_an_element_from_before_a_restart_is_refused(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	uint16_t k;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	for (k = 0; k < 3; k++)
		post_writable(r, k, 64);
	assert_int_equal(vq_pop(&r->vq, f->e[0]), 1);
	assert_int_equal(vq_pop(&r->vq, f->e[1]), 1);
	assert_int_equal(vq_stop(&r->vq), 0);
	assert_int_equal(vq_start(&r->vq, &f->mem, 8, r->desc, r->avail,
	                          r->used, 0, 0), 0);
	/* The new run pops the same chains again, as new elements. */
	for (k = 2; k < 5; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	assert_int_equal(vq_push(&r->vq, f->e[1], 64), -EINVAL);
	assert_int_equal(vq_push(&r->vq, f->e[0], 64), -EINVAL);
	assert_int_equal(vq_flush(&r->vq), false);
	assert_int_equal(vq_push(&r->vq, f->e[2], 5), 0);
	vq_flush(&r->vq);
	assert_int_equal(used_idx(r), 1);
	assert_int_equal(used_id(r, 0), 0);
	assert_int_equal(used_len(r, 0), 5);
}

static void vq_wraps_the_16_bit_indices(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	uint16_t start = 65533, round, k, at;

	ring_start(f, r, "rx", RING1, 4, 0, start);
	at = start;
	for (round = 0; round < 3; round++) {
		for (k = 0; k < 4; k++)
			post_writable(r, k, 64);
		for (k = 0; k < 4; k++)
			assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
		assert_int_equal(vq_pop(&r->vq, f->e[4]), 0);
		for (k = 0; k < 4; k++)
			assert_int_equal(vq_push(&r->vq, f->e[3 - k], k), 0);
		assert_true(vq_flush(&r->vq));
		for (k = 0; k < 4; k++) {
			assert_int_equal(used_id(r, at + k), k);
			assert_int_equal(used_len(r, at + k), 3 - k);
		}
		at += 4;
		assert_int_equal(used_idx(r), at);
	}
	assert_int_equal(at, (uint16_t)(start + 12));
	assert_int_equal(vq_stop(&r->vq), at);
	r->started = false;
}

/* ---- IN_ORDER batching ---------------------------------------------- */

static void vq_in_order_writes_one_entry_for_a_batch_of_full_buffers(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	uint16_t k;

	ring_start(f, r, "rx", RING1, 8, F_INORDER, 0);
	for (k = 0; k < 3; k++)
		post_writable(r, k, 64);
	for (k = 0; k < 3; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	for (k = 0; k < 3; k++)
		assert_int_equal(vq_push(&r->vq, f->e[k], 64), 0);
	assert_true(vq_flush(&r->vq));
	assert_int_equal(used_idx(r), 3);
	assert_int_equal(used_id(r, 0), 2);
	assert_int_equal(used_len(r, 0), 64);
	assert_int_equal(used_id(r, 1), UNUSED_MARK);
	assert_int_equal(used_id(r, 2), UNUSED_MARK);
}

static void vq_in_order_ends_a_batch_after_a_short_buffer(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	static const uint32_t lens[5] = { 64, 10, 64, 64, 0 };
	uint16_t k;

	ring_start(f, r, "rx", RING1, 8, F_INORDER, 0);
	for (k = 0; k < 5; k++)
		post_writable(r, k, 64);
	for (k = 0; k < 5; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	/* Completed out of order: batching follows pop order. */
	for (k = 0; k < 5; k++)
		assert_int_equal(vq_push(&r->vq, f->e[4 - k], lens[4 - k]), 0);
	assert_true(vq_flush(&r->vq));
	assert_int_equal(used_idx(r), 5);
	/* Batch {0, 1} ends at the short 1; batch {2, 3, 4} at the flush
	 * (4 is short too). */
	assert_int_equal(used_id(r, 0), 1);
	assert_int_equal(used_len(r, 0), 10);
	assert_int_equal(used_id(r, 1), UNUSED_MARK);
	assert_int_equal(used_id(r, 2), 4);
	assert_int_equal(used_len(r, 2), 0);
	assert_int_equal(used_id(r, 3), UNUSED_MARK);
	assert_int_equal(used_id(r, 4), UNUSED_MARK);
}

static void vq_in_order_flush_closes_the_batch(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	uint16_t k;

	ring_start(f, r, "rx", RING1, 8, F_INORDER, 0);
	for (k = 0; k < 4; k++)
		post_writable(r, k, 64);
	for (k = 0; k < 4; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	assert_int_equal(vq_push(&r->vq, f->e[0], 64), 0);
	assert_int_equal(vq_push(&r->vq, f->e[1], 64), 0);
	/* The open batch is not visible yet. */
	assert_int_equal(used_id(r, 0), UNUSED_MARK);
	vq_flush(&r->vq);
	assert_int_equal(used_idx(r), 2);
	assert_int_equal(used_id(r, 0), 1);
	assert_int_equal(vq_push(&r->vq, f->e[2], 64), 0);
	assert_int_equal(vq_push(&r->vq, f->e[3], 64), 0);
	vq_flush(&r->vq);
	assert_int_equal(used_idx(r), 4);
	assert_int_equal(used_id(r, 2), 3);
	assert_int_equal(used_id(r, 1), UNUSED_MARK);
	assert_int_equal(used_id(r, 3), UNUSED_MARK);
}

static void vq_in_order_batch_slot_wraps_with_the_used_index(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	uint16_t k;

	ring_start(f, r, "rx", RING1, 4, F_INORDER, 65534);
	for (k = 0; k < 4; k++)
		post_writable(r, k, 32);
	for (k = 0; k < 4; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	for (k = 0; k < 4; k++)
		assert_int_equal(vq_push(&r->vq, f->e[k], 32), 0);
	vq_flush(&r->vq);
	assert_int_equal(used_idx(r), 2);
	assert_int_equal(used_id(r, 65534), 3); /* slot 2 */
	assert_int_equal(used_id(r, 65535), UNUSED_MARK);
	assert_int_equal(used_id(r, 0), UNUSED_MARK);
	assert_int_equal(used_id(r, 1), UNUSED_MARK);
}

/* ---- what a Linux >= 7.0 in-order driver reads ----------------------- */

/*
 * A model of the split-ring in-order receive path of Linux's
 * drivers/virtio/virtio_ring.c (virtqueue_get_buf_ctx_split_in_order, as
 * added by "virtio_ring: add in order support"), written from reading it:
 * - buffers are posted at consecutive descriptor indices, so the k-th
 *   buffer's head is k mod num (one descriptor per buffer: indirect or a
 *   single segment);
 * - with no batch pending it reads ONE used entry, at the slot of the next
 *   expected buffer (last_used_idx mod num), and remembers its id and len;
 * - each buffer whose head is not that id is returned with the length the
 *   driver posted, summed over ALL its descriptors (readable and
 *   writable): it never reads the skipped buffers' used slots;
 * - the buffer whose head equals the id ends the batch and gets its len.
 */
struct drv {
	uint16_t last_used;
	bool batch;
	uint32_t batch_id, batch_len;
	uint32_t total_len[8];
};

static bool drv_get(const struct tring *r, struct drv *d, uint16_t *head,
                    uint32_t *len)
{
	uint16_t pos = d->last_used & (r->num - 1);

	if (!d->batch) {
		if (used_idx(r) == d->last_used)
			return false;
		d->batch_id = used_id(r, d->last_used);
		d->batch_len = used_len(r, d->last_used);
		d->batch = true;
	}
	if (d->batch_id == pos) {
		d->batch = false;
		*len = d->batch_len;
	} else {
		*len = d->total_len[pos];
	}
	*head = pos;
	d->last_used++;
	return true;
}

static void vq_in_order_linux_driver_reads_every_length_written(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct drv d = { 0 };
	uint32_t pushed[8], want[64], got_len;
	uint16_t posted = 0, head, k, n, i, j, order[8], done = 0, got = 0;
	unsigned round, seed = 0x7a3u;

	ring_start(f, r, "rx", RING1, 8, F_INORDER, 0);
	for (round = 0; round < 2000; round++) {
		/* The driver refills every free descriptor, in ring order. */
		while ((uint16_t)(posted - d.last_used) < 8) {
			head = posted & 7;
			d.total_len[head] = 1 + (rand_r(&seed) % 0x100);
			post_writable(r, head, d.total_len[head]);
			posted++;
		}
		for (n = 0; n < 8 && vq_pop(&r->vq, f->e[n]) == 1; n++)
			;
		/* Complete them in a random order, a third of them short. */
		for (k = 0; k < n; k++)
			order[k] = k;
		for (k = n; k > 1; k--) {
			j = rand_r(&seed) % k;
			i = order[k - 1];
			order[k - 1] = order[j];
			order[j] = i;
		}
		for (k = 0; k < n; k++) {
			struct vq_elem *e = f->e[order[k]];

			pushed[order[k]] = rand_r(&seed) % 3 ? e->in_len :
			                   rand_r(&seed) % e->in_len;
			assert_int_equal(vq_push(&r->vq, e, pushed[order[k]]), 0);
			/* Sometimes the device flushes mid-way. */
			if (rand_r(&seed) % 4 == 0)
				vq_flush(&r->vq);
		}
		for (k = 0; k < n; k++)
			want[(done + k) & 63] = pushed[k];
		done += n;
		vq_flush(&r->vq);
		while (drv_get(r, &d, &head, &got_len)) {
			assert_int_equal(head, got & 7);
			assert_int_equal(got_len, want[got & 63]);
			got++;
		}
		assert_int_equal(got, done);
	}
	/* Batching really happened, and every buffer was accounted for. */
	assert_int_equal(r->vq.buffers_used, done);
	assert_true(r->vq.used_entries < r->vq.buffers_used);
	assert_true(r->vq.used_entries > 0);
}

static void vq_in_order_linux_driver_infers_posted_length_for_skipped_tx(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct drv d = { 0 };
	uint32_t len;
	uint16_t head, k;

	/* Device-readable buffers (vsock TX): the device reports 0 bytes
	 * written, the driver infers the posted length for the skipped
	 * ones and 0 for the batch's last.  Linux's TX paths ignore it. */
	ring_start(f, r, "tx", RING1, 8, F_INORDER, 0);
	for (k = 0; k < 3; k++) {
		d.total_len[k] = 44 + k;
		set_desc(r->desc, k, DATA + k * 0x100ULL, 44 + k, R, 0);
		post(r, k);
	}
	for (k = 0; k < 3; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	for (k = 0; k < 3; k++)
		assert_int_equal(vq_push(&r->vq, f->e[k], 0), 0);
	vq_flush(&r->vq);
	for (k = 0; k < 3; k++) {
		assert_true(drv_get(r, &d, &head, &len));
		assert_int_equal(head, k);
		assert_int_equal(len, k < 2 ? 44 + k : 0);
	}
	assert_false(drv_get(r, &d, &head, &len));
	assert_int_equal(r->vq.used_entries, 1);
	assert_int_equal(r->vq.buffers_used, 3);
}

static void vq_in_order_linux_driver_reads_mixed_buffers_right(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct drv d = { 0 };
	uint32_t len;
	uint16_t head, k;

	/* Buffers with a readable and a writable part (one indirect table
	 * each, as Linux posts them), all written in full: the driver would
	 * infer out_len + in_len for a skipped one, so none may be skipped. */
	ring_start(f, r, "req", RING1, 8, F_INORDER | F_INDIRECT, 0);
	for (k = 0; k < 3; k++) {
		struct vring_desc *t = table_at(f, IND + k * 0x20ULL, 2);

		set_desc(t, 0, DATA + k * 0x100ULL, 16, R | N, 1);
		set_desc(t, 1, DATA + k * 0x100ULL + 0x80, 64, W, 0);
		set_desc(r->desc, k, IND + k * 0x20ULL, 2 * 16, I, 0);
		d.total_len[k] = 16 + 64;
		post(r, k);
	}
	for (k = 0; k < 3; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	for (k = 0; k < 3; k++)
		assert_int_equal(vq_push(&r->vq, f->e[k], 64), 0);
	vq_flush(&r->vq);
	for (k = 0; k < 3; k++) {
		assert_true(drv_get(r, &d, &head, &len));
		assert_int_equal(head, k);
		assert_int_equal(len, 64);
	}
	assert_int_equal(r->vq.used_entries, 3);
}

/* ---- counters for status ------------------------------------------- */

static void vq_counts_buffers_used_entries_and_the_largest_chain(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	char text[256];
	FILE *out;
	uint16_t k;

	ring_start(f, r, "rx", RING1, 8, F_INORDER | F_EVENT, 0);
	set_desc(r->desc, 0, DATA, 10, R | N, 1);
	set_desc(r->desc, 1, DATA + 0x100, 20, W | N, 2);
	set_desc(r->desc, 2, DATA + 0x200, 30, W, 0);
	post(r, 0);
	for (k = 3; k < 6; k++)
		post_writable(r, k, 64);
	for (k = 0; k < 4; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	for (k = 0; k < 4; k++)
		assert_int_equal(vq_push(&r->vq, f->e[k], f->e[k]->in_len), 0);
	vq_flush(&r->vq);
	/* The mixed chain ends its own batch; the three others share one. */
	assert_int_equal(r->vq.buffers_used, 4);
	assert_int_equal(r->vq.used_entries, 2);
	assert_int_equal(r->vq.max_chain_descs, 3);
	assert_int_equal(r->vq.max_chain_bytes, 64);
	assert_int_equal(r->vq.features, F_INORDER | F_EVENT);

	out = fmemopen(text, sizeof text, "w");
	assert_non_null(out);
	vq_status(&r->vq, out);
	fclose(out);
	assert_string_equal(text, "ring rx: features 0x820000000, IN_ORDER "
	                    "on, 4 buffers used in 2 used entries, largest "
	                    "chain 3 descriptors 64 bytes\n");

	/* Without IN_ORDER every buffer is its own entry. */
	ring_stop(r);
	ring_start(f, r, "rx", RING1, 8, 0, 0);
	for (k = 0; k < 3; k++)
		post_writable(r, k, 16);
	for (k = 0; k < 3; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	for (k = 0; k < 3; k++)
		assert_int_equal(vq_push(&r->vq, f->e[k], 16), 0);
	vq_flush(&r->vq);
	assert_int_equal(r->vq.buffers_used, 3);
	assert_int_equal(r->vq.used_entries, 3);
}

/* ---- notification --------------------------------------------------- */

static void complete_one(struct fx *f, struct tring *r, uint16_t id)
{
	post_writable(r, id, 16);
	assert_int_equal(vq_pop(&r->vq, f->e[0]), 1);
	assert_int_equal(vq_push(&r->vq, f->e[0], 16), 0);
}

static void vq_event_idx_signals_only_once_used_event_is_passed(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, F_EVENT, 0);
	set_used_event(r, 5);
	complete_one(f, r, 0);
	/* The first flush after a start always signals. */
	assert_true(vq_flush(&r->vq));
	assert_int_equal(signals(r), 1);

	set_used_event(r, 2);                   /* wake me after entry 2 */
	complete_one(f, r, 1);                  /* used 1 -> 2 */
	assert_false(vq_flush(&r->vq));
	assert_int_equal(signals(r), 0);
	complete_one(f, r, 2);                  /* used 2 -> 3: passes 2 */
	assert_true(vq_flush(&r->vq));
	assert_int_equal(signals(r), 1);

	/* Several entries in one flush: event inside the range. */
	set_used_event(r, 4);
	complete_one(f, r, 3);
	complete_one(f, r, 4);
	complete_one(f, r, 5);                  /* used 3 -> 6 */
	assert_true(vq_flush(&r->vq));
	assert_int_equal(signals(r), 1);

	/* An event already behind us does not signal again. */
	complete_one(f, r, 6);
	assert_false(vq_flush(&r->vq));
	assert_int_equal(signals(r), 0);
}

static void vq_event_idx_ignores_the_no_interrupt_flag(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, F_EVENT, 0);
	r->avail->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	complete_one(f, r, 0);
	assert_true(vq_flush(&r->vq));
	set_used_event(r, 1);
	complete_one(f, r, 1);
	assert_true(vq_flush(&r->vq));
	assert_int_equal(signals(r), 2);
}

static void vq_no_interrupt_flag_suppresses_signals_without_event_idx(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	set_used_event(r, 1000); /* ignored without EVENT_IDX */
	complete_one(f, r, 0);
	assert_true(vq_flush(&r->vq));
	assert_int_equal(signals(r), 1);
	complete_one(f, r, 1);
	assert_true(vq_flush(&r->vq));
	assert_int_equal(signals(r), 1);

	r->avail->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	complete_one(f, r, 2);
	assert_false(vq_flush(&r->vq));
	assert_int_equal(signals(r), 0);
	assert_int_equal(used_idx(r), 3); /* published all the same */

	r->avail->flags = 0;
	complete_one(f, r, 3);
	assert_true(vq_flush(&r->vq));
	assert_int_equal(signals(r), 1);
}

static void vq_flush_with_nothing_new_neither_publishes_nor_signals(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	assert_false(vq_flush(&r->vq));
	complete_one(f, r, 0);
	assert_true(vq_flush(&r->vq));
	assert_false(vq_flush(&r->vq));
	assert_int_equal(signals(r), 1);
	/* Popped but not completed is nothing new either. */
	post_writable(r, 1, 16);
	assert_int_equal(vq_pop(&r->vq, f->e[1]), 1);
	assert_false(vq_flush(&r->vq));
	assert_int_equal(signals(r), 0);
}

static void vq_flush_without_call_fd_publishes_but_does_not_signal(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	vq_set_call(&r->vq, -1);
	complete_one(f, r, 0);
	assert_false(vq_flush(&r->vq));
	assert_int_equal(used_idx(r), 1);
	assert_int_equal(signals(r), 0);
}

static void vq_enable_notify_with_event_idx_sets_avail_event(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, F_EVENT, 100);
	assert_int_equal(avail_event(r), 100);
	complete_one(f, r, 0);
	complete_one(f, r, 1);
	vq_disable_notify(&r->vq);
	assert_int_equal(avail_event(r), 100);  /* stays behind */
	assert_false(vq_enable_notify(&r->vq));
	assert_int_equal(avail_event(r), 102);
	post_writable(r, 2, 16);
	assert_true(vq_enable_notify(&r->vq));
}

static bool drain_want_nothing(void *arg)
{
	(void)arg;
	return false;
}

static bool drain_want_all(void *arg)
{
	(void)arg;
	return true;
}

static uint32_t drain_fill(void *arg, const struct vq_elem *e)
{
	unsigned *n = arg;

	(*n)++;
	return e->in_len;
}

/* An RX-like queue (lazy kicks) with nothing to put in buffers keeps
 * kicks off: the driver posting buffers then wakes nobody (the device pops
 * them when it has data, and asks for a kick only when it finds the ring
 * empty). */
static void vq_drain_with_lazy_kicks_and_nothing_wanted_leaves_kicks_off(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct vq_elem *e = malloc(sizeof *e);
	unsigned n = 0;

	assert_non_null(e);
	ring_start(f, r, "rx", RING1, 8, 0, 0);
	r->vq.lazy_kicks = true;
	post_writable(r, 0, 16);
	assert_int_equal(vq_drain(&r->vq, e, 4, drain_fill, drain_want_nothing,
	                          &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(le16toh(r->used->flags), VRING_USED_F_NO_NOTIFY);
	/* With something wanted it fills, finds the ring empty, asks. */
	assert_int_equal(vq_drain(&r->vq, e, 4, drain_fill, drain_want_all,
	                          &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(le16toh(r->used->flags), 0);
	ring_start(f, r, "rx", RING1, 8, F_EVENT, 0);
	r->vq.lazy_kicks = true;
	post_writable(r, 0, 16);
	assert_int_equal(vq_drain(&r->vq, e, 4, drain_fill, drain_want_nothing,
	                          &n), 0);
	assert_int_equal(avail_event(r), 0);  /* stays behind */
	assert_int_equal(vq_drain(&r->vq, e, 4, drain_fill, drain_want_all,
	                          &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(avail_event(r), 1);
	free(e);
}

static void vq_disable_notify_sets_no_notify_without_event_idx(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	assert_int_equal(le16toh(r->used->flags), 0);
	vq_disable_notify(&r->vq);
	assert_int_equal(le16toh(r->used->flags), VRING_USED_F_NO_NOTIFY);
	assert_false(vq_enable_notify(&r->vq));
	assert_int_equal(le16toh(r->used->flags), 0);
	vq_disable_notify(&r->vq);
	post_writable(r, 0, 16);
	assert_true(vq_enable_notify(&r->vq));
	assert_int_equal(le16toh(r->used->flags), 0);
}

/* ---- start and stop ------------------------------------------------- */

static void vq_start_rejects_bad_sizes_and_misaligned_rings(void **state)
{
	struct fx *f = *state;
	struct vring_desc *d = gpa(f, RING1, 16 * 8);
	struct vring_avail *a = gpa(f, RING1 + 0x2000, 22);
	struct vring_used *u = gpa(f, RING1 + 0x3000, 70);
	struct vq vq;

	vq_init(&vq, "rx");
	assert_int_equal(vq_start(&vq, &f->mem, 0, d, a, u, 0, 0), -EINVAL);
	assert_int_equal(vq_start(&vq, &f->mem, 6, d, a, u, 0, 0), -EINVAL);
	assert_int_equal(vq_start(&vq, &f->mem, 65535, d, a, u, 0, 0),
	                 -EINVAL);
	assert_int_equal(vq_start(&vq, &f->mem, 8,
	                          (void *)((uint8_t *)d + 8), a, u, 0, 0),
	                 -EINVAL);
	assert_int_equal(vq_start(&vq, &f->mem, 8, d,
	                          (void *)((uint8_t *)a + 1), u, 0, 0),
	                 -EINVAL);
	assert_int_equal(vq_start(&vq, &f->mem, 8, d, a,
	                          (void *)((uint8_t *)u + 2), 0, 0),
	                 -EINVAL);
	assert_false(vq.started);
	assert_int_equal(vq_pop(&vq, f->e[0]), 0);
	assert_int_equal(vq_start(&vq, &f->mem, 8, d, a, u, 0, 0), 0);
	vq_stop(&vq);
}

static void vq_stop_gives_back_chains_not_yet_completed(void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	uint16_t k;

	ring_start(f, r, "rx", RING1, 8, 0, 10);
	for (k = 0; k < 4; k++)
		post_writable(r, k, 16);
	for (k = 0; k < 4; k++)
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
	assert_int_equal(vq_push(&r->vq, f->e[0], 16), 0);
	assert_int_equal(vq_push(&r->vq, f->e[2], 16), 0);
	/* 0 is complete (not yet flushed), 2 waits for 1; 1 and 3 are not. */
	assert_int_equal(vq_stop(&r->vq), 11);
	r->started = false;
	assert_int_equal(used_idx(r), 11);
	assert_int_equal(vq_push(&r->vq, f->e[1], 16), -EIO);
	assert_int_equal(vq_pop(&r->vq, f->e[0]), 0);

	/* Restarted where GET_VRING_BASE said: chains 1, 2, 3 come again. */
	assert_int_equal(vq_start(&r->vq, &f->mem, 8, r->desc, r->avail,
	                          r->used, 11, 0), 0);
	r->started = true;
	for (k = 1; k < 4; k++) {
		assert_int_equal(vq_pop(&r->vq, f->e[k]), 1);
		assert_int_equal(f->e[k]->id, k);
		assert_int_equal(vq_push(&r->vq, f->e[k], 16), 0);
	}
	assert_int_equal(vq_pop(&r->vq, f->e[0]), 0);
	vq_flush(&r->vq);
	assert_int_equal(used_idx(r), 14);
}

/* ---- vq_drain: the budget loop of the TX run and the RX fill ----------- */

struct drain_count {
	unsigned calls, want_until;
	uint16_t ids[16];
};

/* Writes id + 1 bytes into each buffer it is handed. */
static uint32_t drain_fn(void *arg, const struct vq_elem *e)
{
	struct drain_count *d = arg;

	assert_true(d->calls < 16);
	d->ids[d->calls++] = e->id;
	return e->id + 1u;
}

static bool drain_want(void *arg)
{
	struct drain_count *d = arg;

	return d->calls < d->want_until;
}

static void vq_drain_stops_at_the_budget_with_kicks_off_then_finishes(
	void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct drain_count d = { 0 };
	uint16_t k;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	for (k = 0; k < 6; k++)
		post_writable(r, k, 0x40);
	assert_int_equal(vq_drain(&r->vq, f->e[0], 4, drain_fn, NULL, &d), 1);
	assert_int_equal(d.calls, 4);
	/* What was handled is published; the driver is still asked not to
	 * kick, since the rest comes without one. */
	assert_int_equal(used_idx(r), 4);
	assert_int_equal(le16toh(r->used->flags), VRING_USED_F_NO_NOTIFY);
	assert_int_equal(vq_drain(&r->vq, f->e[0], 4, drain_fn, NULL, &d), 0);
	assert_int_equal(d.calls, 6);
	assert_int_equal(used_idx(r), 6);
	assert_int_equal(le16toh(r->used->flags), 0);
	for (k = 0; k < 6; k++) {
		assert_int_equal(d.ids[k], k);
		assert_int_equal(used_id(r, k), k);
		assert_int_equal(used_len(r, k), k + 1u);
	}
	/* An exact budget: all handled, nothing more to ask for. */
	for (k = 0; k < 2; k++)
		post_writable(r, k, 0x40);
	assert_int_equal(vq_drain(&r->vq, f->e[0], 2, drain_fn, NULL, &d), 1);
	assert_int_equal(vq_drain(&r->vq, f->e[0], 2, drain_fn, NULL, &d), 0);
	assert_int_equal(d.calls, 8);
	assert_int_equal(le16toh(r->used->flags), 0);
}

static void vq_drain_stops_when_want_has_nothing_and_asks_for_kicks(
	void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct drain_count d = { .want_until = 2 };
	uint16_t k;

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	for (k = 0; k < 4; k++)
		post_writable(r, k, 0x40);
	assert_int_equal(vq_drain(&r->vq, f->e[0], 100, drain_fn, drain_want,
	                          &d), 0);
	assert_int_equal(d.calls, 2);
	assert_int_equal(used_idx(r), 2);
	assert_int_equal(le16toh(r->used->flags), 0);
	/* The buffers not needed stay available for the next run. */
	assert_true(vq_has_avail(&r->vq));
	d.want_until = 4;
	assert_int_equal(vq_drain(&r->vq, f->e[0], 100, drain_fn, drain_want,
	                          &d), 0);
	assert_int_equal(d.calls, 4);
	assert_int_equal(used_idx(r), 4);
}

static void vq_drain_of_a_broken_queue_returns_eio_without_handling(
	void **state)
{
	struct fx *f = *state;
	struct tring *r = &f->r;
	struct drain_count d = { 0 };

	ring_start(f, r, "rx", RING1, 8, 0, 0);
	post(r, 200);  /* head out of range: the queue breaks */
	assert_int_equal(vq_drain(&r->vq, f->e[0], 4, drain_fn, NULL, &d),
	                 -EIO);
	assert_int_equal(d.calls, 0);
	assert_int_equal(used_idx(r), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(vq_pop_maps_readable_then_writable_descriptors),
		T(vq_pop_splits_a_buffer_that_crosses_a_region_edge),
		T(vq_pop_maps_zero_length_descriptors_to_no_iovec),
		T(vq_pop_maps_an_indirect_table),
		T(vq_pop_maps_direct_descriptors_followed_by_indirect),
		T(vq_pop_reads_an_indirect_table_that_crosses_a_region_edge),
		T(vq_pop_returns_0_while_a_queue_full_of_chains_is_outstanding),
		T(vq_writes_used_entries_in_pop_order_whatever_the_completion_order),
		T(vq_push_clamps_len_to_the_writable_bytes),
		T(vq_push_of_an_element_twice_is_refused),
		T(vq_push_of_an_element_from_before_a_restart_is_refused),
		T(vq_wraps_the_16_bit_indices),
		T(vq_in_order_writes_one_entry_for_a_batch_of_full_buffers),
		T(vq_in_order_ends_a_batch_after_a_short_buffer),
		T(vq_in_order_flush_closes_the_batch),
		T(vq_in_order_batch_slot_wraps_with_the_used_index),
		T(vq_in_order_linux_driver_reads_every_length_written),
		T(vq_in_order_linux_driver_infers_posted_length_for_skipped_tx),
		T(vq_in_order_linux_driver_reads_mixed_buffers_right),
		T(vq_counts_buffers_used_entries_and_the_largest_chain),
		T(vq_event_idx_signals_only_once_used_event_is_passed),
		T(vq_event_idx_ignores_the_no_interrupt_flag),
		T(vq_no_interrupt_flag_suppresses_signals_without_event_idx),
		T(vq_flush_with_nothing_new_neither_publishes_nor_signals),
		T(vq_flush_without_call_fd_publishes_but_does_not_signal),
		T(vq_enable_notify_with_event_idx_sets_avail_event),
		T(vq_drain_with_lazy_kicks_and_nothing_wanted_leaves_kicks_off),
		T(vq_disable_notify_sets_no_notify_without_event_idx),
		T(vq_start_rejects_bad_sizes_and_misaligned_rings),
		T(vq_stop_gives_back_chains_not_yet_completed),
		T(vq_drain_stops_at_the_budget_with_kicks_off_then_finishes),
		T(vq_drain_stops_when_want_has_nothing_and_asks_for_kicks),
		T(vq_drain_of_a_broken_queue_returns_eio_without_handling),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
