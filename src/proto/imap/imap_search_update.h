/*
 * Live searches (RFC 5267 CONTEXT=SEARCH): SEARCH RETURN (UPDATE ...)
 * keeps its result, and the session tells the client how it changes as
 * messages arrive, change flags or are expunged, with
 * '* ESEARCH (TAG "t") [UID] REMOVEFROM (0 set) ADDTO (0 set)' until
 * CANCELUPDATE or the folder is closed. At most IMAP_MAX_SEARCH_UPDATES
 * per session.
 */
#ifndef POSTD_IMAP_SEARCH_UPDATE_H
#define POSTD_IMAP_SEARCH_UPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap/imap_commands.h"
#include "proto/imap/imap_search.h"

/*
 * Keeps *search alive under tag (taken over: *search is emptied), with
 * its current result uids[0..count) (ascending). False when the session
 * already keeps IMAP_MAX_SEARCH_UPDATES searches or one with this tag
 * (then *search is left to the caller).
 */
bool imap_search_update_add(struct imap_session *s, const char *tag, bool uid,
			    struct imap_search *search, const uint32_t *uids,
			    size_t count);
/* The message at seq0 (as the client knew it) is being expunged: tells
 * the searches that had it, before its EXPUNGE. */
void imap_search_update_expunged(struct imap_session *s, size_t seq0);
/* Re-evaluates the messages that arrived or changed since the last time
 * and sends ADDTO/REMOVEFROM. Cheap when nothing changed. */
void imap_search_update_flush(struct imap_session *s);
/* Drops every live search (the folder is closed). */
void imap_search_update_free(struct imap_session *s);
/* CANCELUPDATE "tag" ... (RFC 5267 4.2) */
imap_handler_fn imap_cmd_cancelupdate;

/* imap_search_cmd.c: does the message at seq0 of the view match? */
bool imap_search_cmd_match(struct imap_session *s,
			   const struct imap_search *search, size_t seq0);

#endif
