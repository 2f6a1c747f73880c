/* gx_backend.h: what a transport backend implements (driver-facing; not installed).
 *
 * A backend moves unreliable datagrams to numbered peers, in bursts; the reliable net (gx_net.h)
 * runs over any of them.  A backend is one file (or folder) that fills a const struct gx_backend_ops
 * with designated initializers, plus one line in backend.c's registry; nothing above transport/
 * changes.  It owns:
 *  - its settings: an option table (gx_option.h) that --help, the GX_* environment and the docs read;
 *    gx_backend_settings() hands it their values at create time;
 *  - its hardware knowledge: `device` names the NIC it sends through (the engine is pinned near it);
 *  - memory registration, for backends whose hardware reads gradients in place (verbs).
 * Conventions: bursts return how many they handled; everything else returns a gx_status_t with a
 * message from gx_error() that says what to do.
 */
#ifndef GX_BACKEND_H
#define GX_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "gx_net.h"
#include "gx_option.h"
#include "gx_wire.h"

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

struct gx_backend_ops {
	size_t size;              /* sizeof(struct gx_backend_ops): ABI guard */
	const char *name;
	const struct gx_option_table *options;   /* this backend's settings (may be NULL) */
	/* Create a backend for rank o->rank of o->nranks. */
	gx_status_t (*create)(const struct gx_transport_opts *o, struct gx_backend **out);
	void (*destroy)(struct gx_backend *b);
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
	/* The device the backend sends through (may be NULL): *is_pci = 1 and a PCI address
	 * ("0000:3b:00.0"), or 0 and a network interface name; GX_ERR_NODEV when there is none
	 * (loopback, an in-process backend). */
	gx_status_t (*device)(struct gx_backend *b, char *name, size_t len, int *is_pci);
	/* Register [addr, addr+len) for the device to read or write in place (may be NULL: the backend
	 * copies and needs no registration). */
	gx_status_t (*mem_register)(struct gx_backend *b, void *addr, size_t len, void **handle);
	void (*mem_deregister)(struct gx_backend *b, void *handle);
};

struct gx_backend {
	const struct gx_backend_ops *ops;
	uint32_t rank, nranks;
};

/* Backend lookup by name ("" or NULL: udp); GX_ERR_INVAL naming the available ones if unknown. */
gx_status_t gx_backend_find(const char *name, const struct gx_backend_ops **out);
/* Every backend of this build, in registry order (NULL past the end). */
const struct gx_backend_ops *gx_backend_at(size_t i);

/* The backend under a net (the raw pingpong path and tests). */
struct gx_backend *gx_net_backend(struct gx_net *n);

/* Fill `settings` (the struct t's offsets point into) with t's defaults, then with every value of
 * o->settings whose name t declares. */
gx_status_t gx_backend_settings(const struct gx_option_table *t, const struct gx_transport_opts *o,
				void *settings);

#endif
