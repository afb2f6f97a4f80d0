/*
 * loop: deferral semantics.  Handlers record work with loop_defer; once per
 * turn, after every ready handler, the queued tasks run in queue order; a
 * task queued during that flush runs in the same flush; deferring a queued
 * task again is a no-op; loop_cancel unqueues.
 *
 * Every scenario writes what ran into a trace string and compares it with
 * the expected one; "turns" are made visible by events activated from a
 * task, which can only run in the next turn.
 *
 * Budgets: a source that is always ready does not starve the flush, and a
 * task queued with loop_defer_next runs in the next turn, after the loop
 * polled (a ready source's handler runs between its runs), before that
 * turn's own tasks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "chanfs/loop.h"

struct scene;

/* A task (lower-case letter) and a handler (upper case) that append their
 * letter to the trace, then perform their scripted action. */
struct actor {
	struct scene *sc;
	char name;
	void (*task_act)(struct actor *a);
	void (*ev_act)(struct actor *a);
	struct loop_task task;
	struct event *ev;
};

struct scene {
	struct loop *loop;
	char trace[64];
	size_t len;
	struct actor a[6];
	bool once;
	unsigned runs;
};

static void scene_note(struct scene *sc, char c)
{
	assert_true(sc->len + 1 < sizeof sc->trace);
	sc->trace[sc->len++] = c;
	sc->trace[sc->len] = '\0';
}

static void actor_run_task(void *arg)
{
	struct actor *a = arg;

	scene_note(a->sc, a->name);
	if (a->task_act)
		a->task_act(a);
}

static void actor_run_event(evutil_socket_t fd, short what, void *arg)
{
	struct actor *a = arg;

	(void)fd;
	(void)what;
	scene_note(a->sc, (char)(a->name - 'a' + 'A'));
	if (a->ev_act)
		a->ev_act(a);
}

static int scene_setup(void **state)
{
	struct scene *sc = calloc(1, sizeof *sc);

	assert_non_null(sc);
	sc->loop = loop_new();
	assert_non_null(sc->loop);
	for (int i = 0; i < 6; i++) {
		struct actor *a = &sc->a[i];

		a->sc = sc;
		a->name = (char)('a' + i);
		loop_task_init(&a->task, actor_run_task, a);
		a->ev = event_new(loop_base(sc->loop), -1, 0, actor_run_event, a);
		assert_non_null(a->ev);
	}
	*state = sc;
	return 0;
}

static int scene_teardown(void **state)
{
	struct scene *sc = *state;

	for (int i = 0; i < 6; i++) {
		loop_cancel(sc->loop, &sc->a[i].task);
		event_free(sc->a[i].ev);
	}
	loop_free(sc->loop);
	free(sc);
	return 0;
}

/* Run until nothing is active any more: no event is ever added, only
 * activated, so the loop returns once the last turn is done. */
static void scene_run(struct scene *sc)
{
	assert_int_equal(loop_run(sc->loop), 0);
}

static void defer(struct scene *sc, int i)
{
	loop_defer(sc->loop, &sc->a[i].task);
}

static void activate(struct scene *sc, int i)
{
	event_active(sc->a[i].ev, 0, 0);
}

/* -- scripted actions -- */

static void act_defer_c_b_activate_e(struct actor *a)
{
	defer(a->sc, 2);
	defer(a->sc, 1);
	activate(a->sc, 4);
}

static void act_defer_a(struct actor *a)
{
	defer(a->sc, 0);
}

static void act_defer_b_c_b(struct actor *a)
{
	defer(a->sc, 1);
	defer(a->sc, 2);
	defer(a->sc, 1);
}

static void act_defer_b_twice(struct actor *a)
{
	defer(a->sc, 1);
	defer(a->sc, 1);
}

static void act_defer_d_and_activate_e(struct actor *a)
{
	activate(a->sc, 4);
	defer(a->sc, 3);
}

static void act_activate_c_once(struct actor *a)
{
	if (a->sc->once)
		return;
	a->sc->once = true;
	activate(a->sc, 2);
}

static void act_cancel_c(struct actor *a)
{
	loop_cancel(a->sc->loop, &a->sc->a[2].task);
}

static void act_defer_b_only(struct actor *a)
{
	defer(a->sc, 1);
}

