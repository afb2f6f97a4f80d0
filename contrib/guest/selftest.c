/*
 * The self-test: no vsock needed, so it runs on any build host.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "guest.h"
#include "pattern.h"
#include "sha256.h"

/* ---- selftest: known SHA-256 vectors, the pattern, every role over a
 * UNIX socket pair and over a listening UNIX socket. ---- */

static int guest_selftest_failed;

static void guest_check(bool ok, const char *what)
{
	if (!ok) {
		guest_err("selftest: FAIL %s", what);
		guest_selftest_failed = 1;
	}
}

/* Expected failures log errors; keep them out of the selftest's output. */
static int guest_quiet_stderr(void)
{
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);

	if (null >= 0) {
		dup2(null, STDERR_FILENO);
		close(null);
	}
	return saved;
}

static void guest_restore_stderr(int saved)
{
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
}

static void guest_hex_of(const void *p, size_t n, char hex[SHA256_HEX_LEN + 1])
{
	struct sha256 s;

	sha256_init(&s);
	sha256_update(&s, p, n);
	sha256_final_hex(&s, hex);
}

static void guest_selftest_sha256(void)
{
	static const struct {
		const char *msg;
		const char *hex;
	} vec[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
		{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		  "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
	};
	static char a[1000000];
	char hex[SHA256_HEX_LEN + 1], whole[SHA256_HEX_LEN + 1];
	struct sha256 s;
	size_t i, step;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		guest_hex_of(vec[i].msg, strlen(vec[i].msg), hex);
		guest_check(!strcmp(hex, vec[i].hex), "sha256 known vector");
	}
	memset(a, 'a', sizeof(a));
	guest_hex_of(a, sizeof(a), hex);
	guest_check(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
		    "sha256 of a million 'a'");
	/* Any split of the input gives the same digest. */
	pattern_fill(a, 10000, 3);
	guest_hex_of(a, 10000, whole);
	for (step = 1; step < 200; step += 7) {
		sha256_init(&s);
		for (i = 0; i < 10000; i += step)
			sha256_update(&s, a + i, 10000 - i < step ? 10000 - i : step);
		sha256_final_hex(&s, hex);
		guest_check(!strcmp(hex, whole), "sha256 in pieces");
	}
}

static void guest_selftest_pattern(void)
{
	static uint8_t whole[5000], part[5000];
	size_t off, n;

	pattern_fill(whole, sizeof(whole), 0);
	for (off = 0; off < 40; off++)
		for (n = 0; n < 100; n += 13) {
			pattern_fill(part, n, off);
			guest_check(!memcmp(part, whole + off, n),
				    "pattern slices match the whole");
		}
	guest_check(pattern_check(whole + 7, 4000, 7) == 4000,
		    "pattern_check accepts the pattern");
	whole[1234] ^= 1;
	guest_check(pattern_check(whole, sizeof(whole), 0) == 1234,
		    "pattern_check finds the first wrong byte");
	guest_check(whole[0] != whole[1] || whole[1] != whole[2],
		    "pattern is not constant");
}

