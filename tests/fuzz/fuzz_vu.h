/*
 * The input layout of fuzz_vu, shared by the target and the seed corpus
 * generator (gen_corpus_vu.c).
 *
 * An input is a sequence of records, each a 5-byte header and a payload:
 *
 *   byte 0      request number (any byte; the two FUZZ_VU_* actions below
 *               are the harness's, not messages)
 *   byte 1      flags: if the high nibble is 0xf, the header's flags are
 *               the low nibble as is (bad versions, stray bits); otherwise
 *               version 1, plus NEED_REPLY when bit 0 is set
 *   byte 2      fds: bits 0-3 the count (more than 8 counts as 8), bits
 *               4-5 their kind: 0 the guest-memory memfd, 1 an eventfd,
 *               2 a one-page memfd, 3 the read end of a pipe at EOF
 *   bytes 3-4   the header's size field (le16; may exceed VU_MAX_PAYLOAD)
 *   bytes 5-    payload: min(size, VU_MAX_PAYLOAD, what is left) bytes
 *
 * Actions:
 *   FUZZ_VU_POKE  payload = le16 offset, then bytes written into guest
 *                 memory there (clipped to the memory), as a driver would
 *   FUZZ_VU_KICK  signal every eventfd handed over since the last
 *                 disconnect, then run one loop turn
 *
 * Guest memory is one memfd of FUZZ_VU_MEM bytes, zeroed before each
 * input.  The seeds map it at guest-physical 0 and front-end address
 * FUZZ_VU_UVA.  A message the server drops the connection for is followed
 * by vu_reset, as a real disconnect would be; the records after it play
 * the next front-end.
 */
#ifndef CHANFS_FUZZ_VU_H
#define CHANFS_FUZZ_VU_H

#define FUZZ_VU_HDR   5
#define FUZZ_VU_MEM   0x10000
#define FUZZ_VU_UVA   0x7f0000000000ULL
#define FUZZ_VU_POKE  0xf0
#define FUZZ_VU_KICK  0xf1

#define FUZZ_VU_FD_MEM   0
#define FUZZ_VU_FD_EVENT 1
#define FUZZ_VU_FD_PAGE  2
#define FUZZ_VU_FD_PIPE  3

#endif
