/*
 * A fake provider for testing fs/ without a VMM (test_fs_stream.c).
 *
 * The real fs/ code is mounted (as root, on a fresh temporary directory)
 * and served by a child process that dies with the test process.  Its
 * directories come from the fake provider of tests/fakedir.h, registered
 * through chandir.h as a device registers its own: vsock (connect),
 * vsock/listen (accept), shared (one channel per name, atomic writes, no
 * linger) and parentless/svc (accept, unlisted).  Every
 * channel is created with a FAKE_WIN window, and the test plays the guest:
 * each guest_* call runs on the daemon's loop and returns when done, so
 * the deferred work it caused (fs answering parked requests) follows in
 * that loop turn.  Connections are numbered 0, 1, ... in creation order within
 * a test (fake_test_teardown starts over).
 *
 * File calls that block run on threads of their own (struct op).  SIGUSR1
 * is handled without SA_RESTART, so pthread_kill(op.t, SIGUSR1) interrupts
 * a blocked call as a signal does a process.
 *
 * Waits wait for a condition and fail the test only after a bound that
 * turns a hang into a failure.
 */
#ifndef CHANFS_TEST_FS_FAKE_H
#define CHANFS_TEST_FS_FAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FAKE_WIN 4096
/* How long a close waits for its data to reach the "guest" (ms). */
#define FAKE_LINGER_MS 200
/* The bound of every wait, in 1 ms steps (20 s): only a hang reaches it. */
#define FAKE_GUARD_STEPS 20000

/* cmocka group set-up and tear-down (start the daemon and mount; stop it,
 * which unmounts, and fail if it did not exit 0), and the per-test
 * tear-down: drop the device's references and wait until the kernel's
 * last RELEASE has let every channel go. */
int fake_group_setup(void **state);
int fake_group_teardown(void **state);
int fake_test_teardown(void **state);

/* MOUNTPOINT/rel (a static buffer: use it before the next call). */
const char *fake_path(const char *rel);
/* vsock opens say -ENOTCONN (no driver) until the test ends. */
void fake_no_driver(void);
/* How long a close waits for delivery from now on (fake_test_teardown
 * restores FAKE_LINGER_MS). */
void fake_set_linger(unsigned ms);

/* --- the guest side of connection conn ---------------------------------- */
void guest_opened(unsigned conn);                 /* RESPONSE */
void guest_send(unsigned conn, const char *s);    /* all of s must fit */
void guest_eof(unsigned conn);                    /* SHUTDOWN(SEND) */
void guest_norecv(unsigned conn);                 /* SHUTDOWN(RCV) */
void guest_reset(unsigned conn, int err);         /* chan_reset(err) */
/* Take up to len bytes the host wrote; returns the count. */
size_t guest_drain(unsigned conn, char *out, size_t len);
/* A guest connection to host port (vsock/listen/<port>), established and
 * queued for accept; returns its number. */
unsigned guest_incoming(uint32_t port);
enum fake_dir { FAKE_LISTEN, FAKE_SVC };
/* The same for name in vsock/listen or parentless/svc, carrying args
 * (chan->args; NULL: none). */
unsigned guest_incoming_to(enum fake_dir d, const char *name,
                           const char *args);

/* --- what the daemon holds ------------------------------------------------ */
enum fake_query {
	FQ_PARKED,             /* parked opens, reads, writes and flushes
	                          (closes), all files */
	FQ_CONNS,              /* connections made this test */
	FQ_HOST_CLOSES,        /* host_close calls this test */
	FQ_RING_USED,          /* bytes in conn's to_guest ring */
	FQ_POLLHANDLES,        /* files holding a poll handle */
	FQ_PARKED_WRITE_SIZE,  /* size of the parked write, as the kernel sent it */
	FQ_CHANS,              /* live channels */
	FQ_NODES,              /* dynamic (per-connection) nodes */
	FQ_WAITS,              /* accept waits started and not ended */
	FQ_RELEASES,           /* shared's release op calls this test */
	FQ_LOOKUPS,            /* channel-name LOOKUPs this test */
};
unsigned fake_count(enum fake_query q, unsigned conn);
/* Wait until fake_count(q, conn) >= want, or until it is 0. */
void fake_wait(enum fake_query q, unsigned conn, unsigned want);
void fake_wait_zero(enum fake_query q);

/* --- file calls ----------------------------------------------------------- */

/* Open vsock/listen/<port> (mode 0600 if flags create) on a connection the
 * guest has just made; *conn gets its number. */
int open_accepted(uint32_t port, int flags, unsigned *conn);
/* Close fd and wait until the device has seen closes host_close calls. */
void close_and_wait(int fd, unsigned closes);
/* The same for a close that must fail with err (data not delivered). */
void close_failing_and_wait(int fd, int err, unsigned closes);

enum op_kind { OP_OPEN, OP_READ, OP_WRITE, OP_POLL, OP_CLOSE };

/* One file call on its own thread: fill in kind and its arguments. */
struct op {
	enum op_kind kind;
	const char *path;      /* OP_OPEN */
	int fd, flags;         /* flags: OP_OPEN */
	char *buf;             /* OP_READ, OP_WRITE */
	size_t len;
	short events;          /* OP_POLL (revents come back in ret) */
	ssize_t ret;
	int err;               /* errno when ret < 0 */
	atomic_bool done;
	pthread_t t;
};

void op_start(struct op *o);
/* Wait for the call to return (and join its thread). */
void op_wait(struct op *o);
/* Wait until at least parked requests are parked in the daemon, then
 * check o has not returned. */
void op_assert_blocked(struct op *o, unsigned parked);

#endif
