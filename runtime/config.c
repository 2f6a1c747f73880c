/* config.c: the settings table behind gx_config_parse() and gx_config_help(). */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "gx_config.h"
#include "gx_transport.h"

enum cfg_type { CFG_STR, CFG_U32, CFG_U16, CFG_INT, CFG_DOUBLE, CFG_U64, CFG_PROGRESS };

struct cfg_entry {
	const char *name;         /* flag without "--"; env is GX_ + upper-case name with '-' -> '_' */
	enum cfg_type type;
	size_t offset;            /* into struct gx_comm_opts */
	const char *def;          /* default as shown in help */
	const char *doc;
};

#define OFF(f) offsetof(struct gx_comm_opts, f)

static const struct cfg_entry table[] = {
	{ "transport", CFG_STR, OFF(tr.backend), "udp", "transport backend: udp, dpdk, rdma" },
	{ "rank", CFG_INT, OFF(rank), "env", "this process's rank (else GX_RANK, Slurm, Open MPI, PMI)" },
	{ "size", CFG_INT, OFF(size), "env", "number of ranks (else GX_SIZE, Slurm, Open MPI, PMI)" },
	{ "store", CFG_STR, OFF(store), "127.0.0.1:29500", "rendezvous TCP store host:port" },
	{ "store-serve", CFG_INT, OFF(store_serve), "-1", "1: this process serves the store; 0: a gx-store does (GX_STORE_EXTERNAL=1); -1: rank 0 serves" },
	{ "store-timeout-ms", CFG_U32, OFF(store_timeout_ms), "30000", "hard limit on the rendezvous" },
	{ "progress", CFG_PROGRESS, OFF(progress), "app", "app (caller's thread) or thread (pinned engine thread)" },
	{ "core", CFG_INT, OFF(core), "-1", "core for the engine thread; -1 = chosen with hwloc" },
	{ "job-id", CFG_U32, OFF(tr.job_id), "0", "job id stamped on every packet; others' packets are dropped" },
	{ "mtu", CFG_U32, OFF(tr.mtu), "1500", "link MTU in bytes (9000 for jumbo frames)" },
	{ "udp-ip", CFG_STR, OFF(tr.udp_ip), "127.0.0.1", "udp: local IPv4 address to bind (auto: first non-loopback)" },
	{ "udp-port", CFG_U16, OFF(tr.udp_port), "0", "udp: local port (0 = ephemeral)" },
	{ "dpdk-eal", CFG_STR, OFF(tr.dpdk_eal), "", "dpdk: EAL arguments, space separated" },
	{ "dpdk-port", CFG_STR, OFF(tr.dpdk_port), "first", "dpdk: port by PCI address or device name" },
	{ "dpdk-ip", CFG_STR, OFF(tr.dpdk_ip), "10.0.0.<rank+1>", "dpdk: source IPv4 address" },
	{ "window", CFG_U32, OFF(tr.window), "256", "packets in flight per peer" },
	{ "peer-timeout-ms", CFG_U32, OFF(tr.peer_timeout_ms), "10000", "a peer silent this long is reported dead" },
	{ "rto-min-us", CFG_U32, OFF(tr.rto_min_us), "200", "retransmission timeout floor" },
	{ "fault-drop", CFG_DOUBLE, OFF(tr.fault.drop), "0", "fault injection: drop probability" },
	{ "fault-dup", CFG_DOUBLE, OFF(tr.fault.dup), "0", "fault injection: duplicate probability" },
	{ "fault-reorder", CFG_DOUBLE, OFF(tr.fault.reorder), "0", "fault injection: reorder probability" },
	{ "fault-delay-us", CFG_U32, OFF(tr.fault.delay_us), "0", "fault injection: added receive delay" },
	{ "fault-seed", CFG_U64, OFF(tr.fault.seed), "1", "fault injection: random seed" },
};

void gx_comm_opts_default(struct gx_comm_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->tr.backend = "udp";
	o->tr.fault.seed = 1;
	o->rank = -1;
	o->size = -1;
	o->core = -1;
	o->store_serve = -1;
	o->progress = GX_PROGRESS_APP;
}

