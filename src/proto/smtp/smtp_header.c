#include "proto/smtp/smtp_header.h"

#include <limits.h>
#include <string.h>

#include "lib/parse.h"

static void smtp_header_line(struct smtp_header_scan *h);
static void smtp_header_overflow(struct smtp_header_scan *h);
static void smtp_header_field_end(struct smtp_header_scan *h);
static bool smtp_header_name_is(const char *line, size_t len, const char *name);
static bool smtp_header_mailbox_is(const char *addr, size_t len,
				   const char *user);

void smtp_header_init(struct smtp_header_scan *h, const char *user,
		      smtp_header_out_fn *out, smtp_header_end_fn *at_end,
		      void *ctx)
{
	memset(h, 0, sizeof(*h));
	h->user = user;
	h->out = out;
	h->at_end = at_end;
	h->ctx = ctx;
}

/* "Name:" or the obsolete "Name :" (RFC 5322 section 4.5.3 allows white
 * space before the colon). */
static bool smtp_header_name_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (len < n || !ascii_strncaseeq(line, name, n))
		return false;
	while (n < len && (line[n] == ' ' || line[n] == '\t'))
		n++;
	return n < len && line[n] == ':';
}

static void smtp_header_field_end(struct smtp_header_scan *h)
{
	if (!h->in_from)
		return;
	h->in_from = false;
	if (!smtp_header_from_is(h->field, h->field_len, h->user))
		h->from_mismatch = true;
}

/* One complete line (with its CRLF) of the header section. */
static void smtp_header_line(struct smtp_header_scan *h)
{
	const char *line = h->line;
	size_t len = h->line_len;
	size_t body = len;

	while (body > 0 && (line[body - 1] == '\n' || line[body - 1] == '\r'))
		body--;
	if (body == 0) {
		/* The empty line: the header section ends here. */
		smtp_header_field_end(h);
		h->at_end(h->ctx, h->have_message_id, h->have_date);
		h->done = true;
		return;
	}
	if (line[0] == ' ' || line[0] == '\t') {
		/* A folded continuation of the field before. */
		if (h->in_from) {
			if (h->field_len + body > SMTP_HEADER_MAX_FROM) {
				h->from_mismatch = true;
				h->in_from = false;
			} else {
				memcpy(h->field + h->field_len, line, body);
				h->field_len += body;
			}
		}
		return;
	}
	smtp_header_field_end(h);
	/* No user (sender_login_match = no): From: is not examined, only
	 * Message-ID and Date are looked for. */
	if (h->user != NULL && smtp_header_name_is(line, body, "From")) {
		const char *colon = memchr(line, ':', body);
		size_t vlen = body - (size_t)(colon + 1 - line);

		/* RFC 5322 section 3.6: exactly one From: field. */
		if (++h->from_count > 1)
			h->from_mismatch = true;
		h->in_from = true;
		memcpy(h->field, colon + 1, vlen);
		h->field_len = vlen;
	} else if (smtp_header_name_is(line, body, "Received")) {
		if (h->received_count < UINT_MAX)
			h->received_count++;
	} else if (smtp_header_name_is(line, body, "Message-ID")) {
		h->have_message_id = true;
	} else if (smtp_header_name_is(line, body, "Date")) {
		h->have_date = true;
	}
}

/*
 * A header line longer than the buffer (long To: lists and the like are
 * common): what its start says is taken into account, then the start is
 * sent on and the rest of the line passes through unexamined. A From:
 * that long cannot be checked whole and counts as a mismatch.
 */
static void smtp_header_overflow(struct smtp_header_scan *h)
{
	bool was_from = h->in_from;

	smtp_header_line(h);
	if (h->in_from ||
	    (was_from && (h->line[0] == ' ' || h->line[0] == '\t'))) {
		h->from_mismatch = true;
		h->in_from = false;
	}
	h->out(h->ctx, h->line, h->line_len);
	h->line_len = 0;
	h->line_overflow = true;
}

