/*
 * The retention pass (doc/internals/retention.md): reads the users file
 * while root, chroots into the data folder, drops privileges, purges the
 * mailbox of every user of a local domain that no session holds, logs
 * each removal and exits.
 */
#include "daemon/expire_child.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/passwd_file.h"
#include "auth/userdb_pgsql.h"
#include "daemon/privdrop.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/username.h"
#include "lib/xmalloc.h"
#include "storage/expire.h"
#include "storage/maildir.h"

static int expire_child_user(const struct config *cfg, int mail_root_fd,
			     const struct passwd_entry *e, time_t now,
			     size_t *removed_r);
static void expire_child_report(const struct expire_removal *r, void *ctx);
static int expire_child_folders(const struct config *cfg, int maildir_fd,
				const char *user, time_t now,
				size_t *removed_r);
static void expire_child_summary(const struct config *cfg, int mail_root_fd,
				 const struct passwd_db *db);

void expire_child_main(const struct config *cfg, int mail_root_fd,
		       bool foreground)
{
	struct passwd_db *db = NULL;
	const char *error;
	size_t removed = 0, n;
	int errors = 0;
	time_t now;

	(void)foreground;
	/* The users file is out of reach after the chroot; with userdb =
	 * pgsql the per-user fields come from the database (a blocking
	 * query is fine in this child). */
	if (userdb_load_all(cfg, &db, &error) < 0) {
		char what[4200];

		log_error("retention pass: cannot read %s: %s",
			  userdb_describe(cfg, what, sizeof(what)), error);
		_exit(1);
	}
	/* DATA_DIR may be root's: the summary is written before the drop. */
	expire_child_summary(cfg, mail_root_fd, db);
	privdrop_to(cfg->user, cfg->data_dir);
	now = time(NULL);
	for (size_t i = 0; i < passwd_db_count(db); i++) {
		n = 0;
		if (expire_child_user(cfg, mail_root_fd, passwd_db_entry(db, i),
				      now, &n) < 0)
			errors++;
		removed += n;
	}
	if (removed > 0)
		metrics_add(METRIC_MESSAGES_EXPIRED, removed);
	/* Always, also when nothing was due: the sign that a pass ran and
	 * ended (operators, tests waiting for it). */
	log_info("retention pass: %zu messages removed, %zu users checked, "
		 "%d errors",
		 removed, passwd_db_count(db), errors);
	passwd_db_free(&db);
	_exit(errors > 0 ? 1 : 0);
}

/* Returns 0 (also for a busy or missing mailbox) or -1 after logging. */
static int expire_child_user(const struct config *cfg, int mail_root_fd,
			     const struct passwd_entry *e, time_t now,
			     size_t *removed_r)
{
	struct expire_user_fields f;
	struct expire_policy p;
	const char *domain, *err;
	char error[512];
	size_t local_len;
	int fd, r = 0;

	if (!username_is_canonical(e->name))
		return 0;
	domain = username_domain(e->name, &local_len);
	if (!config_is_local_domain(cfg, domain))
		return 0;
	p.retention = config_retention(cfg, domain, false);
	p.retention_unread = config_retention(cfg, domain, true);
	if (expire_parse_extra(e->extra, &f, error, sizeof(error)) > 0)
		log_warn("retention pass: users file line %d (%s): %s", e->line,
			 e->name, error);
	expire_policy_apply(&p, &f);
	if (p.retention < 0 && p.retention_unread < 0 &&
	    cfg->autoexpunge_count == 0)
		return 0;
	fd = maildir_open(mail_root_fd, e->name, false, &err);
	if (fd < 0) {
		/* No mail ever arrived: nothing to expire. */
		if (errno != ENOENT) {
			log_error("retention pass: user=%s: cannot open "
				  "Maildir: %s",
				  e->name, err);
			return -1;
		}
		return 0;
	}
	if (p.retention >= 0 || p.retention_unread >= 0) {
		switch (expire_mailbox(fd, e->name, &p, now, false,
				       expire_child_report, NULL, removed_r,
				       error, sizeof(error))) {
		case EXPIRE_DONE:
			break;
		case EXPIRE_BUSY:
			log_info("retention pass: user=%s skipped, mailbox in "
				 "use: %s",
				 e->name, error);
			break;
		case EXPIRE_ERROR:
			log_error("retention pass: user=%s: %s", e->name,
				  error);
			r = -1;
			break;
		}
	}
	if (expire_child_folders(cfg, fd, e->name, now, removed_r) < 0)
		r = -1;
	close(fd);
	return r;
}

