/*
 * guest_console — the simulated virtio-console guest (guest_console.h).
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <linux/virtio_console.h>

#include "chanfs/virtio.h"
#include "guest_console.h"
#include "vmm.h"

#define GCON_CTL_RXQ 2
#define GCON_CTL_TXQ 3
#define GCON_EVENTS 9

/* One guest buffer, the token of its ring entry. */
struct gbuf {
	uint64_t gpa;
	uint32_t size;
	unsigned q;
	bool busy;
};

struct gpool {
	struct gbuf *b;
	unsigned n;
};

struct gcon {
	struct gcon_opts o;
	struct vmm *vmm;
	unsigned nports, nq;
	uint32_t max_nr_ports;
	struct gcon_port port[GCON_MAX_PORTS];
	bool rx_hold[GCON_MAX_PORTS];
	struct gpool pool[2 * (GCON_MAX_PORTS + 1)];
	unsigned errors;
	char last_error[256];
	unsigned events[GCON_EVENTS];
};

static unsigned gcon_rxq(unsigned p) { return p ? 2 * p + 2 : 0; }

/* The port whose data queue q is, or -1 for a control queue. */
static int gcon_port_of(unsigned q)
{
	if (q == GCON_CTL_RXQ || q == GCON_CTL_TXQ)
		return -1;
	return q < 2 ? 0 : (int)(q - 2) / 2;
}

static void gcon_error(struct gcon *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void gcon_error(struct gcon *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->last_error, sizeof g->last_error, fmt, ap);
	va_end(ap);
	g->errors++;
	fprintf(stderr, "guest_console: device error: %s\n", g->last_error);
}

static int gcon_pool_init(struct gcon *g, unsigned q, unsigned n,
                          uint32_t size)
{
	struct gpool *p = &g->pool[q];
	unsigned i;

	p->b = calloc(n, sizeof *p->b);
	if (!p->b)
		return -ENOMEM;
	p->n = n;
	for (i = 0; i < n; i++) {
		p->b[i].gpa = vmm_alloc(g->vmm, size, 64);
		if (!p->b[i].gpa)
			return -ENOMEM;
		p->b[i].size = size;
		p->b[i].q = q;
	}
	return 0;
}

static struct gbuf *gcon_buf_get(struct gcon *g, unsigned q)
{
	struct gpool *p = &g->pool[q];
	unsigned i;

	for (i = 0; i < p->n; i++)
		if (!p->b[i].busy)
			return &p->b[i];
	return NULL;
}

/* Post a device-writable buffer b (layout A: two descriptors). */
static int gcon_post_in(struct gcon *g, struct gbuf *b)
{
	struct vmm_sg sg[2];
	unsigned n = 1;
	int r;

	sg[0].gpa = b->gpa;
	sg[0].len = b->size;
	if (g->o.layout == GCON_LAYOUT_A && b->size >= 2) {
		sg[0].len = b->size / 2;
		sg[1].gpa = b->gpa + b->size / 2;
		sg[1].len = b->size - b->size / 2;
		n = 2;
	}
	r = vmm_vq_add(g->vmm, b->q, NULL, 0, sg, n, b);
	if (r == 0)
		b->busy = true;
	return r;
}

/* Post every free buffer of a receive queue. */
static void gcon_fill(struct gcon *g, unsigned q)
{
	struct gbuf *b;
	bool any = false;

	while ((b = gcon_buf_get(g, q)) && gcon_post_in(g, b) == 0)
		any = true;
	if (any)
		vmm_vq_kick(g->vmm, q);
}

/* Send len bytes as one device-readable buffer on q (layout A: two
 * descriptors above 1 KiB). */
static int gcon_post_out(struct gcon *g, unsigned q, const void *data,
                         uint32_t len)
{
	struct gbuf *b = gcon_buf_get(g, q);
	struct vmm_sg sg[2];
	unsigned n = 1;
	int r;

	if (!b)
		return -ENOSPC;
	if (len > b->size)
		return -EINVAL;
	memcpy(vmm_ptr(g->vmm, b->gpa, len), data, len);
	sg[0].gpa = b->gpa;
	sg[0].len = len;
	if (g->o.layout == GCON_LAYOUT_A && len > 1024) {
		sg[0].len = len / 2;
		sg[1].gpa = b->gpa + len / 2;
		sg[1].len = len - len / 2;
		n = 2;
	}
	r = vmm_vq_add(g->vmm, q, sg, n, NULL, 0, b);
	if (r < 0)
		return r;
	b->busy = true;
	return 0;
}

static int gcon_ctl(struct gcon *g, uint32_t id, uint16_t event,
                    uint16_t value)
{
	struct virtio_console_control m = {
		.id = htole32(id),
		.event = htole16(event),
		.value = htole16(value),
	};

	return gcon_send_ctl_raw(g, &m, sizeof m);
}

