/*
 * test_engine_churn — 200 front-ends connect and disconnect at random
 * points of the handshake (sometimes in the middle of a message,
 * sometimes with buffers in flight).  Afterwards the daemon is alive, has
 * exactly as many fds open as before the first connect (nothing leaked
 * per connection: memory-table fds, kick/call/err eventfds, sockets), and a
 * full data transfer works.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chanfs/virtio.h"
#include "chanfs/vu.h"
#include "test_engine.h"

#define CHURN_ROUNDS 200

static uint64_t churn_rand(uint64_t *s)
{
	/* xorshift64*: reproducible from the printed seed */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static unsigned churn_pick(uint64_t *s, unsigned n)
{
	return (unsigned)((churn_rand(s) >> 33) % n);
}

/* Make some buffers available on both queues and kick, then leave. */
static void churn_in_flight(struct vmm *v, uint64_t *s)
{
	uint64_t buf = vmm_alloc(v, 64 << 10, 4096);
	struct vmm_sg sg = { buf, 1 + churn_pick(s, 32 << 10) };
	struct vmm_sg rx = { buf + (32 << 10), 4096 };
	unsigned i, n = 1 + churn_pick(s, 8);

	assert_true(buf != 0);
	for (i = 0; i < n; i++) {
		assert_int_equal(vmm_vq_add(v, 0, &sg, 1, NULL, 0, v), 0);
		assert_int_equal(vmm_vq_add(v, 1, NULL, 0, &rx, 1, v), 0);
	}
	vmm_vq_kick(v, 1);
	vmm_vq_kick(v, 0);
}

/* The first bytes of a message that would come next, then hang up. */
static void churn_partial(struct vmm *v, uint64_t *s)
{
	uint8_t msg[VU_HDR_SIZE + 8] = { 0 };
	uint32_t hdr[3] = { VU_SET_FEATURES, VU_VERSION, 8 };

	memcpy(msg, hdr, sizeof(hdr));
	vmm_send_bytes(v, msg, 1 + churn_pick(s, sizeof(msg) - 1), NULL, 0);
}

static int churn_fds_settle(struct vmm_proc *p, int want)
{
	int n = -1, i;

	/* the daemon handles each hang-up on its own time */
	for (i = 0; i < 3000; i++) {
		n = vmm_proc_fd_count(p);
		if (n == want)
			break;
		usleep(10000);
	}
	return n;
}

static void random_disconnects_leak_nothing_and_data_still_flows(
	void **state)
{
	struct vmm_proc *p = *state;
	const char *env = getenv("CHANFS_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	uint64_t s = seed | 1;
	unsigned round, full = 0, partial = 0, flight = 0;
	int before, after;

	print_message("seed %" PRIu64 " (set CHANFS_TEST_SEED to repeat)\n",
	              seed);
	before = vmm_proc_fd_count(p);
	assert_true(before > 0);
	print_message("check: %d rounds of connect, part of the handshake, "
	              "disconnect (daemon has %d fds open)\n", CHURN_ROUNDS,
	              before);
	for (round = 0; round < CHURN_ROUNDS; round++) {
		struct vmm_opts o = {
			.regions = 1 + churn_pick(&s, 2),
			.need_reply = churn_pick(&s, 2),
			.no_reply_ack = churn_pick(&s, 4) == 0,
			.features = churn_pick(&s, 2) ?
			            VBIT(VIRTIO_RING_F_EVENT_IDX_BIT) |
			            VBIT(VIRTIO_F_IN_ORDER_BIT) : 0,
			.timeout_ms = ENGINE_REPLY_MS,
		};
		struct vmm *v = vmm_connect_raw(p->sock, &o);
		unsigned cut;
		int r;

		if (!v)
			fail_msg("round %u: cannot connect", round);
		/* a quarter run it all (0 means all), the rest stop early */
		cut = churn_pick(&s, 4) ? 1 + churn_pick(&s,
		                          vmm_handshake_steps(v)) : 0;
		r = vmm_handshake(v, cut);
		if (r < 0) {
			vmm_proc_log_dump(p, 0);
			fail_msg("round %u: handshake failed before step %u",
			         round, cut);
		}
		if (vmm_handshake_complete(v)) {
			full++;
			if (churn_pick(&s, 2)) {
				churn_in_flight(v, &s);
				flight++;
			}
		} else if (churn_pick(&s, 3) == 0) {
			churn_partial(v, &s);
			partial++;
		}
		vmm_disconnect(v);
	}
	print_message("  %u rounds completed the handshake (%u left buffers "
	              "in flight), %u hung up inside a message\n", full,
	              flight, partial);
	engine_alive(p, "after the disconnects");
	after = churn_fds_settle(p, before);
	print_message("check: fds open now %d, before %d\n", after, before);
	if (after != before) {
		vmm_proc_log_dump(p, 0);
		fail_msg("the daemon has %d fds open, %d before the first "
		         "connect", after, before);
	}
	engine_echo_ok(p, "after 200 disconnects", 4u << 20);
	after = churn_fds_settle(p, before);
	print_message("check: after the transfer, fds open %d\n", after);
	assert_int_equal(after, before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_disconnects_leak_nothing_and_data_still_flows),
	};

	return cmocka_run_group_tests(tests, engine_group_setup,
	                              engine_group_teardown);
}
