/* test_dpdk.c: what only the DPDK backend has, over real DPDK ports.  The generic transport cases
 * (exact delivery 1 B..64 MiB, fault hooks, gx-level garbage, killed peers, ABORT) run over the same
 * ports in tests/test_transport.c's dpdk-af-packet and dpdk-memif configurations.
 *
 *   test_dpdk af_packet   two network namespaces (gxdp-t<pid>-a/-b) joined by a veth pair, each
 *                         rank's port is net_af_packet on its veth end; IPv6 off in the namespaces
 *   test_dpdk memif       two processes joined by net_memif (server = rank 0, client = rank 1) on a
 *                         socket in a temporary directory
 *
 * Every case forks its rank processes (the EAL is per process and never starts in this parent);
 * they exchange their address blobs over a socketpair, run the case over gx_net, and report a
 * result record through a pipe BEFORE closing their port (memif's server may crash in DPDK's
 * teardown; a verdict never depends on that exit status).  Cases: exact delivery with 9000-byte
 * jumbo frames (af_packet ring geometry, memif bsize); link-level foreign frames (IPv6, ARP, another
 * UDP port, a truncated IPv4 header) and gx-level garbage injected on the wire during a transfer
 * (af_packet: raw AF_PACKET socket on the veth; memif: straight onto the DPDK port); clear start-up
 * errors for a missing port, a bad EAL argument, a device that does not come up, a ring too small
 * for the MTU and a memif client without a server; two nets in one process sharing the EAL, closed
 * and opened again.  Needs root; EAL runs with --no-huge --no-shconf.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "gx_test.h"
#include "gx_time.h"
#include "gx_backend.h"

#define JOB_ID 7u
#define UDP_PORT 22631u
#define UDP_PORT_STR "22631"
#define CASE_TIMEOUT_S 60
#define NSZ 64

enum cfg { CFG_AFP, CFG_MEMIF };
static enum cfg cfg;
static char ns[2][NSZ];          /* af_packet: namespace of each rank */
static char ifn[2][IFNAMSIZ];    /* af_packet: veth end of each rank */
static char tmpdir[128];         /* memif: socket directory */
static unsigned sock_seq;
static bool setup_ok;

/* ---------------------------------------------------------------------------------------------
 * Set-up helpers.
 */

static int afp_setup(void)
{
	pid_t pid = getpid();

	snprintf(ns[0], NSZ, "gxdp-t%d-a", (int)pid);
	snprintf(ns[1], NSZ, "gxdp-t%d-b", (int)pid);
	snprintf(ifn[0], IFNAMSIZ, "gxdp%da", (int)pid % 1000000);
	snprintf(ifn[1], IFNAMSIZ, "gxdp%db", (int)pid % 1000000);
	for (int r = 0; r < 2; r++)
		if (gx_test_sh("ip netns add %s", ns[r]) ||
		    gx_test_sh("ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
		       "net.ipv6.conf.default.disable_ipv6=1", ns[r]) ||
		    gx_test_sh("ip -n %s link set lo up", ns[r]))
			return -1;
	if (gx_test_sh("ip link add %s netns %s type veth peer name %s netns %s", ifn[0], ns[0], ifn[1], ns[1]))
		return -1;
	for (int r = 0; r < 2; r++)
		if (gx_test_sh("ip -n %s link set %s up", ns[r], ifn[r]))
			return -1;
	return 0;
}

static int afp_mtu(uint32_t mtu)
{
	for (int r = 0; r < 2; r++)
		if (gx_test_sh("ip -n %s link set %s mtu %u", ns[r], ifn[r], mtu))
			return -1;
	return 0;
}

static int suite_init(void)
{
	if (cfg == CFG_AFP) {
		if (afp_setup() != 0)
			return -1;
	} else {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/gxdp-memif-%d", (int)getpid());
		if (mkdir(tmpdir, 0700) != 0)
			return -1;
	}
	setup_ok = true;
	return 0;
}

static int suite_clean(void)
{
	if (cfg == CFG_AFP) {
		for (int r = 0; r < 2; r++)
			if (ns[r][0])
				gx_test_sh("ip netns del %s 2>/dev/null", ns[r]);
	} else if (tmpdir[0]) {
		gx_test_sh("rm -rf %s", tmpdir);
	}
	return 0;
}

/* EAL arguments for rank r; `extra` is appended to the device arguments. */
static void eal_args(char *out, size_t len, int r, uint32_t mtu, unsigned sock)
{
	if (cfg == CFG_AFP)
		snprintf(out, len, "--no-huge --no-shconf --no-pci "
			 "--vdev=net_af_packet0,iface=%s,framecnt=4096%s", ifn[r],
			 mtu > 1500 ? ",blocksz=20480,framesz=10240" : "");
	else
		snprintf(out, len, "--no-huge --no-shconf --no-pci "
			 "--vdev=net_memif0,role=%s,socket=%s/m%u.sock,socket-abstract=no%s",
			 r == 0 ? "server" : "client", tmpdir, sock, mtu > 1500 ? ",bsize=10240" : "");
}

/* ---------------------------------------------------------------------------------------------
 * Payload pattern: byte `off` of message k from rank src, so every chunk checks on its own.
 */
