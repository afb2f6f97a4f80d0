/*
 * vq — split virtqueue, device side.
 *
 * Pops descriptor chains (direct and indirect) into iovecs over guest memory
 * and pushes used entries strictly in the order the chains were popped
 * (through an inorder window), whatever order the device completes them in.
 *
 * The driver is untrusted.  A descriptor loop, a chain longer than the
 * queue, a head or next index out of range, an indirect table inside an
 * indirect table or with NEXT set, an indirect table whose size is not a
 * multiple of 16 or is 0 or exceeds VQ_MAX_SIZE descriptors, INDIRECT
 * without the feature, a readable descriptor after a writable one, lengths
 * whose sum overflows 32 bits, a chain needing more than VQ_ELEM_MAX_IOV
 * iovecs, any address outside guest memory, or an avail index that moves
 * by more than the queue size: the queue is marked broken with one log
 * line naming the queue, the descriptor index and the value at fault, and
 * from then on pops nothing and pushes nothing.  Zero or more direct
 * descriptors followed by one INDIRECT descriptor form one chain; an
 * indirect table may cross a region edge.  Zero-length descriptors map to
 * no iovec (their address is not checked).
 * Other queues and devices are unaffected.  Ring memory is re-read from the
 * guest once per field (no double fetch is trusted).
 *
 * VIRTIO_F_IN_ORDER: used entries are coalesced per batch.  Between two
 * vq_flush() calls, consecutive completions form one batch as long as every
 * element but the last was written in full (len == in_len) and is not made
 * of both device-readable and device-writable descriptors; the batch is
 * written as ONE used entry, in the used ring slot of the batch's first
 * buffer, carrying the id and len of its last buffer, and used->idx advances
 * by the number of buffers in the batch.  Linux's in-order split ring
 * (>= 7.0) reads that one entry, returns every buffer before the one whose
 * head equals its id with the length it posted (all its descriptors
 * summed: in_len for a writable buffer, out_len for a readable one, whose
 * len is ignored), and ends the batch at that head.
 *
 * EVENT_IDX: used_event decides whether vq_flush signals the call eventfd;
 * vq_enable_notify writes avail_event.  Without it, the avail flag
 * VRING_AVAIL_F_NO_INTERRUPT and used flag VRING_USED_F_NO_NOTIFY are used.
 */
#ifndef CHANFS_VQ_H
#define CHANFS_VQ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "chanfs/gmem.h"
#include "chanfs/inorder.h"

struct vring_desc;
struct vring_avail;
struct vring_used;

/* Most iovecs one chain may map to (after splitting at region edges).  A
 * longer chain breaks the queue ("chain too long"). */
#define VQ_ELEM_MAX_IOV 256

struct vq_elem {
	uint16_t id;      /* head descriptor index */
	uint32_t seq;     /* inorder sequence number */
	uint32_t out_len; /* device-readable bytes */
	uint32_t in_len;  /* device-writable bytes */
	unsigned out_num; /* iov[0, out_num) are device-readable */
	unsigned in_num;  /* iov[out_num, out_num + in_num) are device-writable */
	struct iovec iov[VQ_ELEM_MAX_IOV];
};

struct vq {
	const char *name;         /* for log lines, e.g. "vsock tx" */
	const struct gmem *mem;
	uint16_t num;             /* queue size, 0 when not set up */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail;      /* next avail entry to pop */
	uint16_t used_idx;        /* used entries written (not yet published) */
	uint16_t signalled_used;  /* used->idx at our last flush decision */
	bool signalled_valid;
	bool event_idx, indirect, in_order;
	bool lazy_kicks;          /* vq_drain: set by the device (RX queues) */
	bool broken;
	bool started;
	int call_fd;              /* -1: nobody to signal */
	struct inorder order;
	uint32_t next_seq;        /* first seq of the next start, so elements
	                             from before a restart stay refused */
	uint32_t *in_lens;        /* in_len by seq % num (IN_ORDER batching;
	                             seq, unlike a head id a hostile driver
	                             may reuse, is unique while outstanding) */
	/* IN_ORDER batch under construction */
	bool batch_open;
	uint16_t batch_slot;      /* used idx of the batch's first buffer */
	uint32_t batch_id, batch_len; /* the batch's last buffer so far */
	/* What the driver negotiated and how the ring was used (for status;
	 * zeroed by vq_init, kept across restarts). */
	uint64_t features;        /* as given to the last vq_start */
	uint64_t buffers_used;    /* buffers marked used, in order */
	uint64_t used_entries;    /* used ring entries written: equal to
	                             buffers_used without IN_ORDER, one per
	                             batch with it */
	uint32_t max_chain_descs; /* largest chain popped: descriptors
	                             (an indirect table's entries counted,
	                             not the descriptor pointing to it) */
	uint32_t max_chain_bytes; /* ... and bytes (readable + writable) */
};

