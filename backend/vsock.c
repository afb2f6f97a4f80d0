/*
 * vsock — the device: lifetime, the vu_device callbacks (queues come and
 * go with the front-end and the guest driver), host-initiated connects,
 * status (listening ports are vsock_listen.c's).
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "chanfs/chan.h"
#include "chanfs/log.h"
#include "chanfs/vq.h"
#include "chanfs/vu.h"
#include "vsock_priv.h"

/* --- host-initiated connections --------------------------------------------- */

static bool vsock_port_taken(const struct vsock *v, uint32_t host_port,
                             uint32_t guest_port)
{
	return vsock_conn_find(v, host_port, guest_port) ||
	       vsock_listener_find(v, host_port);
}

int vsock_connect(struct vsock *v, uint32_t port, struct chan **out)
{
	uint32_t n = VSOCK_EPHEMERAL_LAST - VSOCK_EPHEMERAL_FIRST + 1, i;
	uint32_t hp = 0;
	struct vsock_conn *c;

	if (!v->vq[VSOCK_RXQ] || !v->vq[VSOCK_TXQ])
		return -ENOTCONN;
	/* Round-robin, so a port just closed is not reused at once (the
	 * guest may still hold the old connection). */
	for (i = 0; i < n; i++) {
		uint32_t cand = v->next_ephemeral;

		v->next_ephemeral = cand == VSOCK_EPHEMERAL_LAST ?
		                    VSOCK_EPHEMERAL_FIRST : cand + 1;
		if (!vsock_port_taken(v, cand, port)) {
			hp = cand;
			break;
		}
	}
	if (i == n)
		return -EADDRINUSE;
	c = vsock_conn_new(v, hp, port, VSOCK_CONNECTING);
	if (!c)
		return -errno;
	c->host_initiated = true;
	vsock_ctl_queue(c, VSOCK_CTL_REQUEST);
	vsock_conn_arm_timer(c, v->cfg.connect_timeout_ms);
	chan_ref(c->chan);
	*out = c->chan;
	log_debug(VSOCK_CONN_FMT ": connecting", VSOCK_CONN_ARGS(c));
	return 0;
}

/* --- the device interface ---------------------------------------------------- */

static void vsock_get_config(void *ctx, uint32_t off, void *buf, uint32_t len)
{
	struct vsock *v = ctx;
	uint64_t le = htole64(v->cfg.guest_cid);

	/* vu checked [off, off + len) against config_size (8). */
	memcpy(buf, (const uint8_t *)&le + off, len);
}

/* The device ended (front-end gone, RESET_OWNER, the driver restarted
 * its rings): every connection is gone with the driver, and so is every
 * packet we meant to send it. */
static void vsock_drop_all(struct vsock *v, const char *why)
{
	struct vsock_listener *l;

	if (v->nconns)
		log_info("vsock: %s: resetting %u connections", why,
		         v->nconns);
	vsock_conn_reset_all(v, ECONNRESET);
	TAILQ_FOREACH(l, &v->listeners, link)
		vsock_listener_flush(l);
	v->warned_small_rx = false;
}

/* The rings stopped (a VM pause, a snapshot, a memory table change):
 * the guest neither runs nor answers, so the connections' timers stop
 * counting; vsock_timers_release arms them again for what was left. */
static void vsock_timers_hold(struct vsock *v)
{
	struct vsock_conn *c;
	struct timeval now, at;
	long long ms;

	event_base_gettimeofday_cached(loop_base(v->loop), &now);
	TAILQ_FOREACH(c, &v->conns, link) {
		if (!c->timer || !evtimer_pending(c->timer, &at))
			continue;
		ms = ((long long)at.tv_sec - now.tv_sec) * 1000 +
		     (at.tv_usec - now.tv_usec + 999) / 1000;
		evtimer_del(c->timer);
		c->timer_held = true;
		c->timer_left_ms = ms > 0 ? (unsigned)ms : 0;
	}
}

static void vsock_timers_release(struct vsock *v)
{
	struct vsock_conn *c;

	TAILQ_FOREACH(c, &v->conns, link) {
		if (!c->timer_held)
			continue;
		c->timer_held = false;
		vsock_conn_arm_timer(c, c->timer_left_ms);
	}
}

