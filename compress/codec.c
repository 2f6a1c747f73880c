/* codec.c: the codec object: spec parsing, create/destroy, name, id and properties, and the exact,
 * data-independent sizes (k of a ratio, bytes of a block, elements per block, bytes of an encoding).
 * Calls simd.c only (gx_simd_env_status). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_priv.h"
#include "compress_options.h"

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

/* Spec name of a codec id (block.c's messages). */
const char *gx_codec_id_name(unsigned id)
{
	return id <= GX_CODEC_ID_MAX && id_names[id] ? id_names[id] : "unknown";
}

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

/* Field width of s levels (also checked against block headers by block.c). */
uint32_t gx_codec_bits_for_levels(uint32_t s)
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
			c->bits = gx_codec_bits_for_levels(c->levels);
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
