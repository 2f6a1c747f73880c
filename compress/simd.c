/* simd.c: which kernel table runs: GX_SIMD=scalar|avx2|avx512|auto, gx_simd_set(), else the best the
 * CPU has (cpuid through __builtin_cpu_supports, which also checks that the OS saves the registers).
 * Both vector tables need AES-NI too: the stochastic quantizer draws ARS-5 blocks with aesenc. */
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "codec_internal.h"
#include "codec_priv.h"
#include "compress_options.h"

static _Atomic(const struct gx_kern *) active;
static _Atomic int env_status = 1;   /* 1: not read yet */

static const char *names[] = { "auto", "scalar", "avx2", "avx512" };

struct simd_setting {
	int simd;                 /* enum gx_simd */
};

static const struct gx_option compress_opts[] = {
	{ "simd", GX_OPT_ENUM, offsetof(struct simd_setting, simd), "auto",
	  "codec kernels: auto (the best this CPU has), scalar, avx2, avx512", "auto,scalar,avx2,avx512", NULL },
};

const struct gx_option_table gx_compress_option_table = {
	"compress", compress_opts, 1, sizeof(struct simd_setting)
};

gx_status_t gx_simd_parse(const char *v, const char *origin, enum gx_simd *out)
{
	struct simd_setting set;
	gx_status_t st;

	if ((st = gx_option_set(&compress_opts[0], &set, v, origin)) < 0)
		return st;
	if (!gx_simd_supported((enum gx_simd)set.simd))
		return gx_error(GX_ERR_NOTSUP, "%s=%s but this CPU cannot run it: choose %s", origin, v,
				gx_simd_supported(GX_SIMD_AVX2) ? "auto, avx2 or scalar" : "auto or scalar");
	*out = (enum gx_simd)set.simd;
	return GX_OK;
}

const char *gx_simd_name(enum gx_simd s)
{
	return (unsigned)s < 4 ? names[s] : "unknown";
}

int gx_simd_supported(enum gx_simd s)
{
	switch (s) {
	case GX_SIMD_AUTO:
	case GX_SIMD_SCALAR:
		return 1;
#if defined(__x86_64__)
	case GX_SIMD_AVX2:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("aes");
	case GX_SIMD_AVX512:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c") &&
		       __builtin_cpu_supports("aes");
#endif
	default:
		return 0;
	}
}

static const struct gx_kern *table(enum gx_simd s)
{
	if (s == GX_SIMD_AUTO)
		s = gx_simd_supported(GX_SIMD_AVX512) ? GX_SIMD_AVX512
		    : gx_simd_supported(GX_SIMD_AVX2) ? GX_SIMD_AVX2 : GX_SIMD_SCALAR;
	return s == GX_SIMD_AVX512 ? &gx_kern_avx512 : s == GX_SIMD_AVX2 ? &gx_kern_avx2 : &gx_kern_scalar;
}

/* Read GX_SIMD once; a bad or unsupported value falls back to auto and is reported by
 * gx_codec_create (gx_simd_env_status). */
static void read_env(void)
{
	char env[32];
	enum gx_simd s = GX_SIMD_AUTO;
	gx_status_t st = GX_OK;

	gx_option_env_name(compress_opts[0].name, env, sizeof(env));
	const char *v = getenv(env);
	if (v && *v && (st = gx_simd_parse(v, env, &s)) < 0)
		s = GX_SIMD_AUTO;
	const struct gx_kern *expect = NULL;
	atomic_compare_exchange_strong(&active, &expect, table(s));
	atomic_store(&env_status, st);
}

gx_status_t gx_simd_env_status(void)
{
	if (atomic_load(&env_status) == 1)
		read_env();
	gx_status_t st = atomic_load(&env_status);
	if (st < 0)   /* re-record the message on this thread */
		read_env();
	return atomic_load(&env_status);
}

const struct gx_kern *gx_kern(void)
{
	const struct gx_kern *k = atomic_load_explicit(&active, memory_order_acquire);
	if (k)
		return k;
	read_env();
	return atomic_load(&active);
}

gx_status_t gx_simd_set(enum gx_simd s)
{
	if ((unsigned)s > GX_SIMD_AVX512)
		return gx_error(GX_ERR_INVAL, "gx_simd_set: unknown path %d", (int)s);
	if (!gx_simd_supported(s))
		return gx_error(GX_ERR_NOTSUP, "gx_simd_set: this CPU cannot run the %s kernels", names[s]);
	atomic_store(&active, table(s));
	return GX_OK;
}

enum gx_simd gx_simd_active(void)
{
	const struct gx_kern *k = gx_kern();
	return k == &gx_kern_avx512 ? GX_SIMD_AVX512 : k == &gx_kern_avx2 ? GX_SIMD_AVX2 : GX_SIMD_SCALAR;
}
