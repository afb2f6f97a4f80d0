/*
 * gen-corpus-vu DIR — write the seed corpus of fuzz_vu: the message
 * sequence QEMU 7.2 sends a vhost-user-vsock back-end (taken from the
 * back-end's debug log in tests/integration/qemu_accept.sh), the ring start
 * that follows when a guest driver loads, and one input per class of
 * malformed message the server must reject.  The committed
 * tests/fuzz/corpus/vu/ was made with it; crashers found by fuzzing are
 * added there by hand (named crash-*).
 *
 * gen-corpus-vu --console DIR — seeds for fuzz_console (QEMU 11.1's
 * sequence for a two-port console device, a driver's handshake, data
 * both ways, hostile control messages).
 *
 * gen-corpus-vu --device DIR — seeds for fuzz_device (the same records,
 * sent through the socket to the real vsock device): every vu seed plus
 * guest and host traffic, messages split into pieces and joined, and fds
 * of every kind in the wrong places.  Copy the vu seeds in as vu-*.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>

#include "chanfs/virtio.h"
#include "chanfs/vu.h"
#include "fuzz_vu.h"

#define NEED 1                       /* flags byte: NEED_REPLY */
#define FDS(n, kind) ((n) | (kind) << 4)
#define EV FUZZ_VU_FD_EVENT
#define MEMFD FUZZ_VU_FD_MEM

/* Ring layout of queue q in guest memory, and its buffers. */
#define QSIZE 8
#define DESC(q) (0x1000ULL + 0x3000ULL * (q))
#define AVAIL(q) (DESC(q) + 0x1000)
#define USED(q) (DESC(q) + 0x2000)
#define DATA 0x8000ULL

/* What a Linux 6.1 guest acks for vhost-user-vsock, plus the bit QEMU
 * adds for the back-end. */
#define ACKED (VBIT(VIRTIO_F_VERSION_1_BIT) | \
               VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT) | \
               VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) | \
               VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT))

struct seed {
	uint8_t buf[1 << 16];
	size_t len;
};

static const char *out_dir;

static void rec(struct seed *s, uint8_t req, uint8_t flags, uint8_t fds,
                const void *p, uint16_t size, uint16_t have)
{
	uint8_t *h = s->buf + s->len;

	if (s->len + FUZZ_VU_HDR + have > sizeof s->buf) {
		fprintf(stderr, "gen-corpus-vu: seed too large\n");
		exit(1);
	}
	h[0] = req;
	h[1] = flags;
	h[2] = fds;
	h[3] = size & 0xff;
	h[4] = size >> 8;
	memcpy(h + FUZZ_VU_HDR, p, have);
	s->len += FUZZ_VU_HDR + have;
}

static void msg(struct seed *s, uint8_t req, uint8_t flags, uint8_t fds,
                const void *p, uint16_t size)
{
	rec(s, req, flags, fds, p, size, size);
}

static void msg0(struct seed *s, uint8_t req)
{
	msg(s, req, 0, 0, NULL, 0);
}

static void msg_u64(struct seed *s, uint8_t req, uint8_t flags, uint64_t v)
{
	msg(s, req, flags, 0, &v, 8);
}

static void msg_state(struct seed *s, uint8_t req, uint8_t flags,
                      uint32_t index, uint32_t num)
{
	struct vu_vring_state st = { index, num };

	msg(s, req, flags, 0, &st, sizeof st);
}

/* KICK/CALL/ERR with one fd of kind (or NOFD when kind < 0). */
static void msg_file(struct seed *s, uint8_t req, uint8_t flags, unsigned q,
                     int kind)
{
	uint64_t v = q | (kind < 0 ? VU_VRING_NOFD : 0);

	msg(s, req, flags, kind < 0 ? 0 : FDS(1, kind), &v, 8);
}

static void msg_addr(struct seed *s, uint8_t flags, unsigned q,
                     uint64_t desc, uint64_t used, uint64_t avail)
{
	struct vu_vring_addr a = { q, 0, desc, used, avail, 0 };

	msg(s, VU_SET_VRING_ADDR, flags, 0, &a, sizeof a);
}

