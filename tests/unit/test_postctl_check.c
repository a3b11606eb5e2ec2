/*
 * Unit tests for the pure parsers of "postctl check" (postctl_check_parse.h):
 * URLs, the bounded line splitter, greeting classification, SMTP/POP3/
 * IMAP replies, capability lists, response codes, quoting and base64.
 * Stream cases run twice (see doc/hacking.md): the whole transcript in one
 * read, then one byte per read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cli/postctl_check_parse.h"

/* --- URLs ---------------------------------------------------------------- */

struct url_case {
	const char *in;
	int ret;
	enum check_proto proto;
	bool tls;
	const char *user; /* NULL: no user */
	const char *host;
	uint16_t port;
};

static const struct url_case url_cases[] = {
    {"pop3://alice@example.org@mail.example.org", 0, CHECK_PROTO_POP3, false,
     "alice@example.org", "mail.example.org", 110},
    {"pop3s://alice@example.org", 0, CHECK_PROTO_POP3, true, "alice",
     "example.org", 995},
    {"imap://host", 0, CHECK_PROTO_IMAP, false, NULL, "host", 143},
    {"imaps://u@host:1993/", 0, CHECK_PROTO_IMAP, true, "u", "host", 1993},
    {"smtp://h", 0, CHECK_PROTO_SMTP, false, NULL, "h", 25},
    {"submission://a%40b.c@h", 0, CHECK_PROTO_SMTP, false, "a@b.c", "h", 587},
    {"submissions://x@[::1]:4650", 0, CHECK_PROTO_SMTP, true, "x", "::1", 4650},
    {"SUBMISSIONS://[2001:db8::1]", 0, CHECK_PROTO_SMTP, true, NULL,
     "2001:db8::1", 465},
    {"a@b@c@host", -1, 0, false, NULL, NULL, 0},
    {"http://host", -1, 0, false, NULL, NULL, 0},
    {"pop3://", -1, 0, false, NULL, NULL, 0},
    {"pop3://user@", -1, 0, false, NULL, NULL, 0},
    {"pop3://@host", -1, 0, false, NULL, NULL, 0},
    {"pop3://host:0", -1, 0, false, NULL, NULL, 0},
    {"pop3://host:65536", -1, 0, false, NULL, NULL, 0},
    {"pop3://host:+1", -1, 0, false, NULL, NULL, 0},
    {"pop3://host:", -1, 0, false, NULL, NULL, 0},
    {"pop3://host:1x", -1, 0, false, NULL, NULL, 0},
    {"pop3://[::1", -1, 0, false, NULL, NULL, 0},
    {"pop3://[::1]x", -1, 0, false, NULL, NULL, 0},
    {"pop3://ho st", -1, 0, false, NULL, NULL, 0},
    {"pop3://host/INBOX", -1, 0, false, NULL, NULL, 0},
    {"pop3://a%4@host", -1, 0, false, NULL, NULL, 0},
    {"pop3://a%0d%0aQUIT@host", -1, 0, false, NULL, NULL, 0},
    {"pop3://a%zz@host", -1, 0, false, NULL, NULL, 0},
    {"pop3://a b@host", -1, 0, false, NULL, NULL, 0},
};

static void test_url_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++) {
		const struct url_case *tc = &url_cases[i];
		struct check_url u;
		const char *error = NULL;
		int r = check_url_parse(tc->in, &u, &error);

		if (r != tc->ret)
			fail_msg("case %zu (%s): got %d", i, tc->in, r);
		if (r < 0) {
			assert_non_null(error);
			continue;
		}
		assert_int_equal(u.proto, tc->proto);
		assert_int_equal(u.implicit_tls, tc->tls);
		assert_int_equal(u.has_user, tc->user != NULL);
		if (tc->user != NULL)
			assert_string_equal(u.user, tc->user);
		assert_string_equal(u.host, tc->host);
		assert_int_equal(u.port, tc->port);
	}
}

