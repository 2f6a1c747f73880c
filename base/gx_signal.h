/* gx_signal.h: stopping a rank on SIGINT or SIGTERM.
 *
 * gx_interrupt() records a signal and may be called from a signal handler.  From then on every
 * blocking gx call (net polls, collectives, rendezvous and store waits) fails with
 * GX_ERR_INTERRUPTED; a net first tells its peers (ABORT naming this rank and the signal), so they
 * fail at once too instead of after the peer timeout.  gx_stop_on_signals() installs such a handler
 * for SIGINT and SIGTERM; a second signal of either kind ends the process the default way, so a rank
 * stuck outside gx still dies. */
#ifndef GX_SIGNAL_H
#define GX_SIGNAL_H

#include "gx_api.h"
#include "gx_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Record signal signo (> 0); async-signal-safe. */
GX_API void gx_interrupt(int signo);
/* The signal recorded, or 0. */
GX_API int gx_interrupted(void);
/* GX_ERR_INTERRUPTED with "interrupted by SIGINT" (etc.) in gx_last_error() once a signal was
 * recorded, else GX_OK. */
GX_API gx_status_t gx_interrupt_status(void);
/* Install the handler for SIGINT and SIGTERM and make sure neither is ignored or blocked (a rank
 * started with '&' from a script inherits SIGINT ignored).  GX_ERR_IO if sigaction fails. */
GX_API gx_status_t gx_stop_on_signals(void);

#ifdef __cplusplus
}
#endif

#endif
