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
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

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

/* ---- ARS-5: bulk streams for vector kernels -------------------------------------------------
 * gx_rng_u32 costs two 32-bit multiply rounds per value; vector multiplies and shifts are slow on
 * some CPUs (AMD Zen 1: vpmulld ymm ~6 cycles), while one AES round (aesenc) mixes 128 bits in
 * half a cycle.  ARS-5 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11;
 * Intel MKL's ARS5) is five AES rounds over a counter with a Weyl key schedule: counter-based and
 * Crush-resistant.  Block `ctr` of stream `stream` under key k gives four 32-bit values, so value
 * j of a stream is word j mod 4 of block j / 4 (rand-k); consumers that need fewer bits split the
 * words (the stochastic quantizer takes 16-bit halves, 8 per block: gx_sq_rand16 in
 * compress/codec_internal.h).  This scalar version is the reference; kernels with AES-NI compute
 * the same bits with _mm_aesenc_si128 / _mm_aesenclast_si128. */
#define GX_ARS_ROUNDS 5

/* Round keys of one 64-bit key: rk[r] = (key + r W0, splitmix(key) + r W1) as two 64-bit words. */
struct gx_ars {
	uint64_t rk[GX_ARS_ROUNDS + 1][2];
};

static inline void gx_ars_init(struct gx_ars *a, uint64_t key)
{
	uint64_t lo = key, hi = gx_splitmix64(key);
	for (int r = 0; r <= GX_ARS_ROUNDS; r++) {
		a->rk[r][0] = lo + (uint64_t)r * 0x9e3779b97f4a7c15ull;
		a->rk[r][1] = hi + (uint64_t)r * 0xbb67ae8584caa73bull;
	}
}

static inline uint8_t gx_aes_xtime(uint8_t b)
{
	return (uint8_t)(b << 1 ^ (b >> 7) * 0x1b);
}

/* One AES encryption round on 16 bytes, as aesenc (last: as aesenclast, no MixColumns). */
static inline void gx_aes_round(uint8_t s[16], const uint64_t rk[2], int last)
{
	static const uint8_t sbox[256] = {
		0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
		0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
		0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
		0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
		0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
		0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
		0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
		0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
		0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
		0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
		0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
		0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
		0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
		0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
		0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
		0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
	};
	uint8_t t[16];
	for (int c = 0; c < 4; c++)          /* ShiftRows + SubBytes; byte 4c + r is row r, column c */
		for (int r = 0; r < 4; r++)
			t[4 * c + r] = sbox[s[4 * ((c + r) & 3) + r]];
	for (int c = 0; c < 4; c++) {
		uint8_t *a = t + 4 * c;
		if (last) {
			memcpy(s + 4 * c, a, 4);
			continue;
		}
		uint8_t x = a[0] ^ a[1] ^ a[2] ^ a[3];   /* MixColumns: b_i = a_i ^ x ^ 2 (a_i ^ a_i+1) */
		for (int r = 0; r < 4; r++)
			s[4 * c + r] = a[r] ^ x ^ gx_aes_xtime(a[r] ^ a[(r + 1) & 3]);
	}
	for (int i = 0; i < 16; i++)
		s[i] ^= (uint8_t)(rk[i >> 3] >> (8 * (i & 7)));
}

/* Block `ctr` of stream `stream`: input words (ctr, stream, 0, 0), little-endian. */
static inline void gx_ars_block(const struct gx_ars *a, uint32_t ctr, uint32_t stream, uint32_t out[4])
{
	uint8_t s[16];
	uint64_t in[2] = { (uint64_t)stream << 32 | ctr, 0 };
	for (int i = 0; i < 16; i++)
		s[i] = (uint8_t)((in[i >> 3] ^ a->rk[0][i >> 3]) >> (8 * (i & 7)));
	for (int r = 1; r <= GX_ARS_ROUNDS; r++)
		gx_aes_round(s, a->rk[r], r == GX_ARS_ROUNDS);
	for (int w = 0; w < 4; w++)
		out[w] = (uint32_t)s[4 * w] | (uint32_t)s[4 * w + 1] << 8 | (uint32_t)s[4 * w + 2] << 16 |
			 (uint32_t)s[4 * w + 3] << 24;
}

#ifdef __cplusplus
}
#endif

#endif
