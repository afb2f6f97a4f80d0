/*
 * Readiness: the poll/select client (pollclient) sees POLLIN when the
 * guest sends (also when it sends later, while the client sleeps in
 * poll), POLLOUT go away when the window is full and come back when the
 * guest's credit returns, POLLHUP when the guest closes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vsock_harness.h"

static void test_poll_and_select_see_in_out_hup(void **state)
{
	struct vh *h = *state;
	const char *gargs[] = {
		"-l", "7:echo",
		"-l", "8:slow=256",
		"-l", "9:source=100000",
		"-l", "10:source=1000,delay=300",
		NULL,
	};
	static const char *const modes[] = { "", "--select " };
	struct vh_guest *g;
	char args[256];
	unsigned i;

	assert_non_null(h->pollclient_exe);
	assert_int_equal(vh_start_chanfs(h, NULL), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	for (i = 0; i < 2; i++) {
		snprintf(args, sizeof(args), "%spollin \"$MNT/vsock/7\"",
		         modes[i]);
		assert_int_equal(vh_pollclient(h, args), 0);
		snprintf(args, sizeof(args), "%swaitin \"$MNT/vsock/10\"",
		         modes[i]);
		assert_int_equal(vh_pollclient(h, args), 0);
		snprintf(args, sizeof(args), "%spollout \"$MNT/vsock/8\"",
		         modes[i]);
		assert_int_equal(vh_pollclient(h, args), 0);
		snprintf(args, sizeof(args), "%spollhup \"$MNT/vsock/9\" 100000",
		         modes[i]);
		assert_int_equal(vh_pollclient(h, args), 0);
	}
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_poll_and_select_see_in_out_hup,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
