/*
 * vu: the vhost-user server, driven message by message on a detached vu
 * (replies over a socketpair) and, for the socket itself, through a real
 * listening socket and loop turns.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <linux/virtio_ring.h>

#include "chanfs/log.h"
#include "chanfs/loop.h"
#include "chanfs/virtio.h"
#include "chanfs/vq.h"
#include "chanfs/vu.h"

#define MEM_SIZE 0x10000
#define UVA_BASE 0x7f0000000000ULL
#define QSIZE 8
/* Ring layout in guest memory, per queue q: 0x1000 * (1 + 3q) onwards. */
#define DESC_GPA(q) (0x1000 + 0x3000 * (q))
#define AVAIL_GPA(q) (DESC_GPA(q) + 0x1000)
#define USED_GPA(q) (DESC_GPA(q) + 0x2000)

/* --- a small device ---------------------------------------------------- */

struct tdev {
	unsigned started[2], kicked[2], stopped[2], popped[2];
	unsigned resets;
	unsigned resets_with_a_ring;  /* reset while a queue was started */
	unsigned started_at_reset[2]; /* started[] when last reset */
	struct vq *vq[2];
	struct vq_elem elem;
	uint8_t config[8];
};

static void tdev_get_config(void *ctx, uint32_t off, void *buf, uint32_t len)
{
	struct tdev *d = ctx;

	memcpy(buf, d->config + off, len);
}

static void tdev_started(void *ctx, unsigned q, struct vq *vq)
{
	struct tdev *d = ctx;

	d->started[q]++;
	d->vq[q] = vq;
}

/* Completes every available buffer at once, with nothing written. */
static void tdev_kicked(void *ctx, unsigned q, struct vq *vq)
{
	struct tdev *d = ctx;

	d->kicked[q]++;
	while (vq_pop(vq, &d->elem) == 1) {
		d->popped[q]++;
		vq_push(vq, &d->elem, 0);
	}
	vq_flush(vq);
}

static void tdev_stopped(void *ctx, unsigned q, struct vq *vq)
{
	struct tdev *d = ctx;

	(void)vq;
	d->stopped[q]++;
	d->vq[q] = NULL;
}

static void tdev_reset(void *ctx)
{
	struct tdev *d = ctx;

	d->resets++;
	if (d->vq[0] || d->vq[1])
		d->resets_with_a_ring++;
	memcpy(d->started_at_reset, d->started, sizeof d->started);
}

static const struct vu_device tdev_desc = {
	.name = "test",
	.features = 0,
	.num_queues = 2,
	.config_size = 8,
	.get_config = tdev_get_config,
	.queue_started = tdev_started,
	.queue_kicked = tdev_kicked,
	.queue_stopped = tdev_stopped,
	.reset = tdev_reset,
};

/* --- capturing the log --------------------------------------------------- */

struct logcap {
	int saved;
	FILE *tmp;
};

/* stderr as it was before a capture that a failed assertion cut short */
static int logcap_saved = -1;

static void log_capture(struct logcap *c)
{
	fflush(stderr);
	c->tmp = tmpfile();
	assert_non_null(c->tmp);
	c->saved = dup(2);
	logcap_saved = c->saved;
	dup2(fileno(c->tmp), 2);
}

/* True if a captured line so far contains want. */
static bool log_has(struct logcap *c, const char *want)
{
	char line[1024];
	bool found = false;

	fflush(stderr);
	rewind(c->tmp);
	while (fgets(line, sizeof line, c->tmp))
		if (strstr(line, want))
			found = true;
	return found;
}

/* Stop capturing; returns the number of lines logged and checks that one
 * of them contains want (if given). */
static int log_release(struct logcap *c, const char *want)
{
	char line[1024];
	int n = 0;
	bool found = !want;

	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	logcap_saved = -1;
	rewind(c->tmp);
	while (fgets(line, sizeof line, c->tmp)) {
		n++;
		fputs(line, stderr); /* keep it visible in the test log */
		if (want && strstr(line, want))
			found = true;
	}
	fclose(c->tmp);
	if (!found)
		fail_msg("no log line contains \"%s\"", want);
	return n;
}

/* Teardown of every test: give stderr back if an assertion failed while
 * it was captured, so that cmocka's report is seen. */
static void log_uncapture(void)
{
	if (logcap_saved < 0)
		return;
	dup2(logcap_saved, 2);
	close(logcap_saved);
	logcap_saved = -1;
	log_init("test_vu", false);
}

static int plain_teardown(void **state)
{
	(void)state;
	log_uncapture();
	return 0;
}

/* --- fixture ------------------------------------------------------------ */

struct fx {
	struct loop *loop;
	struct vu *vu;
	struct tdev dev;
	int sv[2];       /* sv[0]: the back-end's end; sv[1]: ours */
	int memfd;
	uint8_t *mem;    /* the guest memory, as the guest sees it */
	int fds_before;
};

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	assert_non_null(f);
	f->fds_before = count_fds();
	f->loop = loop_new();
	assert_non_null(f->loop);
	f->dev.config[0] = 7; /* le64 CID 7 */
	f->vu = vu_new_detached(f->loop, &tdev_desc, &f->dev);
	assert_non_null(f->vu);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	                            f->sv), 0);
	assert_int_equal(fcntl(f->sv[1], F_SETFL, O_NONBLOCK), 0);
	f->memfd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(f->memfd >= 0);
	assert_int_equal(ftruncate(f->memfd, MEM_SIZE), 0);
	assert_int_equal(fcntl(f->memfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	f->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
	              f->memfd, 0);
	assert_true(f->mem != MAP_FAILED);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	log_uncapture();

	vu_free(f->vu);
	loop_free(f->loop);
	munmap(f->mem, MEM_SIZE);
	close(f->memfd);
	close(f->sv[0]);
	close(f->sv[1]);
	/* Whatever the test did, nothing of vu's is left open. */
	assert_int_equal(count_fds(), f->fds_before);
	free(f);
	return 0;
}

/* --- building and sending messages ------------------------------------- */

static struct vu_msg *msg_new(uint32_t req, uint32_t flags, const void *p,
                              uint32_t size)
{
	static struct vu_msg m;

	memset(&m, 0, sizeof m);
	m.request = req;
	m.flags = VU_VERSION | flags;
	m.size = size;
	if (p)
		memcpy(m.payload, p, size);
	return &m;
}

static int send_msg(struct fx *f, struct vu_msg *m)
{
	return vu_handle_msg(f->vu, f->sv[0], m);
}

static int send_plain(struct fx *f, uint32_t req, uint32_t flags)
{
	return send_msg(f, msg_new(req, flags, NULL, 0));
}

static int send_u64(struct fx *f, uint32_t req, uint32_t flags, uint64_t v)
{
	return send_msg(f, msg_new(req, flags, &v, sizeof v));
}

static int send_state(struct fx *f, uint32_t req, uint32_t flags,
                      uint32_t index, uint32_t num)
{
	struct vu_vring_state s = { index, num };

	return send_msg(f, msg_new(req, flags, &s, sizeof s));
}

/* fd < 0: NOFD.  The fd is handed over (vu owns it). */
static int send_file(struct fx *f, uint32_t req, uint32_t flags,
                     unsigned index, int fd)
{
	uint64_t v = index | (fd < 0 ? VU_VRING_NOFD : 0);
	struct vu_msg *m = msg_new(req, flags, &v, sizeof v);

	if (fd >= 0) {
		m->fds[0] = fd;
		m->nfds = 1;
	}
	return send_msg(f, m);
}

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	assert_true(fd >= 0);
	return fd;
}

static int send_mem(struct fx *f, uint32_t flags,
                    const struct vu_mem_region *r, unsigned n, unsigned nfds)
{
	struct vu_mem_table t = { .nregions = n };
	struct vu_msg *m;
	unsigned i;

	memcpy(t.r, r, n * sizeof *r);
	m = msg_new(VU_SET_MEM_TABLE, flags, &t, 8 + 32 * n);
	for (i = 0; i < nfds; i++) {
		m->fds[i] = dup(f->memfd);
		assert_true(m->fds[i] >= 0);
	}
	m->nfds = nfds;
	return send_msg(f, m);
}

static int send_mem_whole(struct fx *f, uint32_t flags)
{
	struct vu_mem_region r = { 0, MEM_SIZE, UVA_BASE, 0 };

	return send_mem(f, flags, &r, 1, 1);
}

