/*
 * vsock — the virtio-vsock device (rx and tx queues; the event queue stays
 * in the VMM).  Guest connections become channels (chan.h).
 *
 * Connections are keyed by (host port, guest port).  Credit flow control
 * both ways: buf_alloc we advertise is the channel's to_host window,
 * fwd_cnt is what the host has read; we never send beyond the guest's
 * credit, and a guest that overruns ours is reset with a log line.  RX is
 * pull-based: when the guest posts RX buffers we fill them — control
 * replies first, then data round-robin across connections with credit.
 *
 * The device works while both rings run.  When they stop (a VM pause, a
 * memory table change: vu.h) connections stay with their data both ways;
 * control packets wait; host writes fill the window and then wait;
 * connect and close timeouts do not count; new host connects fail with
 * ENOTCONN.  When the rings start again everything continues.  Only the
 * device's end (front-end gone, RESET_OWNER, a driver restart) resets
 * connections (ECONNRESET).
 */
#ifndef CHANFS_VSOCK_H
#define CHANFS_VSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct loop;
struct chan;
struct chan_set;
struct chandirs;
struct vu_device;

#define VSOCK_HOST_CID 2

struct vsock_config {
	uint64_t guest_cid;          /* served by GET_CONFIG (default 3) */
	uint32_t buf_size;           /* per-connection window, power of two */
	unsigned connect_timeout_ms; /* host → guest REQUEST without answer */
	unsigned close_timeout_ms;   /* host closed: to deliver what is left,
	                                then (SHUTDOWN sent) the guest's RST */
	unsigned backlog;            /* queued guest connections per host port */
	unsigned accept_timeout_ms;  /* a queued connection nobody accepts is
	                                reset (0: 30000) */
	unsigned listen_linger_ms;   /* a port made to listen by vsock_accept
	                                stops this long after its last waiter
	                                (0: 5000) */
	unsigned coalesce_us;        /* after a small data packet (< 4 KiB),
	                                more small data of the connection
	                                waits this long for company while the
	                                guest sends nothing on it (0: 1000) */
};

struct vsock;

/* Create the device; register it with vu_new(l, path, vsock_vu_device(),
 * v).  Returns NULL with errno set: EINVAL (logged) for a reserved guest
 * CID (< 3 or >= 2^32 - 1), a buf_size that is not a power of two up to
 * 1 GiB, or backlog 0; ENOMEM. */
struct vsock *vsock_new(struct loop *l, const struct vsock_config *cfg,
                        struct chan_set *chans);
/* Reset every connection (ECONNRESET) and free. */
void vsock_free(struct vsock *v);
/* The device table to hand to vu_new, with v as its ctx. */
const struct vu_device *vsock_vu_device(void);

/* Host connects to guest port: returns 0 with *out a new channel in
 * CONNECTING (a host reference is taken for the caller; watch it for OPEN or
 * RESET with ECONNREFUSED / ETIMEDOUT), or -ENOTCONN when no driver is
 * running (also while the rings are stopped), -EADDRINUSE when no host port is free. */
int vsock_connect(struct vsock *v, uint32_t port, struct chan **out);

/* Make host port listen for guest connections for the device's life
 * (idempotent; -l).  A guest REQUEST to a port that does not listen is
 * answered with RST. */
void vsock_listen(struct vsock *v, uint32_t port);
/* vsock_listen for one host-side user of port (the named services):
 * each guest connection queued on it is told to fn (as vsock_on_incoming
 * would: synchronously, record work only) instead of the on_incoming
 * callback, and vsock_listening leaves the port out (vsock/listen does
 * not list it; an open of vsock/listen/PORT would still take its
 * connections).  fn NULL gives the port back to on_incoming. */
void vsock_listen_to(struct vsock *v, uint32_t port,
                     void (*fn)(void *arg, uint32_t port), void *arg);
/* Take the oldest guest connection queued on port: 0 with *out (a host
 * reference for the caller), or -EAGAIN when none is waiting, -ENOMEM.
 * Either way the port listens from now on: while someone waits
 * (vsock_accept_wait) and for listen_linger_ms after the last waiter or
 * accept, unless vsock_listen made it listen for good.  A connection the
 * guest already ended before it was accepted is still returned: its data
 * stays readable, then EOF (orderly) or its error.  A queued connection
 * nobody accepts within accept_timeout_ms is reset (RST, one log line);
 * queued connections are dropped when the driver or front-end goes
 * away. */
int vsock_accept(struct vsock *v, uint32_t port, struct chan **out);
/* An opener starts (waiting true) or stops waiting to accept on port:
 * while any waits, the port keeps listening. */
void vsock_accept_wait(struct vsock *v, uint32_t port, bool waiting);
/* The ports listening now, in the order they started, into ports (up to
 * max); returns how many there are (may be more than max). */
size_t vsock_listening(const struct vsock *v, uint32_t *ports, size_t max);
/* fn is called (from the device side, synchronously: record work only)
 * each time a guest connection is queued on a listening port. */
void vsock_on_incoming(struct vsock *v, void (*fn)(void *arg, uint32_t port),
                       void *arg);

/* Offer v's channels to the file system (backend/vsock_dir.c): registers
 * vsock (CONNECT: an open of vsock/<port> is vsock_connect) and
 * vsock/listen (ACCEPT: vsock_accept, counted with vsock_accept_wait,
 * listing vsock_listening; an incoming connection is chandir_ready, so
 * this takes vsock_on_incoming for itself).  Names are canonical decimal
 * ports below 2^32 - 1.  The status lines are vsock_status's.  0, or
 * -errno from chandir_add (EEXIST, ENOSPC). */
int vsock_register(struct vsock *v, struct chandirs *r);
/* Hybrid sockets (vsock_uds.h) hook.  A guest connection to a host port
 * that does not listen (no -l, no waiting or lingering vsock_accept; a
 * listening port with a full backlog still refuses) is offered to fn
 * before it is refused: ch is already OPEN (its RESPONSE goes out after
 * fn returns 0).  fn takes its own host reference (chan_ref) and returns
 * 0, or returns -errno (after its own log line) and the guest gets RST.
 * Called synchronously from the device side: fn must not block and may
 * only connect nonblocking and record work.  fn NULL: no fallback (the
 * default). */
void vsock_on_unlistened(struct vsock *v,
                         int (*fn)(void *arg, uint32_t port, struct chan *ch),
                         void *arg);
/* The host-side port of ch (from vsock_connect, vsock_accept or the
 * unlistened hook), or 0 once the device let go of it. */
uint32_t vsock_chan_host_port(const struct chan *ch);

/* Status text: device state, guest CID, features, each connection with
 * ports, state and byte counts. */
void vsock_status(const struct vsock *v, FILE *out);

#endif
