/*
 * Flow control, guest to host: the guest sends 256 MiB to a host reader
 * that reads slowly.  The guest is throttled by the host's credit (it
 * stalls, and never has more than the host's buf_alloc in flight; the
 * host's fwd_cnt never runs ahead of what was sent), no byte is lost, and
 * chanfs's peak RSS stays bounded by the windows.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define TOTAL (256ull << 20)
#define WINDOW (256u << 10)
#define RSS_BOUND_KB ((64u << 10) + 4 * WINDOW / 1024)
#define READ_SIZE (32u << 10)

static void test_guest_throttled_by_slow_host(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "-l", "5556", NULL };
	/* the echo listener keeps the guest up until we stop it */
	const char *gargs[] = { "-l", "99:echo", "-c", "5556:send=256M", NULL };
	static uint8_t buf[READ_SIZE];
	const struct timespec nap = { 0, 1000000 };
	uint64_t got = 0, fnv = GUEST_FNV_INIT;
	struct vh_guest *g;
	const char *l;
	ssize_t r;
	long hwm;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	fd = open(vh_path(h, "vsock/listen/5556"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	/* read nothing until the guest has run out of credit: the window
	 * is all it may have in flight */
	l = vh_guest_wait(g, "stall rport=5556", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_true(vh_kv_u64(l, "inflight") <= vh_kv_u64(l, "peer_buf_alloc"));
	assert_true(vh_kv_u64(l, "peer_buf_alloc") <= WINDOW);
	/* a slow reader: small reads with a nap between them */
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		fnv = guest_fnv1a(fnv, buf, (size_t)r);
		got += (uint64_t)r;
		nanosleep(&nap, NULL);
	}
	assert_int_equal(r, 0);
	assert_int_equal(close(fd), 0);
	assert_true(got == TOTAL);

	l = vh_guest_wait(g, "conn rport=5556 svc=send", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_true(vh_kv_u64(l, "tx") == TOTAL);
	assert_true(vh_kv_hex(l, "tx_fnv") == fnv);
	/* throttled: it ran out of credit, and credit was never above the
	 * host's window */
	fprintf(stderr, "guest: stalls=%" PRIu64 " inflight_max=%" PRIu64
	        " peer_buf_alloc=%" PRIu64 "\n", vh_kv_u64(l, "stalls"),
	        vh_kv_u64(l, "inflight_max"), vh_kv_u64(l, "peer_buf_alloc"));
	assert_true(vh_kv_u64(l, "stalls") > 0);
	assert_true(vh_kv_u64(l, "inflight_max") <= WINDOW);
	assert_true(vh_kv_u64(l, "inflight_max") <=
	            vh_kv_u64(l, "peer_buf_alloc"));

	hwm = vh_chanfs_hwm_kb(h);
	fprintf(stderr, "chanfs VmHWM %ld KiB after 256 MiB guest->host "
	        "(bound %u KiB)\n", hwm, RSS_BOUND_KB);
	assert_true(hwm > 0 && hwm < (long)RSS_BOUND_KB);
	/* exit 0: no protocol error (e.g. fwd_cnt beyond what was sent) */
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_guest_throttled_by_slow_host,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
