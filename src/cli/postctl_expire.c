/*
 * postctl expire [--dry-run] [--now UNIXTIME] [USER]: the retention pass
 * by hand (doc/internals/retention.md). Prints one line per message
 * removed (or, with --dry-run, due) and a summary. --now evaluates the
 * policy at another time, for what-if runs and tests.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "auth/passwd_file.h"
#include "auth/userdb_pgsql.h"
#include "cli/postctl.h"
#include "lib/parse.h"
#include "lib/username.h"
#include "lib/xmalloc.h"
#include "storage/expire.h"
#include "storage/maildir.h"

struct postctl_expire_run {
	const struct config *cfg;
	int root_fd;
	time_t now;
	bool dry_run;
	size_t removed, busy, errors, users;
};

static int postctl_expire_usage(void);
static void postctl_expire_user(struct postctl_expire_run *run,
				const struct passwd_entry *e);
static void postctl_expire_print(const struct expire_removal *r, void *ctx);
static void postctl_expire_folders(struct postctl_expire_run *run,
				   int maildir_fd, const char *user);

static int postctl_expire_usage(void)
{
	fprintf(stderr, "usage: postctl [-c FILE] expire [--dry-run] "
			"[--now UNIXTIME] [USER]\n");
	return EX_USAGE;
}

int postctl_expire_main(const struct config *cfg, int argc, char **argv)
{
	struct postctl_expire_run run = {.cfg = cfg, .now = time(NULL)};
	char name[USERNAME_BUF_SIZE], what[4200];
	const char *user = NULL, *error;
	struct passwd_db *db = NULL;
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0 ||
		    strcmp(argv[i], "-n") == 0) {
			run.dry_run = true;
		} else if (strcmp(argv[i], "--now") == 0 && i + 1 < argc) {
			const char *p = argv[++i];
			uint64_t t;

			if (parse_uint64(&p, INT32_MAX * 4ull, &t) < 0 ||
			    parse_end(&p) < 0) {
				fprintf(stderr,
					"postctl: --now: '%s' is not "
					"a UNIX time\n",
					argv[i]);
				return EX_USAGE;
			}
			run.now = (time_t)t;
		} else if (argv[i][0] == '-' || user != NULL) {
			return postctl_expire_usage();
		} else {
			user = argv[i];
		}
	}
	if (user != NULL &&
	    username_normalize(user, strlen(user), cfg->auth_default_domain,
			       name, sizeof(name)) < 0) {
		fprintf(stderr, "postctl: '%s' is not a valid user name\n",
			user);
		return EX_USAGE;
	}
	/* The users file is root's alone: read it before dropping. With
	 * userdb = pgsql the users come from the database. */
	if (userdb_load_all(cfg, &db, &error) < 0) {
		fprintf(stderr, "postctl: cannot read %s: %s\n",
			userdb_describe(cfg, what, sizeof(what)), error);
		return EX_TEMPFAIL;
	}
	if (user != NULL && passwd_db_lookup(db, name) == NULL) {
		fprintf(stderr, "postctl: no such user %s in %s\n", name,
			userdb_describe(cfg, what, sizeof(what)));
		passwd_db_free(&db);
		return EX_NOUSER;
	}
	run.root_fd = postctl_open_mail_root(cfg);
	if (run.root_fd < 0 || postctl_drop_privileges(cfg) < 0) {
		if (run.root_fd >= 0)
			close(run.root_fd);
		passwd_db_free(&db);
		return EX_TEMPFAIL;
	}
	if (user != NULL) {
		postctl_expire_user(&run, passwd_db_lookup(db, name));
	} else {
		for (size_t k = 0; k < passwd_db_count(db); k++)
			postctl_expire_user(&run, passwd_db_entry(db, k));
	}
	close(run.root_fd);
	passwd_db_free(&db);
	printf("%zu messages %s, %zu users checked, %zu mailboxes in use "
	       "skipped, %zu errors\n",
	       run.removed, run.dry_run ? "would be removed" : "removed",
	       run.users, run.busy, run.errors);
	rc = postctl_stdout_done();
	if (rc != EX_OK)
		return rc;
	return run.errors > 0 ? EX_TEMPFAIL : EX_OK;
}

