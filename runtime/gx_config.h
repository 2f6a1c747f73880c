/* gx_config.h: one table of settings, read from command-line flags and GX_* environment variables
 * alike (flag wins), so --help and docs/ come from the same source.  Example: --transport=dpdk or
 * GX_TRANSPORT=dpdk; --dpdk-eal="--no-huge --no-shconf --vdev=net_memif0" or GX_DPDK_EAL=... */
#ifndef GX_CONFIG_H
#define GX_CONFIG_H

#include <stdio.h>

#include "gx_comm.h"

/* Apply GX_* environment variables, then consume every recognised --name=value / --name value flag
 * from argv (argv is compacted, *argc updated; argv[0] and unknown arguments are kept in order).
 * Returns GX_OK or GX_ERR_INVAL with a message naming the flag (callers exit with status 2). */
gx_status_t gx_config_parse(int *argc, char **argv, struct gx_comm_opts *o);

/* Print the table: flag, environment variable, default, meaning. */
void gx_config_help(FILE *f);

#endif
