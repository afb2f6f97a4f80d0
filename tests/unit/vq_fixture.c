/* The vq test fixture (see vq_fixture.h). */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vq_fixture.h"
#include "logcap.h"

void *gpa(struct fx *f, uint64_t a, uint64_t len)
{
	void *p = gmem_gpa(&f->mem, a, len);

	assert_non_null(p);
	return p;
}

int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	unsigned i;

	assert_non_null(f);
	gmem_init(&f->mem);
	for (i = 0; i < 2; i++) {
		int fd = memfd_create("vq-test", MFD_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, REGION), 0);
		assert_int_equal(gmem_add(&f->mem, i * REGION, REGION,
		                          0x7f0000000000 + i * REGION, 0, fd),
		                 0);
		close(fd);
	}
	/* Heap-allocated to their exact size, so ASan sees any write past
	 * the iovec array. */
	for (i = 0; i < 8; i++) {
		f->e[i] = malloc(sizeof *f->e[i]);
		assert_non_null(f->e[i]);
	}
	f->r.call = f->r2.call = -1;
	*state = f;
	return 0;
}

void ring_stop(struct tring *r)
{
	if (r->started)
		vq_stop(&r->vq);
	if (r->call >= 0)
		close(r->call);
	r->call = -1;
	r->started = false;
}

int fx_teardown(void **state)
{
	struct fx *f = *state;
	unsigned i;

	ring_stop(&f->r);
	ring_stop(&f->r2);
	gmem_clear(&f->mem);
	for (i = 0; i < 8; i++)
		free(f->e[i]);
	free(f);
	return 0;
}

void ring_start(struct fx *f, struct tring *r, const char *name,
                       uint64_t base, uint16_t num, uint64_t features,
                       uint16_t idx)
{
	unsigned k;

	ring_stop(r);
	r->num = num;
	r->desc = gpa(f, base, 16ULL * num);
	r->avail = gpa(f, base + 0x2000, 6 + 2ULL * num);
	r->used = gpa(f, base + 0x3000, 6 + 8ULL * num);
	memset(r->desc, 0, 16ULL * num);
	memset(r->avail, 0, 6 + 2ULL * num);
	memset(r->used, 0, 6 + 8ULL * num);
	for (k = 0; k < num; k++)
		r->used->ring[k].id = r->used->ring[k].len =
			htole32(UNUSED_MARK);
	r->avail->idx = htole16(idx);
	r->used->idx = htole16(idx);
	r->avail_idx = idx;
	r->call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(r->call >= 0);
	vq_init(&r->vq, name);
	vq_set_call(&r->vq, r->call);
	assert_int_equal(vq_start(&r->vq, &f->mem, num, r->desc, r->avail,
	                          r->used, idx, features), 0);
	r->started = true;
}

void set_desc(struct vring_desc *t, uint16_t i, uint64_t addr,
                     uint32_t len, uint16_t flags, uint16_t next)
{
	t[i].addr = htole64(addr);
	t[i].len = htole32(len);
	t[i].flags = htole16(flags);
	t[i].next = htole16(next);
}

struct vring_desc *table_at(struct fx *f, uint64_t a, unsigned n)
{
	return gpa(f, a, 16ULL * n);
}

void post(struct tring *r, uint16_t head)
{
	r->avail->ring[r->avail_idx & (r->num - 1)] = htole16(head);
	r->avail_idx++;
	__atomic_store_n(&r->avail->idx, htole16(r->avail_idx),
	                 __ATOMIC_RELEASE);
}

uint16_t used_idx(const struct tring *r)
{
	return le16toh(__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE));
}

uint32_t used_id(const struct tring *r, uint16_t k)
{
	return le32toh(r->used->ring[k & (r->num - 1)].id);
}

uint32_t used_len(const struct tring *r, uint16_t k)
{
	return le32toh(r->used->ring[k & (r->num - 1)].len);
}

void set_used_event(struct tring *r, uint16_t v)
{
	r->avail->ring[r->num] = htole16(v);
}

uint16_t avail_event(const struct tring *r)
{
	uint16_t v;

	memcpy(&v, (const uint8_t *)r->used + 4 + 8 * r->num, sizeof v);
	return le16toh(v);
}

uint64_t signals(const struct tring *r)
{
	uint64_t v;

	if (read(r->call, &v, sizeof v) != (ssize_t)sizeof v)
		return 0;
	return v;
}

void post_writable(struct tring *r, uint16_t id, uint32_t len)
{
	set_desc(r->desc, id, DATA + id * 0x100ULL, len, W, 0);
	post(r, id);
}

void assert_other_queue_works(struct fx *f)
{
	struct tring *r = &f->r2;
	struct vq_elem *e = f->e[7];

	ring_start(f, r, "tx", RING2, 8, F_INDIRECT, 0);
	set_desc(r->desc, 3, DATA + 0x3000, 32, W, 0);
	post(r, 3);
	assert_int_equal(vq_pop(&r->vq, e), 1);
	assert_int_equal(e->id, 3);
	assert_int_equal(e->in_len, 32);
	assert_int_equal(vq_push(&r->vq, e, 7), 0);
	assert_true(vq_flush(&r->vq));
	assert_int_equal(used_idx(r), 1);
	assert_int_equal(used_id(r, 0), 3);
	assert_int_equal(used_len(r, 0), 7);
}

void pop_breaks(struct fx *f, const char *needle)
{
	struct tring *r = &f->r;
	uint16_t before = used_idx(r);
	struct logcap c;
	char log[1024];
	int rc, lines;

	logcap_begin(&c);
	rc = vq_pop(&r->vq, f->e[0]);
	lines = logcap_end(&c, log, sizeof log);
	assert_int_equal(rc, -EIO);
	assert_true(r->vq.broken);
	assert_int_equal(lines, 1);
	assert_non_null(strstr(log, "vq rx: "));
	if (!strstr(log, needle))
		fail_msg("log line \"%s\" does not name \"%s\"", log, needle);

	assert_int_equal(vq_pop(&r->vq, f->e[0]), -EIO);
	assert_false(vq_has_avail(&r->vq));
	assert_false(vq_enable_notify(&r->vq));
	assert_false(vq_flush(&r->vq));
	assert_int_equal(used_idx(r), before);
	assert_int_equal(signals(r), 0);
	assert_other_queue_works(f);
}
