/*
 * The IMAP connection, where imap_commands*.c run commands: the session's
 * state, replies and refusal logging, and the command collector, which
 * reads a command's lines and literals (answering "+" to synchronising
 * literals, streaming APPEND data into the store) and hands the whole
 * command to the parser (doc/internals/imap.md).
 */
#include "proto/imap/imap_session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lib/log.h"
#include "lib/postd_assert.h"
#include "lib/xmalloc.h"
#include "proto/common/login_policy.h"
#include "proto/imap/imap_commands.h"
#include "proto/imap/imap_mailbox.h"
#include "proto/imap/imap_parse.h"

static void imap_on_readable(void *arg);
static void imap_on_drain(void *arg);
static void imap_on_timeout(void *arg);
static void imap_on_shutdown(void *arg);
static void imap_on_close(void *arg, const char *reason);
static void imap_process_input(struct imap_session *s);
static bool imap_read_literal(struct imap_session *s);
static void imap_collect_line(struct imap_session *s, const char *line,
			      size_t len);
static void imap_literal_announced(struct imap_session *s,
				   const struct imap_literal_ann *ann);
static void imap_command_reset(struct imap_session *s);
static void imap_refuse_long_line(struct imap_session *s);
static void imap_count_bad(struct imap_session *s);
static size_t imap_line_max(const struct imap_session *s);
static size_t imap_command_max(const struct imap_session *s);
static size_t imap_command_max_for(const struct imap_session *s,
				   const char *line, size_t len);
static bool imap_is_id_command(const char *line, size_t len);
static void imap_read_tag(const char *line, size_t len, char *tag, size_t size);

static const struct conn_handler imap_handler = {
    .on_readable = imap_on_readable,
    .on_drain = imap_on_drain,
    .on_timeout = imap_on_timeout,
    .on_shutdown = imap_on_shutdown,
    .on_close = imap_on_close,
};

static const char *const imap_state_names[] = {
    [IMAP_STATE_NOT_AUTH] = "not-authenticated",
    [IMAP_STATE_AUTH] = "authenticated",
    [IMAP_STATE_SELECTED] = "selected",
    [IMAP_STATE_LOGOUT] = "logout",
};
_Static_assert(POSTD_N_ELEMENTS(imap_state_names) == IMAP_STATE_LOGOUT + 1,
	       "imap_state_names[] needs one name per enum imap_state value");

void imap_session_start(struct conn *conn, struct proto_env *env)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	char caps[512];

	s->conn = conn;
	s->env = env;
	s->state = IMAP_STATE_NOT_AUTH;
	s->maildir_fd = -1;
	s->folder_fd = -1;
	s->cmd = buf_new(IMAP_MAX_COMMAND);
	conn_set_timeout(conn, env->cfg->timeout_preauth);
	/* A line must fit in the input buffer (conn_read_line()). */
	conn_set_input_limit(conn, IMAP_MAX_ID_COMMAND + 2);
	conn_start(conn, &imap_handler, s);
	/* RFC 9051 7.1.1: the greeting may carry the capabilities, which
	 * saves clients a round trip. */
	imap_session_capabilities(s, caps, sizeof(caps));
	conn_printf(conn, "* OK [CAPABILITY %s] postd ready.\r\n", caps);
	log_debug("connect peer=%s session=%s proto=%s tls=%s", conn_peer(conn),
		  conn_id(conn), config_proto_name(conn_proto(conn)),
		  conn_is_tls(conn) ? "implicit" : "no");
}

void imap_session_enter_state(struct imap_session *s, enum imap_state state)
{
	/* RFC 9051 3: login only forward; selected and authenticated
	 * alternate; logout is the end. */
	POSTD_ASSERT(state != IMAP_STATE_NOT_AUTH &&
		     (s->state != IMAP_STATE_NOT_AUTH ||
		      state == IMAP_STATE_AUTH || state == IMAP_STATE_LOGOUT) &&
		     s->state != IMAP_STATE_LOGOUT);
	log_debug("session=%s state %s -> %s", conn_id(s->conn),
		  imap_state_names[s->state], imap_state_names[state]);
	s->state = state;
}

