/*
 * Retention: which messages are due and the purge of one mailbox, through
 * mailbox.c's lock and expunge; the timer (src/daemon/expire_child.c) and
 * postctl expire drive it, POP3 shows it in CAPA (pop3_policy.c).
 *
 * The decision per message, the users file overrides, and the purge of
 * one mailbox (doc/internals/retention.md).
 */
#include "storage/expire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "storage/folder.h"
#include "storage/mail_index.h"

#define EXPIRE_DAY 86400
/* In DATA_DIR, next to mail/: DATA_DIR/mail holds domain folders only.
 * Reached from the DATA_DIR/mail descriptor, which every process that
 * needs it holds, chrooted into DATA_DIR or not. */
#define EXPIRE_SUMMARY_FILE "../postd-policy"
#define EXPIRE_SUMMARY_TMP "../postd-policy.tmp"
#define EXPIRE_SUMMARY_MAGIC "postd-policy 1 "
/* The IMAP index of a folder (doc/internals/imap-index.md). */
#define EXPIRE_IMAP_INDEX "postd-imap.log"

static int expire_parse_duration(const char *s, size_t len, bool never_ok,
				 uint64_t max, int64_t *secs_r);
static const char *expire_field_key(const char *key, size_t len,
				    size_t *key_len_r);
static time_t expire_seen_at(struct mailbox *box, size_t i, time_t delivered,
			     time_t now);
static void expire_sync_imap(int maildir_fd, const char *user);
static int64_t expire_age_in_folder(struct mail_view *view, size_t seq0,
				    time_t now, int64_t age_by_date);
static int expire_folder(int root_fd, const char *user,
			 const struct expire_folder_rule *rule, time_t now,
			 bool dry_run, expire_report_fn *report, void *ctx,
			 size_t *removed_r, char *error, size_t error_size);

int64_t expire_age(time_t now, time_t t)
{
	/* INV-T1: a time stamp in the future (the clock went back since it
	 * was taken) counts as "just now", never as old. */
	return now > t ? (int64_t)(now - t) : 0;
}

enum expire_rule expire_decide(const struct expire_policy *p,
			       const struct mailbox_msg *m, time_t now,
			       int64_t *age_r)
{
	int64_t limit;
	enum expire_rule rule;

	if (m->retrieved != 0) {
		/* RFC 2449 6.7: downloaded with RETR; the days run from
		 * the first retrieval the index recorded. */
		*age_r = expire_age(now, m->retrieved);
		limit = p->retention;
		rule = EXPIRE_RULE_RETRIEVED;
	} else {
		/* INV-T1: the delivery time is the file's mtime. */
		*age_r = expire_age(now, m->delivered);
		limit = p->retention_unread;
		rule = EXPIRE_RULE_UNREAD;
	}
	if (limit < 0 || *age_r < limit)
		return EXPIRE_KEEP;
	return rule;
}

void expire_format_duration(int64_t secs, char *out, size_t out_size)
{
	if (secs < 0)
		snprintf(out, out_size, "never");
	else if (secs != 0 && secs % EXPIRE_DAY == 0)
		snprintf(out, out_size, "%" PRId64 "d", secs / EXPIRE_DAY);
	else if (secs != 0 && secs % 3600 == 0)
		snprintf(out, out_size, "%" PRId64 "h", secs / 3600);
	else if (secs != 0 && secs % 60 == 0)
		snprintf(out, out_size, "%" PRId64 "m", secs / 60);
	else
		snprintf(out, out_size, "%" PRId64 "s", secs);
}

void expire_rule_describe(const struct expire_policy *p, enum expire_rule rule,
			  char *out, size_t out_size)
{
	char d[32];

	switch (rule) {
	case EXPIRE_RULE_RETRIEVED:
		expire_format_duration(p->retention, d, sizeof(d));
		snprintf(out, out_size, "retention %s after first retrieval",
			 d);
		return;
	case EXPIRE_RULE_UNREAD:
		expire_format_duration(p->retention_unread, d, sizeof(d));
		snprintf(out, out_size, "retention_unread %s after delivery",
			 d);
		return;
	case EXPIRE_RULE_FOLDER:
		snprintf(out, out_size, "autoexpunge in the folder");
		return;
	case EXPIRE_KEEP:
		break;
	}
	snprintf(out, out_size, "keep");
}

