/*
 * bench_vsock_scale.c — the figures of many connections and many small
 * writes (issue 12, goals 4, 5 and 7):
 *
 *   conns64_aggregate  64 connections at once, 32 writing 64 KiB blocks to
 *                      MNT/vsock/13 and 32 reading 64 KiB blocks from
 *                      MNT/vsock/10, measured over a window in which all
 *                      run (MB/s, all together); base: the one-connection
 *                      64 KiB figure (the mean of h2g_64k and g2h_64k)
 *   conns64_fair       the fastest connection's MB/s over the slowest's
 *                      in that window (the run with the median ratio)
 *   coalesce_pkts_per_byte  100 000 one-byte writes to MNT/vsock/11: the
 *                      RW packets the guest received per byte; base 1
 *                      (one packet per write)
 *   coalesce_whole     runs in which the guest got every byte, checksum
 *                      equal; base: the runs
 *   idle10k_rss_kib    10 000 connections to the guest's echo opened and
 *                      left idle on a fresh chanfs: its VmRSS growth per
 *                      connection (KiB); base: the goal, 4 KiB
 *   idle10k_rss_kib_perturb  the same with MALLOC_PERTURB_=165 in
 *                      chanfs's environment
 *   idle10k_echoed     then one byte through each of them and back:
 *                      connections that echoed; base: all of them
 * RLIMIT_NOFILE is raised in this process only, while the idle
 * connections are open (chanfs and the guest need no fd per connection).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "guest_vsock.h"
#include "bench_vsock.h"

#define BV_C64 64
#define BV_C64_BLOCK (64u << 10)
#define BV_C64_WARM_S 0.3
#define BV_C64_WINDOW_S 1.0
#define BV_COALESCE_N 100000

struct bv_worker {
	int fd;
	bool writer;
	atomic_uint_fast64_t bytes;
	atomic_int *stop;
	pthread_barrier_t *start;
	int err;
	pthread_t t;
};

static void *bv_worker_run(void *arg)
{
	struct bv_worker *w = arg;
	uint8_t *buf = malloc(BV_C64_BLOCK);

	if (!buf)
		bv_die("malloc");
	memset(buf, 'w', BV_C64_BLOCK);
	pthread_barrier_wait(w->start);
	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		ssize_t n = w->writer ? write(w->fd, buf, BV_C64_BLOCK) :
		            read(w->fd, buf, BV_C64_BLOCK);

		if (n <= 0) {
			w->err = n ? errno : EPIPE;
			break;
		}
		atomic_fetch_add_explicit(&w->bytes, (uint64_t)n,
		                          memory_order_relaxed);
	}
	free(buf);
	return NULL;
}

static void bv_sleep(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct bv_c64_run {
	double aggregate, fastest, slowest, ratio;
};

static void bv_c64_once(struct bv_inst *in, struct bv_c64_run *out)
{
	static struct bv_worker w[BV_C64];
	uint64_t b0[BV_C64], d;
	pthread_barrier_t start;
	atomic_int stop = 0;
	char wpath[256], rpath[256];
	double t0, t1, sum = 0;
	double dsum[2] = { 0, 0 }, dmin[2] = { INFINITY, INFINITY };
	double dmax[2] = { 0, 0 };
	unsigned i;

	snprintf(wpath, sizeof(wpath), "%s", vh_path(&in->h, "vsock/13"));
	snprintf(rpath, sizeof(rpath), "%s", vh_path(&in->h, "vsock/10"));
	pthread_barrier_init(&start, NULL, BV_C64 + 1);
	for (i = 0; i < BV_C64; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].writer = i % 2 == 0;
		w[i].fd = open(w[i].writer ? wpath : rpath,
		               (w[i].writer ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
		if (w[i].fd < 0)
			bv_die("open (64 connections)");
		w[i].stop = &stop;
		w[i].start = &start;
		atomic_init(&w[i].bytes, 0);
	}
	for (i = 0; i < BV_C64; i++)
		if (pthread_create(&w[i].t, NULL, bv_worker_run, &w[i]))
			bv_die("pthread_create");
	pthread_barrier_wait(&start);
	bv_sleep(BV_C64_WARM_S);
	t0 = bv_now();
	for (i = 0; i < BV_C64; i++)
		b0[i] = atomic_load(&w[i].bytes);
	bv_sleep(BV_C64_WINDOW_S);
	t1 = bv_now();
	out->fastest = 0;
	out->slowest = INFINITY;
	for (i = 0; i < BV_C64; i++) {
		double r;

		d = atomic_load(&w[i].bytes) - b0[i];
		r = (double)d / (t1 - t0) / 1e6;
		sum += (double)d;
		dsum[i % 2] += r;
		if (r > out->fastest)
			out->fastest = r;
		if (r < out->slowest)
			out->slowest = r;
		if (r > dmax[i % 2])
			dmax[i % 2] = r;
		if (r < dmin[i % 2])
			dmin[i % 2] = r;
	}
	printf("conns64: host->guest %.0f MB/s (each %.1f..%.1f), guest->host "
	       "%.0f MB/s (each %.1f..%.1f)\n", dsum[0], dmin[0], dmax[0],
	       dsum[1], dmin[1], dmax[1]);
	atomic_store(&stop, 1);
	for (i = 0; i < BV_C64; i++) {
		pthread_join(w[i].t, NULL);
		if (w[i].err)
			fprintf(stderr, "bench-vsock: connection %u of 64: %s\n",
			        i, strerror(w[i].err));
		close(w[i].fd);
	}
	pthread_barrier_destroy(&start);
	out->aggregate = sum / (t1 - t0) / 1e6;
	out->ratio = out->slowest > 0 ? out->fastest / out->slowest : INFINITY;
	/* every connection ended on the guest before the next run */
	in->ended[13] += BV_C64 / 2 - 1;
	bv_inst_ended(in, 13);
	in->ended[10] += BV_C64 / 2 - 1;
	bv_inst_ended(in, 10);
}

