/* udp.c: the kernel UDP backend (the default).  One non-blocking socket per process, batched with
 * sendmmsg/recvmmsg, works as a normal user.  Address blob: IPv4 address and port.
 *
 * A datagram is struct gx_hdr + payload inside one UDP payload, so max_msg = mtu - 28 (IPv4 and
 * UDP headers).  The sender of each datagram is looked up from its source address; a source that is
 * no connected peer is reported as GX_PEER_FOREIGN. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gx_backend.h"

#define UDP_BURST 64
#define UDP_RX_BUFS (2 * UDP_BURST)
#define UDP_L3L4 28                     /* IPv4 (20) + UDP (8) */
#define UDP_RCVBUF (16 << 20)
#define UDP_SNDBUF (8 << 20)
#define UDP_BLOB_TAG 0x55               /* 'U' */

extern const struct gx_backend_ops gx_udp_ops;

struct udp_blob {                       /* what the rendezvous carries; network byte order */
	uint8_t tag;
	uint8_t pad;
	uint16_t port;
	uint32_t ip;
};

struct udp_backend {
	struct gx_backend b;
	int fd;
	uint32_t max_msg;
	struct sockaddr_in self;
	struct sockaddr_in *peer_addr;  /* by rank; sin_family 0 until connected */
	uint8_t *rx_mem;
	void *free_buf[UDP_RX_BUFS];
	uint32_t nfree;
	struct mmsghdr rx_hdr[UDP_BURST];
	struct iovec rx_iov[UDP_BURST];
	struct sockaddr_in rx_from[UDP_BURST];
	struct mmsghdr tx_hdr[UDP_BURST];
	struct iovec tx_iov[UDP_BURST];
	struct gx_backend_counters c;
};

static struct udp_backend *to_udp(struct gx_backend *b)
{
	return (struct udp_backend *)b;
}

/* First IPv4 address of an interface that is up and not loopback. */
static int first_global_ipv4(struct in_addr *out)
{
	struct ifaddrs *ifa, *i;
	int found = 0;

	if (getifaddrs(&ifa) < 0)
		return 0;
	for (i = ifa; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		*out = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		found = 1;
	}
	freeifaddrs(ifa);
	return found;
}

static void set_buffer(int fd, int force_opt, int opt, int bytes)
{
	/* As root SO_*BUFFORCE passes net.core.[rw]mem_max; otherwise the kernel clamps silently. */
	if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes));
}

static void udp_destroy(struct gx_backend *b)
{
	struct udp_backend *u = to_udp(b);

	if (!u)
		return;
	if (u->fd >= 0)
		close(u->fd);
	free(u->rx_mem);
	free(u->peer_addr);
	free(u);
}

struct udp_settings {
	const char *ip;
	uint16_t port;
};

static const struct gx_option udp_opts[] = {
	{ "udp-ip", GX_OPT_STR, offsetof(struct udp_settings, ip), "127.0.0.1",
	  "udp: local IPv4 address to bind (auto: first non-loopback); multi-host jobs must set it", NULL, NULL },
	{ "udp-port", GX_OPT_U16, offsetof(struct udp_settings, port), "0",
	  "udp: local port (0 = ephemeral); dpdk: the UDP port of its frames (0 = 4791)", NULL, NULL },
};

static const struct gx_option_table udp_table = {
	"udp", udp_opts, sizeof(udp_opts) / sizeof(udp_opts[0]), sizeof(struct udp_settings)
};

