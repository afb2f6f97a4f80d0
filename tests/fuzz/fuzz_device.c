/*
 * fuzz_device — the whole device behind its real socket: a hostile
 * front-end and a hostile guest (and a busy host) in one input.
 *
 * Per input: a loop, the real vsock device, vu_new listening on a socket
 * in a private directory, and a client connected to it.  The records are
 * fuzz_vu's (fuzz_vu.h: request, flags, fds, le16 size, payload; POKE and
 * KICK act on guest memory and the eventfds handed over), but each message
 * goes through the socket: framed by the harness, sent in pieces (SPLIT)
 * with a loop turn after each piece, its fds on the first or last piece;
 * RAW sends bytes as they are (joined or broken framing).  The fds byte
 * names eight kinds of fd here (FUZZ_VU_FD_*).  A connection the
 * server dropped is reconnected before the next record, as a new VMM.
 *
 * Whatever the input: every reply is well formed, the server never waits
 * on the client (libFuzzer's timeout), and once the client is gone and the
 * device freed no fd is left open and no channel is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "chanfs/chan.h"
#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/vsock.h"
#include "chanfs/vu.h"
#include "fuzz_vu.h"

#define CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "fuzz_device: %s:%d: check failed: %s\n", \
		        __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

/* Actions beyond fuzz_vu's POKE and KICK (byte 0 of a record). */
#define FUZZ_DEVICE_SPLIT     0xf2  /* payload[0]: piece size (0: whole) */
#define FUZZ_DEVICE_RAW       0xf3  /* payload sent as is, with the fds */
#define FUZZ_DEVICE_TURN      0xf4  /* payload[0] % 8 + 1 loop turns */
#define FUZZ_DEVICE_RECONNECT 0xf5  /* close the client, connect again */
#define FUZZ_DEVICE_HOST      0xf6  /* a host-side channel operation */
#define FUZZ_DEVICE_SHUT      0xf7  /* shutdown(SHUT_WR) of the client */

/* fds byte: bits 4-6 the kind (FUZZ_VU_FD_*), bit 7 "on the last
 * piece". */
#define FUZZ_DEVICE_FDS_LAST  0x80

#define CID 3
#define MAX_CHANS 8
#define MAX_TURNS 64

struct env {
	char dir[64], path[96];
	int memfd, pagefd;      /* copied into each run's fds */
	uint8_t *mem;
};

struct run {
	struct env *env;
	struct loop *loop;
	struct chan_set chans;
	struct vsock *v;
	struct vu *vu;
	int cl;                    /* the client (front-end) socket */
	unsigned split;
	struct fuzz_vu_fds fds;
	struct chan *ch[MAX_CHANS];
};

static struct env *env;

static void env_cleanup(void)
{
	if (!env)
		return;
	unlink(env->path);
	rmdir(env->dir);
}

static struct env *env_get(void)
{
	struct env *e;

	if (env)
		return env;
	e = calloc(1, sizeof *e);
	CHECK(e);
	log_init("fuzz_device", getenv("FUZZ_DEVICE_DEBUG") != NULL);
	strcpy(e->dir, "/tmp/fuzz-device.XXXXXX");
	CHECK(mkdtemp(e->dir));
	snprintf(e->path, sizeof e->path, "%s/vu.sock", e->dir);
	e->mem = fuzz_vu_guest_memory(&e->memfd, &e->pagefd);
	env = e;
	atexit(env_cleanup);
	return e;
}

static void turns(struct run *r, unsigned n)
{
	while (n--)
		CHECK(loop_turn(r->loop, false) >= 0);
}

static void client_connect(struct run *r)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	strcpy(sa.sun_path, r->env->path);
	r->cl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(r->cl >= 0);
	CHECK(connect(r->cl, (struct sockaddr *)&sa, sizeof sa) == 0);
	CHECK(fcntl(r->cl, F_SETFL, O_NONBLOCK) == 0);
	turns(r, 1);    /* the accept */
}

