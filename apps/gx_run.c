/* gx-run: start N ranks of a gx program on this machine (or one per host of a gx-netns test network),
 * wire their rendezvous, relay their output line by line, and own the job: a signal, --timeout or the
 * first failing rank stops every rank within a bounded time.  docs/runtime.md ("gx-run").
 *
 * Process groups: every process gx-run starts (ranks, gx-store) goes into one process group of its
 * own, the job's, whose id is held by a placeholder child that only sleeps.  So:
 *  - a terminal's Ctrl-C or Ctrl-\ reaches gx-run alone, and each rank gets the signal exactly once,
 *    from gx-run (gx_stop_on_signals() treats a second SIGINT/SIGTERM as "die now", which a
 *    terminal signal followed by a forwarded one would trigger);
 *  - killpg() on the job's group reaches whatever a rank started as well (a shell's children);
 *  - the group id cannot be reused by an unrelated process while the placeholder lives (it is never
 *    reaped before the end), so signalling the group is never signalling a stranger.
 * Ranks read /dev/null, so being outside the terminal's foreground group never stops them (SIGTTIN),
 * and they die with gx-run (PR_SET_PDEATHSIG) if gx-run itself is killed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gx_net.h"   /* gx_transport_opts_default: the peer timeout the ranks will use */

#define ME "gx-run"
#define MAX_RANKS 4096
#define STOP_GRACE_MS 500        /* after a forwarded signal or --timeout, before SIGKILL */
#define GRACE_EXTRA_MS 2000      /* default --grace-ms: the ranks' peer timeout plus this */
#define REAP_LIMIT_MS 2000       /* a process not gone this long after SIGKILL is stuck in the kernel */
#define DRAIN_LIMIT_MS 200       /* output still in the pipes once the processes are gone */
#define SIGNAL_FLUSH_MS 1000     /* after a signal, output that stdout does not take in this long is dropped */
#define LINE_BYTES 4096          /* a longer line is relayed in pieces of this size */
#define OUT_BYTES (1u << 20)     /* relayed output waiting for stdout */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gx-run -n N [options] -- CMD [ARGS...]\n"
		"  -n N               number of ranks (1..%d)\n"
		"  --netns PREFIX     one rank per host of the namespace network PREFIX-h0..h{N-1}\n"
		"                     (scripts/gx-netns up --prefix PREFIX -n N): rank i runs in PREFIX-hi,\n"
		"                     binds its udp transport to that host's address, and the store is host\n"
		"                     0's address.  Needs root.\n"
		"  --transport T      transport for every rank (sets GX_TRANSPORT: udp, dpdk, rdma)\n"
		"  --store-port P     TCP port of the rendezvous store (default 29500 + gx-run's pid mod 1000)\n"
		"  --external-store   run a standalone gx-store instead of letting rank 0 serve the store\n"
		"  --timeout S        stop every rank after S seconds (SIGTERM, SIGKILL %d ms later); exit 124\n"
		"  --grace-ms MS      after the first rank fails, how long the others have to stop on their\n"
		"                     own before they are killed (default: the ranks' peer timeout, from\n"
		"                     GX_PEER_TIMEOUT_MS or --peer-timeout-ms in CMD, plus %d)\n"
		"  --job-id J         job id stamped on packets (1..4294967295; default: random)\n"
		"  -v, --verbose      print the job's settings and every process's pid\n"
		"  -h, --help         this text\n"
		"Each rank gets GX_RANK, GX_SIZE, GX_LOCAL_RANK, GX_LOCAL_SIZE, GX_STORE, GX_JOB_ID and\n"
		"GX_STORE_SECRET (random per job unless already set); its output is prefixed with [rank i].\n"
		"SIGINT, SIGTERM, SIGQUIT and SIGHUP are forwarded to every rank; what still runs %d ms later\n"
		"is killed.  Exit status: 0 when every rank exited 0, 1 when one failed (or could not be\n"
		"started), 2 for bad flags, 124 after --timeout, 128+signal after a signal.\n"
		"Environment: GX_STORE_BIN = path of gx-store (default: next to gx-run, then PATH).\n",
		MAX_RANKS, STOP_GRACE_MS, GRACE_EXTRA_MS, STOP_GRACE_MS);
}

static void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bad(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, ME ": ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nrun '" ME " --help' for usage\n");
	exit(2);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, ME ": ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, ME ": ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *sig_name(int s)
{
	switch (s) {
	case SIGHUP: return "HUP";
	case SIGINT: return "INT";
	case SIGQUIT: return "QUIT";
	case SIGILL: return "ILL";
	case SIGTRAP: return "TRAP";
	case SIGABRT: return "ABRT";
	case SIGBUS: return "BUS";
	case SIGFPE: return "FPE";
	case SIGKILL: return "KILL";
	case SIGUSR1: return "USR1";
	case SIGSEGV: return "SEGV";
	case SIGUSR2: return "USR2";
	case SIGPIPE: return "PIPE";
	case SIGALRM: return "ALRM";
	case SIGTERM: return "TERM";
	case SIGCHLD: return "CHLD";
	case SIGCONT: return "CONT";
	case SIGSTOP: return "STOP";
	case SIGTSTP: return "TSTP";
	case SIGTTIN: return "TTIN";
	case SIGTTOU: return "TTOU";
	case SIGXCPU: return "XCPU";
	case SIGXFSZ: return "XFSZ";
	case SIGSYS: return "SYS";
	default: return "?";
	}
}

