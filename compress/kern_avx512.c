/* kern_avx512.c: AVX-512 (F, BW, VL) kernels for the hot encoders and decoders; the rest of the
 * table reuses the AVX2 kernels (every AVX-512 CPU has AVX2).  Same bits as kern_scalar.c: 16 lanes
 * are exactly the canonical lanes of the float sums. */
#include <immintrin.h>

#include "codec_internal.h"
#include "kern_lanes.h"

#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c,bmi,bmi2,popcnt,aes")))

uint32_t gx_avx2_enc_bf16(const float *x, size_t n, uint8_t *out);
void gx_avx2_dec_bf16(const uint8_t *in, size_t n, float *out, int acc);
int gx_avx2_add_f32(uint8_t *a, const uint8_t *b, size_t n);
int gx_avx2_add_f16(uint8_t *a, const uint8_t *b, size_t n);
int gx_avx2_add_bf16(uint8_t *a, const uint8_t *b, size_t n);
/* the stochastic quantizer's cost is AES rounds (xmm aesenc: VAES is not on every AVX-512 CPU), so
 * 512-bit lanes would not help it: the AVX2 kernel serves both tables */
void gx_avx2_enc_sq(const float *x, size_t n, const struct gx_sq *s, uint8_t *out);
void gx_avx2_dec_sq(const uint8_t *in, size_t n, uint32_t w, uint32_t smax, int offset_binary, float step,
		    float *out, int acc);
size_t gx_avx2_randk_pick(const struct gx_ars *a, uint32_t m, uint32_t *i, uint32_t *need, uint32_t *idx,
			  size_t cap);
void gx_avx2_dec_sign(const uint8_t *in, size_t n, float scale, float *out, int acc);

T5 static inline __m512i abs_bits(__m512 v)
{
	return _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff));
}

T5 static inline uint32_t max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

T5 static uint32_t z_absmax(const float *x, size_t n)
{
	__m512i m = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		m = _mm512_max_epu32(m, abs_bits(_mm512_loadu_ps(x + i)));
	uint32_t am = _mm512_reduce_max_epu32(m);
	for (; i < n; i++)
		am = max_u32(am, gx_f2u(x[i]) & 0x7fffffffu);
	return am;
}

/* Two buckets at a time (two independent add chains); each bucket's 16 lanes are one zmm. */
T5 static void z_sumsq_buckets(const float *x, size_t n, uint32_t B, float *ss)
{
	size_t j = 0;
	for (; (j + 2) * B <= n; j += 2) {
		const float *p = x + j * B, *q = p + B;
		__m512 a = _mm512_setzero_ps(), b = a;
		float acc[GX_LANES], bcc[GX_LANES];
		size_t i = 0;
		for (; i + 16 <= B; i += 16) {
			__m512 v = _mm512_loadu_ps(p + i), w = _mm512_loadu_ps(q + i);
			a = _mm512_add_ps(a, _mm512_mul_ps(v, v));
			b = _mm512_add_ps(b, _mm512_mul_ps(w, w));
		}
		_mm512_storeu_ps(acc, a);
		_mm512_storeu_ps(bcc, b);
		gx_lanes_sumsq(p + i, B - i, acc);
		gx_lanes_sumsq(q + i, B - i, bcc);
		ss[j] = gx_lanes_fold(acc);
		ss[j + 1] = gx_lanes_fold(bcc);
	}
	for (; j * B < n; j++) {
		const float *p = x + j * B;
		size_t m = n - j * B < B ? n - j * B : B, i = 0;
		__m512 a = _mm512_setzero_ps();
		float acc[GX_LANES];
		for (; i + 16 <= m; i += 16) {
			__m512 v = _mm512_loadu_ps(p + i);
			a = _mm512_add_ps(a, _mm512_mul_ps(v, v));
		}
		_mm512_storeu_ps(acc, a);
		gx_lanes_sumsq(p + i, m - i, acc);
		ss[j] = gx_lanes_fold(acc);
	}
}

T5 static uint32_t z_sumabs(const float *x, size_t n, float *sum)
{
	__m512 a = _mm512_setzero_ps();
	__m512i m = _mm512_setzero_si512();
	float acc[GX_LANES];
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512i b = abs_bits(_mm512_loadu_ps(x + i));
		a = _mm512_add_ps(a, _mm512_castsi512_ps(b));
		m = _mm512_max_epu32(m, b);
	}
	_mm512_storeu_ps(acc, a);
	uint32_t am = max_u32(_mm512_reduce_max_epu32(m), gx_lanes_sumabs(x + i, n - i, acc));
	*sum = gx_lanes_fold(acc);
	return am;
}

T5 static uint32_t z_minmax(const float *x, size_t n, float *mn, float *mx)
{
	__m512 lo = _mm512_set1_ps(x[0]), hi = lo;
	__m512i m = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512 v = _mm512_loadu_ps(x + i);
		lo = _mm512_min_ps(lo, v);
		hi = _mm512_max_ps(hi, v);
		m = _mm512_max_epu32(m, abs_bits(v));
	}
	float l[16], h[16];
	_mm512_storeu_ps(l, lo);
	_mm512_storeu_ps(h, hi);
	float a = l[0], b = h[0];
	for (int j = 1; j < 16; j++) {
		a = l[j] < a ? l[j] : a;
		b = h[j] > b ? h[j] : b;
	}
	uint32_t am = _mm512_reduce_max_epu32(m);
	for (; i < n; i++) {
		a = x[i] < a ? x[i] : a;
		b = x[i] > b ? x[i] : b;
		am = max_u32(am, gx_f2u(x[i]) & 0x7fffffffu);
	}
	*mn = a;
	*mx = b;
	return am;
}

