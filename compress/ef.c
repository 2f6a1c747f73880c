/* ef.c: error feedback around any codec (docs/algorithms.md §2a(4), §2b, §3.2).
 * p = g + e; blocks = C(p); e = p - decode(blocks).  e is only updated when the encode succeeds.
 *
 * Codecs whose blocks are encoded independently (all but top-k, which ranks the whole vector) run a
 * chunk of blocks at a time, ~64 KiB of floats: p and decode(blocks) of a chunk stay in cache, so the
 * gradient and the residual are each read once and the new residual written once, instead of five
 * more passes over memory for p and the decoded values.  The new residual goes to a second array
 * that becomes e only when every chunk encoded. */
#include <stdlib.h>
#include <string.h>

#include "codec_priv.h"

struct gx_ef {
	struct gx_codec *c;
	size_t n;
	float *e;                 /* residual */
	float *p;                 /* top-k: g + e of the step being encoded; else the next residual */
	float *pc, *dc;           /* one chunk of p and of the decoded values */
};

#define EF_CHUNK_FLOATS 16384u

gx_status_t gx_ef_create(struct gx_codec *c, size_t n, struct gx_ef **out)
{
	if (!out)
		return gx_error(GX_ERR_INVAL, "gx_ef_create: out is NULL");
	*out = NULL;
	if (!c)
		return gx_error(GX_ERR_INVAL, "gx_ef_create: codec is NULL");
	struct gx_ef *ef = calloc(1, sizeof(*ef));
	if (!ef)
		goto nomem;
	ef->c = c;
	ef->n = n;
	ef->e = calloc(n ? n : 1, sizeof(float));
	ef->p = calloc(n ? n : 1, sizeof(float));
	ef->pc = malloc(sizeof(float) * EF_CHUNK_FLOATS * 2);
	ef->dc = ef->pc ? ef->pc + EF_CHUNK_FLOATS : NULL;
	if (!ef->e || !ef->p || !ef->pc)
		goto nomem_ef;
	*out = ef;
	return GX_OK;
nomem_ef:
	free(ef->pc);
	free(ef->p);
	free(ef->e);
	free(ef);
nomem:
	return gx_error(GX_ERR_NOMEM, "gx_ef_create: out of memory for %zu elements", n);
}

void gx_ef_destroy(struct gx_ef *ef)
{
	if (!ef)
		return;
	free(ef->e);
	free(ef->p);
	free(ef->pc);
	free(ef);
}

void gx_ef_reset(struct gx_ef *ef)
{
	if (ef)
		memset(ef->e, 0, ef->n * sizeof(float));
}

float *gx_ef_residual(struct gx_ef *ef)
{
	return ef ? ef->e : NULL;
}

size_t gx_ef_size(const struct gx_ef *ef)
{
	return ef ? ef->n : 0;
}

static gx_status_t ef_encode_chunked(struct gx_ef *ef, const struct gx_codec_ctx *ctx, const float *g,
				     uint64_t offset, size_t payload, size_t per, void *dst, size_t dst_cap,
				     size_t *out_len, float *sent)
{
	size_t n = ef->n, chunk = EF_CHUNK_FLOATS / per * per, total = 0;
	const float *restrict e = ef->e;
	float *restrict enew = ef->p, *restrict pc = ef->pc;
	uint8_t *out = dst;
	gx_status_t st;

	for (size_t i = 0; i < n; i += chunk) {
		size_t m = n - i < chunk ? n - i : chunk, len;
		float *restrict dc = sent ? sent + i : ef->dc;
		for (size_t j = 0; j < m; j++)
			pc[j] = g[i + j] + e[i + j];
		if ((st = gx_codec_encode(ef->c, ctx, pc, m, offset + i, payload, out + total, dst_cap - total,
					  &len)) < 0)
			return st;
		if ((st = gx_decode_all_base(ef->c, out + total, len, dc, m, offset + i, 0)) < 0)
			return st;
		for (size_t j = 0; j < m; j++)
			enew[i + j] = pc[j] - dc[j];
		total += len;
	}
	ef->p = ef->e;                    /* every chunk encoded: the new residual is e */
	ef->e = enew;
	*out_len = total;
	return GX_OK;
}

gx_status_t gx_ef_encode(struct gx_ef *ef, const struct gx_codec_ctx *ctx, const float *g, uint64_t offset,
			 size_t payload, void *dst, size_t dst_cap, size_t *out_len, float *sent)
{
	if (!ef || !out_len)
		return gx_error(GX_ERR_INVAL, "gx_ef_encode: %s is NULL", ef ? "out_len" : "ef");
	*out_len = 0;
	if (ef->n && !g)
		return gx_error(GX_ERR_INVAL, "gx_ef_encode: g is NULL");
	size_t n = ef->n;
	size_t per = gx_codec_block_elems(ef->c, payload);
	if (ef->c->id != GX_CODEC_TOPK && per && per <= EF_CHUNK_FLOATS && n > per)
		return ef_encode_chunked(ef, ctx, g, offset, payload, per, dst, dst_cap, out_len, sent);
	float *restrict p = ef->p, *restrict e = ef->e;
	for (size_t i = 0; i < n; i++)
		p[i] = g[i] + e[i];
	size_t len;
	gx_status_t st = gx_codec_encode(ef->c, ctx, p, n, offset, payload, dst, dst_cap, &len);
	if (st < 0)
		return st;
	float *d = sent ? sent : e;
	st = gx_decode_all_base(ef->c, dst, len, d, n, offset, 0);
	if (st < 0)
		return st;
	for (size_t i = 0; i < n; i++)
		e[i] = p[i] - d[i];
	*out_len = len;
	return GX_OK;
}
