/*
 * test_engine_hostile — a hostile guest driver: a descriptor chain that
 * loops, points out of the table, out of guest memory, nests indirect
 * tables, or an avail ring that lies.  The engine marks that queue broken
 * (one log line; nothing is ever completed on it), keeps serving the
 * front-end's messages, and after a reconnect everything works again.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_ring.h>

#include "chanfs/virtio.h"
#include "chanfs/vu.h"
#include "test_engine.h"

#define AFTER_BYTES (256u << 10)

struct hostile {
	struct vmm_proc *p;
	struct vmm *v;
	struct vmm_vq_layout l;   /* queue 0 */
	uint64_t buf;             /* 64 KiB of ordinary guest memory */
	size_t mark;              /* log offset before the attack */
};

static void hostile_begin(struct hostile *h, struct vmm_proc *p,
                          uint64_t features)
{
	struct vmm_opts o = { .features = features };

	h->p = p;
	h->v = engine_connect(p, &o);
	assert_int_equal(vmm_vq_layout(h->v, 0, &h->l), 0);
	h->buf = vmm_alloc(h->v, 64 << 10, 4096);
	assert_true(h->buf != 0);
	h->mark = vmm_proc_log_size(p);
}

static void hostile_desc(struct hostile *h, unsigned i, uint64_t addr,
                         uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc *d = &h->l.desc[i];

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

static void hostile_kick(struct hostile *h)
{
	uint64_t one = 1;

	assert_int_equal(write(vmm_vq_kick_fd(h->v, 0), &one, sizeof(one)),
	                 sizeof(one));
}

static void hostile_check(struct hostile *h, const char *what);

/* Publish head on queue 0, kick, and check the outcome. */
static void hostile_attack(struct hostile *h, uint16_t head, const char *what)
{
	vmm_vq_publish_raw(h->v, 0, head);
	hostile_kick(h);
	hostile_check(h, what);
}

static void hostile_check(struct hostile *h, const char *what)
{
	uint64_t feat = 0;
	char step[160];

	snprintf(step, sizeof(step), "queue 0 %s", what);
	print_message("check: %s breaks the queue, is logged, and the daemon "
	              "keeps serving\n", step);
	engine_logged(h->p, h->mark, step);
	engine_alive(h->p, step);
	/* logged means handled: nothing was completed on the broken queue */
	if (__atomic_load_n(&h->l.used->idx, __ATOMIC_ACQUIRE) != 0)
		fail_msg("%s: the broken queue completed a buffer", step);
	/* the same front-end is still served */
	assert_int_equal(vmm_send_msg(h->v, VU_GET_FEATURES, VU_VERSION, NULL,
	                              0, NULL, 0), 0);
	assert_int_equal(vmm_recv_reply(h->v, VU_GET_FEATURES, &feat,
	                                 sizeof(feat)), sizeof(feat));
	assert_true(feat & VBIT(VIRTIO_F_VERSION_1_BIT));
	assert_int_equal(vmm_stop(h->v), 0);
	vmm_disconnect(h->v);
	h->v = NULL;
	engine_echo_ok(h->p, step, AFTER_BYTES);
}

static void descriptor_loop_breaks_the_queue_not_the_daemon(void **state)
{
	struct hostile h;

	hostile_begin(&h, *state, 0);
	hostile_desc(&h, 0, h.buf, 100, VRING_DESC_F_NEXT, 1);
	hostile_desc(&h, 1, h.buf + 100, 100, VRING_DESC_F_NEXT, 0);
	hostile_attack(&h, 0, "a descriptor loop (0 -> 1 -> 0)");
}

static void self_loop_breaks_the_queue_not_the_daemon(void **state)
{
	struct hostile h;

	hostile_begin(&h, *state, 0);
	hostile_desc(&h, 5, h.buf, 100, VRING_DESC_F_NEXT, 5);
	hostile_attack(&h, 5, "a descriptor whose next is itself");
}

static void next_out_of_range_breaks_the_queue_not_the_daemon(void **state)
{
	struct hostile h;

	hostile_begin(&h, *state, 0);
	hostile_desc(&h, 0, h.buf, 100, VRING_DESC_F_NEXT,
	             (uint16_t)(h.l.num + 7));
	hostile_attack(&h, 0, "a next index past the table");
}

static void head_out_of_range_breaks_the_queue_not_the_daemon(void **state)
{
	struct hostile h;

	hostile_begin(&h, *state, 0);
	hostile_attack(&h, (uint16_t)(h.l.num + 1),
	               "an avail entry naming a head past the table");
}

static void avail_index_running_ahead_breaks_the_queue_not_the_daemon(
	void **state)
{
	struct hostile h;

	hostile_begin(&h, *state, 0);
	__atomic_store_n(&h.l.avail->idx, (uint16_t)(h.l.num + 1),
	                 __ATOMIC_RELEASE);
	hostile_kick(&h);
	hostile_check(&h, "an avail index more than the queue size ahead");
}

static void address_outside_guest_memory_breaks_the_queue_not_the_daemon(
	void **state)
{
	struct hostile h;

	hostile_begin(&h, *state, 0);
	hostile_desc(&h, 0, vmm_mem_size(h.v) - 50, 100, 0, 0);
	hostile_attack(&h, 0, "a buffer running past guest memory");
}

static void nested_indirect_table_breaks_the_queue_not_the_daemon(
	void **state)
{
	struct hostile h;
	struct vring_desc *t;

	hostile_begin(&h, *state, VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT));
	assert_true(vmm_features(h.v) & VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT));
	t = vmm_ptr(h.v, h.buf, 32);
	t[0] = (struct vring_desc){ .addr = h.buf + 4096, .len = 16,
	                            .flags = VRING_DESC_F_INDIRECT };
	hostile_desc(&h, 0, h.buf, 16, VRING_DESC_F_INDIRECT, 0);
	hostile_attack(&h, 0, "an indirect table inside an indirect table");
}

