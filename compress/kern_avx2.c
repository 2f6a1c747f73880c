/* kern_avx2.c: AVX2 + F16C kernels, chosen at run time (no -mavx2 for the rest of the build).
 * Each reproduces kern_scalar.c bit for bit; tails run the shared scalar loops of kern_lanes.h. */
#include <immintrin.h>

#include "codec_internal.h"
#include "kern_lanes.h"

#define T2 __attribute__((target("avx2,f16c,bmi,bmi2,popcnt,aes")))

T2 static inline __m256i abs_bits(__m256 v)
{
	return _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7fffffff));
}

T2 static inline uint32_t hmax_u32(__m256i m)
{
	uint32_t t[8], r = 0;
	_mm256_storeu_si256((__m256i *)t, m);
	for (int i = 0; i < 8; i++)
		r = t[i] > r ? t[i] : r;
	return r;
}

T2 static inline uint32_t max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

T2 static uint32_t v_absmax(const float *x, size_t n)
{
	__m256i m0 = _mm256_setzero_si256(), m1 = m0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		m0 = _mm256_max_epu32(m0, abs_bits(_mm256_loadu_ps(x + i)));
		m1 = _mm256_max_epu32(m1, abs_bits(_mm256_loadu_ps(x + i + 8)));
	}
	uint32_t m = hmax_u32(_mm256_max_epu32(m0, m1));
	for (; i < n; i++)
		m = max_u32(m, gx_f2u(x[i]) & 0x7fffffffu);
	return m;
}

/* Two buckets at a time: four independent add chains (the add latency, not the loads, bounds one
 * bucket alone); each bucket keeps its own 16 lanes. */
T2 static void v_sumsq_buckets(const float *x, size_t n, uint32_t B, float *ss)
{
	size_t j = 0;
	for (; (j + 2) * B <= n; j += 2) {
		const float *p = x + j * B, *q = p + B;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
		float acc[GX_LANES], bcc[GX_LANES];
		size_t i = 0;
		for (; i + 16 <= B; i += 16) {
			__m256 v0 = _mm256_loadu_ps(p + i), v1 = _mm256_loadu_ps(p + i + 8);
			__m256 w0 = _mm256_loadu_ps(q + i), w1 = _mm256_loadu_ps(q + i + 8);
			a0 = _mm256_add_ps(a0, _mm256_mul_ps(v0, v0));
			a1 = _mm256_add_ps(a1, _mm256_mul_ps(v1, v1));
			b0 = _mm256_add_ps(b0, _mm256_mul_ps(w0, w0));
			b1 = _mm256_add_ps(b1, _mm256_mul_ps(w1, w1));
		}
		_mm256_storeu_ps(acc, a0);
		_mm256_storeu_ps(acc + 8, a1);
		_mm256_storeu_ps(bcc, b0);
		_mm256_storeu_ps(bcc + 8, b1);
		gx_lanes_sumsq(p + i, B - i, acc);
		gx_lanes_sumsq(q + i, B - i, bcc);
		ss[j] = gx_lanes_fold(acc);
		ss[j + 1] = gx_lanes_fold(bcc);
	}
	for (; j * B < n; j++) {
		const float *p = x + j * B;
		size_t m = n - j * B < B ? n - j * B : B, i = 0;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0;
		float acc[GX_LANES];
		for (; i + 16 <= m; i += 16) {
			__m256 v0 = _mm256_loadu_ps(p + i), v1 = _mm256_loadu_ps(p + i + 8);
			a0 = _mm256_add_ps(a0, _mm256_mul_ps(v0, v0));
			a1 = _mm256_add_ps(a1, _mm256_mul_ps(v1, v1));
		}
		_mm256_storeu_ps(acc, a0);
		_mm256_storeu_ps(acc + 8, a1);
		gx_lanes_sumsq(p + i, m - i, acc);
		ss[j] = gx_lanes_fold(acc);
	}
}