static void msg_mem(struct seed *s, uint8_t flags, uint8_t fds,
                    const struct vu_mem_region *r, unsigned n)
{
	struct vu_mem_table t = { .nregions = n };

	memcpy(t.r, r, n * sizeof *r);
	msg(s, VU_SET_MEM_TABLE, flags, fds, &t, (uint16_t)(8 + 32 * n));
}

static void msg_config(struct seed *s, uint8_t req, uint8_t flags,
                       uint32_t off, uint32_t len)
{
	uint8_t p[12 + 8] = { 0 };
	struct vu_config_hdr h = { off, len, 0 };

	memcpy(p, &h, sizeof h);
	msg(s, req, flags, 0, p, (uint16_t)(12 + (len <= 8 ? len : 8)));
}

static void poke(struct seed *s, uint64_t gpa, const void *p, uint16_t len)
{
	uint8_t b[2 + 512];

	b[0] = gpa & 0xff;
	b[1] = (gpa >> 8) & 0xff;
	memcpy(b + 2, p, len);
	msg(s, FUZZ_VU_POKE, 0, 0, b, (uint16_t)(2 + len));
}

static void kick(struct seed *s)
{
	msg(s, FUZZ_VU_KICK, 0, 0, NULL, 0);
}

/* The driver posts one buffer on queue q: a readable one on queue 0 (tx),
 * a writable one on queue 1 (rx), in descriptor slot and avail entry n. */
static void post(struct seed *s, unsigned q, uint16_t n)
{
	struct vring_desc d = {
		.addr = DATA + 0x1000 * q + 0x100 * n,
		.len = 64,
		.flags = q ? VRING_DESC_F_WRITE : 0,
	};
	uint16_t head = n % QSIZE, idx = n + 1;

	poke(s, DESC(q) + 16 * head, &d, sizeof d);
	poke(s, AVAIL(q) + 4 + 2 * head, &head, 2);
	poke(s, AVAIL(q) + 2, &idx, 2);
}

/* vhost_user_backend_init, vhost_dev_init and the device's GET_CONFIG, in
 * the order QEMU 7.2 sent them to chanfs-echodev. */
static void qemu_init(struct seed *s)
{
	msg0(s, VU_GET_FEATURES);
	msg0(s, VU_GET_PROTOCOL_FEATURES);
	msg_u64(s, VU_SET_PROTOCOL_FEATURES, 0, VU_PROTOCOL_FEATURES);
	msg0(s, VU_GET_QUEUE_NUM);
	msg0(s, VU_SET_OWNER);
	msg0(s, VU_GET_FEATURES);
	msg_file(s, VU_SET_VRING_CALL, 0, 0, EV);
	msg_file(s, VU_SET_VRING_ERR, 0, 0, EV);
	msg_file(s, VU_SET_VRING_CALL, 0, 1, EV);
	msg_file(s, VU_SET_VRING_ERR, 0, 1, EV);
	msg_config(s, VU_GET_CONFIG, 0, 0, 8);
}

static const struct vu_mem_region whole = { 0, FUZZ_VU_MEM, FUZZ_VU_UVA, 0 };

static bool has_pf(uint64_t features)
{
	return features & VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT);
}

/* vhost_dev_start once the guest driver is ready. */
static void qemu_start(struct seed *s, uint64_t features, uint16_t base)
{
	unsigned q;

	msg_u64(s, VU_SET_FEATURES, 0, features);
	msg_mem(s, NEED, FDS(1, MEMFD), &whole, 1);
	for (q = 0; q < 2; q++) {
		msg_state(s, VU_SET_VRING_NUM, 0, q, QSIZE);
		msg_state(s, VU_SET_VRING_BASE, 0, q, base);
		msg_addr(s, 0, q, FUZZ_VU_UVA + DESC(q), FUZZ_VU_UVA + USED(q),
		         FUZZ_VU_UVA + AVAIL(q));
		msg_file(s, VU_SET_VRING_KICK, 0, q, EV);
	}
	/* Only with PROTOCOL_FEATURES: rings start enabled without it. */
	for (q = 0; q < 2 && has_pf(features); q++)
		msg_state(s, VU_SET_VRING_ENABLE, 0, q, 1);
	for (q = 0; q < 2; q++)
		msg_file(s, VU_SET_VRING_CALL, 0, q, EV);
}

