/*
 * The SEARCH program. Parsing walks the argument tree with an index, each
 * key taking the arguments it needs; every key counts against
 * IMAP_MAX_SEARCH_KEYS and every NOT, OR and group against
 * IMAP_MAX_SEARCH_DEPTH, so that neither the parser nor the evaluator
 * recurses or allocates without bound (INV-S3).
 */
#include "proto/imap/imap_search.h"

#include <string.h>
#include <strings.h>

#include "lib/postd_limits.h"
#include "proto/imap/imap_date.h"
#include "storage/mail_index.h"

/* Keys that take no argument and test flags. */
static const struct {
	const char *name;
	uint32_t set;
	uint32_t clear;
} flag_keys[] = {
    {"ALL", 0, 0},
    {"ANSWERED", MAIL_ANSWERED, 0},
    {"DELETED", MAIL_DELETED, 0},
    {"DRAFT", MAIL_DRAFT, 0},
    {"FLAGGED", MAIL_FLAGGED, 0},
    {"NEW", MAIL_RECENT, MAIL_SEEN},
    {"OLD", 0, MAIL_RECENT},
    {"RECENT", MAIL_RECENT, 0},
    {"SEEN", MAIL_SEEN, 0},
    {"UNANSWERED", 0, MAIL_ANSWERED},
    {"UNDELETED", 0, MAIL_DELETED},
    {"UNDRAFT", 0, MAIL_DRAFT},
    {"UNFLAGGED", 0, MAIL_FLAGGED},
    {"UNSEEN", 0, MAIL_SEEN},
};

/* Keys that take one string and search a header field. */
static const struct {
	const char *name;
	const char *field;
} address_keys[] = {
    {"BCC", "Bcc"},	    {"CC", "Cc"}, {"FROM", "From"},
    {"SUBJECT", "Subject"}, {"TO", "To"},
};

/* Keys that take one date. */
static const struct {
	const char *name;
	enum imap_search_type type;
} date_keys[] = {
    {"BEFORE", IMAP_SK_BEFORE}, {"ON", IMAP_SK_ON},
    {"SINCE", IMAP_SK_SINCE},	{"SENTBEFORE", IMAP_SK_SENTBEFORE},
    {"SENTON", IMAP_SK_SENTON}, {"SENTSINCE", IMAP_SK_SENTSINCE},
};

static const struct {
	const char *name;
	unsigned bit;
} return_opts[] = {
    {"MIN", IMAP_SEARCH_RET_MIN},   {"MAX", IMAP_SEARCH_RET_MAX},
    {"ALL", IMAP_SEARCH_RET_ALL},   {"COUNT", IMAP_SEARCH_RET_COUNT},
    {"SAVE", IMAP_SEARCH_RET_SAVE}, {"UPDATE", IMAP_SEARCH_RET_UPDATE},
};

/* The parser's state: the search being built and the first error. */
struct sp {
	struct imap_search *s;
	const char *error;
};

/* Arguments being consumed, one key at a time. */
struct arg_cursor {
	const struct imap_arg *args;
	size_t count;
	size_t i;
};

static int fail(struct sp *sp, const char *error);
static const struct imap_arg *next_arg(struct sp *sp, struct arg_cursor *c);
static struct imap_search_key *new_keys(struct sp *sp, size_t n);
static int parse_key(struct sp *sp, struct arg_cursor *c, unsigned depth,
		     struct imap_search_key *key);
static int parse_group(struct sp *sp, const struct imap_arg *args, size_t count,
		       unsigned depth, struct imap_search_key *key);
static int parse_word_key(struct sp *sp, struct arg_cursor *c,
			  const struct imap_arg *word, unsigned depth,
			  struct imap_search_key *key);
static int parse_arg_key(struct sp *sp, struct arg_cursor *c,
			 const struct imap_arg *word,
			 struct imap_search_key *key);