T2 static uint32_t v_sumabs(const float *x, size_t n, float *sum)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0;
	__m256i m = _mm256_setzero_si256();
	float acc[GX_LANES];
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256i b0 = abs_bits(_mm256_loadu_ps(x + i)), b1 = abs_bits(_mm256_loadu_ps(x + i + 8));
		a0 = _mm256_add_ps(a0, _mm256_castsi256_ps(b0));
		a1 = _mm256_add_ps(a1, _mm256_castsi256_ps(b1));
		m = _mm256_max_epu32(m, _mm256_max_epu32(b0, b1));
	}
	_mm256_storeu_ps(acc, a0);
	_mm256_storeu_ps(acc + 8, a1);
	uint32_t am = max_u32(hmax_u32(m), gx_lanes_sumabs(x + i, n - i, acc));
	*sum = gx_lanes_fold(acc);
	return am;
}

T2 static uint32_t v_minmax(const float *x, size_t n, float *mn, float *mx)
{
	__m256 lo = _mm256_set1_ps(x[0]), hi = lo;
	__m256i m = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_loadu_ps(x + i);
		lo = _mm256_min_ps(lo, v);
		hi = _mm256_max_ps(hi, v);
		m = _mm256_max_epu32(m, abs_bits(v));
	}
	float l[8], h[8];
	_mm256_storeu_ps(l, lo);
	_mm256_storeu_ps(h, hi);
	float a = l[0], b = h[0];
	for (int j = 1; j < 8; j++) {
		a = l[j] < a ? l[j] : a;
		b = h[j] > b ? h[j] : b;
	}
	uint32_t am = hmax_u32(m);
	for (; i < n; i++) {
		a = x[i] < a ? x[i] : a;
		b = x[i] > b ? x[i] : b;
		am = max_u32(am, gx_f2u(x[i]) & 0x7fffffffu);
	}
	*mn = a;
	*mx = b;
	return am;
}

T2 static uint32_t v_enc_f32(const float *x, size_t n, uint8_t *out)
{
	__m256i m = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_loadu_ps(x + i);
		_mm256_storeu_ps((float *)(out + 4 * i), v);
		m = _mm256_max_epu32(m, abs_bits(v));
	}
	uint32_t am = hmax_u32(m);
	for (; i < n; i++) {
		gx_stf(out + 4 * i, x[i]);
		am = max_u32(am, gx_f2u(x[i]) & 0x7fffffffu);
	}
	return am;
}

T2 static uint32_t v_enc_f16(const float *x, size_t n, uint8_t *out)
{
	__m256i m = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_loadu_ps(x + i);
		m = _mm256_max_epu32(m, abs_bits(v));
		_mm_storeu_si128((__m128i *)(out + 2 * i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	}
	uint32_t am = hmax_u32(m);
	for (; i < n; i++) {
		uint32_t a = gx_f2u(x[i]) & 0x7fffffffu;
		am = max_u32(am, a);
		if (a < GX_F16_LIMIT)
			gx_st16(out + 2 * i, gx_f32_to_f16(x[i]));
	}
	return am;
}

T2 static inline __m256i bf16_round(__m256 v)
{
	__m256i x = _mm256_castps_si256(v);
	__m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
	return _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), odd), 16);
}

T2 uint32_t gx_avx2_enc_bf16(const float *x, size_t n, uint8_t *out)
{
	__m256i m = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
		m = _mm256_max_epu32(m, _mm256_max_epu32(abs_bits(v0), abs_bits(v1)));
		__m256i p = _mm256_packus_epi32(bf16_round(v0), bf16_round(v1));
		p = _mm256_permute4x64_epi64(p, 0xd8);
		_mm256_storeu_si256((__m256i *)(out + 2 * i), p);
	}
	uint32_t am = hmax_u32(m);
	for (; i < n; i++) {
		am = max_u32(am, gx_f2u(x[i]) & 0x7fffffffu);
		gx_st16(out + 2 * i, gx_f32_to_bf16(x[i]));
	}
	return am;
}

T2 static inline void put(float *out, __m256 v, int acc)
{
	if (acc)
		v = _mm256_add_ps(_mm256_loadu_ps(out), v);
	_mm256_storeu_ps(out, v);
}

