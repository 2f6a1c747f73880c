/* gx_store.h: the TCP key-value store ranks meet through (rendezvous).
 *
 * A store is served by rank 0 in a background thread of its process, or by the standalone gx-store
 * program; every rank is a client.  Keys are strings (<= GX_STORE_KEY_MAX bytes), values are byte
 * strings (<= GX_STORE_VALUE_MAX bytes).  Operations: set, get (waits until the key exists), wait
 * (until every key of a list exists, or an abort key appears), add (atomic 64-bit counter).
 *
 * Every client call takes a timeout, so start-up can always be aborted: a store that cannot be
 * reached, that stops answering or whose connection drops gives an error, never a hang.  The wire
 * protocol is documented in docs/runtime.md ("The store protocol").
 *
 * A client belongs to one thread at a time; the server is thread-safe to start and stop.
 */
#ifndef GX_STORE_H
#define GX_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "gx_api.h"
#include "gx_status.h"

#define GX_STORE_KEY_MAX 256u
#define GX_STORE_VALUE_MAX (64u * 1024u)

/* ---- client -------------------------------------------------------------------------------- */
struct gx_store;

/* Connect to "host:port", retrying with exponential back-off (10 ms doubling to 1 s) until
 * timeout_ms has passed; GX_ERR_TIMEOUT naming the address. */
GX_API gx_status_t gx_store_create(const char *addr, uint32_t timeout_ms, struct gx_store **out);
GX_API void gx_store_destroy(struct gx_store *s);
GX_API const char *gx_store_addr(const struct gx_store *s);

GX_API gx_status_t gx_store_set(struct gx_store *s, const char *key, const void *val, size_t len);

/* Wait up to timeout_ms for `key` to exist, then copy its value (at most cap bytes; *len gets the
 * full length).  GX_ERR_TIMEOUT if it never appeared, GX_ERR_NOSPC if cap was too small. */
GX_API gx_status_t gx_store_get(struct gx_store *s, const char *key, void *val, size_t cap, size_t *len,
			 uint32_t timeout_ms);

/* Wait up to timeout_ms until every one of keys[0..n) exists.  If abort_key (may be NULL) appears
 * first, returns GX_ERR_CLOSED with its value as the error message.  On GX_ERR_TIMEOUT, missing[]
 * (n entries, may be NULL) gets the indices of the absent keys and *nmissing their count. */
GX_API gx_status_t gx_store_wait(struct gx_store *s, const char *const *keys, uint32_t n,
			  const char *abort_key, uint32_t timeout_ms, uint32_t *missing,
			  uint32_t *nmissing);

/* Atomically add delta to the 64-bit counter `key` (created at 0) and return the new value in
 * *result.  The value is stored as 8 little-endian bytes (get returns them). */
GX_API gx_status_t gx_store_add(struct gx_store *s, const char *key, int64_t delta, int64_t *result);

/* ---- server -------------------------------------------------------------------------------- */
struct gx_store_server;

/* Listen on "host:port" (port 0: ephemeral; see gx_store_server_port) and serve from a background
 * thread.  idle_timeout_ms > 0: the server stops by itself once no client has been connected for
 * that long (gx-store --timeout-ms); 0: runs until gx_store_server_destroy. */
GX_API gx_status_t gx_store_server_create(const char *addr, uint32_t idle_timeout_ms,
				      struct gx_store_server **out);
GX_API uint16_t gx_store_server_port(const struct gx_store_server *s);
/* 1 while the server thread runs, 0 once it stopped (idle timeout or error). */
GX_API int gx_store_server_running(const struct gx_store_server *s);
/* Number of clients connected right now. */
GX_API uint32_t gx_store_server_clients(const struct gx_store_server *s);
/* Stop serving: first wait up to linger_ms for clients to disconnect (so replies already queued
 * reach them), then close every connection and free the server. */
GX_API void gx_store_server_destroy(struct gx_store_server *s, uint32_t linger_ms);

/* Split "host:port" (host may be empty = 127.0.0.1).  GX_ERR_INVAL with a message otherwise. */
GX_API gx_status_t gx_store_parse_addr(const char *addr, char *host, size_t hostlen, uint16_t *port);

#endif
