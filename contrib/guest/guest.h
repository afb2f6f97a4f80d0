/*
 * guest — chanfs-guest's parts: the roles a connection plays (roles.c),
 * the sockets they play on (net.c), the self-test (selftest.c) and the
 * command line (chanfs-guest.c).  Functions return 0 on success; errors
 * are reported on stderr by the function that saw them.
 */
#ifndef CHANFS_GUEST_H
#define CHANFS_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define GUEST_HOST_CID 2		/* VMADDR_CID_HOST */
#define GUEST_DEFAULT_BYTES (1024 * 1024)
#define GUEST_CONNECT_TIMEOUT_S 30	/* TCG guests on busy hosts are slow */
#define GUEST_BACKLOG 128
#define GUEST_CHUNK (64 * 1024)

enum guest_role { ROLE_ECHO, ROLE_SINK, ROLE_SOURCE, ROLE_CAT, ROLE_SEND,
		  ROLE_PIPE };
#define GUEST_NROLES 6
/* The host's service port (chanfs --service-port) and the longest
 * connect string it takes, NUL included. */
#define GUEST_SERVICE_PORT 5000
#define GUEST_CONNECT_MAX 256

extern const char *const guest_role_names[GUEST_NROLES];

struct guest_opts {
	enum guest_role role;
	uint64_t bytes;		/* -n: source size; sink: bytes before reply */
	bool bytes_set;
	bool once;		/* -1: serve one connection, then exit */
	unsigned count;		/* -c: concurrent connections (connect) */
	unsigned retry_ms;	/* -r: retry refused connects (connect) */
	unsigned delay_ms;	/* -d: wait before serving */
	uint64_t rate;		/* -R: sink: read at most this many bytes/s */
	bool quiet;		/* -q: no reports, errors only */
	bool background;	/* -b: listen: detach once listening */
	const char *service;	/* pipe: NAME[:ARGS] */
};

struct guest_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* One report line "chanfs-guest: ..." on stdout (stderr for the cat and
 * pipe roles, whose stdout is data), unless o->quiet. */
void guest_say(const struct guest_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), nonnull(2)));
/* One error line on stderr. */
void guest_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void guest_sleep_ms(unsigned ms);
/* Milliseconds on the monotonic clock. */
uint64_t guest_now_ms(void);

/* Decimal; with suffixes, K, M or G multiply by powers of 1024. */
bool guest_parse_u64(const char *s, bool suffixes, uint64_t *out);
bool guest_parse_uint(const char *s, unsigned *out);
/* "unix:PATH", "CID:PORT" or "PORT" (with default_cid). */
bool guest_parse_addr(const char *s, unsigned default_cid, struct guest_addr *a);

/* Write all n bytes, retrying short writes: 0 or -errno. */
int guest_write_all(int fd, const void *buf, size_t n);
/* Whether a read's errno err on fd is the peer's orderly end anyway. */
bool guest_read_ended(int fd, int err);
/* Play o->role on the connected socket fd (after o->delay_ms). */
int guest_serve(int fd, const struct guest_opts *o);

/* Listen on a and serve every connection in its own child (or only one,
 * in the foreground, with o->once).  Returns only on error or with
 * o->once: the exit status. */
int guest_listen(const struct guest_addr *a, const struct guest_opts *o);
/* o->count connections to a at once, each playing o->role; the exit
 * status: 0 when every one succeeded. */
int guest_connect(const struct guest_addr *a, const struct guest_opts *o);
/* "LOCAL PEER" addresses of a connected socket, for reports. */
void guest_conn_label(int fd, char *buf, size_t len);
/* Print the local vsock CID: the exit status. */
int guest_cid(void);

/* The self-test: SHA-256 vectors, the pattern, the roles over UNIX
 * sockets.  Exit status. */
int guest_selftest(void);

#endif
