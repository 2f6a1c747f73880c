/* gx_transport.h: how gx moves packets.
 *
 * Two levels:
 *  1. A backend (struct gx_backend_ops): unreliable datagrams to numbered peers, in bursts.
 *     Backends: "udp" (kernel sockets, default), "dpdk" (DPDK ethdev port), later "rdma".
 *     Picked at run time by name; adding one touches nothing above this file.
 *  2. The net (struct gx_net): the reliability layer every datagram backend shares: per-peer
 *     sequence numbers, cumulative + selective ACKs, retransmission from a periodic loss scan,
 *     credits, duplicate suppression, peer timeouts, counters and fault-injection hooks.
 *     Collectives use only the gx_net_* calls.
 *
 * Threading: a gx_net and its backend belong to one thread at a time (the engine's polling thread,
 * or the application thread in application-driven mode).  No locks, no syscalls on the hot path
 * beyond what the backend needs (udp: sendmmsg/recvmmsg; dpdk: none).
 */
#ifndef GX_TRANSPORT_H
#define GX_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "gx_status.h"

#define GX_ADDR_MAX 64           /* opaque address blob exchanged through the rendezvous */
#define GX_MAX_RANKS 4096

/* ---------------------------------------------------------------------------------------------
 * Wire header: in front of every gx payload (after Ethernet/IPv4/UDP for dpdk, inside the UDP
 * payload for udp).  Little-endian; clusters must be homogeneous.  docs/transport.md documents it.
 */
#define GX_MAGIC 0x5867u         /* "gX" */
#define GX_WIRE_VERSION 1

enum gx_pkt_type {
	GX_PKT_DATA = 1,         /* reliable payload, delivered exactly once */
	GX_PKT_ACK = 2,          /* ack_psn cumulative + SACK bitmap in payload; aux = credits */
	GX_PKT_HEARTBEAT = 3,    /* liveness while idle */
	GX_PKT_ABORT = 4,        /* peer gives up on the job: fail fast */
	GX_PKT_RAW = 5,          /* unreliable payload (pingpong latency without the reliability layer) */
};

enum gx_pkt_flags {
	GX_F_ACK_REQ = 1u << 0,  /* receiver should ACK at once (last packet of a burst/step) */
	GX_F_RETX = 1u << 1,     /* retransmission */
	GX_F_LAST = 1u << 2,     /* last chunk of a step (collective-defined) */
	GX_F_ECHO_ORIG = 1u << 3,/* ACK: the packet at ack_psn-1 arrived in its first transmission, so the
				  * sender may time it from that send even if it resent it since (RTT
				  * samples that include a sleeping receiver's delay; spurious-RTO detection) */
};

struct gx_hdr {
	uint16_t magic;          /* GX_MAGIC */
	uint8_t version;         /* GX_WIRE_VERSION */
	uint8_t type;            /* enum gx_pkt_type */
	uint8_t flags;           /* enum gx_pkt_flags */
	uint8_t codec;           /* codec id of the payload (collective-defined, 0 = raw float32) */
	uint16_t src_rank;
	uint32_t job_id;         /* packets of another job are counted as foreign and dropped */
	uint32_t epoch;          /* membership epoch */
	uint32_t coll_id;        /* collective sequence number */
	uint32_t psn;            /* per-peer packet sequence number (DATA) */
	uint32_t ack_psn;        /* cumulative ACK: all psn < ack_psn received */
	uint32_t chunk;          /* chunk index within the collective step */
	uint16_t step;           /* algorithm step (ring step, halving-doubling round, ...) */
	uint16_t len;            /* payload bytes following this header */
	uint32_t aux;            /* collective-defined (DATA) or credits (ACK) */
};
_Static_assert(sizeof(struct gx_hdr) == 40, "gx_hdr is 40 bytes on the wire");

/* ---------------------------------------------------------------------------------------------
 * Options for opening a transport.  Zero means "default" for every numeric field.
 */
struct gx_fault {                 /* fault injection, applied by gx_net for any backend (tests) */
	double drop;              /* probability a sent or received packet is dropped */
	double dup;               /* probability a packet is delivered twice */
	double reorder;           /* probability a packet is held back and sent after later ones */
	uint32_t delay_us;        /* fixed extra delay on every received packet */
	uint64_t seed;
};