void bv_scale_conns64(struct bv_inst *in, double single)
{
	struct bv_c64_run runs[16];
	double agg[16], ratio[16], med;
	unsigned r, pick = 0;

	for (r = 0; r < bv_runs; r++) {
		bv_c64_once(in, &runs[r]);
		agg[r] = runs[r].aggregate;
		ratio[r] = runs[r].ratio;
	}
	bv_fig_add("conns64_aggregate", "MB/s", bv_median(agg, bv_runs), single,
	           false, ">= 1.0", "one connection at 64 KiB (mean of both "
	           "ways)");
	med = bv_median(ratio, bv_runs);
	for (r = 0; r < bv_runs; r++)
		if (runs[r].ratio == med)
			pick = r;
	bv_fig_add("conns64_fair", "MB/s", runs[pick].fastest,
	           runs[pick].slowest, true, "<= 1.5",
	           "the slowest of the 64 (chanfs: the fastest)");
}

void bv_scale_coalesce(struct bv_inst *in)
{
	double ppb[16];
	unsigned r, whole = 0;
	uint8_t b;

	for (r = 0; r < bv_runs; r++) {
		int fd = open(vh_path(&in->h, "vsock/11"), O_WRONLY | O_CLOEXEC);
		uint64_t fnv = GUEST_FNV_INIT, rx, pkts;
		const char *l;
		unsigned i;

		if (fd < 0)
			bv_die("open vsock/11");
		for (i = 0; i < BV_COALESCE_N; i++) {
			b = (uint8_t)(i * 131u + r);
			if (write(fd, &b, 1) != 1)
				bv_die("write (coalescing)");
			fnv = guest_fnv1a(fnv, &b, 1);
		}
		if (close(fd) < 0)
			bv_die("close (coalescing)");
		l = bv_inst_ended(in, 11);
		if (!l)
			exit(1);
		rx = vh_kv_u64(l, "rx");
		pkts = vh_kv_u64(l, "rx_pkts");
		ppb[r] = rx ? (double)pkts / (double)rx : 0;
		if (rx == BV_COALESCE_N && vh_kv_hex(l, "rx_fnv") == fnv)
			whole++;
		else
			fprintf(stderr, "bench-vsock: coalescing run %u: the guest "
			        "got %" PRIu64 " bytes, %s checksum\n", r, rx,
			        vh_kv_hex(l, "rx_fnv") == fnv ? "equal" :
			        "another");
	}
	bv_fig_add("coalesce_pkts_per_byte", "pkt/B", bv_median(ppb, bv_runs),
	           1.0, true, "<< 1", "one packet per write");
	bv_fig_add("coalesce_whole", "runs", whole, bv_runs, false, "= 1.0",
	           "the runs");
}

