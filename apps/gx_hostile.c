/* gx-hostile: a hostile (or merely broken) neighbour, for testing that gx takes no frame for its own
 * until it is proven whole and ours.  Run it in a host of a test network (root, CAP_NET_RAW):
 *
 *   ip netns exec NS gx-hostile -i eth0 [--rate N] [--count N] [--seconds S] [--kinds LIST] [--seed N]
 *
 * It watches the frames its host sends (IPv4/UDP whose payload starts with the gx magic), keeps the
 * last ones, and sends at N frames per second, cycling through the kinds (every frame from the
 * interface's own MAC address: a neighbour, not a station impersonating another on the switch):
 *   random     random bytes, 14..1514 of them, to a learnt destination MAC or broadcast
 *   truncated  a copy of a live gx frame cut short anywhere
 *   other-job  a live gx frame re-sealed (valid CRC32C, valid UDP checksum) with another job's
 *              identity
 *   ports      IPv4/UDP with a random payload to a learnt address (else broadcast), every port
 *   flip       a copy of a live gx frame with one to four bits flipped anywhere after the MACs; every
 *              other one gets its UDP checksum made right again, as from a NIC or a switch that
 *              corrupts before it computes the checksum (the kernel drops the rest)
 *   replay     a verbatim copy of a gx frame seen at least 100 ms before
 * Until it has seen a gx frame, the kinds that need one send `ports` frames instead.  It stops after
 * --count frames or --seconds, or at SIGINT/SIGTERM, and prints what it sent, per kind. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx_rng.h"
#include "gx_time.h"
#include "gx_wire.h"

enum kind { K_RANDOM, K_TRUNCATED, K_OTHER_JOB, K_PORTS, K_FLIP, K_REPLAY, NKINDS };
static const char *const kind_name[NKINDS] = { "random", "truncated", "other-job", "ports", "flip", "replay" };

#define KEEP 256                    /* live frames kept */
#define FRAME_MAX 9216
#define ETH_LEN 14
#define IP_LEN 20
#define UDP_LEN 8

struct seen {
	uint64_t t_ns;
	uint32_t len;
	uint8_t f[FRAME_MAX];
};

static volatile sig_atomic_t stop;

static void on_signal(int s)
{
	(void)s;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: gx-hostile -i IFACE [--rate FRAMES_PER_S] [--count N] [--seconds S] [--kinds LIST]\n"
		   "                  [--seed N]\n"
		   "kinds (comma separated, default all): random, truncated, other-job, ports, flip, replay\n"
		   "defaults: --rate 10000 --count 1000000 --seconds 10 --seed 1\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (!*s || *end || errno || v > max || *s == '-')
		return -1;
	*out = v;
	return 0;
}

