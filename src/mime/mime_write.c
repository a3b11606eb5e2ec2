/*
 * ENVELOPE and BODY/BODYSTRUCTURE in IMAP syntax (RFC 9051 sections 7.5.2
 * and 9), written the way Dovecot 2.3 writes them, byte for byte, so that
 * clients that cache structures see the same thing after a migration:
 * header values unfolded and raw (no RFC 2047 decoding), case kept, the
 * subject's blanks squeezed, a literal wherever a quoted string would need
 * CR, LF, 8-bit or many escapes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "mime/mime.h"
#include "mime/mime_int.h"
#include "mime/mime_rfc822.h"

/* What a multipart without parts gets instead of its missing parts. */
#define EMPTY_BODY                                                             \
	"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
#define EMPTY_BODYSTRUCTURE                                                    \
	"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 " \
	"NIL NIL NIL NIL)"

/* Output with a sticky error: the first failed append makes the whole
 * write fail. */
struct w {
	struct buf *out;
	int err;
};

static void put(struct w *w, const char *s, size_t n);
static void puts_(struct w *w, const char *s);
static void put_nstring_nolf(struct w *w, const char *s);
static void write_part(struct w *w, const struct mime_msg *msg,
		       const char *wire, const struct mime_part *p,
		       bool extended);
static void write_envelope(struct w *w, const struct mime_msg *msg,
			   const char *wire, const struct mime_part *m);

static void put(struct w *w, const char *s, size_t n)
{
	if (w->err == 0 && buf_append(w->out, s, n) < 0)
		w->err = -1;
}

static void puts_(struct w *w, const char *s)
{
	put(w, s, strlen(s));
}

/* Is s[0..len) valid UTF-8 (RFC 3629: no overlongs, no surrogates)? A
 * quoted string may carry 8-bit octets only as UTF-8 (RFC 9051 section
 * 4.3 with UTF8=ACCEPT). */
static bool valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1fu;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0fu;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07u;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3fu);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

int mime_write_nstring(struct buf *out, const char *s, size_t len, bool utf8_ok)
{
	size_t i, escapes = 0;
	bool literal = false;
	char head[32];
	int n;

	if (s == NULL)
		return buf_append_str(out, "NIL");
	for (i = 0; i < len && !literal; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			/* Dovecot: past four escapes a literal reads better */
			if (++escapes > 4)
				literal = true;
		} else if (c == '\r' || c == '\n' || c == '\0' ||
			   (c >= 0x80 && !utf8_ok)) {
			literal = true;
		}
	}
	if (!literal && utf8_ok && !valid_utf8((const unsigned char *)s, len))
		literal = true;
	if (literal) {
		n = snprintf(head, sizeof(head), "{%zu}\r\n", len);
		if (buf_append(out, head, (size_t)n) < 0)
			return -1;
		for (i = 0; i < len; i++) {
			/* a literal cannot carry NUL (RFC 9051 section 4.3) */
			char c = s[i] == '\0' ? (char)0x80 : s[i];

			if (buf_append(out, &c, 1) < 0)
				return -1;
		}
		return 0;
	}
	if (buf_append(out, "\"", 1) < 0)
		return -1;
	for (i = 0; i < len; i++) {
		if ((s[i] == '"' || s[i] == '\\') &&
		    buf_append(out, "\\", 1) < 0)
			return -1;
		if (buf_append(out, s + i, 1) < 0)
			return -1;
	}
	return buf_append(out, "\"", 1);
}

static void put_nstring(struct w *w, const char *s)
{
	if (w->err == 0 &&
	    mime_write_nstring(w->out, s, s == NULL ? 0 : strlen(s), false) < 0)
		w->err = -1;
}

/* Dovecot's imap_append_nstring_nolf(): CR and LF dropped, or turned
 * into a space when what follows is not a blank (a bare CR inside a
 * line). */
static void put_nstring_nolf(struct w *w, const char *s)
{
	char *t;
	size_t i, n = 0;

	if (s == NULL || strpbrk(s, "\r\n") == NULL) {
		put_nstring(w, s);
		return;
	}
	t = xstrdup(s);
	for (i = 0; s[i] != '\0'; i++) {
		char next = s[i + 1];

		if (s[i] != '\r' && s[i] != '\n')
			t[n++] = s[i];
		else if (next != ' ' && next != '\t' && next != '\r' &&
			 next != '\n' && next != '\0')
			t[n++] = ' ';
	}
	t[n] = '\0';
	put_nstring(w, t);
	free(t);
}

