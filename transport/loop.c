/* loop.c: the "loop" backend: ranks are threads of one process, datagrams are copies between their
 * queues.  It exists for fast, deterministic tests of the reliability protocol (no sockets, no
 * forks, no scheduler noise from other processes) and as the smallest complete example of a
 * backend: its own settings table, create/destroy, addresses, bursts; the net's fault hooks give
 * it loss, duplication, reordering and delay.
 *
 * Ranks of one job (same job id and rank count) meet in a process-wide list of worlds.  Each rank
 * owns a receive ring of `loop-queue` slots; a sender copies into the receiver's ring under the
 * ring's lock, and a full ring drops the datagram, as a full socket buffer would (counted in
 * tx_full; the net retransmits).  The receiver hands out slots in rx_burst and frees them, in
 * order, in rx_release.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "gx_backend.h"

extern const struct gx_backend_ops gx_loop_ops;

#define LOOP_MAGIC 0x4c4f4f50u    /* "LOOP" */
#define LOOP_L3L4 28u             /* sized like udp, so payloads match the other backends */

struct loop_settings {
	uint32_t queue;
};

static const struct gx_option loop_opts[] = {
	{ "loop-queue", GX_OPT_U32, offsetof(struct loop_settings, queue), "4096",
	  "loop: datagrams each rank's receive ring holds (a full ring drops, like a socket buffer)", NULL, NULL },
};

static const struct gx_option_table loop_table = {
	"loop", loop_opts, sizeof(loop_opts) / sizeof(loop_opts[0]), sizeof(struct loop_settings)
};

struct loop_ring {
	pthread_mutex_t lock;
	uint32_t size, mask;          /* slots, a power of two */
	uint32_t head, tail, lent;    /* [head, head+lent): handed out by rx_burst; [.., tail): queued */
	uint32_t *len;
	uint32_t *from;
	uint8_t *mem;                 /* size * max_msg bytes */
};

struct loop_world;

struct loop_backend {
	struct gx_backend b;
	struct loop_world *w;
	uint32_t max_msg;
	struct loop_ring rx;
	struct gx_backend_counters c;  /* touched by the owning thread only */
};

struct loop_world {
	struct loop_world *next;
	uint32_t job_id, nranks, users;
	struct loop_backend **rank;   /* NULL: not created yet or destroyed */
	pthread_mutex_t lock;         /* guards rank[] against destroy while sending */
};

struct loop_blob {
	uint32_t magic, job_id, nranks, rank;
};

static pthread_mutex_t worlds_lock = PTHREAD_MUTEX_INITIALIZER;
static struct loop_world *worlds;

static struct loop_world *world_join(uint32_t job_id, uint32_t nranks, uint32_t rank,
				     struct loop_backend *l, gx_status_t *st)
{
	struct loop_world *w;

	pthread_mutex_lock(&worlds_lock);
	for (w = worlds; w; w = w->next)
		if (w->job_id == job_id && w->nranks == nranks)
			break;
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w || !(w->rank = calloc(nranks, sizeof(*w->rank)))) {
			free(w);
			pthread_mutex_unlock(&worlds_lock);
			*st = gx_error(GX_ERR_NOMEM, "loop: out of memory for %u ranks", nranks);
			return NULL;
		}
		w->job_id = job_id;
		w->nranks = nranks;
		pthread_mutex_init(&w->lock, NULL);
		w->next = worlds;
		worlds = w;
	}
	pthread_mutex_lock(&w->lock);
	if (w->rank[rank]) {
		pthread_mutex_unlock(&w->lock);
		pthread_mutex_unlock(&worlds_lock);
		*st = gx_error(GX_ERR_INVAL, "loop: rank %u of job %u was created twice in this process",
			       rank, job_id);
		return NULL;
	}
	w->rank[rank] = l;
	w->users++;
	pthread_mutex_unlock(&w->lock);
	pthread_mutex_unlock(&worlds_lock);
	return w;
}

