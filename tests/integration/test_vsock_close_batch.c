/*
 * A busy guest takes the host's last data, its SHUTDOWN and its RST in one
 * batch: the data is still the guest's to read (Linux keeps it readable
 * after the RST).  The guest's echo-check connects to host port 6000,
 * sends its data and shuts down its sending side; the host reads it all,
 * and while the guest is stopped (SIGSTOP: its RX buffers are filled but
 * nobody looks) writes it back and closes.  chanfs then fills the guest's
 * RX buffers with the data, SHUTDOWN and RST; the guest continues and must
 * report every byte back (check=ok) and an orderly close.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define ECHO_BYTES (64u << 10)

/* True when the status file names no connection to guest port gport. */
static bool conn_gone(const struct vh *h, uint64_t gport)
{
	char word[48];
	char *st = vh_status(h);
	const char *p;
	bool gone = true;

	if (!st)
		return false;
	snprintf(word, sizeof(word), ":%" PRIu64, gport);
	for (p = st; (p = strstr(p, word)); p += strlen(word))
		if (p[strlen(word)] < '0' || p[strlen(word)] > '9')
			gone = false;
	free(st);
	return gone;
}

static void test_guest_reads_data_that_came_with_the_rst(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "-l", "6000", NULL };
	char conn_arg[64];
	const char *gargs[] = { "-c", conn_arg, NULL };
	static uint8_t buf[ECHO_BYTES];
	struct vh_guest *g;
	const char *l;
	uint64_t got = 0, gport;
	unsigned tries;
	ssize_t n;
	int fd, st;

	snprintf(conn_arg, sizeof(conn_arg), "6000:echo-check=%u",
	         ECHO_BYTES);
	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	fd = open(vh_path(h, "vsock/listen/6000"), O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	l = vh_guest_wait(g, "open svc=echo-check", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	gport = vh_kv_u64(l, "lport");

	/* all of it, up to the guest's SHUTDOWN(SEND) */
	while ((n = read(fd, buf + got, sizeof(buf) - got)) > 0)
		got += (uint64_t)n;
	assert_int_equal(n, 0);
	assert_int_equal(got, ECHO_BYTES);

	assert_int_equal(kill(g->pid, SIGSTOP), 0);
	assert_int_equal(waitpid(g->pid, &st, WUNTRACED), g->pid);
	assert_true(WIFSTOPPED(st));
	assert_int_equal(vh_write_all(fd, buf, sizeof(buf)), sizeof(buf));
	close(fd);
	/* chanfs forgets the connection when it queues the RST, in the
	 * same pass that puts the data, SHUTDOWN and RST in the guest's
	 * buffers (bounded wait, not a measurement) */
	for (tries = 0; !conn_gone(h, gport) && tries < 2000; tries++)
		usleep(10000);
	assert_true(conn_gone(h, gport));
	assert_int_equal(kill(g->pid, SIGCONT), 0);

	l = vh_guest_wait(g, "conn svc=echo-check", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	fprintf(stderr, "guest: %s\n", l);
	assert_int_equal(vh_kv_u64(l, "rx"), ECHO_BYTES);
	assert_non_null(strstr(l, "check=ok"));
	assert_non_null(strstr(l, "status=closed"));
	assert_int_equal(vh_guest_wait_exit(g, VH_TIMEOUT_MS), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_guest_reads_data_that_came_with_the_rst,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
