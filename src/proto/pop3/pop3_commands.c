/*
 * The POP3 command table and handlers. A table row carries each command's
 * preconditions (states, plaintext-login policy); the dispatcher refuses a
 * command that breaks them with the right reply, so handlers contain only
 * the action (see doc/hacking.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/xmalloc.h"
#include "proto/pop3/pop3_parse.h"
#include "proto/pop3/pop3_session.h"
#include "storage/maildir.h"

#define STATE_AUTH (1u << POP3_STATE_AUTHORIZATION)
#define STATE_TRANS (1u << POP3_STATE_TRANSACTION)

/* The reply to a refused plaintext login (RFC 2595 section 4 and
 * RFC 3206 [AUTH]), worded so that a user knows what to change. */
#define POP3_PLAINTEXT_REFUSED                                                 \
	"[AUTH] Plaintext authentication requires TLS: enable SSL/TLS "        \
	"(STLS or port 995) in your mail client."
#define POP3_AUTH_FAILED "[AUTH] Authentication failed."
/* In the user's Maildir: its mtime is the last successful POP3 login
 * (LOGIN-DELAY, RFC 2449 section 6.5). A file survives restarts and is
 * shared by every worker. */
#define POP3_LASTLOGIN_FILE "postd-lastlogin"

typedef void pop3_handler_fn(struct pop3_session *s,
			     const struct pop3_command *cmd);

struct pop3_command_row {
	enum pop3_cmd cmd;
	pop3_handler_fn *handler;
	unsigned states;
	bool plaintext_login; /* refused without TLS unless the policy allows */
};

static pop3_handler_fn cmd_user, cmd_pass, cmd_apop, cmd_auth, cmd_stls,
    cmd_capa, cmd_quit, cmd_stat, cmd_list, cmd_retr, cmd_dele, cmd_noop,
    cmd_rset, cmd_top, cmd_uidl;

static const struct pop3_command_row pop3_commands[POP3_CMD_COUNT] = {
    {POP3_CMD_USER, cmd_user, STATE_AUTH, true},
    {POP3_CMD_PASS, cmd_pass, STATE_AUTH, true},
    {POP3_CMD_APOP, cmd_apop, STATE_AUTH, false},
    {POP3_CMD_AUTH, cmd_auth, STATE_AUTH, false},
    {POP3_CMD_STLS, cmd_stls, STATE_AUTH, false},
    {POP3_CMD_CAPA, cmd_capa, STATE_AUTH | STATE_TRANS, false},
    {POP3_CMD_QUIT, cmd_quit, STATE_AUTH | STATE_TRANS, false},
    {POP3_CMD_STAT, cmd_stat, STATE_TRANS, false},
    {POP3_CMD_LIST, cmd_list, STATE_TRANS, false},
    {POP3_CMD_RETR, cmd_retr, STATE_TRANS, false},
    {POP3_CMD_DELE, cmd_dele, STATE_TRANS, false},
    {POP3_CMD_NOOP, cmd_noop, STATE_TRANS, false},
    {POP3_CMD_RSET, cmd_rset, STATE_TRANS, false},
    {POP3_CMD_TOP, cmd_top, STATE_TRANS, false},
    {POP3_CMD_UIDL, cmd_uidl, STATE_TRANS, false},
};

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
static void pop3_open_mailbox(struct pop3_session *s);
static void pop3_user_policy(struct pop3_session *s, const char *extra);
static bool pop3_login_delayed(struct pop3_session *s);
static void pop3_capa_expire(struct pop3_session *s, bool auth);
static size_t pop3_expire_at_quit(struct pop3_session *s);
static void pop3_stls_done(void *ctx, bool ok);
static void pop3_set_user(struct pop3_session *s, const char *name, size_t len);
static void pop3_start_message(struct pop3_session *s, uint32_t msg,
			       int64_t body_lines);
