/* comm_layer.h: what the communicator offers the layer above it (collectives/), not applications
 * (not installed). */
#ifndef GX_COMM_LAYER_H
#define GX_COMM_LAYER_H

#include "gx_comm.h"

/* Per-communicator state owned by collectives/ (next coll_id, stashed packets): set once (by the
 * first collective), freed by gx_comm_destroy through free_fn after the engine stopped and
 * before the net closes.  idle_poll (may be NULL) is what the engine thread runs when it has no
 * operation: collectives/ pass a function that polls with no collective running, so
 * ACKs, retransmissions and early packets of the next collective keep flowing between operations.
 * (A pointer rather than a direct call keeps runtime/ free of link-time dependencies on
 * collectives/.)  Before any state is set the engine leaves packets in the backend's queues. */
void *gx_comm_coll_state(struct gx_comm *c);
void gx_comm_set_coll_state(struct gx_comm *c, void *state, void (*free_fn)(void *),
			    int (*idle_poll)(struct gx_comm *c));

#endif
