/*
 * What fuzz_vu, fuzz_device and fuzz_console share: the fds a hostile
 * front-end hands over, guest memory pokes and kicks, message records
 * and the checks on their replies (fuzz_vu.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chanfs/vu.h"
#include "fuzz_vu.h"

static void fuzz_vu_check(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_vu_common: check failed: %s\n", what);
	abort();
}

uint8_t *fuzz_vu_guest_memory(int *memfd, int *pagefd)
{
	void *mem;

	*memfd = memfd_create("fuzz-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	*pagefd = memfd_create("fuzz-page", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	fuzz_vu_check(*memfd >= 0 && *pagefd >= 0, "memfd_create");
	fuzz_vu_check(ftruncate(*memfd, FUZZ_VU_MEM) == 0 &&
	              ftruncate(*pagefd, 4096) == 0, "ftruncate");
	fuzz_vu_check(fcntl(*memfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0 &&
	              fcntl(*pagefd, F_ADD_SEALS, F_SEAL_SHRINK) == 0,
	              "F_SEAL_SHRINK");
	mem = mmap(NULL, FUZZ_VU_MEM, PROT_READ | PROT_WRITE, MAP_SHARED,
	           *memfd, 0);
	fuzz_vu_check(mem != MAP_FAILED, "mmap");
	return mem;
}

int fuzz_vu_make_fd(struct fuzz_vu_fds *f, unsigned kind)
{
	int fd = -1, p[2];

	switch (kind) {
	case FUZZ_VU_FD_MEM:
		fd = dup(f->memfd);
		break;
	case FUZZ_VU_FD_EVENT:
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd >= 0 && f->nkickers < FUZZ_VU_MAX_KICKERS) {
			f->kickers[f->nkickers] = dup(fd);
			fuzz_vu_check(f->kickers[f->nkickers] >= 0, "dup");
			f->nkickers++;
		}
		break;
	case FUZZ_VU_FD_PAGE:
		fd = dup(f->pagefd);
		break;
	case FUZZ_VU_FD_PIPE:
	case FUZZ_VU_FD_PIPE_W:
		fuzz_vu_check(pipe2(p, O_CLOEXEC) == 0, "pipe2");
		close(kind == FUZZ_VU_FD_PIPE ? p[1] : p[0]);
		fd = kind == FUZZ_VU_FD_PIPE ? p[0] : p[1];
		break;
	case FUZZ_VU_FD_NULL:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	case FUZZ_VU_FD_SOCKET:
		fuzz_vu_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
		                         0, p) == 0, "socketpair");
		close(p[1]);
		fd = p[0];
		break;
	default:
		fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		break;
	}
	fuzz_vu_check(fd >= 0, "make_fd");
	return fd;
}

void fuzz_vu_kick_all(const struct fuzz_vu_fds *f)
{
	uint64_t one = 1;
	unsigned i;

	for (i = 0; i < f->nkickers; i++)
		fuzz_vu_check(write(f->kickers[i], &one, sizeof one) ==
		              sizeof one || errno == EAGAIN, "kick");
}

void fuzz_vu_close_kickers(struct fuzz_vu_fds *f)
{
	unsigned i;

	for (i = 0; i < f->nkickers; i++)
		close(f->kickers[i]);
	f->nkickers = 0;
}

void fuzz_vu_poke(uint8_t *mem, const uint8_t *p, size_t len)
{
	size_t off;

	if (len < 2)
		return;
	off = (p[0] | (size_t)p[1] << 8) % FUZZ_VU_MEM;
	len -= 2;
	if (len > FUZZ_VU_MEM - off)
		len = FUZZ_VU_MEM - off;
	memcpy(mem + off, p + 2, len);
}

int fuzz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	fuzz_vu_check(d != NULL, "opendir /proc/self/fd");
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;   /* the directory's own fd */
}

int fuzz_count_fds_settled(int baseline)
{
	const struct timespec tick = { 0, 1000000 };   /* 1 ms */
	int n, i;

	for (i = 0; (n = fuzz_count_fds()) != baseline && i < 5000; i++)
		nanosleep(&tick, NULL);
	return n;
}

void fuzz_vu_fill_msg(struct vu_msg *m, const uint8_t *h, const uint8_t *p,
                      size_t take, struct fuzz_vu_fds *f)
{
	unsigned nfds = h[2] & 0xf, i;

	memset(m, 0, offsetof(struct vu_msg, payload));
	m->request = h[0];
	if ((h[1] & 0xf0) == 0xf0)
		m->flags = h[1] & 0xf;
	else
		m->flags = VU_VERSION | ((h[1] & 1) ? VU_FLAG_NEED_REPLY : 0);
	m->size = h[3] | (uint32_t)h[4] << 8;
	memcpy(m->payload, p, take);
	memset(m->payload + take, 0, VU_MAX_PAYLOAD - take);
	if (nfds > 8)
		nfds = 8;
	for (i = 0; i < nfds; i++)
		m->fds[i] = fuzz_vu_make_fd(f, (h[2] >> 4) & 3);
	m->nfds = nfds;
}

/* Read every reply waiting on peer; returns how many, checking each
 * answers req. */
static unsigned fuzz_vu_drain_replies(int peer, uint32_t req)
{
	uint8_t buf[VU_HDR_SIZE + VU_MAX_PAYLOAD];
	uint32_t hdr[3];
	unsigned n = 0;
	ssize_t got;

	for (;;) {
		got = recv(peer, hdr, sizeof hdr, MSG_DONTWAIT);
		if (got < 0 && errno == EAGAIN)
			return n;
		fuzz_vu_check(got == (ssize_t)sizeof hdr, "reply header");
		fuzz_vu_check(hdr[0] == req, "reply answers its request");
		fuzz_vu_check(hdr[1] == (VU_VERSION | VU_FLAG_REPLY),
		              "reply flags");
		fuzz_vu_check(hdr[2] <= sizeof buf - VU_HDR_SIZE, "reply size");
		if (hdr[2])
			fuzz_vu_check(recv(peer, buf, hdr[2], MSG_DONTWAIT) ==
			              (ssize_t)hdr[2], "reply payload");
		n++;
	}
}

static bool fuzz_vu_has_own_reply(uint32_t req)
{
	return req == VU_GET_FEATURES || req == VU_GET_PROTOCOL_FEATURES ||
	       req == VU_GET_QUEUE_NUM || req == VU_GET_VRING_BASE ||
	       req == VU_GET_CONFIG;
}

int fuzz_vu_send_checked(struct vu *vu, int fd, int peer, struct vu_msg *m)
{
	uint32_t req = m->request;
	int r = vu_handle_msg(vu, fd, m);
	unsigned replies = fuzz_vu_drain_replies(peer, req);

	fuzz_vu_check(replies <= 1, "at most one reply");
	if (r == 0 && fuzz_vu_has_own_reply(req))
		fuzz_vu_check(replies == 1, "a reply of its own");
	return r;
}
