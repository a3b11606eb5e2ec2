/* Retention (RFC 2449 6.7 EXPIRE, INV-T1): the decision with a fake
 * clock, the EXPIRE value, the users file extra fields, and the purge of
 * one Maildir (a mailbox a session holds is never touched). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/expire.h"
#include "storage/mailbox.h"
#include "storage/maildir.h"

#define DAY 86400
#define T0 ((time_t)1700000000)

static struct mailbox_msg msg_at(time_t delivered, time_t retrieved)
{
	struct mailbox_msg m = {.uid = 1, .size = 10, .uidl = "u", .name = "n"};

	m.delivered = delivered;
	m.retrieved = retrieved;
	return m;
}

static enum expire_rule decide(int64_t ret, int64_t unread, time_t delivered,
			       time_t retrieved, time_t now, int64_t *age_r)
{
	struct expire_policy p = {ret, unread};
	struct mailbox_msg m = msg_at(delivered, retrieved);
	int64_t age;

	return expire_decide(&p, &m, now, age_r != NULL ? age_r : &age);
}

static void test_expire_retrieved_not_one_second_early(void **state)
{
	int64_t age;

	(void)state;
	/* Delivered long ago, first RETR at T0: the days run from T0. */
	assert_int_equal(decide(30 * DAY, EXPIRE_NEVER, T0 - 100 * DAY, T0,
				T0 + 30 * DAY - 1, &age),
			 EXPIRE_KEEP);
	assert_int_equal(age, 30 * DAY - 1);
	assert_int_equal(decide(30 * DAY, EXPIRE_NEVER, T0 - 100 * DAY, T0,
				T0 + 30 * DAY, &age),
			 EXPIRE_RULE_RETRIEVED);
	assert_int_equal(age, 30 * DAY);
	assert_int_equal(decide(30 * DAY, EXPIRE_NEVER, T0 - 100 * DAY, T0,
				T0 + 300 * DAY, NULL),
			 EXPIRE_RULE_RETRIEVED);
}

static void test_expire_unread_counts_from_delivery(void **state)
{
	int64_t age;

	(void)state;
	assert_int_equal(
	    decide(EXPIRE_NEVER, 7 * DAY, T0, 0, T0 + 7 * DAY - 1, &age),
	    EXPIRE_KEEP);
	assert_int_equal(age, 7 * DAY - 1);
	assert_int_equal(
	    decide(EXPIRE_NEVER, 7 * DAY, T0, 0, T0 + 7 * DAY, &age),
	    EXPIRE_RULE_UNREAD);
	/* retention applies only to retrieved messages, unread only to
	 * unretrieved ones. */
	assert_int_equal(decide(1, EXPIRE_NEVER, T0, 0, T0 + 100 * DAY, NULL),
			 EXPIRE_KEEP);
	assert_int_equal(
	    decide(EXPIRE_NEVER, 1, T0, T0 + 5, T0 + 100 * DAY, NULL),
	    EXPIRE_KEEP);
}

static void test_inv_t1_clock_back_expires_nothing(void **state)
{
	int64_t age;

	(void)state;
	/* Delivered or retrieved "in the future": age 0, kept. */
	assert_int_equal(decide(0 + 1, 1, T0, 0, T0 - 10 * DAY, &age),
			 EXPIRE_KEEP);
	assert_int_equal(age, 0);
	assert_int_equal(decide(1, 1, T0 - 10 * DAY, T0, T0 - 5, &age),
			 EXPIRE_KEEP);
	assert_int_equal(age, 0);
	assert_int_equal(expire_age(T0, T0 + 1), 0);
	assert_int_equal(expire_age(T0 + 1, T0), 1);
}

static void test_expire_never_and_zero(void **state)
{
	(void)state;
	assert_int_equal(
	    decide(EXPIRE_NEVER, EXPIRE_NEVER, 0, 1, T0 + 3650 * DAY, NULL),
	    EXPIRE_KEEP);
	assert_int_equal(
	    decide(EXPIRE_NEVER, EXPIRE_NEVER, 1, 0, T0 + 3650 * DAY, NULL),
	    EXPIRE_KEEP);
	/* 0: due as soon as retrieved (EXPIRE 0). */
	assert_int_equal(decide(0, EXPIRE_NEVER, T0, T0, T0, NULL),
			 EXPIRE_RULE_RETRIEVED);
	assert_int_equal(decide(0, EXPIRE_NEVER, T0, 0, T0 + DAY, NULL),
			 EXPIRE_KEEP);
}

