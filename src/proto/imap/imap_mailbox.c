/*
 * The selected state (RFC 9051 6.3.2, 6.4): SELECT and EXAMINE, STATUS,
 * APPEND (streamed into the store, durable before OK), CHECK, CLOSE,
 * UNSELECT, EXPUNGE and UID EXPUNGE, COPY and MOVE, IDLE, and the
 * untagged EXISTS/EXPUNGE/FETCH updates that tell a client what other
 * sessions changed (RFC 9051 7.5: never an EXPUNGE during FETCH, STORE or
 * SEARCH by sequence number).
 */
#include "proto/imap/imap_mailbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "proto/imap/imap_append.h"
#include "proto/imap/imap_date.h"
#include "proto/imap/imap_folders.h"
#include "proto/imap/imap_search_update.h"
#include "proto/imap/imap_seqset.h"
#include "storage/folder.h"
#include "storage/mail_index.h"
#include "storage/mail_notify.h"

static void imap_sync_expunged(void *ctx, size_t seq0);
static void imap_sync_flags(void *ctx, size_t seq0);
static void imap_sync_exists(void *ctx, size_t count);
static void imap_notify_cb(void *ctx);
static void imap_mailbox_close(struct imap_session *s);
static void imap_idle_stop(struct imap_session *s);
static bool imap_mailbox_uids_void(struct imap_session *s);
static void imap_refuse_folder_open(struct imap_session *s,
				    enum folder_status fst, const char *command,
				    const char *error,
				    const char *missing_code);
static size_t imap_flags_add(char *out, size_t size, size_t n,
			     const char *flag);
static void imap_select(struct imap_session *s, const struct imap_args *a,
			bool readonly);
static bool imap_status_items(const struct imap_arg *items);
static void imap_status_format(const struct mail_folder_status *st,
			       const struct imap_arg *items, char *out,
			       size_t size);
static bool imap_select_params(struct imap_session *s,
			       const struct imap_arg *params);
static void imap_store_error(struct imap_session *s, enum mail_status st,
			     const char *error, const char *what);

/* What a CLOSE expunges is not announced (RFC 9051 6.4.1). */
static void imap_sync_ignore_seq(void *ctx, size_t n)
{
	(void)ctx;
	(void)n;
}

static const struct mail_sync_cb imap_quiet_cb = {
    .expunged = imap_sync_ignore_seq,
    .flags_changed = imap_sync_ignore_seq,
    .exists = imap_sync_ignore_seq,
};

static const struct mail_sync_cb imap_sync_cb = {
    .expunged = imap_sync_expunged,
    .flags_changed = imap_sync_flags,
    .exists = imap_sync_exists,
};

const struct mail_sync_cb *imap_mailbox_sync_cb(void)
{
	return &imap_sync_cb;
}

/* Untagged updates */

