/*
 * e2e-client — the host side of the end-to-end tests: moves data through
 * chanfs's files (which are the real guest's connections) and checks it
 * against the pattern chanfs-guest sends and the SHA-256 digests it
 * reports.  Every check names what failed; exit status 0 only when all
 * passed.  An alarm bounds every command so that a hang is a failure, not
 * a stuck suite (E2E_CLIENT_TIMEOUT seconds, default 600).
 *
 *   e2e-client echo PATH BYTES     write BYTES of the pattern to an echo
 *                                  service while reading them back
 *   e2e-client read PATH BYTES     read to EOF: exactly BYTES of the pattern
 *   e2e-client write PATH BYTES    write BYTES of the pattern to a sink
 *                                  (-n BYTES), read back its digest line
 *   e2e-client parallel SPEC...    SPEC is echo|read|write:PATH:BYTES[xN];
 *                                  all of them at once, one thread each
 *   e2e-client poll-echo PATH      poll/select readiness with an echo service
 *   e2e-client epoll-echo PATH N   N echoes in a row, each waited for with
 *                                  edge-triggered epoll (EPOLLIN|EPOLLET)
 *   e2e-client poll-eof PATH BYTES poll readiness of data, then EOF
 *   e2e-client poll-write PATH BYTES  writability against a sink that
 *                                  starts reading late (-d)
 *   e2e-client broken SPEC... -- CMD...
 *                                  SPEC is echo|read|write:PATH; start each
 *                                  stream, run CMD once all moved data, then
 *                                  expect each file to fail: reads with
 *                                  ECONNRESET, writes with EPIPE/ECONNRESET
 *   e2e-client qmp SOCKET COMMAND  one QMP command (stop, cont) to QEMU
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "e2e_client.h"

void client_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int client_failed;
pthread_mutex_t client_lock = PTHREAD_MUTEX_INITIALIZER;

void client_fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&client_lock);
	fputs("e2e-client: FAIL ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	client_failed = 1;
	pthread_mutex_unlock(&client_lock);
}

void client_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void client_note(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&client_lock);
	fputs("e2e-client: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&client_lock);
}

double client_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t client_rate_limit;

void client_pace(double t0, uint64_t off)
{
	double due, now;

	if (!client_rate_limit)
		return;
	due = t0 + (double)off / (double)client_rate_limit;
	now = client_now();
	if (due > now)
		usleep((useconds_t)((due - now) * 1e6));
}

void client_rate(const char *what, const char *path, uint64_t bytes,
			double t0, const char *hex)
{
	double dt = client_now() - t0;

	client_note("%s %s: %" PRIu64 " bytes in %.2f s (%.2f MiB/s)%s%s", what,
		    path, bytes, dt, dt > 0 ? (double)bytes / dt / 1048576.0 : 0.0,
		    hex ? " sha256 " : "", hex ? hex : "");
}

bool client_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	switch (*end) {
	case 'K': v <<= 10; end++; break;
	case 'M': v <<= 20; end++; break;
	case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end)
		return false;
	*out = v;
	return true;
}

int client_open(const char *path, int flags)
{
	int fd;

	do {
		fd = open(path, flags);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		client_fail("open %s: %s", path, strerror(errno));
	return fd;
}

int client_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

void client_set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int client_read_line(int fd, char *buf, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got + 1 < n) {
		r = read(fd, buf + got, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		if (buf[got] == '\n')
			break;
		got++;
	}
	buf[got] = '\0';
	return (int)got;
}

bool client_parse_spec(const char *spec, struct client_job *j,
			      bool want_bytes, unsigned *times)
{
	const char *c1 = strchr(spec, ':'), *c2, *x;
	char num[64];

	memset(j, 0, sizeof(*j));
	*times = 1;
	if (!c1 || (size_t)(c1 - spec) >= sizeof(j->mode))
		return false;
	memcpy(j->mode, spec, (size_t)(c1 - spec));
	if (strcmp(j->mode, "echo") && strcmp(j->mode, "read") &&
	    strcmp(j->mode, "write"))
		return false;
	if (!want_bytes) {
		snprintf(j->path, sizeof(j->path), "%s", c1 + 1);
		return j->path[0] != '\0';
	}
	c2 = strrchr(c1 + 1, ':');
	if (!c2 || c2 == c1 + 1 || (size_t)(c2 - c1 - 1) >= sizeof(j->path))
		return false;
	memcpy(j->path, c1 + 1, (size_t)(c2 - c1 - 1));
	x = strchr(c2 + 1, 'x');
	snprintf(num, sizeof(num), "%.*s", x ? (int)(x - c2 - 1) : (int)strlen(c2 + 1),
		 c2 + 1);
	if (!client_parse_size(num, &j->bytes))
		return false;
	if (x) {
		uint64_t t;

		if (!client_parse_size(x + 1, &t) || !t || t > 4096)
			return false;
		*times = (unsigned)t;
	}
	return true;
}

/* ---- main ---- */

