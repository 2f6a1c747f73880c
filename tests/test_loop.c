/* test_loop.c: the reliability protocol over the in-process loop backend: ranks are threads of this
 * process, so these tests need no sockets, no forks and no root, run in seconds, and the fault hooks
 * (fixed seeds) decide which packets are lost, duplicated, reordered or delayed.
 *
 * Covered: exact delivery (every message once, its bytes intact, 1 byte to a full payload, every
 * pair of ranks both ways); loss, duplication and reordering from the hooks; sequence numbers
 * wrapping past 2^32; SACK holes repaired by fast retransmission; RTO back-off while a peer stalls
 * and its reset once the peer is back; credits (64 packets before the first ACK, never more in
 * flight than the receiver's window); a full receive ring (drops recovered); peer timeouts (a silent
 * peer named within the timeout, busy or idle); the loop backend's own settings and errors; memory
 * registration through the net. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gx_backend.h"
#include "gx_collectives.h"
#include "gx_test.h"
#include "gx_time.h"

#define MAXR 4
#define COLL 7u                      /* coll_id of the test's messages */

struct world {
	uint32_t n;
	struct gx_net *net[MAXR];
};

static uint32_t job_seq = 100;       /* each world its own job id: worlds never meet */

/* Create n loop ranks from `base` (backend, rank, nranks and job id are set here) and connect them. */
static gx_status_t world_create(struct world *w, uint32_t n, const struct gx_transport_opts *base)
{
	unsigned char blob[MAXR][GX_ADDR_MAX];
	size_t len[MAXR];
	gx_status_t st;

	memset(w, 0, sizeof(*w));
	w->n = n;
	job_seq++;
	for (uint32_t r = 0; r < n; r++) {
		struct gx_transport_opts o = *base;
		o.backend = "loop";
		o.rank = r;
		o.nranks = n;
		o.job_id = job_seq;
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

static inline uint8_t pattern(uint32_t src, uint32_t dst, uint32_t k, uint32_t i)
{
	return (uint8_t)((src * 131u + dst * 31u + k * 7u + i * 13u) ^ (i >> 8));
}

/* ---- all-to-all exchange, one thread per rank ---------------------------------------------- */

struct xchg {
	struct world *w;
	uint32_t msgs;                    /* per ordered pair of ranks */
	atomic_uint drained;              /* ranks with everything sent, received and acknowledged */
	struct rank_state {
		uint32_t r;
		struct xchg *x;
		uint8_t *seen;            /* [src][k] */
		uint64_t received, bad;
		uint32_t max_inflight;    /* largest inflight towards any peer seen after a poll */
		gx_status_t st;
		char err[300];
	} rs[MAXR];
};

static uint32_t msg_len(uint32_t k, uint32_t max)
{
	return k == 0 ? 1 : k == 1 ? max : 1 + (k * 7919u) % max;
}

static gx_status_t on_msg(void *arg, uint32_t peer, const struct gx_desc *d, const void *p, uint32_t len)
{
	struct rank_state *s = arg;
	struct xchg *x = s->x;
	const uint8_t *b = p;

	if (peer >= x->w->n || peer == s->r || d->coll_id != COLL || d->chunk >= x->msgs || d->aux != len ||
	    s->seen[(size_t)peer * x->msgs + d->chunk]) {
		s->bad++;
		return GX_OK;
	}
	for (uint32_t i = 0; i < len; i++)
		if (b[i] != pattern(peer, s->r, d->chunk, i)) {
			s->bad++;
			return GX_OK;
		}
	s->seen[(size_t)peer * x->msgs + d->chunk] = 1;
	s->received++;
	return GX_OK;
}

static void *xchg_rank(void *arg)
{
	struct rank_state *s = arg;
	struct xchg *x = s->x;
	struct gx_net *net = x->w->net[s->r];
	const uint32_t n = x->w->n, max = gx_net_max_payload(net);
	const uint64_t expect = (uint64_t)(n - 1) * x->msgs;
	uint32_t next[MAXR] = { 0 };
	uint64_t t0 = gx_now_ns();
	int counted = 0;

	for (;;) {
		/* send what the window and credits allow, round-robin over peers */
		for (uint32_t q = 0; q < n; q++) {
			while (q != s->r && next[q] < x->msgs) {
				gx_status_t st;
				uint8_t *buf = gx_net_reserve(net, q, &st);
				if (!buf) {
					if (st == GX_ERR_AGAIN)
						break;
					s->st = st;
					snprintf(s->err, sizeof(s->err), "%s", gx_last_error());
					return NULL;
				}
				uint32_t k = next[q], len = msg_len(k, max);
				for (uint32_t i = 0; i < len; i++)
					buf[i] = pattern(s->r, q, k, i);
				struct gx_desc d = { .coll_id = COLL, .chunk = k, .aux = len,
						     .flags = k + 1 == x->msgs ? GX_DESC_ACK_REQ : 0 };
				if ((s->st = gx_net_commit(net, q, &d, len)) < 0) {
					snprintf(s->err, sizeof(s->err), "%s", gx_last_error());
					return NULL;
				}
				next[q]++;
			}
		}
		int got = gx_net_poll(net, on_msg, s);
		if (got == 0 && counted)
			gx_idle_backoff(100000);   /* done and idle: sleep a little, let the others run */
		if (got < 0) {
			s->st = got;
			snprintf(s->err, sizeof(s->err), "%s", gx_last_error());
			return NULL;
		}
		for (uint32_t q = 0; q < n; q++) {
			struct gx_peer_counters c;
			if (q == s->r)
				continue;
			gx_net_peer_counters(net, q, &c);
			if (c.inflight > s->max_inflight)
				s->max_inflight = c.inflight;
		}
		int all_sent = 1;
		for (uint32_t q = 0; q < n; q++)
			all_sent &= q == s->r || next[q] == x->msgs;
		int mine_done = all_sent && s->received == expect && gx_net_inflight(net) == 0;
		if (mine_done && !counted) {
			atomic_fetch_add(&x->drained, 1);
			counted = 1;
		}
		if (counted && atomic_load(&x->drained) == n)
			return NULL;
		if (gx_now_ns() - t0 > 60ull * 1000000000ull) {
			s->st = GX_ERR_TIMEOUT;
			snprintf(s->err, sizeof(s->err), "rank %u: %llu of %llu messages in 60 s", s->r,
				 (unsigned long long)s->received, (unsigned long long)expect);
			return NULL;
		}
	}
}

/* Every rank sends `msgs` messages to every other; returns 0 when each arrived exactly once, intact. */
static int exchange(struct world *w, uint32_t msgs, struct xchg *x)
{
	pthread_t t[MAXR];
	int ok = 1;

	memset(x, 0, sizeof(*x));
	x->w = w;
	x->msgs = msgs;
	for (uint32_t r = 0; r < w->n; r++) {
		x->rs[r].r = r;
		x->rs[r].x = x;
		x->rs[r].seen = calloc((size_t)w->n * msgs, 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(x->rs[r].seen);
	}
	for (uint32_t r = 0; r < w->n; r++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[r], NULL, xchg_rank, &x->rs[r]), 0);
	for (uint32_t r = 0; r < w->n; r++)
		pthread_join(t[r], NULL);
	for (uint32_t r = 0; r < w->n; r++) {
		struct rank_state *s = &x->rs[r];
		if (s->st < 0 || s->bad || s->received != (uint64_t)(w->n - 1) * msgs) {
			fprintf(stderr, "rank %u: status %s, %llu received, %llu bad: %s\n", r,
				gx_status_str(s->st), (unsigned long long)s->received,
				(unsigned long long)s->bad, s->err);
			ok = 0;
		}
		free(s->seen);
		s->seen = NULL;
	}
	return ok ? 0 : -1;
}

static void totals(struct world *w, struct gx_peer_counters *t)
{
	memset(t, 0, sizeof(*t));
	for (uint32_t r = 0; r < w->n; r++) {
		struct gx_peer_counters c;
		gx_net_peer_counters(w->net[r], GX_PEER_ANY, &c);
		t->sent += c.sent;
		t->received += c.received;
		t->retransmitted += c.retransmitted;
		t->duplicates += c.duplicates;
		t->fast_retransmits += c.fast_retransmits;
		t->rto_events += c.rto_events;
		t->malformed += c.malformed;
		t->dropped += c.dropped;
		t->out_of_window += c.out_of_window;
		t->fault_dropped += c.fault_dropped;
		t->fault_duplicated += c.fault_duplicated;
		t->fault_reordered += c.fault_reordered;
		t->bad_crc += c.bad_crc;
		t->bad_mac += c.bad_mac;
		t->replayed += c.replayed;
	}
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_exact(void)
{
	for (uint32_t n = 2; n <= 3; n++) {
		struct gx_transport_opts o = { 0 };
		struct world w;
		struct xchg x;
		struct gx_peer_counters t;

		CU_ASSERT_EQUAL_FATAL(world_create(&w, n, &o), GX_OK);
		CU_ASSERT_EQUAL(exchange(&w, 3000, &x), 0);
		totals(&w, &t);
		CU_ASSERT_EQUAL(t.sent, (uint64_t)n * (n - 1) * 3000);
		CU_ASSERT_EQUAL(t.received, t.sent);
		CU_ASSERT_EQUAL(t.malformed + t.dropped + t.out_of_window, 0);
		world_destroy(&w);
	}
}

static void test_faults(void)
{
	struct gx_transport_opts o = { .fault = { .drop = 0.05, .dup = 0.05, .reorder = 0.05, .seed = 11 } };
	struct world w;
	struct xchg x;
	struct gx_peer_counters t;

	CU_ASSERT_EQUAL_FATAL(world_create(&w, 3, &o), GX_OK);
	CU_ASSERT_EQUAL(exchange(&w, 3000, &x), 0);
	totals(&w, &t);
	printf("\n    3 ranks, 5%% drop/dup/reorder: sent %llu, fault drops %llu, dups %llu, reorders %llu; "
	       "retransmitted %llu (fast %llu, rto events %llu), duplicates suppressed %llu\n",
	       (unsigned long long)t.sent, (unsigned long long)t.fault_dropped,
	       (unsigned long long)t.fault_duplicated, (unsigned long long)t.fault_reordered,
	       (unsigned long long)t.retransmitted, (unsigned long long)t.fast_retransmits,
	       (unsigned long long)t.rto_events, (unsigned long long)t.duplicates);
	CU_ASSERT(t.fault_dropped > 0 && t.fault_duplicated > 0 && t.fault_reordered > 0);
	CU_ASSERT(t.retransmitted >= t.fault_dropped / 2);   /* drops of ACKs need no retransmission */
	CU_ASSERT(t.duplicates > 0);                            /* seen and suppressed, never delivered */
	CU_ASSERT(t.fast_retransmits > 0);                      /* SACK holes repaired without a timeout */
	CU_ASSERT_EQUAL(t.received, t.sent);
	world_destroy(&w);
}

static void test_wrap(void)
{
	/* 600 packets a way from 2^32 - 300: the sequence numbers wrap in mid-transfer, under loss */
	struct gx_transport_opts o = { .first_psn = 0xffffffffu - 299u,
				       .fault = { .drop = 0.03, .reorder = 0.03, .seed = 5 } };
	struct world w;
	struct xchg x;
	struct gx_peer_counters t;

	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, &o), GX_OK);
	CU_ASSERT_EQUAL(exchange(&w, 600, &x), 0);
	totals(&w, &t);
	CU_ASSERT_EQUAL(t.sent, 1200);
	CU_ASSERT(t.retransmitted > 0);
	CU_ASSERT_EQUAL(t.out_of_window + t.malformed, 0);
	world_destroy(&w);
}

static void test_delay(void)
{
	struct gx_transport_opts o = { .fault = { .delay_us = 300, .seed = 3 } };
	struct world w;
	struct xchg x;
	struct gx_peer_counters c;

	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, &o), GX_OK);
	CU_ASSERT_EQUAL(exchange(&w, 500, &x), 0);
	gx_net_peer_counters(w.net[0], 1, &c);
	CU_ASSERT(c.srtt_us >= 300);                            /* the delay shows in the RTT */
	world_destroy(&w);
}

