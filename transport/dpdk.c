/* dpdk.c: the "dpdk" backend: one DPDK ethdev port, one RX and one TX queue, Ethernet/IPv4/UDP
 * frames carrying struct gx_hdr + payload.
 *
 * Works on real NICs (vfio-pci or bifurcated mlx5) and on DPDK's virtual devices: net_af_packet
 * (a kernel interface, e.g. a veth in a namespace), net_memif (shared memory between processes),
 * net_tap and net_af_xdp.  docs/dpdk.md explains set-up, every start-up error and the traps.
 *
 * The EAL is process-wide: the first open runs rte_eal_init() with the dpdk-eal setting; later opens in
 * the same process share it and only probe --vdev devices that are not there yet.  The hot path
 * (tx_burst, rx_burst, rx_release) makes no syscall of its own, takes no lock and allocates only
 * mbufs from the port's mempool.  On af_packet and memif (copy mode), whose PMDs copy each frame
 * into their ring inside tx_burst, datagrams of 512 bytes or more (memif: 2048) leave as an
 * external buffer chained behind a header mbuf, so the PMD's copy is the only one (zero copy,
 * dp_tx_burst).
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_udp.h>

#include "gx_backend.h"
#include "gx_log.h"
#include "gx_time.h"

#define DP_L2L4_LEN (RTE_ETHER_HDR_LEN + sizeof(struct rte_ipv4_hdr) + sizeof(struct rte_udp_hdr))
#define DP_DEFAULT_UDP_PORT 22631u       /* 0x5867, "gX" */
#define DP_BURST 64u                     /* largest burst handed to the PMD at once */
#define DP_NB_RXD 1024u
#define DP_NB_TXD 1024u
#define DP_POOL_CACHE 256u
#define DP_POOL_INFLIGHT_CAP 16384u      /* cap on the window x peers share of the mempool */
#define DP_TX_RETRIES 32u                /* bounded: memif returns 0 forever while its peer is gone */
#define DP_ADDR_MAGIC 0x50445847u        /* "GXDP" */
#define DP_AFP_FRAME_OVERHEAD 52u        /* af_packet: framesz must be >= frame + this (docs/dpdk.md) */
#define DP_START_MIN_MS 5000u           /* memif client: shortest wait for its server */
#define DP_ZC_MIN_LEN 512u               /* smaller datagrams are copied: a 2-segment chain costs more */
#define DP_ZC_MIN_LEN_MEMIF 2048u        /* memif: a 1500-MTU frame is cheaper as one copied segment */

extern const struct gx_backend_ops gx_dpdk_ops;   /* listed by backend.c's registry */

/* Address blob exchanged through the rendezvous. */
struct dp_addr {
	uint32_t magic;
	uint32_t rank;
	uint8_t mac[RTE_ETHER_ADDR_LEN];
	uint16_t udp_port;               /* network order */
	uint32_t ip;                     /* network order */
};
_Static_assert(sizeof(struct dp_addr) <= GX_ADDR_MAX, "dpdk address blob fits GX_ADDR_MAX");

/* Prebuilt Ethernet + IPv4 + UDP header towards one peer; tx fills in lengths and checksums. */
struct dp_peer {
	uint8_t hdr[DP_L2L4_LEN];
	uint32_t ip_sum;                 /* raw sum of hdr's IPv4 header (lengths, id, checksum 0) */
	uint8_t known;
	uint32_t ip;                     /* network order, for rx source checks */
	uint16_t udp_port;               /* network order */
};

struct dp_backend {
	struct gx_backend base;
	uint16_t port;
	uint16_t udp_port;               /* network order */
	uint32_t ip;                     /* network order */
	uint32_t mtu;
	uint32_t max_msg;
	bool tx_ip_cksum, tx_udp_cksum;  /* offloads the port reports and we enabled */
	bool rx_cksum;                   /* rx checksum flags are meaningful */
	bool is_vdev;
	bool tx_zc;                      /* send datagrams as an external buffer (no copy of ours) */
	uint32_t zc_min_len;             /* tx_zc: only for datagrams of at least this many bytes */
	struct rte_mbuf_ext_shared_info zc_shinfo;  /* one for every zero-copy mbuf; never freed */
	struct rte_ether_addr mac;
	struct rte_mempool *pool;
	struct dp_peer *peers;
	struct gx_backend_counters c;
	uint64_t tx_dropped;             /* oversized or unroutable: a caller bug, reported at close */
	uint16_t ip_id;
	char name[RTE_ETH_NAME_MAX_LEN];
	char driver[64];
};

/* ---------------------------------------------------------------------------------------------
 * EAL: once per process.
 */
static pthread_mutex_t eal_lock = PTHREAD_MUTEX_INITIALIZER;
static bool eal_ready;
static char eal_args_used[1024];
static bool port_taken[RTE_MAX_ETHPORTS];
static unsigned pool_seq;

/* Split a command line into words: whitespace separates, '...' and "..." quote, \ escapes.
 * Returns the number of words (<= max) or -1 on an unterminated quote; words point into buf. */
static int split_args(const char *s, char *buf, size_t buflen, char **words, int max)
{
	size_t o = 0;
	int n = 0;

	while (*s) {
		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		if (n == max || o >= buflen)
			return -1;
		words[n++] = buf + o;
		char q = 0;
		while (*s && (q || !isspace((unsigned char)*s))) {
			if (q && *s == q) {
				q = 0;
				s++;
				continue;
			}
			if (!q && (*s == '\'' || *s == '"')) {
				q = *s++;
				continue;
			}
			if (*s == '\\' && s[1] && q != '\'')
				s++;
			if (o + 1 >= buflen)
				return -1;
			buf[o++] = *s++;
		}
		if (q)
			return -1;
		buf[o++] = '\0';
	}
	return n;
}

static bool has_lcore_arg(char **w, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(w[i], "-l") || !strcmp(w[i], "-c") || !strncmp(w[i], "--lcores", 8) ||
		    (w[i][0] == '-' && (w[i][1] == 'l' || w[i][1] == 'c') && w[i][2] && w[i][1] != '-'))
			return true;
	return false;
}

/* "--lcores=0@(a,b,...)": one EAL lcore bound to the cpus this thread may already run on, so the
 * EAL neither re-pins the caller (taskset, gx's engine pinning) nor starts idle worker threads. */
