/*
 * Guest → host reads answered from the guest's TX buffers: a read parked
 * on a connection takes the guest's packets in place (the status counts
 * them: "N lent to reads"), and reads of every size — one byte, odd
 * sizes, less than a packet, more than the window — still get the stream
 * whole and in order: what a read does not take goes into the window
 * before the turn ends, and the next read finds it there first.  The
 * guest's other connection (an echo) is served meanwhile.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define TOTAL (64ull << 20)

/* The "N lent to reads" count of the status file (0 if absent). */
static uint64_t read_in_place(const struct vh *h)
{
	char *st = vh_status(h);
	const char *p;
	uint64_t n = 0;

	if (!st)
		return 0;
	p = strstr(st, " lent to reads)");
	if (p) {
		while (p > st && p[-1] >= '0' && p[-1] <= '9')
			p--;
		n = strtoull(p, NULL, 10);
	}
	free(st);
	return n;
}

static void test_reads_of_every_size_get_the_stream_whole(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "-l", "5557", NULL };
	const char *gargs[] = { "-l", "99:echo", "-c", "5557:send=64M",
	                        NULL };
	static const size_t sizes[] = { 1, 7, 4096, 65536 + 3, 1u << 20,
	                                100, 65536, 300000 };
	static uint8_t buf[1u << 20];
	uint64_t got = 0, fnv = GUEST_FNV_INIT, lent;
	struct vh_guest *g;
	const char *l;
	unsigned i = 0;
	ssize_t r;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	fd = open(vh_path(h, "vsock/listen/5557"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	/* a new size every 64 reads, so each size meets packets whole and
	 * cut */
	while ((r = read(fd, buf, sizes[(i++ / 64) % 8])) > 0) {
		fnv = guest_fnv1a(fnv, buf, (size_t)r);
		got += (uint64_t)r;
	}
	assert_int_equal(r, 0);
	assert_true(got == TOTAL);
	lent = read_in_place(h);
	fprintf(stderr, "%u reads, %" PRIu64 " guest packets lent to "
	        "reads\n", i, lent);
	assert_true(lent > 0);
	assert_int_equal(close(fd), 0);
	l = vh_guest_wait(g, "conn rport=5557 svc=send", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_true(vh_kv_u64(l, "tx") == TOTAL);
	assert_true(vh_kv_hex(l, "tx_fnv") == fnv);
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_reads_of_every_size_get_the_stream_whole,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