/* ---- flags ------------------------------------------------------------------------------------ */

struct run_opts {
	unsigned long nranks;
	const char *netns, *transport;
	unsigned long port, timeout_s, grace_ms, job_id;
	int external, verbose;
	char **cmd;
};

/* s as a whole number in 1..max, or -1 (signs, spaces, empty strings and zero are not numbers here). */
static int parse_count(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!*s)
		return -1;
	for (const char *c = s; *c; c++) {
		if (*c < '0' || *c > '9' || v > (ULONG_MAX - 9) / 10)
			return -1;
		v = v * 10 + (unsigned long)(*c - '0');
	}
	if (v < 1 || v > max)
		return -1;
	*out = v;
	return 0;
}

static int all_of(const char *s, const char *allowed_first, const char *allowed_rest, size_t maxlen)
{
	size_t n = strlen(s);

	if (!n || n > maxlen || !strchr(allowed_first, s[0]))
		return 0;
	return strspn(s + 1, allowed_rest) == n - 1;
}

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define DIGIT "0123456789"

/* "--name V" or "--name=V" at argv[*i]: the value (and *i moved past it), or NULL if argv[*i] is
 * not this flag. */
static const char *flag_value(int argc, char **argv, int *i, const char *name)
{
	size_t len = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, len))
		return NULL;
	if (a[len] == '=')
		return a + len + 1;
	if (a[len])
		return NULL;
	if (*i + 1 >= argc || !strcmp(argv[*i + 1], "--"))
		bad("%s needs a value", name);
	return argv[++*i];
}

static void parse_flags(int argc, char **argv, struct run_opts *o)
{
	const char *v, *n = NULL, *port = NULL, *timeout = NULL, *grace = NULL, *job = NULL;
	int i;

	memset(o, 0, sizeof(*o));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
			o->verbose = 1;
		else if (!strcmp(a, "--external-store"))
			o->external = 1;
		else if ((v = flag_value(argc, argv, &i, "-n")))
			n = v;
		else if ((v = flag_value(argc, argv, &i, "--netns")))
			o->netns = v;
		else if ((v = flag_value(argc, argv, &i, "--transport")))
			o->transport = v;
		else if ((v = flag_value(argc, argv, &i, "--store-port")))
			port = v;
		else if ((v = flag_value(argc, argv, &i, "--timeout")))
			timeout = v;
		else if ((v = flag_value(argc, argv, &i, "--grace-ms")))
			grace = v;
		else if ((v = flag_value(argc, argv, &i, "--job-id")))
			job = v;
		else
			bad("unknown flag '%s' (the command goes after --)", a);
	}
	if (i >= argc)
		bad("no command: " ME " -n N -- CMD [ARGS...]");
	o->cmd = argv + i;
	if (!n)
		bad("-n N is required");
	if (parse_count(n, MAX_RANKS, &o->nranks) < 0)
		bad("-n wants 1..%d, not '%s'", MAX_RANKS, n);
	if (port && parse_count(port, 65535, &o->port) < 0)
		bad("--store-port wants 1..65535, not '%s'", port);
	if (timeout && parse_count(timeout, 30ul * 86400, &o->timeout_s) < 0)
		bad("--timeout wants whole seconds, 1..%lu, not '%s'", 30ul * 86400, timeout);
	if (grace && parse_count(grace, 3600000, &o->grace_ms) < 0)
		bad("--grace-ms wants milliseconds, 1..3600000, not '%s'", grace);
	if (job && parse_count(job, 0xffffffffu, &o->job_id) < 0)
		bad("--job-id wants 1..4294967295, not '%s'", job);
	if (o->transport && !all_of(o->transport, LOWER, LOWER DIGIT "_", 32))
		bad("--transport wants a backend name (udp, dpdk, rdma), not '%s'", o->transport);
	/* the longest host name, PREFIX-h4095, must fit the 32 bytes gx-netns allows */
	if (o->netns && !all_of(o->netns, LOWER UPPER DIGIT "_", LOWER UPPER DIGIT "_", 24))
		bad("--netns wants a gx-netns prefix (letters, digits, _; at most 24), not '%s'", o->netns);
}

/* ---- helpers that run before the job ---------------------------------------------------------- */

static int random_bytes(void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t r = getrandom((char *)buf + got, len - got, 0);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0)
			got += (size_t)r;
	}
	return 0;
}

/* GX_STORE_SECRET for the ranks and gx-store: the user's if set, else 32 random bytes in hex, so a
 * process that is not part of this job cannot talk to its store. */