static void pop3_start_listing(struct pop3_session *s, int listing);

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
	size_t n =
	    len < sizeof(s->user_typed) - 1 ? len : sizeof(s->user_typed) - 1;

	memcpy(s->user_typed, name, n);
	s->user_typed[n] = '\0';
	/* A name that cannot be a user goes on to the auth process as an
	 * empty one, so it fails with the same reply and timing as an
	 * unknown user (INV-A1). */
	if (username_normalize(name, len, s->env->cfg->auth_default_domain,
			       s->user, sizeof(s->user)) < 0)
		s->user[0] = '\0';
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
	char zid[USERNAME_BUF_SIZE];

	pop3_set_user(s, authcid, authcid_len);
	/* INV-A1: acting as somebody else is not offered. */
	if (authzid[0] != '\0' &&
	    (username_normalize(authzid, strlen(authzid),
				s->env->cfg->auth_default_domain, zid,
				sizeof(zid)) < 0 ||
	     strcmp(zid, s->user) != 0)) {
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
	struct auth_request req;

	memset(&req, 0, sizeof(req));
	req.type = type;
	req.service = (uint8_t)conn_proto(s->conn);
	snprintf(req.peer, sizeof(req.peer), "%s", conn_peer(s->conn));
	snprintf(req.user, sizeof(req.user), "%s", s->user);
	if (secret_len >= sizeof(req.secret))
		secret_len = sizeof(req.secret) - 1;
	memcpy(req.secret, secret, secret_len);
	snprintf(req.challenge, sizeof(req.challenge), "%s", s->apop_challenge);
	s->auth_req = auth_client_send(s->env->auth, &req, pop3_auth_done, s);
	OPENSSL_cleanse(&req, sizeof(req));
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
	char user[AUTH_MAX_USER * 4 + 1];

	metrics_add(METRIC_LOGINS_FAILED, 1);
	log_escape(user, sizeof(user), s->user_typed, strlen(s->user_typed));
	log_info("auth failed user=%s peer=%s session=%s proto=%s cause=%s "
		 "mech=%s",
		 user[0] ? user : "-", conn_peer(s->conn), conn_id(s->conn),
		 config_proto_name(conn_proto(s->conn)), cause, s->mech);
	pop3_reply_err(s, POP3_AUTH_FAILED);
	if (++s->auth_failures >= SESSION_MAX_AUTH_FAILURES) {
		pop3_reply_err(s, "[AUTH] Too many authentication failures, "
				  "closing.");
		pop3_session_log_refusal(s, "too many authentication failures");
		pop3_session_close(s, "too many authentication failures");
	}
}

static void pop3_auth_done(const struct auth_reply *reply, void *ctx)
{
	struct pop3_session *s = ctx;

	s->auth_req = NULL;
	if (reply == NULL || reply->result == AUTH_RESULT_TEMPFAIL) {
		pop3_reply_err(s, "[SYS/TEMP] Authentication service "
				  "unavailable; try again later.");
		pop3_session_log_refusal(s, reply == NULL
						? "auth process unavailable"
						: auth_cause_str(reply->cause));
	} else if (reply->result != AUTH_RESULT_OK ||
		   !username_is_canonical(reply->user)) {
		pop3_login_failed(s, auth_cause_str(reply->cause));
	} else {
		snprintf(s->user, sizeof(s->user), "%s", reply->user);
		pop3_user_policy(s, reply->extra);
		pop3_open_mailbox(s);
	}
	if (!conn_is_closing(s->conn))
		pop3_session_set_busy(s, false);
}

