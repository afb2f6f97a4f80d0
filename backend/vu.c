#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/usock.h"
#include "vu_priv.h"

/* Messages handled per wake-up of the connection, so that a chatty
 * front-end cannot starve kicks and the flush (the socket stays readable,
 * and libevent comes back to it next turn). */
#define VU_MSGS_PER_TURN 32
/* How long to wait before accepting again when accept() fails for lack of
 * fds or memory (the listener would otherwise stay readable and spin). */
#define VU_ACCEPT_RETRY_SEC 1
/* The kernel's limit on fds per sendmsg (SCM_MAX_FD). */
#define VU_RX_MAX_FDS 253
/* A front-end that has not sent SET_OWNER this long after connecting is
 * stalled (QEMU sends it within its first five messages, at once). */
#define VU_HANDSHAKE_SEC 10
/* Longest pause in the middle of a message (QEMU sends each one whole). */
#define VU_PARTIAL_SEC 10

static void vu_rx_clear(struct vu *vu, struct vu_rx *rx)
{
	unsigned i;

	/* Only a message cut short still has fds: never looked at. */
	for (i = 0; i < rx->msg.nfds; i++)
		vu_fd_close(vu, rx->msg.fds[i], VU_FD_UNKNOWN);
	rx->msg.nfds = 0;
	rx->got = 0;
	rx->dropped_fds = 0;
}

void vu_reset(struct vu *vu)
{
	vu_reset_session(vu, false);
	vu_rx_clear(vu, &vu->rx);
}

bool vu_running(const struct vu *vu)
{
	unsigned i;

	for (i = 0; i < vu->dev->num_queues; i++)
		if (vu->q[i].running)
			return true;
	return false;
}

uint64_t vu_features(const struct vu *vu)
{
	return vu->features;
}

/* --- the connection --------------------------------------------------- */

/* Forget the front-end; the listener keeps accepting. */
static void vu_drop(struct vu *vu)
{
	vu_reset(vu);
	event_free(vu->conn_ev);
	vu->conn_ev = NULL;
	if (vu->deadline_ev)
		evtimer_del(vu->deadline_ev);
	vu_fd_close_conn(vu, vu->conn_fd);
	vu->conn_fd = -1;
	vu->owned = false;
	vu->peer_pid = 0;
	vu->nmsgs = 0;
}

/* A front-end that has not sent SET_OWNER within VU_HANDSHAKE_SEC of
 * connecting, or that stops in the middle of a message for VU_PARTIAL_SEC,
 * is stalled: it would hold the one front-end slot for good. */
static void vu_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct vu *vu = arg;

	(void)fd;
	(void)what;
	if (vu->conn_fd < 0)
		return;
	if (!vu->owned)
		log_warnx("vu: %s: front-end pid %d: handshake timed out (no "
		          "SET_OWNER within %d s, %u messages): dropped",
		          vu->path, (int)vu->peer_pid, VU_HANDSHAKE_SEC,
		          vu->nmsgs);
	else
		log_warnx("vu: %s: front-end pid %d: stopped in the middle of "
		          "a message (%u bytes) for %d s: dropped", vu->path,
		          (int)vu->peer_pid, vu->rx.got, VU_PARTIAL_SEC);
	vu_drop(vu);
}

/* Arm the deadline that applies now (see vu_deadline), if any. */
static void vu_arm_deadline(struct vu *vu, bool progress)
{
	struct timeval tv = { VU_HANDSHAKE_SEC, 0 };

	if (!vu->deadline_ev)
		return;
	if (vu->owned) {
		if (vu->rx.got == 0) {
			evtimer_del(vu->deadline_ev);
			return;
		}
		/* Each read that brings bytes restarts the wait. */
		if (!progress && evtimer_pending(vu->deadline_ev, NULL))
			return;
		tv.tv_sec = VU_PARTIAL_SEC;
	} else if (evtimer_pending(vu->deadline_ev, NULL)) {
		return;   /* the handshake's deadline counts from the connect */
	}
	evtimer_add(vu->deadline_ev, &tv);
}

/* Keep the fds a recvmsg brought; a message may carry at most 8, the rest
 * are closed and counted so the message fails its fd check. */
static void vu_rx_fds(struct vu *vu, struct vu_rx *rx, struct msghdr *mh)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n, i;
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			if (rx->msg.nfds < 8) {
				rx->msg.fds[rx->msg.nfds++] = fd;
			} else {
				vu_fd_close(vu, fd, VU_FD_UNKNOWN);
				rx->dropped_fds++;
			}
		}
	}
	/* The kernel closed what did not fit our buffer. */
	if (mh->msg_flags & MSG_CTRUNC)
		rx->dropped_fds++;
}

