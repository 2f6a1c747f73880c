/* allreduce_compressed.c: allreduce through a codec, with error feedback.
 *
 * sharded-ef (any codec; docs/algorithms.md §2c C1 + C2, DoubleSqueeze / 1-bit Adam):
 *   step 0  every rank encodes shard j of g + e_w (worker residual of shard j) and sends it to
 *           shard owner j (its own shard stays local);
 *           the owner decodes the n contributions in rank order 0..n-1 into its shard, divides by n
 *           for the average, encodes that + e_s (server residual) and keeps e_s = v - C(v);
 *   step 1  the owner sends its encoded shard to everyone; every rank (the owner too) decodes those
 *           same blocks, so every rank ends bit-identical.
 * ring-summable (fp16, bf16, none, randk shared-seed): the buffer (+ worker residual) is encoded once
 *   into blocks of one packet each, the ring adds blocks in the compressed domain hop by hop
 *   (gx_codec_block_add) and circulates the owners' sums; every rank decodes the same blocks.
 * thc: see thc.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_internal.h"
#include "gx_codec.h"
#include "gx_comm.h"
#include "gx_time.h"
#include "thc.h"

enum path { PATH_SHARDED = 0, PATH_RING = 1, PATH_THC = 2 };

struct gx_allreduce_handle {
	struct gx_comm *comm;             /* NULL when made over a bare gx_coll */
	struct gx_coll *s;
	size_t count;
	uint32_t n, rank, payload;
	enum path path;
	struct gx_compressed_opts o;
	char spec[COLL_SPEC_LEN];         /* for the fingerprint's messages */
	uint32_t config;                  /* coll_fp.config: spec, seed, error feedback */
	struct gx_codec *codec;
	uint64_t step;
	/* sharded-ef */
	struct gx_ef **wef;               /* per shard: worker residual */
	struct gx_ef *sef;                /* owned shard: server residual */
	unsigned char *send;              /* encoded shards, back to back */
	size_t send_total;
	size_t *send_off, *send_len;      /* per shard */
	size_t *nblocks;                  /* blocks of each shard's encoding */
	uint8_t *encoded;                 /* per shard, this call */
	uint32_t *from;                   /* per rank, step 0 blocks received this call */
	unsigned char *recv;              /* (source, block) slots of `payload` bytes for the owned shard */
	uint32_t *recv_len;
	uint64_t *recv_bits;
	unsigned char *srv;               /* the owner's encoded result */
	size_t srv_len, srv_cap;
	float *wres;                      /* assembled worker residual (accessor) */
	/* ring-summable */
	struct gx_ef *ef;
	unsigned char *enc;               /* encode output, then one slot of `payload` bytes per block */
	size_t enc_cap, nb;
	/* thc */
	struct thc *thc;
};

void gx_compressed_opts_default(struct gx_compressed_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->seed = 0x6778;
	o->error_feedback = 1;
}

/* On the progress thread: the comm's collective state (created on first use). */
static struct gx_coll *handle_coll(struct gx_allreduce_handle *h)
{
	if (!h->s && h->comm)
		h->s = coll_comm_state(h->comm);
	return h->s;
}

void gx_allreduce_compressed_destroy(struct gx_allreduce_handle *h)
{
	if (!h)
		return;
	if (h->wef)
		for (uint32_t j = 0; j < h->n; j++)
			gx_ef_destroy(h->wef[j]);
	free(h->wef);
	gx_ef_destroy(h->sef);
	gx_ef_destroy(h->ef);
	free(h->send);
	free(h->send_off);
	free(h->send_len);
	free(h->nblocks);
	free(h->encoded);
	free(h->from);
	free(h->recv);
	free(h->recv_len);
	free(h->recv_bits);
	free(h->srv);
	free(h->wres);
	free(h->enc);
	thc_destroy(h->thc);
	gx_codec_destroy(h->codec);
	free(h);
}

