/*
 * The harness of test_fs_stream.c (see test_fs_fake.h).
 *
 * The daemon side runs in a child process: the fake device, the real fs/
 * code and its loop.  A test process that served its own mount would
 * deadlock on exit if a test left a call blocked (closing the file sends
 * FLUSH to a daemon that is itself dying); with the daemon in a child that
 * dies with its parent (PR_SET_PDEATHSIG) and auto_unmount, a failed or
 * killed test leaves neither a stuck process nor a dead mount.
 *
 * The test process asks the child to run one action at a time: the
 * action's number goes down a pipe, its arguments and results sit in a
 * shared page (struct shared), and a process-shared semaphore says done.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "chanfs/chan.h"
#include "chanfs/fs.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "fakedir.h"
#include "fs_private.h"
#include "test_fs_fake.h"

/* Bytes one action can carry each way (guest_send, guest_drain). */
#define SHARED_DATA (64u << 10)

/* Arguments and results of one action. */
struct act {
	unsigned conn;
	size_t len;
	int err;
	enum fake_dir dir;          /* FA_INCOMING */
	char name[FAKEDIR_NAME_MAX + 1];
	char args[64];              /* FA_INCOMING; "" for none */
	size_t got;
	unsigned count;
};

struct shared {
	sem_t done;
	int failed;                 /* the child could not mount */
	struct act act;
	char data[SHARED_DATA];
};

/* The child's state: the fake provider and the file system. */
struct fake {
	struct loop *loop;
	struct chan_set chans;
	struct chandirs dirs;
	struct fakedir dir;
	struct fs *fs;
	struct event *call_ev;
};

static struct fake fk;              /* child */
static struct shared *sh;           /* both */
static int call_pipe[2];            /* both */
static pid_t child;                 /* parent */
static char dir[64], mnt[96];       /* both */

/* --- actions (child, loop thread) --------------------------------------- */

static void do_nothing(struct act *a)
{
	(void)a;
}

static void do_opened(struct act *a)
{
	chan_opened(fk.dir.conns[a->conn]);
}

static void do_send(struct act *a)
{
	struct iovec iov = { .iov_base = sh->data, .iov_len = a->len };

	a->got = chan_guest_send(fk.dir.conns[a->conn], &iov, 1);
}

static void do_eof(struct act *a)
{
	chan_guest_eof(fk.dir.conns[a->conn]);
}

static void do_norecv(struct act *a)
{
	chan_guest_norecv(fk.dir.conns[a->conn]);
}

static void do_reset(struct act *a)
{
	chan_reset(fk.dir.conns[a->conn], a->err);
}

/* The guest takes up to len bytes of what the host wrote. */
static void do_drain(struct act *a)
{
	struct chan *c = fk.dir.conns[a->conn];
	struct iovec iov[2];
	int n, i;

	a->got = 0;
	n = ring_peek(&c->to_guest, iov, a->len);
	for (i = 0; i < n; i++) {
		memcpy(sh->data + a->got, iov[i].iov_base, iov[i].iov_len);
		a->got += iov[i].iov_len;
	}
	chan_guest_took(c, a->got);
}

/* A guest connection to a->name in a->dir is queued for accept. */
static void do_incoming(struct act *a)
{
	struct chandir *d = a->dir == FAKE_SVC ? fk.dir.svc : fk.dir.listen;
	int conn = fakedir_incoming(&fk.dir, d, a->name,
	                            a->args[0] ? a->args : NULL);

	if (conn < 0)
		abort();	/* the parent's calls then fail */
	a->conn = (unsigned)conn;
}

static void do_no_driver(struct act *a)
{
	(void)a;
	fk.dir.no_driver = true;
}

static void do_linger(struct act *a)
{
	fk.fs->linger_ms = (unsigned)a->len;
}

static void do_count_parked(struct act *a)
{
	struct fs_file *f;
	struct fs_req *r;

	a->count = 0;
	TAILQ_FOREACH(f, &fk.fs->files, link) {
		if (f->opening)
			a->count++;
		TAILQ_FOREACH(r, &f->reads, link)
			a->count++;
		TAILQ_FOREACH(r, &f->writes, link)
			a->count++;
		TAILQ_FOREACH(r, &f->flushes, link)
			a->count++;
	}
}

static void do_count_conns(struct act *a)
{
	a->count = fk.dir.nconns;
}

