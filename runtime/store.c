/* store.c: the rendezvous key-value store, client and server (see gx_store.h, docs/runtime.md).
 *
 * Wire format: every message is a frame: a 4-byte little-endian body length, then the body.
 * A connection starts with a handshake, then carries one request at a time.
 *   hello (server, first):  u16 magic, u8 'H', u8 flags (bit 0: a secret is required), u8 version,
 *                           3 x u8 0, 32-byte server nonce
 *   auth (client):          u16 magic, u8 OP_AUTH, u8 flags (bit 0: a proof follows), 4 x u8 0,
 *                           32-byte client nonce, 32-byte proof (zeros without a secret)
 *   auth reply:             u8 REP_OK, then the server's 32-byte proof when there is a secret
 *   request:                u16 magic, u8 op, u8 flags, u16 nkeys, u16 reserved, u32 timeout_ms,
 *                           nkeys x (u16 len, key bytes), u32 vlen, value bytes
 *   reply:                  u8 status, then op-specific bytes (GET: the value; ADD: i64 result;
 *                           WAIT timeout: u32 count + u32 indices of the missing keys)
 *   refusal (any time):     u8 REP_REFUSED, u8 reason, u64 limit, u64 asked
 *   notice (server only):   u8 REP_CLOSING, u8 reason, u32 detail: the server closes the connection
 *                           on its own (idle, half-sent frame, no handshake, shutting down)
 * Proofs are HMAC-SHA256 (libsodium) keyed with the secret, over a label saying who proves, the
 * server nonce and the client nonce; they are compared in constant time.  Nothing a client sends is
 * acted on before its proof holds.
 *
 * The server is one thread with poll(): the store is start-up only, never on the hot path.  Every
 * resource a client can make it hold is bounded (gx_store_server_opts) and every refusal is said to
 * the client and logged (at most LOG_BURST lines of a kind per LOG_WINDOW).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx_log.h"
#include "gx_signal.h"
#include "gx_store.h"
#include "gx_time.h"

#define GX_STORE_MAGIC 0x5853u          /* "SX" */
#define STORE_VERSION 2u                /* 2: handshake, refusals and notices */
#define STORE_FRAME_MAX (1u << 20)      /* larger frames are refused and the client dropped */
#define STORE_REPLY_SLACK_MS 5000u      /* how much longer than a wait a reply may take */
#define STORE_RECONNECT_MS 5000u        /* to reconnect after the server closed an idle connection */
#define STORE_SLICE_MS 100              /* client waits look for a recorded signal this often */
#define NONCE_LEN 32u
#define PROOF_LEN 32u
#define HELLO_LEN (8u + NONCE_LEN)
#define AUTH_LEN (8u + NONCE_LEN + PROOF_LEN)
#define REFUSAL_LEN 18u
#define NOTICE_LEN 6u
#define KV_OVERHEAD 64u                 /* bytes of bookkeeping counted per key (entry, table slot) */
#define BUF_FREE 1024u                  /* buffer bytes per connection not counted against max_buffered */
#define EVICT_MIN_MS 250u               /* a handshake this young is not dropped for a newer one */
#define ACCEPT_PAUSE_MS 100u            /* out of descriptors: try accepting again after this */
#define LOG_BURST 3u
#define LOG_WINDOW_NS 5000000000ull

static const char LABEL_CLIENT[] = "gx-store v2 client proof";
static const char LABEL_SERVER[] = "gx-store v2 server proof";

enum store_op { OP_SET = 1, OP_GET = 2, OP_WAIT = 3, OP_ADD = 4, OP_AUTH = 5 };
enum store_flag { FLAG_ABORT_KEY = 1 }; /* WAIT: keys[0] is an abort key */
enum store_reply {
	REP_OK = 0, REP_TIMEOUT = 1, REP_ABORTED = 2, REP_BAD = 3, REP_REFUSED = 4, REP_CLOSING = 5,
};
enum refusal {
	RF_SECRET_WRONG = 1,    /* the proof does not hold */
	RF_SECRET_MISSING = 2,  /* the store has a secret, the client none */
	RF_SECRET_UNEXPECTED = 3, /* the client has a secret, the store none */
	RF_CLIENTS = 4,         /* max_clients authenticated connections already */
	RF_KEY_LEN = 5,
	RF_VALUE_LEN = 6,
	RF_KEYS = 7,            /* max_keys held already */
	RF_BYTES = 8,           /* max_bytes would be exceeded */
	RF_BUFFERS = 9,         /* max_buffered would be exceeded */
	RF_FRAME = 10,          /* frame over STORE_FRAME_MAX */
};
enum closing {
	CL_IDLE = 1, CL_PARTIAL = 2, CL_HANDSHAKE = 3, CL_EVICTED = 4, CL_SHUTDOWN = 5,
};

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

/* ---- the secret ---------------------------------------------------------------------------- */
#define SECRET_MAX (GX_STORE_SECRET_MAX_HEX / 2)

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode a hex secret into key[SECRET_MAX]; *len 0 for "" (no secret).  The value is never
 * quoted in a message: it is a secret even when malformed. */
static gx_status_t secret_decode(const char *hex, const char *origin, uint8_t *key, size_t *len)
{
	size_t n = strlen(hex);

	*len = 0;
	if (n == 0)
		return GX_OK;
	for (size_t i = 0; i < n; i++)
		if (hexval(hex[i]) < 0)
			return gx_error(GX_ERR_INVAL, "%s: a store secret is hex digits only, and character "
					"%zu is not one: make one with `openssl rand -hex 32` (gx-run makes one "
					"per job)", origin, i + 1);
	if (n < GX_STORE_SECRET_MIN_HEX || n > GX_STORE_SECRET_MAX_HEX || n % 2)
		return gx_error(GX_ERR_INVAL, "%s: a store secret is an even number of %u to %u hex "
				"digits, not %zu: make one with `openssl rand -hex 32` (gx-run makes one per "
				"job)", origin, GX_STORE_SECRET_MIN_HEX, GX_STORE_SECRET_MAX_HEX, n);
	for (size_t i = 0; i < n / 2; i++)
		key[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
	*len = n / 2;
	return GX_OK;
}

gx_status_t gx_store_secret_check(const char *hex, const char *origin)
{
	uint8_t key[SECRET_MAX];
	size_t len;
	gx_status_t st = secret_decode(hex ? hex : "", origin, key, &len);

	sodium_memzero(key, sizeof(key));
	return st;
}

/* The caller's secret, or GX_STORE_SECRET's when secret is NULL. */
static gx_status_t secret_resolve(const char *secret, uint8_t *key, size_t *len)
{
	if (!secret) {
		const char *env = getenv("GX_STORE_SECRET");
		return secret_decode(env ? env : "", "GX_STORE_SECRET", key, len);
	}
	return secret_decode(secret, "the store secret", key, len);
}

static gx_status_t crypto_ready(void)
{
	if (sodium_init() < 0)
		return gx_error(GX_ERR_IO, "the store cannot start libsodium (its random source?)");
	return GX_OK;
}

/* HMAC-SHA256(key, label | server nonce | client nonce). */
static void proof(const uint8_t *key, size_t keylen, const char *label, const uint8_t *server_nonce,
		  const uint8_t *client_nonce, uint8_t out[PROOF_LEN])
{
	crypto_auth_hmacsha256_state h;

	crypto_auth_hmacsha256_init(&h, key, keylen);
	crypto_auth_hmacsha256_update(&h, (const uint8_t *)label, strlen(label));
	crypto_auth_hmacsha256_update(&h, server_nonce, NONCE_LEN);
	crypto_auth_hmacsha256_update(&h, client_nonce, NONCE_LEN);
	crypto_auth_hmacsha256_final(&h, out);
	sodium_memzero(&h, sizeof(h));
}

/* ================================ client ==================================================== */
struct gx_store {
	int fd;
	char addr[280];
	struct sockaddr_in sa;
	uint8_t key[SECRET_MAX];
	size_t keylen;         /* 0: no secret */
	uint8_t *req, *rep;    /* the request being sent; the last frame received */
	size_t req_cap, rep_cap;
	uint8_t closed_why;    /* the reason of the last closing notice read (CL_*), 0: none */
};

const char *gx_store_addr(const struct gx_store *s)
{
	return s->addr;
}

static void drop(struct gx_store *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Wait until fd is ready for ev: 1, or 0 once the deadline passed, or GX_ERR_INTERRUPTED once a
 * signal was recorded (looked at every STORE_SLICE_MS). */
static int wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		if (gx_interrupted())
			return gx_interrupt_status();
		int ms = remaining_ms(deadline);
		if (ms == 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = ev };
		int rc = poll(&p, 1, ms < STORE_SLICE_MS ? ms : STORE_SLICE_MS);
		if (rc > 0 || (rc < 0 && errno != EINTR))
			return 1;          /* ready, or an error the next send/recv reports */
	}
}

