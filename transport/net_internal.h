/* net_internal.h: the reliable net's state and the functions its files share (not installed).
 *
 * The net is split by concern, each file calling only the ones listed before it:
 *   net_fault.c     fault injection: drop, duplicate, reorder on send; delay on receive
 *   net_tx.c        the transmit queue, bursts to the backend, control packets (ACK, heartbeat, abort)
 *   net_liveness.c  peer timeouts, dead and aborted peers, pauses between polls
 *   net_ack.c       ACK coalescing and sending, fast retransmit, the periodic loss scan (RTO,
 *                   heartbeats); the per-packet part (cumulative ACKs, RTT samples, the list of
 *                   peers owed an ACK) is inline at the end of this header, for the receive path
 *   net.c           the API: create, connect, reserve/commit, the receive path, poll, counters
 */
#ifndef GX_NET_INTERNAL_H
#define GX_NET_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <sodium.h>

#include "gx_backend.h"
#include "gx_rng.h"
#include "gx_time.h"

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
	uint32_t pcrc;                  /* CRC32C of the payload, computed once at commit */
	uint16_t nsent;
	uint8_t sacked;
	uint8_t fast;                   /* already fast-retransmitted */
};

struct peer {
	uint8_t connected, dead, left, ack_listed;
	uint8_t has_abort;
	struct gx_abort abort;          /* the last ABORT it sent us */
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
	uint32_t ctrl_seen;             /* newest control sequence number taken from this peer */
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
	uint32_t rank, nranks;
	uint64_t job;                   /* identity stamped on and required of every packet */
	uint32_t incarnation;
	bool auth;                      /* keyed: a MAC trailer instead of the CRC seal */
	uint32_t trailer;               /* bytes after the payload: GX_MAC_LEN when keyed, else 0 */
	uint8_t key[crypto_generichash_KEYBYTES];
	uint32_t ctrl_seq;              /* control packets sent (their psn), against replays */
	uint32_t window, wmask, max_msg, max_sack_words;
	uint32_t slot_stride;           /* bytes between send slots: max_msg rounded up to a cache line */
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
	gx_status_t sticky;             /* the net's failure, returned by every later poll */
	char sticky_msg[400];
	struct gx_abort why;            /* what ABORT tells the peers about it */
	bool abort_sent, interrupted;
	uint32_t stall_timeout_ms;

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
	return p->buf + (size_t)(psn & n->wmask) * n->slot_stride;
}

static inline uint64_t rto_of(const struct gx_net *n, const struct peer *p)
{
	uint64_t r = p->rto_base << (p->backoff < 16 ? p->backoff : 16);
	return r > n->rto_max ? n->rto_max : r;
}

/* ---- net_fault.c ---- */
/* Thresholds, key and buffers of the fault hooks from o->fault.  GX_ERR_NOMEM with a message. */
gx_status_t net_fault_setup(struct gx_net *n, const struct gx_fault *f);
void net_fault_free(struct gx_net *n);
uint8_t net_fault_decide(struct gx_net *n, uint32_t peer);
uint32_t net_fault_apply(struct gx_net *n, struct txq_ent *e, const struct gx_msg *m, uint64_t now);
void net_fault_release_held(struct gx_net *n);
/* Receive delay: hold a received datagram until now + delay (false: every slot is taken). */
bool net_fault_delay_push(struct gx_net *n, const struct gx_msg *m, uint64_t now);
/* The oldest held datagram due at `now`, or NULL; valid until the next push. */
const struct held_pkt *net_fault_delay_pop(struct gx_net *n, uint64_t now);

static inline void txq_push(struct gx_net *n, uint32_t peer, uint32_t psn, uint8_t *data, uint32_t len,
			    uint8_t kind)
{
	struct txq_ent *e = &n->txq[(n->txq_head + n->txq_len) & (TXQ_SIZE - 1)];

	e->peer = peer;
	e->psn = psn;
	e->data = data;
	e->len = len;
	e->kind = kind;
	e->fate = n->fault_tx ? net_fault_decide(n, peer) : FATE_SEND;
	n->txq_len++;
}

