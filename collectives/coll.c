/* coll.c: the per-net collective state: ids, the stash of early packets, scratch memory. */
#include <stdlib.h>
#include <string.h>

#include "coll_internal.h"
#include "gx_time.h"

/* A peer is at most one collective ahead (it cannot finish collective c+1 without our data), so the
 * stash holds what peers send in the time we need to finish the current one: a few windows in
 * practice.  The limit only turns a runaway peer into a clear error instead of unbounded memory. */
#define STASH_LIMIT (256u << 20)
#define COLL_AHEAD_MAX 2u                 /* collective ids a peer may be ahead (1, and one spare) */

struct stash_rec {
	uint32_t peer, len;
	uint32_t live;
	uint32_t pad;
	struct gx_desc desc;
};

static size_t rec_size(uint32_t len)
{
	return (sizeof(struct stash_rec) + len + 7u) & ~(size_t)7u;
}

gx_status_t coll_grow(void **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return GX_OK;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n);
	if (!q)
		return gx_error(GX_ERR_NOMEM, "collectives: cannot allocate %zu bytes of scratch", n);
	*p = q;
	*cap = n;
	return GX_OK;
}

gx_status_t gx_coll_create(struct gx_net *net, struct gx_coll **out)
{
	*out = NULL;
	if (!net)
		return gx_error(GX_ERR_INVAL, "gx_coll_create: net is NULL (create it with gx_net_create first)");
	struct gx_coll *s = calloc(1, sizeof(*s));
	if (!s)
		return gx_error(GX_ERR_NOMEM, "gx_coll_create: out of memory");
	s->net = net;
	s->rank = gx_net_rank(net);
	s->size = gx_net_nranks(net);
	s->stash_limit = STASH_LIMIT;
	if (coll_grow(&s->scratch, &s->scratch_cap, 4096) < 0 ||
	    coll_grow((void **)&s->stash, &s->stash_cap, 16384) < 0) {
		gx_coll_destroy(s);
		return GX_ERR_NOMEM;
	}
	*out = s;
	return GX_OK;
}

void gx_coll_destroy(struct gx_coll *s)
{
	if (!s)
		return;
	free(s->stash);
	free(s->scratch);
	free(s->tmp);
	free(s);
}

void gx_coll_get_counters(const struct gx_coll *s, struct gx_coll_counters *c)
{
	*c = s->cnt;
}

uint32_t coll_begin(struct gx_coll *s)
{
	s->last_id++;
	if (s->last_id == GX_COLL_NONE)
		s->last_id++;
	s->replay_id = s->stash_live ? s->last_id : GX_COLL_NONE;
	return s->last_id;
}

/* a is later than b in wrapping 32-bit id order. */
static int id_after(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

struct route {
	struct gx_coll *s;
	uint32_t coll_id;
	gx_deliver_fn fn;
	void *arg;
};

static gx_status_t stash_put(struct gx_coll *s, uint32_t peer, const struct gx_desc *h,
			     const void *payload, uint32_t len)
{
	size_t need = s->stash_len + rec_size(len);

	if (need > s->stash_limit)
		return gx_error(GX_ERR_NOSPC,
				"collectives: rank %u is more than %zu MiB ahead (collective %u while this rank "
				"runs %u); ranks must call the same collectives in the same order",
				peer, s->stash_limit >> 20, h->coll_id, s->last_id);
	gx_status_t st = coll_grow((void **)&s->stash, &s->stash_cap, need);
	if (st < 0)
		return st;
	struct stash_rec *r = (struct stash_rec *)(s->stash + s->stash_len);
	r->peer = peer;
	r->len = len;
	r->live = 1;
	r->desc = *h;
	memcpy(r + 1, payload, len);
	s->stash_len = need;
	s->stash_live++;
	s->cnt.stashed++;
	return GX_OK;
}

static gx_status_t route_deliver(void *arg, uint32_t peer, const struct gx_desc *h,
				 const void *payload, uint32_t len)
{
	struct route *rt = arg;
	struct gx_coll *s = rt->s;

	if (rt->coll_id != GX_COLL_NONE && h->coll_id == rt->coll_id)
		return rt->fn(rt->arg, peer, h, payload, len);
	/* A peer is at most one collective ahead of the last one this rank began (it cannot finish that
	 * one without us); an id further ahead is not a collective that can exist: not stashed. */
	if (id_after(h->coll_id, s->last_id)) {
		if (h->coll_id - s->last_id > COLL_AHEAD_MAX) {
			s->cnt.malformed++;
			return GX_OK;
		}
		return stash_put(s, peer, h, payload, len);
	}
	s->cnt.stale++;                   /* a finished or abandoned collective: nothing wants it */
	return GX_OK;
}

/* Hand the stashed packets of coll_id to fn, oldest first; compact when nothing is left. */
static int stash_replay(struct gx_coll *s, uint32_t coll_id, gx_deliver_fn fn, void *arg)
{
	int delivered = 0;

	s->replay_id = GX_COLL_NONE;
	for (size_t o = 0; o < s->stash_len;) {
		struct stash_rec *r = (struct stash_rec *)(s->stash + o);
		o += rec_size(r->len);
		if (!r->live || r->desc.coll_id != coll_id)
			continue;
		r->live = 0;
		s->stash_live--;
		gx_status_t st = fn(arg, r->peer, &r->desc, r + 1, r->len);
		if (st < 0)
			return st;
		delivered++;
	}
	if (!s->stash_live)
		s->stash_len = 0;
	return delivered;
}

int coll_poll(struct gx_coll *s, uint32_t coll_id, gx_deliver_fn fn, void *arg)
{
	int replayed = 0;

	if (coll_id != GX_COLL_NONE && s->replay_id == coll_id) {
		replayed = stash_replay(s, coll_id, fn, arg);
		if (replayed < 0)
			return replayed;
	}
	struct route rt = { s, coll_id, fn, arg };
	int n = gx_net_poll(s->net, route_deliver, &rt);
	if (n < 0)
		return n;
	return n + replayed;
}

gx_status_t coll_check_peers(struct gx_coll *s, uint64_t since_ns)
{
	for (uint32_t p = 0; p < s->size; p++) {
		if (p == s->rank)
			continue;
		gx_status_t st = gx_net_check_peer(s->net, p, since_ns);
		if (st < 0)
			return st;
	}
	return GX_OK;
}
