/* transport_internal.h: the transport's settings, for runtime/'s flag and environment parser and
 * --help (not installed).  Applications use gx_transport_opts_default/_set (gx_net.h). */
#ifndef GX_TRANSPORT_INTERNAL_H
#define GX_TRANSPORT_INTERNAL_H

#include <stdio.h>

#include "gx_net.h"
#include "gx_option.h"

/* The net's table: transport, mtu, window, timeouts, fault hooks (into struct gx_transport_opts). */
extern const struct gx_option_table gx_net_option_table;

/* Fields left 0 (and a NULL backend) take the table's defaults. */
void gx_transport_opts_fill(struct gx_transport_opts *o);
/* 1 if name[0..len) is a setting of the net or of any backend. */
int gx_transport_setting_known(const char *name, size_t len);
/* Set name[0..len) (len (size_t)-1: strlen) from `value`; origin names it in messages ("--mtu",
 * "GX_MTU"; NULL: "--name"). */
gx_status_t gx_transport_set(struct gx_transport_opts *o, const char *name, size_t len, const char *value,
			     const char *origin);
/* Apply every GX_* variable of the net's and the backends' tables. */
gx_status_t gx_transport_env(struct gx_transport_opts *o);
/* The net's and every backend's settings, one line each. */
void gx_transport_help(FILE *f);

#endif
