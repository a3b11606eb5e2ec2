/*
 * Decoding for BINARY[] and SEARCH: transfer encodings, RFC 2047 words,
 * charsets and the Date: field. GMime (a Debian package) does the
 * decoding itself; this file only picks what to decode. The structure
 * and the byte offsets stay ours (mime.c): GMime's object model does not
 * say where a part's bytes are in the wire form.
 */
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xmalloc.h"
#include "mime/mime.h"
#include "mime/mime_int.h"
#include "mime/mime_rfc822.h"

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_start(void)
{
	g_mime_init();
}

/* The part's Content-Transfer-Encoding in lower case, NULL without one,
 * or "" when the field is not a single token (Dovecot then answers
 * UNKNOWN-CTE). Read even without MIME-Version, as Dovecot does. */
static char *part_cte(const char *wire, const struct mime_part *p)
{
	struct mime_hiter it;
	struct mime_field f;
	struct mime_rp rp;
	struct mime_str s = {0};
	size_t len, i;
	char *v = NULL;

	mime_hiter_init(&it, wire, p);
	while (v == NULL && mime_hiter_next(&it, &f))
		if (mime_field_is(&f, "Content-Transfer-Encoding"))
			v = mime_unfold(f.value, f.value_len, &len);
	if (v == NULL)
		return NULL;
	mime_rp_init(&rp, v, len);
	mime_rp_skip_lwsp(&rp);
	if (mime_rp_mime_token(&rp, &s) < 0 || mime_rp_skip_lwsp(&rp) != 0 ||
	    s.len == 0) {
		free(v);
		mime_str_free(&s);
		return xstrdup("");
	}
	free(v);
	for (i = 0; i < s.len; i++)
		if (s.s[i] >= 'A' && s.s[i] <= 'Z')
			s.s[i] = (char)(s.s[i] - 'A' + 'a');
	return mime_str_take(&s);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* One line of quoted-printable text (no line end, trailing blanks already
 * cut off): "=XX" is a byte, any other '=' stays as it is. */
static size_t qp_decode_text(const char *in, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (in[i] == '=' && i + 2 < len &&
		    (hi = hex_value(in[i + 1])) >= 0 &&
		    (lo = hex_value(in[i + 2])) >= 0) {
			out[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[n++] = in[i];
		}
	}
	return n;
}

/*
 * Quoted-printable (RFC 2045 6.7), line by line as Dovecot decodes it:
 * blanks at the end of a line were added in transport and go (rule 3); a
 * line ending in '=' (blanks after it included) is a soft line break;
 * every other line keeps its own line end. GMime's decoder keeps both
 * kinds of blanks, which made BINARY.SIZE differ (imaptest
 * fetch-binary-mime-qp). out has room for len bytes.
 */
static size_t qp_decode(const char *in, size_t len, char *out)
{
	size_t n = 0, pos = 0;

	while (pos < len) {
		const char *lf = memchr(in + pos, '\n', len - pos);
		size_t end = lf == NULL ? len : (size_t)(lf - in);
		size_t next = lf == NULL ? len : end + 1;
		size_t text_end = end;
		bool cr = end > pos && in[end - 1] == '\r';

		if (cr)
			text_end--;
		while (text_end > pos &&
		       (in[text_end - 1] == ' ' || in[text_end - 1] == '\t'))
			text_end--;
		if (text_end > pos && in[text_end - 1] == '=') {
			n += qp_decode_text(in + pos, text_end - 1 - pos,
					    out + n);
		} else {
			n += qp_decode_text(in + pos, text_end - pos, out + n);
			if (cr)
				out[n++] = '\r';
			if (lf != NULL)
				out[n++] = '\n';
		}
		pos = next;
	}
	return n;
}

/* Decodes in[0..len) per cte into a malloc'd buffer. Returns -2 for an
 * encoding we cannot undo. */
static int decode_cte(const char *cte, const char *in, size_t len, char **out_r,
		      size_t *len_r)
{
	GMimeContentEncoding enc;
	int state = 0;
	guint32 save = 0;
	char *out;

	pthread_once(&gmime_once, gmime_start);
	if (cte == NULL || strcmp(cte, "7bit") == 0 ||
	    strcmp(cte, "8bit") == 0 || strcmp(cte, "binary") == 0) {
		out = xmalloc(len + 1);
		memcpy(out, in, len);
		*out_r = out;
		*len_r = len;
		return 0;
	}
	enc = cte[0] == '\0' ? GMIME_CONTENT_ENCODING_DEFAULT
			     : g_mime_content_encoding_from_string(cte);
	out = xmalloc(len + 4);
	switch (enc) {
	case GMIME_CONTENT_ENCODING_BASE64:
		*len_r = g_mime_encoding_base64_decode_step(
		    (const unsigned char *)in, len, (unsigned char *)out,
		    &state, &save);
		break;
	case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE:
		*len_r = qp_decode(in, len, out);
		break;
	default:
		free(out);
		return -2;
	}
	*out_r = out;
	return 0;
}

int mime_binary(const struct mime_msg *msg, const char *wire,
		const unsigned *part, size_t depth, struct buf *out)
{
	const struct mime_part *p;
	char *cte, *dec;
	size_t len;
	int ret;

	if (depth == 0)
		return buf_append(out, wire, msg->wire_len);
	if (depth > 32 || (p = mime_lookup(msg, part, depth)) == NULL)
		return -1;
	if (p->kind == MIME_KIND_MULTIPART || p->kind == MIME_KIND_RFC822)
		return buf_append(out, wire + p->body_off, p->body_len);
	cte = part_cte(wire, p);
	ret = decode_cte(cte, wire + p->body_off, p->body_len, &dec, &len);
	free(cte);
	if (ret < 0)
		return ret;
	ret = buf_append(out, dec, len);
	free(dec);
	return ret;
}

/* ---- SEARCH ---- */

/* text (any bytes) as valid UTF-8, case-folded: a malloc'd string. */
static char *fold(const char *text, size_t len)
{
	gchar *valid = g_utf8_make_valid(text, (gssize)len);
	gchar *folded = g_utf8_casefold(valid, -1);
	char *out = xstrdup(folded);

	g_free(valid);
	g_free(folded);
	return out;
}

static bool contains(const char *haystack, size_t len, const char *needle)
{
	char *h, *n;
	bool found;

	if (needle[0] == '\0')
		return true;
	h = fold(haystack, len);
	n = fold(needle, strlen(needle));
	found = strstr(h, n) != NULL;
	free(h);
	free(n);
	return found;
}

/* An unfolded header value with its RFC 2047 words decoded to UTF-8
 * (8-bit text is taken as UTF-8, or converted from the locale's
 * fallback charsets). */
static char *decode_header_value(const char *value, size_t len)
{
	char *raw = mime_unfold(value, len, NULL);
	char *dec, *out;

	pthread_once(&gmime_once, gmime_start);
	dec = g_mime_utils_header_decode_text(NULL, raw);
	free(raw);
	if (dec == NULL)
		return xstrdup("");
	out = xstrdup(dec);
	g_free(dec);
	return out;
}

/* The fields that hold addresses (RFC 5322 3.6.2, 3.6.3, 3.6.6). */
static bool is_address_field(const struct mime_field *f)
{
	static const char *const names[] = {
	    "From",	 "Sender",    "Reply-To",    "To",
	    "Cc",	 "Bcc",	      "Resent-From", "Resent-Sender",
	    "Resent-To", "Resent-Cc", "Resent-Bcc",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (mime_field_is(f, names[i]))
			return true;
	}
	return false;
}

/* An address field also matches on its parsed addresses written as
 * mailbox@domain, as Dovecot searches them: "<a (x)@ (y) b.org>" is
 * found by "a@b.org" although its text never says so. */
static bool addresses_contain(const struct mime_field *f, const char *needle)
{
	struct mime_addrs list = {0};
	size_t vlen;
	char *v = mime_unfold(f->value, f->value_len, &vlen);
	bool hit = false;

	mime_addrs_parse(v, vlen, &list);
	free(v);
	for (size_t i = 0; i < list.n && !hit; i++) {
		const struct mime_addr *a = &list.a[i];
		size_t size;
		char *spec;

		if (a->mailbox == NULL || a->domain == NULL)
			continue;
		size = strlen(a->mailbox) + strlen(a->domain) + 2;
		spec = xmalloc(size);
		snprintf(spec, size, "%s@%s", a->mailbox, a->domain);
		hit = contains(spec, strlen(spec), needle);
		free(spec);
	}
	mime_addrs_free(&list);
	return hit;
}

bool mime_search_header(const struct mime_msg *msg, const char *wire,
			const char *field, const char *needle)
{
	struct mime_hiter it;
	struct mime_field f;

	if (field == NULL || needle == NULL)
		return false;
	mime_hiter_init(&it, wire, &msg->parts[0]);
	while (mime_hiter_next(&it, &f)) {
		char *v;
		bool hit;

		if (!mime_field_is(&f, field))
			continue;
		if (needle[0] == '\0')
			return true;
		v = decode_header_value(f.value, f.value_len);
		hit = contains(v, strlen(v), needle) ||
		      (is_address_field(&f) && addresses_contain(&f, needle));
		free(v);
		if (hit)
			return true;
	}
	return false;
}

/* Every header field of p (name and decoded value) against needle. */
static bool header_block_contains(const char *wire, const struct mime_part *p,
				  const char *needle)
{
	struct mime_hiter it;
	struct mime_field f;

	mime_hiter_init(&it, wire, p);
	while (mime_hiter_next(&it, &f)) {
		char *v = decode_header_value(f.value, f.value_len);
		bool hit = contains(v, strlen(v), needle) ||
			   contains(f.name, f.name_len, needle);

		free(v);
		if (hit)
			return true;
	}
	return false;
}

/* The text in charset converted to UTF-8; NULL when GMime does not know
 * the charset (then the bytes are searched as they are). */
static char *to_utf8(const char *charset, const char *in, size_t len)
{
	iconv_t cd;
	char *conv, *out;

	if (charset == NULL || strcasecmp(charset, "utf-8") == 0 ||
	    strcasecmp(charset, "us-ascii") == 0)
		return NULL;
	cd = g_mime_iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return NULL;
	conv = g_mime_iconv_strndup(cd, in, len);
	g_mime_iconv_close(cd);
	if (conv == NULL)
		return NULL;
	out = xstrdup(conv);
	g_free(conv);
	return out;
}

/* Is p a text part (text/... or no Content-Type at all)? Its charset
 * goes to *charset_r (malloc'd, or NULL). */
static bool text_part(const struct mime_msg *msg, const char *wire,
		      const struct mime_part *p, char **charset_r)
{
	struct mime_ctype ct;
	const char *cs;
	size_t len;
	char *v;
	bool text;

	*charset_r = NULL;
	if (p->kind != MIME_KIND_LEAF)
		return false;
	v = mime_part_field(msg, wire, p, "Content-Type", &len);
	if (v == NULL)
		return true;
	mime_ctype_parse(v, len, &ct);
	free(v);
	text = strcasecmp(ct.type, "text") == 0;
	if (text && (cs = mime_param_get(&ct, "charset")) != NULL)
		*charset_r = xstrdup(cs);
	mime_ctype_free(&ct);
	return text;
}

static bool leaf_contains(const struct mime_msg *msg, const char *wire,
			  const struct mime_part *p, const char *needle)
{
	char *charset, *cte, *dec, *conv;
	size_t len;
	bool hit;

	if (!text_part(msg, wire, p, &charset))
		return false;
	cte = part_cte(wire, p);
	if (decode_cte(cte, wire + p->body_off, p->body_len, &dec, &len) < 0) {
		/* unknown encoding: search the raw bytes */
		dec = xmalloc(p->body_len + 1);
		memcpy(dec, wire + p->body_off, p->body_len);
		len = p->body_len;
	}
	free(cte);
	conv = to_utf8(charset, dec, len);
	free(charset);
	if (conv != NULL)
		hit = contains(conv, strlen(conv), needle);
	else
		hit = contains(dec, len, needle);
	free(conv);
	free(dec);
	return hit;
}

static bool tree_contains(const struct mime_msg *msg, const char *wire,
			  const struct mime_part *p, const char *needle,
			  bool headers)
{
	uint32_t i;

	if (p->kind == MIME_KIND_LEAF)
		return leaf_contains(msg, wire, p, needle);
	for (i = p->first_child; i != MIME_NONE; i = msg->parts[i].next) {
		const struct mime_part *c = &msg->parts[i];

		/* an encapsulated message's header is text of the body */
		if (p->kind == MIME_KIND_RFC822 && headers &&
		    header_block_contains(wire, c, needle))
			return true;
		if (tree_contains(msg, wire, c, needle, headers))
			return true;
	}
	return false;
}

bool mime_search_body(const struct mime_msg *msg, const char *wire,
		      const char *needle, bool headers)
{
	if (needle == NULL)
		return false;
	if (needle[0] == '\0')
		return true;
	if (headers && header_block_contains(wire, &msg->parts[0], needle))
		return true;
	return tree_contains(msg, wire, &msg->parts[0], needle, headers);
}

time_t mime_sent_date(const struct mime_msg *msg, const char *wire)
{
	GDateTime *dt;
	char *v;
	time_t t;

	v = mime_part_field(msg, wire, &msg->parts[0], "Date", NULL);
	if (v == NULL)
		return -1;
	pthread_once(&gmime_once, gmime_start);
	dt = g_mime_utils_header_decode_date(v);
	free(v);
	if (dt == NULL)
		return -1;
	/* The sender's own wall clock: SENT* compares dates "disregarding
	 * time and timezone" (RFC 9051 section 6.4.4), as Dovecot does. */
	t = (time_t)(g_date_time_to_unix(dt) +
		     g_date_time_get_utc_offset(dt) / G_TIME_SPAN_SECOND);
	g_date_time_unref(dt);
	return t;
}