static void qemu_stop(struct seed *s, uint64_t features)
{
	unsigned q;

	for (q = 0; q < 2 && has_pf(features); q++)
		msg_state(s, VU_SET_VRING_ENABLE, 0, q, 0);
	for (q = 0; q < 2; q++)
		msg_state(s, VU_GET_VRING_BASE, 0, q, 0);
}

static void save(const struct seed *s, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof path, "%s/%s", out_dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, s->buf, s->len) != (ssize_t)s->len) {
		fprintf(stderr, "gen-corpus-vu: %s: %s\n", path,
		        strerror(errno));
		exit(1);
	}
	close(fd);
}

/* A seed that starts with the 7.2 handshake (and optionally the ring
 * start) and ends with one malformed message and a message after it. */
static void bad(const char *name, bool start,
                void (*fn)(struct seed *s))
{
	static struct seed s;

	memset(&s, 0, sizeof s);
	qemu_init(&s);
	if (start)
		qemu_start(&s, ACKED, 0);
	fn(&s);
	msg0(&s, VU_GET_QUEUE_NUM);
	save(&s, name);
}

static void bad_size(struct seed *s)
{
	uint32_t four = 4;

	msg(s, VU_SET_VRING_NUM, NEED, 0, &four, 4);
}

static void bad_fds(struct seed *s)
{
	msg(s, VU_SET_OWNER, NEED, FDS(3, EV), NULL, 0);
}

static void bad_mem_fd_count(struct seed *s)
{
	struct vu_mem_region r[2] = {
		{ 0, 0x8000, FUZZ_VU_UVA, 0 },
		{ 0x8000, 0x8000, FUZZ_VU_UVA + 0x8000, 0x8000 },
	};

	msg_mem(s, NEED, FDS(1, MEMFD), r, 2);
}

static void bad_mem_overlap(struct seed *s)
{
	struct vu_mem_region r[2] = {
		{ 0, 0x8000, FUZZ_VU_UVA, 0 },
		{ 0x4000, 0x8000, FUZZ_VU_UVA + 0x10000, 0x8000 },
	};

	msg_mem(s, NEED, FDS(2, MEMFD), r, 2);
}

static void bad_mem_fd_too_small(struct seed *s)
{
	msg_mem(s, NEED, FDS(1, FUZZ_VU_FD_PAGE), &whole, 1);
}

static void bad_mem_not_memory(struct seed *s)
{
	msg_mem(s, NEED, FDS(1, FUZZ_VU_FD_PIPE), &whole, 1);
}

static void bad_mem_nine_regions(struct seed *s)
{
	uint32_t p[2] = { 9, 0 };

	msg(s, VU_SET_MEM_TABLE, NEED, 0, p, 8);
}

static void bad_queue_index(struct seed *s)
{
	msg_state(s, VU_SET_VRING_NUM, NEED, 9, 256);
	msg_state(s, VU_GET_VRING_BASE, NEED, 2, 0);
}

static void bad_queue_size(struct seed *s)
{
	msg_state(s, VU_SET_VRING_NUM, NEED, 0, 3);
	msg_state(s, VU_SET_VRING_NUM, NEED, 0, 65536);
}

static void bad_ring_outside(struct seed *s)
{
	msg_u64(s, VU_SET_FEATURES, 0, ACKED);
	msg_mem(s, 0, FDS(1, MEMFD), &whole, 1);
	msg_state(s, VU_SET_VRING_NUM, 0, 0, QSIZE);
	msg_addr(s, NEED, 0, FUZZ_VU_UVA + FUZZ_VU_MEM - 64,
	         FUZZ_VU_UVA + USED(0), FUZZ_VU_UVA + AVAIL(0));
	msg_addr(s, NEED, 0, FUZZ_VU_UVA + DESC(0), FUZZ_VU_UVA + USED(0) + 2,
	         FUZZ_VU_UVA + AVAIL(0));
}

