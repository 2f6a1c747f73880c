/* ef.c: error feedback around any codec (docs/algorithms.md §2a(4), §2b, §3.2).
 * p = g + e; blocks = C(p); e = p - decode(blocks).  e is only updated when the encode succeeds. */
#include <stdlib.h>
#include <string.h>

#include "codec_priv.h"

struct gx_ef {
	struct gx_codec *c;
	size_t n;
	float *e;                 /* residual */
	float *p;                 /* g + e of the step being encoded */
};

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
	if (!ef->e || !ef->p)
		goto nomem_ef;
	*out = ef;
	return GX_OK;
nomem_ef:
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

gx_status_t gx_ef_encode(struct gx_ef *ef, const struct gx_codec_ctx *ctx, const float *g, uint64_t offset,
			 size_t payload, void *dst, size_t dst_cap, size_t *out_len, float *sent)
{
	if (!ef || !out_len)
		return gx_error(GX_ERR_INVAL, "gx_ef_encode: %s is NULL", ef ? "out_len" : "ef");
	*out_len = 0;
	if (ef->n && !g)
		return gx_error(GX_ERR_INVAL, "gx_ef_encode: g is NULL");
	size_t n = ef->n;
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
