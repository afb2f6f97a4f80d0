/*
 * vsock_uds — hybrid vsock sockets (vsock_uds.h): each UNIX socket is a
 * host-side user of one vsock channel, relayed on the loop.
 *
 * Every socket has one task (uds_pump) that does all its work; socket
 * events, the channel's watcher and the line timer only queue it.  The
 * pump reads the socket only while the channel can take what it reads
 * (the to_guest window) and takes from the channel only what the socket
 * accepted, so flow control is the channel's windows on one side and the
 * socket buffers on the other; a read event is armed only after a read
 * said EAGAIN, a write event only after a write fell short, so no
 * level-triggered event fires without work to do.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "chanfs/chan.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/usock.h"
#include "chanfs/vsock.h"
#include "chanfs/vsock_uds.h"

/* Connections accepted per wake-up of the listener (the rest next turn). */
#define UDS_ACCEPTS_PER_TURN 64
/* Bytes moved per read from the socket (also bounded by the window). */
#define UDS_CHUNK (64u * 1024)
/* "4294967295": the longest port in a PATH_PORT name */
#define UDS_PORT_DIGITS 10

enum uds_state {
	UDS_LINE,        /* reading the client's CONNECT line */
	UDS_CONNECTING,  /* waiting for the guest's answer */
	UDS_RELAY,
};

struct uds_conn {
	struct vsock_uds *u;
	int fd;
	enum uds_state state;
	char name[64];                   /* "uds #7" in log lines */
	struct chan *c;                  /* our host reference, or NULL */
	struct chan_watcher w;
	struct loop_task task;
	struct event *rev, *wev, *timer;
	bool rev_on, wev_on;
	bool timed_out;                  /* the line timer fired */
	char line[VSOCK_UDS_LINE_MAX];
	size_t llen;
	char reply[24];                  /* "OK <host-port>\n" still to send */
	size_t reply_len, reply_off;
	bool sock_eof;                   /* no more reading of the socket */
	bool sock_shut;                  /* we did shutdown(SHUT_WR) */
	TAILQ_ENTRY(uds_conn) link;
};

struct vsock_uds {
	struct loop *loop;
	struct vsock *v;
	char *path;
	int lfd;
	struct event *lev, *retry;
	bool paused;                     /* accepting stopped for now */
	bool starved;                    /* in an episode of accept failures */
	unsigned line_timeout_ms;
	unsigned nconns;
	uint64_t serial, pauses;         /* pauses: for the log line */
	TAILQ_HEAD(, uds_conn) conns;
};

/* --- one socket --------------------------------------------------------- */

static void uds_conn_free(struct uds_conn *s);

static void uds_arm(struct event *ev, bool *on, bool want)
{
	if (want && !*on)
		event_add(ev, NULL);
	else if (!want && *on)
		event_del(ev);
	*on = want;
}

static void uds_kick(evutil_socket_t fd, short what, void *arg)
{
	struct uds_conn *s = arg;

	(void)fd;
	(void)what;
	loop_defer(s->u->loop, &s->task);
}

static void uds_line_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct uds_conn *s = arg;

	(void)fd;
	(void)what;
	s->timed_out = true;
	loop_defer(s->u->loop, &s->task);
}

static void uds_watch(struct chan *c, void *arg)
{
	struct uds_conn *s = arg;

	(void)c;
	loop_defer(s->u->loop, &s->task);
}

/* The line as a log can show it: printable bytes, the rest as '?'. */
static void uds_line_printable(const struct uds_conn *s, char *out,
                               size_t size)
{
	size_t i, n = s->llen < size - 1 ? s->llen : size - 1;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s->line[i];

		out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	out[n] = '\0';
}

