/* Unit tests for the SMTP command parser (RFC 5321 section 4.1, RFC 1870,
 * RFC 6152, RFC 6531, RFC 3030, RFC 4954). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/smtp/smtp_parse.h"

/* Path flags a case expects. */
#define P_NULL (1u << 0)
#define P_PM (1u << 1)
#define P_QUOTED (1u << 2)
#define P_LITERAL (1u << 3)
#define P_UTF8 (1u << 4)
#define P_ROUTED (1u << 5)

struct parse_case {
	const char *line;
	size_t len; /* 0: strlen(line) */
	unsigned flags;
	enum smtp_parse_error want;
	const char *reply; /* the reply's code and enhanced code */
	enum smtp_cmd cmd;
	const char *local, *domain, *canon;
	unsigned path;
	const char *arg, *arg2;
	bool literal_arg;
	bool size_set;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	uint64_t bdat;
	bool last;
};

#define OK SMTP_PARSE_OK
#define E_SYNTAX .want = SMTP_PARSE_SYNTAX, .reply = "501 5.5.4"
#define E_SENDER .want = SMTP_PARSE_BAD_SENDER, .reply = "501 5.1.7"
#define E_RCPT .want = SMTP_PARSE_BAD_RCPT, .reply = "501 5.1.3"
#define E_UNKNOWN .want = SMTP_PARSE_UNKNOWN, .reply = "500 5.5.2"
#define E_PARAM .want = SMTP_PARSE_BAD_PARAM, .reply = "555 5.5.4"
#define E_ASCII .want = SMTP_PARSE_NON_ASCII, .reply = "553 5.6.7"
#define E_BIG .want = SMTP_PARSE_TOO_BIG, .reply = "552 5.3.4"
#define MAIL SMTP_CMD_MAIL
#define RCPT SMTP_CMD_RCPT