static gx_status_t create(struct gx_allreduce_handle *h, const char *spec)
{
	gx_status_t st;
	size_t off, cnt, bytes, nb;

	if (!strncmp(spec, "thc", 3) && (spec[3] == '\0' || spec[3] == ':')) {
		h->path = PATH_THC;
		return thc_create(&h->thc, h->count, h->n, h->rank, h->payload, spec, h->o.seed);
	}
	if ((st = gx_codec_create(spec, &h->codec)) < 0)
		return st;
	unsigned props = gx_codec_props(h->codec);
	h->path = (props & GX_CODEC_SUMMABLE) ? PATH_RING : PATH_SHARDED;
	if (!gx_codec_block_elems(h->codec, h->payload))
		return gx_error(GX_ERR_INVAL, "compressed allreduce: codec %s cannot fit a block in a %u-byte "
				"payload (raise --mtu)", gx_codec_name(h->codec), h->payload);
	if (h->path == PATH_RING) {
		if ((st = gx_codec_encoded_size(h->codec, h->count, h->payload, &bytes, &nb)) < 0)
			return st;
		h->nb = nb;
		h->enc_cap = bytes > nb * h->payload ? bytes : nb * h->payload;
		if (!(h->enc = malloc(h->enc_cap ? h->enc_cap : 1)) || !(h->wres = malloc(8)))
			return gx_error(GX_ERR_NOMEM, "compressed allreduce: out of memory");
		if (h->o.error_feedback && (st = gx_ef_create(h->codec, h->count, &h->ef)) < 0)
			return st;
		return GX_OK;
	}
	uint32_t n = h->n;
	h->wef = calloc(n, sizeof(*h->wef));
	h->send_off = calloc(n, sizeof(size_t));
	h->send_len = calloc(n, sizeof(size_t));
	h->nblocks = calloc(n, sizeof(size_t));
	h->encoded = calloc(n, 1);
	h->from = calloc(n, sizeof(uint32_t));
	h->wres = malloc(sizeof(float) * (h->count ? h->count : 1));
	if (!h->wef || !h->send_off || !h->send_len || !h->nblocks || !h->wres || !h->encoded || !h->from)
		return gx_error(GX_ERR_NOMEM, "compressed allreduce: out of memory");
	size_t total = 0;
	for (uint32_t j = 0; j < n; j++) {
		ar_shard(h->count, n, j, &off, &cnt);
		if ((st = gx_codec_encoded_size(h->codec, cnt, h->payload, &bytes, &nb)) < 0)
			return st;
		h->send_off[j] = total;
		h->nblocks[j] = nb;
		total += bytes;
		if (h->o.error_feedback && (st = gx_ef_create(h->codec, cnt, &h->wef[j])) < 0)
			return st;
	}
	h->send_total = total;
	ar_shard(h->count, n, h->rank, &off, &cnt);
	size_t mine = h->nblocks[h->rank];
	h->send = malloc(total ? total : 1);
	h->recv = malloc((size_t)n * mine * h->payload + 1);
	h->recv_len = calloc((size_t)n * mine + 1, sizeof(uint32_t));
	h->recv_bits = calloc(((size_t)n * mine + 64) / 64, 8);
	gx_codec_encoded_size(h->codec, cnt, h->payload, &h->srv_cap, &nb);
	h->srv = malloc(h->srv_cap + 1);
	if (!h->send || !h->recv || !h->recv_len || !h->recv_bits || !h->srv)
		return gx_error(GX_ERR_NOMEM, "compressed allreduce: out of memory");
	if (h->o.error_feedback && (st = gx_ef_create(h->codec, cnt, &h->sef)) < 0)
		return st;
	return GX_OK;
}

static gx_status_t handle_new(struct gx_comm *comm, struct gx_coll *s, struct gx_net *net, size_t count,
			      const char *spec, const struct gx_compressed_opts *o,
			      struct gx_allreduce_handle **out)
{
	*out = NULL;
	if (!spec || !net)
		return gx_error(GX_ERR_INVAL, "compressed allreduce: codec spec and communicator are required");
	struct gx_allreduce_handle *h = calloc(1, sizeof(*h));
	if (!h)
		return gx_error(GX_ERR_NOMEM, "compressed allreduce: out of memory");
	h->comm = comm;
	h->s = s;
	h->count = count;
	h->n = gx_net_nranks(net);
	h->rank = gx_net_rank(net);
	h->payload = gx_net_max_payload(net);
	if (o)
		h->o = *o;
	else
		gx_compressed_opts_default(&h->o);
	snprintf(h->spec, sizeof(h->spec), "%s", spec);
	h->config = coll_config_hash(spec, h->o.seed, h->o.error_feedback) ^ h->payload;
	gx_status_t st = create(h, spec);
	if (st < 0) {
		gx_allreduce_compressed_destroy(h);
		return st;
	}
	*out = h;
	return GX_OK;
}

