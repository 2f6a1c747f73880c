/* compress_options.h: compress/'s settings table (the codec kernels), for runtime/'s flag and
 * environment parser and --help (not installed). */
#ifndef GX_COMPRESS_OPTIONS_H
#define GX_COMPRESS_OPTIONS_H

#include "gx_codec.h"
#include "gx_option.h"

/* simd: auto|scalar|avx2|avx512 (GX_SIMD, --simd). */
extern const struct gx_option_table gx_compress_option_table;

/* Parse a kernel name; GX_ERR_INVAL (unknown) or GX_ERR_NOTSUP (this CPU cannot run it), naming
 * `origin` ("--simd", "GX_SIMD"). */
gx_status_t gx_simd_parse(const char *value, const char *origin, enum gx_simd *out);

/* GX_SIMD from the environment: GX_OK, or an error naming the bad value. */
gx_status_t gx_simd_env_status(void);

#endif
