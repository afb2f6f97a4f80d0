/*
 * console — the device: lifetime, the vu_device callbacks, the ports'
 * receive and transmit queues, the serial transport ops, status (the
 * control queues are console_ctl.c's).  The protocol is in console.h.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_console.h>

#include "chanfs/chan.h"
#include "chanfs/log.h"
#include "chanfs/ring.h"
#include "chanfs/serial.h"
#include "chanfs/virtio.h"
#include "chanfs/vq.h"
#include "console_priv.h"

/* --- guest → host -------------------------------------------------------- */

/* Send what is left of the pending transmit chain into to_host: true
 * when all of it went. */
static bool console_tx_rest(struct console_port *p)
{
	const struct vq_elem *e = p->tx_elem;
	struct iovec iov[VQ_ELEM_MAX_IOV];
	unsigned n;

	if (p->tx_off < e->out_len) {
		n = vq_iov_slice(e->iov, e->out_num, p->tx_off,
		                 e->out_len - p->tx_off, iov);
		p->tx_off += (uint32_t)chan_guest_send(p->chan, iov, (int)n);
	}
	return p->tx_off >= e->out_len;
}

/* vq_drain's handler: a new chain, held when the window is full (the rest
 * waits for the host to read: host_consumed). */
static uint32_t console_tx_buf(void *arg, const struct vq_elem *e)
{
	struct console_port *p = arg;

	/* A resumed ring pops the half-taken buffer again. */
	p->tx_off = p->tx_skip < e->out_len ? p->tx_skip : 0;
	p->tx_skip = 0;
	if (console_tx_rest(p))
		return 0;
	p->tx_pending = true;
	return VQ_HELD;
}

static bool console_tx_want(void *arg)
{
	const struct console_port *p = arg;

	return !p->tx_pending;
}

/* Move the port's transmit buffers into to_host while it has room.
 * Returns true when the budget ran out. */
static bool console_tx_run(struct console_port *p)
{
	struct vq *vq = p->txq;

	if (!vq)
		return false;
	if (p->tx_pending) {
		if (!console_tx_rest(p))
			return false;
		vq_push(vq, p->tx_elem, 0);
		p->tx_pending = false;
	}
	/* While the window is full new buffers are no news. */
	vq->lazy_kicks = true;
	return vq_drain(vq, p->tx_elem, CONSOLE_BUDGET, console_tx_buf,
	                console_tx_want, p) == 1;
}

/* --- host → guest -------------------------------------------------------- */

static bool console_rx_want(void *arg)
{
	struct console_port *p = arg;

	return p->guest_open && !ring_empty(&p->chan->to_guest);
}

/* Fill one receive buffer from to_guest. */
static uint32_t console_rx_one(void *arg, const struct vq_elem *e)
{
	struct console_port *p = arg;
	struct iovec src[2];
	size_t total = 0;
	int i, ns;

	ns = ring_peek(&p->chan->to_guest, src, e->in_len);
	for (i = 0; i < ns; i++)
		total += vq_iov_write(e->iov + e->out_num, e->in_num, total,
		                      src[i].iov_base, src[i].iov_len);
	chan_guest_took(p->chan, total);
	return (uint32_t)total;
}

/* Returns true when the budget ran out. */
static bool console_rx_run(struct console_port *p)
{
	struct console *c = p->con;
	bool full = ring_full(&p->chan->to_guest);

	if (p->rxq && vq_drain(p->rxq, c->elem, CONSOLE_BUDGET, console_rx_one,
	                       console_rx_want, p) > 0)
		return true;
	/* A window that stays full while the guest has the port open and
	 * takes nothing: host writers wait (never an error); say so once
	 * per episode.  A port the guest has closed waits silently: that
	 * is what a closed port does. */
	if (full && p->guest_open && ring_full(&p->chan->to_guest)) {
		if (!p->not_reading) {
			p->not_reading = true;
			console_fault(c, CONSOLE_BAD_NOT_READING,
			              "console: port %u (%s): window full and the "
			              "guest, which has the port open, posts no "
			              "receive buffers: host writers wait", p->id,
			              serial_port_name(p->sp));
		}
	} else if (!ring_full(&p->chan->to_guest)) {
		p->not_reading = false;
	}
	return false;
}

/* --- the run ------------------------------------------------------------- */

