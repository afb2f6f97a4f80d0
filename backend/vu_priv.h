/*
 * vu internals shared by vu.c (socket, reader, lifetime), vu_msg.c
 * (validation, dispatch, replies), vu_req.c (what each request does),
 * vu_queue.c (ring start/stop, the notification fds, the session reset)
 * and vu_fd.c (what a peer's fd is, and closing it safely).
 *
 * The files call one way, down; which file calls which:
 *
 *   vu.c        the entry points    -> vu_msg.c, vu_queue.c, vu_fd.c
 *   vu_msg.c    check, dispatch     -> vu_req.c, vu_fd.c
 *   vu_req.c    one handler each    -> vu_queue.c, vu_fd.c
 *   vu_queue.c  rings, fds, reset   (no other vu file)
 *   vu_fd.c     peer fds            (no other vu file)
 *
 * A file may call any file below it, never one above: what a lower file
 * has to say goes up as its return value.  tests/unit/file_layers.py
 * fails on a cycle between the files.
 */
#ifndef CHANFS_VU_PRIV_H
#define CHANFS_VU_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "chanfs/gmem.h"
#include "chanfs/vq.h"
#include "chanfs/vu.h"

struct event;
struct loop;

struct vu_queue {
	struct vu *vu;
	unsigned index;
	char name[40];           /* "vsock q0": the vq's log name */
	struct vq vq;
	uint16_t num;            /* SET_VRING_NUM; 0 until set */
	uint16_t base;           /* next avail entry to pop when (re)started */
	bool addr_set;
	uint64_t desc_uva, avail_uva, used_uva;
	bool enabled;            /* SET_VRING_ENABLE (with PROTOCOL_FEATURES) */
	bool running;            /* vq_start'ed and queue_started announced */
	/* Where the ring stood when it last stopped, while the device has
	 * not been reset since: a start that continues from there is a
	 * resume, any other a driver restart (vu.h). */
	bool resumable;
	uint16_t stop_base, stop_used;
	uint64_t stop_desc, stop_avail, stop_used_uva;
	int kick_fd, call_fd, err_fd;
	struct event *kick_ev;
};

/* The message being received: header and payload accumulate across
 * partial reads, fds across every recvmsg of the message. */
struct vu_rx {
	uint8_t hdr[VU_HDR_SIZE];
	uint32_t got;            /* bytes of header + payload received */
	unsigned dropped_fds;    /* fds past the 8 a message may carry */
	struct vu_msg msg;
};

struct vu_closer;

struct vu {
	struct loop *loop;
	const struct vu_device *dev;
	void *ctx;
	char *path;              /* NULL for a detached vu */
	int listen_fd;
	struct event *listen_ev;
	struct event *retry_ev;  /* re-arms the listener after accept fails */
	struct event *deadline_ev; /* handshake / partial message timeout */
	int conn_fd;
	pid_t peer_pid;          /* SO_PEERCRED of the front-end, 0 unknown */
	uid_t peer_uid;
	bool owned;              /* SET_OWNER seen: the front-end is no
	                            longer presumed stalled */
	unsigned nmsgs;          /* messages handled on this connection */
	struct event *conn_ev;
	struct vu_rx rx;
	uint64_t features;       /* SET_FEATURES */
	uint64_t protocol_features;
	struct gmem mem;
	struct vu_queue q[VU_MAX_QUEUES];
	char *mountpoint;        /* chanfs's mount, for log lines; or NULL */
	struct vu_closer *closer; /* vu_fd.c; started on first use */
};

/* --- peer fds (vu_fd.c; the rule is in vu.h, "Peer fds") -------------- */

enum vu_fd_kind {
	VU_FD_UNKNOWN,   /* not looked at yet */
	VU_FD_EVENTFD,
	VU_FD_SEALED,    /* memfd/shmem/hugetlbfs with F_SEAL_SHRINK */
	VU_FD_SHMEM,     /* memfd/shmem/hugetlbfs that may still shrink */
	VU_FD_KERNEL,    /* a pipe or another anon_inode object */
	VU_FD_OTHER,     /* anything else: never touched on the loop */
};

/* What fd is, from readlink(/proc/self/fd/N) (copied into link, len > 1)
 * and fcntl(F_GET_SEALS): neither reaches the fd's file system. */
enum vu_fd_kind vu_fd_classify(int fd, char *link, size_t len);
/* "an eventfd", ... for log lines. */
const char *vu_fd_kind_name(enum vu_fd_kind k);
/* True when link (a classified fd's path) lies on chanfs's own mount. */
bool vu_fd_on_mount(const struct vu *vu, const char *link);
/* Close a front-end's fd: at once if it is an eventfd, a pipe or a memory
 * file (VU_FD_UNKNOWN: classified first), else from the closer thread
 * (started on first use); -1 is ignored. */
