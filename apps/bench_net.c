/* bench_net.c: gx-bench pingpong and gx-bench stream, point to point between two ranks over any
 * transport.
 *
 *   gx-run -n 2 -- gx-bench pingpong [-b 1] [-e 64K] [-f 2] [-n 20000] [-w 2000] [--path raw|reliable|both]
 *   gx-run -n 2 -- gx-bench stream   [-b 64] [-e MAX] [-f 2] [-t SECONDS]
 *   (plus runtime flags: --transport udp|dpdk, --dpdk-eal ..., --mtu 9000, --core N, ...)
 *
 * pingpong: rank 0 sends a message, rank 1 echoes it once complete; half the round trip, in us,
 * over -n iterations.  "raw" sends one GX_PKT_RAW datagram straight through the backend (no
 * reliability; sizes up to one packet; a lost packet is counted and the iteration dropped);
 * "reliable" goes through gx_net (sequence numbers, ACKs piggybacked on the echo).
 * stream: rank 0 sends messages of the given size for -t seconds through gx_net; rank 1 counts
 * what was delivered; Gbit/s and Mpps of delivered payload, then both ranks' counters.
 *
 * Output: the CSV of apps/bench.h (time_us = median half round trip for pingpong, time per message
 * for stream; algbw = GB/s), p99/p99.9 and counters as '#' comment lines.  Each rank is pinned to
 * its own core (--core N, else core = rank mod cores online). */
#include <getopt.h>
#include <sched.h>
#include <time.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "gx_backend.h"
#include "gx_comm.h"
#include "gx_config.h"
#include "gx_time.h"

#define RAW_TIMEOUT_MS 200
#define STREAM_DRAIN_MS 10000           /* after -t, what was sent must be delivered within this */
#define CTRL_COLL 0xfffffff0u           /* coll_id of the benchmark's own control messages */
#define CTRL_FIN (CTRL_COLL + 1)
#define CTRL_RESULT (CTRL_COLL + 2)
#define CTRL_SYNC (CTRL_COLL + 3)

enum path { PATH_RAW = 1, PATH_RELIABLE = 2 };

struct nb {
	struct gx_comm *c;
	struct gx_net *n;
	struct gx_backend *be;
	uint32_t rank, peer, payload, max_msg, oversub, iters, warm;
	const char *transport;
	int core;
	int paths;
	double seconds;
	uint64_t minb, maxb;
	double factor;
	bool stream;
	uint8_t *pkt;                   /* raw packet buffer (max_msg) */
	/* receive state */
	uint32_t want_coll;             /* coll_id being assembled */
	uint32_t coll_seq;              /* pingpong: last coll_id used (same sequence on both ranks) */
	uint64_t got_bytes, got_pkts;
	bool fin;
	uint64_t fin_bytes;             /* stream: what rank 0 sent */
	uint32_t sync_seen;
	uint64_t job;                   /* the net's identity, stamped on raw packets */
	uint32_t incarnation;
	uint64_t result[5];             /* stream result from rank 1: bytes, packets, first..last packet
					 * (TSC ticks), TSC Hz, its CPU time over that span (ns) */
	bool have_result;
	double *samples;
	int rc;
};

static void usage(FILE *f, bool stream)
{
	if (stream)
		fprintf(f, "usage: gx-bench stream [options] [runtime flags]\n"
			"  -b SIZE    smallest message (default 64)\n"
			"  -e SIZE    largest message (default: one packet's payload, gx_net_max_payload)\n"
			"  -f FACTOR  size multiplier (default 2; the largest size always runs)\n"
			"  -t SECONDS sending time per size (default 1; 0.01..3600); the run takes about\n"
			"             sizes x SECONDS, and what was sent must arrive within 10 s after each\n");
	else
		fprintf(f, "usage: gx-bench pingpong [options] [runtime flags]\n"
			"  -b SIZE    smallest message (default 1)\n"
			"  -e SIZE    largest message (default 64K; --path raw: one packet's payload at most)\n"
			"  -f FACTOR  size multiplier (default 2)\n"
			"  -n ITERS   timed round trips per size (default 20000)\n"
			"  -w ITERS   warm-up round trips per size (default 2000)\n"
			"  --path P   raw, reliable or both (default both)\n");
	fprintf(f, "Two ranks: gx-run -n 2 -- gx-bench %s ...  Rank 0 prints the CSV.\n\n",
		stream ? "stream" : "pingpong");
	gx_config_help(f);
}