static inline uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void pattern(uint8_t *dst, uint32_t src, uint32_t k, uint64_t off, uint32_t len)
{
	uint64_t w = 0, wi = UINT64_MAX;

	for (uint32_t i = 0; i < len; i++) {
		uint64_t p = off + i;
		if ((p >> 3) != wi) {
			wi = p >> 3;
			w = mix(((uint64_t)src << 56) ^ ((uint64_t)k << 40) ^ wi);
		}
		dst[i] = (uint8_t)(w >> ((p & 7) * 8));
	}
}

/* ---------------------------------------------------------------------------------------------
 * What a rank process reports.
 */
struct result {
	int reported;
	int status;                    /* GX_OK or the failing status */
	char msg[400];
	uint64_t chunks_expected, chunks_ok, chunks_bad, chunks_dup;
	uint64_t injected_foreign, injected_gx;
	double elapsed_s;
	struct gx_peer_counters pc;    /* totals over every peer (GX_PEER_ANY) */
	struct gx_backend_counters bc;
};

enum role { ROLE_EXCHANGE, ROLE_OPEN_ONLY, ROLE_SHARED_EAL };

struct spec {
	enum role role;
	uint32_t mtu;
	const uint64_t *sizes;         /* messages each rank sends to the other, in order */
	unsigned nsizes;
	struct gx_fault fault;
	uint32_t peer_timeout_ms;
	bool inject;                   /* rank 0 injects garbage and foreign frames towards rank 1 */
	/* ROLE_OPEN_ONLY */
	const char *eal;
	const char *port;
};

struct rx_state {
	uint32_t src, p;               /* sender rank, payload bytes per chunk */
	const uint64_t *sizes;
	unsigned nsizes;
	uint8_t **seen;
	uint64_t expected, ok, bad, dup;
	uint8_t tmp[65536];
};

static gx_status_t on_data(void *arg, uint32_t peer, const struct gx_desc *h, const void *payload,
			   uint32_t len)
{
	struct rx_state *s = arg;

	if ((h->flags & GX_DESC_RAW))
		return GX_OK;
	uint32_t k = h->coll_id;
	if (peer != s->src || k == 0 || k > s->nsizes) {
		s->bad++;
		return GX_OK;
	}
	uint64_t size = s->sizes[k - 1];
	uint64_t nchunks = size ? (size + s->p - 1) / s->p : 0;
	uint64_t off = (uint64_t)h->chunk * s->p;
	if (h->chunk >= nchunks || len != (size - off < s->p ? size - off : s->p)) {
		s->bad++;
		return GX_OK;
	}
	pattern(s->tmp, s->src, k, off, len);
	if (memcmp(s->tmp, payload, len) != 0) {
		s->bad++;
		return GX_OK;
	}
	uint8_t *bit = &s->seen[k - 1][h->chunk >> 3], m = (uint8_t)(1u << (h->chunk & 7));
	if (*bit & m) {
		s->dup++;
		return GX_OK;
	}
	*bit |= m;
	s->ok++;
	return GX_OK;
}

/* Frames for the injection case: 4 kinds the backend must call foreign, 3 the net must reject. */
static uint16_t ip_csum(const uint8_t *p, unsigned n)
{
	uint32_t s = 0;

	for (unsigned i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* UDP checksum over the IPv4 pseudo header, the UDP header (its checksum field 0) and the data. */
static uint16_t udp_csum(const uint8_t *ip, const uint8_t *udp, unsigned ulen)
{
	uint32_t s = 0;
	for (unsigned i = 12; i < 20; i += 2)
		s += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	s += 17 + ulen;
	for (unsigned i = 0; i < ulen; i += 2)
		s += (uint32_t)(udp[i] << 8 | (i + 1 < ulen ? udp[i + 1] : 0));
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	uint16_t c = (uint16_t)~s;
	return c ? c : 0xffff;
}

static unsigned make_frame(uint8_t *f, unsigned kind, uint32_t seq)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t src[6] = { 0x02, 0x67, 0x78, 0x64, 0x70, 0x01 };
	unsigned n;

	memcpy(f, bcast, 6);
	memcpy(f + 6, src, 6);
	memset(f + 14, 0xa5 ^ (uint8_t)seq, 200);
	switch (kind) {
	case 0: /* IPv6 */
		f[12] = 0x86, f[13] = 0xdd;
		return 14 + 60;
	case 1: /* ARP */
		f[12] = 0x08, f[13] = 0x06;
		return 14 + 28;
	case 3: /* truncated IPv4 header */
		f[12] = 0x08, f[13] = 0x00;
		f[14] = 0x45;
		return 14 + 10;
	default:
		break;
	}
	/* IPv4/UDP towards rank 1 (10.0.0.2) from rank 0's address. */
	uint8_t *ip = f + 14, *udp = ip + 20, *pl = udp + 8;
	unsigned plen = kind == 6 ? 12 : 64;
	f[12] = 0x08, f[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + 8 + plen) >> 8), ip[3] = (uint8_t)(20 + 8 + plen);
	ip[8] = 64, ip[9] = 17;
	ip[12] = 10, ip[15] = 1;
	ip[16] = 10, ip[19] = 2;
	uint16_t c = ip_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
	uint16_t dport = kind == 2 ? UDP_PORT + 1 : UDP_PORT;
	udp[0] = UDP_PORT >> 8, udp[1] = UDP_PORT & 0xff;
	udp[2] = (uint8_t)(dport >> 8), udp[3] = (uint8_t)dport;
	udp[4] = (uint8_t)((8 + plen) >> 8), udp[5] = (uint8_t)(8 + plen);
	udp[6] = udp[7] = 0;
	for (unsigned i = 0; i < plen; i++)
		pl[i] = (uint8_t)mix(seq * 131u + i);
	if (kind == 5 || kind == 7 || kind == 8) {
		/* well-formed, sealed gx DATA of another job, from rank 0's address; 7 with a right UDP
		 * checksum (checked, passes), 8 with a wrong one (dropped at the link level) */
		struct gx_hdr h = { .magic = GX_MAGIC, .version = GX_WIRE_VERSION, .type = GX_PKT_DATA,
				    .src_rank = 0, .job = JOB_ID + 1, .coll_id = 1, .psn = seq,
				    .len = (uint16_t)(plen - sizeof(struct gx_hdr)) };
		gx_hdr_seal(&h, pl + sizeof(h));
		memcpy(pl, &h, sizeof(h));
		if (kind != 5) {
			uint16_t c = udp_csum(ip, udp, 8 + plen);
			if (kind == 8)
				c ^= 0x0100;
			udp[6] = (uint8_t)(c >> 8), udp[7] = (uint8_t)c;
		}
	}
	n = 14 + 20 + 8 + plen;
	return n;
}

