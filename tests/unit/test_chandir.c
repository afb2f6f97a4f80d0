/* chandir: registering directories, finding them, and waking the fs side. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "chanfs/chandir.h"

static int lookup_any(void *ctx, const char *name)
{
	(void)ctx;
	(void)name;
	return 0;
}

static int open_none(void *ctx, const char *name, struct chan **out)
{
	(void)ctx;
	(void)name;
	*out = NULL;
	return -EAGAIN;
}

static const struct chandir_ops ops = { .lookup = lookup_any,
                                        .open = open_none };

static void test_add_checks_the_path_and_refuses_a_taken_one(void **state)
{
	struct chandirs r;
	static const char *bad[] = { "", "/", "a/", "/a", "a/b/c", ".", "..",
	                             "a/..", "sp ace", "a//b", "é" };

	(void)state;
	chandirs_init(&r);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		assert_null(chandir_add(&r, bad[i], CHANDIR_CONNECT, 0, &ops,
		                        NULL));
		assert_int_equal(errno, EINVAL);
	}
	assert_non_null(chandir_add(&r, "vsock", CHANDIR_CONNECT, 0, &ops,
	                            NULL));
	assert_non_null(chandir_add(&r, "vsock/listen", CHANDIR_ACCEPT, 0,
	                            &ops, NULL));
	errno = 0;
	assert_null(chandir_add(&r, "vsock", CHANDIR_SHARED, 0, &ops, NULL));
	assert_int_equal(errno, EEXIST);
	errno = 0;
	assert_null(chandir_add(&r, "serial", CHANDIR_SHARED, 0, NULL, NULL));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(r.count, 2);
}

static void test_find_returns_what_was_added_in_order(void **state)
{
	struct chandirs r;
	struct chandir *a, *b;
	int ctx;

	(void)state;
	chandirs_init(&r);
	a = chandir_add(&r, "serial", CHANDIR_SHARED, CHANDIR_ATOMIC, &ops,
	                &ctx);
	b = chandir_add(&r, "services", CHANDIR_ACCEPT, 0, &ops, NULL);
	assert_ptr_equal(chandir_find(&r, "serial"), a);
	assert_ptr_equal(chandir_find(&r, "services"), b);
	assert_null(chandir_find(&r, "serials"));
	assert_ptr_equal(&r.dirs[0], a);
	assert_ptr_equal(a->ctx, &ctx);
	assert_int_equal(a->flags, CHANDIR_ATOMIC);
	assert_int_equal(b->mode, CHANDIR_ACCEPT);
}

static void test_add_stops_at_the_limit(void **state)
{
	struct chandirs r;
	static char names[CHANDIRS_MAX + 1][8];

	(void)state;
	chandirs_init(&r);
	for (int i = 0; i <= CHANDIRS_MAX; i++) {
		snprintf(names[i], sizeof names[i], "d%d", i);
		errno = 0;
		if (i < CHANDIRS_MAX) {
			assert_non_null(chandir_add(&r, names[i],
			                            CHANDIR_CONNECT, 0, &ops,
			                            NULL));
		} else {
			assert_null(chandir_add(&r, names[i], CHANDIR_CONNECT,
			                        0, &ops, NULL));
			assert_int_equal(errno, ENOSPC);
		}
	}
}

struct woken {
	struct chandir *d;
	char name[32];
	int calls;
};

static void on_ready(void *arg, struct chandir *d, const char *name)
{
	struct woken *w = arg;

	w->d = d;
	snprintf(w->name, sizeof w->name, "%s", name);
	w->calls++;
}

static void test_ready_reaches_the_receiver_until_it_is_removed(void **state)
{
	struct chandirs r;
	struct chandir *d;
	struct woken w = { 0 };

	(void)state;
	chandirs_init(&r);
	d = chandir_add(&r, "services", CHANDIR_ACCEPT, 0, &ops, NULL);
	chandir_ready(d, "early");	/* nobody listens yet: no-op */
	chandirs_on_ready(&r, on_ready, &w);
	chandir_ready(d, "adb");
	assert_int_equal(w.calls, 1);
	assert_ptr_equal(w.d, d);
	assert_string_equal(w.name, "adb");
	chandirs_on_ready(&r, NULL, &w);
	chandir_ready(d, "adb");
	assert_int_equal(w.calls, 1);
}

static void test_name_ok_accepts_components_only(void **state)
{
	char longest[CHANDIR_NAME_MAX + 2];

	(void)state;
	assert_true(chandir_name_ok("1234"));
	assert_true(chandir_name_ok("org.qemu.guest_agent.0"));
	assert_false(chandir_name_ok(""));
	assert_false(chandir_name_ok("."));
	assert_false(chandir_name_ok(".."));
	assert_false(chandir_name_ok("a/b"));
	memset(longest, 'x', sizeof longest);
	longest[CHANDIR_NAME_MAX] = '\0';
	assert_true(chandir_name_ok(longest));
	longest[CHANDIR_NAME_MAX] = 'x';
	longest[CHANDIR_NAME_MAX + 1] = '\0';
	assert_false(chandir_name_ok(longest));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_checks_the_path_and_refuses_a_taken_one),
		cmocka_unit_test(test_find_returns_what_was_added_in_order),
		cmocka_unit_test(test_add_stops_at_the_limit),
		cmocka_unit_test(test_ready_reaches_the_receiver_until_it_is_removed),
		cmocka_unit_test(test_name_ok_accepts_components_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
