/*
 * Mailbox names in modified UTF-7 (RFC 3501 5.1.3), which clients that
 * have not enabled UTF8=ACCEPT (RFC 9051 / RFC 6855) send and expect, to
 * and from the UTF-8 that the server stores.
 */
#ifndef POSTD_IMAP_MUTF7_H
#define POSTD_IMAP_MUTF7_H

#include <stddef.h>

#include "lib/buf.h"

/* Results of the conversions. */
#define IMAP_MUTF7_OK 0
#define IMAP_MUTF7_INVALID (-1) /* not a valid encoding: answer NO/BAD */
#define IMAP_MUTF7_FULL (-2)	/* out has no room: the name is too long */

/*
 * Decodes in[0..len) into UTF-8 appended to out. Strict: rejects bytes
 * outside 0x20..0x7e, a "&" section that is not closed by "-", bad
 * base64, non-zero padding bits, an odd number of octets, unpaired
 * surrogates, U+0000, printable ASCII encoded in base64 (it must
 * represent itself) and a section right after another (a "-&" null
 * shift), so that each name has exactly one spelling. On
 * error out may hold part of the result.
 */
int imap_mutf7_to_utf8(const char *in, size_t len, struct buf *out);

/* Encodes UTF-8 in[0..len) (must be valid) into modified UTF-7 appended
 * to out. */
int imap_utf8_to_mutf7(const char *in, size_t len, struct buf *out);

#endif
