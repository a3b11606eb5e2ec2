/*
 * MIME structure for IMAP (src/mime). ENVELOPE/BODY/BODYSTRUCTURE are
 * compared with what Dovecot 2.3.19 returned for the same messages
 * (test_mime_dovecot.h says how they were recorded); the section slices
 * below were checked against Dovecot's BODY[...] / BINARY[...] answers the
 * same way. The rest checks the bounds, the cache blob and SEARCH.
 */
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
#include "mime/mime.h"

struct dovecot_case {
	const char *name;
	const char *msg;
	size_t len;
	const char *expected;
};
#define MSG(s) s, sizeof(s) - 1
#include "test_mime_dovecot.h"

#define OUT_MAX (4 * 1024 * 1024)

/* "ENVELOPE (...) BODY ... BODYSTRUCTURE ..." as a FETCH writes it. */
static char *fetch_line(const struct mime_msg *m, const char *wire)
{
	struct buf *b = buf_new(OUT_MAX);
	char *s;

	assert_int_equal(buf_append_str(b, "ENVELOPE ("), 0);
	assert_int_equal(mime_write_envelope(m, wire, b), 0);
	assert_int_equal(buf_append_str(b, ") BODY "), 0);
	assert_int_equal(mime_write_bodystructure(m, wire, false, b), 0);
	assert_int_equal(buf_append_str(b, " BODYSTRUCTURE "), 0);
	assert_int_equal(mime_write_bodystructure(m, wire, true, b), 0);
	s = strdup(buf_data(b));
	buf_free(&b);
	return s;
}

static void test_matches_dovecot(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(dovecot_cases) / sizeof(dovecot_cases[0]); i++) {
		const struct dovecot_case *c = &dovecot_cases[i];
		struct mime_msg *m = mime_parse(c->msg, c->len);
		char *got = fetch_line(m, c->msg);

		if (strcmp(got, c->expected) != 0)
			fail_msg("%s:\n got %s\nwant %s", c->name, got,
				 c->expected);
		free(got);
		mime_free(&m);
	}
}

/* The cache blob gives back the same answers. */
static void test_save_load_round_trip(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(dovecot_cases) / sizeof(dovecot_cases[0]); i++) {
		const struct dovecot_case *c = &dovecot_cases[i];
		struct mime_msg *m = mime_parse(c->msg, c->len), *l;
		struct buf *blob = buf_new(OUT_MAX);
		char *got;

		assert_int_equal(mime_save(m, blob), 0);
		l = mime_load(buf_data(blob), buf_len(blob), c->len);
		assert_non_null(l);
		got = fetch_line(l, c->msg);
		assert_string_equal(got, c->expected);
		free(got);
		/* another wire length: not this message's blob */
		assert_null(
		    mime_load(buf_data(blob), buf_len(blob), c->len + 1));
		mime_free(&l);
		mime_free(&m);
		buf_free(&blob);
	}
}

/* Every one-byte change and every truncation of a blob is either
 * refused or gives slices inside the message. */
static void test_load_rejects_corrupt_blobs(void **state)
{
	static const char msg[] =
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	    "Content-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nx\r\n"
	    "--b\r\n\r\ny\r\n--b--\r\n";
	size_t len = sizeof(msg) - 1, i, refused = 0;
	struct mime_msg *m = mime_parse(msg, len);
	struct buf *blob = buf_new(4096);
	unsigned char copy[4096];
	size_t blen;

	(void)state;
	assert_int_equal(mime_save(m, blob), 0);
	blen = buf_len(blob);
	for (i = 0; i < blen; i++) {
		unsigned bit;

		for (bit = 0; bit < 8; bit++) {
			struct mime_msg *l;

			memcpy(copy, buf_data(blob), blen);
			copy[i] ^= (unsigned char)(1u << bit);
			l = mime_load(copy, blen, len);
			if (l == NULL) {
				refused++;
				continue;
			}
			{
				static const unsigned parts[][2] = {
				    {1, 0}, {1, 1}, {2, 0}, {3, 0}};
				size_t k;

				for (k = 0; k < 4; k++) {
					struct mime_section s = {0};
					size_t off, n;

					s.part[0] = parts[k][0];
					s.part[1] = parts[k][1];
					s.depth = parts[k][1] ? 2 : 1;
					if (mime_section_range(l, &s, &off,
							       &n) == 0)
						assert_true(off + n <= len);
				}
			}
			mime_free(&l);
		}
	}
	for (i = 0; i < blen; i++)
		assert_null(mime_load(buf_data(blob), i, len));
	assert_true(refused > blen); /* most changes are caught */
	assert_null(mime_load("PMM\002", 4, len));
	mime_free(&m);
	buf_free(&blob);
}