static void sleep_interruptible(uint64_t ms)
{
	uint64_t until = gx_now_ns() + ms * 1000000ull;

	while (!gx_interrupted()) {
		int left = remaining_ms(until);
		if (left == 0)
			return;
		struct timespec d = { 0, (long)(left < STORE_SLICE_MS ? left : STORE_SLICE_MS) * 1000000l };
		nanosleep(&d, NULL);
	}
}

/* A connected socket, or -1 with *err set. */
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
		uint64_t limit = gx_now_ns() + 1000000000ull;   /* a lost SYN: start over within 1 s */
		int rc = wait_fd(fd, POLLOUT, limit < deadline ? limit : deadline);
		socklen_t len = sizeof(*err);
		if (rc <= 0) {
			*err = rc == 0 ? ETIMEDOUT : EINTR;
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

static gx_status_t grow(uint8_t **buf, size_t *cap, size_t n)
{
	if (n <= *cap)
		return GX_OK;
	uint8_t *b = realloc(*buf, n);
	if (!b)
		return gx_error(GX_ERR_NOMEM, "store client: out of memory");
	*buf = b;
	*cap = n;
	return GX_OK;
}

/* Send or receive exactly n bytes.  On an error the connection is left open: the caller may still
 * read the server's explanation (a refusal or notice sent before it closed), then drops it. */
static gx_status_t io_all(struct gx_store *s, uint8_t *p, size_t n, int writing, uint64_t deadline,
			  const char *what)
{
	while (n) {
		ssize_t r = writing ? send(s->fd, p, n, MSG_NOSIGNAL) : recv(s->fd, p, n, 0);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			continue;
		}
		if (r == 0)
			return gx_error(GX_ERR_IO, "the store at %s closed the connection while %s: did the "
					"store's process (rank 0 or gx-store) exit?", s->addr, what);
		if (errno == EINTR && !gx_interrupted())
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return gx_error(GX_ERR_IO, "lost the connection to the store at %s while %s (%s): "
					"did the store's process (rank 0 or gx-store) exit?", s->addr, what,
					strerror(errno));
		int rc = wait_fd(s->fd, writing ? POLLOUT : POLLIN, deadline);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return gx_error(GX_ERR_TIMEOUT, "the store at %s stopped answering (no reply in "
					"time while %s): is its process stuck?", s->addr, what);
	}
	return GX_OK;
}

/* Read one frame into s->rep; *len its body length. */
static gx_status_t read_frame(struct gx_store *s, uint64_t deadline, size_t *len, const char *what)
{
	uint8_t hdr[4];
	gx_status_t st;

	if ((st = io_all(s, hdr, 4, 0, deadline, what)) < 0)
		return st;
	uint32_t n = get32(hdr);
	if (n == 0 || n > STORE_FRAME_MAX) {
		drop(s);
		return gx_error(GX_ERR_CORRUPT, "the store at %s sent a malformed frame (%u bytes) while "
				"%s: is that port really a gx store?", s->addr, n, what);
	}
	if ((st = grow(&s->rep, &s->rep_cap, n)) < 0)
		return st;
	if ((st = io_all(s, s->rep, n, 0, deadline, what)) < 0)
		return st;
	*len = n;
	return GX_OK;
}

/* The error a refusal stands for (the client side of every limit). */
static gx_status_t refusal_error(const struct gx_store *s, unsigned reason, uint64_t limit, uint64_t asked)
{
	unsigned long long l = (unsigned long long)limit, a = (unsigned long long)asked;

	switch (reason) {
	case RF_SECRET_WRONG:
		return gx_error(GX_ERR_INVAL, "the store at %s refused our secret: is GX_STORE_SECRET the "
				"same on every rank (and for gx-store)?", s->addr);
	case RF_SECRET_MISSING:
		return gx_error(GX_ERR_INVAL, "the store at %s requires a secret and this process has none: "
				"export the job's GX_STORE_SECRET to every rank (gx-run does)", s->addr);
	case RF_SECRET_UNEXPECTED:
		return gx_error(GX_ERR_INVAL, "the store at %s runs without a secret but this process has "
				"GX_STORE_SECRET: is GX_STORE_SECRET the same on every rank (and for "
				"gx-store)?", s->addr);
	case RF_CLIENTS:
		return gx_error(GX_ERR_AGAIN, "the store at %s already serves its limit of %llu clients: "
				"is another program holding connections to it? (GX_STORE_SECRET keeps "
				"others out)", s->addr, l);
	case RF_KEY_LEN:
		return gx_error(GX_ERR_INVAL, "the store at %s refuses keys over %llu bytes (this one has "
				"%llu)", s->addr, l, a);
	case RF_VALUE_LEN:
		return gx_error(GX_ERR_INVAL, "the store at %s refuses values over %llu bytes (this one has "
				"%llu)", s->addr, l, a);
	case RF_KEYS:
		return gx_error(GX_ERR_NOSPC, "the store at %s is full: it holds its limit of %llu keys "
				"(is another job or program filling it? gx-store --max-keys raises it)",
				s->addr, l);
	case RF_BYTES:
		return gx_error(GX_ERR_NOSPC, "the store at %s is full: %llu more bytes would exceed its "
				"limit of %llu bytes held (is another job or program filling it? gx-store "
				"--max-bytes raises it)", s->addr, a, l);
	case RF_BUFFERS:
		return gx_error(GX_ERR_AGAIN, "the store at %s has no buffer room for our %llu-byte "
				"message: its %llu bytes for all connections are taken (flooded by other "
				"clients?)", s->addr, a, l);
	case RF_FRAME:
		return gx_error(GX_ERR_INVAL, "the store at %s refuses messages over %llu bytes (ours has "
				"%llu)", s->addr, l, a);
	}
	return gx_error(GX_ERR_CORRUPT, "the store at %s refused a request for a reason this gx does not "
			"know (%u): run the same gx version everywhere", s->addr, reason);
}

static gx_status_t closing_error(const struct gx_store *s, unsigned reason, uint32_t detail)
{
	switch (reason) {
	case CL_IDLE:
		return gx_error(GX_ERR_IO, "the store at %s closed our connection after %u ms without a "
				"request", s->addr, detail);
	case CL_PARTIAL:
		return gx_error(GX_ERR_IO, "the store at %s closed our connection: a request of ours did "
				"not arrive whole within %u ms (a very slow network?)", s->addr, detail);
	case CL_HANDSHAKE:
		return gx_error(GX_ERR_AGAIN, "the store at %s closed our connection before we had "
				"authenticated (its limit is %u ms)", s->addr, detail);
	case CL_EVICTED:
		return gx_error(GX_ERR_AGAIN, "the store at %s dropped our connection before we had "
				"authenticated, to make room for newer ones: it is flooded with connections "
				"that never authenticate (%u waiting); is another program connecting to it?",
				s->addr, detail);
	case CL_SHUTDOWN:
		return gx_error(GX_ERR_CLOSED, "the store at %s is shutting down (rank 0 finished or "
				"failed, or gx-store was stopped)", s->addr);
	}
	return gx_error(GX_ERR_CORRUPT, "the store at %s closed our connection for a reason this gx does "
			"not know (%u): run the same gx version everywhere", s->addr, reason);
}

/* If the frame in s->rep is a refusal or a closing notice: its error (the connection is dropped
 * when the server closes it).  GX_OK for any other reply. */
