/*
 * chanfs-echodev — the real engine (loop, vu, vq, ring) in a process, as a
 * vhost-user device for integration tests.
 *
 * Two queues.  Queue 0 ("tx", driver to device): every element's readable
 * bytes are appended to a 1 MiB FIFO and the element is completed with
 * length 0; while the FIFO is full nothing more is popped.  Queue 1 ("rx",
 * device to driver): while the FIFO has data and the driver has posted
 * buffers, buffers are filled from the FIFO and completed with the length
 * written.  So whatever the driver sends on tx comes back on rx, in order.
 *
 * With --cid N the config space is 8 bytes, le64 N (default 3): with the
 * two queues that is what QEMU's vhost-user-vsock-pci expects of a
 * back-end.  With --shuffle the tx elements popped in one batch are
 * completed in a random order, which the in-order window must put right.
 *
 * Used rings are published once per loop turn (the deferred flush).  The
 * socket file appearing means the device is ready.  Nothing is printed on
 * stdout; SIGINT/SIGTERM end it cleanly (exit 0).
 */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/ring.h"
#include "chanfs/vq.h"
#include "chanfs/vu.h"

#ifndef ECHO_FIFO
#define ECHO_FIFO (1u << 20) /* bytes; smaller builds exercise a full FIFO */
#endif
/* tx elements popped (and completed) per batch */
#define ECHO_BATCH 32

enum { ECHO_TX, ECHO_RX, ECHO_NQ };

struct echo {
	struct loop *loop;
	struct vu *vu;
	struct ring fifo;
	struct vq *vq[ECHO_NQ];
	struct loop_task turn;
	uint64_t cid;        /* le64 in the config space */
	bool shuffle;
	uint64_t rng;
	struct vq_elem *batch; /* ECHO_BATCH tx elements */
	/* A tx element only partly copied when the FIFO filled up; it is
	 * batch[0] of the next batch. */
	bool held;
	size_t held_off;
	struct vq_elem *rx_elem;
	struct event *sig[2];
};

static uint32_t echo_rand(struct echo *e)
{
	/* xorshift64: the order only needs to vary, not to be good. */
	e->rng ^= e->rng << 13;
	e->rng ^= e->rng >> 7;
	e->rng ^= e->rng << 17;
	return (uint32_t)(e->rng >> 32);
}

/* Copy the readable bytes of el from byte off on into the FIFO, as many as
 * fit.  Returns the new offset. */
static size_t echo_take(struct echo *e, const struct vq_elem *el, size_t off)
{
	size_t pos = 0;
	unsigned i;

	for (i = 0; i < el->out_num; i++) {
		const struct iovec *v = &el->iov[i];
		size_t skip, want, got;

		if (off >= pos + v->iov_len) {
			pos += v->iov_len;
			continue;
		}
		skip = off - pos;
		want = v->iov_len - skip;
		got = ring_write(&e->fifo, (uint8_t *)v->iov_base + skip, want);
		off += got;
		if (got < want)
			break;
		pos += v->iov_len;
	}
	return off;
}

/* Complete the first n tx elements of the batch, in a random order if
 * asked (Fisher-Yates over their indices). */
static void echo_tx_complete(struct echo *e, unsigned n)
{
	unsigned order[ECHO_BATCH], i, j, t;

	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = n; e->shuffle && i > 1; i--) {
		j = echo_rand(e) % i;
		t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	for (i = 0; i < n; i++)
		vq_push(e->vq[ECHO_TX], &e->batch[order[i]], 0);
}

/* Returns the number of elements completed. */
static unsigned echo_tx(struct echo *e)
{
	struct vq *vq = e->vq[ECHO_TX];
	unsigned n = 0, total = 0;
	size_t off;

	if (!vq)
		return 0;
	for (;;) {
		if (e->held) {
			off = echo_take(e, &e->batch[0], e->held_off);
			if (off < e->batch[0].out_len) {
				e->held_off = off;
				return total;
			}
			e->held = false;
			n = 1;
		}
		while (n < ECHO_BATCH && !ring_full(&e->fifo)) {
			int r = vq_pop(vq, &e->batch[n]);

			if (r == 0 && vq_enable_notify(vq))
				continue;
			if (r != 1)
				break;
			off = echo_take(e, &e->batch[n], 0);
			if (off < e->batch[n].out_len) {
				/* Completes once the rest fits. */
				echo_tx_complete(e, n);
				total += n;
				if (n > 0)
					memcpy(&e->batch[0], &e->batch[n],
					       sizeof e->batch[0]);
				e->held = true;
				e->held_off = off;
				return total;
			}
			n++;
		}
		echo_tx_complete(e, n);
		total += n;
		if (n < ECHO_BATCH)
			return total;
		n = 0;
	}
}

