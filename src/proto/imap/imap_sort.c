/*
 * SORT, UID SORT, THREAD and UID THREAD (imap_sort.h). The search program
 * is SEARCH's (imap_search_collect()); then each matching message's
 * header is read once for the command and its keys kept in an array
 * (imap_sortkeys.h), which qsort() orders with the message's sequence
 * number as the last key (RFC 5256 section 3) or which the THREAD
 * algorithms (imap_thread.h) take.
 */
#include "proto/imap/imap_sort.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xmalloc.h"
#include "proto/imap/imap_mailbox.h"
#include "proto/imap/imap_sortkeys.h"
#include "proto/imap/imap_thread.h"

enum sort_key {
	SORT_ARRIVAL,
	SORT_CC,
	SORT_DATE,
	SORT_FROM,
	SORT_SIZE,
	SORT_SUBJECT,
	SORT_TO,
	SORT_DISPLAYFROM,
	SORT_DISPLAYTO,
};

struct sort_program {
	enum sort_key keys[IMAP_MAX_SORT_KEYS];
	bool reverse[IMAP_MAX_SORT_KEYS];
	size_t count;
	bool needs_header;
};

/* RETURN options of ESORT (RFC 5267 section 3), PARTIAL (4.4) and
 * UPDATE (4.3), which is refused with NOUPDATE (4.3.1). */
struct sort_return {
	bool esearch, min, max, all, count, partial, update;
	uint32_t lo, hi; /* PARTIAL lo:hi, 1-based, lo <= hi */
};

struct sort_item {
	const struct sort_program *prog;
	size_t seq0;
	uint32_t id; /* what the reply names: seq or UID */
	time_t arrival;
	uint64_t size;
	struct imap_sortkeys k;
};

static bool sort_parse_program(const struct imap_arg *list,
			       struct sort_program *p);
static bool sort_parse_return(const struct imap_arg *list,
			      struct sort_return *r);
static bool sort_parse_partial(const char *range, struct sort_return *r);
static bool sort_charset_ok(struct imap_session *s, const struct imap_arg *arg,
			    const char *cmd);
static struct sort_item *sort_items(struct imap_session *s,
				    const struct imap_args *a,
				    const size_t *seq0s, size_t count,
				    bool keys, const struct sort_program *prog);
static void sort_items_free(struct sort_item *items, size_t count);
static int sort_cmp_num(uint64_t x, uint64_t y);
static int sort_cmp_time(time_t x, time_t y);
static int sort_item_cmp(const void *a, const void *b);
static void sort_reply(struct imap_session *s, const struct imap_args *a,
		       const struct sort_return *r, const uint32_t *ids,
		       size_t count);

static bool sort_parse_program(const struct imap_arg *list,
			       struct sort_program *p)
{
	static const struct {
		const char *name;
		enum sort_key key;
		bool header;
	} names[] = {
	    {"ARRIVAL", SORT_ARRIVAL, false},
	    {"CC", SORT_CC, true},
	    {"DATE", SORT_DATE, true},
	    {"FROM", SORT_FROM, true},
	    {"SIZE", SORT_SIZE, false},
	    {"SUBJECT", SORT_SUBJECT, true},
	    {"TO", SORT_TO, true},
	    {"DISPLAYFROM", SORT_DISPLAYFROM, true},
	    {"DISPLAYTO", SORT_DISPLAYTO, true},
	};
	bool reverse = false;

	memset(p, 0, sizeof(*p));
	if (list->type != IMAP_ARG_LIST || list->list_count == 0)
		return false;
	for (size_t i = 0; i < list->list_count; i++) {
		const struct imap_arg *x = &list->list[i];
		size_t j;

		if (x->type != IMAP_ARG_ATOM)
			return false;
		if (strcasecmp(x->str, "REVERSE") == 0) {
			if (reverse)
				return false;
			reverse = true;
			continue;
		}
		for (j = 0; j < sizeof(names) / sizeof(names[0]); j++)
			if (strcasecmp(x->str, names[j].name) == 0)
				break;
		if (j == sizeof(names) / sizeof(names[0]) ||
		    p->count == IMAP_MAX_SORT_KEYS)
			return false;
		p->keys[p->count] = names[j].key;
		p->reverse[p->count++] = reverse;
		p->needs_header = p->needs_header || names[j].header;
		reverse = false;
	}
	/* "REVERSE" must be followed by a key */
	return !reverse;
}