static void pin(struct nb *B)
{
	B->core = gx_comm_core(B->c);
	if (B->core >= 0)
		return;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET((int)(B->rank % (uint32_t)(ncpu > 0 ? ncpu : 1)), &set);
	if (sched_setaffinity(0, sizeof(set), &set) == 0)
		B->core = (int)(B->rank % (uint32_t)(ncpu > 0 ? ncpu : 1));
}

/* CPU time of the calling (polling) thread, kernel work it does in its system calls included
 * (af_packet's veth path runs there): with other processes on the cores, CPU per packet is the
 * figure that compares runs; Gbit/s also depends on the share of a core each rank got. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static gx_status_t on_packet(void *arg, uint32_t peer, const struct gx_desc *h, const void *p, uint32_t len)
{
	struct nb *B = arg;
	(void)peer;

	if (h->flags & GX_DESC_RAW) {
		/* A late raw end-of-phase marker: echo it so rank 0 can stop retrying (aux carries the
		 * marker's psn, which rank 0 waits for). */
		if ((h->flags & GX_DESC_LAST) && B->rank == 1) {
			struct gx_hdr e = { .magic = GX_MAGIC, .version = GX_WIRE_VERSION, .type = GX_PKT_RAW,
					    .flags = GX_F_LAST | GX_F_RAW, .src_rank = (uint16_t)B->rank,
					    .job = B->job, .incarnation = B->incarnation, .psn = h->aux,
					    .aux = h->aux };
			gx_hdr_seal(&e, "");
			struct gx_msg m = { .peer = B->peer, .len = (uint32_t)sizeof(e), .data = &e };
			B->be->ops->tx_burst(B->be, &m, 1);
		}
		return GX_OK;
	}
	if (h->coll_id == CTRL_FIN && len == sizeof(B->fin_bytes)) {
		memcpy(&B->fin_bytes, p, sizeof(B->fin_bytes));
		B->fin = true;
		return GX_OK;
	}
	if (h->coll_id == CTRL_SYNC) {
		B->sync_seen++;
		return GX_OK;
	}
	if (h->coll_id == CTRL_RESULT && len == sizeof(B->result)) {
		memcpy(B->result, p, sizeof(B->result));
		B->have_result = true;
		return GX_OK;
	}
	if (h->coll_id == B->want_coll) {
		B->got_bytes += len;
		B->got_pkts++;
	}
	return GX_OK;
}

/* Poll until cond(B) or an error; idles politely when nothing happens. */
static gx_status_t wait_until(struct nb *B, bool (*cond)(struct nb *), uint64_t timeout_ms)
{
	/* The TSC, not gx_now_ns: clock_gettime per poll was a seventh of a busy receiver's time. */
	uint64_t hz = gx_tsc_hz(), start = gx_tsc(), idle = start;
	while (!cond(B)) {
		int r = gx_net_poll(B->n, on_packet, B);
		if (r < 0)
			return r;
		uint64_t now = gx_tsc();
		if (r > 0)
			idle = now;
		if (now - start > timeout_ms * (hz / 1000))
			return gx_error(GX_ERR_TIMEOUT, "rank %u: waited %llu ms for rank %u (message %u: %llu bytes "
					"so far)", B->rank, (unsigned long long)timeout_ms, B->peer, B->want_coll,
					(unsigned long long)B->got_bytes);
		gx_idle_backoff((uint64_t)((double)(now - idle) * 1e9 / (double)hz));
	}
	return GX_OK;
}

