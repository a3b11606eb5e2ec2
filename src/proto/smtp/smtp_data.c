#include "proto/smtp/smtp_data.h"

#include <string.h>

#include "lib/postd_limits.h"

/* The most octets one input byte can make the readers write: a held CR
 * that turns out bare, normalised to CRLF, plus the byte itself. */
#define SMTP_DATA_MAX_EXPANSION 3
/* Output room beyond the input length (see smtp_data_out_max()). */
#define SMTP_DATA_SLACK 4

/* Where the DATA reader is on the wire. */
enum smtp_data_state {
	SMTP_DATA_LINE_START, /* after CRLF (or at the start) */
	SMTP_DATA_TEXT,	      /* inside a line */
	SMTP_DATA_CR,	      /* inside a line, after a CR */
	SMTP_DATA_DOT,	      /* "." at the start of a line, held */
	SMTP_DATA_DOT_CR,     /* ".\r" at the start of a line, held */
};

#define R_TOO_BIG "552 5.3.4 Message size exceeds fixed maximum message size"
#define R_BARE                                                                 \
	"550 5.6.0 Message contains bare CR or LF; lines must end with CRLF"
#define R_LONG_LINE "554 5.6.0 Message contains a line longer than we accept"
/* One object, so that smtp_content_refused_for_long_line() can tell this
 * reply from the others by its address. */
static const char long_line_refusal[] = R_LONG_LINE;

static void smtp_content_init(struct smtp_content *c, uint64_t max_size,
			      unsigned flags);
static void smtp_content_emit(struct smtp_content *c, unsigned char b,
			      unsigned char *out, size_t *n);
static void smtp_content_text(struct smtp_content *c, unsigned char b,
			      unsigned char *out, size_t *n);
static void smtp_content_add(struct smtp_content *c, unsigned char b,
			     unsigned char *out, size_t *n);
static void smtp_content_break(struct smtp_content *c, bool bare_cr);
static void smtp_content_line_end(struct smtp_content *c, unsigned char *out,
				  size_t *n);
static void smtp_content_bare(struct smtp_content *c, unsigned char b,
			      unsigned char *out, size_t *n);
static void smtp_content_put(struct smtp_content *c, unsigned char b,
			     unsigned char *out, size_t *n);
static void smtp_content_flush(struct smtp_content *c, unsigned char *out,
			       size_t *n);
static void smtp_data_text(struct smtp_data *d, unsigned char b,
			   unsigned char *out, size_t *n);

static void smtp_content_init(struct smtp_content *c, uint64_t max_size,
			      unsigned flags)
{
	memset(c, 0, sizeof(*c));
	c->max_size = max_size;
	c->flags = flags;
	c->discard = (flags & SMTP_DATA_F_DISCARD) != 0;
	c->max_line = SMTP_MAX_TEXT_LINE;
	c->loose_empty = true;
}

void smtp_content_set_max_line(struct smtp_content *c, size_t max_line)
{
	c->max_line =
	    max_line < SMTP_MAX_TEXT_LINE ? SMTP_MAX_TEXT_LINE : max_line;
}

const char *smtp_content_refusal(const struct smtp_content *c)
{
	if (c->too_big)
		return R_TOO_BIG;
	if ((c->flags & SMTP_DATA_F_BINARY) != 0)
		return NULL;
	if (c->dot_bare_cr ||
	    (c->bare_lf && (c->flags & SMTP_DATA_F_NORMALIZE) == 0))
		return R_BARE;
	if (c->line_too_long)
		return long_line_refusal;
	return NULL;
}

bool smtp_content_refused_for_long_line(const struct smtp_content *c)
{
	return smtp_content_refusal(c) == long_line_refusal;
}

/* One octet of the message as stored. */
static void smtp_content_emit(struct smtp_content *c, unsigned char b,
			      unsigned char *out, size_t *n)
{
	/* 2^64 octets cannot arrive; the cap only keeps UBSan quiet. */
	if (c->size < UINT64_MAX)
		c->size++;
	if (c->size > c->max_size && !c->too_big) {
		c->too_big = true;
		c->discard = true;
	}
	if (!c->discard)
		out[(*n)++] = b;
}

