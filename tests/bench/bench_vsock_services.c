/*
 * bench_vsock_services.c — services/NAME against vsock/PORT (issue 12,
 * goal 6's second half), both measured in one chanfs with one guest,
 * taking turns, with the same code on both sides:
 *
 *   svc_h2g_64k   write(2) of 64 KiB blocks into MNT/services/sink (a
 *                 guest connection to the service port that sent
 *                 "pipe:sink" and is a sink) until the guest has it all
 *                 (MB/s); base: the same into MNT/vsock/7 (a guest sink)
 *   svc_g2h_64k   read(2) of 64 KiB blocks from MNT/services/source (the
 *                 guest sends TOTAL bytes after "pipe:source") to EOF;
 *                 base: the same from MNT/vsock/8 (a guest source)
 *   svc_accept    open(2) of MNT/services/acc taking a guest connection
 *                 already waiting for it (us per open, 256 per run; the
 *                 fds are closed after the timed opens); base: open(2) of
 *                 MNT/vsock/listen/20 taking one waiting there (chanfs
 *                 runs with -l 20), the two taking turns every 32 opens;
 *                 the cost lines (per conn) include the closes
 *
 * The guest's service connections all connect at its start (sink,
 * source) or together once MNT/vsock/21 is opened (accept: after the
 * throughput runs, so that their thousands of idle connections are not
 * there while data flows), and wait; chanfs runs with a backlog and an
 * accept timeout that let every one of them wait.  A waiting source has
 * sent what its credit allows (chanfs's window, 256 KiB of 128 MiB)
 * before the open that reads it.
 *
 * BV_SVC_SIDE=svc or =base (for profiling chanfs, e.g. counting its
 * instructions under callgrind) runs only that side; the other's figures
 * are then 0.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_vsock.h"

#define BV_SVC_BLOCK (64u << 10)
#define BV_SVC_ACC_N 256          /* opens per accept run and side */
#define BV_SVC_ACC_STEP 32        /* ... in turns of this many */
#define BV_SVC_LPORT "20"         /* chanfs -l: MNT/vsock/listen/20 */
#define BV_SVC_TRIGGER "21"       /* opening vsock/21 starts the accept
                                     connections */

/* How a transfer's end shows in the guest's output: its nth line with
 * every word of needle (one counter per needle, shared by the figures
 * whose connections print the same words). */
struct bv_svc_end {
	const char *needle;
	unsigned seen;
};

static const char *bv_svc_wait_end(struct bv_inst *in, struct bv_svc_end *e)
{
	const char *l = vh_guest_wait(in->g, e->needle, ++e->seen,
	                              VH_TIMEOUT_MS);

	if (!l) {
		fprintf(stderr, "bench-vsock: no line %u with '%s'\n", e->seen,
		        e->needle);
		exit(1);
	}
	return l;
}

/* MB/s writing in->total bytes into MNT/rel until the guest has them. */
static double bv_svc_write(struct bv_inst *in, const char *rel,
                           struct bv_svc_end *e)
{
	double t0 = bv_now();
	int fd = open(vh_path(&in->h, rel), O_WRONLY | O_CLOEXEC);
	const char *l;

	if (fd < 0)
		bv_die(rel);
	bv_write_all(fd, BV_SVC_BLOCK, in->total);
	if (close(fd) < 0)
		bv_die(rel);
	l = bv_svc_wait_end(in, e);
	t0 = bv_now() - t0;
	if (vh_kv_u64(l, "rx") != in->total)
		fprintf(stderr, "bench-vsock: %s: the guest got %" PRIu64
		        " bytes\n", rel, vh_kv_u64(l, "rx"));
	return (double)in->total / t0 / 1e6;
}

/* MB/s reading MNT/rel to EOF. */
static double bv_svc_read(struct bv_inst *in, const char *rel,
                          struct bv_svc_end *e)
{
	double t0 = bv_now();
	int fd = open(vh_path(&in->h, rel), O_RDONLY | O_CLOEXEC);
	uint64_t got;

	if (fd < 0)
		bv_die(rel);
	got = bv_read_all(fd, BV_SVC_BLOCK);
	t0 = bv_now() - t0;
	close(fd);
	if (got != in->total)
		fprintf(stderr, "bench-vsock: %s: read %" PRIu64 " bytes\n", rel,
		        got);
	bv_svc_wait_end(in, e);
	return (double)got / t0 / 1e6;
}

/* One accept run: BV_SVC_ACC_N opens of each of rel[0] and rel[1], each
 * taking a waiting connection, BV_SVC_ACC_STEP at a time with the sides
 * taking turns (side first starts), so that both meet the same load;
 * us[side] gets the us per open (0 for the side skip).  Then each side's
 * connections are closed and their ends awaited; cost[side] gets what its
 * opens and closes spent. */
static void bv_svc_accept_run(struct bv_inst *in, const char *const rel[2],
                              unsigned first, int skip, struct bv_svc_end e[2],
                              struct bv_cost cost[2], double us[2])
{
	static int fds[2][BV_SVC_ACC_N];
	char path[2][256];
	double t[2] = { 0, 0 }, t0;
	struct bv_cost mark;
	unsigned i, j, k, side;

	for (side = 0; side < 2; side++)
		snprintf(path[side], sizeof(path[side]), "%s",
		         vh_path(&in->h, rel[side]));
	for (i = 0; i < BV_SVC_ACC_N; i += BV_SVC_ACC_STEP) {
		for (k = 0; k < 2; k++) {
			side = (first + k) % 2;
			if ((int)side == skip)
				continue;
			bv_cost_mark(in, &mark);
			t0 = bv_now();
			for (j = i; j < i + BV_SVC_ACC_STEP; j++) {
				fds[side][j] = open(path[side],
				                    O_WRONLY | O_CLOEXEC);
				if (fds[side][j] < 0)
					bv_die(rel[side]);
			}
			t[side] += bv_now() - t0;
			bv_cost_add(in, &mark, &cost[side], 0);
		}
	}
	for (k = 0; k < 2; k++) {
		side = (first + k) % 2;
		us[side] = t[side] / BV_SVC_ACC_N * 1e6;
		if ((int)side == skip)
			continue;
		bv_cost_mark(in, &mark);
		for (j = 0; j < BV_SVC_ACC_N; j++)
			close(fds[side][j]);
		e[side].seen += BV_SVC_ACC_N - 1;
		bv_svc_wait_end(in, &e[side]);
		bv_cost_add(in, &mark, &cost[side], BV_SVC_ACC_N);
	}
}

/* Bounded wait until chanfs's status has a line starting with each of
 * the NULL-terminated wants (connections queued where the figures will
 * open them). */
static void bv_svc_wait_status(struct bv_inst *in, const char *const want[])
{
	unsigned i, w;

	for (i = 0; i < VH_TIMEOUT_MS / 10; i++) {
		char *st = vh_status(&in->h);
		bool all = st != NULL;

		for (w = 0; all && want[w]; w++) {
			const char *p = strstr(st, want[w]);

			all = p && (p == st || p[-1] == '\n' || p[-1] == ' ');
		}
		free(st);
		if (all)
			return;
		usleep(10000);
	}
	fprintf(stderr, "bench-vsock: chanfs's status never showed '%s'...\n",
	        want[0]);
	exit(1);
}

/* "5000:SVC,first=HEX(pipe:NAME and its NUL)" into buf (chanfs runs with
 * --service-port 5000). */
static const char *bv_svc_spec(char *buf, size_t size, const char *svc,
                               const char *name)
{
	char first[64];
	size_t n, i, len;

	len = (size_t)snprintf(first, sizeof(first), "pipe:%s", name) + 1;
	n = (size_t)snprintf(buf, size, "5000:%s,first=", svc);
	for (i = 0; i < len && n + 3 < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%02x",
		                      (unsigned char)first[i]);
	return buf;
}

/* A figure and, besides its own cost line, its base's. */
static void bv_svc_fig(const char *name, const char *unit, double *c,
                       double *b, bool lower_better, const char *goal,
                       const char *base_what, const struct bv_cost cost[2],
                       const char *per)
{
	struct bv_fig *f, base;

	f = bv_fig_add(name, unit, bv_median(c, bv_runs),
	               bv_median(b, bv_runs), lower_better, goal, base_what);
	bv_fig_cost(f, &cost[0], per);
	memset(&base, 0, sizeof(base));
	snprintf(base.name, sizeof(base.name), "%s/base", name);
	bv_fig_cost(&base, &cost[1], per);
}

/* What each figure opens, per side (services, base). */
static const char *const bv_svc_rel[3][2] = {
	{ "services/sink", "vsock/7" },
	{ "services/source", "vsock/8" },
	{ "services/acc", "vsock/listen/" BV_SVC_LPORT },
};

/* One throughput run of either side (what: 0 writes, 1 reads), its cost
 * added to cost[side]. */
static double bv_svc_one(struct bv_inst *in, unsigned what, unsigned side,
                         struct bv_svc_end *e, struct bv_cost cost[2])
{
	const char *rel = bv_svc_rel[what][side];
	struct bv_cost mark;
	double v;

	bv_cost_mark(in, &mark);
	v = what ? bv_svc_read(in, rel, e) : bv_svc_write(in, rel, e);
	bv_cost_add(in, &mark, &cost[side], (double)(in->total >> 20));
	return v;
}

