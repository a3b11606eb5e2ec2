#include "proto/smtp/smtp_session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/srs.h"
#include "lib/xmalloc.h"
#include "proto/common/login_policy.h"

/* Wire bytes of a body handled per step: the output needs at most twice
 * that (smtp_data_out_max). */
#define SMTP_BODY_CHUNK (16 * 1024)

static void smtp_on_readable(void *arg);
static void smtp_on_drain(void *arg);
static void smtp_on_timeout(void *arg);
static void smtp_on_shutdown(void *arg);
static void smtp_on_close(void *arg, const char *reason);
static void smtp_refuse_long_line(struct smtp_session *s);
static void smtp_process_input(struct smtp_session *s);
static bool smtp_tls_hello_on_plaintext(struct smtp_session *s);
static bool smtp_read_body(struct smtp_session *s);
static void smtp_body_output(struct smtp_session *s, const char *data,
			     size_t len);
static void smtp_spool_write(struct smtp_session *s, const char *data,
			     size_t len);
static void smtp_header_out(void *ctx, const char *data, size_t len);
static void smtp_header_end(void *ctx, bool have_message_id, bool have_date);
static void smtp_commit_done(void *ctx, int err, const char *error,
			     const char *queue_id);
static void smtp_new_id(struct smtp_session *s);
static void smtp_forward_sender(struct smtp_session *s, char *out,
				size_t out_size);
static bool smtp_has_forward(const struct smtp_txn *t);
static void smtp_storage_failed(struct smtp_session *s, int err,
				const char *what, const char *error);
static void smtp_vreply(struct smtp_session *s, char *text_r, size_t size,
			const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void smtp_vrefuse(struct smtp_session *s, bool count, const char *cause,
			 const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static const struct conn_handler smtp_handler = {
    .on_readable = smtp_on_readable,
    .on_drain = smtp_on_drain,
    .on_timeout = smtp_on_timeout,
    .on_shutdown = smtp_on_shutdown,
    .on_close = smtp_on_close,
};

static const char *const smtp_mode_names[] = {
    [SMTP_MODE_COMMAND] = "command",
    [SMTP_MODE_DATA] = "data",
    [SMTP_MODE_BDAT] = "bdat",
};

void smtp_session_start(struct conn *conn, struct proto_env *env)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	enum listen_proto proto = conn_proto(conn);

	s->conn = conn;
	s->env = env;
	s->mode = SMTP_MODE_COMMAND;
	s->submission =
	    proto == LISTEN_SUBMISSION || proto == LISTEN_SUBMISSIONS;
	s->txn.pending.maildir_fd = -1;
	conn_set_timeout(conn, env->cfg->timeout_smtp);
	conn_set_input_limit(conn, CONN_INPUT_MAX_PREAUTH);
	conn_start(conn, &smtp_handler, s);
	smtp_new_id(s);
	smtp_reply(s, "220 %s ESMTP postd ready", env->cfg->hostname);
	log_debug("connect peer=%s session=%s proto=%s", conn_peer(conn),
		  conn_id(conn), config_proto_name(proto));
}

static void smtp_new_id(struct smtp_session *s)
{
	unsigned char rnd[6];

	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(s->id, sizeof(s->id), rnd, sizeof(rnd));
}

void smtp_session_enter_mode(struct smtp_session *s, enum smtp_mode mode)
{
	log_debug("session=%s mode %s -> %s", conn_id(s->conn),
		  smtp_mode_names[s->mode], smtp_mode_names[mode]);
	s->mode = mode;
	/* A body streams through: a bigger input buffer means fewer
	 * wake-ups. Commands get the small one back. */
	conn_set_input_limit(s->conn,
			     mode == SMTP_MODE_COMMAND && !s->authenticated
				 ? CONN_INPUT_MAX_PREAUTH
				 : CONN_INPUT_MAX);
}

/* One reply line, cut at 600 octets (RFC 5321 allows 512 with CRLF;
 * none of ours comes near). The text sent is left in text_r when given. */
static void smtp_vreply(struct smtp_session *s, char *text_r, size_t size,
			const char *fmt, va_list ap)
{
	char text[SMTP_REPLY_MAX];

	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		text[0] = '\0';
	conn_printf(s->conn, "%s\r\n", text);
	if (text_r != NULL)
		snprintf(text_r, size, "%s", text);
}

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vreply(s, NULL, 0, fmt, ap);
	va_end(ap);
}