static int store_secret(void)
{
	const char *user = getenv("GX_STORE_SECRET");
	unsigned char raw[32];
	char hex[2 * sizeof(raw) + 1];

	if (user && *user)
		return 1;
	if (random_bytes(raw, sizeof(raw)) < 0)
		die("cannot make the store secret: getrandom: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	if (setenv("GX_STORE_SECRET", hex, 1))
		die("cannot set GX_STORE_SECRET: %s", strerror(errno));
	return 0;
}

/* The ranks' peer timeout as gx-run can see it: --peer-timeout-ms in the command, else
 * GX_PEER_TIMEOUT_MS, else the library's default (the same table the ranks read). */
static unsigned long ranks_peer_timeout_ms(char **cmd)
{
	struct gx_transport_opts t;

	gx_transport_opts_default(&t);  /* a bad GX_* value: the ranks say so themselves */
	for (int i = 1; cmd[i]; i++) {
		const char *a = cmd[i], *v = NULL;
		if (!strncmp(a, "--peer-timeout-ms=", 18))
			v = a + 18;
		else if (!strcmp(a, "--peer-timeout-ms") && cmd[i + 1])
			v = cmd[i + 1];
		if (v)
			gx_transport_opts_set(&t, "peer-timeout-ms", v);
	}
	return t.peer_timeout_ms;
}

/* Run argv with stdout into buf (stderr dropped); its exit status, or -1. */
static int capture(char *const argv[], char *buf, size_t len)
{
	int fds[2], ws;
	size_t n = 0;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(fds[1], 1);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return -1;
	}
	for (;;) {
		ssize_t r = read(fds[0], buf + n, len - 1 - n);
		if (r > 0 && (n += (size_t)r) < len - 1)
			continue;
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	buf[n] = '\0';
	close(fds[0]);
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* The first IPv4 address of eth0 in network namespace ns. */
static int netns_ip(const char *ns, char *ip, size_t len)
{
	char *argv[] = { "ip", "-n", (char *)ns, "-4", "-o", "addr", "show", "dev", "eth0", NULL };
	char out[1024], *tok, *save = NULL;

	if (capture(argv, out, sizeof(out)) != 0)
		return -1;
	/* "2: eth0    inet 10.77.0.1/24 brd ..." */
	for (tok = strtok_r(out, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save))
		if (!strcmp(tok, "inet") && (tok = strtok_r(NULL, " \t\n", &save))) {
			tok[strcspn(tok, "/")] = '\0';
			snprintf(ip, len, "%s", tok);
			return 0;
		}
	return -1;
}

static int is_executable(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode) && !access(path, X_OK);
}

/* gx-store: GX_STORE_BIN, else the one next to this gx-run (same build or install), else PATH. */
static void find_store_bin(char *path, size_t len)
{
	const char *env = getenv("GX_STORE_BIN"), *dirs = getenv("PATH");
	char self[PATH_MAX - 16];   /* room for "/gx-store" in path */
	ssize_t n;

	if (env && *env) {
		if (!is_executable(env))
			die("GX_STORE_BIN=%s is not an executable file: point it at gx-store", env);
		snprintf(path, len, "%s", env);
		return;
	}
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(path, len, "%s/gx-store", self);
			if (is_executable(path))
				return;
		}
	}
	for (const char *d = dirs ? dirs : ""; *d;) {
		size_t dl = strcspn(d, ":");
		snprintf(path, len, "%.*s/gx-store", (int)dl, dl ? d : ".");
		if (is_executable(path))
			return;
		d += dl + (d[dl] == ':');
	}
	die("gx-store not found next to " ME " or in PATH: build it (ninja -C build) or set GX_STORE_BIN");
}

/* ---- the job ---------------------------------------------------------------------------------- */

struct proc {
	char label[24];           /* output prefix: "[rank 3] ", "[store] " */
	char name[16];            /* in messages: "rank 3", "gx-store" */
	pid_t pid;
	int out_fd;               /* read end of its stdout and stderr; -1 at EOF */
	char line[LINE_BYTES];    /* the line being received */
	size_t len;
	int reaped, status;       /* wait status once reaped */
	int stop_sig;             /* the signal that stopped it, 0 if it never stopped */
	int stopped_now;          /* stopped and not continued since */
	int failed;               /* counted as a failure (reported once) */
	const char *killed_why;   /* set when gx-run sent it SIGKILL */
};

enum phase {
	RUNNING,                  /* every rank runs or exited 0 */
	GRACE,                    /* a rank failed: the others have --grace-ms to stop on their own */
	STOPPING,                 /* a signal or --timeout was forwarded: SIGKILL after STOP_GRACE_MS */
	KILLED,                   /* SIGKILL sent: waiting for the kernel to reap */
};

static struct job {
	struct run_opts o;
	struct proc *procs;       /* ranks 0..nranks-1, then gx-store if any */
	unsigned nprocs, nranks;
	pid_t launcher, holder;   /* holder's pid is the job's process group id */
	enum phase phase;
	int64_t deadline;         /* of the phase (GRACE, STOPPING, KILLED) */
	int64_t timeout_at;       /* --timeout, 0 if none */
	int first_failed;         /* index into procs, -1 */
	char first_failure[160];  /* its status when it failed */
	int stop_signal;          /* the first signal gx-run got, 0 if none */
	int timed_out;
	int hup_ignored;          /* gx-run was started with SIGHUP ignored (nohup): the ranks keep that */
	char kill_reason[128];
} job = { .first_failed = -1 };

static struct {
	char *buf;
	size_t head, tail;        /* bytes [head, tail) wait for stdout */
	int dead;                 /* stdout is gone: drop output */
} out;

static int wake_pipe[2] = { -1, -1 };
static volatile sig_atomic_t signals_got, last_signal, child_event;

