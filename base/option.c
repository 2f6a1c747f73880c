/* option.c: parsing and printing settings tables (gx_option.h). */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gx_option.h"

static int choice_index(const char *choices, const char *v)
{
	size_t vl = strlen(v);
	int i = 0;

	for (const char *c = choices; c && *c; i++) {
		const char *e = strchr(c, ',');
		size_t l = e ? (size_t)(e - c) : strlen(c);
		if (l == vl && !strncmp(c, v, l))
			return i;
		c = e ? e + 1 : c + l;
	}
	return -1;
}

gx_status_t gx_option_set(const struct gx_option *o, void *settings, const char *v, const char *origin)
{
	char *p = (char *)settings + o->offset, *end;
	unsigned long long u;
	long l;
	double d;
	int i;

	gx_status_t st;

	if (!v)
		v = o->def;
	if (o->check && (st = o->check(v, origin)) < 0)
		return st;
	errno = 0;
	switch (o->type) {
	case GX_OPT_STR:
		*(const char **)p = v;
		return GX_OK;
	case GX_OPT_U16:
	case GX_OPT_U32:
	case GX_OPT_U64:
		if (o->choices && !strcmp(v, o->choices)) {   /* the entry's word for 0, e.g. "auto" */
			memset(p, 0, o->type == GX_OPT_U16 ? 2 : o->type == GX_OPT_U32 ? 4 : 8);
			return GX_OK;
		}
		if (!*v || *v == '-')
			break;
		u = strtoull(v, &end, 0);
		if (errno || *end || (o->type == GX_OPT_U16 && u > 0xffff) ||
		    (o->type == GX_OPT_U32 && u > 0xffffffffull))
			break;
		if (o->type == GX_OPT_U16)
			*(uint16_t *)p = (uint16_t)u;
		else if (o->type == GX_OPT_U32)
			*(uint32_t *)p = (uint32_t)u;
		else
			*(uint64_t *)p = u;
		return GX_OK;
	case GX_OPT_INT:
		l = strtol(v, &end, 0);
		if (!*v || errno || *end || l < -1 || l > 0x7fffffff)
			break;
		*(int *)p = (int)l;
		return GX_OK;
	case GX_OPT_PROB:
		d = strtod(v, &end);
		if (!*v || errno || *end || !(d >= 0.0 && d <= 1.0))
			break;
		*(double *)p = d;
		return GX_OK;
	case GX_OPT_ENUM:
		if ((i = choice_index(o->choices, v)) < 0)
			break;
		*(int *)p = i;
		return GX_OK;
	}
	return gx_error(GX_ERR_INVAL, "%s: bad value '%s' (%s; default %s)", origin, v, o->doc,
			*o->def ? o->def : "none");
}

gx_status_t gx_option_check_range(const char *value, const char *origin, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(value, &end, 0);
	if (!*value || *end)
		return GX_OK;                 /* not a number: the type's parser names the value */
	if (errno == ERANGE || v < min || v > max)
		return gx_error(GX_ERR_INVAL, "%s: %s is out of range: give %lld to %lld", origin, value, min, max);
	return GX_OK;
}

void gx_option_defaults(const struct gx_option_table *t, void *settings)
{
	for (size_t i = 0; i < t->n; i++)
		gx_option_set(&t->opts[i], settings, t->opts[i].def, t->opts[i].name);
}

static int is_unset(const struct gx_option *o, const void *settings)
{
	const char *p = (const char *)settings + o->offset;

	switch (o->type) {
	case GX_OPT_STR: return *(const char *const *)p == NULL;
	case GX_OPT_U16: return *(const uint16_t *)p == 0;
	case GX_OPT_U32: return *(const uint32_t *)p == 0;
	case GX_OPT_U64: return *(const uint64_t *)p == 0;
	default: return 0;   /* int, probability and enum: 0 is a value */
	}
}

void gx_option_fill_unset(const struct gx_option_table *t, void *settings)
{
	for (size_t i = 0; i < t->n; i++)
		if (is_unset(&t->opts[i], settings))
			gx_option_set(&t->opts[i], settings, t->opts[i].def, t->opts[i].name);
}

const struct gx_option *gx_option_find(const struct gx_option_table *t, const char *name, size_t len)
{
	if (len == (size_t)-1)
		len = strlen(name);
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->opts[i].name) == len && !strncmp(t->opts[i].name, name, len))
			return &t->opts[i];
	return NULL;
}

void gx_option_env_name(const char *name, char *buf, size_t len)
{
	size_t i;

	snprintf(buf, len, "GX_");
	for (i = 3; *name && i + 1 < len; name++, i++)
		buf[i] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
	buf[i] = '\0';
}

void gx_option_help(FILE *f, const struct gx_option_table *t)
{
	char env[64];

	for (size_t i = 0; i < t->n; i++) {
		const struct gx_option *o = &t->opts[i];
		gx_option_env_name(o->name, env, sizeof(env));
		fprintf(f, "  --%-18s %-20s %s (default %s)\n", o->name, env, o->doc,
			*o->def ? o->def : "none");
	}
}
