/*
 * APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502), CATENATE
 * (RFC 4469) and literal8 (RFC 3516). The collector (imap_session.c) hands
 * over the command line by line: the text before each literal is parsed
 * here, the literal itself is streamed into the message being built. Each
 * message is written to tmp/ as it arrives and committed only when the
 * whole command is received and valid, so that a refused message leaves
 * none of its siblings stored (RFC 3502: all or none). A refusal decided
 * in the middle (a URL that does not resolve, a message too large) reads
 * and drops the rest of the command, then answers once.
 */
#include "proto/imap/imap_append.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "mime/mime.h"
#include "proto/imap/imap_date.h"
#include "proto/imap/imap_fetch.h"
#include "proto/imap/imap_fetch_parse.h"
#include "proto/imap/imap_folders.h"
#include "proto/imap/imap_mailbox.h"
#include "storage/folder.h"
#include "storage/mail_index.h"

/* One message of the command, in tmp/ until the command ends. */
struct append_msg {
	struct mail_append *a;
	uint32_t flags;
	char **keywords;
	size_t keyword_count;
	time_t date;
};

enum append_expect {
	APPEND_ITEM,  /* a message: [flags] [date] literal | CATENATE (...) */
	APPEND_PARTS, /* inside CATENATE ( ... ) */
};

enum append_literal {
	APPEND_LIT_NONE,
	APPEND_LIT_MESSAGE, /* the message itself */
	APPEND_LIT_TEXT,    /* a CATENATE TEXT part */
};

struct imap_append_cmd {
	int folder_fd;
	enum append_expect expect;
	enum append_literal literal; /* what the literal being read is */
	struct append_msg msgs[IMAP_MAX_APPEND_MESSAGES];
	size_t count;
	struct append_msg cur; /* being received */
	bool cur_flags, cur_date;
	struct buf *binary; /* a literal8 message, held to be re-encoded */
	uint64_t cur_size;
	size_t cur_parts;
	/* The refusal, once decided: the rest of the command is dropped. */
	bool failed;
	bool answered; /* the refusal was sent already */
	char status[4];
	char code[IMAP_MAX_URL + 16];
	char text[96];
	char cause[400];
};

static bool append_head(const char *wire, size_t len, size_t *mbox_end_r);
static bool append_run(struct imap_session *s, const char *frag, size_t len,
		       const struct imap_literal_ann *ann);
static void append_parse(struct imap_session *s, const char *p, const char *end,
			 bool literal_follows);
static bool append_literal(struct imap_session *s,
			   const struct imap_literal_ann *ann);
static void append_commit(struct imap_session *s);
static void append_fail(struct imap_append_cmd *c, const char *status,
			const char *code, const char *text, const char *cause);
static void append_open_fail(struct imap_append_cmd *c, enum folder_status fst,
			     const char *error);
static void append_reply_failure(struct imap_session *s);
static bool append_start_message(struct imap_session *s);
static void append_end_message(struct imap_append_cmd *c);
static void append_msg_free(struct append_msg *m);
static void append_url(struct imap_session *s, const char *url, size_t len);
static void append_end_command(struct imap_session *s);
static void append_store_fail(struct imap_append_cmd *c, enum mail_status st,
			      const char *error);
static void append_binary_write(struct imap_append_cmd *c);

/* Where the text before a literal announcement ends ("~{N}" or "{N+}"). */
static size_t append_before_literal(const char *wire, size_t len)
{
	while (len > 0 && wire[len - 1] != '{')
		len--;
	if (len == 0)
		return 0;
	len--;
	if (len > 0 && wire[len - 1] == '~')
		len--;
	return len;
}

bool imap_commands_append_begin(struct imap_session *s,
				const struct imap_literal_ann *ann)
{
	const char *wire = buf_data(s->cmd);
	size_t len = buf_len(s->cmd), mbox_end = 0;

	if (s->append_cmd != NULL)
		return false;
	if (ann != NULL)
		len = append_before_literal(wire, len);
	if (!append_head(wire, len, &mbox_end))
		return false;
	return imap_append_start(s, wire, len, mbox_end, ann);
}