void imap_session_authenticated(struct imap_session *s)
{
	conn_set_timeout(s->conn, IMAP_TIMEOUT_AUTHENTICATED);
	conn_set_input_limit(s->conn, IMAP_MAX_LINE + 2);
}

void imap_session_capabilities(const struct imap_session *s, char *out,
			       size_t size)
{
	bool auth = s->state == IMAP_STATE_NOT_AUTH;
	int n;

	/* RFC 7888: before login only LITERAL- (non-synchronising
	 * literals up to 4096 octets), after it LITERAL+. */
	n = snprintf(out, size, "IMAP4rev1 IMAP4rev2 %s SASL-IR ID ENABLE",
		     auth ? "LITERAL-" : "LITERAL+");
	if (auth && !conn_is_tls(s->conn) && s->env->ssl_ctx != NULL)
		n += snprintf(out + n, size - (size_t)n, " STARTTLS");
	if (auth && !imap_session_plaintext_allowed(s))
		n += snprintf(out + n, size - (size_t)n, " LOGINDISABLED");
	else if (auth)
		n += snprintf(out + n, size - (size_t)n,
			      " AUTH=PLAIN AUTH=LOGIN");
	if (!auth)
		imap_commands_capabilities(s, out + n, size - (size_t)n);
}

static void imap_reply_vline(struct imap_session *s, const char *tag,
			     const char *status, const char *code,
			     const char *fmt, va_list ap)
{
	conn_printf(s->conn, "%s %s %s%s%s", tag, status, code ? "[" : "",
		    code ? code : "", code ? "] " : "");
	conn_vprintf(s->conn, fmt, ap);
	conn_write(s->conn, "\r\n", 2);
}

void imap_reply_tagged(struct imap_session *s, const char *status,
		       const char *code, const char *fmt, ...)
{
	va_list ap;

	/* RFC 9051 7.5: what other sessions changed is told before the
	 * command completes. */
	if (s->state == IMAP_STATE_SELECTED && strcmp(status, "OK") == 0)
		imap_mailbox_sync(s, s->allow_expunge);

	va_start(ap, fmt);
	imap_reply_vline(s, s->tag[0] ? s->tag : "*", status, code, fmt, ap);
	va_end(ap);
}

void imap_reply_untagged(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	conn_write(s->conn, "* ", 2);
	va_start(ap, fmt);
	conn_vprintf(s->conn, fmt, ap);
	va_end(ap);
	conn_write(s->conn, "\r\n", 2);
}

void imap_session_log_refusal(struct imap_session *s, const char *cause)
{
	char user[AUTH_MAX_USER * 4 + 1];
	const char *who = s->user[0] ? s->user : s->user_typed;

	log_escape(user, sizeof(user), who, strlen(who));
	log_info("refused peer=%s session=%s proto=%s user=%s cause=%s",
		 conn_peer(s->conn), conn_id(s->conn),
		 config_proto_name(conn_proto(s->conn)), user[0] ? user : "-",
		 cause);
}

void imap_refuse(struct imap_session *s, const char *status, const char *code,
		 const char *reply, const char *cause)
{
	imap_reply_tagged(s, status, code, "%s", reply);
	imap_session_log_refusal(s, cause);
	if (strcmp(status, "BAD") == 0)
		imap_count_bad(s);
}

/* Too many BADs in a row: a client that does not speak IMAP. */
static void imap_count_bad(struct imap_session *s)
{
	if (++s->bad_commands < SESSION_MAX_BAD_COMMANDS)
		return;
	imap_reply_untagged(s, "BYE Too many bad commands, closing.");
	imap_session_log_refusal(s, "too many bad commands");
	imap_session_close(s, "too many bad commands");
}

bool imap_session_plaintext_allowed(const struct imap_session *s)
{
	return login_plaintext_allowed(s->conn, s->env->cfg);
}

void imap_session_set_busy(struct imap_session *s, bool busy)
{
	s->busy = busy;
	if (busy) {
		conn_pause_input(s->conn);
		return;
	}
	conn_resume_input(s->conn);
	/* Pipelined commands may already be buffered; inside the input
	 * loop they are read by that loop, not by recursing here. */
	if (!s->in_input_loop && !conn_is_closing(s->conn) &&
	    conn_input_pending(s->conn) > 0)
		imap_process_input(s);
}