static gx_status_t server_said(struct gx_store *s, size_t len)
{
	if (len == REFUSAL_LEN && s->rep[0] == REP_REFUSED) {
		unsigned reason = s->rep[1];
		/* after these the server closes the connection */
		if (reason <= RF_CLIENTS || reason == RF_BUFFERS || reason == RF_FRAME)
			drop(s);
		return refusal_error(s, reason, get64(s->rep + 2), get64(s->rep + 10));
	}
	if (len == NOTICE_LEN && s->rep[0] == REP_CLOSING) {
		drop(s);
		s->closed_why = s->rep[1];
		return closing_error(s, s->rep[1], get32(s->rep + 2));
	}
	return GX_OK;
}

/* After an I/O error: the server's explanation, if it sent one before closing, else `st` as is. */
static gx_status_t explain(struct gx_store *s, gx_status_t st)
{
	char prev[512];
	size_t len;

	if (s->fd < 0 || st == GX_ERR_INTERRUPTED || st == GX_ERR_TIMEOUT) {
		drop(s);
		return st;
	}
	snprintf(prev, sizeof(prev), "%s", gx_last_error());
	if (read_frame(s, gx_now_ns() + 200000000ull, &len, "reading why") == GX_OK) {
		gx_status_t why = server_said(s, len);
		if (why < 0) {
			drop(s);
			return why;
		}
	}
	drop(s);
	return gx_error(st, "%s", prev);
}

/* The handshake on a fresh connection.  *retry = 1 when another connection may do better (the
 * server dropped ours for room, is full, or closed it): the message is recorded either way. */
static gx_status_t handshake(struct gx_store *s, uint64_t deadline, int *retry)
{
	uint8_t auth[4 + AUTH_LEN], server_nonce[NONCE_LEN], client_nonce[NONCE_LEN], want[PROOF_LEN];
	size_t len;
	gx_status_t st;

	*retry = 0;
	st = read_frame(s, deadline, &len, "waiting for its greeting");
	if (st == GX_ERR_TIMEOUT)
		return gx_error(GX_ERR_TIMEOUT, "the store at %s accepted our connection but did not greet "
				"us in time: it is flooded with connections or stuck, or it is not a gx store "
				"of this version", s->addr);
	if (st == GX_ERR_IO)
		*retry = 1;
	if (st < 0)
		return st;
	if ((st = server_said(s, len)) < 0) {
		*retry = st == GX_ERR_AGAIN;
		return st;
	}
	if (len != HELLO_LEN || get16(s->rep) != GX_STORE_MAGIC || s->rep[2] != 'H')
		return gx_error(GX_ERR_CORRUPT, "the store at %s did not greet us like a gx store: is that "
				"port another program, or a gx-store of an older version?", s->addr);
	if (s->rep[4] != STORE_VERSION)
		return gx_error(GX_ERR_CORRUPT, "the store at %s speaks store protocol %u, this gx %u: run "
				"the same gx version everywhere", s->addr, s->rep[4], STORE_VERSION);
	memcpy(server_nonce, s->rep + 8, NONCE_LEN);
	randombytes_buf(client_nonce, NONCE_LEN);
	memset(auth, 0, sizeof(auth));
	put32(auth, AUTH_LEN);
	put16(auth + 4, GX_STORE_MAGIC);
	auth[6] = OP_AUTH;
	auth[7] = s->keylen ? 1 : 0;
	memcpy(auth + 12, client_nonce, NONCE_LEN);
	if (s->keylen)
		proof(s->key, s->keylen, LABEL_CLIENT, server_nonce, client_nonce, auth + 12 + NONCE_LEN);
	if ((st = io_all(s, auth, sizeof(auth), 1, deadline, "authenticating")) < 0 ||
	    (st = read_frame(s, deadline, &len, "authenticating")) < 0) {
		*retry = st == GX_ERR_IO;
		return explain(s, st);
	}
	if ((st = server_said(s, len)) < 0) {
		*retry = st == GX_ERR_AGAIN;
		return st;
	}
	if (s->rep[0] != REP_OK || len != 1 + (s->keylen ? PROOF_LEN : 0))
		return gx_error(GX_ERR_CORRUPT, "the store at %s answered our handshake with something "
				"malformed: is that port another program?", s->addr);
	if (s->keylen) {
		proof(s->key, s->keylen, LABEL_SERVER, server_nonce, client_nonce, want);
		if (crypto_verify_32(want, s->rep + 1) != 0)
			return gx_error(GX_ERR_INVAL, "the store at %s could not prove it knows our secret: "
					"is another program listening on that port, or does the store have "
					"another GX_STORE_SECRET?", s->addr);
	}
	return GX_OK;
}

/* Connect and authenticate, retrying while the store cannot be reached or is busy. */
static gx_status_t connect_until(struct gx_store *s, uint64_t deadline, uint32_t budget_ms)
{
	uint64_t backoff_ms = 10;
	char why[512] = "";
	int err = 0, retry;
	gx_status_t st;

	for (;;) {
		if (gx_interrupted())
			return gx_interrupt_status();
		int fd = try_connect(&s->sa, deadline, &err);
		if (fd >= 0) {
			s->fd = fd;
			if ((st = handshake(s, deadline, &retry)) == GX_OK)
				return GX_OK;
			drop(s);
			if (!retry || gx_interrupted())
				return st;
			snprintf(why, sizeof(why), "%s", gx_last_error());
		}
		int left = remaining_ms(deadline);
		if (left == 0) {
			if (why[0])
				return gx_error(GX_ERR_TIMEOUT, "could not get into the rendezvous store within "
						"%u ms: %s", budget_ms, why);
			return gx_error(GX_ERR_TIMEOUT,
					"cannot reach the rendezvous store at %s within %u ms (%s): start rank 0 "
					"(it serves the store) or gx-store --port <port>, or point GX_STORE at it",
					s->addr, budget_ms, strerror(err));
		}
		sleep_interruptible(backoff_ms < (uint64_t)left ? backoff_ms : (uint64_t)left);
		backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
	}
}

void gx_store_destroy(struct gx_store *s)
{
	if (!s)
		return;
	drop(s);
	sodium_memzero(s->key, sizeof(s->key));
	free(s->req);
	free(s->rep);
	free(s);
}

gx_status_t gx_store_connect(const char *addr, const char *secret, uint32_t timeout_ms,
			     struct gx_store **out)
{
	uint64_t deadline = gx_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct gx_store *s;
	gx_status_t st;

	*out = NULL;
	if ((st = crypto_ready()) < 0)
		return st;
	if (!(s = calloc(1, sizeof(*s))))
		return gx_error(GX_ERR_NOMEM, "store client: out of memory");
	s->fd = -1;
	snprintf(s->addr, sizeof(s->addr), "%s", addr ? addr : "(null)");
	if ((st = secret_resolve(secret, s->key, &s->keylen)) < 0 || (st = resolve(addr, &s->sa)) < 0 ||
	    (st = connect_until(s, deadline, timeout_ms)) < 0) {
		gx_store_destroy(s);
		return st;
	}
	*out = s;
	return GX_OK;
}

gx_status_t gx_store_create(const char *addr, uint32_t timeout_ms, struct gx_store **out)
{
	return gx_store_connect(addr, NULL, timeout_ms, out);
}

/* The server speaks first only when it closes the connection (idle, shutting down).  After an idle
 * close, connect again: nothing we sent was lost, since nothing was in flight. */
static gx_status_t reconnect_if_closed(struct gx_store *s)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	size_t len;
	gx_status_t st;

	if (poll(&p, 1, 0) <= 0)
		return GX_OK;
	if ((st = read_frame(s, gx_now_ns() + 1000000000ull, &len, "idle")) < 0) {
		drop(s);
		return st;
	}
	if (len == NOTICE_LEN && s->rep[0] == REP_CLOSING && s->rep[1] == CL_IDLE) {
		drop(s);
		return connect_until(s, gx_now_ns() + STORE_RECONNECT_MS * 1000000ull, STORE_RECONNECT_MS);
	}
	if ((st = server_said(s, len)) < 0)
		return st;
	drop(s);
	return gx_error(GX_ERR_CORRUPT, "the store at %s sent a reply nobody asked for: is another "
			"program on that port?", s->addr);
}

/* Build a request in s->req (frame length prefix included); returns its size or 0 on error. */
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
	if (grow(&s->req, &s->req_cap, n) < 0)
		return 0;
	uint8_t *p = s->req;
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

