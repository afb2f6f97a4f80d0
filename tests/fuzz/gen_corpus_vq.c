/*
 * gen-corpus-vq DIR — write the seed corpus of fuzz_vq: well-formed chains
 * (direct, indirect, across the region edge, IN_ORDER, EVENT_IDX, index
 * wrap) and one input per hostile shape the queue must survive.  The
 * committed tests/fuzz/corpus/vq/ was made with it; crashers found by
 * fuzzing are added there by hand (named crash-*).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_ring.h>

#include "fuzz_vq.h"

#define R  0
#define W  VRING_DESC_F_WRITE
#define N  VRING_DESC_F_NEXT
#define I  VRING_DESC_F_INDIRECT

#define IND  0x1000ULL  /* indirect tables */
#define DATA 0x4000ULL  /* buffers; region B starts at FUZZ_VQ_REGION */

struct seed {
	uint8_t buf[FUZZ_VQ_HDR + FUZZ_VQ_MEM];
	size_t len;
	uint16_t num, avail;
};

static const char *out_dir;

static void seed_init(struct seed *s, uint8_t features, unsigned log2num,
                      uint16_t start, uint16_t incr, uint16_t script)
{
	memset(s, 0, sizeof *s);
	s->num = (uint16_t)(1u << log2num);
	s->avail = start;
	s->buf[0] = features;
	s->buf[1] = (uint8_t)log2num;
	s->buf[2] = start & 0xff;
	s->buf[3] = start >> 8;
	s->buf[4] = incr & 0xff;
	s->buf[5] = incr >> 8;
	s->buf[6] = script & 0xff;
	s->buf[7] = script >> 8;
	s->len = FUZZ_VQ_HDR;
}

static void put(struct seed *s, uint64_t gpa, const void *p, size_t n)
{
	if (gpa + n > FUZZ_VQ_MEM) {
		fprintf(stderr, "gen-corpus-vq: image write past memory\n");
		exit(1);
	}
	memcpy(s->buf + FUZZ_VQ_HDR + gpa, p, n);
	if (FUZZ_VQ_HDR + gpa + n > s->len)
		s->len = FUZZ_VQ_HDR + gpa + n;
}

static void put16(struct seed *s, uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	put(s, gpa, &v, 2);
}

static void desc(struct seed *s, uint64_t table, uint16_t i, uint64_t addr,
                 uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc d = {
		.addr = htole64(addr), .len = htole32(len),
		.flags = htole16(flags), .next = htole16(next),
	};

	put(s, table + 16ULL * i, &d, sizeof d);
}

/* Post head and publish the new avail index. */
static void post(struct seed *s, uint16_t head)
{
	uint64_t a = FUZZ_VQ_AVAIL(s->num);

	put16(s, a + 4 + 2ULL * (s->avail & (s->num - 1)), head);
	s->avail++;
	put16(s, a + 2, s->avail);
}

static void avail_idx(struct seed *s, uint16_t idx)
{
	put16(s, FUZZ_VQ_AVAIL(s->num) + 2, idx);
}

static void avail_flags(struct seed *s, uint16_t flags)
{
	put16(s, FUZZ_VQ_AVAIL(s->num), flags);
}

static void used_event(struct seed *s, uint16_t v)
{
	put16(s, FUZZ_VQ_AVAIL(s->num) + 4 + 2ULL * s->num, v);
}