static void on_signal(int signo)
{
	int saved = errno;

	last_signal = signo;
	signals_got++;
	(void)!write(wake_pipe[1], "s", 1);
	errno = saved;
}

static void on_child(int signo)
{
	int saved = errno;

	(void)signo;
	child_event = 1;
	(void)!write(wake_pipe[1], "c", 1);
	errno = saved;
}

static const int stop_signals[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP };

static void install_handlers(void)
{
	struct sigaction sa, old;
	sigset_t set;

	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK))
		die("pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	/* Installed even when inherited ignored (a script's '&' ignores SIGINT and SIGQUIT): gx-run
	 * must always be able to stop its job; only nohup's ignored SIGHUP is respected. */
	for (unsigned i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++) {
		int s = stop_signals[i];
		sa.sa_handler = on_signal;
		if (s == SIGHUP && !sigaction(SIGHUP, NULL, &old) && old.sa_handler == SIG_IGN) {
			job.hup_ignored = 1;
			continue;
		}
		sigaction(s, &sa, NULL);
		sigaddset(&set, s);
	}
	sa.sa_handler = on_child;   /* no SA_NOCLDSTOP: a stopped rank must wake gx-run */
	sigaction(SIGCHLD, &sa, NULL);
	sigaddset(&set, SIGCHLD);
	signal(SIGPIPE, SIG_IGN);   /* a closed stdout is an EPIPE to handle, not gx-run's death */
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* In a child between fork and exec: the signal state a program expects at start (SIGINT, SIGTERM,
 * SIGQUIT, SIGPIPE at their defaults whatever gx-run inherited, no signal blocked), in the job's
 * process group, dying with gx-run. */
static void child_setup(pid_t pgid)
{
	static const int defaults[] = { SIGINT, SIGTERM, SIGQUIT, SIGPIPE, SIGCHLD };
	sigset_t none;

	setpgid(0, pgid);
	for (unsigned i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		signal(defaults[i], SIG_DFL);
	signal(SIGHUP, job.hup_ignored ? SIG_IGN : SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != job.launcher)   /* gx-run died before prctl took effect */
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The placeholder whose pid is the job's process group id (see the top of this file). */
static void start_group_holder(void)
{
	sigset_t all, old;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != job.launcher)
			_exit(0);
		if (null >= 0)
			for (int fd = 0; fd < 3; fd++)
				dup2(null, fd);
		for (;;)
			pause();    /* every signal stays blocked: only SIGKILL ends it */
	}
	if (pid < 0)
		die("fork: %s", strerror(errno));
	setpgid(pid, pid);          /* both sides, so the group exists whichever runs first */
	sigprocmask(SIG_SETMASK, &old, NULL);
	job.holder = pid;
}

struct env_var {
	const char *name;
	char value[128];
};

/* What main works out before anything starts. */
struct job_setup {
	char store_host[64], store_addr[96], store_bin[PATH_MAX];
	char (*ips)[64];          /* --netns: host i's address */
	int secret_kept;          /* GX_STORE_SECRET came from the user */
};

static int spawn(struct proc *p, char *const argv[], const struct env_var *env, unsigned nenv)
{
	int fds[2], err;
	sigset_t all, old;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	sigfillset(&all);           /* no handler of gx-run's may run in the child */
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0)
			dup2(null, 0);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		for (unsigned i = 0; i < nenv; i++)
			setenv(env[i].name, env[i].value, 1);
		child_setup(job.holder);
		execvp(argv[0], argv);
		dprintf(2, ME ": cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	err = errno;
	if (pid > 0)
		setpgid(pid, job.holder);
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		errno = err;
		return -1;
	}
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	p->pid = pid;
	p->out_fd = fds[0];
	return 0;
}

static int is_rank(const struct proc *p)
{
	return p < job.procs + job.nranks;
}

static unsigned ranks_running(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < job.nranks; i++)
		n += !job.procs[i].reaped;
	return n;
}

/* Whether every rank still there is stopped: then nothing will change on its own. */
static int only_stopped_left(void)
{
	unsigned left = 0;

	for (unsigned i = 0; i < job.nranks; i++)
		if (!job.procs[i].reaped) {
			if (!job.procs[i].stopped_now)
				return 0;
			left++;
		}
	return left > 0;
}

/* Signal every process of the job: the whole group while its placeholder holds the id. */
static void signal_job(int signo)
{
	if (killpg(job.holder, signo) == 0)
		return;
	for (unsigned i = 0; i < job.nprocs; i++)
		if (!job.procs[i].reaped && job.procs[i].pid > 0)   /* kill(0) would hit gx-run's group */
			kill(job.procs[i].pid, signo);
}

/* ---- output relay --------------------------------------------------------------------------- */

static size_t out_room(void)
{
	if (out.head == out.tail)
		out.head = out.tail = 0;
	if (out.head > OUT_BYTES / 2) {
		memmove(out.buf, out.buf + out.head, out.tail - out.head);
		out.tail -= out.head;
		out.head = 0;
	}
	return OUT_BYTES - out.tail;
}

static void out_put(const char *s, size_t n)
{
	if (out.dead)
		return;
	memcpy(out.buf + out.tail, s, n);
	out.tail += n;
}