gx_status_t gx_allreduce_compressed_create(struct gx_comm *c, size_t count, const char *codec_spec,
					   const struct gx_compressed_opts *o,
					   struct gx_allreduce_handle **out)
{
	if (!c)
		return gx_error(GX_ERR_INVAL, "compressed allreduce: communicator is NULL (gx_comm_create)");
	return handle_new(c, NULL, gx_comm_net(c), count, codec_spec, o, out);
}

gx_status_t gx_coll_compressed_create(struct gx_coll *s, size_t count, const char *codec_spec,
				      const struct gx_compressed_opts *o, struct gx_allreduce_handle **out)
{
	if (!s)
		return gx_error(GX_ERR_INVAL, "compressed allreduce: collective state is NULL (gx_coll_create)");
	return handle_new(NULL, s, s->net, count, codec_spec, o, out);
}

const char *gx_allreduce_compressed_path(const struct gx_allreduce_handle *h)
{
	static const char *names[] = { "sharded-ef", "ring-summable", "thc" };
	return names[h->path];
}

const float *gx_allreduce_worker_residual(const struct gx_allreduce_handle *h)
{
	if (h->path == PATH_RING)
		return h->ef ? gx_ef_residual(h->ef) : NULL;
	if (h->path == PATH_SHARDED && h->o.error_feedback) {
		for (uint32_t j = 0; j < h->n; j++) {
			size_t off, cnt;
			ar_shard(h->count, h->n, j, &off, &cnt);
			memcpy(h->wres + off, gx_ef_residual(h->wef[j]), cnt * sizeof(float));
		}
		return h->wres;
	}
	return NULL;
}

const float *gx_allreduce_server_residual(const struct gx_allreduce_handle *h, size_t *off, size_t *n)
{
	ar_shard(h->count, h->n, h->rank, off, n);
	return h->path == PATH_SHARDED && h->sef ? gx_ef_residual(h->sef) : NULL;
}

/* ---- a send list and a wait loop shared by the sharded steps -------------------------------- */

struct sh_run {
	struct gx_allreduce_handle *h;
	float *buf;
	uint32_t coll_id;
	uint32_t got0, want0;             /* step 0 blocks received for the owned shard */
	uint32_t got1, want1;             /* step 1 blocks received from the other owners */
	uint8_t *encoded;                 /* per shard: encoded in this call (h->encoded) */
	uint32_t *from;                   /* per rank: step 0 blocks received from it (h->from) */
	uint32_t applied;                 /* contributions added to the owned shard, in rank order */
	gx_status_t err;
};

/* Walk the blocks of an encoding and send block k of it to `peer` (one packet per block). */
static gx_status_t send_blocks(struct gx_allreduce_handle *h, struct sh_run *R, uint32_t peer, uint16_t step,
			       const unsigned char *enc, size_t len, size_t *cursor, uint32_t *k, int *blocked)
{
	struct gx_net *net = h->s->net;
	struct gx_codec_block b;
	gx_status_t st;

	while (*cursor < len) {
		if ((st = gx_codec_block_info(enc + *cursor, len - *cursor, &b)) < 0)
			return st;
		void *p = gx_net_reserve(net, peer, &st);
		if (!p) {
			if (st == GX_ERR_AGAIN) {
				*blocked = 1;
				return GX_OK;
			}
			return st;
		}
		memcpy(p, enc + *cursor, b.bytes);
		struct gx_desc d = { .coll_id = R->coll_id, .chunk = *k, .step = step,
					.codec = (uint8_t)gx_codec_id(h->codec), .flags = 0, .aux = h->s->fp_hash };
		if (*cursor + b.bytes >= len)
			d.flags = GX_DESC_LAST;    /* no ACK_REQ, as ar_ack_flags */
		if ((st = gx_net_commit(net, peer, &d, b.bytes)) < 0)
			return st;
		*cursor += b.bytes;
		(*k)++;
	}
	return GX_OK;
}