static void indirect_without_the_feature_breaks_the_queue_not_the_daemon(
	void **state)
{
	struct hostile h;
	struct vring_desc *t;

	hostile_begin(&h, *state, 0);
	t = vmm_ptr(h.v, h.buf, 16);
	t[0] = (struct vring_desc){ .addr = h.buf + 4096, .len = 16 };
	hostile_desc(&h, 0, h.buf, 16, VRING_DESC_F_INDIRECT, 0);
	hostile_attack(&h, 0, "an indirect table without INDIRECT_DESC");
}

static void lengths_summing_past_4gib_break_the_queue_not_the_daemon(
	void **state)
{
	struct hostile h;
	unsigned i;

	hostile_begin(&h, *state, 0);
	/* 3 x 0xffff0000 bytes: each far beyond guest memory too */
	for (i = 0; i < 3; i++)
		hostile_desc(&h, i, h.buf, 0xffff0000u,
		             i < 2 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	hostile_attack(&h, 0, "a chain whose lengths sum past 4 GiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(descriptor_loop_breaks_the_queue_not_the_daemon),
		cmocka_unit_test(self_loop_breaks_the_queue_not_the_daemon),
		cmocka_unit_test(next_out_of_range_breaks_the_queue_not_the_daemon),
		cmocka_unit_test(head_out_of_range_breaks_the_queue_not_the_daemon),
		cmocka_unit_test(avail_index_running_ahead_breaks_the_queue_not_the_daemon),
		cmocka_unit_test(address_outside_guest_memory_breaks_the_queue_not_the_daemon),
		cmocka_unit_test(nested_indirect_table_breaks_the_queue_not_the_daemon),
		cmocka_unit_test(indirect_without_the_feature_breaks_the_queue_not_the_daemon),
		cmocka_unit_test(lengths_summing_past_4gib_break_the_queue_not_the_daemon),
	};

	return cmocka_run_group_tests(tests, engine_group_setup,
	                              engine_group_teardown);
}
