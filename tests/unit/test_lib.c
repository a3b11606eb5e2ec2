/*
 * src/lib: safe_open_regular() (refuses what a less trusted user can
 * plant without blocking), the bounded buffer (grows to its maximum, refuses
 * past it and changes nothing) and the cursor parsers (integers reject empty
 * input, signs, overflow; the cursor moves only on success), and
 * POSTD_ASSERT() (a broken promise aborts with FILE:LINE and the
 * expression in the log; a kept one costs nothing).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/parse.h"
#include "lib/postd_assert.h"
#include "lib/safe_open.h"
#include "death_test.h"

static void test_buf_grows_to_max(void **state)
{
	struct buf *b = buf_new(1000);
	char chunk[7];

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(buf_len(b), 0);
	assert_string_equal(buf_data(b), "");
	assert_int_equal(buf_max(b), 1000);
	/* 142 * 7 = 994: many reallocations on the way. */
	for (int i = 0; i < 142; i++)
		assert_int_equal(buf_append(b, chunk, sizeof(chunk)), 0);
	assert_int_equal(buf_len(b), 994);
	assert_int_equal(buf_append(b, chunk, 6), 0);
	assert_int_equal(buf_len(b), 1000);
	assert_int_equal(buf_data(b)[1000], '\0');
	for (size_t i = 0; i < 1000; i++)
		assert_int_equal(buf_data(b)[i], 'x');
	buf_free(&b);
	assert_null(b);
	buf_free(&b);
}

static void test_buf_refuses_past_max_unchanged(void **state)
{
	struct buf *b = buf_new(10);

	(void)state;
	assert_int_equal(buf_append_str(b, "12345678"), 0);
	assert_int_equal(buf_append_str(b, "abc"), -1);
	assert_int_equal(buf_len(b), 8);
	assert_string_equal(buf_data(b), "12345678");
	assert_int_equal(buf_printf(b, "%d", 123), -1);
	assert_string_equal(buf_data(b), "12345678");
	assert_int_equal(buf_printf(b, "%d", 90), 0);
	assert_string_equal(buf_data(b), "1234567890");
	assert_int_equal(buf_append(b, "", 0), 0);
	assert_int_equal(buf_append(b, "z", 1), -1);
	/* A length that would overflow size arithmetic is refused too. */
	assert_int_equal(buf_append(b, "z", SIZE_MAX), -1);
	assert_int_equal(buf_len(b), 10);
	buf_clear(b);
	assert_int_equal(buf_len(b), 0);
	assert_string_equal(buf_data(b), "");
	assert_int_equal(buf_append_str(b, "0123456789"), 0);
	buf_free(&b);
}

static void test_buf_zero_max(void **state)
{
	struct buf *b = buf_new(0);

	(void)state;
	assert_int_equal(buf_append(b, "", 0), 0);
	assert_int_equal(buf_append(b, "a", 1), -1);
	assert_int_equal(buf_printf(b, "%s", ""), 0);
	assert_int_equal(buf_printf(b, "%s", "a"), -1);
	assert_string_equal(buf_data(b), "");
	buf_free(&b);
}

static void test_buf_binary_and_printf(void **state)
{
	struct buf *b = buf_new(100);

	(void)state;
	assert_int_equal(buf_append(b, "a\0b", 3), 0);
	assert_int_equal(buf_len(b), 3);
	assert_memory_equal(buf_data(b), "a\0b", 4);
	assert_int_equal(buf_printf(b, "<%s:%u>", "n", 42u), 0);
	assert_int_equal(buf_len(b), 9);
	assert_memory_equal(buf_data(b), "a\0b<n:42>", 10);
	buf_free(&b);
}

static void test_buf_wipe(void **state)
{
	struct buf *b = buf_new(64);

	(void)state;
	assert_int_equal(buf_append_str(b, "secret"), 0);
	buf_wipe(b);
	assert_int_equal(buf_len(b), 0);
	assert_string_equal(buf_data(b), "");
	/* The bytes after the terminator are gone as well. */
	for (size_t i = 0; i < 6; i++)
		assert_int_not_equal(buf_data(b)[i], "secret"[i]);
	assert_int_equal(buf_append_str(b, "again"), 0);
	assert_string_equal(buf_data(b), "again");
	buf_free(&b);
}

struct uint_case {
	const char *in;
	uint64_t max;
	int rc;
	uint64_t value;
	size_t consumed;
};

