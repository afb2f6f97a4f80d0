/*
 * vu — vhost-user protocol server (back-end side), on the loop.
 *
 * Listens on a UNIX socket (mode 0600) and serves one front-end at a time.
 * A second client while one is connected is turned away at once (one log
 * line) if the connected one has sent SET_OWNER; if it has not, it is
 * presumed stalled and dropped in favour of the newcomer, so a real VMM
 * always gets in after a stalled one.  A front-end that has not sent
 * SET_OWNER 10 s after connecting, or that stops in the middle of a
 * message for 10 s, is dropped (one log line).  Every
 * message is validated (header, payload size, fd count, queue index, queue
 * size, memory regions) before it is acted on.  A malformed message gets one
 * log line naming the request and what was wrong, then an error reply where
 * the protocol has one (REPLY_ACK) or the connection is dropped.  When the
 * front-end goes away (or is dropped), every queue is stopped, the device's
 * reset() is called, every mapping and fd is released, and the next
 * front-end is accepted.
 *
 * Devices plug in through struct vu_device and never see the protocol.
 *
 * Features: GET_FEATURES offers the device's bits plus VERSION_1,
 * INDIRECT_DESC, EVENT_IDX, IN_ORDER and PROTOCOL_FEATURES; SET_FEATURES
 * must be a subset, and may not change while a ring runs.  Protocol
 * features offered: MQ, REPLY_ACK, CONFIG (VU_PROTOCOL_FEATURES).
 *
 * Rings: a ring starts (vq_start, then queue_started and one queue_kicked
 * for buffers posted before the start) as soon as it has a size, addresses
 * inside guest memory (checked for their full size and alignment), a kick
 * fd, and is enabled: always without PROTOCOL_FEATURES, else after
 * SET_VRING_ENABLE 1.  SET_VRING_ENABLE 0 stops it (queue_stopped) and 1
 * resumes it where it stopped.  GET_VRING_BASE stops it, replies the index
 * to resume from, and forgets the kick fd: the ring starts again only with
 * a new one.  Size, base and addresses cannot change under a running ring.
 * Kick, call and error fds must be eventfds; a kick without an fd (polling)
 * is refused.
 *
 * Stopped is not ended.  QEMU stops the rings for a VM pause (QMP stop,
 * virsh suspend, snapshots), a memory table change and a guest driver
 * reset alike; the device learns of a stop through queue_stopped only, and
 * keeps its state.  Seen from QEMU 7.2 (Debian 12) with a Linux 6.1
 * guest:
 *   QMP stop:  SET_VRING_ENABLE 0 per ring, GET_VRING_BASE per ring
 *              (replies: the avail index to resume from), SET_VRING_CALL
 *              per ring.
 *   QMP cont:  SET_VRING_CALL per ring, SET_FEATURES, SET_MEM_TABLE, per
 *              ring SET_VRING_NUM, SET_VRING_BASE (the index GET_VRING_BASE
 *              replied), SET_VRING_ADDR (the same addresses),
 *              SET_VRING_KICK; SET_VRING_ENABLE 1 per ring; SET_VRING_CALL
 *              per ring.
 *   driver reset (unbind, rmmod/insmod): the stop above at the reset, the
 *              start above when the driver is back, but SET_VRING_BASE 0
 *              and the addresses of the driver's new rings.
 *   QEMU exits (SIGTERM): the stop above, then the socket closes; QEMU
 *              killed: the socket closes.
 * A ring's start is a resume when it continues exactly where the ring
 * stopped: the same base as the stop's (GET_VRING_BASE's reply), a used
 * index in guest memory equal to the one published at the stop (a driver
 * that sets its rings up again zeroes it), and the same three addresses.
 * Any other start of a ring that stopped since the device's last reset is
 * a driver restart: every running ring is stopped, reset() is called, and
 * they all start afresh.  The device runs on a later ring only once every
 * ring it needs has started, so a restart that only the second ring shows
 * (QEMU starts them one after the other) is still caught before the
 * device acts.  The one start the rule cannot tell is a driver restart on
 * the same ring memory while every changed index sits at 0 again (each
 * ring used a multiple of 65536 times): it counts as a resume, and the
 * guest's RST to the host's next packet ends each stale connection.
 * reset() is also called when the front-end goes away and on RESET_OWNER.
 * A stop itself never tells a pause from a driver reset, so after a guest
 * unbinds its driver the device keeps its state until the driver starts
 * the rings again (then the restart resets it) or the front-end leaves.
 * RESET_DEVICE and SET_STATUS are not offered (their protocol features
 * are not), so QEMU does not send them.  Offered on a trial, STATUS made
 * QEMU 7.2 send GET_STATUS at each start and SET_STATUS 0x8 (FEATURES_OK)
 * at the first, and nothing at a stop or a driver reset: no help.
 *
 * SET_MEM_TABLE replaces the whole table (1..8 regions, one fd each:
 * memory files (memfd, shmem, hugetlbfs) sealed with F_SEAL_SHRINK and
 * holding every byte mapped).  The seal is what makes the size check
 * last: a file that could shrink after mmap would turn the next guest
 * access into SIGBUS.  QEMU's memory-backend-memfd seals by default
 * (seal=on); memory-backend-file (a /dev/shm or hugetlbfs path) cannot be
 * sealed and is refused with one log line.  Rings running at that moment
 * are stopped first (so the device lets go of every element pointing into
 * the old mappings; chains it had not completed are given back to the
 * driver by vq_stop) and restarted on the new table.  A table that fails
 * to map leaves the old one in place.
 *
 * Peer fds.  Nothing a front-end hands over may make chanfs wait, least
 * of all on itself: an fd on chanfs's own FUSE mount that the loop closed,
 * fstat'ed or polled would send the request to the loop that is making
 * the call, and the process would hang for good.  So, for every fd a
 * message brings:
 *  - recvmsg only installs it (no call into its file; its buffer holds
 *    SCM_MAX_FD fds, so the kernel never drops one here, and a dropped one
 *    would only be released: FUSE's RELEASE does not wait); fds past the 8 a
 *    message may carry, fds of a message cut short by a disconnect and
 *    fds of a message that fails before its handler are never looked at:
 *    they go to the closer thread;
 *  - before anything else it is classified with readlink(/proc/self/fd/N)
 *    ("anon_inode:[eventfd]", or its path) and fcntl(F_GET_SEALS), which
 *    the kernel answers without the fd's file system (vu_fd.c).  An fd
 *    whose path lies on chanfs's mount refuses the whole message with one
 *    line naming it;
 *  - only an eventfd is used as kick, call or error fd (then fcntl
 *    O_NONBLOCK, epoll, read/write of 8 bytes, close: eventfd's own
 *    operations, never blocking);
 *  - only a memory file sealed against shrinking is used as a region
 *    (then fstat, mmap, close: shmem's or hugetlbfs's, never FUSE);
 *  - every other fd gets no call at all on the loop: the closer thread
 *    (one per vu, started on first use) closes it, and may wait there for
 *    a FLUSH that the loop meanwhile answers;
 *  - fds still queued unread when chanfs ends a connection (behind a
 *    refused message, or on a client turned away) are released by the
 *    kernel in whichever thread closes the connection, and a last close
 *    may wait (a TCP socket's SO_LINGER): so the connection is shut down
 *    at once and, with any byte still queued, closed by the closer thread.
 *
 * Replies: with REPLY_ACK negotiated, a message with NEED_REPLY that has no
 * reply of its own is answered u64 0 on success, 1 on failure, and the
 * connection stays.  GET_CONFIG's error reply is an empty payload.  Any
 * other failure drops the connection, and so does a malformed header
 * (version, payload over VU_MAX_PAYLOAD) whatever was negotiated.
 */
