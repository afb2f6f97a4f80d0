/*
 * inorder: the completion reorder window, case by case and then with
 * shuffled completions for every power-of-two size 1..1024 against a
 * simple model (seed printed; CHANFS_SEED=<n> repeats a run).
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chanfs/inorder.h"

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

static uint32_t prng_below(struct prng *p, uint32_t n)
{
	return n ? (uint32_t)(prng_next(p) % n) : 0;
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

/* What the flush callback was called with, in order. */
struct flushed {
	uint32_t seq, id, len;
	bool last;
};

struct recorder {
	struct flushed *calls;
	size_t n, max;
};

static void record_flush(void *arg, uint32_t seq, uint32_t id, uint32_t len,
                         bool last)
{
	struct recorder *rec = arg;

	assert_true(rec->n < rec->max);
	rec->calls[rec->n++] = (struct flushed){ seq, id, len, last };
}

static void recorder_init(struct recorder *rec, size_t max)
{
	rec->calls = calloc(max, sizeof *rec->calls);
	assert_non_null(rec->calls);
	rec->n = 0;
	rec->max = max;
}

static void recorder_check(const struct recorder *rec, size_t i, uint32_t seq,
                           uint32_t id, uint32_t len, bool last)
{
	assert_true(i < rec->n);
	assert_int_equal(rec->calls[i].seq, seq);
	assert_int_equal(rec->calls[i].id, id);
	assert_int_equal(rec->calls[i].len, len);
	assert_int_equal(rec->calls[i].last, last);
}

static void inorder_init_rejects_sizes_not_powers_of_two_to_32768(void **state)
{
	static const uint32_t bad[] = { 0, 3, 12, 32769, 65536, UINT32_MAX };
	struct inorder w;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(inorder_init(&w, bad[i]), -EINVAL);
	assert_int_equal(inorder_init(&w, 1), 0);
	inorder_destroy(&w);
	assert_int_equal(inorder_init(&w, 32768), 0);
	assert_int_equal(w.size, 32768);
	assert_int_equal(inorder_outstanding(&w), 0);
	inorder_destroy(&w);
}

static void inorder_begin_hands_out_numbers_until_the_window_is_full(void **state)
{
	struct inorder w;

	(void)state;
	assert_int_equal(inorder_init(&w, 4), 0);
	for (int64_t i = 0; i < 4; i++)
		assert_int_equal(inorder_begin(&w), i);
	assert_int_equal(inorder_outstanding(&w), 4);
	assert_int_equal(inorder_begin(&w), -ENOSPC);
	/* Completing the first frees one place. */
	assert_int_equal(inorder_complete(&w, 0, 0, 0, NULL, NULL), 1);
	assert_int_equal(inorder_begin(&w), 4);
	assert_int_equal(inorder_begin(&w), -ENOSPC);
	inorder_destroy(&w);
}

static void inorder_completing_the_next_flushes_it_alone_as_last(void **state)
{
	struct recorder rec;
	struct inorder w;

	(void)state;
	recorder_init(&rec, 8);
	assert_int_equal(inorder_init(&w, 8), 0);
	inorder_begin(&w);
	inorder_begin(&w);
	assert_int_equal(inorder_complete(&w, 0, 7, 70, record_flush, &rec), 1);
	assert_int_equal(rec.n, 1);
	recorder_check(&rec, 0, 0, 7, 70, true);
	assert_int_equal(inorder_outstanding(&w), 1);
	inorder_destroy(&w);
	free(rec.calls);
}