/* FLAGS and PERMANENTFLAGS of the selected folder, keywords included. */
static void imap_mailbox_write_flag_lists(struct imap_session *s)
{
	char flags[64 + MAIL_MAX_KEYWORDS * (MAIL_MAX_KEYWORD_LEN + 1)];
	size_t n, count = mail_view_keyword_count(s->view);

	n = (size_t)snprintf(flags, sizeof(flags),
			     "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t i = 0; i < count && n < sizeof(flags); i++)
		n += (size_t)snprintf(flags + n, sizeof(flags) - n, " %s",
				      mail_view_keyword(s->view, i));
	imap_reply_untagged(s, "FLAGS (%s)", flags);
	imap_reply_untagged(s, "OK [PERMANENTFLAGS (%s%s)] Flags permitted.",
			    s->readonly ? "" : flags,
			    s->readonly ? "" : " \\*");
	s->keywords_told = count;
}

void imap_mailbox_tell_keywords(struct imap_session *s)
{
	if (s->view != NULL &&
	    mail_view_keyword_count(s->view) > s->keywords_told)
		imap_mailbox_write_flag_lists(s);
}

static void imap_sync_expunged(void *ctx, size_t seq0)
{
	struct imap_session *s = ctx;

	imap_search_update_expunged(s, seq0);
	conn_printf(s->conn, "* %zu EXPUNGE\r\n", seq0 + 1);
}

static void imap_sync_flags(void *ctx, size_t seq0)
{
	struct imap_session *s = ctx;
	char flags[IMAP_FLAGS_SIZE];

	const struct mail_msg *m = mail_view_msg(s->view, seq0);

	imap_mailbox_tell_keywords(s);
	imap_mailbox_format_flags(s, m, flags, sizeof(flags));
	if (s->condstore)
		conn_printf(s->conn,
			    "* %zu FETCH (UID %u FLAGS (%s) MODSEQ (%llu))\r\n",
			    seq0 + 1, m->uid, flags,
			    (unsigned long long)m->modseq);
	else
		conn_printf(s->conn, "* %zu FETCH (UID %u FLAGS (%s))\r\n",
			    seq0 + 1, m->uid, flags);
}

static void imap_sync_exists(void *ctx, size_t count)
{
	struct imap_session *s = ctx;

	conn_printf(s->conn, "* %zu EXISTS\r\n", count);
	if (!s->rev2)
		conn_printf(s->conn, "* %zu RECENT\r\n",
			    mail_view_recent_count(s->view));
}

void imap_mailbox_sync(struct imap_session *s, bool allow_expunge)
{
	char error[256];

	if (s->view == NULL || imap_mailbox_uids_void(s))
		return;
	s->changed = false;
	if (mail_view_sync(s->view, allow_expunge, &imap_sync_cb, s, error,
			   sizeof(error)) != MAIL_OK)
		log_warn("session=%s user=%s: syncing %s: %s", conn_id(s->conn),
			 s->user, s->selected, error);
	if (imap_mailbox_uids_void(s))
		return;
	imap_search_update_flush(s);
}

/*
 * The selected folder's index was rebuilt under a new UIDVALIDITY (by
 * this view or another): nothing it holds may reach the client, whose
 * UIDs now name other messages. UIDVALIDITY never changes within a
 * session (RFC 9051 2.3.1.1), so the session ends.
 */
static bool imap_mailbox_uids_void(struct imap_session *s)
{
	if (!mail_view_uids_void(s->view))
		return false;
	if (!conn_is_closing(s->conn)) {
		imap_reply_untagged(s, "BYE [UNAVAILABLE] The mailbox's "
				       "UIDVALIDITY changed; select it again.");
		imap_session_log_refusal(s, "UIDVALIDITY of the selected "
					    "folder changed (index rebuilt)");
		imap_session_close(s, "UIDVALIDITY changed");
	}
	return true;
}

/*
 * A folder folder_open() refused. An I/O error (EMFILE: out of
 * descriptors) is [UNAVAILABLE], not "no such mailbox": the client would
 * offer to remove its copy or to create the folder. A missing folder gets
 * missing_code: NONEXISTENT, or TRYCREATE where the client creates the
 * folder and tries again (COPY, MOVE).
 */
static void imap_refuse_folder_open(struct imap_session *s,
				    enum folder_status fst, const char *command,
				    const char *error, const char *missing_code)
{
	char cause[400];

	snprintf(cause, sizeof(cause), "%s: %s", command, error);
	if (fst == FOLDER_TEMPFAIL)
		imap_refuse(s, "NO", "UNAVAILABLE",
			    "The mailbox cannot be opened right now; "
			    "try again later.",
			    cause);
	else
		imap_refuse(s, "NO", missing_code, "No such mailbox.", cause);
}

/* Something changed in the selected folder: an IDLE client hears it now
 * (RFC 2177), any other at its next command. */
static void imap_notify_cb(void *ctx)
{
	struct imap_session *s = ctx;

	s->changed = true;
	if (s->idling && !conn_is_closing(s->conn))
		imap_mailbox_sync(s, true);
}

void imap_condstore_enable(struct imap_session *s)
{
	if (s->condstore)
		return;
	s->condstore = true;
	if (s->view != NULL)
		imap_reply_untagged(
		    s, "OK [HIGHESTMODSEQ %llu] Highest",
		    (unsigned long long)mail_view_highest_modseq(s->view));
}

void imap_mailbox_format_flags(const struct imap_session *s,
			       const struct mail_msg *m, char *out, size_t size)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} sys[] = {
	    {MAIL_SEEN, "\\Seen"},	 {MAIL_ANSWERED, "\\Answered"},
	    {MAIL_FLAGGED, "\\Flagged"}, {MAIL_DELETED, "\\Deleted"},
	    {MAIL_DRAFT, "\\Draft"},
	};
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if (m->flags & sys[i].bit)
			n = imap_flags_add(out, size, n, sys[i].name);
	for (size_t i = 0; i < mail_view_keyword_count(s->view) && i < 64; i++)
		if ((m->keywords >> i) & 1)
			n = imap_flags_add(out, size, n,
					   mail_view_keyword(s->view, i));
	if ((m->flags & MAIL_RECENT) && !s->rev2)
		(void)imap_flags_add(out, size, n, "\\Recent");
}

