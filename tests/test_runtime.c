/* test_runtime.c: the SPSC ring under two threads, the engine thread (order, statuses, messages,
 * pinning), application-driven progress, and gx_comm_create with 1..5 forked ranks over udp on
 * loopback, each rank exchanging a packet with every other through the connected gx_net. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gx_comm.h"
#include "gx_config.h"
#include "gx_test.h"
#include "gx_time.h"
#include "gx_topology.h"
#include "ring.h"

/* ---- SPSC ring -------------------------------------------------------------------------------- */
static void test_ring_basic(void)
{
	struct gx_spsc *r;
	CU_ASSERT_FATAL(gx_spsc_create(5, &r) == GX_OK);     /* rounded up to 8 */
	uintptr_t v;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	if (!r)
		return;     /* (tells GCC the NULL path ends; CUnit's FATAL longjmps) */
	CU_ASSERT_PTR_NULL(gx_spsc_pop(r));
	for (v = 1; v <= 8; v++)
		CU_ASSERT_EQUAL(gx_spsc_push(r, (void *)v), 1);
	CU_ASSERT_EQUAL(gx_spsc_push(r, (void *)9), 0);   /* full */
	CU_ASSERT_EQUAL(gx_spsc_count(r), 8);
	for (v = 1; v <= 8; v++)
		CU_ASSERT_EQUAL((uintptr_t)gx_spsc_pop(r), v);
	CU_ASSERT_PTR_NULL(gx_spsc_pop(r));
	gx_spsc_destroy(r);

	/* indices wrapping past 2^32 keep FIFO order and the full/empty tests right */
	CU_ASSERT_FATAL(gx_spsc_create(4, &r) == GX_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	if (!r)
		return;
	atomic_store(&r->head, UINT32_MAX - 5);
	atomic_store(&r->tail, UINT32_MAX - 5);
	r->tail_cache = r->head_cache = UINT32_MAX - 5;
	uintptr_t next = 1, expect = 1;
	for (int round = 0; round < 10; round++) {
		while (gx_spsc_push(r, (void *)next))
			next++;
		CU_ASSERT_EQUAL(gx_spsc_count(r), 4);
		for (int i = 0; i < 3; i++)
			CU_ASSERT_EQUAL((uintptr_t)gx_spsc_pop(r), expect++);
	}
	void *p;
	while ((p = gx_spsc_pop(r)))
		CU_ASSERT_EQUAL((uintptr_t)p, expect++);
	CU_ASSERT_EQUAL(expect, next);
	gx_spsc_destroy(r);
}

#define RING_ITEMS 2000000u

struct ring_arg {
	struct gx_spsc *r;
	uint64_t errors, received;
};

static void *ring_consumer(void *arg)
{
	struct ring_arg *a = arg;
	uintptr_t expect = 1;
	while (expect <= RING_ITEMS) {
		void *p = gx_spsc_pop(a->r);
		if (!p) {
			sched_yield();
			continue;
		}
		if ((uintptr_t)p != expect)
			a->errors++;
		expect = (uintptr_t)p + 1;
		a->received++;
	}
	return NULL;
}

static void test_ring_threads(void)
{
	struct ring_arg a = { 0 };
	CU_ASSERT_FATAL(gx_spsc_create(64, &a.r) == GX_OK);
	pthread_t th;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a.r);
	if (!a.r)
		return;
	pthread_create(&th, NULL, ring_consumer, &a);
	for (uintptr_t v = 1; v <= RING_ITEMS; v++)
		while (!gx_spsc_push(a.r, (void *)v))
			sched_yield();
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(a.errors, 0);
	CU_ASSERT_EQUAL(a.received, RING_ITEMS);
	CU_ASSERT_PTR_NULL(gx_spsc_pop(a.r));
	gx_spsc_destroy(a.r);
}

/* ---- engine ------------------------------------------------------------------------------------ */
static struct gx_comm *one_rank(enum gx_progress p, int core)
{
	struct gx_comm_opts o;
	gx_comm_opts_default(&o);
	o.rank = 0;
	o.size = 1;
	o.progress = p;
	o.core = core;
	gx_transport_opts_set(&o.tr, "udp-ip", "127.0.0.1");
	struct gx_comm *c = NULL;
	return gx_comm_create(&o, &c) < 0 ? NULL : c;
}

struct job {
	int seq;
	int *log, *nlog;
	pthread_t ran_on;
	int cpu;
	gx_status_t ret;
};

