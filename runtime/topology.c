/* topology.c: choosing and pinning the engine's core (gx_topology.h).
 *
 * hwloc (when built with it) gives the cores (one PU per core, so SMT siblings are not counted as
 * free cores) and the NIC's locality: the cpuset of the nearest non-I/O ancestor of its PCI device.
 * Without hwloc, /sys gives the NIC's NUMA node and that node's cpulist.  Either way the result is
 * restricted to the CPUs this thread may run on (taskset, cgroups, Slurm's binding).  Pinning uses
 * pthread_setaffinity_np in both builds.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "gx_build_config.h"
#include "gx_topology.h"

#if GX_HAVE_HWLOC
#include <hwloc.h>
#endif

/* The CPUs this process was started with (taskset, cgroups, Slurm binding), captured when libgx is
 * loaded, before the application pins any of its threads: a thread's own mask (inherited by the
 * threads it creates) would hide the cores the engine may use. */
static cpu_set_t launch_mask;
static int launch_mask_ok;

__attribute__((constructor)) static void capture_launch_mask(void)
{
	launch_mask_ok = sched_getaffinity(0, sizeof(launch_mask), &launch_mask) == 0;
}

static int allowed_cpus(cpu_set_t *s)
{
	if (launch_mask_ok) {
		*s = launch_mask;
		return 0;
	}
	return sched_getaffinity(0, sizeof(*s), s);
}

static int read_int_file(const char *path, int *out)
{
	FILE *f = fopen(path, "r");
	int ok = f && fscanf(f, "%d", out) == 1;
	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

/* Parse a kernel cpulist ("0-3,8,10-11") into set. */
static int parse_cpulist(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*s && *s != '\n') {
		char *end;
		long a = strtol(s, &end, 10), b = a;
		if (end == s)
			return -1;
		if (*end == '-') {
			s = end + 1;
			b = strtol(s, &end, 10);
			if (end == s)
				return -1;
		}
		for (long i = a; i <= b && i < CPU_SETSIZE; i++)
			CPU_SET((int)i, set);
		s = *end == ',' ? end + 1 : end;
	}
	return 0;
}

static void cpus_str(const cpu_set_t *set, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; i < CPU_SETSIZE && n + 8 < len; i++) {
		if (!CPU_ISSET(i, set))
			continue;
		int j = i;
		while (j + 1 < CPU_SETSIZE && CPU_ISSET(j + 1, set))
			j++;
		n += (size_t)snprintf(buf + n, len - n, n ? ",%d" : "%d", i);
		if (j > i)
			n += (size_t)snprintf(buf + n, len - n, "-%d", j);
		i = j;
	}
}

static int looks_like_pci(const char *s)
{
	unsigned d, b, dev, fn;
	return s && (sscanf(s, "%x:%x:%x.%x", &d, &b, &dev, &fn) == 4 ||
		     sscanf(s, "%x:%x.%x", &b, &dev, &fn) == 3);
}

/* NIC-local CPUs from /sys: numa_node of the device, then that node's cpulist. */
static int sys_nic_cpus(const char *nic, int is_pci, int *numa, cpu_set_t *set)
{
	char path[256], buf[1024];
	FILE *f;
	int node = -1;

	if (is_pci)
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s%s/numa_node",
			 strchr(nic, ':') == strrchr(nic, ':') ? "0000:" : "", nic);
	else
		snprintf(path, sizeof(path), "/sys/class/net/%s/device/numa_node", nic);
	if (read_int_file(path, &node) < 0 || node < 0)
		return -1;
	*numa = node;
	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", node);
	if (!(f = fopen(path, "r")))
		return -1;
	int ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	return ok ? parse_cpulist(buf, set) : -1;
}

#if GX_HAVE_HWLOC
/* Loaded once per process and kept: loading takes tens of ms, and hwloc's I/O plugins keep state
 * that destroying the topology would leak (seen with LeakSanitizer). */
static hwloc_topology_t topo_cached;
static pthread_once_t topo_once = PTHREAD_ONCE_INIT;

static void topo_init(void)
{
	hwloc_topology_t t;
	if (hwloc_topology_init(&t) < 0)
		return;
	hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
	if (hwloc_topology_load(t) < 0) {
		hwloc_topology_destroy(t);
		return;
	}
	topo_cached = t;
}

static hwloc_topology_t topo_load(void)
{
	pthread_once(&topo_once, topo_init);
	return topo_cached;
}

static void bitmap_to_set(hwloc_const_bitmap_t b, cpu_set_t *set)
{
	int i;
	CPU_ZERO(set);
	hwloc_bitmap_foreach_begin(i, b)
		if (i < CPU_SETSIZE)
			CPU_SET(i, set);
	hwloc_bitmap_foreach_end();
}