/* Appends one flag at out + n (n: the length so far) and returns the new
 * length; once out is full nothing more is written. */
static size_t imap_flags_add(char *out, size_t size, size_t n, const char *flag)
{
	int w;

	if (n >= size)
		return n;
	w = snprintf(out + n, size - n, "%s%s", n ? " " : "", flag);
	return w < 0 ? n : n + (size_t)w;
}

bool imap_mailbox_parse_flags(struct imap_session *s, const struct imap_arg *v,
			      size_t n, uint32_t *flags_r, const char ***kw_r,
			      size_t *kw_count_r)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} sys[] = {
	    {"\\Seen", MAIL_SEEN},	 {"\\Answered", MAIL_ANSWERED},
	    {"\\Flagged", MAIL_FLAGGED}, {"\\Deleted", MAIL_DELETED},
	    {"\\Draft", MAIL_DRAFT},	 {"\\Recent", 0},
	};
	const char **kw = xcalloc(n + 1, sizeof(*kw));
	size_t kc = 0;

	*flags_r = 0;
	for (size_t i = 0; i < n; i++) {
		bool known = false;

		if (v[i].type != IMAP_ARG_ATOM)
			goto bad;
		for (size_t j = 0; j < sizeof(sys) / sizeof(sys[0]); j++) {
			if (strcasecmp(v[i].str, sys[j].name) == 0) {
				*flags_r |= sys[j].bit;
				known = true;
			}
		}
		if (known)
			continue;
		if (v[i].str[0] == '\\' || v[i].len > MAIL_MAX_KEYWORD_LEN ||
		    strpbrk(v[i].str, "(){%*\"\\]") != NULL)
			goto bad;
		kw[kc++] = v[i].str;
	}
	*kw_r = kw;
	*kw_count_r = kc;
	return true;
bad:
	free(kw);
	imap_refuse(s, "BAD", NULL, "Invalid flag.", "invalid flag");
	return false;
}

/* SELECT / EXAMINE */

static void imap_mailbox_close(struct imap_session *s)
{
	imap_search_update_free(s);
	mail_notify_free(&s->notify);
	mail_view_close(&s->view);
	if (s->folder_fd >= 0)
		close(s->folder_fd);
	s->folder_fd = -1;
	free(s->selected);
	s->selected = NULL;
	free(s->saved_uids);
	s->saved_uids = NULL;
	s->saved_count = 0;
	imap_idle_stop(s);
	s->changed = false;
	if (s->state == IMAP_STATE_SELECTED)
		imap_session_enter_state(s, IMAP_STATE_AUTH);
}