/* Dovecot's imap_append_string_for_humans(): blanks squeezed to one
 * space, trimmed, and then a literal whenever anything changed. */
static void put_for_humans(struct w *w, const char *s, size_t size)
{
	size_t i, remove = 0, out = 0;
	bool ws_prefix = true, last_lwsp = true, modify = false;
	char head[32];
	int n;

	for (i = 0; i < size; i++) {
		switch (s[i]) {
		case 0:
			last_lwsp = false;
			modify = true;
			break;
		case '\r':
		case '\n':
		case '\t':
		case ' ':
			if (s[i] != ' ')
				modify = true;
			if (last_lwsp) {
				modify = true;
				remove++;
			}
			last_lwsp = true;
			break;
		case '"':
		case '\\':
			/* Dovecot sends these in a literal, not escaped */
			modify = true;
			ws_prefix = false;
			last_lwsp = false;
			break;
		default:
			ws_prefix = false;
			last_lwsp = false;
			break;
		}
	}
	if (last_lwsp && i > 0 && !ws_prefix) {
		modify = true;
		remove++;
	}
	if (!modify) {
		if (w->err == 0 &&
		    mime_write_nstring(w->out, s, size, false) < 0)
			w->err = -1;
		return;
	}
	if (size == remove) {
		puts_(w, "\"\"");
		return;
	}
	n = snprintf(head, sizeof(head), "{%zu}\r\n", size - remove);
	put(w, head, (size_t)n);
	last_lwsp = true;
	ws_prefix = true;
	for (i = 0; i < size && out < size - remove; i++) {
		char c = s[i];

		switch (c) {
		case 0:
			put(w, "\x80", 1);
			out++;
			last_lwsp = false;
			ws_prefix = false;
			break;
		case '\r':
		case '\n':
		case '\t':
		case ' ':
			if (!last_lwsp) {
				put(w, " ", 1);
				out++;
			}
			last_lwsp = true;
			break;
		default:
			ws_prefix = false;
			last_lwsp = false;
			put(w, &c, 1);
			out++;
			break;
		}
	}
}

/* ---- ENVELOPE ---- */

enum env_field {
	ENV_DATE,
	ENV_SUBJECT,
	ENV_FROM,
	ENV_SENDER,
	ENV_REPLY_TO,
	ENV_TO,
	ENV_CC,
	ENV_BCC,
	ENV_IN_REPLY_TO,
	ENV_MESSAGE_ID,
	ENV_COUNT
};

static const char *const env_names[ENV_COUNT] = {
    "Date", "Subject", "From", "Sender",      "Reply-To",
    "To",   "Cc",      "Bcc",  "In-Reply-To", "Message-ID",
};

static bool env_is_address(int f)
{
	return f >= ENV_FROM && f <= ENV_BCC;
}

struct envelope {
	char *str[ENV_COUNT]; /* the last field of each name, unfolded */
	size_t len[ENV_COUNT];
	struct mime_addrs addrs[ENV_COUNT];
	bool seen[ENV_COUNT];
};

/* Dovecot keeps the last Date/Subject/... and merges every address
 * field of one name as if they were one comma-separated list. */
static void envelope_read(struct envelope *e, const char *wire,
			  const struct mime_part *m)
{
	struct mime_hiter it;
	struct mime_field f;
	int i;

	memset(e, 0, sizeof(*e));
	mime_hiter_init(&it, wire, m);
	while (mime_hiter_next(&it, &f)) {
		for (i = 0; i < ENV_COUNT; i++)
			if (mime_field_is(&f, env_names[i]))
				break;
		if (i == ENV_COUNT)
			continue;
		if (env_is_address(i)) {
			char *v;
			size_t vlen;

			v = mime_unfold(f.value, f.value_len, &vlen);
			mime_addrs_parse(v, vlen, &e->addrs[i]);
			free(v);
		} else {
			free(e->str[i]);
			e->str[i] =
			    mime_header_copy(f.value, f.value_len, true, NULL);
			/* the subject keeps its breaks: they are blanks */
			if (i == ENV_SUBJECT) {
				free(e->str[i]);
				e->str[i] = mime_header_copy(
				    f.value, f.value_len, false, &e->len[i]);
			}
		}
		e->seen[i] = true;
	}
}