struct gx_transport_opts {
	const char *backend;      /* "udp" (default), "dpdk", "rdma" */
	uint32_t rank, nranks;
	uint32_t job_id;
	uint32_t mtu;             /* link MTU in bytes (default 1500); payload = mtu - headers */
	/* udp */
	const char *udp_ip;       /* local IPv4 address to bind (default 127.0.0.1; "auto": first non-loopback
				   * IPv4 of this host, else 127.0.0.1).  Multi-host jobs must set it. */
	uint16_t udp_port;        /* 0: ephemeral */
	/* dpdk */
	const char *dpdk_eal;     /* EAL arguments, space separated, e.g. "--no-huge --no-shconf --vdev=net_memif0,role=server" */
	const char *dpdk_port;    /* PCI address or device name (e.g. "0000:3b:00.0", "net_af_packet0"); default: first port */
	const char *dpdk_ip;      /* IPv4 to use as source (default 10.0.0.<rank+1>) */
	/* reliability */
	uint32_t window;          /* packets in flight per peer (default 256) */
	uint32_t peer_timeout_ms; /* no progress for this long -> GX_ERR_PEER naming the peer (default 10000) */
	uint32_t rto_min_us;      /* floor of the retransmission timeout (default 200) */
	struct gx_fault fault;
	uint32_t first_psn;       /* sequence number of the first DATA packet each way (default 0; all
				   * ranks must agree; tests start near 2^32 to cover wrap-around) */
};

/* ---------------------------------------------------------------------------------------------
 * Backend interface (level 1).  Bursts return how many were handled; int functions return a
 * gx_status_t.  A backend fills in struct gx_backend's common fields and may extend it by
 * embedding it as the first member of its own struct.
 */
struct gx_backend;

/* rx gx_msg.peer when the backend cannot tell the sender: the net trusts gx_hdr.src_rank (after
 * checking it names a connected peer).  A backend that knows source addresses reports the rank
 * that owns the address even when gx_hdr.src_rank names another (the net then counts the packet
 * as malformed for that rank: spoofed or corrupt), and GX_PEER_FOREIGN only when no connected peer
 * owns it (the net counts it as dropped, unattributed). */
#define GX_PEER_UNKNOWN UINT32_MAX
#define GX_PEER_FOREIGN (UINT32_MAX - 1)

struct gx_msg {                   /* one datagram */
	uint32_t peer;            /* tx: destination rank; rx: sender rank if the backend knows it (checked
				   * against gx_hdr.src_rank), GX_PEER_UNKNOWN or GX_PEER_FOREIGN */
	uint32_t len;             /* bytes at data (gx_hdr + payload) */
	void *data;               /* tx: caller's bytes (copied by tx_burst); rx: backend-owned until rx_release */
	void *priv;               /* backend's handle for rx_release */
};

struct gx_backend_counters {
	uint64_t tx_pkts, tx_bytes, rx_pkts, rx_bytes;
	uint64_t tx_full;         /* tx_burst could not take every packet (ring/socket full) */
	uint64_t rx_foreign;      /* frames that were not for us at the link level (other protocol/port) */
};

struct gx_backend_ops {
	size_t size;              /* sizeof(struct gx_backend_ops): ABI guard */
	const char *name;
	/* Create a backend; on failure return NULL after gx_error() says why and what to do. */
	struct gx_backend *(*open)(const struct gx_transport_opts *o);
	/* Opaque address other ranks need to reach this one (<= GX_ADDR_MAX bytes). */
	gx_status_t (*local_addr)(struct gx_backend *b, void *blob, size_t *len);
	/* Learn how to reach `peer` from its blob. */
	gx_status_t (*connect)(struct gx_backend *b, uint32_t peer, const void *blob, size_t len);
	/* Largest datagram (gx_hdr + payload) this backend carries. */
	uint32_t (*max_msg)(struct gx_backend *b);
	uint16_t (*tx_burst)(struct gx_backend *b, const struct gx_msg *m, uint16_t n);
	uint16_t (*rx_burst)(struct gx_backend *b, struct gx_msg *m, uint16_t n);
	void (*rx_release)(struct gx_backend *b, struct gx_msg *m, uint16_t n);
	void (*counters)(struct gx_backend *b, struct gx_backend_counters *c);
	void (*close)(struct gx_backend *b);
};

struct gx_backend {
	const struct gx_backend_ops *ops;
	uint32_t rank, nranks;
};

/* Backend lookup by name; NULL if unknown or not built (gx_error says which are available). */
const struct gx_backend_ops *gx_backend_find(const char *name);
/* Comma-separated names of the backends this build has, e.g. "udp,dpdk". */
const char *gx_backend_list(void);

/* ---------------------------------------------------------------------------------------------
 * Reliable net (level 2): what collectives use.
 */
struct gx_net;

/* sent/received count DATA packets (first transmissions / deliveries).  malformed: failed a header
 * check (magic, version, type, length, src_rank, impossible ack); dropped: well-formed but not for
 * us (another job_id, unknown source address, peer not connected); out_of_window: DATA psn beyond
 * the receive window.  The fault_* fields (appended) count what the fault hooks did on send. */
