/*
 * vmm.c — the simulated VMM: connection, guest memory, and the handshake in
 * QEMU 7.2's order (see vmm.h for the list and where it comes from).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_ring.h>

#include "chanfs/virtio.h"
#include "chanfs/vu.h"
#include "vmm_priv.h"

/* With two regions, data allocations start this far below the boundary:
 * not a power of two, so aligned slots do not end right at it. */
#define VMM_STRADDLE 61000u

/* --- guest memory ----------------------------------------------------- */

static int vmm_mem_create(struct vmm *v)
{
	v->memfd = memfd_create("vmm-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (v->memfd < 0)
		return -errno;
	if (ftruncate(v->memfd, (off_t)v->size) < 0)
		return -errno;
	/* As QEMU's memory-backend-memfd does (seal=on by default). */
	if (!v->o.unsealed &&
	    fcntl(v->memfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK |
	          F_SEAL_SEAL) < 0)
		return -errno;
	v->base = mmap(NULL, v->size, PROT_READ | PROT_WRITE, MAP_SHARED,
	               v->memfd, 0);
	if (v->base == MAP_FAILED) {
		v->base = NULL;
		return -errno;
	}
	if (v->o.regions == 2) {
		/* Region 1 gets a mapping of its own, so its front-end
		 * virtual address is unrelated to region 0's. */
		v->boundary = v->size / 2;
		v->map1 = mmap(NULL, v->size - v->boundary,
		               PROT_READ | PROT_WRITE, MAP_SHARED, v->memfd,
		               (off_t)v->boundary);
		if (v->map1 == MAP_FAILED) {
			v->map1 = NULL;
			return -errno;
		}
		v->brk = v->boundary - VMM_STRADDLE;
	} else {
		v->brk = 4096;
	}
	v->top = v->size;
	return 0;
}

uint64_t vmm_alloc(struct vmm *v, size_t len, size_t align)
{
	uint64_t at;

	if (align == 0)
		align = 16;
	if (align & (align - 1))
		return 0;
	at = (v->brk + align - 1) & ~((uint64_t)align - 1);
	if (at > v->top || v->top - at < len)
		return 0;
	v->brk = at + len;
	return at;
}

/* Rings come from the top of memory, so vmm_release never frees them
 * (and with two regions they sit in region 1). */
uint64_t vmm_alloc_top(struct vmm *v, size_t len, size_t align)
{
	uint64_t at;

	if (v->top < len)
		return 0;
	at = (v->top - len) & ~((uint64_t)align - 1);
	if (at < v->brk)
		return 0;
	v->top = at;
	return at;
}

uint64_t vmm_alloc_mark(const struct vmm *v)
{
	return v->brk;
}

void vmm_release(struct vmm *v, uint64_t mark)
{
	if (mark && mark <= v->brk)
		v->brk = mark;
}

void *vmm_ptr(struct vmm *v, uint64_t gpa, size_t len)
{
	if (gpa > v->size || v->size - gpa < len)
		return NULL;
	return v->base + gpa;
}

uint64_t vmm_mem_size(const struct vmm *v)
{
	return v->size;
}

uint64_t vmm_region_boundary(const struct vmm *v)
{
	return v->boundary;
}

int vmm_mem_fd(const struct vmm *v)
{
	return v->memfd;
}

uint64_t vmm_gpa_to_uva(const struct vmm *v, uint64_t gpa)
{
	if (v->boundary && gpa >= v->boundary)
		return (uint64_t)(uintptr_t)v->map1 + (gpa - v->boundary);
	return (uint64_t)(uintptr_t)v->base + gpa;
}

unsigned vmm_mem_regions(const struct vmm *v, struct vu_mem_region *r,
                         unsigned max)
{
	unsigned n = v->boundary ? 2 : 1, i;

	for (i = 0; i < n && i < max; i++) {
		uint64_t start = i ? v->boundary : 0;
		uint64_t end = (i || !v->boundary) ? v->size : v->boundary;

		r[i].gpa = start;
		r[i].size = end - start;
		r[i].uva = vmm_gpa_to_uva(v, start);
		r[i].mmap_offset = start;
	}
	return i;
}

/* --- connection ------------------------------------------------------- */

static int vmm_dial(const char *path, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	int waited = 0, fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		close(fd);
		/* the back-end may not be listening yet */
		if ((errno != ENOENT && errno != ECONNREFUSED &&
		     errno != EAGAIN) || waited >= timeout_ms)
			return -errno;
		nanosleep(&pause, NULL);
		waited += 10;
	}
}