static gx_status_t job_fn(void *arg)
{
	struct job *j = arg;
	j->log[(*j->nlog)++] = j->seq;
	j->ran_on = pthread_self();
	j->cpu = sched_getcpu();
	if (j->ret < 0)
		return gx_error(j->ret, "job %d failed on purpose", j->seq);
	return j->ret;
}

static void test_engine_order_status(void)
{
	struct gx_comm *c = one_rank(GX_PROGRESS_THREAD, -1);
	int log[100], nlog = 0;
	struct job jobs[100];

	if (!c)
		fprintf(stderr, "init: %s\n", gx_last_error());
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	for (int i = 0; i < 100; i++) {
		jobs[i] = (struct job){ .seq = i, .log = log, .nlog = &nlog,
					.ret = i % 7 == 3 ? GX_ERR_PEER : i % 5 == 0 ? GX_INPROGRESS : GX_OK };
		gx_clear_error();
		gx_status_t st = gx_comm_run(c, job_fn, &jobs[i]);
		CU_ASSERT_EQUAL(st, jobs[i].ret);
		if (jobs[i].ret < 0) {
			char want[64];
			snprintf(want, sizeof(want), "job %d failed on purpose", i);
			CU_ASSERT_STRING_EQUAL(gx_last_error(), want);
		}
		CU_ASSERT(!pthread_equal(jobs[i].ran_on, pthread_self()));
		if (i > 0)
			CU_ASSERT(pthread_equal(jobs[i].ran_on, jobs[0].ran_on));
	}
	CU_ASSERT_EQUAL(nlog, 100);
	for (int i = 0; i < nlog; i++)
		CU_ASSERT_EQUAL(log[i], i);
	CU_ASSERT_EQUAL(gx_comm_run(c, NULL, NULL), GX_ERR_INVAL);
	gx_comm_destroy(c);
}

static void test_engine_pinning(void)
{
	cpu_set_t allowed;
	int last = -1;

	CU_ASSERT_FATAL(sched_getaffinity(0, sizeof(allowed), &allowed) == 0);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &allowed))
			last = i;
	/* an explicit core */
	struct gx_comm *c = one_rank(GX_PROGRESS_THREAD, last);
	int log[4], nlog = 0;
	struct job j = { .seq = 0, .log = log, .nlog = &nlog };
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(gx_comm_core(c), last);
	for (int k = 0; k < 3; k++) {
		CU_ASSERT_EQUAL(gx_comm_run(c, job_fn, &j), GX_OK);
		CU_ASSERT_EQUAL(j.cpu, last);
		nlog = 0;
	}
	gx_comm_destroy(c);

	/* the chosen core, with the application pinned to the first allowed cpu: the engine lands
	 * on the chosen core, and on another core than the application's when there is one */
	int first = -1;
	for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
		if (CPU_ISSET(i, &allowed))
			first = i;
	CU_ASSERT_EQUAL_FATAL(gx_topo_pin_self(first), GX_OK);
	c = one_rank(GX_PROGRESS_THREAD, -1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(gx_comm_run(c, job_fn, &j), GX_OK);
	CU_ASSERT_EQUAL(j.cpu, gx_comm_core(c));
	if (CPU_COUNT(&allowed) > 1)
		CU_ASSERT_NOT_EQUAL(gx_comm_core(c), first);
	gx_comm_destroy(c);
	sched_setaffinity(0, sizeof(allowed), &allowed);
	pthread_setaffinity_np(pthread_self(), sizeof(allowed), &allowed);

	/* a core this process may not use is refused with a message listing the allowed ones */
	CU_ASSERT_PTR_NULL(one_rank(GX_PROGRESS_THREAD, CPU_SETSIZE - 1));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "not allowed"));

	/* the choice explains itself */
	struct gx_core_choice ch;
	/* the NIC is the one the backend names: udp on 127.0.0.1 sends through lo */
	struct gx_transport_opts tr = { .backend = "udp", .rank = 0, .nranks = 1 };
	struct gx_net *net = NULL;
	char dev[64];
	int is_pci = 1;
	CU_ASSERT_EQUAL(gx_transport_opts_set(&tr, "udp-ip", "127.0.0.1"), GX_OK);
	CU_ASSERT_EQUAL_FATAL(gx_net_create(&tr, &net), GX_OK);
	CU_ASSERT_EQUAL(gx_net_device(net, dev, sizeof(dev), &is_pci), GX_OK);
	CU_ASSERT_STRING_EQUAL(dev, "lo");
	CU_ASSERT_EQUAL(is_pci, 0);
	gx_net_destroy(net);
	CU_ASSERT_EQUAL(gx_topo_pick_core(dev, is_pci, 0, &ch), GX_OK);
	CU_ASSERT(ch.cpu >= 0 && CPU_ISSET(ch.cpu, &allowed));
	CU_ASSERT_STRING_EQUAL(ch.nic, "lo");
	CU_ASSERT_PTR_NOT_NULL(strstr(ch.why, "cpu "));
}

