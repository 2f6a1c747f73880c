/* kern_scalar.c: the reference kernels.  They define every codec's bits; the vector paths must
 * reproduce them exactly (tests/test_codec.c compares all paths). */
#include "codec_internal.h"
#include "kern_lanes.h"

static uint32_t s_absmax(const float *x, size_t n)
{
	uint32_t m = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t a = gx_f2u(x[i]) & 0x7fffffffu;
		m = a > m ? a : m;
	}
	return m;
}

static void s_sumsq_buckets(const float *x, size_t n, uint32_t B, float *ss)
{
	gx_lanes_sumsq_buckets(x, n, B, ss);
}

static uint32_t s_sumabs(const float *x, size_t n, float *sum)
{
	float acc[GX_LANES] = { 0 };
	uint32_t m = gx_lanes_sumabs(x, n, acc);
	*sum = gx_lanes_fold(acc);
	return m;
}

static uint32_t s_minmax(const float *x, size_t n, float *mn, float *mx)
{
	float lo = x[0], hi = x[0];
	uint32_t m = 0;
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
		uint32_t a = gx_f2u(v) & 0x7fffffffu;
		m = a > m ? a : m;
	}
	*mn = lo;
	*mx = hi;
	return m;
}

static uint32_t s_enc_f32(const float *x, size_t n, uint8_t *out)
{
	memcpy(out, x, n * 4);
	return s_absmax(x, n);
}

static uint32_t s_enc_f16(const float *x, size_t n, uint8_t *out)
{
	uint32_t m = s_absmax(x, n);
	if (m >= GX_F16_LIMIT)
		return m;
	for (size_t i = 0; i < n; i++)
		gx_st16(out + 2 * i, gx_f32_to_f16(x[i]));
	return m;
}

static uint32_t s_enc_bf16(const float *x, size_t n, uint8_t *out)
{
	uint32_t m = s_absmax(x, n);
	if (m >= GX_BF16_LIMIT)
		return m;
	for (size_t i = 0; i < n; i++)
		gx_st16(out + 2 * i, gx_f32_to_bf16(x[i]));
	return m;
}

static void s_dec_f32(const uint8_t *in, size_t n, float *out, int acc)
{
	if (!acc) {
		memcpy(out, in, n * 4);
		return;
	}
	for (size_t i = 0; i < n; i++)
		out[i] += gx_ldf(in + 4 * i);
}

static void s_dec_f16(const uint8_t *in, size_t n, float *out, int acc)
{
	for (size_t i = 0; i < n; i++) {
		float v = gx_f16_to_f32(gx_ld16(in + 2 * i));
		out[i] = acc ? out[i] + v : v;
	}
}

static void s_dec_bf16(const uint8_t *in, size_t n, float *out, int acc)
{
	for (size_t i = 0; i < n; i++) {
		float v = gx_bf16_to_f32(gx_ld16(in + 2 * i));
		out[i] = acc ? out[i] + v : v;
	}
}

static int s_add_f32(uint8_t *a, const uint8_t *b, size_t n)
{
	uint32_t m = 0;
	for (size_t i = 0; i < n; i++) {
		float s = gx_ldf(a + 4 * i) + gx_ldf(b + 4 * i);
		gx_stf(a + 4 * i, s);
		uint32_t u = gx_f2u(s) & 0x7fffffffu;
		m = u > m ? u : m;
	}
	return m >= GX_ABS_INF;
}

static int s_add_f16(uint8_t *a, const uint8_t *b, size_t n)
{
	int inf = 0;
	for (size_t i = 0; i < n; i++) {
		float s = gx_f16_to_f32(gx_ld16(a + 2 * i)) + gx_f16_to_f32(gx_ld16(b + 2 * i));
		uint16_t h;
		if ((gx_f2u(s) & 0x7fffffffu) >= GX_F16_LIMIT) {
			h = (uint16_t)(((gx_f2u(s) >> 16) & 0x8000u) | 0x7c00u);
			inf = 1;
		} else {
			h = gx_f32_to_f16(s);
		}
		gx_st16(a + 2 * i, h);
	}
	return inf;
}

static int s_add_bf16(uint8_t *a, const uint8_t *b, size_t n)
{
	int inf = 0;
	for (size_t i = 0; i < n; i++) {
		float s = gx_bf16_to_f32(gx_ld16(a + 2 * i)) + gx_bf16_to_f32(gx_ld16(b + 2 * i));
		uint16_t h = gx_f32_to_bf16(s);
		inf |= (h & 0x7f80u) == 0x7f80u;
		gx_st16(a + 2 * i, h);
	}
	return inf;
}

static void s_enc_u8(const float *x, size_t n, float mn, float inv, uint8_t *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = gx_u8_code(x[i], mn, inv);
}

static void s_dec_u8(const uint8_t *in, size_t n, float mn, float step, float *out, int acc)
{
	for (size_t i = 0; i < n; i++) {
		float v = mn + (float)in[i] * step;
		out[i] = acc ? out[i] + v : v;
	}
}

static void s_enc_sq(const float *x, size_t n, const struct gx_sq *s, uint8_t *out)
{
	gx_sq_encode_generic(x, 0, n, s, out);
}

static void s_dec_sq(const uint8_t *in, size_t n, uint32_t w, uint32_t smax, int offset_binary,
		     float step, float *out, int acc)
{
	gx_sq_decode_generic(in, n, w, smax, offset_binary, step, out, acc);
}

static void s_enc_sign(const float *x, size_t n, uint8_t *out)
{
	memset(out, 0, (n + 7) / 8);
	for (size_t i = 0; i < n; i++)
		if (x[i] < 0.0f)
			out[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static void s_dec_sign(const uint8_t *in, size_t n, float scale, float *out, int acc)
{
	for (size_t i = 0; i < n; i++) {
		float v = (in[i >> 3] >> (i & 7)) & 1u ? -scale : scale;
		out[i] = acc ? out[i] + v : v;
	}
}

static size_t s_scan_ge(const float *x, size_t n, uint32_t t, uint32_t *idx, size_t cap)
{
	return gx_scan_ge_tail(x, 0, n, t, idx, cap, 0);
}

static size_t s_randk_pick(const struct gx_ars *a, uint32_t m, uint32_t *i, uint32_t *need, uint32_t *idx,
			   size_t cap)
{
	return gx_randk_pick_tail(a, m, i, need, idx, cap, 0);
}

const struct gx_kern gx_kern_scalar = {
	.name = "scalar",
	.absmax = s_absmax,
	.sumsq_buckets = s_sumsq_buckets,
	.sumabs = s_sumabs,
	.minmax = s_minmax,
	.enc_f32 = s_enc_f32,
	.enc_f16 = s_enc_f16,
	.enc_bf16 = s_enc_bf16,
	.dec_f32 = s_dec_f32,
	.dec_f16 = s_dec_f16,
	.dec_bf16 = s_dec_bf16,
	.add_f32 = s_add_f32,
	.add_f16 = s_add_f16,
	.add_bf16 = s_add_bf16,
	.enc_u8 = s_enc_u8,
	.dec_u8 = s_dec_u8,
	.enc_sq = s_enc_sq,
	.dec_sq = s_dec_sq,
	.enc_sign = s_enc_sign,
	.dec_sign = s_dec_sign,
	.scan_ge = s_scan_ge,
	.randk_pick = s_randk_pick,
};
