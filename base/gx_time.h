/* gx_time.h: clocks.  gx_now_ns() for deadlines and timeouts (CLOCK_MONOTONIC, ~100 ns on VMs: not
 * for per-packet use); gx_tsc() and gx_tsc_hz() for cheap timing of hot loops. */
#ifndef GX_TIME_H
#define GX_TIME_H

#include <stdint.h>

#include "gx_api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds (a function, not inline: the header then needs no POSIX feature
 * macros from the program that includes it). */
GX_API uint64_t gx_now_ns(void);

static inline uint64_t gx_tsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	return gx_now_ns();
#endif
}

/* TSC ticks per second, calibrated once against CLOCK_MONOTONIC (about 10 ms on first call). */
GX_API uint64_t gx_tsc_hz(void);

/* Spin briefly, then sleep: the idle back-off every polling loop uses, so that more polling
 * processes than cores still make progress.  `idle_ns` is how long the caller has been idle. */
GX_API void gx_idle_backoff(uint64_t idle_ns);

#ifdef __cplusplus
}
#endif

#endif
