/*
 * What SORT and THREAD (RFC 5256, RFC 5957) compare, taken from a
 * message's header: the base subject (RFC 5256 section 2.1), the
 * addr-mailbox of the first From/To/Cc address, the display names of
 * From/To (RFC 5957), the sent date, and the Message-ID and References
 * that THREAD=REFERENCES links. Strings are UTF-8 with ASCII letters upper
 * cased, so that strcmp() is the i;ascii-casemap comparison. The parsers
 * are pure (no I/O) for the unit tests; imap_sortkeys_load() reads the
 * header of a message of the selected view.
 */
#ifndef POSTD_IMAP_SORTKEYS_H
#define POSTD_IMAP_SORTKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct imap_session;

struct imap_sortkeys {
	char *subject;	      /* base subject, "" when none */
	bool reply;	      /* Re:, Fwd:, (fwd) or [fwd: ...] was removed */
	char *from, *to, *cc; /* addr-mailbox of the first address, or "" */
	char *display_from, *display_to; /* RFC 5957, or "" */
	time_t sent;			 /* Date: in UTC, or -1 */
	char *message_id;		 /* without <>, or NULL */
	char **refs; /* References (In-Reply-To), oldest first */
	size_t ref_count;
};

/*
 * The base subject of a raw Subject value (RFC 2047 words are decoded
 * here), upper cased; *reply_r says whether it was a reply or forward.
 * malloc'd.
 */
char *imap_base_subject(const char *raw, bool *reply_r);

/* The keys of a header block hdr[0..len) (LF or CRLF line ends). */
void imap_sortkeys_parse(const char *hdr, size_t len, struct imap_sortkeys *k);
void imap_sortkeys_free(struct imap_sortkeys *k);

/*
 * The keys of message seq0 of s's view, its sent date falling back to its
 * INTERNALDATE (RFC 5256 section 2.2). A message that cannot be read has
 * empty keys.
 */
void imap_sortkeys_load(struct imap_session *s, size_t seq0,
			struct imap_sortkeys *k);

#endif
