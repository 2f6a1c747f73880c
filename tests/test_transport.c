/* test_transport.c: one transport suite, instantiated over every backend and setting.
 *
 *   test_transport CONFIG          (or GX_TEST_TRANSPORT=CONFIG; no argument lists the configurations)
 *
 * A configuration (struct tcfg) is a name, a backend, the transport options of each rank, and how
 * ranks are launched: setup()/teardown() run once in the harness (e.g. create network namespaces;
 * they may gx_test_skip), enter() runs in each forked rank before it opens the transport (e.g.
 * setns into its namespace).  Every case forks the ranks; they exchange address blobs and meet at
 * barriers through socketpairs to the harness (no other bootstrap is needed), run the case, and
 * exit 0 only if every check in that rank held.  The harness kills ranks that overrun the case's
 * deadline and fails the case.
 *
 * Adding a configuration (e.g. dpdk-af-packet, dpdk-memif):
 *   1. write `static void NAME_opts(const struct tcfg *c, uint32_t rank, struct gx_transport_opts *o)`
 *      (backend-specific options: EAL arguments, port, IP), and setup/teardown/enter if it needs
 *      an environment (netns_setup/netns_enter/netns_teardown below are reusable for veth pairs);
 *   2. add one entry to configs[] (set link_drops_short if the backend filters frames too short to
 *      carry a gx_hdr at the link level and counts them in gx_backend_counters.rx_foreign);
 *   3. register `test('transport-NAME', test_transport, args: ['NAME'], ...)` in tests/meson.build.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "gx_build_config.h"
#include "gx_rng.h"
#include "gx_signal.h"
#include "gx_test.h"
#include "gx_time.h"
#include "gx_backend.h"

#define MAX_RANKS 4
#define MAX_MSGS 16

/* ---- configurations ------------------------------------------------------------------------- */

struct tcfg {
	const char *name;
	const char *backend;
	const char *what;                 /* one line for the listing */
	uint64_t max_bytes;               /* largest message of the exact-delivery case */
	bool link_drops_short;            /* frames < gx_hdr never reach the net (rx_foreign instead) */
	bool lossy_network;               /* the network itself drops/duplicates: injected-frame counts
					   * are checked within bounds instead of exactly */
	void (*setup)(struct tcfg *c);
	void (*teardown)(struct tcfg *c);
	void (*rank_opts)(const struct tcfg *c, uint32_t rank, struct gx_transport_opts *o);
	int (*enter)(const struct tcfg *c, uint32_t rank);
	/* Send a frame to a peer (its address blob) from an address that is no rank's; NULL if the
	 * backend has no such notion. Returns 0 on success. */
	int (*send_stranger)(const struct tcfg *c, uint32_t rank, const void *blob, size_t blen,
			     const void *frame, size_t len);
	char ns[MAX_RANKS][40];           /* namespace per rank, when the config uses them */
	char ip[MAX_RANKS][16];
	char prefix[16];                  /* scripts/gx-netns network, when the config uses one */
};

static struct tcfg *cfg;

static void loopback_opts(const struct tcfg *c, uint32_t rank, struct gx_transport_opts *o)
{
	(void)c;
	(void)rank;
	gx_transport_opts_set(o, "udp-ip", "127.0.0.1");
	o->mtu = 1500;          /* the suite counts Ethernet-sized datagrams; lo's own MTU: test_exact_auto */
}

static void netns_opts(const struct tcfg *c, uint32_t rank, struct gx_transport_opts *o)
{
	gx_transport_opts_set(o, "udp-ip", c->ip[rank]);
}


/* Namespaces of this suite carry the pid of the harness that made them (gxtr<pid>a/b, and
 * gxtr<pid>-h0/h1/sw from scripts/gx-netns); remove those whose harness died without cleaning up. */
static char netns_script[512];

static void remove_stale_namespaces(void)
{
	FILE *f = popen("ip netns list 2>/dev/null", "r");
	char line[256];
	long done_pid = -1;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char name[64], tail[16] = "";
		long pid;
		if (sscanf(line, "%63s", name) != 1 || sscanf(name, "gxtr%ld%15s", &pid, tail) < 1 || pid <= 0)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;               /* its harness still runs (or pid reused): leave it */
		if (tail[0] == '-') {
			if (pid != done_pid && netns_script[0])
				gx_test_sh("%s down --prefix gxtr%ld >/dev/null 2>&1", netns_script, pid);
			done_pid = pid;
		} else if (!strcmp(tail, "a") || !strcmp(tail, "b")) {
			gx_test_sh("ip netns del %s 2>/dev/null", name);
		}
	}
	pclose(f);
}

/* Two namespaces <prefix><pid>a/b joined by a veth pair, 10.77.0.1/24 and 10.77.0.2/24. */
static void netns_teardown(struct tcfg *c)
{
	for (int r = 0; r < 2; r++)
		if (c->ns[r][0])
			gx_test_sh("ip netns del %s 2>/dev/null", c->ns[r]);
}

static void netns_setup(struct tcfg *c)
{
	gx_test_require_root("network-namespace transport tests");
	if (system("ip netns list >/dev/null 2>&1") != 0)
		gx_test_skip("iproute2 ('ip netns') is not installed");
	gx_test_path(netns_script, sizeof(netns_script), 0, "scripts/gx-netns");
	remove_stale_namespaces();
	for (int r = 0; r < 2; r++) {
		snprintf(c->ns[r], sizeof(c->ns[r]), "gxtr%d%c", (int)getpid(), 'a' + r);
		snprintf(c->ip[r], sizeof(c->ip[r]), "10.77.0.%d", r + 1);
	}
	int bad = gx_test_sh("ip netns add %s", c->ns[0]) || gx_test_sh("ip netns add %s", c->ns[1]) ||
		  gx_test_sh("ip link add %s type veth peer name %s", c->ns[0], c->ns[1]);
	for (int r = 0; r < 2 && !bad; r++)
		bad = gx_test_sh("ip link set %s netns %s", c->ns[r], c->ns[r]) ||
		      gx_test_sh("ip -n %s addr add %s/24 dev %s", c->ns[r], c->ip[r], c->ns[r]) ||
		      gx_test_sh("ip -n %s link set dev %s up", c->ns[r], c->ns[r]) ||
		      gx_test_sh("ip -n %s link set dev lo up", c->ns[r]) ||
		      gx_test_sh("ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1", c->ns[r]);
	if (bad) {
		netns_teardown(c);
		fprintf(stderr, "FAIL: could not build the test network (see the failing command above)\n");
		exit(1);
	}
}

