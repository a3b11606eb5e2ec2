/* Unit tests for the DATA and BDAT readers (RFC 5321 sections 4.1.1.4,
 * 4.5.2 and 4.5.3.1.6, RFC 3030), above all INV-S1: only <CRLF>.<CRLF>
 * ends a message. Every case is fed whole, one byte at a time, split in
 * two at every position, and through a 3-octet output buffer; the results
 * must be identical (pure parsers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/postd_limits.h"
#include "proto/smtp/smtp_data.h"

struct data_case {
	const char *name;
	const char *in;
	size_t in_len; /* 0: strlen(in) */
	unsigned flags;
	uint64_t max;	  /* 0: no limit */
	size_t max_line;  /* 0: the default (SMTP_MAX_TEXT_LINE) */
	const char *out;  /* NULL: not checked (discarded) */
	size_t out_len;	  /* 0: strlen(out) */
	const char *rest; /* the input after the end marker, which must not
			     be consumed; NULL if the input holds no end
			     marker */
	bool bare_lf, bare_cr, long_line, too_big;
	bool dot_cr; /* a lone dot next to a bare CR (smuggling shape) */
	const char *refusal; /* reply code prefix, NULL if acceptable */
};

static const struct data_case cases[] = {
    {"simple", "Hello\r\n.\r\n", .out = "Hello\r\n", .rest = ""},
    {"empty message", ".\r\n", .out = "", .rest = ""},
    {"empty line then end", "\r\n.\r\n", .out = "\r\n", .rest = ""},
    {"pipelined command after end is not consumed", "Hi\r\n.\r\nQUIT\r\n",
     .out = "Hi\r\n", .rest = "QUIT\r\n"},
    {"dot-stuffed line", "a\r\n..b\r\n.\r\n", .out = "a\r\n.b\r\n", .rest = ""},
    {"stuffed lone dot in the middle", "a\r\n..\r\nb\r\n.\r\n",
     .out = "a\r\n.\r\nb\r\n", .rest = ""},
    {"stuffed lone dot first", "..\r\n.\r\n", .out = ".\r\n", .rest = ""},
    {"leading dot removed", "a\r\n.x\r\n.\r\n", .out = "a\r\nx\r\n",
     .rest = ""},
    {"three dots", "...\r\n.\r\n", .out = "..\r\n", .rest = ""},
    {"dot inside a line is data", "a.b\r\nc.\r\n.\r\n", .out = "a.b\r\nc.\r\n",
     .rest = ""},
    {"end marker then more data", "line1\r\n.\r\nline2\r\n.\r\n",
     .out = "line1\r\n", .rest = "line2\r\n.\r\n"},
    /* A bare CR inside a line is stored as a space and accepted. */
    {"CR CR LF", "a\r\r\n.\r\n", .out = "a \r\n", .rest = "", .bare_cr = true},
    {"CR inside a line", "a\rb\r\n.\r\n", .out = "a b\r\n", .rest = "",
     .bare_cr = true},
    {"CR never starts a header field", "Subject: x\rBcc: y\r\n\r\nb\r\n.\r\n",
     .out = "Subject: x Bcc: y\r\n\r\nb\r\n", .rest = "", .bare_cr = true},
    {"CR before a dot inside a line", "a\r.b\r\n.\r\n", .out = "a .b\r\n",
     .rest = "", .bare_cr = true},
    {"binary octets pass", "a\0\xff\x80z\r\n.\r\n", 10,
     .out = "a\0\xff\x80z\r\n", .out_len = 7, .rest = ""},
    /* INV-S1: SMTP smuggling sequences never end the message. */
    {"LF.LF does not end", "a\n.\nMAIL FROM:<x@y>\r\n.\r\n",
     .out = "a\n.\nMAIL FROM:<x@y>\r\n", .rest = "", .bare_lf = true,
     .refusal = "550 5.6.0"},
    {"CR.CR does not end", "a\r.\rb\r\n.\r\n", .out = "a . b\r\n", .rest = "",
     .bare_cr = true, .dot_cr = true, .refusal = "550 5.6.0"},
    {"CR.CRLF does not end", "a\r.\r\nb\r\n.\r\n", .out = "a .\r\nb\r\n",
     .rest = "", .bare_cr = true, .dot_cr = true, .refusal = "550 5.6.0"},
    {"CRLF..CR is a lone dot too", "a\r\n..\rb\r\n.\r\n", .out = "a\r\n. b\r\n",
     .rest = "", .bare_cr = true, .dot_cr = true, .refusal = "550 5.6.0"},
    {"CRLF.LF does not end", "a\r\n.\nb\r\n.\r\n", .out = "a\r\n\nb\r\n",
     .rest = "", .bare_lf = true, .refusal = "550 5.6.0"},
    {"LF.CRLF does not end", "a\n.\r\nb\r\n.\r\n", .out = "a\n.\r\nb\r\n",
     .rest = "", .bare_lf = true, .refusal = "550 5.6.0"},
    {"CRLF.CR.CRLF does not end", "a\r\n.\r.\r\n.\r\n", .out = "a\r\n .\r\n",
     .rest = "", .bare_cr = true, .dot_cr = true, .refusal = "550 5.6.0"},
    {"CRLF.CRCRLF does not end", "a\r\n.\r\r\n.\r\n", .out = "a\r\n \r\n",
     .rest = "", .bare_cr = true, .dot_cr = true, .refusal = "550 5.6.0"},
    {"LF.LF at the start", "\n.\n\r\n.\r\n", .out = "\n.\n\r\n", .rest = "",
     .bare_lf = true, .refusal = "550 5.6.0"},
    {"CRLF.LF open", "x\r\n.\nQUIT\r\n", .out = "x\r\n\nQUIT\r\n",
     .bare_lf = true},
    {"LF.CRLF open", "x\n.\r\nQUIT\r\n", .out = "x\n.\r\nQUIT\r\n",
     .bare_lf = true},
    {"CR.CR open", "x\r.\rQUIT\r\n", .out = "x . QUIT\r\n", .bare_cr = true,
     .dot_cr = true},
    {"LF.LF open", "x\n.\nQUIT\n", .out = "x\n.\nQUIT\n", .bare_lf = true},
    {"unterminated, dot CR held", "abc\r\n.\r", .out = "abc\r\n"},
    {"unterminated, dot held", "abc\r\n.", .out = "abc\r\n"},
    {"unterminated, CR held", "abc\r", .out = "abc"},
    /* Normalising (off by default) */
    {"normalise bare LF, CR is a space", "a\nb\rc\r\n.\r\n",
     .flags = SMTP_DATA_F_NORMALIZE, .out = "a\r\nb c\r\n", .rest = "",
     .bare_lf = true, .bare_cr = true},
    {"normalise never ends at LF.LF", "a\n.\nb\r\n.\r\n",
     .flags = SMTP_DATA_F_NORMALIZE, .out = "a\r\n.\r\nb\r\n", .rest = "",
     .bare_lf = true, .bare_cr = false},
    {"normalise CR CR LF", "a\r\r\n.\r\n", .flags = SMTP_DATA_F_NORMALIZE,
     .out = "a \r\n", .rest = "", .bare_cr = true},
    {"normalise dot CR x", "a\r\n.\rx\r\n.\r\n", .flags = SMTP_DATA_F_NORMALIZE,
     .out = "a\r\n x\r\n", .rest = "", .bare_cr = true, .dot_cr = true,
     .refusal = "550 5.6.0"},
    /* Size (RFC 1870): read on to the end, then 552 */
    {"size at the limit", "123456\r\n.\r\n", .max = 8, .out = "123456\r\n",
     .rest = ""},
    {"size over the limit", "1234567\r\n.\r\nNOOP\r\n", .max = 8, .out = NULL,
     .rest = "NOOP\r\n", .too_big = true, .refusal = "552 5.3.4"},
    {"size over, smuggling after", "12345678\r\n\n.\nx\r\n.\r\n", .max = 8,
     .out = NULL, .rest = "", .bare_lf = true, .too_big = true,
     .refusal = "552 5.3.4"},
    {"discard flag", "abc\r\n.\r\n", .flags = SMTP_DATA_F_DISCARD, .out = "",
     .rest = ""},
};

