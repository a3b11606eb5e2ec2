/*
 * Folder names: validation, modified UTF-7 (RFC 3501 5.1.3) and the
 * Maildir++ directory name of a folder. Pure functions, no I/O; folder.c
 * does the file system work.
 */
#include "storage/folder.h"

#include <stdint.h>
#include <string.h>

#include "lib/parse.h"
#include "lib/postd_limits.h"

static const char mutf7_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int utf8_next(const unsigned char **p, const unsigned char *end,
		     uint32_t *cp_r);
static int utf8_put(uint32_t cp, char *out, size_t out_size, size_t *n);
static int mutf7_flush(const uint16_t *units, size_t count, char *out,
		       size_t out_size, size_t *n);
static int mutf7_decode_run(const char **p, char *out, size_t out_size,
			    size_t *n);
static int mutf7_value(char c);
static bool folder_component_valid(const char *s, size_t len,
				   const char **why_r);

/* One code point of strict UTF-8: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
static int utf8_next(const unsigned char **p, const unsigned char *end,
		     uint32_t *cp_r)
{
	const unsigned char *s = *p;
	uint32_t cp, min;
	size_t extra;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		*p = s + 1;
		return 0;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		cp = s[0] & 0x1f;
		extra = 1;
		min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		cp = s[0] & 0x0f;
		extra = 2;
		min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		cp = s[0] & 0x07;
		extra = 3;
		min = 0x10000;
	} else {
		return -1;
	}
	if ((size_t)(end - s) <= extra)
		return -1;
	for (size_t i = 1; i <= extra; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*cp_r = cp;
	*p = s + extra + 1;
	return 0;
}

static int utf8_put(uint32_t cp, char *out, size_t out_size, size_t *n)
{
	unsigned char b[4];
	size_t len;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		len = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		len = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		len = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		len = 4;
	}
	if (*n + len >= out_size)
		return -1;
	memcpy(out + *n, b, len);
	*n += len;
	return 0;
}

/* "&" + modified base64 of the UTF-16BE units + "-". */
static int mutf7_flush(const uint16_t *units, size_t count, char *out,
		       size_t out_size, size_t *n)
{
	uint32_t bits = 0;
	int nbits = 0;

	if (*n + 1 >= out_size)
		return -1;
	out[(*n)++] = '&';
	for (size_t i = 0; i < count; i++) {
		bits = (bits << 16) | units[i];
		nbits += 16;
		while (nbits >= 6) {
			nbits -= 6;
			if (*n + 1 >= out_size)
				return -1;
			out[(*n)++] = mutf7_alphabet[(bits >> nbits) & 0x3f];
		}
	}
	if (nbits > 0) {
		if (*n + 1 >= out_size)
			return -1;
		out[(*n)++] = mutf7_alphabet[(bits << (6 - nbits)) & 0x3f];
	}
	if (*n + 1 >= out_size)
		return -1;
	out[(*n)++] = '-';
	return 0;
}

int folder_mutf7_encode(const char *utf8, char *out, size_t out_size)
{
	const unsigned char *p = (const unsigned char *)utf8;
	const unsigned char *end = p + strlen(utf8);
	uint16_t units[FOLDER_MAX_NAME * 2];
	size_t nunits = 0, n = 0;

	if (out_size == 0)
		return -1;
	while (p < end) {
		uint32_t cp;

		if (utf8_next(&p, end, &cp) < 0)
			return -1;
		if (cp >= 0x20 && cp <= 0x7e) {
			if (nunits > 0 &&
			    mutf7_flush(units, nunits, out, out_size, &n) < 0)
				return -1;
			nunits = 0;
			if (n + (cp == '&' ? 2 : 1) >= out_size)
				return -1;
			out[n++] = (char)cp;
			if (cp == '&')
				out[n++] = '-';
			continue;
		}
		if (nunits + 2 > sizeof(units) / sizeof(units[0]))
			return -1;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			units[nunits++] = (uint16_t)(0xd800 | (cp >> 10));
			units[nunits++] = (uint16_t)(0xdc00 | (cp & 0x3ff));
		} else {
			units[nunits++] = (uint16_t)cp;
		}
	}
	if (nunits > 0 && mutf7_flush(units, nunits, out, out_size, &n) < 0)
		return -1;
	out[n] = '\0';
	return 0;
}

static int mutf7_value(char c)
{
	const char *q = c == '\0' ? NULL : strchr(mutf7_alphabet, c);

	return q == NULL ? -1 : (int)(q - mutf7_alphabet);
}

/* Decodes the base64 run after '&' up to and including '-'. */
static int mutf7_decode_run(const char **p, char *out, size_t out_size,
			    size_t *n)
{
	const char *s = *p;
	uint32_t bits = 0, high = 0;
	int nbits = 0, v;

	for (; *s != '-'; s++) {
		v = mutf7_value(*s);
		if (v < 0)
			return -1;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t unit = (bits >> nbits) & 0xffff;

		bits &= (1u << nbits) - 1;
		if (high != 0) {
			if (unit < 0xdc00 || unit > 0xdfff)
				return -1;
			unit =
			    0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00);
			high = 0;
		} else if (unit >= 0xd800 && unit <= 0xdbff) {
			high = unit;
			continue;
		} else if (unit >= 0xdc00 && unit <= 0xdfff) {
			return -1;
		}
		if (utf8_put(unit, out, out_size, n) < 0)
			return -1;
	}
	/* Leftover bits must be padding zeros, fewer than one unit. */
	if (high != 0 || nbits >= 6 || bits != 0)
		return -1;
	*p = s + 1;
	return 0;
}

