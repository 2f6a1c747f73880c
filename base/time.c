/* time.c: TSC calibration and the idle back-off shared by every polling loop. */
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "gx_time.h"

uint64_t gx_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t gx_tsc_hz(void)
{
	static _Atomic uint64_t hz;
	uint64_t v = atomic_load_explicit(&hz, memory_order_relaxed);

	if (v)
		return v;
	uint64_t t0 = gx_now_ns(), c0 = gx_tsc();
	struct timespec d = { 0, 10 * 1000 * 1000 };
	nanosleep(&d, NULL);
	uint64_t t1 = gx_now_ns(), c1 = gx_tsc();
	v = (uint64_t)((double)(c1 - c0) * 1e9 / (double)(t1 - t0));
	atomic_store_explicit(&hz, v, memory_order_relaxed);
	return v;
}

/* Measured on 2-core VMs (see docs/design.md): sched_yield and 1 us sleeps do not help a starved peer;
 * spinning ~50 us after the last event, then sleeping 200 us, keeps idle pollers at a few % of a core. */
#define GX_SPIN_NS 50000ull
#define GX_SLEEP_NS 200000l

void gx_idle_backoff(uint64_t idle_ns)
{
	if (idle_ns < GX_SPIN_NS) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
		return;
	}
	struct timespec d = { 0, GX_SLEEP_NS };
	nanosleep(&d, NULL);
}