static void bad_unknown(struct seed *s)
{
	msg(s, 99, NEED, 0, NULL, 0);
	msg(s, VU_SET_LOG_BASE, NEED, FDS(1, MEMFD), "\0\0\0\0\0\0\0\0", 8);
}

static void bad_version(struct seed *s)
{
	msg(s, VU_SET_OWNER, 0xf2, 0, NULL, 0);
}

static void bad_oversize(struct seed *s)
{
	static const uint8_t junk[64];

	rec(s, VU_SET_FEATURES, NEED, 0, junk, VU_MAX_PAYLOAD + 1,
	    sizeof junk);
}

static void bad_set_config(struct seed *s)
{
	msg_config(s, VU_SET_CONFIG, NEED, 0, 8);
	msg_config(s, VU_GET_CONFIG, 0, 4, 8);
	msg_config(s, VU_GET_CONFIG, 0, 0, 300);
}

static void bad_kick(struct seed *s)
{
	msg_file(s, VU_SET_VRING_KICK, NEED, 0, -1);
	msg_file(s, VU_SET_VRING_KICK, NEED, 1, FUZZ_VU_FD_PIPE);
	kick(s);
}

static void bad_running(struct seed *s)
{
	post(s, 0, 0);
	kick(s);
	msg_state(s, VU_SET_VRING_NUM, NEED, 0, 16);
	msg_u64(s, VU_SET_FEATURES, NEED, VBIT(VIRTIO_F_VERSION_1_BIT));
	msg_addr(s, NEED, 1, FUZZ_VU_UVA, FUZZ_VU_UVA + 0x100,
	         FUZZ_VU_UVA + 0x200);
	msg_mem(s, NEED, FDS(1, MEMFD), &whole, 1);
	post(s, 0, 1);
	kick(s);
	msg0(s, VU_RESET_OWNER);
}

static void bad_features(struct seed *s)
{
	msg_u64(s, VU_SET_FEATURES, NEED, ACKED | (1ULL << 26));
	msg_u64(s, VU_SET_PROTOCOL_FEATURES, NEED, 1ULL << 1);
}

static void ok_traffic(struct seed *s, uint64_t features)
{
	unsigned i;

	qemu_init(s);
	for (i = 0; i < 3; i++) {
		post(s, 0, (uint16_t)i);
		post(s, 1, (uint16_t)i);
	}
	qemu_start(s, features, 0);
	for (; i < 6; i++) {
		post(s, 0, (uint16_t)i);
		post(s, 1, (uint16_t)i);
		kick(s);
	}
	qemu_stop(s, features);
	/* and again, from where it stopped */
	qemu_start(s, features, 6);
	post(s, 0, 6);
	kick(s);
}

/* --- fuzz_device seeds ------------------------------------------------ */

/* fuzz_device's actions (fuzz_device.c). */
#define DEV_SPLIT 0xf2
#define DEV_RAW 0xf3
#define DEV_TURN 0xf4
#define DEV_RECONNECT 0xf5
#define DEV_HOST 0xf6
#define DEV_SHUT 0xf7
#define DEV_FDS_LAST 0x80
#define DEV_FEATURES (VBIT(VIRTIO_F_VERSION_1_BIT) | \
                      VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT))
/* vsock's queues: 0 rx (writable buffers), 1 tx */
#define DEV_RX 0
#define DEV_TX 1

/* Post buffer n on queue q: rx buffers are 64 writable bytes, tx ones
 * carry a packet (header and payload). */
static void dev_post(struct seed *s, unsigned q, uint16_t n,
                     const void *pkt, uint16_t len)
{
	uint64_t addr = DATA + 0x1000 * q + 0x100 * (n % QSIZE);
	struct vring_desc d = {
		.addr = addr,
		.len = q == DEV_RX ? 64 : len,
		.flags = q == DEV_RX ? VRING_DESC_F_WRITE : 0,
	};
	uint16_t head = n % QSIZE, idx = n + 1;

	if (q == DEV_TX)
		poke(s, addr, pkt, len);
	poke(s, DESC(q) + 16 * head, &d, sizeof d);
	poke(s, AVAIL(q) + 4 + 2 * head, &head, 2);
	poke(s, AVAIL(q) + 2, &idx, 2);
}

