/*
 * test_engine_malformed — every malformed vhost-user message is rejected
 * (a non-zero REPLY_ACK or a dropped connection, and one log line), the
 * daemon keeps running, and a well-behaved front-end that connects next
 * moves data.
 *
 * Each case connects afresh with NEED_REPLY negotiated, runs QEMU's
 * handshake up to the point where the message belongs, and sends the bad
 * version instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chanfs/vu.h"
#include "test_engine.h"

#define AFTER_BYTES (64u << 10)
#define NF (VU_VERSION | VU_FLAG_NEED_REPLY)

/* Send the bad message on v (connected up to where it belongs), then
 * require rejection, a log line, a live daemon and a working successor. */
static void expect_rejected(struct vmm_proc *p, struct vmm *v,
                            const char *what, uint32_t request,
                            const void *payload, uint32_t size,
                            const int *fds, int nfds)
{
	size_t mark = vmm_proc_log_size(p);

	print_message("check: %s is rejected\n", what);
	/* the back-end may hang up before reading all of it: not an error */
	vmm_send_msg(v, request, NF, payload, size, fds, nfds);
	if (!engine_rejected(v, request)) {
		vmm_disconnect(v);
		fail_msg("%s: accepted (REPLY_ACK 0)", what);
	}
	vmm_disconnect(v);
	engine_logged(p, mark, what);
	engine_alive(p, what);
	engine_echo_ok(p, what, AFTER_BYTES);
}

static void state_msg(struct vmm_proc *p, const char *what, uint32_t request,
                      uint32_t index, uint32_t num)
{
	struct vu_vring_state s = { .index = index, .num = num };
	struct vmm *v = engine_connect_until(p, request, index < 2 ? index : 0);

	expect_rejected(p, v, what, request, &s, sizeof(s), NULL, 0);
}

/* --- framing ---------------------------------------------------------- */

static void truncated_header_then_disconnect_leaves_the_daemon_serving(
	void **state)
{
	struct vmm_proc *p = *state;
	uint32_t hdr[3] = { VU_GET_FEATURES, VU_VERSION, 0 };
	uint64_t feat = 0;
	struct vmm *v;

	print_message("check: 6 bytes of a header, then hang up\n");
	v = engine_connect_until(p, VU_GET_FEATURES, 0);
	assert_int_equal(vmm_send_bytes(v, hdr, 6, NULL, 0), 0);
	vmm_disconnect(v);
	engine_alive(p, "truncated header");
	engine_echo_ok(p, "truncated header", AFTER_BYTES);

	print_message("check: a header promising 8 payload bytes, 4 sent, "
	              "then hang up\n");
	v = engine_connect_until(p, VU_SET_FEATURES, 0);
	hdr[0] = VU_SET_FEATURES;
	hdr[2] = 8;
	assert_int_equal(vmm_send_bytes(v, hdr, sizeof(hdr), NULL, 0), 0);
	assert_int_equal(vmm_send_bytes(v, &feat, 4, NULL, 0), 0);
	vmm_disconnect(v);
	engine_alive(p, "truncated payload");
	engine_echo_ok(p, "truncated payload", AFTER_BYTES);
}

static void payload_larger_than_the_maximum_is_rejected(void **state)
{
	struct vmm_proc *p = *state;
	static uint8_t big[VU_MAX_PAYLOAD + 8];
	struct vmm *v = engine_connect_until(p, VU_SET_FEATURES, 0);

	expect_rejected(p, v, "SET_FEATURES with a payload of "
	                "VU_MAX_PAYLOAD + 8 bytes", VU_SET_FEATURES, big,
	                sizeof(big), NULL, 0);
}

static void header_with_wrong_version_is_rejected(void **state)
{
	struct vmm_proc *p = *state;
	uint64_t feat = 0;
	struct vmm *v = engine_connect_until(p, VU_SET_FEATURES, 0);
	size_t mark = vmm_proc_log_size(p);

	print_message("check: a header with version 2 is rejected\n");
	vmm_send_msg(v, VU_SET_FEATURES, 2 | VU_FLAG_NEED_REPLY, &feat,
	             sizeof(feat), NULL, 0);
	assert_true(engine_rejected(v, VU_SET_FEATURES));
	vmm_disconnect(v);
	engine_logged(p, mark, "version 2 header");
	engine_alive(p, "version 2 header");
	engine_echo_ok(p, "version 2 header", AFTER_BYTES);
}

