/*
 * fuzz_vu — the vhost-user message handler against a hostile front-end.
 *
 * The input is a sequence of messages with fds (see fuzz_vu.h) fed to
 * vu_handle_msg on a detached vu whose device pops and completes whatever
 * the rings offer.  Whatever the input: every reply has a well-formed
 * header and answers the request it follows, requests with their own reply
 * get exactly one when they are accepted, no message gets two, queue starts
 * and stops pair up, and after vu_reset nothing runs and no fd is left open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/vq.h"
#include "chanfs/vu.h"
#include "fuzz_vu.h"

#define CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "fuzz_vu: %s:%d: check failed: %s\n", \
		        __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

#define NQ 2

struct fdev {
	unsigned running[NQ];
	struct vq_elem elem;
};

/* Set up once: creating memfds and the vu per input would dominate. */
struct env {
	struct loop *loop;
	struct vu *vu;
	struct fdev dev;
	int sv[2];
	struct fuzz_vu_fds fds;
	uint8_t *mem;
};

static struct env *env;

static void fdev_get_config(void *ctx, uint32_t off, void *buf, uint32_t len)
{
	(void)ctx;
	/* vu promised the range is inside the 8 bytes. */
	CHECK(len > 0 && off < 8 && len <= 8 - off);
	memset(buf, 0x42, len);
}

static void fdev_started(void *ctx, unsigned q, struct vq *vq)
{
	struct fdev *d = ctx;

	CHECK(q < NQ && vq && d->running[q] == 0);
	d->running[q] = 1;
}

/* Drain the ring, touching every byte the device may touch. */
static void fdev_kicked(void *ctx, unsigned q, struct vq *vq)
{
	struct fdev *d = ctx;
	volatile uint8_t sink = 0;
	unsigned i, n = 0;

	CHECK(q < NQ && d->running[q] == 1);
	while (n++ < 256 && vq_pop(vq, &d->elem) == 1) {
		struct vq_elem *e = &d->elem;
		uint32_t written = 0;

		for (i = 0; i < e->out_num + e->in_num; i++) {
			uint8_t *p = e->iov[i].iov_base;
			size_t len = e->iov[i].iov_len;

			if (len == 0)
				continue;
			if (i < e->out_num) {
				sink ^= p[0];
				sink ^= p[len - 1];
			} else {
				p[0] = 0xa5;
				p[len - 1] = 0x5a;
				written += (uint32_t)len;
			}
		}
		vq_push(vq, e, written);
	}
	vq_flush(vq);
	(void)sink;
}

static void fdev_stopped(void *ctx, unsigned q, struct vq *vq)
{
	struct fdev *d = ctx;

	CHECK(q < NQ && vq && d->running[q] == 1);
	d->running[q] = 0;
}

static void fdev_reset(void *ctx)
{
	struct fdev *d = ctx;
	unsigned q;

	/* Every queue was stopped before the reset. */
	for (q = 0; q < NQ; q++)
		CHECK(d->running[q] == 0);
}

static const struct vu_device fdev_desc = {
	.name = "fuzz",
	.features = 0,
	.num_queues = NQ,
	.config_size = 8,
	.get_config = fdev_get_config,
	.queue_started = fdev_started,
	.queue_kicked = fdev_kicked,
	.queue_stopped = fdev_stopped,
	.reset = fdev_reset,
};

static struct env *env_get(void)
{
	struct env *e;

	if (env)
		return env;
	e = calloc(1, sizeof *e);
	CHECK(e);
	/* FUZZ_VU_DEBUG=1 traces every message (to see what a seed does). */
	log_init("fuzz_vu", getenv("FUZZ_VU_DEBUG") != NULL);
	e->loop = loop_new();
	CHECK(e->loop);
	e->vu = vu_new_detached(e->loop, &fdev_desc, &e->dev);
	CHECK(e->vu);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e->sv) == 0);
	CHECK(fcntl(e->sv[1], F_SETFL, O_NONBLOCK) == 0);
	e->mem = fuzz_vu_guest_memory(&e->fds.memfd, &e->fds.pagefd);
	env = e;
	return e;
}

/* Read every reply waiting; returns how many there were, checking each
 * answers req. */
/* As a disconnect would: the server forgets the front-end. */
static void disconnect(struct env *e)
{
	unsigned q;

	vu_reset(e->vu);
	CHECK(!vu_running(e->vu));
	CHECK(vu_features(e->vu) == 0);
	for (q = 0; q < NQ; q++)
		CHECK(e->dev.running[q] == 0);
	fuzz_vu_close_kickers(&e->fds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vu_msg m;
	struct env *e = env_get();
	size_t pos = 0;
	/* Counted per input: libFuzzer itself opens fds between inputs (the
	 * symbolizer's pipes when it reports a new function). */
	int baseline = fuzz_count_fds();

	memset(e->mem, 0, FUZZ_VU_MEM);
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
		if (h[0] == FUZZ_VU_POKE) {
			fuzz_vu_poke(e->mem, data + pos, take);
			pos += take;
			continue;
		}
		if (h[0] == FUZZ_VU_KICK) {
			fuzz_vu_kick_all(&e->fds);
			loop_turn(e->loop, false);
			pos += take;
			continue;
		}
		fuzz_vu_fill_msg(&m, h, data + pos, take, &e->fds);
		pos += take;
		r = fuzz_vu_send_checked(e->vu, e->sv[0], e->sv[1], &m);
		if (r < 0)
			disconnect(e);
	}
	disconnect(e);
	CHECK(fuzz_count_fds_settled(baseline) == baseline);
	return 0;
}
