/*
 * chan — one bidirectional byte stream between a device and the host files.
 *
 * Modelled on the Android pipe contract: try, get EAGAIN, ask to be woken,
 * get woken.  A channel has two rings whose capacities are its flow-control
 * windows:
 *   to_host  — the device writes guest data in, the host reads it out;
 *   to_guest — the host writes data in, the device pulls it into guest
 *              buffers when the guest posts them.
 *
 * Two sides hold references: the device (for as long as the connection
 * exists on its side) and the host (each open file).  The device side talks
 * to the host side through the watchers (one per open file: a shared
 * channel has several), the host side to the device side through struct
 * chan_backend.  Both are called synchronously and must only
 * record work (loop_defer) — never free the channel or call back into it.
 * Once chan_closed() or chan_reset() has been called no backend op is
 * called again, so the device may drop its reference (and free be_ctx)
 * right after either.
 *
 * States: CONNECTING → OPEN → CLOSED (orderly, both directions finished) or
 * RESET (error: refused, reset by peer, timed out, device gone; c->error
 * holds the errno the host sees).  Half-closes are flags on OPEN:
 * guest_eof (the guest sends no more: reads return 0 once drained),
 * guest_norecv (the guest receives no more: writes fail with EPIPE),
 * host_shut (the host writes no more).
 */
#ifndef CHANFS_CHAN_H
#define CHANFS_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "chanfs/ring.h"

enum chan_state { CHAN_CONNECTING, CHAN_OPEN, CHAN_CLOSED, CHAN_RESET };

/* Most iovecs of guest memory a device may lend at once (chan_guest_lend),
 * and what a chan_peekv that takes all of them (and to_host's two) needs. */
#define CHAN_LEND_MAX 64
#define CHAN_PEEK_MAX (2 + CHAN_LEND_MAX)

struct chan;

/* Device side operations, called by the host side. */
struct chan_backend {
	/* to_guest gained data: pull it into guest buffers when you can. */
	void (*host_wrote)(struct chan *c);
	/* The host consumed n bytes of to_host: return credit to the guest. */
	void (*host_consumed)(struct chan *c, size_t n);
	/* The host writes no more; send the shutdown after to_guest drains. */
	void (*host_shutdown)(struct chan *c);
	/* The host side released its last reference: shut down in order (data
	 * already in to_guest still reaches the guest first), then drop the
	 * device's reference when the connection is gone. */
	void (*host_close)(struct chan *c);
	/* The host side released its last reference with chan_abort(): end
	 * the connection at once as an error (vsock: RST), discarding
	 * to_guest, then drop the device's reference.  NULL: host_close. */
	void (*host_abort)(struct chan *c);
	/* The device reads what it sends through chan_guest_peek (to_guest,
	 * then a parked host write's bytes in place: chan_park), not from
	 * to_guest alone.  false: chan_park says -ENOTSUP. */
	bool reads_parked;
};

/* Host side readiness watcher: something about c changed.  Every watcher
 * fires when to_host goes from empty to non-empty, when to_guest drains to
 * half its window (from fuller), and on every state or half-close change
 * (opened, guest EOF/norecv, closed, reset, host shutdown); one watcher
 * alone fires when the delivery mark it set with chan_watch_delivered() is
 * reached.  Re-evaluate with chan_poll() or by trying chan_read() /
 * chan_write().  A watcher only records work: it must not add or remove
 * watchers, nor call into c. */
typedef void (*chan_watch_fn)(struct chan *c, void *arg);

/* One host-side watcher, owned (and usually embedded) by its holder. */
struct chan_watcher {
	chan_watch_fn fn;
	void *arg;
	uint64_t mark;        /* fire once tx_bytes reaches it (0: no mark) */
	LIST_ENTRY(chan_watcher) link;
};

struct chan_set;