static void lcores_from_affinity(char *out, size_t len)
{
	cpu_set_t set;
	size_t o;

	o = (size_t)snprintf(out, len, "--lcores=0@(");
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		bool first = true;
		for (int c = 0; c < CPU_SETSIZE && o + 8 < len; c++)
			if (CPU_ISSET(c, &set)) {
				o += (size_t)snprintf(out + o, len - o, "%s%d", first ? "" : ",", c);
				first = false;
			}
		if (first)
			o += (size_t)snprintf(out + o, len - o, "0");
	} else {
		o += (size_t)snprintf(out + o, len - o, "0");
	}
	snprintf(out + o, len - o, ")");
}

/* The vdev name is the devargs up to the first ','. */
static void vdev_name(const char *devargs, char *name, size_t len)
{
	size_t i = 0;

	while (devargs[i] && devargs[i] != ',' && i + 1 < len) {
		name[i] = devargs[i];
		i++;
	}
	name[i] = '\0';
}

static void memif_clear_stale_socket(const char *devargs);

/* Probe --vdev devices of `args` that this process does not have yet (a later gx_net in a process
 * whose EAL is already up, or a device removed by an earlier close). */
static gx_status_t probe_missing_vdevs(char **w, int n)
{
	for (int i = 0; i < n; i++) {
		const char *dev = NULL;
		if (!strncmp(w[i], "--vdev=", 7))
			dev = w[i] + 7;
		else if (!strcmp(w[i], "--vdev") && i + 1 < n)
			dev = w[++i];
		if (!dev)
			continue;
		char name[RTE_DEV_NAME_MAX_LEN];
		uint16_t pid;
		vdev_name(dev, name, sizeof(name));
		if (rte_eth_dev_get_port_by_name(name, &pid) == 0)
			continue;
		memif_clear_stale_socket(dev);
		int rc = rte_dev_probe(dev);
		if (rc < 0 && rc != -EEXIST)
			return gx_error(GX_ERR_NODEV,
					"dpdk: could not probe '%s' (%s) in a process whose EAL is already up "
					"(EAL arguments were '%s'); check the device arguments, see docs/dpdk.md",
					dev, strerror(-rc), eal_args_used);
	}
	return GX_OK;
}

static bool devarg_str(const char *args, const char *key, char *out, size_t len);

/* A memif server cannot bind a socket file a killed server left behind ("Address already in
 * use", and the vdev silently fails to probe): remove such a file when nobody listens on it. */
static void memif_clear_stale_socket(const char *devargs)
{
	char role[16] = "server", abstract[8] = "yes", path[108];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strncmp(devargs, "net_memif", 9) != 0)
		return;
	const char *args = strchr(devargs, ',');
	if (!args)
		return;
	devarg_str(args + 1, "role", role, sizeof(role));
	devarg_str(args + 1, "socket-abstract", abstract, sizeof(abstract));
	if ((strcmp(role, "server") && strcmp(role, "master")) || strcmp(abstract, "no") ||
	    !devarg_str(args + 1, "socket", path, sizeof(path)))
		return;
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
		return;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (fd < 0)
		return;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno == ECONNREFUSED) {
		gx_log(GX_LOG_WARN, "dpdk", "removing stale memif socket %s (no server listens on it)", path);
		unlink(path);
	}
	close(fd);
}

static void clear_stale_sockets(char **w, int n)
{
	for (int i = 0; i < n; i++) {
		if (!strncmp(w[i], "--vdev=", 7))
			memif_clear_stale_socket(w[i] + 7);
		else if (!strcmp(w[i], "--vdev") && i + 1 < n)
			memif_clear_stale_socket(w[++i]);
	}
}

static gx_status_t eal_init(const char *args)
{
	static char buf[4096];
	static char lcores[512];
	static char *argv[256];
	char *words[240];
	gx_status_t st = GX_OK;
	int n, argc = 0;

	if (!args)
		args = "";
	pthread_mutex_lock(&eal_lock);
	if (eal_ready) {
		char wbuf[4096];
		n = split_args(args, wbuf, sizeof(wbuf), words, 240);
		if (n > 0)
			st = probe_missing_vdevs(words, n);
		pthread_mutex_unlock(&eal_lock);
		return st;
	}
	n = split_args(args, buf, sizeof(buf), words, 240);
	if (n < 0) {
		st = gx_error(GX_ERR_INVAL, "dpdk: cannot split EAL arguments '%s' (unterminated quote or "
			      "too long); see docs/dpdk.md", args);
		goto out;
	}
	argv[argc++] = "gx";
	argv[argc++] = "--log-level=notice";   /* EAL start-up chatter off; the user's --log-level wins */
	if (!has_lcore_arg(words, n)) {
		lcores_from_affinity(lcores, sizeof(lcores));
		argv[argc++] = lcores;
	}
	for (int i = 0; i < n; i++)
		argv[argc++] = words[i];
	argv[argc] = NULL;
	snprintf(eal_args_used, sizeof(eal_args_used), "%s", args);
	clear_stale_sockets(words, n);

	/* rte_eal_init permutes argv; our copies live in static storage for the process lifetime
	 * because some PMDs keep pointers into devargs strings. */
	/* EAL prints its usage text to stdout on a bad argument: keep stdout for the caller's
	 * output (gx-bench's CSV) by sending it to stderr while the EAL starts. */
	fflush(stdout);
	int saved_stdout = dup(STDOUT_FILENO);
	if (saved_stdout >= 0)
		dup2(STDERR_FILENO, STDOUT_FILENO);
	int rc = rte_eal_init(argc, argv);
	fflush(stdout);
	if (saved_stdout >= 0) {
		dup2(saved_stdout, STDOUT_FILENO);
		close(saved_stdout);
	}
	if (rc < 0) {
		int e = rte_errno;
		if (e == EALREADY) {
			/* Someone else in this process initialised the EAL: share it. */
			eal_ready = true;
			st = probe_missing_vdevs(words, n);
			goto out;
		}
		st = gx_error(GX_ERR_INVAL,
			      "dpdk: rte_eal_init failed (%s) with EAL arguments '%s': fix the argument "
			      "DPDK complains about above; without hugepages use '--no-huge --no-shconf', "
			      "with 2 MiB hugepages '--in-memory'; run scripts/gx-dpdk-preflight and see "
			      "docs/dpdk.md (start-up errors)",
			      e == EINVAL ? "invalid argument" : rte_strerror(e), args);
		goto out;
	}
	eal_ready = true;
out:
	pthread_mutex_unlock(&eal_lock);
	return st;
}

/* ---------------------------------------------------------------------------------------------
 * Port selection and set-up.
 */