void bv_svc_part(uint64_t total)
{
	static const char *const names[3] = {
		"svc_h2g_64k", "svc_g2h_64k", "svc_accept" };
	static const char *const what[3] = {
		"vsock/7 writes (guest sink), same run",
		"vsock/8 reads (guest source), same run",
		"open of vsock/listen/20 taking one, same run" };
	char backlog[16], src[48], acc_n[32], svc[48];
	char sink_spec[160], src_spec[192], acc_spec[192], lst_spec[96];
	char wsink[48], wsrc[48], wacc[48], wlst[48];
	const char *cargs[] = { "--service-port", "5000", "--backlog", backlog,
	                        "--accept-timeout", "3600000",
	                        "-l", BV_SVC_LPORT, NULL };
	const char *gargs[] = { "-l", "7:sink,check=0", "-l", src,
	                        "-l", BV_SVC_TRIGGER ":sink,check=0",
	                        "-c", sink_spec, "-c", src_spec,
	                        "-c", acc_spec, "-c", lst_spec, NULL };
	const char *const wtput[] = { wsink, wsrc, NULL };
	const char *const waccs[] = { wacc, wlst, NULL };
	/* per figure and side: what a transfer's end prints */
	struct bv_svc_end ends[3][2] = {
		{ { "conn rport=5000 svc=recv", 0 }, { "conn lport=7", 0 } },
		{ { "conn rport=5000 svc=send", 0 }, { "conn lport=8", 0 } },
		{ { "conn rport=5000 svc=recv", 0 },
		  { "conn rport=" BV_SVC_LPORT " svc=recv", 0 } },
	};
	double v[2][BV_MAX_RUNS];
	struct bv_cost cost[2];
	unsigned n_acc = BV_SVC_ACC_N * bv_runs, fig, r, k;
	const char *only = getenv("BV_SVC_SIDE");
	int fd, skip = !only || !*only ? -1 : !strcmp(only, "svc");
	struct bv_inst in;

	snprintf(backlog, sizeof(backlog), "%u", n_acc + 16);
	snprintf(src, sizeof(src), "8:source=%" PRIu64 ",check=0", total);
	snprintf(acc_n, sizeof(acc_n), "recv,check=0,n=%u,after=%s", n_acc,
	         BV_SVC_TRIGGER);
	snprintf(svc, sizeof(svc), "recv,check=0,n=%u", bv_runs);
	bv_svc_spec(sink_spec, sizeof(sink_spec), svc, "sink");
	snprintf(svc, sizeof(svc), "send=%" PRIu64 ",check=0,n=%u", total,
	         bv_runs);
	bv_svc_spec(src_spec, sizeof(src_spec), svc, "source");
	bv_svc_spec(acc_spec, sizeof(acc_spec), acc_n, "acc");
	snprintf(lst_spec, sizeof(lst_spec), "%s:%s", BV_SVC_LPORT, acc_n);
	snprintf(wsink, sizeof(wsink), "services/sink: %u waiting", bv_runs);
	snprintf(wsrc, sizeof(wsrc), "services/source: %u waiting", bv_runs);
	snprintf(wacc, sizeof(wacc), "services/acc: %u waiting", n_acc);
	snprintf(wlst, sizeof(wlst), "listen %s: %u of", BV_SVC_LPORT, n_acc);

	memset(&in, 0, sizeof(in));
	in.total = total;
	if (vh_init(&in.h) < 0 || vh_start_chanfs(&in.h, cargs) < 0)
		exit(1);
	in.g = vh_start_guest(&in.h, gargs);
	if (!in.g) {
		vh_cleanup(&in.h);
		exit(1);
	}
	bv_svc_wait_status(&in, wtput);
	for (fig = 0; fig < 3; fig++) {
		if (fig == 2) {
			/* one needle, one count */
			ends[2][0].seen = ends[0][0].seen;
			/* the accept connections come now, all at once */
			fd = open(vh_path(&in.h, "vsock/" BV_SVC_TRIGGER),
			          O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				bv_die("open vsock/" BV_SVC_TRIGGER);
			close(fd);
			bv_svc_wait_status(&in, waccs);
		}
		memset(cost, 0, sizeof(cost));
		for (r = 0; r < bv_runs; r++) {
			double us[2];

			if (fig == 2) {
				bv_svc_accept_run(&in, bv_svc_rel[2], r % 2,
				                  skip, ends[2], cost, us);
				v[0][r] = us[0];
				v[1][r] = us[1];
				continue;
			}
			/* alternate which side goes first against drift */
			for (k = 0; k < 2; k++) {
				unsigned side = (r + k) % 2;

				v[side][r] = 0;
				if ((int)side != skip)
					v[side][r] = bv_svc_one(&in, fig, side,
					                        &ends[fig][side],
					                        cost);
			}
		}
		bv_svc_fig(names[fig], fig == 2 ? "us" : "MB/s", v[0], v[1],
		           fig == 2, fig == 2 ? "<= 1.1" : ">= 0.9", what[fig],
		           cost, fig == 2 ? "conn" : "MiB");
	}
	bv_inst_stop(&in);
}
