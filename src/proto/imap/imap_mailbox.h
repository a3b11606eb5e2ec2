/*
 * The selected state (imap_mailbox.c): the view of the selected folder,
 * untagged updates, and the handlers of the commands that act on it.
 */
#ifndef POSTD_IMAP_MAILBOX_H
#define POSTD_IMAP_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap/imap_commands.h"
#include "proto/imap/imap_seqset.h"
#include "storage/mail_index.h"

/* Tells the client what changed in the selected folder (EXISTS, RECENT,
 * FETCH FLAGS, and EXPUNGE when allow_expunge: RFC 9051 7.5.1). */
void imap_mailbox_sync(struct imap_session *s, bool allow_expunge);
const struct mail_sync_cb *imap_mailbox_sync_cb(void);

/* A CONDSTORE-enabling command (RFC 7162 3.1): from now on flag updates
 * carry MODSEQ; the first time in a selected folder the client hears its
 * HIGHESTMODSEQ. */
void imap_condstore_enable(struct imap_session *s);

/* Sends FLAGS and PERMANENTFLAGS when the folder gained keywords since
 * the client was last told (another session's STORE may define one): a
 * FETCH must never show a keyword FLAGS did not list. Call it only
 * between responses, never inside one. */
void imap_mailbox_tell_keywords(struct imap_session *s);

/* Room for every flag of one message: the system flags, \Recent and
 * MAIL_MAX_KEYWORDS keywords of the longest length, with spaces. */
#define IMAP_FLAGS_SIZE (80 + MAIL_MAX_KEYWORDS * (MAIL_MAX_KEYWORD_LEN + 1))

/* m's flags and keywords as IMAP flags ("\\Seen $Label1"), \Recent in
 * rev1 only. Never writes past size; out must be IMAP_FLAGS_SIZE to hold
 * them all. */
void imap_mailbox_format_flags(const struct imap_session *s,
			       const struct mail_msg *m, char *out,
			       size_t size);
/*
 * A flag list (v[0..n)): system flags into *flags_r, keywords into a
 * malloc'ed array of borrowed names (*kw_r, free() it). False after a BAD.
 */
bool imap_mailbox_parse_flags(struct imap_session *s, const struct imap_arg *v,
			      size_t n, uint32_t *flags_r, const char ***kw_r,
			      size_t *kw_count_r);
/* What "*" stands for in a UID set: the UID of the last message, or
 * UIDNEXT - 1 in an empty folder (RFC 9051 6.4.9). */
uint32_t imap_mailbox_uid_star(struct imap_session *s);
/* Resolves a parsed set against the view ("$", '*', UIDs); false after a
 * BAD for sequence numbers out of range. */
bool imap_mailbox_resolve_set(struct imap_session *s, struct imap_seqset *set,
			      bool uid);
/* STATUS name (items) as an untagged response; quiet: no refusal when the
 * folder cannot be read (LIST-STATUS skips it). */
bool imap_status_untagged(struct imap_session *s, const char *name,
			  const struct imap_arg *items, bool quiet);
bool imap_list_status_items_ok(const struct imap_arg *items);
/* An APPEND in flight is void (its line was overlong): drops it. */
void imap_mailbox_append_abort(struct imap_session *s);
/* The connection is going: the selected folder and an APPEND in flight. */
void imap_mailbox_session_end(struct imap_session *s);

imap_handler_fn imap_cmd_select, imap_cmd_examine, imap_cmd_close,
    imap_cmd_unselect, imap_cmd_check, imap_cmd_expunge, imap_cmd_status,
    imap_cmd_idle, imap_cmd_copy, imap_cmd_move, imap_cmd_fetch, imap_cmd_store,
    imap_cmd_search;

#endif
