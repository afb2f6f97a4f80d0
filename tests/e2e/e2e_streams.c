/*
 * Streams checked byte for byte against the pattern: echo (both ways on
 * one fd), read to EOF, write to a sink that replies its digest, and all
 * of them at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e_client.h"
#include "pattern.h"
#include "sha256.h"

/* ---- echo / read / write: one stream each ---- */

struct client_writer {
	int fd;
	uint64_t bytes;
	const char *path;
	int err;
};

static void *client_writer_main(void *arg)
{
	struct client_writer *w = arg;
	char *buf = malloc(CLIENT_CHUNK);
	double t0 = client_now();
	uint64_t off = 0;
	size_t n;

	while (buf && off < w->bytes) {
		client_pace(t0, off);
		n = w->bytes - off < CLIENT_CHUNK ? (size_t)(w->bytes - off) : CLIENT_CHUNK;
		pattern_fill(buf, n, off);
		w->err = client_write_all(w->fd, buf, n);
		if (w->err) {
			client_fail("echo %s: write at %" PRIu64 ": %s", w->path,
				    off, strerror(-w->err));
			break;
		}
		off += n;
	}
	free(buf);
	return NULL;
}

/* Reads exactly bytes of the pattern (from offset 0) from fd; with
 * want_eof, then EOF.  Updates the digest when s is given. */
int client_read_pattern(int fd, const char *what, const char *path,
			       uint64_t bytes, bool want_eof, struct sha256 *s)
{
	char *buf = malloc(CLIENT_CHUNK);
	double t0 = client_now();
	uint64_t off = 0;
	size_t bad, want;
	ssize_t r;
	int rc = -1;

	if (!buf)
		return -1;
	for (;;) {
		want = CLIENT_CHUNK;
		if (!want_eof && bytes - off < want)
			want = (size_t)(bytes - off);
		if (!want_eof && !want)
			break;
		client_pace(t0, off);
		r = read(fd, buf, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			client_fail("%s %s: read at %" PRIu64 " of %" PRIu64 ": %s",
				    what, path, off, bytes, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		if (off + (uint64_t)r > bytes) {
			client_fail("%s %s: more than the %" PRIu64 " bytes expected",
				    what, path, bytes);
			goto out;
		}
		bad = pattern_check(buf, (size_t)r, off);
		if (bad != (size_t)r) {
			client_fail("%s %s: wrong byte at offset %" PRIu64, what,
				    path, off + bad);
			goto out;
		}
		if (s)
			sha256_update(s, buf, (size_t)r);
		off += (uint64_t)r;
	}
	if (off != bytes) {
		client_fail("%s %s: EOF after %" PRIu64 " of %" PRIu64 " bytes",
			    what, path, off, bytes);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

int client_echo(const char *path, uint64_t bytes)
{
	struct client_writer w = { .bytes = bytes, .path = path };
	double t0 = client_now();
	pthread_t t;
	int rc;

	w.fd = client_open(path, O_RDWR);
	if (w.fd < 0)
		return -1;
	/* One fd, both directions at once: the writer in a thread, so
	 * neither side's window can deadlock the other. */
	if (pthread_create(&t, NULL, client_writer_main, &w)) {
		client_fail("echo %s: pthread_create", path);
		close(w.fd);
		return -1;
	}
	rc = client_read_pattern(w.fd, "echo", path, bytes, false, NULL);
	pthread_join(t, NULL);
	close(w.fd);
	if (rc || w.err)
		return -1;
	client_rate("echo", path, bytes, t0, NULL);
	return 0;
}

int client_read(const char *path, uint64_t bytes)
{
	char hex[SHA256_HEX_LEN + 1];
	double t0 = client_now();
	struct sha256 s;
	int fd, rc;

	fd = client_open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	sha256_init(&s);
	rc = client_read_pattern(fd, "read", path, bytes, true, &s);
	close(fd);
	if (rc)
		return -1;
	sha256_final_hex(&s, hex);
	client_rate("read", path, bytes, t0, hex);
	return 0;
}

/* Reads one line (up to n-1 bytes, without the newline) into buf. */
int client_write(const char *path, uint64_t bytes)
{
	char *buf = malloc(CLIENT_CHUNK);
	char hex[SHA256_HEX_LEN + 1], line[SHA256_HEX_LEN + 8];
	double t0 = client_now();
	struct sha256 s;
	uint64_t off = 0;
	size_t n;
	int fd, rc = -1, err;

	if (!buf)
		return -1;
	fd = client_open(path, O_RDWR);
	if (fd < 0)
		goto out;
	sha256_init(&s);
	while (off < bytes) {
		client_pace(t0, off);
		n = bytes - off < CLIENT_CHUNK ? (size_t)(bytes - off) : CLIENT_CHUNK;
		pattern_fill(buf, n, off);
		sha256_update(&s, buf, n);
		err = client_write_all(fd, buf, n);
		if (err) {
			client_fail("write %s: at %" PRIu64 ": %s", path, off,
				    strerror(-err));
			goto out;
		}
		off += n;
	}
	sha256_final_hex(&s, hex);
	err = client_read_line(fd, line, sizeof(line));
	if (err < 0) {
		client_fail("write %s: reading the sink's digest: %s", path,
			    strerror(-err));
		goto out;
	}
	if (strcmp(line, hex)) {
		client_fail("write %s: the guest's digest '%s' is not ours %s",
			    path, line, hex);
		goto out;
	}
	client_rate("write", path, bytes, t0, hex);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* ---- parallel ---- */

static void *client_job_main(void *arg)
{
	struct client_job *j = arg;

	if (!strcmp(j->mode, "echo"))
		j->rc = client_echo(j->path, j->bytes);
	else if (!strcmp(j->mode, "read"))
		j->rc = client_read(j->path, j->bytes);
	else
		j->rc = client_write(j->path, j->bytes);
	return NULL;
}

int client_parallel(int n, char **specs)
{
	struct client_job *jobs = NULL, one;
	pthread_t *threads;
	unsigned times, njobs = 0, failed = 0, i, k;
	double t0;
	uint64_t total = 0;
	int s;

	for (s = 0; s < n; s++) {
		if (!client_parse_spec(specs[s], &one, true, &times)) {
			client_fail("parallel: bad spec '%s'", specs[s]);
			return 1;
		}
		jobs = realloc(jobs, (njobs + times) * sizeof(*jobs));
		if (!jobs)
			return 1;
		for (k = 0; k < times; k++)
			jobs[njobs++] = one;
	}
	threads = calloc(njobs, sizeof(*threads));
	if (!threads)
		return 1;
	t0 = client_now();
	for (i = 0; i < njobs; i++)
		if (pthread_create(&threads[i], NULL, client_job_main, &jobs[i])) {
			client_fail("parallel: pthread_create");
			return 1;
		}
	for (i = 0; i < njobs; i++) {
		pthread_join(threads[i], NULL);
		if (jobs[i].rc)
			failed++;
		total += jobs[i].bytes * (strcmp(jobs[i].mode, "echo") ? 1 : 2);
	}
	client_note("parallel: %u streams, %u failed, %" PRIu64
		    " bytes moved in %.2f s", njobs, failed, total, client_now() - t0);
	free(threads);
	free(jobs);
	return failed ? 1 : 0;
}

