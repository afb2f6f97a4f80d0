/*
 * vsock listening ports: which host ports answer a guest's REQUEST, their
 * accept queues, and how long both live.
 *
 * A -l port (vsock_listen) listens for the device's life.  A port made to
 * listen by an accept (an open of vsock/listen/PORT) listens while an
 * opener waits and for listen_linger_ms after the last one left, so a
 * port nobody serves any more stops queueing connections nobody will
 * take.  A queued connection that nobody accepts within accept_timeout_ms
 * is reset; queue deadlines grow in queue order, so one timer per port,
 * for the head, covers them all.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "chanfs/chan.h"
#include "chanfs/log.h"
#include "vsock_priv.h"

#define VSOCK_DEFAULT_ACCEPT_TIMEOUT 30000u
#define VSOCK_DEFAULT_LISTEN_LINGER 5000u

static uint64_t vsock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned vsock_accept_timeout(const struct vsock *v)
{
	return v->cfg.accept_timeout_ms ? v->cfg.accept_timeout_ms
	                                : VSOCK_DEFAULT_ACCEPT_TIMEOUT;
}

static unsigned vsock_listen_linger(const struct vsock *v)
{
	return v->cfg.listen_linger_ms ? v->cfg.listen_linger_ms
	                               : VSOCK_DEFAULT_LISTEN_LINGER;
}

struct vsock_listener *vsock_listener_find(const struct vsock *v,
                                           uint32_t port)
{
	struct vsock_listener *l;

	TAILQ_FOREACH(l, &v->listeners, link)
		if (l->port == port)
			return l;
	return NULL;
}

static void vsock_listener_free(struct vsock_listener *l)
{
	TAILQ_REMOVE(&l->v->listeners, l, link);
	vsock_listener_flush(l);
	event_free(l->linger);
	event_free(l->expire);
	free(l->deadline);
	free(l->q);
	free(l);
}

/* A listener that neither listens nor holds a connection is gone. */
static void vsock_listener_maybe_free(struct vsock_listener *l)
{
	if (!l->listening && l->count == 0)
		vsock_listener_free(l);
}

static void vsock_listener_linger_end(evutil_socket_t fd, short what,
                                      void *arg)
{
	struct vsock_listener *l = arg;

	(void)fd;
	(void)what;
	if (l->permanent || l->waiters)
		return;
	log_debug("vsock: port %u: nobody waited for %u ms; stops listening",
	          l->port, vsock_listen_linger(l->v));
	l->listening = false;
	vsock_listener_maybe_free(l);
}

static void vsock_listener_arm_expire(struct vsock_listener *l)
{
	uint64_t now = vsock_now_ms(), at;

	if (!l->count) {
		evtimer_del(l->expire);
		return;
	}
	at = l->deadline[l->head];
	loop_timer_ms(l->expire, at > now ? (unsigned)(at - now) : 0);
}

/* Take the head of the queue: its reference becomes the caller's. */
static struct chan *vsock_listener_pop(struct vsock_listener *l)
{
	struct chan *ch = l->q[l->head];

	l->head = (l->head + 1) % l->cap;
	l->count--;
	return ch;
}

static void vsock_listener_expired(evutil_socket_t fd, short what, void *arg)
{
	struct vsock_listener *l = arg;
	uint64_t now = vsock_now_ms();
	struct vsock_conn *c;
	struct chan *ch;

	(void)fd;
	(void)what;
	while (l->count && l->deadline[l->head] <= now) {
		ch = vsock_listener_pop(l);
		c = ch->be_ctx;
		log_info("vsock: port %u: %s not accepted within %u ms; %s",
		         l->port, ch->name, vsock_accept_timeout(l->v),
		         c ? "RST" : "dropped");
		if (c)
			vsock_conn_reset(c, ECONNRESET, true);
		chan_unref(ch);
	}
	vsock_listener_arm_expire(l);
	vsock_listener_maybe_free(l);
}

static struct vsock_listener *vsock_listener_get(struct vsock *v,
                                                 uint32_t port)
{
	struct vsock_listener *l = vsock_listener_find(v, port);

	if (l)
		return l;
	l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->v = v;
	l->port = port;
	l->cap = v->cfg.backlog;
	l->q = calloc(l->cap, sizeof *l->q);
	l->deadline = calloc(l->cap, sizeof *l->deadline);
	l->linger = evtimer_new(loop_base(v->loop), vsock_listener_linger_end,
	                        l);
	l->expire = evtimer_new(loop_base(v->loop), vsock_listener_expired, l);
	if (!l->q || !l->deadline || !l->linger || !l->expire) {
		if (l->linger)
			event_free(l->linger);
		if (l->expire)
			event_free(l->expire);
		free(l->deadline);
		free(l->q);
		free(l);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&v->listeners, l, link);
	return l;
}

