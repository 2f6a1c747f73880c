/* gx-store: the rendezvous store as a program of its own, for jobs where rank 0 should not serve it
 * (GX_STORE_EXTERNAL=1 on every rank, GX_STORE=<this host>:<port>).  docs/runtime.md. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gx_store.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: gx-store --port P [--host H] [--timeout-ms T]\n"
		   "  --port P        TCP port to listen on (0: any free port, printed at start)\n"
		   "  --host H        address to listen on (default 0.0.0.0: every interface)\n"
		   "  --timeout-ms T  exit once no client has been connected for T ms (default 0: run\n"
		   "                  until SIGINT/SIGTERM)\n");
}

static int parse_u32(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *s == '-' || *end || errno || v > max)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	const char *host = "0.0.0.0";
	unsigned long port = 0, timeout = 0;
	int have_port = 0;
	char addr[300];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!v || (strcmp(a, "--port") && strcmp(a, "--host") && strcmp(a, "--timeout-ms"))) {
			fprintf(stderr, "gx-store: %s '%s'\n", v ? "unknown flag" : "missing value for", a);
			usage(stderr);
			return 2;
		}
		if (!strcmp(a, "--port")) {
			if (parse_u32(v, 65535, &port) < 0) {
				fprintf(stderr, "gx-store: --port wants 0..65535, not '%s'\n", v);
				return 2;
			}
			have_port = 1;
		} else if (!strcmp(a, "--host")) {
			host = v;
		} else if (parse_u32(v, 0xffffffffu, &timeout) < 0) {
			fprintf(stderr, "gx-store: --timeout-ms wants a number of milliseconds, not '%s'\n", v);
			return 2;
		}
		i++;
	}
	if (!have_port) {
		fprintf(stderr, "gx-store: --port is required\n");
		usage(stderr);
		return 2;
	}

	/* signals are taken synchronously by the main thread; the server thread never sees them */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	snprintf(addr, sizeof(addr), "%s:%lu", host, port);
	struct gx_store_server *s;
	if (gx_store_server_create(addr, (uint32_t)timeout, &s) < 0) {
		fprintf(stderr, "gx-store: %s\n", gx_last_error());
		return 1;
	}
	printf("gx-store: serving on %s:%u\n", host, gx_store_server_port(s));
	fflush(stdout);

	int sig = 0;
	while (gx_store_server_running(s)) {
		struct timespec t = { 0, 200 * 1000 * 1000 };
		sig = sigtimedwait(&sigs, NULL, &t);
		if (sig > 0)
			break;
	}
	if (sig > 0)
		fprintf(stderr, "gx-store: %s, stopping\n", strsignal(sig));
	else
		fprintf(stderr, "gx-store: no client for %lu ms, stopping\n", timeout);
	gx_store_server_destroy(s, 0);
	return 0;
}