static void test_parse_uint64(void **state)
{
	static const struct uint_case cases[] = {
	    {"0", UINT64_MAX, 0, 0, 1},
	    {"7", UINT64_MAX, 0, 7, 1},
	    {"0042", UINT64_MAX, 0, 42, 4},
	    {"18446744073709551615", UINT64_MAX, 0, UINT64_MAX, 20},
	    {"18446744073709551616", UINT64_MAX, -1, 0, 0},
	    {"99999999999999999999", UINT64_MAX, -1, 0, 0},
	    {"100", 100, 0, 100, 3},
	    {"101", 100, -1, 0, 0},
	    {"1000", 100, -1, 0, 0},
	    {"4294967295", UINT32_MAX, 0, UINT32_MAX, 10},
	    {"4294967296", UINT32_MAX, -1, 0, 0},
	    {"", UINT64_MAX, -1, 0, 0},
	    {"-1", UINT64_MAX, -1, 0, 0},
	    {"+1", UINT64_MAX, -1, 0, 0},
	    {" 1", UINT64_MAX, -1, 0, 0},
	    {"x1", UINT64_MAX, -1, 0, 0},
	    /* Trailing noise is left for the next parser. */
	    {"12abc", UINT64_MAX, 0, 12, 2},
	    {"12 ", UINT64_MAX, 0, 12, 2},
	    {"5-", UINT64_MAX, 0, 5, 1},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = cases[i].in;
		uint64_t v = 12345;
		int rc = parse_uint64(&p, cases[i].max, &v);

		if (rc != cases[i].rc)
			fail_msg("'%s': rc %d", cases[i].in, rc);
		assert_ptr_equal(p, cases[i].in + cases[i].consumed);
		if (rc == 0)
			assert_true(v == cases[i].value);
		else
			assert_true(v == 12345); /* untouched on failure */
	}
}

static void test_parse_uint64_then_end(void **state)
{
	static const struct {
		const char *in;
		int rc;
	} cases[] = {
	    {"1", 0}, {"1x", -1}, {"1 ", -1}, {"-1", -1}, {"+1", -1}, {"", -1},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = cases[i].in;
		uint64_t v;
		int rc = parse_uint64(&p, UINT64_MAX, &v);

		if (rc == 0)
			rc = parse_end(&p);
		assert_int_equal(rc, cases[i].rc);
	}
}

static void test_parse_uint32(void **state)
{
	const char *p = "4294967295";
	uint32_t v = 0;

	(void)state;
	assert_int_equal(parse_uint32(&p, UINT32_MAX, &v), 0);
	assert_true(v == UINT32_MAX);
	p = "4294967296";
	assert_int_equal(parse_uint32(&p, UINT32_MAX, &v), -1);
	p = "65536";
	assert_int_equal(parse_uint32(&p, 65535, &v), -1);
	p = "65535";
	assert_int_equal(parse_uint32(&p, 65535, &v), 0);
	assert_int_equal(v, 65535);
	p = "-0";
	assert_int_equal(parse_uint32(&p, 10, &v), -1);
}

static void test_parse_word(void **state)
{
	char dst[8];
	const char *p;

	(void)state;
	p = "USER bob";
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), 0);
	assert_string_equal(dst, "USER");
	assert_string_equal(p, " bob");
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), -1);
	assert_int_equal(parse_space(&p), 0);
	assert_int_equal(parse_space(&p), -1);
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), 0);
	assert_string_equal(dst, "bob");
	assert_int_equal(parse_end(&p), 0);
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), -1);

	/* Exactly max is fine, one more is refused and moves nothing. */
	p = "1234567";
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), 0);
	assert_string_equal(dst, "1234567");
	p = "12345678";
	memcpy(dst, "keep", 5);
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), -1);
	assert_string_equal(p, "12345678");
	assert_string_equal(dst, "keep");
	/* max above the buffer: the buffer still bounds it. */
	p = "12345678";
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 100), -1);
	p = "123";
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 2), -1);

	/* Control bytes, DEL and 8-bit bytes end a word. */
	p = "ab\tc";
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), 0);
	assert_string_equal(dst, "ab");
	p = "ab\x7f";
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), 0);
	assert_string_equal(dst, "ab");
	assert_int_equal(parse_end(&p), -1);
	p = "\xc3\xa9";
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), -1);
	p = "a\r\n";
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), 0);
	assert_string_equal(p, "\r\n");
	p = "";
	assert_int_equal(parse_word(&p, dst, sizeof(dst), 7), -1);
}

