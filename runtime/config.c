/* config.c: the communicator's settings table, and gx_config_parse()/gx_config_help() over every
 * layer's table: the communicator's (here), the transport's and each backend's (transport/), the
 * codec kernels' (compress/).  Each default is written once, in its table. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"
#include "compress_options.h"
#include "gx_config.h"
#include "gx_store.h"
#include "transport_internal.h"

#define OFF(f) offsetof(struct gx_comm_opts, f)

/* Range checks: a value the runtime would refuse later (or quietly treat as another) is a bad flag
 * now, with the range in the message. */
static gx_status_t check_rank(const char *v, const char *origin)
{
	return gx_option_check_range(v, origin, -1, GX_MAX_RANKS - 1);
}

static gx_status_t check_size(const char *v, const char *origin)
{
	return strcmp(v, "-1") ? gx_option_check_range(v, origin, 1, GX_MAX_RANKS) : GX_OK;
}

static gx_status_t check_store_serve(const char *v, const char *origin)
{
	return gx_option_check_range(v, origin, -1, 1);
}

static gx_status_t check_store_timeout(const char *v, const char *origin)
{
	return gx_option_check_range(v, origin, 100, 86400000);
}

static const struct gx_option comm_opts[] = {
	{ "rank", GX_OPT_INT, OFF(rank), "-1", "this process's rank (-1: GX_RANK, Slurm, Open MPI, PMI)", NULL, check_rank },
	{ "size", GX_OPT_INT, OFF(size), "-1", "number of ranks (-1: GX_SIZE, Slurm, Open MPI, PMI)", NULL, check_size },
	{ "store", GX_OPT_STR, OFF(store), "127.0.0.1:29500", "rendezvous TCP store host:port", NULL, NULL },
	{ "store-serve", GX_OPT_INT, OFF(store_serve), "-1", "1: this process serves the store; 0: it does not (a gx-store or another rank does); -1: rank 0 serves", NULL, check_store_serve },
	{ "store-external", GX_OPT_ENUM, OFF(store_external), "0", "1: a gx-store serves the store (rank 0 does not, unless --store-serve=1)", "0,1", NULL },
	{ "store-timeout-ms", GX_OPT_U32, OFF(store_timeout_ms), "30000", "hard limit on the rendezvous (ms, 100..86400000)", NULL, check_store_timeout },
	{ "progress", GX_OPT_ENUM, OFF(progress), "app", "app (caller's thread) or thread (pinned engine thread)", "app,thread", NULL },
	{ "core", GX_OPT_INT, OFF(core), "-1", "core for the engine thread; -1 = chosen with hwloc", NULL, NULL },
	{ "job-id", GX_OPT_U32, OFF(tr.job_id), "0", "job id stamped on every packet; others' packets are dropped (0: SLURM_JOB_ID, else 0)", NULL, NULL },
};

const struct gx_option_table gx_comm_option_table = {
	"comm", comm_opts, sizeof(comm_opts) / sizeof(comm_opts[0]), sizeof(struct gx_comm_opts)
};

_Static_assert(sizeof(enum gx_progress) == sizeof(int), "progress is parsed as an int");

/* The store's secret.  runtime/store.c reads GX_STORE_SECRET itself whenever a store client or
 * server starts (every rank, rank 0's store, gx-store), so a program that never parses settings
 * still authenticates; this table checks the variable with every other setting (a bad one is a bad
 * setting: programs exit 2) and prints it in --help.  It is refused as a flag: a command line is
 * visible to every user of the host (ps), and the secret is what keeps those users out. */
struct store_settings {
	const char *secret;
};

static gx_status_t store_secret_check(const char *value, const char *origin)
{
	if (!strncmp(origin, "--", 2))
		return gx_error(GX_ERR_INVAL, "%s: a secret on the command line is visible to every user "
				"of this host (ps): export GX_STORE_SECRET instead (gx-run makes one per job)",
				origin);
	return gx_store_secret_check(value, origin);
}

static const struct gx_option store_opts[] = {
	{ "store-secret", GX_OPT_STR, offsetof(struct store_settings, secret), "", "hex secret (32-128 digits) every store client and the store prove they share; environment only (gx-run sets one per job)", NULL, store_secret_check },
};

