/* gx_crc.h: CRC32C (Castagnoli), the integrity check on every gx packet.  ISA-L computes it with the
 * fastest kernel the CPU has, chosen at run time (crc32 instructions, PCLMULQDQ folding, AVX-512
 * VPCLMULQDQ); every kernel gives the same bits. */
#ifndef GX_CRC_H
#define GX_CRC_H

#include <stddef.h>
#include <stdint.h>

/* The standard CRC32C of p[0..n) (initial value and final xor all ones: "123456789" gives
 * 0xe3069283), continuing from `crc` (0 to start): gx_crc32c(b, nb, gx_crc32c(a, na, 0)) is the CRC
 * of a followed by b. */
uint32_t gx_crc32c(const void *p, size_t n, uint32_t crc);

#endif