static gx_status_t sh_deliver(void *arg, uint32_t peer, const struct gx_desc *h_, const void *p, uint32_t len)
{
	struct sh_run *R = arg;
	struct gx_allreduce_handle *h = R->h;
	size_t mine = h->nblocks[h->rank];

	if (h_->codec != gx_codec_id(h->codec) || peer >= h->n || peer == h->rank || len > h->payload)
		goto bad;
	if (h_->step == 0) {
		size_t slot = (size_t)peer * mine + h_->chunk;
		if (h_->chunk >= mine || (h->recv_bits[slot / 64] >> (slot % 64) & 1))
			goto bad;
		memcpy(h->recv + slot * h->payload, p, len);
		h->recv_len[slot] = len;
		h->recv_bits[slot / 64] |= 1ull << (slot % 64);
		R->got0++;
		R->from[peer]++;
		return GX_OK;
	}
	if (h_->step == 1) {
		size_t off, cnt;
		struct gx_codec_block b;
		ar_shard(h->count, h->n, peer, &off, &cnt);
		/* the block must lie in the sender's shard: a wrong one cannot overwrite another shard */
		if (gx_codec_block_info(p, len, &b) < 0 || b.offset < off || b.offset + b.count > off + cnt ||
		    h_->chunk >= h->nblocks[peer])
			goto bad;
		gx_status_t st = gx_codec_decode(h->codec, p, len, R->buf, h->count, NULL);
		if (st < 0)
			goto bad;
		R->got1++;
		return GX_OK;
	}
bad:
	h->s->cnt.malformed++;
	return GX_OK;
}

/* Encode shard j of buf (worker side, with its error feedback) into its place in h->send, once per
 * call: lazily, just before it is first needed, so encoding runs while earlier shards are on the
 * wire. */
static gx_status_t encode_shard(struct gx_allreduce_handle *h, struct sh_run *R, uint32_t j)
{
	struct gx_codec_ctx wctx = { h->o.seed, 2 * h->step, h->rank };
	size_t off, cnt, len;
	gx_status_t st;

	if (R->encoded[j])
		return GX_OK;
	ar_shard(h->count, h->n, j, &off, &cnt);
	size_t cap = (j + 1 < h->n ? h->send_off[j + 1] : h->send_total) - h->send_off[j];
	if (h->wef[j])
		st = gx_ef_encode(h->wef[j], &wctx, R->buf + off, off, h->payload, h->send + h->send_off[j], cap,
				  &len, NULL);
	else
		st = gx_codec_encode(h->codec, &wctx, R->buf + off, cnt, off, h->payload, h->send + h->send_off[j],
				     cap, &len);
	if (st < 0)
		return st;
	h->send_len[j] = len;
	R->encoded[j] = 1;
	return GX_OK;
}

/* Owner: add the contributions to the owned shard in rank order (the order fixes the float sums, so
 * every run gives the same bits), each as soon as it and every earlier one are complete: decoding
 * runs while later contributions are still arriving.  The first one is decoded, the rest added. */
static gx_status_t apply_ready(struct gx_allreduce_handle *h, struct sh_run *R)
{
	size_t mine = h->nblocks[h->rank];
	gx_status_t st = GX_OK;

	while (R->applied < h->n) {
		uint32_t i = R->applied;
		if (i == h->rank) {
			if (!R->encoded[i])
				return GX_OK;
			st = gx_codec_decode_all(h->codec, h->send + h->send_off[i], h->send_len[i], R->buf, h->count, i > 0);
		} else {
			if (R->from[i] < mine)
				return GX_OK;
			for (size_t b = 0; b < mine && st >= 0; b++) {
				size_t slot = (size_t)i * mine + b;
				const unsigned char *blk = h->recv + slot * h->payload;
				st = i == 0 ? gx_codec_decode(h->codec, blk, h->recv_len[slot], R->buf, h->count, NULL)
					    : gx_codec_decacc(h->codec, blk, h->recv_len[slot], R->buf, h->count, NULL);
			}
		}
		if (st < 0)
			return gx_error(st, "compressed allreduce: shard of rank %u does not decode: %s", i, gx_last_error());
		R->applied++;
	}
	return GX_OK;
}