static void console_run(void *arg)
{
	struct console *c = arg;
	struct console_port *p;
	bool more;

	more = console_ctl_run(c);
	for (p = c->ports; p < c->ports + c->nports; p++) {
		if (console_tx_run(p))
			more = true;
		if (console_rx_run(p))
			more = true;
	}
	if (more)
		loop_defer_next(c->loop, &c->task);
}

/* --- the serial transport ------------------------------------------------ */

static void console_host_wrote(void *ctx)
{
	struct console_port *p = ctx;

	console_schedule(p->con);
}

static void console_host_consumed(void *ctx, size_t n)
{
	struct console_port *p = ctx;

	(void)n;
	if (p->tx_pending)
		console_schedule(p->con);
}

static void console_host_open(void *ctx, bool open)
{
	struct console_port *p = ctx;

	(void)open;
	console_ctl_host_open(p);
}

static void console_port_status(void *ctx, FILE *out)
{
	const struct console_port *p = ctx;
	const char *g;

	if (!p->con->ever_started)
		g = "no guest";
	else if (!p->ready)
		g = "guest not ready";
	else if (p->guest_open)
		g = "guest open";
	else
		g = "guest closed";
	fprintf(out, " console port %u, %s (opened %llu times)%s", p->id, g,
	        (unsigned long long)p->guest_opens,
	        p->tx_pending ? ", guest data waits for room" : "");
}

static const struct serial_port_ops console_port_ops = {
	.host_wrote = console_host_wrote,
	.host_consumed = console_host_consumed,
	.host_open = console_host_open,
	.status = console_port_status,
};

/* --- the device interface ------------------------------------------------ */

static void console_get_config(void *ctx, uint32_t off, void *buf,
                               uint32_t len)
{
	struct console *c = ctx;
	struct virtio_console_config cfg = {
		.max_nr_ports = htole32(c->nports),
	};

	/* vu checked [off, off + len) against config_size (12). */
	memcpy(buf, (const uint8_t *)&cfg + off, len);
}

/* Point the port at its rings (those that run now). */
static void console_port_rings(struct console *c, struct console_port *p)
{
	unsigned rx = console_rxq(p->id), tx = console_txq(p->id);
	bool on = p->id == 0 || c->multiport;

	p->rxq = on ? c->ring[rx] : NULL;
	p->txq = on ? c->ring[tx] : NULL;
}

static void console_queue_started(void *ctx, unsigned q, struct vq *vq)
{
	struct console *c = ctx;
	unsigned i;

	if (q >= c->dev.num_queues)
		return;
	c->ring[q] = vq;
	c->ever_started = true;
	c->multiport = (vq->features & VBIT(VIRTIO_CONSOLE_F_MULTIPORT)) != 0;
	if (!c->multiport && c->nports) {
		/* A single-port driver: port 0 is its console, always
		 * open. */
		c->ports[0].ready = c->ports[0].guest_open = true;
	}
	for (i = 0; i < c->nports; i++)
		console_port_rings(c, &c->ports[i]);
	console_schedule(c);
}

static void console_queue_kicked(void *ctx, unsigned q, struct vq *vq)
{
	struct console *c = ctx;

	if (q >= c->dev.num_queues || c->ring[q] != vq)
		return;
	console_schedule(c);
}

static void console_queue_stopped(void *ctx, unsigned q, struct vq *vq)
{
	struct console *c = ctx;
	struct console_port *p;

	if (q >= c->dev.num_queues || c->ring[q] != vq)
		return;
	c->ring[q] = NULL;
	for (p = c->ports; p < c->ports + c->nports; p++) {
		if (p->txq == vq && p->tx_pending) {
			/* vq_stop gives the buffer back; the resumed ring
			 * pops it again. */
			p->tx_skip = p->tx_off;
			p->tx_pending = false;
		}
		console_port_rings(c, p);
	}
}

static void console_reset(void *ctx)
{
	struct console *c = ctx;
	struct console_port *p;

	memset(c->ring, 0, sizeof c->ring);
	console_ctl_reset(c);
	for (p = c->ports; p < c->ports + c->nports; p++) {
		p->rxq = p->txq = NULL;
		p->tx_pending = false;
		p->tx_off = p->tx_skip = 0;
		p->not_reading = false;
	}
	c->ever_started = false;
	c->multiport = false;
	log_debug("console: device reset");
}

const struct vu_device *console_vu_device(struct console *c)
{
	return &c->dev;
}

/* --- lifetime ------------------------------------------------------------ */