static gx_status_t udp_create(const struct gx_transport_opts *o, struct gx_backend **out)
{
	struct udp_backend *u;
	struct udp_settings set;
	uint32_t mtu = o->mtu;
	socklen_t sl;
	gx_status_t st;

	if ((st = gx_backend_settings(&udp_table, o, &set)) < 0)
		return st;
	const char *ip = set.ip && *set.ip ? set.ip : "127.0.0.1";
	if (!o->nranks || o->nranks > GX_MAX_RANKS || o->rank >= o->nranks)
		return gx_error(GX_ERR_INVAL, "udp: rank %u of %u ranks is impossible (1..%u ranks)", o->rank,
				o->nranks, GX_MAX_RANKS);
	if (mtu < UDP_L3L4 + sizeof(struct gx_hdr) + 8 || mtu > 65535)
		return gx_error(GX_ERR_INVAL, "udp: mtu %u out of range (%zu..65535); use --mtu=1500 or 9000", mtu,
				UDP_L3L4 + sizeof(struct gx_hdr) + 8);
	u = calloc(1, sizeof(*u));
	if (!u)
		return gx_error(GX_ERR_NOMEM, "udp: out of memory");
	u->fd = -1;
	u->b.ops = &gx_udp_ops;
	u->b.rank = o->rank;
	u->b.nranks = o->nranks;
	u->max_msg = mtu - UDP_L3L4;
	if (u->max_msg > 65507)
		u->max_msg = 65507;
	u->peer_addr = calloc(o->nranks, sizeof(*u->peer_addr));
	u->rx_mem = malloc((size_t)UDP_RX_BUFS * u->max_msg);
	if (!u->peer_addr || !u->rx_mem) {
		st = gx_error(GX_ERR_NOMEM, "udp: out of memory for %u peers", o->nranks);
		goto fail;
	}
	for (uint32_t i = 0; i < UDP_RX_BUFS; i++)
		u->free_buf[i] = u->rx_mem + (size_t)i * u->max_msg;
	u->nfree = UDP_RX_BUFS;

	u->self.sin_family = AF_INET;
	u->self.sin_port = htons(set.port);
	if (!strcmp(ip, "auto")) {
		if (!first_global_ipv4(&u->self.sin_addr))
			inet_pton(AF_INET, "127.0.0.1", &u->self.sin_addr);
	} else if (inet_pton(AF_INET, ip, &u->self.sin_addr) != 1) {
		st = gx_error(GX_ERR_INVAL, "udp: '%s' is not an IPv4 address; give --udp-ip=A.B.C.D (or auto)", ip);
		goto fail;
	}
	if (u->self.sin_addr.s_addr == htonl(INADDR_ANY)) {
		st = gx_error(GX_ERR_INVAL, "udp: bind address 0.0.0.0 cannot be given to peers; give the "
			 "address they should reach (--udp-ip=A.B.C.D or auto)");
		goto fail;
	}
	u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		st = gx_error(GX_ERR_IO, "udp: socket: %s", strerror(errno));
		goto fail;
	}
	set_buffer(u->fd, SO_RCVBUFFORCE, SO_RCVBUF, UDP_RCVBUF);
	set_buffer(u->fd, SO_SNDBUFFORCE, SO_SNDBUF, UDP_SNDBUF);
	if (bind(u->fd, (struct sockaddr *)&u->self, sizeof(u->self)) < 0) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &u->self.sin_addr, a, sizeof(a));
		st = gx_error(GX_ERR_IO, "udp: cannot bind %s:%u: %s (%s)", a, set.port, strerror(errno),
			 errno == EADDRINUSE ? "choose another --udp-port, or 0 for an ephemeral one"
					     : "is --udp-ip an address of this host?");
		goto fail;
	}
	sl = sizeof(u->self);
	getsockname(u->fd, (struct sockaddr *)&u->self, &sl);
	*out = &u->b;
	return GX_OK;
fail:
	udp_destroy(&u->b);
	return st;
}

/* The interface that owns the bound address (the engine is pinned near its device). */
static gx_status_t udp_device(struct gx_backend *b, char *name, size_t len, int *is_pci)
{
	struct udp_backend *u = to_udp(b);
	struct ifaddrs *ifs, *i;
	gx_status_t st = gx_error(GX_ERR_NODEV, "udp: no interface owns the bound address");

	*is_pci = 0;
	if (getifaddrs(&ifs) < 0)
		return gx_error(GX_ERR_IO, "udp: getifaddrs: %s", strerror(errno));
	for (i = ifs; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == u->self.sin_addr.s_addr) {
			snprintf(name, len, "%s", i->ifa_name);
			st = GX_OK;
			break;
		}
	freeifaddrs(ifs);
	return st;
}

static gx_status_t udp_local_addr(struct gx_backend *b, void *blob, size_t *len)
{
	struct udp_backend *u = to_udp(b);
	struct udp_blob a = { .tag = UDP_BLOB_TAG, .port = u->self.sin_port, .ip = u->self.sin_addr.s_addr };

	if (*len < sizeof(a))
		return gx_error(GX_ERR_NOSPC, "udp: address blob needs %zu bytes", sizeof(a));
	memcpy(blob, &a, sizeof(a));
	*len = sizeof(a);
	return GX_OK;
}

static gx_status_t udp_connect(struct gx_backend *b, uint32_t peer, const void *blob, size_t len)
{
	struct udp_backend *u = to_udp(b);
	struct udp_blob a;

	if (peer >= u->b.nranks)
		return gx_error(GX_ERR_INVAL, "udp: peer rank %u out of range (%u ranks)", peer, u->b.nranks);
	if (len != sizeof(a) || ((const uint8_t *)blob)[0] != UDP_BLOB_TAG)
		return gx_error(GX_ERR_INVAL, "udp: address of rank %u is not a udp address (%zu bytes): "
				"do all ranks use --transport=udp?", peer, len);
	memcpy(&a, blob, sizeof(a));
	u->peer_addr[peer].sin_family = AF_INET;
	u->peer_addr[peer].sin_port = a.port;
	u->peer_addr[peer].sin_addr.s_addr = a.ip;
	return GX_OK;
}

static uint32_t udp_max_msg(struct gx_backend *b)
{
	return to_udp(b)->max_msg;
}

