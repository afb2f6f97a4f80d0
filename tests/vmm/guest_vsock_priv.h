/*
 * guest_vsock_priv.h — the simulated guest driver's internals, shared by
 * guest_vsock.c (queues, buffers, loop), guest_vsock_conn.c (connections)
 * and guest_vsock_recv.c (packets from the device).
 */
#ifndef CHANFS_TESTS_GUEST_VSOCK_PRIV_H
#define CHANFS_TESTS_GUEST_VSOCK_PRIV_H

#include "guest_vsock.h"
#include "vmm.h"

#define GUEST_RXQ 0
#define GUEST_TXQ 1
/* Layout A puts a tx payload in its own descriptor, here. */
#define GUEST_TX_PAYLOAD_OFF 64
#define GUEST_HASH 1024
#define GUEST_SHUTDOWN_BOTH \
	(VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)

struct guest_rxbuf {
	uint64_t hdr_gpa, data_gpa;   /* B: data_gpa = hdr_gpa + 44 */
	uint8_t *hdr, *data;
};

struct guest_txbuf {
	uint64_t gpa;
	uint8_t *p;
	SLIST_ENTRY(guest_txbuf) link;
};

/* A control (or raw) packet waiting for a tx buffer. */
struct guest_ctl {
	STAILQ_ENTRY(guest_ctl) link;
	struct virtio_vsock_hdr hdr;
	size_t plen;
	uint8_t payload[];
};

struct guest_listener {
	LIST_ENTRY(guest_listener) link;
	uint32_t port;
	const struct guest_conn_ops *ops; /* NULL: swallow REQUESTs */
	void (*accept_fn)(void *larg, struct guest_conn *c);
	void *larg;
};

struct guest {
	struct vmm *vmm;
	struct guest_opts o;
	uint64_t cid;

	struct guest_rxbuf *rx;
	unsigned nrx;
	unsigned *rx_free;            /* indices of unposted rx buffers */
	unsigned nrx_free;
	struct guest_txbuf *tx;
	unsigned ntx;
	SLIST_HEAD(, guest_txbuf) tx_free;
	STAILQ_HEAD(, guest_ctl) ctlq;
	bool rx_kick, tx_kick;
	bool tx_freed;                /* tx buffers came back this step */
	bool more_work;               /* pumps left work for the next step */
	bool reaped;                  /* connections ended this step */

	LIST_HEAD(, guest_listener) listeners;
	LIST_HEAD(, guest_conn) hash[GUEST_HASH];
	TAILQ_HEAD(, guest_conn) conns;   /* every live connection */
	TAILQ_HEAD(, guest_conn) dirty;   /* to pump */
	TAILQ_HEAD(, guest_conn) dead;    /* to call done() on and free */
	TAILQ_HEAD(, guest_conn) txwait;  /* writers waiting for tx buffers */
	unsigned nconns;
	uint32_t next_port;
	uint64_t serial;
	uint64_t next_timer;              /* earliest deadline or tick */

	struct guest_stats st;
};

/* guest_vsock.c */
void guest_error(struct guest *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
const char *guest_op_name(uint16_t op);
void guest_trace(struct guest *g, const char *dir,
                 const struct virtio_vsock_hdr *h);
/* Queue a control packet (sent at once when possible, in order). */
int guest_tx_ctl(struct guest *g, const struct virtio_vsock_hdr *h,
                 const void *payload, size_t plen);
/* Send a data packet now, or -EAGAIN (no buffer, or control packets
 * waiting that must go first). */
int guest_tx_data(struct guest *g, const struct virtio_vsock_hdr *h,
                  const void *payload, size_t plen);

/* guest_vsock_conn.c */
struct guest_conn *guest_lookup(struct guest *g, uint32_t lport,
                                uint32_t rport);
struct guest_listener *guest_listener_find(struct guest *g, uint32_t port);
/* A new connection in the table (state CONNECTING, no packet sent). */
struct guest_conn *guest_conn_alloc(struct guest *g, uint32_t lport,
                                    uint32_t rport,
                                    const struct guest_conn_ops *ops,
                                    void *arg);
/* Pump c at the next step. */
void guest_conn_dirty(struct guest_conn *c);
/* The connection is over: out of the table now, done() at the step's end. */
void guest_conn_finish(struct guest_conn *c, enum guest_conn_state st,
                       int err);
/* End c after the peer's RST (peer_rst: CLOSED or RESET as it says;
 * else CLOSED). */
void guest_conn_end_rst(struct guest_conn *c);
/* Send a header-only packet for c (our credit in it). */
void guest_conn_ctl(struct guest_conn *c, uint16_t op, uint32_t flags);
/* RST in answer to a packet that belongs to no connection. */
void guest_rst_reply(struct guest *g, const struct virtio_vsock_hdr *in);
int guest_bytes_append(struct guest_bytes *q, const void *p, size_t n);

/* guest_vsock_recv.c */
/* One received packet (header checked against the used length). */
void guest_conn_recv(struct guest *g, const struct virtio_vsock_hdr *h,
                     const uint8_t *payload, uint32_t plen);
/* Timers, then pumps of dirty connections. */
void guest_conns_run(struct guest *g);
/* done() and free for connections that are over. */
void guest_conns_reap(struct guest *g);
/* Free everything without done(). */
void guest_conns_free(struct guest *g);

#endif
