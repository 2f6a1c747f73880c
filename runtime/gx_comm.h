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

#include "gx_status.h"
#include "gx_transport.h"

enum gx_progress {
	GX_PROGRESS_APP = 0,      /* progress on the application thread (default) */
	GX_PROGRESS_THREAD = 1,   /* dedicated, pinned polling thread */
};

struct gx_comm_opts {
	struct gx_transport_opts tr;
	int rank, size;           /* -1: from the environment */
	const char *store;        /* "host:port"; default GX_STORE, else 127.0.0.1:29500 */
	int store_serve;          /* 1: this process serves the store (default: rank 0 does, unless GX_STORE_EXTERNAL=1) */
	uint32_t store_timeout_ms;/* hard limit on the whole rendezvous (default 30000) */
	enum gx_progress progress;
	int core;                 /* -1: chosen with hwloc (NIC-local, else a free core) */
};

/* Defaults for every field (rank/size -1, backend "udp", ...). */
void gx_comm_opts_default(struct gx_comm_opts *o);

struct gx_comm;

/* Rendezvous, open the transport, connect every peer.  NULL + gx_last_error() on failure
 * (a missing rank is named; a wrong world size is reported). */
struct gx_comm *gx_comm_init(const struct gx_comm_opts *o);
void gx_comm_destroy(struct gx_comm *c);

uint32_t gx_comm_rank(const struct gx_comm *c);
uint32_t gx_comm_size(const struct gx_comm *c);
struct gx_net *gx_comm_net(struct gx_comm *c);

/* Run fn(arg) where progress happens: inline (GX_PROGRESS_APP) or on the engine thread, waiting
 * for it to finish.  fn may call gx_net_* freely.  Returns fn's status. */
gx_status_t gx_comm_run(struct gx_comm *c, gx_status_t (*fn)(void *arg), void *arg);

/* Core the engine thread is pinned to (or the application thread, with --core in app mode);
 * -1 when nothing was pinned. */
int gx_comm_core(const struct gx_comm *c);

/* Per-communicator state owned by collectives/ (next coll_id, stashed packets): set once (e.g. by
 * the first gx_coll_begin), freed by gx_comm_destroy through free_fn after the engine stopped and
 * before the net closes.  idle_poll (may be NULL) is what the engine thread runs when it has no
 * operation: collectives/ pass a function doing gx_coll_poll(c, GX_COLL_NONE, NULL, NULL), so
 * ACKs, retransmissions and early packets of the next collective keep flowing between operations.
 * (A pointer rather than a direct call keeps runtime/ free of link-time dependencies on
 * collectives/.)  Before any state is set the engine leaves packets in the backend's queues. */
void *gx_comm_coll_state(struct gx_comm *c);
void gx_comm_set_coll_state(struct gx_comm *c, void *state, void (*free_fn)(void *),
			    int (*idle_poll)(struct gx_comm *c));

/* Give up on the job: send ABORT to every peer, so their current and next operations fail at once
 * with GX_ERR_PEER naming this rank instead of after the peer timeout.  Call it before
 * gx_comm_destroy when a rank stops on an error. */
void gx_comm_abort(struct gx_comm *c);

/* ---- used by collectives/ (implemented there) ----------------------------------------------
 * Collective ids increase by one per collective, identically on every rank.  gx_coll_poll() runs
 * one gx_net_poll() turn, hands DATA packets of coll_id to fn, and keeps packets of later
 * collectives (a peer that is ahead) until their collective starts.  The engine's idle loop calls
 * it with coll_id GX_COLL_NONE. */
#define GX_COLL_NONE 0u
uint32_t gx_coll_begin(struct gx_comm *c);                 /* next coll_id; replays stashed packets */
int gx_coll_poll(struct gx_comm *c, uint32_t coll_id, gx_deliver_fn fn, void *arg);

#endif