static uint16_t udp_tx_burst(struct gx_backend *b, const struct gx_msg *m, uint16_t n)
{
	struct udp_backend *u = to_udp(b);
	uint16_t done = 0;

	while (done < n) {
		uint16_t k = 0;
		while (done + k < n && k < UDP_BURST) {
			const struct gx_msg *x = &m[done + k];
			if (x->peer >= u->b.nranks || !u->peer_addr[x->peer].sin_family)
				break;
			u->tx_iov[k].iov_base = x->data;
			u->tx_iov[k].iov_len = x->len;
			memset(&u->tx_hdr[k], 0, sizeof(u->tx_hdr[k]));
			u->tx_hdr[k].msg_hdr.msg_name = &u->peer_addr[x->peer];
			u->tx_hdr[k].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
			u->tx_hdr[k].msg_hdr.msg_iov = &u->tx_iov[k];
			u->tx_hdr[k].msg_hdr.msg_iovlen = 1;
			k++;
		}
		if (!k) {                       /* unconnected destination: nothing can carry it */
			done++;
			continue;
		}
		int r = sendmmsg(u->fd, u->tx_hdr, k, MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
				u->c.tx_full++;
				break;
			}
			if (errno == EINTR)
				continue;
			/* ECONNREFUSED (an ICMP error from a peer that is gone), EMSGSIZE, ...: this
			 * datagram is lost; the reliability layer above decides what that means. */
			done++;
			continue;
		}
		for (int i = 0; i < r; i++)
			u->c.tx_bytes += m[done + i].len;
		u->c.tx_pkts += (uint64_t)r;
		done += (uint16_t)r;
	}
	return done;
}

static uint32_t lookup_peer(struct udp_backend *u, const struct sockaddr_in *from, const uint8_t *d,
			    uint32_t len)
{
	if (len >= offsetof(struct gx_hdr, src_rank) + 2) {
		uint16_t src;
		memcpy(&src, d + offsetof(struct gx_hdr, src_rank), sizeof(src));
		const struct sockaddr_in *p = &u->peer_addr[src < u->b.nranks ? src : 0];
		if (src < u->b.nranks && p->sin_port == from->sin_port &&
		    p->sin_addr.s_addr == from->sin_addr.s_addr)
			return src;
	}
	/* The header names someone else (spoofed, or garbage): find who really sent it. */
	for (uint32_t r = 0; r < u->b.nranks; r++)
		if (u->peer_addr[r].sin_family && u->peer_addr[r].sin_port == from->sin_port &&
		    u->peer_addr[r].sin_addr.s_addr == from->sin_addr.s_addr)
			return r;
	return GX_PEER_FOREIGN;
}

static uint16_t udp_rx_burst(struct gx_backend *b, struct gx_msg *m, uint16_t n)
{
	struct udp_backend *u = to_udp(b);
	uint32_t k = n;

	if (k > UDP_BURST)
		k = UDP_BURST;
	if (k > u->nfree)
		k = u->nfree;
	if (!k)
		return 0;
	for (uint32_t i = 0; i < k; i++) {
		u->rx_iov[i].iov_base = u->free_buf[u->nfree - 1 - i];
		u->rx_iov[i].iov_len = u->max_msg;
		memset(&u->rx_hdr[i], 0, sizeof(u->rx_hdr[i]));
		u->rx_hdr[i].msg_hdr.msg_name = &u->rx_from[i];
		u->rx_hdr[i].msg_hdr.msg_namelen = sizeof(u->rx_from[i]);
		u->rx_hdr[i].msg_hdr.msg_iov = &u->rx_iov[i];
		u->rx_hdr[i].msg_hdr.msg_iovlen = 1;
	}
	int r = recvmmsg(u->fd, u->rx_hdr, k, MSG_DONTWAIT, NULL);
	if (r <= 0)
		return 0;                       /* EAGAIN, or an ICMP error from a dead peer: nothing */
	for (int i = 0; i < r; i++) {
		m[i].data = u->rx_iov[i].iov_base;
		m[i].priv = m[i].data;
		m[i].len = u->rx_hdr[i].msg_len;
		if (u->rx_hdr[i].msg_hdr.msg_flags & MSG_TRUNC)
			u->c.rx_foreign++;      /* longer than max_msg: the net sees a length mismatch */
		m[i].peer = lookup_peer(u, &u->rx_from[i], m[i].data, m[i].len);
		u->c.rx_bytes += m[i].len;
	}
	u->nfree -= (uint32_t)r;
	u->c.rx_pkts += (uint64_t)r;
	return (uint16_t)r;
}

static void udp_rx_release(struct gx_backend *b, struct gx_msg *m, uint16_t n)
{
	struct udp_backend *u = to_udp(b);

	for (uint16_t i = 0; i < n && u->nfree < UDP_RX_BUFS; i++)
		u->free_buf[u->nfree++] = m[i].priv;
}

static void udp_counters(struct gx_backend *b, struct gx_backend_counters *c)
{
	*c = to_udp(b)->c;
}

const struct gx_backend_ops gx_udp_ops = {
	.size = sizeof(struct gx_backend_ops),
	.name = "udp",
	.options = &udp_table,
	.create = udp_create,
	.destroy = udp_destroy,
	.local_addr = udp_local_addr,
	.connect = udp_connect,
	.max_msg = udp_max_msg,
	.tx_burst = udp_tx_burst,
	.rx_burst = udp_rx_burst,
	.rx_release = udp_rx_release,
	.counters = udp_counters,
	.device = udp_device,
};
