/* status.c: status names and the per-thread last-error message. */
#include <stdio.h>
#include <string.h>

#include "gx_status.h"

static _Thread_local char last_error[512];

const char *gx_status_str(gx_status_t s)
{
	switch (s) {
	case GX_OK: return "GX_OK";
	case GX_INPROGRESS: return "GX_INPROGRESS";
	case GX_ERR_INVAL: return "GX_ERR_INVAL";
	case GX_ERR_NOMEM: return "GX_ERR_NOMEM";
	case GX_ERR_NOSPC: return "GX_ERR_NOSPC";
	case GX_ERR_CORRUPT: return "GX_ERR_CORRUPT";
	case GX_ERR_NOTSUP: return "GX_ERR_NOTSUP";
	case GX_ERR_TIMEOUT: return "GX_ERR_TIMEOUT";
	case GX_ERR_PEER: return "GX_ERR_PEER";
	case GX_ERR_IO: return "GX_ERR_IO";
	case GX_ERR_NONFINITE: return "GX_ERR_NONFINITE";
	case GX_ERR_AGAIN: return "GX_ERR_AGAIN";
	case GX_ERR_NODEV: return "GX_ERR_NODEV";
	case GX_ERR_CLOSED: return "GX_ERR_CLOSED";
	case GX_ERR_INTERRUPTED: return "GX_ERR_INTERRUPTED";
	case GX_ERR_MISMATCH: return "GX_ERR_MISMATCH";
	}
	return s > 0 ? "GX_INPROGRESS" : "GX_ERR_UNKNOWN";
}

const char *gx_last_error(void)
{
	return last_error;
}

void gx_clear_error(void)
{
	last_error[0] = '\0';
}

gx_status_t gx_verror(gx_status_t s, const char *fmt, va_list ap)
{
	if (s >= 0)
		return s;
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	return s;
}

gx_status_t gx_error(gx_status_t s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gx_verror(s, fmt, ap);
	va_end(ap);
	return s;
}