static void envelope_free(struct envelope *e)
{
	int i;

	for (i = 0; i < ENV_COUNT; i++) {
		free(e->str[i]);
		mime_addrs_free(&e->addrs[i]);
	}
}

static void write_addrs(struct w *w, const struct mime_addrs *l)
{
	size_t i;

	if (l->n == 0) {
		puts_(w, "NIL");
		return;
	}
	puts_(w, "(");
	for (i = 0; i < l->n; i++) {
		puts_(w, "(");
		if (l->a[i].name == NULL)
			puts_(w, "NIL");
		else
			put_for_humans(w, l->a[i].name, strlen(l->a[i].name));
		puts_(w, " ");
		put_nstring_nolf(w, l->a[i].route);
		puts_(w, " ");
		put_nstring_nolf(w, l->a[i].mailbox);
		puts_(w, " ");
		put_nstring_nolf(w, l->a[i].domain);
		puts_(w, ")");
	}
	puts_(w, ")");
}

static void write_envelope(struct w *w, const struct mime_msg *msg,
			   const char *wire, const struct mime_part *m)
{
	struct envelope e;
	const struct mime_addrs *from;

	(void)msg;
	envelope_read(&e, wire, m);
	put_nstring_nolf(w, e.str[ENV_DATE]);
	puts_(w, " ");
	if (e.str[ENV_SUBJECT] == NULL) {
		puts_(w, "NIL");
	} else {
		put_for_humans(w, e.str[ENV_SUBJECT], e.len[ENV_SUBJECT]);
	}
	from = &e.addrs[ENV_FROM];
	puts_(w, " ");
	write_addrs(w, from);
	puts_(w, " ");
	write_addrs(w, e.addrs[ENV_SENDER].n > 0 ? &e.addrs[ENV_SENDER] : from);
	puts_(w, " ");
	write_addrs(w, e.addrs[ENV_REPLY_TO].n > 0 ? &e.addrs[ENV_REPLY_TO]
						   : from);
	puts_(w, " ");
	write_addrs(w, &e.addrs[ENV_TO]);
	puts_(w, " ");
	write_addrs(w, &e.addrs[ENV_CC]);
	puts_(w, " ");
	write_addrs(w, &e.addrs[ENV_BCC]);
	puts_(w, " ");
	put_nstring_nolf(w, e.str[ENV_IN_REPLY_TO]);
	puts_(w, " ");
	put_nstring_nolf(w, e.str[ENV_MESSAGE_ID]);
	envelope_free(&e);
}

int mime_write_envelope(const struct mime_msg *msg, const char *wire,
			struct buf *out)
{
	struct w w = {out, 0};

	write_envelope(&w, msg, wire, &msg->parts[0]);
	return w.err;
}

/* ---- BODY / BODYSTRUCTURE ---- */

/* The Content-* data of one part (Dovecot's message_part_data). */
struct part_data {
	struct mime_ctype ct; /* type NULL: no Content-Type */
	char *id, *description, *cte, *md5, *location;
	char *disposition; /* NULL: none */
	struct mime_param *disp_params;
	size_t disp_param_count;
	char **langs;
	size_t lang_count;
};

static void parse_cte(struct part_data *d, const char *v, size_t len)
{
	struct mime_rp rp;
	struct mime_str s = {0};

	mime_rp_init(&rp, v, len);
	mime_rp_skip_lwsp(&rp);
	if (mime_rp_mime_token(&rp, &s) >= 0 && mime_rp_skip_lwsp(&rp) == 0 &&
	    s.len > 0)
		d->cte = mime_str_take(&s);
	mime_str_free(&s);
}

static void parse_disposition(struct part_data *d, const char *v, size_t len)
{
	struct mime_rp rp;
	struct mime_str s = {0};

	mime_rp_init(&rp, v, len);
	mime_rp_skip_lwsp(&rp);
	if (mime_rp_mime_token(&rp, &s) < 0) {
		mime_str_free(&s);
		return;
	}
	d->disposition = mime_str_take(&s);
	mime_rp_params(&rp, &d->disp_params, &d->disp_param_count);
}