struct gx_peer_counters {
	uint64_t sent, received, retransmitted, duplicates, out_of_window, malformed, dropped;
	uint64_t acks_sent, acks_received, rto_events;
	uint32_t srtt_us, rto_us, inflight;
	uint64_t fast_retransmits, heartbeats_sent, fault_dropped, fault_duplicated, fault_reordered;
};
/* gx_net_peer_counters(n, GX_PEER_ANY, &c): totals over every peer plus the packets that could not
 * be attributed to a peer (truncated frames, foreign addresses, out-of-range src_rank). */
#define GX_PEER_ANY UINT32_MAX

/* Where a collective stamps its fields on a DATA packet. */
struct gx_tx_desc {
	uint32_t coll_id;
	uint32_t chunk;
	uint16_t step;
	uint8_t codec;
	uint8_t flags;            /* GX_F_LAST / GX_F_ACK_REQ; the net adds its own */
	uint32_t aux;
};

/* Called exactly once per DATA packet received (never for duplicates).  `payload` is valid only
 * during the call.  Return GX_OK, or a negative status to stop gx_net_poll with that status.
 * GX_PKT_RAW packets that reach the net are handed to fn as they come (h->type tells; no
 * ordering, no duplicate suppression). */
typedef gx_status_t (*gx_deliver_fn)(void *arg, uint32_t peer, const struct gx_hdr *h,
				     const void *payload, uint32_t len);

/* Open backend + reliability.  NULL on failure with gx_last_error() set. */
struct gx_net *gx_net_open(const struct gx_transport_opts *o);
gx_status_t gx_net_local_addr(struct gx_net *n, void *blob, size_t *len);
gx_status_t gx_net_connect(struct gx_net *n, uint32_t peer, const void *blob, size_t len);
void gx_net_close(struct gx_net *n);   /* flushes what is unacknowledged for a short grace period */

/* Largest payload a DATA packet carries (backend max_msg - sizeof(gx_hdr)). */
uint32_t gx_net_max_payload(const struct gx_net *n);

/* Zero-copy send: reserve a payload buffer for `peer` (NULL and GX_ERR_AGAIN via *st when the
 * window or credits are exhausted: poll and retry; GX_ERR_PEER once the peer is declared dead),
 * fill up to gx_net_max_payload bytes, commit.  The net keeps the bytes until acknowledged.
 * Committed packets are queued and leave at the next gx_net_poll()/gx_net_flush() (or as soon as a
 * burst's worth is queued), so a loop of sends is batched into one backend call. */
void *gx_net_reserve(struct gx_net *n, uint32_t peer, gx_status_t *st);
gx_status_t gx_net_commit(struct gx_net *n, uint32_t peer, const struct gx_tx_desc *d, uint32_t len);
/* Copying convenience: reserve + memcpy + commit. */
gx_status_t gx_net_send(struct gx_net *n, uint32_t peer, const struct gx_tx_desc *d,
			const void *payload, uint32_t len);

/* One turn of the loop: receive a burst, process ACKs, deliver DATA through `fn`, send due
 * ACKs, flush queued transmits, and every so often scan for losses and heartbeats.
 * Returns the number of packets delivered (>= 0), or a negative status: GX_ERR_PEER when a peer
 * made no progress for peer_timeout_ms (gx_last_error() names the rank), or fn's error. */
int gx_net_poll(struct gx_net *n, gx_deliver_fn fn, void *arg);

/* Hand queued packets to the backend now (gx_net_poll does this first thing anyway). */
void gx_net_flush(struct gx_net *n);

/* Fail fast: send ABORT to every connected peer; their gx_net_poll then returns GX_ERR_PEER
 * ("peer rank R aborted") instead of waiting for the peer timeout. */
void gx_net_abort(struct gx_net *n);

/* Packets not yet acknowledged, over all peers (0 = everything sent has arrived). */
uint32_t gx_net_inflight(const struct gx_net *n);

/* Raise GX_ERR_PEER if `peer` has not been heard from (any packet) since `since_ns` for longer than
 * the peer timeout.  Collectives call this for the peers they are waiting on. */
gx_status_t gx_net_check_peer(struct gx_net *n, uint32_t peer, uint64_t since_ns);

void gx_net_peer_counters(const struct gx_net *n, uint32_t peer, struct gx_peer_counters *c);
void gx_net_backend_counters(const struct gx_net *n, struct gx_backend_counters *c);
uint32_t gx_net_rank(const struct gx_net *n);
uint32_t gx_net_nranks(const struct gx_net *n);
uint32_t gx_net_job_id(const struct gx_net *n);   /* stamped on every packet (raw senders copy it) */
/* The backend underneath (pingpong uses it directly to measure the raw path). */
struct gx_backend *gx_net_backend(struct gx_net *n);

#endif
