/* Unit tests for FETCH attributes and STORE/APPEND flags (RFC 9051 6.4.5,
 * 6.4.6; RFC 3516; RFC 7162). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/imap_fetch_parse.h"

/* Parses "t FETCH 1 <atts>" and the FETCH arguments after the set. */
static int fetch(const char *atts, struct imap_fetch *f, const char **error)
{
	char wire[1024];
	struct imap_command cmd;
	int r;

	snprintf(wire, sizeof(wire), "t FETCH 1 %s", atts);
	assert_int_equal(imap_parse_command(wire, strlen(wire), &cmd, error),
			 0);
	*error = NULL;
	r = imap_fetch_parse(cmd.args + 1, cmd.arg_count - 1, f, error);
	imap_command_free(&cmd);
	if (r < 0) {
		assert_non_null(*error);
		assert_null(f->arena);
		assert_int_equal(f->count, 0);
	}
	return r;
}

static void test_macros(void **state)
{
	struct imap_fetch f;
	const char *error;

	(void)state;
	assert_int_equal(fetch("ALL", &f, &error), 0);
	assert_int_equal(f.count, 4);
	assert_int_equal(f.atts[3].item, IMAP_FETCH_ENVELOPE);
	assert_string_equal(f.atts[2].label, "RFC822.SIZE");
	assert_true(f.needs_message);
	assert_false(f.sets_seen);
	imap_fetch_free(&f);
	assert_int_equal(fetch("fast", &f, &error), 0);
	assert_int_equal(f.count, 3);
	assert_false(f.needs_message);
	imap_fetch_free(&f);
	assert_int_equal(fetch("FULL", &f, &error), 0);
	assert_int_equal(f.count, 5);
	assert_int_equal(f.atts[4].item, IMAP_FETCH_BODY);
	assert_string_equal(f.atts[4].label, "BODY");
	imap_fetch_free(&f);
	/* macros stand alone */
	assert_int_equal(fetch("(ALL)", &f, &error), -1);
	assert_int_equal(fetch("(FLAGS FAST)", &f, &error), -1);
}

static void test_simple(void **state)
{
	struct imap_fetch f;
	const char *error;

	(void)state;
	assert_int_equal(fetch("(flags INTERNALDATE RFC822.SIZE UID "
			       "BODYSTRUCTURE RFC822.HEADER)",
			       &f, &error),
			 0);
	assert_int_equal(f.count, 6);
	assert_int_equal(f.atts[0].item, IMAP_FETCH_FLAGS);
	assert_string_equal(f.atts[0].label, "FLAGS");
	assert_int_equal(f.atts[5].item, IMAP_FETCH_RFC822_HEADER);
	assert_int_equal(f.atts[5].section.kind, MIME_SECTION_HEADER);
	assert_false(f.sets_seen);
	imap_fetch_free(&f);

	assert_int_equal(fetch("RFC822", &f, &error), 0);
	assert_true(f.sets_seen);
	assert_int_equal(f.atts[0].section.kind, MIME_SECTION_ALL);
	assert_int_equal(f.atts[0].section.depth, 0);
	imap_fetch_free(&f);
	assert_int_equal(fetch("RFC822.TEXT", &f, &error), 0);
	assert_true(f.sets_seen);
	assert_int_equal(f.atts[0].section.kind, MIME_SECTION_TEXT);
	imap_fetch_free(&f);

	assert_int_equal(fetch("UID", &f, &error), 0);
	imap_fetch_ensure_uid(&f);
	assert_int_equal(f.count, 1);
	imap_fetch_free(&f);
	assert_int_equal(fetch("FLAGS", &f, &error), 0);
	imap_fetch_ensure_uid(&f);
	assert_int_equal(f.count, 2);
	assert_int_equal(f.atts[1].item, IMAP_FETCH_UID);
	imap_fetch_free(&f);

	assert_int_equal(fetch("FLAGGED", &f, &error), -1);
	assert_int_equal(fetch("()", &f, &error), -1);
	assert_int_equal(fetch("(FLAGS (UID))", &f, &error), -1);
	assert_int_equal(fetch("\"FLAGS\"", &f, &error), -1);
	assert_int_equal(fetch("BODYSTRUCTURE<0.1>", &f, &error), -1);
}

