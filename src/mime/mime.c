/*
 * The part tree of one message (mime.h): one pass over the wire form that
 * records where each part's header and body are, following RFC 2046
 * boundaries the way Dovecot's message parser does (the innermost, then
 * the longest matching boundary wins; an outer boundary closes the inner
 * parts; a missing close delimiter ends the parts at the end of the
 * message). Nothing here fails on malformed mail: what cannot be a
 * multipart or an encapsulated message becomes a leaf. Header fields are
 * not stored: they are read again from the wire when needed, within the
 * MIME_MAX_HEADERS / MIME_MAX_HEADER_BYTES bounds. doc/internals/mime.md.
 */
#include "mime/mime.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "mime/mime_int.h"
#include "mime/mime_rfc822.h"

struct boundary {
	char s[MIME_MAX_BOUNDARY];
	size_t len;
	uint32_t part;
};

struct pctx {
	const char *w;
	size_t len;
	struct mime_msg *msg;
	struct boundary b[MIME_MAX_DEPTH + 1];
	size_t nb;
	/* classify() filled b[nb] for the part just read */
	bool pending;
	/* the header just read ended at a boundary, not a blank line */
	bool hdr_cut;
};

static uint32_t new_part(struct pctx *c, uint32_t parent, uint8_t flags);
static size_t parse_header(struct pctx *c, uint32_t idx, size_t pos);
static size_t header_ends_blank(struct pctx *c, uint32_t idx, size_t q);
static void classify(struct pctx *c, uint32_t idx);
static bool boundary_at(const struct pctx *c, size_t p, size_t *bi_r,
			bool *close_r);
static bool find_boundary(const struct pctx *c, size_t pos, size_t *line_r,
			  size_t *bi_r, bool *close_r);
static void finish_part(struct pctx *c, uint32_t idx, size_t end);
static size_t line_end(const char *w, size_t len, size_t p);
static size_t before_newline(const char *w, size_t from, size_t line);

/* ---- header fields ---- */

void mime_hiter_init(struct mime_hiter *it, const char *wire,
		     const struct mime_part *p)
{
	it->wire = wire;
	it->pos = it->start = p->hdr_off;
	it->end = p->hdr_off + p->hdr_len;
	it->count = 0;
}

/* The offset after the LF that ends the line at p (or end). */
static size_t hline_end(const char *w, size_t p, size_t end)
{
	const char *lf = memchr(w + p, '\n', end - p);

	return lf == NULL ? end : (size_t)(lf - w) + 1;
}

bool mime_hiter_next(struct mime_hiter *it, struct mime_field *f)
{
	const char *w = it->wire;

	/* Only the first MIME_MAX_HEADER_BYTES of a block are read; a field
	 * that reaches past them is not read at all. */
	size_t cap = it->end - it->start > MIME_MAX_HEADER_BYTES
			 ? it->start + MIME_MAX_HEADER_BYTES
			 : it->end;

	for (;;) {
		size_t p = it->pos, e, first_end, colon, v, ve;

		if (p >= cap || it->count >= MIME_MAX_HEADERS)
			return false;
		if (w[p] == '\n' ||
		    (w[p] == '\r' && p + 1 < it->end && w[p + 1] == '\n'))
			return false; /* the blank line */
		first_end = e = hline_end(w, p, cap);
		while (e < cap && (w[e] == ' ' || w[e] == '\t'))
			e = hline_end(w, e, cap);
		if (e == cap && cap < it->end)
			return false;
		it->pos = e;
		if (w[p] == ' ' || w[p] == '\t')
			continue; /* a continuation without a field */
		it->count++;
		f->off = p;
		f->len = e - p;
		ve = e;
		if (ve > p && w[ve - 1] == '\n')
			ve--;
		if (ve > p && w[ve - 1] == '\r')
			ve--;
		for (colon = p; colon < first_end && w[colon] != ':'; colon++)
			;
		f->has_colon = colon < first_end && colon < ve;
		f->name = w + p;
		if (!f->has_colon) {
			f->name_len = ve - p;
			f->value = w + ve;
			f->value_len = 0;
			return true;
		}
		f->name_len = colon - p;
		while (f->name_len > 0 && (f->name[f->name_len - 1] == ' ' ||
					   f->name[f->name_len - 1] == '\t'))
			f->name_len--;
		for (v = colon + 1; v < ve && (w[v] == ' ' || w[v] == '\t');
		     v++)
			;
		f->value = w + v;
		f->value_len = ve - v;
		return true;
	}
}