/* "lo:hi" of two numbers (either order), RFC 5267 section 4.4. */
static bool sort_parse_partial(const char *range, struct sort_return *r)
{
	unsigned long a, b;
	char *end;

	if (range[0] < '1' || range[0] > '9')
		return false;
	a = strtoul(range, &end, 10);
	if (*end != ':' || end[1] < '1' || end[1] > '9' || a > UINT32_MAX)
		return false;
	b = strtoul(end + 1, &end, 10);
	if (*end != '\0' || b > UINT32_MAX)
		return false;
	r->lo = (uint32_t)(a < b ? a : b);
	r->hi = (uint32_t)(a < b ? b : a);
	r->partial = true;
	return true;
}

static bool sort_parse_return(const struct imap_arg *list,
			      struct sort_return *r)
{
	memset(r, 0, sizeof(*r));
	r->esearch = true;
	if (list->type != IMAP_ARG_LIST)
		return false;
	for (size_t i = 0; i < list->list_count; i++) {
		const struct imap_arg *x = &list->list[i];

		if (imap_arg_is_atom(x, "MIN"))
			r->min = true;
		else if (imap_arg_is_atom(x, "MAX"))
			r->max = true;
		else if (imap_arg_is_atom(x, "ALL"))
			r->all = true;
		else if (imap_arg_is_atom(x, "COUNT"))
			r->count = true;
		else if (imap_arg_is_atom(x, "UPDATE"))
			r->update = true;
		else if (imap_arg_is_atom(x, "PARTIAL") &&
			 i + 1 < list->list_count && !r->partial &&
			 list->list[i + 1].type == IMAP_ARG_ATOM &&
			 sort_parse_partial(list->list[++i].str, r))
			continue;
		else
			return false;
	}
	/* RFC 5267 4.4: PARTIAL and ALL exclude each other; RETURN () is
	 * RETURN (ALL) (RFC 4731). */
	if (r->partial && r->all)
		return false;
	if (!r->min && !r->max && !r->count && !r->partial && !r->update)
		r->all = true;
	return true;
}

static bool sort_charset_ok(struct imap_session *s, const struct imap_arg *arg,
			    const char *cmd)
{
	const char *cs = imap_arg_astring(arg);
	char cause[64];

	if (cs != NULL &&
	    (strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "US-ASCII") == 0))
		return true;
	snprintf(cause, sizeof(cause), "%s with an unsupported charset", cmd);
	imap_refuse(s, "NO", "BADCHARSET (UTF-8 US-ASCII)",
		    "Unsupported charset.", cause);
	return false;
}

static struct sort_item *sort_items(struct imap_session *s,
				    const struct imap_args *a,
				    const size_t *seq0s, size_t count,
				    bool keys, const struct sort_program *prog)
{
	struct sort_item *items = xcalloc(count + 1, sizeof(*items));

	for (size_t i = 0; i < count; i++) {
		const struct mail_msg *m = mail_view_msg(s->view, seq0s[i]);

		items[i].prog = prog;
		items[i].seq0 = seq0s[i];
		items[i].id = a->uid ? m->uid : (uint32_t)seq0s[i] + 1;
		items[i].arrival = m->internaldate;
		items[i].size = m->size;
		if (keys)
			imap_sortkeys_load(s, seq0s[i], &items[i].k);
	}
	return items;
}

