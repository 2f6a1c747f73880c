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

/* Largest message any mode takes (-b, -e, --sizes): beyond it a typo, not a benchmark. */
#define BENCH_SIZE_MAX (16ull << 30)

/* Parse a size such as 4, 64K, 1M, 64MiB. Returns 0 on success, -1 if it is not a size or does not
 * fit in 64 bits. */
int bench_parse_size(const char *s, uint64_t *out);

/* A flag's value checked against [min, max]: 0, or -1 after telling the user on stderr what the
 * flag takes ("gx-bench allreduce: -e 99999999999999999999: give a size from 1 to 16G ...").
 * prog: "gx-bench allreduce"; flag: as the user typed it (bench_flag_name). */
int bench_size_arg(const char *prog, const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out);
int bench_long_arg(const char *prog, const char *flag, const char *s, long min, long max, long *out);
int bench_double_arg(const char *prog, const char *flag, const char *s, double min, double max, double *out);

/* The flag whose value getopt_long returned as ch: "--warm-ms" for a long option, "-e" for a short
 * one (buf holds at least 40 bytes). */
struct option;
const char *bench_flag_name(int ch, const struct option *longopts, char *buf, size_t len);

/* Each mode: argc/argv start at the mode name.  Returns a process exit status (2 = bad flags). */
int bench_codec_main(int argc, char **argv);
int bench_allreduce_main(int argc, char **argv);      /* bench_allreduce.c */
int bench_pingpong_main(int argc, char **argv);       /* bench_net.c */
int bench_stream_main(int argc, char **argv);         /* bench_net.c */

#endif