T2 static void v_dec_f32(const uint8_t *in, size_t n, float *out, int acc)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		put(out + i, _mm256_loadu_ps((const float *)(in + 4 * i)), acc);
	for (; i < n; i++)
		out[i] = acc ? out[i] + gx_ldf(in + 4 * i) : gx_ldf(in + 4 * i);
}

T2 static void v_dec_f16(const uint8_t *in, size_t n, float *out, int acc)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		put(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + 2 * i))), acc);
	for (; i < n; i++) {
		float v = gx_f16_to_f32(gx_ld16(in + 2 * i));
		out[i] = acc ? out[i] + v : v;
	}
}

T2 void gx_avx2_dec_bf16(const uint8_t *in, size_t n, float *out, int acc)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(in + 2 * i)));
		put(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)), acc);
	}
	for (; i < n; i++) {
		float v = gx_bf16_to_f32(gx_ld16(in + 2 * i));
		out[i] = acc ? out[i] + v : v;
	}
}

T2 int gx_avx2_add_f32(uint8_t *a, const uint8_t *b, size_t n)
{
	__m256i m = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 s = _mm256_add_ps(_mm256_loadu_ps((const float *)(a + 4 * i)),
					 _mm256_loadu_ps((const float *)(b + 4 * i)));
		_mm256_storeu_ps((float *)(a + 4 * i), s);
		m = _mm256_max_epu32(m, abs_bits(s));
	}
	uint32_t am = hmax_u32(m);
	for (; i < n; i++) {
		float s = gx_ldf(a + 4 * i) + gx_ldf(b + 4 * i);
		gx_stf(a + 4 * i, s);
		am = max_u32(am, gx_f2u(s) & 0x7fffffffu);
	}
	return am >= GX_ABS_INF;
}

T2 int gx_avx2_add_f16(uint8_t *a, const uint8_t *b, size_t n)
{
	__m256i m = _mm256_setzero_si256();
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 s = _mm256_add_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + 2 * i))),
					 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + 2 * i))));
		m = _mm256_max_epu32(m, abs_bits(s));
		_mm_storeu_si128((__m128i *)(a + 2 * i), _mm256_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	}
	int inf = hmax_u32(m) >= GX_F16_LIMIT;
	/* the last n % 8 halves: the scalar kernel's rule, so both paths round the same */
	return gx_kern_scalar.add_f16(a + 2 * i, b + 2 * i, n - i) | inf;
}

T2 int gx_avx2_add_bf16(uint8_t *a, const uint8_t *b, size_t n)
{
	__m256i inf = _mm256_setzero_si256(), e = _mm256_set1_epi32(0x7f80);
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256i wa = _mm256_loadu_si256((const __m256i *)(a + 2 * i));
		__m256i wb = _mm256_loadu_si256((const __m256i *)(b + 2 * i));
		/* lanes as epi32: low halves are even elements, high halves odd ones */
		__m256 a_ev = _mm256_castsi256_ps(_mm256_slli_epi32(wa, 16));
		__m256 a_od = _mm256_castsi256_ps(_mm256_and_si256(wa, _mm256_set1_epi32((int)0xffff0000u)));
		__m256 b_ev = _mm256_castsi256_ps(_mm256_slli_epi32(wb, 16));
		__m256 b_od = _mm256_castsi256_ps(_mm256_and_si256(wb, _mm256_set1_epi32((int)0xffff0000u)));
		__m256i r_ev = bf16_round(_mm256_add_ps(a_ev, b_ev));
		__m256i r_od = bf16_round(_mm256_add_ps(a_od, b_od));
		inf = _mm256_or_si256(inf, _mm256_cmpeq_epi32(_mm256_and_si256(r_ev, e), e));
		inf = _mm256_or_si256(inf, _mm256_cmpeq_epi32(_mm256_and_si256(r_od, e), e));
		_mm256_storeu_si256((__m256i *)(a + 2 * i), _mm256_or_si256(r_ev, _mm256_slli_epi32(r_od, 16)));
	}
	int bad = !_mm256_testz_si256(inf, inf);
	for (; i < n; i++) {
		float s = gx_bf16_to_f32(gx_ld16(a + 2 * i)) + gx_bf16_to_f32(gx_ld16(b + 2 * i));
		uint16_t h = gx_f32_to_bf16(s);
		bad |= (h & 0x7f80u) == 0x7f80u;
		gx_st16(a + 2 * i, h);
	}
	return bad;
}

