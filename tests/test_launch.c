/* test_launch.c: apps/gx-run owns its job.  A signal to gx-run stops every rank within a second; a
 * rank killed, stopped or failing ends the job after the grace with that rank named (by gx-run and,
 * for gx-bench over udp, by every survivor); ranks start with default signals and an empty mask
 * whatever gx-run inherited; the environment, the output prefixes, the per-job store secret; bad
 * flags.  The multi-rank cases run `gx-bench allreduce` over udp on loopback with
 * GX_PEER_TIMEOUT_MS=2000. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "gx_test.h"

#define PEER_TIMEOUT_MS 2000
#define DEFAULT_GRACE_MS (PEER_TIMEOUT_MS + 2000)   /* gx-run's default: peer timeout + 2 s */

struct run {
	pid_t pid;                /* gx-run */
	int fd;                   /* its stdout and stderr, -1 at EOF */
	char *out;                /* everything it printed, NUL-terminated */
	size_t len, cap;
	double t_exit;            /* when it exited (now_s) */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Start gx-run with args (NULL-terminated).  like_a_script: with SIGINT and SIGQUIT ignored and
 * SIGTERM blocked, as a non-interactive shell's '&' (and a careless parent) leaves a program. */
static void launch(struct run *r, int like_a_script, const char *const *args)
{
	char path[512];
	const char *argv[64];
	int fds[2], n = 0;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	gx_test_path(path, sizeof(path), 1, "apps/gx-run");
	argv[n++] = path;
	while (*args && n < 63)
		argv[n++] = *args++;
	argv[n] = NULL;
	if (pipe(fds))
		return;
	r->pid = fork();
	if (r->pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		if (like_a_script) {
			sigset_t term;
			signal(SIGINT, SIG_IGN);
			signal(SIGQUIT, SIG_IGN);
			sigemptyset(&term);
			sigaddset(&term, SIGTERM);
			sigprocmask(SIG_BLOCK, &term, NULL);
		}
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	r->fd = fds[0];
	r->cap = 1 << 16;
	r->out = calloc(r->cap, 1);
}

/* Read what gx-run printed for up to wait_ms; 0 at EOF. */
static int read_more(struct run *r, int wait_ms)
{
	struct pollfd p = { .fd = r->fd, .events = POLLIN };

	if (r->fd < 0)
		return 0;
	if (poll(&p, 1, wait_ms) <= 0)
		return 1;
	if (r->cap - r->len < 8192) {
		char *bigger = realloc(r->out, r->cap * 2);
		if (!bigger)
			return 1;
		r->out = bigger;
		r->cap *= 2;
	}
	ssize_t got = read(r->fd, r->out + r->len, r->cap - r->len - 1);
	if (got > 0) {
		r->len += (size_t)got;
		r->out[r->len] = '\0';
		return 1;
	}
	if (got < 0 && errno == EINTR)
		return 1;
	close(r->fd);
	r->fd = -1;
	return 0;
}

static int wait_for(struct run *r, const char *needle, double timeout_s)
{
	double end = now_s() + timeout_s;

	while (!strstr(r->out, needle) && now_s() < end)
		if (!read_more(r, 50))
			break;
	return strstr(r->out, needle) != NULL;
}

/* Everything until EOF and gx-run's exit status; after timeout_s it is killed and -1 returned. */
static int finish(struct run *r, double timeout_s)
{
	double end = now_s() + timeout_s;
	int ws = 0;

	for (;;) {
		pid_t w = waitpid(r->pid, &ws, WNOHANG);
		if (w == r->pid) {
			r->t_exit = now_s();
			break;
		}
		if (now_s() > end) {
			fprintf(stderr, "gx-run still running after %.1f s: killed\n", timeout_s);
			kill(r->pid, SIGKILL);
			waitpid(r->pid, &ws, 0);
			r->t_exit = now_s();
			ws = -1;
			break;
		}
		if (!read_more(r, 20))
			usleep(2000);
	}
	while (read_more(r, 500))
		;
	return ws >= 0 && WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static void release(struct run *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->out);
}

/* "gx-run: rank 1: pid 1234" (--verbose) */
static pid_t pid_of_rank(const struct run *r, int rank)
{
	char key[64];

	snprintf(key, sizeof(key), "gx-run: rank %d: pid ", rank);
	const char *at = strstr(r->out, key);
	return at ? (pid_t)atoi(at + strlen(key)) : -1;
}

/* "..., process group 1233, ..." (--verbose) */
static pid_t job_group(const struct run *r)
{
	const char *at = strstr(r->out, "process group ");
	return at ? (pid_t)atoi(at + 14) : -1;
}

/* No such process, or a zombie nobody reaped yet (it runs no more). */
static int gone(pid_t pid)
{
	char path[64], stat[256];

	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 1;
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	const char *paren = strrchr(stat, ')');
	return paren && paren[1] == ' ' && paren[2] == 'Z';
}

/* No process of group pgid still runs (zombies whose new parent has not reaped them yet do not). */
static int group_gone(pid_t pgid)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	int running = 0;

	if (pgid <= 0 || !proc)
		return 0;
	while ((e = readdir(proc)) && !running) {
		char path[300], stat[512];
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(stat, 1, sizeof(stat) - 1, f);
		fclose(f);
		stat[n] = '\0';
		char state;
		int ppid, pgrp;
		const char *paren = strrchr(stat, ')');
		if (paren && sscanf(paren + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid && state != 'Z')
			running = 1;
	}
	closedir(proc);
	return !running;
}

/* Some line printed by rank `rank` (after its prefix) contains `what`. */
static int rank_said(const struct run *r, int rank, const char *what)
{
	char prefix[32];

	snprintf(prefix, sizeof(prefix), "[rank %d] ", rank);
	for (const char *line = r->out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (strncmp(line, prefix, strlen(prefix)))
			continue;
		char buf[1024];
		snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) - 1 ? len : sizeof(buf) - 1), line);
		if (strstr(buf + strlen(prefix), what))
			return 1;
	}
	return 0;
}

