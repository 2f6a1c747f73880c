/* net_tx.c: the transmit side of the net: the queue that batches committed packets into bursts
 * of up to NET_BURST for the backend (fault hooks applied on the way), and the control packets
 * (ACK with its SACK bitmap and credits, heartbeat, abort) built in a small ring of buffers. */
#include <string.h>

#include "net_internal.h"

/* Stamp the fields only known at departure (ack_psn; for ACKs the whole packet is built at once)
 * and seal the packet: the payload's CRC was taken at commit, the header's is added now. */
static inline void stamp_data(const struct gx_net *n, struct peer *p, struct gx_hdr *h, uint32_t pcrc, uint64_t now)
{
	h->ack_psn = p->rcv_nxt;
	net_seal(n, h, pcrc);
	if (p->ack_pending && !p->need_sack && !p->ack_now) {
		p->ack_pending = 0;             /* the cumulative ACK rides on this packet */
		p->ack_orig = 0;
		p->rx_since_ack = 0;
	}
	p->last_tx_tsc = now;
}

void net_tx_flush(struct gx_net *n, uint64_t now)
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
				stamp_data(n, p, (struct gx_hdr *)x.data, p->slot[i].pcrc, now);
				if (!p->slot[i].nsent)
					p->slot[i].first_tsc = now;
				p->slot[i].sent_tsc = now;
				p->slot[i].nsent++;
			}
			uint32_t copies = e->fate == FATE_SEND ? 1 : net_fault_apply(n, e, &x, now);
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
		net_fault_release_held(n);
}

void gx_net_flush(struct gx_net *n)
{
	if (n->txq_len || n->nhold)
		net_tx_flush(n, gx_tsc());
}

uint8_t *net_ctrl_alloc(struct gx_net *n, uint64_t now)
{
	if (n->txq_len >= TXQ_SIZE || n->ctrl_queued >= CTRL_SLOTS)
		net_tx_flush(n, now);
	/* Buffers are handed out round-robin and the queue is FIFO, so while fewer than CTRL_SLOTS
	 * are queued the next one is free.  A backend that stays full loses the ACK: it is resent. */
	if (n->txq_len >= TXQ_SIZE || n->ctrl_queued >= CTRL_SLOTS)
		return NULL;
	n->ctrl_queued++;
	uint8_t *b = n->ctrl + (size_t)(n->ctrl_next & (CTRL_SLOTS - 1)) * n->ctrl_bytes;
	n->ctrl_next++;
	return b;
}

static inline uint64_t bits_at(const uint64_t *bits, uint32_t wmask, uint32_t pos)
{
	uint32_t idx = pos & wmask, w = idx >> 6, o = idx & 63, nw = (wmask + 1) >> 6;
	uint64_t v = bits[w] >> o;
	if (o)
		v |= bits[(w + 1) & (nw - 1)] << (64 - o);
	return v;
}

void net_send_ack(struct gx_net *n, uint32_t peer, uint64_t now)
{
	struct peer *p = &n->peer[peer];
	uint8_t *b = net_ctrl_alloc(n, now);

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
	net_seal(n, h, n->auth ? 0 : gx_crc32c(h + 1, h->len, 0));   /* keyed: the MAC covers it */
	txq_push(n, peer, 0, b, (uint32_t)sizeof(*h) + 8 * words + n->trailer, TXQ_CTRL);
}

void net_send_abort(struct gx_net *n, uint32_t peer, const struct gx_abort *why, uint64_t now)
{
	for (int copy = 0; copy < 2; copy++) {
		uint8_t *b = net_ctrl_alloc(n, now);
		if (!b)
			return;
		struct gx_hdr *h = (struct gx_hdr *)b;
		hdr_init(n, h, GX_PKT_ABORT);
		h->ack_psn = n->peer[peer].rcv_nxt;
		h->len = (uint16_t)sizeof(*why);
		memcpy(h + 1, why, sizeof(*why));
		net_seal(n, h, n->auth ? 0 : gx_crc32c(h + 1, h->len, 0));
		txq_push(n, peer, 0, b, (uint32_t)sizeof(*h) + h->len + n->trailer, TXQ_CTRL);
	}
}

void net_send_ctrl(struct gx_net *n, uint32_t peer, uint8_t type, uint8_t flags, uint64_t now)
{
	uint8_t *b = net_ctrl_alloc(n, now);

	if (!b)
		return;
	struct gx_hdr *h = (struct gx_hdr *)b;
	hdr_init(n, h, type);
	h->flags = flags;
	h->ack_psn = n->peer[peer].rcv_nxt;
	net_seal(n, h, 0);
	txq_push(n, peer, 0, b, (uint32_t)sizeof(*h) + n->trailer, TXQ_CTRL);
}
