/* Unit tests for the SEARCH program (RFC 9051 6.4.4, RFC 4731, RFC 5182). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "proto/imap/imap_date.h"
#include "proto/imap/imap_search.h"
#include "storage/mail_index.h"

/* One message as the callbacks see it, and what was asked about it. */
struct fake_msg {
	uint32_t seq;
	uint32_t uid;
	uint32_t flags;
	const char *keyword;
	uint64_t size;
	time_t internaldate;
	time_t sent;
	const char *from;
	const char *subject;
	const char *body;
	unsigned header_calls;
	unsigned body_calls;
};

static uint32_t fake_flags(void *ctx)
{
	return ((struct fake_msg *)ctx)->flags;
}

static bool fake_keyword(void *ctx, const char *name)
{
	const struct fake_msg *m = ctx;

	return m->keyword != NULL && strcasecmp(m->keyword, name) == 0;
}

static uint32_t fake_seq(void *ctx)
{
	return ((struct fake_msg *)ctx)->seq;
}

static uint32_t fake_uid(void *ctx)
{
	return ((struct fake_msg *)ctx)->uid;
}

static uint64_t fake_size(void *ctx)
{
	return ((struct fake_msg *)ctx)->size;
}

static time_t fake_internaldate(void *ctx)
{
	return ((struct fake_msg *)ctx)->internaldate;
}

static time_t fake_sent(void *ctx)
{
	return ((struct fake_msg *)ctx)->sent;
}

static uint64_t fake_modseq(void *ctx)
{
	return ((struct fake_msg *)ctx)->uid * 10;
}

static bool fake_header(void *ctx, const char *field, const char *needle)
{
	struct fake_msg *m = ctx;
	const char *value = NULL;

	m->header_calls++;
	if (strcasecmp(field, "From") == 0)
		value = m->from;
	else if (strcasecmp(field, "Subject") == 0)
		value = m->subject;
	return value != NULL && strcasestr(value, needle) != NULL;
}

static bool fake_body(void *ctx, const char *needle, bool with_headers)
{
	struct fake_msg *m = ctx;

	m->body_calls++;
	if (with_headers && fake_header(ctx, "Subject", needle))
		return true;
	return m->body != NULL && strcasestr(m->body, needle) != NULL;
}

static const struct imap_search_ops ops = {
    fake_flags,	 fake_keyword,	    fake_seq,	 fake_uid,
    fake_size,	 fake_internaldate, fake_modseq, fake_sent,
    fake_header, fake_body,	    0,
};

/* 1-Feb-1994 12:00 UTC, and a day either side. */
#define FEB1 ((time_t)8797 * 86400 + 12 * 3600)

static struct fake_msg msgs[] = {
    {1, 10, MAIL_SEEN, NULL, 100, FEB1 - 86400, FEB1, "Terry Gray <gray@cac>",
     "IMAP4rev2 WG mtg summary", "minutes of the meeting", 0, 0},
    {2, 11, MAIL_FLAGGED | MAIL_RECENT, "$Junk", 5000, FEB1, FEB1 + 86400,
     "Smith <smith@example>", "afternoon meeting", "bring coffee", 0, 0},
    {3, 15, MAIL_DELETED | MAIL_SEEN | MAIL_ANSWERED, NULL, 20000, FEB1 + 86400,
     (time_t)-1, "Smith", "Re: lunch", NULL, 0, 0},
    {4, 40, MAIL_DRAFT | MAIL_RECENT, "Work", 42, FEB1 + 2 * 86400,
     FEB1 - 86400, NULL, NULL, "draft text", 0, 0},
};
#define NMSGS (sizeof(msgs) / sizeof(msgs[0]))

/* Parses "t SEARCH <program>" and returns its result code. */
static int parse(const char *program, struct imap_search *s, const char **error)
{
	size_t size = strlen(program) + 16;
	char *wire = malloc(size);
	struct imap_command cmd;
	int r;

	assert_non_null(wire);
	snprintf(wire, size, "t SEARCH %s", program);
	assert_int_equal(imap_parse_command(wire, strlen(wire), &cmd, error),
			 0);
	free(wire);
	*error = NULL;
	r = imap_search_parse(cmd.args, cmd.arg_count, s, error);
	/* the search outlives the command */
	imap_command_free(&cmd);
	if (r != IMAP_SEARCH_OK) {
		assert_non_null(*error);
		assert_null(s->arena);
		assert_null(s->root);
	}
	return r;
}