static int send_addr(struct fx *f, uint32_t flags, unsigned q, uint64_t desc,
                     uint64_t used, uint64_t avail)
{
	struct vu_vring_addr a = { q, 0, desc, used, avail, 0 };

	return send_msg(f, msg_new(VU_SET_VRING_ADDR, flags, &a, sizeof a));
}

static int send_addr_q(struct fx *f, unsigned q)
{
	return send_addr(f, 0, q, UVA_BASE + DESC_GPA(q),
	                 UVA_BASE + USED_GPA(q), UVA_BASE + AVAIL_GPA(q));
}

/* The next reply, or -1 when there is none.  Checks the reply header. */
static int read_reply(struct fx *f, uint32_t req, void *payload, size_t max)
{
	uint32_t hdr[3];
	ssize_t n = recv(f->sv[1], hdr, sizeof hdr, 0);

	if (n < 0 && errno == EAGAIN)
		return -1;
	assert_int_equal(n, sizeof hdr);
	assert_int_equal(hdr[0], req);
	assert_int_equal(hdr[1], VU_VERSION | VU_FLAG_REPLY);
	assert_true(hdr[2] <= max);
	if (hdr[2] > 0)
		assert_int_equal(recv(f->sv[1], payload, hdr[2], 0), hdr[2]);
	return (int)hdr[2];
}

static uint64_t reply_u64(struct fx *f, uint32_t req)
{
	uint64_t v = ~0ULL;

	assert_int_equal(read_reply(f, req, &v, sizeof v), 8);
	return v;
}

static void assert_no_reply(struct fx *f)
{
	char c;

	assert_int_equal(recv(f->sv[1], &c, 1, 0), -1);
	assert_int_equal(errno, EAGAIN);
}

/* --- the QEMU 7.2 sequence ---------------------------------------------- */

static const uint64_t acked = VBIT(VIRTIO_F_VERSION_1_BIT) |
                              VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) |
                              VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT) |
                              VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT);

/* vhost_user_backend_init + vhost_dev_init + GET_CONFIG, as 7.2 sends
 * them for vhost-user-vsock. */
static void qemu_init(struct fx *f)
{
	uint8_t cfg[12 + 8] = { 0 };
	uint32_t len = 8;

	assert_int_equal(send_plain(f, VU_GET_FEATURES, 0), 0);
	reply_u64(f, VU_GET_FEATURES);
	assert_int_equal(send_plain(f, VU_GET_PROTOCOL_FEATURES, 0), 0);
	reply_u64(f, VU_GET_PROTOCOL_FEATURES);
	assert_int_equal(send_u64(f, VU_SET_PROTOCOL_FEATURES, 0,
	                          VU_PROTOCOL_FEATURES), 0);
	assert_int_equal(send_plain(f, VU_GET_QUEUE_NUM, 0), 0);
	assert_int_equal(reply_u64(f, VU_GET_QUEUE_NUM), 2);
	assert_int_equal(send_plain(f, VU_SET_OWNER, 0), 0);
	assert_int_equal(send_plain(f, VU_GET_FEATURES, 0), 0);
	reply_u64(f, VU_GET_FEATURES);
	assert_int_equal(send_file(f, VU_SET_VRING_CALL, 0, 0,
	                           new_eventfd()), 0);
	assert_int_equal(send_file(f, VU_SET_VRING_CALL, 0, 1,
	                           new_eventfd()), 0);
	memcpy(cfg + 4, &len, 4);
	assert_int_equal(send_msg(f, msg_new(VU_GET_CONFIG, 0, cfg,
	                                     sizeof cfg)), 0);
	assert_int_equal(read_reply(f, VU_GET_CONFIG, cfg, sizeof cfg), 20);
	assert_no_reply(f);
}

/* vhost_dev_start: features, memory (acked), each ring from base[q],
 * then enable. */
static void qemu_start_at(struct fx *f, const uint16_t base[2])
{
	unsigned q;

	assert_int_equal(send_u64(f, VU_SET_FEATURES, 0, acked), 0);
	assert_int_equal(send_mem_whole(f, VU_FLAG_NEED_REPLY), 0);
	assert_int_equal(reply_u64(f, VU_SET_MEM_TABLE), 0);
	for (q = 0; q < 2; q++) {
		assert_int_equal(send_state(f, VU_SET_VRING_NUM, 0, q, QSIZE),
		                 0);
		assert_int_equal(send_state(f, VU_SET_VRING_BASE, 0, q,
		                            base[q]), 0);
		assert_int_equal(send_addr_q(f, q), 0);
		assert_int_equal(send_file(f, VU_SET_VRING_KICK, 0, q,
		                           new_eventfd()), 0);
		assert_int_equal(send_file(f, VU_SET_VRING_CALL, 0, q,
		                           new_eventfd()), 0);
	}
	for (q = 0; q < 2; q++)
		assert_int_equal(send_state(f, VU_SET_VRING_ENABLE, 0, q, 1),
		                 0);
	assert_no_reply(f);
}

static void qemu_start(struct fx *f)
{
	static const uint16_t zero[2];

	qemu_start_at(f, zero);
}

/* vhost_dev_stop as QEMU 7.2 sends it for a QMP "stop" and for a guest
 * driver reset alike: disable each ring, then GET_VRING_BASE each; the
 * bases go to base[]. */
static void qemu_stop(struct fx *f, uint16_t base[2])
{
	struct vu_vring_state s;
	unsigned q;

	for (q = 0; q < 2; q++)
		assert_int_equal(send_state(f, VU_SET_VRING_ENABLE, 0, q, 0),
		                 0);
	for (q = 0; q < 2; q++) {
		assert_int_equal(send_state(f, VU_GET_VRING_BASE, 0, q, 0), 0);
		assert_int_equal(read_reply(f, VU_GET_VRING_BASE, &s,
		                            sizeof s), 8);
		assert_int_equal(s.index, q);
		base[q] = (uint16_t)s.num;
	}
	assert_no_reply(f);
}

/* The guest driver sets queue q up anew, as Linux does after a reset:
 * zeroed rings, nothing posted yet. */
static void guest_reinit(struct fx *f, unsigned q)
{
	memset(f->mem + DESC_GPA(q), 0, 0x3000);
}

/* Make n buffers available on queue q (one 16-byte readable descriptor
 * each), as a driver would. */
static void guest_post(struct fx *f, unsigned q, unsigned n)
{
	struct vring_desc *desc = (void *)(f->mem + DESC_GPA(q));
	struct vring_avail *avail = (void *)(f->mem + AVAIL_GPA(q));
	unsigned i;

	for (i = 0; i < n; i++) {
		uint16_t idx = avail->idx;
		uint16_t head = idx % QSIZE;

		desc[head].addr = 0xc000 + 16 * head;
		desc[head].len = 16;
		desc[head].flags = 0;
		desc[head].next = 0;
		avail->ring[idx % QSIZE] = head;
		avail->idx = idx + 1;
	}
}

static void test_qemu_72_handshake_starts_both_queues(void **state)
{
	struct fx *f = *state;

	qemu_init(f);
	assert_false(vu_running(f->vu));
	assert_int_equal(f->dev.started[0] + f->dev.started[1], 0);
	qemu_start(f);
	assert_true(vu_running(f->vu));
	assert_int_equal(f->dev.started[0], 1);
	assert_int_equal(f->dev.started[1], 1);
	assert_int_equal(vu_features(f->vu), acked);
}

static void test_queue_waits_for_enable_when_protocol_features_negotiated(
	void **state)
{
	struct fx *f = *state;

	qemu_init(f);
	assert_int_equal(send_u64(f, VU_SET_FEATURES, 0, acked), 0);
	assert_int_equal(send_mem_whole(f, 0), 0);
	assert_int_equal(send_state(f, VU_SET_VRING_NUM, 0, 0, QSIZE), 0);
	assert_int_equal(send_addr_q(f, 0), 0);
	assert_int_equal(send_file(f, VU_SET_VRING_KICK, 0, 0,
	                           new_eventfd()), 0);
	assert_int_equal(f->dev.started[0], 0);
	assert_int_equal(send_state(f, VU_SET_VRING_ENABLE, 0, 0, 1), 0);
	assert_int_equal(f->dev.started[0], 1);
}