static const char mixed_msg[] =
    "From: a@b.c\r\n"
    "Subject: mixed\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=outer\r\n"
    "\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "plain\r\n"
    "--inner\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<b>html</b>\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: inner\r\n"
    "From: x@y\r\n"
    "\r\n"
    "inner body\r\n"
    "--outer\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "SGVsbG8g\r\n"
    "V29ybGQh\r\n"
    "--outer\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=E9 cr=\r\n"
    "=E8me\r\n"
    "--outer\r\n"
    "Content-Transfer-Encoding: x-uuencode\r\n"
    "\r\n"
    "begin 644 x\r\n"
    "--outer--\r\n";

/* The slice of a section as a string ("<none>" when it does not
 * exist). */
static char *slice(const struct mime_msg *m, const char *wire,
		   enum mime_section_kind kind, const char *path)
{
	struct mime_section s = {0};
	size_t off, len;
	char *out;

	s.kind = kind;
	while (*path != '\0') {
		s.part[s.depth++] = (unsigned)strtoul(path, (char **)&path, 10);
		if (*path == '.')
			path++;
	}
	if (mime_section_range(m, &s, &off, &len) < 0)
		return strdup("<none>");
	out = malloc(len + 1);
	memcpy(out, wire + off, len);
	out[len] = '\0';
	return out;
}

static void check_slice(const struct mime_msg *m, const char *wire,
			enum mime_section_kind kind, const char *path,
			const char *want)
{
	char *got = slice(m, wire, kind, path);

	if (strcmp(got, want) != 0)
		fail_msg("section %s kind %d: got [%s] want [%s]", path,
			 (int)kind, got, want);
	free(got);
}

/* Slices as Dovecot returned them for the same message. */
static void test_sections(void **state)
{
	struct mime_msg *m = mime_parse(mixed_msg, sizeof(mixed_msg) - 1);
	const char *w = mixed_msg;

	(void)state;
	check_slice(m, w, MIME_SECTION_ALL, "1.1", "plain");
	check_slice(m, w, MIME_SECTION_ALL, "1.2", "<b>html</b>");
	/* a nested multipart ends after its close delimiter's CRLF */
	check_slice(m, w, MIME_SECTION_ALL, "1",
		    "--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
		    "--inner\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n"
		    "--inner--\r\n");
	check_slice(m, w, MIME_SECTION_MIME, "1.2",
		    "Content-Type: text/html\r\n\r\n");
	/* [n.1] of a leaf is the leaf again (Dovecot) */
	check_slice(m, w, MIME_SECTION_ALL, "1.1.1", "plain");
	check_slice(m, w, MIME_SECTION_ALL, "2",
		    "Subject: inner\r\nFrom: x@y\r\n\r\ninner body");
	check_slice(m, w, MIME_SECTION_HEADER, "2",
		    "Subject: inner\r\nFrom: x@y\r\n\r\n");
	check_slice(m, w, MIME_SECTION_TEXT, "2", "inner body");
	check_slice(m, w, MIME_SECTION_ALL, "2.1", "inner body");
	check_slice(m, w, MIME_SECTION_HEADER, "1", "<none>");
	check_slice(m, w, MIME_SECTION_ALL, "7", "<none>");
	check_slice(m, w, MIME_SECTION_ALL, "0", "<none>");
	check_slice(m, w, MIME_SECTION_MIME, "", "<none>");
	check_slice(
	    m, w, MIME_SECTION_TEXT, "",
	    "--outer\r\nContent-Type: multipart/alternative; "
	    "boundary=inner\r\n\r\n--inner\r\nContent-Type: "
	    "text/plain\r\n\r\nplain\r\n--inner\r\nContent-Type: "
	    "text/html\r\n\r\n<b>html</"
	    "b>\r\n--inner--\r\n--outer\r\nContent-Type: "
	    "message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@y\r\n\r\ninner "
	    "body\r\n--outer\r\nContent-Type: "
	    "application/octet-stream\r\nContent-Transfer-Encoding: "
	    "base64\r\n\r\nSGVsbG8g\r\nV29ybGQh\r\n--outer\r\nContent-Type: "
	    "text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: "
	    "quoted-printable\r\n\r\nCaf=E9 "
	    "cr=\r\n=E8me\r\n--outer\r\nContent-Transfer-Encoding: "
	    "x-uuencode\r\n\r\nbegin 644 x\r\n--outer--\r\n");
	mime_free(&m);
}

