/* test_netns: scripts/gx-netns and gx-linkemu with real traffic.
 *
 * Brings up 3 hosts (prefix "gxnt", MTU 9000) and checks, with UDP sent and received by processes
 * that enter the hosts' namespaces (setns): every pair connects; a 8000-byte datagram with DF set
 * crosses unfragmented, 8972 bytes (MTU 9000) too and 8973 is refused; a 5 % loss setting loses
 * 5 % +- 4 sigma of a fixed-size stream and only on the shaped link; a delay adds at least itself
 * to the round trip; jitter spreads it; reorder and dup settings produce reordered and duplicated
 * arrivals at their rates +- 4 sigma with nothing lost; a tbf rate is roughly obeyed; bad flags exit
 * 2; a normal user is told root is needed; teardown leaves no namespaces, processes, links or
 * nft tables, and up/down are idempotent.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "bench.h"
#include "gx_test.h"
#include "gx_time.h"

#define PREFIX "gxnt"
#define PORT 9099
#define MAGIC 0x67786e74u
#define MAX_SEQ 40000

static char script[512], sweep[512], linkemu[512];

/* ------------------------------------------------------------------------------------------------
 * Running the script */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fflush(stdout);
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static int netns(const char *args)
{
	return sh("timeout 60 %s %s --prefix " PREFIX " >/dev/null", script, args);
}

/* Host h's address in the default subnet (gx-netns: 10.77.0.(h+1)). */
static const char *host_ip(int h)
{
	static const char *ip[] = { "10.77.0.1", "10.77.0.2", "10.77.0.3", "10.77.0.4" };
	return ip[h];
}

/* ------------------------------------------------------------------------------------------------
 * Processes inside a host: fork, setns, run, report through shared memory */

struct shared {
	volatile int ready;
	/* receiver */
	uint64_t pkts, distinct, dups, reordered, bad, bytes;
	uint64_t first_ns, last_ns;
	/* round trips */
	uint32_t rtt_n;
	double rtt_us[512];
	int err;
	uint8_t seen[MAX_SEQ];
};

static struct shared *shm;

static void enter_host(int h)
{
	char path[128];
	snprintf(path, sizeof(path), "/run/netns/" PREFIX "-h%d", h);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		fprintf(stderr, "enter %s: %s\n", path, strerror(errno));
		_exit(3);
	}
	close(fd);
	alarm(30);   /* never outlive a broken test */
}

static pid_t spawn(int h, void (*fn)(void *), void *arg)
{
	fflush(stdout);
	fflush(stderr);
	pid_t p = fork();
	if (p == 0) {
		enter_host(h);
		fn(arg);
		_exit(0);
	}
	return p;
}

static int reap(pid_t p)
{
	int st;
	if (waitpid(p, &st, 0) != p)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void wait_ready(void)
{
	for (int i = 0; i < 2000 && !shm->ready; i++)
		usleep(1000);
}

static int udp_socket(int bind_port)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	int big = 16 << 20;
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	if (bind_port) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(bind_port) };
		if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
			fprintf(stderr, "bind: %s\n", strerror(errno));
			_exit(4);
		}
	}
	return s;
}

static void fill(uint8_t *b, uint32_t seq, uint32_t len)
{
	uint32_t h[3] = { MAGIC, seq, len };
	memcpy(b, h, sizeof(h));
	for (uint32_t i = sizeof(h); i < len; i++)
		b[i] = (uint8_t)(seq * 31 + i);
}

static int check(const uint8_t *b, ssize_t n, uint32_t *seq)
{
	uint32_t h[3];
	if (n < (ssize_t)sizeof(h))
		return -1;
	memcpy(h, b, sizeof(h));
	if (h[0] != MAGIC || h[2] != (uint32_t)n || h[1] >= MAX_SEQ)
		return -1;
	for (ssize_t i = sizeof(h); i < n; i++)
		if (b[i] != (uint8_t)(h[1] * 31 + (uint32_t)i))
			return -1;
	*seq = h[1];
	return 0;
}

/* Receiver: count what arrives until `idle_ms` pass without a packet (after the first one). */
struct rx_arg {
	int idle_ms;
	int echo;                 /* send each datagram back */
};

