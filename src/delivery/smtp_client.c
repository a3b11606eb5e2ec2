/* Outbound SMTP protocol pieces: reply parser, EHLO keywords, DATA encoder. */
/*
 * Pure functions on buffers, no I/O: outbound_session.c beside it holds
 * the conversation (sockets, timers, TLS, the state machine) and feeds
 * the server's bytes in here. Everything here parses bytes from a hostile
 * remote server, so every length is checked against a cap while reading
 * (INV-S3).
 */
#include "delivery/smtp_client.h"

#include <stdio.h>
#include <string.h>

#include "lib/parse.h"

static int smtp_reply_line(struct smtp_reply_parser *p, const char **error_r);
static void smtp_reply_enhanced(struct smtp_reply *r, const char *text,
				size_t len);
static bool smtp_ehlo_word(const char *line, size_t len, const char *word);

void smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

int smtp_reply_parse(struct smtp_reply_parser *p, const char *data, size_t len,
		     size_t *consumed_r, struct smtp_reply *reply_r,
		     const char **error_r)
{
	size_t i;

	*consumed_r = 0;
	if (p->failed) {
		*error_r = "reply parser failed earlier";
		return -1;
	}
	for (i = 0; i < len; i++) {
		char c = data[i];
		int r;

		if (c != '\n') {
			if (c == '\0') {
				p->failed = true;
				*error_r = "NUL in reply";
				return -1;
			}
			if (p->line_len >= SMTP_CLIENT_MAX_REPLY_LINE) {
				p->failed = true;
				*error_r = "reply line too long";
				return -1;
			}
			p->line[p->line_len++] = c;
			continue;
		}
		/* LF ends the line; a CR before it is dropped (servers that
		 * send bare LF are tolerated: the client is lenient in what
		 * it accepts, but bounded). */
		if (p->line_len > 0 && p->line[p->line_len - 1] == '\r')
			p->line_len--;
		p->line[p->line_len] = '\0';
		r = smtp_reply_line(p, error_r);
		p->line_len = 0;
		if (r < 0) {
			p->failed = true;
			return -1;
		}
		if (r == 1) {
			*reply_r = p->cur;
			memset(&p->cur, 0, sizeof(p->cur));
			p->in_reply = false;
			*consumed_r = i + 1;
			return 1;
		}
	}
	*consumed_r = len;
	return 0;
}

