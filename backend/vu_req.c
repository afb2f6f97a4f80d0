/*
 * The vhost-user requests: what each one does to the session, its rings and
 * its memory.  vu_msg.c has already checked the header, the payload size
 * and the fd count against vu_reqs before a handler runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/vhost_types.h>

#include "chanfs/log.h"
#include "chanfs/virtio.h"
#include "vu_priv.h"

const char *vu_request_name(uint32_t request)
{
	if (request >= VU_REQUEST_MAX)
		return NULL;
	return vu_reqs[request].name;
}

uint64_t vu_offered_features(const struct vu *vu)
{
	return vu->dev->features | VBIT(VIRTIO_F_VERSION_1_BIT) |
	       VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT) |
	       VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) | VBIT(VIRTIO_F_IN_ORDER_BIT) |
	       VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT);
}

/* The queue a message names, or NULL (logged) when it is out of range. */
static struct vu_queue *vu_msg_queue(struct vu *vu, const struct vu_msg *m,
                                     uint64_t index)
{
	if (index >= vu->dev->num_queues) {
		log_warnx("vu: %s: queue %" PRIu64 " out of range (device has "
		          "%u)", vu_request_name(m->request), index,
		          vu->dev->num_queues);
		return NULL;
	}
	return &vu->q[index];
}

/* Take fd i out of the message so the dispatcher does not close it. */
static int vu_msg_take_fd(struct vu_msg *m, unsigned i)
{
	int fd = m->fds[i];

	m->fds[i] = -1;
	return fd;
}

/* --- requests -------------------------------------------------------- */

static int vu_get_features(struct vu *vu, struct vu_msg *m,
                           struct vu_reply *rep)
{
	(void)m;
	vu_reply_u64(rep, vu_offered_features(vu));
	return 0;
}

static int vu_set_features(struct vu *vu, struct vu_msg *m,
                           struct vu_reply *rep)
{
	uint64_t v = vu_msg_u64(m), extra = v & ~vu_offered_features(vu);
	unsigned i;

	(void)rep;
	if (extra) {
		log_warnx("vu: SET_FEATURES: bits 0x%" PRIx64 " were not "
		          "offered", extra);
		return -EINVAL;
	}
	/* A running ring was started with the old ring layout (EVENT_IDX)
	 * and options; changing them underneath it is not supported. */
	for (i = 0; i < vu->dev->num_queues && v != vu->features; i++) {
		if (vu->q[i].running) {
			log_warnx("vu: SET_FEATURES: features change while "
			          "queue %u is running", i);
			return -EBUSY;
		}
	}
	vu->features = v;
	return 0;
}

static int vu_set_owner(struct vu *vu, struct vu_msg *m, struct vu_reply *rep)
{
	vu->owned = true;
	(void)m;
	(void)rep;
	return 0;
}

/* Deprecated; the spec suggests treating it as "disable all rings".  We
 * reset the whole session but keep the connection and the protocol
 * features negotiated on it. */
static int vu_reset_owner(struct vu *vu, struct vu_msg *m,
                          struct vu_reply *rep)
{
	(void)m;
	(void)rep;
	vu_reset_session(vu, true);
	return 0;
}

static int vu_get_protocol_features(struct vu *vu, struct vu_msg *m,
                                    struct vu_reply *rep)
{
	(void)vu;
	(void)m;
	vu_reply_u64(rep, VU_PROTOCOL_FEATURES);
	return 0;
}

static int vu_set_protocol_features(struct vu *vu, struct vu_msg *m,
                                    struct vu_reply *rep)
{
	uint64_t v = vu_msg_u64(m), extra = v & ~(uint64_t)VU_PROTOCOL_FEATURES;

	(void)rep;
	if (extra) {
		log_warnx("vu: SET_PROTOCOL_FEATURES: bits 0x%" PRIx64 " were "
		          "not offered", extra);
		return -EINVAL;
	}
	vu->protocol_features = v;
	return 0;
}

static int vu_get_queue_num(struct vu *vu, struct vu_msg *m,
                            struct vu_reply *rep)
{
	(void)m;
	vu_reply_u64(rep, vu->dev->num_queues);
	return 0;
}

/* A region's fd must really hold the bytes we are told to map, and go on
 * holding them: touching a mapping past the end of its file is SIGBUS, not
 * an error we can return.  Hence a memory file sealed against shrinking;
 * only such a file gets fstat (vu.h, "Peer fds"). */