/* Send the request in s->req and read the reply into s->rep; *rlen = body length.  A refusal or a
 * notice becomes its error. */
static gx_status_t roundtrip(struct gx_store *s, size_t n, uint32_t wait_ms, size_t *rlen)
{
	gx_status_t st;

	if (gx_interrupted())
		return gx_interrupt_status();
	for (int attempt = 0;; attempt++) {
		if (s->fd < 0)
			return gx_error(GX_ERR_CLOSED, "the connection to the store at %s was lost earlier",
					s->addr);
		if ((st = reconnect_if_closed(s)) < 0)
			return st;
		uint64_t deadline = gx_now_ns() + ((uint64_t)wait_ms + STORE_REPLY_SLACK_MS) * 1000000ull;
		s->closed_why = 0;
		if ((st = io_all(s, s->req, n, 1, deadline, "sending a request")) < 0 ||
		    (st = read_frame(s, deadline, rlen, "waiting for a reply")) < 0) {
			st = explain(s, st);
			if (attempt > 0 || s->closed_why != CL_IDLE)
				return st;
		}
		/* closed as idle just as we sent: none of the request was read (the store closes only
		 * connections with nothing under way); send it again on a new connection */
		if (attempt == 0 && (s->closed_why == CL_IDLE || (*rlen == NOTICE_LEN &&
		    s->rep[0] == REP_CLOSING && s->rep[1] == CL_IDLE))) {
			drop(s);
			if ((st = connect_until(s, gx_now_ns() + STORE_RECONNECT_MS * 1000000ull,
						STORE_RECONNECT_MS)) < 0)
				return st;
			continue;
		}
		break;
	}
	if ((st = server_said(s, *rlen)) < 0)
		return st;
	if (s->rep[0] == REP_BAD) {
		drop(s);
		return gx_error(GX_ERR_INVAL, "the store at %s rejected a request as malformed", s->addr);
	}
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
	if (s->rep[0] != REP_OK)
		return gx_error(GX_ERR_CORRUPT, "the store at %s answered a set with status %u", s->addr,
				s->rep[0]);
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
	if (s->rep[0] == REP_TIMEOUT)
		return gx_error(GX_ERR_TIMEOUT, "key '%s' did not appear in the store at %s within %u ms",
				key, s->addr, timeout_ms);
	if (s->rep[0] != REP_OK)
		return gx_error(GX_ERR_CORRUPT, "the store at %s answered a get with status %u", s->addr,
				s->rep[0]);
	*len = rlen - 1;
	if (*len > cap)
		return gx_error(GX_ERR_NOSPC, "value of '%s' is %zu bytes, buffer holds %zu", key, *len, cap);
	memcpy(val, s->rep + 1, *len);
	return GX_OK;
}

gx_status_t gx_store_wait(struct gx_store *s, const char *const *keys, uint32_t n,
			  const char *abort_key, uint32_t timeout_ms, uint32_t *missing,
			  uint32_t *nmissing)
{
	const char **all = NULL;
	const char *const *list = keys;
	size_t len, rlen;
	gx_status_t st;

	if (nmissing)
		*nmissing = 0;
	if (abort_key) {
		if (!(all = malloc(((size_t)n + 1) * sizeof(*all))))
			return gx_error(GX_ERR_NOMEM, "store client: out of memory");
		all[0] = abort_key;
		memcpy(all + 1, keys, (size_t)n * sizeof(*all));
		list = all;
	}
	len = build(s, OP_WAIT, abort_key ? FLAG_ABORT_KEY : 0, list, n + (abort_key ? 1 : 0),
		    timeout_ms, NULL, 0);
	free(all);
	if (!len)
		return GX_ERR_INVAL;
	if ((st = roundtrip(s, len, timeout_ms, &rlen)) < 0)
		return st;
	switch (s->rep[0]) {
	case REP_OK:
		return GX_OK;
	case REP_ABORTED:
		/* the value is whatever a client wrote: the caller reads and checks it */
		return gx_error(GX_ERR_CLOSED, "the abort key '%s' was set in the store at %s", abort_key,
				s->addr);
	case REP_TIMEOUT: {
		uint32_t cnt = rlen >= 5 ? get32(s->rep + 1) : 0;
		if (rlen < 5 || cnt > n || rlen < 5 + 4ull * cnt)
			return gx_error(GX_ERR_CORRUPT, "the store at %s sent a malformed wait reply", s->addr);
		if (nmissing)
			*nmissing = cnt;
		if (missing)
			for (uint32_t i = 0; i < cnt; i++)
				missing[i] = get32(s->rep + 5 + 4 * i);
		return gx_error(GX_ERR_TIMEOUT, "%u of %u keys did not appear in the store at %s within "
				"%u ms", cnt, n, s->addr, timeout_ms);
	}
	}
	return gx_error(GX_ERR_CORRUPT, "the store at %s sent an unknown reply status %u", s->addr,
			s->rep[0]);
}

gx_status_t gx_store_add(struct gx_store *s, const char *key, int64_t delta, int64_t *result)
{
	uint8_t d[8];
	put64(d, (uint64_t)delta);
	size_t n = build(s, OP_ADD, 0, &key, 1, 0, d, 8), rlen;
	gx_status_t st;

	if (!n)
		return GX_ERR_INVAL;
	if ((st = roundtrip(s, n, 0, &rlen)) < 0)
		return st;
	if (s->rep[0] != REP_OK || rlen < 9)
		return gx_error(GX_ERR_CORRUPT, "the store at %s sent a short reply to add", s->addr);
	if (result)
		*result = (int64_t)get64(s->rep + 1);
	return GX_OK;
}

/* ================================ server ==================================================== */
struct kv {
	struct kv *next;
	uint32_t hash, klen, vlen;
	uint8_t *val;
	char key[];
};

enum conn_state { CS_HANDSHAKE, CS_READY, CS_CLOSED };

struct conn {
	int fd;
	uint8_t state;
	uint8_t parked;        /* the request at the head of `in` waits for keys */
	struct sockaddr_in peer;
	uint8_t *in, *out;     /* in: the one frame being received (or parked); out: replies */
	size_t in_len, in_cap, out_len, out_off, out_cap;
	uint64_t since_ns;     /* handshake: accepted at; ready: last request answered */
	uint64_t frame_ns;     /* first byte of the frame being received; 0: none under way */
	uint64_t deadline_ns;  /* parked: when the wait ends */
	uint32_t wait_idx;     /* parked WAIT: keys before this one exist (keys are never removed) */
	size_t wait_off;       /* its offset in the body */
	uint8_t nonce[NONCE_LEN];
};

enum log_kind { LK_SECRET, LK_HANDSHAKE, LK_EVICT, LK_CLIENTS, LK_IDLE, LK_PARTIAL, LK_LIMIT, LK_BAD,
		LK_FD, LK_COUNT };

struct ratelog {
	uint64_t window_ns;
	uint32_t lines;
	uint64_t suppressed;
};

struct gx_store_server {
	int lfd, wake[2];
	uint16_t port;
	char addr[280];
	struct gx_store_server_opts o;
	uint8_t key[SECRET_MAX];
	size_t keylen;
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
	pthread_t thread;
	_Atomic int stop, running;
	_Atomic uint32_t nclients;
	_Atomic uint64_t stop_at_ns;
	struct kv **tab;
	uint32_t tab_size;
	struct conn *conns;
	uint32_t nconns, conns_cap, nready, npending;
	struct pollfd *pfd;
	uint64_t accept_at_ns;    /* accepting paused until then (handshakes full, no descriptors) */
	uint64_t buf_charged;     /* buffer bytes counted against max_buffered */
	struct gx_store_server_stats st;   /* the server thread's */
	pthread_mutex_t lock;
	struct gx_store_server_stats pub;  /* its last snapshot, under lock */
	struct ratelog logs[LK_COUNT];
};

static void slog(struct gx_store_server *s, enum log_kind k, enum gx_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void slog(struct gx_store_server *s, enum log_kind k, enum gx_log_level level, const char *fmt, ...)
{
	struct ratelog *r = &s->logs[k];
	uint64_t now = gx_now_ns();
	char msg[512];
	va_list ap;

	if (now - r->window_ns >= LOG_WINDOW_NS) {
		r->window_ns = now;
		r->lines = 0;
	}
	if (r->lines >= LOG_BURST) {
		r->suppressed++;
		return;
	}
	r->lines++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->suppressed)
		gx_log(level, "store", "%s: %s (and %llu more like it not shown)", s->addr, msg,
		       (unsigned long long)r->suppressed);
	else
		gx_log(level, "store", "%s: %s", s->addr, msg);
	r->suppressed = 0;
}