/* One phase of the sharded exchange: send every other rank j, starting with the right neighbour so
 * that owners are not all hit at once, what this phase owes it (phase 0: the encoding of shard j,
 * made just before; phase 1: this owner's encoding), while receiving until *got reaches want.
 * Phase 0 also encodes this rank's own shard after the first one sent, and adds contributions to
 * the owned shard as they complete. */
static gx_status_t exchange_phase(struct gx_allreduce_handle *h, struct sh_run *R, uint16_t step,
				  const uint32_t *got, uint32_t want, struct coll_wait *w)
{
	uint32_t n = h->n, me = h->rank, dst = 1, k = 0;
	size_t cursor = 0;
	gx_status_t st;

	while (dst < n || *got < want || (step == 0 && R->applied < n)) {
		int progressed = 0, blocked = 0;
		while (dst < n && !blocked) {
			uint32_t j = (me + dst) % n, k0 = k;
			if (step == 0 && (st = encode_shard(h, R, j)) < 0)
				return st;
			const unsigned char *enc = step == 0 ? h->send + h->send_off[j] : h->srv;
			size_t len = step == 0 ? h->send_len[j] : h->srv_len;
			if ((st = send_blocks(h, R, j, step, enc, len, &cursor, &k, &blocked)) < 0)
				return st;
			progressed |= k != k0;
			if (!blocked) {
				dst++;
				cursor = 0;
				k = 0;
			}
			if (step == 0 && (blocked || dst == 2 || dst >= n) && !R->encoded[me]) {
				if ((st = encode_shard(h, R, me)) < 0)   /* while the first shard is on the wire */
					return st;
				progressed = 1;
			}
		}
		if (step == 0) {
			uint32_t before = R->applied;
			if ((st = apply_ready(h, R)) < 0)
				return st;
			progressed |= R->applied != before;
		}
		if (dst >= n && *got >= want && (step != 0 || R->applied >= n))
			break;
		int n_got = coll_poll(h->s, R->coll_id, sh_deliver, R);
		if (n_got < 0)
			return coll_explain(h->s, n_got);
		if ((st = coll_wait_turn(h->s, w, n_got, progressed, AR_NO_PEER)) < 0)
			return st;
	}
	return GX_OK;
}

static gx_status_t run_sharded(struct gx_allreduce_handle *h, float *buf, enum gx_redop op)
{
	struct gx_coll *s = h->s;
	uint32_t n = h->n, me = h->rank;
	struct gx_codec_ctx sctx = { h->o.seed, 2 * h->step + 1, me };
	struct sh_run R = { .h = h, .buf = buf, .encoded = h->encoded, .from = h->from };
	size_t off, cnt;
	gx_status_t st;

	/* 1. nothing is encoded yet: each shard is, just before it is sent (exchange_phase) */
	memset(h->encoded, 0, n);
	memset(h->from, 0, n * sizeof(*h->from));
	R.coll_id = coll_begin(s, &(struct coll_fp){ .count = h->count, .config = h->config,
			.kind = COLL_COMPRESSED, .op = (uint8_t)op, .algo = (uint8_t)h->path }, h->spec);
	size_t mine = h->nblocks[me];
	memset(h->recv_bits, 0, ((size_t)n * mine + 64) / 64 * 8);
	R.want0 = (uint32_t)((n - 1) * mine);
	R.want1 = 0;
	for (uint32_t j = 0; j < n; j++)
		if (j != me)
			R.want1 += (uint32_t)h->nblocks[j];

	/* 2. send shard j to owner j, starting with the right neighbour so owners are not hit at once;
	 * 3. owner: the contributions, in rank order, as they complete */
	struct coll_wait w = { 0 };
	if (n == 1) {
		if ((st = encode_shard(h, &R, me)) < 0 || (st = apply_ready(h, &R)) < 0)
			return st;
	} else if ((st = exchange_phase(h, &R, 0, &R.got0, R.want0, &w)) < 0) {
		return st;
	}

	/* average, server encode with error feedback */
	ar_shard(h->count, n, me, &off, &cnt);
	if (op == GX_OP_AVG)
		for (size_t e = off; e < off + cnt; e++)
			buf[e] = buf[e] / (float)n;
	if (h->sef)
		st = gx_ef_encode(h->sef, &sctx, buf + off, off, h->payload, h->srv, h->srv_cap, &h->srv_len, NULL);
	else
		st = gx_codec_encode(h->codec, &sctx, buf + off, cnt, off, h->payload, h->srv, h->srv_cap, &h->srv_len);
	if (st < 0)
		return st;
	/* every rank, the owner too, ends with decode(C(v)) */
	if ((st = gx_codec_decode_all(h->codec, h->srv, h->srv_len, buf, h->count, 0)) < 0)
		return st;

	/* 4. allgather of the owners' encodings */
	if ((st = exchange_phase(h, &R, 1, &R.got1, R.want1, &w)) < 0)
		return st;
	gx_net_flush(s->net);
	return GX_OK;
}