struct result {
	unsigned char *out;
	size_t out_len;
	size_t consumed;
	bool done;
	struct smtp_content content;
};

/*
 * Feeds in[0..len) to a fresh DATA reader. chunk: the piece size (0 =
 * whole); split: feed [0, split) then the rest (0 = none); room: output
 * room per call (0 = smtp_data_out_max(), which must consume each piece
 * in one call).
 */
static void run_data(const struct data_case *c, const char *in, size_t len,
		     size_t chunk, size_t split, size_t room, struct result *r)
{
	struct smtp_data d;
	size_t pos = 0;

	smtp_data_init(&d, c->max != 0 ? c->max : SMTP_DATA_NO_LIMIT, c->flags);
	if (c->max_line != 0)
		smtp_content_set_max_line(&d.content, c->max_line);
	memset(r, 0, sizeof(*r));
	r->out = malloc(2 * len + 8);
	assert_non_null(r->out);
	while (pos < len && !d.done) {
		size_t end = len;

		if (chunk != 0 && pos + chunk < len)
			end = pos + chunk;
		if (split != 0 && pos < split)
			end = split;
		while (pos < end && !d.done) {
			size_t piece = end - pos;
			size_t osize = room != 0
					   ? room
					   : smtp_data_out_max(c->flags, piece);
			unsigned char *obuf = malloc(osize);
			size_t used, olen;
			int ret;

			assert_non_null(obuf);
			ret = smtp_data_feed(&d, in + pos, piece, &used, obuf,
					     osize, &olen);
			assert_true(olen <= osize);
			assert_int_equal(ret, d.done ? 1 : 0);
			if (room == 0 && !d.done)
				assert_int_equal(used, piece);
			assert_true(used > 0 || d.done);
			memcpy(r->out + r->out_len, obuf, olen);
			r->out_len += olen;
			pos += used;
			free(obuf);
		}
	}
	r->consumed = pos;
	r->done = d.done;
	r->content = d.content;
	/* Output never exceeds input (twice it when normalising). */
	if ((c->flags & SMTP_DATA_F_NORMALIZE) != 0)
		assert_true(r->out_len <= 2 * r->consumed);
	else
		assert_true(r->out_len <= r->consumed);
	/* A finished reader consumes nothing more. */
	if (d.done) {
		size_t used = 99, olen = 99;
		unsigned char o[8];

		assert_int_equal(
		    smtp_data_feed(&d, "x", 1, &used, o, sizeof(o), &olen), 1);
		assert_int_equal(used, 0);
		assert_int_equal(olen, 0);
	}
}

