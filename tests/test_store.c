/* test_store.c: the rendezvous store (set/get/wait/add, back-off, bad clients, a store that dies),
 * the bootstrap's environment rules, and gx_comm_create's rendezvous errors with forked ranks over
 * udp on loopback (late rank, missing rank named, wrong world size, store killed mid-rendezvous). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gx_bootstrap.h"
#include "gx_comm.h"
#include "gx_store.h"
#include "gx_test.h"
#include "gx_time.h"

/* A store client that cannot be created: a failing status and no object. */
static int store_refused(const char *addr, uint32_t timeout_ms)
{
	struct gx_store *s = (struct gx_store *)1;
	return gx_store_create(addr, timeout_ms, &s) < 0 && s == NULL;
}

static void sleep_ms(unsigned ms)
{
	struct timespec d = { ms / 1000, (long)(ms % 1000) * 1000000l };
	nanosleep(&d, NULL);
}

static struct gx_store_server *start_server(char *addr, size_t len)
{
	struct gx_store_server *s = NULL;
	gx_store_server_create("127.0.0.1:0", 0, &s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	snprintf(addr, len, "127.0.0.1:%u", gx_store_server_port(s));
	return s;
}

/* ---- store semantics ------------------------------------------------------------------------ */
static void test_set_get_add(void)
{
	char addr[64], buf[64];
	size_t len = 0;
	int64_t v = 0;
	struct gx_store_server *srv = start_server(addr, sizeof(addr));
	struct gx_store *s = NULL;
	gx_store_create(addr, 2000, &s);

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(gx_store_set(s, "alpha", "hello", 5), GX_OK);
	CU_ASSERT_EQUAL(gx_store_get(s, "alpha", buf, sizeof(buf), &len, 0), GX_OK);
	CU_ASSERT_EQUAL(len, 5);
	CU_ASSERT_NSTRING_EQUAL(buf, "hello", 5);
	/* overwrite, empty value */
	CU_ASSERT_EQUAL(gx_store_set(s, "alpha", "", 0), GX_OK);
	CU_ASSERT_EQUAL(gx_store_get(s, "alpha", buf, sizeof(buf), &len, 0), GX_OK);
	CU_ASSERT_EQUAL(len, 0);
	/* value larger than the buffer */
	CU_ASSERT_EQUAL(gx_store_set(s, "big", "0123456789", 10), GX_OK);
	CU_ASSERT_EQUAL(gx_store_get(s, "big", buf, 4, &len, 0), GX_ERR_NOSPC);
	CU_ASSERT_EQUAL(len, 10);
	/* a missing key times out after about the time asked for, and the client stays usable */
	uint64_t t0 = gx_now_ns();
	CU_ASSERT_EQUAL(gx_store_get(s, "nope", buf, sizeof(buf), &len, 100), GX_ERR_TIMEOUT);
	uint64_t dt = (gx_now_ns() - t0) / 1000000;
	CU_ASSERT(dt >= 95 && dt < 2000);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "nope"));
	/* counters */
	CU_ASSERT_EQUAL(gx_store_add(s, "ctr", 1, &v), GX_OK);
	CU_ASSERT_EQUAL(v, 1);
	CU_ASSERT_EQUAL(gx_store_add(s, "ctr", 41, &v), GX_OK);
	CU_ASSERT_EQUAL(v, 42);
	CU_ASSERT_EQUAL(gx_store_add(s, "ctr", -50, &v), GX_OK);
	CU_ASSERT_EQUAL(v, -8);
	CU_ASSERT_EQUAL(gx_store_get(s, "ctr", buf, sizeof(buf), &len, 0), GX_OK);
	CU_ASSERT_EQUAL(len, 8);
	CU_ASSERT_EQUAL((uint8_t)buf[0], 0xf8);    /* -8 as 8 little-endian bytes */
	CU_ASSERT_EQUAL((uint8_t)buf[7], 0xff);
	/* bad keys are refused on the client side */
	CU_ASSERT_EQUAL(gx_store_set(s, "", "x", 1), GX_ERR_INVAL);
	gx_store_destroy(s);
	gx_store_server_destroy(srv, 0);
}

struct late_set {
	const char *addr, *key;
	unsigned delay_ms;
};