static void world_leave(struct loop_world *w, uint32_t rank)
{
	pthread_mutex_lock(&worlds_lock);
	pthread_mutex_lock(&w->lock);
	w->rank[rank] = NULL;
	uint32_t left = --w->users;
	pthread_mutex_unlock(&w->lock);
	if (!left) {
		struct loop_world **pp = &worlds;
		while (*pp != w)
			pp = &(*pp)->next;
		*pp = w->next;
		pthread_mutex_destroy(&w->lock);
		free(w->rank);
		free(w);
	}
	pthread_mutex_unlock(&worlds_lock);
}

static void loop_destroy(struct gx_backend *b)
{
	struct loop_backend *l = (struct loop_backend *)b;

	if (!l)
		return;
	if (l->w)
		world_leave(l->w, l->b.rank);
	pthread_mutex_destroy(&l->rx.lock);
	free(l->rx.len);
	free(l->rx.from);
	free(l->rx.mem);
	free(l);
}

static gx_status_t loop_create(const struct gx_transport_opts *o, struct gx_backend **out)
{
	struct loop_settings set;
	struct loop_backend *l;
	gx_status_t st;

	if ((st = gx_backend_settings(&loop_table, o, &set)) < 0)
		return st;
	if (!o->nranks || o->nranks > GX_MAX_RANKS || o->rank >= o->nranks)
		return gx_error(GX_ERR_INVAL, "loop: rank %u of %u ranks is impossible (1..%u ranks)",
				o->rank, o->nranks, GX_MAX_RANKS);
	uint32_t mtu = o->mtu ? o->mtu : 1500;
	if (mtu < LOOP_L3L4 + sizeof(struct gx_hdr) + 8 || mtu > 65535)
		return gx_error(GX_ERR_INVAL, "loop: mtu %u out of range (%zu..65535)", mtu,
				LOOP_L3L4 + sizeof(struct gx_hdr) + 8);
	if (set.queue < 16 || set.queue > (1u << 20))
		return gx_error(GX_ERR_INVAL, "loop: --loop-queue %u out of range (16..1048576)", set.queue);
	if (!(l = calloc(1, sizeof(*l))))
		return gx_error(GX_ERR_NOMEM, "loop: out of memory");
	pthread_mutex_init(&l->rx.lock, NULL);
	l->b.ops = &gx_loop_ops;
	l->b.rank = o->rank;
	l->b.nranks = o->nranks;
	l->max_msg = (mtu - LOOP_L3L4) & ~7u;   /* as udp: datagrams in multiples of 8 bytes */
	l->rx.size = 16;
	while (l->rx.size < set.queue)
		l->rx.size <<= 1;
	l->rx.mask = l->rx.size - 1;
	l->rx.len = calloc(l->rx.size, sizeof(*l->rx.len));
	l->rx.from = calloc(l->rx.size, sizeof(*l->rx.from));
	l->rx.mem = malloc((size_t)l->rx.size * l->max_msg);
	if (!l->rx.len || !l->rx.from || !l->rx.mem) {
		loop_destroy(&l->b);
		return gx_error(GX_ERR_NOMEM, "loop: out of memory for a %u-slot receive ring", l->rx.size);
	}
	if (!(l->w = world_join(o->job_id, o->nranks, o->rank, l, &st))) {
		loop_destroy(&l->b);
		return st;
	}
	*out = &l->b;
	return GX_OK;
}

static gx_status_t loop_local_addr(struct gx_backend *b, void *blob, size_t *len)
{
	struct loop_backend *l = (struct loop_backend *)b;
	struct loop_blob a = { LOOP_MAGIC, l->w->job_id, l->w->nranks, l->b.rank };

	if (*len < sizeof(a))
		return gx_error(GX_ERR_NOSPC, "loop: address needs %zu bytes", sizeof(a));
	memcpy(blob, &a, sizeof(a));
	*len = sizeof(a);
	return GX_OK;
}

