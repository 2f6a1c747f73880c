/* net.c: the reliability layer shared by every datagram backend (docs/transport.md): its API and
 * the receive path.  net_internal.h lists the files the rest is split into.
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
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx_signal.h"

#include "net_internal.h"
#include "transport_internal.h"


/* Keyed (--auth-key-file): the key is BLAKE2b-256 of the file's contents, so any file of 16 bytes
 * or more will do (e.g. head -c 32 /dev/urandom); every rank must read the same one. */
static gx_status_t net_auth_setup(struct gx_net *n, const struct gx_transport_opts *o)
{
	const char *path = o->auth_key_file;
	uint8_t buf[4096];
	size_t got = 0, r;

	if (!path || !*path)
		return GX_OK;
	if (sodium_init() < 0)
		return gx_error(GX_ERR_IO, "net: libsodium could not start");
	FILE *f = fopen(path, "rb");
	if (!f)
		return gx_error(GX_ERR_INVAL, "--auth-key-file %s: %s", path, strerror(errno));
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof(n->key));
	while ((r = fread(buf, 1, sizeof(buf), f)) > 0) {
		crypto_generichash_update(&st, buf, r);
		got += r;
	}
	fclose(f);
	crypto_generichash_final(&st, n->key, sizeof(n->key));
	sodium_memzero(buf, sizeof(buf));
	if (got < 16)
		return gx_error(GX_ERR_INVAL, "--auth-key-file %s holds %zu bytes: a key needs at least 16 "
				"(e.g. head -c 32 /dev/urandom > FILE, the same file on every rank)", path, got);
	n->auth = true;
	n->trailer = GX_MAC_LEN;
	if (n->max_msg < sizeof(struct gx_hdr) + GX_MAC_LEN + 8)
		return gx_error(GX_ERR_INVAL, "net: datagrams of %u bytes leave no room for the MAC", n->max_msg);
	return GX_OK;
}