/* Send `bytes` as packets of coll_id; polls while the window is full. */
static gx_status_t send_msg(struct nb *B, uint32_t coll, uint64_t bytes, const void *content, bool flush)
{
	uint64_t off = 0;
	uint32_t chunk = 0;
	do {
		gx_status_t st;
		uint8_t *b = gx_net_reserve(B->n, B->peer, &st);
		if (!b) {
			if (st != GX_ERR_AGAIN)
				return st;
			int r = gx_net_poll(B->n, on_packet, B);
			if (r < 0)
				return r;
			continue;
		}
		uint32_t len = bytes - off < B->payload ? (uint32_t)(bytes - off) : B->payload;
		if (content)
			memcpy(b, (const uint8_t *)content + off, len);
		struct gx_desc d = { .coll_id = coll, .chunk = chunk++ };
		if ((st = gx_net_commit(B->n, B->peer, &d, len)) < 0)
			return st;
		off += len;
	} while (off < bytes);
	if (flush)
		gx_net_flush(B->n);
	return GX_OK;
}

static uint64_t cond_bytes;
static bool got_all(struct nb *B)
{
	return B->got_bytes >= cond_bytes;
}

static bool got_sync(struct nb *B)
{
	return B->sync_seen > 0;
}

/* Both ranks at the same point (before a raw phase, whose receiver reads the backend directly). */
static gx_status_t sync_ranks(struct nb *B)
{
	gx_status_t st;

	if (B->rank == 0 && (st = send_msg(B, CTRL_SYNC, 1, "S", true)) < 0)
		return st;
	if ((st = wait_until(B, got_sync, 30000)) < 0)
		return st;
	if (B->rank == 1 && (st = send_msg(B, CTRL_SYNC, 1, "S", true)) < 0)
		return st;
	B->sync_seen = 0;
	return GX_OK;
}

static bool got_result(struct nb *B)
{
	return B->have_result;
}

static bool drained(struct nb *B)
{
	return gx_net_inflight(B->n) == 0;
}

/* ---- pingpong -------------------------------------------------------------------------------- */

static void print_latency(struct nb *B, const char *op, uint64_t bytes, uint32_t n, uint64_t lost)
{
	struct bench_row r = { .peer = "gx", .transport = B->transport, .op = op, .nranks = 2,
			       .oversub = B->oversub, .bytes = bytes, .count = bytes, .type = "uint8",
			       .redop = "none", .iters = n };
	r.min_us = bench_min(B->samples, n);
	r.time_us = bench_median(B->samples, n);
	r.p90_us = bench_percentile(B->samples, n, 90.0);
	double p99 = bench_percentile(B->samples, n, 99.0), p999 = bench_percentile(B->samples, n, 99.9);
	r.algbw_GBps = r.time_us > 0 ? (double)bytes / (r.time_us * 1e3) : 0.0;
	r.busbw_GBps = r.algbw_GBps;
	bench_print_row(stdout, &r);
	fprintf(stdout, "# %s %llu B: half round trip min %.3f median %.3f p99 %.3f p99.9 %.3f us "
		"(%u samples, %llu lost)\n", op, (unsigned long long)bytes, r.min_us, r.time_us, p99, p999, n,
		(unsigned long long)lost);
	fflush(stdout);
}

