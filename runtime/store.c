/* store.c: the rendezvous key-value store, client and server (see gx_store.h, docs/runtime.md).
 *
 * Wire format: every message is a frame: a 4-byte little-endian body length, then the body.
 *   request: u16 magic GX_STORE_MAGIC, u8 op, u8 flags, u16 nkeys, u16 reserved, u32 timeout_ms,
 *            nkeys x (u16 len, key bytes), u32 vlen, value bytes
 *   reply:   u8 status, then op-specific bytes (GET: the value; ADD: i64 result;
 *            WAIT timeout: u32 count + u32 missing indices; aborted: the abort key's value)
 * The server is one thread with poll(): the store is start-up only, never on the hot path.
 * A client that sends a malformed or oversized frame is disconnected; others are unaffected.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx_store.h"
#include "gx_time.h"

#define GX_STORE_MAGIC 0x5853u          /* "SX" */
#define STORE_FRAME_MAX (1u << 20)      /* larger frames are a bad client */
#define STORE_MAX_CLIENTS 16384u
#define STORE_REPLY_SLACK_MS 5000u      /* how much longer than a wait a reply may take */

enum store_op { OP_SET = 1, OP_GET = 2, OP_WAIT = 3, OP_ADD = 4 };
enum store_flag { FLAG_ABORT_KEY = 1 }; /* WAIT: keys[0] is an abort key */
enum store_reply { REP_OK = 0, REP_TIMEOUT = 1, REP_ABORTED = 2, REP_BAD = 3 };

/* ---- little-endian helpers ---------------------------------------------------------------- */
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

gx_status_t gx_store_parse_addr(const char *addr, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	char *end;
	unsigned long p;

	if (!colon)
		return gx_error(GX_ERR_INVAL, "store address '%s' is not host:port (e.g. 127.0.0.1:29500)",
				addr ? addr : "(null)");
	size_t hl = (size_t)(colon - addr);
	if (hl + 1 > hostlen)
		return gx_error(GX_ERR_INVAL, "store address '%s': host name too long", addr);
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || p > 65535)
		return gx_error(GX_ERR_INVAL, "store address '%s': bad port (0..65535)", addr);
	if (hl == 0)
		snprintf(host, hostlen, "127.0.0.1");
	else {
		memcpy(host, addr, hl);
		host[hl] = '\0';
	}
	*port = (uint16_t)p;
	return GX_OK;
}

static gx_status_t resolve(const char *addr, struct sockaddr_in *sa)
{
	char host[256];
	uint16_t port;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res = NULL;
	gx_status_t st;
	int rc;

	if ((st = gx_store_parse_addr(addr, host, sizeof(host), &port)) < 0)
		return st;
	if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0 || !res)
		return gx_error(GX_ERR_INVAL, "store address '%s': cannot resolve '%s' (%s)", addr, host,
				gai_strerror(rc));
	memcpy(sa, res->ai_addr, sizeof(*sa));
	sa->sin_port = htons(port);
	freeaddrinfo(res);
	return GX_OK;
}