static void test_expire_capa_days(void **state)
{
	struct expire_policy p;

	(void)state;
	p = (struct expire_policy){EXPIRE_NEVER, EXPIRE_NEVER};
	assert_int_equal(expire_capa_days(&p), EXPIRE_NEVER);
	assert_false(expire_at_quit(&p));
	p = (struct expire_policy){30 * DAY, EXPIRE_NEVER};
	assert_int_equal(expire_capa_days(&p), 30);
	/* NEVER is promised only when neither rule removes anything. */
	p = (struct expire_policy){EXPIRE_NEVER, 60 * DAY};
	assert_int_equal(expire_capa_days(&p), 60);
	p = (struct expire_policy){15 * DAY, 60 * DAY};
	assert_int_equal(expire_capa_days(&p), 15);
	p = (struct expire_policy){60 * DAY, 7 * DAY};
	assert_int_equal(expire_capa_days(&p), 7);
	/* Whole days, rounded down: never promise more than is kept. */
	p = (struct expire_policy){DAY + DAY / 2, EXPIRE_NEVER};
	assert_int_equal(expire_capa_days(&p), 1);
	p = (struct expire_policy){3600, EXPIRE_NEVER};
	assert_int_equal(expire_capa_days(&p), 0);
	assert_false(expire_at_quit(&p));
	p = (struct expire_policy){0, EXPIRE_NEVER};
	assert_int_equal(expire_capa_days(&p), 0);
	assert_true(expire_at_quit(&p));
}

static void test_expire_rule_text(void **state)
{
	struct expire_policy p = {30 * DAY, 7 * DAY};
	char t[128];

	(void)state;
	expire_rule_describe(&p, EXPIRE_RULE_RETRIEVED, t, sizeof(t));
	assert_string_equal(t, "retention 30d after first retrieval");
	expire_rule_describe(&p, EXPIRE_RULE_UNREAD, t, sizeof(t));
	assert_string_equal(t, "retention_unread 7d after delivery");
	expire_format_duration(90, t, sizeof(t));
	assert_string_equal(t, "90s");
	expire_format_duration(600, t, sizeof(t));
	assert_string_equal(t, "10m");
	expire_format_duration(0, t, sizeof(t));
	assert_string_equal(t, "0s");
	expire_format_duration(EXPIRE_NEVER, t, sizeof(t));
	assert_string_equal(t, "never");
}

struct extra_case {
	const char *in;
	int bad;
	int has; /* bits: 1 retention, 2 unread, 4 login_delay */
	int64_t retention, unread;
	unsigned delay;
};

static const struct extra_case extra_cases[] = {
    {"", 0, 0, 0, 0, 0},
    {"retention=30d", 0, 1, 30 * DAY, 0, 0},
    {"retention_unread=7d", 0, 2, 0, 7 * DAY, 0},
    {"login_delay=10m", 0, 4, 0, 0, 600},
    {"userdb_retention=2h userdb_retention_unread=never "
     "userdb_login_delay=15",
     0, 7, 7200, EXPIRE_NEVER, 15},
    {"  retention=never\tuserdb_home=/x nodelay quota=1G ", 0, 1, EXPIRE_NEVER,
     0, 0},
    {"retention=0", 0, 1, 0, 0, 0},
    {"retention=30x", 1, 0, 0, 0, 0},
    {"retention= retention_unread=5d", 1, 2, 0, 5 * DAY, 0},
    {"retention=-1", 1, 0, 0, 0, 0},
    {"retention=99999999999999999999999", 1, 0, 0, 0, 0},
    {"retention=3651d", 1, 0, 0, 0, 0},
    {"login_delay=never", 1, 0, 0, 0, 0},
    {"login_delay=8d", 1, 0, 0, 0, 0},
    {"retention=1d retention=2d", 0, 1, 2 * DAY, 0, 0},
    {"Retention=1d retentionx=1d xretention=1d", 0, 0, 0, 0, 0},
    {"retention=1dd", 1, 0, 0, 0, 0},
};

static void check_extra(const struct extra_case *c, const char *in)
{
	struct expire_user_fields f;
	char error[256];

	assert_int_equal(expire_parse_extra(in, &f, error, sizeof(error)),
			 c->bad);
	assert_int_equal(c->bad > 0, error[0] != '\0');
	assert_int_equal(f.has_retention, (c->has & 1) != 0);
	assert_int_equal(f.has_retention_unread, (c->has & 2) != 0);
	assert_int_equal(f.has_login_delay, (c->has & 4) != 0);
	if (c->has & 1)
		assert_int_equal(f.retention, c->retention);
	if (c->has & 2)
		assert_int_equal(f.retention_unread, c->unread);
	if (c->has & 4)
		assert_int_equal(f.login_delay, c->delay);
}