/* Raw datagrams through the backend: rank 0 pings, rank 1 echoes; psn tells iterations apart. */
static gx_status_t pingpong_raw(struct nb *B, uint64_t bytes)
{
	struct gx_hdr *h = (struct gx_hdr *)B->pkt;
	struct gx_msg out = { .peer = B->peer, .len = (uint32_t)(sizeof(*h) + bytes), .data = B->pkt };
	struct gx_msg in[32];
	uint64_t hz = gx_tsc_hz(), timeout = hz / 1000 * RAW_TIMEOUT_MS, lost = 0;
	uint32_t total = B->warm + B->iters, n = 0;

	memset(h, 0, sizeof(*h));
	h->magic = GX_MAGIC;
	h->version = GX_WIRE_VERSION;
	h->type = GX_PKT_RAW;
	h->src_rank = (uint16_t)B->rank;
	h->len = (uint16_t)bytes;
	h->job = B->job;
	h->incarnation = B->incarnation;
	gx_status_t st = sync_ranks(B);
	if (st < 0)
		return st;
	if (B->rank == 1) {
		/* Echo until the end marker (GX_F_LAST). */
		uint64_t hz1 = gx_tsc_hz(), idle = gx_tsc();
		for (;;) {
			uint16_t k = B->be->ops->rx_burst(B->be, in, 32);
			bool last = false;
			for (uint16_t i = 0; i < k; i++) {
				struct gx_hdr *r = in[i].data;
				if (in[i].len < sizeof(*r) || r->type != GX_PKT_RAW)
					continue;
				struct gx_msg e = { .peer = B->peer, .len = in[i].len, .data = in[i].data };
				r->src_rank = (uint16_t)B->rank;
				gx_hdr_seal(r, r + 1);
				B->be->ops->tx_burst(B->be, &e, 1);
				last |= (r->flags & GX_F_LAST) != 0;
			}
			if (k)
				B->be->ops->rx_release(B->be, in, k);
			if (last)
				return GX_OK;
			uint64_t now = gx_tsc();     /* not clock_gettime: a fifth of the echo loop */
			if (k)
				idle = now;
			if (now - idle > 30 * hz1)
				return gx_error(GX_ERR_PEER, "rank 1: no raw ping for 30 s");
			gx_idle_backoff((uint64_t)((double)(now - idle) * 1e9 / (double)hz1));
		}
	}
	for (uint32_t it = 0; it < total + 50; it++) {
		bool end = it >= total;
		h->psn = h->aux = it;      /* aux: what the net hands a late marker's reader */
		h->flags = GX_F_RAW | (end ? GX_F_LAST : 0);
		gx_hdr_seal(h, h + 1);
		uint64_t t0 = gx_tsc();
		if (B->be->ops->tx_burst(B->be, &out, 1) != 1) {
			lost++;
			continue;
		}
		bool back = false;
		uint64_t t1 = t0;
		while (!back) {
			uint16_t k = B->be->ops->rx_burst(B->be, in, 32);
			t1 = gx_tsc();
			for (uint16_t i = 0; i < k; i++) {
				struct gx_hdr *r = in[i].data;
				if (in[i].len >= sizeof(*r) && r->type == GX_PKT_RAW && r->psn == it)
					back = true;
			}
			if (k)
				B->be->ops->rx_release(B->be, in, k);
			if (!back && t1 - t0 > timeout)
				break;
		}
		if (end) {
			if (back)
				break;
			continue;               /* end marker lost: send it again */
		}
		if (!back) {
			lost++;
			continue;
		}
		if (it >= B->warm && n < B->iters)
			B->samples[n++] = (double)(t1 - t0) * 1e6 / (double)hz / 2.0;
	}
	if (n)
		print_latency(B, "pingpong:raw", bytes, n, lost);
	return GX_OK;
}

static gx_status_t pingpong_reliable(struct nb *B, uint64_t bytes)
{
	uint32_t total = B->warm + B->iters, n = 0;
	uint64_t hz = gx_tsc_hz();
	gx_status_t st;

	cond_bytes = bytes;
	for (uint32_t it = 0; it < total; it++) {
		uint32_t coll = ++B->coll_seq;
		if (B->rank == 1) {
			/* want_coll was set to coll before the previous echo left: the next ping cannot
			 * arrive before we count it. */
			if (B->want_coll != coll) {
				B->want_coll = coll;
				B->got_bytes = 0;
			}
			if ((st = wait_until(B, got_all, 30000)) < 0)
				return st;
			B->want_coll = coll + 1;
			B->got_bytes = 0;
			if ((st = send_msg(B, coll, bytes, NULL, true)) < 0)
				return st;
			continue;
		}
		B->want_coll = coll;
		B->got_bytes = 0;
		uint64_t t0 = gx_tsc();
		if ((st = send_msg(B, coll, bytes, NULL, true)) < 0)
			return st;
		/* Wait by spinning on poll: wait_until's clock_gettime would add to the sample. */
		uint64_t spins = 0;
		while (B->got_bytes < bytes) {
			int r = gx_net_poll(B->n, on_packet, B);
			if (r < 0)
				return r;
			if (!r && ++spins > 100000)
				gx_idle_backoff(100000);
		}
		uint64_t t1 = gx_tsc();
		if (it >= B->warm)
			B->samples[n++] = (double)(t1 - t0) * 1e6 / (double)hz / 2.0;
	}
	if (B->rank == 0) {
		B->want_coll = 0;
		print_latency(B, "pingpong:reliable", bytes, n, 0);
	}
	return wait_until(B, drained, 10000);
}

