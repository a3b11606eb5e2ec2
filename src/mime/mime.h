/*
 * The structure of one message (RFC 5322 + MIME, RFC 2045-2049) as IMAP
 * FETCH needs it: the part tree with each part's header and body offsets,
 * ENVELOPE and BODYSTRUCTURE written in IMAP syntax, BODY[section] and
 * BINARY[section] contents, and decoded text for SEARCH.
 *
 * The input is the message's wire form (CRLF line ends, exactly the bytes
 * RFC822.SIZE counts), so that every offset and size is in wire octets.
 * The parser is bounded (MIME_MAX_DEPTH, MIME_MAX_PARTS, MIME_MAX_HEADERS,
 * MIME_MAX_HEADER_BYTES in lib/postd_limits.h) and never fails on
 * malformed mail: what it cannot read it treats as text/plain, as other
 * servers do. It is pure (no I/O) and fuzzed.
 */
#ifndef POSTD_MIME_H
#define POSTD_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"

struct mime_msg;

/* Parses wire[0..len). Returns NULL only when out of memory. */
struct mime_msg *mime_parse(const char *wire, size_t len);
void mime_free(struct mime_msg **msg);

/*
 * A compact serialised form of the parsed structure, for the per-folder
 * cache (mail_view_cache_put()); mime_load() gives it back, or NULL when
 * the blob is not one this version wrote (then parse again).
 */
int mime_save(const struct mime_msg *msg, struct buf *out);
struct mime_msg *mime_load(const void *blob, size_t len, size_t wire_len);

/* IMAP syntax (RFC 9051 9): appended to out; -1 when out is full. */
int mime_write_envelope(const struct mime_msg *msg, const char *wire,
			struct buf *out);
/* extended: BODYSTRUCTURE; otherwise BODY (no extension data). */
int mime_write_bodystructure(const struct mime_msg *msg, const char *wire,
			     bool extended, struct buf *out);
/* An nstring: NIL, a quoted string, or a literal when s needs one
 * (CR, LF, NUL, 8-bit when !utf8_ok, or long). */
int mime_write_nstring(struct buf *out, const char *s, size_t len,
		       bool utf8_ok);

enum mime_section_kind {
	MIME_SECTION_ALL,		/* BODY[] or BODY[1.2] */
	MIME_SECTION_HEADER,		/* BODY[HEADER], BODY[1.HEADER] */
	MIME_SECTION_TEXT,		/* BODY[TEXT] */
	MIME_SECTION_MIME,		/* BODY[1.MIME] */
	MIME_SECTION_HEADER_FIELDS,	/* BODY[HEADER.FIELDS (A B)] */
	MIME_SECTION_HEADER_FIELDS_NOT, /* BODY[HEADER.FIELDS.NOT (A B)] */
};

struct mime_section {
	unsigned part[32]; /* 1-based part numbers; depth entries */
	size_t depth;	   /* 0: the whole message */
	enum mime_section_kind kind;
	const char *const *fields; /* HEADER.FIELDS names */
	size_t field_count;
};

/*
 * Where the section's bytes are in wire: for ALL, HEADER, TEXT and MIME a
 * slice (*off_r, *len_r). Returns 0, or -1 when the part does not exist
 * (RFC 9051: the section is then empty).
 */
int mime_section_range(const struct mime_msg *msg,
		       const struct mime_section *sec, size_t *off_r,
		       size_t *len_r);
/* HEADER.FIELDS(.NOT): the matching header lines, then CRLF, into out. */
int mime_section_fields(const struct mime_msg *msg, const char *wire,
			const struct mime_section *sec, struct buf *out);

/*
 * BINARY[part] (RFC 3516): the part's body with its
 * Content-Transfer-Encoding removed, into out. Returns 0, -1 for a part
 * that does not exist, -2 for an encoding that cannot be decoded
 * ([UNKNOWN-CTE]).
 */
int mime_binary(const struct mime_msg *msg, const char *wire,
		const unsigned *part, size_t depth, struct buf *out);

/* SEARCH (RFC 9051 6.4.4). needle is UTF-8; matching is case-insensitive
 * substring on decoded text (RFC 2047 words, transfer encodings, charsets
 * converted to UTF-8). */
/* HEADER field string (field NULL: FROM/TO/CC/BCC/SUBJECT callers pass
 * the name). An empty needle matches every message with the field. */
bool mime_search_header(const struct mime_msg *msg, const char *wire,
			const char *field, const char *needle);
/* BODY (text parts' bodies) or, with headers, TEXT (headers and bodies). */
bool mime_search_body(const struct mime_msg *msg, const char *wire,
		      const char *needle, bool headers);
/* The Date: header as a time (SENTBEFORE, SENTON, SENTSINCE), or -1.
 * The time is the sender's wall clock read as UTC (the zone offset is
 * added back), so gmtime() of it gives the date in the sender's zone:
 * RFC 9051 compares that date "disregarding time and timezone". */
time_t mime_sent_date(const struct mime_msg *msg, const char *wire);

#endif
