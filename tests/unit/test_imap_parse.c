/* Unit tests for the IMAP command tokenizer (RFC 9051 section 9). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/imap_parse.h"

/* Parses a wire command given as a C string (no NUL inside). */
static int parse_str(const char *wire, struct imap_command *cmd,
		     const char **error)
{
	*error = NULL;
	return imap_parse_command(wire, strlen(wire), cmd, error);
}

static void expect_bad(const char *wire, const char *want_tag)
{
	struct imap_command cmd;
	const char *error;

	if (parse_str(wire, &cmd, &error) == 0) {
		print_error("accepted: %s\n", wire);
		fail();
	}
	assert_non_null(error);
	assert_string_equal(cmd.tag, want_tag);
	assert_null(cmd.arena);
	imap_command_free(&cmd);
}

static void test_rfc_examples(void **state)
{
	struct imap_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(parse_str("a001 login mrc secret", &cmd, &error), 0);
	assert_string_equal(cmd.tag, "a001");
	assert_string_equal(cmd.name, "LOGIN");
	assert_int_equal(cmd.arg_count, 2);
	assert_true(imap_arg_is_atom(&cmd.args[0], "MRC"));
	assert_string_equal(imap_arg_astring(&cmd.args[1]), "secret");
	imap_command_free(&cmd);

	assert_int_equal(
	    parse_str("A002 CREATE \"owatagusiam/\"", &cmd, &error), 0);
	assert_int_equal(cmd.args[0].type, IMAP_ARG_QUOTED);
	assert_string_equal(cmd.args[0].str, "owatagusiam/");
	imap_command_free(&cmd);

	assert_int_equal(parse_str("A202 LIST \"~/Mail/\" %", &cmd, &error), 0);
	assert_string_equal(cmd.args[0].str, "~/Mail/");
	assert_string_equal(cmd.args[1].str, "%");
	imap_command_free(&cmd);

	assert_int_equal(
	    parse_str("A003 STORE 2:4 +FLAGS (\\Deleted)", &cmd, &error), 0);
	assert_int_equal(cmd.arg_count, 3);
	assert_string_equal(cmd.args[0].str, "2:4");
	assert_int_equal(cmd.args[2].type, IMAP_ARG_LIST);
	assert_int_equal(cmd.args[2].list_count, 1);
	assert_string_equal(cmd.args[2].list[0].str, "\\Deleted");
	imap_command_free(&cmd);

	assert_int_equal(
	    parse_str("A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man", &cmd,
		      &error),
	    0);
	assert_int_equal(cmd.arg_count, 2);
	assert_int_equal(cmd.args[0].type, IMAP_ARG_LITERAL);
	assert_string_equal(cmd.args[0].str, "FRED FOOBAR");
	assert_int_equal(cmd.args[1].len, 7);
	assert_string_equal(imap_arg_astring(&cmd.args[1]), "fat man");
	imap_command_free(&cmd);

	assert_int_equal(parse_str("A282 SEARCH RETURN (MIN COUNT) FLAGGED "
				   "SINCE 1-Feb-1994 NOT FROM \"Smith\"",
				   &cmd, &error),
			 0);
	assert_string_equal(cmd.name, "SEARCH");
	assert_int_equal(cmd.arg_count, 8);
	assert_int_equal(cmd.args[1].list_count, 2);
	imap_command_free(&cmd);

	assert_int_equal(parse_str("a1 uid fetch 1:* (UID)", &cmd, &error), 0);
	assert_string_equal(cmd.name, "UID");
	assert_true(imap_arg_is_atom(&cmd.args[0], "FETCH"));
	imap_command_free(&cmd);
}

