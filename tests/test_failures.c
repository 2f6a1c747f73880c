/* test_failures.c: ranks that disagree or stop, over the in-process loop backend (ranks are threads).
 *
 * Covered: collective fingerprints (a different size, operation, algorithm or codec on one rank of 2
 * or 3: every rank fails within a second with GX_ERR_MISMATCH naming the ranks and both calls); a rank
 * that finished and left while another still runs a collective (different iteration counts); a
 * stalled collective (the peer is alive and polls, but never calls it) named within the stall timeout;
 * a dead rank named by every survivor, also by one that only heard it from another rank's ABORT. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx_collectives.h"
#include "gx_test.h"
#include "gx_time.h"

#define MAXR 3

struct world {
	uint32_t n;
	struct gx_net *net[MAXR];
};

static uint32_t job_seq = 500;
static uint32_t mtu_of[MAXR];        /* per-rank MTU for the next world (0: default) */

/* n loop ranks; per-rank peer timeouts (0: default) and one stall timeout. */
static gx_status_t world_create(struct world *w, uint32_t n, const uint32_t *peer_timeout_ms,
				uint32_t stall_timeout_ms)
{
	unsigned char blob[MAXR][GX_ADDR_MAX];
	size_t len[MAXR];
	gx_status_t st;

	memset(w, 0, sizeof(*w));
	w->n = n;
	job_seq++;
	for (uint32_t r = 0; r < n; r++) {
		struct gx_transport_opts o = { 0 };
		o.backend = "loop";
		o.rank = r;
		o.nranks = n;
		o.job_id = job_seq;
		o.peer_timeout_ms = peer_timeout_ms ? peer_timeout_ms[r] : 0;
		o.stall_timeout_ms = stall_timeout_ms;
		o.mtu = mtu_of[r];
		if ((st = gx_net_create(&o, &w->net[r])) < 0)
			return st;
		len[r] = GX_ADDR_MAX;
		if ((st = gx_net_local_addr(w->net[r], blob[r], &len[r])) < 0)
			return st;
	}
	for (uint32_t r = 0; r < n; r++)
		for (uint32_t p = 0; p < n; p++)
			if (p != r && (st = gx_net_connect(w->net[r], p, blob[p], len[p])) < 0)
				return st;
	return GX_OK;
}

static void world_destroy(struct world *w)
{
	for (uint32_t r = 0; r < w->n; r++)
		gx_net_destroy(w->net[r]);
	memset(w, 0, sizeof(*w));
}

/* What one rank does, and what came of it. */
struct rank_run {
	struct world *w;
	uint32_t rank;
	size_t count;             /* allreduce size; 0: stay silent (poll only, or nothing) */
	enum gx_redop op;
	enum gx_allreduce_algo algo;
	const char *codec;        /* non-NULL: compressed allreduce with this codec */
	uint32_t iters;
	int poll_only_ms;         /* count 0: poll the net (alive, no collective) this long; 0: do nothing */
	int leave;                /* destroy this rank's net when done (it left the job) */
	gx_status_t st;
	char msg[1024];
	uint64_t ms;              /* how long until the result */
};

static gx_status_t discard(void *arg, uint32_t peer, const struct gx_desc *d, const void *p, uint32_t len)
{
	(void)arg, (void)peer, (void)d, (void)p, (void)len;
	return GX_OK;
}

static void *rank_thread(void *arg)
{
	struct rank_run *x = arg;
	struct gx_net *net = x->w->net[x->rank];
	struct gx_coll *c = NULL;
	uint64_t t0 = gx_now_ns();

	x->st = gx_coll_create(net, &c);
	if (x->count) {
		float *buf = calloc(x->count, sizeof(float));
		struct gx_allreduce_handle *h = NULL;
		struct gx_allreduce_opts ao = { .algo = x->algo };
		if (x->codec && x->st >= 0)
			x->st = gx_coll_compressed_create(c, x->count, x->codec, NULL, &h);
		for (uint32_t i = 0; i < x->iters && x->st >= 0; i++) {
			for (size_t e = 0; e < x->count; e++)
				buf[e] = (float)(x->rank + e % 7);
			x->st = h ? gx_allreduce_compressed(h, buf, x->op) : gx_coll_allreduce(c, buf, x->count, x->op, &ao);
		}
		gx_allreduce_compressed_destroy(h);
		free(buf);
	} else if (x->poll_only_ms) {
		while (x->st >= 0 && gx_now_ns() - t0 < (uint64_t)x->poll_only_ms * 1000000ull) {
			int r = gx_net_poll(net, discard, NULL);
			if (r < 0)
				x->st = r;
			gx_idle_backoff(0);
		}
	}
	x->ms = (gx_now_ns() - t0) / 1000000ull;
	snprintf(x->msg, sizeof(x->msg), "%s", x->st < 0 ? gx_last_error() : "");
	gx_coll_destroy(c);
	if (x->st < 0)
		gx_net_abort(net);        /* what an application does on an error: tell the others */
	if (x->leave) {
		gx_net_destroy(net);
		x->w->net[x->rank] = NULL;
	}
	return NULL;
}

