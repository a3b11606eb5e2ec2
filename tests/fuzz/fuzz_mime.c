/*
 * The MIME structure (src/mime) on hostile messages: parse, write ENVELOPE
 * and BODY/BODYSTRUCTURE, visit every section the message has (ALL, MIME,
 * HEADER, TEXT, HEADER.FIELDS(.NOT), BINARY) and search it. Checked: every
 * slice lies inside the message, a write into a small buffer fails cleanly
 * (never past its cap), output parentheses balance outside literals, and
 * the cache blob loads back into a tree that writes the same strings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "lib/buf.h"
#include "mime/mime.h"

#define FUZZ_OUT_MAX (8 * 1024 * 1024)
/* Section numbers visited below the top: enough to reach nested
 * encapsulated messages, bounded so that [1.1.1...] of a leaf ends. */
#define FUZZ_MAX_PATH 6
#define FUZZ_MAX_SIBLINGS 64

static const char *const fuzz_fields[] = {"Subject", "content-type", "FROM"};

static void fuzz_visit(const struct mime_msg *m, const char *wire, size_t len,
		       unsigned *path, size_t depth, struct buf *scratch);

/* Parentheses balance outside quoted strings and literals. */
static void fuzz_check_balanced(const char *s, size_t len)
{
	size_t i, depth = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '"') {
			for (i++; i < len && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			FUZZ_CHECK(i < len);
		} else if (s[i] == '{') {
			size_t n = 0;

			for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
				n = n * 10 + (size_t)(s[i] - '0');
			FUZZ_CHECK(len - i >= 3 && s[i] == '}' &&
				   s[i + 1] == '\r' && s[i + 2] == '\n');
			i += 3;
			FUZZ_CHECK(n <= len - i);
			i += n - 1; /* the loop steps past the literal */
		} else if (s[i] == '(') {
			depth++;
		} else if (s[i] == ')') {
			FUZZ_CHECK(depth > 0);
			depth--;
		}
	}
	FUZZ_CHECK(depth == 0);
}

/* The FETCH strings of m, malloc'd. */
static char *fuzz_write_all(const struct mime_msg *m, const char *wire,
			    size_t *len_r)
{
	struct buf *b = buf_new(FUZZ_OUT_MAX);
	char *out;

	FUZZ_CHECK(mime_write_envelope(m, wire, b) == 0);
	FUZZ_CHECK(buf_append(b, " ", 1) == 0);
	FUZZ_CHECK(mime_write_bodystructure(m, wire, false, b) == 0);
	FUZZ_CHECK(buf_append(b, " ", 1) == 0);
	FUZZ_CHECK(mime_write_bodystructure(m, wire, true, b) == 0);
	*len_r = buf_len(b);
	out = malloc(*len_r + 1);
	if (out == NULL)
		abort();
	memcpy(out, buf_data(b), *len_r + 1);
	buf_free(&b);
	return out;
}

static void fuzz_sections_at(const struct mime_msg *m, const char *wire,
			     size_t len, const unsigned *path, size_t depth,
			     struct buf *scratch)
{
	static const enum mime_section_kind kinds[] = {
	    MIME_SECTION_ALL,		MIME_SECTION_HEADER,
	    MIME_SECTION_TEXT,		MIME_SECTION_MIME,
	    MIME_SECTION_HEADER_FIELDS, MIME_SECTION_HEADER_FIELDS_NOT,
	};
	struct mime_section sec;
	size_t k, off, n;
	int r;

	memset(&sec, 0, sizeof(sec));
	memcpy(sec.part, path, depth * sizeof(*path));
	sec.depth = depth;
	sec.fields = fuzz_fields;
	sec.field_count = 3;
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		sec.kind = kinds[k];
		if (mime_section_range(m, &sec, &off, &n) == 0)
			FUZZ_CHECK(off <= len && n <= len - off);
		if (kinds[k] == MIME_SECTION_HEADER_FIELDS ||
		    kinds[k] == MIME_SECTION_HEADER_FIELDS_NOT) {
			buf_clear(scratch);
			r = mime_section_fields(m, wire, &sec, scratch);
			FUZZ_CHECK(r == 0 || r == -1);
			FUZZ_CHECK(r < 0 || buf_len(scratch) <= len + 4);
		}
	}
	buf_clear(scratch);
	r = mime_binary(m, wire, path, depth, scratch);
	FUZZ_CHECK(r == 0 || r == -1 || r == -2);
	/* decoding never makes a part larger */
	FUZZ_CHECK(r != 0 || buf_len(scratch) <= len);
}