static const char *peer_str(const struct conn *c, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN] = "?";
	inet_ntop(AF_INET, &c->peer.sin_addr, ip, sizeof(ip));
	snprintf(buf, len, "%s:%u", ip, ntohs(c->peer.sin_port));
	return buf;
}

/* ---- buffers, counted against max_buffered ---- */
static uint64_t charged(size_t cap)
{
	return cap > BUF_FREE ? cap - BUF_FREE : 0;
}

/* Resize *buf to cap bytes.  0, -1 if max_buffered would be exceeded, -2 out of memory. */
static int buf_resize(struct gx_store_server *s, uint8_t **buf, size_t *cap, size_t ncap)
{
	uint64_t before = charged(*cap), after = charged(ncap);

	if (after > before && s->buf_charged + (after - before) > s->o.max_buffered)
		return -1;
	if (ncap == 0) {
		free(*buf);
		*buf = NULL;
	} else {
		uint8_t *b = realloc(*buf, ncap);
		if (!b)
			return -2;
		*buf = b;
	}
	s->buf_charged = s->buf_charged - before + after;
	s->st.buffered = s->st.buffered - *cap + ncap;
	*cap = ncap;
	return 0;
}

/* ---- keys ---- */
static uint32_t key_hash(const struct gx_store_server *s, const uint8_t *k, size_t n)
{
	uint8_t h[crypto_shorthash_BYTES];     /* keyed: a client cannot choose keys that collide */
	crypto_shorthash(h, k, n, s->hash_key);
	return get32(h);
}

static struct kv *kv_find(struct gx_store_server *s, const uint8_t *k, uint32_t kl)
{
	uint32_t h = key_hash(s, k, kl);
	for (struct kv *e = s->tab[h & (s->tab_size - 1)]; e; e = e->next)
		if (e->hash == h && e->klen == kl && !memcmp(e->key, k, kl))
			return e;
	return NULL;
}

/* Store key = value within the limits.  0 stored; a refusal reason (*limit, *asked set); -1 out of
 * memory. */
static int kv_put(struct gx_store_server *s, const uint8_t *k, uint32_t kl, const uint8_t *v, uint32_t vl,
		  uint64_t *limit, uint64_t *asked)
{
	struct kv *e = kv_find(s, k, kl);
	uint64_t old = e ? KV_OVERHEAD + kl + e->vlen : 0, need = KV_OVERHEAD + kl + vl;

	if (!e && s->st.keys >= s->o.max_keys) {
		*limit = s->o.max_keys;
		*asked = s->st.keys + 1;
		return RF_KEYS;
	}
	if (need > old && s->st.bytes_held + (need - old) > s->o.max_bytes) {
		*limit = s->o.max_bytes;
		*asked = need - old;
		return RF_BYTES;
	}
	uint8_t *nv = malloc(vl ? vl : 1);
	if (!nv)
		return -1;
	memcpy(nv, v, vl);
	if (e) {
		free(e->val);
		e->val = nv;
		e->vlen = vl;
		s->st.bytes_held = s->st.bytes_held - old + need;
		return 0;
	}
	if (s->st.keys >= s->tab_size) {                 /* grow: keep chains short */
		uint32_t ns = s->tab_size * 2;
		struct kv **nt = calloc(ns, sizeof(*nt));
		if (!nt) {
			free(nv);
			return -1;
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
	if (!(e = malloc(sizeof(*e) + kl + 1))) {
		free(nv);
		return -1;
	}
	e->hash = key_hash(s, k, kl);
	e->klen = kl;
	memcpy(e->key, k, kl);
	e->key[kl] = '\0';
	e->val = nv;
	e->vlen = vl;
	e->next = s->tab[e->hash & (s->tab_size - 1)];
	s->tab[e->hash & (s->tab_size - 1)] = e;
	s->st.keys++;
	s->st.bytes_held += need;
	return 0;
}

/* ---- requests ---- */
/* A parsed request; keys point into the body. */
struct req {
	uint8_t op, flags;
	uint16_t nkeys;
	uint32_t timeout_ms;
	const uint8_t *body;
	const uint8_t *keys;   /* first (u16 len, bytes) */
	uint32_t key_max;      /* longest key */
	const uint8_t *val;
	uint32_t vlen;
};

/* The frame's structure only (limits are checked apart, so they can be answered). */
static int parse_req(const uint8_t *b, size_t n, struct req *r)
{
	if (n < 16 || get16(b) != GX_STORE_MAGIC)
		return -1;
	r->body = b;
	r->op = b[2];
	r->flags = b[3];
	r->nkeys = get16(b + 4);
	r->timeout_ms = get32(b + 8);
	r->keys = b + 12;
	r->key_max = 0;
	size_t off = 12;
	for (uint32_t i = 0; i < r->nkeys; i++) {
		if (off + 2 > n)
			return -1;
		uint16_t kl = get16(b + off);
		if (kl == 0 || off + 2 + kl > n)
			return -1;
		if (kl > r->key_max)
			r->key_max = kl;
		off += 2 + (size_t)kl;
	}
	if (off + 4 > n)
		return -1;
	r->vlen = get32(b + off);
	if (r->vlen > n || off + 4 + r->vlen != n)
		return -1;
	r->val = b + off + 4;
	switch (r->op) {
	case OP_SET:
	case OP_GET:
		return r->nkeys == 1 ? 0 : -1;
	case OP_ADD:
		return r->nkeys == 1 && r->vlen == 8 ? 0 : -1;
	case OP_WAIT:
		return (r->flags & FLAG_ABORT_KEY) && r->nkeys == 0 ? -1 : 0;
	}
	return -1;
}

static void conn_close(struct gx_store_server *s, struct conn *c);

/* Queue a reply: status byte + a + b.  A reply the buffer limit has no room for becomes a
 * refusal saying so. */
static int reply(struct gx_store_server *s, struct conn *c, uint8_t status, const void *a, size_t alen,
		 const void *b, size_t blen);

static int queue_raw(struct gx_store_server *s, struct conn *c, const uint8_t *body, size_t n)
{
	size_t want = c->out_len + 4 + n;
	if (want > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 64;
		while (cap < want)
			cap *= 2;
		int rc = buf_resize(s, &c->out, &c->out_cap, cap);
		if (rc < 0)
			return rc;
	}
	put32(c->out + c->out_len, (uint32_t)n);
	memcpy(c->out + c->out_len + 4, body, n);
	c->out_len += 4 + n;
	return 0;
}

static int refuse(struct gx_store_server *s, struct conn *c, uint8_t reason, uint64_t limit, uint64_t asked)
{
	uint8_t b[REFUSAL_LEN];

	b[0] = REP_REFUSED;
	b[1] = reason;
	put64(b + 2, limit);
	put64(b + 10, asked);
	return queue_raw(s, c, b, sizeof(b)) == -2 ? -1 : 0;
}

static int reply(struct gx_store_server *s, struct conn *c, uint8_t status, const void *a, size_t alen,
		 const void *b, size_t blen)
{
	size_t n = 1 + alen + blen;
	uint8_t small[64], *body = n <= sizeof(small) ? small : malloc(n);

	if (!body)
		return -1;
	body[0] = status;
	if (alen)
		memcpy(body + 1, a, alen);
	if (blen)
		memcpy(body + 1 + alen, b, blen);
	int rc = queue_raw(s, c, body, n);
	if (body != small)
		free(body);
	if (rc == -1) {
		char who[48];
		s->st.refused_limits++;
		slog(s, LK_LIMIT, GX_LOG_WARN, "no buffer room for a %zu-byte reply to %s (limit %llu bytes "
		     "for all connections)", n, peer_str(c, who, sizeof(who)),
		     (unsigned long long)s->o.max_buffered);
		return refuse(s, c, RF_BUFFERS, s->o.max_buffered, n);
	}
	return rc < 0 ? -1 : 0;
}

/* Send the connection's last words (best effort: a full socket loses them), read and discard what
 * it already sent so that closing does not reset the connection before they arrive, and close. */
static void conn_notice_close(struct gx_store_server *s, struct conn *c, uint8_t reason, uint32_t detail)
{
	uint8_t b[4 + NOTICE_LEN], junk[4096];

	if (c->fd < 0)
		return;
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		c->out_off += (size_t)w;
	}
	if (reason) {
		put32(b, NOTICE_LEN);
		b[4] = REP_CLOSING;
		b[5] = reason;
		put32(b + 6, detail);
		if (send(c->fd, b, sizeof(b), MSG_NOSIGNAL) < 0) {
			/* the client is gone already: nothing to tell */
		}
	}
	for (int i = 0; i < 64 && recv(c->fd, junk, sizeof(junk), 0) > 0; i++)
		;
	shutdown(c->fd, SHUT_WR);
	conn_close(s, c);
}

/* Try to answer a GET/WAIT.  final: answer with a timeout if keys are still missing.
 * Returns 1 if answered, 0 if it must stay parked, -1 on an allocation failure. */
static int answer_wait(struct gx_store_server *s, struct conn *c, const struct req *r, int final)
{
	const uint8_t *k = r->keys;

	if (r->op == OP_GET) {
		struct kv *e = kv_find(s, k + 2, get16(k));
		if (e)
			return reply(s, c, REP_OK, e->val, e->vlen, NULL, 0) < 0 ? -1 : 1;
		return final ? (reply(s, c, REP_TIMEOUT, NULL, 0, NULL, 0) < 0 ? -1 : 1) : 0;
	}
	uint32_t first = (r->flags & FLAG_ABORT_KEY) ? 1 : 0;
	if (first && kv_find(s, k + 2, get16(k)))
		return reply(s, c, REP_ABORTED, NULL, 0, NULL, 0) < 0 ? -1 : 1;
	/* keys before wait_idx were found earlier: each set costs a parked wait O(1), not O(keys) */
	uint32_t i = c->wait_idx;
	const uint8_t *p = r->body + c->wait_off;
	while (i < r->nkeys && kv_find(s, p + 2, get16(p))) {
		p += 2 + get16(p);
		i++;
	}
	c->wait_idx = i;
	c->wait_off = (size_t)(p - r->body);
	if (i == r->nkeys)
		return reply(s, c, REP_OK, NULL, 0, NULL, 0) < 0 ? -1 : 1;
	if (!final)
		return 0;
	uint32_t nmiss = 0;
	for (const uint8_t *q = p; i < r->nkeys; i++, q += 2 + get16(q))
		nmiss += !kv_find(s, q + 2, get16(q));
	uint8_t *list = malloc(4 + 4ull * nmiss);
	if (!list)
		return -1;
	put32(list, nmiss);
	uint32_t j = 0;
	for (i = c->wait_idx; i < r->nkeys; i++, p += 2 + get16(p))
		if (!kv_find(s, p + 2, get16(p)))
			put32(list + 4 + 4 * j++, i - first);
	int rc = reply(s, c, REP_TIMEOUT, list, 4 + 4ull * nmiss, NULL, 0);
	free(list);
	return rc < 0 ? -1 : 1;
}

/* The frame is done with: make room for the next one (a large buffer goes back to the pool). */
static void consume(struct gx_store_server *s, struct conn *c, uint64_t now)
{
	c->in_len = 0;
	c->parked = 0;
	c->since_ns = now;
	if (c->in_cap > BUF_FREE)
		buf_resize(s, &c->in, &c->in_cap, 0);
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
		if (parse_req(c->in + 4, c->in_len - 4, &r) < 0)
			continue;
		int rc = answer_wait(s, c, &r, final);
		if (rc < 0)
			conn_close(s, c);
		else if (rc > 0)
			consume(s, c, now);
	}
}

