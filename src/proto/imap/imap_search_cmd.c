/*
 * SEARCH and UID SEARCH (RFC 9051 6.4.4) with ESEARCH (RFC 4731) and
 * SEARCHRES (RFC 5182). The program is parsed into a tree once (at most
 * IMAP_MAX_SEARCH_KEYS keys), then run on every message of the view; a
 * message's text is read and its structure loaded only when a key needs
 * them (mime.h decodes for the text keys).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "mime/mime.h"
#include "proto/imap/imap_date.h"
#include "proto/imap/imap_mailbox.h"
#include "proto/imap/imap_sort.h"
#include "storage/msg_wire.h"

enum skey_type {
	SK_ALL,
	SK_FLAG,   /* flag bit set */
	SK_NOFLAG, /* flag bit clear */
	SK_NEW,	   /* \Recent and not \Seen */
	SK_OLD,	   /* not \Recent */
	SK_KEYWORD,
	SK_UNKEYWORD,
	SK_LARGER,
	SK_SMALLER,
	SK_BEFORE, /* internal date, by day */
	SK_ON,
	SK_SINCE,
	SK_SENTBEFORE,
	SK_SENTON,
	SK_SENTSINCE,
	SK_HEADER, /* field, needle */
	SK_BODY,
	SK_TEXT,
	SK_UIDSET,
	SK_SEQSET,
	SK_NOT,
	SK_OR,
	SK_AND,
};

struct skey {
	enum skey_type type;
	uint32_t flag;
	int keyword; /* bit, -1: a keyword no message has */
	uint64_t number;
	int64_t day;
	const char *field, *needle;
	struct imap_seqset set;
	struct skey *a, *b; /* NOT: a; OR: a, b */
	struct skey **kids; /* AND */
	size_t kid_count;
};

struct search_ctx {
	struct imap_session *s;
	const struct imap_arg *v;
	size_t n, pos;
	size_t keys;
	bool needs_text;
	const char *error;
	/* per message */
	size_t seq0;
	char *wire;
	size_t wire_len;
	struct mime_msg *msg;
	bool loaded;
};

static struct skey *search_parse_key(struct search_ctx *c);
static void search_free(struct skey *k);
static bool search_match(struct search_ctx *c, const struct skey *k);

static void search_free(struct skey *k)
{
	if (k == NULL)
		return;
	search_free(k->a);
	search_free(k->b);
	for (size_t i = 0; i < k->kid_count; i++)
		search_free(k->kids[i]);
	free(k->kids);
	imap_seqset_free(&k->set);
	free(k);
}

static const char *search_string(struct search_ctx *c)
{
	const char *str;

	if (c->pos >= c->n)
		return NULL;
	str = imap_arg_astring(&c->v[c->pos]);
	if (str != NULL)
		c->pos++;
	return str;
}

static bool search_date(struct search_ctx *c, int64_t *day_r)
{
	const char *d = search_string(c);

	return d != NULL && imap_date_parse(d, strlen(d), day_r) == 0;
}

/* A parenthesised list: its keys ANDed. */
static struct skey *search_parse_list(struct search_ctx *c,
				      const struct imap_arg *v, size_t n)
{
	struct search_ctx sub = *c;
	struct skey *k = xcalloc(1, sizeof(*k));

	k->type = SK_AND;
	sub.v = v;
	sub.n = n;
	sub.pos = 0;
	while (sub.pos < sub.n) {
		struct skey *kid = search_parse_key(&sub);

		if (kid == NULL) {
			c->error = sub.error;
			c->keys = sub.keys;
			search_free(k);
			return NULL;
		}
		k->kids =
		    xreallocarray(k->kids, k->kid_count + 1, sizeof(*k->kids));
		k->kids[k->kid_count++] = kid;
	}
	c->keys = sub.keys;
	c->needs_text = c->needs_text || sub.needs_text;
	if (k->kid_count == 0) {
		c->error = "Empty search list.";
		search_free(k);
		return NULL;
	}
	return k;
}