static const struct parse_case cases[] = {
    /* HELO / EHLO */
    {.line = "HELO mail.example.com",
     .cmd = SMTP_CMD_HELO,
     .arg = "mail.example.com"},
    {.line = "helo mail.example.com  ",
     .cmd = SMTP_CMD_HELO,
     .arg = "mail.example.com"},
    {.line = "EHLO mail.example.com",
     .cmd = SMTP_CMD_EHLO,
     .arg = "mail.example.com"},
    {.line = "EhLo [192.0.2.1]",
     .cmd = SMTP_CMD_EHLO,
     .arg = "[192.0.2.1]",
     .literal_arg = true},
    {.line = "EHLO [IPv6:2001:db8::1]",
     .cmd = SMTP_CMD_EHLO,
     .arg = "[IPv6:2001:db8::1]",
     .literal_arg = true},
    {.line = "EHLO my_host.lan", .cmd = SMTP_CMD_EHLO, .arg = "my_host.lan"},
    {.line = "EHLO DESKTOP-1A2B", .cmd = SMTP_CMD_EHLO, .arg = "DESKTOP-1A2B"},
    {.line = "EHLO [IPv6:2001:db8::g]", E_SYNTAX, .cmd = SMTP_CMD_EHLO},
    {.line = "EHLO [300.1.1.1]", E_SYNTAX, .cmd = SMTP_CMD_EHLO},
    {.line = "EHLO 192.0.2.1]", E_SYNTAX, .cmd = SMTP_CMD_EHLO},
    {.line = "EHLO", E_SYNTAX, .cmd = SMTP_CMD_EHLO},
    {.line = "HELO ", E_SYNTAX, .cmd = SMTP_CMD_HELO},
    {.line = "EHLO -bad.example", E_SYNTAX, .cmd = SMTP_CMD_EHLO},
    {.line = "EHLO bad-.example", E_SYNTAX, .cmd = SMTP_CMD_EHLO},
    {.line = "EHLO a..example", E_SYNTAX, .cmd = SMTP_CMD_EHLO},
    {.line = "EHLO host extra", E_SYNTAX, .cmd = SMTP_CMD_EHLO},
    {.line = "EHLO ex\xc3\xa4mple.com", E_SYNTAX, .cmd = SMTP_CMD_EHLO},
    /* Commands without arguments, or with optional text */
    {.line = "DATA", .cmd = SMTP_CMD_DATA},
    {.line = "data ", .cmd = SMTP_CMD_DATA},
    {.line = "DATA now", E_SYNTAX, .cmd = SMTP_CMD_DATA},
    {.line = "RSET", .cmd = SMTP_CMD_RSET},
    {.line = "RSET x", E_SYNTAX, .cmd = SMTP_CMD_RSET},
    {.line = "QUIT", .cmd = SMTP_CMD_QUIT},
    {.line = "STARTTLS", .cmd = SMTP_CMD_STARTTLS},
    {.line = "STARTTLS x", E_SYNTAX, .cmd = SMTP_CMD_STARTTLS},
    {.line = "NOOP", .cmd = SMTP_CMD_NOOP},
    {.line = "NOOP hello there", .cmd = SMTP_CMD_NOOP, .arg = "hello there"},
    {.line = "HELP", .cmd = SMTP_CMD_HELP},
    {.line = "HELP MAIL", .cmd = SMTP_CMD_HELP, .arg = "MAIL"},
    {.line = "VRFY alice", .cmd = SMTP_CMD_VRFY, .arg = "alice"},
    {.line = "VRFY", E_SYNTAX, .cmd = SMTP_CMD_VRFY},
    {.line = "EXPN staff", .cmd = SMTP_CMD_EXPN, .arg = "staff"},
    {.line = "EXPN", E_SYNTAX, .cmd = SMTP_CMD_EXPN},
    /* BDAT (RFC 3030) */
    {.line = "BDAT 1000", .cmd = SMTP_CMD_BDAT, .bdat = 1000},
    {.line = "BDAT 0 LAST", .cmd = SMTP_CMD_BDAT, .bdat = 0, .last = true},
    {.line = "bdat 5 last", .cmd = SMTP_CMD_BDAT, .bdat = 5, .last = true},
    {.line = "BDAT 18446744073709551615",
     .cmd = SMTP_CMD_BDAT,
     .bdat = UINT64_MAX},
    {.line = "BDAT 18446744073709551616", E_SYNTAX, .cmd = SMTP_CMD_BDAT},
    {.line = "BDAT 000000000000000000001", E_SYNTAX, .cmd = SMTP_CMD_BDAT},
    {.line = "BDAT", E_SYNTAX, .cmd = SMTP_CMD_BDAT},
    {.line = "BDAT x", E_SYNTAX, .cmd = SMTP_CMD_BDAT},
    {.line = "BDAT -1", E_SYNTAX, .cmd = SMTP_CMD_BDAT},
    {.line = "BDAT +1", E_SYNTAX, .cmd = SMTP_CMD_BDAT},
    {.line = "BDAT 1 FIRST", E_SYNTAX, .cmd = SMTP_CMD_BDAT},
    {.line = "BDAT 1 LASTLY", E_SYNTAX, .cmd = SMTP_CMD_BDAT},
    {.line = "BDAT 1 LAST x", E_SYNTAX, .cmd = SMTP_CMD_BDAT},
    /* AUTH (RFC 4954) */
    {.line = "AUTH PLAIN", .cmd = SMTP_CMD_AUTH, .arg = "PLAIN"},
    {.line = "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
     .cmd = SMTP_CMD_AUTH,
     .arg = "PLAIN",
     .arg2 = "AGFsaWNlAHNlY3JldA=="},
    {.line = "AUTH LOGIN =", .cmd = SMTP_CMD_AUTH, .arg = "LOGIN", .arg2 = "="},
    {.line = "auth scram-sha-256",
     .cmd = SMTP_CMD_AUTH,
     .arg = "scram-sha-256"},
    {.line = "AUTH", E_SYNTAX, .cmd = SMTP_CMD_AUTH},
    {.line = "AUTH PLAIN a b", E_SYNTAX, .cmd = SMTP_CMD_AUTH},
    {.line = "AUTH PLAIN !!!", E_SYNTAX, .cmd = SMTP_CMD_AUTH},
    {.line = "AUTH PLAIN ab=c", E_SYNTAX, .cmd = SMTP_CMD_AUTH},
    {.line = "AUTH ABCDEFGHIJKLMNOPQRSTU", E_SYNTAX, .cmd = SMTP_CMD_AUTH},
    {.line = "AUTH ABCDEFGHIJKLMNOPQRST",
     .cmd = SMTP_CMD_AUTH,
     .arg = "ABCDEFGHIJKLMNOPQRST"},
    /* Unknown */
    {.line = "", E_UNKNOWN, .cmd = SMTP_CMD_COUNT},
    {.line = "XYZZY", E_UNKNOWN, .cmd = SMTP_CMD_COUNT},
    {.line = " NOOP", E_UNKNOWN, .cmd = SMTP_CMD_COUNT},
    {.line = "NOOPS", E_UNKNOWN, .cmd = SMTP_CMD_COUNT},
    {.line = "MAILFROM:<a@example.com>", E_UNKNOWN, .cmd = SMTP_CMD_COUNT},
    {.line = "MAIL\tFROM:<a@example.com>", E_UNKNOWN, .cmd = SMTP_CMD_COUNT},
    /* MAIL: verb and keyword */
    {.line = "MAIL FROM:<alice@example.com>",
     .cmd = MAIL,
     .local = "alice",
     .domain = "example.com",
     .canon = "alice@example.com"},
    {.line = "mail from:<Alice@Example.COM>",
     .cmd = MAIL,
     .local = "Alice",
     .domain = "Example.COM",
     .canon = "Alice@example.com"},
    {.line = "MAIL FROM: <alice@example.com>",
     .cmd = MAIL,
     .local = "alice",
     .domain = "example.com"},
    {.line = "MAIL  FROM:<alice@example.com>",
     .cmd = MAIL,
     .local = "alice",
     .domain = "example.com"},
    {.line = "MAIL FROM <alice@example.com>", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL TO:<alice@example.com>", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:alice@example.com", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<alice@example.com", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<alice@example.com>SIZE=1", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<alice@example.com> <x>", E_SYNTAX, .cmd = MAIL},
    /* Null path, postmaster */
    {.line = "MAIL FROM:<>", .cmd = MAIL, .path = P_NULL, .canon = ""},
    {.line = "MAIL FROM:<> SIZE=1000",
     .cmd = MAIL,
     .path = P_NULL,
     .size_set = true,
     .size = 1000},
    {.line = "MAIL FROM:<postmaster>", E_SENDER, .cmd = MAIL},
    {.line = "RCPT TO:<>", E_RCPT, .cmd = RCPT},
    {.line = "RCPT TO:<Postmaster>",
     .cmd = RCPT,
     .local = "Postmaster",
     .path = P_PM,
     .canon = "postmaster"},
    {.line = "RCPT TO:<postmaster@Example.com>",
     .cmd = RCPT,
     .local = "postmaster",
     .domain = "Example.com",
     .canon = "postmaster@example.com"},
    {.line = "RCPT TO:<postmasterx>", E_RCPT, .cmd = RCPT},
    /* Parameters */
    {.line = "MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME",
     .cmd = MAIL,
     .local = "a",
     .domain = "b.example",
     .size_set = true,
     .size = 1000,
     .body = SMTP_BODY_8BITMIME},
    {.line = "MAIL FROM:<a@b.example> body=binarymime size=0",
     .cmd = MAIL,
     .local = "a",
     .domain = "b.example",
     .size_set = true,
     .size = 0,
     .body = SMTP_BODY_BINARYMIME},
    {.line = "MAIL FROM:<a@b.example> BODY=7BIT",
     .cmd = MAIL,
     .local = "a",
     .domain = "b.example",
     .body = SMTP_BODY_7BIT},
    {.line = "MAIL FROM:<a@b.example>  BODY=7BIT  ",
     .cmd = MAIL,
     .local = "a",
     .domain = "b.example",
     .body = SMTP_BODY_7BIT},
    {.line = "MAIL FROM:<a@b.example> BODY=9BIT", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> BODY", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> SIZE=18446744073709551615",
     .cmd = MAIL,
     .local = "a",
     .domain = "b.example",
     .size_set = true,
     .size = UINT64_MAX},
    {.line = "MAIL FROM:<a@b.example> SIZE=18446744073709551616",
     E_BIG,
     .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> SIZE=99999999999999999999",
     E_BIG,
     .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> SIZE=123456789012345678901",
     E_SYNTAX,
     .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> SIZE=", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> SIZE", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> SIZE=12a", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> SIZE=-1", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> SIZE=1 SIZE=2", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> SIZE==1", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> SMTPUTF8",
     .cmd = MAIL,
     .local = "a",
     .domain = "b.example",
     .smtputf8 = true},
    {.line = "MAIL FROM:<a@b.example> SMTPUTF8=yes", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> AUTH=<>",
     .cmd = MAIL,
     .local = "a",
     .domain = "b.example"},
    /* DSN is not advertised: its parameters get 555 (RFC 5321 4.1.1.11) */
    {.line = "MAIL FROM:<a@b.example> AUTH=<> RET=HDRS ENVID=QQ314159",
     E_PARAM,
     .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> RET", E_PARAM, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> NOTIFY=NEVER", E_PARAM, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> X-FOO=bar", E_PARAM, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> XFOO", E_PARAM, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> =x", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> -X=1", E_SYNTAX, .cmd = MAIL},
    {.line = "MAIL FROM:<a@b.example> ENVID=\xc3\xa4", E_SYNTAX, .cmd = MAIL},
    {.line = "RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE "
	     "ORCPT=rfc822;b@example.com",
     E_PARAM,
     .cmd = RCPT},
    {.line = "RCPT TO:<b@example.com> SIZE=1", E_PARAM, .cmd = RCPT},
    {.line = "RCPT TO:<b@example.com> SMTPUTF8", E_PARAM, .cmd = RCPT},
    {.line = "RCPT TO:<b@example.com> BODY=8BITMIME", E_PARAM, .cmd = RCPT},
    /* RCPT keyword */
    {.line = "RCPT TO:<bob@example.com>",
     .cmd = RCPT,
     .local = "bob",
     .domain = "example.com",
     .canon = "bob@example.com"},
    {.line = "rcpt to: <bob@example.com>",
     .cmd = RCPT,
     .local = "bob",
     .domain = "example.com"},
    {.line = "RCPT FROM:<bob@example.com>", E_SYNTAX, .cmd = RCPT},
    {.line = "RCPT TO:bob@example.com", E_RCPT, .cmd = RCPT},
    {.line = "RCPT TO:<bob>", E_RCPT, .cmd = RCPT},
    /* Source routes: checked, dropped (INV-R1) */
    {.line = "MAIL FROM:<@a.example,@b.example:user@c.example>",
     .cmd = MAIL,
     .local = "user",
     .domain = "c.example",
     .path = P_ROUTED,
     .canon = "user@c.example"},
    {.line = "RCPT TO:<@a.example:user@c.example>",
     .cmd = RCPT,
     .local = "user",
     .domain = "c.example",
     .path = P_ROUTED},
    {.line = "MAIL FROM:<@a.example,b.example:user@c.example>",
     E_SENDER,
     .cmd = MAIL},
    {.line = "MAIL FROM:<@:user@c.example>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<@a.example user@c.example>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<@a.example:>", E_SENDER, .cmd = MAIL},
    {.line = "RCPT TO:<@example.com>", E_RCPT, .cmd = RCPT},
    /* Quoted local parts */
    {.line = "MAIL FROM:<\"john doe\"@example.com>",
     .cmd = MAIL,
     .local = "john doe",
     .domain = "example.com",
     .path = P_QUOTED,
     .canon = "\"john doe\"@example.com"},
    {.line = "MAIL FROM:<\"alice\"@example.com>",
     .cmd = MAIL,
     .local = "alice",
     .domain = "example.com",
     .path = P_QUOTED,
     .canon = "alice@example.com"},
    {.line = "MAIL FROM:<\"a\\\"b\\\\c\"@example.com>",
     .cmd = MAIL,
     .local = "a\"b\\c",
     .domain = "example.com",
     .path = P_QUOTED,
     .canon = "\"a\\\"b\\\\c\"@example.com"},
    {.line = "MAIL FROM:<\"\\a\"@example.com>",
     .cmd = MAIL,
     .local = "a",
     .domain = "example.com",
     .path = P_QUOTED,
     .canon = "a@example.com"},
    {.line = "MAIL FROM:<\"\"@example.com>",
     .cmd = MAIL,
     .local = "",
     .domain = "example.com",
     .path = P_QUOTED,
     .canon = "\"\"@example.com"},
    {.line = "RCPT TO:<\"a@b\"@example.com>",
     .cmd = RCPT,
     .local = "a@b",
     .domain = "example.com",
     .path = P_QUOTED,
     .canon = "\"a@b\"@example.com"},
    {.line = "RCPT TO:<\"a.b.\"@example.com>",
     .cmd = RCPT,
     .local = "a.b.",
     .domain = "example.com",
     .path = P_QUOTED,
     .canon = "\"a.b.\"@example.com"},
    {.line = "MAIL FROM:<\"unterminated@example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<\"a\"b@example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<\"a\tb\"@example.com>", E_SENDER, .cmd = MAIL},
    /* '%' and '!' are reported literally (INV-R1) */
    {.line = "RCPT TO:<user%other.example@example.com>",
     .cmd = RCPT,
     .local = "user%other.example",
     .domain = "example.com",
     .canon = "user%other.example@example.com"},
    {.line = "RCPT TO:<other.example!user@example.com>",
     .cmd = RCPT,
     .local = "other.example!user",
     .domain = "example.com"},
    /* Dot-strings */
    {.line = "MAIL FROM:<first.last+tag@example.com>",
     .cmd = MAIL,
     .local = "first.last+tag",
     .domain = "example.com"},
    {.line = "MAIL FROM:<.user@example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<user.@example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<us..er@example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<us(er@example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<us er@example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<@example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<user@>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<user@@example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<user>", E_SENDER, .cmd = MAIL},
    /* Domains */
    {.line = "MAIL FROM:<u@example..com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@example.com.>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@.example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@-example.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@example-.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@exa_mple.com>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@x-1.example>",
     .cmd = MAIL,
     .local = "u",
     .domain = "x-1.example"},
    {.line = "MAIL FROM:<u@localhost>",
     .cmd = MAIL,
     .local = "u",
     .domain = "localhost"},
    /* Address literals (RFC 5321 section 4.1.3) */
    {.line = "MAIL FROM:<u@[192.0.2.1]>",
     .cmd = MAIL,
     .local = "u",
     .domain = "[192.0.2.1]",
     .path = P_LITERAL,
     .canon = "u@[192.0.2.1]"},
    {.line = "RCPT TO:<u@[IPv6:2001:DB8::1]>",
     .cmd = RCPT,
     .local = "u",
     .domain = "[IPv6:2001:DB8::1]",
     .path = P_LITERAL,
     .canon = "u@[ipv6:2001:db8::1]"},
    {.line = "RCPT TO:<u@[IPv6:::ffff:192.0.2.1]>",
     .cmd = RCPT,
     .local = "u",
     .domain = "[IPv6:::ffff:192.0.2.1]",
     .path = P_LITERAL},
    {.line = "RCPT TO:<u@[IPv6:1:2:3:4:5:6:7:8]>",
     .cmd = RCPT,
     .local = "u",
     .domain = "[IPv6:1:2:3:4:5:6:7:8]",
     .path = P_LITERAL},
    {.line = "RCPT TO:<u@[IPv6:1:2:3:4:5:6:7:8:9]>", E_RCPT, .cmd = RCPT},
    {.line = "RCPT TO:<u@[IPv6:fe80::1%eth0]>", E_RCPT, .cmd = RCPT},
    {.line = "MAIL FROM:<u@[192.0.2.256]>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@[192.0.2]>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@[192.0.2.1.5]>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@[0192.0.2.1]>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@[x-tag:content]>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@[]>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@[192.0.2.1>", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<u@[192.0.2.1]x>", E_SENDER, .cmd = MAIL},
    /* SMTPUTF8 (RFC 6531) */
    {.line = "MAIL FROM:<j\xc3\xb6"
	     "e@example.com>",
     E_ASCII,
     .cmd = MAIL},
    {.line = "MAIL FROM:<j\xc3\xb6"
	     "e@example.com> SMTPUTF8",
     .cmd = MAIL,
     .local = "j\xc3\xb6"
	      "e",
     .domain = "example.com",
     .path = P_UTF8,
     .smtputf8 = true},
    {.line = "MAIL FROM:<joe@ex\xc3\xa4mple.com> SMTPUTF8",
     .cmd = MAIL,
     .local = "joe",
     .domain = "ex\xc3\xa4mple.com",
     .path = P_UTF8,
     .smtputf8 = true,
     .canon = "joe@ex\xc3\xa4mple.com"},
    {.line = "MAIL FROM:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90."
	     "\xe5\xb9\xbf\xe5\x91\x8a> SMTPUTF8",
     .cmd = MAIL,
     .local = "\xe7\x94\xa8\xe6\x88\xb7",
     .domain = "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
     .path = P_UTF8,
     .smtputf8 = true},
    {.line = "RCPT TO:<\"j\xc3\xb6 e\"@example.com>",
     .flags = SMTP_PARSE_F_UTF8,
     .cmd = RCPT,
     .local = "j\xc3\xb6 e",
     .domain = "example.com",
     .path = P_UTF8 | P_QUOTED},
    {.line = "RCPT TO:<b\xc3\xb6@example.com>", E_ASCII, .cmd = RCPT},
    {.line = "RCPT TO:<b\xc3\xb6@example.com>",
     .flags = SMTP_PARSE_F_UTF8,
     .cmd = RCPT,
     .local = "b\xc3\xb6",
     .domain = "example.com",
     .path = P_UTF8},
    {.line = "RCPT TO:<@r\xc3\xb6.example:b@example.com>",
     E_ASCII,
     .cmd = RCPT},
    /* Invalid UTF-8 is a syntax error even with SMTPUTF8 */
    {.line = "MAIL FROM:<j\xc3\x28@example.com> SMTPUTF8",
     E_SENDER,
     .cmd = MAIL},
    {.line = "MAIL FROM:<j\xc0\xaf@example.com> SMTPUTF8",
     E_SENDER,
     .cmd = MAIL},
    {.line = "MAIL FROM:<j\xe0\x80\xaf@example.com> SMTPUTF8",
     E_SENDER,
     .cmd = MAIL},
    {.line = "MAIL FROM:<j\xed\xa0\x80@example.com> SMTPUTF8",
     E_SENDER,
     .cmd = MAIL},
    {.line = "MAIL FROM:<j\xf4\x90\x80\x80@example.com> SMTPUTF8",
     E_SENDER,
     .cmd = MAIL},
    {.line = "MAIL FROM:<j\xc2\x85@example.com> SMTPUTF8",
     E_SENDER,
     .cmd = MAIL},
    {.line = "MAIL FROM:<j\xff@example.com> SMTPUTF8", E_SENDER, .cmd = MAIL},
    {.line = "MAIL FROM:<j\xc3@example.com> SMTPUTF8", E_SENDER, .cmd = MAIL},
    {.line = "RCPT TO:<b\xc3@example.com>",
     .flags = SMTP_PARSE_F_UTF8,
     E_RCPT,
     .cmd = RCPT},
    /* Bare CR, LF and NUL (INV-S2) */
    /* A NUL is a syntax error in what was sent (501), not an unknown
     * command; the verb is still reported. */
    {.line = "MAIL FROM:<a\0b@example.com>",
     .len = 28,
     .want = SMTP_PARSE_NUL,
     .reply = "501 5.5.2",
     .cmd = MAIL},
    {.line = "\0HELO x",
     .len = 7,
     .want = SMTP_PARSE_NUL,
     .reply = "501 5.5.2",
     .cmd = SMTP_CMD_COUNT},
    {.line = "BDAT 1\0",
     .len = 7,
     .want = SMTP_PARSE_NUL,
     .reply = "501 5.5.2",
     .cmd = SMTP_CMD_BDAT},
    {.line = "RCPT TO:<a@example.com>\rRCPT TO:<b@example.com>",
     .want = SMTP_PARSE_BARE_EOL,
     .reply = "500 5.5.2",
     .cmd = RCPT},
    {.line = "NOOP a\nb",
     .want = SMTP_PARSE_BARE_EOL,
     .reply = "500 5.5.2",
     .cmd = SMTP_CMD_NOOP},
    {.line = "MAIL FROM:<\"a\rb\"@example.com>",
     .want = SMTP_PARSE_BARE_EOL,
     .reply = "500 5.5.2",
     .cmd = MAIL},
};

static void check_str(const char *what, const char *line, const char *got,
		      size_t got_len, const char *want)
{
	if (want == NULL)
		want = "";
	if (got == NULL)
		got = "";
	if (strlen(got) != got_len || strcmp(got, want) != 0)
		fail_msg("case '%s': %s is '%s' (%zu), want '%s'", line, what,
			 got, got_len, want);
}

static void check_ok(const struct parse_case *c, const struct smtp_command *cmd)
{
	const struct smtp_path *p = &cmd->path;
	unsigned flags = (p->null ? P_NULL : 0) | (p->postmaster ? P_PM : 0) |
			 (p->quoted ? P_QUOTED : 0) |
			 (p->literal ? P_LITERAL : 0) | (p->utf8 ? P_UTF8 : 0) |
			 (p->routed ? P_ROUTED : 0);
	char canon[SMTP_MAILBOX_BUF_SIZE];

	check_str("local", c->line, p->local, p->local_len, c->local);
	check_str("domain", c->line, p->domain, p->domain_len, c->domain);
	if (flags != c->path)
		fail_msg("case '%s': path flags %#x, want %#x", c->line, flags,
			 c->path);
	if (c->arg == NULL) {
		assert_null(cmd->arg);
		assert_int_equal(cmd->arg_len, 0);
	} else {
		check_str("arg", c->line, cmd->arg, cmd->arg_len, c->arg);
	}
	if (c->arg2 == NULL)
		assert_null(cmd->arg2);
	else
		check_str("arg2", c->line, cmd->arg2, cmd->arg2_len, c->arg2);
	assert_int_equal(cmd->arg_literal, c->literal_arg);
	assert_int_equal(cmd->params.size_set, c->size_set);
	assert_int_equal(cmd->params.size, c->size);
	assert_int_equal(cmd->params.body, c->body);
	assert_int_equal(cmd->params.smtputf8, c->smtputf8);
	assert_int_equal(cmd->bdat_size, c->bdat);
	assert_int_equal(cmd->bdat_last, c->last);
	if (c->canon != NULL) {
		int n = smtp_path_canonical(p, false, canon, sizeof(canon));

		if (n < 0 || strcmp(canon, c->canon) != 0 ||
		    (size_t)n != strlen(c->canon))
			fail_msg("case '%s': canonical '%s', want '%s'",
				 c->line, n < 0 ? "(error)" : canon, c->canon);
	}
}

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->line);
		/* Exactly len + 1 bytes, so ASan sees any overread. */
		char *line = malloc(len + 1);
		struct smtp_command cmd;
		const char *error = (const char *)1;
		enum smtp_parse_error got;

		assert_non_null(line);
		memcpy(line, c->line, len);
		line[len] = 'X'; /* the parser must set the NUL itself */
		got = smtp_parse_command(line, len, c->flags, &cmd, &error);
		if (got != c->want)
			fail_msg("case '%s': got %d (%s), want %d", c->line,
				 got, error != NULL ? error : "-", c->want);
		if (cmd.cmd != c->cmd)
			fail_msg("case '%s': cmd %d, want %d", c->line, cmd.cmd,
				 c->cmd);
		if (got == SMTP_PARSE_OK) {
			assert_null(error);
			check_ok(c, &cmd);
		} else {
			assert_non_null(error);
			if (strncmp(error, c->reply, strlen(c->reply)) != 0 ||
			    error[strlen(c->reply)] != ' ')
				fail_msg("case '%s': reply '%s', want '%s ...'",
					 c->line, error, c->reply);
			/* No partial result survives an error. */
			assert_int_equal(cmd.path.local_len, 0);
			assert_int_equal(cmd.path.domain_len, 0);
			assert_null(cmd.arg);
			assert_false(cmd.params.size_set);
		}
		free(line);
	}
}

