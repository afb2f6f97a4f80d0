#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_ring.h>

#include "chanfs/log.h"
#include "chanfs/virtio.h"
#include "chanfs/vq.h"

/* A descriptor after the one fetch we make of it, in host byte order. */
struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* The descriptor table being walked: the ring's own table, or an indirect
 * one.  An indirect table is a guest buffer like any other and may cross a
 * region edge, so it is then read through its iovecs. */
struct vq_table {
	const struct vring_desc *desc; /* contiguous in our memory, or NULL */
	const struct iovec *iov;       /* else the table's pieces */
	int niov;
	uint32_t size;                 /* entries */
	bool indirect;
};

/* Largest indirect table accepted.  Tables may legitimately exceed the
 * queue size, but next is 16 bits and the walk must stay bounded. */
#define VQ_INDIRECT_MAX VQ_MAX_SIZE

static void vq_break(struct vq *vq, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void vq_break(struct vq *vq, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	vq->broken = true;
	log_warnx("vq %s: %s; queue broken", vq->name, why);
}

/* Ring fields are shared with a guest running concurrently: single-copy
 * atomic accesses, so each read is one fetch and each write one store. */
static inline uint16_t vq_load16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline void vq_store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static inline uint16_t *vq_used_event(const struct vq *vq)
{
	return &vq->avail->ring[vq->num];
}

/* avail_event sits just past the used ring's last entry. */
static inline uint16_t *vq_avail_event(const struct vq *vq)
{
	return (uint16_t *)((uint8_t *)vq->used +
	                    offsetof(struct vring_used, ring) +
	                    sizeof(struct vring_used_elem) * vq->num);
}

void vq_init(struct vq *vq, const char *name)
{
	memset(vq, 0, sizeof *vq);
	vq->name = name;
	vq->call_fd = -1;
}

int vq_start(struct vq *vq, const struct gmem *mem, uint16_t num,
             struct vring_desc *desc, struct vring_avail *avail,
             struct vring_used *used, uint16_t last_avail, uint64_t features)
{
	int rc;

	if (vq->started)
		vq_stop(vq);
	if (num == 0 || num > VQ_MAX_SIZE || (num & (num - 1))) {
		log_warnx("vq %s: queue size %u is not a power of two in 1..%d",
		          vq->name, num, VQ_MAX_SIZE);
		return -EINVAL;
	}
	if ((uintptr_t)desc % VRING_DESC_ALIGN_SIZE ||
	    (uintptr_t)avail % VRING_AVAIL_ALIGN_SIZE ||
	    (uintptr_t)used % VRING_USED_ALIGN_SIZE) {
		log_warnx("vq %s: rings misaligned (desc %p, avail %p, used %p)",
		          vq->name, (void *)desc, (void *)avail, (void *)used);
		return -EINVAL;
	}
	rc = inorder_init(&vq->order, num);
	if (rc < 0)
		return rc;
	/* Sequence numbers carry on across restarts: a stale element's seq
	 * is then never mistaken for an outstanding one. */
	inorder_reset(&vq->order, vq->next_seq);
	vq->in_order = features & VBIT(VIRTIO_F_IN_ORDER_BIT);
	vq->features = features;
	vq->in_lens = NULL;
	if (vq->in_order) {
		vq->in_lens = calloc(num, sizeof *vq->in_lens);
		if (!vq->in_lens) {
			inorder_destroy(&vq->order);
			return -ENOMEM;
		}
	}
	vq->mem = mem;
	vq->num = num;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->last_avail = last_avail;
	vq->event_idx = features & VBIT(VIRTIO_RING_F_EVENT_IDX_BIT);
	vq->indirect = features & VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT);
	/* Continue from where the used ring stands (a restarted queue). */
	vq->used_idx = vq_load16(&used->idx);
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = false;
	vq->batch_open = false;
	vq->broken = false;
	vq->started = true;
	/* A previous run may have left kicks suppressed; a queue that never
	 * gets kicked would never be drained. */
	vq_store16(&used->flags, 0);
	if (vq->event_idx)
		vq_store16(vq_avail_event(vq), last_avail);
	return 0;
}

/* Write the open IN_ORDER batch's one used entry. */
static void vq_batch_close(struct vq *vq)
{
	struct vring_used_elem *u;

	if (!vq->batch_open)
		return;
	u = &vq->used->ring[vq->batch_slot & (vq->num - 1)];
	u->id = htole32(vq->batch_id);
	u->len = htole32(vq->batch_len);
	vq->batch_open = false;
	vq->used_entries++;
}