/* A long allreduce sweep: rows from the first size after ~300 small allreduces, then minutes more. */
#define BENCH_ARGS "allreduce", "-b", "4", "-e", "1M", "-f", "1.1", "-n", "300", "-w", "1", "--warm-ms", "0", "-c", "0"

/* nranks of gx-bench allreduce under gx-run --verbose; returns once rank 0 printed its first row. */
static int launch_bench(struct run *r, int nranks, int like_a_script)
{
	char bench[512], n[16], port[16];

	gx_test_path(bench, sizeof(bench), 1, "apps/gx-bench");
	snprintf(n, sizeof(n), "%d", nranks);
	snprintf(port, sizeof(port), "%u", gx_test_free_port());
	const char *args[] = { "-n", n, "--verbose", "--store-port", port, "--", bench, BENCH_ARGS, NULL };
	launch(r, like_a_script, args);
	if (!wait_for(r, "[rank 0] gx,udp,", 30.0)) {
		fprintf(stderr, "the allreduce never printed a row:\n%s\n", r->out);
		return -1;
	}
	return 0;
}

static void print_if(int bad, const struct run *r)
{
	if (bad)
		fprintf(stderr, "--- gx-run's output ---\n%s\n---\n", r->out);
}

/* ---- a signal to gx-run ---------------------------------------------------------------------- */