/* The reply, its log line, and the error count (count: the client's
 * fault, not the server's). */
static void smtp_vrefuse(struct smtp_session *s, bool count, const char *cause,
			 const char *fmt, va_list ap)
{
	char text[SMTP_REPLY_MAX], logged[SMTP_REPLY_MAX * 4 + 1];

	smtp_vreply(s, text, sizeof(text), fmt, ap);
	/* The reply may quote an address the client sent (INV-S2). */
	if (cause == NULL)
		cause = log_escape(logged, sizeof(logged), text, strlen(text));
	smtp_session_log_refusal(s, cause);
	if (count && ++s->errors >= SMTP_MAX_ERRORS &&
	    !conn_is_closing(s->conn)) {
		smtp_reply(s,
			   "421 4.7.0 %s Too many errors, closing "
			   "connection",
			   s->env->cfg->hostname);
		smtp_session_log_refusal(s, "too many errors");
		conn_close(s->conn, "too many errors");
	}
}

void smtp_reply_error(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vrefuse(s, true, NULL, fmt, ap);
	va_end(ap);
}

void smtp_refuse(struct smtp_session *s, const char *cause, const char *fmt,
		 ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vrefuse(s, true, cause, fmt, ap);
	va_end(ap);
}

void smtp_tempfail(struct smtp_session *s, const char *cause, const char *fmt,
		   ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vrefuse(s, false, cause, fmt, ap);
	va_end(ap);
}

/* The one format every refusal is logged in, for POP3 and SMTP alike
 * (doc/troubleshooting.md quotes it). cause holds nothing unescaped
 * from the network. */
void smtp_session_log_refusal(struct smtp_session *s, const char *cause)
{
	char user[AUTH_MAX_USER * 4 + 1];

	log_escape(user, sizeof(user), s->user_typed, strlen(s->user_typed));
	log_info("refused peer=%s session=%s proto=%s user=%s cause=%s",
		 conn_peer(s->conn), conn_id(s->conn),
		 config_proto_name(conn_proto(s->conn)),
		 s->authenticated ? s->user : (user[0] ? user : "-"), cause);
}

bool smtp_session_plaintext_allowed(const struct smtp_session *s)
{
	return login_plaintext_allowed(s->conn, s->env->cfg);
}

/* RFC 4954: AUTH is offered on submission; on port 25 only if the
 * configuration asks; never where it would send passwords in clear. */
bool smtp_session_auth_offered(const struct smtp_session *s)
{
	if (!s->submission && !s->env->cfg->smtp_auth)
		return false;
	return smtp_session_plaintext_allowed(s);
}

void smtp_session_drop(struct smtp_session *s, const char *cause,
		       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vreply(s, NULL, 0, fmt, ap);
	va_end(ap);
	smtp_session_log_refusal(s, cause);
	conn_close(s->conn, cause);
}

bool smtp_session_in_sync(struct smtp_session *s, const char *after)
{
	char cause[128];

	if (conn_input_pending(s->conn) == 0)
		return true;
	/* Exim drops such clients, Postfix too
	 * (smtpd_forbid_unauth_pipelining): a client that does not wait
	 * for the reply may have sent a message body, or plaintext meant
	 * for after TLS, that must never be read as commands (INV-S1). */
	snprintf(cause, sizeof(cause),
		 "pipelining sync error: %zu octets sent after %s before its "
		 "reply",
		 conn_input_pending(s->conn), after);
	smtp_session_drop(s, cause,
			  "554 5.5.0 %s Synchronization error: data sent "
			  "before the reply to %s; closing connection",
			  s->env->cfg->hostname, after);
	return false;
}