static int parse_string(struct sp *sp, struct arg_cursor *c, const char **s_r);
static int parse_number(struct sp *sp, struct arg_cursor *c, uint64_t *v_r);
static int parse_set(struct sp *sp, const struct imap_arg *arg,
		     struct imap_search_key *key);
static int parse_return(struct sp *sp, const struct imap_arg *list);
static int parse_partial(struct sp *sp, const struct imap_arg *arg);
static bool parse_partial_end(const char *p, const char *end, int32_t *out);
static int parse_modseq(struct sp *sp, struct arg_cursor *c,
			struct imap_search_key *key);
static bool is_keyword_atom(const struct imap_arg *arg);
static bool valid_field_name(const char *s);
static void free_sets(struct imap_search_key *key);
static void resolve_key(struct imap_search_key *key, uint32_t max_seq,
			uint32_t max_uid, const struct imap_seqset *saved);
static bool match_key(const struct imap_search_key *key,
		      const struct imap_search_ops *ops, void *ctx);
static bool match_leaf(const struct imap_search_key *key,
		       const struct imap_search_ops *ops, void *ctx);
static bool match_day(const struct imap_search_key *key, time_t t, int zone);

static int fail(struct sp *sp, const char *error)
{
	if (sp->error == NULL)
		sp->error = error;
	return -1;
}

static const struct imap_arg *next_arg(struct sp *sp, struct arg_cursor *c)
{
	if (c->i == c->count) {
		fail(sp, "Missing argument to search key");
		return NULL;
	}
	return &c->args[c->i++];
}

/* n keys, counted against IMAP_MAX_SEARCH_KEYS. */
static struct imap_search_key *new_keys(struct sp *sp, size_t n)
{
	if (n > IMAP_MAX_SEARCH_KEYS - sp->s->key_count) {
		fail(sp, "Too many search keys");
		return NULL;
	}
	sp->s->key_count += n;
	return imap_arena_alloc(sp->s->arena,
				n * sizeof(struct imap_search_key));
}

int imap_search_parse(const struct imap_arg *args, size_t count,
		      struct imap_search *out, const char **error_r)
{
	struct sp sp = {out, NULL};
	size_t i = 0;
	int r = IMAP_SEARCH_BAD;

	memset(out, 0, sizeof(*out));
	out->arena = imap_arena_new();
	if (count > 0 && imap_arg_is_atom(&args[0], "RETURN")) {
		if (count < 2) {
			fail(&sp, "RETURN needs a list");
			goto fail;
		}
		if (parse_return(&sp, &args[1]) < 0)
			goto fail;
		i = 2;
	}
	if (count > i && imap_arg_is_atom(&args[i], "CHARSET")) {
		const char *cs =
		    count > i + 1 ? imap_arg_astring(&args[i + 1]) : NULL;

		if (cs == NULL) {
			fail(&sp, "Missing charset");
			goto fail;
		}
		if (strcasecmp(cs, "UTF-8") != 0 &&
		    strcasecmp(cs, "US-ASCII") != 0) {
			fail(&sp, "Unsupported charset");
			r = IMAP_SEARCH_BADCHARSET;
			goto fail;
		}
		i += 2;
	}
	if (i == count) {
		fail(&sp, "Missing search keys");
		goto fail;
	}
	out->root = new_keys(&sp, 1);
	if (out->root == NULL ||
	    parse_group(&sp, args + i, count - i, 0, out->root) < 0)
		goto fail;
	return IMAP_SEARCH_OK;
fail:
	*error_r = sp.error;
	imap_search_free(out);
	return r;
}

/* "RETURN (MIN MAX ALL COUNT SAVE UPDATE PARTIAL range)"; "()" means
 * ALL (RFC 4731 3.1). */
