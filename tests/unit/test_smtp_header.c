/* Unit tests for the submission header checks (RFC 6409 section 8,
 * RFC 5322 address lists). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/smtp/smtp_header.h"

#define USER "alice@example.org"

struct from_case {
	const char *value;
	bool want;
};

static const struct from_case from_cases[] = {
    {" alice@example.org", true},
    {" ALICE@Example.ORG", true},
    {" Alice <alice@example.org>", true},
    {" \"Smith, Alice\" <alice@example.org>", true},
    {" alice@example.org (Alice)", true},
    {" <@relay.example:alice@example.org>", true},
    {" \"alice\"@example.org", true},
    {" team: alice@example.org;", true},
    {" bob@example.org", false},
    {" Bob <bob@example.org>, <alice@example.org>", false},
    {" <alice@example.org>, <bob@example.org>", false},
    {" alice@example.org <bob@example.org>", false},
    {" \"alice@example.org\" <bob@example.org>", false},
    {" alice@example.org.evil", false},
    {" ", false},
    {"", false},
    {" <alice@example.org", false},
    {" (unclosed alice@example.org", false},
};

static void test_from_lists(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(from_cases) / sizeof(from_cases[0]);
	     i++) {
		const struct from_case *c = &from_cases[i];
		bool got =
		    smtp_header_from_is(c->value, strlen(c->value), USER);

		if (got != c->want)
			fail_msg("From:%s: got %d, want %d", c->value, got,
				 c->want);
	}
}

struct capture {
	char out[8192];
	size_t len;
	int ends;
};

static void cap_out(void *ctx, const char *data, size_t len)
{
	struct capture *c = ctx;

	assert_true(c->len + len < sizeof(c->out));
	memcpy(c->out + c->len, data, len);
	c->len += len;
}

static void cap_end(void *ctx, bool have_id, bool have_date)
{
	struct capture *c = ctx;
	char line[64];

	c->ends++;
	snprintf(line, sizeof(line), "[end id=%d date=%d]", have_id, have_date);
	cap_out(ctx, line, strlen(line));
}

struct scan_case {
	const char *in;
	const char *out;
	bool mismatch;
};

static const struct scan_case scan_cases[] = {
    {"From: alice@example.org\r\nSubject: x\r\n\r\nbody\r\n",
     "From: alice@example.org\r\nSubject: x\r\n[end id=0 date=0]\r\n"
     "body\r\n",
     false},
    {"Message-ID: <a@b>\r\nDate: x\r\nFrom: <alice@example.org>\r\n\r\n"
     "From: bob@example.org\r\n",
     "Message-ID: <a@b>\r\nDate: x\r\nFrom: <alice@example.org>\r\n"
     "[end id=1 date=1]\r\nFrom: bob@example.org\r\n",
     false},
    /* a second From: field */
    {"From: alice@example.org\r\nFrom: bob@example.org\r\n\r\n",
     "From: alice@example.org\r\nFrom: bob@example.org\r\n"
     "[end id=0 date=0]\r\n",
     true},
    /* a folded list hiding another address */
    {"From: <alice@example.org>,\r\n <bob@example.org>\r\n\r\nx\r\n",
     "From: <alice@example.org>,\r\n <bob@example.org>\r\n"
     "[end id=0 date=0]\r\nx\r\n",
     true},
    /* obsolete white space before the colon */
    {"From : bob@example.org\r\n\r\n",
     "From : bob@example.org\r\n[end id=0 date=0]\r\n", true},
    /* all header, no empty line: the fields go before the tail */
    {"From: alice@example.org\r\nSubject: y",
     "From: alice@example.org\r\n[end id=0 date=0]Subject: y", false},
    /* no From: at all is not a mismatch */
    {"Subject: z\r\n\r\n", "Subject: z\r\n[end id=0 date=0]\r\n", false},
};

static void run_scan(const struct scan_case *c, size_t step)
{
	struct smtp_header_scan h;
	struct capture cap;
	size_t len = strlen(c->in);

	memset(&cap, 0, sizeof(cap));
	smtp_header_init(&h, USER, cap_out, cap_end, &cap);
	for (size_t i = 0; i < len; i += step)
		smtp_header_feed(&h, c->in + i,
				 len - i < step ? len - i : step);
	smtp_header_finish(&h);
	cap.out[cap.len] = '\0';
	if (strcmp(cap.out, c->out) != 0)
		fail_msg("step %zu: got '%s', want '%s'", step, cap.out,
			 c->out);
	assert_int_equal(cap.ends, 1);
	assert_int_equal(h.from_mismatch, c->mismatch);
}

/* Each case whole, then one byte at a time: the results must agree. */
static void test_scan_stream(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(scan_cases) / sizeof(scan_cases[0]);
	     i++) {
		run_scan(&scan_cases[i], 100000);
		run_scan(&scan_cases[i], 1);
	}
}

