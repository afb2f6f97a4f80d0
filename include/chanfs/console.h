/*
 * console — chanfs's own virtio-console device (virtio id 3) over
 * vhost-user, with VIRTIO_CONSOLE_F_MULTIPORT: every port is a serial
 * port (serial.h) served to fs/ as `serial/NAME`, and this device is its
 * transport (the device side of the port's channel).
 *
 * Queues (2 * (nports + 1)): port 0 receive/transmit 0/1, control
 * receive/transmit 2/3, port k >= 1 receive/transmit 2k+2/2k+3 ("receive"
 * is the guest's: device to driver).  Config space (12 bytes, GET_CONFIG):
 * cols 0, rows 0, max_nr_ports = nports, emerg_wr 0.
 *
 * Control protocol (virtio 1.x 5.3.6.2, as Linux's virtio_console and
 * QEMU's virtio-serial-bus speak it): the guest's DEVICE_READY 1 is
 * answered with PORT_ADD for every port; its PORT_READY 1 for a port
 * with CONSOLE_PORT 1 (port 0 when the config names a console), PORT_NAME
 * (the name and a NUL) and PORT_OPEN 1 if a host file has the port open;
 * later host opens and last closes send PORT_OPEN 1 / 0 (the state at
 * send time: a quick open-close the guest never saw sends nothing).  The
 * guest's PORT_OPEN 1/0 is tracked and shown in status.  Messages to the
 * guest wait in a FIFO of ports with pending bits, so however often a
 * guest asks, what waits is bounded by the number of ports.
 *
 * Data: receive is pull-style: a port's receive buffers are filled from
 * its channel's to_guest while the guest has the port open (Linux
 * discards data for a closed port); transmit buffers go into to_host as
 * far as its window has room, and a buffer that does not fit stays
 * popped, its rest taken when the host reads (chan_guest_send's "never
 * dropped").  A pause keeps where a half-taken buffer stood, so its
 * first bytes are not taken twice when the ring resumes.  Buffers are
 * completed in order (vq.h), one used entry per batch under IN_ORDER.
 *
 * The guest is untrusted: a control message of the wrong size, for a port
 * that does not exist, an event a driver does not send, a repeated
 * DEVICE_READY, a PORT_OPEN before the port is ready, a control buffer
 * too small for the message (completed empty, the message dropped: a
 * guest reposting small buffers must not spin with us), a port
 * whose window fills while the guest reads nothing: one log line per
 * kind of fault (repeats are logged at the 10th, 100th, ... time and
 * counted in status); every other port keeps working.
 *
 * Without MULTIPORT negotiated only port 0 exists for the guest (queues 0
 * and 1, no control queue) and counts as open.
 */
#ifndef CHANFS_CONSOLE_H
#define CHANFS_CONSOLE_H

#include <stdio.h>

#include "chanfs/vu.h"

struct loop;
struct serial;
struct console;

/* Most ports (queue 2 * (N + 1) - 1 must fit VU_MAX_QUEUES). */
#define CONSOLE_MAX_PORTS (VU_MAX_QUEUES / 2 - 1)

struct console_config {
	/* Port names in port id order (ports[0] is port 0); each becomes
	 * serial/NAME.  Copied by serial_port_add. */
	const char *const *ports;
	unsigned nports;             /* 1..CONSOLE_MAX_PORTS */
	bool console;                /* offer port 0 as a console
	                                (CONSOLE_PORT: the guest's hvc) */
};

/* Create the device and add its ports to s.  Returns NULL with errno
 * set (and one log line): EINVAL (no ports, too many), EEXIST (a name
 * is taken), ENOMEM. */
struct console *console_new(struct loop *l, struct serial *s,
                            const struct console_config *cfg);
/* The device's vu description (its queue count depends on the ports);
 * valid until console_free. */
const struct vu_device *console_vu_device(struct console *c);
/* Free the device (vu must be gone first; the ports stay in s until
 * serial_free, without a transport).  NULL ok. */
void console_free(struct console *c);

/* Lines of `status`: the device state, control message counts and the
 * guest's faults (each port's own part is on its serial line). */
void console_status(const struct console *c, FILE *out);

#endif
