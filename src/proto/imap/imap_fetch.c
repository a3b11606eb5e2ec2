/*
 * FETCH and STORE (RFC 9051 6.4.5, 6.4.6, RFC 3516 BINARY). A FETCH runs
 * as a job, a message at a time, and pauses while the output queue is
 * full (resumed on drain, as POP3 RETR is), so a FETCH 1:* never queues
 * more than one message beyond the high-water mark. A message's structure
 * comes from the folder's cache (mime_save()/mime_load()) or is parsed
 * once and cached.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "mime/mime.h"
#include "proto/imap/imap_date.h"
#include "proto/imap/imap_mailbox.h"
#include "storage/msg_wire.h"

enum fetch_kind {
	F_FLAGS,
	F_UID,
	F_INTERNALDATE,
	F_SIZE,
	F_ENVELOPE,
	F_BODY, /* BODY: BODYSTRUCTURE without extensions */
	F_BODYSTRUCTURE,
	F_SECTION,     /* BODY[...], BODY.PEEK[...], RFC822, ... */
	F_BINARY,      /* BINARY[...], BINARY.PEEK[...] */
	F_BINARY_SIZE, /* BINARY.SIZE[...] */
};

struct fetch_item {
	enum fetch_kind kind;
	bool peek;
	struct mime_section sec;
	char **fields;
	bool partial;
	uint64_t origin, count;
	char label[256]; /* the name in the response: "BODY[1.MIME]<0>" */
};

struct imap_job {
	struct fetch_item *items;
	size_t item_count;
	bool need_wire;
	bool sets_seen;
	bool uid;
	struct imap_seqset set;
	struct imap_seqset_iter it;
};

static bool fetch_parse_items(struct imap_session *s, const struct imap_arg *a,
			      struct imap_job *job);
static bool fetch_parse_one(const char *atom, struct fetch_item *it);
static bool fetch_parse_section(const char *spec, size_t len,
				struct fetch_item *it, bool binary);
static void fetch_job_free(struct imap_job **job);
static void fetch_message(struct imap_session *s, struct imap_job *job,
			  size_t seq0);
static char *fetch_load_wire(struct imap_session *s, size_t seq0,
			     size_t *len_r);
static struct mime_msg *fetch_mime(struct imap_session *s, size_t seq0,
				   const char *wire, size_t len);
static void fetch_write_literal(struct imap_session *s, const char *data,
				size_t len, bool binary);

static void fetch_job_free(struct imap_job **jobp)
{
	struct imap_job *job = *jobp;

	if (job == NULL)
		return;
	for (size_t i = 0; i < job->item_count; i++) {
		struct fetch_item *it = &job->items[i];

		for (size_t f = 0; f < it->sec.field_count; f++)
			free(it->fields[f]);
		free(it->fields);
	}
	free(job->items);
	imap_seqset_free(&job->set);
	free(job);
	*jobp = NULL;
}

static bool fetch_add(struct imap_job *job, const char *atom)
{
	struct fetch_item it;

	memset(&it, 0, sizeof(it));
	if (!fetch_parse_one(atom, &it))
		return false;
	job->items =
	    xreallocarray(job->items, job->item_count + 1, sizeof(*job->items));
	job->items[job->item_count++] = it;
	if (it.kind >= F_ENVELOPE)
		job->need_wire = true;
	if ((it.kind == F_SECTION || it.kind == F_BINARY) && !it.peek)
		job->sets_seen = true;
	return true;
}

