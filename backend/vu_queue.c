#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <linux/virtio_ring.h>

#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/virtio.h"
#include "vu_priv.h"

void vu_queue_init(struct vu *vu, unsigned index)
{
	struct vu_queue *q = &vu->q[index];

	memset(q, 0, sizeof *q);
	q->vu = vu;
	q->index = index;
	snprintf(q->name, sizeof q->name, "%s q%u", vu->dev->name, index);
	vq_init(&q->vq, q->name);
	q->kick_fd = q->call_fd = q->err_fd = -1;
}

bool vu_queue_enabled(const struct vu_queue *q)
{
	if (!(q->vu->features & VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT)))
		return true;
	return q->enabled;
}

/* One ring: translated for its whole size, and aligned as the split ring
 * layout requires, checked on our pointer (that is what we dereference). */
static void *vu_queue_ring(const struct vu_queue *q, uint64_t uva,
                           uint64_t len, uintptr_t align)
{
	void *p = gmem_uva(&q->vu->mem, uva, len);

	if (p && (uintptr_t)p % align)
		return NULL;
	return p;
}

int vu_queue_rings(struct vu_queue *q, struct vring_desc **desc,
                   struct vring_avail **avail, struct vring_used **used,
                   const char **what)
{
	uint64_t n = q->num;
	uint64_t ev = (q->vu->features & VBIT(VIRTIO_RING_F_EVENT_IDX_BIT)) ?
	              2 : 0;

	*desc = vu_queue_ring(q, q->desc_uva, 16 * n, 16);
	*avail = vu_queue_ring(q, q->avail_uva, 4 + 2 * n + ev, 2);
	*used = vu_queue_ring(q, q->used_uva, 4 + 8 * n + ev, 4);
	if (!*desc)
		*what = "descriptor table";
	else if (!*avail)
		*what = "avail ring";
	else if (!*used)
		*what = "used ring";
	else
		return 0;
	return -EFAULT;
}

/* The used index the driver sees now: written by us only, so after a
 * pause it is where we left it, and a driver that set its rings up again
 * has zeroed it. */
static uint16_t vu_queue_used_idx(const struct vring_used *used)
{
	return le16toh(__atomic_load_n(&used->idx, __ATOMIC_RELAXED));
}

/* Does the ring continue exactly from where it stopped? */
static bool vu_queue_resumes(const struct vu_queue *q, uint16_t used_idx)
{
	return q->base == q->stop_base && used_idx == q->stop_used &&
	       q->desc_uva == q->stop_desc && q->avail_uva == q->stop_avail &&
	       q->used_uva == q->stop_used_uva;
}

/* q starts on rings the driver set up anew: whatever the device holds
 * belongs to a driver that is gone.  Stops every running queue (noted in
 * restart[], for the caller to start again) so the device is reset with
 * no ring in its hands, and forgets every queue's stop. */
static void vu_queue_restarted(struct vu_queue *q, const char *req,
                               uint16_t used_idx, bool *restart)
{
	struct vu *vu = q->vu;
	unsigned i;

	log_info("vu: %s: queue %u starts at avail %u, used %u, not where it "
	         "stopped (%u, %u) or on other rings: the driver restarted; "
	         "resetting the device", req, q->index, q->base, used_idx,
	         q->stop_base, q->stop_used);
	for (i = 0; i < vu->dev->num_queues; i++) {
		restart[i] = vu->q[i].running;
		vu_queue_stop(&vu->q[i]);
	}
	vu->dev->reset(vu->ctx);
	for (i = 0; i < vu->dev->num_queues; i++)
		vu->q[i].resumable = false;
}

int vu_queue_try_start(struct vu_queue *q, const char *req)
{
	struct vu *vu = q->vu;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	bool restart[VU_MAX_QUEUES] = { false };
	const char *what;
	uint16_t used_idx;
	unsigned i;
	int r;

	if (q->running || !q->num || !q->addr_set || q->kick_fd < 0 ||
	    !vu_queue_enabled(q))
		return 0;
	if (vu_queue_rings(q, &desc, &avail, &used, &what) < 0) {
		log_warnx("vu: %s: queue %u: %s not in guest memory (size %u)",
		          req, q->index, what, q->num);
		return -EFAULT;
	}
	used_idx = vu_queue_used_idx(used);
	if (q->resumable && !vu_queue_resumes(q, used_idx))
		vu_queue_restarted(q, req, used_idx, restart);
	r = vq_start(&q->vq, &vu->mem, q->num, desc, avail, used, q->base,
	             vu->features);
	if (r < 0) {
		log_warnx("vu: %s: queue %u: cannot start: %s", req, q->index,
		          strerror(-r));
	} else {
		vq_set_call(&q->vq, q->call_fd);
		q->running = true;
		log_debug("vu: queue %u started (size %u, base %u)", q->index,
		          q->num, q->base);
		vu->dev->queue_started(vu->ctx, q->index, &q->vq);
		/* The driver may have kicked before the ring could start;
		 * those kicks were drained unanswered, so look at the ring
		 * once now. */
		if (q->running)
			vu->dev->queue_kicked(vu->ctx, q->index, &q->vq);
	}
	/* The queues a driver restart stopped start again, afresh. */
	for (i = 0; i < vu->dev->num_queues; i++)
		if (restart[i])
			(void)vu_queue_try_start(&vu->q[i], req);
	return r < 0 ? r : 0;
}

