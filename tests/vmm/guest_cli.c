/*
 * chanfs-simguest — the simulated Linux-like vsock guest as a program: a VMM
 * that connects to a vhost-user-vsock back-end and runs services
 * (guest_vsock.h) until its work is done or SIGTERM.
 *
 * Result lines on stdout (one per event, flushed):
 *   ready cid=N features=0xF layout=a|b queue_size=N buf_alloc=N seed=N
 *   open lport=L rport=R svc=S
 *   stall lport=L rport=R inflight=N peer_buf_alloc=N   (first time a
 *                            write waits for the host's credit)
 *   misbehave kind=K lport=L rport=R sent=N
 *   conn lport=L rport=R svc=S status=ST rx=... (see guest_vsock.h)
 *   error MESSAGE            (the device broke the protocol)
 *   disconnected             (the back-end closed the connection)
 *   paused | resumed | restarted | remapped   (after the signal's action)
 *   done conns=N errors=N rx_pkts=N tx_pkts=N rst_sent=N rst_recv=N
 *        credit_updates=N credit_requests=N ignored_requests=N
 * Exit status: 0 when done without errors, 1 on errors, 2 on bad usage or
 * a failed connection, 3 when the back-end disconnected.
 *
 * Signals drive what a VMM and a guest do to the device: SIGUSR1 pauses
 * the VM (guest_pause; the guest is frozen until SIGUSR2, guest_resume),
 * SIGRTMIN resets the guest driver (guest_restart), SIGRTMIN+1 sends the
 * memory table again (guest_remap).  SIGTERM and SIGINT end it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "chanfs/virtio.h"
#include "guest_vsock.h"

#define CLI_MAX_SPECS 256

static void usage(FILE *f)
{
	fprintf(f,
"usage: chanfs-simguest -s SOCKET [options]\n"
"  -s, --socket PATH        vhost-user socket of the back-end\n"
"      --layout a|b         RX buffers: a = 44-byte header + 4 KiB data\n"
"                           descriptors (Linux 6.1), b = one buffer\n"
"      --features LIST      event_idx,indirect,in_order (comma-separated)\n"
"      --queue-size N       virtqueue size (default 128)\n"
"      --buf-alloc BYTES    receive window per connection (default 256K)\n"
"      --rx-buf-size BYTES  payload per RX buffer (default 4K a, 64K b)\n"
"      --seed N             data and size seed (default: from the clock)\n"
"      --connect-timeout MS guest connect timeout (default 2000)\n"
"      --close-timeout MS   wait for the host's RST after close (8000)\n"
"      --timeout MS         vhost-user socket and reply timeout\n"
"  -l, --listen PORT:SVC    echo | sink | source=N | slow=BYTES_PER_MS |\n"
"                           ignore   [,n=K][,delay=MS][,chunk=BYTES]\n"
"  -c, --connect PORT:SVC   send=N | echo-check=N | recv | bad=KIND\n"
"                           [,n=K][,chunk=BYTES][,after=GUESTPORT]\n"
"                           (N: BYTES or MIN-MAX; check=0: no checksum)\n"
"      --misbehave KIND[@PORT]  overrun | unknown-op | hdr-len |\n"
"                           wrong-cid | noconn (connect to host PORT,\n"
"                           default 6000) | ignore-request (listen on\n"
"                           guest PORT)\n"
"      --credit-request     send CREDIT_REQUEST when stalled on credit\n"
"  -v, --verbose            trace packets on stderr\n");
}

static uint64_t cli_features(const char *list)
{
	char buf[256], *tok, *save = NULL;
	uint64_t f = 0;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "event_idx"))
			f |= VBIT(VIRTIO_RING_F_EVENT_IDX_BIT);
		else if (!strcmp(tok, "indirect"))
			f |= VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT);
		else if (!strcmp(tok, "in_order"))
			f |= VBIT(VIRTIO_F_IN_ORDER_BIT);
		else if (strcmp(tok, "none") && *tok)
			return UINT64_MAX;
	}
	return f;
}

/* --misbehave KIND[@PORT] as a service spec. */
static int cli_misbehave(const char *arg, struct guest_svc_spec *sp,
                         char *err, size_t errlen)
{
	char buf[128], spec[160];
	char *at;

	snprintf(buf, sizeof(buf), "%s", arg);
	at = strchr(buf, '@');
	if (at)
		*at++ = 0;
	if (!strcmp(buf, "ignore-request")) {
		snprintf(spec, sizeof(spec), "%s:ignore", at ? at : "6000");
		return guest_svc_parse(spec, true, sp, err, errlen);
	}
	snprintf(spec, sizeof(spec), "%s:bad=%s", at ? at : "6000", buf);
	return guest_svc_parse(spec, false, sp, err, errlen);
}

