/* comm.c: gx_comm_create (bootstrap, rendezvous through the store, connect every peer), destroy and
 * gx_comm_run.
 *
 * Rendezvous keys, all under "gx/<job_id>/<n>/" (n counts this process's gx_comm_create calls, so a
 * job may create several communicators on one store):
 *   claim/<r>  add-counter: a second process claiming rank r is reported
 *   addr/<r>   struct rv_record: world size, backend name, transport address blob
 *   ready/<r>  rank r connected every peer (the closing barrier)
 *   abort      struct rv_abort_record (the rank that found a problem and a reason code, never
 *              text): every waiter stops and builds its message from those two numbers
 *   identity   struct rv_identity, set by rank 0: the job's 64-bit identity and incarnation
 * and, per job, "gx/<job_id>/tag" (64 random bits, drawn by the first start of the job on this
 * store) and "gx/<job_id>/incarnation" (a counter: each start of the job adds one).
 */
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "comm_internal.h"
#include "transport_internal.h"
#include "gx_time.h"
#include "gx_topology.h"

#define RV_MAGIC 0x56525847u       /* "GXRV" */
#define RV_VERSION 1u
#define RV_LINGER_MS 5000u         /* rank 0's store waits this long for clients to leave */

struct rv_record {
	uint32_t magic, version, size, rank;
	char backend[16];
	uint32_t blob_len;
	uint8_t blob[GX_ADDR_MAX];
};

struct rv_identity {
	uint32_t magic, incarnation;
	uint64_t job;
};

/* Why a rank aborted the rendezvous.  The abort key carries only the rank and this code: whoever can
 * write to the store (without GX_STORE_SECRET, anyone who reaches it) cannot make the ranks print
 * its words. */
#define RV_ABORT_MAGIC 0x41525847u /* "GXRA" */
enum rv_abort_code {
	RV_ABORT_LOCAL = 1,        /* a failure of its own (transport address, identity, the store) */
	RV_ABORT_DUPLICATE_RANK,
	RV_ABORT_WORLD_SIZE,
	RV_ABORT_TRANSPORT,
	RV_ABORT_BAD_RECORD,
	RV_ABORT_CONNECT,
	RV_ABORT_CODES,
};

static const char *const rv_abort_reason[RV_ABORT_CODES] = {
	[RV_ABORT_LOCAL] = "it failed on its own (its error says why)",
	[RV_ABORT_DUPLICATE_RANK] = "it was started more than once (two processes claimed its rank): "
		"give every process its own GX_RANK",
	[RV_ABORT_WORLD_SIZE] = "wrong world size: the ranks were not all started with the same number "
		"of ranks: give every rank the same GX_SIZE (or --size)",
	[RV_ABORT_TRANSPORT] = "the ranks use different transports: give every rank the same "
		"GX_TRANSPORT",
	[RV_ABORT_BAD_RECORD] = "it found a malformed rendezvous record: is another program or gx "
		"version using the store?",
	[RV_ABORT_CONNECT] = "its transport could not connect to a peer (its error says which)",
};

struct rv_abort_record {
	uint32_t magic, rank, code;
};

static unsigned comm_generation;    /* gx_comm_create calls in this process */

/* Record "<what>: <previous message>" (the previous message is copied first: gx_error writes the
 * same thread-local buffer). */