static void list_ports(char *out, size_t len)
{
	uint16_t pid;
	size_t o = 0;

	out[0] = '\0';
	RTE_ETH_FOREACH_DEV(pid) {
		char name[RTE_ETH_NAME_MAX_LEN];
		struct rte_eth_dev_info info;
		if (rte_eth_dev_get_name_by_port(pid, name) != 0 || rte_eth_dev_info_get(pid, &info) != 0)
			continue;
		o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%s (%s%s)", o ? ", " : "", name,
				      info.driver_name, port_taken[pid] ? ", in use" : "");
		if (o >= len)
			break;
	}
	if (!out[0])
		snprintf(out, len, "none");
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static gx_status_t pick_port(const char *want, uint16_t *port)
{
	char ports[512];

	if (rte_eth_dev_count_avail() == 0)
		return gx_error(GX_ERR_NODEV,
				"dpdk: DPDK sees no port with EAL arguments '%s'%s%s: a --vdev that fails to "
				"probe does not fail EAL start-up (look above for the driver's message: wrong "
				"iface=, missing memif socket directory, no CAP_NET_RAW), and a NIC must be "
				"bound to vfio-pci or use a bifurcated driver (mlx5); run "
				"scripts/gx-dpdk-preflight and see docs/dpdk.md",
				eal_args_used, want && *want ? ", wanted port " : "", want ? want : "");
	if (want && *want) {
		uint16_t pid;
		if (rte_eth_dev_get_port_by_name(want, &pid) != 0) {
			if (all_digits(want) && atoi(want) < RTE_MAX_ETHPORTS &&
			    rte_eth_dev_is_valid_port((uint16_t)atoi(want)))
				pid = (uint16_t)atoi(want);
			else {
				list_ports(ports, sizeof(ports));
				return gx_error(GX_ERR_NODEV,
						"dpdk: no port named '%s' (DPDK sees: %s); name a port by PCI "
						"address (bound with dpdk-devbind.py, see docs/dpdk.md) or by "
						"virtual device name, and add the device to --dpdk-eal "
						"(e.g. --vdev=net_memif0,...)", want, ports);
			}
		}
		if (port_taken[pid])
			return gx_error(GX_ERR_INVAL, "dpdk: port '%s' is already used by another gx_net "
					"in this process: give each one its own --dpdk-port", want);
		*port = pid;
		return GX_OK;
	}
	uint16_t pid;
	RTE_ETH_FOREACH_DEV(pid) {
		if (!port_taken[pid]) {
			*port = pid;
			return GX_OK;
		}
	}
	list_ports(ports, sizeof(ports));
	return gx_error(GX_ERR_NODEV, "dpdk: every port is already in use in this process (%s): add a "
			"device to --dpdk-eal and name it with --dpdk-port", ports);
}

/* Value of key=... in a device's devargs ("iface=veth0,framesz=2048"), or `def`. */
static unsigned long devarg_ulong(const char *args, const char *key, unsigned long def)
{
	size_t kl = strlen(key);

	for (const char *p = args; p && *p;) {
		if (!strncmp(p, key, kl) && p[kl] == '=')
			return strtoul(p + kl + 1, NULL, 0);
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return def;
}

static bool devarg_str(const char *args, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);

	for (const char *p = args; p && *p;) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			size_t i = 0;
			p += kl + 1;
			while (p[i] && p[i] != ',' && i + 1 < len) {
				out[i] = p[i];
				i++;
			}
			out[i] = '\0';
			return true;
		}
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return false;
}

static const char *port_devargs(uint16_t port)
{
	struct rte_eth_dev_info info;

	if (rte_eth_dev_info_get(port, &info) != 0 || !info.device)
		return "";
	const struct rte_devargs *da = rte_dev_devargs(info.device);
	return da && da->args ? da->args : "";
}

static bool memif_is_client(const char *args)
{
	char role[16] = "server";

	devarg_str(args, "role", role, sizeof(role));
	return !strcmp(role, "client") || !strcmp(role, "slave");
}

/* memif client: rte_eth_dev_start fails when the server's socket is not there yet, so wait (bounded)
 * for a file-system socket before starting. */
static gx_status_t memif_wait_server(struct dp_backend *d, const char *args, uint32_t timeout_ms)
{
	char sock[256], abstract[8] = "yes";

	if (!memif_is_client(args))
		return GX_OK;
	devarg_str(args, "socket-abstract", abstract, sizeof(abstract));
	if (!devarg_str(args, "socket", sock, sizeof(sock)) || strcmp(abstract, "no"))
		return GX_OK;   /* abstract socket: nothing to stat, start is retried instead */
	uint64_t deadline = gx_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct stat stt;
	while (stat(sock, &stt) != 0 || !S_ISSOCK(stt.st_mode)) {
		if (gx_now_ns() > deadline)
			return gx_error(GX_ERR_TIMEOUT,
					"dpdk: memif client port '%s' waited %u ms for the server's socket %s: "
					"start the server (role=server, same socket=) first, see docs/dpdk.md",
					d->name, timeout_ms, sock);
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return GX_OK;
}

#define MEMIF_LINK_WAIT_MS 1000u

static bool memif_link_up(uint16_t port, uint32_t wait_ms)
{
	uint64_t until = gx_now_ns() + (uint64_t)wait_ms * 1000000ull;

	do {
		struct rte_eth_link link;
		if (rte_eth_link_get_nowait(port, &link) == 0 && link.link_status == RTE_ETH_LINK_UP)
			return true;
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	} while (gx_now_ns() < until);
	return false;
}

static void build_peer_hdr(struct dp_backend *d, struct dp_peer *p, const struct dp_addr *a)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)p->hdr;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

	memset(p->hdr, 0, sizeof(p->hdr));
	memcpy(eth->dst_addr.addr_bytes, a->mac, RTE_ETHER_ADDR_LEN);
	rte_ether_addr_copy(&d->mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = d->ip;
	ip->dst_addr = a->ip;
	udp->src_port = d->udp_port;
	udp->dst_port = a->udp_port;
	p->ip_sum = rte_raw_cksum(ip, sizeof(*ip));
	p->ip = a->ip;
	p->udp_port = a->udp_port;
	p->known = 1;
}

static gx_status_t parse_ipv4(const char *s, uint32_t *out)
{
	unsigned a, b, c, e;
	char extra;

	if (sscanf(s, "%u.%u.%u.%u%c", &a, &b, &c, &e, &extra) != 4 || a > 255 || b > 255 || c > 255 ||
	    e > 255)
		return gx_error(GX_ERR_INVAL, "dpdk: --dpdk-ip '%s' is not an IPv4 address (a.b.c.d)", s);
	*out = rte_cpu_to_be_32((a << 24) | (b << 16) | (c << 8) | e);
	return GX_OK;
}

