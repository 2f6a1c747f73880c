/* gx-linkemu: a link emulator between two network interfaces, for kernels without netem.
 *
 * It copies Ethernet frames between two interfaces with AF_PACKET raw sockets.  Frames that arrive
 * on --src and leave through --dst (the "shaped lane") are delayed, jittered, reordered and
 * duplicated with seeded randomness; frames going the other way are copied unchanged (or shaped
 * too with --both).  scripts/gx-netns puts one between a host's veth and the bridge.
 *
 * Per frame, in a shaped lane:
 *   arrival:  duplicate with probability --dup (the copy leaves right after the original);
 *             release time = arrival + delay + uniform(-jitter, +jitter), clamped at arrival
 *             (jitter therefore reorders frames, as netem's does);
 *   release:  with probability --reorder the frame is held back and leaves right after the next
 *             frame that is not held (so it arrives after a later frame: one reordering), or after
 *             --hold-us if no frame follows;
 *   limit:    at most --limit frames wait in the lane; more are dropped and counted.
 * The process blocks in ppoll() until a frame arrives or the next release is due and spins only
 * briefly (--spin-us) after traffic or before a close deadline, so an idle link costs no CPU.
 * SIGUSR1 prints the counters to stderr; SIGTERM/SIGINT print them and exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx_rng.h"
#include "gx_time.h"

#define BATCH 64
#define FRAME_SLACK 64            /* Ethernet header, VLAN tags and a margin above the MTU */

struct frame {
	uint64_t release_ns;
	uint64_t order;           /* arrival order: equal release times keep FIFO order */
	uint8_t copies;           /* 1, or 2 when duplicated */
	uint32_t len;
	uint8_t *data;
};

struct lane_stats {
	uint64_t rx, tx, tx_bytes, delayed, duplicated, reordered, hold_expired;
	uint64_t limit_drops, oversize, tx_errors;
	uint64_t late_sum_ns, late_max_ns;   /* release time missed by, over delayed frames */
	uint64_t rx_overruns;     /* frames the kernel dropped because our socket buffer was full */
};

struct lane {
	const char *name;         /* "src->dst" */
	int in_fd, out_fd;
	int shaped;
	uint64_t delay_ns, jitter_ns, hold_ns;
	uint32_t dup_thr, reorder_thr;   /* probability * 2^32 */
	uint64_t rng_key;
	uint32_t rng_ctr;
	uint64_t order;
	/* frames waiting for their release time: binary min-heap on (release_ns, order) */
	struct frame *heap;
	size_t heap_n;
	/* frames held back by the reorder draw, in release order */
	struct frame *held;
	size_t held_n;
	uint64_t held_deadline;
	size_t limit;
	struct lane_stats st;
	/* transmit batch */
	struct mmsghdr txm[BATCH];
	struct iovec txv[BATCH];
	uint8_t *txown[BATCH];
	int txn;
};

static volatile sig_atomic_t stop_flag, dump_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void on_dump(int sig)
{
	(void)sig;
	dump_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gx-linkemu --src IF --dst IF [options]\n"
		"  Copies frames between two interfaces; frames from SRC to DST are shaped.\n"
		"  --src IF          interface whose incoming frames are shaped\n"
		"  --dst IF          interface the shaped frames leave through (its incoming frames go to SRC)\n"
		"  --delay-us D      fixed delay per frame (default 0)\n"
		"  --jitter-us J     uniform jitter in [-J, +J] added to the delay; reorders frames (default 0)\n"
		"  --reorder PCT     percent of frames held back until after the next frame (default 0)\n"
		"  --dup PCT         percent of frames sent twice (default 0)\n"
		"  --hold-us H       longest a held-back frame waits for a successor (default 10000)\n"
		"  --limit N         most frames waiting in one direction; more are dropped (default 20000)\n"
		"  --seed S          random seed (default 1)\n"
		"  --spin-us S       busy-wait this long after traffic before sleeping in ppoll (default 20)\n"
		"  --both            shape the DST->SRC direction too (with its own random stream)\n"
		"  --pidfile FILE    write the process id once both sockets are bound\n"
		"SIGUSR1 prints counters to stderr; SIGTERM prints them and exits.\n");
}