static void test_sections(void **state)
{
	struct imap_fetch f;
	const char *error;
	const struct mime_section *s;

	(void)state;
	/* RFC 9051 6.4.5's example */
	assert_int_equal(
	    fetch("(FLAGS BODY[HEADER.FIELDS (DATE FROM)])", &f, &error), 0);
	s = &f.atts[1].section;
	assert_int_equal(f.atts[1].item, IMAP_FETCH_BODY_SECTION);
	assert_int_equal(s->kind, MIME_SECTION_HEADER_FIELDS);
	assert_int_equal(s->field_count, 2);
	assert_string_equal(s->fields[0], "DATE");
	assert_string_equal(s->fields[1], "FROM");
	assert_string_equal(f.atts[1].label, "BODY[HEADER.FIELDS (DATE FROM)]");
	assert_true(f.sets_seen);
	imap_fetch_free(&f);

	assert_int_equal(fetch("body.peek[1.2.3.MIME]<0.2048>", &f, &error), 0);
	s = &f.atts[0].section;
	assert_true(f.atts[0].peek);
	assert_false(f.sets_seen);
	assert_int_equal(s->depth, 3);
	assert_int_equal(s->part[0], 1);
	assert_int_equal(s->part[2], 3);
	assert_int_equal(s->kind, MIME_SECTION_MIME);
	assert_true(f.atts[0].partial);
	assert_int_equal(f.atts[0].offset, 0);
	assert_int_equal(f.atts[0].count, 2048);
	assert_string_equal(f.atts[0].label, "BODY[1.2.3.MIME]<0>");
	imap_fetch_free(&f);

	assert_int_equal(fetch("BODY[]<100.5>", &f, &error), 0);
	assert_int_equal(f.atts[0].section.kind, MIME_SECTION_ALL);
	assert_string_equal(f.atts[0].label, "BODY[]<100>");
	imap_fetch_free(&f);

	assert_int_equal(
	    fetch("BODY.PEEK[2.HEADER.FIELDS.NOT (\"X-A\" x-b)]", &f, &error),
	    0);
	s = &f.atts[0].section;
	assert_int_equal(s->kind, MIME_SECTION_HEADER_FIELDS_NOT);
	assert_int_equal(s->depth, 1);
	assert_string_equal(s->fields[0], "X-A");
	assert_string_equal(s->fields[1], "x-b");
	imap_fetch_free(&f);

	assert_int_equal(
	    fetch("(BODY[TEXT] BODY[1] BODY[4.HEADER])", &f, &error), 0);
	assert_int_equal(f.atts[0].section.kind, MIME_SECTION_TEXT);
	assert_int_equal(f.atts[1].section.kind, MIME_SECTION_ALL);
	assert_int_equal(f.atts[1].section.depth, 1);
	assert_int_equal(f.atts[2].section.kind, MIME_SECTION_HEADER);
	imap_fetch_free(&f);

	static const char *bad[] = {
	    "BODY[MIME]",	   /* MIME needs a part */
	    "BODY[0]",		   /* nz-number */
	    "BODY[01]",		   /* no leading zero */
	    "BODY[1.]",		   /* trailing dot */
	    "BODY[.1]",		   /* leading dot */
	    "BODY[1..2]",	   /* empty part */
	    "BODY[1TEXT]",	   /* no dot */
	    "BODY[HEADERS]",	   /* unknown */
	    "BODY[HEADER.FIELDS]", /* no list */
	    "BODY[HEADER.FIELDS ()]",
	    "BODY[HEADER.FIELDS (A:B)]",
	    "BODY[HEADER.FIELDS (A  B)]",
	    "BODY[HEADER.FIELDS (A B )]",
	    "BODY[HEADER.FIELDS (\"A)]",
	    "BODY[HEADER.FIELDS (\"\")]",
	    "BODY[HEADER.FIELDS(A)]",
	    "BODY[4294967296]",
	    "BODY[]<0>",   /* count required */
	    "BODY[]<0.0>", /* nz count */
	    "BODY[]<1.2>x",
	    "BODY[]<9223372036854775808.1>",
	    "BODY[]<-1.5>",
	    "BODY[1]]",
	    "BODY[[1]]",
	    "BODYX[1]",
	    "BODY.PEEK.X[]",
	    "BINARY[HEADER]", /* section-binary: parts only */
	    "BINARY[1.TEXT]",
	    "BINARY.SIZE[1]<0.5>", /* no partial for the size */
	    "RFC822[]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (fetch(bad[i], &f, &error) == 0) {
			print_error("accepted %s\n", bad[i]);
			fail();
		}
	}
	/* 32 part numbers fit struct mime_section, 33 do not */
	assert_int_equal(fetch("BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16."
			       "17.18.19.20.21.22.23.24.25.26.27.28.29.30.31."
			       "32]",
			       &f, &error),
			 0);
	assert_int_equal(f.atts[0].section.depth, 32);
	imap_fetch_free(&f);
	assert_int_equal(fetch("BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16."
			       "17.18.19.20.21.22.23.24.25.26.27.28.29.30.31."
			       "32.33]",
			       &f, &error),
			 -1);
}

