/*
 * vhost-user framing: validate a message against its request's layout,
 * trace it, run its handler (vu_req.c) and answer it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chanfs/log.h"
#include "vu_priv.h"

static bool vu_reply_ack(const struct vu *vu)
{
	return vu->protocol_features & (1ULL << VU_PROTOCOL_F_REPLY_ACK);
}

/* --- framing, validation, dispatch ------------------------------------ */

int vu_msg_check_header(const struct vu_msg *m)
{
	const char *name = vu_request_name(m->request);
	char num[24];

	if (!name) {
		snprintf(num, sizeof num, "request %u", m->request);
		name = num;
	}
	if ((m->flags & 0x3) != VU_VERSION ||
	    (m->flags & ~(uint32_t)(0x3 | VU_FLAG_NEED_REPLY))) {
		log_warnx("vu: %s: bad header flags 0x%x (version 1 expected)",
		          name, m->flags);
		return -EPROTO;
	}
	if (m->size > VU_MAX_PAYLOAD) {
		log_warnx("vu: %s: payload of %u bytes (at most %u)", name,
		          m->size, VU_MAX_PAYLOAD);
		return -EPROTO;
	}
	return 0;
}

/* Payload size and fd count for the layout; one log line on mismatch. */
static int vu_msg_check_layout(const struct vu_req *req,
                               const struct vu_msg *m, unsigned nfds)
{
	uint32_t want = 0;
	unsigned want_fds = 0;
	uint32_t n32;

	switch (req->pl) {
	case VU_PL_NONE:
		want = 0;
		break;
	case VU_PL_U64:
	case VU_PL_FILE:
		want = 8;
		break;
	case VU_PL_STATE:
		want = sizeof(struct vu_vring_state);
		break;
	case VU_PL_ADDR:
		want = sizeof(struct vu_vring_addr);
		break;
	case VU_PL_MEM:
		if (m->size < 8) {
			want = 8;
			break;
		}
		memcpy(&n32, m->payload, sizeof n32);
		if (n32 == 0 || n32 > GMEM_MAX_REGIONS) {
			log_warnx("vu: %s: %u regions (1..%u allowed)",
			          req->name, n32, GMEM_MAX_REGIONS);
			return -EINVAL;
		}
		want = 8 + n32 * (uint32_t)sizeof(struct vu_mem_region);
		want_fds = n32;
		break;
	case VU_PL_CONFIG:
		if (m->size < sizeof(struct vu_config_hdr)) {
			want = sizeof(struct vu_config_hdr);
			break;
		}
		memcpy(&n32, m->payload + 4, sizeof n32);
		if (n32 > VU_MAX_CONFIG) {
			log_warnx("vu: %s: config size %u (at most %u)",
			          req->name, n32, VU_MAX_CONFIG);
			return -EINVAL;
		}
		want = (uint32_t)sizeof(struct vu_config_hdr) + n32;
		break;
	}
	if (m->size != want) {
		log_warnx("vu: %s: payload of %u bytes (%u expected)",
		          req->name, m->size, want);
		return -EINVAL;
	}
	if (req->pl == VU_PL_FILE)
		want_fds = (vu_msg_u64(m) & VU_VRING_NOFD) ? 0 : 1;
	if (nfds != want_fds) {
		log_warnx("vu: %s: %u fds attached (%u expected)", req->name,
		          nfds, want_fds);
		return -EINVAL;
	}
	return 0;
}

/* Classify every fd before any other call is made on it (vu.h, "Peer
 * fds"); one on chanfs's own mount refuses the message. */
static int vu_msg_classify_fds(struct vu *vu, const struct vu_req *req,
                               struct vu_msg *m, unsigned nfds)
{
	char link[256];
	unsigned i;

	for (i = 0; i < nfds; i++) {
		m->fd_kind[i] = (uint8_t)vu_fd_classify(m->fds[i], link,
		                                        sizeof link);
		log_debug("vu:    fd %u: %s (%s)", i,
		          vu_fd_kind_name((enum vu_fd_kind)m->fd_kind[i]),
		          link);
		if (m->fd_kind[i] == VU_FD_OTHER && vu_fd_on_mount(vu, link)) {
			log_warnx("vu: %s: fd %u is on chanfs's own mount "
			          "(%s): refused", req->name, i, link);
			return -EINVAL;
		}
	}
	return 0;
}

static void vu_msg_trace(const struct vu_req *req, const struct vu_msg *m)
{
	struct vu_vring_state s;
	struct vu_vring_addr a;
	struct vu_config_hdr h;
	uint64_t v;
	uint32_t n;

	if (!log_debug_enabled())
		return;
	switch (req->pl) {
	case VU_PL_U64:
		v = vu_msg_u64(m);
		log_debug("vu: <- %s 0x%" PRIx64, req->name, v);
		break;
	case VU_PL_FILE:
		v = vu_msg_u64(m);
		log_debug("vu: <- %s q%" PRIu64 " %s", req->name,
		          v & VU_VRING_IDX_MASK,
		          (v & VU_VRING_NOFD) ? "nofd" : "fd");
		break;
	case VU_PL_STATE:
		s = vu_msg_state(m);
		log_debug("vu: <- %s q%u %s %u", req->name, s.index, req->num,
		          s.num);
		break;
	case VU_PL_ADDR:
		memcpy(&a, m->payload, sizeof a);
		log_debug("vu: <- %s q%u flags 0x%x desc 0x%" PRIx64 " used 0x%"
		          PRIx64 " avail 0x%" PRIx64, req->name, a.index,
		          a.flags, a.desc, a.used, a.avail);
		break;
	case VU_PL_MEM:
		memcpy(&n, m->payload, sizeof n);
		log_debug("vu: <- %s %u regions", req->name, n);
		break;
	case VU_PL_CONFIG:
		memcpy(&h, m->payload, sizeof h);
		log_debug("vu: <- %s off %u len %u flags 0x%x", req->name,
		          h.offset, h.size, h.flags);
		break;
	case VU_PL_NONE:
		log_debug("vu: <- %s", req->name);
		break;
	}
}

