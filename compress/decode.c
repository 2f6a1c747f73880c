/* decode.c: decode and decode-accumulate blocks (gx_codec_decode, gx_codec_decacc,
 * gx_codec_decode_all, gx_decode_all_base): every block is parsed and validated by block.c before
 * anything is written.  Calls block.c and simd.c (kernel table). */
#include <string.h>

#include "codec_internal.h"
#include "codec_priv.h"
#include "kern_lanes.h"

/* ---- decode ------------------------------------------------------------------------------ */

static void dec_body(const struct gx_kern *k, const struct gx_codec_block *b, const uint8_t *p, float *out,
		     int acc)
{
	uint32_t m = b->count;

	switch (b->codec) {
	case GX_CODEC_NONE: k->dec_f32(p, m, out, acc); return;
	case GX_CODEC_FP16: k->dec_f16(p, m, out, acc); return;
	case GX_CODEC_BF16: k->dec_bf16(p, m, out, acc); return;
	case GX_CODEC_INT8: {
		float mn = gx_ldf(p), mx = gx_ldf(p + 4);
		k->dec_u8(p + 8, m, mn, (mx - mn) / 255.0f, out, acc);
		return;
	}
	case GX_CODEC_SIGN: k->dec_sign(p + 4, m, gx_ldf(p), out, acc); return;
	case GX_CODEC_QSGD:
	case GX_CODEC_FIXED: {
		uint32_t B = b->bucket, nb = (m + B - 1) / B, w = b->bits;
		int ob = b->codec == GX_CODEC_FIXED;
		const uint8_t *codes = p + 4 * (size_t)nb;
		for (uint32_t j = 0; j < nb; j++) {
			uint32_t mb = j + 1 < nb ? B : m - j * B;
			float step = gx_ldf(p + 4 * (size_t)j) / (float)b->levels;
			if (w == 2 || w == 4 || w == 8)
				k->dec_sq(codes, mb, w, b->levels, ob, step, out + (size_t)j * B, acc);
			else
				gx_sq_decode_generic(codes, mb, w, b->levels, ob, step, out + (size_t)j * B, acc);
			codes += ((size_t)mb * w + 7) / 8;
		}
		return;
	}
	case GX_CODEC_TOPK:
	case GX_CODEC_RANDK:
		if (!acc)
			memset(out, 0, (size_t)m * sizeof(float));
		if (b->flags & GX_CODEC_F_SHARED) {
			uint64_t key;
			uint32_t n = 0;
			memcpy(&key, p, 8);
			const uint8_t *val = p + 8;
#define EMIT_DEC(i) (out[i] += gx_ldf(val + 4 * (size_t)n++))
			RANDK_WALK(k, key, m, b->nnz, EMIT_DEC);
		} else {
			const uint8_t *val = p + 4 * (size_t)b->nnz;
			for (uint32_t e = 0; e < b->nnz; e++)
				out[gx_ld32(p + 4 * (size_t)e)] += gx_ldf(val + 4 * (size_t)e);
		}
		return;
	}
}

static gx_status_t decode_one(const struct gx_codec *c, const void *blk, size_t len, float *dst, size_t dst_n,
			      uint64_t base, int acc, size_t *used)
{
	struct gx_codec_block b;
	gx_status_t st;

	if (used)
		*used = 0;
	if (!dst && dst_n)
		return gx_error(GX_ERR_INVAL, "codec decode: dst is NULL");
	if ((st = gx_block_parse(blk, len, c, &b)) < 0)
		return st;
	if (b.offset < base || b.offset - base > dst_n || b.count > dst_n - (b.offset - base))
		return gx_error(GX_ERR_CORRUPT, "codec block rejected: it covers elements [%llu, %llu), outside the "
				"destination [%llu, %llu)", (unsigned long long)b.offset,
				(unsigned long long)(b.offset + b.count), (unsigned long long)base,
				(unsigned long long)(base + dst_n));
	const uint8_t *p = (const uint8_t *)blk + GX_CODEC_HDR_BYTES;
	if ((st = gx_block_check_body(&b, p)) < 0)
		return st;
	dec_body(gx_kern(), &b, p, dst + (b.offset - base), acc);
	if (used)
		*used = b.bytes;
	return GX_OK;
}

gx_status_t gx_codec_decode(const struct gx_codec *c, const void *blk, size_t len, float *dst, size_t dst_n,
			    size_t *used)
{
	return decode_one(c, blk, len, dst, dst_n, 0, 0, used);
}

gx_status_t gx_codec_decacc(const struct gx_codec *c, const void *blk, size_t len, float *dst, size_t dst_n,
			    size_t *used)
{
	return decode_one(c, blk, len, dst, dst_n, 0, 1, used);
}

gx_status_t gx_decode_all_base(const struct gx_codec *c, const void *buf, size_t len, float *dst, size_t dst_n,
			       uint64_t base, int acc)
{
	const uint8_t *p = buf;
	size_t used;

	if (!buf && len)
		return gx_error(GX_ERR_INVAL, "codec decode: buffer is NULL");
	for (size_t o = 0; o < len; o += used) {
		gx_status_t st = decode_one(c, p + o, len - o, dst, dst_n, base, acc, &used);
		if (st < 0)
			return st;
	}
	return GX_OK;
}

gx_status_t gx_codec_decode_all(const struct gx_codec *c, const void *buf, size_t len, float *dst, size_t dst_n,
				int accumulate)
{
	return gx_decode_all_base(c, buf, len, dst, dst_n, 0, accumulate);
}