static void interrupt(int nranks, int signo, int like_a_script)
{
	struct run r;
	pid_t pids[8];

	if (launch_bench(&r, nranks, like_a_script) < 0) {
		CU_FAIL("the job did not start");
		finish(&r, 1);
		release(&r);
		return;
	}
	for (int i = 0; i < nranks; i++)
		pids[i] = pid_of_rank(&r, i);
	pid_t pgid = job_group(&r);
	double t0 = now_s();
	kill(r.pid, signo);
	int rc = finish(&r, 10.0);
	double took = r.t_exit - t0;
	int survivors = 0;
	for (int i = 0; i < nranks; i++)
		survivors += !gone(pids[i]);
	fprintf(stderr, "  SIG%s to gx-run (%d ranks%s): exit %d after %.0f ms, %d rank(s) left\n",
		signo == SIGINT ? "INT" : "TERM", nranks, like_a_script ? ", started like a script's '&'" : "",
		rc, took * 1e3, survivors);
	CU_ASSERT_EQUAL(rc, 128 + signo);
	CU_ASSERT(took < 1.0);
	CU_ASSERT_EQUAL(survivors, 0);
	CU_ASSERT(group_gone(pgid));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, signo == SIGINT ? "got SIGINT" : "got SIGTERM"));
	print_if(rc != 128 + signo || took >= 1.0 || survivors, &r);
	release(&r);
}

/* gx-run started from a script with '&' (SIGINT ignored): Ctrl-C still stops every rank. */
static void test_sigint_stops_every_rank(void)
{
	interrupt(3, SIGINT, 1);
}

static void test_sigterm_stops_every_rank(void)
{
	interrupt(2, SIGTERM, 0);
}

/* A rank that ignores the forwarded signal is killed STOP_GRACE (500 ms) later all the same. */
static void test_deaf_rank_killed(void)
{
	struct run r;
	const char *args[] = { "-n", "2", "--verbose", "--", "sh", "-c", "trap '' INT; echo deaf; exec sleep 30", NULL };

	launch(&r, 0, args);
	CU_ASSERT(wait_for(&r, "[rank 1] deaf", 10.0) && wait_for(&r, "[rank 0] deaf", 10.0));
	pid_t a = pid_of_rank(&r, 0), b = pid_of_rank(&r, 1), pgid = job_group(&r);
	double t0 = now_s();
	kill(r.pid, SIGINT);
	int rc = finish(&r, 10.0);
	double took = r.t_exit - t0;
	fprintf(stderr, "  SIGINT to gx-run, ranks ignore it: exit %d after %.0f ms\n", rc, took * 1e3);
	CU_ASSERT_EQUAL(rc, 130);
	CU_ASSERT(took >= 0.45 && took < 1.0);
	CU_ASSERT(gone(a) && gone(b) && group_gone(pgid));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "gx-run: rank 1: killed by signal 9 (KILL) from gx-run"));
	print_if(rc != 130 || took >= 1.0, &r);
	release(&r);
}

/* ---- a rank that dies, stops or fails --------------------------------------------------------- */

/* Rank `victim` of 3 gets signo; gx-run must end non-zero within the peer timeout plus the grace
 * (and a margin for a loaded machine), name the rank, and leave nothing running.  The survivors
 * naming the rank themselves is the library's part. */
static void rank_lost(int victim, int signo, const char *gx_run_says)
{
	struct run r;
	pid_t pids[3];

	if (launch_bench(&r, 3, 0) < 0) {
		CU_FAIL("the job did not start");
		finish(&r, 1);
		release(&r);
		return;
	}
	for (int i = 0; i < 3; i++)
		pids[i] = pid_of_rank(&r, i);
	pid_t pgid = job_group(&r);
	double t0 = now_s();
	kill(pids[victim], signo);
	int rc = finish(&r, 20.0);
	double took = r.t_exit - t0, limit = (PEER_TIMEOUT_MS + DEFAULT_GRACE_MS) / 1e3 + 1.5;
	char victim_name[32];
	snprintf(victim_name, sizeof(victim_name), "rank %d", victim);
	int survivors = 0, named = 0, others = 0;
	for (int i = 0; i < 3; i++) {
		survivors += !gone(pids[i]);
		if (i != victim) {
			others++;
			named += rank_said(&r, i, victim_name);
		}
	}
	fprintf(stderr, "  SIG%s to rank %d of 3: gx-run exit %d after %.0f ms (limit %.0f), %d rank(s) left, "
		"%d of %d survivors name it\n", signo == SIGKILL ? "KILL" : "STOP", victim, rc, took * 1e3,
		limit * 1e3, survivors, named, others);
	CU_ASSERT(rc != 0 && rc != -1);
	CU_ASSERT(took < limit);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, gx_run_says));
	CU_ASSERT_EQUAL(survivors, 0);
	CU_ASSERT(group_gone(pgid));
	/* each survivor's own error names the lost rank (the library's ABORT/peer-timeout messages) */
	CU_ASSERT_EQUAL(named, others);
	print_if(rc == 0 || rc == -1 || took >= limit || survivors || named != others || !strstr(r.out, gx_run_says), &r);
	release(&r);
}