T5 static uint32_t z_enc_f32(const float *x, size_t n, uint8_t *out)
{
	__m512i m = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512 v = _mm512_loadu_ps(x + i);
		_mm512_storeu_ps(out + 4 * i, v);
		m = _mm512_max_epu32(m, abs_bits(v));
	}
	uint32_t am = _mm512_reduce_max_epu32(m);
	for (; i < n; i++) {
		gx_stf(out + 4 * i, x[i]);
		am = max_u32(am, gx_f2u(x[i]) & 0x7fffffffu);
	}
	return am;
}

T5 static uint32_t z_enc_f16(const float *x, size_t n, uint8_t *out)
{
	__m512i m = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512 v = _mm512_loadu_ps(x + i);
		m = _mm512_max_epu32(m, abs_bits(v));
		_mm256_storeu_si256((__m256i *)(out + 2 * i), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	}
	uint32_t am = _mm512_reduce_max_epu32(m);
	for (; i < n; i++) {
		uint32_t a = gx_f2u(x[i]) & 0x7fffffffu;
		am = max_u32(am, a);
		if (a < GX_F16_LIMIT)
			gx_st16(out + 2 * i, gx_f32_to_f16(x[i]));
	}
	return am;
}

T5 static inline void put(float *out, __m512 v, int acc)
{
	if (acc)
		v = _mm512_add_ps(_mm512_loadu_ps(out), v);
	_mm512_storeu_ps(out, v);
}

T5 static void z_dec_f32(const uint8_t *in, size_t n, float *out, int acc)
{
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		put(out + i, _mm512_loadu_ps(in + 4 * i), acc);
	for (; i < n; i++)
		out[i] = acc ? out[i] + gx_ldf(in + 4 * i) : gx_ldf(in + 4 * i);
}

T5 static void z_dec_f16(const uint8_t *in, size_t n, float *out, int acc)
{
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		put(out + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(in + 2 * i))), acc);
	for (; i < n; i++) {
		float v = gx_f16_to_f32(gx_ld16(in + 2 * i));
		out[i] = acc ? out[i] + v : v;
	}
}

T5 static void z_enc_u8(const float *x, size_t n, float mn, float inv, uint8_t *out)
{
	__m512 vm = _mm512_set1_ps(mn), vi = _mm512_set1_ps(inv);
	__m512i top = _mm512_set1_epi32(255);
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512i c = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), vi));
		_mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(_mm512_min_epi32(c, top)));
	}
	for (; i < n; i++)
		out[i] = gx_u8_code(x[i], mn, inv);
}

T5 static void z_dec_u8(const uint8_t *in, size_t n, float mn, float step, float *out, int acc)
{
	__m512 vm = _mm512_set1_ps(mn), vs = _mm512_set1_ps(step);
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(in + i)));
		put(out + i, _mm512_add_ps(vm, _mm512_mul_ps(_mm512_cvtepi32_ps(c), vs)), acc);
	}
	for (; i < n; i++) {
		float v = mn + (float)in[i] * step;
		out[i] = acc ? out[i] + v : v;
	}
}

T5 static void z_enc_sign(const float *x, size_t n, uint8_t *out)
{
	__m512 z = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		uint32_t m = (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), z, _CMP_LT_OQ) |
			     (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(x + i + 16), z, _CMP_LT_OQ) << 16;
		gx_st32(out + i / 8, m);
	}
	if (i < n) {
		memset(out + i / 8, 0, (n - i + 7) / 8);
		for (; i < n; i++)
			if (x[i] < 0.0f)
				out[i >> 3] |= (uint8_t)(1u << (i & 7));
	}
}

T5 static size_t z_scan_ge(const float *x, size_t n, uint32_t t, uint32_t *idx, size_t cap)
{
	__m512i vt = _mm512_set1_epi32((int)t);
	size_t i = 0, cnt = 0;
	for (; i + 32 <= n; i += 32) {
		uint32_t m = (uint32_t)_mm512_cmpge_epu32_mask(abs_bits(_mm512_loadu_ps(x + i)), vt) |
			     (uint32_t)_mm512_cmpge_epu32_mask(abs_bits(_mm512_loadu_ps(x + i + 16)), vt) << 16;
		while (m) {
			if (cnt < cap)
				idx[cnt] = (uint32_t)i + (uint32_t)__builtin_ctz(m);
			cnt++;
			m &= m - 1;
		}
	}
	return gx_scan_ge_tail(x, i, n, t, idx, cap, cnt);
}

const struct gx_kern gx_kern_avx512 = {
	.name = "avx512",
	.absmax = z_absmax,
	.sumsq_buckets = z_sumsq_buckets,
	.sumabs = z_sumabs,
	.minmax = z_minmax,
	.enc_f32 = z_enc_f32,
	.enc_f16 = z_enc_f16,
	.enc_bf16 = gx_avx2_enc_bf16,
	.dec_f32 = z_dec_f32,
	.dec_f16 = z_dec_f16,
	.dec_bf16 = gx_avx2_dec_bf16,
	.add_f32 = gx_avx2_add_f32,
	.add_f16 = gx_avx2_add_f16,
	.add_bf16 = gx_avx2_add_bf16,
	.enc_u8 = z_enc_u8,
	.dec_u8 = z_dec_u8,
	.enc_sq = gx_avx2_enc_sq,
	.dec_sq = gx_avx2_dec_sq,
	.enc_sign = z_enc_sign,
	.dec_sign = gx_avx2_dec_sign,
	.scan_ge = z_scan_ge,
	.randk_pick = gx_avx2_randk_pick,
};