static void vmm_defaults(struct vmm_opts *o)
{
	if (!o->num_queues)
		o->num_queues = 2;
	if (!o->queue_size)
		o->queue_size = 256;
	if (!o->mem_size)
		o->mem_size = VMM_DEFAULT_MEM;
	if (o->regions != 2)
		o->regions = 1;
	if (!o->config_size)
		o->config_size = 8;
	if (!o->timeout_ms)
		o->timeout_ms = 10000;
}

struct vmm *vmm_connect_raw(const char *socket_path,
                            const struct vmm_opts *opts)
{
	struct vmm *v;
	unsigned q;
	int r;

	v = calloc(1, sizeof(*v));
	if (!v) {
		errno = ENOMEM;
		return NULL;
	}
	if (opts)
		v->o = *opts;
	vmm_defaults(&v->o);
	v->sock = -1;
	v->memfd = -1;
	for (q = 0; q < VMM_MAX_QUEUES; q++) {
		v->vq[q].kick_fd = -1;
		v->vq[q].call_fd = -1;
		v->vq[q].masked_call_fd = -1;
		v->vq[q].err_fd = -1;
	}
	r = -EINVAL;
	if (v->o.num_queues > VMM_MAX_QUEUES || v->o.mem_size < (8u << 20) ||
	    v->o.mem_size % 8192 || v->o.config_size > VU_MAX_CONFIG) {
		fprintf(stderr, "vmm: bad options\n");
		goto fail;
	}
	v->size = v->o.mem_size;
	r = vmm_mem_create(v);
	if (r < 0) {
		fprintf(stderr, "vmm: guest memory: %s\n", strerror(-r));
		goto fail;
	}
	for (q = 0; q < v->o.num_queues; q++) {
		r = vmm_vq_setup(v, q);
		if (r < 0) {
			fprintf(stderr, "vmm: queue %u setup: %s\n", q,
			        strerror(-r));
			goto fail;
		}
	}
	v->sock = vmm_dial(socket_path, v->o.timeout_ms);
	if (v->sock < 0) {
		r = v->sock;
		fprintf(stderr, "vmm: connect %s: %s\n", socket_path,
		        strerror(-r));
		goto fail;
	}
	v->nsteps = vmm_hs_count_steps(v);
	return v;
fail:
	vmm_disconnect(v);
	errno = -r;
	return NULL;
}

struct vmm *vmm_connect(const char *socket_path, const struct vmm_opts *opts)
{
	struct vmm *v = vmm_connect_raw(socket_path, opts);
	int r;

	if (!v)
		return NULL;
	r = vmm_handshake(v, 0);
	if (r < 0) {
		vmm_disconnect(v);
		errno = -r;
		return NULL;
	}
	return v;
}

void vmm_disconnect(struct vmm *v)
{
	unsigned q;

	if (!v)
		return;
	if (v->sock >= 0)
		close(v->sock);
	for (q = 0; q < VMM_MAX_QUEUES; q++) {
		struct vmm_vq *vq = &v->vq[q];

		if (vq->kick_fd >= 0)
			close(vq->kick_fd);
		if (vq->call_fd >= 0)
			close(vq->call_fd);
		if (vq->masked_call_fd >= 0)
			close(vq->masked_call_fd);
		if (vq->err_fd >= 0)
			close(vq->err_fd);
		vmm_vq_free_state(v, q);
	}
	if (v->map1)
		munmap(v->map1, v->size - v->boundary);
	if (v->base)
		munmap(v->base, v->size);
	if (v->memfd >= 0)
		close(v->memfd);
	free(v);
}

uint64_t vmm_offered_features(const struct vmm *v)
{
	return v->offered;
}

uint64_t vmm_features(const struct vmm *v)
{
	return v->features;
}

uint64_t vmm_offered_protocol_features(const struct vmm *v)
{
	return v->offered_proto;
}

uint64_t vmm_protocol_features(const struct vmm *v)
{
	return v->proto;
}

unsigned vmm_queue_num(const struct vmm *v)
{
	return v->queue_num;
}

const uint8_t *vmm_config(const struct vmm *v, uint32_t *len)
{
	*len = v->config_len;
	return v->config;
}