static void dev_tx(struct seed *s, uint16_t n, uint16_t op, uint32_t gport,
                   uint32_t hport, const char *data, uint32_t flags)
{
	uint8_t b[44 + 20] = { 0 };
	uint32_t len = data ? (uint32_t)strlen(data) : 0;
	struct virtio_vsock_hdr h = {
		.src_cid = 3, .dst_cid = 2,
		.src_port = gport, .dst_port = hport,
		.len = len, .type = VIRTIO_VSOCK_TYPE_STREAM, .op = op,
		.flags = flags, .buf_alloc = 65536, .fwd_cnt = 0,
	};

	memcpy(b, &h, sizeof h);
	if (len)
		memcpy(b + 44, data, len);
	dev_post(s, DEV_TX, n, b, (uint16_t)(44 + len));
	kick(s);
}

/* op, slot, le32 port, data */
static void dev_host(struct seed *s, uint8_t op, uint8_t slot, uint32_t port,
                     const char *data)
{
	uint8_t b[6 + 64];
	uint16_t len = data ? (uint16_t)strlen(data) : 0;

	b[0] = op;
	b[1] = slot;
	memcpy(b + 2, &port, 4);
	if (len)
		memcpy(b + 6, data, len);
	msg(s, DEV_HOST, 0, 0, b, (uint16_t)(6 + len));
}

static void dev_turns(struct seed *s, uint8_t n)
{
	msg(s, DEV_TURN, 0, 0, &n, 1);
}

static void dev_split(struct seed *s, uint8_t piece)
{
	msg(s, DEV_SPLIT, 0, 0, &piece, 1);
}

/* The guest connects to host port 5000, the host accepts, both send,
 * the guest shuts down; then the host connects out and is refused. */
static void dev_traffic(struct seed *s, uint64_t features)
{
	uint16_t rx;

	qemu_init(s);
	qemu_start(s, features, 0);
	dev_host(s, 0, 0, 5000, NULL);                  /* listen */
	for (rx = 0; rx < 4; rx++)
		dev_post(s, DEV_RX, rx, NULL, 0);
	kick(s);
	dev_tx(s, 0, VIRTIO_VSOCK_OP_REQUEST, 1025, 5000, NULL, 0);
	dev_host(s, 2, 0, 5000, NULL);                  /* accept */
	dev_host(s, 3, 0, 0, "hello guest");            /* write */
	dev_turns(s, 1);
	dev_tx(s, 1, VIRTIO_VSOCK_OP_RW, 1025, 5000, "hello host", 0);
	dev_host(s, 4, 0, 100, NULL);                   /* read */
	dev_tx(s, 2, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 1025, 5000, NULL, 0);
	dev_tx(s, 3, VIRTIO_VSOCK_OP_SHUTDOWN, 1025, 5000, NULL, 3);
	dev_host(s, 1, 1, 7, NULL);                     /* connect */
	for (; rx < 8; rx++)
		dev_post(s, DEV_RX, rx, NULL, 0);
	kick(s);
	dev_tx(s, 4, VIRTIO_VSOCK_OP_RST, 7, 49152, NULL, 0);
	dev_host(s, 5, 0, 0, NULL);                     /* close */
	dev_host(s, 5, 1, 0, NULL);
	dev_turns(s, 3);
}