static void check_result(const struct data_case *c, const char *how,
			 const struct result *r)
{
	size_t len = c->in_len != 0 ? c->in_len : strlen(c->in);
	size_t want_consumed = c->rest != NULL ? len - strlen(c->rest) : len;
	const char *refusal = smtp_content_refusal(&r->content);

	if (r->done != (c->rest != NULL))
		fail_msg("%s (%s): done %d", c->name, how, r->done);
	if (r->consumed != want_consumed)
		fail_msg("%s (%s): consumed %zu, want %zu", c->name, how,
			 r->consumed, want_consumed);
	if (c->out != NULL) {
		size_t want_len = c->out_len != 0 ? c->out_len : strlen(c->out);

		if (r->out_len != want_len ||
		    memcmp(r->out, c->out, want_len) != 0)
			fail_msg("%s (%s): output %zu octets '%.*s', want %zu",
				 c->name, how, r->out_len, (int)r->out_len,
				 (const char *)r->out, want_len);
	}
	if (r->content.bare_lf != c->bare_lf ||
	    r->content.bare_cr != c->bare_cr ||
	    r->content.line_too_long != c->long_line ||
	    r->content.too_big != c->too_big ||
	    r->content.dot_bare_cr != c->dot_cr)
		fail_msg("%s (%s): lf %d cr %d long %d big %d dot-cr %d",
			 c->name, how, r->content.bare_lf, r->content.bare_cr,
			 r->content.line_too_long, r->content.too_big,
			 r->content.dot_bare_cr);
	if (c->rest == NULL)
		return;
	if ((refusal == NULL) != (c->refusal == NULL) ||
	    (refusal != NULL &&
	     strncmp(refusal, c->refusal, strlen(c->refusal)) != 0))
		fail_msg("%s (%s): refusal '%s'", c->name, how,
			 refusal != NULL ? refusal : "(none)");
}

