/*
 * IMAP sequence sets (RFC 9051 9: sequence-set, seq-range; RFC 5182 "$"):
 * "1,3:5,7:*" parsed into ranges, then resolved against the mailbox ('*'
 * becomes the highest sequence number or UID) into sorted, merged,
 * non-overlapping ranges that contains() and the iterator walk. Also the
 * other way: a compact set written from numbers (COPYUID, ESEARCH ALL).
 *
 * Typical use:
 *   struct imap_seqset set;
 *   if (imap_seqset_parse(arg->str, arg->len, &set, &err) < 0) BAD err
 *   if (set.saved) ... substitute the saved result (RFC 5182) ...
 *   imap_seqset_resolve(&set, uid ? max_uid : count, uid);
 *   for (imap_seqset_iter_init(&it, &set); imap_seqset_iter_next(&it, &n);)
 *   imap_seqset_free(&set);
 */
#ifndef POSTD_IMAP_SEQSET_H
#define POSTD_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* '*' in a parsed set that is not resolved yet (0 is no valid number). */
#define IMAP_SEQ_STAR 0

/* lo <= hi once resolved; before, either may be IMAP_SEQ_STAR and lo may
 * be above hi ("5:2" is the same as "2:5"). */
struct imap_seq_range {
	uint32_t lo;
	uint32_t hi;
};

struct imap_seqset {
	struct imap_seq_range *ranges; /* malloc'ed */
	size_t count;
	size_t cap;
	bool saved;    /* the set was "$": the session's saved result */
	bool resolved; /* sorted, merged, no '*' */
};

/*
 * Parses s[0..len): numbers 1..4294967295, '*', ranges, commas; or "$"
 * alone (set->saved, no ranges). At most IMAP_MAX_SEQ_RANGES ranges.
 * Returns 0, or -1 with *error_r (for BAD) and an empty set.
 */
int imap_seqset_parse(const char *s, size_t len, struct imap_seqset *set,
		      const char **error_r);
/* True when s[0..len) is syntactically a sequence set (SEARCH tells a set
 * from a search key by this). */
bool imap_seqset_syntax_ok(const char *s, size_t len);

/*
 * Replaces '*' with max, then sorts and merges. Sequence numbers (uid
 * false): numbers above max are dropped, and the return value is 1 to let
 * the caller answer BAD (RFC 9051 says such a set is invalid); with max 0
 * every set is out of range. UIDs (uid true): numbers above max are simply
 * not there, except that a range ending in '*' always includes max
 * (RFC 9051 6.4.8: "559:*" with max 500 is 500). Returns 0 otherwise.
 */
int imap_seqset_resolve(struct imap_seqset *set, uint32_t max, bool uid);
void imap_seqset_free(struct imap_seqset *set);

/* Adds lo..hi (either order; no '*'); call imap_seqset_normalize() after
 * adding (it sorts and merges). For sets the server builds: unbounded. */
void imap_seqset_add(struct imap_seqset *set, uint32_t lo, uint32_t hi);
void imap_seqset_normalize(struct imap_seqset *set);

/* On a resolved set: membership (binary search) and the number of
 * members. */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);
uint64_t imap_seqset_count(const struct imap_seqset *set);

/* Walks a resolved set in ascending order. */
struct imap_seqset_iter {
	const struct imap_seqset *set;
	size_t range;
	uint64_t next;
};
void imap_seqset_iter_init(struct imap_seqset_iter *it,
			   const struct imap_seqset *set);
bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *n_r);

/*
 * Appends the set's ranges in their order as "1:3,5" (a single number
 * for a one-number range). Nothing for an empty set. Returns 0, or -1
 * when out is full.
 */
int imap_seqset_format(const struct imap_seqset *set, struct buf *out);
/*
 * Appends numbers[0..count) in their given order, runs of consecutive
 * ascending numbers as ranges: COPYUID's source and destination lists
 * must stay pairwise in order (RFC 4315), so nothing is sorted here.
 */
int imap_seqset_format_list(const uint32_t *numbers, size_t count,
			    struct buf *out);

#endif
