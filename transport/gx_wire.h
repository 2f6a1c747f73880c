/* gx_wire.h: the gx packet header, as it travels (after Ethernet/IPv4/UDP for dpdk, inside the UDP
 * payload for udp).  Internal to transport/ and to programs that talk to a backend directly (the raw
 * benchmark path, tests); applications and collectives see struct gx_desc instead (gx_net.h).
 * Little-endian; clusters must be homogeneous.  docs/transport.md documents every field. */
#ifndef GX_WIRE_H
#define GX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "gx_crc.h"
#include "gx_net.h"

#define GX_MAGIC 0x5867u         /* "gX" */
#define GX_WIRE_VERSION 3
#define GX_MAC_LEN 16             /* keyed (--auth-key-file): the MAC trailer after the payload */

enum gx_pkt_type {
	GX_PKT_DATA = 1,         /* reliable payload, delivered exactly once */
	GX_PKT_ACK = 2,          /* ack_psn cumulative + SACK bitmap in payload; aux = credits */
	GX_PKT_HEARTBEAT = 3,    /* liveness while idle */
	GX_PKT_ABORT = 4,        /* peer gives up on the job: fail fast */
	GX_PKT_RAW = 5,          /* unreliable payload (pingpong latency without the reliability layer) */
};

enum gx_pkt_flags {
	GX_F_ACK_REQ = 1u << 0,  /* receiver should ACK at once (= GX_DESC_ACK_REQ) */
	GX_F_RETX = 1u << 1,     /* retransmission */
	GX_F_LAST = 1u << 2,     /* last chunk of a step, collective-defined (= GX_DESC_LAST) */
	GX_F_ECHO_ORIG = 1u << 3,/* ACK: the packet at ack_psn-1 arrived in its first transmission, so the
				  * sender may time it from that send even if it resent it since (RTT
				  * samples that include a sleeping receiver's delay; spurious-RTO detection) */
	GX_F_RAW = 1u << 7,      /* set on every RAW packet (= GX_DESC_RAW) */
};

/* Every packet is sealed with a CRC32C over its payload and then this header (crc = 0), computed by
 * the sender at departure and checked by the receiver before anything else is read.  The last 16
 * bytes are the collective's struct gx_desc (gx_net.h), field for field, so a receiver is handed a
 * pointer into the packet and nothing is copied per packet. */
struct gx_hdr {
	uint16_t magic;          /* GX_MAGIC */
	uint8_t version;         /* GX_WIRE_VERSION */
	uint8_t type;            /* enum gx_pkt_type */
	uint16_t src_rank;
	uint16_t len;            /* payload bytes following this header */
	uint64_t job;            /* the job's identity: 64 random bits agreed at rendezvous */
	uint32_t incarnation;    /* which start of the job (a restart on the same store counts up) */
	uint32_t crc;            /* CRC32C of the payload, then of this header with crc = 0 */
	uint32_t psn;            /* per-peer packet sequence number (DATA) */
	uint32_t ack_psn;        /* cumulative ACK: all psn < ack_psn received */
	/* = struct gx_desc */
	uint32_t coll_id;        /* collective sequence number */
	uint32_t chunk;          /* chunk index within the collective step */
	uint16_t step;           /* algorithm step (ring step, halving-doubling round, ...) */
	uint8_t codec;           /* codec id of the payload (collective-defined, 0 = raw float32) */
	uint8_t flags;           /* enum gx_pkt_flags */
	uint32_t aux;            /* collective-defined (DATA) or credits (ACK) */
};
_Static_assert(sizeof(struct gx_hdr) == 48, "gx_hdr is 48 bytes on the wire");

/* The seal: CRC32C of the payload (pcrc = gx_crc32c(payload, h->len, 0)), continued over the header
 * with its crc field taken as 0. */
static inline uint32_t gx_hdr_crc(const struct gx_hdr *h, uint32_t pcrc)
{
	struct gx_hdr c = *h;

	c.crc = 0;
	return gx_crc32c(&c, sizeof(c), pcrc);
}

static inline void gx_hdr_seal(struct gx_hdr *h, const void *payload)
{
	h->crc = gx_hdr_crc(h, gx_crc32c(payload, h->len, 0));
}

/* The collective's part of a header. */
#define GX_HDR_DESC(h) ((const struct gx_desc *)(const void *)&(h)->coll_id)

_Static_assert(offsetof(struct gx_hdr, coll_id) + offsetof(struct gx_desc, coll_id) == offsetof(struct gx_hdr, coll_id) &&
	       offsetof(struct gx_hdr, chunk) - offsetof(struct gx_hdr, coll_id) == offsetof(struct gx_desc, chunk) &&
	       offsetof(struct gx_hdr, step) - offsetof(struct gx_hdr, coll_id) == offsetof(struct gx_desc, step) &&
	       offsetof(struct gx_hdr, codec) - offsetof(struct gx_hdr, coll_id) == offsetof(struct gx_desc, codec) &&
	       offsetof(struct gx_hdr, flags) - offsetof(struct gx_hdr, coll_id) == offsetof(struct gx_desc, flags) &&
	       offsetof(struct gx_hdr, aux) - offsetof(struct gx_hdr, coll_id) == offsetof(struct gx_desc, aux) &&
	       sizeof(struct gx_hdr) - offsetof(struct gx_hdr, coll_id) == sizeof(struct gx_desc),
	       "the header ends with a struct gx_desc");
_Static_assert((unsigned)GX_DESC_ACK_REQ == (unsigned)GX_F_ACK_REQ && (unsigned)GX_DESC_LAST == (unsigned)GX_F_LAST &&
	       (unsigned)GX_DESC_RAW == (unsigned)GX_F_RAW, "a desc's flags are the header's");

#endif
