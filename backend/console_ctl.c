/*
 * console control queues: the guest's messages (control transmit,
 * queue 3) and ours (control receive, queue 2).  The protocol is in
 * console.h.
 */
#include <endian.h>
#include <string.h>

#include <linux/virtio_console.h>

#include "chanfs/log.h"
#include "chanfs/serial.h"
#include "chanfs/vq.h"
#include "console_priv.h"

const char *console_event_name(unsigned event)
{
	static const char *const names[] = {
		[VIRTIO_CONSOLE_DEVICE_READY] = "DEVICE_READY",
		[VIRTIO_CONSOLE_PORT_ADD] = "PORT_ADD",
		[VIRTIO_CONSOLE_PORT_REMOVE] = "PORT_REMOVE",
		[VIRTIO_CONSOLE_PORT_READY] = "PORT_READY",
		[VIRTIO_CONSOLE_CONSOLE_PORT] = "CONSOLE_PORT",
		[VIRTIO_CONSOLE_RESIZE] = "RESIZE",
		[VIRTIO_CONSOLE_PORT_OPEN] = "PORT_OPEN",
		[VIRTIO_CONSOLE_PORT_NAME] = "PORT_NAME",
	};

	if (event < sizeof names / sizeof names[0])
		return names[event];
	return "unknown event";
}

void console_ctl_queue(struct console_port *p, unsigned bits)
{
	struct console *c = p->con;

	p->send |= bits;
	if (!p->queued) {
		p->queued = true;
		TAILQ_INSERT_TAIL(&c->sendq, p, link);
	}
	console_schedule(c);
}

void console_ctl_host_open(struct console_port *p)
{
	/* The guest learns of the host only for a port it has set up; the
	 * value is read when the message goes out. */
	if (p->ready)
		console_ctl_queue(p, CONSOLE_SEND_OPEN);
}

void console_ctl_reset(struct console *c)
{
	struct console_port *p;

	while ((p = TAILQ_FIRST(&c->sendq)) != NULL) {
		TAILQ_REMOVE(&c->sendq, p, link);
		p->queued = false;
	}
	for (p = c->ports; p < c->ports + c->nports; p++) {
		p->send = 0;
		p->added = p->ready = p->guest_open = p->open_sent = false;
	}
	c->device_ready = false;
}

/* --- the guest's messages --------------------------------------------- */

static void console_ctl_device_ready(struct console *c, uint16_t value)
{
	struct console_port *p;

	if (!value) {
		console_fault(c, CONSOLE_BAD_GUEST_FAILED,
		              "console ctl: DEVICE_READY 0: the guest failed to "
		              "set the device up");
		return;
	}
	if (c->device_ready)
		/* Answered again: the messages are bits, so however often it
		 * asks, at most one PORT_ADD per port waits. */
		console_fault(c, CONSOLE_BAD_REPEAT_READY,
		              "console ctl: DEVICE_READY again; announcing the "
		              "ports again");
	c->device_ready = true;
	for (p = c->ports; p < c->ports + c->nports; p++)
		console_ctl_queue(p, CONSOLE_SEND_ADD);
}

static void console_ctl_port_ready(struct console_port *p, uint16_t value)
{
	struct console *c = p->con;
	unsigned bits = CONSOLE_SEND_NAME;

	if (!p->added) {
		console_fault(c, CONSOLE_BAD_NOT_READY,
		              "console ctl: PORT_READY for port %u, which was "
		              "not added yet: ignored", p->id);
		return;
	}
	if (!value) {
		console_fault(c, CONSOLE_BAD_GUEST_FAILED,
		              "console ctl: PORT_READY 0: the guest failed to "
		              "add port %u (%s)", p->id, serial_port_name(p->sp));
		return;
	}
	/* A new port for the guest: closed on its side, and it has not
	 * heard of the host yet. */
	p->ready = true;
	p->guest_open = false;
	p->open_sent = false;
	if (p->id == 0 && c->console)
		bits |= CONSOLE_SEND_CONSOLE;
	if (serial_port_host_open(p->sp))
		bits |= CONSOLE_SEND_OPEN;
	console_ctl_queue(p, bits);
}