gx_status_t gx_net_create(const struct gx_transport_opts *opts, struct gx_net **out)
{
	struct gx_transport_opts oo = *opts, *o = &oo;
	const struct gx_backend_ops *ops;
	struct gx_net *n;
	gx_status_t st;

	*out = NULL;
	gx_transport_opts_fill(o);            /* what the caller left 0 takes the table's default */
	if ((st = gx_backend_find(o->backend, &ops)) < 0)
		return st;
	if (!o->nranks || o->nranks > GX_MAX_RANKS || o->rank >= o->nranks)
		return gx_error(GX_ERR_INVAL, "net: rank %u of %u ranks is impossible (1..%u ranks, rank < ranks)",
				o->rank, o->nranks, GX_MAX_RANKS);
	if (o->window > WINDOW_MAX)
		return gx_error(GX_ERR_INVAL, "net: window %u too large (at most %u packets in flight per peer)",
				o->window, WINDOW_MAX);
	if (o->fault.drop < 0 || o->fault.drop > 1 || o->fault.dup < 0 || o->fault.dup > 1 ||
	    o->fault.reorder < 0 || o->fault.reorder > 1)
		return gx_error(GX_ERR_INVAL, "fault probabilities must be in [0, 1] (drop %g, dup %g, reorder %g)",
				o->fault.drop, o->fault.dup, o->fault.reorder);
	n = calloc(1, sizeof(*n));
	if (!n)
		return gx_error(GX_ERR_NOMEM, "net: out of memory");
	n->ops = ops;
	if ((st = ops->create(o, &n->be)) < 0)
		goto fail;
	st = GX_ERR_NOMEM;
	n->rank = o->rank;
	n->nranks = o->nranks;
	n->job = o->job_id;                    /* until gx_net_set_identity (the rendezvous) */
	n->max_msg = ops->max_msg(n->be);
	if (n->max_msg < sizeof(struct gx_hdr) + 8) {
		st = gx_error(GX_ERR_INVAL, "net: backend '%s' carries only %u bytes per datagram", ops->name,
			      n->max_msg);
		goto fail;
	}
	uint32_t w = o->window;
	n->window = WINDOW_MIN;
	while (n->window < w)
		n->window <<= 1;
	n->wmask = n->window - 1;
	if ((st = net_auth_setup(n, o)) < 0)
		goto fail;
	st = GX_ERR_NOMEM;
	n->max_sack_words = (n->max_msg - (uint32_t)sizeof(struct gx_hdr) - n->trailer) / 8;
	if (n->max_sack_words > n->window / 64)
		n->max_sack_words = n->window / 64;
	n->ctrl_bytes = (uint32_t)sizeof(struct gx_hdr) + 8 * n->max_sack_words + n->trailer;
	if (n->ctrl_bytes < sizeof(struct gx_hdr) + sizeof(struct gx_abort) + n->trailer)
		n->ctrl_bytes = (uint32_t)(sizeof(struct gx_hdr) + sizeof(struct gx_abort)) + n->trailer;
	n->peer = calloc(n->nranks, sizeof(*n->peer));
	n->conn = calloc(n->nranks, sizeof(*n->conn));
	n->ack_list = calloc(n->nranks, sizeof(*n->ack_list));
	n->ctrl = malloc((size_t)CTRL_SLOTS * n->ctrl_bytes);
	if (!n->peer || !n->conn || !n->ack_list || !n->ctrl) {
		st = gx_error(GX_ERR_NOMEM, "net: out of memory for %u peers", n->nranks);
		goto fail;
	}

	n->hz = gx_tsc_hz();
	n->tsc0 = gx_tsc();
	n->ns0 = gx_now_ns();
	n->rto_min = us_to_tsc(n, o->rto_min_us);
	n->rto_max = us_to_tsc(n, RTO_MAX_US);
	if (n->rto_max < n->rto_min)
		n->rto_max = n->rto_min;
	n->ack_idle = us_to_tsc(n, ACK_IDLE_US);
	n->ack_delay_max = us_to_tsc(n, ACK_DELAY_MAX_US);
	n->ack_every = n->window / 4 < ACK_EVERY_MIN ? ACK_EVERY_MIN :
		       n->window / 4 > ACK_EVERY_MAX ? ACK_EVERY_MAX : n->window / 4;
	n->scan_period = n->rto_min / 2;
	n->peer_timeout_ms = o->peer_timeout_ms;
	n->stall_timeout_ms = o->stall_timeout_ms;
	n->first_psn = o->first_psn;
	n->peer_timeout = us_to_tsc(n, (uint64_t)n->peer_timeout_ms * 1000);
	n->heartbeat = n->peer_timeout / 4;
	n->last_scan = n->last_poll = n->tsc0;
	n->pause_min = us_to_tsc(n, POLL_PAUSE_US);
	if (n->pause_min > n->peer_timeout / 16)
		n->pause_min = n->peer_timeout / 16;

	if ((st = net_fault_setup(n, &o->fault)) < 0)
		goto fail;
	*out = n;
	return GX_OK;
fail:
	gx_net_destroy(n);
	return st;
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
	/* A backend may lower its datagram size to the peer's (udp --mtu auto on hosts whose MTUs
	 * differ): fine until a send ring is laid out in the larger size. */
	uint32_t mm = n->ops->max_msg(n->be);
	if (mm < n->max_msg) {
		for (uint32_t i = 0; i < n->nranks; i++)
			if (n->peer[i].buf)
				return gx_error(GX_ERR_INVAL, "net: rank %u sends datagrams of at most %u bytes, this "
						"rank already sends %u: give every rank the same --mtu", peer, mm,
						n->max_msg);
		n->max_msg = mm;
		uint32_t words = (n->max_msg - (uint32_t)sizeof(struct gx_hdr) - n->trailer) / 8;
		if (words < n->max_sack_words)
			n->max_sack_words = words;      /* an ACK must fit the smaller datagram too */
	}
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
	return n->max_msg - (uint32_t)sizeof(struct gx_hdr) - n->trailer;
}

uint32_t gx_net_rank(const struct gx_net *n)
{
	return n->rank;
}

uint32_t gx_net_nranks(const struct gx_net *n)
{
	return n->nranks;
}

void gx_net_identity(const struct gx_net *n, uint64_t *job, uint32_t *incarnation)
{
	*job = n->job;
	*incarnation = n->incarnation;
}

gx_status_t gx_net_set_identity(struct gx_net *n, uint64_t job, uint32_t incarnation)
{
	if (n->nconn)
		return gx_error(GX_ERR_INVAL, "net: the job identity is set before any peer is connected");
	n->job = job;
	n->incarnation = incarnation;
	return GX_OK;
}

struct gx_backend *gx_net_backend(struct gx_net *n)
{
	return n->be;
}

uint32_t gx_net_stall_timeout_ms(const struct gx_net *n)
{
	return n->stall_timeout_ms;
}

const char *gx_net_backend_name(const struct gx_net *n)
{
	return n->ops->name;
}