/* Where the line break before a boundary goes when a header ends at it
 * (the slices Dovecot 2.3.19 returned for these messages). */
static void test_header_at_boundary(void **state)
{
	static const char cut[] =
	    "Content-Type: multipart/mixed; boundary=\"b\"\r\n"
	    "\r\n--b\r\nContent-Type: text/plain\r\n--b\r\n"
	    "\r\nbody2\r\n--b--\r\n";
	static const char blank[] =
	    "Content-Type: multipart/mixed; boundary=b\r\n"
	    "\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
	    "--b\r\n\r\n--b--\r\n";
	static const char digest[] =
	    "Content-Type: multipart/digest; boundary=\"d\"\r\n\r\n--d\r\n"
	    "\r\nSubject: one\r\n\r\n--d\r\n\r\nSubject: two\r\n\r\nbody\r\n"
	    "--d--\r\n";
	static const char rfc[] =
	    "Content-Type: multipart/mixed; boundary=b\r\n"
	    "\r\n--b\r\nContent-Type: message/rfc822\r\n"
	    "\r\n--b--\r\n";
	struct mime_msg *m;

	(void)state;
	m = mime_parse(cut, sizeof(cut) - 1);
	check_slice(m, cut, MIME_SECTION_MIME, "1", "Content-Type: text/plain");
	check_slice(m, cut, MIME_SECTION_ALL, "2", "body2");
	mime_free(&m);
	m = mime_parse(blank, sizeof(blank) - 1);
	check_slice(m, blank, MIME_SECTION_MIME, "1",
		    "Content-Type: text/plain\r\n");
	check_slice(m, blank, MIME_SECTION_MIME, "2", "");
	mime_free(&m);
	m = mime_parse(digest, sizeof(digest) - 1);
	check_slice(m, digest, MIME_SECTION_ALL, "1", "Subject: one\r\n\r\n");
	check_slice(m, digest, MIME_SECTION_HEADER, "1", "Subject: one\r\n");
	check_slice(m, digest, MIME_SECTION_TEXT, "2", "body");
	mime_free(&m);
	m = mime_parse(rfc, sizeof(rfc) - 1);
	check_slice(m, rfc, MIME_SECTION_MIME, "1",
		    "Content-Type: message/rfc822\r\n");
	check_slice(m, rfc, MIME_SECTION_ALL, "1", "");
	mime_free(&m);
}

/* [1] of a message that is not multipart is its body; [1.1] is not. */
static void test_single_part_sections(void **state)
{
	static const char msg[] = "Subject: x\r\n\r\nbody\r\n";
	struct mime_msg *m = mime_parse(msg, sizeof(msg) - 1);

	(void)state;
	check_slice(m, msg, MIME_SECTION_ALL, "1", "body\r\n");
	check_slice(m, msg, MIME_SECTION_MIME, "1", "Subject: x\r\n\r\n");
	check_slice(m, msg, MIME_SECTION_ALL, "1.1", "<none>");
	check_slice(m, msg, MIME_SECTION_ALL, "2", "<none>");
	check_slice(m, msg, MIME_SECTION_ALL, "", msg);
	mime_free(&m);
}

static char *fields(const struct mime_msg *m, const char *wire,
		    const char *path, bool not, const char *const *names,
		    size_t n)
{
	struct mime_section s = {0};
	struct buf *b = buf_new(OUT_MAX);
	char *out;

	while (*path != '\0') {
		s.part[s.depth++] = (unsigned)strtoul(path, (char **)&path, 10);
		if (*path == '.')
			path++;
	}
	s.kind =
	    not ? MIME_SECTION_HEADER_FIELDS_NOT : MIME_SECTION_HEADER_FIELDS;
	s.fields = names;
	s.field_count = n;
	if (mime_section_fields(m, wire, &s, b) < 0)
		out = strdup("<none>");
	else
		out = strdup(buf_data(b));
	buf_free(&b);
	return out;
}