static void rx_main(void *p)
{
	struct rx_arg *a = p;
	static uint8_t buf[65536];
	int s = udp_socket(PORT);
	uint32_t max_seen = 0;
	int any = 0;

	shm->ready = 1;
	for (;;) {
		struct pollfd pfd = { .fd = s, .events = POLLIN };
		int r = poll(&pfd, 1, any ? a->idle_ms : 10000);
		if (r <= 0)
			break;
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n < 0)
			continue;
		uint64_t now = gx_now_ns();
		if (!any)
			shm->first_ns = now;
		shm->last_ns = now;
		any = 1;
		shm->pkts++;
		shm->bytes += (uint64_t)n;
		uint32_t seq;
		if (check(buf, n, &seq)) {
			shm->bad++;
			continue;
		}
		if (a->echo)
			sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
		if (shm->seen[seq]) {
			shm->dups++;
			continue;
		}
		shm->seen[seq] = 1;
		shm->distinct++;
		if (shm->distinct > 1 && seq < max_seen)
			shm->reordered++;
		if (seq > max_seen)
			max_seen = seq;
	}
	close(s);
}

/* Sender: n datagrams of `len` bytes at `pps` per second (0 = as fast as the socket takes them). */
struct tx_arg {
	int dst;
	uint32_t n, len, pps;
	/* round-trip mode: wait for each echo (up to 500 ms) and record the time */
	int rtt;
};

static void tx_main(void *p)
{
	struct tx_arg *a = p;
	static uint8_t buf[65536], back[65536];
	int s = udp_socket(0);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	inet_pton(AF_INET, host_ip(a->dst), &to.sin_addr);
	int df = IP_PMTUDISC_DO;   /* never fragment: a datagram too big for the path must fail */
	setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &df, sizeof(df));

	uint64_t t0 = gx_now_ns();
	for (uint32_t i = 0; i < a->n; i++) {
		fill(buf, i, a->len);
		uint64_t t = gx_now_ns();
		if (sendto(s, buf, a->len, 0, (struct sockaddr *)&to, sizeof(to)) != (ssize_t)a->len) {
			if (errno == ENOBUFS || errno == EAGAIN) {
				usleep(100);
				i--;
				continue;
			}
			shm->err = errno;
			break;
		}
		if (a->rtt) {
			struct pollfd pfd = { .fd = s, .events = POLLIN };
			if (poll(&pfd, 1, 500) == 1 && recv(s, back, sizeof(back), 0) == (ssize_t)a->len &&
			    !memcmp(back, buf, a->len) && shm->rtt_n < 512)
				shm->rtt_us[shm->rtt_n++] = (double)(gx_now_ns() - t) / 1e3;
		} else if (a->pps && (i % 16) == 15) {
			uint64_t due = t0 + (uint64_t)(i + 1) * 1000000000ull / a->pps;
			uint64_t now = gx_now_ns();
			if (due > now) {
				struct timespec d = { 0, (long)(due - now) };
				nanosleep(&d, NULL);
			}
		}
	}
	close(s);
}

static void reset_shm(void)
{
	memset(shm, 0, sizeof(*shm));
}

/* One stream src -> dst; results in *shm. */
static void stream(int src, int dst, uint32_t n, uint32_t len, uint32_t pps)
{
	reset_shm();
	struct rx_arg ra = { .idle_ms = 300 };
	pid_t r = spawn(dst, rx_main, &ra);
	wait_ready();
	CU_ASSERT_FATAL(shm->ready);
	struct tx_arg ta = { .dst = dst, .n = n, .len = len, .pps = pps };
	pid_t t = spawn(src, tx_main, &ta);
	CU_ASSERT_EQUAL(reap(t), 0);
	CU_ASSERT_EQUAL(reap(r), 0);
	CU_ASSERT_EQUAL(shm->err, 0);
	CU_ASSERT_EQUAL(shm->bad, 0);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* n round trips src -> dst -> src of len bytes; returns how many came back, sorted RTTs in shm. */
static uint32_t round_trips(int src, int dst, uint32_t n, uint32_t len)
{
	reset_shm();
	struct rx_arg ra = { .idle_ms = 600, .echo = 1 };
	pid_t r = spawn(dst, rx_main, &ra);
	wait_ready();
	struct tx_arg ta = { .dst = dst, .n = n, .len = len, .rtt = 1 };
	pid_t t = spawn(src, tx_main, &ta);
	CU_ASSERT_EQUAL(reap(t), 0);
	CU_ASSERT_EQUAL(reap(r), 0);
	qsort(shm->rtt_us, shm->rtt_n, sizeof(double), cmp_d);
	return shm->rtt_n;
}

/* Value of `key=` on the first line of `gx-netns status` that contains `match`; -1 if none. */
static long long status_value(const char *match, const char *key)
{
	char cmd[1024], line[1024];
	long long v = -1;
	snprintf(cmd, sizeof(cmd), "timeout 20 %s status --prefix " PREFIX, script);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		char *k;
		if (v < 0 && strstr(line, match) && (k = strstr(line, key)) && k[strlen(key)] == '=')
			v = atoll(k + strlen(key) + 1);
	}
	pclose(p);
	return v;
}