static void test_rank_killed(void)
{
	rank_lost(1, SIGKILL, "gx-run: rank 1 failed: killed by signal 9 (KILL)");
}

static void test_rank_stopped(void)
{
	rank_lost(2, SIGSTOP, "gx-run: rank 2 failed: stopped by signal 19 (STOP)");
}

/* Rank 1 exits 3 while the others hang: named, and the others killed once --grace-ms passed. */
static void test_rank_exits_3(void)
{
	struct run r;
	const char *args[] = { "-n", "3", "--grace-ms", "300", "--", "sh", "-c",
			       "if [ \"$GX_RANK\" = 1 ]; then echo giving up; exit 3; fi; exec sleep 30", NULL };

	launch(&r, 0, args);
	double t0 = now_s();
	int rc = finish(&r, 20.0);
	double took = r.t_exit - t0;
	fprintf(stderr, "  rank 1 exits 3: gx-run exit %d after %.0f ms\n", rc, took * 1e3);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT(took < 2.0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "[rank 1] giving up"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "gx-run: rank 1 failed: exit 3"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "gx-run: rank 1: exit 3"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "gx-run: rank 0: killed by signal 9 (KILL) from gx-run"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "gx-run: rank 1 failed first (exit 3)"));
	print_if(rc != 1 || took >= 2.0, &r);
	release(&r);
}

/* ---- start-up ---------------------------------------------------------------------------------- */

static int run_quick(const char *const *args, struct run *r)
{
	launch(r, 0, args);
	return finish(r, 20.0);
}

static void test_bad_flags(void)
{
	static const struct {
		const char *args[8];
		const char *says;
	} cases[] = {
		{ { "-n", "0", "--", "true" }, "-n wants 1..4096" },
		{ { "-n", "4097", "--", "true" }, "-n wants 1..4096" },
		{ { "-n", "two", "--", "true" }, "-n wants 1..4096" },
		{ { "-n", "--", "true" }, "-n needs a value" },
		{ { "-n", "2" }, "no command" },
		{ { "--", "true" }, "-n N is required" },
		{ { "-n", "2", "--bogus", "--", "true" }, "unknown flag '--bogus'" },
		{ { "-n", "2", "true" }, "unknown flag 'true'" },
		{ { "-n", "2", "--store-port", "0", "--", "true" }, "--store-port wants 1..65535" },
		{ { "-n", "2", "--store-port", "70000", "--", "true" }, "--store-port wants 1..65535" },
		{ { "-n", "2", "--timeout", "0", "--", "true" }, "--timeout wants whole seconds" },
		{ { "-n", "2", "--timeout=1.5", "--", "true" }, "--timeout wants whole seconds" },
		{ { "-n", "2", "--grace-ms", "0", "--", "true" }, "--grace-ms wants milliseconds" },
		{ { "-n", "2", "--grace-ms", "3600001", "--", "true" }, "--grace-ms wants milliseconds" },
		{ { "-n", "2", "--job-id", "0", "--", "true" }, "--job-id wants 1..4294967295" },
		{ { "-n", "2", "--job-id", "4294967296", "--", "true" }, "--job-id wants 1..4294967295" },
		{ { "-n", "2", "--transport", "UDP;", "--", "true" }, "--transport wants a backend name" },
		{ { "-n", "2", "--netns", "a/b", "--", "true" }, "--netns wants a gx-netns prefix" },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = run_quick(cases[i].args, &r);
		int said = strstr(r.out, cases[i].says) != NULL;
		if (rc != 2 || !said)
			fprintf(stderr, "case %zu (%s ...): exit %d, output:\n%s\n", i, cases[i].args[0], rc, r.out);
		CU_ASSERT_EQUAL(rc, 2);
		CU_ASSERT(said);
		release(&r);
	}
	CU_ASSERT_EQUAL(run_quick((const char *const[]){ "--help", NULL }, &r), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "--grace-ms"));
	release(&r);
}