static struct skey *search_parse_key(struct search_ctx *c)
{
	static const struct {
		const char *name;
		enum skey_type type;
		uint32_t flag;
	} flags[] = {
	    {"ALL", SK_ALL, 0},
	    {"ANSWERED", SK_FLAG, MAIL_ANSWERED},
	    {"DELETED", SK_FLAG, MAIL_DELETED},
	    {"DRAFT", SK_FLAG, MAIL_DRAFT},
	    {"FLAGGED", SK_FLAG, MAIL_FLAGGED},
	    {"SEEN", SK_FLAG, MAIL_SEEN},
	    {"RECENT", SK_FLAG, MAIL_RECENT},
	    {"UNANSWERED", SK_NOFLAG, MAIL_ANSWERED},
	    {"UNDELETED", SK_NOFLAG, MAIL_DELETED},
	    {"UNDRAFT", SK_NOFLAG, MAIL_DRAFT},
	    {"UNFLAGGED", SK_NOFLAG, MAIL_FLAGGED},
	    {"UNSEEN", SK_NOFLAG, MAIL_SEEN},
	    {"NEW", SK_NEW, 0},
	    {"OLD", SK_OLD, 0},
	};
	static const struct {
		const char *name;
		enum skey_type type;
	} dates[] = {
	    {"BEFORE", SK_BEFORE}, {"ON", SK_ON},
	    {"SINCE", SK_SINCE},   {"SENTBEFORE", SK_SENTBEFORE},
	    {"SENTON", SK_SENTON}, {"SENTSINCE", SK_SENTSINCE},
	};
	static const char *const headers[] = {"BCC", "CC", "FROM", "SUBJECT",
					      "TO"};
	const struct imap_arg *arg;
	struct skey *k;
	const char *word;

	if (c->pos >= c->n || ++c->keys > IMAP_MAX_SEARCH_KEYS) {
		c->error = c->pos >= c->n ? "Missing search key."
					  : "Too many search keys.";
		return NULL;
	}
	arg = &c->v[c->pos++];
	if (arg->type == IMAP_ARG_LIST)
		return search_parse_list(c, arg->list, arg->list_count);
	if (arg->type != IMAP_ARG_ATOM) {
		c->error = "Invalid search key.";
		return NULL;
	}
	word = arg->str;
	k = xcalloc(1, sizeof(*k));
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (strcasecmp(word, flags[i].name) == 0) {
			k->type = flags[i].type;
			k->flag = flags[i].flag;
			return k;
		}
	}
	for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		if (strcasecmp(word, dates[i].name) == 0) {
			k->type = dates[i].type;
			if (!search_date(c, &k->day))
				goto bad;
			if (k->type >= SK_SENTBEFORE)
				c->needs_text = true;
			return k;
		}
	}
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		if (strcasecmp(word, headers[i]) == 0) {
			k->type = SK_HEADER;
			k->field = headers[i];
			if ((k->needle = search_string(c)) == NULL)
				goto bad;
			c->needs_text = true;
			return k;
		}
	}
	if (strcasecmp(word, "HEADER") == 0) {
		k->type = SK_HEADER;
		if ((k->field = search_string(c)) == NULL ||
		    (k->needle = search_string(c)) == NULL)
			goto bad;
		c->needs_text = true;
	} else if (strcasecmp(word, "BODY") == 0 ||
		   strcasecmp(word, "TEXT") == 0) {
		k->type = strcasecmp(word, "BODY") == 0 ? SK_BODY : SK_TEXT;
		if ((k->needle = search_string(c)) == NULL)
			goto bad;
		c->needs_text = true;
	} else if (strcasecmp(word, "KEYWORD") == 0 ||
		   strcasecmp(word, "UNKEYWORD") == 0) {
		const char *kw = search_string(c);

		k->type = strcasecmp(word, "KEYWORD") == 0 ? SK_KEYWORD
							   : SK_UNKEYWORD;
		if (kw == NULL)
			goto bad;
		k->keyword = mail_view_keyword_bit(c->s->view, kw, false);
	} else if (strcasecmp(word, "LARGER") == 0 ||
		   strcasecmp(word, "SMALLER") == 0) {
		const char *num = search_string(c);
		char *end;

		k->type =
		    strcasecmp(word, "LARGER") == 0 ? SK_LARGER : SK_SMALLER;
		if (num == NULL || *num < '0' || *num > '9')
			goto bad;
		k->number = strtoull(num, &end, 10);
		if (*end != '\0')
			goto bad;
	} else if (strcasecmp(word, "UID") == 0) {
		const char *set = search_string(c);
		const char *err;

		k->type = SK_UIDSET;
		if (set == NULL ||
		    imap_seqset_parse(set, strlen(set), &k->set, &err) < 0 ||
		    !imap_mailbox_resolve_set(c->s, &k->set, true))
			goto bad;
	} else if (strcasecmp(word, "NOT") == 0) {
		k->type = SK_NOT;
		if ((k->a = search_parse_key(c)) == NULL)
			goto fail;
	} else if (strcasecmp(word, "OR") == 0) {
		k->type = SK_OR;
		if ((k->a = search_parse_key(c)) == NULL ||
		    (k->b = search_parse_key(c)) == NULL)
			goto fail;
	} else if (imap_seqset_syntax_ok(word, strlen(word))) {
		const char *err;

		k->type = SK_SEQSET;
		if (imap_seqset_parse(word, strlen(word), &k->set, &err) < 0)
			goto bad;
		/* Numbers beyond the mailbox match nothing here. */
		if (k->set.saved)
			(void)imap_mailbox_resolve_set(c->s, &k->set, false);
		else
			(void)imap_seqset_resolve(
			    &k->set, (uint32_t)mail_view_count(c->s->view),
			    false);
	} else {
		c->error = "Unknown search key.";
		goto fail;
	}
	return k;
