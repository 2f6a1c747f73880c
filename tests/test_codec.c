/* test_codec.c: the codec library against the oracles of docs/algorithms.md §3.1-3.2 (fixed seeds, stated
 * tolerances), exact wire sizes, round trips, every vector path bit-identical to the scalar one,
 * compressed-domain adds, error feedback, and every kind of bad input. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec_internal.h"   /* the stochastic rounding rule (gx_squant1), checked exhaustively */
#include "gx_codec.h"
#include "gx_rng.h"
#include "gx_test.h"

#define HDR GX_CODEC_HDR_BYTES

static const char *all_specs[] = {
	"none", "fp16", "bf16", "int8", "qsgd:bits=4,bucket=512", "qsgd:s=5,bucket=100", "qsgd:bits=2,bucket=64",
	"qsgd:bits=8,bucket=512", "fixed:bits=2", "fixed:bits=4,bucket=100", "fixed:bits=8", "sign",
	"topk:ratio=0.01", "topk:ratio=0.3", "randk:ratio=0.01", "randk:ratio=0.25,shared-seed",
};
#define NSPECS (sizeof(all_specs) / sizeof(all_specs[0]))

static struct gx_codec *mk(const char *spec)
{
	struct gx_codec *c = NULL;
	gx_status_t st = gx_codec_create(spec, &c);
	if (st < 0)
		fprintf(stderr, "gx_codec_create(%s): %s\n", spec, gx_last_error());
	CU_ASSERT_FATAL(st == GX_OK && c);
	return c;
}

/* gradient-like data: symmetric, varied magnitudes, a few exact zeros */
static void fill(float *x, size_t n, uint64_t seed)
{
	uint64_t k = gx_rng_key(seed, 7, 0, 0);
	for (size_t i = 0; i < n; i++) {
		float u = gx_rng_uniform(k, (uint32_t)(2 * i)) - 0.5f;
		float e = gx_rng_uniform(k, (uint32_t)(2 * i + 1));
		x[i] = i % 97 == 3 ? 0.0f : u * (e < 0.1f ? 10.0f : 1.0f);
	}
}

static uint8_t *enc_alloc(struct gx_codec *c, size_t n, size_t payload, size_t *cap)
{
	CU_ASSERT_FATAL(gx_codec_encoded_size(c, n, payload, cap, NULL) == GX_OK);
	uint8_t *b = malloc(*cap + 64);
	CU_ASSERT_FATAL(b != NULL);
	return b;
}

static uint32_t ceil_log2(uint32_t v)
{
	uint32_t b = 0;
	while ((1u << b) < v)
		b++;
	return b;
}

/* ---- specs ----------------------------------------------------------------------------- */

static void test_specs(void)
{
	for (size_t i = 0; i < NSPECS; i++) {
		struct gx_codec *c = mk(all_specs[i]), *d;
		/* the canonical name parses back to the same codec */
		CU_ASSERT(gx_codec_create(gx_codec_name(c), &d) == GX_OK);
		CU_ASSERT_STRING_EQUAL(gx_codec_name(c), gx_codec_name(d));
		CU_ASSERT(gx_codec_id(c) == gx_codec_id(d) && gx_codec_id(c) >= 1 && gx_codec_id(c) <= 255);
		gx_codec_destroy(d);
		gx_codec_destroy(c);
	}
	struct gx_codec *c = mk("qsgd");
	CU_ASSERT_STRING_EQUAL(gx_codec_name(c), "qsgd:bits=4,bucket=512");
	CU_ASSERT(gx_codec_props(c) & GX_CODEC_UNBIASED);
	gx_codec_destroy(c);
	c = mk("randk:ratio=0.01,shared-seed");
	CU_ASSERT(gx_codec_props(c) & GX_CODEC_SUMMABLE);
	CU_ASSERT(gx_codec_props(c) & GX_CODEC_UNBIASED);
	gx_codec_destroy(c);
	c = mk("fp16");
	CU_ASSERT(gx_codec_props(c) & GX_CODEC_SUMMABLE);
	CU_ASSERT(!(gx_codec_props(c) & GX_CODEC_UNBIASED));
	gx_codec_destroy(c);
	c = mk("none");
	CU_ASSERT(gx_codec_props(c) & GX_CODEC_LOSSLESS);
	gx_codec_destroy(c);
	c = mk("topk:ratio=0.5");
	CU_ASSERT((gx_codec_props(c) & (GX_CODEC_CONTRACTION | GX_CODEC_UNBIASED)) == GX_CODEC_CONTRACTION);
	gx_codec_destroy(c);

	static const char *bad[] = {
		"", "nothing", "fp16:", "none:x=1", "qsgd:bits=1", "qsgd:bits=17", "qsgd:bits=4,s=7",
		"qsgd:bucket=0", "qsgd:bucket=40000", "qsgd:s=0", "fixed:bits=3", "fixed:bits=16",
		"topk:ratio=0", "topk:ratio=1.5", "topk:ratio=", "topk:ratio=abc", "topk:ratio=nan",
		"randk:shared", "randk:ratio=0.1,shared-seed=1", "sign:bits=2", "qsgd:bits=4,", "int8 ",
		"qsgd:bits=-4", "topk:k=10",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gx_codec *x = (struct gx_codec *)1;
		gx_status_t st = gx_codec_create(bad[i], &x);
		CU_ASSERT(st == GX_ERR_INVAL);
		if (st != GX_ERR_INVAL)
			fprintf(stderr, "spec '%s' accepted\n", bad[i]);
		CU_ASSERT(x == NULL);
		CU_ASSERT(strstr(gx_last_error(), "valid specs") != NULL);
	}
	struct gx_codec *x;
	CU_ASSERT(gx_codec_create(NULL, &x) == GX_ERR_INVAL);
	CU_ASSERT(gx_codec_create("none", NULL) == GX_ERR_INVAL);
}

/* ---- exact wire sizes, tiling, sizes 0, 1, 7, one block + 1, large -------------------- */

/* the formula of docs/compress.md for a block of m elements, written out independently */
static size_t formula_block(const char *spec, const struct gx_codec_block *b)
{
	uint32_t m = b->count;
	switch (b->codec) {
	case GX_CODEC_NONE: return HDR + 4 * (size_t)m;
	case GX_CODEC_FP16:
	case GX_CODEC_BF16: return HDR + 2 * (size_t)m;
	case GX_CODEC_INT8: return 32 + (size_t)m;                 /* docs/algorithms.md: 32 per chunk + d */
	case GX_CODEC_SIGN: return HDR + 4 + (m + 7) / 8;          /* 4 + ceil(d/8) per block */
	case GX_CODEC_QSGD:
	case GX_CODEC_FIXED: {
		uint32_t w = b->codec == GX_CODEC_QSGD ? 1 + ceil_log2(b->levels + 1u) : b->bits;
		size_t sum = HDR;
		for (uint32_t j = 0; j < m; j += b->bucket) {
			uint32_t mb = m - j < b->bucket ? m - j : b->bucket;
			sum += 4 + ((size_t)mb * w + 7) / 8;            /* 4 + ceil(d (1 + ceil log2(s+1)) / 8) */
		}
		return sum;
	}
	case GX_CODEC_TOPK: return HDR + 8 * (size_t)b->nnz;       /* 8k */
	case GX_CODEC_RANDK:
		return strstr(spec, "shared") ? HDR + 8 + 4 * (size_t)b->nnz : HDR + 8 * (size_t)b->nnz;
	}
	return 0;
}