static void test_ascii_case(void **state)
{
	char s[] = "MiXeD-123.ORG\xc3\x89";

	(void)state;
	assert_true(ascii_strncaseeq("USER", "user", 4));
	assert_true(ascii_strncaseeq("USERx", "userY", 4));
	assert_false(ascii_strncaseeq("USER", "usEs", 4));
	assert_true(ascii_strncaseeq("ab", "AB", 10));
	assert_false(ascii_strncaseeq("ab", "ABC", 10));
	assert_false(ascii_strncaseeq("[", "{", 1));
	assert_true(ascii_strncaseeq("x", "y", 0));
	ascii_lowercase(s);
	assert_string_equal(s, "mixed-123.org\xc3\x89");
}

/* A folder with one name of each kind safe_open_regular() must refuse,
 * and one regular file it must open. */
static void test_safe_open_regular(void **state)
{
	static const struct safe_open_rules rules = {100, true};
	char dir[] = "/tmp/test_safe_open.XXXXXX", cmd[64];
	const char *cause = NULL;
	struct stat st;
	int dfd, fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	fd = openat(dfd, "ok", O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello", 5), 5);
	close(fd);
	assert_int_equal(mkfifoat(dfd, "fifo", 0600), 0);
	assert_int_equal(symlinkat("ok", dfd, "link"), 0);
	assert_int_equal(mkdirat(dfd, "dir", 0700), 0);
	fd = openat(dfd, "big", O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 101), 0);
	close(fd);

	fd = safe_open_regular(dfd, "ok", O_RDONLY, &rules, &st, &cause);
	assert_true(fd >= 0);
	assert_int_equal(st.st_size, 5);
	/* O_NONBLOCK on a regular file changes nothing; it stays set. */
	close(fd);
	/* A FIFO with no writer: refused, and the call returns at once. */
	errno = 0;
	assert_int_equal(
	    safe_open_regular(dfd, "fifo", O_RDONLY, &rules, &st, &cause), -1);
	assert_int_equal(errno, ENODEV);
	assert_string_equal(cause, "is a FIFO, not a regular file");
	assert_int_equal(
	    safe_open_regular(dfd, "link", O_RDONLY, &rules, &st, &cause), -1);
	assert_int_equal(errno, ELOOP);
	assert_int_equal(
	    safe_open_regular(dfd, "dir", O_RDONLY, &rules, &st, &cause), -1);
	assert_int_equal(errno, ENODEV);
	assert_int_equal(
	    safe_open_regular(dfd, "big", O_RDONLY, &rules, &st, &cause), -1);
	assert_int_equal(errno, EFBIG);
	assert_int_equal(
	    safe_open_regular(dfd, "none", O_RDONLY, &rules, &st, &cause), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(safe_open_refused(ENOENT));
	assert_true(safe_open_refused(EMLINK));
	/* A second name for ok: refused under single_link only. */
	assert_int_equal(linkat(dfd, "ok", dfd, "ok2", 0), 0);
	assert_int_equal(
	    safe_open_regular(dfd, "ok", O_RDONLY, &rules, &st, &cause), -1);
	assert_int_equal(errno, EMLINK);
	assert_string_equal(cause, "has another hard link");
	{
		const struct safe_open_rules any = {100, false};

		fd =
		    safe_open_regular(dfd, "ok2", O_RDONLY, &any, NULL, &cause);
		assert_true(fd >= 0);
		close(fd);
	}
	close(dfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* Where the check in check_is_one() is, for the expected log line. */
static int check_is_one_line;

static void check_is_one(void *arg)
{
	int *n = arg;

	check_is_one_line = __LINE__ + 1;
	POSTD_ASSERT(*n == 1);
}

static void test_assert_fires(void **state)
{
	char out[1024], where[64];
	int one = 1, two = 2, status;

	(void)state;
	check_is_one(&one); /* kept: returns, and tells its line */
	status = death_run(check_is_one, &one, out, sizeof(out));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_string_equal(out, "");

	status = death_run(check_is_one, &two, out, sizeof(out));
	assert_true(death_by_abort(status));
	snprintf(where, sizeof(where), "assertion failed: %s:%d: *n == 1",
		 __FILE__, check_is_one_line);
	assert_non_null(strstr(out, where));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buf_grows_to_max),
	    cmocka_unit_test(test_buf_refuses_past_max_unchanged),
	    cmocka_unit_test(test_buf_zero_max),
	    cmocka_unit_test(test_buf_binary_and_printf),
	    cmocka_unit_test(test_buf_wipe),
	    cmocka_unit_test(test_parse_uint64),
	    cmocka_unit_test(test_parse_uint64_then_end),
	    cmocka_unit_test(test_parse_uint32),
	    cmocka_unit_test(test_parse_word),
	    cmocka_unit_test(test_ascii_case),
	    cmocka_unit_test(test_safe_open_regular),
	    cmocka_unit_test(test_assert_fires),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