struct console *console_new(struct loop *l, struct serial *s,
                            const struct console_config *cfg)
{
	struct console *c;
	unsigned i;

	if (cfg->nports < 1 || cfg->nports > CONSOLE_MAX_PORTS) {
		log_warnx("console: %u ports: 1 to %u are possible",
		          cfg->nports, CONSOLE_MAX_PORTS);
		errno = EINVAL;
		return NULL;
	}
	if (!(c = calloc(1, sizeof *c)))
		return NULL;
	c->loop = l;
	c->nports = cfg->nports;
	c->console = cfg->console;
	c->dev = (struct vu_device){
		.name = "console",
		.features = VBIT(VIRTIO_CONSOLE_F_MULTIPORT),
		.num_queues = 2 * (cfg->nports + 1),
		.config_size = sizeof(struct virtio_console_config),
		.get_config = console_get_config,
		.queue_started = console_queue_started,
		.queue_kicked = console_queue_kicked,
		.queue_stopped = console_queue_stopped,
		.reset = console_reset,
	};
	TAILQ_INIT(&c->sendq);
	loop_task_init(&c->task, console_run, c);
	c->ports = calloc(cfg->nports, sizeof *c->ports);
	c->elem = malloc(sizeof *c->elem);
	if (!c->ports || !c->elem)
		goto fail;
	for (i = 0; i < cfg->nports; i++) {
		struct console_port *p = &c->ports[i];

		p->con = c;
		p->id = i;
		if (!(p->tx_elem = malloc(sizeof *p->tx_elem)))
			goto fail;
		p->sp = serial_port_add(s, cfg->ports[i], &console_port_ops,
		                        p);
		if (!p->sp) {
			log_warnx("console: port %u: %s: %s", i, cfg->ports[i],
			          errno == EEXIST ? "name given twice" :
			          errno == EINVAL ? "not a valid port name" :
			          strerror(errno));
			goto fail;
		}
		p->chan = serial_port_chan(p->sp);
	}
	return c;
fail:
	i = errno;
	console_free(c);
	errno = (int)i;
	return NULL;
}

void console_free(struct console *c)
{
	unsigned i;

	if (!c)
		return;
	loop_cancel(c->loop, &c->task);
	for (i = 0; c->ports && i < c->nports; i++)
		free(c->ports[i].tx_elem);
	free(c->ports);
	free(c->elem);
	free(c);
}

/* --- status -------------------------------------------------------------- */

void console_status(const struct console *c, FILE *out)
{
	static const char *const fault_names[CONSOLE_FAULTS] = {
		[CONSOLE_BAD_SIZE_SHORT] = "short",
		[CONSOLE_BAD_SIZE_LONG] = "oversized",
		[CONSOLE_BAD_PORT] = "no such port",
		[CONSOLE_BAD_EVENT] = "bad event",
		[CONSOLE_BAD_REPEAT_READY] = "repeated DEVICE_READY",
		[CONSOLE_BAD_NOT_READY] = "out of order",
		[CONSOLE_BAD_GUEST_FAILED] = "guest failures",
		[CONSOLE_BAD_SMALL_BUF] = "small buffers",
		[CONSOLE_BAD_NOT_READING] = "unread windows",
	};
	unsigned i, q, running = 0;
	const char *sep = "";

	for (q = 0; q < c->dev.num_queues; q++)
		running += c->ring[q] != NULL;
	fprintf(out, "console: %s, %u ports%s, %u of %u queues running, "
	        "%s\n", running ? "running" : c->ever_started ? "stopped" :
	        "no front-end", c->nports, c->console ? " (port 0 a console)" :
	        "", running, c->dev.num_queues,
	        !c->ever_started ? "no driver" : !c->multiport ?
	        "single-port driver" : c->device_ready ? "device ready" :
	        "waiting for DEVICE_READY");
	fprintf(out, "  control: %llu messages from the guest (%llu "
	        "rejected), %llu to the guest", (unsigned long long)c->ctl_in,
	        (unsigned long long)c->ctl_rejected,
	        (unsigned long long)c->ctl_out);
	for (i = 0; i < CONSOLE_FAULTS; i++) {
		if (!c->faults[i])
			continue;
		fprintf(out, "%s%s %llu", *sep ? sep : "; guest faults: ",
		        fault_names[i], (unsigned long long)c->faults[i]);
		sep = ", ";
	}
	fputc('\n', out);
}