int vsock_uds_parse_connect(const char *line, size_t len, uint32_t *port,
                            const char **why)
{
	static const char verb[] = "CONNECT ";
	uint64_t val = 0;
	size_t i = sizeof verb - 1, digits = 0;

	if (len < sizeof verb || memcmp(line, verb, sizeof verb - 1)) {
		*why = "not a CONNECT line";
		return -EINVAL;
	}
	/* Past 2^32 val stops growing: no overflow however many digits. */
	for (; i < len && line[i] >= '0' && line[i] <= '9'; i++, digits++)
		if (val <= UINT32_MAX)
			val = val * 10 + (uint64_t)(line[i] - '0');
	if (!digits) {
		*why = "port is not a number";
		return -EINVAL;
	}
	if (i != len - 1 || line[i] != '\n') {
		*why = i < len && line[i] == ' ' ? "extra words after the port"
		                                 : "port is not a number";
		return -EINVAL;
	}
	if (val > UINT32_MAX) {
		*why = "port out of range";
		return -EINVAL;
	}
	*port = (uint32_t)val;
	return 0;
}

/* Reject the client's line: one log line, and the socket goes. */
static void uds_reject(struct uds_conn *s, const char *why)
{
	char shown[VSOCK_UDS_LINE_MAX + 1];

	uds_line_printable(s, shown, sizeof shown);
	log_warnx("uds: %s: %s: bad CONNECT line \"%s\" (%zu bytes): %s; "
	          "closing", s->u->path, s->name, shown, s->llen, why);
	uds_conn_free(s);
}

/* Take the CONNECT line, and only it: bytes after its "\n" stay in the
 * socket for the relay.  Returns false when s is gone. */
static bool uds_read_line(struct uds_conn *s)
{
	char buf[VSOCK_UDS_LINE_MAX];
	const char *why, *nl;
	size_t take;
	uint32_t port;
	ssize_t n;
	int rc;

	n = recv(s->fd, buf, sizeof buf - s->llen, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0) {
		if (n < 0)
			log_info("uds: %s: %s: %s before its CONNECT line; "
			         "closing", s->u->path, s->name,
			         strerror(errno));
		else
			log_info("uds: %s: %s: the client ended before its "
			         "CONNECT line (%zu bytes); closing",
			         s->u->path, s->name, s->llen);
		uds_conn_free(s);
		return false;
	}
	nl = memchr(buf, '\n', (size_t)n);
	take = nl ? (size_t)(nl - buf) + 1 : (size_t)n;
	/* Peeked, so this returns take bytes (we are its only reader). */
	if (recv(s->fd, s->line + s->llen, take, 0) != (ssize_t)take) {
		log_warn("uds: %s: %s: recv", s->u->path, s->name);
		uds_conn_free(s);
		return false;
	}
	s->llen += take;
	if (!nl) {
		if (s->llen < sizeof s->line)
			return true;
		uds_reject(s, "no newline within 32 bytes");
		return false;
	}
	if (vsock_uds_parse_connect(s->line, s->llen, &port, &why) < 0) {
		uds_reject(s, why);
		return false;
	}
	rc = vsock_connect(s->u->v, port, &s->c);
	if (rc < 0) {
		log_info("uds: %s: %s: CONNECT %u: %s; closing", s->u->path,
		         s->name, port, strerror(-rc));
		s->c = NULL;
		uds_conn_free(s);
		return false;
	}
	evtimer_del(s->timer);
	chan_watch_add(s->c, &s->w, uds_watch, s);
	s->state = UDS_CONNECTING;
	log_debug("uds: %s: %s: CONNECT %u: %s", s->u->path, s->name, port,
	          s->c->name);
	return true;
}

/* Waiting for the guest: OPEN → send OK, RESET → close.  Returns false
 * when s is gone. */
static bool uds_connecting(struct uds_conn *s)
{
	int n;

	if (s->c->state == CHAN_CONNECTING)
		return true;
	if (s->c->state != CHAN_OPEN) {
		log_info("uds: %s: %s: %s: %s; closing", s->u->path, s->name,
		         s->c->name, s->c->state == CHAN_RESET ?
		         strerror(s->c->error) : "closed at once");
		uds_conn_free(s);
		return false;
	}
	n = snprintf(s->reply, sizeof s->reply, "OK %u\n",
	             vsock_chan_host_port(s->c));
	s->reply_len = (size_t)n;
	s->state = UDS_RELAY;
	log_debug("uds: %s: %s: %s open", s->u->path, s->name, s->c->name);
	return true;
}

