#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chanfs/ring.h"

static inline uint32_t ring_off(const struct ring *r, uint32_t pos)
{
	return pos & (r->cap - 1);
}

static inline uint32_t ring_min(size_t a, uint32_t b)
{
	return a < b ? (uint32_t)a : b;
}

int ring_init(struct ring *r, uint32_t cap)
{
	memset(r, 0, sizeof *r);
	/* A power of two, so positions reduce with a mask and stay right
	 * when the u32 counters wrap (2^32 is a multiple of cap). */
	if (cap == 0 || (cap & (cap - 1)))
		return -EINVAL;
	/* The buffer comes with the first byte (ring_alloc): ten thousand
	 * idle connections must not cost two windows of memory each, nor a
	 * touched page for malloc's header. */
	r->cap = cap;
	r->lowat = cap - 1;
	return 0;
}

int ring_alloc(struct ring *r)
{
	if (r->buf)
		return 0;
	r->buf = malloc(r->cap);
	return r->buf ? 0 : -ENOMEM;
}

void ring_destroy(struct ring *r)
{
	free(r->buf);
	memset(r, 0, sizeof *r);
}

void ring_release(struct ring *r)
{
	if (!ring_empty(r))
		return;
	free(r->buf);
	r->buf = NULL;
}

void ring_set_notify(struct ring *r, ring_edge_fn on_readable,
                     ring_edge_fn on_writable, void *arg, uint32_t lowat)
{
	r->on_readable = on_readable;
	r->on_writable = on_writable;
	r->cb_arg = arg;
	r->lowat = lowat < r->cap ? lowat : r->cap - 1;
}

/* Edges are decided from the used count before and after the change, so
 * one call fires each edge at most once however many pieces it moved. */
static void ring_produced(struct ring *r, uint32_t n)
{
	uint32_t before = ring_used(r);

	r->head += n;
	if (before == 0 && n > 0 && r->on_readable)
		r->on_readable(r, r->cb_arg);
}

static void ring_consumed(struct ring *r, uint32_t n)
{
	uint32_t before = ring_used(r);

	r->tail += n;
	if (before > r->lowat && before - n <= r->lowat && r->on_writable)
		r->on_writable(r, r->cb_arg);
}

/* Copy len bytes (len <= space) to the producer side without publishing:
 * the free area is at most two pieces, so at most two memcpy calls. */
static void ring_copy_in(struct ring *r, uint32_t pos, const void *data,
                         uint32_t len)
{
	uint32_t off = ring_off(r, pos);
	uint32_t first = r->cap - off;

	if (first > len)
		first = len;
	memcpy(r->buf + off, data, first);
	if (len > first)
		memcpy(r->buf, (const uint8_t *)data + first, len - first);
}

size_t ring_write(struct ring *r, const void *data, size_t len)
{
	uint32_t n = ring_min(len, ring_space(r));

	if (n == 0 || ring_alloc(r) < 0)
		return 0;
	ring_copy_in(r, r->head, data, n);
	ring_produced(r, n);
	return n;
}

size_t ring_writev(struct ring *r, const struct iovec *iov, int iovcnt)
{
	uint32_t space = ring_space(r);
	uint32_t done = 0;
	int i;

	/* Publish once at the end: a reader sees one readable edge for the
	 * whole vector, never a half-copied element. */
	for (i = 0; i < iovcnt && done < space; i++) {
		uint32_t n = ring_min(iov[i].iov_len, space - done);

		if (n == 0)
			continue;
		if (ring_alloc(r) < 0)
			break;
		ring_copy_in(r, r->head + done, iov[i].iov_base, n);
		done += n;
	}
	if (done)
		ring_produced(r, done);
	return done;
}

size_t ring_read(struct ring *r, void *data, size_t len)
{
	uint32_t n = ring_min(len, ring_used(r));
	uint32_t off, first;

	if (n == 0)
		return 0;
	off = ring_off(r, r->tail);
	first = r->cap - off;
	if (first > n)
		first = n;
	memcpy(data, r->buf + off, first);
	if (n > first)
		memcpy((uint8_t *)data + first, r->buf, n - first);
	ring_consumed(r, n);
	return n;
}

/* Describe n bytes starting at counter pos as one or two iovecs. */
static int ring_span(const struct ring *r, uint32_t pos, uint32_t n,
                     struct iovec iov[2])
{
	uint32_t off = ring_off(r, pos);
	uint32_t first = r->cap - off;

	if (n == 0)
		return 0;
	iov[0].iov_base = r->buf + off;
	if (n <= first) {
		iov[0].iov_len = n;
		return 1;
	}
	iov[0].iov_len = first;
	iov[1].iov_base = r->buf;
	iov[1].iov_len = n - first;
	return 2;
}

int ring_peek(const struct ring *r, struct iovec iov[2], size_t max)
{
	return ring_span(r, r->tail, ring_min(max, ring_used(r)), iov);
}

void ring_consume(struct ring *r, size_t n)
{
	/* Clamped: a caller bug must not let tail pass head and turn an
	 * empty ring into a "full" one of stale bytes. */
	uint32_t c = ring_min(n, ring_used(r));

	if (c)
		ring_consumed(r, c);
}

int ring_reserve(struct ring *r, struct iovec iov[2], size_t max)
{
	uint32_t n = ring_min(max, ring_space(r));

	if (n && ring_alloc(r) < 0)
		return 0;
	return ring_span(r, r->head, n, iov);
}

void ring_commit(struct ring *r, size_t n)
{
	uint32_t c = ring_min(n, ring_space(r));

	if (c)
		ring_produced(r, c);
}

void ring_reset(struct ring *r)
{
	uint32_t used = ring_used(r);

	if (used)
		ring_consumed(r, used);
}
