/*
 * chanfs: the vhost-user vsock device, the named services over it and the
 * file system on one loop.
 * The devices register their directories of channels (chandir.h); fs/
 * serves whatever is registered.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/console.h"
#include "chanfs/fs.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/services.h"
#include "chanfs/serial.h"
#include "chanfs/serial_sock.h"
#include "chanfs/vsock.h"
#include "chanfs/vsock_uds.h"
#include "chanfs/vu.h"
#include "options.h"

/* What status says before the directories' lines: each front-end, and
 * the console device when there is one. */
struct main_status {
	struct vu *vu, *console_vu;
	struct console *console;
};

static void main_status(void *arg, FILE *out)
{
	struct main_status *st = arg;

	vu_status(st->vu, out);
	if (!st->console)
		return;
	fputs("console ", out);
	vu_status(st->console_vu, out);
	console_status(st->console, out);
}

int main(int argc, char **argv)
{
	struct daemon_options o;
	struct fs_config fc;
	struct chan_set chans;
	struct chandirs dirs;
	struct loop *l;
	struct services *svc = NULL;
	struct vsock *v;
	struct serial *serial;
	struct serial_sock **ports;
	struct vsock_uds *uds = NULL;
	struct vu *vu;
	struct console *con = NULL;
	struct vu *con_vu = NULL;
	struct main_status st;
	struct fs *fs;
	unsigned i;
	int rc;

	rc = daemon_options_parse(&o, argc, argv);
	if (rc) {
		daemon_options_free(&o);
		return rc == DAEMON_OPTIONS_DONE ? 0 : 2;
	}
	log_init("chanfs", o.debug);
	/* A peer (VMM socket, log reader) going away is an error return,
	 * not a reason to die. */
	signal(SIGPIPE, SIG_IGN);

	l = loop_new();
	if (!l)
		fatal("cannot create the event loop");
	chan_set_init(&chans);
	chandirs_init(&dirs);
	v = vsock_new(l, &o.vsock, &chans);
	if (!v)
		fatal("cannot create the vsock device");
	if (vsock_register(v, &dirs) < 0)
		fatal("cannot register the vsock directories");
	for (i = 0; i < o.nlisten; i++)
		vsock_listen(v, o.listen[i]);
	if (o.service_port) {
		struct services_config sc = {
			.port = o.service_port,
			.accept_timeout_ms = o.vsock.accept_timeout_ms,
			.backlog = o.vsock.backlog,
		};

		svc = services_new(l, v, &dirs, &sc);
		if (!svc)
			fatal("cannot register the named services");
	}
	/* The serial ports share the vsock windows' size (--buf-size); the
	 * `serial` directory is there when there are ports to list. */
	serial = serial_new(l, &chans, o.vsock.buf_size);
	ports = calloc(o.nserial ? o.nserial : 1, sizeof *ports);
	if (!serial || !ports ||
	    ((o.nserial || o.nports) && serial_register(serial, &dirs) < 0))
		fatal("cannot create the serial ports");
	for (i = 0; i < o.nserial; i++)
		if (!(ports[i] = serial_sock_new(l, serial, &o.serial[i])))
			exit(2);	/* logged why: a socket-path error */
	/* The console device's ports join the same table. */
	if (o.console_socket) {
		struct console_config cc = {
			(const char *const *)o.ports, o.nports, o.console,
		};

		if (!(con = console_new(l, serial, &cc)))
			exit(2);	/* logged why */
		con_vu = vu_new(l, o.console_socket, console_vu_device(con),
		                con);
		if (!con_vu)
			exit(2);	/* vu_new logged why */
		if (vu_set_mountpoint(con_vu, o.mountpoint) < 0)
			fatal("out of memory");
	}
	vu = vu_new(l, o.socket, vsock_vu_device(), v);
	if (!vu)
		exit(2);	/* vu_new logged why: a socket-path error */
	if (o.uds && !(uds = vsock_uds_new(l, v, o.uds,
	                                   o.vsock.connect_timeout_ms)))
		exit(2);	/* logged why */
	if (vu_set_mountpoint(vu, o.mountpoint) < 0)
		fatal("out of memory");
	fc.mountpoint = o.mountpoint;
	fc.fuse_opts = o.fuse_opts;
	st.vu = vu;
	st.console_vu = con_vu;
	st.console = con;
	fc.status = main_status;
	fc.status_arg = &st;
	fc.close_timeout_ms = o.vsock.close_timeout_ms;
	fs = fs_new(l, &chans, &dirs, &fc);
	if (!fs) {
		rc = errno == EINVAL ? 2 : 1;
		goto out;
	}
	log_info("serving vsock (guest CID %llu) on %s",
	         (unsigned long long)o.vsock.guest_cid, o.socket);
	if (con)
		log_info("serving a virtio-console with %u ports on %s",
		         o.nports, o.console_socket);
	rc = fs_daemonize(fs, o.foreground);
	if (rc < 0)
		log_warnx("cannot go to the background: %s", strerror(-rc));
	else
		rc = loop_run(l);
	rc = rc < 0 ? 1 : 0;
out:
	/* The host side lets go first, then the device resets what is left. */
	fs_free(fs);
	services_free(svc);
	for (i = 0; i < o.nserial; i++)
		serial_sock_free(ports[i]);
	vu_free(con_vu);
	console_free(con);
	serial_free(serial);
	free(ports);
	vsock_uds_free(uds);
	vu_free(vu);
	vsock_free(v);
	loop_free(l);
	daemon_options_free(&o);
	return rc;
}
