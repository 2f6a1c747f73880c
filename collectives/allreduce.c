/* allreduce.c: ring and recursive halving-doubling schedules and the executor that runs them. */
#include <string.h>
#include <strings.h>

#include "coll_internal.h"
#include "gx_time.h"

/* Crossover of auto (bytes): below, rhd's log2(p) rounds win; above, the ring's bandwidth.  Measured
 * on the 2-core test machine over udp loopback and dpdk (docs/allreduce.md). */
#define AR_RHD_MAX_BYTES (64u << 10)
/* rhd exchanges the whole vector (recursive doubling) up to this size: no halving rounds. */
#define AR_RD_WHOLE_BYTES 8192u

void gx_allreduce_opts_default(struct gx_allreduce_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->algo = GX_ALLREDUCE_AUTO;
}

gx_status_t gx_allreduce_algo_parse(const char *s, enum gx_allreduce_algo *out)
{
	if (s && !strcasecmp(s, "auto"))
		*out = GX_ALLREDUCE_AUTO;
	else if (s && !strcasecmp(s, "ring"))
		*out = GX_ALLREDUCE_RING;
	else if (s && !strcasecmp(s, "rhd"))
		*out = GX_ALLREDUCE_RHD;
	else
		return gx_error(GX_ERR_INVAL, "unknown allreduce algorithm '%s' (use auto, ring or rhd)",
				s ? s : "(null)");
	return GX_OK;
}

const char *gx_allreduce_algo_name(enum gx_allreduce_algo a)
{
	switch (a) {
	case GX_ALLREDUCE_RING: return "ring";
	case GX_ALLREDUCE_RHD: return "rhd";
	default: return "auto";
	}
}

enum gx_allreduce_algo gx_allreduce_choose(size_t bytes, uint32_t nranks, const struct gx_allreduce_opts *o)
{
	size_t lim = (o && o->rhd_max_bytes) ? o->rhd_max_bytes : AR_RHD_MAX_BYTES;

	if (o && o->algo != GX_ALLREDUCE_AUTO)
		return o->algo;
	(void)nranks;                     /* one crossover for every rank count so far */
	/* Two ranks too: rhd's halving waits for all of step 1 before step 2 sends, while the ring
	 * forwards each chunk as it arrives (af_packet, 2 ranks, 4 MiB: ring 8-9 ms, rhd 14.5 ms). */
	if (bytes <= lim)
		return GX_ALLREDUCE_RHD;
	return GX_ALLREDUCE_RING;
}

/* ---- schedules ------------------------------------------------------------------------------ */

void ar_shard(size_t count, uint32_t n, uint32_t j, size_t *off, size_t *cnt)
{
	size_t base = count / n, rem = count % n;

	*off = j * base + (j < rem ? j : rem);
	*cnt = base + (j < rem);
}

static uint32_t chunks_of(size_t cnt, uint32_t epp)
{
	return (uint32_t)((cnt + epp - 1) / epp);
}

static void step_set(struct ar_run *r, uint32_t g, uint32_t sp, size_t so, size_t sc, uint32_t rp,
		     size_t ro, size_t rc, uint8_t op)
{
	struct ar_step *st = &r->steps[g];

	memset(st, 0, sizeof(*st));
	st->send_peer = sc ? sp : AR_NO_PEER;
	st->send_off = so;
	st->send_cnt = sp == AR_NO_PEER ? 0 : sc;
	st->recv_peer = rc ? rp : AR_NO_PEER;
	st->recv_off = ro;
	st->recv_cnt = rp == AR_NO_PEER ? 0 : rc;
	st->recv_op = st->recv_cnt ? op : AR_NONE;
	st->send_chunks = chunks_of(st->send_cnt, r->epp);
	st->recv_chunks = chunks_of(st->recv_cnt, r->epp);
}

/* Ring over n ranks, 2(n-1) steps.  Step g sends shard (r-g) mod n to the right and receives shard
 * (r-g-1) mod n from the left: reduced in steps 0..n-2 (reduce-scatter), copied in steps n-1..2n-3
 * (allgather).  The shard sent in step g is the one received in step g-1, chunk for chunk. */