static void test_app_progress(void)
{
	struct gx_comm *c = one_rank(GX_PROGRESS_APP, -1);
	int log[4], nlog = 0;
	struct job j = { .seq = 7, .log = log, .nlog = &nlog, .ret = GX_ERR_TIMEOUT };

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(gx_comm_core(c), -1);
	CU_ASSERT_EQUAL(gx_comm_run(c, job_fn, &j), GX_ERR_TIMEOUT);
	CU_ASSERT(pthread_equal(j.ran_on, pthread_self()));
	CU_ASSERT_STRING_EQUAL(gx_last_error(), "job 7 failed on purpose");
	CU_ASSERT_EQUAL(gx_comm_rank(c), 0);
	CU_ASSERT_EQUAL(gx_comm_size(c), 1);
	gx_comm_destroy(c);
}

/* ---- N ranks over udp ---------------------------------------------------------------------- */
struct exchange {
	struct gx_comm *c;
	uint32_t got[8];        /* value received from each peer, 0 = nothing yet */
	uint32_t ngot;
};

static gx_status_t on_data(void *arg, uint32_t peer, const struct gx_desc *h, const void *p, uint32_t len)
{
	struct exchange *x = arg;
	uint32_t v;
	(void)h;
	if (len != sizeof(v) || peer >= 8 || x->got[peer])
		return gx_error(GX_ERR_CORRUPT, "unexpected packet from rank %u (%u bytes)", peer, len);
	memcpy(&v, p, sizeof(v));
	x->got[peer] = v;
	x->ngot++;
	return GX_OK;
}

/* Every rank sends 1000 + 10*rank + peer to every peer and waits for all of its own. */
static gx_status_t exchange_fn(void *arg)
{
	struct exchange *x = arg;
	struct gx_net *n = gx_comm_net(x->c);
	uint32_t me = gx_comm_rank(x->c), size = gx_comm_size(x->c);
	struct gx_desc d = { .coll_id = 1 };
	gx_status_t st;

	for (uint32_t p = 0; p < size; p++) {
		uint32_t v = 1000 + 10 * me + p;
		if (p == me)
			continue;
		while ((st = gx_net_send(n, p, &d, &v, sizeof(v))) == GX_ERR_AGAIN)
			if ((st = gx_net_poll(n, on_data, x)) < 0)
				return st;
		if (st < 0)
			return st;
	}
	uint64_t t0 = gx_now_ns(), idle = gx_now_ns();
	while (x->ngot < size - 1 || gx_net_inflight(n) > 0) {
		int got = gx_net_poll(n, on_data, x);
		if (got < 0)
			return got;
		if (got > 0)
			idle = gx_now_ns();
		if (gx_now_ns() - t0 > 20000000000ull)
			return gx_error(GX_ERR_TIMEOUT, "rank %u: only %u of %u peers' packets in 20 s", me,
					x->ngot, size - 1);
		gx_idle_backoff(gx_now_ns() - idle);
	}
	return GX_OK;
}

