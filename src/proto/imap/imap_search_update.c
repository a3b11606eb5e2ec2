/*
 * Live searches (RFC 5267 CONTEXT=SEARCH, section 4): the result of a
 * SEARCH RETURN (UPDATE) is kept as UIDs, and the session re-evaluates
 * only the messages whose modseq moved past the last evaluation (new
 * messages get a new modseq too), so a search over bodies does not read
 * the whole folder again after each command. Expunges are told before
 * the EXPUNGE they belong to, by the sequence number the client still
 * knows: the session keeps the client's sequence -> UID map for that,
 * because the view has already dropped the message when it reports it.
 */
#include "proto/imap/imap_search_update.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "proto/imap/imap_mailbox.h"
#include "storage/mail_index.h"

struct live_search {
	char tag[IMAP_MAX_TAG + 1];
	bool uid; /* UID SEARCH: updates carry UIDs */
	struct imap_search search;
	uint32_t *uids; /* the result, ascending */
	size_t count, cap;
	uint64_t checked_modseq; /* messages up to it are evaluated */
};

struct imap_search_updates {
	struct live_search live[IMAP_MAX_SEARCH_UPDATES];
	size_t live_count;
	/* UIDs of the messages as the client numbers them (seq - 1). */
	uint32_t *known;
	size_t known_count, known_cap;
};

static void known_refresh(struct imap_session *s);
static ssize_t uids_find(const struct live_search *l, uint32_t uid);
static void uids_insert(struct live_search *l, uint32_t uid);
static void uids_remove(struct live_search *l, size_t i);
static void live_flush_one(struct imap_session *s, struct live_search *l,
			   uint64_t highest);
static void live_write(struct imap_session *s, const struct live_search *l,
		       const uint32_t *removes, size_t nremoves,
		       const uint32_t *adds, size_t nadds);
static void live_free(struct live_search *l);

bool imap_search_update_add(struct imap_session *s, const char *tag, bool uid,
			    struct imap_search *search, const uint32_t *uids,
			    size_t count)
{
	struct imap_search_updates *u;
	struct live_search *l;

	if (s->view == NULL)
		return false;
	if (s->updates == NULL)
		s->updates = xcalloc(1, sizeof(*s->updates));
	u = s->updates;
	if (u->live_count == IMAP_MAX_SEARCH_UPDATES)
		return false;
	for (size_t i = 0; i < u->live_count; i++)
		if (strcmp(u->live[i].tag, tag) == 0)
			return false;
	known_refresh(s);
	l = &u->live[u->live_count++];
	memset(l, 0, sizeof(*l));
	snprintf(l->tag, sizeof(l->tag), "%s", tag);
	l->uid = uid;
	l->search = *search;
	memset(search, 0, sizeof(*search));
	l->cap = count + 16;
	l->uids = xcalloc(l->cap, sizeof(*l->uids));
	memcpy(l->uids, uids, count * sizeof(*uids));
	l->count = count;
	l->checked_modseq = mail_view_highest_modseq(s->view);
	return true;
}

void imap_search_update_expunged(struct imap_session *s, size_t seq0)
{
	struct imap_search_updates *u = s->updates;
	uint32_t uid;

	if (u == NULL || seq0 >= u->known_count)
		return;
	uid = u->known[seq0];
	memmove(u->known + seq0, u->known + seq0 + 1,
		(u->known_count - seq0 - 1) * sizeof(*u->known));
	u->known_count--;
	for (size_t k = 0; k < u->live_count; k++) {
		struct live_search *l = &u->live[k];
		ssize_t i = uids_find(l, uid);
		uint32_t n = l->uid ? uid : (uint32_t)seq0 + 1;

		if (i < 0)
			continue;
		uids_remove(l, (size_t)i);
		live_write(s, l, &n, 1, NULL, 0);
	}
}

void imap_search_update_flush(struct imap_session *s)
{
	struct imap_search_updates *u = s->updates;
	uint64_t highest;

	if (u == NULL || s->view == NULL)
		return;
	known_refresh(s);
	highest = mail_view_highest_modseq(s->view);
	for (size_t k = 0; k < u->live_count; k++)
		if (u->live[k].checked_modseq < highest)
			live_flush_one(s, &u->live[k], highest);
}

void imap_search_update_free(struct imap_session *s)
{
	struct imap_search_updates *u = s->updates;

	if (u == NULL)
		return;
	for (size_t k = 0; k < u->live_count; k++)
		live_free(&u->live[k]);
	free(u->known);
	free(u);
	s->updates = NULL;
}

/* CANCELUPDATE "tag" ["tag" ...]: every tag must name a live search. */
void imap_cmd_cancelupdate(struct imap_session *s, const struct imap_args *a)
{
	struct imap_search_updates *u = s->updates;

	for (size_t i = 0; i < a->n; i++) {
		const char *tag = imap_arg_astring(&a->v[i]);
		size_t k = 0;

		while (u != NULL && tag != NULL && k < u->live_count &&
		       strcmp(u->live[k].tag, tag) != 0)
			k++;
		if (u == NULL || tag == NULL || k == u->live_count) {
			imap_refuse(s, "BAD", NULL, "Unknown search tag.",
				    "CANCELUPDATE of an unknown tag");
			return;
		}
		live_free(&u->live[k]);
		u->live[k] = u->live[--u->live_count];
	}
	if (a->n == 0) {
		imap_refuse(s, "BAD", NULL, "CANCELUPDATE needs a tag.",
			    "CANCELUPDATE without a tag");
		return;
	}
	imap_reply_tagged(s, "OK", NULL, "CANCELUPDATE completed.");
}

