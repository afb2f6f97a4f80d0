/*
 * vsock internals shared by vsock.c (device lifetime, queues, listen,
 * accept, connect, status), vsock_conn.c (connection table, states,
 * timers, control queue, credit, the chan backend), vsock_tx.c (guest →
 * host packets), vsock_rx.c (the pull-based RX fill) and vsock_listen.c
 * (listening ports and their accept queues).
 *
 * The files call one way, down; which file calls which:
 *
 *   vsock.c         the entry points  -> vsock_tx.c, vsock_rx.c,
 *                                        vsock_listen.c, vsock_conn.c
 *   vsock_tx.c      guest → host      -> vsock_listen.c, vsock_conn.c
 *   vsock_rx.c      host → guest      -> vsock_conn.c
 *   vsock_listen.c  accept queues     -> vsock_conn.c
 *   vsock_conn.c    connections       (no other vsock file)
 *
 * A file may call any file below it, never one above.  A connection that
 * has something for the guest does not call the fill: it marks the fill
 * task (vsock_rx_schedule, inline below) and the loop runs it.
 * tests/unit/file_layers.py fails on a cycle between the files.
 */
#ifndef CHANFS_VSOCK_PRIV_H
#define CHANFS_VSOCK_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <linux/virtio_vsock.h>

#include "chanfs/chan.h"
#include "chanfs/loop.h"
#include "chanfs/vq.h"
#include "chanfs/vsock.h"

struct chan;
struct event;

/* The packet header on the wire (little-endian, packed). */
#define VSOCK_HDR_SIZE 44
_Static_assert(sizeof(struct virtio_vsock_hdr) == VSOCK_HDR_SIZE,
               "virtio_vsock_hdr is 44 bytes");

/* Largest payload one guest packet may carry (Linux never sends more than
 * 64 KiB); anything larger is malformed whatever the credit. */
#define VSOCK_MAX_PAYLOAD (64u * 1024)
/* Largest payload we put in one RX buffer. */
#define VSOCK_MAX_RX_PAYLOAD (64u * 1024)
/* Connectionless RST replies waiting for an RX buffer; past this they are
 * dropped (counted and logged), so a flood cannot grow memory. */
#define VSOCK_RST_MAX 256
/* Host-side ephemeral ports for vsock_connect. */
#define VSOCK_EPHEMERAL_FIRST 49152u
#define VSOCK_EPHEMERAL_LAST 65535u
/* Most chains handled per TX or RX run; the rest waits for the next loop
 * turn (loop_defer_next), so a guest reposting as fast as we drain cannot
 * pin the loop.  Fixed, not per queue size: a 32768-entry ring must not
 * make one turn longer. */
#define VSOCK_BUDGET 256
/* Small-write coalescing: data for a connection shorter than this (less
 * than one Linux RX buffer) is small.  After a small packet, more small
 * data waits up to coalesce_us (vsock_config; default below) for company
 * while the guest sends no data on the connection (credit updates do not
 * count): a stream of tiny host writes reaches the guest in few packets
 * (Linux >= 6.12.92 counts tiny packets against the socket's memory), a
 * request/response exchange, where the guest answers in between, is never
 * held. */
#define VSOCK_SMALL_PKT 4096u
/* Guest packet bytes handled per TX run (a loop turn); the rest waits for
 * the next turn, so that both directions get about the same bytes per
 * turn (an RX fill moves at most its posted buffers: 256 KiB of Linux's
 * 4 KiB buffers in a 128-entry ring). */
#define VSOCK_TX_TURN_BYTES (256u << 10)
#define VSOCK_COALESCE_US 1000u
/* Most TX chains held at once for a host read answered in place. */
#define VSOCK_LEND_CHAINS 16

#define VSOCK_RXQ 0
#define VSOCK_TXQ 1
#define VSOCK_NUM_QUEUES 2

enum vsock_conn_state {
	VSOCK_CONNECTING,    /* host sent REQUEST, waiting for RESPONSE */
	VSOCK_ESTABLISHED,
	VSOCK_PEER_CLOSED,   /* the guest shut one direction */
	VSOCK_LOCAL_CLOSED,  /* the host closed: SHUTDOWN(RCV|SEND) once
	                        to_guest drains, then wait for RST */
	VSOCK_RESET,         /* being removed */
};

/* Pending control packets of one connection, sent in this order. */
#define VSOCK_CTL_REQUEST        (1u << 0)
#define VSOCK_CTL_RESPONSE       (1u << 1)
#define VSOCK_CTL_CREDIT_UPDATE  (1u << 2)
#define VSOCK_CTL_CREDIT_REQUEST (1u << 3)
#define VSOCK_CTL_SHUTDOWN       (1u << 4)