static int parse_return(struct sp *sp, const struct imap_arg *list)
{
	if (list->type != IMAP_ARG_LIST)
		return fail(sp, "RETURN needs a list");
	sp->s->esearch = true;
	for (size_t i = 0; i < list->list_count; i++) {
		size_t k;

		if (imap_arg_is_atom(&list->list[i], "PARTIAL")) {
			if (i + 1 == list->list_count ||
			    parse_partial(sp, &list->list[++i]) < 0)
				return fail(sp, "PARTIAL needs a range");
			continue;
		}
		for (k = 0; k < sizeof(return_opts) / sizeof(return_opts[0]);
		     k++) {
			if (imap_arg_is_atom(&list->list[i],
					     return_opts[k].name))
				break;
		}
		if (k == sizeof(return_opts) / sizeof(return_opts[0]))
			return fail(sp, "Unknown RETURN option");
		sp->s->ret |= return_opts[k].bit;
	}
	if (sp->s->ret == 0)
		sp->s->ret = IMAP_SEARCH_RET_ALL;
	return 0;
}

/* One end of a partial range: [-]nz-number, 32-bit. */
static bool parse_partial_end(const char *p, const char *end, int32_t *out)
{
	bool neg = p < end && *p == '-';
	int64_t v = 0;

	p += neg;
	if (p == end || *p == '0')
		return false;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
		if (v > INT32_MAX)
			return false;
	}
	*out = (int32_t)(neg ? -v : v);
	return true;
}

/* "lo:hi", both positive or both negative (RFC 5267 4.4, RFC 9394);
 * kept with |lo| <= |hi|. */
static int parse_partial(struct sp *sp, const struct imap_arg *arg)
{
	const char *colon;
	int32_t a, b;

	if (arg->type != IMAP_ARG_ATOM ||
	    (colon = memchr(arg->str, ':', arg->len)) == NULL ||
	    !parse_partial_end(arg->str, colon, &a) ||
	    !parse_partial_end(colon + 1, arg->str + arg->len, &b) ||
	    (a < 0) != (b < 0))
		return -1;
	if ((a > 0 && a > b) || (a < 0 && a < b)) {
		int32_t t = a;

		a = b;
		b = t;
	}
	sp->s->ret |= IMAP_SEARCH_RET_PARTIAL;
	sp->s->partial_lo = a;
	sp->s->partial_hi = b;
	return 0;
}

/* args[0..count) as the children of an AND (the program or a group). */
static int parse_group(struct sp *sp, const struct imap_arg *args, size_t count,
		       unsigned depth, struct imap_search_key *key)
{
	struct arg_cursor c = {args, count, 0};
	struct imap_search_key *children;
	size_t n = 0;

	if (depth > IMAP_MAX_SEARCH_DEPTH)
		return fail(sp, "Search keys nested too deeply");
	if (count == 0)
		return fail(sp, "Empty search key list");
	/* at most one key per argument; the unused tail is not counted */
	children = imap_arena_alloc(sp->s->arena, count * sizeof(*children));
	key->type = IMAP_SK_AND;
	key->cost = IMAP_SEARCH_COST_INDEX;
	/* linked before parsing, so that a failure frees what was parsed */
	key->children = children;
	while (c.i < c.count) {
		if (sp->s->key_count >= IMAP_MAX_SEARCH_KEYS)
			return fail(sp, "Too many search keys");
		sp->s->key_count++;
		key->child_count = n + 1;
		if (parse_key(sp, &c, depth, &children[n]) < 0)
			return -1;
		if (children[n].cost > key->cost)
			key->cost = children[n].cost;
		n++;
	}
	return 0;
}

static int parse_key(struct sp *sp, struct arg_cursor *c, unsigned depth,
		     struct imap_search_key *key)
{
	const struct imap_arg *arg = next_arg(sp, c);

	if (arg == NULL)
		return -1;
	if (arg->type == IMAP_ARG_LIST)
		return parse_group(sp, arg->list, arg->list_count, depth + 1,
				   key);
	if (arg->type != IMAP_ARG_ATOM)
		return fail(sp, "Invalid search key");
	if ((arg->str[0] >= '0' && arg->str[0] <= '9') || arg->str[0] == '*' ||
	    arg->str[0] == '$') {
		key->type = IMAP_SK_SEQSET;
		return parse_set(sp, arg, key);
	}
	return parse_word_key(sp, c, arg, depth, key);
}

