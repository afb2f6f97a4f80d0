/*
 * bench-inorder: the slot-array reorder window against the hash-table
 * reorder buffer it replaces (seed 002), on the same completion streams.
 *
 * A stream is N sequence numbers completed in blocks of W (the window):
 * each block is begun in full, then completed in a random permutation.
 * The baseline parks each early completion in a GHashTable keyed by its
 * sequence number and, when the expected one arrives, flushes the run by
 * looking up and removing seq + 1, seq + 2, ... until one is missing.  The
 * payload travels in the value pointer, so the baseline allocates nothing
 * per element either: the comparison is of the lookups alone.
 *
 * Prints completions per second for each and the ratio inorder/GHashTable.
 * Both sides feed the same checksum, which must agree.
 *
 * usage: bench-inorder [completions-per-window-size]   (default 1 Mi)
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <glib.h>

#include "chanfs/inorder.h"

struct sink {
	uint64_t sum;
	uint64_t expect;   /* the next seq a flush must carry */
	uint64_t runs;
	bool bad;
};

static void bench_emit(struct sink *k, uint32_t seq, uint32_t id, uint32_t len)
{
	if (seq != (uint32_t)k->expect)
		k->bad = true;
	k->expect++;
	k->sum = k->sum * 31 + ((uint64_t)id << 32 | len);
}

static void bench_flush(void *arg, uint32_t seq, uint32_t id, uint32_t len,
                        bool last)
{
	struct sink *k = arg;

	bench_emit(k, seq, id, len);
	k->runs += last;
}

_Static_assert(sizeof(gpointer) >= 8, "the baseline's payload rides in a pointer");

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t bench_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* order[i]: the offset within its block of the i-th completion. */
static uint32_t *bench_stream(uint32_t n, uint32_t w, uint64_t seed)
{
	uint32_t *order = malloc((size_t)n * sizeof *order);

	if (!order)
		return NULL;
	for (uint32_t b = 0; b < n; b += w) {
		for (uint32_t i = 0; i < w; i++)
			order[b + i] = i;
		for (uint32_t i = w - 1; i > 0; i--) {
			uint32_t j = (uint32_t)(bench_rand(&seed) % (i + 1));
			uint32_t t = order[b + i];

			order[b + i] = order[b + j];
			order[b + j] = t;
		}
	}
	return order;
}

/* The payload of seq: a fake descriptor id and length. */
static inline uint32_t bench_id(uint32_t seq) { return seq * 2654435761u; }
static inline uint32_t bench_len(uint32_t seq) { return seq ^ 0x5a5a; }

static double bench_inorder(const uint32_t *order, uint32_t n, uint32_t w,
                            struct sink *k)
{
	struct inorder win;
	double t0;

	if (inorder_init(&win, w) < 0)
		return -1;
	t0 = bench_now();
	for (uint32_t b = 0; b < n; b += w) {
		for (uint32_t i = 0; i < w; i++)
			(void)inorder_begin(&win);
		for (uint32_t i = 0; i < w; i++) {
			uint32_t seq = b + order[b + i];

			inorder_complete(&win, seq, bench_id(seq),
			                 bench_len(seq), bench_flush, k);
		}
	}
	t0 = bench_now() - t0;
	if (inorder_outstanding(&win) != 0)
		k->bad = true;
	inorder_destroy(&win);
	return t0;
}

static double bench_ghash(const uint32_t *order, uint32_t n, uint32_t w,
                          struct sink *k)
{
	GHashTable *parked = g_hash_table_new(g_direct_hash, g_direct_equal);
	uint32_t next = 0;
	double t0;

	(void)w;
	t0 = bench_now();
	for (uint32_t b = 0; b < n; b += w) {
		for (uint32_t i = 0; i < w; i++) {
			uint32_t seq = b + order[b + i];
			uint64_t v = (uint64_t)bench_id(seq) << 32 |
			             bench_len(seq);
			gpointer got;

			if (seq != next) {
				g_hash_table_insert(parked,
				                    GUINT_TO_POINTER(seq),
				                    (gpointer)(uintptr_t)v);
				continue;
			}
			bench_emit(k, seq, (uint32_t)(v >> 32), (uint32_t)v);
			next++;
			while (g_hash_table_lookup_extended(parked,
			                                    GUINT_TO_POINTER(next),
			                                    NULL, &got)) {
				g_hash_table_remove(parked,
				                    GUINT_TO_POINTER(next));
				v = (uint64_t)(uintptr_t)got;
				bench_emit(k, next, (uint32_t)(v >> 32),
				           (uint32_t)v);
				next++;
			}
			k->runs++;
		}
	}
	t0 = bench_now() - t0;
	if (g_hash_table_size(parked) != 0)
		k->bad = true;
	g_hash_table_destroy(parked);
	return t0;
}

int main(int argc, char **argv)
{
	static const uint32_t windows[] = { 64, 256, 1024 };
	uint32_t n = 1u << 20;
	int rc = 0;

	if (argc > 1)
		n = (uint32_t)strtoul(argv[1], NULL, 0);
	if (n < 1024)
		n = 1024;
	n &= ~1023u; /* whole blocks for every window */

	printf("bench-inorder: %" PRIu32 " completions per window size, "
	       "shuffled within each window\n", n);
	printf("%8s %16s %16s %8s\n", "window", "inorder op/s", "GHashTable op/s",
	       "ratio");
	for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
		uint32_t w = windows[i];
		uint32_t *order = bench_stream(n, w, 0x0dd5eed + w);
		struct sink a = { 0 }, h = { 0 };
		double ta = 1e30, th = 1e30;

		if (!order) {
			fprintf(stderr, "bench-inorder: out of memory\n");
			return 1;
		}
		/* Best of three, alternating, so neither side gets a warmer
		 * cache or a quieter moment by going first every time. */
		for (int rep = 0; rep < 3; rep++) {
			struct sink sa = { 0 }, sh = { 0 };
			double t;

			t = bench_inorder(order, n, w, &sa);
			if (t < ta)
				ta = t;
			t = bench_ghash(order, n, w, &sh);
			if (t < th)
				th = t;
			a = sa;
			h = sh;
		}
		free(order);
		if (ta < 0 || a.bad || h.bad || a.sum != h.sum ||
		    a.expect != n || h.expect != n || a.runs != h.runs) {
			fprintf(stderr, "bench-inorder: window %" PRIu32
			        ": the two reorder buffers disagree\n", w);
			rc = 1;
			continue;
		}
		printf("%8" PRIu32 " %16.0f %16.0f %7.2fx\n", w, n / ta, n / th,
		       th / ta);
	}
	return rc;
}
