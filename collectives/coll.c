/* coll.c: the per-net collective state: ids, the stash of early packets, scratch memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_internal.h"
#include "gx_crc.h"
#include "gx_time.h"

/* A peer is at most one collective ahead (it cannot finish collective c+1 without our data), so the
 * stash holds what peers send in the time we need to finish the current one: a few windows in
 * practice.  The limit only turns a runaway peer into a clear error instead of unbounded memory. */
#define STASH_LIMIT (256u << 20)
#define COLL_AHEAD_MAX 2u                 /* collective ids a peer may be ahead (1, and one spare) */
#define WAIT_SPIN_NS 400000ull            /* spin this long before backing off (see coll_wait_turn) */
#define WAIT_CHECK_NS 1000000ull          /* liveness, left and stall checks while idle */
#define GATHER_NS 200000000ull            /* after a mismatch: how long to wait for the others' news */

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
	s->stall_ns = (uint64_t)gx_net_stall_timeout_ms(net) * 1000000ull;
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

uint32_t coll_config_hash(const char *spec, uint64_t seed, int error_feedback)
{
	uint32_t h = gx_crc32c(spec, strlen(spec), 0);
	h = gx_crc32c(&seed, sizeof(seed), h);
	return gx_crc32c(&error_feedback, sizeof(error_feedback), h);
}

