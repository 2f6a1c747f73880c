/* udp.c: the kernel UDP backend (the default).  One non-blocking socket per process, batched with
 * sendmmsg/recvmmsg, works as a normal user.  Address blob: IPv4 address and port.
 *
 * A datagram is struct gx_hdr + payload inside one UDP payload, so max_msg = mtu - 28 (IPv4 and
 * UDP headers).  The sender of each datagram is looked up from its source address; a source that is
 * no connected peer is reported as GX_PEER_FOREIGN.
 *
 * Segmentation offload (Linux 4.18+, detected at start-up): consecutive datagrams of one burst to one
 * peer leave as one GSO message (UDP_SEGMENT: the kernel, or the NIC, cuts it into datagrams of the
 * first one's size), and a socket with UDP_GRO takes up to 64 KiB of one peer's datagrams per
 * receive, handed up here one datagram at a time.  The stack's per-datagram work then runs once per
 * 64 KiB; on loopback and veth the coalesced message is never cut at all.  Without it (an old kernel,
 * a device without checksum offload: EIO), one datagram per message as before. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "gx_backend.h"

#define UDP_BURST 64
#define UDP_RX_BUFS (2 * UDP_BURST)
#define UDP_L3L4 28                     /* IPv4 (20) + UDP (8) */
#define UDP_BUF_MIN (4ull << 20)        /* socket buffers: from the window, within these */
#define UDP_BUF_MAX (256ull << 20)
#define UDP_BLOB_TAG 0x55               /* 'U' */
#define UDP_GSO_BYTES 65507             /* most a GSO message carries (one IPv4 datagram's worth) */
#define UDP_GSO_SEGS 64                 /* most datagrams per GSO message (the kernel's limit) */
#define UDP_GRO_MSG 65536               /* the most a coalesced message holds */
#define UDP_GRO_BUF (UDP_GRO_MSG + 8 * UDP_GSO_SEGS)   /* ... plus room to align its datagrams */
#define UDP_RX_SEGS (UDP_BURST * UDP_GSO_SEGS)
/* --mtu auto: the bound interface's MTU, at most this (loopback's 65536 is a datagram's limit) */
#define UDP_AUTO_MTU_MAX 65535u

extern const struct gx_backend_ops gx_udp_ops;

struct udp_blob {                       /* what the rendezvous carries; network byte order */
	uint8_t tag;
	uint8_t pad;
	uint16_t port;
	uint32_t ip;
	uint16_t max_msg;               /* its datagram size: every rank uses the smallest */
	uint16_t pad2;
};

struct rx_buf {                         /* one receive buffer; GRO: several datagrams share it */
	uint8_t *mem;
	uint32_t refs;                  /* datagrams of it handed up and not yet released */
};

struct udp_backend {
	struct gx_backend b;
	int fd;
	uint32_t max_msg;
	bool gso, gro;                  /* segmentation offload on send / coalescing on receive */
	uint32_t rx_buf_len;            /* max_msg, or UDP_GRO_BUF with GRO */
	struct rx_buf bufs[UDP_RX_BUFS];
	/* datagrams received and not yet handed up (GRO: a message is cut into its datagrams) */
	struct gx_msg pend[UDP_RX_SEGS];
	uint32_t pend_head, pend_len;
	union { char b[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } tx_ctrl[UDP_BURST];
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } rx_ctrl[UDP_BURST];
	uint32_t tx_msgs_in[UDP_BURST];  /* gx_msgs in each sendmmsg entry */
	struct sockaddr_in self;
	struct sockaddr_in *peer_addr;  /* by rank; sin_family 0 until connected */
	uint8_t *rx_mem;
	uint32_t free_idx[UDP_RX_BUFS]; /* buffers not holding unreleased datagrams */
	uint32_t nfree;
	struct mmsghdr rx_hdr[UDP_BURST];
	struct iovec rx_iov[UDP_BURST];
	uint32_t rx_idx[UDP_BURST];
	struct sockaddr_in rx_from[UDP_BURST];
	struct mmsghdr tx_hdr[UDP_BURST];
	struct iovec tx_iov[UDP_BURST * UDP_GSO_SEGS];
	struct gx_backend_counters c;
};

static struct udp_backend *to_udp(struct gx_backend *b)
{
	return (struct udp_backend *)b;
}