#define INJECT_KINDS 9
#define INJECT_EVERY 40     /* chunks sent between two injected frames */
#define INJECT_TOTAL 70

struct injector {
	int fd;                    /* af_packet: raw socket on our veth */
	int ifindex;
	uint16_t port;             /* memif: the DPDK port, sent on directly between gx_net calls */
	struct rte_mempool *pool;
	uint32_t done;
	uint64_t foreign, gx;
};

static int inject_open(struct injector *in)
{
	memset(in, 0, sizeof(*in));
	in->fd = -1;
	if (cfg == CFG_AFP) {
		in->fd = socket(AF_PACKET, SOCK_RAW, 0);
		in->ifindex = (int)if_nametoindex(ifn[0]);
		return in->fd >= 0 && in->ifindex > 0 ? 0 : -1;
	}
	if (rte_eth_dev_get_port_by_name("net_memif0", &in->port) != 0)
		return -1;
	in->pool = rte_pktmbuf_pool_create("gxdp_inject", 127, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					   SOCKET_ID_ANY);
	return in->pool ? 0 : -1;
}

static void inject_one(struct injector *in)
{
	uint8_t f[256];
	unsigned kind = in->done % INJECT_KINDS;
	unsigned n = make_frame(f, kind, in->done);
	bool sent = false;

	if (cfg == CFG_AFP) {
		struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = in->ifindex,
					   .sll_halen = 6 };
		memcpy(sll.sll_addr, f, 6);
		sent = sendto(in->fd, f, n, 0, (struct sockaddr *)&sll, sizeof(sll)) == (ssize_t)n;
	} else {
		struct rte_mbuf *m = rte_pktmbuf_alloc(in->pool);
		if (m) {
			memcpy(rte_pktmbuf_append(m, (uint16_t)n), f, n);
			for (int t = 0; t < 100 && !sent; t++)
				sent = rte_eth_tx_burst(in->port, 0, &m, 1) == 1;
			if (!sent)
				rte_pktmbuf_free(m);
		}
	}
	in->done++;
	if (sent) {
		if (kind < 4 || kind == 8)
			in->foreign++;
		else
			in->gx++;
	}
}

/* ---------------------------------------------------------------------------------------------
 * Two gx_nets in one process: the EAL starts once, with the first net's device; the second net's
 * --vdev is probed into the running EAL; both carry data both ways from one thread; after both close
 * (their virtual devices unplugged) the same two nets open again and carry data again.
 */
static void report(int fd, struct result *res);

static int enter_ns(int r)
{
	char path[128];

	if (cfg != CFG_AFP)
		return 0;
	snprintf(path, sizeof(path), "/run/netns/%s", ns[r]);
	int fd = open(path, O_RDONLY);
	if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
		return -1;
	close(fd);
	return 0;
}

