/* bench_common.c: CSV output, statistics and buffers shared by every gx-bench mode. */
#include <ctype.h>
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
	unsigned long long v = strtoull(s, &end, 10);
	uint64_t mult = 1;

	if (end == s || *s == '-')
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
	*out = (uint64_t)v * mult;
	return 0;
}