gx_status_t ar_schedule_ring(struct ar_run *r)
{
	uint32_t n = r->n, me = r->rank;
	uint32_t right = (me + 1) % n, left = (me + n - 1) % n;
	gx_status_t st = ar_prepare(r, n > 1 ? 2 * (n - 1) : 0);

	if (st < 0)
		return st;
	for (uint32_t g = 0; g < r->nsteps; g++) {
		uint32_t sj = (uint32_t)((me + 2ull * n - g) % n), rj = (uint32_t)((me + 2ull * n - g - 1) % n);
		size_t so, sc, ro, rc;
		ar_shard(r->count, n, sj, &so, &sc);
		ar_shard(r->count, n, rj, &ro, &rc);
		step_set(r, g, right, so, sc, left, ro, rc, g < n - 1 ? AR_REDUCE : AR_COPY);
		r->steps[g].owner = g == n - 2;
	}
	return GX_OK;
}

/* Recursive halving-doubling.  p = largest power of two <= n, rem = n - p.  Global steps:
 *   0            fix-up: even ranks r < 2*rem send their vector to r+1, which reduces it
 *   1..L         rounds k = 0..L-1 with the partner differing in bit k of the folded rank: halving
 *                (keep the lower half when the bit is 0) or, for whole_vector, both sides exchange and
 *                reduce everything (recursive doubling)
 *   L+1..2L      halving only: allgather, rounds in reverse order, copying the partner's half
 *   last         fix-up: r+1 sends the result back to the even rank r
 * Step numbers are global so sender and receiver agree on what a packet is. */
gx_status_t ar_schedule_rhd(struct ar_run *r, int whole_vector)
{
	uint32_t n = r->n, me = r->rank, p = 1, L = 0;
	size_t cnt = r->count;

	while (p * 2 <= n) {
		p *= 2;
		L++;
	}
	uint32_t rem = n - p;
	uint32_t nsteps = n > 1 ? (whole_vector ? L + 2 : 2 * L + 2) : 0;
	gx_status_t st = ar_prepare(r, nsteps);
	if (st < 0 || !nsteps)
		return st;
	for (uint32_t g = 0; g < nsteps; g++)
		step_set(r, g, AR_NO_PEER, 0, 0, AR_NO_PEER, 0, 0, AR_NONE);

	int v;                            /* folded rank, -1 for the even ranks of the fix-up */
	if (me < 2 * rem) {
		if (!(me & 1)) {
			step_set(r, 0, me + 1, 0, cnt, AR_NO_PEER, 0, 0, AR_NONE);
			step_set(r, nsteps - 1, AR_NO_PEER, 0, 0, me + 1, 0, cnt, AR_COPY);
			return GX_OK;
		}
		v = (int)(me / 2);
		step_set(r, 0, AR_NO_PEER, 0, 0, me - 1, 0, cnt, AR_REDUCE);
		step_set(r, nsteps - 1, me - 1, 0, cnt, AR_NO_PEER, 0, 0, AR_NONE);
	} else {
		v = (int)(me - rem);
	}
	size_t lo[32], hi[32];
	size_t a = 0, b = cnt;
	for (uint32_t k = 0; k < L; k++) {
		uint32_t pv = (uint32_t)v ^ (1u << k);
		uint32_t peer = pv < rem ? 2 * pv + 1 : pv + rem;
		if (whole_vector) {
			step_set(r, 1 + k, peer, 0, cnt, peer, 0, cnt, AR_REDUCE);
			continue;
		}
		size_t mid = a + (b - a) / 2;
		lo[k] = a;
		hi[k] = b;
		if (!((uint32_t)v & (1u << k))) {
			step_set(r, 1 + k, peer, mid, b - mid, peer, a, mid - a, AR_REDUCE);
			b = mid;
		} else {
			step_set(r, 1 + k, peer, a, mid - a, peer, mid, b - mid, AR_REDUCE);
			a = mid;
		}
	}
	if (whole_vector)
		return GX_OK;
	for (uint32_t j = 0; j < L; j++) {
		uint32_t k = L - 1 - j;
		uint32_t pv = (uint32_t)v ^ (1u << k);
		uint32_t peer = pv < rem ? 2 * pv + 1 : pv + rem;
		size_t mid = lo[k] + (hi[k] - lo[k]) / 2;
		if (!((uint32_t)v & (1u << k)))      /* I hold [lo, mid), the partner [mid, hi) */
			step_set(r, 1 + L + j, peer, lo[k], mid - lo[k], peer, mid, hi[k] - mid, AR_COPY);
		else
			step_set(r, 1 + L + j, peer, mid, hi[k] - mid, peer, lo[k], mid - lo[k], AR_COPY);
	}
	return GX_OK;
}

