/*
 * A hostile front-end or local user cannot hang, crash or hijack the real
 * chanfs (mounted in a temporary folder, its vhost-user socket driven by
 * tests/vmm):
 *  - an fd opened on chanfs's own mount, handed over as a kick, call or
 *    region fd or with a message that wants none, is refused and chanfs
 *    goes on serving (before: it waited on itself in D state for good);
 *  - guest memory that is not sealed against shrinking is refused (before:
 *    shrinking it and kicking killed chanfs with SIGBUS);
 *  - a stalled front-end (half a header, or nothing) does not keep the
 *    next one out, a second client beside a healthy front-end is turned
 *    away at once, and status shows the front-end's pid and state;
 *  - a second chanfs on the same socket or on the same mount exits 2 and
 *    leaves the first alone; a stale socket is replaced;
 *  - symlink and rename answer EPERM; a private mapping of a stream never
 *    eats the stream's bytes;
 *  - an fd whose last close waits (a TCP socket with SO_LINGER and unsent
 *    data), queued in a message chanfs never reads (behind a refused one,
 *    or from a client turned away unread), does not stop its loop (before:
 *    the kernel released it in chanfs's close of the connection, which
 *    waited out the linger).
 * A hang is caught with a bounded wait; the test then aborts the FUSE
 * connection it created (and only that one) so that nothing stays stuck.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chanfs/vu.h"
#include "vmm.h"
#include "vsock_harness.h"

/* Bounds against hangs, never measurements. */
#define HANG_MS 10000

static void nap_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The FUSE connection number of h->mnt, from /proc/self/mountinfo (its
 * minor device number), without touching the mount.  0 if not mounted. */
static unsigned fuse_conn(const struct vh *h)
{
	char line[4096], mp[512];
	unsigned maj, min, found = 0;
	FILE *f = fopen("/proc/self/mountinfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*d %*d %u:%u %*s %511s", &maj, &min, mp) == 3 &&
		    !strcmp(mp, h->mnt) && strstr(line, " fuse.chanfs "))
			found = min;
	fclose(f);
	return found;
}

/* How many chanfs mounts sit on h->mnt. */
static unsigned mounts_on(const char *path)
{
	char line[4096], mp[512];
	unsigned n = 0;
	FILE *f = fopen("/proc/self/mountinfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*d %*d %*u:%*u %*s %511s", mp) == 1 &&
		    !strcmp(mp, path) && strstr(line, " fuse.chanfs "))
			n++;
	fclose(f);
	return n;
}

/* Write 1 to DIR/N/abort; true when it could. */
static bool write_abort(const char *dir, unsigned c)
{
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%u/abort", dir, c);
	if (!(f = fopen(path, "w")))
		return false;
	fprintf(stderr, "test: chanfs hangs: writing 1 to %s\n", path);
	fputs("1\n", f);
	return fclose(f) == 0;
}

/* chanfs hung on its own mount: abort our connection (and only ours) so
 * that it and the test's cleanup can go on.  Where fusectl is not mounted
 * on /sys/fs/fuse/connections, mount it in a private folder for this. */
static void abort_our_fuse(const struct vh *h)
{
	char dir[] = "/tmp/chanfs-fusectl.XXXXXX";
	unsigned c = fuse_conn(h);

	if (!c || write_abort("/sys/fs/fuse/connections", c))
		return;
	if (!mkdtemp(dir))
		return;
	if (mount("none", dir, "fusectl", 0, NULL) == 0) {
		write_abort(dir, c);
		umount(dir);
	}
	rmdir(dir);
}

/* Read MNT/status in a child within HANG_MS into out; false when chanfs
 * does not answer (the child is killed; a FUSE wait is killable). */