static void *late_setter(void *arg)
{
	struct late_set *l = arg;
	sleep_ms(l->delay_ms);
	struct gx_store *s = NULL;
	gx_store_create(l->addr, 2000, &s);
	if (s) {
		gx_store_set(s, l->key, "v", 1);
		gx_store_destroy(s);
	}
	return NULL;
}

static void test_wait(void)
{
	char addr[64];
	uint32_t miss[4], nmiss = 99;
	const char *keys[4] = { "w0", "w1", "w2", "w3" };
	struct gx_store_server *srv = start_server(addr, sizeof(addr));
	struct gx_store *s = NULL;
	gx_store_create(addr, 2000, &s);
	pthread_t th;

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(gx_store_set(s, "w0", "a", 1), GX_OK);
	CU_ASSERT_EQUAL(gx_store_set(s, "w2", "a", 1), GX_OK);
	/* timeout reports exactly the absent keys */
	CU_ASSERT_EQUAL(gx_store_wait(s, keys, 4, NULL, 50, miss, &nmiss), GX_ERR_TIMEOUT);
	CU_ASSERT_EQUAL(nmiss, 2);
	CU_ASSERT_EQUAL(miss[0], 1);
	CU_ASSERT_EQUAL(miss[1], 3);
	/* zero timeout: a poll */
	CU_ASSERT_EQUAL(gx_store_wait(s, keys, 1, NULL, 0, miss, &nmiss), GX_OK);
	/* a key set late by another client wakes the waiter well before its timeout */
	CU_ASSERT_EQUAL(gx_store_set(s, "w1", "a", 1), GX_OK);
	struct late_set l = { addr, "w3", 200 };
	pthread_create(&th, NULL, late_setter, &l);
	uint64_t t0 = gx_now_ns();
	CU_ASSERT_EQUAL(gx_store_wait(s, keys, 4, NULL, 10000, miss, &nmiss), GX_OK);
	uint64_t dt = (gx_now_ns() - t0) / 1000000;
	CU_ASSERT(dt >= 150 && dt < 5000);
	pthread_join(th, NULL);
	/* the abort key ends a wait with its message */
	const char *k2[1] = { "never" };
	struct late_set a = { addr, "abortkey", 100 };
	pthread_create(&th, NULL, late_setter, &a);
	CU_ASSERT_EQUAL(gx_store_wait(s, k2, 1, "abortkey", 10000, miss, &nmiss), GX_ERR_CLOSED);
	CU_ASSERT_STRING_EQUAL(gx_last_error(), "v");
	pthread_join(th, NULL);
	/* get waits for a late key too */
	char buf[8];
	size_t len;
	struct late_set g = { addr, "lateget", 100 };
	pthread_create(&th, NULL, late_setter, &g);
	CU_ASSERT_EQUAL(gx_store_get(s, "lateget", buf, sizeof(buf), &len, 10000), GX_OK);
	CU_ASSERT_EQUAL(len, 1);
	pthread_join(th, NULL);
	gx_store_destroy(s);
	gx_store_server_destroy(srv, 0);
}

/* ---- many clients ---------------------------------------------------------------------------- */
#define MANY 48
#define ADDS 50

struct many_arg {
	const char *addr;
	int id;
	gx_status_t st;
	int64_t last;
};

static void *many_client(void *arg)
{
	struct many_arg *m = arg;
	char key[32];
	const char *keys[MANY];
	char names[MANY][32];
	struct gx_store *s = NULL;
	gx_store_create(m->addr, 5000, &s);

	m->st = GX_ERR_IO;
	if (!s)
		return NULL;
	for (int i = 0; i < ADDS; i++)
		if ((m->st = gx_store_add(s, "many/ctr", 1, &m->last)) < 0)
			goto out;
	snprintf(key, sizeof(key), "many/done/%d", m->id);
	if ((m->st = gx_store_set(s, key, &m->id, sizeof(m->id))) < 0)
		goto out;
	for (int i = 0; i < MANY; i++) {
		snprintf(names[i], sizeof(names[i]), "many/done/%d", i);
		keys[i] = names[i];
	}
	m->st = gx_store_wait(s, keys, MANY, NULL, 10000, NULL, NULL);
	/* after everyone finished adding, the counter is exact */
	if (m->st == GX_OK)
		m->st = gx_store_add(s, "many/ctr", 0, &m->last);
out:
	gx_store_destroy(s);
	return NULL;
}

