/*
 * bench_vsock — chanfs end to end (a FUSE file <-> chanfs <-> vhost-user
 * <-> the simulated guest in another process), each figure against the
 * baseline its goal (issue 12) names, measured in the same run: a UNIX
 * socketpair (the kernel's cheapest stream) and nullfs (a one-thread FUSE
 * file system that discards writes and reads zeros: the cost of FUSE
 * alone).  Never pass/fail: it prints the machine, a table, and one line
 * per figure
 *   figure NAME chanfs=X base=Y ratio=Z
 * where X and Y are the medians of BV_RUNS (default 5) runs and Z is X/Y.
 *
 *   h2g_SIZE      write(2) of SIZE blocks into MNT/vsock/7 until the guest
 *                 has it all (MB/s); base: nullfs writes of SIZE
 *   g2h_SIZE      read(2) of SIZE blocks from MNT/vsock/8 to EOF; base:
 *                 nullfs reads
 *   echo_rtt      one byte to MNT/vsock/9 (the guest's echo) and back
 *                 (us); base: nullfs write + read of a byte plus a
 *                 socketpair round trip
 *   connect_close open(2) + close(2) of MNT/vsock/12 (us); base: nullfs
 *                 open + close plus a socketpair round trip
 *   conns64_*, coalesce_*, idle10k_*: bench_vsock_scale.c
 *   svc_*         services/NAME against vsock/PORT: bench_vsock_services.c
 *   bufSIZE_*     the throughput figures again with --buf-size SIZE
 *
 * Run: meson test -C BUILD --benchmark vsock --verbose
 *   or BUILD/tests/bench/bench-vsock CHANFS CHANFS-GUEST NULLFS [MiB]
 * CHANFS_GUEST_ARGS selects the guest's virtqueue variant (e.g. "--layout
 * b --features in_order,event_idx,indirect"); BV_RUNS the runs per
 * figure; BV_ONLY a comma-separated list of parts (tput, rtt, conns64,
 * coalesce, idle, svc, bufsize) to run only those; BV_FIG (for profiling) only
 * the throughput figures whose name contains it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_vsock.h"

#define BV_RTT_N 2000
#define BV_CONN_N 1000
#define BV_IDLE_N 10000
#define BV_FUSE_MAGIC 0x65735546
#define BV_MAX_FIGS 64

uint8_t bv_buf[BV_MAX_CHUNK];
unsigned bv_runs = 5;

static struct bv_fig bv_figs[BV_MAX_FIGS];
static unsigned bv_nfigs;

void bv_die(const char *what)
{
	fprintf(stderr, "bench-vsock: %s: %s\n", what, strerror(errno));
	exit(1);
}

void bv_fig_cost(struct bv_fig *f, const struct bv_cost *c, const char *per)
{
	f->cost = *c;
	f->per = per;
	if (c->ops > 0)
		printf("cost %s per=%s chanfs_cpu_us=%.2f chanfs_wakeups=%.2f "
		       "guest_cpu_us=%.2f guest_wakeups=%.2f\n", f->name, per,
		       c->cpu_ns[0] / c->ops / 1e3, c->wakes[0] / c->ops,
		       c->cpu_ns[1] / c->ops / 1e3, c->wakes[1] / c->ops);
}

double bv_fig_ratio(const struct bv_fig *f)
{
	return f->base > 0 ? f->chanfs / f->base : 0;
}

struct bv_fig *bv_fig_add(const char *name, const char *unit, double chanfs,
                          double base, bool lower_better, const char *goal,
                          const char *base_what)
{
	struct bv_fig *f;

	if (bv_nfigs == BV_MAX_FIGS) {
		fprintf(stderr, "bench-vsock: too many figures\n");
		exit(1);
	}
	f = &bv_figs[bv_nfigs++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->unit = unit;
	f->chanfs = chanfs;
	f->base = base;
	f->lower_better = lower_better;
	f->goal = goal;
	f->base_what = base_what;
	printf("figure %s chanfs=%.4g base=%.4g ratio=%.3f\n", name, chanfs,
	       base, bv_fig_ratio(f));
	fflush(stdout);
	return f;
}

void bv_write_all(int fd, size_t chunk, uint64_t total)
{
	uint64_t done = 0;

	while (done < total) {
		size_t n = total - done < chunk ? (size_t)(total - done) : chunk;
		ssize_t w = write(fd, bv_buf, n);

		if (w <= 0)
			bv_die("write");
		done += (uint64_t)w;
	}
}

uint64_t bv_read_all(int fd, size_t chunk)
{
	uint64_t got = 0;
	ssize_t r;

	while ((r = read(fd, bv_buf, chunk)) > 0)
		got += (uint64_t)r;
	if (r < 0)
		bv_die("read");
	return got;
}

static void bv_rtt_loop(int fd, unsigned n)
{
	unsigned i;
	char c = 'x';

	for (i = 0; i < n; i++) {
		if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1)
			bv_die("echo");
	}
}

/* --- instances -------------------------------------------------------------- */

