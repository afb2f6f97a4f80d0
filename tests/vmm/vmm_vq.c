/*
 * vmm_vq.c — the guest's split-ring driver, as Linux's virtio_ring behaves:
 * a free list of descriptors (or ring order under IN_ORDER), one indirect
 * table per head, EVENT_IDX both ways, and the IN_ORDER batched used ring
 * read exactly as include/chanfs/vq.h writes it.
 *
 * The device runs in another process, so publishing uses release stores,
 * reading used entries acquire loads, and the notification decisions a
 * full barrier between our store and the device's field we read.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_ring.h>

#include "chanfs/virtio.h"
#include "vmm_priv.h"

#define vmm_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

static inline uint16_t vmm_load16(const volatile uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void vmm_store16(volatile uint16_t *p, uint16_t val)
{
	__atomic_store_n(p, val, __ATOMIC_RELEASE);
}

static bool vmm_pow2_size(unsigned n)
{
	return n && n <= VQ_MAX_SIZE && !(n & (n - 1));
}

/* Where used_event and avail_event live (after each ring's entries). */
static volatile uint16_t *vmm_used_event(struct vmm_vq *vq)
{
	return (volatile uint16_t *)&vq->avail->ring[vq->num];
}

static volatile uint16_t *vmm_avail_event(struct vmm_vq *vq)
{
	return (volatile uint16_t *)&vq->used->ring[vq->num];
}

int vmm_vq_setup(struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = &v->vq[q];
	/* A hostile queue size still gets rings, laid out for 256. */
	unsigned num = vmm_pow2_size(v->o.queue_size) ? v->o.queue_size : 256;
	size_t indir = (size_t)num * VMM_MAX_SG * sizeof(struct vring_desc);
	unsigned i;

	vq->num = num;
	vq->desc_gpa = vmm_alloc_top(v, 16 * num, 4096);
	vq->avail_gpa = vmm_alloc_top(v, 6 + 2 * num, 4096);
	vq->used_gpa = vmm_alloc_top(v, 6 + 8 * num, 4096);
	vq->indir_gpa = vmm_alloc_top(v, indir, 4096);
	if (!vq->desc_gpa || !vq->avail_gpa || !vq->used_gpa || !vq->indir_gpa)
		return -ENOMEM;
	vq->desc = vmm_ptr(v, vq->desc_gpa, 16 * num);
	vq->avail = vmm_ptr(v, vq->avail_gpa, 6 + 2 * num);
	vq->used = vmm_ptr(v, vq->used_gpa, 6 + 8 * num);
	vq->state = calloc(num, sizeof(*vq->state));
	vq->next = calloc(num, sizeof(*vq->next));
	vq->fifo = calloc(num, sizeof(*vq->fifo));
	if (!vq->state || !vq->next || !vq->fifo)
		return -ENOMEM;
	for (i = 0; i < num; i++)
		vq->next[i] = (uint16_t)(i + 1);
	vq->num_free = num;
	return 0;
}

void vmm_vq_reinit(struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = &v->vq[q];
	unsigned num = vq->num, i;

	memset(vq->desc, 0, 16 * num);
	memset(vq->avail, 0, 6 + 2 * num);
	memset(vq->used, 0, 6 + 8 * num);
	memset(vq->state, 0, num * sizeof(*vq->state));
	for (i = 0; i < num; i++)
		vq->next[i] = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->next_desc = 0;
	vq->num_free = num;
	vq->avail_idx = vq->kicked_avail = vq->last_used = 0;
	vq->fifo_head = vq->fifo_n = 0;
	vq->batch = false;
	vq->stop_base = 0;
}

void vmm_vq_free_state(struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = &v->vq[q];

	free(vq->state);
	free(vq->next);
	free(vq->fifo);
	vq->state = NULL;
	vq->next = NULL;
	vq->fifo = NULL;
}

void vmm_vq_started(struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = &v->vq[q];

	vq->event_idx = v->features & VBIT(VIRTIO_RING_F_EVENT_IDX_BIT);
	vq->in_order = v->features & VBIT(VIRTIO_F_IN_ORDER_BIT);
	vq->indirect = v->o.indirect &&
	               (v->features & VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT));
	vq->started = vmm_pow2_size(v->o.queue_size);
}