static void save(struct seed *s, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof path, "%s/%s", out_dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, s->buf, s->len) != (ssize_t)s->len) {
		fprintf(stderr, "gen-corpus-vq: %s: %s\n", path,
		        strerror(errno));
		exit(1);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	static struct seed s;
	uint16_t k;

	if (argc != 2) {
		fprintf(stderr, "usage: gen-corpus-vq DIR\n");
		return 2;
	}
	out_dir = argv[1];

	/* ---- well-formed -------------------------------------------- */
	seed_init(&s, 0, 3, 0, 2, 1);
	desc(&s, 0, 0, DATA, 64, R | N, 5);
	desc(&s, 0, 5, DATA + 0x100, 128, W, 0);
	desc(&s, 0, 3, FUZZ_VQ_REGION - 128, 256, W, 0); /* across edge */
	post(&s, 0);
	post(&s, 3);
	save(&s, "ok-readable-writable-and-across-edge");

	seed_init(&s, FUZZ_VQ_F_INDIRECT, 3, 0, 1, 2);
	desc(&s, IND, 0, DATA, 44, R | N, 1);
	desc(&s, IND, 1, DATA + 0x100, 4096, W | N, 2);
	desc(&s, IND, 2, FUZZ_VQ_REGION + 0x100, 8, W, 0);
	desc(&s, 0, 1, IND, 48, I, 0);
	post(&s, 1);
	save(&s, "ok-indirect");

	seed_init(&s, FUZZ_VQ_F_INDIRECT, 3, 0, 0, 3);
	desc(&s, 0, 0, DATA, 16, R | N, 1);
	desc(&s, 0, 1, IND, 32, I, 0);
	desc(&s, IND, 0, DATA + 16, 16, R | N, 1);
	desc(&s, IND, 1, DATA + 32, 64, W, 0);
	post(&s, 0);
	save(&s, "ok-direct-then-indirect");

	seed_init(&s, FUZZ_VQ_F_INDIRECT, 3, 0, 0, 4);
	desc(&s, FUZZ_VQ_REGION - 24, 0, DATA, 10, R | N, 1);
	desc(&s, FUZZ_VQ_REGION - 24, 1, DATA + 10, 20, W | N, 2);
	desc(&s, FUZZ_VQ_REGION - 24, 2, DATA + 30, 30, W, 0);
	desc(&s, 0, 0, FUZZ_VQ_REGION - 24, 48, I, 0);
	post(&s, 0);
	save(&s, "ok-indirect-table-across-edge");

	seed_init(&s, FUZZ_VQ_F_INORDER, 3, 0, 5, 5);
	for (k = 0; k < 5; k++) {
		desc(&s, 0, k, DATA + 0x100 * k, 64, W, 0);
		post(&s, k);
	}
	save(&s, "ok-in-order-batches");

	seed_init(&s, FUZZ_VQ_F_EVENT, 3, 0, 4, 6);
	for (k = 0; k < 4; k++) {
		desc(&s, 0, k, DATA + 0x100 * k, 32, W, 0);
		post(&s, k);
	}
	used_event(&s, 2);
	save(&s, "ok-event-idx");

	seed_init(&s, 0, 3, 0, 2, 7);
	for (k = 0; k < 2; k++) {
		desc(&s, 0, k, DATA + 0x100 * k, 32, W, 0);
		post(&s, k);
	}
	avail_flags(&s, VRING_AVAIL_F_NO_INTERRUPT);
	save(&s, "ok-no-interrupt");

	seed_init(&s, 0, 2, 65533, 4, 8);
	for (k = 0; k < 4; k++) {
		desc(&s, 0, k, DATA + 0x100 * k, 16, W, 0);
		post(&s, k);
	}
	save(&s, "ok-index-wrap");

	seed_init(&s, FUZZ_VQ_F_INDIRECT | FUZZ_VQ_F_EVENT | FUZZ_VQ_F_INORDER,
	          2, 65534, 3, 9);
	desc(&s, 0, 0, DATA, 16, R | N, 1);
	desc(&s, 0, 1, DATA + 0x100, 16, W, 0);
	desc(&s, 0, 2, IND, 32, I, 0);
	desc(&s, IND, 0, DATA + 0x200, 8, R | N, 1);
	desc(&s, IND, 1, DATA + 0x300, 100, W, 0);
	desc(&s, 0, 3, DATA + 0x400, 0, W, 0);
	post(&s, 0);
	post(&s, 2);
	post(&s, 3);
	used_event(&s, 65535);
	save(&s, "ok-all-features");

	seed_init(&s, 0, 7, 0, 128, 10);
	for (k = 0; k < 128; k++) {
		desc(&s, 0, k, DATA + 0x40 * k, 0x40, k & 1 ? W : R, 0);
		post(&s, k);
	}
	save(&s, "ok-full-queue-of-128");

	/* ---- hostile ------------------------------------------------ */
	seed_init(&s, 0, 3, 0, 0, 11);
	desc(&s, 0, 0, DATA, 16, R | N, 1);
	desc(&s, 0, 1, DATA, 16, R | N, 0);
	post(&s, 0);
	save(&s, "bad-loop");

	seed_init(&s, FUZZ_VQ_F_INDIRECT, 3, 0, 0, 12);
	desc(&s, IND, 0, DATA, 16, R | N, 3);
	desc(&s, IND, 3, DATA, 16, R | N, 0);
	desc(&s, 0, 0, IND, 64, I, 0);
	post(&s, 0);
	save(&s, "bad-loop-in-indirect");

	seed_init(&s, FUZZ_VQ_F_INDIRECT, 3, 0, 0, 13);
	desc(&s, IND, 0, DATA, 16, R | N, 1);
	desc(&s, IND, 1, IND, 32, I, 0);
	desc(&s, 0, 0, IND, 32, I, 0);
	post(&s, 0);
	save(&s, "bad-indirect-in-indirect");

	seed_init(&s, 0, 3, 0, 0, 14);
	desc(&s, 0, 2, DATA, 16, R | N, 8);
	post(&s, 2);
	save(&s, "bad-next-out-of-range");

	seed_init(&s, 0, 3, 0, 0, 15);
	post(&s, 8);
	save(&s, "bad-head-out-of-range");

	seed_init(&s, 0, 3, 0, 0, 16);
	desc(&s, 0, 0, FUZZ_VQ_BIG, UINT32_MAX, R | N, 1);
	desc(&s, 0, 1, FUZZ_VQ_BIG, 1, W, 0);
	post(&s, 0);
	save(&s, "bad-len-overflows-32-bits");

	seed_init(&s, 0, 3, 0, 0, 17);
	desc(&s, 0, 0, FUZZ_VQ_MEM - 8, 16, W, 0);
	post(&s, 0);
	save(&s, "bad-address-outside-memory");

	seed_init(&s, 0, 3, 0, 0, 18);
	desc(&s, 0, 0, UINT64_MAX - 7, 16, W, 0);
	post(&s, 0);
	save(&s, "bad-address-wraps");

	seed_init(&s, 0, 3, 0, 0, 19);
	desc(&s, 0, 0, DATA, 16, W, 0);
	post(&s, 0);
	avail_idx(&s, 9);
	save(&s, "bad-avail-index-jump");

	seed_init(&s, FUZZ_VQ_F_INDIRECT, 3, 0, 0, 20);
	desc(&s, IND, 0, DATA, 16, W, 0);
	desc(&s, 0, 0, IND, 16, I | N, 1);
	desc(&s, 0, 1, DATA, 16, W, 0);
	post(&s, 0);
	save(&s, "bad-indirect-with-next");

	seed_init(&s, 0, 3, 0, 0, 21);
	desc(&s, IND, 0, DATA, 16, W, 0);
	desc(&s, 0, 0, IND, 16, I, 0);
	post(&s, 0);
	save(&s, "bad-indirect-not-negotiated");

	seed_init(&s, FUZZ_VQ_F_INDIRECT, 3, 0, 0, 22);
	desc(&s, 0, 0, IND, 24, I, 0);
	post(&s, 0);
	save(&s, "bad-indirect-len-24");

	seed_init(&s, FUZZ_VQ_F_INDIRECT, 3, 0, 0, 23);
	desc(&s, 0, 0, IND, 0, I, 0);
	post(&s, 0);
	save(&s, "bad-indirect-len-0");

	seed_init(&s, 0, 3, 0, 0, 24);
	desc(&s, 0, 0, DATA, 16, W | N, 1);
	desc(&s, 0, 1, DATA, 16, R, 0);
	post(&s, 0);
	save(&s, "bad-readable-after-writable");

	seed_init(&s, FUZZ_VQ_F_INDIRECT, 3, 0, 0, 25);
	for (k = 0; k < 257; k++)
		desc(&s, IND, k, DATA + k, 1, W | (k < 256 ? N : 0), k + 1);
	desc(&s, 0, 0, IND, 257 * 16, I, 0);
	post(&s, 0);
	save(&s, "bad-chain-too-long");
	return 0;
}