/* Messages the client learnt of since (new EXISTS) join the map; if the
 * view lost messages without telling us, the map is rebuilt. */
static void known_refresh(struct imap_session *s)
{
	struct imap_search_updates *u = s->updates;
	size_t n = mail_view_count(s->view);

	if (n < u->known_count)
		u->known_count = 0;
	if (n > u->known_cap) {
		u->known_cap = n + n / 2 + 16;
		u->known =
		    xreallocarray(u->known, u->known_cap, sizeof(*u->known));
	}
	for (size_t i = u->known_count; i < n; i++)
		u->known[i] = mail_view_msg(s->view, i)->uid;
	u->known_count = n;
}

static ssize_t uids_find(const struct live_search *l, uint32_t uid)
{
	size_t lo = 0, hi = l->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->uids[mid] == uid)
			return (ssize_t)mid;
		if (l->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void uids_insert(struct live_search *l, uint32_t uid)
{
	size_t i = l->count;

	if (l->count == l->cap) {
		l->cap = l->cap * 2 + 16;
		l->uids = xreallocarray(l->uids, l->cap, sizeof(*l->uids));
	}
	while (i > 0 && l->uids[i - 1] > uid)
		i--;
	memmove(l->uids + i + 1, l->uids + i,
		(l->count - i) * sizeof(*l->uids));
	l->uids[i] = uid;
	l->count++;
}

static void uids_remove(struct live_search *l, size_t i)
{
	memmove(l->uids + i, l->uids + i + 1,
		(l->count - i - 1) * sizeof(*l->uids));
	l->count--;
}

/* Re-evaluates the messages changed since l was last evaluated. */
static void live_flush_one(struct imap_session *s, struct live_search *l,
			   uint64_t highest)
{
	size_t n = mail_view_count(s->view), nadds = 0, nremoves = 0;
	uint32_t *adds, *removes;
	struct imap_seqset saved;

	memset(&saved, 0, sizeof(saved));
	for (size_t i = 0; i < s->saved_count; i++)
		imap_seqset_add(&saved, s->saved_uids[i], s->saved_uids[i]);
	imap_seqset_normalize(&saved);
	imap_search_resolve(&l->search, (uint32_t)n, imap_mailbox_uid_star(s),
			    &saved);
	imap_seqset_free(&saved);
	adds = xcalloc(n + 1, sizeof(*adds));
	removes = xcalloc(n + 1, sizeof(*removes));
	for (size_t i = 0; i < n; i++) {
		const struct mail_msg *m = mail_view_msg(s->view, i);
		uint32_t num = l->uid ? m->uid : (uint32_t)i + 1;
		ssize_t at;
		bool match;

		/* An expunge not yet told is told by its EXPUNGE. */
		if (m->expunged || m->modseq <= l->checked_modseq)
			continue;
		match = imap_search_cmd_match(s, &l->search, i);
		at = uids_find(l, m->uid);
		if (match && at < 0) {
			uids_insert(l, m->uid);
			adds[nadds++] = num;
		} else if (!match && at >= 0) {
			uids_remove(l, (size_t)at);
			removes[nremoves++] = num;
		}
	}
	l->checked_modseq = highest;
	if (nadds > 0 || nremoves > 0)
		live_write(s, l, removes, nremoves, adds, nadds);
	free(adds);
	free(removes);
}

static void live_write(struct imap_session *s, const struct live_search *l,
		       const uint32_t *removes, size_t nremoves,
		       const uint32_t *adds, size_t nadds)
{
	struct buf *b = buf_new(64 * 1024 * 1024);
	int r;

	r = buf_printf(b, "* ESEARCH (TAG \"%s\")%s", l->tag,
		       l->uid ? " UID" : "");
	if (nremoves > 0) {
		r |= buf_append_str(b, " REMOVEFROM (0 ");
		r |= imap_seqset_format_list(removes, nremoves, b);
		r |= buf_append_str(b, ")");
	}
	if (nadds > 0) {
		r |= buf_append_str(b, " ADDTO (0 ");
		r |= imap_seqset_format_list(adds, nadds, b);
		r |= buf_append_str(b, ")");
	}
	r |= buf_append_str(b, "\r\n");
	if (r == 0)
		conn_write(s->conn, buf_data(b), buf_len(b));
	else
		log_warn("session=%s user=%s: search update for %s too long",
			 conn_id(s->conn), s->user, l->tag);
	buf_free(&b);
}

static void live_free(struct live_search *l)
{
	imap_search_free(&l->search);
	free(l->uids);
	l->uids = NULL;
	l->count = 0;
}