static int parse_set(struct sp *sp, const struct imap_arg *arg,
		     struct imap_search_key *key)
{
	const char *error;

	if (arg->type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(arg->str, arg->len, &key->raw, &error) < 0)
		return fail(sp, "Invalid sequence set");
	if (key->raw.saved)
		sp->s->uses_saved = true;
	key->cost = IMAP_SEARCH_COST_INDEX;
	return 0;
}

static int parse_word_key(struct sp *sp, struct arg_cursor *c,
			  const struct imap_arg *word, unsigned depth,
			  struct imap_search_key *key)
{
	for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++) {
		if (imap_arg_is_atom(word, flag_keys[i].name)) {
			key->type = IMAP_SK_FLAGS;
			key->flags_set = flag_keys[i].set;
			key->flags_clear = flag_keys[i].clear;
			return 0;
		}
	}
	if (imap_arg_is_atom(word, "NOT") || imap_arg_is_atom(word, "OR")) {
		size_t n = imap_arg_is_atom(word, "OR") ? 2 : 1;

		if (depth + 1 > IMAP_MAX_SEARCH_DEPTH)
			return fail(sp, "Search keys nested too deeply");
		key->type = n == 2 ? IMAP_SK_OR : IMAP_SK_NOT;
		key->children = new_keys(sp, n);
		if (key->children == NULL)
			return -1;
		key->child_count = n;
		for (size_t i = 0; i < n; i++) {
			if (parse_key(sp, c, depth + 1, &key->children[i]) < 0)
				return -1;
			if (key->children[i].cost > key->cost)
				key->cost = key->children[i].cost;
		}
		return 0;
	}
	return parse_arg_key(sp, c, word, key);
}

/* Keys with arguments that are not keys. */
static int parse_arg_key(struct sp *sp, struct arg_cursor *c,
			 const struct imap_arg *word,
			 struct imap_search_key *key)
{
	const struct imap_arg *arg;

	for (size_t i = 0; i < sizeof(address_keys) / sizeof(address_keys[0]);
	     i++) {
		if (imap_arg_is_atom(word, address_keys[i].name)) {
			key->type = IMAP_SK_HEADER;
			key->cost = IMAP_SEARCH_COST_HEADER;
			key->field = address_keys[i].field;
			return parse_string(sp, c, &key->str);
		}
	}
	for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++) {
		const char *s;

		if (!imap_arg_is_atom(word, date_keys[i].name))
			continue;
		key->type = date_keys[i].type;
		key->cost = key->type >= IMAP_SK_SENTBEFORE
				? IMAP_SEARCH_COST_HEADER
				: IMAP_SEARCH_COST_INDEX;
		if (parse_string(sp, c, &s) < 0)
			return -1;
		if (imap_date_parse(s, strlen(s), &key->day) < 0)
			return fail(sp, "Invalid date");
		return 0;
	}
	if (imap_arg_is_atom(word, "HEADER")) {
		key->type = IMAP_SK_HEADER;
		key->cost = IMAP_SEARCH_COST_HEADER;
		if (parse_string(sp, c, &key->field) < 0)
			return -1;
		if (!valid_field_name(key->field))
			return fail(sp, "Invalid header field name");
		return parse_string(sp, c, &key->str);
	}
	if (imap_arg_is_atom(word, "BODY") || imap_arg_is_atom(word, "TEXT")) {
		key->type = imap_arg_is_atom(word, "BODY") ? IMAP_SK_BODY
							   : IMAP_SK_TEXT;
		key->cost = IMAP_SEARCH_COST_BODY;
		return parse_string(sp, c, &key->str);
	}
	if (imap_arg_is_atom(word, "KEYWORD") ||
	    imap_arg_is_atom(word, "UNKEYWORD")) {
		key->type = IMAP_SK_KEYWORD;
		key->negated = imap_arg_is_atom(word, "UNKEYWORD");
		if ((arg = next_arg(sp, c)) == NULL)
			return -1;
		if (!is_keyword_atom(arg))
			return fail(sp, "Invalid keyword");
		/* the command's arena goes before the search's */
		key->str = imap_arena_strndup(sp->s->arena, arg->str, arg->len);
		return 0;
	}
	if (imap_arg_is_atom(word, "LARGER") ||
	    imap_arg_is_atom(word, "SMALLER")) {
		key->type = imap_arg_is_atom(word, "LARGER") ? IMAP_SK_LARGER
							     : IMAP_SK_SMALLER;
		return parse_number(sp, c, &key->number);
	}
	if (imap_arg_is_atom(word, "UID")) {
		if ((arg = next_arg(sp, c)) == NULL ||
		    parse_set(sp, arg, key) < 0)
			return -1;
		key->type = IMAP_SK_UIDSET;
		return 0;
	}
	if (imap_arg_is_atom(word, "MODSEQ"))
		return parse_modseq(sp, c, key);
	return fail(sp, "Unknown search key");
}