bool mime_field_is(const struct mime_field *f, const char *name)
{
	return f->has_colon && strlen(name) == f->name_len &&
	       strncasecmp(f->name, name, f->name_len) == 0;
}

char *mime_header_copy(const char *value, size_t len, bool unfold,
		       size_t *len_r)
{
	char *out = xmalloc(3 * len + 1);
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		char ch = value[i];

		if (unfold && ch == '\n')
			continue;
		if (unfold && ch == '\r' && i + 1 < len && value[i + 1] == '\n')
			continue;
		if (ch == '\0') {
			/* U+FFFD, as Dovecot's message_header_strdup() */
			memcpy(out + n, "\xef\xbf\xbd", 3);
			n += 3;
			continue;
		}
		out[n++] = ch;
	}
	out[n] = '\0';
	if (len_r != NULL)
		*len_r = n;
	return out;
}

char *mime_unfold(const char *value, size_t len, size_t *len_r)
{
	char *out = xmalloc(len + 1);
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if (value[i] == '\n' ||
		    (value[i] == '\r' && i + 1 < len && value[i + 1] == '\n'))
			continue;
		out[n++] = value[i];
	}
	out[n] = '\0';
	if (len_r != NULL)
		*len_r = n;
	return out;
}

char *mime_part_field(const struct mime_msg *msg, const char *wire,
		      const struct mime_part *p, const char *name,
		      size_t *len_r)
{
	struct mime_hiter it;
	struct mime_field f;

	(void)msg;
	if (strncasecmp(name, "Content-", 8) == 0 &&
	    (p->flags & MIME_FLAG_IS_MIME) == 0)
		return NULL;
	mime_hiter_init(&it, wire, p);
	while (mime_hiter_next(&it, &f)) {
		if (mime_field_is(&f, name))
			return mime_unfold(f.value, f.value_len, len_r);
	}
	return NULL;
}

/* ---- Content-Type ---- */

/* "/" subtype after the type (tlen octets of s): false when missing. */
static bool read_subtype(struct mime_rp *rp, struct mime_str *s, size_t tlen)
{
	int ret;

	if (*rp->data != '/')
		return false;
	rp->data++;
	if (mime_rp_skip_lwsp(rp) <= 0)
		return false;
	ret = mime_rp_mime_token(rp, s);
	/* "text/plain junk" is no type at all (Dovecot) */
	return ret >= 0 && s->len > tlen && (ret == 0 || *rp->data == ';');
}

/*
 * Dovecot's rfc822_parse_content_type(): a type that ends the value is
 * kept ("text" is type "text", subtype ""), but one followed by anything
 * other than "/" is dropped, and so is "type/" without a subtype or
 * with anything but parameters after it.
 * Parameters are read only after a whole type/subtype.
 */
void mime_ctype_parse(const char *value, size_t len, struct mime_ctype *ct)
{
	struct mime_rp rp;
	struct mime_str s = {0};
	size_t tlen = 0;
	int ret;

	memset(ct, 0, sizeof(*ct));
	mime_rp_init(&rp, value, len);
	if (mime_rp_skip_lwsp(&rp) > 0) {
		ret = mime_rp_mime_token(&rp, &s);
		tlen = s.len;
		if (ret > 0 && s.len > 0 && !read_subtype(&rp, &s, tlen))
			tlen = s.len = 0;
	}
	ct->type = xstrndup(s.s != NULL ? s.s : "", tlen);
	ct->subtype = xstrndup(s.s != NULL ? s.s + tlen : "", s.len - tlen);
	if (s.len > tlen)
		mime_rp_params(&rp, &ct->params, &ct->param_count);
	mime_str_free(&s);
}