int bv_inst_start(struct bv_inst *in, const char *const cargs[], bool full,
                  uint64_t total)
{
	char srcarg[64];
	const char *fargs[] = { "-l", "7:sink,check=0", "-l", srcarg,
	                        "-l", "9:echo", "-l", "10:source=1000G,check=0",
	                        "-l", "11:sink", "-l", "12:sink,check=0",
	                        "-l", "13:sink,check=0", NULL };
	const char *eargs[] = { "-l", "9:echo", NULL };

	memset(in, 0, sizeof(*in));
	in->total = total;
	snprintf(srcarg, sizeof(srcarg), "8:source=%" PRIu64 ",check=0", total);
	if (vh_init(&in->h) < 0 || vh_start_chanfs(&in->h, cargs) < 0)
		return -1;
	in->g = vh_start_guest(&in->h, full ? fargs : eargs);
	if (!in->g) {
		vh_cleanup(&in->h);
		return -1;
	}
	return 0;
}

void bv_inst_stop(struct bv_inst *in)
{
	vh_guest_stop(in->g);
	vh_cleanup(&in->h);
}

const char *bv_inst_ended(struct bv_inst *in, unsigned port)
{
	char needle[48];
	const char *l;

	snprintf(needle, sizeof(needle), "conn lport=%u", port);
	l = vh_guest_wait(in->g, needle, ++in->ended[port], VH_TIMEOUT_MS);
	if (!l)
		fprintf(stderr, "bench-vsock: no end of connection %u of guest "
		        "port %u\n", in->ended[port], port);
	return l;
}

long bv_rss_kb(const struct bv_inst *in)
{
	char path[64], line[256];
	FILE *f;
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)in->h.chanfs);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* cpu ns of pid's main thread and its voluntary context switches */
static void bv_proc_cost(pid_t pid, double *cpu_ns, double *wakes)
{
	char path[64], line[256];
	unsigned long long ns = 0;
	long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%llu", &ns) != 1)
			ns = 0;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	*cpu_ns = (double)ns;
	*wakes = (double)v;
}

void bv_cost_mark(const struct bv_inst *in, struct bv_cost *mark)
{
	bv_proc_cost(in->h.chanfs, &mark->cpu_ns[0], &mark->wakes[0]);
	bv_proc_cost(in->g->pid, &mark->cpu_ns[1], &mark->wakes[1]);
}

void bv_cost_add(const struct bv_inst *in, const struct bv_cost *mark,
                 struct bv_cost *c, double ops)
{
	struct bv_cost now;
	int i;

	bv_cost_mark(in, &now);
	for (i = 0; i < 2; i++) {
		c->cpu_ns[i] += now.cpu_ns[i] - mark->cpu_ns[i];
		c->wakes[i] += now.wakes[i] - mark->wakes[i];
	}
	c->ops += ops;
}

/* --- chanfs ----------------------------------------------------------------- */

static double bv_chanfs_write(struct bv_inst *in, size_t chunk,
                              uint64_t total)
{
	double t0 = bv_now();
	int fd = open(vh_path(&in->h, "vsock/7"), O_WRONLY | O_CLOEXEC);
	const char *l;

	if (fd < 0)
		bv_die("open vsock/7");
	bv_write_all(fd, chunk, total);
	if (close(fd) < 0)
		bv_die("close vsock/7");
	l = bv_inst_ended(in, 7);
	if (!l)
		exit(1);
	t0 = bv_now() - t0;
	if (vh_kv_u64(l, "rx") != total)
		fprintf(stderr, "bench-vsock: the guest got %" PRIu64 " bytes\n",
		        vh_kv_u64(l, "rx"));
	return (double)total / t0 / 1e6;
}