struct chan {
	struct ring to_host;
	struct ring to_guest;
	enum chan_state state;
	int error;            /* errno when RESET */
	bool guest_eof, guest_norecv, host_shut, host_closed;
	uint64_t rx_bytes;    /* guest → host bytes accepted */
	uint64_t tx_bytes;    /* host → guest bytes delivered to the guest */
	uint64_t written;     /* host → guest bytes chan_write() took, and
	                         bytes of a parked write the device took */
	/* A parked host write (chan_park): its bytes follow to_guest's and the
	 * device may take them in place. */
	const uint8_t *park;  /* the next of them, NULL: none parked */
	size_t park_len;      /* bytes of it the device has not taken */
	size_t park_took;     /* bytes of it the device took */
	/* Guest bytes lent in place (chan_guest_lend): they follow to_host's
	 * (empty when the lending began) and the host reads them straight
	 * from guest memory until the device takes them back. */
	const struct iovec *lend; /* the device's iovecs, NULL: none lent */
	unsigned lend_cnt;    /* entries of lend */
	unsigned lend_idx;    /* the first entry not read to its end */
	size_t lend_off;      /* bytes of lend[lend_idx] read */
	size_t lend_len;      /* lent bytes not read yet */
	unsigned readers;     /* host reads waiting (chan_read_waiting) */
	bool lend_took;       /* the host read lent bytes since the lend began */
	bool lend_warm;       /* ... in the last lend: a streaming reader */
	unsigned refs;
	char name[64];        /* "vsock 3:1234-2:49152" in logs and status */
	char *args;           /* what the guest said with the connection
	                         (a named service's args), or NULL */
	const struct chan_backend *be;
	void *be_ctx;         /* the device's per-connection object */
	LIST_HEAD(, chan_watcher) watchers;
	struct chan_set *set;
	TAILQ_ENTRY(chan) link;
};

/* Every live channel, for status and for resetting a device's channels. */
struct chan_set {
	TAILQ_HEAD(, chan) all;
	unsigned count;
};

void chan_set_init(struct chan_set *s);

/* --- device side -------------------------------------------------------- */

/* Create a channel in CONNECTING with windows of window bytes each (a power
 * of two) and one reference (the device's); name is copied (truncated to
 * fit).  Returns NULL with errno set (EINVAL: window not a power of two or
 * be NULL; ENOMEM). */
struct chan *chan_new(struct chan_set *s, uint32_t window,
                      const struct chan_backend *be, void *be_ctx,
                      const char *name);
/* Keep a copy of args (NULL clears): what the guest said with the
 * connection, shown to the host opener.  0 or -ENOMEM. */
int chan_set_args(struct chan *c, const char *args);
/* The connection is established (only from CONNECTING; else ignored). */
void chan_opened(struct chan *c);
/* The guest sends no more / receives no more (norecv also discards what is
 * still queued in to_guest).  Ignored once closed or reset. */
void chan_guest_eof(struct chan *c);
void chan_guest_norecv(struct chan *c);
/* Orderly end of both directions (the connection is gone): to_host stays
 * readable, then reads return 0; to_guest is discarded.  Closed and reset
 * are final: later chan_closed()/chan_reset() calls are ignored. */
void chan_closed(struct chan *c);
/* The connection failed: err is what the host sees (ECONNREFUSED,
 * ECONNRESET, ETIMEDOUT...).  Data already accepted into to_host stays
 * readable (reads return it, then -err); to_guest is discarded. */
void chan_reset(struct chan *c, int err);
/* Guest data arrives: append up to len bytes from iov to to_host; returns
 * the count taken (less than asked only if the guest overran its credit;
 * 0 after chan_guest_eof() or once closed or reset). */
size_t chan_guest_send(struct chan *c, const struct iovec *iov, int iovcnt);
/* May the device lend guest bytes in place (chan_guest_lend) instead of
 * copying them in with chan_guest_send?  Yes while a host read waits
 * (chan_read_waiting) or the host read lent bytes the last time (a
 * streaming reader: its next read is on its way, and may come in this
 * turn), to_host is empty and chan_guest_send would take data.  Allocates
 * to_host's buffer, so that chan_guest_unlend can always copy (false when
 * that fails). */
