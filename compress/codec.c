/* codec.c: codec objects, spec parsing, exact sizes, block headers, encode/decode drivers,
 * compressed-domain adds and the run-time choice of vector kernels. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_internal.h"
#include "codec_priv.h"
#include "kern_lanes.h"

#define GX_CODEC_MAGIC 0xc7u

static const char specs_text[] =
	"none | fp16 | bf16 | int8 | qsgd[:bits=2..16|s=1..32767][,bucket=1..32768] | "
	"fixed[:bits=2|4|8][,bucket=1..32768] | sign | topk[:ratio=R] | randk[:ratio=R][,shared-seed] "
	"(0 < R <= 1; defaults: qsgd bits=4 bucket=512, fixed bits=8 bucket=512, ratio=0.01)";

const char *gx_codec_specs(void)
{
	return specs_text;
}

static const char *id_names[GX_CODEC_ID_MAX + 1] = {
	[GX_CODEC_NONE] = "none", [GX_CODEC_FP16] = "fp16", [GX_CODEC_BF16] = "bf16",
	[GX_CODEC_INT8] = "int8", [GX_CODEC_QSGD] = "qsgd", [GX_CODEC_FIXED] = "fixed",
	[GX_CODEC_SIGN] = "sign", [GX_CODEC_TOPK] = "topk", [GX_CODEC_RANDK] = "randk",
};

/* ---- spec parsing ------------------------------------------------------------------------ */

static int parse_u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	if (!*v || *v == '-' || *v == '+')
		return -1;
	errno = 0;
	unsigned long x = strtoul(v, &end, 10);
	if (errno || *end || x < lo || x > hi)
		return -1;
	*out = (uint32_t)x;
	return 0;
}

static uint32_t bits_for_levels(uint32_t s)
{
	uint32_t b = 0;
	while ((1u << b) < s + 1)
		b++;
	return 1 + b;       /* sign + ceil(log2(s + 1)) */
}

static void format_ratio(char *buf, size_t len, double r)
{
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, r);
		if (strtod(buf, NULL) == r)
			return;
	}
}

static gx_status_t spec_error(const char *spec, const char *why)
{
	return gx_error(GX_ERR_INVAL, "codec spec '%s': %s; valid specs: %s", spec, why, specs_text);
}

