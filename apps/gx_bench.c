/* gx-bench: gx's benchmarks, one mode per subcommand, all printing the same CSV. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

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

static void usage(FILE *f)
{
	fprintf(f, "usage: gx-bench MODE [options]   (gx-bench MODE --help for a mode's options)\nmodes:\n");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		fprintf(f, "  %-10s %s\n", modes[i].name, modes[i].doc);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(argv[1], modes[i].name))
			return modes[i].main(argc - 1, argv + 1);
	fprintf(stderr, "gx-bench: unknown mode '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
