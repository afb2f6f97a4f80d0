/*
 * What fuzz_vu and fuzz_device share: the fds a hostile front-end hands
 * over, guest memory pokes and kicks (fuzz_vu.h).
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
