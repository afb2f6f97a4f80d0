/*
 * vmm_flood — a guest re-posting on one queue as fast as the device drains.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_ring.h>

#include "vmm.h"
#include "vmm_flood.h"

/* No device writes this id: a head is always below the ring size. */
#define FLOOD_UNSEEN 0xffffffffu
/* Most buffers re-posted at once. */
#define FLOOD_BATCH 64

struct vmm_flood {
	struct vmm_vq_layout l;
	int kick_fd;
	pthread_t thread;
	atomic_bool stop;
	atomic_uint_fast64_t consumed;
};

static void *flood_run(void *arg)
{
	struct vmm_flood *f = arg;
	uint16_t seen = 0, avail;
	uint64_t one = 1;

	avail = (uint16_t)f->l.num;
	__atomic_store_n(&f->l.avail->idx, avail, __ATOMIC_RELEASE);
	if (write(f->kick_fd, &one, sizeof one) < 0)
		return NULL;
	while (!atomic_load(&f->stop)) {
		unsigned n = 0;

		/* Each entry the device wrote frees its buffer again; they go
		 * back in batches (cheaper than the device's work on them),
		 * so the guest stays a whole ring ahead. */
		while (n < FLOOD_BATCH) {
			uint32_t *id = &f->l.used->ring[seen & (f->l.num - 1)].id;

			if (__atomic_load_n(id, __ATOMIC_ACQUIRE) == FLOOD_UNSEEN)
				break;
			__atomic_store_n(id, FLOOD_UNSEEN, __ATOMIC_RELAXED);
			seen++;
			n++;
		}
		if (n == 0) {
			/* Spin, never sleep. */
			__builtin_ia32_pause();
			continue;
		}
		avail = (uint16_t)(seen + f->l.num);
		__atomic_store_n(&f->l.avail->idx, avail, __ATOMIC_RELEASE);
		atomic_fetch_add(&f->consumed, n);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!(__atomic_load_n(&f->l.used->flags, __ATOMIC_RELAXED) &
		      VRING_USED_F_NO_NOTIFY) &&
		    write(f->kick_fd, &one, sizeof one) < 0)
			break;
	}
	return NULL;
}

struct vmm_flood *vmm_flood_start(struct vmm *v, unsigned q, const void *buf,
                                  size_t len, unsigned nseg)
{
	struct vring_desc *table;
	struct vmm_flood *f;
	uint64_t gpa, tgpa = 0;
	unsigned i;

	if (nseg == 0)
		nseg = 1;
	if (len < nseg || len > UINT32_MAX || nseg > 32768 ||
	    (nseg > 1 && !(vmm_features(v) &
	                   (1ull << VIRTIO_RING_F_INDIRECT_DESC)))) {
		errno = EINVAL;
		return NULL;
	}
	f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	if (vmm_vq_layout(v, q, &f->l) < 0 || f->l.num == 0 ||
	    (gpa = vmm_alloc(v, len, 16)) == 0 ||
	    (nseg > 1 && (tgpa = vmm_alloc(v, nseg * sizeof *table, 16)) == 0)) {
		free(f);
		errno = EINVAL;
		return NULL;
	}
	memcpy(vmm_ptr(v, gpa, len), buf, len);
	if (nseg > 1) {
		/* One table for every buffer: the bytes in nseg pieces. */
		table = vmm_ptr(v, tgpa, nseg * sizeof *table);
		for (i = 0; i < nseg; i++) {
			size_t from = len * i / nseg, to = len * (i + 1) / nseg;

			table[i].addr = gpa + from;
			table[i].len = (uint32_t)(to - from);
			table[i].flags = i + 1 < nseg ? VRING_DESC_F_NEXT : 0;
			table[i].next = (uint16_t)(i + 1);
		}
	}
	f->kick_fd = vmm_vq_kick_fd(v, q);
	/* Every slot offers descriptor i, every descriptor the one buffer. */
	for (i = 0; i < f->l.num; i++) {
		f->l.desc[i].addr = nseg > 1 ? tgpa : gpa;
		f->l.desc[i].len = (uint32_t)(nseg > 1 ? nseg * sizeof *table :
		                              len);
		f->l.desc[i].flags = nseg > 1 ? VRING_DESC_F_INDIRECT : 0;
		f->l.desc[i].next = 0;
		f->l.avail->ring[i] = (uint16_t)i;
		f->l.used->ring[i].id = FLOOD_UNSEEN;
	}
	f->l.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	if ((errno = pthread_create(&f->thread, NULL, flood_run, f)) != 0) {
		free(f);
		return NULL;
	}
	return f;
}

uint64_t vmm_flood_consumed(struct vmm_flood *f)
{
	return atomic_load(&f->consumed);
}

void vmm_flood_stop(struct vmm_flood *f)
{
	if (!f)
		return;
	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
	free(f);
}