/* The client is gone (a write or read failed with err). */
static void uds_client_gone(struct uds_conn *s, int err)
{
	log_info("uds: %s: %s: %s: client gone (%s); shutting the "
	         "connection down", s->u->path, s->name, s->c->name,
	         strerror(err));
	uds_conn_free(s);
}

/* Channel → socket.  Returns false when s is gone; *want_write when the
 * socket is full. */
static bool uds_to_socket(struct uds_conn *s, bool *want_write)
{
	struct msghdr mh = { 0 };
	struct iovec iov[2];
	ssize_t w;
	size_t total;
	int n, i;

	while (s->reply_off < s->reply_len) {
		w = send(s->fd, s->reply + s->reply_off,
		         s->reply_len - s->reply_off, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			*want_write = true;
			return true;
		}
		if (w < 0) {
			uds_client_gone(s, errno);
			return false;
		}
		s->reply_off += (size_t)w;
	}
	while (!s->sock_shut) {
		n = chan_peek(s->c, iov, SIZE_MAX);
		if (n == -EAGAIN)
			return true;
		if (n == 0) {
			/* The guest sends no more: so does the socket. */
			shutdown(s->fd, SHUT_WR);
			s->sock_shut = true;
			return true;
		}
		if (n < 0) {
			log_info("uds: %s: %s: %s: %s; closing", s->u->path,
			         s->name, s->c->name, strerror(-n));
			uds_conn_free(s);
			return false;
		}
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)n;
		for (total = 0, i = 0; i < n; i++)
			total += iov[i].iov_len;
		w = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EAGAIN) {
			*want_write = true;
			return true;
		}
		if (w < 0) {
			uds_client_gone(s, errno);
			return false;
		}
		chan_consume(s->c, (size_t)w);
		if ((size_t)w < total) {
			*want_write = true;
			return true;
		}
	}
	return true;
}

/* Socket → channel.  Returns false when s is gone; *want_read when the
 * socket had nothing more. */
static bool uds_to_chan(struct uds_conn *s, bool *want_read)
{
	char buf[UDS_CHUNK];
	uint32_t space;
	ssize_t n;

	while (!s->sock_eof) {
		if (chan_write(s->c, NULL, 0) < 0) {
			/* The guest receives no more (or the connection is
			 * over): what the client sends goes nowhere. */
			s->sock_eof = true;
			break;
		}
		space = ring_space(&s->c->to_guest);
		if (!space)
			break;   /* the watcher wakes us when it drains */
		n = recv(s->fd, buf, space < sizeof buf ? space : sizeof buf,
		         MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			*want_read = true;
			break;
		}
		if (n < 0) {
			uds_client_gone(s, errno);
			return false;
		}
		if (n == 0) {
			/* The client's shutdown(SHUT_WR) or close. */
			s->sock_eof = true;
			chan_shutdown(s->c);
			break;
		}
		/* It fits: we read no more than the window's free space. */
		chan_write(s->c, buf, (size_t)n);
	}
	return true;
}

static void uds_pump(void *arg)
{
	struct uds_conn *s = arg;
	bool want_read = false, want_write = false;

	if (s->timed_out && s->state == UDS_LINE) {
		log_info("uds: %s: %s: no CONNECT line within %u ms; closing",
		         s->u->path, s->name, s->u->line_timeout_ms);
		uds_conn_free(s);
		return;
	}
	if (s->state == UDS_LINE) {
		if (!uds_read_line(s))
			return;
		want_read = s->state == UDS_LINE;
	}
	if (s->state == UDS_CONNECTING && !uds_connecting(s))
		return;
	if (s->state == UDS_RELAY) {
		if (!uds_to_socket(s, &want_write) ||
		    !uds_to_chan(s, &want_read))
			return;
		if (s->sock_eof && s->sock_shut) {
			log_debug("uds: %s: %s: %s: both directions ended",
			          s->u->path, s->name, s->c->name);
			uds_conn_free(s);
			return;
		}
	}
	uds_arm(s->rev, &s->rev_on, want_read);
	uds_arm(s->wev, &s->wev_on, want_write);
}

