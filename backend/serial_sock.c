/*
 * A serial port over a QEMU chardev socket: connect (with backoff) or
 * listen, and relay between the socket and the port's channel with flow
 * control both ways (serial_sock.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/serial.h"
#include "chanfs/serial_sock.h"
#include "chanfs/usock.h"

#define SERIAL_SOCK_CHUNK (64u * 1024)       /* one read of a drain */
#define SERIAL_SOCK_BACKOFF_MIN 100          /* ms */
#define SERIAL_SOCK_BACKOFF_MAX 5000         /* ms */
#define SERIAL_SOCK_ACCEPT_RETRY 1000        /* ms, after accept failed */
/* What a departed peer may leave for us to read: a socket buffer is far
 * smaller (net.core.wmem_max), so this only bounds the absurd. */
#define SERIAL_SOCK_DRAIN_MAX (16u * 1024 * 1024)

enum serial_sock_state {
	SERIAL_SOCK_DOWN,        /* connect: waiting for the retry timer;
	                            listen: waiting for a peer */
	SERIAL_SOCK_CONNECTING,  /* connect in progress (EINPROGRESS) */
	SERIAL_SOCK_UP,
};

struct serial_sock {
	struct loop *loop;
	struct serial_port *port;
	struct chan *c;
	char *name, *path;
	char who[CHANDIR_NAME_MAX + 16];  /* "serial NAME", the log prefix */
	bool listen;
	enum serial_sock_state state;
	int fd;                  /* the peer connection, or -1 */
	struct event *ev;        /* on fd: write, hang-up (connect: done) */
	short ev_flags;          /* what ev waits for now (0: not added) */
	struct event *rd_ev;     /* on fd: readable; its own event, so that
	                            starting and stopping reading is one
	                            epoll_ctl, not a delete and an add */
	bool rd_on;              /* rd_ev is added */
	bool want_write;         /* the socket said EAGAIN to what we had */
	bool no_room;            /* to_host is full: not read again until
	                            the host has read */
	pid_t peer_pid;
	int listen_fd;
	struct event *listen_ev;
	struct event *timer;     /* reconnect (connect) / accept retry */
	unsigned backoff_ms;
	int last_err;            /* why the last connect failed (0: none) */
	bool fail_logged;        /* since the last state change */
	bool early_close;        /* the loop reports hang-ups (EV_CLOSED) */
	unsigned refused;        /* second peers turned away from this one */
	uint8_t *in;             /* bytes from the peer not yet in to_host: */
	size_t in_off, in_len, in_cap;  /* in[in_off..in_len) */
	struct loop_task task;   /* push, write, re-arm */
};

static int serial_sock_arm(struct serial_sock *t);
static void serial_sock_rearm(struct serial_sock *t);
static void serial_sock_try_connect(struct serial_sock *t);

size_t serial_sock_held(const struct serial_sock *t)
{
	return t->in_len - t->in_off;
}

bool serial_sock_connected(const struct serial_sock *t)
{
	return t->state == SERIAL_SOCK_UP;
}

/* Give the port what fits of the held bytes. */
static void serial_sock_push(struct serial_sock *t)
{
	struct iovec iov;

	if (!serial_sock_held(t))
		return;
	iov.iov_base = t->in + t->in_off;
	iov.iov_len = serial_sock_held(t);
	t->in_off += chan_guest_send(t->c, &iov, 1);
	if (t->in_off < t->in_len)
		return;
	t->in_off = t->in_len = 0;
	if (t->in_cap > SERIAL_SOCK_CHUNK) {	/* a drain's: let it go */
		free(t->in);
		t->in = NULL;
		t->in_cap = 0;
	}
}

/* Room for at least want more held bytes (compacting first). */
static int serial_sock_room(struct serial_sock *t, size_t want)
{
	size_t held = serial_sock_held(t), cap;
	uint8_t *p;

	if (t->in_off) {
		memmove(t->in, t->in + t->in_off, held);
		t->in_off = 0;
		t->in_len = held;
	}
	if (t->in_cap - t->in_len >= want)
		return 0;
	for (cap = t->in_cap ? t->in_cap : SERIAL_SOCK_CHUNK;
	     cap - t->in_len < want; cap *= 2)
		;
	if (!(p = realloc(t->in, cap)))
		return -ENOMEM;
	t->in = p;
	t->in_cap = cap;
	return 0;
}

/* The peer is gone (or has said it sends no more): it had written what
 * is still in the socket before it went, and that is data too, so read
 * it all (held here until the host makes room), then let the socket go. */