static void check_sizes(const char *spec, size_t payload, size_t n, uint64_t offset)
{
	struct gx_codec *c = mk(spec);
	size_t per = gx_codec_block_elems(c, payload), cap, nb, len = 12345;
	CU_ASSERT_FATAL(per > 0);
	CU_ASSERT(gx_codec_encoded_size(c, n, payload, &cap, &nb) == GX_OK);
	float *x = malloc((n ? n : 1) * sizeof(float));
	fill(x, n, n + payload);
	uint8_t *buf = enc_alloc(c, n, payload, &cap);
	memset(buf, 0xee, cap + 64);
	struct gx_codec_ctx ctx = { .seed = 3, .step = 9, .rank = 1 };
	CU_ASSERT_FATAL(gx_codec_encode(c, &ctx, x, n, offset, payload, buf, cap, &len) == GX_OK);
	CU_ASSERT(len == cap);
	for (size_t i = 0; i < 64; i++)
		CU_ASSERT(buf[cap + i] == 0xee);          /* nothing past the exact size */
	/* walk: blocks tile [offset, offset + n) in order, each within the payload and its formula */
	struct gx_codec_block b;
	uint64_t next = offset;
	size_t blocks = 0, total_k = 0;
	for (size_t o = 0; o < len; o += b.bytes, blocks++) {
		CU_ASSERT_FATAL(gx_codec_block_info(buf + o, len - o, &b) == GX_OK);
		CU_ASSERT(b.bytes <= payload);
		CU_ASSERT(b.offset == next);
		CU_ASSERT(b.bytes == formula_block(spec, &b));
		CU_ASSERT(b.codec == gx_codec_id(c));
		if (b.codec != GX_CODEC_TOPK && o + b.bytes < len)
			CU_ASSERT(b.count == per);             /* full blocks but the last */
		next = b.offset + b.count;
		total_k += b.nnz;
	}
	CU_ASSERT(next == offset + n);
	CU_ASSERT(blocks == nb);
	if (gx_codec_id(c) == GX_CODEC_TOPK && n) {
		size_t k = (size_t)ceil(strtod(strchr(spec, '=') + 1, NULL) * (double)n);
		k = k < 1 ? 1 : k > n ? n : k;
		CU_ASSERT(total_k == k);
		CU_ASSERT(len == nb * HDR + 8 * k);
	}
	/* one byte short: GX_ERR_NOSPC, and nothing is written */
	if (cap) {
		memset(buf, 0x5a, cap + 64);
		CU_ASSERT(gx_codec_encode(c, &ctx, x, n, offset, payload, buf, cap - 1, &len) == GX_ERR_NOSPC);
		CU_ASSERT(len == 0);
		CU_ASSERT(buf[0] == 0x5a && buf[cap - 1] == 0x5a);
	}
	free(buf);
	free(x);
	gx_codec_destroy(c);
}

static void test_sizes(void)
{
	static const size_t payloads[] = { 1432, 8952, 200 };
	for (size_t i = 0; i < NSPECS; i++)
		for (size_t p = 0; p < 3; p++) {
			struct gx_codec *c = mk(all_specs[i]);
			size_t per = gx_codec_block_elems(c, payloads[p]);
			gx_codec_destroy(c);
			if (!per)
				continue;
			size_t ns[] = { 0, 1, 7, per, per + 1, 3 * per + 5, 100003 };
			for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++)
				check_sizes(all_specs[i], payloads[p], ns[k], k * 1000003ull);
		}
	/* a payload too small for one block, or too large */
	struct gx_codec *c = mk("qsgd:bits=4,bucket=512");
	size_t len, cap;
	float x[4] = { 1, 2, 3, 4 };
	uint8_t buf[64];
	CU_ASSERT(gx_codec_block_elems(c, 24) == 0);
	CU_ASSERT(gx_codec_encode(c, NULL, x, 4, 0, 24, buf, sizeof(buf), &len) == GX_ERR_INVAL);
	CU_ASSERT(strstr(gx_last_error(), "payload") != NULL);
	CU_ASSERT(gx_codec_encoded_size(c, 4, GX_CODEC_MAX_PAYLOAD + 1, &cap, NULL) == GX_ERR_INVAL);
	gx_codec_destroy(c);
}

/* ---- round trips and deterministic oracles ---------------------------------------------- */

static float *decode_all(struct gx_codec *c, const uint8_t *buf, size_t len, size_t n)
{
	float *y = malloc((n ? n : 1) * sizeof(float));
	for (size_t i = 0; i < n; i++)
		y[i] = NAN;                              /* every element must be written */
	CU_ASSERT_FATAL(gx_codec_decode_all(c, buf, len, y, n, 0) == GX_OK);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT_FATAL(!isnan(y[i]));
	return y;
}

static float *round_trip(const char *spec, const float *x, size_t n, size_t payload, uint8_t **enc, size_t *len,
			 const struct gx_codec_ctx *ctx)
{
	struct gx_codec *c = mk(spec);
	size_t cap;
	*enc = enc_alloc(c, n, payload, &cap);
	gx_status_t st = gx_codec_encode(c, ctx, x, n, 0, payload, *enc, cap, len);
	if (st != GX_OK)
		fprintf(stderr, "%s n=%zu: %s\n", spec, n, gx_last_error());
	CU_ASSERT_FATAL(st == GX_OK);
	float *y = decode_all(c, *enc, *len, n);
	gx_codec_destroy(c);
	return y;
}

static uint16_t ref_bf16(float f)
{
	/* nearest of the two bf16 neighbours, ties to even, decided in double */
	uint32_t u;
	memcpy(&u, &f, 4);
	uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
	float flo, fhi;
	memcpy(&flo, &lo, 4);
	memcpy(&fhi, &hi, 4);
	double dl = fabs((double)f - flo), dh = fabs((double)fhi - f);
	if (dl < dh || (dl == dh && !((lo >> 16) & 1)))
		return (uint16_t)(lo >> 16);
	return (uint16_t)(hi >> 16);
}

static void test_round_trip_float(void)
{
	size_t n = 5003, len;
	float *x = malloc(n * sizeof(float));
	fill(x, n, 11);
	/* edge values: subnormals of both formats, ties, negative zero, fp16 max */
	x[0] = -0.0f;
	x[1] = 65504.0f;
	x[2] = -65519.0f;                                  /* rounds to -65504 */
	x[3] = 0x1p-24f;
	x[4] = 0x1p-25f;                                   /* tie between 0 and 2^-24: to even (0) */
	x[5] = 0x1.8p-25f;
	x[6] = 1e-40f;                                     /* float subnormal */
	x[7] = 1.0f + 0x1p-11f;                            /* fp16 tie -> 1.0 */
	x[8] = 1.0f + 0x1p-8f;                             /* bf16 tie -> 1.0 */
	uint8_t *enc;
	float *y = round_trip("none", x, n, 1432, &enc, &len, NULL);
	CU_ASSERT(memcmp(x, y, n * 4) == 0);
	free(y);
	free(enc);

	y = round_trip("fp16", x, n, 1432, &enc, &len, NULL);
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		float r = (float)(_Float16)x[i];            /* the compiler's own round-to-nearest-even */
		bad += memcmp(&r, &y[i], 4) != 0;
	}
	CU_ASSERT(bad == 0);
	free(y);
	free(enc);

	y = round_trip("bf16", x, n, 1432, &enc, &len, NULL);
	bad = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t r = (uint32_t)ref_bf16(x[i]) << 16, got;
		memcpy(&got, &y[i], 4);
		bad += r != got;
	}
	CU_ASSERT(bad == 0);
	free(y);
	free(enc);
	free(x);
}

static void test_int8(void)
{
	size_t n = 3000, len;
	float *x = malloc(n * sizeof(float));
	fill(x, n, 5);
	uint8_t *enc;
	float *y = round_trip("int8", x, n, 1432, &enc, &len, NULL);
	struct gx_codec_block b;
	for (size_t o = 0; o < len; o += b.bytes) {
		CU_ASSERT_FATAL(gx_codec_block_info(enc + o, len - o, &b) == GX_OK);
		float mn, mx;
		memcpy(&mn, enc + o + HDR, 4);
		memcpy(&mx, enc + o + HDR + 4, 4);
		const uint8_t *code = enc + o + HDR + 8;
		float lo = x[b.offset], hi = x[b.offset];
		for (uint32_t i = 0; i < b.count; i++) {
			lo = fminf(lo, x[b.offset + i]);
			hi = fmaxf(hi, x[b.offset + i]);
		}
		CU_ASSERT(mn == lo && mx == hi);                /* header survives unchanged */
		double half_step = 0.5 * ((double)hi - lo) / 255.0;
		for (uint32_t i = 0; i < b.count; i++) {
			double err = fabs((double)y[b.offset + i] - x[b.offset + i]);
			CU_ASSERT(err <= half_step * (1 + 1e-5) + 1e-6 * fabs(x[b.offset + i]));
			if (x[b.offset + i] == lo)
				CU_ASSERT(code[i] == 0);
			if (x[b.offset + i] == hi)
				CU_ASSERT(code[i] == 255);
		}
	}
	free(y);
	/* a constant chunk: no NaN, exact */
	for (size_t i = 0; i < n; i++)
		x[i] = 0.75f;
	uint8_t *enc2;
	size_t len2;
	y = round_trip("int8", x, n, 1432, &enc2, &len2, NULL);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT(y[i] == 0.75f);
	free(y);
	/* byte-identical encoding across runs */
	fill(x, n, 5);
	uint8_t *enc3;
	size_t len3;
	y = round_trip("int8", x, n, 1432, &enc3, &len3, NULL);
	CU_ASSERT(len3 == len && memcmp(enc, enc3, len) == 0);
	free(y);
	free(enc);
	free(enc2);
	free(enc3);
	free(x);
}