static struct uds_conn *uds_conn_new(struct vsock_uds *u, int fd,
                                     enum uds_state state)
{
	struct uds_conn *s = calloc(1, sizeof *s);
	struct event_base *b = loop_base(u->loop);

	if (!s)
		return NULL;
	s->u = u;
	s->fd = fd;
	s->state = state;
	snprintf(s->name, sizeof s->name, "socket #%llu",
	         (unsigned long long)++u->serial);
	loop_task_init(&s->task, uds_pump, s);
	s->rev = event_new(b, fd, EV_READ | EV_PERSIST, uds_kick, s);
	s->wev = event_new(b, fd, EV_WRITE | EV_PERSIST, uds_kick, s);
	s->timer = evtimer_new(b, uds_line_timeout, s);
	if (!s->rev || !s->wev || !s->timer) {
		if (s->rev)
			event_free(s->rev);
		if (s->wev)
			event_free(s->wev);
		if (s->timer)
			event_free(s->timer);
		free(s);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&u->conns, s, link);
	u->nconns++;
	loop_defer(u->loop, &s->task);
	return s;
}

static void uds_resume(struct vsock_uds *u);

static void uds_conn_free(struct uds_conn *s)
{
	struct vsock_uds *u = s->u;

	TAILQ_REMOVE(&u->conns, s, link);
	u->nconns--;
	/* An orderly shutdown: what the client sent still reaches the
	 * guest. */
	chan_close(s->c);
	event_free(s->rev);
	event_free(s->wev);
	event_free(s->timer);
	loop_cancel(u->loop, &s->task);
	close(s->fd);
	free(s);
	if (u->paused)
		uds_resume(u);
}

/* --- guest → host: PATH_PORT ----------------------------------------- */

static int uds_unlistened(void *arg, uint32_t port, struct chan *ch)
{
	struct vsock_uds *u = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct uds_conn *s;
	int fd, err;

	/* vsock_uds_new made sure the longest PATH_PORT fits. */
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s_%u", u->path, port);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
		log_warnx("uds: %s: %s: socket: %s; RST", sa.sun_path, ch->name,
		          strerror(err));
		return -ECONNREFUSED;
	}
	/* A UNIX stream connect completes or fails at once (EAGAIN: the
	 * listener's backlog is full); it never waits when nonblocking. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		err = errno;
		close(fd);
		log_info("uds: %s: %s: connect: %s; RST", sa.sun_path, ch->name,
		         strerror(err));
		return -ECONNREFUSED;
	}
	s = uds_conn_new(u, fd, UDS_RELAY);
	if (!s) {
		close(fd);
		log_warnx("uds: %s: %s: out of memory; RST", sa.sun_path,
		          ch->name);
		return -ECONNREFUSED;
	}
	snprintf(s->name, sizeof s->name, "socket #%llu to port %u",
	         (unsigned long long)u->serial, port);
	chan_ref(ch);
	s->c = ch;
	chan_watch_add(ch, &s->w, uds_watch, s);
	log_debug("uds: %s: %s: %s", sa.sun_path, s->name, ch->name);
	return 0;
}

/* --- the listener --------------------------------------------------------- */

static void uds_pause(struct vsock_uds *u, int err)
{
	if (!u->starved)
		log_warnx("uds: %s: accept: %s; not accepting until a socket "
		          "closes or for %u ms (clients wait in the backlog)",
		          u->path, strerror(err), VSOCK_UDS_RETRY_MS);
	u->starved = true;
	u->paused = true;
	u->pauses++;
	event_del(u->lev);
	loop_timer_ms(u->retry, VSOCK_UDS_RETRY_MS);
}

