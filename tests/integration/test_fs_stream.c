/*
 * fs against a fake provider (test_fs_fake.h, tests/fakedir.h): the real fs/ code
 * serving a mount from a child process, the test doing file I/O on the
 * mount and scripting the "guest" side of each channel.  This checks the errno
 * table of include/chanfs/fs.h without a simulated VMM: parked reads and
 * writes, partial counts, interrupts, EOF, resets, poll, the last close.
 *
 * Waiting is always for a condition (a parked request, a finished call),
 * with a generous bound that only guards against a hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>
#include <stdbool.h>
#include <sys/xattr.h>

#include "test_fs_fake.h"

#define WIN FAKE_WIN

/* --- connect ------------------------------------------------------------- */

static void test_connect_without_a_driver_fails_at_once_with_enotconn(void **state)
{
	(void)state;
	fake_no_driver();
	errno = 0;
	assert_int_equal(open(fake_path("vsock/1234"), O_RDWR), -1);
	assert_int_equal(errno, ENOTCONN);
	assert_int_equal(fake_count(FQ_CONNS, 0), 0);
}

static void test_connect_waits_for_the_guest_answer_even_with_o_nonblock(void **state)
{
	struct op o = { .kind = OP_OPEN, .flags = O_RDWR | O_NONBLOCK };

	(void)state;
	o.path = strdup(fake_path("vsock/1234"));
	op_start(&o);
	op_assert_blocked(&o, 1);
	guest_opened(0);
	op_wait(&o);
	assert_true(o.ret >= 0);
	close_and_wait((int)o.ret, 1);
	free((char *)o.path);
}

static void test_connect_refused_by_the_guest_fails_with_econnrefused(void **state)
{
	struct op o = { .kind = OP_OPEN, .flags = O_RDWR };

	(void)state;
	o.path = strdup(fake_path("vsock/99"));
	op_start(&o);
	op_assert_blocked(&o, 1);
	guest_reset(0, ECONNREFUSED);
	op_wait(&o);
	assert_int_equal(o.ret, -1);
	assert_int_equal(o.err, ECONNREFUSED);
	assert_int_equal(fake_count(FQ_PARKED, 0), 0);
	free((char *)o.path);
}

static void test_connect_timed_out_fails_with_etimedout(void **state)
{
	struct op o = { .kind = OP_OPEN, .flags = O_RDONLY };

	(void)state;
	o.path = strdup(fake_path("vsock/99"));
	op_start(&o);
	op_assert_blocked(&o, 1);
	guest_reset(0, ETIMEDOUT);
	op_wait(&o);
	assert_int_equal(o.ret, -1);
	assert_int_equal(o.err, ETIMEDOUT);
	free((char *)o.path);
}

static void test_connect_interrupted_by_a_signal_fails_with_eintr_and_closes(void **state)
{
	struct op o = { .kind = OP_OPEN, .flags = O_RDWR };

	(void)state;
	o.path = strdup(fake_path("vsock/1234"));
	op_start(&o);
	op_assert_blocked(&o, 1);
	pthread_kill(o.t, SIGUSR1);
	op_wait(&o);
	assert_int_equal(o.ret, -1);
	assert_int_equal(o.err, EINTR);
	/* The connection being made is closed on the device side. */
	assert_int_equal(fake_count(FQ_HOST_CLOSES, 0), 1);
	free((char *)o.path);
}

/* --- accept -------------------------------------------------------------- */

static void test_accept_with_o_nonblock_and_nobody_waiting_fails_with_eagain(void **state)
{
	(void)state;
	errno = 0;
	assert_int_equal(open(fake_path("vsock/listen/5000"), O_RDONLY | O_NONBLOCK), -1);
	assert_int_equal(errno, EAGAIN);
}

static void test_accept_waits_for_the_guest_to_connect(void **state)
{
	struct op o = { .kind = OP_OPEN, .flags = O_RDWR };
	char buf[8];

	(void)state;
	o.path = strdup(fake_path("vsock/listen/5000"));
	op_start(&o);
	op_assert_blocked(&o, 1);
	guest_send(guest_incoming(5000), "hi");
	op_wait(&o);
	assert_true(o.ret >= 0);
	assert_int_equal(read((int)o.ret, buf, sizeof buf), 2);
	assert_memory_equal(buf, "hi", 2);
	close_and_wait((int)o.ret, 1);
	free((char *)o.path);
}

static void test_accept_interrupted_by_a_signal_fails_with_eintr(void **state)
{
	struct op o = { .kind = OP_OPEN, .flags = O_RDONLY };

	(void)state;
	o.path = strdup(fake_path("vsock/listen/5001"));
	op_start(&o);
	op_assert_blocked(&o, 1);
	pthread_kill(o.t, SIGUSR1);
	op_wait(&o);
	assert_int_equal(o.ret, -1);
	assert_int_equal(o.err, EINTR);
	free((char *)o.path);
}

/* vsock.h: a connection the guest ended before it was accepted is still
 * accepted; its data reads, then its error. */
static void test_accept_of_a_connection_the_guest_already_reset_reads_its_data_then_econnreset(void **state)
{
	unsigned conn = guest_incoming(5002);
	char buf[16];
	int fd;

	(void)state;
	guest_send(conn, "early");
	guest_reset(conn, ECONNRESET);
	fd = open(fake_path("vsock/listen/5002"), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof buf), 5);
	assert_memory_equal(buf, "early", 5);
	errno = 0;
	assert_int_equal(read(fd, buf, sizeof buf), -1);
	assert_int_equal(errno, ECONNRESET);
	assert_int_equal(close(fd), 0);
}

/* --- reading ------------------------------------------------------------- */

static void test_read_returns_what_is_there_at_once(void **state)
{
	unsigned conn;
	int fd = open_accepted(6000, O_RDWR, &conn);
	char buf[64];

	(void)state;
	guest_send(conn, "hello");
	assert_int_equal(read(fd, buf, sizeof buf), 5);
	assert_memory_equal(buf, "hello", 5);
	guest_send(conn, "abcdef");
	assert_int_equal(read(fd, buf, 4), 4);
	assert_memory_equal(buf, "abcd", 4);
	assert_int_equal(read(fd, buf, sizeof buf), 2);
	close_and_wait(fd, 1);
}

