/* comm_internal.h: the communicator's insides, shared by comm.c, engine.c and topology.c only
 * (not installed; collectives/ use gx_comm.h). */
#ifndef GX_COMM_INTERNAL_H
#define GX_COMM_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "comm_layer.h"
#include "gx_bootstrap.h"
#include "gx_option.h"
#include "gx_store.h"

struct gx_engine;

struct gx_comm {
	struct gx_comm_opts opts;     /* caller's options; strings below are our copies */
	struct gx_boot boot;
	struct gx_net *net;
	struct gx_store_server *server;   /* rank 0 (or store_serve=1): the store, until destroy */
	struct gx_engine *engine;     /* GX_PROGRESS_THREAD only */
	int engine_core;              /* core the engine (or the pinned app thread) runs on, -1 none */
	char core_why[256];           /* how that core was chosen (gx-info, logs) */
	void *coll_state;             /* owned by collectives/ */
	void (*coll_free)(void *);
	int (*_Atomic idle_poll)(struct gx_comm *c);   /* set by collectives/, read by the engine */
	char *strs[3 + GX_SETTINGS_MAX];  /* strdup'ed option strings, freed at destroy */
	uint32_t nstrs;
};

/* ---- config.c ---- */
/* The communicator's settings (into struct gx_comm_opts): rank, size, store, progress, core, job id. */
extern const struct gx_option_table gx_comm_option_table;

/* ---- engine.c ---- */
/* Start the polling thread pinned to `core` (-1: unpinned). */
gx_status_t gx_engine_create(struct gx_comm *c, int core, struct gx_engine **out);
/* Run fn(arg) on the engine thread and wait for it; returns fn's status (and its message). */
gx_status_t gx_engine_run(struct gx_engine *e, gx_status_t (*fn)(void *), void *arg);
/* Stop and join the thread (after the operation in progress, if any), free it. */
void gx_engine_destroy(struct gx_engine *e);
/* CPU the engine thread last ran on (sched_getcpu inside the engine), -1 before it started. */
int gx_engine_cpu(const struct gx_engine *e);

#endif