static void dev_seeds(void)
{
	static struct seed s;
	static const uint8_t two[] = {
		/* GET_FEATURES and SET_OWNER in one send */
		1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
		3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
	};
	uint8_t kinds[] = { FUZZ_VU_FD_NULL, FUZZ_VU_FD_PIPE_W,
	                    FUZZ_VU_FD_SOCKET, FUZZ_VU_FD_DIR, FUZZ_VU_FD_PIPE,
	                    FUZZ_VU_FD_PAGE };
	uint64_t q0 = 0;
	unsigned i;

	memset(&s, 0, sizeof s);
	dev_traffic(&s, DEV_FEATURES);
	save(&s, "ok-guest-and-host-traffic");

	memset(&s, 0, sizeof s);
	dev_traffic(&s, ACKED);
	save(&s, "ok-guest-and-host-traffic-event-idx");

	memset(&s, 0, sizeof s);
	dev_split(&s, 5);
	dev_traffic(&s, DEV_FEATURES);
	save(&s, "ok-split-in-5-byte-pieces");

	memset(&s, 0, sizeof s);
	dev_split(&s, 1);
	qemu_init(&s);
	qemu_start(&s, DEV_FEATURES, 0);
	save(&s, "ok-split-in-single-bytes");

	memset(&s, 0, sizeof s);
	msg(&s, DEV_RAW, 0, 0, two, sizeof two);
	msg0(&s, VU_GET_PROTOCOL_FEATURES);
	save(&s, "ok-two-messages-joined");

	memset(&s, 0, sizeof s);
	dev_split(&s, 7);
	qemu_init(&s);
	msg(&s, VU_SET_VRING_KICK, 0, FDS(1, EV) | DEV_FDS_LAST, &q0, 8);
	save(&s, "ok-fd-on-the-last-piece");

	memset(&s, 0, sizeof s);
	qemu_init(&s);
	msg(&s, DEV_RAW, 0, FDS(1, EV), two, 7);
	msg(&s, DEV_SHUT, 0, 0, NULL, 0);
	msg0(&s, VU_GET_FEATURES);
	save(&s, "bad-shut-in-the-middle-of-a-message");

	memset(&s, 0, sizeof s);
	qemu_init(&s);
	msg(&s, DEV_RECONNECT, 0, 0, NULL, 0);
	qemu_init(&s);
	qemu_start(&s, DEV_FEATURES, 0);
	save(&s, "ok-reconnect");

	for (i = 0; i < sizeof kinds; i++) {
		char name[64];

		memset(&s, 0, sizeof s);
		qemu_init(&s);
		msg_mem(&s, NEED, FDS(1, kinds[i]), &whole, 1);
		msg_file(&s, VU_SET_VRING_KICK, 0, 0, kinds[i]);
		msg_file(&s, VU_SET_VRING_CALL, 0, 1, kinds[i]);
		msg_file(&s, VU_SET_VRING_ERR, 0, 1, FDS(3, kinds[i]));
		msg_u64(&s, VU_SET_LOG_FD, 0, 0);
		msg(&s, VU_SET_OWNER, 0, FDS(8, kinds[i]), NULL, 0);
		snprintf(name, sizeof name, "bad-fd-kind-%u-everywhere",
		         kinds[i]);
		save(&s, name);
	}
}

/* --- gen-corpus-vu --console DIR: seeds for fuzz_console ------------------
 * The message sequence QEMU 11.1 sent chanfs's console device
 * (vhost-user-test-device-pci, two ports: 6 queues, 12 config bytes),
 * then a Linux-like driver on the control queues and the ports, and the
 * hostile control messages the device must shrug off.  Rings are laid out
 * tighter than above: six queues fit the 64 KiB of guest memory. */
#define CNQ 6
#define CDESC(q) (0x1000ULL + 0x400ULL * (q))
#define CAVAIL(q) (CDESC(q) + 0x100)
#define CUSED(q) (CDESC(q) + 0x200)
#define CDATA(q, n) (0x4000ULL + 0x800ULL * (q) + 0x100ULL * ((n) % QSIZE))
#define CON_HOST 0xf6
#define CON_MULTIPORT VBIT(1)

