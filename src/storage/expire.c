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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"

#define EXPIRE_DAY 86400
/* In DATA_DIR, next to mail/: DATA_DIR/mail holds domain folders only.
 * Reached from the DATA_DIR/mail descriptor, which every process that
 * needs it holds, chrooted into DATA_DIR or not. */
#define EXPIRE_SUMMARY_FILE "../postd-policy"
#define EXPIRE_SUMMARY_TMP "../postd-policy.tmp"
#define EXPIRE_SUMMARY_MAGIC "postd-policy 1 "

static int expire_parse_duration(const char *s, size_t len, bool never_ok,
				 uint64_t max, int64_t *secs_r);
static const char *expire_field_key(const char *key, size_t len,
				    size_t *key_len_r);

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
		rules[i] = expire_decide(p, mailbox_msg(box, i), now, &ages[i]);
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
			struct expire_removal r = {user,    m->uid,   m->uidl,
						   ages[i], rules[i], text};

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
	*removed_r = ndue;
	return EXPIRE_DONE;
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