int64_t expire_capa_days(const struct expire_policy *p)
{
	int64_t min = p->retention;

	/* RFC 2449 6.7: the smallest period of any category; NEVER only
	 * when no rule ever removes a message. */
	if (min < 0 || (p->retention_unread >= 0 && p->retention_unread < min))
		min = p->retention_unread;
	return min < 0 ? EXPIRE_NEVER : min / EXPIRE_DAY;
}

bool expire_at_quit(const struct expire_policy *p)
{
	return p->retention == 0;
}

void expire_policy_apply(struct expire_policy *p,
			 const struct expire_user_fields *f)
{
	if (f->has_retention)
		p->retention = f->retention;
	if (f->has_retention_unread)
		p->retention_unread = f->retention_unread;
}

/* "never", or digits with an optional unit s, m, h or d (like the
 * postd.conf keys; no unit means seconds). */
static int expire_parse_duration(const char *s, size_t len, bool never_ok,
				 uint64_t max, int64_t *secs_r)
{
	uint64_t n = 0, mult = 1;
	size_t i = 0;

	if (never_ok && len == 5 && memcmp(s, "never", 5) == 0) {
		*secs_r = EXPIRE_NEVER;
		return 0;
	}
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0)
		return -1;
	if (i + 1 == len) {
		switch (s[i]) {
		case 's':
			mult = 1;
			break;
		case 'm':
			mult = 60;
			break;
		case 'h':
			mult = 3600;
			break;
		case 'd':
			mult = EXPIRE_DAY;
			break;
		default:
			return -1;
		}
	} else if (i != len) {
		return -1;
	}
	if (n > max / mult)
		return -1;
	*secs_r = (int64_t)(n * mult);
	return 0;
}

/* The key without a Dovecot "userdb_" prefix. */
static const char *expire_field_key(const char *key, size_t len,
				    size_t *key_len_r)
{
	if (len > 7 && memcmp(key, "userdb_", 7) == 0) {
		key += 7;
		len -= 7;
	}
	*key_len_r = len;
	return key;
}

int expire_parse_extra(const char *extra, struct expire_user_fields *f_r,
		       char *error, size_t error_size)
{
	const char *p = extra;
	int bad = 0;

	memset(f_r, 0, sizeof(*f_r));
	if (error_size > 0)
		error[0] = '\0';
	while (p != NULL && *p != '\0') {
		size_t tok_len, key_len, val_len;
		const char *eq, *key, *val;
		int64_t secs;
		int r = -1;
		bool known = true;

		p += strspn(p, " \t");
		tok_len = strcspn(p, " \t");
		if (tok_len == 0)
			break;
		eq = memchr(p, '=', tok_len);
		if (eq == NULL) {
			p += tok_len;
			continue; /* a flag of some other program */
		}
		key = expire_field_key(p, (size_t)(eq - p), &key_len);
		val = eq + 1;
		val_len = tok_len - (size_t)(eq - p) - 1;
		if (key_len == 9 && memcmp(key, "retention", 9) == 0) {
			r = expire_parse_duration(val, val_len, true,
						  CONFIG_MAX_RETENTION, &secs);
			if (r == 0) {
				f_r->has_retention = true;
				f_r->retention = secs;
			}
		} else if (key_len == 16 &&
			   memcmp(key, "retention_unread", 16) == 0) {
			r = expire_parse_duration(val, val_len, true,
						  CONFIG_MAX_RETENTION, &secs);
			if (r == 0) {
				f_r->has_retention_unread = true;
				f_r->retention_unread = secs;
			}
		} else if (key_len == 11 &&
			   memcmp(key, "login_delay", 11) == 0) {
			r = expire_parse_duration(val, val_len, false,
						  CONFIG_MAX_TIMEOUT, &secs);
			if (r == 0) {
				f_r->has_login_delay = true;
				f_r->login_delay = (unsigned)secs;
			}
		} else {
			known = false;
		}
		if (known && r < 0 && bad++ == 0) {
			char esc[128];

			log_escape(esc, sizeof(esc), p,
				   tok_len < 40 ? tok_len : 40);
			snprintf(error, error_size,
				 "'%s' is not never or a whole number of "
				 "seconds, minutes, hours or days (as 30d)",
				 esc);
		}
		p += tok_len;
	}
	return bad;
}

