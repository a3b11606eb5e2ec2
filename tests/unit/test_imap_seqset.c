/* Unit tests for IMAP sequence sets (RFC 9051 9, 6.4.8; RFC 5182). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/postd_limits.h"
#include "proto/imap/imap_seqset.h"

/* Parses s, resolves it against max and returns the formatted result
 * (static buffer), or "ERR" when parsing fails. *rc gets resolve's. */
static const char *resolved(const char *s, uint32_t max, bool uid, int *rc)
{
	static char text[256];
	struct imap_seqset set;
	const char *error;
	struct buf *b;

	if (imap_seqset_parse(s, strlen(s), &set, &error) < 0) {
		assert_non_null(error);
		assert_null(set.ranges);
		return "ERR";
	}
	*rc = imap_seqset_resolve(&set, max, uid);
	b = buf_new(sizeof(text) - 1);
	assert_int_equal(imap_seqset_format(&set, b), 0);
	memcpy(text, buf_data(b), buf_len(b) + 1);
	buf_free(&b);
	imap_seqset_free(&set);
	return text;
}

static void test_rfc_examples(void **state)
{
	int rc = 0;

	(void)state;
	/* RFC 9051 9: "2,4:7,9,12:*" for a mailbox with 15 messages */
	assert_string_equal(resolved("2,4:7,9,12:*", 15, false, &rc),
			    "2,4:7,9,12:15");
	assert_int_equal(rc, 0);
	/* "*:4,5:7" with 10 messages: 4..10 */
	assert_string_equal(resolved("*:4,5:7", 10, false, &rc), "4:10");
	assert_string_equal(resolved("*", 10, false, &rc), "10");
	assert_string_equal(resolved("1,3:5,7:*", 9, false, &rc), "1,3:5,7:9");
	assert_string_equal(resolved("5,4,3,1,2", 9, false, &rc), "1:5");
	assert_string_equal(resolved("4294967295", UINT32_MAX, true, &rc),
			    "4294967295");
	assert_string_equal(resolved("1:4294967295", UINT32_MAX, true, &rc),
			    "1:4294967295");
}

static void test_uid_star_rule(void **state)
{
	int rc = 0;

	(void)state;
	/* RFC 9051 6.4.8: "559:*" always includes the last UID */
	assert_string_equal(resolved("559:*", 500, true, &rc), "500");
	assert_int_equal(rc, 0);
	assert_string_equal(resolved("*:559", 500, true, &rc), "500");
	/* UIDs beyond the last simply match nothing */
	assert_string_equal(resolved("600:700", 500, true, &rc), "");
	assert_int_equal(rc, 0);
	assert_string_equal(resolved("499:700", 500, true, &rc), "499:500");
	assert_string_equal(resolved("1:*", 0, true, &rc), "");
	assert_int_equal(rc, 0);
}

static void test_seq_out_of_range(void **state)
{
	int rc = 0;

	(void)state;
	assert_string_equal(resolved("3:7", 5, false, &rc), "3:5");
	assert_int_equal(rc, 1);
	assert_string_equal(resolved("1:*", 0, false, &rc), "");
	assert_int_equal(rc, 1);
	assert_string_equal(resolved("5", 5, false, &rc), "5");
	assert_int_equal(rc, 0);
}

static void test_syntax(void **state)
{
	static const char *bad[] = {
	    "",	  "0",	 "1:0", "01",  "1,",  ",1",   "1::2",
	    "1:", ":1",	 "a",	"1 2", "-1",  "1:*:", "4294967296",
	    "$1", "$,1", "1,$", "**",  "1;2", "1:2,", "99999999999",
	};
	struct imap_seqset set;
	const char *error;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (imap_seqset_parse(bad[i], strlen(bad[i]), &set, &error) ==
		    0) {
			print_error("accepted \"%s\"\n", bad[i]);
			fail();
		}
		assert_false(imap_seqset_syntax_ok(bad[i], strlen(bad[i])));
	}
	assert_int_equal(imap_seqset_parse("$", 1, &set, &error), 0);
	assert_true(set.saved);
	assert_int_equal(set.count, 0);
	imap_seqset_free(&set);
	assert_true(imap_seqset_syntax_ok("1:*", 3));
	/* only len bytes count */
	assert_true(imap_seqset_syntax_ok("12x", 2));
}

