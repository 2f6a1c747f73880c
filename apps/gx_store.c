/* gx-store: the rendezvous store as a program of its own, for jobs where rank 0 should not serve it
 * (GX_STORE_EXTERNAL=1 on every rank, GX_STORE=<this host>:<port>).  docs/runtime.md, "The store". */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "gx_store.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: gx-store [--store H:P | --port P [--host H]] [--secret-file F] [--timeout-ms T]\n"
		   "                [--max-clients N] [--max-keys N] [--max-bytes N]\n"
		   "  --store H:P       the address the ranks use (their GX_STORE): listen on exactly it\n"
		   "                    (default: GX_STORE when set)\n"
		   "  --port P          TCP port to listen on (0: any free port, printed at start)\n"
		   "  --host H          address to listen on (default: the host of --store or GX_STORE, else\n"
		   "                    127.0.0.1; 0.0.0.0 listens on every interface, only if you mean it)\n"
		   "  --secret-file F   the job's secret (hex, 32-128 digits) from a file; default\n"
		   "                    GX_STORE_SECRET; without either the store serves anyone who reaches it\n"
		   "  --timeout-ms T    exit once no client has been connected for T ms (default 0: run\n"
		   "                    until SIGINT/SIGTERM)\n"
		   "  --max-clients N   authenticated connections at once (default 8192)\n"
		   "  --max-keys N      keys held (default 262144)\n"
		   "  --max-bytes N     bytes of keys and values held (default 67108864)\n");
}

static int parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *s == '-' || *end || errno || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The secret from a file, trimmed of surrounding white space, into buf.  0, or -1 with a message. */
static int read_secret_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		fprintf(stderr, "gx-store: --secret-file %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, cap - 1, f);
	int more = fgetc(f) != EOF;
	fclose(f);
	if (more) {
		fprintf(stderr, "gx-store: --secret-file %s: longer than a secret can be (%u hex digits)\n",
			path, GX_STORE_SECRET_MAX_HEX);
		return -1;
	}
	buf[n] = '\0';
	while (n && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	size_t lead = strspn(buf, " \t\r\n");
	memmove(buf, buf + lead, n - lead + 1);
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const flags[] = { "--port", "--host", "--store", "--secret-file", "--timeout-ms",
					     "--max-clients", "--max-keys", "--max-bytes" };
	const char *host = NULL, *store = getenv("GX_STORE"), *secret_file = NULL;
	unsigned long long port = 0, timeout = 0, num;
	int have_port = 0;
	struct gx_store_server_opts opts = { 0 };
	char addr[300], store_host[256], secret[512], origin[300];
	uint16_t store_port = 0;

	if (store && !*store)
		store = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '='), *v;
		size_t alen = eq && !strncmp(a, "--", 2) ? (size_t)(eq - a) : strlen(a);
		const char *flag = NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
			if (strlen(flags[k]) == alen && !strncmp(a, flags[k], alen))
				flag = flags[k];
		if (!flag) {
			fprintf(stderr, "gx-store: %s '%s'\n", a[0] == '-' ? "unknown flag" : "unexpected argument", a);
			usage(stderr);
			return 2;
		}
		v = eq && alen < strlen(a) ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
		if (!v) {
			fprintf(stderr, "gx-store: missing value for %s\n", flag);
			usage(stderr);
			return 2;
		}
		if (!strcmp(flag, "--port")) {
			if (parse_num(v, 65535, &port) < 0) {
				fprintf(stderr, "gx-store: --port wants 0..65535, not '%s'\n", v);
				return 2;
			}
			have_port = 1;
		} else if (!strcmp(flag, "--host")) {
			host = v;
		} else if (!strcmp(flag, "--store")) {
			store = v;
		} else if (!strcmp(flag, "--secret-file")) {
			secret_file = v;
		} else if (parse_num(v, !strcmp(flag, "--max-bytes") ? ~0ull : 0xffffffffull, &num) < 0 ||
			   (strcmp(flag, "--timeout-ms") && num == 0)) {
			fprintf(stderr, "gx-store: %s wants a number%s, not '%s'\n", flag,
				strcmp(flag, "--timeout-ms") ? " above 0" : " of milliseconds", v);
			return 2;
		} else if (!strcmp(flag, "--timeout-ms")) {
			timeout = num;
		} else if (!strcmp(flag, "--max-clients")) {
			opts.max_clients = (uint32_t)num;
		} else if (!strcmp(flag, "--max-keys")) {
			opts.max_keys = (uint32_t)num;
		} else {
			opts.max_bytes = num;
		}
	}
	/* listen where the ranks will look, and nowhere else unless told */
	if (store) {
		if (gx_store_parse_addr(store, store_host, sizeof(store_host), &store_port) < 0) {
			fprintf(stderr, "gx-store: %s: %s\n", store == getenv("GX_STORE") ? "GX_STORE" : "--store",
				gx_last_error());
			return 2;
		}
		if (!host)
			host = store_host;
		if (!have_port) {
			port = store_port;
			have_port = 1;
		}
	}
	if (!host)
		host = "127.0.0.1";
	if (!have_port) {
		fprintf(stderr, "gx-store: give the port: --port P, or --store H:P (or GX_STORE)\n");
		usage(stderr);
		return 2;
	}
	if (secret_file) {
		if (read_secret_file(secret_file, secret, sizeof(secret)) < 0)
			return 2;
		snprintf(origin, sizeof(origin), "--secret-file %s", secret_file);
		if (!secret[0]) {
			fprintf(stderr, "gx-store: --secret-file %s is empty\n", secret_file);
			return 2;
		}
		if (gx_store_secret_check(secret, origin) < 0) {
			fprintf(stderr, "gx-store: %s\n", gx_last_error());
			return 2;
		}
		opts.secret = secret;
	} else if (gx_store_secret_check(getenv("GX_STORE_SECRET"), "GX_STORE_SECRET") < 0) {
		fprintf(stderr, "gx-store: %s\n", gx_last_error());
		return 2;
	}
	opts.exit_idle_ms = (uint32_t)(timeout > 0xffffffffull ? 0xffffffffull : timeout);

	/* every client is a descriptor: make room for as many as the limits allow */
	struct rlimit rl;
	rlim_t want = (rlim_t)(opts.max_clients ? opts.max_clients : 8192) + 1024 + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	/* signals are taken synchronously by the main thread; the server thread never sees them */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	snprintf(addr, sizeof(addr), "%s:%llu", host, port);
	struct gx_store_server *s;
	gx_status_t st = gx_store_server_start(addr, &opts, &s);
	explicit_bzero(secret, sizeof(secret));
	if (st < 0) {
		fprintf(stderr, "gx-store: %s\n", gx_last_error());
		return st == GX_ERR_INVAL ? 2 : 1;
	}
	printf("gx-store: serving on %s:%u (%s)\n", host, gx_store_server_port(s),
	       gx_store_server_has_secret(s) ? "clients must prove the job's secret" :
	       "no secret: anyone who can connect may use it");
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
		fprintf(stderr, "gx-store: no client for %llu ms, stopping\n", timeout);
	gx_store_server_destroy(s, 0);
	return 0;
}