/* Repeats c n times into a static buffer. */
static const char *rep(char c, size_t n)
{
	static char buf[4][1024];
	static int which;
	char *b = buf[which++ % 4];

	assert_true(n < sizeof(buf[0]));
	memset(b, c, n);
	b[n] = '\0';
	return b;
}

static enum smtp_parse_error parse_fmt(struct smtp_command *cmd,
				       const char **error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum smtp_parse_error parse_fmt(struct smtp_command *cmd,
				       const char **error, const char *fmt, ...)
{
	static char line[16384];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(line));
	return smtp_parse_command(line, (size_t)n, 0, cmd, error);
}

/* RFC 5321 section 4.5.3.1: local part 64, path 256, label 63. */
static void test_size_limits(void **state)
{
	struct smtp_command cmd;
	const char *error;
	/* A 251-octet domain of 63-octet labels: 63.63.63.59 */
	char dom[300];

	(void)state;
	assert_int_equal(
	    parse_fmt(&cmd, &error, "MAIL FROM:<%s@example.com>", rep('a', 64)),
	    SMTP_PARSE_OK);
	assert_int_equal(cmd.path.local_len, 64);
	assert_int_equal(
	    parse_fmt(&cmd, &error, "MAIL FROM:<%s@example.com>", rep('a', 65)),
	    SMTP_PARSE_BAD_SENDER);
	assert_string_equal(error, "501 5.1.7 Bad sender address syntax");
	/* 64 octets as sent, quotes included. */
	assert_int_equal(parse_fmt(&cmd, &error, "RCPT TO:<\"%s\"@example.com>",
				   rep('a', 62)),
			 SMTP_PARSE_OK);
	assert_int_equal(parse_fmt(&cmd, &error, "RCPT TO:<\"%s\"@example.com>",
				   rep('a', 63)),
			 SMTP_PARSE_BAD_RCPT);
	/* Labels */
	assert_int_equal(
	    parse_fmt(&cmd, &error, "RCPT TO:<u@%s.example>", rep('b', 63)),
	    SMTP_PARSE_OK);
	assert_int_equal(
	    parse_fmt(&cmd, &error, "RCPT TO:<u@%s.example>", rep('b', 64)),
	    SMTP_PARSE_BAD_RCPT);
	/* The path: "<u@" + domain + ">" is 256 octets at most. */
	snprintf(dom, sizeof(dom), "%s.%s.%s.%s", rep('c', 63), rep('d', 63),
		 rep('e', 63), rep('f', 59));
	assert_int_equal(strlen(dom), 251);
	assert_int_equal(parse_fmt(&cmd, &error, "RCPT TO:<uv@%s>", dom),
			 SMTP_PARSE_OK);
	assert_int_equal(cmd.path.domain_len, 251);
	assert_int_equal(parse_fmt(&cmd, &error, "RCPT TO:<uvw@%s>", dom),
			 SMTP_PARSE_BAD_RCPT);
	assert_string_equal(error, "501 5.1.3 Path too long");
	/* A source route counts towards the path. */
	assert_int_equal(parse_fmt(&cmd, &error, "MAIL FROM:<@%s:u@xy>", dom),
			 SMTP_PARSE_BAD_SENDER);
	assert_string_equal(error, "501 5.1.7 Path too long");
}