static gx_status_t open_pair(struct gx_net *n[2])
{
	static char eal[2][512], port[2][32];
	uint8_t blob[2][GX_ADDR_MAX];
	size_t bl[2];

	for (int r = 0; r < 2; r++) {
		struct gx_transport_opts o;
		memset(&o, 0, sizeof(o));
		if (enter_ns(r) != 0)
			return gx_error(GX_ERR_IO, "setns %s: %s", ns[r], strerror(errno));
		if (cfg == CFG_AFP) {
			snprintf(eal[r], sizeof(eal[r]), "--no-huge --no-shconf --no-pci --log-level=warning "
				 "--vdev=net_af_packet%d,iface=%s,framecnt=4096", r, ifn[r]);
			snprintf(port[r], sizeof(port[r]), "net_af_packet%d", r);
		} else {
			snprintf(eal[r], sizeof(eal[r]), "--no-huge --no-shconf --no-pci --log-level=warning "
				 "--vdev=net_memif%d,role=%s,socket=%s/shared.sock,socket-abstract=no", r,
				 r == 0 ? "server" : "client", tmpdir);
			snprintf(port[r], sizeof(port[r]), "net_memif%d", r);
		}
		o.backend = "dpdk";
		o.rank = (uint32_t)r;
		o.nranks = 2;
		o.job_id = JOB_ID;
		gx_transport_opts_set(&o, "udp-port", UDP_PORT_STR);
		gx_transport_opts_set(&o, "dpdk-ip", r == 0 ? "10.0.0.1" : "10.0.0.2");
		gx_transport_opts_set(&o, "dpdk-eal", eal[r]);
		gx_transport_opts_set(&o, "dpdk-port", port[r]);
		o.peer_timeout_ms = 5000;
		if (gx_net_create(&o, &n[r]) < 0)
			return gx_error(GX_ERR_IO, "net %d (%s): %s", r, port[r], gx_last_error());
		bl[r] = GX_ADDR_MAX;
		gx_status_t st = gx_net_local_addr(n[r], blob[r], &bl[r]);
		if (st < 0)
			return st;
	}
	for (int r = 0; r < 2; r++) {
		gx_status_t st = gx_net_connect(n[r], (uint32_t)(1 - r), blob[1 - r], bl[1 - r]);
		if (st < 0)
			return st;
	}
	return GX_OK;
}

/* `size` bytes each way between the two nets, polled alternately from this thread. */
static gx_status_t pair_transfer(struct gx_net *n[2], uint64_t size, struct result *res)
{
	static struct rx_state rx[2];
	static uint64_t sizes[1];
	uint64_t chunk[2] = { 0, 0 }, idle_since = gx_now_ns();
	uint64_t deadline = idle_since + 30ull * 1000000000ull;

	sizes[0] = size;
	for (int r = 0; r < 2; r++) {
		memset(&rx[r], 0, sizeof(rx[r]));
		rx[r].src = (uint32_t)(1 - r);
		rx[r].p = gx_net_max_payload(n[r]);
		rx[r].sizes = sizes;
		rx[r].nsizes = 1;
		rx[r].seen = calloc(1, sizeof(*rx[r].seen));
		rx[r].expected = (size + rx[r].p - 1) / rx[r].p;
		rx[r].seen[0] = calloc(rx[r].expected / 8 + 1, 1);
	}
	gx_status_t st = GX_OK;
	for (;;) {
		bool busy = false, done = true;
		for (int r = 0; r < 2; r++) {
			uint64_t nch = rx[r].expected;
			for (int b = 0; b < 64 && chunk[r] < nch; b++) {
				void *buf = gx_net_reserve(n[r], (uint32_t)(1 - r), &st);
				if (!buf) {
					if (st != GX_ERR_AGAIN)
						goto out;
					st = GX_OK;
					break;
				}
				uint64_t off = chunk[r] * rx[r].p;
				uint32_t len = (uint32_t)(size - off < rx[r].p ? size - off : rx[r].p);
				pattern(buf, (uint32_t)r, 1, off, len);
				struct gx_desc d = { .coll_id = 1, .chunk = (uint32_t)chunk[r] };
				if ((st = gx_net_commit(n[r], (uint32_t)(1 - r), &d, len)) < 0)
					goto out;
				chunk[r]++;
				busy = true;
			}
		}
		for (int r = 0; r < 2; r++) {
			int got = gx_net_poll(n[r], on_data, &rx[r]);
			if (got < 0) {
				st = got;
				goto out;
			}
			busy |= got > 0;
			done &= chunk[r] == rx[r].expected && rx[r].ok + rx[r].bad + rx[r].dup >= rx[r].expected &&
				gx_net_inflight(n[r]) == 0;
		}
		if (done)
			break;
		uint64_t now = gx_now_ns();
		if (now > deadline) {
			st = gx_error(GX_ERR_TIMEOUT, "transfer of %llu B each way not done in 30 s (%llu and "
				      "%llu of %llu chunks)", (unsigned long long)size,
				      (unsigned long long)rx[0].ok, (unsigned long long)rx[1].ok,
				      (unsigned long long)rx[0].expected);
			goto out;
		}
		if (busy)
			idle_since = now;
		else
			gx_idle_backoff(now - idle_since);
	}
out:
	for (int r = 0; r < 2; r++) {
		res->chunks_expected += rx[r].expected;
		res->chunks_ok += rx[r].ok;
		res->chunks_bad += rx[r].bad;
		res->chunks_dup += rx[r].dup;
		free(rx[r].seen[0]);
		free(rx[r].seen);
	}
	return st;
}

