/*
 * What FETCH (imap_fetch.c) lends the rest of the IMAP session: a stored
 * message in the form clients see it, for APPEND's CATENATE URLs.
 */
#ifndef POSTD_IMAP_FETCH_H
#define POSTD_IMAP_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "storage/mail_index.h"

/*
 * Message seq0 of view in wire form (CRLF line ends, the last line ended
 * as RFC822.SIZE counts it), malloc'ed, its length in *len_r. NULL when
 * it is gone, unreadable, larger than max octets on disk, or grew while
 * being read.
 */
char *imap_fetch_load_wire(struct mail_view *view, size_t seq0, uint64_t max,
			   size_t *len_r);

#endif