static void test_sign(void)
{
	size_t n = 4001, len;
	float *x = malloc(n * sizeof(float));
	fill(x, n, 8);
	uint8_t *enc;
	float *y = round_trip("sign", x, n, 1432, &enc, &len, NULL);
	struct gx_codec_block b;
	for (size_t o = 0; o < len; o += b.bytes) {
		CU_ASSERT_FATAL(gx_codec_block_info(enc + o, len - o, &b) == GX_OK);
		/* ||C(p) - p||^2 == ||p||^2 - ||p||_1^2 / d, per block (d = block size) */
		double l1 = 0, l2 = 0, err = 0;
		for (uint32_t i = 0; i < b.count; i++) {
			double p = x[b.offset + i], q = y[b.offset + i];
			l1 += fabs(p);
			l2 += p * p;
			err += (q - p) * (q - p);
			CU_ASSERT(p == 0 || (p < 0) == (q < 0));
		}
		CU_ASSERT(fabs(err - (l2 - l1 * l1 / b.count)) <= 1e-5 * l2);
	}
	free(y);
	free(enc);
	free(x);
}

static void test_qsgd_deterministic(void)
{
	size_t n = 2000, len;
	float *x = malloc(n * sizeof(float));
	fill(x, n, 21);
	struct gx_codec_ctx ctx = { .seed = 1, .step = 2, .rank = 3 };
	const char *specs[] = { "qsgd:bits=4,bucket=512", "qsgd:s=5,bucket=100", "qsgd:bits=2,bucket=64" };
	for (int sp = 0; sp < 3; sp++) {
		uint8_t *enc;
		float *y = round_trip(specs[sp], x, n, 1432, &enc, &len, &ctx);
		struct gx_codec_block b;
		for (size_t o = 0; o < len; o += b.bytes) {
			CU_ASSERT_FATAL(gx_codec_block_info(enc + o, len - o, &b) == GX_OK);
			for (uint32_t j = 0; j < b.count; j += b.bucket) {
				uint32_t mb = b.count - j < b.bucket ? b.count - j : b.bucket;
				const float *v = x + b.offset + j, *q = y + b.offset + j;
				double nrm = 0;
				for (uint32_t i = 0; i < mb; i++)
					nrm += (double)v[i] * v[i];
				nrm = sqrt(nrm);
				for (uint32_t i = 0; i < mb; i++) {
					/* v^_i in {+-|v| l / s}, sign in {0, sign v_i} */
					double l = fabs(q[i]) / nrm * b.levels;
					CU_ASSERT(fabs(l - rint(l)) < 1e-4 && rint(l) <= b.levels);
					CU_ASSERT(q[i] == 0 || (q[i] < 0) == (v[i] < 0));
				}
			}
		}
		free(y);
		free(enc);
	}
	/* Q(0) = 0; v = |v| e_1 -> v^ = v */
	memset(x, 0, n * sizeof(float));
	uint8_t *enc;
	float *y = round_trip("qsgd:bits=4,bucket=512", x, n, 1432, &enc, &len, &ctx);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT(y[i] == 0.0f);
	free(y);
	free(enc);
	x[0] = -3.0f;
	x[512] = 1e-30f;                                   /* tiny bucket: still exact */
	x[1024] = 2e30f;                                   /* huge bucket: norm without overflow */
	y = round_trip("qsgd:bits=4,bucket=512", x, n, 1432, &enc, &len, &ctx);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT(fabsf(y[i] - x[i]) <= 1e-6f * fabsf(x[i]));
	free(y);
	free(enc);
	free(x);
}

/* top-k oracle: sort indices by (|x| desc, index asc) */
static const float *g_x;
static int cmp_topk(const void *a, const void *b)
{
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
	float fi = fabsf(g_x[i]), fj = fabsf(g_x[j]);
	if (fi != fj)
		return fi > fj ? -1 : 1;
	return i < j ? -1 : 1;
}

static void check_topk(const float *x, size_t n, double ratio)
{
	char spec[64];
	snprintf(spec, sizeof(spec), "topk:ratio=%g", ratio);
	size_t len;
	uint8_t *enc;
	float *y = round_trip(spec, x, n, 1432, &enc, &len, NULL);
	size_t k = (size_t)ceil(ratio * (double)n);
	k = k < 1 ? 1 : k > n ? n : k;
	uint32_t *idx = malloc(n * sizeof(uint32_t));
	for (uint32_t i = 0; i < n; i++)
		idx[i] = i;
	g_x = x;
	qsort(idx, n, sizeof(uint32_t), cmp_topk);
	char *want = calloc(n, 1);
	for (size_t i = 0; i < k; i++)
		want[idx[i]] = 1;
	size_t bad = 0;
	double u2 = 0, r2 = 0;
	for (size_t i = 0; i < n; i++) {
		bad += want[i] ? memcmp(&y[i], &x[i], 4) != 0 : y[i] != 0.0f;
		u2 += (double)x[i] * x[i];
		r2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
	}
	CU_ASSERT(bad == 0);                               /* exactly the k largest, ties to lower index */
	CU_ASSERT(r2 <= (1.0 - (double)k / n) * u2 * (1 + 1e-6));   /* contraction bound */
	free(want);
	free(idx);
	free(y);
	free(enc);
}

static void test_topk(void)
{
	size_t n = 200003;
	float *x = malloc(n * sizeof(float));
	fill(x, n, 31);
	check_topk(x, 7, 0.3);
	check_topk(x, 1000, 0.01);
	check_topk(x, n, 0.01);                            /* sampled threshold path */
	check_topk(x, n, 0.0001);
	check_topk(x, n, 0.5);
	/* all |u_i| equal: the bound holds with equality, ties go to the lowest indices */
	for (size_t i = 0; i < n; i++)
		x[i] = i % 3 ? 0.5f : -0.5f;
	check_topk(x, n, 0.01);                            /* the exact radix fallback */
	size_t len;
	uint8_t *enc;
	float *y = round_trip("topk:ratio=0.01", x, n, 1432, &enc, &len, NULL);
	double u2 = 0, r2 = 0;
	size_t k = (size_t)ceil(0.01 * n);
	for (size_t i = 0; i < n; i++) {
		u2 += (double)x[i] * x[i];
		r2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
		if (i < k)
			CU_ASSERT(y[i] == x[i]);
	}
	CU_ASSERT(fabs(r2 - (1.0 - (double)k / n) * u2) <= 1e-9 * u2);
	free(y);
	free(enc);
	/* a few large values among many equal ones */
	x[77] = 3.0f;
	x[150000] = -4.0f;
	check_topk(x, n, 0.001);
	free(x);
}

static void test_randk(void)
{
	size_t n = 30011, len, len2;
	float *x = malloc(n * sizeof(float));
	fill(x, n, 41);
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] == 0.0f ? 1.0f : x[i];
	struct gx_codec_ctx c0 = { .seed = 5, .step = 1, .rank = 0 }, c1 = { .seed = 5, .step = 1, .rank = 1 };
	const char *specs[] = { "randk:ratio=0.01", "randk:ratio=0.01,shared-seed" };
	for (int s = 0; s < 2; s++) {
		uint8_t *e0, *e1;
		float *y0 = round_trip(specs[s], x, n, 1432, &e0, &len, &c0);
		float *y1 = round_trip(specs[s], x, n, 1432, &e1, &len2, &c1);
		struct gx_codec_block b;
		size_t same = 0, total = 0;
		for (size_t o = 0; o < len; o += b.bytes) {
			CU_ASSERT_FATAL(gx_codec_block_info(e0 + o, len - o, &b) == GX_OK);
			size_t k = (size_t)ceil(0.01 * b.count), nz = 0;
			CU_ASSERT(b.nnz == k);
			for (uint32_t i = 0; i < b.count; i++) {
				size_t g = b.offset + i;
				if (y0[g] != 0.0f) {
					nz++;
					CU_ASSERT(y0[g] == x[g] * (float)((double)b.count / k));   /* d/k scaling */
				}
				same += (y0[g] != 0.0f) == (y1[g] != 0.0f) && y0[g] != 0.0f;
			}
			CU_ASSERT(nz == k);                     /* exactly k non-zeros */
			total += k;
		}
		/* shared seed: every rank, same indices; own seeds: independent index sets */
		CU_ASSERT(s == 1 ? same == total : same < total / 4);
		free(y0);
		free(y1);
		free(e0);
		free(e1);
	}
	free(x);
}