static void test_fetch_brackets(void **state)
{
	struct imap_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(
	    parse_str("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])",
		      &cmd, &error),
	    0);
	assert_int_equal(cmd.arg_count, 2);
	assert_int_equal(cmd.args[1].list_count, 2);
	assert_string_equal(cmd.args[1].list[1].str,
			    "BODY[HEADER.FIELDS (DATE FROM)]");
	imap_command_free(&cmd);

	assert_int_equal(
	    parse_str("a FETCH 1 BODY.PEEK[1.2.MIME]<0.100> UID", &cmd, &error),
	    0);
	assert_int_equal(cmd.arg_count, 3);
	assert_string_equal(cmd.args[1].str, "BODY.PEEK[1.2.MIME]<0.100>");
	imap_command_free(&cmd);

	/* after an unmatched '[' no later one is matched in that atom */
	assert_int_equal(parse_str("a X a[[b c]", &cmd, &error), 0);
	assert_int_equal(cmd.arg_count, 2);
	assert_string_equal(cmd.args[0].str, "a[[b");
	imap_command_free(&cmd);

	/* no matching ']': an ordinary atom up to the space */
	assert_int_equal(parse_str("a SELECT a[b c", &cmd, &error), 0);
	assert_int_equal(cmd.arg_count, 2);
	assert_string_equal(cmd.args[0].str, "a[b");
	imap_command_free(&cmd);
}

static void test_nil_and_lists(void **state)
{
	struct imap_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(parse_str("t ID nil", &cmd, &error), 0);
	assert_int_equal(cmd.args[0].type, IMAP_ARG_NIL);
	assert_null(imap_arg_astring(&cmd.args[0]));
	assert_true(imap_arg_is_atom(&cmd.args[0], "NIL"));
	imap_command_free(&cmd);

	assert_int_equal(parse_str("t ID (\"a\" () ((x)) NIL)", &cmd, &error),
			 0);
	assert_int_equal(cmd.args[0].list_count, 4);
	assert_int_equal(cmd.args[0].list[1].type, IMAP_ARG_LIST);
	assert_int_equal(cmd.args[0].list[1].list_count, 0);
	assert_string_equal(cmd.args[0].list[2].list[0].list[0].str, "x");
	assert_null(imap_arg_astring(&cmd.args[0]));
	imap_command_free(&cmd);

	/* RFC 9051 allows UTF-8 in quoted strings */
	assert_int_equal(
	    parse_str("t SELECT \"Entw\xc3\xbcrfe\"", &cmd, &error), 0);
	imap_command_free(&cmd);
}

static void test_literals(void **state)
{
	static const char lit8[] = "t APPEND x ~{3}\r\na\0b";
	static const char lit_nul[] = "t APPEND x {3}\r\na\0b";
	struct imap_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(
	    imap_parse_command(lit8, sizeof(lit8) - 1, &cmd, &error), 0);
	assert_int_equal(cmd.args[1].type, IMAP_ARG_LITERAL);
	assert_true(cmd.args[1].literal8);
	assert_int_equal(cmd.args[1].len, 3);
	assert_memory_equal(cmd.args[1].str, "a\0b", 3);
	/* a string with NUL inside is no astring */
	assert_null(imap_arg_astring(&cmd.args[1]));
	imap_command_free(&cmd);

	assert_int_equal(
	    imap_parse_command(lit_nul, sizeof(lit_nul) - 1, &cmd, &error), -1);
	assert_string_equal(cmd.tag, "t");

	assert_int_equal(
	    parse_str("t LOGIN {0}\r\n {2+}\r\n\r\n", &cmd, &error), 0);
	assert_int_equal(cmd.args[0].len, 0);
	assert_string_equal(cmd.args[1].str, "\r\n");
	imap_command_free(&cmd);

	assert_int_equal(parse_str("t X ({1}\r\n)) ", &cmd, &error), 0);
	assert_string_equal(cmd.args[0].list[0].str, ")");
	imap_command_free(&cmd);
}

