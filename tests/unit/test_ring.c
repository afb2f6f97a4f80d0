/*
 * ring: the byte ring, its zero-copy views and its readiness edges, checked
 * case by case and then against a plain byte-array FIFO over many random
 * operations (seed printed; CHANFS_SEED=<n> repeats a run).
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chanfs/ring.h"

/* splitmix64: tiny, seedable, good enough to drive a property test. */
struct prng {
	uint64_t s;
};

static uint64_t prng_next(struct prng *p)
{
	uint64_t z = (p->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform enough in [0, n); 0 when n is 0. */
static uint32_t prng_below(struct prng *p, uint32_t n)
{
	return n ? (uint32_t)(prng_next(p) % n) : 0;
}

static void prng_fill(struct prng *p, uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)prng_next(p);
}

static uint64_t test_seed(void)
{
	const char *env = getenv("CHANFS_SEED");
	struct timespec ts;

	if (env && *env)
		return strtoull(env, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
	       ((uint64_t)getpid() << 40);
}

/* Edge bookkeeping: counts, and the state each callback saw. */
struct edges {
	struct ring *ring;
	unsigned readable;
	unsigned writable;
};

static void edge_readable(struct ring *r, void *arg)
{
	struct edges *e = arg;

	assert_ptr_equal(r, e->ring);
	/* The edge is fired after the bytes are published. */
	assert_true(ring_used(r) > 0);
	e->readable++;
}

static void edge_writable(struct ring *r, void *arg)
{
	struct edges *e = arg;

	assert_ptr_equal(r, e->ring);
	assert_true(ring_used(r) <= r->lowat);
	e->writable++;
}

static void ring_with_edges(struct ring *r, struct edges *e, uint32_t cap,
                            uint32_t lowat)
{
	assert_int_equal(ring_init(r, cap), 0);
	memset(e, 0, sizeof *e);
	e->ring = r;
	ring_set_notify(r, edge_readable, edge_writable, e, lowat);
}

static void ring_init_rejects_caps_that_are_not_powers_of_two(void **state)
{
	static const uint32_t bad[] = { 0, 3, 6, 1000, 0x80000001u, UINT32_MAX };
	struct ring r;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(ring_init(&r, bad[i]), -EINVAL);
	assert_int_equal(ring_init(&r, 1), 0);
	assert_int_equal(r.cap, 1);
	assert_int_equal(r.lowat, 0);
	assert_true(ring_empty(&r));
	ring_destroy(&r);
	assert_int_equal(ring_init(&r, 1u << 16), 0);
	assert_int_equal(ring_space(&r), 1u << 16);
	ring_destroy(&r);
}

/* An idle ring costs no memory: the buffer comes with the first byte
 * written or reserved, not with ring_init (10 000 idle connections). */
static void ring_buffer_is_allocated_by_the_first_write_not_by_init(void **state)
{
	uint8_t out[4];
	struct iovec iov[2];
	struct ring r, w;

	(void)state;
	assert_int_equal(ring_init(&r, 1u << 18), 0);
	assert_null(r.buf);
	assert_int_equal(ring_peek(&r, iov, SIZE_MAX), 0);
	assert_int_equal(ring_read(&r, out, sizeof out), 0);
	ring_consume(&r, 4);
	ring_reset(&r);
	assert_null(r.buf);
	assert_int_equal(ring_write(&r, "abc", 3), 3);
	assert_non_null(r.buf);
	assert_int_equal(ring_read(&r, out, sizeof out), 3);
	assert_memory_equal(out, "abc", 3);
	ring_destroy(&r);
	assert_int_equal(ring_init(&w, 16), 0);
	assert_null(w.buf);
	assert_int_equal(ring_reserve(&w, iov, 0), 0);
	assert_null(w.buf);
	assert_int_equal(ring_reserve(&w, iov, SIZE_MAX), 1);
	assert_non_null(w.buf);
	assert_ptr_equal(iov[0].iov_base, w.buf);
	assert_int_equal(iov[0].iov_len, 16);
	ring_destroy(&w);
}

static void ring_release_frees_an_empty_buffer_and_keeps_one_with_data(void **state)
{
	uint8_t out[4];
	struct ring r;

	(void)state;
	assert_int_equal(ring_init(&r, 1u << 18), 0);
	ring_release(&r);
	assert_null(r.buf);
	assert_int_equal(ring_write(&r, "abc", 3), 3);
	ring_release(&r);
	assert_non_null(r.buf);
	assert_int_equal(ring_read(&r, out, 2), 2);
	ring_release(&r);
	assert_non_null(r.buf);
	assert_int_equal(ring_read(&r, out + 2, 1), 1);
	assert_memory_equal(out, "abc", 3);
	ring_release(&r);
	assert_null(r.buf);
	assert_int_equal(ring_space(&r), 1u << 18);
	assert_int_equal(ring_write(&r, "de", 2), 2);
	assert_int_equal(ring_read(&r, out, sizeof out), 2);
	assert_memory_equal(out, "de", 2);
	ring_destroy(&r);
}

static void ring_write_takes_what_fits_and_returns_the_count(void **state)
{
	uint8_t in[12] = "abcdefghijk", out[12] = { 0 };
	struct ring r;

	(void)state;
	assert_int_equal(ring_init(&r, 8), 0);
	assert_int_equal(ring_write(&r, in, 5), 5);
	assert_int_equal(ring_write(&r, in + 5, 5), 3);
	assert_true(ring_full(&r));
	assert_int_equal(ring_write(&r, in, 1), 0);
	assert_int_equal(ring_read(&r, out, sizeof out), 8);
	assert_memory_equal(out, in, 8);
	assert_true(ring_empty(&r));
	assert_int_equal(ring_read(&r, out, sizeof out), 0);
	ring_destroy(&r);
}

static void ring_readable_fires_only_when_empty_ring_gets_data(void **state)
{
	uint8_t b[4] = { 1, 2, 3, 4 };
	struct iovec iov[2];
	struct edges e;
	struct ring r;

	(void)state;
	ring_with_edges(&r, &e, 4, UINT32_MAX);
	assert_int_equal(ring_write(&r, b, 0), 0);
	assert_int_equal(e.readable, 0);
	ring_write(&r, b, 1);
	assert_int_equal(e.readable, 1);
	ring_write(&r, b, 2);
	assert_int_equal(e.readable, 1);
	ring_read(&r, b, 4);
	assert_int_equal(e.readable, 1);
	/* The zero-copy producer side fires it as well, on commit only. */
	/* head is at offset 3 of 4: two free bytes are two pieces. */
	assert_int_equal(ring_reserve(&r, iov, 2), 2);
	assert_int_equal(e.readable, 1);
	ring_commit(&r, 0);
	assert_int_equal(e.readable, 1);
	ring_commit(&r, 2);
	assert_int_equal(e.readable, 2);
	ring_destroy(&r);
}

static void ring_writable_fires_when_full_ring_is_no_longer_full(void **state)
{
	uint8_t b[8] = { 0 };
	struct edges e;
	struct ring r;

	(void)state;
	ring_with_edges(&r, &e, 8, UINT32_MAX);
	assert_int_equal(r.lowat, 7);
	ring_write(&r, b, 7);
	ring_read(&r, b, 3);
	assert_int_equal(e.writable, 0);
	ring_write(&r, b, 8);
	assert_true(ring_full(&r));
	ring_read(&r, b, 1);
	assert_int_equal(e.writable, 1);
	ring_read(&r, b, 1);
	assert_int_equal(e.writable, 1);
	ring_destroy(&r);
}

static void ring_writable_fires_when_used_drops_to_lowat(void **state)
{
	uint8_t b[16] = { 0 };
	struct edges e;
	struct ring r;

	(void)state;
	ring_with_edges(&r, &e, 16, 4);
	ring_write(&r, b, 16);
	ring_read(&r, b, 10);   /* 6 left */
	assert_int_equal(e.writable, 0);
	ring_consume(&r, 2);    /* 4 left: at lowat */
	assert_int_equal(e.writable, 1);
	ring_consume(&r, 4);
	assert_int_equal(e.writable, 1);
	/* Rising back above lowat re-arms the edge. */
	ring_write(&r, b, 5);
	ring_consume(&r, 5);
	assert_int_equal(e.writable, 2);
	ring_destroy(&r);
}

static void ring_reset_drops_data_and_fires_writable_above_lowat(void **state)
{
	uint8_t b[8] = { 0 };
	struct edges e;
	struct ring r;

	(void)state;
	ring_with_edges(&r, &e, 8, 2);
	ring_write(&r, b, 2);
	ring_reset(&r);
	assert_true(ring_empty(&r));
	assert_int_equal(e.writable, 0);
	ring_write(&r, b, 3);
	ring_reset(&r);
	assert_true(ring_empty(&r));
	assert_int_equal(e.writable, 1);
	ring_reset(&r);
	assert_int_equal(e.writable, 1);
	ring_destroy(&r);
}

static void ring_counters_wrap_past_uint32_max_keeping_content(void **state)
{
	uint8_t in[8] = "0123456", out[8];
	struct iovec iov[2];
	struct ring r;

	(void)state;
	assert_int_equal(ring_init(&r, 8), 0);
	r.head = r.tail = UINT32_MAX - 2;
	assert_int_equal(ring_write(&r, in, 8), 8);
	assert_true(r.head < r.tail);
	assert_int_equal(ring_used(&r), 8);
	assert_true(ring_full(&r));
	/* tail sits at offset 5 of the buffer: the data wraps. */
	assert_int_equal(ring_peek(&r, iov, SIZE_MAX), 2);
	assert_ptr_equal(iov[0].iov_base, r.buf + 5);
	assert_int_equal(iov[0].iov_len, 3);
	assert_ptr_equal(iov[1].iov_base, r.buf);
	assert_int_equal(iov[1].iov_len, 5);
	assert_int_equal(ring_read(&r, out, 8), 8);
	assert_memory_equal(out, in, 8);
	assert_true(ring_empty(&r));
	assert_int_equal(r.tail, 5);
	ring_destroy(&r);
}

static void ring_peek_and_reserve_split_at_the_buffer_end(void **state)
{
	uint8_t b[16] = { 0 };
	struct iovec iov[2];
	struct ring r;

	(void)state;
	assert_int_equal(ring_init(&r, 16), 0);
	ring_write(&r, b, 12);
	ring_read(&r, b, 10);   /* data at [10, 12), free [12, 16) + [0, 10) */
	assert_int_equal(ring_reserve(&r, iov, SIZE_MAX), 2);
	assert_ptr_equal(iov[0].iov_base, r.buf + 12);
	assert_int_equal(iov[0].iov_len, 4);
	assert_ptr_equal(iov[1].iov_base, r.buf);
	assert_int_equal(iov[1].iov_len, 10);
	assert_int_equal(ring_reserve(&r, iov, 4), 1);
	assert_int_equal(iov[0].iov_len, 4);
	assert_int_equal(ring_reserve(&r, iov, 0), 0);
	memcpy(r.buf + 12, "WXYZ", 4);
	memcpy(r.buf, "ab", 2);
	ring_commit(&r, 6);
	assert_int_equal(ring_used(&r), 8);
	assert_int_equal(ring_peek(&r, iov, SIZE_MAX), 2);
	assert_int_equal(iov[0].iov_len, 6);
	assert_memory_equal((uint8_t *)iov[0].iov_base + 2, "WXYZ", 4);
	assert_int_equal(iov[1].iov_len, 2);
	assert_memory_equal(iov[1].iov_base, "ab", 2);
	assert_int_equal(ring_peek(&r, iov, 3), 1);
	assert_int_equal(iov[0].iov_len, 3);
	ring_destroy(&r);
}

static void ring_consume_and_commit_clamp_to_what_is_there(void **state)
{
	uint8_t b[8] = { 0 };
	struct ring r;

	(void)state;
	assert_int_equal(ring_init(&r, 8), 0);
	ring_write(&r, b, 3);
	ring_consume(&r, 100);
	assert_true(ring_empty(&r));
	assert_int_equal(r.head, r.tail);
	ring_commit(&r, SIZE_MAX);
	assert_true(ring_full(&r));
	assert_int_equal(ring_used(&r), 8);
	ring_destroy(&r);
}

static void ring_writev_takes_elements_in_order_with_one_edge(void **state)
{
	char a[] = "abc", bb[] = "", c[] = "defgh", out[8];
	struct iovec iov[3] = {
		{ a, 3 }, { bb, 0 }, { c, 5 },
	};
	struct edges e;
	struct ring r;

	(void)state;
	ring_with_edges(&r, &e, 8, UINT32_MAX);
	/* Three elements, one readable edge. */
	assert_int_equal(ring_writev(&r, iov, 3), 8);
	assert_int_equal(e.readable, 1);
	assert_int_equal(ring_read(&r, out, 8), 8);
	assert_memory_equal(out, "abcdefgh", 8);
	ring_write(&r, "12", 2);
	/* Only 6 of the 8 bytes fit; not empty before, so no edge. */
	assert_int_equal(ring_writev(&r, iov, 3), 6);
	assert_int_equal(e.readable, 2);
	assert_int_equal(ring_read(&r, out, 8), 8);
	assert_memory_equal(out, "12abcdef", 8);
	assert_int_equal(ring_writev(&r, iov, 0), 0);
	assert_int_equal(e.readable, 2);
	ring_destroy(&r);
}

/* ---- random operations against a reference FIFO ---- */

struct model {
	uint8_t *b;
	uint32_t cap;
	uint32_t used;
};

static void model_push(struct model *m, const uint8_t *d, uint32_t n)
{
	assert_true(m->used + n <= m->cap);
	memcpy(m->b + m->used, d, n);
	m->used += n;
}

static void model_pop(struct model *m, uint32_t n)
{
	assert_true(n <= m->used);
	memmove(m->b, m->b + n, m->used - n);
	m->used -= n;
}

struct prop {
	struct prng rng;
	struct ring r;
	struct edges e;
	struct model m;
	uint8_t *scratch;       /* 2 * cap + 8 bytes */
	unsigned want_readable;
	unsigned want_writable;
};

static uint32_t expect_min(uint64_t a, uint32_t b)
{
	return a < b ? (uint32_t)a : b;
}

/* A random request size: mostly within the ring, sometimes beyond it. */
static size_t prop_len(struct prop *f)
{
	uint32_t cap = f->r.cap;

	switch (prng_below(&f->rng, 8)) {
	case 0:
		return 0;
	case 1:
		return SIZE_MAX;
	case 2:
		return cap + prng_below(&f->rng, cap + 1);
	default:
		return prng_below(&f->rng, cap + 1);
	}
}

static void prop_produced(struct prop *f, uint32_t before, uint32_t n)
{
	if (before == 0 && n > 0)
		f->want_readable++;
}

static void prop_consumed(struct prop *f, uint32_t before, uint32_t n)
{
	if (before > f->r.lowat && before - n <= f->r.lowat)
		f->want_writable++;
}

/* The iovecs describe n bytes starting at counter pos, inside buf. */
static void check_span(struct prop *f, const struct iovec *iov, int cnt,
                       uint32_t pos, uint32_t n)
{
	uint32_t off = pos & (f->r.cap - 1);
	int want = n == 0 ? 0 : (off + (uint64_t)n > f->r.cap ? 2 : 1);

	assert_int_equal(cnt, want);
	if (cnt == 0)
		return;
	assert_ptr_equal(iov[0].iov_base, f->r.buf + off);
	if (cnt == 1) {
		assert_int_equal(iov[0].iov_len, n);
		return;
	}
	assert_int_equal(iov[0].iov_len, f->r.cap - off);
	assert_ptr_equal(iov[1].iov_base, f->r.buf);
	assert_int_equal(iov[0].iov_len + iov[1].iov_len, n);
}

static void prop_step(struct prop *f)
{
	struct ring *r = &f->r;
	uint8_t *s = f->scratch;
	uint32_t before = f->m.used;
	uint32_t space = r->cap - before;
	struct iovec iov[4];
	size_t len, got;
	uint32_t n, k;
	int cnt;

	switch (prng_below(&f->rng, 13)) {
	case 0: case 1: case 2:         /* write */
		len = prop_len(f);
		n = expect_min(len, space);
		prng_fill(&f->rng, s, n);
		got = ring_write(r, s, len);
		assert_int_equal(got, n);
		model_push(&f->m, s, n);
		prop_produced(f, before, n);
		break;
	case 3: {                       /* writev */
		uint32_t total = 0, done = 0;

		/* Up to 4 * (cap / 2 + 1) <= 2 * cap + 4 bytes of scratch. */
		cnt = (int)prng_below(&f->rng, 5);
		for (int i = 0; i < cnt; i++) {
			iov[i].iov_len = prng_below(&f->rng, r->cap / 2 + 2);
			iov[i].iov_base = s + total;
			total += (uint32_t)iov[i].iov_len;
		}
		prng_fill(&f->rng, s, total);
		n = expect_min(total, space);
		got = ring_writev(r, iov, cnt);
		assert_int_equal(got, n);
		for (int i = 0; i < cnt && done < n; i++) {
			uint32_t take = expect_min(iov[i].iov_len, n - done);

			model_push(&f->m, iov[i].iov_base, take);
			done += take;
		}
		prop_produced(f, before, n);
		break;
	}
	case 4: case 5: case 6:         /* read */
		len = prop_len(f);
		n = expect_min(len, before);
		got = ring_read(r, s, len);
		assert_int_equal(got, n);
		assert_memory_equal(s, f->m.b, n);
		model_pop(&f->m, n);
		prop_consumed(f, before, n);
		break;
	case 7: case 8: {               /* peek + consume */
		uint32_t head = r->head, tail = r->tail;

		len = prop_len(f);
		n = expect_min(len, before);
		cnt = ring_peek(r, iov, len);
		check_span(f, iov, cnt, r->tail, n);
		assert_int_equal(r->head, head);
		assert_int_equal(r->tail, tail);
		k = 0;
		for (int i = 0; i < cnt; i++) {
			assert_memory_equal(iov[i].iov_base, f->m.b + k,
			                    iov[i].iov_len);
			k += (uint32_t)iov[i].iov_len;
		}
		k = prng_below(&f->rng, n + 1);
		ring_consume(r, k);
		model_pop(&f->m, k);
		prop_consumed(f, before, k);
		break;
	}
	case 9: case 10: {              /* reserve + commit */
		uint32_t head = r->head, tail = r->tail, done = 0;

		len = prop_len(f);
		n = expect_min(len, space);
		cnt = ring_reserve(r, iov, len);
		check_span(f, iov, cnt, r->head, n);
		assert_int_equal(r->head, head);
		assert_int_equal(r->tail, tail);
		for (int i = 0; i < cnt; i++)
			prng_fill(&f->rng, iov[i].iov_base, iov[i].iov_len);
		k = prng_below(&f->rng, n + 1);
		for (int i = 0; i < cnt && done < k; i++) {
			uint32_t take = expect_min(iov[i].iov_len, k - done);

			model_push(&f->m, iov[i].iov_base, take);
			done += take;
		}
		ring_commit(r, k);
		prop_produced(f, before, k);
		break;
	}
	case 11:                        /* new low-water mark, sometimes */
		if (prng_below(&f->rng, 8) == 0) {
			k = prng_below(&f->rng, r->cap + 2);
			ring_set_notify(r, edge_readable, edge_writable, &f->e, k);
			assert_int_equal(r->lowat, k < r->cap ? k : r->cap - 1);
		}
		break;
	case 12:                        /* reset, rarely */
		if (prng_below(&f->rng, 16) == 0) {
			ring_reset(r);
			model_pop(&f->m, before);
			prop_consumed(f, before, before);
		}
		break;
	}

	assert_int_equal(ring_used(r), f->m.used);
	assert_int_equal(ring_space(r), r->cap - f->m.used);
	assert_int_equal(!!ring_empty(r), f->m.used == 0);
	assert_int_equal(!!ring_full(r), f->m.used == r->cap);
	assert_int_equal(f->e.readable, f->want_readable);
	assert_int_equal(f->e.writable, f->want_writable);
}

static void prop_run(uint64_t seed, uint32_t cap, uint32_t start,
                     unsigned steps)
{
	struct prop f;

	memset(&f, 0, sizeof f);
	f.rng.s = seed;
	ring_with_edges(&f.r, &f.e, cap, prng_below(&f.rng, cap + 1));
	f.r.head = f.r.tail = start;
	f.m.cap = cap;
	f.m.b = malloc(cap);
	f.scratch = malloc(2 * (size_t)cap + 8);
	assert_non_null(f.m.b);
	assert_non_null(f.scratch);
	for (unsigned i = 0; i < steps; i++)
		prop_step(&f);
	free(f.scratch);
	free(f.m.b);
	ring_destroy(&f.r);
}

static void ring_random_operations_match_a_byte_fifo_model(void **state)
{
	static const uint32_t caps[] = { 1, 2, 4, 8, 64, 256, 4096 };
	uint64_t seed = *(uint64_t *)*state;
	struct prng rng = { seed };
	unsigned total = 0;

	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		uint32_t cap = caps[i];
		/* From 0, and from just below the wrap of both counters. */
		uint32_t starts[2] = {
			0, UINT32_MAX - prng_below(&rng, 2 * cap + 2),
		};

		for (int j = 0; j < 2; j++) {
			prop_run(prng_next(&rng), cap, starts[j], 8000);
			total += 8000;
		}
	}
	assert_true(total >= 100000);
}

int main(void)
{
	uint64_t seed = test_seed();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_init_rejects_caps_that_are_not_powers_of_two),
		cmocka_unit_test(ring_buffer_is_allocated_by_the_first_write_not_by_init),
		cmocka_unit_test(ring_release_frees_an_empty_buffer_and_keeps_one_with_data),
		cmocka_unit_test(ring_write_takes_what_fits_and_returns_the_count),
		cmocka_unit_test(ring_readable_fires_only_when_empty_ring_gets_data),
		cmocka_unit_test(ring_writable_fires_when_full_ring_is_no_longer_full),
		cmocka_unit_test(ring_writable_fires_when_used_drops_to_lowat),
		cmocka_unit_test(ring_reset_drops_data_and_fires_writable_above_lowat),
		cmocka_unit_test(ring_counters_wrap_past_uint32_max_keeping_content),
		cmocka_unit_test(ring_peek_and_reserve_split_at_the_buffer_end),
		cmocka_unit_test(ring_consume_and_commit_clamp_to_what_is_there),
		cmocka_unit_test(ring_writev_takes_elements_in_order_with_one_edge),
		cmocka_unit_test_prestate(ring_random_operations_match_a_byte_fifo_model,
		                          &seed),
	};

	printf("test_ring: seed %" PRIu64 " (CHANFS_SEED=%" PRIu64
	       " repeats this run)\n", seed, seed);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
