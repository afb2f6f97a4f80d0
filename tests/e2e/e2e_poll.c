/*
 * Readiness: poll and select on the files against the real guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

#include "e2e_client.h"
#include "pattern.h"
#include "sha256.h"

/* ---- poll ---- */

static short client_poll(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&p, 1, ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		client_fail("poll: %s", strerror(errno));
		return 0;
	}
	return r ? p.revents : 0;
}

/* Read exactly n bytes from the non-blocking fd, waiting with poll. */
static int client_poll_read(int fd, char *buf, size_t n, const char *what)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		if (!(client_poll(fd, POLLIN, CLIENT_POLL_MS) & (POLLIN | POLLHUP | POLLERR))) {
			client_fail("%s: poll never reported POLLIN (%zu of %zu bytes)",
				    what, got, n);
			return -1;
		}
		r = read(fd, buf + got, n - got);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0) {
			client_fail("%s: read after POLLIN: %s", what,
				    r ? strerror(errno) : "EOF");
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

int client_poll_echo(const char *path)
{
	static const char msg1[] = "ping over poll\n", msg2[] = "ping over select\n";
	char buf[64];
	struct timeval tv = { CLIENT_POLL_MS / 1000, 0 };
	fd_set rfds;
	short ev;
	int fd, r;

	fd = client_open(path, O_RDWR);
	if (fd < 0)
		return 1;
	client_set_nonblock(fd);

	/* A fresh connection to an echo service: writable, nothing to read. */
	ev = client_poll(fd, POLLIN | POLLOUT, 0);
	if (!(ev & POLLOUT))
		client_fail("poll-echo: a fresh connection is not POLLOUT (revents %#x)", ev);
	if (ev & POLLIN)
		client_fail("poll-echo: POLLIN before the guest sent anything (revents %#x)", ev);
	if (read(fd, buf, sizeof(buf)) != -1 || errno != EAGAIN)
		client_fail("poll-echo: an empty non-blocking read is not EAGAIN");

	/* The guest's answer makes the file readable. */
	if (client_write_all(fd, msg1, strlen(msg1)))
		client_fail("poll-echo: write: %s", strerror(errno));
	if (!client_poll_read(fd, buf, strlen(msg1), "poll-echo") &&
	    memcmp(buf, msg1, strlen(msg1)))
		client_fail("poll-echo: the echo differs from what was sent");
	ev = client_poll(fd, POLLIN, 0);
	if (ev & POLLIN)
		client_fail("poll-echo: still POLLIN after reading everything (revents %#x)", ev);

	/* select() sees the same readiness. */
	if (client_write_all(fd, msg2, strlen(msg2)))
		client_fail("poll-echo: write: %s", strerror(errno));
	FD_ZERO(&rfds);
	FD_SET(fd, &rfds);
	do {
		r = select(fd + 1, &rfds, NULL, NULL, &tv);
	} while (r < 0 && errno == EINTR);
	if (r != 1 || !FD_ISSET(fd, &rfds))
		client_fail("poll-echo: select never reported the echo readable");
	else if (!client_poll_read(fd, buf, strlen(msg2), "poll-echo (select)") &&
		 memcmp(buf, msg2, strlen(msg2)))
		client_fail("poll-echo: the second echo differs");
	close(fd);
	if (!client_failed)
		client_note("poll-echo %s: POLLOUT at once, POLLIN only with data, select agrees", path);
	return client_failed;
}

/* ---- edge-triggered epoll ---- */

/* Each round writes a line to the guest's echo, then reads until it has
 * the line back, waiting with EPOLLET whenever a read says EAGAIN: the
 * reader drained the file, so only a fresh edge can wake it. */
int client_epoll_echo(const char *path, unsigned rounds)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	char line[32], buf[64];
	size_t len, got;
	unsigned i;
	ssize_t r;
	int fd, ep, n;

	fd = client_open(path, O_RDWR);
	if (fd < 0)
		return 1;
	client_set_nonblock(fd);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		client_fail("epoll-echo: epoll: %s", strerror(errno));
		return 1;
	}
	for (i = 0; i < rounds && !client_failed; i++) {
		len = (size_t)snprintf(line, sizeof(line), "edge %u\n", i);
		if (client_write_all(fd, line, len)) {
			client_fail("epoll-echo: write: %s", strerror(errno));
			break;
		}
		for (got = 0; got < len;) {
			r = read(fd, buf + got, sizeof(buf) - got);
			if (r > 0) {
				got += (size_t)r;
				continue;
			}
			if (r == 0 || errno != EAGAIN) {
				client_fail("epoll-echo: round %u: read: %s", i,
					    r ? strerror(errno) : "EOF");
				break;
			}
			do {
				n = epoll_wait(ep, &ev, 1, CLIENT_POLL_MS / 4);
			} while (n < 0 && errno == EINTR);
			if (n != 1) {
				client_fail("epoll-echo: round %u: no EPOLLIN edge "
					    "for the echo (%zu of %zu bytes)", i,
					    got, len);
				break;
			}
		}
		if (!client_failed && memcmp(buf, line, len))
			client_fail("epoll-echo: round %u: the echo differs", i);
	}
	close(ep);
	close(fd);
	if (!client_failed)
		client_note("epoll-echo %s: %u echoes, each woken by an "
			    "EPOLLET edge", path, rounds);
	return client_failed;
}