/* RFC 5321 section 4.5.3.1.4: 512 octets with CRLF; AUTH may be longer
 * (RFC 4954 section 4). */
static void test_line_length(void **state)
{
	struct smtp_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(parse_fmt(&cmd, &error, "NOOP %s", rep('x', 505)),
			 SMTP_PARSE_OK);
	assert_int_equal(cmd.arg_len, 505);
	assert_int_equal(parse_fmt(&cmd, &error, "NOOP %s", rep('x', 506)),
			 SMTP_PARSE_TOO_LONG);
	assert_string_equal(error, "500 5.5.2 Line too long");
	assert_int_equal(cmd.cmd, SMTP_CMD_NOOP);
	assert_int_equal(parse_fmt(&cmd, &error, "AUTH PLAIN %s%s%s",
				   rep('Q', 1000), rep('Q', 1000),
				   rep('Q', 1000)),
			 SMTP_PARSE_OK);
	assert_int_equal(cmd.arg2_len, 3000);
}

/* INV-R1: '%', '!', quoted '@' and routes are reported literally; the
 * domain is only what follows the last unquoted '@'. */
static void test_inv_r1_no_interpretation(void **state)
{
	struct smtp_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(
	    parse_fmt(&cmd, &error,
		      "RCPT TO:<@relay.example:\"victim@remote.example\"@"
		      "local.example>"),
	    SMTP_PARSE_OK);
	assert_string_equal(cmd.path.local, "victim@remote.example");
	assert_string_equal(cmd.path.domain, "local.example");
	assert_true(cmd.path.quoted);
	assert_true(cmd.path.routed);
	assert_int_equal(parse_fmt(&cmd, &error,
				   "RCPT TO:<victim%%remote.example@local."
				   "example>"),
			 SMTP_PARSE_OK);
	assert_string_equal(cmd.path.local, "victim%remote.example");
	assert_string_equal(cmd.path.domain, "local.example");
}

