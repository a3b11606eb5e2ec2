/*
 * postctl check's parsers (src/cli/postctl_check_parse.c) under hostile server
 * bytes: the input is split into lines by the bounded splitter (in chunks
 * whose size the first byte picks) and every line goes through every
 * reply, capability and response-code parser; the whole input is also
 * parsed as a URL. Invariants: lines stay within CHECK_MAX_LINE, the
 * capability summary and escaped text stay bounded and hold no control
 * bytes, and an accepted URL has a host and a port.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "cli/postctl_check_parse.h"

static void fuzz_check_printable(const char *s);
static void fuzz_check_line(const char *line, size_t len,
			    struct check_caps *caps,
			    struct check_smtp_reply *smtp);
static void fuzz_check_url(const uint8_t *data, size_t size);

/* What reaches the terminal: no control byte, no DEL, no 8-bit. */
static void fuzz_check_printable(const char *s)
{
	for (; *s != '\0'; s++)
		FUZZ_CHECK((unsigned char)*s >= 0x20 &&
			   (unsigned char)*s < 0x7f);
}

static void fuzz_check_line(const char *line, size_t len,
			    struct check_caps *caps,
			    struct check_smtp_reply *smtp)
{
	char code[CHECK_MAX_CODE], esc[CHECK_MAX_ESCAPED];
	enum check_imap_status st;
	const char *text;
	uint32_t n;
	int r;

	FUZZ_CHECK(len <= CHECK_MAX_LINE);
	FUZZ_CHECK(strlen(line) == len);
	(void)check_greeting_proto(check_greeting_classify(line, len));
	r = check_pop3_status(line, &text);
	FUZZ_CHECK(r >= -1 && r <= 1 && text >= line && text <= line + len);
	if (check_resp_code(text, code, sizeof(code)) == 1) {
		FUZZ_CHECK(strlen(code) > 0 && strlen(code) < sizeof(code));
		fuzz_check_printable(code);
		(void)check_resp_code_explain(code);
	} else {
		FUZZ_CHECK(code[0] == '\0');
	}
	check_caps_pop3_line(caps, line);
	(void)check_caps_imap_line(caps, line);
	r = check_imap_tagged(line, "c1", &st, &text);
	FUZZ_CHECK(r >= -1 && r <= 1 && text >= line && text <= line + len);
	if (check_imap_exists(line, &n) == 1)
		FUZZ_CHECK(len >= 10);
	r = check_smtp_reply_line(smtp, line);
	if (r >= 0) {
		FUZZ_CHECK(smtp->code >= 200 && smtp->code <= 599);
		FUZZ_CHECK(smtp->lines <= CHECK_MAX_REPLY_LINES);
		check_caps_ehlo_line(caps, smtp->text, smtp->lines == 1);
		if (check_smtp_enhanced(smtp->text, code, sizeof(code)) == 1)
			FUZZ_CHECK(strlen(code) >= 5);
		(void)check_smtp_auth_explain(smtp->code, code);
	}
	if (r != 0)
		check_smtp_reply_reset(smtp);
	FUZZ_CHECK(strlen(caps->text) <= CHECK_MAX_CAPS_TEXT);
	fuzz_check_printable(caps->text);
	check_escape(esc, sizeof(esc), line, len);
	FUZZ_CHECK(strlen(esc) < sizeof(esc));
	fuzz_check_printable(esc);
}

static void fuzz_check_url(const uint8_t *data, size_t size)
{
	struct check_url u;
	const char *error = NULL;
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	if (check_url_parse(s, &u, &error) == 0) {
		FUZZ_CHECK(u.host[0] != '\0' && u.port != 0);
		FUZZ_CHECK(strlen(u.host) <= CHECK_MAX_HOST);
		if (u.has_user) {
			FUZZ_CHECK(u.user[0] != '\0');
			for (const char *p = u.user; *p != '\0'; p++)
				FUZZ_CHECK((unsigned char)*p > 0x20 &&
					   *p != 0x7f);
		}
		(void)check_url_user_domain(&u);
	} else {
		FUZZ_CHECK(error != NULL);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct check_line lb;
	struct check_smtp_reply smtp;
	struct check_caps caps;
	size_t chunk, pos = 1, used;

	if (size < 1)
		return 0;
	chunk = data[0] == 0 ? size : data[0];
	fuzz_check_url(data + 1, size - 1);
	check_line_reset(&lb);
	check_caps_reset(&caps);
	check_smtp_reply_reset(&smtp);
	while (pos < size) {
		size_t n = size - pos < chunk ? size - pos : chunk;
		int r =
		    check_line_feed(&lb, (const char *)data + pos, n, &used);

		FUZZ_CHECK(used <= n);
		pos += used;
		if (r == 1)
			fuzz_check_line(lb.line, lb.len, &caps, &smtp);
		if (r != 0) {
			check_line_reset(&lb);
			if (r < 0 && used == 0)
				pos++; /* the caller would drop the peer */
		}
	}
	return 0;
}
