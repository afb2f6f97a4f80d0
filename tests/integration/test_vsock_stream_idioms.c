/*
 * The ways README recommends around tools that expect seekable files:
 * bash's `read -r` takes a stream line by line without losing what follows;
 * `timeout` bounds a read that bash's `read -t` would not; Python's
 * buffered read-write open fails at once while open(path, 'r+b',
 * buffering=0) writes and reads one connection, and one-direction opens
 * ('r', 'w') work buffered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define SOURCE_BYTES 100000

static void test_readme_stream_idioms_work(void **state)
{
	struct vh *h = *state;
	const char *gargs[] = {
		"-l", "7:echo", "-l", "1235:source=100000", "-l", "1236:sink",
		NULL,
	};
	char out[4096];
	struct vh_guest *g;
	const char *l;

	assert_int_equal(vh_start_chanfs(h, NULL), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	/* three lines sent at once come back and read one by one */
	assert_int_equal(vh_sh(h, "bash -c 'exec 3<>\"$MNT/vsock/7\"; "
	                       "printf \"a\\nb\\nc\\n\" >&3; "
	                       "read -r x <&3; read -r y <&3; read -r z <&3; "
	                       "echo \"$x$y$z\"'", out, sizeof(out)), 0);
	assert_string_equal(out, "abc\n");

	/* timeout ends a read that waits for ever (status 124) */
	assert_int_equal(vh_sh(h, "timeout 1 bash -c 'exec 3<>\"$MNT/vsock/7\"; "
	                       "read -r x <&3'", NULL, 0), 124);

	/* Python: r+ fails at open; r+b unbuffered is one connection */
	assert_int_equal(vh_sh(h, "python3 -c '\n"
"import io, os, sys\n"
"p = os.environ[\"MNT\"] + \"/vsock/7\"\n"
"for mode in (\"r+\", \"r+b\"):\n"
"    try:\n"
"        open(p, mode)\n"
"        sys.exit(mode + \" opened\")\n"
"    except io.UnsupportedOperation as e:\n"
"        print(mode, e)\n"
"f = open(p, \"r+b\", buffering=0)\n"
"f.write(b\"ping\\n\")\n"
"got = b\"\"\n"
"while len(got) < 5:\n"
"    got += f.read(5 - len(got))\n"
"print(got.decode(), end=\"\")\n"
"with open(os.environ[\"MNT\"] + \"/vsock/1235\") as t:\n"
"    print(len(t.buffer.read()))\n"
"with open(os.environ[\"MNT\"] + \"/vsock/1236\", \"w\") as w:\n"
"    w.write(\"to the sink\\n\")\n"
"'", out, sizeof(out)), 0);
	fprintf(stderr, "python: %s", out);
	assert_non_null(strstr(out, "r+ File or stream is not seekable."));
	assert_non_null(strstr(out, "r+b File or stream is not seekable."));
	assert_non_null(strstr(out, "ping\n100000\n"));
	l = vh_guest_wait(g, "conn lport=1236 svc=sink", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_int_equal(vh_kv_u64(l, "rx"), 12);
	assert_true(vh_kv_hex(l, "rx_fnv") ==
	            guest_fnv1a(GUEST_FNV_INIT, "to the sink\n", 12));
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_readme_stream_idioms_work,
		                                vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