static int remaining_ms(uint64_t deadline_ns)
{
	uint64_t now = gx_now_ns();
	if (now >= deadline_ns)
		return 0;
	uint64_t ms = (deadline_ns - now + 999999) / 1000000;
	return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* ================================ client ==================================================== */
struct gx_store {
	int fd;
	char addr[280];
	uint8_t *buf;          /* request and reply scratch */
	size_t cap;
};

const char *gx_store_addr(const struct gx_store *s)
{
	return s->addr;
}

static int try_connect(const struct sockaddr_in *sa, uint64_t deadline, int *err)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		if (errno != EINPROGRESS) {
			*err = errno;
			close(fd);
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int ms = remaining_ms(deadline);
		if (ms > 1000)
			ms = 1000;
		int rc = poll(&p, 1, ms);
		socklen_t len = sizeof(*err);
		if (rc <= 0) {
			*err = rc == 0 ? ETIMEDOUT : errno;
			close(fd);
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &len) < 0 || *err) {
			if (!*err)
				*err = errno;
			close(fd);
			return -1;
		}
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

gx_status_t gx_store_create(const char *addr, uint32_t timeout_ms, struct gx_store **out)
{
	struct sockaddr_in sa;
	struct gx_store *s;
	uint64_t deadline = gx_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	uint64_t backoff_ms = 10;
	int err = 0, fd;
	gx_status_t st;

	*out = NULL;
	if ((st = resolve(addr, &sa)) < 0)
		return st;
	for (;;) {
		fd = try_connect(&sa, deadline, &err);
		if (fd >= 0)
			break;
		int left = remaining_ms(deadline);
		if (left == 0) {
			return gx_error(GX_ERR_TIMEOUT,
					"cannot reach the rendezvous store at %s within %u ms (%s): start rank 0 "
					"(it serves the store) or gx-store --port <port>, or point GX_STORE at it",
					addr, timeout_ms, strerror(err));
		}
		struct timespec d = { 0, 0 };
		uint64_t ms = backoff_ms < (uint64_t)left ? backoff_ms : (uint64_t)left;
		d.tv_sec = (time_t)(ms / 1000);
		d.tv_nsec = (long)(ms % 1000) * 1000000l;
		nanosleep(&d, NULL);
		backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return gx_error(GX_ERR_NOMEM, "store client: out of memory");
	}
	s->fd = fd;
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	*out = s;
	return GX_OK;
}

void gx_store_destroy(struct gx_store *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->buf);
	free(s);
}

static gx_status_t reserve(struct gx_store *s, size_t n)
{
	if (n <= s->cap)
		return GX_OK;
	uint8_t *b = realloc(s->buf, n);
	if (!b)
		return gx_error(GX_ERR_NOMEM, "store client: out of memory");
	s->buf = b;
	s->cap = n;
	return GX_OK;
}

static gx_status_t lost(struct gx_store *s, const char *what, int err)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (err)
		return gx_error(GX_ERR_IO, "lost the connection to the store at %s while %s (%s): did the "
				"store's process (rank 0 or gx-store) exit?", s->addr, what, strerror(err));
	return gx_error(GX_ERR_IO, "the store at %s closed the connection while %s: did the store's "
			"process (rank 0 or gx-store) exit?", s->addr, what);
}

static gx_status_t io_all(struct gx_store *s, uint8_t *p, size_t n, int writing, uint64_t deadline)
{
	while (n) {
		ssize_t r = writing ? send(s->fd, p, n, MSG_NOSIGNAL) : recv(s->fd, p, n, 0);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			continue;
		}
		if (r == 0)
			return lost(s, "waiting for a reply", 0);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return lost(s, writing ? "sending a request" : "waiting for a reply", errno);
		struct pollfd pf = { .fd = s->fd, .events = writing ? POLLOUT : POLLIN };
		int ms = remaining_ms(deadline);
		if (ms == 0 || poll(&pf, 1, ms) == 0) {
			close(s->fd);
			s->fd = -1;
			return gx_error(GX_ERR_TIMEOUT, "the store at %s stopped answering (no reply in time): "
					"is its process stuck?", s->addr);
		}
	}
	return GX_OK;
}

/* Build a request in s->buf (frame length prefix included); returns its size or 0 on error. */
static size_t build(struct gx_store *s, uint8_t op, uint8_t flags, const char *const *keys,
		    uint32_t nkeys, uint32_t timeout_ms, const void *val, size_t vlen)
{
	size_t n = 4 + 12 + 4 + vlen;

	if (nkeys > 0xffff || vlen > GX_STORE_VALUE_MAX) {
		gx_error(GX_ERR_INVAL, "store request too large (%u keys, %zu-byte value; limits 65535 "
			 "and %u)", nkeys, vlen, GX_STORE_VALUE_MAX);
		return 0;
	}
	for (uint32_t i = 0; i < nkeys; i++) {
		size_t kl = strlen(keys[i]);
		if (kl == 0 || kl > GX_STORE_KEY_MAX) {
			gx_error(GX_ERR_INVAL, "store key '%.40s...' must be 1..%u bytes", keys[i],
				 GX_STORE_KEY_MAX);
			return 0;
		}
		n += 2 + kl;
	}
	if (n - 4 > STORE_FRAME_MAX) {
		gx_error(GX_ERR_INVAL, "store request of %zu bytes exceeds the %u-byte frame limit", n,
			 STORE_FRAME_MAX);
		return 0;
	}
	if (reserve(s, n) < 0)
		return 0;
	uint8_t *p = s->buf;
	put32(p, (uint32_t)(n - 4));
	put16(p + 4, GX_STORE_MAGIC);
	p[6] = op;
	p[7] = flags;
	put16(p + 8, (uint16_t)nkeys);
	put16(p + 10, 0);
	put32(p + 12, timeout_ms);
	p += 16;
	for (uint32_t i = 0; i < nkeys; i++) {
		size_t kl = strlen(keys[i]);
		put16(p, (uint16_t)kl);
		memcpy(p + 2, keys[i], kl);
		p += 2 + kl;
	}
	put32(p, (uint32_t)vlen);
	if (vlen)
		memcpy(p + 4, val, vlen);
	return n;
}

