/* bench_codec.c: `gx-bench codec`: encode / decode / decode-accumulate throughput of each codec on
 * one core, next to a memcpy of the same buffer measured in the same run, as the common CSV.
 * GB/s are of float32 input (bytes = 4 * count).  `wrong` counts elements of a checked round trip
 * that break the codec's per-element guarantee (docs/compress.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "gx_codec.h"
#include "gx_rng.h"
#include "gx_time.h"

#define MAX_CODECS 32
#define MAX_SIZES 16

static const char default_codecs[] = "none;fp16;bf16;int8;qsgd:bits=4,bucket=512;fixed:bits=4;sign;"
				     "topk:ratio=0.01;randk:ratio=0.01;randk:ratio=0.01,shared-seed";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gx-bench codec [--sizes 1M,64M] [--codecs 'a;b;...'] [--iters N] [--payload BYTES]\n"
		"                      [--simd auto|scalar|avx2|avx512]\n"
		"  --sizes    float32 buffer sizes in bytes (K/M/G suffixes), default 1M,64M\n"
		"  --codecs   codec specs separated by ';' (default %s)\n"
		"             valid specs: %s\n"
		"  --iters    timed iterations per measurement (default: 20 below 16 MiB, else 5)\n"
		"  --payload  block size in bytes (default 1432: a 1500-byte MTU packet's payload)\n"
		"  --simd     vector path (default: GX_SIMD, else the best this CPU has)\n"
		"Runs on the calling thread only: 1 core.  Output: CSV (" GX_BENCH_CSV_HEADER ").\n",
		default_codecs, gx_codec_specs());
}

struct opts {
	uint64_t sizes[MAX_SIZES];
	int nsizes;
	char *codecs[MAX_CODECS];
	int ncodecs;
	uint32_t iters;
	size_t payload;
};

static int parse_sizes(const char *arg, struct opts *o)
{
	char buf[256], *save = NULL;
	if (strlen(arg) >= sizeof(buf))
		return -1;
	strcpy(buf, arg);
	o->nsizes = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		if (o->nsizes == MAX_SIZES || bench_parse_size(t, &v) || v < 4 || v % 4 || v > (16ull << 30))
			return -1;
		o->sizes[o->nsizes++] = v;
	}
	return o->nsizes ? 0 : -1;
}

static int parse_codecs(char *arg, struct opts *o)
{
	char *save = NULL;
	o->ncodecs = 0;
	for (char *t = strtok_r(arg, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
		if (o->ncodecs == MAX_CODECS)
			return -1;
		o->codecs[o->ncodecs++] = t;
	}
	return o->ncodecs ? 0 : -1;
}

static double elapsed_us(uint64_t t0)
{
	return (double)(gx_now_ns() - t0) / 1e3;
}

/* op names go into a CSV column: the commas of a canonical spec become '+' */
static void op_name(char *buf, size_t len, const char *what, const struct gx_codec *c)
{
	snprintf(buf, len, "%s:%s", what, gx_codec_name(c));
	for (char *p = buf; *p; p++)
		if (*p == ',')
			*p = '+';
}

static void row(const char *op, uint64_t count, uint32_t iters, double *t, uint64_t wrong)
{
	struct bench_row r = {
		.peer = "gx", .transport = "cpu", .op = op, .nranks = 1, .oversub = 1,
		.bytes = 4 * count, .count = count, .type = "float32", .redop = "none", .iters = iters,
		.wrong = wrong,
	};
	r.min_us = bench_min(t, iters);
	r.p90_us = bench_percentile(t, iters, 90.0);
	r.time_us = bench_median(t, iters);
	r.algbw_GBps = r.time_us > 0 ? (double)r.bytes / (r.time_us * 1e3) : 0.0;
	r.busbw_GBps = r.algbw_GBps;
	if (!strncmp(op, "decacc", 6))
		r.redop = "sum";
	bench_print_row(stdout, &r);
}