static bool same_result(const struct result *a, const struct result *b)
{
	return a->out_len == b->out_len &&
	       memcmp(a->out, b->out, a->out_len) == 0 &&
	       a->consumed == b->consumed && a->done == b->done &&
	       a->content.size == b->content.size &&
	       a->content.bare_lf == b->content.bare_lf &&
	       a->content.bare_cr == b->content.bare_cr &&
	       a->content.dot_bare_cr == b->content.dot_bare_cr &&
	       a->content.line_too_long == b->content.line_too_long &&
	       a->content.too_big == b->content.too_big;
}

/* Runs one case every way and demands the same answer each time. */
static void run_case(const struct data_case *c)
{
	size_t len = c->in_len != 0 ? c->in_len : strlen(c->in);
	/* Exactly len bytes, so ASan sees any overread. */
	char *in = malloc(len + 1);
	struct result whole, other;

	assert_non_null(in);
	memcpy(in, c->in, len);
	run_data(c, in, len, 0, 0, 0, &whole);
	check_result(c, "whole", &whole);

	run_data(c, in, len, 1, 0, 0, &other);
	check_result(c, "byte by byte", &other);
	assert_true(same_result(&whole, &other));
	free(other.out);

	run_data(c, in, len, 0, 0, 3, &other);
	check_result(c, "3-octet output", &other);
	assert_true(same_result(&whole, &other));
	free(other.out);

	for (size_t k = 1; k < len; k++) {
		char how[32];

		snprintf(how, sizeof(how), "split at %zu", k);
		run_data(c, in, len, 0, k, 0, &other);
		check_result(c, how, &other);
		assert_true(same_result(&whole, &other));
		free(other.out);
	}
	free(whole.out);
	free(in);
}

static void test_inv_s1_data_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

/* The end marker split across two chunks at every position, after a
 * long body, and after each kind of near miss. */
static void test_inv_s1_marker_split(void **state)
{
	static const struct {
		const char *body;
		bool bare_lf, bare_cr;
	} bodies[] = {
	    {"x", false, false},	{"x\r\n..\r\ny", false, false},
	    {"x\n.\n", true, false},	{"x\r.\r", false, true},
	    {"x\r\n.\ny", true, false}, {"x\n.\r\ny", true, false},
	};
	/* Every bare CR above is next to a lone dot, so the body is
	 * refused whenever it holds a bare CR or LF. */

	(void)state;
	for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
		char in[64];
		int n = snprintf(in, sizeof(in), "%s\r\n.\r\nRSET\r\n",
				 bodies[b].body);
		/* The message ends at the first <CRLF>.<CRLF>; run_case()
		 * splits it at every position. */
		struct data_case c = {
		    .name = bodies[b].body,
		    .in = in,
		    .rest = "RSET\r\n",
		    .bare_lf = bodies[b].bare_lf,
		    .bare_cr = bodies[b].bare_cr,
		    .dot_cr = bodies[b].bare_cr,
		    .refusal = bodies[b].bare_lf || bodies[b].bare_cr
				   ? "550 5.6.0"
				   : NULL,
		};

		assert_true(n > 0 && (size_t)n < sizeof(in));
		run_case(&c);
	}
}

static char *make_line_msg(char fill, size_t line_len, bool stuffed,
			   size_t *len_r)
{
	char *m = malloc(line_len + 16);
	size_t n = 0;

	assert_non_null(m);
	if (stuffed)
		m[n++] = '.';
	memset(m + n, fill, line_len);
	n += line_len;
	memcpy(m + n, "\r\n.\r\n", 5);
	n += 5;
	m[n] = '\0';
	*len_r = n;
	return m;
}

/* RFC 5321 section 4.5.3.1.6: 1000 octets with CRLF, not counting a
 * stuffed dot; the reader keeps going and refuses after the end. */
static void test_line_length(void **state)
{
	size_t len;
	char *m;
	struct data_case c = {.name = "998", .out = NULL};

	(void)state;
	m = make_line_msg('a', SMTP_MAX_TEXT_LINE - 2, false, &len);
	c.in = m;
	c.rest = "";
	run_case(&c);
	free(m);

	m = make_line_msg('a', SMTP_MAX_TEXT_LINE - 2, true, &len);
	c.name = "stuffed 998";
	c.in = m;
	c.rest = "";
	run_case(&c);
	free(m);

	m = make_line_msg('a', SMTP_MAX_TEXT_LINE - 1, false, &len);
	c.name = "999";
	c.in = m;
	c.rest = "";
	c.long_line = true;
	c.refusal = "554 5.6.0";
	run_case(&c);
	free(m);

	/* Bare LFs do not break a line unless normalising. */
	m = make_line_msg('\n', SMTP_MAX_TEXT_LINE, false, &len);
	c.name = "bare LFs";
	c.in = m;
	c.rest = "";
	c.bare_lf = true;
	c.long_line = true;
	c.refusal = "550 5.6.0";
	run_case(&c);
	c.name = "bare LFs normalised";
	c.flags = SMTP_DATA_F_NORMALIZE;
	c.long_line = false;
	c.refusal = NULL;
	run_case(&c);
	free(m);
}