static void bad_request(struct gx_store_server *s, struct conn *c, const char *what)
{
	char who[48];

	s->st.bad_requests++;
	slog(s, LK_BAD, GX_LOG_WARN, "dropped %s: %s", peer_str(c, who, sizeof(who)), what);
	reply(s, c, REP_BAD, NULL, 0, NULL, 0);
	conn_notice_close(s, c, 0, 0);
}

static void limit_refused(struct gx_store_server *s, struct conn *c, uint8_t reason, uint64_t limit,
			  uint64_t asked)
{
	static const char *const what[] = {
		[RF_KEY_LEN] = "a key over the limit", [RF_VALUE_LEN] = "a value over the limit",
		[RF_KEYS] = "a new key: the store holds its limit of keys",
		[RF_BYTES] = "bytes over the limit held", [RF_BUFFERS] = "a message: no buffer room",
		[RF_FRAME] = "a message over the frame limit",
	};
	char who[48];

	s->st.refused_limits++;
	slog(s, LK_LIMIT, GX_LOG_WARN, "refused %s from %s (limit %llu, asked %llu)", what[reason],
	     peer_str(c, who, sizeof(who)), (unsigned long long)limit, (unsigned long long)asked);
	if (refuse(s, c, reason, limit, asked) < 0)
		conn_close(s, c);
}

/* One request of an authenticated client. */
static void handle(struct gx_store_server *s, struct conn *c, uint64_t now)
{
	const uint8_t *b = c->in + 4;
	size_t n = c->in_len - 4;
	struct req r;
	uint64_t limit = 0, asked = 0;
	uint8_t out[8];
	int rc = 0;

	if (parse_req(b, n, &r) < 0) {
		bad_request(s, c, "a malformed request (is it a gx store client of this version?)");
		return;
	}
	if (r.key_max > s->o.max_key_len) {
		limit_refused(s, c, RF_KEY_LEN, s->o.max_key_len, r.key_max);
		consume(s, c, now);
		return;
	}
	switch (r.op) {
	case OP_SET:
		if (r.vlen > s->o.max_value_len) {
			limit_refused(s, c, RF_VALUE_LEN, s->o.max_value_len, r.vlen);
			break;
		}
		rc = kv_put(s, r.keys + 2, get16(r.keys), r.val, r.vlen, &limit, &asked);
		if (rc > 0)
			limit_refused(s, c, (uint8_t)rc, limit, asked);
		else if (rc == 0 && (rc = reply(s, c, REP_OK, NULL, 0, NULL, 0)) == 0)
			wake_parked(s, 0, now);
		break;
	case OP_ADD: {
		struct kv *e = kv_find(s, r.keys + 2, get16(r.keys));
		int64_t v = e && e->vlen == 8 ? (int64_t)get64(e->val) : 0;
		v = (int64_t)((uint64_t)v + get64(r.val));
		put64(out, (uint64_t)v);
		rc = kv_put(s, r.keys + 2, get16(r.keys), out, 8, &limit, &asked);
		if (rc > 0)
			limit_refused(s, c, (uint8_t)rc, limit, asked);
		else if (rc == 0 && (rc = reply(s, c, REP_OK, out, 8, NULL, 0)) == 0)
			wake_parked(s, 0, now);
		break;
	}
	default:
		c->wait_idx = (r.op == OP_WAIT && (r.flags & FLAG_ABORT_KEY)) ? 1 : 0;
		c->wait_off = c->wait_idx ? 12 + 2 + (size_t)get16(r.keys) : 12;
		rc = answer_wait(s, c, &r, r.timeout_ms == 0);
		if (rc == 0) {
			c->parked = 1;     /* the frame stays in `in` until it is answered */
			c->deadline_ns = now + (uint64_t)r.timeout_ms * 1000000ull;
			return;
		}
		rc = rc < 0 ? -1 : 0;
	}
	if (rc < 0) {
		conn_close(s, c);
		return;
	}
	if (c->fd >= 0)
		consume(s, c, now);
}