/* One entry of the control FIFO: a connection with pending control bits,
 * or (conn NULL) an RST for a connection that does not exist. */
struct vsock_ctl {
	TAILQ_ENTRY(vsock_ctl) link;
	struct vsock_conn *conn;
	uint32_t host_port, guest_port;
	bool queued;
};

struct vsock_conn {
	struct vsock *v;
	uint32_t host_port, guest_port;
	struct vsock_conn *hnext;       /* hash chain */
	TAILQ_ENTRY(vsock_conn) link;   /* v->conns, creation order */
	enum vsock_conn_state state;
	struct chan *chan;              /* the device's reference */
	bool host_initiated;
	/* Guest → host: what we advertise and what the guest sent. */
	uint32_t buf_alloc;             /* the to_host window */
	uint32_t fwd_cnt;               /* bytes the host has read */
	uint32_t last_fwd_sent;         /* fwd_cnt in our last packet */
	uint32_t rx_cnt;                /* bytes the guest sent us */
	/* Host → guest: the guest's window and what we sent. */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t tx_cnt;
	bool credit_requested;          /* one CREDIT_REQUEST while blocked */
	/* Half-closes, as VIRTIO_VSOCK_SHUTDOWN_* bits. */
	uint32_t peer_shut;             /* the guest sent */
	uint32_t local_shut;            /* we sent */
	uint32_t local_shut_want;       /* to send once to_guest drains */
	bool host_closed;
	bool host_aborted;              /* chan_abort: RST, not SHUTDOWN */
	/* Control packets. */
	unsigned ctl_pending;           /* VSOCK_CTL_* */
	struct vsock_ctl ctl;
	/* Data round-robin (to_guest data and peer credit). */
	bool in_rr;
	TAILQ_ENTRY(vsock_conn) rr_link;
	/* Host-side events to act on in the next fill (host_shutdown,
	 * host_close arrive inside chan calls, where we only record). */
	bool in_todo;
	TAILQ_ENTRY(vsock_conn) todo_link;
	/* Small-write coalescing: when the last small data packet went
	 * (monotonic us, 0: the last packet was not small) and rx_cnt then
	 * (the guest's data since answers it). */
	uint64_t small_at_us;
	uint32_t small_rx_cnt;
	bool held;                      /* in v->held, waiting for company */
	TAILQ_ENTRY(vsock_conn) held_link;
	struct event *timer;            /* connect or close timeout */
	bool timer_held;                /* rings stopped: timer_left_ms to */
	unsigned timer_left_ms;         /* go once they start again */
	uint64_t pkts_in, pkts_out;
};

/* A host port guests may connect to, and its accept queue.  It listens
 * (answers REQUESTs) for good after vsock_listen, else while an opener
 * waits and for listen_linger_ms after; it lives on, not listening, while
 * connections it queued wait to be accepted or to time out. */
struct vsock_listener {
	struct vsock *v;
	uint32_t port;
	bool permanent;                 /* -l */
	bool listening;
	unsigned waiters;               /* vsock_accept_wait */
	unsigned head, count, cap;      /* accept queue: a ring of chans */
	struct chan **q;                /* each holds a reference */
	uint64_t *deadline;             /* ms (monotonic), per queue slot */
	struct event *linger;           /* stop listening */
	struct event *expire;           /* the head's accept timeout */
	/* vsock_listen_to: told instead of v->incoming_fn; not listed. */
	void (*incoming_fn)(void *arg, uint32_t port);
	void *incoming_arg;
	TAILQ_ENTRY(vsock_listener) link;
};

/* Guest → host in place: while a host read is parked on a channel whose
 * to_host is empty, the payloads of its TX chains are lent to it
 * (chan_guest_lend) rather than copied in, and the chains are held; the
 * read is answered from guest memory in the flush, and then, before the
 * turn ends (lend.task, queued after the reader's service), what it did
 * not take is copied into to_host and the chains are completed.  One
 * channel at a time. */
struct vsock_lend {
	struct chan *chan;              /* a reference; NULL: nothing lent */
	struct vq *vq;                  /* the TX ring the chains came from */
	unsigned nheld;
	struct { uint16_t id; uint32_t seq, in_len; } held[VSOCK_LEND_CHAINS];
	struct iovec iov[CHAN_LEND_MAX]; /* the payloads, in order */
	unsigned niov;
	struct loop_task task;
};

enum vsock_dev_state { VSOCK_DEV_NONE, VSOCK_DEV_RUNNING, VSOCK_DEV_STOPPED };

