/*
 * guest_console — a simulated Linux-like virtio-console guest driver with
 * VIRTIO_CONSOLE_F_MULTIPORT on top of the simulated VMM (vmm.h), for
 * the console device's tests.
 *
 * Queues as the spec lays them out: port 0 receive/transmit 0/1, control
 * receive/transmit 2/3, port k >= 1 at 2k+2/2k+3.  Like Linux's
 * virtio_console.c: at start the control receive queue is filled with
 * page-sized buffers and DEVICE_READY 1 (id 0xffffffff) is sent; a
 * PORT_ADD fills the port's receive queue and answers PORT_READY 1;
 * CONSOLE_PORT, PORT_NAME and PORT_OPEN are recorded per port; opening
 * and closing a port sends PORT_OPEN 1/0.  Buffers come back on the ring
 * they were taken from and are posted again.
 *
 * Layouts: A — receive buffers of two 2 KiB descriptors, data sent as two
 * descriptors when it is longer than 1 KiB; B — one 4 KiB descriptor
 * each way.
 *
 * What the device does wrong (a control message shorter than 8 bytes, an
 * event a device does not send, PORT_ADD beyond max_nr_ports or twice,
 * a message for a port never added, a name that is not NUL-terminated,
 * data on a port not added) is counted in errors: tests assert it stays
 * 0 (unless they provoke it on purpose).
 *
 * Single-threaded, no global state.  -errno on failure.
 */
#ifndef CHANFS_TESTS_GUEST_CONSOLE_H
#define CHANFS_TESTS_GUEST_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GCON_MAX_PORTS 31
#define GCON_BUF 4096u

enum gcon_layout { GCON_LAYOUT_A, GCON_LAYOUT_B };

struct gcon_opts {
	enum gcon_layout layout;
	uint64_t features;          /* ring features: EVENT_IDX,
	                               INDIRECT_DESC, IN_ORDER */
	bool indirect;              /* multi-descriptor chains indirect */
	bool no_multiport;          /* do not negotiate MULTIPORT */
	unsigned queue_size;        /* 0 → 128 */
	unsigned ctl_bufs;          /* control receive buffers; 0 → 32 */
	uint32_t ctl_buf_size;      /* their size; 0 → 4096 */
	bool no_device_ready;       /* do not send DEVICE_READY at start */
	int timeout_ms;             /* vmm_opts.timeout_ms */
};

/* What the guest knows of a port. */
struct gcon_port {
	bool added;                 /* PORT_ADD received */
	bool is_console;            /* CONSOLE_PORT 1 received */
	bool host_open;             /* the last PORT_OPEN value received */
	unsigned host_opens, host_closes;   /* PORT_OPEN 1 / 0 received */
	char name[256];             /* PORT_NAME ("" until received) */
	bool guest_open;            /* we sent PORT_OPEN 1 */
	/* received data not yet read */
	uint8_t *rx;
	size_t rx_len, rx_cap;
	uint64_t rx_total, tx_total;
	unsigned tx_inflight;       /* transmit buffers not yet used */
};

struct gcon;

/* Connect to the console back-end at sock with nports queue pairs
 * (2 * (nports + 1) queues), read the 12-byte config, post control
 * buffers and send DEVICE_READY (unless opts say not to).  NULL with
 * errno set on failure. */
struct gcon *gcon_connect(const char *sock, unsigned nports,
                          const struct gcon_opts *opts);
void gcon_free(struct gcon *g);

/* Config as GET_CONFIG returned it, and the negotiated features. */
uint32_t gcon_max_nr_ports(const struct gcon *g);
uint64_t gcon_features(const struct gcon *g);
struct vmm *gcon_vmm(struct gcon *g);

/* Wait up to timeout_ms for the device to use buffers, then handle every
 * used buffer (control messages, received data, transmit completions).
 * Returns 1 when something was handled, 0 on timeout, -errno. */
int gcon_poll(struct gcon *g, int timeout_ms);
/* Poll until cond(g, arg) or timeout_ms pass.  1 when cond held, 0 on
 * timeout, -errno. */
int gcon_until(struct gcon *g, bool (*cond)(struct gcon *, void *),
               void *arg, int timeout_ms);

const struct gcon_port *gcon_port(const struct gcon *g, unsigned id);
/* Errors the device made, and the last one as text. */
unsigned gcon_errors(const struct gcon *g);
const char *gcon_last_error(const struct gcon *g);
/* Control messages received, by event (0..7; 8 counts unknown ones). */
unsigned gcon_events(const struct gcon *g, unsigned event);

/* Open / close port id as an application would (PORT_OPEN 1 / 0). */
int gcon_open(struct gcon *g, unsigned id);
int gcon_close(struct gcon *g, unsigned id);
/* Queue up to len bytes on port id's transmit queue (as many buffers as
 * free descriptors allow) and kick.  Returns the count queued (0 when the
 * queue is full), -errno. */
ssize_t gcon_write(struct gcon *g, unsigned id, const void *buf, size_t len);
/* Take up to max received bytes of port id.  Returns the count. */
size_t gcon_read(struct gcon *g, unsigned id, void *buf, size_t max);

/* Hostile: a control message (id, event, value) as the driver sends. */
int gcon_send_ctl(struct gcon *g, uint32_t id, uint16_t event,
                  uint16_t value);
/* Hostile: len raw bytes as one control transmit buffer. */
int gcon_send_ctl_raw(struct gcon *g, const void *buf, uint32_t len);
/* Stop posting receive buffers for port id (a guest that never reads:
 * used ones are not posted again); true to post them again. */
void gcon_rx_hold(struct gcon *g, unsigned id, bool hold);

/* The VMM pauses and resumes the device (vmm_stop / vmm_resume), after
 * handling what was used. */
int gcon_pause(struct gcon *g);
int gcon_resume(struct gcon *g);
/* A driver reset (vmm_restart_driver): every port forgotten, the control
 * queue filled again and DEVICE_READY sent, as a rebooted guest does. */
int gcon_restart(struct gcon *g);

#endif