/* ---- stream ---------------------------------------------------------------------------------- */

/* Rank 0's side of a stream: messages of `bytes` until the deadline.  The clock is read every few
 * packets and at every wait for window credit, so neither a large message nor a starved or lossy
 * receiver keeps the sender past -t; the message under way at the deadline stops there (its bytes
 * count, since the receiver counts bytes).  Polls after every 64 messages, as when the window fills. */
static gx_status_t stream_send(struct nb *B, uint32_t coll, uint64_t bytes, uint64_t end, uint64_t *sent,
			       uint64_t *msgs)
{
	uint64_t off = 0;
	uint32_t chunk = 0, pkts = 0;
	gx_status_t st;

	for (;;) {
		if ((pkts & 15) == 0 && gx_tsc() >= end)
			return GX_OK;
		uint8_t *b = gx_net_reserve(B->n, B->peer, &st);
		if (!b) {
			if (st != GX_ERR_AGAIN)
				return st;
			int r = gx_net_poll(B->n, on_packet, B);
			if (r < 0)
				return r;
			if (gx_tsc() >= end)
				return GX_OK;
			continue;
		}
		uint32_t len = bytes - off < B->payload ? (uint32_t)(bytes - off) : B->payload;
		struct gx_desc d = { .coll_id = coll, .chunk = chunk++ };
		if ((st = gx_net_commit(B->n, B->peer, &d, len)) < 0)
			return st;
		pkts++;
		off += len;
		*sent += len;
		if (off < bytes)
			continue;
		off = 0;
		chunk = 0;
		if (++*msgs % 64 == 0) {
			int r = gx_net_poll(B->n, on_packet, B);
			if (r < 0)
				return r;
		}
	}
}