bool chan_guest_can_lend(struct chan *c);
/* Lend the bytes of iov[0, cnt) (cnt <= CHAN_LEND_MAX) to the host: they
 * are received (rx_bytes) and readable as if in to_host, but read straight
 * from guest memory.  iov is the device's array; while lent, a later call
 * passes the same array with entries appended (those before unchanged).
 * Only after chan_guest_can_lend said yes.  The first lend fires the
 * watchers (readable).  The memory must stay mapped until
 * chan_guest_unlend, which the device calls before the loop turn ends. */
void chan_guest_lend(struct chan *c, const struct iovec *iov, unsigned cnt);
/* Take the lent bytes back: what the host did not read is copied into
 * to_host (it fits: lent bytes are within the window's credit) and the
 * guest memory is free again.  Returns the bytes copied (0 when nothing
 * is lent).  Valid in any state: the bytes were accepted. */
size_t chan_guest_unlend(struct chan *c);
/* Zero-copy chan_guest_send, for a device that reads its peer straight
 * into the window: describe up to max bytes of to_host's free space as up
 * to 2 iovecs (returns their count: 0 when it is full, its buffer cannot
 * be allocated, after chan_guest_eof() or once closed or reset), then
 * chan_guest_commit() the n bytes written there (at most what was
 * reserved; nothing else may touch c between the two). */
int chan_guest_reserve(struct chan *c, struct iovec iov[2], size_t max);
void chan_guest_commit(struct chan *c, size_t n);
/* What there is to send: to_guest's bytes, then a parked write's.  Up to
 * max of them as up to 3 iovecs (returns their count); valid until the
 * next chan_guest_took. */
int chan_guest_peek(const struct chan *c, struct iovec iov[3], size_t max);
/* Bytes chan_guest_peek would describe with no max. */
static inline size_t chan_guest_pending(const struct chan *c)
{
	return ring_used(&c->to_guest) + c->park_len;
}
/* n bytes (of what chan_guest_peek describes) were copied into guest
 * buffers: drop them, to_guest's first.  Taking bytes of a parked write
 * fires the watchers (its writer may finish). */
void chan_guest_took(struct chan *c, size_t n);

/* --- host side ---------------------------------------------------------- */

/* Add w (fn, arg; no mark) to c's watchers; w must not be watching
 * already.  Host calls may fire watchers synchronously too (e.g.
 * chan_shutdown()). */
void chan_watch_add(struct chan *c, struct chan_watcher *w, chan_watch_fn fn,
                    void *arg);
/* Remove w (added to c before; a second remove is a no-op). */
void chan_watch_remove(struct chan *c, struct chan_watcher *w);
/* Read up to len bytes.  Returns the count (> 0), 0 at EOF (guest_eof or
 * CLOSED and drained), -EAGAIN when nothing is there yet, -c->error after a
 * reset once to_host is drained, -ENOTCONN while CONNECTING. */
ssize_t chan_read(struct chan *c, void *buf, size_t len);
/* Zero-copy read: describe what chan_read would return as up to niov
 * (>= 2) iovecs: to_host's bytes, then lent guest bytes (returns their
 * count, or the same negative codes / 0 for EOF; max 0 returns 0); then
 * chan_consume() what was used.  The iovecs point into to_host or guest
 * memory and stay valid until the next consume, chan_unref() or the end
 * of the loop turn (the device takes lent bytes back then). */
int chan_peekv(struct chan *c, struct iovec *iov, int niov, size_t max);
static inline int chan_peek(struct chan *c, struct iovec iov[2], size_t max)
{
	return chan_peekv(c, iov, 2, max);
}
/* Drop n bytes of what chan_peekv describes (to_host's first) and return
 * them to the device as credit. */
void chan_consume(struct chan *c, size_t n);
/* A host read is parked on c (waiting true) or no longer (false); counted.
 * While one waits the device may lend guest bytes (chan_guest_lend). */
void chan_read_waiting(struct chan *c, bool waiting);
/* The to-host window gives its buffer back while it is empty and no
 * guest bytes are lent (the next guest data allocates it again): for a
 * channel that may wait long after its first bytes, such as a service
 * connection after its connect string. */