static void act_activate_f(struct actor *a)
{
	activate(a->sc, 5);
}

static void act_defer_b_and_c(struct actor *a)
{
	defer(a->sc, 1);
	defer(a->sc, 2);
}

static void loop_tasks_run_after_every_handler_in_queue_order(void **state)
{
	struct scene *sc = *state;

	/* Handler A queues c then b and makes handler E ready; handler D
	 * queues a.  E became ready after the first task was queued and
	 * still runs before any task. */
	sc->a[0].ev_act = act_defer_c_b_activate_e;
	sc->a[3].ev_act = act_defer_a;
	activate(sc, 0);
	activate(sc, 3);
	scene_run(sc);
	assert_string_equal(sc->trace, "ADEcba");
}

static void loop_task_deferred_twice_runs_once(void **state)
{
	struct scene *sc = *state;

	/* Handler A queues b, c, b; handler C queues b twice more.  b runs
	 * once, and keeps the place it was first queued in. */
	sc->a[0].ev_act = act_defer_b_c_b;
	sc->a[2].ev_act = act_defer_b_twice;
	activate(sc, 0);
	activate(sc, 2);
	scene_run(sc);
	assert_string_equal(sc->trace, "ACbc");
}

static void loop_task_queued_during_the_flush_runs_in_that_flush(void **state)
{
	struct scene *sc = *state;

	/* Task c activates handler E (next turn) and queues task d: d must
	 * run before E does. */
	sc->a[0].ev_act = act_defer_b_and_c;
	sc->a[2].task_act = act_defer_d_and_activate_e;
	activate(sc, 0);
	scene_run(sc);
	assert_string_equal(sc->trace, "AbcdE");
}

static void loop_task_runs_once_per_turn_it_is_deferred_in(void **state)
{
	struct scene *sc = *state;

	/* Turn 1: handler B queues a; task a activates handler C.
	 * Turn 2: handler C queues a again, which runs again. */
	sc->a[1].ev_act = act_defer_a;
	sc->a[0].task_act = act_activate_c_once;
	sc->a[2].ev_act = act_defer_a;
	activate(sc, 1);
	scene_run(sc);
	assert_string_equal(sc->trace, "BaCa");
}

static void loop_cancel_unqueues_a_task_before_it_runs(void **state)
{
	struct scene *sc = *state;

	/* Handler A queues b and c, task b cancels c: only b runs.  A
	 * cancelled task can be queued again. */
	sc->a[0].ev_act = act_defer_b_and_c;
	sc->a[1].task_act = act_cancel_c;
	activate(sc, 0);
	scene_run(sc);
	assert_string_equal(sc->trace, "Ab");
	assert_false(sc->a[2].task.queued);

	sc->a[1].task_act = NULL;
	defer(sc, 2);
	defer(sc, 1);
	loop_cancel(sc->loop, &sc->a[1].task);
	loop_cancel(sc->loop, &sc->a[1].task);  /* not queued: no-op */
	scene_run(sc);
	assert_string_equal(sc->trace, "Abc");
}

/* -- a source that is always ready -- */

/* A pipe that always has a byte to read (nobody reads it), its handler
 * 'P'; after `limit` calls it stops the loop, so a starved flush fails the
 * test instead of hanging it. */
struct busy {
	struct scene *sc;
	int fds[2];
	struct event *ev;
	unsigned calls, limit;
};

static void busy_ready(evutil_socket_t fd, short what, void *arg)
{
	struct busy *b = arg;

	(void)fd;
	(void)what;
	scene_note(b->sc, 'P');
	if (b->calls++ == 0)
		defer(b->sc, 0);
	if (b->calls >= b->limit) {
		event_del(b->ev);
		loop_stop(b->sc->loop);
	}
}

static void busy_start(struct scene *sc, struct busy *b, unsigned limit)
{
	b->sc = sc;
	b->limit = limit;
	assert_int_equal(pipe(b->fds), 0);
	assert_int_equal(write(b->fds[1], "x", 1), 1);
	b->ev = event_new(loop_base(sc->loop), b->fds[0], EV_READ | EV_PERSIST,
	                  busy_ready, b);
	assert_non_null(b->ev);
	assert_int_equal(event_add(b->ev, NULL), 0);
}

