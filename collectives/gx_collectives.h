/* gx_collectives.h: allreduce of float32 gradients over a communicator, plain, compressed and
 * homomorphic.  docs/allreduce.md has the algorithms, the wire framing and the measurements.
 *
 * Algorithms (enum gx_allreduce_algo):
 *  - ring: reduce-scatter then allgather around the ring, pipelined packet by packet (a chunk is
 *    forwarded as soon as it arrived), window-limited by the transport; 2(n-1) steps, bandwidth-optimal.
 *  - rhd: recursive halving (reduce-scatter) then recursive doubling (allgather), or plain recursive
 *    doubling of the whole vector when it is small; ranks beyond the largest power of two p first fold
 *    their vector into a partner (the standard fix-up) and get the result back at the end.  log2(p)
 *    rounds: latency-optimal.  Two ranks and a one-packet vector: one packet each way.
 *  - auto: rhd up to a size threshold (measured, docs/allreduce.md), ring above it.
 *
 * Bit-identical results: every element is reduced by exactly one rank (its shard owner) in an order
 * fixed by the algorithm and the rank count alone, then copied to every other rank; float addition is
 * commutative, so who is "left" in a + b does not matter.  Ring: shard j is summed
 * x_j + x_{j+1} + ... + x_{j-1} (left to right).  rhd: the binary tree over the folded ranks,
 * pairs differing in bit 0 first, then bit 1, ...; both rhd variants build the same tree.
 *
 * Threading: gx_allreduce() runs where the communicator makes progress (gx_comm_run); the gx_coll_*
 * calls below run on the caller's thread over a gx_net the caller owns (no engine, no bootstrap).
 */
#ifndef GX_COLLECTIVES_H
#define GX_COLLECTIVES_H

#include <stddef.h>
#include <stdint.h>

#include "gx_api.h"
#include "gx_net.h"
#include "gx_status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct gx_comm;
struct gx_coll;

enum gx_redop {
	GX_OP_SUM = 0,
	GX_OP_AVG = 1,            /* sum / nranks, divided once by the shard owner (or at the end) */
	GX_OP_MAX = 2,            /* used for agreeing on scales (homomorphic path) */
};

enum gx_allreduce_algo {
	GX_ALLREDUCE_AUTO = 0,
	GX_ALLREDUCE_RING = 1,
	GX_ALLREDUCE_RHD = 2,
};

struct gx_allreduce_opts {
	enum gx_allreduce_algo algo;
	size_t rhd_max_bytes;     /* auto: rhd up to this many bytes, ring above (0: built-in crossover) */
};

GX_API void gx_allreduce_opts_default(struct gx_allreduce_opts *o);
/* "auto", "ring", "rhd" <-> enum; parse returns GX_ERR_INVAL naming the valid choices. */
GX_API gx_status_t gx_allreduce_algo_parse(const char *s, enum gx_allreduce_algo *out);
GX_API const char *gx_allreduce_algo_name(enum gx_allreduce_algo a);
/* The algorithm auto picks for this size and rank count. */
GX_API enum gx_allreduce_algo gx_allreduce_choose(size_t bytes, uint32_t nranks, const struct gx_allreduce_opts *o);

/* In-place allreduce of buf[0..count) on every rank of c (same count, op and algorithm everywhere).
 * opts may be NULL.  A rank that dies or stalls is named in the error (GX_ERR_PEER) within the
 * transport's peer timeout. */
GX_API gx_status_t gx_allreduce(struct gx_comm *c, float *buf, size_t count, enum gx_redop op,
			 const struct gx_allreduce_opts *opts);

/* ---- compressed allreduce (persistent per buffer) -------------------------------------------
 * Any codec (compress/gx_codec.h spec string).  Summable codecs (fp16, bf16, randk:...,shared-seed,
 * none) run the ring over encoded blocks and add them without decoding.  Every other codec runs the
 * sharded two-sided scheme (DoubleSqueeze / 1-bit Adam, docs/algorithms.md §2c C1/C2): each rank encodes
 * shard j of its buffer with worker error feedback and sends it to shard owner j, the owner decodes
 * the n contributions in rank order, adds its server residual, re-encodes with server error feedback
 * and sends the result to all; every rank decodes the same blocks, so all end bit-identical.
 * "thc[:bits=B][,rotate]" selects the homomorphic path: integer codes on a per-block scale all ranks
 * agree on (a small max-allreduce), optionally after a seeded randomized Hadamard rotation; the ring
 * adds the integer codes hop by hop.  See docs/allreduce.md for widths and wire formats. */
struct gx_allreduce_handle;

struct gx_compressed_opts {
	uint64_t seed;            /* stochastic codecs and THC rounding/rotation (same on every rank) */
	int error_feedback;       /* 1 (default): worker + server residuals; 0: none */
};
GX_API void gx_compressed_opts_default(struct gx_compressed_opts *o);

/* A handle for buffers of `count` floats compressed with `codec_spec`; holds the residuals
 * (worker: count floats; server: the owned shard) across calls.  Collective only in use. */
GX_API gx_status_t gx_allreduce_compressed_create(struct gx_comm *c, size_t count, const char *codec_spec,
					   const struct gx_compressed_opts *o,
					   struct gx_allreduce_handle **out);
GX_API gx_status_t gx_allreduce_compressed(struct gx_allreduce_handle *h, float *buf, enum gx_redop op);
GX_API void gx_allreduce_compressed_destroy(struct gx_allreduce_handle *h);

/* Residuals after the last call (for checks and checkpointing): the worker residual of all count
 * elements (NULL when not kept), and the server residual of the owned element range [*off, *off+*n). */
GX_API const float *gx_allreduce_worker_residual(const struct gx_allreduce_handle *h);
GX_API const float *gx_allreduce_server_residual(const struct gx_allreduce_handle *h, size_t *off, size_t *n);
/* Which path the handle runs: "sharded-ef", "ring-summable", "thc". */
GX_API const char *gx_allreduce_compressed_path(const struct gx_allreduce_handle *h);

/* ---- the same over a bare gx_net, on the caller's thread ----------------------------------- */
GX_API gx_status_t gx_coll_create(struct gx_net *net, struct gx_coll **out);
GX_API void gx_coll_destroy(struct gx_coll *s);
GX_API gx_status_t gx_coll_allreduce(struct gx_coll *s, float *buf, size_t count, enum gx_redop op,
			      const struct gx_allreduce_opts *opts);
GX_API gx_status_t gx_coll_compressed_create(struct gx_coll *s, size_t count, const char *codec_spec,
				      const struct gx_compressed_opts *o, struct gx_allreduce_handle **out);

/* Counters of the collective layer (per gx_coll). */
struct gx_coll_counters {
	uint64_t stashed;         /* packets of a later collective kept until it started */
	uint64_t stale;           /* packets of a finished or failed collective, dropped */
	uint64_t malformed;       /* packets whose step/chunk/length did not fit the schedule, or of a collective
				   * further ahead than a peer can be, dropped */
};
GX_API void gx_coll_get_counters(const struct gx_coll *s, struct gx_coll_counters *c);
/* The same for a communicator's collectives (zeros before its first one). */
GX_API void gx_comm_coll_counters(struct gx_comm *c, struct gx_coll_counters *out);

#ifdef __cplusplus
}
#endif

#endif
