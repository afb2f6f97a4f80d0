#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chanfs/gmem.h"
#include "chanfs/log.h"

/* True if [start, start + size) wraps past 2^64.  A range may end exactly
 * at 2^64, so the check is on its last byte. */
static bool gmem_wraps(uint64_t start, uint64_t size)
{
	return size - 1 > UINT64_MAX - start;
}

/* Ranges are compared by their last byte so that none of this arithmetic
 * can wrap (both ranges are already known not to). */
static bool gmem_overlaps(uint64_t a, uint64_t asize, uint64_t b,
                          uint64_t bsize)
{
	return a <= b + (bsize - 1) && b <= a + (asize - 1);
}

int gmem_add(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uva,
             uint64_t mmap_offset, int fd)
{
	struct gmem_region *r;
	uint64_t page, map_off, delta;
	void *base;
	unsigned i;

	if (size == 0) {
		log_warnx("gmem: region gpa 0x%" PRIx64 ": size 0", gpa);
		return -EINVAL;
	}
	if (gmem_wraps(gpa, size) || gmem_wraps(uva, size) ||
	    gmem_wraps(mmap_offset, size)) {
		log_warnx("gmem: region gpa 0x%" PRIx64 " uva 0x%" PRIx64
		          " offset 0x%" PRIx64 " size 0x%" PRIx64
		          ": range wraps", gpa, uva, mmap_offset, size);
		return -EINVAL;
	}
	for (i = 0; i < m->n; i++) {
		const struct gmem_region *o = &m->r[i];

		if (gmem_overlaps(gpa, size, o->gpa, o->size)) {
			log_warnx("gmem: region gpa 0x%" PRIx64 " size 0x%"
			          PRIx64 ": guest-physical range overlaps "
			          "region %u (gpa 0x%" PRIx64 ")",
			          gpa, size, i, o->gpa);
			return -EINVAL;
		}
		if (gmem_overlaps(uva, size, o->uva, o->size)) {
			log_warnx("gmem: region uva 0x%" PRIx64 " size 0x%"
			          PRIx64 ": front-end range overlaps region %u "
			          "(uva 0x%" PRIx64 ")", uva, size, i, o->uva);
			return -EINVAL;
		}
	}
	if (m->n == GMEM_MAX_REGIONS) {
		log_warnx("gmem: region gpa 0x%" PRIx64 ": more than %d regions",
		          gpa, GMEM_MAX_REGIONS);
		return -E2BIG;
	}

	/* mmap wants a page-aligned file offset: map from the page holding
	 * mmap_offset and point past the slack. */
	page = (uint64_t)sysconf(_SC_PAGESIZE);
	map_off = mmap_offset & ~(page - 1);
	delta = mmap_offset - map_off;
	if (map_off > (uint64_t)INT64_MAX || size > SIZE_MAX - delta) {
		log_warnx("gmem: region gpa 0x%" PRIx64 ": offset 0x%" PRIx64
		          " size 0x%" PRIx64 " cannot be mapped",
		          gpa, mmap_offset, size);
		return -EINVAL;
	}
	base = mmap(NULL, (size_t)(delta + size), PROT_READ | PROT_WRITE,
	            MAP_SHARED, fd, (off_t)map_off);
	if (base == MAP_FAILED) {
		int err = errno;

		log_warn("gmem: region gpa 0x%" PRIx64 ": mmap fd %d offset 0x%"
		         PRIx64 " size 0x%" PRIx64, gpa, fd, mmap_offset, size);
		return -err;
	}

	r = &m->r[m->n++];
	r->gpa = gpa;
	r->size = size;
	r->uva = uva;
	r->mmap_offset = mmap_offset;
	r->map_base = base;
	r->map_len = (size_t)(delta + size);
	r->host = (uint8_t *)base + delta;
	return 0;
}

void gmem_clear(struct gmem *m)
{
	unsigned i;

	for (i = 0; i < m->n; i++)
		munmap(m->r[i].map_base, m->r[i].map_len);
	m->n = 0;
}

/* Offset of addr into a region starting at start of size bytes, if
 * [addr, addr + len) lies inside it.  Written as differences so that a
 * hostile addr or len cannot wrap. */
static bool gmem_inside(uint64_t start, uint64_t size, uint64_t addr,
                        uint64_t len, uint64_t *off)
{
	if (addr < start)
		return false;
	*off = addr - start;
	return *off < size && len <= size - *off;
}

void *gmem_gpa(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	uint64_t off;
	unsigned i;

	for (i = 0; i < m->n; i++) {
		const struct gmem_region *r = &m->r[i];

		if (gmem_inside(r->gpa, r->size, gpa, len, &off))
			return r->host + off;
	}
	return NULL;
}

void *gmem_uva(const struct gmem *m, uint64_t uva, uint64_t len)
{
	uint64_t off;
	unsigned i;

	for (i = 0; i < m->n; i++) {
		const struct gmem_region *r = &m->r[i];

		if (gmem_inside(r->uva, r->size, uva, len, &off))
			return r->host + off;
	}
	return NULL;
}

int gmem_iov(const struct gmem *m, uint64_t gpa, uint64_t len,
             struct iovec *iov, int max)
{
	int n = 0;

	if (len == 0)
		return 0;
	/* Checked up front: walking region by region would otherwise carry
	 * a wrapped range on into a region at guest-physical 0. */
	if (gmem_wraps(gpa, len))
		return -EFAULT;
	while (len > 0) {
		const struct gmem_region *r = NULL;
		uint64_t off = 0, chunk;
		unsigned i;

		for (i = 0; i < m->n; i++) {
			if (gmem_inside(m->r[i].gpa, m->r[i].size, gpa, 1,
			                &off)) {
				r = &m->r[i];
				break;
			}
		}
		if (!r)
			return -EFAULT;
		if (n >= max)
			return -ENOBUFS;
		chunk = r->size - off;
		if (chunk > len)
			chunk = len;
		iov[n].iov_base = r->host + off;
		iov[n].iov_len = (size_t)chunk;
		n++;
		gpa += chunk;
		len -= chunk;
	}
	return n;
}