void mime_ctype_free(struct mime_ctype *ct)
{
	size_t i;

	for (i = 0; i < ct->param_count; i++) {
		free(ct->params[i].name);
		free(ct->params[i].value);
	}
	XFREE(ct->params);
	XFREE(ct->type);
	XFREE(ct->subtype);
	ct->param_count = 0;
}

const char *mime_param_get(const struct mime_ctype *ct, const char *name)
{
	size_t i;

	for (i = 0; i < ct->param_count; i++)
		if (strcasecmp(ct->params[i].name, name) == 0)
			return ct->params[i].value;
	return NULL;
}

/* ---- the parser ---- */

static uint32_t new_part(struct pctx *c, uint32_t parent, uint8_t flags)
{
	struct mime_msg *m = c->msg;
	struct mime_part *p;
	uint32_t idx = m->count;

	if (m->count == m->cap) {
		m->cap = m->cap == 0 ? 8 : m->cap * 2;
		if (m->cap > MIME_MAX_PARTS)
			m->cap = MIME_MAX_PARTS;
		m->parts = xreallocarray(m->parts, m->cap, sizeof(*m->parts));
	}
	p = &m->parts[m->count++];
	memset(p, 0, sizeof(*p));
	p->parent = parent;
	p->first_child = p->last_child = p->next = MIME_NONE;
	p->flags = flags;
	if (parent != MIME_NONE) {
		struct mime_part *par = &m->parts[parent];

		p->depth = (uint8_t)(par->depth + 1);
		if (par->last_child == MIME_NONE)
			par->first_child = idx;
		else
			m->parts[par->last_child].next = idx;
		par->last_child = idx;
		par->child_count++;
	}
	return idx;
}

/* Where the text before a boundary line at line ends: the line break
 * in front of the boundary belongs to the boundary (RFC 2046 section
 * 5.1.1), but only when it lies in the region being read from `from`
 * (Dovecot: after a close delimiter the next boundary takes no break). */
static size_t before_newline(const char *w, size_t from, size_t line)
{
	size_t end = line;

	if (end > from && w[end - 1] == '\n') {
		end--;
		if (end > from && w[end - 1] == '\r')
			end--;
	}
	return end;
}

static size_t line_end(const char *w, size_t len, size_t p)
{
	const char *lf = memchr(w + p, '\n', len - p);

	return lf == NULL ? len : (size_t)(lf - w) + 1;
}

/* Is the line at p a boundary of an open multipart? Dovecot's rule: the
 * line only has to start with "--" and the boundary; of several
 * matching boundaries the longest wins, the innermost on a tie. */
static bool boundary_at(const struct pctx *c, size_t p, size_t *bi_r,
			bool *close_r)
{
	const char *d = c->w + p + 2;
	size_t size, find, i, best = SIZE_MAX;
	const char *lf;
	bool dashes = false;

	if (c->nb == 0 || c->msg->count >= MIME_MAX_PARTS)
		return false;
	if (c->len - p < 2 || c->w[p] != '-' || c->w[p + 1] != '-')
		return false;
	size = c->len - p - 2;
	lf = memchr(d, '\n', size);
	if (lf != NULL) {
		find = (size_t)(lf - d);
		size = find;
		if (find > 0 && d[find - 1] == '\r')
			find--;
		if (find > 2 && d[find - 1] == '-' && d[find - 2] == '-')
			dashes = true;
	} else {
		find = size < MIME_MAX_BOUNDARY ? size : MIME_MAX_BOUNDARY;
	}
	for (i = c->nb; i-- > 0;) {
		const struct boundary *b = &c->b[i];

		if (b->len <= find && memcmp(b->s, d, b->len) == 0 &&
		    (best == SIZE_MAX || c->b[best].len < b->len)) {
			best = i;
			if (b->len == find || (dashes && b->len == find - 2))
				break;
		}
	}
	if (best == SIZE_MAX)
		return false;
	*bi_r = best;
	*close_r = size >= c->b[best].len + 2 &&
		   memcmp(d + c->b[best].len, "--", 2) == 0;
	return true;
}