static void payload_size_not_matching_the_request_is_rejected(void **state)
{
	struct vmm_proc *p = *state;
	uint8_t zero[64] = { 0 };
	struct vu_mem_table t = { 0 };
	struct vmm *v;
	int fd;

	v = engine_connect_until(p, VU_SET_FEATURES, 0);
	expect_rejected(p, v, "SET_FEATURES with 4 payload bytes",
	                VU_SET_FEATURES, zero, 4, NULL, 0);
	v = engine_connect_until(p, VU_SET_VRING_NUM, 0);
	expect_rejected(p, v, "SET_VRING_NUM with 12 payload bytes",
	                VU_SET_VRING_NUM, zero, 12, NULL, 0);
	v = engine_connect_until(p, VU_SET_VRING_ADDR, 0);
	expect_rejected(p, v, "SET_VRING_ADDR with 16 payload bytes",
	                VU_SET_VRING_ADDR, zero, 16, NULL, 0);
	v = engine_connect_until(p, VU_SET_OWNER, 0);
	expect_rejected(p, v, "SET_OWNER with 8 payload bytes",
	                VU_SET_OWNER, zero, 8, NULL, 0);

	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	t.nregions = vmm_mem_regions(v, t.r, 1);
	fd = vmm_mem_fd(v);
	expect_rejected(p, v, "SET_MEM_TABLE of 1 region with the size "
	                "of 2", VU_SET_MEM_TABLE, &t, 8 + 32 * 2, &fd, 1);
}

static void unknown_and_unsupported_requests_are_rejected(void **state)
{
	static const uint32_t reqs[] = { 0, VU_REQUEST_MAX, 1000, 0xffffffff,
	                                 19 /* SEND_RARP */ };
	struct vmm_proc *p = *state;
	uint64_t zero = 0;
	char what[64];
	unsigned i;

	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct vmm *v = engine_connect_until(p, VU_SET_FEATURES, 0);

		snprintf(what, sizeof(what), "request %u", reqs[i]);
		expect_rejected(p, v, what, reqs[i], &zero, sizeof(zero),
		                NULL, 0);
	}
}

/* --- fds -------------------------------------------------------------- */

static void mem_table_with_wrong_number_of_fds_is_rejected(void **state)
{
	struct vmm_proc *p = *state;
	struct vu_mem_table t = { 0 };
	int fds[2];
	struct vmm *v;

	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	t.nregions = 1;
	vmm_mem_regions(v, t.r, 1);
	fds[0] = fds[1] = vmm_mem_fd(v);
	expect_rejected(p, v, "SET_MEM_TABLE of 1 region with 2 fds",
	                VU_SET_MEM_TABLE, &t, 8 + 32, fds, 2);

	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	expect_rejected(p, v, "SET_MEM_TABLE of 1 region with no fd",
	                VU_SET_MEM_TABLE, &t, 8 + 32, NULL, 0);

	/* two regions, each half of memory, only one fd */
	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	t.nregions = 2;
	t.r[0].size = t.r[1].size = vmm_mem_size(v) / 2;
	t.r[1].gpa = t.r[1].mmap_offset = vmm_mem_size(v) / 2;
	t.r[1].uva = t.r[0].uva + vmm_mem_size(v) / 2;
	expect_rejected(p, v, "SET_MEM_TABLE of 2 regions with 1 fd",
	                VU_SET_MEM_TABLE, &t, 8 + 64, fds, 1);

	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	t.nregions = 0;
	expect_rejected(p, v, "SET_MEM_TABLE of 0 regions",
	                VU_SET_MEM_TABLE, &t, 8, NULL, 0);

	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	t.nregions = 9;
	expect_rejected(p, v, "SET_MEM_TABLE of 9 regions",
	                VU_SET_MEM_TABLE, &t, 8 + 32 * 8, fds, 2);
}

