/*
 * serial — named ports that every host open shares (`serial/<name>`).
 *
 * This module owns the port table and the `serial` channel directory
 * (chandir.h: CHANDIR_SHARED | CHANDIR_ATOMIC); transports move the bytes
 * between a port's channel and the guest: the chardev socket of a QEMU
 * virtserialport (serial_sock.c), or a port of chanfs's own vhost-user
 * virtio-console device (console.c).
 *
 * A port's channel is OPEN for the daemon's life, whether or not its
 * transport is up: host writes queue in to_guest (bounded by the window,
 * then writers block or get EAGAIN), host reads of an empty to_host block
 * (EAGAIN with O_NONBLOCK) and never report EOF, since the port comes back.
 * The transport is the channel's device side: it appends guest data with
 * chan_guest_send() (as much as fits: what does not fit waits at the
 * transport, it is never dropped) and takes host data from to_guest with
 * ring functions and chan_guest_took().
 */
#ifndef CHANFS_SERIAL_H
#define CHANFS_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct chan;
struct chan_set;
struct chandirs;
struct loop;

struct serial;
struct serial_port;

/* What a transport is told; every op may be NULL.  Called synchronously
 * from host file operations: record work (loop_defer), do not call back
 * into the port. */
struct serial_port_ops {
	/* to_guest gained data: move it to the guest when the peer takes it. */
	void (*host_wrote)(void *ctx);
	/* The host read n bytes of to_host: room for more guest data. */
	void (*host_consumed)(void *ctx, size_t n);
	/* The first host open arrived (true) or the last one closed (false):
	 * e.g. the console device's PORT_OPEN to the guest. */
	void (*host_open)(void *ctx, bool open);
	/* The rest of the port's `status` line (e.g. " socket connected"). */
	void (*status)(void *ctx, FILE *out);
};

/* The port table; windows of window bytes (a power of two) per port.
 * Returns NULL with errno set (EINVAL, ENOMEM). */
struct serial *serial_new(struct loop *l, struct chan_set *chans,
                          uint32_t window);
/* Register the `serial` directory in r (once; -errno of chandir_add). */
int serial_register(struct serial *s, struct chandirs *r);
/* Free every port (their transports must be gone first). */
void serial_free(struct serial *s);

/* Add port name (a path component of [A-Za-z0-9._-], at most 255 bytes)
 * served by ops/ctx.  Returns the port, or NULL with errno EINVAL (bad
 * name), EEXIST (name taken) or ENOMEM.  The port lives until
 * serial_free. */
struct serial_port *serial_port_add(struct serial *s, const char *name,
                                    const struct serial_port_ops *ops,
                                    void *ctx);
/* Whether name may name a port (the rule serial_port_add applies). */
bool serial_port_name_ok(const char *name);
/* The port's channel (the transport is its device side). */
struct chan *serial_port_chan(struct serial_port *p);
const char *serial_port_name(const struct serial_port *p);
/* Whether any host file has the port open now. */
bool serial_port_host_open(const struct serial_port *p);

#endif