static void test_url_long_names(void **state)
{
	char in[1200], user[AUTH_MAX_USER + 2];
	struct check_url u;
	const char *error;

	(void)state;
	memset(user, 'u', sizeof(user) - 1);
	user[sizeof(user) - 1] = '\0';
	snprintf(in, sizeof(in), "pop3://%s@h", user);
	assert_int_equal(check_url_parse(in, &u, &error), -1);
	user[AUTH_MAX_USER] = '\0';
	snprintf(in, sizeof(in), "pop3://%s@h", user);
	assert_int_equal(check_url_parse(in, &u, &error), 0);
	assert_int_equal(strlen(u.user), AUTH_MAX_USER);
	memset(in, 'h', sizeof(in) - 1);
	memcpy(in, "pop3://", 7);
	in[7 + CHECK_MAX_HOST + 1] = '\0';
	assert_int_equal(check_url_parse(in, &u, &error), -1);
	in[7 + CHECK_MAX_HOST] = '\0';
	assert_int_equal(check_url_parse(in, &u, &error), 0);
}

static void test_url_user_domain(void **state)
{
	struct check_url u;
	const char *error;

	(void)state;
	assert_int_equal(
	    check_url_parse("smtp://a@b@example.org@mx", &u, &error), 0);
	assert_string_equal(check_url_user_domain(&u), "example.org");
	assert_int_equal(check_url_parse("smtp://alice@mx", &u, &error), 0);
	assert_null(check_url_user_domain(&u));
	assert_int_equal(check_url_parse("smtp://mx", &u, &error), 0);
	assert_null(check_url_user_domain(&u));
}

/* --- The line splitter and reply streams ---------------------------------- */

/*
 * Splits stream (whole, or one byte per call) and joins the lines with
 * '|' into out; returns the last check_line_feed() result (0 at the end
 * of a clean stream, -1 when a line was refused).
 */
static int split_stream(const char *stream, size_t len, bool trickle, char *out,
			size_t outsize)
{
	struct check_line lb;
	size_t pos = 0, used, o = 0, nlines = 0;
	int r = 0;

	out[0] = '\0';
	check_line_reset(&lb);
	while (pos < len) {
		size_t chunk = trickle ? 1 : len - pos;

		r = check_line_feed(&lb, stream + pos, chunk, &used);
		assert_true(used <= chunk);
		pos += used;
		if (r < 0)
			return -1;
		if (r == 1) {
			size_t n = strlen(lb.line);

			assert_true(o + n + 2 < outsize);
			if (nlines++ > 0)
				out[o++] = '|';
			memcpy(out + o, lb.line, n + 1);
			o += n;
			check_line_reset(&lb);
		}
	}
	return r == 1 ? 0 : r;
}

struct split_case {
	const char *stream;
	size_t len; /* 0: strlen */
	int ret;
	const char *lines;
};

static const struct split_case split_cases[] = {
    {"+OK hi\r\n", 0, 0, "+OK hi"}, {"a\r\nb\nc\r\n", 0, 0, "a|b|c"},
    {"\r\n\r\n", 0, 0, "|"},	    {"a\rb\r\n", 0, 0, "a\rb"},
    {"partial", 0, 0, ""},	    {"ok\r\nnul\0here\r\n", 15, -1, "ok"},
};

static void test_split_table(void **state)
{
	char out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]);
	     i++) {
		const struct split_case *tc = &split_cases[i];
		size_t len = tc->len ? tc->len : strlen(tc->stream);

		for (int trickle = 0; trickle < 2; trickle++) {
			int r = split_stream(tc->stream, len, trickle, out,
					     sizeof(out));

			if (r != tc->ret || strcmp(out, tc->lines) != 0)
				fail_msg("case %zu trickle %d: %d '%s'", i,
					 trickle, r, out);
		}
	}
}