/* ---- executor ------------------------------------------------------------------------------- */

gx_status_t ar_prepare(struct ar_run *r, uint32_t nsteps)
{
	struct gx_coll *s = r->s;
	size_t steps_bytes = ((size_t)nsteps * sizeof(struct ar_step) + 63) & ~(size_t)63;
	/* Chunks per step are bounded by count/epp + 1 for every schedule. */
	size_t max_chunks = r->count / r->epp + 1;
	size_t bit_words = ((size_t)nsteps * max_chunks + 63) / 64;
	gx_status_t st = coll_grow(&s->scratch, &s->scratch_cap, steps_bytes + bit_words * 8);

	if (st < 0)
		return st;
	r->nsteps = nsteps;
	r->steps = s->scratch;
	r->bits = (uint64_t *)((unsigned char *)s->scratch + steps_bytes);
	return GX_OK;
}

static int bit_get(const struct ar_run *r, size_t i)
{
	return (int)(r->bits[i >> 6] >> (i & 63)) & 1;
}

static void bit_set(struct ar_run *r, size_t i)
{
	r->bits[i >> 6] |= 1ull << (i & 63);
}

/* Lay out bitmap and parking slots once the schedule is known. */
static gx_status_t ar_layout(struct ar_run *r)
{
	size_t bit = 0, slots = 0;

	r->recv_total = r->recv_got = 0;
	for (uint32_t g = 0; g < r->nsteps; g++) {
		struct ar_step *st = &r->steps[g];
		st->bit_off = bit;
		bit += st->recv_chunks;
		r->recv_total += st->recv_chunks;
		if (!r->pipelined && st->recv_op == AR_REDUCE) {
			st->tmp_off = slots;
			slots += st->recv_chunks;
		}
	}
	memset(r->bits, 0, (bit + 63) / 64 * 8);
	if (slots) {
		gx_status_t st = coll_grow(&r->s->tmp, &r->s->tmp_cap, slots * r->slot);
		if (st < 0)
			return st;
	}
	return GX_OK;
}

static void chunk_range(const struct ar_run *r, size_t off, size_t cnt, uint32_t k, size_t *o, size_t *c)
{
	size_t first = (size_t)k * r->epp;
	*o = off + first;
	*c = cnt - first < r->epp ? cnt - first : r->epp;
}

static unsigned char *parked(const struct ar_run *r, const struct ar_step *st, uint32_t k)
{
	return (unsigned char *)r->s->tmp + (st->tmp_off + k) * r->slot;
}

static gx_status_t apply(struct ar_run *r, struct ar_step *st, uint32_t k, const void *p, uint32_t len)
{
	size_t o, c;
	chunk_range(r, st->recv_off, st->recv_cnt, k, &o, &c);
	unsigned char *dst = r->buf + o * r->esz;

	if (st->recv_op == AR_COPY)
		return r->ops->copy(r, dst, p, len, c);
	gx_status_t s = r->ops->reduce(r, dst, p, len, c);
	if (s >= 0 && st->owner && r->ops->owner_done)
		r->ops->owner_done(r, dst, c);
	return s;
}

