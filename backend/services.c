/*
 * services: guest connections to the service port, routed by the name in
 * their connect string to the opens of services/NAME (services.h).
 *
 * We are the host side of each connection until an open takes it: we
 * watch it, peek at what arrived and consume the connect string, NUL
 * included, and nothing more, so every later byte is the opener's.  Each
 * connection has one timer, armed at its arrival: a guest gets
 * accept_timeout_ms in all to say its name and be opened.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/services.h"
#include "chanfs/vsock.h"

#define SERVICES_DEFAULT_ACCEPT_TIMEOUT 30000u
#define SERVICES_DEFAULT_BACKLOG 16u
#define SERVICES_PREFIX "pipe:"
#define SERVICES_PREFIX_LEN (sizeof SERVICES_PREFIX - 1)

struct svc_name;

/* One guest connection while it is ours. */
struct svc_conn {
	struct services *s;
	struct chan *c;              /* our host reference */
	struct chan_watcher w;       /* while reading the connect string */
	struct loop_task parse;
	struct event *timer;         /* accept_timeout_ms from arrival */
	struct svc_name *name;       /* NULL while reading */
	char buf[SERVICES_CONNECT_MAX]; /* the connect string so far */
	size_t len;
	TAILQ_ENTRY(svc_conn) link;  /* s->reading or name->q */
};

/* A name with waiting connections or waiting openers. */
struct svc_name {
	char name[SERVICES_CONNECT_MAX];
	TAILQ_HEAD(, svc_conn) q;    /* oldest first */
	unsigned count, waiters;
	TAILQ_ENTRY(svc_name) link;
};

struct services {
	struct loop *l;
	struct vsock *v;
	struct chandir *dir;
	struct services_config cfg;
	struct loop_task accept;
	TAILQ_HEAD(, svc_conn) reading;
	unsigned nreading;
	TAILQ_HEAD(, svc_name) names;
	unsigned long long served, rejected;
};

static bool svc_name_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* A service name as the rules say (also what lookup accepts). */
static bool svc_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > SERVICES_CONNECT_MAX - SERVICES_PREFIX_LEN - 1)
		return false;
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!svc_name_char((unsigned char)name[i]))
			return false;
	return true;
}

static struct svc_name *svc_name_find(struct services *s, const char *name)
{
	struct svc_name *n;

	TAILQ_FOREACH(n, &s->names, link)
		if (!strcmp(n->name, name))
			return n;
	return NULL;
}

static struct svc_name *svc_name_get(struct services *s, const char *name)
{
	struct svc_name *n = svc_name_find(s, name);

	if (n)
		return n;
	n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	snprintf(n->name, sizeof n->name, "%s", name);
	TAILQ_INIT(&n->q);
	TAILQ_INSERT_TAIL(&s->names, n, link);
	return n;
}

/* A name nothing waits on is forgotten. */
static void svc_name_maybe_free(struct services *s, struct svc_name *n)
{
	if (n->count || n->waiters)
		return;
	TAILQ_REMOVE(&s->names, n, link);
	free(n);
}

/* Let go of sc: the channel is reset (abort), closed, or (neither) was
 * handed to an opener. */
enum svc_end { SVC_ABORT, SVC_CLOSE, SVC_HANDED };

static void svc_conn_free(struct svc_conn *sc, enum svc_end how)
{
	struct services *s = sc->s;
	struct svc_name *n = sc->name;

	if (n) {
		TAILQ_REMOVE(&n->q, sc, link);
		n->count--;
		svc_name_maybe_free(s, n);
	} else {
		TAILQ_REMOVE(&s->reading, sc, link);
		s->nreading--;
		chan_watch_remove(sc->c, &sc->w);
	}
	loop_cancel(s->l, &sc->parse);
	event_free(sc->timer);
	if (how == SVC_ABORT)
		chan_abort(sc->c);
	else if (how == SVC_CLOSE)
		chan_close(sc->c);
	free(sc);
}