static void serial_sock_drain(struct serial_sock *t)
{
	ssize_t n;

	for (;;) {
		if (serial_sock_held(t) >= SERIAL_SOCK_DRAIN_MAX) {
			log_warnx("%s: %s: the departed peer left more than %u "
			          "bytes unread; the rest is dropped", t->who,
			          t->path, SERIAL_SOCK_DRAIN_MAX);
			return;
		}
		if (serial_sock_room(t, SERIAL_SOCK_CHUNK) < 0) {
			log_warnx("%s: %s: out of memory holding what the "
			          "departed peer sent; the rest is dropped",
			          t->who, t->path);
			return;
		}
		n = read(t->fd, t->in + t->in_len, SERIAL_SOCK_CHUNK);
		if (n > 0)
			t->in_len += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			return;	/* EOF, EAGAIN (nothing more) or an error */
	}
}

/* Stop watching fd (its events are freed). */
static void serial_sock_unwatch(struct serial_sock *t)
{
	if (t->ev)
		event_free(t->ev);
	if (t->rd_ev)
		event_free(t->rd_ev);
	t->ev = t->rd_ev = NULL;
	t->ev_flags = 0;
	t->rd_on = false;
}

static void serial_sock_close_fd(struct serial_sock *t)
{
	serial_sock_unwatch(t);
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	t->want_write = false;
	t->peer_pid = 0;
}

static void serial_sock_retry_in(struct serial_sock *t, unsigned ms)
{
	loop_timer_ms(t->timer, ms);
}

/* The connection ended: err is why (0: the peer closed it). */
static void serial_sock_down(struct serial_sock *t, int err)
{
	serial_sock_drain(t);
	log_info("%s: %s: peer went away (%s)%s", t->who, t->path,
	         err ? strerror(err) : "end of stream",
	         t->listen ? "; waiting for the next one" : "; reconnecting");
	serial_sock_close_fd(t);
	t->state = SERIAL_SOCK_DOWN;
	t->fail_logged = false;
	t->last_err = 0;
	serial_sock_push(t);
	if (!t->listen) {
		t->backoff_ms = SERIAL_SOCK_BACKOFF_MIN;
		serial_sock_retry_in(t, t->backoff_ms);
	}
}

/* Move what to_guest holds into the socket, as far as it takes it. */
static void serial_sock_write(struct serial_sock *t)
{
	struct ring *r = &t->c->to_guest;
	struct iovec iov[2];
	struct msghdr msg;
	ssize_t n;

	t->want_write = false;
	while (t->state == SERIAL_SOCK_UP && !ring_empty(r)) {
		memset(&msg, 0, sizeof msg);
		msg.msg_iov = iov;
		msg.msg_iovlen = ring_peek(r, iov, ring_used(r));
		n = sendmsg(t->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			chan_guest_took(t->c, (size_t)n);
		} else if (n < 0 && errno == EAGAIN) {
			t->want_write = true;
			return;
		} else if (!(n < 0 && errno == EINTR)) {
			serial_sock_down(t, n < 0 ? errno : EPIPE);
			return;
		}
	}
}

/* One read of the peer, when nothing is held and the host has room:
 * straight into to_host's free space (no copy through a buffer of ours),
 * as much as the socket holds and fits.  The rest waits in the peer's
 * socket, which is the flow control it understands. */
static void serial_sock_read(struct serial_sock *t)
{
	struct iovec iov[2];
	ssize_t n;
	int cnt;

	if (serial_sock_held(t))
		return;
	cnt = chan_guest_reserve(t->c, iov, SIZE_MAX);
	if (cnt == 0) {
		/* Full: wait for the host's read.  (No buffer: retried at
		 * the next readiness; the host may have nothing to read.) */
		t->no_room = ring_full(&t->c->to_host);
		return;
	}
	n = readv(t->fd, iov, cnt);
	if (n > 0) {
		chan_guest_commit(t->c, (size_t)n);
		/* Full: stop reading now rather than at the next readiness
		 * (a loop turn that could read nothing).  Waiting for half
		 * the window instead measured slower (bench-serial), likely
		 * because the peer, blocked on its full socket, is woken
		 * only once that has mostly drained. */
		t->no_room = ring_full(&t->c->to_host);
	} else if (n == 0) {
		serial_sock_down(t, 0);
	} else if (errno != EAGAIN && errno != EINTR) {
		serial_sock_down(t, errno);
	}
}

static void serial_sock_connect_done(struct serial_sock *t);