void vu_fd_close(struct vu *vu, int fd, enum vu_fd_kind kind);
/* End a front-end connection: shut it down at once (the peer reads EOF),
 * close it from the closer thread.  Its release frees the fds still queued
 * in it unread, and a last close may wait (a TCP socket's SO_LINGER): the
 * kernel would do that in the closing thread. */
void vu_fd_close_conn(struct vu *vu, int fd);
/* Let the closer thread finish what is queued and end (it frees itself). */
void vu_fd_closer_free(struct vu *vu);

/* --- requests (vu_req.c) and their dispatch (vu_msg.c) --------------- */

/* How a request's payload is laid out: decides the size check, the fd
 * count check and the debug trace. */
enum vu_payload {
	VU_PL_NONE,      /* size 0 */
	VU_PL_U64,       /* size 8 */
	VU_PL_STATE,     /* struct vu_vring_state */
	VU_PL_ADDR,      /* struct vu_vring_addr */
	VU_PL_MEM,       /* struct vu_mem_table, 8 + 32 * nregions; fds */
	VU_PL_FILE,      /* u64 index | NOFD; one fd unless NOFD */
	VU_PL_CONFIG,    /* struct vu_config_hdr + hdr.size bytes */
};

/* A reply under construction; vu_msg_dispatch sends it. */
struct vu_reply {
	uint32_t size;
	uint8_t payload[sizeof(struct vu_config_hdr) + VU_MAX_CONFIG];
};

typedef int (*vu_handler)(struct vu *vu, struct vu_msg *m,
                          struct vu_reply *rep);

struct vu_req {
	const char *name;
	enum vu_payload pl;
	vu_handler fn;       /* NULL: known but not implemented */
	bool replies;        /* the request has its own reply */
	const char *num;     /* what a vring state's num means, for traces */
};

/* Every request number the spec names, indexed by number; fn is NULL for
 * the ones vu does not implement. */
extern const struct vu_req vu_reqs[VU_REQUEST_MAX];

static inline void vu_reply_u64(struct vu_reply *rep, uint64_t v)
{
	memcpy(rep->payload, &v, sizeof v);
	rep->size = sizeof v;
}

static inline uint64_t vu_msg_u64(const struct vu_msg *m)
{
	uint64_t v;

	memcpy(&v, m->payload, sizeof v);
	return v;
}

static inline struct vu_vring_state vu_msg_state(const struct vu_msg *m)
{
	struct vu_vring_state s;

	memcpy(&s, m->payload, sizeof s);
	return s;
}

/* Virtio feature bits vu offers: the device's plus the transport's. */
uint64_t vu_offered_features(const struct vu *vu);

/* Handle one message; dropped_fds counts fds the reader had to close
 * because the message carried more than 8 (the message is then rejected
 * for its fd count). */
int vu_msg_dispatch(struct vu *vu, int fd, struct vu_msg *msg,
                    unsigned dropped_fds);
/* Check a received header before its payload is read: version, flags and
 * payload size.  Logs one line and returns -EPROTO when it is malformed. */
int vu_msg_check_header(const struct vu_msg *msg);

void vu_queue_init(struct vu *vu, unsigned index);
/* Start q if it has everything it needs (size, addresses, kick fd, enabled)
 * and is not running; a no-op otherwise.  A ring that was stopped and does
 * not continue from where it stopped is a driver restart: every running
 * queue is stopped, the device is reset, then they all start afresh (the
 * rule is in vu.h).  req names the request that completed it, for the log
 * lines.  Returns 0 or -errno (logged). */
int vu_queue_try_start(struct vu_queue *q, const char *req);
/* Stop q if running: the device finishes with it, used entries are
 * published, and the avail index to resume from is kept in q->base; where
 * the ring stood is remembered to recognise a resume. */
void vu_queue_stop(struct vu_queue *q);
/* Translate q's ring addresses for its size and the negotiated features
 * into our pointers.  On failure returns -EFAULT and sets *what to the
 * ring at fault ("descriptor table", "avail ring", "used ring"). */
int vu_queue_rings(struct vu_queue *q, struct vring_desc **desc,
                   struct vring_avail **avail, struct vring_used **used,
                   const char **what);
/* Replace q's kick fd (taking ownership; -1 closes it).  Returns 0 or
 * -ENOMEM (fd closed). */
int vu_queue_set_kick(struct vu_queue *q, int fd);
/* Replace q's call or error fd (taking ownership; -1 for none). */
void vu_queue_set_call(struct vu_queue *q, int fd);
void vu_queue_set_err(struct vu_queue *q, int fd);
/* Stop q, close its fds and forget its setup. */
void vu_queue_clear(struct vu_queue *q);
/* True when a queue is enabled: always unless PROTOCOL_FEATURES was
 * negotiated, then as SET_VRING_ENABLE said. */
bool vu_queue_enabled(const struct vu_queue *q);

/* (vu_queue.c) Reset the session: stop every queue, reset the device,
 * unmap guest memory, close every fd, forget the features (protocol
 * features too unless keep_protocol). */
void vu_reset_session(struct vu *vu, bool keep_protocol);

#endif