void vu_queue_stop(struct vu_queue *q)
{
	struct vu *vu = q->vu;

	if (!q->running)
		return;
	vu->dev->queue_stopped(vu->ctx, q->index, &q->vq);
	/* Whatever the device completed while finishing becomes visible. */
	vq_flush(&q->vq);
	q->base = vq_stop(&q->vq);
	q->running = false;
	q->resumable = true;
	q->stop_base = q->base;
	q->stop_used = q->vq.used_idx;
	q->stop_desc = q->desc_uva;
	q->stop_avail = q->avail_uva;
	q->stop_used_uva = q->used_uva;
	log_debug("vu: queue %u stopped (base %u)", q->index, q->base);
}

static void vu_queue_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vu_queue *q = arg;
	uint64_t v;
	ssize_t n;

	(void)what;
	n = read(fd, &v, sizeof v);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* A kick fd that is at EOF or failing would wake us forever. */
		if (n < 0)
			log_warn("vu: queue %u: kick fd", q->index);
		else
			log_warnx("vu: queue %u: kick fd at end of file",
			          q->index);
		event_del(q->kick_ev);
		return;
	}
	if (q->running)
		q->vu->dev->queue_kicked(q->vu->ctx, q->index, &q->vq);
}

/* The fds come from the front-end and are shared with it; a blocking one
 * could stall the loop in read() or write() if the front-end races us on
 * it.  Its eventfds are non-blocking already, so this changes nothing for
 * a well-behaved front-end. */
static void vu_queue_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int vu_queue_set_kick(struct vu_queue *q, int fd)
{
	if (q->kick_ev) {
		event_free(q->kick_ev);
		q->kick_ev = NULL;
	}
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	q->kick_fd = -1;
	if (fd < 0)
		return 0;
	vu_queue_nonblock(fd);
	q->kick_ev = event_new(loop_base(q->vu->loop), fd, EV_READ | EV_PERSIST,
	                       vu_queue_kick_cb, q);
	if (!q->kick_ev || event_add(q->kick_ev, NULL) < 0) {
		log_warnx("vu: queue %u: cannot watch kick fd", q->index);
		if (q->kick_ev)
			event_free(q->kick_ev);
		q->kick_ev = NULL;
		close(fd);
		return -ENOMEM;
	}
	q->kick_fd = fd;
	return 0;
}

void vu_queue_set_call(struct vu_queue *q, int fd)
{
	if (q->call_fd >= 0)
		close(q->call_fd);
	if (fd >= 0)
		vu_queue_nonblock(fd);
	q->call_fd = fd;
	if (q->running)
		vq_set_call(&q->vq, fd);
}

void vu_queue_set_err(struct vu_queue *q, int fd)
{
	if (q->err_fd >= 0)
		close(q->err_fd);
	q->err_fd = fd;
}

void vu_queue_clear(struct vu_queue *q)
{
	vu_queue_stop(q);
	vu_queue_set_kick(q, -1);
	vu_queue_set_call(q, -1);
	vu_queue_set_err(q, -1);
	q->num = 0;
	q->base = 0;
	q->addr_set = false;
	q->desc_uva = q->avail_uva = q->used_uva = 0;
	q->enabled = false;
	q->resumable = false;
}

/* Below both of its callers, the connection (vu.c) and RESET_OWNER
 * (vu_req.c), so that files call one way (vu_priv.h).  The queues stop
 * before the memory they point into is unmapped. */
void vu_reset_session(struct vu *vu, bool keep_protocol)
{
	unsigned i;

	for (i = 0; i < vu->dev->num_queues; i++)
		vu_queue_stop(&vu->q[i]);
	vu->dev->reset(vu->ctx);
	gmem_clear(&vu->mem);
	for (i = 0; i < vu->dev->num_queues; i++)
		vu_queue_clear(&vu->q[i]);
	vu->features = 0;
	if (!keep_protocol)
		vu->protocol_features = 0;
}