static void test_expire_parse_extra_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(extra_cases) / sizeof(extra_cases[0]);
	     i++) {
		const struct extra_case *c = &extra_cases[i];
		size_t len = strlen(c->in);
		char *copy = malloc(len + 1);

		/* Whole input, then the same bytes in an exactly sized
		 * heap buffer so that an overread shows under ASan. */
		check_extra(c, c->in);
		memcpy(copy, c->in, len + 1);
		check_extra(c, copy);
		free(copy);
	}
	{
		struct expire_user_fields f;
		char error[8];

		assert_int_equal(expire_parse_extra(NULL, &f, error, 8), 0);
	}
}

static void test_expire_precedence(void **state)
{
	struct expire_policy p = {30 * DAY, EXPIRE_NEVER}; /* domain/global */
	struct expire_user_fields f;
	char error[64];

	(void)state;
	assert_int_equal(
	    expire_parse_extra("retention_unread=7d", &f, error, 64), 0);
	expire_policy_apply(&p, &f);
	assert_int_equal(p.retention, 30 * DAY); /* not overridden */
	assert_int_equal(p.retention_unread, 7 * DAY);
	assert_int_equal(expire_parse_extra("retention=never", &f, error, 64),
			 0);
	expire_policy_apply(&p, &f);
	assert_int_equal(p.retention, EXPIRE_NEVER);
	assert_int_equal(p.retention_unread, 7 * DAY);
}

/* The purge of a real Maildir. */

struct fixture {
	char root[64];
	int root_fd, md_fd;
	size_t reported;
	uint32_t last_uid;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err;

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_expire.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->root_fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->root_fd >= 0);
	f->md_fd = maildir_open(f->root_fd, "bob@example.com", true, &err);
	assert_true(f->md_fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	close(f->md_fd);
	close(f->root_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void put(struct fixture *f, const char *name, time_t mtime)
{
	char path[128];
	struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
	int fd;

	snprintf(path, sizeof(path), "new/%s", name);
	fd = openat(f->md_fd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Subject: x\n\nbody\n", 17), 17);
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
}

static bool exists(struct fixture *f, const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "new/%s", name);
	return faccessat(f->md_fd, path, F_OK, 0) == 0;
}

static void report(const struct expire_removal *r, void *ctx)
{
	struct fixture *f = ctx;

	f->reported++;
	f->last_uid = r->uid;
	assert_int_equal(r->rule, EXPIRE_RULE_UNREAD);
	assert_string_equal(r->rule_text, "retention_unread 7d after delivery");
	assert_string_equal(r->user, "bob@example.com");
}

static void test_expire_mailbox_purge(void **state)
{
	struct fixture *f = *state;
	struct expire_policy p = {EXPIRE_NEVER, 7 * DAY};
	struct mailbox *box;
	char error[256];
	size_t n;

	put(f, "1000.old", T0);
	put(f, "1001.young", T0 + 1);
	/* Dry run one second before and at the due time: nothing changes. */
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					T0 + 7 * DAY - 1, true, report, f, &n,
					error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 0);
	assert_int_equal(f->reported, 0);
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					T0 + 7 * DAY, true, report, f, &n,
					error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 1);
	assert_int_equal(f->reported, 1);
	assert_true(exists(f, "1000.old"));
	/* For real. */
	f->reported = 0;
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					T0 + 7 * DAY, false, report, f, &n,
					error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 1);
	assert_int_equal(f->reported, 1);
	assert_int_equal(f->last_uid, 1);
	assert_false(exists(f, "1000.old"));
	assert_true(exists(f, "1001.young"));
	/* The index forgot it; the young one keeps its UID. */
	assert_int_equal(
	    mailbox_open(f->md_fd, NULL, &box, error, sizeof(error)),
	    MAILBOX_OK);
	assert_int_equal(mailbox_count(box), 1);
	assert_int_equal(mailbox_msg(box, 0)->uid, 2);
	mailbox_close(&box);
}