/*
 * ALPACA-style cross-protocol: a TLS ClientHello (a handshake record,
 * 0x16 0x03) on a plaintext port where a command should start. No SMTP
 * command starts with 0x16, so one reply and the connection closes.
 */
static bool smtp_tls_hello_on_plaintext(struct smtp_session *s)
{
	size_t len;
	const unsigned char *p =
	    (const unsigned char *)conn_input_peek(s->conn, &len);

	if (conn_is_tls(s->conn) || p == NULL || len < 2 || p[0] != 0x16 ||
	    p[1] != 0x03)
		return false;
	smtp_session_drop(s,
			  "cross-protocol: TLS handshake on a plaintext port",
			  "554 5.7.0 %s TLS handshake on a plaintext SMTP "
			  "port; use STARTTLS; closing connection",
			  s->env->cfg->hostname);
	return true;
}

void smtp_session_set_busy(struct smtp_session *s, bool busy)
{
	s->busy = busy;
	if (busy) {
		conn_pause_input(s->conn);
		return;
	}
	conn_resume_input(s->conn);
	if (!s->in_input_loop && !conn_is_closing(s->conn) &&
	    conn_input_pending(s->conn) > 0)
		smtp_process_input(s);
}

void smtp_txn_reset(struct smtp_session *s)
{
	struct smtp_txn *t = &s->txn;

	for (size_t i = 0; i < t->rcpt_count; i++) {
		if (t->rcpts[i].maildir_fd >= 0)
			close(t->rcpts[i].maildir_fd);
	}
	if (t->pending.maildir_fd >= 0)
		close(t->pending.maildir_fd);
	free(t->rcpts);
	if (t->msg != NULL)
		spool_msg_abort(&t->msg);
	free(t->header);
	/* A commit in progress completes on its own (INV-D1): only its
	 * reply is no longer wanted. */
	spool_forget(&t->job);
	memset(t, 0, sizeof(*t));
	t->pending.maildir_fd = -1;
}

/* The cause names the caps from postd_limits.h, never copies of them. */
static void smtp_refuse_long_line(struct smtp_session *s)
{
	char cause[80];

	snprintf(cause, sizeof(cause),
		 "line too long (over %d octets, AUTH %d)",
		 SMTP_MAX_COMMAND_LINE, SASL_MAX_RESPONSE_LINE);
	smtp_refuse(s, cause, "500 5.5.2 Line too long");
}

static void smtp_process_input(struct smtp_session *s)
{
	char line[SASL_MAX_RESPONSE_LINE + 1];

	s->in_input_loop = true;
	/* Replies that the client does not read stop the reading of its
	 * commands (resumed from on_drain): output stays bounded. */
	while (!s->busy && !conn_is_closing(s->conn) &&
	       !conn_output_full(s->conn)) {
		size_t len = 0;
		int r;

		if (s->mode != SMTP_MODE_COMMAND) {
			if (!smtp_read_body(s))
				break;
			continue;
		}
		if (smtp_tls_hello_on_plaintext(s))
			break;
		/* The parser enforces 512 octets for commands; AUTH lines may
		 * be longer (RFC 4954), up to the input buffer. */
		r = conn_read_line(s->conn, line, sizeof(line),
				   SASL_MAX_RESPONSE_LINE - 2, &len);
		if (r == 0)
			break;
		if (r < 0) {
			s->sasl = SMTP_SASL_NONE;
			smtp_refuse_long_line(s);
			continue;
		}
		if (s->sasl != SMTP_SASL_NONE)
			smtp_commands_sasl_continue(s, line, len);
		else
			smtp_commands_dispatch(s, line, len);
		OPENSSL_cleanse(line, len);
		/* A 334 prompt went out: the client must wait for it. The
		 * prompt is queued already, so the 554 follows it. */
		if (s->sasl != SMTP_SASL_NONE && !s->busy &&
		    !conn_is_closing(s->conn) &&
		    !smtp_session_in_sync(s, "an AUTH prompt"))
			break;
	}
	s->in_input_loop = false;
}