static void test_queue_starts_on_kick_without_protocol_features(void **state)
{
	struct fx *f = *state;

	assert_int_equal(send_u64(f, VU_SET_FEATURES, 0,
	                          VBIT(VIRTIO_F_VERSION_1_BIT)), 0);
	assert_int_equal(send_mem_whole(f, 0), 0);
	assert_int_equal(send_state(f, VU_SET_VRING_NUM, 0, 1, QSIZE), 0);
	assert_int_equal(send_addr_q(f, 1), 0);
	assert_int_equal(f->dev.started[1], 0);
	assert_int_equal(send_file(f, VU_SET_VRING_KICK, 0, 1,
	                           new_eventfd()), 0);
	assert_int_equal(f->dev.started[1], 1);
	assert_true(vu_running(f->vu));
}

static void test_buffers_posted_before_start_are_processed_at_start(
	void **state)
{
	struct fx *f = *state;

	guest_post(f, 0, 3);
	qemu_init(f);
	qemu_start(f);
	assert_int_equal(f->dev.popped[0], 3);
	assert_int_equal(((struct vring_used *)(f->mem + USED_GPA(0)))->idx,
	                 3);
}

static void test_get_vring_base_stops_queue_and_reports_last_avail(
	void **state)
{
	struct fx *f = *state;
	struct vu_vring_state s;

	guest_post(f, 0, 5);
	qemu_init(f);
	qemu_start(f);
	assert_int_equal(send_state(f, VU_GET_VRING_BASE, 0, 0, 0), 0);
	assert_int_equal(read_reply(f, VU_GET_VRING_BASE, &s, sizeof s), 8);
	assert_int_equal(s.index, 0);
	assert_int_equal(s.num, 5);
	assert_int_equal(f->dev.stopped[0], 1);
	assert_int_equal(f->dev.stopped[1], 0);
	/* Restarting needs a new kick fd; then it resumes from the base. */
	guest_post(f, 0, 2);
	assert_int_equal(send_state(f, VU_SET_VRING_BASE, 0, 0, 5), 0);
	assert_int_equal(f->dev.started[0], 1);
	assert_int_equal(send_file(f, VU_SET_VRING_KICK, 0, 0,
	                           new_eventfd()), 0);
	assert_int_equal(f->dev.started[0], 2);
	assert_int_equal(f->dev.popped[0], 7);
	assert_int_equal(f->dev.resets, 0);
}

static void test_disable_stops_queue_and_enable_resumes_it(void **state)
{
	struct fx *f = *state;

	qemu_init(f);
	qemu_start(f);
	assert_int_equal(send_state(f, VU_SET_VRING_ENABLE, 0, 1, 0), 0);
	assert_int_equal(f->dev.stopped[1], 1);
	assert_true(vu_running(f->vu)); /* queue 0 still runs */
	guest_post(f, 1, 2);
	assert_int_equal(send_state(f, VU_SET_VRING_ENABLE, 0, 1, 1), 0);
	assert_int_equal(f->dev.started[1], 2);
	assert_int_equal(f->dev.popped[1], 2);
	assert_int_equal(f->dev.resets, 0);
}

static void test_pause_and_cont_resume_the_rings_without_a_reset(
	void **state)
{
	struct fx *f = *state;
	uint16_t base[2];

	guest_post(f, 0, 3);
	guest_post(f, 1, 2);
	qemu_init(f);
	qemu_start(f);
	qemu_stop(f, base);
	assert_int_equal(base[0], 3);
	assert_int_equal(base[1], 2);
	assert_int_equal(f->dev.stopped[0], 1);
	assert_int_equal(f->dev.stopped[1], 1);
	qemu_start_at(f, base);
	assert_int_equal(f->dev.resets, 0);
	assert_int_equal(f->dev.started[0], 2);
	assert_int_equal(f->dev.started[1], 2);
	/* Carrying on: nothing was popped twice. */
	assert_int_equal(f->dev.popped[0], 3);
	assert_int_equal(f->dev.popped[1], 2);
}

static void test_kick_fd_wakes_the_device(void **state)
{
	struct fx *f = *state;
	int kick = new_eventfd(), ours = dup(kick);
	uint64_t one = 1;

	qemu_init(f);
	qemu_start(f);
	assert_int_equal(send_file(f, VU_SET_VRING_KICK, 0, 0, kick), 0);
	f->dev.kicked[0] = 0;
	guest_post(f, 0, 1);
	assert_int_equal(write(ours, &one, sizeof one), 8);
	loop_turn(f->loop, false);
	assert_int_equal(f->dev.kicked[0], 1);
	assert_int_equal(f->dev.popped[0], 1);
	/* The eventfd was drained: no second wake-up. */
	loop_turn(f->loop, false);
	assert_int_equal(f->dev.kicked[0], 1);
	close(ours);
}

static void test_set_mem_table_while_running_restarts_queues(void **state)
{
	struct fx *f = *state;

	guest_post(f, 0, 2);
	qemu_init(f);
	qemu_start(f);
	assert_int_equal(f->dev.popped[0], 2);
	guest_post(f, 0, 1);
	assert_int_equal(send_mem_whole(f, VU_FLAG_NEED_REPLY), 0);
	assert_int_equal(reply_u64(f, VU_SET_MEM_TABLE), 0);
	assert_int_equal(f->dev.stopped[0], 1);
	assert_int_equal(f->dev.started[0], 2);
	assert_int_equal(f->dev.started[1], 2);
	assert_int_equal(f->dev.resets, 0);
	assert_true(vu_running(f->vu));
	/* The restarted ring carries on: completed buffers are not popped
	 * again, the new one is. */
	assert_int_equal(f->dev.popped[0], 3);
	assert_int_equal(((struct vring_used *)(f->mem + USED_GPA(0)))->idx,
	                 3);
}

static void test_driver_restart_at_base_0_resets_the_device_first(
	void **state)
{
	struct fx *f = *state;
	static const uint16_t zero[2];
	uint16_t base[2];
	unsigned q;

	guest_post(f, 0, 3);
	guest_post(f, 1, 2);
	qemu_init(f);
	qemu_start(f);
	qemu_stop(f, base);
	for (q = 0; q < 2; q++)
		guest_reinit(f, q);
	guest_post(f, 0, 1);
	qemu_start_at(f, zero);
	/* Reset once, with no ring in the device's hands, before the
	 * restarted rings were announced. */
	assert_int_equal(f->dev.resets, 1);
	assert_int_equal(f->dev.resets_with_a_ring, 0);
	assert_int_equal(f->dev.started_at_reset[0], 1);
	assert_int_equal(f->dev.started_at_reset[1], 1);
	assert_int_equal(f->dev.started[0], 2);
	assert_int_equal(f->dev.started[1], 2);
	assert_int_equal(f->dev.popped[0], 4);
}

/* QEMU starts queue 0 before it sends queue 1's base: when only the
 * second ring shows the restart, the first is stopped for the reset and
 * started again. */
static void test_driver_restart_seen_on_the_second_ring_restarts_both(
	void **state)
{
	struct fx *f = *state;
	uint16_t base[2];

	guest_post(f, 1, 2);
	qemu_init(f);
	qemu_start(f);
	qemu_stop(f, base);
	assert_int_equal(base[0], 0);
	guest_reinit(f, 1);
	base[1] = 0;
	qemu_start_at(f, base);
	assert_int_equal(f->dev.resets, 1);
	assert_int_equal(f->dev.resets_with_a_ring, 0);
	assert_int_equal(f->dev.stopped[0], 2);
	assert_int_equal(f->dev.started[0], 3);
	assert_int_equal(f->dev.started[1], 2);
	assert_true(vu_running(f->vu));
}

/* At index 0 a restart looks like a resume by its indexes; new ring
 * addresses still tell it. */
static void test_new_ring_addresses_are_a_driver_restart_even_at_index_0(
	void **state)
{
	struct fx *f = *state;
	uint16_t base[2];

	qemu_init(f);
	qemu_start(f);
	qemu_stop(f, base);
	assert_int_equal(base[0], 0);
	assert_int_equal(send_addr(f, 0, 0, UVA_BASE + DESC_GPA(2),
	                           UVA_BASE + USED_GPA(2),
	                           UVA_BASE + AVAIL_GPA(2)), 0);
	assert_int_equal(send_file(f, VU_SET_VRING_KICK, 0, 0,
	                           new_eventfd()), 0);
	assert_int_equal(send_state(f, VU_SET_VRING_ENABLE, 0, 0, 1), 0);
	assert_int_equal(f->dev.resets, 1);
	assert_int_equal(f->dev.started[0], 2);
}