static gx_status_t bound_ifname(struct udp_backend *u, char *name, size_t len);

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
	uint32_t mtu = o->mtu ? o->mtu : 1500;  /* auto: the interface's, once bound */
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
	/* datagrams in multiples of 8 bytes: the datagrams a GRO buffer holds back to back then all
	 * start 8-byte aligned, as the header's 64-bit fields want */
	u->max_msg = (mtu - UDP_L3L4 < 65507 ? mtu - UDP_L3L4 : 65507) & ~7u;
	u->peer_addr = calloc(o->nranks, sizeof(*u->peer_addr));
	if (!u->peer_addr) {
		st = gx_error(GX_ERR_NOMEM, "udp: out of memory for %u peers", o->nranks);
		goto fail;
	}

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
	/* Offloads: the kernel takes the options only if it has them; GX_UDP_OFFLOAD=0 turns them off. */
	const char *off = getenv("GX_UDP_OFFLOAD");
	int one = 1, zero_seg = 0;
	if (!(off && !strcmp(off, "0"))) {
		u->gso = setsockopt(u->fd, SOL_UDP, UDP_SEGMENT, &zero_seg, sizeof(zero_seg)) == 0;
		u->gro = setsockopt(u->fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
	}
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
	if (!o->mtu) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		if (bound_ifname(u, ifr.ifr_name, sizeof(ifr.ifr_name)) == GX_OK &&
		    ioctl(u->fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0) {
			mtu = (uint32_t)ifr.ifr_mtu < UDP_AUTO_MTU_MAX ? (uint32_t)ifr.ifr_mtu : UDP_AUTO_MTU_MAX;
			if (mtu < UDP_L3L4 + sizeof(struct gx_hdr) + 8)
				mtu = 1500;
			u->max_msg = (mtu - UDP_L3L4 < 65507 ? mtu - UDP_L3L4 : 65507) & ~7u;
		}
	}
	/* Socket buffers from the window: a full window of each peer may arrive at once, and the
	 * kernel charges a datagram's whole buffer (about twice its bytes), GRO or not. */
	uint64_t win = (uint64_t)(o->window ? o->window : 256) * u->max_msg;
	uint64_t rcv = 4 * win * (o->nranks > 2 ? 2 : 1), snd = 2 * win;
	rcv = rcv < UDP_BUF_MIN ? UDP_BUF_MIN : rcv > UDP_BUF_MAX ? UDP_BUF_MAX : rcv;
	snd = snd < UDP_BUF_MIN ? UDP_BUF_MIN : snd > UDP_BUF_MAX ? UDP_BUF_MAX : snd;
	set_buffer(u->fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)rcv);
	set_buffer(u->fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)snd);
	u->rx_buf_len = u->gro ? UDP_GRO_BUF : u->max_msg;
	u->rx_mem = malloc((size_t)UDP_RX_BUFS * u->rx_buf_len);
	if (!u->rx_mem) {
		st = gx_error(GX_ERR_NOMEM, "udp: out of memory for receive buffers");
		goto fail;
	}
	for (uint32_t i = 0; i < UDP_RX_BUFS; i++) {
		u->bufs[i].mem = u->rx_mem + (size_t)i * u->rx_buf_len;
		u->free_idx[i] = i;
	}
	u->nfree = UDP_RX_BUFS;
	*out = &u->b;
	return GX_OK;
fail:
	udp_destroy(&u->b);
	return st;
}

/* The interface that owns the bound address (the engine is pinned near its device). */
static gx_status_t udp_device(struct gx_backend *b, char *name, size_t len, int *is_pci)
{
	*is_pci = 0;
	return bound_ifname(to_udp(b), name, len);
}

static gx_status_t bound_ifname(struct udp_backend *u, char *name, size_t len)
{
	struct ifaddrs *ifs, *i;
	gx_status_t st = gx_error(GX_ERR_NODEV, "udp: no interface owns the bound address");

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
	struct udp_blob a = { .tag = UDP_BLOB_TAG, .port = u->self.sin_port, .ip = u->self.sin_addr.s_addr,
			      .max_msg = htons((uint16_t)u->max_msg) };

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
	uint32_t theirs = ntohs(a.max_msg);
	if (theirs < UDP_L3L4 + sizeof(struct gx_hdr) + 8)
		return gx_error(GX_ERR_INVAL, "udp: rank %u announces datagrams of %u bytes: too small", peer, theirs);
	if (theirs < u->max_msg)
		u->max_msg = theirs;            /* a smaller MTU on its side: every rank uses the smallest */
	u->peer_addr[peer].sin_family = AF_INET;
	u->peer_addr[peer].sin_port = a.port;
	u->peer_addr[peer].sin_addr.s_addr = a.ip;
	return GX_OK;
}

