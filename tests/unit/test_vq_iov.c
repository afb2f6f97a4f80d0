/*
 * vq_iov_*: byte ranges across iovecs (vq.h), the one walker behind
 * reading descriptor tables, gathering packet headers, slicing payloads and
 * scattering RX packets.  Named edge cases first (zero-length iovecs, an
 * offset at or past the end, ranges that start or end on a boundary), then
 * every offset and length over several layouts against a flat array.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chanfs/vq.h"

#define BYTES 64

/* iovecs of the given lengths laid over one flat buffer, back to back, so
 * that byte k of the range is buf[k]; the buffer is 0, 1, 2, ... */
struct layout {
	uint8_t buf[BYTES];
	struct iovec iov[16];
	unsigned niov;
	size_t total;
};

static void layout(struct layout *l, const size_t *lens, unsigned n)
{
	size_t at = 0;
	unsigned i;

	for (i = 0; i < BYTES; i++)
		l->buf[i] = (uint8_t)(i + 1);
	for (i = 0; i < n; i++) {
		l->iov[i].iov_base = l->buf + at;
		l->iov[i].iov_len = lens[i];
		at += lens[i];
	}
	assert_true(at <= BYTES);
	l->niov = n;
	l->total = at;
}

static void count_piece(void *arg, void *p, size_t n)
{
	unsigned *calls = arg;

	(void)p;
	assert_true(n > 0);
	(*calls)++;
}

static void vq_iov_walk_passes_over_zero_length_iovecs(void **state)
{
	static const size_t lens[] = { 0, 4, 0, 0, 4, 0 };
	struct layout l;
	unsigned calls = 0;

	(void)state;
	layout(&l, lens, 6);
	assert_int_equal(vq_iov_walk(l.iov, l.niov, 0, 8, count_piece, &calls),
	                 8);
	assert_int_equal(calls, 2);
}

static void vq_iov_read_gathers_across_zero_length_iovecs(void **state)
{
	static const size_t lens[] = { 0, 3, 0, 5 };
	static const uint8_t want[] = { 3, 4, 5, 6 };
	struct layout l;
	uint8_t got[4] = { 0 };

	(void)state;
	layout(&l, lens, 4);
	assert_int_equal(vq_iov_read(l.iov, l.niov, 2, got, sizeof got), 4);
	assert_memory_equal(got, want, sizeof want);
}

static void vq_iov_read_from_an_offset_past_the_end_copies_nothing(void **state)
{
	static const size_t lens[] = { 4, 4 };
	struct layout l;
	uint8_t got[4] = { 0xee, 0xee, 0xee, 0xee };
	static const uint8_t untouched[4] = { 0xee, 0xee, 0xee, 0xee };

	(void)state;
	layout(&l, lens, 2);
	assert_int_equal(vq_iov_read(l.iov, l.niov, 8, got, 4), 0);
	assert_int_equal(vq_iov_read(l.iov, l.niov, 9, got, 4), 0);
	assert_int_equal(vq_iov_read(l.iov, l.niov, SIZE_MAX, got, 4), 0);
	assert_memory_equal(got, untouched, sizeof got);
}

static void vq_iov_read_stops_where_the_iovecs_end(void **state)
{
	static const size_t lens[] = { 4, 4 };
	static const uint8_t want[] = { 7, 8, 0xee, 0xee };
	struct layout l;
	uint8_t got[4] = { 0xee, 0xee, 0xee, 0xee };

	(void)state;
	layout(&l, lens, 2);
	assert_int_equal(vq_iov_read(l.iov, l.niov, 6, got, 4), 2);
	assert_memory_equal(got, want, sizeof want);
}

static void vq_iov_slice_of_a_range_on_iovec_boundaries_is_those_iovecs(
	void **state)
{
	static const size_t lens[] = { 4, 4, 4 };
	struct layout l;
	struct iovec out[3];

	(void)state;
	layout(&l, lens, 3);
	/* Starts where iov[1] starts and ends where it ends. */
	assert_int_equal(vq_iov_slice(l.iov, l.niov, 4, 4, out), 1);
	assert_ptr_equal(out[0].iov_base, l.iov[1].iov_base);
	assert_int_equal(out[0].iov_len, 4);
	/* Ends exactly at the end of everything. */
	assert_int_equal(vq_iov_slice(l.iov, l.niov, 4, 8, out), 2);
	assert_ptr_equal(out[1].iov_base, l.iov[2].iov_base);
	assert_int_equal(out[1].iov_len, 4);
	/* One byte either side of a boundary: two pieces of one byte. */
	assert_int_equal(vq_iov_slice(l.iov, l.niov, 7, 2, out), 2);
	assert_ptr_equal(out[0].iov_base, l.buf + 7);
	assert_int_equal(out[0].iov_len, 1);
	assert_ptr_equal(out[1].iov_base, l.buf + 8);
	assert_int_equal(out[1].iov_len, 1);
}

