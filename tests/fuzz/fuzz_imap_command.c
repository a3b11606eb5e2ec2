/*
 * The IMAP command tokenizer on arbitrary wire bytes, and every
 * higher-level parser on what it returns. Besides memory errors it checks
 * what the session relies on: the tag and name are bounded and clean, the
 * tree stays within IMAP_MAX_ARGS and IMAP_MAX_LIST_DEPTH, and every
 * string is NUL-terminated at its length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "lib/postd_limits.h"
#include "lib/buf.h"
#include "proto/imap/imap_date.h"
#include "proto/imap/imap_fetch_parse.h"
#include "proto/imap/imap_mutf7.h"
#include "proto/imap/imap_parse.h"
#include "proto/imap/imap_search.h"
#include "proto/imap/imap_seqset.h"

static size_t fuzz_check_args(const struct imap_arg *args, size_t count,
			      size_t depth);
static void fuzz_seqset(const struct imap_arg *arg);
static void fuzz_mutf7(const char *s, size_t len);
static void fuzz_fetch_store(const struct imap_command *cmd);
static void fuzz_search(const struct imap_command *cmd);

/* SEARCH on all the arguments (fuzz_imap_search goes deeper). */
static void fuzz_search(const struct imap_command *cmd)
{
	struct imap_search s;
	const char *error = NULL;

	if (imap_search_parse(cmd->args, cmd->arg_count, &s, &error) !=
	    IMAP_SEARCH_OK) {
		FUZZ_CHECK(error != NULL && s.arena == NULL);
		return;
	}
	FUZZ_CHECK(s.key_count <= IMAP_MAX_SEARCH_KEYS);
	imap_search_resolve(&s, 3, 7, NULL);
	imap_search_free(&s);
}

/* FETCH and STORE on the arguments after the first (the set). */
static void fuzz_fetch_store(const struct imap_command *cmd)
{
	const struct imap_arg *args = cmd->args + 1;
	size_t n = cmd->arg_count - 1;
	struct imap_fetch f;
	struct imap_store st;
	const char *error = NULL;

	if (imap_fetch_parse(args, n, &f, &error) == 0) {
		imap_fetch_ensure_uid(&f);
		FUZZ_CHECK(f.count > 0);
		for (size_t i = 0; i < f.count; i++) {
			const struct imap_fetch_att *a = &f.atts[i];

			FUZZ_CHECK(a->label != NULL && a->label[0] != '\0');
			FUZZ_CHECK(a->section.depth <= 32);
			FUZZ_CHECK(!a->partial || a->count > 0);
			if (a->section.kind == MIME_SECTION_HEADER_FIELDS ||
			    a->section.kind == MIME_SECTION_HEADER_FIELDS_NOT)
				FUZZ_CHECK(a->section.field_count > 0 &&
					   strchr(a->section.fields[0], ':') ==
					       NULL);
			if (a->section.kind == MIME_SECTION_MIME)
				FUZZ_CHECK(a->section.depth > 0);
		}
		imap_fetch_free(&f);
	} else {
		FUZZ_CHECK(error != NULL && f.arena == NULL);
	}
	if (imap_store_parse(args, n, &st, &error) == 0) {
		FUZZ_CHECK((st.flags.system & MAIL_RECENT) == 0);
		for (size_t i = 0; i < st.flags.keyword_count; i++)
			FUZZ_CHECK(strlen(st.flags.keywords[i]) <=
				   MAIL_MAX_KEYWORD_LEN);
		imap_store_free(&st);
	}
}
static void fuzz_dates(const char *s, size_t len);
static void fuzz_write_back(const struct imap_arg *a);

/* What the server writes for a string reads back as the same bytes. */
static void fuzz_write_back(const struct imap_arg *a)
{
	struct buf *b = buf_new(a->len * 2 + 64);
	struct imap_command cmd;
	const char *error;

	if (memchr(a->str, '\0', a->len) != NULL) {
		buf_free(&b);
		return;
	}
	buf_append_str(b, "t X ");
	FUZZ_CHECK(imap_write_astring(b, a->str, a->len, a->len % 2) == 0);
	FUZZ_CHECK(imap_parse_command(buf_data(b), buf_len(b), &cmd, &error) ==
		   0);
	FUZZ_CHECK(cmd.arg_count == 1 && cmd.args[0].len == a->len &&
		   memcmp(cmd.args[0].str, a->str, a->len) == 0);
	imap_command_free(&cmd);
	buf_free(&b);
}

/* A name that decodes has exactly one spelling: encoding gives it back. */
static void fuzz_mutf7(const char *s, size_t len)
{
	struct buf *utf8 = buf_new(2 * len + 16);
	struct buf *back = buf_new(4 * len + 16);

	if (imap_mutf7_to_utf8(s, len, utf8) == IMAP_MUTF7_OK) {
		FUZZ_CHECK(imap_utf8_to_mutf7(buf_data(utf8), buf_len(utf8),
					      back) == IMAP_MUTF7_OK);
		FUZZ_CHECK(buf_len(back) == len &&
			   memcmp(buf_data(back), s, len) == 0);
	}
	buf_free(&utf8);
	buf_free(&back);
}