/* One write of what waits, if stdout takes it without blocking for more than wait_ms (-1: as long
 * as it takes).  Pieces of at most PIPE_BUF never block on a pipe that polled writable. */
static void out_write(int wait_ms)
{
	struct pollfd pfd = { .fd = 1, .events = POLLOUT };

	for (int pieces = 0; pieces < 16 && out.head != out.tail && !out.dead; pieces++) {
		if (poll(&pfd, 1, pieces ? 0 : wait_ms) <= 0)
			return;
		size_t n = out.tail - out.head;
		ssize_t w = write(1, out.buf + out.head, n < PIPE_BUF ? n : PIPE_BUF);
		if (w > 0)
			out.head += (size_t)w;
		else if (w < 0 && errno != EINTR && errno != EAGAIN) {
			out.dead = 1;       /* stdout closed (EPIPE) or broken: the job goes on, unheard */
			out.head = out.tail = 0;
		}
	}
}

static void emit_line(struct proc *p)
{
	out_put(p->label, strlen(p->label));
	out_put(p->line, p->len);
	if (!p->len || p->line[p->len - 1] != '\n')
		out_put("\n", 1);
	p->len = 0;
}

static void relay(struct proc *p, const char *data, size_t n)
{
	while (n) {
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) + 1 : n;
		if (take > LINE_BYTES - p->len)
			take = LINE_BYTES - p->len;
		memcpy(p->line + p->len, data, take);
		p->len += take;
		data += take;
		n -= take;
		if (p->line[p->len - 1] == '\n' || p->len == LINE_BYTES)
			emit_line(p);
	}
}

/* Read what p wrote, as much as the output buffer has room for; at EOF its last partial line. */
static void read_output(struct proc *p)
{
	char buf[65536];

	while (p->out_fd >= 0) {
		/* worst case every byte ends a line: label + 1 bytes each, plus the pending line */
		size_t room = out_room(), need = LINE_BYTES + sizeof(p->label) + 1;
		if (room < need + 256)
			return;
		size_t max = (room - need) / (strlen(p->label) + 1);
		ssize_t r = read(p->out_fd, buf, max < sizeof(buf) ? max : sizeof(buf));
		if (r > 0) {
			relay(p, buf, (size_t)r);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (p->len)
			emit_line(p);
		close(p->out_fd);
		p->out_fd = -1;
	}
}

/* ---- events ------------------------------------------------------------------------------------ */

static void describe(const struct proc *p, char *buf, size_t len)
{
	int ws = p->status;
	size_t n = 0;

	buf[0] = '\0';
	if (p->stop_sig)
		n = (size_t)snprintf(buf, len, "stopped by signal %d (%s)%s", p->stop_sig, sig_name(p->stop_sig),
				     p->reaped ? ", then " : "");
	if (n >= len)
		return;
	if (!p->reaped) {
		if (!p->stop_sig)
			snprintf(buf + n, len - n, "still running");
		if (p->killed_why)
			snprintf(buf + strlen(buf), len - strlen(buf), "; still there %d ms after SIGKILL (stuck in "
				 "the kernel?)", REAP_LIMIT_MS);
		return;
	}
	if (WIFEXITED(ws))
		snprintf(buf + n, len - n, "exit %d", WEXITSTATUS(ws));
	else if (WIFSIGNALED(ws))
		snprintf(buf + n, len - n, "killed by signal %d (%s)%s%s", WTERMSIG(ws), sig_name(WTERMSIG(ws)),
			 p->killed_why && WTERMSIG(ws) == SIGKILL ? " from " ME ": " : "",
			 p->killed_why && WTERMSIG(ws) == SIGKILL ? p->killed_why : "");
}

/* Up to 8 names of the processes still running, for messages. */
static void list_running(char *buf, size_t len)
{
	unsigned shown = 0, left = 0;
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < job.nprocs; i++) {
		const struct proc *p = &job.procs[i];
		if (p->reaped)
			continue;
		if (shown == 8) {
			left++;
			continue;
		}
		n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", shown ? ", " : "", p->name);
		shown++;
	}
	if (left && n < len)
		snprintf(buf + n, len - n, " and %u more", left);
}

static void kill_job(const char *why)
{
	char names[256];

	if (job.phase == KILLED)
		return;
	list_running(names, sizeof(names));
	if (why != job.kill_reason)    /* the grace's reason is already there */
		snprintf(job.kill_reason, sizeof(job.kill_reason), "%s", why);
	for (unsigned i = 0; i < job.nprocs; i++)
		if (!job.procs[i].reaped)
			job.procs[i].killed_why = job.kill_reason;
	if (names[0])
		note("killing %s (%s)", names, why);
	signal_job(SIGKILL);
	signal_job(SIGCONT);        /* a stopped process dies at once, not when someone continues it */
	job.phase = KILLED;
	job.deadline = now_ms() + REAP_LIMIT_MS;
}

static void stop_job(int signo, const char *why)
{
	note("%s: sent SIG%s to every rank; what still runs in %d ms is killed", why, sig_name(signo),
	     STOP_GRACE_MS);
	signal_job(signo);
	job.phase = STOPPING;
	job.deadline = now_ms() + STOP_GRACE_MS;
}