/* Returns the number of buffers filled. */
static unsigned echo_rx(struct echo *e)
{
	struct vq *vq = e->vq[ECHO_RX];
	struct vq_elem *el = e->rx_elem;
	unsigned n = 0, i;

	if (!vq)
		return 0;
	while (!ring_empty(&e->fifo)) {
		int r = vq_pop(vq, el);
		uint32_t len = 0;

		if (r == 0 && vq_enable_notify(vq))
			continue;
		if (r != 1)
			break;
		for (i = el->out_num; i < el->out_num + el->in_num; i++) {
			size_t got = ring_read(&e->fifo, el->iov[i].iov_base,
			                       el->iov[i].iov_len);

			len += (uint32_t)got;
			if (got < el->iov[i].iov_len)
				break;
		}
		vq_push(vq, el, len);
		n++;
	}
	return n;
}

/* The deferred flush: move data until nothing moves, then publish. */
static void echo_turn(void *arg)
{
	struct echo *e = arg;
	unsigned moved;

	do {
		moved = echo_tx(e);
		moved += echo_rx(e);
	} while (moved);
	if (e->vq[ECHO_TX])
		vq_flush(e->vq[ECHO_TX]);
	if (e->vq[ECHO_RX])
		vq_flush(e->vq[ECHO_RX]);
}

static void echo_get_config(void *ctx, uint32_t off, void *buf, uint32_t len)
{
	struct echo *e = ctx;
	uint64_t le = htole64(e->cid);

	memcpy(buf, (uint8_t *)&le + off, len);
	log_debug("echodev: served config off %u len %u (guest cid %" PRIu64
	          ")", off, len, e->cid);
}

static void echo_queue_started(void *ctx, unsigned q, struct vq *vq)
{
	struct echo *e = ctx;

	e->vq[q] = vq;
}

static void echo_queue_kicked(void *ctx, unsigned q, struct vq *vq)
{
	struct echo *e = ctx;

	(void)q;
	(void)vq;
	loop_defer(e->loop, &e->turn);
}

static void echo_queue_stopped(void *ctx, unsigned q, struct vq *vq)
{
	struct echo *e = ctx;

	/* The part already in the FIFO stays; the element must not come
	 * back after a restart or that part would be sent twice. */
	if (q == ECHO_TX && e->held) {
		vq_push(vq, &e->batch[0], 0);
		e->held = false;
	}
	e->vq[q] = NULL;
}

static void echo_reset(void *ctx)
{
	struct echo *e = ctx;

	ring_reset(&e->fifo);
	e->held = false;
}

static const struct vu_device echo_dev = {
	.name = "echo",
	.features = 0,
	.num_queues = ECHO_NQ,
	.config_size = 8,
	.get_config = echo_get_config,
	.queue_started = echo_queue_started,
	.queue_kicked = echo_queue_kicked,
	.queue_stopped = echo_queue_stopped,
	.reset = echo_reset,
};

static void echo_signal(evutil_socket_t sig, short what, void *arg)
{
	struct echo *e = arg;

	(void)what;
	log_debug("echodev: signal %d, exiting", (int)sig);
	loop_stop(e->loop);
}

static void usage(void)
{
	fprintf(stderr, "usage: chanfs-echodev -s PATH [--cid N] [--shuffle] "
	        "[-d]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "cid", required_argument, NULL, 'c' },
		{ "shuffle", no_argument, NULL, 'S' },
		{ "debug", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct echo e = { .cid = 3 };
	const char *path = NULL;
	bool debug = false;
	char *end;
	int c, rc = 0;
	unsigned i;

	while ((c = getopt_long(argc, argv, "s:d", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'c':
			errno = 0;
			e.cid = strtoull(optarg, &end, 0);
			if (errno || *end || end == optarg)
				usage();
			break;
		case 'S':
			e.shuffle = true;
			break;
		case 'd':
			debug = true;
			break;
		default:
			usage();
		}
	}
	if (!path || optind != argc)
		usage();
	log_init("chanfs-echodev", debug);
	signal(SIGPIPE, SIG_IGN);
	e.rng = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^
	        0x9e3779b97f4a7c15ULL;
	e.batch = calloc(ECHO_BATCH, sizeof *e.batch);
	e.rx_elem = calloc(1, sizeof *e.rx_elem);
	if (!e.batch || !e.rx_elem)
		fatalx("out of memory");
	if (ring_init(&e.fifo, ECHO_FIFO) < 0)
		fatalx("cannot allocate the FIFO");
	if (!(e.loop = loop_new()))
		fatal("loop");
	loop_task_init(&e.turn, echo_turn, &e);
	e.sig[0] = evsignal_new(loop_base(e.loop), SIGINT, echo_signal, &e);
	e.sig[1] = evsignal_new(loop_base(e.loop), SIGTERM, echo_signal, &e);
	for (i = 0; i < 2; i++)
		if (!e.sig[i] || event_add(e.sig[i], NULL) < 0)
			fatalx("cannot watch signals");
	if (!(e.vu = vu_new(e.loop, path, &echo_dev, &e)))
		exit(1);
	if (loop_run(e.loop) < 0) {
		log_warnx("echodev: event loop failed");
		rc = 1;
	}
	vu_free(e.vu);
	loop_cancel(e.loop, &e.turn);
	for (i = 0; i < 2; i++)
		event_free(e.sig[i]);
	loop_free(e.loop);
	ring_destroy(&e.fifo);
	free(e.batch);
	free(e.rx_elem);
	return rc;
}
