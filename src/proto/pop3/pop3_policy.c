/*
 * A POP3 user's session policy, where pop3_commands.c is the command
 * table and its handlers and pop3_session.c the connection and its
 * states: what a verified login leads to (the user's retention and
 * LOGIN-DELAY values, the last-login file, opening and locking the
 * mailbox) and what CAPA and QUIT derive from retention (RFC 2449
 * sections 6.5 and 6.7; doc/internals/retention.md).
 */
#include "proto/pop3/pop3_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xmalloc.h"
#include "storage/maildir.h"

/* In the user's Maildir: its mtime is the last successful POP3 login
 * (LOGIN-DELAY, RFC 2449 section 6.5). A file survives restarts and is
 * shared by every worker. */
#define POP3_LASTLOGIN_FILE "postd-lastlogin"

static void pop3_user_policy(struct pop3_session *s, const char *extra);
static void pop3_open_mailbox(struct pop3_session *s);
static bool pop3_login_delayed(struct pop3_session *s);
static void pop3_record_login(struct pop3_session *s);

void pop3_policy_login(struct pop3_session *s, const char *user,
		       const char *extra)
{
	snprintf(s->user, sizeof(s->user), "%s", user);
	pop3_user_policy(s, extra);
	pop3_open_mailbox(s);
}

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

/* The snapshot under the lock (INV-P2), once LOGIN-DELAY allows it. */
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
	if (s->login_delay > 0)
		pop3_record_login(s);
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

/* Touches the last-login file: its mtime is this login's time. Only
 * slows the next LOGIN-DELAY check down if it fails: logged. */
static void pop3_record_login(struct pop3_session *s)
{
	int fd = openat(s->maildir_fd, POP3_LASTLOGIN_FILE,
			O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0 || futimens(fd, NULL) < 0)
		log_warn("session=%s user=%s: cannot record the login "
			 "time: %s",
			 conn_id(s->conn), s->user, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* RFC 2449 6.5 and 6.7. Before login: the smallest EXPIRE and the largest
 * LOGIN-DELAY that any domain or user has, with USER when they differ.
 * The worker never reads the users file: the retention pass leaves what
 * the users' extra fields say in a summary (expire_summary_read()).
 * After login: the user's own values. */
void pop3_policy_capa(struct pop3_session *s, bool auth)
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
size_t pop3_policy_expire_at_quit(struct pop3_session *s)
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