/*
 * Moves one step of body bytes from the connection to the spool. Returns
 * false when it needs more input (or the session is now busy).
 */
static bool smtp_read_body(struct smtp_session *s)
{
	static char out[2 * SMTP_BODY_CHUNK + 8];
	struct smtp_txn *t = &s->txn;
	size_t avail, consumed = 0, out_len = 0;
	const char *in = conn_input_peek(s->conn, &avail);
	int done;

	if (in == NULL) {
		/* "BDAT 0 LAST" needs no bytes to complete. */
		if (s->mode != SMTP_MODE_BDAT || t->bdat.remaining != 0)
			return false;
		in = "";
		avail = 0;
	}
	if (avail > SMTP_BODY_CHUNK)
		avail = SMTP_BODY_CHUNK;
	if (s->mode == SMTP_MODE_DATA)
		done = smtp_data_feed(&t->data, in, avail, &consumed, out,
				      sizeof(out), &out_len);
	else
		done = smtp_bdat_feed(&t->bdat, in, avail, &consumed, out,
				      sizeof(out), &out_len);
	conn_input_consume(s->conn, consumed);
	if (out_len > 0 && !t->bdat_bogus)
		smtp_body_output(s, out, out_len);
	if (!done)
		return consumed > 0;
	smtp_session_enter_mode(s, SMTP_MODE_COMMAND);
	if (t->bdat_bogus) {
		/* RFC 3030 section 2: a refused BDAT's chunk is read and
		 * dropped, then refused. */
		t->bdat_bogus = false;
		t->bdat_started = false;
		memset(&t->bdat, 0, sizeof(t->bdat));
		smtp_reply_error(s, "503 5.5.1 Bad sequence of commands: "
				    "MAIL and RCPT first");
		return true;
	}
	if (t->bdat_started && !t->bdat.done) {
		smtp_reply(s, "250 2.0.0 %llu octets received",
			   (unsigned long long)t->chunk_size);
		return true;
	}
	smtp_session_message_end(s);
	return true;
}

static void smtp_spool_write(struct smtp_session *s, const char *data,
			     size_t len)
{
	struct smtp_txn *t = &s->txn;
	const char *error;

	if (t->msg == NULL || t->write_error != NULL || len == 0)
		return;
	if (spool_msg_write(t->msg, data, len, &error) < 0) {
		t->write_errno = errno;
		t->write_error = error;
	}
}

/* Body bytes after dot-unstuffing: through the header checks of a
 * submission, then to the spool. */
static void smtp_body_output(struct smtp_session *s, const char *data,
			     size_t len)
{
	if (s->txn.header != NULL)
		smtp_header_feed(s->txn.header, data, len);
	else
		smtp_spool_write(s, data, len);
}

/* The header scanner's output goes to the spool. */
static void smtp_header_out(void *ctx, const char *data, size_t len)
{
	smtp_spool_write(ctx, data, len);
}

/*
 * RFC 6409 section 8: the submission server adds a missing Message-ID:
 * and Date: where the header section ends. An MTA (port 25) passes the
 * message on as it came.
 */
static void smtp_header_end(void *ctx, bool have_message_id, bool have_date)
{
	struct smtp_session *s = ctx;
	char line[300];

	if (!s->submission)
		return;
	if (!have_message_id) {
		snprintf(line, sizeof(line), "Message-ID: <%s.%ld@%s>\r\n",
			 s->id, (long)time(NULL), s->env->cfg->hostname);
		smtp_spool_write(s, line, strlen(line));
	}
	if (!have_date) {
		time_t now = time(NULL);
		struct tm tm;

		localtime_r(&now, &tm);
		strftime(line, sizeof(line),
			 "Date: %a, %d %b %Y %H:%M:%S %z\r\n", &tm);
		smtp_spool_write(s, line, strlen(line));
	}
}