static void test_get_features_offers_transport_bits(void **state)
{
	struct fx *f = *state;
	uint64_t v;

	assert_int_equal(send_plain(f, VU_GET_FEATURES, 0), 0);
	v = reply_u64(f, VU_GET_FEATURES);
	assert_int_equal(v, VBIT(VIRTIO_F_VERSION_1_BIT) |
	                    VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT) |
	                    VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) |
	                    VBIT(VIRTIO_F_IN_ORDER_BIT) |
	                    VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT));
	assert_int_equal(send_plain(f, VU_GET_PROTOCOL_FEATURES, 0), 0);
	assert_int_equal(reply_u64(f, VU_GET_PROTOCOL_FEATURES),
	                 (1 << 0) | (1 << 3) | (1 << 9));
}

static void test_get_config_returns_config_bytes(void **state)
{
	struct fx *f = *state;
	uint8_t buf[12 + 8];
	struct vu_config_hdr h = { 0, 8, 0 };
	uint64_t cid;

	qemu_init(f);
	memset(buf, 0xee, sizeof buf);
	memcpy(buf, &h, sizeof h);
	assert_int_equal(send_msg(f, msg_new(VU_GET_CONFIG, 0, buf,
	                                     sizeof buf)), 0);
	memset(buf, 0, sizeof buf);
	assert_int_equal(read_reply(f, VU_GET_CONFIG, buf, sizeof buf), 20);
	memcpy(&h, buf, sizeof h);
	assert_int_equal(h.offset, 0);
	assert_int_equal(h.size, 8);
	memcpy(&cid, buf + 12, 8);
	assert_int_equal(cid, 7);
	/* A part of it, at an offset. */
	h = (struct vu_config_hdr){ 0, 1, 0 };
	memcpy(buf, &h, sizeof h);
	assert_int_equal(send_msg(f, msg_new(VU_GET_CONFIG, 0, buf, 13)), 0);
	assert_int_equal(read_reply(f, VU_GET_CONFIG, buf, sizeof buf), 13);
	assert_int_equal(buf[12], 7);
}

static void test_get_config_outside_config_space_gets_empty_reply(
	void **state)
{
	struct fx *f = *state;
	uint8_t buf[12 + 8] = { 0 };
	struct vu_config_hdr h = { 4, 8, 0 };
	struct logcap c;

	qemu_init(f);
	memcpy(buf, &h, sizeof h);
	log_capture(&c);
	assert_int_equal(send_msg(f, msg_new(VU_GET_CONFIG, 0, buf,
	                                     sizeof buf)), 0);
	assert_int_equal(log_release(&c, "GET_CONFIG: offset 4 size 8"), 1);
	assert_int_equal(read_reply(f, VU_GET_CONFIG, buf, sizeof buf), 0);
}

static void test_get_config_without_config_feature_gets_empty_reply(
	void **state)
{
	struct fx *f = *state;
	uint8_t buf[12 + 8] = { 0 };
	struct vu_config_hdr h = { 0, 8, 0 };
	struct logcap c;

	memcpy(buf, &h, sizeof h);
	log_capture(&c);
	assert_int_equal(send_msg(f, msg_new(VU_GET_CONFIG, 0, buf,
	                                     sizeof buf)), 0);
	assert_int_equal(log_release(&c, "not negotiated"), 1);
	assert_int_equal(read_reply(f, VU_GET_CONFIG, buf, sizeof buf), 0);
}

static void test_reply_ack_acks_success_with_zero(void **state)
{
	struct fx *f = *state;

	assert_int_equal(send_u64(f, VU_SET_PROTOCOL_FEATURES, 0,
	                          1ULL << VU_PROTOCOL_F_REPLY_ACK), 0);
	assert_int_equal(send_plain(f, VU_SET_OWNER, VU_FLAG_NEED_REPLY), 0);
	assert_int_equal(reply_u64(f, VU_SET_OWNER), 0);
	/* Requests with their own reply get only that one. */
	assert_int_equal(send_plain(f, VU_GET_QUEUE_NUM, VU_FLAG_NEED_REPLY),
	                 0);
	assert_int_equal(reply_u64(f, VU_GET_QUEUE_NUM), 2);
	assert_no_reply(f);
}

static void test_need_reply_without_reply_ack_gets_no_reply(void **state)
{
	struct fx *f = *state;

	assert_int_equal(send_plain(f, VU_SET_OWNER, VU_FLAG_NEED_REPLY), 0);
	assert_no_reply(f);
}

/* The malformed classes: each logs exactly one line; with REPLY_ACK and
 * NEED_REPLY the answer is non-zero and the connection stays, without it
 * the connection is dropped. */
static void enable_reply_ack(struct fx *f)
{
	assert_int_equal(send_u64(f, VU_SET_PROTOCOL_FEATURES, 0,
	                          VU_PROTOCOL_FEATURES), 0);
}

static void expect_nack(struct fx *f, uint32_t req, int r, struct logcap *c,
                        const char *want)
{
	assert_int_equal(log_release(c, want), 1);
	assert_int_equal(r, 0);
	assert_int_not_equal(reply_u64(f, req), 0);
	assert_no_reply(f);
}

static void expect_drop(struct fx *f, int r, struct logcap *c,
                        const char *want)
{
	assert_int_equal(log_release(c, want), 1);
	assert_true(r < 0);
	assert_no_reply(f);
}

static void test_wrong_payload_size_drops_connection(void **state)
{
	struct fx *f = *state;
	struct logcap c;
	uint32_t four = 4;
	int r;

	log_capture(&c);
	r = send_msg(f, msg_new(VU_SET_VRING_NUM, 0, &four, sizeof four));
	expect_drop(f, r, &c, "SET_VRING_NUM: payload of 4 bytes (8 expected)");
}

static void test_wrong_payload_size_with_reply_ack_is_nacked(void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	r = send_msg(f, msg_new(VU_SET_OWNER, VU_FLAG_NEED_REPLY, "x", 1));
	expect_nack(f, VU_SET_OWNER, r, &c, "SET_OWNER: payload of 1 bytes");
}

static void test_oversized_payload_drops_even_with_reply_ack(void **state)
{
	struct fx *f = *state;
	struct vu_msg *m;
	struct logcap c;
	int r;

	enable_reply_ack(f);
	m = msg_new(VU_SET_FEATURES, VU_FLAG_NEED_REPLY, NULL, 0);
	m->size = VU_MAX_PAYLOAD + 1;
	log_capture(&c);
	r = send_msg(f, m);
	expect_drop(f, r, &c, "SET_FEATURES: payload of 4097 bytes");
}

static void test_bad_version_drops_connection(void **state)
{
	struct fx *f = *state;
	struct vu_msg *m = msg_new(VU_SET_OWNER, 0, NULL, 0);
	struct logcap c;
	int r;

	m->flags = 2;
	log_capture(&c);
	r = send_msg(f, m);
	expect_drop(f, r, &c, "SET_OWNER: bad header flags 0x2");
}

static void test_kick_without_fd_and_without_nofd_is_rejected(void **state)
{
	struct fx *f = *state;
	uint64_t v = 0;
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	r = send_msg(f, msg_new(VU_SET_VRING_KICK, VU_FLAG_NEED_REPLY, &v, 8));
	expect_nack(f, VU_SET_VRING_KICK, r, &c,
	            "SET_VRING_KICK: 0 fds attached (1 expected)");
}

static void test_fds_on_a_message_that_takes_none_are_closed(void **state)
{
	struct fx *f = *state;
	struct vu_msg *m;
	struct logcap c;
	int before = count_fds(), r;

	enable_reply_ack(f);
	m = msg_new(VU_SET_OWNER, VU_FLAG_NEED_REPLY, NULL, 0);
	m->fds[0] = new_eventfd();
	m->fds[1] = new_eventfd();
	m->nfds = 2;
	log_capture(&c);
	r = send_msg(f, m);
	expect_nack(f, VU_SET_OWNER, r, &c, "SET_OWNER: 2 fds attached");
	assert_int_equal(count_fds(), before);
}