static void inorder_early_completions_park_until_the_next_arrives(void **state)
{
	struct recorder rec;
	struct inorder w;

	(void)state;
	recorder_init(&rec, 8);
	assert_int_equal(inorder_init(&w, 8), 0);
	for (int i = 0; i < 5; i++)
		inorder_begin(&w);
	assert_int_equal(inorder_complete(&w, 2, 12, 20, record_flush, &rec), 0);
	assert_int_equal(inorder_complete(&w, 1, 11, 10, record_flush, &rec), 0);
	assert_int_equal(inorder_complete(&w, 4, 14, 40, record_flush, &rec), 0);
	assert_int_equal(rec.n, 0);
	/* 0 arrives: 0, 1, 2 flush in one run; 4 waits for 3. */
	assert_int_equal(inorder_complete(&w, 0, 10, 0, record_flush, &rec), 3);
	assert_int_equal(rec.n, 3);
	recorder_check(&rec, 0, 0, 10, 0, false);
	recorder_check(&rec, 1, 1, 11, 10, false);
	recorder_check(&rec, 2, 2, 12, 20, true);
	assert_int_equal(inorder_outstanding(&w), 2);
	assert_int_equal(inorder_complete(&w, 3, 13, 30, record_flush, &rec), 2);
	recorder_check(&rec, 3, 3, 13, 30, false);
	recorder_check(&rec, 4, 4, 14, 40, true);
	assert_int_equal(inorder_outstanding(&w), 0);
	inorder_destroy(&w);
	free(rec.calls);
}

static void inorder_complete_rejects_seqs_not_outstanding(void **state)
{
	struct inorder w;

	(void)state;
	assert_int_equal(inorder_init(&w, 4), 0);
	assert_int_equal(inorder_complete(&w, 0, 0, 0, NULL, NULL), -EINVAL);
	inorder_begin(&w);
	inorder_begin(&w);
	assert_int_equal(inorder_complete(&w, 2, 0, 0, NULL, NULL), -EINVAL);
	assert_int_equal(inorder_complete(&w, 4, 0, 0, NULL, NULL), -EINVAL);
	assert_int_equal(inorder_complete(&w, UINT32_MAX, 0, 0, NULL, NULL),
	                 -EINVAL);
	assert_int_equal(inorder_complete(&w, 0, 0, 0, NULL, NULL), 1);
	/* Flushed already: no longer outstanding. */
	assert_int_equal(inorder_complete(&w, 0, 0, 0, NULL, NULL), -EINVAL);
	assert_int_equal(inorder_outstanding(&w), 1);
	inorder_destroy(&w);
}

static void inorder_complete_rejects_a_second_completion(void **state)
{
	struct recorder rec;
	struct inorder w;

	(void)state;
	recorder_init(&rec, 4);
	assert_int_equal(inorder_init(&w, 4), 0);
	inorder_begin(&w);
	inorder_begin(&w);
	assert_int_equal(inorder_complete(&w, 1, 5, 50, record_flush, &rec), 0);
	assert_int_equal(inorder_complete(&w, 1, 6, 60, record_flush, &rec),
	                 -EALREADY);
	/* The first completion's payload is the one kept. */
	assert_int_equal(inorder_complete(&w, 0, 4, 40, record_flush, &rec), 2);
	recorder_check(&rec, 1, 1, 5, 50, true);
	inorder_destroy(&w);
	free(rec.calls);
}

static void inorder_reset_forgets_parked_completions(void **state)
{
	struct recorder rec;
	struct inorder w;

	(void)state;
	recorder_init(&rec, 4);
	assert_int_equal(inorder_init(&w, 4), 0);
	for (int i = 0; i < 4; i++)
		inorder_begin(&w);
	inorder_complete(&w, 1, 1, 1, record_flush, &rec);
	inorder_complete(&w, 3, 3, 3, record_flush, &rec);
	inorder_reset(&w, 100);
	assert_int_equal(inorder_outstanding(&w), 0);
	assert_int_equal(inorder_complete(&w, 1, 1, 1, record_flush, &rec),
	                 -EINVAL);
	assert_int_equal(inorder_begin(&w), 100);
	assert_int_equal(inorder_begin(&w), 101);
	/* 101 shares slot 1 with the forgotten parked 1: it must not flush. */
	assert_int_equal(inorder_complete(&w, 100, 9, 9, record_flush, &rec), 1);
	assert_int_equal(rec.n, 1);
	recorder_check(&rec, 0, 100, 9, 9, true);
	inorder_destroy(&w);
	free(rec.calls);
}

