/* thc.h: the homomorphic compressed allreduce (THC, NSDI'24) used by gx_allreduce_compressed with
 * a "thc[:bits=B][,rotate]" spec.  Internal to collectives/. */
#ifndef GX_THC_H
#define GX_THC_H

#include <stddef.h>
#include <stdint.h>

#include "gx_status.h"

struct thc;
struct gx_coll;

gx_status_t thc_create(struct thc **out, size_t count, uint32_t n, uint32_t rank, uint32_t payload,
		       const char *spec, uint64_t seed);
void thc_destroy(struct thc *t);
/* op: 0 sum, 1 average (enum gx_redop). */
gx_status_t thc_allreduce(struct thc *t, struct gx_coll *s, float *buf, int op, uint64_t step);

/* Pieces exposed for tests: bits on the wire per element for b-bit codes summed over n ranks, and
 * the in-place orthonormal fast Walsh-Hadamard transform of m (a power of two) floats. */
uint32_t thc_wire_bits(uint32_t bits, uint32_t n);
void thc_fwht(float *x, size_t m);

#endif
