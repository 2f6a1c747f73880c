/* gx_codec.h: gradient codecs (compressors) and error feedback.
 *
 * A codec turns a float32 array (or a sub-range of a bigger one) into self-describing BLOCKS, each at
 * most `payload` bytes (one packet payload, e.g. 1432 or 8952).  Every block carries its own header
 * (codec, parameters, element offset, element count, byte length) and its own scales or indices, so
 * any block decodes alone, in any order, into the full array at its offset.  The blocks of one
 * encode call tile the encoded range [offset, offset + n) exactly, in increasing offset order.
 *
 * Spec strings (gx_codec_create; docs/compress.md has the math and wire formats):
 *   none                       float32 as is (lossless)
 *   fp16, bf16                 round to nearest even; summable without decoding
 *   int8                       min-max uint8, one (min, max) per block, deterministic
 *   qsgd[:bits=B|s=S][,bucket=N]  QSGD, s levels, one L2 norm per bucket, stochastic, unbiased
 *                              (bits = field width incl. sign, s = 2^(bits-1)-1; default bits=4, bucket=512)
 *   fixed[:bits=2|4|8][,bucket=N] stochastic b-bit fixed point, one max|v| per bucket, unbiased (default 8, 512)
 *   sign                       scaled sign: (|p|_1 / m) * sign(p) per block of m elements, 1 bit/element
 *   topk:ratio=R               the k = ceil(R*n) largest |v_i| of the range, (index, value) pairs; ties: lower index
 *   randk:ratio=R[,shared-seed]  k_b = ceil(R*m) of each block's m elements chosen uniformly, values scaled by m/k_b
 *                              (unbiased); shared-seed: indices implicit, identical on every rank, summable
 *
 * Randomness: stochastic codecs draw from base/gx_rng.h keyed by (ctx seed, ctx rank, ctx step,
 * block), where the block is identified by its element offset, so results are bit-identical on every
 * machine and vector path and do not depend on how a buffer was split into encode calls.
 * Shared-seed randk uses rank GX_RNG_SHARED and stores its 64-bit stream key in the block.
 *
 * NaN/Inf policy: encoders reject non-finite input with GX_ERR_NONFINITE naming the first bad index
 * (a diverging run is caught, never spread); values that would overflow the target format (fp16
 * beyond 65504, block ranges or norms beyond FLT_MAX) are rejected the same way.  Decoders reject
 * blocks whose scales or values are non-finite as GX_ERR_CORRUPT, before writing anything.
 *
 * Errors: every function returns a gx_status_t (<0 error, message in gx_last_error()): GX_ERR_INVAL
 * for bad arguments or specs, GX_ERR_NOSPC for an output buffer too small, GX_ERR_CORRUPT for a
 * truncated, foreign or malformed block (checked before anything is written; never an out-of-bounds
 * access).  Zero-length input is valid and encodes to zero blocks.
 *
 * Threads: a codec object holds scratch memory for encoding, so use one codec (and one gx_ef) per
 * thread for encode; decode, decode-accumulate and block_add are thread-safe and take no codec state.
 *
 * SIMD: kernels are chosen at run time (scalar, AVX2+F16C, AVX-512) from the CPU, overridden by the
 * environment variable GX_SIMD=scalar|avx2|avx512 or gx_simd_set(); all paths give bit-identical
 * output (fixed-order reductions, integer RNG, no FMA contraction).
 */
#ifndef GX_CODEC_H
#define GX_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "gx_api.h"
#include "gx_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Codec ids: the `codec` byte of a block header and of a packet's struct gx_desc (gx_net.h).
 * 0 is reserved there for raw float32 without a block header; codec blocks never use it. */
enum gx_codec_id {
	GX_CODEC_NONE = 1,
	GX_CODEC_FP16 = 2,
	GX_CODEC_BF16 = 3,
	GX_CODEC_INT8 = 4,
	GX_CODEC_QSGD = 5,
	GX_CODEC_FIXED = 6,
	GX_CODEC_SIGN = 7,
	GX_CODEC_TOPK = 8,
	GX_CODEC_RANDK = 9,
	GX_CODEC_ID_MAX = 9,
};