int smtp_session_message_begin(struct smtp_session *s)
{
	struct smtp_txn *t = &s->txn;
	char date[64], hdr[1400];
	const char *error;
	time_t now = time(NULL);
	struct tm tm;
	int dir_fd = -1;

	for (size_t i = 0; i < t->rcpt_count && dir_fd < 0; i++) {
		if (t->rcpts[i].local)
			dir_fd = t->rcpts[i].maildir_fd;
	}
	if (dir_fd < 0)
		dir_fd = s->env->queue_fd;
	t->msg = spool_msg_begin(dir_fd, &error);
	if (t->msg == NULL) {
		smtp_storage_failed(s, errno, "cannot start a message", error);
		return -1;
	}
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* Return-Path at final delivery (RFC 5321 section 4.4); a relay
	 * skips it (spool_target.skip). */
	snprintf(hdr, sizeof(hdr), "Return-Path: <%s>\r\n", t->sender);
	smtp_spool_write(s, hdr, strlen(hdr));
	/* RFC 5321 section 4.4 trace; RFC 3848 protocol names. */
	snprintf(hdr, sizeof(hdr),
		 "Received: from %s ([%s])\r\n"
		 "\tby %s (postd) with %s%s%s id %s%s%s%s;\r\n"
		 "\t%s\r\n",
		 s->helo[0] ? s->helo : "unknown", conn_peer(s->conn),
		 s->env->cfg->hostname, s->esmtp ? "ESMTP" : "SMTP",
		 conn_is_tls(s->conn) && s->esmtp ? "S" : "",
		 s->authenticated && s->esmtp ? "A" : "", s->id,
		 conn_is_tls(s->conn) ? " (" : "",
		 conn_is_tls(s->conn) ? conn_tls_version(s->conn) : "",
		 conn_is_tls(s->conn) ? ")" : "", date);
	smtp_spool_write(s, hdr, strlen(hdr));
	/* Every listener counts Received: fields (a mail loop); a
	 * submission also checks From: and adds Message-ID: and Date:. */
	t->header = xmalloc(sizeof(*t->header));
	smtp_header_init(
	    t->header,
	    s->submission && s->env->cfg->sender_login_match ? s->user : NULL,
	    smtp_header_out, smtp_header_end, s);
	return 0;
}