/* |observed - p| <= 4 sigma of a binomial proportion over n trials. */
static int within_4sigma(double observed, double p, uint64_t n)
{
	double sigma = sqrt(p * (1.0 - p) / (double)n);
	printf("    observed %.5f expected %.5f (4 sigma = %.5f, n = %llu)\n", observed, p, 4 * sigma,
	       (unsigned long long)n);
	return fabs(observed - p) <= 4.0 * sigma;
}

/* ------------------------------------------------------------------------------------------------
 * Tests */

static double baseline_rtt_us;

static void test_connectivity(void)
{
	for (int a = 0; a < 3; a++)
		for (int b = 0; b < 3; b++) {
			if (a == b)
				continue;
			uint32_t got = round_trips(a, b, 20, 64);
			printf("\n    h%d <-> h%d: %u/20 round trips, median %.1f us", a, b, got,
			       got ? shm->rtt_us[got / 2] : 0.0);
			CU_ASSERT_EQUAL(got, 20);
			if (a == 0 && b == 1 && got)
				baseline_rtt_us = shm->rtt_us[got / 2];
		}
	printf("\n");
}

static void test_mtu_9000(void)
{
	/* 8000 bytes of UDP payload, DF set: one frame of 8042 bytes, echoed bit for bit. */
	CU_ASSERT_EQUAL(round_trips(0, 2, 10, 8000), 10);
	/* The largest datagram one 9000-byte frame carries (9000 - 20 IP - 8 UDP). */
	CU_ASSERT_EQUAL(round_trips(2, 1, 5, 8972), 5);
	/* One byte more must not be sent unfragmented: the sender gets EMSGSIZE. */
	reset_shm();
	struct tx_arg ta = { .dst = 1, .n = 1, .len = 8973 };
	CU_ASSERT_EQUAL(reap(spawn(0, tx_main, &ta)), 0);
	CU_ASSERT_EQUAL(shm->err, EMSGSIZE);
}