static const struct gx_option_table store_option_table = {
	"store", store_opts, sizeof(store_opts) / sizeof(store_opts[0]), sizeof(struct store_settings)
};

gx_status_t gx_comm_opts_default(struct gx_comm_opts *o)
{
	char env[64];
	gx_status_t st;

	memset(o, 0, sizeof(*o));
	gx_option_defaults(&gx_comm_option_table, o);
	if ((st = gx_transport_opts_default(&o->tr)) < 0)
		return st;
	for (size_t i = 0; i < gx_comm_option_table.n; i++) {
		const struct gx_option *e = &comm_opts[i];
		gx_option_env_name(e->name, env, sizeof(env));
		const char *v = getenv(env);
		if (v && (st = gx_option_set(e, o, v, env)) < 0)
			return st;
	}
	/* the store reads GX_STORE_SECRET when it starts; a bad one is a bad setting already here */
	for (size_t i = 0; i < store_option_table.n; i++) {
		struct store_settings store;
		gx_option_env_name(store_opts[i].name, env, sizeof(env));
		const char *v = getenv(env);
		if (v && (st = gx_option_set(&store_opts[i], &store, v, env)) < 0)
			return st;
	}
	/* the codec kernels read GX_SIMD themselves (process-wide); a bad value is a bad setting here */
	if ((st = gx_simd_env_status()) < 0)
		return gx_error(GX_ERR_INVAL, "%s", gx_last_error());
	return GX_OK;
}

/* One setting from a flag or a variable; 1 if `name` is nobody's setting. */
static gx_status_t config_set(struct gx_comm_opts *o, const char *name, size_t len, const char *v,
			      const char *origin)
{
	const struct gx_option *e;
	enum gx_simd simd;
	gx_status_t st;

	if ((e = gx_option_find(&gx_comm_option_table, name, len)))
		return gx_option_set(e, o, v, origin);
	if ((e = gx_option_find(&store_option_table, name, len))) {
		struct store_settings store;
		return gx_option_set(e, &store, v, origin);   /* refused: see store_secret_check */
	}
	if (gx_transport_setting_known(name, len))
		return gx_transport_set(&o->tr, name, len, v, origin);
	if ((e = gx_option_find(&gx_compress_option_table, name, len))) {
		if ((st = gx_simd_parse(v, origin, &simd)) < 0)
			return st == GX_ERR_NOTSUP ? gx_error(GX_ERR_INVAL, "%s", gx_last_error()) : st;
		return gx_simd_set(simd);   /* process-wide, like GX_SIMD */
	}
	return 1;
}

gx_status_t gx_config_parse(int *argc, char **argv, struct gx_comm_opts *o)
{
	gx_status_t st;
	int out = 1;

	for (int a = 1; a < *argc; a++) {
		const char *arg = argv[a];

		if (!strcmp(arg, "--")) {          /* everything after "--" belongs to the caller */
			while (a < *argc)
				argv[out++] = argv[a++];
			break;
		}
		if (strncmp(arg, "--", 2) != 0) {
			argv[out++] = argv[a];
			continue;
		}
		const char *name = arg + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		char flag[80];
		snprintf(flag, sizeof(flag), "--%.*s", (int)(len < 60 ? len : 60), name);
		const char *v = eq ? eq + 1 : a + 1 < *argc ? argv[a + 1] : NULL;
		if (!v) {
			/* a known setting without its value is a bad flag; an unknown one is the caller's */
			if (config_set(o, name, len, "", flag) == 1) {
				argv[out++] = argv[a];
				continue;
			}
			return gx_error(GX_ERR_INVAL, "%s needs a value", flag);
		}
		st = config_set(o, name, len, v, flag);
		if (st == 1) {
			argv[out++] = argv[a];
			continue;
		}
		if (st < 0)
			return st;
		if (!eq)
			a++;
	}
	*argc = out;
	argv[out] = NULL;
	return GX_OK;
}

void gx_config_help(FILE *f)
{
	fprintf(f, "Runtime settings (flag, or environment variable; the flag wins):\n");
	gx_option_help(f, &gx_comm_option_table);
	gx_option_help(f, &store_option_table);
	gx_option_help(f, &gx_compress_option_table);
	gx_transport_help(f);
}