void smtp_session_message_end(struct smtp_session *s)
{
	struct smtp_txn *t = &s->txn;
	struct spool_target target;
	int *fds;
	const char **remote, **forward;
	size_t nfd = 0, nremote = 0, nforward = 0;
	char srs_sender[SRS_MAX_ADDRESS];
	const char *refusal = t->refusal;
	const struct smtp_content *content =
	    t->bdat_started ? &t->bdat.content : &t->data.content;
	char cause[300];

	if (t->header != NULL)
		smtp_header_finish(t->header);
	if (refusal == NULL)
		refusal = smtp_content_refusal(content);
	if (refusal == NULL && t->header != NULL &&
	    t->header->received_count > s->env->cfg->max_received_headers) {
		/* Postfix's hopcount_limit: a message that went round this
		 * often is looping; bounce it rather than pass it on. */
		snprintf(cause, sizeof(cause),
			 "mail loop: %u Received headers (max_received_headers "
			 "%u)",
			 t->header->received_count,
			 s->env->cfg->max_received_headers);
		smtp_refuse(s, cause,
			    "554 5.4.6 Too many Received headers: mail loop");
		smtp_txn_reset(s);
		return;
	}
	if (refusal == NULL && t->header != NULL && t->header->user != NULL &&
	    t->header->from_mismatch)
		refusal = "553 5.7.1 The From: header is not your own "
			  "address";
	if (refusal == NULL && t->write_error != NULL) {
		smtp_storage_failed(s, t->write_errno, "writing a message",
				    t->write_error);
		smtp_txn_reset(s);
		return;
	}
	if (refusal != NULL) {
		char detail[96] = "";

		if (t->refusal == NULL &&
		    smtp_content_refused_for_long_line(content))
			snprintf(detail, sizeof(detail),
				 " (a line over %zu octets, "
				 "smtp_max_line_length)",
				 content->max_line);
		snprintf(cause, sizeof(cause), "message refused: %s%s", refusal,
			 detail);
		smtp_refuse(s, cause, "%s", refusal);
		smtp_txn_reset(s);
		return;
	}
	fds = xcalloc(t->rcpt_count, sizeof(*fds));
	remote = xcalloc(t->rcpt_count, sizeof(*remote));
	forward = xcalloc(t->rcpt_count, sizeof(*forward));
	smtp_forward_sender(s, srs_sender, sizeof(srs_sender));
	for (size_t i = 0; i < t->rcpt_count; i++) {
		if (t->rcpts[i].local)
			fds[nfd++] = t->rcpts[i].maildir_fd;
		else if (t->rcpts[i].forwarded &&
			 strcmp(srs_sender, t->sender) != 0)
			forward[nforward++] = t->rcpts[i].addr;
		else
			remote[nremote++] = t->rcpts[i].addr;
	}
	memset(&target, 0, sizeof(target));
	target.maildir_fds = fds;
	target.maildir_count = nfd;
	target.queue_fd = nremote + nforward > 0 ? s->env->queue_fd : -1;
	target.sender = t->sender;
	target.remote_rcpts = remote;
	target.remote_count = nremote;
	/* One file, two queue entries: the body is the same octets for
	 * both (a DKIM signature on it stays valid); only the envelope
	 * differs. The Return-Path line both skip is the original's. */
	target.forward_sender = srs_sender;
	target.forward_rcpts = forward;
	target.forward_count = nforward;
	target.skip = strlen("Return-Path: <>\n") + strlen(t->sender);
	t->job =
	    spool_commit(s->env->spool, &t->msg, &target, smtp_commit_done, s);
	free(fds);
	free(remote);
	free(forward);
	smtp_session_set_busy(s, true);
}

/*
 * The reverse-path for forwarded recipients (doc/internals/srs.md): the
 * null sender stays null (a bounce is never bounced), and so does a
 * sender of one of our own domains (our SPF record covers it already);
 * others become SRS0 (SRS1 if they were SRS already) at srs_domain, so
 * that SPF at the destination checks us and a bounce comes back here.
 * If that is impossible (over 64 octets, a quoted local part, no key)
 * the sender is kept and one line says why.
 */
static void smtp_forward_sender(struct smtp_session *s, char *out,
				size_t out_size)
{
	const struct smtp_txn *t = &s->txn;
	const char *at = strrchr(t->sender, '@');
	char domain[SMTP_MAX_DOMAIN + 1], logged[SMTP_MAILBOX_BUF_SIZE * 4];
	enum srs_result r;

	snprintf(out, out_size, "%s", t->sender);
	if (t->sender[0] == '\0' || at == NULL)
		return;
	snprintf(domain, sizeof(domain), "%s", at + 1);
	ascii_lowercase(domain);
	if (config_is_local_domain(s->env->cfg, domain) || !smtp_has_forward(t))
		return;
	r = s->env->srs == NULL ? SRS_NO_SECRET
				: srs_forward(s->env->srs, t->sender,
					      config_srs_domain(s->env->cfg),
					      time(NULL), out, out_size);
	if (r == SRS_OK)
		return;
	snprintf(out, out_size, "%s", t->sender);
	log_warn("srs session=%s id=%s from=<%s>: not rewritten (%s): "
		 "forwarded copies keep the original sender",
		 conn_id(s->conn), s->id,
		 log_escape_word(logged, sizeof(logged), t->sender),
		 srs_result_name(r));
}

static bool smtp_has_forward(const struct smtp_txn *t)
{
	for (size_t i = 0; i < t->rcpt_count; i++)
		if (t->rcpts[i].forwarded)
			return true;
	return false;
}