bool imap_append_start(struct imap_session *s, const char *wire, size_t len,
		       size_t mbox_end, const struct imap_literal_ann *ann)
{
	struct imap_command cmd;
	struct imap_append_cmd *c;
	char name[FOLDER_MAX_NAME * 4 + 8], error[256];
	enum folder_status fst;
	const char *err;

	memset(&cmd, 0, sizeof(cmd));
	if (imap_parse_command(wire, mbox_end, &cmd, &err) < 0 ||
	    cmd.arg_count != 1) {
		imap_command_free(&cmd);
		return false;
	}
	c = xcalloc(1, sizeof(*c));
	c->folder_fd = -1;
	s->append_cmd = c;
	if (!imap_folder_name(s, &cmd.args[0], name, sizeof(name))) {
		c->failed = c->answered = true;
	} else if ((fst = folder_open(s->maildir_fd, name, &c->folder_fd, error,
				      sizeof(error))) != FOLDER_OK) {
		append_open_fail(c, fst, error);
	}
	imap_command_free(&cmd);
	/* The command is APPEND's to finish, answered or going on. */
	(void)append_run(s, wire + mbox_end, len - mbox_end, ann);
	return true;
}

/* An APPEND that ended without any literal (CATENATE of URLs only). */
void imap_append_without_literal(struct imap_session *s)
{
	const char *wire = buf_data(s->cmd);
	size_t len = buf_len(s->cmd), mbox_end = 0;

	if (s->append_cmd != NULL || !append_head(wire, len, &mbox_end) ||
	    !imap_append_start(s, wire, len, mbox_end, NULL)) {
		imap_refuse(s, "BAD", NULL, "APPEND syntax.", "APPEND syntax");
	}
}

/*
 * "tag APPEND mailbox": true with the end of the mailbox when wire holds
 * an APPEND whose mailbox is complete (it may be a literal itself).
 */
static bool append_head(const char *wire, size_t len, size_t *mbox_end_r)
{
	size_t i = 0, start;

	while (i < len && wire[i] != ' ')
		i++;
	if (i == 0 || i + 8 > len || strncasecmp(wire + i, " APPEND ", 8) != 0)
		return false;
	i += 8;
	while (i < len && wire[i] == ' ')
		i++;
	start = i;
	if (i >= len)
		return false;
	if (wire[i] == '"') {
		for (i++; i < len && wire[i] != '"'; i++)
			if (wire[i] == '\\')
				i++;
		if (i >= len)
			return false;
		i++;
	} else if (wire[i] == '{') {
		unsigned long long n = 0;

		for (i++; i < len && wire[i] >= '0' && wire[i] <= '9'; i++) {
			if (n > (1ull << 40))
				return false;
			n = n * 10 + (unsigned)(wire[i] - '0');
		}
		if (i < len && wire[i] == '+')
			i++;
		if (i + 3 > len || memcmp(wire + i, "}\r\n", 3) != 0 ||
		    n > len - i - 3)
			return false;
		i += 3 + (size_t)n;
	} else {
		while (i < len && wire[i] != ' ' && wire[i] != '(')
			i++;
	}
	if (i == start || (i < len && wire[i] != ' '))
		return false;
	*mbox_end_r = i;
	return true;
}

/*
 * The text of the command up to the next literal (ann) or its end (ann
 * NULL). True while the command goes on (a literal is being read); false
 * once it was answered.
 */
static bool append_run(struct imap_session *s, const char *frag, size_t len,
		       const struct imap_literal_ann *ann)
{
	struct imap_append_cmd *c = s->append_cmd;

	if (!c->failed)
		append_parse(s, frag, frag + len, ann != NULL);
	if (ann != NULL)
		return append_literal(s, ann);
	if (!c->failed)
		append_commit(s);
	else
		append_reply_failure(s);
	imap_append_cancel(s);
	return false;
}

/* Past the spaces at p. */
static const char *append_skip(const char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	return p;
}

/* The atom at p (letters), as far as a space, '(' or ')'. */
static size_t append_atom(const char *p, const char *end)
{
	size_t n = 0;

	while (p + n < end && p[n] != ' ' && p[n] != '(' && p[n] != ')')
		n++;
	return n;
}

/* A quoted string at p into out (unescaped); the end of it, or NULL. */
static const char *append_quoted(const char *p, const char *end, char *out,
				 size_t size, size_t *len_r)
{
	size_t n = 0;

	if (p >= end || *p != '"')
		return NULL;
	for (p++; p < end && *p != '"'; p++) {
		if (*p == '\\' && p + 1 < end)
			p++;
		if (n + 1 >= size)
			return NULL;
		out[n++] = *p;
	}
	if (p >= end)
		return NULL;
	out[n] = '\0';
	*len_r = n;
	return p + 1;
}

