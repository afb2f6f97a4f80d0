/*
 * guest_vsock — a simulated Linux-like virtio-vsock guest driver on top of
 * the simulated VMM (vmm.h), for integration tests and benchmarks.
 *
 * One struct guest is one VMM connection with a vsock driver: queue 0 is
 * rx (device to driver), queue 1 is tx.  The guest CID comes from
 * GET_CONFIG.  RX buffers are kept posted in one of two layouts:
 *   A — a 44-byte header descriptor and a 4 KiB data descriptor (Linux 6.1);
 *   B — one buffer holding header and payload (later kernels).
 * TX packets use the same layout (A: header and payload descriptors; B: one
 * descriptor with both).  The packet parser never assumes either: it reads
 * the header from the first 44 written bytes and the payload after them.
 *
 * Connections behave as Linux's virtio_transport_common.c: credit both ways
 * (every packet carries buf_alloc and fwd_cnt; data is never sent beyond
 * the peer's credit; a CREDIT_UPDATE goes out when the reader has consumed
 * enough, CREDIT_REQUEST is answered), SHUTDOWN flags per direction, close
 * as SHUTDOWN(RCV|SEND) then waiting for the peer's RST (close timeout),
 * RST to packets for no connection, RESPONSE to REQUESTs on listening
 * ports.  Whatever the device does wrong (data beyond our credit, a
 * malformed or misaddressed packet, fwd_cnt beyond what we sent, an op
 * that makes no sense in the connection's state) is counted as an error
 * and reported through the error hook: tests assert it stays at zero.
 *
 * Applications (the services in guest_vsock_svc.c) see a connection through
 * struct guest_conn_ops: pump() is called, from the driver's step and never
 * from inside packet handling, whenever something about the connection may
 * have changed (data arrived, credit or tx slots came back, shutdown,
 * state change, a tick); done() once when it is over, after which the
 * connection is freed.
 *
 * Single-threaded, no global state; several guests may coexist.  Errors are
 * -errno; pointer-returning functions give NULL with errno set.
 */
#ifndef CHANFS_TESTS_GUEST_VSOCK_H
#define CHANFS_TESTS_GUEST_VSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <stdio.h>
#include <sys/types.h>

#include <linux/virtio_vsock.h>

#define GUEST_HOST_CID 2
#define GUEST_HDR_LEN 44u
/* Largest payload of one packet we send (Linux: VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
#define GUEST_MAX_PKT (64u << 10)
/* Linux's default receive buffer (SO_VM_SOCKETS_BUFFER_SIZE). */
#define GUEST_DEFAULT_BUF_ALLOC (256u << 10)

enum guest_layout { GUEST_LAYOUT_A, GUEST_LAYOUT_B };

struct guest_opts {
	enum guest_layout layout;
	uint64_t features;          /* extra virtio bits: EVENT_IDX,
	                               INDIRECT_DESC, IN_ORDER */
	bool indirect;              /* put 2+ segment chains in indirect
	                               tables (needs INDIRECT_DESC) */
	unsigned queue_size;        /* 0 → 128 (QEMU's vhost-vsock size) */
	uint32_t buf_alloc;         /* our receive window per connection;
	                               0 → GUEST_DEFAULT_BUF_ALLOC */
	uint32_t rx_buf_size;       /* payload bytes per RX buffer; 0 → 4096
	                               (A) or 65536 (B) */
	unsigned connect_timeout_ms;/* 0 → 2000 (Linux) */
	unsigned close_timeout_ms;  /* 0 → 8000 (Linux) */
	int vmm_timeout_ms;         /* vmm_opts.timeout_ms */
	bool credit_request;        /* send CREDIT_REQUEST when a write
	                               stalls on zero credit (Linux does
	                               not; exercises the host's answer) */
	bool verbose;               /* trace packets on stderr */
	/* Called for each error (the device broke the protocol); msg is one
	 * line without newline.  NULL: printed on stderr. */
	void (*on_error)(void *arg, const char *msg);
	void *on_error_arg;
};