static void test_many_clients(void)
{
	char addr[64];
	struct gx_store_server *srv = start_server(addr, sizeof(addr));
	pthread_t th[MANY];
	struct many_arg a[MANY];

	for (int i = 0; i < MANY; i++) {
		a[i] = (struct many_arg){ .addr = addr, .id = i };
		pthread_create(&th[i], NULL, many_client, &a[i]);
	}
	for (int i = 0; i < MANY; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(a[i].st, GX_OK);
		CU_ASSERT_EQUAL(a[i].last, MANY * ADDS);
	}
	gx_store_server_destroy(srv, 0);
}

/* ---- bad clients, back-off, timeouts ----------------------------------------------------------- */
static int raw_connect(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_bad_clients(void)
{
	char addr[64], buf[16];
	size_t len;
	struct gx_store_server *srv = start_server(addr, sizeof(addr));
	uint16_t port = gx_store_server_port(srv);
	struct gx_store *good = NULL;
	gx_store_create(addr, 2000, &good);

	CU_ASSERT_PTR_NOT_NULL_FATAL(good);
	/* an HTTP client, a frame claiming 4 GiB, a truncated frame then hang-up, a silent client */
	int f1 = raw_connect(port), f2 = raw_connect(port), f3 = raw_connect(port), f4 = raw_connect(port);
	CU_ASSERT(f1 >= 0 && f2 >= 0 && f3 >= 0 && f4 >= 0);
	CU_ASSERT(send(f1, "GET / HTTP/1.0\r\n\r\n", 18, MSG_NOSIGNAL) == 18);
	CU_ASSERT(send(f2, "\xff\xff\xff\xff", 4, MSG_NOSIGNAL) == 4);
	CU_ASSERT(send(f3, "\x20\x00\x00\x00\x53\x58\x01", 7, MSG_NOSIGNAL) == 7);
	close(f3);
	/* the server drops the bad ones (read returns EOF or a reset) ... */
	struct timeval tv = { 2, 0 };
	setsockopt(f1, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(f2, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char junk[64];
	ssize_t r1, r2;
	while ((r1 = recv(f1, junk, sizeof(junk), 0)) > 0)
		;
	while ((r2 = recv(f2, junk, sizeof(junk), 0)) > 0)
		;
	CU_ASSERT(r1 == 0 || (r1 < 0 && errno == ECONNRESET));
	CU_ASSERT(r2 == 0 || (r2 < 0 && errno == ECONNRESET));
	/* ... and keeps serving good clients */
	CU_ASSERT_EQUAL(gx_store_set(good, "still", "up", 2), GX_OK);
	CU_ASSERT_EQUAL(gx_store_get(good, "still", buf, sizeof(buf), &len, 0), GX_OK);
	CU_ASSERT_EQUAL(len, 2);
	close(f1);
	close(f2);
	close(f4);
	gx_store_destroy(good);
	gx_store_server_destroy(srv, 0);
}

struct late_server {
	char addr[64];
	unsigned delay_ms;
	struct gx_store_server *srv;
};

static void *late_server_main(void *arg)
{
	struct late_server *l = arg;
	sleep_ms(l->delay_ms);
	gx_store_server_create(l->addr, 0, &l->srv);
	return NULL;
}

static void test_connect_backoff(void)
{
	struct late_server l = { .delay_ms = 300 };
	pthread_t th;
	char buf[64];

	snprintf(l.addr, sizeof(l.addr), "127.0.0.1:%u", gx_test_free_port());
	/* nobody listens: a clear timeout naming the address, after about the time asked for */
	uint64_t t0 = gx_now_ns();
	CU_ASSERT(store_refused(l.addr, 200));
	uint64_t dt = (gx_now_ns() - t0) / 1000000;
	CU_ASSERT(dt >= 190 && dt < 2000);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), l.addr));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_STORE"));
	/* a store that comes up late is found by the retries */
	pthread_create(&th, NULL, late_server_main, &l);
	struct gx_store *s = NULL;
	gx_store_create(l.addr, 5000, &s);
	pthread_join(th, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.srv);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(gx_store_set(s, "k", "v", 1), GX_OK);
	gx_store_destroy(s);
	gx_store_server_destroy(l.srv, 0);
	/* malformed addresses */
	CU_ASSERT(store_refused("localhost", 100));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "host:port"));
	CU_ASSERT(store_refused("127.0.0.1:99999", 100));
	CU_ASSERT(store_refused("no-such-host.invalid:1", 100));
	(void)buf;
}