static void client_alarm(int sig)
{
	static const char msg[] = "e2e-client: FAIL timed out: something hangs\n";

	(void)sig;
	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

static int client_usage(void)
{
	fputs("usage: e2e-client echo|read|write PATH BYTES\n"
	      "       e2e-client parallel MODE:PATH:BYTES[xN]...\n"
	      "       e2e-client poll-echo PATH\n"
	      "       e2e-client epoll-echo PATH N\n"
	      "       e2e-client poll-eof|poll-write PATH BYTES\n"
	      "       e2e-client broken MODE:PATH... -- CMD [ARG...]\n"
	      "       e2e-client qmp SOCKET COMMAND\n", stderr);
	return 2;
}

int main(int argc, char **argv)
{
	const char *t = getenv("E2E_CLIENT_TIMEOUT");
	const char *rate = getenv("E2E_CLIENT_RATE");
	const char *cmd;
	uint64_t bytes = 0;
	int i;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, client_alarm);
	alarm(t ? (unsigned)atoi(t) : 600);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (rate && !client_parse_size(rate, &client_rate_limit)) {
		fprintf(stderr, "e2e-client: E2E_CLIENT_RATE '%s' is not a size\n",
			rate);
		return 2;
	}
	if (argc < 3)
		return client_usage();
	cmd = argv[1];
	if (!strcmp(cmd, "parallel"))
		return client_parallel(argc - 2, argv + 2);
	if (!strcmp(cmd, "broken")) {
		for (i = 2; i < argc && strcmp(argv[i], "--"); i++)
			;
		if (i == 2 || i >= argc - 1)
			return client_usage();
		argv[i] = NULL;
		return client_broken(i - 2, argv + 2, argv + i + 1);
	}
	if (!strcmp(cmd, "qmp"))
		return argc == 4 ? client_qmp(argv[2], argv[3]) : client_usage();
	if (!strcmp(cmd, "poll-echo"))
		return argc == 3 ? client_poll_echo(argv[2]) : client_usage();
	if (!strcmp(cmd, "epoll-echo"))
		return argc == 4 ? client_epoll_echo(argv[2],
		                                     (unsigned)atoi(argv[3]))
		                 : client_usage();
	if (argc != 4 || !client_parse_size(argv[3], &bytes))
		return client_usage();
	if (!strcmp(cmd, "echo"))
		return client_echo(argv[2], bytes) ? 1 : 0;
	if (!strcmp(cmd, "read"))
		return client_read(argv[2], bytes) ? 1 : 0;
	if (!strcmp(cmd, "write"))
		return client_write(argv[2], bytes) ? 1 : 0;
	if (!strcmp(cmd, "poll-eof"))
		return client_poll_eof(argv[2], bytes);
	if (!strcmp(cmd, "poll-write"))
		return client_poll_write(argv[2], bytes);
	return client_usage();
}