static gx_status_t ar_deliver(void *arg, uint32_t peer, const struct gx_desc *h, const void *p, uint32_t len)
{
	struct ar_run *r = arg;
	uint32_t g = h->step, k = h->chunk;
	struct ar_step *st = g < r->nsteps ? &r->steps[g] : NULL;

	if (!st || peer != st->recv_peer || k >= st->recv_chunks || h->codec != r->codec ||
	    bit_get(r, st->bit_off + k)) {
		r->s->cnt.malformed++;
		return GX_OK;
	}
	if (st->recv_op == AR_REDUCE && !r->pipelined && !(g == r->cur && st->direct)) {
		/* rhd: an earlier step still changes this range; park the payload until it is done */
		if (len + 4 > r->slot) {
			r->s->cnt.malformed++;
			return GX_OK;
		}
		unsigned char *slot = parked(r, st, k);
		memcpy(slot, &len, 4);
		memcpy(slot + 4, p, len);
	} else {
		gx_status_t s = apply(r, st, k, p, len);
		if (s == GX_ERR_CORRUPT) {
			r->s->cnt.malformed++;
			return GX_OK;
		}
		if (s < 0)
			return s;
	}
	bit_set(r, st->bit_off + k);
	st->got++;
	r->recv_got++;
	return GX_OK;
}

/* rhd: a step's received chunks are applied on arrival ("direct") once nothing this step still
 * sends can be changed by them: at once when the received range and the sent range are disjoint
 * (halving, allgather, the fix-ups), else (recursive doubling exchanges the whole vector) only
 * after the step has sent everything; until then they are parked.  Chunks of later steps are
 * always parked: an earlier step still changes their range. */
static int step_disjoint(const struct ar_step *st)
{
	return !st->send_cnt || !st->recv_cnt || st->recv_off + st->recv_cnt <= st->send_off ||
	       st->send_off + st->send_cnt <= st->recv_off;
}

static gx_status_t make_direct(struct ar_run *r, struct ar_step *st)
{
	st->direct = 1;
	if (st->recv_op != AR_REDUCE)
		return GX_OK;
	for (uint32_t k = 0; k < st->recv_chunks; k++) {
		if (!bit_get(r, st->bit_off + k))
			continue;
		unsigned char *slot = parked(r, st, k);
		uint32_t len;
		memcpy(&len, slot, 4);
		gx_status_t s = apply(r, st, k, slot + 4, len);
		if (s < 0)
			return gx_error(s, "allreduce: parked chunk %u of step %u does not fit (%s)", k, r->cur,
					gx_last_error());
	}
	return GX_OK;
}

/* rhd: advance over the steps that sent and received everything. */
static gx_status_t rhd_advance(struct ar_run *r)
{
	gx_status_t s;

	while (r->cur < r->nsteps) {
		struct ar_step *st = &r->steps[r->cur];
		if (!st->direct && step_disjoint(st) && (s = make_direct(r, st)) < 0)
			return s;
		if (st->sent < st->send_chunks)
			return GX_OK;
		if (!st->direct && (s = make_direct(r, st)) < 0)
			return s;
		if (st->got < st->recv_chunks)
			return GX_OK;
		r->cur++;
	}
	return GX_OK;
}

/* Flags of chunk k of a step: LAST on the step's last chunk, never GX_DESC_ACK_REQ.  Its ACK rides on
 * the next collective's packets or leaves after the net's ACK delay while the receiver polls; a
 * pause of the application between collectives is not counted by the net's retransmit and peer
 * clocks (net.c, discount_pause), so an unacknowledged last packet is neither resent nor taken for a
 * dead peer.  An ACK request cost one extra frame per peer per step (docs/allreduce.md). */
static uint8_t ar_ack_flags(const struct ar_run *r, const struct ar_step *st, uint32_t k)
{
	(void)r;
	return k + 1 == st->send_chunks ? GX_DESC_LAST : 0;
}