enum guest_conn_state {
	GUEST_CONN_CONNECTING,  /* REQUEST sent, waiting for RESPONSE */
	GUEST_CONN_ESTABLISHED,
	GUEST_CONN_CLOSING,     /* SHUTDOWN(RCV|SEND) sent, waiting for RST */
	GUEST_CONN_CLOSED,      /* over, orderly */
	GUEST_CONN_RESET,       /* over, error holds why */
};

struct guest;
struct guest_conn;

struct guest_conn_ops {
	/* Something may have changed: read, write, close as you can. */
	void (*pump)(struct guest_conn *c);
	/* The connection is over (CLOSED or RESET); it is freed on return. */
	void (*done)(struct guest_conn *c);
};

/* A growable byte queue (received, not yet consumed data). */
struct guest_bytes {
	uint8_t *buf;
	size_t head, len, cap;
};

struct guest_conn {
	struct guest *g;
	uint32_t lport, rport;      /* guest port, host port */
	bool outgoing;              /* we connected (else accepted) */
	enum guest_conn_state state;
	int error;                  /* ECONNRESET, ECONNREFUSED, ETIMEDOUT,
	                               EPROTO when RESET */
	/* receive side: our credit */
	uint32_t buf_alloc;
	uint32_t fwd_cnt;           /* bytes consumed by the application */
	uint32_t last_fwd_cnt;      /* fwd_cnt last told to the peer */
	struct guest_bytes rxq;
	uint64_t rx_total;          /* bytes received */
	uint64_t rx_pkts;           /* RW packets that carried them */
	/* send side: the peer's credit */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t tx_cnt;            /* bytes sent (wraps like the fields) */
	uint64_t tx_total;
	uint32_t inflight_max;      /* largest tx_cnt - peer_fwd_cnt seen */
	uint64_t credit_stalls;     /* writes cut short by credit */
	bool credit_requested;      /* CREDIT_REQUEST sent for this stall */
	bool ignore_credit;         /* misbehave: send beyond credit */
	/* shutdown */
	uint32_t peer_shutdown;     /* VIRTIO_VSOCK_SHUTDOWN_* received */
	/* An RST came while received data was still unread: as Linux's
	 * virtio_transport_do_close, that data stays readable and the
	 * connection ends once it is read (CLOSED if the peer had shut down
	 * both ways before its RST, else RESET). */
	bool peer_rst, peer_rst_orderly;
	uint32_t shutdown;          /* VIRTIO_VSOCK_SHUTDOWN_* sent */
	/* timers (monotonic ms, 0: none) */
	uint64_t deadline;          /* connect or close timeout */
	unsigned tick_ms;           /* pump at least this often (0: never) */
	uint64_t next_tick;
	/* the application */
	const struct guest_conn_ops *ops;
	void *arg;
	uint64_t serial;            /* 0, 1, 2... in creation order */
	/* driver bookkeeping */
	bool dirty, dead, want_tx;
	LIST_ENTRY(guest_conn) hlink;
	TAILQ_ENTRY(guest_conn) all;
	TAILQ_ENTRY(guest_conn) dlink;  /* dirty or dead list */
	TAILQ_ENTRY(guest_conn) wlink;  /* waiting for tx buffers */
};

/* What the guest has seen, for the summary line. */
struct guest_stats {
	uint64_t rx_pkts, tx_pkts, rx_bytes, tx_bytes;
	uint64_t errors;            /* device protocol violations */
	uint64_t rst_sent, rst_recv, credit_updates_sent, credit_requests_sent;
	uint64_t ignored_requests;  /* REQUESTs swallowed (ignore listener) */
	uint64_t conns_opened, conns_active;
};

/* Connect to the vhost-user back-end at sock, run the handshake with the
 * wanted features, read the CID, post RX buffers.  NULL with errno set. */
struct guest *guest_new(const char *sock, const struct guest_opts *opts);
/* Disconnect (closes the vhost-user socket, as a VMM that dies) and free
 * every connection without calling done().  NULL ok. */
void guest_free(struct guest *g);

/* The VMM pauses the VM (QMP "stop"): completed buffers are taken, then
 * vmm_stop.  Nothing of the guest may run until guest_resume (do not call
 * guest_step meanwhile: a paused guest is frozen).  0 or -errno. */