/* scripts/gx-sweep's plotting, fed with rows measured here and written by apps/bench.h's CSV code. */
static void test_sweep_plot(void)
{
	char dir[] = "/tmp/gxnt-sweep-XXXXXX", csv[128], png[160];
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(csv, sizeof(csv), "%s/sweep.csv", dir);
	FILE *f = fopen(csv, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	bench_print_header(f);
	static const uint32_t sizes[] = { 64, 1024, 8000 };
	for (int i = 0; i < 3; i++) {
		uint32_t got = round_trips(0, 1, 50, sizes[i]);
		CU_ASSERT_EQUAL(got, 50);
		if (!got)
			continue;
		struct bench_row r = { .peer = "gx", .transport = "kernel-udp", .op = "pingpong", .nranks = 2,
				       .oversub = 1, .bytes = sizes[i], .count = sizes[i], .type = "uint8",
				       .redop = "none", .iters = got, .time_us = shm->rtt_us[got / 2] / 2,
				       .min_us = shm->rtt_us[0] / 2,
				       .p90_us = bench_percentile(shm->rtt_us, got, 90.0) / 2 };
		r.algbw_GBps = (double)sizes[i] / (r.time_us * 1e3);
		bench_print_row(f, &r);
		stream(0, 1, 2000, sizes[i], 20000);
		double secs = (double)(shm->last_ns - shm->first_ns) / 1e9;
		struct bench_row w = { .peer = "gx", .transport = "kernel-udp", .op = "stream", .nranks = 2,
				       .oversub = 1, .bytes = sizes[i], .count = shm->distinct, .type = "uint8",
				       .redop = "none", .iters = 2000, .time_us = secs * 1e6,
				       .algbw_GBps = secs > 0 ? (double)shm->bytes / secs / 1e9 : 0,
				       .wrong = 2000 - shm->distinct };
		bench_print_row(f, &w);
	}
	fclose(f);
	CU_ASSERT_EQUAL(sh("%s plot %s >/dev/null", sweep, csv), 0);
	static const char *names[] = { "latency.png", "throughput.png" };
	for (int i = 0; i < 2; i++) {
		unsigned char magic[8] = { 0 };
		struct stat st;
		snprintf(png, sizeof(png), "%s/%s", dir, names[i]);
		FILE *p = fopen(png, "rb");
		CU_ASSERT_PTR_NOT_NULL(p);
		if (!p)
			continue;
		CU_ASSERT_EQUAL(fread(magic, 1, 8, p), 8);
		fclose(p);
		CU_ASSERT(!memcmp(magic, "\x89PNG\r\n\x1a\n", 8));
		CU_ASSERT(stat(png, &st) == 0 && st.st_size > 5000);
		unlink(png);
	}
	/* A file that is not a gx-bench CSV is refused with a message. */
	f = fopen(csv, "w");
	fprintf(f, "a,b,c\n1,2,3\n");
	fclose(f);
	CU_ASSERT_EQUAL(sh("%s plot %s 2>&1 | grep -q 'CSV header'", sweep, csv), 0);
	unlink(csv);
	rmdir(dir);
}

static void test_loss(void)
{
	const uint32_t n = 20000;

	CU_ASSERT_EQUAL_FATAL(netns("shape 1 --loss 5"), 0);
	stream(0, 1, n, 200, 50000);
	double loss = 1.0 - (double)shm->distinct / n;
	CU_ASSERT_EQUAL(shm->dups, 0);
	CU_ASSERT(within_4sigma(loss, 0.05, n));
	/* Every datagram lost was dropped by the link's rule, and nothing else was. */
	CU_ASSERT_EQUAL(status_value("loss-rule host 1", "dropped"), (long long)(n - shm->distinct));
	/* Host 2's link is not shaped: nothing may be lost there. */
	stream(0, 2, 5000, 200, 50000);
	CU_ASSERT_EQUAL(shm->distinct, 5000);
	CU_ASSERT_EQUAL_FATAL(netns("shape 1"), 0);
	stream(0, 1, 5000, 200, 50000);
	CU_ASSERT_EQUAL(shm->distinct, 5000);
}

static void test_delay_jitter(void)
{
	/* Delay on hosts 0 and 1: h0 <-> h1 crosses two delayed downlinks, h2 <-> h0 one. */
	CU_ASSERT_EQUAL_FATAL(netns("shape 0 --delay-us 2000"), 0);
	CU_ASSERT_EQUAL_FATAL(netns("shape 1 --delay-us 2000"), 0);
	uint32_t got = round_trips(0, 1, 40, 64);
	CU_ASSERT_EQUAL(got, 40);
	if (got) {
		printf("\n    2 x 2000 us: min %.0f median %.0f max %.0f us (unshaped median %.0f)",
		       shm->rtt_us[0], shm->rtt_us[got / 2], shm->rtt_us[got - 1], baseline_rtt_us);
		CU_ASSERT(shm->rtt_us[0] >= 4000.0);
		CU_ASSERT(shm->rtt_us[got / 2] <= 4000.0 + baseline_rtt_us + 3000.0);
	}
	got = round_trips(2, 0, 40, 64);
	CU_ASSERT_EQUAL(got, 40);
	if (got) {
		printf("\n    1 x 2000 us: min %.0f median %.0f max %.0f us", shm->rtt_us[0],
		       shm->rtt_us[got / 2], shm->rtt_us[got - 1]);
		CU_ASSERT(shm->rtt_us[0] >= 2000.0);
		CU_ASSERT(shm->rtt_us[got / 2] <= 2000.0 + baseline_rtt_us + 3000.0);
	}
	CU_ASSERT_EQUAL_FATAL(netns("shape 0"), 0);

	/* Jitter: delay 2000 +- 1000 us on host 1 only: round trips h2 <-> h1 spread over ~2 ms. */
	CU_ASSERT_EQUAL_FATAL(netns("shape 1 --delay-us 2000 --jitter-us 1000 --seed 3"), 0);
	got = round_trips(2, 1, 100, 64);
	CU_ASSERT_EQUAL(got, 100);
	if (got) {
		printf("\n    2000 +- 1000 us: min %.0f median %.0f max %.0f us\n", shm->rtt_us[0],
		       shm->rtt_us[got / 2], shm->rtt_us[got - 1]);
		CU_ASSERT(shm->rtt_us[0] >= 1000.0);
		CU_ASSERT(shm->rtt_us[got - 1] - shm->rtt_us[0] >= 1000.0);
		CU_ASSERT(shm->rtt_us[got / 2] <= 3000.0 + baseline_rtt_us + 3000.0);
	}
	CU_ASSERT_EQUAL_FATAL(netns("shape 1"), 0);
}

static void test_reorder_dup(void)
{
	const uint32_t n = 20000;

	CU_ASSERT_EQUAL_FATAL(netns("shape 1 --reorder 10 --dup 5 --seed 7"), 0);
	stream(0, 1, n, 200, 50000);
	printf("\n    received %llu, distinct %llu, duplicates %llu, reordered %llu\n",
	       (unsigned long long)shm->pkts, (unsigned long long)shm->distinct,
	       (unsigned long long)shm->dups, (unsigned long long)shm->reordered);
	CU_ASSERT_EQUAL(shm->distinct, n);   /* the emulator loses nothing */
	CU_ASSERT(within_4sigma((double)shm->dups / n, 0.05, n));
	CU_ASSERT(within_4sigma((double)shm->reordered / n, 0.10, n));
	/* What the emulator says it did is exactly what arrived. */
	CU_ASSERT_EQUAL(status_value("f1->p1", "duplicated"), (long long)shm->dups);
	CU_ASSERT_EQUAL(status_value("f1->p1", "reordered"), (long long)shm->reordered);
	CU_ASSERT_EQUAL(status_value("f1->p1", "rx_overruns"), 0);
	CU_ASSERT_EQUAL_FATAL(netns("shape 1"), 0);
	/* Plain again: in order, once each. */
	stream(0, 1, 5000, 200, 50000);
	CU_ASSERT_EQUAL(shm->distinct, 5000);
	CU_ASSERT_EQUAL(shm->dups, 0);
	CU_ASSERT_EQUAL(shm->reordered, 0);
}

static void test_rate(void)
{
	/* 50 Mbit/s on host 1's link, offered ~100 Mbit/s for 1 s. */
	CU_ASSERT_EQUAL_FATAL(netns("shape 1 --rate 50mbit"), 0);
	stream(0, 1, 9000, 1400, 9000);
	double secs = (double)(shm->last_ns - shm->first_ns) / 1e9;
	double mbit = secs > 0 ? (double)shm->bytes * 8 / secs / 1e6 : 0;
	/* tbf counts whole frames: 1400 payload + 28 IP/UDP + 14 Ethernet. */
	double want = 50.0 * 1400 / 1442;
	printf("\n    %llu of 9000 datagrams in %.3f s: %.1f Mbit/s of payload (limit %.1f)\n",
	       (unsigned long long)shm->distinct, secs, mbit, want);
	CU_ASSERT(mbit >= 0.6 * want && mbit <= 1.1 * want);
	CU_ASSERT(shm->distinct < 9000);   /* the offered load really exceeded the rate */
	CU_ASSERT_EQUAL_FATAL(netns("shape 1"), 0);
}

static void test_bad_flags(void)
{
	CU_ASSERT_EQUAL(sh("%s up -n 0 --prefix " PREFIX "x 2>/dev/null", script), 2);
	CU_ASSERT_EQUAL(sh("%s up -n 2 --loss 120 --prefix " PREFIX "x 2>/dev/null", script), 2);
	CU_ASSERT_EQUAL(sh("%s up -n 2 --prefix bad-name 2>/dev/null", script), 2);
	CU_ASSERT_EQUAL(sh("%s shape 1 --rate fast --prefix " PREFIX " 2>/dev/null", script), 2);
	CU_ASSERT_EQUAL(sh("%s frobnicate 2>/dev/null", script), 2);
	/* A normal user is told why nothing happens. */
	CU_ASSERT_EQUAL(sh("setpriv --reuid 65534 --regid 65534 --clear-groups %s up -n 1 --prefix " PREFIX
			   "x 2>&1 | grep -q 'needs root'", script), 0);
	CU_ASSERT_EQUAL(sh("ip netns list | grep -q '^" PREFIX "x-'"), 1);
}

/* Running (not gone, not a zombie waiting for init to reap it). */
static int running(pid_t p)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)p);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z';
}

