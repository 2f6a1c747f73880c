/* net_liveness.c: is a peer alive?  Peer errors (sticky: every later poll returns them), dead and
 * aborted peers, gx_net_check_peer for peers a collective waits on, gx_net_abort, and the
 * accounting that keeps this rank's own pauses between polls from counting against its peers. */
#include <stdarg.h>
#include <stdio.h>

#include "net_internal.h"

static gx_status_t net_vfail(struct gx_net *n, gx_status_t status, const struct gx_abort *why,
			     const char *fmt, va_list ap)
{
	if (n->sticky >= 0) {           /* the first failure is the one that explains the rest */
		vsnprintf(n->sticky_msg, sizeof(n->sticky_msg), fmt, ap);
		n->sticky = status;
		n->why = *why;
	}
	return gx_error(n->sticky, "%s", n->sticky_msg);
}

gx_status_t gx_net_fail(struct gx_net *n, gx_status_t status, const struct gx_abort *why, const char *fmt, ...)
{
	struct gx_abort w = *why;
	va_list ap;

	w.from = n->rank;
	va_start(ap, fmt);
	gx_status_t st = net_vfail(n, status < 0 ? status : GX_ERR_PEER, &w, fmt, ap);
	va_end(ap);
	return st;
}

gx_status_t gx_net_failure(const struct gx_net *n, struct gx_abort *why)
{
	if (n->sticky >= 0)
		return GX_ERR_INVAL;
	*why = n->why;
	return GX_OK;
}

gx_status_t net_peer_error(struct gx_net *n, uint32_t peer, const struct gx_abort *why, const char *fmt, ...)
{
	va_list ap;

	n->peer[peer].dead = 1;
	va_start(ap, fmt);
	gx_status_t st = net_vfail(n, GX_ERR_PEER, why, fmt, ap);
	va_end(ap);
	return st;
}

gx_status_t net_dead_peer_status(struct gx_net *n, uint32_t peer)
{
	if (n->sticky < 0)
		return gx_error(n->sticky, "%s", n->sticky_msg);
	return gx_error(GX_ERR_PEER, "peer rank %u is dead or aborted", peer);
}

static const char *signal_name(uint32_t signo)
{
	return signo == 2 ? "SIGINT" : signo == 15 ? "SIGTERM" : signo == 9 ? "SIGKILL" : "a signal";
}

gx_status_t net_abort_received(struct gx_net *n, uint32_t src, const struct gx_abort *a)
{
	struct gx_abort w = *a;       /* from: who found the failure (src may be passing it on) */
	struct peer *p = &n->peer[src];

	if (a->from == src || !p->has_abort) {   /* a peer's own news is not overwritten by a relay */
		p->abort = w;
		p->has_abort = 1;
	}
	if (a->reason == GX_ABORT_LEFT) {
		/* It finished: everything it sends arrived (it waits for its ACKs before it says so), and
		 * what we still had in flight to it is of no use to it any more. */
		p->left = 1;
		n->inflight -= p->next_psn - p->una;
		p->una = p->next_psn;
		return GX_OK;
	}
	switch (a->reason) {
	case GX_ABORT_SIGNAL:
		return net_peer_error(n, src, &w, "peer rank %u was stopped by %s and aborted the job", src,
				      signal_name(a->detail));
	case GX_ABORT_DEAD:
		if (a->rank == n->rank)
			return net_peer_error(n, src, &w, "peer rank %u heard nothing from this rank for %u ms and "
					      "aborted the job: was this rank stopped or cut off?", a->from, a->detail);
		if (a->rank != src)
			n->peer[a->rank].dead = 1;
		return net_peer_error(n, src, &w, "peer rank %u is dead: rank %u heard nothing from it for %u ms "
				      "and aborted the job", a->rank, a->from, a->detail);
	case GX_ABORT_COLL:
		return net_peer_error(n, src, &w, "peer rank %u aborted the job: a collective failed at rank %u",
				      src, a->rank);
	default:
		if (a->rank != src && a->rank < n->nranks)
			return net_peer_error(n, src, &w, "peer rank %u aborted the job after rank %u failed (see "
					      "rank %u's output)", src, a->rank, a->rank);
		return net_peer_error(n, src, &w, "peer rank %u stopped on an error and aborted the job (see its "
				      "output)", src);
	}
}

gx_status_t net_interrupted(struct gx_net *n, int signo)
{
	struct gx_abort why = { .reason = GX_ABORT_SIGNAL, .rank = n->rank, .detail = (uint32_t)signo,
				.from = n->rank };
	n->interrupted = true;
	if (n->sticky >= 0) {
		n->sticky = GX_ERR_INTERRUPTED;
		n->why = why;
		snprintf(n->sticky_msg, sizeof(n->sticky_msg), "rank %u interrupted by %s: told its peers and "
			 "stopped", n->rank, signal_name((uint32_t)signo));
	}
	gx_net_abort(n);
	return gx_error(n->sticky, "%s", n->sticky_msg);
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
	if (p->left)
		return GX_OK;
	uint64_t now = gx_tsc();
	/* since_ns on the TSC time line */
	int64_t since_rel = (int64_t)(since_ns - n->ns0);
	uint64_t since_tsc = n->tsc0 + (uint64_t)((double)since_rel * (double)n->hz / 1e9);
	uint64_t heard = p->last_rx_tsc;
	if ((int64_t)(since_tsc - heard) > 0)
		heard = since_tsc;
	if ((int64_t)(now - heard) > (int64_t)n->peer_timeout)
		return net_peer_error(n, peer, &(struct gx_abort){ .reason = GX_ABORT_DEAD, .rank = peer,
				      .detail = n->peer_timeout_ms, .from = n->rank },
				      "peer rank %u made no progress for %u ms: nothing heard from it "
				  "(last packet %u ms ago; %u packets of ours unacknowledged); is it alive and "
				  "polling?", peer, n->peer_timeout_ms, tsc_to_us(n, now - p->last_rx_tsc) / 1000,
				  p->next_psn - p->una);
	return GX_OK;
}

int gx_net_peer_abort(const struct gx_net *n, uint32_t peer, struct gx_abort *a)
{
	if (peer >= n->nranks || !n->peer[peer].has_abort)
		return 0;
	*a = n->peer[peer].abort;
	return 1;
}

int gx_net_peer_left(const struct gx_net *n, uint32_t peer)
{
	return peer < n->nranks && n->peer[peer].left;
}

void gx_net_send_abort(struct gx_net *n, const struct gx_abort *why)
{
	uint64_t now = gx_tsc();

	n->abort_sent = true;
	for (uint32_t i = 0; i < n->nconn; i++)
		if (!n->peer[n->conn[i]].left)
			net_send_abort(n, n->conn[i], why, now);
	net_tx_flush(n, now);
}

void gx_net_abort(struct gx_net *n)
{
	struct gx_abort why = { .reason = GX_ABORT_ERROR, .rank = n->rank, .from = n->rank };

	gx_net_send_abort(n, n->sticky < 0 ? &n->why : &why);
}