/* Send `k` messages to rank `to` (1 unless said) without it polling: returns how many the net took. */
static uint32_t send_unpolled_to(struct gx_net *net, uint32_t to, uint32_t k)
{
	uint32_t sent = 0;

	for (uint32_t i = 0; i < k; i++) {
		gx_status_t st;
		uint8_t *b = gx_net_reserve(net, to, &st);
		if (!b) {
			CU_ASSERT_EQUAL(st, GX_ERR_AGAIN);
			break;
		}
		memset(b, 0x5a, 8);
		struct gx_desc d = { .coll_id = COLL, .chunk = i, .aux = 8 };
		CU_ASSERT_EQUAL(gx_net_commit(net, to, &d, 8), GX_OK);
		sent++;
	}
	gx_net_flush(net);
	return sent;
}

static uint32_t send_unpolled(struct gx_net *net, uint32_t k)
{
	return send_unpolled_to(net, 1, k);
}

static gx_status_t count_msg(void *arg, uint32_t peer, const struct gx_desc *d, const void *p, uint32_t len)
{
	(void)peer;
	(void)d;
	(void)p;
	(void)len;
	(*(uint64_t *)arg)++;
	return GX_OK;
}

/* Poll ranks 0 and 1 (this thread) until rank 1 has `want` messages and rank 0 nothing in flight. */
static int settle(struct world *w, uint64_t *got1, uint64_t want)
{
	uint64_t got0 = 0, t0 = gx_now_ns();

	while (*got1 < want || gx_net_inflight(w->net[0])) {
		if (gx_net_poll(w->net[0], count_msg, &got0) < 0 || gx_net_poll(w->net[1], count_msg, got1) < 0)
			return -1;
		if (gx_now_ns() - t0 > 10000000000ull)
			return -1;
	}
	return 0;
}

