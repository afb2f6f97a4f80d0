/*
 * bench_util.h — what the benchmarks share: a monotonic clock and the
 * median of repeated runs.
 */
#ifndef CHANFS_BENCH_UTIL_H
#define CHANFS_BENCH_UTIL_H

/* Monotonic seconds. */
double bench_now(void);
/* The median of v[0, n) (n >= 1); v is sorted in place. */
double bench_median(double *v, unsigned n);

#endif
