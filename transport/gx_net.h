/* gx_net.h: the reliable net, what collectives (and applications that move their own packets) use.
 *
 * A gx_net runs one backend (udp, dpdk, loop; picked by name at run time) and makes its lossy
 * datagrams exact: per-peer sequence numbers, cumulative + selective ACKs, retransmission from a
 * periodic loss scan, credits, duplicate suppression, peer timeouts, counters and fault hooks.
 *
 * Threading: a gx_net and its backend belong to one thread at a time (the engine's polling thread,
 * or the application thread in application-driven mode).  No locks, no syscalls on the hot path
 * beyond what the backend needs (udp: sendmmsg/recvmmsg; dpdk: none).
 * Conventions (all of gx): constructors are gx_X_create(..., &out) returning a gx_status_t, paired
 * with gx_X_destroy(); errors are negative gx_status_t values with a message in gx_last_error().
 */
#ifndef GX_NET_H
#define GX_NET_H

#include <stddef.h>
#include <stdint.h>

#include "gx_api.h"
#include "gx_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GX_ADDR_MAX 64           /* opaque address blob exchanged through the rendezvous */
#define GX_MAX_RANKS 4096
#define GX_SETTINGS_MAX 16       /* backend settings one gx_transport_opts carries */

struct gx_fault {                 /* fault injection, applied by gx_net for any backend (tests) */
	double drop;              /* probability a sent or received packet is dropped */
	double dup;               /* probability a packet is delivered twice */
	double reorder;           /* probability a packet is held back and sent after later ones */
	uint32_t delay_us;        /* fixed extra delay on every received packet */
	uint64_t seed;
};

struct gx_setting {
	const char *name, *value;
};

/* Options for creating a net.  Numeric fields left 0 (and a NULL backend) take the defaults of the
 * settings table, which `gx-bench --help` prints; gx_transport_opts_default() sets them all and
 * applies the environment. */
struct gx_transport_opts {
	const char *backend;      /* "udp" (default), "dpdk", "loop" */
	uint32_t rank, nranks;
	uint32_t job_id;
	uint32_t mtu;             /* link MTU in bytes; payload = mtu - headers; 0 ("auto"): the backend's
				   * choice (udp: the bound interface's MTU) */
	uint32_t window;          /* packets in flight per peer */
	uint32_t peer_timeout_ms; /* no progress for this long -> GX_ERR_PEER naming the peer */
	uint32_t stall_timeout_ms;/* a collective that receives nothing for this long while its peers
				   * are alive fails naming the rank it waits for (collectives read it) */
	uint32_t rto_min_us;      /* floor of the retransmission timeout */
	struct gx_fault fault;
	uint32_t first_psn;       /* sequence number of the first DATA packet each way (all ranks must
				   * agree; tests start near 2^32 to cover wrap-around) */
	const char *auth_key_file;/* keyed: every packet carries a MAC (BLAKE2b-128, libsodium) over header
				   * and payload, with a key derived from this file (same file on every rank) */
	/* The backend's own settings by name, e.g. {"udp-ip", "10.0.0.2"} or {"dpdk-eal", "..."}: each
	 * backend declares its names, defaults and meanings; names of another backend are ignored.
	 * Set them with gx_transport_opts_set(). */
	struct gx_setting settings[GX_SETTINGS_MAX];
	uint32_t nsettings;
};

/* Every field at its default (backend "udp"), then the GX_* environment variables of the net's and the
 * backends' settings (GX_MTU, GX_UDP_IP, ...); GX_ERR_INVAL names a bad one. */
GX_API gx_status_t gx_transport_opts_default(struct gx_transport_opts *o);
/* Set a transport setting by its flag name ("mtu", "window", "udp-ip", "dpdk-eal", ...).  The value is
 * checked now (GX_ERR_INVAL naming the setting); strings are not copied.  Unknown names are
 * GX_ERR_INVAL too. */
GX_API gx_status_t gx_transport_opts_set(struct gx_transport_opts *o, const char *name, const char *value);
/* Comma-separated names of the backends this build has, e.g. "udp,dpdk,loop". */
GX_API const char *gx_transport_list(void);

struct gx_backend_counters {
	uint64_t tx_pkts, tx_bytes, rx_pkts, rx_bytes;
	uint64_t tx_full;         /* tx_burst could not take every packet (ring/socket full) */
	uint64_t rx_foreign;      /* frames that were not for us at the link level (other protocol/port) */
	uint64_t tx_offload_msgs; /* udp: GSO messages that carried several datagrams (0: offload off) */
	uint64_t rx_offload_msgs; /* udp: GRO messages that held several datagrams */
};

struct gx_net;