/* The sequence numbers matching program, as "1 3", or "ERR". */
static const char *run(const char *program, const struct imap_seqset *saved)
{
	static char out[64];
	struct imap_search s;
	const char *error;
	size_t n = 0;

	if (parse(program, &s, &error) != IMAP_SEARCH_OK)
		return "ERR";
	imap_search_resolve(&s, NMSGS, 40, saved);
	out[0] = '\0';
	for (size_t i = 0; i < NMSGS; i++) {
		if (imap_search_match(&s, &ops, &msgs[i]))
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%u",
					      n ? " " : "", msgs[i].seq);
	}
	imap_search_free(&s);
	return out;
}

static void test_flag_keys(void **state)
{
	(void)state;
	assert_string_equal(run("ALL", NULL), "1 2 3 4");
	assert_string_equal(run("SEEN", NULL), "1 3");
	assert_string_equal(run("UNSEEN", NULL), "2 4");
	assert_string_equal(run("ANSWERED", NULL), "3");
	assert_string_equal(run("UNANSWERED", NULL), "1 2 4");
	assert_string_equal(run("DELETED", NULL), "3");
	assert_string_equal(run("UNDELETED", NULL), "1 2 4");
	assert_string_equal(run("DRAFT", NULL), "4");
	assert_string_equal(run("UNDRAFT", NULL), "1 2 3");
	assert_string_equal(run("FLAGGED", NULL), "2");
	assert_string_equal(run("UNFLAGGED", NULL), "1 3 4");
	assert_string_equal(run("RECENT", NULL), "2 4");
	assert_string_equal(run("NEW", NULL), "2 4");
	assert_string_equal(run("OLD", NULL), "1 3");
	assert_string_equal(run("KEYWORD $junk", NULL), "2");
	assert_string_equal(run("UNKEYWORD $Junk", NULL), "1 3 4");
	assert_string_equal(run("seen unanswered", NULL), "1");
}

static void test_other_keys(void **state)
{
	(void)state;
	assert_string_equal(run("LARGER 100", NULL), "2 3");
	assert_string_equal(run("SMALLER 100", NULL), "4");
	assert_string_equal(run("BEFORE 1-Feb-1994", NULL), "1");
	assert_string_equal(run("ON 1-Feb-1994", NULL), "2");
	assert_string_equal(run("SINCE \"1-Feb-1994\"", NULL), "2 3 4");
	assert_string_equal(run("SENTBEFORE 1-Feb-1994", NULL), "4");
	assert_string_equal(run("SENTON 1-Feb-1994", NULL), "1");
	assert_string_equal(run("SENTSINCE 1-Feb-1994", NULL), "1 2");
	assert_string_equal(run("FROM smith", NULL), "2 3");
	assert_string_equal(run("SUBJECT meeting", NULL), "2");
	assert_string_equal(run("HEADER Subject \"\"", NULL), "1 2 3");
	assert_string_equal(run("HEADER X-None \"\"", NULL), "");
	assert_string_equal(run("BODY coffee", NULL), "2");
	assert_string_equal(run("TEXT lunch", NULL), "3");
	assert_string_equal(run("BODY lunch", NULL), "");
	assert_string_equal(run("TO x CC y BCC z", NULL), "");
	assert_string_equal(run("MODSEQ 150", NULL), "3 4");
	assert_string_equal(run("MODSEQ \"/flags/\\\\draft\" all 150", NULL),
			    "3 4");
	assert_string_equal(run("SUBJECT {4}\r\nLUNC", NULL), "3");
}

static void test_sets(void **state)
{
	struct imap_seqset saved = {0};

	(void)state;
	assert_string_equal(run("2:3", NULL), "2 3");
	assert_string_equal(run("*", NULL), "4");
	assert_string_equal(run("1,4:*", NULL), "1 4");
	assert_string_equal(run("5:9", NULL), "");
	assert_string_equal(run("UID 11:15", NULL), "2 3");
	assert_string_equal(run("UID 41:*", NULL), "4");
	assert_string_equal(run("UID 12:14", NULL), "");
	/* "$" is the saved result, as UIDs */
	imap_seqset_add(&saved, 10, 10);
	imap_seqset_add(&saved, 40, 40);
	imap_seqset_normalize(&saved);
	assert_string_equal(run("$", &saved), "1 4");
	assert_string_equal(run("UID $", &saved), "1 4");
	assert_string_equal(run("NOT $ SEEN", &saved), "3");
	assert_string_equal(run("$", NULL), "");
	imap_seqset_free(&saved);
}

