/* test_net_pause: time during which a rank does not poll is not held against its peers
 * (transport/net.c, discount_pause; docs/transport.md "Liveness").
 *
 * Two forked ranks over udp on 127.0.0.1, peer timeout 300 ms.  Rank 0 sends one DATA packet
 * without asking for an ACK; rank 1 receives it and stops polling before its ACK is due (what a
 * collective's last packet looks like in application-driven progress).  Then:
 * - both pause for three timeouts and resume: rank 0 must not declare rank 1 dead, and the packet
 *   is acknowledged soon after rank 1 polls again;
 * - rank 1 dies instead: rank 0, polling again after its pause, names it between 0.9 and 2
 *   timeouts after it resumed polling (the pause is not counted, the polling is). */
#include <CUnit/Basic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gx_test.h"
#include "gx_time.h"
#include "gx_backend.h"

#define TIMEOUT_MS 300

struct rank {
	struct gx_net *net;
	int sock;                       /* to the other rank: address exchange and sync bytes */
	int got;
};

static gx_status_t count_fn(void *arg, uint32_t peer, const struct gx_desc *h, const void *p, uint32_t len)
{
	(void)peer;
	(void)h;
	(void)p;
	(void)len;
	((struct rank *)arg)->got++;
	return GX_OK;
}

static int xfer(int fd, void *buf, size_t len, int out)
{
	for (size_t done = 0; done < len;) {
		ssize_t k = out ? write(fd, (char *)buf + done, len - done) : read(fd, (char *)buf + done, len - done);
		if (k <= 0)
			return -1;
		done += (size_t)k;
	}
	return 0;
}

static int sync_byte(struct rank *x, int out)
{
	char c = 's';
	return xfer(x->sock, &c, 1, out);
}

/* Open the net of rank r and connect it to the other rank through the socket. */
static int rank_open(struct rank *x, uint32_t r)
{
	struct gx_transport_opts o = { .backend = "udp", .rank = r, .nranks = 2, .job_id = 4242,
				       .peer_timeout_ms = TIMEOUT_MS };
	unsigned char blob[GX_ADDR_MAX], theirs[GX_ADDR_MAX];
	size_t len = sizeof(blob);
	uint32_t l32, tl;

	if (gx_transport_opts_set(&o, "udp-ip", "127.0.0.1") < 0 ||
	    gx_net_create(&o, &x->net) < 0 || gx_net_local_addr(x->net, blob, &len) < 0) {
		fprintf(stderr, "rank %u: %s\n", r, gx_last_error());
		return -1;
	}
	l32 = (uint32_t)len;
	if (xfer(x->sock, &l32, 4, 1) || xfer(x->sock, blob, len, 1) || xfer(x->sock, &tl, 4, 0) ||
	    tl > GX_ADDR_MAX || xfer(x->sock, theirs, tl, 0))
		return -1;
	if (gx_net_connect(x->net, 1 - r, theirs, tl) < 0) {
		fprintf(stderr, "rank %u: %s\n", r, gx_last_error());
		return -1;
	}
	return 0;
}

/* Poll for ms milliseconds (or until done() holds); <0 on a poll error (left in gx_last_error). */
static int poll_for(struct rank *x, uint32_t ms, int (*done)(struct rank *))
{
	uint64_t start = gx_now_ns(), idle = start;

	while (gx_now_ns() - start < ms * 1000000ull) {
		int r = gx_net_poll(x->net, count_fn, x);
		if (r < 0)
			return r;
		if (done && done(x))
			return 0;
		uint64_t now = gx_now_ns();
		if (r > 0)
			idle = now;
		gx_idle_backoff(now - idle);
	}
	return done ? 1 : 0;
}

static int got_one(struct rank *x)
{
	return x->got > 0;
}

static int acked(struct rank *x)
{
	return gx_net_inflight(x->net) == 0;
}

/* Rank 1: receive the packet, stop polling at once (its ACK is still pending), then either pause
 * and poll again or die. */