/* sent/received count DATA packets (first transmissions / deliveries).  Every packet received is
 * checked in this order, and the first failure drops it and counts it once: malformed (shorter than
 * a header, or a length that is not the datagram's), bad_crc (the CRC32C seal over payload and
 * header does not hold: corrupt), malformed again (magic, version, type, src_rank, impossible ack),
 * other_job (sealed but another job's identity), other_incarnation (this job's identity, another
 * start of it: a stray from an earlier run), dropped (not for us: unknown source address, peer not
 * connected); out_of_window: DATA psn beyond the receive window.  The fault_* fields count what the
 * fault hooks did on send. */
struct gx_peer_counters {
	uint64_t sent, received, retransmitted, duplicates, out_of_window, malformed, dropped;
	uint64_t acks_sent, acks_received, rto_events;
	uint32_t srtt_us, rto_us, inflight;
	uint64_t fast_retransmits, heartbeats_sent, fault_dropped, fault_duplicated, fault_reordered;
	uint64_t bad_crc, other_job, other_incarnation;
	uint64_t bad_mac;         /* keyed: the MAC trailer does not hold (forged or corrupt) */
	uint64_t replayed;        /* a control packet not newer than the last taken from that peer */
};
/* gx_net_peer_counters(n, GX_PEER_ANY, &c): totals over every peer plus the packets that could not
 * be attributed to a peer (truncated frames, foreign addresses, out-of-range src_rank). */
#define GX_PEER_ANY UINT32_MAX

/* What a collective stamps on a DATA packet, and what the receiver is handed with its payload. */
struct gx_desc {
	uint32_t coll_id;
	uint32_t chunk;
	uint16_t step;
	uint8_t codec;
	uint8_t flags;            /* GX_DESC_* */
	uint32_t aux;
};
enum gx_desc_flags {
	GX_DESC_ACK_REQ = 1u << 0,/* send: the receiver should acknowledge at once */
	GX_DESC_LAST = 1u << 2,   /* last chunk of a step (collective-defined; carried to the receiver) */
	GX_DESC_RAW = 1u << 7,    /* receive: an unreliable raw packet (benchmarks), not DATA */
	/* on receive, the other bits are the net's own */
};

/* Called exactly once per DATA packet received (never for duplicates).  `payload` is valid only
 * during the call.  Return GX_OK, or a negative status to stop gx_net_poll with that status.
 * Raw packets that reach the net are handed to fn as they come (GX_DESC_RAW; no ordering, no
 * duplicate suppression). */
typedef gx_status_t (*gx_deliver_fn)(void *arg, uint32_t peer, const struct gx_desc *d,
				     const void *payload, uint32_t len);

/* Create the backend o->backend names and the reliability layer over it. */
GX_API gx_status_t gx_net_create(const struct gx_transport_opts *o, struct gx_net **out);
/* Flushes what is unacknowledged for a short grace period, then frees everything. */
GX_API void gx_net_destroy(struct gx_net *n);
GX_API gx_status_t gx_net_local_addr(struct gx_net *n, void *blob, size_t *len);
GX_API gx_status_t gx_net_connect(struct gx_net *n, uint32_t peer, const void *blob, size_t len);

/* Largest payload a DATA packet carries (backend max_msg - the gx header). */
GX_API uint32_t gx_net_max_payload(const struct gx_net *n);

/* Zero-copy send: reserve a payload buffer for `peer` (NULL and GX_ERR_AGAIN via *st when the
 * window or credits are exhausted: poll and retry; GX_ERR_PEER once the peer is declared dead),
 * fill up to gx_net_max_payload bytes, commit.  The net keeps the bytes until acknowledged.
 * Committed packets are queued and leave at the next gx_net_poll()/gx_net_flush() (or as soon as a
 * burst's worth is queued), so a loop of sends is batched into one backend call. */
GX_API void *gx_net_reserve(struct gx_net *n, uint32_t peer, gx_status_t *st);
GX_API gx_status_t gx_net_commit(struct gx_net *n, uint32_t peer, const struct gx_desc *d, uint32_t len);
/* Copying convenience: reserve + memcpy + commit. */
GX_API gx_status_t gx_net_send(struct gx_net *n, uint32_t peer, const struct gx_desc *d,
			       const void *payload, uint32_t len);

/* One turn of the loop: receive a burst, process ACKs, deliver DATA through `fn`, send due
 * ACKs, flush queued transmits, and every so often scan for losses and heartbeats.
 * Returns the number of packets delivered (>= 0), or a negative status: GX_ERR_PEER when a peer
 * made no progress for peer_timeout_ms (gx_last_error() names the rank), or fn's error. */
GX_API int gx_net_poll(struct gx_net *n, gx_deliver_fn fn, void *arg);

/* Hand queued packets to the backend now (gx_net_poll does this first thing anyway). */
GX_API void gx_net_flush(struct gx_net *n);

