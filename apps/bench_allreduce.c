/* bench_allreduce.c: gx-bench allreduce, a size sweep like nccl-tests over any transport and codec.
 *
 *   gx-bench allreduce [-b 4] [-e 64M] [-f 2] [-n 20] [-w 5] [--warm-ms 50] [-c 1]
 *                      [--algo auto|ring|rhd] [--codec SPEC] [--op sum|avg]
 *                      [runtime flags: --transport, --dpdk-eal, ...]
 *
 * Every rank runs the same command (gx-run, or GX_RANK/GX_SIZE/GX_STORE, Slurm, mpirun).
 * Rank 0 prints the shared CSV (time = median over -n iterations of the slowest rank's time), then
 * one comment line per rank with its retransmit and drop counters.  -c 1 checks the result of one
 * allreduce per size: plain, against exact integer sums (wrong = elements that differ, over all
 * ranks); with a codec, that every rank holds the same bits (wrong = elements whose bits differ
 * between ranks), and rank 0 prints, as a comment, the relative error against the exact sum of one
 * step and of the mean of 20 steps (the error that error feedback drives down).
 * Every iteration starts from the same input (restored outside the timed region), so repeated
 * in-place sums never grow towards Inf.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "gx_collectives.h"
#include "gx_comm.h"
#include "gx_config.h"
#include "gx_time.h"

/* Steps of the compressed check: with error feedback the mean output over T steps of the same
 * gradient is within (residual / T) of the exact sum, however coarse one step is. */
#define EF_STEPS 20
#define EF_STEPS_STR "20"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gx-bench allreduce [options] [runtime flags]\n"
		"  -b SIZE      smallest message in bytes (default 4; K, M, G suffixes; at most 16G)\n"
		"  -e SIZE      largest message in bytes (default 64M; at most 16G)\n"
		"  -f FACTOR    size multiplier between steps (default 2; 1.1..1024)\n"
		"  -n ITERS     timed iterations per size (default 20)\n"
		"  -w ITERS     warm-up iterations per size (default 5), repeated until --warm-ms passed\n"
		"  --warm-ms MS shortest warm-up per size in ms (default 50; first touches of the transport's\n"
		"               buffers page-fault, and the figure must not depend on -n)\n"
		"  -c 0|1       check results (default 1); with --codec also the error of one step and of the\n"
		"               mean of " EF_STEPS_STR " steps, which error feedback drives towards the exact sum\n"
		"  --algo A     auto, ring or rhd (default auto)\n"
		"  --codec SPEC compressed allreduce with this codec (compress/gx_codec.h specs, or thc[:bits=B][,rotate])\n"
		"  --op OP      sum or avg (default sum)\n"
		"Runs one rank; start every rank with gx-run -n N -- gx-bench allreduce ...\n\n");
	gx_config_help(f);
}

struct ar_bench {
	struct gx_comm *c;
	uint32_t rank, n;
	const char *codec;
	struct gx_allreduce_opts o;
	enum gx_redop op;
};

static gx_status_t one(struct ar_bench *B, struct gx_allreduce_handle *h, float *buf, size_t count)
{
	if (h)
		return gx_allreduce_compressed(h, buf, B->op);
	return gx_allreduce(B->c, buf, count, B->op, &B->o);
}

static float input(const struct ar_bench *B, size_t e)
{
	return (float)((B->rank + 1) * (e % 7 + 1));
}

static double rel_error(const struct ar_bench *B, const float *got, size_t count, double scale)
{
	double err2 = 0.0, ref2 = 0.0;
	float tri = (float)(B->n * (B->n + 1) / 2);

	for (size_t e = 0; e < count; e++) {
		float want = tri * (float)(e % 7 + 1);
		if (B->op == GX_OP_AVG)
			want = want / (float)B->n;
		double d = (double)got[e] * scale - want;
		err2 += d * d;
		ref2 += (double)want * want;
	}
	return ref2 > 0.0 ? sqrt(err2 / ref2) : 0.0;
}

/* x = (rank+1) * (e%7 + 1) sums to n(n+1)/2 * (e%7 + 1), exactly representable.  Plain: every
 * element must be exact.  Codec: every rank must hold the same bits (max and min over ranks of each
 * element agree), and two relative errors are reported: of one step (an unbiased quantizer's
 * variance: large at few bits, by design) and of the mean of EF_STEPS steps of the same input, the
 * error training sees, which error feedback keeps shrinking.  scratch holds 2 * count floats. */
