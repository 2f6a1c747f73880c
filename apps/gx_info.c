/* gx-info: what this machine and this build offer gx: the topology (hwloc), NICs and their NUMA
 * nodes, DPDK ports (only with --dpdk-eal: EAL initialisation has side effects), verbs devices, the
 * core the engine would pick for the given transport settings, and the transports built in.
 * Takes the runtime settings of gx_config.h (--transport, --udp-ip, --dpdk-port, ...); the NIC is
 * the one the transport names once created (a world of one rank). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx_bootstrap.h"
#include "gx_build_config.h"
#include "gx_codec.h"
#include "gx_config.h"
#include "gx_topology.h"
#include "gx_net.h"

/* The value a backend setting was given (NULL: not given). */
static const char *setting(const struct gx_transport_opts *o, const char *name)
{
	for (uint32_t i = 0; i < o->nsettings; i++)
		if (!strcmp(o->settings[i].name, name))
			return o->settings[i].value;
	return NULL;
}

#if GX_HAVE_RDMA
#include <infiniband/verbs.h>
#endif
#if GX_HAVE_DPDK
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#endif

/* What a bug report needs: the version and what this build has (gx-bench --version prints the same). */
static void version(FILE *f)
{
	fprintf(f, "gx-info %s\n", GX_VERSION);
	fprintf(f, "built with: dpdk %s, rdma verbs %s, hwloc %s, keyed packets (libsodium) yes\n",
		GX_HAVE_DPDK ? "yes" : "no", GX_HAVE_RDMA ? "yes (devices listed by gx-info)" : "no",
		GX_HAVE_HWLOC ? "yes" : "no");
	fprintf(f, "transports: %s\n", gx_transport_list());
#if defined(__x86_64__)
	fprintf(f, "codec kernels compiled in: scalar, avx2, avx512; this CPU runs: %s\n",
		gx_simd_name(gx_simd_active()));
#else
	fprintf(f, "codec kernels compiled in: scalar; this CPU runs: %s\n", gx_simd_name(gx_simd_active()));
#endif
}

static void usage(FILE *f)
{
	fprintf(f, "usage: gx-info [--version] [runtime settings]\n"
		   "Prints the topology, NICs, DPDK ports (with --dpdk-eal only), verbs devices, the core\n"
		   "the engine would pick for these settings, and the transports this build has.\n\n");
	gx_config_help(f);
}

static void print_verbs(void)
{
#if GX_HAVE_RDMA
	int n = 0;
	struct ibv_device **l = ibv_get_device_list(&n);
	printf("verbs devices: ");
	if (!l || n == 0)
		printf("none (no RDMA NIC; for tests, a soft-RoCE device: rdma link add rxe0 type rxe "
		       "netdev IF)\n");
	else {
		for (int i = 0; i < n; i++)
			printf("%s%s", i ? ", " : "", ibv_get_device_name(l[i]));
		printf("\n");
	}
	if (l)
		ibv_free_device_list(l);
#else
	printf("verbs devices: not built with libibverbs (GX_HAVE_RDMA=0)\n");
#endif
}

static int print_dpdk(const char *eal)
{
#if GX_HAVE_DPDK
	char *copy = strdup(eal), *save = NULL;
	char *args[64];
	int n = 0;

	args[n++] = "gx-info";
	for (char *t = strtok_r(copy, " ", &save); t && n < 63; t = strtok_r(NULL, " ", &save))
		args[n++] = t;
	args[n] = NULL;
	int own = 1;
	if (rte_eal_init(n, args) < 0 && !(own = 0) && rte_errno != EALREADY) {
		printf("DPDK ports: EAL initialisation failed with '%s' (try --dpdk-eal \"--no-huge "
		       "--no-shconf --no-pci --vdev=net_af_packet0,iface=IF\")\n", eal);
		free(copy);
		return 1;
	}
	uint16_t port;
	printf("DPDK ports: %u\n", rte_eth_dev_count_avail());
	RTE_ETH_FOREACH_DEV(port) {
		char name[RTE_ETH_NAME_MAX_LEN] = "";
		struct rte_ether_addr mac;
		rte_eth_dev_get_name_by_port(port, name);
		rte_eth_macaddr_get(port, &mac);
		printf("  port %u: %s  mac " RTE_ETHER_ADDR_PRT_FMT "  NUMA socket %d\n", port, name,
		       RTE_ETHER_ADDR_BYTES(&mac), rte_eth_dev_socket_id(port));
	}
	if (own)
		rte_eal_cleanup();
	free(copy);
	return 0;
#else
	printf("DPDK ports: not built with DPDK (GX_HAVE_DPDK=0); '%s' ignored\n", eal);
	return 0;
#endif
}

int main(int argc, char **argv)
{
	struct gx_comm_opts o;
	struct gx_core_choice ch;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
			version(stdout);
			return 0;
		}
	if (gx_comm_opts_default(&o) < 0 || gx_config_parse(&argc, argv, &o) < 0) {
		fprintf(stderr, "gx-info: %s\n", gx_last_error());
		return 2;
	}
	if (argc > 1) {
		fprintf(stderr, "gx-info: unknown argument '%s' (see gx-info --help)\n", argv[1]);
		return 2;
	}
	/* The engine's core: the device comes from the transport itself, so create it (one rank). */
	struct gx_boot b;
	struct gx_net *net = NULL;
	char dev[64] = "", why[600] = "";
	int local_rank = -1, is_pci = 0;
	if (gx_bootstrap_resolve(&o, &b) == GX_OK)
		local_rank = b.local_rank;
	struct gx_transport_opts tr = o.tr;
	tr.rank = 0;
	tr.nranks = 1;
	if (gx_net_create(&tr, &net) < 0)
		snprintf(why, sizeof(why), " (transport %s not created: %s)", o.tr.backend, gx_last_error());
	else if (gx_net_device(net, dev, sizeof(dev), &is_pci) < 0)
		dev[0] = '\0';

	printf("gx %s\n", GX_VERSION);
	gx_topo_print(stdout);
	print_verbs();
	const char *eal = setting(&o.tr, "dpdk-eal");
	if (eal && *eal)
		print_dpdk(eal);
	else
		printf("DPDK ports: %s\n", GX_HAVE_DPDK ? "not probed (pass --dpdk-eal \"...\" to "
		       "initialise the EAL and list them)" : "not built with DPDK");
	if (gx_topo_pick_core(dev, is_pci, local_rank, &ch) == GX_OK)
		printf("engine core (transport %s%s%s): %s%s\n", o.tr.backend,
		       ch.nic[0] ? ", NIC " : "", ch.nic, ch.why, why);
	else
		printf("engine core: cannot choose: %s\n", gx_last_error());
	printf("transports built: %s\n", gx_transport_list());
	gx_net_destroy(net);
	return 0;
}