static void test_read_with_nothing_there_and_o_nonblock_fails_with_eagain(void **state)
{
	unsigned conn;
	int fd = open_accepted(6001, O_RDWR | O_NONBLOCK, &conn);
	char buf[8];

	(void)state;
	errno = 0;
	assert_int_equal(read(fd, buf, sizeof buf), -1);
	assert_int_equal(errno, EAGAIN);
	close_and_wait(fd, 1);
}

static void test_fcntl_o_nonblock_applies_to_later_reads(void **state)
{
	unsigned conn;
	int fd = open_accepted(6002, O_RDWR, &conn);
	char buf[8];

	(void)state;
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	errno = 0;
	assert_int_equal(read(fd, buf, sizeof buf), -1);
	assert_int_equal(errno, EAGAIN);
	close_and_wait(fd, 1);
}

static void test_blocked_read_is_answered_when_data_arrives(void **state)
{
	unsigned conn;
	char buf[64];
	struct op o = { .kind = OP_READ, .buf = buf, .len = sizeof buf };

	(void)state;
	o.fd = open_accepted(6003, O_RDWR, &conn);
	op_start(&o);
	op_assert_blocked(&o, 1);
	guest_send(conn, "late");
	op_wait(&o);
	assert_int_equal(o.ret, 4);
	assert_memory_equal(buf, "late", 4);
	close_and_wait(o.fd, 1);
}

static void test_read_after_guest_eof_returns_the_data_then_zero(void **state)
{
	unsigned conn;
	int fd = open_accepted(6004, O_RDWR, &conn);
	char buf[64];

	(void)state;
	guest_send(conn, "last");
	guest_eof(conn);
	assert_int_equal(read(fd, buf, sizeof buf), 4);
	assert_int_equal(read(fd, buf, sizeof buf), 0);
	assert_int_equal(read(fd, buf, sizeof buf), 0);
	close_and_wait(fd, 1);
}

static void test_blocked_read_gets_zero_at_guest_eof(void **state)
{
	unsigned conn;
	char buf[64];
	struct op o = { .kind = OP_READ, .buf = buf, .len = sizeof buf };

	(void)state;
	o.fd = open_accepted(6005, O_RDONLY, &conn);
	op_start(&o);
	op_assert_blocked(&o, 1);
	guest_eof(conn);
	op_wait(&o);
	assert_int_equal(o.ret, 0);
	close_and_wait(o.fd, 1);
}

static void test_read_after_reset_returns_the_data_then_econnreset(void **state)
{
	unsigned conn;
	int fd = open_accepted(6006, O_RDWR, &conn);
	char buf[64];

	(void)state;
	guest_send(conn, "kept");
	guest_reset(conn, ECONNRESET);
	assert_int_equal(read(fd, buf, sizeof buf), 4);
	errno = 0;
	assert_int_equal(read(fd, buf, sizeof buf), -1);
	assert_int_equal(errno, ECONNRESET);
	errno = 0;
	assert_int_equal(write(fd, "x", 1), -1);
	assert_int_equal(errno, ECONNRESET);
	close_and_wait(fd, 0);
}

/* The VMM went away: the device resets every channel. */
static void test_blocked_read_and_write_end_with_econnreset_when_the_device_goes(void **state)
{
	unsigned conn;
	char rbuf[64], *wbuf = calloc(1, 3 * WIN);
	struct op r = { .kind = OP_READ, .buf = rbuf, .len = sizeof rbuf };
	struct op w = { .kind = OP_WRITE, .buf = wbuf, .len = 3 * WIN };

	(void)state;
	r.fd = w.fd = open_accepted(6007, O_RDWR, &conn);
	op_start(&r);
	op_start(&w);
	op_assert_blocked(&r, 2);
	op_assert_blocked(&w, 2);
	guest_reset(conn, ECONNRESET);
	op_wait(&r);
	op_wait(&w);
	assert_int_equal(r.ret, -1);
	assert_int_equal(r.err, ECONNRESET);
	/* The write had a window's worth taken before the reset. */
	assert_int_equal(w.ret, WIN);
	close(r.fd);
	free(wbuf);
}

static void test_blocked_read_interrupted_by_a_signal_fails_with_eintr(void **state)
{
	unsigned conn;
	char buf[64];
	struct op o = { .kind = OP_READ, .buf = buf, .len = sizeof buf };

	(void)state;
	o.fd = open_accepted(6008, O_RDWR, &conn);
	op_start(&o);
	op_assert_blocked(&o, 1);
	pthread_kill(o.t, SIGUSR1);
	op_wait(&o);
	assert_int_equal(o.ret, -1);
	assert_int_equal(o.err, EINTR);
	/* Nothing was lost: data sent now is read whole. */
	guest_send(conn, "after");
	assert_int_equal(read(o.fd, buf, sizeof buf), 5);
	close_and_wait(o.fd, 1);
}

/* "A blocked cat killed with SIGINT exits at once." */
static void test_process_blocked_in_read_dies_at_once_on_sigint(void **state)
{
	unsigned conn;
	int fd = open_accepted(6009, O_RDONLY, &conn);
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[16];

		/* The default action, as in cat (our handlers are libevent's). */
		signal(SIGINT, SIG_DFL);
		(void)read(fd, buf, sizeof buf);
		_exit(0);
	}
	fake_wait(FQ_PARKED, 0, 1);
	kill(pid, SIGINT);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGINT);
	assert_int_equal(fake_count(FQ_PARKED, 0), 0);
	close_and_wait(fd, 1);
}

/* --- writing ------------------------------------------------------------- */

