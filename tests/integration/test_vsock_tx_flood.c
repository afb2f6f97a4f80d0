/*
 * A guest flooding TX does not starve the loop: while a guest keeps a whole
 * 32768-entry TX ring ahead of chanfs with minimal packets (an RST header
 * for no connection, split over 256 descriptors, re-posted the moment it
 * is consumed), `cat
 * MNT/status` is still answered and SIGTERM still ends chanfs cleanly,
 * each within a second (bounds that catch the hang, not measurements).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>

#include "vmm.h"
#include "vmm_flood.h"
#include "vsock_harness.h"

#define FLOOD_RING 32768u
#define SERVED_MS 1000
/* Each packet is its header (len 0) and slack, one byte per descriptor:
 * the device walks this many per packet, so draining a whole ring takes
 * longer than the flooding thread is ever descheduled for. */
#define FLOOD_SEGS 256

static struct vmm *flood_vmm;
static struct vmm_flood *flood;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait (bounded) until the device has consumed more than `past`. */
static uint64_t flood_passes(uint64_t past)
{
	uint64_t end = now_ms() + VH_TIMEOUT_MS, n;

	while ((n = vmm_flood_consumed(flood)) <= past && now_ms() < end)
		usleep(1000);
	assert_true(n > past);
	return n;
}

static void flood_begin(struct vh *h)
{
	/* its indirect-table area needs more than the default memory */
	struct vmm_opts o = {
		.queue_size = FLOOD_RING, .mem_size = 256u << 20,
		.features = 1ull << VIRTIO_RING_F_INDIRECT_DESC,
	};
	uint8_t pkt[FLOOD_SEGS] = { 0 };
	struct virtio_vsock_hdr rst = {
		.src_cid = 3, .dst_cid = 2,
		.src_port = 40000, .dst_port = 9,
		.type = VIRTIO_VSOCK_TYPE_STREAM,
		.op = VIRTIO_VSOCK_OP_RST,
	};

	flood_vmm = vmm_connect(h->sock, &o);
	assert_non_null(flood_vmm);
	memcpy(pkt, &rst, sizeof rst);
	flood = vmm_flood_start(flood_vmm, 1, pkt, sizeof pkt, FLOOD_SEGS);
	assert_non_null(flood);
	/* Several whole rings: chanfs is busy with the flood now. */
	flood_passes(4 * FLOOD_RING);
}

static void flood_end(void)
{
	vmm_flood_stop(flood);
	flood = NULL;
	vmm_disconnect(flood_vmm);
	flood_vmm = NULL;
}

static int flood_teardown(void **state)
{
	/* First the flood, so that a starved chanfs can hear SIGTERM. */
	flood_end();
	return vh_teardown(state);
}

static void test_tx_flood_leaves_status_and_sigterm_served(void **state)
{
	struct vh *h = *state;
	uint64_t before, end;
	char out[4096];
	int i;

	assert_int_equal(vh_start_chanfs(h, NULL), 0);
	flood_begin(h);

	for (i = 0; i < 3; i++) {
		before = vmm_flood_consumed(flood);
		/* the kill is the bound: a starved loop never answers */
		assert_int_equal(vh_sh(h, "timeout -s KILL 1 cat \"$MNT/status\"",
		                       out, sizeof out), 0);
		assert_non_null(strstr(out, "vsock"));
		/* ... and the flood went on meanwhile */
		flood_passes(before);
	}

	before = vmm_flood_consumed(flood);
	assert_int_equal(kill(h->chanfs, SIGTERM), 0);
	end = now_ms() + SERVED_MS;
	while (vh_chanfs_alive(h) && now_ms() < end)
		usleep(1000);
	assert_false(vh_chanfs_alive(h));
	assert_true(h->chanfs_exited);
	assert_true(WIFEXITED(h->chanfs_status));
	assert_int_equal(WEXITSTATUS(h->chanfs_status), 0);
	fprintf(stderr, "flood: %llu packets consumed before SIGTERM\n",
	        (unsigned long long)before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_tx_flood_leaves_status_and_sigterm_served,
			vh_setup, flood_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