/* ---- ring over codec blocks ----------------------------------------------------------------- */

static uint32_t blk_pack(struct ar_run *r, void *dst, const unsigned char *src, size_t n)
{
	struct gx_codec_block b;
	(void)n;
	if (gx_codec_block_info(src, r->esz, &b) < 0)
		return 0;
	memcpy(dst, src, b.bytes);
	return b.bytes;
}

static gx_status_t blk_reduce(struct ar_run *r, unsigned char *dst, const void *p, uint32_t len, size_t n)
{
	struct gx_codec_block b;
	(void)n;
	if (gx_codec_block_info(dst, r->esz, &b) < 0)
		return GX_ERR_CORRUPT;
	gx_status_t st = gx_codec_block_add(dst, b.bytes, p, len);
	return st == GX_ERR_NONFINITE ? gx_error(st, "compressed allreduce: a sum overflowed the codec's range")
				      : (st < 0 ? GX_ERR_CORRUPT : GX_OK);
}

static gx_status_t blk_copy(struct ar_run *r, unsigned char *dst, const void *p, uint32_t len, size_t n)
{
	struct gx_codec_block a, b;
	(void)n;
	if (len > r->esz || gx_codec_block_info(dst, r->esz, &a) < 0 || gx_codec_block_info(p, len, &b) < 0 ||
	    a.offset != b.offset || a.count != b.count || b.bytes != len)
		return GX_ERR_CORRUPT;
	memcpy(dst, p, len);
	return GX_OK;
}

/* A block's final sum is known (owned here, or copied in the allgather): decode it into the float
 * buffer now, while later blocks are still on the wire. */
struct ring_out {
	struct gx_codec *codec;
	float *buf;
	size_t count;
	gx_status_t err;
};

static void blk_decode(struct ar_run *r, const unsigned char *blk)
{
	struct ring_out *o = r->ops_arg;
	gx_status_t st = gx_codec_decode(o->codec, blk, (uint32_t)r->esz, o->buf, o->count, NULL);
	if (st < 0 && o->err >= 0)
		o->err = gx_error(st, "compressed allreduce: a summed block does not decode: %s", gx_last_error());
}

static gx_status_t blk_copy_decode(struct ar_run *r, unsigned char *dst, const void *p, uint32_t len, size_t n)
{
	gx_status_t st = blk_copy(r, dst, p, len, n);
	if (st >= 0)
		blk_decode(r, dst);
	return st;
}

static void blk_owner_done(struct ar_run *r, unsigned char *dst, size_t n)
{
	(void)n;
	blk_decode(r, dst);
}

static const struct ar_ops blk_ops = { .pack = blk_pack, .reduce = blk_reduce, .copy = blk_copy_decode,
				       .owner_done = blk_owner_done };