/* Read whatever the server sent; every reply must be well formed. */
static void client_replies(struct run *r)
{
	static uint8_t buf[VU_HDR_SIZE + VU_MAX_PAYLOAD];
	uint32_t hdr[3];
	ssize_t got;

	if (r->cl < 0)
		return;
	for (;;) {
		got = recv(r->cl, hdr, sizeof hdr, MSG_DONTWAIT | MSG_PEEK);
		if (got < (ssize_t)sizeof hdr)
			return;   /* nothing, EOF, or the rest still coming */
		CHECK(hdr[1] == (VU_VERSION | VU_FLAG_REPLY));
		CHECK(hdr[2] <= VU_MAX_PAYLOAD);
		got = recv(r->cl, buf, sizeof hdr + hdr[2], MSG_DONTWAIT |
		           MSG_PEEK);
		if (got < (ssize_t)(sizeof hdr + hdr[2]))
			return;
		CHECK(recv(r->cl, buf, sizeof hdr + hdr[2], MSG_DONTWAIT) ==
		      (ssize_t)(sizeof hdr + hdr[2]));
	}
}

static void client_close(struct run *r)
{
	if (r->cl >= 0)
		close(r->cl);
	r->cl = -1;
	turns(r, 2);    /* the server sees EOF and resets */
	fuzz_vu_close_kickers(&r->fds);
}

/* Send len bytes with nfds fds of one kind; false when the server has
 * dropped the connection. */
static bool client_send(struct run *r, const uint8_t *buf, size_t len,
                        const int *fds, unsigned nfds)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(8 * sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	unsigned tries = 0;
	ssize_t n;

	if (len == 0)
		return true;
	if (nfds) {
		memset(&u, 0, sizeof u);
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		u.h.cmsg_level = SOL_SOCKET;
		u.h.cmsg_type = SCM_RIGHTS;
		u.h.cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(&u.h), fds, nfds * sizeof(int));
	}
	while (iov.iov_len > 0) {
		n = sendmsg(r->cl, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN && tries++ < MAX_TURNS) {
			/* The server reads when the loop turns. */
			turns(r, 1);
			client_replies(r);
			continue;
		}
		if (n < 0)
			return false;
		iov.iov_base = (uint8_t *)iov.iov_base + n;
		iov.iov_len -= (size_t)n;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
	}
	return true;
}

/* Send buf in pieces of r->split bytes, a loop turn after each, the fds
 * on the first or the last piece. */
static bool client_send_split(struct run *r, const uint8_t *buf, size_t len,
                              const int *fds, unsigned nfds, bool fds_last)
{
	size_t piece = r->split ? r->split : len, off = 0;

	while (off < len) {
		size_t n = len - off < piece ? len - off : piece;
		bool last = off + n == len, with = fds_last ? last : off == 0;

		if (!client_send(r, buf + off, n, with ? fds : NULL,
		                 with ? nfds : 0))
			return false;
		off += n;
		turns(r, 1);
		client_replies(r);
	}
	return true;
}