static int vu_mem_check_fd(unsigned i, const struct vu_mem_region *r, int fd,
                           enum vu_fd_kind kind)
{
	struct stat st;

	if (kind != VU_FD_SEALED) {
		log_warnx("vu: SET_MEM_TABLE: region %u: fd is %s (a memfd "
		          "with F_SEAL_SHRINK is required: QEMU's "
		          "memory-backend-memfd): refused", i,
		          kind == VU_FD_SHMEM ? "not sealed against shrinking" :
		          "not a memory file");
		return -EINVAL;
	}
	log_debug("vu:    region %u: seals 0x%x", i, fcntl(fd, F_GET_SEALS));
	if (fstat(fd, &st) < 0) {
		log_warn("vu: SET_MEM_TABLE: region %u: fd", i);
		return -EINVAL;
	}
	if (!S_ISREG(st.st_mode)) {
		log_warnx("vu: SET_MEM_TABLE: region %u: fd is not a memory "
		          "file", i);
		return -EINVAL;
	}
	if (r->mmap_offset > (uint64_t)st.st_size ||
	    r->size > (uint64_t)st.st_size - r->mmap_offset) {
		log_warnx("vu: SET_MEM_TABLE: region %u: offset 0x%" PRIx64
		          " size 0x%" PRIx64 " past the end of its fd (0x%"
		          PRIx64 " bytes)", i, r->mmap_offset, r->size,
		          (uint64_t)st.st_size);
		return -EINVAL;
	}
	return 0;
}

/* Running queues are stopped before the old table goes away and restarted
 * on the new one: an element the device still held would point into the
 * old mappings, and only queue_stopped makes the device let go of it. */
static int vu_set_mem_table(struct vu *vu, struct vu_msg *m,
                            struct vu_reply *rep)
{
	struct vu_mem_table t;
	struct gmem next;
	bool restart[VU_MAX_QUEUES] = { false };
	unsigned i;
	int r, err = 0;

	(void)rep;
	memcpy(&t, m->payload, m->size);
	gmem_init(&next);
	for (i = 0; i < t.nregions; i++) {
		const struct vu_mem_region *mr = &t.r[i];

		log_debug("vu:    region %u gpa 0x%" PRIx64 " size 0x%" PRIx64
		          " uva 0x%" PRIx64 " offset 0x%" PRIx64, i, mr->gpa,
		          mr->size, mr->uva, mr->mmap_offset);
		r = vu_mem_check_fd(i, mr, m->fds[i],
		                    (enum vu_fd_kind)m->fd_kind[i]);
		if (r == 0)
			r = gmem_add(&next, mr->gpa, mr->size, mr->uva,
			             mr->mmap_offset, m->fds[i]);
		if (r < 0) {
			gmem_clear(&next);
			return r;
		}
	}
	for (i = 0; i < vu->dev->num_queues; i++) {
		restart[i] = vu->q[i].running;
		vu_queue_stop(&vu->q[i]);
	}
	gmem_clear(&vu->mem);
	vu->mem = next;
	for (i = 0; i < vu->dev->num_queues; i++) {
		if (restart[i] && (r = vu_queue_try_start(&vu->q[i],
		                                          "SET_MEM_TABLE")) < 0)
			err = r;
	}
	return err;
}

static int vu_set_vring_num(struct vu *vu, struct vu_msg *m,
                            struct vu_reply *rep)
{
	struct vu_vring_state s = vu_msg_state(m);
	struct vu_queue *q = vu_msg_queue(vu, m, s.index);

	(void)rep;
	if (!q)
		return -EINVAL;
	if (q->running) {
		log_warnx("vu: SET_VRING_NUM: queue %u is running", s.index);
		return -EBUSY;
	}
	if (s.num == 0 || s.num > VQ_MAX_SIZE || (s.num & (s.num - 1))) {
		log_warnx("vu: SET_VRING_NUM: queue %u size %u is not a power "
		          "of two in 1..%u", s.index, s.num, VQ_MAX_SIZE);
		return -EINVAL;
	}
	q->num = (uint16_t)s.num;
	return vu_queue_try_start(q, "SET_VRING_NUM");
}

static int vu_set_vring_addr(struct vu *vu, struct vu_msg *m,
                             struct vu_reply *rep)
{
	struct vu_vring_addr a;
	struct vu_queue *q;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	const char *what;
	uint64_t old_desc, old_avail, old_used;
	bool old_set;

