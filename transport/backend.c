/* backend.c: the registry of datagram backends, looked up by name at run time.  Adding a backend
 * means one line here and one file beside this one; nothing above the transport changes. */
#include <string.h>

#include "gx_build_config.h"
#include "gx_transport.h"

extern const struct gx_backend_ops gx_udp_ops;
#if GX_HAVE_DPDK && GX_DPDK_BACKEND_BUILT
extern const struct gx_backend_ops gx_dpdk_ops;
#endif

static const struct gx_backend_ops *const backends[] = {
	&gx_udp_ops,
#if GX_HAVE_DPDK && GX_DPDK_BACKEND_BUILT
	&gx_dpdk_ops,
#endif
};

#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

const char *gx_backend_list(void)
{
	static char list[128];

	if (!list[0]) {
		for (size_t i = 0; i < NBACKENDS; i++) {
			if (i)
				strncat(list, ",", sizeof(list) - strlen(list) - 1);
			strncat(list, backends[i]->name, sizeof(list) - strlen(list) - 1);
		}
	}
	return list;
}

const struct gx_backend_ops *gx_backend_find(const char *name)
{
	if (!name || !*name)
		name = "udp";
	for (size_t i = 0; i < NBACKENDS; i++)
		if (!strcmp(backends[i]->name, name)) {
			if (backends[i]->size != sizeof(struct gx_backend_ops)) {
				gx_error(GX_ERR_NOTSUP, "transport '%s' was built against another gx_transport.h "
					 "(ops size %zu, expected %zu): rebuild it", name, backends[i]->size,
					 sizeof(struct gx_backend_ops));
				return NULL;
			}
			return backends[i];
		}
	if (!strcmp(name, "dpdk"))
		gx_error(GX_ERR_NOTSUP, "transport 'dpdk' is not in this build (available: %s); install "
			 "libdpdk-dev and reconfigure with meson (-Ddpdk=enabled)", gx_backend_list());
	else if (!strcmp(name, "rdma"))
		gx_error(GX_ERR_NOTSUP, "transport 'rdma' (libibverbs RC queue pairs) is not part of this gx "
			 "version yet (available: %s)", gx_backend_list());
	else
		gx_error(GX_ERR_NOTSUP, "unknown transport '%s' (available: %s); use --transport=NAME",
			 name, gx_backend_list());
	return NULL;
}