static void do_host_closes(struct act *a)
{
	a->count = fk.dir.host_closes;
}

static void do_count_waits(struct act *a)
{
	a->count = (unsigned)fk.dir.waits;
}

static void do_count_releases(struct act *a)
{
	a->count = fk.dir.releases;
}

static void do_count_lookups(struct act *a)
{
	a->count = fk.dir.lookups;
}

static void do_ring_used(struct act *a)
{
	a->count = ring_used(&fk.dir.conns[a->conn]->to_guest);
}

static void do_count_pollhandles(struct act *a)
{
	struct fs_file *f;

	a->count = 0;
	TAILQ_FOREACH(f, &fk.fs->files, link)
		if (f->ph)
			a->count++;
}

/* The size of the parked write, as the kernel sent it. */
static void do_parked_write_size(struct act *a)
{
	struct fs_file *f;
	struct fs_req *r;

	a->count = 0;
	TAILQ_FOREACH(f, &fk.fs->files, link)
		TAILQ_FOREACH(r, &f->writes, link)
			a->count = (unsigned)(r->taken + r->len - r->off);
}

static void do_count_chans(struct act *a)
{
	a->count = fk.chans.count;
}

static void do_count_nodes(struct act *a)
{
	a->count = (unsigned)fk.fs->nodes.count;
}

/* Drop the device's references: the test's connections are over. */
static void do_forget_conns(struct act *a)
{
	(void)a;
	fakedir_forget(&fk.dir);
}

static void do_stop(struct act *a)
{
	(void)a;
	loop_stop(fk.loop);
}

enum fake_action {
	FA_NOTHING, FA_OPENED, FA_SEND, FA_EOF, FA_NORECV, FA_RESET, FA_DRAIN,
	FA_INCOMING, FA_NO_DRIVER, FA_LINGER, FA_FORGET_CONNS, FA_STOP,
	FA_QUERY,	/* + enum fake_query */
};

static void (*const fake_actions[])(struct act *) = {
	[FA_NOTHING] = do_nothing,
	[FA_OPENED] = do_opened,
	[FA_SEND] = do_send,
	[FA_EOF] = do_eof,
	[FA_NORECV] = do_norecv,
	[FA_RESET] = do_reset,
	[FA_DRAIN] = do_drain,
	[FA_INCOMING] = do_incoming,
	[FA_NO_DRIVER] = do_no_driver,
	[FA_LINGER] = do_linger,
	[FA_FORGET_CONNS] = do_forget_conns,
	[FA_STOP] = do_stop,
	[FA_QUERY + FQ_PARKED] = do_count_parked,
	[FA_QUERY + FQ_CONNS] = do_count_conns,
	[FA_QUERY + FQ_HOST_CLOSES] = do_host_closes,
	[FA_QUERY + FQ_RING_USED] = do_ring_used,
	[FA_QUERY + FQ_POLLHANDLES] = do_count_pollhandles,
	[FA_QUERY + FQ_PARKED_WRITE_SIZE] = do_parked_write_size,
	[FA_QUERY + FQ_CHANS] = do_count_chans,
	[FA_QUERY + FQ_NODES] = do_count_nodes,
	[FA_QUERY + FQ_WAITS] = do_count_waits,
	[FA_QUERY + FQ_RELEASES] = do_count_releases,
	[FA_QUERY + FQ_LOOKUPS] = do_count_lookups,
};

static void on_call(evutil_socket_t fd, short what, void *arg)
{
	unsigned action;

	(void)what;
	(void)arg;
	if (read(fd, &action, sizeof action) != sizeof action ||
	    action >= sizeof fake_actions / sizeof fake_actions[0])
		abort();
	fake_actions[action](&sh->act);
	sem_post(&sh->done);
}

/* fs_config's status lines: after every directory's. */
static void fake_transport_status(void *arg, FILE *out)
{
	(void)arg;
	fputs("fake transport\n", out);
}

/* The daemon: mount, serve until FA_STOP, unmount.  Exits 0 when all went
 * well (and, in a sanitizer build, nothing leaked). */
