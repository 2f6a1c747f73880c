/* test_allreduce: allreduce results, exact to the bit.
 *
 * Without a network: the ring and rhd schedules of every rank agree with their peers' (what rank a
 * sends in step g is what rank b expects from a in step g, range for range), and executing them in
 * memory gives the reference sums.
 *
 * Over the udp transport on loopback, N forked ranks (address blobs exchanged through pipes set up
 * by this program): every rank's buffer equals, bit for bit, the reference summed in the
 * algorithm's fixed order (ring: shard j = x_j + x_{j+1} + ... + x_{j-1}; rhd: the binary tree of
 * the folded ranks), for 1 to 5 ranks, 1 element to 16 MiB including odd sizes, both algorithms,
 * sum/avg/max, with and without 5 % injected loss; a rank killed mid-allreduce is named in
 * GX_ERR_PEER by every other rank within the peer timeout; a rank waiting for a late peer backs off
 * (uses little CPU).  Inputs span 16 binades, so a different summation order changes the bits.
 *
 * `test_allreduce dpdk-af-packet` (root) runs the same checks over DPDK net_af_packet, one
 * scripts/gx-netns host (namespace) per rank, with the 5 % loss made by the bridge instead of the
 * fault hooks, plus gx_comm_create (the store and address allgather) over that network.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "coll_internal.h"
#include "gx_build_config.h"
#include "gx_codec.h"
#include "gx_collectives.h"
#include "gx_rng.h"
#include "gx_test.h"
#include "gx_time.h"
#include "gx_net.h"
#include "thc.h"

#define MAXR 8

/* ---- inputs and references ------------------------------------------------------------------ */

static float input(uint64_t seed, uint32_t rank, size_t e)
{
	uint64_t key = gx_rng_key(seed, rank, 0, 0);
	float u = gx_rng_uniform(key, (uint32_t)e) - 0.5f;
	int ex = (int)(gx_rng_u32(key, (uint32_t)e ^ 0x80000000u) % 16) - 8;
	return ldexpf(u, ex);
}

static float combine(enum gx_redop op, float a, float b)
{
	if (op == GX_OP_MAX)
		return b > a ? b : a;
	return a + b;
}

/* Expected element e in the algorithm's order. */
static float reference(enum gx_allreduce_algo algo, enum gx_redop op, uint64_t seed, uint32_t n,
		       size_t count, size_t e)
{
	float acc;

	if (n == 1)
		return input(seed, 0, e);
	if (algo == GX_ALLREDUCE_RING) {
		uint32_t j = 0;
		for (j = 0; j < n; j++) {
			size_t o, c;
			ar_shard(count, n, j, &o, &c);
			if (e >= o && e < o + c)
				break;
		}
		acc = input(seed, j, e);
		for (uint32_t t = 1; t < n; t++)
			acc = combine(op, acc, input(seed, (j + t) % n, e));
	} else {
		uint32_t p = 1;
		float y[64];
		while (p * 2 <= n)
			p *= 2;
		uint32_t rem = n - p;
		for (uint32_t v = 0; v < p; v++)
			y[v] = v < rem ? combine(op, input(seed, 2 * v, e), input(seed, 2 * v + 1, e))
				       : input(seed, v + rem, e);
		for (uint32_t m = 1; m < p; m *= 2)
			for (uint32_t v = 0; v < p; v++)
				if (!(v & m) && !(v % m))
					y[v] = combine(op, y[v], y[v | m]);
		acc = y[0];
	}
	if (op == GX_OP_AVG)
		acc = acc / (float)n;
	return acc;
}

static uint64_t digest(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

/* ---- schedules without a network ------------------------------------------------------------ */

struct sim {
	uint32_t n;
	struct ar_step *steps[MAXR];
	uint32_t nsteps[MAXR];
	float *buf[MAXR];
	struct gx_coll fake[MAXR];
};

static void sim_build(struct sim *S, enum gx_allreduce_algo algo, uint32_t n, size_t count, uint32_t epp,
		      int whole)
{
	memset(S, 0, sizeof(*S));
	S->n = n;
	for (uint32_t r = 0; r < n; r++) {
		struct ar_run run;
		memset(&run, 0, sizeof(run));
		run.s = &S->fake[r];
		run.rank = r;
		run.n = n;
		run.count = count;
		run.epp = epp;
		gx_status_t st = algo == GX_ALLREDUCE_RING ? ar_schedule_ring(&run) : ar_schedule_rhd(&run, whole);
		CU_ASSERT_EQUAL_FATAL(st, GX_OK);
		S->nsteps[r] = run.nsteps;
		S->steps[r] = malloc(sizeof(struct ar_step) * (run.nsteps ? run.nsteps : 1));
		if (run.nsteps)
			memcpy(S->steps[r], run.steps, sizeof(struct ar_step) * run.nsteps);
		free(S->fake[r].scratch);
		S->buf[r] = malloc(sizeof(float) * (count ? count : 1));
	}
}

static void sim_free(struct sim *S)
{
	for (uint32_t r = 0; r < S->n; r++) {
		free(S->steps[r]);
		free(S->buf[r]);
	}
}

/* Run the schedules step-synchronously (a valid order for both executors) and compare. */
static void sim_check(enum gx_allreduce_algo algo, uint32_t n, size_t count, uint32_t epp, int whole,
		      enum gx_redop op)
{
	struct sim S;
	uint64_t seed = 1000 + n * 31 + count;

	sim_build(&S, algo, n, count, epp, whole);
	for (uint32_t r = 1; r < n; r++)
		CU_ASSERT_EQUAL_FATAL(S.nsteps[r], S.nsteps[0]);
	for (uint32_t r = 0; r < n; r++)
		for (size_t e = 0; e < count; e++)
			S.buf[r][e] = input(seed, r, e);
	float *snap[MAXR];
	for (uint32_t r = 0; r < n; r++)
		snap[r] = malloc(sizeof(float) * (count ? count : 1));
	for (uint32_t g = 0; g < S.nsteps[0]; g++) {
		for (uint32_t r = 0; r < n; r++)
			memcpy(snap[r], S.buf[r], sizeof(float) * count);
		for (uint32_t r = 0; r < n; r++) {
			const struct ar_step *st = &S.steps[r][g];
			if (st->send_peer == AR_NO_PEER)
				continue;
			uint32_t q = st->send_peer;
			CU_ASSERT_FATAL(q < n && q != r);
			const struct ar_step *rs = &S.steps[q][g];
			/* the receiver expects exactly this range from exactly this rank */
			CU_ASSERT_EQUAL_FATAL(rs->recv_peer, r);
			CU_ASSERT_EQUAL_FATAL(rs->recv_cnt, st->send_cnt);
			CU_ASSERT_EQUAL_FATAL(rs->recv_chunks, st->send_chunks);
			for (size_t i = 0; i < st->send_cnt; i++) {
				float *d = &S.buf[q][rs->recv_off + i];
				float v = snap[r][st->send_off + i];
				*d = rs->recv_op == AR_COPY ? v : combine(op, *d, v);
				if (rs->owner && op == GX_OP_AVG)
					*d = *d / (float)n;
			}
		}
		for (uint32_t r = 0; r < n; r++) {     /* every expected receive has a sender */
			const struct ar_step *rs = &S.steps[r][g];
			if (rs->recv_peer != AR_NO_PEER)
				CU_ASSERT_EQUAL_FATAL(S.steps[rs->recv_peer][g].send_peer, r);
		}
	}
	size_t bad = 0;
	for (uint32_t r = 0; r < n; r++)
		for (size_t e = 0; e < count; e++) {
			float want = reference(algo, op, seed, n, count, e);
			float got = S.buf[r][e];
			if (algo == GX_ALLREDUCE_RHD && op == GX_OP_AVG)
				got = got / (float)n;     /* rhd divides at the end, on every rank */
			if (memcmp(&want, &got, 4))
				bad++;
		}
	CU_ASSERT_EQUAL(bad, 0);
	if (bad)
		fprintf(stderr, "sim %s n=%u count=%zu epp=%u whole=%d op=%d: %zu wrong\n",
			gx_allreduce_algo_name(algo), n, count, epp, whole, op, bad);
	for (uint32_t r = 0; r < n; r++)
		free(snap[r]);
	sim_free(&S);
}

static void test_schedules(void)
{
	static const size_t counts[] = { 1, 2, 3, 7, 8, 17, 100, 1001, 4099 };
	for (uint32_t n = 1; n <= MAXR; n++)
		for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
			for (int op = GX_OP_SUM; op <= GX_OP_MAX; op++) {
				sim_check(GX_ALLREDUCE_RING, n, counts[i], 7, 0, (enum gx_redop)op);
				sim_check(GX_ALLREDUCE_RHD, n, counts[i], 7, 0, (enum gx_redop)op);
				sim_check(GX_ALLREDUCE_RHD, n, counts[i], 7, 1, (enum gx_redop)op);
			}
}

static void test_choose(void)
{
	struct gx_allreduce_opts o;
	enum gx_allreduce_algo a;

	gx_allreduce_opts_default(&o);
	CU_ASSERT_EQUAL(gx_allreduce_choose(4, 4, &o), GX_ALLREDUCE_RHD);
	CU_ASSERT_EQUAL(gx_allreduce_choose(64u << 20, 4, &o), GX_ALLREDUCE_RING);
	o.algo = GX_ALLREDUCE_RING;
	CU_ASSERT_EQUAL(gx_allreduce_choose(4, 4, &o), GX_ALLREDUCE_RING);
	CU_ASSERT_EQUAL(gx_allreduce_algo_parse("rhd", &a), GX_OK);
	CU_ASSERT_EQUAL(a, GX_ALLREDUCE_RHD);
	CU_ASSERT_EQUAL(gx_allreduce_algo_parse("tree", &a), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "ring"));
}

