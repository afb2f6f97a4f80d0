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
 *
 * Run: BUILD/tests/bench/bench-serial CHANFS [MiB per run]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
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
	pthread_t t;
};

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
	return NULL;
}

/* One transfer of total bytes from wfd to rfd (each pumped by a thread);
 * MB/s, or 0 when it fell short (printed). */
static double bs_transfer(int wfd, int rfd, uint64_t total)
{
	struct bs_pump w = { .fd = wfd, .writer = true, .total = total };
	struct bs_pump r = { .fd = rfd, .writer = false, .total = total };
	double t0 = bench_now();

	if (pthread_create(&r.t, NULL, bs_pump_run, &r) ||
	    pthread_create(&w.t, NULL, bs_pump_run, &w))
		bs_die("pthread_create");
	pthread_join(w.t, NULL);
	pthread_join(r.t, NULL);
	t0 = bench_now() - t0;
	if (w.err || r.err || r.done != total) {
		fprintf(stderr, "bench-serial: moved %" PRIu64 " of %" PRIu64
		        " bytes (%s)\n", r.done, total,
		        strerror(w.err ? w.err : r.err));
		return 0;
	}
	return (double)total / t0 / 1e6;
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

int main(int argc, char **argv)
{
	double c[2][BS_MAX_RUNS], b[2][BS_MAX_RUNS];
	static const char *const names[2] = { "serial_h2g_64k",
	                                      "serial_g2h_64k" };
	char path[160], spec[224];
	const char *cargs[] = { "--serial", spec, NULL };
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
	for (r = 0; r < runs; r++) {
		c[0][r] = bs_transfer(ffd, sfd, total);
		c[1][r] = bs_transfer(sfd, ffd, total);
		for (d = 0; d < 2; d++) {
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
			               sv) < 0)
				bs_die("socketpair");
			b[d][r] = bs_transfer(sv[0], sv[1], total);
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

		printf("figure %s chanfs=%.4g base=%.4g ratio=%.3f\n", names[d],
		       x, y, y > 0 ? x / y : 0);
	}
	return h.failed;
}
