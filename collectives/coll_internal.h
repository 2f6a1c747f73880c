/* coll_internal.h: what the files of collectives/ share (not installed).
 *
 * struct gx_coll is the per-net state of the collective layer: the collective id counter, the stash
 * of packets that belong to a collective this rank has not started yet, and scratch memory that
 * grows to the largest schedule seen and is then reused (no allocation per call in steady state).
 *
 * struct ar_run executes one schedule of steps.  A step sends one element range to one peer and
 * receives one element range from one peer, reducing (ADD/MAX) or copying it.  Ring and rhd are two
 * schedules over the same executor; the element format (float32, packed integer codes, codec blocks)
 * is a small ops table, so compressed paths reuse the same machinery.
 */
#ifndef GX_COLL_INTERNAL_H
#define GX_COLL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "comm_layer.h"
#include "gx_collectives.h"

#define AR_NO_PEER UINT32_MAX
#define GX_COLL_NONE 0u              /* coll_id of no collective (ids start at 1) */

/* What a collective is, as every rank must call it.  A hash of it rides in the aux field of every
 * DATA packet of the collective, and a packet whose hash is not the receiver's makes every rank fail
 * at once naming the calls (instead of dropping the packets and waiting forever). */
enum coll_kind { COLL_ALLREDUCE = 1, COLL_COMPRESSED = 2, COLL_THC_CODES = 3 };
struct coll_fp {
	uint64_t count;           /* elements */
	uint32_t config;          /* what else must agree: the packet payload (plain), or a hash of it with
				   * the codec spec, seed and error feedback (compressed) */
	uint8_t kind;             /* enum coll_kind */
	uint8_t dtype;            /* 0: float32 */
	uint8_t op;               /* enum gx_redop */
	uint8_t algo;             /* enum gx_allreduce_algo, or the compressed path */
};
#define COLL_SPEC_LEN 23      /* codec spec carried in ABORT, for the message */

/* What a collective's ABORT carries in gx_abort.info (reason GX_ABORT_COLL, detail = coll_id). */
enum coll_fail { COLL_FAIL_MISMATCH = 1, COLL_FAIL_STALL = 2, COLL_FAIL_LEFT = 3 };
struct coll_abort_info {
	struct coll_fp fp;        /* the sender's call */
	uint32_t their_hash;      /* mismatch: the fingerprint hash the culprit's packet carried */
	uint32_t waited_ms;       /* stall */
	uint8_t code;             /* enum coll_fail */
	char spec[COLL_SPEC_LEN];
};
_Static_assert(sizeof(struct coll_abort_info) <= sizeof(((struct gx_abort *)0)->info), "fits an ABORT");

struct gx_coll {
	struct gx_net *net;
	uint32_t rank, size;
	uint32_t last_id;         /* id of the last collective begun (0 before the first) */
	struct coll_fp fp;        /* ... and what it is */
	uint32_t fp_hash;
	char spec[COLL_SPEC_LEN]; /* its codec spec, "" for none (messages only) */
	uint64_t stall_ns;        /* gx_net_stall_timeout_ms */
	/* stash: records {struct stash_rec, payload} back to back */
	unsigned char *stash;
	size_t stash_len, stash_cap, stash_limit;
	uint32_t stash_live;      /* records not yet replayed */
	uint32_t replay_id;       /* collective whose stashed packets the next poll replays (0: none) */
	struct gx_coll_counters cnt;
	/* scratch reused by every collective: steps + bitmap, and parked early chunks */
	void *scratch;
	size_t scratch_cap;
	void *tmp;
	size_t tmp_cap;
};

/* Next collective id (identical on every rank), for a collective described by fp and its codec spec
 * (NULL: none); queues the stashed packets of it for replay.  Senders put s->fp_hash in every DATA
 * packet's aux. */
uint32_t coll_begin(struct gx_coll *s, const struct coll_fp *fp, const char *spec);
/* The hash of a codec configuration for coll_fp.config. */
uint32_t coll_config_hash(const char *spec, uint64_t seed, int error_feedback);
/* One turn: replay queued stash entries of coll_id to fn, then one gx_net_poll turn; DATA of coll_id
 * goes to fn, DATA of later collectives into the stash (all of them when coll_id is GX_COLL_NONE).
 * Returns packets handed to fn (>= 0) or a negative status. */
