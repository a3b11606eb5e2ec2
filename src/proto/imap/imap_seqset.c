/*
 * Sequence sets. A parsed set keeps the client's ranges; resolving turns
 * them into sorted, merged ranges so that contains() is a binary search
 * and a set of 10,000 ranges costs no more than its ranges (a range
 * "1:4294967295" is one entry, never four billion).
 */
#include "proto/imap/imap_seqset.h"

#include <stdlib.h>
#include <string.h>

#include "lib/postd_limits.h"
#include "lib/xmalloc.h"

static int parse_number(const char **p, const char *end, uint32_t *n_r);
static int compare_ranges(const void *a, const void *b);
static void push_range(struct imap_seqset *set, uint32_t lo, uint32_t hi);
static int format_range(struct buf *out, bool first, uint32_t lo, uint32_t hi);

/* seq-number = nz-number / "*"; nz-number has no leading zero. */
static int parse_number(const char **p, const char *end, uint32_t *n_r)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s < end && *s == '*') {
		*n_r = IMAP_SEQ_STAR;
		*p = s + 1;
		return 0;
	}
	if (s == end || *s < '1' || *s > '9')
		return -1;
	while (s < end && *s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -1;
		s++;
	}
	*n_r = (uint32_t)v;
	*p = s;
	return 0;
}

static void push_range(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	if (set->count == set->cap) {
		set->cap = set->cap == 0 ? 4 : set->cap * 2;
		set->ranges =
		    xreallocarray(set->ranges, set->cap, sizeof(*set->ranges));
	}
	set->ranges[set->count].lo = lo;
	set->ranges[set->count].hi = hi;
	set->count++;
}

int imap_seqset_parse(const char *s, size_t len, struct imap_seqset *set,
		      const char **error_r)
{
	const char *p = s;
	const char *end = s + len;

	memset(set, 0, sizeof(*set));
	if (len == 1 && s[0] == '$') {
		set->saved = true;
		return 0;
	}
	for (;;) {
		uint32_t lo;
		uint32_t hi;

		if (parse_number(&p, end, &lo) < 0)
			break;
		hi = lo;
		if (p < end && *p == ':') {
			p++;
			if (parse_number(&p, end, &hi) < 0)
				break;
		}
		if (set->count == IMAP_MAX_SEQ_RANGES) {
			imap_seqset_free(set);
			*error_r = "Too many ranges in sequence set";
			return -1;
		}
		push_range(set, lo, hi);
		if (p == end)
			return 0;
		if (*p != ',')
			break;
		p++;
	}
	imap_seqset_free(set);
	*error_r = "Invalid sequence set";
	return -1;
}

bool imap_seqset_syntax_ok(const char *s, size_t len)
{
	struct imap_seqset set;
	const char *error;

	if (imap_seqset_parse(s, len, &set, &error) < 0)
		return false;
	imap_seqset_free(&set);
	return true;
}

static int compare_ranges(const void *a, const void *b)
{
	const struct imap_seq_range *x = a;
	const struct imap_seq_range *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

void imap_seqset_normalize(struct imap_seqset *set)
{
	size_t out = 0;

	if (set->count > 1)
		qsort(set->ranges, set->count, sizeof(*set->ranges),
		      compare_ranges);
	for (size_t i = 0; i < set->count; i++) {
		struct imap_seq_range r = set->ranges[i];

		/* overlapping or adjacent: merge (hi + 1 cannot wrap when
		 * compared as 64 bits) */
		if (out > 0 &&
		    (uint64_t)r.lo <= (uint64_t)set->ranges[out - 1].hi + 1) {
			if (r.hi > set->ranges[out - 1].hi)
				set->ranges[out - 1].hi = r.hi;
			continue;
		}
		set->ranges[out++] = r;
	}
	set->count = out;
	set->resolved = true;
}

int imap_seqset_resolve(struct imap_seqset *set, uint32_t max, bool uid)
{
	size_t out = 0;
	int r = 0;

	for (size_t i = 0; i < set->count; i++) {
		struct imap_seq_range rg = set->ranges[i];

		if (rg.lo == IMAP_SEQ_STAR)
			rg.lo = max;
		if (rg.hi == IMAP_SEQ_STAR)
			rg.hi = max;
		if (rg.lo > rg.hi) {
			uint32_t t = rg.lo;

			rg.lo = rg.hi;
			rg.hi = t;
		}
		if (!uid && (rg.hi > max || max == 0))
			r = 1;
		if (rg.hi > max)
			rg.hi = max;
		/* "559:*" with max 500 is 500 for UIDs; lo is 500 already
		 * because '*' was swapped to the low end above. */
		if (rg.lo == 0 || rg.lo > rg.hi)
			continue;
		set->ranges[out++] = rg;
	}
	set->count = out;
	imap_seqset_normalize(set);
	return r;
}

void imap_seqset_free(struct imap_seqset *set)
{
	XFREE(set->ranges);
	set->count = 0;
	set->cap = 0;
}

void imap_seqset_add(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	if (lo > hi) {
		uint32_t t = lo;

		lo = hi;
		hi = t;
	}
	push_range(set, lo, hi);
	set->resolved = false;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
	size_t lo = 0;
	size_t hi = set->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct imap_seq_range *r = &set->ranges[mid];

		if (n < r->lo)
			hi = mid;
		else if (n > r->hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

uint64_t imap_seqset_count(const struct imap_seqset *set)
{
	uint64_t total = 0;

	for (size_t i = 0; i < set->count; i++)
		total += (uint64_t)set->ranges[i].hi - set->ranges[i].lo + 1;
	return total;
}

void imap_seqset_iter_init(struct imap_seqset_iter *it,
			   const struct imap_seqset *set)
{
	it->set = set;
	it->range = 0;
	it->next = set->count > 0 ? set->ranges[0].lo : 0;
}

bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *n_r)
{
	const struct imap_seqset *set = it->set;

	while (it->range < set->count) {
		const struct imap_seq_range *r = &set->ranges[it->range];

		if (it->next < r->lo)
			it->next = r->lo;
		if (it->next <= r->hi) {
			*n_r = (uint32_t)it->next++;
			return true;
		}
		it->range++;
	}
	return false;
}

static int format_range(struct buf *out, bool first, uint32_t lo, uint32_t hi)
{
	const char *sep = first ? "" : ",";

	if (lo == hi)
		return buf_printf(out, "%s%u", sep, lo);
	return buf_printf(out, "%s%u:%u", sep, lo, hi);
}

int imap_seqset_format(const struct imap_seqset *set, struct buf *out)
{
	for (size_t i = 0; i < set->count; i++) {
		if (format_range(out, i == 0, set->ranges[i].lo,
				 set->ranges[i].hi) < 0)
			return -1;
	}
	return 0;
}

int imap_seqset_format_list(const uint32_t *numbers, size_t count,
			    struct buf *out)
{
	size_t i = 0;

	while (i < count) {
		size_t j = i;

		while (j + 1 < count && numbers[j] != UINT32_MAX &&
		       numbers[j + 1] == numbers[j] + 1)
			j++;
		if (format_range(out, i == 0, numbers[i], numbers[j]) < 0)
			return -1;
		i = j + 1;
	}
	return 0;
}