/* A store in another process, killed while a client waits on it. */
static void test_store_dies(void)
{
	int pfd[2];
	uint16_t port = 0;
	char addr[64];

	CU_ASSERT_FATAL(pipe(pfd) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct gx_store_server *srv = NULL;
		gx_store_server_create("127.0.0.1:0", 0, &srv);
		uint16_t p = srv ? gx_store_server_port(srv) : 0;
		if (write(pfd[1], &p, sizeof(p)) != sizeof(p))
			_exit(1);
		for (;;)
			pause();
	}
	CU_ASSERT_FATAL(read(pfd[0], &port, sizeof(port)) == sizeof(port));
	close(pfd[0]);
	close(pfd[1]);
	CU_ASSERT_FATAL(port != 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	struct gx_store *s = NULL;
	gx_store_create(addr, 2000, &s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(gx_store_set(s, "x", "1", 1), GX_OK);
	/* kill the store 200 ms into a 20 s wait: the waiter learns at once, not after 20 s */
	pid_t killer = fork();
	if (killer == 0) {
		sleep_ms(200);
		kill(pid, SIGKILL);
		_exit(0);
	}
	const char *k[1] = { "never" };
	uint64_t t0 = gx_now_ns();
	CU_ASSERT_EQUAL(gx_store_wait(s, k, 1, NULL, 20000, NULL, NULL), GX_ERR_IO);
	uint64_t dt = (gx_now_ns() - t0) / 1000000;
	CU_ASSERT(dt < 3000);
	CU_ASSERT(strstr(gx_last_error(), "lost the connection") ||
		  strstr(gx_last_error(), "closed the connection"));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), addr));
	/* the client stays failed rather than hanging */
	CU_ASSERT(gx_store_set(s, "y", "1", 1) < 0);
	gx_store_destroy(s);
	waitpid(killer, NULL, 0);
	waitpid(pid, NULL, 0);
}

/* ---- bootstrap rules ---------------------------------------------------------------------- */
static const char *const launcher_vars[] = {
	"GX_RANK", "GX_SIZE", "GX_LOCAL_RANK", "GX_LOCAL_SIZE", "GX_STORE", "GX_STORE_SERVE", "GX_STORE_EXTERNAL",
	"GX_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_LOCALID",
	"SLURM_NTASKS_PER_NODE", "SLURM_JOB_ID", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
	"OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_RANK", "PMI_SIZE",
	"MPI_LOCALRANKID", "MPI_LOCALNRANKS",
};

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof(launcher_vars) / sizeof(launcher_vars[0]); i++)
		unsetenv(launcher_vars[i]);
}