static void pop3_open_mailbox(struct pop3_session *s)
{
	struct mailbox_owner owner = {conn_id(s->conn), conn_peer(s->conn),
				      s->user};
	char error[512], cause[600];
	const char *err;
	size_t count;

	s->maildir_fd = maildir_open(s->env->mail_root_fd, s->user, true, &err);
	if (s->maildir_fd < 0) {
		pop3_reply_err(s, "[SYS/TEMP] Your mailbox cannot be opened "
				  "right now; the administrator has been "
				  "told.");
		snprintf(cause, sizeof(cause), "cannot open Maildir: %s", err);
		pop3_session_log_refusal(s, cause);
		return;
	}
	/* After the password was verified, never before: a refusal here
	 * tells only the account's owner that it exists. */
	if (pop3_login_delayed(s)) {
		close(s->maildir_fd);
		s->maildir_fd = -1;
		return;
	}
	switch (mailbox_open(s->maildir_fd, &owner, &s->box, error,
			     sizeof(error))) {
	case MAILBOX_OK:
		break;
	case MAILBOX_IN_USE:
		pop3_reply_err(s, "[IN-USE] Mailbox is in use by another "
				  "session; try again later.");
		snprintf(cause, sizeof(cause), "mailbox in use: %s", error);
		pop3_session_log_refusal(s, cause);
		close(s->maildir_fd);
		s->maildir_fd = -1;
		return;
	default:
		pop3_reply_err(s, "[SYS/TEMP] Your mailbox cannot be read "
				  "right now; the administrator has been "
				  "told.");
		snprintf(cause, sizeof(cause), "cannot read mailbox: %s",
			 error);
		pop3_session_log_refusal(s, cause);
		close(s->maildir_fd);
		s->maildir_fd = -1;
		return;
	}
	if (s->login_delay > 0) {
		int fd =
		    openat(s->maildir_fd, POP3_LASTLOGIN_FILE,
			   O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

		/* Only slows the next check down if it fails: logged. */
		if (fd < 0 || futimens(fd, NULL) < 0)
			log_warn("session=%s user=%s: cannot record the login "
				 "time: %s",
				 conn_id(s->conn), s->user, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	metrics_add(METRIC_LOGINS_OK, 1);
	count = mailbox_count(s->box);
	s->marks.deleted = xcalloc(count, sizeof(bool));
	s->total_bytes = 0;
	for (size_t i = 0; i < count; i++)
		s->total_bytes += mailbox_msg(s->box, i)->size;
	pop3_session_enter_state(s, POP3_STATE_TRANSACTION);
	conn_set_timeout(s->conn, s->env->cfg->timeout_idle);
	conn_set_input_limit(s->conn, CONN_INPUT_MAX);
	log_info("login user=%s peer=%s session=%s proto=%s mech=%s tls=%s "
		 "messages=%zu",
		 s->user, conn_peer(s->conn), conn_id(s->conn),
		 config_proto_name(conn_proto(s->conn)), s->mech,
		 conn_tls_version(s->conn), count);
	pop3_reply_ok(s, "Logged in: %zu messages (%llu octets).", count,
		      (unsigned long long)s->total_bytes);
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
	pop3_capa_expire(s, auth);
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
	/* INV-P1: the only place messages are removed. */
	pop3_session_enter_state(s, POP3_STATE_UPDATE);
	implicit = pop3_expire_at_quit(s);
	failed =
	    mailbox_expunge(s->box, s->marks.deleted, error, sizeof(error));
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

/* Retention and LOGIN-DELAY */

/* The user's values: the domain's (or global) postd.conf values, then the
 * users file's extra fields, which the auth reply carries. */
static void pop3_user_policy(struct pop3_session *s, const char *extra)
{
	const struct config *cfg = s->env->cfg;
	struct expire_user_fields f;
	const char *domain;
	char error[256];
	size_t local_len;

	domain = username_domain(s->user, &local_len);
	s->policy.retention = config_retention(cfg, domain, false);
	s->policy.retention_unread = config_retention(cfg, domain, true);
	s->login_delay = cfg->login_delay;
	if (expire_parse_extra(extra, &f, error, sizeof(error)) > 0)
		log_warn("session=%s user=%s: users file extra fields: %s",
			 conn_id(s->conn), s->user, error);
	expire_policy_apply(&s->policy, &f);
	if (f.has_login_delay)
		s->login_delay = f.login_delay;
}

/* True (after replying and logging) if the previous successful login was
 * less than login_delay seconds ago. */
static bool pop3_login_delayed(struct pop3_session *s)
{
	struct stat st;
	char cause[256], when[32];
	time_t now = time(NULL);
	struct tm tm;

	if (s->login_delay == 0 ||
	    fstatat(s->maildir_fd, POP3_LASTLOGIN_FILE, &st,
		    AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode))
		return false;
	/* INV-T1: a last login in the future means the clock went back;
	 * waiting for it to catch up could lock the user out for a long
	 * time, so that login does not count. */
	if (st.st_mtime > now || now - st.st_mtime >= (time_t)s->login_delay)
		return false;
	gmtime_r(&st.st_mtime, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	pop3_reply_err(s,
		       "[LOGIN-DELAY] You logged in %lld seconds ago; this "
		       "server allows one login every %u seconds. Check "
		       "mail less often.",
		       (long long)(now - st.st_mtime), s->login_delay);
	snprintf(cause, sizeof(cause),
		 "login delay: last login %s (%lld s ago), delay %u s", when,
		 (long long)(now - st.st_mtime), s->login_delay);
	pop3_session_log_refusal(s, cause);
	return true;
}

/* RFC 2449 6.5 and 6.7. Before login: the smallest EXPIRE and the largest
 * LOGIN-DELAY that any domain or user has, with USER when they differ.
 * The worker never reads the users file: the retention pass leaves what
 * the users' extra fields say in a summary (expire_summary_read()).
 * After login: the user's own values. */
static void pop3_capa_expire(struct pop3_session *s, bool auth)
{
	const struct config *cfg = s->env->cfg;
	struct expire_policy p = {cfg->retention, cfg->retention_unread};
	struct expire_summary sum;
	unsigned delay = cfg->login_delay;
	bool user = false, delay_user = false;
	int64_t days;

	if (!auth) {
		p = s->policy;
		delay = s->login_delay;
	}
	days = expire_capa_days(&p);
	if (auth && config_retention_varies(cfg)) {
		user = true;
		for (size_t i = 0; i < cfg->domain_retention_count; i++) {
			const char *d = cfg->domain_retention[i].domain;
			struct expire_policy dp = {
			    config_retention(cfg, d, false),
			    config_retention(cfg, d, true)};
			int64_t dd = expire_capa_days(&dp);

			if (dd >= 0 && (days < 0 || dd < days))
				days = dd;
		}
	}
	if (auth && expire_summary_read(s->env->mail_root_fd, &sum) == 0) {
		if (sum.expire_varies) {
			user = true;
			if (sum.min_days >= 0 &&
			    (days < 0 || sum.min_days < days))
				days = sum.min_days;
		}
		if (sum.delay_varies) {
			delay_user = true;
			if (sum.max_login_delay > delay)
				delay = sum.max_login_delay;
		}
	}
	if (days < 0)
		conn_printf(s->conn, "EXPIRE NEVER%s\r\n", user ? " USER" : "");
	else
		conn_printf(s->conn, "EXPIRE %" PRId64 "%s\r\n", days,
			    user ? " USER" : "");
	if (delay > 0)
		conn_printf(s->conn, "LOGIN-DELAY %u%s\r\n", delay,
			    delay_user ? " USER" : "");
}

/* EXPIRE 0 (RFC 2449 6.7): entering UPDATE, every message downloaded
 * with RETR (in this session or before) gets an implicit DELE. Returns
 * how many were added. */
static size_t pop3_expire_at_quit(struct pop3_session *s)
{
	size_t n = 0, count = mailbox_count(s->box);
	time_t now = time(NULL);

	if (!expire_at_quit(&s->policy))
		return 0;
	for (size_t i = 0; i < count; i++) {
		const struct mailbox_msg *m = mailbox_msg(s->box, i);

		if (m->retrieved == 0 || s->marks.deleted[i])
			continue;
		s->marks.deleted[i] = true;
		s->marks.deleted_count++;
		s->marks.deleted_bytes += m->size;
		n++;
		log_info("expired user=%s uid=%" PRIu32 " uidl=%s age=%" PRId64
			 "s rule=retention 0s after first retrieval (EXPIRE "
			 "0, at QUIT) session=%s",
			 s->user, m->uid, m->uidl,
			 expire_age(now, m->retrieved), conn_id(s->conn));
	}
	return n;
}
