/* backend.c: the registry of datagram backends, looked up by name at run time, and the transport's
 * settings: the net's own table and each backend's.  Adding a backend means one line in `backends`
 * and one file beside this one; nothing above transport/ changes. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "gx_backend.h"
#include "gx_build_config.h"
#include "transport_internal.h"

extern const struct gx_backend_ops gx_udp_ops;
extern const struct gx_backend_ops gx_loop_ops;
#if GX_HAVE_DPDK
extern const struct gx_backend_ops gx_dpdk_ops;
#endif

static const struct gx_backend_ops *const backends[] = {
	&gx_udp_ops,
#if GX_HAVE_DPDK
	&gx_dpdk_ops,
#endif
	&gx_loop_ops,
};

#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

const struct gx_backend_ops *gx_backend_at(size_t i)
{
	return i < NBACKENDS ? backends[i] : NULL;
}

const char *gx_transport_list(void)
{
	static char list[128];

	if (!list[0]) {
		for (size_t i = 0; i < NBACKENDS; i++) {
			if (i)
				strncat(list, ",", sizeof(list) - strlen(list) - 1);
			strncat(list, backends[i]->name, sizeof(list) - strlen(list) - 1);
		}
	}
	return list;
}

gx_status_t gx_backend_find(const char *name, const struct gx_backend_ops **out)
{
	*out = NULL;
	if (!name || !*name)
		name = "udp";
	for (size_t i = 0; i < NBACKENDS; i++)
		if (!strcmp(backends[i]->name, name)) {
			if (backends[i]->size != sizeof(struct gx_backend_ops))
				return gx_error(GX_ERR_NOTSUP, "transport '%s' was built against another "
						"gx_backend.h (ops size %zu, expected %zu): rebuild it", name,
						backends[i]->size, sizeof(struct gx_backend_ops));
			*out = backends[i];
			return GX_OK;
		}
	if (!strcmp(name, "dpdk"))
		return gx_error(GX_ERR_INVAL, "transport 'dpdk' is not in this build (available: %s); "
				"install libdpdk-dev and reconfigure with meson (-Ddpdk=enabled)",
				gx_transport_list());
	if (!strcmp(name, "rdma"))
		return gx_error(GX_ERR_INVAL, "transport 'rdma' (libibverbs RC queue pairs) is not part of "
				"this gx version yet (available: %s)", gx_transport_list());
	return gx_error(GX_ERR_INVAL, "unknown transport '%s' (available: %s); use --transport=NAME",
			name, gx_transport_list());
}

/* ---- settings ------------------------------------------------------------------------------ */

#define OFF(f) offsetof(struct gx_transport_opts, f)

/* An unknown transport is a bad flag (exit 2), not a failure at create time. */
static gx_status_t check_backend(const char *v, const char *origin)
{
	const struct gx_backend_ops *ops;
	char why[400];

	if (!*v)
		return gx_error(GX_ERR_INVAL, "%s: empty; name a transport (available: %s)", origin,
				gx_transport_list());
	if (gx_backend_find(v, &ops) == GX_OK)
		return GX_OK;
	snprintf(why, sizeof(why), "%s", gx_last_error());
	return gx_error(GX_ERR_INVAL, "%s: %s", origin, why);
}

/* Numeric settings whose 0 used to mean "the default" in silence: out of range is a bad flag. */
static gx_status_t check_mtu(const char *v, const char *origin)
{
	return gx_option_check_range(v, origin, 576, 65535);
}

static gx_status_t check_window(const char *v, const char *origin)
{
	return gx_option_check_range(v, origin, 64, 32768);      /* net.c: WINDOW_MIN..WINDOW_MAX */
}

static gx_status_t check_peer_timeout(const char *v, const char *origin)
{
	return gx_option_check_range(v, origin, 10, 86400000);   /* 10 ms .. a day */
}

static gx_status_t check_rto_min(const char *v, const char *origin)
{
	return gx_option_check_range(v, origin, 1, 1000000);
}

/* A key file that cannot be read is a bad flag too, caught before anything starts. */
static gx_status_t check_readable(const char *v, const char *origin)
{
	if (*v && access(v, R_OK) != 0)
		return gx_error(GX_ERR_INVAL, "%s: cannot read '%s': %s", origin, v, strerror(errno));
	return GX_OK;
}

static const struct gx_option net_opts[] = {
	{ "transport", GX_OPT_STR, OFF(backend), "udp", "transport backend (see the list below)", NULL, check_backend },
	{ "mtu", GX_OPT_U32, OFF(mtu), "auto", "link MTU in bytes, 576..65535, or auto: udp the bound interface's (at most 65535), dpdk and loop 1500", "auto", check_mtu },
	{ "window", GX_OPT_U32, OFF(window), "256", "packets in flight per peer, 64..32768 (rounded up to a power of two)", NULL, check_window },
	{ "peer-timeout-ms", GX_OPT_U32, OFF(peer_timeout_ms), "10000", "a peer silent this long (ms, 10..86400000) is reported dead", NULL, check_peer_timeout },
	{ "stall-timeout-ms", GX_OPT_U32, OFF(stall_timeout_ms), "120000", "a collective that receives nothing this long while its peers are alive fails, naming the rank it waits for (0: never)", NULL, NULL },
	{ "rto-min-us", GX_OPT_U32, OFF(rto_min_us), "200", "retransmission timeout floor (us, 1..1000000)", NULL, check_rto_min },
	{ "fault-drop", GX_OPT_PROB, OFF(fault.drop), "0", "fault injection: drop probability", NULL, NULL },
	{ "fault-dup", GX_OPT_PROB, OFF(fault.dup), "0", "fault injection: duplicate probability", NULL, NULL },
	{ "fault-reorder", GX_OPT_PROB, OFF(fault.reorder), "0", "fault injection: reorder probability", NULL, NULL },
	{ "fault-delay-us", GX_OPT_U32, OFF(fault.delay_us), "0", "fault injection: added receive delay", NULL, NULL },
	{ "fault-seed", GX_OPT_U64, OFF(fault.seed), "1", "fault injection: random seed", NULL, NULL },
	{ "auth-key-file", GX_OPT_STR, OFF(auth_key_file), "", "a file of 16+ secret bytes, the same on every rank: every packet then carries a MAC (forged and replayed packets are dropped)", NULL, check_readable },
};

