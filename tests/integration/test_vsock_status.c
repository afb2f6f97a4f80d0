/*
 * MNT/status lists the device state, the guest CID, and each connection
 * with its ports, state and byte counts; the device state follows the VMM
 * (running while one is connected, not once it is gone).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vsock_harness.h"

/* The line of text naming guest port gp and host port hp as "CID:gp" and
 * "2:hp" (copied into out), or false. */
static bool conn_line(const char *text, const char *cid, uint64_t gp,
                      uint64_t hp, char *out, size_t max)
{
	char a[48], b[48];
	const char *line = text;

	snprintf(a, sizeof(a), "%s:%" PRIu64, cid, gp);
	snprintf(b, sizeof(b), "2:%" PRIu64, hp);
	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		const char *p = memmem(line, n, a, strlen(a));

		/* whole numbers: "42:7" must not match "42:70" */
		if (p && !(p[strlen(a)] >= '0' && p[strlen(a)] <= '9') &&
		    (p = memmem(line, n, b, strlen(b))) &&
		    !(p[strlen(b)] >= '0' && p[strlen(b)] <= '9')) {
			if (n >= max)
				n = max - 1;
			memcpy(out, line, n);
			out[n] = 0;
			return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

static bool has_word(const char *line, const char *w)
{
	size_t n = strlen(w);
	const char *p = line;

	while ((p = strstr(p, w))) {
		bool start = p == line || !((p[-1] >= '0' && p[-1] <= '9') ||
		                            (p[-1] >= 'a' && p[-1] <= 'z'));
		bool end = !((p[n] >= '0' && p[n] <= '9') ||
		             (p[n] >= 'a' && p[n] <= 'z'));

		if (start && end)
			return true;
		p += n;
	}
	return false;
}

static void test_status_lists_device_and_connections(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "--cid", "42", "-l", "6000", NULL };
	const char *gargs[] = { "-l", "7:echo", "-c", "6000:recv", NULL };
	static char buf[1000];
	char line[1024];
	struct vh_guest *g;
	const char *l;
	uint64_t eport, gport;
	size_t got = 0;
	unsigned i;
	char *st;
	int fd7, fdl;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	st = vh_status(h);
	assert_non_null(st);
	fprintf(stderr, "status before the VMM:\n%s", st);
	assert_true(has_word(st, "42"));
	assert_false(has_word(st, "running"));
	free(st);

	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	assert_int_equal(vh_kv_u64(g->line, "cid"), 42);

	/* host -> guest echo: 1000 bytes each way */
	fd7 = open(vh_path(h, "vsock/7"), O_RDWR | O_CLOEXEC);
	assert_true(fd7 >= 0);
	memset(buf, 'e', sizeof(buf));
	assert_int_equal(vh_write_all(fd7, buf, sizeof(buf)), sizeof(buf));
	while (got < sizeof(buf)) {
		ssize_t r = read(fd7, buf, sizeof(buf) - got);

		assert_true(r > 0);
		got += (size_t)r;
	}
	/* guest -> host: accepted, 500 bytes to the guest */
	fdl = open(vh_path(h, "vsock/listen/6000"), O_RDWR | O_CLOEXEC);
	assert_true(fdl >= 0);
	assert_int_equal(vh_write_all(fdl, buf, 500), 500);

	l = vh_guest_wait(g, "open lport=7 svc=echo", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	eport = vh_kv_u64(l, "rport");
	l = vh_guest_wait(g, "open rport=6000 svc=recv", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	gport = vh_kv_u64(l, "lport");

	/* the snapshot may predate the 500 bytes' delivery: look again */
	for (i = 0; i < 1000; i++) {
		st = vh_status(h);
		assert_non_null(st);
		if (conn_line(st, "42", gport, 6000, line, sizeof(line)) &&
		    has_word(line, "500"))
			break;
		free(st);
		st = NULL;
		usleep(10000);
	}
	assert_non_null(st);
	fprintf(stderr, "status with two connections:\n%s", st);
	assert_true(has_word(st, "running"));
	assert_true(has_word(st, "42"));
	assert_true(conn_line(st, "42", 7, eport, line, sizeof(line)));
	assert_true(has_word(line, "1000"));
	assert_true(has_word(line, "established") || has_word(line, "open"));
	assert_true(conn_line(st, "42", gport, 6000, line, sizeof(line)));
	assert_true(has_word(line, "500"));
	assert_true(has_word(line, "established") || has_word(line, "open"));
	free(st);

	close(fd7);
	close(fdl);
	vh_guest_kill(g);
	/* the disconnect reaches chanfs asynchronously */
	for (i = 0; i < 1000; i++) {
		st = vh_status(h);
		assert_non_null(st);
		if (!has_word(st, "running"))
			break;
		free(st);
		st = NULL;
		usleep(10000);
	}
	assert_non_null(st);
	fprintf(stderr, "status after the VMM died:\n%s", st);
	assert_false(has_word(st, "running"));
	free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_status_lists_device_and_connections,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
