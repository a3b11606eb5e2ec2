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
#include "proto/imap/imap_fetch.h"
#include "proto/imap/imap_fetch_parse.h"
#include "proto/imap/imap_mailbox.h"
#include "storage/msg_wire.h"

/* FETCH does not load a message file over 2 GiB (the size FETCH can
 * count in a literal without doubt). */
#define FETCH_MAX_MESSAGE ((uint64_t)1 << 31)

struct imap_job {
	struct imap_fetch fetch; /* parsed by imap_fetch_parse.h */
	bool uid;
	struct imap_seqset set;
	struct imap_seqset_iter it;
};

static void fetch_job_free(struct imap_job **job);
static bool fetch_asks_modseq(const struct imap_fetch *fetch);
static void store_modified_add(struct imap_seqset *set, uint32_t n);
static void store_reply_condstore(struct imap_session *s, size_t seq0,
				  const struct mail_msg *m, bool uid,
				  bool silent, const char *flags);
static void fetch_message(struct imap_session *s, struct imap_job *job,
			  size_t seq0);
static struct mime_msg *fetch_mime(struct imap_session *s, size_t seq0,
				   const char *wire, size_t len);
static void fetch_write_literal(struct imap_session *s, const char *data,
				size_t len, bool binary);

static void fetch_job_free(struct imap_job **jobp)
{
	struct imap_job *job = *jobp;

	if (job == NULL)
		return;
	imap_fetch_free(&job->fetch);
	imap_seqset_free(&job->set);
	free(job);
	*jobp = NULL;
}