/* 32 codes (4 x 8 epi32, each < 256) -> 32 bytes in element order */
T2 static inline __m256i pack32(__m256i c0, __m256i c1, __m256i c2, __m256i c3)
{
	__m256i p = _mm256_packus_epi16(_mm256_packus_epi32(c0, c1), _mm256_packus_epi32(c2, c3));
	return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

T2 static inline __m256i u8_codes(__m256 v, __m256 mn, __m256 inv)
{
	__m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_sub_ps(v, mn), inv));
	return _mm256_min_epi32(c, _mm256_set1_epi32(255));
}

T2 static void v_enc_u8(const float *x, size_t n, float mn, float inv, uint8_t *out)
{
	__m256 vm = _mm256_set1_ps(mn), vi = _mm256_set1_ps(inv);
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m256i p = pack32(u8_codes(_mm256_loadu_ps(x + i), vm, vi), u8_codes(_mm256_loadu_ps(x + i + 8), vm, vi),
				   u8_codes(_mm256_loadu_ps(x + i + 16), vm, vi),
				   u8_codes(_mm256_loadu_ps(x + i + 24), vm, vi));
		_mm256_storeu_si256((__m256i *)(out + i), p);
	}
	for (; i < n; i++)
		out[i] = gx_u8_code(x[i], mn, inv);
}

T2 static void v_dec_u8(const uint8_t *in, size_t n, float mn, float step, float *out, int acc)
{
	__m256 vm = _mm256_set1_ps(mn), vs = _mm256_set1_ps(step);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(in + i)));
		put(out + i, _mm256_add_ps(vm, _mm256_mul_ps(_mm256_cvtepi32_ps(c), vs)), acc);
	}
	for (; i < n; i++) {
		float v = mn + (float)in[i] * step;
		out[i] = acc ? out[i] + v : v;
	}
}

/* ARS-5 block of the counter vector c (words: ctr, stream, 0, 0): gx_ars_block's bits */
T2 static inline __m128i ars5(__m128i c, const __m128i *rk)
{
	__m128i x = _mm_xor_si128(c, rk[0]);
	for (int r = 1; r < GX_ARS_ROUNDS; r++)
		x = _mm_aesenc_si128(x, rk[r]);
	return _mm_aesenclast_si128(x, rk[GX_ARS_ROUNDS]);
}

/* ARS blocks ctr..ctr+3 (four independent AES chains), ctr advanced by 4 */
T2 static inline __attribute__((always_inline)) void ars4(__m128i *ctr, const __m128i *rk, __m128i b[4])
{
	const __m128i one = _mm_setr_epi32(1, 0, 0, 0);
	for (int j = 0; j < 4; j++) {
		b[j] = ars5(*ctr, rk);
		*ctr = _mm_add_epi32(*ctr, one);
	}
}

/* vpshufb masks: byte 2 of each dword to bytes 4k..4k+3, zeros elsewhere */
static const int8_t sq_sel[4][16] __attribute__((aligned(16))) = {
	{ 2, 6, 10, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1 },
	{ -1, -1, -1, -1, 2, 6, 10, 14, -1, -1, -1, -1, -1, -1, -1, -1 },
	{ -1, -1, -1, -1, -1, -1, -1, -1, 2, 6, 10, 14, -1, -1, -1, -1 },
	{ -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 6, 10, 14 },
};