static void test_write_that_fits_returns_the_full_count(void **state)
{
	unsigned conn;
	/* As a shell's "echo ping > file" opens it. */
	int fd = open_accepted(7000, O_WRONLY | O_CREAT | O_TRUNC, &conn);
	char buf[16];

	(void)state;
	assert_int_equal(write(fd, "ping", 4), 4);
	assert_int_equal(guest_drain(conn, buf, sizeof buf), 4);
	assert_memory_equal(buf, "ping", 4);
	close_and_wait(fd, 1);
}

static void test_blocking_write_larger_than_the_window_waits_until_all_is_taken(void **state)
{
	size_t total = 5 * WIN + 123, got = 0;
	char *in = malloc(total), *out = malloc(total);
	struct op w = { .kind = OP_WRITE, .buf = in, .len = total };
	unsigned conn;
	size_t i;

	(void)state;
	for (i = 0; i < total; i++)
		in[i] = (char)(i * 7 + i / 251);
	w.fd = open_accepted(7001, O_RDWR, &conn);
	op_start(&w);
	op_assert_blocked(&w, 1);
	for (i = 0; got < total && i < FAKE_GUARD_STEPS; i++) {
		size_t n;

		/* Not answered while more than a window is still to take. */
		if (total - got > WIN)
			assert_false(atomic_load(&w.done));
		n = guest_drain(conn, out + got, total - got);
		if (n == 0)
			usleep(1000);
		got += n;
	}
	op_wait(&w);
	assert_int_equal(w.ret, total);
	assert_memory_equal(in, out, total);
	close_and_wait(w.fd, 1);
	free(in);
	free(out);
}

/* (From a page-aligned buffer: the kernel cuts direct I/O at max_pages
 * pages, so an unaligned MiB comes as two requests.) */
static void test_a_one_mib_write_reaches_the_daemon_as_one_request(void **state)
{
	size_t mib = 1 << 20;
	char *big = NULL;
	struct op w = { .kind = OP_WRITE, .len = mib };
	unsigned conn;

	(void)state;
	assert_int_equal(posix_memalign((void **)&big, 4096, mib), 0);
	memset(big, 'm', mib);
	w.buf = big;
	w.fd = open_accepted(7007, O_RDWR, &conn);
	op_start(&w);
	op_assert_blocked(&w, 1);
	assert_int_equal(fake_count(FQ_PARKED_WRITE_SIZE, 0), mib);
	guest_reset(conn, ECONNRESET);
	op_wait(&w);
	assert_int_equal(w.ret, WIN);
	close(w.fd);
	free(big);
}

static void test_nonblocking_write_returns_the_partial_count_then_eagain(void **state)
{
	char *big = calloc(1, 3 * WIN);
	unsigned conn;
	int fd = open_accepted(7002, O_RDWR | O_NONBLOCK, &conn);

	(void)state;
	assert_int_equal(write(fd, big, 3 * WIN), WIN);
	errno = 0;
	assert_int_equal(write(fd, big, 10), -1);
	assert_int_equal(errno, EAGAIN);
	/* A non-blocking close does not wait for the window to drain. */
	close_failing_and_wait(fd, EAGAIN, 1);
	free(big);
}

static void test_interrupted_write_returns_the_count_already_taken(void **state)
{
	char *big = calloc(1, 3 * WIN);
	struct op w = { .kind = OP_WRITE, .buf = big, .len = 3 * WIN };
	unsigned conn;

	(void)state;
	w.fd = open_accepted(7003, O_RDWR, &conn);
	op_start(&w);
	op_assert_blocked(&w, 1);
	pthread_kill(w.t, SIGUSR1);
	op_wait(&w);
	assert_int_equal(w.ret, WIN);
	assert_int_equal(fake_count(FQ_RING_USED, conn), WIN);
	close_failing_and_wait(w.fd, ETIMEDOUT, 1);
	free(big);
}

/* Two writers on one descriptor: the second waits behind the parked first
 * (writes stay whole and in order); a signal to it answers it with EINTR
 * while the first keeps waiting. */
static void test_a_signal_to_a_writer_queued_behind_a_parked_writer_fails_it_with_eintr(void **state)
{
	char *big = calloc(1, 2 * WIN), buf[64];
	struct op w1 = { .kind = OP_WRITE, .buf = big, .len = 2 * WIN };
	struct op w2 = { .kind = OP_WRITE, .buf = buf, .len = sizeof buf };
	unsigned conn;
	size_t got = 0, n;

	(void)state;
	memset(buf, 'z', sizeof buf);
	w1.fd = open_accepted(7007, O_RDWR, &conn);
	w2.fd = w1.fd;
	op_start(&w1);
	op_assert_blocked(&w1, 1);
	op_start(&w2);
	op_assert_blocked(&w2, 2);
	pthread_kill(w2.t, SIGUSR1);
	op_wait(&w2);
	assert_int_equal(w2.ret, -1);
	assert_int_equal(w2.err, EINTR);
	assert_false(atomic_load(&w1.done));
	while ((n = guest_drain(conn, big, 2 * WIN)) > 0 || !atomic_load(&w1.done))
		got += n;
	op_wait(&w1);
	assert_int_equal(w1.ret, 2 * WIN);
	assert_int_equal(got, 2 * WIN);
	close_and_wait(w1.fd, 1);
	free(big);
}