/* An octet stored inside a line: it counts towards the line length. */
static void smtp_content_text(struct smtp_content *c, unsigned char b,
			      unsigned char *out, size_t *n)
{
	smtp_content_emit(c, b, out, n);
	if (c->line_len < SIZE_MAX)
		c->line_len++;
	/* max_line counts the CRLF (RFC 5321 section 4.5.3.1.6 style). */
	if (c->line_len > c->max_line - 2 && !c->line_too_long &&
	    (c->flags & SMTP_DATA_F_BINARY) == 0) {
		c->line_too_long = true;
	}
}

/* An octet of content that is not a line break. */
static void smtp_content_add(struct smtp_content *c, unsigned char b,
			     unsigned char *out, size_t *n)
{
	c->loose_dot = c->loose_empty && b == '.';
	c->loose_empty = false;
	smtp_content_text(c, b, out, n);
}

/*
 * A line break of any kind (bare_cr: a bare CR). INV-S1: a lone "." with
 * a bare CR on either side is what a reader that ends lines at CR would
 * take for the end of data; such a message stays refused.
 */
static void smtp_content_break(struct smtp_content *c, bool bare_cr)
{
	if (c->loose_dot && (c->after_bare_cr || bare_cr) &&
	    (c->flags & SMTP_DATA_F_BINARY) == 0)
		c->dot_bare_cr = true;
	c->loose_empty = true;
	c->loose_dot = false;
	c->after_bare_cr = bare_cr;
}

static void smtp_content_line_end(struct smtp_content *c, unsigned char *out,
				  size_t *n)
{
	smtp_content_break(c, false);
	smtp_content_emit(c, '\r', out, n);
	smtp_content_emit(c, '\n', out, n);
	c->line_len = 0;
}

/*
 * A bare CR or bare LF (b): INV-S1, data and never a line end. A bare CR
 * is stored as a space, whatever the flags: kept as it is, a later reader
 * (a relay, a client) could end a line or start a header field there. A
 * bare LF is noted, and written as CRLF when normalising.
 */
static void smtp_content_bare(struct smtp_content *c, unsigned char b,
			      unsigned char *out, size_t *n)
{
	if ((c->flags & SMTP_DATA_F_BINARY) != 0) {
		smtp_content_add(c, b, out, n);
		return;
	}
	if (b == '\r') {
		c->bare_cr = true;
		smtp_content_break(c, true);
		smtp_content_text(c, ' ', out, n);
		return;
	}
	c->bare_lf = true;
	if ((c->flags & SMTP_DATA_F_NORMALIZE) != 0) {
		smtp_content_line_end(c, out, n);
		return;
	}
	smtp_content_break(c, false);
	smtp_content_text(c, b, out, n);
}

/*
 * One octet of content (after dot-unstuffing). A CR is held until the
 * next octet tells whether it starts a CRLF, so at most 3 octets come
 * out (SMTP_DATA_MAX_EXPANSION).
 */
static void smtp_content_put(struct smtp_content *c, unsigned char b,
			     unsigned char *out, size_t *n)
{
	if (c->cr_pending) {
		c->cr_pending = false;
		if (b == '\n') {
			smtp_content_line_end(c, out, n);
			return;
		}
		smtp_content_bare(c, '\r', out, n);
	}
	if (b == '\r')
		c->cr_pending = true;
	else if (b == '\n')
		smtp_content_bare(c, '\n', out, n);
	else
		smtp_content_add(c, b, out, n);
}

/* The end of the message: a CR still held is a bare CR. */
static void smtp_content_flush(struct smtp_content *c, unsigned char *out,
			       size_t *n)
{
	if (c->cr_pending) {
		c->cr_pending = false;
		smtp_content_bare(c, '\r', out, n);
	}
}

size_t smtp_data_out_max(unsigned flags, size_t in_len)
{
	if ((flags & SMTP_DATA_F_NORMALIZE) != 0) {
		if (in_len > (SIZE_MAX - SMTP_DATA_SLACK) / 2)
			return SIZE_MAX;
		return 2 * in_len + SMTP_DATA_SLACK;
	}
	if (in_len > SIZE_MAX - SMTP_DATA_SLACK)
		return SIZE_MAX;
	return in_len + SMTP_DATA_SLACK;
}

void smtp_data_init(struct smtp_data *d, uint64_t max_size, unsigned flags)
{
	memset(d, 0, sizeof(*d));
	smtp_content_init(&d->content, max_size, flags);
	/* The DATA command's CRLF was the last line end. */
	d->state = SMTP_DATA_LINE_START;
}