static bool find_boundary(const struct pctx *c, size_t pos, size_t *line_r,
			  size_t *bi_r, bool *close_r)
{
	size_t p = pos;

	if (c->nb == 0)
		return false;
	while (p < c->len) {
		if (boundary_at(c, p, bi_r, close_r)) {
			*line_r = p;
			return true;
		}
		p = line_end(c->w, c->len, p);
	}
	return false;
}

/* The header block from pos: up to and with the blank line, or up to a
 * boundary line, or to the end. Returns where the body starts. */
static size_t parse_header(struct pctx *c, uint32_t idx, size_t pos)
{
	struct mime_part *p = &c->msg->parts[idx];
	size_t q = pos, bi;
	bool close;

	p->hdr_off = pos;
	c->hdr_cut = false;
	while (q < c->len) {
		if (c->w[q] == '\n' ||
		    (c->w[q] == '\r' && q + 1 < c->len && c->w[q + 1] == '\n'))
			return header_ends_blank(c, idx, q);
		if (boundary_at(c, q, &bi, &close)) {
			q = before_newline(c->w, pos, q);
			c->hdr_cut = true;
			break;
		}
		q = line_end(c->w, c->len, q);
	}
	p->hdr_len = q - pos;
	p->body_off = q;
	classify(c, idx);
	return q;
}

/* The header ends with the blank line at q, unless the next line is the
 * boundary of an enclosing multipart: then the blank line is that
 * boundary's line break, and like a header cut short by a boundary the
 * header ends before it while its enclosing parts keep it (Dovecot; the
 * part's own boundary counts as its parser already knows it there). */
static size_t header_ends_blank(struct pctx *c, uint32_t idx, size_t q)
{
	struct mime_part *p = &c->msg->parts[idx];
	size_t next = line_end(c->w, c->len, q), bi;
	bool close, outer;

	p->hdr_len = next - p->hdr_off;
	p->body_off = next;
	classify(c, idx);
	if (c->pending)
		c->nb++;
	outer = boundary_at(c, next, &bi, &close) && c->b[bi].part != idx;
	if (c->pending)
		c->nb--;
	if (outer) {
		p->hdr_len = q - p->hdr_off;
		p->body_off = q;
		c->hdr_cut = true;
	}
	return p->body_off;
}

static bool has_field(const char *w, const struct mime_part *p,
		      const char *name, struct mime_field *f)
{
	struct mime_hiter it;

	mime_hiter_init(&it, w, p);
	while (mime_hiter_next(&it, f))
		if (mime_field_is(f, name))
			return true;
	return false;
}

/* The part's kind from its first Content-Type (Dovecot: later ones do
 * not count), within the depth and part bounds. */