/* Why a rank gives up, as its ABORT packet tells every peer: each survivor names the rank at fault,
 * not the rank that passed the news on (a rank that fails because of a received ABORT relays the
 * original cause). */
enum gx_abort_reason {
	GX_ABORT_ERROR = 0,      /* an error of its own (its output says which) */
	GX_ABORT_SIGNAL = 1,     /* stopped by a signal; detail = the signal number */
	GX_ABORT_DEAD = 2,       /* `rank` made no progress for detail ms: dead, stopped or cut off */
	GX_ABORT_COLL = 3,       /* a collective failed; info and detail are the collective layer's */
	GX_ABORT_LEFT = 4,       /* not a failure: `rank` finished and closed its net (gx_net_destroy) */
};
struct gx_abort {
	uint8_t reason;           /* enum gx_abort_reason */
	uint8_t pad[3];
	uint32_t rank;            /* the rank at fault */
	uint32_t detail;
	uint32_t from;            /* the rank that found the failure (kept when a rank passes it on) */
	uint8_t info[48];
};

/* Fail fast: send ABORT carrying why this net failed (gx_net_fail, a dead peer, a signal, a received
 * ABORT; else GX_ABORT_ERROR) to every connected peer; their gx_net_poll then fails at once with a
 * message naming the rank at fault instead of waiting for the peer timeout.  gx_net_destroy does it
 * itself after a failure. */
GX_API void gx_net_abort(struct gx_net *n);
/* Send this ABORT to every connected peer (gx_net_abort sends the net's own reason). */
GX_API void gx_net_send_abort(struct gx_net *n, const struct gx_abort *why);
/* Record that this net failed: every later poll returns `status` with the message, and a later
 * gx_net_abort tells the peers `why` (why->from is set to this rank).  The first failure stays. */
GX_API gx_status_t gx_net_fail(struct gx_net *n, gx_status_t status, const struct gx_abort *why,
			       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Why the net failed: GX_OK and *why when it has (its own failure or a received ABORT), else
 * GX_ERR_INVAL. */
GX_API gx_status_t gx_net_failure(const struct gx_net *n, struct gx_abort *why);
/* The last ABORT `peer` sent about a failure it found itself (a->from == peer), else the first one it
 * passed on: 1 and *a, or 0 when none came. */
GX_API int gx_net_peer_abort(const struct gx_net *n, uint32_t peer, struct gx_abort *a);
/* 1 when `peer` closed its net after finishing (sent GX_ABORT_LEFT): nothing more will come from it. */
GX_API int gx_net_peer_left(const struct gx_net *n, uint32_t peer);

/* Packets not yet acknowledged, over all peers (0 = everything sent has arrived). */
GX_API uint32_t gx_net_inflight(const struct gx_net *n);

/* Raise GX_ERR_PEER if `peer` has not been heard from (any packet) since `since_ns` for longer than
 * the peer timeout.  Collectives call this for the peers they are waiting on.  A peer that left
 * cleanly (gx_net_peer_left) is not dead: GX_OK. */
GX_API gx_status_t gx_net_check_peer(struct gx_net *n, uint32_t peer, uint64_t since_ns);

GX_API GX_API void gx_net_peer_counters(const struct gx_net *n, uint32_t peer, struct gx_peer_counters *c);
GX_API void gx_net_backend_counters(const struct gx_net *n, struct gx_backend_counters *c);
GX_API uint32_t gx_net_rank(const struct gx_net *n);
GX_API uint32_t gx_net_nranks(const struct gx_net *n);
/* The job identity stamped on and required of every packet: 64 bits (default: the job id) and the
 * incarnation (default 0).  The communicator sets it from the rendezvous, before connecting peers;
 * GX_ERR_INVAL once a peer is connected. */
GX_API gx_status_t gx_net_set_identity(struct gx_net *n, uint64_t job, uint32_t incarnation);
GX_API void gx_net_identity(const struct gx_net *n, uint64_t *job, uint32_t *incarnation);
GX_API const char *gx_net_backend_name(const struct gx_net *n);
GX_API uint32_t gx_net_stall_timeout_ms(const struct gx_net *n);

/* The device the backend sends through: a PCI address (*is_pci = 1) or an interface name;
 * GX_ERR_NODEV when it has none (loopback, in-process).  The engine is pinned near it. */
GX_API gx_status_t gx_net_device(struct gx_net *n, char *name, size_t len, int *is_pci);

/* Register memory the backend's device may read or write in place (verbs); a no-op handle for
 * backends that copy.  Deregister before freeing the memory. */
struct gx_mr;
GX_API gx_status_t gx_net_mem_register(struct gx_net *n, void *addr, size_t len, struct gx_mr **out);
GX_API void gx_net_mem_deregister(struct gx_net *n, struct gx_mr *mr);

#ifdef __cplusplus
}
#endif

#endif