static void test_binary(void **state)
{
	struct imap_fetch f;
	const char *error;

	(void)state;
	assert_int_equal(fetch("(BINARY[1.2] BINARY.PEEK[3]<10.20> "
			       "BINARY.SIZE[1] BINARY[])",
			       &f, &error),
			 0);
	assert_int_equal(f.count, 4);
	assert_int_equal(f.atts[0].item, IMAP_FETCH_BINARY);
	assert_int_equal(f.atts[0].section.depth, 2);
	assert_string_equal(f.atts[0].label, "BINARY[1.2]");
	assert_true(f.atts[1].peek);
	assert_string_equal(f.atts[1].label, "BINARY[3]<10>");
	assert_int_equal(f.atts[2].item, IMAP_FETCH_BINARY_SIZE);
	assert_string_equal(f.atts[2].label, "BINARY.SIZE[1]");
	assert_int_equal(f.atts[3].section.depth, 0);
	assert_true(f.sets_seen);
	imap_fetch_free(&f);
}

static void test_modseq(void **state)
{
	struct imap_fetch f;
	const char *error;

	(void)state;
	assert_int_equal(fetch("(FLAGS) (CHANGEDSINCE 12345)", &f, &error), 0);
	assert_true(f.changedsince_set);
	assert_int_equal(f.changedsince, 12345);
	assert_int_equal(f.count, 2);
	assert_int_equal(f.atts[1].item, IMAP_FETCH_MODSEQ);
	imap_fetch_free(&f);
	assert_int_equal(fetch("(FLAGS MODSEQ) (changedsince 1)", &f, &error),
			 0);
	assert_int_equal(f.count, 2);
	imap_fetch_free(&f);
	assert_int_equal(fetch("FLAGS (CHANGEDSINCE 0)", &f, &error), -1);
	assert_int_equal(fetch("FLAGS (CHANGEDSINCE)", &f, &error), -1);
	assert_int_equal(fetch("FLAGS (VANISHED)", &f, &error), -1);
	assert_int_equal(fetch("FLAGS (CHANGEDSINCE 1) X", &f, &error), -1);
}