/* "(\Seen $Label)" at p, through the command parser. */
static const char *append_flags(struct imap_session *s, const char *p,
				const char *end)
{
	struct imap_append_cmd *c = s->append_cmd;
	const char *close = memchr(p, ')', (size_t)(end - p));
	struct imap_command cmd;
	const char **kw = NULL, *err;
	size_t kc = 0, n;
	char *wire;
	bool ok;

	if (close == NULL)
		return NULL;
	n = (size_t)(close + 1 - p);
	wire = xmalloc(n + 10);
	memcpy(wire, "f APPEND ", 9);
	memcpy(wire + 9, p, n);
	memset(&cmd, 0, sizeof(cmd));
	if (imap_parse_command(wire, n + 9, &cmd, &err) < 0 ||
	    cmd.arg_count != 1 || cmd.args[0].type != IMAP_ARG_LIST) {
		imap_command_free(&cmd);
		free(wire);
		return NULL;
	}
	ok = imap_mailbox_parse_flags(s, cmd.args[0].list,
				      cmd.args[0].list_count, &c->cur.flags,
				      &kw, &kc);
	if (ok) {
		c->cur.keywords = xcalloc(kc + 1, sizeof(char *));
		for (size_t k = 0; k < kc; k++)
			c->cur.keywords[k] = xstrdup(kw[k]);
		c->cur.keyword_count = kc;
	} else {
		c->failed = c->answered = true; /* refused (BAD) there */
	}
	free(kw);
	imap_command_free(&cmd);
	free(wire);
	return close + 1;
}

/* One message item: [flags] [date-time] then a literal or CATENATE. */
static const char *append_parse_item(struct imap_session *s, const char *p,
				     const char *end)
{
	struct imap_append_cmd *c = s->append_cmd;
	char date[64];
	size_t n;
	int zone;

	if (*p == '(' && !c->cur_flags && !c->cur_date) {
		c->cur_flags = true;
		return append_flags(s, p, end);
	}
	if (*p == '"' && !c->cur_date) {
		c->cur_date = true;
		p = append_quoted(p, end, date, sizeof(date), &n);
		if (p == NULL ||
		    imap_datetime_parse(date, n, &c->cur.date, &zone) < 0) {
			append_fail(c, "BAD", NULL, "Invalid date-time.",
				    "APPEND date-time syntax");
			return NULL;
		}
		return p;
	}
	n = append_atom(p, end);
	if (n != 8 || strncasecmp(p, "CATENATE", 8) != 0)
		return NULL;
	p = append_skip(p + 8, end);
	if (p >= end || *p != '(')
		return NULL;
	if (!append_start_message(s))
		return NULL;
	c->expect = APPEND_PARTS;
	return p + 1;
}

/* One CATENATE part: TEXT literal, URL "url", or the closing ')'. */
static const char *append_parse_part(struct imap_session *s, const char *p,
				     const char *end, bool literal_follows)
{
	struct imap_append_cmd *c = s->append_cmd;
	char url[IMAP_MAX_URL + 1];
	size_t n = append_atom(p, end);

	if (*p == ')') {
		if (c->cur_parts == 0)
			return NULL;
		append_end_message(c);
		return p + 1;
	}
	if (c->cur_parts >= IMAP_MAX_CATENATE_PARTS) {
		append_fail(c, "NO", "LIMIT", "Too many CATENATE parts.",
			    "CATENATE with too many parts");
		return NULL;
	}
	if (n == 4 && strncasecmp(p, "TEXT", 4) == 0) {
		p = append_skip(p + 4, end);
		if (p != end || !literal_follows)
			return NULL;
		c->literal = APPEND_LIT_TEXT;
		return p;
	}
	if (n != 3 || strncasecmp(p, "URL", 3) != 0)
		return NULL;
	p = append_skip(p + 3, end);
	if (p < end && *p == '"') {
		p = append_quoted(p, end, url, sizeof(url), &n);
	} else {
		n = append_atom(p, end);
		if (n == 0 || n > IMAP_MAX_URL)
			return NULL;
		memcpy(url, p, n);
		url[n] = '\0';
		p += n;
	}
	if (p == NULL)
		return NULL;
	c->cur_parts++;
	append_url(s, url, n);
	return c->failed ? NULL : p;
}

/* Parses frag; sets c->literal when what it ends with is a message or a
 * TEXT part, or fails the command. */
static void append_parse(struct imap_session *s, const char *p, const char *end,
			 bool literal_follows)
{
	struct imap_append_cmd *c = s->append_cmd;

	c->literal = APPEND_LIT_NONE;
	for (;;) {
		p = append_skip(p, end);
		if (p == end && c->expect == APPEND_ITEM) {
			if (literal_follows) {
				if (append_start_message(s))
					c->literal = APPEND_LIT_MESSAGE;
				return;
			}
			if (c->count > 0 && !c->cur_flags && !c->cur_date)
				return; /* the end of the command */
			break;
		}
		if (p == end)
			break; /* inside CATENATE */
		if (c->expect == APPEND_ITEM)
			p = append_parse_item(s, p, end);
		else
			p = append_parse_part(s, p, end, literal_follows);
		if (p == NULL || c->failed)
			break;
		if (c->literal != APPEND_LIT_NONE)
			return;
	}
	append_fail(c, "BAD", NULL, "APPEND syntax.", "APPEND syntax");
}

/* The literal announced at the end of the line: read into the message,
 * or dropped after a refusal. True while the command goes on. */
static bool append_literal(struct imap_session *s,
			   const struct imap_literal_ann *ann)
{
	struct imap_append_cmd *c = s->append_cmd;
	uint64_t max = s->env->cfg->max_message_size;

	if (!c->failed && c->literal == APPEND_LIT_NONE)
		append_fail(c, "BAD", NULL, "APPEND syntax.", "APPEND syntax");
	if (!c->failed && (ann->size > max || c->cur_size > max - ann->size))
		append_fail(c, "NO", "TOOBIG",
			    "Message larger than APPENDLIMIT.",
			    "APPEND over the size limit");
	if (c->failed && !ann->nonsync) {
		/* No "+": the client sends nothing more of it. */
		append_reply_failure(s);
		imap_append_cancel(s);
		append_end_command(s);
		return false;
	}
	if (c->failed && ann->size > max) {
		/* A non-synchronising literal too large to wait for. */
		append_reply_failure(s);
		imap_reply_untagged(s, "BYE [LIMIT] Literal too large; "
				       "closing.");
		imap_append_cancel(s);
		append_end_command(s);
		imap_session_close(s, "literal too large");
		return false;
	}
	if (!ann->nonsync)
		conn_printf(s->conn, "+ Ready for literal data\r\n");
	if (!c->failed && c->literal == APPEND_LIT_MESSAGE && ann->binary)
		c->binary = buf_new((size_t)ann->size + 1);
	s->sink = c->failed ? IMAP_LITERAL_DISCARD : IMAP_LITERAL_APPEND;
	s->literal_left = ann->size;
	if (!c->failed)
		c->cur_size += ann->size;
	return true;
}

void imap_commands_append_data(struct imap_session *s, const char *data,
			       size_t len)
{
	struct imap_append_cmd *c = s->append_cmd;
	char error[256];
	enum mail_status st;

	if (c == NULL || c->failed || c->cur.a == NULL)
		return;
	if (c->binary != NULL) {
		/* Announced with its size, which the buffer holds. */
		if (buf_append(c->binary, data, len) < 0)
			append_fail(c, "NO", "TOOBIG", "Message too large.",
				    "literal8 longer than announced");
		return;
	}
	st = mail_append_write(c->cur.a, data, len, error, sizeof(error));
	if (st != MAIL_OK)
		append_store_fail(c, st, error);
}

void imap_commands_append_end(struct imap_session *s)
{
	(void)s; /* the literal is done when the rest of its line comes */
}

bool imap_commands_append_finish(struct imap_session *s, const char *line,
				 size_t len)
{
	struct imap_append_cmd *c = s->append_cmd;
	struct imap_literal_ann ann;
	int r;

	if (c == NULL)
		return false;
	if (!c->failed && c->binary != NULL)
		append_binary_write(c);
	if (!c->failed && c->literal == APPEND_LIT_MESSAGE)
		append_end_message(c);
	else if (!c->failed && c->literal == APPEND_LIT_TEXT)
		c->cur_parts++;
	c->literal = APPEND_LIT_NONE;
	r = imap_line_literal(line, len, &ann);
	if (r < 0) {
		append_fail(c, "BAD", NULL, "Invalid literal.",
			    "malformed literal announcement");
		r = 0;
	}
	if (r > 0)
		return append_run(s, line, append_before_literal(line, len),
				  &ann);
	return append_run(s, line, len, NULL);
}

static bool append_start_message(struct imap_session *s)
{
	struct imap_append_cmd *c = s->append_cmd;
	char error[256];
	enum mail_status st;

	if (c->cur.a != NULL)
		return true;
	if (c->count >= IMAP_MAX_APPEND_MESSAGES) {
		append_fail(c, "NO", "LIMIT",
			    "Too many messages in one APPEND.",
			    "MULTIAPPEND with too many messages");
		return false;
	}
	st = mail_append_begin(c->folder_fd, &c->cur.a, error, sizeof(error));
	if (st != MAIL_OK) {
		append_store_fail(c, st, error);
		return false;
	}
	c->cur_size = 0;
	c->cur_parts = 0;
	return true;
}