static void serial_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct serial_sock *t = arg;

	(void)fd;
	if (t->state == SERIAL_SOCK_CONNECTING) {
		serial_sock_connect_done(t);
		return;
	}
	if (what & EV_READ)
		serial_sock_read(t);
	if (t->state == SERIAL_SOCK_UP && (what & EV_WRITE))
		serial_sock_write(t);
	/* A hang-up while we do not read (the host has no room): drain
	 * and let go now, so the next peer can come. */
	if (t->state == SERIAL_SOCK_UP && (what & EV_CLOSED) &&
	    (t->no_room || !t->rd_on))
		serial_sock_down(t, 0);
	serial_sock_rearm(t);
}

/* Make the events wait for what the connection needs now: 0 or
 * -ENOMEM. */
static int serial_sock_arm(struct serial_sock *t)
{
	short flags = EV_PERSIST;
	bool rd = false;

	if (t->state == SERIAL_SOCK_CONNECTING) {
		flags |= EV_WRITE;
	} else {
		rd = !serial_sock_held(t) && !t->no_room;
		if (t->want_write)
			flags |= EV_WRITE;
		if (t->early_close)
			flags |= EV_CLOSED;
	}
	if (rd != t->rd_on) {
		if (rd && event_add(t->rd_ev, NULL) < 0)
			return -ENOMEM;
		if (!rd)
			event_del(t->rd_ev);
		t->rd_on = rd;
	}
	if (flags == t->ev_flags)
		return 0;
	event_del(t->ev);
	t->ev_flags = 0;
	event_assign(t->ev, loop_base(t->loop), t->fd, flags,
	             serial_sock_event, t);
	if (event_add(t->ev, NULL) < 0)
		return -ENOMEM;
	t->ev_flags = flags;
	return 0;
}

/* Re-arm a live connection; one we cannot watch is let go. */
static void serial_sock_rearm(struct serial_sock *t)
{
	if (t->state != SERIAL_SOCK_UP || serial_sock_arm(t) == 0)
		return;
	log_warnx("%s: %s: cannot watch the socket", t->who, t->path);
	serial_sock_down(t, ENOMEM);
}

/* The host wrote or read: move bytes, in the flush. */
static void serial_sock_work(void *arg)
{
	struct serial_sock *t = arg;

	serial_sock_push(t);
	if (t->no_room && !ring_full(&t->c->to_host))
		t->no_room = false;
	if (t->state == SERIAL_SOCK_UP)
		serial_sock_write(t);
	serial_sock_rearm(t);
}

/* Watch fd in state: 0, or -ENOMEM with nothing kept (fd stays the
 * caller's). */
static int serial_sock_watch(struct serial_sock *t, int fd,
                             enum serial_sock_state state)
{
	t->ev = event_new(loop_base(t->loop), fd, 0, serial_sock_event, t);
	t->rd_ev = event_new(loop_base(t->loop), fd, EV_READ | EV_PERSIST,
	                     serial_sock_event, t);
	t->fd = fd;
	t->ev_flags = 0;
	t->rd_on = false;
	t->state = state;
	if (t->ev && t->rd_ev && serial_sock_arm(t) == 0)
		return 0;
	serial_sock_unwatch(t);
	t->fd = -1;
	t->state = SERIAL_SOCK_DOWN;
	return -ENOMEM;
}

/* A peer is connected on fd. */
static void serial_sock_up(struct serial_sock *t, int fd)
{
	serial_sock_unwatch(t);	/* from CONNECTING: the same fd, new events */
	t->peer_pid = usock_peer_pid(fd, NULL);
	t->refused = 0;
	t->fail_logged = false;
	t->last_err = 0;
	t->backoff_ms = SERIAL_SOCK_BACKOFF_MIN;
	if (serial_sock_watch(t, fd, SERIAL_SOCK_UP) < 0) {
		log_warnx("%s: %s: cannot watch the connection", t->who,
		          t->path);
		close(fd);
		t->peer_pid = 0;
		if (!t->listen)
			serial_sock_retry_in(t, t->backoff_ms);
		return;
	}
	if (t->listen)
		log_info("%s: peer pid %d connected on %s", t->who,
		         (int)t->peer_pid, t->path);
	else
		log_info("%s: connected to %s (pid %d)", t->who, t->path,
		         (int)t->peer_pid);
	/* What the host wrote while the socket was down goes now. */
	loop_defer(t->loop, &t->task);
}