bad:
	c->error = "Invalid search key argument.";
fail:
	search_free(k);
	return NULL;
}

/* The message's text and structure, for the text keys: loaded once. */
static bool search_load(struct search_ctx *c)
{
	char error[256], in[65536];
	struct msg_wire w;
	struct stat st;
	ssize_t n;
	size_t cap;
	int fd;

	if (c->loaded)
		return c->msg != NULL;
	c->loaded = true;
	fd = mail_view_msg_open(c->s->view, c->seq0, error, sizeof(error));
	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > (uint64_t)1 << 31) {
		close(fd);
		return false;
	}
	cap = 2 * (size_t)st.st_size + 2 * sizeof(in) + 8;
	c->wire = xmalloc(cap);
	c->wire_len = 0;
	msg_wire_init(&w, false, -1);
	while ((n = read(fd, in, sizeof(in))) > 0 &&
	       c->wire_len + 2 * (size_t)n + 8 <= cap)
		c->wire_len +=
		    msg_wire_convert(&w, in, (size_t)n, c->wire + c->wire_len);
	close(fd);
	c->msg = mime_parse(c->wire, c->wire_len);
	return c->msg != NULL;
}

static bool search_match(struct search_ctx *c, const struct skey *k)
{
	const struct mail_msg *m = mail_view_msg(c->s->view, c->seq0);
	time_t sent;

	switch (k->type) {
	case SK_ALL:
		return true;
	case SK_FLAG:
		return (m->flags & k->flag) != 0;
	case SK_NOFLAG:
		return (m->flags & k->flag) == 0;
	case SK_NEW:
		return (m->flags & MAIL_RECENT) && !(m->flags & MAIL_SEEN);
	case SK_OLD:
		return !(m->flags & MAIL_RECENT);
	case SK_KEYWORD:
		return k->keyword >= 0 && ((m->keywords >> k->keyword) & 1);
	case SK_UNKEYWORD:
		return k->keyword < 0 || !((m->keywords >> k->keyword) & 1);
	case SK_LARGER:
		return m->size > k->number;
	case SK_SMALLER:
		return m->size < k->number;
	case SK_BEFORE:
		return imap_day_of(m->internaldate, 0) < k->day;
	case SK_ON:
		return imap_day_of(m->internaldate, 0) == k->day;
	case SK_SINCE:
		return imap_day_of(m->internaldate, 0) >= k->day;
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE:
		if (!search_load(c) ||
		    (sent = mime_sent_date(c->msg, c->wire)) == (time_t)-1)
			return false;
		if (k->type == SK_SENTBEFORE)
			return imap_day_of(sent, 0) < k->day;
		if (k->type == SK_SENTON)
			return imap_day_of(sent, 0) == k->day;
		return imap_day_of(sent, 0) >= k->day;
	case SK_HEADER:
		return search_load(c) &&
		       mime_search_header(c->msg, c->wire, k->field, k->needle);
	case SK_BODY:
	case SK_TEXT:
		return search_load(c) &&
		       mime_search_body(c->msg, c->wire, k->needle,
					k->type == SK_TEXT);
	case SK_UIDSET:
		return imap_seqset_contains(&k->set, m->uid);
	case SK_SEQSET:
		return imap_seqset_contains(&k->set, (uint32_t)c->seq0 + 1);
	case SK_NOT:
		return !search_match(c, k->a);
	case SK_OR:
		return search_match(c, k->a) || search_match(c, k->b);
	case SK_AND:
		for (size_t i = 0; i < k->kid_count; i++)
			if (!search_match(c, k->kids[i]))
				return false;
		return true;
	}
	return false;
}