static void inorder_sequence_numbers_wrap_past_uint32_max(void **state)
{
	struct recorder rec;
	struct inorder w;

	(void)state;
	recorder_init(&rec, 4);
	assert_int_equal(inorder_init(&w, 4), 0);
	inorder_reset(&w, UINT32_MAX - 1);
	assert_int_equal(inorder_begin(&w), (int64_t)UINT32_MAX - 1);
	assert_int_equal(inorder_begin(&w), (int64_t)UINT32_MAX);
	assert_int_equal(inorder_begin(&w), 0);
	assert_int_equal(inorder_begin(&w), 1);
	assert_int_equal(inorder_begin(&w), -ENOSPC);
	assert_int_equal(inorder_complete(&w, 1, 1, 0, record_flush, &rec), 0);
	assert_int_equal(inorder_complete(&w, 0, 0, 0, record_flush, &rec), 0);
	assert_int_equal(inorder_complete(&w, UINT32_MAX, 3, 0, record_flush,
	                                  &rec), 0);
	assert_int_equal(inorder_complete(&w, UINT32_MAX - 1, 2, 0,
	                                  record_flush, &rec), 4);
	recorder_check(&rec, 0, UINT32_MAX - 1, 2, 0, false);
	recorder_check(&rec, 1, UINT32_MAX, 3, 0, false);
	recorder_check(&rec, 2, 0, 0, 0, false);
	recorder_check(&rec, 3, 1, 1, 0, true);
	assert_int_equal(w.next, 2);
	inorder_destroy(&w);
	free(rec.calls);
}

/* ---- shuffled completions against a model ---- */

struct shuffle {
	struct prng rng;
	struct inorder w;
	struct recorder rec;
	uint32_t size;
	uint32_t next, issued;  /* the model's window */
	bool *done;             /* by seq % size */
	uint32_t *id, *len;     /* payload by seq % size */
	uint32_t *pending;      /* begun, not completed: completion order */
	uint32_t npending;
};

static void shuffle_begin(struct shuffle *s)
{
	int64_t seq = inorder_begin(&s->w);

	if (s->issued - s->next == s->size) {
		assert_int_equal(seq, -ENOSPC);
		return;
	}
	assert_int_equal(seq, (int64_t)s->issued);
	s->pending[s->npending++] = s->issued++;
}

/* Complete pending[i] and check the run flushed against the model. */
static void shuffle_complete(struct shuffle *s, uint32_t i)
{
	uint32_t mask = s->size - 1;
	uint32_t seq = s->pending[i];
	uint32_t id = (uint32_t)prng_next(&s->rng);
	uint32_t len = (uint32_t)prng_next(&s->rng);
	uint32_t want = 0;
	int rc;

	s->pending[i] = s->pending[--s->npending];
	s->done[seq & mask] = true;
	s->id[seq & mask] = id;
	s->len[seq & mask] = len;
	s->rec.n = 0;
	rc = inorder_complete(&s->w, seq, id, len, record_flush, &s->rec);
	if (seq == s->next) {
		while (s->next != s->issued && s->done[s->next & mask]) {
			uint32_t k = s->next & mask;
			bool last;

			s->done[k] = false;
			s->next++;
			last = s->next == s->issued || !s->done[s->next & mask];
			recorder_check(&s->rec, want, s->next - 1, s->id[k],
			               s->len[k], last);
			want++;
		}
	}
	assert_int_equal(rc, want);
	assert_int_equal(s->rec.n, want);
	assert_int_equal(inorder_outstanding(&s->w), s->issued - s->next);
}

