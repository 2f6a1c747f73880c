/* thc.c: homomorphic compressed allreduce (THC, NSDI'24).
 *
 * 1. Optionally rotate each block of THC_BLOCK elements: y = H D x / sqrt(B), D a +-1 diagonal drawn
 *    from the shared seed (same on every rank), H the Walsh-Hadamard matrix: outliers spread over the
 *    block, so the block's scale is smaller relative to typical values.
 * 2. Agree on one scale per block: m_b = max over ranks of max_i |y_i| (a float max-allreduce: exact,
 *    order does not matter).
 * 3. Quantize with unbiased stochastic rounding: q_i = floor(y_i L / m_b) + [u_i < frac], L = 2^(b-1)-1,
 *    u_i from the counter RNG keyed (seed, rank, step, block).  q_i is in [-L, L].
 * 4. Ring allreduce of the integer codes: every hop adds codes, no decode or re-encode.  A sum of n codes
 *    lies in [-nL, nL] and nL < 2^(b-1+ceil(log2 n)), so w = b + ceil(log2 n) bits two's complement carry
 *    every partial sum without overflow; that is the width on the wire (bit-packed).
 * 5. Every rank decodes the same integer sums with the same scales: x = S m_b / L (/n), rotated back.
 *    Integer sums do not depend on order, so all ranks end bit-identical.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_internal.h"
#include "gx_rng.h"
#include "thc.h"

#define THC_BLOCK 256u

struct thc {
	size_t count, nblk;
	uint32_t n, rank, payload, bits, wire;
	int rotate;
	uint64_t seed;
	float *y;                 /* rotated, padded copy: nblk * THC_BLOCK */
	float *scale;             /* nblk */
	int32_t *q;               /* codes, then sums */
};

uint32_t thc_wire_bits(uint32_t bits, uint32_t n)
{
	uint32_t lg = 0;
	while ((1u << lg) < n)
		lg++;
	return bits + lg;
}

void thc_fwht(float *x, size_t m)
{
	for (size_t h = 1; h < m; h *= 2)
		for (size_t i = 0; i < m; i += 2 * h)
			for (size_t j = i; j < i + h; j++) {
				float a = x[j], b = x[j + h];
				x[j] = a + b;
				x[j + h] = a - b;
			}
	float norm = 1.0f / sqrtf((float)m);
	for (size_t i = 0; i < m; i++)
		x[i] *= norm;
}

void thc_destroy(struct thc *t)
{
	if (!t)
		return;
	free(t->y);
	free(t->scale);
	free(t->q);
	free(t);
}

gx_status_t thc_create(struct thc **out, size_t count, uint32_t n, uint32_t rank, uint32_t payload,
		       const char *spec, uint64_t seed)
{
	struct thc *t = calloc(1, sizeof(*t));
	const char *p = spec + 3;

	*out = NULL;
	if (!t)
		return gx_error(GX_ERR_NOMEM, "thc: out of memory");
	t->bits = 4;
	if (*p == ':')
		p++;
	while (*p) {
		char *end;
		if (!strncmp(p, "bits=", 5)) {
			unsigned long b = strtoul(p + 5, &end, 10);
			if (end == p + 5 || b < 2 || b > 16)
				goto bad;
			t->bits = (uint32_t)b;
			p = end;
		} else if (!strncmp(p, "rotate", 6)) {
			t->rotate = 1;
			p += 6;
		} else {
			goto bad;
		}
		if (*p == ',')
			p++;
		else if (*p)
			goto bad;
	}
	t->wire = thc_wire_bits(t->bits, n);
	if (t->wire > 32) {
		gx_status_t st = gx_error(GX_ERR_INVAL, "thc: %u-bit codes summed over %u ranks need %u bits "
					  "(> 32); use fewer bits", t->bits, n, t->wire);
		thc_destroy(t);
		return st;
	}
	t->count = count;
	t->nblk = (count + THC_BLOCK - 1) / THC_BLOCK;
	t->n = n;
	t->rank = rank;
	t->payload = payload;
	t->seed = seed;
	size_t padded = t->nblk * THC_BLOCK;
	t->y = malloc(sizeof(float) * (padded ? padded : 1));
	t->scale = malloc(sizeof(float) * (t->nblk ? t->nblk : 1));
	t->q = malloc(sizeof(int32_t) * (padded ? padded : 1));
	if (!t->y || !t->scale || !t->q) {
		thc_destroy(t);
		return gx_error(GX_ERR_NOMEM, "thc: out of memory for %zu elements", count);
	}
	*out = t;
	return GX_OK;
bad:
	thc_destroy(t);
	return gx_error(GX_ERR_INVAL, "thc: bad spec '%s' (thc[:bits=2..16][,rotate])", spec);
}

/* ---- w-bit packed integer codes on the wire ------------------------------------------------- */

static uint32_t thc_w(const struct ar_run *r)
{
	return ((const struct thc *)r->ops_arg)->wire;
}

static uint32_t int_pack(struct ar_run *r, void *dst, const unsigned char *src, size_t n)
{
	uint32_t w = thc_w(r);
	uint64_t mask = (1ull << w) - 1, acc = 0;
	unsigned bits = 0;
	unsigned char *o = dst;
	const int32_t *q = (const int32_t *)(const void *)src;
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		acc |= ((uint64_t)(uint32_t)q[i] & mask) << bits;
		bits += w;
		while (bits >= 8) {
			o[len++] = (unsigned char)acc;
			acc >>= 8;
			bits -= 8;
		}
	}
	if (bits)
		o[len++] = (unsigned char)acc;
	return (uint32_t)len;
}