static void test_inv_p2_purge_skips_held_mailbox(void **state)
{
	struct fixture *f = *state;
	struct mailbox_owner owner = {"S1", "192.0.2.1", "bob@example.com"};
	struct expire_policy p = {0, 0};
	struct mailbox *box;
	char error[256];
	size_t n = 99;

	put(f, "1000.a", T0);
	assert_int_equal(
	    mailbox_open(f->md_fd, &owner, &box, error, sizeof(error)),
	    MAILBOX_OK);
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					T0 + 3650 * DAY, false, report, f, &n,
					error, sizeof(error)),
			 EXPIRE_BUSY);
	assert_int_equal(n, 0);
	assert_non_null(strstr(error, "S1"));
	assert_true(exists(f, "1000.a"));
	mailbox_close(&box);
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					T0 + 3650 * DAY, false, NULL, NULL, &n,
					error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 1);
	assert_false(exists(f, "1000.a"));
}

static void test_expire_mailbox_retrieved_from_index(void **state)
{
	struct fixture *f = *state;
	struct expire_policy p = {30 * DAY, EXPIRE_NEVER};
	struct mailbox *box;
	char error[256];
	size_t n;

	put(f, "1000.r", T0 - 100 * DAY);
	put(f, "1001.u", T0 - 100 * DAY);
	assert_int_equal(
	    mailbox_open(f->md_fd, NULL, &box, error, sizeof(error)),
	    MAILBOX_OK);
	mailbox_mark_retrieved(box, 0, T0);
	mailbox_close(&box);
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					T0 + 30 * DAY - 1, false, NULL, NULL,
					&n, error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 0);
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					T0 + 30 * DAY, false, NULL, NULL, &n,
					error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 1);
	assert_false(exists(f, "1000.r"));
	assert_true(exists(f, "1001.u")); /* never retrieved: never */
}

/* Read by IMAP or any Maildir reader: S in the "2," info, and only
 * there (lowercase letters are other programs' keywords). */
static void test_expire_name_seen(void **state)
{
	(void)state;
	assert_true(expire_name_seen("cur/1.a.host:2,S"));
	assert_true(expire_name_seen("cur/1.a.host:2,FRS"));
	assert_true(expire_name_seen("cur/1.a.host:2,ST"));
	assert_false(expire_name_seen("cur/1.a.host:2,F"));
	assert_false(expire_name_seen("cur/1.a.host:2,"));
	assert_false(expire_name_seen("new/1.a.host"));
	assert_false(expire_name_seen("cur/1.a.host:2,ab"));
	assert_false(expire_name_seen("cur/1.a.host:1,S"));
	assert_false(expire_name_seen("cur/1.S.host"));
}

/* The read time is the file's ctime, kept within [delivery, now]
 * (INV-T1: a ctime in the future is now, never later). */
static void test_expire_seen_time_bounds(void **state)
{
	(void)state;
	assert_int_equal(expire_seen_time(T0, T0 - DAY, T0 + DAY), T0);
	assert_int_equal(expire_seen_time(T0 - 2 * DAY, T0 - DAY, T0),
			 T0 - DAY);
	assert_int_equal(expire_seen_time(T0 + DAY, T0 - DAY, T0), T0);
}

static void put_seen(struct fixture *f, const char *name, time_t mtime)
{
	char path[128];
	struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
	int fd;

	snprintf(path, sizeof(path), "cur/%s:2,S", name);
	fd = openat(f->md_fd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Subject: x\n\nbody\n", 17), 17);
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
}

/* Marked \Seen over IMAP: retrieved from the first pass that sees it,
 * not "unread" (kept forever with retention_unread = never). */
static void test_expire_mailbox_seen_counts_as_retrieved(void **state)
{
	struct fixture *f = *state;
	struct expire_policy p = {30 * DAY, EXPIRE_NEVER};
	time_t before = time(NULL), t;
	struct mailbox *box;
	char error[256];
	size_t n;

	put_seen(f, "1000.s", T0 - 100 * DAY);
	put(f, "1001.u", T0 - 100 * DAY);
	/* A dry run assumes it but records nothing. */
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					before + 30 * DAY + 60, true, NULL,
					NULL, &n, error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 1);
	assert_int_equal(
	    mailbox_open(f->md_fd, NULL, &box, error, sizeof(error)),
	    MAILBOX_OK);
	assert_int_equal(mailbox_msg(box, 0)->retrieved, 0);
	mailbox_close(&box);
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					time(NULL), false, NULL, NULL, &n,
					error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 0);
	assert_int_equal(
	    mailbox_open(f->md_fd, NULL, &box, error, sizeof(error)),
	    MAILBOX_OK);
	t = mailbox_msg(box, 0)->retrieved;
	assert_true(t >= before && t <= time(NULL));
	assert_int_equal(mailbox_msg(box, 1)->retrieved, 0);
	mailbox_close(&box);
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					t + 30 * DAY - 1, false, NULL, NULL, &n,
					error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 0);
	assert_int_equal(expire_mailbox(f->md_fd, "bob@example.com", &p,
					t + 30 * DAY, false, NULL, NULL, &n,
					error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 1);
	assert_int_equal(faccessat(f->md_fd, "cur/1000.s:2,S", F_OK, 0), -1);
	assert_true(exists(f, "1001.u"));
}