/* Try a completion that must be refused, and check nothing flushed. */
static void shuffle_misuse(struct shuffle *s)
{
	uint32_t out = s->issued - s->next;
	uint32_t off = prng_below(&s->rng, out + 1);
	uint32_t seq;
	int rc, want;

	switch (prng_below(&s->rng, 3)) {
	case 0:         /* flushed already (or never issued, after a reset) */
		seq = s->next - 1 - prng_below(&s->rng, 3 * s->size);
		want = -EINVAL;
		break;
	case 1:         /* not handed out yet */
		seq = s->issued + prng_below(&s->rng, 3 * s->size);
		want = -EINVAL;
		break;
	default:        /* outstanding: refused only if already completed */
		if (off == out || !s->done[(s->next + off) & (s->size - 1)])
			return;
		seq = s->next + off;
		want = -EALREADY;
		break;
	}
	s->rec.n = 0;
	rc = inorder_complete(&s->w, seq, 0, 0, record_flush, &s->rec);
	assert_int_equal(rc, want);
	assert_int_equal(s->rec.n, 0);
}

static void shuffle_run(uint64_t seed, uint32_t size, uint32_t start,
                        unsigned steps)
{
	struct shuffle s;

	memset(&s, 0, sizeof s);
	s.rng.s = seed;
	s.size = size;
	s.done = calloc(size, sizeof *s.done);
	s.id = calloc(size, sizeof *s.id);
	s.len = calloc(size, sizeof *s.len);
	s.pending = calloc(size, sizeof *s.pending);
	assert_non_null(s.done);
	assert_non_null(s.id);
	assert_non_null(s.len);
	assert_non_null(s.pending);
	recorder_init(&s.rec, size);
	assert_int_equal(inorder_init(&s.w, size), 0);
	inorder_reset(&s.w, start);
	s.next = s.issued = start;

	/* Whole windows completed in a random permutation. */
	for (int round = 0; round < 4; round++) {
		while (s.issued - s.next < size)
			shuffle_begin(&s);
		shuffle_begin(&s); /* full: -ENOSPC */
		while (s.npending)
			shuffle_complete(&s, prng_below(&s.rng, s.npending));
	}
	/* Begins and completions interleaved, window depth drifting. */
	for (unsigned i = 0; i < steps; i++) {
		uint32_t r = prng_below(&s.rng, 64);

		if (r == 0)
			shuffle_misuse(&s);
		else if (r < 32 || s.npending == 0)
			shuffle_begin(&s);
		else
			shuffle_complete(&s, prng_below(&s.rng, s.npending));
	}
	while (s.npending)
		shuffle_complete(&s, prng_below(&s.rng, s.npending));
	assert_int_equal(inorder_outstanding(&s.w), 0);
	assert_int_equal(s.w.next, s.issued);

	inorder_destroy(&s.w);
	free(s.rec.calls);
	free(s.pending);
	free(s.len);
	free(s.id);
	free(s.done);
}

static void inorder_shuffled_completions_flush_in_order_every_size(void **state)
{
	uint64_t seed = *(uint64_t *)*state;
	struct prng rng = { seed };

	for (uint32_t size = 1; size <= 1024; size <<= 1) {
		shuffle_run(prng_next(&rng), size, 0, 20000);
		shuffle_run(prng_next(&rng), size,
		            UINT32_MAX - prng_below(&rng, 2 * size), 20000);
	}
}

int main(void)
{
	uint64_t seed = test_seed();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(inorder_init_rejects_sizes_not_powers_of_two_to_32768),
		cmocka_unit_test(inorder_begin_hands_out_numbers_until_the_window_is_full),
		cmocka_unit_test(inorder_completing_the_next_flushes_it_alone_as_last),
		cmocka_unit_test(inorder_early_completions_park_until_the_next_arrives),
		cmocka_unit_test(inorder_complete_rejects_seqs_not_outstanding),
		cmocka_unit_test(inorder_complete_rejects_a_second_completion),
		cmocka_unit_test(inorder_reset_forgets_parked_completions),
		cmocka_unit_test(inorder_sequence_numbers_wrap_past_uint32_max),
		cmocka_unit_test_prestate(inorder_shuffled_completions_flush_in_order_every_size,
		                          &seed),
	};

	printf("test_inorder: seed %" PRIu64 " (CHANFS_SEED=%" PRIu64
	       " repeats this run)\n", seed, seed);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