static void test_mem_table_fd_count_must_match_regions(void **state)
{
	struct fx *f = *state;
	struct vu_mem_region r2[2] = {
		{ 0, 0x8000, UVA_BASE, 0 },
		{ 0x8000, 0x8000, UVA_BASE + 0x8000, 0x8000 },
	};
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	r = send_mem(f, VU_FLAG_NEED_REPLY, r2, 2, 1);
	expect_nack(f, VU_SET_MEM_TABLE, r, &c,
	            "SET_MEM_TABLE: 1 fds attached (2 expected)");
	/* Two regions of one fd, properly described, are fine. */
	assert_int_equal(send_mem(f, VU_FLAG_NEED_REPLY, r2, 2, 2), 0);
	assert_int_equal(reply_u64(f, VU_SET_MEM_TABLE), 0);
}

static void test_mem_table_region_count_out_of_range_is_rejected(
	void **state)
{
	struct fx *f = *state;
	uint8_t p[8] = { 0 };
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	r = send_msg(f, msg_new(VU_SET_MEM_TABLE, VU_FLAG_NEED_REPLY, p, 8));
	expect_nack(f, VU_SET_MEM_TABLE, r, &c, "SET_MEM_TABLE: 0 regions");
	p[0] = 9;
	log_capture(&c);
	r = send_msg(f, msg_new(VU_SET_MEM_TABLE, VU_FLAG_NEED_REPLY, p, 8));
	expect_nack(f, VU_SET_MEM_TABLE, r, &c, "SET_MEM_TABLE: 9 regions");
}

static void test_overlapping_regions_are_rejected(void **state)
{
	struct fx *f = *state;
	struct vu_mem_region r2[2] = {
		{ 0, 0x8000, UVA_BASE, 0 },
		{ 0x4000, 0x8000, UVA_BASE + 0x10000, 0x8000 },
	};
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	r = send_mem(f, VU_FLAG_NEED_REPLY, r2, 2, 2);
	expect_nack(f, VU_SET_MEM_TABLE, r, &c, "overlaps");
}

static void test_region_past_the_end_of_its_fd_is_rejected(void **state)
{
	struct fx *f = *state;
	struct vu_mem_region mr = { 0, MEM_SIZE, UVA_BASE, 0x1000 };
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	r = send_mem(f, VU_FLAG_NEED_REPLY, &mr, 1, 1);
	expect_nack(f, VU_SET_MEM_TABLE, r, &c, "past the end of its fd");
}

static void test_region_fd_that_is_not_memory_is_rejected(void **state)
{
	struct fx *f = *state;
	struct vu_mem_table t = { .nregions = 1 };
	struct vu_msg *m;
	struct logcap c;
	int r;

	enable_reply_ack(f);
	t.r[0] = (struct vu_mem_region){ 0, 0x1000, UVA_BASE, 0 };
	m = msg_new(VU_SET_MEM_TABLE, VU_FLAG_NEED_REPLY, &t, 40);
	m->fds[0] = new_eventfd();
	m->nfds = 1;
	log_capture(&c);
	r = send_msg(f, m);
	expect_nack(f, VU_SET_MEM_TABLE, r, &c, "not a memory file");
}

static void test_region_memfd_that_may_shrink_is_rejected(void **state)
{
	struct fx *f = *state;
	struct vu_mem_table t = { .nregions = 1 };
	struct vu_msg *m;
	struct logcap c;
	int r, fd = memfd_create("unsealed", MFD_CLOEXEC);

	/* big enough, but it could be cut short after the mmap: SIGBUS */
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 0x1000), 0);
	enable_reply_ack(f);
	t.r[0] = (struct vu_mem_region){ 0, 0x1000, UVA_BASE, 0 };
	m = msg_new(VU_SET_MEM_TABLE, VU_FLAG_NEED_REPLY, &t, 40);
	m->fds[0] = fd;
	m->nfds = 1;
	log_capture(&c);
	r = send_msg(f, m);
	expect_nack(f, VU_SET_MEM_TABLE, r, &c, "not sealed against shrinking");
}

static void test_rejected_mem_table_keeps_the_old_one(void **state)
{
	struct fx *f = *state;
	struct vu_mem_region bad = { 0, MEM_SIZE * 2, UVA_BASE, 0 };
	struct logcap c;

	qemu_init(f);
	qemu_start(f);
	log_capture(&c);
	assert_int_equal(send_mem(f, VU_FLAG_NEED_REPLY, &bad, 1, 1), 0);
	assert_int_equal(log_release(&c, "past the end of its fd"), 1);
	assert_int_not_equal(reply_u64(f, VU_SET_MEM_TABLE), 0);
	assert_true(vu_running(f->vu));
	assert_int_equal(f->dev.stopped[0], 0);
}

static void test_queue_index_out_of_range_is_rejected(void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	r = send_state(f, VU_SET_VRING_NUM, VU_FLAG_NEED_REPLY, 9, 256);
	expect_nack(f, VU_SET_VRING_NUM, r, &c,
	            "vu: SET_VRING_NUM: queue 9 out of range (device has 2)");
	log_capture(&c);
	r = send_file(f, VU_SET_VRING_CALL, VU_FLAG_NEED_REPLY, 2,
	              new_eventfd());
	expect_nack(f, VU_SET_VRING_CALL, r, &c,
	            "SET_VRING_CALL: queue 2 out of range");
}

static void test_get_vring_base_out_of_range_drops_connection(void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	/* It has its own reply and no error form for it. */
	r = send_state(f, VU_GET_VRING_BASE, VU_FLAG_NEED_REPLY, 5, 0);
	expect_drop(f, r, &c, "GET_VRING_BASE: queue 5 out of range");
}

static void test_bad_queue_size_is_rejected(void **state)
{
	static const uint32_t bad[] = { 0, 3, 100, 65536, 0x80000000 };
	struct fx *f = *state;
	struct logcap c;
	unsigned i;
	int r;

	enable_reply_ack(f);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		log_capture(&c);
		r = send_state(f, VU_SET_VRING_NUM, VU_FLAG_NEED_REPLY, 0,
		               bad[i]);
		expect_nack(f, VU_SET_VRING_NUM, r, &c, "is not a power of two");
	}
	assert_int_equal(send_state(f, VU_SET_VRING_NUM, 0, 0, 32768), 0);
}

static void test_ring_addresses_outside_guest_memory_are_rejected(
	void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int r;

	enable_reply_ack(f);
	assert_int_equal(send_mem_whole(f, 0), 0);
	assert_int_equal(send_state(f, VU_SET_VRING_NUM, 0, 0, QSIZE), 0);
	log_capture(&c);
	r = send_addr(f, VU_FLAG_NEED_REPLY, 0, UVA_BASE + MEM_SIZE - 64,
	              UVA_BASE + USED_GPA(0), UVA_BASE + AVAIL_GPA(0));
	expect_nack(f, VU_SET_VRING_ADDR, r, &c,
	            "descriptor table not in guest memory");
	log_capture(&c);
	r = send_addr(f, VU_FLAG_NEED_REPLY, 0, UVA_BASE + DESC_GPA(0),
	              UVA_BASE + USED_GPA(0) + 2, UVA_BASE + AVAIL_GPA(0));
	expect_nack(f, VU_SET_VRING_ADDR, r, &c, "used ring");
	log_capture(&c);
	r = send_addr(f, VU_FLAG_NEED_REPLY, 0, UVA_BASE + DESC_GPA(0),
	              UVA_BASE + USED_GPA(0), 0x1000);
	expect_nack(f, VU_SET_VRING_ADDR, r, &c, "avail ring");
}

static void test_kick_polling_mode_is_refused(void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	r = send_file(f, VU_SET_VRING_KICK, VU_FLAG_NEED_REPLY, 0, -1);
	expect_nack(f, VU_SET_VRING_KICK, r, &c, "polling mode");
}

static void test_notification_fd_that_is_not_an_eventfd_is_rejected(
	void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int p[2], r;

	enable_reply_ack(f);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	log_capture(&c);
	/* a pipe whose reader is gone: signalling it would be SIGPIPE */
	r = send_file(f, VU_SET_VRING_CALL, VU_FLAG_NEED_REPLY, 0, p[1]);
	expect_nack(f, VU_SET_VRING_CALL, r, &c,
	            "SET_VRING_CALL: queue 0: fd is not an eventfd");
	log_capture(&c);
	r = send_file(f, VU_SET_VRING_KICK, VU_FLAG_NEED_REPLY, 1,
	              dup(f->memfd));
	expect_nack(f, VU_SET_VRING_KICK, r, &c,
	            "SET_VRING_KICK: queue 1: fd is not an eventfd");
}