static void test_credits(void)
{
	/* before any ACK a sender may have 64 packets in flight, whatever its window */
	struct gx_transport_opts o = { .window = 1024 };
	struct world w;
	uint64_t got1 = 0;

	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, &o), GX_OK);
	CU_ASSERT_EQUAL(send_unpolled(w.net[0], 1000), 64);
	CU_ASSERT_EQUAL(gx_net_inflight(w.net[0]), 64);
	/* the receiver's ACK grants its window (1024): the sender may now fill its own */
	CU_ASSERT_EQUAL(settle(&w, &got1, 64), 0);
	CU_ASSERT_EQUAL(send_unpolled(w.net[0], 2000), 1024);
	CU_ASSERT_EQUAL(settle(&w, &got1, 64 + 1024), 0);
	world_destroy(&w);

	/* a receiver with a smaller window than the sender's bounds what is in flight to it */
	struct world v;
	struct gx_transport_opts a = { .window = 64 };
	CU_ASSERT_EQUAL_FATAL(world_create(&v, 2, &a), GX_OK);
	gx_net_destroy(v.net[0]);          /* rank 0 again, with a 512-packet window */
	struct gx_transport_opts big = { .backend = "loop", .rank = 0, .nranks = 2, .job_id = job_seq,
					 .window = 512 };
	unsigned char b0[GX_ADDR_MAX], b1[GX_ADDR_MAX];
	size_t l0 = sizeof(b0), l1 = sizeof(b1);
	CU_ASSERT_EQUAL_FATAL(gx_net_create(&big, &v.net[0]), GX_OK);
	CU_ASSERT_EQUAL(gx_net_local_addr(v.net[0], b0, &l0), GX_OK);
	CU_ASSERT_EQUAL(gx_net_local_addr(v.net[1], b1, &l1), GX_OK);
	CU_ASSERT_EQUAL(gx_net_connect(v.net[0], 1, b1, l1), GX_OK);
	CU_ASSERT_EQUAL(gx_net_connect(v.net[1], 0, b0, l0), GX_OK);
	got1 = 0;
	for (int round = 0; round < 20; round++) {
		uint32_t s = send_unpolled(v.net[0], 2000);
		CU_ASSERT(s <= 64);
		CU_ASSERT(gx_net_inflight(v.net[0]) <= 64);
		CU_ASSERT_EQUAL(settle(&v, &got1, got1 + s), 0);
	}
	world_destroy(&v);
}