static int parse_pct(const char *s, uint32_t *thr)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || v < 0.0 || v > 100.0)
		return -1;
	*thr = (uint32_t)(v / 100.0 * 4294967295.0);
	return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || *end || errno || v > max)
		return -1;
	*out = v;
	return 0;
}

static uint32_t lane_rand(struct lane *l)
{
	return gx_rng_u32(l->rng_key, l->rng_ctr++);
}

/* An AF_PACKET socket bound to `ifname`, seeing only frames the interface receives. */
static int open_port(const char *ifname, unsigned *mtu)
{
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0) {
		fprintf(stderr, "gx-linkemu: socket(AF_PACKET): %s (needs root or CAP_NET_RAW)\n",
			strerror(errno));
		return -1;
	}
	unsigned idx = if_nametoindex(ifname);
	if (!idx) {
		fprintf(stderr, "gx-linkemu: no interface '%s' in this network namespace\n", ifname);
		goto fail;
	}
	int one = 1;
	if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0) {
		fprintf(stderr, "gx-linkemu: PACKET_IGNORE_OUTGOING: %s (kernel 4.20 or later needed)\n",
			strerror(errno));
		goto fail;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0) {
		fprintf(stderr, "gx-linkemu: SO_TIMESTAMPNS: %s\n", strerror(errno));
		goto fail;
	}
	/* Room for bursts that arrive while we sleep in ppoll; FORCE works for root beyond rmem_max. */
	int rcvbuf = 8 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)idx };
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		fprintf(stderr, "gx-linkemu: bind to %s: %s\n", ifname, strerror(errno));
		goto fail;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
		fprintf(stderr, "gx-linkemu: SIOCGIFMTU %s: %s\n", ifname, strerror(errno));
		goto fail;
	}
	*mtu = (unsigned)ifr.ifr_mtu;
	/* Frames queued before bind may belong to any interface: drop them. */
	char junk[64];
	while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT | MSG_TRUNC) >= 0)
		;
	return fd;
fail:
	close(fd);
	return -1;
}

/* Frames leave in sendmmsg batches; a queued frame's buffer is freed (if owned) once sent. */
static void tx_flush(struct lane *l)
{
	int done = 0;

	while (done < l->txn) {
		int r = sendmmsg(l->out_fd, l->txm + done, (unsigned)(l->txn - done), 0);
		if (r <= 0) {
			l->st.tx_errors++;   /* this frame failed; the rest may still go */
			done++;
			continue;
		}
		for (int i = done; i < done + r; i++) {
			l->st.tx++;
			l->st.tx_bytes += l->txv[i].iov_len;
		}
		done += r;
	}
	for (int i = 0; i < l->txn; i++)
		free(l->txown[i]);
	l->txn = 0;
}

/* Queue f's copies; `owned`: free f->data after sending (else it must stay valid until tx_flush). */
static void transmit(struct lane *l, const struct frame *f, int owned)
{
	for (unsigned c = 0; c < f->copies; c++) {
		if (l->txn == BATCH)
			tx_flush(l);
		int i = l->txn++;
		l->txv[i] = (struct iovec){ .iov_base = f->data, .iov_len = f->len };
		memset(&l->txm[i], 0, sizeof(l->txm[i]));
		l->txm[i].msg_hdr.msg_iov = &l->txv[i];
		l->txm[i].msg_hdr.msg_iovlen = 1;
		l->txown[i] = owned && c + 1 == f->copies ? f->data : NULL;
	}
}

static int frame_before(const struct frame *a, const struct frame *b)
{
	return a->release_ns < b->release_ns || (a->release_ns == b->release_ns && a->order < b->order);
}

