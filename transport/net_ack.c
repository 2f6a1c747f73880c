/* net_ack.c: acknowledgements and recovery.  The receiver coalesces ACKs (a quarter window of
 * packets, ACK_REQ, a hole, a short pause) and grants credits in them; the sender takes RTT samples
 * (Karn's rule, with the echo of first transmissions), keeps sRTT/RTTvar and the backed-off RTO,
 * repairs SACK holes at once (fast retransmit) and everything else from a periodic scan that also
 * sends heartbeats and names peers that make no progress. */
#include <string.h>

#include "net_internal.h"

void net_fast_retransmit(struct gx_net *n, struct peer *p, uint32_t peer, uint32_t hi_sacked)
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

/* Due: at once when asked (ACK_REQ, a hole, a duplicate, ack_every packets since the last: a
 * quarter window, 16..64), else once the peer's DATA paused for ACK_IDLE_US, or after at most
 * ACK_DELAY_MAX_US while DATA keeps coming without a packet going back to ride on.  Senders that
 * need an ACK to go on ask for it (ACK_REQ at half and full window, low credit), so a receiver that
 * merely ran dry does not ACK at once: on backends where every frame costs a system call (udp,
 * af_packet) each ACK costs about as much as a data packet.  Called after a whole rx burst, so a
 * burst yields at most one ACK per peer. */
void net_send_due_acks(struct gx_net *n, uint64_t now)
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
			net_send_ack(n, peer, now);
			p->ack_listed = 0;
			continue;
		}
		n->ack_list[keep++] = peer;
	}
	n->nack = keep;
}

/* The periodic scan: retransmit what timed out, heartbeat idle peers, declare silent ones dead. */
gx_status_t net_scan(struct gx_net *n, uint64_t now)
{
	gx_status_t st = GX_OK;

	n->last_scan = now;
	if (n->nhold)
		net_fault_release_held(n);
	for (uint32_t i = 0; i < n->nconn; i++) {
		uint32_t peer = n->conn[i];
		struct peer *p = &n->peer[peer];
		if (p->dead || p->left)
			continue;
		if (p->next_psn != p->una) {
			if (now - p->last_progress_tsc > n->peer_timeout) {
				struct tx_slot *s = &p->slot[p->una & n->wmask];
				st = net_peer_error(n, peer, &(struct gx_abort){ .reason = GX_ABORT_DEAD,
					.rank = peer, .detail = n->peer_timeout_ms, .from = n->rank },
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
			net_send_ctrl(n, peer, GX_PKT_HEARTBEAT, probe ? GX_F_ACK_REQ : 0, now);
			p->c.heartbeats_sent++;
		}
	}
	return st;
}