static void test_rto_backoff(void)
{
	struct gx_transport_opts o = { .rto_min_us = 200 };
	struct world w;
	struct gx_peer_counters c0, c1;
	uint64_t got0 = 0, got1 = 0;

	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, &o), GX_OK);
	/* an RTT sample first, so the RTO is the measured one */
	CU_ASSERT_EQUAL(send_unpolled(w.net[0], 4), 4);
	CU_ASSERT_EQUAL(settle(&w, &got1, 4), 0);
	gx_net_peer_counters(w.net[0], 1, &c0);
	/* rank 1 stalls for 150 ms while rank 0 keeps polling: timeouts, each doubling the RTO */
	CU_ASSERT_EQUAL(send_unpolled(w.net[0], 4), 4);
	uint64_t t0 = gx_now_ns();
	while (gx_now_ns() - t0 < 150000000ull)
		CU_ASSERT_FATAL(gx_net_poll(w.net[0], count_msg, &got0) >= 0);
	gx_net_peer_counters(w.net[0], 1, &c1);
	printf("\n    rto before the stall %u us; after 150 ms: %u us, %llu timeouts, %llu resent\n",
	       c0.rto_us, c1.rto_us, (unsigned long long)(c1.rto_events - c0.rto_events),
	       (unsigned long long)(c1.retransmitted - c0.retransmitted));
	CU_ASSERT(c1.rto_events - c0.rto_events >= 4);
	CU_ASSERT(c1.rto_events - c0.rto_events <= 20);        /* backed off, not one per scan */
	CU_ASSERT(c1.rto_us >= 8 * c0.rto_us);
	/* rank 1 is back: everything arrives once; the back-off ends with the progress, and the RTO
	 * comes down again as fresh samples replace the one that timed the stall */
	CU_ASSERT_EQUAL(settle(&w, &got1, 8), 0);
	CU_ASSERT_EQUAL(got1, 8);
	for (int i = 0; i < 300; i++) {
		CU_ASSERT_EQUAL(send_unpolled(w.net[0], 1), 1);
		CU_ASSERT_EQUAL_FATAL(settle(&w, &got1, 9 + (uint64_t)i), 0);
	}
	struct gx_peer_counters c2;
	gx_net_peer_counters(w.net[0], 1, &c2);
	printf("    after 300 more round trips: %u us\n", c2.rto_us);
	CU_ASSERT(c2.rto_us < c1.rto_us / 2);
	world_destroy(&w);
}