static void child_main(pid_t parent)
{
	struct fs_config cfg = { .close_timeout_ms = FAKE_LINGER_MS,
	                         .status = fake_transport_status };

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	log_init("test-fs-stream", getenv("CHANFS_DEBUG") != NULL);
	fk.loop = loop_new();
	chan_set_init(&fk.chans);
	chandirs_init(&fk.dirs);
	if (fakedir_register(&fk.dir, &fk.dirs, &fk.chans, FAKE_WIN, 0) < 0)
		_exit(1);
	cfg.mountpoint = mnt;
	/* If this process is killed, no dead mount stays behind. */
	cfg.fuse_opts = "auto_unmount";
	fk.fs = fs_new(fk.loop, &fk.chans, &fk.dirs, &cfg);
	if (fk.fs) {
		fk.call_ev = event_new(loop_base(fk.loop), call_pipe[0],
		                       EV_READ | EV_PERSIST, on_call, NULL);
		event_add(fk.call_ev, NULL);
		loop_run(fk.loop);
		event_free(fk.call_ev);
		fs_free(fk.fs);
		do_forget_conns(NULL);
	} else {
		sh->failed = 1;
		sem_post(&sh->done);
	}
	loop_free(fk.loop);
	close(call_pipe[0]);
	exit(fk.fs ? 0 : 1);
}

/* --- the parent's side ---------------------------------------------------- */

/* Run action in the child and wait for it (a child that died fails the
 * test instead of hanging it). */
static void run(enum fake_action action, unsigned query, struct act *a)
{
	unsigned n = action + query;
	struct timespec ts;

	sh->act = *a;
	assert_int_equal(write(call_pipe[1], &n, sizeof n), sizeof n);
	for (;;) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (sem_timedwait(&sh->done, &ts) == 0)
			break;
		if (waitpid(child, NULL, WNOHANG) == child) {
			child = 0;
			fail_msg("the daemon process died");
		}
	}
	*a = sh->act;
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

int fake_group_setup(void **state)
{
	struct sigaction sa;
	struct act a = { 0 };

	(void)state;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigusr1;	/* no SA_RESTART: calls see EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	snprintf(dir, sizeof dir, "/tmp/chanfs-fs-stream.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(mnt, sizeof mnt, "%s/mnt", dir);
	if (mkdir(mnt, 0700) < 0)
		return -1;
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
	          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || sem_init(&sh->done, 1, 0) < 0)
		return -1;
	if (pipe2(call_pipe, O_CLOEXEC) < 0)
		return -1;
	fflush(NULL);
	child = fork();
	if (child < 0)
		return -1;
	if (child == 0)
		child_main(getppid());
	close(call_pipe[0]);
	/* Answered once the child's loop runs, that is once it is mounted. */
	run(FA_NOTHING, 0, &a);
	return sh->failed ? -1 : 0;
}