static gx_status_t parse_spec(const char *spec, struct gx_codec *c)
{
	char buf[128], *params, *save = NULL;
	int have_bits = 0, have_s = 0;

	if (strlen(spec) >= sizeof(buf))
		return spec_error(spec, "too long");
	strcpy(buf, spec);
	params = strchr(buf, ':');
	if (params)
		*params++ = '\0';
	c->id = 0;
	for (int i = 1; i <= GX_CODEC_ID_MAX; i++)
		if (!strcmp(buf, id_names[i]))
			c->id = (enum gx_codec_id)i;
	if (!c->id)
		return spec_error(spec, "unknown codec name");
	c->bits = c->id == GX_CODEC_QSGD ? 4 : c->id == GX_CODEC_FIXED ? 8 : 0;
	c->bucket = (c->id == GX_CODEC_QSGD || c->id == GX_CODEC_FIXED) ? 512 : 0;
	c->ratio = 0.01;
	if (params && (!*params || *params == ',' || params[strlen(params) - 1] == ',' || strstr(params, ",,")))
		return spec_error(spec, "empty parameter");
	for (char *kv = params ? strtok_r(params, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (v)
			*v++ = '\0';
		int q = c->id == GX_CODEC_QSGD, f = c->id == GX_CODEC_FIXED;
		int sp = c->id == GX_CODEC_TOPK || c->id == GX_CODEC_RANDK;
		if ((q || f) && !strcmp(kv, "bits") && v) {
			if (parse_u32(v, 2, f ? 8 : 16, &c->bits) || (f && c->bits != 2 && c->bits != 4 && c->bits != 8))
				return spec_error(spec, f ? "bits must be 2, 4 or 8" : "bits must be 2..16");
			have_bits = 1;
		} else if (q && !strcmp(kv, "s") && v) {
			uint32_t s;
			if (parse_u32(v, 1, 32767, &s))
				return spec_error(spec, "s (levels) must be 1..32767");
			c->levels = s;
			have_s = 1;
		} else if ((q || f) && !strcmp(kv, "bucket") && v) {
			if (parse_u32(v, 1, 32768, &c->bucket))
				return spec_error(spec, "bucket must be 1..32768");
		} else if (sp && !strcmp(kv, "ratio") && v) {
			char *end;
			errno = 0;
			double r = strtod(v, &end);
			if (errno || end == v || *end || !(r > 0.0 && r <= 1.0))
				return spec_error(spec, "ratio must be a number in (0, 1]");
			c->ratio = r;
		} else if (c->id == GX_CODEC_RANDK && !strcmp(kv, "shared-seed") && !v) {
			c->shared = 1;
		} else {
			return spec_error(spec, "unknown or malformed parameter");
		}
	}
	if (have_bits && have_s)
		return spec_error(spec, "give bits or s, not both");
	if (c->id == GX_CODEC_QSGD) {
		if (have_s)
			c->bits = bits_for_levels(c->levels);
		else
			c->levels = (1u << (c->bits - 1)) - 1;
	} else if (c->id == GX_CODEC_FIXED) {
		c->levels = (1u << (c->bits - 1)) - 1;
	}
	return GX_OK;
}

static void make_name(struct gx_codec *c)
{
	char r[40];
	switch (c->id) {
	case GX_CODEC_QSGD:
		if (c->levels == (1u << (c->bits - 1)) - 1)
			snprintf(c->name, sizeof(c->name), "qsgd:bits=%u,bucket=%u", c->bits, c->bucket);
		else
			snprintf(c->name, sizeof(c->name), "qsgd:s=%u,bucket=%u", c->levels, c->bucket);
		break;
	case GX_CODEC_FIXED:
		snprintf(c->name, sizeof(c->name), "fixed:bits=%u,bucket=%u", c->bits, c->bucket);
		break;
	case GX_CODEC_TOPK:
	case GX_CODEC_RANDK:
		format_ratio(r, sizeof(r), c->ratio);
		snprintf(c->name, sizeof(c->name), "%s:ratio=%s%s", id_names[c->id], r,
			 c->shared ? ",shared-seed" : "");
		break;
	default:
		snprintf(c->name, sizeof(c->name), "%s", id_names[c->id]);
	}
}

static unsigned props_of(const struct gx_codec *c)
{
	switch (c->id) {
	case GX_CODEC_NONE:
		return GX_CODEC_LOSSLESS | GX_CODEC_UNBIASED | GX_CODEC_CONTRACTION | GX_CODEC_SUMMABLE;
	case GX_CODEC_FP16:
		return GX_CODEC_SUMMABLE;   /* underflow to 0 below 2^-25: not a contraction for tiny inputs */
	case GX_CODEC_BF16:
		return GX_CODEC_SUMMABLE | GX_CODEC_CONTRACTION;
	case GX_CODEC_INT8:
	case GX_CODEC_SIGN:
		return GX_CODEC_CONTRACTION;
	case GX_CODEC_QSGD:
	case GX_CODEC_FIXED:
		return GX_CODEC_UNBIASED | GX_CODEC_STOCHASTIC;
	case GX_CODEC_TOPK:
		return GX_CODEC_CONTRACTION | GX_CODEC_SPARSE;
	case GX_CODEC_RANDK:
		return GX_CODEC_UNBIASED | GX_CODEC_STOCHASTIC | GX_CODEC_SPARSE |
		       (c->shared ? GX_CODEC_SUMMABLE : 0);
	}
	return 0;
}

gx_status_t gx_codec_create(const char *spec, struct gx_codec **out)
{
	gx_status_t st;

	if (!out)
		return gx_error(GX_ERR_INVAL, "gx_codec_create: out is NULL");
	*out = NULL;
	if (!spec)
		return gx_error(GX_ERR_INVAL, "gx_codec_create: spec is NULL; valid specs: %s", specs_text);
	st = gx_simd_env_status();
	if (st < 0)
		return st;
	struct gx_codec *c = calloc(1, sizeof(*c));
	if (!c)
		return gx_error(GX_ERR_NOMEM, "gx_codec_create: out of memory");
	st = parse_spec(spec, c);
	if (st < 0) {
		free(c);
		return st;
	}
	make_name(c);
	c->props = props_of(c);
	*out = c;
	return GX_OK;
}

void gx_codec_destroy(struct gx_codec *c)
{
	if (!c)
		return;
	free(c->cand);
	free(c->keys);
	free(c->hist);
	free(c);
}

const char *gx_codec_name(const struct gx_codec *c)
{
	return c ? c->name : "";
}

enum gx_codec_id gx_codec_id(const struct gx_codec *c)
{
	return c ? c->id : 0;
}

unsigned gx_codec_props(const struct gx_codec *c)
{
	return c ? c->props : 0;
}

/* ---- sizes ------------------------------------------------------------------------------ */

uint64_t gx_codec_k(double ratio, uint64_t m)
{
	if (!m)
		return 0;
	double k = ceil(ratio * (double)m);
	if (k < 1.0)
		k = 1.0;
	return k >= (double)m ? m : (uint64_t)k;
}

static uint64_t sq_bytes(uint32_t bucket, uint32_t w, uint64_t m)
{
	uint64_t full = m / bucket, rem = m % bucket, nb = full + (rem != 0);
	return 4 * nb + full * ((bucket * (uint64_t)w + 7) / 8) + (rem * w + 7) / 8;
}

/* Bytes of a block covering m elements (dense codecs and randk). */
uint64_t gx_codec_block_bytes(const struct gx_codec *c, uint64_t m)
{
	uint64_t h = GX_CODEC_HDR_BYTES;
	switch (c->id) {
	case GX_CODEC_NONE: return h + 4 * m;
	case GX_CODEC_FP16:
	case GX_CODEC_BF16: return h + 2 * m;
	case GX_CODEC_INT8: return h + 8 + m;
	case GX_CODEC_QSGD:
	case GX_CODEC_FIXED: return h + sq_bytes(c->bucket, c->bits, m);
	case GX_CODEC_SIGN: return h + 4 + (m + 7) / 8;
	case GX_CODEC_RANDK:
		return c->shared ? h + 8 + 4 * gx_codec_k(c->ratio, m) : h + 8 * gx_codec_k(c->ratio, m);
	case GX_CODEC_TOPK: return h + 8 * m;   /* m = entries */
	}
	return UINT64_MAX;
}

size_t gx_codec_block_elems(const struct gx_codec *c, size_t payload)
{
	if (!c || payload > GX_CODEC_MAX_PAYLOAD || payload <= GX_CODEC_HDR_BYTES)
		return 0;
	if (c->id == GX_CODEC_TOPK)
		return (payload - GX_CODEC_HDR_BYTES) / 8;
	/* largest m with block_bytes(m) <= payload (block_bytes is nondecreasing in m) */
	uint64_t lo = 0, hi = c->id == GX_CODEC_RANDK ? (uint64_t)1 << 31 : (uint64_t)payload * 8;
	if (gx_codec_block_bytes(c, 1) > payload)
		return 0;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;
		if (gx_codec_block_bytes(c, mid) <= payload)
			lo = mid;
		else
			hi = mid - 1;
	}
	return (size_t)lo;
}