static void imap_store_error(struct imap_session *s, enum mail_status st,
			     const char *error, const char *what)
{
	char cause[400];

	snprintf(cause, sizeof(cause), "%s: %s", what, error);
	switch (st) {
	case MAIL_OK:
		return;
	case MAIL_NOT_FOUND:
		imap_refuse(s, "NO", "NONEXISTENT",
			    "No such mailbox or message.", cause);
		return;
	case MAIL_LIMIT:
		imap_refuse(s, "NO", "LIMIT",
			    "A limit of this server was "
			    "reached.",
			    cause);
		return;
	case MAIL_NOSPACE:
		imap_refuse(s, "NO", "OVERQUOTA", "Out of space.", cause);
		return;
	case MAIL_TEMPFAIL:
		/* An I/O error or a resource running out (EMFILE): not a
		 * bug, and a client may try again later (RFC 5530). */
		log_error("session=%s user=%s: %s", conn_id(s->conn), s->user,
			  cause);
		imap_refuse(s, "NO", "UNAVAILABLE",
			    "The mailbox cannot be used right now; the "
			    "administrator has been told.",
			    cause);
		return;
	}
}

/* SELECT parameters (RFC 4466): only CONDSTORE (RFC 7162 3.1.8). */
static bool imap_select_params(struct imap_session *s,
			       const struct imap_arg *params)
{
	if (params->type != IMAP_ARG_LIST) {
		imap_refuse(s, "BAD", NULL, "SELECT parameters are a list.",
			    "SELECT syntax");
		return false;
	}
	for (size_t i = 0; i < params->list_count; i++) {
		if (!imap_arg_is_atom(&params->list[i], "CONDSTORE")) {
			imap_refuse(s, "BAD", NULL, "Unknown SELECT parameter.",
				    "SELECT with an unknown parameter");
			return false;
		}
	}
	if (params->list_count > 0)
		s->condstore = true;
	return true;
}

static void imap_select(struct imap_session *s, const struct imap_args *a,
			bool readonly)
{
	char name[FOLDER_MAX_NAME * 4 + 8], error[256];
	enum folder_status fst;
	enum mail_status mst;
	size_t count, unseen = 0;
	int fd;

	if (s->view != NULL) {
		/* RFC 9051 6.3.2: the old mailbox is closed first, without
		 * expunging, and the client is told where that happens. */
		imap_mailbox_close(s);
		imap_reply_untagged(s, "OK [CLOSED] Previous mailbox closed.");
	}
	if (a->n < 1 || a->n > 2) {
		imap_refuse(s, "BAD", NULL, "SELECT takes a mailbox name.",
			    "SELECT syntax");
		return;
	}
	if (a->n == 2 && !imap_select_params(s, &a->v[1]))
		return;
	if (!imap_folder_name(s, &a->v[0], name, sizeof(name)))
		return;
	fst = folder_open(s->maildir_fd, name, &fd, error, sizeof(error));
	if (fst != FOLDER_OK) {
		imap_refuse_folder_open(s, fst, "SELECT", error, "NONEXISTENT");
		return;
	}
	mst = mail_view_open(fd, readonly, &s->view, error, sizeof(error));
	if (mst != MAIL_OK) {
		close(fd);
		imap_store_error(s, mst, error, "SELECT");
		return;
	}
	s->folder_fd = fd;
	s->readonly = readonly;
	s->selected = xstrdup(name);
	s->notify = mail_notify_new(s->env->base, fd, imap_notify_cb, s, error,
				    sizeof(error));
	if (s->notify == NULL)
		log_warn("session=%s user=%s: no change notification for %s: "
			 "%s",
			 conn_id(s->conn), s->user, name, error);
	imap_session_enter_state(s, IMAP_STATE_SELECTED);
	count = mail_view_count(s->view);
	s->keywords_told = 0;
	imap_mailbox_write_flag_lists(s);
	imap_reply_untagged(s, "%zu EXISTS", count);
	if (!s->rev2) {
		imap_reply_untagged(s, "%zu RECENT",
				    mail_view_recent_count(s->view));
		for (size_t i = 0; i < count; i++) {
			if (!(mail_view_msg(s->view, i)->flags & MAIL_SEEN)) {
				unseen = i + 1;
				break;
			}
		}
		if (unseen > 0)
			imap_reply_untagged(s, "OK [UNSEEN %zu] First unseen.",
					    unseen);
	}
	imap_reply_untagged(s, "OK [UIDVALIDITY %u] UIDs valid.",
			    mail_view_uidvalidity(s->view));
	imap_reply_untagged(s, "OK [UIDNEXT %u] Predicted next UID.",
			    mail_view_uidnext(s->view));
	if (s->condstore)
		imap_reply_untagged(
		    s, "OK [HIGHESTMODSEQ %llu] Highest",
		    (unsigned long long)mail_view_highest_modseq(s->view));
	if (s->rev2) {
		conn_printf(s->conn, "* LIST () \"/\" ");
		imap_folder_write_name(s, name);
		conn_write(s->conn, "\r\n", 2);
	}
	imap_reply_tagged(s, "OK", readonly ? "READ-ONLY" : "READ-WRITE",
			  "%s completed.", readonly ? "EXAMINE" : "SELECT");
}