static void dp_destroy(struct gx_backend *b);

static void dp_zc_free(void *addr, void *opaque)
{
	(void)addr;
	(void)opaque;           /* the buffers belong to the net's send ring */
}

struct dp_settings {
	const char *eal, *port, *ip;
	uint16_t udp_port;
};

static const struct gx_option dp_opts[] = {
	{ "dpdk-eal", GX_OPT_STR, offsetof(struct dp_settings, eal), "",
	  "dpdk: EAL arguments, space separated (e.g. \"--no-huge --no-shconf --vdev=net_memif0\")", NULL, NULL },
	{ "dpdk-port", GX_OPT_STR, offsetof(struct dp_settings, port), "",
	  "dpdk: port by PCI address or device name (empty: the first free port)", NULL, NULL },
	{ "dpdk-ip", GX_OPT_STR, offsetof(struct dp_settings, ip), "",
	  "dpdk: source IPv4 address (empty: 10.0.0.<rank+1>)", NULL, NULL },
	{ "udp-port", GX_OPT_U16, offsetof(struct dp_settings, udp_port), "0",
	  "udp: local port (0 = ephemeral); dpdk: the UDP port of its frames (0 = 4791)", NULL, NULL },
};

static const struct gx_option_table dp_table = {
	"dpdk", dp_opts, sizeof(dp_opts) / sizeof(dp_opts[0]), sizeof(struct dp_settings)
};

/* A NIC's PCI address, or the kernel interface behind net_af_packet / net_af_xdp (iface=). */
static gx_status_t dp_device(struct gx_backend *b, char *name, size_t len, int *is_pci)
{
	struct dp_backend *d = (struct dp_backend *)b;
	unsigned dom, bus, dev, fn;

	*is_pci = 0;
	if (!d->is_vdev && sscanf(d->name, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) == 4) {
		snprintf(name, len, "%s", d->name);
		*is_pci = 1;
		return GX_OK;
	}
	if (devarg_str(port_devargs(d->port), "iface", name, len))
		return GX_OK;
	return gx_error(GX_ERR_NODEV, "dpdk: port '%s' (%s) has no PCI device or kernel interface",
			d->name, d->driver);
}

