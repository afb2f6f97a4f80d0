/*
 * chanfs-guest — the guest side of chanfs: small vsock services and clients
 * whose every transfer is reported with its SHA-256, so both ends of a
 * stream can be compared.  One static binary, no library beyond libc.
 *
 *   chanfs-guest listen [CID:]PORT ROLE [OPTIONS]   serve ROLE on a port
 *   chanfs-guest connect [CID:]PORT ROLE [OPTIONS]  play ROLE towards a peer
 *   chanfs-guest pipe NAME[:ARGS] [OPTIONS]          stdin/stdout through
 *                                                   the host's service NAME
 *   chanfs-guest gen BYTES                          the pattern on stdout
 *   chanfs-guest selftest                           check itself, no vsock
 *
 * See README.md beside this file.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "guest.h"
#include "pattern.h"

const char *const guest_role_names[GUEST_NROLES] = {
	[ROLE_ECHO] = "echo",
	[ROLE_SINK] = "sink",
	[ROLE_SOURCE] = "source",
	[ROLE_CAT] = "cat",
	[ROLE_SEND] = "send",
	[ROLE_PIPE] = "pipe",
};

static const char guest_usage[] =
	"usage: chanfs-guest listen [CID:]PORT|unix:PATH ROLE [OPTIONS]\n"
	"       chanfs-guest connect [CID:]PORT|unix:PATH ROLE [OPTIONS]\n"
	"       chanfs-guest pipe NAME[:ARGS] [-p [CID:]PORT|unix:PATH] [OPTIONS]\n"
	"       chanfs-guest gen BYTES\n"
	"       chanfs-guest cid\n"
	"       chanfs-guest selftest\n"
	"\n"
	"ROLE, on each connection:\n"
	"  echo    send back everything received, until the peer's EOF\n"
	"  sink    read until EOF (or -n BYTES); report the SHA-256 of what\n"
	"          arrived; with -n, also send it back as 64 hex digits and a\n"
	"          newline\n"
	"  source  send -n BYTES (default 1M) of the pattern, report its SHA-256,\n"
	"          then shut down the sending side\n"
	"  cat     copy what arrives to stdout, until EOF\n"
	"  send    send stdin, report its SHA-256, then shut down the sending side\n"
	"\n"
	"pipe connects to the host's service port (-p, default 5000), sends\n"
	"\"pipe:NAME[:ARGS]\" and a NUL, then relays like nc: stdin to the host\n"
	"(its EOF shuts down the sending side), the host's bytes to stdout, until\n"
	"both have ended; one report per direction on stderr.\n"
	"\n"
	"OPTIONS:\n"
	"  -n BYTES  size for source and sink (K, M, G suffixes: powers of 1024)\n"
	"  -1        listen: serve one connection in the foreground, then exit\n"
	"  -b        listen: go to the background once listening\n"
	"  -c N      connect: open N connections at once (default 1)\n"
	"  -r MS     connect: when refused or reset, retry every MS ms\n"
	"  -d MS     wait MS ms after a connection is set up before serving it\n"
	"  -R BYTES  sink: read at most BYTES per second (a slow reader)\n"
	"  -p ADDR   pipe: the host's service port (default 5000)\n"
	"  -q        no reports, only errors\n"
	"\n"
	"A connect without CID goes to the host (CID 2); a listen without CID\n"
	"accepts on any.  Reports are one line per connection on stdout (stderr\n"
	"for cat): ROLE LOCAL PEER bytes N [sha256 HEX].  gen writes BYTES of\n"
	"the pattern a source sends, to check it elsewhere (| sha256sum); cid\n"
	"prints this machine's vsock CID.\n";

void guest_say(const struct guest_opts *o, const char *fmt, ...)
{
	FILE *out = o->role == ROLE_CAT || o->role == ROLE_PIPE ? stderr
	                                                         : stdout;
	char line[1024];
	va_list ap;
	int n;

	if (o->quiet)
		return;
	/* One write per line: processes sharing a console (two pipes on
	 * unbuffered stderr) must not interleave their reports. */
	n = snprintf(line, sizeof(line), "chanfs-guest: ");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	fputs(line, out);
	fflush(out);
}