static int guest_read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	ssize_t r;

	while (n) {
		r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Run one role in a child on fd (the other end is peer); returns its pid. */
static pid_t guest_selftest_spawn(int fd, int peer, const struct guest_opts *o)
{
	pid_t pid = fork();

	if (pid == 0) {
		close(peer);
		_exit(guest_serve(fd, o) ? 1 : 0);
	}
	close(fd);
	return pid;
}

static bool guest_selftest_child_ok(pid_t pid)
{
	int status;

	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

static void guest_selftest_roles(void)
{
	enum { N = 300000 };
	static char data[N], back[N];
	char hex[SHA256_HEX_LEN + 1], reply[SHA256_HEX_LEN + 2];
	struct guest_opts o = { .quiet = true };
	int sv[2], saved;
	pid_t pid, writer;
	ssize_t r;
	size_t got;

	pattern_fill(data, N, 0);
	guest_hex_of(data, N, hex);

	/* echo: what goes in comes back, while we are still writing. */
	o.role = ROLE_ECHO;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		goto fail;
	pid = guest_selftest_spawn(sv[1], sv[0], &o);
	writer = fork();
	if (writer == 0)
		_exit(guest_write_all(sv[0], data, N) ? 1 : 0);
	guest_check(guest_read_full(sv[0], back, N) == 0 && !memcmp(back, data, N),
		    "echo returns the bytes sent");
	guest_check(guest_selftest_child_ok(writer), "echo writer");
	shutdown(sv[0], SHUT_WR);
	guest_check(read(sv[0], back, 1) == 0, "echo ends with EOF after ours");
	close(sv[0]);
	guest_check(guest_selftest_child_ok(pid), "echo exits 0");

	/* sink -n: the digest of what we sent comes back. */
	o.role = ROLE_SINK;
	o.bytes = N;
	o.bytes_set = true;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		goto fail;
	pid = guest_selftest_spawn(sv[1], sv[0], &o);
	guest_check(guest_write_all(sv[0], data, N) == 0, "sink takes the data");
	guest_check(guest_read_full(sv[0], reply, SHA256_HEX_LEN + 1) == 0 &&
		    !memcmp(reply, hex, SHA256_HEX_LEN) &&
		    reply[SHA256_HEX_LEN] == '\n', "sink replies the SHA-256");
	close(sv[0]);
	guest_check(guest_selftest_child_ok(pid), "sink exits 0");

	/* sink -n with an early EOF fails. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		goto fail;
	saved = guest_quiet_stderr();
	pid = guest_selftest_spawn(sv[1], sv[0], &o);
	guest_restore_stderr(saved);
	guest_write_all(sv[0], data, 1000);
	shutdown(sv[0], SHUT_WR);
	guest_check(read(sv[0], reply, 1) == 0, "short sink sends no digest");
	close(sv[0]);
	guest_check(!guest_selftest_child_ok(pid), "short sink exits non-zero");

	/* source: exactly N pattern bytes, then EOF. */
	o.role = ROLE_SOURCE;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		goto fail;
	pid = guest_selftest_spawn(sv[1], sv[0], &o);
	got = 0;
	while (got < N && (r = read(sv[0], back + got, N - got)) > 0)
		got += (size_t)r;
	guest_check(got == N && !memcmp(back, data, N),
		    "source sends N pattern bytes");
	guest_check(read(sv[0], reply, 1) == 0, "source ends with EOF");
	close(sv[0]);
	guest_check(guest_selftest_child_ok(pid), "source exits 0");
	return;
fail:
	guest_check(false, "socketpair");
}

/* pipe: the connect string and its NUL first, then stdin to the host
 * (ended by a shutdown) and the host's bytes to stdout. */
static void guest_selftest_pipe(void)
{
	enum { N = 3000 };
	static const char hello[] = "pipe:svc:a b";
	static char data[N], got[sizeof(hello) + N + 1];
	struct guest_opts o = { .role = ROLE_PIPE, .quiet = true,
				.service = "svc:a b" };
	int sv[2], in[2], out[2];
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	pattern_fill(data, N, 0);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(in) < 0 ||
	    pipe(out) < 0) {
		guest_check(false, "socketpair/pipe");
		return;
	}
	pid = fork();
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		close(sv[0]);
		_exit(guest_serve(sv[1], &o) ? 1 : 0);
	}
	close(sv[1]);
	close(in[0]);
	close(out[1]);
	guest_check(guest_write_all(in[1], data, N) == 0, "pipe takes stdin");
	close(in[1]);
	while (len < sizeof(got) && (r = read(sv[0], got + len,
					      sizeof(got) - len)) > 0)
		len += (size_t)r;
	guest_check(len == sizeof(hello) + N && !memcmp(got, hello, sizeof(hello)) &&
		    !memcmp(got + sizeof(hello), data, N),
		    "pipe sends the connect string, its NUL, then stdin");
	guest_check(guest_write_all(sv[0], data, N) == 0, "pipe takes the host's");
	shutdown(sv[0], SHUT_WR);
	len = 0;
	while (len < sizeof(got) && (r = read(out[0], got + len,
					      sizeof(got) - len)) > 0)
		len += (size_t)r;
	guest_check(len == N && !memcmp(got, data, N),
		    "pipe copies the host's bytes to stdout, until EOF");
	close(out[0]);
	close(sv[0]);
	guest_check(guest_selftest_child_ok(pid), "pipe exits 0");
}