/* Without a user (sender_login_match = no) From: is not checked, and a
 * From: field must not reach the address comparison at all. */
static void test_scan_without_user(void **state)
{
	static const char in[] = "From: bob@example.org\r\n"
				 "From: carol@example.net\r\n"
				 "Message-ID: <x@y>\r\n\r\nbody\r\n";
	struct smtp_header_scan h;
	struct capture cap;

	(void)state;
	for (size_t step = 1; step <= sizeof(in); step += sizeof(in) - 1) {
		memset(&cap, 0, sizeof(cap));
		smtp_header_init(&h, NULL, cap_out, cap_end, &cap);
		for (size_t i = 0; i < sizeof(in) - 1; i += step)
			smtp_header_feed(&h, in + i,
					 sizeof(in) - 1 - i < step
					     ? sizeof(in) - 1 - i
					     : step);
		smtp_header_finish(&h);
		assert_false(h.from_mismatch);
		assert_int_equal(cap.ends, 1);
		cap.out[cap.len] = '\0';
		assert_non_null(strstr(cap.out, "[end id=1 date=0]"));
	}
}

/* Feeds in whole or in pieces of step octets, then finishes. */
static void scan_in_steps(struct smtp_header_scan *h, const char *in,
			  size_t len, size_t step)
{
	for (size_t i = 0; i < len; i += step)
		smtp_header_feed(h, in + i, len - i < step ? len - i : step);
	smtp_header_finish(h);
}

/* A header line longer than the scanner holds (long To: lists are real
 * mail) passes through unchanged, and the scan goes on after it: the
 * From: below it is still checked, the fields are still found. */
static void test_scan_overlong_line(void **state)
{
	static char in[4 * SMTP_MAX_TEXT_LINE];
	static char want[sizeof(in) + 64];
	static struct capture cap;
	const char *tail = "\r\nFrom: alice@example.org\r\nDate: x\r\n"
			   "Received: from a\r\n\r\nbody\r\n";
	const size_t steps[] = {sizeof(in), 1, 7, SMTP_MAX_TEXT_LINE};
	size_t long_len = 3 * SMTP_MAX_TEXT_LINE, len;
	struct smtp_header_scan h;

	(void)state;
	memset(in, 'x', long_len);
	memcpy(in, "To: ", 4);
	memcpy(in + long_len, tail, strlen(tail) + 1);
	len = strlen(in);
	/* the input unchanged, the end marker before the empty line */
	snprintf(want, sizeof(want), "%.*s[end id=0 date=1]\r\nbody\r\n",
		 (int)(len - strlen("\r\nbody\r\n")), in);
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		memset(&cap, 0, sizeof(cap));
		smtp_header_init(&h, USER, cap_out, cap_end, &cap);
		scan_in_steps(&h, in, len, steps[k]);
		assert_false(h.from_mismatch);
		assert_int_equal(h.received_count, 1);
		assert_int_equal(cap.ends, 1);
		assert_int_equal(cap.len, strlen(want));
		assert_memory_equal(cap.out, want, cap.len);
	}

	/* A From: line too long to hold, or a From: continued by one, is
	 * not checked half: it is a mismatch. */
	memcpy(in, "From: alice@example.org, ", 25);
	memset(&cap, 0, sizeof(cap));
	smtp_header_init(&h, USER, cap_out, cap_end, &cap);
	scan_in_steps(&h, in, len, 1);
	assert_true(h.from_mismatch);
	memcpy(in, "From: alice@example.org\r\n ", 27);
	memset(&cap, 0, sizeof(cap));
	smtp_header_init(&h, USER, cap_out, cap_end, &cap);
	scan_in_steps(&h, in, len, sizeof(in));
	assert_true(h.from_mismatch);
	assert_int_equal(cap.len, strlen(want));
}

/* Received: fields are counted in the header section only, in any case
 * and in the obsolete "Name :" form; not in the body. */
static void test_scan_received_count(void **state)
{
	static char in[8000];
	size_t n = 0;
	struct smtp_header_scan h;
	static struct capture cap;

	(void)state;
	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n,
				      "%s: from h%d\r\n\tby x\r\n",
				      i % 3 == 0   ? "Received"
				      : i % 3 == 1 ? "RECEIVED"
						   : "Received ",
				      i);
	n += (size_t)snprintf(in + n, sizeof(in) - n,
			      "X-Received: no\r\nSubject: s\r\n\r\n"
			      "Received: in the body\r\n");
	for (size_t step = 1; step <= n; step += n - 1) {
		memset(&cap, 0, sizeof(cap));
		smtp_header_init(&h, NULL, cap_out, cap_end, &cap);
		scan_in_steps(&h, in, n, step);
		assert_int_equal(h.received_count, 60);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_from_lists),
	    cmocka_unit_test(test_scan_stream),
	    cmocka_unit_test(test_scan_overlong_line),
	    cmocka_unit_test(test_scan_received_count),
	    cmocka_unit_test(test_scan_without_user),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