enum expire_status expire_mailbox(int maildir_fd, const char *user,
				  const struct expire_policy *p, time_t now,
				  bool dry_run, expire_report_fn *report,
				  void *ctx, size_t *removed_r, char *error,
				  size_t error_size)
{
	struct mailbox_owner owner = {"expire", "-", user};
	struct mailbox *box;
	enum mailbox_status st;
	enum expire_rule *rules;
	int64_t *ages;
	bool *due;
	size_t count, ndue = 0, failed = 0;
	char text[128];

	*removed_r = 0;
	if (error_size > 0)
		error[0] = '\0';
	/* The lock is taken without waiting: a session in progress keeps
	 * its snapshot (INV-P2) and is never disturbed. */
	st = mailbox_open(maildir_fd, &owner, &box, error, error_size);
	if (st == MAILBOX_IN_USE)
		return EXPIRE_BUSY;
	if (st != MAILBOX_OK)
		return EXPIRE_ERROR;
	count = mailbox_count(box);
	due = xcalloc(count + 1, sizeof(*due));
	rules = xcalloc(count + 1, sizeof(*rules));
	ages = xcalloc(count + 1, sizeof(*ages));
	for (size_t i = 0; i < count; i++) {
		struct mailbox_msg m = *mailbox_msg(box, i);

		/* Read over IMAP (or by any Maildir reader): retrieved, as
		 * if by RETR. A dry run assumes it without recording it. */
		if (m.retrieved == 0 && expire_name_seen(m.name)) {
			m.retrieved = expire_seen_at(box, i, m.delivered, now);
			if (!dry_run)
				mailbox_mark_retrieved(box, i, m.retrieved);
		}
		rules[i] = expire_decide(p, &m, now, &ages[i]);
		due[i] = rules[i] != EXPIRE_KEEP;
		if (due[i])
			ndue++;
	}
	if (ndue > 0 && !dry_run)
		failed = mailbox_expunge(box, due, MAILBOX_EXPUNGE_RETENTION,
					 error, error_size);
	/* A failed removal (or folder fsync) may come back after a crash:
	 * nothing is reported as removed then, the error says why. */
	if (failed == 0 && report != NULL) {
		for (size_t i = 0; i < count; i++) {
			const struct mailbox_msg *m = mailbox_msg(box, i);
			struct expire_removal r = {.user = user,
						   .uid = m->uid,
						   .uidl = m->uidl,
						   .age = ages[i],
						   .rule = rules[i],
						   .rule_text = text};

			if (!due[i])
				continue;
			expire_rule_describe(p, rules[i], text, sizeof(text));
			report(&r, ctx);
		}
	}
	mailbox_close(&box);
	free(due);
	free(rules);
	free(ages);
	if (failed > 0)
		return EXPIRE_ERROR;
	if (ndue > 0 && !dry_run)
		expire_sync_imap(maildir_fd, user);
	*removed_r = ndue;
	return EXPIRE_DONE;
}

bool expire_name_seen(const char *name)
{
	const char *info = strchr(name, ':');

	/* Maildir "2," info: the flag letters in ASCII order; lowercase
	 * letters are other programs' keywords. */
	return info != NULL && strncmp(info, ":2,", 3) == 0 &&
	       strchr(info + 3, 'S') != NULL;
}

time_t expire_seen_time(time_t ctime, time_t delivered, time_t now)
{
	time_t t = ctime;

	/* The ctime moves with every rename or link, so it is the moment
	 * S was set at the latest: never earlier than the read (the mail
	 * is kept at least as long as promised). INV-T1: not before the
	 * delivery, not after the clock of this pass. */
	if (t < delivered)
		t = delivered;
	if (t > now)
		t = now;
	return t > 0 ? t : 1;
}

/* When message i was read at the latest (expire_seen_time()). */
static time_t expire_seen_at(struct mailbox *box, size_t i, time_t delivered,
			     time_t now)
{
	char error[256];
	struct stat st;
	int fd = mailbox_msg_open(box, i, error, sizeof(error));
	time_t ctime = now;

	if (fd >= 0) {
		if (fstat(fd, &st) == 0)
			ctime = st.st_ctime;
		close(fd);
	}
	return expire_seen_time(ctime, delivered, now);
}

/*
 * After removing INBOX messages: brings INBOX's IMAP index up to date now
 * (its scan logs the vanished files as expunged, durably), instead of at
 * the next SELECT. Sessions that have INBOX selected see EXPUNGE at their
 * next sync either way. A mailbox IMAP never opened has no index and gets
 * none.
 */
