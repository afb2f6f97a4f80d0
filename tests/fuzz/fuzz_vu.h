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
 *               (fuzz_device reads bits 4-6: also 4 /dev/null, 5 a pipe's
 *               write end, 6 a socket, 7 a directory)
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
#define FUZZ_VU_FD_NULL  4
#define FUZZ_VU_FD_PIPE_W 5
#define FUZZ_VU_FD_SOCKET 6
#define FUZZ_VU_FD_DIR   7

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- shared by fuzz_vu and fuzz_device (fuzz_vu_common.c) --- */

#define FUZZ_VU_MAX_KICKERS 64

/* The fds a front-end can hand over, and copies of the eventfds handed
 * over since the last fuzz_vu_close_kickers (to kick with). */
struct fuzz_vu_fds {
	int memfd, pagefd;     /* guest memory (FUZZ_VU_MEM), one page */
	int kickers[FUZZ_VU_MAX_KICKERS];
	unsigned nkickers;
};

/* Guest memory as QEMU's memory-backend-memfd shares it: *memfd of
 * FUZZ_VU_MEM bytes and *pagefd of one page, both sealed against
 * shrinking (vu maps nothing else); returns memfd mapped shared. */
uint8_t *fuzz_vu_guest_memory(int *memfd, int *pagefd);
/* A new fd of kind (FUZZ_VU_FD_*), owned by the caller. */
int fuzz_vu_make_fd(struct fuzz_vu_fds *f, unsigned kind);
/* Signal every kept eventfd once. */
void fuzz_vu_kick_all(const struct fuzz_vu_fds *f);
void fuzz_vu_close_kickers(struct fuzz_vu_fds *f);
/* FUZZ_VU_POKE: p = le16 offset, then bytes written into mem there. */
void fuzz_vu_poke(uint8_t *mem, const uint8_t *p, size_t len);
struct vu;
struct vu_msg;
/* A message record (header h, its payload p of take bytes) into m, with
 * its fds made (fuzz_vu.h's layout). */
void fuzz_vu_fill_msg(struct vu_msg *m, const uint8_t *h, const uint8_t *p,
                      size_t take, struct fuzz_vu_fds *f);
/* Hand m to vu as from the front-end on socket fd, whose peer end is
 * peer (non-blocking): check that at most one reply came, each well
 * formed and answering m's request, and exactly one when the request has
 * its own and was accepted.  Returns vu_handle_msg's result. */
int fuzz_vu_send_checked(struct vu *vu, int fd, int peer, struct vu_msg *m);
/* Open fds of this process. */
int fuzz_count_fds(void);
/* Open fds once they are back to baseline, or after a few seconds: vu
 * hands the fds it cannot vouch for to its closer thread, which closes
 * them a little later (backend/vu_fd.c), so the count may lag.  A real
 * leak still shows as a count above baseline when the wait ends. */
int fuzz_count_fds_settled(int baseline);

#endif
