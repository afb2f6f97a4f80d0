/*
 * ring — a byte ring with flow-control readiness edges (seed 000).
 *
 * Capacity is a power of two; head (producer) and tail (consumer) are
 * free-running u32 counters, so used = head - tail even across wrap.  The
 * capacity is the flow-control window: a writer gets a partial count and a
 * writable edge later, nothing ever blocks.
 *
 * Edges, fired synchronously from the call that caused them:
 *   readable — used went from 0 to > 0 (ring_write, ring_writev,
 *              ring_commit);
 *   writable — used went from > lowat to <= lowat (ring_read, ring_consume,
 *              ring_reset).  lowat defaults to cap - 1, i.e. "not full".
 * Callbacks must not call back into the same ring; they record work (see
 * loop_defer) and return.
 */
#ifndef CHANFS_RING_H
#define CHANFS_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct ring;
typedef void (*ring_edge_fn)(struct ring *r, void *arg);

struct ring {
	uint8_t *buf;
	uint32_t cap;   /* power of two, the window */
	uint32_t head;  /* bytes ever produced (mod 2^32) */
	uint32_t tail;  /* bytes ever consumed (mod 2^32) */
	uint32_t lowat; /* writable fires when used drops to <= lowat */
	ring_edge_fn on_readable;
	ring_edge_fn on_writable;
	void *cb_arg;
};

/* Set up an empty ring of cap bytes.  cap must be a power of two between
 * 1 and 2^31.  The buffer is allocated with the first byte written or
 * reserved (ring_alloc), so an idle ring costs no memory.  Returns 0 or
 * -EINVAL (bad cap). */
int ring_init(struct ring *r, uint32_t cap);
/* Allocate the buffer now if it is not yet (the writers below call it).
 * 0 or -ENOMEM; a write that cannot allocate takes nothing. */
int ring_alloc(struct ring *r);
/* Free the buffer; the ring may be ring_init'ed again. */
void ring_destroy(struct ring *r);
/* An empty ring gives its buffer back (the next write allocates it
 * again); a ring holding data keeps it. */
void ring_release(struct ring *r);
/* Set the edge callbacks and the low-water mark (lowat < cap, else cap-1). */
void ring_set_notify(struct ring *r, ring_edge_fn on_readable,
                     ring_edge_fn on_writable, void *arg, uint32_t lowat);

static inline uint32_t ring_used(const struct ring *r) { return r->head - r->tail; }
static inline uint32_t ring_space(const struct ring *r) { return r->cap - ring_used(r); }
static inline int ring_empty(const struct ring *r) { return r->head == r->tail; }
static inline int ring_full(const struct ring *r) { return ring_used(r) == r->cap; }

/* Copy in up to len bytes; returns the count taken (0 when full, or when
 * the buffer cannot be allocated). */
size_t ring_write(struct ring *r, const void *data, size_t len);
/* Copy in from an iovec array, in order, until the ring is full; returns
 * the count taken.  Fires readable at most once for the whole vector. */
size_t ring_writev(struct ring *r, const struct iovec *iov, int iovcnt);
/* Copy out up to len bytes; returns the count moved (0 when empty). */
size_t ring_read(struct ring *r, void *data, size_t len);

/* Zero-copy read side: describe up to max readable bytes as 0..2 iovecs
 * (2 when the data wraps).  Returns the number of iovecs filled. */
int ring_peek(const struct ring *r, struct iovec iov[2], size_t max);
/* Drop n bytes from the front (n <= ring_used; more is clamped to
 * ring_used). */
void ring_consume(struct ring *r, size_t n);

/* Zero-copy write side: describe up to max free bytes as 0..2 iovecs
 * (allocating the buffer first; none when that fails).  Returns the number
 * filled. */
int ring_reserve(struct ring *r, struct iovec iov[2], size_t max);
/* Publish n bytes written into the reserved space (n <= ring_space; more
 * is clamped to ring_space). */
void ring_commit(struct ring *r, size_t n);

/* Drop all data (fires writable if the ring was above lowat). */
void ring_reset(struct ring *r);

#endif