/* ---- forked ranks over a real transport ----------------------------------------------------- */

struct world_cfg {
	uint32_t n;
	double drop;
	uint32_t peer_timeout_ms;
};

/* What a rank reports to the parent, one record per case. */
struct report {
	int32_t status;
	uint32_t wrong;
	uint64_t digest;
	uint64_t t_ns;            /* gx_now_ns() when the case ended */
	uint64_t cpu_us;          /* CPU time the case used */
	uint64_t retx;
	/* the rank's counters of rejected packets after the case (gx_peer_counters, all peers) */
	uint64_t malformed, bad_crc, other_job, other_incarnation, dropped, duplicates, out_of_window;
	uint64_t bad_mac, replayed;
	char msg[200];
};

/* Sums over the ranks of the last case's counters (collect()). */
static struct report g_totals;

typedef void (*rank_fn)(struct gx_coll *s, uint32_t rank, uint32_t n, int up);

static void report_send(int up, const struct report *r)
{
	ssize_t w = write(up, r, sizeof(*r));
	(void)w;
}

static uint64_t cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_sec * 1000000 +
	       ru.ru_stime.tv_usec;
}

/* ---- the transport of the forked ranks ------------------------------------------------------
 * udp on loopback (default), or (test_allreduce dpdk-af-packet) DPDK net_af_packet on eth0 of one
 * scripts/gx-netns host per rank: rank r enters namespace <prefix>-h<r> (IPv6 off, static
 * neighbours, a bridge in <prefix>-sw) and opens its port with --no-huge --no-shconf, as
 * tests/test_transport.c's dpdk-af-packet configuration does over a veth pair.  The EAL only ever
 * starts in the forked ranks.  Loss over dpdk is real: the bridge drops 5 % of the frames it
 * delivers to every host (gx-netns --loss, nftables), instead of the net's fault hooks. */
static int g_dpdk;
static int g_udp_ns;                      /* udp between gx-netns hosts (the hostile tests) */
static int g_hostile;                     /* the hostile tests run */
static char g_keyfile[64];                /* keyed runs: --auth-key-file of every rank */
static char g_prefix[16];                 /* gx-netns prefix, gxco<pid> */
static char g_netns[512];                 /* path of scripts/gx-netns */
static uint32_t g_hosts;                  /* hosts of the current network */
static double g_net_loss;                 /* loss (%) the current network was built with */
static char g_eal[256];                   /* this rank's EAL arguments (set in the child) */