static void parse_language(struct part_data *d, const char *v, size_t len)
{
	struct mime_rp rp;
	struct mime_str s = {0};
	size_t cap = 0;

	mime_rp_init(&rp, v, len);
	mime_rp_skip_lwsp(&rp);
	while (d->lang_count < MIME_MAX_PARAMS && mime_rp_atom(&rp, &s) >= 0) {
		if (d->lang_count == cap) {
			cap = cap == 0 ? 4 : cap * 2;
			d->langs = xreallocarray(d->langs, cap, sizeof(char *));
		}
		d->langs[d->lang_count++] = mime_str_take(&s);
		if (rp.data >= rp.end || *rp.data != ',')
			break;
		rp.data++;
		mime_rp_skip_lwsp(&rp);
	}
	mime_str_free(&s);
}

/* Reads the first of each Content-* field (later ones do not count),
 * and none at all when the part is not MIME. */
static void part_data_read(struct part_data *d, const char *wire,
			   const struct mime_part *p)
{
	struct mime_hiter it;
	struct mime_field f;
	bool ct_seen = false, disp_seen = false, lang_seen = false;

	memset(d, 0, sizeof(*d));
	if ((p->flags & MIME_FLAG_IS_MIME) == 0)
		return;
	mime_hiter_init(&it, wire, p);
	while (mime_hiter_next(&it, &f)) {
		size_t vlen;
		char *v;

		if (f.name_len < 8 || strncasecmp(f.name, "Content-", 8) != 0 ||
		    !f.has_colon)
			continue;
		/* the strings shown as they are get U+FFFD for NUL, the
		 * parsed ones stop at it */
		if (mime_field_is(&f, "Content-ID") ||
		    mime_field_is(&f, "Content-Description") ||
		    mime_field_is(&f, "Content-MD5") ||
		    mime_field_is(&f, "Content-Location"))
			v = mime_header_copy(f.value, f.value_len, true, &vlen);
		else
			v = mime_unfold(f.value, f.value_len, &vlen);
		if (mime_field_is(&f, "Content-Type") && !ct_seen) {
			mime_ctype_parse(v, vlen, &d->ct);
			ct_seen = true;
		} else if (mime_field_is(&f, "Content-Transfer-Encoding") &&
			   d->cte == NULL) {
			parse_cte(d, v, vlen);
		} else if (mime_field_is(&f, "Content-ID") && d->id == NULL) {
			d->id = v;
			v = NULL;
		} else if (mime_field_is(&f, "Content-Description") &&
			   d->description == NULL) {
			d->description = v;
			v = NULL;
		} else if (mime_field_is(&f, "Content-MD5") && d->md5 == NULL) {
			d->md5 = v;
			v = NULL;
		} else if (mime_field_is(&f, "Content-Location") &&
			   d->location == NULL) {
			d->location = v;
			v = NULL;
		} else if (mime_field_is(&f, "Content-Disposition") &&
			   !disp_seen) {
			parse_disposition(d, v, vlen);
			disp_seen = true;
		} else if (mime_field_is(&f, "Content-Language") &&
			   !lang_seen) {
			parse_language(d, v, vlen);
			lang_seen = true;
		}
		free(v);
	}
}

static void part_data_free(struct part_data *d)
{
	size_t i;

	mime_ctype_free(&d->ct);
	free(d->id);
	free(d->description);
	free(d->cte);
	free(d->md5);
	free(d->location);
	free(d->disposition);
	for (i = 0; i < d->disp_param_count; i++) {
		free(d->disp_params[i].name);
		free(d->disp_params[i].value);
	}
	free(d->disp_params);
	for (i = 0; i < d->lang_count; i++)
		free(d->langs[i]);
	free(d->langs);
}

/* ("name" "value" ...), NIL when empty; text parts get a charset. */
static void write_params(struct w *w, const struct mime_param *params,
			 size_t count, bool default_charset)
{
	size_t i;
	bool seen_charset = false;

	if (!default_charset && count == 0) {
		puts_(w, "NIL");
		return;
	}
	puts_(w, "(");
	for (i = 0; i < count; i++) {
		if (i > 0)
			puts_(w, " ");
		if (strcasecmp(params[i].name, "charset") == 0)
			seen_charset = true;
		put_nstring(w, params[i].name);
		puts_(w, " ");
		put_nstring(w, params[i].value);
	}
	if (default_charset && !seen_charset) {
		if (i > 0)
			puts_(w, " ");
		puts_(w, "\"charset\" \"us-ascii\"");
	}
	puts_(w, ")");
}

