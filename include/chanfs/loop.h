/*
 * loop — the one libevent thread that owns all state.
 *
 * Handlers only record work: they queue a loop_task with loop_defer().  A
 * loop turn polls every event source once, runs every handler that is
 * ready, then runs the queued tasks in the order they were queued (the
 * "flush" step: fill guest RX buffers, answer parked requests, send poll
 * notifications, signal used rings).  A task queued while the flush runs is
 * run in the same flush.  Every turn reaches its flush, however busy a
 * source is.
 *
 * Work that is cut into pieces (a budget per run, so one guest cannot hold
 * the loop) continues with loop_defer_next(): the rest runs in the next
 * turn's flush, after the loop has polled and served every other source.
 * Never re-activate an event from its own handler instead: libevent runs
 * it again at once, without polling, for as long as it does so.
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
	bool next;            /* queued for the next turn */
	TAILQ_ENTRY(loop_task) entry;
};

struct loop;

/* Create the loop (an event_base; the flush is a step of loop_run, not
 * an event).  Returns NULL with errno set on failure. */
struct loop *loop_new(void);
/* Free the loop.  Every event and task must have been removed first. */
void loop_free(struct loop *l);
/* The libevent base, to create events on (one priority: leave it). */
struct event_base *loop_base(struct loop *l);

/* Initialise a task that calls fn(arg) when deferred. */
void loop_task_init(struct loop_task *t, void (*fn)(void *), void *arg);
/* Queue t for this turn's flush; a no-op if it is already queued (also
 * when it waits for the next turn: it runs then). */
void loop_defer(struct loop *l, struct loop_task *t);
/* Queue t for the next turn's flush, where it runs first (before that
 * turn's own tasks), after the loop has polled every source and run every
 * ready handler; a no-op if t is already queued.  A task that keeps
 * re-queueing itself this way lets everything else run between its runs. */
void loop_defer_next(struct loop *l, struct loop_task *t);
/* Unqueue t if queued (call before freeing the memory t lives in). */
void loop_cancel(struct loop *l, struct loop_task *t);

/* (Re)arm the timer event ev to fire ms milliseconds from now. */
void loop_timer_ms(struct event *ev, unsigned ms);

/* Run one turn: poll every source (waiting until one is ready if block
 * and no task is queued), run the ready handlers, then the flush.
 * Returns 1 when nothing was pending at all (no event, no task), else 0;
 * -EIO if libevent failed.  For tests and tools that drive the loop. */
int loop_turn(struct loop *l, bool block);
/* Run turns until loop_stop(), or until no event is pending and no task
 * queued.  Returns 0, or -errno if libevent failed. */
int loop_run(struct loop *l);
/* Make loop_run() return: at once when called from a handler (the
 * turn's flush is skipped), after the flush when called from a task. */
void loop_stop(struct loop *l);

#endif