static void svc_reject(struct svc_conn *sc, bool warn, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One log line naming the connection and what was wrong, and a reset: a
 * warning for what the guest sent, info for a timeout (as vsock's). */
static void svc_reject(struct svc_conn *sc, bool warn, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (warn)
		log_warnx("services: %s: %s; RST", sc->c->name, why);
	else
		log_info("services: %s: %s; RST", sc->c->name, why);
	sc->s->rejected++;
	svc_conn_free(sc, SVC_ABORT);
}

static void svc_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct svc_conn *sc = arg;

	(void)fd;
	(void)what;
	if (sc->name)
		svc_reject(sc, false, "service \"%s\" not opened within %u ms",
		           sc->name->name, sc->s->cfg.accept_timeout_ms);
	else
		svc_reject(sc, false, "no connect string within %u ms",
		           sc->s->cfg.accept_timeout_ms);
}

/* Check the connect string so far: len bytes, the last of them its NUL
 * when whole.  NULL while it is good (or may still become good); when
 * whole and good, *name_len and *args are set (args NULL when none).
 * Else what is wrong (maybe in why). */
static const char *svc_check(const char *str, size_t len, bool whole,
                             size_t *name_len, const char **args, char *why,
                             size_t size)
{
	const char *name = str + SERVICES_PREFIX_LEN;
	size_t n = len - whole, rest, nl, i;

	if (memcmp(str, SERVICES_PREFIX, n < SERVICES_PREFIX_LEN ? n :
	           SERVICES_PREFIX_LEN) || (whole && n < SERVICES_PREFIX_LEN))
		return "connect string does not start with \"pipe:\"";
	if (n < SERVICES_PREFIX_LEN)
		return NULL;
	rest = n - SERVICES_PREFIX_LEN;
	for (nl = 0; nl < rest && name[nl] != ':'; nl++)
		if (!svc_name_char((unsigned char)name[nl])) {
			snprintf(why, size, "byte 0x%02x at %zu of the service "
			         "name (allowed: A-Z a-z 0-9 . _ -)",
			         (unsigned char)name[nl], nl);
			return why;
		}
	if (nl == 0 && (whole || rest))
		return "empty service name";
	if ((whole || nl < rest) && !svc_name_ok(name, nl))
		return "service name \".\" or \"..\"";
	for (i = nl + 1; i < rest; i++)
		if ((unsigned char)name[i] < 0x20 ||
		    (unsigned char)name[i] > 0x7e) {
			snprintf(why, size, "byte 0x%02x at %zu of the args "
			         "(allowed: printable ASCII)",
			         (unsigned char)name[i], i - nl - 1);
			return why;
		}
	if (whole) {
		*name_len = nl;
		*args = nl < rest ? name + nl + 1 : NULL;
	}
	return NULL;
}

/* The connect string is whole: queue the connection under its name. */
static void svc_route(struct svc_conn *sc)
{
	const char *str = sc->buf;
	struct services *s = sc->s;
	char why[96], name[SERVICES_CONNECT_MAX];
	const char *bad, *args;
	struct svc_name *n;
	size_t name_len;

	bad = svc_check(str, sc->len, true, &name_len, &args, why, sizeof why);
	if (bad) {
		svc_reject(sc, true, "bad connect string: %s", bad);
		return;
	}
	memcpy(name, str + SERVICES_PREFIX_LEN, name_len);
	name[name_len] = 0;
	n = svc_name_get(s, name);
	if (!n) {
		svc_reject(sc, true, "service \"%s\": out of memory", name);
		return;
	}
	if (n->count >= s->cfg.backlog) {
		svc_reject(sc, true, "service \"%s\" already has %u connections "
		           "waiting (the backlog)", name, n->count);
		return;
	}
	if (chan_set_args(sc->c, args) < 0) {
		svc_name_maybe_free(s, n);
		svc_reject(sc, true, "service \"%s\": out of memory", name);
		return;
	}
	chan_watch_remove(sc->c, &sc->w);
	TAILQ_REMOVE(&s->reading, sc, link);
	s->nreading--;
	sc->name = n;
	TAILQ_INSERT_TAIL(&n->q, sc, link);
	n->count++;
	log_debug("services: %s: for \"%s\"%s%s", sc->c->name, name,
	          args ? " with args " : "", args ? args : "");
	chandir_ready(s->dir, name);
}

/* Take what arrived of the connect string, and not a byte beyond its NUL.
 * Bytes before the NUL are moved into sc->buf, so to_host drains and the
 * next data fires our watcher again. */
static void svc_parse(void *arg)
{
	struct svc_conn *sc = arg;
	struct chan *c = sc->c;
	struct iovec iov[2];
	char *nul, why[96];
	const char *bad;
	size_t take;
	int n, i;

	for (;;) {
		n = chan_peek(c, iov, sizeof sc->buf - sc->len);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			nul = memchr(iov[i].iov_base, 0, iov[i].iov_len);
			take = nul ? (size_t)(nul - (char *)iov[i].iov_base) + 1
			           : iov[i].iov_len;
			memcpy(sc->buf + sc->len, iov[i].iov_base, take);
			sc->len += take;
			chan_consume(c, take);
			if (nul) {
				/* It may wait for an opener a long time:
				 * without the window's buffer. */
				chan_trim(c);
				svc_route(sc);
				return;
			}
		}
		bad = svc_check(sc->buf, sc->len, false, NULL, NULL, why,
		                sizeof why);
		if (bad) {
			/* It cannot become good: say so now, not at the
			 * timeout. */
			svc_reject(sc, true, "bad connect string: %s", bad);
			return;
		}
		if (sc->len == sizeof sc->buf) {
			svc_reject(sc, true, "bad connect string: no NUL within "
			           "%zu bytes", sizeof sc->buf);
			return;
		}
	}
	if (n == -EAGAIN)
		return;
	if (!sc->len) {
		log_info("services: %s: ended before its connect string (%s)",
		         c->name, n ? strerror(-n) : "EOF");
		sc->s->rejected++;
		svc_conn_free(sc, SVC_CLOSE);
		return;
	}
	svc_reject(sc, true, "ended after %zu bytes, before the connect "
	           "string's NUL", sc->len);
}

