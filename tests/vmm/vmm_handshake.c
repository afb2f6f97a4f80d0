/*
 * vmm_handshake.c — the front-end's handshake in QEMU 7.2's order, as a
 * list of steps that can be run all at once, a few at a time (tests that
 * disconnect half-way) or up to a given message (tests that then send a
 * hostile one).  The order and where it comes from are in vmm.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "chanfs/virtio.h"
#include "chanfs/vu.h"
#include "vmm_priv.h"

/* --- the handshake ---------------------------------------------------- */

enum vmm_step_kind {
	VS_GET_FEATURES,
	VS_GET_PROTOCOL_FEATURES,
	VS_SET_PROTOCOL_FEATURES,
	VS_GET_QUEUE_NUM,
	VS_SET_OWNER,
	VS_GET_FEATURES_AGAIN,   /* vhost_dev_init asks again */
	VS_INIT_CALL,            /* per queue: the masked notifier, */
	VS_INIT_ERR,             /* then the error notifier */
	VS_GET_CONFIG,
	VS_UNMASK_CALL,          /* per queue: virtio-pci unmasks vectors */
	VS_SET_FEATURES,
	VS_SET_MEM_TABLE,
	VS_VRING_NUM,            /* NUM, BASE, ADDR, KICK are per queue */
	VS_VRING_BASE,
	VS_VRING_ADDR,
	VS_VRING_KICK,
	VS_VRING_ENABLE,         /* per queue */
	VS_START_CALL,           /* per queue: vhost_virtqueue_mask(false) */
	VS_DONE,
};

/* Step i of the handshake as (kind, queue); the list is fixed by the
 * options, steps that do not apply (protocol messages when the back-end
 * has no PROTOCOL_FEATURES) are skipped when run. */
static enum vmm_step_kind vmm_step_at(const struct vmm *v, unsigned i,
                                      unsigned *q)
{
	unsigned nq = v->o.num_queues;

	*q = 0;
	if (i < VS_INIT_CALL)
		return (enum vmm_step_kind)i;
	i -= VS_INIT_CALL;
	if (i < 2 * nq) {
		*q = i / 2;
		return i % 2 ? VS_INIT_ERR : VS_INIT_CALL;
	}
	i -= 2 * nq;
	if (i == 0)
		return VS_GET_CONFIG;
	i--;
	if (i < nq) {
		*q = i;
		return VS_UNMASK_CALL;
	}
	i -= nq;
	if (i < 2)
		return VS_SET_FEATURES + i;
	i -= 2;
	if (i < 4 * nq) {
		*q = i / 4;
		return VS_VRING_NUM + i % 4;
	}
	i -= 4 * nq;
	if (i < nq) {
		*q = i;
		return VS_VRING_ENABLE;
	}
	i -= nq;
	if (i < nq) {
		*q = i;
		return VS_START_CALL;
	}
	return VS_DONE;
}

unsigned vmm_hs_count_steps(const struct vmm *v)
{
	unsigned i, q;

	for (i = 0; vmm_step_at(v, i, &q) != VS_DONE; i++)
		;
	return i;
}

unsigned vmm_handshake_steps(const struct vmm *v)
{
	return v->nsteps;
}

bool vmm_handshake_complete(const struct vmm *v)
{
	unsigned q;

	return vmm_step_at(v, v->step, &q) == VS_DONE;
}

static bool vmm_has_proto(const struct vmm *v)
{
	return v->offered & VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT);
}

