/* net_fault.c: the fault hooks every backend gets for tests: on send, drop, duplicate or hold back
 * (reorder) each packet with the configured probabilities, decided once per packet from a counter
 * RNG keyed by the seed and rank (reproducible); on receive, hold every datagram for delay_us. */
#include <stdlib.h>
#include <string.h>

#include "net_internal.h"

static inline uint32_t fault_draw(struct gx_net *n)
{
	return gx_rng_u32(n->fault_key, n->fault_ctr++);
}

/* Fault hooks on the way out, decided once per queued packet (a packet the backend refuses and that
 * is offered again keeps its fate). */
uint8_t net_fault_decide(struct gx_net *n, uint32_t peer)
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

/* How many copies of m leave now (0, 1 or 2).  A reordered packet is copied aside and sent after the
 * packets of the next flush; its queue entry then becomes a drop so a retry cannot send it twice. */
uint32_t net_fault_apply(struct gx_net *n, struct txq_ent *e, const struct gx_msg *m, uint64_t now)
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

void net_fault_release_held(struct gx_net *n)
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

gx_status_t net_fault_setup(struct gx_net *n, const struct gx_fault *f)
{
	n->fault = *f;
	n->fault_tx = f->drop > 0 || f->dup > 0 || f->reorder > 0;
	n->fault_delay = f->delay_us > 0;
	n->fault_thr_drop = (uint32_t)(f->drop * 4294967295.0);
	n->fault_thr_dup = (uint32_t)(f->dup * 4294967295.0);
	n->fault_thr_reorder = (uint32_t)(f->reorder * 4294967295.0);
	n->fault_key = gx_rng_key(f->seed, n->rank, 0, 0x66617574u);
	if (n->fault_tx && !(n->hold_mem = malloc((size_t)HOLD_SLOTS * n->max_msg)))
		return gx_error(GX_ERR_NOMEM, "net: out of memory for fault injection");
	if (n->fault_delay) {
		n->delay_tsc = us_to_tsc(n, f->delay_us);
		if (!(n->delay_mem = malloc((size_t)DELAY_SLOTS * n->max_msg)))
			return gx_error(GX_ERR_NOMEM, "net: out of memory for fault injection");
	}
	return GX_OK;
}

void net_fault_free(struct gx_net *n)
{
	free(n->hold_mem);
	free(n->delay_mem);
}

bool net_fault_delay_push(struct gx_net *n, const struct gx_msg *m, uint64_t now)
{
	if (n->delay_len == DELAY_SLOTS)
		return false;
	uint32_t slot = (n->delay_head + n->delay_len) & (DELAY_SLOTS - 1);
	struct held_pkt *h = &n->delay[slot];
	h->data = n->delay_mem + (size_t)slot * n->max_msg;
	h->len = m->len < n->max_msg ? m->len : n->max_msg;
	memcpy(h->data, m->data, h->len);
	h->peer = m->peer;
	h->due_tsc = now + n->delay_tsc;
	n->delay_len++;
	return true;
}

const struct held_pkt *net_fault_delay_pop(struct gx_net *n, uint64_t now)
{
	if (!n->delay_len)
		return NULL;
	const struct held_pkt *h = &n->delay[n->delay_head];
	if ((int64_t)(now - h->due_tsc) < 0)
		return NULL;
	n->delay_head = (n->delay_head + 1) & (DELAY_SLOTS - 1);
	n->delay_len--;
	return h;
}