static void test_bootstrap_env(void)
{
	struct gx_comm_opts o;
	struct gx_boot b;

	clear_env();
	gx_comm_opts_default(&o);
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_RANK"));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "srun"));

	setenv("GX_RANK", "2", 1);
	setenv("GX_SIZE", "4", 1);
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_OK);
	CU_ASSERT_EQUAL(b.rank, 2);
	CU_ASSERT_EQUAL(b.size, 4);
	CU_ASSERT_STRING_EQUAL(b.store, "127.0.0.1:29500");
	CU_ASSERT_EQUAL(b.serve, 0);
	CU_ASSERT_EQUAL(b.local_rank, -1);

	/* flags beat the environment */
	o.rank = 0;
	o.size = 3;
	o.store = "10.0.0.1:4000";
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_OK);
	CU_ASSERT_EQUAL(b.rank, 0);
	CU_ASSERT_EQUAL(b.size, 3);
	CU_ASSERT_EQUAL(b.serve, 1);
	CU_ASSERT_STRING_EQUAL(b.store, "10.0.0.1:4000");
	/* settings from the environment come through the settings table (gx_config_parse) */
	setenv("GX_STORE_SERVE", "0", 1);
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_OK);
	CU_ASSERT_EQUAL(b.serve, 1);
	CU_ASSERT_EQUAL(gx_comm_opts_default(&o), GX_OK);
	o.rank = 0;
	o.size = 3;
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_OK);
	CU_ASSERT_EQUAL(b.serve, 0);
	unsetenv("GX_STORE_SERVE");
	setenv("GX_STORE_EXTERNAL", "1", 1);       /* what gx-run --external-store sets */
	CU_ASSERT_EQUAL(gx_comm_opts_default(&o), GX_OK);
	o.rank = 0;
	o.size = 3;
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_OK);
	CU_ASSERT_EQUAL(b.serve, 0);
	setenv("GX_STORE_EXTERNAL", "yes", 1);     /* a bad value is named */
	CU_ASSERT_EQUAL(gx_comm_opts_default(&o), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_STORE_EXTERNAL"));
	unsetenv("GX_STORE_EXTERNAL");

	/* Slurm */
	clear_env();
	gx_comm_opts_default(&o);
	setenv("SLURM_PROCID", "5", 1);
	setenv("SLURM_NTASKS", "8", 1);
	setenv("SLURM_LOCALID", "1", 1);
	setenv("SLURM_NTASKS_PER_NODE", "2(x4)", 1);
	setenv("SLURM_JOB_ID", "777", 1);
	setenv("GX_STORE", "node0:29600", 1);
	CU_ASSERT_EQUAL(gx_comm_opts_default(&o), GX_OK);
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_OK);
	CU_ASSERT_EQUAL(b.rank, 5);
	CU_ASSERT_EQUAL(b.size, 8);
	CU_ASSERT_EQUAL(b.local_rank, 1);
	CU_ASSERT_EQUAL(b.local_size, 2);
	CU_ASSERT_EQUAL(b.job_id, 777);
	CU_ASSERT_STRING_EQUAL(b.store, "node0:29600");
	CU_ASSERT_STRING_EQUAL(b.source, "Slurm");

	/* Open MPI */
	clear_env();
	setenv("OMPI_COMM_WORLD_RANK", "1", 1);
	setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
	setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_OK);
	CU_ASSERT_EQUAL(b.rank, 1);
	CU_ASSERT_EQUAL(b.size, 2);
	CU_ASSERT_EQUAL(b.local_rank, 1);
	CU_ASSERT_STRING_EQUAL(b.source, "Open MPI");

	/* PMI (MPICH / Hydra) */
	clear_env();
	setenv("PMI_RANK", "0", 1);
	setenv("PMI_SIZE", "3", 1);
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_OK);
	CU_ASSERT_EQUAL(b.rank, 0);
	CU_ASSERT_EQUAL(b.size, 3);
	CU_ASSERT_EQUAL(b.serve, 1);
	CU_ASSERT_STRING_EQUAL(b.source, "PMI");

	/* errors: malformed, rank >= size, bad store address */
	clear_env();
	setenv("GX_RANK", "x1", 1);
	setenv("GX_SIZE", "2", 1);
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_RANK='x1'"));
	setenv("GX_RANK", "2", 1);
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "not below the world size"));
	setenv("GX_RANK", "1", 1);
	setenv("GX_STORE", "nocolon", 1);
	CU_ASSERT_EQUAL(gx_comm_opts_default(&o), GX_OK);
	CU_ASSERT_EQUAL(gx_bootstrap_resolve(&o, &b), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "host:port"));
	clear_env();
}

/* ---- rendezvous through gx_comm_create with forked ranks --------------------------------------- */
/* Child: init as rank r of n (size override: world size this rank believes), write the outcome
 * (status + message) to fd, exit. */
struct rv_case {
	int n;                 /* processes to start */
	int sizes[8];          /* world size each rank is told */
	int delay_ms[8];       /* start-up delay per rank */
	int present[8];        /* 0: this rank is never started */
	uint32_t timeout_ms;
};

struct rv_result {
	gx_status_t st;
	uint32_t rank, size;
	char msg[480];
};

static void rv_child(const char *store, int r, int size, int delay, uint32_t timeout_ms, int fd)
{
	struct gx_comm_opts o;
	struct rv_result res = { 0 };

	sleep_ms((unsigned)delay);
	gx_comm_opts_default(&o);
	o.rank = r;
	o.size = size;
	o.store = store;
	o.store_serve = 0;
	o.store_timeout_ms = timeout_ms;
	gx_transport_opts_set(&o.tr, "udp-ip", "127.0.0.1");
	struct gx_comm *c = NULL;
	if (gx_comm_create(&o, &c) < 0) {
		res.st = -1;    /* the message is in gx_last_error() */
		snprintf(res.msg, sizeof(res.msg), "%s", gx_last_error());
	} else {
		res.rank = gx_comm_rank(c);
		res.size = gx_comm_size(c);
		gx_comm_destroy(c);
	}
	if (write(fd, &res, sizeof(res)) != sizeof(res))
		_exit(3);
	_exit(0);
}