static gx_status_t stream_one(struct nb *B, uint32_t coll, uint64_t bytes)
{
	gx_status_t st;
	uint64_t hz = gx_tsc_hz();

	B->fin = false;
	B->have_result = false;
	if (B->rank == 1) {
		/* Count what arrives for this size until FIN and all it announces, then report
		 * (bytes, packets, first..last packet in TSC ticks, TSC Hz). */
		if (B->want_coll != coll) {
			B->want_coll = coll;
			B->got_bytes = B->got_pkts = 0;
		}
		uint64_t first = 0, last = 0, idle = gx_tsc(), cpu_first = 0;
		while (!B->fin || B->got_bytes < B->fin_bytes) {
			uint64_t before = B->got_pkts;
			int r = gx_net_poll(B->n, on_packet, B);
			if (r < 0)
				return r;
			uint64_t now = gx_tsc();
			if (B->got_pkts != before) {
				last = now;
				if (!first) {
					first = last;
					cpu_first = thread_cpu_ns();
				}
			}
			if (r > 0)
				idle = now;
			if (now - idle > 30 * hz)
				return gx_error(GX_ERR_PEER, "rank 1: stream: nothing from rank 0 for 30 s");
			gx_idle_backoff((uint64_t)((double)(now - idle) * 1e9 / (double)hz));
		}
		uint64_t res[5] = { B->got_bytes, B->got_pkts, last - first, hz, thread_cpu_ns() - cpu_first };
		B->want_coll = coll + 1;        /* before the result leaves: the next size may follow at once */
		B->got_bytes = B->got_pkts = 0;
		return send_msg(B, CTRL_RESULT, sizeof(res), res, true);
	}
	uint64_t cpu0 = thread_cpu_ns(), t0 = gx_tsc();
	uint64_t end = t0 + (uint64_t)(B->seconds * (double)hz), msgs = 0, total = 0;
	if ((st = stream_send(B, coll, bytes, end, &total, &msgs)) < 0)
		return st;
	uint64_t cpu_send = thread_cpu_ns() - cpu0;
	double send_secs = (double)(gx_tsc() - t0) / (double)hz;
	if ((st = send_msg(B, CTRL_FIN, sizeof(total), &total, true)) < 0)
		return st;
	if ((st = wait_until(B, got_result, STREAM_DRAIN_MS)) < 0) {
		char why[300];
		snprintf(why, sizeof(why), "%s", gx_last_error());
		return gx_error(st, "stream %llu B: rank 1 had not received the %llu bytes sent %u s after sending "
				"stopped (%s); is it starved of CPU, or the link dropping most packets?",
				(unsigned long long)bytes, (unsigned long long)total, STREAM_DRAIN_MS / 1000, why);
	}
	double secs = B->result[2] ? (double)B->result[2] / (double)B->result[3] : 0.0;
	if (secs <= 0 || !B->result[0])
		return gx_error(GX_ERR_IO, "stream: rank 1 measured no time (%llu packets)",
				(unsigned long long)B->result[1]);
	double gbps = (double)B->result[0] * 8 / secs / 1e9, mpps = (double)B->result[1] / secs / 1e6;
	struct bench_row r = { .peer = "gx", .transport = B->transport, .op = "stream:reliable", .nranks = 2,
			       .oversub = B->oversub, .bytes = bytes, .count = B->result[1], .type = "uint8",
			       .redop = "none", .iters = (uint32_t)(msgs > UINT32_MAX ? UINT32_MAX : msgs) };
	r.time_us = secs * 1e6 * (double)bytes / (double)B->result[0];   /* per message delivered */
	r.min_us = r.p90_us = r.time_us;
	r.algbw_GBps = (double)B->result[0] / secs / 1e9;
	r.busbw_GBps = r.algbw_GBps;
	r.wrong = total - B->result[0];            /* sent but not delivered: must be 0 */
	bench_print_row(stdout, &r);
	fprintf(stdout, "# stream %llu B: %.3f Gbit/s, %.3f Mpps of delivered payload over %.2f s\n",
		(unsigned long long)bytes, gbps, mpps, secs);
	double pkts = B->result[1] ? (double)B->result[1] : 1.0;
	fprintf(stdout, "# stream %llu B cpu: sender %.2f s (%.0f%% of a core, %.2f us per packet), receiver %.2f s "
		"(%.0f%% of a core, %.2f us per packet)\n", (unsigned long long)bytes, (double)cpu_send / 1e9,
		100.0 * (double)cpu_send / 1e9 / send_secs, (double)cpu_send / 1e3 / pkts,
		(double)B->result[4] / 1e9, 100.0 * (double)B->result[4] / 1e9 / secs,
		(double)B->result[4] / 1e3 / pkts);
	fflush(stdout);
	return GX_OK;
}

/* ---- main ------------------------------------------------------------------------------------ */

/* The sizes a run goes through: -b, times -f, up to -e; the largest always runs (e.g. one full
 * packet's payload).  Returns how many (at most max are stored). */
static size_t sweep_sizes(const struct nb *B, uint64_t *out, size_t max)
{
	size_t n = 0;

	for (double s = (double)B->minb;; s *= B->factor) {
		uint64_t bytes = (uint64_t)s;
		if (bytes > B->maxb) {
			if ((uint64_t)(s / B->factor) >= B->maxb)
				break;
			bytes = B->maxb;
		}
		if (n < max)
			out[n] = bytes;
		n++;
		if (bytes == B->maxb)
			break;
	}
	return n;
}

#define MAX_SIZES 256

