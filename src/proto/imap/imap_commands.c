/*
 * The IMAP command table and the commands of any state and of the
 * not-authenticated state (RFC 9051 6.1, 6.2): CAPABILITY, NOOP, LOGOUT,
 * STARTTLS, LOGIN, AUTHENTICATE (PLAIN and LOGIN, with SASL-IR), ENABLE,
 * ID, NAMESPACE. A table row carries each command's states; the dispatcher
 * refuses a command that breaks them, so handlers contain only the action.
 * Logins go through the auth process as POP3's do (same tarpit, same
 * reply for unknown user and wrong password, INV-A1).
 */
#include "proto/imap/imap_commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/postd_assert.h"
#include "proto/common/login_auth.h"
#include "proto/common/sasl.h"
#include "proto/imap/imap_append.h"
#include "proto/imap/imap_folders.h"
#include "proto/imap/imap_mailbox.h"
#include "proto/imap/imap_search_update.h"
#include "proto/imap/imap_sort.h"
#include "storage/folder.h"
#include "storage/maildir.h"

#define ST_NOAUTH (1u << IMAP_STATE_NOT_AUTH)
#define ST_AUTH (1u << IMAP_STATE_AUTH)
#define ST_SEL (1u << IMAP_STATE_SELECTED)
#define ST_ANY (ST_NOAUTH | ST_AUTH | ST_SEL)

/* RFC 5530 PRIVACYREQUIRED, worded so that a user knows what to change. */
#define IMAP_PLAINTEXT_REFUSED                                                 \
	"Plaintext authentication requires TLS: enable SSL/TLS (STARTTLS "     \
	"or port 993) in your mail client."

static imap_handler_fn cmd_capability, cmd_noop, cmd_logout, cmd_starttls,
    cmd_login, cmd_authenticate, cmd_enable, cmd_id, cmd_namespace, cmd_append;

/* Keyed by the enum, so a row cannot slip to another command's index; a
 * missing row is caught by the count check below (the last one) or by
 * the row check in imap_commands_lookup() (any other). */
