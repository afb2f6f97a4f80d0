/*
 * Named services through a real mount: the simulated guest connects to
 * the service port (5000) and sends its connect string (first=HEX, so any
 * bytes at all), chanfs routes the stream to the opens of
 * MNT/services/NAME.  What reaches the opener, separate streams, EAGAIN
 * and waiting opens, the args as an xattr, `ls services`, the backlog,
 * and every bad connect string answered with one log line and a reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define ACCEPT_MS "1500"

static const char *const chanfs_args[] = {
	"--service-port", "5000", "--accept-timeout", ACCEPT_MS, NULL
};

/* "PORT:SVC...,first=HEX(bytes)" into buf. */
static const char *spec_first(char *buf, size_t size, const char *svc,
                              const void *first, size_t len)
{
	const unsigned char *p = first;
	size_t n = (size_t)snprintf(buf, size, "5000:%s,first=", svc);

	for (size_t i = 0; i < len && n + 3 < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%02x", p[i]);
	assert_true(n + 3 < size);
	return buf;
}

/* Bounded wait for a status line starting with want. */
static void wait_status(struct vh *h, const char *want)
{
	for (int i = 0; i < VH_TIMEOUT_MS / 10; i++) {
		char *st = vh_status(h);
		char *line = st ? strstr(st, want) : NULL;
		bool ok = line && (line == st || line[-1] == '\n');

		free(st);
		if (ok)
			return;
		usleep(10000);
	}
	fail_msg("status never showed '%s'", want);
}

static void ls_services(struct vh *h, char *out, size_t size)
{
	assert_int_equal(vh_sh(h, "ls \"$MNT/services\" | tr '\\n' ' '", out,
	                       size), 0);
}

struct stream {
	char path[256];
	int flags;
	bool echo;            /* write back what is read */
	size_t skip;          /* bytes left out of fnv */
	int err;
	uint64_t len, fnv;
	char head[8];         /* the first bytes read */
	char args[300];
	ssize_t args_len;
};

/* Open (blocking), take the args, read to EOF (echoing when asked). */
static void *stream_run(void *arg)
{
	struct stream *s = arg;
	char buf[65536];
	ssize_t r;
	int fd = open(s->path, s->flags | O_CLOEXEC);

	s->fnv = GUEST_FNV_INIT;
	if (fd < 0) {
		s->err = errno;
		return NULL;
	}
	s->args_len = fgetxattr(fd, "user.chanfs.args", s->args,
	                        sizeof s->args - 1);
	if (s->args_len >= 0)
		s->args[s->args_len] = 0;
	while ((r = read(fd, buf, sizeof buf)) > 0) {
		if (s->len < sizeof s->head)
			memcpy(s->head + s->len, buf,
			       sizeof s->head - s->len < (size_t)r ?
			       sizeof s->head - s->len : (size_t)r);
		if (s->len + (uint64_t)r > s->skip) {
			size_t from = s->len >= s->skip ? 0 :
			              (size_t)(s->skip - s->len);

			s->fnv = guest_fnv1a(s->fnv, buf + from,
			                     (size_t)r - from);
		}
		s->len += (uint64_t)r;
		if (s->echo && vh_write_all(fd, buf, (size_t)r) != r) {
			s->err = errno;
			break;
		}
	}
	if (r < 0)
		s->err = errno;
	close(fd);
	return NULL;
}

static void test_services_data_after_the_nul_reaches_the_opener(void **state)
{
	static const char hello[] = "pipe:svc:a b=c\0hello";
	struct vh *h = *state;
	char spec[256], names[256];
	const char *gargs[] = { "-l", "99:echo", "-c", NULL, NULL };
	struct stream s = { .flags = O_RDONLY, .skip = 5 };
	struct vh_guest *g;
	const char *l;
	char *st;

	assert_int_equal(vh_start_chanfs(h, chanfs_args), 0);
	gargs[3] = spec_first(spec, sizeof spec, "request=3000", hello,
	                      sizeof hello - 1);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	wait_status(h, "services/svc: 1 waiting");
	st = vh_status(h);
	assert_non_null(strstr(st, "2:5000 args=a b=c\n"));
	free(st);
	ls_services(h, names, sizeof names);
	assert_string_equal(names, "svc ");

	snprintf(s.path, sizeof s.path, "%s", vh_path(h, "services/svc"));
	stream_run(&s);
	assert_int_equal(s.err, 0);
	assert_int_equal(s.args_len, 5);
	assert_string_equal(s.args, "a b=c");
	/* the bytes after the NUL, then the service's own */
	assert_int_equal(s.len, 5 + 3000);
	assert_memory_equal(s.head, "hello", 5);
	l = vh_guest_wait(g, "conn svc=request tx=3000 status=closed", 1,
	                  VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_true(vh_kv_hex(l, "tx_fnv") == s.fnv);
	ls_services(h, names, sizeof names);
	assert_string_equal(names, "");
	assert_int_equal(vh_guest_stop(g), 0);
}

static void test_services_two_opens_get_separate_streams(void **state)
{
	static const char hello[] = "pipe:two";
	struct vh *h = *state;
	char spec[256];
	const char *gargs[] = { "-l", "99:echo", "-c", NULL, NULL };
	struct stream s[2];
	pthread_t th[2];
	struct vh_guest *g;
	unsigned i;

	assert_int_equal(vh_start_chanfs(h, chanfs_args), 0);
	gargs[3] = spec_first(spec, sizeof spec, "echo-check=200000,n=2", hello,
	                      sizeof hello);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	wait_status(h, "services/two: 2 waiting");
	memset(s, 0, sizeof s);
	for (i = 0; i < 2; i++) {
		snprintf(s[i].path, sizeof s[i].path, "%s",
		         vh_path(h, "services/two"));
		s[i].flags = O_RDWR;
		s[i].echo = true;
		assert_int_equal(pthread_create(&th[i], NULL, stream_run, &s[i]),
		                 0);
	}
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(s[i].err, 0);
		/* no args: the xattr is absent */
		assert_int_equal(s[i].args_len, -1);
		assert_int_equal(s[i].len, 200000);
	}
	/* each guest connection got its own bytes back, whole */
	assert_non_null(vh_guest_wait(g, "conn svc=echo-check check=ok", 2,
	                              VH_TIMEOUT_MS));
	assert_int_equal(vh_guest_count(g, "check=ok"), 2);
	assert_true(s[0].fnv != s[1].fnv);
	assert_int_equal(vh_guest_stop(g), 0);
}

static void test_services_open_eagain_or_waits_for_the_guest(void **state)
{
	static const char hello[] = "pipe:late";
	struct vh *h = *state;
	char spec[256];
	const char *gargs[] = { "-l", "99:echo", "-c", NULL, NULL };
	struct stream s = { .flags = O_RDONLY };
	struct vh_guest *g;
	pthread_t th;
	const char *l;
	int fd;

	assert_int_equal(vh_start_chanfs(h, chanfs_args), 0);
	fd = open(vh_path(h, "services/late"), O_RDONLY | O_NONBLOCK |
	          O_CLOEXEC);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EAGAIN);
	/* a name no guest may use is not there at all */
	fd = open(vh_path(h, "services/a:b"), O_RDONLY | O_NONBLOCK |
	          O_CLOEXEC);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ENOENT);

	snprintf(s.path, sizeof s.path, "%s", vh_path(h, "services/late"));
	assert_int_equal(pthread_create(&th, NULL, stream_run, &s), 0);
	wait_status(h, "services/late: 0 waiting, 1 openers");
	gargs[3] = spec_first(spec, sizeof spec, "send=1000", hello,
	                      sizeof hello);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(s.err, 0);
	assert_int_equal(s.len, 1000);
	l = vh_guest_wait(g, "conn svc=send tx=1000", 1, VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_true(vh_kv_hex(l, "tx_fnv") == s.fnv);
	assert_int_equal(vh_guest_stop(g), 0);
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

/* A blocking open interrupted by a signal fails with EINTR and stops
 * counting as an opener. */
static void test_services_waiting_open_interrupted_is_eintr(void **state)
{
	struct vh *h = *state;
	struct stream s = { .flags = O_RDONLY };
	struct sigaction sa;
	pthread_t th;
	char *st;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigusr1;	/* no SA_RESTART */
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
	assert_int_equal(vh_start_chanfs(h, chanfs_args), 0);
	snprintf(s.path, sizeof s.path, "%s", vh_path(h, "services/sig"));
	assert_int_equal(pthread_create(&th, NULL, stream_run, &s), 0);
	wait_status(h, "services/sig: 0 waiting, 1 openers");
	assert_int_equal(pthread_kill(th, SIGUSR1), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(s.err, EINTR);
	for (int i = 0; i < VH_TIMEOUT_MS / 10; i++) {
		bool gone;

		st = vh_status(h);
		gone = st && !strstr(st, "services/sig:");
		free(st);
		if (gone)
			break;
		usleep(10000);
	}
	st = vh_status(h);
	assert_null(strstr(st, "services/sig:"));
	free(st);
}

/* README's host side of `chanfs-guest pipe sha256:hostname`: the args
 * from the open file's attribute, the request read to its EOF, the
 * answer written back on the same fd. */
static void test_services_readme_shell_example_works(void **state)
{
	static const char hello[] = "pipe:sha256:hostname";
	static const char script[] =
		"exec 3<>\"$MNT/services/sha256\" || exit 1\n"
		"if command -v getfattr >/dev/null; then\n"
		"  getfattr --only-values -n user.chanfs.args /proc/self/fd/3\n"
		"else\n"
		"  python3 -c 'import os, sys; sys.stdout.write(os.getxattr("
		"\"/proc/self/fd/3\", \"user.chanfs.args\").decode())'\n"
		"fi\n"
		"echo\n"
		"sha256sum <&3 >&3 || exit 1\n"
		"exec 3>&-\n";
	struct vh *h = *state;
	char spec[256], out[256];
	const char *gargs[] = { "-l", "99:echo", "-c", NULL, NULL };
	struct vh_guest *g;
	const char *l;

	assert_int_equal(vh_start_chanfs(h, chanfs_args), 0);
	gargs[3] = spec_first(spec, sizeof spec, "request=1000", hello,
	                      sizeof hello);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	assert_int_equal(vh_sh(h, script, out, sizeof out), 0);
	assert_string_equal(out, "hostname\n");
	/* "<64 hex digits>  -\n" came back, then EOF */
	l = vh_guest_wait(g, "conn svc=request tx=1000 rx=68 status=closed", 1,
	                  VH_TIMEOUT_MS);
	assert_non_null(l);
	assert_int_equal(vh_guest_stop(g), 0);
}

/* Every bad connect string: the guest's connection is reset, chanfs logs
 * one line naming its guest port and what was wrong, and keeps serving. */
static void test_services_bad_connect_strings_are_reset(void **state)
{
	static const struct {
		const char *first;
		size_t len;
		const char *log;
	} bad[] = {
		{ "pipe:nobody", 12, "service \"nobody\" not opened within "
		                     ACCEPT_MS " ms" },
		{ "pipe:", 6, "empty service name" },
		{ "pipe:a/b", 9, "byte 0x2f at 1 of the service name" },
		{ "pipe:a b", 9, "byte 0x20 at 1 of the service name" },
		{ "hello", 6, "does not start with \"pipe:\"" },
		{ NULL, 0, "no connect string within " ACCEPT_MS " ms" },
		{ "long", 0, "no NUL within 256 bytes" },      /* no NUL */
		{ "name", 0, "no NUL within 256 bytes" },      /* 260-byte name */
	};
	enum { NBAD = sizeof bad / sizeof bad[0] };
	struct vh *h = *state;
	static char specs[NBAD][2048];
	const char *gargs[2 * NBAD + 3];
	char first[300], want[64];
	struct vh_guest *g;
	unsigned i, n = 0;
	char *log;

	assert_int_equal(vh_start_chanfs(h, chanfs_args), 0);
	gargs[n++] = "-l";
	gargs[n++] = "99:echo";
	for (i = 0; i < NBAD; i++) {
		size_t len = bad[i].len;

		memcpy(first, bad[i].first ? bad[i].first : "", len);
		if (bad[i].first && !strcmp(bad[i].first, "long")) {
			memcpy(first, "pipe:", 5);
			memset(first + 5, 'x', 295);
			len = 300;
		} else if (bad[i].first && !strcmp(bad[i].first, "name")) {
			memcpy(first, "pipe:", 5);
			memset(first + 5, 'n', 260);
			first[265] = 0;
			len = 266;
		}
		gargs[n++] = "-c";
		if (len)
			gargs[n++] = spec_first(specs[i], sizeof specs[i],
			                        "recv", first, len);
		else
			gargs[n++] = "5000:recv";
	}
	gargs[n] = NULL;
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	assert_non_null(vh_guest_wait(g, "conn svc=recv status=reset", NBAD,
	                              VH_TIMEOUT_MS));
	assert_int_equal(vh_guest_count(g, "conn svc=recv"), NBAD);

	log = vh_log_since(h, 0);
	assert_non_null(log);
	for (i = 0; i < NBAD; i++) {
		char *p = log;
		unsigned count = 0;

		while ((p = strstr(p, bad[i].log))) {
			count++;
			p++;
		}
		/* the two no-NUL cases log the same words */
		assert_int_equal(count, !strcmp(bad[i].log,
		                                "no NUL within 256 bytes") ?
		                        2 : 1);
	}
	/* each line names a guest port */
	for (i = 0; i < NBAD; i++) {
		const char *l = vh_guest_wait(g, "conn svc=recv status=reset",
		                              i + 1, VH_TIMEOUT_MS);

		assert_non_null(l);
		snprintf(want, sizeof want, "3:%" PRIu64 "-2:5000: ",
		         vh_kv_u64(l, "lport"));
		assert_non_null(strstr(log, want));
	}
	free(log);
	assert_int_equal(vh_guest_stop(g), 0);
	assert_true(vh_chanfs_alive(h));
}

/* --backlog 2: two connections for "full" wait; the third (made once
 * the host connects to the guest's port 99, so it comes alone) is reset
 * with one log line; the two waiting ones open. */
static void test_services_connection_beyond_the_backlog_is_reset(void **state)
{
	static const char hello[] = "pipe:full";
	static const char *const cargs[] = {
		"--service-port", "5000", "--accept-timeout", "60000",
		"--backlog", "2", NULL
	};
	struct vh *h = *state;
	char spec[2][256];
	const char *gargs[] = { "-l", "99:echo", "-c", NULL, "-c", NULL, NULL };
	struct stream s[2];
	struct vh_guest *g;
	unsigned i;
	char *log;
	int fd;

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	gargs[3] = spec_first(spec[0], sizeof spec[0], "request=1000,n=2", hello,
	                      sizeof hello);
	gargs[5] = spec_first(spec[1], sizeof spec[1], "request=1000,after=99",
	                      hello, sizeof hello);
	g = vh_start_guest(h, gargs);
	assert_non_null(g);
	wait_status(h, "services/full: 2 waiting");
	fd = open(vh_path(h, "vsock/99"), O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_non_null(vh_guest_wait(g, "conn svc=request status=reset", 1,
	                              VH_TIMEOUT_MS));
	close(fd);
	log = vh_log_since(h, 0);
	assert_non_null(strstr(log, "service \"full\" already has 2 "
	                            "connections waiting"));
	free(log);
	memset(s, 0, sizeof s);
	for (i = 0; i < 2; i++) {
		snprintf(s[i].path, sizeof s[i].path, "%s",
		         vh_path(h, "services/full"));
		s[i].flags = O_RDONLY;
		stream_run(&s[i]);
		assert_int_equal(s[i].err, 0);
		assert_int_equal(s[i].len, 1000);
	}
	assert_non_null(vh_guest_wait(g, "conn svc=request status=closed", 2,
	                              VH_TIMEOUT_MS));
	assert_int_equal(vh_guest_count(g, "conn svc=request status=reset"), 1);
	assert_int_equal(vh_guest_stop(g), 0);
}

/* --service-port 0: no services directory, and -l may take 5000. */
static void test_services_port_0_turns_them_off(void **state)
{
	static const char *const cargs[] = {
		"--service-port", "0", "-l", "5000", NULL
	};
	struct vh *h = *state;
	char out[256];

	assert_int_equal(vh_start_chanfs(h, cargs), 0);
	assert_int_equal(vh_sh(h, "ls \"$MNT\" | tr '\\n' ' '; "
	                          "ls \"$MNT/vsock/listen\"", out, sizeof out),
	                 0);
	assert_string_equal(out, "status vsock 5000\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_services_data_after_the_nul_reaches_the_opener,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_services_two_opens_get_separate_streams,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_services_open_eagain_or_waits_for_the_guest,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_services_waiting_open_interrupted_is_eintr,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_services_readme_shell_example_works,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_services_bad_connect_strings_are_reset,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_services_connection_beyond_the_backlog_is_reset,
			vh_setup, vh_teardown),
		cmocka_unit_test_setup_teardown(
			test_services_port_0_turns_them_off,
			vh_setup, vh_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