/* ENOTCONN with no pending error ends a read like EOF (what Linux's
 * vsock gives a reader whose own SHUT_WR came after the peer's close);
 * other errors, and ENOTCONN on what is no socket, stay errors. */
static void guest_selftest_read_ended(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), p[2];
	char c;

	guest_check(s >= 0 && read(s, &c, 1) < 0 && errno == ENOTCONN &&
		    guest_read_ended(s, ENOTCONN),
		    "ENOTCONN without a socket error is the end");
	guest_check(!guest_read_ended(s, ECONNRESET), "ECONNRESET is no end");
	if (s >= 0)
		close(s);
	if (pipe(p) < 0) {
		guest_check(false, "pipe");
		return;
	}
	guest_check(!guest_read_ended(p[0], ENOTCONN),
		    "ENOTCONN on a pipe is no end");
	close(p[0]);
	close(p[1]);
}

/* listen -1 and connect over a UNIX socket: the address paths. */
static void guest_selftest_unix(void)
{
	struct guest_opts lo = { .role = ROLE_SINK, .once = true, .quiet = true,
				 .bytes = 77777, .bytes_set = true };
	struct guest_opts co = { .role = ROLE_SOURCE, .quiet = true, .count = 1,
				 .retry_ms = 10, .bytes = 77777, .bytes_set = true };
	struct guest_opts eo = { .role = ROLE_ECHO, .quiet = true };
	char path[64], spec[80];
	struct guest_addr a;
	pid_t pid;
	int saved;

	snprintf(path, sizeof(path), "/tmp/chanfs-guest-selftest.%d", (int)getpid());
	snprintf(spec, sizeof(spec), "unix:%s", path);
	guest_check(guest_parse_addr(spec, 0, &a), "parse unix address");
	guest_check(!guest_parse_addr("unix:", 0, &a), "reject empty unix path");
	guest_check(!guest_parse_addr("2:x", 0, &a), "reject bad port");
	guest_check(guest_parse_addr("7", 2, &a) &&
		    ((struct sockaddr_vm *)&a.ss)->svm_cid == 2 &&
		    ((struct sockaddr_vm *)&a.ss)->svm_port == 7, "default CID");
	guest_parse_addr(spec, 0, &a);

	/* A one-shot sink takes a whole source that retries until it is up. */
	pid = fork();
	if (pid == 0)
		_exit(guest_listen(&a, &lo));
	guest_check(guest_connect(&a, &co) == 0, "connect source retries until up");
	guest_check(guest_selftest_child_ok(pid), "listen -1 sink gets a whole source");

	/* A connect to nobody, without retry, fails. */
	unlink(path);
	co.count = 1;
	co.retry_ms = 0;
	saved = guest_quiet_stderr();
	guest_check(guest_connect(&a, &co) != 0, "connect to nobody fails");
	guest_restore_stderr(saved);

	/* An echo listener serves three concurrent sources, each of which
	 * reads its own bytes back before EOF. */
	pid = fork();
	if (pid == 0)
		_exit(guest_listen(&a, &eo));
	co.count = 3;
	co.retry_ms = 10;
	guest_check(guest_connect(&a, &co) == 0,
		    "echo listener serves concurrent connections");
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(path);
}

int guest_selftest(void)
{
	guest_selftest_sha256();
	guest_selftest_pattern();
	guest_selftest_roles();
	guest_selftest_pipe();
	guest_selftest_read_ended();
	guest_selftest_unix();
	if (!guest_selftest_failed)
		printf("chanfs-guest: selftest passed\n");
	return guest_selftest_failed;
}