static void test_peer_timeout(void)
{
	struct gx_transport_opts o = { .peer_timeout_ms = 300 };
	struct world w;
	uint64_t got0 = 0;
	int r = 0;

	/* busy: data outstanding to a rank that never polls */
	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, &o), GX_OK);
	CU_ASSERT_EQUAL(send_unpolled(w.net[0], 3), 3);
	uint64_t t0 = gx_now_ns();
	while ((r = gx_net_poll(w.net[0], count_msg, &got0)) >= 0 && gx_now_ns() - t0 < 5000000000ull)
		;
	double ms = (double)(gx_now_ns() - t0) / 1e6;
	CU_ASSERT_EQUAL(r, GX_ERR_PEER);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "peer rank 1"));
	CU_ASSERT(ms >= 290 && ms < 1500);
	printf("\n    busy peer silent: named after %.0f ms: %s\n", ms, gx_last_error());
	/* sending to it now fails at once, naming it */
	gx_status_t st;
	CU_ASSERT_PTR_NULL(gx_net_reserve(w.net[0], 1, &st));
	CU_ASSERT_EQUAL(st, GX_ERR_PEER);
	world_destroy(&w);

	/* idle: nothing outstanding, a collective waits for the rank (gx_net_check_peer) */
	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, &o), GX_OK);
	t0 = gx_now_ns();
	for (;;) {
		r = gx_net_poll(w.net[0], count_msg, &got0);
		if (r >= 0)
			r = gx_net_check_peer(w.net[0], 1, t0);
		if (r < 0 || gx_now_ns() - t0 > 5000000000ull)
			break;
	}
	ms = (double)(gx_now_ns() - t0) / 1e6;
	CU_ASSERT_EQUAL(r, GX_ERR_PEER);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "rank 1"));
	CU_ASSERT(ms >= 290 && ms < 1500);
	world_destroy(&w);
}

static void test_full_ring(void)
{
	/* a 16-slot receive ring overflows under a burst: the backend drops (tx_full) and the net
	 * retransmits until everything is there */
	struct gx_transport_opts o = { 0 };
	struct world w;
	struct xchg x;
	struct gx_backend_counters bc;

	CU_ASSERT_EQUAL(gx_transport_opts_set(&o, "loop-queue", "16"), GX_OK);
	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, &o), GX_OK);
	CU_ASSERT_EQUAL(exchange(&w, 2000, &x), 0);
	gx_net_backend_counters(w.net[0], &bc);
	CU_ASSERT(bc.tx_full > 0);
	world_destroy(&w);
}

/* A packet of another job, or of an earlier start of this one, is dropped and counted, never
 * delivered: two ranks whose identities differ in the incarnation, then in the job. */
static void test_identity(void)
{
	for (int which = 0; which < 2; which++) {
		struct gx_net *n[2];
		unsigned char blob[2][GX_ADDR_MAX];
		size_t len[2];
		job_seq++;
		for (uint32_t r = 0; r < 2; r++) {
			struct gx_transport_opts o = { .backend = "loop", .rank = r, .nranks = 2, .job_id = job_seq,
						       .peer_timeout_ms = 300 };
			CU_ASSERT_EQUAL_FATAL(gx_net_create(&o, &n[r]), GX_OK);
			/* rank 1 is a stray of an earlier start (which 0) or of another job (which 1) */
			uint64_t job = 0xfeedfacecafe0000ull + (r && which ? 1 : 0);
			uint32_t inc = r && !which ? 6 : 7;
			CU_ASSERT_EQUAL(gx_net_set_identity(n[r], job, inc), GX_OK);
			len[r] = GX_ADDR_MAX;
			CU_ASSERT_EQUAL(gx_net_local_addr(n[r], blob[r], &len[r]), GX_OK);
		}
		CU_ASSERT_EQUAL(gx_net_connect(n[0], 1, blob[1], len[1]), GX_OK);
		CU_ASSERT_EQUAL(gx_net_connect(n[1], 0, blob[0], len[0]), GX_OK);
		CU_ASSERT_EQUAL(gx_net_set_identity(n[0], 1, 1), GX_ERR_INVAL);   /* too late: connected */
		CU_ASSERT_EQUAL(send_unpolled_to(n[1], 0, 10), 10);
		uint64_t got = 0;
		uint64_t t0 = gx_now_ns();
		while (gx_now_ns() - t0 < 20000000ull)
			CU_ASSERT_FATAL(gx_net_poll(n[0], count_msg, &got) >= 0);
		struct gx_peer_counters c;
		gx_net_peer_counters(n[0], 1, &c);
		CU_ASSERT_EQUAL(got, 0);
		CU_ASSERT_EQUAL(c.received, 0);
		CU_ASSERT(which ? c.other_job >= 10 && c.other_incarnation == 0
				: c.other_incarnation >= 10 && c.other_job == 0);
		gx_net_destroy(n[1]);
		gx_net_destroy(n[0]);
	}
}