static void test_header_fields(void **state)
{
	static const char msg[] = "From: a@b\r\nSubject: one\r\n two\r\n"
				  "To: c@d\r\nsubject: again\r\n\r\nbody\r\n";
	static const char nobody[] = "Subject: x\r\nFrom: y@z";
	static const char *const subj[] = {"SUBJECT"};
	static const char *const two[] = {"subject", "from"};
	struct mime_msg *m = mime_parse(msg, sizeof(msg) - 1);
	char *got;

	(void)state;
	got = fields(m, msg, "", false, subj, 1);
	assert_string_equal(got,
			    "Subject: one\r\n two\r\nsubject: again\r\n\r\n");
	free(got);
	got = fields(m, msg, "", true, two, 2);
	assert_string_equal(got, "To: c@d\r\n\r\n");
	free(got);
	got = fields(m, msg, "1", false, subj, 1);
	assert_string_equal(got, "<none>");
	free(got);
	mime_free(&m);

	/* no blank line: FIELDS still ends with one, FIELDS.NOT does not
	 * (as Dovecot answers) */
	m = mime_parse(nobody, sizeof(nobody) - 1);
	got = fields(m, nobody, "", false, two + 1, 1);
	assert_string_equal(got, "From: y@z\r\n\r\n");
	free(got);
	got = fields(m, nobody, "", true, two, 2);
	assert_string_equal(got, "");
	free(got);
	mime_free(&m);

	/* [2.HEADER.FIELDS] of a message/rfc822 part */
	m = mime_parse(mixed_msg, sizeof(mixed_msg) - 1);
	got = fields(m, mixed_msg, "2", false, subj, 1);
	assert_string_equal(got, "Subject: inner\r\n\r\n");
	free(got);
	mime_free(&m);
}

static char *binary(const struct mime_msg *m, const char *wire,
		    const unsigned *part, size_t depth, int *ret)
{
	struct buf *b = buf_new(OUT_MAX);
	char *out;

	*ret = mime_binary(m, wire, part, depth, b);
	out = strdup(buf_data(b));
	buf_free(&b);
	return out;
}

static void test_binary(void **state)
{
	struct mime_msg *m = mime_parse(mixed_msg, sizeof(mixed_msg) - 1);
	unsigned p[2] = {3, 0};
	char *got;
	int ret;

	(void)state;
	got = binary(m, mixed_msg, p, 1, &ret);
	assert_int_equal(ret, 0);
	assert_string_equal(got, "Hello World!");
	free(got);
	p[0] = 4;
	got = binary(m, mixed_msg, p, 1, &ret);
	assert_int_equal(ret, 0);
	assert_string_equal(got, "Caf\xe9 cr\xe8me");
	free(got);
	p[0] = 1;
	p[1] = 1;
	got = binary(m, mixed_msg, p, 2, &ret);
	assert_int_equal(ret, 0);
	assert_string_equal(got, "plain");
	free(got);
	p[0] = 5;
	got = binary(m, mixed_msg, p, 1, &ret);
	assert_int_equal(ret, -2);
	free(got);
	p[0] = 9;
	got = binary(m, mixed_msg, p, 1, &ret);
	assert_int_equal(ret, -1);
	free(got);
	mime_free(&m);
}

/* Quoted-printable as Dovecot decodes it (imaptest fetch-binary-mime-qp):
 * blanks at a line's end go, '=' with blanks after it is a soft break,
 * "=XX" in either case is a byte, a stray '=' stays. */
static void test_binary_quoted_printable(void **state)
{
	static const char qp[] =
	    "MIME-Version: 1.0\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "hello  \r\n"
	    "bar=\r\n"
	    "\r\n"
	    "foo\t=\r\n"
	    "bar\r\n"
	    "foo\t \t= \r\n"
	    "=62\r\n"
	    "foo = \t\r\n"
	    "bar\r\n"
	    "=3d=3D =zz=\r\n"
	    "end";
	static const char want[] = "hello\r\n"
				   "bar\r\n"
				   "foo\tbar\r\n"
				   "foo\t \tb\r\n"
				   "foo bar\r\n"
				   "== =zzend";
	unsigned one = 1;
	struct mime_msg *m = mime_parse(qp, sizeof(qp) - 1);
	char *got;
	int ret;

	(void)state;
	got = binary(m, qp, &one, 1, &ret);
	assert_int_equal(ret, 0);
	assert_string_equal(got, want);
	free(got);
	mime_free(&m);
}

/* Dovecot reads the encoding even without MIME-Version, and refuses
 * one that is not a single token. */