static int vmm_eventfd(int *fd)
{
	if (*fd < 0)
		*fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

static int vmm_send_call(struct vmm *v, unsigned q, int *fd)
{
	int r = vmm_eventfd(fd);

	if (r < 0)
		return r;
	return vmm_msg_set_u64(v, VU_SET_VRING_CALL, q, fd, 1);
}

static int vmm_send_mem_table(struct vmm *v)
{
	struct vu_mem_table t = { 0 };
	int fds[VMM_MAX_REGIONS] = { v->memfd, v->memfd };

	t.nregions = vmm_mem_regions(v, t.r, VMM_MAX_REGIONS);
	return vmm_msg_set(v, VU_SET_MEM_TABLE, &t, 8 + 32 * t.nregions,
	                   fds, (int)t.nregions);
}

static int vmm_send_vring_addr(struct vmm *v, unsigned q)
{
	struct vmm_vq *vq = &v->vq[q];
	struct vu_vring_addr a = {
		.index = q,
		.desc = vmm_gpa_to_uva(v, vq->desc_gpa),
		.used = vmm_gpa_to_uva(v, vq->used_gpa),
		.avail = vmm_gpa_to_uva(v, vq->avail_gpa),
		.log = vq->used_gpa,
	};

	return vmm_msg_set(v, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

static int vmm_get_config(struct vmm *v)
{
	uint8_t req[sizeof(struct vu_config_hdr) + VU_MAX_CONFIG] = { 0 };
	uint8_t rep[sizeof(req)];
	struct vu_config_hdr *h = (struct vu_config_hdr *)req;
	uint32_t n = (uint32_t)v->o.config_size;
	int r;

	h->offset = 0;
	h->size = n;
	r = vmm_msg_get(v, VU_GET_CONFIG, req, sizeof(*h) + n, rep,
	                sizeof(*h) + n);
	if (r < 0)
		return r;
	h = (struct vu_config_hdr *)rep;
	if (h->size != n || h->offset != 0) {
		fprintf(stderr, "vmm: GET_CONFIG: reply for offset %u size %u"
		        ", asked 0 and %u\n", h->offset, h->size, n);
		return -EPROTO;
	}
	memcpy(v->config, rep + sizeof(*h), n);
	v->config_len = n;
	return 0;
}

static int vmm_run_step(struct vmm *v, enum vmm_step_kind k, unsigned q)
{
	struct vmm_vq *vq = &v->vq[q];
	uint64_t u;
	int r;

	switch (k) {
	case VS_GET_FEATURES:
	case VS_GET_FEATURES_AGAIN:
		r = vmm_msg_get(v, VU_GET_FEATURES, NULL, 0, &u, sizeof(u));
		if (r == 0 && k == VS_GET_FEATURES_AGAIN && u != v->offered) {
			fprintf(stderr, "vmm: GET_FEATURES: 0x%llx, earlier "
			        "0x%llx\n", (unsigned long long)u,
			        (unsigned long long)v->offered);
			return -EPROTO;
		}
		v->offered = u;
		return r;
	case VS_GET_PROTOCOL_FEATURES:
		return vmm_msg_get(v, VU_GET_PROTOCOL_FEATURES, NULL, 0,
		                   &v->offered_proto, sizeof(u));
	case VS_SET_PROTOCOL_FEATURES:
		u = (1ULL << VU_PROTOCOL_F_MQ) | (1ULL << VU_PROTOCOL_F_CONFIG);
		if (!v->o.no_reply_ack)
			u |= 1ULL << VU_PROTOCOL_F_REPLY_ACK;
		u &= v->offered_proto;
		r = vmm_msg_set_u64(v, VU_SET_PROTOCOL_FEATURES, u, NULL, 0);
		if (r == 0)
			v->proto = u;
		return r;
	case VS_GET_QUEUE_NUM:
		r = vmm_msg_get(v, VU_GET_QUEUE_NUM, NULL, 0, &u, sizeof(u));
		if (r == 0 && u < v->o.num_queues) {
			fprintf(stderr, "vmm: GET_QUEUE_NUM: %llu queues, "
			        "need %u\n", (unsigned long long)u,
			        v->o.num_queues);
			return -EPROTO;
		}
		v->queue_num = (unsigned)u;
		return r;
	case VS_SET_OWNER:
		return vmm_msg_set(v, VU_SET_OWNER, NULL, 0, NULL, 0);
	case VS_INIT_CALL:
		return vmm_send_call(v, q, &vq->masked_call_fd);
	case VS_INIT_ERR:
		r = vmm_eventfd(&vq->err_fd);
		if (r < 0)
			return r;
		return vmm_msg_set_u64(v, VU_SET_VRING_ERR, q, &vq->err_fd, 1);
	case VS_GET_CONFIG:
		return vmm_get_config(v);
	case VS_UNMASK_CALL:
	case VS_START_CALL:
		return vmm_send_call(v, q, &vq->call_fd);
	case VS_SET_FEATURES:
		u = VBIT(VIRTIO_F_VERSION_1_BIT) |
		    VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT) | v->o.features;
		u &= v->offered;
		r = vmm_msg_set_u64(v, VU_SET_FEATURES, u, NULL, 0);
		if (r == 0)
			v->features = u;
		return r;
	case VS_SET_MEM_TABLE:
		return vmm_send_mem_table(v);
	case VS_VRING_NUM:
		return vmm_msg_set_state(v, VU_SET_VRING_NUM, q,
		                         v->o.queue_size);
	case VS_VRING_BASE:
		return vmm_msg_set_state(v, VU_SET_VRING_BASE, q,
		                         v->resuming ? vq->stop_base :
		                         vq->avail_idx);
	case VS_VRING_ADDR:
		return vmm_send_vring_addr(v, q);
	case VS_VRING_KICK:
		r = vmm_eventfd(&vq->kick_fd);
		if (r < 0)
			return r;
		r = vmm_msg_set_u64(v, VU_SET_VRING_KICK, q, &vq->kick_fd, 1);
		if (r == 0)
			vmm_vq_started(v, q);
		return r;
	case VS_VRING_ENABLE:
		return vmm_msg_set_state(v, VU_SET_VRING_ENABLE, q, 1);
	case VS_DONE:
		break;
	}
	return 0;
}

/* Steps QEMU would not send to this back-end. */
static bool vmm_step_skipped(const struct vmm *v, enum vmm_step_kind k)
{
	switch (k) {
	case VS_GET_PROTOCOL_FEATURES:
	case VS_SET_PROTOCOL_FEATURES:
	case VS_VRING_ENABLE:
		return !vmm_has_proto(v);
	case VS_GET_QUEUE_NUM:
		return !(v->proto & (1ULL << VU_PROTOCOL_F_MQ));
	case VS_GET_CONFIG:
		return v->o.config_size < 0 ||
		       !(v->proto & (1ULL << VU_PROTOCOL_F_CONFIG));
	default:
		return false;
	}
}

static const char *vmm_step_name(enum vmm_step_kind k)
{
	static const char *const names[] = {
		[VS_GET_FEATURES] = "GET_FEATURES",
		[VS_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
		[VS_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
		[VS_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
		[VS_SET_OWNER] = "SET_OWNER",
		[VS_GET_FEATURES_AGAIN] = "GET_FEATURES (again)",
		[VS_INIT_CALL] = "SET_VRING_CALL (masked)",
		[VS_INIT_ERR] = "SET_VRING_ERR",
		[VS_GET_CONFIG] = "GET_CONFIG",
		[VS_UNMASK_CALL] = "SET_VRING_CALL (unmask)",
		[VS_SET_FEATURES] = "SET_FEATURES",
		[VS_SET_MEM_TABLE] = "SET_MEM_TABLE",
		[VS_VRING_NUM] = "SET_VRING_NUM",
		[VS_VRING_BASE] = "SET_VRING_BASE",
		[VS_VRING_ADDR] = "SET_VRING_ADDR",
		[VS_VRING_KICK] = "SET_VRING_KICK",
		[VS_VRING_ENABLE] = "SET_VRING_ENABLE",
		[VS_START_CALL] = "SET_VRING_CALL (start)",
		[VS_DONE] = "done",
	};

	return names[k];
}

static uint32_t vmm_step_request(enum vmm_step_kind k)
{
	static const uint32_t req[] = {
		[VS_GET_FEATURES] = VU_GET_FEATURES,
		[VS_GET_PROTOCOL_FEATURES] = VU_GET_PROTOCOL_FEATURES,
		[VS_SET_PROTOCOL_FEATURES] = VU_SET_PROTOCOL_FEATURES,
		[VS_GET_QUEUE_NUM] = VU_GET_QUEUE_NUM,
		[VS_SET_OWNER] = VU_SET_OWNER,
		[VS_GET_FEATURES_AGAIN] = VU_GET_FEATURES,
		[VS_INIT_CALL] = VU_SET_VRING_CALL,
		[VS_INIT_ERR] = VU_SET_VRING_ERR,
		[VS_GET_CONFIG] = VU_GET_CONFIG,
		[VS_UNMASK_CALL] = VU_SET_VRING_CALL,
		[VS_SET_FEATURES] = VU_SET_FEATURES,
		[VS_SET_MEM_TABLE] = VU_SET_MEM_TABLE,
		[VS_VRING_NUM] = VU_SET_VRING_NUM,
		[VS_VRING_BASE] = VU_SET_VRING_BASE,
		[VS_VRING_ADDR] = VU_SET_VRING_ADDR,
		[VS_VRING_KICK] = VU_SET_VRING_KICK,
		[VS_VRING_ENABLE] = VU_SET_VRING_ENABLE,
		[VS_START_CALL] = VU_SET_VRING_CALL,
		[VS_DONE] = 0,
	};

	return req[k];
}

static bool vmm_step_per_queue(enum vmm_step_kind k)
{
	return k == VS_INIT_CALL || k == VS_INIT_ERR || k == VS_UNMASK_CALL ||
	       (k >= VS_VRING_NUM && k <= VS_START_CALL);
}

/* Run the next entry of the step list: 1 if it sent its message, 0 if it
 * does not apply to this back-end, -errno. */
static int vmm_step_one(struct vmm *v)
{
	enum vmm_step_kind k;
	unsigned q;
	int r;

	k = vmm_step_at(v, v->step, &q);
	if (k == VS_DONE)
		return -ENOENT;
	v->step++;
	if (vmm_step_skipped(v, k))
		return 0;
	r = vmm_run_step(v, k, q);
	if (r < 0) {
		fprintf(stderr, "vmm: handshake step %u, %s queue %u: %s\n",
		        v->step - 1, vmm_step_name(k), q, strerror(-r));
		return r;
	}
	return 1;
}

int vmm_handshake(struct vmm *v, unsigned max_steps)
{
	unsigned q;
	int done = 0, r;

	while (max_steps == 0 || (unsigned)done < max_steps) {
		if (vmm_step_at(v, v->step, &q) == VS_DONE)
			break;
		r = vmm_step_one(v);
		if (r < 0)
			return r;
		done += r;
	}
	return done;
}

int vmm_handshake_until(struct vmm *v, uint32_t request, unsigned q)
{
	unsigned i, sq;
	int done = 0, r;

	/* is there such a step ahead at all? */
	for (i = v->step;; i++) {
		enum vmm_step_kind k = vmm_step_at(v, i, &sq);

		if (k == VS_DONE)
			return -ENOENT;
		if (vmm_step_request(k) == request &&
		    (!vmm_step_per_queue(k) || sq == q))
			break;
	}
	while (v->step < i) {
		r = vmm_step_one(v);
		if (r < 0)
			return r;
		done += r;
	}
	return done;
}

int vmm_stop(struct vmm *v)
{
	unsigned q;
	int r;

	if (vmm_has_proto(v)) {
		for (q = 0; q < v->o.num_queues; q++) {
			r = vmm_msg_set_state(v, VU_SET_VRING_ENABLE, q, 0);
			if (r < 0)
				return r;
		}
	}
	for (q = 0; q < v->o.num_queues; q++) {
		struct vu_vring_state s = { .index = q };

		r = vmm_msg_get(v, VU_GET_VRING_BASE, &s, sizeof(s), &s,
		                sizeof(s));
		if (r < 0) {
			fprintf(stderr, "vmm: GET_VRING_BASE queue %u: %s\n",
			        q, strerror(-r));
			return r;
		}
		v->vq[q].started = false;
		v->vq[q].stop_base = (uint16_t)s.num;
	}
	/* QEMU's guest notifiers go down with the device (masked). */
	for (q = 0; q < v->o.num_queues; q++) {
		r = vmm_send_call(v, q, &v->vq[q].masked_call_fd);
		if (r < 0)
			return r;
	}
	v->stopped = true;
	return 0;
}

/* vhost_dev_start again: the handshake's start steps, each ring from the
 * base the stop reported (the driver's rings as they are). */
static int vmm_start_again(struct vmm *v)
{
	unsigned i, q;
	enum vmm_step_kind k;
	int r = 0;

	for (i = 0; (k = vmm_step_at(v, i, &q)) != VS_UNMASK_CALL; i++)
		;
	v->resuming = true;
	for (; (k = vmm_step_at(v, i, &q)) != VS_DONE; i++) {
		if (vmm_step_skipped(v, k))
			continue;
		r = vmm_run_step(v, k, q);
		if (r < 0) {
			fprintf(stderr, "vmm: start again, %s queue %u: %s\n",
			        vmm_step_name(k), q, strerror(-r));
			break;
		}
	}
	v->resuming = false;
	if (r == 0)
		v->stopped = false;
	return r;
}

int vmm_resume(struct vmm *v)
{
	if (!v->stopped)
		return -EINVAL;
	return vmm_start_again(v);
}

int vmm_restart_driver(struct vmm *v)
{
	unsigned q;
	int r;

	if (!v->stopped && (r = vmm_stop(v)) < 0)
		return r;
	for (q = 0; q < v->o.num_queues; q++)
		vmm_vq_reinit(v, q);
	return vmm_start_again(v);
}

int vmm_set_mem_table(struct vmm *v)
{
	return vmm_send_mem_table(v);
}