/* One complete line: 1 the reply ended, 0 more lines follow, -1 bad. */
static int smtp_reply_line(struct smtp_reply_parser *p, const char **error_r)
{
	const char *l = p->line;
	struct smtp_reply *cur = &p->cur;
	unsigned code;
	bool last;
	size_t tlen;

	if (p->line_len < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' ||
	    l[1] > '9' || l[2] < '0' || l[2] > '9') {
		*error_r = "malformed reply code";
		return -1;
	}
	code = (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 +
	       (unsigned)(l[2] - '0');
	if (p->line_len == 3 || l[3] == ' ')
		last = true;
	else if (l[3] == '-')
		last = false;
	else {
		*error_r = "malformed reply separator";
		return -1;
	}
	if (p->in_reply && code != cur->code) {
		*error_r = "reply code changed inside a multi-line reply";
		return -1;
	}
	if (cur->line_count >= SMTP_CLIENT_MAX_REPLY_LINES) {
		*error_r = "too many reply lines";
		return -1;
	}
	tlen = p->line_len > 4 ? p->line_len - 4 : 0;
	if (cur->line_count == 0) {
		cur->code = code;
		smtp_reply_enhanced(cur, l + 4, tlen);
	}
	if (cur->text_len + tlen + 2 > sizeof(cur->text)) {
		*error_r = "reply too long";
		return -1;
	}
	if (cur->line_count > 0)
		cur->text[cur->text_len++] = '\n';
	if (tlen > 0)
		memcpy(cur->text + cur->text_len, l + 4, tlen);
	cur->text_len += tlen;
	cur->text[cur->text_len] = '\0';
	cur->line_count++;
	p->in_reply = true;
	return last ? 1 : 0;
}

/* RFC 3463: class "." subject "." detail, class equal to the code's
 * first digit, subject 1-3 digits, detail 1-3 digits, then a space or
 * the end. */
static void smtp_reply_enhanced(struct smtp_reply *r, const char *text,
				size_t len)
{
	size_t i = 0, n;

	r->enhanced[0] = '\0';
	if (len < 5 || text[0] != (char)('0' + r->code / 100) || text[1] != '.')
		return;
	i = 2;
	for (int part = 0; part < 2; part++) {
		n = 0;
		while (i < len && text[i] >= '0' && text[i] <= '9' && n < 4) {
			i++;
			n++;
		}
		if (n == 0 || n > 3)
			return;
		if (part == 0) {
			if (i >= len || text[i] != '.')
				return;
			i++;
		}
	}
	if (i < len && text[i] != ' ')
		return;
	memcpy(r->enhanced, text, i);
	r->enhanced[i] = '\0';
}

/* The line starts with word (any case) followed by the end or a space. */
static bool smtp_ehlo_word(const char *line, size_t len, const char *word)
{
	size_t wl = strlen(word);

	return len >= wl && ascii_strncaseeq(line, word, wl) &&
	       (len == wl || line[wl] == ' ' || line[wl] == '=');
}

void smtp_ehlo_parse(const struct smtp_reply *reply, struct smtp_ehlo *ehlo_r)
{
	const char *p = reply->text, *end = reply->text + reply->text_len;
	bool first = true;

	memset(ehlo_r, 0, sizeof(*ehlo_r));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		if (!first) {
			if (smtp_ehlo_word(p, len, "PIPELINING"))
				ehlo_r->pipelining = true;
			else if (smtp_ehlo_word(p, len, "STARTTLS"))
				ehlo_r->starttls = true;
			else if (smtp_ehlo_word(p, len, "8BITMIME"))
				ehlo_r->eightbitmime = true;
			else if (smtp_ehlo_word(p, len, "SMTPUTF8"))
				ehlo_r->smtputf8 = true;
			else if (smtp_ehlo_word(p, len, "ENHANCEDSTATUSCODES"))
				ehlo_r->enhanced = true;
			else if (smtp_ehlo_word(p, len, "SIZE")) {
				char num[24];
				const char *q = num;
				uint64_t v;
				size_t nl2 = len > 5 ? len - 5 : 0;

				ehlo_r->size = true;
				if (nl2 > 0 && nl2 < sizeof(num)) {
					memcpy(num, p + 5, nl2);
					num[nl2] = '\0';
					if (parse_uint64(&q, UINT64_MAX, &v) ==
						0 &&
					    parse_end(&q) == 0)
						ehlo_r->size_max = v;
				}
			} else if (smtp_ehlo_word(p, len, "AUTH")) {
				/* AUTH mech mech ...: look for PLAIN. */
				for (size_t i = 4; i + 5 <= len; i++) {
					if ((p[i - 1] == ' ' ||
					     p[i - 1] == '=') &&
					    smtp_ehlo_word(p + i, len - i,
							   "PLAIN"))
						ehlo_r->auth_plain = true;
				}
			}
		}
		first = false;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
}

void smtp_data_encoder_init(struct smtp_data_encoder *e)
{
	e->line_start = true;
	e->prev_cr = false;
}

size_t smtp_data_encode(struct smtp_data_encoder *e, const char *in, size_t len,
			char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '\n') {
			if (!e->prev_cr)
				out[o++] = '\r';
			out[o++] = '\n';
			e->line_start = true;
			e->prev_cr = false;
			continue;
		}
		if (c == '.' && e->line_start)
			out[o++] = '.';
		out[o++] = c;
		e->line_start = false;
		e->prev_cr = c == '\r';
	}
	return o;
}

size_t smtp_data_encode_end(struct smtp_data_encoder *e, char *out)
{
	size_t o = 0;

	if (!e->line_start) {
		if (!e->prev_cr)
			out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	e->line_start = true;
	e->prev_cr = false;
	return o + 3;
}

bool smtp_client_needs_utf8(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80)
			return true;
	}
	return false;
}

unsigned smtp_reply_class(const struct smtp_reply *r)
{
	return r->code / 100;
}

char *smtp_reply_format(const struct smtp_reply *r, char *out, size_t size)
{
	size_t o = 0;
	int n;

	if (size == 0)
		return out;
	n = snprintf(out, size, "%03u", r->code);
	if (n < 0 || (size_t)n >= size) {
		out[0] = '\0';
		return out;
	}
	o = (size_t)n;
	if (r->text_len > 0 && o + 1 < size)
		out[o++] = ' ';
	for (size_t i = 0; i < r->text_len && o + 1 < size; i++) {
		unsigned char c = (unsigned char)r->text[i];

		if (c == '\n') {
			if (o + 3 >= size)
				break;
			memcpy(out + o, " / ", 3);
			o += 3;
			continue;
		}
		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[o] = '\0';
	return out;
}
