/* ring.h: a single-producer / single-consumer queue of pointers (C11 atomics).
 *
 * The one queue implementation of gx, used in every build (with or without DPDK): rte_ring would
 * do the same job in DPDK builds, but two implementations behind one interface is more code to test
 * for no gain at one submission per collective.  Producer and consumer indices live on their own
 * cache lines, and each side caches the other's index so the common case touches one shared line.
 * Capacity is a power of two; indices run freely and wrap modulo 2^32.
 */
#ifndef GX_RING_H
#define GX_RING_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gx_status.h"

#define GX_CACHE_LINE 64

struct gx_spsc {                                 /* allocated cache-line aligned */
	_Atomic uint32_t head;                       /* next slot the producer fills */
	uint32_t tail_cache;                         /* producer's view of tail */
	char pad0[GX_CACHE_LINE - 8];                /* (padding, not _Alignas: GCC 12 warns wrongly
						      * on atomics in over-aligned members) */
	_Atomic uint32_t tail;                       /* next slot the consumer empties */
	uint32_t head_cache;                         /* consumer's view of head */
	char pad1[GX_CACHE_LINE - 8];
	uint32_t mask;
	void **slot;
};

/* capacity: rounded up to a power of two (>= 2). */
static inline gx_status_t gx_spsc_create(uint32_t capacity, struct gx_spsc **out)
{
	uint32_t cap = 2;
	while (cap < capacity && cap < (1u << 30))
		cap <<= 1;
	void *mem = NULL;
	if (posix_memalign(&mem, GX_CACHE_LINE, sizeof(struct gx_spsc)) != 0)
		mem = NULL;
	struct gx_spsc *r = mem;
	void **slot = calloc(cap, sizeof(void *));
	if (!r || !slot) {
		free(r);
		free(slot);
		*out = NULL;
		return gx_error(GX_ERR_NOMEM, "spsc ring: out of memory for %u slots", cap);
	}
	memset(r, 0, sizeof(*r));
	r->mask = cap - 1;
	r->slot = slot;
	*out = r;
	return GX_OK;
}

static inline void gx_spsc_destroy(struct gx_spsc *r)
{
	if (r)
		free(r->slot);
	free(r);
}

/* Producer only.  1 if queued, 0 if the ring is full. */
static inline int gx_spsc_push(struct gx_spsc *r, void *p)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	if (h - r->tail_cache > r->mask) {
		r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
		if (h - r->tail_cache > r->mask)
			return 0;
	}
	r->slot[h & r->mask] = p;
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return 1;
}

/* Consumer only.  The oldest pointer, or NULL if the ring is empty. */
static inline void *gx_spsc_pop(struct gx_spsc *r)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	if (t == r->head_cache) {
		r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		if (t == r->head_cache)
			return NULL;
	}
	void *p = r->slot[t & r->mask];
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return p;
}

/* Entries queued (exact for either side's own view; approximate for a third thread). */
static inline uint32_t gx_spsc_count(struct gx_spsc *r)
{
	return atomic_load_explicit(&r->head, memory_order_acquire) -
	       atomic_load_explicit(&r->tail, memory_order_acquire);
}

#endif