/* Prepare an idle queue named name (the string must outlive the vq). */
void vq_init(struct vq *vq, const char *name);

/* Start the queue on rings already translated to our addresses.  The caller
 * (vu) has checked that each ring lies inside guest memory with the size
 * num implies.  features are the negotiated virtio features (EVENT_IDX,
 * INDIRECT_DESC, IN_ORDER are read from them).  last_avail is the value
 * from SET_VRING_BASE; the used index continues from used->idx.  Kicks are
 * (re-)enabled.  A started queue is stopped first.  Returns 0, -EINVAL (num
 * not a power of two in 1..VQ_MAX_SIZE, or a ring not aligned as the spec
 * requires: desc 16, avail 2, used 4; logged as one line) or -ENOMEM. */
int vq_start(struct vq *vq, const struct gmem *mem, uint16_t num,
             struct vring_desc *desc, struct vring_avail *avail,
             struct vring_used *used, uint16_t last_avail, uint64_t features);
/* Stop the queue: publishes the used entries already written (without
 * signalling), completes nothing more, frees the window.  Returns the next
 * avail index to pop (what GET_VRING_BASE reports): chains popped but not
 * completed are given back, so it equals the used index and a restarted
 * queue pops them again.  Pushing an element popped before vq_stop fails
 * (-EIO while stopped, -EINVAL after a restart). */
uint16_t vq_stop(struct vq *vq);
/* Set the eventfd signalled by vq_flush (-1 for none).  Not owned. */
static inline void vq_set_call(struct vq *vq, int fd) { vq->call_fd = fd; }

/* True if the driver has made buffers available that were not popped yet
 * and vq_pop may take one (false on a stopped or broken queue, and while
 * num elements are outstanding: complete one, then pop again). */
bool vq_has_avail(struct vq *vq);
/* Pop the next chain into elem.  Returns 1 when popped, 0 when the ring is
 * empty, the queue is stopped or inorder_outstanding() == num, -EIO when
 * the queue is (or just became) broken.  Never allocates. */
int vq_pop(struct vq *vq, struct vq_elem *elem);
/* Complete elem with len bytes written (len <= elem->in_len, clamped).
 * The used entry is written when every earlier element is complete; it
 * becomes visible to the driver at the next vq_flush.  Returns 0, -EIO
 * (broken or stopped queue: nothing written) or -EINVAL (elem is not
 * outstanding: pushed twice, or popped before a restart; a device bug,
 * logged). */
int vq_push(struct vq *vq, const struct vq_elem *elem, uint32_t len);
/* Publish used entries written since the last flush (used->idx) and signal
 * the call eventfd if the driver asked to be notified: with EVENT_IDX when
 * used_event lies among the entries just published (always at the first
 * flush after vq_start), else unless avail->flags has NO_INTERRUPT.  Does
 * nothing when nothing new was written.  Returns true if it signalled (an
 * 8-byte write of 1). */
bool vq_flush(struct vq *vq);

/* One line of text for status: the negotiated features, whether IN_ORDER
 * is on, buffers used vs used entries written, the largest chain. */
void vq_status(const struct vq *vq, FILE *out);

/* Ask the driver not to kick (we are draining the ring).  With EVENT_IDX
 * this writes nothing: avail_event simply stays behind. */
void vq_disable_notify(struct vq *vq);
/* Ask the driver to kick again (avail_event = next avail index, or clear
 * NO_NOTIFY); returns true if buffers became available meanwhile (then the
 * caller should pop again before sleeping), with vq_has_avail's rule on a
 * full window. */