gx_status_t gx_codec_encoded_size(const struct gx_codec *c, size_t n, size_t payload, size_t *bytes,
				  size_t *nblocks)
{
	if (!c)
		return gx_error(GX_ERR_INVAL, "gx_codec_encoded_size: codec is NULL");
	size_t per = gx_codec_block_elems(c, payload);
	if (!per)
		return gx_error(GX_ERR_INVAL,
				"payload %zu bytes cannot hold a block of codec %s (header %u bytes, limit %u): "
				"use a larger payload", payload, c->name, GX_CODEC_HDR_BYTES, GX_CODEC_MAX_PAYLOAD);
	uint64_t total, nb;
	if (c->id == GX_CODEC_TOPK) {
		if (n > UINT32_MAX)
			return gx_error(GX_ERR_INVAL, "topk encodes at most %u elements per call, got %zu",
					UINT32_MAX, n);
		uint64_t k = gx_codec_k(c->ratio, n);
		nb = (k + per - 1) / per;
		total = nb * GX_CODEC_HDR_BYTES + 8 * k;
	} else {
		uint64_t full = n / per, rem = n % per;
		nb = full + (rem != 0);
		total = full * gx_codec_block_bytes(c, per) + (rem ? gx_codec_block_bytes(c, rem) : 0);
	}
	if (bytes)
		*bytes = (size_t)total;
	if (nblocks)
		*nblocks = (size_t)nb;
	return GX_OK;
}

/* ---- block headers ----------------------------------------------------------------------- */