/* autoexpunge.FOLDER: the user's other folders, through their IMAP
 * index (no POP3 lock: POP3 sees INBOX only). Adds to *removed_r. */
static int expire_child_folders(const struct config *cfg, int maildir_fd,
				const char *user, time_t now, size_t *removed_r)
{
	struct expire_folder_rule *rules;
	char error[640];
	size_t n = 0;
	int r = 0;

	if (cfg->autoexpunge_count == 0)
		return 0;
	rules = xcalloc(cfg->autoexpunge_count, sizeof(*rules));
	for (size_t i = 0; i < cfg->autoexpunge_count; i++) {
		rules[i].folder = cfg->autoexpunge[i].folder;
		rules[i].after = cfg->autoexpunge[i].after;
	}
	if (expire_folders(maildir_fd, user, rules, cfg->autoexpunge_count, now,
			   false, expire_child_report, NULL, &n, error,
			   sizeof(error)) != EXPIRE_DONE) {
		log_error("retention pass: user=%s: %s", user, error);
		r = -1;
	}
	*removed_r += n;
	free(rules);
	return r;
}

static void expire_child_report(const struct expire_removal *r, void *ctx)
{
	(void)ctx;
	if (r->folder != NULL)
		log_info("expired user=%s folder=%s uid=%" PRIu32
			 " age=%" PRId64 "s rule=%s",
			 r->user, r->folder, r->uid, r->age, r->rule_text);
	else
		log_info("expired user=%s uid=%" PRIu32 " uidl=%s age=%" PRId64
			 "s rule=%s",
			 r->user, r->uid, r->uidl, r->age, r->rule_text);
}

/* What CAPA announces before login (RFC 2449 6.5, 6.7): the smallest
 * EXPIRE and the largest LOGIN-DELAY any user has, for the workers,
 * which never read the users file. */
static void expire_child_summary(const struct config *cfg, int mail_root_fd,
				 const struct passwd_db *db)
{
	struct expire_summary sum = {EXPIRE_NEVER, cfg->login_delay, false,
				     false};
	char error[256];

	for (size_t i = 0; i < passwd_db_count(db); i++) {
		const struct passwd_entry *e = passwd_db_entry(db, i);
		struct expire_user_fields f;
		struct expire_policy p;
		const char *domain;
		size_t local_len;
		int64_t days;

		if (!username_is_canonical(e->name))
			continue;
		domain = username_domain(e->name, &local_len);
		if (!config_is_local_domain(cfg, domain))
			continue;
		p.retention = config_retention(cfg, domain, false);
		p.retention_unread = config_retention(cfg, domain, true);
		days = expire_capa_days(&p);
		(void)expire_parse_extra(e->extra, &f, error, sizeof(error));
		expire_policy_apply(&p, &f);
		if (expire_capa_days(&p) != days)
			sum.expire_varies = true;
		days = expire_capa_days(&p);
		if (days >= 0 && (sum.min_days < 0 || days < sum.min_days))
			sum.min_days = days;
		if (f.has_login_delay && f.login_delay != cfg->login_delay) {
			sum.delay_varies = true;
			if (f.login_delay > sum.max_login_delay)
				sum.max_login_delay = f.login_delay;
		}
	}
	if (expire_summary_write(mail_root_fd, &sum, error, sizeof(error)) < 0)
		log_error("retention pass: cannot write the CAPA summary: %s",
			  error);
}
