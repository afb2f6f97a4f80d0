/*
 * inorder — completion reorder window (seed 002).
 *
 * Each element taken from a queue gets the next sequence number
 * (inorder_begin).  Completing an element that is not the next expected one
 * parks it in slot seq % size; completing the expected one flushes it and
 * every contiguous parked one after it, in sequence order, in one run.
 * Keys are dense, so the window is a slot array: no allocation after init,
 * O(1) per operation.
 */
#ifndef CHANFS_INORDER_H
#define CHANFS_INORDER_H

#include <stdbool.h>
#include <stdint.h>

struct inorder_slot {
	uint32_t id;  /* caller's payload: the descriptor head id */
	uint32_t len; /* caller's payload: bytes written */
	bool done;
};

struct inorder {
	uint32_t size;  /* power of two: the most elements outstanding */
	uint32_t next;  /* next sequence number to flush */
	uint32_t issued;/* next sequence number to hand out */
	struct inorder_slot *slots;
};

/* Called once per flushed element, in sequence order.  last is true for the
 * final element of this run (so a caller can write one entry per batch).
 * The window has already moved past seq when it is called; it may call
 * inorder_begin but must not complete elements of the same window. */
typedef void (*inorder_flush_fn)(void *arg, uint32_t seq, uint32_t id,
                                 uint32_t len, bool last);

/* size must be a power of two in 1..32768.  Returns 0, -EINVAL or -ENOMEM. */
int inorder_init(struct inorder *w, uint32_t size);
/* Release the slot array; the window may be inorder_init'ed again. */
void inorder_destroy(struct inorder *w);
/* Forget everything outstanding and parked; next == issued == start. */
void inorder_reset(struct inorder *w, uint32_t start);

/* Elements handed out and not yet flushed. */
static inline uint32_t inorder_outstanding(const struct inorder *w)
{
	return w->issued - w->next;
}

/* Hand out the next sequence number.  Returns -ENOSPC (as a negative int64)
 * when size elements are already outstanding. */
int64_t inorder_begin(struct inorder *w);

/* Complete seq with (id, len).  Returns the number of elements flushed (0 if
 * parked), -EINVAL if seq is not outstanding, -EALREADY if it was already
 * completed.  flush may be NULL (the elements are then just dropped in
 * order).  Nothing is logged: seq comes from the caller, not the guest. */
int inorder_complete(struct inorder *w, uint32_t seq, uint32_t id,
                     uint32_t len, inorder_flush_fn flush, void *arg);

#endif
