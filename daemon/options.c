/*
 * The command line.  Every rejection is one line on stderr naming the
 * option and the value ("chanfs: --buf-size: 'x' is not a size"); the
 * caller exits with status 2.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define FUSE_USE_VERSION 310

#include <fuse_lowlevel.h>

#include "chanfs/console.h"
#include "chanfs/serial.h"
#include "options.h"

#define OPT_DEFAULT_CID 3
#define OPT_DEFAULT_BUF_SIZE (256u * 1024)
#define OPT_DEFAULT_CONNECT_TIMEOUT 2000
#define OPT_DEFAULT_CLOSE_TIMEOUT 2000
#define OPT_DEFAULT_BACKLOG 16
#define OPT_DEFAULT_ACCEPT_TIMEOUT 30000
#define OPT_DEFAULT_LISTEN_LINGER 5000
#define OPT_DEFAULT_SERVICE_PORT 5000

#define OPT_MIN_BUF_SIZE (4u * 1024)
#define OPT_MAX_BUF_SIZE (64u * 1024 * 1024)
#define OPT_MAX_TIMEOUT 3600000u		/* an hour, in ms */
#define OPT_MAX_BACKLOG 65535u
/* Guest CIDs: 0-2 are reserved (hypervisor, local, host), -1U is "any". */
#define OPT_MIN_CID 3
#define OPT_MAX_CID 0xfffffffeULL
#define OPT_MAX_PORT 0xfffffffeULL

enum {
	OPT_CID = 256,
	OPT_BUF_SIZE,
	OPT_CONNECT_TIMEOUT,
	OPT_CLOSE_TIMEOUT,
	OPT_BACKLOG,
	OPT_ACCEPT_TIMEOUT,
	OPT_LISTEN_LINGER,
	OPT_SERVICE_PORT,
	OPT_CONSOLE_SOCKET,
	OPT_PORT,
	OPT_CONSOLE,
	OPT_SERIAL,
	OPT_UDS,
};