/* Parses "t STORE 1 <rest>". */
static int store(const char *rest, struct imap_store *s, const char **error)
{
	char wire[1024];
	struct imap_command cmd;
	int r;

	snprintf(wire, sizeof(wire), "t STORE 1 %s", rest);
	assert_int_equal(imap_parse_command(wire, strlen(wire), &cmd, error),
			 0);
	*error = NULL;
	r = imap_store_parse(cmd.args + 1, cmd.arg_count - 1, s, error);
	/* the result outlives the command */
	imap_command_free(&cmd);
	if (r < 0) {
		assert_non_null(*error);
		assert_null(s->arena);
	}
	return r;
}

static void test_store(void **state)
{
	struct imap_store s;
	const char *error;

	(void)state;
	/* RFC 9051 6.4.6's example */
	assert_int_equal(store("+FLAGS (\\Deleted)", &s, &error), 0);
	assert_int_equal(s.mode, MAIL_STORE_ADD);
	assert_false(s.silent);
	assert_int_equal(s.flags.system, MAIL_DELETED);
	assert_int_equal(s.flags.keyword_count, 0);
	imap_store_free(&s);

	assert_int_equal(
	    store("-flags.silent \\seen $Junk \\DRAFT $junk Work", &s, &error),
	    0);
	assert_int_equal(s.mode, MAIL_STORE_REMOVE);
	assert_true(s.silent);
	assert_int_equal(s.flags.system, MAIL_SEEN | MAIL_DRAFT);
	assert_int_equal(s.flags.keyword_count, 2);
	assert_string_equal(s.flags.keywords[0], "$Junk");
	assert_string_equal(s.flags.keywords[1], "Work");
	imap_store_free(&s);

	assert_int_equal(store("FLAGS ()", &s, &error), 0);
	assert_int_equal(s.mode, MAIL_STORE_SET);
	assert_int_equal(s.flags.system, 0);
	imap_store_free(&s);

	assert_int_equal(
	    store("(UNCHANGEDSINCE 0) FLAGS.SILENT (\\Answered \\Flagged)", &s,
		  &error),
	    0);
	assert_true(s.unchangedsince_set);
	assert_int_equal(s.unchangedsince, 0);
	assert_int_equal(s.flags.system, MAIL_ANSWERED | MAIL_FLAGGED);
	imap_store_free(&s);

	static const char *bad[] = {
	    "+FLAGS (\\Recent)",
	    "+FLAGS (\\*)",
	    "+FLAGS (\\Unknown)",
	    "+FLAGS",
	    "FLAGS (\"quoted\")",
	    "FLAGS (a%b)",
	    "FLAGS (a]b)",
	    "FLAGS ((\\Seen))",
	    "*FLAGS (\\Seen)",
	    "+FLAGS.LOUD (\\Seen)",
	    "FLAGSX (\\Seen)",
	    "+FLAGS.SILENTX (\\Seen)",
	    "(UNCHANGEDSINCE) FLAGS ()",
	    "(FOO 1) FLAGS ()",
	    "+flags ({1}\r\nA)",
	    "+FLAGS (\\Seen) (\\Draft)",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (store(bad[i], &s, &error) == 0) {
			print_error("accepted %s\n", bad[i]);
			fail();
		}
	}
}

static void test_flags_keyword_len(void **state)
{
	char kw[MAIL_MAX_KEYWORD_LEN + 2];
	struct imap_arg arg = {0};
	struct imap_arena *arena = imap_arena_new();
	struct imap_flags flags;
	const char *error;

	(void)state;
	memset(kw, 'k', sizeof(kw));
	kw[MAIL_MAX_KEYWORD_LEN] = '\0';
	arg.type = IMAP_ARG_ATOM;
	arg.str = kw;
	arg.len = MAIL_MAX_KEYWORD_LEN;
	assert_int_equal(imap_flags_parse(&arg, 1, arena, &flags, &error), 0);
	assert_int_equal(flags.keyword_count, 1);
	kw[MAIL_MAX_KEYWORD_LEN] = 'k';
	kw[MAIL_MAX_KEYWORD_LEN + 1] = '\0';
	arg.len++;
	assert_int_equal(imap_flags_parse(&arg, 1, arena, &flags, &error), -1);
	assert_int_equal(flags.keyword_count, 0);
	imap_arena_free(&arena);
}