/* INV-D1: the 250 goes out only now, with the message on disk. */
static void smtp_commit_done(void *ctx, int err, const char *error,
			     const char *queue_id)
{
	struct smtp_session *s = ctx;
	struct smtp_txn *t = &s->txn;

	t->job = NULL;
	if (err != 0) {
		smtp_storage_failed(s, err, "storing a message", error);
	} else {
		uint64_t size = t->bdat_started ? t->bdat.content.size
						: t->data.content.size;
		char sender[SMTP_MAILBOX_BUF_SIZE * 4];

		/* A quoted local part may hold spaces and '=': escaped, it
		 * cannot pose as more fields of the line. */
		log_escape_word(sender, sizeof(sender), t->sender);

		log_info("received session=%s id=%s peer=%s proto=%s user=%s "
			 "from=<%s> rcpts=%zu local=%zu queued=%s size=%llu",
			 conn_id(s->conn), s->id, conn_peer(s->conn),
			 config_proto_name(conn_proto(s->conn)),
			 s->authenticated ? s->user : "-", sender,
			 t->rcpt_count, t->local_count,
			 queue_id != NULL ? queue_id : "-",
			 (unsigned long long)size);
		smtp_reply(s, "250 2.0.0 OK id=%s", s->id);
		metrics_add(METRIC_MESSAGES_RECEIVED, 1);
		metrics_add(METRIC_BYTES_RECEIVED, size);
		s->messages++;
	}
	smtp_txn_reset(s);
	smtp_new_id(s);
	smtp_session_set_busy(s, false);
}

/*
 * The disk refused a message (INV-D1): 452 4.3.1 when it is full or the
 * quota is used up (the client retries later), else 451 4.3.0; one log
 * line that names the errno so the admin knows which.
 */
static void smtp_storage_failed(struct smtp_session *s, int err,
				const char *what, const char *error)
{
	char cause[400];
	const char *kind = err == ENOSPC   ? "disk full (ENOSPC)"
			   : err == EDQUOT ? "over quota (EDQUOT)"
					   : "storage error";

	snprintf(cause, sizeof(cause), "%s: %s: %s", kind, what,
		 error != NULL ? error : strerror(err));
	if (err == ENOSPC || err == EDQUOT)
		smtp_tempfail(s, cause,
			      "452 4.3.1 Insufficient system storage");
	else
		smtp_tempfail(s, cause,
			      "451 4.3.0 Local error in processing; try again "
			      "later");
}

static void smtp_on_readable(void *arg)
{
	smtp_process_input(arg);
}

static void smtp_on_drain(void *arg)
{
	struct smtp_session *s = arg;

	if (!s->busy && !s->in_input_loop && conn_input_pending(s->conn) > 0)
		smtp_process_input(s);
}

static void smtp_on_timeout(void *arg)
{
	struct smtp_session *s = arg;

	char cause[64];

	smtp_reply(s, "421 4.4.2 %s Timeout, closing connection",
		   s->env->cfg->hostname);
	snprintf(cause, sizeof(cause), "idle timeout (%u s without input)",
		 s->env->cfg->timeout_smtp);
	smtp_session_log_refusal(s, cause);
	conn_close(s->conn, "idle timeout");
}

static void smtp_on_shutdown(void *arg)
{
	struct smtp_session *s = arg;

	/* A message not yet acknowledged is dropped; the client retries.
	 * One being committed finishes in the spool's thread. */
	smtp_reply(s, "421 4.3.2 %s Service shutting down",
		   s->env->cfg->hostname);
	smtp_session_log_refusal(s, "server shutting down");
	conn_close(s->conn, "server shutting down");
}

static void smtp_on_close(void *arg, const char *reason)
{
	struct smtp_session *s = arg;

	auth_client_cancel(&s->auth_req);
	smtp_txn_reset(s);
	log_debug("disconnect peer=%s session=%s messages=%u reason=%s",
		  conn_peer(s->conn), conn_id(s->conn), s->messages, reason);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}