struct vsock {
	struct loop *loop;
	struct vsock_config cfg;
	struct chan_set *chans;
	struct vq *ring[VSOCK_NUM_QUEUES]; /* started by vu, NULL: stopped */
	struct vq *vq[VSOCK_NUM_QUEUES]; /* both rings, or NULL while either
	                                    is stopped (the device is idle) */
	bool ever_started;               /* since the last reset */
	struct vq_elem *rx_elem, *tx_elem;
	struct loop_task fill_task, tx_task;
	/* Connection table: chained hash by (host port, guest port). */
	struct vsock_conn **buckets;
	unsigned nbuckets, nconns;
	TAILQ_HEAD(, vsock_conn) conns;
	TAILQ_HEAD(, vsock_ctl) ctlq;
	TAILQ_HEAD(, vsock_conn) rr;
	TAILQ_HEAD(, vsock_conn) todo;
	TAILQ_HEAD(, vsock_conn) held;   /* small data waiting (coalescing) */
	struct event *coalesce_timer;    /* ends the wait of v->held */
	struct vsock_ctl rst_pool[VSOCK_RST_MAX];
	TAILQ_HEAD(, vsock_ctl) rst_free;
	uint64_t rst_dropped;
	bool warned_small_rx;            /* header-only RX buffer, once */
	TAILQ_HEAD(, vsock_listener) listeners;
	uint32_t next_ephemeral;
	void (*incoming_fn)(void *arg, uint32_t port);
	void *incoming_arg;
	int (*unlistened_fn)(void *arg, uint32_t port, struct chan *ch);
	void *unlistened_arg;
	/* Counters for status. */
	uint64_t pkts_rx, pkts_tx, pkts_rejected;
	uint32_t tx_turn_bytes;          /* this TX run's, VSOCK_TX_TURN_BYTES */
	struct vsock_lend lend;
	bool tx_held;                    /* the packet's chain was lent */
	uint64_t pkts_lent;              /* packets lent to a read (vsock_lend) */
};

/* --- vsock_conn.c ------------------------------------------------------- */

int vsock_conn_table_init(struct vsock *v);
void vsock_conn_table_free(struct vsock *v);
struct vsock_conn *vsock_conn_find(const struct vsock *v, uint32_t host_port,
                                   uint32_t guest_port);
/* Create a connection with its channel (state as given) and insert it.
 * Returns NULL with errno set (logged by the caller). */
struct vsock_conn *vsock_conn_new(struct vsock *v, uint32_t host_port,
                                  uint32_t guest_port,
                                  enum vsock_conn_state state);
/* Remove and free c: the channel learns nothing here (call chan_reset or
 * chan_closed first); with send_rst an RST goes to the guest. */
void vsock_conn_remove(struct vsock_conn *c, bool send_rst);
/* Reset c: chan_reset(err), RST to the guest when send_rst, remove. */
void vsock_conn_reset(struct vsock_conn *c, int err, bool send_rst);
/* Orderly end: chan_closed, RST to the guest (Linux's last word), remove. */
void vsock_conn_finish(struct vsock_conn *c);
/* Reset every connection (no packets: the driver is gone) and drop every
 * pending control packet. */
void vsock_conn_reset_all(struct vsock *v, int err);

/* Queue control bits for c (FIFO by first pending) and schedule a fill. */
void vsock_ctl_queue(struct vsock_conn *c, unsigned bits);
/* Queue an RST for a connection that does not exist.  Returns false when
 * the queue is full (the reply is dropped and counted). */
bool vsock_ctl_queue_rst(struct vsock *v, uint32_t host_port,
                         uint32_t guest_port);
/* Drop every pending control packet. */
void vsock_ctl_clear(struct vsock *v);

/* Bytes we may still send to the guest. */
uint32_t vsock_conn_peer_credit(const struct vsock_conn *c);
/* Bytes the guest may still send us. */
uint32_t vsock_conn_our_credit(const struct vsock_conn *c);
/* After data moved or a header arrived: re-evaluate the round-robin and
 * a SHUTDOWN waiting for to_guest to drain. */
void vsock_conn_after_data(struct vsock_conn *c);
/* Our SHUTDOWN went out: after the host's close, the close timeout (the
 * wait for the guest's RST) starts now. */
void vsock_conn_shutdown_sent(struct vsock_conn *c);
/* Does c have data for the guest that it may send now? */
bool vsock_conn_can_send(const struct vsock_conn *c);
/* Re-evaluate c for the data round-robin (after data, credit or state
 * changed) and schedule a fill if it has something to send. */
void vsock_conn_update_rr(struct vsock_conn *c);
/* A data packet went to the guest; small (coalescing starts) when it
 * carried all there was, shorter than VSOCK_SMALL_PKT, and left its buffer
 * part empty (neither the buffer nor the guest's credit cut it short). */