static int netns_enter(const struct tcfg *c, uint32_t rank)
{
	char path[96];

	snprintf(path, sizeof(path), "/run/netns/%s", c->ns[rank]);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		fprintf(stderr, "rank %u: cannot enter namespace %s: %s\n", rank, c->ns[rank], strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/* scripts/gx-netns: two hosts on a bridge whose links drop 5 %, reorder 5 % and duplicate 1 % of
 * frames (nftables loss and gx-linkemu), on top of which the fault-hook cases add their own. */

static void lossy_teardown(struct tcfg *c)
{
	if (c->prefix[0])
		gx_test_sh("%s down --prefix %s >/dev/null", netns_script, c->prefix);
}

static void lossy_setup(struct tcfg *c)
{
	char emu[512];

	gx_test_require_root("the lossy namespace network (scripts/gx-netns)");
	gx_test_path(netns_script, sizeof(netns_script), 0, "scripts/gx-netns");
	gx_test_path(emu, sizeof(emu), 1, "apps/gx-linkemu");
	if (access(netns_script, X_OK) || access(emu, X_OK))
		gx_test_skip("scripts/gx-netns or the built apps/gx-linkemu is missing");
	remove_stale_namespaces();
	snprintf(c->prefix, sizeof(c->prefix), "gxtr%d", (int)getpid());
	if (gx_test_sh("GX_LINKEMU=%s %s up --prefix %s -n 2 --loss 5 --reorder 5 --dup 1 --seed 7 >/dev/null", emu,
	       netns_script, c->prefix)) {
		lossy_teardown(c);
		fprintf(stderr, "FAIL: scripts/gx-netns could not build the lossy network\n");
		exit(1);
	}
	for (int r = 0; r < 2; r++) {
		snprintf(c->ns[r], sizeof(c->ns[r]), "%s-h%d", c->prefix, r);
		snprintf(c->ip[r], sizeof(c->ip[r]), "10.77.0.%d", r + 1);
	}
}

/* udp: a plain socket of our own, on the rank's address but another port. */
static int udp_send_stranger(const struct tcfg *c, uint32_t rank, const void *blob, size_t blen,
			     const void *frame, size_t len)
{
	struct { uint8_t tag, pad; uint16_t port; uint32_t ip; uint16_t max_msg, pad2; } a;   /* udp.c: struct udp_blob */
	struct sockaddr_in to = { .sin_family = AF_INET }, me = { .sin_family = AF_INET };

	if (blen != sizeof(a))
		return -1;
	memcpy(&a, blob, sizeof(a));
	to.sin_port = a.port;
	to.sin_addr.s_addr = a.ip;
	inet_pton(AF_INET, c->ip[rank][0] ? c->ip[rank] : "127.0.0.1", &me.sin_addr);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -1;
	int r = bind(fd, (struct sockaddr *)&me, sizeof(me));
	if (!r)
		r = sendto(fd, frame, len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)len ? 0 : -1;
	close(fd);
	return r;
}

#if GX_HAVE_DPDK
/* ---- dpdk configurations (added by the dpdk backend's engineer) ----------------------------------
 * dpdk-af-packet: each rank's port is net_af_packet on its end of a veth pair between two namespaces
 * (prefix gxdp, IPv6 off); dpdk-memif: net_memif, rank 0 the server and rank 1 the client, on a socket
 * in a temporary directory.  EAL: --no-huge --no-shconf --no-pci (no hugepages, nothing left behind).
 * The EAL only ever starts in the forked ranks: the harness's in-process error checks are refused by
 * the backend before it starts the EAL. */
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/stat.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

static char dpdk_eal[MAX_RANKS][320];
static char dpdk_memif_dir[64];

/* transport/dpdk.c's address blob. */
struct dpdk_blob {
	uint32_t magic, rank;
	uint8_t mac[6];
	uint16_t udp_port;                /* network order */
	uint32_t ip;                      /* network order */
};

static void dpdk_afp_setup(struct tcfg *c)
{
	gx_test_require_root("dpdk af_packet transport tests (namespaces, raw sockets)");
	if (system("ip netns list >/dev/null 2>&1") != 0)
		gx_test_skip("iproute2 ('ip netns') is not installed");
	for (int r = 0; r < 2; r++) {
		snprintf(c->ns[r], sizeof(c->ns[r]), "gxdp%d%c", (int)getpid() % 10000000, 'a' + r);
		snprintf(c->ip[r], sizeof(c->ip[r]), "10.78.0.%d", r + 1);
	}
	int bad = gx_test_sh("ip netns add %s", c->ns[0]) || gx_test_sh("ip netns add %s", c->ns[1]) ||
		  gx_test_sh("ip link add %s netns %s type veth peer name %s netns %s", c->ns[0], c->ns[0],
		     c->ns[1], c->ns[1]);
	for (int r = 0; r < 2 && !bad; r++)
		bad = gx_test_sh("ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
			 "net.ipv6.conf.default.disable_ipv6=1", c->ns[r]) ||
		      gx_test_sh("ip -n %s link set dev %s up", c->ns[r], c->ns[r]) ||
		      gx_test_sh("ip -n %s link set dev lo up", c->ns[r]);
	if (bad) {
		netns_teardown(c);
		fprintf(stderr, "FAIL: could not build the test network (see the failing command above)\n");
		exit(1);
	}
}

static void dpdk_afp_opts(const struct tcfg *c, uint32_t rank, struct gx_transport_opts *o)
{
	snprintf(dpdk_eal[rank], sizeof(dpdk_eal[rank]), "--no-huge --no-shconf --no-pci "
		 "--log-level=warning --vdev=net_af_packet0,iface=%s,framecnt=4096", c->ns[rank]);
	gx_transport_opts_set(o, "dpdk-eal", dpdk_eal[rank]);
	gx_transport_opts_set(o, "dpdk-ip", c->ip[rank]);
}

/* dpdk-af-packet-lossy: net_af_packet on eth0 of two scripts/gx-netns hosts whose links drop, reorder
 * and duplicate (lossy_setup).  The ports use addresses the hosts' kernels do not own (10.77.0.101+),
 * so the kernels ignore gx datagrams instead of answering them with ICMP. */
static char dpdk_lossy_ip[MAX_RANKS][16];

static void dpdk_afp_lossy_opts(const struct tcfg *c, uint32_t rank, struct gx_transport_opts *o)
{
	(void)c;
	snprintf(dpdk_eal[rank], sizeof(dpdk_eal[rank]), "--no-huge --no-shconf --no-pci "
		 "--log-level=warning --vdev=net_af_packet0,iface=eth0,framecnt=4096");
	snprintf(dpdk_lossy_ip[rank], sizeof(dpdk_lossy_ip[rank]), "10.77.0.%u", 101 + rank);
	gx_transport_opts_set(o, "dpdk-eal", dpdk_eal[rank]);
	gx_transport_opts_set(o, "dpdk-ip", dpdk_lossy_ip[rank]);
}

static void dpdk_memif_setup(struct tcfg *c)
{
	gx_test_require_root("dpdk memif transport tests");
	snprintf(dpdk_memif_dir, sizeof(dpdk_memif_dir), "/tmp/gxdp-tr-%d", (int)getpid());
	if (mkdir(dpdk_memif_dir, 0700) != 0) {
		fprintf(stderr, "FAIL: mkdir %s: %s\n", dpdk_memif_dir, strerror(errno));
		exit(1);
	}
	for (int r = 0; r < 2; r++)
		snprintf(c->ip[r], sizeof(c->ip[r]), "10.79.0.%d", r + 1);
}

static void dpdk_memif_teardown(struct tcfg *c)
{
	(void)c;
	if (dpdk_memif_dir[0])
		gx_test_sh("rm -rf %s", dpdk_memif_dir);
}

static void dpdk_memif_opts(const struct tcfg *c, uint32_t rank, struct gx_transport_opts *o)
{
	snprintf(dpdk_eal[rank], sizeof(dpdk_eal[rank]), "--no-huge --no-shconf --no-pci "
		 "--log-level=warning --vdev=net_memif0,role=%s,socket=%s/memif.sock,socket-abstract=no",
		 rank == 0 ? "server" : "client", dpdk_memif_dir);
	gx_transport_opts_set(o, "dpdk-eal", dpdk_eal[rank]);
	gx_transport_opts_set(o, "dpdk-ip", c->ip[rank]);
}

/* An Ethernet/IPv4/UDP frame to the peer's port from 10.7x.0.99, an address that is no rank's. */
static size_t dpdk_stranger_frame(uint8_t *f, const struct dpdk_blob *a, const void *payload, size_t len)
{
	static const uint8_t src_mac[6] = { 0x02, 0x67, 0x78, 0x64, 0x70, 0x99 };
	uint8_t *ip = f + 14, *udp = ip + 20;
	uint32_t s = 0;

	memcpy(f, a->mac, 6);
	memcpy(f + 6, src_mac, 6);
	f[12] = 0x08, f[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((28 + len) >> 8), ip[3] = (uint8_t)(28 + len);
	ip[6] = 0x40;                     /* DF */
	ip[8] = 64, ip[9] = IPPROTO_UDP;
	memcpy(ip + 16, &a->ip, 4);
	memcpy(ip + 12, &a->ip, 4);
	ip[15] = 99;
	for (int i = 0; i < 20; i += 2)
		s += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	ip[10] = (uint8_t)(~s >> 8), ip[11] = (uint8_t)~s;
	memcpy(udp, &a->udp_port, 2);
	memcpy(udp + 2, &a->udp_port, 2);
	udp[4] = (uint8_t)((8 + len) >> 8), udp[5] = (uint8_t)(8 + len);
	udp[6] = udp[7] = 0;
	memcpy(udp + 8, payload, len);
	return 42 + len;
}

/* af_packet: a raw socket on this rank's veth end (the rank is already in its namespace). */
static int dpdk_afp_send_stranger(const struct tcfg *c, uint32_t rank, const void *blob, size_t blen,
				  const void *frame, size_t len)
{
	struct dpdk_blob a;
	uint8_t f[2048];

	if (blen != sizeof(a) || len + 42 > sizeof(f))
		return -1;
	memcpy(&a, blob, sizeof(a));
	size_t n = dpdk_stranger_frame(f, &a, frame, len);
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_halen = 6,
				   .sll_ifindex = (int)if_nametoindex(c->prefix[0] ? "eth0" : c->ns[rank]) };
	memcpy(sll.sll_addr, a.mac, 6);
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0 || sll.sll_ifindex == 0)
		return -1;
	int r = sendto(fd, f, n, 0, (struct sockaddr *)&sll, sizeof(sll)) == (ssize_t)n ? 0 : -1;
	close(fd);
	return r;
}

/* memif: straight onto this rank's DPDK port, between two gx_net calls on the same thread. */
static int dpdk_memif_send_stranger(const struct tcfg *c, uint32_t rank, const void *blob, size_t blen,
				    const void *frame, size_t len)
{
	static struct rte_mempool *pool;
	struct dpdk_blob a;
	uint16_t port;

	(void)c;
	(void)rank;
	if (blen != sizeof(a) || len + 42 > RTE_MBUF_DEFAULT_DATAROOM ||
	    rte_eth_dev_get_port_by_name("net_memif0", &port) != 0)
		return -1;
	if (!pool && !(pool = rte_pktmbuf_pool_create("gxdp_stranger", 63, 0, 0,
						      RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY)))
		return -1;
	memcpy(&a, blob, sizeof(a));
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	if (!m)
		return -1;
	uint8_t *f = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(len + 42));
	dpdk_stranger_frame(f, &a, frame, len);
	for (int t = 0; t < 1000; t++)
		if (rte_eth_tx_burst(port, 0, &m, 1) == 1)
			return 0;
	rte_pktmbuf_free(m);
	return -1;
}
#endif