/* gx_squant1 for 32 elements x[0..32), random bits from the group's four ARS blocks b; codes stored
 * at out.  128-bit vectors: the AES blocks are 128-bit anyway, four consecutive elements take one
 * half of every word of one block (an AND or a shift), and on CPUs that split 256-bit operations
 * (AMD Zen 1) this needs a third fewer micro-ops than 256-bit code with its lane inserts and
 * crossing.  With 16 fraction bits q is byte 2 of t + u; one vpshufb per vector drops it in
 * place, so the OR of four vectors is 16 levels in order.  For L < 64 (w = 2, 4) t comes from the
 * mantissa of y + 192 (one add instead of cvtps2dq: the same round to nearest even, cheaper on
 * some CPUs); that byte is q + 64, and a 16-byte table indexed by its low nibble (q mod 16) gives
 * the code.  This needs |y| <= L + 1/2 (see enc_sq in codec_internal.h).  w, ob and scaled are constants at each call site: each variant is its own
 * branch-free loop. */
T2 static inline __attribute__((always_inline)) void sq32(const float *x, uint8_t *out, const __m128i *b,
							   __m128 vf, __m128 vr, __m128i lut, uint32_t L,
							   const uint32_t w, const int ob, const int scaled)
{
	const __m128i zero = _mm_setzero_si128();
	__m128i q[2];
	for (int h = 0; h < 2; h++) {
		__m128i acc = zero;
		for (int k = 0; k < 4; k++) {   /* elements 16h + 4k..: block 2h + k/2, half k & 1 */
			__m128i r = b[2 * h + k / 2];
			__m128i u = k & 1 ? _mm_srli_epi32(r, 16) : _mm_and_si128(r, _mm_set1_epi32(0xffff));
			__m128 v = _mm_loadu_ps(x + 16 * h + 4 * k);
			if (scaled)
				v = _mm_mul_ps(v, vf);
			__m128 y = _mm_mul_ps(v, vr);
			__m128i t;
			if (w == 8) {   /* L <= 127: clamp here, q = +-128 would not fit a byte */
				t = _mm_cvtps_epi32(_mm_mul_ps(y, _mm_set1_ps(65536.0f)));
				t = _mm_min_epi32(t, _mm_set1_epi32((int)(L << GX_SQ_FB)));
				t = _mm_max_epi32(t, _mm_set1_epi32(-(int)(L << GX_SQ_FB)));
			} else {
				t = _mm_castps_si128(_mm_add_ps(y, _mm_set1_ps(192.0f)));
			}
			t = _mm_add_epi32(t, u);
			acc = _mm_or_si128(acc, _mm_shuffle_epi8(t, _mm_load_si128((const __m128i *)sq_sel[k])));
		}
		q[h] = acc;
	}
	if (w == 8) {
		for (int h = 0; h < 2; h++) {
			__m128i v = q[h], c;
			if (ob)
				c = _mm_add_epi8(v, _mm_set1_epi8((char)L));
			else
				c = _mm_or_si128(_mm_abs_epi8(v),
						 _mm_and_si128(_mm_cmpgt_epi8(zero, v), _mm_set1_epi8((char)0x80)));
			_mm_storeu_si128((__m128i *)(out + 16 * h), c);
		}
		return;
	}
	/* clamping q to [-L, L] here equals clamping t to [-L 2^16, L 2^16] before the add; with
	 * |y| <= L + 1/2, q is in [-L - 1, L + 1]: the max takes the low side, the table (L + 1 gives
	 * L's code) the high one */
	__m128i c[2];
	for (int h = 0; h < 2; h++) {
		__m128i v = _mm_max_epu8(q[h], _mm_set1_epi8((char)(64 - L)));
		c[h] = _mm_shuffle_epi8(lut, v);   /* bytes < 128: vpshufb indexes by the low nibble */
	}
	if (w == 4) {
		__m128i p0 = _mm_maddubs_epi16(c[0], _mm_set1_epi16(0x1001));   /* c_2i + 16 c_2i+1 */
		__m128i p1 = _mm_maddubs_epi16(c[1], _mm_set1_epi16(0x1001));
		_mm_storeu_si128((__m128i *)out, _mm_packus_epi16(p0, p1));
	} else {
		__m128i d[2];
		for (int h = 0; h < 2; h++) {   /* c_4i + 4 c_4i+1 + 16 c_4i+2 + 64 c_4i+3 */
			__m128i p = _mm_maddubs_epi16(c[h], _mm_set1_epi16(0x0401));
			d[h] = _mm_madd_epi16(p, _mm_set1_epi32(0x00100001));
		}
		__m128i p = _mm_packus_epi16(_mm_packus_epi32(d[0], d[1]), zero);
		_mm_storel_epi64((__m128i *)out, p);
	}
}

