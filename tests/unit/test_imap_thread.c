/* Unit tests for SORT and THREAD keys and algorithms (RFC 5256, RFC 5957):
 * base subjects, header keys, ORDEREDSUBJECT and REFERENCES. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/imap_sortkeys.h"
#include "proto/imap/imap_thread.h"

static void assert_base(const char *raw, const char *want, bool want_reply)
{
	bool reply = !want_reply;
	char *got = imap_base_subject(raw, &reply);

	if (strcmp(got, want) != 0)
		fail_msg("base subject of \"%s\": \"%s\", want \"%s\"", raw,
			 got, want);
	assert_int_equal(reply, want_reply);
	free(got);
}

/* RFC 5256 section 2.1, step by step. */
static void test_base_subject_rfc5256(void **state)
{
	(void)state;
	assert_base("", "", false);
	assert_base("a", "A", false);
	assert_base("Re: foo", "FOO", true);
	assert_base("RE: Re: re:foo", "FOO", true);
	assert_base("Fwd: foo", "FOO", true);
	assert_base("fw: foo", "FOO", true);
	assert_base("Re[2]: foo", "FOO", true);
	assert_base("foo (fwd)", "FOO", true);
	assert_base("foo (FWD)  (fwd) ", "FOO", true);
	assert_base("[list] foo", "FOO", false);
	assert_base("[list] Re: foo", "FOO", true);
	assert_base("[xyz]", "[XYZ]", false);
	assert_base("[Fwd: foo]", "FOO", true);
	assert_base("Re: [FWD: c]", "C", true);
	assert_base("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "B", true);
	assert_base("re: [fwd: [fwd: re: [fwd: babylon]]]", "BABYLON", true);
	assert_base("Ad: Re: Ad: x", "AD: RE: AD: X", false);
	assert_base("b (a)", "B (A)", false);
	assert_base("  foo\t\t  bar  ", "FOO BAR", false);
}

/* RFC 2047 words are decoded before the rules apply. */
static void test_base_subject_encoded(void **state)
{
	(void)state;
	assert_base("=?iso-8859-1?q?_?=", "", false);
	assert_base("=?iso-8859-1?q?RE:_C?=", "C", true);
	assert_base("=?us-ascii?b?UmU6IGM=?=", "C", true);
	assert_base("Re: =?utf-8?q?b?=", "B", true);
	/* UTF-8 stays as it is; only ASCII letters are case mapped */
	assert_base("=?iso-8859-1?q?=E4a?=",
		    "\xc3\xa4"
		    "A",
		    false);
}

static void test_header_keys(void **state)
{
	static const char hdr[] =
	    "From: =?iso-8859-1?q?foo_aar?= <Someone@Example.org>\r\n"
	    "To: group: a@b.c, d@e.f;\r\n"
	    "Cc: plain@example.net\r\n"
	    "Subject: Re: hello\r\n"
	    "  world\r\n"
	    "Date: Fri, 22 Feb 2008 02:00:00 +0200\r\n"
	    "Message-ID: <m1@example.org>\r\n"
	    "References: <r1@x> <r2 @x>\r\n"
	    "\tgarbage <r3@x>\r\n"
	    "In-Reply-To: <ignored@x>\r\n"
	    "\r\n"
	    "Subject: not a header\r\n";
	struct imap_sortkeys k;

	(void)state;
	imap_sortkeys_parse(hdr, sizeof(hdr) - 1, &k);
	assert_string_equal(k.subject, "HELLO WORLD");
	assert_true(k.reply);
	assert_string_equal(k.from, "SOMEONE");
	assert_string_equal(k.display_from, "FOO AAR");
	assert_string_equal(k.to, "GROUP");
	assert_string_equal(k.display_to, "GROUP");
	assert_string_equal(k.cc, "PLAIN");
	/* 02:00 at +0200 is midnight UTC */
	assert_int_equal(k.sent, 1203638400);
	assert_string_equal(k.message_id, "m1@example.org");
	assert_int_equal(k.ref_count, 3);
	assert_string_equal(k.refs[0], "r1@x");
	assert_string_equal(k.refs[1], "r2@x");
	assert_string_equal(k.refs[2], "r3@x");
	imap_sortkeys_free(&k);
}

/* No References: the first msg-id of In-Reply-To; no Date: -1; a name
 * missing: the address is the display name (RFC 5957). */
static void test_header_keys_fallbacks(void **state)
{
	static const char hdr[] = "From: b@c.d\n"
				  "In-Reply-To: <p@x> <q@x>\n"
				  "\n";
	struct imap_sortkeys k;

	(void)state;
	imap_sortkeys_parse(hdr, sizeof(hdr) - 1, &k);
	assert_string_equal(k.subject, "");
	assert_false(k.reply);
	assert_string_equal(k.from, "B");
	assert_string_equal(k.display_from, "B@C.D");
	assert_string_equal(k.to, "");
	assert_int_equal(k.sent, -1);
	assert_null(k.message_id);
	assert_int_equal(k.ref_count, 1);
	assert_string_equal(k.refs[0], "p@x");
	imap_sortkeys_free(&k);
}

/* A message for the thread tests: id, date, subject, Message-ID, refs. */
struct tm_spec {
	time_t sent;
	const char *subject;
	const char *id;
	const char *refs[4];
};

static void assert_thread(const struct tm_spec *spec, size_t n, bool refs,
			  const char *want)
{
	struct imap_thread_msg *msgs = calloc(n + 1, sizeof(*msgs));
	struct buf *out = buf_new(1 << 20);
	bool reply;
	char **subjects = calloc(n + 1, sizeof(*subjects));

	for (size_t i = 0; i < n; i++) {
		msgs[i].id = (uint32_t)i + 1;
		msgs[i].sent = spec[i].sent;
		subjects[i] = imap_base_subject(
		    spec[i].subject ? spec[i].subject : "", &reply);
		msgs[i].subject = subjects[i];
		msgs[i].reply = reply;
		msgs[i].message_id = spec[i].id;
		msgs[i].refs = spec[i].refs;
		while (msgs[i].ref_count < 4 &&
		       spec[i].refs[msgs[i].ref_count] != NULL)
			msgs[i].ref_count++;
	}
	assert_int_equal(refs ? imap_thread_references(msgs, n, out)
			      : imap_thread_orderedsubject(msgs, n, out),
			 0);
	assert_string_equal(buf_data(out), want);
	buf_free(&out);
	for (size_t i = 0; i < n; i++)
		free(subjects[i]);
	free(subjects);
	free(msgs);
}

static void test_orderedsubject(void **state)
{
	static const struct tm_spec m[] = {
	    {30, "b", NULL, {NULL}},	  {20, "Re: a", NULL, {NULL}},
	    {10, "a", NULL, {NULL}},	  {40, "re: B", NULL, {NULL}},
	    {50, "Fwd: b", NULL, {NULL}}, {5, "c", NULL, {NULL}},
	};

	(void)state;
	/* threads by their first message's date; a single child is not
	 * parenthesised, several are */
	assert_thread(m, 6, false, "(6)(3 2)(1 (4)(5))");
}

/* References link parents; a missing parent becomes a dummy that stays
 * at the root when it has several children and goes when it has one. */
static void test_references_missing_parent(void **state)
{
	static const struct tm_spec m[] = {
	    {10, "x", "<1>", {NULL}},
	    {20, "y", "<2>", {"<1>", NULL}},
	    {30, "z", "<3>", {"<gone>", NULL}},
	    {40, "z", "<4>", {"<gone>", NULL}},
	    {50, "w", "<5>", {"<gone2>", NULL}},
	};

	(void)state;
	assert_thread(m, 5, true, "(1 2)((3)(4))(5)");
}

/* msg-ids are compared as given: the ids above keep their brackets. A
 * reference loop (RFC 5256 section 3 step 1.C): the link that would
 * close it is not made; Dovecot's answer for imaptest's "thread". */
static void test_references_loop(void **state)
{
	static const struct tm_spec m[] = {
	    {300, NULL, "a", {NULL}},
	    {100, NULL, "b", {"a", "c", NULL}},
	    {200, NULL, "c", {"b", NULL}},
	};
	static const struct tm_spec self[] = {
	    {100, NULL, "s", {"s", NULL}},
	    {200, NULL, "t", {"s", NULL}},
	};

	(void)state;
	assert_thread(m, 3, true, "(3 2)(1)");
	assert_thread(self, 2, true, "(1 2)");
}

/* Duplicate Message-IDs are separate messages; siblings sort by date
 * (then sequence); subjects gather roots (step 5): a reply under the
 * original (2 under 1, 5 under 3), two originals under a dummy. */
static void test_references_duplicates_and_subjects(void **state)
{
	static const struct tm_spec dup[] = {
	    {10, NULL, "a", {NULL}},
	    {10, NULL, "b", {"a", NULL}},
	    {10, NULL, "c", {"b", NULL}},
	    {10, NULL, "b", {"a", NULL}},
	};
	static const struct tm_spec subj[] = {
	    {10, "foo", "a", {NULL}},
	    {20, "Re: foo", "b", {"missing", NULL}},
	    {30, "bar", "c", {NULL}},
	    {40, "bar", "d", {NULL}},
	    {5, "Re: bar", "e", {NULL}},
	};

	(void)state;
	assert_thread(dup, 4, true, "(1 (2 3)(4))");
	assert_thread(subj, 5, true, "(1 2)((3 5)(4))");
}

/* A chain as deep as the mailbox, and one deeper than the cap: written
 * without recursion, and a link under a message with more ancestors than
 * IMAP_MAX_THREAD_DEPTH is not made. */
static void test_references_deep_chain(void **state)
{
	const size_t n = 3000;
	struct imap_thread_msg *msgs = calloc(n, sizeof(*msgs));
	char(*ids)[16] = calloc(n, sizeof(*ids));
	const char **refs = calloc(n, sizeof(*refs));
	struct buf *out = buf_new(1 << 20);
	size_t opens = 0;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "m%zu", i);
		refs[i] = ids[i];
		msgs[i].id = (uint32_t)i + 1;
		msgs[i].sent = (time_t)i;
		msgs[i].subject = "";
		msgs[i].message_id = ids[i];
		msgs[i].refs = i > 0 ? &refs[i - 1] : NULL;
		msgs[i].ref_count = i > 0 ? 1 : 0;
	}
	assert_int_equal(imap_thread_references(msgs, n, out), 0);
	for (const char *p = buf_data(out); *p != '\0'; p++)
		opens += *p == '(';
	/* 1001 messages in the first thread, then new threads */
	assert_int_equal(strncmp(buf_data(out), "(1 2 3 ", 7), 0);
	assert_true(opens > 1 && opens < n);
	buf_free(&out);
	free(refs);
	free(ids);
	free(msgs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_base_subject_rfc5256),
	    cmocka_unit_test(test_base_subject_encoded),
	    cmocka_unit_test(test_header_keys),
	    cmocka_unit_test(test_header_keys_fallbacks),
	    cmocka_unit_test(test_orderedsubject),
	    cmocka_unit_test(test_references_missing_parent),
	    cmocka_unit_test(test_references_loop),
	    cmocka_unit_test(test_references_duplicates_and_subjects),
	    cmocka_unit_test(test_references_deep_chain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
