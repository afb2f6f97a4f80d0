#include <errno.h>
#include <stdlib.h>

#include <event2/event.h>

#include "chanfs/loop.h"

struct loop {
	struct event_base *base;
	struct event *flush_ev;   /* lowest priority: runs after every handler */
	TAILQ_HEAD(, loop_task) tasks;
	bool flushing;
};

static void loop_flush(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;
	struct loop_task *t;

	(void)fd;
	(void)what;
	l->flushing = true;
	/* Tasks queued by tasks run in this same flush, in order. */
	while ((t = TAILQ_FIRST(&l->tasks)) != NULL) {
		TAILQ_REMOVE(&l->tasks, t, entry);
		t->queued = false;
		t->fn(t->arg);
	}
	l->flushing = false;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof *l);

	if (!l)
		return NULL;
	TAILQ_INIT(&l->tasks);
	l->base = event_base_new();
	if (!l->base || event_base_priority_init(l->base, 3) < 0)
		goto fail;
	l->flush_ev = event_new(l->base, -1, 0, loop_flush, l);
	if (!l->flush_ev || event_priority_set(l->flush_ev, 2) < 0)
		goto fail;
	return l;
fail:
	if (l->flush_ev)
		event_free(l->flush_ev);
	if (l->base)
		event_base_free(l->base);
	free(l);
	errno = ENOMEM;
	return NULL;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	event_free(l->flush_ev);
	event_base_free(l->base);
	free(l);
}

struct event_base *loop_base(struct loop *l)
{
	return l->base;
}

void loop_task_init(struct loop_task *t, void (*fn)(void *), void *arg)
{
	t->fn = fn;
	t->arg = arg;
	t->queued = false;
}

void loop_defer(struct loop *l, struct loop_task *t)
{
	if (t->queued)
		return;
	t->queued = true;
	TAILQ_INSERT_TAIL(&l->tasks, t, entry);
	if (!l->flushing)
		event_active(l->flush_ev, 0, 0);
}

void loop_cancel(struct loop *l, struct loop_task *t)
{
	if (!t->queued)
		return;
	TAILQ_REMOVE(&l->tasks, t, entry);
	t->queued = false;
}

int loop_run(struct loop *l)
{
	if (event_base_dispatch(l->base) < 0)
		return -EIO;
	return 0;
}

void loop_timer_ms(struct event *ev, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000,
	                      .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

void loop_stop(struct loop *l)
{
	event_base_loopbreak(l->base);
}
