/* encode.c: encode an array into blocks (gx_codec_encode): the dense encoders of one block and the
 * sparse selections (top-k by sampled threshold + exact fix-up, rand-k by selection sampling).
 * Calls codec.c (sizes), block.c (block headers) and simd.c (kernel table). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec_internal.h"
#include "codec_priv.h"
#include "kern_lanes.h"

#define TWO_M60 0x1p-60f
#define TWO_P60 0x1p60f
#define TWO_P64 0x1p64f

static uint64_t block_key(const struct gx_codec_ctx *ctx, uint32_t rank, uint64_t off)
{
	return gx_rng_key(ctx->seed, rank, ctx->step ^ ((off >> 32) * 0x9e3779b97f4a7c15ull), (uint32_t)off);
}

/* First index in x[0..n) whose absolute bits reach `limit` (caller knows one exists). */
static size_t first_at_least(const float *x, size_t n, uint32_t limit)
{
	for (size_t i = 0; i < n; i++)
		if ((gx_f2u(x[i]) & 0x7fffffffu) >= limit)
			return i;
	return n;
}

static gx_status_t nonfinite(const struct gx_codec *c, const float *x, size_t i, size_t src_i, uint64_t gi,
			     const char *why)
{
	return gx_error(GX_ERR_NONFINITE, "%s encode: input[%zu] (element %llu) = %g %s; gradients must be "
			"finite: check the learning rate or loss scaling", c->name, src_i,
			(unsigned long long)gi, (double)x[i], why);
}

/* Input checks shared by every encoder: x[0..n) where x[0] is src index src_i0, element gi0. */
static gx_status_t check_limit(const struct gx_codec *c, const float *x, size_t n, uint32_t am, uint32_t limit,
			       size_t src_i0, uint64_t gi0)
{
	if (am < limit)
		return GX_OK;
	size_t i = first_at_least(x, n, limit);
	int nf = (gx_f2u(x[i]) & 0x7fffffffu) >= GX_ABS_INF;
	return nonfinite(c, x, i, src_i0 + i, gi0 + i,
			 nf ? "is not finite" : c->id == GX_CODEC_FP16 ? "overflows fp16 (max 65504): use bf16"
									: "overflows the encoding");
}

/* Norm of a bucket without overflow or underflow: amax * sqrt(sum (x/amax)^2), fixed lane order. */
static float scaled_norm(const float *x, size_t n, float amax)
{
	float acc[GX_LANES] = { 0 };
	for (size_t i = 0; i < n; i++) {
		float y = x[i] / amax;
		acc[i & 15] += y * y;
	}
	return amax * sqrtf(gx_lanes_fold(acc));
}

/* ---- dense encoders: one block ------------------------------------------------------------ */

#define SQ_CHUNK 64   /* buckets whose sums of squares one kernel call computes */

/* `ahead`: elements of the input after this block (prefetching stays inside the input: a prefetch
 * never faults, but one into an unmapped page costs a page walk). */
