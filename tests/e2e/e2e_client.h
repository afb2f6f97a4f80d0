/*
 * e2e-client's parts: common I/O and reports (e2e_client.c), streams
 * checked against the pattern (e2e_streams.c), readiness (e2e_poll.c) and
 * streams that must break (e2e_broken.c).  Commands return 0 when every
 * check passed; each failed check prints one "FAIL" line.
 */
#ifndef E2E_CLIENT_H
#define E2E_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLIENT_CHUNK (64 * 1024)
#define CLIENT_POLL_MS 120000	/* bounds a wait; never a measurement */
#define CLIENT_BROKEN_AFTER (256 * 1024)

/* Set by client_fail; guarded, with the report lines, by client_lock. */
extern int client_failed;
extern pthread_mutex_t client_lock;

struct client_job {
	char mode[16];		/* echo, read or write */
	char path[4096];
	uint64_t bytes;
	int rc;
};

void client_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void client_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
double client_now(void);
/* E2E_CLIENT_RATE (bytes per second, K/M suffixes), read once by main:
 * streams move no faster, so a test can act while they are surely still
 * under way whatever the machine's speed.  0: unlimited. */
extern uint64_t client_rate_limit;
/* Sleep until off bytes moved since t0 keep to client_rate_limit. */
void client_pace(double t0, uint64_t off);
/* "WHAT PATH: N bytes in T s (R MiB/s) [sha256 HEX]" */
void client_rate(const char *what, const char *path, uint64_t bytes, double t0,
		 const char *hex);
/* Decimal with an optional K, M or G (powers of 1024). */
bool client_parse_size(const char *s, uint64_t *out);
/* open(2), retried on EINTR; a failure is reported. */
int client_open(const char *path, int flags);
/* 0, or -errno. */
int client_write_all(int fd, const void *buf, size_t n);
void client_set_nonblock(int fd);
/* One line without its newline into buf: its length, or -errno. */
int client_read_line(int fd, char *buf, size_t n);
/* MODE:PATH[:BYTES[xN]] (BYTES only with want_bytes); N into *times. */
bool client_parse_spec(const char *spec, struct client_job *j, bool want_bytes,
		       unsigned *times);

/* e2e_streams.c */
int client_echo(const char *path, uint64_t bytes);
int client_read(const char *path, uint64_t bytes);
int client_write(const char *path, uint64_t bytes);
int client_parallel(int n, char **specs);

/* e2e_poll.c */
int client_poll_echo(const char *path);
int client_poll_eof(const char *path, uint64_t bytes);
int client_poll_write(const char *path, uint64_t bytes);
int client_epoll_echo(const char *path, unsigned rounds);

/* e2e_broken.c */
int client_broken(int n, char **specs, char **cmd);

/* e2e_qmp.c: one QMP command (stop, cont...) on the socket at path. */
int client_qmp(const char *path, const char *command);

#endif