static struct tcfg configs[] = {
	{ .name = "udp-loopback", .backend = "udp", .what = "udp on 127.0.0.1, ranks as processes",
	  .max_bytes = 64u << 20, .rank_opts = loopback_opts, .send_stranger = udp_send_stranger },
	{ .name = "udp-netns", .backend = "udp", .what = "udp across two namespaces joined by a veth pair (root)",
	  .max_bytes = 64u << 20, .setup = netns_setup, .teardown = netns_teardown, .rank_opts = netns_opts,
	  .enter = netns_enter, .send_stranger = udp_send_stranger },
	{ .name = "udp-netns-lossy", .backend = "udp",
	  .what = "udp across scripts/gx-netns hosts whose links drop 5%, reorder 5%, duplicate 1% (root)",
	  .max_bytes = 8u << 20, .lossy_network = true, .setup = lossy_setup, .teardown = lossy_teardown,
	  .rank_opts = netns_opts, .enter = netns_enter, .send_stranger = udp_send_stranger },
#if GX_HAVE_DPDK
	{ .name = "dpdk-af-packet", .backend = "dpdk",
	  .what = "dpdk net_af_packet on a veth pair between two namespaces (root)",
	  .max_bytes = 64u << 20, .setup = dpdk_afp_setup, .teardown = netns_teardown,
	  .rank_opts = dpdk_afp_opts, .enter = netns_enter, .send_stranger = dpdk_afp_send_stranger },
	{ .name = "dpdk-af-packet-lossy", .backend = "dpdk",
	  .what = "dpdk net_af_packet across scripts/gx-netns hosts whose links drop 5%, reorder 5%, duplicate 1% (root)",
	  .max_bytes = 8u << 20, .lossy_network = true, .setup = lossy_setup, .teardown = lossy_teardown,
	  .rank_opts = dpdk_afp_lossy_opts, .enter = netns_enter, .send_stranger = dpdk_afp_send_stranger },
	{ .name = "dpdk-memif", .backend = "dpdk",
	  .what = "dpdk net_memif between two processes, rank 0 the server (root)",
	  .max_bytes = 64u << 20, .setup = dpdk_memif_setup, .teardown = dpdk_memif_teardown,
	  .rank_opts = dpdk_memif_opts, .send_stranger = dpdk_memif_send_stranger },
#endif
};

/* ---- rank harness --------------------------------------------------------------------------- */

struct rank_ctx {
	uint32_t rank, nranks;
	int sock;                         /* to the harness */
	struct gx_net *net;
	struct gx_transport_opts opts;
	uint8_t blob[MAX_RANKS][GX_ADDR_MAX];
	size_t blen[MAX_RANKS];
	gx_deliver_fn fn;                 /* what barrier() polls with */
	void *arg;
};

typedef int (*rank_fn)(struct rank_ctx *x, void *arg);
typedef void (*opts_fn)(struct gx_transport_opts *o, uint32_t rank);

#define FAILF(x, ...)                                                                          \
	do {                                                                                   \
		fprintf(stderr, "rank %u: %s:%d: ", (x)->rank, __func__, __LINE__);              \
		fprintf(stderr, __VA_ARGS__);                                                  \
		fprintf(stderr, "\n");                                                         \
		return 1;                                                                      \
	} while (0)
#define CHECK(x, cond, ...)                                                                    \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "rank %u: %s:%d: check failed: %s: ", (x)->rank, __func__, \
				__LINE__, #cond);                                              \
			fprintf(stderr, __VA_ARGS__);                                          \
			fprintf(stderr, "\n");                                                 \
			return 1;                                                              \
		}                                                                              \
	} while (0)

