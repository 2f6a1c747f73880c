/* gx_log.h: where the library's messages go.
 *
 * The library never writes to stderr itself: warnings and information (a stale memif socket removed,
 * a port's buffer sizes, frames dropped at close) go through one hook.  The default hook prints
 * "gx <level>: <message>" to stderr for GX_LOG_WARN and above (GX_LOG_LEVEL=debug|info|warn|error
 * changes the threshold); an application sets its own to route them into its logger.
 */
#ifndef GX_LOG_H
#define GX_LOG_H

#include "gx_api.h"

#ifdef __cplusplus
extern "C" {
#endif

enum gx_log_level { GX_LOG_DEBUG = 0, GX_LOG_INFO = 1, GX_LOG_WARN = 2, GX_LOG_ERROR = 3 };

/* fn(arg, level, subsystem, message): subsystem is a short name such as "dpdk"; message has no
 * trailing newline.  May be called from the engine thread; must not call back into gx. */
typedef void (*gx_log_fn)(void *arg, enum gx_log_level level, const char *subsystem, const char *msg);

/* Replace the hook (NULL restores the default).  Messages below min_level are not formatted. */
GX_API void gx_log_set(gx_log_fn fn, void *arg, enum gx_log_level min_level);

/* Emit a message (library code; printf-style). */
GX_API void gx_log(enum gx_log_level level, const char *subsystem, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif
