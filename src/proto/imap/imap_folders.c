/*
 * The IMAP commands on folder names (RFC 9051 6.3): CREATE (with
 * CREATE-SPECIAL-USE), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with
 * LIST-EXTENDED, SPECIAL-USE, CHILDREN and LIST-STATUS) and LSUB. Every
 * name from the network is decoded (modified UTF-7 unless UTF8=ACCEPT)
 * and validated by folder_name_valid() before it reaches folder.h, which
 * works only beneath the user's own Maildir root (INV-S2, INV-U1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "proto/imap/imap_commands.h"
#include "proto/imap/imap_folders.h"
#include "proto/imap/imap_mailbox.h"
#include "storage/folder.h"

/* LIST-EXTENDED (RFC 5258) options. */
struct imap_list_opts {
	bool sel_subscribed;		   /* (SUBSCRIBED) */
	bool sel_special_use;		   /* (SPECIAL-USE), RFC 6154 */
	bool sel_recursive;		   /* (RECURSIVEMATCH) */
	bool ret_subscribed;		   /* RETURN (SUBSCRIBED) */
	bool ret_children;		   /* RETURN (CHILDREN) */
	bool ret_special_use;		   /* RETURN (SPECIAL-USE) */
	const struct imap_arg *ret_status; /* RETURN (STATUS (...)) */
	bool lsub;
	bool extended; /* any option given: LIST-EXTENDED rules */
};

static bool imap_list_parse(struct imap_session *s, const struct imap_args *a,
			    struct imap_list_opts *o, const char **ref_r,
			    const struct imap_arg **patterns_r,
			    size_t *pattern_count_r);
/* How a name is listed besides its own attributes. */
enum imap_list_how {
	IMAP_LIST_PLAIN = 0,
	IMAP_LIST_CHILDINFO = 1,   /* ("CHILDINFO" ("SUBSCRIBED")), RFC 5258 */
	IMAP_LIST_LSUB_PARENT = 2, /* unsubscribed parent in LSUB: \Noselect */
};

static bool imap_pattern_match(const char *pattern, const char *name);
static char **imap_list_patterns(const struct imap_session *s, const char *ref,
				 const struct imap_arg *patterns,
				 size_t pattern_count);
static bool imap_list_match(char *const *pats, size_t count, const char *name);
static bool imap_list_has_hidden_subscribed(const struct folder_info *list,
					    size_t count,
					    const struct folder_info *f,
					    char *const *pats, size_t npats);
static void imap_list_one(struct imap_session *s,
			  const struct imap_list_opts *o,
			  const struct folder_info *f, unsigned how);
static void imap_folder_status_reply(struct imap_session *s,
				     enum folder_status st, const char *error,
				     const char *what);

bool imap_folder_name(struct imap_session *s, const struct imap_arg *arg,
		      char *out, size_t size)
{
	const char *raw = imap_arg_astring(arg);
	const char *why;
	char cause[160];

	if (raw == NULL) {
		imap_refuse(s, "BAD", NULL, "Mailbox name expected.",
			    "mailbox name expected");
		return false;
	}
	if (s->utf8_accept || s->rev2) {
		snprintf(out, size, "%s", raw);
		if (strlen(raw) >= size) {
			imap_refuse(s, "NO", "CANNOT", "Mailbox name too long.",
				    "mailbox name too long");
			return false;
		}
	} else if (folder_mutf7_decode(raw, out, size) < 0) {
		imap_refuse(s, "NO", "CANNOT",
			    "Invalid mailbox name (modified UTF-7 expected).",
			    "mailbox name not modified UTF-7");
		return false;
	}
	/* RFC 9051 6.3.4: a trailing separator is the same folder. */
	size_t len = strlen(out);
	if (len > 1 && out[len - 1] == '/')
		out[len - 1] = '\0';
	if (folder_is_inbox(out)) {
		snprintf(out, size, "INBOX");
		return true;
	}
	/* INBOX is case-insensitive, also as the first level of a name:
	 * "inbox/x" is "INBOX/x" on disk, so it must be in RENAME, DELETE's
	 * in-use check and subscriptions too. */
	if (strncasecmp(out, "INBOX/", 6) == 0)
		memcpy(out, "INBOX", 5);
	if (!folder_name_valid(out, &why)) {
		snprintf(cause, sizeof(cause), "invalid mailbox name: %s", why);
		imap_refuse(s, "NO", "CANNOT", "Invalid mailbox name.", cause);
		return false;
	}
	return true;
}