static const struct imap_command_row imap_commands[] = {
    [IMAP_CMD_CAPABILITY] = {IMAP_CMD_CAPABILITY, "CAPABILITY", cmd_capability,
			     ST_ANY, false},
    [IMAP_CMD_NOOP] = {IMAP_CMD_NOOP, "NOOP", cmd_noop, ST_ANY, false},
    [IMAP_CMD_LOGOUT] = {IMAP_CMD_LOGOUT, "LOGOUT", cmd_logout, ST_ANY, false},
    [IMAP_CMD_STARTTLS] = {IMAP_CMD_STARTTLS, "STARTTLS", cmd_starttls,
			   ST_NOAUTH, false},
    [IMAP_CMD_LOGIN] = {IMAP_CMD_LOGIN, "LOGIN", cmd_login, ST_NOAUTH, false},
    [IMAP_CMD_AUTHENTICATE] = {IMAP_CMD_AUTHENTICATE, "AUTHENTICATE",
			       cmd_authenticate, ST_NOAUTH, false},
    [IMAP_CMD_ENABLE] = {IMAP_CMD_ENABLE, "ENABLE", cmd_enable, ST_AUTH, false},
    [IMAP_CMD_ID] = {IMAP_CMD_ID, "ID", cmd_id, ST_ANY, false},
    [IMAP_CMD_NAMESPACE] = {IMAP_CMD_NAMESPACE, "NAMESPACE", cmd_namespace,
			    ST_AUTH | ST_SEL, false},
    [IMAP_CMD_CREATE] = {IMAP_CMD_CREATE, "CREATE", imap_cmd_create,
			 ST_AUTH | ST_SEL, false},
    [IMAP_CMD_DELETE] = {IMAP_CMD_DELETE, "DELETE", imap_cmd_delete,
			 ST_AUTH | ST_SEL, false},
    [IMAP_CMD_RENAME] = {IMAP_CMD_RENAME, "RENAME", imap_cmd_rename,
			 ST_AUTH | ST_SEL, false},
    [IMAP_CMD_SUBSCRIBE] = {IMAP_CMD_SUBSCRIBE, "SUBSCRIBE", imap_cmd_subscribe,
			    ST_AUTH | ST_SEL, false},
    [IMAP_CMD_UNSUBSCRIBE] = {IMAP_CMD_UNSUBSCRIBE, "UNSUBSCRIBE",
			      imap_cmd_unsubscribe, ST_AUTH | ST_SEL, false},
    [IMAP_CMD_LIST] = {IMAP_CMD_LIST, "LIST", imap_cmd_list, ST_AUTH | ST_SEL,
		       false},
    [IMAP_CMD_LSUB] = {IMAP_CMD_LSUB, "LSUB", imap_cmd_lsub, ST_AUTH | ST_SEL,
		       false},
    [IMAP_CMD_SELECT] = {IMAP_CMD_SELECT, "SELECT", imap_cmd_select,
			 ST_AUTH | ST_SEL, false},
    [IMAP_CMD_EXAMINE] = {IMAP_CMD_EXAMINE, "EXAMINE", imap_cmd_examine,
			  ST_AUTH | ST_SEL, false},
    [IMAP_CMD_STATUS] = {IMAP_CMD_STATUS, "STATUS", imap_cmd_status,
			 ST_AUTH | ST_SEL, false},
    [IMAP_CMD_APPEND] = {IMAP_CMD_APPEND, "APPEND", cmd_append,
			 ST_AUTH | ST_SEL, false},
    [IMAP_CMD_IDLE] = {IMAP_CMD_IDLE, "IDLE", imap_cmd_idle, ST_AUTH | ST_SEL,
		       false},
    [IMAP_CMD_CHECK] = {IMAP_CMD_CHECK, "CHECK", imap_cmd_check, ST_SEL, false},
    [IMAP_CMD_CLOSE] = {IMAP_CMD_CLOSE, "CLOSE", imap_cmd_close, ST_SEL, false},
    [IMAP_CMD_UNSELECT] = {IMAP_CMD_UNSELECT, "UNSELECT", imap_cmd_unselect,
			   ST_SEL, false},
    [IMAP_CMD_EXPUNGE] = {IMAP_CMD_EXPUNGE, "EXPUNGE", imap_cmd_expunge, ST_SEL,
			  true},
    [IMAP_CMD_FETCH] = {IMAP_CMD_FETCH, "FETCH", imap_cmd_fetch, ST_SEL, true},
    [IMAP_CMD_STORE] = {IMAP_CMD_STORE, "STORE", imap_cmd_store, ST_SEL, true},
    [IMAP_CMD_COPY] = {IMAP_CMD_COPY, "COPY", imap_cmd_copy, ST_SEL, true},
    [IMAP_CMD_MOVE] = {IMAP_CMD_MOVE, "MOVE", imap_cmd_move, ST_SEL, true},
    [IMAP_CMD_SEARCH] = {IMAP_CMD_SEARCH, "SEARCH", imap_cmd_search, ST_SEL,
			 true},
    [IMAP_CMD_SORT] = {IMAP_CMD_SORT, "SORT", imap_cmd_sort, ST_SEL, true},
    [IMAP_CMD_THREAD] = {IMAP_CMD_THREAD, "THREAD", imap_cmd_thread, ST_SEL,
			 true},
    [IMAP_CMD_CANCELUPDATE] = {IMAP_CMD_CANCELUPDATE, "CANCELUPDATE",
			       imap_cmd_cancelupdate, ST_SEL, false},
};
_Static_assert(POSTD_N_ELEMENTS(imap_commands) == IMAP_CMD_COUNT,
	       "imap_commands[] needs one row per enum imap_cmd value");

static const struct imap_command_row *imap_commands_lookup(const char *name);
static void imap_bad(struct imap_session *s, const char *reply);
static void imap_set_user(struct imap_session *s, const char *name, size_t len);
static void imap_auth_submit(struct imap_session *s, const char *authzid,
			     const char *authcid, const char *password);
static void imap_auth_request(struct imap_session *s, const char *secret,
			      size_t secret_len);