/* A folder holds at most MAIL_MAX_KEYWORDS keywords: more in one STORE
 * are refused before the index sees them. */
static void test_flags_keyword_count(void **state)
{
	struct imap_arg args[MAIL_MAX_KEYWORDS + 2];
	char names[MAIL_MAX_KEYWORDS + 2][8];
	struct imap_arena *arena = imap_arena_new();
	struct imap_flags flags;
	const char *error;

	(void)state;
	for (size_t i = 0; i < MAIL_MAX_KEYWORDS + 2; i++) {
		snprintf(names[i], sizeof(names[i]), "k%zu", i);
		memset(&args[i], 0, sizeof(args[i]));
		args[i].type = IMAP_ARG_ATOM;
		args[i].str = names[i];
		args[i].len = strlen(names[i]);
	}
	/* duplicates do not count */
	args[MAIL_MAX_KEYWORDS] = args[0];
	assert_int_equal(imap_flags_parse(args, MAIL_MAX_KEYWORDS + 1, arena,
					  &flags, &error),
			 0);
	assert_int_equal(flags.keyword_count, MAIL_MAX_KEYWORDS);
	assert_int_equal(imap_flags_parse(args, MAIL_MAX_KEYWORDS + 2, arena,
					  &flags, &error),
			 -1);
	assert_string_equal(error, "Too many keywords");
	imap_arena_free(&arena);
}

/* A long attribute list (as many as a command may hold) keeps every
 * attribute in order. */
static void test_many_atts(void **state)
{
	size_t n = IMAP_MAX_ARGS - 8;
	struct imap_arg *list = calloc(n, sizeof(*list));
	struct imap_arg arg = {0};
	struct imap_fetch f;
	const char *error;

	(void)state;
	assert_non_null(list);
	for (size_t i = 0; i < n; i++) {
		list[i].type = IMAP_ARG_ATOM;
		list[i].str = i % 2 ? "UID" : "BODY.PEEK[1.TEXT]<0.10>";
		list[i].len = strlen(list[i].str);
	}
	arg.type = IMAP_ARG_LIST;
	arg.list = list;
	arg.list_count = n;
	assert_int_equal(imap_fetch_parse(&arg, 1, &f, &error), 0);
	assert_int_equal(f.count, n);
	assert_true(f.cap >= n);
	assert_int_equal(f.atts[n - 1].item, IMAP_FETCH_UID);
	assert_string_equal(f.atts[n - 2].label, "BODY[1.TEXT]<0>");
	imap_fetch_free(&f);
	free(list);
}

static void test_flags_write(void **state)
{
	static const char *const kw[] = {"$Junk", "Work"};
	struct buf *b = buf_new(100);

	(void)state;
	assert_int_equal(imap_flags_write(0, NULL, 0, b), 0);
	assert_string_equal(buf_data(b), "()");
	buf_clear(b);
	assert_int_equal(
	    imap_flags_write(MAIL_SEEN | MAIL_RECENT | MAIL_DELETED, kw, 2, b),
	    0);
	assert_string_equal(buf_data(b),
			    "(\\Seen \\Deleted \\Recent $Junk Work)");
	buf_free(&b);
	b = buf_new(8);
	assert_int_equal(imap_flags_write(MAIL_SEEN | MAIL_DELETED, kw, 2, b),
			 -1);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_macros),
	    cmocka_unit_test(test_simple),
	    cmocka_unit_test(test_sections),
	    cmocka_unit_test(test_binary),
	    cmocka_unit_test(test_modseq),
	    cmocka_unit_test(test_store),
	    cmocka_unit_test(test_flags_keyword_len),
	    cmocka_unit_test(test_flags_keyword_count),
	    cmocka_unit_test(test_many_atts),
	    cmocka_unit_test(test_flags_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