static void classify(struct pctx *c, uint32_t idx)
{
	struct mime_part *p = &c->msg->parts[idx];
	struct mime_field f, mv;
	struct mime_ctype ct;
	const char *bnd;
	char *value;
	size_t vlen;
	bool deeper = p->depth + 1 < MIME_MAX_DEPTH;

	p->kind = MIME_KIND_LEAF;
	if (has_field(c->w, p, "MIME-Version", &mv))
		p->flags |= MIME_FLAG_IS_MIME;
	if (!has_field(c->w, p, "Content-Type", &f)) {
		if ((p->flags & MIME_FLAG_DIGEST_CHILD) != 0)
			p->kind = deeper && c->msg->count < MIME_MAX_PARTS
				      ? MIME_KIND_RFC822
				      : MIME_KIND_RFC822_OPAQUE;
		return;
	}
	/* a digest's part with its own Content-Type is what it says; the
	 * flag now only marks a digest's children */
	p->flags =
	    (uint8_t)((p->flags | MIME_FLAG_IS_MIME) & ~MIME_FLAG_DIGEST_CHILD);
	value = mime_unfold(f.value, f.value_len, &vlen);
	mime_ctype_parse(value, vlen, &ct);
	free(value);
	if (strcasecmp(ct.type, "message") == 0 &&
	    strcasecmp(ct.subtype, "rfc822") == 0) {
		p->kind = deeper && c->msg->count < MIME_MAX_PARTS
			      ? MIME_KIND_RFC822
			      : MIME_KIND_RFC822_OPAQUE;
	} else if (strcasecmp(ct.type, "multipart") == 0) {
		/* without a boundary (or too deep) it is a multipart without
		 * parts, as Dovecot shows it */
		p->kind = MIME_KIND_MULTIPART;
		if (strcasecmp(ct.subtype, "digest") == 0)
			p->flags |= MIME_FLAG_DIGEST_CHILD; /* for children */
		bnd = mime_param_get(&ct, "boundary");
		/* an empty boundary is taken, as Dovecot does: then every
		 * line that starts with "--" is one */
		if (deeper && bnd != NULL && c->nb < MIME_MAX_DEPTH) {
			struct boundary *b = &c->b[c->nb];

			b->len = strlen(bnd);
			if (b->len > sizeof(b->s))
				b->len = sizeof(b->s);
			memcpy(b->s, bnd, b->len);
			b->part = idx;
			c->pending = true;
		}
	}
	mime_ctype_free(&ct);
}

static size_t count_lines(const char *w, size_t off, size_t len)
{
	const char *s = w + off, *end = s + len;
	size_t n = 0;

	while (s < end && (s = memchr(s, '\n', (size_t)(end - s))) != NULL) {
		n++;
		s++;
	}
	return n;
}

static void finish_part(struct pctx *c, uint32_t idx, size_t end)
{
	struct mime_part *p = &c->msg->parts[idx];

	if (end < p->body_off)
		end = p->body_off;
	p->body_len = end - p->body_off;
	if (p->kind != MIME_KIND_MULTIPART)
		p->body_lines = count_lines(c->w, p->body_off, p->body_len);
}

/* The multipart flag on a digest marks its children; the part itself
 * keeps only IS_MIME. */
static uint8_t child_flags(const struct mime_part *m)
{
	return (uint8_t)(MIME_FLAG_IS_MIME |
			 (m->flags & MIME_FLAG_DIGEST_CHILD));
}

static void parse_all(struct pctx *c)
{
	uint32_t cur = new_part(c, MIME_NONE, 0), m, child;
	size_t pos = parse_header(c, cur, 0), line, bi, end, u;
	bool close, epilogue = false;

	for (;;) {
		struct mime_part *p = &c->msg->parts[cur];

		if (!epilogue && c->pending) {
			c->nb++;
			c->pending = false;
		} else if (!epilogue && p->kind == MIME_KIND_RFC822 &&
			   c->hdr_cut) {
			/* a boundary right after its header: the message in
			 * it is empty, and so is its body (Dovecot) */
			child = new_part(c, cur, 0);
			c->msg->parts[child].hdr_off = pos;
			c->msg->parts[child].body_off = pos;
			c->hdr_cut = false;
			cur = child;
			continue;
		} else if (!epilogue && p->kind == MIME_KIND_RFC822) {
			child = new_part(c, cur, 0);
			pos = parse_header(c, child, pos);
			cur = child;
			continue;
		}
		epilogue = false;
		if (!find_boundary(c, pos, &line, &bi, &close)) {
			for (u = cur; u != MIME_NONE;
			     u = c->msg->parts[u].parent)
				finish_part(c, u, c->len);
			break;
		}
		m = c->b[bi].part;
		end = before_newline(c->w, pos, line);
		/* A header cut short by the boundary keeps the line break
		 * in its enclosing parts (Dovecot counts it there). */
		finish_part(c, cur, end);
		for (u = c->msg->parts[cur].parent; cur != m && u != m;
		     u = c->msg->parts[u].parent)
			finish_part(c, u, c->hdr_cut ? line : end);
		c->nb = bi + 1;
		pos = line_end(c->w, c->len, line);
		/* a boundary line that the message ends in, without its
		 * line break, starts no part (Dovecot) */
		if (close || c->w[pos - 1] != '\n') {
			c->nb = bi;
			cur = m;
			epilogue = true;
			c->hdr_cut = false;
			continue;
		}
		child = new_part(c, m, child_flags(&c->msg->parts[m]));
		pos = parse_header(c, child, pos);
		cur = child;
	}
	/* the digest flag only served the children */
	for (u = 0; u < c->msg->count; u++)
		if (c->msg->parts[u].kind == MIME_KIND_MULTIPART)
			c->msg->parts[u].flags &=
			    (uint8_t)~MIME_FLAG_DIGEST_CHILD;
}