static bool fetch_parse_items(struct imap_session *s, const struct imap_arg *a,
			      struct imap_job *job)
{
	(void)s;
	if (a->type == IMAP_ARG_ATOM) {
		/* The macros of RFC 9051 6.4.5. */
		if (strcasecmp(a->str, "ALL") == 0)
			return fetch_add(job, "FLAGS") &&
			       fetch_add(job, "INTERNALDATE") &&
			       fetch_add(job, "RFC822.SIZE") &&
			       fetch_add(job, "ENVELOPE");
		if (strcasecmp(a->str, "FAST") == 0)
			return fetch_add(job, "FLAGS") &&
			       fetch_add(job, "INTERNALDATE") &&
			       fetch_add(job, "RFC822.SIZE");
		if (strcasecmp(a->str, "FULL") == 0)
			return fetch_add(job, "FLAGS") &&
			       fetch_add(job, "INTERNALDATE") &&
			       fetch_add(job, "RFC822.SIZE") &&
			       fetch_add(job, "ENVELOPE") &&
			       fetch_add(job, "BODY");
		return fetch_add(job, a->str);
	}
	if (a->type != IMAP_ARG_LIST || a->list_count == 0)
		return false;
	for (size_t i = 0; i < a->list_count; i++)
		if (a->list[i].type != IMAP_ARG_ATOM ||
		    !fetch_add(job, a->list[i].str))
			return false;
	return true;
}

/* One fetch-att atom: "FLAGS", "BODY.PEEK[1.HEADER]<0.100>", ... */
static bool fetch_parse_one(const char *atom, struct fetch_item *it)
{
	static const struct {
		const char *name;
		enum fetch_kind kind;
		enum mime_section_kind sec;
	} simple[] = {
	    {"FLAGS", F_FLAGS, 0},
	    {"UID", F_UID, 0},
	    {"INTERNALDATE", F_INTERNALDATE, 0},
	    {"RFC822.SIZE", F_SIZE, 0},
	    {"ENVELOPE", F_ENVELOPE, 0},
	    {"BODY", F_BODY, 0},
	    {"BODYSTRUCTURE", F_BODYSTRUCTURE, 0},
	    {"RFC822", F_SECTION, MIME_SECTION_ALL},
	    {"RFC822.HEADER", F_SECTION, MIME_SECTION_HEADER},
	    {"RFC822.TEXT", F_SECTION, MIME_SECTION_TEXT},
	};
	const char *br = strchr(atom, '['), *end;
	size_t name_len = br ? (size_t)(br - atom) : strlen(atom);
	bool binary = false;

	if (br == NULL) {
		for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]);
		     i++) {
			if (strcasecmp(atom, simple[i].name) != 0)
				continue;
			it->kind = simple[i].kind;
			it->sec.kind = simple[i].sec;
			/* RFC822.HEADER does not set \Seen; RFC822 and
			 * RFC822.TEXT do. */
			it->peek = simple[i].sec == MIME_SECTION_HEADER;
			snprintf(it->label, sizeof(it->label), "%s",
				 simple[i].name);
			return true;
		}
		return false;
	}
	if (name_len == 4 && strncasecmp(atom, "BODY", 4) == 0) {
		it->kind = F_SECTION;
	} else if (name_len == 9 && strncasecmp(atom, "BODY.PEEK", 9) == 0) {
		it->kind = F_SECTION;
		it->peek = true;
	} else if (name_len == 6 && strncasecmp(atom, "BINARY", 6) == 0) {
		it->kind = F_BINARY;
		binary = true;
	} else if (name_len == 11 &&
		   strncasecmp(atom, "BINARY.PEEK", 11) == 0) {
		it->kind = F_BINARY;
		it->peek = binary = true;
	} else if (name_len == 11 &&
		   strncasecmp(atom, "BINARY.SIZE", 11) == 0) {
		it->kind = F_BINARY_SIZE;
		it->peek = binary = true;
	} else {
		return false;
	}
	end = strchr(br, ']');
	if (end == NULL ||
	    !fetch_parse_section(br + 1, (size_t)(end - br - 1), it, binary))
		return false;
	/* The response names the section as asked, without PEEK. */
	snprintf(it->label, sizeof(it->label), "%s[%.*s]",
		 it->kind == F_SECTION	? "BODY"
		 : it->kind == F_BINARY ? "BINARY"
					: "BINARY.SIZE",
		 (int)(end - br - 1), br + 1);
	for (char *c = it->label; *c != '\0'; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	end++;
	if (*end == '<' && it->kind != F_BINARY_SIZE) {
		unsigned long long o, c;
		char close;

		if (sscanf(end, "<%llu.%llu%c", &o, &c, &close) != 3 ||
		    close != '>' || c == 0 || strchr(end, '>')[1] != '\0')
			return false;
		it->partial = true;
		it->origin = o;
		it->count = c;
		size_t l = strlen(it->label);
		snprintf(it->label + l, sizeof(it->label) - l, "<%llu>", o);
		return true;
	}
	return *end == '\0';
}