/* ---- statistics (fixed seeds) ------------------------------------------------------------ */

/* R draws of one bucket/block of d elements; per-coordinate mean within 5 standard errors, and the
 * mean squared error within 10 % of its exact expectation.  The quantizers' bias (at most
 * min(p, 1 - p, 2^-17) of a level for a fractional part p, test_sq_rounding) stays below that:
 * 5 sqrt(p (1 - p) / R) exceeds p for p < 12.5 / R, and exceeds 2^-17 beyond, for R <= 3000. */
static void stat_check(const char *spec, size_t d, uint32_t R, double (*var_i)(const float *v, size_t d, size_t i),
		       double bound_rel)
{
	struct gx_codec *c = mk(spec);
	float *v = malloc(d * sizeof(float)), *y = malloc(d * sizeof(float));
	double *sum = calloc(d, sizeof(double)), mse = 0, var_total = 0, v2 = 0;
	fill(v, d, 77);
	v[5] = 0.0f;
	size_t cap, len;
	uint8_t *enc = enc_alloc(c, d, 8952, &cap);
	for (uint32_t r = 0; r < R; r++) {
		struct gx_codec_ctx ctx = { .seed = 99, .step = r, .rank = 2 };
		CU_ASSERT_FATAL(gx_codec_encode(c, &ctx, v, d, 0, 8952, enc, cap, &len) == GX_OK);
		CU_ASSERT_FATAL(gx_codec_decode_all(c, enc, len, y, d, 0) == GX_OK);
		for (size_t i = 0; i < d; i++) {
			sum[i] += y[i];
			mse += ((double)y[i] - v[i]) * ((double)y[i] - v[i]);
		}
	}
	mse /= R;
	size_t off = 0;
	for (size_t i = 0; i < d; i++) {
		double vi = var_i(v, d, i), se = sqrt(vi / R);
		off += fabs(sum[i] / R - v[i]) > 5 * se + 1e-6 * fabs(v[i]);
		var_total += vi;
		v2 += (double)v[i] * v[i];
	}
	CU_ASSERT(off == 0);                               /* unbiased */
	CU_ASSERT(fabs(mse - var_total) <= 0.1 * var_total);
	CU_ASSERT(var_total <= bound_rel * v2);
	if (off || fabs(mse - var_total) > 0.1 * var_total)
		fprintf(stderr, "%s: %zu biased coordinates, mse %g vs expected %g\n", spec, off, mse, var_total);
	free(enc);
	free(sum);
	free(y);
	free(v);
	gx_codec_destroy(c);
}

static double g_levels;
static double qsgd_var(const float *v, size_t d, size_t i)
{
	double nrm = 0;
	for (size_t j = 0; j < d; j++)
		nrm += (double)v[j] * v[j];
	nrm = sqrt(nrm);
	double a = g_levels * fabs(v[i]) / nrm, p = a - floor(a);
	return nrm * nrm / (g_levels * g_levels) * p * (1 - p);   /* (|v|^2/s^2) p (1 - p) */
}

static double fixed_var(const float *v, size_t d, size_t i)
{
	double m = 0;
	for (size_t j = 0; j < d; j++)
		m = fmax(m, fabs(v[j]));
	double y = g_levels * fabs(v[i]) / m, p = y - floor(y);
	return m * m / (g_levels * g_levels) * p * (1 - p);      /* <= (M/L)^2 / 4 */
}

static double g_ratio;
static double randk_var(const float *v, size_t d, size_t i)
{
	double k = ceil(g_ratio * d);
	return (d / k - 1) * (double)v[i] * v[i];              /* sums to (d/k - 1)|x|^2 */
}

static void test_stat(void)
{
	size_t d = 256;
	g_levels = 7;   /* bits=4 */
	stat_check("qsgd:bits=4,bucket=256", d, 3000, qsgd_var, fmin(d / 49.0, sqrt((double)d) / 7.0));
	g_levels = 1;   /* bits=2: s = 1 */
	stat_check("qsgd:bits=2,bucket=256", d, 3000, qsgd_var, fmin((double)d, sqrt((double)d)));
	g_levels = 7;
	stat_check("fixed:bits=4,bucket=256", d, 3000, fixed_var, d / 4.0 / 49.0 * 100);
	g_levels = 127;
	stat_check("fixed:bits=8,bucket=256", d, 2000, fixed_var, d / 4.0 / (127.0 * 127.0) * 100);
	g_ratio = 0.1;
	stat_check("randk:ratio=0.1", 200, 4000, randk_var, 10);
	stat_check("randk:ratio=0.1,shared-seed", 200, 4000, randk_var, 10);
}

/* ---- error feedback ---------------------------------------------------------------------- */

static void ef_run(const char *spec, size_t n, int steps, int exact)
{
	struct gx_codec *c = mk(spec);
	struct gx_ef *ef;
	CU_ASSERT_FATAL(gx_ef_create(c, n, &ef) == GX_OK);
	CU_ASSERT(gx_ef_size(ef) == n);
	float *g = malloc(n * sizeof(float)), *sent = malloc(n * sizeof(float)), *prev = malloc(n * sizeof(float));
	double *sum_g = calloc(n, sizeof(double)), *sum_s = calloc(n, sizeof(double));
	size_t cap, len, bad = 0;
	uint8_t *enc = enc_alloc(c, n, 1432, &cap);
	double worst = 0, scale = 0;
	for (int t = 0; t < steps; t++) {
		fill(g, n, 1000 + t);
		for (size_t i = 0; i < n; i++)
			g[i] *= 0.01f;
		memcpy(prev, gx_ef_residual(ef), n * sizeof(float));
		struct gx_codec_ctx ctx = { .seed = 4, .step = (uint64_t)t, .rank = 0 };
		CU_ASSERT_FATAL(gx_ef_encode(ef, &ctx, g, 500, 1432, enc, cap, &len, sent) == GX_OK);
		/* the blocks decode to `sent` */
		float *chk = calloc(n, sizeof(float));
		const uint8_t *p = enc;
		struct gx_codec_block b;
		for (size_t o = 0; o < len; o += b.bytes) {
			CU_ASSERT_FATAL(gx_codec_block_info(p + o, len - o, &b) == GX_OK);
			CU_ASSERT(b.offset >= 500 && b.offset + b.count <= 500 + n);
		}
		const float *e = gx_ef_residual(ef);
		for (size_t i = 0; i < n; i++) {
			float pi = g[i] + prev[i];
			if (exact)                          /* e_{t+1} + sent_t == g_t + e_t, bit for bit */
				bad += sent[i] + e[i] != pi;
			sum_g[i] += g[i];
			sum_s[i] += sent[i];
			scale = fmax(scale, fabs(g[i]));
		}
		free(chk);
	}
	/* sum_s sent_s + e_t == sum_s g_s (docs/algorithms.md §3.2 item 7), relative 1e-5 per term */
	const float *e = gx_ef_residual(ef);
	for (size_t i = 0; i < n; i++)
		worst = fmax(worst, fabs(sum_s[i] + e[i] - sum_g[i]));
	CU_ASSERT(bad == 0);
	CU_ASSERT(worst <= 1e-5 * steps * scale);
	if (worst > 1e-5 * steps * scale)
		fprintf(stderr, "EF %s: invariant off by %g (scale %g)\n", spec, worst, scale);
	if (!strcmp(spec, "none"))
		for (size_t i = 0; i < n; i++)
			CU_ASSERT(e[i] == 0.0f);             /* C = identity: e == 0 */
	gx_ef_reset(ef);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT(gx_ef_residual(ef)[i] == 0.0f);
	/* a failed encode leaves e unchanged */
	memcpy(prev, gx_ef_residual(ef), n * sizeof(float));
	g[n / 2] = INFINITY;
	CU_ASSERT(gx_ef_encode(ef, NULL, g, 0, 1432, enc, cap, &len, NULL) == GX_ERR_NONFINITE);
	CU_ASSERT(memcmp(prev, gx_ef_residual(ef), n * sizeof(float)) == 0);
	free(enc);
	free(sum_g);
	free(sum_s);
	free(prev);
	free(sent);
	free(g);
	gx_ef_destroy(ef);
	gx_codec_destroy(c);
}