/* Send the request in s->buf and read the reply body into s->buf; *rlen = body length. */
static gx_status_t roundtrip(struct gx_store *s, size_t n, uint32_t wait_ms, size_t *rlen)
{
	uint64_t deadline = gx_now_ns() + ((uint64_t)wait_ms + STORE_REPLY_SLACK_MS) * 1000000ull;
	uint8_t hdr[4];
	gx_status_t st;

	if (s->fd < 0)
		return gx_error(GX_ERR_CLOSED, "the connection to the store at %s was lost earlier",
				s->addr);
	if ((st = io_all(s, s->buf, n, 1, deadline)) < 0)
		return st;
	if ((st = io_all(s, hdr, 4, 0, deadline)) < 0)
		return st;
	uint32_t len = get32(hdr);
	if (len == 0 || len > STORE_FRAME_MAX) {
		close(s->fd);
		s->fd = -1;
		return gx_error(GX_ERR_CORRUPT, "the store at %s sent a malformed reply (%u bytes): is "
				"that port really a gx store?", s->addr, len);
	}
	if ((st = reserve(s, len)) < 0)
		return st;
	if ((st = io_all(s, s->buf, len, 0, deadline)) < 0)
		return st;
	*rlen = len;
	if (s->buf[0] == REP_BAD)
		return gx_error(GX_ERR_INVAL, "the store at %s rejected a request as malformed", s->addr);
	return GX_OK;
}

gx_status_t gx_store_set(struct gx_store *s, const char *key, const void *val, size_t len)
{
	size_t n = build(s, OP_SET, 0, &key, 1, 0, val, len), rlen;
	gx_status_t st;

	if (!n)
		return GX_ERR_INVAL;
	if ((st = roundtrip(s, n, 0, &rlen)) < 0)
		return st;
	return GX_OK;
}

gx_status_t gx_store_get(struct gx_store *s, const char *key, void *val, size_t cap, size_t *len,
			 uint32_t timeout_ms)
{
	size_t n = build(s, OP_GET, 0, &key, 1, timeout_ms, NULL, 0), rlen;
	gx_status_t st;

	if (!n)
		return GX_ERR_INVAL;
	if ((st = roundtrip(s, n, timeout_ms, &rlen)) < 0)
		return st;
	if (s->buf[0] == REP_TIMEOUT)
		return gx_error(GX_ERR_TIMEOUT, "key '%s' did not appear in the store at %s within %u ms",
				key, s->addr, timeout_ms);
	size_t vl = rlen - 1;
	if (len)
		*len = vl;
	if (vl > cap)
		return gx_error(GX_ERR_NOSPC, "value of '%s' is %zu bytes, buffer holds %zu", key, vl, cap);
	if (vl)
		memcpy(val, s->buf + 1, vl);
	return GX_OK;
}