void imap_folder_write_name(struct imap_session *s, const char *name)
{
	char enc[FOLDER_MAX_NAME * 4 + 8];
	const char *out = name;

	if (!s->utf8_accept && !s->rev2) {
		if (folder_mutf7_encode(name, enc, sizeof(enc)) < 0)
			snprintf(enc, sizeof(enc), "%s", "INBOX");
		out = enc;
	}
	/* Valid names hold no control characters: a quoted string does. */
	conn_write(s->conn, "\"", 1);
	for (const char *p = out; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			conn_write(s->conn, "\\", 1);
		conn_write(s->conn, p, 1);
	}
	conn_write(s->conn, "\"", 1);
}

static void imap_folder_status_reply(struct imap_session *s,
				     enum folder_status st, const char *error,
				     const char *what)
{
	char cause[400];

	snprintf(cause, sizeof(cause), "%s: %s", what, error);
	switch (st) {
	case FOLDER_OK:
		imap_reply_tagged(s, "OK", NULL, "%s completed.", what);
		return;
	case FOLDER_EXISTS:
		imap_refuse(s, "NO", "ALREADYEXISTS", "Mailbox already exists.",
			    cause);
		return;
	case FOLDER_NOT_FOUND:
		imap_refuse(s, "NO", "NONEXISTENT", "No such mailbox.", cause);
		return;
	case FOLDER_NOT_ALLOWED:
		imap_refuse(s, "NO", "CANNOT", "Not allowed for this mailbox.",
			    cause);
		return;
	case FOLDER_LIMIT:
		imap_refuse(s, "NO", "LIMIT", "Too many mailboxes.", cause);
		return;
	case FOLDER_HAS_CHILDREN:
		imap_refuse(s, "NO", "INUSE",
			    "Mailbox has children; delete them first.", cause);
		return;
	case FOLDER_TEMPFAIL:
		log_error("session=%s user=%s: %s", conn_id(s->conn), s->user,
			  cause);
		imap_refuse(s, "NO", "SERVERBUG",
			    "Internal error; the administrator has been told.",
			    cause);
		return;
	}
}

/* CREATE name [(USE (\Sent ...))] (RFC 6154 CREATE-SPECIAL-USE) */
void imap_cmd_create(struct imap_session *s, const struct imap_args *a)
{
	char name[FOLDER_MAX_NAME * 4 + 8], error[256];
	unsigned special = 0;

	if (a->n < 1 || a->n > 2) {
		imap_refuse(s, "BAD", NULL, "CREATE takes a mailbox name.",
			    "CREATE syntax");
		return;
	}
	if (!imap_folder_name(s, &a->v[0], name, sizeof(name)))
		return;
	if (a->n == 2) {
		const struct imap_arg *l = &a->v[1];

		if (l->type != IMAP_ARG_LIST || l->list_count != 2 ||
		    !imap_arg_is_atom(&l->list[0], "USE") ||
		    l->list[1].type != IMAP_ARG_LIST) {
			imap_refuse(s, "BAD", NULL,
				    "CREATE parameters: (USE (...)).",
				    "CREATE parameter syntax");
			return;
		}
		for (size_t i = 0; i < l->list[1].list_count; i++) {
			const struct imap_arg *u = &l->list[1].list[i];
			unsigned bit = u->type == IMAP_ARG_ATOM
					   ? folder_special_from_name(u->str)
					   : 0;

			if (bit == 0) {
				imap_refuse(s, "NO", "USEATTR",
					    "Unsupported special-use "
					    "attribute.",
					    "unknown special-use attribute");
				return;
			}
			special |= bit;
		}
	}
	if (folder_is_inbox(name)) {
		imap_refuse(s, "NO", "ALREADYEXISTS", "INBOX always exists.",
			    "CREATE INBOX");
		return;
	}
	imap_folder_status_reply(
	    s,
	    folder_create(s->maildir_fd, name, special, error, sizeof(error)),
	    error, "CREATE");
}

void imap_cmd_delete(struct imap_session *s, const struct imap_args *a)
{
	char name[FOLDER_MAX_NAME * 4 + 8], error[256];

	if (a->n != 1) {
		imap_refuse(s, "BAD", NULL, "DELETE takes a mailbox name.",
			    "DELETE syntax");
		return;
	}
	if (!imap_folder_name(s, &a->v[0], name, sizeof(name)))
		return;
	if (s->selected != NULL && strcmp(s->selected, name) == 0) {
		imap_refuse(s, "NO", "INUSE",
			    "Mailbox is selected; close it first.",
			    "DELETE of the selected mailbox");
		return;
	}
	imap_folder_status_reply(
	    s, folder_delete(s->maildir_fd, name, error, sizeof(error)), error,
	    "DELETE");
}