void imap_cmd_select(struct imap_session *s, const struct imap_args *a)
{
	imap_select(s, a, false);
}

void imap_cmd_examine(struct imap_session *s, const struct imap_args *a)
{
	imap_select(s, a, true);
}

void imap_cmd_close(struct imap_session *s, const struct imap_args *a)
{
	char error[256];

	(void)a;
	/* RFC 9051 6.4.1: expunge silently, unless read-only. */
	if (!s->readonly &&
	    mail_view_expunge(s->view, NULL, 0, &imap_quiet_cb, NULL, error,
			      sizeof(error)) != MAIL_OK)
		log_warn("session=%s user=%s: CLOSE expunge: %s",
			 conn_id(s->conn), s->user, error);
	imap_mailbox_close(s);
	imap_reply_tagged(s, "OK", NULL, "CLOSE completed.");
}

void imap_cmd_unselect(struct imap_session *s, const struct imap_args *a)
{
	(void)a;
	imap_mailbox_close(s);
	imap_reply_tagged(s, "OK", NULL, "UNSELECT completed.");
}

void imap_cmd_check(struct imap_session *s, const struct imap_args *a)
{
	(void)a;
	/* Everything is durable when its command completes. */
	imap_reply_tagged(s, "OK", NULL, "CHECK completed.");
}

/* EXPUNGE and UID EXPUNGE set (RFC 4315) */
void imap_cmd_expunge(struct imap_session *s, const struct imap_args *a)
{
	struct imap_seqset set;
	uint32_t *uids = NULL;
	size_t uid_count = 0;
	const char *err;
	char error[256];
	enum mail_status st;

	if ((a->uid && a->n != 1) || (!a->uid && a->n != 0)) {
		imap_refuse(s, "BAD", NULL, "EXPUNGE syntax.",
			    "EXPUNGE syntax");
		return;
	}
	if (s->readonly) {
		imap_refuse(s, "NO", "READ-ONLY", "Mailbox is read-only.",
			    "EXPUNGE in a read-only mailbox");
		return;
	}
	if (a->uid) {
		if (a->v[0].type != IMAP_ARG_ATOM ||
		    imap_seqset_parse(a->v[0].str, a->v[0].len, &set, &err) <
			0) {
			imap_refuse(s, "BAD", NULL, "Invalid UID set.",
				    "UID EXPUNGE syntax");
			return;
		}
		/* "$" (RFC 5182) too: the saved SEARCH result. */
		if (!imap_mailbox_resolve_set(s, &set, true)) {
			imap_seqset_free(&set);
			return;
		}
		uids = xcalloc(mail_view_count(s->view) + 1, sizeof(*uids));
		for (size_t i = 0; i < mail_view_count(s->view); i++) {
			uint32_t uid = mail_view_msg(s->view, i)->uid;

			if (imap_seqset_contains(&set, uid))
				uids[uid_count++] = uid;
		}
		imap_seqset_free(&set);
		if (uid_count == 0) {
			free(uids);
			imap_reply_tagged(s, "OK", NULL, "EXPUNGE completed.");
			return;
		}
	}
	st = mail_view_expunge(s->view, uids, uid_count, &imap_sync_cb, s,
			       error, sizeof(error));
	free(uids);
	if (st != MAIL_OK) {
		imap_store_error(s, st, error, "EXPUNGE");
		return;
	}
	imap_reply_tagged(s, "OK", NULL, "EXPUNGE completed.");
}