static void handle_signals(unsigned *seen)
{
	char why[64];
	unsigned got = (unsigned)signals_got;
	int signo = last_signal;

	if (got == *seen)
		return;
	if (!job.stop_signal) {
		job.stop_signal = signo;
		snprintf(why, sizeof(why), "got SIG%s", sig_name(signo));
		if (job.phase == KILLED)
			note("%s while the job is being killed", why);
		else
			stop_job(signo, why);
	} else if (job.phase != KILLED) {
		snprintf(why, sizeof(why), "got SIG%s again", sig_name(signo));
		kill_job(why);
	}
	*seen = got;
}

static void failed(struct proc *p)
{
	char st[160];

	p->failed = 1;
	if (job.first_failed >= 0 || job.phase != RUNNING)
		return;
	job.first_failed = (int)(p - job.procs);
	read_output(p);             /* its last words before the verdict */
	out_write(0);
	describe(p, st, sizeof(st));
	snprintf(job.first_failure, sizeof(job.first_failure), "%s", st);
	if (is_rank(p) && ranks_running() == !p->reaped)
		note("%s failed: %s", p->name, st);
	else if (is_rank(p))
		note("%s failed: %s; the other ranks have %lu ms to stop on their own (--grace-ms), then "
		     "they are killed", p->name, st, job.o.grace_ms);
	else
		note("%s ended while the ranks were running (%s); they have %lu ms to stop on their own "
		     "(--grace-ms), then they are killed", p->name, st, job.o.grace_ms);
	snprintf(job.kill_reason, sizeof(job.kill_reason), "still running %lu ms after %s failed",
		 job.o.grace_ms, p->name);
	job.phase = GRACE;
	job.deadline = now_ms() + (int64_t)job.o.grace_ms;
}

static void reap(void)
{
	for (unsigned i = 0; i < job.nprocs; i++) {
		struct proc *p = &job.procs[i];
		int ws;
		pid_t r;
		if (p->reaped || p->pid <= 0)
			continue;
		while ((r = waitpid(p->pid, &ws, WNOHANG | WUNTRACED | WCONTINUED)) < 0 && errno == EINTR)
			;
		if (r != p->pid)
			continue;
		if (WIFCONTINUED(ws)) {
			p->stopped_now = 0;
			continue;
		}
		if (WIFSTOPPED(ws)) {
			/* a stopped rank never finishes and holds its peers up: as good as dead */
			p->stop_sig = WSTOPSIG(ws);
			p->stopped_now = 1;
			if (is_rank(p) || ranks_running())
				failed(p);
			continue;
		}
		p->reaped = 1;
		p->stopped_now = 0;
		p->status = ws;
		/* the store ends before the ranks only when something went wrong */
		if (is_rank(p) ? !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) || p->stop_sig : ranks_running() > 0)
			failed(p);
	}
}

/* Wait for output, signals and children until `until` (ms, monotonic; 0: no limit), then handle
 * what came. */
static void step(int64_t until, unsigned *signals_seen)
{
	struct pollfd pfd[2 + MAX_RANKS + 1];
	struct proc *who[2 + MAX_RANKS + 1];
	nfds_t n = 0;
	int wait = -1;

	pfd[n] = (struct pollfd){ .fd = wake_pipe[0], .events = POLLIN };
	who[n++] = NULL;
	if (out.head != out.tail && !out.dead) {
		pfd[n] = (struct pollfd){ .fd = 1, .events = POLLOUT };
		who[n++] = NULL;
	}
	/* a process's output is read only while the buffer has room for it: back-pressure */
	int room = out_room() >= LINE_BYTES + 1024 + 64;
	for (unsigned i = 0; room && i < job.nprocs; i++)
		if (job.procs[i].out_fd >= 0) {
			pfd[n] = (struct pollfd){ .fd = job.procs[i].out_fd, .events = POLLIN };
			who[n++] = &job.procs[i];
		}
	if (until) {
		int64_t left = until - now_ms();
		wait = left < 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
	}
	int ready = poll(pfd, n, wait);
	if (ready < 0 && errno != EINTR)
		die("poll: %s", strerror(errno));
	if (ready > 0 && (pfd[0].revents & POLLIN)) {
		char drain[64];
		while (read(wake_pipe[0], drain, sizeof(drain)) > 0)
			;
	}
	handle_signals(signals_seen);
	if (child_event) {
		child_event = 0;
		reap();
	}
	for (nfds_t i = 1; ready > 0 && i < n; i++) {
		if (!pfd[i].revents)
			continue;
		if (who[i])
			read_output(who[i]);
		else
			out_write(0);
	}
}

/* ---- main ------------------------------------------------------------------------------------ */

