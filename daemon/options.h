/*
 * options — the chanfs command line (daemon/options.c).
 *
 * The daemon wires devices, so its options name them: the vsock device's
 * settings live here, not in fs/.  Add an option in three places in
 * options.c: a row of opt_long_options (and its short letter, if any, in
 * the getopt string), a case of opt_parse_one, a line of opt_help.
 */
#ifndef CHANFS_DAEMON_OPTIONS_H
#define CHANFS_DAEMON_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "chanfs/serial_sock.h"
#include "chanfs/vsock.h"

struct daemon_options {
	char *socket;             /* -s: vhost-user socket path (absolute) */
	char *mountpoint;         /* absolute, an existing directory */
	struct vsock_config vsock;
	uint32_t service_port;    /* --service-port (0: no named services) */
	uint32_t *listen;         /* -l ports, nlisten of them */
	unsigned nlisten;
	struct serial_sock_spec *serial; /* --serial ports (paths absolute),
	                                    nserial of them */
	unsigned nserial;
	char *uds;                /* --uds: hybrid socket path, or NULL */
	char *console_socket;     /* --console-socket: the console device's
	                             vhost-user socket (absolute), or NULL */
	char **ports;             /* its ports in port order (--console's
	                             first, then every --port), nports */
	unsigned nports;
	bool console;             /* --console: port 0 is a console */
	char *fuse_opts;          /* every -o joined with ',', or NULL */
	bool foreground;          /* -f (also implied by -d) */
	bool debug;               /* -d: protocol traces */
};

/* Returned by daemon_options_parse when --help or --version was printed. */
#define DAEMON_OPTIONS_DONE 1

/* Parse argv into o (zeroed and defaulted first).  Returns 0 to run,
 * DAEMON_OPTIONS_DONE after printing help or the version to stdout (exit
 * 0), or -EINVAL after printing one line naming the bad option or value
 * to stderr (exit 2).  Free o with daemon_options_free in every case. */
int daemon_options_parse(struct daemon_options *o, int argc, char **argv);
void daemon_options_free(struct daemon_options *o);

#endif