static struct vmm_vq *vmm_vq_get(const struct vmm *v, unsigned q)
{
	if (q >= v->o.num_queues)
		return NULL;
	return (struct vmm_vq *)&v->vq[q];
}

unsigned vmm_vq_num_free(const struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);

	return vq ? vq->num_free : 0;
}

unsigned vmm_vq_outstanding(const struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);

	if (!vq)
		return 0;
	return (uint16_t)(vq->avail_idx - vq->last_used);
}

int vmm_vq_call_fd(const struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);

	return vq ? vq->call_fd : -1;
}

int vmm_vq_kick_fd(const struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);

	return vq ? vq->kick_fd : -1;
}

void vmm_vq_stats(const struct vmm *v, unsigned q, struct vmm_vq_stats *st)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);

	if (vq)
		*st = vq->st;
	else
		memset(st, 0, sizeof(*st));
}

int vmm_vq_layout(struct vmm *v, unsigned q, struct vmm_vq_layout *l)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);

	if (!vq)
		return -EINVAL;
	l->num = vq->num;
	l->desc_gpa = vq->desc_gpa;
	l->avail_gpa = vq->avail_gpa;
	l->used_gpa = vq->used_gpa;
	l->desc = vq->desc;
	l->avail = vq->avail;
	l->used = vq->used;
	return 0;
}

void vmm_vq_publish_raw(struct vmm *v, unsigned q, uint16_t head)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);

	if (!vq)
		return;
	vq->avail->ring[vq->avail_idx & (vq->num - 1)] = head;
	vq->avail_idx++;
	vmm_store16(&vq->avail->idx, vq->avail_idx);
}

/* Take n descriptors for a chain: ids[0] is the head.  Under IN_ORDER they
 * are the next n in ring order (wrapping), else from the free list. */
static void vmm_vq_take(struct vmm_vq *vq, unsigned n, uint16_t *ids)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		if (vq->in_order) {
			ids[i] = vq->next_desc;
			vq->next_desc = (uint16_t)((vq->next_desc + 1) &
			                           (vq->num - 1));
		} else {
			ids[i] = vq->free_head;
			vq->free_head = vq->next[ids[i]];
		}
	}
	vq->num_free -= n;
}

static void vmm_desc_fill(struct vring_desc *d, const struct vmm_sg *sg,
                          bool writable)
{
	d->addr = sg->gpa;
	d->len = sg->len;
	d->flags = writable ? VRING_DESC_F_WRITE : 0;
	d->next = 0;
}

int vmm_vq_add(struct vmm *v, unsigned q, const struct vmm_sg *out,
               unsigned nout, const struct vmm_sg *in, unsigned nin,
               void *token)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);
	unsigned total = nout + nin, ndesc, i;
	uint16_t ids[VMM_MAX_SG], head;
	struct vmm_dstate *s;
	uint32_t in_len = 0;
	bool indirect;

	if (!vq || !vq->started || !token || total == 0 || total > VMM_MAX_SG)
		return -EINVAL;
	indirect = vq->indirect && total > 1;
	ndesc = indirect ? 1 : total;
	if (vq->num_free < ndesc)
		return -ENOSPC;
	for (i = 0; i < nin; i++)
		in_len += in[i].len;
	vmm_vq_take(vq, ndesc, ids);
	head = ids[0];
	if (indirect) {
		uint64_t tgpa = vq->indir_gpa +
		                (uint64_t)head * VMM_MAX_SG * 16;
		struct vring_desc *t = vmm_ptr(v, tgpa, 16 * total);

		for (i = 0; i < total; i++) {
			bool w = i >= nout;

			vmm_desc_fill(&t[i], w ? &in[i - nout] : &out[i], w);
			if (i + 1 < total) {
				t[i].flags |= VRING_DESC_F_NEXT;
				t[i].next = (uint16_t)(i + 1);
			}
		}
		vq->desc[head].addr = tgpa;
		vq->desc[head].len = 16 * total;
		vq->desc[head].flags = VRING_DESC_F_INDIRECT;
		vq->desc[head].next = 0;
	} else {
		for (i = 0; i < total; i++) {
			struct vring_desc *d = &vq->desc[ids[i]];
			bool w = i >= nout;

			vmm_desc_fill(d, w ? &in[i - nout] : &out[i], w);
			if (i + 1 < total) {
				d->flags |= VRING_DESC_F_NEXT;
				d->next = ids[i + 1];
			}
		}
	}
	s = &vq->state[head];
	s->token = token;
	s->ndesc = (uint16_t)ndesc;
	s->last = ids[ndesc - 1];
	s->in_len = in_len;
	if (vq->in_order)
		vq->fifo[(vq->fifo_head + vq->fifo_n++) & (vq->num - 1)] = head;

	vq->avail->ring[vq->avail_idx & (vq->num - 1)] = head;
	vq->avail_idx++;
	/* descriptors and ring slot before the index */
	vmm_store16(&vq->avail->idx, vq->avail_idx);
	vq->st.added++;
	return 0;
}