static int rank_main(int rank, int size, const char *store, enum gx_progress prog)
{
	struct gx_comm_opts o;
	struct exchange x = { 0 };
	int verbose = rank < 0;

	gx_comm_opts_default(&o);
	o.rank = rank;
	o.size = size;
	if (store)                /* else GX_STORE (gx-run) through gx_comm_opts_default */
		o.store = store;
	o.progress = prog;
	o.store_timeout_ms = 20000;
	if (!verbose)             /* under gx-run GX_UDP_IP (namespaces) came with gx_comm_opts_default */
		gx_transport_opts_set(&o.tr, "udp-ip", "127.0.0.1");
	if (verbose) {            /* under gx-run: GX_* settings apply (GX_UDP_IP in namespaces) */
		char *argv[] = { "test_runtime", NULL };
		int argc = 1;
		if (gx_config_parse(&argc, argv, &o) < 0) {
			fprintf(stderr, "%s\n", gx_last_error());
			return 2;
		}
	}
	if (gx_comm_create(&o, &x.c) < 0) {
		fprintf(stderr, "rank %d: %s\n", rank, gx_last_error());
		return 10;
	}
	if (rank < 0) {                /* started by gx-run: rank and size from GX_RANK/GX_SIZE */
		rank = (int)gx_comm_rank(x.c);
		size = (int)gx_comm_size(x.c);
		printf("rank %d of %d up\n", rank, size);
	}
	if (gx_comm_rank(x.c) != (uint32_t)rank || gx_comm_size(x.c) != (uint32_t)size)
		return 11;
	gx_status_t st = gx_comm_run(x.c, exchange_fn, &x);
	if (st < 0) {
		fprintf(stderr, "rank %d: exchange: %s\n", rank, gx_last_error());
		return 12;
	}
	for (int p = 0; p < size; p++)
		if (p != rank && x.got[p] != (uint32_t)(1000 + 10 * p + rank)) {
			fprintf(stderr, "rank %d: from %d got %u\n", rank, p, x.got[p]);
			return 13;
		}
	gx_comm_destroy(x.c);
	if (verbose && rank > 0)
		printf("rank %d exchanged with all %d peers\n", rank, size - 1);
	return 0;
}

static void run_ranks(int n, enum gx_progress prog)
{
	char store[64];
	pid_t pids[8];

	snprintf(store, sizeof(store), "127.0.0.1:%u", gx_test_free_port());
	for (int r = 0; r < n; r++)
		if ((pids[r] = fork()) == 0)
			_exit(rank_main(r, n, store, prog));
	for (int r = 0; r < n; r++) {
		int ws = -1;
		waitpid(pids[r], &ws, 0);
		if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
			fprintf(stderr, "%d ranks: rank %d exit status 0x%x\n", n, r, ws);
		CU_ASSERT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	}
}

static void test_ranks_app(void)
{
	for (int n = 1; n <= 5; n++)
		run_ranks(n, GX_PROGRESS_APP);
}

static void test_ranks_thread(void)
{
	for (int n = 2; n <= 5; n += 3)
		run_ranks(n, GX_PROGRESS_THREAD);
}

/* ---- settings: flags a user mistyped ------------------------------------------------------------ */