/* What every rank is given, the prefix on every line (a last line without '\n' too). */
static void test_environment_and_prefix(void)
{
	struct run r;
	const char *args[] = { "-n", "3", "--store-port", "4711", "--job-id", "77", "--transport", "udp", "--",
			       "sh", "-c", "echo env $GX_RANK $GX_SIZE $GX_LOCAL_RANK $GX_LOCAL_SIZE $GX_STORE "
			       "$GX_JOB_ID $GX_TRANSPORT ${GX_STORE_EXTERNAL:-none}; printf 'no newline'", NULL };

	unsetenv("GX_STORE_SECRET");
	CU_ASSERT_EQUAL(run_quick(args, &r), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "[rank 0] env 0 3 0 3 127.0.0.1:4711 77 udp none\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "[rank 2] env 2 3 2 3 127.0.0.1:4711 77 udp none\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "[rank 1] no newline\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "gx-run: rank 2: exit 0"));
	release(&r);
}

/* 64 hex digits, the same for every rank and the store, new for every job; the user's kept. */
static void test_store_secret(void)
{
	char store[256], secret[2][80] = { "", "" };
	struct run r;
	const char *args[] = { "-n", "2", "--", "sh", "-c", "echo secret=$GX_STORE_SECRET", NULL };

	unsetenv("GX_STORE_SECRET");
	for (int job = 0; job < 2; job++) {
		CU_ASSERT_EQUAL(run_quick(args, &r), 0);
		const char *a = strstr(r.out, "[rank 0] secret="), *b = strstr(r.out, "[rank 1] secret=");
		CU_ASSERT(a && b);
		if (a && b) {
			a += 16;
			b += 16;
			size_t n = strspn(a, "0123456789abcdef");
			CU_ASSERT_EQUAL(n, 64);
			CU_ASSERT_EQUAL(a[n], '\n');
			CU_ASSERT(!strncmp(a, b, 65));
			snprintf(secret[job], sizeof(secret[job]), "%.64s", a);
		}
		release(&r);
	}
	CU_ASSERT(strcmp(secret[0], secret[1]) != 0);

	/* the user's own, and gx-store gets it too (a stand-in store that prints what it got) */
	snprintf(store, sizeof(store), "/tmp/gx-launch-store.%d", (int)getpid());
	FILE *f = fopen(store, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fprintf(f, "#!/bin/sh\necho \"secret=$GX_STORE_SECRET args=$*\"\nexec sleep 30\n");
	fclose(f);
	chmod(store, 0755);
	setenv("GX_STORE_BIN", store, 1);
	setenv("GX_STORE_SECRET", "00112233445566778899aabbccddeeff", 1);
	const char *ext[] = { "-n", "2", "--external-store", "--store-port", "4712", "--", "sh", "-c",
			      "sleep 0.3; echo secret=$GX_STORE_SECRET external=$GX_STORE_EXTERNAL", NULL };
	int rc = run_quick(ext, &r);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "[store] secret=00112233445566778899aabbccddeeff args=--host 127.0.0.1 --port 4712"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "[rank 1] secret=00112233445566778899aabbccddeeff external=1"));
	print_if(rc != 0, &r);
	release(&r);
	unsetenv("GX_STORE_SECRET");
	unsetenv("GX_STORE_BIN");
	unlink(store);
}

/* SigIgn/SigBlk of /proc/self/status (hex masks, bit n-1 for signal n). */
static unsigned long long mask_of(const char *out, const char *field)
{
	const char *at = strstr(out, field);
	return at ? strtoull(at + strlen(field), NULL, 16) : ~0ull;
}

