/*
 * pattern — the deterministic data chanfs-guest's source sends and the
 * tests check: a function of the byte offset only, so any slice of the
 * stream can be regenerated and compared on its own.
 */
#ifndef CHANFS_GUEST_PATTERN_H
#define CHANFS_GUEST_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* Fill buf with the n pattern bytes that start at stream offset off. */
void pattern_fill(void *buf, size_t n, uint64_t off);
/* Offset of the first byte of buf (n bytes at stream offset off) that
 * differs from the pattern, or n when all match. */
size_t pattern_check(const void *buf, size_t n, uint64_t off);

#endif