/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer (RFC 7162
 * 3.1.5); the entry is accepted and ignored, as per-flag modseqs are
 * not kept. */
static int parse_modseq(struct sp *sp, struct arg_cursor *c,
			struct imap_search_key *key)
{
	key->type = IMAP_SK_MODSEQ;
	sp->s->uses_modseq = true;
	if (c->i < c->count && c->args[c->i].type == IMAP_ARG_QUOTED) {
		const struct imap_arg *type;

		c->i++;
		if ((type = next_arg(sp, c)) == NULL)
			return -1;
		if (!imap_arg_is_atom(type, "priv") &&
		    !imap_arg_is_atom(type, "shared") &&
		    !imap_arg_is_atom(type, "all"))
			return fail(sp, "Invalid MODSEQ entry type");
	}
	return parse_number(sp, c, &key->number);
}

static int parse_string(struct sp *sp, struct arg_cursor *c, const char **s_r)
{
	const struct imap_arg *arg = next_arg(sp, c);

	if (arg == NULL)
		return -1;
	/* NIL is the string "NIL" here */
	*s_r = arg->type == IMAP_ARG_NIL ? arg->str : imap_arg_astring(arg);
	if (*s_r == NULL)
		return fail(sp, "Invalid search string");
	/* the command's arena goes before the search's */
	*s_r = imap_arena_strndup(sp->s->arena, *s_r, strlen(*s_r));
	return 0;
}

/* number64 (RFC 9051 9): decimal up to 2^63 - 1. */
static int parse_number(struct sp *sp, struct arg_cursor *c, uint64_t *v_r)
{
	const struct imap_arg *arg = next_arg(sp, c);
	uint64_t v = 0;

	if (arg == NULL)
		return -1;
	if (arg->type != IMAP_ARG_ATOM)
		return fail(sp, "Invalid number");
	for (size_t i = 0; i < arg->len; i++) {
		unsigned d = (unsigned)(arg->str[i] - '0');

		if (arg->str[i] < '0' || arg->str[i] > '9' ||
		    v > ((uint64_t)INT64_MAX - d) / 10)
			return fail(sp, "Invalid number");
		v = v * 10 + d;
	}
	*v_r = v;
	return 0;
}

/* flag-keyword = atom: ATOM-CHARs only. */
static bool is_keyword_atom(const struct imap_arg *arg)
{
	if (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_NIL)
		return false;
	for (size_t i = 0; i < arg->len; i++) {
		unsigned char ch = (unsigned char)arg->str[i];

		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]", ch))
			return false;
	}
	return arg->len > 0 && arg->len <= MAIL_MAX_KEYWORD_LEN;
}