void imap_cmd_rename(struct imap_session *s, const struct imap_args *a)
{
	char from[FOLDER_MAX_NAME * 4 + 8], to[FOLDER_MAX_NAME * 4 + 8];
	char error[256];

	if (a->n != 2) {
		imap_refuse(s, "BAD", NULL, "RENAME takes two mailbox names.",
			    "RENAME syntax");
		return;
	}
	if (!imap_folder_name(s, &a->v[0], from, sizeof(from)) ||
	    !imap_folder_name(s, &a->v[1], to, sizeof(to)))
		return;
	imap_folder_status_reply(
	    s, folder_rename(s->maildir_fd, from, to, error, sizeof(error)),
	    error, "RENAME");
}

static void imap_subscribe(struct imap_session *s, const struct imap_args *a,
			   bool on)
{
	char name[FOLDER_MAX_NAME * 4 + 8], error[256];

	if (a->n != 1) {
		imap_refuse(s, "BAD", NULL, "Mailbox name expected.",
			    "SUBSCRIBE syntax");
		return;
	}
	if (!imap_folder_name(s, &a->v[0], name, sizeof(name)))
		return;
	imap_folder_status_reply(
	    s, folder_subscribe(s->maildir_fd, name, on, error, sizeof(error)),
	    error, on ? "SUBSCRIBE" : "UNSUBSCRIBE");
}

void imap_cmd_subscribe(struct imap_session *s, const struct imap_args *a)
{
	imap_subscribe(s, a, true);
}

void imap_cmd_unsubscribe(struct imap_session *s, const struct imap_args *a)
{
	imap_subscribe(s, a, false);
}

/* LIST / LSUB */

/*
 * '*' matches anything, '%' anything but the separator (RFC 9051 6.3.9);
 * INBOX matches case-insensitively. Done as a table over the name's
 * positions, one pattern character at a time: O(pattern x name) whatever
 * the pattern, where trying every split recursively took exponential time
 * on a pattern of many '%' (a LIST that blocked the worker for minutes).
 * at[j]: the pattern read so far matches the first j bytes of the name.
 */
static bool imap_pattern_match(const char *pattern, const char *name)
{
	size_t len = strlen(name);
	bool *at = xcalloc(len + 1, sizeof(*at));
	bool matched;

	at[0] = true;
	for (const char *p = pattern; *p != '\0'; p++) {
		bool reach = false;

		if (*p == '*' || *p == '%') {
			/* at[j] |= at[k] for some k <= j; '%' only while
			 * name[k..j) holds no separator. */
			for (size_t j = 0; j <= len; j++) {
				if (*p == '%' && j > 0 && name[j - 1] == '/')
					reach = false;
				reach = reach || at[j];
				at[j] = reach;
			}
			continue;
		}
		for (size_t j = len; j > 0; j--)
			at[j] = at[j - 1] && name[j - 1] == *p;
		at[0] = false;
	}
	matched = at[len];
	free(at);
	return matched;
}

