/*
 * vmm_priv.h — the simulated VMM's internals, shared by vmm.c (connection,
 * guest memory, handshake), vmm_msg.c (wire I/O) and vmm_vq.c (driver).
 */
#ifndef CHANFS_TESTS_VMM_PRIV_H
#define CHANFS_TESTS_VMM_PRIV_H

#include <stdint.h>

#include "vmm.h"

/* Descriptor bookkeeping per head (the driver's shadow: the device can
 * scribble over the descriptor table, so we never read chains back). */
struct vmm_dstate {
	void *token;       /* NULL: head not in flight */
	uint16_t ndesc;    /* descriptors the chain took in the table */
	uint16_t last;     /* last descriptor of the chain */
	uint32_t in_len;   /* device-writable bytes */
};

struct vmm_vq {
	unsigned num;            /* size the rings are laid out for */
	uint64_t desc_gpa, avail_gpa, used_gpa, indir_gpa;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	int kick_fd, call_fd, masked_call_fd, err_fd;
	bool started;
	bool event_idx, in_order, indirect;
	uint16_t stop_base;      /* GET_VRING_BASE's reply at vmm_stop */

	struct vmm_dstate *state; /* by head */
	uint16_t *next;          /* shadow of desc[i].next (free list) */
	uint16_t free_head;      /* free list (not IN_ORDER) */
	uint16_t next_desc;      /* next descriptor to take (IN_ORDER) */
	unsigned num_free;
	uint16_t avail_idx;      /* what we published in avail->idx */
	uint16_t kicked_avail;   /* avail idx at the last kick decision */
	uint16_t last_used;      /* used ring position consumed so far */

	/* IN_ORDER: heads outstanding, in the order they were added */
	uint16_t *fifo;
	unsigned fifo_head, fifo_n;
	/* IN_ORDER: a batch entry being returned buffer by buffer */
	bool batch;
	uint16_t batch_id;
	uint32_t batch_len;

	struct vmm_vq_stats st;
};

struct vmm {
	struct vmm_opts o;       /* with defaults filled in */
	int sock;

	/* guest memory */
	int memfd;
	uint8_t *base;           /* whole memory, contiguous, ours */
	uint8_t *map1;           /* region 1's own mapping (two regions) */
	uint64_t size;
	uint64_t boundary;       /* gpa of region 1 (0: one region) */
	uint64_t brk;            /* next data allocation */
	uint64_t top;            /* ring allocations grow down from here */

	/* negotiation */
	uint64_t offered, features;
	uint64_t offered_proto, proto;
	unsigned queue_num;
	uint8_t config[256];
	uint32_t config_len;

	/* handshake progress */
	unsigned step;           /* index into the step list */
	unsigned nsteps;
	bool stopped;            /* vmm_stop ran, no start since */
	bool resuming;           /* SET_VRING_BASE sends stop_base */

	struct vmm_vq vq[VMM_MAX_QUEUES];
};

/* vmm_msg.c */
/* Send a message, then (NEED_REPLY) wait for its ack.  For messages that
 * carry no reply of their own. */
int vmm_msg_set(struct vmm *v, uint32_t request, const void *payload,
                uint32_t size, const int *fds, int nfds);
int vmm_msg_set_u64(struct vmm *v, uint32_t request, uint64_t val,
                    const int *fds, int nfds);
int vmm_msg_set_state(struct vmm *v, uint32_t request, uint32_t index,
                      uint32_t num);
/* Send a request and receive its reply payload of exactly size bytes. */
int vmm_msg_get(struct vmm *v, uint32_t request, const void *payload,
                uint32_t psize, void *reply, uint32_t size);
/* Name of a request for messages ("SET_VRING_NUM"). */
const char *vmm_req_name(uint32_t request);

/* vmm_handshake.c: length of the step list */
unsigned vmm_hs_count_steps(const struct vmm *v);

/* vmm_vq.c */
/* Lay out queue q's rings and driver state (at connect). */
int vmm_vq_setup(struct vmm *v, unsigned q);
/* Mark queue q started with the negotiated features. */
void vmm_vq_started(struct vmm *v, unsigned q);
/* Forget queue q's buffers and zero its rings, as a driver that sets the
 * queue up again after a reset (the tokens outstanding are dropped). */
void vmm_vq_reinit(struct vmm *v, unsigned q);
void vmm_vq_free_state(struct vmm *v, unsigned q);
/* vmm.c: allocate from the top of guest memory (rings; never released). */
uint64_t vmm_alloc_top(struct vmm *v, size_t len, size_t align);
/* gpa → front-end virtual address (for SET_VRING_ADDR). */
uint64_t vmm_gpa_to_uva(const struct vmm *v, uint64_t gpa);

#endif