/* RFC 5322 field-name: printable US-ASCII except ':'. */
static bool valid_field_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s <= 0x20 || *s >= 0x7f || *s == ':')
			return false;
	}
	return true;
}

static void free_sets(struct imap_search_key *key)
{
	imap_seqset_free(&key->raw);
	imap_seqset_free(&key->set);
	for (size_t i = 0; i < key->child_count; i++)
		free_sets(&key->children[i]);
}

void imap_search_free(struct imap_search *search)
{
	if (search->root != NULL)
		free_sets(search->root);
	imap_arena_free(&search->arena);
	memset(search, 0, sizeof(*search));
}

static void resolve_key(struct imap_search_key *key, uint32_t max_seq,
			uint32_t max_uid, const struct imap_seqset *saved)
{
	for (size_t i = 0; i < key->child_count; i++)
		resolve_key(&key->children[i], max_seq, max_uid, saved);
	if (key->type != IMAP_SK_SEQSET && key->type != IMAP_SK_UIDSET)
		return;
	key->set.count = 0;
	if (key->raw.saved) {
		/* "$" and "UID $" both name the saved UIDs */
		key->type = IMAP_SK_UIDSET;
		for (size_t i = 0; saved != NULL && i < saved->count; i++)
			imap_seqset_add(&key->set, saved->ranges[i].lo,
					saved->ranges[i].hi);
		imap_seqset_normalize(&key->set);
		return;
	}
	/* from the parsed set each time: '*' follows the mailbox */
	for (size_t i = 0; i < key->raw.count; i++)
		imap_seqset_add(&key->set, key->raw.ranges[i].lo,
				key->raw.ranges[i].hi);
	/* Out-of-range numbers match nothing: not an error in SEARCH. */
	imap_seqset_resolve(&key->set,
			    key->type == IMAP_SK_UIDSET ? max_uid : max_seq,
			    key->type == IMAP_SK_UIDSET);
}

void imap_search_resolve(struct imap_search *search, uint32_t max_seq,
			 uint32_t max_uid, const struct imap_seqset *saved_uids)
{
	if (search->root == NULL)
		return;
	resolve_key(search->root, max_seq, max_uid, saved_uids);
	search->resolved = true;
}

enum imap_search_cost imap_search_cost(const struct imap_search *search)
{
	return search->root != NULL ? search->root->cost
				    : IMAP_SEARCH_COST_INDEX;
}

bool imap_search_match(const struct imap_search *search,
		       const struct imap_search_ops *ops, void *ctx)
{
	if (!search->resolved || search->root == NULL)
		return false;
	return match_key(search->root, ops, ctx);
}

/*
 * AND and OR look at their children cheapest first, one cost level at a
 * time, and stop as soon as the answer is known: a flag key that already
 * decides spares reading the header or the body.
 */
static bool match_key(const struct imap_search_key *key,
		      const struct imap_search_ops *ops, void *ctx)
{
	switch (key->type) {
	case IMAP_SK_NOT:
		return !match_key(&key->children[0], ops, ctx);
	case IMAP_SK_AND:
	case IMAP_SK_OR: {
		bool is_or = key->type == IMAP_SK_OR;

		for (unsigned cost = IMAP_SEARCH_COST_INDEX;
		     cost <= IMAP_SEARCH_COST_BODY; cost++) {
			for (size_t i = 0; i < key->child_count; i++) {
				const struct imap_search_key *k =
				    &key->children[i];

				if (k->cost != cost)
					continue;
				if (match_key(k, ops, ctx) == is_or)
					return is_or;
			}
		}
		return !is_or;
	}
	default:
		return match_leaf(key, ops, ctx);
	}
}

/* BEFORE/ON/SINCE on the day t falls on in zone. */
static bool match_day(const struct imap_search_key *key, time_t t, int zone)
{
	int64_t day = imap_day_of(t, zone);

	switch (key->type) {
	case IMAP_SK_BEFORE:
	case IMAP_SK_SENTBEFORE:
		return day < key->day;
	case IMAP_SK_ON:
	case IMAP_SK_SENTON:
		return day == key->day;
	default:
		return day >= key->day;
	}
}