static bool imap_list_parse(struct imap_session *s, const struct imap_args *a,
			    struct imap_list_opts *o, const char **ref_r,
			    const struct imap_arg **patterns_r,
			    size_t *pattern_count_r)
{
	size_t i = 0;

	if (!o->lsub && a->n > 0 && a->v[0].type == IMAP_ARG_LIST) {
		o->extended = true;
		for (size_t j = 0; j < a->v[0].list_count; j++) {
			const struct imap_arg *x = &a->v[0].list[j];

			if (imap_arg_is_atom(x, "SUBSCRIBED"))
				o->sel_subscribed = o->ret_subscribed = true;
			else if (imap_arg_is_atom(x, "SPECIAL-USE"))
				o->sel_special_use = o->ret_special_use = true;
			else if (imap_arg_is_atom(x, "RECURSIVEMATCH"))
				o->sel_recursive = true;
			else if (!imap_arg_is_atom(x, "REMOTE"))
				goto bad;
		}
		if (o->sel_recursive && !o->sel_subscribed)
			goto bad; /* RFC 5258 3.1 */
		i++;
	}
	if (a->n < i + 2 || (*ref_r = imap_arg_astring(&a->v[i])) == NULL)
		goto bad;
	if (a->v[i + 1].type == IMAP_ARG_LIST && !o->lsub) {
		o->extended = true;
		*patterns_r = a->v[i + 1].list;
		*pattern_count_r = a->v[i + 1].list_count;
	} else {
		*patterns_r = &a->v[i + 1];
		*pattern_count_r = 1;
	}
	i += 2;
	if (i == a->n)
		return true;
	if (o->lsub || i + 2 != a->n || !imap_arg_is_atom(&a->v[i], "RETURN") ||
	    a->v[i + 1].type != IMAP_ARG_LIST)
		goto bad;
	o->extended = true;
	for (size_t j = 0; j < a->v[i + 1].list_count; j++) {
		const struct imap_arg *x = &a->v[i + 1].list[j];

		if (imap_arg_is_atom(x, "SUBSCRIBED"))
			o->ret_subscribed = true;
		else if (imap_arg_is_atom(x, "CHILDREN"))
			o->ret_children = true;
		else if (imap_arg_is_atom(x, "SPECIAL-USE"))
			o->ret_special_use = true;
		else if (imap_arg_is_atom(x, "STATUS") &&
			 j + 1 < a->v[i + 1].list_count &&
			 a->v[i + 1].list[j + 1].type == IMAP_ARG_LIST) {
			o->ret_status = &a->v[i + 1].list[++j];
			if (!imap_list_status_items_ok(o->ret_status))
				goto bad;
		} else
			goto bad;
	}
	return true;
bad:
	imap_refuse(s, "BAD", NULL, "Invalid LIST arguments.", "LIST syntax");
	return false;
}

/* Each pattern with the reference before it, decoded from modified UTF-7
 * when the session uses it; NULL entries for non-strings. */
static char **imap_list_patterns(const struct imap_session *s, const char *ref,
				 const struct imap_arg *patterns,
				 size_t pattern_count)
{
	char **pats = xcalloc(pattern_count + 1, sizeof(*pats));

	for (size_t p = 0; p < pattern_count; p++) {
		const char *pat = imap_arg_astring(&patterns[p]);
		char full[2 * FOLDER_MAX_NAME + 8];
		char dec[4 * FOLDER_MAX_NAME + 8];

		if (pat == NULL)
			continue;
		snprintf(full, sizeof(full), "%s%s", ref, pat);
		if (!s->utf8_accept && !s->rev2 &&
		    folder_mutf7_decode(full, dec, sizeof(dec)) == 0)
			snprintf(full, sizeof(full), "%s", dec);
		pats[p] = xstrdup(full);
	}
	return pats;
}

static bool imap_list_match(char *const *pats, size_t count, const char *name)
{
	for (size_t p = 0; p < count; p++) {
		const char *full = pats[p];

		if (full == NULL)
			continue;
		if (folder_is_inbox(name) &&
		    strncasecmp(full, "INBOX", 5) == 0 &&
		    (full[5] == '\0' || full[5] == '*' || full[5] == '%')) {
			if (imap_pattern_match(full + 5, ""))
				return true;
		} else if (imap_pattern_match(full, name)) {
			return true;
		}
	}
	return false;
}

/* Whether f has a subscribed descendant that the patterns do not list
 * itself: then LSUB "%" shows f as a \Noselect parent (RFC 3501 6.3.9)
 * and RECURSIVEMATCH gives f CHILDINFO (RFC 5258 3.5). */
static bool imap_list_has_hidden_subscribed(const struct folder_info *list,
					    size_t count,
					    const struct folder_info *f,
					    char *const *pats, size_t npats)
{
	size_t len = strlen(f->name);

	for (size_t i = 0; i < count; i++) {
		const struct folder_info *d = &list[i];

		if (d->subscribed && strncmp(d->name, f->name, len) == 0 &&
		    d->name[len] == '/' &&
		    !imap_list_match(pats, npats, d->name))
			return true;
	}
	return false;
}