static gx_status_t enc_sq_block(struct gx_codec *c, const struct gx_kern *k, const struct gx_codec_ctx *ctx,
				const float *x, uint32_t m, uint64_t off, uint8_t *body, size_t src_i0, size_t ahead)
{
	uint32_t B = c->bucket, nb = (m + B - 1) / B;
	uint8_t *codes = body + 4 * (size_t)nb;
	struct gx_sq s = { .smax = c->levels, .w = c->bits, .offset_binary = c->id == GX_CODEC_FIXED,
			   .pf = ahead >= m ? (size_t)m * sizeof(float) : 0 };
	float ssv[SQ_CHUNK], scv[SQ_CHUNK], rv[SQ_CHUNK];
	gx_sq_lut(&s);
	gx_ars_init(&s.ars, block_key(ctx, ctx->rank, off));

	for (uint32_t j = 0; j < nb; j++) {
		const float *xb = x + (size_t)j * B;
		uint32_t mb = j + 1 < nb ? B : m - j * B;
		float scale, ss = 0.0f;
		if (c->id == GX_CODEC_QSGD) {
			if (j % SQ_CHUNK == 0) {
				uint32_t cnt = nb - j < SQ_CHUNK ? nb - j : SQ_CHUNK;
				k->sumsq_buckets(xb, j + cnt < nb ? (size_t)cnt * B : m - (size_t)j * B, B, ssv);
				/* the common case's norms and levels per unit for the whole chunk: independent
				 * square roots and divisions overlap instead of each delaying its bucket */
				for (uint32_t b = 0; b < cnt; b++) {
					scv[b] = sqrtf(ssv[b]);
					rv[b] = (float)c->levels / scv[b];
				}
			}
			ss = ssv[j % SQ_CHUNK];
		}
		/* a sum of squares in [2^-100, 2^100] puts max|v| in [2^-55, 2^50]: every value finite,
		 * no rescaled norm, no prescale, so the max pass is skipped (the bits are those it
		 * would give) */
		if (c->id == GX_CODEC_QSGD && ss >= 0x1p-100f && ss <= 0x1p100f) {
			scale = scv[j % SQ_CHUNK];
			s.f = 1.0f;
			s.r = rv[j % SQ_CHUNK];
		} else {
			uint32_t am = k->absmax(xb, mb);
			gx_status_t st = check_limit(c, xb, mb, am, GX_ABS_INF, src_i0 + (size_t)j * B,
						     off + (uint64_t)j * B);
			if (st < 0)
				return st;
			float amax = gx_u2f(am);
			if (c->id == GX_CODEC_FIXED)
				scale = amax;
			else if (!am)
				scale = 0.0f;
			else if (amax < TWO_M60 || amax > TWO_P60 || isinf(ss))
				scale = scaled_norm(xb, mb, amax);
			else
				scale = sqrtf(ss);
			if (isinf(scale))
				return gx_error(GX_ERR_NONFINITE, "%s encode: the L2 norm of the bucket at element %llu "
						"overflows float: gradients this large mean the run diverged", c->name,
						(unsigned long long)(off + (uint64_t)j * B));
			s.f = amax < TWO_M60 ? TWO_P64 : 1.0f;
			/* levels per unit (< 2^92: far from overflow, also times 2^16) */
			s.r = am ? (float)c->levels / (scale * s.f) : 0.0f;
		}
		s.stream = j * B;
		gx_stf(body + 4 * (size_t)j, scale);
		if (c->bits == 2 || c->bits == 4 || c->bits == 8)
			k->enc_sq(xb, mb, &s, codes);
		else
			gx_sq_encode_generic(xb, 0, mb, &s, codes);
		codes += ((size_t)mb * c->bits + 7) / 8;
	}
	return GX_OK;
}

static gx_status_t enc_randk_block(struct gx_codec *c, const struct gx_kern *k, const struct gx_codec_ctx *ctx,
				   const float *x, uint32_t m, uint64_t off, uint8_t *body, size_t src_i0)
{
	uint32_t kk = (uint32_t)gx_codec_k(c->ratio, m);
	uint32_t am = k->absmax(x, m);
	gx_status_t st = check_limit(c, x, m, am, GX_ABS_INF, src_i0, off);
	if (st < 0)
		return st;
	float sc = (float)((double)m / (double)kk);
	uint64_t key = block_key(ctx, c->shared ? GX_RNG_SHARED : ctx->rank, off);
	uint32_t n = 0, big = 0;
	if (c->shared) {
		memcpy(body, &key, 8);
		uint8_t *val = body + 8;
#define EMIT_SHARED(i)                                                                              \
	do {                                                                                        \
		float v_ = x[i] * sc;                                                               \
		if ((gx_f2u(v_) & 0x7fffffffu) > big) big = gx_f2u(v_) & 0x7fffffffu;                                                    \
		gx_stf(val + 4 * (size_t)n++, v_);                                                  \
	} while (0)
		RANDK_WALK(k, key, m, kk, EMIT_SHARED);
	} else {
		uint8_t *idx = body, *val = body + 4 * (size_t)kk;
#define EMIT_PAIR(i)                                                                                \
	do {                                                                                        \
		float v_ = x[i] * sc;                                                               \
		if ((gx_f2u(v_) & 0x7fffffffu) > big) big = gx_f2u(v_) & 0x7fffffffu;                                                    \
		gx_st32(idx + 4 * (size_t)n, (i));                                                  \
		gx_stf(val + 4 * (size_t)n++, v_);                                                  \
	} while (0)
		RANDK_WALK(k, key, m, kk, EMIT_PAIR);
	}
	if (big >= GX_ABS_INF)
		return gx_error(GX_ERR_NONFINITE, "%s encode: a value scaled by m/k = %g overflows float in the "
				"block at element %llu", c->name, (double)sc, (unsigned long long)off);
	return GX_OK;
}

