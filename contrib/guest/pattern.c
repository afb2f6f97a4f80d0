/*
 * Every 8-byte word of the stream is splitmix64 of its index: cheap,
 * without period in any size a test uses, and seekable.
 */
#include "pattern.h"

static uint64_t pattern_word(uint64_t index)
{
	uint64_t z = (index + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint8_t pattern_byte(uint64_t off)
{
	return (uint8_t)(pattern_word(off / 8) >> (8 * (off % 8)));
}

void pattern_fill(void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;
	size_t i = 0;

	/* Byte by byte up to a word boundary, then whole words. */
	for (; i < n && (off + i) % 8; i++)
		p[i] = pattern_byte(off + i);
	for (; i + 8 <= n; i += 8) {
		uint64_t w = pattern_word((off + i) / 8);
		unsigned b;

		for (b = 0; b < 8; b++)
			p[i + b] = (uint8_t)(w >> (8 * b));
	}
	for (; i < n; i++)
		p[i] = pattern_byte(off + i);
}

size_t pattern_check(const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;
	uint8_t want[4096];
	size_t done = 0, chunk, i;

	while (done < n) {
		chunk = n - done < sizeof(want) ? n - done : sizeof(want);
		pattern_fill(want, chunk, off + done);
		for (i = 0; i < chunk; i++)
			if (p[done + i] != want[i])
				return done + i;
		done += chunk;
	}
	return n;
}
