/* net.c: the reliability layer shared by every datagram backend (docs/transport.md).
 *
 * Per peer: a send ring of `window` slots (slot = psn & (window-1)) holding each DATA packet until
 * it is acknowledged, and a receive bitmap of the same size over psn.  The receiver acknowledges
 * cumulatively (ack_psn: every psn below it has arrived) plus a SACK bitmap for what arrived
 * beyond it; ACKs are coalesced (a quarter window of packets, ACK_REQ, a hole, a 20 us pause)
 * and piggybacked on DATA going the other way.  The sender retransmits SACK holes at once (fast
 * retransmit) and everything else from a periodic scan of the ring against an RTO measured from
 * the TSC (sRTT + 4 RTTvar, floor rto_min, doubled per timeout, reset on progress).  Receivers
 * grant credits (an absolute psn limit) in ACK aux.  A peer whose data sees no progress for
 * peer_timeout is reported by rank, with what was outstanding.
 *
 * Common path cost: no allocation (a peer's send ring is allocated on the first send to it), no
 * clock_gettime (the TSC), one backend receive burst per poll and transmits batched into bursts. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx_rng.h"
#include "gx_time.h"
#include "gx_transport.h"

#define NET_BURST 64                    /* packets per backend burst: af_packet makes one sendto per burst */
#define TXQ_SIZE 1024                   /* queued packets (power of two) */
#define TXQ_CTRL_RESERVE 64             /* kept free for ACKs/heartbeats */
#define CTRL_SLOTS 128                  /* control packet buffers (power of two) */
#define ACK_EVERY_MIN 16                /* data packets per coalesced ACK: window/4 within these */
#define ACK_EVERY_MAX 64
#define ACK_IDLE_US 20                  /* a peer's DATA paused this long: its pending ACK leaves */
#define ACK_DELAY_MAX_US 100            /* longest an ACK waits while DATA keeps arriving */
#define FAST_RETX_DUPS 3                /* later SACKed packets that mark a hole as lost */
#define RTO_BURST 4                     /* packets resent per timeout: a stalled (not lossy) peer
					 * costs a few duplicates, not a window; SACK repairs the rest */
#define RTO_INIT_US 1000
#define RTO_MAX_US 100000
#define WINDOW_DEFAULT 256
#define WINDOW_MIN 64                   /* also the credit granted before the first ACK */
#define WINDOW_MAX 32768
#define CLOSE_GRACE_MS 2000
#define POLL_PAUSE_US 2000              /* a longer gap between two polls is the application's pause,
					 * not a polling loop's back-off sleep (200 us): not counted */
#define HOLD_SLOTS 16                   /* fault injection: packets held back for reordering */
#define DELAY_SLOTS 2048                /* fault injection: received packets held for delay_us */

enum txq_kind { TXQ_DATA, TXQ_RETX, TXQ_CTRL };
enum txq_fate { FATE_DROP, FATE_SEND, FATE_DUP, FATE_HOLD };  /* fault hooks, drawn once per packet */

struct txq_ent {
	uint32_t peer;
	uint32_t psn;                   /* DATA/RETX: slot psn */
	uint8_t *data;                  /* CTRL: packet */
	uint32_t len;
	uint8_t kind;
	uint8_t fate;
};

struct tx_slot {
	uint64_t first_tsc;             /* first transmission */
	uint64_t sent_tsc;              /* latest transmission */
	uint32_t len;                   /* gx_hdr + payload */
	uint16_t nsent;
	uint8_t sacked;
	uint8_t fast;                   /* already fast-retransmitted */
};

struct peer {
	uint8_t connected, dead, aborted, ack_listed;
	uint8_t ack_pending, ack_now, need_sack;
	uint8_t ack_orig;               /* next ACK may carry GX_F_ECHO_ORIG */
	/* send side */
	uint32_t next_psn, una, credit_limit;
	struct tx_slot *slot;
	uint8_t *buf;                   /* window * max_msg bytes */
	uint64_t srtt, rttvar, rto_base; /* TSC ticks */
	uint32_t backoff;
	uint64_t last_progress_tsc, last_tx_tsc, last_rx_tsc, ack_since_tsc, last_data_tsc;
	/* receive side */
	uint32_t rcv_nxt, rx_hi, rx_since_ack;
	uint64_t *rx_bits;              /* window bits, indexed by psn & (window-1) */
	struct gx_peer_counters c;
};

struct held_pkt {                       /* fault injection */
	uint64_t due_tsc;
	uint32_t peer, len;
	uint8_t *data;
};

struct gx_net {
	struct gx_backend *be;
	const struct gx_backend_ops *ops;
	uint32_t rank, nranks, job_id;
	uint32_t window, wmask, max_msg, max_sack_words;
	uint32_t ctrl_bytes;
	struct peer *peer;
	uint32_t *conn;                 /* connected ranks */
	uint32_t nconn;
	uint32_t *ack_list;             /* peers with an ACK pending */
	uint32_t nack;
	uint32_t inflight;
	struct gx_peer_counters unattributed;

	struct txq_ent txq[TXQ_SIZE];
	uint32_t txq_head, txq_len;
	uint8_t *ctrl;
	uint32_t ctrl_next, ctrl_queued;

	uint64_t hz, rto_min, rto_max, ack_idle, ack_delay_max, scan_period, peer_timeout, heartbeat;
	uint32_t ack_every;
	uint64_t last_scan, tsc0, ns0;
	uint64_t last_poll, pause_min;  /* discount_pause() */
	uint32_t peer_timeout_ms;
	uint32_t first_psn;
	gx_status_t sticky;             /* a peer error, returned by every later poll */
	char sticky_msg[400];

	/* fault injection */
	bool fault_tx, fault_delay;
	struct gx_fault fault;
	uint32_t fault_thr_drop, fault_thr_dup, fault_thr_reorder;
	uint64_t fault_key;
	uint32_t fault_ctr;
	uint8_t *hold_mem;
	struct held_pkt hold[HOLD_SLOTS];
	uint32_t nhold;
	uint8_t *delay_mem;
	struct held_pkt delay[DELAY_SLOTS];
	uint32_t delay_head, delay_len;
	uint64_t delay_tsc;
};

static inline int32_t psn_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

static inline uint64_t us_to_tsc(const struct gx_net *n, uint64_t us)
{
	return us * n->hz / 1000000ull;
}