static int count_namespaces(void)
{
	int n = 0;
	DIR *d = opendir("/run/netns");
	struct dirent *e;
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, PREFIX "-", strlen(PREFIX) + 1))
			n++;
	closedir(d);
	return n;
}

static void test_teardown(void)
{
	/* Up again with 4 hosts, a forwarder and a loss rule: replaces the running network. */
	CU_ASSERT_EQUAL_FATAL(netns("up -n 4 --delay-us 100 --loss 1"), 0);
	CU_ASSERT_EQUAL(count_namespaces(), 5);
	pid_t emu[4];
	for (int i = 0; i < 4; i++) {
		char path[128];
		snprintf(path, sizeof(path), "/run/gx-netns/" PREFIX "/linkemu-%d.pid", i);
		FILE *f = fopen(path, "r");
		emu[i] = 0;
		CU_ASSERT_PTR_NOT_NULL(f);
		if (f) {
			CU_ASSERT_EQUAL(fscanf(f, "%d", &emu[i]), 1);
			fclose(f);
		}
		CU_ASSERT(emu[i] > 0 && running(emu[i]));
	}
	CU_ASSERT_EQUAL(sh("ip netns exec " PREFIX "-sw nft list table bridge gx_netns >/dev/null"), 0);
	/* Fewer hosts: the stale ones go. */
	CU_ASSERT_EQUAL(netns("up -n 2"), 0);
	CU_ASSERT_EQUAL(count_namespaces(), 3);
	for (int i = 0; i < 4; i++)
		CU_ASSERT(emu[i] > 0 && !running(emu[i]));
	CU_ASSERT_EQUAL(netns("down"), 0);
	CU_ASSERT_EQUAL(count_namespaces(), 0);
	CU_ASSERT_EQUAL(netns("down"), 0);   /* idempotent */
	struct stat st;
	CU_ASSERT(stat("/run/gx-netns/" PREFIX, &st) < 0 && errno == ENOENT);
	/* Nothing of ours in the root namespace either. */
	CU_ASSERT_EQUAL(sh("nft list tables 2>/dev/null | grep -q gx_netns"), 1);
	CU_ASSERT_EQUAL(sh("ip -o link | grep -q '" PREFIX "'"), 1);
	CU_ASSERT_EQUAL(sh("%s status --prefix " PREFIX " >/dev/null", script), 1);
}