struct mime_msg *mime_parse(const char *wire, size_t len)
{
	struct pctx *c = xcalloc(1, sizeof(*c));
	struct mime_msg *msg = xcalloc(1, sizeof(*msg));

	msg->wire_len = len;
	c->w = wire;
	c->len = len;
	c->msg = msg;
	parse_all(c);
	free(c);
	return msg;
}

void mime_free(struct mime_msg **msg)
{
	if (*msg == NULL)
		return;
	free((*msg)->parts);
	XFREE(*msg);
}

/* ---- sections (RFC 9051 section 6.4.5) ---- */

static const struct mime_part *nth_child(const struct mime_msg *msg,
					 const struct mime_part *p, unsigned n)
{
	uint32_t i = p->first_child;

	if (n == 0)
		return NULL;
	while (i != MIME_NONE && --n > 0)
		i = msg->parts[i].next;
	return i == MIME_NONE ? NULL : &msg->parts[i];
}

/*
 * Dovecot's reading of section numbers (RFC 9051 section 6.4.5): in a
 * multipart, n is the n-th part; anything else is its own part 1 (so [1]
 * of a single-part message is its body, and [1.1] of a leaf inside a
 * multipart is that leaf again), but only a message/rfc822 part may be
 * followed by more numbers, which then count in its encapsulated message.
 */
const struct mime_part *mime_lookup(const struct mime_msg *msg,
				    const unsigned *part, size_t depth)
{
	const struct mime_part *cur = &msg->parts[0];
	size_t i;

	for (i = 0; i < depth && cur != NULL; i++) {
		bool last = i + 1 == depth;

		if (cur->kind == MIME_KIND_MULTIPART)
			cur = nth_child(msg, cur, part[i]);
		else if (part[i] != 1 ||
			 (!last && cur->kind != MIME_KIND_RFC822))
			cur = NULL;
		if (cur != NULL && cur->kind == MIME_KIND_RFC822 && !last)
			cur = &msg->parts[cur->first_child];
	}
	return cur;
}

/* The message whose HEADER/TEXT a section names: the root, or the
 * encapsulated message of a message/rfc822 part. */
static const struct mime_part *section_message(const struct mime_msg *msg,
					       const struct mime_section *sec)
{
	const struct mime_part *p;

	if (sec->depth == 0)
		return &msg->parts[0];
	p = mime_lookup(msg, sec->part, sec->depth);
	if (p == NULL || p->kind != MIME_KIND_RFC822)
		return NULL;
	return &msg->parts[p->first_child];
}

int mime_section_range(const struct mime_msg *msg,
		       const struct mime_section *sec, size_t *off_r,
		       size_t *len_r)
{
	const struct mime_part *p;

	if (sec->depth > sizeof(sec->part) / sizeof(sec->part[0]))
		return -1;
	switch (sec->kind) {
	case MIME_SECTION_ALL:
		if (sec->depth == 0) {
			*off_r = 0;
			*len_r = msg->wire_len;
			return 0;
		}
		p = mime_lookup(msg, sec->part, sec->depth);
		if (p == NULL)
			return -1;
		*off_r = p->body_off;
		*len_r = p->body_len;
		return 0;
	case MIME_SECTION_MIME:
		if (sec->depth == 0)
			return -1;
		p = mime_lookup(msg, sec->part, sec->depth);
		if (p == NULL)
			return -1;
		*off_r = p->hdr_off;
		*len_r = p->hdr_len;
		return 0;
	case MIME_SECTION_TEXT:
		if ((p = section_message(msg, sec)) == NULL)
			return -1;
		*off_r = p->body_off;
		*len_r = p->body_len;
		return 0;
	case MIME_SECTION_HEADER:
	case MIME_SECTION_HEADER_FIELDS:
	case MIME_SECTION_HEADER_FIELDS_NOT:
		if ((p = section_message(msg, sec)) == NULL)
			return -1;
		*off_r = p->hdr_off;
		*len_r = p->hdr_len;
		return 0;
	}
	return -1;
}

