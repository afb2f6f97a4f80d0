/*
 * vmm — a simulated VMM (vhost-user front-end) and guest virtqueue driver,
 * for tests, benchmarks and the chanfs-vmm tool.
 *
 * One struct vmm is one front-end connection: memfd-backed guest memory
 * shared with SET_MEM_TABLE, the handshake QEMU 7.2 performs for
 * vhost-user-vsock, and a split-ring driver per queue that behaves as
 * Linux's virtio_ring does (free list or IN_ORDER ring-order descriptors,
 * indirect tables, EVENT_IDX suppression both ways, IN_ORDER batched used
 * entries).  The back-end runs in another process: every ring access uses
 * the barriers a real driver needs.
 *
 * Single-threaded and poll()-based; nothing here is global, several vmm
 * may coexist.  Errors are returned as -errno (pointer-returning functions:
 * NULL with errno set); protocol failures print one line on stderr naming
 * the step ("vmm: handshake step 17, SET_VRING_ADDR queue 1: ...").
 *
 * The handshake, in QEMU 7.2's order (hw/virtio/vhost-user.c, vhost.c,
 * vhost-user-vsock*.c):
 *   init:  GET_FEATURES, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES,
 *          [GET_QUEUE_NUM if MQ was offered], SET_OWNER, GET_FEATURES,
 *          per queue SET_VRING_CALL (a masked notifier) and
 *          SET_VRING_ERR, GET_CONFIG
 *   start: per queue SET_VRING_CALL (virtio-pci unmasking the vectors
 *          when the guest notifiers are set up), SET_FEATURES,
 *          SET_MEM_TABLE, per queue SET_VRING_NUM, SET_VRING_BASE,
 *          SET_VRING_ADDR, SET_VRING_KICK; per queue SET_VRING_ENABLE 1
 *          (vhost_dev_start(vrings=true)); per queue SET_VRING_CALL
 *          (vhost_vsock_common_start unmasking every queue)
 *   stop:  per queue SET_VRING_ENABLE 0, per queue GET_VRING_BASE, per
 *          queue SET_VRING_CALL (vmm_stop); "cont" sends the start part
 *          again with the bases GET_VRING_BASE replied (vmm_resume), a
 *          guest driver reset the same with base 0 (vmm_restart_driver)
 * Protocol messages are skipped when the back-end does not offer
 * PROTOCOL_FEATURES, GET_QUEUE_NUM unless MQ was negotiated, GET_CONFIG
 * unless CONFIG was.  Like QEMU, REPLY_ACK is negotiated when offered and
 * SET_MEM_TABLE carries NEED_REPLY; opts.need_reply puts it on every
 * message without a reply of its own.  Each message is one "step"
 * (vmm_handshake's max_steps).
 *
 * Checked against the real QEMU 7.2.22 (Debian 12) with chanfs-echodev's
 * trace: init as above with -S; start and stop by driving the PCI
 * function to DRIVER_OK through qtest (with and without MSI-X), then QMP
 * "stop".  The trace matched message for message.
 */
#ifndef CHANFS_TESTS_VMM_H
#define CHANFS_TESTS_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMM_MAX_QUEUES 64
#define VMM_MAX_REGIONS 2
/* Default guest memory size. */
#define VMM_DEFAULT_MEM (64u << 20)
/* Longest chain vmm_vq_add accepts (out + in segments). */
#define VMM_MAX_SG 64

struct vring_desc;
struct vring_avail;
struct vring_used;

/* One guest buffer segment: guest-physical address and length. */
struct vmm_sg {
	uint64_t gpa;
	uint32_t len;
};