static const struct option opt_long_options[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "cid", required_argument, NULL, OPT_CID },
	{ "buf-size", required_argument, NULL, OPT_BUF_SIZE },
	{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "close-timeout", required_argument, NULL, OPT_CLOSE_TIMEOUT },
	{ "backlog", required_argument, NULL, OPT_BACKLOG },
	{ "accept-timeout", required_argument, NULL, OPT_ACCEPT_TIMEOUT },
	{ "listen-linger", required_argument, NULL, OPT_LISTEN_LINGER },
	{ "service-port", required_argument, NULL, OPT_SERVICE_PORT },
	{ "listen", required_argument, NULL, 'l' },
	{ "console-socket", required_argument, NULL, OPT_CONSOLE_SOCKET },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "serial", required_argument, NULL, OPT_SERIAL },
	{ "uds", required_argument, NULL, OPT_UDS },
	{ "foreground", no_argument, NULL, 'f' },
	{ "debug", no_argument, NULL, 'd' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static const char opt_usage_line[] =
	"usage: chanfs [OPTIONS] -s SOCKET MOUNTPOINT (chanfs --help for more)\n";

static void opt_help(FILE *out)
{
	fputs("usage: chanfs [OPTIONS] -s SOCKET MOUNTPOINT\n"
	      "\n"
	      "Serve a VM's guest channels as files: vsock/<port> connects to a\n"
	      "guest port (chanfs is the vhost-user vsock device), vsock/listen/<port>\n"
	      "accepts the guest's connections to a host port, serial/<name> is a\n"
	      "virtio-serial or console port, services/<name> accepts the guest's\n"
	      "pipe:<name> streams, status lists the devices and every channel.\n"
	      "\n"
	      "  -s, --socket PATH         vhost-user socket to listen on (required)\n"
	      "      --cid N               guest CID served to the VMM (default 3)\n"
	      "      --buf-size BYTES      per-connection flow-control window, a power\n"
	      "                            of two from 4K to 64M (default 256K; K/M suffixes)\n"
	      "      --connect-timeout MS  wait for the guest to answer a connect (default 2000)\n"
	      "      --close-timeout MS    how long a close waits for its data to reach the\n"
	      "                            guest, and then for the guest's end (default 2000)\n"
	      "      --backlog N           guest connections queued per listening port\n"
	      "                            (default 16)\n"
	      "      --accept-timeout MS   reset a queued guest connection nobody accepts\n"
	      "                            within MS (default 30000)\n"
	      "      --listen-linger MS    a port opened by vsock/listen/PORT stops listening\n"
	      "                            MS after its last opener (default 5000)\n"
	      "      --service-port PORT   the named services' host port: services/NAME\n"
	      "                            takes guest connections that say pipe:NAME\n"
	      "                            (default 5000; 0: none)\n"
	      "  -l, --listen PORT         listen on host port PORT from the start\n"
	      "                            (repeatable; opening vsock/listen/PORT also does)\n"
	      "      --serial NAME=PATH[,listen]\n"
	      "                            serve the virtio-serial port NAME as serial/NAME\n"
	      "                            through its chardev socket PATH: connect to QEMU's\n"
	      "                            server=on socket, or (,listen) listen for QEMU\n"
	      "                            (repeatable)\n"
	      "      --uds PATH            Firecracker-style hybrid sockets: clients of PATH\n"
	      "                            send \"CONNECT <port>\\n\"; guest connections to a\n"
	      "                            port P nobody listens on go to PATH_P\n"
	      "      --console-socket PATH serve a virtio-console device (multiport) on this\n"
	      "                            vhost-user socket too; its ports are serial/NAME\n"
	      "      --port NAME           a port of the console device (repeatable; in\n"
	      "                            port order, at most 31)\n"
	      "      --console NAME        port 0 of the console device, offered to the\n"
	      "                            guest as its console\n"
	      "  -f, --foreground          stay in the foreground (logs stay on stderr;\n"
	      "                            in the background they are discarded)\n"
	      "  -d, --debug               protocol traces on stderr (implies -f)\n"
	      "  -o OPTIONS                FUSE mount options (allow_other, auto_unmount,\n"
	      "                            debug for libfuse's own traces, ...)\n"
	      "  -h, --help                this text\n"
	      "  -V, --version             the version\n"
	      "\n"
	      "Bad options exit with status 2.  SIGINT, SIGTERM, SIGHUP and\n"
	      "fusermount3 -u unmount and end chanfs with status 0.\n", out);
}

static int opt_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int opt_bad(const char *fmt, ...)
{
	va_list ap;

	fputs("chanfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EINVAL;
}

/* Plain decimal, optionally followed by K or M when suffixes is set.  No
 * sign, no spaces, no other base: a value either reads as written or is
 * rejected. */
static bool opt_parse_u64(const char *s, bool suffixes, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (suffixes && (*p == 'K' || *p == 'k')) {
		mult = 1024;
		p++;
	} else if (suffixes && (*p == 'M' || *p == 'm')) {
		mult = 1024 * 1024;
		p++;
	}
	if (*p)
		return false;
	if (v > UINT64_MAX / mult)
		return false;
	*out = v * mult;
	return true;
}

/* A number in [min, max], or one line and -EINVAL. */
static int opt_parse_range(const char *opt, const char *s, const char *what,
                          uint64_t min, uint64_t max, uint64_t *out)
{
	if (!opt_parse_u64(s, false, out))
		return opt_bad("%s: '%s' is not %s", opt, s, what);
	if (*out < min || *out > max)
		return opt_bad("%s: %s is out of range (%" PRIu64 "..%" PRIu64 ")",
		              opt, s, min, max);
	return 0;
}

static int opt_parse_buf_size(const char *s, uint32_t *out)
{
	uint64_t v;

	if (!opt_parse_u64(s, true, &v))
		return opt_bad("--buf-size: '%s' is not a size", s);
	if (v < OPT_MIN_BUF_SIZE || v > OPT_MAX_BUF_SIZE || (v & (v - 1)))
		return opt_bad("--buf-size: %s is not a power of two between 4K and 64M",
		              s);
	*out = (uint32_t)v;
	return 0;
}

/* An absolute path for p, resolving relative ones against the working
 * directory now: the daemon changes directory to / later. */
static char *opt_absolute(const char *p)
{
	char cwd[PATH_MAX], *abs;

	if (p[0] == '/')
		return strdup(p);
	if (!getcwd(cwd, sizeof cwd))
		return NULL;
	if (asprintf(&abs, "%s/%s", cwd, p) < 0)
		return NULL;
	return abs;
}

static int opt_add_listen(struct daemon_options *o, const char *s)
{
	uint32_t *ports;
	uint64_t port;
	int rc;

	rc = opt_parse_range("--listen", s, "a port", 0, OPT_MAX_PORT, &port);
	if (rc)
		return rc;
	ports = realloc(o->listen, (o->nlisten + 1) * sizeof *ports);
	if (!ports)
		return opt_bad("out of memory");
	o->listen = ports;
	o->listen[o->nlisten++] = (uint32_t)port;
	return 0;
}

/* --serial NAME=PATH[,listen]: the port's spec, its path absolute (the
 * daemon changes directory to / later), no name or path given twice. */
static int opt_add_serial(struct daemon_options *o, const char *s)
{
	struct serial_sock_spec sp, *all;
	char why[160], *abs;
	int rc;

	rc = serial_sock_parse(s, &sp, why, sizeof why);
	if (rc == -ENOMEM)
		return opt_bad("out of memory");
	if (rc)
		return opt_bad("--serial '%s': %s", s, why);
	abs = opt_absolute(sp.path);
	if (!abs) {
		rc = opt_bad("--serial '%s': %s", s, strerror(errno));
		goto out;
	}
	free(sp.path);
	sp.path = abs;
	if (strlen(abs) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
		rc = opt_bad("--serial '%s': PATH %s is longer than a socket "
		             "address holds (%zu bytes)", s, abs,
		             sizeof ((struct sockaddr_un *)0)->sun_path - 1);
		goto out;
	}
	for (unsigned i = 0; i < o->nserial; i++) {
		if (!strcmp(o->serial[i].name, sp.name)) {
			rc = opt_bad("--serial '%s': port %s is given twice", s,
			             sp.name);
			goto out;
		}
		if (!strcmp(o->serial[i].path, sp.path)) {
			rc = opt_bad("--serial '%s': %s is port %s's socket "
			             "already", s, sp.path, o->serial[i].name);
			goto out;
		}
	}
	all = realloc(o->serial, (o->nserial + 1) * sizeof *all);
	if (!all) {
		rc = opt_bad("out of memory");
		goto out;
	}
	o->serial = all;
	o->serial[o->nserial++] = sp;
	return 0;
out:
	serial_sock_spec_free(&sp);
	return rc;
}

/* A console port name, in port order (--console's goes first). */
static int opt_add_port(struct daemon_options *o, const char *opt,
                        const char *name, bool first)
{
	char **ports, *copy;
	unsigned i;

	if (!serial_port_name_ok(name))
		return opt_bad("%s: '%s' is not a port name (letters, digits, "
		               "'.', '_' and '-', at most 255)", opt, name);
	for (i = 0; i < o->nports; i++)
		if (!strcmp(o->ports[i], name))
			return opt_bad("%s: port %s given twice", opt, name);
	if (o->nports == CONSOLE_MAX_PORTS)
		return opt_bad("%s: more than %u console ports", opt,
		               CONSOLE_MAX_PORTS);
	if (first && o->console)
		return opt_bad("--console: given twice");
	ports = realloc(o->ports, (o->nports + 1) * sizeof *ports);
	if (!ports)
		return opt_bad("out of memory");
	o->ports = ports;
	if (!(copy = strdup(name)))
		return opt_bad("out of memory");
	if (first) {
		memmove(o->ports + 1, o->ports, o->nports * sizeof *o->ports);
		o->ports[0] = copy;
		o->console = true;
	} else {
		o->ports[o->nports] = copy;
	}
	o->nports++;
	return 0;
}

static int opt_add_fuse_opts(struct daemon_options *o, const char *s)
{
	char *joined;

	if (!*s)
		return opt_bad("-o: empty option list");
	if (!o->fuse_opts) {
		o->fuse_opts = strdup(s);
		return o->fuse_opts ? 0 : opt_bad("out of memory");
	}
	if (asprintf(&joined, "%s,%s", o->fuse_opts, s) < 0)
		return opt_bad("out of memory");
	free(o->fuse_opts);
	o->fuse_opts = joined;
	return 0;
}

/* The option as the user wrote it, for "unknown option" lines.  A long
 * option's error names the argument getopt just passed (without any
 * "=value"); a short one is in optopt, and may sit in a cluster such as
 * -fx, after which argv[optind - 1] is some earlier argument. */
static const char *opt_bad_opt(char **argv, int optopt_c, char *buf,
                              size_t len)
{
	const char *arg = argv[optind - 1];
	size_t n = strcspn(arg, "=");
	const struct option *lo;
	bool long_err = false;

	if (strncmp(arg, "--", 2) == 0) {
		long_err = optopt_c == 0;	/* unknown or ambiguous */
		for (lo = opt_long_options; lo->name && !long_err; lo++)
			long_err = lo->val == optopt_c &&
			           strncmp(arg + 2, lo->name, n - 2) == 0;
	}
	if (long_err || optopt_c <= 0 || optopt_c >= 256)
		snprintf(buf, len, "%.*s", (int)n, arg);
	else
		snprintf(buf, len, "-%c", optopt_c);
	return buf;
}

static int opt_parse_one(struct daemon_options *o, int c, const char *arg)
{
	uint64_t v;
	int rc = 0;

	switch (c) {
	case 's':
		if (!*arg)
			return opt_bad("--socket: empty path");
		free(o->socket);
		o->socket = opt_absolute(arg);
		if (!o->socket)
			return opt_bad("--socket: %s: %s", arg, strerror(errno));
		break;
	case OPT_CID:
		rc = opt_parse_range("--cid", arg, "a number", OPT_MIN_CID,
		                    OPT_MAX_CID, &v);
		o->vsock.guest_cid = v;
		break;
	case OPT_BUF_SIZE:
		rc = opt_parse_buf_size(arg, &o->vsock.buf_size);
		break;
	case OPT_CONNECT_TIMEOUT:
		rc = opt_parse_range("--connect-timeout", arg, "a number of ms",
		                    1, OPT_MAX_TIMEOUT, &v);
		o->vsock.connect_timeout_ms = (unsigned)v;
		break;
	case OPT_CLOSE_TIMEOUT:
		rc = opt_parse_range("--close-timeout", arg, "a number of ms",
		                    1, OPT_MAX_TIMEOUT, &v);
		o->vsock.close_timeout_ms = (unsigned)v;
		break;
	case OPT_BACKLOG:
		rc = opt_parse_range("--backlog", arg, "a number", 1,
		                    OPT_MAX_BACKLOG, &v);
		o->vsock.backlog = (unsigned)v;
		break;
	case OPT_ACCEPT_TIMEOUT:
		rc = opt_parse_range("--accept-timeout", arg, "a number of ms",
		                    1, OPT_MAX_TIMEOUT, &v);
		o->vsock.accept_timeout_ms = (unsigned)v;
		break;
	case OPT_LISTEN_LINGER:
		rc = opt_parse_range("--listen-linger", arg, "a number of ms",
		                    1, OPT_MAX_TIMEOUT, &v);
		o->vsock.listen_linger_ms = (unsigned)v;
		break;
	case OPT_SERVICE_PORT:
		rc = opt_parse_range("--service-port", arg, "a port", 0,
		                     OPT_MAX_PORT, &v);
		o->service_port = (uint32_t)v;
		break;
	case 'l':
		rc = opt_add_listen(o, arg);
		break;
	case OPT_SERIAL:
		rc = opt_add_serial(o, arg);
		break;
	case OPT_UDS:
		if (!*arg)
			return opt_bad("--uds: empty path");
		free(o->uds);
		o->uds = opt_absolute(arg);
		if (!o->uds)
			return opt_bad("--uds: %s: %s", arg, strerror(errno));
		break;
	case OPT_CONSOLE_SOCKET:
		if (!*arg)
			return opt_bad("--console-socket: empty path");
		free(o->console_socket);
		o->console_socket = opt_absolute(arg);
		if (!o->console_socket)
			return opt_bad("--console-socket: %s: %s", arg,
			               strerror(errno));
		break;
	case OPT_PORT:
		rc = opt_add_port(o, "--port", arg, false);
		break;
	case OPT_CONSOLE:
		rc = opt_add_port(o, "--console", arg, true);
		break;
	case 'o':
		rc = opt_add_fuse_opts(o, arg);
		break;
	case 'f':
		o->foreground = true;
		break;
	case 'd':
		o->debug = true;
		o->foreground = true;
		break;
	}
	return rc;
}

/* arg made absolute and cleaned of ".", ".." and repeated slashes by its
 * text alone: nothing on the way is looked at (malloc'd, or NULL). */
static char *opt_lexical_path(const char *arg)
{
	char cwd[PATH_MAX], *buf, *out, *tok, *save = NULL;
	size_t n = 0, len;

	if (arg[0] != '/' && !getcwd(cwd, sizeof cwd))
		return NULL;
	len = (arg[0] == '/' ? 0 : strlen(cwd)) + strlen(arg) + 2;
	if (!(buf = malloc(len)) || !(out = malloc(len))) {
		free(buf);
		return NULL;
	}
	snprintf(buf, len, "%s/%s", arg[0] == '/' ? "" : cwd, arg);
	for (tok = strtok_r(buf, "/", &save); tok;
	     tok = strtok_r(NULL, "/", &save)) {
		if (!strcmp(tok, "."))
			continue;
		if (!strcmp(tok, "..")) {
			while (n > 0 && out[--n] != '/')
				;
			continue;
		}
		out[n++] = '/';
		memcpy(out + n, tok, strlen(tok));
		n += strlen(tok);
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = 0;
	free(buf);
	return out;
}

/* A mountinfo path field with its octal escapes (\040 for a space)
 * undone, in place. */
static void opt_unescape(char *p)
{
	char *q = p;

	while (*p) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' &&
		    p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			*q++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 |
			              (p[3] - '0'));
			p += 4;
		} else {
			*q++ = *p++;
		}
	}
	*q = 0;
}