/* Properties (gx_codec_props), what a collective needs to pick an algorithm. */
enum gx_codec_prop {
	GX_CODEC_LOSSLESS = 1u << 0,     /* decode(encode(x)) == x bit for bit */
	GX_CODEC_UNBIASED = 1u << 1,     /* E[decode(encode(x))] == x */
	GX_CODEC_CONTRACTION = 1u << 2,  /* |C(x) - x|^2 <= (1 - delta)|x|^2 for some delta > 0: fine with EF */
	GX_CODEC_SUMMABLE = 1u << 3,     /* two encodings of the same layout add without decoding (gx_codec_block_add) */
	GX_CODEC_STOCHASTIC = 1u << 4,   /* output depends on the gx_codec_ctx (seed, rank, step) */
	GX_CODEC_SPARSE = 1u << 5,       /* blocks cover variable ranges (topk) or hold a subset (randk) */
};

/* Bytes of the fixed block header (layout in docs/compress.md): magic, codec, bits, flags,
 * levels(u16), bucket(u16), bytes(u32), count(u32), offset(u64), little-endian. */
#define GX_CODEC_HDR_BYTES 24u
/* Largest payload (block size) accepted; smallest useful one is a few dozen bytes. */
#define GX_CODEC_MAX_PAYLOAD (1u << 20)

struct gx_codec;

/* Randomness context of one encode: same (seed, step) on every rank of a step; rank is the
 * caller's rank (shared-seed randk replaces it with GX_RNG_SHARED itself). */
struct gx_codec_ctx {
	uint64_t seed;
	uint64_t step;
	uint32_t rank;
};

/* What a block header says (gx_codec_block_info). */
struct gx_codec_block {
	uint8_t codec;            /* enum gx_codec_id */
	uint8_t bits;             /* qsgd/fixed: bits per element; else 0 */
	uint8_t flags;            /* GX_CODEC_F_* */
	uint16_t levels;          /* qsgd: s; fixed: 2^(bits-1)-1; else 0 */
	uint16_t bucket;          /* qsgd/fixed: elements per bucket; else 0 */
	uint32_t bytes;           /* whole block, header included */
	uint32_t count;           /* elements covered: [offset, offset + count) of the full array */
	uint32_t nnz;             /* topk/randk: entries stored; else count */
	uint64_t offset;          /* element offset in the full array */
};
#define GX_CODEC_F_SHARED 1u      /* randk shared-seed: indices implicit, key stored in the block */

/* ---- codec objects ---------------------------------------------------------------------- */

/* Parse `spec` and create a codec.  Unknown or malformed spec: GX_ERR_INVAL with a message
 * listing what is valid (gx_codec_specs()). */
GX_API gx_status_t gx_codec_create(const char *spec, struct gx_codec **out);
GX_API void gx_codec_destroy(struct gx_codec *c);
/* Canonical spec with every parameter, e.g. "qsgd:bits=4,bucket=512"; parses back to the same codec. */
GX_API const char *gx_codec_name(const struct gx_codec *c);
GX_API enum gx_codec_id gx_codec_id(const struct gx_codec *c);
GX_API unsigned gx_codec_props(const struct gx_codec *c);   /* enum gx_codec_prop bits */
/* Human-readable list of valid specs (for error messages and --help). */
GX_API const char *gx_codec_specs(void);

/* ---- sizes (exact, data independent) ---------------------------------------------------- */

/* Elements one full block covers for this payload (dense codecs and randk); for topk the most
 * (index, value) pairs one block holds.  0 when the payload cannot hold a useful block. */
GX_API size_t gx_codec_block_elems(const struct gx_codec *c, size_t payload);
/* Exact bytes and number of blocks of encoding n elements with this payload (for a dense codec or
 * randk and n <= gx_codec_block_elems: the bytes of that one block). */
GX_API gx_status_t gx_codec_encoded_size(const struct gx_codec *c, size_t n, size_t payload,
				  size_t *bytes, size_t *nblocks);

/* ---- encode / decode -------------------------------------------------------------------- */

/* Encode src[0..n) as elements [offset, offset + n) of a full array into blocks of at most
 * `payload` bytes, written back to back into dst (capacity dst_cap).  *out_len = bytes written
 * (== gx_codec_encoded_size).  ctx may be NULL for deterministic codecs (seed 0, step 0, rank 0). */
GX_API gx_status_t gx_codec_encode(struct gx_codec *c, const struct gx_codec_ctx *ctx, const float *src,
			    size_t n, uint64_t offset, size_t payload, void *dst, size_t dst_cap,
			    size_t *out_len);