static uint32_t le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* payload: op, slot, le32 port, then data. */
static void host(struct run *r, const uint8_t *p, size_t len)
{
	static uint8_t buf[4096];
	struct chan **c;
	uint32_t port;

	if (len < 6)
		return;
	c = &r->ch[p[1] % MAX_CHANS];
	port = le32(p + 2);
	switch (p[0] % 6) {
	case 0:
		vsock_listen(r->v, port);
		break;
	case 1:
		if (!*c && vsock_connect(r->v, port, c) < 0)
			*c = NULL;
		break;
	case 2:
		if (!*c && vsock_accept(r->v, port, c) < 0)
			*c = NULL;
		break;
	case 3:
		if (*c)
			(void)chan_write(*c, p + 6, len - 6);
		break;
	case 4:
		if (*c)
			(void)chan_read(*c, buf, port % sizeof buf + 1);
		break;
	default:
		if (*c) {
			chan_close(*c);
			*c = NULL;
		}
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t msg[VU_HDR_SIZE + VU_MAX_PAYLOAD];
	struct vsock_config cfg = {
		.guest_cid = CID,
		.buf_size = 4096,
		.connect_timeout_ms = 60000,
		.close_timeout_ms = 60000,
		.backlog = 2,
	};
	struct run r;
	size_t pos = 0;
	unsigned i;
	int baseline;

	memset(&r, 0, sizeof r);
	r.env = env_get();
	/* Counted per input: libFuzzer opens fds between inputs. */
	baseline = fuzz_count_fds();
	r.fds.memfd = r.env->memfd;
	r.fds.pagefd = r.env->pagefd;
	memset(r.env->mem, 0, FUZZ_VU_MEM);
	r.loop = loop_new();
	CHECK(r.loop);
	chan_set_init(&r.chans);
	r.v = vsock_new(r.loop, &cfg, &r.chans);
	CHECK(r.v);
	r.vu = vu_new(r.loop, r.env->path, vsock_vu_device(), r.v);
	CHECK(r.vu);
	client_connect(&r);

	while (size - pos >= FUZZ_VU_HDR) {
		const uint8_t *h = data + pos;
		uint32_t msize = h[3] | (uint32_t)h[4] << 8, flags;
		size_t take = msize;
		unsigned nfds = h[2] & 0xf;
		int fds[8];
		bool ok = true;

		pos += FUZZ_VU_HDR;
		if (take > VU_MAX_PAYLOAD)
			take = VU_MAX_PAYLOAD;
		if (take > size - pos)
			take = size - pos;
		if (r.cl < 0)
			client_connect(&r);
		switch (h[0]) {
		case FUZZ_VU_POKE:
			fuzz_vu_poke(r.env->mem, data + pos, take);
			break;
		case FUZZ_VU_KICK:
			fuzz_vu_kick_all(&r.fds);
			turns(&r, 1);
			break;
		case FUZZ_DEVICE_SPLIT:
			r.split = take ? data[pos] : 0;
			break;
		case FUZZ_DEVICE_TURN:
			turns(&r, (take ? data[pos] % 8 : 0) + 1);
			break;
		case FUZZ_DEVICE_RECONNECT:
			client_close(&r);
			break;
		case FUZZ_DEVICE_HOST:
			host(&r, data + pos, take);
			turns(&r, 1);
			break;
		case FUZZ_DEVICE_SHUT:
			shutdown(r.cl, SHUT_WR);
			turns(&r, 2);
			client_close(&r);
			break;
		default:
			if (nfds > 8)
				nfds = 8;
			for (i = 0; i < nfds; i++)
				fds[i] = fuzz_vu_make_fd(&r.fds,
				                         (h[2] >> 4) & 7);
			if (h[0] == FUZZ_DEVICE_RAW) {
				ok = client_send_split(&r, data + pos, take, fds,
				                       nfds, h[2] & FUZZ_DEVICE_FDS_LAST);
			} else {
				/* fuzz_vu's header rules, framed here. */
				uint32_t req = h[0];

				if ((h[1] & 0xf0) == 0xf0)
					flags = h[1] & 0xf;
				else
					flags = VU_VERSION |
					        ((h[1] & 1) ? VU_FLAG_NEED_REPLY
					                    : 0);
				memcpy(msg, &req, 4);
				memcpy(msg + 4, &flags, 4);
				memcpy(msg + 8, &msize, 4);
				memcpy(msg + VU_HDR_SIZE, data + pos, take);
				ok = client_send_split(&r, msg,
				                       VU_HDR_SIZE + take, fds,
				                       nfds, h[2] & FUZZ_DEVICE_FDS_LAST);
			}
			/* Ours closed; the server has its own copies. */
			for (i = 0; i < nfds; i++)
				close(fds[i]);
			break;
		}
		pos += take;
		client_replies(&r);
		if (!ok)
			client_close(&r);
	}

	client_close(&r);
	for (i = 0; i < MAX_CHANS; i++)
		if (r.ch[i])
			chan_close(r.ch[i]);
	turns(&r, 2);
	vu_free(r.vu);
	vsock_free(r.v);
	turns(&r, 1);
	CHECK(r.chans.count == 0);
	loop_free(r.loop);
	CHECK(fuzz_count_fds_settled(baseline) == baseline);
	return 0;
}