static gx_status_t loop_connect(struct gx_backend *b, uint32_t peer, const void *blob, size_t len)
{
	struct loop_backend *l = (struct loop_backend *)b;
	struct loop_blob a;

	if (len != sizeof(a))
		return gx_error(GX_ERR_INVAL, "loop: rank %u's address is %zu bytes, not %zu", peer, len,
				sizeof(a));
	memcpy(&a, blob, sizeof(a));
	if (a.magic != LOOP_MAGIC || a.job_id != l->w->job_id || a.nranks != l->w->nranks || a.rank != peer)
		return gx_error(GX_ERR_INVAL, "loop: rank %u's address is not rank %u of this process's "
				"job %u (ranks of the loop transport must be threads of one process)", peer,
				peer, l->w->job_id);
	return GX_OK;
}

static uint32_t loop_max_msg(struct gx_backend *b)
{
	return ((struct loop_backend *)b)->max_msg;
}

/* Copy one datagram into rank `to`'s ring; 0 if the ring is full or the rank is gone. */
static int loop_deliver(struct loop_world *w, uint32_t from, uint32_t to, const void *data, uint32_t len)
{
	int ok = 0;

	pthread_mutex_lock(&w->lock);
	struct loop_backend *r = to < w->nranks ? w->rank[to] : NULL;
	if (r && len <= r->max_msg) {
		struct loop_ring *q = &r->rx;
		pthread_mutex_lock(&q->lock);
		if (q->tail - q->head < q->size) {
			uint32_t i = q->tail & q->mask;
			memcpy(q->mem + (size_t)i * r->max_msg, data, len);
			q->len[i] = len;
			q->from[i] = from;
			q->tail++;
			ok = 1;
		}
		pthread_mutex_unlock(&q->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return ok;
}

static uint16_t loop_tx_burst(struct gx_backend *b, const struct gx_msg *m, uint16_t n)
{
	struct loop_backend *l = (struct loop_backend *)b;

	for (uint16_t i = 0; i < n; i++) {
		if (loop_deliver(l->w, l->b.rank, m[i].peer, m[i].data, m[i].len)) {
			l->c.tx_pkts++;
			l->c.tx_bytes += m[i].len;
		} else {
			l->c.tx_full++;   /* dropped: the net's retransmission recovers it */
		}
	}
	return n;
}

static uint16_t loop_rx_burst(struct gx_backend *b, struct gx_msg *m, uint16_t n)
{
	struct loop_backend *l = (struct loop_backend *)b;
	struct loop_ring *q = &l->rx;
	uint16_t k = 0;

	pthread_mutex_lock(&q->lock);
	uint32_t first = q->head + q->lent;
	while (k < n && first + k != q->tail) {
		uint32_t i = (first + k) & q->mask;
		m[k].peer = q->from[i];
		m[k].len = q->len[i];
		m[k].data = q->mem + (size_t)i * l->max_msg;
		m[k].priv = NULL;
		l->c.rx_pkts++;
		l->c.rx_bytes += q->len[i];
		k++;
	}
	q->lent += k;
	pthread_mutex_unlock(&q->lock);
	return k;
}

static void loop_rx_release(struct gx_backend *b, struct gx_msg *m, uint16_t n)
{
	struct loop_backend *l = (struct loop_backend *)b;
	struct loop_ring *q = &l->rx;

	(void)m;                      /* released in the order rx_burst lent them */
	pthread_mutex_lock(&q->lock);
	q->head += n;
	q->lent -= n;
	pthread_mutex_unlock(&q->lock);
}

static void loop_counters(struct gx_backend *b, struct gx_backend_counters *c)
{
	struct loop_backend *l = (struct loop_backend *)b;

	*c = l->c;
	c->rx_foreign = 0;
}

const struct gx_backend_ops gx_loop_ops = {
	.size = sizeof(struct gx_backend_ops),
	.name = "loop",
	.options = &loop_table,
	.create = loop_create,
	.destroy = loop_destroy,
	.local_addr = loop_local_addr,
	.connect = loop_connect,
	.max_msg = loop_max_msg,
	.tx_burst = loop_tx_burst,
	.rx_burst = loop_rx_burst,
	.rx_release = loop_rx_release,
	.counters = loop_counters,
};
