/*
 * Flow control, host to guest: the host writes 256 MiB to a guest that
 * reads slowly.  Every blocking write returns its whole count (the writer
 * is parked, never failed), the guest receives every byte in order and
 * never more than its credit, and chanfs's peak RSS stays bounded by the
 * windows (it cannot have buffered the stream).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define TOTAL (256ull << 20)
#define CHUNK (1u << 20)
#define WINDOW (256u << 10)
/* generous: a daemon's own footprint plus the windows */
#define RSS_BOUND_KB ((64u << 10) + 4 * WINDOW / 1024)

static void test_host_writer_blocks_on_slow_guest(void **state)
{
	struct vh *h = *state;
	const char *gargs[] = { "-l", "8:slow=32K", NULL };
	uint64_t fnv;
	struct vh_guest *g;
	const char *l;
	long hwm;
	int fd;

	assert_int_equal(vh_start_chanfs(h, NULL), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	fd = open(vh_path(h, "vsock/8"), O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	fnv = vh_write_stream(h, fd, TOTAL, CHUNK);
	assert_true(fnv != 0);
	assert_int_equal(close(fd), 0);

	l = vh_guest_wait(g, "conn lport=8 svc=slow", 1, 10 * VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_true(vh_kv_u64(l, "rx") == TOTAL);
	assert_true(vh_kv_hex(l, "rx_fnv") == fnv);
	assert_non_null(strstr(l, "status=closed"));

	hwm = vh_chanfs_hwm_kb(h);
	fprintf(stderr, "chanfs VmHWM %ld KiB after 256 MiB host->guest "
	        "(bound %u KiB)\n", hwm, RSS_BOUND_KB);
	print_message("chanfs VmHWM %ld KiB\n", hwm);
	assert_true(hwm > 0 && hwm < (long)RSS_BOUND_KB);
	/* exit 0: the guest never saw data beyond its credit */
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_host_writer_blocks_on_slow_guest,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