/* Whether a chanfs is mounted at path, from /proc/self/mountinfo: a stat
 * would go through that mount and hang with it if its chanfs hangs. */
static bool opt_chanfs_mounted_at(const char *path)
{
	char *line = NULL, *f[5], *save, *sep;
	size_t cap = 0;
	bool found = false;
	FILE *in = fopen("/proc/self/mountinfo", "re");
	int i;

	if (!in)
		return false;
	while (!found && getline(&line, &cap, in) > 0) {
		/* id parent maj:min root mountpoint ... - fstype source ... */
		save = NULL;
		for (i = 0; i < 5; i++)
			if (!(f[i] = strtok_r(i ? NULL : line, " ", &save)))
				break;
		if (i < 5 || !(sep = strstr(save ? save : "", " - ")))
			continue;
		opt_unescape(f[4]);
		found = !strcmp(f[4], path) &&
		        !strncmp(sep + 3, "fuse.chanfs ", 12);
	}
	free(line);
	fclose(in);
	return found;
}

static int opt_parse_mountpoint(struct daemon_options *o, const char *arg)
{
	struct stat st;
	char *lex = opt_lexical_path(arg);
	bool taken = lex && opt_chanfs_mounted_at(lex);

	free(lex);
	/* Checked before realpath and stat, which would look through it. */
	if (taken)
		return opt_bad("mountpoint %s: a chanfs is mounted there already",
		              arg);
	o->mountpoint = realpath(arg, NULL);
	if (!o->mountpoint)
		return opt_bad("mountpoint %s: %s", arg, strerror(errno));
	/* And by its real name, reached through a symbolic link. */
	if (opt_chanfs_mounted_at(o->mountpoint))
		return opt_bad("mountpoint %s: a chanfs is mounted there already",
		              arg);
	if (stat(o->mountpoint, &st) < 0)
		return opt_bad("mountpoint %s: %s", arg, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return opt_bad("mountpoint %s: %s", arg, strerror(ENOTDIR));
	return 0;
}

/* Whether path lies in the mount (by its text: nothing is looked at). */
static bool opt_inside_mount(const struct daemon_options *o, const char *path)
{
	size_t mlen = strlen(o->mountpoint);
	char *lex = opt_lexical_path(path);
	bool inside = lex && !strncmp(lex, o->mountpoint, mlen) &&
	              (lex[mlen] == '/' || lex[mlen] == '\0' ||
	               !strcmp(o->mountpoint, "/"));

	free(lex);
	return inside;
}

/* A socket path that is the vhost-user socket or lies in the mount would
 * make chanfs wait on itself (a connect there asks our own FUSE loop). */
static int opt_check_serial_paths(const struct daemon_options *o)
{
	for (unsigned i = 0; i < o->nserial; i++) {
		const struct serial_sock_spec *sp = &o->serial[i];
		bool inside = opt_inside_mount(o, sp->path);

		if (inside)
			return opt_bad("--serial %s: %s is inside the mountpoint %s",
			               sp->name, sp->path, o->mountpoint);
		if (!strcmp(sp->path, o->socket))
			return opt_bad("--serial %s: %s is the vhost-user socket",
			               sp->name, sp->path);
		if (o->uds && !strcmp(sp->path, o->uds))
			return opt_bad("--serial %s: %s is the --uds socket",
			               sp->name, sp->path);
	}
	return 0;
}

/* The console device: its socket and its ports go together; its socket
 * follows the serial sockets' rules and is none of theirs; its port
 * names are not theirs either. */
static int opt_check_console(const struct daemon_options *o)
{
	const char *p = o->console_socket;

	for (unsigned i = 0; i < o->nports; i++)
		for (unsigned k = 0; k < o->nserial; k++)
			if (!strcmp(o->ports[i], o->serial[k].name))
				return opt_bad("--port: port %s is a --serial "
				               "port too", o->ports[i]);
	if (o->nports && !p)
		return opt_bad("--port and --console name console ports: they "
		               "need --console-socket");
	if (!p)
		return 0;
	if (!o->nports)
		return opt_bad("--console-socket: no ports (--port NAME, "
		               "--console NAME)");
	if (!strcmp(p, o->socket))
		return opt_bad("--console-socket: %s is the vhost-user socket",
		               p);
	if (o->uds && !strcmp(p, o->uds))
		return opt_bad("--console-socket: %s is the --uds socket", p);
	if (opt_inside_mount(o, p))
		return opt_bad("--console-socket: %s is inside the mountpoint %s",
		               p, o->mountpoint);
	for (unsigned i = 0; i < o->nserial; i++)
		if (!strcmp(o->serial[i].path, p))
			return opt_bad("--console-socket: %s is port %s's socket "
			               "already", p, o->serial[i].name);
	return 0;
}

int daemon_options_parse(struct daemon_options *o, int argc, char **argv)
{
	char optbuf[64];
	int c, rc;

	memset(o, 0, sizeof *o);
	o->vsock.guest_cid = OPT_DEFAULT_CID;
	o->vsock.buf_size = OPT_DEFAULT_BUF_SIZE;
	o->vsock.connect_timeout_ms = OPT_DEFAULT_CONNECT_TIMEOUT;
	o->vsock.close_timeout_ms = OPT_DEFAULT_CLOSE_TIMEOUT;
	o->vsock.backlog = OPT_DEFAULT_BACKLOG;
	o->vsock.accept_timeout_ms = OPT_DEFAULT_ACCEPT_TIMEOUT;
	o->vsock.listen_linger_ms = OPT_DEFAULT_LISTEN_LINGER;
	o->service_port = OPT_DEFAULT_SERVICE_PORT;

	/* Our own messages: getopt's name the program as invoked. */
	opterr = 0;
	/* 0, not 1: glibc then also forgets a group of short options an
	 * earlier parse left half-read ("-fzd" stops at z), which it would
	 * otherwise go on reading from that parse's (maybe freed) argv. */
	optind = 0;
	while ((c = getopt_long(argc, argv, ":s:l:fdo:hV", opt_long_options,
	                        NULL)) != -1) {
		switch (c) {
		case 'h':
			opt_help(stdout);
			return DAEMON_OPTIONS_DONE;
		case 'V':
			printf("chanfs %s (libfuse %s)\n", CHANFS_VERSION,
			       fuse_pkgversion());
			return DAEMON_OPTIONS_DONE;
		case '?':
			return opt_bad("unknown option '%s'",
			              opt_bad_opt(argv, optopt, optbuf, sizeof optbuf));
		case ':':
			return opt_bad("option '%s' needs a value",
			              opt_bad_opt(argv, optopt, optbuf, sizeof optbuf));
		default:
			rc = opt_parse_one(o, c, optarg);
			if (rc)
				return rc;
		}
	}
	if (optind >= argc) {
		fputs(opt_usage_line, stderr);
		return -EINVAL;
	}
	if (optind + 1 < argc)
		return opt_bad("unexpected argument '%s' after the mountpoint",
		              argv[optind + 1]);
	if (!o->socket)
		return opt_bad("--socket is required (the vhost-user socket to serve)");
	for (unsigned i = 0; o->service_port && i < o->nlisten; i++)
		if (o->listen[i] == o->service_port)
			return opt_bad("--listen: %u is the service port "
			               "(--service-port; 0 turns it off)",
			               o->service_port);
	rc = opt_parse_mountpoint(o, argv[optind]);
	if (!rc)
		rc = opt_check_serial_paths(o);
	return rc ? rc : opt_check_console(o);
}

void daemon_options_free(struct daemon_options *o)
{
	free(o->socket);
	free(o->mountpoint);
	free(o->listen);
	for (unsigned i = 0; i < o->nserial; i++)
		serial_sock_spec_free(&o->serial[i]);
	free(o->serial);
	free(o->uds);
	free(o->fuse_opts);
	free(o->console_socket);
	while (o->nports)
		free(o->ports[--o->nports]);
	free(o->ports);
	memset(o, 0, sizeof *o);
}