uint32_t coll_begin(struct gx_coll *s, const struct coll_fp *fp, const char *spec)
{
	s->fp = *fp;
	s->fp_hash = gx_crc32c(fp, sizeof(*fp), 0);
	snprintf(s->spec, sizeof(s->spec), "%s", spec ? spec : "");
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

static void describe(char *out, size_t len, const struct coll_fp *fp, const char *spec)
{
	static const char *const ops[] = { "sum", "avg", "max" };
	static const char *const algos[] = { "auto", "ring", "rhd" };
	static const char *const paths[] = { "sharded-ef", "ring-summable", "thc" };
	const char *op = fp->op < 3 ? ops[fp->op] : "?";

	switch (fp->kind) {
	case COLL_ALLREDUCE:
		snprintf(out, len, "allreduce of %llu float32 (%s, %s) in %u-byte packets", (unsigned long long)fp->count,
			 op, fp->algo < 3 ? algos[fp->algo] : "?", fp->config);
		break;
	case COLL_COMPRESSED:
		snprintf(out, len, "compressed allreduce of %llu float32 (%s, codec '%s', %s, settings %08x)",
			 (unsigned long long)fp->count, op, spec, fp->algo < 3 ? paths[fp->algo] : "?", fp->config);
		break;
	case COLL_THC_CODES:
		snprintf(out, len, "THC code ring of %llu values (codec '%s')", (unsigned long long)fp->count, spec);
		break;
	default:
		snprintf(out, len, "collective of kind %u", fp->kind);
	}
}

/* A packet of the current collective whose fingerprint is not this rank's: the ranks called
 * different collectives.  Fail now and tell every peer what this rank called. */
static gx_status_t mismatch(struct gx_coll *s, uint32_t peer, const struct gx_desc *h)
{
	struct gx_abort why = { .reason = GX_ABORT_COLL, .rank = peer, .detail = h->coll_id };
	struct coll_abort_info info = { .fp = s->fp, .their_hash = h->aux, .code = COLL_FAIL_MISMATCH };
	char mine[160];

	snprintf(info.spec, sizeof(info.spec), "%s", s->spec);
	memcpy(why.info, &info, sizeof(info));
	describe(mine, sizeof(mine), &s->fp, s->spec);
	gx_status_t st = gx_net_fail(s->net, GX_ERR_MISMATCH, &why, "collective #%u: rank %u called %s, rank %u "
				     "called a different collective (fingerprint %08x, ours %08x)", h->coll_id,
				     s->rank, mine, peer, h->aux, s->fp_hash);
	gx_net_abort(s->net);
	return st;
}

static gx_status_t route_deliver(void *arg, uint32_t peer, const struct gx_desc *h,
				 const void *payload, uint32_t len)
{
	struct route *rt = arg;
	struct gx_coll *s = rt->s;

	if (rt->coll_id != GX_COLL_NONE && h->coll_id == rt->coll_id) {
		if (h->aux != s->fp_hash)
			return mismatch(s, peer, h);
		return rt->fn(rt->arg, peer, h, payload, len);
	}
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
		if (r->desc.aux != s->fp_hash)
			return mismatch(s, r->peer, &r->desc);
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

static gx_status_t check_peers(struct gx_coll *s, uint64_t since_ns)
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

/* This rank's collective cannot go on: tell the peers (so they name it too) and fail. */
static gx_status_t coll_fail(struct gx_coll *s, gx_status_t status, uint32_t culprit, uint8_t code,
			     uint32_t waited_ms, const char *msg)
{
	struct gx_abort why = { .reason = GX_ABORT_COLL, .rank = culprit, .detail = s->last_id };
	struct coll_abort_info info = { .fp = s->fp, .waited_ms = waited_ms, .code = code };

	snprintf(info.spec, sizeof(info.spec), "%s", s->spec);
	memcpy(why.info, &info, sizeof(info));
	gx_status_t st = gx_net_fail(s->net, status, &why, "%s", msg);
	gx_net_abort(s->net);
	return st;
}

gx_status_t coll_wait_turn(struct gx_coll *s, struct coll_wait *w, int got, int progressed, uint32_t waiting_for)
{
	uint64_t now = gx_now_ns();
	char what[160], msg[400];
	gx_status_t st;

	if (!w->start)
		w->start = w->last_data = now;
	if (got > 0)
		w->last_data = now;
	if (got > 0 || progressed) {
		w->idle_since = 0;
		return GX_OK;
	}
	if (!w->idle_since)
		w->idle_since = now;
	if (now - w->last_check >= WAIT_CHECK_NS) {
		w->last_check = now;
		if ((st = check_peers(s, w->start)) < 0)
			return st;
		if (waiting_for != AR_NO_PEER && gx_net_peer_left(s->net, waiting_for)) {
			describe(what, sizeof(what), &s->fp, s->spec);
			snprintf(msg, sizeof(msg), "collective #%u (%s) waits for rank %u, which finished its last "
				 "collective and left: the ranks called different numbers of collectives", s->last_id,
				 what, waiting_for);
			return coll_fail(s, GX_ERR_MISMATCH, waiting_for, COLL_FAIL_LEFT, 0, msg);
		}
		if (s->stall_ns && now - w->last_data > s->stall_ns) {
			uint32_t ms = (uint32_t)((now - w->last_data) / 1000000ull);
			describe(what, sizeof(what), &s->fp, s->spec);
			if (waiting_for != AR_NO_PEER)
				snprintf(msg, sizeof(msg), "collective #%u (%s) received nothing for %u ms from rank %u, "
					 "which is alive but sends no data for it: is it calling the same collectives?",
					 s->last_id, what, ms, waiting_for);
			else
				snprintf(msg, sizeof(msg), "collective #%u (%s) received nothing for %u ms while every "
					 "peer is alive: are they calling the same collectives?", s->last_id, what, ms);
			return coll_fail(s, GX_ERR_TIMEOUT, waiting_for == AR_NO_PEER ? s->rank : waiting_for,
					 COLL_FAIL_STALL, ms, msg);
		}
	}
	/* Spin longer than a peer's back-off sleep lasts before sleeping ourselves: if both ranks spun
	 * only gx_idle_backoff's 50 us, one rank's sleep (200 us + timer slack) makes the other sleep
	 * too, whose sleep then outlasts the first one's spin, and so on: the two settle into taking
	 * turns to sleep, ~325 us per 2-rank allreduce instead of ~1.5 (measured over memif).  A spin
	 * that outlasts the sleep catches the sleeper's packet. */
	uint64_t idle = now - w->idle_since;
	gx_idle_backoff(idle < WAIT_SPIN_NS ? 0 : idle);
	return GX_OK;
}

static gx_status_t discard(void *arg, uint32_t peer, const struct gx_desc *h, const void *payload, uint32_t len)
{
	(void)arg, (void)peer, (void)h, (void)payload, (void)len;
	return GX_OK;
}

/* Did this rank, or a peer's ABORT, name rank p as the one whose call differs? */
static int named(struct gx_coll *s, const struct gx_abort *why, uint32_t p)
{
	struct gx_abort a;

	if (why->from == s->rank && why->rank == p)
		return 1;
	for (uint32_t q = 0; q < s->size; q++)
		if (q != s->rank && gx_net_peer_abort(s->net, q, &a) && a.reason == GX_ABORT_COLL && a.rank == p)
			return 1;
	return 0;
}

/* What rank r called, when known: this rank's own call, or the fingerprint its ABORT carried. */
struct known_call {
	int known;
	struct coll_fp fp;
	char spec[COLL_SPEC_LEN];
};

gx_status_t coll_explain(struct gx_coll *s, gx_status_t st)
{
	struct gx_abort why, a;
	struct coll_abort_info info;

	if (gx_net_failure(s->net, &why) < 0 || why.reason != GX_ABORT_COLL)
		return st;
	memcpy(&info, why.info, sizeof(info));
	if (info.code != COLL_FAIL_MISMATCH) {
		if (why.from == s->rank)
			return st;       /* our own stall or wait for a left rank: the message says it all */
		char what[160];
		describe(what, sizeof(what), &info.fp, info.spec);
		if (info.code == COLL_FAIL_LEFT)
			return gx_error(GX_ERR_MISMATCH, "rank %u's collective #%u (%s) waits for rank %u, which "
					"finished its last collective and left: the ranks called different numbers "
					"of collectives", why.from, why.detail, what, why.rank);
		return gx_error(GX_ERR_TIMEOUT, "rank %u's collective #%u (%s) received nothing for %u ms from "
				"rank %u, which is alive but sends no data for it", why.from, why.detail, what,
				info.waited_ms, why.rank);
	}
	/* A mismatch: each rank that received a foreign fingerprint sent its own call.  Gather them for
	 * a moment so the message names every call, not just ours. */
	struct known_call *k = calloc(s->size, sizeof(*k));
	if (!k)
		return st;
	uint32_t coll_id = why.detail;
	/* Heard of it from a peer: tell everyone what this rank called too (a rank that detected it
	 * sent its call already), so every rank can name every call, not only the hashes it saw. */
	if (why.from != s->rank) {
		struct gx_abort mine = { .reason = GX_ABORT_COLL, .rank = why.rank, .detail = coll_id,
					 .from = s->rank };
		struct coll_abort_info mi = { .fp = s->fp, .code = COLL_FAIL_MISMATCH };
		snprintf(mi.spec, sizeof(mi.spec), "%s", s->spec);
		memcpy(mine.info, &mi, sizeof(mi));
		gx_net_send_abort(s->net, &mine);
	}
	k[s->rank].known = 1;
	k[s->rank].fp = s->fp;
	snprintf(k[s->rank].spec, sizeof(k[s->rank].spec), "%s", s->spec);
	uint64_t until = gx_now_ns() + GATHER_NS;
	for (;;) {
		int missing = 0;
		for (uint32_t p = 0; p < s->size; p++) {
			if (p == s->rank || !gx_net_peer_abort(s->net, p, &a) || a.reason != GX_ABORT_COLL ||
			    a.from != p)
				continue;
			memcpy(&info, a.info, sizeof(info));
			if (info.code != COLL_FAIL_MISMATCH || a.detail != coll_id)
				continue;
			k[p].known = 1;
			k[p].fp = info.fp;
			memcpy(k[p].spec, info.spec, sizeof(info.spec));
			k[p].spec[COLL_SPEC_LEN - 1] = '\0';
		}
		for (uint32_t p = 0; p < s->size; p++)
			if (!k[p].known && !gx_net_peer_left(s->net, p))
				missing = 1;     /* every rank in the collective sends its call */
		if (!missing || gx_now_ns() > until)
			break;
		gx_net_poll(s->net, discard, NULL);
		gx_idle_backoff(0);
	}
	/* "collective #7 differs between ranks: rank 0, 1 called X; rank 2 called Y" */
	char msg[900];
	int len = snprintf(msg, sizeof(msg), "collective #%u differs between ranks:", coll_id), groups = 0;
	for (uint32_t p = 0; p < s->size && len < (int)sizeof(msg); p++) {
		if (!k[p].known || k[p].known == 2)
			continue;
		char what[160];
		describe(what, sizeof(what), &k[p].fp, k[p].spec);
		len += snprintf(msg + len, sizeof(msg) - (size_t)len, "%s rank", groups++ ? ";" : "");
		for (uint32_t q = p, first = 1; q < s->size && len < (int)sizeof(msg); q++) {
			if (k[q].known != 1 || memcmp(&k[q].fp, &k[p].fp, sizeof(k[p].fp)) || strcmp(k[q].spec, k[p].spec))
				continue;
			k[q].known = 2;
			len += snprintf(msg + len, sizeof(msg) - (size_t)len, "%s%u", first ? " " : ", ", q);
			first = 0;
		}
		if (len < (int)sizeof(msg))
			len += snprintf(msg + len, sizeof(msg) - (size_t)len, " called %s", what);
	}
	for (uint32_t p = 0; p < s->size && len < (int)sizeof(msg); p++)
		if (!k[p].known && named(s, &why, p))
			len += snprintf(msg + len, sizeof(msg) - (size_t)len, "; rank %u called another collective "
					"(its packets' fingerprint differs)", p);
	free(k);
	return gx_error(GX_ERR_MISMATCH, "%s", msg);
}
