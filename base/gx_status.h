/* gx_status.h: the one status type used everywhere in gx.
 *
 * Convention (UCX/DPDK style): 0 is success, a positive value means "in progress / try again later",
 * a negative value is an error.  Every function that fails also records a human-readable message in
 * thread-local storage; gx_last_error() returns it.  Library code never calls exit().
 */
#ifndef GX_STATUS_H
#define GX_STATUS_H

#include <stdarg.h>

#include "gx_api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int gx_status_t;

enum {
	GX_OK = 0,
	GX_INPROGRESS = 1,      /* operation started, not finished; poll again */
	GX_ERR_INVAL = -1,      /* bad argument, bad flag, malformed spec string */
	GX_ERR_NOMEM = -2,      /* allocation failed */
	GX_ERR_NOSPC = -3,      /* output buffer too small */
	GX_ERR_CORRUPT = -4,    /* malformed, truncated or foreign packet/block */
	GX_ERR_NOTSUP = -5,     /* not supported by this build or this device */
	GX_ERR_TIMEOUT = -6,    /* a deadline passed */
	GX_ERR_PEER = -7,       /* a peer made no progress within the peer timeout (dead or stuck) */
	GX_ERR_IO = -8,         /* system or device call failed */
	GX_ERR_NONFINITE = -9,  /* NaN or Inf in a gradient */
	GX_ERR_AGAIN = -10,     /* resource temporarily exhausted (window full, ring full) */
	GX_ERR_NODEV = -11,     /* no such port or device */
	GX_ERR_CLOSED = -12,    /* the object was closed or aborted */
	GX_ERR_INTERRUPTED = -13, /* a signal asked this rank to stop (gx_signal.h) */
	GX_ERR_MISMATCH = -14,  /* ranks called different collectives (size, codec, operation, count) */
};

/* Short name of a status code, e.g. "GX_ERR_PEER".  Never NULL. */
GX_API const char *gx_status_str(gx_status_t s);

/* Message recorded by the last failing gx call on this thread ("" if none). */
GX_API const char *gx_last_error(void);

/* Record a message for status s (printf-style) and return s, so callers can write
 * `return gx_error(GX_ERR_INVAL, "unknown codec '%s'", name);`.  Returns s unchanged for s >= 0. */
GX_API gx_status_t gx_error(gx_status_t s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
GX_API gx_status_t gx_verror(gx_status_t s, const char *fmt, va_list ap);

/* Clear the thread's last error message. */
GX_API void gx_clear_error(void);

#ifdef __cplusplus
}
#endif

#endif