/* The client's handshake: nothing it sends is looked at before its proof holds. */
static void handle_auth(struct gx_store_server *s, struct conn *c, uint64_t now)
{
	const uint8_t *b = c->in + 4;
	uint8_t want[PROOF_LEN], ok[1 + PROOF_LEN];
	uint8_t reason = 0;
	char who[48];

	if (c->in_len - 4 != AUTH_LEN || get16(b) != GX_STORE_MAGIC || b[2] != OP_AUTH) {
		bad_request(s, c, "not a gx store handshake (another program, or a gx of another version?)");
		return;
	}
	if (s->keylen) {
		proof(s->key, s->keylen, LABEL_CLIENT, c->nonce, b + 8, want);
		if (!(b[3] & 1))
			reason = RF_SECRET_MISSING;
		else if (crypto_verify_32(want, b + 8 + NONCE_LEN) != 0)
			reason = RF_SECRET_WRONG;
	} else if (b[3] & 1) {
		reason = RF_SECRET_UNEXPECTED;
	}
	if (reason) {
		s->st.refused_secret++;
		slog(s, LK_SECRET, GX_LOG_WARN, "refused %s: %s (%llu refused so far)",
		     peer_str(c, who, sizeof(who)),
		     reason == RF_SECRET_WRONG ? "wrong secret" : reason == RF_SECRET_MISSING ?
		     "no secret (is GX_STORE_SECRET exported to every rank?)" :
		     "it has a secret and this store has none (is GX_STORE_SECRET the same everywhere?)",
		     (unsigned long long)s->st.refused_secret);
		refuse(s, c, reason, 0, 0);
		conn_notice_close(s, c, 0, 0);
		return;
	}
	if (s->nready >= s->o.max_clients) {
		s->st.refused_clients++;
		slog(s, LK_CLIENTS, GX_LOG_WARN, "refused %s: %u clients already (the limit)",
		     peer_str(c, who, sizeof(who)), s->nready);
		refuse(s, c, RF_CLIENTS, s->o.max_clients, s->nready + 1ull);
		conn_notice_close(s, c, 0, 0);
		return;
	}
	c->state = CS_READY;
	s->npending--;
	s->nready++;
	s->st.authenticated++;
	ok[0] = REP_OK;
	if (s->keylen)
		proof(s->key, s->keylen, LABEL_SERVER, c->nonce, b + 8, ok + 1);
	consume(s, c, now);
	if (queue_raw(s, c, ok, s->keylen ? sizeof(ok) : 1) < 0)
		conn_close(s, c);
}

/* Read what the socket has of the frame being received (never past its end) and handle it when
 * whole.  Returns -1 when the connection is to be closed without more words. */
static int conn_read(struct gx_store_server *s, struct conn *c, uint64_t now)
{
	if (c->parked || c->out_len) {
		/* one request at a time: the client must wait for its answer before sending more */
		uint8_t one;
		ssize_t r = recv(c->fd, &one, 1, MSG_PEEK);
		if (r > 0) {
			bad_request(s, c, "sent a request before the answer to the previous one");
			return 0;
		}
		return r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ? -1 : 0;
	}
	for (;;) {
		size_t need = 4;
		if (c->in_len >= 4) {
			uint32_t len = get32(c->in);
			if (c->state == CS_HANDSHAKE && (len == 0 || len > AUTH_LEN)) {
				bad_request(s, c, "not a gx store handshake (another program, or a gx of "
					    "another version?)");
				return 0;
			}
			if (len == 0 || len > STORE_FRAME_MAX) {
				limit_refused(s, c, RF_FRAME, STORE_FRAME_MAX, len);
				conn_notice_close(s, c, 0, 0);
				return 0;
			}
			need = 4 + (size_t)len;
		}
		if (c->in_len == need && need > 4)
			break;
		if (c->in_cap < need) {
			size_t cap = c->in_cap * 2 > 256 ? c->in_cap * 2 : 256;
			int rc = buf_resize(s, &c->in, &c->in_cap, cap < need ? cap : need);
			if (rc == -1) {
				limit_refused(s, c, RF_BUFFERS, s->o.max_buffered, need);
				conn_notice_close(s, c, 0, 0);
				return 0;
			}
			if (rc < 0)
				return -1;
		}
		size_t room = (c->in_cap < need ? c->in_cap : need) - c->in_len;
		ssize_t r = recv(c->fd, c->in + c->in_len, room, 0);
		if (r == 0)
			return -1;             /* the client left */
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
		if (c->in_len == 0)
			c->frame_ns = now;
		c->in_len += (size_t)r;
	}
	c->frame_ns = 0;
	if (c->state == CS_HANDSHAKE)
		handle_auth(s, c, now);
	else
		handle(s, c, now);
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

/* Close now; the slot is freed when the array is compacted. */
static void conn_close(struct gx_store_server *s, struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->state == CS_HANDSHAKE)
		s->npending--;
	else if (c->state == CS_READY)
		s->nready--;
	c->state = CS_CLOSED;
	c->parked = 0;
}

static void conn_free(struct gx_store_server *s, struct conn *c)
{
	conn_close(s, c);
	buf_resize(s, &c->in, &c->in_cap, 0);
	buf_resize(s, &c->out, &c->out_cap, 0);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->state = CS_CLOSED;
}

/* Make room for a new handshake by dropping the oldest one, if it has had EVICT_MIN_MS. */
static int evict_oldest(struct gx_store_server *s, uint64_t now)
{
	struct conn *old = NULL;

	for (uint32_t i = 0; i < s->nconns; i++)
		if (s->conns[i].state == CS_HANDSHAKE && (!old || s->conns[i].since_ns < old->since_ns))
			old = &s->conns[i];
	if (!old || now - old->since_ns < EVICT_MIN_MS * 1000000ull) {
		s->accept_at_ns = old ? old->since_ns + EVICT_MIN_MS * 1000000ull : now + ACCEPT_PAUSE_MS * 1000000ull;
		return -1;
	}
	s->st.evicted++;
	slog(s, LK_EVICT, GX_LOG_WARN, "%u connections have not authenticated (the limit): dropping the "
	     "oldest for a new one; is a program other than the job's ranks connecting?", s->npending);
	conn_notice_close(s, old, CL_EVICTED, s->npending);
	return 0;
}

static void accept_some(struct gx_store_server *s, uint64_t now)
{
	for (;;) {
		if (s->npending >= s->o.max_pending && evict_oldest(s, now) < 0)
			return;
		struct sockaddr_in peer;
		socklen_t pl = sizeof(peer);
		int fd = accept4(s->lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				slog(s, LK_FD, GX_LOG_WARN, "cannot accept a connection with %u open (%s): "
				     "raise the descriptor limit (ulimit -n)", s->nconns, strerror(errno));
				if (s->npending == 0 || evict_oldest(s, now) < 0)
					s->accept_at_ns = now + ACCEPT_PAUSE_MS * 1000000ull;
			}
			return;
		}
		if (s->nconns == s->conns_cap) {
			uint32_t cap = s->conns_cap ? s->conns_cap * 2 : 64;
			struct conn *nc = realloc(s->conns, cap * sizeof(*nc));
			if (nc)
				s->conns = nc;
			struct pollfd *np = realloc(s->pfd, (cap + 2) * sizeof(*np));
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
		c->state = CS_HANDSHAKE;
		c->peer = peer;
		c->since_ns = now;
		randombytes_buf(c->nonce, NONCE_LEN);
		s->npending++;
		s->st.accepted++;
		uint8_t hello[HELLO_LEN] = { 0 };
		put16(hello, GX_STORE_MAGIC);
		hello[2] = 'H';
		hello[3] = s->keylen ? 1 : 0;
		hello[4] = STORE_VERSION;
		memcpy(hello + 8, c->nonce, NONCE_LEN);
		if (queue_raw(s, c, hello, sizeof(hello)) < 0)
			conn_close(s, c);
	}
}

/* Close what overstayed: a handshake past handshake_ms, a frame not whole within frame_ms, a client
 * idle for idle_ms.  Returns the nearest deadline still ahead. */