static void test_ef(void)
{
	ef_run("none", 3001, 50, 1);
	ef_run("topk:ratio=0.01", 3001, 200, 1);
	ef_run("fp16", 3001, 100, 1);                    /* p - fp16(p) is exact (Sterbenz) */
	ef_run("bf16", 3001, 100, 1);
	ef_run("sign", 3001, 200, 0);
	ef_run("int8", 3001, 100, 0);
	ef_run("qsgd:bits=4,bucket=512", 3001, 100, 0);
	ef_run("fixed:bits=2", 3001, 100, 0);
}

/* ---- the stochastic rounding rule -------------------------------------------------------- */

/* gx_squant1 over all 2^16 random values of an element: E[q] = rne(y 2^16) / 2^16 exactly (y the
 * value in levels, clamped to [-L, L]), so |E[q] - y| <= 2^-17 of a level, the bound
 * docs/compress.md states; q takes only floor and floor + 1 of that, inside [-L, L]. */
static void test_sq_rounding(void)
{
	const float ys[] = {
		0.0f, -0.0f, 0.3f, -0.3f, 1.0f, -1.0f, 2.5f, -6.999f, 7.0f, -7.0f, 7.0000005f, -7.0000005f,
		1.0f + 0x1p-17f,            /* tie at 2^-17: to even (down) */
		1.0f + 3 * 0x1p-17f,        /* tie: to even (up) */
		-(2.0f + 0x1p-17f), 3.0f + 0x1p-16f, 0x1p-17f, 0x1p-18f, 0x1p-20f, 0x1p-140f, 5.99999f,
		0.999999f, 126.9999f, -127.5f, 100.25f + 0x1p-17f,
	};
	const uint32_t Ls[] = { 1, 7, 127, 32767 };
	size_t checked = 0;
	for (size_t l = 0; l < sizeof(Ls) / sizeof(Ls[0]); l++) {
		struct gx_sq s = { .f = 1.0f, .r = 1.0f, .smax = Ls[l] };
		double L = Ls[l];
		for (size_t k = 0; k < sizeof(ys) / sizeof(ys[0]); k++) {
			double y = fmin(fmax((double)ys[k], -L), L);
			double expect = rint(y * 65536.0) / 65536.0;   /* rint: round to nearest even */
			int64_t sum = 0;
			int32_t lo = INT32_MAX, hi = INT32_MIN;
			for (uint32_t u = 0; u < 65536; u++) {
				int32_t q = gx_squant1(ys[k], &s, u);
				sum += q;
				lo = q < lo ? q : lo;
				hi = q > hi ? q : hi;
			}
			double mean = (double)sum / 65536.0;
			CU_ASSERT(mean == expect);
			CU_ASSERT(fabs(mean - y) <= 0x1p-17);
			CU_ASSERT(lo == (int32_t)floor(expect) && hi <= lo + 1 && (hi == lo) == (expect == floor(expect)));
			CU_ASSERT(lo >= -(int32_t)Ls[l] && hi <= (int32_t)Ls[l]);
			if (mean != expect || fabs(mean - y) > 0x1p-17)
				fprintf(stderr, "L=%u y=%.9g: E[q] %.12g, expected %.12g\n", Ls[l], (double)ys[k], mean,
					expect);
			checked++;
		}
	}
	/* the random bits of elements 0..7: the eight 16-bit halves of ARS block 0, each once */
	struct gx_ars a;
	gx_ars_init(&a, 12345);
	uint32_t u[4], got[8], want[8];
	gx_ars_block(&a, 0, 0, u);
	for (size_t j = 0; j < 8; j++) {
		got[j] = gx_sq_rand16(u, j);
		want[j] = (u[j / 2] >> (16 * (j & 1))) & 0xffffu;
	}
	for (size_t j = 0; j < 8; j++) {
		size_t same = 0;
		for (size_t h = 0; h < 8; h++)
			same += (got[h] == want[j]) - (want[h] == want[j]);
		CU_ASSERT(same == 0);
	}
	CU_ASSERT(checked == 4 * sizeof(ys) / sizeof(ys[0]));
}

/* Buckets that reach every branch of the quantizers' vector kernels: one non-zero element (y = +-L),
 * all equal, tiny (prescaled by 2^64), subnormal, huge (rescaled norm), exact rounding
 * ties (fixed with max 7: y = v), exact levels and signed zeros, a partial last bucket. */
static void test_sq_edges_identical(void)
{
	static const char *specs[] = {
		"qsgd:bits=4,bucket=64", "qsgd:bits=2,bucket=64", "qsgd:bits=8,bucket=64", "qsgd:s=5,bucket=64",
		"qsgd:bits=5,bucket=64", "fixed:bits=2,bucket=64", "fixed:bits=4,bucket=64", "fixed:bits=8,bucket=64",
	};
	size_t n = 9 * 64 + 13, compared = 0;
	float *x = malloc(n * sizeof(float)), *ya = malloc(n * 4), *yb = malloc(n * 4);
	fill(x, n, 31);
	for (size_t i = 0; i < 64; i++) {
		x[i] = i == 17 ? -3.0f : 0.0f;
		x[64 + i] = 0.125f;
		x[128 + i] = 1e-30f * (float)((int)(i % 9) - 4);
		x[192 + i] = 1e-41f * (float)((int)(i % 5) - 2);
		x[256 + i] = 1e30f * (float)((int)(i % 7) - 3);
		x[320 + i] = i == 0 ? 7.0f : (float)((int)(i % 13) - 6) + (i & 1 ? 0x1p-17f : 3 * 0x1p-17f);
		x[384 + i] = i & 1 ? -0.0f : (float)((int)(i % 15) - 7);
	}
	enum gx_simd before = gx_simd_active();
	static const enum gx_simd paths[] = { GX_SIMD_AVX2, GX_SIMD_AVX512 };
	for (size_t p = 0; p < 2; p++) {
		if (!gx_simd_supported(paths[p]))
			continue;   /* test_simd_identical names the paths this CPU lacks */
		for (size_t sp = 0; sp < sizeof(specs) / sizeof(specs[0]); sp++) {
			struct gx_codec *c = mk(specs[sp]);
			size_t cap, la, lb;
			uint8_t *ea = enc_alloc(c, n, 1432, &cap), *eb = malloc(cap + 64);
			for (uint64_t step = 0; step < 4; step++) {
				struct gx_codec_ctx ctx = { .seed = 5, .step = step, .rank = 0 };
				CU_ASSERT_FATAL(gx_simd_set(GX_SIMD_SCALAR) == GX_OK);
				CU_ASSERT_FATAL(gx_codec_encode(c, &ctx, x, n, 0, 1432, ea, cap, &la) == GX_OK);
				CU_ASSERT_FATAL(gx_codec_decode_all(c, ea, la, ya, n, 0) == GX_OK);
				CU_ASSERT_FATAL(gx_simd_set(paths[p]) == GX_OK);
				CU_ASSERT_FATAL(gx_codec_encode(c, &ctx, x, n, 0, 1432, eb, cap, &lb) == GX_OK);
				CU_ASSERT_FATAL(gx_codec_decode_all(c, eb, lb, yb, n, 0) == GX_OK);
				CU_ASSERT(la == lb && memcmp(ea, eb, la) == 0 && memcmp(ya, yb, n * 4) == 0);
				if (la != lb || memcmp(ea, eb, la))
					fprintf(stderr, "%s step %llu: %s encoding differs from scalar\n", specs[sp],
						(unsigned long long)step, gx_simd_name(paths[p]));
				/* the single element of bucket 0 is its own norm: exact, whatever the draw */
				if (!strncmp(specs[sp], "qsgd", 4))
					CU_ASSERT(ya[17] == -3.0f && ya[16] == 0.0f);
				compared++;
			}
			free(ea);
			free(eb);
			gx_codec_destroy(c);
		}
	}
	/* the kernels' contract directly (gx_squant1 for |v f r| <= L + 1/2 when L <= 7): values
	 * beyond the levels (to L + 0.49, and 1.3 L for L = 127), where only the clamp keeps q in
	 * [-L, L], prescaled or not, both code kinds */
	for (size_t p = 0; p < 2; p++) {
		if (!gx_simd_supported(paths[p]))
			continue;
		for (uint32_t w = 2; w <= 8; w *= 2)
			for (int ob = 0; ob < 2; ob++)
				for (int scaled = 0; scaled < 2; scaled++) {
					struct gx_sq sq = { .f = scaled ? 0x1p64f : 1.0f, .smax = w == 8 ? 127 : w == 4 ? 7 : 1,
							    .w = w, .offset_binary = ob, .stream = 64, .pf = 400 };
					sq.r = (float)sq.smax / (scaled ? 0x1p4f : 2.0f);
					gx_sq_lut(&sq);
					gx_ars_init(&sq.ars, 77 + w);
					float v[100], ymax = w == 8 ? 1.3f * 127 : (float)sq.smax + 0.49f;
					uint8_t oa[100], ob_[100];
					for (size_t i = 0; i < 100; i++)   /* v f r in [-ymax, ymax] */
						v[i] = ((float)((int)i - 50) / 50.0f * ymax * 2.0f / (float)sq.smax +
							(i % 3 ? 0x1p-19f : 0.0f)) * (scaled ? 0x1p-61f : 1.0f);
					CU_ASSERT_FATAL(gx_simd_set(GX_SIMD_SCALAR) == GX_OK);
					gx_kern()->enc_sq(v, 100, &sq, oa);
					CU_ASSERT_FATAL(gx_simd_set(paths[p]) == GX_OK);
					gx_kern()->enc_sq(v, 100, &sq, ob_);
					CU_ASSERT(memcmp(oa, ob_, 100 * w / 8) == 0);
					if (memcmp(oa, ob_, 100 * w / 8))
						fprintf(stderr, "enc_sq w=%u ob=%d scaled=%d: %s differs from scalar\n", w, ob,
							scaled, gx_simd_name(paths[p]));
					compared++;
				}
	}
	CU_ASSERT(gx_simd_set(before) == GX_OK);
	CU_ASSERT(compared == 0 || compared >= 32);
	free(x);
	free(ya);
	free(yb);
}