static void test_boolean(void **state)
{
	(void)state;
	/* RFC 9051 6.4.4's examples */
	assert_string_equal(
	    run("FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"", NULL), "");
	assert_string_equal(run("OR BODY coffee SEEN", NULL), "1 2 3");
	assert_string_equal(run("NOT SEEN", NULL), "2 4");
	assert_string_equal(run("OR (SEEN DELETED) DRAFT", NULL), "3 4");
	assert_string_equal(run("(OR SEEN DRAFT) (NOT 1)", NULL), "3 4");
	assert_string_equal(run("NOT NOT NOT ALL", NULL), "");
	assert_string_equal(run("((((ALL))))", NULL), "1 2 3 4");
}

static void test_cheap_first(void **state)
{
	struct imap_search s;
	const char *error;

	(void)state;
	/* the body is never read when a flag already decides */
	assert_int_equal(parse("BODY coffee SUBJECT x DELETED", &s, &error),
			 IMAP_SEARCH_OK);
	assert_int_equal(imap_search_cost(&s), IMAP_SEARCH_COST_BODY);
	imap_search_resolve(&s, NMSGS, 40, NULL);
	msgs[0].header_calls = msgs[0].body_calls = 0;
	assert_false(imap_search_match(&s, &ops, &msgs[0]));
	assert_int_equal(msgs[0].header_calls, 0);
	assert_int_equal(msgs[0].body_calls, 0);
	/* a header mismatch spares the body too */
	msgs[2].header_calls = msgs[2].body_calls = 0;
	assert_false(imap_search_match(&s, &ops, &msgs[2]));
	assert_int_equal(msgs[2].header_calls, 1);
	assert_int_equal(msgs[2].body_calls, 0);
	imap_search_free(&s);

	/* OR: a cheap true side decides */
	assert_int_equal(parse("OR TEXT x SEEN", &s, &error), IMAP_SEARCH_OK);
	imap_search_resolve(&s, NMSGS, 40, NULL);
	msgs[0].body_calls = 0;
	assert_true(imap_search_match(&s, &ops, &msgs[0]));
	assert_int_equal(msgs[0].body_calls, 0);
	imap_search_free(&s);

	assert_int_equal(parse("SEEN UID 1:*", &s, &error), IMAP_SEARCH_OK);
	assert_int_equal(imap_search_cost(&s), IMAP_SEARCH_COST_INDEX);
	/* not resolved: nothing matches */
	assert_false(imap_search_match(&s, &ops, &msgs[0]));
	imap_search_free(&s);
}

static void test_resolve_again(void **state)
{
	struct imap_search s;
	const char *error;

	(void)state;
	assert_int_equal(parse("*", &s, &error), IMAP_SEARCH_OK);
	imap_search_resolve(&s, 2, 11, NULL);
	assert_true(imap_search_match(&s, &ops, &msgs[1]));
	assert_false(imap_search_match(&s, &ops, &msgs[3]));
	/* the mailbox grew: '*' follows */
	imap_search_resolve(&s, 4, 40, NULL);
	assert_false(imap_search_match(&s, &ops, &msgs[1]));
	assert_true(imap_search_match(&s, &ops, &msgs[3]));
	imap_search_free(&s);
}

static void test_return_charset(void **state)
{
	struct imap_search s;
	const char *error;

	(void)state;
	/* RFC 4731's example */
	assert_int_equal(parse("RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 "
			       "NOT FROM \"Smith\"",
			       &s, &error),
			 IMAP_SEARCH_OK);
	assert_true(s.esearch);
	assert_int_equal(s.ret, IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_COUNT);
	imap_search_free(&s);
	assert_int_equal(parse("RETURN () ALL", &s, &error), IMAP_SEARCH_OK);
	assert_int_equal(s.ret, IMAP_SEARCH_RET_ALL);
	imap_search_free(&s);
	assert_int_equal(parse("RETURN (SAVE) CHARSET utf-8 $", &s, &error),
			 IMAP_SEARCH_OK);
	assert_int_equal(s.ret, IMAP_SEARCH_RET_SAVE);
	assert_true(s.uses_saved);
	imap_search_free(&s);
	assert_int_equal(parse("CHARSET US-ASCII TEXT x", &s, &error),
			 IMAP_SEARCH_OK);
	assert_false(s.esearch);
	imap_search_free(&s);

	assert_int_equal(parse("CHARSET ISO-8859-1 TEXT x", &s, &error),
			 IMAP_SEARCH_BADCHARSET);
	assert_int_equal(parse("CHARSET \"KOI8-R\" TEXT x", &s, &error),
			 IMAP_SEARCH_BADCHARSET);
	assert_int_equal(parse("RETURN (FOO) ALL", &s, &error),
			 IMAP_SEARCH_BAD);
	assert_int_equal(parse("RETURN MIN ALL", &s, &error), IMAP_SEARCH_BAD);
	assert_int_equal(parse("RETURN (MIN)", &s, &error), IMAP_SEARCH_BAD);
	assert_int_equal(parse("RETURN", &s, &error), IMAP_SEARCH_BAD);
	assert_int_equal(parse("CHARSET", &s, &error), IMAP_SEARCH_BAD);
	assert_int_equal(parse("CHARSET UTF-8", &s, &error), IMAP_SEARCH_BAD);
	/* CHARSET comes after RETURN, never before */
	assert_int_equal(parse("CHARSET UTF-8 RETURN (MIN) ALL", &s, &error),
			 IMAP_SEARCH_BAD);
}

static void test_bad(void **state)
{
	static const char *bad[] = {
	    "",
	    "FOO",
	    "NOT",
	    "OR SEEN",
	    "FROM",
	    "HEADER Subject",
	    "HEADER \"\" x",
	    "HEADER \"A:B\" x",
	    "BEFORE 31-Feb-1994",
	    "BEFORE 1994-02-01",
	    "SINCE (1-Feb-1994)",
	    "LARGER x",
	    "LARGER -1",
	    "LARGER 9223372036854775808",
	    "SMALLER",
	    "UID",
	    "UID x",
	    "UID 0",
	    "1:0",
	    "1,,2",
	    "$,1",
	    "KEYWORD \\Seen",
	    "KEYWORD \"quoted\"",
	    "KEYWORD",
	    "()",
	    "(SEEN) ()",
	    "\"SEEN\"",
	    "MODSEQ",
	    "MODSEQ \"/flags/x\" bogus 5",
	    "SUBJECT (x)",
	    /* sets parsed before the error are freed (ASan builds) */
	    "1:5 UID 7 FOO",
	    "(2 (UID 3) NOT 4 OR 5 6 7:*) BOGUS",
	};
	struct imap_search s;
	const char *error;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &s, &error) != IMAP_SEARCH_BAD) {
			print_error("accepted \"%s\"\n", bad[i]);
			fail();
		}
	}
}