struct cli {
	FILE *out;
};

static void cli_error(void *arg, const char *msg)
{
	struct cli *cli = arg;

	fprintf(cli->out, "error %s\n", msg);
	fflush(cli->out);
	fprintf(stderr, "chanfs-simguest: error: %s\n", msg);
}

/* Wait for the next signal and act on it: 0 to go on, 1 to end, -errno
 * when the action failed. */
static int cli_signal(struct guest *g, int sfd)
{
	struct signalfd_siginfo si;
	const char *done;
	int r;

	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return 0;
	if ((int)si.ssi_signo == SIGUSR1) {
		r = guest_pause(g);
		if (r < 0)
			return r;
		printf("paused\n");
		/* Frozen: only SIGUSR2 (or the end) wakes the guest. */
		do {
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				return -EIO;
		} while ((int)si.ssi_signo == SIGUSR1 ||
		         (int)si.ssi_signo >= SIGRTMIN);
		if ((int)si.ssi_signo != SIGUSR2)
			return 1;
		r = guest_resume(g);
		done = "resumed";
	} else if ((int)si.ssi_signo == SIGUSR2) {
		return 0;
	} else if ((int)si.ssi_signo == SIGRTMIN) {
		r = guest_restart(g);
		done = "restarted";
	} else if ((int)si.ssi_signo == SIGRTMIN + 1) {
		r = guest_remap(g);
		done = "remapped";
	} else {
		return 1;
	}
	if (r < 0)
		return r;
	printf("%s\n", done);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "layout", required_argument, NULL, 'L' },
		{ "features", required_argument, NULL, 'F' },
		{ "queue-size", required_argument, NULL, 'Q' },
		{ "buf-alloc", required_argument, NULL, 'B' },
		{ "rx-buf-size", required_argument, NULL, 'R' },
		{ "seed", required_argument, NULL, 'S' },
		{ "connect-timeout", required_argument, NULL, 'C' },
		{ "close-timeout", required_argument, NULL, 'T' },
		{ "timeout", required_argument, NULL, 'W' },
		{ "listen", required_argument, NULL, 'l' },
		{ "connect", required_argument, NULL, 'c' },
		{ "misbehave", required_argument, NULL, 'M' },
		{ "credit-request", no_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct guest_svc_spec specs[CLI_MAX_SPECS];
	struct guest_opts o = { 0 };
	struct cli cli = { stdout };
	const char *sock = NULL;
	unsigned nspecs = 0, i;
	uint64_t seed = 0;
	bool have_seed = false;
	struct guest *g;
	struct guest_svc *s;
	struct guest_stats st;
	sigset_t mask;
	int sfd, opt, r, status = 0;
	int64_t v;
	char err[256];

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt_long(argc, argv, "s:l:c:vh", lopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'L':
			if (!strcmp(optarg, "a"))
				o.layout = GUEST_LAYOUT_A;
			else if (!strcmp(optarg, "b"))
				o.layout = GUEST_LAYOUT_B;
			else
				goto bad;
			break;
		case 'F':
			o.features = cli_features(optarg);
			if (o.features == UINT64_MAX)
				goto bad;
			o.indirect = !!(o.features &
			                VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT));
			break;
		case 'Q':
		case 'B':
		case 'R':
		case 'C':
		case 'T':
		case 'W':
			v = guest_parse_size(optarg);
			if (v <= 0 || v > UINT32_MAX)
				goto bad;
			if (opt == 'Q')
				o.queue_size = (unsigned)v;
			else if (opt == 'B')
				o.buf_alloc = (uint32_t)v;
			else if (opt == 'R')
				o.rx_buf_size = (uint32_t)v;
			else if (opt == 'C')
				o.connect_timeout_ms = (unsigned)v;
			else if (opt == 'T')
				o.close_timeout_ms = (unsigned)v;
			else
				o.vmm_timeout_ms = (int)v;
			break;
		case 'S':
			seed = strtoull(optarg, NULL, 0);
			have_seed = true;
			break;
		case 'l':
		case 'c':
		case 'M':
			if (nspecs == CLI_MAX_SPECS)
				goto bad;
			if (opt == 'M')
				r = cli_misbehave(optarg, &specs[nspecs], err,
				                  sizeof(err));
			else
				r = guest_svc_parse(optarg, opt == 'l',
				                    &specs[nspecs], err,
				                    sizeof(err));
			if (r < 0) {
				fprintf(stderr, "chanfs-simguest: %s\n", err);
				return 2;
			}
			nspecs++;
			break;
		case 'P':
			o.credit_request = true;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (!sock || optind != argc)
		goto bad;
	if (!have_seed)
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGRTMIN);
	sigaddset(&mask, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("chanfs-simguest: signalfd");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	o.on_error = cli_error;
	o.on_error_arg = &cli;
	g = guest_new(sock, &o);
	if (!g) {
		fprintf(stderr, "chanfs-simguest: cannot connect to %s: %s\n", sock,
		        strerror(errno));
		return 2;
	}
	s = guest_svc_new(g, seed, stdout);
	if (!s) {
		guest_free(g);
		return 2;
	}
	/* Listeners first, then the ready line, then the connections. */
	for (i = 0; i < nspecs; i++) {
		if (!specs[i].listen)
			continue;
		r = guest_svc_start(s, &specs[i]);
		if (r < 0) {
			fprintf(stderr, "chanfs-simguest: listen %u: %s\n",
			        specs[i].port, strerror(-r));
			status = 2;
			goto out;
		}
	}
	printf("ready cid=%" PRIu64 " features=0x%" PRIx64 " layout=%c "
	       "queue_size=%u buf_alloc=%u seed=%" PRIu64 "\n", guest_cid(g),
	       guest_features(g), o.layout == GUEST_LAYOUT_A ? 'a' : 'b',
	       o.queue_size ? o.queue_size : 128,
	       o.buf_alloc ? o.buf_alloc : GUEST_DEFAULT_BUF_ALLOC, seed);
	for (i = 0; i < nspecs; i++) {
		if (specs[i].listen)
			continue;
		r = guest_svc_start(s, &specs[i]);
		if (r < 0) {
			fprintf(stderr, "chanfs-simguest: connect %u: %s\n",
			        specs[i].port, strerror(-r));
			status = 2;
			goto out;
		}
	}
	for (;;) {
		r = guest_step(g, sfd, -1);
		if (r == 1) {
			r = cli_signal(g, sfd);
			if (r == 0)
				continue;
			if (r < 0) {
				fprintf(stderr, "chanfs-simguest: %s\n",
				        strerror(-r));
				status = 3;
			}
			break;
		}
		if (r == -ECONNRESET) {
			printf("disconnected\n");
			status = 3;
			break;
		}
		if (r < 0) {
			fprintf(stderr, "chanfs-simguest: %s\n", strerror(-r));
			status = 3;
			break;
		}
		if (guest_svc_idle(s)) {
			/* Let the device take our last packets (the RST
			 * that ends a close) before we disconnect. */
			guest_flush(g, 2000);
			break;
		}
	}
out:
	guest_svc_abort(s);
	guest_get_stats(g, &st);
	printf("done conns=%" PRIu64 " errors=%" PRIu64 " rx_pkts=%" PRIu64
	       " tx_pkts=%" PRIu64 " rst_sent=%" PRIu64 " rst_recv=%" PRIu64
	       " credit_updates=%" PRIu64 " credit_requests=%" PRIu64
	       " ignored_requests=%" PRIu64 "\n", st.conns_opened, st.errors,
	       st.rx_pkts, st.tx_pkts, st.rst_sent, st.rst_recv,
	       st.credit_updates_sent, st.credit_requests_sent,
	       st.ignored_requests);
	if (!status && st.errors)
		status = 1;
	guest_free(g);
	guest_svc_free(s);
	close(sfd);
	return status;
bad:
	usage(stderr);
	return 2;
}