	(void)rep;
	memcpy(&a, m->payload, sizeof a);
	if (!(q = vu_msg_queue(vu, m, a.index)))
		return -EINVAL;
	if (a.flags & ~(1u << VHOST_VRING_F_LOG)) {
		log_warnx("vu: SET_VRING_ADDR: queue %u: unknown flags 0x%x",
		          a.index, a.flags);
		return -EINVAL;
	}
	/* Logging needs LOG_ALL, which we never offer; log is ignored. */
	if ((a.flags & (1u << VHOST_VRING_F_LOG)) &&
	    !(vu->features & VBIT(VHOST_F_LOG_ALL))) {
		log_warnx("vu: SET_VRING_ADDR: queue %u: logging requested "
		          "without LOG_ALL", a.index);
		return -EINVAL;
	}
	if (q->running) {
		/* Only the flags may change under a running ring. */
		if (a.desc != q->desc_uva || a.avail != q->avail_uva ||
		    a.used != q->used_uva) {
			log_warnx("vu: SET_VRING_ADDR: queue %u is running",
			          a.index);
			return -EBUSY;
		}
		return 0;
	}
	old_set = q->addr_set;
	old_desc = q->desc_uva;
	old_avail = q->avail_uva;
	old_used = q->used_uva;
	q->desc_uva = a.desc;
	q->avail_uva = a.avail;
	q->used_uva = a.used;
	q->addr_set = true;
	/* Without a size yet the check waits for the ring to start. */
	if (q->num && vu_queue_rings(q, &desc, &avail, &used, &what) < 0) {
		log_warnx("vu: SET_VRING_ADDR: queue %u: %s not in guest memory "
		          "or misaligned (size %u)", a.index, what, q->num);
		q->addr_set = old_set;
		q->desc_uva = old_desc;
		q->avail_uva = old_avail;
		q->used_uva = old_used;
		return -EFAULT;
	}
	return vu_queue_try_start(q, "SET_VRING_ADDR");
}

static int vu_set_vring_base(struct vu *vu, struct vu_msg *m,
                             struct vu_reply *rep)
{
	struct vu_vring_state s = vu_msg_state(m);
	struct vu_queue *q = vu_msg_queue(vu, m, s.index);

	(void)rep;
	if (!q)
		return -EINVAL;
	if (q->running) {
		log_warnx("vu: SET_VRING_BASE: queue %u is running", s.index);
		return -EBUSY;
	}
	if (s.num > UINT16_MAX) {
		log_warnx("vu: SET_VRING_BASE: queue %u base %u is not a split "
		          "ring index", s.index, s.num);
		return -EINVAL;
	}
	q->base = (uint16_t)s.num;
	return vu_queue_try_start(q, "SET_VRING_BASE");
}

/* Stops the ring (the front-end is taking it back) and forgets the kick
 * fd, so that it only starts again once a new one is given, as the spec's
 * ring states require. */
static int vu_get_vring_base(struct vu *vu, struct vu_msg *m,
                             struct vu_reply *rep)
{
	struct vu_vring_state s = vu_msg_state(m);
	struct vu_queue *q = vu_msg_queue(vu, m, s.index);

	if (!q)
		return -EINVAL;
	vu_queue_stop(q);
	vu_queue_set_kick(q, -1);
	s.num = q->base;
	memcpy(rep->payload, &s, sizeof s);
	rep->size = sizeof s;
	return 0;
}

/* SET_VRING_KICK, CALL and ERR: one body, since they share the u64
 * layout (queue index, NOFD bit) and the fd rule; only what the fd becomes
 * differs. */
static int vu_set_vring_fd(struct vu *vu, struct vu_msg *m,
                           struct vu_reply *rep)
{
	uint64_t v = vu_msg_u64(m);
	struct vu_queue *q;
	int fd = -1, r;

