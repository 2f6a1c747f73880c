/* bench_common.c: CSV output, statistics and buffers shared by every gx-bench mode. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "bench.h"

void bench_print_header(FILE *f)
{
	fprintf(f, "%s\n", GX_BENCH_CSV_HEADER);
}

void bench_print_row(FILE *f, const struct bench_row *r)
{
	fprintf(f, "%s,%s,%s,%u,%u,%llu,%llu,%s,%s,%u,%.3f,%.3f,%.3f,%.3f,%.3f,%llu\n", r->peer,
		r->transport, r->op, r->nranks, r->oversub, (unsigned long long)r->bytes,
		(unsigned long long)r->count, r->type, r->redop, r->iters, r->time_us, r->min_us,
		r->p90_us, r->algbw_GBps, r->busbw_GBps, (unsigned long long)r->wrong);
	fflush(f);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_percentile(double *v, size_t n, double p)
{
	if (!n)
		return 0.0;
	qsort(v, n, sizeof(*v), cmp_double);
	double pos = p / 100.0 * (double)(n - 1);
	size_t lo = (size_t)pos;
	if (lo + 1 >= n)
		return v[n - 1];
	return v[lo] + (pos - (double)lo) * (v[lo + 1] - v[lo]);
}

double bench_median(double *v, size_t n)
{
	return bench_percentile(v, n, 50.0);
}

double bench_min(const double *v, size_t n)
{
	double m = n ? v[0] : 0.0;
	for (size_t i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

void *bench_alloc(size_t bytes)
{
	size_t len = bytes ? bytes : 1;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, MADV_HUGEPAGE);
	memset(p, 0, len);
	return p;
}

void bench_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes ? bytes : 1);
}

int bench_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (!isdigit((unsigned char)*s))      /* strtoull would take " 4", "+4" and "-4" */
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'K': mult = 1ull << 10; break;
		case 'M': mult = 1ull << 20; break;
		case 'G': mult = 1ull << 30; break;
		default: return -1;
		}
		end++;
		if (*end && strcasecmp(end, "B") && strcasecmp(end, "iB"))
			return -1;
	}
	if (v > UINT64_MAX / mult)
		return -1;
	*out = (uint64_t)v * mult;
	return 0;
}

/* 16G, 64K, 1424: the largest suffix that divides exactly */
static const char *size_str(uint64_t v, char *buf, size_t len)
{
	static const char sfx[] = "GMK";
	for (int i = 0; i < 3; i++) {
		uint64_t unit = 1ull << (10 * (3 - i));
		if (v && v % unit == 0) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(v / unit), sfx[i]);
			return buf;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

int bench_size_arg(const char *prog, const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char lo[32], hi[32];
	uint64_t v;

	if (!bench_parse_size(s, &v) && v >= min && v <= max) {
		*out = v;
		return 0;
	}
	fprintf(stderr, "%s: %s %s: give a size from %s to %s bytes (a number, optionally with K, M or G)\n",
		prog, flag, s, size_str(min, lo, sizeof(lo)), size_str(max, hi, sizeof(hi)));
	return -1;
}

int bench_long_arg(const char *prog, const char *flag, const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s && !*end && !errno && v >= min && v <= max) {
		*out = v;
		return 0;
	}
	fprintf(stderr, "%s: %s %s: give a whole number from %ld to %ld\n", prog, flag, s, min, max);
	return -1;
}

int bench_double_arg(const char *prog, const char *flag, const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	/* the comparisons are false for NaN */
	if (*s && !*end && !errno && v >= min && v <= max) {
		*out = v;
		return 0;
	}
	fprintf(stderr, "%s: %s %s: give a number from %g to %g\n", prog, flag, s, min, max);
	return -1;
}

const char *bench_flag_name(int ch, const struct option *longopts, char *buf, size_t len)
{
	for (const struct option *o = longopts; o && o->name; o++)
		if (o->val == ch && !o->flag) {
			snprintf(buf, len, "--%s", o->name);
			return buf;
		}
	snprintf(buf, len, "-%c", ch);
	return buf;
}