static gx_status_t int_unpack(struct ar_run *r, unsigned char *dst, const void *p, uint32_t len, size_t n,
			      int add)
{
	uint32_t w = thc_w(r);
	uint64_t mask = (1ull << w) - 1, acc = 0;
	unsigned bits = 0;
	const unsigned char *in = p;
	size_t pos = 0;
	int32_t *q = (int32_t *)(void *)dst;

	if (len != (n * w + 7) / 8)
		return GX_ERR_CORRUPT;
	for (size_t i = 0; i < n; i++) {
		while (bits < w) {
			acc |= (uint64_t)in[pos++] << bits;
			bits += 8;
		}
		uint32_t v = (uint32_t)(acc & mask);
		acc >>= w;
		bits -= w;
		int32_t s = (int32_t)(v << (32 - w)) >> (32 - w);    /* sign-extend */
		q[i] = add ? (int32_t)((uint32_t)q[i] + (uint32_t)s) : s;
	}
	return GX_OK;
}

static gx_status_t int_reduce(struct ar_run *r, unsigned char *dst, const void *p, uint32_t len, size_t n)
{
	return int_unpack(r, dst, p, len, n, 1);
}

static gx_status_t int_copy(struct ar_run *r, unsigned char *dst, const void *p, uint32_t len, size_t n)
{
	return int_unpack(r, dst, p, len, n, 0);
}

static const struct ar_ops int_ops = { .pack = int_pack, .reduce = int_reduce, .copy = int_copy };

/* ---- the allreduce ---------------------------------------------------------------------------- */

static void rotate_block(const struct thc *t, float *x, uint64_t step, size_t b, int inverse)
{
	uint64_t key = gx_rng_key(t->seed ^ 0x7468632d726f74ull, GX_RNG_SHARED, step, (uint32_t)b);
	if (!inverse)
		for (uint32_t i = 0; i < THC_BLOCK; i++)
			if (gx_rng_u32(key, i) & 1)
				x[i] = -x[i];
	thc_fwht(x, THC_BLOCK);      /* H/sqrt(B) is its own inverse */
	if (inverse)
		for (uint32_t i = 0; i < THC_BLOCK; i++)
			if (gx_rng_u32(key, i) & 1)
				x[i] = -x[i];
}

gx_status_t thc_allreduce(struct thc *t, struct gx_coll *s, float *buf, int op, uint64_t step)
{
	size_t padded = t->nblk * THC_BLOCK;
	float L = (float)((1u << (t->bits - 1)) - 1);
	gx_status_t st;

	memcpy(t->y, buf, t->count * sizeof(float));
	memset(t->y + t->count, 0, (padded - t->count) * sizeof(float));
	for (size_t b = 0; b < t->nblk; b++) {
		float *x = t->y + b * THC_BLOCK, m = 0.0f;
		if (t->rotate)
			rotate_block(t, x, step, b, 0);
		for (uint32_t i = 0; i < THC_BLOCK; i++) {
			float a = fabsf(x[i]);
			if (!(a <= 3.4e38f))
				return gx_error(GX_ERR_NONFINITE, "thc: element %zu is not finite", b * THC_BLOCK + i);
			m = a > m ? a : m;
		}
		t->scale[b] = m;
	}
	if ((st = ar_float(s, t->scale, t->nblk, GX_OP_MAX, GX_ALLREDUCE_AUTO)) < 0)
		return st;
	for (size_t b = 0; b < t->nblk; b++) {
		const float *x = t->y + b * THC_BLOCK;
		int32_t *q = t->q + b * THC_BLOCK;
		float m = t->scale[b];
		uint64_t key = gx_rng_key(t->seed, t->rank, step, (uint32_t)b);
		if (m == 0.0f) {
			memset(q, 0, THC_BLOCK * sizeof(int32_t));
			continue;
		}
		float k = L / m;
		for (uint32_t i = 0; i < THC_BLOCK; i++) {
			float v = x[i] * k;
			v = v > L ? L : (v < -L ? -L : v);
			float f = floorf(v);
			q[i] = (int32_t)f + (gx_rng_uniform(key, i) < v - f);
		}
	}
	if (t->n > 1) {
		struct ar_run r;
		memset(&r, 0, sizeof(r));
		r.s = s;
		char spec[COLL_SPEC_LEN];
		snprintf(spec, sizeof(spec), "thc:bits=%u%s", t->bits, t->rotate ? ",rotate" : "");
		r.coll_id = coll_begin(s, &(struct coll_fp){ .count = t->count,
				.config = coll_config_hash(spec, t->seed, 0), .kind = COLL_THC_CODES,
				.op = (uint8_t)op }, spec);
		r.rank = t->rank;
		r.n = t->n;
		r.buf = (unsigned char *)t->q;
		r.count = padded;
		r.esz = 4;
		r.epp = t->payload * 8 / t->wire;
		r.slot = t->payload + 4;
		r.codec = 0xf0;       /* THC codes: outside the codec id range */
		r.op = GX_OP_SUM;
		r.ops = &int_ops;
		r.ops_arg = t;
		r.pipelined = 1;
		if ((st = ar_schedule_ring(&r)) < 0 || (st = ar_execute(&r)) < 0)
			return st;
	}
	for (size_t b = 0; b < t->nblk; b++) {
		float *x = t->y + b * THC_BLOCK;
		const int32_t *q = t->q + b * THC_BLOCK;
		float k = t->scale[b] / L;
		for (uint32_t i = 0; i < THC_BLOCK; i++)
			x[i] = (float)q[i] * k;
		if (t->rotate)
			rotate_block(t, x, step, b, 1);
		if (op == GX_OP_AVG)
			for (uint32_t i = 0; i < THC_BLOCK; i++)
				x[i] = x[i] / (float)t->n;
	}
	memcpy(buf, t->y, t->count * sizeof(float));
	return GX_OK;
}
