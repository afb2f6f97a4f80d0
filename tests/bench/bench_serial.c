/*
 * bench_serial — serial/NAME (chanfs relaying a virtio-serial port's
 * chardev socket, --serial NAME=PATH) against the raw UNIX socket it
 * relays (issue 12, goal 6: >= 0.5x at 64 KiB).  The benchmark listens on
 * PATH as QEMU's `-chardev socket,server=on` would and is the port's far
 * end itself; the baseline is a socketpair moving the same bytes in the
 * same 64 KiB blocks.  Medians of BV_RUNS (default 5) runs; one line per
 * figure:
 *   figure serial_h2g_64k chanfs=X base=Y ratio=Z   (MB/s)
 *   figure serial_g2h_64k chanfs=X base=Y ratio=Z
 * and, to show where the time goes, one line per figure of the CPU time
 * (ms per GiB moved, medians) of chanfs, of the writing and the reading
 * thread, and of the base's two threads, and chanfs's context switches
 * per MiB (voluntary: it waited; involuntary: a woken thread took its
 * CPU):
 *   cost serial_h2g_64k chanfs=C writer=W reader=R base_writer=..
 *        base_reader=.. chanfs_vcsw=V chanfs_ivcsw=I
 *
 * Run: BUILD/tests/bench/bench-serial CHANFS [MiB per run]
 * BS_ONLY=h2g or BS_ONLY=g2h runs one direction alone (chanfs and its
 * base), e.g. to profile chanfs while only that direction moves.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "vsock_harness.h"

#define BS_BLOCK (64u << 10)
#define BS_MAX_RUNS 15
#define BS_PORT "bench.0"

struct bs_pump {
	int fd;
	bool writer;
	uint64_t total, done;
	int err;
	double cpu_ns;          /* the thread's CPU time */
	pthread_t t;
};

/* What one transfer cost: CPU ns of chanfs (0 for the base) and of the
 * two threads, chanfs's context switches. */
struct bs_cost {
	double chanfs, writer, reader, vcsw, ivcsw;
};

/* A task's CPU time in ns (the first field of schedstat), or 0. */
static double bs_cpu_ns(const char *schedstat)
{
	unsigned long long ns = 0;
	FILE *f = fopen(schedstat, "r");

	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return (double)ns;
}

/* pid's voluntary and involuntary context switches so far. */
static void bs_switches(pid_t pid, double *v, double *iv)
{
	char path[64], line[128];
	unsigned long long n;
	FILE *f;

	*v = *iv = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "voluntary_ctxt_switches: %llu", &n) == 1)
			*v = (double)n;
		else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu",
		                &n) == 1)
			*iv = (double)n;
	}
	fclose(f);
}

/* pid's CPU time and switches so far (pid 0: none). */
static void bs_sample(pid_t pid, struct bs_cost *c)
{
	char path[64];

	memset(c, 0, sizeof *c);
	if (!pid)
		return;
	snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
	c->chanfs = bs_cpu_ns(path);
	bs_switches(pid, &c->vcsw, &c->ivcsw);
}

static void bs_die(const char *what)
{
	fprintf(stderr, "bench-serial: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Move total bytes through fd in BS_BLOCK pieces, one way. */
static void *bs_pump_run(void *arg)
{
	struct bs_pump *p = arg;
	uint8_t *buf = malloc(BS_BLOCK);

	if (!buf) {
		p->err = ENOMEM;
		return NULL;
	}
	memset(buf, 's', BS_BLOCK);
	while (p->done < p->total) {
		size_t n = p->total - p->done < BS_BLOCK ?
		           (size_t)(p->total - p->done) : BS_BLOCK;
		ssize_t r = p->writer ? write(p->fd, buf, n) :
		            read(p->fd, buf, n);

		if (r <= 0) {
			p->err = r ? errno : EPIPE;
			break;
		}
		p->done += (uint64_t)r;
	}
	free(buf);
	p->cpu_ns = bs_cpu_ns("/proc/thread-self/schedstat");
	return NULL;
}

/* One transfer of total bytes from wfd to rfd (each pumped by a thread),
 * through chanfs process pid (0: none); MB/s, or 0 when it fell short
 * (printed).  What it cost goes to *cost. */
static double bs_transfer(int wfd, int rfd, uint64_t total, pid_t pid,
                          struct bs_cost *cost)
{
	struct bs_pump w = { .fd = wfd, .writer = true, .total = total };
	struct bs_pump r = { .fd = rfd, .writer = false, .total = total };
	struct bs_cost before, after;
	double t0;

	bs_sample(pid, &before);
	t0 = bench_now();

	if (pthread_create(&r.t, NULL, bs_pump_run, &r) ||
	    pthread_create(&w.t, NULL, bs_pump_run, &w))
		bs_die("pthread_create");
	pthread_join(w.t, NULL);
	pthread_join(r.t, NULL);
	t0 = bench_now() - t0;
	bs_sample(pid, &after);
	cost->chanfs = after.chanfs - before.chanfs;
	cost->vcsw = after.vcsw - before.vcsw;
	cost->ivcsw = after.ivcsw - before.ivcsw;
	cost->writer = w.cpu_ns;
	cost->reader = r.cpu_ns;
	if (w.err || r.err || r.done != total) {
		fprintf(stderr, "bench-serial: moved %" PRIu64 " of %" PRIu64
		        " bytes (%s)\n", r.done, total,
		        strerror(w.err ? w.err : r.err));
		return 0;
	}
	return (double)total / t0 / 1e6;
}

/* Whether direction d (0: host->port, 1: port->host) runs, given BS_ONLY. */
static bool bs_want(const char *only, unsigned d)
{
	return !only || !*only || !strcmp(only, d ? "g2h" : "h2g");
}

/* Listen on path as QEMU's server=on chardev does; the fd. */
static int bs_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		bs_die(path);
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(l, 4) < 0)
		bs_die("listen");
	return l;
}