static gx_status_t wrap(gx_status_t st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static gx_status_t wrap(gx_status_t st, const char *fmt, ...)
{
	char prev[512], what[256];
	va_list ap;

	snprintf(prev, sizeof(prev), "%s", gx_last_error());
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return gx_error(st, "%s: %s", what, prev);
}

struct rv {
	struct gx_comm *c;
	struct gx_store *st;
	char prefix[64];
	char abort_key[80];
	uint64_t deadline;
	uint32_t timeout_ms;
};

static uint32_t rv_left(const struct rv *r)
{
	uint64_t now = gx_now_ns();
	return now >= r->deadline ? 0 : (uint32_t)((r->deadline - now) / 1000000ull);
}

/* Tell every other rank to stop waiting, and why (best effort; the caller's own error is kept). */
static void rv_abort(struct rv *r, enum rv_abort_code code)
{
	struct rv_abort_record rec = { RV_ABORT_MAGIC, (uint32_t)r->c->boot.rank, (uint32_t)code };
	char mine[512];

	snprintf(mine, sizeof(mine), "%s", gx_last_error());
	if (r->st)
		gx_store_set(r->st, r->abort_key, &rec, sizeof(rec));
	gx_error(GX_ERR_IO, "%s", mine);   /* only the message is kept: the caller returns its status */
}

/* The abort key appeared: who aborted and why, told from the record's two numbers only. */
static gx_status_t rv_aborted(struct rv *r)
{
	struct rv_abort_record rec;
	size_t len = 0;
	gx_status_t st = gx_store_get(r->st, r->abort_key, &rec, sizeof(rec), &len, 0);

	if (st == GX_ERR_NOSPC || (st == GX_OK && (len != sizeof(rec) || rec.magic != RV_ABORT_MAGIC ||
						   rec.rank >= GX_MAX_RANKS || rec.code == 0 ||
						   rec.code >= RV_ABORT_CODES)))
		return gx_error(GX_ERR_CLOSED, "the rendezvous was aborted through the store at %s, but "
				"not by a rank of this gx (the abort record is not one it writes): is another "
				"program or gx version using that store? (GX_STORE_SECRET keeps others out)",
				r->c->boot.store);
	if (st < 0)
		return st;
	return gx_error(GX_ERR_CLOSED, "rank %u aborted the rendezvous: %s", rec.rank,
			rv_abort_reason[rec.code]);
}

/* Wait for <what>/<r> of every rank; name the ranks that never showed up. */
static gx_status_t rv_wait_all(struct rv *r, const char *what, const char *phase)
{
	uint32_t n = (uint32_t)r->c->boot.size, nmiss = 0;
	char **keys = calloc(n, sizeof(*keys));
	uint32_t *miss = calloc(n, sizeof(*miss));
	gx_status_t st = GX_ERR_NOMEM;

	if (!keys || !miss)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		if (!(keys[i] = malloc(96)))
			goto out;
		snprintf(keys[i], 96, "%s%s/%u", r->prefix, what, i);
	}
	st = gx_store_wait(r->st, (const char *const *)keys, n, r->abort_key, rv_left(r), miss, &nmiss);
	if (st == GX_ERR_CLOSED)
		st = rv_aborted(r);
	if (st == GX_ERR_TIMEOUT && nmiss > 0) {
		char list[200] = "";
		size_t len = 0;
		for (uint32_t i = 0; i < nmiss && len + 16 < sizeof(list); i++)
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%u",
						i == 0 ? "" : ", ", miss[i]);
		if (len + 16 >= sizeof(list) && nmiss > 1)
			snprintf(list + len, sizeof(list) - len, ", ...");
		st = gx_error(GX_ERR_TIMEOUT, "rank%s %s of %u %s the store at %s within %u ms%s",
			      nmiss > 1 ? "s" : "", list, n, phase, r->c->boot.store, r->timeout_ms,
			      !strcmp(what, "addr") ? ": was it started, with the same GX_STORE and "
			      "job id? (gx-run -n N starts all N)" : ": did it die while connecting?");
	}
out:
	if (keys)
		for (uint32_t i = 0; i < n; i++)
			free(keys[i]);
	free(keys);
	free(miss);
	return st;
}

/* Rank 0: this start's incarnation (the job's counter on the store, plus one) and the job's 64-bit
 * identity (drawn at the first start, kept on the store for later ones). */