static void make_folder(struct fixture *f, const char *disk)
{
	char path[128];

	assert_int_equal(mkdirat(f->md_fd, disk, 0700), 0);
	for (int i = 0; i < 3; i++) {
		static const char *const sub[] = {"new", "cur", "tmp"};

		snprintf(path, sizeof(path), "%s/%s", disk, sub[i]);
		assert_int_equal(mkdirat(f->md_fd, path, 0700), 0);
	}
}

static void put_in(struct fixture *f, const char *disk, const char *name,
		   time_t mtime)
{
	char path[128];
	struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
	int fd;

	snprintf(path, sizeof(path), "%s/new/%s", disk, name);
	fd = openat(f->md_fd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Subject: x\n\nbody\n", 17), 17);
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
}

static bool exists_in(struct fixture *f, const char *disk, const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/new/%s", disk, name);
	return faccessat(f->md_fd, path, F_OK, 0) == 0;
}

static void folder_report(const struct expire_removal *r, void *ctx)
{
	struct fixture *f = ctx;

	f->reported++;
	f->last_uid = r->uid;
	assert_int_equal(r->rule, EXPIRE_RULE_FOLDER);
	assert_string_equal(r->folder, "Trash");
	assert_null(r->uidl);
	assert_string_equal(r->rule_text,
			    "autoexpunge.Trash 30d in the folder");
}

/*
 * autoexpunge.Trash = 30d counts the time in the folder: from the file's
 * ctime (the save: APPEND, COPY, MOVE), which the test cannot set, so the
 * pass runs at "now" moved forward. A message saved just now stays 30
 * days however old its INTERNALDATE; one with an INTERNALDATE less than 30
 * days before the pass stays too. A folder without a rule and INBOX are
 * never touched, a rule for a folder the user does not have is no error.
 */
static void test_expire_folders_autoexpunge(void **state)
{
	struct fixture *f = *state;
	struct expire_folder_rule rules[] = {
	    {"Trash", 30 * DAY}, {"Junk", 30 * DAY}, {"Archive", EXPIRE_NEVER}};
	time_t saved = time(NULL), later;
	char error[256];
	size_t n;

	make_folder(f, ".Trash");
	make_folder(f, ".Archive");
	make_folder(f, ".Keep");
	put_in(f, ".Trash", "1000.old", T0);
	put_in(f, ".Trash", "1001.young", saved + 2 * DAY);
	put_in(f, ".Archive", "1000.old", T0);
	put_in(f, ".Keep", "1000.old", T0);
	put(f, "1000.inbox", T0);
	/* Saved just now: kept until 30 days in Trash, though from T0. */
	assert_int_equal(expire_folders(f->md_fd, "bob@example.com", rules, 3,
					saved + 30 * DAY - 60, true,
					folder_report, f, &n, error,
					sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 0);
	later = time(NULL) + 30 * DAY;
	assert_int_equal(expire_folders(f->md_fd, "bob@example.com", rules, 3,
					later, true, folder_report, f, &n,
					error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 1);
	assert_true(exists_in(f, ".Trash", "1000.old")); /* dry run */
	f->reported = 0;
	assert_int_equal(expire_folders(f->md_fd, "bob@example.com", rules, 3,
					later, false, folder_report, f, &n,
					error, sizeof(error)),
			 EXPIRE_DONE);
	assert_int_equal(n, 1);
	assert_int_equal(f->reported, 1);
	assert_int_equal(f->last_uid, 1);
	assert_false(exists_in(f, ".Trash", "1000.old"));
	assert_true(exists_in(f, ".Trash", "1001.young"));
	assert_true(exists_in(f, ".Archive", "1000.old"));
	assert_true(exists_in(f, ".Keep", "1000.old"));
	assert_true(exists(f, "1000.inbox"));
}

static void test_expire_summary_round_trip(void **state)
{
	struct fixture *f = *state;
	struct expire_summary in = {7, 600, true, false}, out;
	int sub_fd;
	char error[128];
	int fd;

	/* The file lives in DATA_DIR, reached from DATA_DIR/mail. */
	sub_fd = openat(f->root_fd, "example.com", O_RDONLY | O_DIRECTORY);
	assert_true(sub_fd >= 0);
	assert_int_equal(expire_summary_read(sub_fd, &out), -1);
	assert_int_equal(
	    expire_summary_write(sub_fd, &in, error, sizeof(error)), 0);
	memset(&out, 0xff, sizeof(out));
	assert_int_equal(expire_summary_read(sub_fd, &out), 0);
	assert_int_equal(out.min_days, 7);
	assert_int_equal(out.max_login_delay, 600);
	assert_true(out.expire_varies);
	assert_false(out.delay_varies);
	in = (struct expire_summary){EXPIRE_NEVER, 0, false, true};
	assert_int_equal(
	    expire_summary_write(sub_fd, &in, error, sizeof(error)), 0);
	assert_int_equal(expire_summary_read(sub_fd, &out), 0);
	assert_int_equal(out.min_days, EXPIRE_NEVER);
	assert_true(out.delay_varies);
	/* Anything else is ignored, never half-used. */
	static const char *const bad[] = {
	    "postd-policy 1 7 600 1 0",	       "postd-policy 2 7 600 1 0\n",
	    "postd-policy 1 -2 600 1 0\n",     "postd-policy 1 7 600 2 0\n",
	    "postd-policy 1 7 600 1 0 x\n",    "postd-policy 1 7 9999999 1 0\n",
	    "postd-policy 1 99999999 1 1 0\n", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = openat(f->root_fd, "postd-policy", O_WRONLY | O_TRUNC,
			    0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, bad[i], strlen(bad[i])),
				 (ssize_t)strlen(bad[i]));
		close(fd);
		assert_int_equal(expire_summary_read(sub_fd, &out), -1);
	}
	assert_int_equal(faccessat(f->root_fd, "postd-policy", F_OK, 0), 0);
	close(sub_fd);
}

/* The pass writes the summary while root: a postd-policy.tmp planted
 * beforehand (a hard link to some other file) must never be written
 * through. */
static void test_expire_summary_write_never_through_a_planted_link(void **state)
{
	struct fixture *f = *state;
	struct expire_summary in = {3, 0, false, false}, out;
	char error[128], got[32];
	int sub_fd, fd;
	ssize_t n;

	sub_fd = openat(f->root_fd, "example.com", O_RDONLY | O_DIRECTORY);
	assert_true(sub_fd >= 0);
	fd = openat(f->root_fd, "victim", O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "secret\n", 7), 7);
	close(fd);
	assert_int_equal(
	    linkat(f->root_fd, "victim", f->root_fd, "postd-policy.tmp", 0), 0);
	assert_int_equal(
	    expire_summary_write(sub_fd, &in, error, sizeof(error)), 0);
	fd = openat(f->root_fd, "victim", O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, got, sizeof(got) - 1);
	close(fd);
	assert_int_equal(n, 7);
	got[n] = '\0';
	assert_string_equal(got, "secret\n");
	assert_int_equal(expire_summary_read(sub_fd, &out), 0);
	assert_int_equal(out.min_days, 3);
	/* A symbolic link in its place is replaced too, not followed. */
	assert_int_equal(symlinkat("victim", f->root_fd, "postd-policy.tmp"),
			 0);
	assert_int_equal(
	    expire_summary_write(sub_fd, &in, error, sizeof(error)), 0);
	close(sub_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_expire_retrieved_not_one_second_early),
	    cmocka_unit_test(test_expire_unread_counts_from_delivery),
	    cmocka_unit_test(test_inv_t1_clock_back_expires_nothing),
	    cmocka_unit_test(test_expire_never_and_zero),
	    cmocka_unit_test(test_expire_capa_days),
	    cmocka_unit_test(test_expire_rule_text),
	    cmocka_unit_test(test_expire_parse_extra_table),
	    cmocka_unit_test(test_expire_precedence),
	    cmocka_unit_test(test_expire_name_seen),
	    cmocka_unit_test(test_expire_seen_time_bounds),
	    cmocka_unit_test_setup_teardown(
		test_expire_mailbox_seen_counts_as_retrieved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_folders_autoexpunge,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_mailbox_purge, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_p2_purge_skips_held_mailbox, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_expire_mailbox_retrieved_from_index, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_summary_round_trip,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_expire_summary_write_never_through_a_planted_link, setup,
		teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