static void test_binary_encoding_rules(void **state)
{
	static const char bare[] =
	    "Content-Transfer-Encoding: base64\r\n\r\naGk=\r\n";
	static const char junk[] = "MIME-Version: 1.0\r\n"
				   "Content-Transfer-Encoding: BASE64 junk\r\n"
				   "\r\naGk=\r\n";
	unsigned one = 1;
	struct mime_msg *m = mime_parse(bare, sizeof(bare) - 1);
	char *got;
	int ret;

	(void)state;
	got = binary(m, bare, &one, 1, &ret);
	assert_int_equal(ret, 0);
	assert_string_equal(got, "hi");
	free(got);
	mime_free(&m);
	m = mime_parse(junk, sizeof(junk) - 1);
	got = binary(m, junk, &one, 1, &ret);
	assert_int_equal(ret, -2);
	free(got);
	mime_free(&m);
}

static void test_nstring(void **state)
{
	static const struct {
		const char *in;
		bool utf8;
		const char *out;
	} cases[] = {
	    {"plain", false, "\"plain\""},
	    {"a\"b\\c", false, "\"a\\\"b\\\\c\""},
	    {"\"\"\"\"\"", false, "{5}\r\n\"\"\"\"\""},
	    {"line\r\nbreak", false, "{11}\r\nline\r\nbreak"},
	    {"caf\xc3\xa9", false, "{5}\r\ncaf\xc3\xa9"},
	    {"caf\xc3\xa9", true, "\"caf\xc3\xa9\""},
	    /* not UTF-8: a literal even when UTF-8 may be quoted */
	    {"caf\xe9", true, "{4}\r\ncaf\xe9"},
	    {"\xc0\xaf", true, "{2}\r\n\xc0\xaf"},
	    {"\xed\xa0\x80", true, "{3}\r\n\xed\xa0\x80"},
	    {"\xf0\x9f\x98\x80", true, "\"\xf0\x9f\x98\x80\""},
	    {"", false, "\"\""},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf *b = buf_new(256);

		assert_int_equal(mime_write_nstring(b, cases[i].in,
						    strlen(cases[i].in),
						    cases[i].utf8),
				 0);
		assert_string_equal(buf_data(b), cases[i].out);
		buf_free(&b);
	}
	{
		struct buf *b = buf_new(256);

		assert_int_equal(mime_write_nstring(b, NULL, 0, false), 0);
		assert_string_equal(buf_data(b), "NIL");
		/* a NUL cannot travel in a literal: 0x80 instead */
		buf_clear(b);
		assert_int_equal(mime_write_nstring(b, "a\0b", 3, false), 0);
		assert_memory_equal(buf_data(b),
				    "{3}\r\na\x80"
				    "b",
				    8);
		buf_free(&b);
	}
	{
		struct buf *b = buf_new(4);

		assert_int_equal(mime_write_nstring(b, "toolong", 7, false),
				 -1);
		buf_free(&b);
	}
}

static const char search_msg[] =
    "From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\r\n"
    "To: =?utf-8?b?w4lDT0xF?= <ecole@example.org>\r\n"
    "Subject: =?utf-8?q?R=C3=A9union?= =?utf-8?q?_du_lundi?=\r\n"
    "Date: Mon, 7 Dec 2026 23:30:00 -0800\r\n"
    "X-Empty:\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=zz\r\n"
    "\r\n"
    "--zz\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Ordre du jour: caf=E9 et cr=E8me br=FBl=E9e\r\n"
    "--zz\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "PHA+R3LDvMOfZSBhdXMgTcO8bmNoZW48L3A+\r\n"
    "--zz\r\n"
    "Content-Type: application/octet-stream\r\n"
    "\r\n"
    "secretword\r\n"
    "--zz\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: forwarded thing\r\n"
    "\r\n"
    "inner text\r\n"
    "--zz--\r\n";

static void test_search_header(void **state)
{
	struct mime_msg *m = mime_parse(search_msg, sizeof(search_msg) - 1);
	const char *w = search_msg;

	(void)state;
	/* RFC 2047, ISO-8859-1 and UTF-8, case folded beyond ASCII */
	assert_true(mime_search_header(m, w, "From", "jørn"));
	assert_true(mime_search_header(m, w, "from", "KELD J\xc3\x98RN"));
	assert_true(mime_search_header(m, w, "To",
				       "\xc3\xa9"
				       "cole"));
	assert_true(mime_search_header(m, w, "Subject", "réunion du"));
	assert_true(mime_search_header(m, w, "Subject", "RÉUNION"));
	assert_false(mime_search_header(m, w, "Subject", "mardi"));
	assert_false(mime_search_header(m, w, "Cc", "keld"));
	/* an empty needle matches a present field, even an empty one */
	assert_true(mime_search_header(m, w, "X-Empty", ""));
	assert_false(mime_search_header(m, w, "X-Missing", ""));
	assert_false(mime_search_header(m, w, NULL, "x"));
	mime_free(&m);
}