	(void)rep;
	if (m->request == VU_SET_VRING_KICK && (v & VU_VRING_NOFD)) {
		log_warnx("vu: SET_VRING_KICK: queue %" PRIu64 ": polling mode "
		          "(no kick fd) is not supported",
		          v & VU_VRING_IDX_MASK);
		return -ENOTSUP;
	}
	if (v & ~(VU_VRING_IDX_MASK | VU_VRING_NOFD)) {
		log_warnx("vu: %s: unknown bits in 0x%" PRIx64,
		          vu_request_name(m->request), v);
		return -EINVAL;
	}
	if (!(q = vu_msg_queue(vu, m, v & VU_VRING_IDX_MASK)))
		return -EINVAL;
	/* Anything but an eventfd could block the loop, wake it forever (a
	 * regular file is always readable), kill us with SIGPIPE, or be a
	 * file whose every call waits on a FUSE server (vu.h, "Peer fds");
	 * it stays in the message for the dispatcher to dispose of. */
	if (!(v & VU_VRING_NOFD) && m->fd_kind[0] != VU_FD_EVENTFD) {
		log_warnx("vu: %s: queue %u: fd is not an eventfd (%s)",
		          vu_request_name(m->request), q->index,
		          vu_fd_kind_name((enum vu_fd_kind)m->fd_kind[0]));
		return -EINVAL;
	}
	if (!(v & VU_VRING_NOFD))
		fd = vu_msg_take_fd(m, 0);
	switch (m->request) {
	case VU_SET_VRING_KICK:
		if ((r = vu_queue_set_kick(q, fd)) < 0)
			return r;
		return vu_queue_try_start(q, "SET_VRING_KICK");
	case VU_SET_VRING_CALL:
		vu_queue_set_call(q, fd);
		return 0;
	default:
		vu_queue_set_err(q, fd);
		return 0;
	}
}

static int vu_set_vring_enable(struct vu *vu, struct vu_msg *m,
                               struct vu_reply *rep)
{
	struct vu_vring_state s = vu_msg_state(m);
	struct vu_queue *q = vu_msg_queue(vu, m, s.index);

	(void)rep;
	if (!q)
		return -EINVAL;
	if (!(vu->features & VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT))) {
		log_warnx("vu: SET_VRING_ENABLE: queue %u: PROTOCOL_FEATURES "
		          "not negotiated", s.index);
		return -EINVAL;
	}
	if (s.num > 1) {
		log_warnx("vu: SET_VRING_ENABLE: queue %u: value %u is not 0 "
		          "or 1", s.index, s.num);
		return -EINVAL;
	}
	q->enabled = s.num;
	/* A disabled ring must have no side effects; ours simply stops and
	 * resumes from where it was when enabled again. */
	if (!q->enabled) {
		vu_queue_stop(q);
		return 0;
	}
	return vu_queue_try_start(q, "SET_VRING_ENABLE");
}

/* The protocol's error reply for GET_CONFIG is an empty payload. */
static int vu_get_config(struct vu *vu, struct vu_msg *m,
                         struct vu_reply *rep)
{
	struct vu_config_hdr h;

	rep->size = 0;
	memcpy(&h, m->payload, sizeof h);
	if (!(vu->protocol_features & (1ULL << VU_PROTOCOL_F_CONFIG))) {
		log_warnx("vu: GET_CONFIG: CONFIG protocol feature not "
		          "negotiated");
		return 0;
	}
	if (h.flags > 1) {
		log_warnx("vu: GET_CONFIG: unknown flags 0x%x", h.flags);
		return 0;
	}
	if (h.size == 0 || h.offset > vu->dev->config_size ||
	    h.size > vu->dev->config_size - h.offset) {
		log_warnx("vu: GET_CONFIG: offset %u size %u outside the %u "
		          "bytes of config space", h.offset, h.size,
		          vu->dev->config_size);
		return 0;
	}
	vu->dev->get_config(vu->ctx, h.offset, rep->payload + sizeof h,
	                    h.size);
	memcpy(rep->payload, &h, sizeof h);
	rep->size = sizeof h + h.size;
	return 0;
}

static int vu_set_config(struct vu *vu, struct vu_msg *m,
                         struct vu_reply *rep)
{
	struct vu_config_hdr h;

	(void)vu;
	(void)rep;
	memcpy(&h, m->payload, sizeof h);
	log_warnx("vu: SET_CONFIG: offset %u size %u: config space is "
	          "read-only", h.offset, h.size);
	return -EPERM;
}

