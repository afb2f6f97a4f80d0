/*
 * sha256 — SHA-256 (FIPS 180-4), small and dependency-free, for the
 * checksums chanfs-guest prints and the e2e tests compare.
 */
#ifndef CHANFS_GUEST_SHA256_H
#define CHANFS_GUEST_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN (2 * SHA256_DIGEST_LEN)

struct sha256 {
	uint32_t h[8];
	uint64_t len;		/* bytes hashed so far */
	uint8_t buf[64];	/* the partial block */
	size_t nbuf;
};

/* Start a new digest. */
void sha256_init(struct sha256 *s);
/* Hash n more bytes from p. */
void sha256_update(struct sha256 *s, const void *p, size_t n);
/* Finish: the 32-byte digest into out.  s must be re-initialised before
 * it is used again. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_LEN]);
/* Finish as 64 lowercase hex digits and a NUL into hex. */
void sha256_final_hex(struct sha256 *s, char hex[SHA256_HEX_LEN + 1]);

#endif