static void test_canonical(void **state)
{
	struct smtp_command cmd;
	const char *error;
	char out[SMTP_MAILBOX_BUF_SIZE];
	char big[512];

	(void)state;
	assert_int_equal(
	    parse_fmt(&cmd, &error, "RCPT TO:<Bob.Smith@MAIL.Example.ORG>"),
	    SMTP_PARSE_OK);
	assert_int_equal(smtp_path_canonical(&cmd.path, true, out, sizeof(out)),
			 26);
	assert_string_equal(out, "bob.smith@mail.example.org");
	assert_int_equal(
	    smtp_path_canonical(&cmd.path, false, out, sizeof(out)), 26);
	assert_string_equal(out, "Bob.Smith@mail.example.org");
	/* Too small: exactly one short. */
	assert_int_equal(smtp_path_canonical(&cmd.path, false, out, 26), -1);
	assert_int_equal(smtp_path_canonical(&cmd.path, false, out, 27), 26);
	/* The worst case fits SMTP_MAILBOX_BUF_SIZE: 31 escaped quotes
	 * (64 octets as sent) and a long domain. */
	snprintf(
	    big, sizeof(big), "RCPT TO:<\"%s\"@%s.%s.%s>",
	    "\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\""
	    "\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"",
	    rep('a', 63), rep('b', 63), rep('c', 54));
	assert_int_equal(parse_fmt(&cmd, &error, "%s", big), SMTP_PARSE_OK);
	assert_int_equal(cmd.path.local_len, 31);
	assert_int_equal(
	    smtp_path_canonical(&cmd.path, false, out, sizeof(out)),
	    64 + 1 + 63 * 2 + 54 + 2);
	/* Quoted, lowercased on request. */
	assert_int_equal(
	    parse_fmt(&cmd, &error, "RCPT TO:<\"Big Box\"@example.com>"),
	    SMTP_PARSE_OK);
	assert_int_equal(smtp_path_canonical(&cmd.path, true, out, sizeof(out)),
			 21);
	assert_string_equal(out, "\"big box\"@example.com");
}