/* An address field is also searched as its parsed addresses, so comments
 * and blanks inside an address do not hide it (imaptest
 * search-addresses, as Dovecot searches). */
static const char address_msg[] =
    "From: <user-from (comment)@ (comment) domain.org>\r\n"
    "To: Some One <one@example.org>, two (Two) @ example . org\r\n"
    "Subject: user-from@domain.org is no address here\r\n"
    "\r\n"
    "body\r\n";

static void test_search_header_parsed_addresses(void **state)
{
	struct mime_msg *m = mime_parse(address_msg, sizeof(address_msg) - 1);
	const char *w = address_msg;

	(void)state;
	assert_true(mime_search_header(m, w, "From", "user-from@domain.org"));
	assert_true(mime_search_header(m, w, "From", "USER-FROM@DOMAIN"));
	assert_true(mime_search_header(m, w, "To", "two@example.org"));
	assert_true(mime_search_header(m, w, "To", "some one"));
	assert_false(mime_search_header(m, w, "To", "user-from@domain.org"));
	/* not an address field: its text only */
	assert_false(mime_search_header(m, w, "Subject", "address@here"));
	mime_free(&m);
}

static void test_search_body(void **state)
{
	struct mime_msg *m = mime_parse(search_msg, sizeof(search_msg) - 1);
	const char *w = search_msg;

	(void)state;
	/* quoted-printable ISO-8859-1 */
	assert_true(mime_search_body(m, w, "CRÈME BRÛLÉE", false));
	/* base64 UTF-8 */
	assert_true(mime_search_body(m, w, "grüße aus münchen", false));
	/* not text: not searched */
	assert_false(mime_search_body(m, w, "secretword", false));
	/* the encapsulated message's body is text of this one */
	assert_true(mime_search_body(m, w, "INNER TEXT", false));
	/* headers only with TEXT */
	assert_false(mime_search_body(m, w, "réunion", false));
	assert_true(mime_search_body(m, w, "réunion", true));
	assert_true(mime_search_body(m, w, "forwarded", true));
	assert_false(mime_search_body(m, w, "forwarded", false));
	mime_free(&m);
}

static void test_sent_date(void **state)
{
	static const char nodate[] = "Subject: x\r\n\r\n";
	static const char bad[] = "Date: yesterday-ish\r\n\r\n";
	struct mime_msg *m = mime_parse(search_msg, sizeof(search_msg) - 1);

	(void)state;
	/* 23:30 on the 7th in the sender's zone (-0800): the sender's wall
	 * clock, so the date stays the 7th (SENTON ignores the zone);
	 * 1796686200 is 2026-12-07T23:30:00 read as UTC */
	assert_int_equal(mime_sent_date(m, search_msg), 1796686200);
	mime_free(&m);
	m = mime_parse(nodate, sizeof(nodate) - 1);
	assert_int_equal(mime_sent_date(m, nodate), -1);
	mime_free(&m);
	m = mime_parse(bad, sizeof(bad) - 1);
	assert_int_equal(mime_sent_date(m, bad), -1);
	mime_free(&m);
}

/* A message of n multiparts inside one another, each with a text part
 * before its nested one. */
static char *nested_bomb(unsigned n, size_t *len_r)
{
	struct buf *b = buf_new(64 * 1024 * 1024);
	unsigned i;
	char *out;

	for (i = 0; i < n; i++)
		assert_int_equal(buf_printf(b,
					    "Content-Type: multipart/mixed; "
					    "boundary=\"b%u\"\r\n\r\n--b%u\r\n"
					    "\r\nlevel %u\r\n--b%u\r\n",
					    i, i, i, i),
				 0);
	assert_int_equal(buf_append_str(b, "\r\ninnermost\r\n"), 0);
	for (i = n; i-- > 0;)
		assert_int_equal(buf_printf(b, "--b%u--\r\n", i), 0);
	*len_r = buf_len(b);
	out = malloc(*len_r + 1);
	memcpy(out, buf_data(b), *len_r + 1);
	buf_free(&b);
	return out;
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == c;
	return n;
}