void imap_session_close(struct imap_session *s, const char *reason)
{
	conn_close(s->conn, reason);
}

/* Before login a line may be as long as an ID command; whether it is one
 * is known once it is read (imap_command_max()). */
static size_t imap_line_max(const struct imap_session *s)
{
	return s->state == IMAP_STATE_NOT_AUTH ? IMAP_MAX_ID_COMMAND
					       : IMAP_MAX_LINE;
}

/* The command being collected (its first line is in s->cmd, or is line
 * when s->cmd is empty) may be this long. */
static size_t imap_command_max_for(const struct imap_session *s,
				   const char *line, size_t len)
{
	if (s->state != IMAP_STATE_NOT_AUTH)
		return IMAP_MAX_COMMAND;
	if (buf_len(s->cmd) > 0) {
		line = buf_data(s->cmd);
		len = buf_len(s->cmd);
	}
	return imap_is_id_command(line, len) ? IMAP_MAX_ID_COMMAND
					     : IMAP_MAX_LINE_PREAUTH;
}

static size_t imap_command_max(const struct imap_session *s)
{
	return imap_command_max_for(s, "", 0);
}

/* "TAG ID ..." (any case), the one command allowed long before login. */
static bool imap_is_id_command(const char *line, size_t len)
{
	const char *sp = memchr(line, ' ', len);
	size_t rest;

	if (sp == NULL)
		return false;
	rest = len - (size_t)(sp + 1 - line);
	return rest >= 2 && strncasecmp(sp + 1, "ID", 2) == 0 &&
	       (rest == 2 || sp[3] == ' ');
}

/* The tag of a command line (for a reply to a command that cannot be
 * parsed or collected): the leading run of tag characters, else "*". */
static void imap_read_tag(const char *line, size_t len, char *tag, size_t size)
{
	size_t n = 0;

	while (n < len && n + 1 < size && line[n] > ' ' && line[n] < 0x7f &&
	       strchr("(){%*\"\\+", line[n]) == NULL)
		n++;
	if (n == 0 || n == len || line[n] != ' ') {
		snprintf(tag, size, "*");
		return;
	}
	memcpy(tag, line, n);
	tag[n] = '\0';
}

static void imap_command_reset(struct imap_session *s)
{
	OPENSSL_cleanse((void *)buf_data(s->cmd), buf_len(s->cmd));
	/* A large command's memory is not kept for the session's life. */
	if (buf_len(s->cmd) > 16 * 1024) {
		buf_free(&s->cmd);
		s->cmd = buf_new(IMAP_MAX_COMMAND);
	} else {
		buf_clear(s->cmd);
	}
	s->literal_left = 0;
	s->sink = IMAP_LITERAL_COMMAND;
}

/* An overlong line, which conn_read_line() has dropped through its end:
 * its tail is never read as a command (INV-S1). */
static void imap_refuse_long_line(struct imap_session *s)
{
	char cause[96];

	if (s->sasl == IMAP_SASL_NONE && buf_len(s->cmd) == 0 && !s->idling)
		snprintf(s->tag, sizeof(s->tag), "*");
	snprintf(cause, sizeof(cause), "line too long (over %zu octets)",
		 imap_line_max(s));
	if (s->sasl != IMAP_SASL_NONE || buf_len(s->cmd) > 0 || s->idling ||
	    s->sink != IMAP_LITERAL_COMMAND) {
		/* The command it belonged to is void. */
		imap_commands_abort(s);
	}
	imap_command_reset(s);
	imap_refuse(s, "BAD", "LIMIT", "Line too long.", cause);
	s->tag[0] = '\0';
}