static gx_status_t dp_create(const struct gx_transport_opts *o, struct gx_backend **out)
{
	struct dp_settings set;
	gx_status_t st;
	struct dp_backend *d;
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf;
	char why[256];
	int rc;

	if ((st = gx_backend_settings(&dp_table, o, &set)) < 0)
		return st;
	if (o->nranks == 0 || o->nranks > GX_MAX_RANKS || o->rank >= o->nranks)
		return gx_error(GX_ERR_INVAL, "dpdk: rank %u of %u is out of range (1..%u ranks)", o->rank,
			 o->nranks, GX_MAX_RANKS);
	/* Options that size the mempool are checked before the EAL starts (it cannot be undone). */
	if (o->window > 32768)
		return gx_error(GX_ERR_INVAL, "dpdk: window %u too large (at most 32768 packets)", o->window);
	uint32_t mtu = o->mtu ? o->mtu : 1500;   /* auto: Ethernet's */
	if (mtu < 576 || mtu > 9600)
		return gx_error(GX_ERR_INVAL, "dpdk: MTU %u is out of range (576..9600)", mtu);
	uint32_t ip = 0;
	if (*set.ip && (st = parse_ipv4(set.ip, &ip)) < 0)
		return st;
	if ((st = eal_init(set.eal)) < 0)
		return st;
	d = calloc(1, sizeof(*d));
	if (!d || !(d->peers = calloc(o->nranks, sizeof(*d->peers)))) {
		free(d);
		return gx_error(GX_ERR_NOMEM, "dpdk: out of memory for %u peers", o->nranks);
	}
	d->base.ops = &gx_dpdk_ops;
	d->base.rank = o->rank;
	d->base.nranks = o->nranks;
	d->port = RTE_MAX_ETHPORTS;

	pthread_mutex_lock(&eal_lock);
	st = pick_port(*set.port ? set.port : NULL, &d->port);
	if (st == GX_OK)
		port_taken[d->port] = true;
	pthread_mutex_unlock(&eal_lock);
	if (st < 0) {
		d->port = RTE_MAX_ETHPORTS;
		goto fail;
	}
	rte_eth_dev_get_name_by_port(d->port, d->name);
	if ((rc = rte_eth_dev_info_get(d->port, &info)) != 0) {
		st = gx_error(GX_ERR_IO, "dpdk: port '%s': rte_eth_dev_info_get: %s", d->name, strerror(-rc));
		goto fail;
	}
	snprintf(d->driver, sizeof(d->driver), "%s", info.driver_name ? info.driver_name : "?");
	d->is_vdev = info.device && !strcmp(rte_bus_name(rte_dev_bus(info.device)), "vdev");
	const char *args = port_devargs(d->port);
	bool afp = !strcmp(d->driver, "net_af_packet");
	bool memif = !strcmp(d->driver, "net_memif");

	/* Addresses. */
	d->mtu = mtu;
	d->max_msg = d->mtu - (uint32_t)(sizeof(struct rte_ipv4_hdr) + sizeof(struct rte_udp_hdr));
	if (d->max_msg > UINT16_MAX - sizeof(struct gx_hdr))
		d->max_msg = UINT16_MAX - sizeof(struct gx_hdr);
	d->udp_port = rte_cpu_to_be_16(set.udp_port ? set.udp_port : DP_DEFAULT_UDP_PORT);
	if (*set.ip) {
		d->ip = ip;
	} else {
		uint32_t h = o->rank + 1;
		d->ip = rte_cpu_to_be_32((10u << 24) | (((h >> 16) & 0xffu) << 16) |
					 (((h >> 8) & 0xffu) << 8) | (h & 0xffu));
	}
	rte_eth_macaddr_get(d->port, &d->mac);

	/* Frame and buffer sizes; catch the virtual devices' silent traps (docs/dpdk.md) here. */
	uint32_t frame = d->mtu + RTE_ETHER_HDR_LEN;
	uint32_t room = frame + RTE_ETHER_CRC_LEN;
	if (afp) {
		unsigned long framesz = devarg_ulong(args, "framesz", 2048);
		unsigned long blocksz = devarg_ulong(args, "blocksz", 4096);
		if (framesz < frame + DP_AFP_FRAME_OVERHEAD || blocksz % framesz) {
			st = gx_error(GX_ERR_INVAL,
				 "dpdk: port '%s' (net_af_packet) has framesz=%lu blocksz=%lu, too small or "
				 "not a divisor for MTU %u (the ring would silently stall): use framesz >= %u "
				 "and blocksz a multiple of it, e.g. framesz=%u,blocksz=%u; see docs/dpdk.md",
				 d->name, framesz, blocksz, d->mtu, frame + DP_AFP_FRAME_OVERHEAD,
				 frame + DP_AFP_FRAME_OVERHEAD <= 2048 ? 2048 : 10240,
				 frame + DP_AFP_FRAME_OVERHEAD <= 2048 ? 4096 : 20480);
			goto fail;
		}
		if (room < framesz)
			room = (uint32_t)framesz;   /* the PMD refuses mbufs smaller than its frames */
	}
	if (memif) {
		unsigned long bsize = devarg_ulong(args, "bsize", 2048);
		if (bsize < frame) {
			st = gx_error(GX_ERR_INVAL,
				 "dpdk: port '%s' (net_memif) has bsize=%lu < %u-byte frames for MTU %u "
				 "(jumbo frames get corrupted under load): add bsize=%u to its --vdev on both "
				 "sides; see docs/dpdk.md", d->name, bsize, frame, d->mtu,
				 frame <= 2048 ? 2048 : 10240);
			goto fail;
		}
	}
	if (room < RTE_MBUF_DEFAULT_DATAROOM)
		room = RTE_MBUF_DEFAULT_DATAROOM;
	room = (room + 127u) & ~127u;
	uint32_t data_room = room + RTE_PKTMBUF_HEADROOM;
	if (data_room > UINT16_MAX) {
		st = gx_error(GX_ERR_INVAL, "dpdk: port '%s': %u-byte buffers exceed DPDK's mbuf limit",
			 d->name, data_room);
		goto fail;
	}

	/* Port configuration: offloads only when reported. */
	memset(&conf, 0, sizeof(conf));
	uint32_t port_mtu = d->mtu;
	if (frame + RTE_ETHER_CRC_LEN > info.max_rx_pktlen || d->mtu > info.max_mtu) {
		if (!afp && !memif) {
			st = gx_error(GX_ERR_INVAL, "dpdk: port '%s' (%s) takes frames up to %u bytes (MTU %u); "
				 "MTU %u does not fit: lower --mtu or enable jumbo frames on the device, see "
				 "docs/dpdk.md", d->name, d->driver, info.max_rx_pktlen, info.max_mtu, d->mtu);
			goto fail;
		}
		/* af_packet and memif report a 1518-byte limit yet carry anything up to framesz (the
		 * kernel interface's MTU governs) or bsize: configure the ethdev with the standard MTU,
		 * the frame sizes were checked against those device arguments above. */
		port_mtu = RTE_ETHER_MTU;
	}
	conf.rxmode.mtu = port_mtu;
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) {
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
		d->tx_ip_cksum = true;
	}
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) {
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
		d->tx_udp_cksum = true;
	}
	/* Zero-copy transmit where the PMD copies the frame inside tx_burst (see dp_tx_burst); memif
	 * with zero-copy=yes keeps the mbufs, so it gets copies. */
	char zcarg[8] = "no";
	if (memif)
		devarg_str(args, "zero-copy", zcarg, sizeof(zcarg));
	if ((afp || (memif && strcmp(zcarg, "yes"))) &&
	    (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)) {
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
		d->tx_zc = true;
		/* memif copies each segment into its ring: for frames up to MTU 1500 the second segment
		 * (and the chain's atomic refcount) cost more than our own copy into one mbuf. */
		d->zc_min_len = memif ? DP_ZC_MIN_LEN_MEMIF : DP_ZC_MIN_LEN;
		d->zc_shinfo.free_cb = dp_zc_free;
		d->zc_shinfo.fcb_opaque = NULL;
		rte_mbuf_ext_refcnt_set(&d->zc_shinfo, 1);
	} else if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE) {
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
	}
	if ((info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) &&
	    (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_UDP_CKSUM)) {
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
		d->rx_cksum = true;
	}
	if ((rc = rte_eth_dev_configure(d->port, 1, 1, &conf)) != 0) {
		st = gx_error(GX_ERR_IO, "dpdk: port '%s' (%s): rte_eth_dev_configure (1 rx + 1 tx queue, "
			 "MTU %u): %s; see docs/dpdk.md", d->name, d->driver, port_mtu, strerror(-rc));
		goto fail;
	}
	uint16_t nb_rxd = DP_NB_RXD, nb_txd = DP_NB_TXD;
	rte_eth_dev_adjust_nb_rx_tx_desc(d->port, &nb_rxd, &nb_txd);

	/* Mempool: packets the peers may have in flight towards us, plus the rings and caches. */
	uint32_t peers = o->nranks > 1 ? o->nranks - 1 : 1;
	uint32_t window = o->window;
	uint64_t inflight = (uint64_t)window * peers;
	if (inflight > DP_POOL_INFLIGHT_CAP)
		inflight = DP_POOL_INFLIGHT_CAP;
	uint64_t nmbufs = inflight + nb_rxd + nb_txd + 3u * DP_BURST +   /* zero copy: 2 per frame */
			  (uint64_t)DP_POOL_CACHE * (rte_lcore_count() + 1);
	unsigned pool_n = 1;
	while (pool_n - 1 < nmbufs)
		pool_n <<= 1;
	pool_n -= 1;                       /* 2^k - 1 is the mempool's best size */
	struct rte_mempool_objsz objsz;
	uint32_t obj = rte_mempool_calc_obj_size((uint32_t)sizeof(struct rte_mbuf) + data_room, 0,
						 &objsz);
	double mib = (double)pool_n * obj / (1024.0 * 1024.0);
	gx_log(GX_LOG_INFO, "dpdk", "rank %u port %s (%s) MTU %u: mempool %u mbufs x %u B = %.1f MiB "
		"(window %u x %u peers%s + %u rx + %u tx descriptors + caches); offloads: tx ip %s, "
		"tx udp %s; tx zero copy %s", o->rank, d->name, d->driver, d->mtu, pool_n, obj, mib, window,
		peers, (uint64_t)window * peers > DP_POOL_INFLIGHT_CAP ? " (capped)" : "", nb_rxd, nb_txd,
		d->tx_ip_cksum ? "on" : "off", d->tx_udp_cksum ? "on" : "off", d->tx_zc ? "on" : "off");
	char pname[RTE_MEMPOOL_NAMESIZE];
	pthread_mutex_lock(&eal_lock);
	snprintf(pname, sizeof(pname), "gx_dp%u_%u", d->port, pool_seq++);
	pthread_mutex_unlock(&eal_lock);
	int sock = rte_eth_dev_socket_id(d->port);
	d->pool = rte_pktmbuf_pool_create(pname, pool_n, DP_POOL_CACHE, 0, (uint16_t)data_room,
					  sock < 0 ? (int)SOCKET_ID_ANY : sock);
	if (!d->pool) {
		st = gx_error(GX_ERR_NOMEM,
			 "dpdk: port '%s': cannot allocate the %.1f MiB mempool (%s): with --no-huge give "
			 "the EAL more memory (-m %u), with hugepages reserve more (echo N > "
			 "/proc/sys/vm/nr_hugepages), or lower --window; see docs/dpdk.md", d->name, mib,
			 rte_strerror(rte_errno), (unsigned)(mib * 2 + 64));
		goto fail;
	}
	if ((rc = rte_eth_rx_queue_setup(d->port, 0, nb_rxd, (unsigned)rte_eth_dev_socket_id(d->port),
					 NULL, d->pool)) != 0) {
		st = gx_error(GX_ERR_IO, "dpdk: port '%s' (%s): rx queue set-up: %s%s; see docs/dpdk.md",
			 d->name, d->driver, strerror(-rc),
			 afp ? " (af_packet: mbufs must hold framesz)" : "");
		goto fail;
	}
	struct rte_eth_txconf txconf = info.default_txconf;
	txconf.offloads = conf.txmode.offloads;
	if ((rc = rte_eth_tx_queue_setup(d->port, 0, nb_txd, (unsigned)rte_eth_dev_socket_id(d->port),
					 &txconf)) != 0) {
		st = gx_error(GX_ERR_IO, "dpdk: port '%s' (%s): tx queue set-up: %s; see docs/dpdk.md",
			 d->name, d->driver, strerror(-rc));
		goto fail;
	}
	/* How long a memif client waits for its server: the peer timeout, but never so short that
	 * two processes started together miss each other. */
	uint32_t start_ms = o->peer_timeout_ms > DP_START_MIN_MS ? o->peer_timeout_ms : DP_START_MIN_MS;
	if (memif && (st = memif_wait_server(d, args, start_ms)) < 0)
		goto fail;
	/* A memif client whose server is not listening yet fails to start, and one that connects
	 * while the server is still setting up its port can be left with a link that never comes
	 * up: start, wait for the link, and stop and start again if it stays down (bounded). */
	uint64_t deadline = gx_now_ns() + (uint64_t)start_ms * 1000000ull;
	bool client = memif && memif_is_client(args);
	for (unsigned attempt = 0;; attempt++) {
		rc = rte_eth_dev_start(d->port);
		if (rc == 0 && (!client || memif_link_up(d->port, MEMIF_LINK_WAIT_MS)))
			break;
		if (!memif || gx_now_ns() > deadline) {
			if (rc == 0) {
				rte_eth_dev_stop(d->port);
				st = gx_error(GX_ERR_TIMEOUT, "dpdk: memif client port '%s' started but its link did "
					 "not come up in %u ms (%u attempts): is a server (role=server) with the "
					 "same socket= running and polling? see docs/dpdk.md", d->name, start_ms,
					 attempt + 1);
				goto fail;
			}
			snprintf(why, sizeof(why), "%s", memif ? "; memif: is the server (role=server, same "
				 "socket=) running, and was it started first?" : "");
			st = gx_error(GX_ERR_IO, "dpdk: port '%s' (%s): rte_eth_dev_start: %s%s; see docs/dpdk.md",
				 d->name, d->driver, strerror(-rc), why);
			goto fail;
		}
		if (rc == 0)
			rte_eth_dev_stop(d->port);
		struct timespec ts = { 0, 100 * 1000 * 1000 };   /* the PMD logs every failed try */
		nanosleep(&ts, NULL);
	}
	/* Unicast to our own MAC only; af_packet and memif ignore this, NICs honour it. */
	rte_eth_promiscuous_disable(d->port);
	*out = &d->base;
	return GX_OK;
