/*
 * SEARCH and UID SEARCH (RFC 9051 6.4.4) with ESEARCH (RFC 4731) and
 * SEARCHRES (RFC 5182). The program is parsed, bounded and evaluated by
 * imap_search.h (pure, fuzzed); this file answers its questions about one
 * message from the view, reading the message's text and structure only
 * when a key needs them (mime.h decodes for the text keys).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "mime/mime.h"
#include "proto/imap/imap_mailbox.h"
#include "proto/imap/imap_search.h"
#include "proto/imap/imap_search_update.h"
#include "proto/imap/imap_sort.h"
#include "storage/msg_wire.h"

/* One message being matched. */
struct search_msg {
	struct imap_session *s;
	size_t seq0;
	const struct mail_msg *m;
	char *wire;
	size_t wire_len;
	struct mime_msg *msg;
	bool loaded;
};

/* The message's text and structure, for the text keys: loaded once. */
static bool search_load(struct search_msg *c)
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
	c->wire_len += msg_wire_finish(&w, c->wire + c->wire_len);
	c->msg = mime_parse(c->wire, c->wire_len);
	return c->msg != NULL;
}

static uint32_t op_flags(void *ctx)
{
	return ((struct search_msg *)ctx)->m->flags;
}

static bool op_keyword(void *ctx, const char *name)
{
	struct search_msg *c = ctx;
	int bit = mail_view_keyword_bit(c->s->view, name, false);

	return bit >= 0 && ((c->m->keywords >> bit) & 1);
}

static uint32_t op_seq(void *ctx)
{
	return (uint32_t)((struct search_msg *)ctx)->seq0 + 1;
}

static uint32_t op_uid(void *ctx)
{
	return ((struct search_msg *)ctx)->m->uid;
}

static uint64_t op_size(void *ctx)
{
	return ((struct search_msg *)ctx)->m->size;
}

static time_t op_internaldate(void *ctx)
{
	return ((struct search_msg *)ctx)->m->internaldate;
}

static uint64_t op_modseq(void *ctx)
{
	return ((struct search_msg *)ctx)->m->modseq;
}

static time_t op_sent_date(void *ctx)
{
	struct search_msg *c = ctx;

	return search_load(c) ? mime_sent_date(c->msg, c->wire) : (time_t)-1;
}

static bool op_header_contains(void *ctx, const char *field, const char *needle)
{
	struct search_msg *c = ctx;

	return search_load(c) &&
	       mime_search_header(c->msg, c->wire, field, needle);
}

static bool op_body_contains(void *ctx, const char *needle, bool with_headers)
{
	struct search_msg *c = ctx;

	return search_load(c) &&
	       mime_search_body(c->msg, c->wire, needle, with_headers);
}

static const struct imap_search_ops search_ops = {
    .flags = op_flags,
    .keyword = op_keyword,
    .seq = op_seq,
    .uid = op_uid,
    .size = op_size,
    .internaldate = op_internaldate,
    .modseq = op_modseq,
    .sent_date = op_sent_date,
    .header_contains = op_header_contains,
    .body_contains = op_body_contains,
    .zone = 0,
};

bool imap_search_cmd_match(struct imap_session *s,
			   const struct imap_search *search, size_t seq0)
{
	struct search_msg c;
	bool match;

	memset(&c, 0, sizeof(c));
	c.s = s;
	c.seq0 = seq0;
	c.m = mail_view_msg(s->view, seq0);
	match = imap_search_match(search, &search_ops, &c);
	mime_free(&c.msg);
	free(c.wire);
	return match;
}

/* RFC 5182 2.4: SAVE keeps the UIDs that MIN/MAX/ALL would return (MIN
 * or MAX alone: only those). */
