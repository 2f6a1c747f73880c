/* bench.h: what every gx-bench mode shares: the CSV format, statistics, and buffers. */
#ifndef GX_BENCH_H
#define GX_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The one CSV header every benchmark prints (nccl-tests' columns plus who/where). */
#define GX_BENCH_CSV_HEADER \
	"peer,transport,op,nranks,oversub,bytes,count,type,redop,iters,time_us,min_us,p90_us,algbw_GBps,busbw_GBps,wrong"

struct bench_row {
	const char *peer;         /* "gx", "mpi", ... */
	const char *transport;    /* "cpu", "udp", "dpdk", ... */
	const char *op;           /* "encode:int8", "pingpong", "allreduce", ... */
	uint32_t nranks;
	uint32_t oversub;         /* busy processes per core (1 = one core each) */
	uint64_t bytes;
	uint64_t count;
	const char *type;         /* "float32", ... */
	const char *redop;        /* "sum", "none", ... */
	uint32_t iters;
	double time_us;           /* median */
	double min_us;
	double p90_us;
	double algbw_GBps;
	double busbw_GBps;
	uint64_t wrong;
};

void bench_print_header(FILE *f);
void bench_print_row(FILE *f, const struct bench_row *r);

/* Statistics over n samples (sorted in place). */
double bench_median(double *v, size_t n);
double bench_percentile(double *v, size_t n, double p);   /* p in [0, 100] */
double bench_min(const double *v, size_t n);

/* Page-aligned buffer, touched once so later timings do not pay first-touch faults. */
void *bench_alloc(size_t bytes);
void bench_free(void *p, size_t bytes);

/* Parse a size such as 4, 64K, 1M, 64MiB. Returns 0 on success. */
int bench_parse_size(const char *s, uint64_t *out);

/* Each mode: argc/argv start at the mode name.  Returns a process exit status (2 = bad flags). */
int bench_codec_main(int argc, char **argv);
int bench_allreduce_main(int argc, char **argv);      /* bench_allreduce.c */
int bench_pingpong_main(int argc, char **argv);       /* bench_net.c */
int bench_stream_main(int argc, char **argv);         /* bench_net.c */

#endif
