/*
 * bench_vsock — chanfs end to end, against two baselines measured in the
 * same run: a UNIX socketpair (the kernel's cheapest stream) and nullfs (a
 * one-thread FUSE file system that discards writes and reads zeros: the
 * cost of FUSE alone).  Never pass/fail: it prints a table.
 *
 *   host->guest  write(2) of 4 KiB, 64 KiB, 1 MiB into MNT/vsock/7 (the
 *                simulated guest's sink), until the guest has it all
 *   guest->host  read(2) of those sizes from MNT/vsock/8 (the guest's
 *                source), to EOF
 *   echo RTT     one byte to MNT/vsock/9 (the guest's echo) and back
 *   connects/s   open(2) + close(2) of MNT/vsock/7, one after another
 * The baselines do the same on a socketpair (a child process as the
 * other end; connects/s: AF_UNIX connect to a listening socket) and on
 * nullfs's file (RTT: a one-byte write then a one-byte read).  Ratios are
 * chanfs's performance over the baseline's (higher is better; for RTT the
 * baseline's time over chanfs's).
 *
 * Run: meson test -C BUILD --benchmark vsock --verbose
 *   or BUILD/tests/bench/bench-vsock CHANFS CHANFS-GUEST NULLFS [MiB]
 * CHANFS_GUEST_ARGS selects the guest's virtqueue variant (e.g. "--layout
 * b --features in_order,event_idx,indirect").
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vsock_harness.h"

#define BV_MAX_CHUNK (1u << 20)
#define BV_RTT_N 2000
#define BV_CONN_N 300
#define BV_FUSE_MAGIC 0x65735546

static uint8_t bv_buf[BV_MAX_CHUNK];

struct bv_row {
	char name[40];
	const char *unit;
	double v[3];          /* chanfs, socketpair, nullfs */
	bool time;            /* lower is better */
};