static void heap_push(struct lane *l, struct frame f)
{
	size_t i = l->heap_n++;

	while (i) {
		size_t p = (i - 1) / 2;
		if (!frame_before(&f, &l->heap[p]))
			break;
		l->heap[i] = l->heap[p];
		i = p;
	}
	l->heap[i] = f;
}

static struct frame heap_pop(struct lane *l)
{
	struct frame top = l->heap[0], last = l->heap[--l->heap_n];
	size_t i = 0, n = l->heap_n;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && frame_before(&l->heap[c + 1], &l->heap[c]))
			c++;
		if (!frame_before(&l->heap[c], &last))
			break;
		l->heap[i] = l->heap[c];
		i = c;
	}
	if (n)
		l->heap[i] = last;
	return top;
}

static void flush_held(struct lane *l, int reordered)
{
	for (size_t i = 0; i < l->held_n; i++) {
		transmit(l, &l->held[i], 1);
	}
	if (reordered)
		l->st.reordered += l->held_n;
	else
		l->st.hold_expired += l->held_n;
	l->held_n = 0;
}

/* A frame whose delay is over: hold it back, or send it and then whatever was held. */
static void release(struct lane *l, struct frame f, uint64_t now)
{
	if (l->reorder_thr && lane_rand(l) < l->reorder_thr && l->held_n < l->limit) {
		if (!l->held_n)
			l->held_deadline = now + l->hold_ns;
		l->held[l->held_n++] = f;
		return;
	}
	transmit(l, &f, 1);
	if (l->held_n)
		flush_held(l, 1);
}

static void lane_arrival(struct lane *l, const uint8_t *data, uint32_t len, uint64_t now)
{
	if (!l->shaped) {
		struct frame f = { .copies = 1, .len = len, .data = (uint8_t *)data };
		transmit(l, &f, 0);   /* f.data is in the receive buffer: flushed before it is reused */
		return;
	}
	if (l->heap_n + l->held_n >= l->limit) {
		l->st.limit_drops++;
		return;
	}
	struct frame f = { .copies = 1, .len = len, .order = l->order++ };
	if (l->dup_thr && lane_rand(l) < l->dup_thr) {
		f.copies = 2;
		l->st.duplicated++;
	}
	int64_t d = (int64_t)l->delay_ns;
	if (l->jitter_ns) {
		/* uniform in [-jitter, +jitter] */
		double u = (double)lane_rand(l) * (1.0 / 4294967296.0);
		d += (int64_t)((2.0 * u - 1.0) * (double)l->jitter_ns);
	}
	f.release_ns = now + (uint64_t)(d > 0 ? d : 0);
	f.data = malloc(len);
	if (!f.data) {
		l->st.limit_drops++;
		return;
	}
	memcpy(f.data, data, len);
	if (f.release_ns > now) {
		l->st.delayed++;
		heap_push(l, f);
	} else {
		release(l, f, now);
	}
}