static gx_status_t rv_identity_claim(struct rv *r, struct rv_identity *id)
{
	char key[96];
	int64_t inc = 0;
	size_t got = 0;
	gx_status_t st;

	snprintf(key, sizeof(key), "gx/%u/incarnation", r->c->boot.job_id);
	if ((st = gx_store_add(r->st, key, 1, &inc)) < 0)
		return st;
	snprintf(key, sizeof(key), "gx/%u/tag", r->c->boot.job_id);
	if (inc == 1) {
		if (getrandom(&id->job, sizeof(id->job), 0) != (ssize_t)sizeof(id->job))
			return gx_error(GX_ERR_IO, "getrandom: cannot draw the job's identity");
		if ((st = gx_store_set(r->st, key, &id->job, sizeof(id->job))) < 0)
			return st;
	} else if ((st = gx_store_get(r->st, key, &id->job, sizeof(id->job), &got, rv_left(r))) < 0) {
		return st;
	} else if (got != sizeof(id->job)) {
		return gx_error(GX_ERR_CORRUPT, "the job identity at %s on the store is malformed", key);
	}
	id->magic = RV_MAGIC;
	id->incarnation = (uint32_t)inc;
	return GX_OK;
}

static gx_status_t rendezvous(struct gx_comm *c)
{
	struct rv r = { .c = c };
	struct rv_record me = { 0 }, peer;
	char key[96];
	int64_t claims = 0;
	size_t len = GX_ADDR_MAX;
	gx_status_t st;
	enum rv_abort_code code = RV_ABORT_LOCAL;   /* what fail_abort tells the other ranks */
	const uint32_t rank = (uint32_t)c->boot.rank, size = (uint32_t)c->boot.size;

	r.timeout_ms = c->opts.store_timeout_ms;
	r.deadline = gx_now_ns() + (uint64_t)r.timeout_ms * 1000000ull;
	snprintf(r.prefix, sizeof(r.prefix), "gx/%u/%u/", c->boot.job_id, comm_generation);
	snprintf(r.abort_key, sizeof(r.abort_key), "%sabort", r.prefix);

	if (c->boot.serve && (st = gx_store_server_create(c->boot.store, 0, &c->server)) < 0)
		return wrap(st, "rank %u serves the rendezvous store", rank);
	if ((st = gx_store_create(c->boot.store, r.timeout_ms, &r.st)) < 0)
		return st;

	snprintf(key, sizeof(key), "%sclaim/%u", r.prefix, rank);
	if ((st = gx_store_add(r.st, key, 1, &claims)) < 0)
		goto out;
	if (claims > 1) {
		char msg[200];
		snprintf(msg, sizeof(msg), "rank %u was started more than once (job %u): give every "
			 "process its own GX_RANK", rank, c->boot.job_id);
		st = gx_error(GX_ERR_INVAL, "%s", msg);
		rv_abort(&r, RV_ABORT_DUPLICATE_RANK);
		goto out;
	}

	/* The job's identity on the wire: rank 0 draws it (or finds the one of an earlier start on this
	 * store) and counts this start; every rank stamps and requires it from now on. */
	struct rv_identity id = { 0 };
	snprintf(key, sizeof(key), "%sidentity", r.prefix);
	if (rank == 0) {
		if ((st = rv_identity_claim(&r, &id)) < 0)
			goto fail_abort;
		if ((st = gx_store_set(r.st, key, &id, sizeof(id))) < 0)
			goto out;
	} else {
		size_t got = 0;
		if ((st = gx_store_get(r.st, key, &id, sizeof(id), &got, rv_left(&r))) < 0)
			goto out;
		if (got != sizeof(id) || id.magic != RV_MAGIC) {
			st = gx_error(GX_ERR_CORRUPT, "rank 0's job identity in the store at %s is malformed: "
				      "is another program or gx version using it?", c->boot.store);
			code = RV_ABORT_BAD_RECORD;
			goto fail_abort;
		}
	}
	if ((st = gx_net_set_identity(c->net, id.job, id.incarnation)) < 0)
		goto fail_abort;

	me.magic = RV_MAGIC;
	me.version = RV_VERSION;
	me.size = size;
	me.rank = rank;
	snprintf(me.backend, sizeof(me.backend), "%s", c->opts.tr.backend);
	if ((st = gx_net_local_addr(c->net, me.blob, &len)) < 0)
		goto fail_abort;
	if (len > GX_ADDR_MAX) {
		st = gx_error(GX_ERR_INVAL, "transport %s: address blob of %zu bytes exceeds %d",
			      me.backend, len, GX_ADDR_MAX);
		goto fail_abort;
	}
	me.blob_len = (uint32_t)len;
	snprintf(key, sizeof(key), "%saddr/%u", r.prefix, rank);
	if ((st = gx_store_set(r.st, key, &me, sizeof(me))) < 0)
		goto out;
	if ((st = rv_wait_all(&r, "addr", "never joined")) < 0)
		goto out;

	for (uint32_t p = 0; p < size; p++) {
		size_t got = 0;
		if (p == rank)
			continue;
		snprintf(key, sizeof(key), "%saddr/%u", r.prefix, p);
		if ((st = gx_store_get(r.st, key, &peer, sizeof(peer), &got, rv_left(&r))) < 0)
			goto out;
		if (got != sizeof(peer) || peer.magic != RV_MAGIC || peer.version != RV_VERSION ||
		    peer.rank != p || peer.blob_len > GX_ADDR_MAX) {
			st = gx_error(GX_ERR_CORRUPT, "rank %u's rendezvous record is malformed: is "
				      "another program or gx version using the store at %s?", p,
				      c->boot.store);
			code = RV_ABORT_BAD_RECORD;
			goto fail_abort;
		}
		if (peer.size != size) {
			st = gx_error(GX_ERR_INVAL, "wrong world size: rank %u was started with %u ranks, "
				      "rank %u with %u: give every rank the same GX_SIZE (or --size)",
				      p, peer.size, rank, size);
			code = RV_ABORT_WORLD_SIZE;
			goto fail_abort;
		}
		peer.backend[sizeof(peer.backend) - 1] = '\0';
		if (strcmp(peer.backend, me.backend)) {
			st = gx_error(GX_ERR_INVAL, "rank %u uses transport %s, rank %u uses %s: give "
				      "every rank the same GX_TRANSPORT", p, peer.backend, rank,
				      me.backend);
			code = RV_ABORT_TRANSPORT;
			goto fail_abort;
		}
		if ((st = gx_net_connect(c->net, p, peer.blob, peer.blob_len)) < 0) {
			st = wrap(st, "connecting to rank %u", p);
			code = RV_ABORT_CONNECT;
			goto fail_abort;
		}
	}

	snprintf(key, sizeof(key), "%sready/%u", r.prefix, rank);
	if ((st = gx_store_set(r.st, key, "1", 1)) < 0)
		goto out;
	st = rv_wait_all(&r, "ready", "joined but never finished connecting to");
	goto out;
fail_abort:
	rv_abort(&r, code);
out:
	gx_store_destroy(r.st);
	return st;
}

