/* codec_internal.h: the vector kernel table behind gx_codec.h (with the rand-k index walk over it), and
 * the scalar element rules every kernel must reproduce bit for bit.
 *
 * Rules that make all paths identical:
 *  - float sums use 16 lanes (lane = i mod 16, i counted from the start of the call), then the fixed
 *    tree of gx_lanes_fold(); vector paths keep the same 16 lanes in registers;
 *  - no FMA: compress/meson.build compiles with -ffp-contract=off, and kernels never use fma intrinsics;
 *  - rounding is the default round-to-nearest-even of MXCSR; float -> int is truncation through
 *    int32, except in the stochastic quantizer (round to nearest even, see gx_squant1); random
 *    numbers are words of ARS-5 blocks (gx_ars_block; AES-NI in the vector kernels).
 */
#ifndef GX_CODEC_INTERNAL_H
#define GX_CODEC_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gx_codec.h"
#include "gx_rng.h"

#define GX_LANES 16
#define GX_ABS_INF 0x7f800000u     /* absolute bits >= this: NaN or Inf */

static inline uint32_t gx_f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float gx_u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* Unaligned little-endian loads/stores (blocks sit at any byte offset in a packet). */
static inline float gx_ldf(const uint8_t *p)
{
	float f;
	memcpy(&f, p, 4);
	return f;
}

static inline void gx_stf(uint8_t *p, float f)
{
	memcpy(p, &f, 4);
}

static inline uint32_t gx_ld32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline void gx_st32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static inline uint16_t gx_ld16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static inline void gx_st16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

/* Fold 16 lane sums in a fixed tree: the one order every path uses. */
static inline float gx_lanes_fold(const float acc[GX_LANES])
{
	float s8[8], s4[4];
	for (int j = 0; j < 8; j++)
		s8[j] = acc[j] + acc[j + 8];
	for (int j = 0; j < 4; j++)
		s4[j] = s8[j] + s8[j + 4];
	return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/* float -> fp16 bits, round to nearest even, subnormals kept (input finite, |x| < 65520). */
static inline uint16_t gx_f32_to_f16(float f)
{
	uint32_t x = gx_f2u(f);
	uint32_t sign = (x >> 16) & 0x8000u;
	uint32_t a = x & 0x7fffffffu;

	if (a >= 0x38800000u) {                     /* >= 2^-14: normal fp16 */
		uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
		r -= 0x38000000u;                       /* rebias exponent 127 -> 15 */
		return (uint16_t)(sign | (r >> 13));
	}
	/* subnormal fp16: value = a * 2^24 rounded to an integer (RNE) */
	float v = gx_u2f(a) * 16777216.0f;          /* exact: power-of-two scaling of a normal float */
	float r = (v + 12582912.0f) - 12582912.0f;  /* RNE to integer, v < 2^10 */
	return (uint16_t)(sign | (uint32_t)r);
}

static inline float gx_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;

	if (e == 0) {                               /* zero or subnormal: m * 2^-24 exactly */
		float v = (float)m * 0x1p-24f;
		return gx_u2f(gx_f2u(v) | sign);
	}
	if (e == 31)
		return gx_u2f(sign | 0x7f800000u | (m << 13));
	return gx_u2f(sign | ((e + 112u) << 23) | (m << 13));
}