/* A configured bound above RFC 5321's: real mail has long lines, and
 * they are stored unchanged up to the bound (here 1500 octets with CRLF,
 * small enough to split at every position). */
static void test_line_length_configured(void **state)
{
	size_t len;
	char *m;
	struct data_case c = {.name = "1498 of 1500", .max_line = 1500};

	(void)state;
	m = make_line_msg('a', 1498, false, &len);
	c.in = m;
	c.out = NULL;
	c.rest = "";
	run_case(&c);
	free(m);

	m = make_line_msg('a', 1499, false, &len);
	c.name = "1499 of 1500";
	c.in = m;
	c.long_line = true;
	c.refusal = "554 5.6.0";
	run_case(&c);
	free(m);

	/* Below RFC 5321's limit is not a bound we set. */
	m = make_line_msg('a', SMTP_MAX_TEXT_LINE - 1, false, &len);
	c.name = "999 with a bound of 10";
	c.max_line = 10;
	c.in = m;
	run_case(&c);
	free(m);
}

/* 64 KiB, the session's default bound: whole and byte by byte (the
 * output must be the line, unchanged). */
static void test_line_length_64k(void **state)
{
	const size_t max = 64 * 1024;
	size_t len;
	char *m = make_line_msg('x', max - 2, false, &len);
	struct data_case c = {
	    .name = "64 KiB", .in = m, .rest = "", .max_line = max};
	struct result whole, trickle;

	(void)state;
	run_data(&c, m, len, 0, 0, 0, &whole);
	check_result(&c, "whole", &whole);
	run_data(&c, m, len, 1, 0, 0, &trickle);
	check_result(&c, "byte by byte", &trickle);
	assert_true(same_result(&whole, &trickle));
	assert_int_equal(whole.out_len, max);
	assert_memory_equal(whole.out, m, max);
	free(whole.out);
	free(trickle.out);
	free(m);

	m = make_line_msg('x', max - 1, false, &len);
	c.in = m;
	c.long_line = true;
	c.refusal = "554 5.6.0";
	run_data(&c, m, len, 0, 0, 0, &whole);
	check_result(&c, "whole, one over", &whole);
	free(whole.out);
	free(m);
}

static void test_out_max(void **state)
{
	(void)state;
	assert_int_equal(smtp_data_out_max(0, 10), 14);
	assert_int_equal(smtp_data_out_max(SMTP_DATA_F_NORMALIZE, 10), 24);
	assert_int_equal(smtp_data_out_max(0, SIZE_MAX), SIZE_MAX);
	assert_int_equal(smtp_data_out_max(SMTP_DATA_F_NORMALIZE, SIZE_MAX / 2),
			 SIZE_MAX);
}

/* Worst-case expansion: every input byte a bare CR while normalising,
 * with exactly smtp_data_out_max() room, fed in pieces of every size. */
static void test_out_max_is_enough(void **state)
{
	char in[64];
	unsigned char out[256];

	(void)state;
	memset(in, '\r', sizeof(in));
	in[0] = 'a';
	for (size_t piece = 1; piece <= sizeof(in); piece++) {
		struct smtp_data d;
		size_t pos = 0, total = 0;

		smtp_data_init(&d, SMTP_DATA_NO_LIMIT, SMTP_DATA_F_NORMALIZE);
		while (pos < sizeof(in)) {
			size_t n =
			    sizeof(in) - pos < piece ? sizeof(in) - pos : piece;
			size_t used, olen;

			smtp_data_feed(&d, in + pos, n, &used, out,
				       smtp_data_out_max(d.content.flags, n),
				       &olen);
			assert_int_equal(used, n);
			pos += used;
			total += olen;
		}
		/* 63 CRs: 62 came out as spaces, the last is held. */
		assert_int_equal(total, 1 + 62);
	}
}