/* Replace *s, a caller's string, by our own copy (freed at destroy); NULL stays NULL.  0 or -1. */
static int keep(struct gx_comm *c, const char **s)
{
	if (!*s)
		return 0;
	if (c->nstrs == sizeof(c->strs) / sizeof(c->strs[0]) || !(c->strs[c->nstrs] = strdup(*s)))
		return -1;
	*s = c->strs[c->nstrs++];
	return 0;
}

gx_status_t gx_comm_create(const struct gx_comm_opts *o, struct gx_comm **out)
{
	struct gx_comm *c = calloc(1, sizeof(*c));
	struct gx_core_choice choice;
	gx_status_t st;

	*out = NULL;
	if (!c)
		return gx_error(GX_ERR_NOMEM, "gx_comm_create: out of memory");
	c->opts = *o;
	gx_option_fill_unset(&gx_comm_option_table, &c->opts);   /* 0 / NULL: the tables' defaults */
	gx_transport_opts_fill(&c->opts.tr);
	c->engine_core = -1;
	int ok = keep(c, &c->opts.tr.backend) == 0 && keep(c, &c->opts.store) == 0 &&
		 keep(c, &c->opts.tr.auth_key_file) == 0;
	for (uint32_t i = 0; i < c->opts.tr.nsettings && i < GX_SETTINGS_MAX; i++)
		ok &= keep(c, &c->opts.tr.settings[i].value) == 0;
	if (!ok) {
		st = gx_error(GX_ERR_NOMEM, "gx_comm_create: out of memory");
		goto fail;
	}
	if ((st = gx_bootstrap_resolve(&c->opts, &c->boot)) < 0)
		goto fail;
	c->opts.tr.rank = (uint32_t)c->boot.rank;
	c->opts.tr.nranks = (uint32_t)c->boot.size;
	c->opts.tr.job_id = c->boot.job_id;
	comm_generation++;

	if ((st = gx_net_create(&c->opts.tr, &c->net)) < 0) {
		st = wrap(st, "rank %d: creating transport %s", c->boot.rank, c->opts.tr.backend);
		goto fail;
	}
	if (c->boot.size > 1 && (st = rendezvous(c)) < 0) {
		st = wrap(st, "rank %d of %d", c->boot.rank, c->boot.size);
		goto fail;
	}

	if (c->opts.core >= 0) {
		c->engine_core = c->opts.core;
		snprintf(c->core_why, sizeof(c->core_why), "core %d from --core/GX_CORE", c->opts.core);
	} else if (c->opts.progress == GX_PROGRESS_THREAD) {
		char dev[64];
		int is_pci = 0;
		if (gx_net_device(c->net, dev, sizeof(dev), &is_pci) < 0)
			dev[0] = '\0';         /* no device: any allowed core will do */
		if ((st = gx_topo_pick_core(dev, is_pci, c->boot.local_rank, &choice)) < 0)
			goto fail;
		c->engine_core = choice.cpu;
		snprintf(c->core_why, sizeof(c->core_why), "%s", choice.why);
	}
	if (c->opts.progress == GX_PROGRESS_THREAD) {
		if ((st = gx_engine_create(c, c->engine_core, &c->engine)) < 0)
			goto fail;
	} else if (c->opts.core >= 0 && (st = gx_topo_pin_self(c->opts.core)) < 0) {
		goto fail;    /* application-driven progress: an explicit core pins the caller */
	}
	*out = c;
	return GX_OK;
fail:
	gx_comm_destroy(c);
	return st;
}