int guest_pause(struct guest *g);
/* "cont": vmm_resume; the guest carries on where it was.  0 or -errno. */
int guest_resume(struct guest *g);
/* The guest driver resets the device (unbind/rebind, module reload):
 * every connection ends RESET(ECONNRESET) without a packet (done() is
 * called), the rings are set up anew and started at base 0
 * (vmm_restart_driver), RX buffers are posted again.  0 or -errno. */
int guest_restart(struct guest *g);
/* The VMM sends SET_MEM_TABLE while the rings run (memory hotplug).
 * 0 or -errno. */
int guest_remap(struct guest *g);

uint64_t guest_cid(const struct guest *g);
/* The negotiated virtio features. */
uint64_t guest_features(const struct guest *g);
void guest_get_stats(const struct guest *g, struct guest_stats *st);
/* Monotonic milliseconds (the clock every guest timer uses). */
uint64_t guest_now_ms(void);

/* Listen on guest port: each REQUEST to it is answered with RESPONSE and
 * becomes a connection with ops; accept_fn (may be NULL) is called first
 * with the new connection to set c->arg.  With ops NULL the port swallows
 * REQUESTs without answering (misbehaviour: the host's connect times
 * out).  0, -EADDRINUSE, -ENOMEM. */
int guest_listen(struct guest *g, uint32_t port,
                 const struct guest_conn_ops *ops,
                 void (*accept_fn)(void *larg, struct guest_conn *c),
                 void *larg);
/* Stop listening (existing connections continue). */
void guest_unlisten(struct guest *g, uint32_t port);

/* Connect to host port (dst CID 2) from a fresh ephemeral guest port: the
 * connection starts CONNECTING; pump() sees it ESTABLISHED, or done() with
 * RESET (ECONNREFUSED on RST, ETIMEDOUT after the connect timeout).
 * Returns the connection or NULL with errno set. */
struct guest_conn *guest_connect(struct guest *g, uint32_t host_port,
                                 const struct guest_conn_ops *ops,
                                 void *arg);

/* Misbehaviour: a connection to host_port the host never heard of (no
 * REQUEST is sent): ESTABLISHED at once with zero peer credit, so writes
 * need ignore_credit.  NULL with errno set. */
struct guest_conn *guest_conn_phantom(struct guest *g, uint32_t host_port,
                                      const struct guest_conn_ops *ops,
                                      void *arg);

/* Contiguous received bytes: *p and their count (0: none right now). */
size_t guest_conn_peek(struct guest_conn *c, const uint8_t **p);
/* The application consumed n of the received bytes: fwd_cnt advances and
 * a CREDIT_UPDATE goes out when Linux would send one. */
void guest_conn_consume(struct guest_conn *c, size_t n);
/* peek + copy + consume. */
size_t guest_conn_read(struct guest_conn *c, void *buf, size_t len);
/* Bytes received and not consumed. */
static inline size_t guest_conn_rx_avail(const struct guest_conn *c)
{
	return c->rxq.len;
}
/* The peer sends no more and everything it sent was consumed. */
bool guest_conn_eof(const struct guest_conn *c);
/* Send up to len bytes as RW packets now: as many as the peer's credit
 * (unless ignore_credit) and free tx buffers allow.  Returns the count
 * (0: try again at the next pump), -EPIPE after our SHUTDOWN(SEND) or the
 * peer's SHUTDOWN(RCV), -ENOTCONN unless ESTABLISHED. */
ssize_t guest_conn_write(struct guest_conn *c, const void *buf, size_t len);
/* Bytes the peer's credit allows now. */
uint32_t guest_conn_credit(const struct guest_conn *c);
/* shutdown(2): send SHUTDOWN with the flags not sent yet. */
void guest_conn_shutdown(struct guest_conn *c, uint32_t flags);
/* close(2): as Linux — SHUTDOWN(RCV|SEND) and wait for the peer's RST (or
 * RST at once when the peer already shut both ways or we are connecting);
 * done() follows.  Idempotent. */