static void shared_eal_main(int out)
{
	struct result res;
	struct gx_net *n[2] = { NULL, NULL };
	gx_status_t st = GX_OK;

	memset(&res, 0, sizeof(res));
	for (int round = 0; round < 2 && st == GX_OK; round++) {
		if ((st = open_pair(n)) == GX_OK)
			st = pair_transfer(n, round == 0 ? 4u << 20 : 1u << 20, &res);
		if (st < 0)
			snprintf(res.msg, sizeof(res.msg), "round %d: %s", round + 1, gx_last_error());
		gx_net_destroy(n[1]);
		gx_net_destroy(n[0]);
		n[0] = n[1] = NULL;
	}
	res.status = st;
	report(out, &res);
	_exit(0);
}

/* ---------------------------------------------------------------------------------------------
 * One rank process.
 */
static void report(int fd, struct result *res)
{
	res->reported = 1;
	if (write(fd, res, sizeof(*res)) != (ssize_t)sizeof(*res))
		_exit(3);
}

static void fill_counters(struct gx_net *n, struct result *res)
{
	gx_net_peer_counters(n, GX_PEER_ANY, &res->pc);
	gx_net_backend_counters(n, &res->bc);
}

static bool peer_said(int sock, char tag, uint64_t *val)
{
	uint8_t m[16];
	ssize_t r;

	while ((r = recv(sock, m, sizeof(m), MSG_DONTWAIT)) > 0)
		if (m[0] == (uint8_t)tag) {
			if (val && r >= 9)
				memcpy(val, m + 1, 8);
			return true;
		}
	return false;
}

static void rank_main(int r, const struct spec *sp, int sock, int out)
{
	struct result res;
	char eal[512];
	struct gx_transport_opts o;
	static struct rx_state rx;
	struct injector inj;
	gx_status_t st = GX_OK;
	bool injecting = sp->inject && r == 0;

	memset(&res, 0, sizeof(res));
	memset(&rx, 0, sizeof(rx));
	memset(&inj, 0, sizeof(inj));
	if (sp->role == ROLE_SHARED_EAL)
		shared_eal_main(out);
	if (cfg == CFG_AFP) {
		char path[128];
		snprintf(path, sizeof(path), "/run/netns/%s", ns[r]);
		int fd = open(path, O_RDONLY);
		if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
			res.status = GX_ERR_IO;
			snprintf(res.msg, sizeof(res.msg), "setns %s: %s", path, strerror(errno));
			report(out, &res);
			_exit(0);
		}
		close(fd);
	}
	memset(&o, 0, sizeof(o));
	o.backend = "dpdk";
	o.rank = (uint32_t)r;
	o.nranks = 2;
	o.job_id = JOB_ID;
	o.mtu = sp->mtu;
	gx_transport_opts_set(&o, "udp-port", UDP_PORT_STR);
	gx_transport_opts_set(&o, "dpdk-ip", r == 0 ? "10.0.0.1" : "10.0.0.2");
	o.peer_timeout_ms = sp->peer_timeout_ms ? sp->peer_timeout_ms : 5000;
	o.fault = sp->fault;
	if (sp->role == ROLE_OPEN_ONLY) {
		gx_transport_opts_set(&o, "dpdk-eal", sp->eal);
		gx_transport_opts_set(&o, "dpdk-port", sp->port);
		struct gx_net *n = NULL;
		gx_net_create(&o, &n);
		res.status = n ? GX_OK : GX_ERR_INVAL;
		snprintf(res.msg, sizeof(res.msg), "%s", n ? "opened" : gx_last_error());
		report(out, &res);
		_exit(0);   /* no teardown: the verdict is in */
	}
	eal_args(eal, sizeof(eal), r, sp->mtu, sock_seq);
	gx_transport_opts_set(&o, "dpdk-eal", eal);
	uint64_t t0 = gx_now_ns();
	struct gx_net *n = NULL;
	gx_net_create(&o, &n);
	if (!n) {
		res.status = GX_ERR_IO;
		snprintf(res.msg, sizeof(res.msg), "rank %d open: %s", r, gx_last_error());
		report(out, &res);
		_exit(0);
	}
	uint8_t blob[1 + GX_ADDR_MAX], pblob[1 + GX_ADDR_MAX];
	size_t bl = GX_ADDR_MAX;
	blob[0] = 'A';
	if ((st = gx_net_local_addr(n, blob + 1, &bl)) < 0 || send(sock, blob, bl + 1, 0) < 0)
		goto fail;
	struct pollfd pf = { .fd = sock, .events = POLLIN };
	if (poll(&pf, 1, 20000) != 1) {
		st = gx_error(GX_ERR_TIMEOUT, "no address from the other rank");
		goto fail;
	}
	ssize_t pl = recv(sock, pblob, sizeof(pblob), 0);
	if (pl < 2 || pblob[0] != 'A') {
		st = gx_error(GX_ERR_IO, "bad address message");
		goto fail;
	}
	uint32_t peer = (uint32_t)(1 - r);
	if ((st = gx_net_connect(n, peer, pblob + 1, (size_t)pl - 1)) < 0)
		goto fail;

	/* Receive state: what the other rank sends us. */
	rx.src = peer;
	rx.p = gx_net_max_payload(n);
	rx.sizes = sp->sizes;
	rx.nsizes = sp->nsizes;
	rx.seen = calloc(sp->nsizes ? sp->nsizes : 1, sizeof(*rx.seen));
	for (unsigned k = 0; k < sp->nsizes; k++) {
		uint64_t nch = (sp->sizes[k] + rx.p - 1) / rx.p;
		rx.seen[k] = calloc(nch / 8 + 1, 1);
		rx.expected += nch;
	}
	if (injecting && inject_open(&inj) != 0) {
		st = gx_error(GX_ERR_IO, "cannot open the frame injector: %s", strerror(errno));
		goto fail;
	}

	/* Send everything, receive everything, until both sides are done (or the case's role says
	 * otherwise). */
	unsigned k = 0;
	uint64_t chunk = 0, sent_chunks = 0, idle_since = gx_now_ns();
	bool told = false, peer_done = false;
	uint64_t deadline = t0 + (uint64_t)CASE_TIMEOUT_S * 1000000000ull;
	while (!(told && peer_done)) {
		uint64_t now = gx_now_ns();
		bool busy = false;
		if (now > deadline) {
			st = gx_error(GX_ERR_TIMEOUT, "rank %d: case did not finish in %d s (received %llu "
				      "of %llu chunks, inflight %u)", r, CASE_TIMEOUT_S,
				      (unsigned long long)rx.ok, (unsigned long long)rx.expected,
				      gx_net_inflight(n));
			goto fail;
		}
		/* Send a burst. */
		for (int b = 0; b < 64 && k < sp->nsizes; b++) {
			uint64_t size = sp->sizes[k];
			uint64_t nch = (size + rx.p - 1) / rx.p;
			void *buf = gx_net_reserve(n, peer, &st);
			if (!buf) {
				if (st == GX_ERR_AGAIN) {
					st = GX_OK;
					break;
				}
				goto fail;
			}
			uint64_t off = chunk * rx.p;
			uint32_t len = (uint32_t)(size - off < rx.p ? size - off : rx.p);
			pattern(buf, (uint32_t)r, k + 1, off, len);
			struct gx_desc d = { .coll_id = k + 1, .chunk = (uint32_t)chunk,
						.flags = chunk + 1 == nch ? GX_DESC_LAST | GX_DESC_ACK_REQ : 0,
						.aux = (uint32_t)size };
			if ((st = gx_net_commit(n, peer, &d, len)) < 0)
				goto fail;
			busy = true;
			sent_chunks++;
			if (++chunk == nch) {
				chunk = 0;
				k++;
			}
			if (injecting && inj.done < INJECT_TOTAL && sent_chunks % INJECT_EVERY == 0) {
				gx_net_flush(n);
				inject_one(&inj);
			}
		}
		int got = gx_net_poll(n, on_data, &rx);
		if (got < 0) {
			st = got;
			goto fail;
		}
		if (got > 0)
			busy = true;
		if (!told && k == sp->nsizes && rx.ok + rx.dup + rx.bad >= rx.expected &&
		    gx_net_inflight(n) == 0) {
			res.elapsed_s = (double)(gx_now_ns() - t0) / 1e9;
			send(sock, "D", 1, 0);
			told = true;
		}
		if (told && !peer_done)
			peer_done = peer_said(sock, 'D', NULL);
		if (busy)
			idle_since = now;
		else
			gx_idle_backoff(now - idle_since);
	}