static void test_split_overlong(void **state)
{
	static char big[CHECK_MAX_LINE + 4];
	char out[64];

	(void)state;
	memset(big, 'A', sizeof(big));
	/* exactly the maximum is fine */
	memcpy(big + CHECK_MAX_LINE, "\r\n", 2);
	for (int trickle = 0; trickle < 2; trickle++) {
		struct check_line lb;
		size_t pos = 0, used;
		int r = 0;

		check_line_reset(&lb);
		while (pos < CHECK_MAX_LINE + 2 && r == 0) {
			r = check_line_feed(
			    &lb, big + pos,
			    trickle ? 1 : CHECK_MAX_LINE + 2 - pos, &used);
			pos += used;
		}
		assert_int_equal(r, 1);
		assert_int_equal(strlen(lb.line), CHECK_MAX_LINE);
	}
	/* one more byte is refused before the line ends */
	memset(big, 'A', sizeof(big));
	assert_int_equal(
	    split_stream(big, sizeof(big), false, out, sizeof(out)), -1);
	assert_int_equal(split_stream(big, sizeof(big), true, out, sizeof(out)),
			 -1);
}

struct smtp_case {
	const char *stream;
	int ret; /* last check_smtp_reply_line() result */
	int code;
	unsigned int lines;
	bool starttls, plain, login;
	const char *caps;
};

static const struct smtp_case smtp_cases[] = {
    {"220 mx ESMTP\r\n", 1, 220, 1, false, false, false, ""},
    {"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
     "250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
     1, 250, 6, true, true, true,
     "PIPELINING SIZE 1000 STARTTLS AUTH PLAIN LOGIN 8BITMIME"},
    {"250-mx\r\n250 AUTH=LOGIN\r\n", 1, 250, 2, false, false, false,
     "AUTH=LOGIN"},
    {"250-mx\r\n250-auth login\r\n250 starttls\r\n", 1, 250, 3, true, false,
     true, "auth login starttls"},
    {"250-mx\r\n", 0, 250, 1, false, false, false, ""},
    {"250-mx\r\n251 x\r\n", -1, 250, 1, false, false, false, ""},
    {"25\r\n", -1, 0, 0, false, false, false, ""},
    {"250x\r\n", -1, 0, 0, false, false, false, ""},
    {"650 x\r\n", -1, 0, 0, false, false, false, ""},
    {"535 5.7.8 Authentication credentials invalid\r\n", 1, 535, 1, false,
     false, false, ""},
    {"250\r\n", 1, 250, 1, false, false, false, ""},
};

static void run_smtp_case(const struct smtp_case *tc, bool trickle)
{
	struct check_smtp_reply r;
	struct check_caps caps;
	struct check_line lb;
	const char *s = tc->stream;
	size_t len = strlen(s), pos = 0, used;
	int fr, ret = 0;

	check_smtp_reply_reset(&r);
	check_caps_reset(&caps);
	check_line_reset(&lb);
	while (pos < len) {
		fr = check_line_feed(&lb, s + pos, trickle ? 1 : len - pos,
				     &used);
		pos += used;
		assert_true(fr >= 0);
		if (fr == 0)
			continue;
		ret = check_smtp_reply_line(&r, lb.line);
		if (ret >= 0 && r.code == 250)
			check_caps_ehlo_line(&caps, r.text, r.lines == 1);
		check_line_reset(&lb);
		if (ret != 0)
			break;
	}
	assert_int_equal(ret, tc->ret);
	if (tc->ret >= 0 || tc->lines > 0) {
		assert_int_equal(r.code, tc->code);
		assert_int_equal(r.lines, tc->lines);
	}
	assert_int_equal(caps.starttls, tc->starttls);
	assert_int_equal(caps.auth_plain, tc->plain);
	assert_int_equal(caps.auth_login, tc->login);
	assert_string_equal(caps.text, tc->caps);
}

static void test_smtp_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(smtp_cases) / sizeof(smtp_cases[0]); i++)
		for (int trickle = 0; trickle < 2; trickle++)
			run_smtp_case(&smtp_cases[i], trickle);
}

