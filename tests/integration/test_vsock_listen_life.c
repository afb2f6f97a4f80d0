/*
 * Listening ports have a life: a port that listens because
 * vsock/listen/PORT was opened stops listening once no opener has waited
 * for --listen-linger (guest connects are refused again); a port an
 * opener waits on keeps listening; -l ports listen for the daemon's life;
 * a queued connection nobody accepts is reset after --accept-timeout,
 * with one log line; `ls vsock/listen` shows the ports listening now.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vsock_harness.h"

/* `ls vsock/listen`, one name per line. */
static void listing(struct vh *h, char *out, size_t max)
{
	assert_int_equal(vh_sh(h, "ls \"$MNT/vsock/listen\"", out, max), 0);
}

struct opener {
	const char *path;
	int fd, err;
	char buf[16];
	ssize_t got;
};

/* A blocking accept that waits for the guest, then reads what it sent. */
static void *opener(void *arg)
{
	struct opener *o = arg;

	o->fd = open(o->path, O_RDONLY | O_CLOEXEC);
	if (o->fd < 0) {
		o->err = errno;
		return NULL;
	}
	o->got = read(o->fd, o->buf, sizeof(o->buf));
	return NULL;
}

static void test_ports_listen_while_wanted(void **state)
{
	struct vh *h = *state;
	const char *cargs[] = { "-l", "6000", "--listen-linger", "300",
	                        "--accept-timeout", "500", NULL };
	const char *gargs[] = {
		"-l", "99:echo",
		"-c", "6001:send=5",     /* the port stopped listening */
		"-c", "6000:recv",       /* queued, never accepted */
		"-c", "6002:send=5",     /* the waiting opener takes it */
		NULL,
	};
	struct opener o = { 0 };
	struct vh_guest *g;
	pthread_t t;
	char out[256], path[160];
	const char *l;
	char *log;
	int fd, i;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	listing(h, out, sizeof(out));
	assert_string_equal(out, "6000\n");

	/* An open that finds nobody makes the port listen, for a while. */
	fd = open(vh_path(h, "vsock/listen/6001"), O_RDONLY | O_NONBLOCK);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EAGAIN);
	listing(h, out, sizeof(out));
	assert_non_null(strstr(out, "6001\n"));

	snprintf(path, sizeof(path), "%s", vh_path(h, "vsock/listen/6002"));
	o.path = path;
	assert_int_equal(pthread_create(&t, NULL, opener, &o), 0);

	/* Nobody waits on 6001 any more: it stops listening. */
	for (i = 0; i < VH_TIMEOUT_MS / 50; i++) {
		listing(h, out, sizeof(out));
		if (!strstr(out, "6001\n"))
			break;
		usleep(50 * 1000);
	}
	fprintf(stderr, "ls vsock/listen:\n%s", out);
	assert_null(strstr(out, "6001\n"));
	/* -l and a waiting opener keep theirs. */
	assert_non_null(strstr(out, "6000\n"));
	assert_non_null(strstr(out, "6002\n"));

	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	l = vh_guest_wait(g, "conn rport=6001", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_non_null(strstr(l, "status=refused"));
	l = vh_guest_wait(g, "conn rport=6000", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_non_null(strstr(l, "status=reset"));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(o.fd >= 0);
	assert_int_equal(o.got, 5);
	close(o.fd);

	log = vh_log_since(h, 0);
	assert_non_null(log);
	assert_non_null(strstr(log, "not accepted within 500 ms"));
	free(log);
	assert_int_equal(vh_guest_stop(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ports_listen_while_wanted,
		                                vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