static void test_write_after_guest_stops_receiving_fails_with_epipe(void **state)
{
	unsigned conn;
	int fd = open_accepted(7004, O_RDWR, &conn);

	(void)state;
	guest_norecv(conn);
	errno = 0;
	assert_int_equal(write(fd, "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close_and_wait(fd, 1);
}

static void test_one_fd_reads_and_writes_at_the_same_time(void **state)
{
	unsigned conn;
	char buf[16];
	struct op r = { .kind = OP_READ, .buf = buf, .len = sizeof buf };

	(void)state;
	r.fd = open_accepted(7005, O_RDWR, &conn);
	op_start(&r);
	op_assert_blocked(&r, 1);
	/* The read is parked; a write on the same fd still goes through. */
	assert_int_equal(write(r.fd, "echo", 4), 4);
	assert_int_equal(guest_drain(conn, buf + 8, 8), 4);
	guest_send(conn, "back");
	op_wait(&r);
	assert_int_equal(r.ret, 4);
	close_and_wait(r.fd, 1);
}

/* Each open of a port name is its own inode, so one connection's parked
 * writer does not hold up another's (DESIGN.md, measured facts). */
static void test_a_parked_writer_does_not_hold_up_another_connection(void **state)
{
	char *big = calloc(1, 2 * WIN);
	struct op w = { .kind = OP_WRITE, .buf = big, .len = 2 * WIN };
	unsigned c1, c2;
	int fd2;

	(void)state;
	w.fd = open_accepted(7006, O_RDWR, &c1);
	fd2 = open_accepted(7006, O_RDWR, &c2);
	op_start(&w);
	op_assert_blocked(&w, 1);
	assert_int_equal(write(fd2, "free", 4), 4);
	assert_int_equal(fake_count(FQ_RING_USED, c2), 4);
	guest_reset(c1, ECONNRESET);
	op_wait(&w);
	/* What c1 had queued was discarded by the reset. */
	errno = 0;
	assert_int_equal(close(w.fd), -1);
	assert_int_equal(errno, ECONNRESET);
	assert_int_equal(guest_drain(c2, big, 4), 4);
	close_and_wait(fd2, 1);
	free(big);
}

/* --- poll ---------------------------------------------------------------- */

static void test_poll_wakes_when_data_arrives(void **state)
{
	unsigned conn;
	struct op p = { .kind = OP_POLL, .events = POLLIN };

	(void)state;
	p.fd = open_accepted(8000, O_RDWR, &conn);
	op_start(&p);
	/* The kernel's POLL left a handle: the data must be notified. */
	fake_wait(FQ_POLLHANDLES, 0, 1);
	assert_false(atomic_load(&p.done));
	guest_send(conn, "x");
	op_wait(&p);
	assert_true(p.ret & POLLIN);
	close_and_wait(p.fd, 1);
}

static void test_poll_reports_writable_once_the_guest_drains_the_window(void **state)
{
	char *big = calloc(1, WIN), *sink = malloc(WIN);
	struct op p = { .kind = OP_POLL, .events = POLLOUT };
	struct pollfd pfd;
	unsigned conn;

	(void)state;
	p.fd = open_accepted(8001, O_RDWR | O_NONBLOCK, &conn);
	assert_int_equal(write(p.fd, big, WIN), WIN);
	pfd.fd = p.fd;
	pfd.events = POLLOUT;
	assert_int_equal(poll(&pfd, 1, 0), 0);
	op_start(&p);
	fake_wait(FQ_POLLHANDLES, 0, 1);
	assert_false(atomic_load(&p.done));
	assert_int_equal(guest_drain(conn, sink, WIN), WIN);
	op_wait(&p);
	assert_true(p.ret & POLLOUT);
	close_and_wait(p.fd, 1);
	free(big);
	free(sink);
}

static void test_poll_reports_error_and_hangup_after_a_reset(void **state)
{
	struct pollfd pfd;
	unsigned conn;

	(void)state;
	pfd.fd = open_accepted(8002, O_RDWR, &conn);
	pfd.events = POLLIN | POLLOUT;
	guest_reset(conn, ECONNRESET);
	assert_int_equal(poll(&pfd, 1, 0), 1);
	assert_true(pfd.revents & POLLERR);
	assert_true(pfd.revents & POLLHUP);
	close(pfd.fd);
}

/* --- close --------------------------------------------------------------- */

static void test_last_close_tells_the_device_once(void **state)
{
	unsigned conn;
	int fd = open_accepted(9000, O_RDWR, &conn);
	int fd2 = dup(fd);

	(void)state;
	assert_int_equal(close(fd), 0);
	/* A dup still holds the file: no close reaches the device. */
	assert_int_equal(write(fd2, "x", 1), 1);
	assert_int_equal(fake_count(FQ_HOST_CLOSES, 0), 0);
	close_failing_and_wait(fd2, ETIMEDOUT, 1);
}

/* close(2) lingers like a socket's with SO_LINGER: it returns once what
 * was written reached the guest. */
static void test_close_waits_until_the_guest_has_taken_the_data(void **state)
{
	struct op c = { .kind = OP_CLOSE };
	char buf[8];
	unsigned conn;

	(void)state;
	fake_set_linger(FAKE_GUARD_STEPS);
	c.fd = open_accepted(9002, O_RDWR, &conn);
	assert_int_equal(write(c.fd, "tail", 4), 4);
	op_start(&c);
	op_assert_blocked(&c, 1);
	assert_int_equal(guest_drain(conn, buf, 2), 2);
	op_assert_blocked(&c, 1);
	assert_int_equal(guest_drain(conn, buf + 2, 6), 2);
	op_wait(&c);
	assert_int_equal(c.ret, 0);
	assert_memory_equal(buf, "tail", 4);
	fake_wait(FQ_HOST_CLOSES, 0, 1);
}

static void test_close_of_data_the_guest_does_not_take_fails_with_etimedout(void **state)
{
	unsigned conn;
	int fd = open_accepted(9003, O_RDWR, &conn);

	(void)state;
	assert_int_equal(write(fd, "stuck", 5), 5);
	close_failing_and_wait(fd, ETIMEDOUT, 1);
}

/* Each close of a dup waits only for what was written before it. */
static void test_close_of_a_dup_waits_for_the_data_written_before_it(void **state)
{
	struct op c = { .kind = OP_CLOSE };
	char buf[8];
	unsigned conn;
	int fd;

	(void)state;
	fake_set_linger(FAKE_GUARD_STEPS);
	fd = open_accepted(9004, O_RDWR, &conn);
	c.fd = dup(fd);
	assert_int_equal(write(fd, "one", 3), 3);
	op_start(&c);
	op_assert_blocked(&c, 1);
	assert_int_equal(write(fd, "two", 3), 3);
	assert_int_equal(guest_drain(conn, buf, 3), 3);
	op_wait(&c);
	assert_int_equal(c.ret, 0);
	assert_int_equal(fake_count(FQ_HOST_CLOSES, 0), 0);
	assert_int_equal(guest_drain(conn, buf, 3), 3);
	close_and_wait(fd, 1);
}

static void test_close_interrupted_by_a_signal_fails_with_eintr(void **state)
{
	struct op c = { .kind = OP_CLOSE };
	unsigned conn;

	(void)state;
	fake_set_linger(FAKE_GUARD_STEPS);
	c.fd = open_accepted(9005, O_RDWR, &conn);
	assert_int_equal(write(c.fd, "stuck", 5), 5);
	op_start(&c);
	op_assert_blocked(&c, 1);
	pthread_kill(c.t, SIGUSR1);
	op_wait(&c);
	assert_int_equal(c.ret, -1);
	assert_int_equal(c.err, EINTR);
	/* The descriptor is closed all the same (close(2) is not retried). */
	fake_wait(FQ_HOST_CLOSES, 0, 1);
}

static void test_close_after_the_guest_stopped_receiving_fails_with_epipe(void **state)
{
	struct op c = { .kind = OP_CLOSE };
	unsigned conn;

	(void)state;
	fake_set_linger(FAKE_GUARD_STEPS);
	c.fd = open_accepted(9006, O_RDWR, &conn);
	assert_int_equal(write(c.fd, "lost", 4), 4);
	op_start(&c);
	op_assert_blocked(&c, 1);
	guest_norecv(conn);
	op_wait(&c);
	assert_int_equal(c.ret, -1);
	assert_int_equal(c.err, EPIPE);
	fake_wait(FQ_HOST_CLOSES, 0, 1);
}

/* Every lookup of a port name makes a node; the kernel forgets the old
 * ones, so they do not pile up. */
static void test_repeated_lookups_do_not_pile_up_nodes(void **state)
{
	struct stat st;
	unsigned before, i;

	(void)state;
	before = fake_count(FQ_NODES, 0);
	for (i = 0; i < 500; i++)
		assert_int_equal(stat(fake_path("vsock/1234"), &st), 0);
	fake_wait(FQ_NODES, 0, 0);
	assert_true(fake_count(FQ_NODES, 0) < before + 50);
}

/* A connection name opened again after a close is looked up once per
 * open: the kernel revalidates its cached dentry with a LOOKUP, which
 * gets the idle node back, so it need not look up a second time. */
static void test_reopening_a_closed_connection_name_takes_one_lookup_per_open(void **state)
{
	unsigned conn, before, i;

	(void)state;
	close_and_wait(open_accepted(9100, O_RDWR, &conn), 1);
	before = fake_count(FQ_LOOKUPS, 0);
	for (i = 0; i < 10; i++)
		close_and_wait(open_accepted(9100, O_RDWR, &conn), i + 2);
	assert_int_equal(fake_count(FQ_LOOKUPS, 0) - before, 10);
}

/* The node a closed connection leaves behind is reused by one open only:
 * two connections open at once are two inodes (each its own write lock). */
static void test_two_open_connections_of_one_name_are_two_inodes_after_a_reuse(void **state)
{
	struct stat first, a, b;
	unsigned c0, c1, c2;
	int fd0, fd1, fd2;

	(void)state;
	fd0 = open_accepted(9101, O_RDWR, &c0);
	assert_int_equal(fstat(fd0, &first), 0);
	close_and_wait(fd0, 1);
	fd1 = open_accepted(9101, O_RDWR, &c1);
	fd2 = open_accepted(9101, O_RDWR, &c2);
	assert_int_not_equal(c1, c2);
	assert_int_equal(fstat(fd1, &a), 0);
	assert_int_equal(fstat(fd2, &b), 0);
	assert_int_not_equal(a.st_ino, b.st_ino);
	/* Each file is its own connection. */
	assert_int_equal(write(fd1, "a", 1), 1);
	assert_int_equal(write(fd2, "bc", 2), 2);
	assert_int_equal(fake_count(FQ_RING_USED, c1), 1);
	assert_int_equal(fake_count(FQ_RING_USED, c2), 2);
	close_failing_and_wait(fd1, ETIMEDOUT, 2);
	close_failing_and_wait(fd2, ETIMEDOUT, 3);
}

static void test_status_lists_each_channel_with_its_counts(void **state)
{
	unsigned conn;
	int fd = open_accepted(9001, O_RDWR, &conn);
	char text[4096];
	int sfd;
	ssize_t n;

	(void)state;
	guest_send(conn, "12345");
	assert_int_equal(write(fd, "ab", 2), 2);
	sfd = open(fake_path("status"), O_RDONLY);
	assert_true(sfd >= 0);
	n = read(sfd, text, sizeof text - 1);
	assert_true(n > 0);
	text[n] = '\0';
	assert_non_null(strstr(text, "fake vsock device\n"));
	assert_non_null(strstr(text, "channels 1\n"));
	assert_non_null(strstr(text, "fake 9001#0 open rx 5 tx 0 to_host 5/4096 to_guest 2/4096\n"));
	close(sfd);
	close_failing_and_wait(fd, ETIMEDOUT, 1);
}

/* --- shared names (one channel for every open) ------------------------- */

/* The shared channel of shared/s0, and its number. */
static int open_shared(int flags, unsigned *conn)
{
	int fd = open(fake_path("shared/s0"), flags);

	assert_true(fd >= 0);
	/* Made at the first open; the newest connection is it. */
	*conn = fake_count(FQ_CONNS, 0) - 1;
	return fd;
}

static void test_shared_name_opens_share_one_inode_of_size_zero_and_one_channel(void **state)
{
	struct stat st1, st2;
	unsigned c1, c2;
	int fd1, fd2;

	(void)state;
	fd1 = open_shared(O_RDWR, &c1);
	fd2 = open_shared(O_RDWR, &c2);
	assert_int_equal(c1, c2);
	assert_int_equal(fake_count(FQ_CONNS, 0), 1);
	assert_int_equal(fstat(fd1, &st1), 0);
	assert_int_equal(fstat(fd2, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_int_equal(st1.st_size, 0);
	assert_true(S_ISREG(st1.st_mode));
	/* What one open writes, the guest reads once. */
	assert_int_equal(write(fd1, "ab", 2), 2);
	assert_int_equal(write(fd2, "cd", 2), 2);
	assert_int_equal(fake_count(FQ_RING_USED, c1), 4);
	/* Each close gives its reference back through the release op; the
	 * device is never told to close the shared channel. */
	assert_int_equal(close(fd1), 0);
	fake_wait(FQ_RELEASES, 0, 1);
	assert_int_equal(close(fd2), 0);
	fake_wait(FQ_RELEASES, 0, 2);
	assert_int_equal(fake_count(FQ_HOST_CLOSES, 0), 0);
}

static void test_shared_name_one_edge_wakes_the_poll_of_every_open(void **state)
{
	struct op p1 = { .kind = OP_POLL, .events = POLLIN };
	struct op p2 = { .kind = OP_POLL, .events = POLLIN };
	unsigned conn;

	(void)state;
	p1.fd = open_shared(O_RDWR, &conn);
	p2.fd = open_shared(O_RDWR, &conn);
	op_start(&p1);
	op_start(&p2);
	fake_wait(FQ_POLLHANDLES, 0, 2);
	assert_false(atomic_load(&p1.done));
	assert_false(atomic_load(&p2.done));
	guest_send(conn, "x");
	op_wait(&p1);
	op_wait(&p2);
	assert_true(p1.ret & POLLIN);
	assert_true(p2.ret & POLLIN);
	close(p1.fd);
	close(p2.fd);
}

static void test_shared_name_each_byte_goes_to_one_of_two_parked_readers(void **state)
{
	char b1[4] = { 0 }, b2[4] = { 0 };
	struct op r1 = { .kind = OP_READ, .buf = b1, .len = 1 };
	struct op r2 = { .kind = OP_READ, .buf = b2, .len = 1 };
	struct op *first, *second;
	unsigned conn;

	(void)state;
	r1.fd = open_shared(O_RDWR, &conn);
	r2.fd = open_shared(O_RDWR, &conn);
	op_start(&r1);
	op_start(&r2);
	op_assert_blocked(&r1, 2);
	assert_false(atomic_load(&r2.done));
	guest_send(conn, "x");
	/* One edge wakes both opens; the byte goes to one reader. */
	while (!atomic_load(&r1.done) && !atomic_load(&r2.done))
		usleep(1000);
	first = atomic_load(&r1.done) ? &r1 : &r2;
	second = first == &r1 ? &r2 : &r1;
	op_wait(first);
	assert_int_equal(first->ret, 1);
	assert_int_equal(first->buf[0], 'x');
	assert_int_equal(fake_count(FQ_PARKED, 0), 1);
	assert_false(atomic_load(&second->done));
	guest_send(conn, "y");
	op_wait(second);
	assert_int_equal(second->ret, 1);
	assert_int_equal(second->buf[0], 'y');
	close(r1.fd);
	close(r2.fd);
}

/* --- CHANDIR_ATOMIC: writes up to 4 KiB whole ---------------------------- */

static void test_atomic_write_that_does_not_fit_parks_whole_never_split(void **state)
{
	static char big[4096], out[WIN];
	struct op w = { .kind = OP_WRITE, .buf = big, .len = sizeof big };
	unsigned conn;
	int fd, nfd;

	(void)state;
	memset(big, 'w', sizeof big);
	fd = open_shared(O_RDWR, &conn);
	nfd = open_shared(O_RDWR | O_NONBLOCK, &conn);
	/* 3 KiB in the 4 KiB window: 1 KiB free. */
	assert_int_equal(write(fd, big, 3072), 3072);
	assert_int_equal(fake_count(FQ_RING_USED, conn), 3072);
	/* Non-blocking: EAGAIN, not the 1 KiB that fits. */
	errno = 0;
	assert_int_equal(write(nfd, big, sizeof big), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(fake_count(FQ_RING_USED, conn), 3072);
	/* Blocking: parked whole; nothing of it is taken. */
	w.fd = fd;
	op_start(&w);
	op_assert_blocked(&w, 1);
	assert_int_equal(fake_count(FQ_PARKED_WRITE_SIZE, 0), sizeof big);
	assert_int_equal(fake_count(FQ_RING_USED, conn), 3072);
	/* The guest takes 2 KiB: 3 KiB free, still not enough. */
	assert_int_equal(guest_drain(conn, out, 2048), 2048);
	assert_int_equal(fake_count(FQ_RING_USED, conn), 1024);
	assert_false(atomic_load(&w.done));
	/* The rest: the whole write goes in at once. */
	assert_int_equal(guest_drain(conn, out, 1024), 1024);
	op_wait(&w);
	assert_int_equal(w.ret, sizeof big);
	assert_int_equal(fake_count(FQ_RING_USED, conn), sizeof big);
	assert_int_equal(guest_drain(conn, out, sizeof out), sizeof big);
	assert_memory_equal(out, big, sizeof big);
	close(nfd);
	close(fd);
}

static void test_atomic_write_larger_than_4k_is_taken_as_it_fits(void **state)
{
	static char big[6000];
	unsigned conn;
	int fd;

	(void)state;
	memset(big, 'z', sizeof big);
	fd = open_shared(O_RDWR | O_NONBLOCK, &conn);
	assert_int_equal(write(fd, big, 1000), 1000);
	/* Beyond CHANDIR_ATOMIC_MAX a write is a stream write again. */
	assert_int_equal(write(fd, big, sizeof big), WIN - 1000);
	close(fd);
}

/* --- CHANDIR_NO_LINGER --------------------------------------------------- */

static void test_close_of_a_no_linger_file_returns_at_once_and_the_data_stays_queued(void **state)
{
	unsigned conn;
	int fd;

	(void)state;
	/* A lingering close would wait 20 s and then fail ETIMEDOUT. */
	fake_set_linger(FAKE_GUARD_STEPS);
	fd = open_shared(O_RDWR, &conn);
	assert_int_equal(write(fd, "abc", 3), 3);
	assert_int_equal(close(fd), 0);
	fake_wait(FQ_RELEASES, 0, 1);
	assert_int_equal(fake_count(FQ_RING_USED, conn), 3);
	assert_int_equal(fake_count(FQ_HOST_CLOSES, 0), 0);
}

/* --- the tree: listed, unlisted and parent-only directories ------------- */

/* Whether directory rel lists name. */
static bool dir_lists(const char *rel, const char *name)
{
	DIR *d = opendir(fake_path(rel));
	struct dirent *e;
	bool found = false;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		found = found || !strcmp(e->d_name, name);
	closedir(d);
	return found;
}

static unsigned dir_entries(const char *rel)
{
	DIR *d = opendir(fake_path(rel));
	unsigned n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void test_root_lists_status_and_each_top_directory(void **state)
{
	(void)state;
	assert_true(dir_lists("", "status"));
	assert_true(dir_lists("", "vsock"));
	assert_true(dir_lists("", "shared"));
	assert_true(dir_lists("", "parentless"));
	assert_int_equal(dir_entries(""), 6);	/* ., .., and those four */
	/* vsock lists no ports, only its subdirectory. */
	assert_true(dir_lists("vsock", "listen"));
	assert_int_equal(dir_entries("vsock"), 3);
	/* shared lists its names. */
	assert_true(dir_lists("shared", "s0"));
	assert_true(dir_lists("shared", "s1"));
	assert_int_equal(dir_entries("shared"), 4);
}

static void test_a_parent_nobody_registered_is_an_empty_directory_with_its_child(void **state)
{
	struct stat st;

	(void)state;
	assert_int_equal(stat(fake_path("parentless"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_nlink, 3);
	assert_true(dir_lists("parentless", "svc"));
	assert_int_equal(dir_entries("parentless"), 3);
	errno = 0;
	assert_int_equal(stat(fake_path("parentless/other"), &st), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(open(fake_path("parentless"), O_RDWR), -1);
	assert_int_equal(errno, EISDIR);
}

static void test_an_unlisted_directory_lists_nothing_but_its_names_open(void **state)
{
	struct stat st;
	unsigned conn;
	int fd;

	(void)state;
	conn = guest_incoming_to(FAKE_SVC, "echo", NULL);
	assert_int_equal(dir_entries("parentless/svc"), 2);	/* . and .. */
	assert_int_equal(stat(fake_path("parentless/svc/echo"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 0x7ffff000);
	/* Names the directory refuses do not exist. */
	errno = 0;
	assert_int_equal(stat(fake_path("parentless/svc/Bad!"), &st), -1);
	assert_int_equal(errno, ENOENT);
	fd = open(fake_path("parentless/svc/echo"), O_RDWR | O_NONBLOCK);
	assert_true(fd >= 0);
	guest_send(conn, "hi");
	close(fd);
}

static void test_vsock_listen_lists_what_its_directory_lists(void **state)
{
	(void)state;
	(void)guest_incoming(7007);
	assert_true(dir_lists("vsock/listen", "7007"));
}

/* --- accept: waits and chandir_ready ----------------------------------- */

static void test_accept_waits_until_its_own_name_is_ready(void **state)
{
	struct op o = { .kind = OP_OPEN, .flags = O_RDWR };
	unsigned other;
	int fd;

	(void)state;
	o.path = strdup(fake_path("parentless/svc/a"));
	op_start(&o);
	op_assert_blocked(&o, 1);
	assert_int_equal(fake_count(FQ_WAITS, 0), 1);
	/* Another name's connection does not answer it... */
	other = guest_incoming_to(FAKE_SVC, "b", NULL);
	assert_int_equal(fake_count(FQ_PARKED, 0), 1);
	assert_false(atomic_load(&o.done));
	fd = open(fake_path("parentless/svc/b"), O_RDONLY | O_NONBLOCK);
	assert_true(fd >= 0);
	guest_send(other, "b");
	close(fd);
	/* ...its own does. */
	(void)guest_incoming_to(FAKE_SVC, "a", NULL);
	op_wait(&o);
	assert_true(o.ret >= 0);
	assert_int_equal(fake_count(FQ_WAITS, 0), 0);
	close((int)o.ret);
	free((char *)o.path);
}

static void test_an_accept_given_up_ends_its_wait(void **state)
{
	struct op o = { .kind = OP_OPEN, .flags = O_RDWR };

	(void)state;
	o.path = strdup(fake_path("parentless/svc/c"));
	op_start(&o);
	op_assert_blocked(&o, 1);
	assert_int_equal(fake_count(FQ_WAITS, 0), 1);
	pthread_kill(o.t, SIGUSR1);
	op_wait(&o);
	assert_int_equal(o.err, EINTR);
	fake_wait_zero(FQ_WAITS);
	free((char *)o.path);
}

/* --- status and the args attribute -------------------------------------- */

static void test_status_has_each_directory_in_registration_order_then_the_transport(void **state)
{
	static const char *const order[] = {
		"chanfs ", "fake vsock device\n", "fakedir vsock\n",
		"fakedir vsock/listen\n", "fakedir shared\n",
		"fakedir parentless/svc\n", "fake transport\n", "channels 0\n",
	};
	char text[4096];
	const char *at = text;
	ssize_t n;
	size_t i;
	int fd;

	(void)state;
	fd = open(fake_path("status"), O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, text, sizeof text - 1);
	assert_true(n > 0);
	text[n] = 0;
	close(fd);
	for (i = 0; i < sizeof order / sizeof order[0]; i++) {
		const char *p = strstr(at, order[i]);

		if (!p)
			fail_msg("status: \"%s\" missing or out of order in:\n%s",
			         order[i], text);
		at = p + strlen(order[i]);
	}
}

static void test_args_xattr_holds_what_the_guest_sent_with_the_connection(void **state)
{
	char buf[64];
	unsigned conn;
	int fd, plain;

	(void)state;
	(void)guest_incoming_to(FAKE_SVC, "cfg", "k=v,1");
	fd = open(fake_path("parentless/svc/cfg"), O_RDWR | O_NONBLOCK);
	assert_true(fd >= 0);
	assert_int_equal(fgetxattr(fd, "user.chanfs.args", NULL, 0), 5);
	memset(buf, 0, sizeof buf);
	assert_int_equal(fgetxattr(fd, "user.chanfs.args", buf, sizeof buf), 5);
	assert_string_equal(buf, "k=v,1");
	errno = 0;
	assert_int_equal(fgetxattr(fd, "user.chanfs.args", buf, 2), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(fgetxattr(fd, "user.other", buf, sizeof buf), -1);
	assert_int_equal(errno, ENODATA);
	assert_int_equal(flistxattr(fd, buf, sizeof buf),
	                 sizeof "user.chanfs.args");
	assert_string_equal(buf, "user.chanfs.args");
	/* A channel without args has none. */
	plain = open_accepted(7010, O_RDWR | O_NONBLOCK, &conn);
	errno = 0;
	assert_int_equal(fgetxattr(plain, "user.chanfs.args", buf, sizeof buf), -1);
	assert_int_equal(errno, ENODATA);
	assert_int_equal(flistxattr(plain, buf, sizeof buf), 0);
	close(plain);
	close(fd);
}

#define T(name) cmocka_unit_test_teardown(name, fake_test_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_connect_waits_for_the_guest_answer_even_with_o_nonblock),
		T(test_connect_refused_by_the_guest_fails_with_econnrefused),
		T(test_connect_timed_out_fails_with_etimedout),
		T(test_connect_interrupted_by_a_signal_fails_with_eintr_and_closes),
		T(test_connect_without_a_driver_fails_at_once_with_enotconn),
		T(test_accept_with_o_nonblock_and_nobody_waiting_fails_with_eagain),
		T(test_accept_waits_for_the_guest_to_connect),
		T(test_accept_interrupted_by_a_signal_fails_with_eintr),
		T(test_accept_of_a_connection_the_guest_already_reset_reads_its_data_then_econnreset),
		T(test_read_returns_what_is_there_at_once),
		T(test_read_with_nothing_there_and_o_nonblock_fails_with_eagain),
		T(test_fcntl_o_nonblock_applies_to_later_reads),
		T(test_blocked_read_is_answered_when_data_arrives),
		T(test_read_after_guest_eof_returns_the_data_then_zero),
		T(test_blocked_read_gets_zero_at_guest_eof),
		T(test_read_after_reset_returns_the_data_then_econnreset),
		T(test_blocked_read_and_write_end_with_econnreset_when_the_device_goes),
		T(test_blocked_read_interrupted_by_a_signal_fails_with_eintr),
		T(test_process_blocked_in_read_dies_at_once_on_sigint),
		T(test_write_that_fits_returns_the_full_count),
		T(test_blocking_write_larger_than_the_window_waits_until_all_is_taken),
		T(test_a_one_mib_write_reaches_the_daemon_as_one_request),
		T(test_nonblocking_write_returns_the_partial_count_then_eagain),
		T(test_interrupted_write_returns_the_count_already_taken),
		T(test_a_signal_to_a_writer_queued_behind_a_parked_writer_fails_it_with_eintr),
		T(test_write_after_guest_stops_receiving_fails_with_epipe),
		T(test_one_fd_reads_and_writes_at_the_same_time),
		T(test_a_parked_writer_does_not_hold_up_another_connection),
		T(test_poll_wakes_when_data_arrives),
		T(test_poll_reports_writable_once_the_guest_drains_the_window),
		T(test_poll_reports_error_and_hangup_after_a_reset),
		T(test_last_close_tells_the_device_once),
		T(test_close_waits_until_the_guest_has_taken_the_data),
		T(test_close_of_data_the_guest_does_not_take_fails_with_etimedout),
		T(test_close_of_a_dup_waits_for_the_data_written_before_it),
		T(test_close_interrupted_by_a_signal_fails_with_eintr),
		T(test_close_after_the_guest_stopped_receiving_fails_with_epipe),
		T(test_repeated_lookups_do_not_pile_up_nodes),
		T(test_reopening_a_closed_connection_name_takes_one_lookup_per_open),
		T(test_two_open_connections_of_one_name_are_two_inodes_after_a_reuse),
		T(test_status_lists_each_channel_with_its_counts),
		T(test_shared_name_opens_share_one_inode_of_size_zero_and_one_channel),
		T(test_shared_name_one_edge_wakes_the_poll_of_every_open),
		T(test_shared_name_each_byte_goes_to_one_of_two_parked_readers),
		T(test_atomic_write_that_does_not_fit_parks_whole_never_split),
		T(test_atomic_write_larger_than_4k_is_taken_as_it_fits),
		T(test_close_of_a_no_linger_file_returns_at_once_and_the_data_stays_queued),
		T(test_root_lists_status_and_each_top_directory),
		T(test_a_parent_nobody_registered_is_an_empty_directory_with_its_child),
		T(test_an_unlisted_directory_lists_nothing_but_its_names_open),
		T(test_vsock_listen_lists_what_its_directory_lists),
		T(test_accept_waits_until_its_own_name_is_ready),
		T(test_an_accept_given_up_ends_its_wait),
		T(test_status_has_each_directory_in_registration_order_then_the_transport),
		T(test_args_xattr_holds_what_the_guest_sent_with_the_connection),
	};

	return cmocka_run_group_tests(tests, fake_group_setup, fake_group_teardown);
}