static void search_save(struct imap_session *s, unsigned ret,
			const uint32_t *uids, size_t count)
{
	bool only_ends = (ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX)) &&
			 !(ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT));

	free(s->saved_uids);
	s->saved_uids = xcalloc(count + 1, sizeof(*s->saved_uids));
	s->saved_count = 0;
	for (size_t i = 0; i < count; i++) {
		if (only_ends &&
		    !((i == 0 && (ret & IMAP_SEARCH_RET_MIN)) ||
		      (i == count - 1 && (ret & IMAP_SEARCH_RET_MAX))))
			continue;
		s->saved_uids[s->saved_count++] = uids[i];
	}
}

/*
 * RFC 7162 3.1.5: a search with MODSEQ answers the highest modseq of the
 * messages it returns: of all of them, or of MIN and/or MAX when only
 * those are returned (RFC 4731 3.2). 0: none to tell.
 */
static uint64_t search_modseq(const struct imap_search *search,
			      const uint64_t *mods, size_t count)
{
	unsigned ret = search->esearch ? search->ret : IMAP_SEARCH_RET_ALL;
	uint64_t high = 0;

	if (!search->uses_modseq || count == 0)
		return 0;
	if (ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT |
		   IMAP_SEARCH_RET_PARTIAL)) {
		for (size_t i = 0; i < count; i++)
			high = mods[i] > high ? mods[i] : high;
		return high;
	}
	if (ret & IMAP_SEARCH_RET_MIN)
		high = mods[0];
	if ((ret & IMAP_SEARCH_RET_MAX) && mods[count - 1] > high)
		high = mods[count - 1];
	return high;
}

static void search_reply(struct imap_session *s, bool uid,
			 const struct imap_search *search, const uint32_t *hits,
			 size_t count, uint64_t modseq)
{
	struct buf *b;

	if (!search->esearch && !s->rev2) {
		conn_printf(s->conn, "* SEARCH");
		for (size_t i = 0; i < count; i++)
			conn_printf(s->conn, " %u", hits[i]);
		if (modseq > 0)
			conn_printf(s->conn, " (MODSEQ %llu)",
				    (unsigned long long)modseq);
		conn_write(s->conn, "\r\n", 2);
		return;
	}
	b = buf_new(64 * 1024 * 1024);
	if (imap_search_write_esearch(s->tag, uid,
				      search->esearch ? search->ret
						      : IMAP_SEARCH_RET_ALL,
				      hits, count, b) == 0 &&
	    (!(search->ret & IMAP_SEARCH_RET_PARTIAL) ||
	     imap_search_write_partial(search, hits, count, b) == 0) &&
	    (modseq == 0 ||
	     buf_printf(b, " MODSEQ %llu", (unsigned long long)modseq) == 0) &&
	    buf_len(b) > 0) {
		conn_write(s->conn, buf_data(b), buf_len(b));
		conn_write(s->conn, "\r\n", 2);
	}
	buf_free(&b);
}

