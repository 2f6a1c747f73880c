/* gx_crc.h: CRC32C (Castagnoli), the integrity check on every gx packet.  The kernel is chosen at run
 * time (three streams of the SSE4.2 crc32 instruction, else slicing-by-8 tables); every kernel gives
 * the same bits. */
#ifndef GX_CRC_H
#define GX_CRC_H

#include <stddef.h>
#include <stdint.h>

/* The standard CRC32C of p[0..n) (initial value and final xor all ones: "123456789" gives
 * 0xe3069283), continuing from `crc` (0 to start): gx_crc32c(b, nb, gx_crc32c(a, na, 0)) is the CRC
 * of a followed by b. */
uint32_t gx_crc32c(const void *p, size_t n, uint32_t crc);
/* The same with the table kernel whatever the CPU has (tests compare the two). */
uint32_t gx_crc32c_portable(const void *p, size_t n, uint32_t crc);

#endif