static void console_ctl_port_open(struct console_port *p, uint16_t value)
{
	struct console *c = p->con;

	if (!p->ready) {
		console_fault(c, CONSOLE_BAD_NOT_READY,
		              "console ctl: PORT_OPEN %u for port %u before its "
		              "PORT_READY: ignored", value, p->id);
		return;
	}
	if (value && !p->guest_open) {
		p->guest_opens++;
		log_debug("console: port %u (%s): the guest opened it", p->id,
		          serial_port_name(p->sp));
	} else if (!value && p->guest_open) {
		log_debug("console: port %u (%s): the guest closed it", p->id,
		          serial_port_name(p->sp));
	}
	p->guest_open = value != 0;
	/* Data that waited for the guest to open the port. */
	console_schedule(c);
}

static void console_ctl_handle(struct console *c, const struct vq_elem *e)
{
	struct virtio_console_control m;
	uint32_t id;
	uint16_t event, value;

	c->ctl_in++;
	if (e->out_len < CONSOLE_CTL_SIZE) {
		c->ctl_rejected++;
		console_fault(c, CONSOLE_BAD_SIZE_SHORT,
		              "console ctl: head %u: message of %u bytes, "
		              "shorter than %u: ignored", e->id, e->out_len,
		              CONSOLE_CTL_SIZE);
		return;
	}
	if (e->out_len > CONSOLE_CTL_SIZE) {
		c->ctl_rejected++;
		console_fault(c, CONSOLE_BAD_SIZE_LONG,
		              "console ctl: head %u: message of %u bytes, a "
		              "driver's are %u: ignored", e->id, e->out_len,
		              CONSOLE_CTL_SIZE);
		return;
	}
	vq_iov_read(e->iov, e->out_num, 0, &m, sizeof m);
	id = le32toh(m.id);
	event = le16toh(m.event);
	value = le16toh(m.value);
	log_debug("console ctl: guest %s id %u value %u",
	          console_event_name(event), id, value);
	switch (event) {
	case VIRTIO_CONSOLE_DEVICE_READY:
		console_ctl_device_ready(c, value);
		return;
	case VIRTIO_CONSOLE_PORT_READY:
	case VIRTIO_CONSOLE_PORT_OPEN:
		break;
	default:
		c->ctl_rejected++;
		console_fault(c, CONSOLE_BAD_EVENT,
		              "console ctl: head %u: %s (%u) for port %u is not "
		              "a driver's message: ignored", e->id,
		              console_event_name(event), event, id);
		return;
	}
	if (id >= c->nports) {
		c->ctl_rejected++;
		console_fault(c, CONSOLE_BAD_PORT,
		              "console ctl: head %u: %s for port %u, which does "
		              "not exist (%u ports): ignored", e->id,
		              console_event_name(event), id, c->nports);
		return;
	}
	if (event == VIRTIO_CONSOLE_PORT_READY)
		console_ctl_port_ready(&c->ports[id], value);
	else
		console_ctl_port_open(&c->ports[id], value);
}

static uint32_t console_ctl_rx_one(void *arg, const struct vq_elem *e)
{
	console_ctl_handle(arg, e);
	return 0;
}

/* --- our messages ------------------------------------------------------ */

/* The next message p has to send, built into buf; its length, or 0 when
 * the bits left need nothing sent (a PORT_OPEN the guest already has). */
