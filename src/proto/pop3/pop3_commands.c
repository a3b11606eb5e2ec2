/*
 * The POP3 command table and handlers, where pop3_session.c runs the
 * connection and pop3_policy.c decides what a login leads to. A table row
 * carries each command's preconditions (states, plaintext-login policy);
 * the dispatcher refuses a command that breaks them with the right reply,
 * so handlers contain only the action (see doc/hacking.md).
 */
#include "proto/pop3/pop3_commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/postd_assert.h"
#include "proto/common/login_auth.h"
#include "proto/pop3/pop3_policy.h"

#define STATE_AUTH (1u << POP3_STATE_AUTHORIZATION)
#define STATE_TRANS (1u << POP3_STATE_TRANSACTION)

/* The reply to a refused plaintext login (RFC 2595 section 4 and
 * RFC 3206 [AUTH]), worded so that a user knows what to change. */
#define POP3_PLAINTEXT_REFUSED                                                 \
	"[AUTH] Plaintext authentication requires TLS: enable SSL/TLS "        \
	"(STLS or port 995) in your mail client."
#define POP3_AUTH_FAILED "[AUTH] Authentication failed."

static pop3_handler_fn cmd_user, cmd_pass, cmd_apop, cmd_auth, cmd_stls,
    cmd_capa, cmd_quit, cmd_stat, cmd_list, cmd_retr, cmd_dele, cmd_noop,
    cmd_rset, cmd_top, cmd_uidl;

/* Keyed by the enum, so a row cannot slip to another command's index; a
 * missing row is caught by the count check below (the last one) or by
 * tests/unit/test_pop3_commands.c (any other). */
static const struct pop3_command_row pop3_commands[] = {
    [POP3_CMD_USER] = {POP3_CMD_USER, cmd_user, STATE_AUTH, true},
    [POP3_CMD_PASS] = {POP3_CMD_PASS, cmd_pass, STATE_AUTH, true},
    [POP3_CMD_APOP] = {POP3_CMD_APOP, cmd_apop, STATE_AUTH, false},
    [POP3_CMD_AUTH] = {POP3_CMD_AUTH, cmd_auth, STATE_AUTH, false},
    [POP3_CMD_STLS] = {POP3_CMD_STLS, cmd_stls, STATE_AUTH, false},
    [POP3_CMD_CAPA] = {POP3_CMD_CAPA, cmd_capa, STATE_AUTH | STATE_TRANS,
		       false},
    [POP3_CMD_QUIT] = {POP3_CMD_QUIT, cmd_quit, STATE_AUTH | STATE_TRANS,
		       false},
    [POP3_CMD_STAT] = {POP3_CMD_STAT, cmd_stat, STATE_TRANS, false},
    [POP3_CMD_LIST] = {POP3_CMD_LIST, cmd_list, STATE_TRANS, false},
    [POP3_CMD_RETR] = {POP3_CMD_RETR, cmd_retr, STATE_TRANS, false},
    [POP3_CMD_DELE] = {POP3_CMD_DELE, cmd_dele, STATE_TRANS, false},
    [POP3_CMD_NOOP] = {POP3_CMD_NOOP, cmd_noop, STATE_TRANS, false},
    [POP3_CMD_RSET] = {POP3_CMD_RSET, cmd_rset, STATE_TRANS, false},
    [POP3_CMD_TOP] = {POP3_CMD_TOP, cmd_top, STATE_TRANS, false},
    [POP3_CMD_UIDL] = {POP3_CMD_UIDL, cmd_uidl, STATE_TRANS, false},
};
_Static_assert(POSTD_N_ELEMENTS(pop3_commands) == POP3_CMD_COUNT,
	       "pop3_commands[] needs one row per enum pop3_cmd value");

static void pop3_sasl_error(struct pop3_session *s, const char *error);
static void pop3_bad_command(struct pop3_session *s, const char *reply);
static bool pop3_check_msg(struct pop3_session *s, uint32_t msg);
static void pop3_auth_submit(struct pop3_session *s, const char *authzid,
			     const char *authcid, size_t authcid_len,
			     const char *password, size_t password_len);
static void pop3_auth_request(struct pop3_session *s, uint8_t type,
			      const char *secret, size_t secret_len);
static void pop3_auth_done(const struct auth_reply *reply, void *ctx);
static void pop3_login_failed(struct pop3_session *s, const char *cause);
static void pop3_stls_done(void *ctx, bool ok);
static void pop3_set_user(struct pop3_session *s, const char *name, size_t len);
static void pop3_start_message(struct pop3_session *s, uint32_t msg,
			       int64_t body_lines);