void guest_err(const char *fmt, ...)
{
	va_list ap;

	fputs("chanfs-guest: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void guest_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

uint64_t guest_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- parsing ---- */

bool guest_parse_u64(const char *s, bool suffixes, uint64_t *out)
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
	if (suffixes && *p) {
		switch (*p++) {
		case 'K': case 'k': mult = 1ULL << 10; break;
		case 'M': case 'm': mult = 1ULL << 20; break;
		case 'G': case 'g': mult = 1ULL << 30; break;
		default: return false;
		}
	}
	if (*p || v > UINT64_MAX / mult)
		return false;
	*out = v * mult;
	return true;
}

bool guest_parse_uint(const char *s, unsigned *out)
{
	uint64_t v;

	if (!guest_parse_u64(s, false, &v) || v > 0xffffffffULL)
		return false;
	*out = (unsigned)v;
	return true;
}

/* "unix:PATH", "CID:PORT" or "PORT" (CID then defaults to default_cid). */
static int guest_gen(uint64_t size)
{
	static char buf[GUEST_CHUNK];
	uint64_t off = 0;
	size_t n;
	int rc;

	while (off < size) {
		n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		pattern_fill(buf, n, off);
		rc = guest_write_all(STDOUT_FILENO, buf, n);
		if (rc) {
			guest_err("gen: stdout: %s", strerror(-rc));
			return 1;
		}
		off += n;
	}
	return 0;
}

/* ---- main ---- */

static int guest_usage_error(const char *fmt, const char *arg)
{
	fputs("chanfs-guest: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n\n", stderr);
	fputs(guest_usage, stderr);
	return 2;
}

int main(int argc, char **argv)
{
	struct guest_opts o = { .count = 1 };
	struct guest_addr a;
	const char *cmd, *addr, *role;
	bool is_listen;
	unsigned i;
	int c;

	/* A peer that goes away is an error return, not a death. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		return guest_usage_error("%s", "missing command");
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(guest_usage, stdout);
		return 0;
	}
	if (!strcmp(cmd, "selftest"))
		return guest_selftest();
	if (!strcmp(cmd, "cid"))
		return guest_cid();
	if (!strcmp(cmd, "gen")) {
		uint64_t n;

		if (argc != 3 || !guest_parse_u64(argv[2], true, &n))
			return guest_usage_error("%s", "gen wants one size");
		return guest_gen(n);
	}
	is_listen = !strcmp(cmd, "listen");
	if (!strcmp(cmd, "pipe")) {
		if (argc < 3 || !argv[2][0] ||
		    strlen(argv[2]) + 6 > GUEST_CONNECT_MAX)
			return guest_usage_error("%s", "pipe wants NAME[:ARGS] "
						 "(up to 250 bytes)");
		o.service = argv[2];
		o.role = ROLE_PIPE;
		addr = "5000";
		optind = 3;
	} else {
		if (!is_listen && strcmp(cmd, "connect"))
			return guest_usage_error("unknown command '%s'", cmd);
		if (argc < 4)
			return guest_usage_error("%s wants an address and a role",
						 cmd);
		addr = argv[2];
		role = argv[3];
		for (i = 0; i < GUEST_NROLES; i++)
			if (!strcmp(role, guest_role_names[i]))
				break;
		if (i == GUEST_NROLES || i == ROLE_PIPE)
			return guest_usage_error("unknown role '%s'", role);
		o.role = (enum guest_role)i;
		optind = 4;
	}

	while ((c = getopt(argc, argv, "n:1bc:r:d:qR:p:")) != -1) {
		switch (c) {
		case 'n':
			if (!guest_parse_u64(optarg, true, &o.bytes))
				return guest_usage_error("-n: '%s' is not a size", optarg);
			o.bytes_set = true;
			break;
		case '1':
			o.once = true;
			break;
		case 'b':
			o.background = true;
			break;
		case 'c':
			if (!guest_parse_uint(optarg, &o.count) || !o.count)
				return guest_usage_error("-c: '%s' is not a count", optarg);
			break;
		case 'r':
			if (!guest_parse_uint(optarg, &o.retry_ms))
				return guest_usage_error("-r: '%s' is not milliseconds", optarg);
			break;
		case 'd':
			if (!guest_parse_uint(optarg, &o.delay_ms))
				return guest_usage_error("-d: '%s' is not milliseconds", optarg);
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'R':
			if (!guest_parse_u64(optarg, true, &o.rate) || !o.rate)
				return guest_usage_error("-R: '%s' is not a rate", optarg);
			break;
		case 'p':
			if (o.role != ROLE_PIPE)
				return guest_usage_error("%s", "-p is for pipe");
			addr = optarg;
			break;
		default:
			return guest_usage_error("%s", "bad option");
		}
	}
	if (optind != argc)
		return guest_usage_error("unexpected argument '%s'", argv[optind]);
	if (o.role == ROLE_PIPE && o.count != 1)
		return guest_usage_error("%s", "pipe relays one connection");
	if (!guest_parse_addr(addr, is_listen ? VMADDR_CID_ANY : GUEST_HOST_CID, &a))
		return guest_usage_error("bad address '%s'", addr);
	return is_listen ? guest_listen(&a, &o) : guest_connect(&a, &o);
}