/* chanfs's connection to the port's socket (it connects at start). */
static int bs_accept(int l)
{
	struct pollfd p = { .fd = l, .events = POLLIN };
	int fd;

	if (poll(&p, 1, VH_TIMEOUT_MS) != 1) {
		errno = ETIMEDOUT;
		bs_die("chanfs did not connect to the port's socket");
	}
	fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		bs_die("accept");
	return fd;
}

/* The median over runs of one field of v (an offset into bs_cost). */
static double bs_cost_median(const struct bs_cost *v, unsigned runs,
                             size_t field)
{
	double x[BS_MAX_RUNS];
	unsigned i;

	for (i = 0; i < runs; i++)
		memcpy(&x[i], (const char *)&v[i] + field, sizeof x[i]);
	return bench_median(x, runs);
}

/* The cost line of figure name: CPU ms per GiB, switches per MiB. */
static void bs_print_cost(const char *name, const struct bs_cost *c,
                          const struct bs_cost *b, unsigned runs,
                          uint64_t total)
{
	double ms = (double)(1u << 30) / (double)total / 1e6;
	double mib = (double)total / (1u << 20);

#define BS_MED(v, f) bs_cost_median(v, runs, offsetof(struct bs_cost, f))
	printf("cost %s chanfs=%.0f writer=%.0f reader=%.0f base_writer=%.0f "
	       "base_reader=%.0f chanfs_vcsw=%.2f chanfs_ivcsw=%.2f\n", name,
	       BS_MED(c, chanfs) * ms, BS_MED(c, writer) * ms,
	       BS_MED(c, reader) * ms, BS_MED(b, writer) * ms,
	       BS_MED(b, reader) * ms, BS_MED(c, vcsw) / mib,
	       BS_MED(c, ivcsw) / mib);
#undef BS_MED
}

int main(int argc, char **argv)
{
	double c[2][BS_MAX_RUNS], b[2][BS_MAX_RUNS];
	struct bs_cost cc[2][BS_MAX_RUNS], bc[2][BS_MAX_RUNS];
	static const char *const names[2] = { "serial_h2g_64k",
	                                      "serial_g2h_64k" };
	char path[160], spec[224];
	const char *cargs[] = { "--serial", spec, NULL };
	const char *only = getenv("BS_ONLY");
	unsigned runs = 5, r, d;
	uint64_t total;
	struct vh h;
	int l, sfd, ffd, sv[2];

	if (argc < 2) {
		fprintf(stderr, "usage: bench-serial CHANFS [MiB per run]\n");
		return 2;
	}
	total = (argc > 2 ? strtoull(argv[2], NULL, 0) : 128) << 20;
	if (getenv("BV_RUNS"))
		runs = (unsigned)strtoul(getenv("BV_RUNS"), NULL, 0);
	if (runs < 1 || runs > BS_MAX_RUNS)
		runs = 5;
	setenv("CHANFS_EXE", argv[1], 1);
	/* no guest: the port's far end is this process */
	setenv("CHANFS_GUEST", "/bin/false", 0);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (vh_init(&h) < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/port.sock", h.dir);
	snprintf(spec, sizeof(spec), "%s=%s", BS_PORT, path);
	l = bs_listen(path);
	if (vh_start_chanfs(&h, cargs) < 0) {
		vh_cleanup(&h);
		return 1;
	}
	sfd = bs_accept(l);
	ffd = open(vh_path(&h, "serial/" BS_PORT), O_RDWR | O_CLOEXEC);
	if (ffd < 0)
		bs_die("open serial/" BS_PORT);
	memset(cc, 0, sizeof cc);
	memset(bc, 0, sizeof bc);
	for (r = 0; r < runs; r++) {
		c[0][r] = bs_want(only, 0) ?
		          bs_transfer(ffd, sfd, total, h.chanfs, &cc[0][r]) : 0;
		c[1][r] = bs_want(only, 1) ?
		          bs_transfer(sfd, ffd, total, h.chanfs, &cc[1][r]) : 0;
		for (d = 0; d < 2; d++) {
			b[d][r] = 0;
			if (!bs_want(only, d))
				continue;
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
			               sv) < 0)
				bs_die("socketpair");
			b[d][r] = bs_transfer(sv[0], sv[1], total, 0,
			                      &bc[d][r]);
			close(sv[0]);
			close(sv[1]);
		}
	}
	close(ffd);
	close(sfd);
	close(l);
	vh_cleanup(&h);
	printf("\nchanfs serial benchmark: medians of %u runs, %" PRIu64
	       " MiB per run, 64 KiB blocks; base: a socketpair\n", runs,
	       total >> 20);
	for (d = 0; d < 2; d++) {
		double x = bench_median(c[d], runs), y = bench_median(b[d], runs);

		if (!bs_want(only, d))
			continue;
		printf("figure %s chanfs=%.4g base=%.4g ratio=%.3f\n", names[d],
		       x, y, y > 0 ? x / y : 0);
	}
	for (d = 0; d < 2; d++)
		if (bs_want(only, d))
			bs_print_cost(names[d], cc[d], bc[d], runs, total);
	return h.failed;
}
