/* engine.c: the progress thread of GX_PROGRESS_THREAD.
 *
 * The engine thread owns the communicator's gx_net.  The application submits operations through an
 * SPSC ring (ring.h) and waits on each one's completion word: it spins ~50 us, then sleeps in
 * futex_wait; the engine wakes it only if it went to sleep, so a fast operation costs no system
 * call.  The loop runs to completion: take a submitted operation and run it whole, else make idle
 * progress (gx_coll_poll with GX_COLL_NONE: ACKs, retransmissions, heartbeats, and stashing packets
 * of collectives a faster peer already started), then back off (gx_idle_backoff) so ranks sharing
 * cores still run.  A dead peer seen while idle is remembered and returned by the next operation.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "comm_internal.h"
#include "gx_time.h"
#include "gx_topology.h"
#include "ring.h"

#define ENGINE_QUEUE 64
#define WAIT_SPIN_NS 50000ull

struct gx_work {
	gx_status_t (*fn)(void *);
	void *arg;
	gx_status_t status;
	_Atomic uint32_t done;       /* futex word: 0 running, 1 finished */
	_Atomic uint32_t sleeping;   /* the submitter is (about to be) in futex_wait */
	char err[512];
};

struct gx_engine {
	struct gx_comm *c;
	struct gx_spsc *sq;          /* application -> engine */
	pthread_t thread;
	pthread_mutex_t submit;      /* one operation at a time: keeps the ring single-producer and
				      * orders collectives identically when several app threads call */
	struct gx_work work;         /* the operation in flight: engine-owned memory, so the engine
				      * may still touch it after the submitter returned */
	int core;
	_Atomic int stop;
	_Atomic int cpu;
	_Atomic uint32_t started;    /* futex word: 0 starting, 1 running, 2 failed to pin */
	char start_err[512];
	gx_status_t sticky;          /* first error seen while idle (engine thread only) */
	char sticky_msg[512];
};

static long futex(_Atomic uint32_t *w, int op, uint32_t val)
{
	return syscall(SYS_futex, (uint32_t *)w, op, val, NULL, NULL, 0);
}

static void complete(struct gx_work *w, gx_status_t st, const char *msg)
{
	w->status = st;
	if (st < 0)
		snprintf(w->err, sizeof(w->err), "%s", msg);
	atomic_store(&w->done, 1);
	if (atomic_load(&w->sleeping))
		futex(&w->done, FUTEX_WAKE_PRIVATE, 1);
}

static void *engine_main(void *arg)
{
	struct gx_engine *e = arg;
	uint64_t idle_since;

	if (e->core >= 0 && gx_topo_pin_self(e->core) < 0) {
		snprintf(e->start_err, sizeof(e->start_err), "%s", gx_last_error());
		atomic_store(&e->started, 2);
		futex(&e->started, FUTEX_WAKE_PRIVATE, 1);
		return NULL;
	}
	atomic_store(&e->cpu, sched_getcpu());
	atomic_store(&e->started, 1);
	futex(&e->started, FUTEX_WAKE_PRIVATE, 1);

	idle_since = gx_now_ns();
	while (!atomic_load_explicit(&e->stop, memory_order_relaxed)) {
		struct gx_work *w = gx_spsc_pop(e->sq);
		if (w) {
			atomic_store_explicit(&e->cpu, sched_getcpu(), memory_order_relaxed);
			if (e->sticky < 0) {
				complete(w, e->sticky, e->sticky_msg);
			} else {
				gx_clear_error();
				gx_status_t st = w->fn(w->arg);
				complete(w, st, gx_last_error());
			}
			idle_since = gx_now_ns();
			continue;
		}
		int (*idle)(struct gx_comm *) = atomic_load_explicit(&e->c->idle_poll, memory_order_acquire);
		int n = e->sticky < 0 || !idle ? 0 : idle(e->c);
		if (n < 0) {
			e->sticky = n;
			snprintf(e->sticky_msg, sizeof(e->sticky_msg), "%s", gx_last_error());
		}
		uint64_t now = gx_now_ns();
		if (n > 0)
			idle_since = now;
		gx_idle_backoff(now - idle_since);
	}
	/* operations queued after stop was requested still get an answer */
	for (struct gx_work *w; (w = gx_spsc_pop(e->sq));)
		complete(w, GX_ERR_CLOSED, "the communicator's engine stopped (gx_comm_destroy)");
	return NULL;
}

gx_status_t gx_engine_create(struct gx_comm *c, int core, struct gx_engine **out)
{
	struct gx_engine *e = calloc(1, sizeof(*e));
	gx_status_t st;
	int err;

	*out = NULL;
	if (!e || gx_spsc_create(ENGINE_QUEUE, &e->sq) < 0) {
		free(e);
		return gx_error(GX_ERR_NOMEM, "engine: out of memory");
	}
	e->c = c;
	e->core = core;
	atomic_store(&e->cpu, -1);
	pthread_mutex_init(&e->submit, NULL);
	if ((err = pthread_create(&e->thread, NULL, engine_main, e)) != 0) {
		st = gx_error(GX_ERR_IO, "engine: cannot start its thread: %s", strerror(err));
		goto fail;
	}
	while (atomic_load(&e->started) == 0)
		futex(&e->started, FUTEX_WAIT_PRIVATE, 0);
	if (atomic_load(&e->started) == 2) {
		pthread_join(e->thread, NULL);
		st = gx_error(GX_ERR_INVAL, "engine: %s", e->start_err);
		goto fail;
	}
	*out = e;
	return GX_OK;
fail:
	pthread_mutex_destroy(&e->submit);
	gx_spsc_destroy(e->sq);
	free(e);
	return st;
}

gx_status_t gx_engine_run(struct gx_engine *e, gx_status_t (*fn)(void *), void *arg)
{
	struct gx_work *w = &e->work;
	gx_status_t st;
	uint64_t t0;

	pthread_mutex_lock(&e->submit);
	w->fn = fn;
	w->arg = arg;
	w->status = GX_OK;
	atomic_store(&w->sleeping, 0);
	atomic_store(&w->done, 0);
	if (!gx_spsc_push(e->sq, w)) {       /* cannot happen with one operation in flight */
		pthread_mutex_unlock(&e->submit);
		return gx_error(GX_ERR_AGAIN, "engine: submission queue full");
	}
	t0 = gx_now_ns();
	while (!atomic_load_explicit(&w->done, memory_order_acquire)) {
		if (gx_now_ns() - t0 < WAIT_SPIN_NS) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			continue;
		}
		atomic_store(&w->sleeping, 1);
		if (!atomic_load(&w->done))
			futex(&w->done, FUTEX_WAIT_PRIVATE, 0);
	}
	st = w->status;
	if (st < 0)
		gx_error(st, "%s", w->err);
	pthread_mutex_unlock(&e->submit);
	return st;
}

void gx_engine_destroy(struct gx_engine *e)
{
	if (!e)
		return;
	atomic_store(&e->stop, 1);
	pthread_join(e->thread, NULL);
	pthread_mutex_destroy(&e->submit);
	gx_spsc_destroy(e->sq);
	free(e);
}

int gx_engine_cpu(const struct gx_engine *e)
{
	return atomic_load(&((struct gx_engine *)e)->cpu);
}