/* The current message is received: it waits in tmp/ for the others. */
static void append_end_message(struct imap_append_cmd *c)
{
	c->msgs[c->count++] = c->cur;
	memset(&c->cur, 0, sizeof(c->cur));
	c->cur_flags = c->cur_date = false;
	c->cur_size = 0;
	c->cur_parts = 0;
	c->expect = APPEND_ITEM;
}

static void append_msg_free(struct append_msg *m)
{
	if (m->a != NULL)
		mail_append_abort(&m->a);
	for (size_t i = 0; i < m->keyword_count; i++)
		free(m->keywords[i]);
	free(m->keywords);
	memset(m, 0, sizeof(*m));
}

/* Writes the UIDs as a set: "4:6,9". */
static void append_uid_set(const uint32_t *uids, size_t n, char *out,
			   size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && used < size;) {
		size_t j = i;
		int w;

		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j > i)
			w = snprintf(out + used, size - used, "%s%u:%u",
				     i ? "," : "", uids[i], uids[j]);
		else
			w = snprintf(out + used, size - used, "%s%u",
				     i ? "," : "", uids[i]);
		if (w < 0)
			break;
		used += (size_t)w;
		i = j + 1;
	}
}

/* Every message was received and is valid: INV-D1, each one durable
 * (file and folder fsynced) before the OK. */
static void append_commit(struct imap_session *s)
{
	struct imap_append_cmd *c = s->append_cmd;
	uint32_t uids[IMAP_MAX_APPEND_MESSAGES], uidvalidity = 0;
	char error[256], set[IMAP_MAX_APPEND_MESSAGES * 24];
	enum mail_status st = MAIL_OK;
	size_t i;

	for (i = 0; i < c->count && st == MAIL_OK; i++) {
		struct append_msg *m = &c->msgs[i];

		st = mail_append_commit(&m->a, m->flags,
					(const char *const *)m->keywords,
					m->keyword_count, m->date, &uidvalidity,
					&uids[i], error, sizeof(error));
	}
	if (st != MAIL_OK) {
		append_store_fail(c, st, error);
		append_reply_failure(s);
		return;
	}
	append_uid_set(uids, c->count, set, sizeof(set));
	imap_reply_tagged(s, "OK", NULL, "[APPENDUID %u %s] APPEND completed.",
			  uidvalidity, set);
}

static void append_fail(struct imap_append_cmd *c, const char *status,
			const char *code, const char *text, const char *cause)
{
	if (c->failed)
		return;
	c->failed = true;
	snprintf(c->status, sizeof(c->status), "%s", status);
	snprintf(c->code, sizeof(c->code), "%s", code ? code : "");
	snprintf(c->text, sizeof(c->text), "%s", text);
	snprintf(c->cause, sizeof(c->cause), "%s", cause);
}

/* TRYCREATE only for a folder that is not there: a client creates it and
 * tries again. Out of descriptors, it is told to wait. */
static void append_open_fail(struct imap_append_cmd *c, enum folder_status fst,
			     const char *error)
{
	char cause[400];

	if (fst != FOLDER_TEMPFAIL) {
		append_fail(c, "NO", "TRYCREATE", "No such mailbox.",
			    "APPEND to a missing mailbox");
		return;
	}
	snprintf(cause, sizeof(cause), "APPEND: %s", error);
	append_fail(c, "NO", "UNAVAILABLE",
		    "The mailbox cannot be opened right now; try again later.",
		    cause);
}

static void append_store_fail(struct imap_append_cmd *c, enum mail_status st,
			      const char *error)
{
	char cause[400];

	snprintf(cause, sizeof(cause), "APPEND: %s", error);
	switch (st) {
	case MAIL_OK:
		return;
	case MAIL_NOT_FOUND:
		append_fail(c, "NO", "NONEXISTENT", "No such mailbox.", cause);
		return;
	case MAIL_LIMIT:
		append_fail(c, "NO", "LIMIT",
			    "A limit of this server was reached.", cause);
		return;
	case MAIL_NOSPACE:
		append_fail(c, "NO", "OVERQUOTA", "Out of space.", cause);
		return;
	case MAIL_TEMPFAIL:
		log_error("APPEND failed: %s", cause);
		append_fail(c, "NO", "SERVERBUG",
			    "Internal error; the administrator has been told.",
			    cause);
		return;
	}
}

