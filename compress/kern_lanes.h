/* kern_lanes.h: scalar element loops shared by the scalar kernels and the vector kernels' tails,
 * so a tail computes exactly what the scalar path does. */
#ifndef GX_KERN_LANES_H
#define GX_KERN_LANES_H

#include "codec_internal.h"

#define GX_F16_LIMIT 0x477ff000u   /* |x| >= 65520 rounds to Inf in fp16 */
#define GX_BF16_LIMIT 0x7f7f8000u  /* |x| >= this rounds to Inf in bf16 */

/* acc[i mod 16] += x_i^2 for i in [0, n), starting at lane 0. */
static inline void gx_lanes_sumsq(const float *x, size_t n, float acc[GX_LANES])
{
	for (size_t i = 0; i < n; i++)
		acc[i & 15] += x[i] * x[i];
}

/* ss[j] = folded 16-lane sum of squares of bucket j = x[jB, min((j+1)B, n)), for every bucket. */
static inline void gx_lanes_sumsq_buckets(const float *x, size_t n, uint32_t B, float *ss)
{
	for (size_t j = 0; j * B < n; j++) {
		float acc[GX_LANES] = { 0 };
		gx_lanes_sumsq(x + j * B, n - j * B < B ? n - j * B : B, acc);
		ss[j] = gx_lanes_fold(acc);
	}
}

static inline uint32_t gx_lanes_sumabs(const float *x, size_t n, float acc[GX_LANES])
{
	uint32_t m = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t a = gx_f2u(x[i]) & 0x7fffffffu;
		acc[i & 15] += gx_u2f(a);
		m = a > m ? a : m;
	}
	return m;
}

/* min-max uint8 code of one element (t >= 0, t < 2^22 by construction). */
static inline uint8_t gx_u8_code(float x, float mn, float inv)
{
	float t = (x - mn) * inv;
	float r = (t + 12582912.0f) - 12582912.0f;   /* round to nearest even */
	return r > 255.0f ? 255 : (uint8_t)r;
}

/* Stochastic quantizer, elements [j0, n) of a bucket (j0 a multiple of 8), any w in [2, 16]: element
 * j's code at bits [j*w, (j+1)*w) of out, its random bits gx_sq_rand16 of ARS block j / 8. */
static inline void gx_sq_encode_generic(const float *x, size_t j0, size_t n, const struct gx_sq *s, uint8_t *out)
{
	uint32_t u[4];
	memset(out + j0 * s->w / 8, 0, (n * s->w + 7) / 8 - j0 * s->w / 8);
	for (size_t j = j0; j < n; j++) {
		if (j == j0 || !(j & 7))
			gx_ars_block(&s->ars, (uint32_t)(j >> 3), s->stream, u);
		uint32_t code = gx_sq_code(s, gx_squant1(x[j], s, gx_sq_rand16(u, j)));
		size_t bit = j * s->w;
		uint32_t v = code << (bit & 7);
		for (size_t b = bit >> 3; v; b++, v >>= 8)
			out[b] |= (uint8_t)v;
	}
}

static inline uint32_t gx_sq_get(const uint8_t *in, size_t j, uint32_t w)
{
	size_t bit = j * w;
	uint32_t v = 0;
	size_t first = bit >> 3, last = (bit + w - 1) >> 3;
	for (size_t b = last + 1; b-- > first;)
		v = v << 8 | in[b];
	return (v >> (bit & 7)) & ((1u << w) - 1u);
}

static inline void gx_sq_decode_generic(const uint8_t *in, size_t n, uint32_t w, uint32_t smax,
					int offset_binary, float step, float *out, int acc)
{
	for (size_t j = 0; j < n; j++) {
		float v = (float)gx_sq_value(gx_sq_get(in, j, w), w, smax, offset_binary) * step;
		out[j] = acc ? out[j] + v : v;
	}
}

/* Append indices i in [i0, n) with absbits(x_i) >= t to idx (at most cap stored); cnt = already found. */
static inline size_t gx_scan_ge_tail(const float *x, size_t i0, size_t n, uint32_t t, uint32_t *idx,
				     size_t cap, size_t cnt)
{
	for (size_t i = i0; i < n; i++) {
		if ((gx_f2u(x[i]) & 0x7fffffffu) >= t) {
			if (cnt < cap)
				idx[cnt] = (uint32_t)i;
			cnt++;
		}
	}
	return cnt;
}

/* Rand-k selection sampling from element *i on: element j's random word is word j mod 4 of ARS block
 * j / 4 (stream 0) of the block's key. */
static inline size_t gx_randk_pick_tail(const struct gx_ars *a, uint32_t m, uint32_t *i, uint32_t *need,
					uint32_t *idx, size_t cap, size_t cnt)
{
	uint32_t j = *i, nd = *need, u[4], blk = UINT32_MAX;
	for (; j < m && nd && cnt < cap; j++) {
		if (j >> 2 != blk) {
			blk = j >> 2;
			gx_ars_block(a, blk, 0, u);
		}
		if ((((uint64_t)u[j & 3] * (m - j)) >> 32) < nd) {
			idx[cnt++] = j;
			nd--;
		}
	}
	*i = j;
	*need = nd;
	return cnt;
}

#endif