static void imap_process_input(struct imap_session *s)
{
	/* One line buffer per process: sessions run one at a time and the
	 * loop never recurses (in_input_loop). */
	static char line[IMAP_MAX_LINE + 1];
	_Static_assert(IMAP_MAX_ID_COMMAND <= IMAP_MAX_LINE,
		       "a pre-login ID line fits the line buffer");

	s->in_input_loop = true;
	/* A client that sends commands but never reads the replies stops
	 * being read once its replies fill the output queue. */
	while (!s->busy && !conn_is_closing(s->conn) &&
	       !conn_output_full(s->conn)) {
		size_t len = 0;
		int r;

		if (s->literal_left > 0) {
			if (!imap_read_literal(s))
				break;
			continue;
		}
		r = conn_read_line(s->conn, line, sizeof(line),
				   imap_line_max(s), &len);
		if (r == 0)
			break;
		if (r < 0) {
			imap_refuse_long_line(s);
			continue;
		}
		if (s->sasl != IMAP_SASL_NONE)
			imap_commands_sasl_continue(s, line, len);
		else if (s->idling)
			imap_commands_idle_line(s, line, len);
		else
			imap_collect_line(s, line, len);
		OPENSSL_cleanse(line, len);
	}
	s->in_input_loop = false;
}

/* Reads what has arrived of the current literal. False when nothing more
 * is buffered. */
static bool imap_read_literal(struct imap_session *s)
{
	size_t avail;
	const char *data = conn_input_peek(s->conn, &avail);

	if (data == NULL || avail == 0)
		return false;
	if (avail > s->literal_left)
		avail = (size_t)s->literal_left;
	switch (s->sink) {
	case IMAP_LITERAL_COMMAND:
		/* Checked against the command cap when announced. */
		POSTD_ASSERT(buf_append(s->cmd, data, avail) == 0);
		break;
	case IMAP_LITERAL_APPEND:
		imap_commands_append_data(s, data, avail);
		break;
	case IMAP_LITERAL_DISCARD:
		break;
	}
	conn_input_consume(s->conn, avail);
	s->literal_left -= avail;
	if (s->literal_left == 0 && s->sink == IMAP_LITERAL_APPEND)
		imap_commands_append_end(s);
	return true;
}

/* One line of a command: the first, or the rest after a literal. */
static void imap_collect_line(struct imap_session *s, const char *line,
			      size_t len)
{
	struct imap_literal_ann ann;
	int r;

	if (buf_len(s->cmd) == 0 && s->sink == IMAP_LITERAL_COMMAND) {
		if (len == 0)
			return; /* an empty line is no command: ignore it */
		imap_read_tag(line, len, s->tag, sizeof(s->tag));
	}
	if (s->sink == IMAP_LITERAL_APPEND || s->sink == IMAP_LITERAL_DISCARD) {
		/* The line after an APPEND's message (or a refused
		 * literal): more messages or parts (RFC 3502, RFC 4469),
		 * or the end of the command. */
		if (imap_commands_append_finish(s, line, len))
			return;
		imap_command_reset(s);
		s->tag[0] = '\0';
		return;
	}
	if (buf_len(s->cmd) + len > imap_command_max_for(s, line, len) ||
	    buf_append(s->cmd, line, len) < 0) {
		imap_command_reset(s);
		imap_refuse(s, "BAD", "LIMIT", "Command too long.",
			    "command too long");
		s->tag[0] = '\0';
		return;
	}
	r = imap_line_literal(line, len, &ann);
	if (r < 0) {
		imap_command_reset(s);
		imap_refuse(s, "BAD", NULL, "Invalid literal.",
			    "malformed literal announcement");
		s->tag[0] = '\0';
		return;
	}
	if (r > 0) {
		imap_literal_announced(s, &ann);
		return;
	}
	imap_commands_dispatch(s, buf_data(s->cmd), buf_len(s->cmd));
	imap_command_reset(s);
}

/*
 * A literal was announced. LITERAL- before login (non-synchronising
 * literals up to IMAP_MAX_NONSYNC_LITERAL), LITERAL+ after it (up to the
 * command cap); an APPEND's message goes to the store instead. A refused
 * synchronising literal is never sent by the client (no "+"); a refused
 * non-synchronising one is on its way and cannot be told apart from
 * commands, so the connection ends (RFC 7888 section 4).
 */