/* STATUS */

static bool imap_status_items(const struct imap_arg *items)
{
	static const char *const known[] = {
	    "MESSAGES", "RECENT",  "UIDNEXT", "UIDVALIDITY",
	    "UNSEEN",	"DELETED", "SIZE",    "HIGHESTMODSEQ",
	};

	if (items->type != IMAP_ARG_LIST || items->list_count == 0)
		return false;
	for (size_t i = 0; i < items->list_count; i++) {
		bool ok = false;

		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			ok = ok || imap_arg_is_atom(&items->list[i], known[k]);
		if (!ok)
			return false;
	}
	return true;
}

/*
 * "MESSAGES 3 UIDNEXT 9" for the items asked, each item once however often
 * it is asked (RFC 9051 leaves repeats open; answering each once keeps the
 * reply within the few items there are).
 */
static void imap_status_format(const struct mail_folder_status *st,
			       const struct imap_arg *items, char *out,
			       size_t size)
{
	const struct {
		const char *name;
		unsigned long long value;
	} known[] = {
	    {"MESSAGES", st->messages},
	    {"RECENT", st->recent},
	    {"UIDNEXT", st->uidnext},
	    {"UIDVALIDITY", st->uidvalidity},
	    {"UNSEEN", st->unseen},
	    {"DELETED", st->deleted},
	    {"HIGHESTMODSEQ", (unsigned long long)st->highest_modseq},
	    {"SIZE", (unsigned long long)st->size},
	};
	bool told[sizeof(known) / sizeof(known[0])] = {false};
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < items->list_count; i++) {
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
			int w;

			if (told[k] ||
			    !imap_arg_is_atom(&items->list[i], known[k].name) ||
			    n >= size)
				continue;
			told[k] = true;
			w = snprintf(out + n, size - n, "%s%s %llu",
				     n ? " " : "", known[k].name,
				     known[k].value);
			n = w < 0 ? n : n + (size_t)w;
		}
	}
}

bool imap_status_untagged(struct imap_session *s, const char *name,
			  const struct imap_arg *items, bool quiet)
{
	struct mail_folder_status st;
	char error[256], out[512];
	enum folder_status fst;
	int fd;

	fst = folder_open(s->maildir_fd, name, &fd, error, sizeof(error));
	if (fst != FOLDER_OK) {
		if (!quiet)
			imap_refuse_folder_open(s, fst, "STATUS", error,
						"NONEXISTENT");
		return false;
	}
	memset(&st, 0, sizeof(st));
	if (mail_folder_status(fd, &st, error, sizeof(error)) != MAIL_OK) {
		close(fd);
		if (!quiet)
			imap_store_error(s, MAIL_TEMPFAIL, error, "STATUS");
		return false;
	}
	close(fd);
	imap_status_format(&st, items, out, sizeof(out));
	conn_printf(s->conn, "* STATUS ");
	imap_folder_write_name(s, name);
	conn_printf(s->conn, " (%s)\r\n", out);
	return true;
}

void imap_cmd_status(struct imap_session *s, const struct imap_args *a)
{
	char name[FOLDER_MAX_NAME * 4 + 8];

	if (a->n != 2 || !imap_status_items(&a->v[1])) {
		imap_refuse(s, "BAD", NULL, "STATUS takes a mailbox and items.",
			    "STATUS syntax");
		return;
	}
	if (!imap_folder_name(s, &a->v[0], name, sizeof(name)))
		return;
	if (imap_status_untagged(s, name, &a->v[1], false))
		imap_reply_tagged(s, "OK", NULL, "STATUS completed.");
}

bool imap_list_status_items_ok(const struct imap_arg *items)
{
	return imap_status_items(items);
}

/* IDLE (RFC 2177) */

/* Without a notification watch, an IDLE session looks twice a second:
 * still "within a second", at a cost only while it idles. */
static void imap_idle_poll(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	(void)fd;
	(void)what;
	if (s->idling && !conn_is_closing(s->conn))
		imap_mailbox_sync(s, true);
}