static bool fetch_parse_section(const char *spec, size_t len,
				struct fetch_item *it, bool binary)
{
	size_t i = 0;
	const char *rest;
	size_t rest_len;

	while (i < len && spec[i] >= '0' && spec[i] <= '9') {
		unsigned long part = 0;

		while (i < len && spec[i] >= '0' && spec[i] <= '9') {
			part = part * 10 + (unsigned long)(spec[i] - '0');
			if (part > 100000)
				return false;
			i++;
		}
		if (part == 0 || it->sec.depth >= 32)
			return false;
		it->sec.part[it->sec.depth++] = (unsigned)part;
		if (i < len && spec[i] == '.')
			i++;
		else
			break;
	}
	rest = spec + i;
	rest_len = len - i;
	it->sec.kind = MIME_SECTION_ALL;
	if (binary)
		return rest_len == 0;
	if (rest_len == 0)
		return true;
	if (rest_len == 6 && strncasecmp(rest, "HEADER", 6) == 0) {
		it->sec.kind = MIME_SECTION_HEADER;
	} else if (rest_len == 4 && strncasecmp(rest, "TEXT", 4) == 0) {
		it->sec.kind = MIME_SECTION_TEXT;
	} else if (rest_len == 4 && strncasecmp(rest, "MIME", 4) == 0 &&
		   it->sec.depth > 0) {
		it->sec.kind = MIME_SECTION_MIME;
	} else if (rest_len > 14 &&
		   strncasecmp(rest, "HEADER.FIELDS", 13) == 0) {
		const char *p = rest + 13, *e = rest + rest_len;

		it->sec.kind = MIME_SECTION_HEADER_FIELDS;
		if (e - p > 4 && strncasecmp(p, ".NOT", 4) == 0) {
			it->sec.kind = MIME_SECTION_HEADER_FIELDS_NOT;
			p += 4;
		}
		if (p >= e || *p++ != ' ' || p >= e || *p++ != '(' ||
		    e[-1] != ')')
			return false;
		e--;
		while (p < e) {
			const char *w = p;

			while (p < e && *p != ' ')
				p++;
			if (p > w) {
				size_t wl = (size_t)(p - w);

				if (*w == '"' && wl >= 2 && w[wl - 1] == '"') {
					w++;
					wl -= 2;
				}
				it->fields = xreallocarray(
				    it->fields, it->sec.field_count + 1,
				    sizeof(*it->fields));
				it->fields[it->sec.field_count++] =
				    xstrndup(w, wl);
			}
			while (p < e && *p == ' ')
				p++;
		}
		if (it->sec.field_count == 0)
			return false;
		it->sec.fields = (const char *const *)it->fields;
	} else {
		return false;
	}
	return true;
}

/* The message in wire form (CRLF), malloc'ed; NULL if it is gone. */
static char *fetch_load_wire(struct imap_session *s, size_t seq0, size_t *len_r)
{
	char error[256], in[65536];
	struct msg_wire w;
	struct stat st;
	size_t len = 0, cap;
	char *out;
	ssize_t n;
	int fd = mail_view_msg_open(s->view, seq0, error, sizeof(error));

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || st.st_size < 0 ||
	    (uint64_t)st.st_size > (uint64_t)1 << 31) {
		close(fd);
		return NULL;
	}
	cap = 2 * (size_t)st.st_size + 2 * sizeof(in) + 8;
	out = xmalloc(cap);
	msg_wire_init(&w, false, -1);
	while ((n = read(fd, in, sizeof(in))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || len + 2 * (size_t)n + 8 > cap) {
			/* Read error, or it grew under us: give what
			 * we have no chance to be wrong about. */
			free(out);
			close(fd);
			return NULL;
		}
		len += msg_wire_convert(&w, in, (size_t)n, out + len);
	}
	close(fd);
	*len_r = len;
	return out;
}