static void con_init(struct seed *s)
{
	unsigned q;

	msg0(s, VU_GET_FEATURES);
	msg0(s, VU_GET_PROTOCOL_FEATURES);
	msg_u64(s, VU_SET_PROTOCOL_FEATURES, 0, VU_PROTOCOL_FEATURES);
	msg0(s, VU_GET_QUEUE_NUM);
	msg0(s, VU_SET_OWNER);
	msg0(s, VU_GET_FEATURES);
	for (q = 0; q < CNQ; q++) {
		msg_file(s, VU_SET_VRING_CALL, 0, q, EV);
		msg_file(s, VU_SET_VRING_ERR, 0, q, EV);
	}
	{
		uint8_t p[12 + 12] = { 0 };
		struct vu_config_hdr h = { 0, 12, 0 };

		memcpy(p, &h, sizeof h);
		msg(s, VU_GET_CONFIG, 0, 0, p, sizeof p);
	}
}

static void con_start(struct seed *s, uint64_t features)
{
	unsigned q;

	msg_u64(s, VU_SET_FEATURES, 0, features);
	msg_mem(s, NEED, FDS(1, MEMFD), &whole, 1);
	for (q = 0; q < CNQ; q++) {
		msg_state(s, VU_SET_VRING_NUM, 0, q, QSIZE);
		msg_state(s, VU_SET_VRING_BASE, 0, q, 0);
		msg_addr(s, 0, q, FUZZ_VU_UVA + CDESC(q),
		         FUZZ_VU_UVA + CUSED(q), FUZZ_VU_UVA + CAVAIL(q));
		msg_file(s, VU_SET_VRING_KICK, 0, q, EV);
		msg_file(s, VU_SET_VRING_CALL, 0, q, EV);
	}
	for (q = 0; q < CNQ && has_pf(features); q++)
		msg_state(s, VU_SET_VRING_ENABLE, 0, q, 1);
}

/* Buffer n of queue q: writable (receive queues 0, 2, 4) or readable
 * with bytes p (transmit queues 1, 3, 5). */
static void con_post(struct seed *s, unsigned q, uint16_t n, const void *p,
                     uint16_t len)
{
	bool rx = q % 2 == 0;
	struct vring_desc d = {
		.addr = CDATA(q, n),
		.len = rx ? 0x100 : len,
		.flags = rx ? VRING_DESC_F_WRITE : 0,
	};
	uint16_t head = n % QSIZE, idx = n + 1;

	if (!rx)
		poke(s, CDATA(q, n), p, len);
	poke(s, CDESC(q) + 16 * head, &d, sizeof d);
	poke(s, CAVAIL(q) + 4 + 2 * head, &head, 2);
	poke(s, CAVAIL(q) + 2, &idx, 2);
}

/* A control message from the driver (queue 3), slot n. */
static void con_ctl(struct seed *s, uint16_t n, uint32_t id, uint16_t event,
                    uint16_t value)
{
	uint8_t m[8];

	memcpy(m, &id, 4);
	memcpy(m + 4, &event, 2);
	memcpy(m + 6, &value, 2);
	con_post(s, 3, n, m, sizeof m);
}

static void con_host(struct seed *s, uint8_t op, uint8_t port, uint8_t n)
{
	uint8_t p[3] = { op, port, n };

	msg(s, CON_HOST, 0, 0, p, sizeof p);
}

/* The driver's side of the handshake and some data both ways. */
static void con_traffic(struct seed *s)
{
	uint16_t i;

	for (i = 0; i < 4; i++)
		con_post(s, 2, i, NULL, 0);
	con_ctl(s, 0, 0xffffffff, 0, 1);            /* DEVICE_READY */
	kick(s);
	con_post(s, 0, 0, NULL, 0);
	con_post(s, 4, 0, NULL, 0);
	con_ctl(s, 1, 0, 3, 1);                     /* PORT_READY 0 */
	con_ctl(s, 2, 1, 3, 1);                     /* PORT_READY 1 */
	con_host(s, 0, 1, 0);                       /* host opens b */
	kick(s);
	con_ctl(s, 3, 1, 6, 1);                     /* PORT_OPEN 1 */
	con_post(s, 5, 0, "guest to host", 13);
	con_host(s, 2, 1, 2);                       /* host writes 128 */
	kick(s);
	con_host(s, 3, 1, 1);                       /* host reads */
	con_ctl(s, 4, 1, 6, 0);                     /* PORT_OPEN 0 */
	con_host(s, 1, 1, 0);
	kick(s);
}