static bool match_leaf(const struct imap_search_key *key,
		       const struct imap_search_ops *ops, void *ctx)
{
	uint32_t flags;
	time_t t;

	switch (key->type) {
	case IMAP_SK_FLAGS:
		if (key->flags_set == 0 && key->flags_clear == 0)
			return true;
		flags = ops->flags(ctx);
		return (flags & key->flags_set) == key->flags_set &&
		       (flags & key->flags_clear) == 0;
	case IMAP_SK_KEYWORD:
		return ops->keyword(ctx, key->str) != key->negated;
	case IMAP_SK_SEQSET:
		return key->set.resolved &&
		       imap_seqset_contains(&key->set, ops->seq(ctx));
	case IMAP_SK_UIDSET:
		return key->set.resolved &&
		       imap_seqset_contains(&key->set, ops->uid(ctx));
	case IMAP_SK_LARGER:
		return ops->size(ctx) > key->number;
	case IMAP_SK_SMALLER:
		return ops->size(ctx) < key->number;
	case IMAP_SK_MODSEQ:
		return ops->modseq != NULL && ops->modseq(ctx) >= key->number;
	case IMAP_SK_BEFORE:
	case IMAP_SK_ON:
	case IMAP_SK_SINCE:
		return match_day(key, ops->internaldate(ctx), ops->zone);
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
	case IMAP_SK_SENTSINCE:
		t = ops->sent_date(ctx);
		return t != (time_t)-1 && match_day(key, t, ops->zone);
	case IMAP_SK_HEADER:
		return ops->header_contains(ctx, key->field, key->str);
	case IMAP_SK_BODY:
	case IMAP_SK_TEXT:
		return ops->body_contains(ctx, key->str,
					  key->type == IMAP_SK_TEXT);
	default:
		return false;
	}
}

int imap_search_write_esearch(const char *tag, bool uid, unsigned ret,
			      const uint32_t *results, size_t count,
			      struct buf *out)
{
	int r = 0;

	if (ret == IMAP_SEARCH_RET_SAVE)
		return 0;
	r |=
	    buf_printf(out, "* ESEARCH (TAG \"%s\")%s", tag, uid ? " UID" : "");
	if (count > 0 && (ret & IMAP_SEARCH_RET_MIN))
		r |= buf_printf(out, " MIN %u", results[0]);
	if (count > 0 && (ret & IMAP_SEARCH_RET_MAX))
		r |= buf_printf(out, " MAX %u", results[count - 1]);
	if (count > 0 && (ret & IMAP_SEARCH_RET_ALL)) {
		r |= buf_append_str(out, " ALL ");
		r |= imap_seqset_format_list(results, count, out);
	}
	if (ret & IMAP_SEARCH_RET_COUNT)
		r |= buf_printf(out, " COUNT %zu", count);
	return r < 0 ? -1 : 0;
}

int imap_search_write_partial(const struct imap_search *search,
			      const uint32_t *results, size_t count,
			      struct buf *out)
{
	int64_t lo = search->partial_lo, hi = search->partial_hi;
	int r;

	r = buf_printf(out, " PARTIAL (%d:%d ", (int)lo, (int)hi);
	/* Negative positions count from the end: -1 is the last. */
	if (lo < 0) {
		int64_t first = (int64_t)count + hi, last = (int64_t)count + lo;

		lo = first + 1;
		hi = last + 1;
	}
	if (lo < 1)
		lo = 1;
	if (hi > (int64_t)count)
		hi = (int64_t)count;
	if (lo > hi)
		r |= buf_append_str(out, "NIL");
	else
		r |= imap_seqset_format_list(results + lo - 1,
					     (size_t)(hi - lo + 1), out);
	r |= buf_append_str(out, ")");
	return r < 0 ? -1 : 0;
}