void gx_hdr_write(uint8_t *p, const struct gx_codec *c, uint32_t bytes, uint32_t count, uint64_t offset)
{
	p[0] = GX_CODEC_MAGIC;
	p[1] = (uint8_t)c->id;
	p[2] = (uint8_t)c->bits;
	p[3] = c->shared ? GX_CODEC_F_SHARED : 0;
	gx_st16(p + 4, (uint16_t)c->levels);
	gx_st16(p + 6, (uint16_t)c->bucket);
	gx_st32(p + 8, bytes);
	gx_st32(p + 12, count);
	memcpy(p + 16, &offset, 8);
}

static gx_status_t corrupt(const char *what, unsigned long long a, unsigned long long b)
{
	return gx_error(GX_ERR_CORRUPT, "codec block rejected: %s (%llu vs %llu); the block is truncated, "
			"foreign or damaged: drop it", what, a, b);
}

/* Validate the header and the bytes of the block at p (len available). */
gx_status_t gx_block_parse(const void *blk, size_t len, const struct gx_codec *c, struct gx_codec_block *b)
{
	const uint8_t *p = blk;

	if (!blk)
		return gx_error(GX_ERR_INVAL, "codec block is NULL");
	if (len < GX_CODEC_HDR_BYTES)
		return corrupt("shorter than the block header", len, GX_CODEC_HDR_BYTES);
	if (p[0] != GX_CODEC_MAGIC)
		return corrupt("bad magic", p[0], GX_CODEC_MAGIC);
	memset(b, 0, sizeof(*b));
	b->codec = p[1];
	b->bits = p[2];
	b->flags = p[3];
	b->levels = gx_ld16(p + 4);
	b->bucket = gx_ld16(p + 6);
	b->bytes = gx_ld32(p + 8);
	b->count = gx_ld32(p + 12);
	memcpy(&b->offset, p + 16, 8);
	if (b->codec < 1 || b->codec > GX_CODEC_ID_MAX)
		return corrupt("unknown codec id", b->codec, GX_CODEC_ID_MAX);
	if (c && b->codec != c->id)
		return gx_error(GX_ERR_CORRUPT, "codec block rejected: it is %s, expected %s", id_names[b->codec],
				c->name);
	if (b->bytes > len)
		return corrupt("block longer than the bytes available", b->bytes, len);
	if (b->bytes < GX_CODEC_HDR_BYTES)
		return corrupt("block length below the header size", b->bytes, GX_CODEC_HDR_BYTES);
	if (!b->count)
		return corrupt("block covers no elements", 0, 1);
	if (b->offset > UINT64_MAX - b->count)
		return corrupt("offset + count overflows", b->offset, b->count);

	/* Parameters as a codec object: then sizes use one formula for encoder and decoder. */
	struct gx_codec pc = { .id = b->codec, .bits = b->bits, .levels = b->levels };
	pc.bucket = b->bucket;
	uint32_t body = b->bytes - GX_CODEC_HDR_BYTES;
	int sq = b->codec == GX_CODEC_QSGD || b->codec == GX_CODEC_FIXED;
	if (!sq && (b->bits || b->levels || b->bucket))
		return corrupt("parameters set for a codec without parameters", b->bits, 0);
	if (b->flags & ~(b->codec == GX_CODEC_RANDK ? GX_CODEC_F_SHARED : 0u))
		return corrupt("unknown flags", b->flags, 0);
	if (b->codec == GX_CODEC_QSGD) {
		if (b->bits < 2 || b->bits > 16 || !b->levels || !b->bucket || b->bucket > 32768 || b->levels > (1u << (b->bits - 1)) - 1 ||
		    bits_for_levels(b->levels) != b->bits)
			return corrupt("bad qsgd bits/levels", b->bits, b->levels);
	} else if (b->codec == GX_CODEC_FIXED) {
		if ((b->bits != 2 && b->bits != 4 && b->bits != 8) || !b->bucket || b->bucket > 32768 || b->levels != (1u << (b->bits - 1)) - 1)
			return corrupt("bad fixed-point bits/levels", b->bits, b->levels);
	}
	if (c && sq && (b->bits != c->bits || b->levels != c->levels || pc.bucket != c->bucket))
		return gx_error(GX_ERR_CORRUPT, "codec block rejected: parameters bits=%u s=%u bucket=%u differ "
				"from %s", b->bits, b->levels, pc.bucket, c->name);
	b->nnz = b->count;
	switch (b->codec) {
	case GX_CODEC_TOPK:
		if (body % 8 || !body)
			return corrupt("topk body is not whole (index, value) pairs", body, 8);
		b->nnz = body / 8;
		break;
	case GX_CODEC_RANDK:
		pc.shared = b->flags & GX_CODEC_F_SHARED;
		if (pc.shared) {
			if (body < 12 || (body - 8) % 4)
				return corrupt("randk shared body is not key + whole values", body, 12);
			b->nnz = (body - 8) / 4;
		} else {
			if (body % 8 || !body)
				return corrupt("randk body is not whole (index, value) pairs", body, 8);
			b->nnz = body / 8;
		}
		if (c && (pc.shared != c->shared || b->nnz != gx_codec_k(c->ratio, b->count)))
			return gx_error(GX_ERR_CORRUPT, "codec block rejected: randk block with %u of %u entries%s "
					"does not match %s", b->nnz, b->count, pc.shared ? " (shared)" : "", c->name);
		break;
	default:
		if (gx_codec_block_bytes(&pc, b->count) != b->bytes)
			return corrupt("block length does not match its element count",
				       b->bytes, gx_codec_block_bytes(&pc, b->count));
	}
	if (b->nnz > b->count)
		return corrupt("more entries than elements", b->nnz, b->count);
	return GX_OK;
}