static void imap_idle_stop(struct imap_session *s)
{
	s->idling = false;
	if (s->idle_poll != NULL)
		event_free(s->idle_poll);
	s->idle_poll = NULL;
}

void imap_cmd_idle(struct imap_session *s, const struct imap_args *a)
{
	char error[256];

	(void)a;
	/* RFC 2177: IDLE without a selected mailbox only waits for DONE. */
	if (s->view == NULL) {
		s->idling = true;
		conn_printf(s->conn, "+ idling\r\n");
		return;
	}
	if (s->notify == NULL)
		s->notify =
		    mail_notify_new(s->env->base, s->folder_fd, imap_notify_cb,
				    s, error, sizeof(error));
	if (s->notify == NULL) {
		struct timeval half = {0, 500 * 1000};

		s->idle_poll =
		    event_new(s->env->base, -1, EV_PERSIST, imap_idle_poll, s);
		event_add(s->idle_poll, &half);
	}
	s->idling = true;
	conn_printf(s->conn, "+ idling\r\n");
	imap_mailbox_sync(s, true);
}

void imap_commands_idle_line(struct imap_session *s, const char *line,
			     size_t len)
{
	imap_idle_stop(s);
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0) {
		imap_reply_tagged(s, "OK", NULL, "IDLE terminated.");
	} else {
		imap_refuse(s, "BAD", NULL, "Expected DONE.",
			    "IDLE ended without DONE");
	}
	s->tag[0] = '\0';
}

/* COPY / MOVE (RFC 4315 COPYUID, RFC 6851) */

struct imap_expunge_list {
	size_t *seq0s;
	size_t count;
};

static void imap_hold_expunged(void *ctx, size_t seq0)
{
	struct imap_expunge_list *l = ctx;

	l->seq0s = xreallocarray(l->seq0s, l->count + 1, sizeof(*l->seq0s));
	l->seq0s[l->count++] = seq0;
}

static const struct mail_sync_cb imap_hold_cb = {
    .expunged = imap_hold_expunged,
    .flags_changed = imap_sync_ignore_seq,
    .exists = imap_sync_ignore_seq,
};