/* --- the device's messages -------------------------------------------- */

static struct gcon_port *gcon_ctl_port(struct gcon *g, uint32_t id,
                                       const char *what)
{
	if (id >= g->nports || !g->port[id].added) {
		gcon_error(g, "%s for port %u, never added", what, id);
		return NULL;
	}
	return &g->port[id];
}

static void gcon_ctl_msg(struct gcon *g, const uint8_t *buf, uint32_t len)
{
	struct virtio_console_control m;
	struct gcon_port *p;
	uint32_t id;
	uint16_t event, value;

	if (len < sizeof m) {
		gcon_error(g, "control message of %u bytes", len);
		return;
	}
	memcpy(&m, buf, sizeof m);
	id = le32toh(m.id);
	event = le16toh(m.event);
	value = le16toh(m.value);
	g->events[event < GCON_EVENTS - 1 ? event : GCON_EVENTS - 1]++;
	switch (event) {
	case VIRTIO_CONSOLE_PORT_ADD:
		if (id >= g->max_nr_ports || id >= g->nports) {
			gcon_error(g, "PORT_ADD %u beyond max_nr_ports %u", id,
			           g->max_nr_ports);
			return;
		}
		p = &g->port[id];
		if (p->added) {
			/* Linux: "port already added", PORT_READY again. */
			gcon_ctl(g, id, VIRTIO_CONSOLE_PORT_READY, 1);
			return;
		}
		p->added = true;
		if (!g->rx_hold[id])
			gcon_fill(g, gcon_rxq(id));
		gcon_ctl(g, id, VIRTIO_CONSOLE_PORT_READY, 1);
		return;
	case VIRTIO_CONSOLE_CONSOLE_PORT:
		if ((p = gcon_ctl_port(g, id, "CONSOLE_PORT")))
			p->is_console = value != 0;
		if (p && p->is_console)
			/* Linux opens a console port itself. */
			gcon_open(g, id);
		return;
	case VIRTIO_CONSOLE_PORT_NAME:
		if (!(p = gcon_ctl_port(g, id, "PORT_NAME")))
			return;
		if (len - sizeof m > sizeof p->name ||
		    len == sizeof m || buf[len - 1] != 0) {
			gcon_error(g, "PORT_NAME for port %u: %u bytes, not a "
			           "NUL-terminated name", id,
			           (unsigned)(len - sizeof m));
			return;
		}
		memcpy(p->name, buf + sizeof m, len - sizeof m);
		return;
	case VIRTIO_CONSOLE_PORT_OPEN:
		if (!(p = gcon_ctl_port(g, id, "PORT_OPEN")))
			return;
		if (value) {
			if (p->host_open)
				gcon_error(g, "PORT_OPEN 1 twice for port %u",
				           id);
			p->host_opens++;
		} else {
			p->host_closes++;
		}
		p->host_open = value != 0;
		return;
	default:
		gcon_error(g, "control event %u (id %u) from the device", event,
		           id);
	}
}

/* --- polling ------------------------------------------------------------ */

static void gcon_port_rx(struct gcon *g, struct gcon_port *p,
                         const struct gbuf *b, uint32_t len)
{
	if (p->rx_len + len > p->rx_cap) {
		size_t cap = p->rx_cap ? p->rx_cap : 65536;
		uint8_t *n;

		while (cap < p->rx_len + len)
			cap *= 2;
		n = realloc(p->rx, cap);
		if (!n) {
			gcon_error(g, "out of memory for received data");
			return;
		}
		p->rx = n;
		p->rx_cap = cap;
	}
	memcpy(p->rx + p->rx_len, vmm_ptr(g->vmm, b->gpa, len), len);
	p->rx_len += len;
	p->rx_total += len;
}

/* Handle every used buffer of queue q; returns how many. */
static int gcon_drain(struct gcon *g, unsigned q)
{
	struct gbuf *b;
	void *tok;
	uint32_t len;
	int port = gcon_port_of(q), n = 0, r;
	bool rx = q == GCON_CTL_RXQ || (port >= 0 && q == gcon_rxq(port));

	while ((r = vmm_vq_get_used(g->vmm, q, &tok, &len)) > 0) {
		b = tok;
		b->busy = false;
		n++;
		if (!rx) {
			if (port >= 0)
				g->port[port].tx_inflight--;
			continue;
		}
		if (len > b->size) {
			gcon_error(g, "queue %u: used len %u > %u", q, len,
			           b->size);
			continue;
		}
		if (q == GCON_CTL_RXQ) {
			gcon_ctl_msg(g, vmm_ptr(g->vmm, b->gpa, len), len);
		} else if (!g->port[port].added) {
			gcon_error(g, "data on port %d, never added", port);
		} else {
			gcon_port_rx(g, &g->port[port], b, len);
		}
	}
	if (r < 0)
		return r;
	if (rx && n && (port < 0 || !g->rx_hold[port]))
		gcon_fill(g, q);
	return n;
}

