/*
 * The vq test fixture: a test driver writing split rings into memfd-backed
 * guest memory, shared by test_vq.c and test_vq_hostile.c.
 *
 * Guest memory is two adjacent regions from separate memfds:
 *   A [0x00000, 0x10000)  rings, indirect tables, data
 *   B [0x10000, 0x20000)  data (a buffer may straddle the edge)
 * and nothing above.
 */
#ifndef CHANFS_TEST_VQ_FIXTURE_H
#define CHANFS_TEST_VQ_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_ring.h>

#include "chanfs/gmem.h"
#include "chanfs/virtio.h"
#include "chanfs/vq.h"

#define REGION   0x10000ULL
#define MEM_END  (2 * REGION)
#define RING1    0x0000ULL  /* desc +0, avail +0x2000, used +0x3000 */
#define RING2    0x5000ULL
#define IND      0x9000ULL  /* indirect tables */
#define DATA     0xc000ULL  /* buffers (region A), region B follows */

#define F_INDIRECT VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT)
#define F_EVENT    VBIT(VIRTIO_RING_F_EVENT_IDX_BIT)
#define F_INORDER  VBIT(VIRTIO_F_IN_ORDER_BIT)

#define R  0
#define W  VRING_DESC_F_WRITE
#define N  VRING_DESC_F_NEXT
#define I  VRING_DESC_F_INDIRECT

/* What an unwritten used ring entry holds. */
#define UNUSED_MARK 0xdeadbeefU

/* One queue as the test driver sees it. */
struct tring {
	struct vq vq;
	uint16_t num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx; /* the driver's */
	int call;           /* eventfd the queue signals */
	bool started;
};

struct fx {
	struct gmem mem;
	struct tring r, r2;
	struct vq_elem *e[8];
};

/* cmocka setup/teardown: guest memory, elements (heap, exact size). */
int fx_setup(void **state);
int fx_teardown(void **state);

/* Our pointer to guest [a, a + len); fails the test if not mapped. */
void *gpa(struct fx *f, uint64_t a, uint64_t len);
/* Lay out and start a queue at base (desc +0, avail +0x2000, used
 * +0x3000) with both indices at idx; used entries hold UNUSED_MARK. */
void ring_start(struct fx *f, struct tring *r, const char *name,
                uint64_t base, uint16_t num, uint64_t features,
                uint16_t idx);
void ring_stop(struct tring *r);

void set_desc(struct vring_desc *t, uint16_t i, uint64_t addr,
              uint32_t len, uint16_t flags, uint16_t next);
struct vring_desc *table_at(struct fx *f, uint64_t a, unsigned n);
/* Post head and publish the new avail index. */
void post(struct tring *r, uint16_t head);
/* Post a single writable descriptor id of len bytes at DATA + id * 0x100. */
void post_writable(struct tring *r, uint16_t id, uint32_t len);

uint16_t used_idx(const struct tring *r);
uint32_t used_id(const struct tring *r, uint16_t k);
uint32_t used_len(const struct tring *r, uint16_t k);
void set_used_event(struct tring *r, uint16_t v);
uint16_t avail_event(const struct tring *r);
/* Signals since the last call (the eventfd counter, read and reset). */
uint64_t signals(const struct tring *r);

/* The second queue (RING2) on the same memory pops and completes. */
void assert_other_queue_works(struct fx *f);
/* Pop on f->r must break the queue with exactly one log line containing
 * needle, and the queue must stay dead while the other one works. */
void pop_breaks(struct fx *f, const char *needle);

#endif