/* RETURN (MIN MAX ALL COUNT SAVE), RFC 4731 / RFC 5182 */
struct search_return {
	bool esearch, min, max, all, count, save;
};

static bool search_parse_return(const struct imap_arg *l,
				struct search_return *r)
{
	r->esearch = true;
	for (size_t i = 0; i < l->list_count; i++) {
		const struct imap_arg *x = &l->list[i];

		if (imap_arg_is_atom(x, "MIN"))
			r->min = true;
		else if (imap_arg_is_atom(x, "MAX"))
			r->max = true;
		else if (imap_arg_is_atom(x, "ALL"))
			r->all = true;
		else if (imap_arg_is_atom(x, "COUNT"))
			r->count = true;
		else if (imap_arg_is_atom(x, "SAVE"))
			r->save = true;
		else
			return false;
	}
	/* RETURN () is RETURN (ALL); SAVE alone returns nothing. */
	if (!r->min && !r->max && !r->count && !r->save)
		r->all = true;
	return true;
}

static void search_reply(struct imap_session *s, const struct imap_args *a,
			 const struct search_return *r, const uint32_t *hits,
			 size_t count)
{
	if (!r->esearch) {
		conn_printf(s->conn, "* SEARCH");
		for (size_t i = 0; i < count; i++)
			conn_printf(s->conn, " %u", hits[i]);
		conn_write(s->conn, "\r\n", 2);
		return;
	}
	conn_printf(s->conn, "* ESEARCH (TAG \"%s\")%s", s->tag,
		    a->uid ? " UID" : "");
	if (count > 0 && r->min)
		conn_printf(s->conn, " MIN %u", hits[0]);
	if (count > 0 && r->max)
		conn_printf(s->conn, " MAX %u", hits[count - 1]);
	if (r->count)
		conn_printf(s->conn, " COUNT %zu", count);
	if (count > 0 && r->all) {
		struct buf *b = buf_new(64 * 1024 * 1024);

		imap_seqset_format_list(hits, count, b);
		conn_printf(s->conn, " ALL %s", buf_data(b));
		buf_free(&b);
	}
	conn_write(s->conn, "\r\n", 2);
}

