/* gx_topology.h: where the engine runs.  With hwloc (GX_HAVE_HWLOC) the machine's topology and
 * the NIC's locality; without it /sys (NUMA node of the NIC's PCI device) and the affinity mask.
 *
 * The NIC is the device the transport backend names (gx_net_device): a PCI address (dpdk on a NIC,
 * 0000:3b:00.0) or a network interface (udp: the one that owns its address; /sys/class/net/IF/device).
 * Virtual devices (veth, loopback, vdevs) have no PCI device: then any allowed core will do.
 * Internal to gx (gx-info prints it); not installed. */
#ifndef GX_TOPOLOGY_H
#define GX_TOPOLOGY_H

#include <stdio.h>

#include "gx_status.h"

struct gx_core_choice {
	int cpu;                  /* OS index of the chosen core's first PU */
	int numa;                 /* NUMA node of the NIC, -1 unknown */
	char nic[64];             /* interface or PCI address the choice was based on ("" none) */
	char why[256];            /* one line: how the core was chosen */
};

/* Choose the engine's core: among the cores this process may use, those local to the NIC's NUMA
 * node if known; avoid the calling thread's core (the application's) when another one is free;
 * spread co-located ranks by local_rank (-1 unknown).  device: as gx_net_device gives it (NULL or
 * "": none). */
gx_status_t gx_topo_pick_core(const char *device, int is_pci, int local_rank, struct gx_core_choice *out);

/* Pin the calling thread to cpu.  GX_ERR_INVAL if the cpu is not allowed to this process. */
gx_status_t gx_topo_pin_self(int cpu);

/* Human-readable summary: packages, cores, PUs, NUMA nodes, NICs and their NUMA nodes. */
void gx_topo_print(FILE *f);

#endif