/* SET_VRING_ERR goes through the checks KICK and CALL share, but its fd
 * is only kept: NOFD is fine (unlike KICK's), the running ring keeps its
 * call fd and is not restarted, and a bad fd, unknown bits or a queue out of
 * range are refused under ERR's own name. */
static void test_vring_err_fd_is_kept_apart_from_kick_and_call(void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int call, p[2], r;

	qemu_init(f);
	qemu_start(f);
	assert_int_equal(f->dev.started[0], 1);
	call = f->dev.vq[0]->call_fd;
	assert_true(call >= 0);
	assert_int_equal(send_file(f, VU_SET_VRING_ERR, VU_FLAG_NEED_REPLY, 0,
	                           new_eventfd()), 0);
	assert_int_equal(reply_u64(f, VU_SET_VRING_ERR), 0);
	assert_int_equal(send_file(f, VU_SET_VRING_ERR, VU_FLAG_NEED_REPLY, 0,
	                           -1), 0);
	assert_int_equal(reply_u64(f, VU_SET_VRING_ERR), 0);
	assert_int_equal(f->dev.vq[0]->call_fd, call);
	assert_int_equal(f->dev.started[0], 1);
	assert_int_equal(f->dev.stopped[0], 0);

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	log_capture(&c);
	r = send_file(f, VU_SET_VRING_ERR, VU_FLAG_NEED_REPLY, 1, p[1]);
	expect_nack(f, VU_SET_VRING_ERR, r, &c,
	            "SET_VRING_ERR: queue 1: fd is not an eventfd");
	log_capture(&c);
	r = send_u64(f, VU_SET_VRING_ERR, VU_FLAG_NEED_REPLY,
	             VU_VRING_NOFD | 0x200);
	expect_nack(f, VU_SET_VRING_ERR, r, &c, "SET_VRING_ERR: unknown bits");
	log_capture(&c);
	r = send_file(f, VU_SET_VRING_ERR, VU_FLAG_NEED_REPLY, 2,
	              new_eventfd());
	expect_nack(f, VU_SET_VRING_ERR, r, &c,
	            "SET_VRING_ERR: queue 2 out of range");
}

static void test_unoffered_features_are_rejected(void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	r = send_u64(f, VU_SET_FEATURES, VU_FLAG_NEED_REPLY,
	             VBIT(VIRTIO_F_VERSION_1_BIT) | (1ULL << 26));
	expect_nack(f, VU_SET_FEATURES, r, &c, "bits 0x4000000 were not");
	log_capture(&c);
	r = send_u64(f, VU_SET_PROTOCOL_FEATURES, VU_FLAG_NEED_REPLY,
	             1ULL << 1);
	expect_nack(f, VU_SET_PROTOCOL_FEATURES, r, &c, "were not offered");
}

static void test_set_config_is_refused(void **state)
{
	struct fx *f = *state;
	uint8_t buf[12 + 8] = { 0 };
	struct vu_config_hdr h = { 0, 8, 0 };
	struct logcap c;
	int r;

	enable_reply_ack(f);
	memcpy(buf, &h, sizeof h);
	log_capture(&c);
	r = send_msg(f, msg_new(VU_SET_CONFIG, VU_FLAG_NEED_REPLY, buf,
	                        sizeof buf));
	expect_nack(f, VU_SET_CONFIG, r, &c, "read-only");
}

static void test_unknown_request_is_rejected(void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int r;

	log_capture(&c);
	r = send_plain(f, 99, 0);
	expect_drop(f, r, &c, "vu: unknown request 99");
	enable_reply_ack(f);
	log_capture(&c);
	r = send_plain(f, 99, VU_FLAG_NEED_REPLY);
	expect_nack(f, 99, r, &c, "vu: unknown request 99");
	log_capture(&c);
	r = send_u64(f, VU_SET_LOG_BASE, VU_FLAG_NEED_REPLY, 0);
	expect_nack(f, VU_SET_LOG_BASE, r, &c, "SET_LOG_BASE: not supported");
}

static void test_running_queue_refuses_new_size(void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int r;

	qemu_init(f);
	qemu_start(f);
	log_capture(&c);
	r = send_state(f, VU_SET_VRING_NUM, VU_FLAG_NEED_REPLY, 0, 16);
	expect_nack(f, VU_SET_VRING_NUM, r, &c, "queue 0 is running");
}

static void test_reset_stops_queues_and_closes_every_fd(void **state)
{
	struct fx *f = *state;
	int before = count_fds();

	qemu_init(f);
	qemu_start(f);
	assert_true(count_fds() > before);
	vu_reset(f->vu);
	assert_false(vu_running(f->vu));
	assert_int_equal(f->dev.stopped[0], 1);
	assert_int_equal(f->dev.stopped[1], 1);
	assert_int_equal(f->dev.resets, 1);
	assert_int_equal(count_fds(), before);
	assert_int_equal(vu_features(f->vu), 0);
	/* And the next front-end can start over. */
	qemu_init(f);
	qemu_start(f);
	assert_true(vu_running(f->vu));
}

static void test_debug_trace_names_each_message(void **state)
{
	static const char *const want[] = {
		"vu: <- GET_FEATURES",
		"vu: -> GET_FEATURES 0x970000000",
		"vu: <- SET_PROTOCOL_FEATURES 0x209",
		"vu: <- SET_VRING_CALL q1 fd",
		"vu: <- GET_CONFIG off 0 len 8 flags 0x0",
		"vu: -> GET_CONFIG off 0 len 8",
		"vu: <- SET_MEM_TABLE 1 regions",
		"vu:    region 0 gpa 0x0 size 0x10000 uva 0x7f0000000000 "
		"offset 0x0",
		"vu: <- SET_VRING_NUM q1 num 8",
		"vu: <- SET_VRING_BASE q1 base 0",
		"vu: <- SET_VRING_ADDR q1 flags 0x0 desc 0x7f0000004000 used "
		"0x7f0000006000 avail 0x7f0000005000",
		"vu: <- SET_VRING_ENABLE q1 enable 1",
		"vu: queue 1 started (size 8, base 0)",
	};
	struct fx *f = *state;
	struct logcap c;
	unsigned i;

	log_init("test_vu", true);
	log_capture(&c);
	qemu_init(f);
	qemu_start(f);
	assert_int_equal(send_state(f, VU_GET_VRING_BASE, 0, 1, 0), 0);
	for (i = 0; i < sizeof want / sizeof want[0]; i++)
		if (!log_has(&c, want[i]))
			fail_msg("no trace line \"%s\"", want[i]);
	log_init("test_vu", false);
	log_release(&c, "vu: -> GET_VRING_BASE q1 num 0");
}

static void test_ring_is_checked_at_start_when_its_size_came_last(
	void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int r;

	enable_reply_ack(f);
	assert_int_equal(send_u64(f, VU_SET_FEATURES, 0, acked), 0);
	assert_int_equal(send_mem_whole(f, 0), 0);
	/* Without a size the addresses cannot be checked yet. */
	assert_int_equal(send_addr_q(f, 0), 0);
	assert_int_equal(send_file(f, VU_SET_VRING_KICK, 0, 0,
	                           new_eventfd()), 0);
	assert_int_equal(send_state(f, VU_SET_VRING_ENABLE, 0, 0, 1), 0);
	log_capture(&c);
	r = send_state(f, VU_SET_VRING_NUM, VU_FLAG_NEED_REPLY, 0, 32768);
	expect_nack(f, VU_SET_VRING_NUM, r, &c,
	            "SET_VRING_NUM: queue 0: descriptor table not in guest "
	            "memory");
	assert_int_equal(f->dev.started[0], 0);
	assert_int_equal(send_state(f, VU_SET_VRING_NUM, 0, 0, QSIZE), 0);
	assert_int_equal(f->dev.started[0], 1);
}