void vsock_conn_sent_data(struct vsock_conn *c, bool small);
/* The coalescing wait is over: every held connection may send. */
void vsock_conn_release_held(struct vsock *v);
/* After guest data or a header arrived: take the guest's window. */
void vsock_conn_peer_credit_update(struct vsock_conn *c, uint32_t buf_alloc,
                                   uint32_t fwd_cnt);
/* Act on host-side events recorded in c (shutdown, close) now that we are
 * outside the channel's call: queue SHUTDOWN once to_guest drained, end a
 * connecting one.  May remove c. */
void vsock_conn_do_todo(struct vsock_conn *c);
/* Both directions are over (the guest sends nothing more, and receives
 * nothing more or we sent SHUTDOWN(SEND)): end c in order. */
bool vsock_conn_done(const struct vsock_conn *c);
/* Arm c's timer (connect or close timeout).  While the rings are stopped
 * it is held and armed when they start again. */
void vsock_conn_arm_timer(struct vsock_conn *c, unsigned ms);
const char *vsock_conn_state_name(enum vsock_conn_state s);

/* The TX run and the RX fill: handle ring qi's chains with vq_drain's fn
 * and want, VSOCK_BUDGET of them; when the budget runs out the rest
 * waits for the next loop turn, in rest (the caller's task), so that the
 * loop serves everyone else first.  Nothing while the rings are stopped. */
static inline void vsock_drain(struct vsock *v, unsigned qi,
                               struct vq_elem *elem,
                               uint32_t (*fn)(void *arg,
                                              const struct vq_elem *elem),
                               bool (*want)(void *arg),
                               struct loop_task *rest)
{
	struct vq *vq = v->vq[qi];

	if (vq && vq_drain(vq, elem, VSOCK_BUDGET, fn, want, v) > 0)
		loop_defer_next(v->loop, rest);
}

/* --- vsock_tx.c --------------------------------------------------------- */

/* Drain the tx queue: VSOCK_BUDGET packets, the rest next turn (tx_task). */
void vsock_tx_run(struct vsock *v);
/* tx_task's function. */
void vsock_tx_task(void *arg);
/* Take back what is lent (vsock_lend): copy what the host did not read
 * into to_host, complete the held chains and flush their ring.  Before
 * the rings stop or the device goes (guest memory may go with them). */
void vsock_tx_lend_end(struct vsock *v);
/* lend.task's function. */
void vsock_tx_lend_task(void *arg);
/* "REQUEST", "RW"... for log lines. */
const char *vsock_op_name(uint16_t op);

/* --- vsock_rx.c --------------------------------------------------------- */

/* Schedule the RX fill for this loop turn.  Inline: it only marks the
 * fill task, which the loop runs, so the connection code below asks for a
 * fill without calling up into vsock_rx.c. */
static inline void vsock_rx_schedule(struct vsock *v)
{
	loop_defer(v->loop, &v->fill_task);
}
/* The fill task: VSOCK_BUDGET buffers, the rest next turn. */
void vsock_rx_fill(void *arg);

/* --- vsock_listen.c ----------------------------------------------------- */

/* The listener of port (listening or still holding queued connections),
 * or NULL. */
struct vsock_listener *vsock_listener_find(const struct vsock *v,
                                           uint32_t port);
/* May a guest connection to port be queued for vsock_accept?  False when
 * the port does not listen or its backlog is full (why says which). */
bool vsock_listener_can_queue(struct vsock *v, uint32_t port, char *why,
                              size_t size);
/* Queue ch (taking a reference) and tell the on_incoming callback. */
void vsock_listener_enqueue(struct vsock *v, uint32_t port, struct chan *ch);
/* Is a guest REQUEST to port that vsock_listener_can_queue refused
 * offered to the unlistened hook (one is set, the port does not
 * listen)? */
bool vsock_listener_fallback_ok(const struct vsock *v, uint32_t port);
/* Offer c (just established) to the unlistened hook.  False when it
 * refused: c was reset with RST and is gone. */
bool vsock_listener_fallback(struct vsock_conn *c);
/* Drop every connection still waiting for accept (the device went
 * away). */
void vsock_listener_flush(struct vsock_listener *l);
/* Every listener, at vsock_free. */
void vsock_listeners_free(struct vsock *v);

/* Log prefix naming a connection: "vsock 3:1234-2:5000" (guest then host,
 * as the channel names it). */
#define VSOCK_CONN_FMT "vsock %llu:%u-2:%u"
#define VSOCK_CONN_ARGS(c) \
	(unsigned long long)(c)->v->cfg.guest_cid, (c)->guest_port, \
	(c)->host_port

#endif