/* Connection options.  A zeroed struct (or NULL) means the defaults. */
struct vmm_opts {
	unsigned num_queues;   /* queues set up at start; 0 → 2 */
	unsigned queue_size;   /* SET_VRING_NUM value; 0 → 256.  Passed on
	                          as given (hostile tests may use 0, 3,
	                          65536); rings are laid out for it when it
	                          is a power of two ≤ 32768 */
	uint64_t features;     /* optional virtio feature bits wanted on top
	                          of VERSION_1 and PROTOCOL_FEATURES, e.g.
	                          VBIT(VIRTIO_RING_F_EVENT_IDX_BIT); only the
	                          bits the back-end offers are negotiated */
	size_t mem_size;       /* guest memory bytes; 0 → VMM_DEFAULT_MEM */
	unsigned regions;      /* 0 or 1: one region; 2: two regions,
	                          adjacent in gpa but at unrelated front-end
	                          virtual addresses and file offsets, so a
	                          buffer across the boundary is split */
	bool need_reply;       /* set NEED_REPLY on every message that has
	                          no reply of its own (default: only on
	                          SET_MEM_TABLE, as QEMU 7.2); acks are
	                          checked */
	bool no_reply_ack;     /* do not negotiate REPLY_ACK (QEMU does
	                          when offered); then nothing is acked */
	bool indirect;         /* vmm_vq_add puts each chain of 2+ segments
	                          in one indirect table (when INDIRECT_DESC
	                          was negotiated) */
	int config_size;       /* bytes GET_CONFIG asks for; 0 → 8 (vsock's
	                          le64 guest CID); < 0 → no GET_CONFIG */
	int timeout_ms;        /* waiting for the socket file to appear and
	                          for each reply; 0 → 10000 */
	bool verbose;          /* trace every message on stderr */
	bool unsealed;         /* guest memory without QEMU's seals (grow,
	                          shrink, seal): hostile tests */
};

struct vmm;

/* --- connection ------------------------------------------------------- */

/* Connect to the back-end listening at socket_path (retrying until the
 * socket accepts or opts->timeout_ms passes), create guest memory and lay
 * out the rings, then run the whole handshake (init and start).  Returns
 * NULL with errno set (and a line on stderr naming the failed step). */
struct vmm *vmm_connect(const char *socket_path, const struct vmm_opts *opts);
/* Same, but send nothing: guest memory and ring layout exist, the socket
 * is connected.  Continue with vmm_handshake / vmm_send_msg. */
struct vmm *vmm_connect_raw(const char *socket_path,
                            const struct vmm_opts *opts);
/* Run the handshake's steps that have not run yet (see the list at the
 * top), at most max_steps of them (0: all).  Returns the number of steps
 * run by this call (0 when the handshake is complete), or -errno at the
 * first failing step (the connection is then unusable). */
int vmm_handshake(struct vmm *v, unsigned max_steps);
/* Run handshake steps until the next one would send request (for queue q
 * when request is per queue; q is ignored otherwise).  Returns the number
 * of steps run, -ENOENT if no remaining step sends it (the handshake is
 * then complete), -errno at a failing step. */
int vmm_handshake_until(struct vmm *v, uint32_t request, unsigned q);
/* True once every handshake step has run. */
bool vmm_handshake_complete(const struct vmm *v);
/* Length of the step list for this connection's options (steps that turn
 * out not to apply count here but are skipped by vmm_handshake). */
unsigned vmm_handshake_steps(const struct vmm *v);
/* Stop the device as QEMU 7.2 does for a QMP "stop" and a guest driver
 * reset alike: SET_VRING_ENABLE 0 on every queue (with PROTOCOL_FEATURES),
 * GET_VRING_BASE on every queue (the replies are kept), SET_VRING_CALL on
 * every queue (the masked notifiers).  Returns 0 or -errno.  The queues'
 * drivers keep their state; nothing may be added until a start. */
int vmm_stop(struct vmm *v);
/* Start a stopped device again as QEMU 7.2 does on "cont": the start
 * steps of the handshake (CALL, SET_FEATURES, SET_MEM_TABLE, per queue
 * NUM, BASE = what GET_VRING_BASE replied, ADDR, KICK with the same
 * eventfd, ENABLE 1, CALL).  0, -EINVAL when not stopped, -errno. */
int vmm_resume(struct vmm *v);
/* A guest driver reset: stop (unless stopped), set every queue up anew
 * (zeroed rings at the same addresses, the driver's buffers forgotten),
 * then the start steps with base 0.  0 or -errno. */
int vmm_restart_driver(struct vmm *v);
/* SET_MEM_TABLE again while the rings run (as a memory hotplug does; the
 * same table).  0 or -errno. */