static void sort_items_free(struct sort_item *items, size_t count)
{
	for (size_t i = 0; i < count; i++)
		imap_sortkeys_free(&items[i].k);
	free(items);
}

static int sort_cmp_num(uint64_t x, uint64_t y)
{
	return x < y ? -1 : x > y;
}

static int sort_cmp_time(time_t x, time_t y)
{
	return x < y ? -1 : x > y;
}

static int sort_item_cmp(const void *a, const void *b)
{
	const struct sort_item *x = a, *y = b;
	const struct sort_program *p = x->prog;

	for (size_t i = 0; i < p->count; i++) {
		int c = 0;

		switch (p->keys[i]) {
		case SORT_ARRIVAL:
			c = sort_cmp_time(x->arrival, y->arrival);
			break;
		case SORT_DATE:
			c = sort_cmp_time(x->k.sent, y->k.sent);
			break;
		case SORT_SIZE:
			c = sort_cmp_num(x->size, y->size);
			break;
		case SORT_CC:
			c = strcmp(x->k.cc, y->k.cc);
			break;
		case SORT_FROM:
			c = strcmp(x->k.from, y->k.from);
			break;
		case SORT_TO:
			c = strcmp(x->k.to, y->k.to);
			break;
		case SORT_SUBJECT:
			c = strcmp(x->k.subject, y->k.subject);
			break;
		case SORT_DISPLAYFROM:
			c = strcmp(x->k.display_from, y->k.display_from);
			break;
		case SORT_DISPLAYTO:
			c = strcmp(x->k.display_to, y->k.display_to);
			break;
		}
		if (c != 0)
			return p->reverse[i] ? -c : c;
	}
	/* RFC 5256 section 3: ties go by sequence number */
	return sort_cmp_num(x->seq0, y->seq0);
}

static void sort_reply(struct imap_session *s, const struct imap_args *a,
		       const struct sort_return *r, const uint32_t *ids,
		       size_t count)
{
	struct buf *b;

	if (!r->esearch) {
		conn_printf(s->conn, "* SORT");
		for (size_t i = 0; i < count; i++)
			conn_printf(s->conn, " %u", ids[i]);
		conn_write(s->conn, "\r\n", 2);
		return;
	}
	/* RFC 5267 3.2: MIN and MAX are the first and last in sort order,
	 * ALL the sorted list. */
	conn_printf(s->conn, "* ESEARCH (TAG \"%s\")%s", s->tag,
		    a->uid ? " UID" : "");
	if (count > 0 && r->min)
		conn_printf(s->conn, " MIN %u", ids[0]);
	if (count > 0 && r->max)
		conn_printf(s->conn, " MAX %u", ids[count - 1]);
	if (r->count)
		conn_printf(s->conn, " COUNT %zu", count);
	b = buf_new(64 * 1024 * 1024);
	if (count > 0 && r->all) {
		imap_seqset_format_list(ids, count, b);
		conn_write(s->conn, " ALL ", 5);
		conn_write(s->conn, buf_data(b), buf_len(b));
	}
	if (r->partial) {
		size_t lo = r->lo - 1, hi = r->hi < count ? r->hi : count;

		buf_clear(b);
		if (lo < hi)
			imap_seqset_format_list(ids + lo, hi - lo, b);
		conn_printf(s->conn, " PARTIAL (%u:%u %s)", r->lo, r->hi,
			    lo < hi ? buf_data(b) : "NIL");
	}
	buf_free(&b);
	conn_write(s->conn, "\r\n", 2);
}

