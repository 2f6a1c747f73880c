/* gx.h: everything an application uses, in one include.  Link with `pkg-config --libs gx`.
 *
 *   gx_status.h       status codes and the last error's message (every call)
 *   gx_log.h          where the library's warnings go
 *   gx_signal.h       stopping a rank on SIGINT/SIGTERM
 *   gx_time.h         clocks and the idle back-off of polling loops
 *   gx_rng.h          counter-based random numbers (header only)
 *   gx_codec.h        gradient codecs and error feedback          (compress/)
 *   gx_net.h          the reliable net over a transport backend     (transport/)
 *   gx_comm.h         communicator: rendezvous, engine, progress    (runtime/)
 *   gx_config.h       --flags and GX_* variables for all of it      (runtime/)
 *   gx_store.h        the TCP key-value store ranks meet through    (runtime/)
 *   gx_collectives.h  allreduce: plain, compressed, homomorphic    (collectives/)
 *
 * Conventions: functions return a gx_status_t (0 ok, < 0 error with a message in gx_last_error());
 * objects are made by gx_X_create(..., &out) and freed by gx_X_destroy(); a gx_net or gx_comm belongs
 * to one thread at a time.
 */
#ifndef GX_H
#define GX_H

#include "gx_status.h"
#include "gx_log.h"
#include "gx_signal.h"
#include "gx_time.h"
#include "gx_rng.h"
#include "gx_codec.h"
#include "gx_net.h"
#include "gx_comm.h"
#include "gx_config.h"
#include "gx_store.h"
#include "gx_collectives.h"

#endif