static void test_nesting_is_bounded(void **state)
{
	size_t len, depth = 0, max_depth = 0;
	char *msg = nested_bomb(500, &len);
	struct mime_msg *m = mime_parse(msg, len);
	struct buf *b = buf_new(OUT_MAX);
	struct buf *blob = buf_new(OUT_MAX);
	const char *s;

	(void)state;
	assert_int_equal(mime_write_bodystructure(m, msg, true, b), 0);
	/* parentheses nest at most MIME_MAX_DEPTH multiparts deep (each
	 * costs one level, a leaf's parameter list one more) */
	for (s = buf_data(b); *s != '\0'; s++) {
		if (*s == '(' && ++depth > max_depth)
			max_depth = depth;
		if (*s == ')')
			depth--;
	}
	assert_true(max_depth <= MIME_MAX_DEPTH + 2);
	assert_true(max_depth >= MIME_MAX_DEPTH - 1);
	assert_int_equal(count_char(buf_data(b), '('),
			 count_char(buf_data(b), ')'));
	/* the blob of a bounded tree loads back */
	assert_int_equal(mime_save(m, blob), 0);
	{
		struct mime_msg *l =
		    mime_load(buf_data(blob), buf_len(blob), len);

		assert_non_null(l);
		mime_free(&l);
	}
	buf_free(&b);
	buf_free(&blob);
	mime_free(&m);
	free(msg);
}

/* message/rfc822 inside message/rfc822, 40 deep: past MIME_MAX_DEPTH the
 * innermost is not opened and is shown as application/octet-stream, so
 * that no client expects an envelope there. */
static void test_rfc822_nesting_is_bounded(void **state)
{
	struct buf *msg = buf_new(64 * 1024);
	struct buf *out = buf_new(OUT_MAX);
	struct mime_msg *m;
	const char *s, *first;
	unsigned i;

	(void)state;
	for (i = 0; i < 40; i++)
		assert_int_equal(buf_printf(msg,
					    "Subject: level %u\r\n"
					    "Content-Type: message/rfc822\r\n"
					    "\r\n",
					    i),
				 0);
	assert_int_equal(buf_append_str(msg, "Subject: core\r\n\r\nx\r\n"), 0);
	m = mime_parse(buf_data(msg), buf_len(msg));
	assert_int_equal(mime_write_bodystructure(m, buf_data(msg), true, out),
			 0);
	s = buf_data(out);
	first = strstr(s, "\"application\" \"octet-stream\"");
	assert_non_null(first);
	assert_null(strstr(first + 1, "\"application\" \"octet-stream\""));
	assert_null(strstr(s, "core"));
	assert_non_null(strstr(s, "\"level 30\""));
	assert_int_equal(count_char(s, '('), count_char(s, ')'));
	mime_free(&m);
	buf_free(&msg);
	buf_free(&out);
}

static void test_part_count_is_bounded(void **state)
{
	struct buf *b = buf_new(8 * 1024 * 1024);
	struct buf *blob = buf_new(OUT_MAX);
	struct mime_msg *m, *l;
	struct mime_section s = {0};
	size_t off, len;
	unsigned i;

	(void)state;
	assert_int_equal(
	    buf_append_str(b,
			   "Content-Type: multipart/mixed; boundary=p\r\n\r\n"),
	    0);
	for (i = 0; i < MIME_MAX_PARTS + 500; i++)
		assert_int_equal(buf_printf(b, "--p\r\n\r\n%u\r\n", i), 0);
	assert_int_equal(buf_append_str(b, "--p--\r\n"), 0);
	m = mime_parse(buf_data(b), buf_len(b));
	s.depth = 1;
	s.part[0] = MIME_MAX_PARTS - 1;
	assert_int_equal(mime_section_range(m, &s, &off, &len), 0);
	s.part[0] = MIME_MAX_PARTS;
	assert_int_equal(mime_section_range(m, &s, &off, &len), -1);
	/* the last part takes the rest of the message */
	s.part[0] = MIME_MAX_PARTS - 1;
	assert_int_equal(mime_section_range(m, &s, &off, &len), 0);
	assert_int_equal(off + len, buf_len(b));
	assert_int_equal(mime_save(m, blob), 0);
	l = mime_load(buf_data(blob), buf_len(blob), buf_len(b));
	assert_non_null(l);
	mime_free(&l);
	mime_free(&m);
	buf_free(&b);
	buf_free(&blob);
}