#ifndef CHANFS_VU_H
#define CHANFS_VU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct loop;
struct vq;

/* The most queues a device may have (console: 2 per port and 2 for
 * control, so 31 ports; the vring index field allows 256). */
#define VU_MAX_QUEUES 64
/* Largest payload accepted (anything larger is malformed). */
#define VU_MAX_PAYLOAD 4096

struct vu_device {
	const char *name;        /* for log lines: "vsock" */
	uint64_t features;       /* device feature bits; vu adds VERSION_1,
	                            INDIRECT_DESC, EVENT_IDX, IN_ORDER and
	                            PROTOCOL_FEATURES */
	unsigned num_queues;     /* 1..VU_MAX_QUEUES */
	uint32_t config_size;    /* bytes of config space (0..256) */
	/* Copy config space [off, off+len) into buf; vu has checked the range
	 * against config_size. */
	void (*get_config)(void *ctx, uint32_t off, void *buf, uint32_t len);
	/* Queue q has started: vq is set up, enabled and has a kick fd.  The
	 * pointer stays valid until queue_stopped.  Since the last reset()
	 * (or the first start) this is the same driver: a resume continues
	 * where queue_stopped left off. */
	void (*queue_started)(void *ctx, unsigned q, struct vq *vq);
	/* The driver kicked queue q (the kick eventfd fired). */
	void (*queue_kicked)(void *ctx, unsigned q, struct vq *vq);
	/* Queue q is stopping (GET_VRING_BASE, disable, a memory table
	 * change, or before a reset): finish with vq now, it is invalid after
	 * the call returns; elements popped and not completed go back to the
	 * driver.  Not the end of the device: keep its state (connections,
	 * data, replies not sent yet) for when the queue starts again. */
	void (*queue_stopped)(void *ctx, unsigned q, struct vq *vq);
	/* The device ended (the front-end went away, RESET_OWNER, or the
	 * driver restarted its rings): drop all device state (connections...).
	 * Called with every queue stopped. */
	void (*reset)(void *ctx);
};