static void vq_publish(struct vq *vq)
{
	vq_batch_close(vq);
	/* Entries before index: the driver reads them after it sees it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	vq_store16(&vq->used->idx, vq->used_idx);
}

uint16_t vq_stop(struct vq *vq)
{
	uint16_t base;

	if (!vq->started)
		return vq->last_avail;
	if (!vq->broken)
		vq_publish(vq);
	/* Chains popped but never completed go back to the driver: a
	 * restarted queue pops them again rather than leaving the driver
	 * waiting for them forever. */
	base = vq->last_avail - (uint16_t)inorder_outstanding(&vq->order);
	vq->next_seq = vq->order.issued;
	inorder_destroy(&vq->order);
	free(vq->in_lens);
	vq->in_lens = NULL;
	vq->last_avail = base;
	vq->started = false;
	return base;
}

/* Whether vq_pop would find something: a caller looping on this must not
 * spin while the window is full. */
static bool vq_poppable(struct vq *vq)
{
	return inorder_outstanding(&vq->order) < vq->num &&
	       vq_load16(&vq->avail->idx) != vq->last_avail;
}

bool vq_has_avail(struct vq *vq)
{
	if (!vq->started || vq->broken)
		return false;
	return vq_poppable(vq);
}

static void vq_read_desc(const struct vq_table *t, uint32_t i,
                         struct vq_desc *d)
{
	struct vring_desc raw;

	if (t->desc)
		memcpy(&raw, &t->desc[i], sizeof raw);
	else
		vq_iov_read(t->iov, (unsigned)t->niov, (size_t)i * sizeof raw,
		            &raw, sizeof raw);
	/* Only the copy is validated and used: keep the compiler from
	 * going back to guest memory for any field. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	d->addr = le64toh(raw.addr);
	d->len = le32toh(raw.len);
	d->flags = le16toh(raw.flags);
	d->next = le16toh(raw.next);
}

/* Map the chain at head into e.  Returns 0, or -EIO with the queue broken
 * and the fault logged. */
static int vq_walk(struct vq *vq, uint16_t head, struct vq_elem *e)
{
	struct vq_table t = { .desc = vq->desc, .size = vq->num };
	struct iovec tiov[GMEM_MAX_REGIONS];
	struct vq_desc d;
	uint32_t i = head, seen = 0, ndesc = 0;
	uint64_t total = 0;
	uint32_t out_len = 0, in_len = 0;
	unsigned niov = 0, nout = 0;
	bool writable = false;
	const char *what;
	int n;

	for (;;) {
		vq_read_desc(&t, i, &d);
		seen++;
		what = t.indirect ? "indirect descriptor" : "descriptor";

		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (t.indirect) {
				vq_break(vq, "head %u: indirect descriptor %u "
				         "points to another indirect table",
				         head, i);
				return -EIO;
			}
			if (!vq->indirect) {
				vq_break(vq, "head %u: descriptor %u is INDIRECT "
				         "but the feature was not negotiated",
				         head, i);
				return -EIO;
			}
			if (d.flags & VRING_DESC_F_NEXT) {
				vq_break(vq, "head %u: descriptor %u has both "
				         "INDIRECT and NEXT", head, i);
				return -EIO;
			}
			if (d.len == 0 || d.len % sizeof(struct vring_desc)) {
				vq_break(vq, "head %u: descriptor %u: indirect "
				         "table length %u is not a positive "
				         "multiple of 16", head, i, d.len);
				return -EIO;
			}
			if (d.len / sizeof(struct vring_desc) > VQ_INDIRECT_MAX) {
				vq_break(vq, "head %u: descriptor %u: indirect "
				         "table of %u descriptors exceeds %d",
				         head, i,
				         d.len / (uint32_t)sizeof(struct vring_desc),
				         VQ_INDIRECT_MAX);
				return -EIO;
			}
			n = gmem_iov(vq->mem, d.addr, d.len, tiov,
			             GMEM_MAX_REGIONS);
			if (n <= 0) {
				vq_break(vq, "head %u: descriptor %u: indirect "
				         "table 0x%" PRIx64 "+%u outside guest "
				         "memory", head, i, d.addr, d.len);
				return -EIO;
			}
			t.desc = n == 1 ? tiov[0].iov_base : NULL;
			t.iov = tiov;
			t.niov = n;
			t.size = d.len / sizeof(struct vring_desc);
			t.indirect = true;
			i = 0;
			seen = 0;
			continue;
		}

		if (d.flags & VRING_DESC_F_WRITE) {
			writable = true;
		} else if (writable) {
			vq_break(vq, "head %u: %s %u is device-readable after "
			         "a device-writable one", head, what, i);
			return -EIO;
		}
		ndesc++;
		total += d.len;
		if (total > UINT32_MAX) {
			vq_break(vq, "head %u: %s %u: len %u makes the chain "
			         "longer than 4 GiB", head, what, i, d.len);
			return -EIO;
		}
		n = gmem_iov(vq->mem, d.addr, d.len, &e->iov[niov],
		             VQ_ELEM_MAX_IOV - (int)niov);
		if (n == -ENOBUFS) {
			vq_break(vq, "head %u: chain needs more than %d iovecs "
			         "at %s %u", head, VQ_ELEM_MAX_IOV, what, i);
			return -EIO;
		}
		if (n < 0) {
			vq_break(vq, "head %u: %s %u: 0x%" PRIx64 "+%u outside "
			         "guest memory", head, what, i, d.addr, d.len);
			return -EIO;
		}
		niov += (unsigned)n;
		if (writable) {
			in_len += d.len;
		} else {
			out_len += d.len;
			nout = niov;
		}

		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= t.size) {
			vq_break(vq, "head %u: %s %u: next %u out of range "
			         "(table size %u)", head, what, i, d.next,
			         t.size);
			return -EIO;
		}
		if (seen == t.size) {
			vq_break(vq, "head %u: %s %u: chain loops (longer than "
			         "its table of %u)", head, what, i, t.size);
			return -EIO;
		}
		i = d.next;
	}

	e->id = head;
	e->out_len = out_len;
	e->in_len = in_len;
	if (ndesc > vq->max_chain_descs)
		vq->max_chain_descs = ndesc;
	if (total > vq->max_chain_bytes)
		vq->max_chain_bytes = (uint32_t)total;
	e->out_num = nout;
	e->in_num = niov - nout;
	return 0;
}

