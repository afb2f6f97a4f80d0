/*
 * serial_sock — a serial port's transport over the chardev socket of a
 * QEMU virtserialport (`--serial NAME=PATH[,listen]`).
 *
 * Connect mode (NAME=PATH): chanfs connects to QEMU's
 * `-chardev socket,path=PATH,server=on,wait=off`, without blocking, and
 * reconnects with a backoff (100 ms doubling to 5 s, back to 100 ms once
 * connected) while QEMU is not up yet or after it went away.
 * Listen mode (NAME=PATH,listen): chanfs listens at PATH (mode 0600; a
 * stale socket there is replaced, a live one refused, as for the
 * vhost-user socket) and QEMU connects (`server=off,reconnect-ms=…`).  One
 * peer at a time: a second connection while the first is up is accepted
 * and closed at once, with a log line for the first one turned away while
 * that peer is connected (status counts them all); a peer that has hung
 * up is dropped first, so a restarted QEMU is never refused.
 *
 * The relay, both ways, with flow control: bytes from the peer are read
 * straight into the port's to_host (one read of as much as it has room
 * for, no copy on the way); while it is full the socket is not read (the
 * peer meanwhile waits in its own socket buffer).  Bytes of to_guest leave
 * the ring only as far as the socket took them.  When the peer goes away
 * (EOF, a read or write error, or a hang-up seen while not reading)
 * whatever it had sent and chanfs had not read yet is read to the end
 * first, held here beyond what to_host takes, and goes first once the host
 * has read (the next peer's socket is not read while anything is held):
 * anything the peer sends is data, none of it dropped; the port's channel
 * stays OPEN with both rings as they are, so what the host wrote and the
 * socket had not taken goes to the next peer.  Bytes the socket took are
 * the peer's: a peer that exits without reading its socket buffer loses
 * them, as with any socket.
 *
 * Each state change logs one line (connected, peer went away, the first
 * failed connect after one of them, a refused second peer), never one per
 * attempt.  The port's `status` text says " socket connected to PATH" or
 * " socket disconnected (...)".
 */
#ifndef CHANFS_SERIAL_SOCK_H
#define CHANFS_SERIAL_SOCK_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct serial;
struct serial_sock;

/* One `--serial` argument. */
struct serial_sock_spec {
	char *name;   /* the port: serial/<name> */
	char *path;   /* the chardev socket, as written */
	bool listen;  /* chanfs listens, QEMU connects */
};

/* Parse "NAME=PATH" or "NAME=PATH,listen" into sp (strings allocated;
 * free with serial_sock_spec_free).  NAME is a port name (serial.h:
 * [A-Za-z0-9._-], 1..255 bytes, not "." or ".."); PATH is not empty, has
 * no ',' and fits a socket address (at most 107 bytes).  Returns 0, or
 * -EINVAL with one sentence saying what is wrong in why (NUL-terminated,
 * truncated to whylen), or -ENOMEM. */
int serial_sock_parse(const char *arg, struct serial_sock_spec *sp,
                      char *why, size_t whylen);
void serial_sock_spec_free(struct serial_sock_spec *sp);

/* Add port sp->name to s and start its socket: listen at sp->path at once,
 * or start connecting.  Returns the transport, or NULL with errno set
 * after one log line (EINVAL or EEXIST from serial_port_add; a listen
 * failure from usock_listen; ENOMEM).  sp is copied. */
struct serial_sock *serial_sock_new(struct loop *l, struct serial *s,
                                    const struct serial_sock_spec *sp);
/* Close the socket (and unlink a listening one's path).  The port stays
 * in s until serial_free; free the transport only once the host side is
 * gone (nothing calls the port's ops any more), before serial_free. */
void serial_sock_free(struct serial_sock *t);

/* Whether a peer is connected now. */
bool serial_sock_connected(const struct serial_sock *t);
/* Bytes read from a departed peer that wait here for room in to_host. */
size_t serial_sock_held(const struct serial_sock *t);

#endif