static void test_smtp_too_many_lines(void **state)
{
	struct check_smtp_reply r;
	int ret = 0;

	(void)state;
	check_smtp_reply_reset(&r);
	for (unsigned int i = 0; i < CHECK_MAX_REPLY_LINES; i++)
		assert_int_equal(check_smtp_reply_line(&r, "250-x"), 0);
	ret = check_smtp_reply_line(&r, "250 x");
	assert_int_equal(ret, -1);
}

/* --- POP3 and IMAP ---------------------------------------------------------
 */

struct pop3_capa_case {
	const char *lines; /* CAPA body, LF separated, no "." */
	bool stls, user, plain, login, any;
	const char *text;
};

static const struct pop3_capa_case pop3_capa_cases[] = {
    {"TOP\nUSER\nUIDL\nSTLS\nSASL PLAIN LOGIN\n", true, true, true, true, true,
     "TOP USER UIDL STLS SASL PLAIN LOGIN"},
    {"SASL CRAM-MD5\n", false, false, false, false, true, "SASL CRAM-MD5"},
    {"stls\nuser\n", true, true, false, false, false, "stls user"},
    {"USERX\nSTLSY\nSASL\n", false, false, false, false, false,
     "USERX STLSY SASL"},
    {"IMPLEMENTATION \x1b[2J\n", false, false, false, false, false,
     "IMPLEMENTATION \\x1b[2J"},
};

static void test_pop3_capa_table(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(pop3_capa_cases) / sizeof(pop3_capa_cases[0]); i++) {
		const struct pop3_capa_case *tc = &pop3_capa_cases[i];

		for (int trickle = 0; trickle < 2; trickle++) {
			struct check_caps c;
			struct check_line lb;
			size_t len = strlen(tc->lines), pos = 0, used;

			check_caps_reset(&c);
			check_line_reset(&lb);
			while (pos < len) {
				int r = check_line_feed(&lb, tc->lines + pos,
							trickle ? 1 : len - pos,
							&used);

				pos += used;
				if (r == 1) {
					check_caps_pop3_line(&c, lb.line);
					check_line_reset(&lb);
				}
			}
			assert_int_equal(c.starttls, tc->stls);
			assert_int_equal(c.user, tc->user);
			assert_int_equal(c.auth_plain, tc->plain);
			assert_int_equal(c.auth_login, tc->login);
			assert_int_equal(c.auth_any, tc->any);
			assert_string_equal(c.text, tc->text);
		}
	}
}

static void test_pop3_status(void **state)
{
	const char *text;

	(void)state;
	assert_int_equal(check_pop3_status("+OK 2 320", &text), 1);
	assert_string_equal(text, "2 320");
	assert_int_equal(check_pop3_status("+OK", &text), 1);
	assert_string_equal(text, "");
	assert_int_equal(check_pop3_status("-ERR [AUTH] no", &text), 0);
	assert_string_equal(text, "[AUTH] no");
	assert_int_equal(check_pop3_status("+OKAY", &text), -1);
	assert_int_equal(check_pop3_status("-ERROR", &text), -1);
	assert_int_equal(check_pop3_status("220 smtp", &text), -1);
	assert_int_equal(check_pop3_status("", &text), -1);
}

struct greet_case {
	const char *line;
	enum check_greeting want;
	int proto;
};