/* Defaults that need the system (port, job id, grace, secret); the namespace hosts' addresses. */
static void prepare(struct job_setup *js)
{
	struct run_opts *o = &job.o;

	if (!o->port)
		o->port = 29500 + (unsigned long)job.launcher % 1000;
	if (!o->job_id) {
		uint32_t r = 0;
		if (random_bytes(&r, sizeof(r)) < 0)
			die("cannot pick a job id: getrandom: %s", strerror(errno));
		o->job_id = r ? r : 1;
	}
	if (!o->grace_ms)
		o->grace_ms = ranks_peer_timeout_ms(o->cmd) + GRACE_EXTRA_MS;
	js->secret_kept = store_secret();
	snprintf(js->store_host, sizeof(js->store_host), "127.0.0.1");
	if (o->netns) {
		if (geteuid() != 0)
			die("--netns needs root (ip netns exec): run as root or with sudo");
		if (!(js->ips = calloc(job.nranks, sizeof(*js->ips))))
			die("out of memory");
		for (unsigned i = 0; i < job.nranks; i++) {
			char ns[64], path[128];
			struct stat st;
			snprintf(ns, sizeof(ns), "%s-h%u", o->netns, i);
			snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
			if (stat(path, &st))
				die("namespace %s does not exist: create the network first (scripts/gx-netns up "
				    "--prefix %s -n %u)", ns, o->netns, job.nranks);
			if (netns_ip(ns, js->ips[i], sizeof(js->ips[i])) < 0)
				die("namespace %s has no IPv4 address on eth0", ns);
		}
		snprintf(js->store_host, sizeof(js->store_host), "%s", js->ips[0]);
	}
	snprintf(js->store_addr, sizeof(js->store_addr), "%s:%lu", js->store_host, o->port);
	if (o->external)
		find_store_bin(js->store_bin, sizeof(js->store_bin));
}

static int start_store(struct job_setup *js)
{
	struct proc *p = &job.procs[job.nranks];
	char port[16], ns0[64];
	char *plain[] = { js->store_bin, "--host", js->store_host, "--port", port, NULL };
	char *in_ns[] = { "ip", "netns", "exec", ns0, js->store_bin, "--host", js->store_host, "--port", port, NULL };

	snprintf(port, sizeof(port), "%lu", job.o.port);
	snprintf(ns0, sizeof(ns0), "%s-h0", job.o.netns ? job.o.netns : "");
	snprintf(p->label, sizeof(p->label), "[store] ");
	snprintf(p->name, sizeof(p->name), "gx-store");
	if (spawn(p, job.o.netns ? in_ns : plain, NULL, 0) < 0) {
		note("cannot start gx-store: %s", strerror(errno));
		return -1;
	}
	if (job.o.verbose)
		note("gx-store: pid %d", (int)p->pid);
	return 0;
}

/* Every rank, each with its environment; a rank that cannot be started stops the job. */
static void start_ranks(struct job_setup *js)
{
	struct run_opts *o = &job.o;
	size_t ncmd = 0;
	char ns[64];

	/* CMD, or ip netns exec NS CMD (ip execs CMD: the pid stays the rank's) */
	while (o->cmd[ncmd])
		ncmd++;
	char **argv = calloc(ncmd + 5, sizeof(char *)), **tail = argv;
	if (!argv)
		die("out of memory");
	if (o->netns) {
		argv[0] = "ip";
		argv[1] = "netns";
		argv[2] = "exec";
		argv[3] = ns;
		tail = argv + 4;
	}
	memcpy(tail, o->cmd, ncmd * sizeof(char *));

	for (unsigned i = 0; i < job.nranks; i++) {
		struct proc *p = &job.procs[i];
		struct env_var env[12];
		unsigned ne = 0;
		snprintf(p->label, sizeof(p->label), "[rank %u] ", i);
		snprintf(p->name, sizeof(p->name), "rank %u", i);
		snprintf(ns, sizeof(ns), "%s-h%u", o->netns ? o->netns : "", i);
#define ENV(n, ...) do { env[ne].name = n; snprintf(env[ne].value, sizeof(env[ne].value), __VA_ARGS__); ne++; } while (0)
		ENV("GX_RANK", "%u", i);
		ENV("GX_SIZE", "%u", job.nranks);
		ENV("GX_STORE", "%s", js->store_addr);
		ENV("GX_JOB_ID", "%lu", o->job_id);
		if (o->external)
			ENV("GX_STORE_EXTERNAL", "1");
		if (o->transport)
			ENV("GX_TRANSPORT", "%s", o->transport);
		if (o->netns) {
			ENV("GX_LOCAL_RANK", "0");
			ENV("GX_LOCAL_SIZE", "1");
			ENV("GX_UDP_IP", "%s", js->ips[i]);
		} else {
			ENV("GX_LOCAL_RANK", "%u", i);
			ENV("GX_LOCAL_SIZE", "%u", job.nranks);
		}
#undef ENV
		if (spawn(p, argv, env, ne) < 0) {
			note("cannot start rank %u: %s; stopping the others", i, strerror(errno));
			/* only the ranks that run are reported and stopped; the store moves up behind them */
			if (o->external)
				job.procs[i] = job.procs[job.nranks];
			job.nranks = i;
			job.nprocs = i + (o->external ? 1 : 0);
			kill_job("another rank could not be started");
			break;
		}
		if (o->verbose)
			note("rank %u: pid %d", i, (int)p->pid);
	}
	free(argv);
}