static void test_bounds(void **state)
{
	size_t cap = 8 * (IMAP_MAX_SEARCH_KEYS + 8);
	char *p = malloc(cap);
	struct imap_search s;
	const char *error;
	size_t n = 0;

	(void)state;
	assert_non_null(p);
	/* IMAP_MAX_SEARCH_KEYS keys: the program itself is one */
	for (size_t i = 0; i + 1 < IMAP_MAX_SEARCH_KEYS; i++)
		n += (size_t)snprintf(p + n, cap - n, "%sSEEN", i ? " " : "");
	assert_int_equal(parse(p, &s, &error), IMAP_SEARCH_OK);
	assert_int_equal(s.key_count, IMAP_MAX_SEARCH_KEYS);
	imap_search_free(&s);
	snprintf(p + n, cap - n, " SEEN");
	assert_int_equal(parse(p, &s, &error), IMAP_SEARCH_BAD);
	assert_string_equal(error, "Too many search keys");

	/* NOT chains: depth, not the list depth, is what limits them */
	n = 0;
	for (size_t i = 0; i < IMAP_MAX_SEARCH_DEPTH; i++)
		n += (size_t)snprintf(p + n, cap - n, "NOT ");
	snprintf(p + n, cap - n, "SEEN");
	assert_int_equal(parse(p, &s, &error), IMAP_SEARCH_OK);
	imap_search_free(&s);
	snprintf(p + n, cap - n, "NOT SEEN");
	assert_int_equal(parse(p, &s, &error), IMAP_SEARCH_BAD);
	assert_string_equal(error, "Search keys nested too deeply");

	/* OR chains as clients build them */
	n = 0;
	for (size_t i = 0; i < 100; i++)
		n += (size_t)snprintf(p + n, cap - n, "OR FROM a%zu ", i);
	snprintf(p + n, cap - n, "FROM smith");
	assert_string_equal(run(p, NULL), "2 3");
	free(p);
}

