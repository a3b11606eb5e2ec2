/*
 * The SEARCH program parser and evaluator on arbitrary programs (the input
 * follows "t SEARCH "). Besides memory errors it checks that evaluating
 * cheap keys first never changes the answer: imap_search_match() must
 * agree with a plain left-to-right evaluation of the same tree, for a few
 * made-up messages.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "lib/postd_limits.h"
#include "proto/imap/imap_date.h"
#include "proto/imap/imap_parse.h"
#include "proto/imap/imap_search.h"
#include "storage/mail_index.h"

/* A made-up message: every answer derives from its number. */
struct fmsg {
	uint32_t n;
};

static uint32_t f_flags(void *ctx);
static bool f_keyword(void *ctx, const char *name);
static uint32_t f_seq(void *ctx);
static uint32_t f_uid(void *ctx);
static uint64_t f_size(void *ctx);
static time_t f_internaldate(void *ctx);
static uint64_t f_modseq(void *ctx);
static time_t f_sent(void *ctx);
static bool f_header(void *ctx, const char *field, const char *needle);
static bool f_body(void *ctx, const char *needle, bool with_headers);
static bool plain_match(const struct imap_search_key *key,
			const struct imap_search_ops *ops, void *ctx,
			unsigned depth);

static uint32_t f_flags(void *ctx)
{
	return ((struct fmsg *)ctx)->n * 7 % 64;
}

static bool f_keyword(void *ctx, const char *name)
{
	return (strlen(name) + ((struct fmsg *)ctx)->n) % 3 == 0;
}

static uint32_t f_seq(void *ctx)
{
	return ((struct fmsg *)ctx)->n;
}

static uint32_t f_uid(void *ctx)
{
	return ((struct fmsg *)ctx)->n * 3 + 1;
}

static uint64_t f_size(void *ctx)
{
	return (uint64_t)((struct fmsg *)ctx)->n * 1000;
}

static time_t f_internaldate(void *ctx)
{
	return (time_t)((struct fmsg *)ctx)->n * 86400 * 400;
}

static uint64_t f_modseq(void *ctx)
{
	return ((struct fmsg *)ctx)->n * 5;
}

static time_t f_sent(void *ctx)
{
	uint32_t n = ((struct fmsg *)ctx)->n;

	return n % 2 ? (time_t)-1 : (time_t)n * 86400 * 300;
}

static bool f_header(void *ctx, const char *field, const char *needle)
{
	return (strlen(field) + strlen(needle) + ((struct fmsg *)ctx)->n) % 2 ==
	       0;
}

static bool f_body(void *ctx, const char *needle, bool with_headers)
{
	return (strlen(needle) + with_headers + ((struct fmsg *)ctx)->n) % 2 ==
	       0;
}

static const struct imap_search_ops f_ops = {
    f_flags,  f_keyword, f_seq,	   f_uid,  f_size, f_internaldate,
    f_modseq, f_sent,	 f_header, f_body, 60,
};

/* The reference: children in order, no reordering. */
static bool plain_match(const struct imap_search_key *key,
			const struct imap_search_ops *ops, void *ctx,
			unsigned depth)
{
	bool all = true;
	bool any = false;
	int64_t day;
	time_t t;

	FUZZ_CHECK(depth <= IMAP_MAX_SEARCH_DEPTH + 1);
	switch (key->type) {
	case IMAP_SK_AND:
	case IMAP_SK_OR:
		for (size_t i = 0; i < key->child_count; i++) {
			bool m =
			    plain_match(&key->children[i], ops, ctx, depth + 1);

			all = all && m;
			any = any || m;
		}
		return key->type == IMAP_SK_AND ? all : any;
	case IMAP_SK_NOT:
		FUZZ_CHECK(key->child_count == 1);
		return !plain_match(&key->children[0], ops, ctx, depth + 1);
	case IMAP_SK_FLAGS:
		return (ops->flags(ctx) & key->flags_set) == key->flags_set &&
		       (ops->flags(ctx) & key->flags_clear) == 0;
	case IMAP_SK_KEYWORD:
		return ops->keyword(ctx, key->str) != key->negated;
	case IMAP_SK_SEQSET:
		return imap_seqset_contains(&key->set, ops->seq(ctx));
	case IMAP_SK_UIDSET:
		return imap_seqset_contains(&key->set, ops->uid(ctx));
	case IMAP_SK_LARGER:
		return ops->size(ctx) > key->number;
	case IMAP_SK_SMALLER:
		return ops->size(ctx) < key->number;
	case IMAP_SK_MODSEQ:
		return ops->modseq(ctx) >= key->number;
	case IMAP_SK_HEADER:
		return ops->header_contains(ctx, key->field, key->str);
	case IMAP_SK_BODY:
	case IMAP_SK_TEXT:
		return ops->body_contains(ctx, key->str,
					  key->type == IMAP_SK_TEXT);
	default:
		break;
	}
	t = key->type >= IMAP_SK_SENTBEFORE ? ops->sent_date(ctx)
					    : ops->internaldate(ctx);
	if (t == (time_t)-1)
		return false;
	day = imap_day_of(t, ops->zone);
	if (key->type == IMAP_SK_BEFORE || key->type == IMAP_SK_SENTBEFORE)
		return day < key->day;
	if (key->type == IMAP_SK_ON || key->type == IMAP_SK_SENTON)
		return day == key->day;
	return day >= key->day;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char prefix[] = "t SEARCH ";
	size_t len = sizeof(prefix) - 1 + size;
	char *wire = malloc(len);
	struct imap_command cmd;
	struct imap_search s;
	struct imap_seqset saved = {0};
	const char *error = NULL;
	int r;

	if (wire == NULL)
		abort();
	memcpy(wire, prefix, sizeof(prefix) - 1);
	memcpy(wire + sizeof(prefix) - 1, data, size);
	if (imap_parse_command(wire, len, &cmd, &error) < 0) {
		free(wire);
		return 0;
	}
	r = imap_search_parse(cmd.args, cmd.arg_count, &s, &error);
	imap_command_free(&cmd);
	free(wire);
	if (r != IMAP_SEARCH_OK) {
		FUZZ_CHECK(error != NULL && s.arena == NULL);
		FUZZ_CHECK(r == IMAP_SEARCH_BAD || r == IMAP_SEARCH_BADCHARSET);
		return 0;
	}
	FUZZ_CHECK(s.key_count <= IMAP_MAX_SEARCH_KEYS);
	FUZZ_CHECK(s.root != NULL && s.root->type == IMAP_SK_AND);
	imap_seqset_add(&saved, 4, 9);
	imap_seqset_normalize(&saved);
	for (uint32_t round = 0; round < 2; round++) {
		/* resolving twice, as after the mailbox grew */
		imap_search_resolve(&s, 5 + round * 3, 16 + round * 9, &saved);
		for (uint32_t n = 1; n <= 5 + round * 3; n++) {
			struct fmsg m = {n};

			FUZZ_CHECK(imap_search_match(&s, &f_ops, &m) ==
				   plain_match(s.root, &f_ops, &m, 0));
		}
	}
	imap_seqset_free(&saved);
	imap_search_free(&s);
	return 0;
}
