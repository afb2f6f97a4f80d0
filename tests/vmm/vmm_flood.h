/*
 * vmm_flood — a hostile guest that floods one queue: every descriptor of
 * the ring holds the same device-readable buffer, and a thread keeps the
 * avail index a whole ring ahead of what the device has consumed, re-posting
 * each buffer the moment the device writes its used entry (it watches the
 * used ring's entries, not the used index, which a device may publish only
 * at the end of a run).  It kicks whenever the device asks for kicks.
 *
 * The flood owns the queue's rings and kick fd while it runs: the caller
 * must not use that queue (or vmm_disconnect) before vmm_flood_stop.  Other
 * queues and the socket stay the caller's.
 */
#ifndef CHANFS_TESTS_VMM_FLOOD_H
#define CHANFS_TESTS_VMM_FLOOD_H

#include <stddef.h>
#include <stdint.h>

struct vmm;
struct vmm_flood;

/* Start flooding queue q of v (started, nothing posted on it yet) with
 * buffers holding the len bytes at buf (copied into guest memory), each
 * buffer one descriptor, or (nseg > 1) nseg descriptors of an indirect
 * table that all buffers share, so the device walks nseg descriptors per
 * buffer.  Returns NULL with errno set (EINVAL: bad queue, len below nseg,
 * nseg > 1 without INDIRECT_DESC negotiated; ENOMEM). */
struct vmm_flood *vmm_flood_start(struct vmm *v, unsigned q, const void *buf,
                                  size_t len, unsigned nseg);
/* Buffers the device has consumed so far (safe from any thread). */
uint64_t vmm_flood_consumed(struct vmm_flood *f);
/* Stop the thread and free the flood.  NULL ok. */
void vmm_flood_stop(struct vmm_flood *f);

#endif
