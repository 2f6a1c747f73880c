/* gx_api.h: GX_API marks the functions libgx.so exports.  The library is compiled with
 * -fvisibility=hidden, so everything else stays inside it; tests/check_exports.py compares the
 * exported symbols with the GX_API declarations of the installed headers. */
#ifndef GX_API_H
#define GX_API_H

#define GX_API __attribute__((visibility("default")))

#endif
