/* gx_comm.h: the communicator (rank, size, peers over a gx_net), its bootstrap, and the engine
 * that drives progress.
 *
 * Bootstrap: rank and size come from flags, GX_RANK/GX_SIZE, Slurm (SLURM_PROCID/SLURM_NTASKS) or
 * Open MPI/PMI (OMPI_COMM_WORLD_RANK/_SIZE, PMI_RANK/PMI_SIZE); peers meet through a TCP key-value
 * store (GX_STORE=host:port) served by rank 0 or by a standalone gx-store, and allgather each
 * transport's address blob through it.
 *
 * Progress: GX_PROGRESS_THREAD runs an engine thread pinned (hwloc) to a core near the NIC that owns
 * the gx_net and executes submitted operations to completion; GX_PROGRESS_APP runs them on the
 * calling thread.  Either way collectives are written once, as functions run by gx_comm_run().
 */
#ifndef GX_COMM_H
#define GX_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "gx_api.h"
#include "gx_net.h"
#include "gx_status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum gx_progress {
	GX_PROGRESS_APP = 0,      /* progress on the application thread (default) */
	GX_PROGRESS_THREAD = 1,   /* dedicated, pinned polling thread */
};

struct gx_comm_opts {
	struct gx_transport_opts tr;
	int rank, size;           /* -1: from the environment */
	const char *store;        /* "host:port"; default GX_STORE, else 127.0.0.1:29500 */
	int store_external;       /* 1: a gx-store serves the store, rank 0 does not (GX_STORE_EXTERNAL=1) */
	int store_serve;          /* 1: this process serves the store, 0: it does not; -1 (default): rank 0 does unless store_external */
	uint32_t store_timeout_ms;/* hard limit on the whole rendezvous (default 30000) */
	enum gx_progress progress;
	int core;                 /* -1: chosen with hwloc (NIC-local, else a free core) */
};

/* Every field at the default of its settings table (rank/size -1, backend "udp", ...), then the
 * GX_* environment variables of every table (GX_STORE, GX_TRANSPORT, GX_JOB_ID, GX_UDP_IP, GX_SIMD,
 * ...); GX_ERR_INVAL names a bad one.  Set fields after it to override the environment;
 * gx_config_parse() applies --flags on top (gx_config.h). */
GX_API gx_status_t gx_comm_opts_default(struct gx_comm_opts *o);

struct gx_comm;

/* Rendezvous, create the transport, connect every peer (a missing rank is named; a wrong world size
 * is reported). */
GX_API gx_status_t gx_comm_create(const struct gx_comm_opts *o, struct gx_comm **out);
GX_API void gx_comm_destroy(struct gx_comm *c);

GX_API uint32_t gx_comm_rank(const struct gx_comm *c);
GX_API uint32_t gx_comm_size(const struct gx_comm *c);
GX_API struct gx_net *gx_comm_net(struct gx_comm *c);

/* Run fn(arg) where progress happens: inline (GX_PROGRESS_APP) or on the engine thread, waiting
 * for it to finish.  fn may call gx_net_* freely.  Returns fn's status. */
GX_API gx_status_t gx_comm_run(struct gx_comm *c, gx_status_t (*fn)(void *arg), void *arg);

/* Core the engine thread is pinned to (or the application thread, with --core in app mode);
 * -1 when nothing was pinned. */
GX_API int gx_comm_core(const struct gx_comm *c);

/* Give up on the job: send ABORT to every peer, so their current and next operations fail at once
 * with GX_ERR_PEER naming this rank instead of after the peer timeout.  Call it before
 * gx_comm_destroy when a rank stops on an error. */
GX_API void gx_comm_abort(struct gx_comm *c);

#ifdef __cplusplus
}
#endif

#endif