static void pop3_start_listing(struct pop3_session *s, int listing);

const struct pop3_command_row *pop3_commands_table(size_t *count_r)
{
	*count_r = POSTD_N_ELEMENTS(pop3_commands);
	return pop3_commands;
}

void pop3_commands_dispatch(struct pop3_session *s, char *line, size_t len)
{
	struct pop3_command cmd;
	const struct pop3_command_row *row;
	const char *error;

	if (pop3_parse_command(line, len, &cmd, &error) != POP3_PARSE_OK) {
		pop3_bad_command(s, error);
		return;
	}
	row = &pop3_commands[cmd.cmd];
	/* The input loop reads no command while one is unfinished. */
	POSTD_ASSERT(!s->busy && row->cmd == cmd.cmd);
	if ((row->states & (1u << s->state)) == 0) {
		pop3_bad_command(s, s->state == POP3_STATE_AUTHORIZATION
					? "Command not valid in this state: "
					  "log in first."
					: "Command not valid in this "
					  "state.");
		return;
	}
	if (row->plaintext_login && !pop3_session_plaintext_allowed(s)) {
		pop3_reply_err(s, POP3_PLAINTEXT_REFUSED);
		pop3_session_log_refusal(s, "plaintext login without TLS");
		return;
	}
	s->bad_commands = 0;
	row->handler(s, &cmd);
}

/* reply is a constant text (never network bytes): it is also the cause
 * in the log. */
static void pop3_bad_command(struct pop3_session *s, const char *reply)
{
	pop3_reply_err(s, "%s", reply);
	pop3_session_log_refusal(s, reply);
	if (++s->bad_commands >= SESSION_MAX_BAD_COMMANDS) {
		pop3_reply_err(s, "Too many bad commands, closing.");
		pop3_session_log_refusal(s, "too many bad commands");
		pop3_session_close(s, "too many bad commands");
	}
}

/* Message numbers are 1-based and refer to the snapshot (INV-P2). */
static bool pop3_check_msg(struct pop3_session *s, uint32_t msg)
{
	if (msg == 0 || msg > mailbox_count(s->box)) {
		pop3_reply_err(s, "No such message.");
		return false;
	}
	if (s->marks.deleted[msg - 1]) {
		pop3_reply_err(s, "Message %u already deleted.", msg);
		return false;
	}
	return true;
}

/* AUTHORIZATION */

static void pop3_set_user(struct pop3_session *s, const char *name, size_t len)
{
	login_auth_set_user(name, len, s->env->cfg->auth_default_domain,
			    s->user_typed, s->user);
}

static void cmd_user(struct pop3_session *s, const struct pop3_command *cmd)
{
	pop3_set_user(s, cmd->text, cmd->text_len);
	s->have_user = true;
	pop3_reply_ok(s, "Send your password.");
}

static void cmd_pass(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!s->have_user) {
		pop3_bad_command(s, "Send USER first.");
		return;
	}
	s->have_user = false;
	s->mech = "USER";
	pop3_auth_request(s, AUTH_REQUEST_PASSWORD, cmd->text, cmd->text_len);
}

static void cmd_apop(struct pop3_session *s, const struct pop3_command *cmd)
{
	char digest[33];

	if (!s->env->cfg->apop) {
		pop3_bad_command(s, "APOP is not enabled on this server.");
		return;
	}
	pop3_set_user(s, cmd->text, cmd->text_len);
	memcpy(digest, cmd->arg2, 32);
	digest[32] = '\0';
	ascii_lowercase(digest);
	s->mech = "APOP";
	pop3_auth_request(s, AUTH_REQUEST_APOP, digest, 32);
}