static void append_reply_failure(struct imap_session *s)
{
	struct imap_append_cmd *c = s->append_cmd;

	if (c->answered)
		return;
	c->answered = true;
	imap_refuse(s, c->status, c->code[0] ? c->code : NULL, c->text,
		    c->cause);
}

/* The command was answered while the collector was still reading it. */
static void append_end_command(struct imap_session *s)
{
	s->literal_left = 0;
	s->sink = IMAP_LITERAL_COMMAND;
	buf_clear(s->cmd);
	s->tag[0] = '\0';
}

void imap_append_cancel(struct imap_session *s)
{
	struct imap_append_cmd *c = s->append_cmd;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->count; i++)
		append_msg_free(&c->msgs[i]);
	append_msg_free(&c->cur);
	buf_free(&c->binary);
	if (c->folder_fd >= 0)
		close(c->folder_fd);
	free(c);
	s->append_cmd = NULL;
}

/* ---- CATENATE URL parts (RFC 4469 5, RFC 5092) ---- */

struct append_url_ref {
	char mailbox[FOLDER_MAX_NAME + 1];
	bool has_uidvalidity;
	uint32_t uidvalidity;
	uint32_t uid;
	char section[256];
	bool partial;
	uint64_t offset, count;
};

static int append_hex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* %-decodes in[0..len) into out; -1 on a bad escape, a control byte or
 * no room. */
static int append_url_decode(const char *in, size_t len, char *out, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int ch = (unsigned char)in[i];

		if (ch == '%') {
			int hi = i + 2 < len ? append_hex(in[i + 1]) : -1;
			int lo = hi >= 0 ? append_hex(in[i + 2]) : -1;

			if (lo < 0)
				return -1;
			ch = hi * 16 + lo;
			i += 2;
		}
		if (ch < 0x20 || ch == 0x7f || n + 1 >= size)
			return -1;
		out[n++] = (char)ch;
	}
	out[n] = '\0';
	return 0;
}

static bool append_number(const char *s, size_t len, uint64_t max,
			  uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

/* ";NAME=value" parameters, each optionally after a '/'. */
static bool append_url_params(const char *p, const char *end,
			      struct append_url_ref *ref)
{
	bool have_uid = false;

	while (p < end) {
		const char *eq, *stop;
		size_t nlen, vlen;
		uint64_t v;

		if (*p == '/')
			p++;
		if (p >= end || *p != ';')
			return false;
		p++;
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq == NULL)
			return false;
		stop = eq + 1;
		while (stop < end && *stop != '/' && *stop != ';')
			stop++;
		nlen = (size_t)(eq - p);
		vlen = (size_t)(stop - eq - 1);
		if (nlen == 11 && strncasecmp(p, "UIDVALIDITY", 11) == 0 &&
		    !have_uid && append_number(eq + 1, vlen, UINT32_MAX, &v)) {
			ref->has_uidvalidity = true;
			ref->uidvalidity = (uint32_t)v;
		} else if (nlen == 3 && strncasecmp(p, "UID", 3) == 0 &&
			   !have_uid &&
			   append_number(eq + 1, vlen, UINT32_MAX, &v) &&
			   v > 0) {
			have_uid = true;
			ref->uid = (uint32_t)v;
		} else if (nlen == 7 && strncasecmp(p, "SECTION", 7) == 0 &&
			   have_uid) {
			if (append_url_decode(eq + 1, vlen, ref->section,
					      sizeof(ref->section)) < 0)
				return false;
		} else if (nlen == 7 && strncasecmp(p, "PARTIAL", 7) == 0 &&
			   have_uid) {
			const char *dot = memchr(eq + 1, '.', vlen);
			size_t olen = dot ? (size_t)(dot - eq - 1) : vlen;

			ref->partial = true;
			ref->count = UINT64_MAX;
			if (!append_number(eq + 1, olen, UINT32_MAX,
					   &ref->offset) ||
			    (dot != NULL &&
			     !append_number(dot + 1, vlen - olen - 1,
					    UINT32_MAX, &ref->count)))
				return false;
		} else {
			return false; /* URLAUTH, EXPIRE, ... */
		}
		p = stop;
	}
	return have_uid;
}

/*
 * Parses a URL relative to this session: "/mailbox[;UIDVALIDITY=n]/;UID=n
 * [/;SECTION=s][/;PARTIAL=o.n]" or ";UID=n..." in the selected mailbox.
 * Absolute "imap://" URLs (another server, another user) are refused.
 */