static uint16_t ip_sum(const uint8_t *p, unsigned n)
{
	uint32_t s = 0;
	for (unsigned i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Make the UDP checksum of an Ethernet/IPv4/UDP frame right again (no-op if it is not one). */
static void fix_udp_csum(uint8_t *f, uint32_t len)
{
	if (len < ETH_LEN + IP_LEN + UDP_LEN || f[12] != 0x08 || f[13] != 0x00)
		return;
	uint8_t *ip = f + ETH_LEN;
	uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4;
	if (ihl < IP_LEN || ETH_LEN + ihl + UDP_LEN > len)
		return;
	uint8_t *udp = ip + ihl;
	uint32_t ulen = (uint32_t)(udp[4] << 8 | udp[5]);
	if (ulen < UDP_LEN || ETH_LEN + ihl + ulen > len)
		return;
	udp[6] = udp[7] = 0;
	uint32_t s = 17 + ulen;
	for (unsigned i = 12; i < 20; i += 2)
		s += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	for (uint32_t i = 0; i < ulen; i += 2)
		s += (uint32_t)(udp[i] << 8 | (i + 1 < ulen ? udp[i + 1] : 0));
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	uint16_t c = (uint16_t)~s;
	if (!c)
		c = 0xffff;
	udp[6] = (uint8_t)(c >> 8), udp[7] = (uint8_t)c;
}

/* Offset of the gx bytes in an Ethernet/IPv4/UDP frame, or 0 if it is not a gx frame. */
static uint32_t gx_offset(const uint8_t *f, uint32_t len)
{
	if (len < ETH_LEN + IP_LEN + UDP_LEN + sizeof(struct gx_hdr) || f[12] != 0x08 || f[13] != 0x00)
		return 0;
	uint32_t ihl = (uint32_t)(f[ETH_LEN] & 0x0f) * 4;
	if ((f[ETH_LEN] >> 4) != 4 || ihl < IP_LEN || f[ETH_LEN + 9] != 17)
		return 0;
	uint32_t off = ETH_LEN + ihl + UDP_LEN;
	uint16_t magic;
	if (off + sizeof(struct gx_hdr) > len)
		return 0;
	memcpy(&magic, f + off, 2);
	return magic == GX_MAGIC ? off : 0;
}

int main(int argc, char **argv)
{
	const char *ifname = NULL;
	uint64_t rate = 10000, count = 1000000, seconds = 10, seed = 1;
	unsigned kinds = (1u << NKINDS) - 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "-i") && v) {
			ifname = v;
		} else if (!strcmp(a, "--rate") && v) {
			bad = parse_u64(v, 10000000, &rate) || !rate;
		} else if (!strcmp(a, "--count") && v) {
			bad = parse_u64(v, UINT64_MAX, &count);
		} else if (!strcmp(a, "--seconds") && v) {
			bad = parse_u64(v, 86400, &seconds) || !seconds;
		} else if (!strcmp(a, "--seed") && v) {
			bad = parse_u64(v, UINT64_MAX, &seed);
		} else if (!strcmp(a, "--kinds") && v) {
			kinds = 0;
			char buf[256];
			snprintf(buf, sizeof(buf), "%s", v);
			for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				int k;
				for (k = 0; k < NKINDS && strcmp(t, kind_name[k]); k++)
					;
				if (!strcmp(t, "all"))
					kinds = (1u << NKINDS) - 1;
				else if (k == NKINDS) {
					fprintf(stderr, "gx-hostile: unknown kind '%s'\n", t);
					usage(stderr);
					return 2;
				} else {
					kinds |= 1u << k;
				}
			}
			bad = !kinds;
		} else {
			fprintf(stderr, "gx-hostile: unknown or incomplete argument '%s'\n", a);
			usage(stderr);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "gx-hostile: bad value '%s' for %s\n", v, a);
			return 2;
		}
		i++;
	}
	if (!ifname) {
		fprintf(stderr, "gx-hostile: -i IFACE is required\n");
		usage(stderr);
		return 2;
	}
	unsigned ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		fprintf(stderr, "gx-hostile: no interface '%s' here (run it in the host's namespace)\n", ifname);
		return 1;
	}
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
	if (fd < 0) {
		fprintf(stderr, "gx-hostile: raw socket: %s (needs root or CAP_NET_RAW)\n", strerror(errno));
		return 1;
	}
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)ifindex };
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		fprintf(stderr, "gx-hostile: bind to %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	uint8_t mymac[6];
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		fprintf(stderr, "gx-hostile: MAC address of %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	memcpy(mymac, ifr.ifr_hwaddr.sa_data, 6);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	static struct seen keep[KEEP];
	uint32_t nkeep = 0, kept_total = 0;
	uint64_t sent[NKINDS] = { 0 }, failed = 0, seen_gx = 0, ctr = 0;
	uint8_t f[FRAME_MAX], rx[FRAME_MAX];
	const uint64_t t0 = gx_now_ns(), period = 1000000000ull / rate;
	uint64_t next = t0, total = 0;
	unsigned k = 0;

	while (!stop && total < count && gx_now_ns() - t0 < seconds * 1000000000ull) {
		/* learn: the gx frames this host sends (their destinations are the other ranks) */
		for (int i = 0; i < 64; i++) {
			struct sockaddr_ll from;
			socklen_t fl = sizeof(from);
			ssize_t r = recvfrom(fd, rx, sizeof(rx), MSG_TRUNC, (struct sockaddr *)&from, &fl);
			if (r <= 0)
				break;
			if (r > (ssize_t)sizeof(rx) || from.sll_pkttype != PACKET_OUTGOING ||
			    memcmp(rx + 6, mymac, 6) || !gx_offset(rx, (uint32_t)r))
				continue;
			struct seen *s = &keep[kept_total++ % KEEP];
			s->t_ns = gx_now_ns();
			s->len = (uint32_t)r;
			memcpy(s->f, rx, (size_t)r);
			nkeep = nkeep < KEEP ? nkeep + 1 : KEEP;
			seen_gx++;
		}
		uint64_t now = gx_now_ns();
		if ((int64_t)(now - next) < 0) {
			if (next - now > 200000) {
				struct timespec d = { 0, 100000 };
				nanosleep(&d, NULL);
			}
			continue;
		}
		next += period;
		if ((int64_t)(now - next) > 100000000)   /* fell far behind: do not burst to catch up */
			next = now;

		do
			k = (k + 1) % NKINDS;
		while (!(kinds & (1u << k)));
		enum kind kind = (enum kind)k;
		uint32_t rnd = gx_rng_u32(seed, (uint32_t)ctr++);
		const struct seen *live = nkeep ? &keep[(kept_total - 1 - rnd % nkeep) % KEEP] : NULL;
		if (!live && kind != K_RANDOM)
			kind = K_PORTS;
		uint32_t len = 0;

		switch (kind) {
		case K_RANDOM:
			len = ETH_LEN + rnd % (1514 - ETH_LEN + 1);
			for (uint32_t i = 0; i < len; i++)
				f[i] = (uint8_t)gx_rng_u32(seed ^ 0x72, (uint32_t)(ctr * 2048 + i));
			if (live)
				memcpy(f, live->f, 6);         /* to a station that is there */
			else
				memset(f, 0xff, 6);
			break;
		case K_TRUNCATED:
			len = ETH_LEN + rnd % (live->len - ETH_LEN);
			memcpy(f, live->f, len);
			break;
		case K_FLIP: {
			len = live->len;
			memcpy(f, live->f, len);
			uint32_t nflip = 1 + rnd % 4;
			for (uint32_t b = 0; b < nflip; b++) {
				uint32_t bit = gx_rng_u32(seed ^ 0xf1, (uint32_t)(ctr * 8 + b)) % (8 * (len - 12));
				f[12 + bit / 8] ^= (uint8_t)(1u << (bit % 8));   /* anywhere after the MACs */
			}
			if (rnd & 0x100)
				fix_udp_csum(f, len);
			break;
		}
		case K_REPLAY: {
			const struct seen *old = NULL;
			for (uint32_t i = 0; i < nkeep && !old; i++) {
				const struct seen *s = &keep[(kept_total - 1 - (rnd + i) % nkeep) % KEEP];
				if (now - s->t_ns >= 100000000ull)
					old = s;
			}
			if (!old)
				old = &keep[(kept_total - nkeep) % KEEP];   /* the oldest there is */
			len = old->len;
			memcpy(f, old->f, len);
			break;
		}
		case K_OTHER_JOB: {
			len = live->len;
			memcpy(f, live->f, len);
			uint32_t off = gx_offset(f, len);
			struct gx_hdr h;
			memcpy(&h, f + off, sizeof(h));
			h.job ^= ((uint64_t)gx_rng_u32(seed ^ 0x0b, (uint32_t)ctr) << 32) | 1u;
			if (off + sizeof(h) + h.len <= len) {
				gx_hdr_seal(&h, f + off + sizeof(h));
				memcpy(f + off, &h, sizeof(h));
			}
			fix_udp_csum(f, len);
			break;
		}
		case K_PORTS: {
			uint32_t plen = 8 + rnd % 1400;
			len = ETH_LEN + IP_LEN + UDP_LEN + plen;
			memset(f, 0, ETH_LEN + IP_LEN + UDP_LEN);
			if (live) {
				memcpy(f, live->f, 12);          /* a learnt station and source */
				memcpy(f + ETH_LEN + 12, live->f + ETH_LEN + 12, 8);   /* its IPv4 addresses */
			} else {
				memset(f, 0xff, 6);
				f[6] = 0x02, f[11] = 0x77;
				uint8_t bc[4] = { 255, 255, 255, 255 };
				memcpy(f + ETH_LEN + 16, bc, 4);
			}
			f[12] = 0x08, f[13] = 0x00;
			uint8_t *ip = f + ETH_LEN, *udp = ip + IP_LEN;
			ip[0] = 0x45;
			ip[2] = (uint8_t)((IP_LEN + UDP_LEN + plen) >> 8), ip[3] = (uint8_t)(IP_LEN + UDP_LEN + plen);
			ip[8] = 64, ip[9] = 17;
			uint16_t c = ip_sum(ip, IP_LEN);
			ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
			uint16_t port = (uint16_t)(1 + gx_rng_u32(seed ^ 0x90, (uint32_t)ctr) % 65535);
			udp[0] = (uint8_t)(port >> 8), udp[1] = (uint8_t)port;
			udp[2] = (uint8_t)(port >> 8), udp[3] = (uint8_t)port;
			udp[4] = (uint8_t)((UDP_LEN + plen) >> 8), udp[5] = (uint8_t)(UDP_LEN + plen);
			for (uint32_t i = 0; i < plen; i++)
				udp[UDP_LEN + i] = (uint8_t)gx_rng_u32(seed ^ 0x13, (uint32_t)(ctr * 2048 + i));
			break;
		}
		default:
			break;
		}
		if (len < ETH_LEN)
			len = ETH_LEN;
		memcpy(f + 6, mymac, 6);                /* from this station, whatever else it claims */
		struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = (int)ifindex, .sll_halen = 6 };
		memcpy(to.sll_addr, f, 6);
		if (sendto(fd, f, len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)len)
			sent[kind]++;
		else
			failed++;
		total++;
	}
	double secs = (double)(gx_now_ns() - t0) / 1e9;
	uint64_t all = 0;
	for (int i = 0; i < NKINDS; i++)
		all += sent[i];
	printf("gx-hostile: %s: sent %llu frames in %.2f s (%.0f per second); gx frames seen %llu; not sent %llu\n",
	       ifname, (unsigned long long)all, secs, secs > 0 ? (double)all / secs : 0.0,
	       (unsigned long long)seen_gx, (unsigned long long)failed);
	for (int i = 0; i < NKINDS; i++)
		printf("gx-hostile: %-10s %llu\n", kind_name[i], (unsigned long long)sent[i]);
	close(fd);
	return 0;
}