fail:
	dp_destroy(&d->base);
	return st;
}

/* ---------------------------------------------------------------------------------------------
 * Addresses.
 */
static gx_status_t dp_local_addr(struct gx_backend *b, void *blob, size_t *len)
{
	struct dp_backend *d = (struct dp_backend *)b;
	struct dp_addr a = {
		.magic = DP_ADDR_MAGIC,
		.rank = b->rank,
		.udp_port = d->udp_port,
		.ip = d->ip,
	};

	if (*len < sizeof(a))
		return gx_error(GX_ERR_NOSPC, "dpdk: address blob needs %zu bytes, got %zu", sizeof(a),
				*len);
	memcpy(a.mac, d->mac.addr_bytes, RTE_ETHER_ADDR_LEN);
	memcpy(blob, &a, sizeof(a));
	*len = sizeof(a);
	return GX_OK;
}

static gx_status_t dp_connect(struct gx_backend *b, uint32_t peer, const void *blob, size_t len)
{
	struct dp_backend *d = (struct dp_backend *)b;
	struct dp_addr a;

	if (peer >= b->nranks)
		return gx_error(GX_ERR_INVAL, "dpdk: peer %u out of range (%u ranks)", peer, b->nranks);
	if (len != sizeof(a))
		return gx_error(GX_ERR_INVAL, "dpdk: rank %u's address is %zu bytes, not %zu: is every "
				"rank using --transport=dpdk?", peer, len, sizeof(a));
	memcpy(&a, blob, sizeof(a));
	if (a.magic != DP_ADDR_MAGIC)
		return gx_error(GX_ERR_INVAL, "dpdk: rank %u's address is not a dpdk address: is every "
				"rank using --transport=dpdk?", peer);
	if (a.rank != peer)
		return gx_error(GX_ERR_INVAL, "dpdk: address for rank %u says rank %u", peer, a.rank);
	build_peer_hdr(d, &d->peers[peer], &a);
	return GX_OK;
}

static uint32_t dp_max_msg(struct gx_backend *b)
{
	return ((struct dp_backend *)b)->max_msg;
}

/* ---------------------------------------------------------------------------------------------
 * Hot path.
 */
/* rte_ipv4_cksum's value, from the template's sum plus the two fields set per frame: reading the
 * header back right after its 16-bit stores stalled store forwarding (5 % of a memif sender). */