void imap_cmd_search(struct imap_session *s, const struct imap_args *a)
{
	struct imap_search search;
	struct imap_seqset saved;
	struct search_msg c;
	const char *error;
	uint32_t *hits, *uids;
	uint64_t *mods;
	size_t count = 0, total = mail_view_count(s->view);
	char cause[160];
	bool noupdate = false;
	int r;

	memset(&search, 0, sizeof(search));
	r = imap_search_parse(a->v, a->n, &search, &error);
	if (r == IMAP_SEARCH_BADCHARSET) {
		imap_refuse(s, "NO", "BADCHARSET (UTF-8 US-ASCII)",
			    "Unsupported charset.",
			    "SEARCH with an unsupported charset");
		return;
	}
	if (r != IMAP_SEARCH_OK) {
		snprintf(cause, sizeof(cause), "SEARCH: %s", error);
		imap_refuse(s, "BAD", NULL, error, cause);
		return;
	}
	memset(&saved, 0, sizeof(saved));
	for (size_t i = 0; i < s->saved_count; i++)
		imap_seqset_add(&saved, s->saved_uids[i], s->saved_uids[i]);
	imap_seqset_normalize(&saved);
	imap_search_resolve(&search, (uint32_t)total, imap_mailbox_uid_star(s),
			    &saved);
	imap_seqset_free(&saved);
	hits = xcalloc(total + 1, sizeof(*hits));
	uids = xcalloc(total + 1, sizeof(*uids));
	mods = xcalloc(total + 1, sizeof(*mods));
	if (search.uses_modseq)
		imap_condstore_enable(s);
	for (size_t i = 0; i < total; i++) {
		memset(&c, 0, sizeof(c));
		c.s = s;
		c.seq0 = i;
		c.m = mail_view_msg(s->view, i);
		if (!c.m->expunged &&
		    imap_search_match(&search, &search_ops, &c)) {
			uids[count] = c.m->uid;
			mods[count] = c.m->modseq;
			hits[count++] = a->uid ? c.m->uid : (uint32_t)i + 1;
		}
		mime_free(&c.msg);
		free(c.wire);
	}
	if (search.esearch && (search.ret & IMAP_SEARCH_RET_SAVE))
		search_save(s, search.ret, uids, count);
	search_reply(s, a->uid, &search, hits, count,
		     search_modseq(&search, mods, count));
	free(mods);
	if (search.esearch && (search.ret & IMAP_SEARCH_RET_UPDATE) &&
	    !imap_search_update_add(s, s->tag, a->uid, &search, uids, count))
		noupdate = true;
	imap_search_free(&search);
	free(hits);
	free(uids);
	if (noupdate) {
		/* RFC 5267 4.2: the result stands, without updates. */
		snprintf(cause, sizeof(cause), "NOUPDATE \"%s\"", s->tag);
		imap_reply_tagged(s, "OK", cause, "SEARCH completed.");
		return;
	}
	imap_reply_tagged(s, "OK", NULL, "SEARCH completed.");
}

/* SORT and THREAD (imap_sort.c) run the same program: the matching
 * messages' indexes, or false after a BAD. */
bool imap_search_collect(struct imap_session *s, const struct imap_arg *v,
			 size_t n, size_t **seq0s_r, size_t *count_r)
{
	struct imap_search search;
	struct imap_seqset saved;
	struct search_msg c;
	const char *error;
	size_t count = 0, total = mail_view_count(s->view);
	size_t *seq0s;
	char cause[160];

	memset(&search, 0, sizeof(search));
	/* the charset was SORT's or THREAD's own argument: what follows is
	 * keys only */
	if (n > 0 && (imap_arg_is_atom(&v[0], "RETURN") ||
		      imap_arg_is_atom(&v[0], "CHARSET"))) {
		imap_refuse(s, "BAD", NULL, "Invalid search program.",
			    "search program starting with RETURN/CHARSET");
		return false;
	}
	if (imap_search_parse(v, n, &search, &error) != IMAP_SEARCH_OK) {
		snprintf(cause, sizeof(cause), "search program: %s", error);
		imap_refuse(s, "BAD", NULL, error, cause);
		return false;
	}
	memset(&saved, 0, sizeof(saved));
	for (size_t i = 0; i < s->saved_count; i++)
		imap_seqset_add(&saved, s->saved_uids[i], s->saved_uids[i]);
	imap_seqset_normalize(&saved);
	imap_search_resolve(&search, (uint32_t)total, imap_mailbox_uid_star(s),
			    &saved);
	imap_seqset_free(&saved);
	seq0s = xcalloc(total + 1, sizeof(*seq0s));
	for (size_t i = 0; i < total; i++) {
		memset(&c, 0, sizeof(c));
		c.s = s;
		c.seq0 = i;
		c.m = mail_view_msg(s->view, i);
		if (!c.m->expunged &&
		    imap_search_match(&search, &search_ops, &c))
			seq0s[count++] = i;
		mime_free(&c.msg);
		free(c.wire);
	}
	imap_search_free(&search);
	*seq0s_r = seq0s;
	*count_r = count;
	return true;
}
