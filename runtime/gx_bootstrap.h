/* gx_bootstrap.h: who am I in the job?  Rank, size, local rank and the store address, resolved from
 * flags or the environment so the same binary runs under gx-run, srun and mpirun unchanged.
 *
 * Order (first found wins, each field on its own):
 *   rank:   --rank / opts.rank, GX_RANK, SLURM_PROCID, OMPI_COMM_WORLD_RANK, PMI_RANK
 *   size:   --size / opts.size, GX_SIZE, SLURM_NTASKS (SLURM_NPROCS), OMPI_COMM_WORLD_SIZE, PMI_SIZE
 *   local:  GX_LOCAL_RANK, SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID (MPICH)
 *   store:  opts.store (--store / GX_STORE through the settings table; default 127.0.0.1:29500,
 *           single host only: under srun or mpirun across hosts set GX_STORE=<rank 0's host>:<port>)
 *   serve:  opts.store_serve >= 0 (--store-serve / GX_STORE_SERVE), else nobody if opts.store_external
 *           (--store-external / GX_STORE_EXTERNAL=1: a gx-store runs), else rank 0
 *   job id: opts.tr.job_id (--job-id / GX_JOB_ID), else SLURM_JOB_ID, else 0
 * Settings come through the table (gx_config.h); only launcher variables are read here.
 */
#ifndef GX_BOOTSTRAP_H
#define GX_BOOTSTRAP_H

#include <stdint.h>

#include "gx_comm.h"

struct gx_boot {
	int rank, size;
	int local_rank, local_size;   /* -1 when the launcher does not say */
	char store[280];              /* host:port */
	int serve;                    /* 1: this process serves the store */
	uint32_t job_id;
	char source[64];              /* where rank/size came from, e.g. "GX_RANK/GX_SIZE", "Slurm" */
};

/* Resolve everything; GX_ERR_INVAL with a message saying what to set when rank or size is
 * unknown, malformed or inconsistent (rank >= size). */
gx_status_t gx_bootstrap_resolve(const struct gx_comm_opts *o, struct gx_boot *b);

#endif
