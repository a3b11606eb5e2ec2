/*
 * Modified UTF-7: printable ASCII stands for itself except "&", which is
 * "&-"; everything else is UTF-16BE in base64 (with "," for "/", no
 * padding) between "&" and "-".
 */
#include "proto/imap/imap_mutf7.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "proto/imap/imap_parse.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(char c);
static int put_utf8(struct buf *out, uint32_t cp);
static int decode_section(const char **p, const char *end, struct buf *out);
struct b64_out;
static int encode_unit(struct b64_out *st, uint16_t unit, struct buf *out);
static int encode_close(struct b64_out *st, struct buf *out);
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static int put_utf8(struct buf *out, uint32_t cp)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_append(out, b, n) < 0 ? IMAP_MUTF7_FULL : IMAP_MUTF7_OK;
}

/* *p is just after "&" of a non-empty section; leaves it after "-". */
static int decode_section(const char **p, const char *end, struct buf *out)
{
	const char *s = *p;
	uint32_t bits = 0;
	unsigned nbits = 0;
	uint32_t high = 0; /* a pending high surrogate */
	size_t units = 0;
	int r;

	for (; s < end && *s != '-'; s++) {
		int v = b64_value(*s);
		uint32_t u;

		if (v < 0)
			return IMAP_MUTF7_INVALID;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		u = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		units++;
		if (high != 0) {
			if (u < 0xdc00 || u > 0xdfff)
				return IMAP_MUTF7_INVALID;
			u = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
			high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
			continue;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return IMAP_MUTF7_INVALID;
		}
		/* printable ASCII must stand for itself; no NUL */
		if (u < 0x80 && (u >= 0x20 && u <= 0x7e))
			return IMAP_MUTF7_INVALID;
		if (u == 0)
			return IMAP_MUTF7_INVALID;
		if ((r = put_utf8(out, u)) < 0)
			return r;
	}
	/* closed by "-", whole units, zero padding under 6 bits */
	if (s == end || units == 0 || high != 0 || nbits >= 6 || bits != 0)
		return IMAP_MUTF7_INVALID;
	*p = s + 1;
	return IMAP_MUTF7_OK;
}

int imap_mutf7_to_utf8(const char *in, size_t len, struct buf *out)
{
	const char *p = in;
	const char *end = in + len;

	bool after_section = false;

	while (p < end) {
		char c = *p++;
		int r;

		if (c < 0x20 || c > 0x7e)
			return IMAP_MUTF7_INVALID;
		if (c != '&') {
			if (buf_append(out, &c, 1) < 0)
				return IMAP_MUTF7_FULL;
			after_section = false;
			continue;
		}
		if (p < end && *p == '-') {
			p++;
			if (buf_append(out, "&", 1) < 0)
				return IMAP_MUTF7_FULL;
			after_section = false;
			continue;
		}
		/* "-&" inside base64 is a null shift (RFC 3501 5.1.3) */
		if (after_section)
			return IMAP_MUTF7_INVALID;
		if ((r = decode_section(&p, end, out)) < 0)
			return r;
		after_section = true;
	}
	return IMAP_MUTF7_OK;
}

/* The base64 state of the encoder. */
struct b64_out {
	uint32_t bits;
	unsigned nbits;
	bool open;
};

/* Appends one UTF-16 unit to the open base64 section. */
static int encode_unit(struct b64_out *st, uint16_t unit, struct buf *out)
{
	st->bits = (st->bits << 16) | unit;
	st->nbits += 16;
	while (st->nbits >= 6) {
		char c;

		st->nbits -= 6;
		c = b64[(st->bits >> st->nbits) & 0x3f];
		if (buf_append(out, &c, 1) < 0)
			return IMAP_MUTF7_FULL;
	}
	st->bits &= (1u << st->nbits) - 1;
	return IMAP_MUTF7_OK;
}

/* Pads and closes the open section. */
static int encode_close(struct b64_out *st, struct buf *out)
{
	if (st->nbits > 0) {
		char c = b64[(st->bits << (6 - st->nbits)) & 0x3f];

		if (buf_append(out, &c, 1) < 0)
			return IMAP_MUTF7_FULL;
	}
	st->bits = 0;
	st->nbits = 0;
	st->open = false;
	return buf_append(out, "-", 1) < 0 ? IMAP_MUTF7_FULL : IMAP_MUTF7_OK;
}

/* One code point from valid UTF-8; returns its length. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	size_t n = s[0] < 0x80 ? 1 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;

	if (n > len)
		n = len;
	*cp = n == 1 ? s[0] : (uint32_t)(s[0] & (0x7f >> n));
	for (size_t i = 1; i < n; i++)
		*cp = (*cp << 6) | (s[i] & 0x3f);
	return n;
}

int imap_utf8_to_mutf7(const char *in, size_t len, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)in;
	struct b64_out st = {0, 0, false};
	size_t i = 0;
	int r = IMAP_MUTF7_OK;

	if (!imap_utf8_valid(in, len) || memchr(in, '\0', len) != NULL)
		return IMAP_MUTF7_INVALID;
	while (i < len && r == IMAP_MUTF7_OK) {
		uint32_t cp;

		if (s[i] >= 0x20 && s[i] <= 0x7e) {
			if (st.open && (r = encode_close(&st, out)) < 0)
				break;
			if (buf_append(out, s[i] == '&' ? "&-" : in + i,
				       s[i] == '&' ? 2 : 1) < 0)
				r = IMAP_MUTF7_FULL;
			i++;
			continue;
		}
		/* one section for the whole run: a name has one spelling */
		if (!st.open) {
			if (buf_append(out, "&", 1) < 0)
				return IMAP_MUTF7_FULL;
			st.open = true;
		}
		i += utf8_decode(s + i, len - i, &cp);
		if (cp >= 0x10000) {
			cp -= 0x10000;
			r = encode_unit(&st, (uint16_t)(0xd800 + (cp >> 10)),
					out);
			if (r == IMAP_MUTF7_OK)
				r = encode_unit(
				    &st, (uint16_t)(0xdc00 + (cp & 0x3ff)),
				    out);
		} else {
			r = encode_unit(&st, (uint16_t)cp, out);
		}
	}
	if (r == IMAP_MUTF7_OK && st.open)
		r = encode_close(&st, out);
	return r;
}