void smtp_header_feed(struct smtp_header_scan *h, const char *in, size_t len)
{
	size_t i = 0;

	while (i < len && !h->done) {
		char c = in[i++];

		if (h->line_overflow) {
			const char *lf = memchr(in + i - 1, '\n', len - i + 1);
			size_t run = lf != NULL
					 ? (size_t)(lf - (in + i - 1)) + 1
					 : len - i + 1;

			h->out(h->ctx, in + i - 1, run);
			i += run - 1;
			if (lf != NULL)
				h->line_overflow = false;
			continue;
		}
		if (h->line_len == sizeof(h->line) - 1) {
			smtp_header_overflow(h);
			i--;
			continue;
		}
		h->line[h->line_len++] = c;
		if (c != '\n')
			continue;
		smtp_header_line(h);
		/* The end-of-header hook wrote its fields before this
		 * empty line goes out. */
		h->out(h->ctx, h->line, h->line_len);
		h->line_len = 0;
	}
	if (i < len)
		h->out(h->ctx, in + i, len - i);
}

void smtp_header_finish(struct smtp_header_scan *h)
{
	if (h->done)
		return;
	/* The message was all header: the fields go after the last
	 * complete line, before any unterminated one. */
	smtp_header_field_end(h);
	h->at_end(h->ctx, h->have_message_id, h->have_date);
	h->done = true;
	if (h->line_len > 0)
		h->out(h->ctx, h->line, h->line_len);
	h->line_len = 0;
}

/* One mailbox's addr-spec, without comments and white space: is it the
 * user? A quoted local part is compared unquoted. */
static bool smtp_header_mailbox_is(const char *addr, size_t len,
				   const char *user)
{
	char flat[SMTP_HEADER_MAX_FROM + 1];
	size_t n = 0;
	bool quoted = false;
	int depth = 0;

	for (size_t i = 0; i < len && n < sizeof(flat) - 1; i++) {
		char c = addr[i];

		if (quoted) {
			if (c == '\\' && i + 1 < len)
				c = addr[++i];
			else if (c == '"') {
				quoted = false;
				continue;
			}
			flat[n++] = c;
		} else if (depth > 0) {
			if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			else if (c == '\\')
				i++;
		} else if (c == '(') {
			depth++;
		} else if (c == '"') {
			quoted = true;
		} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			flat[n++] = c;
		}
	}
	flat[n] = '\0';
	/* An obsolete route in an angle address: "@a,@b:user@c". */
	if (flat[0] == '@') {
		char *colon = strchr(flat, ':');

		if (colon == NULL)
			return false;
		memmove(flat, colon + 1, strlen(colon + 1) + 1);
	}
	return n > 0 && strlen(flat) == strlen(user) &&
	       ascii_strncaseeq(flat, user, strlen(flat));
}

bool smtp_header_from_is(const char *value, size_t len, const char *user)
{
	const char *start = value, *lt = NULL, *gt = NULL;
	unsigned mailboxes = 0;
	bool quoted = false;
	int depth = 0;

	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? value[i] : ',';
		bool sep;

		if (quoted) {
			if (c == '\\')
				i++;
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (depth > 0) {
			if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			else if (c == '\\')
				i++;
			continue;
		}
		if (c == '"' && lt == NULL) {
			quoted = true;
			continue;
		}
		if (c == '(') {
			depth++;
			continue;
		}
		if (c == '<' && lt == NULL)
			lt = value + i;
		else if (c == '>' && lt != NULL && gt == NULL)
			gt = value + i;
		/* A group's name ends at ':' and its list at ';'. */
		sep = c == ',' || c == ';' || (c == ':' && lt == NULL);
		if (!sep)
			continue;
		if (c == ':') {
			start = value + i + 1;
			continue;
		}
		if (lt != NULL) {
			if (gt == NULL ||
			    !smtp_header_mailbox_is(
				lt + 1, (size_t)(gt - lt - 1), user))
				return false;
			mailboxes++;
		} else {
			const char *end = value + (i < len ? i : len);
			bool blank = true;

			for (const char *p = start; p < end; p++)
				blank = blank && (*p == ' ' || *p == '\t' ||
						  *p == '\r' || *p == '\n');
			if (!blank) {
				if (!smtp_header_mailbox_is(
					start, (size_t)(end - start), user))
					return false;
				mailboxes++;
			}
		}
		start = value + i + 1;
		lt = gt = NULL;
	}
	return mailboxes > 0 && !quoted && depth == 0;
}