gx_status_t gx_codec_block_info(const void *blk, size_t len, struct gx_codec_block *info)
{
	struct gx_codec_block b;
	gx_status_t st = gx_block_parse(blk, len, NULL, &b);
	if (st == GX_OK && info)
		*info = b;
	return st;
}

/* ---- compressed-domain add --------------------------------------------------------------- */

gx_status_t gx_codec_block_add(void *a, size_t a_len, const void *b, size_t b_len)
{
	struct gx_codec_block ia, ib;
	gx_status_t st;

	if ((st = gx_block_parse(a, a_len, NULL, &ia)) < 0 || (st = gx_block_parse(b, b_len, NULL, &ib)) < 0)
		return st;
	if (ia.codec != ib.codec || ia.flags != ib.flags || ia.count != ib.count || ia.offset != ib.offset ||
	    ia.bytes != ib.bytes)
		return gx_error(GX_ERR_INVAL, "gx_codec_block_add: blocks differ in layout (%s/%s, offset %llu/%llu, "
				"count %u/%u): only encodings of the same layout add", id_names[ia.codec],
				id_names[ib.codec], (unsigned long long)ia.offset, (unsigned long long)ib.offset,
				ia.count, ib.count);
	uint8_t *pa = (uint8_t *)a + GX_CODEC_HDR_BYTES;
	const uint8_t *pb = (const uint8_t *)b + GX_CODEC_HDR_BYTES;
	if ((st = gx_block_check_body(&ia, pa)) < 0 || (st = gx_block_check_body(&ib, pb)) < 0)
		return st;
	const struct gx_kern *k = gx_kern();
	int inf;
	switch (ia.codec) {
	case GX_CODEC_NONE: inf = k->add_f32(pa, pb, ia.count); break;
	case GX_CODEC_FP16: inf = k->add_f16(pa, pb, ia.count); break;
	case GX_CODEC_BF16: inf = k->add_bf16(pa, pb, ia.count); break;
	case GX_CODEC_RANDK:
		if (!(ia.flags & GX_CODEC_F_SHARED))
			goto notsum;
		if (memcmp(pa, pb, 8))
			return gx_error(GX_ERR_INVAL, "gx_codec_block_add: shared-seed randk blocks of different "
					"seed/step/offset (keys differ): their indices differ");
		inf = k->add_f32(pa + 8, pb + 8, ia.nnz);
		break;
	default:
	notsum:
		return gx_error(GX_ERR_INVAL, "gx_codec_block_add: %s blocks are not summable without decoding "
				"(summable: none, fp16, bf16, randk shared-seed)", id_names[ia.codec]);
	}
	if (inf)
		return gx_error(GX_ERR_NONFINITE, "gx_codec_block_add: a sum overflowed to Inf in %s (block at "
				"offset %llu)", id_names[ia.codec], (unsigned long long)ia.offset);
	return GX_OK;
}
