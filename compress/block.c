/* block.c: the self-describing block format: writing a block header, parsing and validating a block
 * (header against the codec, then payload values, scales, codes and indices), gx_codec_block_info,
 * and the compressed-domain add of summable blocks (gx_codec_block_add).  Calls codec.c (sizes, names)
 * and simd.c (kernel table). */
#include <math.h>
#include <string.h>

#include "codec_internal.h"
#include "codec_priv.h"
#include "kern_lanes.h"

#define GX_CODEC_MAGIC 0xc7u

/* ---- block headers ----------------------------------------------------------------------- */

void gx_block_hdr_write(uint8_t *p, const struct gx_codec *c, uint32_t bytes, uint32_t count, uint64_t offset)
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
		return gx_error(GX_ERR_CORRUPT, "codec block rejected: it is %s, expected %s",
				gx_codec_id_name(b->codec), c->name);
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
		    gx_codec_bits_for_levels(b->levels) != b->bits)
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

/* ---- payload checks ---------------------------------------------------------------------- */

static gx_status_t bad_value(const struct gx_codec_block *b, const char *what)
{
	return gx_error(GX_ERR_CORRUPT, "codec block rejected: %s in the block at element %llu; the block "
			"is damaged: drop it", what, (unsigned long long)b->offset);
}

/* Payload checks before anything is written: finite values and scales, codes in range,
 * sparse indices increasing and inside the block. */
gx_status_t gx_block_check_body(const struct gx_codec_block *b, const uint8_t *p)
{
	uint32_t m = b->count, big = 0;

	switch (b->codec) {
	case GX_CODEC_NONE:
		for (uint32_t i = 0; i < m; i++) {
			uint32_t a = gx_ld32(p + 4 * (size_t)i) & 0x7fffffffu;
			big = a > big ? a : big;
		}
		return big >= GX_ABS_INF ? bad_value(b, "a NaN or Inf value") : GX_OK;
	case GX_CODEC_FP16:
	case GX_CODEC_BF16: {
		uint16_t e = b->codec == GX_CODEC_FP16 ? 0x7c00u : 0x7f80u, bad = 0;
		for (uint32_t i = 0; i < m; i++)
			bad |= (uint16_t)((gx_ld16(p + 2 * (size_t)i) & e) == e);
		return bad ? bad_value(b, "a NaN or Inf value") : GX_OK;
	}
	case GX_CODEC_INT8: {
		float mn = gx_ldf(p), mx = gx_ldf(p + 4);
		if (!isfinite(mn) || !isfinite(mx) || !(mn <= mx) || !isfinite(mx - mn))
			return bad_value(b, "a bad min/max pair");
		return GX_OK;
	}
	case GX_CODEC_SIGN: {
		float s = gx_ldf(p);
		return isfinite(s) && s >= 0.0f ? GX_OK : bad_value(b, "a bad scale");
	}
	case GX_CODEC_QSGD:
	case GX_CODEC_FIXED: {
		uint32_t nb = (m + b->bucket - 1) / b->bucket;
		for (uint32_t j = 0; j < nb; j++) {
			float s = gx_ldf(p + 4 * (size_t)j);
			if (!isfinite(s) || !(s >= 0.0f))
				return bad_value(b, "a bad bucket scale");
		}
		const uint8_t *codes = p + 4 * (size_t)nb;
		uint32_t w = b->bits;
		int ob = b->codec == GX_CODEC_FIXED;
		uint32_t lim = ob ? 2u * b->levels : b->levels;
		if (!ob && b->levels == (1u << (w - 1)) - 1)
			return GX_OK;     /* every code is valid */
		for (uint32_t j = 0; j < nb; j++) {
			uint32_t mb = j + 1 < nb ? b->bucket : m - j * b->bucket, i = 0;
			if (ob && (w == 2 || w == 4 || w == 8)) {
				/* fixed point: the one invalid code is all ones (2L + 1).  Eight bytes at a
				 * time: AND each code's bits down into its lowest bit (zero padding of the
				 * last word never makes an all-ones code) */
				uint32_t per = 8 / w, full = mb / per;
				uint64_t bad = 0, low = w == 2 ? 0x5555555555555555ull
						      : w == 4 ? 0x1111111111111111ull : 0x0101010101010101ull;
				for (uint32_t byte = 0; byte < full; byte += 8) {
					uint64_t v = 0;
					memcpy(&v, codes + byte, full - byte < 8 ? full - byte : 8);
					for (uint32_t sh = 1; sh < w; sh <<= 1)
						v &= v >> sh;
					bad |= v & low;
				}
				if (bad)
					return bad_value(b, "a code beyond the levels");
				i = full * per;
			}
			for (; i < mb; i++) {
				uint32_t code = gx_sq_get(codes, i, w);
				if ((ob ? code : code & ((1u << (w - 1)) - 1)) > lim)
					return bad_value(b, "a code beyond the levels");
			}
			codes += ((size_t)mb * w + 7) / 8;
		}
		return GX_OK;
	}
	case GX_CODEC_TOPK:
	case GX_CODEC_RANDK: {
		const uint8_t *val;
		if (b->flags & GX_CODEC_F_SHARED) {
			val = p + 8;
		} else {
			uint32_t prev = 0;
			for (uint32_t e = 0; e < b->nnz; e++) {
				uint32_t i = gx_ld32(p + 4 * (size_t)e);
				if (i >= m || (e && i <= prev))
					return bad_value(b, "an index out of order or outside the block");
				prev = i;
			}
			val = p + 4 * (size_t)b->nnz;
		}
		for (uint32_t e = 0; e < b->nnz; e++) {
			uint32_t a = gx_ld32(val + 4 * (size_t)e) & 0x7fffffffu;
			big = a > big ? a : big;
		}
		return big >= GX_ABS_INF ? bad_value(b, "a NaN or Inf value") : GX_OK;
	}
	}
	return bad_value(b, "an unknown codec");
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
				"count %u/%u): only encodings of the same layout add", gx_codec_id_name(ia.codec),
				gx_codec_id_name(ib.codec), (unsigned long long)ia.offset,
				(unsigned long long)ib.offset, ia.count, ib.count);
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
				"(summable: none, fp16, bf16, randk shared-seed)", gx_codec_id_name(ia.codec));
	}
	if (inf)
		return gx_error(GX_ERR_NONFINITE, "gx_codec_block_add: a sum overflowed to Inf in %s (block at "
				"offset %llu)", gx_codec_id_name(ia.codec), (unsigned long long)ia.offset);
	return GX_OK;
}