/* Fields past MIME_MAX_HEADERS are not read: the Subject after 5000
 * other fields is not seen, and the walk stays bounded. */
static void test_header_count_is_bounded(void **state)
{
	struct buf *b = buf_new(8 * 1024 * 1024);
	struct buf *out = buf_new(OUT_MAX);
	struct mime_msg *m;
	unsigned i;

	(void)state;
	assert_int_equal(buf_append_str(b, "Subject: first\r\n"), 0);
	for (i = 0; i < 5000; i++)
		assert_int_equal(buf_printf(b, "X-F%u: v\r\n", i), 0);
	assert_int_equal(buf_append_str(b, "From: late@x\r\n\r\nbody\r\n"), 0);
	m = mime_parse(buf_data(b), buf_len(b));
	assert_int_equal(mime_write_envelope(m, buf_data(b), out), 0);
	assert_string_equal(buf_data(out),
			    "NIL \"first\" NIL NIL NIL NIL NIL NIL NIL NIL");
	assert_false(mime_search_header(m, buf_data(b), "From", ""));
	/* the header block still ends at its blank line */
	check_slice(m, buf_data(b), MIME_SECTION_TEXT, "", "body\r\n");
	mime_free(&m);
	buf_free(&b);
	buf_free(&out);
}

/* A header block is read only up to MIME_MAX_HEADER_BYTES: a field
 * folded across more than that is not read, the fields before it are. */
static void test_header_bytes_are_bounded(void **state)
{
	struct buf *b = buf_new(4 * MIME_MAX_HEADER_BYTES);
	struct buf *out = buf_new(OUT_MAX);
	static const char more[] = "\r\n , aaaaaaa@bb";
	struct mime_msg *m;
	size_t n;

	(void)state;
	assert_int_equal(buf_append_str(b, "Subject: kept\r\nTo: x"), 0);
	for (n = 0; n < MIME_MAX_HEADER_BYTES; n += strlen(more))
		assert_int_equal(buf_append_str(b, more), 0);
	assert_int_equal(buf_append_str(b, "\r\nFrom: f@g\r\n\r\nbody\r\n"), 0);
	m = mime_parse(buf_data(b), buf_len(b));
	assert_int_equal(mime_write_envelope(m, buf_data(b), out), 0);
	assert_string_equal(buf_data(out),
			    "NIL \"kept\" NIL NIL NIL NIL NIL NIL NIL NIL");
	check_slice(m, buf_data(b), MIME_SECTION_TEXT, "", "body\r\n");
	mime_free(&m);
	buf_free(&b);
	buf_free(&out);
}

/* A full output buffer is an error, never an overrun. */
static void test_output_full(void **state)
{
	struct mime_msg *m = mime_parse(mixed_msg, sizeof(mixed_msg) - 1);
	size_t max;

	(void)state;
	for (max = 1; max < 400; max += 7) {
		struct buf *b = buf_new(max);

		assert_int_equal(
		    mime_write_bodystructure(m, mixed_msg, true, b), -1);
		assert_true(buf_len(b) <= max);
		buf_free(&b);
	}
	mime_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_matches_dovecot),
	    cmocka_unit_test(test_save_load_round_trip),
	    cmocka_unit_test(test_load_rejects_corrupt_blobs),
	    cmocka_unit_test(test_sections),
	    cmocka_unit_test(test_single_part_sections),
	    cmocka_unit_test(test_header_at_boundary),
	    cmocka_unit_test(test_header_fields),
	    cmocka_unit_test(test_binary),
	    cmocka_unit_test(test_binary_encoding_rules),
	    cmocka_unit_test(test_nstring),
	    cmocka_unit_test(test_search_header),
	    cmocka_unit_test(test_search_body),
	    cmocka_unit_test(test_sent_date),
	    cmocka_unit_test(test_nesting_is_bounded),
	    cmocka_unit_test(test_rfc822_nesting_is_bounded),
	    cmocka_unit_test(test_part_count_is_bounded),
	    cmocka_unit_test(test_header_count_is_bounded),
	    cmocka_unit_test(test_header_bytes_are_bounded),
	    cmocka_unit_test(test_output_full),
	    cmocka_unit_test(test_search_header_parsed_addresses),
	    cmocka_unit_test(test_binary_quoted_printable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