gx_status_t gx_store_wait(struct gx_store *s, const char *const *keys, uint32_t n,
			  const char *abort_key, uint32_t timeout_ms, uint32_t *missing,
			  uint32_t *nmissing)
{
	const char **all = calloc((size_t)n + 1, sizeof(*all));
	size_t req, rlen;
	gx_status_t st;
	uint32_t off = abort_key ? 1 : 0;

	if (!all)
		return gx_error(GX_ERR_NOMEM, "store wait: out of memory");
	if (abort_key)
		all[0] = abort_key;
	memcpy(all + off, keys, (size_t)n * sizeof(*keys));
	req = build(s, OP_WAIT, abort_key ? FLAG_ABORT_KEY : 0, all, n + off, timeout_ms, NULL, 0);
	free(all);
	if (!req)
		return GX_ERR_INVAL;
	if (nmissing)
		*nmissing = 0;
	if ((st = roundtrip(s, req, timeout_ms, &rlen)) < 0)
		return st;
	switch (s->buf[0]) {
	case REP_OK:
		return GX_OK;
	case REP_ABORTED:
		return gx_error(GX_ERR_CLOSED, "%.*s", (int)(rlen - 1), (const char *)s->buf + 1);
	case REP_TIMEOUT:
		if (rlen >= 5) {
			uint32_t cnt = get32(s->buf + 1);
			if (cnt > n || rlen < 5 + 4ull * cnt)
				cnt = 0;
			for (uint32_t i = 0; i < cnt; i++)
				if (missing)
					missing[i] = get32(s->buf + 5 + 4 * i);
			if (nmissing)
				*nmissing = cnt;
		}
		return gx_error(GX_ERR_TIMEOUT, "waited %u ms for %u keys in the store at %s", timeout_ms,
				n, s->addr);
	}
	return gx_error(GX_ERR_CORRUPT, "the store at %s sent an unknown reply %u", s->addr, s->buf[0]);
}

gx_status_t gx_store_add(struct gx_store *s, const char *key, int64_t delta, int64_t *result)
{
	uint8_t v[8];
	size_t n, rlen;
	gx_status_t st;

	put64(v, (uint64_t)delta);
	if (!(n = build(s, OP_ADD, 0, &key, 1, 0, v, 8)))
		return GX_ERR_INVAL;
	if ((st = roundtrip(s, n, 0, &rlen)) < 0)
		return st;
	if (rlen < 9)
		return gx_error(GX_ERR_CORRUPT, "the store at %s sent a short reply to add", s->addr);
	if (result)
		*result = (int64_t)get64(s->buf + 1);
	return GX_OK;
}

/* ================================ server ==================================================== */
struct kv {
	struct kv *next;
	uint32_t hash, klen, vlen;
	uint8_t *val;
	char key[];
};

struct conn {
	int fd;
	uint8_t *in, *out;
	size_t in_len, in_cap, out_len, out_off, out_cap;
	uint8_t *parked;       /* request waiting for keys (copy of its body), or NULL */
	size_t parked_len;
	uint64_t deadline_ns;
};

struct gx_store_server {
	int lfd, wake[2];
	uint16_t port;
	uint32_t idle_timeout_ms;
	pthread_t thread;
	_Atomic int stop, running;
	_Atomic uint32_t nclients;
	_Atomic uint64_t stop_at_ns;
	struct kv **tab;
	uint32_t tab_size, nkeys;
	struct conn *conns;
	uint32_t nconns, conns_cap;
	struct pollfd *pfd;
};

static uint32_t fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;
	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static struct kv *kv_find(struct gx_store_server *s, const uint8_t *k, uint32_t kl)
{
	uint32_t h = fnv(k, kl);
	for (struct kv *e = s->tab[h & (s->tab_size - 1)]; e; e = e->next)
		if (e->hash == h && e->klen == kl && !memcmp(e->key, k, kl))
			return e;
	return NULL;
}