/* A connect failed (err): say so once, retry with backoff. */
static void serial_sock_connect_failed(struct serial_sock *t, int err)
{
	if (!t->fail_logged)
		log_info("%s: cannot connect to %s (%s); retrying until it "
		         "answers", t->who, t->path, strerror(err));
	t->fail_logged = true;
	t->last_err = err;
	t->state = SERIAL_SOCK_DOWN;
	serial_sock_retry_in(t, t->backoff_ms);
	t->backoff_ms = t->backoff_ms * 2 > SERIAL_SOCK_BACKOFF_MAX ?
	                SERIAL_SOCK_BACKOFF_MAX : t->backoff_ms * 2;
}

static void serial_sock_connect_done(struct serial_sock *t)
{
	int fd = t->fd, err = usock_connect_result(fd);

	if (err == 0) {
		serial_sock_up(t, fd);
		return;
	}
	serial_sock_close_fd(t);
	serial_sock_connect_failed(t, -err);
}

static void serial_sock_try_connect(struct serial_sock *t)
{
	bool done = false;
	int fd = usock_connect(t->path, &done);

	if (fd < 0) {
		serial_sock_connect_failed(t, -fd);
		return;
	}
	if (done) {
		serial_sock_up(t, fd);
		return;
	}
	if (serial_sock_watch(t, fd, SERIAL_SOCK_CONNECTING) < 0) {
		close(fd);
		serial_sock_connect_failed(t, ENOMEM);
	}
}

static void serial_sock_accept(evutil_socket_t fd, short what, void *arg)
{
	struct serial_sock *t = arg;
	pid_t pid;
	int c;

	(void)what;
	c = usock_accept(fd, t->who, t->path);
	if (c == -EAGAIN)
		return;
	if (c < 0) {
		event_del(t->listen_ev);
		serial_sock_retry_in(t, SERIAL_SOCK_ACCEPT_RETRY);
		return;
	}
	if (t->state == SERIAL_SOCK_UP) {
		if (!usock_peer_gone(t->fd)) {
			/* One line per peer connected, not per attempt: a
			 * QEMU retrying every 200 ms must not fill the log
			 * (status counts them). */
			pid = usock_peer_pid(c, NULL);
			if (t->refused++ == 0)
				log_warnx("%s: %s: refused a second peer (pid "
				          "%d): pid %d is connected", t->who,
				          t->path, (int)pid, (int)t->peer_pid);
			close(c);
			return;
		}
		serial_sock_down(t, 0);
	}
	serial_sock_up(t, c);
}

static void serial_sock_timer(evutil_socket_t fd, short what, void *arg)
{
	struct serial_sock *t = arg;

	(void)fd;
	(void)what;
	if (t->listen) {
		if (event_add(t->listen_ev, NULL) < 0)
			log_warnx("%s: %s: cannot watch the socket again",
			          t->who, t->path);
	} else if (t->state == SERIAL_SOCK_DOWN) {
		serial_sock_try_connect(t);
	}
}

/* --- the port's ops ------------------------------------------------------ */

static void serial_sock_host_wrote(void *ctx)
{
	struct serial_sock *t = ctx;

	loop_defer(t->loop, &t->task);
}

static void serial_sock_host_consumed(void *ctx, size_t n)
{
	struct serial_sock *t = ctx;

	(void)n;
	loop_defer(t->loop, &t->task);
}

static void serial_sock_status(void *ctx, FILE *out)
{
	struct serial_sock *t = ctx;

	if (t->state == SERIAL_SOCK_UP)
		fprintf(out, " socket connected %s %s (peer pid %d)",
		        t->listen ? "on" : "to", t->path, (int)t->peer_pid);
	else if (t->listen)
		fprintf(out, " socket disconnected (listening on %s)", t->path);
	else if (t->last_err)
		fprintf(out, " socket disconnected (connecting to %s: %s)",
		        t->path, strerror(t->last_err));
	else
		fprintf(out, " socket disconnected (connecting to %s)", t->path);
	if (t->state == SERIAL_SOCK_UP && t->refused)
		fprintf(out, ", %u other peer%s refused", t->refused,
		        t->refused == 1 ? "" : "s");
	if (serial_sock_held(t))
		fprintf(out, ", %zu bytes held", serial_sock_held(t));
}

static const struct serial_port_ops serial_sock_ops = {
	.host_wrote = serial_sock_host_wrote,
	.host_consumed = serial_sock_host_consumed,
	.status = serial_sock_status,
};

/* --- lifetime ------------------------------------------------------------ */