static const struct greet_case greet_cases[] = {
    {"+OK POP3 ready", CHECK_GREET_POP3_OK, CHECK_PROTO_POP3},
    {"+OK", CHECK_GREET_POP3_OK, CHECK_PROTO_POP3},
    {"-ERR go away", CHECK_GREET_POP3_ERR, CHECK_PROTO_POP3},
    {"* OK [CAPABILITY IMAP4rev1] hi", CHECK_GREET_IMAP_OK, CHECK_PROTO_IMAP},
    {"* ok hi", CHECK_GREET_IMAP_OK, CHECK_PROTO_IMAP},
    {"* PREAUTH hi", CHECK_GREET_IMAP_PREAUTH, CHECK_PROTO_IMAP},
    {"* BYE busy", CHECK_GREET_IMAP_BYE, CHECK_PROTO_IMAP},
    {"220 mx ESMTP", CHECK_GREET_SMTP_OK, CHECK_PROTO_SMTP},
    {"220-mx ESMTP", CHECK_GREET_SMTP_OK, CHECK_PROTO_SMTP},
    {"554 no", CHECK_GREET_SMTP_REFUSED, CHECK_PROTO_SMTP},
    {"421 busy", CHECK_GREET_SMTP_REFUSED, CHECK_PROTO_SMTP},
    {"HTTP/1.1 400 Bad Request", CHECK_GREET_HTTP, -1},
    {"\x16\x03\x01", CHECK_GREET_TLS, -1},
    {"+OKAY", CHECK_GREET_UNKNOWN, -1},
    {"2200 x", CHECK_GREET_UNKNOWN, -1},
    {"250 x", CHECK_GREET_UNKNOWN, -1},
    {"SSH-2.0-OpenSSH", CHECK_GREET_UNKNOWN, -1},
    {"", CHECK_GREET_UNKNOWN, -1},
};

static void test_greeting_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(greet_cases) / sizeof(greet_cases[0]);
	     i++) {
		const struct greet_case *tc = &greet_cases[i];
		enum check_greeting g =
		    check_greeting_classify(tc->line, strlen(tc->line));

		if (g != tc->want)
			fail_msg("case %zu (%s): got %d", i, tc->line, g);
		assert_int_equal(check_greeting_proto(g), tc->proto);
	}
}

static void test_imap_tagged(void **state)
{
	enum check_imap_status st;
	const char *text;
	uint32_t n;

	(void)state;
	assert_int_equal(check_imap_tagged("c1 OK done", "c1", &st, &text), 1);
	assert_int_equal(st, CHECK_IMAP_OK);
	assert_string_equal(text, "done");
	assert_int_equal(check_imap_tagged("c1 no [AUTHENTICATIONFAILED] x",
					   "c1", &st, &text),
			 1);
	assert_int_equal(st, CHECK_IMAP_NO);
	assert_string_equal(text, "[AUTHENTICATIONFAILED] x");
	assert_int_equal(check_imap_tagged("c1 BAD", "c1", &st, &text), 1);
	assert_int_equal(st, CHECK_IMAP_BAD);
	assert_int_equal(check_imap_tagged("* 3 EXISTS", "c1", &st, &text), 0);
	assert_int_equal(check_imap_tagged("+ ", "c1", &st, &text), 0);
	assert_int_equal(check_imap_tagged("c2 OK", "c1", &st, &text), -1);
	assert_int_equal(check_imap_tagged("c11 OK", "c1", &st, &text), -1);
	assert_int_equal(check_imap_tagged("c1 OKAY", "c1", &st, &text), -1);
	assert_int_equal(check_imap_tagged("c1", "c1", &st, &text), -1);
	assert_int_equal(check_imap_exists("* 12 EXISTS", &n), 1);
	assert_int_equal(n, 12);
	assert_int_equal(check_imap_exists("* 12 RECENT", &n), 0);
	assert_int_equal(check_imap_exists("* 99999999999 EXISTS", &n), 0);
	assert_int_equal(check_imap_exists("* -1 EXISTS", &n), 0);
	assert_int_equal(check_imap_exists("* 1 EXISTS x", &n), 0);
}

struct imap_caps_case {
	const char *line;
	int ret;
	bool stls, plain, logindisabled, rev1;
	const char *text;
};

