/*
 * The SMTP command table and handlers. A row carries a command's
 * preconditions (greeting first, not inside a transaction); the
 * dispatcher refuses a command that breaks them with the right reply and
 * enhanced status code (RFC 3463), so handlers contain only the action.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/postd_assert.h"
#include "lib/srs.h"
#include "lib/xmalloc.h"
#include "proto/smtp/smtp_commands.h"
#include "storage/maildir.h"

static smtp_handler_fn cmd_helo, cmd_ehlo, cmd_mail, cmd_rcpt, cmd_data,
    cmd_bdat, cmd_rset, cmd_noop, cmd_quit, cmd_vrfy, cmd_expn, cmd_help,
    cmd_starttls, cmd_auth;

/* Keyed by the enum; a missing last row fails the count check below, any
 * other missing row tests/unit/test_smtp_commands.c. */
static const struct smtp_command_row smtp_commands[] = {
    [SMTP_CMD_HELO] = {SMTP_CMD_HELO, cmd_helo, false, false},
    [SMTP_CMD_EHLO] = {SMTP_CMD_EHLO, cmd_ehlo, false, false},
    [SMTP_CMD_MAIL] = {SMTP_CMD_MAIL, cmd_mail, true, true},
    [SMTP_CMD_RCPT] = {SMTP_CMD_RCPT, cmd_rcpt, true, false},
    [SMTP_CMD_DATA] = {SMTP_CMD_DATA, cmd_data, true, false},
    [SMTP_CMD_BDAT] = {SMTP_CMD_BDAT, cmd_bdat, false, false},
    [SMTP_CMD_RSET] = {SMTP_CMD_RSET, cmd_rset, false, false},
    [SMTP_CMD_NOOP] = {SMTP_CMD_NOOP, cmd_noop, false, false},
    [SMTP_CMD_QUIT] = {SMTP_CMD_QUIT, cmd_quit, false, false},
    [SMTP_CMD_VRFY] = {SMTP_CMD_VRFY, cmd_vrfy, false, false},
    [SMTP_CMD_EXPN] = {SMTP_CMD_EXPN, cmd_expn, false, false},
    [SMTP_CMD_HELP] = {SMTP_CMD_HELP, cmd_help, false, false},
    [SMTP_CMD_STARTTLS] = {SMTP_CMD_STARTTLS, cmd_starttls, false, true},
    [SMTP_CMD_AUTH] = {SMTP_CMD_AUTH, cmd_auth, true, true},
};
_Static_assert(POSTD_N_ELEMENTS(smtp_commands) == SMTP_CMD_COUNT,
	       "smtp_commands[] needs one row per enum smtp_cmd value");

const struct smtp_command_row *smtp_commands_table(size_t *count_r)
{
	*count_r = POSTD_N_ELEMENTS(smtp_commands);
	return smtp_commands;
}

static void smtp_greet(struct smtp_session *s, const struct smtp_command *cmd,
		       bool esmtp);
static bool smtp_storage_low(struct smtp_session *s, char *cause,
			     size_t cause_size);
static bool smtp_tls_first(const struct smtp_session *s);
static bool smtp_ends_group(enum smtp_cmd cmd);
static void smtp_rcpt_lookup_done(const struct auth_reply *reply, void *ctx);
static bool smtp_rcpt_srs(struct smtp_session *s,
			  const struct smtp_command *cmd);
static void smtp_rcpt_add(struct smtp_session *s, const struct smtp_rcpt *r);
static bool smtp_rcpt_is_role(const struct smtp_session *s, const char *addr,
			      bool local);
static void smtp_rcpt_refuse_lookup(struct smtp_session *s,
				    const struct smtp_rcpt *r,
				    enum auth_cause cause);
static void smtp_rcpt_add_targets(struct smtp_session *s,
				  const struct smtp_rcpt *typed,
				  const struct auth_reply *reply);
static bool smtp_rcpt_known(const struct smtp_txn *t, const char *addr);
static int smtp_rcpt_open_maildirs(struct smtp_session *s,
				   struct smtp_rcpt *add, size_t n);
static void smtp_rcpt_log_expansion(struct smtp_session *s, const char *typed,
				    const struct auth_reply *reply);
static void smtp_starttls_done(void *ctx, bool ok);
static void smtp_auth_request(struct smtp_session *s, const char *user,
			      size_t user_len, const char *password,
			      size_t password_len);
static void smtp_auth_done(const struct auth_reply *reply, void *ctx);
static void smtp_set_user(struct smtp_session *s, const char *name, size_t len);