static double bv_chanfs_read(struct bv_inst *in, size_t chunk)
{
	double t0 = bv_now();
	int fd = open(vh_path(&in->h, "vsock/8"), O_RDONLY | O_CLOEXEC);
	uint64_t got;

	if (fd < 0)
		bv_die("open vsock/8");
	got = bv_read_all(fd, chunk);
	t0 = bv_now() - t0;
	close(fd);
	if (got != in->total)
		fprintf(stderr, "bench-vsock: read %" PRIu64 " bytes\n", got);
	bv_inst_ended(in, 8);
	return (double)got / t0 / 1e6;
}

static double bv_chanfs_rtt(struct bv_inst *in)
{
	int fd = open(vh_path(&in->h, "vsock/9"), O_RDWR | O_CLOEXEC);
	double t0;

	if (fd < 0)
		bv_die("open vsock/9");
	bv_rtt_loop(fd, 100);           /* warm up */
	t0 = bv_now();
	bv_rtt_loop(fd, BV_RTT_N);
	t0 = (bv_now() - t0) / BV_RTT_N * 1e6;
	close(fd);
	bv_inst_ended(in, 9);
	return t0;
}

/* us per open + close */
static double bv_chanfs_connect(struct bv_inst *in)
{
	char path[256];
	double t0;
	unsigned i;

	snprintf(path, sizeof(path), "%s", vh_path(&in->h, "vsock/12"));
	t0 = bv_now();
	for (i = 0; i < BV_CONN_N; i++) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);

		if (fd < 0)
			bv_die("open vsock/12");
		close(fd);
	}
	t0 = (bv_now() - t0) / BV_CONN_N * 1e6;
	/* let the guest end them all before the next run */
	in->ended[12] += BV_CONN_N - 1;
	bv_inst_ended(in, 12);
	return t0;
}

/* --- socketpair ----------------------------------------------------------- */

static double bv_pair_write(size_t chunk, uint64_t total)
{
	double t0 = bv_now();
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		bv_die("socketpair");
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		bv_read_all(sv[1], BV_MAX_CHUNK);
		_exit(0);
	}
	close(sv[1]);
	bv_write_all(sv[0], chunk, total);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return (double)total / (bv_now() - t0) / 1e6;
}

static double bv_pair_read(size_t chunk, uint64_t total)
{
	double t0 = bv_now();
	uint64_t got;
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		bv_die("socketpair");
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		/* the guest's source sends 64 KiB packets */
		bv_write_all(sv[1], 64u << 10, total);
		_exit(0);
	}
	close(sv[1]);
	got = bv_read_all(sv[0], chunk);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return (double)got / (bv_now() - t0) / 1e6;
}

static double bv_pair_rtt(void)
{
	double t0;
	int sv[2];
	pid_t pid;
	char c;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		bv_die("socketpair");
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		while (read(sv[1], &c, 1) == 1 && write(sv[1], &c, 1) == 1)
			;
		_exit(0);
	}
	close(sv[1]);
	bv_rtt_loop(sv[0], 100);
	t0 = bv_now();
	bv_rtt_loop(sv[0], BV_RTT_N);
	t0 = (bv_now() - t0) / BV_RTT_N * 1e6;
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return t0;
}

/* --- nullfs --------------------------------------------------------------- */