static bool status_within(const struct vh *h, char *out, size_t max)
{
	int p[2], st;
	size_t len = 0;
	pid_t pid;
	struct pollfd pf;
	bool ok = false;

	if (pipe2(p, O_CLOEXEC) < 0)
		return false;
	pid = fork();
	if (pid == 0) {
		char buf[4096];
		ssize_t r;
		int fd = open(vh_path((struct vh *)h, "status"), O_RDONLY);

		if (fd < 0)
			_exit(1);
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			if (write(p[1], buf, (size_t)r) != r)
				_exit(1);
		_exit(r < 0);
	}
	close(p[1]);
	pf = (struct pollfd){ .fd = p[0], .events = POLLIN };
	for (;;) {
		ssize_t r;

		if (poll(&pf, 1, HANG_MS) <= 0)
			break;
		r = read(p[0], out + len, max - 1 - len);
		if (r <= 0) {
			ok = r == 0;
			break;
		}
		len += (size_t)r;
		if (len == max - 1)
			break;
	}
	out[len] = 0;
	close(p[0]);
	if (!ok)
		kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* chanfs answers on its mount; if not, free it and fail. */
static void assert_serving(struct vh *h, const char *after)
{
	char text[8192];

	if (!status_within(h, text, sizeof(text))) {
		fprintf(stderr, "test: chanfs stopped answering after %s\n",
		        after);
		abort_our_fuse(h);
		fail_msg("chanfs hangs after %s", after);
	}
}

static bool log_has(const struct vh *h, size_t since, const char *needle)
{
	char *t = vh_log_since(h, since);
	bool found = t && strstr(t, needle);

	free(t);
	return found;
}

/* Wait (bounded) for needle to appear in the log after offset since. */
static bool log_wait(const struct vh *h, size_t since, const char *needle)
{
	int i;

	for (i = 0; i < HANG_MS / 10; i++) {
		if (log_has(h, since, needle))
			return true;
		nap_ms(10);
	}
	fprintf(stderr, "test: the log never said \"%s\"\n", needle);
	return false;
}

static int start(void **state)
{
	struct vh *h;

	if (vh_setup(state) < 0)
		return -1;
	h = *state;
	return vh_start_chanfs(h, NULL) < 0 ? -1 : 0;
}

static struct vmm_opts quick = { .timeout_ms = HANG_MS };

/* Send request with fd (one of the mount's files) on a fresh connection,
 * then make sure chanfs still answers and logged the refusal. */
static void own_fd_is_refused(struct vh *h, const char *what,
                              uint32_t request, const void *payload,
                              uint32_t size)
{
	size_t off = vh_log_size(h);
	struct vmm *v;
	int fd;

	fprintf(stderr, "test: %s\n", what);
	fd = open(vh_path(h, "status"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	v = vmm_connect_raw(h->sock, &quick);
	assert_non_null(v);
	assert_int_equal(vmm_send_msg(v, request, VU_VERSION, payload, size,
	                              &fd, 1), 0);
	close(fd);
	/* chanfs drops the connection (no REPLY_ACK was negotiated) */
	vmm_wait_closed(v, HANG_MS);
	assert_serving(h, what);
	assert_true(log_wait(h, off, "chanfs's own mount"));
	vmm_disconnect(v);
}

static void fds_on_its_own_mount_never_hang_chanfs(void **state)
{
	struct vh *h = *state;
	uint64_t q0 = 0;
	struct vu_mem_table t = { .nregions = 1 };
	struct vmm *v;

	own_fd_is_refused(h, "a status fd as kick fd", VU_SET_VRING_KICK,
	                  &q0, 8);
	own_fd_is_refused(h, "a status fd as call fd", VU_SET_VRING_CALL,
	                  &q0, 8);
	own_fd_is_refused(h, "a status fd as error fd", VU_SET_VRING_ERR,
	                  &q0, 8);
	t.r[0] = (struct vu_mem_region){ .gpa = 0, .size = 4096,
	                                 .uva = 0x10000, .mmap_offset = 0 };
	own_fd_is_refused(h, "a status fd as a memory region",
	                  VU_SET_MEM_TABLE, &t, 8 + 32);
	own_fd_is_refused(h, "a status fd with GET_FEATURES",
	                  VU_GET_FEATURES, NULL, 0);

	/* and a real front-end still gets the device */
	v = vmm_connect(h->sock, &quick);
	assert_non_null(v);
	vmm_disconnect(v);
	assert_serving(h, "a normal front-end");
}

static void unsealed_guest_memory_is_refused_not_a_crash(void **state)
{
	struct vh *h = *state;
	struct vmm_opts o = { .timeout_ms = HANG_MS, .unsealed = true };
	size_t off = vh_log_size(h);
	struct vmm *v;

	v = vmm_connect(h->sock, &o);
	if (v) {
		/* accepted: shrink it under chanfs and kick the rings */
		uint64_t one = 1;
		struct vmm_sg sg;

		sg.gpa = vmm_alloc(v, 4096, 16);
		sg.len = 4096;
		assert_int_equal(ftruncate(vmm_mem_fd(v), 0), 0);
		vmm_vq_add(v, 0, NULL, 0, &sg, 1, &sg);
		assert_int_equal(write(vmm_vq_kick_fd(v, 0), &one, 8), 8);
		assert_int_equal(write(vmm_vq_kick_fd(v, 1), &one, 8), 8);
		nap_ms(500);
		vmm_disconnect(v);
	}
	assert_true(vh_chanfs_alive(h));
	assert_null(v);
	assert_true(log_wait(h, off, "not sealed"));
	assert_serving(h, "unsealed guest memory");
	/* a sealed memfd cannot shrink at all */
	v = vmm_connect(h->sock, &quick);
	assert_non_null(v);
	assert_int_equal(ftruncate(vmm_mem_fd(v), 0), -1);
	assert_int_equal(errno, EPERM);
	vmm_disconnect(v);
}

static int dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The peer closed fd within HANG_MS. */
static bool closed_within(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	char c;

	while (poll(&pf, 1, HANG_MS) == 1)
		if (read(fd, &c, 1) <= 0)
			return true;
	return false;
}

static void a_stalled_front_end_does_not_lock_out_the_next(void **state)
{
	struct vh *h = *state;
	static const uint8_t half[5] = { VU_GET_FEATURES };
	char text[8192], want[64];
	size_t off = vh_log_size(h);
	struct vmm *v;
	int stalled, silent, extra;

	/* half a header, then nothing */
	stalled = dial(h->sock);
	assert_true(stalled >= 0);
	assert_int_equal(write(stalled, half, sizeof(half)), sizeof(half));
	nap_ms(200);
	v = vmm_connect(h->sock, &quick);
	assert_non_null(v);
	assert_true(closed_within(stalled));
	close(stalled);
	assert_true(log_wait(h, off, "had not completed the handshake"));
	/* status names the front-end and its state */
	assert_true(status_within(h, text, sizeof(text)));
	snprintf(want, sizeof(want), "front-end pid %d", (int)getpid());
	if (!strstr(text, want) || !strstr(text, "running"))
		fail_msg("status does not show the front-end:\n%s", text);

	/* a client beside a healthy front-end is turned away at once */
	off = vh_log_size(h);
	extra = dial(h->sock);
	assert_true(extra >= 0);
	assert_true(closed_within(extra));
	close(extra);
	assert_true(log_wait(h, off, "is connected"));
	vmm_disconnect(v);

	/* one that never says a word is dropped in time on its own */
	off = vh_log_size(h);
	silent = dial(h->sock);
	assert_true(silent >= 0);
	assert_true(log_wait(h, off, "front-end connected"));
	assert_true(status_within(h, text, sizeof(text)));
	if (!strstr(text, "handshake"))
		fail_msg("status does not show the handshake:\n%s", text);
	{
		struct pollfd pf = { .fd = silent, .events = POLLIN };

		/* generous: the handshake timeout plus slack */
		assert_int_equal(poll(&pf, 1, 4 * HANG_MS), 1);
	}
	close(silent);
	assert_true(log_wait(h, off, "handshake timed out"));
}

/* A TCP socket over loopback whose last close waits out SO_LINGER
 * (LINGER_S): unsent data the peer (*rx, never read) has no room for.
 * *ls is the listener.  Closing *rx (unread data: RST) ends the wait. */
#define LINGER_S 60
static int lingering_socket(int *rx, int *ls)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct linger lg = { .l_onoff = 1, .l_linger = LINGER_S };
	int small = 4096, tx;
	static char junk[65536];

	*ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(*ls >= 0);
	assert_int_equal(setsockopt(*ls, SOL_SOCKET, SO_RCVBUF, &small,
	                            sizeof(small)), 0);
	assert_int_equal(bind(*ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(*ls, 1), 0);
	assert_int_equal(getsockname(*ls, (struct sockaddr *)&sa, &len), 0);
	tx = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(tx >= 0);
	assert_int_equal(setsockopt(tx, SOL_SOCKET, SO_SNDBUF, &small,
	                            sizeof(small)), 0);
	assert_int_equal(connect(tx, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*rx = accept4(*ls, NULL, NULL, SOCK_CLOEXEC);
	assert_true(*rx >= 0);
	while (send(tx, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
	assert_int_equal(setsockopt(tx, SOL_SOCKET, SO_LINGER, &lg,
	                            sizeof(lg)), 0);
	return tx;
}

/* Connect, send what first (may be NULL), then a SET_VRING_KICK carrying
 * fd, all while chanfs is stopped (SIGSTOP): the connection waits in the
 * listen backlog, so both are sure to sit in its queue, unread, when
 * chanfs (SIGCONT) accepts it.  Takes fd; returns the connection. */
static struct vmm *queue_fd(struct vh *h, const uint8_t *first, size_t n,
                            int fd)
{
	uint64_t q0 = 0;
	struct vmm *v;

	assert_int_equal(kill(h->chanfs, SIGSTOP), 0);
	v = vmm_connect_raw(h->sock, &quick);
	assert_non_null(v);
	if (first)
		assert_int_equal(vmm_send_bytes(v, first, n, NULL, 0), 0);
	assert_int_equal(vmm_send_msg(v, VU_SET_VRING_KICK, VU_VERSION, &q0,
	                              8, &fd, 1), 0);
	close(fd);              /* the queued copy is the last one */
	assert_int_equal(kill(h->chanfs, SIGCONT), 0);
	return v;
}

/* A lingering socket queued on a connection chanfs ends unread (after
 * first, if given); chanfs must go on answering. */
static void lingering_fd_unread(struct vh *h, const char *what,
                                const uint8_t *first, size_t n)
{
	struct vmm *v;
	int rx, ls, tx;

	fprintf(stderr, "test: %s\n", what);
	tx = lingering_socket(&rx, &ls);
	v = queue_fd(h, first, n, tx);
	assert_true(vmm_wait_closed(v, HANG_MS));
	vmm_disconnect(v);
	assert_serving(h, what);
	close(rx);              /* unread data: RST, the linger ends */
	close(ls);
}

static void fds_it_never_reads_do_not_stop_its_loop(void **state)
{
	struct vh *h = *state;
	/* a request no vhost-user version has: the connection is dropped */
	static const uint8_t unknown[12] = { 0x0f, 0x27, 0, 0, 1 };
	struct vmm *owner;

	lingering_fd_unread(h, "a lingering socket queued behind a refused "
	                    "message", unknown, sizeof(unknown));
	owner = vmm_connect(h->sock, &quick);
	assert_non_null(owner);
	lingering_fd_unread(h, "a lingering socket from a client turned away",
	                    NULL, 0);
	vmm_disconnect(owner);
	assert_serving(h, "the front-end left");
}

/* Run a shell line with MNT and DIR set; its exit status. */
static int sh(struct vh *h, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return vh_sh(h, cmd, NULL, 0);
}

static void a_second_chanfs_cannot_take_over(void **state)
{
	struct vh *h = *state;
	struct vmm *v;

	/* the same socket, another mount: exit 2, the socket stays ours */
	assert_int_equal(sh(h, "mkdir -p \"$DIR/m2\" && timeout 20 \"%s\" -f "
	                    "-s \"%s\" \"$DIR/m2\"; s=$?; rmdir \"$DIR/m2\"; "
	                    "exit $s", h->chanfs_exe, h->sock), 2);
	v = vmm_connect(h->sock, &quick);
	assert_non_null(v);
	vmm_disconnect(v);
	/* the same mount, another socket: exit 2, no second mount */
	assert_int_equal(sh(h, "timeout 20 \"%s\" -f -s \"$DIR/s2\" \"%s\"",
	                    h->chanfs_exe, h->mnt), 2);
	assert_int_equal(mounts_on(h->mnt), 1);
	assert_int_equal(access(vh_path(h, "status"), R_OK), 0);
	assert_serving(h, "a second chanfs");
	/* a socket path that is no socket: exit 2 */
	assert_int_equal(sh(h, "mkdir -p \"$DIR/m3\" && : > \"$DIR/f\" && "
	                    "timeout 20 \"%s\" -f -s \"$DIR/f\" \"$DIR/m3\"; "
	                    "s=$?; rmdir \"$DIR/m3\"; exit $s", h->chanfs_exe),
	                 2);
}

static void a_stale_socket_is_replaced(void **state)
{
	struct vh *h = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vmm *v;
	int fd;

	/* a socket file nobody listens on: a chanfs that was killed */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h->sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(vh_start_chanfs(h, NULL), 0);
	assert_true(log_wait(h, 0, "stale"));
	v = vmm_connect(h->sock, &quick);
	assert_non_null(v);
	vmm_disconnect(v);
}

static void name_changes_are_eperm_and_streams_cannot_be_mapped(void **state)
{
	struct vh *h = *state;
	const char *const gargs[] = { "-l", "1234:echo", NULL };
	struct vh_guest *g = vh_start_guest(h, gargs);
	char buf[16] = { 0 }, from[256];
	void *p;
	int fd, st;
	pid_t pid;

	assert_non_null(g);
	errno = 0;
	assert_int_equal(symlink("x", vh_path(h, "link")), -1);
	assert_int_equal(errno, EPERM);
	snprintf(from, sizeof(from), "%s", vh_path(h, "status"));
	errno = 0;
	assert_int_equal(rename(from, vh_path(h, "s2")), -1);
	assert_int_equal(errno, EPERM);
	errno = 0;
	assert_int_equal(link(from, vh_path(h, "s3")), -1);
	assert_int_equal(errno, EPERM);

	fd = open(vh_path(h, "vsock/1234"), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello", 5), 5);
	nap_ms(300);            /* the echo is back in the to-host ring */
	p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p != MAP_FAILED) {
		/* touching it must not read the stream */
		pid = fork();
		if (pid == 0) {
			volatile char c;

			/* die of it, not in cmocka's handler */
			signal(SIGBUS, SIG_DFL);
			signal(SIGSEGV, SIG_DFL);
			c = *(volatile char *)p;

			(void)c;
			_exit(0);
		}
		assert_true(waitpid(pid, &st, 0) == pid);
		munmap(p, 4096);
	} else {
		assert_int_equal(errno, ENODEV);
	}
	assert_int_equal(read(fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			fds_on_its_own_mount_never_hang_chanfs, start,
			vh_teardown),
		cmocka_unit_test_setup_teardown(
			unsealed_guest_memory_is_refused_not_a_crash, start,
			vh_teardown),
		cmocka_unit_test_setup_teardown(
			a_stalled_front_end_does_not_lock_out_the_next, start,
			vh_teardown),
		cmocka_unit_test_setup_teardown(
			fds_it_never_reads_do_not_stop_its_loop, start,
			vh_teardown),
		cmocka_unit_test_setup_teardown(
			a_second_chanfs_cannot_take_over, start, vh_teardown),
		cmocka_unit_test_setup_teardown(a_stale_socket_is_replaced,
		                                vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			name_changes_are_eperm_and_streams_cannot_be_mapped,
			start, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
