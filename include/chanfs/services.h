/*
 * services — named services over vsock (AndroidPipe's `pipe:<name>`).
 *
 * A guest connects to one host port, the service port, and first sends a
 * connect string: `pipe:NAME` or `pipe:NAME:ARGS`, ended by a NUL.  Every
 * byte after the NUL is the stream.  The host opens `services/NAME`: each
 * open takes the oldest guest connection waiting for NAME (a directory of
 * mode CHANDIR_ACCEPT), so two guest connections to one service are two
 * host streams.  The host side of the channel is ours until an open takes
 * it; the args go with it (chan->args, NULL when none were sent).
 *
 * The rules, each broken one answered with one log line naming the
 * connection (its guest port) and what was wrong, and a reset (RST):
 *   - the connect string, NUL included, is at most SERVICES_CONNECT_MAX
 *     bytes and starts with "pipe:";
 *   - NAME is 1..SERVICES_CONNECT_MAX-6 bytes of [A-Za-z0-9._-], not "."
 *     or "..", ended by the NUL or by the first ':' (which starts ARGS);
 *   - ARGS (may be empty) are printable ASCII, 0x20..0x7e (':' included);
 *   - a connection that has not sent its whole connect string, or that no
 *     open took, within accept_timeout_ms of its arrival is reset;
 *   - at most backlog connections wait per name: one more is reset.
 * A connect string is judged as its bytes arrive: one that can no longer
 * become good (another prefix, a bad byte) is reset at once.
 * A guest that ends its connection (EOF or RST) before the NUL is dropped
 * with a log line.  Once queued, a connection waits even if the guest
 * ends it meanwhile: its data stays readable by the opener, then EOF (as
 * vsock_accept).
 *
 * The service port listens for the daemon's life (vsock_listen_to): it
 * is not listed in vsock/listen, but an open of vsock/listen/PORT would
 * race with us for the guest's connections: don't.
 *
 * Everything runs on the loop thread.
 */
#ifndef CHANFS_SERVICES_H
#define CHANFS_SERVICES_H

#include <stdint.h>

struct loop;
struct vsock;
struct chandirs;

/* The longest connect string, NUL included. */
#define SERVICES_CONNECT_MAX 256
#define SERVICES_DEFAULT_PORT 5000u

struct services_config {
	uint32_t port;              /* the service port (--service-port) */
	unsigned accept_timeout_ms; /* 0: 30000 (--accept-timeout) */
	unsigned backlog;           /* per name; 0: 16 */
};

struct services;

/* Listen on cfg->port of v (vsock_listen_to), take every guest connection
 * that arrives there and register the directory "services" in dirs.
 * NULL with errno set: EINVAL (port 0), EEXIST/ENOSPC (chandir_add),
 * ENOMEM. */
struct services *services_new(struct loop *l, struct vsock *v,
                              struct chandirs *dirs,
                              const struct services_config *cfg);
/* Reset every connection still ours (reading or waiting) and free.  The
 * directory stays registered (dirs is freed with the daemon); NULL ok. */
void services_free(struct services *s);

#endif