static const struct imap_caps_case imap_caps_cases[] = {
    {"* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN LOGINDISABLED", 1, true, true,
     true, true, "IMAP4rev1 STARTTLS AUTH=PLAIN LOGINDISABLED"},
    {"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] Dovecot ready.", 1, false,
     true, false, true, "IMAP4rev1 SASL-IR AUTH=PLAIN"},
    {"c1 OK [CAPABILITY IMAP4rev1 STARTTLS] Logged in", 1, true, false, false,
     true, "IMAP4rev1 STARTTLS"},
    {"* OK [CAPABILITY IMAP4rev1 no closing bracket", 0, false, false, false,
     false, ""},
    {"* OK hi", 0, false, false, false, false, ""},
    {"* 3 EXISTS", 0, false, false, false, false, ""},
    {"* CAPABILITY AUTH= X\x7f", 1, false, false, false, false, "AUTH= X\\x7f"},
};

static void test_imap_caps_table(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(imap_caps_cases) / sizeof(imap_caps_cases[0]); i++) {
		const struct imap_caps_case *tc = &imap_caps_cases[i];
		struct check_caps c;

		check_caps_reset(&c);
		if (check_caps_imap_line(&c, tc->line) != tc->ret)
			fail_msg("case %zu (%s)", i, tc->line);
		assert_int_equal(c.starttls, tc->stls);
		assert_int_equal(c.auth_plain, tc->plain);
		assert_int_equal(c.logindisabled, tc->logindisabled);
		assert_int_equal(c.imap4rev1, tc->rev1);
		assert_string_equal(c.text, tc->text);
	}
}

static void test_caps_text_bounded(void **state)
{
	struct check_caps c;
	char line[64];

	(void)state;
	check_caps_reset(&c);
	for (int i = 0; i < 1000; i++) {
		snprintf(line, sizeof(line), "CAP%d", i);
		check_caps_pop3_line(&c, line);
	}
	assert_true(strlen(c.text) <= CHECK_MAX_CAPS_TEXT);
	assert_memory_equal(c.text, "CAP0 CAP1 ", 10);
}

/* --- Codes, quoting, base64, escaping --------------------------------------
 */

static void test_resp_codes(void **state)
{
	char code[CHECK_MAX_CODE], enh[CHECK_MAX_CODE];

	(void)state;
	assert_int_equal(check_resp_code("[AUTH] Invalid", code, sizeof(code)),
			 1);
	assert_string_equal(code, "AUTH");
	assert_non_null(check_resp_code_explain(code));
	assert_int_equal(check_resp_code("[in-use] x", code, sizeof(code)), 1);
	assert_string_equal(code, "IN-USE");
	assert_non_null(strstr(check_resp_code_explain(code), "another"));
	assert_int_equal(check_resp_code("[SYS/TEMP] disk", code, sizeof(code)),
			 1);
	assert_non_null(check_resp_code_explain(code));
	assert_int_equal(check_resp_code("[LOGIN-DELAY] x", code, sizeof(code)),
			 1);
	assert_non_null(check_resp_code_explain(code));
	assert_int_equal(
	    check_resp_code("[AUTHENTICATIONFAILED] x", code, sizeof(code)), 1);
	assert_non_null(check_resp_code_explain(code));
	assert_int_equal(check_resp_code("[READ-WRITE", code, sizeof(code)), 1);
	assert_null(check_resp_code_explain(code));
	assert_int_equal(check_resp_code("no code", code, sizeof(code)), 0);
	assert_string_equal(code, "");
	assert_int_equal(check_resp_code("[]", code, sizeof(code)), 0);
	assert_int_equal(check_resp_code("[A\x01]", code, sizeof(code)), 0);
	assert_int_equal(check_resp_code("[ABCDEFGH]", code, 4), 0);
	assert_string_equal(code, "");

	assert_int_equal(check_smtp_enhanced("5.7.8 Bad", enh, sizeof(enh)), 1);
	assert_string_equal(enh, "5.7.8");
	assert_non_null(strstr(check_smtp_auth_explain(535, enh), "5.7.8"));
	assert_int_equal(check_smtp_enhanced("4.7.0", enh, sizeof(enh)), 1);
	assert_int_equal(check_smtp_enhanced("5.7", enh, sizeof(enh)), 0);
	assert_int_equal(check_smtp_enhanced("5.7.8x", enh, sizeof(enh)), 0);
	assert_int_equal(check_smtp_enhanced("6.0.0", enh, sizeof(enh)), 0);
	assert_int_equal(check_smtp_enhanced("5.7.1000", enh, sizeof(enh)), 0);
	assert_int_equal(
	    check_smtp_enhanced("Authentication", enh, sizeof(enh)), 0);
	assert_null(check_smtp_auth_explain(250, ""));
}