void imap_cmd_sort(struct imap_session *s, const struct imap_args *a)
{
	struct sort_program prog;
	struct sort_return r;
	struct sort_item *items;
	size_t pos = 0, count, *seq0s;
	uint32_t *ids;

	memset(&r, 0, sizeof(r));
	if (a->n > 0 && imap_arg_is_atom(&a->v[0], "RETURN")) {
		if (a->n < 2 || !sort_parse_return(&a->v[1], &r)) {
			imap_refuse(s, "BAD", NULL, "Invalid RETURN options.",
				    "SORT RETURN syntax");
			return;
		}
		pos = 2;
	}
	if (pos + 3 > a->n || !sort_parse_program(&a->v[pos], &prog)) {
		imap_refuse(s, "BAD", NULL,
			    "SORT needs (sort keys) charset search-keys.",
			    "SORT syntax");
		return;
	}
	if (!sort_charset_ok(s, &a->v[pos + 1], "SORT") ||
	    !imap_search_collect(s, a->v + pos + 2, a->n - pos - 2, &seq0s,
				 &count))
		return;
	items = sort_items(s, a, seq0s, count, prog.needs_header, &prog);
	free(seq0s);
	qsort(items, count, sizeof(*items), sort_item_cmp);
	ids = xcalloc(count + 1, sizeof(*ids));
	for (size_t i = 0; i < count; i++)
		ids[i] = items[i].id;
	sort_items_free(items, count);
	sort_reply(s, a, &r, ids, count);
	free(ids);
	if (r.update) {
		/* RFC 5267 4.3.1: a server may keep no sorted context; the
		 * command's other options are answered, and SEARCH ...
		 * RETURN (UPDATE) contexts are kept. */
		imap_reply_untagged(s,
				    "NO [NOUPDATE \"%s\"] Sorted results are "
				    "not kept up to date; SEARCH results are.",
				    s->tag);
		imap_session_log_refusal(s,
					 "UPDATE of a SORT result (NOUPDATE)");
	}
	imap_reply_tagged(s, "OK", NULL, "SORT completed.");
}

void imap_cmd_thread(struct imap_session *s, const struct imap_args *a)
{
	struct imap_thread_msg *msgs;
	struct sort_item *items;
	size_t count, *seq0s;
	struct buf *out;
	bool refs;
	int rc;

	if (a->n < 3 || a->v[0].type != IMAP_ARG_ATOM ||
	    (strcasecmp(a->v[0].str, "REFERENCES") != 0 &&
	     strcasecmp(a->v[0].str, "ORDEREDSUBJECT") != 0)) {
		imap_refuse(s, "BAD", NULL,
			    "THREAD needs ORDEREDSUBJECT or REFERENCES, a "
			    "charset and search keys.",
			    "THREAD syntax");
		return;
	}
	refs = strcasecmp(a->v[0].str, "REFERENCES") == 0;
	if (!sort_charset_ok(s, &a->v[1], "THREAD") ||
	    !imap_search_collect(s, a->v + 2, a->n - 2, &seq0s, &count))
		return;
	items = sort_items(s, a, seq0s, count, true, NULL);
	free(seq0s);
	msgs = xcalloc(count + 1, sizeof(*msgs));
	for (size_t i = 0; i < count; i++) {
		msgs[i].id = items[i].id;
		msgs[i].sent = items[i].k.sent;
		msgs[i].subject = items[i].k.subject;
		msgs[i].reply = items[i].k.reply;
		msgs[i].message_id = items[i].k.message_id;
		msgs[i].refs = (const char *const *)items[i].k.refs;
		msgs[i].ref_count = items[i].k.ref_count;
	}
	out = buf_new(64 * 1024 * 1024);
	rc = refs ? imap_thread_references(msgs, count, out)
		  : imap_thread_orderedsubject(msgs, count, out);
	free(msgs);
	sort_items_free(items, count);
	if (rc < 0) {
		buf_free(&out);
		imap_refuse(s, "NO", "LIMIT", "The thread list is too long.",
			    "THREAD response over its cap");
		return;
	}
	conn_printf(s->conn, "* THREAD%s", buf_len(out) > 0 ? " " : "");
	conn_write(s->conn, buf_data(out), buf_len(out));
	conn_write(s->conn, "\r\n", 2);
	buf_free(&out);
	imap_reply_tagged(s, "OK", NULL, "THREAD completed.");
}