/* The device works only while both rings run: what it does on one needs
 * the other (a REQUEST's RESPONSE, data's credit updates), and until both
 * have started again after a stop, vu may still find that the driver
 * restarted and reset us. */
static void vsock_queue_started(void *ctx, unsigned q, struct vq *vq)
{
	struct vsock *v = ctx;

	if (q >= VSOCK_NUM_QUEUES)
		return;
	v->ring[q] = vq;
	v->ever_started = true;
	if (!v->ring[VSOCK_RXQ] || !v->ring[VSOCK_TXQ])
		return;
	v->vq[VSOCK_RXQ] = v->ring[VSOCK_RXQ];
	v->vq[VSOCK_TXQ] = v->ring[VSOCK_TXQ];
	if (v->nconns)
		log_debug("vsock: rings running: %u connections continue",
		          v->nconns);
	vsock_timers_release(v);
	/* Kicks that came while the other ring was stopped were not
	 * answered: look at both rings. */
	vsock_rx_schedule(v);
	loop_defer(v->loop, &v->tx_task);
}

static void vsock_queue_kicked(void *ctx, unsigned q, struct vq *vq)
{
	struct vsock *v = ctx;

	if (q >= VSOCK_NUM_QUEUES || v->vq[q] != vq)
		return;
	if (q == VSOCK_RXQ)
		vsock_rx_schedule(v);
	else
		vsock_tx_run(v);
}

/* A stop is not the end of the device (vu.h): connections, their data
 * and pending control packets wait for the rings to start again. */
static void vsock_queue_stopped(void *ctx, unsigned q, struct vq *vq)
{
	struct vsock *v = ctx;

	if (q >= VSOCK_NUM_QUEUES || v->ring[q] != vq)
		return;
	/* Held chains complete before their ring stops (else a restart pops
	 * them again) and before guest memory may be remapped. */
	vsock_tx_lend_end(v);
	v->ring[q] = NULL;
	if (!v->vq[VSOCK_RXQ])
		return;
	v->vq[VSOCK_RXQ] = v->vq[VSOCK_TXQ] = NULL;
	vsock_timers_hold(v);
	if (v->nconns)
		log_debug("vsock: rings stopped: %u connections wait for them",
		          v->nconns);
}

static void vsock_reset(void *ctx)
{
	struct vsock *v = ctx;

	vsock_tx_lend_end(v);
	v->ring[VSOCK_RXQ] = v->ring[VSOCK_TXQ] = NULL;
	v->vq[VSOCK_RXQ] = v->vq[VSOCK_TXQ] = NULL;
	vsock_drop_all(v, "device reset");
	v->ever_started = false;
}

static const struct vu_device vsock_device = {
	.name = "vsock",
	.features = 0,
	.num_queues = VSOCK_NUM_QUEUES,
	.config_size = 8,
	.get_config = vsock_get_config,
	.queue_started = vsock_queue_started,
	.queue_kicked = vsock_queue_kicked,
	.queue_stopped = vsock_queue_stopped,
	.reset = vsock_reset,
};

const struct vu_device *vsock_vu_device(void)
{
	return &vsock_device;
}

/* --- lifetime ---------------------------------------------------------------- */

static int vsock_check_config(const struct vsock_config *cfg)
{
	if (cfg->guest_cid < 3 || cfg->guest_cid >= UINT32_MAX) {
		log_warnx("vsock: guest CID %llu is reserved or out of range",
		          (unsigned long long)cfg->guest_cid);
		return -EINVAL;
	}
	if (cfg->buf_size == 0 || (cfg->buf_size & (cfg->buf_size - 1)) ||
	    cfg->buf_size > (1u << 30)) {
		log_warnx("vsock: buffer size %u is not a power of two up to "
		          "1 GiB", cfg->buf_size);
		return -EINVAL;
	}
	if (cfg->backlog == 0) {
		log_warnx("vsock: backlog must be at least 1");
		return -EINVAL;
	}
	return 0;
}

/* The coalescing wait of the held connections is over. */
static void vsock_coalesce_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	vsock_conn_release_held(arg);
}

struct vsock *vsock_new(struct loop *l, const struct vsock_config *cfg,
                        struct chan_set *chans)
{
	struct vsock *v;
	unsigned i;
	int rc;