/* Read what is waiting on l->in_fd (one batch).  Returns frames read. */
static int lane_rx(struct lane *l, uint8_t *buf, size_t bufsz, uint64_t now)
{
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_ll from[BATCH];
	union {
		char buf[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl[BATCH];

	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = buf + (size_t)i * bufsz;
		iov[i].iov_len = bufsz;
		memset(&mm[i].msg_hdr, 0, sizeof(mm[i].msg_hdr));
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_name = &from[i];
		mm[i].msg_hdr.msg_namelen = sizeof(from[i]);
		mm[i].msg_hdr.msg_control = ctl[i].buf;
		mm[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
	}
	int n = recvmmsg(l->in_fd, mm, BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
	if (n <= 0)
		return 0;
	/* The kernel's arrival stamps are CLOCK_REALTIME: delays count from when the frame reached
	 * the interface, not from when we woke up to read it. */
	/* the two clocks are read back to back: `now` is from before the wait and would make every
	 * frame look older than it is (released early by that much) */
	struct timespec rt;
	uint64_t mono = gx_now_ns();
	clock_gettime(CLOCK_REALTIME, &rt);
	int64_t real_minus_mono = (int64_t)((uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec) -
				  (int64_t)mono;
	for (int i = 0; i < n; i++) {
		if (from[i].sll_pkttype == PACKET_OUTGOING)
			continue;
		l->st.rx++;
		if ((mm[i].msg_hdr.msg_flags & MSG_TRUNC) || mm[i].msg_len > bufsz) {
			l->st.oversize++;
			continue;
		}
		uint64_t arrival = now;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mm[i].msg_hdr); cm;
		     cm = CMSG_NXTHDR(&mm[i].msg_hdr, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
				struct timespec ts;
				memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
				int64_t a = (int64_t)((uint64_t)ts.tv_sec * 1000000000ull +
						      (uint64_t)ts.tv_nsec) - real_minus_mono;
				if (a > 0 && (uint64_t)a < now)
					arrival = (uint64_t)a;
			}
		}
		lane_arrival(l, (uint8_t *)iov[i].iov_base, mm[i].msg_len, arrival);
	}
	tx_flush(l);
	return n;
}

static void lane_timers(struct lane *l, uint64_t now)
{
	while (l->heap_n && l->heap[0].release_ns <= now) {
		struct frame f = heap_pop(l);
		uint64_t late = now - f.release_ns;
		l->st.late_sum_ns += late;
		if (late > l->st.late_max_ns)
			l->st.late_max_ns = late;
		release(l, f, now);
	}
	if (l->held_n && now >= l->held_deadline)
		flush_held(l, 0);
	tx_flush(l);
}

static uint64_t lane_next_deadline(const struct lane *l)
{
	uint64_t t = UINT64_MAX;

	if (l->heap_n)
		t = l->heap[0].release_ns;
	if (l->held_n && l->held_deadline < t)
		t = l->held_deadline;
	return t;
}

static void lane_print(struct lane *l)
{
	const struct lane_stats *s = &l->st;
	struct tpacket_stats ks;
	socklen_t kl = sizeof(ks);

	/* reading the kernel's counters resets them: accumulate */
	if (!getsockopt(l->in_fd, SOL_PACKET, PACKET_STATISTICS, &ks, &kl))
		l->st.rx_overruns += ks.tp_drops;

	fprintf(stderr,
		"gx-linkemu: %s rx=%llu tx=%llu tx_bytes=%llu delayed=%llu duplicated=%llu reordered=%llu "
		"hold_expired=%llu limit_drops=%llu oversize=%llu tx_errors=%llu queued=%zu "
		"late_avg_us=%.1f late_max_us=%.1f rx_overruns=%llu\n",
		l->name, (unsigned long long)s->rx, (unsigned long long)s->tx,
		(unsigned long long)s->tx_bytes, (unsigned long long)s->delayed,
		(unsigned long long)s->duplicated, (unsigned long long)s->reordered,
		(unsigned long long)s->hold_expired, (unsigned long long)s->limit_drops,
		(unsigned long long)s->oversize, (unsigned long long)s->tx_errors, l->heap_n + l->held_n,
		s->delayed ? (double)s->late_sum_ns / (double)s->delayed / 1e3 : 0.0,
		(double)s->late_max_ns / 1e3, (unsigned long long)s->rx_overruns);
}

static void lane_free(struct lane *l)
{
	for (size_t i = 0; i < l->heap_n; i++)
		free(l->heap[i].data);
	for (size_t i = 0; i < l->held_n; i++)
		free(l->held[i].data);
	free(l->heap);
	free(l->held);
}

int main(int argc, char **argv)
{
	const char *src = NULL, *dst = NULL, *pidfile = NULL;
	uint64_t delay_us = 0, jitter_us = 0, hold_us = 10000, limit = 20000, seed = 1, spin_us = 20;
	uint32_t reorder_thr = 0, dup_thr = 0;
	int both = 0, rc = 1;
	static const struct option opts[] = {
		{ "src", required_argument, NULL, 's' },
		{ "dst", required_argument, NULL, 'd' },
		{ "delay-us", required_argument, NULL, 'D' },
		{ "jitter-us", required_argument, NULL, 'J' },
		{ "reorder", required_argument, NULL, 'R' },
		{ "dup", required_argument, NULL, 'U' },
		{ "hold-us", required_argument, NULL, 'H' },
		{ "limit", required_argument, NULL, 'L' },
		{ "seed", required_argument, NULL, 'S' },
		{ "spin-us", required_argument, NULL, 'P' },
		{ "both", no_argument, NULL, 'b' },
		{ "pidfile", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, li = 0;

	while ((c = getopt_long(argc, argv, "h", opts, &li)) != -1) {
		int bad = 0;
		switch (c) {
		case 's': src = optarg; break;
		case 'd': dst = optarg; break;
		case 'D': bad = parse_u64(optarg, 60000000, &delay_us); break;
		case 'J': bad = parse_u64(optarg, 60000000, &jitter_us); break;
		case 'R': bad = parse_pct(optarg, &reorder_thr); break;
		case 'U': bad = parse_pct(optarg, &dup_thr); break;
		case 'H': bad = parse_u64(optarg, 60000000, &hold_us); break;
		case 'L': bad = parse_u64(optarg, 10000000, &limit) || limit == 0; break;
		case 'S': bad = parse_u64(optarg, UINT64_MAX, &seed); break;
		case 'P': bad = parse_u64(optarg, 1000000, &spin_us); break;
		case 'b': both = 1; break;
		case 'f': pidfile = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (bad) {
			fprintf(stderr, "gx-linkemu: bad value '%s' for --%s (percentages 0-100, times in "
				"microseconds up to 60 s, --limit 1-10000000)\n", optarg, opts[li].name);
			return 2;
		}
	}
	if (optind != argc || !src || !dst || !strcmp(src, dst)) {
		fprintf(stderr, "gx-linkemu: need --src IF and --dst IF (two different interfaces)\n");
		usage(stderr);
		return 2;
	}

	unsigned mtu_src, mtu_dst;
	int fd_src = open_port(src, &mtu_src);
	if (fd_src < 0)
		return 1;
	int fd_dst = open_port(dst, &mtu_dst);
	if (fd_dst < 0) {
		close(fd_src);
		return 1;
	}
	size_t bufsz = (mtu_src > mtu_dst ? mtu_src : mtu_dst) + FRAME_SLACK;
	uint8_t *rxbuf = malloc(bufsz * BATCH);
	char name_fwd[2 * IF_NAMESIZE + 3], name_rev[2 * IF_NAMESIZE + 3];
	snprintf(name_fwd, sizeof(name_fwd), "%s->%s", src, dst);
	snprintf(name_rev, sizeof(name_rev), "%s->%s", dst, src);
	struct lane lanes[2] = {
		{ .name = name_fwd, .in_fd = fd_src, .out_fd = fd_dst, .shaped = 1 },
		{ .name = name_rev, .in_fd = fd_dst, .out_fd = fd_src, .shaped = both },
	};
	for (int i = 0; i < 2; i++) {
		struct lane *l = &lanes[i];
		l->delay_ns = delay_us * 1000;
		l->jitter_ns = jitter_us * 1000;
		l->hold_ns = hold_us * 1000;
		l->dup_thr = dup_thr;
		l->reorder_thr = reorder_thr;
		l->rng_key = gx_rng_key(seed, (uint32_t)i, 0, 0);
		l->limit = (size_t)limit;
		if (l->shaped) {
			l->heap = malloc(sizeof(*l->heap) * l->limit);
			l->held = malloc(sizeof(*l->held) * l->limit);
		}
		if (l->shaped && (!l->heap || !l->held)) {
			fprintf(stderr, "gx-linkemu: out of memory for --limit %llu\n",
				(unsigned long long)limit);
			goto out;
		}
	}
	if (!rxbuf) {
		fprintf(stderr, "gx-linkemu: out of memory\n");
		goto out;
	}

	/* Wake-ups at the requested time, not 50 us later (the default timer slack). */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_dump;
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (pidfile) {
		FILE *pf = fopen(pidfile, "w");
		if (!pf || fprintf(pf, "%d\n", (int)getpid()) < 0 || fclose(pf)) {
			fprintf(stderr, "gx-linkemu: cannot write %s: %s\n", pidfile, strerror(errno));
			goto out;
		}
	}
	fprintf(stderr, "gx-linkemu: %s delay_us=%llu jitter_us=%llu reorder_thr=%u dup_thr=%u seed=%llu%s\n",
		name_fwd, (unsigned long long)delay_us, (unsigned long long)jitter_us, reorder_thr,
		dup_thr, (unsigned long long)seed, both ? " (both directions)" : "");

	uint64_t spin_ns = spin_us * 1000, last_rx = 0;
	/* How much later than asked ppoll returns (timer and scheduler latency, ~100 us on VMs):
	 * we wake that much early and spin the rest, so releases are on time. */
	uint64_t oversleep_ns = 50000;
	while (!stop_flag) {
		if (dump_flag) {
			dump_flag = 0;
			lane_print(&lanes[0]);
			lane_print(&lanes[1]);
		}
		uint64_t now = gx_now_ns();
		int got = 0;
		for (int i = 0; i < 2; i++)
			got += lane_rx(&lanes[i], rxbuf, bufsz, now);
		for (int i = 0; i < 2; i++)
			lane_timers(&lanes[i], now);
		if (got) {
			last_rx = now;
			continue;
		}
		uint64_t next = lane_next_deadline(&lanes[0]), n1 = lane_next_deadline(&lanes[1]);
		if (n1 < next)
			next = n1;
		/* Spin right after traffic (the next frame usually follows) and just before a release. */
		if (now - last_rx < spin_ns || (next != UINT64_MAX && next - now < spin_ns + oversleep_ns)) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			continue;
		}
		struct pollfd pfd[2] = { { .fd = fd_src, .events = POLLIN }, { .fd = fd_dst, .events = POLLIN } };
		struct timespec ts, *tsp = NULL;
		uint64_t wait = 0;
		if (next != UINT64_MAX) {
			wait = next - now - oversleep_ns;
			ts.tv_sec = (time_t)(wait / 1000000000ull);
			ts.tv_nsec = (long)(wait % 1000000000ull);
			tsp = &ts;
		}
		int pr = ppoll(pfd, 2, tsp, NULL);
		if (pr < 0 && errno != EINTR) {
			fprintf(stderr, "gx-linkemu: ppoll: %s\n", strerror(errno));
			goto out;
		}
		if (pr == 0 && tsp) {
			/* a timeout: learn the oversleep (moving average, capped at 1 ms) */
			uint64_t slept = gx_now_ns() - now;
			uint64_t over = slept > wait ? slept - wait : 0;
			oversleep_ns = (7 * oversleep_ns + (over < 1000000 ? over : 1000000)) / 8;
		}
		if ((pfd[0].revents | pfd[1].revents) & (POLLERR | POLLNVAL)) {
			/* A link going down sets a socket error; only a vanished interface ends us. */
			if (!if_nametoindex(src) || !if_nametoindex(dst)) {
				fprintf(stderr, "gx-linkemu: an interface went away; exiting\n");
				goto out;
			}
			int err;
			socklen_t el = sizeof(err);
			getsockopt(fd_src, SOL_SOCKET, SO_ERROR, &err, &el);
			getsockopt(fd_dst, SOL_SOCKET, SO_ERROR, &err, &el);
		}
	}
	rc = 0;
out:
	lane_print(&lanes[0]);
	lane_print(&lanes[1]);
	lane_free(&lanes[0]);
	lane_free(&lanes[1]);
	free(rxbuf);
	close(fd_src);
	close(fd_dst);
	return rc;
}