/* gx_config_parse over "prog FLAGS..." (split at spaces): its status, and the error's text in msg. */
static gx_status_t parse_flags(const char *flags, struct gx_comm_opts *o, char *msg, size_t len)
{
	char buf[256], *argv[16], *save = NULL;
	int argc = 0;

	snprintf(buf, sizeof(buf), "%s", flags);
	argv[argc++] = "prog";
	for (char *t = strtok_r(buf, " ", &save); t && argc < 15; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	CU_ASSERT_EQUAL_FATAL(gx_comm_opts_default(o), GX_OK);
	gx_status_t st = gx_config_parse(&argc, argv, o);
	snprintf(msg, len, "%s", st < 0 ? gx_last_error() : "");
	return st;
}

static void test_config_ranges(void)
{
	static const struct {
		const char *flags, *says;     /* refused, with this in the message */
	} bad[] = {
		{ "--transport=", "--transport: empty" },
		{ "--transport nope", "unknown transport 'nope'" },
		{ "--store-serve 5", "--store-serve: 5 is out of range: give -1 to 1" },
		{ "--store-serve=-2", "--store-serve: -2 is out of range" },
		{ "--mtu 0", "--mtu: 0 is out of range: give 576 to 65535" },
		{ "--mtu=70000", "--mtu: 70000 is out of range" },
		{ "--window 0", "--window: 0 is out of range: give 64 to 32768" },
		{ "--window 65536", "--window: 65536 is out of range" },
		{ "--peer-timeout-ms 0", "--peer-timeout-ms: 0 is out of range: give 10 to 86400000" },
		{ "--rto-min-us 0", "--rto-min-us: 0 is out of range" },
		{ "--size 0", "--size: 0 is out of range: give 1 to 4096" },
		{ "--rank 4096", "--rank: 4096 is out of range" },
		{ "--store-timeout-ms 0", "--store-timeout-ms: 0 is out of range" },
		{ "--mtu 99999999999999999999", "--mtu: 99999999999999999999 is out of range" },
		{ "--window abc", "--window: bad value 'abc'" },
		{ "--mtu", "--mtu needs a value" },
	};
	struct gx_comm_opts o;
	char msg[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gx_status_t st = parse_flags(bad[i].flags, &o, msg, sizeof(msg));
		if (st != GX_ERR_INVAL || !strstr(msg, bad[i].says))
			fprintf(stderr, "'%s': status %d, message '%s' (expected '%s')\n", bad[i].flags, st, msg,
				bad[i].says);
		CU_ASSERT_EQUAL(st, GX_ERR_INVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(msg, bad[i].says));
	}
	/* the ends of each range, and -1, are values */
	CU_ASSERT_EQUAL(parse_flags("--mtu 576 --window 64 --peer-timeout-ms 10 --store-serve=-1 --size -1",
				    &o, msg, sizeof(msg)), GX_OK);
	CU_ASSERT_EQUAL(o.tr.mtu, 576);
	CU_ASSERT_EQUAL(o.tr.window, 64);
	CU_ASSERT_EQUAL(o.tr.peer_timeout_ms, 10);
	CU_ASSERT_EQUAL(o.store_serve, -1);
	CU_ASSERT_EQUAL(o.size, -1);
	CU_ASSERT_EQUAL(parse_flags("--mtu=65535 --window=32768 --store-serve 1 --transport=loop", &o, msg,
				    sizeof(msg)), GX_OK);
	CU_ASSERT_EQUAL(o.tr.mtu, 65535);
	CU_ASSERT_EQUAL(o.tr.window, 32768);
	CU_ASSERT_EQUAL(o.store_serve, 1);
	CU_ASSERT_STRING_EQUAL(o.tr.backend, "loop");
	CU_ASSERT_EQUAL(parse_flags("--store-serve 0", &o, msg, sizeof(msg)), GX_OK);
	CU_ASSERT_EQUAL(o.store_serve, 0);
	/* the same check runs on a variable, which is named */
	setenv("GX_MTU", "0", 1);
	CU_ASSERT_EQUAL(gx_comm_opts_default(&o), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_MTU: 0 is out of range"));
	unsetenv("GX_MTU");
	setenv("GX_TRANSPORT", "", 1);
	CU_ASSERT_EQUAL(gx_comm_opts_default(&o), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_TRANSPORT: empty"));
	unsetenv("GX_TRANSPORT");
	CU_ASSERT_EQUAL(gx_comm_opts_default(&o), GX_OK);
}

/* ---- gx-run (apps/gx-run) ---------------------------------------------------------------------- */
static int run_script(const char *args, char *out, size_t outlen)
{
	char cmd[1024], path[512], self[512], store[512];
	gx_test_path(path, sizeof(path), 1, "apps/gx-run");
	gx_test_path(store, sizeof(store), 1, "apps/gx-store");
	setenv("GX_STORE_BIN", store, 1);   /* this build's gx-store, not another build dir's */
	gx_test_path(self, sizeof(self), 1, "tests/test_runtime");
	snprintf(cmd, sizeof(cmd), "timeout 60 %s %s 2>&1", path, args);
	char *at = strstr(cmd, "SELF");
	if (at) {
		char rest[512];
		snprintf(rest, sizeof(rest), "%s", at + 4);
		snprintf(at, sizeof(cmd) - (size_t)(at - cmd), "%s%s", self, rest);
	}
	FILE *f = popen(cmd, "r");
	size_t n = 0;
	if (!f)
		return -1;
	while (n + 1 < outlen && fgets(out + n, (int)(outlen - n), f))
		n += strlen(out + n);
	out[n] = '\0';
	int ws = pclose(f);
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static void test_gx_run(void)
{
	static char out[16384];
	char args[256];

	/* 3 ranks meet through rank 0's store and exchange packets; output is prefixed per rank */
	int rc = run_script("-n 3 --timeout 50 -- SELF --as-rank", out, sizeof(out));
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[rank 2] rank 2 of 3 up"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[rank 1] rank 1 exchanged with all 2 peers"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "gx-run: rank 0: exit 0"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "gx-run: rank 2: exit 0"));

	/* the same through a standalone gx-store */
	rc = run_script("-n 2 --external-store --timeout 50 -- SELF --as-rank", out, sizeof(out));
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[store] gx-store: serving on 127.0.0.1:"));

	/* a failing rank is reported with its status, and gx-run fails */
	snprintf(args, sizeof(args), "-n 2 -- sh -c 'exit $((GX_RANK * 3))'");
	rc = run_script(args, out, sizeof(out));
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "gx-run: rank 0: exit 0"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "gx-run: rank 1: exit 3"));

	/* --timeout stops a hung job and says so */
	rc = run_script("-n 2 --timeout 1 -- sleep 30", out, sizeof(out));
	CU_ASSERT_EQUAL(rc, 124);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "killed by signal 15"));

	/* bad flags exit 2 with a message */
	CU_ASSERT_EQUAL(run_script("-n 0 -- true", out, sizeof(out)), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "-n wants 1..4096"));
	CU_ASSERT_EQUAL(run_script("-n 2 --bogus -- true", out, sizeof(out)), 2);
	CU_ASSERT_EQUAL(run_script("-n 2", out, sizeof(out)), 2);
	CU_ASSERT_EQUAL(run_script("-n 2 --store-port 70000 -- true", out, sizeof(out)), 2);
}