/* ---- every vector path gives the same bytes ------------------------------------------------ */

static void test_simd_identical(void)
{
	static const enum gx_simd paths[] = { GX_SIMD_AVX2, GX_SIMD_AVX512 };
	static const size_t ns[] = { 1, 7, 31, 33, 100, 1000, 5003, 70001 };
	size_t nmax = 70001, compared = 0;
	float *x = malloc(nmax * sizeof(float)), *ya = malloc(nmax * 4), *yb = malloc(nmax * 4);
	enum gx_simd before = gx_simd_active();

	fill(x, nmax, 55);
	x[1] = -0.0f;
	x[2] = 1e-41f;
	x[3] = -65504.0f;
	x[40] = 0x1p-25f;
	for (size_t p = 0; p < 2; p++) {
		if (!gx_simd_supported(paths[p])) {
			fprintf(stderr, "NOTE: %s path not compared: this CPU lacks %s (it runs where the CPU has it)\n",
				gx_simd_name(paths[p]), paths[p] == GX_SIMD_AVX512 ? "AVX-512 F/BW/VL" : "AVX2/F16C");
			continue;
		}
		for (size_t s = 0; s < NSPECS; s++)
			for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
				size_t n = ns[k], cap, la, lb;
				struct gx_codec *c = mk(all_specs[s]);
				uint8_t *ea = enc_alloc(c, n, 1432, &cap), *eb = malloc(cap + 64);
				struct gx_codec_ctx ctx = { .seed = 8, .step = k, .rank = 1 };
				CU_ASSERT_FATAL(gx_simd_set(GX_SIMD_SCALAR) == GX_OK);
				CU_ASSERT_FATAL(gx_codec_encode(c, &ctx, x, n, 0, 1432, ea, cap, &la) == GX_OK);
				fill(ya, n, 3);
				CU_ASSERT(gx_codec_decode_all(c, ea, la, ya, n, 1) == GX_OK);
				CU_ASSERT_FATAL(gx_simd_set(paths[p]) == GX_OK);
				CU_ASSERT_FATAL(gx_codec_encode(c, &ctx, x, n, 0, 1432, eb, cap, &lb) == GX_OK);
				fill(yb, n, 3);
				CU_ASSERT(gx_codec_decode_all(c, ea, la, yb, n, 1) == GX_OK);
				CU_ASSERT(la == lb && memcmp(ea, eb, la) == 0);
				CU_ASSERT(memcmp(ya, yb, n * 4) == 0);
				if (la != lb || memcmp(ea, eb, la) || memcmp(ya, yb, n * 4))
					fprintf(stderr, "%s n=%zu: %s differs from scalar\n", all_specs[s], n,
						gx_simd_name(paths[p]));
				/* compressed-domain add */
				if (gx_codec_props(c) & GX_CODEC_SUMMABLE) {
					uint8_t *sa = malloc(la), *sb = malloc(la);
					memcpy(sa, ea, la);
					memcpy(sb, ea, la);
					struct gx_codec_block b;
					CU_ASSERT_FATAL(gx_codec_block_info(ea, la, &b) == GX_OK);
					/* x holds -65504: fp16 doubling overflows, identically on every path */
					CU_ASSERT_FATAL(gx_simd_set(GX_SIMD_SCALAR) == GX_OK);
					gx_status_t s1 = gx_codec_block_add(sa, b.bytes, eb, b.bytes);
					CU_ASSERT_FATAL(gx_simd_set(paths[p]) == GX_OK);
					gx_status_t s2 = gx_codec_block_add(sb, b.bytes, eb, b.bytes);
					CU_ASSERT(s1 == s2 && (s1 == GX_OK || (s1 == GX_ERR_NONFINITE && n > 3)));
					CU_ASSERT(memcmp(sa, sb, b.bytes) == 0);
					free(sa);
					free(sb);
				}
				compared++;
				free(ea);
				free(eb);
				gx_codec_destroy(c);
			}
	}
	fprintf(stderr, "vector paths compared with scalar: %zu cases\n", compared);
	gx_simd_set(GX_SIMD_SCALAR);
	CU_ASSERT(gx_simd_active() == GX_SIMD_SCALAR);
	CU_ASSERT(gx_simd_set(before) == GX_OK);
	if (!gx_simd_supported(GX_SIMD_AVX512))
		CU_ASSERT(gx_simd_set(GX_SIMD_AVX512) == GX_ERR_NOTSUP);
	CU_ASSERT(gx_simd_set((enum gx_simd)9) == GX_ERR_INVAL);
	free(x);
	free(ya);
	free(yb);
}

/* ---- compressed-domain add -------------------------------------------------------------- */

