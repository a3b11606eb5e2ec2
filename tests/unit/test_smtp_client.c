/*
 * Unit tests for the outbound SMTP client's pure parts: the reply parser
 * (multi-line replies, enhanced status codes, caps), EHLO keywords, the
 * DATA encoder, and routing. Every table case runs twice: the whole
 * input at once, then one byte at a time (pure parsers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "delivery/route.h"
#include "delivery/smtp_client.h"

struct reply_case {
	const char *input;
	int want; /* 1 reply, 0 incomplete, -1 error */
	unsigned code;
	const char *enhanced;
	const char *text;
	size_t lines;
	size_t consumed; /* 0: the whole input */
};

static const struct reply_case reply_cases[] = {
    {"220 mx.example ESMTP\r\n", 1, 220, "", "mx.example ESMTP", 1, 0},
    {"250 2.1.0 Ok\r\n", 1, 250, "2.1.0", "2.1.0 Ok", 1, 0},
    {"550 5.1.1 <x@y>: no such user\r\n", 1, 550, "5.1.1",
     "5.1.1 <x@y>: no such user", 1, 0},
    {"451 4.7.650 greylisted\r\n", 1, 451, "4.7.650", "4.7.650 greylisted", 1,
     0},
    /* the enhanced class must match the code's class */
    {"550 4.1.1 odd\r\n", 1, 550, "", "4.1.1 odd", 1, 0},
    {"550 5.1 short\r\n", 1, 550, "", "5.1 short", 1, 0},
    {"550 5.1234.1 long\r\n", 1, 550, "", "5.1234.1 long", 1, 0},
    {"550 5.1.1x\r\n", 1, 550, "", "5.1.1x", 1, 0},
    {"550 5.1.1\r\n", 1, 550, "5.1.1", "5.1.1", 1, 0},
    {"250\r\n", 1, 250, "", "", 1, 0},
    {"354 go ahead\n", 1, 354, "", "go ahead", 1, 0},
    {"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 1, 250, "",
     "mx.example\nPIPELINING\nSIZE 1000", 3, 0},
    /* a second reply stays for the next call */
    {"250 ok\r\n221 bye\r\n", 1, 250, "", "ok", 1, 8},
    {"250-first\r\n", 0, 0, NULL, NULL, 0, 0},
    {"250 no end", 0, 0, NULL, NULL, 0, 0},
    {"250-a\r\n251 b\r\n", -1, 0, NULL, NULL, 0, 0},
    {"25 short\r\n", -1, 0, NULL, NULL, 0, 0},
    {"abc\r\n", -1, 0, NULL, NULL, 0, 0},
    {"650 bad class\r\n", -1, 0, NULL, NULL, 0, 0},
    {"150 bad class\r\n", -1, 0, NULL, NULL, 0, 0},
    {"250*x\r\n", -1, 0, NULL, NULL, 0, 0},
    {"250 a\0b\r\n", -1, 0, NULL, NULL, 0, 0},
    {"\r\n", -1, 0, NULL, NULL, 0, 0},
};

/* Feeds in, whole or one byte at a time; returns the parser's result. */
static int feed(struct smtp_reply_parser *p, const char *in, size_t len,
		bool trickle, struct smtp_reply *r, size_t *consumed_r)
{
	const char *error = NULL;
	size_t off = 0, used;
	int rv = 0;

	while (off < len) {
		size_t n = trickle ? 1 : len - off;

		rv = smtp_reply_parse(p, in + off, n, &used, r, &error);
		if (rv < 0) {
			assert_non_null(error);
			return -1;
		}
		off += used;
		if (rv == 1)
			break;
		assert_int_equal(used, n);
	}
	*consumed_r = off;
	return rv;
}

static size_t case_len(const struct reply_case *c)
{
	/* The NUL case: its length runs to the CRLF after the NUL. */
	size_t n = strlen(c->input);

	if (strcmp(c->input, "250 a") == 0)
		n += 4;
	return n;
}

static void test_reply_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]);
	     i++) {
		const struct reply_case *c = &reply_cases[i];

		for (int trickle = 0; trickle < 2; trickle++) {
			struct smtp_reply_parser p;
			struct smtp_reply *r = malloc(sizeof(*r));
			size_t used, len = case_len(c);
			int rv;

			assert_non_null(r);
			smtp_reply_parser_init(&p);
			rv = feed(&p, c->input, len, trickle != 0, r, &used);
			if (rv != c->want)
				fail_msg("case %zu (%s) trickle %d: got %d", i,
					 c->input, trickle, rv);
			if (rv == 1) {
				assert_int_equal(r->code, c->code);
				assert_string_equal(r->enhanced, c->enhanced);
				assert_string_equal(r->text, c->text);
				assert_int_equal(r->line_count, c->lines);
				assert_int_equal(used, c->consumed ? c->consumed
								   : len);
			}
			free(r);
		}
	}
}