static struct mime_msg *fetch_mime(struct imap_session *s, size_t seq0,
				   const char *wire, size_t len)
{
	struct mime_msg *msg = NULL;
	void *blob = NULL;
	size_t blob_len = 0;

	if (mail_view_cache_get(s->view, seq0, &blob, &blob_len) == MAIL_OK) {
		msg = mime_load(blob, blob_len, len);
		free(blob);
		if (msg != NULL)
			return msg;
	}
	msg = mime_parse(wire, len);
	if (msg != NULL) {
		struct buf *b = buf_new(16 * 1024 * 1024);

		if (mime_save(msg, b) == 0)
			mail_view_cache_put(s->view, seq0, buf_data(b),
					    buf_len(b));
		buf_free(&b);
	}
	return msg;
}

static void fetch_write_literal(struct imap_session *s, const char *data,
				size_t len, bool binary)
{
	conn_printf(s->conn, "%s{%zu}\r\n", binary ? "~" : "", len);
	if (len > 0)
		conn_write(s->conn, data, len);
	s->bytes_sent += len;
}

/* One message's response line (and literals). */
static void fetch_message(struct imap_session *s, struct imap_job *job,
			  size_t seq0)
{
	const struct mail_msg *m = mail_view_msg(s->view, seq0);
	char *wire = NULL, flags[2048], date[IMAP_DATETIME_SIZE + 1];
	struct mime_msg *msg = NULL;
	size_t wire_len = 0;
	bool first = true, seen_now = false, flags_asked = false;
	struct buf *tmp = NULL;

	if (job->need_wire) {
		wire = fetch_load_wire(s, seq0, &wire_len);
		if (wire == NULL)
			return; /* expunged meanwhile: RFC 9051 allows
				 * leaving it out */
		msg = fetch_mime(s, seq0, wire, wire_len);
		if (msg == NULL) {
			free(wire);
			return;
		}
	}
	if (job->sets_seen && !s->readonly && !(m->flags & MAIL_SEEN)) {
		char error[256];

		if (mail_view_store(s->view, seq0, MAIL_STORE_ADD, MAIL_SEEN, 0,
				    error, sizeof(error)) == MAIL_OK)
			seen_now = true;
		m = mail_view_msg(s->view, seq0);
	}
	conn_printf(s->conn, "* %zu FETCH (", seq0 + 1);
#define SEP() (first ? (first = false, "") : " ")
	if (job->uid)
		conn_printf(s->conn, "%sUID %u", SEP(), m->uid);
	for (size_t i = 0; i < job->item_count; i++) {
		struct fetch_item *it = &job->items[i];
		size_t off = 0, len = 0;

		switch (it->kind) {
		case F_FLAGS:
			flags_asked = true;
			imap_mailbox_format_flags(s, m, flags, sizeof(flags));
			conn_printf(s->conn, "%sFLAGS (%s)", SEP(), flags);
			break;
		case F_UID:
			if (!job->uid)
				conn_printf(s->conn, "%sUID %u", SEP(), m->uid);
			break;
		case F_INTERNALDATE:
			if (imap_datetime_format(m->internaldate, 0, date,
						 sizeof(date)) < 0)
				snprintf(date, sizeof(date),
					 "01-Jan-1970 00:00:00 +0000");
			conn_printf(s->conn, "%sINTERNALDATE \"%s\"", SEP(),
				    date);
			break;
		case F_SIZE:
			conn_printf(
			    s->conn, "%sRFC822.SIZE %llu", SEP(),
			    (unsigned long long)(wire ? wire_len : m->size));
			break;
		case F_ENVELOPE:
		case F_BODY:
		case F_BODYSTRUCTURE:
			tmp = buf_new(64 * 1024 * 1024);
			if (it->kind == F_ENVELOPE)
				mime_write_envelope(msg, wire, tmp);
			else
				mime_write_bodystructure(
				    msg, wire, it->kind == F_BODYSTRUCTURE,
				    tmp);
			conn_printf(s->conn, "%s%s ", SEP(), it->label);
			conn_write(s->conn, buf_data(tmp), buf_len(tmp));
			buf_free(&tmp);
			break;
		case F_SECTION:
			conn_printf(s->conn, "%s%s ", SEP(), it->label);
			if (it->sec.kind == MIME_SECTION_HEADER_FIELDS ||
			    it->sec.kind == MIME_SECTION_HEADER_FIELDS_NOT) {
				tmp = buf_new(MIME_MAX_HEADER_BYTES + 4);
				mime_section_fields(msg, wire, &it->sec, tmp);
				off = 0;
				len = buf_len(tmp);
			} else if (mime_section_range(msg, &it->sec, &off,
						      &len) < 0) {
				off = len = 0;
			}
			{
				const char *base =
				    tmp ? buf_data(tmp) : wire + off;

				if (it->partial) {
					uint64_t o =
					    it->origin < len ? it->origin : len;
					uint64_t c = len - o < it->count
							 ? len - o
							 : it->count;

					base += o;
					len = (size_t)c;
				}
				fetch_write_literal(s, base, len, false);
			}
			buf_free(&tmp);
			break;
		case F_BINARY:
		case F_BINARY_SIZE: {
			int r;

			tmp = buf_new(64 * 1024 * 1024);
			r = mime_binary(msg, wire, it->sec.part, it->sec.depth,
					tmp);
			if (r == -2) {
				/* RFC 3516: [UNKNOWN-CTE]; the item is
				 * left out of this response. */
				buf_free(&tmp);
				break;
			}
			conn_printf(s->conn, "%s%s ", SEP(), it->label);
			if (it->kind == F_BINARY_SIZE) {
				conn_printf(s->conn, "%zu", buf_len(tmp));
			} else {
				const char *base = buf_data(tmp);

				len = buf_len(tmp);
				if (it->partial) {
					uint64_t o =
					    it->origin < len ? it->origin : len;
					uint64_t c = len - o < it->count
							 ? len - o
							 : it->count;

					base += o;
					len = (size_t)c;
				}
				fetch_write_literal(s, base, len,
						    memchr(base, '\0', len) !=
							NULL);
			}
			buf_free(&tmp);
			break;
		}
		}
	}
	if (seen_now && !flags_asked) {
		imap_mailbox_format_flags(s, m, flags, sizeof(flags));
		conn_printf(s->conn, "%sFLAGS (%s)", SEP(), flags);
	}
#undef SEP
	conn_write(s->conn, ")\r\n", 3);
	if (wire != NULL)
		s->fetched++;
	mime_free(&msg);
	free(wire);
}