static void test_esearch(void **state)
{
	static const uint32_t results[] = {2, 3, 4, 10, 12, 13};
	struct buf *b = buf_new(200);

	(void)state;
	assert_int_equal(imap_search_write_esearch("A282", false,
						   IMAP_SEARCH_RET_MIN |
						       IMAP_SEARCH_RET_COUNT,
						   results, 6, b),
			 0);
	assert_string_equal(buf_data(b),
			    "* ESEARCH (TAG \"A282\") MIN 2 COUNT 6");
	buf_clear(b);
	assert_int_equal(imap_search_write_esearch("t", true,
						   IMAP_SEARCH_RET_MIN |
						       IMAP_SEARCH_RET_MAX |
						       IMAP_SEARCH_RET_ALL,
						   results, 6, b),
			 0);
	assert_string_equal(buf_data(b),
			    "* ESEARCH (TAG \"t\") UID MIN 2 MAX 13 ALL "
			    "2:4,10,12:13");
	buf_clear(b);
	/* nothing matched: only COUNT is shown */
	assert_int_equal(imap_search_write_esearch("t", false,
						   IMAP_SEARCH_RET_MIN |
						       IMAP_SEARCH_RET_ALL |
						       IMAP_SEARCH_RET_COUNT,
						   results, 0, b),
			 0);
	assert_string_equal(buf_data(b), "* ESEARCH (TAG \"t\") COUNT 0");
	buf_clear(b);
	/* SAVE alone: no ESEARCH response */
	assert_int_equal(imap_search_write_esearch(
			     "t", false, IMAP_SEARCH_RET_SAVE, results, 6, b),
			 0);
	assert_int_equal(buf_len(b), 0);
	buf_free(&b);
}

/* RFC 5267 UPDATE and PARTIAL, with RFC 9394's negative ranges. */
static void test_update_partial(void **state)
{
	static const struct {
		const char *text;
		int32_t lo, hi;
	} ok[] = {
	    {"RETURN (PARTIAL 1:10) ALL", 1, 10},
	    {"RETURN (PARTIAL 4:2) ALL", 2, 4},
	    {"RETURN (PARTIAL -1:-5) ALL", -1, -5},
	    {"RETURN (PARTIAL -9:-2) ALL", -2, -9},
	    {"RETURN (COUNT PARTIAL 2147483647:1) ALL", 1, 2147483647},
	};
	static const char *bad[] = {
	    "RETURN (PARTIAL) ALL",	  "RETURN (PARTIAL 1) ALL",
	    "RETURN (PARTIAL 1:*) ALL",	  "RETURN (PARTIAL *:1) ALL",
	    "RETURN (PARTIAL 0:3) ALL",	  "RETURN (PARTIAL -1:3) ALL",
	    "RETURN (PARTIAL 1:-3) ALL",  "RETURN (PARTIAL 1:2147483648) ALL",
	    "RETURN (PARTIAL (1:2)) ALL", "RETURN (PARTIAL -0:-1) ALL",
	};
	static const uint32_t results[] = {2, 3, 4, 10, 12, 13};
	struct imap_search s;
	const char *error;
	struct buf *b = buf_new(4096);

	(void)state;
	assert_int_equal(parse("RETURN (UPDATE) SEEN", &s, &error),
			 IMAP_SEARCH_OK);
	assert_int_equal(s.ret, IMAP_SEARCH_RET_UPDATE);
	imap_search_free(&s);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(parse(ok[i].text, &s, &error), IMAP_SEARCH_OK);
		assert_true(s.ret & IMAP_SEARCH_RET_PARTIAL);
		assert_int_equal(s.partial_lo, ok[i].lo);
		assert_int_equal(s.partial_hi, ok[i].hi);
		imap_search_free(&s);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &s, &error), IMAP_SEARCH_BAD);

	s.partial_lo = 2;
	s.partial_hi = 4;
	assert_int_equal(imap_search_write_partial(&s, results, 6, b), 0);
	assert_string_equal(buf_data(b), " PARTIAL (2:4 3:4,10)");
	buf_clear(b);
	s.partial_lo = -1;
	s.partial_hi = -2;
	assert_int_equal(imap_search_write_partial(&s, results, 6, b), 0);
	assert_string_equal(buf_data(b), " PARTIAL (-1:-2 12:13)");
	buf_clear(b);
	s.partial_lo = -6;
	s.partial_hi = -100;
	assert_int_equal(imap_search_write_partial(&s, results, 6, b), 0);
	assert_string_equal(buf_data(b), " PARTIAL (-6:-100 2)");
	buf_clear(b);
	s.partial_lo = 7;
	s.partial_hi = 9;
	assert_int_equal(imap_search_write_partial(&s, results, 6, b), 0);
	assert_string_equal(buf_data(b), " PARTIAL (7:9 NIL)");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_flag_keys),
	    cmocka_unit_test(test_other_keys),
	    cmocka_unit_test(test_sets),
	    cmocka_unit_test(test_boolean),
	    cmocka_unit_test(test_cheap_first),
	    cmocka_unit_test(test_resolve_again),
	    cmocka_unit_test(test_return_charset),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_esearch),
	    cmocka_unit_test(test_update_partial),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