/* A parsed date-time formats and parses back to the same instant. */
static void fuzz_dates(const char *s, size_t len)
{
	char out[IMAP_DATETIME_SIZE];
	int64_t day;
	time_t t;
	time_t t2;
	int zone;
	int zone2;

	if (imap_date_parse(s, len, &day) == 0)
		FUZZ_CHECK(day >= imap_days_from_civil(0, 1, 1) &&
			   day <= imap_days_from_civil(9999, 12, 31));
	if (imap_datetime_parse(s, len, &t, &zone) < 0)
		return;
	if (imap_datetime_format(t, zone, out, sizeof(out)) < 0)
		return; /* a year beyond 0..9999 once shifted to UTC */
	FUZZ_CHECK(imap_datetime_parse(out, strlen(out), &t2, &zone2) == 0);
	FUZZ_CHECK(t2 == t && zone2 == zone);
}

/* An atom as a sequence set: resolved sets are sorted, merged, bounded. */
static void fuzz_seqset(const struct imap_arg *arg)
{
	struct imap_seqset set;
	const char *error = NULL;
	uint32_t max = arg->len > 0 ? (uint32_t)(unsigned char)arg->str[0] : 0;

	if (imap_seqset_parse(arg->str, arg->len, &set, &error) < 0) {
		FUZZ_CHECK(error != NULL && set.ranges == NULL);
		return;
	}
	FUZZ_CHECK(set.count <= IMAP_MAX_SEQ_RANGES);
	imap_seqset_resolve(&set, max, arg->len % 2 == 0);
	for (size_t i = 0; i < set.count; i++) {
		FUZZ_CHECK(set.ranges[i].lo >= 1);
		FUZZ_CHECK(set.ranges[i].lo <= set.ranges[i].hi);
		FUZZ_CHECK(set.ranges[i].hi <= max);
		if (i > 0)
			FUZZ_CHECK(set.ranges[i].lo > set.ranges[i - 1].hi + 1);
	}
	FUZZ_CHECK(imap_seqset_contains(&set, max) ==
		   (set.count > 0 && set.ranges[set.count - 1].hi == max));
	imap_seqset_free(&set);
}

/* Returns how many arguments the tree holds. */
static size_t fuzz_check_args(const struct imap_arg *args, size_t count,
			      size_t depth)
{
	size_t total = count;

	FUZZ_CHECK(depth <= IMAP_MAX_LIST_DEPTH);
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];

		if (a->type == IMAP_ARG_LIST) {
			total +=
			    fuzz_check_args(a->list, a->list_count, depth + 1);
			continue;
		}
		FUZZ_CHECK(a->str != NULL && a->str[a->len] == '\0');
		if (a->type == IMAP_ARG_ATOM)
			fuzz_seqset(a);
		fuzz_mutf7(a->str, a->len);
		fuzz_write_back(a);
		fuzz_dates(a->str, a->len);
		if (a->type != IMAP_ARG_LITERAL || !a->literal8)
			FUZZ_CHECK(strlen(a->str) == a->len);
		if (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL)
			FUZZ_CHECK(a->len > 0);
		FUZZ_CHECK(
		    (imap_arg_astring(a) != NULL) ==
		    (a->type != IMAP_ARG_NIL && strlen(a->str) == a->len));
	}
	return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly size bytes, so ASan sees any read past the end. */
	char *wire = malloc(size == 0 ? 1 : size);
	const char *eol;
	struct imap_literal_ann ann;
	struct imap_command cmd;
	const char *error = NULL;

	if (wire == NULL)
		abort();
	memcpy(wire, data, size);
	eol = memchr(wire, '\r', size);
	if (imap_line_literal(wire, eol ? (size_t)(eol - wire) : size, &ann) >
	    0)
		FUZZ_CHECK(ann.size <= (UINT64_C(1) << 63));

	if (imap_parse_command(wire, size, &cmd, &error) == 0) {
		FUZZ_CHECK(error == NULL);
		FUZZ_CHECK(cmd.tag[0] != '\0' && cmd.name[0] != '\0');
		FUZZ_CHECK(strlen(cmd.tag) <= IMAP_MAX_TAG);
		FUZZ_CHECK(strchr(cmd.tag, '+') == NULL);
		for (const char *n = cmd.name; *n != '\0'; n++)
			FUZZ_CHECK(!(*n >= 'a' && *n <= 'z'));
		FUZZ_CHECK(fuzz_check_args(cmd.args, cmd.arg_count, 0) <=
			   IMAP_MAX_ARGS);
		if (cmd.arg_count > 1)
			fuzz_fetch_store(&cmd);
		fuzz_search(&cmd);
	} else {
		FUZZ_CHECK(error != NULL && cmd.arena == NULL);
		FUZZ_CHECK(strlen(cmd.tag) <= IMAP_MAX_TAG);
	}
	imap_command_free(&cmd);
	free(wire);
	return 0;
}