/* Does the header block end with its blank line (not with the end of
 * the message or a boundary)? */
static bool has_blank_line(const char *wire, const struct mime_part *p)
{
	const char *h = wire + p->hdr_off;
	size_t n = p->hdr_len;

	if (n == 0 || h[n - 1] != '\n')
		return false;
	if (n == 1 || (n == 2 && h[0] == '\r'))
		return true;
	if (h[n - 2] == '\n')
		return true;
	return n >= 3 && h[n - 2] == '\r' && h[n - 3] == '\n';
}

static bool field_listed(const struct mime_section *sec,
			 const struct mime_field *f)
{
	size_t i;

	for (i = 0; i < sec->field_count; i++)
		if (sec->fields[i] != NULL && mime_field_is(f, sec->fields[i]))
			return true;
	return false;
}

int mime_section_fields(const struct mime_msg *msg, const char *wire,
			const struct mime_section *sec, struct buf *out)
{
	const struct mime_part *p;
	struct mime_hiter it;
	struct mime_field f;
	bool not = sec->kind == MIME_SECTION_HEADER_FIELDS_NOT;

	if (sec->depth > sizeof(sec->part) / sizeof(sec->part[0]) ||
	    (p = section_message(msg, sec)) == NULL)
		return -1;
	mime_hiter_init(&it, wire, p);
	while (mime_hiter_next(&it, &f)) {
		if (field_listed(sec, &f) == not )
			continue;
		if (buf_append(out, wire + f.off, f.len) < 0)
			return -1;
		if (wire[f.off + f.len - 1] != '\n' &&
		    buf_append(out, "\r\n", 2) < 0)
			return -1;
	}
	/* Dovecot: FIELDS always ends with the blank line, FIELDS.NOT only
	 * when the header had one */
	if (not &&!has_blank_line(wire, p))
		return 0;
	return buf_append(out, "\r\n", 2);
}

/* ---- the cache blob ---- */

/* "PMM" and the format version: a blob of another version is not ours. */
static const unsigned char blob_magic[4] = {'P', 'M', 'M', 1};