static gx_status_t enc_dense_block(struct gx_codec *c, const struct gx_kern *k, const struct gx_codec_ctx *ctx,
				   const float *x, uint32_t m, uint64_t off, uint8_t *body, size_t src_i0, size_t ahead)
{
	uint32_t am;
	float mn, mx, sum;

	switch (c->id) {
	case GX_CODEC_NONE:
		am = k->enc_f32(x, m, body);
		return check_limit(c, x, m, am, GX_ABS_INF, src_i0, off);
	case GX_CODEC_FP16:
		am = k->enc_f16(x, m, body);
		return check_limit(c, x, m, am, GX_F16_LIMIT, src_i0, off);
	case GX_CODEC_BF16:
		am = k->enc_bf16(x, m, body);
		return check_limit(c, x, m, am, GX_BF16_LIMIT, src_i0, off);
	case GX_CODEC_INT8: {
		am = k->minmax(x, m, &mn, &mx);
		gx_status_t st = check_limit(c, x, m, am, GX_ABS_INF, src_i0, off);
		if (st < 0)
			return st;
		mn += 0.0f;       /* -0 -> +0: the header bytes must not depend on the path */
		mx += 0.0f;
		float range = mx - mn;
		if (isinf(range))
			return gx_error(GX_ERR_NONFINITE, "%s encode: block at element %llu spans [%g, %g], a "
					"range beyond float: the run diverged", c->name,
					(unsigned long long)off, (double)mn, (double)mx);
		float inv = range > 0.0f ? 255.0f / range : 0.0f;
		if (isinf(inv))   /* range below ~7.5e-37: encode as constant, error <= range */
			inv = 0.0f;
		gx_stf(body, mn);
		gx_stf(body + 4, mx);
		k->enc_u8(x, m, mn, inv, body + 8);
		return GX_OK;
	}
	case GX_CODEC_SIGN: {
		am = k->sumabs(x, m, &sum);
		gx_status_t st = check_limit(c, x, m, am, GX_ABS_INF, src_i0, off);
		if (st < 0)
			return st;
		float scale = sum / (float)m;
		if (isinf(scale))
			return gx_error(GX_ERR_NONFINITE, "%s encode: the L1 norm of the block at element %llu "
					"overflows float", c->name, (unsigned long long)off);
		gx_stf(body, scale);
		k->enc_sign(x, m, body + 4);
		return GX_OK;
	}
	case GX_CODEC_QSGD:
	case GX_CODEC_FIXED:
		return enc_sq_block(c, k, ctx, x, m, off, body, src_i0, ahead);
	case GX_CODEC_RANDK:
		return enc_randk_block(c, k, ctx, x, m, off, body, src_i0);
	default:
		return gx_error(GX_ERR_INVAL, "%s is not a dense codec", c->name);
	}
}

