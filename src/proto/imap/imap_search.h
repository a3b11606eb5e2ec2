/*
 * SEARCH (RFC 9051 6.4.4, RFC 3501 6.4.4, RFC 4731 ESEARCH, RFC 5182
 * SEARCHRES, RFC 7162 MODSEQ): the program parsed from the argument tree
 * into a tree of keys, and an evaluator that decides one message at a
 * time through callbacks the session implements, asking for cheap facts
 * (flags, UID, size, dates) before headers and headers before bodies.
 *
 * Typical use, for SEARCH or UID SEARCH:
 *   r = imap_search_parse(args_after_SEARCH, n, &s, &err);
 *   r == IMAP_SEARCH_BADCHARSET: NO [BADCHARSET (UTF-8 US-ASCII)]
 *   r == IMAP_SEARCH_BAD: BAD err
 *   imap_search_resolve(&s, message_count, last_uid, saved_uids);
 *   for each message: if (imap_search_match(&s, &ops, msg_ctx)) ...
 *   s.esearch ? imap_search_write_esearch(...) : "* SEARCH ..."
 *   imap_search_free(&s);
 */
#ifndef POSTD_IMAP_SEARCH_H
#define POSTD_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"
#include "proto/imap/imap_parse.h"
#include "proto/imap/imap_seqset.h"

enum imap_search_type {
	IMAP_SK_AND,	 /* all children: the program, "( ... )" */
	IMAP_SK_OR,	 /* two children */
	IMAP_SK_NOT,	 /* one child */
	IMAP_SK_FLAGS,	 /* ALL, ANSWERED, ..., NEW, OLD, UNSEEN: masks */
	IMAP_SK_KEYWORD, /* KEYWORD / UNKEYWORD (negated) */
	IMAP_SK_SEQSET,	 /* a sequence set, or "$" */
	IMAP_SK_UIDSET,	 /* UID set, or UID $ */
	IMAP_SK_LARGER,
	IMAP_SK_SMALLER,
	IMAP_SK_MODSEQ, /* RFC 7162: modseq >= number */
	IMAP_SK_BEFORE, /* internal date, by day */
	IMAP_SK_ON,
	IMAP_SK_SINCE,
	IMAP_SK_SENTBEFORE, /* Date: header, by day */
	IMAP_SK_SENTON,
	IMAP_SK_SENTSINCE,
	IMAP_SK_HEADER, /* HEADER, and BCC CC FROM SUBJECT TO */
	IMAP_SK_BODY,
	IMAP_SK_TEXT,
};

/* How expensive a key is to decide: what the session must read. */
enum imap_search_cost {
	IMAP_SEARCH_COST_INDEX = 0,  /* flags, UID, size, dates, modseq */
	IMAP_SEARCH_COST_HEADER = 1, /* the header (HEADER, SENT*) */
	IMAP_SEARCH_COST_BODY = 2,   /* the whole message (BODY, TEXT) */
};

struct imap_search_key {
	enum imap_search_type type;
	enum imap_search_cost cost; /* of the key and all below it */
	/* FLAGS: every bit of flags_set set and every bit of flags_clear
	 * clear (enum mail_flag). ALL is 0/0. KEYWORD: negated for
	 * UNKEYWORD. */
	uint32_t flags_set;
	uint32_t flags_clear;
	bool negated;
	/* KEYWORD name; HEADER needle; BODY/TEXT needle (UTF-8 or ASCII) */
	const char *str;
	/* HEADER: the field, "From" for FROM etc. */
	const char *field;
	int64_t day;	 /* dates: days since 1970-01-01 */
	uint64_t number; /* LARGER, SMALLER, MODSEQ */
	/* SEQSET, UIDSET: as parsed, and as last resolved (what matching
	 * uses). */
	struct imap_seqset raw;
	struct imap_seqset set;
	struct imap_search_key *children;
	size_t child_count;
};

/*
 * RETURN options (RFC 4731, RFC 5182). SAVE keeps the result for "$":
 * all of it, except that with MIN and/or MAX but neither ALL nor COUNT
 * only those messages are kept (RFC 5182); a failed SEARCH empties
 * the saved result. The session keeps it as UIDs.
 */
#define IMAP_SEARCH_RET_MIN (1u << 0)
#define IMAP_SEARCH_RET_MAX (1u << 1)
#define IMAP_SEARCH_RET_ALL (1u << 2)
#define IMAP_SEARCH_RET_COUNT (1u << 3)
#define IMAP_SEARCH_RET_SAVE (1u << 4)
/* RFC 5267 CONTEXT=SEARCH: UPDATE keeps the search alive (ADDTO and
 * REMOVEFROM follow); PARTIAL returns the results at positions
 * partial_lo..partial_hi (1-based; both negative: counted from the end,
 * -1 being the last, RFC 9394). */