static inline uint32_t tsc_to_us(const struct gx_net *n, uint64_t t)
{
	uint64_t us = t * 1000000ull / n->hz;
	return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static inline uint8_t *slot_buf(const struct gx_net *n, const struct peer *p, uint32_t psn)
{
	return p->buf + (size_t)(psn & n->wmask) * n->max_msg;
}

static inline uint64_t rto_of(const struct gx_net *n, const struct peer *p)
{
	uint64_t r = p->rto_base << (p->backoff < 16 ? p->backoff : 16);
	return r > n->rto_max ? n->rto_max : r;
}

/* ------------------------------------------------------------------------------------------- */

struct gx_net *gx_net_open(const struct gx_transport_opts *o)
{
	const struct gx_backend_ops *ops = gx_backend_find(o->backend);
	struct gx_net *n;

	if (!ops)
		return NULL;
	if (!o->nranks || o->nranks > GX_MAX_RANKS || o->rank >= o->nranks) {
		gx_error(GX_ERR_INVAL, "net: rank %u of %u ranks is impossible (1..%u ranks, rank < ranks)",
			 o->rank, o->nranks, GX_MAX_RANKS);
		return NULL;
	}
	if (o->window > WINDOW_MAX) {
		gx_error(GX_ERR_INVAL, "net: window %u too large (at most %u packets in flight per peer)",
			 o->window, WINDOW_MAX);
		return NULL;
	}
	if (o->fault.drop < 0 || o->fault.drop > 1 || o->fault.dup < 0 || o->fault.dup > 1 ||
	    o->fault.reorder < 0 || o->fault.reorder > 1) {
		gx_error(GX_ERR_INVAL, "fault probabilities must be in [0, 1] (drop %g, dup %g, reorder %g)",
			 o->fault.drop, o->fault.dup, o->fault.reorder);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		gx_error(GX_ERR_NOMEM, "net: out of memory");
		return NULL;
	}
	n->ops = ops;
	n->be = ops->open(o);
	if (!n->be)
		goto fail;
	n->rank = o->rank;
	n->nranks = o->nranks;
	n->job_id = o->job_id;
	n->max_msg = ops->max_msg(n->be);
	if (n->max_msg < sizeof(struct gx_hdr) + 8) {
		gx_error(GX_ERR_INVAL, "net: backend '%s' carries only %u bytes per datagram", ops->name,
			 n->max_msg);
		goto fail;
	}
	uint32_t w = o->window ? o->window : WINDOW_DEFAULT;
	n->window = WINDOW_MIN;
	while (n->window < w)
		n->window <<= 1;
	n->wmask = n->window - 1;
	n->max_sack_words = (n->max_msg - (uint32_t)sizeof(struct gx_hdr)) / 8;
	if (n->max_sack_words > n->window / 64)
		n->max_sack_words = n->window / 64;
	n->ctrl_bytes = (uint32_t)sizeof(struct gx_hdr) + 8 * n->max_sack_words;
	n->peer = calloc(n->nranks, sizeof(*n->peer));
	n->conn = calloc(n->nranks, sizeof(*n->conn));
	n->ack_list = calloc(n->nranks, sizeof(*n->ack_list));
	n->ctrl = malloc((size_t)CTRL_SLOTS * n->ctrl_bytes);
	if (!n->peer || !n->conn || !n->ack_list || !n->ctrl) {
		gx_error(GX_ERR_NOMEM, "net: out of memory for %u peers", n->nranks);
		goto fail;
	}

	n->hz = gx_tsc_hz();
	n->tsc0 = gx_tsc();
	n->ns0 = gx_now_ns();
	n->rto_min = us_to_tsc(n, o->rto_min_us ? o->rto_min_us : 200);
	n->rto_max = us_to_tsc(n, RTO_MAX_US);
	if (n->rto_max < n->rto_min)
		n->rto_max = n->rto_min;
	n->ack_idle = us_to_tsc(n, ACK_IDLE_US);
	n->ack_delay_max = us_to_tsc(n, ACK_DELAY_MAX_US);
	n->ack_every = n->window / 4 < ACK_EVERY_MIN ? ACK_EVERY_MIN :
		       n->window / 4 > ACK_EVERY_MAX ? ACK_EVERY_MAX : n->window / 4;
	n->scan_period = n->rto_min / 2;
	n->peer_timeout_ms = o->peer_timeout_ms ? o->peer_timeout_ms : 10000;
	n->first_psn = o->first_psn;
	n->peer_timeout = us_to_tsc(n, (uint64_t)n->peer_timeout_ms * 1000);
	n->heartbeat = n->peer_timeout / 4;
	n->last_scan = n->last_poll = n->tsc0;
	n->pause_min = us_to_tsc(n, POLL_PAUSE_US);
	if (n->pause_min > n->peer_timeout / 16)
		n->pause_min = n->peer_timeout / 16;

	n->fault = o->fault;
	n->fault_tx = o->fault.drop > 0 || o->fault.dup > 0 || o->fault.reorder > 0;
	n->fault_delay = o->fault.delay_us > 0;
	n->fault_thr_drop = (uint32_t)(o->fault.drop * 4294967295.0);
	n->fault_thr_dup = (uint32_t)(o->fault.dup * 4294967295.0);
	n->fault_thr_reorder = (uint32_t)(o->fault.reorder * 4294967295.0);
	n->fault_key = gx_rng_key(o->fault.seed, o->rank, 0, 0x66617574u);
	if (n->fault_tx && !(n->hold_mem = malloc((size_t)HOLD_SLOTS * n->max_msg))) {
		gx_error(GX_ERR_NOMEM, "net: out of memory for fault injection");
		goto fail;
	}
	if (n->fault_delay) {
		n->delay_tsc = us_to_tsc(n, o->fault.delay_us);
		if (!(n->delay_mem = malloc((size_t)DELAY_SLOTS * n->max_msg))) {
			gx_error(GX_ERR_NOMEM, "net: out of memory for fault injection");
			goto fail;
		}
	}
	return n;
fail:
	gx_net_close(n);
	return NULL;
}

gx_status_t gx_net_local_addr(struct gx_net *n, void *blob, size_t *len)
{
	return n->ops->local_addr(n->be, blob, len);
}

gx_status_t gx_net_connect(struct gx_net *n, uint32_t peer, const void *blob, size_t len)
{
	struct peer *p;
	gx_status_t st;

	if (peer >= n->nranks || peer == n->rank)
		return gx_error(GX_ERR_INVAL, "net: cannot connect rank %u (this is rank %u of %u)", peer,
				n->rank, n->nranks);
	p = &n->peer[peer];
	if ((st = n->ops->connect(n->be, peer, blob, len)) < 0)
		return st;
	if (p->connected)
		return GX_OK;
	/* The receive bitmap now; the send ring (window x max_msg bytes) on the first send to this
	 * peer, so a rank that talks to few of many peers does not pay for all of them. */
	p->rx_bits = calloc(n->window / 64, sizeof(uint64_t));
	if (!p->rx_bits)
		return gx_error(GX_ERR_NOMEM, "net: out of memory for the receive window of rank %u", peer);
	p->next_psn = p->una = p->rcv_nxt = p->rx_hi = n->first_psn;
	p->credit_limit = n->first_psn + WINDOW_MIN;
	p->rto_base = us_to_tsc(n, RTO_INIT_US);
	if (p->rto_base < n->rto_min)
		p->rto_base = n->rto_min;
	p->last_rx_tsc = p->last_tx_tsc = p->last_progress_tsc = gx_tsc();
	p->connected = 1;
	n->conn[n->nconn++] = peer;
	return GX_OK;
}

uint32_t gx_net_max_payload(const struct gx_net *n)
{
	return n->max_msg - (uint32_t)sizeof(struct gx_hdr);
}

uint32_t gx_net_rank(const struct gx_net *n)
{
	return n->rank;
}

uint32_t gx_net_nranks(const struct gx_net *n)
{
	return n->nranks;
}

uint32_t gx_net_job_id(const struct gx_net *n)
{
	return n->job_id;
}

struct gx_backend *gx_net_backend(struct gx_net *n)
{
	return n->be;
}

uint32_t gx_net_inflight(const struct gx_net *n)
{
	return n->inflight;
}

/* ---- transmit ------------------------------------------------------------------------------ */

static inline uint32_t fault_draw(struct gx_net *n)
{
	return gx_rng_u32(n->fault_key, n->fault_ctr++);
}

/* Fault hooks on the way out, decided once per queued packet (a packet the backend refuses and that
 * is offered again keeps its fate). */
static uint8_t fault_decide(struct gx_net *n, uint32_t peer)
{
	struct peer *p = &n->peer[peer];

	if (fault_draw(n) < n->fault_thr_drop) {
		p->c.fault_dropped++;
		return FATE_DROP;
	}
	if (fault_draw(n) < n->fault_thr_reorder)
		return FATE_HOLD;               /* counted when held (a hold slot may be lacking) */
	if (fault_draw(n) < n->fault_thr_dup) {
		p->c.fault_duplicated++;
		return FATE_DUP;
	}
	return FATE_SEND;
}

static inline void txq_push(struct gx_net *n, uint32_t peer, uint32_t psn, uint8_t *data, uint32_t len,
			    uint8_t kind)
{
	struct txq_ent *e = &n->txq[(n->txq_head + n->txq_len) & (TXQ_SIZE - 1)];

	e->peer = peer;
	e->psn = psn;
	e->data = data;
	e->len = len;
	e->kind = kind;
	e->fate = n->fault_tx ? fault_decide(n, peer) : FATE_SEND;
	n->txq_len++;
}

/* How many copies of m leave now (0, 1 or 2).  A reordered packet is copied aside and sent after the
 * packets of the next flush; its queue entry then becomes a drop so a retry cannot send it twice. */
static uint32_t fault_apply(struct gx_net *n, struct txq_ent *e, const struct gx_msg *m, uint64_t now)
{
	switch (e->fate) {
	case FATE_DROP:
		return 0;
	case FATE_DUP:
		return 2;
	case FATE_HOLD:
		if (n->nhold < HOLD_SLOTS) {
			struct held_pkt *h = &n->hold[n->nhold];
			h->data = n->hold_mem + (size_t)n->nhold * n->max_msg;
			memcpy(h->data, m->data, m->len);
			h->len = m->len;
			h->peer = m->peer;
			h->due_tsc = now;
			n->nhold++;
			n->peer[m->peer].c.fault_reordered++;
			e->fate = FATE_DROP;
			return 0;
		}
		return 1;
	}
	return 1;
}

static void release_held(struct gx_net *n)
{
	struct gx_msg m[HOLD_SLOTS];

	for (uint32_t i = 0; i < n->nhold; i++) {
		m[i].peer = n->hold[i].peer;
		m[i].data = n->hold[i].data;
		m[i].len = n->hold[i].len;
		m[i].priv = NULL;
	}
	/* Whatever the backend refuses is lost, as on a real network. */
	if (n->nhold)
		n->ops->tx_burst(n->be, m, (uint16_t)n->nhold);
	n->nhold = 0;
}

/* Stamp the fields only known at departure (ack_psn; for ACKs the whole packet is built at once). */
static inline void stamp_data(struct peer *p, struct gx_hdr *h, uint64_t now)
{
	h->ack_psn = p->rcv_nxt;
	if (p->ack_pending && !p->need_sack && !p->ack_now) {
		p->ack_pending = 0;             /* the cumulative ACK rides on this packet */
		p->ack_orig = 0;
		p->rx_since_ack = 0;
	}
	p->last_tx_tsc = now;
}

static void flush(struct gx_net *n, uint64_t now)
{
	struct gx_msg m[2 * NET_BURST];
	uint32_t ent_end[2 * NET_BURST];        /* msgs used by entries [0..i] */

	while (n->txq_len) {
		uint32_t nm = 0, ne = 0;

		while (ne < n->txq_len && ne < NET_BURST) {
			struct txq_ent *e = &n->txq[(n->txq_head + ne) & (TXQ_SIZE - 1)];
			struct peer *p = &n->peer[e->peer];
			struct gx_msg x = { .peer = e->peer };

			if (e->kind == TXQ_CTRL) {
				x.data = e->data;
				x.len = e->len;
				p->last_tx_tsc = now;
			} else {
				uint32_t i = e->psn & n->wmask;
				if (psn_diff(e->psn, p->una) < 0 || psn_diff(e->psn, p->next_psn) >= 0 ||
				    p->slot[i].sacked) {
					ent_end[ne++] = nm; /* acknowledged while queued: nothing to send */
					continue;
				}
				x.data = slot_buf(n, p, e->psn);
				x.len = p->slot[i].len;
				stamp_data(p, (struct gx_hdr *)x.data, now);
				if (!p->slot[i].nsent)
					p->slot[i].first_tsc = now;
				p->slot[i].sent_tsc = now;
				p->slot[i].nsent++;
			}
			uint32_t copies = e->fate == FATE_SEND ? 1 : fault_apply(n, e, &x, now);
			for (uint32_t c = 0; c < copies; c++)
				m[nm++] = x;
			ent_end[ne++] = nm;
		}
		uint16_t sent = nm ? n->ops->tx_burst(n->be, m, (uint16_t)nm) : 0;
		uint32_t done = 0;
		while (done < ne && ent_end[done] <= sent)
			done++;
		for (uint32_t i = 0; i < done; i++)
			if (n->txq[(n->txq_head + i) & (TXQ_SIZE - 1)].kind == TXQ_CTRL)
				n->ctrl_queued--;
		n->txq_head = (n->txq_head + done) & (TXQ_SIZE - 1);
		n->txq_len -= done;
		if (done < ne)
			break;                  /* backend full: the rest goes next turn */
	}
	if (n->nhold)
		release_held(n);
}

void gx_net_flush(struct gx_net *n)
{
	if (n->txq_len || n->nhold)
		flush(n, gx_tsc());
}

static uint8_t *ctrl_alloc(struct gx_net *n, uint64_t now)
{
	if (n->txq_len >= TXQ_SIZE || n->ctrl_queued >= CTRL_SLOTS)
		flush(n, now);
	/* Buffers are handed out round-robin and the queue is FIFO, so while fewer than CTRL_SLOTS
	 * are queued the next one is free.  A backend that stays full loses the ACK: it is resent. */
	if (n->txq_len >= TXQ_SIZE || n->ctrl_queued >= CTRL_SLOTS)
		return NULL;
	n->ctrl_queued++;
	uint8_t *b = n->ctrl + (size_t)(n->ctrl_next & (CTRL_SLOTS - 1)) * n->ctrl_bytes;
	n->ctrl_next++;
	return b;
}

static inline void hdr_init(const struct gx_net *n, struct gx_hdr *h, uint8_t type)
{
	memset(h, 0, sizeof(*h));
	h->magic = GX_MAGIC;
	h->version = GX_WIRE_VERSION;
	h->type = type;
	h->src_rank = (uint16_t)n->rank;
	h->job_id = n->job_id;
}

static inline uint64_t bits_at(const uint64_t *bits, uint32_t wmask, uint32_t pos)
{
	uint32_t idx = pos & wmask, w = idx >> 6, o = idx & 63, nw = (wmask + 1) >> 6;
	uint64_t v = bits[w] >> o;
	if (o)
		v |= bits[(w + 1) & (nw - 1)] << (64 - o);
	return v;
}

static void send_ack(struct gx_net *n, uint32_t peer, uint64_t now)
{
	struct peer *p = &n->peer[peer];
	uint8_t *b = ctrl_alloc(n, now);

	if (!b)
		return;
	struct gx_hdr *h = (struct gx_hdr *)b;
	hdr_init(n, h, GX_PKT_ACK);
	h->ack_psn = p->rcv_nxt;
	h->aux = p->rcv_nxt + n->window;        /* credit: the receive window */
	uint32_t words = 0;
	if (p->need_sack && psn_diff(p->rx_hi, p->rcv_nxt) > 1) {
		uint32_t span = p->rx_hi - p->rcv_nxt - 1;   /* psn rcv_nxt+1 .. rx_hi-1 */
		words = (span + 63) / 64;
		if (words > n->max_sack_words)
			words = n->max_sack_words;
		uint64_t *sack = (uint64_t *)(b + sizeof(*h));
		for (uint32_t i = 0; i < words; i++)
			sack[i] = bits_at(p->rx_bits, n->wmask, p->rcv_nxt + 1 + 64 * i);
	}
	h->len = (uint16_t)(8 * words);
	if (p->ack_orig)
		h->flags |= GX_F_ECHO_ORIG;
	p->ack_pending = p->ack_now = p->need_sack = p->ack_orig = 0;
	p->rx_since_ack = 0;
	p->c.acks_sent++;
	txq_push(n, peer, 0, b, (uint32_t)sizeof(*h) + 8 * words, TXQ_CTRL);
}

static void send_ctrl(struct gx_net *n, uint32_t peer, uint8_t type, uint8_t flags, uint64_t now)
{
	uint8_t *b = ctrl_alloc(n, now);

	if (!b)
		return;
	struct gx_hdr *h = (struct gx_hdr *)b;
	hdr_init(n, h, type);
	h->flags = flags;
	h->ack_psn = n->peer[peer].rcv_nxt;
	txq_push(n, peer, 0, b, sizeof(*h), TXQ_CTRL);
}

static gx_status_t peer_error(struct gx_net *n, uint32_t peer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static gx_status_t peer_error(struct gx_net *n, uint32_t peer, const char *fmt, ...)
{
	va_list ap;

	n->peer[peer].dead = 1;
	va_start(ap, fmt);
	vsnprintf(n->sticky_msg, sizeof(n->sticky_msg), fmt, ap);
	va_end(ap);
	n->sticky = GX_ERR_PEER;
	return gx_error(GX_ERR_PEER, "%s", n->sticky_msg);
}

static gx_status_t dead_peer_status(struct gx_net *n, uint32_t peer)
{
	if (n->sticky < 0)
		return gx_error(n->sticky, "%s", n->sticky_msg);
	return gx_error(GX_ERR_PEER, "peer rank %u is dead or aborted", peer);
}

void *gx_net_reserve(struct gx_net *n, uint32_t peer, gx_status_t *st)
{
	struct peer *p;

	if (peer >= n->nranks || !n->peer[peer].connected) {
		*st = gx_error(GX_ERR_INVAL, "net: rank %u is not a connected peer of rank %u", peer, n->rank);
		return NULL;
	}
	p = &n->peer[peer];
	if (p->dead) {
		*st = dead_peer_status(n, peer);
		return NULL;
	}
	if (!p->buf) {
		p->slot = calloc(n->window, sizeof(*p->slot));
		p->buf = malloc((size_t)n->window * n->max_msg);
		if (!p->slot || !p->buf) {
			free(p->slot);
			free(p->buf);
			p->slot = NULL;
			p->buf = NULL;
			*st = gx_error(GX_ERR_NOMEM, "net: out of memory for the send window to rank %u "
				       "(%u x %u bytes); try a smaller --window", peer, n->window, n->max_msg);
			return NULL;
		}
	}
	if (p->next_psn - p->una >= n->window || psn_diff(p->credit_limit, p->next_psn) <= 0 ||
	    n->txq_len >= TXQ_SIZE - TXQ_CTRL_RESERVE) {
		*st = GX_ERR_AGAIN;
		return NULL;
	}
	*st = GX_OK;
	return slot_buf(n, p, p->next_psn) + sizeof(struct gx_hdr);
}

gx_status_t gx_net_commit(struct gx_net *n, uint32_t peer, const struct gx_tx_desc *d, uint32_t len)
{
	struct peer *p;

	if (peer >= n->nranks || !n->peer[peer].connected)
		return gx_error(GX_ERR_INVAL, "net: rank %u is not a connected peer of rank %u", peer, n->rank);
	p = &n->peer[peer];
	if (!p->buf)
		return gx_error(GX_ERR_INVAL, "net: commit to rank %u without a gx_net_reserve", peer);
	if (len > gx_net_max_payload(n))
		return gx_error(GX_ERR_INVAL, "net: payload of %u bytes exceeds the %u bytes a packet carries",
				len, gx_net_max_payload(n));
	if (p->next_psn - p->una >= n->window || psn_diff(p->credit_limit, p->next_psn) <= 0 ||
	    n->txq_len >= TXQ_SIZE - TXQ_CTRL_RESERVE)
		return gx_error(GX_ERR_AGAIN, "net: commit without a successful gx_net_reserve");
	uint32_t psn = p->next_psn;
	struct gx_hdr *h = (struct gx_hdr *)slot_buf(n, p, psn);
	struct tx_slot *s = &p->slot[psn & n->wmask];

	h->magic = GX_MAGIC;
	h->version = GX_WIRE_VERSION;
	h->type = GX_PKT_DATA;
	h->flags = d ? (d->flags & (GX_F_LAST | GX_F_ACK_REQ)) : 0;
	h->codec = d ? d->codec : 0;
	h->src_rank = (uint16_t)n->rank;
	h->job_id = n->job_id;
	h->epoch = 0;
	h->coll_id = d ? d->coll_id : 0;
	h->psn = psn;
	h->chunk = d ? d->chunk : 0;
	h->step = d ? d->step : 0;
	h->len = (uint16_t)len;
	h->aux = d ? d->aux : 0;
	/* Ask for an ACK at once when this packet fills half the window or all of it, or leaves 16
	 * credits or none, so the sender never stalls waiting for a coalesced one.  Only the packet
	 * that crosses the mark asks (in-flight grows one packet at a time): marking every packet
	 * beyond it made the receiver ACK every rx burst, one ACK per two packets on a busy stream.
	 * A lost asker is covered by the receiver's own triggers (a hole, ack_every, idle). */
	uint32_t inflight_after = psn - p->una + 1, credit_after = p->credit_limit - (psn + 1);
	if (inflight_after == n->window / 2 || inflight_after == n->window || credit_after == 16 ||
	    credit_after == 0)
		h->flags |= GX_F_ACK_REQ;
	s->len = (uint32_t)sizeof(*h) + len;
	s->nsent = 0;
	s->sacked = 0;
	s->fast = 0;
	if (p->next_psn == p->una)
		p->last_progress_tsc = gx_tsc();  /* the no-progress clock starts with the first packet */
	p->next_psn = psn + 1;
	p->c.sent++;
	n->inflight++;
	txq_push(n, peer, psn, NULL, 0, TXQ_DATA);
	if (n->txq_len >= NET_BURST)
		flush(n, gx_tsc());
	return GX_OK;
}

gx_status_t gx_net_send(struct gx_net *n, uint32_t peer, const struct gx_tx_desc *d, const void *payload,
			uint32_t len)
{
	gx_status_t st;
	void *b;

	if (len > gx_net_max_payload(n))
		return gx_error(GX_ERR_INVAL, "net: payload of %u bytes exceeds the %u bytes a packet carries",
				len, gx_net_max_payload(n));
	if (!(b = gx_net_reserve(n, peer, &st)))
		return st;
	memcpy(b, payload, len);
	return gx_net_commit(n, peer, d, len);
}

/* ---- receive ------------------------------------------------------------------------------- */

static void rtt_sample(struct gx_net *n, struct peer *p, uint64_t r)
{
	if (!p->srtt) {
		p->srtt = r;
		p->rttvar = r / 2;
	} else {
		uint64_t dev = p->srtt > r ? p->srtt - r : r - p->srtt;
		p->rttvar = (3 * p->rttvar + dev) / 4;
		p->srtt = (7 * p->srtt + r) / 8;
	}
	uint64_t rto = p->srtt + 4 * p->rttvar;
	p->rto_base = rto < n->rto_min ? n->rto_min : rto;
}

/* Cumulative ACK: everything below ack_psn has arrived.  echo_orig: the receiver says the packet
 * at ack_psn-1 arrived in its first transmission. */
static void ack_cumulative(struct gx_net *n, struct peer *p, uint32_t ack_psn, bool echo_orig, uint64_t now)
{
	int32_t adv = psn_diff(ack_psn, p->una);

	if (adv <= 0)
		return;
	struct tx_slot *last = &p->slot[(ack_psn - 1) & n->wmask];
	if (echo_orig) {
		/* Timed from its first send even if resent since: a resend was then spurious (the
		 * receiver was slow to ACK, e.g. asleep in its idle back-off), and the sample teaches
		 * the RTO that delay.  Karn's rule would hide it forever. */
		rtt_sample(n, p, now - last->first_tsc);
	} else {
		/* Karn: sample only when nothing in the acknowledged range was retransmitted; packets
		 * behind a repaired hole waited for the repair, and their delay is not the path's. */
		bool clean = true;
		for (uint32_t psn = p->una; psn != ack_psn && clean; psn++)
			clean = p->slot[psn & n->wmask].nsent == 1;
		if (clean)
			rtt_sample(n, p, now - last->sent_tsc);
	}
	p->una = ack_psn;
	n->inflight -= (uint32_t)adv;
	p->backoff = 0;
	p->last_progress_tsc = now;
}

static void fast_retransmit(struct gx_net *n, struct peer *p, uint32_t peer, uint32_t hi_sacked)
{
	for (uint32_t psn = p->una; psn_diff(hi_sacked, psn) >= FAST_RETX_DUPS; psn++) {
		struct tx_slot *s = &p->slot[psn & n->wmask];
		if (s->sacked || s->fast || n->txq_len >= TXQ_SIZE - TXQ_CTRL_RESERVE)
			continue;
		s->fast = 1;
		p->c.retransmitted++;
		p->c.fast_retransmits++;
		((struct gx_hdr *)slot_buf(n, p, psn))->flags |= GX_F_RETX;
		txq_push(n, peer, psn, NULL, 0, TXQ_RETX);
	}
}

static void count_bad(struct gx_net *n, uint32_t bpeer, bool malformed)
{
	struct gx_peer_counters *c = bpeer < n->nranks ? &n->peer[bpeer].c : &n->unattributed;

	if (malformed)
		c->malformed++;
	else
		c->dropped++;
}

static inline void ack_list_add(struct gx_net *n, struct peer *p, uint32_t peer, uint64_t now)
{
	if (!p->ack_pending) {
		p->ack_pending = 1;
		p->ack_since_tsc = now;
	}
	if (!p->ack_listed) {
		p->ack_listed = 1;
		n->ack_list[n->nack++] = peer;
	}
}

/* One received datagram.  Validates everything before any byte reaches the caller. */
static gx_status_t rx_one(struct gx_net *n, const uint8_t *d, uint32_t len, uint32_t bpeer, uint64_t now,
			  gx_deliver_fn fn, void *arg, int *delivered)
{
	const struct gx_hdr *h = (const struct gx_hdr *)d;

	if (bpeer == GX_PEER_FOREIGN) {
		n->unattributed.dropped++;
		return GX_OK;
	}
	if (len < sizeof(*h) || h->magic != GX_MAGIC || h->version != GX_WIRE_VERSION) {
		count_bad(n, bpeer, true);
		return GX_OK;
	}
	if (h->job_id != n->job_id) {
		count_bad(n, bpeer, false);
		return GX_OK;
	}
	uint32_t src = h->src_rank;
	if (src >= n->nranks || src == n->rank || (bpeer != GX_PEER_UNKNOWN && bpeer != src) ||
	    sizeof(*h) + h->len != len || h->type < GX_PKT_DATA || h->type > GX_PKT_RAW) {
		count_bad(n, bpeer, true);
		return GX_OK;
	}
	struct peer *p = &n->peer[src];
	if (!p->connected) {
		n->unattributed.dropped++;
		return GX_OK;
	}
	if (h->type == GX_PKT_RAW) {
		p->last_rx_tsc = now;
		(*delivered)++;
		return fn(arg, src, h, d + sizeof(*h), h->len);
	}
	/* ack_psn must lie within what we have sent. */
	if (psn_diff(h->ack_psn, p->next_psn) > 0 || (h->type == GX_PKT_ACK && (h->len & 7))) {
		p->c.malformed++;
		return GX_OK;
	}
	p->last_rx_tsc = now;
	ack_cumulative(n, p, h->ack_psn, h->type == GX_PKT_ACK && (h->flags & GX_F_ECHO_ORIG), now);
	/* Every receiver can take WINDOW_MIN packets beyond what it acknowledged, so any ack_psn
	 * (piggybacked too) grants that much: a lost credit-carrying ACK cannot stall the sender. */
	if (psn_diff(h->ack_psn + WINDOW_MIN, p->credit_limit) > 0)
		p->credit_limit = h->ack_psn + WINDOW_MIN;

	switch (h->type) {
	case GX_PKT_DATA: {
		int32_t off = psn_diff(h->psn, p->rcv_nxt);
		if (off < 0) {
			p->c.duplicates++;      /* our ACK was lost or late: repeat it */
			ack_list_add(n, p, src, now);
			p->ack_now = 1;
			p->ack_orig = 0;
			return GX_OK;
		}
		if ((uint32_t)off >= n->window) {
			p->c.out_of_window++;
			return GX_OK;
		}
		uint32_t idx = h->psn & n->wmask;
		uint64_t bit = 1ull << (idx & 63);
		if (off > 0) {
			if (p->rx_bits[idx >> 6] & bit) {
				p->c.duplicates++;
				ack_list_add(n, p, src, now);
				p->ack_now = 1;
				p->ack_orig = 0;
				return GX_OK;
			}
			p->rx_bits[idx >> 6] |= bit;
			if (psn_diff(h->psn + 1, p->rx_hi) > 0)
				p->rx_hi = h->psn + 1;
			p->need_sack = 1;       /* a hole: tell the sender now */
			p->ack_now = 1;
			p->ack_orig = 0;
		} else {
			/* In order: advance over anything that arrived early. */
			uint32_t nxt = h->psn + 1;
			if (psn_diff(p->rx_hi, nxt) > 0) {
				for (;;) {
					uint32_t i = nxt & n->wmask;
					uint64_t b = 1ull << (i & 63);
					if (!(p->rx_bits[i >> 6] & b))
						break;
					p->rx_bits[i >> 6] &= ~b;
					nxt++;
				}
				if (psn_diff(p->rx_hi, nxt) > 0) {
					p->need_sack = 1;
					p->ack_now = 1;
				} else {
					p->need_sack = 0;
				}
			}
			/* The ACK's last packet is this one only if no early run followed it. */
			p->ack_orig = nxt == h->psn + 1 && !(h->flags & GX_F_RETX);
			p->rcv_nxt = nxt;
			if (psn_diff(nxt, p->rx_hi) > 0)
				p->rx_hi = nxt;
		}
		p->c.received++;
		p->rx_since_ack++;
		p->last_data_tsc = now;
		ack_list_add(n, p, src, now);
		if ((h->flags & GX_F_ACK_REQ) || p->rx_since_ack >= n->ack_every)
			p->ack_now = 1;
		(*delivered)++;
		return fn(arg, src, h, d + sizeof(*h), h->len);
	}
	case GX_PKT_ACK: {
		p->c.acks_received++;
		if (psn_diff(h->aux, p->credit_limit) > 0)
			p->credit_limit = h->aux;
		uint32_t words = h->len / 8, hi = 0;
		bool any = false;
		const uint8_t *sack = d + sizeof(*h);
		for (uint32_t w = 0; w < words; w++) {
			uint64_t v;
			memcpy(&v, sack + 8 * w, 8);
			while (v) {
				uint32_t bitn = (uint32_t)__builtin_ctzll(v);
				uint32_t psn = h->ack_psn + 1 + 64 * w + bitn;
				v &= v - 1;
				if (psn_diff(psn, p->una) < 0 || psn_diff(psn, p->next_psn) >= 0)
					continue;
				p->slot[psn & n->wmask].sacked = 1;
				hi = psn;
				any = true;
			}
		}
		if (any)
			fast_retransmit(n, p, src, hi);
		return GX_OK;
	}
	case GX_PKT_HEARTBEAT:
		if (h->flags & GX_F_ACK_REQ) {  /* a credit probe: answer with a full ACK */
			ack_list_add(n, p, src, now);
			p->ack_now = 1;
		}
		return GX_OK;
	case GX_PKT_ABORT:
		p->aborted = 1;
		return peer_error(n, src, "peer rank %u aborted the job (it sent ABORT)", src);
	}
	return GX_OK;
}

/* Due: at once when asked (ACK_REQ, a hole, a duplicate, ack_every packets since the last: a
 * quarter window, 16..64), else once the peer's DATA paused for ACK_IDLE_US, or after at most
 * ACK_DELAY_MAX_US while DATA keeps coming without a packet going back to ride on.  Senders that
 * need an ACK to go on ask for it (ACK_REQ at half and full window, low credit), so a receiver that
 * merely ran dry does not ACK at once: on backends where every frame costs a system call (udp,
 * af_packet) each ACK costs about as much as a data packet.  Called after a whole rx burst, so a
 * burst yields at most one ACK per peer. */
static void send_due_acks(struct gx_net *n, uint64_t now)
{
	uint32_t keep = 0;

	for (uint32_t i = 0; i < n->nack; i++) {
		uint32_t peer = n->ack_list[i];
		struct peer *p = &n->peer[peer];
		if (!p->ack_pending) {
			p->ack_listed = 0;
			continue;
		}
		if (p->ack_now || now - p->last_data_tsc >= n->ack_idle ||
		    now - p->ack_since_tsc >= n->ack_delay_max) {
			send_ack(n, peer, now);
			p->ack_listed = 0;
			continue;
		}
		n->ack_list[keep++] = peer;
	}
	n->nack = keep;
}

/* The periodic scan: retransmit what timed out, heartbeat idle peers, declare silent ones dead. */
static gx_status_t scan(struct gx_net *n, uint64_t now)
{
	gx_status_t st = GX_OK;

	n->last_scan = now;
	if (n->nhold)
		release_held(n);
	for (uint32_t i = 0; i < n->nconn; i++) {
		uint32_t peer = n->conn[i];
		struct peer *p = &n->peer[peer];
		if (p->dead)
			continue;
		if (p->next_psn != p->una) {
			if (now - p->last_progress_tsc > n->peer_timeout) {
				struct tx_slot *s = &p->slot[p->una & n->wmask];
				st = peer_error(n, peer,
					"peer rank %u made no progress for %u ms: %u packets unacknowledged "
					"(psn %u..%u, oldest sent %u times), last heard from %u ms ago; is it "
					"alive and polling?", peer, n->peer_timeout_ms, p->next_psn - p->una,
					p->una, p->next_psn - 1, s->nsent,
					tsc_to_us(n, now - p->last_rx_tsc) / 1000);
				continue;
			}
			uint64_t rto = rto_of(n, p);
			uint32_t nretx = 0;
			for (uint32_t psn = p->una; psn != p->next_psn && nretx < RTO_BURST; psn++) {
				struct tx_slot *s = &p->slot[psn & n->wmask];
				if (s->sacked || !s->nsent || now - s->sent_tsc < rto)
					continue;
				if (n->txq_len >= TXQ_SIZE - TXQ_CTRL_RESERVE)
					break;
				((struct gx_hdr *)slot_buf(n, p, psn))->flags |= GX_F_RETX;
				s->sent_tsc = now;      /* not resent twice before it leaves */
				txq_push(n, peer, psn, NULL, 0, TXQ_RETX);
				p->c.retransmitted++;
				nretx++;
			}
			if (nretx) {
				p->c.rto_events++;
				if (p->backoff < 16)
					p->backoff++;
			}
		}
		/* Out of credits with nothing in flight: the ACK that granted more was lost; probe. */
		bool probe = p->next_psn == p->una && psn_diff(p->credit_limit, p->next_psn) <= 0 &&
			     now - p->last_tx_tsc > rto_of(n, p);
		if (probe || now - p->last_tx_tsc > n->heartbeat) {
			send_ctrl(n, peer, GX_PKT_HEARTBEAT, probe ? GX_F_ACK_REQ : 0, now);
			p->c.heartbeats_sent++;
		}
	}
	return st;
}

static inline void unpause(uint64_t *t, uint64_t from, uint64_t gap, uint64_t now)
{
	*t = (int64_t)(*t - from) <= 0 ? *t + gap : now;   /* set during the pause: all of it was */
}

/* This rank did not poll for a while (the application computed between two collectives): the
 * time is not held against its peers.  Every reference of the peer clocks (no progress, last heard,
 * each unacknowledged packet's send times, pending ACKs) moves forward by the pause, so
 * unacknowledged data ages, times out and is resent only while we poll, and a peer that ACKs our
 * last packet when its next poll comes is not resent to or declared dead.  This is what lets a
 * collective's last packet go without GX_F_ACK_REQ in application-driven progress.  Gaps up to
 * pause_min (2 ms; a sixteenth of the peer timeout at most) count in full, so a polling loop that
 * sleeps in gx_idle_backoff (200 us) still names a dead peer within the timeout. */
static void discount_pause(struct gx_net *n, uint64_t now)
{
	uint64_t from = n->last_poll, gap = now - from;

	for (uint32_t i = 0; i < n->nconn; i++) {
		struct peer *p = &n->peer[n->conn[i]];
		unpause(&p->last_progress_tsc, from, gap, now);
		unpause(&p->last_rx_tsc, from, gap, now);
		unpause(&p->ack_since_tsc, from, gap, now);
		unpause(&p->last_data_tsc, from, gap, now);
		if (!p->slot)
			continue;
		for (uint32_t psn = p->una; psn != p->next_psn; psn++) {
			struct tx_slot *s = &p->slot[psn & n->wmask];
			unpause(&s->sent_tsc, from, gap, now);
			unpause(&s->first_tsc, from, gap, now);
		}
	}
}

static gx_status_t drain_delayed(struct gx_net *n, uint64_t now, gx_deliver_fn fn, void *arg,
				 int *delivered)
{
	gx_status_t st = GX_OK;

	while (n->delay_len && st >= 0) {
		struct held_pkt *h = &n->delay[n->delay_head];
		if ((int64_t)(now - h->due_tsc) < 0)
			break;
		n->delay_head = (n->delay_head + 1) & (DELAY_SLOTS - 1);
		n->delay_len--;
		st = rx_one(n, h->data, h->len, h->peer, now, fn, arg, delivered);
	}
	return st;
}

int gx_net_poll(struct gx_net *n, gx_deliver_fn fn, void *arg)
{
	struct gx_msg m[NET_BURST];
	uint64_t now = gx_tsc();
	gx_status_t st = GX_OK;
	int delivered = 0;

	if (!fn)
		return gx_error(GX_ERR_INVAL, "gx_net_poll: a deliver function is required (DATA would be lost)");
	if (now - n->last_poll > n->pause_min)
		discount_pause(n, now);
	n->last_poll = now;
	if (n->txq_len)
		flush(n, now);
	uint16_t k = n->ops->rx_burst(n->be, m, NET_BURST);
	if (n->fault_delay) {
		for (uint16_t i = 0; i < k; i++) {
			if (n->delay_len == DELAY_SLOTS) {   /* full: the oldest goes now */
				st = drain_delayed(n, now + n->delay_tsc, fn, arg, &delivered);
				if (st < 0)
					break;
			}
			uint32_t slot = (n->delay_head + n->delay_len) & (DELAY_SLOTS - 1);
			struct held_pkt *h = &n->delay[slot];
			h->data = n->delay_mem + (size_t)slot * n->max_msg;
			h->len = m[i].len < n->max_msg ? m[i].len : n->max_msg;
			memcpy(h->data, m[i].data, h->len);
			h->peer = m[i].peer;
			h->due_tsc = now + n->delay_tsc;
			n->delay_len++;
		}
		if (st >= 0)
			st = drain_delayed(n, now, fn, arg, &delivered);
	} else {
		/* After a deliver error the rest of the burst is released unseen: unacknowledged, so the
		 * senders retransmit it and nothing is lost. */
		for (uint16_t i = 0; i < k && st >= 0; i++)
			st = rx_one(n, m[i].data, m[i].len, m[i].peer, now, fn, arg, &delivered);
	}
	if (k)
		n->ops->rx_release(n->be, m, k);
	if (n->nack)
		send_due_acks(n, now);
	if (now - n->last_scan >= n->scan_period) {
		gx_status_t s2 = scan(n, now);
		if (st >= 0)
			st = s2;
	}
	if (n->txq_len || n->nhold)
		flush(n, now);
	if (st < 0)
		return st;
	if (n->sticky < 0)
		return gx_error(n->sticky, "%s", n->sticky_msg);
	return delivered;
}

gx_status_t gx_net_check_peer(struct gx_net *n, uint32_t peer, uint64_t since_ns)
{
	if (peer >= n->nranks || !n->peer[peer].connected)
		return gx_error(GX_ERR_INVAL, "net: rank %u is not a connected peer of rank %u", peer, n->rank);
	struct peer *p = &n->peer[peer];
	if (p->dead)
		return dead_peer_status(n, peer);
	uint64_t now = gx_tsc();
	/* since_ns on the TSC time line */
	int64_t since_rel = (int64_t)(since_ns - n->ns0);
	uint64_t since_tsc = n->tsc0 + (uint64_t)((double)since_rel * (double)n->hz / 1e9);
	uint64_t heard = p->last_rx_tsc;
	if ((int64_t)(since_tsc - heard) > 0)
		heard = since_tsc;
	if ((int64_t)(now - heard) > (int64_t)n->peer_timeout)
		return peer_error(n, peer, "peer rank %u made no progress for %u ms: nothing heard from it "
				  "(last packet %u ms ago; %u packets of ours unacknowledged); is it alive and "
				  "polling?", peer, n->peer_timeout_ms, tsc_to_us(n, now - p->last_rx_tsc) / 1000,
				  p->next_psn - p->una);
	return GX_OK;
}

void gx_net_abort(struct gx_net *n)
{
	uint64_t now = gx_tsc();

	for (uint32_t i = 0; i < n->nconn; i++) {
		send_ctrl(n, n->conn[i], GX_PKT_ABORT, 0, now);
		send_ctrl(n, n->conn[i], GX_PKT_ABORT, 0, now);   /* twice: it is not retransmitted */
	}
	flush(n, now);
}

static void add_counters(struct gx_peer_counters *t, const struct gx_peer_counters *c)
{
	t->sent += c->sent;
	t->received += c->received;
	t->retransmitted += c->retransmitted;
	t->duplicates += c->duplicates;
	t->out_of_window += c->out_of_window;
	t->malformed += c->malformed;
	t->dropped += c->dropped;
	t->acks_sent += c->acks_sent;
	t->acks_received += c->acks_received;
	t->rto_events += c->rto_events;
	t->inflight += c->inflight;
	if (c->srtt_us > t->srtt_us)            /* totals: the slowest peer's RTT and RTO */
		t->srtt_us = c->srtt_us;
	if (c->rto_us > t->rto_us)
		t->rto_us = c->rto_us;
	t->fast_retransmits += c->fast_retransmits;
	t->heartbeats_sent += c->heartbeats_sent;
	t->fault_dropped += c->fault_dropped;
	t->fault_duplicated += c->fault_duplicated;
	t->fault_reordered += c->fault_reordered;
}

void gx_net_peer_counters(const struct gx_net *n, uint32_t peer, struct gx_peer_counters *c)
{
	memset(c, 0, sizeof(*c));
	if (peer == GX_PEER_ANY) {
		add_counters(c, &n->unattributed);
		for (uint32_t i = 0; i < n->nranks; i++) {
			struct gx_peer_counters one;
			if (i == n->rank)
				continue;
			gx_net_peer_counters(n, i, &one);
			add_counters(c, &one);
		}
		return;
	}
	if (peer >= n->nranks)
		return;
	const struct peer *p = &n->peer[peer];
	*c = p->c;
	c->srtt_us = p->srtt ? tsc_to_us(n, p->srtt) : 0;
	c->rto_us = p->connected ? tsc_to_us(n, rto_of(n, p)) : 0;
	c->inflight = p->next_psn - p->una;
}

void gx_net_backend_counters(const struct gx_net *n, struct gx_backend_counters *c)
{
	n->ops->counters(n->be, c);
}

static gx_status_t discard(void *arg, uint32_t peer, const struct gx_hdr *h, const void *payload,
			   uint32_t len)
{
	(void)arg;
	(void)peer;
	(void)h;
	(void)payload;
	(void)len;
	return GX_OK;
}

void gx_net_close(struct gx_net *n)
{
	if (!n)
		return;
	if (n->be) {
		/* Grace period: keep acknowledging and retransmitting until our data has arrived (or the
		 * peers are gone); data that still arrives now has no reader and is discarded. */
		uint64_t grace_ms = n->peer_timeout_ms < CLOSE_GRACE_MS ? n->peer_timeout_ms : CLOSE_GRACE_MS;
		uint64_t start = gx_now_ns(), idle_since = start;
		while (n->inflight && n->sticky >= 0 && gx_now_ns() - start < grace_ms * 1000000ull) {
			int r = gx_net_poll(n, discard, NULL);
			if (r < 0)
				break;
			uint64_t t = gx_now_ns();
			if (r > 0)
				idle_since = t;
			gx_idle_backoff(t - idle_since);
		}
		/* Last ACKs for what arrived. */
		for (uint32_t i = 0; i < n->nack; i++)
			if (n->peer[n->ack_list[i]].ack_pending)
				send_ack(n, n->ack_list[i], gx_tsc());
		n->nack = 0;
		flush(n, gx_tsc());
		n->ops->close(n->be);
	}
	if (n->peer)
		for (uint32_t i = 0; i < n->nranks; i++) {
			free(n->peer[i].slot);
			free(n->peer[i].buf);
			free(n->peer[i].rx_bits);
		}
	free(n->peer);
	free(n->conn);
	free(n->ack_list);
	free(n->ctrl);
	free(n->hold_mem);
	free(n->delay_mem);
	free(n);
}