/* Validate the block at blk (len bytes available) and describe it.  Walk an encoding with
 *   for (size_t o = 0; o < len; o += b.bytes) { gx_codec_block_info(p + o, len - o, &b); ... }  */
GX_API gx_status_t gx_codec_block_info(const void *blk, size_t len, struct gx_codec_block *info);

/* Decode one block into dst, the full array of dst_n elements: writes dst[offset .. offset+count)
 * (zeros where a sparse block holds nothing).  `c` may be NULL to accept any codec; else a block of
 * another codec or other parameters is GX_ERR_CORRUPT.  *used (may be NULL) = the block's bytes. */
GX_API gx_status_t gx_codec_decode(const struct gx_codec *c, const void *blk, size_t len, float *dst,
			    size_t dst_n, size_t *used);
/* Decode-accumulate: dst[offset + i] += decoded value i (sparse blocks touch only their entries).
 * The reduction operation; same validation as gx_codec_decode. */
GX_API gx_status_t gx_codec_decacc(const struct gx_codec *c, const void *blk, size_t len, float *dst,
			    size_t dst_n, size_t *used);
/* Decode or decode-accumulate every block of a back-to-back encoding of len bytes. */
GX_API gx_status_t gx_codec_decode_all(const struct gx_codec *c, const void *buf, size_t len, float *dst,
				size_t dst_n, int accumulate);

/* Summable codecs (GX_CODEC_SUMMABLE: none, fp16, bf16, randk shared-seed): a += b in the
 * compressed domain.  Both blocks must have the same codec, offset and count (and randk key);
 * fp16/bf16 add in float32 and round to nearest even (correctly rounded: float32 has 2p+2 bits),
 * randk adds values at identical implicit indices.  GX_ERR_NONFINITE if a sum overflows (result
 * still written, as IEEE would give Inf). */
GX_API gx_status_t gx_codec_block_add(void *a, size_t a_len, const void *b, size_t b_len);

/* ---- error feedback ---------------------------------------------------------------------- */

/* Error feedback around any codec, for one buffer of n elements: keeps the residual e (starts 0).
 * gx_ef_encode: p = g + e (float32); blocks = C(p); e = p - decode(blocks).  Then
 * sent + e == p holds exactly whenever p - sent is representable (always for none, topk, randk
 * entries and fp16/bf16/int8/qsgd/fixed values within a factor 2 of p (Sterbenz)); otherwise it is
 * off by at most half an ulp of e.  The invariant of docs/algorithms.md §3.2: sum of sent + e_t ==
 * sum of g within float rounding.  The codec object is borrowed and must outlive the gx_ef. */
struct gx_ef;
GX_API gx_status_t gx_ef_create(struct gx_codec *c, size_t n, struct gx_ef **out);
GX_API void gx_ef_destroy(struct gx_ef *ef);
GX_API void gx_ef_reset(struct gx_ef *ef);                 /* e = 0 */
GX_API float *gx_ef_residual(struct gx_ef *ef);            /* the n residual floats (read or set) */
GX_API size_t gx_ef_size(const struct gx_ef *ef);
/* Encode g[0..n) + e as elements [offset, offset + n) (like gx_codec_encode) and update e.
 * If sent is not NULL it receives decode(blocks), the n values the peers will see. */
GX_API gx_status_t gx_ef_encode(struct gx_ef *ef, const struct gx_codec_ctx *ctx, const float *g,
			 uint64_t offset, size_t payload, void *dst, size_t dst_cap, size_t *out_len,
			 float *sent);

/* ---- SIMD selection ---------------------------------------------------------------------- */

enum gx_simd {
	GX_SIMD_AUTO = 0,         /* best the CPU has, unless GX_SIMD says otherwise */
	GX_SIMD_SCALAR = 1,
	GX_SIMD_AVX2 = 2,         /* AVX2 + F16C */
	GX_SIMD_AVX512 = 3,       /* AVX-512 F + BW + VL */
};
/* Force a path for the whole process (GX_ERR_NOTSUP if this CPU cannot run it). */
GX_API gx_status_t gx_simd_set(enum gx_simd s);
GX_API enum gx_simd gx_simd_active(void);
GX_API int gx_simd_supported(enum gx_simd s);              /* 1 if the CPU (and build) can run it */
GX_API const char *gx_simd_name(enum gx_simd s);           /* "scalar", "avx2", "avx512", "auto" */

#ifdef __cplusplus
}
#endif

#endif