	rc = vsock_check_config(cfg);
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	v = calloc(1, sizeof *v);
	if (!v)
		return NULL;
	v->loop = l;
	v->cfg = *cfg;
	v->chans = chans;
	v->next_ephemeral = VSOCK_EPHEMERAL_FIRST;
	TAILQ_INIT(&v->ctlq);
	TAILQ_INIT(&v->rr);
	TAILQ_INIT(&v->todo);
	TAILQ_INIT(&v->rst_free);
	TAILQ_INIT(&v->listeners);
	for (i = 0; i < VSOCK_RST_MAX; i++)
		TAILQ_INSERT_TAIL(&v->rst_free, &v->rst_pool[i], link);
	TAILQ_INIT(&v->held);
	if (!v->cfg.coalesce_us)
		v->cfg.coalesce_us = VSOCK_COALESCE_US;
	loop_task_init(&v->fill_task, vsock_rx_fill, v);
	loop_task_init(&v->tx_task, vsock_tx_task, v);
	loop_task_init(&v->lend.task, vsock_tx_lend_task, v);
	v->rx_elem = malloc(sizeof *v->rx_elem);
	v->tx_elem = malloc(sizeof *v->tx_elem);
	v->coalesce_timer = evtimer_new(loop_base(l), vsock_coalesce_done, v);
	if (!v->rx_elem || !v->tx_elem || !v->coalesce_timer ||
	    vsock_conn_table_init(v) < 0) {
		vsock_free(v);
		errno = ENOMEM;
		return NULL;
	}
	return v;
}

void vsock_free(struct vsock *v)
{
	if (!v)
		return;
	vsock_tx_lend_end(v);
	if (v->buckets)
		vsock_conn_reset_all(v, ECONNRESET);
	vsock_listeners_free(v);
	loop_cancel(v->loop, &v->fill_task);
	loop_cancel(v->loop, &v->tx_task);
	if (v->coalesce_timer)
		event_free(v->coalesce_timer);
	free(v->rx_elem);
	free(v->tx_elem);
	vsock_conn_table_free(v);
	free(v);
}

/* --- status ------------------------------------------------------------------ */

static const char *vsock_dev_state(const struct vsock *v)
{
	if (v->vq[VSOCK_RXQ] && v->vq[VSOCK_TXQ])
		return "running";
	if (v->ever_started)
		return "stopped";
	return "no front-end";
}

void vsock_status(const struct vsock *v, FILE *out)
{
	const struct vsock_listener *l;
	const struct vsock_conn *c;
	unsigned q;

	fprintf(out, "vsock: %s, guest cid %llu, features stream, "
	        "%u connections, window %u\n", vsock_dev_state(v),
	        (unsigned long long)v->cfg.guest_cid, v->nconns,
	        v->cfg.buf_size);
	fprintf(out, "  packets: %llu from guest (%llu rejected, %llu lent "
	        "to reads), %llu to guest, %llu RST replies dropped\n",
	        (unsigned long long)v->pkts_rx,
	        (unsigned long long)v->pkts_rejected,
	        (unsigned long long)v->pkts_lent,
	        (unsigned long long)v->pkts_tx,
	        (unsigned long long)v->rst_dropped);
	for (q = 0; q < VSOCK_NUM_QUEUES; q++) {
		if (!v->vq[q])
			continue;
		fputs("  ", out);
		vq_status(v->vq[q], out);
	}
	TAILQ_FOREACH(l, &v->listeners, link)
		fprintf(out, "  listen %u: %u of %u waiting%s\n", l->port,
		        l->count, l->cap, l->listening ? "" : ", not listening");
	TAILQ_FOREACH(c, &v->conns, link)
		fprintf(out, "  " VSOCK_CONN_FMT " %s%s: guest->host %llu bytes "
		        "(credit %u of %u), host->guest %llu bytes (guest "
		        "credit %u of %u), packets %llu in %llu out\n",
		        VSOCK_CONN_ARGS(c),
		        vsock_conn_state_name(c->state),
		        c->host_initiated ? " (host connected)" : "",
		        (unsigned long long)c->chan->rx_bytes,
		        vsock_conn_our_credit(c), c->buf_alloc,
		        (unsigned long long)c->chan->tx_bytes,
		        vsock_conn_peer_credit(c),
		        c->peer_buf_alloc, (unsigned long long)c->pkts_in,
		        (unsigned long long)c->pkts_out);
}