static void vq_iov_slice_of_an_empty_range_or_past_the_end_is_empty(
	void **state)
{
	static const size_t lens[] = { 4, 0 };
	struct layout l;
	struct iovec out[2];

	(void)state;
	layout(&l, lens, 2);
	assert_int_equal(vq_iov_slice(l.iov, l.niov, 0, 0, out), 0);
	assert_int_equal(vq_iov_slice(l.iov, l.niov, 4, 1, out), 0);
	assert_int_equal(vq_iov_slice(l.iov, 0, 0, 1, out), 0);
}

static void vq_iov_write_touches_only_the_range(void **state)
{
	static const size_t lens[] = { 2, 0, 3, 2 };
	static const uint8_t src[] = { 0xa0, 0xa1, 0xa2 };
	static const uint8_t want[] = { 1, 2, 3, 0xa0, 0xa1, 0xa2, 7 };
	struct layout l;

	(void)state;
	layout(&l, lens, 4);
	assert_int_equal(vq_iov_write(l.iov, l.niov, 3, src, sizeof src), 3);
	assert_memory_equal(l.buf, want, sizeof want);
	assert_int_equal(l.buf[7], 8);
}

/* Every offset and length from 0 to past the end, over layouts with zero
 * lengths at either end and in the middle, against the flat buffer. */
static void vq_iov_every_range_of_every_layout_matches_a_flat_array(
	void **state)
{
	static const size_t layouts[][6] = {
		{ 1, 0, 0, 0, 0, 0 },
		{ 0, 0, 0, 0, 0, 0 },
		{ 5, 0, 0, 0, 0, 0 },
		{ 0, 3, 0, 2, 0, 0 },
		{ 1, 1, 1, 1, 1, 1 },
		{ 7, 0, 9, 16, 0, 1 },
	};
	static const unsigned counts[] = { 1, 3, 1, 5, 6, 6 };
	unsigned k;

	(void)state;
	for (k = 0; k < sizeof counts / sizeof counts[0]; k++) {
		struct layout l;
		size_t off, len;

		layout(&l, layouts[k], counts[k]);
		for (off = 0; off <= l.total + 2; off++)
			for (len = 0; len <= l.total + 2; len++) {
				size_t want = off >= l.total ? 0 :
				              (len < l.total - off ?
				               len : l.total - off);
				uint8_t got[BYTES], fill[BYTES];
				struct iovec out[16];
				unsigned n, i;
				size_t sum = 0;

				memset(got, 0, sizeof got);
				assert_int_equal(vq_iov_read(l.iov, l.niov,
				                             off, got, len),
				                 want);
				if (want)
					assert_memory_equal(got, l.buf + off,
					                    want);
				n = vq_iov_slice(l.iov, l.niov, off, len, out);
				assert_true(n <= l.niov);
				for (i = 0; i < n; i++) {
					assert_true(out[i].iov_len > 0);
					assert_ptr_equal(out[i].iov_base,
					                 l.buf + off + sum);
					sum += out[i].iov_len;
				}
				assert_int_equal(sum, want);
				memset(fill, 0xcc, sizeof fill);
				layout(&l, layouts[k], counts[k]);
				assert_int_equal(vq_iov_write(l.iov, l.niov,
				                              off, fill, len),
				                 want);
				for (i = 0; i < BYTES; i++)
					assert_int_equal(l.buf[i],
					                 i >= off &&
					                 i < off + want ?
					                 0xcc : i + 1);
				layout(&l, layouts[k], counts[k]);
			}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vq_iov_walk_passes_over_zero_length_iovecs),
		cmocka_unit_test(vq_iov_read_gathers_across_zero_length_iovecs),
		cmocka_unit_test(vq_iov_read_from_an_offset_past_the_end_copies_nothing),
		cmocka_unit_test(vq_iov_read_stops_where_the_iovecs_end),
		cmocka_unit_test(vq_iov_slice_of_a_range_on_iovec_boundaries_is_those_iovecs),
		cmocka_unit_test(vq_iov_slice_of_an_empty_range_or_past_the_end_is_empty),
		cmocka_unit_test(vq_iov_write_touches_only_the_range),
		cmocka_unit_test(vq_iov_every_range_of_every_layout_matches_a_flat_array),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