static void test_too_many_ranges(void **state)
{
	size_t cap = IMAP_MAX_SEQ_RANGES * 8 + 16;
	char *s = malloc(cap);
	struct imap_seqset set;
	const char *error;
	size_t n = 0;

	(void)state;
	assert_non_null(s);
	/* "1,3,5,...": IMAP_MAX_SEQ_RANGES ranges that never merge */
	for (size_t i = 0; i < IMAP_MAX_SEQ_RANGES; i++)
		n += (size_t)snprintf(s + n, cap - n, "%s%zu", i ? "," : "",
				      2 * i + 1);
	assert_int_equal(imap_seqset_parse(s, n, &set, &error), 0);
	assert_int_equal(set.count, IMAP_MAX_SEQ_RANGES);
	assert_int_equal(imap_seqset_resolve(&set, UINT32_MAX, true), 0);
	assert_int_equal(set.count, IMAP_MAX_SEQ_RANGES);
	assert_true(imap_seqset_contains(&set, 1));
	assert_false(imap_seqset_contains(&set, 2));
	assert_true(imap_seqset_contains(&set, 2 * IMAP_MAX_SEQ_RANGES - 1));
	assert_false(imap_seqset_contains(&set, 2 * IMAP_MAX_SEQ_RANGES + 1));
	imap_seqset_free(&set);
	memcpy(s + n, ",1", 3);
	assert_int_equal(imap_seqset_parse(s, n + 2, &set, &error), -1);
	assert_string_equal(error, "Too many ranges in sequence set");
	assert_null(set.ranges);
	free(s);
}

static void test_contains_iter_count(void **state)
{
	struct imap_seqset set;
	struct imap_seqset_iter it;
	const char *error;
	uint32_t got[16];
	uint32_t n;
	size_t k = 0;

	(void)state;
	assert_int_equal(imap_seqset_parse("9,2:4,3:5,*,20", 14, &set, &error),
			 0);
	imap_seqset_resolve(&set, 12, false);
	assert_int_equal(imap_seqset_count(&set), 6);
	for (uint32_t i = 0; i <= 21; i++)
		assert_int_equal(imap_seqset_contains(&set, i),
				 (i >= 2 && i <= 5) || i == 9 || i == 12);
	imap_seqset_iter_init(&it, &set);
	while (imap_seqset_iter_next(&it, &n) && k < 16)
		got[k++] = n;
	assert_int_equal(k, 6);
	assert_int_equal(got[0], 2);
	assert_int_equal(got[3], 5);
	assert_int_equal(got[4], 9);
	assert_int_equal(got[5], 12);
	imap_seqset_free(&set);

	/* the iterator stops at the top of the number space */
	assert_int_equal(imap_seqset_parse("4294967294:*", 12, &set, &error),
			 0);
	imap_seqset_resolve(&set, UINT32_MAX, true);
	k = 0;
	imap_seqset_iter_init(&it, &set);
	while (imap_seqset_iter_next(&it, &n) && k < 16)
		got[k++] = n;
	assert_int_equal(k, 2);
	assert_int_equal(got[1], UINT32_MAX);
	imap_seqset_free(&set);
}

static void test_build_and_format(void **state)
{
	static const uint32_t src[] = {3, 4, 5, 9, 7, 8, 4294967295u, 1};
	struct imap_seqset set = {0};
	struct buf *b = buf_new(200);

	(void)state;
	assert_int_equal(imap_seqset_format_list(src, 8, b), 0);
	/* order kept: COPYUID pairs source and destination by position */
	assert_string_equal(buf_data(b), "3:5,9,7:8,4294967295,1");
	buf_clear(b);
	for (size_t i = 0; i < 8; i++)
		imap_seqset_add(&set, src[i], src[i]);
	imap_seqset_add(&set, 12, 10);
	imap_seqset_normalize(&set);
	assert_int_equal(imap_seqset_format(&set, b), 0);
	assert_string_equal(buf_data(b), "1,3:5,7:12,4294967295");
	imap_seqset_free(&set);
	buf_free(&b);

	/* a full buffer is reported, not overrun */
	b = buf_new(4);
	assert_int_equal(imap_seqset_format_list(src, 8, b), -1);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc_examples),
	    cmocka_unit_test(test_uid_star_rule),
	    cmocka_unit_test(test_seq_out_of_range),
	    cmocka_unit_test(test_syntax),
	    cmocka_unit_test(test_too_many_ranges),
	    cmocka_unit_test(test_contains_iter_count),
	    cmocka_unit_test(test_build_and_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