const struct gx_option_table gx_net_option_table = {
	"net", net_opts, sizeof(net_opts) / sizeof(net_opts[0]), sizeof(struct gx_transport_opts)
};

gx_status_t gx_transport_opts_default(struct gx_transport_opts *o)
{
	memset(o, 0, sizeof(*o));
	gx_option_defaults(&gx_net_option_table, o);
	return gx_transport_env(o);
}

void gx_transport_opts_fill(struct gx_transport_opts *o)
{
	gx_option_fill_unset(&gx_net_option_table, o);
	if (!*o->backend)
		o->backend = "udp";
}

/* The first backend table that declares name[0..len) (tables may share a name, e.g. udp-port). */
static const struct gx_option *backend_option(const char *name, size_t len, const struct gx_option_table **t)
{
	for (size_t i = 0; i < NBACKENDS; i++) {
		const struct gx_option *e;
		if (backends[i]->options && (e = gx_option_find(backends[i]->options, name, len))) {
			*t = backends[i]->options;
			return e;
		}
	}
	return NULL;
}

int gx_transport_setting_known(const char *name, size_t len)
{
	const struct gx_option_table *t;

	return gx_option_find(&gx_net_option_table, name, len) || backend_option(name, len, &t);
}

gx_status_t gx_transport_set(struct gx_transport_opts *o, const char *name, size_t len, const char *value,
			     const char *origin)
{
	const struct gx_option_table *t;
	const struct gx_option *e;
	char flag[64];
	gx_status_t st;

	if (len == (size_t)-1)
		len = strlen(name);
	if (!origin) {
		snprintf(flag, sizeof(flag), "--%.*s", (int)len, name);
		origin = flag;
	}
	if ((e = gx_option_find(&gx_net_option_table, name, len)))
		return gx_option_set(e, o, value, origin);
	if (!(e = backend_option(name, len, &t)))
		return gx_error(GX_ERR_INVAL, "%s: no transport has this setting", origin);
	/* check the value now (a bad flag exits 2 at start-up), keep the string for the backend */
	_Alignas(16) unsigned char scratch[512];
	if (t->settings_size > sizeof(scratch))
		return gx_error(GX_ERR_NOSPC, "%s: settings of '%s' exceed %zu bytes", origin, t->owner,
				sizeof(scratch));
	memset(scratch, 0, sizeof(scratch));
	if ((st = gx_option_set(e, scratch, value, origin)) < 0)
		return st;
	for (uint32_t i = 0; i < o->nsettings; i++)
		if (!strcmp(o->settings[i].name, e->name)) {
			o->settings[i].value = value;
			return GX_OK;
		}
	if (o->nsettings == GX_SETTINGS_MAX)
		return gx_error(GX_ERR_NOSPC, "%s: more than %d backend settings", origin, GX_SETTINGS_MAX);
	o->settings[o->nsettings].name = e->name;     /* the table's string: lives as long as gx */
	o->settings[o->nsettings++].value = value;
	return GX_OK;
}

gx_status_t gx_transport_opts_set(struct gx_transport_opts *o, const char *name, const char *value)
{
	return gx_transport_set(o, name, (size_t)-1, value, NULL);
}

gx_status_t gx_transport_env(struct gx_transport_opts *o)
{
	char env[64];
	const char *v;
	gx_status_t st;

	for (size_t i = 0; i < gx_net_option_table.n; i++) {
		gx_option_env_name(net_opts[i].name, env, sizeof(env));
		if ((v = getenv(env)) && (st = gx_transport_set(o, net_opts[i].name, (size_t)-1, v, env)) < 0)
			return st;
	}
	for (size_t b = 0; b < NBACKENDS; b++) {
		const struct gx_option_table *t = backends[b]->options;
		for (size_t i = 0; t && i < t->n; i++) {
			gx_option_env_name(t->opts[i].name, env, sizeof(env));
			if ((v = getenv(env)) && (st = gx_transport_set(o, t->opts[i].name, (size_t)-1, v, env)) < 0)
				return st;
		}
	}
	return GX_OK;
}

void gx_transport_help(FILE *f)
{
	fprintf(f, "Transport (available: %s):\n", gx_transport_list());
	gx_option_help(f, &gx_net_option_table);
	for (size_t b = 0; b < NBACKENDS; b++)
		if (backends[b]->options && backends[b]->options->n) {
			fprintf(f, "Backend %s:\n", backends[b]->name);
			gx_option_help(f, backends[b]->options);
		}
}

gx_status_t gx_backend_settings(const struct gx_option_table *t, const struct gx_transport_opts *o,
				void *settings)
{
	const struct gx_option *e;
	gx_status_t st;

	gx_option_defaults(t, settings);
	for (uint32_t i = 0; i < o->nsettings; i++)
		if ((e = gx_option_find(t, o->settings[i].name, (size_t)-1)) &&
		    (st = gx_option_set(e, settings, o->settings[i].value, o->settings[i].name)) < 0)
			return st;
	return GX_OK;
}