/* A DATA packet of a collective further ahead than a peer can be is dropped and counted by the
 * collective layer, not kept: the allreduce that follows is exact. */
struct far_rank {
	struct gx_net *net;
	uint32_t rank;
	float buf[1000];
	gx_status_t st;
	struct gx_coll_counters cnt;
};

static void *far_thread(void *arg)
{
	struct far_rank *f = arg;
	struct gx_coll *c = NULL;

	if ((f->st = gx_coll_create(f->net, &c)) < 0)
		return NULL;
	if (f->rank == 1)
		for (uint32_t i = 0; i < 3; i++) {
			struct gx_desc d = { .coll_id = 1000 + i, .chunk = 0, .step = 0 };
			float junk[4] = { 1e30f, 1e30f, 1e30f, 1e30f };
			if ((f->st = gx_net_send(f->net, 0, &d, junk, sizeof(junk))) < 0)
				return NULL;
		}
	for (uint32_t i = 0; i < 1000; i++)
		f->buf[i] = (float)(f->rank * 1000 + i);
	f->st = gx_coll_allreduce(c, f->buf, 1000, GX_OP_SUM, NULL);
	gx_coll_get_counters(c, &f->cnt);
	gx_coll_destroy(c);
	return NULL;
}

static void test_far_collective(void)
{
	struct gx_transport_opts o = { 0 };
	struct world w;
	struct far_rank f[2];
	pthread_t t[2];

	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, &o), GX_OK);
	for (uint32_t r = 0; r < 2; r++) {
		memset(&f[r], 0, sizeof(f[r]));
		f[r].net = w.net[r];
		f[r].rank = r;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[r], NULL, far_thread, &f[r]), 0);
	}
	for (uint32_t r = 0; r < 2; r++)
		pthread_join(t[r], NULL);
	for (uint32_t r = 0; r < 2; r++) {
		CU_ASSERT_EQUAL(f[r].st, GX_OK);
		for (uint32_t i = 0; i < 1000; i++)
			if (f[r].buf[i] != (float)(1000 + 2 * i)) {
				CU_FAIL("allreduce after far-ahead packets is not exact");
				break;
			}
	}
	CU_ASSERT_EQUAL(f[0].cnt.malformed, 3);
	CU_ASSERT_EQUAL(f[0].cnt.stashed, 0);
	world_destroy(&w);
}

/* A key file of n bytes of `fill`; returns its path (static buffer per slot). */
static const char *key_file(int slot, size_t n, uint8_t fill)
{
	static char path[2][64];
	snprintf(path[slot], sizeof(path[slot]), "/tmp/gx-test-key.%d.%d", (int)getpid(), slot);
	FILE *f = fopen(path[slot], "wb");
	for (size_t i = 0; f && i < n; i++)
		fputc((int)(fill + i), f);
	if (f)
		fclose(f);
	return path[slot];
}

/* Keyed: exact under loss, duplication and reordering; duplicated control packets are taken as
 * replays; a rank with another key is heard as forgeries only; bad key files are clear errors. */