/* BDAT: raw chunks, the same checks. */
struct bdat_chunk {
	const char *data;
	bool last;
};

static void run_bdat(const struct bdat_chunk *chunks, size_t n, unsigned flags,
		     uint64_t max, size_t piece, unsigned char *out,
		     size_t *out_len_r, struct smtp_content *content_r)
{
	struct smtp_bdat b;
	size_t total = 0;

	smtp_bdat_init(&b, max, flags);
	for (size_t i = 0; i < n; i++) {
		const char *data = chunks[i].data;
		size_t len = strlen(data), pos = 0;
		int ret = 0;

		assert_int_equal(smtp_bdat_chunk(&b, len, chunks[i].last), 0);
		assert_int_equal(smtp_bdat_chunk(&b, 1, false), -1);
		do {
			size_t p =
			    piece != 0 && len - pos > piece ? piece : len - pos;
			size_t used, olen;

			ret = smtp_bdat_feed(
			    &b, data + pos, p, &used, out + total,
			    smtp_data_out_max(flags, p), &olen);
			assert_int_equal(used, p);
			pos += used;
			total += olen;
		} while (pos < len || ret == 0);
		assert_int_equal(ret, 1);
		assert_int_equal(b.done, chunks[i].last);
	}
	assert_int_equal(smtp_bdat_chunk(&b, 1, false), -1);
	*out_len_r = total;
	*content_r = b.content;
}

static void check_bdat(const struct bdat_chunk *chunks, size_t n,
		       unsigned flags, uint64_t max, const char *want,
		       struct smtp_content *content_r)
{
	unsigned char whole[4096], trickle[4096];
	size_t wlen, tlen;
	struct smtp_content c2;

	run_bdat(chunks, n, flags, max, 0, whole, &wlen, content_r);
	run_bdat(chunks, n, flags, max, 1, trickle, &tlen, &c2);
	assert_int_equal(wlen, tlen);
	assert_memory_equal(whole, trickle, wlen);
	assert_int_equal(content_r->size, c2.size);
	assert_int_equal(content_r->bare_cr, c2.bare_cr);
	assert_int_equal(content_r->bare_lf, c2.bare_lf);
	assert_int_equal(content_r->line_too_long, c2.line_too_long);
	if (want != NULL) {
		assert_int_equal(wlen, strlen(want));
		assert_memory_equal(whole, want, wlen);
	}
}

static void test_bdat(void **state)
{
	struct smtp_content c;
	static const struct bdat_chunk plain[] = {{"hello\r\n.\r\n", false},
						  {"..x\r\n", true}};
	static const struct bdat_chunk split_crlf[] = {{"a\r", false},
						       {"\nb\r\n", true}};
	static const struct bdat_chunk trailing_cr[] = {{"a\r\nb\r", true}};
	static const struct bdat_chunk bare[] = {{"a\nb", false},
						 {"\rc", true}};
	static const struct bdat_chunk empty_last[] = {{"x\r\n", false},
						       {"", true}};
	static const struct bdat_chunk dot_cr[] = {{"a\r\n.\rb\r\n", true}};

	(void)state;
	/* No unstuffing, no end marker. */
	check_bdat(plain, 2, 0, SMTP_DATA_NO_LIMIT, "hello\r\n.\r\n..x\r\n",
		   &c);
	assert_null(smtp_content_refusal(&c));
	/* A CRLF across chunks is one line end. */
	check_bdat(split_crlf, 2, 0, SMTP_DATA_NO_LIMIT, "a\r\nb\r\n", &c);
	assert_false(c.bare_cr);
	assert_null(smtp_content_refusal(&c));
	/* A CR at the very end is bare: a space, like any bare CR. */
	check_bdat(trailing_cr, 1, 0, SMTP_DATA_NO_LIMIT, "a\r\nb ", &c);
	assert_true(c.bare_cr);
	assert_null(smtp_content_refusal(&c));
	check_bdat(trailing_cr, 1, SMTP_DATA_F_NORMALIZE, SMTP_DATA_NO_LIMIT,
		   "a\r\nb ", &c);
	assert_null(smtp_content_refusal(&c));
	check_bdat(bare, 2, 0, SMTP_DATA_NO_LIMIT, "a\nb c", &c);
	assert_true(c.bare_cr && c.bare_lf);
	assert_string_equal(smtp_content_refusal(&c),
			    "550 5.6.0 Message contains bare CR or LF; lines "
			    "must end with CRLF");
	check_bdat(bare, 2, SMTP_DATA_F_NORMALIZE, SMTP_DATA_NO_LIMIT,
		   "a\r\nb c", &c);
	/* BDAT has no stuffing: a dot line next to a bare CR is the
	 * smuggling shape all the same. */
	check_bdat(dot_cr, 1, 0, SMTP_DATA_NO_LIMIT, "a\r\n. b\r\n", &c);
	assert_true(c.dot_bare_cr);
	assert_string_equal(smtp_content_refusal(&c),
			    "550 5.6.0 Message contains bare CR or LF; lines "
			    "must end with CRLF");
	/* BINARYMIME: bare CR/LF and long lines are data. */
	check_bdat(bare, 2, SMTP_DATA_F_BINARY, SMTP_DATA_NO_LIMIT, "a\nb\rc",
		   &c);
	assert_false(c.bare_cr || c.bare_lf);
	assert_null(smtp_content_refusal(&c));
	check_bdat(empty_last, 2, 0, SMTP_DATA_NO_LIMIT, "x\r\n", &c);
	/* Size */
	check_bdat(plain, 2, 0, 14, NULL, &c);
	assert_true(c.too_big);
	assert_int_equal(c.size, 15);
	assert_string_equal(smtp_content_refusal(&c),
			    "552 5.3.4 Message size exceeds fixed maximum "
			    "message size");
	check_bdat(plain, 2, 0, 15, "hello\r\n.\r\n..x\r\n", &c);
	assert_false(c.too_big);
	check_bdat(plain, 2, SMTP_DATA_F_DISCARD, SMTP_DATA_NO_LIMIT, "", &c);
	assert_int_equal(c.size, 15);
}

