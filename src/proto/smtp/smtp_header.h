/*
 * The header checks: on a submission server (RFC 6409 section 8), is every
 * address in From: the user's own, and are Message-ID: and Date: present
 * (they are added if not); on every listener, how many Received: fields
 * the message already carries (a mail loop). Pure and streaming: message
 * bytes go through one line at a time, so only the start of the current
 * line (SMTP_MAX_TEXT_LINE octets) and the From: field are ever held,
 * whatever the size of the header section. A longer line passes through
 * unchanged and the scan goes on after it.
 */
#ifndef POSTD_SMTP_HEADER_H
#define POSTD_SMTP_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/postd_limits.h"

/* Bytes to pass on, in order. */
typedef void smtp_header_out_fn(void *ctx, const char *data, size_t len);
/* Called once, where the header section ends (before its empty line),
 * so that missing fields can be written there through out. */
typedef void smtp_header_end_fn(void *ctx, bool have_message_id,
				bool have_date);

struct smtp_header_scan {
	const char *user; /* the address From: must hold, lowercase;
			   * NULL: From: is not checked */
	smtp_header_out_fn *out;
	smtp_header_end_fn *at_end;
	void *ctx;
	bool done; /* past the header section: bytes pass straight on */
	char line[SMTP_MAX_TEXT_LINE + 1];
	size_t line_len;
	/* The current line did not fit: its start was examined and sent on,
	 * the rest passes straight through to its LF. */
	bool line_overflow;
	char field[SMTP_HEADER_MAX_FROM + 1]; /* the From: field so far */
	size_t field_len;
	bool in_from; /* the field being read is From: */
	unsigned from_count;
	bool have_message_id, have_date;
	unsigned received_count; /* Received: fields in the header section */
	/* The verdict, final after smtp_header_finish(): a From: address
	 * that is not the user, more than one From: field, or a From: line
	 * too long to hold. */
	bool from_mismatch;
};

void smtp_header_init(struct smtp_header_scan *h, const char *user,
		      smtp_header_out_fn *out, smtp_header_end_fn *at_end,
		      void *ctx);
/* Message bytes (CRLF line ends), in chunks of any size. */
void smtp_header_feed(struct smtp_header_scan *h, const char *in, size_t len);
/* The message ended: flushes what is held. */
void smtp_header_finish(struct smtp_header_scan *h);

/*
 * True if every mailbox in an RFC 5322 address list (display names,
 * comments, quoted strings, groups, folding) is user (case-insensitive)
 * and there is at least one. Exposed for the unit tests.
 */
bool smtp_header_from_is(const char *value, size_t len, const char *user);

#endif