static void svc_watch(struct chan *c, void *arg)
{
	struct svc_conn *sc = arg;

	(void)c;
	loop_defer(sc->s->l, &sc->parse);
}

static void svc_conn_start(struct services *s, struct chan *c)
{
	struct svc_conn *sc = calloc(1, sizeof *sc);

	if (sc)
		sc->timer = evtimer_new(loop_base(s->l), svc_timeout, sc);
	if (!sc || !sc->timer) {
		log_warnx("services: %s: out of memory; RST", c->name);
		free(sc);
		chan_abort(c);
		return;
	}
	sc->s = s;
	sc->c = c;
	loop_task_init(&sc->parse, svc_parse, sc);
	TAILQ_INSERT_TAIL(&s->reading, sc, link);
	s->nreading++;
	s->served++;
	chan_watch_add(c, &sc->w, svc_watch, sc);
	loop_timer_ms(sc->timer, s->cfg.accept_timeout_ms);
	/* What arrived with the connection fires no watcher: look now. */
	loop_defer(s->l, &sc->parse);
}

static void svc_accept(void *arg)
{
	struct services *s = arg;
	struct chan *c;

	while (vsock_accept(s->v, s->cfg.port, &c) == 0)
		svc_conn_start(s, c);
}

static void svc_incoming(void *arg, uint32_t port)
{
	struct services *s = arg;

	(void)port;
	loop_defer(s->l, &s->accept);
}

/* --- the directory -------------------------------------------------------- */

