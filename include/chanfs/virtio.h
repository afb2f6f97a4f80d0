/*
 * virtio — the constants chanfs uses from the virtio 1.x and vhost-user
 * specifications, spelled once.  Ring layouts come from <linux/virtio_ring.h>.
 */
#ifndef CHANFS_VIRTIO_H
#define CHANFS_VIRTIO_H

#include <stdint.h>

/* Feature bits (virtio 1.x, section 6). */
#define VIRTIO_F_NOTIFY_ON_EMPTY_BIT   24
#define VIRTIO_RING_F_INDIRECT_DESC_BIT 28
#define VIRTIO_RING_F_EVENT_IDX_BIT    29
#define VHOST_USER_F_PROTOCOL_FEATURES_BIT 30
#define VIRTIO_F_VERSION_1_BIT         32
#define VIRTIO_F_IN_ORDER_BIT          35

#define VBIT(b) (1ULL << (b))

/* Largest split queue the engine accepts (the spec's maximum). */
#define VQ_MAX_SIZE 32768

#endif