static void test_hostile(void **state)
{
	static const char nul_quoted[] = "t LOGIN \"a\0b\" c";
	struct imap_command cmd;
	const char *error;

	(void)state;
	expect_bad("", "*");
	expect_bad("t", "t");
	expect_bad("t ", "t");
	expect_bad("+ NOOP", "*");
	expect_bad("a+b NOOP", "*");
	expect_bad("a*b NOOP", "*");
	expect_bad("a(b NOOP", "*");
	expect_bad("t LOGIN \"alice", "t");
	expect_bad("t LOGIN \"alice\\", "t");
	expect_bad("t LOGIN \"a\\lice\" x", "t");
	expect_bad("t LOGIN \"a\rb\" x", "t");
	expect_bad("t LOGIN \"\xc3\" x", "t");
	expect_bad("t LOGIN \"\xc0\xaf\" x", "t");
	expect_bad("t LOGIN {99999999999999999999}\r\nx", "t");
	expect_bad("t LOGIN {9223372036854775809}\r\nx", "t");
	expect_bad("t LOGIN {100}\r\nabc", "t");
	expect_bad("t LOGIN {3}abc", "t");
	expect_bad("t LOGIN {}\r\n", "t");
	expect_bad("t LOGIN {x}\r\n", "t");
	expect_bad("t FETCH 1 (FLAGS)(UID)", "t");
	expect_bad("t FETCH 1 (FLAGS", "t");
	expect_bad("t NOOP )", "t");
	expect_bad("t NOOP a\"b\"", "t");
	expect_bad("t NOOP \"a\"b", "t");
	expect_bad("t NOOP a\r\nb", "t");
	expect_bad("t NOOP a\x01", "t");
	expect_bad("t NOOP \xff", "t");
	expect_bad("t N\xc3\xa9 x", "t");
	expect_bad("t AVERYLONGCOMMANDNAMEOFTHIRTYTWOCHARS", "t");
	expect_bad("t NOOP abc{5}", "t");
	assert_int_equal(imap_parse_command(nul_quoted, sizeof(nul_quoted) - 1,
					    &cmd, &error),
			 -1);
	assert_non_null(error);
}

static void test_tags(void **state)
{
	char wire[IMAP_MAX_TAG + 16];
	struct imap_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(parse_str("a]b.-_#! NOOP", &cmd, &error), 0);
	assert_string_equal(cmd.tag, "a]b.-_#!");
	imap_command_free(&cmd);

	memset(wire, 'x', IMAP_MAX_TAG);
	memcpy(wire + IMAP_MAX_TAG, " NOOP", 6);
	assert_int_equal(parse_str(wire, &cmd, &error), 0);
	assert_int_equal(strlen(cmd.tag), IMAP_MAX_TAG);
	imap_command_free(&cmd);
	memset(wire, 'x', IMAP_MAX_TAG + 1);
	memcpy(wire + IMAP_MAX_TAG + 1, " NOOP", 6);
	expect_bad(wire, "*");
}

/* "t X " then n '(' (and n ')' when close). */
static char *nested(size_t n, bool close)
{
	char *s = malloc(2 * n + 8);

	assert_non_null(s);
	memcpy(s, "t X ", 4);
	memset(s + 4, '(', n);
	memset(s + 4 + n, ')', close ? n : 0);
	s[4 + n + (close ? n : 0)] = '\0';
	return s;
}

static void test_bounds(void **state)
{
	struct imap_command cmd;
	const char *error;
	char *s;
	size_t n;

	(void)state;
	s = nested(IMAP_MAX_LIST_DEPTH, true);
	assert_int_equal(parse_str(s, &cmd, &error), 0);
	imap_command_free(&cmd);
	free(s);
	s = nested(IMAP_MAX_LIST_DEPTH + 1, true);
	expect_bad(s, "t");
	free(s);
	s = nested(10000, true);
	expect_bad(s, "t");
	free(s);
	s = nested(10000, false);
	expect_bad(s, "t");
	free(s);

	/* IMAP_MAX_ARGS arguments, then one more */
	s = malloc(4 + 2 * (IMAP_MAX_ARGS + 1) + 2);
	assert_non_null(s);
	memcpy(s, "t X", 3);
	n = 3;
	for (size_t i = 0; i < IMAP_MAX_ARGS; i++) {
		s[n++] = ' ';
		s[n++] = 'a';
	}
	s[n] = '\0';
	assert_int_equal(parse_str(s, &cmd, &error), 0);
	assert_int_equal(cmd.arg_count, IMAP_MAX_ARGS);
	imap_command_free(&cmd);
	s[n++] = ' ';
	s[n++] = 'a';
	s[n] = '\0';
	expect_bad(s, "t");
	/* lists count too: "( a ... a)" with IMAP_MAX_ARGS atoms inside */
	s[4] = '(';
	s[n++] = ')';
	s[n] = '\0';
	expect_bad(s, "t");
	free(s);
}