static void test_ring_state_messages_are_validated(void **state)
{
	struct fx *f = *state;
	struct vu_vring_addr a = { 0, 0x2, 0, 0, 0, 0 };
	uint8_t cfg[12 + 8] = { 0 };
	struct vu_config_hdr h = { 0, 8, 2 };
	struct logcap c;
	int r;

	enable_reply_ack(f);
	log_capture(&c);
	r = send_state(f, VU_SET_VRING_ENABLE, VU_FLAG_NEED_REPLY, 0, 1);
	expect_nack(f, VU_SET_VRING_ENABLE, r, &c,
	            "PROTOCOL_FEATURES not negotiated");
	assert_int_equal(send_u64(f, VU_SET_FEATURES, 0, acked), 0);
	log_capture(&c);
	r = send_state(f, VU_SET_VRING_ENABLE, VU_FLAG_NEED_REPLY, 0, 2);
	expect_nack(f, VU_SET_VRING_ENABLE, r, &c, "value 2 is not 0 or 1");
	log_capture(&c);
	r = send_state(f, VU_SET_VRING_BASE, VU_FLAG_NEED_REPLY, 0, 65536);
	expect_nack(f, VU_SET_VRING_BASE, r, &c, "base 65536");
	log_capture(&c);
	r = send_msg(f, msg_new(VU_SET_VRING_ADDR, VU_FLAG_NEED_REPLY, &a,
	                        sizeof a));
	expect_nack(f, VU_SET_VRING_ADDR, r, &c, "unknown flags 0x2");
	a.flags = 1;
	log_capture(&c);
	r = send_msg(f, msg_new(VU_SET_VRING_ADDR, VU_FLAG_NEED_REPLY, &a,
	                        sizeof a));
	expect_nack(f, VU_SET_VRING_ADDR, r, &c, "logging requested");
	log_capture(&c);
	r = send_u64(f, VU_SET_VRING_CALL, VU_FLAG_NEED_REPLY,
	             VU_VRING_NOFD | 0x200);
	expect_nack(f, VU_SET_VRING_CALL, r, &c, "unknown bits in 0x300");
	memcpy(cfg, &h, sizeof h);
	log_capture(&c);
	assert_int_equal(send_msg(f, msg_new(VU_GET_CONFIG, 0, cfg,
	                                     sizeof cfg)), 0);
	assert_int_equal(log_release(&c, "GET_CONFIG: unknown flags 0x2"), 1);
	assert_int_equal(read_reply(f, VU_GET_CONFIG, cfg, sizeof cfg), 0);
}

static void test_running_ring_accepts_same_addresses_and_new_call_fd(
	void **state)
{
	struct fx *f = *state;
	struct logcap c;
	int r;

	qemu_init(f);
	qemu_start(f);
	assert_int_equal(send_addr_q(f, 0), 0);
	assert_int_equal(send_file(f, VU_SET_VRING_CALL, 0, 0, -1), 0);
	assert_int_equal(send_file(f, VU_SET_VRING_CALL, 0, 0,
	                           new_eventfd()), 0);
	assert_int_equal(f->dev.stopped[0], 0);
	log_capture(&c);
	r = send_state(f, VU_SET_VRING_BASE, VU_FLAG_NEED_REPLY, 0, 3);
	expect_nack(f, VU_SET_VRING_BASE, r, &c, "queue 0 is running");
}

/* --- through the socket ------------------------------------------------ */

struct sfx {
	struct loop *loop;
	struct vu *vu;
	struct tdev dev;
	char dir[64], path[96];
};

