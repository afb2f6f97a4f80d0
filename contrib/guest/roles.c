/*
 * The roles a connection plays.  Each reads and writes until its end of
 * the stream, reports one line, and closes in order: shut down our
 * sending side, then wait for the peer's EOF.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest.h"
#include "pattern.h"
#include "sha256.h"

/* ---- I/O ---- */

int guest_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A read failed with err: is it the peer's orderly end all the same?
 * Linux's vsock_shutdown() clears SOCK_DONE, so a SHUT_WR that comes
 * after the peer's close (the pipe's writer racing its reader) turns the
 * reader's EOF into ENOTCONN.  The socket's pending error tells the two
 * apart: a transport reset leaves ECONNRESET there, an orderly end
 * nothing. */
bool guest_read_ended(int fd, int err)
{
	int soerr = -1;
	socklen_t len = sizeof(soerr);

	return err == ENOTCONN &&
	       getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
	       soerr == 0;
}

/* After our last byte: shut down the sending side, then wait for the
 * peer's EOF so that the close is an orderly one on both sides. */
static void guest_finish(int fd)
{
	char buf[4096];
	ssize_t r;

	shutdown(fd, SHUT_WR);
	do {
		r = read(fd, buf, sizeof(buf));
	} while (r > 0 || (r < 0 && errno == EINTR));
}

static int guest_echo(int fd, const char *label, const struct guest_opts *o)
{
	static char buf[GUEST_CHUNK];
	uint64_t total = 0;
	ssize_t r;
	int rc;

	for (;;) {
		r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			guest_err("echo %s: read after %" PRIu64 " bytes: %s",
				  label, total, strerror(errno));
			return -1;
		}
		if (r == 0)
			break;
		rc = guest_write_all(fd, buf, (size_t)r);
		if (rc) {
			guest_err("echo %s: write after %" PRIu64 " bytes: %s",
				  label, total, strerror(-rc));
			return -1;
		}
		total += (uint64_t)r;
	}
	shutdown(fd, SHUT_WR);
	guest_say(o, "echo %s bytes %" PRIu64, label, total);
	return 0;
}

static int guest_sink(int fd, const char *label, const struct guest_opts *o)
{
	static char buf[GUEST_CHUNK];
	char hex[SHA256_HEX_LEN + 2];
	struct sha256 s;
	uint64_t total = 0, t0, ahead;
	size_t want;
	ssize_t r;
	int rc;

	sha256_init(&s);
	t0 = guest_now_ms();
	for (;;) {
		want = sizeof(buf);
		/* A slow reader: small reads, paced to the rate. */
		if (o->rate) {
			want = 4096;
			ahead = total * 1000 / o->rate;
			if (ahead > guest_now_ms() - t0)
				guest_sleep_ms((unsigned)(ahead - (guest_now_ms() - t0)));
		}
		if (o->bytes_set) {
			if (total == o->bytes)
				break;
			if (o->bytes - total < want)
				want = (size_t)(o->bytes - total);
		}
		r = read(fd, buf, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			guest_err("sink %s: read after %" PRIu64 " bytes: %s",
				  label, total, strerror(errno));
			return -1;
		}
		if (r == 0)
			break;
		sha256_update(&s, buf, (size_t)r);
		total += (uint64_t)r;
	}
	sha256_final_hex(&s, hex);
	guest_say(o, "sink %s bytes %" PRIu64 " sha256 %s", label, total, hex);
	if (o->bytes_set && total != o->bytes) {
		guest_err("sink %s: EOF after %" PRIu64 " of %" PRIu64 " bytes",
			  label, total, o->bytes);
		return -1;
	}
	if (o->bytes_set) {
		hex[SHA256_HEX_LEN] = '\n';
		rc = guest_write_all(fd, hex, SHA256_HEX_LEN + 1);
		if (rc) {
			guest_err("sink %s: sending the digest: %s", label,
				  strerror(-rc));
			return -1;
		}
	}
	guest_finish(fd);
	return 0;
}

static int guest_source(int fd, const char *label, const struct guest_opts *o)
{
	static char buf[GUEST_CHUNK];
	char hex[SHA256_HEX_LEN + 1];
	uint64_t size = o->bytes_set ? o->bytes : GUEST_DEFAULT_BYTES;
	uint64_t off = 0;
	struct sha256 s;
	size_t n;
	int rc;

	sha256_init(&s);
	while (off < size) {
		n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		pattern_fill(buf, n, off);
		sha256_update(&s, buf, n);
		rc = guest_write_all(fd, buf, n);
		if (rc) {
			guest_err("source %s: write after %" PRIu64 " bytes: %s",
				  label, off, strerror(-rc));
			return -1;
		}
		off += n;
	}
	sha256_final_hex(&s, hex);
	guest_say(o, "source %s bytes %" PRIu64 " sha256 %s", label, off, hex);
	guest_finish(fd);
	return 0;
}