void imap_cmd_search(struct imap_session *s, const struct imap_args *a)
{
	struct search_ctx c;
	struct search_return r;
	struct skey *prog;
	uint32_t *hits, *uids;
	size_t count = 0, total = mail_view_count(s->view);

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	r.esearch = s->rev2;
	r.all = true;
	c.s = s;
	c.v = a->v;
	c.n = a->n;
	if (c.pos + 1 < c.n && imap_arg_is_atom(&c.v[c.pos], "RETURN")) {
		memset(&r, 0, sizeof(r));
		if (c.v[c.pos + 1].type != IMAP_ARG_LIST ||
		    !search_parse_return(&c.v[c.pos + 1], &r)) {
			imap_refuse(s, "BAD", NULL, "Invalid RETURN options.",
				    "SEARCH RETURN syntax");
			return;
		}
		c.pos += 2;
	}
	if (c.pos + 1 < c.n && imap_arg_is_atom(&c.v[c.pos], "CHARSET")) {
		const char *cs = imap_arg_astring(&c.v[c.pos + 1]);

		if (cs == NULL || (strcasecmp(cs, "UTF-8") != 0 &&
				   strcasecmp(cs, "US-ASCII") != 0)) {
			imap_refuse(s, "NO", "BADCHARSET (UTF-8 US-ASCII)",
				    "Unsupported charset.",
				    "SEARCH with an unsupported charset");
			return;
		}
		c.pos += 2;
	}
	prog = search_parse_list(&c, c.v + c.pos, c.n - c.pos);
	if (prog == NULL) {
		char cause[128];

		snprintf(cause, sizeof(cause), "SEARCH: %s",
			 c.error ? c.error : "syntax");
		imap_refuse(s, "BAD", NULL,
			    c.error ? c.error : "Invalid SEARCH.", cause);
		return;
	}
	hits = xcalloc(total + 1, sizeof(*hits));
	uids = xcalloc(total + 1, sizeof(*uids));
	for (size_t i = 0; i < total; i++) {
		const struct mail_msg *m = mail_view_msg(s->view, i);

		if (m->expunged)
			continue;
		c.seq0 = i;
		c.loaded = false;
		if (search_match(&c, prog)) {
			uids[count] = m->uid;
			hits[count++] = a->uid ? m->uid : (uint32_t)i + 1;
		}
		mime_free(&c.msg);
		free(c.wire);
		c.wire = NULL;
	}
	search_free(prog);
	if (r.save) {
		/* RFC 5182: MIN or MAX alone saves only that one. */
		size_t from = 0, n = count;

		if ((r.min || r.max) && !r.all && !r.count && count > 0) {
			n = r.min && r.max ? 2 : 1;
			from = r.min ? 0 : count - 1;
		}
		free(s->saved_uids);
		s->saved_uids = xcalloc(n + 1, sizeof(*uids));
		s->saved_count = 0;
		for (size_t i = 0; i < n && from + i < count; i++)
			s->saved_uids[s->saved_count++] =
			    uids[r.min && r.max && i == 1 ? count - 1
							  : from + i];
	}
	if (!r.save || r.min || r.max || r.count || r.all)
		search_reply(s, a, &r, hits, count);
	free(hits);
	free(uids);
	imap_reply_tagged(s, "OK", NULL, "SEARCH completed.");
}

/* SORT and THREAD (imap_sort.c) run the same program: the matching
 * messages' indexes, or false after a BAD. */
bool imap_search_collect(struct imap_session *s, const struct imap_arg *v,
			 size_t n, size_t **seq0s_r, size_t *count_r)
{
	struct search_ctx c;
	struct skey *prog;
	size_t count = 0, total = mail_view_count(s->view);
	size_t *seq0s;

	memset(&c, 0, sizeof(c));
	c.s = s;
	prog = search_parse_list(&c, v, n);
	if (prog == NULL) {
		imap_refuse(s, "BAD", NULL,
			    c.error ? c.error : "Invalid search program.",
			    c.error ? c.error : "search program syntax");
		return false;
	}
	seq0s = xcalloc(total + 1, sizeof(*seq0s));
	for (size_t i = 0; i < total; i++) {
		if (mail_view_msg(s->view, i)->expunged)
			continue;
		c.seq0 = i;
		c.loaded = false;
		if (search_match(&c, prog))
			seq0s[count++] = i;
		mime_free(&c.msg);
		free(c.wire);
		c.wire = NULL;
	}
	search_free(prog);
	*seq0s_r = seq0s;
	*count_r = count;
	return true;
}
