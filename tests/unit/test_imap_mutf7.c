/* Unit tests for modified UTF-7 mailbox names (RFC 3501 5.1.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "proto/imap/imap_mutf7.h"

/* Pairs that convert both ways. */
static const struct {
	const char *mutf7;
	const char *utf8;
} pairs[] = {
    {"INBOX", "INBOX"},
    {"", ""},
    /* RFC 3501 5.1.3's example */
    {"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
					"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
    {"Entw&APw-rfe", "Entw\xc3\xbcrfe"},
    {"&-", "&"},
    {"A&-B&-&-", "A&B&&"},
    /* U+1F600, a surrogate pair */
    {"&2D3eAA-", "\xf0\x9f\x98\x80"},
    /* a tab is not printable: it is encoded */
    {"a&AAk-b", "a\tb"},
    {"&AOQA9gD8-", "\xc3\xa4\xc3\xb6\xc3\xbc"},
};

static void test_pairs(void **state)
{
	struct buf *b = buf_new(256);

	(void)state;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		buf_clear(b);
		assert_int_equal(imap_mutf7_to_utf8(pairs[i].mutf7,
						    strlen(pairs[i].mutf7), b),
				 IMAP_MUTF7_OK);
		assert_string_equal(buf_data(b), pairs[i].utf8);
		buf_clear(b);
		assert_int_equal(
		    imap_utf8_to_mutf7(pairs[i].utf8, strlen(pairs[i].utf8), b),
		    IMAP_MUTF7_OK);
		assert_string_equal(buf_data(b), pairs[i].mutf7);
	}
	buf_free(&b);
}

static void test_invalid(void **state)
{
	static const char *bad[] = {
	    "&",		  /* unterminated */
	    "&U,BTFw",		  /* no "-" */
	    "&Jjo!",		  /* not base64 */
	    "&U,BTFw-&ZeVnLIqe-", /* null shift "-&" */
	    "&AGE-",		  /* "a" must stand for itself */
	    "&ACY-",		  /* so must "&" */
	    "&AAA-",		  /* U+0000 */
	    "&2D3e-",		  /* high surrogate alone */
	    "&3gA-",		  /* low surrogate alone */
	    "&2D3eAGE-",	  /* high surrogate then a non-low one */
	    "&AOQ-x&",		  /* trailing "&" */
	    "&AO-",		  /* one octet, odd */
	    "&AOQA-",		  /* non-zero padding bits / extra char */
	    "&AOR-",		  /* padding bits set */
	    "&AOQA9gD8A-",	  /* a base64 character too many */
	    "caf\xc3\xa9",	  /* raw 8-bit */
	    "a\tb",		  /* raw control */
	    "&/wA-",		  /* "/" is ',' in modified base64 */
	};
	struct buf *b = buf_new(256);

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_clear(b);
		if (imap_mutf7_to_utf8(bad[i], strlen(bad[i]), b) !=
		    IMAP_MUTF7_INVALID) {
			print_error("accepted \"%s\"\n", bad[i]);
			fail();
		}
	}
	/* invalid UTF-8 cannot be encoded */
	assert_int_equal(imap_utf8_to_mutf7("\xc3", 1, b), IMAP_MUTF7_INVALID);
	assert_int_equal(imap_utf8_to_mutf7("a\0b", 3, b), IMAP_MUTF7_INVALID);
	buf_free(&b);
}

static void test_full(void **state)
{
	struct buf *b = buf_new(5);

	(void)state;
	assert_int_equal(imap_mutf7_to_utf8("abcdef", 6, b), IMAP_MUTF7_FULL);
	buf_clear(b);
	assert_int_equal(imap_utf8_to_mutf7("\xc3\xa4\xc3\xb6\xc3\xbc", 6, b),
			 IMAP_MUTF7_FULL);
	buf_free(&b);
}

/* Every BMP character and a few astral ones survive the round trip, in
 * one section per run. */
static void test_round_trip(void **state)
{
	struct buf *enc = buf_new(64);
	struct buf *dec = buf_new(64);

	(void)state;
	for (uint32_t cp = 1; cp < 0x110000; cp += cp < 0x10000 ? 1 : 4099) {
		char u[8];
		size_t n;

		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		if (cp < 0x80) {
			u[0] = (char)cp;
			n = 1;
		} else if (cp < 0x800) {
			u[0] = (char)(0xc0 | (cp >> 6));
			u[1] = (char)(0x80 | (cp & 0x3f));
			n = 2;
		} else if (cp < 0x10000) {
			u[0] = (char)(0xe0 | (cp >> 12));
			u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
			u[2] = (char)(0x80 | (cp & 0x3f));
			n = 3;
		} else {
			u[0] = (char)(0xf0 | (cp >> 18));
			u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
			u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
			u[3] = (char)(0x80 | (cp & 0x3f));
			n = 4;
		}
		memcpy(u + n, u, n); /* twice: one section, not two */
		buf_clear(enc);
		buf_clear(dec);
		assert_int_equal(imap_utf8_to_mutf7(u, 2 * n, enc),
				 IMAP_MUTF7_OK);
		assert_int_equal(
		    imap_mutf7_to_utf8(buf_data(enc), buf_len(enc), dec),
		    IMAP_MUTF7_OK);
		assert_int_equal(buf_len(dec), 2 * n);
		assert_memory_equal(buf_data(dec), u, 2 * n);
	}
	buf_free(&enc);
	buf_free(&dec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pairs),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
