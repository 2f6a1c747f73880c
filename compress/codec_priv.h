/* codec_priv.h: the codec object, and the internal functions compress/'s files share, grouped by the
 * file that defines them.  Files call only files below them here (no call cycles):
 *   ef.c (error feedback)           -> encode.c, decode.c
 *   encode.c (gx_codec_encode)      -> block.c, codec.c, simd.c
 *   decode.c (gx_codec_decode...)   -> block.c, simd.c
 *   block.c (block format)          -> codec.c, simd.c
 *   codec.c (codec object, sizes)   -> simd.c
 *   simd.c (kernel dispatch)        -> kern_scalar.c, kern_avx2.c, kern_avx512.c (the kernel tables,
 *                                      codec_internal.h); kern_avx512.c -> kern_avx2.c -> kern_scalar.c
 */
#ifndef GX_CODEC_PRIV_H
#define GX_CODEC_PRIV_H

#include <stdint.h>

#include "gx_codec.h"

struct gx_codec {
	enum gx_codec_id id;
	unsigned props;
	uint32_t bits;            /* qsgd/fixed: bits per element */
	uint32_t levels;          /* qsgd: s; fixed: 2^(bits-1)-1 */
	uint32_t bucket;          /* qsgd/fixed */
	double ratio;             /* topk/randk */
	int shared;               /* randk shared-seed */
	char name[64];
	/* encode scratch (topk), grown on demand */
	uint32_t *cand;
	size_t cand_cap;
	uint64_t *keys;
	size_t keys_cap;
	uint32_t *hist;           /* 65536 bins */
};

/* ---- codec.c ---------------------------------------------------------------------------- */

/* k of a ratio for m elements: min(m, max(1, ceil(ratio * m))), 0 for m = 0. */
uint64_t gx_codec_k(double ratio, uint64_t m);
/* Bytes of a block covering m elements (dense codecs, randk); topk: m = entries. */
uint64_t gx_codec_block_bytes(const struct gx_codec *c, uint64_t m);
/* qsgd field width of s levels: sign + ceil(log2(s + 1)) bits. */
uint32_t gx_codec_bits_for_levels(uint32_t s);
/* Spec name of a codec id ("qsgd"); "unknown" outside 1..GX_CODEC_ID_MAX. */
const char *gx_codec_id_name(unsigned id);

/* ---- block.c ---------------------------------------------------------------------------- */

/* Write the block header at p: c's id and parameters, the block's bytes, count and offset. */
void gx_block_hdr_write(uint8_t *p, const struct gx_codec *c, uint32_t bytes, uint32_t count, uint64_t offset);
/* Validate a block's header and length (c: expected codec or NULL). */
gx_status_t gx_block_parse(const void *blk, size_t len, const struct gx_codec *c, struct gx_codec_block *b);
/* Validate a parsed block's payload (finite values and scales, codes and indices in range). */
gx_status_t gx_block_check_body(const struct gx_codec_block *b, const uint8_t *p);

/* ---- decode.c --------------------------------------------------------------------------- */

/* Decode every block of buf into dst, whose element 0 is element `base` of the full array. */
gx_status_t gx_decode_all_base(const struct gx_codec *c, const void *buf, size_t len, float *dst,
			       size_t dst_n, uint64_t base, int acc);

#endif
