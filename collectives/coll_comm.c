/* coll_comm.c: collectives over a communicator: the per-comm state lives in the gx_comm slot and
 * every operation runs where the communicator makes progress (gx_comm_run). */
#include <string.h>

#include "coll_internal.h"
#include "comm_layer.h"

static void state_free(void *p)
{
	gx_coll_destroy(p);
}

static int idle_poll(struct gx_comm *c)
{
	struct gx_coll *s = gx_comm_coll_state(c);
	if (!s)
		return 0;
	return coll_poll(s, GX_COLL_NONE, NULL, NULL);
}

struct gx_coll *coll_comm_state(struct gx_comm *c)
{
	struct gx_coll *s = gx_comm_coll_state(c);

	if (s)
		return s;
	if (gx_coll_create(gx_comm_net(c), &s) < 0)
		return NULL;
	gx_comm_set_coll_state(c, s, state_free, idle_poll);
	return s;
}

void gx_comm_coll_counters(struct gx_comm *c, struct gx_coll_counters *out)
{
	struct gx_coll *s = gx_comm_coll_state(c);

	memset(out, 0, sizeof(*out));
	if (s)
		gx_coll_get_counters(s, out);
}

struct ar_args {
	struct gx_comm *c;
	float *buf;
	size_t count;
	enum gx_redop op;
	const struct gx_allreduce_opts *opts;
};

static gx_status_t run_allreduce(void *arg)
{
	struct ar_args *a = arg;
	struct gx_coll *s = coll_comm_state(a->c);

	if (!s)
		return gx_error(GX_ERR_NOMEM, "allreduce: cannot set up the collective state: %s", gx_last_error());
	return gx_coll_allreduce(s, a->buf, a->count, a->op, a->opts);
}

gx_status_t gx_allreduce(struct gx_comm *c, float *buf, size_t count, enum gx_redop op,
			 const struct gx_allreduce_opts *opts)
{
	struct ar_args a = { c, buf, count, op, opts };

	if (!c)
		return gx_error(GX_ERR_INVAL, "gx_allreduce: communicator is NULL (gx_comm_create)");
	return gx_comm_run(c, run_allreduce, &a);
}
