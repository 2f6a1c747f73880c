/* gx_config.h: settings from command-line flags and GX_* environment variables alike (the flag
 * wins).  Every layer declares its settings in a table (name, default, meaning): the communicator's,
 * the transport's, each backend's, the codec kernels'; --help and docs/ are printed from the same
 * tables.  Example: --transport=dpdk or GX_TRANSPORT=dpdk; --dpdk-eal="--no-huge --no-shconf
 * --vdev=net_memif0" or GX_DPDK_EAL=... */
#ifndef GX_CONFIG_H
#define GX_CONFIG_H

#include <stdio.h>

#include "gx_api.h"
#include "gx_comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Consume every recognised --name=value / --name value flag from argv into o (argv is compacted,
 * *argc updated; argv[0] and unknown arguments are kept in order).  Call it after
 * gx_comm_opts_default(), which applies the GX_* environment: flags win.  Returns GX_OK or
 * GX_ERR_INVAL with a message naming the flag (callers exit with status 2).  --simd sets the
 * process's codec kernels. */
GX_API gx_status_t gx_config_parse(int *argc, char **argv, struct gx_comm_opts *o);

/* Print every table: flag, environment variable, meaning, default. */
GX_API void gx_config_help(FILE *f);

#ifdef __cplusplus
}
#endif

#endif