/* All groups of a bucket; the last partial group runs from a zero-padded copy (the software AES of
 * the scalar tail would cost as much as the rest of the bucket) and only the bits of its real
 * elements are copied out. */
T2 static inline __attribute__((always_inline)) void sq_bucket(const float *x, size_t n, const struct gx_sq *s,
								uint8_t *out, const uint32_t w, const int ob,
								const int scaled)
{
	__m128i rk[GX_ARS_ROUNDS + 1];
	for (int r = 0; r <= GX_ARS_ROUNDS; r++)
		rk[r] = _mm_set_epi64x((long long)s->ars.rk[r][1], (long long)s->ars.rk[r][0]);
	__m128i ctr = _mm_setr_epi32(0, (int)s->stream, 0, 0);
	__m128 vf = _mm_set1_ps(s->f), vr = _mm_set1_ps(s->r);
	__m128i lut = _mm_loadu_si128((const __m128i *)s->lut);
	uint32_t L = s->smax;
	const char *ahead = (const char *)x + s->pf;
	size_t i = 0;
	__m128i b[4];
	ars4(&ctr, rk, b);
	for (; i + 32 <= n; i += 32) {
		/* compute-bound here, the norm pass of the next block memory-bound: fetch its data
		 * into L2 now (L1 keeps this block) so that pass finds it in cache */
		_mm_prefetch(ahead + 4 * i, _MM_HINT_T1);
		_mm_prefetch(ahead + 4 * i + 64, _MM_HINT_T1);
		/* the next group's blocks now: their AES chains (latency 4 per round) overlap this
		 * group's work instead of delaying it */
		__m128i nb[4] = { b[0], b[1], b[2], b[3] };
		if (i + 32 < n)
			ars4(&ctr, rk, nb);
		sq32(x + i, out + i * w / 8, b, vf, vr, lut, L, w, ob, scaled);
		for (int j = 0; j < 4; j++)
			b[j] = nb[j];
	}
	if (i < n) {
		float pad[32] = { 0 };
		uint8_t pout[32];
		memcpy(pad, x + i, (n - i) * sizeof(float));
		sq32(pad, pout, b, vf, vr, lut, L, w, ob, scaled);
		size_t nbits = (n - i) * w, nbytes = (nbits + 7) / 8;
		if (nbits & 7)
			pout[nbytes - 1] &= (uint8_t)((1u << (nbits & 7)) - 1u);
		memcpy(out + i * w / 8, pout, nbytes);
	}
}

T2 void gx_avx2_enc_sq(const float *x, size_t n, const struct gx_sq *s, uint8_t *out)
{
	int ob = s->offset_binary, scaled = s->f != 1.0f;   /* v * 1 == v: skip that multiply */
	/* w = 2, 4: L <= 7; w = 8: L <= 127 (what the byte-wide levels of sq32 need) */
#define SQ_CASE(W)                                                                  \
	if (s->w == (W)) {                                                           \
		if (ob)                                                              \
			scaled ? sq_bucket(x, n, s, out, W, 1, 1) : sq_bucket(x, n, s, out, W, 1, 0); \
		else                                                                 \
			scaled ? sq_bucket(x, n, s, out, W, 0, 1) : sq_bucket(x, n, s, out, W, 0, 0); \
		return;                                                              \
	}
	SQ_CASE(4)
	SQ_CASE(2)
	SQ_CASE(8)
#undef SQ_CASE
	gx_sq_encode_generic(x, 0, n, s, out);
}