static int read_full(int fd, void *p, size_t len)
{
	uint8_t *b = p;
	while (len) {
		ssize_t r = read(fd, b, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		len -= (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len) {
		ssize_t r = write(fd, b, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		len -= (size_t)r;
	}
	return 0;
}

static gx_status_t discard_fn(void *arg, uint32_t peer, const struct gx_desc *h, const void *p, uint32_t len)
{
	(void)arg, (void)peer, (void)h, (void)p, (void)len;
	return GX_OK;
}

/* Meet every other rank; keeps the net turning meanwhile (unless x->net is NULL), so peers still
 * get their ACKs, delivering to x->fn. */
static int barrier(struct rank_ctx *x)
{
	char c = 'B';
	uint64_t idle = gx_now_ns();

	if (write_full(x->sock, &c, 1))
		return -1;
	for (;;) {
		struct pollfd p = { .fd = x->sock, .events = POLLIN };
		if (poll(&p, 1, 0) > 0) {
			if (read_full(x->sock, &c, 1))
				return -1;
			return 0;
		}
		int r = x->net ? gx_net_poll(x->net, x->fn ? x->fn : discard_fn, x->arg) : 0;
		if (r < 0) {
			fprintf(stderr, "rank %u: barrier: %s\n", x->rank, gx_last_error());
			return -1;
		}
		uint64_t now = gx_now_ns();
		if (r > 0)
			idle = now;
		gx_idle_backoff(now - idle);
	}
}

static int rank_main(uint32_t rank, uint32_t nranks, int sock, opts_fn tweak, rank_fn fn, void *arg)
{
	struct rank_ctx x = { .rank = rank, .nranks = nranks, .sock = sock };
	uint32_t len32;

	if (cfg->enter && cfg->enter(cfg, rank))
		return 3;
	x.opts.backend = cfg->backend;
	x.opts.rank = rank;
	x.opts.nranks = nranks;
	x.opts.job_id = 0x7e570000u | ((uint32_t)getppid() & 0xffff);
	x.opts.peer_timeout_ms = 10000;
	cfg->rank_opts(cfg, rank, &x.opts);
	if (tweak)
		tweak(&x.opts, rank);
	gx_net_create(&x.opts, &x.net);
	if (!x.net) {
		fprintf(stderr, "rank %u: gx_net_create(%s): %s\n", rank, cfg->backend, gx_last_error());
		len32 = 0;
		write_full(sock, &len32, 4);
		return 3;
	}
	size_t bl = GX_ADDR_MAX;
	if (gx_net_local_addr(x.net, x.blob[rank], &bl) < 0) {
		fprintf(stderr, "rank %u: local_addr: %s\n", rank, gx_last_error());
		return 3;
	}
	len32 = (uint32_t)bl;
	if (write_full(sock, &len32, 4) || write_full(sock, x.blob[rank], bl))
		return 3;
	for (uint32_t r = 0; r < nranks; r++) {
		if (read_full(sock, &len32, 4) || len32 > GX_ADDR_MAX || read_full(sock, x.blob[r], len32))
			return 3;
		x.blen[r] = len32;
	}
	for (uint32_t r = 0; r < nranks; r++)
		if (r != rank && gx_net_connect(x.net, r, x.blob[r], x.blen[r]) < 0) {
			fprintf(stderr, "rank %u: connect %u: %s\n", rank, r, gx_last_error());
			return 3;
		}
	/* Nobody sends before everyone is connected (else first packets count as foreign); the net
	 * is not polled here, so no early packet is consumed before the case's receiver runs. */
	struct gx_net *net = x.net;
	x.net = NULL;
	if (barrier(&x))
		return 3;
	x.net = net;
	int rc = fn(&x, arg);
	gx_net_destroy(x.net);
	return rc;
}

#define EXPECT_OK 0
#define EXPECT_SIGKILL 1

/* Fork nranks ranks running fn; returns 0 when every rank ended as expected[] says. */
static int run_ranks(uint32_t nranks, opts_fn tweak, rank_fn fn, void *arg, const int *expect, int timeout_s)
{
	int sock[MAX_RANKS], status[MAX_RANKS];
	pid_t pid[MAX_RANKS];
	bool done[MAX_RANKS] = { false }, at_barrier[MAX_RANKS] = { false };
	uint8_t blob[MAX_RANKS][GX_ADDR_MAX];
	uint32_t blen[MAX_RANKS];
	int failed = 0;

	fflush(NULL);
	for (uint32_t r = 0; r < nranks; r++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return -1;
		pid[r] = fork();
		if (pid[r] == 0) {
			for (uint32_t q = 0; q < r; q++)
				close(sock[q]);
			close(sv[0]);
			_exit(rank_main(r, nranks, sv[1], tweak, fn, arg));
		}
		close(sv[1]);
		sock[r] = sv[0];
	}
	uint64_t deadline = gx_now_ns() + (uint64_t)timeout_s * 1000000000ull;
	/* Address exchange. */
	for (uint32_t r = 0; r < nranks && !failed; r++) {
		struct pollfd p = { .fd = sock[r], .events = POLLIN };
		if (poll(&p, 1, 30000) <= 0 || read_full(sock[r], &blen[r], 4) || blen[r] == 0 ||
		    blen[r] > GX_ADDR_MAX || read_full(sock[r], blob[r], blen[r])) {
			fprintf(stderr, "harness: rank %u did not publish its address\n", r);
			failed = 1;
		}
	}
	for (uint32_t r = 0; r < nranks && !failed; r++)
		for (uint32_t q = 0; q < nranks; q++)
			if (write_full(sock[r], &blen[q], 4) || write_full(sock[r], blob[q], blen[q]))
				failed = 1;
	/* Relay barriers until every rank has exited. */
	uint32_t left = nranks;
	while (left && !failed) {
		struct pollfd p[MAX_RANKS];
		for (uint32_t r = 0; r < nranks; r++)
			p[r] = (struct pollfd){ .fd = done[r] ? -1 : sock[r], .events = POLLIN };
		poll(p, nranks, 20);
		for (uint32_t r = 0; r < nranks; r++) {
			char c;
			if (!done[r] && (p[r].revents & POLLIN) && read(sock[r], &c, 1) == 1)
				at_barrier[r] = true;
			if (!done[r] && waitpid(pid[r], &status[r], WNOHANG) == pid[r]) {
				done[r] = true;
				left--;
			}
		}
		bool all = left > 0;
		for (uint32_t r = 0; r < nranks; r++)
			if (!done[r] && !at_barrier[r])
				all = false;
		if (all)
			for (uint32_t r = 0; r < nranks; r++)
				if (!done[r]) {
					at_barrier[r] = false;
					write_full(sock[r], "B", 1);
				}
		if (gx_now_ns() > deadline) {
			fprintf(stderr, "harness: ranks still running after %d s: killed\n", timeout_s);
			failed = 1;
		}
	}
	for (uint32_t r = 0; r < nranks; r++) {
		if (!done[r]) {
			kill(pid[r], SIGKILL);
			waitpid(pid[r], &status[r], 0);
			done[r] = true;
			failed = 1;
		}
		close(sock[r]);
		int want = expect ? expect[r] : EXPECT_OK;
		bool ok = want == EXPECT_SIGKILL ? (WIFSIGNALED(status[r]) && WTERMSIG(status[r]) == SIGKILL)
						 : (WIFEXITED(status[r]) && WEXITSTATUS(status[r]) == 0);
		if (!ok) {
			fprintf(stderr, "harness: rank %u ended with %s %d (expected %s)\n", r,
				WIFSIGNALED(status[r]) ? "signal" : "exit status",
				WIFSIGNALED(status[r]) ? WTERMSIG(status[r]) : WEXITSTATUS(status[r]),
				want == EXPECT_SIGKILL ? "SIGKILL" : "exit 0");
			failed = 1;
		}
	}
	return failed;
}

/* ---- message traffic: checksummed content, exact delivery accounting -------------------------- */

/* Byte i of message m from rank r. */
static void pattern(uint8_t *dst, uint32_t r, uint32_t m, uint64_t off, uint32_t len)
{
	uint64_t key = gx_rng_key(0x5eed, r, m, 7);
	uint32_t w = 0;
	for (uint32_t i = 0; i < len; i++) {
		uint64_t b = off + i;
		if (i == 0 || (b & 3) == 0)
			w = gx_rng_u32(key, (uint32_t)(b >> 2));
		dst[i] = (uint8_t)(w >> ((b & 3) * 8));
	}
}

struct xfer {
	uint32_t me, peer, payload;
	uint32_t nmsg;
	uint64_t size[MAX_MSGS];
	/* send side */
	uint32_t tx_msg;
	uint64_t tx_off;
	bool tx_done;
	/* receive side */
	uint8_t *buf[MAX_MSGS];
	uint8_t *seen[MAX_MSGS];
	uint64_t chunks[MAX_MSGS], got[MAX_MSGS];
	uint64_t expected, deliveries, doubles, bad;
	uint64_t last_progress_ns;
};

static uint64_t nchunks(const struct xfer *t, uint64_t size)
{
	return size ? (size + t->payload - 1) / t->payload : 1;
}

static gx_status_t xfer_deliver(void *arg, uint32_t peer, const struct gx_desc *h, const void *p, uint32_t len)
{
	struct xfer *t = arg;
	uint32_t m = h->coll_id - 1;

	t->deliveries++;
	if (peer != t->peer || (h->flags & GX_DESC_RAW) || m >= t->nmsg || h->chunk >= t->chunks[m] ||
	    h->aux != (uint32_t)t->size[m]) {
		t->bad++;
		return GX_OK;
	}
	uint64_t off = (uint64_t)h->chunk * t->payload;
	uint64_t want = t->size[m] - off < t->payload ? t->size[m] - off : t->payload;
	if (len != want) {
		t->bad++;
		return GX_OK;
	}
	if (t->seen[m][h->chunk]) {
		t->doubles++;
		return GX_OK;
	}
	t->seen[m][h->chunk] = 1;
	t->got[m]++;
	memcpy(t->buf[m] + off, p, len);
	return GX_OK;
}

static int xfer_init(struct rank_ctx *x, struct xfer *t, uint32_t peer, const uint64_t *sizes, uint32_t nmsg)
{
	memset(t, 0, sizeof(*t));
	t->me = x->rank;
	t->peer = peer;
	t->payload = gx_net_max_payload(x->net);
	t->nmsg = nmsg;
	for (uint32_t m = 0; m < nmsg; m++) {
		t->size[m] = sizes[m];
		t->chunks[m] = nchunks(t, sizes[m]);
		t->expected += t->chunks[m];
		t->buf[m] = malloc(sizes[m] ? sizes[m] : 1);
		t->seen[m] = calloc(t->chunks[m], 1);
		if (!t->buf[m] || !t->seen[m])
			FAILF(x, "out of memory");
	}
	x->fn = xfer_deliver;
	x->arg = t;
	return 0;
}

static void xfer_free(struct xfer *t)
{
	for (uint32_t m = 0; m < t->nmsg; m++) {
		free(t->buf[m]);
		free(t->seen[m]);
	}
}

/* Queue as many packets as the window takes; returns packets queued or -1 on error. */
static int xfer_send_some(struct rank_ctx *x, struct xfer *t, int max)
{
	int sent = 0;

	while (!t->tx_done && sent < max) {
		gx_status_t st;
		uint8_t *b = gx_net_reserve(x->net, t->peer, &st);
		if (!b) {
			if (st == GX_ERR_AGAIN)
				break;
			return -1;
		}
		uint64_t size = t->size[t->tx_msg];
		uint32_t len = size - t->tx_off < t->payload ? (uint32_t)(size - t->tx_off) : t->payload;
		pattern(b, t->me, t->tx_msg, t->tx_off, len);
		struct gx_desc d = { .coll_id = t->tx_msg + 1, .chunk = (uint32_t)(t->tx_off / t->payload),
					.aux = (uint32_t)size };
		if (gx_net_commit(x->net, t->peer, &d, len) < 0)
			return -1;
		sent++;
		t->tx_off += t->payload;
		if (t->tx_off >= size) {
			t->tx_off = 0;
			if (++t->tx_msg == t->nmsg)
				t->tx_done = true;
		}
	}
	return sent;
}

/* Send our messages and receive the peer's until both are complete and acknowledged. */
static int xfer_run(struct rank_ctx *x, struct xfer *t, bool send, bool recv, int timeout_s)
{
	uint64_t start = gx_now_ns(), idle = start;

	t->tx_done = !send;
	t->last_progress_ns = start;
	for (;;) {
		int s = xfer_send_some(x, t, 64);
		if (s < 0)
			FAILF(x, "send: %s", gx_last_error());
		int r = gx_net_poll(x->net, xfer_deliver, t);
		if (r < 0)
			FAILF(x, "poll: %s", gx_last_error());
		uint64_t now = gx_now_ns();
		if (r > 0 || s > 0)
			idle = t->last_progress_ns = now;
		bool rx_done = !recv;
		if (recv) {
			uint64_t got = 0;
			for (uint32_t m = 0; m < t->nmsg; m++)
				got += t->got[m];
			rx_done = got == t->expected;
		}
		if (t->tx_done && rx_done && gx_net_inflight(x->net) == 0)
			return 0;
		if (now - start > (uint64_t)timeout_s * 1000000000ull) {
			uint64_t got = 0;
			for (uint32_t m = 0; m < t->nmsg; m++)
				got += t->got[m];
			FAILF(x, "transfer not complete after %d s: sent %s, received %llu of %llu packets "
			      "(%llu bad, %llu doubles), %u unacknowledged", timeout_s, t->tx_done ? "all" : "part",
			      (unsigned long long)got, (unsigned long long)t->expected, (unsigned long long)t->bad,
			      (unsigned long long)t->doubles, gx_net_inflight(x->net));
		}
		gx_idle_backoff(now - idle);
	}
}

/* Every message arrived exactly once with the right bytes. */
static int xfer_verify(struct rank_ctx *x, struct xfer *t)
{
	uint8_t *want = malloc(1 << 20);

	if (!want)
		FAILF(x, "out of memory");
	CHECK(x, t->bad == 0, "%llu packets with wrong fields were delivered", (unsigned long long)t->bad);
	CHECK(x, t->doubles == 0, "%llu packets were delivered twice", (unsigned long long)t->doubles);
	CHECK(x, t->deliveries == t->expected, "%llu deliveries for %llu packets",
	      (unsigned long long)t->deliveries, (unsigned long long)t->expected);
	for (uint32_t m = 0; m < t->nmsg; m++) {
		CHECK(x, t->got[m] == t->chunks[m], "message %u: %llu of %llu packets", m,
		      (unsigned long long)t->got[m], (unsigned long long)t->chunks[m]);
		for (uint64_t off = 0; off < t->size[m]; off += 1 << 20) {
			uint32_t len = t->size[m] - off < (1 << 20) ? (uint32_t)(t->size[m] - off) : 1 << 20;
			pattern(want, t->peer, m, off, len);
			if (memcmp(want, t->buf[m] + off, len)) {
				free(want);
				FAILF(x, "message %u (%llu bytes): content differs near offset %llu", m,
				      (unsigned long long)t->size[m], (unsigned long long)off);
			}
		}
	}
	free(want);
	return 0;
}

/* ---- cases ---------------------------------------------------------------------------------- */

static int sizes_upto(uint32_t payload, uint64_t max, uint64_t *s)
{
	const uint64_t cand[] = { 1, 7, payload - 1, payload, payload + 1, 4096, 65536, 1u << 20, 8u << 20,
				  64u << 20 };
	int n = 0;
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (cand[i] <= max)
			s[n++] = cand[i];
	return n;
}

/* Both ranks send the same list of messages to each other at once (piggybacked ACKs). */
static int exact_rank(struct rank_ctx *x, void *arg)
{
	uint64_t max = *(uint64_t *)arg, sizes[MAX_MSGS];
	struct xfer t;
	int n = sizes_upto(gx_net_max_payload(x->net), max, sizes);

	if (xfer_init(x, &t, 1 - x->rank, sizes, (uint32_t)n))
		return 1;
	int rc = xfer_run(x, &t, true, true, 50) || xfer_verify(x, &t) || barrier(x);
	struct gx_peer_counters c;
	gx_net_peer_counters(x->net, 1 - x->rank, &c);
	if (!rc && (c.received != t.expected || c.malformed || c.out_of_window))
		FAILF(x, "counters: received %llu (want %llu), malformed %llu, out of window %llu",
		      (unsigned long long)c.received, (unsigned long long)t.expected,
		      (unsigned long long)c.malformed, (unsigned long long)c.out_of_window);
	/* udp: the offload path ran when the kernel has it (and GX_UDP_OFFLOAD=0 turns it off) */
	if (!rc && !strcmp(cfg->backend, "udp") && gx_net_max_payload(x->net) < 16384) {
		struct gx_backend_counters bc;
		const char *env = getenv("GX_UDP_OFFLOAD");
		int fd = socket(AF_INET, SOCK_DGRAM, 0), zero = 0;
		bool want = !(env && !strcmp(env, "0")) && fd >= 0 &&
			    setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) == 0;
		if (fd >= 0)
			close(fd);
		gx_net_backend_counters(x->net, &bc);
		/* GRO needs the datagrams to arrive together: not behind the lossy network's emulator */
		if (want ? !bc.tx_offload_msgs || (!bc.rx_offload_msgs && !cfg->lossy_network)
			 : bc.tx_offload_msgs || bc.rx_offload_msgs)
			FAILF(x, "udp offload %s but GSO messages %llu, GRO messages %llu", want ? "expected" : "off",
			      (unsigned long long)bc.tx_offload_msgs, (unsigned long long)bc.rx_offload_msgs);
	}
	xfer_free(&t);
	return rc;
}

static void test_exact_delivery(void)
{
	uint64_t max = cfg->max_bytes;
	CU_ASSERT_EQUAL(run_ranks(2, NULL, exact_rank, &max, NULL, 55), 0);
}

/* --mtu auto: the bound interface's MTU (loopback: 65536, so 64 KiB datagrams), agreed by all ranks. */
static void auto_mtu_opts(struct gx_transport_opts *o, uint32_t rank)
{
	o->mtu = 0;
	if (rank == 1 && !strcmp(cfg->name, "udp-loopback"))
		o->mtu = 9000;  /* one rank with a smaller MTU: both use its datagram size */
}

static int auto_rank(struct rank_ctx *x, void *arg)
{
	uint32_t want = !strcmp(cfg->name, "udp-loopback") ? ((9000 - 28) & ~7u) - 48 : 0;
	if (want && gx_net_max_payload(x->net) != want)
		FAILF(x, "payload %u, want %u (the smaller MTU of the two ranks)", gx_net_max_payload(x->net), want);
	return exact_rank(x, arg);
}

static void test_exact_auto(void)
{
	uint64_t max = cfg->max_bytes;
	if (strcmp(cfg->backend, "udp"))
		return;
	CU_ASSERT_EQUAL(run_ranks(2, auto_mtu_opts, auto_rank, &max, NULL, 55), 0);
}

/* Fault hooks: 5 % drop, 5 % reorder, 1 % duplicate on every packet either way (data and ACKs). */
static void fault_opts(struct gx_transport_opts *o, uint32_t rank)
{
	o->fault.drop = 0.05;
	o->fault.reorder = 0.05;
	o->fault.dup = 0.01;
	o->fault.seed = 42 + rank;
}

/* Sequence numbers start 3000 packets before 2^32, so the transfers cross the wrap. */
static void wrap_opts(struct gx_transport_opts *o, uint32_t rank)
{
	fault_opts(o, rank);
	o->first_psn = 0xffffffffu - 3000;
}

static void fault_delay_opts(struct gx_transport_opts *o, uint32_t rank)
{
	fault_opts(o, rank);
	o->fault.delay_us = 300;
}

static int faults_rank(struct rank_ctx *x, void *arg)
{
	uint64_t max = *(uint64_t *)arg, sizes[MAX_MSGS];
	struct xfer t;
	int n = sizes_upto(gx_net_max_payload(x->net), max, sizes);
	struct gx_peer_counters c;

	if (xfer_init(x, &t, 1 - x->rank, sizes, (uint32_t)n))
		return 1;
	int rc = xfer_run(x, &t, true, true, 50) || xfer_verify(x, &t) || barrier(x);
	gx_net_peer_counters(x->net, 1 - x->rank, &c);
	xfer_free(&t);
	if (rc)
		return rc;
	fprintf(stderr, "rank %u: sent %llu retransmitted %llu (fast %llu, rto events %llu) fault drop %llu "
		"dup %llu reorder %llu; received %llu duplicates %llu; srtt %u us rto %u us\n", x->rank,
		(unsigned long long)c.sent, (unsigned long long)c.retransmitted,
		(unsigned long long)c.fast_retransmits, (unsigned long long)c.rto_events,
		(unsigned long long)c.fault_dropped, (unsigned long long)c.fault_duplicated,
		(unsigned long long)c.fault_reordered, (unsigned long long)c.received,
		(unsigned long long)c.duplicates, c.srtt_us, c.rto_us);
	CHECK(x, c.received == t.expected, "received counter %llu", (unsigned long long)c.received);
	/* The hooks really acted, at about their rates (binomial bounds, fixed seeds). */
	uint64_t pkts = c.sent + c.retransmitted + c.acks_sent + c.heartbeats_sent;
	CHECK(x, c.fault_dropped > pkts / 40 && c.fault_dropped < pkts / 10, "drops %llu of %llu",
	      (unsigned long long)c.fault_dropped, (unsigned long long)pkts);
	CHECK(x, c.fault_duplicated > 0 && c.fault_reordered > 0, "dup %llu reorder %llu",
	      (unsigned long long)c.fault_duplicated, (unsigned long long)c.fault_reordered);
	CHECK(x, c.retransmitted > 0 && c.duplicates > 0, "retransmitted %llu duplicates %llu",
	      (unsigned long long)c.retransmitted, (unsigned long long)c.duplicates);
	return 0;
}

static void test_fault_hooks(void)
{
	uint64_t max = 8u << 20;
	CU_ASSERT_EQUAL(run_ranks(2, fault_opts, faults_rank, &max, NULL, 55), 0);
}

static void test_psn_wrap(void)
{
	uint64_t max = 8u << 20;
	CU_ASSERT_EQUAL(run_ranks(2, wrap_opts, faults_rank, &max, NULL, 55), 0);
}

static void test_fault_hooks_delay(void)
{
	uint64_t max = 1u << 20;
	CU_ASSERT_EQUAL(run_ranks(2, fault_delay_opts, faults_rank, &max, NULL, 55), 0);
}

#define PEER_TIMEOUT_MS 1000

static void short_timeout_opts(struct gx_transport_opts *o, uint32_t rank)
{
	(void)rank;
	o->peer_timeout_ms = PEER_TIMEOUT_MS;
}

/* Rank 1 takes part of a long transfer and dies with SIGKILL; rank 0, still sending, must get
 * GX_ERR_PEER naming rank 1 within the timeout of its last progress, not before. */
static int killed_sender_side(struct rank_ctx *x, void *arg)
{
	(void)arg;
	uint64_t sizes[1] = { 1u << 30 };      /* never completes */
	struct xfer t;

	if (x->rank == 1) {
		uint64_t none[1] = { 0 };
		if (xfer_init(x, &t, 0, none, 0))
			return 1;
		uint64_t got = 0, idle = gx_now_ns();
		while (got < 2000) {
			int r = gx_net_poll(x->net, discard_fn, NULL);
			if (r < 0)
				FAILF(x, "poll: %s", gx_last_error());
			got += (uint64_t)r;
			uint64_t now = gx_now_ns();
			if (r > 0)
				idle = now;
			gx_idle_backoff(now - idle);
		}
		raise(SIGKILL);
	}
	if (xfer_init(x, &t, 1, sizes, 1))
		return 1;
	t.tx_done = false;
	uint64_t last_progress = gx_now_ns(), idle = last_progress, start = last_progress;
	uint32_t inflight = 0;
	for (;;) {
		int s = xfer_send_some(x, &t, 64);
		int r = s < 0 ? -1 : gx_net_poll(x->net, xfer_deliver, &t);
		uint64_t now = gx_now_ns();
		if (s < 0 || r < 0) {
			const char *e = gx_last_error();
			double ms = (double)(now - last_progress) / 1e6;
			fprintf(stderr, "rank 0: after %.0f ms without progress: %s\n", ms, e);
			CHECK(x, strstr(e, "peer rank 1 ") != NULL, "error does not name rank 1: %s", e);
			CHECK(x, ms >= PEER_TIMEOUT_MS * 0.9 && ms <= PEER_TIMEOUT_MS + 1000,
			      "reported %.0f ms after the last progress (timeout %d ms)", ms, PEER_TIMEOUT_MS);
			gx_status_t st2;
			CHECK(x, gx_net_reserve(x->net, 1, &st2) == NULL && st2 == GX_ERR_PEER,
			      "sending to the dead peer is refused");
			return 0;
		}
		uint32_t inf = gx_net_inflight(x->net);
		if (inf < inflight || s > 0)
			last_progress = now;
		inflight = inf;
		if (s > 0 || r > 0)
			idle = now;
		if (now - start > 20000000000ull)
			FAILF(x, "no error 20 s after starting; the dead peer was not detected");
		gx_idle_backoff(now - idle);
	}
}

static void test_killed_peer_sending(void)
{
	const int expect[2] = { EXPECT_OK, EXPECT_SIGKILL };
	CU_ASSERT_EQUAL(run_ranks(2, short_timeout_opts, killed_sender_side, NULL, expect, 30), 0);
}

/* Rank 1 stays connected but idle for 2.5 timeouts (heartbeats must keep it alive in rank 0's eyes),
 * then dies; rank 0, waiting for data, learns from gx_net_check_peer within the timeout. */
static int killed_receiver_side(struct rank_ctx *x, void *arg)
{
	(void)arg;
	uint64_t start = gx_now_ns(), idle = start;

	if (x->rank == 1) {
		while (gx_now_ns() - start < 2500ull * PEER_TIMEOUT_MS * 1000) {
			int r = gx_net_poll(x->net, discard_fn, NULL);
			if (r < 0)
				FAILF(x, "poll: %s", gx_last_error());
			uint64_t now = gx_now_ns();
			if (r > 0)
				idle = now;
			gx_idle_backoff(now - idle);
		}
		raise(SIGKILL);
	}
	for (;;) {
		int r = gx_net_poll(x->net, discard_fn, NULL);
		gx_status_t st = r < 0 ? r : gx_net_check_peer(x->net, 1, start);
		uint64_t now = gx_now_ns();
		double ms = (double)(now - start) / 1e6;
		if (st < 0) {
			const char *e = gx_last_error();
			fprintf(stderr, "rank 0: after %.0f ms: %s\n", ms, e);
			CHECK(x, st == GX_ERR_PEER && strstr(e, "peer rank 1 ") != NULL, "wrong error %d: %s", st, e);
			/* Its last heartbeat came at most a quarter timeout before it died at ~2500 ms; on a
			 * lossy network one or two heartbeats in a row may be lost too (5 %: 1 in 8000 for three). */
			int beats = cfg->lossy_network ? 3 : 1;
			CHECK(x, ms >= 2500 - beats * PEER_TIMEOUT_MS / 4 - 50 + PEER_TIMEOUT_MS * 0.9 &&
				 ms <= 2500 + PEER_TIMEOUT_MS + 1200,
			      "reported at %.0f ms; the peer idled until 2500 ms and died then (timeout %d ms)",
			      ms, PEER_TIMEOUT_MS);
			struct gx_peer_counters c;
			gx_net_peer_counters(x->net, 1, &c);
			CHECK(x, c.heartbeats_sent > 0, "no heartbeats were sent");
			return 0;
		}
		if (ms > 15000)
			FAILF(x, "rank 1 died but was not reported within 15 s");
		gx_idle_backoff(now - idle);
	}
}

static void test_killed_peer_waiting(void)
{
	const int expect[2] = { EXPECT_OK, EXPECT_SIGKILL };
	CU_ASSERT_EQUAL(run_ranks(2, short_timeout_opts, killed_receiver_side, NULL, expect, 30), 0);
}

/* ABORT fails the peer fast, long before the (default, 10 s) timeout. */
static int abort_rank(struct rank_ctx *x, void *arg)
{
	(void)arg;
	x->fn = discard_fn;
	if (barrier(x))
		return 1;
	if (x->rank == 1) {
		gx_net_abort(x->net);
		return 0;
	}
	uint64_t start = gx_now_ns(), idle = start;
	for (;;) {
		int r = gx_net_poll(x->net, discard_fn, NULL);
		uint64_t now = gx_now_ns();
		if (r < 0) {
			CHECK(x, r == GX_ERR_PEER && strstr(gx_last_error(), "peer rank 1 stopped on an error and aborted the job"), "%d: %s", r,
			      gx_last_error());
			CHECK(x, now - start < 1000000000ull, "ABORT took %llu ms", (unsigned long long)(now - start) / 1000000);
			return 0;
		}
		if (now - start > 5000000000ull)
			FAILF(x, "ABORT not seen within 5 s");
		gx_idle_backoff(now - idle);
	}
}

static void test_abort(void)
{
	CU_ASSERT_EQUAL(run_ranks(2, NULL, abort_rank, NULL, NULL, 20), 0);
}

/* Rank 1 gets SIGINT (gx_stop_on_signals' handler) while it sends: its next poll fails with
 * GX_ERR_INTERRUPTED, and rank 0 learns within a second that rank 1 was stopped by SIGINT. */
static int interrupt_rank(struct rank_ctx *x, void *arg)
{
	(void)arg;
	x->fn = discard_fn;
	CHECK(x, gx_stop_on_signals() == GX_OK, "gx_stop_on_signals: %s", gx_last_error());
	if (barrier(x))
		return 1;
	uint64_t start = gx_now_ns(), idle = start;
	if (x->rank == 1)
		raise(SIGINT);
	for (;;) {
		int r = gx_net_poll(x->net, discard_fn, NULL);
		uint64_t now = gx_now_ns();
		if (r < 0) {
			if (x->rank == 1)
				CHECK(x, r == GX_ERR_INTERRUPTED && strstr(gx_last_error(), "interrupted by SIGINT"),
				      "%d: %s", r, gx_last_error());
			else
				CHECK(x, r == GX_ERR_PEER && strstr(gx_last_error(), "peer rank 1 was stopped by SIGINT"),
				      "%d: %s", r, gx_last_error());
			CHECK(x, now - start < 1000000000ull, "took %llu ms", (unsigned long long)(now - start) / 1000000);
			return 0;
		}
		if (now - start > 5000000000ull)
			FAILF(x, "no failure within 5 s");
		gx_idle_backoff(now - idle);
	}
}

static void test_interrupt(void)
{
	CU_ASSERT_EQUAL(run_ranks(2, NULL, interrupt_rank, NULL, NULL, 20), 0);
}

/* Garbage and foreign frames injected during a transfer: counted exactly, never delivered. */
#define GARBAGE_ROUNDS 20
#define GARBAGE_PER_ROUND 14             /* see inject_garbage */

static void small_window_opts(struct gx_transport_opts *o, uint32_t rank)
{
	(void)rank;
	o->window = 64;                   /* within the kernel's socket buffer: no loss, exact counts */
}

static int inject_garbage(struct rank_ctx *x, uint32_t to)
{
	struct gx_backend *b = gx_net_backend(x->net);
	uint8_t f[GARBAGE_PER_ROUND][sizeof(struct gx_hdr) + 64];
	uint32_t len[GARBAGE_PER_ROUND];
	struct gx_hdr base = { .magic = GX_MAGIC, .version = GX_WIRE_VERSION, .type = GX_PKT_DATA,
			       .src_rank = (uint16_t)x->rank, .coll_id = 1, .psn = 3, .len = 64 };
	gx_net_identity(x->net, &base.job, &base.incarnation);

	/* Every frame is sealed (a valid CRC32C) after it was spoilt, so each reaches the check it is
	 * meant for; frame 12 is spoilt after sealing. */
	for (int i = 0; i < GARBAGE_PER_ROUND; i++) {
		struct gx_hdr h = base;
		len[i] = sizeof(h) + 64;
		memset(f[i], 0xEE, sizeof(f[i]));
		switch (i) {
		case 0: h.magic = 0x1234; break;                     /* malformed */
		case 1: h.version = 9; break;                        /* malformed */
		case 2: len[i] = 20; break;                          /* malformed: truncated */
		case 3: h.len = 64 + 100; break;                     /* malformed: len beyond the frame */
		case 4: h.len = 10; break;                           /* malformed: len short of the frame */
		case 5: h.src_rank = 4000; break;                    /* malformed: no such rank */
		case 6: h.src_rank = (uint16_t)to; break;            /* malformed: claims to be the receiver */
		case 7: h.type = 99; break;                          /* malformed */
		case 8: h.type = GX_PKT_ACK; h.len = 0; len[i] = sizeof(h);
			h.psn = 0x40000000u;                        /* a newer control sequence number */
			h.ack_psn = 0x40000000u; break;              /* malformed: acks what was never sent */
		case 9: len[i] = 1; break;                           /* malformed: 1 byte */
		case 10: h.job ^= 0x5a5a; break;                     /* other_job */
		case 11: h.psn = 0x40000000u; break;                 /* out of window */
		case 12: break;                                      /* bad_crc: a bit flipped below */
		case 13: h.incarnation += 1; break;                  /* other_incarnation */
		}
		if (h.len <= 64)
			gx_hdr_seal(&h, f[i] + sizeof(h));
		memcpy(f[i], &h, sizeof(h));
		if (i == 12)
			f[i][sizeof(h) + 5] ^= 0x10;
	}
	for (int i = 0; i < GARBAGE_PER_ROUND; i++) {
		struct gx_msg m = { .peer = to, .len = len[i], .data = f[i] };
		if (b->ops->tx_burst(b, &m, 1) != 1)
			FAILF(x, "backend refused garbage frame %d", i);
	}
	/* A well-formed DATA packet claiming to be us, from an address that is not ours. */
	if (cfg->send_stranger) {
		struct gx_hdr h = base;
		memset(f[0], 0xEE, sizeof(f[0]));
		gx_hdr_seal(&h, f[0] + sizeof(h));
		memcpy(f[0], &h, sizeof(h));
		if (cfg->send_stranger(cfg, x->rank, x->blob[to], x->blen[to], f[0], sizeof(h) + 64))
			FAILF(x, "stranger frame not sent: %s", strerror(errno));
	}
	return 0;
}

static int garbage_rank(struct rank_ctx *x, void *arg)
{
	(void)arg;
	uint64_t sizes[1] = { 4u << 20 };
	struct xfer t;
	struct gx_backend_counters bc0, bc1;

	if (xfer_init(x, &t, 1 - x->rank, sizes, 1))
		return 1;
	gx_net_backend_counters(x->net, &bc0);
	if (x->rank == 1) {
		/* Send the message with a round of garbage every 1/GARBAGE_ROUNDS of it. */
		uint64_t chunks = t.chunks[0], idle = gx_now_ns(), start = idle;
		int rounds = 0;
		t.tx_done = false;
		while (!t.tx_done || gx_net_inflight(x->net)) {
			uint64_t pos = (uint64_t)t.tx_off / t.payload + (t.tx_done ? chunks : 0);
			if (rounds < GARBAGE_ROUNDS && pos >= chunks * (uint64_t)rounds / GARBAGE_ROUNDS) {
				if (inject_garbage(x, 0))
					return 1;
				rounds++;
			}
			int s = xfer_send_some(x, &t, 16);
			int r = s < 0 ? -1 : gx_net_poll(x->net, discard_fn, NULL);
			if (r < 0)
				FAILF(x, "send: %s", gx_last_error());
			uint64_t now = gx_now_ns();
			if (s > 0 || r > 0)
				idle = now;
			if (now - start > 40000000000ull)
				FAILF(x, "transfer not done in 40 s");
			gx_idle_backoff(now - idle);
		}
		CHECK(x, rounds == GARBAGE_ROUNDS, "%d rounds injected", rounds);
		x->fn = discard_fn;
		return barrier(x);
	}
	int rc = xfer_run(x, &t, false, true, 40) || barrier(x);
	if (rc)
		return rc;
	/* Everything was sent before the barrier; take in what is still queued. */
	uint64_t until = gx_now_ns() + 200000000ull;
	while (gx_now_ns() < until) {
		if (gx_net_poll(x->net, xfer_deliver, &t) < 0)
			FAILF(x, "poll: %s", gx_last_error());
		gx_idle_backoff(100000);
	}
	rc = xfer_verify(x, &t);
	struct gx_peer_counters all, p1;
	gx_net_peer_counters(x->net, GX_PEER_ANY, &all);
	gx_net_peer_counters(x->net, 1, &p1);
	gx_net_backend_counters(x->net, &bc1);
	fprintf(stderr, "rank 0: malformed %llu (rank 1: %llu) dropped %llu (rank 1: %llu) out of window %llu, "
		"bad crc %llu, other job %llu, other incarnation %llu, link-level foreign %llu\n",
		(unsigned long long)all.malformed, (unsigned long long)p1.malformed,
		(unsigned long long)all.dropped, (unsigned long long)p1.dropped,
		(unsigned long long)all.out_of_window, (unsigned long long)all.bad_crc,
		(unsigned long long)all.other_job, (unsigned long long)all.other_incarnation,
		(unsigned long long)(bc1.rx_foreign - bc0.rx_foreign));
	uint64_t short_frames = cfg->link_drops_short ? 2 * GARBAGE_ROUNDS : 0;
	uint64_t want_malformed = 10 * GARBAGE_ROUNDS - short_frames;
	uint64_t want_dropped = cfg->send_stranger ? GARBAGE_ROUNDS : 0;
	if (cfg->lossy_network) {
		/* 5 % loss and 1 % duplication on the link: within bounds (binomial, >10 sd margin). */
		CHECK(x, all.malformed >= want_malformed * 8 / 10 && all.malformed <= want_malformed * 115 / 100,
		      "malformed %llu, want about %llu", (unsigned long long)all.malformed,
		      (unsigned long long)want_malformed);
		CHECK(x, all.dropped >= want_dropped * 7 / 10 && all.dropped <= want_dropped * 13 / 10,
		      "dropped %llu, want about %llu", (unsigned long long)all.dropped, (unsigned long long)want_dropped);
		CHECK(x, all.out_of_window >= GARBAGE_ROUNDS / 2 && all.out_of_window <= GARBAGE_ROUNDS * 2,
		      "out of window %llu", (unsigned long long)all.out_of_window);
		CHECK(x, all.bad_crc >= GARBAGE_ROUNDS / 2 && all.bad_crc <= GARBAGE_ROUNDS * 2 &&
		      all.other_job >= GARBAGE_ROUNDS / 2 && all.other_job <= GARBAGE_ROUNDS * 2 &&
		      all.other_incarnation >= GARBAGE_ROUNDS / 2 && all.other_incarnation <= GARBAGE_ROUNDS * 2,
		      "bad crc %llu, other job %llu, other incarnation %llu, want about %d each",
		      (unsigned long long)all.bad_crc, (unsigned long long)all.other_job,
		      (unsigned long long)all.other_incarnation, GARBAGE_ROUNDS);
	} else {
		CHECK(x, all.malformed == want_malformed, "malformed %llu, want %llu",
		      (unsigned long long)all.malformed, (unsigned long long)want_malformed);
		CHECK(x, all.dropped == want_dropped, "dropped %llu, want %llu", (unsigned long long)all.dropped,
		      (unsigned long long)want_dropped);
		CHECK(x, all.out_of_window == GARBAGE_ROUNDS, "out of window %llu",
		      (unsigned long long)all.out_of_window);
		CHECK(x, all.bad_crc == GARBAGE_ROUNDS && all.other_job == GARBAGE_ROUNDS &&
		      all.other_incarnation == GARBAGE_ROUNDS, "bad crc %llu, other job %llu, other incarnation "
		      "%llu, want %d each", (unsigned long long)all.bad_crc, (unsigned long long)all.other_job,
		      (unsigned long long)all.other_incarnation, GARBAGE_ROUNDS);
	}
	CHECK(x, bc1.rx_foreign - bc0.rx_foreign >= short_frames, "link-level drops");
	xfer_free(&t);
	return rc;
}

static void test_garbage(void)
{
	CU_ASSERT_EQUAL(run_ranks(2, small_window_opts, garbage_rank, NULL, NULL, 50), 0);
}

/* A net that cannot be created: a failing status and no object. */
static int net_refused(const struct gx_transport_opts *o)
{
	struct gx_net *n = (struct gx_net *)1;
	return gx_net_create(o, &n) < 0 && n == NULL;
}

/* In-process: bad names and options give clear errors, nothing crashes. */
static void test_clear_errors(void)
{
	struct gx_transport_opts o = { .backend = "carrier-pigeon", .rank = 0, .nranks = 2 };

	gx_clear_error();
	CU_ASSERT(net_refused(&o));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "unknown transport 'carrier-pigeon'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "udp"));
	const struct gx_backend_ops *ops;
	CU_ASSERT(gx_backend_find("carrier-pigeon", &ops) == GX_ERR_INVAL && ops == NULL);
	CU_ASSERT(gx_backend_find(cfg->backend, &ops) == GX_OK && ops && !strcmp(ops->name, cfg->backend));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_transport_list(), cfg->backend));

	/* This configuration's backend, with impossible settings. */
	struct gx_transport_opts good = { .backend = cfg->backend, .rank = 0, .nranks = 2 };
	cfg->rank_opts(cfg, 0, &good);
	o = good;
	o.rank = 5;
	CU_ASSERT(net_refused(&o));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "rank 5"));
	o = good;
	o.window = 1u << 20;
	CU_ASSERT(net_refused(&o));
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "window"));
	if (!strcmp(cfg->backend, "udp")) {
		o = good;
		gx_transport_opts_set(&o, "udp-ip", "300.1.2.3");
		CU_ASSERT(net_refused(&o));
		CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "300.1.2.3"));
	}
	fprintf(stderr, "(expected) %s\n", gx_last_error());
}