static gx_status_t run(void *arg)
{
	struct nb *B = arg;
	gx_status_t st = GX_OK;
	uint64_t sizes[MAX_SIZES];
	size_t nsizes = sweep_sizes(B, sizes, MAX_SIZES);
	uint32_t coll = 0;

	for (size_t i = 0; i < nsizes && st >= 0; i++) {
		uint64_t bytes = sizes[i];
		if (B->stream) {
			st = stream_one(B, ++coll, bytes);
		} else {
			if ((B->paths & PATH_RAW) && bytes <= B->payload)
				st = pingpong_raw(B, bytes);
			if (st >= 0 && (B->paths & PATH_RELIABLE))
				st = pingpong_reliable(B, bytes);
		}
	}
	if (st >= 0)
		st = wait_until(B, drained, 10000);
	if (st < 0)
		return st;
	/* Counters of this rank (each rank prints its own line). */
	struct gx_peer_counters c;
	struct gx_backend_counters bc;
	gx_net_peer_counters(B->n, GX_PEER_ANY, &c);
	gx_net_backend_counters(B->n, &bc);
	fprintf(stdout, "# rank %u counters: sent %llu received %llu retransmitted %llu (fast %llu, rto events %llu) "
		"duplicates %llu out_of_window %llu malformed %llu dropped %llu acks %llu/%llu srtt %u us; "
		"backend tx %llu rx %llu tx_full %llu\n", B->rank, (unsigned long long)c.sent,
		(unsigned long long)c.received, (unsigned long long)c.retransmitted,
		(unsigned long long)c.fast_retransmits, (unsigned long long)c.rto_events,
		(unsigned long long)c.duplicates, (unsigned long long)c.out_of_window,
		(unsigned long long)c.malformed, (unsigned long long)c.dropped, (unsigned long long)c.acks_sent,
		(unsigned long long)c.acks_received, c.srtt_us, (unsigned long long)bc.tx_pkts,
		(unsigned long long)bc.rx_pkts, (unsigned long long)bc.tx_full);
	fflush(stdout);
	return GX_OK;
}