static struct kv *kv_put(struct gx_store_server *s, const uint8_t *k, uint32_t kl, const uint8_t *v,
			 uint32_t vl)
{
	struct kv *e = kv_find(s, k, kl);
	uint8_t *nv = malloc(vl ? vl : 1);

	if (!nv)
		return NULL;
	memcpy(nv, v, vl);
	if (e) {
		free(e->val);
		e->val = nv;
		e->vlen = vl;
		return e;
	}
	if (s->nkeys >= s->tab_size) {                 /* grow: keep chains short */
		uint32_t ns = s->tab_size * 2;
		struct kv **nt = calloc(ns, sizeof(*nt));
		if (!nt) {
			free(nv);
			return NULL;
		}
		for (uint32_t i = 0; i < s->tab_size; i++)
			for (struct kv *x = s->tab[i], *nx; x; x = nx) {
				nx = x->next;
				x->next = nt[x->hash & (ns - 1)];
				nt[x->hash & (ns - 1)] = x;
			}
		free(s->tab);
		s->tab = nt;
		s->tab_size = ns;
	}
	e = malloc(sizeof(*e) + kl + 1);
	if (!e) {
		free(nv);
		return NULL;
	}
	e->hash = fnv(k, kl);
	e->klen = kl;
	memcpy(e->key, k, kl);
	e->key[kl] = '\0';
	e->val = nv;
	e->vlen = vl;
	e->next = s->tab[e->hash & (s->tab_size - 1)];
	s->tab[e->hash & (s->tab_size - 1)] = e;
	s->nkeys++;
	return e;
}

/* A parsed request; keys point into the body. */
struct req {
	uint8_t op, flags;
	uint16_t nkeys;
	uint32_t timeout_ms;
	const uint8_t *keys;   /* first (u16 len, bytes) */
	const uint8_t *val;
	uint32_t vlen;
};

static int parse_req(const uint8_t *b, size_t n, struct req *r)
{
	if (n < 16 || get16(b) != GX_STORE_MAGIC)
		return -1;
	r->op = b[2];
	r->flags = b[3];
	r->nkeys = get16(b + 4);
	r->timeout_ms = get32(b + 8);
	r->keys = b + 12;
	size_t off = 12;
	for (uint32_t i = 0; i < r->nkeys; i++) {
		if (off + 2 > n)
			return -1;
		uint16_t kl = get16(b + off);
		if (kl == 0 || kl > GX_STORE_KEY_MAX || off + 2 + kl > n)
			return -1;
		off += 2 + (size_t)kl;
	}
	if (off + 4 > n)
		return -1;
	r->vlen = get32(b + off);
	if (r->vlen > GX_STORE_VALUE_MAX || off + 4 + r->vlen != n)
		return -1;
	r->val = b + off + 4;
	switch (r->op) {
	case OP_SET:
		return r->nkeys == 1 ? 0 : -1;
	case OP_GET:
		return r->nkeys == 1 ? 0 : -1;
	case OP_ADD:
		return r->nkeys == 1 && r->vlen == 8 ? 0 : -1;
	case OP_WAIT:
		return (r->flags & FLAG_ABORT_KEY) && r->nkeys == 0 ? -1 : 0;
	}
	return -1;
}

static int out_reserve(struct conn *c, size_t n)
{
	if (c->out_len + n <= c->out_cap)
		return 0;
	size_t cap = c->out_cap ? c->out_cap : 256;
	while (cap < c->out_len + n)
		cap *= 2;
	uint8_t *o = realloc(c->out, cap);
	if (!o)
		return -1;
	c->out = o;
	c->out_cap = cap;
	return 0;
}

/* Queue a reply: status byte + a + b. */
static int reply(struct conn *c, uint8_t status, const void *a, size_t alen, const void *b, size_t blen)
{
	if (out_reserve(c, 5 + alen + blen) < 0)
		return -1;
	uint8_t *p = c->out + c->out_len;
	put32(p, (uint32_t)(1 + alen + blen));
	p[4] = status;
	if (alen)
		memcpy(p + 5, a, alen);
	if (blen)
		memcpy(p + 5 + alen, b, blen);
	c->out_len += 5 + alen + blen;
	return 0;
}

/* Try to answer a GET/WAIT.  final: answer with a timeout if the keys are still missing.
 * Returns 1 if answered, 0 if it must stay parked, -1 on an allocation failure. */