static void fuzz_visit(const struct mime_msg *m, const char *wire, size_t len,
		       unsigned *path, size_t depth, struct buf *scratch)
{
	struct mime_section sec;
	unsigned n;

	fuzz_sections_at(m, wire, len, path, depth, scratch);
	if (depth == FUZZ_MAX_PATH)
		return;
	for (n = 1; n <= FUZZ_MAX_SIBLINGS; n++) {
		size_t off, l;

		memset(&sec, 0, sizeof(sec));
		memcpy(sec.part, path, depth * sizeof(*path));
		sec.part[depth] = n;
		sec.depth = depth + 1;
		sec.kind = MIME_SECTION_ALL;
		if (mime_section_range(m, &sec, &off, &l) < 0)
			break;
		path[depth] = n;
		fuzz_visit(m, wire, len, path, depth + 1, scratch);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *wire = (const char *)data;
	struct mime_msg *m = mime_parse(wire, size), *l;
	struct buf *scratch = buf_new(FUZZ_OUT_MAX), *blob, *small;
	unsigned path[FUZZ_MAX_PATH + 1];
	char *first, *second, needle[4];
	size_t flen, slen;

	FUZZ_CHECK(m != NULL);
	first = fuzz_write_all(m, wire, &flen);
	fuzz_check_balanced(first, flen);
	fuzz_visit(m, wire, size, path, 0, scratch);

	/* a buffer that is too small: -1, and nothing past its cap */
	small = buf_new(size % 64 + 1);
	if (mime_write_bodystructure(m, wire, true, small) == 0)
		FUZZ_CHECK(buf_len(small) <= size % 64 + 1);
	buf_free(&small);

	/* the message as one IMAP string, both ways: a literal announces
	 * its exact size; a quoted string holds no CR, LF or NUL */
	{
		size_t k;

		for (k = 0; k < 2; k++) {
			const char *o;

			buf_clear(scratch);
			FUZZ_CHECK(mime_write_nstring(scratch, wire, size,
						      k == 1) == 0);
			o = buf_data(scratch);
			if (o[0] == '{')
				fuzz_check_balanced(o, buf_len(scratch));
			else
				FUZZ_CHECK(
				    o[0] == '"' &&
				    memchr(o, '\r', buf_len(scratch)) == NULL &&
				    memchr(o, '\n', buf_len(scratch)) == NULL &&
				    strlen(o) == buf_len(scratch));
		}
	}

	/* searching: a needle taken from the message itself */
	memset(needle, 0, sizeof(needle));
	memcpy(needle, wire + size / 2,
	       size - size / 2 < 3 ? size - size / 2 : 3);
	(void)mime_search_header(m, wire, "Subject", needle);
	(void)mime_search_body(m, wire, needle, (size & 1) != 0);
	(void)mime_sent_date(m, wire);

	/* the cache blob: loads back, and writes the same */
	blob = buf_new(FUZZ_OUT_MAX);
	FUZZ_CHECK(mime_save(m, blob) == 0);
	l = mime_load(buf_data(blob), buf_len(blob), size);
	FUZZ_CHECK(l != NULL);
	second = fuzz_write_all(l, wire, &slen);
	FUZZ_CHECK(slen == flen && memcmp(first, second, flen) == 0);
	FUZZ_CHECK(mime_load(buf_data(blob), buf_len(blob) - 1, size) == NULL);
	/* the message's bytes read as a blob are refused or stay bounded */
	mime_free(&l);
	l = mime_load(data, size, size);
	if (l != NULL) {
		free(second);
		second = fuzz_write_all(l, wire, &slen);
		fuzz_visit(l, wire, size, path, 0, scratch);
		mime_free(&l);
	}
	free(first);
	free(second);
	buf_free(&blob);
	buf_free(&scratch);
	mime_free(&m);
	return 0;
}
