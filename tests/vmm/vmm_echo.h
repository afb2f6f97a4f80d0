/*
 * vmm_echo — drive chanfs-echodev's contract from the guest side: bytes
 * sent through queue 0 ("tx", device-readable buffers, used len 0) come
 * back through queue 1 ("rx", device-writable buffers, used len = bytes
 * written), in order.
 *
 * vmm_echo_run sends a PRNG stream in random-size chunks (each split into
 * 1..3 segments, or one indirect table when the vmm uses them), keeps rx
 * buffers (1..2 segments each) posted, and checks every byte that comes
 * back against the stream, plus the order buffers come back in and every
 * used length.  Buffers are carved from slots allocated at the start;
 * with two memory regions, the first slot of one direction is centred on
 * the region boundary, so the device sees buffers split across regions.
 */
#ifndef CHANFS_TESTS_VMM_ECHO_H
#define CHANFS_TESTS_VMM_ECHO_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm.h"

struct vmm_echo_opts {
	uint64_t bytes;        /* total to send; 0 → 4 MiB */
	uint32_t max_chunk;    /* largest tx chunk; 0 → 64 KiB */
	uint32_t rx_size;      /* bytes per rx buffer; 0 → 16 KiB */
	uint64_t seed;         /* stream and sizes; any value */
	int stall_ms;          /* give up after this long without progress;
	                          0 → 60000 */
	bool straddle_rx;      /* two regions: put an rx buffer across the
	                          boundary (else a tx buffer: the first tx
	                          chunk in that slot is made long enough to
	                          cross it) */
};

struct vmm_echo_result {
	uint64_t sent, received;
	uint64_t sum_tx, sum_rx;       /* FNV-1a 64 of each direction */
	uint64_t tx_bufs, rx_bufs;     /* buffers completed */
	uint64_t tx_entries, rx_entries; /* used ring entries read */
	uint64_t tx_signals, rx_signals;
	uint64_t straddled;            /* buffers with a segment across the
	                                  region boundary */
	char error[160];               /* first failure, "" on success */
};

/* Run one transfer on v (queues 0 and 1 started).  Returns 0 when every
 * byte came back equal, every buffer was completed once, in the order it
 * was added, with a valid length; else -1 with res->error saying what and
 * where.  One run per vmm: rx buffers stay posted (and their guest
 * memory allocated) at the end, so a second run on the same vmm fails at
 * once ("queues already have buffers outstanding"). */
int vmm_echo_run(struct vmm *v, const struct vmm_echo_opts *opts,
                 struct vmm_echo_result *res);

#endif