gx_status_t gx_net_device(struct gx_net *n, char *name, size_t len, int *is_pci)
{
	*is_pci = 0;
	if (len)
		name[0] = '\0';
	if (!n->ops->device)
		return gx_error(GX_ERR_NODEV, "transport %s sends through no device", n->ops->name);
	return n->ops->device(n->be, name, len, is_pci);
}

/* A registration: the backend's handle, or none for backends that copy. */
struct gx_mr {
	void *addr;
	size_t len;
	void *handle;
};

gx_status_t gx_net_mem_register(struct gx_net *n, void *addr, size_t len, struct gx_mr **out)
{
	struct gx_mr *mr;
	gx_status_t st;

	*out = NULL;
	if (!addr || !len)
		return gx_error(GX_ERR_INVAL, "gx_net_mem_register: empty region");
	if (!(mr = calloc(1, sizeof(*mr))))
		return gx_error(GX_ERR_NOMEM, "gx_net_mem_register: out of memory");
	mr->addr = addr;
	mr->len = len;
	if (n->ops->mem_register && (st = n->ops->mem_register(n->be, addr, len, &mr->handle)) < 0) {
		free(mr);
		return st;
	}
	*out = mr;
	return GX_OK;
}

void gx_net_mem_deregister(struct gx_net *n, struct gx_mr *mr)
{
	if (!mr)
		return;
	if (n->ops->mem_deregister)
		n->ops->mem_deregister(n->be, mr->handle);
	free(mr);
}

uint32_t gx_net_inflight(const struct gx_net *n)
{
	return n->inflight;
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
		*st = net_dead_peer_status(n, peer);
		return NULL;
	}
	if (!p->buf) {
		p->slot = calloc(n->window, sizeof(*p->slot));
		n->slot_stride = (n->max_msg + 63u) & ~63u;   /* every header 64-byte aligned */
		p->buf = aligned_alloc(64, (size_t)n->window * n->slot_stride);
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

gx_status_t gx_net_commit(struct gx_net *n, uint32_t peer, const struct gx_desc *d, uint32_t len)
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
	h->src_rank = (uint16_t)n->rank;
	h->len = (uint16_t)len;
	h->job = n->job;
	h->incarnation = n->incarnation;
	h->psn = psn;
	/* field by field: a caller's desc is usually written field by field just before, and one wide
	 * load over several narrow stores would wait for them (no store forwarding) */
	h->coll_id = d ? d->coll_id : 0;
	h->chunk = d ? d->chunk : 0;
	h->step = d ? d->step : 0;
	h->codec = d ? d->codec : 0;
	h->flags = d ? (d->flags & (GX_F_LAST | GX_F_ACK_REQ)) : 0;
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
	s->len = (uint32_t)sizeof(*h) + len + n->trailer;
	/* the payload's CRC while it is warm; the header's at departure (keyed: the MAC, then) */
	s->pcrc = n->auth ? 0 : gx_crc32c(h + 1, len, 0);
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
		net_tx_flush(n, gx_tsc());
	return GX_OK;
}