static int answer_wait(struct gx_store_server *s, struct conn *c, const struct req *r, int final)
{
	const uint8_t *k = r->keys;
	uint32_t first = 0, nmiss = 0;

	if (r->op == OP_GET) {
		struct kv *e = kv_find(s, k + 2, get16(k));
		if (e)
			return reply(c, REP_OK, e->val, e->vlen, NULL, 0) < 0 ? -1 : 1;
		return final ? (reply(c, REP_TIMEOUT, NULL, 0, NULL, 0) < 0 ? -1 : 1) : 0;
	}
	if (r->flags & FLAG_ABORT_KEY) {
		struct kv *e = kv_find(s, k + 2, get16(k));
		if (e)
			return reply(c, REP_ABORTED, e->val, e->vlen, NULL, 0) < 0 ? -1 : 1;
		k += 2 + get16(k);
		first = 1;
	}
	const uint8_t *k0 = k;
	for (uint32_t i = first; i < r->nkeys; i++) {
		if (!kv_find(s, k + 2, get16(k)))
			nmiss++;
		k += 2 + get16(k);
	}
	if (nmiss == 0)
		return reply(c, REP_OK, NULL, 0, NULL, 0) < 0 ? -1 : 1;
	if (!final)
		return 0;
	uint8_t *list = malloc(4 + 4ull * nmiss);
	if (!list)
		return -1;
	put32(list, nmiss);
	k = k0;
	for (uint32_t i = first, j = 0; i < r->nkeys; i++) {
		if (!kv_find(s, k + 2, get16(k)))
			put32(list + 4 + 4 * j++, i - first);
		k += 2 + get16(k);
	}
	int rc = reply(c, REP_TIMEOUT, list, 4 + 4ull * nmiss, NULL, 0);
	free(list);
	return rc < 0 ? -1 : 1;
}

static void wake_parked(struct gx_store_server *s, int expire_only, uint64_t now)
{
	for (uint32_t i = 0; i < s->nconns; i++) {
		struct conn *c = &s->conns[i];
		struct req r;
		if (!c->parked || c->fd < 0)
			continue;
		int final = now >= c->deadline_ns;
		if (expire_only && !final)
			continue;
		if (parse_req(c->parked, c->parked_len, &r) < 0)
			continue;
		int rc = answer_wait(s, c, &r, final);
		if (rc != 0) {
			free(c->parked);
			c->parked = NULL;
			if (rc < 0) {
				close(c->fd);
				c->fd = -1;
			}
		}
	}
}

/* Handle one request body.  Returns -1 to drop the client (malformed / out of memory). */
static int handle(struct gx_store_server *s, struct conn *c, const uint8_t *b, size_t n)
{
	struct req r;
	int64_t v = 0;
	uint8_t out[8];

	if (c->parked || parse_req(b, n, &r) < 0) {
		reply(c, REP_BAD, NULL, 0, NULL, 0);
		return -1;
	}
	switch (r.op) {
	case OP_SET:
		if (!kv_put(s, r.keys + 2, get16(r.keys), r.val, r.vlen))
			return -1;
		if (reply(c, REP_OK, NULL, 0, NULL, 0) < 0)
			return -1;
		wake_parked(s, 0, gx_now_ns());
		return 0;
	case OP_ADD: {
		struct kv *e = kv_find(s, r.keys + 2, get16(r.keys));
		if (e && e->vlen == 8)
			v = (int64_t)get64(e->val);
		v = (int64_t)((uint64_t)v + get64(r.val));
		put64(out, (uint64_t)v);
		if (!kv_put(s, r.keys + 2, get16(r.keys), out, 8))
			return -1;
		if (reply(c, REP_OK, out, 8, NULL, 0) < 0)
			return -1;
		wake_parked(s, 0, gx_now_ns());
		return 0;
	}
	default: {
		int rc = answer_wait(s, c, &r, r.timeout_ms == 0);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			if (!(c->parked = malloc(n)))
				return -1;
			memcpy(c->parked, b, n);
			c->parked_len = n;
			c->deadline_ns = gx_now_ns() + (uint64_t)r.timeout_ms * 1000000ull;
		}
		return 0;
	}
	}
}