static uint32_t udp_max_msg(struct gx_backend *b)
{
	return to_udp(b)->max_msg;
}

/* Datagrams m[0..) that can leave as one message: to one peer, all as long as the first except a
 * shorter last one, at most UDP_GSO_SEGS and UDP_GSO_BYTES. */
static uint32_t gso_run(const struct udp_backend *u, const struct gx_msg *m, uint32_t n)
{
	uint32_t k = 1, bytes = m[0].len;

	if (!u->gso || (m[0].len & 7))
		return 1;       /* datagrams of a GSO message start at multiples of the first one's size */
	while (k < n && k < UDP_GSO_SEGS && m[k].peer == m[0].peer && m[k].len <= m[0].len &&
	       bytes + m[k].len <= UDP_GSO_BYTES) {
		bytes += m[k].len;
		if (m[k++].len < m[0].len)
			break;
	}
	return k;
}

static uint16_t udp_tx_burst(struct gx_backend *b, const struct gx_msg *m, uint16_t n)
{
	struct udp_backend *u = to_udp(b);
	uint16_t done = 0;

	while (done < n) {
		uint32_t k = 0, used = 0, iov = 0;
		while (done + used < n && k < UDP_BURST) {
			const struct gx_msg *x = &m[done + used];
			if (x->peer >= u->b.nranks || !u->peer_addr[x->peer].sin_family)
				break;
			uint32_t segs = gso_run(u, x, n - done - used);
			struct msghdr *h = &u->tx_hdr[k].msg_hdr;
			memset(&u->tx_hdr[k], 0, sizeof(u->tx_hdr[k]));
			for (uint32_t i = 0; i < segs; i++) {
				u->tx_iov[iov + i].iov_base = x[i].data;
				u->tx_iov[iov + i].iov_len = x[i].len;
			}
			h->msg_name = &u->peer_addr[x->peer];
			h->msg_namelen = sizeof(struct sockaddr_in);
			h->msg_iov = &u->tx_iov[iov];
			h->msg_iovlen = segs;
			if (segs > 1) {
				h->msg_control = u->tx_ctrl[k].b;
				h->msg_controllen = sizeof(u->tx_ctrl[k].b);
				struct cmsghdr *c = CMSG_FIRSTHDR(h);
				c->cmsg_level = SOL_UDP;
				c->cmsg_type = UDP_SEGMENT;
				c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
				uint16_t seg = (uint16_t)x->len;
				memcpy(CMSG_DATA(c), &seg, sizeof(seg));
			}
			u->tx_msgs_in[k++] = segs;
			iov += segs;
			used += segs;
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
			if (errno == EIO && u->tx_msgs_in[0] > 1) {
				u->gso = false;     /* the route's device cannot checksum: segment here */
				continue;
			}
			/* ECONNREFUSED (an ICMP error from a peer that is gone), EMSGSIZE, ...: these
			 * datagrams are lost; the reliability layer above decides what that means. */
			done += (uint16_t)u->tx_msgs_in[0];
			continue;
		}
		for (int i = 0; i < r; i++) {
			for (uint32_t s = 0; s < u->tx_msgs_in[i]; s++)
				u->c.tx_bytes += m[done + s].len;
			u->c.tx_pkts += u->tx_msgs_in[i];
			u->c.tx_offload_msgs += u->tx_msgs_in[i] > 1;
			done += (uint16_t)u->tx_msgs_in[i];
		}
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

/* Receive into free buffers and cut each message into its datagrams (GRO: the size of each is in
 * the UDP_GRO control message; the last may be shorter), queued in pend. */
static void rx_fill(struct udp_backend *u)
{
	uint32_t per = u->gro ? UDP_GSO_SEGS : 1;       /* datagrams one message may hold */
	uint32_t k = u->nfree < UDP_BURST ? u->nfree : UDP_BURST;

	if (k > (UDP_RX_SEGS - u->pend_len) / per)
		k = (UDP_RX_SEGS - u->pend_len) / per;
	if (!k)
		return;
	for (uint32_t i = 0; i < k; i++) {
		u->rx_idx[i] = u->free_idx[u->nfree - 1 - i];
		u->rx_iov[i].iov_base = u->bufs[u->rx_idx[i]].mem;
		u->rx_iov[i].iov_len = u->gro ? UDP_GRO_MSG : u->rx_buf_len;
		memset(&u->rx_hdr[i], 0, sizeof(u->rx_hdr[i]));
		u->rx_hdr[i].msg_hdr.msg_name = &u->rx_from[i];
		u->rx_hdr[i].msg_hdr.msg_namelen = sizeof(u->rx_from[i]);
		u->rx_hdr[i].msg_hdr.msg_iov = &u->rx_iov[i];
		u->rx_hdr[i].msg_hdr.msg_iovlen = 1;
		if (u->gro) {
			u->rx_hdr[i].msg_hdr.msg_control = u->rx_ctrl[i].b;
			u->rx_hdr[i].msg_hdr.msg_controllen = sizeof(u->rx_ctrl[i].b);
		}
	}
	int r = recvmmsg(u->fd, u->rx_hdr, k, MSG_DONTWAIT, NULL);
	if (r <= 0)
		return;                         /* EAGAIN, or an ICMP error from a dead peer: nothing */
	u->nfree -= (uint32_t)r;
	for (int i = 0; i < r; i++) {
		struct msghdr *h = &u->rx_hdr[i].msg_hdr;
		struct rx_buf *buf = &u->bufs[u->rx_idx[i]];
		uint32_t len = u->rx_hdr[i].msg_len, seg = len;
		if (h->msg_flags & MSG_TRUNC)
			u->c.rx_foreign++;      /* longer than a buffer: the net sees a length mismatch */
		for (struct cmsghdr *c = u->gro ? CMSG_FIRSTHDR(h) : NULL; c; c = CMSG_NXTHDR(h, c))
			if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
				int v;
				memcpy(&v, CMSG_DATA(c), sizeof(v));
				if (v > 0 && (uint32_t)v < len)
					seg = (uint32_t)v;
			}
		u->c.rx_offload_msgs += seg < len;
		uint32_t nseg = seg ? (len + seg - 1) / seg : 1, stride = seg;
		if (nseg > per) {               /* more datagrams than GRO coalesces: not ours */
			u->c.rx_foreign++;
			u->free_idx[u->nfree++] = u->rx_idx[i];
			continue;
		}
		if (nseg > 1 && (seg & 7)) {
			/* datagrams of an odd size back to back: move each (last first) to an 8-byte
			 * boundary, so every header is aligned; the buffer has the room */
			stride = (seg + 7) & ~7u;
			for (uint32_t k = nseg; k-- > 1;)
				memmove(buf->mem + (size_t)k * stride, buf->mem + (size_t)k * seg,
					k == nseg - 1 ? len - k * seg : seg);
		}
		buf->refs = 0;
		for (uint32_t k = 0; k < nseg; k++) {
			uint32_t l = k == nseg - 1 ? len - k * seg : seg;
			struct gx_msg *x = &u->pend[(u->pend_head + u->pend_len++) % UDP_RX_SEGS];
			x->data = buf->mem + (size_t)k * stride;
			x->priv = buf;
			x->len = l;
			x->peer = lookup_peer(u, &u->rx_from[i], x->data, l);
			buf->refs++;
			u->c.rx_bytes += l;
			u->c.rx_pkts++;
		}
	}
}

static uint16_t udp_rx_burst(struct gx_backend *b, struct gx_msg *m, uint16_t n)
{
	struct udp_backend *u = to_udp(b);
	uint16_t k = 0;

	if (u->pend_len < n)
		rx_fill(u);
	while (k < n && u->pend_len) {
		m[k++] = u->pend[u->pend_head];
		u->pend_head = (u->pend_head + 1) % UDP_RX_SEGS;
		u->pend_len--;
	}
	return k;
}

static void udp_rx_release(struct gx_backend *b, struct gx_msg *m, uint16_t n)
{
	struct udp_backend *u = to_udp(b);

	for (uint16_t i = 0; i < n; i++) {
		struct rx_buf *buf = m[i].priv;
		if (buf && !--buf->refs && u->nfree < UDP_RX_BUFS)
			u->free_idx[u->nfree++] = (uint32_t)(buf - u->bufs);
	}
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