/* Locality of the NIC's PCI device through hwloc (1 if found and narrower than the machine). */
static int hwloc_nic_cpus(hwloc_topology_t t, const char *nic, int is_pci, cpu_set_t *set)
{
	hwloc_obj_t dev = NULL, anc;
	if (is_pci) {
		dev = hwloc_get_pcidev_by_busidstring(t, nic);
	} else {
		for (hwloc_obj_t o = NULL; (o = hwloc_get_next_osdev(t, o));)
			if (o->name && !strcmp(o->name, nic)) {
				dev = o;
				break;
			}
	}
	if (!dev || !(anc = hwloc_get_non_io_ancestor_obj(t, dev)) || !anc->cpuset)
		return 0;
	if (hwloc_bitmap_isequal(anc->cpuset, hwloc_get_root_obj(t)->cpuset) &&
	    hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE) > 1)
		return 0;
	bitmap_to_set(anc->cpuset, set);
	return 1;
}
#endif

gx_status_t gx_topo_pick_core(const char *device, int is_pci, int local_rank, struct gx_core_choice *out)
{
	cpu_set_t allowed, local, cand, avoid;
	char nic[64] = "", list[128];
	int have_local = 0, me = sched_getcpu();

	memset(out, 0, sizeof(*out));
	out->cpu = -1;
	out->numa = -1;
	if (allowed_cpus(&allowed) < 0)
		return gx_error(GX_ERR_IO, "sched_getaffinity: %s", strerror(errno));
	if (device && *device)
		snprintf(nic, sizeof(nic), "%s", device);
	is_pci = is_pci && looks_like_pci(nic);
	snprintf(out->nic, sizeof(out->nic), "%s", nic);
	CPU_ZERO(&local);
	if (nic[0])
		have_local = sys_nic_cpus(nic, is_pci, &out->numa, &local) == 0;

	/* one PU per core: hwloc knows which PUs are SMT siblings */
	CPU_ZERO(&cand);
	CPU_ZERO(&avoid);
#if GX_HAVE_HWLOC
	hwloc_topology_t t = topo_load();
	if (t) {
		cpu_set_t hl;
		if (nic[0] && hwloc_nic_cpus(t, nic, is_pci, &hl)) {
			local = hl;
			have_local = 1;
		}
		int ncores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
		for (int i = 0; i < ncores; i++) {
			hwloc_obj_t core = hwloc_get_obj_by_type(t, HWLOC_OBJ_CORE, i);
			int pu, first = -1;
			hwloc_bitmap_foreach_begin(pu, core->cpuset)
				if (pu < CPU_SETSIZE && CPU_ISSET(pu, &allowed) && first < 0)
					first = pu;
				if (pu == me && me >= 0) {
					/* the application's core: every sibling counts as busy */
					int sib;
					hwloc_bitmap_foreach_begin(sib, core->cpuset)
						if (sib < CPU_SETSIZE)
							CPU_SET(sib, &avoid);
					hwloc_bitmap_foreach_end();
				}
			hwloc_bitmap_foreach_end();
			if (first >= 0)
				CPU_SET(first, &cand);
		}
	}
#endif
	if (CPU_COUNT(&cand) == 0)
		cand = allowed;
	if (me >= 0 && me < CPU_SETSIZE)
		CPU_SET(me, &avoid);

	cpu_set_t pick = cand, tmp;
	const char *where = "any allowed core";
	if (have_local) {
		CPU_AND(&tmp, &pick, &local);
		if (CPU_COUNT(&tmp) > 0) {
			pick = tmp;
			where = "NIC-local";
		} else {
			where = "no allowed core is NIC-local: any allowed core";
		}
	} else if (nic[0]) {
		where = "the NIC has no known NUMA locality (virtual device?): any allowed core";
	}
	int avoided = 0;
	CPU_ZERO(&tmp);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &pick) && !CPU_ISSET(i, &avoid))
			CPU_SET(i, &tmp);
	if (CPU_COUNT(&tmp) > 0) {
		avoided = me >= 0 && CPU_ISSET(me, &pick);
		pick = tmp;
	}
	int count = CPU_COUNT(&pick), idx = (local_rank > 0 ? local_rank : 0) % (count ? count : 1);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &pick) && idx-- == 0) {
			out->cpu = i;
			break;
		}
	if (out->cpu < 0)
		return gx_error(GX_ERR_NODEV, "no CPU is allowed to this process (affinity mask empty?)");
	cpus_str(&pick, list, sizeof(list));
	char numa[24] = "";
	if (out->numa >= 0)
		snprintf(numa, sizeof(numa), ", NUMA node %d", out->numa);
	snprintf(out->why, sizeof(out->why), "cpu %d: %.80s%s%.40s%s (candidates %.40s)%s", out->cpu,
		 where, nic[0] ? " for " : "", nic, numa, list,
		 avoided ? ", not the application's cpu" : "");
	return GX_OK;
}