static double bv_null_write(const char *file, size_t chunk, uint64_t total)
{
	double t0 = bv_now();
	int fd = open(file, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		bv_die("open nullfs");
	bv_write_all(fd, chunk, total);
	close(fd);
	return (double)total / (bv_now() - t0) / 1e6;
}

static double bv_null_read(const char *file, size_t chunk, uint64_t total)
{
	double t0 = bv_now();
	uint64_t got = 0;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		bv_die("open nullfs");
	while (got < total) {
		size_t n = total - got < chunk ? (size_t)(total - got) : chunk;
		ssize_t r = read(fd, bv_buf, n);

		if (r <= 0)
			bv_die("read nullfs");
		got += (uint64_t)r;
	}
	close(fd);
	return (double)total / (bv_now() - t0) / 1e6;
}

static double bv_null_rtt(const char *file)
{
	int fd = open(file, O_RDWR | O_CLOEXEC);
	double t0;

	if (fd < 0)
		bv_die("open nullfs");
	bv_rtt_loop(fd, 100);
	t0 = bv_now();
	bv_rtt_loop(fd, BV_RTT_N);
	t0 = (bv_now() - t0) / BV_RTT_N * 1e6;
	close(fd);
	return t0;
}

/* us per open + close */
static double bv_null_connect(const char *file)
{
	double t0 = bv_now();
	unsigned i;

	for (i = 0; i < BV_CONN_N; i++) {
		int fd = open(file, O_WRONLY | O_CLOEXEC);

		if (fd < 0)
			bv_die("open nullfs");
		close(fd);
	}
	return (bv_now() - t0) / BV_CONN_N * 1e6;
}

static pid_t bv_nullfs_start(const char *exe, const char *mnt)
{
	struct statfs sf;
	pid_t pid = fork();
	int i;

	if (pid == 0) {
		execl(exe, exe, "-f", mnt, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 2000; i++) {
		if (statfs(mnt, &sf) == 0 && sf.f_type == BV_FUSE_MAGIC)
			return pid;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	errno = ETIMEDOUT;
	bv_die("nullfs mount");
}

static void bv_nullfs_stop(pid_t pid, const char *mnt)
{
	struct statfs sf;
	char cmd[512];
	int i;

	kill(pid, SIGTERM);
	for (i = 0; i < 500; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		usleep(10000);
	}
	if (statfs(mnt, &sf) == 0 && sf.f_type == BV_FUSE_MAGIC) {
		snprintf(cmd, sizeof(cmd), "fusermount3 -u '%s' || umount -l '%s'",
		         mnt, mnt);
		if (system(cmd) != 0)
			fprintf(stderr, "bench-vsock: cannot unmount %s\n", mnt);
	}
}

/* --- the figures ---------------------------------------------------------- */

/* BV_FIG (profiling): only the throughput figures whose name contains it. */
static bool bv_want_fig(const char *name)
{
	const char *only = getenv("BV_FIG");

	return !only || !*only || strstr(name, only);
}

static const size_t bv_sizes[] = { 4u << 10, 64u << 10, 1u << 20 };
static const char *const bv_size_names[] = { "4k", "64k", "1m" };
#define BV_NSIZES 3

/* Null FUSE medians per direction and size, for the --buf-size rows. */
static double bv_null_med[2][BV_NSIZES];
static double bv_single64;  /* mean of h2g_64k and g2h_64k (chanfs) */

static const char *bv_tput_goal(unsigned size)
{
	return size ? ">= 0.5" : ">= 1.0";
}

/* dir 0: host->guest, 1: guest->host */
static double bv_chanfs_tput(struct bv_inst *in, unsigned dir, unsigned s,
                             uint64_t total)
{
	return dir ? bv_chanfs_read(in, bv_sizes[s]) :
	       bv_chanfs_write(in, bv_sizes[s], total);
}

static void bv_part_tput(struct bv_inst *in, const char *nfile,
                         uint64_t total)
{
	static const char *const what[2] = {
		"null FUSE writes, same size", "null FUSE reads, same size" };
	double c[BV_MAX_RUNS], p[BV_MAX_RUNS], b[BV_MAX_RUNS];
	struct bv_cost cost, mark;
	unsigned dir, s, r;
	char name[40];
	struct bv_fig *f;

	for (dir = 0; dir < 2; dir++) {
		for (s = 0; s < BV_NSIZES; s++) {
			snprintf(name, sizeof(name), "%s_%s",
			         dir ? "g2h" : "h2g", bv_size_names[s]);
			if (!bv_want_fig(name))
				continue;
			memset(&cost, 0, sizeof(cost));
			for (r = 0; r < bv_runs; r++) {
				bv_cost_mark(in, &mark);
				c[r] = bv_chanfs_tput(in, dir, s, total);
				bv_cost_add(in, &mark, &cost,
				            (double)(total >> 20));
				p[r] = dir ? bv_pair_read(bv_sizes[s], total) :
				       bv_pair_write(bv_sizes[s], total);
				b[r] = dir ? bv_null_read(nfile, bv_sizes[s],
				                          total) :
				       bv_null_write(nfile, bv_sizes[s], total);
			}
			bv_null_med[dir][s] = bv_median(b, bv_runs);
			f = bv_fig_add(name, "MB/s", bv_median(c, bv_runs),
			               bv_null_med[dir][s], false,
			               bv_tput_goal(s), what[dir]);
			f->pair = bv_median(p, bv_runs);
			bv_fig_cost(f, &cost, "MiB");
			if (s == 1)
				bv_single64 += f->chanfs / 2;
		}
	}
}

static void bv_part_rtt(struct bv_inst *in, const char *nfile)
{
	double c[BV_MAX_RUNS], p[BV_MAX_RUNS], b[BV_MAX_RUNS];
	double cc[BV_MAX_RUNS], cb[BV_MAX_RUNS];
	struct bv_cost cost[2], mark;
	unsigned r;
	struct bv_fig *f;

	memset(cost, 0, sizeof(cost));
	for (r = 0; r < bv_runs; r++) {
		bv_cost_mark(in, &mark);
		c[r] = bv_chanfs_rtt(in);
		bv_cost_add(in, &mark, &cost[0], BV_RTT_N + 100);
		p[r] = bv_pair_rtt();
		b[r] = bv_null_rtt(nfile) + p[r];
		bv_cost_mark(in, &mark);
		cc[r] = bv_chanfs_connect(in);
		bv_cost_add(in, &mark, &cost[1], BV_CONN_N);
		cb[r] = bv_null_connect(nfile) + p[r];
	}
	f = bv_fig_add("echo_rtt", "us", bv_median(c, bv_runs),
	               bv_median(b, bv_runs), true, "<= 1.1",
	               "null FUSE write+read + socketpair round trip");
	f->pair = bv_median(p, bv_runs);
	bv_fig_cost(f, &cost[0], "echo");
	f = bv_fig_add("connect_close", "us", bv_median(cc, bv_runs),
	               bv_median(cb, bv_runs), true, "<= 1.2",
	               "null FUSE open+close + socketpair round trip");
	bv_fig_cost(f, &cost[1], "cycle");
}

static void bv_part_bufsize(uint64_t total)
{
	static const char *const sizes[] = { "256K", "1M", "4M" };
	static const char *const what[2] = {
		"null FUSE writes (h2g figure's base)",
		"null FUSE reads (g2h figure's base)" };
	double c[BV_MAX_RUNS];
	struct bv_cost cost, mark;
	unsigned i, dir, s, r;
	char name[40];

	for (i = 0; i < 3; i++) {
		const char *cargs[] = { "--buf-size", sizes[i], NULL };
		struct bv_inst in;

		if (bv_inst_start(&in, cargs, true, total) < 0)
			exit(1);
		for (dir = 0; dir < 2; dir++) {
			for (s = 1; s < BV_NSIZES; s++) {
				memset(&cost, 0, sizeof(cost));
				for (r = 0; r < bv_runs; r++) {
					bv_cost_mark(&in, &mark);
					c[r] = bv_chanfs_tput(&in, dir, s,
					                      total);
					bv_cost_add(&in, &mark, &cost,
					            (double)(total >> 20));
				}
				snprintf(name, sizeof(name), "buf%s_%s_%s",
				         sizes[i], dir ? "g2h" : "h2g",
				         bv_size_names[s]);
				bv_fig_cost(bv_fig_add(name, "MB/s",
				                       bv_median(c, bv_runs),
				                       bv_null_med[dir][s], false,
				                       bv_tput_goal(s), what[dir]),
				            &cost, "MiB");
			}
		}
		bv_inst_stop(&in);
	}
}

/* --- main ----------------------------------------------------------------- */

static void bv_machine(void)
{
	struct utsname u;
	char line[256], model[128] = "?";
	double load[3] = { 0 };
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && p) {
			snprintf(model, sizeof(model), "%s", p + 2);
			model[strcspn(model, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	uname(&u);
	getloadavg(load, 3);
	printf("machine cores=%ld kernel=%s %s cpu=\"%s\" load1=%.2f\n",
	       sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, model,
	       load[0]);
}

static void bv_print(uint64_t total)
{
	unsigned i;

	printf("\nchanfs vsock benchmark: medians of %u runs, %" PRIu64
	       " MiB per throughput run, %u echoes, %u connects; guest %s\n",
	       bv_runs, total >> 20, BV_RTT_N, BV_CONN_N,
	       getenv("CHANFS_GUEST_ARGS") && *getenv("CHANFS_GUEST_ARGS") ?
	       getenv("CHANFS_GUEST_ARGS") : "layout a, no ring features");
	bv_machine();
	printf("%-22s %11s %11s %-5s %8s %7s %11s  %s\n", "figure", "chanfs",
	       "base", "unit", "ratio", "goal", "socketpair", "base is");
	for (i = 0; i < bv_nfigs; i++) {
		const struct bv_fig *f = &bv_figs[i];
		char pair[24] = "";

		if (f->pair > 0)
			snprintf(pair, sizeof(pair), "%.1f", f->pair);
		printf("%-22s %11.1f %11.1f %-5s %7.3fx %7s %11s  %s\n",
		       f->name, f->chanfs, f->base, f->unit, bv_fig_ratio(f),
		       f->goal ? f->goal : "", pair, f->base_what);
	}
	printf("(ratio: chanfs / base; the goal says which side is good)\n");
	printf("%-22s %-6s %14s %14s %14s %14s\n", "cost per op", "op",
	       "chanfs cpu us", "chanfs wakes", "guest cpu us", "guest wakes");
	for (i = 0; i < bv_nfigs; i++) {
		const struct bv_cost *c = &bv_figs[i].cost;

		if (c->ops > 0)
			printf("%-22s %-6s %14.2f %14.2f %14.2f %14.2f\n",
			       bv_figs[i].name, bv_figs[i].per,
			       c->cpu_ns[0] / c->ops / 1e3, c->wakes[0] / c->ops,
			       c->cpu_ns[1] / c->ops / 1e3,
			       c->wakes[1] / c->ops);
	}
	for (i = 0; i < bv_nfigs; i++)
		printf("figure %s chanfs=%.4g base=%.4g ratio=%.3f\n",
		       bv_figs[i].name, bv_figs[i].chanfs, bv_figs[i].base,
		       bv_fig_ratio(&bv_figs[i]));
}

static bool bv_want(const char *part)
{
	const char *only = getenv("BV_ONLY");
	char buf[128], *tok, *save = NULL;

	if (!only || !*only)
		return true;
	snprintf(buf, sizeof(buf), "%s", only);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save))
		if (!strcmp(tok, part))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	struct bv_inst in;
	char nmnt[128], nfile[160];
	uint64_t total;
	double t0 = bv_now();
	pid_t npid;

	if (argc < 4) {
		fprintf(stderr, "usage: bench-vsock CHANFS CHANFS-GUEST NULLFS "
		        "[MiB per run]\n");
		return 2;
	}
	total = (argc > 4 ? strtoull(argv[4], NULL, 0) : 128) << 20;
	if (getenv("BV_RUNS"))
		bv_runs = (unsigned)strtoul(getenv("BV_RUNS"), NULL, 0);
	if (bv_runs < 1 || bv_runs > BV_MAX_RUNS)
		bv_runs = 5;
	setenv("CHANFS_EXE", argv[1], 1);
	setenv("CHANFS_GUEST", argv[2], 1);
	memset(bv_buf, 'b', sizeof(bv_buf));
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	bv_machine();

	/* MALLOC_PERTURB_ (meson sets it for tests) fills every malloc'd
	 * byte, which is not what a user's chanfs does: the figures run
	 * without it, except the one idle figure that asks for it. */
	unsetenv("MALLOC_PERTURB_");
	if (bv_inst_start(&in, NULL, true, total) < 0)
		return 1;
	snprintf(nmnt, sizeof(nmnt), "%s/nullfs", in.h.dir);
	snprintf(nfile, sizeof(nfile), "%s/null", nmnt);
	if (mkdir(nmnt, 0700) < 0)
		bv_die("mkdir");
	npid = bv_nullfs_start(argv[3], nmnt);

	if (bv_want("tput"))
		bv_part_tput(&in, nfile, total);
	if (bv_want("rtt"))
		bv_part_rtt(&in, nfile);
	if (bv_want("conns64"))
		bv_scale_conns64(&in, bv_single64);
	if (bv_want("coalesce"))
		bv_scale_coalesce(&in);

	bv_nullfs_stop(npid, nmnt);
	rmdir(nmnt);
	printf("chanfs peak RSS %ld KiB\n", vh_chanfs_hwm_kb(&in.h));
	bv_inst_stop(&in);
	if (bv_want("idle"))
		bv_scale_idle(BV_IDLE_N);
	if (bv_want("svc"))
		bv_svc_part(total);
	if (bv_want("bufsize") && bv_want("tput"))
		bv_part_bufsize(total);
	bv_print(total);
	printf("bench-vsock took %.0f s\n", bv_now() - t0);
	return 0;
}