static void imap_auth_done(const struct auth_reply *reply, void *ctx);
static void imap_login_failed(struct imap_session *s, const char *cause);
static void imap_login_ok(struct imap_session *s, const char *user);
static void imap_starttls_done(void *ctx, bool ok);
static void imap_sasl_step(struct imap_session *s, enum imap_sasl_step step,
			   char *data, size_t len);
static bool imap_refuse_plaintext(struct imap_session *s);

const struct imap_command_row *imap_commands_table(size_t *count_r)
{
	*count_r = POSTD_N_ELEMENTS(imap_commands);
	return imap_commands;
}

static const struct imap_command_row *imap_commands_lookup(const char *name)
{
	for (size_t i = 0; i < POSTD_N_ELEMENTS(imap_commands); i++) {
		POSTD_ASSERT(imap_commands[i].cmd == (enum imap_cmd)i &&
			     imap_commands[i].name != NULL);
		if (strcmp(imap_commands[i].name, name) == 0)
			return &imap_commands[i];
	}
	return NULL;
}

void imap_commands_dispatch(struct imap_session *s, const char *wire,
			    size_t len)
{
	struct imap_command cmd;
	const struct imap_command_row *row;
	struct imap_args a;
	const char *error;

	memset(&cmd, 0, sizeof(cmd));
	if (imap_parse_command(wire, len, &cmd, &error) < 0) {
		snprintf(s->tag, sizeof(s->tag), "%s",
			 cmd.tag[0] ? cmd.tag : "*");
		imap_bad(s, error);
		imap_command_free(&cmd);
		s->tag[0] = '\0';
		return;
	}
	snprintf(s->tag, sizeof(s->tag), "%s", cmd.tag);
	a.v = cmd.args;
	a.n = cmd.arg_count;
	a.uid = false;
	if (strcmp(cmd.name, "UID") == 0 && a.n > 0 &&
	    a.v[0].type == IMAP_ARG_ATOM) {
		char sub[32];

		snprintf(sub, sizeof(sub), "%s", a.v[0].str);
		for (char *c = sub; *c != '\0'; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
		row = imap_commands_lookup(sub);
		if (row != NULL && !row->uid_form)
			row = NULL;
		a.v++;
		a.n--;
		a.uid = true;
	} else {
		row = imap_commands_lookup(cmd.name);
	}
	if (row == NULL) {
		imap_bad(s, "Unknown command.");
	} else if ((row->states & (1u << s->state)) == 0) {
		imap_bad(s, s->state == IMAP_STATE_NOT_AUTH
				? "Command not valid in this state: log in "
				  "first."
			    : s->state == IMAP_STATE_AUTH
				? "Command not valid in this state: select a "
				  "mailbox first."
				: "Command not valid in this state.");
	} else {
		s->bad_commands = 0;
		/* RFC 9051 7.5.1: no EXPUNGE while sequence numbers are in
		 * use (FETCH, STORE, SEARCH; their UID forms may). */
		s->allow_expunge =
		    a.uid ||
		    (row->cmd != IMAP_CMD_FETCH && row->cmd != IMAP_CMD_STORE &&
		     row->cmd != IMAP_CMD_SEARCH && row->cmd != IMAP_CMD_SORT &&
		     row->cmd != IMAP_CMD_THREAD);
		/* What others changed is seen by this command: new
		 * messages and flags first (they shift no sequence
		 * number); expunges wait for the end of the command. */
		if (s->state == IMAP_STATE_SELECTED)
			imap_mailbox_sync(s, false);
		/* The sync may have ended the session (the folder's
		 * UIDVALIDITY changed): no command runs on a void view. */
		if (!conn_is_closing(s->conn))
			row->handler(s, &a);
	}
	imap_command_free(&cmd);
	/* A finished command's tag is not the next one's. */
	if (!s->busy && s->sasl == IMAP_SASL_NONE && !s->idling)
		s->tag[0] = '\0';
}

/* reply is constant text or the parser's message (never network bytes):
 * it is also the cause in the log. */
static void imap_bad(struct imap_session *s, const char *reply)
{
	imap_refuse(s, "BAD", NULL, reply, reply);
}

void imap_commands_capabilities(const struct imap_session *s, char *out,
				size_t size)
{
	snprintf(
	    out, size,
	    " NAMESPACE IDLE UNSELECT UIDPLUS MOVE SPECIAL-USE "
	    "CREATE-SPECIAL-USE CHILDREN LIST-EXTENDED LIST-STATUS ESEARCH "
	    "SEARCHRES CONTEXT=SEARCH CONDSTORE STATUS=SIZE BINARY MULTIAPPEND "
	    "CATENATE SORT SORT=DISPLAY ESORT CONTEXT=SORT "
	    "THREAD=ORDEREDSUBJECT "
	    "THREAD=REFERENCES "
	    "APPENDLIMIT=%u",
	    s->env->cfg->max_message_size);
}

void imap_commands_abort(struct imap_session *s)
{
	imap_mailbox_append_abort(s);
	s->sasl = IMAP_SASL_NONE;
	s->idling = false;
}

void imap_commands_session_end(struct imap_session *s)
{
	imap_fetch_session_end(s);
	imap_mailbox_session_end(s);
}

/* The message of an APPEND arrives as a literal that the collector streams
 * into the store (imap_append.c); reaching here, it had none: a CATENATE
 * of URLs only (RFC 4469), or a syntax error. */
static void cmd_append(struct imap_session *s, const struct imap_args *a)
{
	(void)a;
	imap_append_without_literal(s);
}

/* Any state */

static void cmd_capability(struct imap_session *s, const struct imap_args *a)
{
	char caps[1024];

	(void)a;
	imap_session_capabilities(s, caps, sizeof(caps));
	imap_reply_untagged(s, "CAPABILITY %s", caps);
	imap_reply_tagged(s, "OK", NULL, "Capability completed.");
}

static void cmd_noop(struct imap_session *s, const struct imap_args *a)
{
	(void)a;
	imap_reply_tagged(s, "OK", NULL, "NOOP completed.");
}

static void cmd_logout(struct imap_session *s, const struct imap_args *a)
{
	(void)a;
	imap_session_enter_state(s, IMAP_STATE_LOGOUT);
	imap_reply_untagged(s, "BYE postd logging out.");
	imap_reply_tagged(s, "OK", NULL, "Logout completed.");
	imap_session_close(s, "logout");
}

/* RFC 2971: the server's identity; the client's is only logged. */
static void cmd_id(struct imap_session *s, const struct imap_args *a)
{
	if (a->n != 1 ||
	    (a->v[0].type != IMAP_ARG_NIL && a->v[0].type != IMAP_ARG_LIST) ||
	    (a->v[0].type == IMAP_ARG_LIST &&
	     (a->v[0].list_count % 2 != 0 ||
	      a->v[0].list_count > 2 * IMAP_MAX_ID_PAIRS))) {
		imap_bad(s, "ID takes NIL or a list of field/value pairs.");
		return;
	}
	if (a->v[0].type == IMAP_ARG_LIST && a->v[0].list_count >= 2) {
		const char *name = imap_arg_astring(&a->v[0].list[0]);
		const char *value = imap_arg_astring(&a->v[0].list[1]);
		char ename[64], evalue[256];

		if (name != NULL && value != NULL) {
			log_escape(ename, sizeof(ename), name, strlen(name));
			log_escape(evalue, sizeof(evalue), value,
				   strlen(value));
			log_debug("session=%s client id %s=%s",
				  conn_id(s->conn), ename, evalue);
		}
	}
	imap_reply_untagged(s, "ID (\"name\" \"postd\")");
	imap_reply_tagged(s, "OK", NULL, "ID completed.");
}

/* Authenticated */

static void cmd_namespace(struct imap_session *s, const struct imap_args *a)
{
	(void)a;
	/* One personal namespace, '/' as the hierarchy separator. */
	imap_reply_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_reply_tagged(s, "OK", NULL, "Namespace completed.");
}

/* RFC 5161: only what we offer is enabled; the rest is ignored.
 * UTF8=ACCEPT (RFC 6855) is not offered: APPEND does not take its UTF8
 * literal form. */
static void cmd_enable(struct imap_session *s, const struct imap_args *a)
{
	char enabled[64] = "";
	size_t n = 0;

	if (a->n == 0) {
		imap_bad(s, "ENABLE needs a capability.");
		return;
	}
	for (size_t i = 0; i < a->n; i++) {
		/* IMAP4rev2 (RFC 9051): no Recent, ESEARCH replies,
		 * UTF-8 mailbox names, LIST in SELECT. */
		if (imap_arg_is_atom(&a->v[i], "IMAP4rev2") && !s->rev2) {
			s->rev2 = true;
			n += (size_t)snprintf(enabled + n, sizeof(enabled) - n,
					      " IMAP4rev2");
		}
		if (imap_arg_is_atom(&a->v[i], "CONDSTORE") && !s->condstore) {
			s->condstore = true;
			n += (size_t)snprintf(enabled + n, sizeof(enabled) - n,
					      " CONDSTORE");
		}
	}
	imap_reply_untagged(s, "ENABLED%s", enabled);
	imap_reply_tagged(s, "OK", NULL, "Enabled.");
}

/* Not authenticated */

static void cmd_starttls(struct imap_session *s, const struct imap_args *a)
{
	(void)a;
	if (conn_is_tls(s->conn)) {
		imap_bad(s, "TLS is already active.");
		return;
	}
	if (s->env->ssl_ctx == NULL) {
		imap_refuse(s, "NO", "UNAVAILABLE",
			    "STARTTLS is not available: the server has no "
			    "certificate.",
			    "STARTTLS without tls_cert configured");
		return;
	}
	imap_reply_tagged(s, "OK", NULL, "Begin TLS negotiation now.");
	imap_session_set_busy(s, true);
	/* INV-S1: conn_starttls() drops every plaintext byte the client
	 * pipelined after STARTTLS. */
	conn_starttls(s->conn, s->env->ssl_ctx, imap_starttls_done);
}

static void imap_starttls_done(void *ctx, bool ok)
{
	struct imap_session *s = ctx;

	if (!ok)
		return; /* the connection is closing */
	/* INV-S1: forget everything learnt before TLS. */
	s->user[0] = '\0';
	s->user_typed[0] = '\0';
	s->sasl = IMAP_SASL_NONE;
	s->bad_commands = 0;
	s->tag[0] = '\0';
	imap_session_set_busy(s, false);
}

/* True (after replying and logging) when no password may be sent here
 * before TLS (plaintext_auth; LOGINDISABLED is advertised). */
static bool imap_refuse_plaintext(struct imap_session *s)
{
	if (imap_session_plaintext_allowed(s))
		return false;
	imap_refuse(s, "NO", "PRIVACYREQUIRED", IMAP_PLAINTEXT_REFUSED,
		    "plaintext login without TLS");
	return true;
}

static void cmd_login(struct imap_session *s, const struct imap_args *a)
{
	const char *user, *pass;

	if (a->n != 2 || (user = imap_arg_astring(&a->v[0])) == NULL ||
	    (pass = imap_arg_astring(&a->v[1])) == NULL) {
		imap_bad(s, "LOGIN takes a user name and a password.");
		return;
	}
	if (imap_refuse_plaintext(s))
		return;
	s->mech = "LOGIN";
	imap_auth_submit(s, "", user, pass);
}

static void cmd_authenticate(struct imap_session *s, const struct imap_args *a)
{
	const char *name, *ir = NULL;
	enum sasl_mech mech;
	char *initial;

	if (a->n < 1 || a->n > 2 || a->v[0].type != IMAP_ARG_ATOM ||
	    (a->n == 2 && (ir = imap_arg_astring(&a->v[1])) == NULL)) {
		imap_bad(s, "AUTHENTICATE takes a mechanism and an optional "
			    "initial response.");
		return;
	}
	name = a->v[0].str;
	mech = sasl_mech_from_name(name);
	if (mech == SASL_MECH_UNKNOWN) {
		char ename[64], cause[160];

		log_escape_word(ename, sizeof(ename), name);
		snprintf(cause, sizeof(cause),
			 "unsupported SASL mechanism %s (only PLAIN and LOGIN "
			 "are offered)",
			 ename);
		imap_refuse(s, "NO", "CANNOT",
			    "Unsupported authentication mechanism.", cause);
		return;
	}
	if (imap_refuse_plaintext(s))
		return;
	s->mech = sasl_mech_name(mech);
	if (ir != NULL) {
		/* SASL-IR (RFC 4959): "=" is an empty initial response. */
		size_t len = strcmp(ir, "=") == 0 ? 0 : strlen(ir);

		initial = (char *)ir;
		imap_sasl_step(s,
			       mech == SASL_MECH_PLAIN
				   ? IMAP_SASL_PLAIN_RESPONSE
				   : IMAP_SASL_LOGIN_USER,
			       len == 0 ? (char *)"" : initial, len);
		return;
	}
	if (mech == SASL_MECH_PLAIN) {
		s->sasl = IMAP_SASL_PLAIN_RESPONSE;
		conn_printf(s->conn, "+ \r\n");
	} else {
		s->sasl = IMAP_SASL_LOGIN_USER;
		conn_printf(s->conn, "+ VXNlcm5hbWU6\r\n"); /* "Username:" */
	}
}

void imap_commands_sasl_continue(struct imap_session *s, char *line, size_t len)
{
	enum imap_sasl_step step = s->sasl;

	s->sasl = IMAP_SASL_NONE;
	if (sasl_is_cancel(line)) {
		/* RFC 9051 6.2.2: a cancelled exchange ends in BAD. */
		imap_refuse(s, "BAD", NULL, "Authentication cancelled.",
			    "authentication cancelled by the client");
		s->tag[0] = '\0';
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		imap_bad(s, "Invalid base64 data.");
		s->tag[0] = '\0';
		return;
	}
	imap_sasl_step(s, step, line, len);
	if (!s->busy && s->sasl == IMAP_SASL_NONE)
		s->tag[0] = '\0';
}

/* One client message of the exchange: base64 in data[0..len). */
static void imap_sasl_step(struct imap_session *s, enum imap_sasl_step step,
			   char *data, size_t len)
{
	struct sasl_credentials creds;
	const char *error;

	switch (step) {
	case IMAP_SASL_NONE:
	case IMAP_SASL_PLAIN_RESPONSE:
		if (sasl_plain_decode(data, len, &creds, &error) < 0) {
			imap_bad(s, error);
			return;
		}
		imap_auth_submit(s, creds.authzid, creds.authcid,
				 creds.password);
		OPENSSL_cleanse(&creds, sizeof(creds));
		return;
	case IMAP_SASL_LOGIN_USER:
		if (sasl_login_decode(data, len, creds.authcid,
				      sizeof(creds.authcid), &error) < 0) {
			imap_bad(s, error);
			return;
		}
		imap_set_user(s, creds.authcid, strlen(creds.authcid));
		s->sasl = IMAP_SASL_LOGIN_PASS;
		conn_printf(s->conn, "+ UGFzc3dvcmQ6\r\n"); /* "Password:" */
		return;
	case IMAP_SASL_LOGIN_PASS:
		if (sasl_login_decode(data, len, creds.password,
				      sizeof(creds.password), &error) < 0) {
			imap_bad(s, error);
			return;
		}
		imap_auth_request(s, creds.password, strlen(creds.password));
		OPENSSL_cleanse(&creds, sizeof(creds));
		return;
	}
}

static void imap_set_user(struct imap_session *s, const char *name, size_t len)
{
	login_auth_set_user(name, len, s->env->cfg->auth_default_domain,
			    s->user_typed, s->user);
}

static void imap_auth_submit(struct imap_session *s, const char *authzid,
			     const char *authcid, const char *password)
{
	imap_set_user(s, authcid, strlen(authcid));
	if (!login_auth_authzid_ok(authzid, s->user,
				   s->env->cfg->auth_default_domain)) {
		imap_refuse(s, "NO", "AUTHORIZATIONFAILED",
			    "The authorization identity must be empty or "
			    "your own user name.",
			    "authzid differs from authcid");
		s->user[0] = '\0';
		return;
	}
	imap_auth_request(s, password, strlen(password));
}

static void imap_auth_request(struct imap_session *s, const char *secret,
			      size_t secret_len)
{
	s->auth_req =
	    login_auth_send(s->env->auth, s->conn, AUTH_REQUEST_PASSWORD,
			    s->user, secret, secret_len, "", imap_auth_done, s);
	if (s->auth_req == NULL) {
		imap_refuse(s, "NO", "UNAVAILABLE",
			    "Authentication service unavailable; try again "
			    "later.",
			    "auth process unavailable");
		s->user[0] = '\0';
		return;
	}
	imap_session_set_busy(s, true);
}

static void imap_login_failed(struct imap_session *s, const char *cause)
{
	bool too_many = login_auth_log_failure(s->conn, s->user_typed, s->mech,
					       cause, &s->auth_failures);

	s->user[0] = '\0';
	imap_reply_tagged(s, "NO", "AUTHENTICATIONFAILED",
			  "Authentication failed.");
	if (too_many) {
		imap_reply_untagged(s, "BYE Too many authentication "
				       "failures, closing.");
		imap_session_log_refusal(s, "too many authentication failures");
		imap_session_close(s, "too many authentication failures");
	}
}

static void imap_auth_done(const struct auth_reply *reply, void *ctx)
{
	struct imap_session *s = ctx;
	const char *cause;

	s->auth_req = NULL;
	switch (login_auth_verdict(reply, &cause)) {
	case LOGIN_AUTH_TEMPFAIL:
		imap_refuse(s, "NO", "UNAVAILABLE",
			    "Authentication service unavailable; try again "
			    "later.",
			    cause);
		s->user[0] = '\0';
		break;
	case LOGIN_AUTH_FAILED:
		imap_login_failed(s, cause);
		break;
	case LOGIN_AUTH_OK:
		imap_login_ok(s, reply->user);
		break;
	}
	s->tag[0] = '\0';
	if (!conn_is_closing(s->conn))
		imap_session_set_busy(s, false);
}

/* The auth process accepted user (canonical): open the user's own Maildir
 * and nothing else (INV-U1). */
static void imap_login_ok(struct imap_session *s, const char *user)
{
	char caps[1024], cause[300];
	const char *err;

	snprintf(s->user, sizeof(s->user), "%s", user);
	s->maildir_fd = maildir_open(s->env->mail_root_fd, s->user, true, &err);
	if (s->maildir_fd < 0) {
		snprintf(cause, sizeof(cause), "cannot open Maildir: %s", err);
		imap_refuse(s, "NO", "UNAVAILABLE",
			    "Your mailbox cannot be opened right now; the "
			    "administrator has been told.",
			    cause);
		s->user[0] = '\0';
		return;
	}
	/* Drafts, Sent, Trash, Junk and Archive from the first login on;
	 * a failure leaves the user with fewer folders, not without mail. */
	if (folder_ensure_defaults(s->maildir_fd, cause, sizeof(cause)) !=
	    FOLDER_OK)
		log_warn("session=%s user=%s: cannot create the default "
			 "folders: %s",
			 conn_id(s->conn), s->user, cause);
	metrics_add(METRIC_LOGINS_OK, 1);
	imap_session_enter_state(s, IMAP_STATE_AUTH);
	imap_session_authenticated(s);
	log_info("login user=%s peer=%s session=%s proto=%s mech=%s tls=%s",
		 s->user, conn_peer(s->conn), conn_id(s->conn),
		 config_proto_name(conn_proto(s->conn)), s->mech,
		 conn_tls_version(s->conn));
	imap_session_capabilities(s, caps, sizeof(caps));
	imap_reply_tagged(s, "OK", NULL, "[CAPABILITY %s] Logged in.", caps);
}