static void imap_literal_announced(struct imap_session *s,
				   const struct imap_literal_ann *ann)
{
	size_t room = imap_command_max(s) - buf_len(s->cmd);
	bool fits;

	if (s->state != IMAP_STATE_NOT_AUTH &&
	    imap_commands_append_begin(s, ann))
		return; /* APPEND took the literal (or refused it) */
	/* room: the literal and the CRLF after its announcement */
	fits = room >= 2 && ann->size <= room - 2 &&
	       (!ann->nonsync || s->state != IMAP_STATE_NOT_AUTH ||
		ann->size <= IMAP_MAX_NONSYNC_LITERAL);
	if (!fits && ann->nonsync) {
		char cause[128];

		snprintf(cause, sizeof(cause),
			 "non-synchronising literal of %llu octets over the "
			 "cap",
			 (unsigned long long)ann->size);
		imap_reply_tagged(s, "BAD", "LIMIT", "Literal too large.");
		imap_reply_untagged(s, "BYE [LIMIT] Literal too large; "
				       "closing.");
		imap_session_log_refusal(s, cause);
		imap_command_reset(s);
		imap_session_close(s, "literal too large");
		return;
	}
	if (!fits) {
		char cause[128];

		snprintf(cause, sizeof(cause),
			 "literal of %llu octets over the command cap",
			 (unsigned long long)ann->size);
		imap_command_reset(s);
		imap_refuse(s, "BAD", "LIMIT", "Literal too large.", cause);
		s->tag[0] = '\0';
		return;
	}
	POSTD_ASSERT(buf_append(s->cmd, "\r\n", 2) == 0);
	if (!ann->nonsync)
		conn_printf(s->conn, "+ Ready for literal data\r\n");
	s->sink = IMAP_LITERAL_COMMAND;
	s->literal_left = ann->size;
}

static void imap_on_readable(void *arg)
{
	imap_process_input(arg);
}

static void imap_on_drain(void *arg)
{
	struct imap_session *s = arg;

	if (s->job != NULL)
		imap_commands_job_run(s);
	else if (!s->busy && !s->in_input_loop &&
		 conn_input_pending(s->conn) > 0)
		imap_process_input(s);
}

static void imap_on_timeout(void *arg)
{
	struct imap_session *s = arg;
	char cause[96];

	/* In the middle of a FETCH literal a BYE would be read as message
	 * text: closing tells the client the response is incomplete. */
	if (s->job == NULL)
		imap_reply_untagged(s, "BYE Autologout; idle for too long.");
	if (s->state == IMAP_STATE_NOT_AUTH)
		snprintf(cause, sizeof(cause),
			 "idle timeout (timeout_preauth %u s)",
			 s->env->cfg->timeout_preauth);
	else
		snprintf(cause, sizeof(cause), "idle timeout (%d s)",
			 IMAP_TIMEOUT_AUTHENTICATED);
	imap_session_log_refusal(s, cause);
	imap_session_close(s, "idle timeout");
}

static void imap_on_shutdown(void *arg)
{
	struct imap_session *s = arg;

	if (s->job == NULL)
		imap_reply_untagged(s, "BYE [UNAVAILABLE] Server shutting "
				       "down; try again shortly.");
	if (s->state == IMAP_STATE_NOT_AUTH)
		imap_session_log_refusal(s, "server shutting down");
	imap_session_close(s, "server shutting down");
}

static void imap_on_close(void *arg, const char *reason)
{
	struct imap_session *s = arg;

	auth_client_cancel(&s->auth_req);
	if (s->user[0] != '\0' && s->state != IMAP_STATE_NOT_AUTH) {
		log_info("logout user=%s peer=%s session=%s proto=%s "
			 "fetched=%u bytes=%llu reason=%s",
			 s->user, conn_peer(s->conn), conn_id(s->conn),
			 config_proto_name(conn_proto(s->conn)), s->fetched,
			 (unsigned long long)s->bytes_sent, reason);
	} else {
		log_debug("disconnect peer=%s session=%s reason=%s",
			  conn_peer(s->conn), conn_id(s->conn), reason);
	}
	imap_commands_session_end(s);
	if (s->maildir_fd >= 0)
		close(s->maildir_fd);
	imap_command_reset(s);
	buf_free(&s->cmd);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}