/* ---- net_tx.c ---- */
void net_tx_flush(struct gx_net *n, uint64_t now);
uint8_t *net_ctrl_alloc(struct gx_net *n, uint64_t now);
void net_send_ack(struct gx_net *n, uint32_t peer, uint64_t now);
void net_send_ctrl(struct gx_net *n, uint32_t peer, uint8_t type, uint8_t flags, uint64_t now);

static inline void hdr_init(struct gx_net *n, struct gx_hdr *h, uint8_t type)
{
	memset(h, 0, sizeof(*h));
	h->psn = ++n->ctrl_seq;             /* a control packet's psn only ever grows: replays show */
	h->magic = GX_MAGIC;
	h->version = GX_WIRE_VERSION;
	h->type = type;
	h->src_rank = (uint16_t)n->rank;
	h->job = n->job;
	h->incarnation = n->incarnation;
}

/* The seal of a packet whose header and h->len payload bytes are contiguous at h: keyed, a
 * BLAKE2b-128 MAC (libsodium) over both, written after the payload (crc 0); else the CRC32C seal,
 * continuing from pcrc, the payload's CRC. */
static inline void net_seal(const struct gx_net *n, struct gx_hdr *h, uint32_t pcrc)
{
	if (n->auth) {
		h->crc = 0;
		crypto_generichash((uint8_t *)(h + 1) + h->len, GX_MAC_LEN, (const uint8_t *)h,
				   sizeof(*h) + h->len, n->key, sizeof(n->key));
	} else {
		h->crc = gx_hdr_crc(h, pcrc);
	}
}

/* ---- net_liveness.c ---- */
gx_status_t net_peer_error(struct gx_net *n, uint32_t peer, const struct gx_abort *why, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* An ABORT from src (payload already length-checked): take its news. */
gx_status_t net_abort_received(struct gx_net *n, uint32_t src, const struct gx_abort *a);
/* gx_interrupt() was called: fail with GX_ERR_INTERRUPTED and tell the peers. */
gx_status_t net_interrupted(struct gx_net *n, int signo);
/* Send ABORT carrying `why` to one peer (twice: control packets are not retransmitted). */
void net_send_abort(struct gx_net *n, uint32_t peer, const struct gx_abort *why, uint64_t now);
gx_status_t net_dead_peer_status(struct gx_net *n, uint32_t peer);
void net_discount_pause(struct gx_net *n, uint64_t now);

/* ---- net_ack.c ---- */
void net_fast_retransmit(struct gx_net *n, struct peer *p, uint32_t peer, uint32_t hi_sacked);
void net_send_due_acks(struct gx_net *n, uint64_t now);
gx_status_t net_scan(struct gx_net *n, uint64_t now);


/* ---- per-packet ACK bookkeeping, inlined into the receive path (net.c) ---- */

static inline void net_rtt_sample(struct gx_net *n, struct peer *p, uint64_t r)
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
static inline void net_ack_cumulative(struct gx_net *n, struct peer *p, uint32_t ack_psn, bool echo_orig, uint64_t now)
{
	int32_t adv = psn_diff(ack_psn, p->una);

	if (adv <= 0)
		return;
	struct tx_slot *last = &p->slot[(ack_psn - 1) & n->wmask];
	if (echo_orig) {
		/* Timed from its first send even if resent since: a resend was then spurious (the
		 * receiver was slow to ACK, e.g. asleep in its idle back-off), and the sample teaches
		 * the RTO that delay.  Karn's rule would hide it forever. */
		net_rtt_sample(n, p, now - last->first_tsc);
	} else {
		/* Karn: sample only when nothing in the acknowledged range was retransmitted; packets
		 * behind a repaired hole waited for the repair, and their delay is not the path's. */
		bool clean = true;
		for (uint32_t psn = p->una; psn != ack_psn && clean; psn++)
			clean = p->slot[psn & n->wmask].nsent == 1;
		if (clean)
			net_rtt_sample(n, p, now - last->sent_tsc);
	}
	p->una = ack_psn;
	n->inflight -= (uint32_t)adv;
	p->backoff = 0;
	p->last_progress_tsc = now;
}

static inline void net_ack_list_add(struct gx_net *n, struct peer *p, uint32_t peer, uint64_t now)
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

#endif