static gx_status_t check(struct ar_bench *B, struct gx_allreduce_handle *h, float *buf, size_t count,
			 float *scratch, uint64_t *wrong, double *relerr, double *relerr_mean)
{
	for (size_t e = 0; e < count; e++)
		buf[e] = input(B, e);
	gx_status_t st = one(B, h, buf, count);
	if (st < 0)
		return st;
	uint64_t bad = 0;
	float tri = (float)(B->n * (B->n + 1) / 2);
	if (!h)
		for (size_t e = 0; e < count; e++) {
			float want = tri * (float)(e % 7 + 1);
			if (B->op == GX_OP_AVG)
				want = want / (float)B->n;
			bad += buf[e] != want;
		}
	*relerr = rel_error(B, buf, count, 1.0);
	*relerr_mean = *relerr;
	if (h) {
		float *mx = scratch, *mn = scratch + count;
		for (size_t e = 0; e < count; e++) {
			mx[e] = buf[e];
			mn[e] = -buf[e];
		}
		if ((st = gx_allreduce(B->c, mx, count, GX_OP_MAX, NULL)) < 0 ||
		    (st = gx_allreduce(B->c, mn, count, GX_OP_MAX, NULL)) < 0)
			return st;
		for (size_t e = 0; e < count; e++)
			bad += memcmp(&mx[e], &buf[e], 4) != 0 || -mn[e] != buf[e];
		/* the sum of EF_STEPS outputs, in scratch (the first step's is in buf) */
		float *sum = scratch;
		memcpy(sum, buf, count * 4);
		for (int t = 1; t < EF_STEPS; t++) {
			for (size_t e = 0; e < count; e++)
				buf[e] = input(B, e);
			if ((st = one(B, h, buf, count)) < 0)
				return st;
			for (size_t e = 0; e < count; e++)
				sum[e] += buf[e];
		}
		*relerr_mean = rel_error(B, sum, count, 1.0 / EF_STEPS);
	}
	float w = (float)bad;
	if ((st = gx_allreduce(B->c, &w, 1, GX_OP_SUM, NULL)) < 0)
		return st;
	*wrong = (uint64_t)w;
	return GX_OK;
}

