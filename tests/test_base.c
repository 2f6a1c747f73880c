/* test_base.c: the services of base/: CRC32C (check value, chaining, every single and double bit flip
 * of a packet caught), settings tables (parsing, defaults, errors naming the origin), the log hook. */
#include <stdint.h>
#include <string.h>

#include "gx_crc.h"
#include "gx_log.h"
#include "gx_option.h"
#include "gx_rng.h"
#include "gx_test.h"

/* Bit by bit, the definition: reflected polynomial 0x82f63b78, all-ones in and out. */
static uint32_t crc_ref(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
	}
	return ~c;
}

static void test_crc(void)
{
	static uint8_t buf[20000];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)gx_rng_u32(7, (uint32_t)i);

	CU_ASSERT_EQUAL(gx_crc32c("123456789", 9, 0), 0xe3069283u);
	CU_ASSERT_EQUAL(gx_crc32c_portable("123456789", 9, 0), 0xe3069283u);
	CU_ASSERT_EQUAL(gx_crc32c("", 0, 0), 0);
	/* every length up to a jumbo frame, at every alignment the kernels distinguish */
	for (size_t n = 0; n <= 19990; n += n < 400 ? 1 : n < 3200 ? 7 : 97)
		for (size_t off = 0; off < 8; off += 3)
			if (gx_crc32c(buf + off, n, 0) != crc_ref(buf + off, n) ||
			    gx_crc32c_portable(buf + off, n, 0) != crc_ref(buf + off, n)) {
				CU_FAIL("CRC32C differs from the bitwise definition");
				fprintf(stderr, "length %zu offset %zu\n", n, off);
				return;
			}
	/* chaining: the CRC of a then b continues from a's */
	for (size_t cut = 0; cut <= 1500; cut += 37)
		CU_ASSERT_EQUAL(gx_crc32c(buf + cut, 1500 - cut, gx_crc32c(buf, cut, 0)), gx_crc32c(buf, 1500, 0));
}