static int svc_dir_lookup(void *ctx, const char *name)
{
	(void)ctx;
	return svc_name_ok(name, strlen(name)) ? 0 : -ENOENT;
}

static void svc_dir_list(void *ctx, void (*add)(void *arg, const char *name),
                         void *arg)
{
	struct services *s = ctx;
	struct svc_name *n;

	TAILQ_FOREACH(n, &s->names, link)
		if (n->count)
			add(arg, n->name);
}

static int svc_dir_open(void *ctx, const char *name, struct chan **out)
{
	struct services *s = ctx;
	struct svc_name *n = svc_name_find(s, name);
	struct svc_conn *sc;

	if (!n || !n->count)
		return -EAGAIN;
	sc = TAILQ_FIRST(&n->q);
	*out = sc->c;
	log_debug("services: %s: opened as services/%s", sc->c->name, name);
	svc_conn_free(sc, SVC_HANDED);
	return 0;
}

static void svc_dir_wait(void *ctx, const char *name, bool waiting)
{
	struct services *s = ctx;
	struct svc_name *n = waiting ? svc_name_get(s, name)
	                             : svc_name_find(s, name);

	if (!n)
		return;	/* out of memory: only the status count is lost */
	if (waiting)
		n->waiters++;
	else if (n->waiters)
		n->waiters--;
	svc_name_maybe_free(s, n);
}

static void svc_dir_status(void *ctx, FILE *out)
{
	struct services *s = ctx;
	struct svc_name *n;
	struct svc_conn *sc;

	fprintf(out, "services port %u: %u reading a connect string, "
	        "%llu connections, %llu rejected\n", s->cfg.port, s->nreading,
	        s->served, s->rejected);
	TAILQ_FOREACH(n, &s->names, link) {
		fprintf(out, "services/%s: %u waiting, %u openers\n", n->name,
		        n->count, n->waiters);
		TAILQ_FOREACH(sc, &n->q, link)
			fprintf(out, "  %s args=%s\n", sc->c->name,
			        sc->c->args ? sc->c->args : "");
	}
}

static const struct chandir_ops svc_dir_ops = {
	.lookup = svc_dir_lookup,
	.list = svc_dir_list,
	.open = svc_dir_open,
	.wait = svc_dir_wait,
	.status = svc_dir_status,
};

/* --- life ----------------------------------------------------------------- */

struct services *services_new(struct loop *l, struct vsock *v,
                              struct chandirs *dirs,
                              const struct services_config *cfg)
{
	struct services *s;

	if (!cfg->port) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->l = l;
	s->v = v;
	s->cfg = *cfg;
	if (!s->cfg.accept_timeout_ms)
		s->cfg.accept_timeout_ms = SERVICES_DEFAULT_ACCEPT_TIMEOUT;
	if (!s->cfg.backlog)
		s->cfg.backlog = SERVICES_DEFAULT_BACKLOG;
	TAILQ_INIT(&s->reading);
	TAILQ_INIT(&s->names);
	loop_task_init(&s->accept, svc_accept, s);
	s->dir = chandir_add(dirs, "services", CHANDIR_ACCEPT, 0, &svc_dir_ops,
	                     s);
	if (!s->dir) {
		free(s);
		return NULL;
	}
	vsock_listen_to(v, s->cfg.port, svc_incoming, s);
	return s;
}

void services_free(struct services *s)
{
	struct svc_name *n;

	if (!s)
		return;
	vsock_listen_to(s->v, s->cfg.port, NULL, NULL);
	loop_cancel(s->l, &s->accept);
	while (!TAILQ_EMPTY(&s->reading))
		svc_conn_free(TAILQ_FIRST(&s->reading), SVC_ABORT);
	while ((n = TAILQ_FIRST(&s->names))) {
		n->waiters = 0;
		if (n->count)
			svc_conn_free(TAILQ_FIRST(&n->q), SVC_ABORT);
		else
			svc_name_maybe_free(s, n);
	}
	free(s);
}