static void test_bdat_long_line_across_chunks(void **state)
{
	static char a[600], b[600];
	struct bdat_chunk chunks[2] = {{a, false}, {b, true}};
	struct smtp_content c;

	(void)state;
	memset(a, 'a', 500);
	memset(b, 'b', 499);
	check_bdat(chunks, 2, 0, SMTP_DATA_NO_LIMIT, NULL, &c);
	assert_true(c.line_too_long);
	assert_string_equal(smtp_content_refusal(&c),
			    "554 5.6.0 Message contains a line longer than we "
			    "accept");
	check_bdat(chunks, 2, SMTP_DATA_F_BINARY, SMTP_DATA_NO_LIMIT, NULL, &c);
	assert_false(c.line_too_long);
	b[498] = '\0';
	check_bdat(chunks, 2, 0, SMTP_DATA_NO_LIMIT, NULL, &c);
	assert_false(c.line_too_long);
}

/* Bytes after the chunk belong to the next command. */
static void test_bdat_stops_at_chunk_end(void **state)
{
	struct smtp_bdat b;
	unsigned char out[32];
	size_t used, olen;

	(void)state;
	smtp_bdat_init(&b, SMTP_DATA_NO_LIMIT, 0);
	assert_int_equal(smtp_bdat_chunk(&b, 3, false), 0);
	assert_int_equal(smtp_bdat_feed(&b, "abcBDAT 0 LAST\r\n", 16, &used,
					out, sizeof(out), &olen),
			 1);
	assert_int_equal(used, 3);
	assert_int_equal(olen, 3);
	assert_false(b.done);
	assert_int_equal(smtp_bdat_chunk(&b, 0, true), 0);
	assert_int_equal(
	    smtp_bdat_feed(&b, "QUIT\r\n", 6, &used, out, sizeof(out), &olen),
	    1);
	assert_int_equal(used, 0);
	assert_true(b.done);
	assert_int_equal(smtp_bdat_chunk(&b, 1, true), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_inv_s1_data_table),
	    cmocka_unit_test(test_inv_s1_marker_split),
	    cmocka_unit_test(test_line_length),
	    cmocka_unit_test(test_line_length_configured),
	    cmocka_unit_test(test_line_length_64k),
	    cmocka_unit_test(test_out_max),
	    cmocka_unit_test(test_out_max_is_enough),
	    cmocka_unit_test(test_bdat),
	    cmocka_unit_test(test_bdat_long_line_across_chunks),
	    cmocka_unit_test(test_bdat_stops_at_chunk_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