static void con_seeds(void)
{
	static struct seed s;
	uint64_t f = ACKED | CON_MULTIPORT;

	memset(&s, 0, sizeof s);
	con_init(&s);
	save(&s, "ok-qemu-111-console-init");

	memset(&s, 0, sizeof s);
	con_init(&s);
	con_start(&s, f | VBIT(VIRTIO_F_IN_ORDER_BIT));
	con_traffic(&s);
	qemu_stop(&s, f);
	save(&s, "ok-console-handshake-data-in-order");

	memset(&s, 0, sizeof s);
	con_start(&s, f);
	con_traffic(&s);
	save(&s, "ok-console-handshake-data");

	memset(&s, 0, sizeof s);
	con_start(&s, ACKED);
	con_post(&s, 0, 0, NULL, 0);
	con_post(&s, 1, 0, "single port", 11);
	con_host(&s, 0, 0, 0);
	con_host(&s, 2, 0, 1);
	kick(&s);
	con_host(&s, 3, 0, 1);
	save(&s, "ok-console-single-port");

	/* Hostile: short, for no port, a device's event, unknown, again. */
	memset(&s, 0, sizeof s);
	con_start(&s, f);
	con_post(&s, 2, 0, NULL, 0);
	con_post(&s, 3, 0, "abc", 3);
	con_ctl(&s, 1, 7, 6, 1);
	con_ctl(&s, 2, 0, 1, 1);
	con_ctl(&s, 3, 0, 99, 0);
	con_ctl(&s, 4, 0xffffffff, 0, 1);
	con_ctl(&s, 5, 0xffffffff, 0, 1);
	con_ctl(&s, 6, 1, 6, 1);
	kick(&s);
	save(&s, "bad-console-control-messages");
}

int main(int argc, char **argv)
{
	static struct seed s;

	if (argc == 3 && !strcmp(argv[1], "--device")) {
		out_dir = argv[2];
		dev_seeds();
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--console")) {
		out_dir = argv[2];
		con_seeds();
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: gen-corpus-vu [--device|--console] "
		        "DIR\n");
		return 2;
	}
	out_dir = argv[1];

	memset(&s, 0, sizeof s);
	qemu_init(&s);
	save(&s, "ok-qemu-72-init");

	memset(&s, 0, sizeof s);
	ok_traffic(&s, ACKED);
	save(&s, "ok-qemu-72-start-traffic-stop-restart");

	memset(&s, 0, sizeof s);
	ok_traffic(&s, ACKED | VBIT(VIRTIO_F_IN_ORDER_BIT));
	save(&s, "ok-in-order");

	memset(&s, 0, sizeof s);
	ok_traffic(&s, VBIT(VIRTIO_F_VERSION_1_BIT));
	save(&s, "ok-no-protocol-features");

	bad("bad-payload-size", false, bad_size);
	bad("bad-fds-on-set-owner", false, bad_fds);
	bad("bad-mem-table-fd-count", false, bad_mem_fd_count);
	bad("bad-mem-table-overlap", false, bad_mem_overlap);
	bad("bad-mem-table-fd-too-small", false, bad_mem_fd_too_small);
	bad("bad-mem-table-not-memory", false, bad_mem_not_memory);
	bad("bad-mem-table-nine-regions", false, bad_mem_nine_regions);
	bad("bad-queue-index", false, bad_queue_index);
	bad("bad-queue-size", false, bad_queue_size);
	bad("bad-ring-outside-memory", false, bad_ring_outside);
	bad("bad-unknown-request", false, bad_unknown);
	bad("bad-version", false, bad_version);
	bad("bad-oversize-payload", false, bad_oversize);
	bad("bad-config-access", false, bad_set_config);
	bad("bad-kick-nofd-and-eof", false, bad_kick);
	bad("bad-changes-while-running", true, bad_running);
	bad("bad-features", false, bad_features);
	return 0;
}