static bool append_url_parse(struct imap_session *s, const char *url,
			     size_t len, struct append_url_ref *ref)
{
	const char *end = url + len, *semi;
	size_t mlen;

	memset(ref, 0, sizeof(*ref));
	if (len > 0 && url[0] == ';') {
		if (s->selected == NULL ||
		    strlen(s->selected) >= sizeof(ref->mailbox))
			return false;
		snprintf(ref->mailbox, sizeof(ref->mailbox), "%s", s->selected);
		return append_url_params(url, end, ref);
	}
	if (len < 2 || url[0] != '/' || url[1] == '/')
		return false;
	semi = memchr(url, ';', len);
	if (semi == NULL)
		return false;
	mlen = (size_t)(semi - url - 1);
	if (mlen > 0 && url[mlen] == '/')
		mlen--; /* "/INBOX/;UID=1": the '/' is the separator */
	if (mlen == 0 || append_url_decode(url + 1, mlen, ref->mailbox,
					   sizeof(ref->mailbox)) < 0)
		return false;
	return append_url_params(semi, end, ref);
}

/*
 * The bytes of a section ("" for the whole message) through the FETCH
 * section parser and the MIME layer, into out. -1 when the section is
 * not valid syntax.
 */
static int append_section(const char *wire, size_t len, const char *section,
			  struct buf *out)
{
	struct imap_fetch fetch;
	struct imap_arg arg;
	struct mime_msg *msg;
	const char *err;
	char atom[300];
	size_t off = 0, n = 0;
	int r = 0;

	snprintf(atom, sizeof(atom), "BODY.PEEK[%s]", section);
	memset(&arg, 0, sizeof(arg));
	arg.type = IMAP_ARG_ATOM;
	arg.str = atom;
	arg.len = strlen(atom);
	memset(&fetch, 0, sizeof(fetch));
	if (imap_fetch_parse(&arg, 1, &fetch, &err) < 0)
		return -1;
	msg = mime_parse(wire, len);
	if (msg == NULL) {
		imap_fetch_free(&fetch);
		return -1;
	}
	switch (fetch.atts[0].section.kind) {
	case MIME_SECTION_HEADER_FIELDS:
	case MIME_SECTION_HEADER_FIELDS_NOT:
		r = mime_section_fields(msg, wire, &fetch.atts[0].section, out);
		break;
	default:
		if (mime_section_range(msg, &fetch.atts[0].section, &off, &n) ==
		    0)
			r = buf_append(out, wire + off, n);
		break;
	}
	mime_free(&msg);
	imap_fetch_free(&fetch);
	return r < 0 ? -1 : 0;
}

/* What the URL names, into out; false when it names nothing of ours. */
static bool append_url_fetch(struct imap_session *s,
			     const struct append_url_ref *ref, uint64_t max,
			     struct buf *out)
{
	struct mail_view *view = NULL;
	char name[FOLDER_MAX_NAME + 8], error[256];
	size_t seq0, len = 0;
	char *wire = NULL;
	int fd = -1;
	bool ok = false;

	/* INV-U1: the name is checked like any mailbox name and opened
	 * under this session's own Maildir. */
	snprintf(name, sizeof(name), "%s", ref->mailbox);
	if (folder_is_inbox(name))
		snprintf(name, sizeof(name), "INBOX");
	else if (!imap_utf8_valid(name, strlen(name)) ||
		 !folder_name_valid(name, &(const char *){NULL}))
		return false;
	if (folder_open(s->maildir_fd, name, &fd, error, sizeof(error)) !=
	    FOLDER_OK)
		return false;
	if (mail_view_open(fd, true, &view, error, sizeof(error)) != MAIL_OK)
		goto out;
	if (ref->has_uidvalidity &&
	    ref->uidvalidity != mail_view_uidvalidity(view))
		goto out;
	seq0 = mail_view_find_uid(view, ref->uid);
	if (seq0 >= mail_view_count(view))
		goto out;
	wire = imap_fetch_load_wire(view, seq0, max, &len);
	if (wire == NULL || append_section(wire, len, ref->section, out) < 0)
		goto out;
	ok = true;
out:
	free(wire);
	if (view != NULL)
		mail_view_close(&view);
	if (fd >= 0)
		close(fd);
	return ok;
}