/* float -> bf16 bits, round to nearest even (input finite). */
static inline uint16_t gx_f32_to_bf16(float f)
{
	uint32_t x = gx_f2u(f);
	return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static inline float gx_bf16_to_f32(uint16_t h)
{
	return gx_u2f((uint32_t)h << 16);
}

/* Stochastic-quantizer parameters of one bucket. */
struct gx_sq {
	float f, r;               /* prescale (1 or 2^64) and levels per unit: L / (scale * f) */
	uint32_t smax;            /* largest level L (< 2^15) */
	uint32_t w;               /* bits per code: 2, 4 or 8 for the vector kernels */
	int offset_binary;        /* 0: code = sign << (w-1) | lvl (qsgd); 1: code = q + smax (fixed) */
	uint32_t stream;          /* ARS stream of the bucket: its first element's index in the block */
	uint8_t lut[16];          /* L <= 7: codes by q mod 16 (gx_sq_lut; for vector kernels) */
	size_t pf;                /* bytes ahead to prefetch: the block's length, so the next block's norm
	                           * pass finds its data in cache (0 when the input ends sooner) */
	struct gx_ars ars;        /* round keys of the block's key */
};

/* Fraction bits of the fixed-point level, and random bits per element: one ARS-5 block (128 bits)
 * serves 8 elements. */
#define GX_SQ_FB 16

/* Random word of element j of a bucket from u = ARS block j / 8 of its stream: the low half of
 * 32-bit word j mod 4 for j mod 8 < 4, the high half otherwise (so a vector of four consecutive
 * elements takes one half of every word: one AND or one shift). */
static inline uint32_t gx_sq_rand16(const uint32_t u[4], size_t j)
{
	return (u[j & 3] >> (16 * ((j >> 2) & 1))) & 0xffffu;
}

/* One stochastic quantization (QSGD and fixed point share it), u = the element's 16 random bits:
 * y = (v * f) * r is the value in levels; t = rne(y 2^16) (round to nearest even, as MXCSR does)
 * clamped to [-L 2^16, L 2^16]; q = floor((t + u) / 2^16) (arithmetic shift).  So q is
 * floor(t / 2^16) plus 1 with probability frac(t / 2^16), exactly (u takes all 2^16 values equally
 * often): E[q] = t / 2^16, within 2^-17 of a level of y (the rounding of t; ties to even).  Signed
 * rounding, so the sign needs no separate step; q is in [-L, L]; t + u < (L + 1) 2^16 <= 2^31.
 * y 2^16 is exact (a power-of-two scaling) and clamping before the conversion equals clamping q
 * after it, so a vector path may convert first, or for L < 64 take t from the mantissa of
 * y + 192 (whose ulp is 2^-16). */
static inline int32_t gx_squant1(float v, const struct gx_sq *s, uint32_t u)
{
	float lim = (float)(int32_t)(s->smax << GX_SQ_FB);
	float a = v * s->f * s->r * 65536.0f;
	a = a > lim ? lim : a < -lim ? -lim : a;
	return ((int32_t)lrintf(a) + (int32_t)u) >> GX_SQ_FB;
}

static inline uint32_t gx_sq_code(const struct gx_sq *s, int32_t q)
{
	if (s->offset_binary)
		return (uint32_t)(q + (int32_t)s->smax);
	return q < 0 ? ((1u << (s->w - 1)) | (uint32_t)-q) : (uint32_t)q;
}

/* The code table of s->lut (unused entries 0): for L <= 7, the code of q at index q mod 16 for q in
 * [-L, L], and L's code at index L + 1 (so a vector kernel clamps q from below only). */
static inline void gx_sq_lut(struct gx_sq *s)
{
	memset(s->lut, 0, sizeof(s->lut));
	if (s->smax <= 7) {
		for (int32_t q = -(int32_t)s->smax; q <= (int32_t)s->smax; q++)
			s->lut[q & 15] = (uint8_t)gx_sq_code(s, q);
		s->lut[(s->smax + 1) & 15] = (uint8_t)gx_sq_code(s, (int32_t)s->smax);
	}
}

static inline int32_t gx_sq_value(uint32_t code, uint32_t w, uint32_t smax, int offset_binary)
{
	if (offset_binary)
		return (int32_t)code - (int32_t)smax;
	uint32_t lvl = code & ((1u << (w - 1)) - 1u);
	return (code >> (w - 1)) ? -(int32_t)lvl : (int32_t)lvl;
}

/* Kernel table: one per vector path.  Every function's result is identical across paths. */
struct gx_kern {
	const char *name;
	/* max over i of (bits(x_i) & 0x7fffffff): >= GX_ABS_INF means a NaN or Inf is present */
	uint32_t (*absmax)(const float *x, size_t n);
	/* ss[j] = sum of x_i^2 over bucket j = x[jB, min((j+1)B, n)) (16 lanes from the bucket's start
	 * + fold), for every bucket: one call per block, so vector paths can overlap the buckets'
	 * dependency chains */
	void (*sumsq_buckets)(const float *x, size_t n, uint32_t B, float *ss);
	/* sum of |x_i| (16 lanes + fold); returns absmax */
	uint32_t (*sumabs)(const float *x, size_t n, float *sum);
	/* min and max (meaningful only when the returned absmax is finite) */
	uint32_t (*minmax)(const float *x, size_t n, float *mn, float *mx);
	/* dense float formats; encoders return the input's absmax */
	uint32_t (*enc_f32)(const float *x, size_t n, uint8_t *out);
	uint32_t (*enc_f16)(const float *x, size_t n, uint8_t *out);
	uint32_t (*enc_bf16)(const float *x, size_t n, uint8_t *out);
	void (*dec_f32)(const uint8_t *in, size_t n, float *out, int acc);
	void (*dec_f16)(const uint8_t *in, size_t n, float *out, int acc);
	void (*dec_bf16)(const uint8_t *in, size_t n, float *out, int acc);
	/* compressed-domain adds a += b; return nonzero if a result is Inf */
	int (*add_f32)(uint8_t *a, const uint8_t *b, size_t n);
	int (*add_f16)(uint8_t *a, const uint8_t *b, size_t n);
	int (*add_bf16)(uint8_t *a, const uint8_t *b, size_t n);
	/* min-max uint8: code = min(rne((x - mn) * inv), 255); decode mn + code * step */
	void (*enc_u8)(const float *x, size_t n, float mn, float inv, uint8_t *out);
	void (*dec_u8)(const uint8_t *in, size_t n, float mn, float step, float *out, int acc);
	/* stochastic quantizer (gx_squant1), codes packed w bits each (w = 2, 4, 8), little-endian bit
	 * order.  Requires |v f r| <= L + 1/2 when L <= 7 (vector kernels read the level off a
	 * float's mantissa and clamp only what that allows): qsgd and fixed have r = L / (scale f)
	 * with scale >= max|v| (1 - 2^-22), so |v f r| <= L + 2^-19 */
	void (*enc_sq)(const float *x, size_t n, const struct gx_sq *s, uint8_t *out);
	void (*dec_sq)(const uint8_t *in, size_t n, uint32_t w, uint32_t smax, int offset_binary,
		       float step, float *out, int acc);
	/* sign bits: bit i set iff x_i < 0; decode +-scale */
	void (*enc_sign)(const float *x, size_t n, uint8_t *out);
	void (*dec_sign)(const uint8_t *in, size_t n, float scale, float *out, int acc);
	/* top-k candidates: indices i (ascending) with absbits(x_i) >= t, at most cap stored;
	 * returns how many qualify in all */
	size_t (*scan_ge)(const float *x, size_t n, uint32_t t, uint32_t *idx, size_t cap);
	/* rand-k selection sampling (Knuth's algorithm S) over [0, m), resumable: from element *i
	 * with *need still to choose, element i is taken iff (u_i * (m - i)) >> 32 < need, u_i word
	 * i mod 4 of ARS block i / 4 (stream 0) of the round keys a; writes at most cap chosen
	 * indices, returns how many, advances *i and *need */
	size_t (*randk_pick)(const struct gx_ars *a, uint32_t m, uint32_t *i, uint32_t *need, uint32_t *idx,
			     size_t cap);
};

extern const struct gx_kern gx_kern_scalar;
extern const struct gx_kern gx_kern_avx2;
extern const struct gx_kern gx_kern_avx512;

/* The active table (GX_SIMD or gx_simd_set, else the best the CPU has). */
const struct gx_kern *gx_kern(void);

/* Calls EMIT(i) for each index chosen by the kernel's selection sampling, in increasing order: the
 * rand-k walk encode.c (choosing the entries) and decode.c (shared-seed blocks, whose indices are
 * implicit) both take. */
#define RANDK_WALK(k_, key, m, kk, EMIT)                                                            \
	do {                                                                                        \
		uint32_t pos_ = 0, need_ = (kk), buf_[256];                                        \
		struct gx_ars ars_;                                                                 \
		gx_ars_init(&ars_, (key));                                                          \
		while (need_) {                                                                     \
			size_t got_ = (k_)->randk_pick(&ars_, (m), &pos_, &need_, buf_, 256);       \
			for (size_t e_ = 0; e_ < got_; e_++)                                        \
				EMIT(buf_[e_]);                                                     \
		}                                                                                   \
	} while (0)

#endif