bool vmm_vq_kick(struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);
	uint16_t old, new;
	uint64_t one = 1;
	bool need;

	if (!vq || !vq->started)
		return false;
	old = vq->kicked_avail;
	new = vq->avail_idx;
	vq->kicked_avail = new;
	/* our avail->idx store before reading what the device asked for */
	vmm_mb();
	if (vq->event_idx)
		need = vring_need_event(vmm_load16(vmm_avail_event(vq)), new,
		                        old);
	else
		need = !(vmm_load16(&vq->used->flags) & VRING_USED_F_NO_NOTIFY);
	if (!need || old == new)
		return false;
	if (write(vq->kick_fd, &one, sizeof(one)) != sizeof(one))
		return false;
	vq->st.kicks++;
	return true;
}

/* Give back the descriptors of head (the token was already taken). */
static void vmm_vq_detach(struct vmm_vq *vq, uint16_t head)
{
	struct vmm_dstate *s = &vq->state[head];

	if (!vq->in_order) {
		vq->next[s->last] = vq->free_head;
		vq->free_head = head;
	}
	vq->num_free += s->ndesc;
	s->token = NULL;
}

static int vmm_vq_fault(unsigned q, const char *what, unsigned a, unsigned b)
{
	fprintf(stderr, "vmm: queue %u: device fault: %s (%u, %u)\n", q, what,
	        a, b);
	return -EIO;
}

/* IN_ORDER: the next buffer in add order; an entry read from the ring
 * names the last buffer of a batch that starts at the FIFO head. */
static int vmm_vq_get_in_order(struct vmm_vq *vq, unsigned q, void **token,
                               uint32_t *len)
{
	uint16_t head;

	if (!vq->batch) {
		uint16_t used_idx = vmm_load16(&vq->used->idx);
		uint16_t ready = (uint16_t)(used_idx - vq->last_used);
		struct vring_used_elem *e;
		unsigned k;

		if (ready == 0)
			return 0;
		if (ready > vq->fifo_n)
			return vmm_vq_fault(q, "used idx ahead of buffers",
			                    ready, vq->fifo_n);
		e = &vq->used->ring[vq->last_used & (vq->num - 1)];
		vq->batch_id = (uint16_t)__atomic_load_n(&e->id,
		                                         __ATOMIC_RELAXED);
		vq->batch_len = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
		vq->st.used_entries++;
		for (k = 0; k < ready; k++)
			if (vq->fifo[(vq->fifo_head + k) & (vq->num - 1)] ==
			    vq->batch_id)
				break;
		if (k == ready)
			return vmm_vq_fault(q, "used id not among the "
			                    "buffers the used idx covers",
			                    vq->batch_id, ready);
		vq->batch = true;
	}
	head = vq->fifo[vq->fifo_head];
	if (head == vq->batch_id) {
		*len = vq->batch_len;
		vq->batch = false;
		if (*len > vq->state[head].in_len)
			return vmm_vq_fault(q, "used len above writable len",
			                    *len, vq->state[head].in_len);
	} else {
		*len = vq->state[head].in_len;
	}
	vq->fifo_head = (vq->fifo_head + 1) & (vq->num - 1);
	vq->fifo_n--;
	vq->last_used++;
	*token = vq->state[head].token;
	vmm_vq_detach(vq, head);
	return 1;
}