static gx_status_t run_ring(struct gx_allreduce_handle *h, float *buf, enum gx_redop op)
{
	struct gx_codec_ctx ctx = { h->o.seed, h->step, h->rank };
	size_t len;
	gx_status_t st;

	if (h->ef)
		st = gx_ef_encode(h->ef, &ctx, buf, 0, h->payload, h->enc, h->enc_cap, &len, NULL);
	else
		st = gx_codec_encode(h->codec, &ctx, buf, h->count, 0, h->payload, h->enc, h->enc_cap, &len);
	if (st < 0)
		return st;
	/* spread the blocks to one slot of `payload` bytes each, from the last (in place, backwards) */
	{
		size_t *offs = malloc(sizeof(size_t) * (h->nb ? h->nb : 1));
		size_t o = 0;
		struct gx_codec_block b;
		if (!offs)
			return gx_error(GX_ERR_NOMEM, "compressed allreduce: out of memory");
		for (size_t i = 0; i < h->nb; i++) {
			if ((st = gx_codec_block_info(h->enc + o, len - o, &b)) < 0) {
				free(offs);
				return st;
			}
			offs[i] = o;
			o += b.bytes;
		}
		for (size_t i = h->nb; i-- > 0;) {
			gx_codec_block_info(h->enc + offs[i], len - offs[i], &b);
			memmove(h->enc + i * h->payload, h->enc + offs[i], b.bytes);
		}
		free(offs);
	}
	struct ar_run r;
	memset(&r, 0, sizeof(r));
	r.s = h->s;
	r.coll_id = coll_begin(h->s, &(struct coll_fp){ .count = h->count, .config = h->config,
			.kind = COLL_COMPRESSED, .op = (uint8_t)op, .algo = (uint8_t)h->path }, h->spec);
	r.rank = h->rank;
	r.n = h->n;
	r.buf = h->enc;
	r.count = h->nb;
	r.esz = h->payload;
	r.epp = 1;
	r.slot = h->payload + 4;
	r.codec = (uint8_t)gx_codec_id(h->codec);
	r.op = GX_OP_SUM;
	r.ops = &blk_ops;
	struct ring_out out = { h->codec, buf, h->count, GX_OK };
	r.ops_arg = &out;
	r.pipelined = 1;
	if (h->n > 1) {
		/* each block is decoded as its sum completes (blk_copy_decode, blk_owner_done) */
		if ((st = ar_schedule_ring(&r)) < 0 || (st = ar_execute(&r)) < 0)
			return st;
		if (out.err < 0)
			return out.err;
	} else {
		for (size_t i = 0; i < h->nb; i++)
			if ((st = gx_codec_decode(h->codec, h->enc + i * h->payload, h->payload, buf, h->count, NULL)) < 0)
				return st;
	}
	if (op == GX_OP_AVG)
		for (size_t e = 0; e < h->count; e++)
			buf[e] = buf[e] / (float)h->n;
	return GX_OK;
}

struct cr_args {
	struct gx_allreduce_handle *h;
	float *buf;
	enum gx_redop op;
};

static gx_status_t run_compressed(void *arg)
{
	struct cr_args *a = arg;
	struct gx_allreduce_handle *h = a->h;
	gx_status_t st;

	if (!handle_coll(h))
		return gx_error(GX_ERR_NOMEM, "compressed allreduce: no collective state: %s", gx_last_error());
	if (h->path == PATH_THC)
		st = thc_allreduce(h->thc, h->s, a->buf, a->op, h->step);
	else if (h->path == PATH_RING)
		st = run_ring(h, a->buf, a->op);
	else
		st = run_sharded(h, a->buf, a->op);
	h->step++;
	return st;
}

gx_status_t gx_allreduce_compressed(struct gx_allreduce_handle *h, float *buf, enum gx_redop op)
{
	struct cr_args a = { h, buf, op };

	if (!h || (h->count && !buf))
		return gx_error(GX_ERR_INVAL, "compressed allreduce: NULL handle or buffer");
	if (op != GX_OP_SUM && op != GX_OP_AVG)
		return gx_error(GX_ERR_INVAL, "compressed allreduce: op must be GX_OP_SUM or GX_OP_AVG");
	if (h->comm) {
		/* nested in gx_comm_run: the state is made on the progress thread by run_compressed */
		return gx_comm_run(h->comm, run_compressed, &a);
	}
	return run_compressed(&a);
}