/* An octet inside a line. */
static void smtp_data_text(struct smtp_data *d, unsigned char b,
			   unsigned char *out, size_t *n)
{
	smtp_content_put(&d->content, b, out, n);
	d->state = b == '\r' ? SMTP_DATA_CR : SMTP_DATA_TEXT;
}

int smtp_data_feed(struct smtp_data *d, const void *in, size_t in_len,
		   size_t *consumed_r, void *out, size_t out_size,
		   size_t *out_len_r)
{
	const unsigned char *p = in;
	unsigned char *o = out;
	size_t i = 0, n = 0;

	while (!d->done && i < in_len &&
	       out_size - n >= SMTP_DATA_MAX_EXPANSION) {
		unsigned char b = p[i++];

		switch (d->state) {
		case SMTP_DATA_LINE_START:
			if (b == '.')
				d->state = SMTP_DATA_DOT;
			else
				smtp_data_text(d, b, o, &n);
			break;
		case SMTP_DATA_CR:
			/* Only CR LF starts a new line (INV-S1). */
			smtp_content_put(&d->content, b, o, &n);
			if (b == '\n')
				d->state = SMTP_DATA_LINE_START;
			else
				d->state =
				    b == '\r' ? SMTP_DATA_CR : SMTP_DATA_TEXT;
			break;
		case SMTP_DATA_DOT:
			/* RFC 5321 section 4.5.2: the leading dot of a
			 * line that is not just "." is removed. */
			if (b == '\r')
				d->state = SMTP_DATA_DOT_CR;
			else
				smtp_data_text(d, b, o, &n);
			break;
		case SMTP_DATA_DOT_CR:
			if (b == '\n') {
				/* <CRLF>.<CRLF>: the CRLF before the dot
				 * is already content. */
				smtp_content_flush(&d->content, o, &n);
				d->done = true;
				break;
			}
			/* ".\r" then something else: the dot goes, the
			 * CR is content, a bare one next to a lone dot
			 * (INV-S1). */
			if ((d->content.flags & SMTP_DATA_F_BINARY) == 0)
				d->content.dot_bare_cr = true;
			smtp_content_put(&d->content, '\r', o, &n);
			smtp_content_put(&d->content, b, o, &n);
			if (b == '\r')
				d->state = SMTP_DATA_CR;
			else
				d->state = SMTP_DATA_TEXT;
			break;
		default:
			smtp_data_text(d, b, o, &n);
			break;
		}
	}
	*consumed_r = i;
	*out_len_r = n;
	return d->done ? 1 : 0;
}

void smtp_bdat_init(struct smtp_bdat *b, uint64_t max_size, unsigned flags)
{
	memset(b, 0, sizeof(*b));
	smtp_content_init(&b->content, max_size, flags);
}

int smtp_bdat_chunk(struct smtp_bdat *b, uint64_t size, bool last)
{
	if (b->in_chunk || b->done)
		return -1;
	b->remaining = size;
	b->last = last;
	b->in_chunk = true;
	return 0;
}

int smtp_bdat_feed(struct smtp_bdat *b, const void *in, size_t in_len,
		   size_t *consumed_r, void *out, size_t out_size,
		   size_t *out_len_r)
{
	const unsigned char *p = in;
	unsigned char *o = out;
	size_t i = 0, n = 0;

	*consumed_r = 0;
	*out_len_r = 0;
	if (!b->in_chunk)
		return 1;
	/* BDAT data is raw: no dot-stuffing and no end marker (RFC 3030
	 * section 2), only the shared line and size checks. */
	while (b->remaining > 0 && i < in_len &&
	       out_size - n >= SMTP_DATA_MAX_EXPANSION) {
		smtp_content_put(&b->content, p[i++], o, &n);
		b->remaining--;
	}
	*consumed_r = i;
	if (b->remaining == 0 && b->last) {
		if (out_size - n < SMTP_DATA_MAX_EXPANSION) {
			*out_len_r = n;
			return 0;
		}
		smtp_content_flush(&b->content, o, &n);
		b->done = true;
	}
	*out_len_r = n;
	if (b->remaining > 0)
		return 0;
	b->in_chunk = false;
	return 1;
}