static void test_keyed(void)
{
	struct gx_transport_opts o = { .fault = { .drop = 0.03, .dup = 0.05, .reorder = 0.03, .seed = 21 } };
	struct world w;
	struct xchg x;
	struct gx_peer_counters t;
	gx_status_t st;

	o.auth_key_file = key_file(0, 32, 7);
	CU_ASSERT_EQUAL_FATAL(world_create(&w, 3, &o), GX_OK);
	CU_ASSERT_EQUAL(gx_net_max_payload(w.net[0]), 1500 - 28 - 48 - 16);
	CU_ASSERT_EQUAL(exchange(&w, 1500, &x), 0);
	totals(&w, &t);
	CU_ASSERT(t.replayed > 0);        /* the duplicated ACKs and heartbeats */
	CU_ASSERT_EQUAL(t.bad_mac + t.bad_crc, 0);
	world_destroy(&w);

	/* rank 1 has another key: what it sends is forged as far as rank 0 knows */
	struct gx_net *n[2];
	unsigned char blob[2][GX_ADDR_MAX];
	size_t len[2];
	job_seq++;
	for (uint32_t r = 0; r < 2; r++) {
		struct gx_transport_opts k = { .backend = "loop", .rank = r, .nranks = 2, .job_id = job_seq,
					       .peer_timeout_ms = 300 };
		k.auth_key_file = r ? key_file(1, 32, 8) : key_file(0, 32, 7);
		CU_ASSERT_EQUAL_FATAL(gx_net_create(&k, &n[r]), GX_OK);
		len[r] = GX_ADDR_MAX;
		CU_ASSERT_EQUAL(gx_net_local_addr(n[r], blob[r], &len[r]), GX_OK);
	}
	CU_ASSERT_EQUAL(gx_net_connect(n[0], 1, blob[1], len[1]), GX_OK);
	CU_ASSERT_EQUAL(gx_net_connect(n[1], 0, blob[0], len[0]), GX_OK);
	CU_ASSERT_EQUAL(send_unpolled_to(n[1], 0, 10), 10);
	uint64_t got = 0, t0 = gx_now_ns();
	while (gx_now_ns() - t0 < 20000000ull)
		CU_ASSERT_FATAL(gx_net_poll(n[0], count_msg, &got) >= 0);
	struct gx_peer_counters c;
	gx_net_peer_counters(n[0], 1, &c);
	CU_ASSERT_EQUAL(got, 0);
	CU_ASSERT(c.bad_mac >= 10);
	gx_net_destroy(n[1]);
	gx_net_destroy(n[0]);

	/* key files that cannot be keys: unreadable ones are bad settings at once */
	struct gx_transport_opts set = { 0 };
	CU_ASSERT_EQUAL(gx_transport_opts_set(&set, "auth-key-file", "/nonexistent/gx.key"), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "cannot read '/nonexistent/gx.key'"));
	struct gx_transport_opts bad = { .backend = "loop", .rank = 0, .nranks = 1, .job_id = 9 };
	struct gx_net *nb = NULL;
	bad.auth_key_file = "/nonexistent/gx.key";
	st = gx_net_create(&bad, &nb);
	CU_ASSERT_EQUAL(st, GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "/nonexistent/gx.key"));
	bad.auth_key_file = key_file(1, 5, 1);
	st = gx_net_create(&bad, &nb);
	CU_ASSERT_EQUAL(st, GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "at least 16"));
	unlink(key_file(0, 0, 0));
	unlink(key_file(1, 0, 0));
}

/* A replayed DATA packet (one rank 0 already has) is a duplicate, and no sign of life: with rank 1
 * silent but for replays of its old packet, rank 0 still names it within the timeout. */
static void test_replay_no_liveness(void)
{
	struct gx_transport_opts o = { .peer_timeout_ms = 300 };
	struct world w;
	uint64_t got = 0;

	CU_ASSERT_EQUAL_FATAL(world_create(&w, 2, &o), GX_OK);
	CU_ASSERT_EQUAL(send_unpolled_to(w.net[1], 0, 1), 1);
	uint64_t t0 = gx_now_ns();
	while (got < 1 && gx_now_ns() - t0 < 1000000000ull)
		CU_ASSERT_FATAL(gx_net_poll(w.net[0], count_msg, &got) >= 0);
	CU_ASSERT_EQUAL_FATAL(got, 1);
	/* the packet rank 0 took, as rank 1 sent it: psn 0, sealed */
	struct gx_hdr h = { .magic = GX_MAGIC, .version = GX_WIRE_VERSION, .type = GX_PKT_DATA, .src_rank = 1,
			    .len = 8, .psn = 0, .coll_id = COLL, .aux = 8 };
	gx_net_identity(w.net[1], &h.job, &h.incarnation);
	uint8_t frame[sizeof(h) + 8];
	memset(frame + sizeof(h), 0x5a, 8);
	gx_hdr_seal(&h, frame + sizeof(h));
	memcpy(frame, &h, sizeof(h));
	struct gx_backend *b1 = gx_net_backend(w.net[1]);
	int r = 0;
	t0 = gx_now_ns();
	uint64_t last_replay = 0;
	while (gx_now_ns() - t0 < 3000000000ull) {
		if (gx_now_ns() - last_replay > 1000000ull) {     /* a replay every millisecond */
			struct gx_msg m = { .peer = 0, .len = sizeof(frame), .data = frame };
			b1->ops->tx_burst(b1, &m, 1);
			last_replay = gx_now_ns();
		}
		if ((r = gx_net_poll(w.net[0], count_msg, &got)) < 0)
			break;
		if ((r = gx_net_check_peer(w.net[0], 1, t0)) < 0)
			break;
	}
	double ms = (double)(gx_now_ns() - t0) / 1e6;
	struct gx_peer_counters c;
	gx_net_peer_counters(w.net[0], 1, &c);
	CU_ASSERT_EQUAL(r, GX_ERR_PEER);
	CU_ASSERT(ms < 1500);
	CU_ASSERT(c.duplicates >= 100);
	CU_ASSERT_EQUAL(got, 1);
	world_destroy(&w);
}

