/* bootstrap.c: rank, size, store address and job id from flags or the launcher's environment. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx_bootstrap.h"
#include "gx_store.h"
#include "gx_net.h"

struct env_src {
	const char *rank, *size, *label;
};

/* Launchers in the order they are tried. */
static const struct env_src launchers[] = {
	{ "GX_RANK", "GX_SIZE", "GX_RANK/GX_SIZE" },
	{ "SLURM_PROCID", "SLURM_NTASKS", "Slurm" },
	{ "SLURM_PROCID", "SLURM_NPROCS", "Slurm" },
	{ "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI" },
	{ "PMI_RANK", "PMI_SIZE", "PMI" },
};

static const char *const local_rank_vars[] = { "GX_LOCAL_RANK", "SLURM_LOCALID",
					       "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID" };
static const char *const local_size_vars[] = { "GX_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE",
					       "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS" };

/* 1: found and parsed into *out; 0: not set; <0: set but malformed (error recorded). */
static int env_int(const char *name, long max, int *out)
{
	const char *v = getenv(name);
	char *end;
	long l;

	if (!v || !*v)
		return 0;
	errno = 0;
	l = strtol(v, &end, 10);
	/* SLURM_NTASKS_PER_NODE may read "2(x3)": the leading number is what we want */
	if (errno || end == v || l < 0 || l > max || (*end && *end != '('))
		return gx_error(GX_ERR_INVAL, "%s='%s' is not a number in 0..%ld", name, v, max);
	*out = (int)l;
	return 1;
}

static gx_status_t from_env(int want_rank, int *out, char *src, size_t srclen)
{
	for (size_t i = 0; i < sizeof(launchers) / sizeof(launchers[0]); i++) {
		const char *name = want_rank ? launchers[i].rank : launchers[i].size;
		int rc = env_int(name, GX_MAX_RANKS, out);
		if (rc < 0)
			return rc;
		if (rc > 0) {
			snprintf(src, srclen, "%s", launchers[i].label);
			return 1;
		}
	}
	return 0;
}

gx_status_t gx_bootstrap_resolve(const struct gx_comm_opts *o, struct gx_boot *b)
{
	char rsrc[32] = "", ssrc[32] = "";
	int rc;

	memset(b, 0, sizeof(*b));
	b->rank = o->rank;
	b->size = o->size;
	b->local_rank = b->local_size = -1;
	if (b->rank >= 0)
		snprintf(rsrc, sizeof(rsrc), "flags");
	else if ((rc = from_env(1, &b->rank, rsrc, sizeof(rsrc))) < 0)
		return rc;
	if (b->size >= 0)
		snprintf(ssrc, sizeof(ssrc), "flags");
	else if ((rc = from_env(0, &b->size, ssrc, sizeof(ssrc))) < 0)
		return rc;
	if (b->rank < 0 && b->size == 1)
		b->rank = 0;                      /* a world of one needs no rank */
	if (b->rank < 0 || b->size < 0)
		return gx_error(GX_ERR_INVAL,
				"cannot tell this process's %s: pass --rank R --size N, set GX_RANK and "
				"GX_SIZE (gx-run does), or start it with srun (SLURM_PROCID/"
				"SLURM_NTASKS) or mpirun (OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/PMI_SIZE)",
				b->rank < 0 && b->size < 0 ? "rank and world size" :
				b->rank < 0 ? "rank" : "world size");
	if (b->size < 1 || b->size > GX_MAX_RANKS)
		return gx_error(GX_ERR_INVAL, "world size %d (from %s) must be 1..%d", b->size, ssrc,
				GX_MAX_RANKS);
	if (b->rank >= b->size)
		return gx_error(GX_ERR_INVAL, "rank %d (from %s) is not below the world size %d (from %s)",
				b->rank, rsrc, b->size, ssrc);
	if (!strcmp(rsrc, ssrc) || !rsrc[0])
		snprintf(b->source, sizeof(b->source), "%s", ssrc);
	else
		snprintf(b->source, sizeof(b->source), "%s+%s", rsrc, ssrc);

	for (size_t i = 0; i < sizeof(local_rank_vars) / sizeof(local_rank_vars[0]); i++)
		if ((rc = env_int(local_rank_vars[i], GX_MAX_RANKS, &b->local_rank)) != 0) {
			if (rc < 0)
				return rc;
			break;
		}
	for (size_t i = 0; i < sizeof(local_size_vars) / sizeof(local_size_vars[0]); i++)
		if ((rc = env_int(local_size_vars[i], GX_MAX_RANKS, &b->local_size)) != 0) {
			if (rc < 0)
				return rc;
			break;
		}

	snprintf(b->store, sizeof(b->store), "%s", o->store);
	char host[256];
	uint16_t port;
	if ((rc = gx_store_parse_addr(b->store, host, sizeof(host), &port)) < 0)
		return rc;
	b->serve = o->store_serve >= 0 ? o->store_serve != 0 : !o->store_external && b->rank == 0;

	b->job_id = o->tr.job_id;
	if (!b->job_id) {
		int j = 0;
		if (env_int("SLURM_JOB_ID", 0x7fffffff, &j) > 0)
			b->job_id = (uint32_t)j;
	}
	return GX_OK;
}
