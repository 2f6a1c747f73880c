/* crc.c: CRC32C through ISA-L (gx_crc.h). */
#include <isa-l/crc.h>

#include "gx_crc.h"

uint32_t gx_crc32c(const void *p, size_t n, uint32_t crc)
{
	/* ISA-L's crc32_iscsi is the bare register update (no inversions): invert around it */
	return ~crc32_iscsi((unsigned char *)(uintptr_t)p, (int)n, ~crc);
}