bool vq_enable_notify(struct vq *vq);

/* Handle the available chains under a budget, with notifications off while
 * draining: pop into elem, call fn(arg, elem), push elem with the length fn
 * returns; until want(arg) (NULL: always true) says there is nothing to put
 * in buffers (notifications are enabled again, unless vq->lazy_kicks: then
 * they stay off, as buffers are only news when there is something to put
 * in them, and the caller calls vq_drain again then), the ring is empty
 * (enabled again, after checking once more that nothing arrived
 * meanwhile), or
 * budget chains were handled (notifications stay off: the caller continues
 * later, e.g. next loop turn).  Used entries are flushed at the end.
 * Returns 1 when the budget ran out, 0 when done, -EIO when the queue is
 * broken.  fn must not stop the queue.  fn returning VQ_HELD keeps the
 * chain outstanding: the caller pushes it later (vq_push with a copy of
 * elem's id, seq and in_len), before the queue stops. */
#define VQ_HELD UINT32_MAX
int vq_drain(struct vq *vq, struct vq_elem *elem, unsigned budget,
             uint32_t (*fn)(void *arg, const struct vq_elem *elem),
             bool (*want)(void *arg), void *arg);

/* --- byte ranges of iovecs ----------------------------------------------
 * A chain's bytes (or an indirect table's) lie across iovecs of any
 * lengths, zero included.  The one walker below finds the pieces of a byte
 * range; reading, writing and slicing are its three uses. */

/* Call fn(arg, p, n) for each piece of bytes [off, off + len) of
 * iov[0, niov), in order, n > 0 (zero-length iovecs are passed over).
 * Returns the bytes covered: len, or less when the iovecs end first (0 when
 * off lies at or past their end). */
static inline size_t vq_iov_walk(const struct iovec *iov, unsigned niov,
                                 size_t off, size_t len,
                                 void (*fn)(void *arg, void *p, size_t n),
                                 void *arg)
{
	size_t done = 0;
	unsigned i;

	for (i = 0; i < niov && done < len; i++) {
		size_t n;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - off;
		if (n > len - done)
			n = len - done;
		fn(arg, (uint8_t *)iov[i].iov_base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

static inline void vq_iov_read_piece(void *arg, void *p, size_t n)
{
	uint8_t **d = arg;

	memcpy(*d, p, n);
	*d += n;
}

/* Copy bytes [off, off + len) of the iovecs to dst.  Returns the bytes
 * copied (less than len when the iovecs end first; the rest of dst is left
 * as it was). */
static inline size_t vq_iov_read(const struct iovec *iov, unsigned niov,
                                 size_t off, void *dst, size_t len)
{
	uint8_t *d = dst;

	return vq_iov_walk(iov, niov, off, len, vq_iov_read_piece, &d);
}

static inline void vq_iov_write_piece(void *arg, void *p, size_t n)
{
	const uint8_t **s = arg;

	memcpy(p, *s, n);
	*s += n;
}

/* Copy len bytes of src into the iovecs at offset off.  Returns the bytes
 * copied (less than len when the iovecs end first). */
static inline size_t vq_iov_write(const struct iovec *iov, unsigned niov,
                                  size_t off, const void *src, size_t len)
{
	const uint8_t *s = src;

	return vq_iov_walk(iov, niov, off, len, vq_iov_write_piece, &s);
}

static inline void vq_iov_slice_piece(void *arg, void *p, size_t n)
{
	struct iovec **o = arg;

	(*o)->iov_base = p;
	(*o)->iov_len = n;
	(*o)++;
}

/* Describe bytes [off, off + len) of the iovecs as iovecs in out, which
 * has room for niov entries (a range never takes more).  Returns the
 * count; they cover less than len when the iovecs end first. */
static inline unsigned vq_iov_slice(const struct iovec *iov, unsigned niov,
                                    size_t off, size_t len,
                                    struct iovec *out)
{
	struct iovec *o = out;

	vq_iov_walk(iov, niov, off, len, vq_iov_slice_piece, &o);
	return (unsigned)(o - out);
}

#endif