#define IMAP_SEARCH_RET_UPDATE (1u << 5)
#define IMAP_SEARCH_RET_PARTIAL (1u << 6)

struct imap_search {
	struct imap_search_key *root; /* an IMAP_SK_AND */
	/* RETURN (...) was given: answer ESEARCH. "RETURN ()" is ALL. */
	bool esearch;
	unsigned ret;
	int32_t partial_lo, partial_hi; /* |lo| <= |hi|, same sign */
	/* "$" appears: RFC 5182 requires the previous SAVE to be done. */
	bool uses_saved;
	/* A MODSEQ key appears: it enables CONDSTORE (RFC 7162 3.1). */
	bool uses_modseq;
	bool resolved;
	size_t key_count;
	struct imap_arena *arena;
};

#define IMAP_SEARCH_OK 0
#define IMAP_SEARCH_BAD (-1)
#define IMAP_SEARCH_BADCHARSET (-2) /* NO [BADCHARSET (UTF-8 US-ASCII)] */

/*
 * args[0..count): what follows SEARCH: [RETURN (opts)] [CHARSET name]
 * keys. Charsets accepted: UTF-8 and US-ASCII (case-insensitive). At most
 * IMAP_MAX_SEARCH_KEYS keys, nested at most IMAP_MAX_SEARCH_DEPTH deep.
 * Returns IMAP_SEARCH_OK, or an error with *error_r and *out empty.
 */
int imap_search_parse(const struct imap_arg *args, size_t count,
		      struct imap_search *out, const char **error_r);
void imap_search_free(struct imap_search *search);

/*
 * Resolves the sets against the selected mailbox before matching:
 * sequence sets against max_seq (numbers beyond it match nothing), UID
 * sets against max_uid (RFC 9051 6.4.8's '*' rule), and "$" to a copy of
 * saved_uids (a resolved set of UIDs; NULL or empty: "$" matches
 * nothing, RFC 5182). Call again after the mailbox changed.
 */
void imap_search_resolve(struct imap_search *search, uint32_t max_seq,
			 uint32_t max_uid,
			 const struct imap_seqset *saved_uids);

/*
 * What the evaluator asks about one message. flags: enum mail_flag bits,
 * MAIL_RECENT included. sent_date: the Date: header as a time, or -1
 * (then SENT* keys do not match). header_contains: field's decoded value
 * contains needle, case-insensitively (an empty needle: the field
 * exists). body_contains: in the text parts, and with_headers for TEXT.
 * modseq may be NULL (MODSEQ then never matches). zone: minutes east of
 * UTC in which dates are taken for BEFORE/ON/SINCE and SENT*.
 */
struct imap_search_ops {
	uint32_t (*flags)(void *ctx);
	bool (*keyword)(void *ctx, const char *name);
	uint32_t (*seq)(void *ctx);
	uint32_t (*uid)(void *ctx);
	uint64_t (*size)(void *ctx);
	time_t (*internaldate)(void *ctx);
	uint64_t (*modseq)(void *ctx);
	time_t (*sent_date)(void *ctx);
	bool (*header_contains)(void *ctx, const char *field,
				const char *needle);
	bool (*body_contains)(void *ctx, const char *needle, bool with_headers);
	int zone;
};

/* Does the message behind ctx match? A resolved search only (an
 * unresolved one matches nothing). */
bool imap_search_match(const struct imap_search *search,
		       const struct imap_search_ops *ops, void *ctx);
/* The most the session will have to read to decide a message. */
enum imap_search_cost imap_search_cost(const struct imap_search *search);

/*
 * The ESEARCH response (RFC 4731) for results[0..count) (ascending
 * sequence numbers or UIDs): '* ESEARCH (TAG "tag") [UID] [MIN n] [MAX n]
 * [ALL set] [COUNT n]' without CRLF. MIN, MAX and ALL are left out when
 * nothing matched. With RETURN (SAVE) alone nothing is written (RFC 5182
 * 2.4). Returns 0, or -1 when out is full.
 */
int imap_search_write_esearch(const char *tag, bool uid, unsigned ret,
			      const uint32_t *results, size_t count,
			      struct buf *out);

/*
 * Appends ' PARTIAL (lo:hi set)' (or NIL for the set) for the PARTIAL
 * return option: the results at those positions of results[0..count).
 * Returns 0, or -1 when out is full.
 */
int imap_search_write_partial(const struct imap_search *search,
			      const uint32_t *results, size_t count,
			      struct buf *out);

#endif
