/*
 * The input layout of fuzz_vq, shared by the target and the seed corpus
 * generator (gen_corpus_vq.c).
 *
 *   byte 0      features: bit 0 INDIRECT_DESC, bit 1 EVENT_IDX, bit 2 IN_ORDER
 *   byte 1      queue size: 1 << (byte & 7), so 1..128
 *   bytes 2-3   start index (le16): last_avail and used->idx at start
 *   bytes 4-5   how far the driver moves avail->idx before round 2 (le16)
 *   bytes 6-7   seed of the device's script (le16): pop, complete in any
 *               order with full or short lengths, flush, (dis)able
 *               notifications, restart at the index vq_stop returned
 *   bytes 8-    guest memory image from guest-physical 0 (the rest is 0):
 *               descriptor table at 0, avail ring at FUZZ_VQ_AVAIL(num),
 *               used ring at FUZZ_VQ_USED(num)
 *
 * Guest memory: region A [0, 0x8000) and region B [0x8000, 0x10000) from
 * separate memfds (adjacent, so buffers and indirect tables can straddle
 * the edge), a hole, and a sparse 4 GiB region at FUZZ_VQ_BIG that makes
 * 32-bit length overflows reachable.  Nothing else is guest memory.
 */
#ifndef CHANFS_FUZZ_VQ_H
#define CHANFS_FUZZ_VQ_H

#define FUZZ_VQ_HDR      8
#define FUZZ_VQ_REGION   0x8000ULL
#define FUZZ_VQ_MEM      (2 * FUZZ_VQ_REGION)
#define FUZZ_VQ_BIG      (1ULL << 32)
#define FUZZ_VQ_BIG_SIZE (1ULL << 32)

#define FUZZ_VQ_F_INDIRECT 1
#define FUZZ_VQ_F_EVENT    2
#define FUZZ_VQ_F_INORDER  4

#define FUZZ_VQ_AVAIL(num) (16ULL * (num))
#define FUZZ_VQ_USED(num)  ((FUZZ_VQ_AVAIL(num) + 6 + 2ULL * (num) + 3) & ~3ULL)
#define FUZZ_VQ_USED_SIZE(num) (6 + 8ULL * (num))

#endif
