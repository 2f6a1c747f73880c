/* net_liveness.c: is a peer alive?  Peer errors (sticky: every later poll returns them), dead and
 * aborted peers, gx_net_check_peer for peers a collective waits on, gx_net_abort, and the
 * accounting that keeps this rank's own pauses between polls from counting against its peers. */
#include <stdarg.h>
#include <stdio.h>

#include "net_internal.h"

gx_status_t net_peer_error(struct gx_net *n, uint32_t peer, const char *fmt, ...)
{
	va_list ap;

	n->peer[peer].dead = 1;
	va_start(ap, fmt);
	vsnprintf(n->sticky_msg, sizeof(n->sticky_msg), fmt, ap);
	va_end(ap);
	n->sticky = GX_ERR_PEER;
	return gx_error(GX_ERR_PEER, "%s", n->sticky_msg);
}

gx_status_t net_dead_peer_status(struct gx_net *n, uint32_t peer)
{
	if (n->sticky < 0)
		return gx_error(n->sticky, "%s", n->sticky_msg);
	return gx_error(GX_ERR_PEER, "peer rank %u is dead or aborted", peer);
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
void net_discount_pause(struct gx_net *n, uint64_t now)
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

gx_status_t gx_net_check_peer(struct gx_net *n, uint32_t peer, uint64_t since_ns)
{
	if (peer >= n->nranks || !n->peer[peer].connected)
		return gx_error(GX_ERR_INVAL, "net: rank %u is not a connected peer of rank %u", peer, n->rank);
	struct peer *p = &n->peer[peer];
	if (p->dead)
		return net_dead_peer_status(n, peer);
	uint64_t now = gx_tsc();
	/* since_ns on the TSC time line */
	int64_t since_rel = (int64_t)(since_ns - n->ns0);
	uint64_t since_tsc = n->tsc0 + (uint64_t)((double)since_rel * (double)n->hz / 1e9);
	uint64_t heard = p->last_rx_tsc;
	if ((int64_t)(since_tsc - heard) > 0)
		heard = since_tsc;
	if ((int64_t)(now - heard) > (int64_t)n->peer_timeout)
		return net_peer_error(n, peer, "peer rank %u made no progress for %u ms: nothing heard from it "
				  "(last packet %u ms ago; %u packets of ours unacknowledged); is it alive and "
				  "polling?", peer, n->peer_timeout_ms, tsc_to_us(n, now - p->last_rx_tsc) / 1000,
				  p->next_psn - p->una);
	return GX_OK;
}

void gx_net_abort(struct gx_net *n)
{
	uint64_t now = gx_tsc();

	for (uint32_t i = 0; i < n->nconn; i++) {
		net_send_ctrl(n, n->conn[i], GX_PKT_ABORT, 0, now);
		net_send_ctrl(n, n->conn[i], GX_PKT_ABORT, 0, now);   /* twice: it is not retransmitted */
	}
	net_tx_flush(n, now);
}