static void vring_fd_messages_without_their_fd_are_rejected(void **state)
{
	struct vmm_proc *p = *state;
	uint64_t u;
	struct vmm *v;
	int efd = eventfd(0, EFD_CLOEXEC);

	assert_true(efd >= 0);
	v = engine_connect_until(p, VU_SET_VRING_KICK, 0);
	u = 0;
	expect_rejected(p, v, "SET_VRING_KICK queue 0 without fd and "
	                "without the no-fd flag", VU_SET_VRING_KICK, &u,
	                sizeof(u), NULL, 0);

	v = engine_connect_until(p, VU_SET_VRING_CALL, 1);
	u = 1;
	expect_rejected(p, v, "SET_VRING_CALL queue 1 without fd and "
	                "without the no-fd flag", VU_SET_VRING_CALL, &u,
	                sizeof(u), NULL, 0);

	v = engine_connect_until(p, VU_SET_VRING_KICK, 0);
	u = VU_VRING_NOFD;
	expect_rejected(p, v, "SET_VRING_KICK with the no-fd flag and an fd",
	                VU_SET_VRING_KICK, &u, sizeof(u), &efd, 1);

	v = engine_connect_until(p, VU_SET_VRING_KICK, 0);
	u = 0;
	expect_rejected(p, v, "SET_VRING_KICK with two fds",
	                VU_SET_VRING_KICK, &u, sizeof(u),
	                (int[]){ efd, efd }, 2);
	close(efd);
}

/* --- queues ----------------------------------------------------------- */

static void ring_index_out_of_range_is_rejected(void **state)
{
	struct vmm_proc *p = *state;
	struct vu_vring_addr a = { .index = 2 };
	uint64_t u;
	struct vmm *v;
	int efd = eventfd(0, EFD_CLOEXEC);

	assert_true(efd >= 0);
	state_msg(p, "SET_VRING_NUM for queue 2 (of 2)", VU_SET_VRING_NUM,
	          2, 256);
	state_msg(p, "SET_VRING_NUM for queue 255", VU_SET_VRING_NUM, 255,
	          256);
	state_msg(p, "SET_VRING_BASE for queue 2", VU_SET_VRING_BASE, 2, 0);
	state_msg(p, "SET_VRING_ENABLE for queue 7", VU_SET_VRING_ENABLE, 7,
	          1);

	v = engine_connect_until(p, VU_SET_VRING_ADDR, 0);
	expect_rejected(p, v, "SET_VRING_ADDR for queue 2", VU_SET_VRING_ADDR,
	                &a, sizeof(a), NULL, 0);

	v = engine_connect_until(p, VU_SET_VRING_KICK, 0);
	u = 2;
	expect_rejected(p, v, "SET_VRING_KICK for queue 2", VU_SET_VRING_KICK,
	                &u, sizeof(u), &efd, 1);

	v = engine_connect_until(p, VU_SET_VRING_CALL, 0);
	u = 200;
	expect_rejected(p, v, "SET_VRING_CALL for queue 200",
	                VU_SET_VRING_CALL, &u, sizeof(u), &efd, 1);
	close(efd);
}

static void queue_size_zero_odd_or_too_big_is_rejected(void **state)
{
	struct vmm_proc *p = *state;

	state_msg(p, "queue size 0", VU_SET_VRING_NUM, 0, 0);
	state_msg(p, "queue size 3 (not a power of two)", VU_SET_VRING_NUM,
	          0, 3);
	state_msg(p, "queue size 65536", VU_SET_VRING_NUM, 1, 65536);
}

/* --- memory ----------------------------------------------------------- */

static void overlapping_memory_regions_are_rejected(void **state)
{
	struct vmm_proc *p = *state;
	struct vu_mem_table t = { .nregions = 2 };
	struct vmm *v;
	uint64_t half;
	int fds[2];

	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	half = vmm_mem_size(v) / 2;
	fds[0] = fds[1] = vmm_mem_fd(v);
	vmm_mem_regions(v, t.r, 1);
	t.r[0].size = half;
	/* region 1: gpa overlaps region 0's upper quarter */
	t.r[1] = t.r[0];
	t.r[1].gpa = half / 2;
	t.r[1].uva = t.r[0].uva + half;
	t.r[1].mmap_offset = half;
	expect_rejected(p, v, "two regions whose gpa ranges overlap",
	                VU_SET_MEM_TABLE, &t, 8 + 64, fds, 2);

	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	vmm_mem_regions(v, t.r, 1);
	t.r[0].size = half;
	t.r[1] = t.r[0];
	t.r[1].gpa = half;
	t.r[1].uva = t.r[0].uva + half / 2;
	t.r[1].mmap_offset = half;
	expect_rejected(p, v, "two regions whose front-end addresses overlap",
	                VU_SET_MEM_TABLE, &t, 8 + 64, fds, 2);
}

