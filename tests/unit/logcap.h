/*
 * logcap — capture stderr around a call, to count the log lines it wrote
 * (every rejection of outside input must log exactly one).  Include after
 * <cmocka.h>.
 */
#ifndef CHANFS_TEST_LOGCAP_H
#define CHANFS_TEST_LOGCAP_H

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

struct logcap {
	int saved, fd;
};

static inline void logcap_begin(struct logcap *c)
{
	fflush(stderr);
	c->fd = memfd_create("log", MFD_CLOEXEC);
	assert_true(c->fd >= 0);
	c->saved = dup(2);
	assert_true(c->saved >= 0);
	assert_int_equal(dup2(c->fd, 2), 2);
}

/* Stop capturing; copy what was logged into buf (NUL-terminated), echo it
 * to stderr and return the number of lines. */
static inline int logcap_end(struct logcap *c, char *buf, size_t size)
{
	ssize_t n;
	int lines = 0;
	char *p;

	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	n = pread(c->fd, buf, size - 1, 0);
	close(c->fd);
	buf[n > 0 ? n : 0] = '\0';
	for (p = buf; *p; p++)
		lines += *p == '\n';
	fputs(buf, stderr);
	return lines;
}

#endif