int vq_pop(struct vq *vq, struct vq_elem *e)
{
	uint16_t avail_idx, slot, head;
	int64_t seq;

	if (!vq->started)
		return 0;
	if (vq->broken)
		return -EIO;
	if (inorder_outstanding(&vq->order) >= vq->num)
		return 0;
	avail_idx = vq_load16(&vq->avail->idx);
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->num) {
		vq_break(vq, "avail index moved from %u to %u (queue size %u)",
		         vq->last_avail, avail_idx, vq->num);
		return -EIO;
	}
	if (avail_idx == vq->last_avail)
		return 0;
	/* The ring entries and descriptors behind an index are only valid
	 * once we have seen the index. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);

	slot = vq->last_avail & (vq->num - 1);
	head = vq_load16(&vq->avail->ring[slot]);
	if (head >= vq->num) {
		vq_break(vq, "avail entry %u: head %u out of range (queue "
		         "size %u)", slot, head, vq->num);
		return -EIO;
	}
	if (vq_walk(vq, head, e) < 0)
		return -EIO;
	/* Cannot fail: fewer than num are outstanding (checked above). */
	seq = inorder_begin(&vq->order);
	if (seq < 0)
		return 0;
	e->seq = (uint32_t)seq;
	/* A driver infers, for a buffer it skips, the length it posted over
	 * ALL descriptors: a buffer with both parts must end its batch, and
	 * no len can equal UINT32_MAX here (out_len > 0 keeps in_len below
	 * it). */
	if (vq->in_lens)
		vq->in_lens[e->seq & (vq->num - 1)] =
			e->out_len && e->in_len ? UINT32_MAX : e->in_len;
	vq->last_avail++;
	return 1;
}

/* inorder flush callback: write the used entry of one element, in pop
 * order. */
static void vq_used_write(void *arg, uint32_t seq, uint32_t id, uint32_t len,
                          bool last)
{
	struct vq *vq = arg;
	struct vring_used_elem *u;

	(void)last; /* IN_ORDER batches end at vq_flush, not per run */
	vq->buffers_used++;
	if (!vq->in_order) {
		u = &vq->used->ring[vq->used_idx & (vq->num - 1)];
		u->id = htole32(id);
		u->len = htole32(len);
		vq->used_idx++;
		vq->used_entries++;
		return;
	}
	if (!vq->batch_open) {
		vq->batch_open = true;
		vq->batch_slot = vq->used_idx;
	}
	vq->batch_id = id;
	vq->batch_len = len;
	vq->used_idx++;
	/* The driver assumes len == in_len for every buffer it skips, so
	 * a short one must be the last of its batch. */
	if (len != vq->in_lens[seq & (vq->num - 1)])
		vq_batch_close(vq);
}

