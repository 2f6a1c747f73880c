/* gx_test.h: the few things every CUnit test program shares.
 *  - gx_test_main(): run the suites, print CUnit's summary, exit 0 only when every assertion passed.
 *  - gx_test_require_root() / gx_test_skip(): a test that needs what this machine lacks says so and
 *    exits 77 (meson's "skipped"); with GX_TEST_REQUIRE_ALL=1 (CI) a skip is a failure instead, so
 *    nothing CI is expected to run can silently pass by skipping.
 *  - gx_test_path(): paths to built programs and scripts for multi-process tests. */
#ifndef GX_TEST_H
#define GX_TEST_H

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static inline void gx_test_skip(const char *why)
{
	const char *all = getenv("GX_TEST_REQUIRE_ALL");

	if (all && !strcmp(all, "1")) {
		fprintf(stderr, "FAIL (GX_TEST_REQUIRE_ALL=1, cannot skip): %s\n", why);
		exit(1);
	}
	fprintf(stderr, "SKIP: %s\n", why);
	exit(77);
}

static inline void gx_test_require_root(const char *what)
{
	if (geteuid() != 0) {
		char buf[256];
		snprintf(buf, sizeof(buf), "%s needs root (network namespaces / raw sockets)", what);
		gx_test_skip(buf);
	}
}

/* $GX_TEST_BUILDDIR/rel or $GX_TEST_SRCDIR/rel (meson sets both). */
static inline const char *gx_test_path(char *buf, size_t len, int build, const char *rel)
{
	const char *root = getenv(build ? "GX_TEST_BUILDDIR" : "GX_TEST_SRCDIR");
	snprintf(buf, len, "%s/%s", root ? root : ".", rel);
	return buf;
}

/* Run a shell command built printf-style (test networks: ip, nft, scripts/gx-netns); a failing command
 * is printed with its status.  Returns the command's exit status (-1 if it did not exit normally). */
static inline int gx_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int gx_test_sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fflush(stdout);
	int st = system(cmd);
	int rc = (st == -1 || !WIFEXITED(st)) ? -1 : WEXITSTATUS(st);
	if (rc != 0)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	return rc;
}

/* A TCP port on 127.0.0.1 that nobody listens on right now (bound, then released). */
static inline uint16_t gx_test_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || getsockname(fd, (struct sockaddr *)&sa, &sl))
		sa.sin_port = 0;
	close(fd);
	return ntohs(sa.sin_port);
}

static inline int gx_test_main(CU_SuiteInfo *suites)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	if (CU_register_suites(suites) != CUE_SUCCESS) {
		fprintf(stderr, "CU_register_suites: %s\n", CU_get_error_msg());
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	unsigned ran = CU_get_number_of_tests_run();
	CU_cleanup_registry();
	return (failed || ran == 0) ? 1 : 0;
}

#endif