int coll_poll(struct gx_coll *s, uint32_t coll_id, gx_deliver_fn fn, void *arg);
/* Make *p hold at least `need` bytes (keeps the contents).  GX_ERR_NOMEM with a message. */
gx_status_t coll_grow(void **p, size_t *cap, size_t need);
/* Waiting in a collective: call coll_wait_turn after every poll turn with what it delivered and
 * whether this rank sent anything.  Idle, it checks (every millisecond) that every peer is alive
 * (GX_ERR_PEER naming a dead one), that `waiting_for` (AR_NO_PEER: unknown) has not left the job
 * (GX_ERR_MISMATCH: ranks ran different numbers of collectives) and that data came within the stall
 * timeout (GX_ERR_TIMEOUT naming whom it waits for); it spins a while, then backs off. */
struct coll_wait {
	uint64_t start, idle_since, last_check, last_data;
};
gx_status_t coll_wait_turn(struct gx_coll *s, struct coll_wait *w, int got, int progressed, uint32_t waiting_for);
/* A collective's poll failed with st: when the failure is (or came from) a collective mismatch or
 * stall, gather the other ranks' ABORTs for a moment and return the status with a message naming
 * the ranks and their calls; else st unchanged. */
gx_status_t coll_explain(struct gx_coll *s, gx_status_t st);

/* The collective state of a communicator, created on first use; call it on the thread that makes
 * progress (inside gx_comm_run). */
struct gx_coll *coll_comm_state(struct gx_comm *c);

/* ---- schedule executor ---------------------------------------------------------------------- */
enum ar_recv_op { AR_NONE = 0, AR_REDUCE = 1, AR_COPY = 2 };

struct ar_step {
	uint32_t send_peer, recv_peer;    /* AR_NO_PEER: nothing to send / receive in this step */
	size_t send_off, send_cnt;        /* element ranges in the working array */
	size_t recv_off, recv_cnt;
	uint8_t recv_op;                  /* enum ar_recv_op */
	uint8_t owner;                    /* ring: the reduction that completes an owned shard */
	uint8_t direct;                   /* rhd: receives are applied on arrival (else parked) */
	uint32_t send_chunks, recv_chunks, sent, got;
	size_t bit_off;                   /* first bit of this step in the received-chunk bitmap */
	size_t tmp_off;                   /* rhd reduce steps: first parked-chunk slot */
};

struct ar_run;

struct ar_ops {
	/* Fill a payload with n elements starting at src; returns the payload bytes. */
	uint32_t (*pack)(struct ar_run *r, void *dst, const unsigned char *src, size_t n);
	/* dst (n elements) op= payload.  GX_ERR_CORRUPT if len does not fit n. */
	gx_status_t (*reduce)(struct ar_run *r, unsigned char *dst, const void *p, uint32_t len, size_t n);
	gx_status_t (*copy)(struct ar_run *r, unsigned char *dst, const void *p, uint32_t len, size_t n);
	/* Ring: an owned chunk just received its last contribution (average: divide); may be NULL. */
	void (*owner_done)(struct ar_run *r, unsigned char *dst, size_t n);
};

struct ar_run {
	struct gx_coll *s;
	uint32_t coll_id, rank, n;
	unsigned char *buf;               /* working array */
	size_t count, esz;                /* elements, bytes per element */
	uint32_t epp;                     /* elements per packet */
	uint32_t slot;                    /* bytes of one parked chunk (payload max) */
	uint8_t codec;                    /* the packet descriptor's codec byte */
	enum gx_redop op;
	const struct ar_ops *ops;
	void *ops_arg;
	int pipelined;                    /* ring: chunk k of step g waits only for chunk k of step g-1 */
	uint32_t nsteps;
	struct ar_step *steps;
	uint64_t *bits;
	uint32_t cur;                     /* first step not complete (rhd) */
	uint32_t send_g, send_k;
	size_t recv_total, recv_got;
	gx_status_t err;
};

/* Schedules (fill r->steps, r->nsteps from r->rank, r->n, r->count, r->epp). */
gx_status_t ar_schedule_ring(struct ar_run *r);
gx_status_t ar_schedule_rhd(struct ar_run *r, int whole_vector);
/* Shard j of a ring over count elements: [*off, *off + *cnt). */
void ar_shard(size_t count, uint32_t n, uint32_t j, size_t *off, size_t *cnt);
/* Run a prepared schedule to completion (r->s, ids, buffers, ops set; steps from a schedule). */
gx_status_t ar_execute(struct ar_run *r);
/* Allocate r->steps/bits/tmp in the gx_coll scratch for nsteps steps. */
gx_status_t ar_prepare(struct ar_run *r, uint32_t nsteps);

/* float32 element ops (sum/avg/max by r->op). */
extern const struct ar_ops ar_f32_ops;
/* Plain float allreduce over a gx_coll (the implementation behind gx_coll_allreduce). */
gx_status_t ar_float(struct gx_coll *s, float *buf, size_t count, enum gx_redop op,
		     enum gx_allreduce_algo algo);

#endif