static double bv_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bv_die(const char *what)
{
	fprintf(stderr, "bench-vsock: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void bv_write_all(int fd, size_t chunk, uint64_t total)
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

static uint64_t bv_read_all(int fd, size_t chunk)
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

/* --- chanfs ----------------------------------------------------------------- */

struct bv_chanfs {
	struct vh h;
	struct vh_guest *g;
	unsigned sinks;       /* sink connections finished so far */
};

static double bv_chanfs_write(struct bv_chanfs *c, size_t chunk,
                              uint64_t total)
{
	double t0 = bv_now();
	int fd = open(vh_path(&c->h, "vsock/7"), O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		bv_die("open vsock/7");
	bv_write_all(fd, chunk, total);
	close(fd);
	if (!vh_guest_wait(c->g, "conn lport=7 svc=sink", ++c->sinks,
	                   VH_TIMEOUT_MS))
		bv_die("guest sink");
	if (vh_kv_u64(c->g->line, "rx") != total)
		fprintf(stderr, "bench-vsock: the guest got %" PRIu64 " bytes\n",
		        vh_kv_u64(c->g->line, "rx"));
	return (double)total / (bv_now() - t0) / 1e6;
}

static double bv_chanfs_read(struct bv_chanfs *c, size_t chunk,
                             uint64_t total)
{
	double t0 = bv_now();
	int fd = open(vh_path(&c->h, "vsock/8"), O_RDONLY | O_CLOEXEC);
	uint64_t got;

	if (fd < 0)
		bv_die("open vsock/8");
	got = bv_read_all(fd, chunk);
	close(fd);
	if (got != total)
		fprintf(stderr, "bench-vsock: read %" PRIu64 " bytes\n", got);
	return (double)got / (bv_now() - t0) / 1e6;
}

static double bv_chanfs_rtt(struct bv_chanfs *c)
{
	int fd = open(vh_path(&c->h, "vsock/9"), O_RDWR | O_CLOEXEC);
	double t0;

	if (fd < 0)
		bv_die("open vsock/9");
	bv_rtt_loop(fd, 100);           /* warm up */
	t0 = bv_now();
	bv_rtt_loop(fd, BV_RTT_N);
	t0 = (bv_now() - t0) / BV_RTT_N * 1e6;
	close(fd);
	return t0;
}

static double bv_chanfs_conns(struct bv_chanfs *c)
{
	char path[256];
	double t0 = bv_now();
	unsigned i;

	snprintf(path, sizeof(path), "%s", vh_path(&c->h, "vsock/7"));
	for (i = 0; i < BV_CONN_N; i++) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);

		if (fd < 0)
			bv_die("open vsock/7");
		close(fd);
	}
	return BV_CONN_N / (bv_now() - t0);
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

static double bv_unix_conns(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	double t0;
	unsigned i;
	pid_t pid;
	int l;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/bench.sock", dir);
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(l, 128) < 0)
		bv_die("unix listen");
	pid = fork();
	if (pid == 0) {
		for (i = 0; i < BV_CONN_N; i++) {
			int a = accept(l, NULL, NULL);

			if (a >= 0)
				close(a);
		}
		_exit(0);
	}
	t0 = bv_now();
	for (i = 0; i < BV_CONN_N; i++) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			bv_die("unix connect");
		close(s);
	}
	t0 = BV_CONN_N / (bv_now() - t0);
	waitpid(pid, NULL, 0);
	close(l);
	unlink(sa.sun_path);
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

static double bv_null_conns(const char *file)
{
	double t0 = bv_now();
	unsigned i;

	for (i = 0; i < BV_CONN_N; i++) {
		int fd = open(file, O_WRONLY | O_CLOEXEC);

		if (fd < 0)
			bv_die("open nullfs");
		close(fd);
	}
	return BV_CONN_N / (bv_now() - t0);
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
	return -1;
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

/* --- main ----------------------------------------------------------------- */

static void bv_print(const struct bv_row *rows, unsigned n, uint64_t total)
{
	unsigned i;

	printf("\nchanfs vsock benchmark: %" PRIu64 " MiB per throughput row, "
	       "%u echoes, %u connects; guest %s\n", total >> 20, BV_RTT_N,
	       BV_CONN_N, getenv("CHANFS_GUEST_ARGS") &&
	       *getenv("CHANFS_GUEST_ARGS") ? getenv("CHANFS_GUEST_ARGS") :
	       "layout a, no ring features");
	printf("%-24s %12s %12s %12s %6s %10s %10s\n", "", "chanfs",
	       "socketpair", "nullfs", "", "vs pair", "vs nullfs");
	for (i = 0; i < n; i++) {
		const struct bv_row *r = &rows[i];
		double a = r->time ? r->v[1] / r->v[0] : r->v[0] / r->v[1];
		double b = r->time ? r->v[2] / r->v[0] : r->v[0] / r->v[2];

		printf("%-24s %12.1f %12.1f %12.1f %-6s %9.3fx %9.3fx\n",
		       r->name, r->v[0], r->v[1], r->v[2], r->unit, a, b);
	}
	printf("(ratio: chanfs's performance over the baseline's; higher is "
	       "better)\n");
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 4u << 10, 64u << 10, 1u << 20 };
	static const char *const names[] = { "4K", "64K", "1M" };
	struct bv_chanfs c;
	struct bv_row rows[12];
	char nmnt[128], nfile[160], srcarg[64];
	const char *gargs[] = { "-l", "7:sink", "-l", srcarg, "-l", "9:echo",
	                        NULL };
	uint64_t total;
	unsigned n = 0, i;
	pid_t npid;

	if (argc < 4) {
		fprintf(stderr, "usage: bench-vsock CHANFS CHANFS-GUEST NULLFS "
		        "[MiB per row]\n");
		return 2;
	}
	total = (argc > 4 ? strtoull(argv[4], NULL, 0) : 128) << 20;
	setenv("CHANFS_EXE", argv[1], 1);
	setenv("CHANFS_GUEST", argv[2], 1);
	snprintf(srcarg, sizeof(srcarg), "8:source=%" PRIu64, total);
	memset(bv_buf, 'b', sizeof(bv_buf));
	signal(SIGPIPE, SIG_IGN);

	memset(&c, 0, sizeof(c));
	if (vh_init(&c.h) < 0 || vh_start_chanfs(&c.h, NULL) < 0)
		return 1;
	c.g = vh_start_guest(&c.h, gargs);
	if (!c.g) {
		vh_cleanup(&c.h);
		return 1;
	}
	snprintf(nmnt, sizeof(nmnt), "%s/nullfs", c.h.dir);
	snprintf(nfile, sizeof(nfile), "%s/null", nmnt);
	if (mkdir(nmnt, 0700) < 0)
		bv_die("mkdir");
	npid = bv_nullfs_start(argv[3], nmnt);

	for (i = 0; i < 3; i++, n++) {
		snprintf(rows[n].name, sizeof(rows[n].name),
		         "host->guest write %s", names[i]);
		rows[n].unit = "MB/s";
		rows[n].time = false;
		rows[n].v[0] = bv_chanfs_write(&c, sizes[i], total);
		rows[n].v[1] = bv_pair_write(sizes[i], total);
		rows[n].v[2] = bv_null_write(nfile, sizes[i], total);
	}
	for (i = 0; i < 3; i++, n++) {
		snprintf(rows[n].name, sizeof(rows[n].name),
		         "guest->host read %s", names[i]);
		rows[n].unit = "MB/s";
		rows[n].time = false;
		rows[n].v[0] = bv_chanfs_read(&c, sizes[i], total);
		rows[n].v[1] = bv_pair_read(sizes[i], total);
		rows[n].v[2] = bv_null_read(nfile, sizes[i], total);
	}
	snprintf(rows[n].name, sizeof(rows[n].name), "echo RTT 1 byte");
	rows[n].unit = "us";
	rows[n].time = true;
	rows[n].v[0] = bv_chanfs_rtt(&c);
	rows[n].v[1] = bv_pair_rtt();
	rows[n].v[2] = bv_null_rtt(nfile);
	n++;
	snprintf(rows[n].name, sizeof(rows[n].name), "connects");
	rows[n].unit = "/s";
	rows[n].time = false;
	rows[n].v[0] = bv_chanfs_conns(&c);
	rows[n].v[1] = bv_unix_conns(c.h.dir);
	rows[n].v[2] = bv_null_conns(nfile);
	n++;

	bv_nullfs_stop(npid, nmnt);
	rmdir(nmnt);
	printf("chanfs peak RSS %ld KiB\n", vh_chanfs_hwm_kb(&c.h));
	vh_guest_stop(c.g);
	vh_cleanup(&c.h);
	bv_print(rows, n, total);
	return 0;
}