void imap_commands_job_run(struct imap_session *s)
{
	struct imap_job *job = s->job;
	uint32_t n;

	while (!conn_output_full(s->conn) && !conn_is_closing(s->conn)) {
		size_t seq0;

		if (job == NULL || s->view == NULL ||
		    !imap_seqset_iter_next(&job->it, &n)) {
			fetch_job_free(&s->job);
			if (!conn_is_closing(s->conn)) {
				imap_reply_tagged(s, "OK", NULL,
						  "FETCH completed.");
				s->tag[0] = '\0';
				imap_session_set_busy(s, false);
			}
			return;
		}
		seq0 = job->uid ? mail_view_find_uid(s->view, n) : n - 1;
		if (seq0 >= mail_view_count(s->view))
			continue;
		fetch_message(s, job, seq0);
	}
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_args *a)
{
	struct imap_job *job = xcalloc(1, sizeof(*job));
	const char *err;

	job->uid = a->uid;
	if (a->n < 2 || a->v[0].type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(a->v[0].str, a->v[0].len, &job->set, &err) < 0 ||
	    !fetch_parse_items(s, &a->v[1], job) ||
	    (a->n > 2 && a->v[2].type != IMAP_ARG_LIST)) {
		fetch_job_free(&job);
		imap_refuse(s, "BAD", NULL, "Invalid FETCH arguments.",
			    "FETCH syntax");
		return;
	}
	if (!imap_mailbox_resolve_set(s, &job->set, a->uid)) {
		fetch_job_free(&job);
		return;
	}
	imap_seqset_iter_init(&job->it, &job->set);
	s->job = job;
	imap_session_set_busy(s, true);
	imap_commands_job_run(s);
}

