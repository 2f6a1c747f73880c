/* log.c: the library's one message hook (gx_log.h). */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx_log.h"

static const char *const level_names[] = { "debug", "info", "warning", "error" };

static void log_stderr(void *arg, enum gx_log_level level, const char *subsystem, const char *msg)
{
	(void)arg;
	fprintf(stderr, "gx %s %s: %s\n", subsystem, level_names[level], msg);
}

struct log_hook {
	gx_log_fn fn;
	void *arg;
	int min_level;            /* -1: not set yet (GX_LOG_LEVEL is read on first use) */
};

static struct log_hook hook = { log_stderr, NULL, -1 };
static atomic_flag hook_lock = ATOMIC_FLAG_INIT;

static int env_level(void)
{
	const char *v = getenv("GX_LOG_LEVEL");

	for (int i = 0; v && i < 4; i++)
		if (!strcmp(v, level_names[i]) || (i == GX_LOG_WARN && !strcmp(v, "warn")))
			return i;
	return GX_LOG_WARN;
}

static struct log_hook hook_get(void)
{
	struct log_hook h;

	while (atomic_flag_test_and_set_explicit(&hook_lock, memory_order_acquire))
		;
	if (hook.min_level < 0)
		hook.min_level = env_level();
	h = hook;
	atomic_flag_clear_explicit(&hook_lock, memory_order_release);
	return h;
}

void gx_log_set(gx_log_fn fn, void *arg, enum gx_log_level min_level)
{
	while (atomic_flag_test_and_set_explicit(&hook_lock, memory_order_acquire))
		;
	hook.fn = fn ? fn : log_stderr;
	hook.arg = arg;
	hook.min_level = (int)min_level;
	atomic_flag_clear_explicit(&hook_lock, memory_order_release);
}

void gx_log(enum gx_log_level level, const char *subsystem, const char *fmt, ...)
{
	struct log_hook h = hook_get();
	char msg[1024];
	va_list ap;

	if ((int)level < h.min_level || (unsigned)level > GX_LOG_ERROR)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	h.fn(h.arg, level, subsystem, msg);
}