struct serial_sock *serial_sock_new(struct loop *l, struct serial *s,
                                    const struct serial_sock_spec *sp)
{
	struct serial_sock *t = calloc(1, sizeof *t);
	int fd;

	if (!t)
		return NULL;
	t->loop = l;
	t->fd = -1;
	t->listen_fd = -1;
	t->listen = sp->listen;
	t->backoff_ms = SERIAL_SOCK_BACKOFF_MIN;
	loop_task_init(&t->task, serial_sock_work, t);
	snprintf(t->who, sizeof t->who, "serial %s", sp->name);
	t->name = strdup(sp->name);
	t->path = strdup(sp->path);
	t->timer = evtimer_new(loop_base(l), serial_sock_timer, t);
	if (!t->name || !t->path || !t->timer) {
		serial_sock_free(t);
		errno = ENOMEM;
		return NULL;
	}
	t->early_close = event_base_get_features(loop_base(l)) &
	                 EV_FEATURE_EARLY_CLOSE;
	t->port = serial_port_add(s, sp->name, &serial_sock_ops, t);
	if (!t->port) {
		int err = errno;

		log_warnx("%s: cannot add the port: %s", t->who,
		          err == EEXIST ? "the name is taken" : strerror(err));
		serial_sock_free(t);
		errno = err;
		return NULL;
	}
	t->c = serial_port_chan(t->port);
	if (!t->listen) {
		serial_sock_try_connect(t);
		return t;
	}
	if ((fd = usock_listen(t->path, 4, t->who)) < 0) {
		serial_sock_free(t);
		errno = -fd;
		return NULL;
	}
	t->listen_fd = fd;
	t->listen_ev = event_new(loop_base(l), fd, EV_READ | EV_PERSIST,
	                         serial_sock_accept, t);
	if (!t->listen_ev || event_add(t->listen_ev, NULL) < 0) {
		log_warnx("%s: %s: cannot watch the socket", t->who, t->path);
		serial_sock_free(t);
		errno = ENOMEM;
		return NULL;
	}
	log_info("%s: listening on %s", t->who, t->path);
	return t;
}

void serial_sock_free(struct serial_sock *t)
{
	if (!t)
		return;
	loop_cancel(t->loop, &t->task);
	serial_sock_close_fd(t);
	if (t->timer)
		event_free(t->timer);
	if (t->listen_ev)
		event_free(t->listen_ev);
	if (t->listen_fd >= 0) {
		close(t->listen_fd);
		unlink(t->path);
	}
	free(t->in);
	free(t->name);
	free(t->path);
	free(t);
}

/* --- the command line's spec ---------------------------------------------- */

int serial_sock_parse(const char *arg, struct serial_sock_spec *sp,
                      char *why, size_t whylen)
{
	const char *eq = strchr(arg, '='), *path, *comma;
	size_t plen;

	memset(sp, 0, sizeof *sp);
	if (!eq) {
		snprintf(why, whylen, "no '=': expected NAME=PATH[,listen]");
		return -EINVAL;
	}
	if (!(sp->name = strndup(arg, (size_t)(eq - arg))))
		return -ENOMEM;
	if (!*sp->name) {
		snprintf(why, whylen, "empty port NAME before '='");
		goto bad;
	}
	if (!serial_port_name_ok(sp->name)) {
		snprintf(why, whylen, "port NAME '%.40s%s' is not 1 to 255 of "
		         "[A-Za-z0-9._-] (nor '.' or '..')", sp->name,
		         strlen(sp->name) > 40 ? "..." : "");
		goto bad;
	}
	path = eq + 1;
	comma = strchr(path, ',');
	plen = comma ? (size_t)(comma - path) : strlen(path);
	if (comma && strcmp(comma + 1, "listen") != 0) {
		snprintf(why, whylen, "unknown option ',%.40s' after PATH "
		         "(only ',listen'; a PATH cannot hold ',')", comma + 1);
		goto bad;
	}
	if (plen == 0) {
		snprintf(why, whylen, "empty PATH after '='");
		goto bad;
	}
	if (plen >= sizeof ((struct sockaddr_un *)0)->sun_path) {
		snprintf(why, whylen, "PATH is %zu bytes, a socket address "
		         "holds at most %zu", plen,
		         sizeof ((struct sockaddr_un *)0)->sun_path - 1);
		goto bad;
	}
	if (!(sp->path = strndup(path, plen))) {
		serial_sock_spec_free(sp);
		return -ENOMEM;
	}
	sp->listen = comma != NULL;
	return 0;
bad:
	serial_sock_spec_free(sp);
	return -EINVAL;
}

void serial_sock_spec_free(struct serial_sock_spec *sp)
{
	free(sp->name);
	free(sp->path);
	sp->name = sp->path = NULL;
}