void imap_fetch_session_end(struct imap_session *s)
{
	fetch_job_free(&s->job);
}

/* STORE set [+|-]FLAGS[.SILENT] (flags) */
void imap_cmd_store(struct imap_session *s, const struct imap_args *a)
{
	struct imap_seqset set;
	struct imap_seqset_iter it;
	enum mail_store_mode mode = MAIL_STORE_SET;
	const char *item, *err, **kw = NULL;
	const struct imap_arg *fl;
	size_t fl_n, kc = 0;
	uint32_t flags, n;
	uint64_t kwbits = 0;
	bool silent;
	char error[256], out[2048];

	if (a->n < 3 || a->v[0].type != IMAP_ARG_ATOM ||
	    a->v[1].type != IMAP_ARG_ATOM) {
		imap_refuse(s, "BAD", NULL, "Invalid STORE arguments.",
			    "STORE syntax");
		return;
	}
	item = a->v[1].str;
	if (*item == '+' || *item == '-') {
		mode = *item == '+' ? MAIL_STORE_ADD : MAIL_STORE_REMOVE;
		item++;
	}
	silent = strcasecmp(item, "FLAGS.SILENT") == 0;
	if (!silent && strcasecmp(item, "FLAGS") != 0) {
		imap_refuse(s, "BAD", NULL, "STORE takes FLAGS.",
			    "STORE of an unknown item");
		return;
	}
	if (a->n == 3 && a->v[2].type == IMAP_ARG_LIST) {
		fl = a->v[2].list;
		fl_n = a->v[2].list_count;
	} else {
		fl = &a->v[2];
		fl_n = a->n - 2;
	}
	if (!imap_mailbox_parse_flags(s, fl, fl_n, &flags, &kw, &kc))
		return;
	if (s->readonly) {
		free(kw);
		imap_refuse(s, "NO", "READ-ONLY", "Mailbox is read-only.",
			    "STORE in a read-only mailbox");
		return;
	}
	for (size_t k = 0; k < kc; k++) {
		int bit = mail_view_keyword_bit(s->view, kw[k], true);

		if (bit < 0) {
			free(kw);
			imap_refuse(s, "NO", "LIMIT", "Too many keywords.",
				    "keyword limit reached");
			return;
		}
		kwbits |= (uint64_t)1 << bit;
	}
	free(kw);
	if (imap_seqset_parse(a->v[0].str, a->v[0].len, &set, &err) < 0) {
		imap_refuse(s, "BAD", NULL, "Invalid sequence set.",
			    "STORE syntax");
		return;
	}
	if (!imap_mailbox_resolve_set(s, &set, a->uid)) {
		imap_seqset_free(&set);
		return;
	}
	for (imap_seqset_iter_init(&it, &set);
	     imap_seqset_iter_next(&it, &n);) {
		size_t seq0 = a->uid ? mail_view_find_uid(s->view, n) : n - 1;
		const struct mail_msg *m;
		enum mail_status st;

		if (seq0 >= mail_view_count(s->view) ||
		    mail_view_msg(s->view, seq0)->expunged)
			continue;
		st = mail_view_store(s->view, seq0, mode, flags, kwbits, error,
				     sizeof(error));
		if (st != MAIL_OK && st != MAIL_NOT_FOUND) {
			imap_seqset_free(&set);
			log_warn("session=%s user=%s: STORE: %s",
				 conn_id(s->conn), s->user, error);
			imap_refuse(s, "NO", "SERVERBUG",
				    "Flags could not be stored.", error);
			return;
		}
		if (silent || st != MAIL_OK)
			continue;
		m = mail_view_msg(s->view, seq0);
		imap_mailbox_format_flags(s, m, out, sizeof(out));
		if (a->uid)
			conn_printf(s->conn,
				    "* %zu FETCH (UID %u FLAGS (%s))\r\n",
				    seq0 + 1, m->uid, out);
		else
			conn_printf(s->conn, "* %zu FETCH (FLAGS (%s))\r\n",
				    seq0 + 1, out);
	}
	imap_seqset_free(&set);
	imap_reply_tagged(s, "OK", NULL, "STORE completed.");
}