static uint64_t expire(struct gx_store_server *s, uint64_t now)
{
	uint64_t next = now + 1000000000ull, hs = s->o.handshake_ms * 1000000ull,
		 fr = s->o.frame_ms * 1000000ull, idle = s->o.idle_ms * 1000000ull;
	char who[48];

	for (uint32_t i = 0; i < s->nconns; i++) {
		struct conn *c = &s->conns[i];
		uint64_t at;
		if (c->fd < 0)
			continue;
		if (c->state == CS_HANDSHAKE) {
			if (now >= (at = c->since_ns + hs)) {
				s->st.handshake_timeouts++;
				slog(s, LK_HANDSHAKE, GX_LOG_WARN, "closed %s: no handshake within %u ms",
				     peer_str(c, who, sizeof(who)), s->o.handshake_ms);
				conn_notice_close(s, c, CL_HANDSHAKE, s->o.handshake_ms);
				continue;
			}
		} else if (c->frame_ns) {
			if (now >= (at = c->frame_ns + fr)) {
				s->st.partial_closed++;
				slog(s, LK_PARTIAL, GX_LOG_WARN, "closed %s: a request not whole after %u ms "
				     "(%zu bytes of it came)", peer_str(c, who, sizeof(who)), s->o.frame_ms,
				     c->in_len);
				conn_notice_close(s, c, CL_PARTIAL, s->o.frame_ms);
				continue;
			}
		} else if (c->parked) {
			at = c->deadline_ns;
		} else if (now >= (at = c->since_ns + idle)) {
			/* nothing asked (or its answer left unread) for idle_ms */
			s->st.idle_closed++;
			slog(s, LK_IDLE, GX_LOG_INFO, "closed %s: no request for %u ms",
			     peer_str(c, who, sizeof(who)), s->o.idle_ms);
			conn_notice_close(s, c, CL_IDLE, s->o.idle_ms);
			continue;
		}
		if (at < next)
			next = at;
	}
	return next;
}

static void publish(struct gx_store_server *s)
{
	s->st.clients = s->nready;
	s->st.pending = s->npending;
	pthread_mutex_lock(&s->lock);
	s->pub = s->st;
	pthread_mutex_unlock(&s->lock);
	atomic_store(&s->nclients, s->nconns);
}

static void *server_main(void *arg)
{
	struct gx_store_server *s = arg;
	uint64_t idle_since = gx_now_ns(), next = idle_since;

	for (;;) {
		uint64_t now = gx_now_ns();
		int stopping = atomic_load(&s->stop);
		if (stopping && (s->nready == 0 || now >= atomic_load(&s->stop_at_ns)))
			break;
		if (!stopping && s->o.exit_idle_ms && s->nconns == 0 &&
		    now - idle_since >= (uint64_t)s->o.exit_idle_ms * 1000000ull)
			break;
		if (stopping && atomic_load(&s->stop_at_ns) < next)
			next = atomic_load(&s->stop_at_ns);
		if (!stopping && s->o.exit_idle_ms && s->nconns == 0 &&
		    idle_since + (uint64_t)s->o.exit_idle_ms * 1000000ull < next)
			next = idle_since + (uint64_t)s->o.exit_idle_ms * 1000000ull;
		int accepting = !stopping && now >= s->accept_at_ns;
		if (!stopping && !accepting && s->accept_at_ns < next)
			next = s->accept_at_ns;
		s->pfd[0] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
		s->pfd[1] = (struct pollfd){ .fd = accepting ? s->lfd : -1, .events = POLLIN };
		for (uint32_t i = 0; i < s->nconns; i++)
			s->pfd[i + 2] = (struct pollfd){ .fd = s->conns[i].fd,
				.events = (short)(POLLIN | (s->conns[i].out_len ? POLLOUT : 0)) };
		int ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
		uint32_t polled = s->nconns;   /* accept_some below appends connections not yet polled */
		if (poll(s->pfd, polled + 2, ms) < 0 && errno != EINTR)
			break;
		now = gx_now_ns();
		if (s->pfd[0].revents & POLLIN) {
			char b[64];
			while (read(s->wake[0], b, sizeof(b)) > 0)
				;
		}
		if (s->pfd[1].revents & POLLIN)
			accept_some(s, now);
		for (uint32_t i = 0; i < polled; i++) {
			struct conn *c = &s->conns[i];
			short re = s->pfd[i + 2].fd == c->fd ? s->pfd[i + 2].revents : 0;
			if (c->fd < 0)
				continue;
			if ((re & (POLLIN | POLLHUP | POLLERR)) && conn_read(s, c, now) < 0)
				conn_close(s, c);
		}
		wake_parked(s, 1, gx_now_ns());
		next = expire(s, gx_now_ns());      /* closed now, so the counters below include it */
		uint32_t j = 0;
		for (uint32_t i = 0; i < s->nconns; i++) {
			struct conn *c = &s->conns[i];
			if (c->fd >= 0 && c->out_len && conn_flush(c) < 0)
				conn_close(s, c);
			if (c->fd >= 0 && c->out_len == 0 && c->out_cap > BUF_FREE)
				buf_resize(s, &c->out, &c->out_cap, 0);
			if (c->fd < 0) {
				conn_free(s, c);
				continue;
			}
			s->conns[j++] = *c;
		}
		s->nconns = j;
		publish(s);
		if (j > 0)
			idle_since = gx_now_ns();
	}
	for (uint32_t i = 0; i < s->nconns; i++) {
		conn_notice_close(s, &s->conns[i], CL_SHUTDOWN, 0);
		conn_free(s, &s->conns[i]);
	}
	s->nconns = 0;
	publish(s);
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
	sodium_memzero(s->key, sizeof(s->key));
	pthread_mutex_destroy(&s->lock);
	free(s->tab);
	free(s->conns);
	free(s->pfd);
	free(s);
}

static void opts_fill(struct gx_store_server_opts *o)
{
	if (!o->max_clients)
		o->max_clients = 8192;
	if (!o->max_pending)
		o->max_pending = 1024;
	if (!o->max_keys)
		o->max_keys = 262144;
	if (!o->max_key_len || o->max_key_len > GX_STORE_KEY_MAX)
		o->max_key_len = GX_STORE_KEY_MAX;
	if (!o->max_value_len || o->max_value_len > GX_STORE_VALUE_MAX)
		o->max_value_len = GX_STORE_VALUE_MAX;
	if (!o->max_bytes)
		o->max_bytes = 64ull << 20;
	if (!o->max_buffered)
		o->max_buffered = 64ull << 20;
	if (!o->handshake_ms)
		o->handshake_ms = 2000;
	if (!o->frame_ms)
		o->frame_ms = 5000;
	if (!o->idle_ms)
		o->idle_ms = 5000;
}

gx_status_t gx_store_server_start(const char *addr, const struct gx_store_server_opts *o,
				  struct gx_store_server **out)
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
	pthread_mutex_init(&s->lock, NULL);
	if (o)
		s->o = *o;
	opts_fill(&s->o);
	snprintf(s->addr, sizeof(s->addr), "%s", addr ? addr : "(null)");
	s->tab_size = 256;
	s->tab = calloc(s->tab_size, sizeof(*s->tab));
	s->pfd = calloc(2, sizeof(*s->pfd));
	if (!s->tab || !s->pfd) {
		st = gx_error(GX_ERR_NOMEM, "store server: out of memory");
		goto fail;
	}
	if ((st = crypto_ready()) < 0 || (st = secret_resolve(s->o.secret, s->key, &s->keylen)) < 0)
		goto fail;
	s->o.secret = NULL;        /* the caller's string is not kept */
	randombytes_buf(s->hash_key, sizeof(s->hash_key));
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
	char ip[INET_ADDRSTRLEN] = "?";
	inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
	snprintf(s->addr, sizeof(s->addr), "%s:%u", ip, s->port);   /* logs name the port in use */
	if (!s->keylen && (ntohl(sa.sin_addr.s_addr) >> 24) != 127)
		gx_log(GX_LOG_WARN, "store", "%s: serving without a secret on an address other hosts may "
		       "reach: anyone who can connect may read and write the rendezvous; export the same "
		       "GX_STORE_SECRET to every rank and the store (gx-run does)", s->addr);
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

gx_status_t gx_store_server_create(const char *addr, uint32_t idle_timeout_ms, struct gx_store_server **out)
{
	struct gx_store_server_opts o = { .exit_idle_ms = idle_timeout_ms };
	return gx_store_server_start(addr, &o, out);
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

int gx_store_server_has_secret(const struct gx_store_server *s)
{
	return s->keylen > 0;
}

void gx_store_server_stats(const struct gx_store_server *s, struct gx_store_server_stats *out)
{
	struct gx_store_server *m = (struct gx_store_server *)s;
	pthread_mutex_lock(&m->lock);
	*out = m->pub;
	pthread_mutex_unlock(&m->lock);
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