static void imap_copy(struct imap_session *s, const struct imap_args *a,
		      bool move)
{
	char name[FOLDER_MAX_NAME * 4 + 8], error[256];
	struct imap_seqset set;
	struct imap_seqset_iter it;
	enum folder_status fst;
	size_t *seq0s = NULL, count = 0, total = mail_view_count(s->view);
	uint32_t *src_uids = NULL, *dst_uids = NULL, uidvalidity = 0, n;
	enum mail_status st;
	const char *err;
	int fd;

	if (a->n != 2 || a->v[0].type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(a->v[0].str, a->v[0].len, &set, &err) < 0) {
		imap_refuse(s, "BAD", NULL, "COPY takes a set and a mailbox.",
			    "COPY syntax");
		return;
	}
	if (!imap_mailbox_resolve_set(s, &set, a->uid)) {
		imap_seqset_free(&set);
		return;
	}
	if (!imap_folder_name(s, &a->v[1], name, sizeof(name))) {
		imap_seqset_free(&set);
		return;
	}
	if (move && s->readonly) {
		imap_seqset_free(&set);
		imap_refuse(s, "NO", "READ-ONLY", "Mailbox is read-only.",
			    "MOVE from a read-only mailbox");
		return;
	}
	fst = folder_open(s->maildir_fd, name, &fd, error, sizeof(error));
	if (fst != FOLDER_OK) {
		imap_seqset_free(&set);
		imap_refuse_folder_open(s, fst, move ? "MOVE" : "COPY", error,
					"TRYCREATE");
		return;
	}
	seq0s = xcalloc(total + 1, sizeof(*seq0s));
	src_uids = xcalloc(total + 1, sizeof(*src_uids));
	dst_uids = xcalloc(total + 1, sizeof(*dst_uids));
	for (imap_seqset_iter_init(&it, &set);
	     imap_seqset_iter_next(&it, &n);) {
		size_t i = a->uid ? mail_view_find_uid(s->view, n) : n - 1;

		if (i >= total || mail_view_msg(s->view, i)->expunged)
			continue;
		seq0s[count] = i;
		src_uids[count++] = mail_view_msg(s->view, i)->uid;
	}
	imap_seqset_free(&set);
	if (count == 0) {
		close(fd);
		imap_reply_tagged(s, "OK", NULL, "%s completed.",
				  move ? "MOVE" : "COPY");
		goto out;
	}
	/* MOVE: the expunges are held back so that COPYUID comes first
	 * (RFC 6851 4.3). */
	struct imap_expunge_list held = {NULL, 0};
	st = mail_view_copy(s->view, seq0s, count, fd, move, &uidvalidity,
			    dst_uids, &imap_hold_cb, &held, error,
			    sizeof(error));
	if (move && st == MAIL_OK) {
		struct buf *b = buf_new(1024 * 1024);

		imap_seqset_format_list(src_uids, count, b);
		buf_append_str(b, " ");
		imap_seqset_format_list(dst_uids, count, b);
		imap_reply_untagged(s, "OK [COPYUID %u %s] Moved.", uidvalidity,
				    buf_data(b));
		buf_free(&b);
	}
	for (size_t k = 0; k < held.count; k++) {
		imap_search_update_expunged(s, held.seq0s[k]);
		conn_printf(s->conn, "* %zu EXPUNGE\r\n", held.seq0s[k] + 1);
	}
	free(held.seq0s);
	close(fd);
	if (st != MAIL_OK) {
		imap_store_error(s, st, error, move ? "MOVE" : "COPY");
		goto out;
	}
	if (move) {
		imap_reply_tagged(s, "OK", NULL, "MOVE completed.");
	} else {
		struct buf *b = buf_new(1024 * 1024);

		imap_seqset_format_list(src_uids, count, b);
		buf_append_str(b, " ");
		imap_seqset_format_list(dst_uids, count, b);
		imap_reply_tagged(s, "OK", NULL,
				  "[COPYUID %u %s] COPY completed.",
				  uidvalidity, buf_data(b));
		buf_free(&b);
	}
out:
	free(seq0s);
	free(src_uids);
	free(dst_uids);
}

void imap_cmd_copy(struct imap_session *s, const struct imap_args *a)
{
	imap_copy(s, a, false);
}

void imap_cmd_move(struct imap_session *s, const struct imap_args *a)
{
	imap_copy(s, a, true);
}

uint32_t imap_mailbox_uid_star(struct imap_session *s)
{
	size_t n = mail_view_count(s->view);

	return n > 0 ? mail_view_msg(s->view, n - 1)->uid
		     : mail_view_uidnext(s->view) - 1;
}

bool imap_mailbox_resolve_set(struct imap_session *s, struct imap_seqset *set,
			      bool uid)
{
	if (set->saved) {
		/* RFC 5182: "$" is the last SEARCH ... SAVE result, as
		 * UIDs. */
		imap_seqset_free(set);
		memset(set, 0, sizeof(*set));
		for (size_t i = 0; i < s->saved_count; i++) {
			uint32_t n = s->saved_uids[i];

			if (!uid) {
				size_t idx = mail_view_find_uid(s->view, n);

				if (idx == SIZE_MAX)
					continue;
				n = (uint32_t)idx + 1;
			}
			imap_seqset_add(set, n, n);
		}
		imap_seqset_normalize(set);
		return true;
	}
	if (uid) {
		imap_seqset_resolve(set, imap_mailbox_uid_star(s), true);
		return true;
	}
	if (imap_seqset_resolve(set, (uint32_t)mail_view_count(s->view),
				false) != 0) {
		imap_refuse(s, "BAD", NULL, "Invalid message sequence number.",
			    "sequence number out of range");
		return false;
	}
	return true;
}

void imap_mailbox_append_abort(struct imap_session *s)
{
	imap_append_cancel(s);
}

void imap_mailbox_session_end(struct imap_session *s)
{
	imap_append_cancel(s);
	imap_mailbox_close(s);
}