char *imap_fetch_load_wire(struct mail_view *view, size_t seq0, uint64_t max,
			   size_t *len_r)
{
	char error[256], in[65536];
	struct msg_wire w;
	struct stat st;
	size_t len = 0, cap;
	char *out;
	ssize_t n;
	int fd = mail_view_msg_open(view, seq0, error, sizeof(error));

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || st.st_size < 0 ||
	    (uint64_t)st.st_size > max) {
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
	/* As the index counts RFC822.SIZE (msg_wire_size_fd()): a last line
	 * without its end gets a CRLF. */
	len += msg_wire_finish(&w, out + len);
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
	char *wire = NULL, flags[IMAP_FLAGS_SIZE], date[IMAP_DATETIME_SIZE + 1];
	struct mime_msg *msg = NULL;
	size_t wire_len = 0;
	bool first = true, seen_now = false, flags_asked = false,
	     modseq_asked = false;
	struct buf *tmp = NULL;

	if (job->fetch.needs_message) {
		wire = imap_fetch_load_wire(s->view, seq0, FETCH_MAX_MESSAGE,
					    &wire_len);
		if (wire == NULL)
			return; /* expunged meanwhile: RFC 9051 allows
				 * leaving it out */
		msg = fetch_mime(s, seq0, wire, wire_len);
		if (msg == NULL) {
			free(wire);
			return;
		}
	}
	if (job->fetch.sets_seen && !s->readonly && !(m->flags & MAIL_SEEN)) {
		char error[256];

		if (mail_view_store(s->view, seq0, MAIL_STORE_ADD, MAIL_SEEN, 0,
				    error, sizeof(error)) == MAIL_OK)
			seen_now = true;
		m = mail_view_msg(s->view, seq0);
		if (m == NULL) {	 /* the index was rebuilt under us: */
			mime_free(&msg); /* left out, as if expunged */
			free(wire);
			return;
		}
	}
	imap_mailbox_tell_keywords(s);
	conn_printf(s->conn, "* %zu FETCH (", seq0 + 1);
#define SEP() (first ? (first = false, "") : " ")
	for (size_t i = 0; i < job->fetch.count; i++) {
		const struct imap_fetch_att *it = &job->fetch.atts[i];
		size_t off = 0, len = 0;

		switch (it->item) {
		case IMAP_FETCH_FLAGS:
			flags_asked = true;
			imap_mailbox_format_flags(s, m, flags, sizeof(flags));
			conn_printf(s->conn, "%sFLAGS (%s)", SEP(), flags);
			break;
		case IMAP_FETCH_UID:
			conn_printf(s->conn, "%sUID %u", SEP(), m->uid);
			break;
		case IMAP_FETCH_MODSEQ:
			modseq_asked = true;
			conn_printf(s->conn, "%sMODSEQ (%llu)", SEP(),
				    (unsigned long long)m->modseq);
			break;
		case IMAP_FETCH_INTERNALDATE:
			if (imap_datetime_format(m->internaldate, 0, date,
						 sizeof(date)) < 0)
				snprintf(date, sizeof(date),
					 "01-Jan-1970 00:00:00 +0000");
			conn_printf(s->conn, "%sINTERNALDATE \"%s\"", SEP(),
				    date);
			break;
		case IMAP_FETCH_RFC822_SIZE:
			conn_printf(
			    s->conn, "%sRFC822.SIZE %llu", SEP(),
			    (unsigned long long)(wire ? wire_len : m->size));
			break;
		case IMAP_FETCH_ENVELOPE:
		case IMAP_FETCH_BODY:
		case IMAP_FETCH_BODYSTRUCTURE:
			tmp = buf_new(64 * 1024 * 1024);
			/* mime writes the envelope's fields; the list
			 * around them is ours (RFC 9051 7.5.2) */
			if (it->item == IMAP_FETCH_ENVELOPE) {
				buf_append_str(tmp, "(");
				mime_write_envelope(msg, wire, tmp);
				buf_append_str(tmp, ")");
			} else
				mime_write_bodystructure(
				    msg, wire,
				    it->item == IMAP_FETCH_BODYSTRUCTURE, tmp);
			conn_printf(s->conn, "%s%s ", SEP(), it->label);
			conn_write(s->conn, buf_data(tmp), buf_len(tmp));
			buf_free(&tmp);
			break;
		case IMAP_FETCH_RFC822:
		case IMAP_FETCH_RFC822_HEADER:
		case IMAP_FETCH_RFC822_TEXT:
		case IMAP_FETCH_BODY_SECTION:
			conn_printf(s->conn, "%s%s ", SEP(), it->label);
			if (it->section.kind == MIME_SECTION_HEADER_FIELDS ||
			    it->section.kind ==
				MIME_SECTION_HEADER_FIELDS_NOT) {
				tmp = buf_new(MIME_MAX_HEADER_BYTES + 4);
				mime_section_fields(msg, wire, &it->section,
						    tmp);
				off = 0;
				len = buf_len(tmp);
			} else if (mime_section_range(msg, &it->section, &off,
						      &len) < 0) {
				off = len = 0;
			}
			{
				const char *base =
				    tmp ? buf_data(tmp) : wire + off;

				if (it->partial) {
					uint64_t o =
					    it->offset < len ? it->offset : len;
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
		case IMAP_FETCH_BINARY:
		case IMAP_FETCH_BINARY_SIZE: {
			int r;

			tmp = buf_new(64 * 1024 * 1024);
			r = mime_binary(msg, wire, it->section.part,
					it->section.depth, tmp);
			if (r == -2) {
				/* RFC 3516: [UNKNOWN-CTE]; the item is
				 * left out of this response. */
				buf_free(&tmp);
				break;
			}
			conn_printf(s->conn, "%s%s ", SEP(), it->label);
			if (it->item == IMAP_FETCH_BINARY_SIZE) {
				conn_printf(s->conn, "%zu", buf_len(tmp));
			} else {
				const char *base = buf_data(tmp);

				len = buf_len(tmp);
				if (it->partial) {
					uint64_t o =
					    it->offset < len ? it->offset : len;
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
	/* RFC 7162 3.2: a flag change is told with its modseq. */
	if (seen_now && s->condstore && !modseq_asked)
		conn_printf(s->conn, "%sMODSEQ (%llu)", SEP(),
			    (unsigned long long)m->modseq);
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
		/* RFC 7162 3.1.4.1: only what changed since. */
		if (job->fetch.changedsince_set &&
		    mail_view_msg(s->view, seq0)->modseq <=
			job->fetch.changedsince)
			continue;
		fetch_message(s, job, seq0);
	}
}

/* MODSEQ or CHANGEDSINCE enable CONDSTORE (RFC 7162 3.1). */
static bool fetch_asks_modseq(const struct imap_fetch *fetch)
{
	for (size_t i = 0; i < fetch->count; i++)
		if (fetch->atts[i].item == IMAP_FETCH_MODSEQ)
			return true;
	return fetch->changedsince_set;
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_args *a)
{
	struct imap_job *job = xcalloc(1, sizeof(*job));
	const char *err = "Invalid FETCH arguments.";
	char cause[160];

	job->uid = a->uid;
	if (a->n < 2 || a->v[0].type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(a->v[0].str, a->v[0].len, &job->set, &err) < 0 ||
	    imap_fetch_parse(a->v + 1, a->n - 1, &job->fetch, &err) < 0) {
		fetch_job_free(&job);
		snprintf(cause, sizeof(cause), "FETCH: %s", err);
		imap_refuse(s, "BAD", NULL, err, cause);
		return;
	}
	/* RFC 9051 6.4.9: UID FETCH answers UID whether asked or not. */
	if (a->uid)
		imap_fetch_ensure_uid(&job->fetch);
	if (!imap_mailbox_resolve_set(s, &job->set, a->uid)) {
		fetch_job_free(&job);
		return;
	}
	if (fetch_asks_modseq(&job->fetch))
		imap_condstore_enable(s);
	imap_seqset_iter_init(&job->it, &job->set);
	s->job = job;
	imap_session_set_busy(s, true);
	imap_commands_job_run(s);
}

void imap_fetch_session_end(struct imap_session *s)
{
	fetch_job_free(&s->job);
}

/* n ascends: consecutive numbers extend the last range. */
static void store_modified_add(struct imap_seqset *set, uint32_t n)
{
	if (set->count > 0 && set->ranges[set->count - 1].hi + 1 == n)
		set->ranges[set->count - 1].hi = n;
	else
		imap_seqset_add(set, n, n);
}

/* With CONDSTORE every stored message is told with its new modseq, even
 * for .SILENT (RFC 7162 3.1.3). */
static void store_reply_condstore(struct imap_session *s, size_t seq0,
				  const struct mail_msg *m, bool uid,
				  bool silent, const char *flags)
{
	char uidpart[32] = "", flagpart[2100] = "";

	if (uid)
		snprintf(uidpart, sizeof(uidpart), "UID %u ", m->uid);
	if (!silent)
		snprintf(flagpart, sizeof(flagpart), "FLAGS (%s) ", flags);
	conn_printf(s->conn, "* %zu FETCH (%s%sMODSEQ (%llu))\r\n", seq0 + 1,
		    uidpart, flagpart, (unsigned long long)m->modseq);
}

/* STORE set [+|-]FLAGS[.SILENT] (flags) */
void imap_cmd_store(struct imap_session *s, const struct imap_args *a)
{
	struct imap_seqset set;
	struct imap_seqset_iter it;
	struct imap_store req;
	enum mail_store_mode mode;
	const char *err = "Invalid STORE arguments.";
	uint32_t flags, n;
	uint64_t kwbits = 0, unchangedsince = 0;
	bool silent, conditional;
	char error[256], out[IMAP_FLAGS_SIZE];
	struct imap_seqset modified;

	memset(&req, 0, sizeof(req));
	if (a->n < 3 || a->v[0].type != IMAP_ARG_ATOM ||
	    imap_store_parse(a->v + 1, a->n - 1, &req, &err) < 0) {
		snprintf(error, sizeof(error), "STORE: %s", err);
		imap_refuse(s, "BAD", NULL, err, error);
		return;
	}
	if (s->readonly) {
		imap_store_free(&req);
		imap_refuse(s, "NO", "READ-ONLY", "Mailbox is read-only.",
			    "STORE in a read-only mailbox");
		return;
	}
	mode = req.mode;
	silent = req.silent;
	conditional = req.unchangedsince_set;
	unchangedsince = req.unchangedsince;
	flags = req.flags.system & ~(uint32_t)MAIL_RECENT;
	for (size_t k = 0; k < req.flags.keyword_count; k++) {
		int bit =
		    mail_view_keyword_bit(s->view, req.flags.keywords[k], true);

		if (bit < 0) {
			imap_store_free(&req);
			imap_refuse(s, "NO", "LIMIT", "Too many keywords.",
				    "keyword limit reached");
			return;
		}
		kwbits |= (uint64_t)1 << bit;
	}
	imap_store_free(&req);
	if (imap_seqset_parse(a->v[0].str, a->v[0].len, &set, &err) < 0) {
		imap_refuse(s, "BAD", NULL, "Invalid sequence set.",
			    "STORE syntax");
		return;
	}
	if (!imap_mailbox_resolve_set(s, &set, a->uid)) {
		imap_seqset_free(&set);
		return;
	}
	if (conditional)
		imap_condstore_enable(s);
	memset(&modified, 0, sizeof(modified));
	for (imap_seqset_iter_init(&it, &set);
	     imap_seqset_iter_next(&it, &n);) {
		size_t seq0 = a->uid ? mail_view_find_uid(s->view, n) : n - 1;
		const struct mail_msg *m;
		enum mail_status st;

		if (seq0 >= mail_view_count(s->view) ||
		    mail_view_msg(s->view, seq0)->expunged)
			continue;
		/* RFC 7162 3.1.3: changed since the client looked: left
		 * alone and reported in MODIFIED. */
		if (conditional &&
		    mail_view_msg(s->view, seq0)->modseq > unchangedsince) {
			store_modified_add(&modified, n);
			continue;
		}
		st = mail_view_store(s->view, seq0, mode, flags, kwbits, error,
				     sizeof(error));
		if (st != MAIL_OK && st != MAIL_NOT_FOUND) {
			imap_seqset_free(&set);
			imap_seqset_free(&modified);
			log_warn("session=%s user=%s: STORE: %s",
				 conn_id(s->conn), s->user, error);
			imap_refuse(s, "NO", "SERVERBUG",
				    "Flags could not be stored.", error);
			return;
		}
		if (st != MAIL_OK || (silent && !s->condstore))
			continue;
		m = mail_view_msg(s->view, seq0);
		if (m == NULL) /* the index was rebuilt under us */
			continue;
		imap_mailbox_tell_keywords(s);
		imap_mailbox_format_flags(s, m, out, sizeof(out));
		if (s->condstore)
			store_reply_condstore(s, seq0, m, a->uid, silent, out);
		else if (a->uid)
			conn_printf(s->conn,
				    "* %zu FETCH (UID %u FLAGS (%s))\r\n",
				    seq0 + 1, m->uid, out);
		else
			conn_printf(s->conn, "* %zu FETCH (FLAGS (%s))\r\n",
				    seq0 + 1, out);
	}
	imap_seqset_free(&set);
	if (modified.count > 0) {
		struct buf *b = buf_new(1024 * 1024);

		imap_seqset_normalize(&modified);
		buf_append_str(b, "MODIFIED ");
		imap_seqset_format(&modified, b);
		imap_seqset_free(&modified);
		imap_reply_tagged(s, "OK", buf_data(b),
				  "Conditional STORE failed.");
		buf_free(&b);
		return;
	}
	imap_seqset_free(&modified);
	imap_reply_tagged(s, "OK", NULL, "STORE completed.");
}
