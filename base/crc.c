/* crc.c: CRC32C (gx_crc.h), with the kernel chosen at run time like the codec kernels.
 *
 * With SSE4.2 and PCLMULQDQ the crc32 instruction does 8 bytes per instruction; its latency is 3
 * cycles, so a buffer is cut into three blocks of B bytes that run as three independent streams, and
 * the three CRCs are joined by multiplying the first two by x^(8B) and x^(16B) modulo the polynomial
 * (one carry-less multiply and one crc32 each; the constants for every B are computed once).  A
 * packet is then one round of three streams plus at most 23 bytes, with no AVX-512 unit to wake per
 * packet.  Without those instructions, slicing-by-8 tables.  test_base checks both kernels against
 * the bit-by-bit definition. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "gx_crc.h"

#define POLY 0x82f63b78u            /* CRC32C, bit-reflected */
#define MAX_B 4096u                 /* largest block of the three streams, bytes */
static uint32_t slice[8][256];      /* slicing-by-8 */
static uint32_t mulk[2 * MAX_B / 8 + 1];   /* mulk[j] = x^(64j - 33) mod P: shifts over 8j bytes */
typedef uint32_t (*crc_kernel)(uint32_t r, const uint8_t *p, size_t n);
static _Atomic(crc_kernel) kernel;   /* set last by init(), with the tables before it */
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* ---- kernels: raw register update (no inversions) ------------------------------------------- */

static uint32_t crc_sw(uint32_t r, const uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= r;
		r = slice[7][w & 0xff] ^ slice[6][(w >> 8) & 0xff] ^ slice[5][(w >> 16) & 0xff] ^
		    slice[4][(w >> 24) & 0xff] ^ slice[3][(w >> 32) & 0xff] ^ slice[2][(w >> 40) & 0xff] ^
		    slice[1][(w >> 48) & 0xff] ^ slice[0][w >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		r = (r >> 8) ^ slice[0][(r ^ *p++) & 0xff];
	return r;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <wmmintrin.h>

#define HW __attribute__((target("sse4.2,pclmul")))

HW static inline uint64_t crc8(uint64_t r, const uint8_t *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return _mm_crc32_u64(r, w);
}

/* r advanced over 8j zero bytes: r * x^(64j) mod P.  The carry-less product of two bit-reflected
 * values is the reflected product one place up, hence x^(64j - 33) and not x^(64j - 32). */
HW static inline uint32_t shift(uint32_t r, uint32_t j)
{
	__m128i t = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)r), _mm_cvtsi32_si128((int)mulk[j]), 0);
	return (uint32_t)_mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(t));
}

HW static uint32_t crc_hw(uint32_t r, const uint8_t *p, size_t n)
{
	while (n >= 3 * 64) {
		size_t b = n / 24 * 8;
		if (b > MAX_B)
			b = MAX_B;
		uint64_t c0 = r, c1 = 0, c2 = 0;
		for (size_t i = 0; i < b; i += 8) {
			c0 = crc8(c0, p + i);
			c1 = crc8(c1, p + b + i);
			c2 = crc8(c2, p + 2 * b + i);
		}
		r = shift((uint32_t)c0, (uint32_t)(2 * b / 8)) ^ shift((uint32_t)c1, (uint32_t)(b / 8)) ^ (uint32_t)c2;
		p += 3 * b;
		n -= 3 * b;
	}
	uint64_t c = r;
	for (; n >= 8; p += 8, n -= 8)
		c = crc8(c, p);
	r = (uint32_t)c;
	while (n--)
		r = _mm_crc32_u8(r, *p++);
	return r;
}
#endif

static void init(void)
{
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t r = b;
		for (int k = 0; k < 8; k++)
			r = (r >> 1) ^ (POLY & (0u - (r & 1u)));
		slice[0][b] = r;
	}
	for (uint32_t b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++)
			slice[k][b] = (slice[k - 1][b] >> 8) ^ slice[0][slice[k - 1][b] & 0xff];
	/* x^m mod P for m = 64j - 33: start from x^31 and multiply by x^64 per step (one zero bit:
	 * r -> (r >> 1) ^ (r & 1 ? P : 0) multiplies a reflected value by x; x^k is bit 31 - k) */
	uint32_t v = 1u;                    /* x^31 */
	mulk[0] = 0;
	for (uint32_t j = 1; j < sizeof(mulk) / sizeof(mulk[0]); j++) {
		for (int bit = 0; bit < (j == 1 ? 0 : 64); bit++)
			v = (v >> 1) ^ (POLY & (0u - (v & 1u)));
		mulk[j] = v;
	}
	crc_kernel k = crc_sw;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul"))
		k = crc_hw;
#endif
	atomic_store_explicit(&kernel, k, memory_order_release);
}

uint32_t gx_crc32c(const void *p, size_t n, uint32_t crc)
{
	crc_kernel k = atomic_load_explicit(&kernel, memory_order_acquire);
	if (__builtin_expect(!k, 0)) {
		pthread_once(&once, init);
		k = atomic_load_explicit(&kernel, memory_order_acquire);
	}
	return ~k(~crc, p, n);
}

uint32_t gx_crc32c_portable(const void *p, size_t n, uint32_t crc)
{
	pthread_once(&once, init);
	return ~crc_sw(~crc, p, n);
}
