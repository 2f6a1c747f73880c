/* codec_priv.h: the codec object and the helpers shared by codec.c, encode.c, ef.c and simd.c. */
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

/* k of a ratio for m elements: min(m, max(1, ceil(ratio * m))), 0 for m = 0. */
uint64_t gx_codec_k(double ratio, uint64_t m);
/* Bytes of a block covering m elements (dense codecs, randk); topk: m = entries. */
uint64_t gx_codec_block_bytes(const struct gx_codec *c, uint64_t m);
void gx_hdr_write(uint8_t *p, const struct gx_codec *c, uint32_t bytes, uint32_t count, uint64_t offset);
/* Validate a block's header and length (c: expected codec or NULL). */
gx_status_t gx_block_parse(const void *blk, size_t len, const struct gx_codec *c, struct gx_codec_block *b);
/* Validate a parsed block's payload (finite values and scales, codes and indices in range). */
gx_status_t gx_block_check_body(const struct gx_codec_block *b, const uint8_t *p);
/* Decode every block of buf into dst, whose element 0 is element `base` of the full array. */
gx_status_t gx_decode_all_base(const struct gx_codec *c, const void *buf, size_t len, float *dst,
			       size_t dst_n, uint64_t base, int acc);
/* GX_SIMD from the environment: GX_OK, or an error naming the bad value. */
gx_status_t gx_simd_env_status(void);

#endif
