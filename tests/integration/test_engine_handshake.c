/*
 * test_engine_handshake — the engine (vu + vq, in chanfs-echodev) accepts
 * the handshake QEMU 7.2 performs for vhost-user-vsock and serves the
 * config space through GET_CONFIG.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "chanfs/virtio.h"
#include "chanfs/vu.h"
#include "test_engine.h"

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static void qemu72_handshake_completes_and_get_config_returns_the_cid(
	void **state)
{
	struct vmm_proc *p = *state;
	struct vmm *v;
	const uint8_t *cfg;
	uint32_t len;

	print_message("check: the QEMU 7.2 message sequence completes\n");
	v = engine_connect(p, NULL);
	print_message("check: VERSION_1 and PROTOCOL_FEATURES offered and "
	              "negotiated\n");
	assert_true(vmm_offered_features(v) & VBIT(VIRTIO_F_VERSION_1_BIT));
	assert_true(vmm_offered_features(v) &
	            VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT));
	assert_int_equal(vmm_features(v),
	                 VBIT(VIRTIO_F_VERSION_1_BIT) |
	                 VBIT(VHOST_USER_F_PROTOCOL_FEATURES_BIT));
	print_message("check: protocol feature CONFIG offered (QEMU requires "
	              "it) and negotiated\n");
	assert_true(vmm_protocol_features(v) & (1ULL << VU_PROTOCOL_F_CONFIG));
	print_message("check: REPLY_ACK negotiated as QEMU does, "
	              "SET_MEM_TABLE acked with 0\n");
	assert_true(vmm_protocol_features(v) &
	            (1ULL << VU_PROTOCOL_F_REPLY_ACK));
	if (vmm_protocol_features(v) & (1ULL << VU_PROTOCOL_F_MQ)) {
		print_message("check: GET_QUEUE_NUM reports the 2 queues\n");
		assert_int_equal(vmm_queue_num(v), 2);
	}
	print_message("check: GET_CONFIG returns 8 bytes, le64 --cid\n");
	cfg = vmm_config(v, &len);
	assert_int_equal(len, 8);
	assert_int_equal(le64_at(cfg), ENGINE_CID);
	vmm_disconnect(v);
	engine_alive(p, "after the handshake");
}

static void handshake_with_need_reply_gets_a_zero_ack_for_every_message(
	void **state)
{
	struct vmm_proc *p = *state;
	struct vmm_opts o = { .need_reply = true };
	struct vmm *v;

	print_message("check: REPLY_ACK is offered and every message sent "
	              "with NEED_REPLY is acked with 0\n");
	v = engine_connect(p, &o);
	assert_true(vmm_protocol_features(v) &
	            (1ULL << VU_PROTOCOL_F_REPLY_ACK));
	vmm_disconnect(v);
}

static void handshake_without_reply_ack_completes(void **state)
{
	struct vmm_proc *p = *state;
	struct vmm_opts o = { .no_reply_ack = true };
	struct vmm_echo_opts eo = { .bytes = 256 << 10, .seed = 7 };
	struct vmm_echo_result res;
	struct vmm *v;

	print_message("check: a front-end that does not take REPLY_ACK "
	              "completes the handshake and moves data\n");
	v = engine_connect(p, &o);
	assert_false(vmm_protocol_features(v) &
	             (1ULL << VU_PROTOCOL_F_REPLY_ACK));
	if (vmm_echo_run(v, &eo, &res) < 0)
		fail_msg("data transfer: %s", res.error);
	vmm_disconnect(v);
}

static void optional_ring_features_are_negotiated_when_asked(void **state)
{
	struct vmm_proc *p = *state;
	uint64_t want = VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) |
	                VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT) |
	                VBIT(VIRTIO_F_IN_ORDER_BIT);
	struct vmm_opts o = { .features = want };
	struct vmm *v;

	print_message("check: EVENT_IDX, INDIRECT_DESC and IN_ORDER are "
	              "offered and accepted together\n");
	v = engine_connect(p, &o);
	assert_int_equal(vmm_features(v) & want, want);
	vmm_disconnect(v);
}

static void get_config_serves_a_part_of_the_config_space(void **state)
{
	struct vmm_proc *p = *state;
	uint8_t req[sizeof(struct vu_config_hdr) + 4] = { 0 };
	uint8_t rep[sizeof(req)];
	struct vu_config_hdr h = { .offset = 4, .size = 4 };
	struct vmm *v;
	uint32_t hi;

	print_message("check: GET_CONFIG offset 4 size 4 returns the CID's "
	              "upper half\n");
	v = engine_connect(p, NULL);
	memcpy(req, &h, sizeof(h));
	assert_int_equal(vmm_send_msg(v, VU_GET_CONFIG, VU_VERSION, req,
	                              sizeof(req), NULL, 0), 0);
	assert_int_equal(vmm_recv_reply(v, VU_GET_CONFIG, rep, sizeof(rep)),
	                 sizeof(rep));
	memcpy(&h, rep, sizeof(h));
	assert_int_equal(h.offset, 4);
	assert_int_equal(h.size, 4);
	memcpy(&hi, rep + sizeof(h), 4);
	assert_int_equal(le32toh(hi), (uint32_t)(ENGINE_CID >> 32));
	vmm_disconnect(v);
}

static void stopping_the_rings_as_qemu_does_succeeds(void **state)
{
	struct vmm_proc *p = *state;
	struct vmm *v;

	print_message("check: SET_VRING_ENABLE 0 and GET_VRING_BASE on both "
	              "queues get their replies, then the next front-end "
	              "works\n");
	v = engine_connect(p, NULL);
	assert_int_equal(vmm_stop(v), 0);
	vmm_disconnect(v);
	engine_echo_ok(p, "after a stop", 256 << 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(qemu72_handshake_completes_and_get_config_returns_the_cid),
		cmocka_unit_test(handshake_with_need_reply_gets_a_zero_ack_for_every_message),
		cmocka_unit_test(handshake_without_reply_ack_completes),
		cmocka_unit_test(optional_ring_features_are_negotiated_when_asked),
		cmocka_unit_test(get_config_serves_a_part_of_the_config_space),
		cmocka_unit_test(stopping_the_rings_as_qemu_does_succeeds),
	};

	return cmocka_run_group_tests(tests, engine_group_setup,
	                              engine_group_teardown);
}