static void test_block_add(void)
{
	size_t n = 600, cap, la, lb;
	float *x = malloc(n * 4), *z = malloc(n * 4), *da = malloc(n * 4), *db = malloc(n * 4), *ds = malloc(n * 4);
	fill(x, n, 61);
	fill(z, n, 62);
	const char *specs[] = { "none", "fp16", "bf16", "randk:ratio=0.1,shared-seed" };
	for (int s = 0; s < 4; s++) {
		struct gx_codec *c = mk(specs[s]);
		uint8_t *ea = enc_alloc(c, n, 8952, &cap), *eb = malloc(cap);
		struct gx_codec_ctx r0 = { .seed = 2, .step = 6, .rank = 0 }, r1 = { .seed = 2, .step = 6, .rank = 1 };
		CU_ASSERT_FATAL(gx_codec_encode(c, &r0, x, n, 0, 8952, ea, cap, &la) == GX_OK);
		CU_ASSERT_FATAL(gx_codec_encode(c, &r1, z, n, 0, 8952, eb, cap, &lb) == GX_OK);
		CU_ASSERT_FATAL(la == lb && la <= 8952);      /* one block */
		CU_ASSERT(gx_codec_decode(c, ea, la, da, n, NULL) == GX_OK);
		CU_ASSERT(gx_codec_decode(c, eb, lb, db, n, NULL) == GX_OK);
		CU_ASSERT(gx_codec_block_add(ea, la, eb, lb) == GX_OK);
		CU_ASSERT(gx_codec_decode(c, ea, la, ds, n, NULL) == GX_OK);
		size_t bad = 0;
		for (size_t i = 0; i < n; i++) {
			float want = da[i] + db[i];
			if (s == 1)
				want = (float)(_Float16)want;       /* correctly rounded fp16 sum */
			else if (s == 2) {
				uint32_t u = (uint32_t)ref_bf16(want) << 16;
				memcpy(&want, &u, 4);
			}
			bad += memcmp(&want, &ds[i], 4) != 0;
		}
		CU_ASSERT(bad == 0);
		free(ea);
		free(eb);
		gx_codec_destroy(c);
	}
	/* overflow, not summable, layouts that differ */
	struct gx_codec *c = mk("fp16");
	float big[8] = { 60000, 1, 2, 3, 4, 5, 6, 7 };
	uint8_t a[64], b[64];
	size_t l;
	CU_ASSERT(gx_codec_encode(c, NULL, big, 8, 0, 1432, a, sizeof(a), &l) == GX_OK);
	memcpy(b, a, l);
	CU_ASSERT(gx_codec_block_add(a, l, b, l) == GX_ERR_NONFINITE);
	CU_ASSERT(gx_codec_encode(c, NULL, big, 8, 8, 1432, b, sizeof(b), &l) == GX_OK);
	CU_ASSERT(gx_codec_encode(c, NULL, big, 8, 0, 1432, a, sizeof(a), &l) == GX_OK);
	CU_ASSERT(gx_codec_block_add(a, l, b, l) == GX_ERR_INVAL);    /* other offset */
	gx_codec_destroy(c);
	c = mk("int8");
	CU_ASSERT(gx_codec_encode(c, NULL, big, 8, 0, 1432, a, sizeof(a), &l) == GX_OK);
	memcpy(b, a, l);
	CU_ASSERT(gx_codec_block_add(a, l, b, l) == GX_ERR_INVAL);
	CU_ASSERT(strstr(gx_last_error(), "not summable") != NULL);
	gx_codec_destroy(c);
	c = mk("randk:ratio=0.5,shared-seed");
	struct gx_codec_ctx s1 = { .seed = 1, .step = 1 }, s2 = { .seed = 1, .step = 2 };
	CU_ASSERT(gx_codec_encode(c, &s1, big, 8, 0, 1432, a, sizeof(a), &l) == GX_OK);
	CU_ASSERT(gx_codec_encode(c, &s2, big, 8, 0, 1432, b, sizeof(b), &l) == GX_OK);
	CU_ASSERT(gx_codec_block_add(a, l, b, l) == GX_ERR_INVAL);    /* other step: other indices */
	gx_codec_destroy(c);
	free(x);
	free(z);
	free(da);
	free(db);
	free(ds);
}

/* ---- offsets, any order -------------------------------------------------------------------- */

static void test_offsets_any_order(void)
{
	size_t n = 20000, sub = 7777, off = 5000, cap, len;
	float *x = malloc(n * 4), *y1 = malloc(n * 4), *y2 = malloc(n * 4);
	fill(x, n, 71);
	for (size_t s = 0; s < NSPECS; s++) {
		struct gx_codec *c = mk(all_specs[s]);
		uint8_t *enc = enc_alloc(c, sub, 1432, &cap);
		struct gx_codec_ctx ctx = { .seed = 1, .step = 1, .rank = 0 };
		CU_ASSERT_FATAL(gx_codec_encode(c, &ctx, x + off, sub, off, 1432, enc, cap, &len) == GX_OK);
		for (size_t i = 0; i < n; i++)
			y1[i] = y2[i] = -1.0f;
		CU_ASSERT(gx_codec_decode_all(c, enc, len, y1, n, 0) == GX_OK);
		for (size_t i = 0; i < n; i++)
			if (i < off || i >= off + sub)
				CU_ASSERT(y1[i] == -1.0f);       /* only [off, off + sub) written */
		/* blocks in reverse order, one at a time, each alone */
		size_t starts[512], nb = 0, used;
		struct gx_codec_block b;
		for (size_t o = 0; o < len; o += b.bytes) {
			CU_ASSERT_FATAL(nb < 512 && gx_codec_block_info(enc + o, len - o, &b) == GX_OK);
			starts[nb++] = o;
		}
		for (size_t j = nb; j-- > 0;) {
			uint8_t *copy = malloc(len - starts[j]);     /* exact-size copy: ASan sees overreads */
			memcpy(copy, enc + starts[j], len - starts[j]);
			CU_ASSERT(gx_codec_block_info(copy, len - starts[j], &b) == GX_OK);
			uint8_t *exact = malloc(b.bytes);
			memcpy(exact, copy, b.bytes);
			CU_ASSERT(gx_codec_decode(c, exact, b.bytes, y2, n, &used) == GX_OK);
			CU_ASSERT(used == b.bytes);
			free(exact);
			free(copy);
		}
		CU_ASSERT(memcmp(y1, y2, n * 4) == 0);
		/* decode-accumulate == decode + previous contents */
		for (size_t i = 0; i < n; i++)
			y2[i] = 0.25f;
		CU_ASSERT(gx_codec_decode_all(c, enc, len, y2, n, 1) == GX_OK);
		size_t bad = 0;
		for (size_t i = off; i < off + sub; i++)
			bad += y2[i] != y1[i] + 0.25f;
		CU_ASSERT(bad == 0);
		free(enc);
		gx_codec_destroy(c);
	}
	free(x);
	free(y1);
	free(y2);
}

/* ---- bad input --------------------------------------------------------------------------- */

static void test_nonfinite(void)
{
	size_t n = 3000, len;
	float *x = malloc(n * 4);
	uint8_t *buf = malloc(200000);
	for (size_t s = 0; s < NSPECS; s++) {
		struct gx_codec *c = mk(all_specs[s]);
		const float bads[] = { NAN, INFINITY, -INFINITY };
		for (int k = 0; k < 3; k++) {
			fill(x, n, 9);
			x[2345] = bads[k];
			x[2900] = NAN;
			CU_ASSERT(gx_codec_encode(c, NULL, x, n, 100, 1432, buf, 200000, &len) == GX_ERR_NONFINITE);
			CU_ASSERT(strstr(gx_last_error(), "input[2345]") != NULL);   /* the first bad index */
			CU_ASSERT(len == 0);
		}
		gx_codec_destroy(c);
	}
	/* finite but beyond the format: fp16 */
	struct gx_codec *c = mk("fp16");
	fill(x, n, 9);
	x[10] = 70000.0f;
	CU_ASSERT(gx_codec_encode(c, NULL, x, n, 0, 1432, buf, 200000, &len) == GX_ERR_NONFINITE);
	CU_ASSERT(strstr(gx_last_error(), "fp16") != NULL);
	gx_codec_destroy(c);
	/* int8 range beyond float */
	c = mk("int8");
	x[10] = 3e38f;
	x[11] = -3e38f;
	CU_ASSERT(gx_codec_encode(c, NULL, x, n, 0, 1432, buf, 200000, &len) == GX_ERR_NONFINITE);
	gx_codec_destroy(c);
	/* zero length is fine; NULL arguments are not */
	c = mk("sign");
	CU_ASSERT(gx_codec_encode(c, NULL, NULL, 0, 0, 1432, NULL, 0, &len) == GX_OK && len == 0);
	CU_ASSERT(gx_codec_encode(c, NULL, NULL, 5, 0, 1432, buf, 100, &len) == GX_ERR_INVAL);
	CU_ASSERT(gx_codec_encode(c, NULL, x, 5, 0, 1432, buf, 100, NULL) == GX_ERR_INVAL);
	CU_ASSERT(gx_codec_encode(NULL, NULL, x, 5, 0, 1432, buf, 100, &len) == GX_ERR_INVAL);
	CU_ASSERT(gx_codec_encode(c, NULL, x, 5, UINT64_MAX - 2, 1432, buf, 100, &len) == GX_ERR_INVAL);
	CU_ASSERT(gx_codec_decode_all(c, buf, 0, x, n, 0) == GX_OK);
	gx_codec_destroy(c);
	free(buf);
	free(x);
}

