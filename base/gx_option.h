/* gx_option.h: tables of settings, each entry with its name, type, default and meaning.
 *
 * Every layer that has settings declares them in one table like this (the communicator, the reliable
 * net, each transport backend, the codec kernels); the same entry parses a --flag, a GX_* environment
 * variable and the default, and prints the --help line, so a default is written exactly once.
 * Flag "--udp-ip" is variable GX_UDP_IP.
 */
#ifndef GX_OPTION_H
#define GX_OPTION_H

#include <stddef.h>
#include <stdio.h>

#include "gx_status.h"

enum gx_option_type {
	GX_OPT_STR,      /* const char * (points into the caller's string: copy it to keep it) */
	GX_OPT_U16,      /* uint16_t */
	GX_OPT_U32,      /* uint32_t */
	GX_OPT_U64,      /* uint64_t */
	GX_OPT_INT,      /* int, -1 .. INT_MAX */
	GX_OPT_PROB,     /* double in [0, 1] */
	GX_OPT_ENUM,     /* int: index of the value in `choices` ("app,thread" -> 0 or 1) */
};

struct gx_option {
	const char *name;         /* flag without "--" */
	enum gx_option_type type;
	size_t offset;            /* of the field in the owner's settings struct */
	const char *def;          /* default, parsed like any value */
	const char *doc;
	const char *choices;      /* GX_OPT_ENUM: comma-separated names; numbers: a word that stands for 0
				   * ("auto": the owner decides), or NULL */
	/* More than the type can say (may be NULL): GX_OK, or an error whose message names `origin`.
	 * Run on every value set, whichever way it comes (flag, variable, program). */
	gx_status_t (*check)(const char *value, const char *origin);
};

/* One owner's table.  settings_size: the size of the struct the offsets point into. */
struct gx_option_table {
	const char *owner;        /* "comm", "net", "udp", "dpdk", ... (shown in --help) */
	const struct gx_option *opts;
	size_t n;
	size_t settings_size;
};

/* Parse `value` (NULL: the default) into the field of `settings` that `o` describes.  GX_ERR_INVAL with a message naming
 * `origin` (e.g. "--mtu" or "GX_MTU"), the value, the meaning and the default. */
gx_status_t gx_option_set(const struct gx_option *o, void *settings, const char *value, const char *origin);

/* A building block for an entry's check: GX_ERR_INVAL naming `origin` when `value` is a whole number
 * outside [min, max] (0 included: a flag never silently means the default), with the range in the
 * message.  What is not a number is left to the type's parser, which says so. */
gx_status_t gx_option_check_range(const char *value, const char *origin, long long min, long long max);

/* Set every field of the table to its default. */
void gx_option_defaults(const struct gx_option_table *t, void *settings);

/* Set the numeric fields that are 0 (and NULL strings) to their defaults: lets callers that fill a
 * struct with designated initializers leave out what they do not care about. */
void gx_option_fill_unset(const struct gx_option_table *t, void *settings);

/* The entry named name[0..len) (len = strlen(name) if (size_t)-1), or NULL. */
const struct gx_option *gx_option_find(const struct gx_option_table *t, const char *name, size_t len);

/* "GX_" + upper-case name with '-' -> '_'. */
void gx_option_env_name(const char *name, char *buf, size_t len);

/* One line per entry: flag, variable, meaning, default. */
void gx_option_help(FILE *f, const struct gx_option_table *t);

#endif