static void postctl_expire_user(struct postctl_expire_run *run,
				const struct passwd_entry *e)
{
	struct expire_user_fields f;
	struct expire_policy p;
	const char *domain, *err;
	char error[512];
	size_t local_len, n = 0;
	int fd;

	if (!username_is_canonical(e->name))
		return;
	domain = username_domain(e->name, &local_len);
	if (!config_is_local_domain(run->cfg, domain))
		return;
	run->users++;
	p.retention = config_retention(run->cfg, domain, false);
	p.retention_unread = config_retention(run->cfg, domain, true);
	if (expire_parse_extra(e->extra, &f, error, sizeof(error)) > 0)
		fprintf(stderr, "postctl: users file line %d (%s): %s\n",
			e->line, e->name, error);
	expire_policy_apply(&p, &f);
	if (p.retention < 0 && p.retention_unread < 0 &&
	    run->cfg->autoexpunge_count == 0)
		return;
	fd = maildir_open(run->root_fd, e->name, false, &err);
	if (fd < 0) {
		if (errno != ENOENT) {
			fprintf(stderr,
				"postctl: %s: cannot open Maildir: %s\n",
				e->name, err);
			run->errors++;
		}
		return;
	}
	if (p.retention >= 0 || p.retention_unread >= 0) {
		switch (expire_mailbox(fd, e->name, &p, run->now, run->dry_run,
				       postctl_expire_print, run, &n, error,
				       sizeof(error))) {
		case EXPIRE_DONE:
			run->removed += n;
			break;
		case EXPIRE_BUSY:
			fprintf(stderr,
				"postctl: %s: skipped, mailbox in use: %s\n",
				e->name, error);
			run->busy++;
			break;
		case EXPIRE_ERROR:
			fprintf(stderr, "postctl: %s: %s\n", e->name, error);
			run->errors++;
			break;
		}
	}
	postctl_expire_folders(run, fd, e->name);
	close(fd);
}

/* autoexpunge.FOLDER for one user (through the folders' IMAP index). */
static void postctl_expire_folders(struct postctl_expire_run *run,
				   int maildir_fd, const char *user)
{
	const struct config *cfg = run->cfg;
	struct expire_folder_rule *rules;
	char error[640];
	size_t n = 0;

	if (cfg->autoexpunge_count == 0)
		return;
	rules = xcalloc(cfg->autoexpunge_count, sizeof(*rules));
	for (size_t i = 0; i < cfg->autoexpunge_count; i++) {
		rules[i].folder = cfg->autoexpunge[i].folder;
		rules[i].after = cfg->autoexpunge[i].after;
	}
	if (expire_folders(maildir_fd, user, rules, cfg->autoexpunge_count,
			   run->now, run->dry_run, postctl_expire_print, run,
			   &n, error, sizeof(error)) != EXPIRE_DONE) {
		fprintf(stderr, "postctl: %s: %s\n", user, error);
		run->errors++;
	}
	run->removed += n;
	free(rules);
}

static void postctl_expire_print(const struct expire_removal *r, void *ctx)
{
	const struct postctl_expire_run *run = ctx;

	if (r->folder != NULL) {
		printf("%s %s folder=%s uid=%" PRIu32 " age=%" PRId64
		       "s rule=%s\n",
		       run->dry_run ? "due" : "removed", r->user, r->folder,
		       r->uid, r->age, r->rule_text);
		return;
	}
	printf("%s %s uid=%" PRIu32 " uidl=%s age=%" PRId64 "s rule=%s\n",
	       run->dry_run ? "due" : "removed", r->user, r->uid, r->uidl,
	       r->age, r->rule_text);
}