static size_t console_ctl_build(struct console_port *p, unsigned bit,
                                uint8_t *buf, size_t max)
{
	struct virtio_console_control m = { .id = htole32(p->id) };
	const char *name;
	size_t len = sizeof m, nlen;
	bool open;

	switch (bit) {
	case CONSOLE_SEND_ADD:
		m.event = htole16(VIRTIO_CONSOLE_PORT_ADD);
		m.value = htole16(1);
		break;
	case CONSOLE_SEND_CONSOLE:
		m.event = htole16(VIRTIO_CONSOLE_CONSOLE_PORT);
		m.value = htole16(1);
		break;
	case CONSOLE_SEND_NAME:
		name = serial_port_name(p->sp);
		nlen = strlen(name) + 1;
		if (len + nlen > max)
			return 0;   /* names are at most 255 bytes: cannot be */
		m.event = htole16(VIRTIO_CONSOLE_PORT_NAME);
		m.value = htole16(1);
		memcpy(buf + len, name, nlen);
		len += nlen;
		break;
	case CONSOLE_SEND_OPEN:
		open = serial_port_host_open(p->sp);
		if (open == p->open_sent)
			return 0;
		m.event = htole16(VIRTIO_CONSOLE_PORT_OPEN);
		m.value = htole16(open ? 1 : 0);
		break;
	default:
		return 0;
	}
	memcpy(buf, &m, sizeof m);
	return len;
}

/* Drop what needs nothing sent (a PORT_OPEN whose value the guest has
 * already, ports with no bits left), so that a receive buffer is taken
 * only for a message. */
static bool console_ctl_want(void *arg)
{
	struct console *c = arg;
	struct console_port *p;

	while ((p = TAILQ_FIRST(&c->sendq)) != NULL) {
		if ((p->send & CONSOLE_SEND_OPEN) &&
		    p->send == (p->send & -p->send) &&
		    serial_port_host_open(p->sp) == p->open_sent)
			p->send = 0;
		if (p->send)
			return true;
		TAILQ_REMOVE(&c->sendq, p, link);
		p->queued = false;
	}
	return false;
}

/* Fill one control receive buffer with the first waiting message. */
static uint32_t console_ctl_tx_one(void *arg, const struct vq_elem *e)
{
	struct console *c = arg;
	uint8_t buf[CONSOLE_CTL_SIZE + 256];
	struct console_port *p;
	unsigned bit;
	size_t len;

	while ((p = TAILQ_FIRST(&c->sendq)) != NULL) {
		if (!p->send) {
			TAILQ_REMOVE(&c->sendq, p, link);
			p->queued = false;
			continue;
		}
		bit = p->send & -p->send;
		len = console_ctl_build(p, bit, buf, sizeof buf);
		if (len == 0) {
			p->send &= ~bit;
			continue;
		}
		p->send &= ~bit;
		if (len > e->in_len) {
			/* Linux posts page-sized buffers: only a hostile
			 * guest gets here.  Keeping the message for a bigger
			 * buffer would spin with a guest that reposts small
			 * ones: it is the guest's loss. */
			console_fault(c, CONSOLE_BAD_SMALL_BUF,
			              "console ctl: head %u: receive buffer of "
			              "%u bytes, too small for a %zu-byte message "
			              "for port %u: message dropped, buffer "
			              "returned empty", e->id, e->in_len, len,
			              p->id);
			return 0;
		}
		if (bit == CONSOLE_SEND_ADD)
			p->added = true;
		else if (bit == CONSOLE_SEND_OPEN)
			p->open_sent = !p->open_sent;
		vq_iov_write(e->iov + e->out_num, e->in_num, 0, buf, len);
		c->ctl_out++;
		log_debug("console ctl: sent %s for port %u (%zu bytes)",
		          bit == CONSOLE_SEND_ADD ? "PORT_ADD" :
		          bit == CONSOLE_SEND_CONSOLE ? "CONSOLE_PORT" :
		          bit == CONSOLE_SEND_NAME ? "PORT_NAME" : "PORT_OPEN",
		          p->id, len);
		return (uint32_t)len;
	}
	return 0;
}

bool console_ctl_run(struct console *c)
{
	struct vq *txq = c->ring[CONSOLE_CTL_TXQ];
	struct vq *rxq = c->ring[CONSOLE_CTL_RXQ];
	bool more = false;

	/* The control queues work only as a pair: an answer needs both. */
	if (!c->multiport || !txq || !rxq)
		return false;
	if (vq_drain(txq, c->elem, CONSOLE_BUDGET, console_ctl_rx_one, NULL,
	             c) > 0)
		more = true;
	if (vq_drain(rxq, c->elem, CONSOLE_BUDGET, console_ctl_tx_one,
	             console_ctl_want, c) > 0)
		more = true;
	return more;
}