static void cmd_auth(struct pop3_session *s, const struct pop3_command *cmd)
{
	enum sasl_mech mech;

	if (cmd->text == NULL) {
		/* RFC 1734's bare AUTH lists the mechanisms; Outlook asks. */
		if (pop3_session_plaintext_allowed(s))
			conn_printf(s->conn, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
		else
			conn_printf(s->conn, "+OK\r\n.\r\n");
		return;
	}
	mech = sasl_mech_from_name(cmd->text);
	if (mech == SASL_MECH_UNKNOWN) {
		char name[64], cause[160];

		/* Outlook's "Secure Password Authentication" asks for NTLM
		 * (0x800CCC18 in doc/troubleshooting.md). */
		log_escape_word(name, sizeof(name), cmd->text);
		snprintf(cause, sizeof(cause),
			 "unsupported SASL mechanism %s (only PLAIN and LOGIN "
			 "are offered)",
			 name);
		pop3_reply_err(s, "Unsupported authentication mechanism.");
		pop3_session_log_refusal(s, cause);
		return;
	}
	if (!pop3_session_plaintext_allowed(s)) {
		pop3_reply_err(s, POP3_PLAINTEXT_REFUSED);
		pop3_session_log_refusal(s, "plaintext login without TLS");
		return;
	}
	s->mech = sasl_mech_name(mech);
	if (mech == SASL_MECH_PLAIN) {
		if (cmd->arg2 != NULL) {
			pop3_commands_sasl_continue(s, (char *)cmd->arg2,
						    cmd->arg2_len);
			return;
		}
		s->sasl = POP3_SASL_PLAIN_RESPONSE;
		conn_printf(s->conn, "+ \r\n");
		return;
	}
	s->sasl = POP3_SASL_LOGIN_USER;
	if (cmd->arg2 != NULL) {
		pop3_commands_sasl_continue(s, (char *)cmd->arg2,
					    cmd->arg2_len);
		return;
	}
	conn_printf(s->conn, "+ VXNlcm5hbWU6\r\n"); /* "Username:" */
}

/* A SASL response that does not decode: RFC 3206 [AUTH], and it counts
 * as a bad command. */
static void pop3_sasl_error(struct pop3_session *s, const char *error)
{
	char reply[160];

	snprintf(reply, sizeof(reply), "[AUTH] %s", error);
	pop3_bad_command(s, reply);
}

void pop3_commands_sasl_continue(struct pop3_session *s, char *line, size_t len)
{
	struct sasl_credentials creds;
	const char *error;
	enum pop3_sasl_step step = s->sasl;

	s->sasl = POP3_SASL_NONE;
	if (sasl_is_cancel(line)) {
		pop3_reply_err(s, "[AUTH] Authentication cancelled.");
		pop3_session_log_refusal(s, "authentication cancelled by the "
					    "client");
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		pop3_bad_command(s, "[AUTH] Invalid base64 data.");
		return;
	}
	switch (step) {
	case POP3_SASL_NONE: /* AUTH PLAIN with an initial response */
	case POP3_SASL_PLAIN_RESPONSE:
		if (sasl_plain_decode(line, len, &creds, &error) < 0) {
			pop3_sasl_error(s, error);
			return;
		}
		pop3_auth_submit(s, creds.authzid, creds.authcid,
				 strlen(creds.authcid), creds.password,
				 strlen(creds.password));
		OPENSSL_cleanse(&creds, sizeof(creds));
		return;
	case POP3_SASL_LOGIN_USER:
		if (sasl_login_decode(line, len, creds.authcid,
				      sizeof(creds.authcid), &error) < 0) {
			pop3_sasl_error(s, error);
			return;
		}
		pop3_set_user(s, creds.authcid, strlen(creds.authcid));
		s->sasl = POP3_SASL_LOGIN_PASS;
		conn_printf(s->conn, "+ UGFzc3dvcmQ6\r\n"); /* "Password:" */
		return;
	case POP3_SASL_LOGIN_PASS:
		if (sasl_login_decode(line, len, creds.password,
				      sizeof(creds.password), &error) < 0) {
			pop3_sasl_error(s, error);
			return;
		}
		pop3_auth_request(s, AUTH_REQUEST_PASSWORD, creds.password,
				  strlen(creds.password));
		OPENSSL_cleanse(&creds, sizeof(creds));
		return;
	}
}

static void pop3_auth_submit(struct pop3_session *s, const char *authzid,
			     const char *authcid, size_t authcid_len,
			     const char *password, size_t password_len)
{
	pop3_set_user(s, authcid, authcid_len);
	if (!login_auth_authzid_ok(authzid, s->user,
				   s->env->cfg->auth_default_domain)) {
		pop3_reply_err(s, "[AUTH] The authorization identity must be "
				  "empty or your own user name.");
		pop3_session_log_refusal(s, "authzid differs from authcid");
		return;
	}
	pop3_auth_request(s, AUTH_REQUEST_PASSWORD, password, password_len);
}

static void pop3_auth_request(struct pop3_session *s, uint8_t type,
			      const char *secret, size_t secret_len)
{
	s->auth_req =
	    login_auth_send(s->env->auth, s->conn, type, s->user, secret,
			    secret_len, s->apop_challenge, pop3_auth_done, s);
	if (s->auth_req == NULL) {
		pop3_reply_err(s, "[SYS/TEMP] Authentication service "
				  "unavailable; try again later.");
		pop3_session_log_refusal(s, "auth process unavailable");
		return;
	}
	pop3_session_set_busy(s, true);
}

static void pop3_login_failed(struct pop3_session *s, const char *cause)
{
	bool too_many = login_auth_log_failure(s->conn, s->user_typed, s->mech,
					       cause, &s->auth_failures);

	pop3_reply_err(s, POP3_AUTH_FAILED);
	if (too_many) {
		pop3_reply_err(s, "[AUTH] Too many authentication failures, "
				  "closing.");
		pop3_session_log_refusal(s, "too many authentication failures");
		pop3_session_close(s, "too many authentication failures");
	}
}

static void pop3_auth_done(const struct auth_reply *reply, void *ctx)
{
	struct pop3_session *s = ctx;
	const char *cause;

	s->auth_req = NULL;
	switch (login_auth_verdict(reply, &cause)) {
	case LOGIN_AUTH_TEMPFAIL:
		pop3_reply_err(s, "[SYS/TEMP] Authentication service "
				  "unavailable; try again later.");
		pop3_session_log_refusal(s, cause);
		break;
	case LOGIN_AUTH_FAILED:
		pop3_login_failed(s, cause);
		break;
	case LOGIN_AUTH_OK:
		pop3_policy_login(s, reply->user, reply->extra);
		break;
	}
	if (!conn_is_closing(s->conn))
		pop3_session_set_busy(s, false);
}

static void cmd_stls(struct pop3_session *s, const struct pop3_command *cmd)
{
	(void)cmd;
	if (conn_is_tls(s->conn)) {
		pop3_reply_err(s, "TLS is already active.");
		return;
	}
	if (s->env->ssl_ctx == NULL) {
		pop3_reply_err(s, "[SYS/PERM] STLS is not available: the "
				  "server has no certificate.");
		pop3_session_log_refusal(s, "STLS without tls_cert configured");
		return;
	}
	pop3_reply_ok(s, "Begin TLS negotiation now.");
	pop3_session_set_busy(s, true);
	conn_starttls(s->conn, s->env->ssl_ctx, pop3_stls_done);
}

static void pop3_stls_done(void *ctx, bool ok)
{
	struct pop3_session *s = ctx;

	if (!ok)
		return; /* the connection is closing */
	/* INV-S1: forget everything learnt before TLS. */
	s->have_user = false;
	s->user[0] = '\0';
	s->user_typed[0] = '\0';
	s->sasl = POP3_SASL_NONE;
	s->bad_commands = 0;
	pop3_session_set_busy(s, false);
}

static void cmd_capa(struct pop3_session *s, const struct pop3_command *cmd)
{
	bool auth = s->state == POP3_STATE_AUTHORIZATION;

	(void)cmd;
	conn_printf(s->conn, "+OK Capability list follows.\r\n"
			     "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
			     "PIPELINING\r\n");
	if (auth && pop3_session_plaintext_allowed(s))
		conn_printf(s->conn, "USER\r\nSASL PLAIN LOGIN\r\n");
	if (auth && !conn_is_tls(s->conn) && s->env->ssl_ctx != NULL)
		conn_printf(s->conn, "STLS\r\n");
	pop3_policy_capa(s, auth);
	conn_printf(s->conn, "IMPLEMENTATION postd\r\n.\r\n");
}

static void cmd_quit(struct pop3_session *s, const struct pop3_command *cmd)
{
	char error[512];
	size_t failed, implicit;

	(void)cmd;
	if (s->state == POP3_STATE_AUTHORIZATION) {
		pop3_reply_ok(s, "postd signing off.");
		pop3_session_close(s, "QUIT");
		return;
	}
	/* INV-P1: the only place a session removes messages. */
	pop3_session_enter_state(s, POP3_STATE_UPDATE);
	implicit = pop3_policy_expire_at_quit(s);
	POSTD_ASSERT(s->state == POP3_STATE_UPDATE);
	failed =
	    mailbox_expunge(s->box, s->marks.deleted,
			    MAILBOX_EXPUNGE_POP3_UPDATE, error, sizeof(error));
	/* The lock goes before the reply: a client that reconnects at
	 * once must not find its own mailbox IN-USE. */
	mailbox_close(&s->box);
	if (failed > 0) {
		log_error("session=%s user=%s: %zu of %zu deleted messages "
			  "not removed: %s",
			  conn_id(s->conn), s->user, failed,
			  s->marks.deleted_count, error);
		pop3_reply_err(s,
			       "[SYS/TEMP] %zu deleted messages could not "
			       "be removed; they will show again.",
			       failed);
	} else {
		if (implicit > 0)
			metrics_add(METRIC_MESSAGES_EXPIRED, implicit);
		pop3_reply_ok(s, "postd signing off (%zu messages deleted).",
			      s->marks.deleted_count);
	}
	pop3_session_close(s, "QUIT");
}

/* TRANSACTION */

static void cmd_stat(struct pop3_session *s, const struct pop3_command *cmd)
{
	(void)cmd;
	pop3_reply_ok(
	    s, "%zu %llu", mailbox_count(s->box) - s->marks.deleted_count,
	    (unsigned long long)(s->total_bytes - s->marks.deleted_bytes));
}

static void pop3_start_listing(struct pop3_session *s, int listing)
{
	POSTD_ASSERT(s->job.kind == POP3_JOB_NONE); /* one job at a time */
	s->job.kind = POP3_JOB_LISTING;
	s->job.listing = listing;
	s->job.next = 0;
	pop3_session_set_busy(s, true);
	pop3_job_run(s);
}

static void cmd_list(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (cmd->msg != 0) {
		if (pop3_check_msg(s, cmd->msg))
			pop3_reply_ok(s, "%u %llu", cmd->msg,
				      (unsigned long long)mailbox_msg(
					  s->box, cmd->msg - 1)
					  ->size);
		return;
	}
	pop3_reply_ok(
	    s, "%zu messages (%llu octets).",
	    mailbox_count(s->box) - s->marks.deleted_count,
	    (unsigned long long)(s->total_bytes - s->marks.deleted_bytes));
	pop3_start_listing(s, POP3_LISTING_LIST);
}

static void cmd_uidl(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (cmd->msg != 0) {
		if (pop3_check_msg(s, cmd->msg))
			pop3_reply_ok(s, "%u %s", cmd->msg,
				      mailbox_msg(s->box, cmd->msg - 1)->uidl);
		return;
	}
	pop3_reply_ok(s, "Unique-ID listing follows.");
	pop3_start_listing(s, POP3_LISTING_UIDL);
}

static void pop3_start_message(struct pop3_session *s, uint32_t msg,
			       int64_t body_lines)
{
	char error[512];
	int fd;

	if (!pop3_check_msg(s, msg))
		return;
	fd = mailbox_msg_open(s->box, msg - 1, error, sizeof(error));
	if (fd < 0) {
		/* INV-P2: never another message's bytes. */
		log_warn("session=%s user=%s: message %u: %s", conn_id(s->conn),
			 s->user, msg, error);
		pop3_reply_err(s, "Message %u was removed by another program.",
			       msg);
		return;
	}
	POSTD_ASSERT(s->job.kind == POP3_JOB_NONE); /* one job at a time */
	if (body_lines < 0)
		pop3_reply_ok(
		    s, "%llu octets.",
		    (unsigned long long)mailbox_msg(s->box, msg - 1)->size);
	else
		pop3_reply_ok(s, "Top of message follows.");
	s->job.kind = POP3_JOB_MESSAGE;
	s->job.msg = msg - 1;
	s->job.fd = fd;
	s->job.whole = body_lines < 0;
	msg_wire_init(&s->job.wire, true, body_lines);
	pop3_session_set_busy(s, true);
	pop3_job_run(s);
}

static void cmd_retr(struct pop3_session *s, const struct pop3_command *cmd)
{
	pop3_start_message(s, cmd->msg, -1);
}

static void cmd_top(struct pop3_session *s, const struct pop3_command *cmd)
{
	pop3_start_message(s, cmd->msg, (int64_t)cmd->lines);
}

static void cmd_dele(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!pop3_check_msg(s, cmd->msg))
		return;
	s->marks.deleted[cmd->msg - 1] = true;
	s->marks.deleted_count++;
	s->marks.deleted_bytes += mailbox_msg(s->box, cmd->msg - 1)->size;
	pop3_reply_ok(s, "Message %u deleted.", cmd->msg);
}

static void cmd_noop(struct pop3_session *s, const struct pop3_command *cmd)
{
	(void)cmd;
	conn_write(s->conn, "+OK\r\n", 5);
}

static void cmd_rset(struct pop3_session *s, const struct pop3_command *cmd)
{
	size_t count = mailbox_count(s->box);

	(void)cmd;
	memset(s->marks.deleted, 0, count * sizeof(bool));
	s->marks.deleted_count = 0;
	s->marks.deleted_bytes = 0;
	pop3_reply_ok(s, "%zu messages (%llu octets).", count,
		      (unsigned long long)s->total_bytes);
}