static gx_status_t set_value(const struct cfg_entry *e, const char *v, struct gx_comm_opts *o,
			     const char *origin /* "--transport" or "GX_TRANSPORT" */)
{
	char *p = (char *)o + e->offset, *end;
	unsigned long long u;
	long l;
	double d;

	errno = 0;
	switch (e->type) {
	case CFG_STR:
		/* an unknown transport is a bad flag (exit 2), not a failure at open time */
		if (e->offset == OFF(tr.backend) && !gx_backend_find(v)) {
			char why[400];
			snprintf(why, sizeof(why), "%s", gx_last_error());
			return gx_error(GX_ERR_INVAL, "%s: %s", origin, why);
		}
		*(const char **)p = v;
		return GX_OK;
	case CFG_U16:
	case CFG_U32:
	case CFG_U64:
		if (!*v || *v == '-')
			break;
		u = strtoull(v, &end, 0);
		if (errno || *end || (e->type == CFG_U16 && u > 0xffff) ||
		    (e->type == CFG_U32 && u > 0xffffffffull))
			break;
		if (e->type == CFG_U16)
			*(uint16_t *)p = (uint16_t)u;
		else if (e->type == CFG_U32)
			*(uint32_t *)p = (uint32_t)u;
		else
			*(uint64_t *)p = u;
		return GX_OK;
	case CFG_INT:
		l = strtol(v, &end, 0);
		if (!*v || errno || *end || l < -1 || l > 0x7fffffff)
			break;
		*(int *)p = (int)l;
		return GX_OK;
	case CFG_DOUBLE:
		d = strtod(v, &end);
		if (!*v || errno || *end || !(d >= 0.0 && d <= 1.0))
			break;
		*(double *)p = d;
		return GX_OK;
	case CFG_PROGRESS:
		if (!strcmp(v, "app"))
			*(enum gx_progress *)p = GX_PROGRESS_APP;
		else if (!strcmp(v, "thread"))
			*(enum gx_progress *)p = GX_PROGRESS_THREAD;
		else
			break;
		return GX_OK;
	}
	return gx_error(GX_ERR_INVAL, "%s: bad value '%s' (%s; default %s)", origin, v, e->doc, e->def);
}

static void env_name(const char *name, char *buf, size_t len)
{
	size_t i = 0;

	snprintf(buf, len, "GX_");
	for (i = 3; *name && i + 1 < len; name++, i++)
		buf[i] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
	buf[i] = '\0';
}

gx_status_t gx_config_parse(int *argc, char **argv, struct gx_comm_opts *o)
{
	const size_t n = sizeof(table) / sizeof(table[0]);
	char env[64];
	gx_status_t st;
	int out = 1;

	for (size_t i = 0; i < n; i++) {
		env_name(table[i].name, env, sizeof(env));
		const char *v = getenv(env);
		if (v && (st = set_value(&table[i], v, o, env)) < 0)
			return st;
	}
	for (int a = 1; a < *argc; a++) {
		const char *arg = argv[a];
		const struct cfg_entry *e = NULL;
		const char *v = NULL;

		if (!strcmp(arg, "--")) {          /* everything after "--" belongs to the caller */
			while (a < *argc)
				argv[out++] = argv[a++];
			break;
		}
		if (strncmp(arg, "--", 2) == 0) {
			const char *name = arg + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			for (size_t i = 0; i < n; i++)
				if (strlen(table[i].name) == len && !strncmp(table[i].name, name, len))
					e = &table[i];
			if (e) {
				if (eq)
					v = eq + 1;
				else if (a + 1 < *argc)
					v = argv[++a];
				else
					return gx_error(GX_ERR_INVAL, "--%s needs a value (%s)", e->name, e->doc);
			}
		}
		if (!e) {
			argv[out++] = argv[a];
			continue;
		}
		char flag[64];
		snprintf(flag, sizeof(flag), "--%s", e->name);
		if ((st = set_value(e, v, o, flag)) < 0)
			return st;
	}
	*argc = out;
	argv[out] = NULL;
	return GX_OK;
}

void gx_config_help(FILE *f)
{
	char env[64];

	fprintf(f, "Runtime settings (flag, or environment variable; the flag wins):\n");
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		env_name(table[i].name, env, sizeof(env));
		fprintf(f, "  --%-18s %-20s %s (default %s)\n", table[i].name, env, table[i].doc,
			table[i].def);
	}
}
