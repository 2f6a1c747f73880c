/* gx_store.h: the TCP key-value store ranks meet through (rendezvous).
 *
 * A store is served by rank 0 in a background thread of its process, or by the standalone gx-store
 * program; every rank is a client.  Keys are strings (<= GX_STORE_KEY_MAX bytes), values are byte
 * strings (<= GX_STORE_VALUE_MAX bytes).  Operations: set, get (waits until the key exists), wait
 * (until every key of a list exists, or an abort key appears), add (atomic 64-bit counter).
 *
 * The store trusts no one.  With a job secret (GX_STORE_SECRET: hex, 32 to 128 digits, the same for
 * every rank and the server) a client and the server prove to each other that they know it (an
 * HMAC-SHA256 challenge over random nonces, libsodium) before anything else is read; a client that
 * cannot is refused, counted and logged.  Without a secret the store serves anyone who reaches its
 * address.  Either way the server bounds what a client can hold: connections, handshake time, idle
 * time, half-sent frames, keys, key and value sizes, bytes held and bytes buffered, and each limit
 * gives the client an error that names it (docs/runtime.md, "The store").
 *
 * Every client call takes a timeout and stops when a signal was recorded (gx_signal.h), so start-up
 * can always be aborted: a store that cannot be reached, that stops answering or whose connection
 * drops gives an error, never a hang.  The wire protocol is documented in docs/runtime.md.
 *
 * A client belongs to one thread at a time; the server is thread-safe to start and stop.
 */
#ifndef GX_STORE_H
#define GX_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "gx_api.h"
#include "gx_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GX_STORE_KEY_MAX 256u
#define GX_STORE_VALUE_MAX (64u * 1024u)
#define GX_STORE_SECRET_MIN_HEX 32u     /* 128 bits */
#define GX_STORE_SECRET_MAX_HEX 128u    /* 512 bits */

/* GX_OK if `hex` is a usable secret: an even number of GX_STORE_SECRET_MIN_HEX to _MAX_HEX hex
 * digits; "" is fine too and means "no secret".  GX_ERR_INVAL naming `origin` (e.g.
 * "GX_STORE_SECRET") otherwise; the message never quotes the value. */
GX_API gx_status_t gx_store_secret_check(const char *hex, const char *origin);

/* ---- client -------------------------------------------------------------------------------- */
struct gx_store;

/* Connect to "host:port" and authenticate, retrying with exponential back-off (10 ms doubling to
 * 1 s) while the store cannot be reached or is busy, until timeout_ms has passed (GX_ERR_TIMEOUT
 * naming the address and the last reason).  secret: hex; NULL: GX_STORE_SECRET from the environment
 * (none when unset); "": none.  A secret the store does not share, or a mismatch between a store
 * with a secret and a client without (or the reverse), fails at once with GX_ERR_INVAL saying so. */
GX_API gx_status_t gx_store_connect(const char *addr, const char *secret, uint32_t timeout_ms,
				    struct gx_store **out);
/* gx_store_connect(addr, NULL, timeout_ms, out): the secret is GX_STORE_SECRET's. */
GX_API gx_status_t gx_store_create(const char *addr, uint32_t timeout_ms, struct gx_store **out);
GX_API void gx_store_destroy(struct gx_store *s);
GX_API const char *gx_store_addr(const struct gx_store *s);

/* Store a value.  A limit of the store (key or value size, number of keys, bytes held) is an error
 * naming the limit: GX_ERR_INVAL for a key or value too large, GX_ERR_NOSPC for a full store. */
GX_API gx_status_t gx_store_set(struct gx_store *s, const char *key, const void *val, size_t len);

/* Wait up to timeout_ms for `key` to exist, then copy its value (at most cap bytes; *len gets the
 * full length).  GX_ERR_TIMEOUT if it never appeared, GX_ERR_NOSPC if cap was too small. */
GX_API gx_status_t gx_store_get(struct gx_store *s, const char *key, void *val, size_t cap, size_t *len,
			 uint32_t timeout_ms);

/* Wait up to timeout_ms until every one of keys[0..n) exists.  If abort_key (may be NULL) appears
 * first, returns GX_ERR_CLOSED (the message names the key, never its value: read it with
 * gx_store_get and check it before believing it).  On GX_ERR_TIMEOUT, missing[] (n entries, may be
 * NULL) gets the indices of the absent keys and *nmissing their count. */
GX_API gx_status_t gx_store_wait(struct gx_store *s, const char *const *keys, uint32_t n,
			  const char *abort_key, uint32_t timeout_ms, uint32_t *missing,
			  uint32_t *nmissing);