T2 void gx_avx2_dec_sq(const uint8_t *in, size_t n, uint32_t w, uint32_t smax, int offset_binary, float step,
			float *out, int acc)
{
	__m256 vs = _mm256_set1_ps(step);
	__m256i sh4 = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), sh2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
	__m256i lmask = _mm256_set1_epi32((int)((1u << (w - 1)) - 1)), vsmax = _mm256_set1_epi32((int)smax);
	size_t i = 0, nv = n & ~(size_t)7;
	for (; i < nv; i += 8) {
		__m256i c;
		if (w == 8)
			c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(in + i)));
		else if (w == 4)
			c = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)gx_ld32(in + i / 2)), sh4),
					     _mm256_set1_epi32(0xf));
		else
			c = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(gx_ld16(in + i / 4)), sh2),
					     _mm256_set1_epi32(0x3));
		__m256i q;
		if (offset_binary) {
			q = _mm256_sub_epi32(c, vsmax);
		} else {
			__m256i sg = _mm256_srli_epi32(c, (int)(w - 1)), lvl = _mm256_and_si256(c, lmask);
			__m256i neg = _mm256_sub_epi32(_mm256_setzero_si256(), sg);
			q = _mm256_sub_epi32(_mm256_xor_si256(lvl, neg), neg);
		}
		put(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(q), vs), acc);
	}
	if (nv < n)
		gx_sq_decode_generic(in + nv * w / 8, n - nv, w, smax, offset_binary, step, out + nv, acc);
}

T2 static void v_enc_sign(const float *x, size_t n, uint8_t *out)
{
	__m256 z = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		uint32_t m = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), z, _CMP_LT_OQ)) |
			     (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i + 8), z, _CMP_LT_OQ)) << 8 |
			     (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i + 16), z, _CMP_LT_OQ)) << 16 |
			     (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i + 24), z, _CMP_LT_OQ)) << 24;
		gx_st32(out + i / 8, m);
	}
	if (i < n) {
		memset(out + i / 8, 0, (n - i + 7) / 8);
		for (; i < n; i++)
			if (x[i] < 0.0f)
				out[i >> 3] |= (uint8_t)(1u << (i & 7));
	}
}

T2 void gx_avx2_dec_sign(const uint8_t *in, size_t n, float scale, float *out, int acc)
{
	__m256i sh = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), one = _mm256_set1_epi32(1);
	__m256i vs = _mm256_castps_si256(_mm256_set1_ps(scale));
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256i bit = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(in[i / 8]), sh), one);
		__m256i v = _mm256_xor_si256(vs, _mm256_slli_epi32(bit, 31));
		put(out + i, _mm256_castsi256_ps(v), acc);
	}
	for (; i < n; i++) {
		float v = (in[i >> 3] >> (i & 7)) & 1u ? -scale : scale;
		out[i] = acc ? out[i] + v : v;
	}
}

T2 static size_t v_scan_ge(const float *x, size_t n, uint32_t t, uint32_t *idx, size_t cap)
{
	__m256i vt = _mm256_set1_epi32((int)t);
	size_t i = 0, cnt = 0;
	for (; i + 32 <= n; i += 32) {
		uint32_t m = 0;
		for (int j = 0; j < 4; j++) {
			__m256i a = abs_bits(_mm256_loadu_ps(x + i + 8 * j));
			__m256i ge = _mm256_cmpeq_epi32(_mm256_max_epu32(a, vt), a);
			m |= (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(ge)) << (8 * j);
		}
		while (m) {
			if (cnt < cap)
				idx[cnt] = (uint32_t)i + (uint32_t)__builtin_ctz(m);
			cnt++;
			m &= m - 1;
		}
	}
	return gx_scan_ge_tail(x, i, n, t, idx, cap, cnt);
}

/* u_i * (m - i) >> 32 for the 8 elements g..g+7 (ARS blocks g/4 and g/4+1), two vpmuludq; biased
 * by 2^31 so that a signed compare orders them as unsigned */