static void vu_reply_trace(const struct vu_req *req,
                           const struct vu_reply *rep)
{
	struct vu_config_hdr h;
	uint64_t v;

	if (!log_debug_enabled())
		return;
	if (req->pl == VU_PL_CONFIG && rep->size >= sizeof h) {
		memcpy(&h, rep->payload, sizeof h);
		log_debug("vu: -> %s off %u len %u", req->name, h.offset,
		          h.size);
	} else if (req->pl == VU_PL_STATE && rep->size == 8) {
		struct vu_vring_state s;

		memcpy(&s, rep->payload, sizeof s);
		log_debug("vu: -> %s q%u num %u", req->name, s.index, s.num);
	} else if (rep->size == 8) {
		memcpy(&v, rep->payload, sizeof v);
		log_debug("vu: -> %s 0x%" PRIx64, req->name, v);
	} else {
		log_debug("vu: -> %s (%u bytes)", req->name, rep->size);
	}
}

/* Send a reply; failing to is fatal for the connection. */
static int vu_send(int fd, uint32_t request, const struct vu_reply *rep)
{
	uint32_t hdr[3] = { request, VU_VERSION | VU_FLAG_REPLY, rep->size };
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof hdr },
		{ .iov_base = (void *)rep->payload, .iov_len = rep->size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	ssize_t n;

	if (fd < 0)
		return 0;
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(sizeof hdr + rep->size)) {
		/* Replies are small and the front-end waits for each one, so
		 * a full socket buffer means it is not reading at all. */
		if (n < 0)
			log_warn("vu: %s: cannot send reply",
			         vu_request_name(request));
		else
			log_warnx("vu: %s: reply cut short",
			          vu_request_name(request));
		return -EIO;
	}
	return 0;
}

int vu_msg_dispatch(struct vu *vu, int fd, struct vu_msg *m,
                    unsigned dropped_fds)
{
	const struct vu_req *req = NULL;
	struct vu_reply rep = { .size = 0 };
	unsigned i, nfds = m->nfds;
	bool need_reply = m->flags & VU_FLAG_NEED_REPLY;
	int r;

	if (nfds > 8) {
		/* Only a caller of vu_handle_msg can get here. */
		dropped_fds += nfds - 8;
		nfds = m->nfds = 8;
	}
	for (i = 0; i < 8; i++)
		m->fd_kind[i] = VU_FD_UNKNOWN;
	if ((r = vu_msg_check_header(m)) < 0)
		goto out;
	if (m->request < VU_REQUEST_MAX && vu_reqs[m->request].name)
		req = &vu_reqs[m->request];
	if (!req) {
		log_warnx("vu: unknown request %u", m->request);
		r = -EINVAL;
		goto fail;
	}
	if ((r = vu_msg_classify_fds(vu, req, m, nfds)) < 0)
		goto fail;
	if (!req->fn) {
		log_warnx("vu: %s: not supported", req->name);
		r = -ENOTSUP;
		goto fail;
	}
	if ((r = vu_msg_check_layout(req, m, nfds + dropped_fds)) < 0) {
		if (req->pl == VU_PL_CONFIG && req->replies)
			goto reply;
		goto fail;
	}
	vu_msg_trace(req, m);
	if ((r = req->fn(vu, m, &rep)) < 0)
		goto fail;
	if (req->replies)
		goto reply;
	if (need_reply && vu_reply_ack(vu)) {
		vu_reply_u64(&rep, 0);
		r = vu_send(fd, m->request, &rep);
	}
	goto out;

reply:
	/* Only GET_CONFIG reaches here after an error: it has an error form
	 * (the empty payload) and the connection stays. */
	vu_reply_trace(req, &rep);
	r = vu_send(fd, m->request, &rep);
	goto out;

fail:
	/* A request with its own reply has no error form: the front-end
	 * would wait for an answer we cannot give. */
	if (need_reply && vu_reply_ack(vu) && !(req && req->replies)) {
		vu_reply_u64(&rep, 1);
		r = vu_send(fd, m->request, &rep);
	}
out:
	for (i = 0; i < nfds; i++) {
		vu_fd_close(vu, m->fds[i], (enum vu_fd_kind)m->fd_kind[i]);
		m->fds[i] = -1;
	}
	m->nfds = 0;
	return r;
}

int vu_handle_msg(struct vu *vu, int fd, struct vu_msg *msg)
{
	return vu_msg_dispatch(vu, fd, msg, 0);
}
