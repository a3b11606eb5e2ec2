/*
 * APPEND with MULTIAPPEND (RFC 3502), CATENATE (RFC 4469) and literal8
 * (RFC 3516), driven by the command collector (imap_session.c) through
 * imap_commands_append_begin/data/end/finish (imap_commands.h).
 */
#ifndef POSTD_IMAP_APPEND_H
#define POSTD_IMAP_APPEND_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/imap/imap_commands.h"
#include "proto/imap/imap_parse.h"

/*
 * Starts the APPEND in wire[0..len) (the command up to its first literal
 * announcement ann, or the whole command when ann is NULL), whose mailbox
 * ends at mbox_end. True when it is APPEND's to finish (answered or
 * reading a literal); false when wire is no APPEND it can read.
 */
bool imap_append_start(struct imap_session *s, const char *wire, size_t len,
		       size_t mbox_end, const struct imap_literal_ann *ann);
/* An APPEND command that came without a literal (CATENATE of URLs). */
void imap_append_without_literal(struct imap_session *s);
/* Drops an APPEND in flight: nothing of it is stored. */
void imap_append_cancel(struct imap_session *s);

#endif
