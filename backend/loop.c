#include <errno.h>
#include <stdlib.h>

#include <event2/event.h>

#include "chanfs/loop.h"

struct loop {
	struct event_base *base;
	TAILQ_HEAD(, loop_task) tasks;  /* this turn's flush */
	TAILQ_HEAD(, loop_task) next;   /* the next turn's, after a poll */
	bool flushing;
	bool stop;
};

static void loop_flush(struct loop *l)
{
	struct loop_task *t;

	/* What waited for this turn goes first: it has waited longest. */
	TAILQ_CONCAT(&l->next, &l->tasks, entry);
	TAILQ_CONCAT(&l->tasks, &l->next, entry);
	TAILQ_FOREACH(t, &l->tasks, entry)
		t->next = false;
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
	TAILQ_INIT(&l->next);
	l->base = event_base_new();
	if (!l->base) {
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
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
	t->next = false;
}

void loop_defer(struct loop *l, struct loop_task *t)
{
	if (t->queued)
		return;
	t->queued = true;
	TAILQ_INSERT_TAIL(&l->tasks, t, entry);
}

void loop_defer_next(struct loop *l, struct loop_task *t)
{
	if (t->queued)
		return;
	t->queued = true;
	t->next = true;
	TAILQ_INSERT_TAIL(&l->next, t, entry);
}

void loop_cancel(struct loop *l, struct loop_task *t)
{
	if (!t->queued)
		return;
	if (t->next)
		TAILQ_REMOVE(&l->next, t, entry);
	else
		TAILQ_REMOVE(&l->tasks, t, entry);
	t->queued = false;
	t->next = false;
}

int loop_turn(struct loop *l, bool block)
{
	bool work = !TAILQ_EMPTY(&l->tasks) || !TAILQ_EMPTY(&l->next);
	int r;

	/* Poll once (never blocking while tasks wait), run every handler
	 * that is ready, then the flush.  Within EVLOOP_ONCE libevent does
	 * not poll again unless a handler re-activates an event, which
	 * nothing does: so however busy a source is, every turn reaches the
	 * flush, and every turn polls every source. */
	r = event_base_loop(l->base, EVLOOP_ONCE |
	                    (work || !block ? EVLOOP_NONBLOCK : 0));
	if (r < 0)
		return -EIO;
	if (l->stop)
		return 0;
	work = !TAILQ_EMPTY(&l->tasks) || !TAILQ_EMPTY(&l->next);
	/* 1: no event is pending at all; without tasks, nothing can ever
	 * happen again. */
	if (r == 1 && !work)
		return 1;
	loop_flush(l);
	return 0;
}

int loop_run(struct loop *l)
{
	int r;

	l->stop = false;
	do {
		r = loop_turn(l, true);
	} while (r == 0 && !l->stop);
	return r < 0 ? r : 0;
}

void loop_timer_ms(struct event *ev, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000,
	                      .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

void loop_stop(struct loop *l)
{
	l->stop = true;
	event_base_loopbreak(l->base);
}