static int rank1(int sock, int die)
{
	struct rank x = { .sock = sock };

	if (rank_open(&x, 1) || poll_for(&x, 5000, got_one) != 0) {
		fprintf(stderr, "rank 1: the packet did not arrive: %s\n", gx_last_error());
		return 1;
	}
	struct gx_peer_counters c;
	gx_net_peer_counters(x.net, 0, &c);
	if (sync_byte(&x, 1))
		return 1;
	if (die)
		raise(SIGKILL);
	if (c.acks_sent != 0) {
		fprintf(stderr, "rank 1: an ACK left before the pause (%lu)\n", (unsigned long)c.acks_sent);
		return 1;
	}
	if (sync_byte(&x, 0))                   /* rank 0's pause is over */
		return 1;
	int r = poll_for(&x, 3 * TIMEOUT_MS, NULL);
	if (r < 0) {
		fprintf(stderr, "rank 1: %s\n", gx_last_error());
		return 1;
	}
	gx_net_destroy(x.net);
	return 0;
}

static void run(int die)
{
	int sv[2];
	struct rank x = { 0 };

	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(rank1(sv[1], die));
	}
	close(sv[1]);
	x.sock = sv[0];
	CU_ASSERT_FATAL(rank_open(&x, 0) == 0);

	/* One DATA packet, no ACK_REQ (a single packet asks for none on its own). */
	struct gx_desc d = { .coll_id = 1, .flags = GX_DESC_LAST };
	uint32_t v = 0x5867;
	CU_ASSERT_FATAL(gx_net_send(x.net, 1, &d, &v, sizeof(v)) == GX_OK);
	gx_net_flush(x.net);
	CU_ASSERT_FATAL(sync_byte(&x, 0) == 0); /* rank 1 has it and stopped polling */
	CU_ASSERT_EQUAL(gx_net_inflight(x.net), 1);

	usleep(3 * TIMEOUT_MS * 1000);          /* the pause: nobody polls */

	if (!die) {
		CU_ASSERT_FATAL(sync_byte(&x, 1) == 0);
		uint64_t t0 = gx_now_ns();
		int r = poll_for(&x, 2 * TIMEOUT_MS, acked);
		double ms = (double)(gx_now_ns() - t0) / 1e6;
		if (r < 0)
			fprintf(stderr, "rank 0: %s\n", gx_last_error());
		CU_ASSERT_EQUAL(r, 0);          /* no GX_ERR_PEER, and acknowledged */
		CU_ASSERT(ms < 100);
		struct gx_peer_counters c;
		gx_net_peer_counters(x.net, 1, &c);
		fprintf(stderr, "rank 0: acknowledged %.1f ms after resuming, %lu resent\n", ms,
			(unsigned long)c.retransmitted);
		/* The RTO ran only while we polled: a resend at most if rank 1 resumed an RTO late. */
		CU_ASSERT(c.retransmitted <= 2);
		CU_ASSERT(poll_for(&x, TIMEOUT_MS, NULL) == 0);   /* still alive after a whole timeout */
	} else {
		uint64_t t0 = gx_now_ns();
		int r = poll_for(&x, 5 * TIMEOUT_MS, NULL);
		double ms = (double)(gx_now_ns() - t0) / 1e6;
		const char *e = gx_last_error();
		fprintf(stderr, "rank 0: after %.0f ms of polling: %s\n", ms, r < 0 ? e : "(no error)");
		CU_ASSERT_EQUAL(r, GX_ERR_PEER);
		CU_ASSERT(r < 0 && strstr(e, "peer rank 1 ") != NULL);
		CU_ASSERT(ms >= 0.9 * TIMEOUT_MS && ms <= 2.0 * TIMEOUT_MS);
	}
	int st = 0;
	CU_ASSERT(waitpid(pid, &st, 0) == pid);
	if (die) {
		CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	} else {
		CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	gx_net_destroy(x.net);
	close(sv[0]);
}

static void test_pause_alive(void)
{
	run(0);
}

static void test_pause_then_dead(void)
{
	run(1);
}

static CU_TestInfo tests[] = {
	{ "unacknowledged packet across a pause of 3 timeouts: peer alive, ACKed on resume", test_pause_alive },
	{ "peer dies during the pause: named 0.9-2 timeouts after polling resumes", test_pause_then_dead },
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{ "net pause", NULL, NULL, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};
	signal(SIGPIPE, SIG_IGN);
	return gx_test_main(suites);
}