static int enter_host(uint32_t rank)
{
	char path[96];

	snprintf(path, sizeof(path), "/run/netns/%s-h%u", g_prefix, rank);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		fprintf(stderr, "rank %u: cannot enter namespace %s: %s\n", rank, path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/* Transport options of rank `rank` (after enter_host for dpdk). */
static void tr_opts(struct gx_transport_opts *o, uint32_t rank, uint32_t n)
{
	memset(o, 0, sizeof(*o));
	o->rank = rank;
	o->nranks = n;
	o->job_id = 4242;
	if (g_keyfile[0])
		o->auth_key_file = g_keyfile;
	if (g_udp_ns) {                   /* the host's own address on the test network */
		static char ip[24];
		snprintf(ip, sizeof(ip), "10.77.0.%u", rank + 1);
		o->backend = "udp";
		gx_transport_opts_set(o, "udp-ip", ip);
		return;
	}
	if (!g_dpdk) {
		o->backend = "udp";
		gx_transport_opts_set(o, "udp-ip", "127.0.0.1");
		return;
	}
	/* eth0 carries 10.77.0.<r+1> for the kernel; the port uses the default 10.0.0.<r+1>, an
	 * address the kernel does not own (no ICMP port-unreachable answers) */
	/* the hostile test's neighbour learns live frames from what rank 0's host sends: frames that
	 * bypass the qdisc layer skip the taps it listens on */
	snprintf(g_eal, sizeof(g_eal), "--no-huge --no-shconf --no-pci --log-level=warning "
		 "--vdev=net_af_packet0,iface=eth0,framecnt=4096%s", g_hostile ? ",qdisc_bypass=0" : "");
	o->backend = "dpdk";
	gx_transport_opts_set(o, "dpdk-eal", g_eal);
}

static void child(const struct world_cfg *w, uint32_t rank, int up, int down, rank_fn fn)
{
	struct gx_transport_opts o;
	unsigned char blob[GX_ADDR_MAX];
	size_t len = sizeof(blob);

	if ((g_dpdk || g_udp_ns) && enter_host(rank) < 0)
		_exit(3);
	tr_opts(&o, rank, w->n);
	o.peer_timeout_ms = w->peer_timeout_ms;
	o.fault.drop = g_dpdk || g_udp_ns ? 0.0 : w->drop;
	o.fault.seed = 77 + rank;
	struct gx_net *net = NULL;
	gx_net_create(&o, &net);
	if (!net || gx_net_local_addr(net, blob, &len) < 0) {
		fprintf(stderr, "rank %u: %s\n", rank, gx_last_error());
		_exit(3);
	}
	uint32_t l32 = (uint32_t)len;
	if (write(up, &l32, 4) != 4 || write(up, blob, len) != (ssize_t)len)
		_exit(3);
	for (uint32_t p = 0; p < w->n; p++) {
		unsigned char pb[GX_ADDR_MAX];
		uint32_t pl;
		if (read(down, &pl, 4) != 4 || pl > sizeof(pb) || read(down, pb, pl) != (ssize_t)pl)
			_exit(3);
		if (p != rank && gx_net_connect(net, p, pb, pl) < 0) {
			fprintf(stderr, "rank %u: connect %u: %s\n", rank, p, gx_last_error());
			_exit(3);
		}
	}
	struct gx_coll *s = NULL;
	gx_coll_create(net, &s);
	if (!s)
		_exit(3);
	fn(s, rank, w->n, up);
	/* Keep polling (acking, retransmitting our last packets) until every rank is done, as the
	 * engine's idle loop does between collectives. */
	uint64_t idle_since = gx_now_ns();
	for (;;) {
		struct pollfd pf = { down, POLLIN, 0 };
		if (poll(&pf, 1, 0) != 0)
			break;
		int got = coll_poll(s, GX_COLL_NONE, NULL, NULL);
		uint64_t now = gx_now_ns();
		if (got > 0)
			idle_since = now;
		if (got < 0)
			idle_since = now - 1000000000ull;   /* a dead peer (kill test): just wait */
		gx_idle_backoff(now - idle_since);
	}
	gx_coll_destroy(s);
	gx_net_destroy(net);
	_exit(0);
}

struct world {
	uint32_t n;
	pid_t pid[MAXR];
	int up[MAXR], down[MAXR];
};

static int world_start(struct world *W, const struct world_cfg *w, rank_fn fn)
{
	memset(W, 0, sizeof(*W));
	W->n = w->n;
	fflush(stdout);
	fflush(stderr);
	for (uint32_t r = 0; r < w->n; r++) {
		int u[2], d[2];
		if (pipe(u) || pipe(d))
			return -1;
		pid_t pid = fork();
		if (pid == 0) {
			close(u[0]);
			close(d[1]);
			for (uint32_t q = 0; q < r; q++) {
				close(W->up[q]);
				close(W->down[q]);
			}
			child(w, r, u[1], d[0], fn);
		}
		close(u[1]);
		close(d[0]);
		W->pid[r] = pid;
		W->up[r] = u[0];
		W->down[r] = d[1];
	}
	unsigned char blobs[MAXR][GX_ADDR_MAX];
	uint32_t lens[MAXR];
	for (uint32_t r = 0; r < w->n; r++)
		if (read(W->up[r], &lens[r], 4) != 4 || lens[r] > GX_ADDR_MAX ||
		    read(W->up[r], blobs[r], lens[r]) != (ssize_t)lens[r])
			return -1;
	for (uint32_t r = 0; r < w->n; r++)
		for (uint32_t p = 0; p < w->n; p++)
			if (write(W->down[r], &lens[p], 4) != 4 || write(W->down[r], blobs[p], lens[p]) != (ssize_t)lens[p])
				return -1;
	return 0;
}

/* Read one report from rank r within timeout_ms; -1 on timeout or a dead rank. */
static int world_report(struct world *W, uint32_t r, struct report *rep, int timeout_ms)
{
	struct pollfd pf = { W->up[r], POLLIN, 0 };
	if (poll(&pf, 1, timeout_ms) != 1)
		return -1;
	return read(W->up[r], rep, sizeof(*rep)) == sizeof(*rep) ? 0 : -1;
}

static void world_end(struct world *W)
{
	for (uint32_t r = 0; r < W->n; r++) {
		char go = 1;
		if (write(W->down[r], &go, 1) < 0) {
		}
		close(W->down[r]);
	}
	for (uint32_t r = 0; r < W->n; r++) {
		int status;
		for (int i = 0; i < 200; i++) {
			if (waitpid(W->pid[r], &status, WNOHANG) == W->pid[r])
				break;
			if (i == 199) {
				kill(W->pid[r], SIGKILL);
				waitpid(W->pid[r], &status, 0);
			}
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		close(W->up[r]);
	}
}

/* ---- the cases ------------------------------------------------------------------------------ */

struct ar_case {
	enum gx_allreduce_algo algo;
	enum gx_redop op;
	size_t count;
};

static const struct ar_case *g_cases;
static size_t g_ncases;

/* The allreduce under test: over a bare gx_coll, or over a communicator (gx_comm_create). */
typedef gx_status_t (*ar_entry)(void *ctx, float *buf, size_t count, enum gx_redop op,
				const struct gx_allreduce_opts *o);

static gx_status_t ar_over_coll(void *ctx, float *buf, size_t count, enum gx_redop op,
				const struct gx_allreduce_opts *o)
{
	return gx_coll_allreduce(ctx, buf, count, op, o);
}

static gx_status_t ar_over_comm(void *ctx, float *buf, size_t count, enum gx_redop op,
				const struct gx_allreduce_opts *o)
{
	return gx_allreduce(ctx, buf, count, op, o);
}

/* Run g_cases in order, one report per case: status, elements that differ from the reference (in
 * bits), a digest of the whole result, the retransmissions so far. */
static void cases_over(ar_entry ar, void *ctx, struct gx_net *net, uint32_t rank, uint32_t n, int up)
{
	for (size_t c = 0; c < g_ncases; c++) {
		const struct ar_case *k = &g_cases[c];
		uint64_t seed = 5000 + c;
		struct report rep;
		struct gx_allreduce_opts o;
		float *buf = malloc(sizeof(float) * (k->count ? k->count : 1));

		memset(&rep, 0, sizeof(rep));
		for (size_t e = 0; e < k->count; e++)
			buf[e] = input(seed, rank, e);
		gx_allreduce_opts_default(&o);
		o.algo = k->algo;
		rep.status = ar(ctx, buf, k->count, k->op, &o);
		if (rep.status < 0)
			snprintf(rep.msg, sizeof(rep.msg), "%s", gx_last_error());
		for (size_t e = 0; e < k->count && rep.status >= 0; e++) {
			float want = reference(k->algo, k->op, seed, n, k->count, e);
			if (memcmp(&want, &buf[e], 4)) {
				if (!rep.wrong)
					snprintf(rep.msg, sizeof(rep.msg), "element %zu: got %a want %a", e,
						 (double)buf[e], (double)want);
				rep.wrong++;
			}
		}
		rep.digest = digest(buf, k->count * 4);
		struct gx_peer_counters pc;
		gx_net_peer_counters(net, GX_PEER_ANY, &pc);
		rep.retx = pc.retransmitted;
		rep.malformed = pc.malformed;
		rep.bad_crc = pc.bad_crc;
		rep.other_job = pc.other_job;
		rep.other_incarnation = pc.other_incarnation;
		rep.dropped = pc.dropped;
		rep.duplicates = pc.duplicates;
		rep.out_of_window = pc.out_of_window;
		rep.bad_mac = pc.bad_mac;
		rep.replayed = pc.replayed;
		report_send(up, &rep);
		free(buf);
	}
}

static void run_cases(struct gx_coll *s, uint32_t rank, uint32_t n, int up)
{
	cases_over(ar_over_coll, s, s->net, rank, n, up);
}

/* Read every rank's report of every case and check them: status, exact bits, same digest on all
 * ranks; with loss, that something was retransmitted.  Returns 0 if every rank reported. */
static int collect(struct world *W, const struct world_cfg *w, const struct ar_case *cases, size_t ncases,
		   int timeout_ms)
{
	uint64_t retx = 0;

	memset(&g_totals, 0, sizeof(g_totals));
	for (size_t c = 0; c < ncases; c++) {
		uint64_t d0 = 0;
		for (uint32_t r = 0; r < w->n; r++) {
			struct report rep;
			int ok = world_report(W, r, &rep, timeout_ms);
			CU_ASSERT_EQUAL(ok, 0);
			if (ok) {
				fprintf(stderr, "n=%u case %zu (%s count %zu): rank %u did not report\n", w->n, c,
					gx_allreduce_algo_name(cases[c].algo), cases[c].count, r);
				return -1;
			}
			CU_ASSERT_EQUAL(rep.status, GX_OK);
			CU_ASSERT_EQUAL(rep.wrong, 0);
			if (rep.status != GX_OK || rep.wrong)
				fprintf(stderr, "n=%u drop=%.2f case %zu (%s op %d count %zu) rank %u: %s, %u wrong: %s\n",
					w->n, w->drop, c, gx_allreduce_algo_name(cases[c].algo), cases[c].op,
					cases[c].count, r, gx_status_str(rep.status), rep.wrong, rep.msg);
			if (r == 0)
				d0 = rep.digest;
			CU_ASSERT_EQUAL(rep.digest, d0);     /* bit-identical on every rank */
			if (c + 1 == ncases) {
				retx += rep.retx;
				g_totals.malformed += rep.malformed;
				g_totals.bad_crc += rep.bad_crc;
				g_totals.other_job += rep.other_job;
				g_totals.other_incarnation += rep.other_incarnation;
				g_totals.dropped += rep.dropped;
				g_totals.duplicates += rep.duplicates;
				g_totals.out_of_window += rep.out_of_window;
				g_totals.bad_mac += rep.bad_mac;
				g_totals.replayed += rep.replayed;
			}
		}
	}
	if (w->drop > 0) {
		fprintf(stderr, "n=%u, %.0f %% loss: %llu packets retransmitted\n", w->n, 100 * w->drop,
			(unsigned long long)retx);
		CU_ASSERT(retx > 0);      /* the loss really happened and was repaired */
	}
	return 0;
}

static void run_world(const struct world_cfg *w, const struct ar_case *cases, size_t ncases, int timeout_ms)
{
	struct world W;

	g_cases = cases;
	g_ncases = ncases;
	CU_ASSERT_EQUAL_FATAL(world_start(&W, w, run_cases), 0);
	collect(&W, w, cases, ncases, timeout_ms);
	world_end(&W);
}

#define MIB4 (4u << 20)           /* 16 MiB of floats */

static void test_sizes(void)
{
	static const size_t counts[] = { 1, 2, 5, 358, 359, 1001, 65537, 300007 };
	struct ar_case cases[2 * 3 * 8 + 2];

	for (uint32_t n = 1; n <= 5; n++) {
		size_t nc = 0;
		for (int a = GX_ALLREDUCE_RING; a <= GX_ALLREDUCE_RHD; a++)
			for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
				enum gx_redop op = (enum gx_redop)(i % 3);
				cases[nc++] = (struct ar_case){ (enum gx_allreduce_algo)a, op, counts[i] };
			}
		if (n == 2 || n == 3) {       /* 16 MiB (odd element count: 4M + 3) */
			cases[nc++] = (struct ar_case){ GX_ALLREDUCE_RING, GX_OP_SUM, MIB4 + 3 };
			cases[nc++] = (struct ar_case){ GX_ALLREDUCE_RHD, GX_OP_AVG, MIB4 + 3 };
		}
		struct world_cfg w = { n, 0.0, 10000 };
		run_world(&w, cases, nc, 60000);
	}
}

/* ---- the dpdk test network ------------------------------------------------------------------- */
#define NET_HOSTS 5


/* NET_HOSTS hosts on a bridge whose links drop loss_pct % of the frames they deliver (0: none);
 * rebuilt only when the loss changes.  -1 if gx-netns failed. */
static int net_up(double loss_pct)
{
	if (g_hosts == NET_HOSTS && g_net_loss == loss_pct)
		return 0;
	char loss[32] = "";
	if (loss_pct > 0)
		snprintf(loss, sizeof(loss), " --loss %g", loss_pct);
	g_hosts = 0;
	if (gx_test_sh("timeout 60 %s up -n %d --prefix %s%s >/dev/null", g_netns, NET_HOSTS, g_prefix, loss))
		return -1;
	g_hosts = NET_HOSTS;
	g_net_loss = loss_pct;
	return 0;
}

/* Networks gxco<pid> whose test process died without tearing them down. */
static void remove_stale_networks(void)
{
	char cmd[600], line[128];

	snprintf(cmd, sizeof(cmd), "%s list 2>/dev/null", g_netns);
	FILE *f = popen(cmd, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		long pid;
		char tail[8] = "";
		if (sscanf(line, "gxco%ld%7s", &pid, tail) != 1 || pid <= 0)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		gx_test_sh("timeout 60 %s down --prefix gxco%ld >/dev/null 2>&1", g_netns, pid);
	}
	pclose(f);
}

static int dpdk_suite_init(void)
{
	gx_test_path(g_netns, sizeof(g_netns), 0, "scripts/gx-netns");
	remove_stale_networks();
	snprintf(g_prefix, sizeof(g_prefix), "gxco%d", (int)getpid() % 100000000);
	return net_up(0) ? -1 : 0;
}

static int dpdk_suite_clean(void)
{
	if (g_prefix[0])
		gx_test_sh("timeout 60 %s down --prefix %s >/dev/null", g_netns, g_prefix);
	g_hosts = 0;
	return 0;
}

static void test_loss(void)
{
	static const struct ar_case cases[] = {
		{ GX_ALLREDUCE_RHD, GX_OP_SUM, 1 },
		{ GX_ALLREDUCE_RING, GX_OP_SUM, 3 },
		{ GX_ALLREDUCE_RING, GX_OP_AVG, 100003 },
		{ GX_ALLREDUCE_RHD, GX_OP_SUM, 100003 },
		{ GX_ALLREDUCE_RHD, GX_OP_AVG, 1500 },
		{ GX_ALLREDUCE_RING, GX_OP_MAX, 20001 },
	};
	if (g_dpdk)
		CU_ASSERT_EQUAL_FATAL(net_up(5), 0);    /* real loss in the bridge, not the fault hooks */
	for (uint32_t n = 2; n <= 5; n += 3) {
		struct world_cfg w = { n, 0.05, 10000 };
		run_world(&w, cases, sizeof(cases) / sizeof(cases[0]), 60000);
	}
	if (g_dpdk)
		CU_ASSERT_EQUAL(net_up(0), 0);
}

/* ---- a rank killed mid-allreduce ------------------------------------------------------------ */

#define KILL_TIMEOUT_MS 1500
#define KILL_COUNT (1u << 20)

static void run_until_error(struct gx_coll *s, uint32_t rank, uint32_t n, int up)
{
	struct report rep;
	float *buf = malloc(sizeof(float) * KILL_COUNT);
	struct gx_allreduce_opts o;

	(void)n;
	gx_allreduce_opts_default(&o);
	o.algo = GX_ALLREDUCE_RING;
	memset(&rep, 0, sizeof(rep));
	for (size_t e = 0; e < KILL_COUNT; e++)
		buf[e] = 1.0f;
	if (rank == 2)                /* tell the parent the victim is inside the allreduces */
		report_send(up, &rep);
	for (int i = 0; i < 100000; i++) {
		rep.status = gx_coll_allreduce(s, buf, KILL_COUNT, GX_OP_AVG, &o);
		if (rep.status < 0)
			break;
	}
	rep.t_ns = gx_now_ns();
	snprintf(rep.msg, sizeof(rep.msg), "%s", gx_last_error());
	report_send(up, &rep);
	free(buf);
}

static void test_peer_killed(void)
{
	struct world_cfg w = { 3, 0.0, KILL_TIMEOUT_MS };
	struct world W;
	struct report rep;

	CU_ASSERT_EQUAL_FATAL(world_start(&W, &w, run_until_error), 0);
	CU_ASSERT_EQUAL_FATAL(world_report(&W, 2, &rep, 10000), 0);
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	uint64_t killed = gx_now_ns();
	kill(W.pid[2], SIGKILL);
	for (uint32_t r = 0; r < 2; r++) {
		int ok = world_report(&W, r, &rep, KILL_TIMEOUT_MS + 10000);
		CU_ASSERT_EQUAL(ok, 0);
		if (ok)
			continue;
		double after_ms = (double)(rep.t_ns - killed) / 1e6;
		fprintf(stderr, "rank %u: %s after %.0f ms: %s\n", r, gx_status_str(rep.status), after_ms, rep.msg);
		CU_ASSERT_EQUAL(rep.status, GX_ERR_PEER);
		CU_ASSERT_PTR_NOT_NULL(strstr(rep.msg, "rank 2"));
		CU_ASSERT(after_ms <= KILL_TIMEOUT_MS + 1000);
	}
	world_end(&W);
}

/* ---- a rank that waits for a late peer sleeps ----------------------------------------------- */

#define LATE_MS 600

static void run_late(struct gx_coll *s, uint32_t rank, uint32_t n, int up)
{
	struct report rep;
	float x = (float)rank + 1.0f;

	(void)n;
	memset(&rep, 0, sizeof(rep));
	if (rank == 1) {
		struct timespec ts = { 0, LATE_MS * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	uint64_t c0 = cpu_us(), t0 = gx_now_ns();
	rep.status = gx_coll_allreduce(s, &x, 1, GX_OP_SUM, NULL);
	rep.cpu_us = cpu_us() - c0;
	rep.t_ns = gx_now_ns() - t0;
	rep.wrong = x != 3.0f;
	report_send(up, &rep);
}

static void test_idle_backoff(void)
{
	struct world_cfg w = { 2, 0.0, 10000 };
	struct world W;
	struct report rep;

	CU_ASSERT_EQUAL_FATAL(world_start(&W, &w, run_late), 0);
	CU_ASSERT_EQUAL_FATAL(world_report(&W, 0, &rep, 20000), 0);
	CU_ASSERT_EQUAL(rep.status, GX_OK);
	CU_ASSERT_EQUAL(rep.wrong, 0);
	double wall_ms = (double)rep.t_ns / 1e6, cpu_ms = (double)rep.cpu_us / 1e3;
	fprintf(stderr, "waiting rank: %.0f ms wall, %.1f ms CPU\n", wall_ms, cpu_ms);
	CU_ASSERT(wall_ms >= LATE_MS / 2);
	/* Backing off costs 3-6 % of the wait here; a busy poller would burn ~100 %.  Half is the bound:
	 * far from both, and not hit when other jobs make every wake-up slow (28 % was seen once). */
	CU_ASSERT(cpu_ms < 0.5 * wall_ms);
	CU_ASSERT_EQUAL(world_report(&W, 1, &rep, 20000), 0);
	world_end(&W);
}

/* ---- through gx_comm_create: the real bootstrap ----------------------------------------------
 * Rank 0 serves the store on its host's kernel address (10.77.0.1 over the bridge), every rank
 * allgathers its DPDK address blob through it, and gx_allreduce runs on the communicator's engine
 * thread (GX_PROGRESS_THREAD) or on the application thread. */
#define COMM_STORE_PORT 29731

static void comm_child(uint32_t rank, uint32_t n, enum gx_progress prog, int up, int down)
{
	struct gx_comm_opts co;
	char store[32];

	if (g_dpdk && enter_host(rank) < 0)
		_exit(3);
	gx_comm_opts_default(&co);
	tr_opts(&co.tr, rank, n);
	co.rank = (int)rank;
	co.size = (int)n;
	snprintf(store, sizeof(store), "%s:%d", g_dpdk ? "10.77.0.1" : "127.0.0.1", COMM_STORE_PORT);
	co.store = store;
	co.store_timeout_ms = 30000;
	co.progress = prog;
	struct gx_comm *c = NULL;
	if (gx_comm_create(&co, &c) < 0) {
		struct report rep;
		memset(&rep, 0, sizeof(rep));
		rep.status = GX_ERR_IO;
		snprintf(rep.msg, sizeof(rep.msg), "gx_comm_create: %s", gx_last_error());
		for (size_t k = 0; k < g_ncases; k++)
			report_send(up, &rep);
		_exit(3);
	}
	cases_over(ar_over_comm, c, gx_comm_net(c), rank, n, up);
	char go;
	if (read(down, &go, 1) < 0) {
	}
	gx_comm_destroy(c);
	_exit(0);
}

static void test_comm_bootstrap(void)
{
	static const struct ar_case cases[] = {
		{ GX_ALLREDUCE_AUTO, GX_OP_SUM, 1 },
		{ GX_ALLREDUCE_RHD, GX_OP_AVG, 1001 },
		{ GX_ALLREDUCE_RING, GX_OP_SUM, 65537 },
		{ GX_ALLREDUCE_RHD, GX_OP_MAX, 300007 },
	};
	static const enum gx_progress modes[] = { GX_PROGRESS_THREAD, GX_PROGRESS_APP };

	g_cases = cases;
	g_ncases = sizeof(cases) / sizeof(cases[0]);
	for (size_t m = 0; m < 2; m++) {
		struct world_cfg w = { 3, 0.0, 10000 };
		struct world W;
		memset(&W, 0, sizeof(W));
		W.n = w.n;
		fflush(stdout);
		fflush(stderr);
		for (uint32_t r = 0; r < w.n; r++) {
			int u[2], d[2];
			CU_ASSERT_FATAL(pipe(u) == 0 && pipe(d) == 0);
			pid_t pid = fork();
			if (pid == 0) {
				close(u[0]);
				close(d[1]);
				for (uint32_t q = 0; q < r; q++) {
					close(W.up[q]);
					close(W.down[q]);
				}
				comm_child(r, w.n, modes[m], u[1], d[0]);
			}
			close(u[1]);
			close(d[0]);
			W.pid[r] = pid;
			W.up[r] = u[0];
			W.down[r] = d[1];
		}
		/* case 0 runs auto, which picks rhd for one element: reference() sums in rhd's order */
		collect(&W, &w, cases, g_ncases, 60000);
		world_end(&W);
	}
}

/* ---- compressed allreduce ------------------------------------------------------------------ */

#define CZ_COUNT 5003
#define CZ_STEPS 4

static const char *cz_specs[] = {
	"int8", "sign", "qsgd:bits=4", "topk:ratio=0.1",      /* sharded, two-sided error feedback */
	"fp16", "randk:ratio=0.25,shared-seed",              /* ring, summed without decoding */
	"thc:bits=4", "thc:bits=8,rotate",                   /* homomorphic integer codes */
};
#define CZ_NSPECS (sizeof(cz_specs) / sizeof(cz_specs[0]))

static float small_input(uint64_t seed, uint32_t rank, size_t e)
{
	return gx_rng_uniform(gx_rng_key(seed, rank, 1, 0), (uint32_t)e) - 0.5f;
}

static void run_compressed(struct gx_coll *s, uint32_t rank, uint32_t n, int up)
{
	float *buf = malloc(sizeof(float) * CZ_COUNT), *tmp = malloc(sizeof(float) * CZ_COUNT);
	double *sumc = malloc(sizeof(double) * CZ_COUNT), *sumg = malloc(sizeof(double) * CZ_COUNT);

	for (size_t c = 0; c < CZ_NSPECS; c++) {
		struct gx_allreduce_handle *h = NULL;
		struct report rep;
		memset(&rep, 0, sizeof(rep));
		memset(sumc, 0, sizeof(double) * CZ_COUNT);
		memset(sumg, 0, sizeof(double) * CZ_COUNT);
		struct gx_compressed_opts co;
		gx_compressed_opts_default(&co);
		/* unbiased rand-k is not a contraction: error feedback would grow without bound */
		int randk = !strncmp(cz_specs[c], "randk", 5);
		co.error_feedback = !randk;
		rep.status = gx_coll_compressed_create(s, CZ_COUNT, cz_specs[c], &co, &h);
		const char *path = h ? gx_allreduce_compressed_path(h) : "";
		/* rand-k picks k of every block's m elements; a block is what one packet's payload holds */
		size_t blk = 0;
		struct gx_codec *cd = NULL;
		if (randk && gx_codec_create(cz_specs[c], &cd) == GX_OK) {
			blk = gx_codec_block_elems(cd, gx_net_max_payload(s->net));
			gx_codec_destroy(cd);
		}
		if (randk && !blk)
			rep.status = gx_error(GX_ERR_INVAL, "no rand-k block size for this payload");
		for (int t = 0; t < CZ_STEPS && rep.status >= 0; t++) {
			uint64_t seed = 900 + 10 * c + t;
			for (size_t e = 0; e < CZ_COUNT; e++)
				buf[e] = small_input(seed, rank, e);
			rep.status = gx_allreduce_compressed(h, buf, GX_OP_AVG);
			if (rep.status < 0)
				break;
			rep.digest = rep.digest * 31 + digest(buf, sizeof(float) * CZ_COUNT);
			for (size_t e = 0; e < CZ_COUNT; e++) {
				double g = 0, nrm = 0;
				for (uint32_t i = 0; i < n; i++)
					g += small_input(seed, i, e);
				sumc[e] += buf[e];
				sumg[e] += g / n;
				(void)nrm;
			}
			if (randk) {
				/* shared indices: each kept entry is (m/k) times the exact average, the rest 0 */
				size_t kept = 0, want = 0;
				for (size_t b0 = 0; b0 < CZ_COUNT; b0 += blk) {
					size_t m = CZ_COUNT - b0 < blk ? CZ_COUNT - b0 : blk, k = (m + 3) / 4;
					want += k;
					for (size_t e = b0; e < b0 + m; e++) {
						double g = 0;
						for (uint32_t i = 0; i < n; i++)
							g += small_input(seed, i, e);
						if (buf[e] == 0.0f)
							continue;
						kept++;
						if (fabs(buf[e] - (double)m / k * g / n) > 1e-5) {
							if (!rep.wrong)
								snprintf(rep.msg, sizeof(rep.msg), "randk %zu: %g vs %g", e,
									 (double)buf[e], (double)m / k * g / n);
							rep.wrong++;
						}
					}
				}
				if (kept != want) {
					snprintf(rep.msg, sizeof(rep.msg), "randk kept %zu entries, want %zu", kept, want);
					rep.wrong++;
				}
			}
			if (!strcmp(path, "thc")) {
				/* each rank's rounding is under one code step m/L, so the average is too */
				uint32_t bits = strstr(cz_specs[c], "bits=8") ? 8 : 4;
				double L = (double)((1u << (bits - 1)) - 1);
				int rot = strstr(cz_specs[c], "rotate") != NULL;
				for (size_t b0 = 0; b0 < CZ_COUNT; b0 += 256) {
					size_t b1 = b0 + 256 < CZ_COUNT ? b0 + 256 : CZ_COUNT;
					double m = 0, err2 = 0;
					for (uint32_t i = 0; i < n; i++) {
						double l2 = 0;
						for (size_t e = b0; e < b1; e++) {
							double v = small_input(seed, i, e);
							l2 += v * v;
							m = !rot && fabs(v) > m ? fabs(v) : m;
						}
						if (rot && sqrt(l2) > m)
							m = sqrt(l2);     /* rotated max <= block L2 norm */
					}
					for (size_t e = b0; e < b1; e++) {
						double g = 0;
						for (uint32_t i = 0; i < n; i++)
							g += small_input(seed, i, e);
						double d = buf[e] - g / n;
						err2 += d * d;
						if (!rot && fabs(d) > m / L * 1.0001 + 1e-6) {
							if (!rep.wrong)
								snprintf(rep.msg, sizeof(rep.msg), "thc element %zu off by %g > %g",
									 e, d, m / L);
							rep.wrong++;
						}
					}
					if (rot && sqrt(err2) > 16.0 * m / L * 1.0001 + 1e-5) {
						if (!rep.wrong)
							snprintf(rep.msg, sizeof(rep.msg), "thc block %zu: |err| %g > %g", b0,
								 sqrt(err2), 16.0 * m / L);
						rep.wrong++;
					}
				}
			}
		}
		if (rep.status >= 0 && !strcmp(path, "sharded-ef")) {
			/* docs/algorithms.md §3.2 item 8, on the owned shard:
			 * sum_t c_t + e_server + (1/n) sum_i e_worker_i == sum_t (1/n) sum_i g_i,t */
			size_t off, cnt;
			const float *es = gx_allreduce_server_residual(h, &off, &cnt);
			memcpy(tmp, gx_allreduce_worker_residual(h), sizeof(float) * CZ_COUNT);
			struct gx_allreduce_opts o;
			gx_allreduce_opts_default(&o);
			rep.status = gx_coll_allreduce(s, tmp, CZ_COUNT, GX_OP_SUM, &o);
			for (size_t e = off; e < off + cnt && rep.status >= 0; e++) {
				double lhs = sumc[e] + es[e - off] + (double)tmp[e] / n;
				if (fabs(lhs - sumg[e]) > 1e-5) {
					if (!rep.wrong)
						snprintf(rep.msg, sizeof(rep.msg), "EF invariant at %zu: %.9g vs %.9g", e,
							 lhs, sumg[e]);
					rep.wrong++;
				}
			}
		}
		if (rep.status >= 0 && !strcmp(path, "ring-summable") && !randk) {
			/* worker EF only: sum_t c_t + (1/n) sum_i e_i == sum_t avg g up to the hops' roundings */
			memcpy(tmp, gx_allreduce_worker_residual(h), sizeof(float) * CZ_COUNT);
			rep.status = gx_coll_allreduce(s, tmp, CZ_COUNT, GX_OP_AVG, NULL);
			double tol = strstr(cz_specs[c], "fp16") ? 4e-3 : 1e-4;
			for (size_t e = 0; e < CZ_COUNT && rep.status >= 0; e++) {
				double lhs = sumc[e] + tmp[e];
				if (fabs(lhs - sumg[e]) > tol) {
					if (!rep.wrong)
						snprintf(rep.msg, sizeof(rep.msg), "%s EF sum at %zu: %.9g vs %.9g",
							 cz_specs[c], e, lhs, sumg[e]);
					rep.wrong++;
				}
			}
		}
		if (rep.status < 0)
			snprintf(rep.msg, sizeof(rep.msg), "%s: %s", cz_specs[c], gx_last_error());
		snprintf(rep.msg + strlen(rep.msg), sizeof(rep.msg) - strlen(rep.msg), " [%s]", path);
		report_send(up, &rep);
		gx_allreduce_compressed_destroy(h);
	}
	free(buf);
	free(tmp);
	free(sumc);
	free(sumg);
}

static void test_compressed(void)
{
	for (uint32_t n = 2; n <= 3; n++) {
		struct world_cfg w = { n, 0.0, 10000 };
		struct world W;
		CU_ASSERT_EQUAL_FATAL(world_start(&W, &w, run_compressed), 0);
		for (size_t c = 0; c < CZ_NSPECS; c++) {
			uint64_t d0 = 0;
			for (uint32_t r = 0; r < n; r++) {
				struct report rep;
				int ok = world_report(&W, r, &rep, 60000);
				CU_ASSERT_EQUAL_FATAL(ok, 0);
				CU_ASSERT_EQUAL(rep.status, GX_OK);
				CU_ASSERT_EQUAL(rep.wrong, 0);
				if (rep.status != GX_OK || rep.wrong)
					fprintf(stderr, "n=%u %s rank %u: %s, %u wrong: %s\n", n, cz_specs[c], r,
						gx_status_str(rep.status), rep.wrong, rep.msg);
				if (r == 0)
					d0 = rep.digest;
				CU_ASSERT_EQUAL(rep.digest, d0);    /* bit-identical on every rank, every step */
			}
		}
		world_end(&W);
	}
}

static void test_thc_pieces(void)
{
	float x[256], y[256];
	/* b-bit codes from n ranks: b + ceil(log2 n) bits */
	CU_ASSERT_EQUAL(thc_wire_bits(4, 1), 4);
	CU_ASSERT_EQUAL(thc_wire_bits(4, 2), 5);
	CU_ASSERT_EQUAL(thc_wire_bits(4, 3), 6);
	CU_ASSERT_EQUAL(thc_wire_bits(8, 5), 11);
	CU_ASSERT_EQUAL(thc_wire_bits(8, 8), 11);
	/* the orthonormal Hadamard transform keeps the norm and is its own inverse */
	double n0 = 0, n1 = 0, back = 0;
	for (int i = 0; i < 256; i++) {
		x[i] = y[i] = small_input(3, 0, (size_t)i);
		n0 += (double)x[i] * x[i];
	}
	thc_fwht(y, 256);
	for (int i = 0; i < 256; i++)
		n1 += (double)y[i] * y[i];
	thc_fwht(y, 256);
	for (int i = 0; i < 256; i++)
		back = fmax(back, fabs((double)y[i] - x[i]));
	CU_ASSERT(fabs(n0 - n1) < 1e-4 * n0);
	CU_ASSERT(back < 1e-5);
	/* a spike spreads over the whole block */
	memset(x, 0, sizeof(x));
	x[17] = 16.0f;
	thc_fwht(x, 256);
	for (int i = 0; i < 256; i++)
		CU_ASSERT_EQUAL(fabsf(x[i]), 1.0f);
}

/* ---- a hostile neighbour ---------------------------------------------------------------------
 * 3 ranks on a gx-netns network whose bridge drops 5 % of what it delivers, while gx-hostile runs in
 * rank 0's host and sends >= 10,000 frames/s into its interface: random bytes, truncated frames,
 * sealed frames of another job, UDP to every port, live frames with 1-4 bits flipped, replays.  Every
 * result must be bit-exact on every rank, no rank may fail, and the ranks' counters must show the
 * rejected frames by kind.  GX_HOSTILE_SECONDS stretches the sweep (scripts/gx-hostile-soak). */
static void test_hostile(void)
{
	static const struct ar_case cases[] = {
		{ GX_ALLREDUCE_RHD, GX_OP_SUM, 1 },
		{ GX_ALLREDUCE_RING, GX_OP_SUM, 4 },
		{ GX_ALLREDUCE_RHD, GX_OP_AVG, 64 },
		{ GX_ALLREDUCE_RING, GX_OP_SUM, 1024 },
		{ GX_ALLREDUCE_RHD, GX_OP_SUM, 16384 },
		{ GX_ALLREDUCE_RING, GX_OP_AVG, 262144 },
		{ GX_ALLREDUCE_RING, GX_OP_SUM, 1u << 20 },          /* 4 MiB */
		{ GX_ALLREDUCE_RHD, GX_OP_MAX, 1u << 20 },
	};
	char tool[512], log[64], pidf[64], line[256];
	const char *secs = getenv("GX_HOSTILE_SECONDS");
	int rounds = secs && atoi(secs) > 0 ? atoi(secs) / 10 + 1 : 1;

	CU_ASSERT_EQUAL_FATAL(net_up(5), 0);
	gx_test_path(tool, sizeof(tool), 1, "apps/gx-hostile");
	snprintf(log, sizeof(log), "/tmp/gx-hostile.%d.log", (int)getpid());
	snprintf(pidf, sizeof(pidf), "/tmp/gx-hostile.%d.pid", (int)getpid());
	CU_ASSERT_EQUAL_FATAL(gx_test_sh("ip netns exec %s-h0 %s -i eth0 --rate 12000 --seconds 600 >%s 2>&1 & "
					 "echo $! >%s", g_prefix, tool, log, pidf), 0);
	usleep(300000);                   /* it learns frames as soon as there are some */
	struct report sum = { 0 };
	for (int r = 0; r < rounds; r++) {
		struct world_cfg w = { 3, 0.05, 10000 };
		run_world(&w, cases, sizeof(cases) / sizeof(cases[0]), 180000);
		sum.malformed += g_totals.malformed;
		sum.bad_crc += g_totals.bad_crc;
		sum.other_job += g_totals.other_job;
		sum.dropped += g_totals.dropped;
		sum.duplicates += g_totals.duplicates;
		sum.bad_mac += g_totals.bad_mac;
		sum.replayed += g_totals.replayed;
	}
	gx_test_sh("kill -INT $(cat %s) 2>/dev/null; sleep 0.5", pidf);
	FILE *f = fopen(log, "r");
	double rate = 0;
	unsigned long long kinds_sent = 0, n;
	char kind[32];
	while (f && fgets(line, sizeof(line), f)) {
		fputs(line, stderr);
		if (sscanf(line, "gx-hostile: %*s sent %llu frames in %*f s (%lf per second)", &n, &rate) == 2)
			continue;
		if (sscanf(line, "gx-hostile: %31s %llu", kind, &n) == 2 && n > 0)
			kinds_sent++;
	}
	if (f)
		fclose(f);
	unlink(log);
	unlink(pidf);
	fprintf(stderr, "ranks rejected%s: bad crc %llu, bad mac %llu, other job %llu, malformed %llu, "
		"dropped %llu; duplicates %llu, replayed %llu\n", g_keyfile[0] ? " (keyed)" : "",
		(unsigned long long)sum.bad_crc, (unsigned long long)sum.bad_mac,
		(unsigned long long)sum.other_job, (unsigned long long)sum.malformed,
		(unsigned long long)sum.dropped, (unsigned long long)sum.duplicates,
		(unsigned long long)sum.replayed);
	CU_ASSERT(rate >= 10000);         /* the tool kept up its rate */
	CU_ASSERT_EQUAL(kinds_sent, 6);   /* and sent every kind */
	if (g_keyfile[0]) {
		CU_ASSERT(sum.bad_mac > 0);   /* flipped bits and re-sealed frames: forgeries to the MAC */
		CU_ASSERT_EQUAL(sum.bad_crc + sum.other_job, 0);   /* nothing unkeyed gets further */
	} else {
		CU_ASSERT(sum.bad_crc > 0);   /* flipped bits reached gx and were caught by the seal */
		CU_ASSERT(sum.other_job > 0); /* sealed frames of another job were caught by the identity */
	}
	CU_ASSERT(sum.duplicates + sum.replayed > 0);   /* replays were taken for what they are */
}

static int hostile_suite_init(void)
{
	if (g_keyfile[0]) {               /* the shared secret of the keyed runs */
		FILE *f = fopen(g_keyfile, "wb");
		for (int i = 0; f && i < 32; i++)
			fputc(i * 37 + 11, f);
		if (!f || fclose(f))
			return -1;
	}
	return dpdk_suite_init();
}

static int hostile_suite_clean(void)
{
	if (g_keyfile[0])
		unlink(g_keyfile);
	return dpdk_suite_clean();
}

/* test_allreduce                  schedules, udp on loopback, compressed paths
 * test_allreduce dpdk-af-packet   the same bit-identical, loss and killed-rank checks over DPDK
 *                                 net_af_packet across scripts/gx-netns namespaces, and
 *                                 gx_comm_create over it (root) */
int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	static CU_TestInfo sched[] = {
		{ "ring and rhd schedules match and sum in order (1-8 ranks)", test_schedules },
		{ "algorithm choice and names", test_choose },
		CU_TEST_INFO_NULL,
	};
	static CU_TestInfo udp[] = {
		{ "bit-identical, reference order, 1-5 ranks, 1 element to 16 MiB", test_sizes },
		{ "5% loss", test_loss },
		{ "rank killed mid-allreduce is named", test_peer_killed },
		{ "idle rank backs off", test_idle_backoff },
		CU_TEST_INFO_NULL,
	};
	static CU_TestInfo cz[] = {
		{ "THC widths and Hadamard rotation", test_thc_pieces },
		{ "compressed: bit-identical, two-sided EF invariant, THC error bound (2-3 ranks)", test_compressed },
		CU_TEST_INFO_NULL,
	};
	static CU_TestInfo dpdk[] = {
		{ "bit-identical, reference order, 1-5 ranks, 1 element to 16 MiB", test_sizes },
		{ "5% loss in the bridge", test_loss },
		{ "rank killed mid-allreduce is named", test_peer_killed },
		{ "idle rank backs off", test_idle_backoff },
		{ "gx_comm_create (store on rank 0), engine thread and application progress", test_comm_bootstrap },
		CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo suites[] = {
		{ "schedule", NULL, NULL, NULL, NULL, sched },
		{ "udp", NULL, NULL, NULL, NULL, udp },
		{ "compressed", NULL, NULL, NULL, NULL, cz },
		CU_SUITE_INFO_NULL,
	};
	static CU_SuiteInfo dpdk_suites[] = {
		{ "dpdk-af-packet", dpdk_suite_init, dpdk_suite_clean, NULL, NULL, dpdk },
		CU_SUITE_INFO_NULL,
	};
	if (argc > 1 && !strcmp(argv[1], "dpdk-af-packet")) {
		if (!GX_HAVE_DPDK)
			gx_test_skip("this build has no DPDK backend (libdpdk-dev not found)");
		gx_test_require_root("allreduce over dpdk net_af_packet (namespaces, raw sockets)");
		if (system("ip netns list >/dev/null 2>&1") != 0)
			gx_test_skip("iproute2 ('ip netns') is not installed");
		g_dpdk = 1;
		return gx_test_main(dpdk_suites);
	}
	static CU_TestInfo hostile[] = {
		{ "3 ranks, 5% loss, a hostile neighbour at 10,000 frames/s: bit-exact, counted", test_hostile },
		CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo hostile_suites[] = {
		{ "hostile", hostile_suite_init, hostile_suite_clean, NULL, NULL, hostile },
		CU_SUITE_INFO_NULL,
	};
	if (argc > 1 && !strncmp(argv[1], "hostile-", 8)) {
		int dpdk = !strncmp(argv[1], "hostile-dpdk", 12);
		if (strcmp(argv[1] + 8 + (dpdk ? 4 : 3), "") && strcmp(argv[1] + 8 + (dpdk ? 4 : 3), "-key")) {
			fprintf(stderr, "usage: test_allreduce hostile-udp|hostile-dpdk[-key]\n");
			return 2;
		}
		if (strstr(argv[1], "-key"))
			snprintf(g_keyfile, sizeof(g_keyfile), "/tmp/gx-hostile-key.%d", (int)getpid());
		if (dpdk && !GX_HAVE_DPDK)
			gx_test_skip("this build has no DPDK backend (libdpdk-dev not found)");
		gx_test_require_root("hostile traffic (namespaces, raw sockets)");
		if (system("ip netns list >/dev/null 2>&1") != 0)
			gx_test_skip("iproute2 ('ip netns') is not installed");
		g_dpdk = dpdk;
		g_udp_ns = !dpdk;
		g_hostile = 1;
		return gx_test_main(hostile_suites);
	}
	if (argc > 1) {
		fprintf(stderr, "usage: test_allreduce [dpdk-af-packet | hostile-udp[-key] | hostile-dpdk[-key]]\n");
		return 2;
	}
	return gx_test_main(suites);
}