struct vu;

/* Listen on path (mode 0600) and serve dev.  A socket file already there
 * is first connected to: when someone answers (another chanfs) vu_new
 * fails with EADDRINUSE and leaves it alone; when nobody does, it is
 * replaced (one log line).  Any other file there makes it fail with
 * EEXIST.  Returns NULL with errno set (and a log line) on failure. */
struct vu *vu_new(struct loop *l, const char *path,
                  const struct vu_device *dev, void *ctx);
/* Drop any front-end (resetting the device), stop listening, unlink the
 * socket path, free. */
void vu_free(struct vu *vu);

/* Name chanfs's own mount (an absolute path; copied), so that a front-end
 * fd on it is named as such in the refusal's log line. */
int vu_set_mountpoint(struct vu *vu, const char *mountpoint);

/* One line on the front-end for `status`: "vhost-user: front-end pid P
 * uid U, handshake|ready|running, N messages" or "vhost-user: no
 * front-end, listening on PATH". */
void vu_status(const struct vu *vu, FILE *out);

/* True while a front-end is connected and the device has been started
 * (at least one queue running). */
bool vu_running(const struct vu *vu);
/* Negotiated virtio features (0 before SET_FEATURES). */
uint64_t vu_features(const struct vu *vu);

/* --- the wire protocol (docs/interop/vhost-user.rst), spelled once ---- */

#define VU_HDR_SIZE 12            /* request u32, flags u32, size u32 */
#define VU_VERSION 0x1            /* flags bits 0-1 */
#define VU_FLAG_REPLY 0x4         /* set on every back-end reply */
#define VU_FLAG_NEED_REPLY 0x8    /* REPLY_ACK: front-end wants an ack */
#define VU_VRING_IDX_MASK ((uint64_t)0xff) /* KICK/CALL/ERR u64: queue */
#define VU_VRING_NOFD ((uint64_t)0x100)    /* KICK/CALL/ERR u64: no fd */
#define VU_MAX_CONFIG 256         /* largest GET_CONFIG payload */

enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_REQUEST_MAX = 41,      /* first number past the spec's list */
};

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
#define VU_PROTOCOL_F_MQ 0
#define VU_PROTOCOL_F_REPLY_ACK 3
#define VU_PROTOCOL_F_CONFIG 9
/* What vu offers: nothing it does not implement. */
#define VU_PROTOCOL_FEATURES \
	((1ULL << VU_PROTOCOL_F_MQ) | (1ULL << VU_PROTOCOL_F_REPLY_ACK) | \
	 (1ULL << VU_PROTOCOL_F_CONFIG))

/* Payload layouts (native byte order, no padding). */
struct vu_vring_state {           /* NUM, BASE, GET_VRING_BASE, ENABLE */
	uint32_t index;
	uint32_t num;
};
struct vu_vring_addr {            /* SET_VRING_ADDR */
	uint32_t index;
	uint32_t flags;           /* bit 0: log (needs VHOST_F_LOG_ALL) */
	uint64_t desc;            /* front-end virtual addresses */
	uint64_t used;
	uint64_t avail;
	uint64_t log;             /* guest-physical, ignored */
};
struct vu_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
	uint64_t mmap_offset;
};
struct vu_mem_table {             /* SET_MEM_TABLE: size 8 + 32 * nregions */
	uint32_t nregions;        /* 1..8, one fd per region, in order */
	uint32_t padding;
	struct vu_mem_region r[8];
};
struct vu_config_hdr {            /* GET/SET_CONFIG: size 12 + hdr.size */
	uint32_t offset;
	uint32_t size;
	uint32_t flags;           /* 0: front-end access, 1: migration */
};

/* Name of a request number for log lines ("SET_VRING_NUM"), or NULL. */
const char *vu_request_name(uint32_t request);

/* --- entry points for tests and fuzzers ------------------------------- */

/* One vhost-user message as received: header fields, payload, fds. */
struct vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	uint8_t payload[VU_MAX_PAYLOAD];
	int fds[8];
	unsigned nfds;
	uint8_t fd_kind[8];       /* set by vu when the message is handled */
};

/* Handle one complete message as if it came from the connected front-end
 * whose socket is fd (replies are written to fd; fd may be -1 to discard
 * replies).  Takes ownership of msg->fds.  Returns 0 to keep the
 * connection, -errno when the connection must be dropped. */
int vu_handle_msg(struct vu *vu, int fd, struct vu_msg *msg);
/* Create a vu with no socket, for vu_handle_msg-driven tests/fuzzers. */
struct vu *vu_new_detached(struct loop *l, const struct vu_device *dev,
                           void *ctx);
/* Reset as on disconnect (stop queues, reset device, unmap, close fds). */
void vu_reset(struct vu *vu);

#endif