int fake_group_teardown(void **state)
{
	struct act a = { 0 };
	int status = -1;

	(void)state;
	if (child > 0) {
		run(FA_STOP, 0, &a);
		waitpid(child, &status, 0);
	}
	close(call_pipe[1]);
	sem_destroy(&sh->done);
	munmap(sh, sizeof *sh);
	rmdir(mnt);
	rmdir(dir);
	/* The daemon unmounted, and (sanitizer builds) leaked nothing. */
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* After each test: every file is closed, the device lets go, and once
 * the kernel's last RELEASE is in no channel is left. */
int fake_test_teardown(void **state)
{
	struct act a = { 0 };

	(void)state;
	run(FA_FORGET_CONNS, 0, &a);
	fake_wait_zero(FQ_CHANS);
	fake_set_linger(FAKE_LINGER_MS);
	return 0;
}

const char *fake_path(const char *rel)
{
	static char buf[256];

	snprintf(buf, sizeof buf, "%s/%s", mnt, rel);
	return buf;
}

void fake_no_driver(void)
{
	struct act a = { 0 };

	run(FA_NO_DRIVER, 0, &a);
}

void fake_set_linger(unsigned ms)
{
	struct act a = { .len = ms };

	run(FA_LINGER, 0, &a);
}

void guest_opened(unsigned conn)
{
	struct act a = { .conn = conn };

	run(FA_OPENED, 0, &a);
}

void guest_send(unsigned conn, const char *s)
{
	struct act a = { .conn = conn, .len = strlen(s) };

	assert_true(a.len <= SHARED_DATA);
	memcpy(sh->data, s, a.len);
	run(FA_SEND, 0, &a);
	assert_int_equal(a.got, strlen(s));
}

void guest_eof(unsigned conn)
{
	struct act a = { .conn = conn };

	run(FA_EOF, 0, &a);
}

void guest_norecv(unsigned conn)
{
	struct act a = { .conn = conn };

	run(FA_NORECV, 0, &a);
}

void guest_reset(unsigned conn, int err)
{
	struct act a = { .conn = conn, .err = err };

	run(FA_RESET, 0, &a);
}

size_t guest_drain(unsigned conn, char *out, size_t len)
{
	struct act a = { .conn = conn, .len = len < SHARED_DATA ? len : SHARED_DATA };

	run(FA_DRAIN, 0, &a);
	memcpy(out, sh->data, a.got);
	return a.got;
}

unsigned guest_incoming(uint32_t port)
{
	char name[16];

	snprintf(name, sizeof name, "%u", port);
	return guest_incoming_to(FAKE_LISTEN, name, NULL);
}

unsigned guest_incoming_to(enum fake_dir d, const char *name,
                           const char *args)
{
	struct act a = { .dir = d };

	snprintf(a.name, sizeof a.name, "%s", name);
	snprintf(a.args, sizeof a.args, "%s", args ? args : "");
	run(FA_INCOMING, 0, &a);
	return a.conn;
}

unsigned fake_count(enum fake_query q, unsigned conn)
{
	struct act a = { .conn = conn };

	run(FA_QUERY, q, &a);
	return a.count;
}

void fake_wait(enum fake_query q, unsigned conn, unsigned want)
{
	int i;

	for (i = 0; i < FAKE_GUARD_STEPS; i++) {
		if (fake_count(q, conn) >= want)
			return;
		usleep(1000);
	}
	fail_msg("waited too long for a condition (%u wanted)", want);
}

void fake_wait_zero(enum fake_query q)
{
	int i;

	for (i = 0; i < FAKE_GUARD_STEPS; i++) {
		if (fake_count(q, 0) == 0)
			return;
		usleep(1000);
	}
	fail_msg("waited too long for a count to drop to zero");
}

/* --- blocking file calls on their own thread --------------------------- */

static void *op_thread(void *p)
{
	struct op *o = p;
	struct pollfd pfd;

	switch (o->kind) {
	case OP_OPEN:
		o->ret = open(o->path, o->flags);
		break;
	case OP_READ:
		o->ret = read(o->fd, o->buf, o->len);
		break;
	case OP_WRITE:
		o->ret = write(o->fd, o->buf, o->len);
		break;
	case OP_CLOSE:
		o->ret = close(o->fd);
		break;
	case OP_POLL:
		pfd.fd = o->fd;
		pfd.events = o->events;
		o->ret = poll(&pfd, 1, -1);
		if (o->ret > 0)
			o->ret = pfd.revents;
		break;
	}
	o->err = o->ret < 0 ? errno : 0;
	atomic_store(&o->done, true);
	return NULL;
}

void op_start(struct op *o)
{
	atomic_store(&o->done, false);
	assert_int_equal(pthread_create(&o->t, NULL, op_thread, o), 0);
}

void op_wait(struct op *o)
{
	int i;

	for (i = 0; i < FAKE_GUARD_STEPS && !atomic_load(&o->done); i++)
		usleep(1000);
	if (!atomic_load(&o->done))
		fail_msg("a file call never returned");
	pthread_join(o->t, NULL);
}

void op_assert_blocked(struct op *o, unsigned parked)
{
	fake_wait(FQ_PARKED, 0, parked);
	assert_false(atomic_load(&o->done));
}

int open_accepted(uint32_t port, int flags, unsigned *conn)
{
	char rel[64];
	int fd;

	*conn = guest_incoming(port);
	snprintf(rel, sizeof rel, "vsock/listen/%u", port);
	fd = open(fake_path(rel), flags, 0600);
	assert_true(fd >= 0);
	return fd;
}

void close_and_wait(int fd, unsigned closes)
{
	assert_int_equal(close(fd), 0);
	fake_wait(FQ_HOST_CLOSES, 0, closes);
}

void close_failing_and_wait(int fd, int err, unsigned closes)
{
	errno = 0;
	assert_int_equal(close(fd), -1);
	assert_int_equal(errno, err);
	fake_wait(FQ_HOST_CLOSES, 0, closes);
}