T2 static inline __m256i randk_hi8(const __m128i *rk, uint32_t m, uint32_t g)
{
	__m256i r = _mm256_set_m128i(ars5(_mm_setr_epi32((int)(g / 4 + 1), 0, 0, 0), rk),
				     ars5(_mm_setr_epi32((int)(g / 4), 0, 0, 0), rk));
	__m256i rem = _mm256_sub_epi32(_mm256_set1_epi32((int)(m - g)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	__m256i pe = _mm256_mul_epu32(r, rem);
	__m256i po = _mm256_mul_epu32(_mm256_shuffle_epi32(r, 0xf5), _mm256_shuffle_epi32(rem, 0xf5));
	__m256i hi = _mm256_blend_epi32(_mm256_shuffle_epi32(pe, 0xf5), po, 0xaa);
	return _mm256_xor_si256(hi, _mm256_set1_epi32((int)0x80000000u));
}

/* lanes of the 32 products below need, as a 32-bit mask */
T2 static inline uint32_t randk_below(const __m256i hi[4], uint32_t nd)
{
	__m256i n = _mm256_xor_si256(_mm256_set1_epi32((int)nd), _mm256_set1_epi32((int)0x80000000u));
	uint32_t mask = 0;
	for (int q = 0; q < 4; q++)
		mask |= (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(n, hi[q]))) << (8 * q);
	return mask;
}

/* Chunks of 32 aligned elements: the 32 products at once (independent AES chains overlap), then
 * every pick of the chunk from the same products against the shrinking need, lanes before the
 * resume point and before each pick masked off.  At small ratios most chunks have no pick. */
T2 size_t gx_avx2_randk_pick(const struct gx_ars *a, uint32_t m, uint32_t *i, uint32_t *need, uint32_t *idx,
			     size_t cap)
{
	__m128i rk[GX_ARS_ROUNDS + 1];
	for (int r = 0; r <= GX_ARS_ROUNDS; r++)
		rk[r] = _mm_set_epi64x((long long)a->rk[r][1], (long long)a->rk[r][0]);
	uint32_t j = *i, nd = *need;
	size_t cnt = 0;
	while (nd && cnt < cap && (j & ~31u) + 32 <= m) {
		uint32_t g = j & ~31u;
		__m256i hi[4];
		for (int q = 0; q < 4; q++)
			hi[q] = randk_hi8(rk, m, g + 8 * (uint32_t)q);
		uint32_t live = 0xffffffffu << (j - g);
		uint32_t mask;
		while ((mask = randk_below(hi, nd) & live)) {
			uint32_t first = (uint32_t)__builtin_ctz(mask);
			idx[cnt++] = g + first;
			nd--;
			live = first == 31 ? 0 : 0xffffffffu << (first + 1);
			if (!nd || cnt == cap || !live)
				break;
		}
		j = live && nd && cnt < cap ? g + 32 : live ? g + (uint32_t)__builtin_ctz(live) : g + 32;
	}
	*i = j;
	*need = nd;
	return gx_randk_pick_tail(a, m, i, need, idx, cap, cnt);
}

const struct gx_kern gx_kern_avx2 = {
	.name = "avx2",
	.absmax = v_absmax,
	.sumsq_buckets = v_sumsq_buckets,
	.sumabs = v_sumabs,
	.minmax = v_minmax,
	.enc_f32 = v_enc_f32,
	.enc_f16 = v_enc_f16,
	.enc_bf16 = gx_avx2_enc_bf16,
	.dec_f32 = v_dec_f32,
	.dec_f16 = v_dec_f16,
	.dec_bf16 = gx_avx2_dec_bf16,
	.add_f32 = gx_avx2_add_f32,
	.add_f16 = gx_avx2_add_f16,
	.add_bf16 = gx_avx2_add_bf16,
	.enc_u8 = v_enc_u8,
	.dec_u8 = v_dec_u8,
	.enc_sq = gx_avx2_enc_sq,
	.dec_sq = gx_avx2_dec_sq,
	.enc_sign = v_enc_sign,
	.dec_sign = gx_avx2_dec_sign,
	.scan_ge = v_scan_ge,
	.randk_pick = gx_avx2_randk_pick,
};
