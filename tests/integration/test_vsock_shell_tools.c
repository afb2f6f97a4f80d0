/*
 * Shell tools on vsock files: `echo hello > MNT/vsock/1234` reaches the
 * guest's listener; `cat MNT/vsock/1234` prints what the guest sends and
 * ends when it closes; `dd` writes land whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define SOURCE_BYTES 100000

static void test_echo_cat_dd_reach_the_guest(void **state)
{
	struct vh *h = *state;
	const char *gargs[] = {
		"-l", "1234:sink,n=1",
		"-l", "1234:source=100000,n=1",
		"-l", "1234:sink,n=1",
		NULL,
	};
	static uint8_t zeros[1 << 20];
	struct vh_guest *g;
	const char *l;
	char path[160];
	uint64_t len = 0, fnv;

	assert_int_equal(vh_start_chanfs(h, NULL), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	/* echo: the guest's sink gets exactly "hello\n", then the close */
	assert_int_equal(vh_sh(h, "echo hello > \"$MNT/vsock/1234\"", NULL, 0),
	                 0);
	l = vh_guest_wait(g, "conn lport=1234 svc=sink", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_int_equal(vh_kv_u64(l, "rx"), 6);
	assert_true(vh_kv_hex(l, "rx_fnv") ==
	            guest_fnv1a(GUEST_FNV_INIT, "hello\n", 6));
	assert_non_null(strstr(l, "status=closed"));

	/* cat: prints the guest's bytes and ends when the guest closes */
	assert_int_equal(vh_sh(h, "cat \"$MNT/vsock/1234\" > \"$DIR/cat.out\"",
	                       NULL, 0), 0);
	l = vh_guest_wait(g, "conn lport=1234 svc=source", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_int_equal(vh_kv_u64(l, "tx"), SOURCE_BYTES);
	snprintf(path, sizeof(path), "%s/cat.out", h->dir);
	fnv = vh_file_fnv(path, &len);
	assert_int_equal(len, SOURCE_BYTES);
	assert_true(fnv == vh_kv_hex(l, "tx_fnv"));

	/* dd: sixteen 64 KiB writes arrive whole and in order */
	assert_int_equal(vh_sh(h, "dd if=/dev/zero of=\"$MNT/vsock/1234\" "
	                       "bs=64k count=16 2>/dev/null", NULL, 0), 0);
	l = vh_guest_wait(g, "conn lport=1234 svc=sink", 2, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_int_equal(vh_kv_u64(l, "rx"), sizeof(zeros));
	assert_true(vh_kv_hex(l, "rx_fnv") ==
	            guest_fnv1a(GUEST_FNV_INIT, zeros, sizeof(zeros)));

	/* the guest ends by itself (all listeners served), with no protocol
	 * error seen */
	assert_int_equal(vh_guest_wait_exit(g, VH_TIMEOUT_MS), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_echo_cat_dd_reach_the_guest,
		                                vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