static gx_status_t abort_on_owner(void *arg)
{
	gx_net_abort(gx_comm_net(arg));
	return GX_OK;
}

void gx_comm_abort(struct gx_comm *c)
{
	if (c && c->net)
		gx_comm_run(c, abort_on_owner, c);   /* on the thread that owns the net */
}

void gx_comm_destroy(struct gx_comm *c)
{
	if (!c)
		return;
	if (c->engine)
		gx_engine_destroy(c->engine);
	if (c->coll_free && c->coll_state)
		c->coll_free(c->coll_state);
	if (c->net)
		gx_net_destroy(c->net);
	if (c->server)
		gx_store_server_destroy(c->server, RV_LINGER_MS);
	for (uint32_t i = 0; i < c->nstrs; i++)
		free(c->strs[i]);
	free(c);
}

uint32_t gx_comm_rank(const struct gx_comm *c)
{
	return (uint32_t)c->boot.rank;
}

uint32_t gx_comm_size(const struct gx_comm *c)
{
	return (uint32_t)c->boot.size;
}

struct gx_net *gx_comm_net(struct gx_comm *c)
{
	return c->net;
}

int gx_comm_core(const struct gx_comm *c)
{
	return c->engine_core;
}

void *gx_comm_coll_state(struct gx_comm *c)
{
	return c->coll_state;
}

void gx_comm_set_coll_state(struct gx_comm *c, void *state, void (*free_fn)(void *),
			    int (*idle_poll)(struct gx_comm *c))
{
	c->coll_state = state;
	c->coll_free = free_fn;
	atomic_store(&c->idle_poll, idle_poll);
}

gx_status_t gx_comm_run(struct gx_comm *c, gx_status_t (*fn)(void *arg), void *arg)
{
	if (!c || !fn)
		return gx_error(GX_ERR_INVAL, "gx_comm_run: NULL communicator or function");
	if (c->engine)
		return gx_engine_run(c->engine, fn, arg);
	return fn(arg);
}