int folder_mutf7_decode(const char *mutf7, char *out, size_t out_size)
{
	char again[FOLDER_MAX_NAME * 4 + 1];
	const char *p = mutf7;
	size_t n = 0;

	if (out_size == 0)
		return -1;
	while (*p != '\0') {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c > 0x7e)
			return -1;
		if (c != '&') {
			if (n + 1 >= out_size)
				return -1;
			out[n++] = (char)c;
			p++;
			continue;
		}
		p++;
		if (*p == '-') {
			if (n + 1 >= out_size)
				return -1;
			out[n++] = '&';
			p++;
		} else if (mutf7_decode_run(&p, out, out_size, &n) < 0) {
			return -1;
		}
	}
	out[n] = '\0';
	/* Only the canonical form is accepted, so that a name has one
	 * spelling on disk and on the wire. */
	if (folder_mutf7_encode(out, again, sizeof(again)) < 0 ||
	    strcmp(again, mutf7) != 0)
		return -1;
	return 0;
}

bool folder_is_inbox(const char *name)
{
	return ascii_strncaseeq(name, "INBOX", 5) && name[5] == '\0';
}

/* One component of a non-INBOX name: see folder_name_valid(). */
static bool folder_component_valid(const char *s, size_t len,
				   const char **why_r)
{
	if (len == 0) {
		*why_r = "empty hierarchy level";
		return false;
	}
	if (s[0] == '.') {
		*why_r = "a level may not start with '.'";
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			*why_r = "control character in name";
			return false;
		}
		if (c == '.' || c == '\\' || c == '~') {
			*why_r = "'.', '\\' and '~' cannot be stored";
			return false;
		}
		if (c == '*' || c == '%') {
			*why_r = "wildcard in name";
			return false;
		}
	}
	return true;
}

bool folder_name_valid(const char *name, const char **why_r)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t len = strlen(name);
	const unsigned char *end = p + len;
	size_t depth = 0;
	const char *start = name;

	if (len == 0 || len > FOLDER_MAX_NAME) {
		*why_r = len == 0 ? "empty name" : "name too long";
		return false;
	}
	while (p < end) {
		uint32_t cp;

		if (utf8_next(&p, end, &cp) < 0) {
			*why_r = "not UTF-8";
			return false;
		}
		if (cp >= 0x80 && cp < 0xa0) {
			*why_r = "control character in name";
			return false;
		}
	}
	for (;;) {
		const char *slash = strchr(start, '/');
		size_t clen =
		    slash == NULL ? strlen(start) : (size_t)(slash - start);

		if (!folder_component_valid(start, clen, why_r))
			return false;
		if (++depth > FOLDER_MAX_DEPTH) {
			*why_r = "too many hierarchy levels";
			return false;
		}
		if (slash == NULL)
			break;
		start = slash + 1;
	}
	return true;
}

int folder_disk_name(const char *name, char *out, size_t out_size)
{
	char comp[FOLDER_MAX_NAME + 1];
	const char *start = name;
	size_t n = 0;

	if (folder_is_inbox(name) || out_size < 2)
		return -1;
	for (;;) {
		const char *slash = strchr(start, '/');
		size_t clen =
		    slash == NULL ? strlen(start) : (size_t)(slash - start);
		size_t elen;

		if (clen > FOLDER_MAX_NAME)
			return -1;
		memcpy(comp, start, clen);
		comp[clen] = '\0';
		/* "inbox/x" is INBOX's child, spelt as INBOX on disk. */
		if (start == name && folder_is_inbox(comp))
			memcpy(comp, "INBOX", 5);
		if (n + 1 >= out_size)
			return -1;
		out[n++] = '.';
		if (folder_mutf7_encode(comp, out + n, out_size - n) < 0)
			return -1;
		elen = strlen(out + n);
		n += elen;
		if (slash == NULL)
			break;
		start = slash + 1;
	}
	/* One path component: at most NAME_MAX (255) bytes. */
	return n > 255 ? -1 : 0;
}

int folder_name_from_disk(const char *disk, char *out, size_t out_size)
{
	char comp[256];
	const char *why;
	size_t n = 0;

	if (disk[0] != '.' || strlen(disk) > 255)
		return -1;
	disk++;
	for (;;) {
		const char *dot = strchr(disk, '.');
		size_t clen = dot == NULL ? strlen(disk) : (size_t)(dot - disk);
		size_t dlen;

		if (clen == 0)
			return -1;
		memcpy(comp, disk, clen);
		comp[clen] = '\0';
		if (n > 0) {
			if (n + 1 >= out_size)
				return -1;
			out[n++] = '/';
		}
		if (folder_mutf7_decode(comp, out + n, out_size - n) < 0)
			return -1;
		dlen = strlen(out + n);
		n += dlen;
		if (dot == NULL)
			break;
		disk = dot + 1;
	}
	if (!folder_name_valid(out, &why) || folder_is_inbox(out))
		return -1;
	return 0;
}
