/*
 * Retention (RFC 2449 section 6.7 EXPIRE): which messages are due, the
 * per-user overrides from the users file's extra fields, and the purge of
 * one mailbox. See doc/internals/retention.md for the semantics.
 *
 * Pure storage code: the caller resolves postd.conf (config_retention())
 * into a struct expire_policy, so this file does not depend on config/.
 */
#ifndef POSTD_EXPIRE_H
#define POSTD_EXPIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "storage/mailbox.h"

/* Same value as CONFIG_NEVER. */
#define EXPIRE_NEVER (-1)

struct expire_policy {
	int64_t retention;	  /* seconds after first RETR, or NEVER */
	int64_t retention_unread; /* seconds after delivery, or NEVER */
};

/* What a users file line may override (Dovecot passwd-file extra fields:
 * retention=30d retention_unread=7d login_delay=10m, also with the
 * userdb_ prefix). Fields not present keep has_* false. */
struct expire_user_fields {
	bool has_retention, has_retention_unread, has_login_delay;
	int64_t retention;	  /* seconds or EXPIRE_NEVER */
	int64_t retention_unread; /* seconds or EXPIRE_NEVER */
	unsigned login_delay;	  /* seconds, 0: none */
};

enum expire_rule {
	EXPIRE_KEEP = 0,
	EXPIRE_RULE_RETRIEVED, /* retention after the first RETR */
	EXPIRE_RULE_UNREAD,    /* retention_unread after delivery */
	EXPIRE_RULE_FOLDER,    /* autoexpunge.FOLDER, time in the folder */
};

/*
 * Parses the extra fields (space separated key=value; unknown keys are
 * ignored, they belong to other programs). A known key with a bad value
 * is skipped. Returns the number of bad values (0: all fine), with the
 * first one described in error.
 */
int expire_parse_extra(const char *extra, struct expire_user_fields *f_r,
		       char *error, size_t error_size);
/* Applies the user's overrides on top of the domain/global policy. */
void expire_policy_apply(struct expire_policy *p,
			 const struct expire_user_fields *f);

/* Seconds from t to now; 0 when now is earlier (INV-T1: a clock that
 * went back makes nothing older). */
int64_t expire_age(time_t now, time_t t);
/*
 * The retention decision for one message at time now. A retrieved
 * message (m->retrieved != 0) is due retention seconds after its first
 * retrieval; one never retrieved is due retention_unread seconds after
 * delivery (m->delivered, the file's mtime, never the Date: header).
 * Sets *age_r to the age the rule measured.
 */
enum expire_rule expire_decide(const struct expire_policy *p,
			       const struct mailbox_msg *m, time_t now,
			       int64_t *age_r);
/* "retention 30d after first retrieval" and the like, for logs. */
void expire_rule_describe(const struct expire_policy *p, enum expire_rule rule,
			  char *out, size_t out_size);
/* A duration as "30d", "90m", "45s" or "never". */
void expire_format_duration(int64_t secs, char *out, size_t out_size);

/* The EXPIRE value: the smallest retention period in whole days (rounded
 * down), or EXPIRE_NEVER when neither rule ever removes anything. */
int64_t expire_capa_days(const struct expire_policy *p);
/* True if the policy removes retrieved messages at QUIT (EXPIRE 0). */
bool expire_at_quit(const struct expire_policy *p);

/* One message removed (or due, in a dry run). */
struct expire_removal {
	const char *user;
	uint32_t uid;	    /* in INBOX, or in folder (its IMAP UID) */
	const char *uidl;   /* INBOX: the POP3 UIDL; a folder: NULL */
	const char *folder; /* NULL: INBOX; else the IMAP name */
	int64_t age;
	enum expire_rule rule;
	const char *rule_text; /* expire_rule_describe() */
};
typedef void expire_report_fn(const struct expire_removal *r, void *ctx);

enum expire_status {
	EXPIRE_DONE = 0,
	EXPIRE_BUSY,  /* a session holds the mailbox: skipped */
	EXPIRE_ERROR, /* see error */
};

/*
 * Purges one Maildir: takes the POP3 lock without waiting (a mailbox a
 * session holds is skipped: EXPIRE_BUSY, error names the holder),
 * removes every message due at now (fsyncing the folders, updating the
 * index), and calls report for each one removed, or for each one due when
 * dry_run is set (then nothing changes). *removed_r counts them.
 */
enum expire_status expire_mailbox(int maildir_fd, const char *user,
				  const struct expire_policy *p, time_t now,
				  bool dry_run, expire_report_fn *report,
				  void *ctx, size_t *removed_r, char *error,
				  size_t error_size);

/*
 * INBOX read by IMAP or any Maildir program (the S flag in the file name)
 * counts as retrieved: the first pass that sees a message with S and no
 * recorded retrieval records one at the file's ctime (its last rename or
 * link: when S was set at the latest), kept within [delivery, now].
 * expire_mailbox() does this; exposed for the unit test. name is
 * mailbox_msg.name ("cur/BASE:2,FS").
 */
bool expire_name_seen(const char *name);
time_t expire_seen_time(time_t ctime, time_t delivered, time_t now);

/* autoexpunge.FOLDER (postd.conf(5)): the caller's copy of the config. */
struct expire_folder_rule {
	const char
	    *folder;   /* IMAP name, valid (folder_name_valid), not INBOX */
	int64_t after; /* seconds after INTERNALDATE, or EXPIRE_NEVER */
};

/*
 * Empties the folders of the rules under the Maildir root at root_fd of
 * messages whose INTERNALDATE (delivery or APPEND time, INV-T1) is at
 * least rule.after old at now, through the folder's IMAP index (durable,
 * seen as EXPUNGE by selected sessions). A folder the user does not have
 * is skipped. Reports each removal (or each due message when dry_run;
 * then nothing changes). Returns EXPIRE_DONE or EXPIRE_ERROR (after the
 * other folders were done; error names the first failure).
 */
enum expire_status expire_folders(int root_fd, const char *user,
				  const struct expire_folder_rule *rules,
				  size_t rule_count, time_t now, bool dry_run,
				  expire_report_fn *report, void *ctx,
				  size_t *removed_r, char *error,
				  size_t error_size);

/*
 * What CAPA needs before login and the worker cannot know (it never reads
 * the users file): the smallest EXPIRE and the largest LOGIN-DELAY of any
 * user, and whether any user's values differ from postd.conf's. The
 * retention pass writes it to DATA_DIR/postd-policy on every run, while
 * still root (DATA_DIR may be root's). mail_root_fd is DATA_DIR/mail.
 */
struct expire_summary {
	int64_t min_days;	  /* smallest EXPIRE of any user, or NEVER */
	unsigned max_login_delay; /* largest LOGIN-DELAY of any user */
	bool expire_varies;	  /* some user has his own retention */
	bool delay_varies;	  /* some user has his own login_delay */
};

/* Writes the summary (new file, rename). Returns 0 or -1 with error. */
int expire_summary_write(int mail_root_fd, const struct expire_summary *sum,
			 char *error, size_t error_size);
/* Reads it; -1 if missing or unusable (then only postd.conf counts). */
int expire_summary_read(int mail_root_fd, struct expire_summary *sum_r);

#endif