int bench_allreduce_main(int argc, char **argv)
{
	struct gx_comm_opts co;
	struct ar_bench B;
	uint64_t minb = 4, maxb = 64ull << 20;
	double factor = 2.0;
	long iters = 20, warm = 5, do_check = 1, warm_ms = 50;
	const char *algo = "auto", *op = "sum";
	gx_status_t st;

	memset(&B, 0, sizeof(B));
	if (gx_comm_opts_default(&co) < 0 || gx_config_parse(&argc, argv, &co) < 0) {
		fprintf(stderr, "gx-bench allreduce: %s\n", gx_last_error());
		return 2;
	}
	static const struct option lo[] = {
		{ "algo", required_argument, NULL, 'A' },
		{ "codec", required_argument, NULL, 'C' },
		{ "op", required_argument, NULL, 'O' },
		{ "warm-ms", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char flag[40];
	const char *me = "gx-bench allreduce";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "b:e:f:n:w:c:h", lo, NULL)) != -1) {
		const char *f = bench_flag_name(ch, lo, flag, sizeof(flag));
		int bad = 0;
		switch (ch) {
		case 'b': bad = bench_size_arg(me, f, optarg, 1, BENCH_SIZE_MAX, &minb); break;
		case 'e': bad = bench_size_arg(me, f, optarg, 1, BENCH_SIZE_MAX, &maxb); break;
		case 'f': bad = bench_double_arg(me, f, optarg, 1.1, 1024, &factor); break;
		case 'n': bad = bench_long_arg(me, f, optarg, 1, 10000000, &iters); break;
		case 'w': bad = bench_long_arg(me, f, optarg, 0, 10000000, &warm); break;
		case 'c': bad = bench_long_arg(me, f, optarg, 0, 1, &do_check); break;
		case 'A': algo = optarg; break;
		case 'C': B.codec = optarg; break;
		case 'O': op = optarg; break;
		case 'M': bad = bench_long_arg(me, f, optarg, 0, 600000, &warm_ms); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (bad)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "gx-bench allreduce: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (minb > maxb) {
		fprintf(stderr, "gx-bench allreduce: -b %llu is larger than -e %llu\n", (unsigned long long)minb,
			(unsigned long long)maxb);
		return 2;
	}
	gx_allreduce_opts_default(&B.o);
	if (gx_allreduce_algo_parse(algo, &B.o.algo) < 0) {
		fprintf(stderr, "gx-bench allreduce: --algo: %s\n", gx_last_error());
		return 2;
	}
	if (!strcmp(op, "sum"))
		B.op = GX_OP_SUM;
	else if (!strcmp(op, "avg"))
		B.op = GX_OP_AVG;
	else {
		fprintf(stderr, "gx-bench allreduce: --op must be sum or avg, not '%s'\n", op);
		return 2;
	}

	if (gx_comm_create(&co, &B.c) < 0) {
		fprintf(stderr, "gx-bench allreduce: %s\n", gx_last_error());
		return 1;
	}
	B.rank = gx_comm_rank(B.c);
	B.n = gx_comm_size(B.c);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t oversub = (uint32_t)((B.n + (uint32_t)ncpu - 1) / (uint32_t)ncpu);
	char opname[96];
	snprintf(opname, sizeof(opname), "allreduce:%s%s%s", B.codec ? "" : algo, B.codec ? "codec=" : "",
		 B.codec ? B.codec : "");
	if (B.rank == 0) {
		fprintf(stdout, "# gx-bench allreduce: %u ranks on this host, %ld cores online (oversub %u), "
			"transport %s, progress %s\n", B.n, ncpu, oversub, co.tr.backend,
			co.progress == GX_PROGRESS_THREAD ? "thread" : "app");
		bench_print_header(stdout);
	}
	size_t maxcount = maxb / 4 ? maxb / 4 : 1;
	float *buf = bench_alloc(maxcount * 4), *src = bench_alloc(maxcount * 4);
	float *scratch = B.codec && do_check ? bench_alloc(maxcount * 8) : NULL;
	double *t = calloc((size_t)iters, sizeof(double));
	int rc = 0;
	if (!buf || !src || !t || (B.codec && do_check && !scratch)) {
		fprintf(stderr, "gx-bench allreduce: out of memory for %zu bytes\n", maxcount * 4);
		rc = 1;
		goto out;
	}
	/* calibrated here: the first call sleeps 10 ms, which must not fall inside a timed iteration */
	double tsc_hz = (double)gx_tsc_hz();
	for (double bytes_d = (double)minb; bytes_d <= (double)maxb * 1.0000001; bytes_d *= factor) {
		size_t count = (size_t)bytes_d / 4 ? (size_t)bytes_d / 4 : 1;
		struct gx_allreduce_handle *h = NULL;
		uint64_t wrong = 0;
		double relerr = 0.0, relerr_mean = 0.0;
		if (B.codec && (st = gx_allreduce_compressed_create(B.c, count, B.codec, NULL, &h)) < 0) {
			fprintf(stderr, "gx-bench allreduce: --codec %s: %s\n", B.codec, gx_last_error());
			rc = 2;
			break;
		}
		if (do_check && (st = check(&B, h, buf, count, scratch, &wrong, &relerr, &relerr_mean)) < 0)
			goto failed;
		for (size_t e = 0; e < count; e++)
			src[e] = input(&B, e) * 0.125f;
		/* Warm-up: -w iterations, repeated until --warm-ms have passed on the slowest rank (the
		 * ranks agree with a max-allreduce, so all run the same collectives).  The first pass
		 * over the transport's buffers page-faults: over memif ~1060 faults (4 MiB of rings)
		 * in the first ~500 4-byte allreduces, 5-10 us each instead of 1.5, so a fixed -w made
		 * the median depend on -n. */
		uint64_t w0 = gx_now_ns();
		for (;;) {
			for (long i = 0; i < warm; i++) {
				memcpy(buf, src, count * 4);
				if ((st = one(&B, h, buf, count)) < 0)
					goto failed;
			}
			float more = gx_now_ns() - w0 < (uint64_t)warm_ms * 1000000ull ? 1.0f : 0.0f;
			if ((st = gx_allreduce(B.c, &more, 1, GX_OP_MAX, NULL)) < 0)
				goto failed;
			if (more == 0.0f || warm == 0)
				break;
		}
		for (long i = 0; i < iters; i++) {
			/* each iteration is timed on every rank; the slowest rank's time counts */
			memcpy(buf, src, count * 4);
			uint64_t t0 = gx_tsc();
			if ((st = one(&B, h, buf, count)) < 0)
				goto failed;
			t[i] = (double)(gx_tsc() - t0) * 1e6 / tsc_hz;
		}
		float *tf = (float *)(void *)bench_alloc((size_t)iters * 4);
		if (!tf) {
			st = gx_error(GX_ERR_NOMEM, "out of memory");
			goto failed;
		}
		for (long i = 0; i < iters; i++)
			tf[i] = (float)t[i];
		st = gx_allreduce(B.c, tf, (size_t)iters, GX_OP_MAX, NULL);
		for (long i = 0; i < iters; i++)
			t[i] = tf[i];
		bench_free(tf, (size_t)iters * 4);
		if (st < 0)
			goto failed;
		if (B.rank == 0) {
			struct bench_row r = {
				.peer = "gx", .transport = co.tr.backend, .op = opname, .nranks = B.n,
				.oversub = oversub, .bytes = count * 4, .count = count, .type = "float32",
				.redop = B.op == GX_OP_AVG ? "avg" : "sum", .iters = (uint32_t)iters,
			};
			r.min_us = bench_min(t, (size_t)iters);
			r.p90_us = bench_percentile(t, (size_t)iters, 90.0);
			r.time_us = bench_median(t, (size_t)iters);
			r.algbw_GBps = (double)(count * 4) / (r.time_us * 1e3);
			r.busbw_GBps = r.algbw_GBps * 2.0 * (B.n - 1) / B.n;
			r.wrong = wrong;
			bench_print_row(stdout, &r);
			if (B.codec && do_check)
				fprintf(stdout, "# %s %zu bytes: relative error against the exact sum %.3g after one "
					"step, %.3g averaged over %d steps (one step of unbiased quantization is "
					"noisy by design; error feedback carries its error into the next steps)\n",
					B.codec, count * 4, relerr, relerr_mean, EF_STEPS);
			if (B.codec && do_check && relerr > 0 && relerr_mean >= relerr)
				/* measured: qsgd:bits=4 at bucket=512 goes 1.73 -> 16.8 over 20 steps */
				fprintf(stdout, "# %s: the error grew over %d steps: error feedback converges only "
					"when the codec's error is smaller than the gradient itself; use more bits or "
					"smaller blocks (qsgd: bits=8, or bits=4,bucket=32)\n", B.codec, EF_STEPS);
		}
		gx_allreduce_compressed_destroy(h);
		continue;
failed:
		fprintf(stderr, "gx-bench allreduce: rank %u, %zu bytes: %s: %s\n", B.rank, count * 4,
			gx_status_str(st), gx_last_error());
		gx_allreduce_compressed_destroy(h);
		gx_comm_abort(B.c);
		rc = 1;
		break;
	}
	if (!rc) {
		/* counters of every rank, gathered to rank 0 (exact in float up to 2^24): the net's
		 * retransmissions and drops, the collective layer's stashed (early) packets */
		enum { NC = 8 };
		float *cnt = calloc((size_t)B.n * NC, sizeof(float));
		struct gx_peer_counters pc;
		struct gx_coll_counters cc = { 0 };
		struct gx_backend_counters bc;
		gx_net_peer_counters(gx_comm_net(B.c), GX_PEER_ANY, &pc);
		gx_net_backend_counters(gx_comm_net(B.c), &bc);
		gx_comm_coll_counters(B.c, &cc);
		if (cnt) {
			float *m = cnt + NC * B.rank;
			m[0] = (float)pc.retransmitted;
			m[1] = (float)pc.dropped;
			m[2] = (float)pc.fault_dropped;
			m[3] = (float)pc.acks_sent;
			m[4] = (float)pc.sent;
			m[5] = (float)cc.stashed;
			m[6] = (float)bc.tx_offload_msgs;   /* udp: which path ran (0: no offload) */
			m[7] = (float)bc.rx_offload_msgs;
		}
		if (cnt && gx_allreduce(B.c, cnt, (size_t)B.n * NC, GX_OP_SUM, NULL) >= 0 && B.rank == 0)
			for (uint32_t r = 0; r < B.n; r++) {
				const float *m = cnt + NC * r;
				fprintf(stdout, "# rank %u: retransmitted %.0f dropped %.0f fault_dropped %.0f acks_sent %.0f "
					"data_sent %.0f stashed %.0f gso_msgs %.0f gro_msgs %.0f\n", r, (double)m[0],
					(double)m[1], (double)m[2], (double)m[3], (double)m[4], (double)m[5],
					(double)m[6], (double)m[7]);
			}
		free(cnt);
	}
out:
	free(t);
	bench_free(buf, maxcount * 4);
	bench_free(src, maxcount * 4);
	bench_free(scratch, maxcount * 8);
	gx_comm_destroy(B.c);
	return rc;
}