/* Ranks start with SIGINT, SIGTERM, SIGQUIT, SIGPIPE at their defaults and nothing blocked, even when
 * gx-run itself was started with SIGINT/SIGQUIT ignored and SIGTERM blocked. */
static void test_rank_signal_state(void)
{
	struct run r;
	const char *args[] = { "-n", "1", "--", "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status", NULL };
	unsigned long long want_default = 1ull << (SIGINT - 1) | 1ull << (SIGTERM - 1) | 1ull << (SIGQUIT - 1) |
					   1ull << (SIGPIPE - 1);

	launch(&r, 1, args);
	CU_ASSERT_EQUAL(finish(&r, 20.0), 0);
	unsigned long long ign = mask_of(r.out, "[rank 0] SigIgn:"), blk = mask_of(r.out, "[rank 0] SigBlk:");
	CU_ASSERT_EQUAL(ign & want_default, 0);
	CU_ASSERT_EQUAL(blk, 0);
	print_if((ign & want_default) || blk, &r);
	release(&r);
}

/* gx-run killed outright (SIGKILL, nothing forwarded): its ranks die with it. */
static void test_ranks_die_with_gx_run(void)
{
	struct run r;
	const char *args[] = { "-n", "2", "--verbose", "--", "sleep", "30", NULL };

	launch(&r, 0, args);
	CU_ASSERT(wait_for(&r, "gx-run: rank 1: pid ", 10.0));
	wait_for(&r, "\n", 1.0);
	usleep(100000);
	pid_t a = pid_of_rank(&r, 0), b = pid_of_rank(&r, 1), pgid = job_group(&r);
	kill(r.pid, SIGKILL);
	finish(&r, 5.0);
	double end = now_s() + 1.0;
	while (!(gone(a) && gone(b) && group_gone(pgid)) && now_s() < end)
		usleep(10000);
	CU_ASSERT(gone(a) && gone(b));
	CU_ASSERT(group_gone(pgid));
	release(&r);
}

static CU_TestInfo signal_tests[] = {
	{ "SIGINT to gx-run (started like a script's '&') stops 3 allreduce ranks within 1 s, exit 130",
	  test_sigint_stops_every_rank },
	{ "SIGTERM to gx-run stops 2 allreduce ranks within 1 s, exit 143", test_sigterm_stops_every_rank },
	{ "a rank that ignores SIGINT is killed 500 ms later", test_deaf_rank_killed },
	{ "gx-run killed outright: its ranks die with it", test_ranks_die_with_gx_run },
	{ "ranks start with default signals and an empty mask", test_rank_signal_state },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo failure_tests[] = {
	{ "SIGKILL of rank 1 of 3: ends within peer timeout + grace, named by gx-run and survivors",
	  test_rank_killed },
	{ "SIGSTOP of rank 2 of 3: never waited for, named by gx-run and survivors", test_rank_stopped },
	{ "a rank exiting 3 is named, the hung others killed after --grace-ms", test_rank_exits_3 },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo start_tests[] = {
	{ "bad flags exit 2 with a message", test_bad_flags },
	{ "environment of every rank, [rank i] prefixes", test_environment_and_prefix },
	{ "GX_STORE_SECRET: random per job, the user's kept, gx-store's too", test_store_secret },
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{ "start", NULL, NULL, NULL, NULL, start_tests },
		{ "signals", NULL, NULL, NULL, NULL, signal_tests },
		{ "failures", NULL, NULL, NULL, NULL, failure_tests },
		CU_SUITE_INFO_NULL,
	};
	char peer_timeout[16];

	snprintf(peer_timeout, sizeof(peer_timeout), "%d", PEER_TIMEOUT_MS);
	setenv("GX_PEER_TIMEOUT_MS", peer_timeout, 1);
	unsetenv("GX_STORE_BIN");
	signal(SIGPIPE, SIG_IGN);
	return gx_test_main(suites);
}
