/*
 * vmm_msg.c — the front-end's side of the vhost-user wire: messages with
 * SCM_RIGHTS fds out, replies in, with timeouts (the back-end may be dead
 * or hostile tests may have made it drop us).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chanfs/vu.h"
#include "vmm_priv.h"

const char *vmm_req_name(uint32_t request)
{
	const char *n = vu_request_name(request);

	return n ? n : "request";
}

int vmm_sock(const struct vmm *v)
{
	return v->sock;
}

int vmm_send_bytes(struct vmm *v, const void *buf, size_t len,
                   const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 16)];
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	size_t done = 0;
	ssize_t n;

	if (nfds < 0 || nfds > 16)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	/* fds go with the first chunk; the rest is plain stream data */
	while (done < len || (done == 0 && len == 0 && nfds > 0)) {
		iov.iov_base = (uint8_t *)buf + done;
		iov.iov_len = len - done;
		n = sendmsg(v->sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += n;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		if (len == 0)
			break;
	}
	return 0;
}

int vmm_send_msg(struct vmm *v, uint32_t request, uint32_t flags,
                 const void *payload, uint32_t size, const int *fds,
                 int nfds)
{
	uint8_t buf[VU_HDR_SIZE + VU_MAX_PAYLOAD * 2];
	uint32_t hdr[3] = { request, flags, size };

	if (size > sizeof(buf) - VU_HDR_SIZE)
		return -EMSGSIZE;
	memcpy(buf, hdr, VU_HDR_SIZE);
	if (size)
		memcpy(buf + VU_HDR_SIZE, payload, size);
	if (v->o.verbose)
		fprintf(stderr, "vmm: -> %s (%u) flags 0x%x size %u fds %d\n",
		        vmm_req_name(request), request, flags, size, nfds);
	return vmm_send_bytes(v, buf, VU_HDR_SIZE + size, fds, nfds);
}

static int64_t vmm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read exactly len bytes before the deadline (any fds are closed: the
 * back-end has no business sending us any).  0, -ETIMEDOUT, -ECONNRESET. */
static int vmm_read_full(struct vmm *v, void *buf, size_t len,
                         int64_t deadline)
{
	size_t got = 0;

	while (got < len) {
		char cbuf[CMSG_SPACE(sizeof(int) * 8)];
		struct iovec iov = { (uint8_t *)buf + got, len - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
		                     .msg_control = cbuf,
		                     .msg_controllen = sizeof(cbuf) };
		struct pollfd p = { .fd = v->sock, .events = POLLIN };
		struct cmsghdr *c;
		int64_t left = deadline - vmm_now_ms();
		ssize_t n;
		int r;

		if (left < 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		n = recvmsg(v->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			int *fd = (int *)CMSG_DATA(c);
			size_t i, k;

			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (i = 0; i < k; i++)
				close(fd[i]);
		}
		if (n == 0)
			return -ECONNRESET;
		got += n;
	}
	return 0;
}

int vmm_recv_reply(struct vmm *v, uint32_t request, void *payload,
                   uint32_t max)
{
	int64_t deadline = vmm_now_ms() + v->o.timeout_ms;
	uint8_t buf[VU_MAX_PAYLOAD];
	uint32_t hdr[3];
	int r;

	r = vmm_read_full(v, hdr, sizeof(hdr), deadline);
	if (r < 0)
		return r;
	if (v->o.verbose)
		fprintf(stderr, "vmm: <- %s (%u) flags 0x%x size %u\n",
		        vmm_req_name(hdr[0]), hdr[0], hdr[1], hdr[2]);
	if (hdr[0] != request || !(hdr[1] & VU_FLAG_REPLY) ||
	    (hdr[1] & 3) != VU_VERSION || hdr[2] > sizeof(buf)) {
		fprintf(stderr, "vmm: reply to %s: bad header (request %u, "
		        "flags 0x%x, size %u)\n", vmm_req_name(request),
		        hdr[0], hdr[1], hdr[2]);
		return -EPROTO;
	}
	r = vmm_read_full(v, buf, hdr[2], deadline);
	if (r < 0)
		return r;
	memcpy(payload, buf, hdr[2] < max ? hdr[2] : max);
	return (int)hdr[2];
}

int vmm_wait_closed(struct vmm *v, int timeout_ms)
{
	int64_t deadline = vmm_now_ms() + timeout_ms;
	uint8_t buf[256];

	for (;;) {
		struct pollfd p = { .fd = v->sock, .events = POLLIN };
		int64_t left = deadline - vmm_now_ms();
		ssize_t n;

		if (left < 0)
			return 0;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = recv(v->sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
	}
}

/* The ack of a NEED_REPLY message: u64 0 is success. */
static int vmm_msg_ack(struct vmm *v, uint32_t request)
{
	uint64_t ack;
	int r = vmm_recv_reply(v, request, &ack, sizeof(ack));

	if (r < 0)
		return r;
	if (r != sizeof(ack)) {
		fprintf(stderr, "vmm: %s: ack of size %d\n",
		        vmm_req_name(request), r);
		return -EPROTO;
	}
	if (ack) {
		fprintf(stderr, "vmm: %s: back-end acked failure %llu\n",
		        vmm_req_name(request), (unsigned long long)ack);
		return -EREMOTEIO;
	}
	return 0;
}

int vmm_msg_set(struct vmm *v, uint32_t request, const void *payload,
                uint32_t size, const int *fds, int nfds)
{
	bool ack = (v->o.need_reply || request == VU_SET_MEM_TABLE) &&
	           (v->proto & (1ULL << VU_PROTOCOL_F_REPLY_ACK));
	uint32_t flags = VU_VERSION | (ack ? VU_FLAG_NEED_REPLY : 0);
	int r;

	r = vmm_send_msg(v, request, flags, payload, size, fds, nfds);
	if (r < 0)
		return r;
	return ack ? vmm_msg_ack(v, request) : 0;
}

int vmm_msg_set_u64(struct vmm *v, uint32_t request, uint64_t val,
                    const int *fds, int nfds)
{
	return vmm_msg_set(v, request, &val, sizeof(val), fds, nfds);
}

int vmm_msg_set_state(struct vmm *v, uint32_t request, uint32_t index,
                      uint32_t num)
{
	struct vu_vring_state s = { .index = index, .num = num };

	return vmm_msg_set(v, request, &s, sizeof(s), NULL, 0);
}

int vmm_msg_get(struct vmm *v, uint32_t request, const void *payload,
                uint32_t psize, void *reply, uint32_t size)
{
	int r;

	r = vmm_send_msg(v, request, VU_VERSION, payload, psize, NULL, 0);
	if (r < 0)
		return r;
	r = vmm_recv_reply(v, request, reply, size);
	if (r < 0)
		return r;
	if ((uint32_t)r != size) {
		fprintf(stderr, "vmm: %s: reply of %d bytes, expected %u\n",
		        vmm_req_name(request), r, size);
		return -EPROTO;
	}
	return 0;
}
