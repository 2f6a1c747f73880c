/* gx_rng.h: counter-based random numbers, keyed by (seed, rank, step, block).
 *
 * Value i of a stream is a pure function of (key, i): no state, so any element can be drawn in any
 * order, by any thread, and by scalar and vector code alike with bit-identical results.  The mixer
 * is 32-bit multiply/xor-shift only, so AVX2/AVX-512 kernels compute the same bits with mullo_epi32.
 * Shared-seed schemes (rand-k with common indices) pass rank = GX_RNG_SHARED.
 */
#ifndef GX_RNG_H
#define GX_RNG_H

#include <stdint.h>

#define GX_RNG_SHARED 0xffffffffu

static inline uint64_t gx_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* 32-bit avalanche mixer (xorshift-multiply, two rounds). */
static inline uint32_t gx_mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* Key of one stream. */
static inline uint64_t gx_rng_key(uint64_t seed, uint32_t rank, uint64_t step, uint32_t block)
{
	uint64_t k = gx_splitmix64(seed);
	k = gx_splitmix64(k ^ ((uint64_t)rank << 32 | block));
	return gx_splitmix64(k ^ step);
}

/* Value i of the stream `key`. */
static inline uint32_t gx_rng_u32(uint64_t key, uint32_t i)
{
	return gx_mix32(gx_mix32(i ^ (uint32_t)key) + (uint32_t)(key >> 32));
}

/* Uniform float in [0, 1) with 24 random bits: exact, so every vector path agrees. */
static inline float gx_rng_uniform(uint64_t key, uint32_t i)
{
	return (float)(gx_rng_u32(key, i) >> 8) * 0x1p-24f;
}

#endif