int vmm_set_mem_table(struct vmm *v);
/* Close the socket and every fd, unmap and free guest memory.  NULL ok. */
void vmm_disconnect(struct vmm *v);

/* Features the back-end offered (GET_FEATURES), and what was negotiated
 * (SET_FEATURES; 0 before start). */
uint64_t vmm_offered_features(const struct vmm *v);
uint64_t vmm_features(const struct vmm *v);
/* Protocol features offered and negotiated. */
uint64_t vmm_offered_protocol_features(const struct vmm *v);
uint64_t vmm_protocol_features(const struct vmm *v);
/* Queue count from GET_QUEUE_NUM (0 if it was not asked). */
unsigned vmm_queue_num(const struct vmm *v);
/* Config bytes from GET_CONFIG; *len gets their count (0 if none). */
const uint8_t *vmm_config(const struct vmm *v, uint32_t *len);

/* --- guest memory ----------------------------------------------------- */

/* Allocate len bytes of guest memory aligned to align (a power of two, 0 →
 * 16) and return its gpa, or 0 when memory is exhausted (gpa 0 is never
 * handed out).  A bump allocator: free with vmm_release.  With two regions
 * allocations start 61000 bytes below the region boundary (no power of
 * two, so aligned slots do not end at it): buffers allocated first
 * straddle it.  The memory is zeroed at connect, not per alloc. */
uint64_t vmm_alloc(struct vmm *v, size_t len, size_t align);
/* The allocator's current position, and a return to it: every allocation
 * made after the mark is freed.  Rings are allocated before any mark. */
uint64_t vmm_alloc_mark(const struct vmm *v);
void vmm_release(struct vmm *v, uint64_t mark);
/* Our pointer to guest-physical [gpa, gpa + len), or NULL when any of it
 * is outside guest memory.  Guest memory is one contiguous mapping on the
 * driver side, whatever the regions. */
void *vmm_ptr(struct vmm *v, uint64_t gpa, size_t len);
/* Guest memory size, and the gpa where region 1 starts (0 with one). */
uint64_t vmm_mem_size(const struct vmm *v);
uint64_t vmm_region_boundary(const struct vmm *v);
/* The memfd behind guest memory (owned by the vmm). */
int vmm_mem_fd(const struct vmm *v);

/* --- split-ring driver ------------------------------------------------ */

/* Make a buffer available on queue q: nout device-readable segments, then
 * nin device-writable ones (1 ≤ nout + nin ≤ VMM_MAX_SG).  token (not
 * NULL) comes back from vmm_vq_get_used.  Uses one indirect table when
 * opts.indirect asked for it, INDIRECT_DESC was negotiated and there are
 * 2+ segments; else a direct chain.  Under IN_ORDER descriptors are taken
 * in ring order.  The avail index is published at once (no kick).
 * Returns 0, -ENOSPC (not enough free descriptors), -EINVAL (bad queue or
 * counts, queue not started). */
int vmm_vq_add(struct vmm *v, unsigned q, const struct vmm_sg *out,
               unsigned nout, const struct vmm_sg *in, unsigned nin,
               void *token);
/* Free descriptors on queue q (what limits vmm_vq_add). */
unsigned vmm_vq_num_free(const struct vmm *v, unsigned q);
/* Buffers added and not yet returned by vmm_vq_get_used. */
unsigned vmm_vq_outstanding(const struct vmm *v, unsigned q);
/* Notify the device of new buffers if it wants to be notified (avail_event
 * under EVENT_IDX, else VRING_USED_F_NO_NOTIFY).  Returns true if the kick
 * eventfd was written. */
bool vmm_vq_kick(struct vmm *v, unsigned q);
/* Take the next used buffer: 1 with *token and *len set, 0 when none is
 * used yet, -EIO when the device broke the protocol (unknown id, used
 * index running ahead of the buffers outstanding, len above the buffer's
 * writable length), logged.  Under IN_ORDER one used entry may complete a
 * batch: it sits in the slot of the batch's first buffer and carries the
 * last buffer's id and len; the buffers before the last are returned one
 * per call with len = their whole writable length. */
