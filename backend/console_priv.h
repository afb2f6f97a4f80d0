/*
 * console internals shared by console.c (device lifetime, the vu_device
 * callbacks, the ports' data queues, status), console_ctl.c (the control
 * queues: the guest's messages and ours) and console_fault.c (the
 * guest's faults, counted and logged).  Calls go one way: console.c →
 * console_ctl.c → console_fault.c.
 */
#ifndef CHANFS_CONSOLE_PRIV_H
#define CHANFS_CONSOLE_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "chanfs/console.h"
#include "chanfs/loop.h"
#include "chanfs/vu.h"

struct chan;
struct serial_port;
struct vq;
struct vq_elem;

#define CONSOLE_CTL_RXQ 2
#define CONSOLE_CTL_TXQ 3
/* Chains handled per queue per run; the rest waits for the next turn
 * (loop_defer_next), as vsock does. */
#define CONSOLE_BUDGET 256
/* The guest's control messages and the header of ours. */
#define CONSOLE_CTL_SIZE 8

/* Messages waiting for a port, sent in this order (bit order). */
#define CONSOLE_SEND_ADD     (1u << 0)
#define CONSOLE_SEND_CONSOLE (1u << 1)
#define CONSOLE_SEND_NAME    (1u << 2)
#define CONSOLE_SEND_OPEN    (1u << 3)

/* The faults a guest can commit, each logged once per power of ten. */
enum console_fault {
	CONSOLE_BAD_SIZE_SHORT,
	CONSOLE_BAD_SIZE_LONG,
	CONSOLE_BAD_PORT,
	CONSOLE_BAD_EVENT,         /* a device's event or an unknown one */
	CONSOLE_BAD_REPEAT_READY,  /* DEVICE_READY again */
	CONSOLE_BAD_NOT_READY,     /* before DEVICE_READY / PORT_READY */
	CONSOLE_BAD_GUEST_FAILED,  /* DEVICE_READY 0 / PORT_READY 0 */
	CONSOLE_BAD_SMALL_BUF,     /* control buffer too small */
	CONSOLE_BAD_NOT_READING,   /* a window full, the guest reads nothing */
	CONSOLE_FAULTS
};

struct console;

struct console_port {
	struct console *con;
	unsigned id;
	struct serial_port *sp;
	struct chan *chan;              /* serial's; we are its device side */
	struct vq *rxq, *txq;           /* running rings, or NULL */
	/* Guest → host: a transmit buffer the window could not take whole
	 * stays popped; tx_off bytes of it are in to_host.  A ring stop
	 * gives it back to the driver; tx_skip says how much of it to skip
	 * when the resumed ring pops it again. */
	struct vq_elem *tx_elem;
	bool tx_pending;
	uint32_t tx_off, tx_skip;
	/* What the guest knows and said. */
	bool added;                     /* PORT_ADD sent */
	bool ready;                     /* the guest's PORT_READY 1 */
	bool guest_open;                /* the guest's PORT_OPEN */
	bool open_sent;                 /* the PORT_OPEN value it last got */
	uint64_t guest_opens;           /* PORT_OPEN 1 count */
	bool not_reading;               /* warned: window full, unread */
	/* Control messages waiting (CONSOLE_SEND_*). */
	unsigned send;
	bool queued;
	TAILQ_ENTRY(console_port) link;
};

struct console {
	struct loop *loop;
	struct vu_device dev;
	unsigned nports;
	bool console;                   /* port 0 is a console */
	struct console_port *ports;
	struct vq *ring[VU_MAX_QUEUES]; /* started by vu, NULL: stopped */
	bool ever_started;
	bool multiport;                 /* negotiated (as the rings were) */
	bool device_ready;              /* the guest's DEVICE_READY 1 */
	struct vq_elem *elem;           /* scratch: control and receive */
	struct loop_task task;
	TAILQ_HEAD(, console_port) sendq;
	uint64_t ctl_in, ctl_out, ctl_rejected;
	uint64_t faults[CONSOLE_FAULTS];
};

/* Queue numbers of port p. */
static inline unsigned console_rxq(unsigned p) { return p ? 2 * p + 2 : 0; }
static inline unsigned console_txq(unsigned p) { return console_rxq(p) + 1; }

/* Run the device soon (this turn's flush). */
static inline void console_schedule(struct console *c)
{
	loop_defer(c->loop, &c->task);
}

/* console_fault.c: log a guest fault (once per power of ten of its
 * count). */
void console_fault(struct console *c, enum console_fault f,
                   const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* console_ctl.c */
/* Queue messages bits for port p (console_ctl_run sends them). */
void console_ctl_queue(struct console_port *p, unsigned bits);
/* The host's open state of p changed (or may have). */
void console_ctl_host_open(struct console_port *p);
/* Handle the guest's control messages, then fill control receive
 * buffers; returns true when a budget ran out (run again next turn). */
bool console_ctl_run(struct console *c);
/* Forget every message waiting and what the guest was told. */
void console_ctl_reset(struct console *c);
/* "DEVICE_READY" ... for log lines. */
const char *console_event_name(unsigned event);

#endif