int gcon_poll(struct gcon *g, int timeout_ms)
{
	unsigned qs[2 * (GCON_MAX_PORTS + 1)], q;
	int r, n = 0;

	for (q = 0; q < g->nq; q++) {
		r = gcon_drain(g, q);
		if (r < 0)
			return r;
		n += r;
		qs[q] = q;
	}
	if (n)
		return 1;
	r = vmm_wait_any(g->vmm, qs, g->nq, timeout_ms);
	if (r <= 0)
		return r;
	for (q = 0; q < g->nq; q++) {
		r = gcon_drain(g, q);
		if (r < 0)
			return r;
		n += r;
	}
	return n > 0;
}

int gcon_until(struct gcon *g, bool (*cond)(struct gcon *, void *),
               void *arg, int timeout_ms)
{
	int waited = 0, r;

	while (!cond(g, arg)) {
		if (waited >= timeout_ms)
			return 0;
		r = gcon_poll(g, 50);
		if (r < 0)
			return r;
		if (r == 0)
			waited += 50;
	}
	return 1;
}

/* --- lifetime ----------------------------------------------------------- */

struct gcon *gcon_connect(const char *sock, unsigned nports,
                          const struct gcon_opts *opts)
{
	struct gcon *g = calloc(1, sizeof *g);
	struct vmm_opts vo = { 0 };
	const uint8_t *cfg;
	uint32_t cfglen, maxp;
	size_t mem;
	unsigned q, qs;
	int r = -EINVAL;

	if (!g)
		return NULL;
	if (opts)
		g->o = *opts;
	if (nports < 1 || nports > GCON_MAX_PORTS)
		goto fail;
	if (!g->o.queue_size)
		g->o.queue_size = 128;
	if (!g->o.ctl_bufs)
		g->o.ctl_bufs = 32;
	if (!g->o.ctl_buf_size)
		g->o.ctl_buf_size = GCON_BUF;
	g->nports = nports;
	g->nq = 2 * (nports + 1);
	qs = g->o.queue_size;
	mem = (size_t)nports * 2 * qs * GCON_BUF +
	      g->o.ctl_bufs * (size_t)g->o.ctl_buf_size + qs * GCON_BUF +
	      (8u << 20);
	mem = (mem + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
	vo.num_queues = g->nq;
	vo.queue_size = qs;
	vo.features = g->o.features |
	              (g->o.no_multiport ? 0 :
	               VBIT(VIRTIO_CONSOLE_F_MULTIPORT));
	vo.mem_size = mem;
	vo.indirect = g->o.indirect;
	vo.config_size = sizeof(struct virtio_console_config);
	vo.timeout_ms = g->o.timeout_ms;
	g->vmm = vmm_connect(sock, &vo);
	if (!g->vmm) {
		r = -errno;
		goto fail;
	}
	cfg = vmm_config(g->vmm, &cfglen);
	if (cfglen != sizeof(struct virtio_console_config)) {
		fprintf(stderr, "guest_console: GET_CONFIG gave %u bytes\n",
		        cfglen);
		r = -EPROTO;
		goto fail;
	}
	memcpy(&maxp, cfg + 4, 4);
	g->max_nr_ports = le32toh(maxp);
	for (q = 0; q < g->nq; q++) {
		if (q == GCON_CTL_RXQ)
			r = gcon_pool_init(g, q, g->o.ctl_bufs,
			                   g->o.ctl_buf_size);
		else
			r = gcon_pool_init(g, q, qs, GCON_BUF);
		if (r < 0) {
			fprintf(stderr, "guest_console: guest memory too "
			        "small\n");
			goto fail;
		}
	}
	if (g->o.no_multiport) {
		/* One port, the console, no control queue. */
		g->port[0].added = true;
		gcon_fill(g, 0);
		return g;
	}
	gcon_fill(g, GCON_CTL_RXQ);
	if (!g->o.no_device_ready) {
		r = gcon_ctl(g, VIRTIO_CONSOLE_BAD_ID,
		             VIRTIO_CONSOLE_DEVICE_READY, 1);
		if (r < 0)
			goto fail;
	}
	return g;
fail:
	gcon_free(g);
	errno = -r;
	return NULL;
}

void gcon_free(struct gcon *g)
{
	unsigned i;

	if (!g)
		return;
	vmm_disconnect(g->vmm);
	for (i = 0; i < 2 * (GCON_MAX_PORTS + 1); i++)
		free(g->pool[i].b);
	for (i = 0; i < GCON_MAX_PORTS; i++)
		free(g->port[i].rx);
	free(g);
}

uint32_t gcon_max_nr_ports(const struct gcon *g) { return g->max_nr_ports; }
uint64_t gcon_features(const struct gcon *g) { return vmm_features(g->vmm); }
struct vmm *gcon_vmm(struct gcon *g) { return g->vmm; }
unsigned gcon_errors(const struct gcon *g) { return g->errors; }
const char *gcon_last_error(const struct gcon *g) { return g->last_error; }

const struct gcon_port *gcon_port(const struct gcon *g, unsigned id)
{
	return id < g->nports ? &g->port[id] : NULL;
}

unsigned gcon_events(const struct gcon *g, unsigned event)
{
	return event < GCON_EVENTS ? g->events[event] : 0;
}

/* --- the application side ---------------------------------------------- */

int gcon_open(struct gcon *g, unsigned id)
{
	if (id >= g->nports)
		return -EINVAL;
	g->port[id].guest_open = true;
	return gcon_ctl(g, id, VIRTIO_CONSOLE_PORT_OPEN, 1);
}

int gcon_close(struct gcon *g, unsigned id)
{
	if (id >= g->nports)
		return -EINVAL;
	g->port[id].guest_open = false;
	return gcon_ctl(g, id, VIRTIO_CONSOLE_PORT_OPEN, 0);
}

ssize_t gcon_write(struct gcon *g, unsigned id, const void *buf, size_t len)
{
	const uint8_t *s = buf;
	unsigned q = gcon_rxq(id) + 1;
	size_t done = 0;
	int r;

	if (id >= g->nports)
		return -EINVAL;
	gcon_drain(g, q);
	while (done < len) {
		uint32_t n = len - done > GCON_BUF ? GCON_BUF :
		             (uint32_t)(len - done);

		if (vmm_vq_num_free(g->vmm, q) < 2)
			break;
		r = gcon_post_out(g, q, s + done, n);
		if (r == -ENOSPC)
			break;
		if (r < 0)
			return r;
		g->port[id].tx_inflight++;
		g->port[id].tx_total += n;
		done += n;
	}
	if (done)
		vmm_vq_kick(g->vmm, q);
	return (ssize_t)done;
}

size_t gcon_read(struct gcon *g, unsigned id, void *buf, size_t max)
{
	struct gcon_port *p;
	size_t n;

	if (id >= g->nports)
		return 0;
	p = &g->port[id];
	n = p->rx_len < max ? p->rx_len : max;
	if (n == 0)
		return 0;
	memcpy(buf, p->rx, n);
	memmove(p->rx, p->rx + n, p->rx_len - n);
	p->rx_len -= n;
	return n;
}

int gcon_send_ctl(struct gcon *g, uint32_t id, uint16_t event,
                  uint16_t value)
{
	return gcon_ctl(g, id, event, value);
}

int gcon_send_ctl_raw(struct gcon *g, const void *buf, uint32_t len)
{
	int r;

	gcon_drain(g, GCON_CTL_TXQ);
	r = gcon_post_out(g, GCON_CTL_TXQ, buf, len);
	if (r < 0)
		return r;
	vmm_vq_kick(g->vmm, GCON_CTL_TXQ);
	return 0;
}

void gcon_rx_hold(struct gcon *g, unsigned id, bool hold)
{
	if (id >= g->nports)
		return;
	g->rx_hold[id] = hold;
	if (!hold && g->port[id].added)
		gcon_fill(g, gcon_rxq(id));
}

int gcon_pause(struct gcon *g)
{
	unsigned q;
	int r;

	for (q = 0; q < g->nq; q++) {
		r = gcon_drain(g, q);
		if (r < 0)
			return r;
	}
	return vmm_stop(g->vmm);
}

int gcon_resume(struct gcon *g)
{
	return vmm_resume(g->vmm);
}

int gcon_restart(struct gcon *g)
{
	unsigned q, i;
	int r;

	r = vmm_restart_driver(g->vmm);
	if (r < 0)
		return r;
	for (q = 0; q < g->nq; q++)
		for (i = 0; i < g->pool[q].n; i++)
			g->pool[q].b[i].busy = false;
	for (i = 0; i < g->nports; i++) {
		free(g->port[i].rx);
		memset(&g->port[i], 0, sizeof g->port[i]);
	}
	memset(g->events, 0, sizeof g->events);
	if (g->o.no_multiport) {
		g->port[0].added = true;
		gcon_fill(g, 0);
		return 0;
	}
	gcon_fill(g, GCON_CTL_RXQ);
	return gcon_ctl(g, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY,
	                1);
}