static void conn_free(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	free(c->parked);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Read what is there and handle every complete frame.  Returns -1 to drop the client. */
static int conn_read(struct gx_store_server *s, struct conn *c)
{
	for (;;) {
		if (c->in_cap - c->in_len < 4096) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 8192;
			if (cap > 2 * STORE_FRAME_MAX + 8192)
				return -1;
			uint8_t *b = realloc(c->in, cap);
			if (!b)
				return -1;
			c->in = b;
			c->in_cap = cap;
		}
		ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (r == 0)
			return -1;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		c->in_len += (size_t)r;
		if (c->in_len < c->in_cap)
			break;
	}
	size_t off = 0;
	while (c->in_len - off >= 4) {
		uint32_t len = get32(c->in + off);
		if (len == 0 || len > STORE_FRAME_MAX)
			return -1;
		if (c->in_len - off - 4 < len)
			break;
		if (handle(s, c, c->in + off + 4, len) < 0)
			return -1;
		off += 4 + (size_t)len;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

static int conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
		c->out_off += (size_t)w;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static void accept_all(struct gx_store_server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (s->nconns >= STORE_MAX_CLIENTS) {
			close(fd);
			continue;
		}
		if (s->nconns == s->conns_cap) {
			uint32_t cap = s->conns_cap ? s->conns_cap * 2 : 64;
			struct conn *nc = realloc(s->conns, cap * sizeof(*nc));
			struct pollfd *np = realloc(s->pfd, (cap + 2) * sizeof(*np));
			if (nc)
				s->conns = nc;
			if (np)
				s->pfd = np;
			if (!nc || !np) {
				close(fd);
				return;
			}
			s->conns_cap = cap;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = &s->conns[s->nconns++];
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		atomic_store(&s->nclients, s->nconns);
	}
}

static void *server_main(void *arg)
{
	struct gx_store_server *s = arg;
	uint64_t idle_since = gx_now_ns();

	for (;;) {
		uint64_t now = gx_now_ns();
		int stopping = atomic_load(&s->stop);
		if (stopping && (s->nconns == 0 || now >= atomic_load(&s->stop_at_ns)))
			break;
		if (!stopping && s->idle_timeout_ms && s->nconns == 0 &&
		    now - idle_since >= (uint64_t)s->idle_timeout_ms * 1000000ull)
			break;
		/* poll timeout: the nearest parked deadline, the idle or linger limit, at most 1 s */
		uint64_t next = now + 1000000000ull;
		for (uint32_t i = 0; i < s->nconns; i++)
			if (s->conns[i].parked && s->conns[i].deadline_ns < next)
				next = s->conns[i].deadline_ns;
		if (stopping && atomic_load(&s->stop_at_ns) < next)
			next = atomic_load(&s->stop_at_ns);
		s->pfd[0] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
		s->pfd[1] = (struct pollfd){ .fd = stopping ? -1 : s->lfd, .events = POLLIN };
		for (uint32_t i = 0; i < s->nconns; i++)
			s->pfd[i + 2] = (struct pollfd){ .fd = s->conns[i].fd,
				.events = (short)(POLLIN | (s->conns[i].out_len ? POLLOUT : 0)) };
		int ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
		uint32_t polled = s->nconns;   /* accept_all below appends connections not yet polled */
		if (poll(s->pfd, polled + 2, ms) < 0 && errno != EINTR)
			break;
		if (s->pfd[0].revents & POLLIN) {
			char b[64];
			while (read(s->wake[0], b, sizeof(b)) > 0)
				;
		}
		if (s->pfd[1].revents & POLLIN)
			accept_all(s);
		for (uint32_t i = 0; i < polled; i++) {
			struct conn *c = &s->conns[i];
			short re = s->pfd[i + 2].fd == c->fd ? s->pfd[i + 2].revents : 0;
			if (c->fd < 0)
				continue;
			if ((re & (POLLIN | POLLHUP | POLLERR)) && conn_read(s, c) < 0) {
				conn_flush(c);      /* best effort: a REP_BAD reply explains the drop */
				close(c->fd);
				c->fd = -1;
			}
		}
		wake_parked(s, 1, gx_now_ns());
		uint32_t j = 0;
		for (uint32_t i = 0; i < s->nconns; i++) {
			struct conn *c = &s->conns[i];
			if (c->fd >= 0 && c->out_len && conn_flush(c) < 0) {
				close(c->fd);
				c->fd = -1;
			}
			if (c->fd < 0) {
				conn_free(c);
				continue;
			}
			s->conns[j++] = *c;
		}
		s->nconns = j;
		atomic_store(&s->nclients, j);
		if (j > 0)
			idle_since = gx_now_ns();
	}
	for (uint32_t i = 0; i < s->nconns; i++) {
		conn_flush(&s->conns[i]);
		conn_free(&s->conns[i]);
	}
	s->nconns = 0;
	atomic_store(&s->nclients, 0);
	atomic_store(&s->running, 0);
	return NULL;
}

static void server_free(struct gx_store_server *s)
{
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->wake[0] >= 0)
		close(s->wake[0]);
	if (s->wake[1] >= 0)
		close(s->wake[1]);
	if (s->tab)
		for (uint32_t i = 0; i < s->tab_size; i++)
			for (struct kv *e = s->tab[i], *n; e; e = n) {
				n = e->next;
				free(e->val);
				free(e);
			}
	free(s->tab);
	free(s->conns);
	free(s->pfd);
	free(s);
}

gx_status_t gx_store_server_create(const char *addr, uint32_t idle_timeout_ms, struct gx_store_server **out)
{
	struct gx_store_server *s = calloc(1, sizeof(*s));
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int one = 1, err;
	gx_status_t st;

	*out = NULL;
	if (!s)
		return gx_error(GX_ERR_NOMEM, "store server: out of memory");
	s->lfd = s->wake[0] = s->wake[1] = -1;
	s->idle_timeout_ms = idle_timeout_ms;
	s->tab_size = 256;
	s->tab = calloc(s->tab_size, sizeof(*s->tab));
	s->pfd = calloc(2, sizeof(*s->pfd));
	if (!s->tab || !s->pfd) {
		st = gx_error(GX_ERR_NOMEM, "store server: out of memory");
		goto fail;
	}
	if ((st = resolve(addr, &sa)) < 0)
		goto fail;
	if (pipe2(s->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
		st = gx_error(GX_ERR_IO, "store server: pipe: %s", strerror(errno));
		goto fail;
	}
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0) {
		st = gx_error(GX_ERR_IO, "store server: socket: %s", strerror(errno));
		goto fail;
	}
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = errno;
		st = gx_error(GX_ERR_IO, "store server: cannot listen on %s (%s)%s", addr, strerror(err),
			 err == EADDRINUSE ? ": another job's store uses that port; pick another with "
			 "GX_STORE=host:port (or --store)" : err == EADDRNOTAVAIL ? ": that address is not "
			 "on this host; GX_STORE must name rank 0's host" : "");
		goto fail;
	}
	if (listen(s->lfd, 1024) < 0 || getsockname(s->lfd, (struct sockaddr *)&sa, &sl) < 0) {
		st = gx_error(GX_ERR_IO, "store server: listen on %s: %s", addr, strerror(errno));
		goto fail;
	}
	s->port = ntohs(sa.sin_port);
	atomic_store(&s->running, 1);
	if ((err = pthread_create(&s->thread, NULL, server_main, s)) != 0) {
		st = gx_error(GX_ERR_IO, "store server: pthread_create: %s", strerror(err));
		goto fail;
	}
	*out = s;
	return GX_OK;
fail:
	server_free(s);
	return st;
}

uint16_t gx_store_server_port(const struct gx_store_server *s)
{
	return s->port;
}

int gx_store_server_running(const struct gx_store_server *s)
{
	return atomic_load(&((struct gx_store_server *)s)->running);
}

uint32_t gx_store_server_clients(const struct gx_store_server *s)
{
	return atomic_load(&((struct gx_store_server *)s)->nclients);
}

void gx_store_server_destroy(struct gx_store_server *s, uint32_t linger_ms)
{
	if (!s)
		return;
	atomic_store(&s->stop_at_ns, gx_now_ns() + (uint64_t)linger_ms * 1000000ull);
	atomic_store(&s->stop, 1);
	if (write(s->wake[1], "x", 1) < 0) {
		/* the pipe is non-blocking and only full if a wake-up is already pending */
	}
	pthread_join(s->thread, NULL);
	server_free(s);
}
