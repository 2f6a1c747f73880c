/* mpi_allreduce_bench.c: MPI_Allreduce (float, sum, in place) with gx-bench allreduce's sweep and
 * CSV (peer=mpi), so scripts/gx-vs-mpi compares the two on the same ranks and link.
 *
 *   mpirun -np 2 --mca btl vader,self mpi-allreduce-bench [-b 4] [-e 64M] [-f 2] [-n 20] [-w 5]
 *          [--warm-ms 50] [-c 1] [--label shm]
 * Warm-up as in gx-bench allreduce: -w iterations, repeated until --warm-ms passed on every rank.
 * Time per size = median over -n iterations of the slowest rank's time (like gx-bench).
 */
#include <getopt.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	uint64_t minb = 4, maxb = 64ull << 20;
	double factor = 2.0;
	long iters = 20, warm = 5, do_check = 1, warm_ms = 50;
	const char *label = "mpi";
	int rank, n, ch;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &n);
	static const struct option lo[] = { { "label", required_argument, NULL, 'L' },
					    { "warm-ms", required_argument, NULL, 'M' }, { NULL, 0, NULL, 0 } };
	while ((ch = getopt_long(argc, argv, "b:e:f:n:w:c:", lo, NULL)) != -1) {
		char *end = NULL;
		int bad = 0;
		switch (ch) {
		case 'b': bad = bench_parse_size(optarg, &minb) || !minb; break;
		case 'e': bad = bench_parse_size(optarg, &maxb) || !maxb; break;
		case 'f': factor = strtod(optarg, &end); bad = *end || factor <= 1.0; break;
		case 'n': iters = strtol(optarg, &end, 10); bad = *end || iters < 1; break;
		case 'w': warm = strtol(optarg, &end, 10); bad = *end || warm < 0; break;
		case 'c': do_check = strtol(optarg, &end, 10); bad = *end || (do_check != 0 && do_check != 1); break;
		case 'L': label = optarg; break;
		case 'M': warm_ms = strtol(optarg, &end, 10); bad = *end || warm_ms < 0; break;
		default: bad = 1; break;
		}
		if (bad) {
			if (!rank)
				fprintf(stderr, "usage: mpi-allreduce-bench [-b SIZE] [-e SIZE] [-f FACTOR] [-n ITERS] "
					"[-w ITERS] [--warm-ms MS] [-c 0|1] [--label NAME]\n");
			MPI_Finalize();
			return 2;
		}
	}
	size_t maxcount = maxb / 4 ? maxb / 4 : 1;
	float *buf = bench_alloc(maxcount * 4);
	double *t = calloc((size_t)iters, sizeof(double));
	if (!buf || !t) {
		fprintf(stderr, "mpi-allreduce-bench: out of memory\n");
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t oversub = (uint32_t)((n + ncpu - 1) / ncpu);
	if (!rank) {
		printf("# mpi-allreduce-bench: %d ranks, %ld cores online (oversub %u), transport %s\n", n, ncpu,
		       oversub, label);
		bench_print_header(stdout);
	}
	for (double bd = (double)minb; bd <= (double)maxb * 1.0000001; bd *= factor) {
		size_t count = (size_t)bd / 4 ? (size_t)bd / 4 : 1;
		unsigned long long wrong = 0, bad = 0;
		if (do_check) {
			for (size_t e = 0; e < count; e++)
				buf[e] = (float)((rank + 1) * (int)(e % 7 + 1));
			MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
			float tri = (float)(n * (n + 1) / 2);
			for (size_t e = 0; e < count; e++)
				bad += buf[e] != tri * (float)(e % 7 + 1);
			MPI_Allreduce(&bad, &wrong, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
		}
		for (size_t e = 0; e < count; e++)
			buf[e] = 1.0f / (float)(rank + 1);
		double w0 = now_us();
		for (;;) {
			for (long i = 0; i < warm; i++)
				MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
			int more = now_us() - w0 < (double)warm_ms * 1000.0;
			MPI_Allreduce(MPI_IN_PLACE, &more, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
			if (!more || warm == 0)
				break;
		}
		for (long i = 0; i < iters; i++) {
			double t0 = now_us();
			MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
			t[i] = now_us() - t0;
		}
		MPI_Allreduce(MPI_IN_PLACE, t, (int)iters, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
		if (!rank) {
			struct bench_row r = {
				.peer = "mpi", .transport = label, .op = "allreduce", .nranks = (uint32_t)n,
				.oversub = oversub, .bytes = count * 4, .count = count, .type = "float32",
				.redop = "sum", .iters = (uint32_t)iters,
			};
			r.min_us = bench_min(t, (size_t)iters);
			r.p90_us = bench_percentile(t, (size_t)iters, 90.0);
			r.time_us = bench_median(t, (size_t)iters);
			r.algbw_GBps = (double)(count * 4) / (r.time_us * 1e3);
			r.busbw_GBps = r.algbw_GBps * 2.0 * (n - 1) / n;
			r.wrong = wrong;
			bench_print_row(stdout, &r);
		}
	}
	free(t);
	bench_free(buf, maxcount * 4);
	MPI_Finalize();
	return 0;
}