/* A CATENATE URL part: its bytes are appended to the message. */
static void append_url(struct imap_session *s, const char *url, size_t len)
{
	struct imap_append_cmd *c = s->append_cmd;
	uint64_t max = s->env->cfg->max_message_size;
	struct append_url_ref ref;
	struct buf *out = buf_new(max + 1);
	char error[256], shown[IMAP_MAX_URL + 1], code[IMAP_MAX_URL + 16];
	const char *data;
	size_t n;
	enum mail_status st;

	if (!append_url_parse(s, url, len, &ref) ||
	    !append_url_fetch(s, &ref, max, out)) {
		/* The URL goes back in the code: only the bytes the
		 * syntax allows there (RFC 4469 url-resp-text). */
		for (n = 0; n < len; n++)
			shown[n] =
			    url[n] > ' ' && url[n] < 0x7f && url[n] != ']'
				? url[n]
				: '?';
		shown[n] = '\0';
		snprintf(code, sizeof(code), "BADURL %s", shown);
		append_fail(c, "NO", code, "Invalid URL in CATENATE.",
			    "CATENATE URL does not resolve");
		buf_free(&out);
		return;
	}
	data = buf_data(out);
	n = buf_len(out);
	if (ref.partial) {
		uint64_t off = ref.offset < n ? ref.offset : n;
		uint64_t cnt = ref.count < n - off ? ref.count : n - off;

		data += off;
		n = (size_t)cnt;
	}
	if (n > max || c->cur_size > max - n) {
		append_fail(c, "NO", "TOOBIG",
			    "Message larger than APPENDLIMIT.",
			    "CATENATE result over the size limit");
	} else if (n > 0) {
		st = mail_append_write(c->cur.a, data, n, error, sizeof(error));
		if (st != MAIL_OK)
			append_store_fail(c, st, error);
		c->cur_size += n;
	}
	buf_free(&out);
}

/* ---- literal8 (RFC 3516 4.4) ---- */

/* The header field name at line start p (case-insensitive). */
static bool append_field_is(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);

	return (size_t)(end - p) > n && strncasecmp(p, name, n) == 0 &&
	       p[n] == ':';
}

/* The end of the header field starting at p (continuation lines too). */
static const char *append_field_end(const char *p, const char *end)
{
	for (;;) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));

		if (lf == NULL)
			return end;
		p = lf + 1;
		if (p >= end || (*p != ' ' && *p != '\t'))
			return p;
	}
}

/*
 * A message sent as literal8 may hold NUL and bare line ends in a
 * "Content-Transfer-Encoding: binary" body, which a Maildir file of lines
 * cannot keep as they are: the body is stored in base64 instead, so that
 * BINARY[1] gives back the very octets sent. Only a single-part message
 * is re-encoded; a multipart one is stored as it came.
 */
static void append_binary_write(struct imap_append_cmd *c)
{
	const char *msg = buf_data(c->binary), *end = msg + buf_len(c->binary);
	const char *p = msg, *body = NULL;
	bool binary = false, multipart = false;
	struct buf *out = NULL;
	char error[256];
	enum mail_status st;

	while (p < end) {
		const char *next = append_field_end(p, end);

		if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
			body = *p == '\n' ? p + 1 : p + 2;
			break;
		}
		if (append_field_is(p, end, "Content-Transfer-Encoding")) {
			const char *v = p + 26;

			while (v < next && (*v == ' ' || *v == '\t'))
				v++;
			binary = (size_t)(next - v) >= 6 &&
				 strncasecmp(v, "binary", 6) == 0;
		} else if (append_field_is(p, end, "Content-Type")) {
			const char *v = p + 13;

			while (v < next && (*v == ' ' || *v == '\t'))
				v++;
			multipart = (size_t)(next - v) >= 10 &&
				    strncasecmp(v, "multipart/", 10) == 0;
		}
		p = next;
	}
	if (body != NULL && binary && !multipart) {
		out = buf_new(buf_len(c->binary) * 2 + 1024);
		for (p = msg; p < body;) {
			const char *next = append_field_end(p, end);

			if (append_field_is(p, end,
					    "Content-Transfer-Encoding"))
				buf_append_str(out,
					       "Content-Transfer-Encoding: "
					       "base64\r\n");
			else
				buf_append(out, p, (size_t)(next - p));
			p = next;
		}
		while (body < end) {
			unsigned char line[80];
			size_t n = (size_t)(end - body) < 57
				       ? (size_t)(end - body)
				       : 57;
			int w = EVP_EncodeBlock(
			    line, (const unsigned char *)body, (int)n);

			buf_append(out, line, (size_t)w);
			buf_append(out, "\r\n", 2);
			body += n;
		}
		msg = buf_data(out);
		end = msg + buf_len(out);
	}
	st = mail_append_write(c->cur.a, msg, (size_t)(end - msg), error,
			       sizeof(error));
	if (st != MAIL_OK)
		append_store_fail(c, st, error);
	buf_free(&out);
	buf_free(&c->binary);
}