int vmm_vq_get_used(struct vmm *v, unsigned q, void **token, uint32_t *len);
/* Sleep until queue q has a used buffer: re-enable interrupts (used_event
 * = next used index under EVENT_IDX, else clear NO_INTERRUPT), check the
 * ring again, then wait on the call eventfd.  Returns 1 when a used buffer
 * is there, 0 after timeout_ms (< 0: forever), -ECONNRESET when the
 * back-end closed the socket, -errno otherwise. */
int vmm_vq_wait(struct vmm *v, unsigned q, int timeout_ms);
/* Sleep until any of the n queues qs[] has a used buffer (as vmm_vq_wait,
 * for several queues at once).  Returns 1, 0 on timeout, -errno. */
int vmm_wait_any(struct vmm *v, const unsigned *qs, unsigned n,
                 int timeout_ms);
/* Ask the device not to interrupt (VRING_AVAIL_F_NO_INTERRUPT; under
 * EVENT_IDX used_event is simply left behind). */
void vmm_vq_disable_cb(struct vmm *v, unsigned q);
/* The eventfds of queue q (owned by the vmm): the back-end writes call,
 * we write kick. */
int vmm_vq_call_fd(const struct vmm *v, unsigned q);
int vmm_vq_kick_fd(const struct vmm *v, unsigned q);

struct vmm_vq_stats {
	uint64_t added;        /* buffers made available */
	uint64_t kicks;        /* kick eventfd writes */
	uint64_t used_entries; /* used ring entries read */
	uint64_t used_bufs;    /* buffers returned by vmm_vq_get_used */
	uint64_t signals;      /* call eventfd wake-ups (counter value sum) */
};
void vmm_vq_stats(const struct vmm *v, unsigned q, struct vmm_vq_stats *st);

/* Where queue q's rings are, for tests that write hostile bytes into them
 * (desc table, avail ring: write; used ring: read).  Barriers are the
 * caller's business then. */
struct vmm_vq_layout {
	unsigned num;          /* queue size the rings are laid out for */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
};
int vmm_vq_layout(struct vmm *v, unsigned q, struct vmm_vq_layout *l);
/* Put head into the next avail slot and publish avail->idx (release
 * barrier), bypassing the driver's descriptor bookkeeping.  For hostile
 * tests; the queue's driver state is not updated. */
void vmm_vq_publish_raw(struct vmm *v, unsigned q, uint16_t head);

/* --- raw protocol access (hostile tests) ------------------------------ */

/* Send one message: the 12-byte header (request, flags, size) then size
 * payload bytes, with nfds fds as SCM_RIGHTS.  flags are sent as given
 * (include VU_VERSION).  To send a header whose size field disagrees with
 * the bytes that follow, use vmm_send_bytes.  Returns 0 or -errno. */
int vmm_send_msg(struct vmm *v, uint32_t request, uint32_t flags,
                 const void *payload, uint32_t size, const int *fds,
                 int nfds);
/* Send arbitrary bytes on the socket (with optional fds).  0 or -errno. */
int vmm_send_bytes(struct vmm *v, const void *buf, size_t len,
                   const int *fds, int nfds);
/* Receive one reply to request: checks the header's request and REPLY
 * flag, copies up to max payload bytes into payload.  Returns the
 * payload size, -ETIMEDOUT, -ECONNRESET (back-end closed), -EPROTO (wrong
 * request, flags or size). */
int vmm_recv_reply(struct vmm *v, uint32_t request, void *payload,
                   uint32_t max);
/* Wait up to timeout_ms for the back-end to close the connection (reading
 * and discarding anything it sends).  Returns 1 if it closed, 0 if not. */
int vmm_wait_closed(struct vmm *v, int timeout_ms);
/* The connected socket (owned by the vmm). */
int vmm_sock(const struct vmm *v);

/* The memory table vmm_handshake sends (one or two regions), for hostile
 * variations: writes at most max entries, returns the count.  Each entry's
 * fd is vmm_mem_fd(). */
struct vu_mem_region;
unsigned vmm_mem_regions(const struct vmm *v, struct vu_mem_region *r,
                         unsigned max);

#endif
