/*
 * vu — vhost-user protocol server (back-end side), on the loop.
 *
 * Listens on a UNIX socket (mode 0600) and serves one front-end at a time;
 * while one is connected, further clients wait in the listen backlog.  Every
 * message is validated (header, payload size, fd count, queue index, queue
 * size, memory regions) before it is acted on.  A malformed message gets one
 * log line naming the request and what was wrong, then an error reply where
 * the protocol has one (REPLY_ACK) or the connection is dropped.  When the
 * front-end goes away (or is dropped), every queue is stopped, the device's
 * reset() is called, every mapping and fd is released, and the next
 * front-end is accepted.
 *
 * Devices plug in through struct vu_device and never see the protocol.
 */
#ifndef CHANFS_VU_H
#define CHANFS_VU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct vq;

/* The most queues a device may have. */
#define VU_MAX_QUEUES 8
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
	 * pointer stays valid until queue_stopped. */
	void (*queue_started)(void *ctx, unsigned q, struct vq *vq);
	/* The driver kicked queue q (the kick eventfd fired). */
	void (*queue_kicked)(void *ctx, unsigned q, struct vq *vq);
	/* Queue q is stopping (GET_VRING_BASE, disable, or disconnect): finish
	 * with it now; vq is invalid after the call returns. */
	void (*queue_stopped)(void *ctx, unsigned q, struct vq *vq);
	/* The front-end is gone: drop all device state (connections...). */
	void (*reset)(void *ctx);
};

struct vu;

/* Listen on path (an existing socket file there is replaced) and serve dev.
 * Returns NULL with errno set (and a log line) on failure. */
struct vu *vu_new(struct loop *l, const char *path,
                  const struct vu_device *dev, void *ctx);
/* Drop any front-end (resetting the device), stop listening, unlink the
 * socket path, free. */
void vu_free(struct vu *vu);

/* True while a front-end is connected and the device has been started
 * (at least one queue running). */
bool vu_running(const struct vu *vu);
/* Negotiated virtio features (0 before SET_FEATURES). */
uint64_t vu_features(const struct vu *vu);

/* --- entry points for tests and fuzzers ------------------------------- */

/* One vhost-user message as received: header fields, payload, fds. */
struct vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	uint8_t payload[VU_MAX_PAYLOAD];
	int fds[8];
	unsigned nfds;
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