static int net_main(int argc, char **argv, bool stream)
{
	const char *mode = stream ? "stream" : "pingpong";
	struct gx_comm_opts co;
	struct nb B;
	long iters = 20000, warm = 2000;
	const char *path = "both";

	memset(&B, 0, sizeof(B));
	B.minb = stream ? 64 : 1;
	B.maxb = stream ? 0 : 64 << 10;
	B.factor = 2.0;
	B.seconds = 1.0;
	B.stream = stream;
	if (gx_comm_opts_default(&co) < 0 || gx_config_parse(&argc, argv, &co) < 0) {
		fprintf(stderr, "gx-bench %s: %s\n", mode, gx_last_error());
		return 2;
	}
	static const struct option lo[] = {
		{ "path", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char flag[40], me[32];
	snprintf(me, sizeof(me), "gx-bench %s", mode);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "b:e:f:n:w:t:h", lo, NULL)) != -1) {
		const char *f = bench_flag_name(ch, lo, flag, sizeof(flag));
		int bad = 0;
		switch (ch) {
		case 'b': bad = bench_size_arg(me, f, optarg, 1, BENCH_SIZE_MAX, &B.minb); break;
		case 'e': bad = bench_size_arg(me, f, optarg, 1, BENCH_SIZE_MAX, &B.maxb); break;
		case 'f': bad = bench_double_arg(me, f, optarg, 1.1, 1024, &B.factor); break;
		case 'n': bad = bench_long_arg(me, f, optarg, 1, 10000000, &iters); break;
		case 'w': bad = bench_long_arg(me, f, optarg, 0, 10000000, &warm); break;
		case 't': bad = bench_double_arg(me, f, optarg, 0.01, 3600, &B.seconds); break;
		case 'P': path = optarg; break;
		case 'h': usage(stdout, stream); return 0;
		default: usage(stderr, stream); return 2;
		}
		if (bad)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "gx-bench %s: unexpected argument '%s'\n", mode, argv[optind]);
		return 2;
	}
	if (!strcmp(path, "both"))
		B.paths = PATH_RAW | PATH_RELIABLE;
	else if (!strcmp(path, "raw"))
		B.paths = PATH_RAW;
	else if (!strcmp(path, "reliable"))
		B.paths = PATH_RELIABLE;
	else {
		fprintf(stderr, "gx-bench %s: --path must be raw, reliable or both, not '%s'\n", mode, path);
		return 2;
	}
	B.iters = (uint32_t)iters;
	B.warm = (uint32_t)warm;

	if (gx_comm_create(&co, &B.c) < 0) {
		fprintf(stderr, "gx-bench %s: %s\n", mode, gx_last_error());
		return 1;
	}
	int rc = 0;
	if (gx_comm_size(B.c) != 2) {
		fprintf(stderr, "gx-bench %s: needs exactly 2 ranks, got %u (gx-run -n 2 -- gx-bench %s)\n",
			mode, gx_comm_size(B.c), mode);
		rc = 2;
		goto out;
	}
	B.rank = gx_comm_rank(B.c);
	B.peer = 1 - B.rank;
	B.n = gx_comm_net(B.c);
	B.be = gx_net_backend(B.n);
	B.payload = gx_net_max_payload(B.n);
	B.max_msg = B.be->ops->max_msg(B.be);
	B.transport = co.tr.backend ? co.tr.backend : "udp";
	gx_net_identity(B.n, &B.job, &B.incarnation);
	B.pkt = calloc(1, B.max_msg);
	B.samples = calloc(B.iters, sizeof(double));
	if (!B.pkt || !B.samples) {
		fprintf(stderr, "gx-bench %s: out of memory\n", mode);
		rc = 1;
		goto out;
	}
	if (B.stream && !B.maxb)
		B.maxb = B.payload;            /* one packet's payload */
	if (B.paths == PATH_RAW && B.minb > B.payload) {
		/* a raw ping is one datagram: nothing larger can run, and a run of nothing is no result */
		fprintf(stderr, "gx-bench %s: --path raw carries one packet, at most %u B here (mtu %u%s); -b %llu "
			"is larger: lower -b, raise --mtu, or use --path reliable\n", mode, B.payload, co.tr.mtu,
			co.tr.auth_key_file && *co.tr.auth_key_file ? ", keyed" : "", (unsigned long long)B.minb);
		rc = 2;
		goto out;
	}
	if (B.paths == PATH_RAW && B.maxb > B.payload) {
		if (B.rank == 0)
			fprintf(stdout, "# --path raw carries one packet: sizes up to %u B (-e %llu lowered)\n",
				B.payload, (unsigned long long)B.maxb);
		B.maxb = B.payload;
	}
	if (B.minb > B.maxb) {
		fprintf(stderr, "gx-bench %s: -b %llu is larger than -e %llu%s\n", mode, (unsigned long long)B.minb,
			(unsigned long long)B.maxb, B.stream ? " (default -e: one packet's payload)" : "");
		rc = 2;
		goto out;
	}
	size_t nsizes = sweep_sizes(&B, NULL, 0);
	if (nsizes > MAX_SIZES) {
		fprintf(stderr, "gx-bench %s: -b %llu to -e %llu by -f %g is %zu sizes, more than %d: raise -f\n",
			mode, (unsigned long long)B.minb, (unsigned long long)B.maxb, B.factor, nsizes, MAX_SIZES);
		rc = 2;
		goto out;
	}
	pin(&B);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	B.oversub = (uint32_t)((2 + ncpu - 1) / (ncpu > 0 ? ncpu : 1));
	fprintf(stdout, "# gx-bench %s: rank %u pinned to core %d (1 core per rank; %ld cores online, oversub %u), "
		"transport %s, mtu %u, payload %u B per packet, window %u\n", mode, B.rank, B.core, ncpu, B.oversub,
		B.transport, co.tr.mtu ? co.tr.mtu : 1500, B.payload, co.tr.window ? co.tr.window : 256);
	if (B.rank == 0 && B.stream)
		fprintf(stdout, "# gx-bench stream: %zu sizes, %.3g s of sending each (-t): about %.0f s\n", nsizes,
			B.seconds, (double)nsizes * B.seconds);
	if (B.rank == 0)
		bench_print_header(stdout);
	fflush(stdout);
	gx_status_t st = gx_comm_run(B.c, run, &B);
	if (st < 0) {
		fprintf(stderr, "gx-bench %s: rank %u: %s: %s\n", mode, B.rank, gx_status_str(st), gx_last_error());
		gx_comm_abort(B.c);        /* the peer stops now, not after its own timeout */
		rc = 1;
	}
out:
	free(B.pkt);
	free(B.samples);
	gx_comm_destroy(B.c);
	return rc;
}

int bench_pingpong_main(int argc, char **argv)
{
	return net_main(argc, argv, false);
}

int bench_stream_main(int argc, char **argv)
{
	return net_main(argc, argv, true);
}
