/* signal.c: the process-wide interrupt flag (gx_signal.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "gx_signal.h"

static atomic_int caught;   /* lock-free on every target gx builds for: safe in a handler */

void gx_interrupt(int signo)
{
	int zero = 0;

	atomic_compare_exchange_strong(&caught, &zero, signo > 0 ? signo : SIGINT);
}

int gx_interrupted(void)
{
	return atomic_load_explicit(&caught, memory_order_relaxed);
}

gx_status_t gx_interrupt_status(void)
{
	int s = gx_interrupted();

	if (!s)
		return GX_OK;
	return gx_error(GX_ERR_INTERRUPTED, "interrupted by %s", s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : "a signal");
}

static void on_signal(int signo)
{
	if (gx_interrupted()) {          /* the second one: stop the default way */
		signal(signo, SIG_DFL);
		raise(signo);
		return;
	}
	gx_interrupt(signo);
}

gx_status_t gx_stop_on_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM };
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		if (sigaction(sigs[i], &sa, NULL) != 0)
			return gx_error(GX_ERR_IO, "sigaction(%s): %s", strsignal(sigs[i]), strerror(errno));
		sigaddset(&set, sigs[i]);
	}
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return GX_OK;
}