/* disposition, language, location: the tail of every BODYSTRUCTURE. */
static void write_common_ext(struct w *w, const struct part_data *d)
{
	size_t i;

	puts_(w, " ");
	if (d->disposition == NULL) {
		puts_(w, "NIL");
	} else {
		puts_(w, "(");
		put_nstring(w, d->disposition);
		puts_(w, " ");
		write_params(w, d->disp_params, d->disp_param_count, false);
		puts_(w, ")");
	}
	puts_(w, " ");
	if (d->lang_count == 0) {
		puts_(w, "NIL");
	} else {
		puts_(w, "(");
		for (i = 0; i < d->lang_count; i++) {
			if (i > 0)
				puts_(w, " ");
			put_nstring(w, d->langs[i]);
		}
		puts_(w, ")");
	}
	puts_(w, " ");
	put_nstring_nolf(w, d->location);
}

static void write_multipart(struct w *w, const struct mime_msg *msg,
			    const char *wire, const struct mime_part *p,
			    const struct part_data *d, bool extended)
{
	uint32_t i;

	if (p->first_child == MIME_NONE)
		puts_(w, extended ? EMPTY_BODYSTRUCTURE : EMPTY_BODY);
	for (i = p->first_child; i != MIME_NONE; i = msg->parts[i].next)
		write_part(w, msg, wire, &msg->parts[i], extended);
	puts_(w, " ");
	put_nstring(w, d->ct.subtype);
	if (!extended)
		return;
	puts_(w, " ");
	write_params(w, d->ct.params, d->ct.param_count, false);
	write_common_ext(w, d);
}

static void write_leaf(struct w *w, const struct mime_msg *msg,
		       const char *wire, const struct mime_part *p,
		       const struct part_data *d, bool extended)
{
	bool text = false;
	char num[64];
	int n;

	if (p->kind == MIME_KIND_RFC822) {
		puts_(w, "\"message\" \"rfc822\"");
	} else if (p->kind == MIME_KIND_RFC822_OPAQUE) {
		puts_(w, "\"application\" \"octet-stream\"");
	} else if (d->ct.type == NULL) {
		text = true;
		puts_(w, "\"text\" \"plain\"");
	} else {
		text = strcasecmp(d->ct.type, "text") == 0;
		put_nstring(w, d->ct.type);
		puts_(w, " ");
		put_nstring(w, d->ct.subtype);
	}
	puts_(w, " ");
	write_params(w, d->ct.params, d->ct.param_count, text);
	puts_(w, " ");
	put_nstring_nolf(w, d->id);
	puts_(w, " ");
	put_nstring_nolf(w, d->description);
	puts_(w, " ");
	if (d->cte != NULL)
		put_nstring(w, d->cte);
	else
		puts_(w, "\"7bit\"");
	n = snprintf(num, sizeof(num), " %zu", p->body_len);
	put(w, num, (size_t)n);
	if (text) {
		n = snprintf(num, sizeof(num), " %zu", p->body_lines);
		put(w, num, (size_t)n);
	} else if (p->kind == MIME_KIND_RFC822) {
		const struct mime_part *m = &msg->parts[p->first_child];

		puts_(w, " (");
		write_envelope(w, msg, wire, m);
		puts_(w, ") ");
		write_part(w, msg, wire, m, extended);
		n = snprintf(num, sizeof(num), " %zu", p->body_lines);
		put(w, num, (size_t)n);
	}
	if (!extended)
		return;
	puts_(w, " ");
	put_nstring_nolf(w, d->md5);
	write_common_ext(w, d);
}

static void write_part(struct w *w, const struct mime_msg *msg,
		       const char *wire, const struct mime_part *p,
		       bool extended)
{
	struct part_data d;

	part_data_read(&d, wire, p);
	puts_(w, "(");
	if (p->kind == MIME_KIND_MULTIPART)
		write_multipart(w, msg, wire, p, &d, extended);
	else
		write_leaf(w, msg, wire, p, &d, extended);
	puts_(w, ")");
	part_data_free(&d);
}

int mime_write_bodystructure(const struct mime_msg *msg, const char *wire,
			     bool extended, struct buf *out)
{
	struct w w = {out, 0};

	write_part(&w, msg, wire, &msg->parts[0], extended);
	return w.err;
}