/* Per-element check of decode(encode(x)) against the codec's guarantee; returns violations. */
static uint64_t check_round_trip(const struct gx_codec *c, const uint8_t *enc, size_t len, const float *x,
				 const float *y)
{
	uint64_t wrong = 0;
	struct gx_codec_block b;
	enum gx_codec_id id = gx_codec_id(c);

	for (size_t o = 0; o < len; o += b.bytes) {
		if (gx_codec_block_info(enc + o, len - o, &b) < 0)
			return wrong + 1;
		const float *xb = x + b.offset, *yb = y + b.offset;
		uint32_t m = b.count, nz = 0;
		double lo = xb[0], hi = xb[0], l1 = 0.0;
		for (uint32_t i = 0; i < m; i++) {
			lo = xb[i] < lo ? xb[i] : lo;
			hi = xb[i] > hi ? xb[i] : hi;
			l1 += fabs(xb[i]);
		}
		for (uint32_t i = 0; i < m; i++) {
			double xv = xb[i], yv = yb[i], err = fabs(yv - xv), tol;
			switch (id) {
			case GX_CODEC_NONE: tol = 0.0; break;
			case GX_CODEC_FP16: tol = fabs(xv) * 0x1p-11 + 0x1p-25; break;
			case GX_CODEC_BF16: tol = fabs(xv) * 0x1p-8; break;
			case GX_CODEC_INT8: tol = (hi - lo) / 510.0 * (1 + 1e-4) + 1e-6 * fabs(xv) + 1e-30; break;
			case GX_CODEC_SIGN:
				wrong += (xv < 0) != (yv < 0) || fabs(fabs(yv) - l1 / m) > 1e-4 * l1 / m + 1e-30;
				continue;
			case GX_CODEC_QSGD:
			case GX_CODEC_FIXED: {
				uint32_t j0 = i / b.bucket * b.bucket, j1 = j0 + b.bucket < m ? j0 + b.bucket : m;
				double s = 0.0;
				for (uint32_t j = j0; j < j1; j++)
					s = id == GX_CODEC_QSGD ? s + (double)xb[j] * xb[j] : fmax(s, fabs(xb[j]));
				s = id == GX_CODEC_QSGD ? sqrt(s) : s;
				/* one bucket's bound for all its elements */
				for (uint32_t j = j0; j < j1; j++)
					wrong += fabs((double)yb[j] - xb[j]) > s / b.levels * (1 + 1e-4) + 1e-30;
				i = j1 - 1;
				continue;
			}
			case GX_CODEC_TOPK:
				nz += yv != 0.0;
				wrong += yv != 0.0 && yv != xv;
				continue;
			case GX_CODEC_RANDK:
				nz += yv != 0.0;
				wrong += yv != 0.0 && fabs(yv - xv * ((double)m / b.nnz)) > 1e-6 * fabs(yv);
				continue;
			default: tol = 0.0;
			}
			wrong += err > tol;
		}
		if ((id == GX_CODEC_TOPK || id == GX_CODEC_RANDK) && nz > b.nnz)
			wrong += nz - b.nnz;
	}
	return wrong;
}

