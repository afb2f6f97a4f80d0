/*
 * gmem — guest memory as the front-end shared it (SET_MEM_TABLE).
 *
 * Each region is an mmap'd fd with three addresses: guest-physical (gpa,
 * what descriptors carry), the front-end's virtual address (uva, what
 * SET_VRING_ADDR carries) and ours.  Every translation checks the whole
 * range [addr, addr + len) against one region, with overflow-safe
 * arithmetic: the guest is untrusted.
 */
#ifndef CHANFS_GMEM_H
#define CHANFS_GMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define GMEM_MAX_REGIONS 8

struct gmem_region {
	uint64_t gpa;         /* guest-physical start */
	uint64_t size;        /* bytes */
	uint64_t uva;         /* front-end virtual start */
	uint64_t mmap_offset; /* offset of the region in its fd */
	uint8_t *host;        /* our pointer to gpa (map_base + mmap_offset) */
	void *map_base;       /* what mmap returned */
	size_t map_len;       /* what was mapped */
};

struct gmem {
	unsigned n;
	struct gmem_region r[GMEM_MAX_REGIONS];
};

static inline void gmem_init(struct gmem *m) { m->n = 0; }

/* Map size bytes of fd at mmap_offset and add the region.  The fd is not
 * kept (the caller closes it).  mmap_offset need not be page-aligned (the
 * mapping starts at its page).  Returns 0; -EINVAL for size 0, ranges that
 * wrap, or a gpa or uva range that overlaps an existing region; -E2BIG when
 * GMEM_MAX_REGIONS are in use; -errno from mmap.  Every failure logs one
 * line naming the region and the fault, so the caller need not log again. */
int gmem_add(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uva,
             uint64_t mmap_offset, int fd);
/* Unmap every region. */
void gmem_clear(struct gmem *m);

/* Our pointer to guest-physical [gpa, gpa+len) if it lies wholly inside one
 * region, else NULL.  len 0 is valid when gpa is inside a region.  The
 * translation functions never log: their callers know where the address
 * came from. */
void *gmem_gpa(const struct gmem *m, uint64_t gpa, uint64_t len);
/* Same for a front-end virtual address range (ring addresses). */
void *gmem_uva(const struct gmem *m, uint64_t uva, uint64_t len);

/* Describe guest-physical [gpa, gpa+len) as iovecs, split where regions
 * meet.  Returns the number of iovecs (0 for len 0), -EFAULT if any byte is
 * outside guest memory or the range wraps, -ENOBUFS if more than max iovecs
 * would be needed. */
int gmem_iov(const struct gmem *m, uint64_t gpa, uint64_t len,
             struct iovec *iov, int max);

#endif
