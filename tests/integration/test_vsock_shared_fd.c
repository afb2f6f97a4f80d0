/*
 * One fd, two directions: `exec 3<>MNT/vsock/7` against the guest's echo
 * service, a background writer and a foreground reader on the same fd
 * move 64 MiB each way with matching checksums and no deadlock.
 */
#include <fcntl.h>
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

#define BYTES (64u << 20)

static uint64_t write_data(const char *path, uint64_t seed)
{
	static uint8_t buf[1 << 20];
	uint64_t fnv = GUEST_FNV_INIT, off;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	for (off = 0; off < BYTES; off += sizeof(buf)) {
		guest_data_fill(seed, off, buf, sizeof(buf));
		fnv = guest_fnv1a(fnv, buf, sizeof(buf));
		assert_int_equal(vh_write_all(fd, buf, sizeof(buf)),
		                 sizeof(buf));
	}
	close(fd);
	return fnv;
}

static void test_one_fd_reads_and_writes_concurrently(void **state)
{
	struct vh *h = *state;
	const char *gargs[] = { "-l", "7:echo", NULL };
	struct vh_guest *g;
	const char *l;
	char data[160], back[160];
	uint64_t fnv, len = 0;

	snprintf(data, sizeof(data), "%s/data", h->dir);
	snprintf(back, sizeof(back), "%s/back", h->dir);
	fnv = write_data(data, h->seed);
	assert_int_equal(vh_start_chanfs(h, NULL), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);

	assert_int_equal(vh_sh(h,
		"set -e\n"
		"exec 3<>\"$MNT/vsock/7\"\n"
		"cat \"$DIR/data\" >&3 &\n"
		"w=$!\n"
		"head -c 67108864 <&3 > \"$DIR/back\"\n"
		"wait $w\n"
		"exec 3>&-\n", NULL, 0), 0);
	assert_true(vh_file_fnv(back, &len) == fnv);
	assert_int_equal(len, BYTES);

	l = vh_guest_wait(g, "conn lport=7 svc=echo", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_int_equal(vh_kv_u64(l, "rx"), BYTES);
	assert_int_equal(vh_kv_u64(l, "tx"), BYTES);
	assert_true(vh_kv_hex(l, "rx_fnv") == fnv);
	assert_non_null(strstr(l, "status=closed"));
	assert_int_equal(vh_guest_stop(g), 0);
	unlink(data);
	unlink(back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_one_fd_reads_and_writes_concurrently,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