/* ---- main ----------------------------------------------------------------------------------- */

static CU_TestInfo cases[] = {
	{ "clear errors (unknown transport, bad options)", test_clear_errors },
	{ "exact delivery, 1 byte .. max, both directions", test_exact_delivery },
	{ "5% drop, 5% reorder, 1% duplicate via fault hooks", test_fault_hooks },
	{ "fault hooks with 300 us receive delay", test_fault_hooks_delay },
	{ "sequence numbers wrapping past 2^32, with the fault hooks", test_psn_wrap },
	{ "garbage and foreign frames during a transfer", test_garbage },
	{ "killed peer named while sending to it", test_killed_peer_sending },
	{ "killed peer named while waiting for it (heartbeats keep an idle peer alive)", test_killed_peer_waiting },
	{ "ABORT fails the peer fast", test_abort },
	{ "udp --mtu auto: the interface's MTU, the smaller of two ranks", test_exact_auto },
	{ "SIGINT: the rank stops, its peer is told why", test_interrupt },
	CU_TEST_INFO_NULL,
};

static int suite_init(void)
{
	if (cfg->setup)
		cfg->setup(cfg);
	return 0;
}

static int suite_clean(void)
{
	if (cfg->teardown)
		cfg->teardown(cfg);
	return 0;
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : getenv("GX_TEST_TRANSPORT");
	const char *only = getenv("GX_TEST_CASE");  /* run only the cases whose name contains this */
	size_t nconf = sizeof(configs) / sizeof(configs[0]);

	if (only) {
		size_t k = 0;
		for (size_t i = 0; cases[i].pName; i++)
			if (strstr(cases[i].pName, only))
				cases[k++] = cases[i];
		cases[k] = (CU_TestInfo)CU_TEST_INFO_NULL;
	}

	for (size_t i = 0; name && i < nconf; i++)
		if (!strcmp(configs[i].name, name))
			cfg = &configs[i];
	if (!cfg) {
		fprintf(stderr, "usage: test_transport CONFIG (or GX_TEST_TRANSPORT=CONFIG)%s%s\nconfigurations:\n",
			name ? "; unknown configuration " : "", name ? name : "");
		for (size_t i = 0; i < nconf; i++)
			fprintf(stderr, "  %-16s %s\n", configs[i].name, configs[i].what);
		return 2;
	}
	/* The suite's setup may skip (exit 77) before CUnit runs, e.g. without root. */
	suite_init();
	CU_SuiteInfo suites[] = {
		{ cfg->name, NULL, suite_clean, NULL, NULL, cases },
		CU_SUITE_INFO_NULL,
	};
	signal(SIGPIPE, SIG_IGN);
	return gx_test_main(suites);
}