static void test_reply_then_next(void **state)
{
	struct smtp_reply_parser p;
	struct smtp_reply r;
	const char *in = "250 ok\r\n221 2.0.0 bye\r\n", *error;
	size_t used;

	(void)state;
	smtp_reply_parser_init(&p);
	assert_int_equal(
	    smtp_reply_parse(&p, in, strlen(in), &used, &r, &error), 1);
	assert_int_equal(used, 8);
	assert_int_equal(smtp_reply_parse(&p, in + used, strlen(in) - used,
					  &used, &r, &error),
			 1);
	assert_int_equal(r.code, 221);
	assert_string_equal(r.enhanced, "2.0.0");
}

/* INV-S3: a line over the cap, too many lines, too much text. */
static void test_reply_caps(void **state)
{
	struct smtp_reply_parser p;
	struct smtp_reply *r = malloc(sizeof(*r));
	char *big = malloc(SMTP_CLIENT_MAX_REPLY_LINE + 16);
	const char *error;
	size_t used, n;

	(void)state;
	assert_non_null(r);
	assert_non_null(big);
	/* exactly the cap (CRLF not counted... the CR is) fits */
	memset(big, 'a', SMTP_CLIENT_MAX_REPLY_LINE + 16);
	memcpy(big, "250 ", 4);
	big[SMTP_CLIENT_MAX_REPLY_LINE - 1] = '\r';
	big[SMTP_CLIENT_MAX_REPLY_LINE] = '\n';
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parse(&p, big,
					  SMTP_CLIENT_MAX_REPLY_LINE + 1, &used,
					  r, &error),
			 1);
	/* one byte more is refused, and the refusal sticks */
	memset(big, 'a', SMTP_CLIENT_MAX_REPLY_LINE + 16);
	memcpy(big, "250 ", 4);
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parse(&p, big,
					  SMTP_CLIENT_MAX_REPLY_LINE + 2, &used,
					  r, &error),
			 -1);
	assert_int_equal(
	    smtp_reply_parse(&p, "250 ok\r\n", 8, &used, r, &error), -1);

	/* too many continuation lines */
	smtp_reply_parser_init(&p);
	for (n = 0; n < SMTP_CLIENT_MAX_REPLY_LINES; n++)
		assert_int_equal(
		    smtp_reply_parse(&p, "250-x\r\n", 7, &used, r, &error), 0);
	assert_int_equal(smtp_reply_parse(&p, "250-x\r\n", 7, &used, r, &error),
			 -1);

	/* too much text in total (long lines, few of them) */
	smtp_reply_parser_init(&p);
	memset(big, 'b', SMTP_CLIENT_MAX_REPLY_LINE);
	memcpy(big, "250-", 4);
	big[1000] = '\r';
	big[1001] = '\n';
	{
		int rv = 0;

		for (n = 0; n < SMTP_CLIENT_MAX_REPLY_LINES && rv == 0; n++)
			rv = smtp_reply_parse(&p, big, 1002, &used, r, &error);
		assert_int_equal(rv, -1);
		assert_true(n * 997 > SMTP_CLIENT_MAX_REPLY_TEXT);
	}
	free(big);
	free(r);
}

struct ehlo_case {
	const char *input;
	struct smtp_ehlo want;
};

static const struct ehlo_case ehlo_cases[] = {
    {"250-mx.example greets you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
     "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
     "250-AUTH LOGIN PLAIN\r\n250 SMTPUTF8\r\n",
     {true, true, true, true, true, 10240000, true, true}},
    {"250 mx.example\r\n",
     {false, false, false, false, false, 0, false, false}},
    /* keywords are case-insensitive; the greeting line is not one */
    {"250-STARTTLS\r\n250-pipelining\r\n250 size\r\n",
     {true, false, false, false, true, 0, false, false}},
    /* prefixes and lookalikes are not the keyword */
    {"250-x\r\n250-PIPELININGX\r\n250-STARTTLSS\r\n250-XSIZE 5\r\n"
     "250-AUTH LOGIN CRAM-MD5\r\n250-AUTH=PLAINX\r\n250 SIZE 12x\r\n",
     {false, false, false, false, true, 0, false, false}},
    {"250-x\r\n250-AUTH=LOGIN PLAIN\r\n250 SIZE 99999999999999999999999\r\n",
     {false, false, false, false, true, 0, true, false}},
};

static void test_ehlo_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ehlo_cases) / sizeof(ehlo_cases[0]);
	     i++) {
		const struct ehlo_case *c = &ehlo_cases[i];

		for (int trickle = 0; trickle < 2; trickle++) {
			struct smtp_reply_parser p;
			struct smtp_reply *r = malloc(sizeof(*r));
			struct smtp_ehlo e;
			size_t used;

			assert_non_null(r);
			smtp_reply_parser_init(&p);
			assert_int_equal(feed(&p, c->input, strlen(c->input),
					      trickle != 0, r, &used),
					 1);
			smtp_ehlo_parse(r, &e);
			if (memcmp(&e, &c->want, sizeof(e)) != 0)
				fail_msg("EHLO case %zu trickle %d: "
					 "pipelining %d starttls %d 8bit %d "
					 "utf8 %d size %d/%llu auth %d",
					 i, trickle, e.pipelining, e.starttls,
					 e.eightbitmime, e.smtputf8, e.size,
					 (unsigned long long)e.size_max,
					 e.auth_plain);
			free(r);
		}
	}
}

