/*
 * Streams under way when the guest side goes away (driver reset, VMM
 * killed): each must end with an error, never EOF, never a hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_client.h"
#include "pattern.h"

/* ---- broken: streams that must fail when the guest side goes away ---- */

struct client_broken {
	struct client_job job;
	int fd;
	uint64_t moved;
	int err;		/* the errno the stream ended with */
	bool eof;		/* ended with EOF (a failure) */
	bool done;
	pthread_t thread;
};

static pthread_cond_t client_cond = PTHREAD_COND_INITIALIZER;

static void client_broken_moved(struct client_broken *b, uint64_t n)
{
	pthread_mutex_lock(&client_lock);
	b->moved += n;
	pthread_cond_broadcast(&client_cond);
	pthread_mutex_unlock(&client_lock);
}

static void *client_broken_main(void *arg)
{
	struct client_broken *b = arg;
	char *buf = malloc(CLIENT_CHUNK);
	uint64_t off = 0;
	ssize_t r;
	int err;

	if (!buf)
		goto out;
	if (!strcmp(b->job.mode, "echo")) {
		/* One round trip, then an idle read that only a reset ends. */
		if ((err = client_write_all(b->fd, "ping\n", 5))) {
			b->err = -err;
			goto out;
		}
		while (off < 5) {
			r = read(b->fd, buf + off, 5 - off);
			if (r <= 0) {
				b->err = r ? errno : 0;
				b->eof = !r;
				goto out;
			}
			off += (uint64_t)r;
		}
		client_broken_moved(b, CLIENT_BROKEN_AFTER);
		r = read(b->fd, buf, CLIENT_CHUNK);
		if (r > 0)
			client_fail("broken echo %s: data from nowhere", b->job.path);
		b->err = r < 0 ? errno : 0;
		b->eof = r == 0;
	} else if (!strcmp(b->job.mode, "read")) {
		for (;;) {
			r = read(b->fd, buf, CLIENT_CHUNK);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				b->err = r ? errno : 0;
				b->eof = !r;
				break;
			}
			/* What arrives before the failure is still right. */
			if (pattern_check(buf, (size_t)r, off) != (size_t)r) {
				client_fail("broken read %s: wrong data near %" PRIu64,
					    b->job.path, off);
				break;
			}
			off += (uint64_t)r;
			client_broken_moved(b, (uint64_t)r);
		}
	} else {
		for (;;) {
			pattern_fill(buf, CLIENT_CHUNK, off);
			r = write(b->fd, buf, CLIENT_CHUNK);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				b->err = r ? errno : EIO;
				break;
			}
			off += (uint64_t)r;
			client_broken_moved(b, (uint64_t)r);
		}
	}
out:
	free(buf);
	pthread_mutex_lock(&client_lock);
	b->done = true;
	pthread_cond_broadcast(&client_cond);
	pthread_mutex_unlock(&client_lock);
	return NULL;
}

static int client_run(char **argv)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "e2e-client: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int client_broken(int n, char **specs, char **cmd)
{
	struct client_broken *b = calloc((size_t)n, sizeof(*b));
	unsigned times;
	double t0;
	int i, rc;
	bool ready;

	if (!b)
		return 1;
	for (i = 0; i < n; i++) {
		if (!client_parse_spec(specs[i], &b[i].job, false, &times)) {
			client_fail("broken: bad spec '%s'", specs[i]);
			return 1;
		}
		b[i].fd = client_open(b[i].job.path, O_RDWR);
		if (b[i].fd < 0)
			return 1;
	}
	for (i = 0; i < n; i++)
		pthread_create(&b[i].thread, NULL, client_broken_main, &b[i]);

	/* Every stream is under way (or already over, which is a failure
	 * reported below). */
	pthread_mutex_lock(&client_lock);
	for (;;) {
		ready = true;
		for (i = 0; i < n; i++)
			if (!b[i].done && b[i].moved < CLIENT_BROKEN_AFTER)
				ready = false;
		if (ready)
			break;
		pthread_cond_wait(&client_cond, &client_lock);
	}
	pthread_mutex_unlock(&client_lock);
	for (i = 0; i < n; i++)
		if (b[i].done)
			client_fail("broken %s %s: ended before the trigger (%s)",
				    b[i].job.mode, b[i].job.path,
				    b[i].eof ? "EOF" : strerror(b[i].err));

	client_note("broken: %d streams under way; running %s", n, cmd[0]);
	t0 = client_now();
	rc = client_run(cmd);
	if (rc)
		client_fail("broken: the trigger %s exited %d", cmd[0], rc);

	for (i = 0; i < n; i++) {
		pthread_join(b[i].thread, NULL);
		if (b[i].eof)
			client_fail("broken %s %s: EOF after %" PRIu64 " bytes: a cut "
				    "stream must not look like a clean end",
				    b[i].job.mode, b[i].job.path, b[i].moved);
		else if (!strcmp(b[i].job.mode, "write") ?
			 b[i].err != EPIPE && b[i].err != ECONNRESET :
			 b[i].err != ECONNRESET)
			client_fail("broken %s %s: failed with %s, not %s",
				    b[i].job.mode, b[i].job.path, strerror(b[i].err),
				    !strcmp(b[i].job.mode, "write") ?
				    "EPIPE or ECONNRESET" : "ECONNRESET");
		else
			client_note("broken %s %s: %s after %" PRIu64 " bytes, %.2f s "
				    "after the trigger", b[i].job.mode, b[i].job.path,
				    strerror(b[i].err), b[i].moved, client_now() - t0);
		/* The dead file still closes. */
		if (close(b[i].fd) < 0 && errno != ECONNRESET && errno != EPIPE)
			client_fail("broken %s: close: %s", b[i].job.path, strerror(errno));
	}
	free(b);
	return client_failed;
}