static void expire_sync_imap(int maildir_fd, const char *user)
{
	struct mail_view *view;
	struct stat st;
	char error[256];

	if (fstatat(maildir_fd, EXPIRE_IMAP_INDEX, &st, AT_SYMLINK_NOFOLLOW) <
	    0)
		return;
	if (mail_view_open(maildir_fd, true, &view, error, sizeof(error)) !=
	    MAIL_OK) {
		log_warn("retention pass: user=%s: INBOX's IMAP index not "
			 "updated (its next sync will do it): %s",
			 user, error);
		return;
	}
	mail_view_close(&view);
}

enum expire_status expire_folders(int root_fd, const char *user,
				  const struct expire_folder_rule *rules,
				  size_t rule_count, time_t now, bool dry_run,
				  expire_report_fn *report, void *ctx,
				  size_t *removed_r, char *error,
				  size_t error_size)
{
	size_t failed = 0;
	char err[512];

	*removed_r = 0;
	if (error_size > 0)
		error[0] = '\0';
	for (size_t r = 0; r < rule_count; r++) {
		size_t n = 0;

		if (rules[r].after < 0)
			continue;
		/* One bad folder does not keep the others from being done. */
		if (expire_folder(root_fd, user, &rules[r], now, dry_run,
				  report, ctx, &n, err, sizeof(err)) < 0 &&
		    failed++ == 0)
			snprintf(error, error_size, "folder %s: %s",
				 rules[r].folder, err);
		*removed_r += n;
	}
	return failed > 0 ? EXPIRE_ERROR : EXPIRE_DONE;
}

/*
 * How long the message has been in this folder: a message moved to Trash
 * counts from the move, not from its delivery months ago, so that "Trash
 * after 30 days" gives the user 30 days to take it back (Dovecot counts
 * from its save date alike). The move (a hard link), a copy and an APPEND
 * set the file's ctime, and so does a flag change later (a rename), which
 * can only make the message stay longer. The smaller of that and the age
 * by INTERNALDATE; a file that cannot be read counts as new: kept.
 */
static int64_t expire_age_in_folder(struct mail_view *view, size_t seq0,
				    time_t now, int64_t age_by_date)
{
	char error[256];
	struct stat st;
	int64_t age = 0;
	int fd = mail_view_msg_open(view, seq0, error, sizeof(error));

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0)
		age = expire_age(now, st.st_ctime);
	close(fd);
	return age < age_by_date ? age : age_by_date;
}

/* One autoexpunge rule for one user: 0 (also for a folder the user does
 * not have) or -1 with error. */
static int expire_folder(int root_fd, const char *user,
			 const struct expire_folder_rule *rule, time_t now,
			 bool dry_run, expire_report_fn *report, void *ctx,
			 size_t *removed_r, char *error, size_t error_size)
{
	char disk[NAME_MAX + 1], text[FOLDER_MAX_NAME + 64], d[32];
	struct mail_view *view;
	enum mail_status st;
	uint32_t *uids;
	int64_t *ages;
	size_t count, n = 0;
	int fd;

	*removed_r = 0;
	/* INV-S2, INV-U1: a validated name, below this user's root only. */
	if (folder_disk_name(rule->folder, disk, sizeof(disk)) < 0) {
		snprintf(error, error_size, "not a folder name");
		return -1;
	}
	fd = openat(root_fd, disk,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(error, error_size, "open: %s", strerror(errno));
		return -1;
	}
	/* Read-only: the pass takes no \Recent from the user. */
	st = mail_view_open(fd, true, &view, error, error_size);
	if (st != MAIL_OK) {
		close(fd);
		/* A parent kept only for its children has no cur/. */
		return st == MAIL_NOT_FOUND ? 0 : -1;
	}
	count = mail_view_count(view);
	uids = xcalloc(count + 1, sizeof(*uids));
	ages = xcalloc(count + 1, sizeof(*ages));
	for (size_t i = 0; i < count; i++) {
		const struct mail_msg *m = mail_view_msg(view, i);
		/* INV-T1: the server's delivery/APPEND time, a lower bound
		 * of the time in the folder, which only due ones need. */
		int64_t age = expire_age(now, m->internaldate);

		if (m->expunged || age < rule->after)
			continue;
		age = expire_age_in_folder(view, i, now, age);
		if (age < rule->after)
			continue;
		uids[n] = m->uid;
		ages[n++] = age;
	}
	st = MAIL_OK;
	if (n > 0 && !dry_run)
		st = mail_view_expunge_uids(view, uids, n, error, error_size);
	/* Reported only once durable (or as due in a dry run). */
	if (st == MAIL_OK && report != NULL) {
		expire_format_duration(rule->after, d, sizeof(d));
		snprintf(text, sizeof(text), "autoexpunge.%s %s in the folder",
			 rule->folder, d);
		for (size_t k = 0; k < n; k++) {
			struct expire_removal r = {.user = user,
						   .uid = uids[k],
						   .folder = rule->folder,
						   .age = ages[k],
						   .rule = EXPIRE_RULE_FOLDER,
						   .rule_text = text};

			report(&r, ctx);
		}
	}
	mail_view_close(&view);
	close(fd);
	free(uids);
	free(ages);
	if (st != MAIL_OK)
		return -1;
	*removed_r = n;
	return 0;
}