int bench_codec_main(int argc, char **argv)
{
	struct opts o = { .nsizes = 0, .iters = 0, .payload = 1432 };
	char codecs_buf[1024];
	snprintf(codecs_buf, sizeof(codecs_buf), "%s", default_codecs);
	parse_sizes("1M,64M", &o);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		char name[32];
		const char *eq = strchr(a, '=');
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (strncmp(a, "--", 2) || (eq ? (size_t)(eq - a) : strlen(a)) >= sizeof(name)) {
			fprintf(stderr, "gx-bench codec: unexpected argument '%s'\n", a);
			usage(stderr);
			return 2;
		}
		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
		if (strcmp(name, "--sizes") && strcmp(name, "--codecs") && strcmp(name, "--iters") &&
		    strcmp(name, "--payload") && strcmp(name, "--simd")) {
			fprintf(stderr, "gx-bench codec: unknown flag %s\n", name);
			usage(stderr);
			return 2;
		}
		v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (!v) {
			fprintf(stderr, "gx-bench codec: %s needs a value\n", name);
			return 2;
		}
		int bad = 0;
		if (!strcmp(name, "--sizes")) {
			bad = parse_sizes(v, &o);
		} else if (!strcmp(name, "--codecs")) {
			snprintf(codecs_buf, sizeof(codecs_buf), "%s", v);
			bad = strlen(v) >= sizeof(codecs_buf) - 1;
		} else if (!strcmp(name, "--iters")) {
			char *end;
			unsigned long n = strtoul(v, &end, 10);
			bad = *v == '-' || *end || n < 1 || n > 100000;
			o.iters = (uint32_t)n;
		} else if (!strcmp(name, "--payload")) {
			char *end;
			unsigned long n = strtoul(v, &end, 10);
			bad = *v == '-' || *end || n < 64 || n > GX_CODEC_MAX_PAYLOAD;
			o.payload = n;
		} else if (!strcmp(name, "--simd")) {
			enum gx_simd s = GX_SIMD_AUTO;
			int found = 0;
			for (int k = 0; k <= GX_SIMD_AVX512; k++)
				if (!strcmp(v, gx_simd_name((enum gx_simd)k))) {
					s = (enum gx_simd)k;
					found = 1;
				}
			if (!found || gx_simd_set(s) < 0) {
				fprintf(stderr, "gx-bench codec: --simd %s: %s\n", v,
					found ? gx_last_error() : "use auto, scalar, avx2 or avx512");
				return 2;
			}
		} else {
			fprintf(stderr, "gx-bench codec: unknown flag %s\n", name);
			usage(stderr);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "gx-bench codec: bad value '%s' for %s\n", v, name);
			usage(stderr);
			return 2;
		}
	}
	if (parse_codecs(codecs_buf, &o)) {
		fprintf(stderr, "gx-bench codec: --codecs needs 1 to %d specs separated by ';'\n", MAX_CODECS);
		return 2;
	}

	struct gx_codec *cs[MAX_CODECS] = { 0 };
	int rc = 1;
	uint64_t maxn = 0;
	size_t enc_cap = 0;
	for (int s = 0; s < o.nsizes; s++)
		maxn = o.sizes[s] / 4 > maxn ? o.sizes[s] / 4 : maxn;
	for (int k = 0; k < o.ncodecs; k++) {
		size_t need;
		if (gx_codec_create(o.codecs[k], &cs[k]) < 0) {
			fprintf(stderr, "gx-bench codec: %s\n", gx_last_error());
			rc = 2;
			goto out;
		}
		if (gx_codec_encoded_size(cs[k], maxn, o.payload, &need, NULL) < 0) {
			fprintf(stderr, "gx-bench codec: %s\n", gx_last_error());
			rc = 2;
			goto out;
		}
		enc_cap = need > enc_cap ? need : enc_cap;
	}

	/* allocated once (and touched by bench_alloc), reused by every size and codec */
	float *x = bench_alloc(maxn * 4), *y = bench_alloc(maxn * 4);
	uint8_t *enc = bench_alloc(enc_cap);
	uint32_t max_iters = o.iters ? o.iters : 20;
	double *t = calloc(max_iters, sizeof(double));
	if (!x || !y || !enc || !t) {
		fprintf(stderr, "gx-bench codec: out of memory for %llu-element buffers\n", (unsigned long long)maxn);
		goto free_bufs;
	}
	/* gradient-like data: roughly normal, heavy-ish tails, no exact zeros */
	uint64_t key = gx_rng_key(42, 0, 0, 0);
	for (uint64_t i = 0; i < maxn; i++) {
		float u = 0.0f;
		for (int j = 0; j < 4; j++)
			u += gx_rng_uniform(key, (uint32_t)(4 * i + j));
		x[i] = (u - 2.0f) * 1e-3f + 1e-9f;
	}

	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	fprintf(stderr, "# gx-bench codec: 1 thread (1 core of %ld online), simd=%s, payload=%zu bytes\n", cores,
		gx_simd_name(gx_simd_active()), o.payload);
	bench_print_header(stdout);
	const struct gx_codec_ctx ctx = { .seed = 1, .step = 1, .rank = 0 };
	for (int s = 0; s < o.nsizes; s++) {
		uint64_t n = o.sizes[s] / 4;
		uint32_t iters = o.iters ? o.iters : (o.sizes[s] < (16u << 20) ? 20 : 5);
		char op[96];

		memcpy(y, x, n * 4);
		for (uint32_t it = 0; it < iters; it++) {
			uint64_t t0 = gx_now_ns();
			memcpy(y, x, n * 4);
			t[it] = elapsed_us(t0);
		}
		row("memcpy", n, iters, t, memcmp(x, y, n * 4) != 0);

		for (int k = 0; k < o.ncodecs; k++) {
			struct gx_codec *c = cs[k];
			size_t len = 0;
			if (gx_codec_encode(c, &ctx, x, n, 0, o.payload, enc, enc_cap, &len) < 0 ||
			    gx_codec_decode_all(c, enc, len, y, n, 0) < 0) {
				fprintf(stderr, "gx-bench codec: %s: %s\n", gx_codec_name(c), gx_last_error());
				goto free_bufs;
			}
			uint64_t wrong = check_round_trip(c, enc, len, x, y);

			for (uint32_t it = 0; it < iters; it++) {
				uint64_t t0 = gx_now_ns();
				gx_codec_encode(c, &ctx, x, n, 0, o.payload, enc, enc_cap, &len);
				t[it] = elapsed_us(t0);
			}
			op_name(op, sizeof(op), "encode", c);
			row(op, n, iters, t, wrong);
			for (uint32_t it = 0; it < iters; it++) {
				uint64_t t0 = gx_now_ns();
				gx_codec_decode_all(c, enc, len, y, n, 0);
				t[it] = elapsed_us(t0);
			}
			op_name(op, sizeof(op), "decode", c);
			row(op, n, iters, t, wrong);
			for (uint32_t it = 0; it < iters; it++) {
				uint64_t t0 = gx_now_ns();
				gx_codec_decode_all(c, enc, len, y, n, 1);
				t[it] = elapsed_us(t0);
			}
			op_name(op, sizeof(op), "decacc", c);
			row(op, n, iters, t, wrong);
		}
	}
	rc = 0;
free_bufs:
	free(t);
	bench_free(enc, enc_cap);
	bench_free(y, maxn * 4);
	bench_free(x, maxn * 4);
out:
	for (int k = 0; k < o.ncodecs; k++)
		gx_codec_destroy(cs[k]);
	return rc;
}