/* Until every rank is gone, or given up on after SIGKILL. */
static void run_job(unsigned *signals_seen)
{
	if (job.o.timeout_s)
		job.timeout_at = now_ms() + (int64_t)job.o.timeout_s * 1000;
	while (ranks_running()) {
		int64_t t = now_ms(), until = 0;
		if (job.phase == RUNNING && job.timeout_at && t >= job.timeout_at) {
			char why[64];
			job.timed_out = 1;
			snprintf(why, sizeof(why), "--timeout %lu s reached", job.o.timeout_s);
			stop_job(SIGTERM, why);
		}
		if (job.phase == GRACE && job.timeout_at && t >= job.timeout_at) {
			job.timed_out = 1;
			kill_job("--timeout reached");
		}
		if ((job.phase == GRACE || job.phase == STOPPING) && t >= job.deadline)
			kill_job(job.phase == GRACE ? job.kill_reason : "still running after the signal");
		if (job.phase == GRACE && only_stopped_left())
			kill_job("stopped, and every other rank is gone");
		if (job.phase == KILLED && t >= job.deadline)
			break;
		if (job.phase != RUNNING)
			until = job.deadline;
		if (job.timeout_at && (job.phase == RUNNING || job.phase == GRACE) && (!until || job.timeout_at < until))
			until = job.timeout_at;
		step(until, signals_seen);
	}
}

/* The store once the ranks are done with it, whatever is left of the job's group, the output. */
static void wind_down(unsigned *signals_seen)
{
	struct proc *store = job.o.external ? &job.procs[job.nranks] : NULL;
	int64_t until;

	if (store && !store->reaped && job.phase != KILLED) {
		until = now_ms() + STOP_GRACE_MS;
		kill(store->pid, SIGTERM);
		while (!store->reaped && now_ms() < until && !job.stop_signal)
			step(until, signals_seen);
	}
	kill_job("the job is over");
	signal_job(SIGKILL);        /* what is left of the group, the placeholder too */
	until = now_ms() + REAP_LIMIT_MS;
	while (store && !store->reaped && now_ms() < until)
		step(until, signals_seen);
	/* output still in the pipes: bounded, since a grandchild may hold one open forever */
	until = now_ms() + DRAIN_LIMIT_MS;
	for (;;) {
		int open_fds = 0;
		for (unsigned i = 0; i < job.nprocs; i++)
			open_fds += job.procs[i].out_fd >= 0;
		if (!open_fds || now_ms() >= until)
			break;
		step(until, signals_seen);
	}
	for (unsigned i = 0; i < job.nprocs; i++) {
		struct proc *p = &job.procs[i];
		if (p->out_fd >= 0) {
			if (p->len)
				emit_line(p);
			close(p->out_fd);
			p->out_fd = -1;
		}
	}
	/* all of it to stdout; after a signal, for a bounded time only */
	until = now_ms() + SIGNAL_FLUSH_MS;
	while (out.head != out.tail && !out.dead) {
		int64_t left = until - now_ms();
		if (job.stop_signal && left <= 0)
			break;
		out_write(job.stop_signal ? (int)left : -1);
	}
	while (waitpid(job.holder, NULL, 0) < 0 && errno == EINTR)
		;
}

/* Every rank's status, the first failure; the exit status. */
static int report(void)
{
	unsigned nfailed = 0;
	int start_failed = job.nranks < job.o.nranks;

	for (unsigned i = 0; i < job.nprocs; i++) {
		struct proc *p = &job.procs[i];
		char st[200];
		if (!is_rank(p) && !p->failed)
			continue;
		describe(p, st, sizeof(st));
		note("%s: %s", p->name, st);
		if (is_rank(p) && (p->failed || !p->reaped || p->status != 0))
			nfailed++;
	}
	if (job.first_failed >= 0)
		note("%s failed first (%s); %u of %u ranks failed", job.procs[job.first_failed].name,
		     job.first_failure, nfailed, job.nranks);
	else if (nfailed)
		note("%u of %u ranks failed", nfailed, job.nranks);
	if (start_failed)
		note("only %u of %lu ranks could be started", job.nranks, job.o.nranks);
	if (job.stop_signal)
		return 128 + job.stop_signal;
	if (job.timed_out)
		return 124;
	return nfailed || start_failed || job.first_failed >= 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct job_setup js = { 0 };
	unsigned signals_seen = 0;

	parse_flags(argc, argv, &job.o);
	job.launcher = getpid();
	job.nranks = (unsigned)job.o.nranks;
	prepare(&js);
	job.nprocs = job.nranks + (job.o.external ? 1 : 0);
	job.procs = calloc(job.nprocs, sizeof(*job.procs));
	out.buf = malloc(OUT_BYTES);
	if (!job.procs || !out.buf)
		die("out of memory");
	start_group_holder();
	install_handlers();
	if (job.o.verbose)
		note("%u ranks of %s, store %s served by %s, job id %lu, process group %d, grace %lu ms, "
		     "store secret %s", job.nranks, job.o.cmd[0], js.store_addr,
		     job.o.external ? "gx-store" : "rank 0", job.o.job_id, (int)job.holder, job.o.grace_ms,
		     js.secret_kept ? "from GX_STORE_SECRET" : "random");
	if (job.o.external && start_store(&js) < 0) {
		signal_job(SIGKILL);    /* the placeholder */
		return 1;
	}
	start_ranks(&js);
	run_job(&signals_seen);
	wind_down(&signals_seen);
	int status = report();
	free(js.ips);
	free(job.procs);
	free(out.buf);
	return status;
}