static void regions_that_cannot_be_mapped_are_rejected(void **state)
{
	struct vmm_proc *p = *state;
	struct vu_mem_table t = { .nregions = 1 };
	struct vmm *v;
	int pfd[2], small;

	assert_int_equal(pipe(pfd), 0);
	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	vmm_mem_regions(v, t.r, 1);
	expect_rejected(p, v, "a region whose fd is a pipe",
	                VU_SET_MEM_TABLE, &t, 8 + 32, &pfd[0], 1);
	close(pfd[0]);
	close(pfd[1]);

	small = memfd_create("small", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(small >= 0);
	assert_int_equal(ftruncate(small, 1 << 20), 0);
	assert_int_equal(fcntl(small, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	vmm_mem_regions(v, t.r, 1);
	expect_rejected(p, v, "a region larger than its 1 MiB file",
	                VU_SET_MEM_TABLE, &t, 8 + 32, &small, 1);

	v = engine_connect_until(p, VU_SET_MEM_TABLE, 0);
	vmm_mem_regions(v, t.r, 1);
	t.r[0].size = 1 << 20;
	t.r[0].mmap_offset = 512 << 10;
	expect_rejected(p, v, "a region whose offset + size pass the end "
	                "of its file", VU_SET_MEM_TABLE, &t, 8 + 32, &small,
	                1);
	close(small);
}

static void ring_addresses_outside_guest_memory_are_rejected(void **state)
{
	struct vmm_proc *p = *state;
	struct vu_mem_region r;
	struct vmm_vq_layout l;
	struct vu_vring_addr a;
	uint64_t end;
	struct vmm *v;

	v = engine_connect_until(p, VU_SET_VRING_ADDR, 0);
	vmm_mem_regions(v, &r, 1);
	vmm_vq_layout(v, 0, &l);
	end = r.uva + r.size;
	a = (struct vu_vring_addr){ .index = 0, .desc = 0x1000,
	                            .avail = r.uva + l.avail_gpa,
	                            .used = r.uva + l.used_gpa };
	expect_rejected(p, v, "a descriptor table at an address no region "
	                "covers", VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);

	v = engine_connect_until(p, VU_SET_VRING_ADDR, 0);
	a.desc = r.uva + l.desc_gpa;
	a.used = end - 64; /* 256 entries do not fit */
	expect_rejected(p, v, "a used ring running past the end of guest "
	                "memory", VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);

	v = engine_connect_until(p, VU_SET_VRING_ADDR, 0);
	a.used = r.uva + l.used_gpa;
	a.avail = end;
	expect_rejected(p, v, "an avail ring just past guest memory",
	                VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);

	v = engine_connect_until(p, VU_SET_VRING_ADDR, 0);
	a.avail = r.uva + l.avail_gpa;
	a.desc = UINT64_MAX - 4095;
	expect_rejected(p, v, "a descriptor table whose end wraps around",
	                VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(truncated_header_then_disconnect_leaves_the_daemon_serving),
		cmocka_unit_test(payload_larger_than_the_maximum_is_rejected),
		cmocka_unit_test(header_with_wrong_version_is_rejected),
		cmocka_unit_test(payload_size_not_matching_the_request_is_rejected),
		cmocka_unit_test(unknown_and_unsupported_requests_are_rejected),
		cmocka_unit_test(mem_table_with_wrong_number_of_fds_is_rejected),
		cmocka_unit_test(vring_fd_messages_without_their_fd_are_rejected),
		cmocka_unit_test(ring_index_out_of_range_is_rejected),
		cmocka_unit_test(queue_size_zero_odd_or_too_big_is_rejected),
		cmocka_unit_test(overlapping_memory_regions_are_rejected),
		cmocka_unit_test(regions_that_cannot_be_mapped_are_rejected),
		cmocka_unit_test(ring_addresses_outside_guest_memory_are_rejected),
	};

	return cmocka_run_group_tests(tests, engine_group_setup,
	                              engine_group_teardown);
}