int expire_summary_write(int mail_root_fd, const struct expire_summary *sum,
			 char *error, size_t error_size)
{
	char line[128];
	int fd, len;

	len = snprintf(line, sizeof(line),
		       EXPIRE_SUMMARY_MAGIC "%" PRId64 " %u %d %d\n",
		       sum->min_days, sum->max_login_delay,
		       sum->expire_varies ? 1 : 0, sum->delay_varies ? 1 : 0);
	if (len < 0 || (size_t)len >= sizeof(line)) {
		snprintf(error, error_size, "summary too long");
		return -1;
	}
	/* Written while root: whatever already has the temporary name (a
	 * hard link to another file, a symbolic link, a FIFO) is removed,
	 * never written through or opened; O_EXCL makes the file ours, and
	 * the rename replaces whatever had the final name without opening
	 * it. */
	if (unlinkat(mail_root_fd, EXPIRE_SUMMARY_TMP, 0) < 0 &&
	    errno != ENOENT) {
		snprintf(error, error_size, "remove %s: %s", EXPIRE_SUMMARY_TMP,
			 strerror(errno));
		return -1;
	}
	fd = openat(mail_root_fd, EXPIRE_SUMMARY_TMP,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK |
			O_CLOEXEC,
		    0644);
	if (fd < 0) {
		snprintf(error, error_size, "create %s: %s", EXPIRE_SUMMARY_TMP,
			 strerror(errno));
		return -1;
	}
	if (write(fd, line, (size_t)len) != len) {
		snprintf(error, error_size, "write %s: %s", EXPIRE_SUMMARY_TMP,
			 strerror(errno));
		close(fd);
		(void)unlinkat(mail_root_fd, EXPIRE_SUMMARY_TMP, 0);
		return -1;
	}
	if (close(fd) < 0) {
		snprintf(error, error_size, "write %s: %s", EXPIRE_SUMMARY_TMP,
			 strerror(errno));
		(void)unlinkat(mail_root_fd, EXPIRE_SUMMARY_TMP, 0);
		return -1;
	}
	/* A cache for CAPA, rebuilt by every pass: no fsync needed. */
	if (renameat(mail_root_fd, EXPIRE_SUMMARY_TMP, mail_root_fd,
		     EXPIRE_SUMMARY_FILE) < 0) {
		snprintf(error, error_size, "rename %s: %s", EXPIRE_SUMMARY_TMP,
			 strerror(errno));
		(void)unlinkat(mail_root_fd, EXPIRE_SUMMARY_TMP, 0);
		return -1;
	}
	return 0;
}

int expire_summary_read(int mail_root_fd, struct expire_summary *sum_r)
{
	char line[128];
	long long days;
	unsigned delay;
	int ev, dv, fd, used = 0;
	ssize_t n;

	fd = openat(mail_root_fd, EXPIRE_SUMMARY_FILE,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0 || line[n - 1] != '\n')
		return -1;
	line[n] = '\0';
	if (sscanf(line, EXPIRE_SUMMARY_MAGIC "%lld %u %d %d\n%n", &days,
		   &delay, &ev, &dv, &used) != 4 ||
	    used != (int)n || days < EXPIRE_NEVER ||
	    days > CONFIG_MAX_RETENTION / EXPIRE_DAY ||
	    delay > CONFIG_MAX_TIMEOUT || (ev != 0 && ev != 1) ||
	    (dv != 0 && dv != 1))
		return -1;
	sum_r->min_days = days;
	sum_r->max_login_delay = delay;
	sum_r->expire_varies = ev == 1;
	sum_r->delay_varies = dv == 1;
	return 0;
}
