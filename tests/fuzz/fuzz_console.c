/*
 * fuzz_console — the console device (backend/console.c) behind a
 * detached vu, against a hostile front-end and a hostile guest, with a
 * host reading and writing its ports.
 *
 * The input is fuzz_vu's record sequence (fuzz_vu.h: messages with fds,
 * POKE into guest memory, KICK every eventfd handed over and run a loop
 * turn), plus one action of its own:
 *   FUZZ_CONSOLE_HOST  payload[0] = op % 4 (open, close, write, read),
 *                      payload[1] = port % 2, payload[2] = bytes
 *                      (x64, plus 1);
 *                      then a loop turn.
 * The device has two ports (6 queues, the layout of console.h).  Whatever
 * the input: every reply answers its request and none gets two, a host
 * never reads more than the guest sent nor finds more queued than the
 * window, and after the front-end is gone nothing runs, every host file
 * closes and no fd is left open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/console.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/serial.h"
#include "chanfs/vu.h"
#include "fuzz_vu.h"

#define CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "fuzz_console: %s:%d: check failed: %s\n", \
		        __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

#define FUZZ_CONSOLE_HOST 0xf6
#define WINDOW 4096
#define NPORTS 2

static const char *const names[NPORTS] = { "org.fuzz.a", "org.fuzz.b" };

/* Guest memory is set up once (memfds per input would dominate); the
 * loop, the port table, the device and vu are made per input, so that no
 * port carries data from one input into the next. */
struct env {
	int sv[2];
	struct fuzz_vu_fds fds;
	uint8_t *mem;
};

struct run {
	struct env *e;
	struct loop *loop;
	struct chan_set chans;
	struct chandirs dirs;
	struct serial *s;
	struct console *con;
	struct vu *vu;
	struct chan *open[NPORTS];
	uint64_t host_read[NPORTS];
};

static struct env *env;

static struct env *env_get(void)
{
	struct env *e;

	if (env)
		return env;
	e = calloc(1, sizeof *e);
	CHECK(e);
	log_init("fuzz_console", getenv("FUZZ_CONSOLE_DEBUG") != NULL);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e->sv) == 0);
	CHECK(fcntl(e->sv[1], F_SETFL, O_NONBLOCK) == 0);
	e->mem = fuzz_vu_guest_memory(&e->fds.memfd, &e->fds.pagefd);
	env = e;
	return e;
}

static void run_start(struct run *r, struct env *e)
{
	struct console_config cfg = { names, NPORTS, true };

	memset(r, 0, sizeof *r);
	r->e = e;
	r->loop = loop_new();
	CHECK(r->loop);
	chan_set_init(&r->chans);
	chandirs_init(&r->dirs);
	r->s = serial_new(r->loop, &r->chans, WINDOW);
	CHECK(r->s && serial_register(r->s, &r->dirs) == 0);
	r->con = console_new(r->loop, r->s, &cfg);
	CHECK(r->con);
	r->vu = vu_new_detached(r->loop, console_vu_device(r->con), r->con);
	CHECK(r->vu);
}

/* A host file operation on a port, as fs/ would make it. */
static void host_op(struct run *e, const uint8_t *p, size_t len)
{
	struct chandir *d = chandir_find(&e->dirs, "serial");
	unsigned op = len > 0 ? p[0] % 4 : 0, port = len > 1 ? p[1] % NPORTS : 0;
	size_t n = len > 2 ? (size_t)p[2] * 64 + 1 : 1;
	static uint8_t buf[256 * 64];
	struct chan *c = e->open[port];
	ssize_t r;

	switch (op) {
	case 0:
		if (!c)
			CHECK(d->ops->open(d->ctx, names[port],
			                   &e->open[port]) == 0);
		break;
	case 1:
		if (c) {
			d->ops->release(d->ctx, names[port], c);
			e->open[port] = NULL;
		}
		break;
	case 2:
		if (c) {
			memset(buf, 'h', n);
			r = chan_write(c, buf, n);
			CHECK(r == -EAGAIN || (r >= 0 && (size_t)r <= n));
		}
		break;
	default:
		if (c) {
			CHECK(ring_used(&c->to_host) <= WINDOW);
			CHECK(ring_used(&c->to_guest) <= WINDOW);
			r = chan_read(c, buf, n);
			CHECK(r == -EAGAIN || (r > 0 && (size_t)r <= n));
			if (r > 0)
				e->host_read[port] += (uint64_t)r;
			CHECK(e->host_read[port] <= c->rx_bytes);
		}
	}
	loop_turn(e->loop, false);
}

static void disconnect(struct run *r)
{
	vu_reset(r->vu);
	CHECK(!vu_running(r->vu));
	CHECK(vu_features(r->vu) == 0);
	fuzz_vu_close_kickers(&r->e->fds);
	loop_turn(r->loop, false);
}

/* The host closes its files; then everything goes, as at exit. */
static void run_end(struct run *e)
{
	struct chandir *d = chandir_find(&e->dirs, "serial");
	unsigned i;

	for (i = 0; i < NPORTS; i++) {
		if (!e->open[i])
			continue;
		d->ops->release(d->ctx, names[i], e->open[i]);
		e->open[i] = NULL;
	}
	loop_turn(e->loop, false);
	vu_free(e->vu);
	console_free(e->con);
	serial_free(e->s);
	CHECK(e->chans.count == 0);
	loop_free(e->loop);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vu_msg m;
	struct env *e = env_get();
	struct run run;
	size_t pos = 0;
	int baseline = fuzz_count_fds();

	memset(e->mem, 0, FUZZ_VU_MEM);
	run_start(&run, e);
	while (size - pos >= FUZZ_VU_HDR) {
		const uint8_t *h = data + pos;
		uint32_t msize = h[3] | (uint32_t)h[4] << 8;
		size_t take = msize;
		int r;

		pos += FUZZ_VU_HDR;
		if (take > VU_MAX_PAYLOAD)
			take = VU_MAX_PAYLOAD;
		if (take > size - pos)
			take = size - pos;
		if (h[0] == FUZZ_VU_POKE || h[0] == FUZZ_VU_KICK ||
		    h[0] == FUZZ_CONSOLE_HOST) {
			if (h[0] == FUZZ_VU_POKE) {
				fuzz_vu_poke(e->mem, data + pos, take);
			} else if (h[0] == FUZZ_VU_KICK) {
				fuzz_vu_kick_all(&e->fds);
				loop_turn(run.loop, false);
			} else {
				host_op(&run, data + pos, take);
			}
			pos += take;
			continue;
		}
		fuzz_vu_fill_msg(&m, h, data + pos, take, &e->fds);
		pos += take;
		r = fuzz_vu_send_checked(run.vu, e->sv[0], e->sv[1], &m);
		if (r < 0)
			disconnect(&run);
	}
	disconnect(&run);
	run_end(&run);
	CHECK(fuzz_count_fds_settled(baseline) == baseline);
	return 0;
}