static void expect_corrupt(struct gx_codec *c, const uint8_t *blk, size_t len, size_t dst_n, const char *what)
{
	float dst[64];
	for (int i = 0; i < 64; i++)
		dst[i] = 9.0f;
	uint8_t *copy = malloc(len ? len : 1);          /* exact size: ASan catches any overread */
	memcpy(copy, blk, len);
	gx_status_t s1 = gx_codec_decode(c, copy, len, dst, dst_n, NULL);
	gx_status_t s2 = gx_codec_decacc(c, copy, len, dst, dst_n, NULL);
	CU_ASSERT(s1 == GX_ERR_CORRUPT && s2 == GX_ERR_CORRUPT);
	if (s1 != GX_ERR_CORRUPT || s2 != GX_ERR_CORRUPT)
		fprintf(stderr, "expected GX_ERR_CORRUPT for %s, got %d/%d\n", what, s1, s2);
	for (int i = 0; i < 64; i++)
		CU_ASSERT(dst[i] == 9.0f);                  /* nothing written */
	free(copy);
}

static void test_corrupt_blocks(void)
{
	float x[40];
	uint8_t blk[1024], t[1024];
	size_t len;
	fill(x, 40, 13);
	struct gx_codec *c = mk("fp16"), *q = mk("fixed:bits=4"), *tk = mk("topk:ratio=0.25"), *i8 = mk("int8");
	CU_ASSERT_FATAL(gx_codec_encode(c, NULL, x, 40, 0, 1432, blk, sizeof(blk), &len) == GX_OK);
	expect_corrupt(c, blk, HDR - 1, 64, "truncated header");
	expect_corrupt(c, blk, len - 1, 64, "truncated body");
	memcpy(t, blk, len);
	t[0] ^= 0xff;
	expect_corrupt(c, t, len, 64, "bad magic");
	memcpy(t, blk, len);
	t[1] = 200;
	expect_corrupt(NULL, t, len, 64, "bad codec id");
	expect_corrupt(q, blk, len, 64, "another codec");
	memcpy(t, blk, len);
	t[8] += 2;                                            /* byte length */
	expect_corrupt(c, t, len, 64, "bad length");
	memcpy(t, blk, len);
	t[12] += 1;                                           /* count past the payload */
	expect_corrupt(c, t, len, 64, "count past payload");
	expect_corrupt(c, blk, len, 39, "offset + count past the array");
	memcpy(t, blk, len);
	t[16] = 30;                                           /* offset 30: [30, 70) */
	expect_corrupt(c, t, len, 64, "offset past the array");
	memcpy(t, blk, len);
	memset(t + 16, 0xff, 8);                              /* offset overflow */
	expect_corrupt(c, t, len, 64, "offset overflow");
	memcpy(t, blk, len);
	t[HDR + 1] = 0x7c;                                    /* an fp16 Inf */
	t[HDR] = 0;
	expect_corrupt(c, t, len, 64, "Inf value");
	memcpy(t, blk, len);
	t[4] = 1;                                             /* parameters on a codec without any */
	expect_corrupt(NULL, t, len, 64, "stray parameters");

	CU_ASSERT_FATAL(gx_codec_encode(q, NULL, x, 40, 0, 1432, blk, sizeof(blk), &len) == GX_OK);
	memcpy(t, blk, len);
	t[HDR + 4] = 0xff;                                    /* code 15 > 2L = 14 */
	expect_corrupt(q, t, len, 64, "fixed code beyond levels");
	memcpy(t, blk, len);
	t[2] = 3;                                             /* bits */
	expect_corrupt(NULL, t, len, 64, "bad bits");
	memcpy(t, blk, len);
	memcpy(t + HDR, &(float){ NAN }, 4);
	expect_corrupt(q, t, len, 64, "NaN scale");

	CU_ASSERT_FATAL(gx_codec_encode(i8, NULL, x, 40, 0, 1432, blk, sizeof(blk), &len) == GX_OK);
	memcpy(t, blk, len);
	memcpy(t + HDR, &(float){ 5.0f }, 4);                 /* min > max */
	expect_corrupt(i8, t, len, 64, "min > max");

	CU_ASSERT_FATAL(gx_codec_encode(tk, NULL, x, 40, 0, 1432, blk, sizeof(blk), &len) == GX_OK);
	struct gx_codec_block b;
	CU_ASSERT_FATAL(gx_codec_block_info(blk, len, &b) == GX_OK && b.nnz == 10);
	memcpy(t, blk, len);
	memcpy(t + HDR + 4, t + HDR, 4);                      /* repeated index */
	expect_corrupt(tk, t, len, 64, "topk repeated index");
	memcpy(t, blk, len);
	memcpy(t + HDR + 36, &(uint32_t){ 40 }, 4);           /* index past the block */
	expect_corrupt(tk, t, len, 64, "topk index past block");
	memcpy(t, blk, len);
	t[8] -= 4;                                            /* half a pair */
	expect_corrupt(tk, t, len - 4, 64, "topk half pair");

	/* random damage: never a crash or an out-of-bounds access, only OK or CORRUPT */
	uint64_t key = gx_rng_key(17, 0, 0, 0);
	struct gx_codec *any[] = { c, q, tk, i8, mk("qsgd:s=5,bucket=7"), mk("randk:ratio=0.2,shared-seed"),
				   mk("sign"), mk("randk:ratio=0.3") };
	size_t nany = sizeof(any) / sizeof(any[0]), errors = 0;
	float dst[64];
	for (uint32_t r = 0; r < 4000; r++) {
		struct gx_codec *cc = any[r % nany];
		CU_ASSERT_FATAL(gx_codec_encode(cc, NULL, x, 40, 0, 1432, blk, sizeof(blk), &len) == GX_OK);
		for (int f = 0; f < 3; f++) {
			uint32_t u = gx_rng_u32(key, 4 * r + (uint32_t)f);
			blk[u % len] ^= (uint8_t)(1u << (u >> 29));
		}
		size_t cut = len - gx_rng_u32(key, 4 * r + 3) % 3;
		uint8_t *copy = malloc(cut);
		memcpy(copy, blk, cut);
		gx_status_t st = gx_codec_decacc(NULL, copy, cut, dst, 64, NULL);
		CU_ASSERT(st == GX_OK || st == GX_ERR_CORRUPT);
		errors += st == GX_ERR_CORRUPT;
		free(copy);
	}
	CU_ASSERT(errors > 1000);
	for (size_t i = 4; i < nany; i++)
		gx_codec_destroy(any[i]);
	gx_codec_destroy(c);
	gx_codec_destroy(q);
	gx_codec_destroy(tk);
	gx_codec_destroy(i8);
	/* NULL and empty */
	CU_ASSERT(gx_codec_decode(NULL, NULL, 10, dst, 64, NULL) == GX_ERR_INVAL);
	CU_ASSERT(gx_codec_block_info(blk, 0, &b) == GX_ERR_CORRUPT);
}

static CU_TestInfo codec_tests[] = {
	{ "specs: create, canonical names, bad specs", test_specs },
	{ "exact wire sizes and tiling (0, 1, 7, block, block+1, large)", test_sizes },
	{ "round trips: none exact, fp16/bf16 round to nearest even", test_round_trip_float },
	{ "min-max uint8: error bound, codes, constant chunk, determinism", test_int8 },
	{ "scaled sign: |C(p) - p|^2 == |p|^2 - |p|_1^2 / d", test_sign },
	{ "qsgd: levels, signs, Q(0) = 0, e_1 exact, tiny and huge buckets", test_qsgd_deterministic },
	{ "top-k: exact selection, tie-break, contraction bound and equality", test_topk },
	{ "rand-k: k non-zeros, d/k scaling, shared-seed indices", test_randk },
	{ "unbiasedness and variance (qsgd, fixed, randk; fixed seeds)", test_stat },
	{ "error feedback invariant over many steps", test_ef },
	{ "stochastic rounding: exact E[q] over all 2^16 random values, bias <= 2^-17 level", test_sq_rounding },
	{ "stochastic quantizer edge buckets bit-identical on every vector path", test_sq_edges_identical },
	{ "every vector path bit-identical to scalar", test_simd_identical },
	{ "compressed-domain add (fp16, bf16, randk shared)", test_block_add },
	{ "sub-range offsets, blocks alone in any order, decacc", test_offsets_any_order },
	{ "NaN/Inf/overflow rejected with the first index; NULL, zero length", test_nonfinite },
	{ "truncated, foreign and damaged blocks", test_corrupt_blocks },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "codec", NULL, NULL, NULL, NULL, codec_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return gx_test_main(suites);
}