/* Read more of the current message, never past its end (the next
 * message's fds must not be taken for this one's).  Returns 1 when the
 * message is complete, 0 when the socket has nothing more now, -errno when
 * the connection must go (logged). */
static int vu_rx_step(struct vu *vu)
{
	struct vu_rx *rx = &vu->rx;
	/* Room for all a sender can attach to one sendmsg (SCM_MAX_FD), so
	 * that the extra ones are counted in the log line and closed here. */
	union {
		char buf[CMSG_SPACE(VU_RX_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov;
	struct msghdr mh;
	uint32_t total;
	bool in_hdr;
	ssize_t n;

	for (;;) {
		in_hdr = rx->got < VU_HDR_SIZE;
		total = VU_HDR_SIZE + (in_hdr ? 0 : rx->msg.size);
		if (!in_hdr && rx->got == total)
			return 1;
		if (in_hdr)
			iov.iov_base = rx->hdr + rx->got;
		else
			iov.iov_base = rx->msg.payload + (rx->got - VU_HDR_SIZE);
		iov.iov_len = total - rx->got;
		memset(&mh, 0, sizeof mh);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof cbuf.buf;
		n = recvmsg(vu->conn_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			log_warn("vu: %s: front-end connection", vu->path);
			return -errno;
		}
		vu_rx_fds(vu, rx, &mh);
		if (n == 0) {
			if (rx->got > 0)
				log_warnx("vu: %s: front-end disconnected in "
				          "the middle of a message (%u of %u "
				          "bytes)", vu->path, rx->got, total);
			else
				log_info("vu: %s: front-end disconnected",
				         vu->path);
			return -ECONNRESET;
		}
		rx->got += (uint32_t)n;
		if (in_hdr && rx->got == VU_HDR_SIZE) {
			memcpy(&rx->msg.request, rx->hdr, 4);
			memcpy(&rx->msg.flags, rx->hdr + 4, 4);
			memcpy(&rx->msg.size, rx->hdr + 8, 4);
			/* Checked before reading on: size says how much. */
			if (vu_msg_check_header(&rx->msg) < 0)
				return -EPROTO;
		}
	}
}

static void vu_conn_read(evutil_socket_t fd, short what, void *arg)
{
	struct vu *vu = arg;
	int i, r;

	(void)fd;
	(void)what;
	for (i = 0; i < VU_MSGS_PER_TURN; i++) {
		uint32_t before = vu->rx.got;

		r = vu_rx_step(vu);
		if (r == 0) {
			vu_arm_deadline(vu, vu->rx.got != before);
			return;
		}
		if (r > 0) {
			vu->nmsgs++;
			r = vu_msg_dispatch(vu, vu->conn_fd, &vu->rx.msg,
			                    vu->rx.dropped_fds);
			vu_rx_clear(vu, &vu->rx);
		}
		if (r < 0) {
			vu_drop(vu);
			return;
		}
	}
	vu_arm_deadline(vu, true);
}

/* The pid of the process at the other end of c (SO_PEERCRED), or 0. */
/* A second client while one is connected.  A front-end that completed
 * SET_OWNER keeps the device and the newcomer is turned away at once (a
 * second VMM on one socket is a mistake to report, not to queue); one that
 * has not is presumed stalled and gives way, so a real VMM always gets in
 * after a stalled one.  Returns true when the newcomer is to be served. */
static bool vu_admit(struct vu *vu, pid_t pid)
{
	if (vu->conn_fd < 0)
		return true;
	if (usock_peer_gone(vu->conn_fd)) {
		log_info("vu: %s: front-end pid %d disconnected", vu->path,
		         (int)vu->peer_pid);
		vu_drop(vu);
		return true;
	}
	if (vu->owned) {
		log_warnx("vu: %s: refused front-end pid %d: pid %d is "
		          "connected", vu->path, (int)pid, (int)vu->peer_pid);
		return false;
	}
	log_warnx("vu: %s: front-end pid %d dropped: it had not completed the "
	          "handshake (%u messages) and pid %d connected", vu->path,
	          (int)vu->peer_pid, vu->nmsgs, (int)pid);
	vu_drop(vu);
	return true;
}

static void vu_accept(evutil_socket_t fd, short what, void *arg)
{
	struct vu *vu = arg;
	struct timeval tv = { VU_ACCEPT_RETRY_SEC, 0 };
	uid_t uid = 0;
	pid_t pid;
	int c;

	(void)what;
	c = usock_accept(fd, "vu", vu->path);
	if (c == -EAGAIN)
		return;
	if (c < 0) {
		event_del(vu->listen_ev);
		event_add(vu->retry_ev, &tv);
		return;
	}
	pid = usock_peer_pid(c, &uid);
	if (!vu_admit(vu, pid)) {
		vu_fd_close_conn(vu, c);
		return;
	}
	vu->conn_ev = event_new(loop_base(vu->loop), c, EV_READ | EV_PERSIST,
	                        vu_conn_read, vu);
	if (!vu->conn_ev || event_add(vu->conn_ev, NULL) < 0) {
		log_warnx("vu: %s: cannot watch the front-end connection",
		          vu->path);
		if (vu->conn_ev)
			event_free(vu->conn_ev);
		vu->conn_ev = NULL;
		vu_fd_close_conn(vu, c);
		return;
	}
	vu->conn_fd = c;
	vu->peer_pid = pid;
	vu->peer_uid = uid;
	vu_arm_deadline(vu, true);
	log_info("vu: %s: front-end connected (pid %d, uid %u)", vu->path,
	         (int)pid, (unsigned)uid);
}

void vu_status(const struct vu *vu, FILE *out)
{
	if (vu->conn_fd < 0) {
		fprintf(out, "vhost-user: no front-end, listening on %s\n",
		        vu->path ? vu->path : "(detached)");
		return;
	}
	fprintf(out, "vhost-user: front-end pid %d uid %u, %s, %u messages\n",
	        (int)vu->peer_pid, (unsigned)vu->peer_uid,
	        !vu->owned ? "handshake" : vu_running(vu) ? "running" :
	        "ready", vu->nmsgs);
}

static void vu_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct vu *vu = arg;

	(void)fd;
	(void)what;
	if (event_add(vu->listen_ev, NULL) < 0)
		log_warnx("vu: %s: cannot watch the socket again", vu->path);
}

/* --- lifetime --------------------------------------------------------- */

static bool vu_device_ok(const struct vu_device *dev)
{
	if (!dev || !dev->name || dev->num_queues < 1 ||
	    dev->num_queues > VU_MAX_QUEUES ||
	    dev->config_size > VU_MAX_CONFIG || !dev->get_config ||
	    !dev->queue_started || !dev->queue_kicked ||
	    !dev->queue_stopped || !dev->reset) {
		log_warnx("vu: device description incomplete or out of range");
		errno = EINVAL;
		return false;
	}
	return true;
}

struct vu *vu_new_detached(struct loop *l, const struct vu_device *dev,
                           void *ctx)
{
	struct vu *vu;
	unsigned i;

	if (!vu_device_ok(dev))
		return NULL;
	if (!(vu = calloc(1, sizeof *vu)))
		return NULL;
	vu->loop = l;
	vu->dev = dev;
	vu->ctx = ctx;
	vu->listen_fd = -1;
	vu->conn_fd = -1;
	gmem_init(&vu->mem);
	for (i = 0; i < VU_MAX_QUEUES; i++)
		vu_queue_init(vu, i);
	return vu;
}

struct vu *vu_new(struct loop *l, const char *path,
                  const struct vu_device *dev, void *ctx)
{
	struct vu *vu = vu_new_detached(l, dev, ctx);
	int fd;

	if (!vu)
		return NULL;
	if (!(vu->path = strdup(path))) {
		free(vu);
		return NULL;
	}
	if ((fd = usock_listen(path, 4, "vu")) < 0) {
		free(vu->path);
		free(vu);
		errno = -fd;
		return NULL;
	}
	vu->listen_fd = fd;
	vu->listen_ev = event_new(loop_base(l), fd, EV_READ | EV_PERSIST,
	                          vu_accept, vu);
	vu->retry_ev = evtimer_new(loop_base(l), vu_accept_retry, vu);
	vu->deadline_ev = evtimer_new(loop_base(l), vu_deadline, vu);
	if (!vu->listen_ev || !vu->retry_ev || !vu->deadline_ev ||
	    event_add(vu->listen_ev, NULL) < 0) {
		log_warnx("vu: %s: cannot watch the socket", path);
		vu_free(vu);
		errno = ENOMEM;
		return NULL;
	}
	return vu;
}

void vu_free(struct vu *vu)
{
	if (!vu)
		return;
	vu_reset(vu);
	if (vu->conn_ev)
		event_free(vu->conn_ev);
	if (vu->conn_fd >= 0)
		close(vu->conn_fd);
	if (vu->listen_ev)
		event_free(vu->listen_ev);
	if (vu->retry_ev)
		event_free(vu->retry_ev);
	if (vu->deadline_ev)
		event_free(vu->deadline_ev);
	if (vu->listen_fd >= 0) {
		close(vu->listen_fd);
		unlink(vu->path);
	}
	vu_fd_closer_free(vu);
	free(vu->mountpoint);
	free(vu->path);
	free(vu);
}

int vu_set_mountpoint(struct vu *vu, const char *mountpoint)
{
	char *p = strdup(mountpoint);

	if (!p)
		return -ENOMEM;
	free(vu->mountpoint);
	vu->mountpoint = p;
	return 0;
}