static gx_status_t send_some(struct ar_run *r, int *progressed)
{
	struct gx_net *net = r->s->net;

	while (r->send_g < r->nsteps) {
		struct ar_step *st = &r->steps[r->send_g];
		uint32_t k = r->send_k;
		if (k >= st->send_chunks) {
			r->send_g++;
			r->send_k = 0;
			continue;
		}
		if (r->pipelined) {
			if (r->send_g > 0 && !bit_get(r, r->steps[r->send_g - 1].bit_off + k))
				break;
		} else if (r->send_g != r->cur) {
			break;
		}
		gx_status_t s;
		void *p = gx_net_reserve(net, st->send_peer, &s);
		if (!p) {
			if (s == GX_ERR_AGAIN)
				break;
			return s < 0 ? s : gx_error(GX_ERR_IO, "allreduce: gx_net_reserve failed");
		}
		size_t o, c;
		chunk_range(r, st->send_off, st->send_cnt, k, &o, &c);
		uint32_t len = r->ops->pack(r, p, r->buf + o * r->esz, c);
		struct gx_desc d = {
			.coll_id = r->coll_id,
			.chunk = k,
			.step = (uint16_t)r->send_g,
			.codec = r->codec,
			.flags = ar_ack_flags(r, st, k),
			.aux = r->s->fp_hash,
		};
		if ((s = gx_net_commit(net, st->send_peer, &d, len)) < 0)
			return s;
		st->sent++;
		r->send_k++;
		*progressed = 1;
	}
	return GX_OK;
}

static int ar_done(const struct ar_run *r)
{
	if (r->pipelined)
		return r->send_g >= r->nsteps && r->recv_got == r->recv_total;
	return r->cur >= r->nsteps;
}

/* The rank whose data the run waits for: the sender of the first step not fully received. */
static uint32_t ar_waiting_for(const struct ar_run *r)
{
	for (uint32_t g = r->pipelined ? 0 : r->cur; g < r->nsteps; g++)
		if (r->steps[g].recv_peer != AR_NO_PEER && r->steps[g].got < r->steps[g].recv_chunks)
			return r->steps[g].recv_peer;
	return AR_NO_PEER;
}

gx_status_t ar_execute(struct ar_run *r)
{
	struct coll_wait w = { 0 };
	gx_status_t st;

	if (r->nsteps > 0xffff)
		return gx_error(GX_ERR_INVAL, "allreduce: %u steps do not fit the 16-bit step field", r->nsteps);
	if ((st = ar_layout(r)) < 0)
		return st;
	r->cur = 0;
	r->send_g = r->send_k = 0;
	r->err = GX_OK;
	for (;;) {
		int progressed = 0;
		if (!r->pipelined && (st = rhd_advance(r)) < 0)
			return st;
		if ((st = send_some(r, &progressed)) < 0)
			return st;
		if (!r->pipelined && progressed && (st = rhd_advance(r)) < 0)
			return st;
		if (ar_done(r)) {
			gx_net_flush(r->s->net);   /* our last packets leave now, not at the next poll */
			return GX_OK;
		}
		int got = coll_poll(r->s, r->coll_id, ar_deliver, r);
		if (got < 0)
			return coll_explain(r->s, got);
		if ((st = coll_wait_turn(r->s, &w, got, progressed, ar_waiting_for(r))) < 0)
			return st;
	}
}

/* ---- float32 ------------------------------------------------------------------------------ */

static uint32_t f32_pack(struct ar_run *r, void *dst, const unsigned char *src, size_t n)
{
	(void)r;
	memcpy(dst, src, n * 4);
	return (uint32_t)(n * 4);
}

static gx_status_t f32_reduce(struct ar_run *r, unsigned char *dst, const void *p, uint32_t len, size_t n)
{
	float *restrict d = (float *)(void *)dst;
	const unsigned char *restrict q = p;

	if (len != n * 4)
		return GX_ERR_CORRUPT;
	if (r->op == GX_OP_MAX) {
		for (size_t i = 0; i < n; i++) {
			float v;
			memcpy(&v, q + 4 * i, 4);
			d[i] = v > d[i] ? v : d[i];
		}
		return GX_OK;
	}
	for (size_t i = 0; i < n; i++) {
		float v;
		memcpy(&v, q + 4 * i, 4);
		d[i] = d[i] + v;
	}
	return GX_OK;
}