static int put_varint(struct buf *out, uint64_t v)
{
	unsigned char b[10];
	size_t n = 0;

	do {
		b[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			b[n] |= 0x80;
		n++;
	} while (v != 0);
	return buf_append(out, b, n);
}

static bool get_varint(const unsigned char **p, const unsigned char *end,
		       uint64_t *v)
{
	unsigned shift = 0;

	*v = 0;
	while (*p < end && shift < 64) {
		unsigned char b = *(*p)++;

		*v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return shift < 63 || b <= 1;
		shift += 7;
	}
	return false;
}

int mime_save(const struct mime_msg *msg, struct buf *out)
{
	uint32_t i;

	if (buf_append(out, blob_magic, sizeof(blob_magic)) < 0 ||
	    put_varint(out, msg->count) < 0 ||
	    put_varint(out, msg->wire_len) < 0)
		return -1;
	for (i = 0; i < msg->count; i++) {
		const struct mime_part *p = &msg->parts[i];
		unsigned char kf[2] = {p->kind, p->flags};

		if (buf_append(out, kf, 2) < 0 ||
		    put_varint(out, p->parent == MIME_NONE
					? 0
					: (uint64_t)p->parent + 1) < 0 ||
		    put_varint(out, p->hdr_off) < 0 ||
		    put_varint(out, p->hdr_len) < 0 ||
		    put_varint(out, p->body_len) < 0 ||
		    put_varint(out, p->body_lines) < 0)
			return -1;
	}
	return 0;
}

/* Where a part's bytes end (its body's end). */
static size_t part_end(const struct mime_part *p)
{
	return p->body_off + p->body_len;
}

/* One part read back: its numbers are in range and it sits inside its
 * parent's body after its previous sibling. */
static bool load_part(struct mime_msg *msg, uint32_t i, const uint64_t v[5],
		      unsigned kind, unsigned flags)
{
	struct mime_part *p = &msg->parts[i];
	uint64_t wl = msg->wire_len;

	if (kind > MIME_KIND_MAX || (flags & ~MIME_FLAG_ALL) != 0)
		return false;
	if (v[1] > wl || v[2] > wl - v[1] || v[3] > wl - v[1] - v[2] ||
	    v[4] > v[3])
		return false;
	memset(p, 0, sizeof(*p));
	p->kind = (uint8_t)kind;
	p->flags = (uint8_t)flags;
	p->hdr_off = (size_t)v[1];
	p->hdr_len = (size_t)v[2];
	p->body_off = p->hdr_off + p->hdr_len;
	p->body_len = (size_t)v[3];
	p->body_lines = (size_t)v[4];
	p->first_child = p->last_child = p->next = MIME_NONE;
	if (i == 0) {
		p->parent = MIME_NONE;
		return v[0] == 0 && p->hdr_off == 0 && part_end(p) == wl;
	}
	if (v[0] == 0 || v[0] > i)
		return false;
	p->parent = (uint32_t)(v[0] - 1);
	{
		struct mime_part *par = &msg->parts[p->parent];
		size_t from = par->last_child == MIME_NONE
				  ? par->body_off
				  : part_end(&msg->parts[par->last_child]);

		if (par->kind != MIME_KIND_MULTIPART &&
		    par->kind != MIME_KIND_RFC822)
			return false;
		if (par->kind == MIME_KIND_RFC822 &&
		    (par->child_count > 0 || p->hdr_off != par->body_off))
			return false;
		if (par->depth + 1 >= MIME_MAX_DEPTH || p->hdr_off < from ||
		    part_end(p) > part_end(par))
			return false;
		p->depth = (uint8_t)(par->depth + 1);
		if (par->last_child == MIME_NONE)
			par->first_child = i;
		else
			msg->parts[par->last_child].next = i;
		par->last_child = i;
		par->child_count++;
	}
	return true;
}

struct mime_msg *mime_load(const void *blob, size_t len, size_t wire_len)
{
	const unsigned char *p = blob, *end = p + len;
	struct mime_msg *msg;
	uint64_t count, wl, v[5];
	uint32_t i;
	unsigned j;

	if (len < sizeof(blob_magic) ||
	    memcmp(p, blob_magic, sizeof(blob_magic)) != 0)
		return NULL;
	p += sizeof(blob_magic);
	if (!get_varint(&p, end, &count) || !get_varint(&p, end, &wl) ||
	    count == 0 || count > MIME_MAX_PARTS || wl != wire_len)
		return NULL;
	msg = xcalloc(1, sizeof(*msg));
	msg->wire_len = wire_len;
	msg->parts = xcalloc((size_t)count, sizeof(*msg->parts));
	msg->cap = (uint32_t)count;
	for (i = 0; i < count; i++) {
		unsigned kind, flags;

		if (end - p < 2)
			goto bad;
		kind = p[0];
		flags = p[1];
		p += 2;
		for (j = 0; j < 5; j++)
			if (!get_varint(&p, end, &v[j]))
				goto bad;
		if (!load_part(msg, i, v, kind, flags))
			goto bad;
		msg->count = i + 1;
	}
	if (p != end)
		goto bad;
	for (i = 0; i < msg->count; i++)
		if (msg->parts[i].kind == MIME_KIND_RFC822 &&
		    msg->parts[i].child_count != 1)
			goto bad;
	return msg;
bad:
	mime_free(&msg);
	return NULL;
}