/* Runs the case against an external store (so a test may kill it); res[r] per started rank. */
static void rv_run(const struct rv_case *k, struct rv_result *res, pid_t *store_pid_out,
		   unsigned kill_store_after_ms)
{
	int pfd[2], sp[2];
	uint16_t port = 0;
	char store[64];
	pid_t pids[8], store_pid;
	int fds[8];

	CU_ASSERT_FATAL(pipe(sp) == 0);
	store_pid = fork();
	if (store_pid == 0) {
		struct gx_store_server *srv = NULL;
		gx_store_server_create("127.0.0.1:0", 0, &srv);
		uint16_t p = srv ? gx_store_server_port(srv) : 0;
		if (write(sp[1], &p, sizeof(p)) != sizeof(p))
			_exit(1);
		for (;;)
			pause();
	}
	CU_ASSERT_FATAL(read(sp[0], &port, sizeof(port)) == sizeof(port));
	close(sp[0]);
	close(sp[1]);
	snprintf(store, sizeof(store), "127.0.0.1:%u", port);
	if (store_pid_out)
		*store_pid_out = store_pid;
	for (int r = 0; r < k->n; r++) {
		res[r].st = 1;
		if (!k->present[r])
			continue;
		CU_ASSERT_FATAL(pipe(pfd) == 0);
		pids[r] = fork();
		if (pids[r] == 0) {
			close(pfd[0]);
			rv_child(store, r, k->sizes[r], k->delay_ms[r], k->timeout_ms, pfd[1]);
		}
		close(pfd[1]);
		fds[r] = pfd[0];
	}
	if (kill_store_after_ms) {
		sleep_ms(kill_store_after_ms);
		kill(store_pid, SIGKILL);
	}
	for (int r = 0; r < k->n; r++) {
		if (!k->present[r])
			continue;
		int fd = fds[r];
		if (read(fd, &res[r], sizeof(res[r])) != sizeof(res[r])) {
			res[r].st = 99;
			snprintf(res[r].msg, sizeof(res[r].msg), "rank %d died without a result", r);
		}
		close(fd);
		waitpid(pids[r], NULL, 0);
	}
	kill(store_pid, SIGKILL);
	waitpid(store_pid, NULL, 0);
}

static void test_rv_ok_and_late(void)
{
	/* 4 ranks, rank 2 starts 700 ms late: everyone still meets */
	struct rv_case k = { .n = 4, .sizes = { 4, 4, 4, 4 }, .delay_ms = { 0, 0, 700, 0 },
			     .present = { 1, 1, 1, 1 }, .timeout_ms = 10000 };
	struct rv_result res[8];

	rv_run(&k, res, NULL, 0);
	for (int r = 0; r < 4; r++) {
		if (res[r].st != GX_OK)
			fprintf(stderr, "rank %d: %s\n", r, res[r].msg);
		CU_ASSERT_EQUAL(res[r].st, GX_OK);
		CU_ASSERT_EQUAL(res[r].rank, (uint32_t)r);
		CU_ASSERT_EQUAL(res[r].size, 4);
	}
}

static void test_rv_missing_rank(void)
{
	/* rank 3 of 4 is never started: every other rank names it after the timeout */
	struct rv_case k = { .n = 4, .sizes = { 4, 4, 4, 4 }, .present = { 1, 1, 1, 0 },
			     .timeout_ms = 800 };
	struct rv_result res[8];
	uint64_t t0 = gx_now_ns();

	rv_run(&k, res, NULL, 0);
	uint64_t dt = (gx_now_ns() - t0) / 1000000;
	CU_ASSERT(dt < 6000);
	fprintf(stderr, "\n    rank 0 says: %s\n", res[0].msg);
	for (int r = 0; r < 3; r++) {
		CU_ASSERT(res[r].st < 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(res[r].msg, "rank 3 of 4 never joined the store at 127.0.0.1:"));
		CU_ASSERT_PTR_NOT_NULL(strstr(res[r].msg, "within 800 ms"));
	}
}