void chan_trim(struct chan *c);
/* Write up to len bytes.  Returns the count taken (> 0), -EAGAIN when the
 * window is full, -EPIPE when the guest receives no more, the host shut its
 * side or the channel is CLOSED, -c->error after a reset, -ENOTCONN while
 * CONNECTING, -ENOMEM when the window's buffer (allocated by the first
 * write, len 0 included) cannot be.  len 0 returns 0 when a write could
 * take data, else the error.  Calls be->host_wrote when it took data. */
ssize_t chan_write(struct chan *c, const void *buf, size_t len);
/* Park a write that to_guest cannot take now: buf[0, len) (len > 0)
 * follows what is in to_guest, and the device may copy its bytes into
 * guest buffers straight from buf, sparing the copy into the window.  One
 * parked write at a time; buf must stay valid and unchanged until
 * chan_unpark.  Returns 0; -ENOTSUP when the device reads only to_guest
 * (copy into the window instead), -EBUSY when a write is parked already,
 * or what chan_write would say (-EPIPE, -ENOTCONN, -c->error).  Calls
 * be->host_wrote. */
int chan_park(struct chan *c, const void *buf, size_t len);
/* Take the parked write back (none parked: returns 0): returns how many of
 * its bytes the device took (counted in chan_written); the rest is the
 * caller's again.  Must be called before buf is freed or changed, and
 * before chan_close. */
size_t chan_unpark(struct chan *c);
/* Bytes of the parked write the device has not taken yet. */
static inline size_t chan_park_rest(const struct chan *c)
{
	return c->park_len;
}
/* Bytes a chan_write could take now (the window's free space). */
static inline size_t chan_write_room(const struct chan *c)
{
	return ring_space(&c->to_guest);
}
/* Every byte chan_write() has taken so far (delivered, queued or
 * discarded): the mark a later chan_delivered() call compares against. */
uint64_t chan_written(const struct chan *c);
/* Has everything the host wrote up to mark reached guest buffers?  1 yes,
 * 0 not yet, or the error that means it never will (what was queued was
 * discarded): -c->error after a reset, -EPIPE once closed or when the
 * guest receives no more. */
int chan_delivered(const struct chan *c, uint64_t mark);
/* Fire w alone once tx_bytes reaches mark (0 clears the mark; one mark
 * per watcher, the last call wins). */
void chan_watch_delivered(struct chan *c, struct chan_watcher *w,
                          uint64_t mark);
/* POLLIN/POLLOUT/POLLHUP/POLLERR as a socket would report them: POLLIN
 * when a read would not say EAGAIN (data, EOF or the error), POLLOUT when
 * at least half the to_guest window is free or a write would fail at once,
 * POLLERR after a reset, POLLHUP when closed or reset or when the guest
 * sends no more and nothing more can be sent.  0 while CONNECTING. */
unsigned chan_poll(const struct chan *c);
/* SHUT_WR from the host (idempotent; tells the device unless the
 * connection is connecting or already over). */
void chan_shutdown(struct chan *c);
/* The host side's last reference goes: removes every watcher, tells the
 * device (host_close, unless the connection is already over) and drops the
 * host's reference.  c may be NULL; a second call is a no-op. */
void chan_close(struct chan *c);
/* As chan_close(), but the connection is aborted (be->host_abort: the
 * guest sees a reset, not an orderly close): for a host side that rejects
 * what the guest sent on top of the stream (a bad service connect string).
 * c may be NULL; a no-op after chan_close(). */
void chan_abort(struct chan *c);

/* --- both --------------------------------------------------------------- */
void chan_ref(struct chan *c);
/* Drop a reference; the channel is freed (and leaves its set) at zero.
 * Dropping a reference that is not held aborts. */
void chan_unref(struct chan *c);
const char *chan_state_name(const struct chan *c);
/* One status line: name, state with half-close flags, byte counts,
 * window fill. */
void chan_describe(const struct chan *c, FILE *out);

#endif