static void test_utf8_valid(void **state)
{
	(void)state;
	assert_true(smtp_utf8_valid("abc", 3));
	assert_true(smtp_utf8_valid("\xc3\xb6", 2));
	assert_true(smtp_utf8_valid("\xe2\x82\xac", 3));
	assert_true(smtp_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_true(smtp_utf8_valid("\xf4\x8f\xbf\xbf", 4));
	assert_true(smtp_utf8_valid("\xed\x9f\xbf", 3));
	assert_false(smtp_utf8_valid("\xc3", 1));
	assert_false(smtp_utf8_valid("\xc1\xbf", 2));
	assert_false(smtp_utf8_valid("\xe0\x9f\xbf", 3));
	assert_false(smtp_utf8_valid("\xf0\x8f\xbf\xbf", 4));
	assert_false(smtp_utf8_valid("\xed\xa0\x80", 3));
	assert_false(smtp_utf8_valid("\xf4\x90\x80\x80", 4));
	assert_false(smtp_utf8_valid("\xf5\x80\x80\x80", 4));
	assert_false(smtp_utf8_valid("\x80", 1));
	assert_false(smtp_utf8_valid("\xc2\x9f", 2));
	assert_false(smtp_utf8_valid("a\tb", 3));
	assert_false(smtp_utf8_valid("a\x7f", 2));
	assert_false(smtp_utf8_valid("a\0b", 3));
}

/* Cross-protocol bytes (ALPACA-style): HTTP request lines are spotted,
 * SMTP commands and near misses are not. */
static void test_http_request(void **state)
{
	static const char *const http[] = {
	    "GET / HTTP/1.1",
	    "POST /login HTTP/1.0",
	    "HEAD http://mail.example.org/ HTTP/1.1",
	    "CONNECT mail.example.org:443 HTTP/1.1",
	    "CONNECT 192.0.2.1:25",
	    "PRI * HTTP/2.0",
	    "OPTIONS * HTTP/1.1",
	};
	static const char *const not_http[] = {
	    "GET",
	    "GET /",
	    "GET / HTTP/1",
	    "GET / HTTP/1.1 x",
	    "GET  / HTTP/1.1",
	    "get / HTTP/1.1",
	    "CONNECT",
	    "CONNECT ",
	    "EHLO GET / HTTP/1.1",
	    "NOOP GET / HTTP/1.1",
	    "MAIL FROM:<a@b> HTTP/1.1",
	    "",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++)
		if (!smtp_is_http_request(http[i], strlen(http[i])))
			fail_msg("not seen as HTTP: '%s'", http[i]);
	for (size_t i = 0; i < sizeof(not_http) / sizeof(not_http[0]); i++)
		if (smtp_is_http_request(not_http[i], strlen(not_http[i])))
			fail_msg("taken for HTTP: '%s'", not_http[i]);
	/* Byte by byte: no prefix of a request line is one, except at its
	 * full length (the check needs the whole line, never reads past
	 * len). */
	for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++) {
		size_t len = strlen(http[i]);

		for (size_t k = 0; k < len; k++) {
			char *copy = malloc(k + 1);

			assert_non_null(copy);
			memcpy(copy, http[i], k);
			if (smtp_is_http_request(copy, k) &&
			    strncmp(http[i], "CONNECT", 7) != 0)
				fail_msg("prefix %zu of '%s' is HTTP", k,
					 http[i]);
			free(copy);
		}
	}
}

static void test_cmd_names(void **state)
{
	(void)state;
	assert_string_equal(smtp_cmd_name(SMTP_CMD_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_cmd_name(SMTP_CMD_BDAT), "BDAT");
	assert_string_equal(smtp_cmd_name(SMTP_CMD_COUNT), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),
	    cmocka_unit_test(test_size_limits),
	    cmocka_unit_test(test_line_length),
	    cmocka_unit_test(test_inv_r1_no_interpretation),
	    cmocka_unit_test(test_canonical),
	    cmocka_unit_test(test_utf8_valid),
	    cmocka_unit_test(test_cmd_names),
	    cmocka_unit_test(test_http_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