static void run_world(struct world *w, struct rank_run *x)
{
	pthread_t t[MAXR];

	for (uint32_t r = 0; r < w->n; r++) {
		x[r].w = w;
		x[r].rank = r;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[r], NULL, rank_thread, &x[r]), 0);
	}
	for (uint32_t r = 0; r < w->n; r++)
		pthread_join(t[r], NULL);
}

static void expect(const struct rank_run *x, gx_status_t st, uint64_t max_ms, const char *const *needles)
{
	if (x->st != st || x->ms > max_ms) {
		fprintf(stderr, "rank %u: status %s (wanted %s) after %llu ms (at most %llu): %s\n", x->rank,
			gx_status_str(x->st), gx_status_str(st), (unsigned long long)x->ms,
			(unsigned long long)max_ms, x->msg);
		CU_FAIL("wrong status or too slow");
	}
	for (const char *const *n = needles; n && *n; n++)
		if (!strstr(x->msg, *n)) {
			fprintf(stderr, "rank %u: message lacks '%s': %s\n", x->rank, *n, x->msg);
			CU_FAIL("message does not name the mismatch");
		}
}

/* Two calls that differ: every rank fails within 1 s naming both. */
static void mismatch_case(uint32_t n, const struct rank_run *proto, const char *const *needles)
{
	struct world w;
	struct rank_run x[MAXR];

	CU_ASSERT_EQUAL_FATAL(world_create(&w, n, NULL, 0), GX_OK);
	memcpy(x, proto, sizeof(x));
	run_world(&w, x);
	for (uint32_t r = 0; r < n; r++)
		expect(&x[r], GX_ERR_MISMATCH, 1000, needles);
	world_destroy(&w);
}

static void test_size(void)
{
	static const char *const two[] = { "rank 0 called allreduce of 1000 float32 (sum, rhd)",
					   "rank 1 called allreduce of 1001 float32 (sum, rhd)", NULL };
	struct rank_run x[MAXR] = { { .count = 1000, .iters = 3 }, { .count = 1001, .iters = 3 } };
	mismatch_case(2, x, two);

	/* 3 ranks, the last one differs: rank 1 may receive nothing foreign and learns it from the others */
	static const char *const three[] = { "rank 0, 1 called allreduce of 100000 float32 (sum, ring)",
					     "rank 2 called allreduce of 99999 float32 (sum, ring)", NULL };
	struct rank_run y[MAXR] = { { .count = 100000, .iters = 2 }, { .count = 100000, .iters = 2 },
				    { .count = 99999, .iters = 2 } };
	mismatch_case(3, y, three);
}

static void test_op_algo(void)
{
	static const char *const op[] = { "(sum, rhd)", "(max, rhd)", NULL };
	struct rank_run x[MAXR] = { { .count = 64, .iters = 1, .op = GX_OP_SUM },
				    { .count = 64, .iters = 1, .op = GX_OP_SUM },
				    { .count = 64, .iters = 1, .op = GX_OP_MAX } };
	mismatch_case(3, x, op);

	static const char *const algo[] = { "(sum, ring)", "(sum, rhd)", NULL };
	struct rank_run y[MAXR] = { { .count = 5000, .iters = 1, .algo = GX_ALLREDUCE_RING },
				    { .count = 5000, .iters = 1, .algo = GX_ALLREDUCE_RHD } };
	mismatch_case(2, y, algo);
}