int vmm_vq_get_used(struct vmm *v, unsigned q, void **token, uint32_t *len)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);
	struct vring_used_elem *e;
	uint16_t used_idx;
	uint32_t id;
	int r;

	if (!vq || !vq->started)
		return 0;
	if (vq->in_order) {
		r = vmm_vq_get_in_order(vq, q, token, len);
	} else {
		used_idx = vmm_load16(&vq->used->idx);
		if (used_idx == vq->last_used)
			return 0;
		if ((uint16_t)(used_idx - vq->last_used) >
		    (uint16_t)(vq->avail_idx - vq->last_used))
			return vmm_vq_fault(q, "used idx ahead of buffers",
			                    used_idx, vq->last_used);
		e = &vq->used->ring[vq->last_used & (vq->num - 1)];
		id = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
		*len = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
		vq->st.used_entries++;
		if (id >= vq->num || !vq->state[id].token)
			return vmm_vq_fault(q, "used id not in flight", id,
			                    vq->num);
		if (*len > vq->state[id].in_len)
			return vmm_vq_fault(q, "used len above writable len",
			                    *len, vq->state[id].in_len);
		vq->last_used++;
		*token = vq->state[id].token;
		vmm_vq_detach(vq, (uint16_t)id);
		r = 1;
	}
	if (r == 1)
		vq->st.used_bufs++;
	return r;
}

void vmm_vq_disable_cb(struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);

	if (vq && !vq->event_idx)
		vmm_store16(&vq->avail->flags, VRING_AVAIL_F_NO_INTERRUPT);
}

/* Ask for an interrupt at the next used entry; true if one is already
 * there (then there is nothing to wait for). */
static bool vmm_vq_enable_cb(struct vmm_vq *vq)
{
	if (vq->batch)
		return true;
	if (vq->event_idx)
		vmm_store16(vmm_used_event(vq), vq->last_used);
	else
		vmm_store16(&vq->avail->flags, 0);
	/* our store before the device's used->idx we read */
	vmm_mb();
	return vmm_load16(&vq->used->idx) != vq->last_used;
}

int vmm_vq_wait(struct vmm *v, unsigned q, int timeout_ms)
{
	struct vmm_vq *vq = vmm_vq_get(v, q);
	struct pollfd p[2];
	uint64_t cnt;
	int r;

	if (!vq || !vq->started || vq->call_fd < 0)
		return -EINVAL;
	for (;;) {
		if (vmm_vq_enable_cb(vq))
			return 1;
		p[0] = (struct pollfd){ .fd = vq->call_fd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = v->sock, .events = POLLRDHUP };
		r = poll(p, 2, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return vmm_vq_enable_cb(vq) ? 1 : 0;
		if (p[0].revents & POLLIN) {
			if (read(vq->call_fd, &cnt, sizeof(cnt)) ==
			    sizeof(cnt))
				vq->st.signals += cnt;
			continue;
		}
		if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))
			return vmm_vq_enable_cb(vq) ? 1 : -ECONNRESET;
	}
}

int vmm_wait_any(struct vmm *v, const unsigned *qs, unsigned n,
                 int timeout_ms)
{
	struct pollfd p[VMM_MAX_QUEUES + 1];
	unsigned i;
	uint64_t cnt;
	int r;

	if (n == 0 || n > VMM_MAX_QUEUES)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		struct vmm_vq *vq = vmm_vq_get(v, qs[i]);

		if (!vq || !vq->started || vq->call_fd < 0)
			return -EINVAL;
	}
	for (;;) {
		bool ready = false;

		for (i = 0; i < n; i++)
			ready |= vmm_vq_enable_cb(&v->vq[qs[i]]);
		if (ready)
			return 1;
		for (i = 0; i < n; i++)
			p[i] = (struct pollfd){ .fd = v->vq[qs[i]].call_fd,
			                        .events = POLLIN };
		p[n] = (struct pollfd){ .fd = v->sock, .events = POLLRDHUP };
		r = poll(p, n + 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		for (i = 0; i < n; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			if (read(p[i].fd, &cnt, sizeof(cnt)) == sizeof(cnt))
				v->vq[qs[i]].st.signals += cnt;
		}
		if (p[n].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			for (i = 0; i < n; i++)
				if (vmm_vq_enable_cb(&v->vq[qs[i]]))
					return 1;
			return -ECONNRESET;
		}
	}
	for (i = 0; i < n; i++)
		if (vmm_vq_enable_cb(&v->vq[qs[i]]))
			return 1;
	return 0;
}
