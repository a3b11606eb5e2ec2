/*
 * The POP3 connection, where pop3_commands.c runs commands and
 * pop3_policy.c decides what a login leads to: the session's state,
 * replies, the input loop, and the resumable RETR/TOP/LIST/UIDL jobs.
 */
#include "proto/pop3/pop3_session.h"

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
#include "lib/postd_assert.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "proto/common/login_policy.h"
#include "proto/pop3/pop3_commands.h"

/* Bytes of a message file read per step of a RETR job. */
#define POP3_READ_CHUNK (64 * 1024)

static void pop3_on_readable(void *arg);
static void pop3_on_drain(void *arg);
static void pop3_on_timeout(void *arg);
static void pop3_on_shutdown(void *arg);
static void pop3_on_close(void *arg, const char *reason);
static void pop3_refuse_long_line(struct pop3_session *s);
static void pop3_process_input(struct pop3_session *s);
static void pop3_reply_vline(struct pop3_session *s, const char *status,
			     const char *fmt, va_list ap);
static bool pop3_job_message_step(struct pop3_session *s);
static bool pop3_job_listing_step(struct pop3_session *s);
static void pop3_job_end(struct pop3_session *s);

static const struct conn_handler pop3_handler = {
    .on_readable = pop3_on_readable,
    .on_drain = pop3_on_drain,
    .on_timeout = pop3_on_timeout,
    .on_shutdown = pop3_on_shutdown,
    .on_close = pop3_on_close,
};

static const char *const pop3_state_names[] = {
    [POP3_STATE_AUTHORIZATION] = "AUTHORIZATION",
    [POP3_STATE_TRANSACTION] = "TRANSACTION",
    [POP3_STATE_UPDATE] = "UPDATE",
};

void pop3_session_start(struct conn *conn, struct proto_env *env)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));

	s->conn = conn;
	s->env = env;
	s->state = POP3_STATE_AUTHORIZATION;
	s->maildir_fd = -1;
	s->job.fd = -1;
	conn_set_timeout(conn, env->cfg->timeout_preauth);
	conn_set_input_limit(conn, CONN_INPUT_MAX_PREAUTH);
	conn_start(conn, &pop3_handler, s);
	if (env->cfg->apop) {
		/* RFC 1939 section 7: a unique timestamp per greeting. */
		unsigned char rnd[8];
		char hex[17];

		randombytes_buf(rnd, sizeof(rnd));
		sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
		snprintf(s->apop_challenge, sizeof(s->apop_challenge),
			 "<%ld.%s@%s>", (long)time(NULL), hex,
			 env->cfg->hostname);
		pop3_reply_ok(s, "postd ready. %s", s->apop_challenge);
	} else {
		pop3_reply_ok(s, "postd ready.");
	}
	log_debug("connect peer=%s session=%s proto=%s tls=%s", conn_peer(conn),
		  conn_id(conn), config_proto_name(conn_proto(conn)),
		  conn_is_tls(conn) ? "implicit" : "no");
}

void pop3_session_enter_state(struct pop3_session *s, enum pop3_state state)
{
	/* RFC 1939: AUTHORIZATION, then TRANSACTION, then UPDATE; never
	 * back, never a step skipped (INV-P1: UPDATE only from TRANSACTION). */
	POSTD_ASSERT((unsigned)state == (unsigned)s->state + 1 &&
		     state <= POP3_STATE_UPDATE);
	log_debug("session=%s state %s -> %s", conn_id(s->conn),
		  pop3_state_names[s->state], pop3_state_names[state]);
	s->state = state;
}

static void pop3_reply_vline(struct pop3_session *s, const char *status,
			     const char *fmt, va_list ap)
{
	char text[512];
	int n = vsnprintf(text, sizeof(text), fmt, ap);

	if (n < 0)
		text[0] = '\0';
	conn_printf(s->conn, "%s%s%s\r\n", status, text[0] ? " " : "", text);
}

void pop3_reply_ok(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pop3_reply_vline(s, "+OK", fmt, ap);
	va_end(ap);
}

void pop3_reply_err(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pop3_reply_vline(s, "-ERR", fmt, ap);
	va_end(ap);
}

void pop3_session_log_refusal(struct pop3_session *s, const char *cause)
{
	char user[AUTH_MAX_USER * 4 + 1];

	log_escape(user, sizeof(user), s->user_typed, strlen(s->user_typed));
	log_info("refused peer=%s session=%s proto=%s user=%s cause=%s",
		 conn_peer(s->conn), conn_id(s->conn),
		 config_proto_name(conn_proto(s->conn)), user[0] ? user : "-",
		 cause);
}