gx_status_t gx_net_send(struct gx_net *n, uint32_t peer, const struct gx_desc *d, const void *payload,
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

/* The counters of the rank the backend says sent a bad packet, else the unattributed ones. */
static inline struct gx_peer_counters *bad_counters(struct gx_net *n, uint32_t bpeer)
{
	return bpeer < n->nranks ? &n->peer[bpeer].c : &n->unattributed;
}

/* An ABORT's payload names ranks that exist and a known reason; only the sender itself can say it
 * left, was stopped by a signal or failed on its own. */
static bool abort_valid(const struct gx_net *n, uint32_t src, const uint8_t *pl, uint32_t len)
{
	struct gx_abort a;

	if (len != sizeof(a))
		return false;
	memcpy(&a, pl, sizeof(a));
	if (a.reason > GX_ABORT_LEFT || a.rank >= n->nranks || a.from >= n->nranks)
		return false;
	if ((a.reason == GX_ABORT_LEFT || a.reason == GX_ABORT_SIGNAL) && (a.rank != src || a.from != src))
		return false;
	return true;
}

/* One received datagram.  Validates everything before any byte reaches the caller. */
static gx_status_t rx_one(struct gx_net *n, const uint8_t *d, uint32_t len, uint32_t bpeer, uint64_t now,
			  gx_deliver_fn fn, void *arg, int *delivered, bool ctrl_only)
{
	const struct gx_hdr *h = (const struct gx_hdr *)d;

	if (bpeer == GX_PEER_FOREIGN) {
		n->unattributed.dropped++;
		return GX_OK;
	}
	/* Whole: the length the header claims is the datagram's, and the seal (CRC32C over the payload
	 * and the header) holds.  Nothing of the packet is believed before this. */
	if (len < sizeof(*h) || sizeof(*h) + h->len + n->trailer != len) {
		bad_counters(n, bpeer)->malformed++;
		return GX_OK;
	}
	if (n->auth) {
		uint8_t tag[GX_MAC_LEN];
		crypto_generichash(tag, sizeof(tag), d, sizeof(*h) + h->len, n->key, sizeof(n->key));
		if (crypto_verify_16(tag, d + sizeof(*h) + h->len) != 0) {
			bad_counters(n, bpeer)->bad_mac++;
			return GX_OK;
		}
	} else if (gx_hdr_crc(h, gx_crc32c(h + 1, h->len, 0)) != h->crc) {
		bad_counters(n, bpeer)->bad_crc++;
		return GX_OK;
	}
	/* Ours: this wire version, this job, this start of it. */
	if (h->magic != GX_MAGIC || h->version != GX_WIRE_VERSION) {
		bad_counters(n, bpeer)->malformed++;
		return GX_OK;
	}
	if (h->job != n->job) {
		bad_counters(n, bpeer)->other_job++;
		return GX_OK;
	}
	if (h->incarnation != n->incarnation) {
		bad_counters(n, bpeer)->other_incarnation++;
		return GX_OK;
	}
	uint32_t src = h->src_rank;
	if (src >= n->nranks || src == n->rank || (bpeer != GX_PEER_UNKNOWN && bpeer != src) ||
	    h->type < GX_PKT_DATA || h->type > GX_PKT_RAW ||
	    (h->type == GX_PKT_RAW) != ((h->flags & GX_F_RAW) != 0)) {
		bad_counters(n, bpeer)->malformed++;
		return GX_OK;
	}
	struct peer *p = &n->peer[src];
	if (!p->connected) {
		n->unattributed.dropped++;
		return GX_OK;
	}
	if (ctrl_only && (h->type == GX_PKT_DATA || h->type == GX_PKT_RAW))
		return GX_OK;           /* left unacknowledged: the sender will send it again */
	if (h->type == GX_PKT_RAW) {
		p->last_rx_tsc = now;
		(*delivered)++;
		return fn(arg, src, GX_HDR_DESC(h), d + sizeof(*h), h->len);
	}
	/* ack_psn must lie within what we have sent. */
	if (psn_diff(h->ack_psn, p->next_psn) > 0 || (h->type == GX_PKT_ACK && (h->len & 7)) ||
	    (h->type == GX_PKT_ABORT && !abort_valid(n, src, d + sizeof(*h), h->len))) {
		p->c.malformed++;
		return GX_OK;
	}
	/* A control packet older than the newest taken from this peer is a replay (or a late one, whose
	 * news the newer one carried).  Taken only once the packet passed every check. */
	if (h->type != GX_PKT_DATA) {
		if (psn_diff(h->psn, p->ctrl_seen) <= 0) {
			p->c.replayed++;
			return GX_OK;
		}
		p->ctrl_seen = h->psn;
	}
	/* A sign of life, unless it is DATA we already had: a replay must not keep a dead peer alive
	 * (a live one whose ACKs we lost still sends heartbeats). */
	if (h->type != GX_PKT_DATA || psn_diff(h->psn, p->rcv_nxt) >= 0)
		p->last_rx_tsc = now;
	net_ack_cumulative(n, p, h->ack_psn, h->type == GX_PKT_ACK && (h->flags & GX_F_ECHO_ORIG), now);
	/* Every receiver can take WINDOW_MIN packets beyond what it acknowledged, so any ack_psn
	 * (piggybacked too) grants that much: a lost credit-carrying ACK cannot stall the sender. */
	if (psn_diff(h->ack_psn + WINDOW_MIN, p->credit_limit) > 0)
		p->credit_limit = h->ack_psn + WINDOW_MIN;

	switch (h->type) {
	case GX_PKT_DATA: {
		int32_t off = psn_diff(h->psn, p->rcv_nxt);
		if (off < 0) {
			p->c.duplicates++;      /* our ACK was lost or late: repeat it */
			net_ack_list_add(n, p, src, now);
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
				net_ack_list_add(n, p, src, now);
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
		net_ack_list_add(n, p, src, now);
		if ((h->flags & GX_F_ACK_REQ) || p->rx_since_ack >= n->ack_every)
			p->ack_now = 1;
		(*delivered)++;
		return fn(arg, src, GX_HDR_DESC(h), d + sizeof(*h), h->len);
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
			net_fast_retransmit(n, p, src, hi);
		return GX_OK;
	}
	case GX_PKT_HEARTBEAT:
		if (h->flags & GX_F_ACK_REQ) {  /* a credit probe: answer with a full ACK */
			net_ack_list_add(n, p, src, now);
			p->ack_now = 1;
		}
		return GX_OK;
	case GX_PKT_ABORT: {
		struct gx_abort a;
		memcpy(&a, d + sizeof(*h), sizeof(a));
		return net_abort_received(n, src, &a);
	}
	}
	return GX_OK;
}

static gx_status_t drain_delayed(struct gx_net *n, uint64_t now, gx_deliver_fn fn, void *arg,
				 int *delivered)
{
	const struct held_pkt *h;
	gx_status_t st = GX_OK;

	while (st >= 0 && (h = net_fault_delay_pop(n, now)))
		st = rx_one(n, h->data, h->len, h->peer, now, fn, arg, delivered, false);
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
	int sig = gx_interrupted();
	if (__builtin_expect(sig != 0, 0) && !n->interrupted)
		return net_interrupted(n, sig);
	if (now - n->last_poll > n->pause_min)
		net_discount_pause(n, now);
	n->last_poll = now;
	if (n->txq_len)
		net_tx_flush(n, now);
	uint16_t k = n->ops->rx_burst(n->be, m, NET_BURST);
	if (n->fault_delay) {
		for (uint16_t i = 0; i < k && st >= 0; i++) {
			if (!net_fault_delay_push(n, &m[i], now)) {   /* full: the oldest goes now */
				st = drain_delayed(n, now + n->delay_tsc, fn, arg, &delivered);
				if (st >= 0)
					net_fault_delay_push(n, &m[i], now);
			}
		}
		if (st >= 0)
			st = drain_delayed(n, now, fn, arg, &delivered);
	} else {
		/* After an error the rest of the burst's DATA is released unseen: unacknowledged, so the
		 * senders retransmit it and nothing is lost.  Its control packets are still taken (they are
		 * not retransmitted): the ABORTs of several ranks often arrive in one burst. */
		for (uint16_t i = 0; i < k; i++) {
			gx_status_t s1 = rx_one(n, m[i].data, m[i].len, m[i].peer, now, fn, arg, &delivered, st < 0);
			if (st >= 0)
				st = s1;
		}
	}
	if (k)
		n->ops->rx_release(n->be, m, k);
	if (n->nack)
		net_send_due_acks(n, now);
	if (now - n->last_scan >= n->scan_period) {
		gx_status_t s2 = net_scan(n, now);
		if (st >= 0)
			st = s2;
	}
	if (n->txq_len || n->nhold)
		net_tx_flush(n, now);
	if (st < 0)
		return st;
	if (n->sticky < 0)
		return gx_error(n->sticky, "%s", n->sticky_msg);
	return delivered;
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
	t->bad_crc += c->bad_crc;
	t->other_job += c->other_job;
	t->other_incarnation += c->other_incarnation;
	t->bad_mac += c->bad_mac;
	t->replayed += c->replayed;
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

static gx_status_t discard(void *arg, uint32_t peer, const struct gx_desc *h, const void *payload,
			   uint32_t len)
{
	(void)arg;
	(void)peer;
	(void)h;
	(void)payload;
	(void)len;
	return GX_OK;
}

void gx_net_destroy(struct gx_net *n)
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
				net_send_ack(n, n->ack_list[i], gx_tsc());
		n->nack = 0;
		/* Tell the peers how this net ends: after a failure or gx_net_abort, why (once more: on a
		 * lossy link both earlier copies may be lost); after a clean finish whose data all
		 * arrived, that this rank left, so a peer still
		 * waiting for it (it ran more collectives) fails at once instead of after the timeouts. */
		if (n->sticky < 0 || n->abort_sent) {
			gx_net_abort(n);        /* again if it was sent: ABORT is not retransmitted */
		} else if (!n->inflight) {
			struct gx_abort left = { .reason = GX_ABORT_LEFT, .rank = n->rank, .from = n->rank };
			for (uint32_t i = 0; i < n->nconn; i++)
				if (!n->peer[n->conn[i]].left && !n->peer[n->conn[i]].dead)
					net_send_abort(n, n->conn[i], &left, gx_tsc());
		}
		net_tx_flush(n, gx_tsc());
		n->ops->destroy(n->be);
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
	net_fault_free(n);
	free(n);
}