/* gx-run --netns: one rank per host of a gx-netns network (prefix gxrt), store on host 0's address,
 * with rank 0 serving and with gx-store; the network is always torn down. */
static void test_gx_run_netns(void)
{
	static char out[16384];
	char path[512], cmd[1200];

	gx_test_path(path, sizeof(path), 0, "scripts/gx-netns");
	snprintf(cmd, sizeof(cmd), "timeout 60 %s up --prefix gxrt -n 3 >/dev/null 2>&1", path);
	int up = system(cmd);
	CU_ASSERT_EQUAL(up, 0);
	if (up == 0) {
		int rc = run_script("-n 3 --netns gxrt --timeout 50 -- SELF --as-rank", out, sizeof(out));
		if (rc != 0)
			fprintf(stderr, "%s\n", out);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "[rank 2] rank 2 exchanged with all 2 peers"));
		rc = run_script("-n 3 --netns gxrt --external-store --timeout 50 -- SELF --as-rank", out,
				sizeof(out));
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "[store] gx-store: serving on 10.77.0.1:"));
		/* more ranks than hosts: a clear error, exit 1 */
		CU_ASSERT_EQUAL(run_script("-n 4 --netns gxrt -- true", out, sizeof(out)), 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "gxrt-h3 does not exist"));
	}
	snprintf(cmd, sizeof(cmd), "timeout 60 %s down --prefix gxrt >/dev/null 2>&1", path);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static CU_TestInfo netns_tests[] = {
	{ "gx-run --netns: one rank per namespace host", test_gx_run_netns },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo ring_tests[] = {
	{ "full/empty/wrap-around", test_ring_basic },
	{ "two threads, 2M items in order, none lost", test_ring_threads },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo engine_tests[] = {
	{ "engine runs work in order, returns statuses and messages", test_engine_order_status },
	{ "engine pinned to the chosen core", test_engine_pinning },
	{ "application-driven progress runs inline", test_app_progress },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo config_tests[] = {
	{ "out-of-range and empty settings refused, naming the flag or variable and the range", test_config_ranges },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo comm_tests[] = {
	{ "1..5 ranks over udp, app progress", test_ranks_app },
	{ "2 and 5 ranks over udp, engine threads", test_ranks_thread },
	{ "gx-run: ranks, external store, statuses, timeout, bad flags", test_gx_run },
	CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--as-rank"))
		return rank_main(-1, -1, NULL, GX_PROGRESS_APP);
	if (argc > 1 && !strcmp(argv[1], "netns")) {
		CU_SuiteInfo ns[] = { { "gx-run netns", NULL, NULL, NULL, NULL, netns_tests },
				      CU_SUITE_INFO_NULL };
		gx_test_require_root("gx-run --netns");
		signal(SIGPIPE, SIG_IGN);
		return gx_test_main(ns);
	}
	CU_SuiteInfo suites[] = {
		{ "ring", NULL, NULL, NULL, NULL, ring_tests },
		{ "engine", NULL, NULL, NULL, NULL, engine_tests },
		{ "config", NULL, NULL, NULL, NULL, config_tests },
		{ "comm", NULL, NULL, NULL, NULL, comm_tests },
		CU_SUITE_INFO_NULL,
	};
	signal(SIGPIPE, SIG_IGN);
	return gx_test_main(suites);
}
