/*
 * loop — the one libevent thread that owns all state.
 *
 * Handlers only record work: they queue a loop_task with loop_defer().  Once
 * per loop turn, after every ready event has been handled, the loop runs the
 * queued tasks in the order they were queued (the "flush" step: fill guest RX
 * buffers, answer parked requests, send poll notifications, signal used
 * rings).  A task queued while the flush runs is run in the same flush.
 */
#ifndef CHANFS_LOOP_H
#define CHANFS_LOOP_H

#include <stdbool.h>
#include <sys/queue.h>

struct event;
struct event_base;

struct loop_task {
	void (*fn)(void *arg);
	void *arg;
	bool queued;
	TAILQ_ENTRY(loop_task) entry;
};

struct loop;

/* Create the loop (an event_base with three priorities: events get the
 * default middle one, the flush the lowest, so it runs after every ready
 * handler).  Returns NULL with errno set on failure. */
struct loop *loop_new(void);
/* Free the loop.  Every event and task must have been removed first. */
void loop_free(struct loop *l);
/* The libevent base, to create events on (leave their priority alone). */
struct event_base *loop_base(struct loop *l);

/* Initialise a task that calls fn(arg) when deferred. */
void loop_task_init(struct loop_task *t, void (*fn)(void *), void *arg);
/* Queue t for this turn's flush; a no-op if it is already queued. */
void loop_defer(struct loop *l, struct loop_task *t);
/* Unqueue t if queued (call before freeing the memory t lives in). */
void loop_cancel(struct loop *l, struct loop_task *t);

/* (Re)arm the timer event ev to fire ms milliseconds from now. */
void loop_timer_ms(struct event *ev, unsigned ms);

/* Run until loop_stop().  Returns 0, or -errno if libevent failed. */
int loop_run(struct loop *l);
/* Make loop_run() return after the current turn. */
void loop_stop(struct loop *l);

#endif