void guest_conn_close(struct guest_conn *c);
/* Abort: send RST, done() follows with RESET(ECONNRESET). */
void guest_conn_reset(struct guest_conn *c);
/* Pump this connection at least every ms milliseconds (0: stop). */
void guest_conn_set_tick(struct guest_conn *c, unsigned ms);
const char *guest_conn_state_name(const struct guest_conn *c);

/* Send a packet exactly as given (misbehaviour tests): the header is sent
 * as is (little-endian fields already filled by the caller), followed by
 * payload_len payload bytes (which may disagree with hdr->len).  Queued
 * behind other control packets when no tx buffer is free.  0 or -errno. */
int guest_send_raw(struct guest *g, const struct virtio_vsock_hdr *hdr,
                   const void *payload, size_t payload_len);
/* A header for connection c with op (little-endian, our credit filled). */
void guest_conn_hdr(const struct guest_conn *c, uint16_t op,
                    struct virtio_vsock_hdr *hdr);

/* One step of the driver loop: handle used buffers, run pumps and timers,
 * refill RX, kick; then sleep in poll() on the call eventfds, the
 * vhost-user socket and extra_fd (-1: none) until something happens, a
 * timer is due, or max_wait_ms passes (< 0: no limit).  Returns 1 when
 * extra_fd became readable, 0 otherwise, -ECONNRESET when the back-end
 * closed the connection, -errno on other failures. */
int guest_step(struct guest *g, int extra_fd, int max_wait_ms);
/* Step until the device has taken every packet we queued (or timeout_ms
 * passes).  0, -ETIMEDOUT, or guest_step's errors. */
int guest_flush(struct guest *g, int timeout_ms);
/* Connections alive (not yet done). */
unsigned guest_conn_count(const struct guest *g);
/* Iterate over live connections (e.g. to report them at exit). */
struct guest_conn *guest_conn_first(struct guest *g);
struct guest_conn *guest_conn_next(struct guest_conn *c);

/* --- services (guest_vsock_svc.c) ---------------------------------------
 *
 * The applications chanfs-simguest runs.  Listen side (guest port):
 *   echo          send back what arrives; close after the host's EOF
 *   sink          read everything; report count and FNV-1a at the host's EOF
 *   source=N      send N bytes of the connection's data stream, then close
 *   slow=RATE     a reader consuming at most RATE bytes per ms
 *   ignore        swallow REQUESTs without answering (misbehaviour)
 * Connect side (host port, from an ephemeral guest port):
 *   send=N        send N bytes, then close
 *   echo-check=N  send N bytes, read them back and compare, then close
 *   recv          read until the host's EOF, then close
 *   request=N     send N bytes, shut down the sending side, read the
 *                 host's answer until its EOF, then close
 *   bad=KIND      connect, wait for the host's first byte (the host has
 *                 the connection open), then misbehave and wait for the
 *                 host's RST:
 *                 overrun (send beyond credit), unknown-op, hdr-len (header
 *                 len larger than the buffer), wrong-cid (src_cid not
 *                 ours), noconn (RW on a connection the host never saw,
 *                 without connecting)
 * N is a byte count (K/M/G suffixes) or MIN-MAX for a random size per
 * connection.  Options after a comma: n=K (connect: K connections at
 * once; listen: stop listening after K connections, then the next listen
 * spec for the same port takes over), delay=MS (wait after the connection
 * is established before sending or reading), chunk=BYTES (largest write
 * or read per pump), after=PORT (connect: start once a connection to the
 * guest's listening PORT was accepted), first=HEX (connect: send these
 * bytes, hex-encoded, e.g. a named service's connect string with its NUL,
 * before the service's own bytes; not counted in tx or tx_fnv), check=0
 * (sink, source, send, recv: no checksum and no data stream, so that
 * benchmarks measure the device and not the checksum; the fnv fields
 * then stay at their initial value).
 *
 * Every connection prints one line when it ends:
 *   conn lport=L rport=R svc=S status=ST rx=N rx_fnv=H tx=N tx_fnv=H
 *        inflight_max=N peer_buf_alloc=N stalls=N seed=H rx_pkts=N
 *        [check=ok|...]
 * (rx_pkts: the RW packets its rx bytes came in)
 * "open lport=L rport=R svc=S" when it is established, and "stall lport=L
 * rport=R inflight=N peer_buf_alloc=N" the first time a write is held back
 * by the host's credit.
 */
