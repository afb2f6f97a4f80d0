/*
 * Connect errors: opening MNT/vsock/<port> where the guest listens on
 * nothing fails with ECONNREFUSED (the guest's RST); a guest that swallows
 * the REQUEST gives ETIMEDOUT after --connect-timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "vsock_harness.h"

static void test_connect_refused_and_timed_out(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "--connect-timeout", "1500", NULL };
	const char *gargs[] = { "-l", "7:echo", "--misbehave",
	                        "ignore-request@99", NULL };
	struct vh_guest *g;
	const char *l;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	fd = open(vh_path(h, "vsock/4321"), O_RDWR | O_CLOEXEC);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ECONNREFUSED);

	fd = open(vh_path(h, "vsock/99"), O_RDWR | O_CLOEXEC);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ETIMEDOUT);

	/* the device still works: a listening port answers */
	fd = open(vh_path(h, "vsock/7"), O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_non_null(vh_guest_wait(g, "conn lport=7 svc=echo", 1,
	                              VH_TIMEOUT_MS));

	assert_int_equal(vh_guest_stop(g), 0);
	l = vh_guest_wait(g, "done", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_true(vh_kv_u64(l, "ignored_requests") >= 1);
	assert_true(vh_kv_u64(l, "rst_sent") >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_connect_refused_and_timed_out,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