static void test_rv_wrong_size(void)
{
	/* rank 2 believes the world has 4 ranks, the others 3: every rank fails with a clear message
	 * (well before the 20 s timeout) */
	struct rv_case k = { .n = 3, .sizes = { 3, 3, 4 }, .present = { 1, 1, 1 }, .timeout_ms = 20000 };
	struct rv_result res[8];
	uint64_t t0 = gx_now_ns();

	rv_run(&k, res, NULL, 0);
	uint64_t dt = (gx_now_ns() - t0) / 1000000;
	CU_ASSERT(dt < 10000);
	fprintf(stderr, "\n    rank 0 says: %s\n    rank 2 says: %s\n", res[0].msg, res[2].msg);
	for (int r = 0; r < 3; r++) {
		CU_ASSERT(res[r].st < 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(res[r].msg, "wrong world size"));
		CU_ASSERT_PTR_NOT_NULL(strstr(res[r].msg, "GX_SIZE"));
	}
}

static void test_rv_store_dies(void)
{
	/* 3 ranks, rank 2 never comes; the store is killed 300 ms in: ranks 0 and 1 fail at once with
	 * a lost-connection error, not after the 20 s timeout */
	struct rv_case k = { .n = 3, .sizes = { 3, 3, 3 }, .present = { 1, 1, 0 }, .timeout_ms = 20000 };
	struct rv_result res[8];
	uint64_t t0 = gx_now_ns();

	rv_run(&k, res, NULL, 300);
	uint64_t dt = (gx_now_ns() - t0) / 1000000;
	CU_ASSERT(dt < 8000);
	fprintf(stderr, "\n    rank 0 says: %s\n", res[0].msg);
	for (int r = 0; r < 2; r++) {
		CU_ASSERT(res[r].st < 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(res[r].msg, "store"));
		CU_ASSERT(strstr(res[r].msg, "lost the connection") || strstr(res[r].msg, "closed the connection"));
	}
}

static void test_rv_duplicate_rank(void)
{
	/* two processes both claim rank 1 (ranks 0,1,1 of a world of 3): the duplicate is named */
	struct gx_store_server *srv;
	char addr[64];
	int pfd[2], fds[3];
	pid_t pids[3];
	struct rv_result res[3];
	int ranks[3] = { 0, 1, 1 };

	srv = start_server(addr, sizeof(addr));
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_FATAL(pipe(pfd) == 0);
		if ((pids[i] = fork()) == 0) {
			close(pfd[0]);
			rv_child(addr, ranks[i], 3, i == 2 ? 200 : 0, 1500, pfd[1]);
		}
		close(pfd[1]);
		fds[i] = pfd[0];
	}
	for (int i = 0; i < 3; i++) {
		if (read(fds[i], &res[i], sizeof(res[i])) != sizeof(res[i]))
			res[i].st = 99;
		close(fds[i]);
		waitpid(pids[i], NULL, 0);
	}
	int named = 0;
	fprintf(stderr, "\n    %s\n    %s\n    %s\n", res[0].msg, res[1].msg, res[2].msg);
	for (int i = 0; i < 3; i++)
		if (strstr(res[i].msg, "rank 1 was started more than once"))
			named++;
	CU_ASSERT(named >= 1);
	for (int i = 0; i < 3; i++)
		CU_ASSERT(res[i].st < 0);
	gx_store_server_destroy(srv, 0);
}

static CU_TestInfo store_tests[] = {
	{ "set/get/add", test_set_get_add },
	{ "wait: missing keys, late keys, abort key", test_wait },
	{ "many clients", test_many_clients },
	{ "bad clients are dropped, others served", test_bad_clients },
	{ "connect: timeout, back-off finds a late store, bad addresses", test_connect_backoff },
	{ "store killed while a client waits", test_store_dies },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo boot_tests[] = {
	{ "rank/size from flags, GX_*, Slurm, Open MPI, PMI", test_bootstrap_env },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo rv_tests[] = {
	{ "4 ranks, one late", test_rv_ok_and_late },
	{ "missing rank is named after the timeout", test_rv_missing_rank },
	{ "wrong world size", test_rv_wrong_size },
	{ "store killed mid-rendezvous", test_rv_store_dies },
	{ "duplicate rank", test_rv_duplicate_rank },
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{ "store", NULL, NULL, NULL, NULL, store_tests },
		{ "bootstrap", NULL, NULL, NULL, NULL, boot_tests },
		{ "rendezvous", NULL, NULL, NULL, NULL, rv_tests },
		CU_SUITE_INFO_NULL,
	};
	signal(SIGPIPE, SIG_IGN);
	return gx_test_main(suites);
}