/* One fresh chanfs: KiB of RSS growth per idle connection; *echoed gets
 * the connections that then echoed a byte. */
static double bv_idle_once(unsigned n, unsigned *echoed)
{
	struct bv_inst in;
	struct rlimit old;
	int *fds = calloc(n, sizeof(int));
	long rss0, rss1, rss2;
	unsigned i, opened = 0;
	char path[256], c;
	int fd;

	if (!fds)
		bv_die("calloc");
	if (bv_inst_start(&in, NULL, false, 0) < 0)
		exit(1);
	snprintf(path, sizeof(path), "%s", vh_path(&in.h, "vsock/9"));
	/* one connection first, so that what every connection shares (FUSE
	 * buffers, the first allocations) is in the starting figure */
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || write(fd, "x", 1) != 1 || read(fd, &c, 1) != 1)
		bv_die("idle warm-up echo");
	close(fd);
	bv_inst_ended(&in, 9);
	getrlimit(RLIMIT_NOFILE, &old);
	if (vh_raise_nofile((long)n + 256) < (long)n + 64) {
		fprintf(stderr, "bench-vsock: RLIMIT_NOFILE too low for %u "
		        "connections\n", n);
		exit(1);
	}
	rss0 = bv_rss_kb(&in);
	for (i = 0; i < n; i++) {
		fds[i] = open(path, O_RDWR | O_CLOEXEC);
		if (fds[i] < 0) {
			fprintf(stderr, "bench-vsock: idle open %u: %s\n", i,
			        strerror(errno));
			break;
		}
		opened++;
	}
	rss1 = bv_rss_kb(&in);
	*echoed = 0;
	for (i = 0; i < opened; i++)
		if (write(fds[i], "e", 1) != 1)
			fds[i] = -fds[i] - 1;
	for (i = 0; i < opened; i++)
		if (fds[i] >= 0 && read(fds[i], &c, 1) == 1 && c == 'e')
			(*echoed)++;
	rss2 = bv_rss_kb(&in);
	for (i = 0; i < opened; i++)
		close(fds[i] >= 0 ? fds[i] : -fds[i] - 1);
	setrlimit(RLIMIT_NOFILE, &old);
	if (opened) {
		in.ended[9] += opened - 1;
		bv_inst_ended(&in, 9);
	}
	printf("idle: %u connections opened, VmRSS %ld -> %ld KiB, %ld KiB "
	       "after the echoes (%u echoed), %ld KiB after the closes\n",
	       opened, rss0, rss1, rss2, *echoed, bv_rss_kb(&in));
	bv_inst_stop(&in);
	free(fds);
	return opened < n ? INFINITY : (double)(rss1 - rss0) / n;
}

void bv_scale_idle(unsigned n)
{
	static const char *const names[2] = { "idle10k_rss_kib",
	                                      "idle10k_rss_kib_perturb" };
	double kib[16], echoed[16];
	unsigned p, r, e;

	for (p = 0; p < 2; p++) {
		if (p)
			setenv("MALLOC_PERTURB_", "165", 1);
		else
			unsetenv("MALLOC_PERTURB_");
		for (r = 0; r < bv_runs; r++) {
			kib[r] = bv_idle_once(n, &e);
			echoed[r] = e;
		}
		bv_fig_add(names[p], "KiB", bv_median(kib, bv_runs), 4.0, true,
		           "<= 1.0", "the goal: 4 KiB per connection");
		if (!p)
			bv_fig_add("idle10k_echoed", "conns",
			           bv_median(echoed, bv_runs), n, false, "= 1.0",
			           "every connection");
	}
	unsetenv("MALLOC_PERTURB_");
}
