/*
 * Internals shared by the files of src/mime: the part tree, header field
 * iteration and the Content-* lookups. Not for use outside src/mime.
 */
#ifndef POSTD_MIME_INT_H
#define POSTD_MIME_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mime/mime.h"

#define MIME_NONE UINT32_MAX

enum mime_kind {
	/* A leaf: its type comes from its Content-Type (text/plain when it
	 * has none). */
	MIME_KIND_LEAF = 0,
	/* multipart/... with a boundary: the children are its parts. */
	MIME_KIND_MULTIPART = 1,
	/* message/rfc822: one child, the encapsulated message. */
	MIME_KIND_RFC822 = 2,
	/* message/rfc822 not descended into (MIME_MAX_DEPTH or
	 * MIME_MAX_PARTS reached): written as application/octet-stream so
	 * that no client expects an envelope. */
	MIME_KIND_RFC822_OPAQUE = 3,
};
#define MIME_KIND_MAX MIME_KIND_RFC822_OPAQUE

/* Content-* fields count (RFC 2045 section 4: MIME-Version, and as
 * Dovecot does, a Content-Type or being a part of a multipart). */
#define MIME_FLAG_IS_MIME 0x01u
/* A part of multipart/digest: without Content-Type it is
 * message/rfc822 (RFC 2046 section 5.1.5). */
#define MIME_FLAG_DIGEST_CHILD 0x02u
#define MIME_FLAG_ALL (MIME_FLAG_IS_MIME | MIME_FLAG_DIGEST_CHILD)

struct mime_part {
	/* The header block with its blank line, then the body: body_off is
	 * always hdr_off + hdr_len. */
	size_t hdr_off, hdr_len;
	size_t body_off, body_len;
	/* LF count of the body (RFC 9051 body-fld-lines). */
	size_t body_lines;
	uint32_t parent, first_child, last_child, next;
	uint32_t child_count;
	uint8_t kind, flags, depth;
};

struct mime_msg {
	size_t wire_len;
	uint32_t count, cap;
	struct mime_part *parts;
};

/* One header field: name, value (after the colon and the blanks after
 * it, up to the field's last line end, folds included) and the whole
 * field with its line end. */
struct mime_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
	size_t off, len;
	bool has_colon;
};

struct mime_hiter {
	const char *wire;
	size_t pos, start, end;
	unsigned count;
};

void mime_hiter_init(struct mime_hiter *it, const char *wire,
		     const struct mime_part *p);
/* The next field, bounded by MIME_MAX_HEADERS and MIME_MAX_HEADER_BYTES. */
bool mime_hiter_next(struct mime_hiter *it, struct mime_field *f);
bool mime_field_is(const struct mime_field *f, const char *name);
/* value without its line breaks (CRLF or LF removed, the blanks of the
 * continuation kept), NUL-terminated, malloc'd. A NUL inside stays: the
 * structured parsers stop at it, as Dovecot's C strings do. */
char *mime_unfold(const char *value, size_t len, size_t *len_r);
/* A header value as a string to show (Dovecot's message_header_strdup):
 * a NUL becomes U+FFFD; unfolded, or with its line breaks when !unfold
 * (the subject's breaks become blanks). */
char *mime_header_copy(const char *value, size_t len, bool unfold,
		       size_t *len_r);

/* The first field called name in p's header (Content-* only when the
 * part is MIME), unfolded, or NULL. */
char *mime_part_field(const struct mime_msg *msg, const char *wire,
		      const struct mime_part *p, const char *name,
		      size_t *len_r);

/* A Content-Type, parsed the way Dovecot's rfc822 parser does. */
struct mime_param {
	char *name, *value;
};
struct mime_ctype {
	char *type, *subtype; /* NULL when there is no Content-Type */
	struct mime_param *params;
	size_t param_count;
};
void mime_ctype_parse(const char *value, size_t len, struct mime_ctype *ct);
void mime_ctype_free(struct mime_ctype *ct);
/* Token parsing for the structure parser: the type and subtype of a
 * Content-Type value, and its boundary parameter. */
const char *mime_param_get(const struct mime_ctype *ct, const char *name);

/* The part that section numbers point at; NULL when there is none. */
const struct mime_part *mime_lookup(const struct mime_msg *msg,
				    const unsigned *part, size_t depth);

#endif