const struct vu_req vu_reqs[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = { "GET_FEATURES", VU_PL_NONE, vu_get_features,
	                      true, NULL },
	[VU_SET_FEATURES] = { "SET_FEATURES", VU_PL_U64, vu_set_features,
	                      false, NULL },
	[VU_SET_OWNER] = { "SET_OWNER", VU_PL_NONE, vu_set_owner, false,
	                   NULL },
	[VU_RESET_OWNER] = { "RESET_OWNER", VU_PL_NONE, vu_reset_owner, false,
	                     NULL },
	[VU_SET_MEM_TABLE] = { "SET_MEM_TABLE", VU_PL_MEM, vu_set_mem_table,
	                       false, NULL },
	[VU_SET_LOG_BASE] = { "SET_LOG_BASE", VU_PL_U64, NULL, false, NULL },
	[VU_SET_LOG_FD] = { "SET_LOG_FD", VU_PL_NONE, NULL, false, NULL },
	[VU_SET_VRING_NUM] = { "SET_VRING_NUM", VU_PL_STATE, vu_set_vring_num,
	                       false, "num" },
	[VU_SET_VRING_ADDR] = { "SET_VRING_ADDR", VU_PL_ADDR,
	                        vu_set_vring_addr, false, NULL },
	[VU_SET_VRING_BASE] = { "SET_VRING_BASE", VU_PL_STATE,
	                        vu_set_vring_base, false, "base" },
	[VU_GET_VRING_BASE] = { "GET_VRING_BASE", VU_PL_STATE,
	                        vu_get_vring_base, true, "num" },
	[VU_SET_VRING_KICK] = { "SET_VRING_KICK", VU_PL_FILE,
	                        vu_set_vring_fd, false, NULL },
	[VU_SET_VRING_CALL] = { "SET_VRING_CALL", VU_PL_FILE,
	                        vu_set_vring_fd, false, NULL },
	[VU_SET_VRING_ERR] = { "SET_VRING_ERR", VU_PL_FILE, vu_set_vring_fd,
	                       false, NULL },
	[VU_GET_PROTOCOL_FEATURES] = { "GET_PROTOCOL_FEATURES", VU_PL_NONE,
	                               vu_get_protocol_features, true, NULL },
	[VU_SET_PROTOCOL_FEATURES] = { "SET_PROTOCOL_FEATURES", VU_PL_U64,
	                               vu_set_protocol_features, false, NULL },
	[VU_GET_QUEUE_NUM] = { "GET_QUEUE_NUM", VU_PL_NONE, vu_get_queue_num,
	                       true, NULL },
	[VU_SET_VRING_ENABLE] = { "SET_VRING_ENABLE", VU_PL_STATE,
	                          vu_set_vring_enable, false, "enable" },
	[19] = { "SEND_RARP", VU_PL_U64, NULL, false, NULL },
	[20] = { "NET_SET_MTU", VU_PL_U64, NULL, false, NULL },
	[21] = { "SET_SLAVE_REQ_FD", VU_PL_NONE, NULL, false, NULL },
	[22] = { "IOTLB_MSG", VU_PL_NONE, NULL, false, NULL },
	[23] = { "SET_VRING_ENDIAN", VU_PL_STATE, NULL, false, "endian" },
	[VU_GET_CONFIG] = { "GET_CONFIG", VU_PL_CONFIG, vu_get_config, true,
	                    NULL },
	[VU_SET_CONFIG] = { "SET_CONFIG", VU_PL_CONFIG, vu_set_config, false,
	                    NULL },
	[26] = { "CREATE_CRYPTO_SESSION", VU_PL_NONE, NULL, false, NULL },
	[27] = { "CLOSE_CRYPTO_SESSION", VU_PL_U64, NULL, false, NULL },
	[28] = { "POSTCOPY_ADVISE", VU_PL_NONE, NULL, false, NULL },
	[29] = { "POSTCOPY_LISTEN", VU_PL_NONE, NULL, false, NULL },
	[30] = { "POSTCOPY_END", VU_PL_NONE, NULL, false, NULL },
	[31] = { "GET_INFLIGHT_FD", VU_PL_NONE, NULL, false, NULL },
	[32] = { "SET_INFLIGHT_FD", VU_PL_NONE, NULL, false, NULL },
	[33] = { "GPU_SET_SOCKET", VU_PL_NONE, NULL, false, NULL },
	[34] = { "RESET_DEVICE", VU_PL_NONE, NULL, false, NULL },
	[35] = { "VRING_KICK", VU_PL_STATE, NULL, false, "num" },
	[36] = { "GET_MAX_MEM_SLOTS", VU_PL_NONE, NULL, false, NULL },
	[37] = { "ADD_MEM_REG", VU_PL_NONE, NULL, false, NULL },
	[38] = { "REM_MEM_REG", VU_PL_NONE, NULL, false, NULL },
	[39] = { "SET_STATUS", VU_PL_U64, NULL, false, NULL },
	[40] = { "GET_STATUS", VU_PL_NONE, NULL, false, NULL },
};