static void test_line_literal(void **state)
{
	struct imap_literal_ann ann;

	(void)state;
#define LL(s) imap_line_literal(s, strlen(s), &ann)
	assert_int_equal(LL("a LOGIN {5}"), 1);
	assert_int_equal(ann.size, 5);
	assert_false(ann.nonsync);
	assert_false(ann.binary);
	assert_int_equal(LL("a APPEND x ~{12+}"), 1);
	assert_int_equal(ann.size, 12);
	assert_true(ann.nonsync);
	assert_true(ann.binary);
	assert_int_equal(LL("a LOGIN {9223372036854775808}"), 1);
	assert_int_equal(ann.size, UINT64_C(1) << 63);
	assert_int_equal(LL("a LOGIN {9223372036854775809}"), -1);
	assert_int_equal(LL("a LOGIN {99999999999999999999999}"), -1);
	assert_int_equal(LL("a LOGIN {}"), -1);
	assert_int_equal(LL("a LOGIN {+}"), -1);
	assert_int_equal(LL("a LOGIN {5++}"), -1);
	assert_int_equal(LL("a LOGIN {5"), 0);
	assert_int_equal(LL("a LOGIN x}"), 0);
	assert_int_equal(LL("a LOGIN {a}"), 0);
	assert_int_equal(LL("a NOOP"), 0);
	assert_int_equal(LL("}"), 0);
#undef LL
}

static void test_arena(void **state)
{
	struct imap_arena *a = imap_arena_new();
	char *big;
	char *small;

	(void)state;
	small = imap_arena_strndup(a, "abc", 3);
	big = imap_arena_alloc(a, 100000);
	memset(big, 'x', 100000);
	assert_string_equal(imap_arena_strndup(a, "d", 1), "d");
	assert_string_equal(small, "abc");
	assert_int_equal(big[99999], 'x');
	imap_arena_free(&a);
	assert_null(a);
	imap_arena_free(&a);
}

/* What imap_write_string() writes reads back as the same bytes. */
static void expect_written(const char *s, size_t len, bool utf8_ok,
			   const char *want)
{
	struct buf *b = buf_new(256);
	struct imap_command cmd;
	const char *error;
	char wire[300];
	size_t n;

	assert_int_equal(imap_write_astring(b, s, len, utf8_ok), 0);
	assert_string_equal(buf_data(b), want);
	n = (size_t)snprintf(wire, sizeof(wire), "t X ");
	memcpy(wire + n, buf_data(b), buf_len(b));
	n += buf_len(b);
	assert_int_equal(imap_parse_command(wire, n, &cmd, &error), 0);
	assert_int_equal(cmd.arg_count, 1);
	assert_int_equal(cmd.args[0].len, len);
	assert_memory_equal(cmd.args[0].str, s, len);
	imap_command_free(&cmd);
	buf_free(&b);
}

static void test_write_string(void **state)
{
	struct buf *b;

	(void)state;
	expect_written("INBOX", 5, false, "INBOX");
	expect_written("Sent Items", 10, false, "\"Sent Items\"");
	expect_written("a\"b\\c", 5, false, "\"a\\\"b\\\\c\"");
	expect_written("", 0, false, "\"\"");
	expect_written("nil", 3, false, "\"nil\"");
	expect_written("a%b", 3, false, "\"a%b\"");
	expect_written("a]b", 3, false, "a]b");
	expect_written("\xc3\xbc", 2, true, "\"\xc3\xbc\"");
	expect_written("\xc3\xbc", 2, false, "{2}\r\n\xc3\xbc");
	expect_written("\xc3", 1, true, "{1}\r\n\xc3");
	expect_written("a\r\nb", 4, true, "{4}\r\na\r\nb");
	b = buf_new(3);
	assert_int_equal(imap_write_string(b, "abcd", 4, false), -1);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc_examples),
	    cmocka_unit_test(test_fetch_brackets),
	    cmocka_unit_test(test_nil_and_lists),
	    cmocka_unit_test(test_literals),
	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_tags),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_line_literal),
	    cmocka_unit_test(test_arena),
	    cmocka_unit_test(test_write_string),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