static void test_backend_errors(void)
{
	struct gx_transport_opts o = { .backend = "loop", .rank = 0, .nranks = 2, .job_id = 4 };
	struct gx_net *a = NULL, *b = (struct gx_net *)1;

	/* its settings: checked when set, named in the message */
	CU_ASSERT_EQUAL(gx_transport_opts_set(&o, "loop-queue", "many"), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "--loop-queue"));
	CU_ASSERT_EQUAL(gx_transport_opts_set(&o, "loop-queue", "8"), GX_OK);
	CU_ASSERT_EQUAL(gx_net_create(&o, &b), GX_ERR_INVAL);
	CU_ASSERT_PTR_NULL(b);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "loop-queue"));
	CU_ASSERT_EQUAL(gx_transport_opts_set(&o, "no-such-setting", "1"), GX_ERR_INVAL);
	o.nsettings = 0;

	/* one rank of a job once per process */
	CU_ASSERT_EQUAL_FATAL(gx_net_create(&o, &a), GX_OK);
	CU_ASSERT_EQUAL(gx_net_create(&o, &b), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "twice"));
	/* an address from another job is refused */
	struct gx_transport_opts other = o;
	struct gx_net *c = NULL;
	unsigned char blob[GX_ADDR_MAX];
	size_t len = sizeof(blob);
	other.job_id = 5;
	other.rank = 1;
	CU_ASSERT_EQUAL_FATAL(gx_net_create(&other, &c), GX_OK);
	CU_ASSERT_EQUAL(gx_net_local_addr(c, blob, &len), GX_OK);
	CU_ASSERT_EQUAL(gx_net_connect(a, 1, blob, len), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "job 4"));
	/* no device to pin near; registration is a handle the net keeps */
	char dev[32];
	int pci = 1;
	CU_ASSERT_EQUAL(gx_net_device(a, dev, sizeof(dev), &pci), GX_ERR_NODEV);
	struct gx_mr *mr = NULL;
	static float grads[1024];
	CU_ASSERT_EQUAL(gx_net_mem_register(a, grads, sizeof(grads), &mr), GX_OK);
	CU_ASSERT_PTR_NOT_NULL(mr);
	gx_net_mem_deregister(a, mr);
	CU_ASSERT_EQUAL(gx_net_mem_register(a, NULL, 0, &mr), GX_ERR_INVAL);
	CU_ASSERT_STRING_EQUAL(gx_net_backend_name(a), "loop");
	gx_net_destroy(c);
	gx_net_destroy(a);
}

int main(void)
{
	static CU_TestInfo cases[] = {
		{ "exact delivery, 2 and 3 ranks, 1 byte .. full payload, all pairs", test_exact },
		{ "5% drop, duplication and reordering from the hooks: exact, counted", test_faults },
		{ "sequence numbers wrapping past 2^32 under loss", test_wrap },
		{ "300 us receive delay", test_delay },
		{ "credits: 64 before the first ACK, the receiver's window after", test_credits },
		{ "RTO back-off while a peer stalls, reset when it is back", test_rto_backoff },
		{ "a silent peer is named within the timeout, busy or idle", test_peer_timeout },
		{ "a full receive ring drops; retransmission recovers", test_full_ring },
		{ "packets of another job or an earlier start are counted, never delivered", test_identity },
		{ "packets of a collective far ahead are dropped and counted, not stashed", test_far_collective },
		{ "keyed: exact under faults, replays and forgeries counted, bad key files", test_keyed },
		{ "replayed DATA is a duplicate and no sign of life", test_replay_no_liveness },
		{ "loop settings, duplicate ranks, foreign addresses, registration", test_backend_errors },
		CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo suites[] = {
		{ "loop", NULL, NULL, NULL, NULL, cases },
		CU_SUITE_INFO_NULL,
	};
	return gx_test_main(suites);
}