static void uds_resume(struct vsock_uds *u)
{
	u->paused = false;
	evtimer_del(u->retry);
	if (event_add(u->lev, NULL) < 0) {
		log_warnx("uds: %s: cannot watch the socket again", u->path);
		return;
	}
	/* Try once even if nobody waits: accept says EMFILE before it looks
	 * at the backlog, so the pause may have come with the backlog
	 * already empty, and only an accept that says EAGAIN ends the
	 * episode. */
	event_active(u->lev, EV_READ, 0);
}

static void uds_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	uds_resume(arg);
}

static void uds_accept(evutil_socket_t fd, short what, void *arg)
{
	struct vsock_uds *u = arg;
	struct uds_conn *s;
	unsigned i;
	int c;

	(void)what;
	for (i = 0; i < UDS_ACCEPTS_PER_TURN; i++) {
		c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				uds_pause(u, errno);
			else if (u->starved) {
				/* The backlog is drained: the episode is over. */
				log_info("uds: %s: accepting again (after %llu "
				         "pauses)", u->path,
				         (unsigned long long)u->pauses);
				u->starved = false;
			}
			return;
		}
		s = uds_conn_new(u, c, UDS_LINE);
		if (!s) {
			close(c);
			uds_pause(u, ENOMEM);
			return;
		}
		loop_timer_ms(s->timer, u->line_timeout_ms);
	}
	/* The turn's share taken: go on next turn, even if the backlog is
	 * empty now (then accept says EAGAIN and a starved episode ends). */
	if (u->starved)
		event_active(u->lev, EV_READ, 0);
}

/* Room for the longest guest → host name too: PATH_4294967295. */
static int uds_listen(const char *path)
{
	if (strlen(path) + 1 + UDS_PORT_DIGITS >=
	    sizeof ((struct sockaddr_un *)0)->sun_path) {
		log_warnx("uds: %s: --uds path too long (with _PORT it must "
		          "fit in %zu bytes)", path,
		          sizeof ((struct sockaddr_un *)0)->sun_path - 1);
		return -ENAMETOOLONG;
	}
	return usock_listen(path, SOMAXCONN, "uds");
}

struct vsock_uds *vsock_uds_new(struct loop *l, struct vsock *v,
                                const char *path, unsigned line_timeout_ms)
{
	struct vsock_uds *u = calloc(1, sizeof *u);
	int fd;

	if (!u || !(u->path = strdup(path))) {
		free(u);
		errno = ENOMEM;
		return NULL;
	}
	u->loop = l;
	u->v = v;
	u->line_timeout_ms = line_timeout_ms;
	TAILQ_INIT(&u->conns);
	if ((fd = uds_listen(path)) < 0) {
		free(u->path);
		free(u);
		errno = -fd;
		return NULL;
	}
	u->lfd = fd;
	u->lev = event_new(loop_base(l), fd, EV_READ | EV_PERSIST, uds_accept,
	                   u);
	u->retry = evtimer_new(loop_base(l), uds_retry, u);
	if (!u->lev || !u->retry || event_add(u->lev, NULL) < 0) {
		log_warnx("uds: %s: cannot watch the socket", path);
		vsock_uds_free(u);
		errno = ENOMEM;
		return NULL;
	}
	vsock_on_unlistened(v, uds_unlistened, u);
	log_info("hybrid vsock sockets on %s (guest connections to port P "
	         "nobody listens on go to %s_P)", path, path);
	return u;
}

void vsock_uds_free(struct vsock_uds *u)
{
	if (!u)
		return;
	vsock_on_unlistened(u->v, NULL, NULL);
	while (!TAILQ_EMPTY(&u->conns))
		uds_conn_free(TAILQ_FIRST(&u->conns));
	if (u->lev)
		event_free(u->lev);
	if (u->retry)
		event_free(u->retry);
	close(u->lfd);
	unlink(u->path);
	free(u->path);
	free(u);
}
