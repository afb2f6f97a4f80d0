/*
 * test_engine_echo — data flows both ways through the engine's queues
 * (chanfs-echodev: queue 0 in, queue 1 back out) for every combination of
 * EVENT_IDX, INDIRECT_DESC and IN_ORDER, with one and two memory regions,
 * with the device completing in order and out of order (--shuffle).
 *
 * Each transfer sends a few MiB in random-size chunks split into random
 * segments and checks every byte and both checksums.  Buffers must come
 * back in the order they were made available.  With IN_ORDER the used
 * ring must carry fewer entries than buffers (one per batch) and every
 * buffer must be accounted for; without it, one entry per buffer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "chanfs/virtio.h"
#include "test_engine.h"

#define ECHO_BYTES (3u << 20)

static uint64_t echo_seed(void)
{
	const char *s = getenv("CHANFS_TEST_SEED");

	return s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
}

static void echo_one(struct vmm_proc *p, unsigned combo, uint64_t seed,
                     bool shuffle)
{
	bool event_idx = combo & 1, indirect = combo & 2, in_order = combo & 4;
	unsigned regions = combo & 8 ? 2 : 1;
	struct vmm_opts o = {
		.regions = regions,
		.indirect = indirect,
		/* a small ring wraps often and runs out of descriptors */
		.queue_size = regions == 2 ? 64 : 256,
	};
	struct vmm_echo_opts eo = {
		.bytes = ECHO_BYTES,
		.max_chunk = 16u << 10,
		.rx_size = 4096,
		.seed = seed + combo,
		.straddle_rx = event_idx,
	};
	struct vmm_echo_result r;
	uint64_t want;
	char step[128];
	struct vmm *v;

	snprintf(step, sizeof(step), "%s%s%s%u region%s, queue size %u%s",
	         event_idx ? "EVENT_IDX, " : "",
	         indirect ? "INDIRECT_DESC, " : "",
	         in_order ? "IN_ORDER, " : "", regions,
	         regions > 1 ? "s" : "", o.queue_size,
	         shuffle ? ", device completes out of order" : "");
	o.features = (event_idx ? VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) : 0) |
	             (indirect ? VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT) : 0) |
	             (in_order ? VBIT(VIRTIO_F_IN_ORDER_BIT) : 0);
	want = o.features;
	v = engine_connect(p, &o);
	if ((vmm_features(v) & want) != want)
		fail_msg("%s: features 0x%" PRIx64 " not all negotiated "
		         "(got 0x%" PRIx64 ")", step, want, vmm_features(v));
	if (vmm_echo_run(v, &eo, &r) < 0) {
		vmm_disconnect(v);
		vmm_proc_log_dump(p, 0);
		fail_msg("%s (seed %" PRIu64 "): %s", step, eo.seed, r.error);
	}
	vmm_disconnect(v);
	print_message("%s: %" PRIu64 " bytes back equal (fnv %016" PRIx64
	              "); tx %" PRIu64 " buffers in %" PRIu64
	              " used entries, rx %" PRIu64 " in %" PRIu64 "%s\n",
	              step, r.received, r.sum_rx, r.tx_bufs, r.tx_entries,
	              r.rx_bufs, r.rx_entries,
	              regions == 2 ? (eo.straddle_rx ?
	                              ", rx buffers across the regions" :
	                              ", tx buffers across the regions") : "");
	assert_int_equal(r.sent, ECHO_BYTES);
	assert_int_equal(r.received, ECHO_BYTES);
	assert_int_equal(r.sum_tx, r.sum_rx);
	assert_true(r.tx_bufs > 0 && r.rx_bufs > 0);
	if (regions == 2 && r.straddled == 0)
		fail_msg("%s: no buffer crossed the region boundary", step);
	if (in_order) {
		/* one entry per batch; echodev completes tx in batches */
		if (r.tx_entries >= r.tx_bufs)
			fail_msg("%s: IN_ORDER tx used ring has %" PRIu64
			         " entries for %" PRIu64 " buffers (no "
			         "batching)", step, r.tx_entries, r.tx_bufs);
		assert_true(r.rx_entries <= r.rx_bufs);
	} else {
		if (r.tx_entries != r.tx_bufs || r.rx_entries != r.rx_bufs)
			fail_msg("%s: %" PRIu64 "/%" PRIu64 " used entries "
			         "for %" PRIu64 "/%" PRIu64 " buffers", step,
			         r.tx_entries, r.rx_entries, r.tx_bufs,
			         r.rx_bufs);
	}
	engine_alive(p, step);
}

static void echo_all(void **state, bool shuffle)
{
	uint64_t seed = echo_seed();
	unsigned combo;

	print_message("seed %" PRIu64 " (set CHANFS_TEST_SEED to repeat)\n",
	              seed);
	for (combo = 0; combo < 16; combo++)
		echo_one(*state, combo, seed, shuffle);
}

static void bytes_come_back_equal_and_in_order_for_every_feature_combination(
	void **state)
{
	echo_all(state, false);
}

static void bytes_come_back_equal_and_in_order_when_the_device_completes_out_of_order(
	void **state)
{
	echo_all(state, true);
}

int main(void)
{
	const struct CMUnitTest plain[] = {
		cmocka_unit_test(bytes_come_back_equal_and_in_order_for_every_feature_combination),
	};
	const struct CMUnitTest shuffled[] = {
		cmocka_unit_test(bytes_come_back_equal_and_in_order_when_the_device_completes_out_of_order),
	};
	int r;

	r = cmocka_run_group_tests_name("in-order device", plain,
	                                engine_group_setup,
	                                engine_group_teardown);
	r |= cmocka_run_group_tests_name("shuffling device", shuffled,
	                                 engine_group_setup_shuffle,
	                                 engine_group_teardown);
	return r;
}