static inline uint16_t dp_ipv4_cksum(uint32_t tmpl_sum, rte_be16_t total_length, rte_be16_t packet_id)
{
	uint32_t s = tmpl_sum + total_length + packet_id;
	s = (s & 0xffffu) + (s >> 16);
	s = (s & 0xffffu) + (s >> 16);
	return (uint16_t)~s;
}

/* Ethernet/IPv4/UDP header for a gx datagram of `glen` bytes to `peer`, at f. */
static inline void dp_fill_l2l4(struct dp_backend *d, struct rte_mbuf *p, uint8_t *f, uint32_t peer,
				uint32_t glen)
{
	uint32_t flen = (uint32_t)DP_L2L4_LEN + glen;

	memcpy(f, d->peers[peer].hdr, DP_L2L4_LEN);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(f + RTE_ETHER_HDR_LEN);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	rte_be16_t tlen = rte_cpu_to_be_16((uint16_t)(flen - RTE_ETHER_HDR_LEN));
	rte_be16_t id = rte_cpu_to_be_16(d->ip_id++);
	ip->total_length = tlen;
	ip->packet_id = id;
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(glen + sizeof(*udp)));
	if (d->tx_ip_cksum || d->tx_udp_cksum) {
		p->l2_len = RTE_ETHER_HDR_LEN;
		p->l3_len = sizeof(*ip);
		p->ol_flags |= RTE_MBUF_F_TX_IPV4;
	}
	if (d->tx_ip_cksum)
		p->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
	else
		ip->hdr_checksum = dp_ipv4_cksum(d->peers[peer].ip_sum, tlen, id);
	if (d->tx_udp_cksum) {
		p->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
		udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, p->ol_flags);
	}
}

/* Zero copy (tx_zc): the frame is a header mbuf chained to an mbuf that points at the caller's
 * bytes (rte_pktmbuf_attach_extbuf), so the PMD's own copy into its ring is the only one.  Only for
 * drivers that copy the frame and free the mbufs before tx_burst returns (af_packet; memif in copy
 * mode): the caller may rewrite or reuse its buffer at once, as the gx_backend contract allows. */
static uint16_t dp_tx_burst(struct gx_backend *b, const struct gx_msg *m, uint16_t n)
{
	struct dp_backend *d = (struct dp_backend *)b;
	struct rte_mbuf *mb[DP_BURST], *ext[DP_BURST];
	uint16_t done = 0;

	while (done < n) {
		uint16_t k = (uint16_t)(n - done) < DP_BURST ? (uint16_t)(n - done) : DP_BURST;
		uint16_t built = 0, nzc = 0, next = 0;
		uint64_t bytes = 0;

		if (d->tx_zc)
			for (uint16_t i = 0; i < k; i++)
				nzc = (uint16_t)(nzc + (m[done + i].len >= d->zc_min_len));
		if (rte_pktmbuf_alloc_bulk(d->pool, mb, k) != 0) {
			d->c.tx_full++;
			return done;       /* pool drained by the rings: the caller retries later */
		}
		if (nzc && rte_pktmbuf_alloc_bulk(d->pool, ext, nzc) != 0) {
			rte_pktmbuf_free_bulk(mb, k);
			d->c.tx_full++;
			return done;
		}
		for (uint16_t i = 0; i < k; i++) {
			const struct gx_msg *g = &m[done + i];
			bool zc = d->tx_zc && g->len >= d->zc_min_len;
			if (g->peer >= b->nranks || !d->peers[g->peer].known || g->len > d->max_msg) {
				d->tx_dropped++;
				if (zc)
					rte_pktmbuf_free(ext[next++]);
				continue;
			}
			struct rte_mbuf *p = mb[built];
			uint8_t *f = rte_pktmbuf_mtod(p, uint8_t *);
			dp_fill_l2l4(d, p, f, g->peer, g->len);
			if (zc) {
				struct rte_mbuf *x = ext[next++];
				rte_mbuf_ext_refcnt_update(&d->zc_shinfo, 1);
				rte_pktmbuf_attach_extbuf(x, g->data, RTE_BAD_IOVA, (uint16_t)g->len, &d->zc_shinfo);
				x->data_len = (uint16_t)g->len;
				x->pkt_len = g->len;
				p->data_len = (uint16_t)DP_L2L4_LEN;
				p->next = x;
				p->nb_segs = 2;
			} else {
				memcpy(f + DP_L2L4_LEN, g->data, g->len);
				p->data_len = (uint16_t)(DP_L2L4_LEN + g->len);
			}
			p->pkt_len = (uint32_t)DP_L2L4_LEN + g->len;
			bytes += g->len;
			built++;
		}
		uint16_t sent = 0;
		for (unsigned tries = 0; sent < built && tries < DP_TX_RETRIES; tries++) {
			uint16_t s = rte_eth_tx_burst(d->port, 0, mb + sent, (uint16_t)(built - sent));
			sent = (uint16_t)(sent + s);
			if (!s)
				rte_pause();
		}
		if (built < k)
			rte_pktmbuf_free_bulk(mb + built, (unsigned)(k - built));
		if (sent < built) {
			/* Ring full (or memif peer gone): hand back what is left, counting how far we got. */
			rte_pktmbuf_free_bulk(mb + sent, (unsigned)(built - sent));
			d->c.tx_full++;
			uint16_t took = 0;
			for (uint16_t i = 0, s = 0; i < k; i++) {
				const struct gx_msg *g = &m[done + i];
				bool routable = g->peer < b->nranks && d->peers[g->peer].known &&
						g->len <= d->max_msg;
				if (routable) {
					if (s == sent)
						break;
					s++;
					d->c.tx_bytes += g->len;
				}
				took++;
			}
			d->c.tx_pkts += sent;
			return (uint16_t)(done + took);
		}
		d->c.tx_pkts += sent;
		d->c.tx_bytes += bytes;
		done = (uint16_t)(done + k);
	}
	return done;
}

/* The one's complement sum over the pseudo header and the whole datagram, its checksum included, is
 * 0xffff when the checksum is right. */