struct enc_case {
	const char *in;
	const char *out; /* with the final ".\r\n" */
};

static const struct enc_case enc_cases[] = {
    {"", ".\r\n"},
    {"a\n", "a\r\n.\r\n"},
    {"a", "a\r\n.\r\n"},
    {".\n", "..\r\n.\r\n"},
    {"x\n.\n..\n.x\n", "x\r\n..\r\n...\r\n..x\r\n.\r\n"},
    {"a.b\n", "a.b\r\n.\r\n"},
    {"a\r\nb\n", "a\r\nb\r\n.\r\n"},
    {"\n\n", "\r\n\r\n.\r\n"},
    {"a\rb\n", "a\rb\r\n.\r\n"},
    {".", "..\r\n.\r\n"},
};

static void test_data_encoder(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(enc_cases) / sizeof(enc_cases[0]); i++) {
		const struct enc_case *c = &enc_cases[i];

		for (int trickle = 0; trickle < 2; trickle++) {
			struct smtp_data_encoder e;
			char out[256];
			size_t o = 0, len = strlen(c->in);

			smtp_data_encoder_init(&e);
			if (trickle) {
				for (size_t k = 0; k < len; k++)
					o += smtp_data_encode(&e, c->in + k, 1,
							      out + o);
			} else {
				o = smtp_data_encode(&e, c->in, len, out);
			}
			o += smtp_data_encode_end(&e, out + o);
			out[o] = '\0';
			assert_string_equal(out, c->out);
		}
	}
}

static void test_reply_format(void **state)
{
	struct smtp_reply_parser p;
	struct smtp_reply r;
	const char *in = "550-5.1.1 first\r\n550 second\x01\r\n", *error;
	char out[64], small[8];
	size_t used;

	(void)state;
	smtp_reply_parser_init(&p);
	assert_int_equal(
	    smtp_reply_parse(&p, in, strlen(in), &used, &r, &error), 1);
	assert_string_equal(smtp_reply_format(&r, out, sizeof(out)),
			    "550 5.1.1 first / second?");
	assert_string_equal(smtp_reply_format(&r, small, sizeof(small)),
			    "550 5.1");
	assert_int_equal(smtp_reply_class(&r), 5);
	assert_true(smtp_client_needs_utf8("j\xc3\xb6rg@example.org"));
	assert_false(smtp_client_needs_utf8("jorg@example.org"));
}

static void test_route(void **state)
{
	struct config *cfg;
	struct route r;
	const char *error;

	(void)state;
	cfg = config_default("/tmp");
	assert_non_null(cfg);
	assert_int_equal(
	    route_for_domain(cfg, CONFIG_EMBEDDED_DOMAIN, &r, &error), 0);
	assert_int_equal(r.kind, ROUTE_LOCAL);
	assert_int_equal(route_for_domain(cfg, "remote.example", &r, &error),
			 0);
	assert_int_equal(r.kind, ROUTE_MX);
	assert_string_equal(r.host, "remote.example");
	assert_int_equal(r.port, cfg->mx_port);
	assert_string_equal(r.key, "mx:remote.example");
	assert_false(r.auth);
	config_free(&cfg);
}

static void test_route_config(void **state)
{
	char path[] = "/tmp/test_smtp_client_XXXXXX";
	int fd = mkstemp(path);
	FILE *f;
	struct config *cfg = NULL;
	struct route r;
	const char *error;

	(void)state;
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "hostname = mx.example.org\ndomains = example.org\n"
		   "data_dir = /tmp\nusers_file = /tmp/u\nuser = nobody\n"
		   "transport.t.example = 127.0.0.1:2525\n"
		   "relay_host = smart.example:587\n"
		   "relay_auth = /tmp/relay_auth\n");
	fclose(f);
	assert_int_equal(config_load(path, stderr, &cfg), 0);
	unlink(path);
	assert_int_equal(route_for_domain(cfg, "t.example", &r, &error), 0);
	assert_int_equal(r.kind, ROUTE_TRANSPORT);
	assert_string_equal(r.host, "127.0.0.1");
	assert_int_equal(r.port, 2525);
	assert_false(r.auth);
	assert_string_equal(r.key, "host:127.0.0.1:2525");
	assert_int_equal(route_for_domain(cfg, "other.example", &r, &error), 0);
	assert_int_equal(r.kind, ROUTE_RELAY);
	assert_string_equal(r.host, "smart.example");
	assert_int_equal(r.port, 587);
	assert_true(r.auth);
	assert_int_equal(route_for_domain(cfg, "example.org", &r, &error), 0);
	assert_int_equal(r.kind, ROUTE_LOCAL);
	config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_table),
	    cmocka_unit_test(test_reply_then_next),
	    cmocka_unit_test(test_reply_caps),
	    cmocka_unit_test(test_ehlo_table),
	    cmocka_unit_test(test_data_encoder),
	    cmocka_unit_test(test_reply_format),
	    cmocka_unit_test(test_route),
	    cmocka_unit_test(test_route_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