/* The port is wanted now: it listens, and unless someone waits or it is
 * permanent, its linger time starts over. */
static void vsock_listener_wanted(struct vsock_listener *l)
{
	l->listening = true;
	if (l->permanent || l->waiters)
		evtimer_del(l->linger);
	else
		loop_timer_ms(l->linger, vsock_listen_linger(l->v));
}

void vsock_listener_flush(struct vsock_listener *l)
{
	while (l->count)
		chan_unref(vsock_listener_pop(l));
	l->head = 0;
	evtimer_del(l->expire);
}

void vsock_listeners_free(struct vsock *v)
{
	while (!TAILQ_EMPTY(&v->listeners))
		vsock_listener_free(TAILQ_FIRST(&v->listeners));
}

bool vsock_listener_can_queue(struct vsock *v, uint32_t port, char *why,
                              size_t size)
{
	struct vsock_listener *l = vsock_listener_find(v, port);

	if (!l || !l->listening) {
		snprintf(why, size, "port %u not listening", port);
		return false;
	}
	if (l->count == l->cap) {
		snprintf(why, size, "port %u backlog of %u full", port, l->cap);
		return false;
	}
	return true;
}

void vsock_listener_enqueue(struct vsock *v, uint32_t port, struct chan *ch)
{
	struct vsock_listener *l = vsock_listener_find(v, port);
	unsigned slot;

	if (!l || !l->listening || l->count == l->cap)
		return;
	chan_ref(ch);
	slot = (l->head + l->count) % l->cap;
	l->q[slot] = ch;
	l->deadline[slot] = vsock_now_ms() + vsock_accept_timeout(v);
	if (l->count++ == 0)
		vsock_listener_arm_expire(l);
	if (l->incoming_fn)
		l->incoming_fn(l->incoming_arg, port);
	else if (v->incoming_fn)
		v->incoming_fn(v->incoming_arg, port);
}

void vsock_listen(struct vsock *v, uint32_t port)
{
	struct vsock_listener *l = vsock_listener_get(v, port);

	if (!l) {
		log_warnx("vsock: listen on port %u: out of memory", port);
		return;
	}
	l->permanent = true;
	vsock_listener_wanted(l);
}

void vsock_listen_to(struct vsock *v, uint32_t port,
                     void (*fn)(void *arg, uint32_t port), void *arg)
{
	struct vsock_listener *l;

	vsock_listen(v, port);
	l = vsock_listener_find(v, port);
	if (l) {
		l->incoming_fn = fn;
		l->incoming_arg = fn ? arg : NULL;
	}
}

int vsock_accept(struct vsock *v, uint32_t port, struct chan **out)
{
	struct vsock_listener *l = vsock_listener_get(v, port);

	if (!l)
		return -ENOMEM;
	vsock_listener_wanted(l);
	if (!l->count)
		return -EAGAIN;
	*out = vsock_listener_pop(l);
	vsock_listener_arm_expire(l);
	return 0;
}

void vsock_accept_wait(struct vsock *v, uint32_t port, bool waiting)
{
	struct vsock_listener *l = vsock_listener_get(v, port);

	if (!l)
		return;
	if (waiting)
		l->waiters++;
	else if (l->waiters)
		l->waiters--;
	vsock_listener_wanted(l);
}

size_t vsock_listening(const struct vsock *v, uint32_t *ports, size_t max)
{
	const struct vsock_listener *l;
	size_t n = 0;

	TAILQ_FOREACH(l, &v->listeners, link) {
		if (!l->listening || l->incoming_fn)
			continue;
		if (n < max)
			ports[n] = l->port;
		n++;
	}
	return n;
}

void vsock_on_incoming(struct vsock *v, void (*fn)(void *arg, uint32_t port),
                       void *arg)
{
	v->incoming_fn = fn;
	v->incoming_arg = arg;
}

bool vsock_listener_fallback_ok(const struct vsock *v, uint32_t port)
{
	const struct vsock_listener *l = vsock_listener_find(v, port);

	return v->unlistened_fn && !(l && l->listening);
}

bool vsock_listener_fallback(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	int rc = v->unlistened_fn(v->unlistened_arg, c->host_port, c->chan);

	if (rc < 0) {
		vsock_conn_reset(c, -rc, true);
		return false;
	}
	return true;
}

void vsock_on_unlistened(struct vsock *v,
                         int (*fn)(void *arg, uint32_t port, struct chan *ch),
                         void *arg)
{
	v->unlistened_fn = fn;
	v->unlistened_arg = arg;
}

uint32_t vsock_chan_host_port(const struct chan *ch)
{
	const struct vsock_conn *c = ch->be_ctx;

	return c ? c->host_port : 0;
}