int client_poll_eof(const char *path, uint64_t bytes)
{
	char *buf = malloc(CLIENT_CHUNK);
	uint64_t off = 0;
	short ev;
	ssize_t r;
	int fd;

	fd = buf ? client_open(path, O_RDONLY) : -1;
	if (fd < 0)
		return 1;
	client_set_nonblock(fd);
	for (;;) {
		ev = client_poll(fd, POLLIN, CLIENT_POLL_MS);
		if (!(ev & (POLLIN | POLLHUP))) {
			client_fail("poll-eof: no POLLIN after %" PRIu64 " bytes (revents %#x)",
				    off, ev);
			break;
		}
		r = read(fd, buf, CLIENT_CHUNK);
		if (r < 0 && errno == EAGAIN) {
			client_fail("poll-eof: POLLIN but read says EAGAIN at %" PRIu64, off);
			break;
		}
		if (r < 0) {
			client_fail("poll-eof: read: %s", strerror(errno));
			break;
		}
		if (r == 0)
			break;
		if (pattern_check(buf, (size_t)r, off) != (size_t)r) {
			client_fail("poll-eof: wrong data near %" PRIu64, off);
			break;
		}
		off += (uint64_t)r;
	}
	if (!client_failed && off != bytes)
		client_fail("poll-eof: EOF after %" PRIu64 " of %" PRIu64 " bytes", off, bytes);
	/* EOF stays readable. */
	if (!client_failed && !(client_poll(fd, POLLIN, 0) & (POLLIN | POLLHUP)))
		client_fail("poll-eof: EOF is not readable on a second poll");
	close(fd);
	free(buf);
	if (!client_failed)
		client_note("poll-eof %s: %" PRIu64 " bytes, each read after POLLIN, then EOF",
			    path, bytes);
	return client_failed;
}

int client_poll_write(const char *path, uint64_t bytes)
{
	char *buf = malloc(CLIENT_CHUNK);
	char hex[SHA256_HEX_LEN + 1], line[SHA256_HEX_LEN + 2];
	struct sha256 s;
	uint64_t off = 0, at_eagain = 0;
	bool blocked = false;
	size_t n;
	ssize_t w;
	short ev;
	int fd;

	fd = buf ? client_open(path, O_RDWR) : -1;
	if (fd < 0)
		return 1;
	client_set_nonblock(fd);
	sha256_init(&s);
	if (!(client_poll(fd, POLLOUT, 0) & POLLOUT))
		client_fail("poll-write: a fresh connection is not POLLOUT");
	while (!client_failed && off < bytes) {
		n = bytes - off < CLIENT_CHUNK ? (size_t)(bytes - off) : CLIENT_CHUNK;
		pattern_fill(buf, n, off);
		w = write(fd, buf, n);
		if (w < 0 && errno == EAGAIN) {
			if (!blocked) {
				/* The guest has not started reading: every
				 * window is full, and stays so for now. */
				blocked = true;
				at_eagain = off;
				ev = client_poll(fd, POLLOUT, 0);
				if (ev & POLLOUT)
					client_fail("poll-write: POLLOUT right after EAGAIN "
						    "(revents %#x, %" PRIu64 " bytes in)", ev, off);
			}
			ev = client_poll(fd, POLLOUT, CLIENT_POLL_MS);
			if (!(ev & POLLOUT))
				client_fail("poll-write: never POLLOUT again after %" PRIu64
					    " bytes (revents %#x)", off, ev);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			client_fail("poll-write: write at %" PRIu64 ": %s", off,
				    w ? strerror(errno) : "returned 0");
			break;
		}
		sha256_update(&s, buf, (size_t)w);
		off += (uint64_t)w;
	}
	if (!client_failed && !blocked)
		client_fail("poll-write: %" PRIu64 " bytes went in without EAGAIN: "
			    "no backpressure from a guest that was not reading", bytes);
	if (!client_failed) {
		sha256_final_hex(&s, hex);
		if (client_poll_read(fd, line, SHA256_HEX_LEN + 1, "poll-write digest") == 0 &&
		    (memcmp(line, hex, SHA256_HEX_LEN) || line[SHA256_HEX_LEN] != '\n'))
			client_fail("poll-write: the guest's digest differs from ours %s", hex);
	}
	close(fd);
	free(buf);
	if (!client_failed)
		client_note("poll-write %s: EAGAIN after %" PRIu64 " bytes, not POLLOUT "
			    "until the guest read, then all %" PRIu64 " bytes, digests equal",
			    path, at_eagain, bytes);
	return client_failed;
}