void smtp_commands_dispatch(struct smtp_session *s, char *line, size_t len)
{
	struct smtp_command cmd;
	const struct smtp_command_row *row;
	const char *error;
	unsigned flags = s->txn.params.smtputf8 ? SMTP_PARSE_F_UTF8 : 0;

	/* ALPACA-style cross-protocol: a browser or proxy made to talk to
	 * this port. Checked on every line (Postfix refuses these verbs
	 * anywhere); none of them is an SMTP command. */
	if (smtp_is_http_request(line, len)) {
		smtp_session_drop(s, "cross-protocol: HTTP request",
				  "554 5.7.0 %s HTTP request on an SMTP port; "
				  "closing connection",
				  s->env->cfg->hostname);
		return;
	}
	if (!s->txn.active &&
	    ++s->commands_before_mail > SMTP_MAX_COMMANDS_BEFORE_MAIL) {
		smtp_reply(s,
			   "421 4.7.0 %s Too many commands without a "
			   "transaction, closing connection",
			   s->env->cfg->hostname);
		smtp_session_log_refusal(s, "too many commands before MAIL");
		conn_close(s->conn, "too many commands before MAIL");
		return;
	}
	if (smtp_parse_command(line, len, flags, &cmd, &error) !=
	    SMTP_PARSE_OK) {
		/* RFC 3030: a BDAT's chunk follows it at once. Without a
		 * size we trust, where it ends is unknown and its bytes
		 * would be read as commands (INV-S1): close. */
		if (cmd.cmd == SMTP_CMD_BDAT)
			smtp_session_drop(s,
					  "BDAT with a malformed size: the "
					  "chunk cannot be skipped",
					  "%s; closing connection", error);
		else
			smtp_reply_error(s, "%s", error);
		return;
	}
	row = &smtp_commands[cmd.cmd];
	/* Bytes already here were sent before the reply: a DATA body, or
	 * plaintext meant for after TLS (CVE-2011-0411 class), must never
	 * be read as commands (INV-S1). Checked before any reply, so a
	 * refused DATA is covered too. */
	if (smtp_ends_group(cmd.cmd) &&
	    !smtp_session_in_sync(s, smtp_cmd_name(cmd.cmd)))
		return;
	if (row->needs_greeting && !s->greeted) {
		smtp_reply_error(s, "503 5.5.1 Bad sequence of commands: send "
				    "EHLO first");
		return;
	}
	if (row->outside_txn && s->txn.active) {
		smtp_reply_error(s, "503 5.5.1 Bad sequence of commands: not "
				    "inside a mail transaction");
		return;
	}
	row->handler(s, &cmd);
}

/* RFC 2920 section 3.1, RFC 3207 section 4.2: the last command of a
 * pipelined group; the client waits for its reply. (BDAT may be
 * pipelined, RFC 3030.) */
static bool smtp_ends_group(enum smtp_cmd cmd)
{
	return cmd == SMTP_CMD_DATA || cmd == SMTP_CMD_QUIT ||
	       cmd == SMTP_CMD_STARTTLS;
}

/* HELO, EHLO: a new session state, any transaction forgotten. */
static void smtp_greet(struct smtp_session *s, const struct smtp_command *cmd,
		       bool esmtp)
{
	snprintf(s->helo, sizeof(s->helo), "%.*s", (int)cmd->arg_len, cmd->arg);
	s->greeted = true;
	s->esmtp = esmtp;
	smtp_txn_reset(s);
}

static void cmd_helo(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_greet(s, cmd, false);
	smtp_reply(s, "250 %s", s->env->cfg->hostname);
}

static void cmd_ehlo(struct smtp_session *s, const struct smtp_command *cmd)
{
	const char *lines[12];
	char size[48], greet[300];
	size_t n = 0;

	smtp_greet(s, cmd, true);
	snprintf(greet, sizeof(greet), "%s greets %s", s->env->cfg->hostname,
		 s->helo);
	snprintf(size, sizeof(size), "SIZE %u", s->env->cfg->max_message_size);
	lines[n++] = greet;
	lines[n++] = "PIPELINING";
	lines[n++] = size;
	lines[n++] = "8BITMIME";
	lines[n++] = "SMTPUTF8";
	lines[n++] = "ENHANCEDSTATUSCODES";
	lines[n++] = "CHUNKING";
	if (!conn_is_tls(s->conn) && s->env->ssl_ctx != NULL)
		lines[n++] = "STARTTLS";
	if (!s->authenticated && smtp_session_auth_offered(s))
		lines[n++] = "AUTH PLAIN LOGIN";
	for (size_t i = 0; i < n; i++)
		smtp_reply(s, "250%c%s", i + 1 < n ? '-' : ' ', lines[i]);
}

/* INV-D5: refuse before accepting when the disk is nearly full; the
 * cause names what is short, for the log. */
static bool smtp_storage_low(struct smtp_session *s, char *cause,
			     size_t cause_size)
{
	struct statvfs st;
	unsigned long long free_bytes, need;

	if (fstatvfs(s->env->mail_root_fd, &st) < 0)
		return false;
	free_bytes = (unsigned long long)st.f_bavail * st.f_frsize;
	need = SMTP_MIN_FREE_BYTES + s->txn.params.size;
	if (free_bytes < need) {
		snprintf(cause, cause_size,
			 "disk nearly full (ENOSPC soon): %llu bytes free "
			 "under data_dir, %llu needed",
			 free_bytes, need);
		return true;
	}
	if (st.f_files != 0 && st.f_favail < SMTP_MIN_FREE_INODES) {
		snprintf(cause, cause_size,
			 "disk nearly full (ENOSPC soon): %llu inodes free "
			 "under data_dir, %u needed",
			 (unsigned long long)st.f_favail,
			 (unsigned)SMTP_MIN_FREE_INODES);
		return true;
	}
	return false;
}