static gx_status_t f32_copy(struct ar_run *r, unsigned char *dst, const void *p, uint32_t len, size_t n)
{
	(void)r;
	if (len != n * 4)
		return GX_ERR_CORRUPT;
	memcpy(dst, p, len);
	return GX_OK;
}

static void f32_owner_done(struct ar_run *r, unsigned char *dst, size_t n)
{
	float *d = (float *)(void *)dst;
	float div = (float)r->n;

	if (r->op != GX_OP_AVG)
		return;
	for (size_t i = 0; i < n; i++)
		d[i] = d[i] / div;
}

const struct ar_ops ar_f32_ops = {
	.pack = f32_pack,
	.reduce = f32_reduce,
	.copy = f32_copy,
	.owner_done = f32_owner_done,
};

gx_status_t ar_float(struct gx_coll *s, float *buf, size_t count, enum gx_redop op,
		     enum gx_allreduce_algo algo)
{
	struct ar_run r;
	gx_status_t st;
	uint32_t maxp = gx_net_max_payload(s->net);

	if (op != GX_OP_SUM && op != GX_OP_AVG && op != GX_OP_MAX)
		return gx_error(GX_ERR_INVAL, "allreduce: unknown reduction %d (GX_OP_SUM, GX_OP_AVG, GX_OP_MAX)", op);
	if (count && !buf)
		return gx_error(GX_ERR_INVAL, "allreduce: buf is NULL for %zu elements", count);
	if (maxp < 4)
		return gx_error(GX_ERR_INVAL, "allreduce: transport payload of %u bytes is too small", maxp);
	memset(&r, 0, sizeof(r));
	r.s = s;
	r.rank = s->rank;
	r.n = s->size;
	r.buf = (unsigned char *)buf;
	r.count = count;
	r.esz = 4;
	r.epp = maxp / 4;
	r.slot = maxp + 4;
	r.codec = 0;
	r.op = op;
	r.ops = &ar_f32_ops;
	if (algo == GX_ALLREDUCE_AUTO)
		algo = gx_allreduce_choose(count * 4, r.n, NULL);
	struct coll_fp fp = { .count = count, .config = maxp, .kind = COLL_ALLREDUCE, .op = (uint8_t)op,
			      .algo = (uint8_t)algo };
	r.coll_id = coll_begin(s, &fp, NULL);
	if (r.n == 1 || count == 0)
		return GX_OK;
	if (algo == GX_ALLREDUCE_RING) {
		r.pipelined = 1;
		st = ar_schedule_ring(&r);
	} else {
		uint32_t p = 1;
		while (p * 2 <= r.n)
			p *= 2;
		st = ar_schedule_rhd(&r, count * 4 <= AR_RD_WHOLE_BYTES || count < p);
	}
	if (st < 0)
		return st;
	if ((st = ar_execute(&r)) < 0)
		return st;
	if (algo == GX_ALLREDUCE_RHD && op == GX_OP_AVG) {
		float div = (float)r.n;
		for (size_t i = 0; i < count; i++)
			buf[i] = buf[i] / div;
	}
	return GX_OK;
}

gx_status_t gx_coll_allreduce(struct gx_coll *s, float *buf, size_t count, enum gx_redop op,
			      const struct gx_allreduce_opts *opts)
{
	enum gx_allreduce_algo algo = opts ? opts->algo : GX_ALLREDUCE_AUTO;

	if (!s)
		return gx_error(GX_ERR_INVAL, "allreduce: collective state is NULL (gx_coll_create)");
	if (algo == GX_ALLREDUCE_AUTO)
		algo = gx_allreduce_choose(count * 4, s->size, opts);
	if (algo != GX_ALLREDUCE_RING && algo != GX_ALLREDUCE_RHD)
		return gx_error(GX_ERR_INVAL, "allreduce: unknown algorithm %d (ring, rhd or auto)", algo);
	return ar_float(s, buf, count, op, algo);
}
