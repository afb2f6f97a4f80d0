/*
 * bench_vsock.h — what the parts of bench-vsock share: one chanfs with its
 * simulated guest (an instance), the figure table, timing and the median
 * of repeated runs.
 *
 * The guest of a full instance (bv_inst_start with full = true) listens on
 *   7  sink,check=0            host->guest throughput
 *   8  source=TOTAL,check=0    guest->host throughput
 *   9  echo                    round trips, idle connections
 *   10 source=1000G,check=0    the reading half of the 64 connections
 *   11 sink                    small-write coalescing (checksummed)
 *   12 sink,check=0            connect + close
 *   13 sink,check=0            the writing half of the 64 connections
 * (check=0: the guest counts bytes but computes no checksum, so that the
 * figures measure chanfs and not the simulated guest's FNV-1a).
 */
#ifndef CHANFS_BENCH_VSOCK_H
#define CHANFS_BENCH_VSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_util.h"
#include "vsock_harness.h"

#define BV_MAX_CHUNK (1u << 20)
#define BV_PORTS 16
#define BV_MAX_RUNS 15             /* BV_RUNS at most */

struct bv_inst {
	struct vh h;
	struct vh_guest *g;
	unsigned ended[BV_PORTS];   /* guest "conn" lines awaited per port */
	uint64_t total;             /* port 8's source size */
};

/* What a process spent: CPU time on its main thread (schedstat, ns) and
 * its context switches (voluntary: it slept, i.e. one wake-up each). */
struct bv_cost {
	double cpu_ns[2];           /* chanfs, guest */
	double wakes[2];
	double ops;                 /* what the sums are divided by */
};

/* One figure: the medians of chanfs and of its baseline over the runs. */
struct bv_fig {
	char name[40];
	const char *unit;
	double chanfs, base;
	double pair;                /* socketpair, for the table (0: none) */
	bool lower_better;          /* times: ratio = chanfs / base */
	const char *goal;           /* e.g. ">= 0.5" (NULL: none) */
	const char *base_what;      /* what base is */
	struct bv_cost cost;        /* over all runs (ops 0: not measured) */
	const char *per;            /* what one op is ("MiB", "echo"...) */
};

extern uint8_t bv_buf[BV_MAX_CHUNK];
extern unsigned bv_runs;

#define bv_now bench_now
#define bv_median bench_median
void bv_die(const char *what) __attribute__((noreturn));
/* Append a figure (its ratio follows from chanfs and base) and print its
 * machine-readable line at once:
 *   figure NAME chanfs=X base=Y ratio=Z */
struct bv_fig *bv_fig_add(const char *name, const char *unit, double chanfs,
                          double base, bool lower_better, const char *goal,
                          const char *base_what);
double bv_fig_ratio(const struct bv_fig *f);
/* Attach what chanfs and the guest spent per op (per names it) and print
 *   cost NAME per=OP chanfs_cpu_us=.. chanfs_wakeups=.. guest_cpu_us=..
 *        guest_wakeups=..
 * (load-independent, unlike the figures on a shared machine). */
void bv_fig_cost(struct bv_fig *f, const struct bv_cost *c, const char *per);

/* Start chanfs (extra args NULL-terminated, may be NULL) and its guest
 * (full: every port above; else only 9:echo).  The environment variable
 * MALLOC_PERTURB_ is passed on as the caller left it.  0 or -1. */
int bv_inst_start(struct bv_inst *in, const char *const cargs[], bool full,
                  uint64_t total);
void bv_inst_stop(struct bv_inst *in);
/* Wait for the next "conn lport=PORT" line (a connection of that port
 * ended); NULL on timeout (printed).  The line is in in->g->line. */
const char *bv_inst_ended(struct bv_inst *in, unsigned port);
/* Add what chanfs and the guest spent since the last call (the first
 * call of a run: start with bv_cost_mark) to *c, with ops operations. */
void bv_cost_mark(const struct bv_inst *in, struct bv_cost *mark);
void bv_cost_add(const struct bv_inst *in, const struct bv_cost *mark,
                 struct bv_cost *c, double ops);
/* chanfs's VmRSS in KiB, or -1. */
long bv_rss_kb(const struct bv_inst *in);

void bv_write_all(int fd, size_t chunk, uint64_t total);
uint64_t bv_read_all(int fd, size_t chunk);

/* bench_vsock_scale.c: the figures of many connections. */
/* 64 connections at once, half writing to port 13, half reading from
 * port 10, in 64 KiB blocks; single is the one-connection 64 KiB figure
 * (MB/s) the aggregate is compared with. */
void bv_scale_conns64(struct bv_inst *in, double single);
/* 100 000 one-byte writes to port 11: RX packets per byte. */
void bv_scale_coalesce(struct bv_inst *in);
/* 10 000 idle connections to the echo port of fresh instances: RSS growth
 * per connection with and without MALLOC_PERTURB_, then one echo each. */
void bv_scale_idle(unsigned nconn);

/* bench_vsock_services.c: services/NAME against vsock/PORT on a fresh
 * instance of its own (throughput of total bytes per run, accept). */
void bv_svc_part(uint64_t total);

#endif