static inline bool dp_udp_cksum_ok(const struct rte_ipv4_hdr *ip, const struct rte_udp_hdr *udp, uint32_t ulen)
{
	uint32_t sum = (uint32_t)rte_ipv4_phdr_cksum(ip, 0) + rte_raw_cksum(udp, ulen);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/* Is this frame an IPv4/UDP datagram for our address and port?  Returns the gx bytes' offset and
 * length through *off / *len, or false for anything else (counted as foreign by the caller). */
static inline bool dp_frame_ok(const struct dp_backend *d, struct rte_mbuf *p, uint32_t *off,
			       uint32_t *len)
{
	const uint32_t dlen = p->data_len;
	const uint8_t *f = rte_pktmbuf_mtod(p, const uint8_t *);

	if (unlikely(p->nb_segs != 1 || dlen < DP_L2L4_LEN))
		return false;
	const struct rte_ether_hdr *eth = (const struct rte_ether_hdr *)f;
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
		return false;
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eth + 1);
	uint32_t ihl = (uint32_t)(ip->version_ihl & 0x0f) * 4u;
	if ((ip->version_ihl >> 4) != 4 || ihl < sizeof(*ip) || ip->next_proto_id != IPPROTO_UDP ||
	    ip->dst_addr != d->ip)
		return false;
	if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
		return false;
	uint32_t tot = rte_be_to_cpu_16(ip->total_length);
	if (tot < ihl + sizeof(struct rte_udp_hdr) || RTE_ETHER_HDR_LEN + tot > dlen)
		return false;
	if (d->rx_cksum) {
		if ((p->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
		    (p->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD)
			return false;
	} else if (rte_ipv4_cksum(ip) != 0) {
		/* The sum over a header that carries its checksum is 0xffff when valid. */
		return false;
	}
	const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)((const uint8_t *)ip + ihl);
	uint32_t ulen = rte_be_to_cpu_16(udp->dgram_len);
	if (udp->dst_port != d->udp_port || ulen < sizeof(*udp) || ulen > tot - ihl)
		return false;
	/* A UDP checksum the port did not verify is checked here (0: the sender gave none, as gx does
	 * without the offload; the gx seal covers the datagram either way). */
	if (!d->rx_cksum && udp->dgram_cksum != 0 && !dp_udp_cksum_ok(ip, udp, ulen))
		return false;
	*off = RTE_ETHER_HDR_LEN + ihl + (uint32_t)sizeof(*udp);
	*len = ulen - (uint32_t)sizeof(*udp);
	return true;
}

static uint16_t dp_rx_burst(struct gx_backend *b, struct gx_msg *m, uint16_t n)
{
	struct dp_backend *d = (struct dp_backend *)b;
	struct rte_mbuf *mb[DP_BURST], *bad[DP_BURST];
	uint16_t got, out = 0, nbad = 0;

	if (n > DP_BURST)
		n = DP_BURST;
	got = rte_eth_rx_burst(d->port, 0, mb, n);
	for (uint16_t i = 0; i < got; i++) {
		struct rte_mbuf *p = mb[i];
		uint32_t off, len;
		if (unlikely(!dp_frame_ok(d, p, &off, &len))) {
			bad[nbad++] = p;
			continue;
		}
		uint8_t *g = rte_pktmbuf_mtod_offset(p, uint8_t *, off);
		const struct rte_ipv4_hdr *ip =
			rte_pktmbuf_mtod_offset(p, const struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
		const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)
			((const uint8_t *)ip + (ip->version_ihl & 0x0f) * 4u);
		/* Attribute by the claimed src_rank, checked against that peer's address (O(1)). */
		uint32_t peer = GX_PEER_UNKNOWN;
		if (len >= sizeof(struct gx_hdr)) {
			uint16_t src;
			memcpy(&src, g + offsetof(struct gx_hdr, src_rank), sizeof(src));
			if (src < b->nranks && d->peers[src].known)
				peer = d->peers[src].ip == ip->src_addr &&
				       d->peers[src].udp_port == udp->src_port ? src : GX_PEER_FOREIGN;
		}
		m[out].peer = peer;
		m[out].len = len;
		m[out].data = g;
		m[out].priv = p;
		d->c.rx_bytes += len;
		out++;
	}
	if (nbad) {
		d->c.rx_foreign += nbad;
		rte_pktmbuf_free_bulk(bad, nbad);
	}
	d->c.rx_pkts += out;
	return out;
}

static void dp_rx_release(struct gx_backend *b, struct gx_msg *m, uint16_t n)
{
	struct rte_mbuf *mb[DP_BURST];
	uint16_t k = 0;

	(void)b;
	for (uint16_t i = 0; i < n; i++) {
		mb[k++] = m[i].priv;
		m[i].priv = NULL;
		if (k == DP_BURST) {
			rte_pktmbuf_free_bulk(mb, k);
			k = 0;
		}
	}
	if (k)
		rte_pktmbuf_free_bulk(mb, k);
}

static void dp_counters(struct gx_backend *b, struct gx_backend_counters *c)
{
	*c = ((struct dp_backend *)b)->c;
}

/* ---------------------------------------------------------------------------------------------
 * Close: drain TX (af_packet loses frames still in its ring when the port stops), stop, close,
 * and unplug a virtual device so a later open in this process can probe it afresh.  Whatever the
 * caller wants to report must be out before this: memif's server may crash in DPDK's interrupt
 * thread during teardown (a DPDK race, docs/dpdk.md).
 */
static void dp_destroy(struct gx_backend *b)
{
	struct dp_backend *d = (struct dp_backend *)b;

	if (!d)
		return;
	if (d->port < RTE_MAX_ETHPORTS) {
		rte_eth_tx_done_cleanup(d->port, 0, 0);
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		rte_eth_dev_stop(d->port);
		rte_eth_dev_close(d->port);
		if (d->is_vdev && d->name[0])
			rte_eal_hotplug_remove("vdev", d->name);
		if (d->tx_dropped)
			gx_log(GX_LOG_WARN, "dpdk", "port %s dropped %llu datagrams to unknown peers or larger "
				"than %u bytes", d->name, (unsigned long long)d->tx_dropped, d->max_msg);
		pthread_mutex_lock(&eal_lock);
		port_taken[d->port] = false;
		pthread_mutex_unlock(&eal_lock);
	}
	if (d->pool)
		rte_mempool_free(d->pool);
	free(d->peers);
	free(d);
}

const struct gx_backend_ops gx_dpdk_ops = {
	.size = sizeof(struct gx_backend_ops),
	.name = "dpdk",
	.options = &dp_table,
	.create = dp_create,
	.destroy = dp_destroy,
	.local_addr = dp_local_addr,
	.connect = dp_connect,
	.max_msg = dp_max_msg,
	.tx_burst = dp_tx_burst,
	.rx_burst = dp_rx_burst,
	.rx_release = dp_rx_release,
	.counters = dp_counters,
	.device = dp_device,
};