static void test_imap_quote(void **state)
{
	char q[16];

	(void)state;
	assert_int_equal(check_imap_quote(q, sizeof(q), "alice"), 0);
	assert_string_equal(q, "\"alice\"");
	assert_int_equal(check_imap_quote(q, sizeof(q), "a\"b\\c"), 0);
	assert_string_equal(q, "\"a\\\"b\\\\c\"");
	assert_int_equal(check_imap_quote(q, sizeof(q), ""), 0);
	assert_string_equal(q, "\"\"");
	assert_int_equal(check_imap_quote(q, sizeof(q), "a\r\nb"), -1);
	assert_int_equal(check_imap_quote(q, sizeof(q), "caf\xc3\xa9"), -1);
	/* exactly fits: 13 bytes + 2 quotes + NUL */
	assert_int_equal(check_imap_quote(q, sizeof(q), "1234567890123"), 0);
	assert_int_equal(check_imap_quote(q, sizeof(q), "12345678901234"), -1);
	assert_int_equal(check_imap_quote(q, sizeof(q), "123456789012\\"), -1);
}

static void test_base64(void **state)
{
	char b[64];

	(void)state;
	assert_int_equal(check_sasl_plain(b, sizeof(b), "alice", "secret", 6),
			 20);
	assert_string_equal(b, "AGFsaWNlAHNlY3JldA==");
	assert_int_equal(check_base64(b, sizeof(b), "", 0), 0);
	assert_string_equal(b, "");
	assert_int_equal(check_base64(b, sizeof(b), "f", 1), 4);
	assert_string_equal(b, "Zg==");
	assert_int_equal(check_base64(b, sizeof(b), "fo", 2), 4);
	assert_string_equal(b, "Zm8=");
	assert_int_equal(check_base64(b, sizeof(b), "foo", 3), 4);
	assert_string_equal(b, "Zm9v");
	assert_int_equal(check_base64(b, 4, "foo", 3), -1);
	assert_int_equal(check_base64(b, 5, "foo", 3), 4);
}

static void test_escape(void **state)
{
	char out[CHECK_MAX_ESCAPED], small[16];
	static char big[CHECK_MAX_LINE];

	(void)state;
	check_escape(out, sizeof(out), "a\x1b[31mb\x07\r\x9b", 10);
	assert_string_equal(out, "a\\x1b[31mb\\x07\\x0d\\x9b");
	memset(big, 'x', sizeof(big));
	check_escape(out, sizeof(out), big, sizeof(big));
	assert_true(strlen(out) < sizeof(out));
	assert_string_equal(out + strlen(out) - 3, "...");
	check_escape(small, sizeof(small), "\x01\x02\x03\x04\x05", 5);
	assert_true(strlen(small) < sizeof(small));
	assert_null(strchr(small, '\x01'));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_table),
	    cmocka_unit_test(test_url_long_names),
	    cmocka_unit_test(test_url_user_domain),
	    cmocka_unit_test(test_split_table),
	    cmocka_unit_test(test_split_overlong),
	    cmocka_unit_test(test_smtp_table),
	    cmocka_unit_test(test_smtp_too_many_lines),
	    cmocka_unit_test(test_pop3_capa_table),
	    cmocka_unit_test(test_pop3_status),
	    cmocka_unit_test(test_greeting_table),
	    cmocka_unit_test(test_imap_tagged),
	    cmocka_unit_test(test_imap_caps_table),
	    cmocka_unit_test(test_caps_text_bounded),
	    cmocka_unit_test(test_resp_codes),
	    cmocka_unit_test(test_imap_quote),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