static void test_codec(void)
{
	static const char *const q[] = { "codec 'qsgd:bits=4'", "codec 'qsgd:bits=8'", NULL };
	struct rank_run x[MAXR] = { { .count = 20000, .iters = 2, .codec = "qsgd:bits=4" },
				    { .count = 20000, .iters = 2, .codec = "qsgd:bits=8" } };
	mismatch_case(2, x, q);

	static const char *const path[] = { "codec 'fp16'", "codec 'int8'", NULL };
	struct rank_run y[MAXR] = { { .count = 20000, .iters = 1, .codec = "fp16" },
				    { .count = 20000, .iters = 1, .codec = "int8" },
				    { .count = 20000, .iters = 1, .codec = "int8" } };
	mismatch_case(3, y, path);
}

/* Ranks whose packets differ in size (--mtu differs) cut the vector differently: named too. */
static void test_packet_size(void)
{
	static const char *const mtu[] = { "in 1424-byte packets", "in 8920-byte packets", NULL };
	struct rank_run x[MAXR] = { { .count = 100000, .iters = 1 }, { .count = 100000, .iters = 1 } };
	mtu_of[0] = 1500;
	mtu_of[1] = 9000;
	mismatch_case(2, x, mtu);
	mtu_of[0] = mtu_of[1] = 0;
}

/* Rank 0 runs 3 allreduces and leaves; rank 1 runs 4: its 4th fails at once naming rank 0. */
static void test_iterations(void)
{
	struct world w;
	struct rank_run x[MAXR] = { { .count = 4096, .iters = 3, .leave = 1 }, { .count = 4096, .iters = 4 } };
	static const char *const left[] = { "collective #4", "waits for rank 0, which finished its last "
					    "collective and left", NULL };

	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, NULL, 0), GX_OK);
	run_world(&w, x);
	CU_ASSERT_EQUAL(x[0].st, GX_OK);
	expect(&x[1], GX_ERR_MISMATCH, 1000, left);
	world_destroy(&w);
}

/* Rank 1 is alive (it polls) but never calls the allreduce: rank 0 names it within the stall
 * timeout, and rank 1 hears why. */
static void test_stall(void)
{
	struct world w;
	struct rank_run x[MAXR] = { { .count = 1000, .iters = 1 }, { .poll_only_ms = 3000 } };
	static const char *const stall[] = { "collective #1 (allreduce of 1000 float32", "from rank 1, which is alive", NULL };
	static const char *const told[] = { "peer rank 0 aborted the job: a collective failed at rank 1", NULL };

	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, NULL, 400), GX_OK);
	run_world(&w, x);
	expect(&x[0], GX_ERR_TIMEOUT, 1400, stall);
	CU_ASSERT(x[0].ms >= 400);
	expect(&x[1], GX_ERR_PEER, 1600, told);
	world_destroy(&w);
}

/* Rank 1 of 3 stops.  Rank 0 (peer timeout 300 ms) names it and aborts; rank 2 (timeout 5 s) learns
 * it from rank 0's ABORT and names rank 1, not rank 0. */
static void test_dead_relay(void)
{
	struct world w;
	const uint32_t timeouts[MAXR] = { 300, 5000, 5000 };
	struct rank_run x[MAXR] = { { .count = 1000, .iters = 1 }, { 0 }, { .count = 1000, .iters = 1 } };
	static const char *const self[] = { "peer rank 1 made no progress for 300 ms", NULL };
	static const char *const relayed[] = { "peer rank 1 is dead: rank 0 heard nothing from it for 300 ms", NULL };

	CU_ASSERT_EQUAL_FATAL(world_create(&w, 3, timeouts, 0), GX_OK);
	run_world(&w, x);
	expect(&x[0], GX_ERR_PEER, 1500, self);
	expect(&x[2], GX_ERR_PEER, 2000, relayed);
	world_destroy(&w);
}

int main(void)
{
	static CU_TestInfo cases[] = {
		{ "different sizes on 2 and 3 ranks: every rank fails at once naming both calls", test_size },
		{ "different operations and algorithms", test_op_algo },
		{ "different codecs (same path and across paths)", test_codec },
		{ "different packet sizes (MTUs)", test_packet_size },
		{ "different iteration counts: the rank left is named", test_iterations },
		{ "a stalled collective names the live rank it waits for", test_stall },
		{ "every survivor names the dead rank, also from a relayed ABORT", test_dead_relay },
		CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo suites[] = {
		{ "failures", NULL, NULL, NULL, NULL, cases },
		CU_SUITE_INFO_NULL,
	};
	return gx_test_main(suites);
}