enum guest_svc_kind {
	GUEST_SVC_ECHO, GUEST_SVC_SINK, GUEST_SVC_SOURCE, GUEST_SVC_SLOW,
	GUEST_SVC_IGNORE,
	GUEST_SVC_SEND, GUEST_SVC_ECHO_CHECK, GUEST_SVC_RECV,
	GUEST_SVC_REQUEST,
	GUEST_SVC_BAD_OVERRUN, GUEST_SVC_BAD_OP, GUEST_SVC_BAD_LEN,
	GUEST_SVC_BAD_CID, GUEST_SVC_BAD_NOCONN,
};

/* Largest first=HEX prefix (a named-service connect string and more). */
#define GUEST_FIRST_MAX 1024

struct guest_svc_spec {
	enum guest_svc_kind kind;
	bool listen;
	uint32_t port;
	uint64_t n_min, n_max;
	uint32_t rate;
	unsigned count, delay_ms, chunk;
	uint32_t after;             /* connect once a connection to this
	                               listening guest port was accepted */
	bool has_after;
	uint8_t first[GUEST_FIRST_MAX]; /* connect: sent before the
	                               service's own bytes (first=HEX) */
	size_t first_len;
	bool nocheck;               /* check=0: no checksum, no data stream
	                               (benchmarks: counts only) */
};

/* Parse "PORT:SVC[=ARG][,key=val...]" for --listen (listen true) or
 * --connect.  0, or -EINVAL with a message in err. */
int guest_svc_parse(const char *arg, bool listen, struct guest_svc_spec *out,
                    char *err, size_t errlen);
/* Parse a byte count with K/M/G suffix; -1 on error. */
int64_t guest_parse_size(const char *s);

struct guest_svc;
/* Services of guest g; result lines go to out; connection data seeds
 * derive from seed. */
struct guest_svc *guest_svc_new(struct guest *g, uint64_t seed, FILE *out);
/* Start one spec (listen now, or open its connections now).  0 or -errno. */
int guest_svc_start(struct guest_svc *s, const struct guest_svc_spec *spec);
/* Nothing left to do: every connection over, every listener with n=K
 * closed, and no listener without one. */
bool guest_svc_idle(const struct guest_svc *s);
/* Print a line for each live connection (status=aborted) and release the
 * services' state; call before guest_free. */
void guest_svc_abort(struct guest_svc *s);
void guest_svc_free(struct guest_svc *s);

/* --- checksums and deterministic data (shared with the host-side tests) */

#define GUEST_FNV_INIT 0xcbf29ce484222325ULL

/* FNV-1a 64 over len bytes, continuing from h (start: GUEST_FNV_INIT). */
static inline uint64_t guest_fnv1a(uint64_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* splitmix64's finalizer. */
static inline uint64_t guest_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#define GUEST_GOLDEN 0x9e3779b97f4a7c15ULL

/* splitmix64: a seeded PRNG for sizes and choices. */
static inline uint64_t guest_rand(uint64_t *s)
{
	return guest_mix64(*s += GUEST_GOLDEN);
}

/* A deterministic byte stream with random access: byte off of the stream
 * seed is byte (off % 8) of guest_mix64(seed + (off / 8 + 1) * golden),
 * so sender and checker agree however their reads and writes are split. */
static inline void guest_data_fill(uint64_t seed, uint64_t off, void *buf,
                                   size_t len)
{
	uint8_t *p = buf;
	uint64_t k = off >> 3, w = guest_mix64(seed + (k + 1) * GUEST_GOLDEN);
	size_t i;

	w >>= 8 * (off & 7);
	for (i = 0; i < len; i++) {
		if (i && !((off + i) & 7)) {
			k++;
			w = guest_mix64(seed + (k + 1) * GUEST_GOLDEN);
		}
		p[i] = (uint8_t)w;
		w >>= 8;
	}
}

#endif