gx_status_t gx_topo_pin_self(int cpu)
{
	cpu_set_t allowed, one;
	int err;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return gx_error(GX_ERR_INVAL, "core %d is out of range", cpu);
	if (allowed_cpus(&allowed) == 0 && !CPU_ISSET(cpu, &allowed)) {
		char list[128];
		cpus_str(&allowed, list, sizeof(list));
		return gx_error(GX_ERR_INVAL, "core %d is not allowed to this process (allowed: %s): "
				"pick one of those with --core/GX_CORE, or -1 to let gx choose", cpu, list);
	}
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if ((err = pthread_setaffinity_np(pthread_self(), sizeof(one), &one)) != 0)
		return gx_error(GX_ERR_IO, "pinning to core %d: %s", cpu, strerror(err));
	return GX_OK;
}

static void print_nics(FILE *f)
{
	DIR *d = opendir("/sys/class/net");
	struct dirent *e;
	char path[320], buf[128];

	fprintf(f, "network interfaces (/sys/class/net):\n");
	if (!d) {
		fprintf(f, "  (cannot read /sys/class/net)\n");
		return;
	}
	while ((e = readdir(d))) {
		int node = -1;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/net/%s/device/numa_node", e->d_name);
		int has_dev = read_int_file(path, &node) == 0;
		snprintf(path, sizeof(path), "/sys/class/net/%s/device", e->d_name);
		ssize_t n = readlink(path, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		const char *pci = n > 0 ? strrchr(buf, '/') : NULL;
		fprintf(f, "  %-16s %s%s  NUMA node %s\n", e->d_name, !pci ? "virtual (no device)" : looks_like_pci(pci + 1) ? "PCI " : "device ",
			pci ? pci + 1 : "", has_dev && node >= 0 ? (snprintf(path, sizeof(path), "%d", node), path) : "unknown");
	}
	closedir(d);
}

void gx_topo_print(FILE *f)
{
	cpu_set_t allowed;
	char list[256];

#if GX_HAVE_HWLOC
	hwloc_topology_t t = topo_load();
	if (t) {
		fprintf(f, "topology (hwloc %s): %d package(s), %d core(s), %d PU(s), %d NUMA node(s)\n",
			HWLOC_API_VERSION >= 0x20000 ? "2" : "1",
			hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE),
			hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE),
			hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU),
			hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE));
		for (int i = 0; i < hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE); i++) {
			hwloc_obj_t n = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, i);
			cpu_set_t s;
			bitmap_to_set(n->cpuset, &s);
			cpus_str(&s, list, sizeof(list));
			fprintf(f, "  NUMA node %u: cpus %s, %llu MiB\n", n->os_index, list,
				(unsigned long long)(n->attr ? n->attr->numanode.local_memory >> 20 : 0));
		}
		for (int i = 0; i < hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE); i++) {
			hwloc_obj_t c = hwloc_get_obj_by_type(t, HWLOC_OBJ_CORE, i);
			cpu_set_t s;
			bitmap_to_set(c->cpuset, &s);
			cpus_str(&s, list, sizeof(list));
			fprintf(f, "  core %u: PUs %s\n", c->logical_index, list);
		}
		int nos = 0;
		for (hwloc_obj_t o = NULL; (o = hwloc_get_next_osdev(t, o));) {
			if (o->attr->osdev.type != HWLOC_OBJ_OSDEV_NETWORK &&
			    o->attr->osdev.type != HWLOC_OBJ_OSDEV_OPENFABRICS)
				continue;
			hwloc_obj_t a = hwloc_get_non_io_ancestor_obj(t, o);
			cpu_set_t s;
			if (a && a->cpuset)
				bitmap_to_set(a->cpuset, &s);
			else
				CPU_ZERO(&s);
			cpus_str(&s, list, sizeof(list));
			fprintf(f, "  hwloc I/O device %s (%s): local cpus %s\n", o->name,
				o->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK ? "network" : "openfabrics",
				list[0] ? list : "unknown");
			nos++;
		}
		if (!nos)
			fprintf(f, "  hwloc sees no PCI network devices\n");
	} else {
		fprintf(f, "topology: hwloc failed to load the topology\n");
	}
#else
	fprintf(f, "topology: built without hwloc (GX_HAVE_HWLOC=0): %ld online cpus\n",
		sysconf(_SC_NPROCESSORS_ONLN));
#endif
	if (allowed_cpus(&allowed) == 0) {
		cpus_str(&allowed, list, sizeof(list));
		fprintf(f, "cpus allowed to this process: %s\n", list);
	}
	print_nics(f);
}