fail:
	res.status = st;
	if (st < 0)
		snprintf(res.msg, sizeof(res.msg), "%s", gx_last_error());
	res.chunks_expected = rx.expected;
	res.chunks_ok = rx.ok;
	res.chunks_bad = rx.bad;
	res.chunks_dup = rx.dup;
	if (injecting) {
		res.injected_foreign = inj.foreign;
		res.injected_gx = inj.gx;
	}
	fill_counters(n, &res);
	report(out, &res);      /* before teardown: the verdict does not depend on it */
	gx_net_destroy(n);
	_exit(0);
}

/* Fork both ranks (or one), collect their results, reap them (bounded). */
static int run_case(const struct spec *sp0, const struct spec *sp1, struct result res[2])
{
	int sv[2], out[2][2];
	pid_t pid[2] = { -1, -1 };
	int nr = sp1 ? 2 : 1;

	memset(res, 0, 2 * sizeof(*res));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0)
		return -1;
	sock_seq++;
	fflush(NULL);
	for (int r = 0; r < nr; r++) {
		if (pipe(out[r]) != 0)
			return -1;
		pid[r] = fork();
		if (pid[r] == 0) {
			close(out[r][0]);
			close(sv[1 - r]);
			rank_main(r, r == 0 ? sp0 : sp1, sv[r], out[r][1]);
		}
		close(out[r][1]);
		if (cfg == CFG_MEMIF && r == 0 && nr == 2)
			usleep(100 * 1000);   /* the client also waits for the socket; this saves retries */
	}
	close(sv[0]);
	close(sv[1]);
	uint64_t deadline = gx_now_ns() + (uint64_t)(CASE_TIMEOUT_S + 15) * 1000000000ull;
	for (int r = 0; r < nr; r++) {
		size_t got = 0;
		while (got < sizeof(res[r])) {
			struct pollfd pf = { .fd = out[r][0], .events = POLLIN };
			int64_t left = (int64_t)(deadline - gx_now_ns()) / 1000000;
			if (left <= 0 || poll(&pf, 1, (int)left) != 1)
				break;
			ssize_t n = read(out[r][0], (char *)&res[r] + got, sizeof(res[r]) - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (got != sizeof(res[r]))
			res[r].reported = 0;
		close(out[r][0]);
	}
	/* Reap: give teardown a few seconds, then kill.  Exit statuses are only logged (memif). */
	for (int r = 0; r < nr; r++) {
		int status = 0;
		for (int t = 0; t < 500; t++) {
			if (waitpid(pid[r], &status, WNOHANG) == pid[r])
				goto reaped;
			usleep(10 * 1000);
		}
		kill(pid[r], SIGKILL);
		waitpid(pid[r], &status, 0);
		fprintf(stderr, "test_dpdk: rank %d did not exit after reporting; killed\n", r);
reaped:
		if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
			fprintf(stderr, "test_dpdk: rank %d died of signal %d after reporting (DPDK "
				"teardown)\n", r, WTERMSIG(status));
	}
	return 0;
}

static void show(const char *name, const struct result *r, int rank)
{
	fprintf(stderr, "  %s rank %d: status %s '%s' chunks %llu/%llu bad %llu dup %llu; sent %llu "
		"recv %llu retx %llu dups %llu malformed %llu dropped %llu fault drop/dup/reorder "
		"%llu/%llu/%llu; backend tx %llu rx %llu tx_full %llu foreign %llu; %.2f s\n",
		name, rank, gx_status_str(r->status), r->msg, (unsigned long long)r->chunks_ok,
		(unsigned long long)r->chunks_expected, (unsigned long long)r->chunks_bad,
		(unsigned long long)r->chunks_dup, (unsigned long long)r->pc.sent,
		(unsigned long long)r->pc.received, (unsigned long long)r->pc.retransmitted,
		(unsigned long long)r->pc.duplicates, (unsigned long long)r->pc.malformed,
		(unsigned long long)r->pc.dropped, (unsigned long long)r->pc.fault_dropped,
		(unsigned long long)r->pc.fault_duplicated, (unsigned long long)r->pc.fault_reordered,
		(unsigned long long)r->bc.tx_pkts, (unsigned long long)r->bc.rx_pkts,
		(unsigned long long)r->bc.tx_full, (unsigned long long)r->bc.rx_foreign, r->elapsed_s);
}

static void assert_exact(const char *name, struct result res[2])
{
	for (int r = 0; r < 2; r++) {
		show(name, &res[r], r);
		CU_ASSERT_TRUE_FATAL(res[r].reported);
		CU_ASSERT_EQUAL(res[r].status, GX_OK);
		CU_ASSERT_TRUE(res[r].chunks_expected > 0);
		CU_ASSERT_EQUAL(res[r].chunks_ok, res[r].chunks_expected);
		CU_ASSERT_EQUAL(res[r].chunks_bad, 0);
		CU_ASSERT_EQUAL(res[r].chunks_dup, 0);
		/* The other rank sent exactly what this one had to receive, first transmissions only. */
		CU_ASSERT_EQUAL(res[1 - r].pc.sent, res[r].chunks_expected);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Cases.
 */
static const uint64_t sizes_jumbo[] = { 1, 8931, 8932, 8933, 1u << 20, 16u << 20 };
static const uint64_t sizes_inject[] = { 16u << 20 };

static void test_jumbo(void)
{
	struct spec s = { .role = ROLE_EXCHANGE, .mtu = 9000, .sizes = sizes_jumbo,
			  .nsizes = sizeof(sizes_jumbo) / sizeof(sizes_jumbo[0]) };
	struct result res[2];

	CU_ASSERT_TRUE_FATAL(setup_ok);
	if (cfg == CFG_AFP)
		CU_ASSERT_EQUAL_FATAL(afp_mtu(9000), 0);
	CU_ASSERT_EQUAL_FATAL(run_case(&s, &s, res), 0);
	if (cfg == CFG_AFP)
		afp_mtu(1500);
	assert_exact("jumbo MTU 9000", res);
}

static void test_inject(void)
{
	struct spec s = { .role = ROLE_EXCHANGE, .mtu = 1500, .sizes = sizes_inject, .nsizes = 1 };
	struct spec s0 = s;
	struct result res[2];

	s0.inject = true;
	CU_ASSERT_TRUE_FATAL(setup_ok);
	CU_ASSERT_EQUAL_FATAL(run_case(&s0, &s, res), 0);
	assert_exact("garbage + foreign frames", res);
	fprintf(stderr, "  injected %llu foreign + %llu gx-level garbage frames\n",
		(unsigned long long)res[0].injected_foreign, (unsigned long long)res[0].injected_gx);
	CU_ASSERT_TRUE(res[0].injected_foreign >= 30);
	CU_ASSERT_TRUE(res[0].injected_gx >= 20);
	/* Link-level strangers counted by the backend, gx-level garbage by the net. */
	CU_ASSERT_TRUE(res[1].bc.rx_foreign >= res[0].injected_foreign);
	CU_ASSERT_TRUE(res[1].pc.malformed + res[1].pc.dropped + res[1].pc.bad_crc + res[1].pc.other_job >=
		       res[0].injected_gx);
	CU_ASSERT_TRUE(res[1].pc.other_job > 0);   /* the sealed frames of another job reached that check */
}

static void expect_open_error(const char *eal, const char *port, const char *must1, const char *must2)
{
	struct spec s = { .role = ROLE_OPEN_ONLY, .mtu = 1500, .eal = eal, .port = port,
			  .peer_timeout_ms = 1000 };
	struct result res[2];

	CU_ASSERT_EQUAL_FATAL(run_case(&s, NULL, res), 0);
	fprintf(stderr, "  open with '%s' port '%s': %s\n", eal, port ? port : "", res[0].msg);
	CU_ASSERT_TRUE_FATAL(res[0].reported);
	CU_ASSERT_NOT_EQUAL(res[0].status, GX_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(res[0].msg, must1));
	CU_ASSERT_PTR_NOT_NULL(strstr(res[0].msg, must2));
}

static void test_errors(void)
{
	char eal[512];

	CU_ASSERT_TRUE_FATAL(setup_ok);
	eal_args(eal, sizeof(eal), 0, 1500, 999);
	expect_open_error(eal, "net_nosuchport0", "net_nosuchport0", "docs/dpdk.md");
	expect_open_error("--no-huge --no-shconf --no-pci --bogus-eal-flag", NULL, "--bogus-eal-flag",
			  "docs/dpdk.md");
	if (cfg == CFG_AFP) {
		expect_open_error("--no-huge --no-shconf --no-pci --vdev=net_af_packet0,iface=gxdpnosuch0",
				  NULL, "no port", "docs/dpdk.md");
		/* Jumbo MTU on a ring whose frames are too small: refused up front, not a silent stall. */
		struct spec s = { .role = ROLE_OPEN_ONLY, .mtu = 9000, .eal = NULL, .port = NULL };
		struct result res[2];
		snprintf(eal, sizeof(eal), "--no-huge --no-shconf --no-pci --vdev=net_af_packet0,iface=%s",
			 ifn[0]);
		s.eal = eal;
		CU_ASSERT_EQUAL_FATAL(run_case(&s, NULL, res), 0);
		fprintf(stderr, "  MTU 9000 with default framesz: %s\n", res[0].msg);
		CU_ASSERT_TRUE(res[0].reported && res[0].status != GX_OK);
		CU_ASSERT_PTR_NOT_NULL(strstr(res[0].msg, "framesz"));
	} else {
		/* A client whose server never comes: bounded wait, then the socket is named. */
		snprintf(eal, sizeof(eal), "--no-huge --no-shconf --no-pci "
			 "--vdev=net_memif0,role=client,socket=%s/nobody.sock,socket-abstract=no", tmpdir);
		expect_open_error(eal, NULL, "nobody.sock", "server");
	}
}

static void test_shared_eal(void)
{
	struct spec s = { .role = ROLE_SHARED_EAL, .mtu = 1500 };
	struct result res[2];

	CU_ASSERT_TRUE_FATAL(setup_ok);
	CU_ASSERT_EQUAL_FATAL(run_case(&s, NULL, res), 0);
	fprintf(stderr, "  two nets in one process, two rounds: status %s '%s', chunks %llu/%llu bad %llu "
		"dup %llu\n", gx_status_str(res[0].status), res[0].msg, (unsigned long long)res[0].chunks_ok,
		(unsigned long long)res[0].chunks_expected, (unsigned long long)res[0].chunks_bad,
		(unsigned long long)res[0].chunks_dup);
	CU_ASSERT_TRUE_FATAL(res[0].reported);
	CU_ASSERT_EQUAL(res[0].status, GX_OK);
	CU_ASSERT_TRUE(res[0].chunks_expected > 0);
	CU_ASSERT_EQUAL(res[0].chunks_ok, res[0].chunks_expected);
	CU_ASSERT_EQUAL(res[0].chunks_bad, 0);
	CU_ASSERT_EQUAL(res[0].chunks_dup, 0);
}

static CU_TestInfo tests[] = {
	{ "exact delivery with 9000-byte MTU", test_jumbo },
	{ "garbage and foreign frames during a transfer", test_inject },
	{ "clear errors: missing port, bad EAL argument, device not up", test_errors },
	{ "two nets in one process share the EAL; devices re-probed after close", test_shared_eal },
	CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
	const char *which = argc > 1 ? argv[1] : "";
	static char name[64];

	if (!strcmp(which, "af_packet"))
		cfg = CFG_AFP;
	else if (!strcmp(which, "memif"))
		cfg = CFG_MEMIF;
	else {
		fprintf(stderr, "usage: test_dpdk af_packet|memif\n");
		return 2;
	}
	gx_test_require_root(cfg == CFG_AFP ? "dpdk af_packet (namespaces, raw sockets)" :
			     "dpdk memif (frame injection, shared sockets)");
	snprintf(name, sizeof(name), "dpdk-%s", cfg == CFG_AFP ? "af-packet" : "memif");
	CU_SuiteInfo suites[] = {
		{ name, suite_init, suite_clean, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};
	return gx_test_main(suites);
}