static void test_crc_flips(void)
{
	/* a 1472-byte packet: every single-bit flip and 20000 random double flips change the CRC */
	static uint8_t p[1472];
	for (size_t i = 0; i < sizeof(p); i++)
		p[i] = (uint8_t)gx_rng_u32(9, (uint32_t)i);
	uint32_t good = gx_crc32c(p, sizeof(p), 0);
	unsigned missed = 0;
	for (size_t bit = 0; bit < 8 * sizeof(p); bit++) {
		p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		missed += gx_crc32c(p, sizeof(p), 0) == good;
		p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (uint32_t k = 0; k < 20000; k++) {
		uint32_t a = gx_rng_u32(11, 2 * k) % (8 * sizeof(p)), b = gx_rng_u32(11, 2 * k + 1) % (8 * sizeof(p));
		if (a == b)
			continue;
		p[a / 8] ^= (uint8_t)(1u << (a % 8));
		p[b / 8] ^= (uint8_t)(1u << (b % 8));
		missed += gx_crc32c(p, sizeof(p), 0) == good;
		p[a / 8] ^= (uint8_t)(1u << (a % 8));
		p[b / 8] ^= (uint8_t)(1u << (b % 8));
	}
	CU_ASSERT_EQUAL(missed, 0);
}

struct opts {
	const char *name;
	uint32_t n;
	uint16_t port;
	int mode;
	double p;
};

static gx_status_t not_bad(const char *v, const char *origin)
{
	return strcmp(v, "bad") ? GX_OK : gx_error(GX_ERR_INVAL, "%s: 'bad' is not a name", origin);
}

static const struct gx_option opt_list[] = {
	{ "name", GX_OPT_STR, offsetof(struct opts, name), "x", "a name", NULL, not_bad },
	{ "n", GX_OPT_U32, offsetof(struct opts, n), "7", "a count", NULL, NULL },
	{ "port", GX_OPT_U16, offsetof(struct opts, port), "0", "a port", NULL, NULL },
	{ "mode", GX_OPT_ENUM, offsetof(struct opts, mode), "b", "a mode", "a,b,c", NULL },
	{ "p", GX_OPT_PROB, offsetof(struct opts, p), "0.5", "a probability", NULL, NULL },
};
static const struct gx_option_table opt_table = { "test", opt_list, 5, sizeof(struct opts) };

static void test_options(void)
{
	struct opts o;

	memset(&o, 0, sizeof(o));
	gx_option_defaults(&opt_table, &o);
	CU_ASSERT_STRING_EQUAL(o.name, "x");
	CU_ASSERT_EQUAL(o.n, 7);
	CU_ASSERT_EQUAL(o.mode, 1);
	CU_ASSERT_DOUBLE_EQUAL(o.p, 0.5, 0);
	const struct gx_option *e = gx_option_find(&opt_table, "port=9", 4);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(gx_option_set(e, &o, "65535", "--port"), GX_OK);
	CU_ASSERT_EQUAL(o.port, 65535);
	CU_ASSERT_EQUAL(gx_option_set(e, &o, "65536", "--port"), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "--port: bad value '65536'"));
	CU_ASSERT_EQUAL(gx_option_set(gx_option_find(&opt_table, "mode", (size_t)-1), &o, "d", "GX_MODE"),
			GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_MODE"));
	CU_ASSERT_EQUAL(gx_option_set(gx_option_find(&opt_table, "p", (size_t)-1), &o, "1.5", "--p"), GX_ERR_INVAL);
	CU_ASSERT_EQUAL(gx_option_set(gx_option_find(&opt_table, "n", (size_t)-1), &o, "-1", "--n"), GX_ERR_INVAL);
	CU_ASSERT_EQUAL(gx_option_set(gx_option_find(&opt_table, "n", (size_t)-1), &o, NULL, "--n"), GX_OK);
	CU_ASSERT_EQUAL(o.n, 7);                       /* NULL: the default */
	CU_ASSERT_PTR_NULL(gx_option_find(&opt_table, "nope", (size_t)-1));
	/* an entry's own check runs on every value and keeps the old one on failure */
	e = gx_option_find(&opt_table, "name", (size_t)-1);
	CU_ASSERT_EQUAL(gx_option_set(e, &o, "bad", "GX_NAME"), GX_ERR_INVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(gx_last_error(), "GX_NAME: 'bad' is not a name"));
	CU_ASSERT_STRING_EQUAL(o.name, "x");
	CU_ASSERT_EQUAL(gx_option_set(e, &o, "good", "GX_NAME"), GX_OK);
	CU_ASSERT_STRING_EQUAL(o.name, "good");
	/* zero fields take their defaults, set ones stay */
	memset(&o, 0, sizeof(o));
	o.port = 5;
	gx_option_fill_unset(&opt_table, &o);
	CU_ASSERT_EQUAL(o.port, 5);
	CU_ASSERT_EQUAL(o.n, 7);
	CU_ASSERT_STRING_EQUAL(o.name, "x");
	/* a range check: in range passes, out of range names the origin, the value and the range, and
	 * what is no number is left to the type's parser */
	CU_ASSERT_EQUAL(gx_option_check_range("64", "--w", 64, 128), GX_OK);
	CU_ASSERT_EQUAL(gx_option_check_range("0x80", "--w", 64, 128), GX_OK);
	CU_ASSERT_EQUAL(gx_option_check_range("-1", "--w", -1, 1), GX_OK);
	CU_ASSERT_EQUAL(gx_option_check_range("0", "GX_W", 64, 128), GX_ERR_INVAL);
	CU_ASSERT_STRING_EQUAL(gx_last_error(), "GX_W: 0 is out of range: give 64 to 128");
	CU_ASSERT_EQUAL(gx_option_check_range("129", "--w", 64, 128), GX_ERR_INVAL);
	CU_ASSERT_EQUAL(gx_option_check_range("-5", "--w", 0, 128), GX_ERR_INVAL);
	CU_ASSERT_EQUAL(gx_option_check_range("99999999999999999999", "--w", 0, 128), GX_ERR_INVAL);
	CU_ASSERT_EQUAL(gx_option_check_range("abc", "--w", 64, 128), GX_OK);
	CU_ASSERT_EQUAL(gx_option_check_range("", "--w", 64, 128), GX_OK);
	char env[32];
	gx_option_env_name("peer-timeout-ms", env, sizeof(env));
	CU_ASSERT_STRING_EQUAL(env, "GX_PEER_TIMEOUT_MS");
}

struct logged {
	int n;
	enum gx_log_level level;
	char msg[128], sub[16];
};

static void hook(void *arg, enum gx_log_level level, const char *sub, const char *msg)
{
	struct logged *l = arg;
	l->n++;
	l->level = level;
	snprintf(l->msg, sizeof(l->msg), "%s", msg);
	snprintf(l->sub, sizeof(l->sub), "%s", sub);
}

static void test_log(void)
{
	struct logged l = { 0 };

	gx_log_set(hook, &l, GX_LOG_WARN);
	gx_log(GX_LOG_INFO, "net", "not shown %d", 1);
	CU_ASSERT_EQUAL(l.n, 0);
	gx_log(GX_LOG_WARN, "dpdk", "port %s dropped %d\n", "p0", 3);
	CU_ASSERT_EQUAL(l.n, 1);
	CU_ASSERT_EQUAL(l.level, GX_LOG_WARN);
	CU_ASSERT_STRING_EQUAL(l.sub, "dpdk");
	CU_ASSERT_STRING_EQUAL(l.msg, "port p0 dropped 3");      /* no trailing newline */
	gx_log_set(NULL, NULL, GX_LOG_ERROR);
	gx_log(GX_LOG_WARN, "dpdk", "not shown");
	CU_ASSERT_EQUAL(l.n, 1);
}

int main(void)
{
	static CU_TestInfo cases[] = {
		{ "CRC32C: check value, every length and alignment against the definition, chaining", test_crc },
		{ "CRC32C: every single and 20000 double bit flips of a packet are caught", test_crc_flips },
		{ "settings tables: parse, defaults, errors name the flag or variable", test_options },
		{ "log hook: levels, subsystem, no newline", test_log },
		CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo suites[] = {
		{ "base", NULL, NULL, NULL, NULL, cases },
		CU_SUITE_INFO_NULL,
	};
	return gx_test_main(suites);
}