/* RFC 3207 section 4: a submission port that will take no password in
 * clear wants STARTTLS before anything else. */
static bool smtp_tls_first(const struct smtp_session *s)
{
	return s->submission && !conn_is_tls(s->conn) &&
	       s->env->ssl_ctx != NULL && !smtp_session_plaintext_allowed(s);
}

static void cmd_mail(struct smtp_session *s, const struct smtp_command *cmd)
{
	char sender[SMTP_MAILBOX_BUF_SIZE], lower[SMTP_MAILBOX_BUF_SIZE];
	char cause[SMTP_MAILBOX_BUF_SIZE * 4 + 64];
	char logged[SMTP_MAILBOX_BUF_SIZE * 4];

	if (smtp_tls_first(s)) {
		smtp_refuse(s,
			    "TLS required: MAIL before STARTTLS on "
			    "submission (plaintext_auth)",
			    "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (s->submission && !s->authenticated) {
		smtp_refuse(s, "MAIL without AUTH on submission",
			    "530 5.7.0 Authentication required");
		return;
	}
	if (cmd->params.size_set &&
	    cmd->params.size > s->env->cfg->max_message_size) {
		snprintf(cause, sizeof(cause),
			 "message too big: SIZE=%llu over max_message_size "
			 "%u",
			 (unsigned long long)cmd->params.size,
			 s->env->cfg->max_message_size);
		smtp_refuse(s, cause,
			    "552 5.3.4 Message size exceeds fixed maximum "
			    "message size (%u)",
			    s->env->cfg->max_message_size);
		return;
	}
	if (cmd->params.body == SMTP_BODY_BINARYMIME) {
		smtp_reply_error(s, "555 5.5.4 BODY=BINARYMIME is not "
				    "supported");
		return;
	}
	if (smtp_path_canonical(&cmd->path, false, sender, sizeof(sender)) <
	    0) {
		smtp_reply_error(s, "501 5.1.7 Bad sender address syntax");
		return;
	}
	if (s->submission && s->env->cfg->sender_login_match) {
		if (smtp_path_canonical(&cmd->path, true, lower,
					sizeof(lower)) < 0 ||
		    strcmp(lower, s->user) != 0) {
			snprintf(
			    cause, sizeof(cause),
			    "sender <%s> is not the user's own address",
			    log_escape_word(logged, sizeof(logged), sender));
			smtp_refuse(s, cause,
				    "553 5.7.1 Sender address rejected: not "
				    "owned by user %s",
				    s->user);
			return;
		}
	}
	s->txn.params = cmd->params;
	if (smtp_storage_low(s, cause, sizeof(cause))) {
		memset(&s->txn.params, 0, sizeof(s->txn.params));
		smtp_tempfail(s, cause,
			      "452 4.3.1 Insufficient system storage");
		return;
	}
	s->txn.active = true;
	s->commands_before_mail = 0;
	snprintf(s->txn.sender, sizeof(s->txn.sender), "%s", sender);
	smtp_reply(s, "250 2.1.0 Sender OK");
}

static void smtp_rcpt_add(struct smtp_session *s, const struct smtp_rcpt *r)
{
	struct smtp_txn *t = &s->txn;

	t->rcpts = xreallocarray(t->rcpts, t->rcpt_count + 1, sizeof(*r));
	t->rcpts[t->rcpt_count++] = *r;
	if (r->local)
		t->local_count++;
}

/*
 * RFC 5321 section 4.5.1, RFC 2142: postmaster@ (and abuse@ when
 * abuse_address is set) of a local domain. They are accepted from a
 * client that is otherwise refused: a client policy added to cmd_rcpt
 * must let them through.
 */
static bool smtp_rcpt_is_role(const struct smtp_session *s, const char *addr,
			      bool local)
{
	if (!local)
		return false;
	if (strncmp(addr, "postmaster@", 11) == 0)
		return true;
	return s->env->cfg->abuse_address != NULL &&
	       strncmp(addr, "abuse@", 6) == 0;
}

static bool smtp_rcpt_known(const struct smtp_txn *t, const char *addr)
{
	for (size_t i = 0; i < t->rcpt_count; i++) {
		if (strcmp(t->rcpts[i].addr, addr) == 0)
			return true;
	}
	return false;
}

static void cmd_rcpt(struct smtp_session *s, const struct smtp_command *cmd)
{
	struct smtp_txn *t = &s->txn;
	struct smtp_rcpt r = {.maildir_fd = -1};
	struct auth_request req;
	char domain[SMTP_MAX_DOMAIN + 1], cause[SMTP_MAILBOX_BUF_SIZE * 4 + 64];
	char logged[SMTP_MAILBOX_BUF_SIZE * 4];
	bool local, role;

	if (!t->active) {
		smtp_reply_error(s, "503 5.5.1 Bad sequence of commands: MAIL "
				    "first");
		return;
	}
	if (cmd->path.postmaster) {
		/* RFC 5321 section 4.5.1: <Postmaster> always works. */
		snprintf(r.addr, sizeof(r.addr), "postmaster@%s",
			 s->env->cfg->domains[0]);
		local = true;
	} else {
		snprintf(domain, sizeof(domain), "%s", cmd->path.domain);
		ascii_lowercase(domain);
		local = !cmd->path.literal &&
			config_is_local_domain(s->env->cfg, domain);
		if (smtp_path_canonical(&cmd->path, local, r.addr,
					sizeof(r.addr)) < 0) {
			smtp_reply_error(s, "501 5.1.3 Bad recipient address "
					    "syntax");
			return;
		}
	}
	role = smtp_rcpt_is_role(s, r.addr, local);
	/* A role address may go past the limit by one alias's worth, so
	 * the envelope stays bounded (INV-S3). */
	if (t->rcpt_count >= s->env->cfg->max_recipients &&
	    (!role ||
	     t->rcpt_count >= s->env->cfg->max_recipients + AUTH_MAX_TARGETS)) {
		snprintf(cause, sizeof(cause),
			 "too many recipients (max_recipients %u)",
			 s->env->cfg->max_recipients);
		smtp_refuse(s, cause, "452 4.5.3 Too many recipients");
		return;
	}
	if (smtp_rcpt_srs(s, cmd))
		return;
	if (smtp_rcpt_known(t, r.addr)) {
		smtp_reply(s, "250 2.1.5 Recipient OK (duplicate)");
		return;
	}
	if (!local) {
		/* INV-R1: only an authenticated session relays. */
		if (!s->authenticated) {
			snprintf(
			    cause, sizeof(cause),
			    "relay to <%s> denied: not a local domain "
			    "and no AUTH",
			    log_escape_word(logged, sizeof(logged), r.addr));
			smtp_refuse(s, cause,
				    "554 5.7.1 <%s>: Relay access denied",
				    r.addr);
			return;
		}
		smtp_rcpt_add(s, &r);
		smtp_reply(s, "250 2.1.5 Recipient OK");
		return;
	}
	/* INV-R1, INV-S2: '%', '!', quotes and the like never make a
	 * canonical user, so they end here. */
	if (!username_is_canonical(r.addr)) {
		snprintf(cause, sizeof(cause), "unknown recipient <%s>",
			 log_escape_word(logged, sizeof(logged), r.addr));
		smtp_refuse(s, cause,
			    "550 5.1.1 <%s>: Recipient address rejected: User "
			    "unknown",
			    r.addr);
		return;
	}
	memset(&req, 0, sizeof(req));
	req.type = AUTH_REQUEST_LOOKUP;
	req.service = (uint8_t)conn_proto(s->conn);
	snprintf(req.peer, sizeof(req.peer), "%s", conn_peer(s->conn));
	snprintf(req.user, sizeof(req.user), "%s", r.addr);
	t->pending = r;
	t->pending_role = role;
	s->auth_req =
	    auth_client_send(s->env->auth, &req, smtp_rcpt_lookup_done, s);
	if (s->auth_req == NULL) {
		smtp_tempfail(s,
			      "recipient lookup failed: auth process "
			      "unavailable",
			      "451 4.3.0 Temporary lookup failure; try again "
			      "later");
		return;
	}
	smtp_session_set_busy(s, true);
}

/*
 * A bounce coming back to a forwarded message: RCPT TO an SRS0/SRS1
 * address at srs_domain (doc/internals/srs.md). Returns false if the
 * address is no such thing; else it has replied. A valid one is queued
 * to the address it decodes to, without AUTH: INV-R1 holds, since only an
 * address whose hash this server made (from a sender it once forwarded)
 * relays, and only to that sender, for SRS_MAX_AGE_DAYS.
 */
static bool smtp_rcpt_srs(struct smtp_session *s,
			  const struct smtp_command *cmd)
{
	const struct smtp_path *path = &cmd->path;
	struct smtp_rcpt r = {.maildir_fd = -1, .forwarded = true};
	char logged[SMTP_MAILBOX_BUF_SIZE * 4], typed[SMTP_MAILBOX_BUF_SIZE];
	char cause[SMTP_MAILBOX_BUF_SIZE * 4 + 96];
	enum srs_result res;

	if (path->postmaster || path->literal || path->null ||
	    strcasecmp(path->domain, config_srs_domain(s->env->cfg)) != 0 ||
	    !srs_is_srs_local(path->local, path->local_len))
		return false;
	if (smtp_path_canonical(path, false, typed, sizeof(typed)) < 0)
		typed[0] = '\0';
	log_escape_word(logged, sizeof(logged), typed);
	res = s->env->srs == NULL
		  ? SRS_NO_SECRET
		  : srs_reverse(s->env->srs, path->local, path->local_len,
				time(NULL), r.addr, sizeof(r.addr));
	if (res == SRS_NO_SECRET) {
		snprintf(cause, sizeof(cause),
			 "SRS address <%s>: no SRS secret loaded", logged);
		smtp_tempfail(s, cause,
			      "451 4.3.0 Temporary lookup failure; try again "
			      "later");
		return true;
	}
	if (res != SRS_OK || path->quoted) {
		snprintf(cause, sizeof(cause), "SRS address <%s>: %s", logged,
			 path->quoted ? "malformed" : srs_result_name(res));
		smtp_refuse(s, cause,
			    "550 5.1.1 <%s>: Recipient address rejected: "
			    "invalid or expired return address",
			    typed);
		return true;
	}
	for (size_t i = 0; i < s->txn.rcpt_count; i++) {
		if (strcmp(s->txn.rcpts[i].addr, r.addr) == 0) {
			smtp_reply(s, "250 2.1.5 Recipient OK (duplicate)");
			return true;
		}
	}
	log_info("srs session=%s id=%s to=<%s> decoded to <%s>",
		 conn_id(s->conn), s->id, logged,
		 log_escape_word(cause, sizeof(cause), r.addr));
	smtp_rcpt_add(s, &r);
	smtp_reply(s, "250 2.1.5 Recipient OK");
	return true;
}

static void smtp_rcpt_lookup_done(const struct auth_reply *reply, void *ctx)
{
	struct smtp_session *s = ctx;
	struct smtp_rcpt r = s->txn.pending;
	char cause[128];

	s->auth_req = NULL;
	s->txn.pending.maildir_fd = -1;
	if (reply == NULL || reply->result == AUTH_RESULT_TEMPFAIL) {
		/* The cause (the user database is down, the auth process
		 * is busy) is what the operator needs on the line. */
		snprintf(cause, sizeof(cause), "recipient lookup failed: %s",
			 reply == NULL ? "auth process unavailable"
				       : auth_cause_str(reply->cause));
		smtp_tempfail(s, cause,
			      "451 4.3.0 Temporary lookup failure; try again "
			      "later");
	} else if (reply->result != AUTH_RESULT_OK ||
		   reply->target_count == 0) {
		smtp_rcpt_refuse_lookup(s, &r, (enum auth_cause)reply->cause);
	} else {
		smtp_rcpt_add_targets(s, &r, reply);
	}
	smtp_session_set_busy(s, false);
}

static void smtp_rcpt_refuse_lookup(struct smtp_session *s,
				    const struct smtp_rcpt *r,
				    enum auth_cause cause)
{
	char why[SMTP_MAILBOX_BUF_SIZE * 4 + 64];
	char logged[SMTP_MAILBOX_BUF_SIZE * 4];

	log_escape_word(logged, sizeof(logged), r->addr);
	if (cause == AUTH_CAUSE_ALIAS_LOOP) {
		snprintf(why, sizeof(why), "alias loop at <%s>", logged);
		/* RFC 3463 X.4.6: routing loop detected. */
		smtp_refuse(s, why,
			    "550 5.4.6 <%s>: Recipient address rejected: "
			    "alias loop",
			    r->addr);
	} else if (cause == AUTH_CAUSE_ALIAS_TOO_MANY) {
		snprintf(why, sizeof(why),
			 "alias <%s> expands to too many addresses", logged);
		/* RFC 3463 X.2.4: mailing list expansion problem. */
		smtp_refuse(s, why,
			    "550 5.2.4 <%s>: Recipient address rejected: "
			    "alias expands to too many addresses",
			    r->addr);
	} else {
		snprintf(why, sizeof(why), "unknown recipient <%s>", logged);
		smtp_refuse(s, why,
			    "550 5.1.1 <%s>: Recipient address rejected: User "
			    "unknown",
			    r->addr);
	}
}

/* Opens the Maildir of each local rcpt; on failure closes those opened
 * and replies. */
static int smtp_rcpt_open_maildirs(struct smtp_session *s,
				   struct smtp_rcpt *add, size_t n)
{
	char cause[SMTP_MAILBOX_BUF_SIZE * 4 + 64];
	const char *error;

	for (size_t i = 0; i < n; i++) {
		int err;

		if (!add[i].local)
			continue;
		add[i].maildir_fd = maildir_open(s->env->mail_root_fd,
						 add[i].addr, true, &error);
		if (add[i].maildir_fd >= 0)
			continue;
		err = errno;
		for (size_t k = 0; k < i; k++) {
			if (add[k].maildir_fd >= 0)
				close(add[k].maildir_fd);
		}
		snprintf(cause, sizeof(cause), "%sMaildir of %s: %s",
			 err == ENOSPC	 ? "disk full (ENOSPC): "
			 : err == EDQUOT ? "over quota (EDQUOT): "
					 : "",
			 add[i].addr, error);
		if (err == ENOSPC || err == EDQUOT)
			smtp_tempfail(s, cause,
				      "452 4.3.1 Insufficient system storage");
		else
			smtp_tempfail(s, cause,
				      "451 4.3.0 Mailbox temporarily "
				      "unavailable");
		return -1;
	}
	return 0;
}

/* One line naming what an alias, a subaddress or a role address became
 * (nothing for a plain user). The targets come from the auth process,
 * which sends printable ASCII only. */
static void smtp_rcpt_log_expansion(struct smtp_session *s, const char *typed,
				    const struct auth_reply *reply)
{
	char list[2048];
	size_t len = 0;

	if (reply->target_count == 1 &&
	    strcmp(auth_reply_target(reply, 0, NULL), typed) == 0)
		return;
	list[0] = '\0';
	for (uint32_t i = 0; i < reply->target_count; i++) {
		int n = snprintf(list + len, sizeof(list) - len, "%s<%s>",
				 i > 0 ? "," : "",
				 auth_reply_target(reply, i, NULL));

		if (n < 0 || (size_t)n >= sizeof(list) - len) {
			snprintf(list + len, sizeof(list) - len, ",...");
			break;
		}
		len += (size_t)n;
	}
	log_info("rcpt <%s> expanded to %s session=%s", typed, list,
		 conn_id(s->conn));
}

/* An address the auth process expanded: one rcpt per new target, one
 * reply for all. A remote target came from the admin's alias, so it is
 * taken without AUTH (INV-R1 is about the client's own choice). */
static void smtp_rcpt_add_targets(struct smtp_session *s,
				  const struct smtp_rcpt *typed,
				  const struct auth_reply *reply)
{
	struct smtp_txn *t = &s->txn;
	struct smtp_rcpt add[AUTH_MAX_TARGETS];
	size_t n = 0, limit = s->env->cfg->max_recipients;
	char cause[128];

	if (t->pending_role)
		limit += AUTH_MAX_TARGETS;
	for (uint32_t i = 0; i < reply->target_count; i++) {
		bool remote;
		const char *addr = auth_reply_target(reply, i, &remote);

		if (smtp_rcpt_known(t, addr))
			continue;
		memset(&add[n], 0, sizeof(add[n]));
		snprintf(add[n].addr, sizeof(add[n].addr), "%s", addr);
		add[n].local = !remote;
		add[n].forwarded = remote;
		add[n].maildir_fd = -1;
		n++;
	}
	if (t->rcpt_count + n > limit) {
		snprintf(cause, sizeof(cause),
			 "too many recipients (max_recipients %u) after alias "
			 "expansion",
			 s->env->cfg->max_recipients);
		smtp_refuse(s, cause, "452 4.5.3 Too many recipients");
		return;
	}
	if (smtp_rcpt_open_maildirs(s, add, n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		smtp_rcpt_add(s, &add[i]);
	smtp_rcpt_log_expansion(s, typed->addr, reply);
	smtp_reply(s, "250 2.1.5 Recipient OK");
}

static void cmd_data(struct smtp_session *s, const struct smtp_command *cmd)
{
	struct smtp_txn *t = &s->txn;
	unsigned flags =
	    s->env->cfg->smtp_normalize_bare_lf ? SMTP_DATA_F_NORMALIZE : 0;

	(void)cmd;
	if (!t->active || t->bdat_started) {
		smtp_reply_error(s, "503 5.5.1 Bad sequence of commands: MAIL "
				    "first");
		return;
	}
	if (t->rcpt_count == 0) {
		smtp_reply_error(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (smtp_session_message_begin(s) < 0) {
		smtp_txn_reset(s);
		return;
	}
	smtp_data_init(&t->data, s->env->cfg->max_message_size, flags);
	smtp_content_set_max_line(&t->data.content,
				  s->env->cfg->smtp_max_line_length);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtp_session_enter_mode(s, SMTP_MODE_DATA);
}

static void cmd_bdat(struct smtp_session *s, const struct smtp_command *cmd)
{
	struct smtp_txn *t = &s->txn;
	unsigned flags =
	    s->env->cfg->smtp_normalize_bare_lf ? SMTP_DATA_F_NORMALIZE : 0;
	char cause[128];

	/* Reading a chunk bigger than any message we take, only to drop
	 * it, would let one command hold the connection for as long as
	 * the client likes: refuse and close instead. */
	if (cmd->bdat_size > s->env->cfg->max_message_size) {
		snprintf(cause, sizeof(cause),
			 "BDAT chunk of %llu octets over max_message_size %u",
			 (unsigned long long)cmd->bdat_size,
			 s->env->cfg->max_message_size);
		smtp_session_drop(s, cause,
				  "552 5.3.4 Message size exceeds fixed "
				  "maximum message size; closing connection");
		return;
	}
	if (!t->bdat_started && (!t->active || t->rcpt_count == 0)) {
		/* The chunk is on its way: read it, then refuse it. */
		smtp_bdat_init(&t->bdat, SMTP_DATA_NO_LIMIT,
			       SMTP_DATA_F_DISCARD);
		t->bdat_bogus = true;
	} else if (!t->bdat_started) {
		if (smtp_session_message_begin(s) < 0) {
			smtp_bdat_init(&t->bdat, SMTP_DATA_NO_LIMIT,
				       SMTP_DATA_F_DISCARD);
			t->bdat_bogus = true;
		} else {
			smtp_bdat_init(&t->bdat, s->env->cfg->max_message_size,
				       flags);
			smtp_content_set_max_line(
			    &t->bdat.content,
			    s->env->cfg->smtp_max_line_length);
			t->bdat_started = true;
		}
	}
	t->chunk_size = cmd->bdat_size;
	if (smtp_bdat_chunk(&t->bdat, cmd->bdat_size, cmd->bdat_last) < 0) {
		/* Its chunk is on the way and nothing will read it. */
		smtp_session_drop(s, "BDAT after the LAST chunk",
				  "503 5.5.1 Bad sequence of commands; closing "
				  "connection");
		return;
	}
	smtp_session_enter_mode(s, SMTP_MODE_BDAT);
}

static void cmd_rset(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	smtp_txn_reset(s);
	smtp_reply(s, "250 2.0.0 OK");
}

static void cmd_noop(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	smtp_reply(s, "250 2.0.0 OK");
}

static void cmd_quit(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	smtp_reply(s, "221 2.0.0 %s Bye", s->env->cfg->hostname);
	conn_close(s->conn, "QUIT");
}

static void cmd_vrfy(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	/* RFC 5321 section 3.5.3; telling who exists helps spammers. */
	smtp_reply(s, "252 2.5.2 Cannot VRFY user; try RCPT to attempt "
		      "delivery");
}

static void cmd_expn(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	smtp_reply_error(s, "502 5.5.1 EXPN is not supported");
}

static void cmd_help(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	smtp_reply(s, "214 2.0.0 postd: see RFC 5321");
}

static void cmd_starttls(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	if (conn_is_tls(s->conn)) {
		smtp_reply_error(s, "503 5.5.1 TLS is already active");
		return;
	}
	if (s->env->ssl_ctx == NULL) {
		smtp_reply_error(s, "454 4.7.0 TLS not available: the server "
				    "has no certificate");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	smtp_session_set_busy(s, true);
	conn_starttls(s->conn, s->env->ssl_ctx, smtp_starttls_done);
}

/* RFC 3207 section 4.2: forget everything learnt before TLS (INV-S1). */
static void smtp_starttls_done(void *ctx, bool ok)
{
	struct smtp_session *s = ctx;

	if (!ok)
		return;
	s->greeted = false;
	s->esmtp = false;
	s->helo[0] = '\0';
	s->authenticated = false;
	s->user[0] = '\0';
	s->user_typed[0] = '\0';
	s->sasl = SMTP_SASL_NONE;
	smtp_txn_reset(s);
	smtp_session_set_busy(s, false);
}

static void cmd_auth(struct smtp_session *s, const struct smtp_command *cmd)
{
	enum sasl_mech mech;

	if (!s->esmtp) {
		smtp_reply_error(s, "503 5.5.1 Bad sequence of commands: send "
				    "EHLO first");
		return;
	}
	if (s->authenticated) {
		smtp_reply_error(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (!s->submission && !s->env->cfg->smtp_auth) {
		smtp_reply_error(s, "502 5.5.1 AUTH is not available on this "
				    "port; use submission (587 or 465)");
		return;
	}
	if (!smtp_session_plaintext_allowed(s)) {
		smtp_refuse(s,
			    "TLS required: plaintext AUTH before STARTTLS "
			    "(plaintext_auth)",
			    "538 5.7.11 Encryption required for requested "
			    "authentication mechanism: enable STARTTLS or use "
			    "port 465");
		return;
	}
	mech = sasl_mech_from_name(cmd->arg);
	if (mech == SASL_MECH_UNKNOWN) {
		char cause[96];

		/* The parser allows only [A-Za-z0-9_-] here. Outlook's
		 * "Secure Password Authentication" asks for NTLM. */
		snprintf(cause, sizeof(cause),
			 "unsupported SASL mechanism %s (only PLAIN and "
			 "LOGIN are offered)",
			 cmd->arg);
		smtp_refuse(s, cause,
			    "504 5.5.4 Unrecognized authentication type");
		return;
	}
	s->mech = sasl_mech_name(mech);
	if (mech == SASL_MECH_PLAIN) {
		s->sasl = SMTP_SASL_PLAIN;
		if (cmd->arg2 != NULL) {
			smtp_commands_sasl_continue(s, (char *)cmd->arg2,
						    cmd->arg2_len);
			return;
		}
		smtp_reply(s, "334 ");
		return;
	}
	s->sasl = SMTP_SASL_LOGIN_USER;
	if (cmd->arg2 != NULL) {
		smtp_commands_sasl_continue(s, (char *)cmd->arg2,
					    cmd->arg2_len);
		return;
	}
	smtp_reply(s, "334 VXNlcm5hbWU6"); /* "Username:" */
}

static void smtp_set_user(struct smtp_session *s, const char *name, size_t len)
{
	size_t n =
	    len < sizeof(s->user_typed) - 1 ? len : sizeof(s->user_typed) - 1;

	memcpy(s->user_typed, name, n);
	s->user_typed[n] = '\0';
}

void smtp_commands_sasl_continue(struct smtp_session *s, char *line, size_t len)
{
	struct sasl_credentials creds;
	const char *error;
	char zid[USERNAME_BUF_SIZE], cid[USERNAME_BUF_SIZE];
	enum smtp_sasl_step step = s->sasl;

	s->sasl = SMTP_SASL_NONE;
	if (sasl_is_cancel(line)) {
		smtp_reply_error(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		smtp_reply_error(s, "501 5.5.2 Invalid base64 data");
		return;
	}
	if (step == SMTP_SASL_PLAIN) {
		if (sasl_plain_decode(line, len, &creds, &error) < 0) {
			smtp_reply_error(s, "501 5.5.2 %s", error);
			return;
		}
		/* INV-A1: acting as somebody else is not offered. */
		if (creds.authzid[0] != '\0' &&
		    (username_normalize(creds.authzid, strlen(creds.authzid),
					s->env->cfg->auth_default_domain, zid,
					sizeof(zid)) < 0 ||
		     username_normalize(creds.authcid, strlen(creds.authcid),
					s->env->cfg->auth_default_domain, cid,
					sizeof(cid)) < 0 ||
		     strcmp(zid, cid) != 0)) {
			smtp_set_user(s, creds.authcid, strlen(creds.authcid));
			OPENSSL_cleanse(&creds, sizeof(creds));
			metrics_add(METRIC_LOGINS_FAILED, 1);
			smtp_refuse(s, "authzid differs from authcid",
				    "535 5.7.8 The authorization identity must "
				    "be empty or your own user name");
			return;
		}
		smtp_auth_request(s, creds.authcid, strlen(creds.authcid),
				  creds.password, strlen(creds.password));
		OPENSSL_cleanse(&creds, sizeof(creds));
		return;
	}
	if (step == SMTP_SASL_LOGIN_USER) {
		if (sasl_login_decode(line, len, creds.authcid,
				      sizeof(creds.authcid), &error) < 0) {
			smtp_reply_error(s, "501 5.5.2 %s", error);
			return;
		}
		smtp_set_user(s, creds.authcid, strlen(creds.authcid));
		s->sasl = SMTP_SASL_LOGIN_PASS;
		smtp_reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
		return;
	}
	if (sasl_login_decode(line, len, creds.password, sizeof(creds.password),
			      &error) < 0) {
		smtp_reply_error(s, "501 5.5.2 %s", error);
		return;
	}
	smtp_auth_request(s, s->user_typed, strlen(s->user_typed),
			  creds.password, strlen(creds.password));
	OPENSSL_cleanse(&creds, sizeof(creds));
}

static void smtp_auth_request(struct smtp_session *s, const char *user,
			      size_t user_len, const char *password,
			      size_t password_len)
{
	struct auth_request req;
	char canonical[USERNAME_BUF_SIZE];

	smtp_set_user(s, user, user_len);
	/* A name that cannot be a user goes on as an empty one, so it fails
	 * with the same reply and timing as an unknown user (INV-A1). */
	if (username_normalize(user, user_len, s->env->cfg->auth_default_domain,
			       canonical, sizeof(canonical)) < 0)
		canonical[0] = '\0';
	memset(&req, 0, sizeof(req));
	req.type = AUTH_REQUEST_PASSWORD;
	req.service = (uint8_t)conn_proto(s->conn);
	snprintf(req.peer, sizeof(req.peer), "%s", conn_peer(s->conn));
	snprintf(req.user, sizeof(req.user), "%s", canonical);
	if (password_len >= sizeof(req.secret))
		password_len = sizeof(req.secret) - 1;
	memcpy(req.secret, password, password_len);
	s->auth_req = auth_client_send(s->env->auth, &req, smtp_auth_done, s);
	OPENSSL_cleanse(&req, sizeof(req));
	if (s->auth_req == NULL) {
		smtp_tempfail(s, "auth process unavailable",
			      "454 4.7.0 Temporary authentication failure");
		return;
	}
	smtp_session_set_busy(s, true);
}

static void smtp_auth_done(const struct auth_reply *reply, void *ctx)
{
	struct smtp_session *s = ctx;
	char user[AUTH_MAX_USER * 4 + 1];

	s->auth_req = NULL;
	if (reply == NULL || reply->result == AUTH_RESULT_TEMPFAIL) {
		smtp_tempfail(s,
			      reply == NULL ? "auth process unavailable"
					    : auth_cause_str(reply->cause),
			      "454 4.7.0 Temporary authentication failure");
	} else if (reply->result != AUTH_RESULT_OK ||
		   !username_is_canonical(reply->user)) {
		/* INV-A1: one reply for an unknown user and a wrong
		 * password; only this log line tells them apart. It is
		 * the refusal's one line, in the same form as POP3's. */
		metrics_add(METRIC_LOGINS_FAILED, 1);
		log_escape(user, sizeof(user), s->user_typed,
			   strlen(s->user_typed));
		log_info("auth failed user=%s peer=%s session=%s proto=%s "
			 "cause=%s mech=%s",
			 user[0] ? user : "-", conn_peer(s->conn),
			 conn_id(s->conn),
			 config_proto_name(conn_proto(s->conn)),
			 auth_cause_str(reply->cause), s->mech);
		smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
		s->errors++;
		if (++s->auth_failures >= SESSION_MAX_AUTH_FAILURES &&
		    !conn_is_closing(s->conn)) {
			smtp_reply(s,
				   "421 4.7.0 %s Too many authentication "
				   "failures, closing connection",
				   s->env->cfg->hostname);
			smtp_session_log_refusal(
			    s, "too many authentication failures");
			conn_close(s->conn, "too many authentication failures");
		}
	} else {
		snprintf(s->user, sizeof(s->user), "%s", reply->user);
		s->authenticated = true;
		metrics_add(METRIC_LOGINS_OK, 1);
		log_info("login user=%s peer=%s session=%s proto=%s mech=%s "
			 "tls=%s",
			 s->user, conn_peer(s->conn), conn_id(s->conn),
			 config_proto_name(conn_proto(s->conn)), s->mech,
			 conn_tls_version(s->conn));
		smtp_reply(s, "235 2.7.0 Authentication successful");
	}
	if (!conn_is_closing(s->conn))
		smtp_session_set_busy(s, false);
}