bool pop3_session_plaintext_allowed(const struct pop3_session *s)
{
	return login_plaintext_allowed(s->conn, s->env->cfg);
}

void pop3_session_set_busy(struct pop3_session *s, bool busy)
{
	s->busy = busy;
	if (busy) {
		conn_pause_input(s->conn);
		return;
	}
	conn_resume_input(s->conn);
	/* Pipelined commands may already be buffered (RFC 2449 PIPELINING).
	 * Inside the input loop they are read by that loop: recursing here
	 * would grow the stack with every pipelined command. */
	if (!s->in_input_loop && !conn_is_closing(s->conn) &&
	    conn_input_pending(s->conn) > 0)
		pop3_process_input(s);
}

void pop3_session_close(struct pop3_session *s, const char *reason)
{
	conn_close(s->conn, reason);
}

/* An overlong line, which conn_read_line() has dropped. The cause names
 * the cap from postd_limits.h, never a copy of it. */
static void pop3_refuse_long_line(struct pop3_session *s)
{
	char cause[64];

	if (s->sasl != POP3_SASL_NONE)
		snprintf(cause, sizeof(cause), "SASL line too long");
	else
		snprintf(cause, sizeof(cause), "line too long (over %d octets)",
			 POP3_MAX_COMMAND_LINE);
	s->sasl = POP3_SASL_NONE;
	pop3_reply_err(s, "Line too long.");
	pop3_session_log_refusal(s, cause);
}

static void pop3_process_input(struct pop3_session *s)
{
	/* Room for the longest line any state allows. */
	char line[SASL_MAX_RESPONSE_LINE + 1];

	s->in_input_loop = true;
	/* A client that sends commands but never reads the replies stops
	 * being read once its replies fill the output queue (on_drain
	 * goes on): output stays bounded per connection. */
	while (!s->busy && !conn_is_closing(s->conn) &&
	       !conn_output_full(s->conn)) {
		/* The limits count the CRLF; the line read here has none. */
		size_t max = s->sasl != POP3_SASL_NONE
				 ? SASL_MAX_RESPONSE_LINE - 2
				 : POP3_MAX_COMMAND_LINE - 2;
		size_t len = 0;
		int r = conn_read_line(s->conn, line, sizeof(line), max, &len);

		if (r == 0)
			break;
		if (r < 0) {
			pop3_refuse_long_line(s);
			if (++s->bad_commands >= SESSION_MAX_BAD_COMMANDS) {
				pop3_reply_err(s, "Too many bad commands, "
						  "closing.");
				pop3_session_log_refusal(
				    s, "too many bad commands");
				pop3_session_close(s, "too many bad commands");
			}
			continue;
		}
		if (s->sasl != POP3_SASL_NONE)
			pop3_commands_sasl_continue(s, line, len);
		else
			pop3_commands_dispatch(s, line, len);
		OPENSSL_cleanse(line, len);
	}
	s->in_input_loop = false;
}

static void pop3_on_readable(void *arg)
{
	pop3_process_input(arg);
}

static void pop3_on_drain(void *arg)
{
	struct pop3_session *s = arg;

	if (s->job.kind != POP3_JOB_NONE)
		pop3_job_run(s);
	else if (!s->busy && !s->in_input_loop &&
		 conn_input_pending(s->conn) > 0)
		pop3_process_input(s);
}

static void pop3_on_timeout(void *arg)
{
	struct pop3_session *s = arg;
	char cause[96];

	/* In the middle of a multi-line response a status line would be
	 * read as message text: closing without the final "." tells the
	 * client that the response is incomplete. */
	if (s->job.kind == POP3_JOB_NONE)
		pop3_reply_err(s, "Autologout; idle for too long.");
	if (s->state == POP3_STATE_AUTHORIZATION)
		snprintf(cause, sizeof(cause),
			 "idle timeout (timeout_preauth %u s)",
			 s->env->cfg->timeout_preauth);
	else
		snprintf(cause, sizeof(cause),
			 "idle timeout (pop3_idle_timeout %u s)",
			 s->env->cfg->timeout_idle);
	pop3_session_log_refusal(s, cause);
	pop3_session_close(s, "idle timeout");
}

static void pop3_on_shutdown(void *arg)
{
	struct pop3_session *s = arg;

	/* Nothing is deleted: deletions happen only after QUIT (INV-P1). */
	if (s->job.kind == POP3_JOB_NONE)
		pop3_reply_err(s, "[SYS/TEMP] Server shutting down; try again "
				  "shortly.");
	if (s->state == POP3_STATE_AUTHORIZATION)
		pop3_session_log_refusal(s, "server shutting down");
	pop3_session_close(s, "server shutting down");
}