static int suite_init(void)
{
	return netns("up -n 3 --mtu 9000");
}

static int suite_clean(void)
{
	return netns("down");
}

int main(void)
{
	gx_test_require_root("test_netns");
	gx_test_path(script, sizeof(script), 0, "scripts/gx-netns");
	gx_test_path(sweep, sizeof(sweep), 0, "scripts/gx-sweep");
	gx_test_path(linkemu, sizeof(linkemu), 1, "apps/gx-linkemu");
	if (access(linkemu, X_OK))
		gx_test_skip("apps/gx-linkemu is not built");
	if (sh("command -v nft >/dev/null && command -v ethtool >/dev/null && command -v tc >/dev/null && "
	       "command -v gnuplot >/dev/null"))
		gx_test_skip("needs iproute2, nftables, ethtool and gnuplot-nox (scripts/gx-setup installs them)");
	setenv("GX_LINKEMU", linkemu, 1);
	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		return 1;

	CU_TestInfo tests[] = {
		{ "connectivity between all pairs", test_connectivity },
		{ "MTU 9000 end to end, DF set", test_mtu_9000 },
		{ "gx-sweep plots a measured CSV", test_sweep_plot },
		{ "5% loss on one link", test_loss },
		{ "delay and jitter", test_delay_jitter },
		{ "reorder 10% and dup 5%", test_reorder_dup },
		{ "tbf rate 50 Mbit/s", test_rate },
		{ "bad flags and non-root", test_bad_flags },
		{ "up/down idempotent, teardown complete", test_teardown },
		CU_TEST_INFO_NULL,
	};
	CU_SuiteInfo suites[] = {
		{ "gx-netns", suite_init, suite_clean, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};
	return gx_test_main(suites);
}
