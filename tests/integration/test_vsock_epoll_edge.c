/*
 * Edge-triggered epoll (EPOLLET, as tokio/mio and libevent's ET mode use
 * it): a reader that drained the file to EAGAIN is woken by the next
 * arrival, round after round, and a writer that filled the window is
 * woken each time the guest makes room.  No POLL request comes between
 * the rounds, so chanfs must notify on every readiness edge, not only on
 * a mask that differs from the last one it replied.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vsock_harness.h"

static void test_epollet_sees_every_edge(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "--buf-size", "16K", NULL };
	const char *gargs[] = {
		"--buf-alloc", "16K",
		"-l", "7:echo",
		"-l", "8:slow=64",
		NULL,
	};
	struct vh_guest *g;

	assert_non_null(h->pollclient_exe);
	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	assert_int_equal(vh_pollclient(h, "epollin \"$MNT/vsock/7\" 20"), 0);
	assert_int_equal(vh_pollclient(h, "epollout \"$MNT/vsock/8\" 5"), 0);
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_epollet_sees_every_edge,
		                                vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