/* ---- top-k ----------------------------------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t want, size_t elem)
{
	if (*cap >= want)
		return 0;
	void *q = realloc(*p, want * elem);
	if (!q)
		return -1;
	*p = q;
	*cap = want;
	return 0;
}

/* k-th largest (k >= 1) of n distinct keys, partially reordering a (Hoare partition, median of 3). */
static uint64_t kth_largest(uint64_t *a, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1, target = k - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t x = a[lo], y = a[mid], z = a[hi];
		uint64_t piv = x > y ? (y > z ? y : (x > z ? z : x)) : (x > z ? x : (y > z ? z : y));
		size_t i = lo, j = hi;
		while (i <= j) {
			while (a[i] > piv)
				i++;
			while (a[j] < piv)
				j--;
			if (i <= j) {
				uint64_t t = a[i];
				a[i] = a[j];
				a[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (target <= j && j < hi)
			hi = j;
		else if (target >= i)
			lo = i;
		else
			break;
	}
	return a[target];
}

static inline uint64_t topk_key(const float *x, uint32_t i)
{
	return (uint64_t)(gx_f2u(x[i]) & 0x7fffffffu) << 32 | (uint32_t)~i;
}

/* Exact: the k-th largest absolute value V by a two-level 16-bit radix histogram, then every
 * element above V and the lowest-index ones equal to V.  For inputs the sampled threshold cannot
 * separate (many ties). */
static gx_status_t topk_radix(struct gx_codec *c, const float *x, uint32_t n, uint32_t k, uint32_t *sel)
{
	if (!c->hist && !(c->hist = malloc(65536 * sizeof(uint32_t))))
		return gx_error(GX_ERR_NOMEM, "topk: out of memory");
	uint32_t *h = c->hist, hi = 0, lo = 0, above = 0;
	memset(h, 0, 65536 * sizeof(uint32_t));
	for (uint32_t i = 0; i < n; i++)
		h[(gx_f2u(x[i]) & 0x7fffffffu) >> 16]++;
	for (uint32_t b = 65536; b-- > 0;) {
		if (above + h[b] >= k) {
			hi = b;
			break;
		}
		above += h[b];
	}
	memset(h, 0, 65536 * sizeof(uint32_t));
	for (uint32_t i = 0; i < n; i++) {
		uint32_t a = gx_f2u(x[i]) & 0x7fffffffu;
		if (a >> 16 == hi)
			h[a & 0xffff]++;
	}
	for (uint32_t b = 65536; b-- > 0;) {
		if (above + h[b] >= k) {
			lo = b;
			break;
		}
		above += h[b];
	}
	uint32_t v = hi << 16 | lo, eq = k - above, cnt = 0;
	for (uint32_t i = 0; i < n && cnt < k; i++) {
		uint32_t a = gx_f2u(x[i]) & 0x7fffffffu;
		if (a > v || (a == v && eq && eq--))
			sel[cnt++] = i;
	}
	return GX_OK;
}

/* Indices of the k largest |x_i| in increasing index order (ties: lower index), into c->cand. */
static gx_status_t topk_select(struct gx_codec *c, const struct gx_kern *k, const float *x, uint32_t n,
			       uint32_t kk, uint32_t **out)
{
	size_t cap = (size_t)2 * kk + 4096;
	if (cap > n)
		cap = n;
	if (grow((void **)&c->cand, &c->cand_cap, cap, sizeof(uint32_t)) ||
	    grow((void **)&c->keys, &c->keys_cap, cap > 4096 ? cap : 4096, sizeof(uint64_t)))
		return gx_error(GX_ERR_NOMEM, "topk: out of memory for %zu candidates", cap);
	uint32_t *cand = c->cand;
	uint64_t *keys = c->keys;
	*out = cand;
	if (kk == n) {
		for (uint32_t i = 0; i < n; i++)
			cand[i] = i;
		return GX_OK;
	}
	size_t cnt = 0;
	int done = 0;
	if (n > 16384) {
		/* threshold from a deterministic sample, aimed at about 1.25 k + slack candidates */
		const uint32_t S = 4096;
		for (uint32_t j = 0; j < S; j++) {
			uint32_t i = (uint32_t)(((uint64_t)gx_mix32(j * 0x9e3779b9u + 1u) * n) >> 32);
			keys[j] = (uint64_t)(gx_f2u(x[i]) & 0x7fffffffu) << 32 | j;
		}
		uint64_t r = (uint64_t)((double)kk / n * S * 1.25) + 16;
		for (int tries = 0; tries < 3 && !done; tries++) {
			if (r >= S)
				break;
			uint32_t t = (uint32_t)(kth_largest(keys, S, r + 1) >> 32);
			if (!t)
				break;
			cnt = k->scan_ge(x, n, t, cand, cap);
			if (cnt >= kk && cnt <= cap)
				done = 1;
			else if (cnt > cap)
				break;
			else
				r = r * 2 + 16;
		}
	} else {
		cnt = n <= cap ? n : 0;
		for (uint32_t i = 0; i < cnt; i++)
			cand[i] = i;
		done = cnt == n;
	}
	if (!done)
		return topk_radix(c, x, n, kk, cand);
	/* exact k among the candidates: keys unique (index in the low half), larger key wins */
	for (size_t i = 0; i < cnt; i++)
		keys[i] = topk_key(x, cand[i]);
	uint64_t kth = kth_largest(keys, cnt, kk);
	size_t w = 0;
	for (size_t i = 0; i < cnt; i++)
		if (topk_key(x, cand[i]) >= kth)
			cand[w++] = cand[i];
	return GX_OK;
}

static gx_status_t enc_topk(struct gx_codec *c, const struct gx_kern *k, const float *src, size_t n,
			    uint64_t offset, size_t per, uint8_t *dst)
{
	uint32_t kk = (uint32_t)gx_codec_k(c->ratio, n), *sel = NULL;
	gx_status_t st = topk_select(c, k, src, (uint32_t)n, kk, &sel);
	if (st < 0)
		return st;
	/* every NaN/Inf is at least as large as any threshold, so one is among the selected */
	uint32_t big = 0;
	for (uint32_t i = 0; i < kk; i++) {
		uint32_t a = gx_f2u(src[sel[i]]) & 0x7fffffffu;
		big = a > big ? a : big;
	}
	if (big >= GX_ABS_INF) {
		size_t i = first_at_least(src, n, GX_ABS_INF);
		return nonfinite(c, src, i, i, offset + i, "is not finite");
	}
	size_t nb = (kk + per - 1) / per;
	for (size_t b = 0; b < nb; b++) {
		uint32_t e0 = (uint32_t)(b * per), e1 = b + 1 < nb ? (uint32_t)((b + 1) * per) : kk;
		uint32_t start = b ? sel[e0] : 0, end = b + 1 < nb ? sel[e1] : (uint32_t)n;
		uint32_t cntb = e1 - e0, bytes = GX_CODEC_HDR_BYTES + 8 * cntb;
		gx_block_hdr_write(dst, c, bytes, end - start, offset + start);
		uint8_t *idx = dst + GX_CODEC_HDR_BYTES, *val = idx + 4 * (size_t)cntb;
		for (uint32_t e = 0; e < cntb; e++) {
			gx_st32(idx + 4 * (size_t)e, sel[e0 + e] - start);
			gx_stf(val + 4 * (size_t)e, src[sel[e0 + e]]);
		}
		dst += bytes;
	}
	return GX_OK;
}

/* ---- encode driver ------------------------------------------------------------------------ */

gx_status_t gx_codec_encode(struct gx_codec *c, const struct gx_codec_ctx *ctx, const float *src, size_t n,
			    uint64_t offset, size_t payload, void *dst, size_t dst_cap, size_t *out_len)
{
	static const struct gx_codec_ctx zero_ctx;
	size_t need, nblocks;
	gx_status_t st;

	if (!c || !out_len)
		return gx_error(GX_ERR_INVAL, "gx_codec_encode: %s is NULL", c ? "out_len" : "codec");
	*out_len = 0;
	if ((n && !src) || (!dst && dst_cap))
		return gx_error(GX_ERR_INVAL, "gx_codec_encode: %s is NULL", n && !src ? "src" : "dst");
	if ((st = gx_codec_encoded_size(c, n, payload, &need, &nblocks)) < 0)
		return st;
	if (offset > UINT64_MAX - n)
		return gx_error(GX_ERR_INVAL, "gx_codec_encode: offset %llu + %zu elements overflows",
				(unsigned long long)offset, n);
	if (need > dst_cap)
		return gx_error(GX_ERR_NOSPC, "gx_codec_encode: %s needs %zu bytes for %zu elements at payload %zu, "
				"the output holds %zu (size it with gx_codec_encoded_size)", c->name, need, n,
				payload, dst_cap);
	if (!n)
		return GX_OK;
	if (!ctx)
		ctx = &zero_ctx;
	const struct gx_kern *k = gx_kern();
	size_t per = gx_codec_block_elems(c, payload);
	uint8_t *p = dst;
	if (c->id == GX_CODEC_TOPK) {
		st = enc_topk(c, k, src, n, offset, per, p);
	} else {
		for (size_t i = 0; i < n; i += per) {
			uint32_t m = (uint32_t)(n - i < per ? n - i : per);
			uint32_t bytes = (uint32_t)gx_codec_block_bytes(c, m);
			gx_block_hdr_write(p, c, bytes, m, offset + i);
			st = enc_dense_block(c, k, ctx, src + i, m, offset + i, p + GX_CODEC_HDR_BYTES, i, n - i - m);
			if (st < 0)
				break;
			p += bytes;
		}
	}
	if (st < 0)
		return st;
	*out_len = need;
	return GX_OK;
}