static void sfx_open(struct sfx *s)
{
	memset(s, 0, sizeof *s);
	strcpy(s->dir, "/tmp/test_vu.XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->path, sizeof s->path, "%s/sock", s->dir);
	s->loop = loop_new();
	assert_non_null(s->loop);
	s->vu = vu_new(s->loop, s->path, &tdev_desc, &s->dev);
	assert_non_null(s->vu);
}

static void sfx_close(struct sfx *s)
{
	vu_free(s->vu);
	loop_free(s->loop);
	assert_int_equal(access(s->path, F_OK), -1);
	rmdir(s->dir);
}

static void turn(struct sfx *s)
{
	int i;

	/* A few turns: accept, then read. */
	for (i = 0; i < 4; i++)
		loop_turn(s->loop, false);
}

static int sconnect(struct sfx *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, s->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/* Send bytes, with fds attached to the first byte. */
static void ssend(int fd, const void *p, size_t len, const int *fds,
                  unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { (void *)p, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (nfds) {
		mh.msg_control = cb.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	assert_int_equal(sendmsg(fd, &mh, 0), (ssize_t)len);
}

static size_t wire(uint8_t *buf, uint32_t req, const void *p, uint32_t size)
{
	uint32_t hdr[3] = { req, VU_VERSION, size };

	memcpy(buf, hdr, sizeof hdr);
	if (size)
		memcpy(buf + 12, p, size);
	return 12 + size;
}

static uint64_t sreply_u64(int fd, uint32_t req)
{
	uint32_t hdr[3];
	uint64_t v;

	assert_int_equal(recv(fd, hdr, sizeof hdr, MSG_DONTWAIT), 12);
	assert_int_equal(hdr[0], req);
	assert_int_equal(hdr[1], VU_VERSION | VU_FLAG_REPLY);
	assert_int_equal(hdr[2], 8);
	assert_int_equal(recv(fd, &v, 8, MSG_DONTWAIT), 8);
	return v;
}

static void test_socket_is_private_kept_while_live_replaced_when_stale(
	void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct logcap c;
	struct sfx s;
	struct stat st;
	struct vu *again;
	int fd;

	(void)state;
	sfx_open(&s);
	assert_int_equal(stat(s.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* A second server on a live socket leaves it alone. */
	log_capture(&c);
	again = vu_new(s.loop, s.path, &tdev_desc, &s.dev);
	assert_int_equal(errno, EADDRINUSE);
	assert_int_equal(log_release(&c, "is listening there"), 1);
	assert_null(again);
	turn(&s);
	sfx_close(&s);
	/* A socket file nobody answers on is replaced, with a line. */
	assert_non_null(mkdtemp(strcpy(s.dir, "/tmp/test_vu.XXXXXX")));
	snprintf(s.path, sizeof s.path, "%s/sock", s.dir);
	strcpy(sa.sun_path, s.path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);
	s.loop = loop_new();
	log_capture(&c);
	s.vu = vu_new(s.loop, s.path, &tdev_desc, &s.dev);
	assert_int_equal(log_release(&c, "replacing a stale socket"), 1);
	assert_non_null(s.vu);
	sfx_close(&s);
}

static void test_socket_refuses_to_replace_a_regular_file(void **state)
{
	char dir[] = "/tmp/test_vu.XXXXXX", path[64];
	struct loop *l = loop_new();
	struct tdev d;
	struct logcap c;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/file", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	log_capture(&c);
	assert_null(vu_new(l, path, &tdev_desc, &d));
	assert_int_equal(log_release(&c, "is not a socket"), 1);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	rmdir(dir);
	loop_free(l);
}

static void test_messages_split_across_reads_are_reassembled(void **state)
{
	struct sfx s;
	uint8_t buf[512];
	size_t len, i;
	uint64_t pf = VU_PROTOCOL_FEATURES, one = 1;
	uint32_t need_reply = VU_VERSION | VU_FLAG_NEED_REPLY;
	int fd, efd;

	(void)state;
	sfx_open(&s);
	fd = sconnect(&s);
	turn(&s);
	/* Two messages delivered a byte at a time, then one whose call fd
	 * comes with its first byte and the rest later. */
	len = wire(buf, VU_SET_PROTOCOL_FEATURES, &pf, 8);
	for (i = 0; i < len; i++) {
		ssend(fd, buf + i, 1, NULL, 0);
		turn(&s);
	}
	len = wire(buf, VU_GET_QUEUE_NUM, NULL, 0);
	for (i = 0; i < len; i++) {
		ssend(fd, buf + i, 1, NULL, 0);
		turn(&s);
	}
	assert_int_equal(sreply_u64(fd, VU_GET_QUEUE_NUM), 2);
	efd = new_eventfd();
	len = wire(buf, VU_SET_VRING_CALL, &one, 8);
	ssend(fd, buf, 1, &efd, 1);
	close(efd);
	turn(&s);
	ssend(fd, buf + 1, len - 1, NULL, 0);
	/* and an acked message right behind it */
	len = wire(buf, VU_SET_OWNER, NULL, 0);
	memcpy(buf + 4, &need_reply, 4);
	ssend(fd, buf, len, NULL, 0);
	turn(&s);
	assert_int_equal(sreply_u64(fd, VU_SET_OWNER), 0);
	close(fd);
	turn(&s);
	sfx_close(&s);
}

/* fd is the front-end being served: GET_QUEUE_NUM gets its answer. */
static bool served(struct sfx *s, int fd)
{
	uint8_t buf[16];
	size_t len = wire(buf, VU_GET_QUEUE_NUM, NULL, 0);

	ssend(fd, buf, len, NULL, 0);
	turn(s);
	return sreply_u64(fd, VU_GET_QUEUE_NUM) == 2;
}

static void test_a_stalled_front_end_gives_way_an_owner_does_not(
	void **state)
{
	struct sfx s;
	uint8_t buf[64];
	size_t len;
	int a, b, c, before;

	(void)state;
	sfx_open(&s);
	before = count_fds();
	a = sconnect(&s);
	turn(&s);
	/* a leaves fds behind in vu (call fds) but never sends SET_OWNER */
	{
		uint64_t v = 0;
		int efd = new_eventfd();

		len = wire(buf, VU_SET_VRING_CALL, &v, 8);
		ssend(a, buf, len, &efd, 1);
		close(efd);
		turn(&s);
	}
	b = sconnect(&s);
	turn(&s);
	/* a is presumed stalled: dropped (device reset), b is served */
	assert_int_equal(s.dev.resets, 1);
	assert_int_equal(recv(a, buf, sizeof buf, MSG_DONTWAIT), 0);
	close(a);
	assert_true(served(&s, b));
	/* once b is the owner, a newcomer is turned away and b stays */
	len = wire(buf, VU_SET_OWNER, NULL, 0);
	ssend(b, buf, len, NULL, 0);
	turn(&s);
	c = sconnect(&s);
	turn(&s);
	assert_int_equal(recv(c, buf, sizeof buf, MSG_DONTWAIT), 0);
	close(c);
	assert_true(served(&s, b));
	assert_int_equal(s.dev.resets, 1);
	close(b);
	turn(&s);
	assert_int_equal(count_fds(), before);
	sfx_close(&s);
}

static void test_disconnect_mid_message_is_logged_and_resets(void **state)
{
	struct sfx s;
	struct logcap c;
	uint8_t buf[64];
	int fd, before;

	(void)state;
	sfx_open(&s);
	before = count_fds();
	fd = sconnect(&s);
	turn(&s);
	wire(buf, VU_GET_QUEUE_NUM, NULL, 0);
	ssend(fd, buf, 5, NULL, 0);
	turn(&s);
	close(fd);
	log_capture(&c);
	turn(&s);
	assert_int_equal(log_release(&c, "in the middle of a message (5 of "
	                             "12 bytes)"), 1);
	assert_int_equal(s.dev.resets, 1);
	assert_int_equal(count_fds(), before);
	sfx_close(&s);
}

static void test_too_many_fds_on_one_message_are_closed_and_rejected(
	void **state)
{
	struct sfx s;
	struct logcap c;
	uint8_t buf[64];
	int fd, fds[10], before;
	uint64_t v = 0;
	size_t len;
	unsigned i;

	(void)state;
	sfx_open(&s);
	before = count_fds();
	fd = sconnect(&s);
	turn(&s);
	for (i = 0; i < 10; i++)
		fds[i] = new_eventfd();
	len = wire(buf, VU_SET_VRING_KICK, &v, 8);
	ssend(fd, buf, len, fds, 10);
	for (i = 0; i < 10; i++)
		close(fds[i]);
	log_capture(&c);
	turn(&s);
	assert_int_equal(log_release(&c, "SET_VRING_KICK: 10 fds attached"),
	                 1);
	/* dropped: the connection is closed */
	assert_int_equal(recv(fd, buf, sizeof buf, 0), 0);
	close(fd);
	turn(&s);
	assert_int_equal(count_fds(), before);
	sfx_close(&s);
}

static void test_oversized_header_on_the_socket_drops_the_connection(
	void **state)
{
	struct sfx s;
	struct logcap c;
	uint32_t hdr[3] = { VU_SET_OWNER, VU_VERSION, 1 << 20 };
	char b;
	int fd;

	(void)state;
	sfx_open(&s);
	fd = sconnect(&s);
	turn(&s);
	ssend(fd, hdr, sizeof hdr, NULL, 0);
	log_capture(&c);
	turn(&s);
	assert_int_equal(log_release(&c, "SET_OWNER: payload of 1048576 "
	                             "bytes"), 1);
	assert_int_equal(recv(fd, &b, 1, 0), 0);
	close(fd);
	sfx_close(&s);
}

static void test_fds_of_an_unfinished_message_are_closed_at_disconnect(
	void **state)
{
	struct sfx s;
	struct logcap c;
	uint8_t buf[64];
	uint64_t v = 0;
	int fd, efd, before;

	(void)state;
	sfx_open(&s);
	before = count_fds();
	fd = sconnect(&s);
	turn(&s);
	efd = new_eventfd();
	wire(buf, VU_SET_VRING_KICK, &v, 8);
	ssend(fd, buf, 14, &efd, 1);
	close(efd);
	turn(&s);
	close(fd);
	log_capture(&c);
	turn(&s);
	assert_int_equal(log_release(&c, "(14 of 20 bytes)"), 1);
	assert_int_equal(count_fds(), before);
	sfx_close(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
		T(test_qemu_72_handshake_starts_both_queues),
		T(test_queue_waits_for_enable_when_protocol_features_negotiated),
		T(test_queue_starts_on_kick_without_protocol_features),
		T(test_buffers_posted_before_start_are_processed_at_start),
		T(test_get_vring_base_stops_queue_and_reports_last_avail),
		T(test_disable_stops_queue_and_enable_resumes_it),
		T(test_kick_fd_wakes_the_device),
		T(test_set_mem_table_while_running_restarts_queues),
		T(test_pause_and_cont_resume_the_rings_without_a_reset),
		T(test_driver_restart_at_base_0_resets_the_device_first),
		T(test_driver_restart_seen_on_the_second_ring_restarts_both),
		T(test_new_ring_addresses_are_a_driver_restart_even_at_index_0),
		T(test_get_features_offers_transport_bits),
		T(test_get_config_returns_config_bytes),
		T(test_get_config_outside_config_space_gets_empty_reply),
		T(test_get_config_without_config_feature_gets_empty_reply),
		T(test_reply_ack_acks_success_with_zero),
		T(test_need_reply_without_reply_ack_gets_no_reply),
		T(test_wrong_payload_size_drops_connection),
		T(test_wrong_payload_size_with_reply_ack_is_nacked),
		T(test_oversized_payload_drops_even_with_reply_ack),
		T(test_bad_version_drops_connection),
		T(test_kick_without_fd_and_without_nofd_is_rejected),
		T(test_fds_on_a_message_that_takes_none_are_closed),
		T(test_mem_table_fd_count_must_match_regions),
		T(test_mem_table_region_count_out_of_range_is_rejected),
		T(test_overlapping_regions_are_rejected),
		T(test_region_past_the_end_of_its_fd_is_rejected),
		T(test_region_fd_that_is_not_memory_is_rejected),
		T(test_region_memfd_that_may_shrink_is_rejected),
		T(test_rejected_mem_table_keeps_the_old_one),
		T(test_queue_index_out_of_range_is_rejected),
		T(test_get_vring_base_out_of_range_drops_connection),
		T(test_bad_queue_size_is_rejected),
		T(test_ring_addresses_outside_guest_memory_are_rejected),
		T(test_kick_polling_mode_is_refused),
		T(test_notification_fd_that_is_not_an_eventfd_is_rejected),
		T(test_vring_err_fd_is_kept_apart_from_kick_and_call),
		T(test_unoffered_features_are_rejected),
		T(test_set_config_is_refused),
		T(test_unknown_request_is_rejected),
		T(test_running_queue_refuses_new_size),
		T(test_reset_stops_queues_and_closes_every_fd),
		T(test_debug_trace_names_each_message),
		T(test_ring_is_checked_at_start_when_its_size_came_last),
		T(test_ring_state_messages_are_validated),
		T(test_running_ring_accepts_same_addresses_and_new_call_fd),
#undef T
#define S(name) cmocka_unit_test_teardown(name, plain_teardown)
		S(test_socket_is_private_kept_while_live_replaced_when_stale),
		S(test_socket_refuses_to_replace_a_regular_file),
		S(test_messages_split_across_reads_are_reassembled),
		S(test_a_stalled_front_end_gives_way_an_owner_does_not),
		S(test_disconnect_mid_message_is_logged_and_resets),
		S(test_too_many_fds_on_one_message_are_closed_and_rejected),
		S(test_oversized_header_on_the_socket_drops_the_connection),
		S(test_fds_of_an_unfinished_message_are_closed_at_disconnect),
#undef S
	};

	log_init("test_vu", false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