static int guest_cat(int fd, const char *label, const struct guest_opts *o)
{
	static char buf[GUEST_CHUNK];
	uint64_t total = 0;
	ssize_t r;
	int rc;

	for (;;) {
		r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			guest_err("cat %s: read after %" PRIu64 " bytes: %s",
				  label, total, strerror(errno));
			return -1;
		}
		if (r == 0)
			break;
		rc = guest_write_all(STDOUT_FILENO, buf, (size_t)r);
		if (rc) {
			guest_err("cat %s: stdout: %s", label, strerror(-rc));
			return -1;
		}
		total += (uint64_t)r;
	}
	shutdown(fd, SHUT_WR);
	guest_say(o, "cat %s bytes %" PRIu64, label, total);
	return 0;
}

/* Copy from to to until from's EOF, hashing: the count, or -1 (said). */
static int64_t guest_copy(int from, int to, const char *what, char *hex)
{
	static char buf[GUEST_CHUNK];
	uint64_t total = 0;
	struct sha256 s;
	ssize_t r;
	int rc;

	sha256_init(&s);
	for (;;) {
		r = read(from, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && guest_read_ended(from, errno))
			break;
		if (r < 0) {
			guest_err("%s: read after %" PRIu64 " bytes: %s",
				  what, total, strerror(errno));
			return -1;
		}
		if (r == 0)
			break;
		sha256_update(&s, buf, (size_t)r);
		rc = guest_write_all(to, buf, (size_t)r);
		if (rc) {
			guest_err("%s: write after %" PRIu64 " bytes: %s",
				  what, total, strerror(-rc));
			return -1;
		}
		total += (uint64_t)r;
	}
	sha256_final_hex(&s, hex);
	return (int64_t)total;
}

static int guest_send(int fd, const char *label, const struct guest_opts *o)
{
	char hex[SHA256_HEX_LEN + 1], what[320];
	int64_t n;

	snprintf(what, sizeof what, "send %s: stdin", label);
	n = guest_copy(STDIN_FILENO, fd, what, hex);
	if (n < 0)
		return -1;
	guest_say(o, "send %s bytes %" PRId64 " sha256 %s", label, n, hex);
	guest_finish(fd);
	return 0;
}

/* Name the service, then relay like nc: a child copies stdin to the
 * host (so a host that answers only after reading much never waits on
 * us), we copy the host's bytes to stdout. */
static int guest_pipe(int fd, const char *label, const struct guest_opts *o)
{
	char hello[GUEST_CONNECT_MAX], hex[SHA256_HEX_LEN + 1];
	int len = snprintf(hello, sizeof(hello), "pipe:%s", o->service);
	int64_t n;
	pid_t pid;
	int rc, status;

	if (len < 0 || (size_t)len >= sizeof(hello)) {
		guest_err("pipe %s: connect string too long", o->service);
		return -1;
	}
	rc = guest_write_all(fd, hello, (size_t)len + 1);
	if (rc) {
		guest_err("pipe %s %s: %s", o->service, label, strerror(-rc));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		guest_err("pipe: fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		n = guest_copy(STDIN_FILENO, fd, "pipe: stdin to the host", hex);
		if (n >= 0) {
			shutdown(fd, SHUT_WR);
			guest_say(o, "pipe %s %s sent bytes %" PRId64 " sha256 %s",
				  o->service, label, n, hex);
		}
		_exit(n < 0);
	}
	n = guest_copy(fd, STDOUT_FILENO, "pipe: host to stdout", hex);
	if (n >= 0)
		guest_say(o, "pipe %s %s received bytes %" PRId64 " sha256 %s",
			  o->service, label, n, hex);
	else
		kill(pid, SIGTERM);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return n < 0 || !WIFEXITED(status) || WEXITSTATUS(status) ? -1 : 0;
}

int guest_serve(int fd, const struct guest_opts *o)
{
	char label[300];

	guest_conn_label(fd, label, sizeof(label));
	if (o->delay_ms)
		guest_sleep_ms(o->delay_ms);
	switch (o->role) {
	case ROLE_ECHO: return guest_echo(fd, label, o);
	case ROLE_SINK: return guest_sink(fd, label, o);
	case ROLE_SOURCE: return guest_source(fd, label, o);
	case ROLE_CAT: return guest_cat(fd, label, o);
	case ROLE_SEND: return guest_send(fd, label, o);
	case ROLE_PIPE: return guest_pipe(fd, label, o);
	}
	return -1;
}

