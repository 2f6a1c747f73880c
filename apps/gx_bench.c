/* gx-bench: gx's benchmarks, one mode per subcommand, all printing the same CSV. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "gx_build_config.h"
#include "gx_codec.h"
#include "gx_net.h"
#include "gx_signal.h"

struct mode {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *doc;
};

static const struct mode modes[] = {
	{ "codec", bench_codec_main, "encode/decode/decode-accumulate throughput of every codec" },
	{ "allreduce", bench_allreduce_main, "allreduce size sweep (nccl-tests style) over any transport and codec" },
	{ "pingpong", bench_pingpong_main, "half round trip (min/median/p99/p99.9) between two ranks, raw and reliable" },
	{ "stream", bench_stream_main, "reliable one-way stream between two ranks: Gbit/s, Mpps, counters" },
};

/* What a bug report needs: the version and what this build has (gx-info --version prints the same). */
static void version(FILE *f)
{
	fprintf(f, "gx-bench %s\n", GX_VERSION);
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
	fprintf(f, "usage: gx-bench MODE [options]   (gx-bench MODE --help for a mode's options;\n"
		   "       gx-bench --version for the version and what this build has)\nmodes:\n");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		fprintf(f, "  %-10s %s\n", modes[i].name, modes[i].doc);
}

int main(int argc, char **argv)
{
	if (gx_stop_on_signals() < 0) {   /* SIGINT/SIGTERM stop this rank cleanly, peers told */
		fprintf(stderr, "gx-bench: %s\n", gx_last_error());
		return 1;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		version(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(argv[1], modes[i].name))
			return modes[i].main(argc - 1, argv + 1);
	fprintf(stderr, "gx-bench: unknown mode '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