/* Atomically add delta to the 64-bit counter `key` (created at 0) and return the new value in
 * *result.  The value is stored as 8 little-endian bytes (get returns them). */
GX_API gx_status_t gx_store_add(struct gx_store *s, const char *key, int64_t delta, int64_t *result);

/* ---- server -------------------------------------------------------------------------------- */
struct gx_store_server;

/* Numeric fields left 0 take the default shown (docs/runtime.md explains each). */
struct gx_store_server_opts {
	const char *secret;        /* hex; NULL: GX_STORE_SECRET (none when unset); "": none */
	uint32_t exit_idle_ms;     /* > 0: stop once no client has been connected for this long */
	uint32_t max_clients;      /* authenticated connections at once (8192) */
	uint32_t max_pending;      /* connections still in the handshake (1024); when full, the oldest
				    * that has had 250 ms is dropped for a new one */
	uint32_t max_keys;         /* keys held (262144) */
	uint32_t max_key_len;      /* bytes per key (GX_STORE_KEY_MAX, also the most allowed) */
	uint32_t max_value_len;    /* bytes per value (GX_STORE_VALUE_MAX, also the most allowed) */
	uint64_t max_bytes;        /* keys and values held, 64 bytes of bookkeeping per key included
				    * (64 MiB) */
	uint64_t max_buffered;     /* request and reply buffers of every connection together, past
				    * the first 1 KiB of each (64 MiB) */
	uint32_t handshake_ms;     /* a new connection must authenticate within this (2000) */
	uint32_t frame_ms;         /* a request must arrive whole within this of its first byte (5000) */
	uint32_t idle_ms;          /* an authenticated client with no request for this long is closed
				    * (5000; our client reconnects by itself when it was) */
};

/* What the server did, since it started (counters) or right now (gauges). */
struct gx_store_server_stats {
	uint32_t clients;          /* authenticated connections now */
	uint32_t pending;          /* connections in the handshake now */
	uint64_t keys, bytes_held; /* keys held and their bytes (as counted against max_bytes) */
	uint64_t buffered;         /* bytes of connection buffers now (as counted against max_buffered) */
	uint64_t accepted;         /* connections accepted */
	uint64_t authenticated;    /* handshakes passed */
	uint64_t refused_secret;   /* handshakes refused: wrong secret, none, or one the store lacks */
	uint64_t handshake_timeouts; /* closed: no handshake within handshake_ms */
	uint64_t evicted;          /* handshakes dropped to make room for newer connections */
	uint64_t refused_clients;  /* authenticated but over max_clients */
	uint64_t idle_closed;      /* closed after idle_ms without a request */
	uint64_t partial_closed;   /* closed: a request not whole within frame_ms */
	uint64_t refused_limits;   /* requests refused by a key, value, keys, bytes or buffer limit */
	uint64_t bad_requests;     /* malformed frames (the client is dropped) */
};

/* Listen on "host:port" (port 0: ephemeral; see gx_store_server_port) and serve from a background
 * thread.  o may be NULL (every default, GX_STORE_SECRET).  GX_ERR_INVAL for a bad secret. */
GX_API gx_status_t gx_store_server_start(const char *addr, const struct gx_store_server_opts *o,
				     struct gx_store_server **out);
/* gx_store_server_start with exit_idle_ms = idle_timeout_ms (gx-store --timeout-ms) and every other
 * field at its default. */
GX_API gx_status_t gx_store_server_create(const char *addr, uint32_t idle_timeout_ms,
				      struct gx_store_server **out);
GX_API uint16_t gx_store_server_port(const struct gx_store_server *s);
/* 1 while the server thread runs, 0 once it stopped (idle timeout or error). */
GX_API int gx_store_server_running(const struct gx_store_server *s);
/* Number of connections right now (authenticated or not). */
GX_API uint32_t gx_store_server_clients(const struct gx_store_server *s);
/* A snapshot of the counters (taken by the server thread after each round of events). */
GX_API void gx_store_server_stats(const struct gx_store_server *s, struct gx_store_server_stats *out);
/* 1 if the server requires a secret. */
GX_API int gx_store_server_has_secret(const struct gx_store_server *s);
/* Stop serving: first wait up to linger_ms for clients to disconnect (so replies already queued
 * reach them), then tell the rest it is shutting down, close every connection and free the server. */
GX_API void gx_store_server_destroy(struct gx_store_server *s, uint32_t linger_ms);

/* Split "host:port" (host may be empty = 127.0.0.1).  GX_ERR_INVAL with a message otherwise. */
GX_API gx_status_t gx_store_parse_addr(const char *addr, char *host, size_t hostlen, uint16_t *port);

#ifdef __cplusplus
}
#endif

#endif