static void busy_end(struct busy *b)
{
	event_free(b->ev);
	close(b->fds[0]);
	close(b->fds[1]);
}

static void act_stop_busy(struct actor *a)
{
	loop_stop(a->sc->loop);
}

static void loop_always_ready_source_does_not_starve_the_flush(void **state)
{
	struct scene *sc = *state;
	struct busy b = { 0 };

	/* P queues a at its first call; a (which stops the loop) must run
	 * in that same turn, not after P has run 30 times. */
	sc->a[0].task_act = act_stop_busy;
	busy_start(sc, &b, 30);
	scene_run(sc);
	busy_end(&b);
	assert_string_equal(sc->trace, "Pa");
}

static void act_again_next_turn(struct actor *a)
{
	if (++a->sc->runs >= 3)
		return;
	loop_defer_next(a->sc->loop, &a->task);
}

static void loop_task_deferred_to_the_next_turn_lets_sources_run(void **state)
{
	struct scene *sc = *state;
	struct busy b = { 0 };

	/* a re-queues itself for the next turn twice: the always-ready
	 * source runs between its runs (with loop_defer it would run three
	 * times in the first flush). */
	sc->a[0].task_act = act_again_next_turn;
	busy_start(sc, &b, 4);
	scene_run(sc);
	busy_end(&b);
	assert_string_equal(sc->trace, "PaPaPaP");
}

static void act_next_c_defer_d(struct actor *a)
{
	loop_defer_next(a->sc->loop, &a->sc->a[2].task);
	defer(a->sc, 3);
	/* already waiting for the next turn: stays there */
	defer(a->sc, 2);
}

static void act_defer_e(struct actor *a)
{
	defer(a->sc, 4);
}

static void loop_next_turn_task_runs_first_in_the_next_flush(void **state)
{
	struct scene *sc = *state;

	/* Turn 1: A queues b; b queues c for the next turn and d for now.
	 * Turn 2: handler F (made ready by d) queues e; c runs before e. */
	sc->a[0].ev_act = act_defer_b_only;
	sc->a[1].task_act = act_next_c_defer_d;
	sc->a[3].task_act = act_activate_f;
	sc->a[5].ev_act = act_defer_e;
	activate(sc, 0);
	scene_run(sc);
	assert_string_equal(sc->trace, "AbdFce");
}

static void act_next_c_then_cancel(struct actor *a)
{
	loop_defer_next(a->sc->loop, &a->sc->a[2].task);
	loop_cancel(a->sc->loop, &a->sc->a[2].task);
	assert_false(a->sc->a[2].task.queued);
}

static void loop_cancel_unqueues_a_next_turn_task(void **state)
{
	struct scene *sc = *state;

	sc->a[0].ev_act = act_defer_b_only;
	sc->a[1].task_act = act_next_c_then_cancel;
	activate(sc, 0);
	scene_run(sc);
	assert_string_equal(sc->trace, "Ab");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(loop_tasks_run_after_every_handler_in_queue_order,
		                                scene_setup, scene_teardown),
		cmocka_unit_test_setup_teardown(loop_task_deferred_twice_runs_once,
		                                scene_setup, scene_teardown),
		cmocka_unit_test_setup_teardown(loop_task_queued_during_the_flush_runs_in_that_flush,
		                                scene_setup, scene_teardown),
		cmocka_unit_test_setup_teardown(loop_task_runs_once_per_turn_it_is_deferred_in,
		                                scene_setup, scene_teardown),
		cmocka_unit_test_setup_teardown(loop_cancel_unqueues_a_task_before_it_runs,
		                                scene_setup, scene_teardown),
		cmocka_unit_test_setup_teardown(loop_always_ready_source_does_not_starve_the_flush,
		                                scene_setup, scene_teardown),
		cmocka_unit_test_setup_teardown(loop_task_deferred_to_the_next_turn_lets_sources_run,
		                                scene_setup, scene_teardown),
		cmocka_unit_test_setup_teardown(loop_next_turn_task_runs_first_in_the_next_flush,
		                                scene_setup, scene_teardown),
		cmocka_unit_test_setup_teardown(loop_cancel_unqueues_a_next_turn_task,
		                                scene_setup, scene_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