int vq_push(struct vq *vq, const struct vq_elem *e, uint32_t len)
{
	int rc;

	if (!vq->started || vq->broken)
		return -EIO;
	if (len > e->in_len)
		len = e->in_len;
	rc = inorder_complete(&vq->order, e->seq, e->id, len, vq_used_write,
	                      vq);
	if (rc < 0) {
		log_warnx("vq %s: push of head %u (seq %u): not outstanding",
		          vq->name, e->id, e->seq);
		return -EINVAL;
	}
	return 0;
}

static bool vq_signal(struct vq *vq)
{
	uint64_t one = 1;
	ssize_t n;

	do {
		n = write(vq->call_fd, &one, sizeof one);
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof one)
		return true;
	/* A full counter means a signal is already pending. */
	if (n < 0 && errno == EAGAIN)
		return true;
	log_warn("vq %s: signal call fd %d", vq->name, vq->call_fd);
	return false;
}

bool vq_flush(struct vq *vq)
{
	uint16_t old;
	bool valid, need;

	if (!vq->started || vq->broken)
		return false;
	vq_batch_close(vq);
	if (vq->used_idx == vq->signalled_used)
		return false;
	vq_publish(vq);
	/* The driver writes used_event (or its flag) and then reads
	 * used->idx; we wrote used->idx and now read its choice.  Only a
	 * full barrier on both sides guarantees one of us sees the other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	old = vq->signalled_used;
	valid = vq->signalled_valid;
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = true;
	if (vq->event_idx)
		/* After a (re)start we cannot know what the driver last
		 * saw, so the first flush always signals. */
		need = !valid || vring_need_event(vq_load16(vq_used_event(vq)),
		                                  vq->used_idx, old);
	else
		need = !(vq_load16(&vq->avail->flags) &
		         VRING_AVAIL_F_NO_INTERRUPT);
	if (!need || vq->call_fd < 0)
		return false;
	return vq_signal(vq);
}

void vq_status(const struct vq *vq, FILE *out)
{
	fprintf(out, "ring %s: features 0x%" PRIx64 ", IN_ORDER %s, %" PRIu64
	        " buffers used in %" PRIu64 " used entries, largest chain %"
	        PRIu32 " descriptors %" PRIu32 " bytes\n", vq->name,
	        vq->features, vq->in_order ? "on" : "off", vq->buffers_used,
	        vq->used_entries, vq->max_chain_descs, vq->max_chain_bytes);
}

void vq_disable_notify(struct vq *vq)
{
	if (!vq->started || vq->broken)
		return;
	/* With EVENT_IDX the driver kicks only when it passes avail_event,
	 * which stays behind while we drain: nothing to write. */
	if (!vq->event_idx)
		vq_store16(&vq->used->flags, VRING_USED_F_NO_NOTIFY);
}

bool vq_enable_notify(struct vq *vq)
{
	if (!vq->started || vq->broken)
		return false;
	if (vq->event_idx)
		vq_store16(vq_avail_event(vq), vq->last_avail);
	else
		vq_store16(&vq->used->flags, 0);
	/* The driver publishes avail->idx and then reads our request; we
	 * publish the request and then re-read avail->idx. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vq_poppable(vq);
}

int vq_drain(struct vq *vq, struct vq_elem *elem, unsigned budget,
             uint32_t (*fn)(void *arg, const struct vq_elem *elem),
             bool (*want)(void *arg), void *arg)
{
	uint32_t len;
	int rc = 0, r;

	vq_disable_notify(vq);
	for (;;) {
		if (want && !want(arg)) {
			/* Lazy kicks: new buffers are no news while there is
			 * nothing to put in them, and the next drain asks for
			 * a kick if it finds the ring empty (one wake-up less
			 * per packet for an RX queue). */
			if (!vq->lazy_kicks)
				vq_enable_notify(vq);
			break;
		}
		if (budget == 0) {
			/* The rest waits, kicks still off. */
			rc = 1;
			break;
		}
		r = vq_pop(vq, elem);
		if (r < 0) {
			rc = r;
			break;
		}
		if (r == 0) {
			/* Empty: ask for a kick, unless some came in while
			 * we were asking. */
			if (!vq_enable_notify(vq))
				break;
			vq_disable_notify(vq);
			continue;
		}
		budget--;
		len = fn(arg, elem);
		if (len != VQ_HELD)
			vq_push(vq, elem, len);
	}
	vq_flush(vq);
	return rc;
}