static void imap_list_one(struct imap_session *s,
			  const struct imap_list_opts *o,
			  const struct folder_info *f, unsigned how)
{
	char attrs[256], special[128];
	size_t n = 0;

#define ATTR(text)                                                             \
	n += (size_t)snprintf(attrs + n, sizeof(attrs) - n, "%s%s",            \
			      n ? " " : "", text)
	attrs[0] = '\0';
	if (how & IMAP_LIST_LSUB_PARENT) {
		conn_printf(s->conn, "* LSUB (\\Noselect) \"/\" ");
		imap_folder_write_name(s, f->name);
		conn_write(s->conn, "\r\n", 2);
		return;
	}
	if (f->nonexistent)
		ATTR(o->extended ? "\\NonExistent" : "\\Noselect");
	/* CHILDREN (RFC 3348) answers are cheap here: always given. */
	ATTR(f->has_children ? "\\HasChildren" : "\\HasNoChildren");
	if (o->ret_subscribed && f->subscribed)
		ATTR("\\Subscribed");
	if (f->special != 0) {
		folder_special_format(f->special, special, sizeof(special));
		ATTR(special);
	}
#undef ATTR
	conn_printf(s->conn, "* %s (%s) \"/\" ", o->lsub ? "LSUB" : "LIST",
		    attrs);
	imap_folder_write_name(s, f->name);
	if (how & IMAP_LIST_CHILDINFO)
		conn_printf(s->conn, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	conn_write(s->conn, "\r\n", 2);
	/* LIST-STATUS (RFC 5819): STATUS right after its LIST line. */
	if (o->ret_status != NULL && !f->nonexistent)
		(void)imap_status_untagged(s, f->name, o->ret_status, true);
}

static void imap_list(struct imap_session *s, const struct imap_args *a,
		      bool lsub)
{
	struct imap_list_opts o;
	const struct imap_arg *patterns = NULL;
	size_t pattern_count = 0;
	struct folder_info *list;
	size_t count;
	const char *ref;
	char error[256], **pats;
	bool has_percent = false;

	memset(&o, 0, sizeof(o));
	o.lsub = lsub;
	if (!imap_list_parse(s, a, &o, &ref, &patterns, &pattern_count))
		return;
	for (size_t p = 0; p < pattern_count; p++) {
		const char *pat = imap_arg_astring(&patterns[p]);

		if (pat != NULL && strchr(pat, '%') != NULL)
			has_percent = true;
	}
	/* LIST "" "": the hierarchy separator and root (RFC 9051 6.3.9). */
	if (pattern_count == 1 && imap_arg_astring(&patterns[0]) != NULL &&
	    imap_arg_astring(&patterns[0])[0] == '\0' && !o.extended) {
		conn_printf(s->conn, "* %s (\\Noselect) \"/\" \"\"\r\n",
			    lsub ? "LSUB" : "LIST");
		imap_reply_tagged(s, "OK", NULL, "%s completed.",
				  lsub ? "LSUB" : "LIST");
		return;
	}
	if (folder_list(s->maildir_fd, &list, &count, error, sizeof(error)) <
	    0) {
		imap_folder_status_reply(s, FOLDER_TEMPFAIL, error, "LIST");
		return;
	}
	pats = imap_list_patterns(s, ref, patterns, pattern_count);
	for (size_t i = 0; i < count; i++) {
		const struct folder_info *f = &list[i];
		bool by_subs = lsub || o.sel_subscribed;

		if (!imap_list_match(pats, pattern_count, f->name))
			continue;
		if (o.sel_special_use && f->special == 0)
			continue;
		if (f->only_subscribed && !by_subs)
			continue; /* a bare subscription: no mailbox */
		if (!by_subs || f->subscribed) {
			imap_list_one(
			    s, &o, f,
			    o.sel_recursive &&
				    imap_list_has_hidden_subscribed(
					list, count, f, pats, pattern_count)
				? IMAP_LIST_CHILDINFO
				: IMAP_LIST_PLAIN);
		} else if ((o.sel_recursive || (lsub && has_percent)) &&
			   imap_list_has_hidden_subscribed(list, count, f, pats,
							   pattern_count)) {
			imap_list_one(s, &o, f,
				      lsub ? IMAP_LIST_LSUB_PARENT
					   : IMAP_LIST_CHILDINFO);
		}
	}
	for (size_t p = 0; p < pattern_count; p++)
		free(pats[p]);
	free(pats);
	folder_list_free(&list, count);
	imap_reply_tagged(s, "OK", NULL, "%s completed.",
			  lsub ? "LSUB" : "LIST");
}

void imap_cmd_list(struct imap_session *s, const struct imap_args *a)
{
	imap_list(s, a, false);
}

void imap_cmd_lsub(struct imap_session *s, const struct imap_args *a)
{
	imap_list(s, a, true);
}