static void pop3_on_close(void *arg, const char *reason)
{
	struct pop3_session *s = arg;

	auth_client_cancel(&s->auth_req);
	pop3_job_end(s);
	if (s->state != POP3_STATE_AUTHORIZATION) {
		log_info("logout user=%s peer=%s session=%s proto=%s "
			 "retrieved=%u deleted=%zu bytes=%llu reason=%s",
			 s->user, conn_peer(s->conn), conn_id(s->conn),
			 config_proto_name(conn_proto(s->conn)), s->retrieved,
			 s->state == POP3_STATE_UPDATE ? s->marks.deleted_count
						       : (size_t)0,
			 (unsigned long long)s->bytes_sent, reason);
	} else {
		log_debug("disconnect peer=%s session=%s reason=%s",
			  conn_peer(s->conn), conn_id(s->conn), reason);
	}
	/* INV-P1: a session that did not reach UPDATE removes nothing;
	 * closing the mailbox only releases the lock. */
	mailbox_close(&s->box);
	if (s->maildir_fd >= 0)
		close(s->maildir_fd);
	free(s->marks.deleted);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

/* Jobs: long responses written in steps, resumed on drain. */

void pop3_job_run(struct pop3_session *s)
{
	bool done;

	while (!conn_output_full(s->conn) && !conn_is_closing(s->conn)) {
		if (s->job.kind == POP3_JOB_MESSAGE)
			done = pop3_job_message_step(s);
		else if (s->job.kind == POP3_JOB_LISTING)
			done = pop3_job_listing_step(s);
		else
			return;
		if (done) {
			pop3_job_end(s);
			pop3_session_set_busy(s, false);
			return;
		}
	}
}

static void pop3_job_end(struct pop3_session *s)
{
	if (s->job.fd >= 0)
		close(s->job.fd);
	s->job.fd = -1;
	s->job.kind = POP3_JOB_NONE;
}

/* One chunk of RETR/TOP. Returns true when the response is complete. */
static bool pop3_job_message_step(struct pop3_session *s)
{
	char in[POP3_READ_CHUNK];
	ssize_t n;
	size_t out_len;
	char *out;

	n = s->job.wire.done ? 0 : read(s->job.fd, in, sizeof(in));
	if (n < 0) {
		if (errno == EINTR)
			return false;
		/* The "+OK" is out already: all we can do is drop the
		 * connection so the client does not take a short message
		 * for a whole one. */
		log_error("session=%s user=%s: reading message %zu: %s",
			  conn_id(s->conn), s->user, s->job.msg + 1,
			  strerror(errno));
		pop3_session_close(s, "I/O error reading a message");
		return true;
	}
	if (n > 0) {
		out = conn_reserve(s->conn, 2 * (size_t)n);
		out_len = msg_wire_convert(&s->job.wire, in, (size_t)n, out);
		conn_commit(s->conn, out_len);
		s->bytes_sent += out_len;
		metrics_add(METRIC_BYTES_RETRIEVED, out_len);
		if (!s->job.wire.done)
			return false;
	}
	out = conn_reserve(s->conn, 8);
	out_len = msg_wire_finish(&s->job.wire, out);
	memcpy(out + out_len, ".\r\n", 3);
	conn_commit(s->conn, out_len + 3);
	if (s->job.whole) {
		metrics_add(METRIC_MESSAGES_RETRIEVED, 1);
		s->retrieved++;
		mailbox_mark_retrieved(s->box, s->job.msg, time(NULL));
	}
	return true;
}

/* Up to 64 lines of LIST/UIDL. Returns true when complete. */
static bool pop3_job_listing_step(struct pop3_session *s)
{
	size_t count = mailbox_count(s->box);

	for (int lines = 0; lines < 64 && s->job.next < count; lines++) {
		size_t i = s->job.next++;
		const struct mailbox_msg *m = mailbox_msg(s->box, i);

		if (s->marks.deleted[i])
			continue;
		if (s->job.listing == POP3_LISTING_LIST)
			conn_printf(s->conn, "%zu %llu\r\n", i + 1,
				    (unsigned long long)m->size);
		else
			conn_printf(s->conn, "%zu %s\r\n", i + 1, m->uidl);
	}
	if (s->job.next < count)
		return false;
	conn_write(s->conn, ".\r\n", 3);
	return true;
}
