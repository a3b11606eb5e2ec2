/* IMAP folders in the Maildir++ layout: names, CREATE/DELETE/RENAME,
 * subscriptions and special-use (INV-S2, INV-U1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/postd_limits.h"
#include "storage/folder.h"

#include "fsync_log.h"
#include "tmp_maildir.h"

static bool exists(const struct tmp_maildir *f, const char *rel)
{
	struct stat st;

	return fstatat(f->root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void read_file(const struct tmp_maildir *f, const char *rel, char *buf,
		      size_t size)
{
	int fd = openat(f->root_fd, rel, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, size - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

static const struct folder_info *find(const struct folder_info *list,
				      size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(list[i].name, name) == 0)
			return &list[i];
	}
	return NULL;
}

static void test_mutf7_round_trip(void **state)
{
	static const struct {
		const char *utf8, *mutf7;
	} cases[] = {
	    {"Entwürfe", "Entw&APw-rfe"},
	    {"&", "&-"},
	    {"A&B", "A&-B"},
	    {"台北", "&U,BTFw-"},
	    {"日本語", "&ZeVnLIqe-"},
	    {"x😀y", "x&2D3eAA-y"},
	    {"plain ascii ~!", "plain ascii ~!"},
	};
	char out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		assert_int_equal(
		    folder_mutf7_encode(cases[i].utf8, out, sizeof(out)), 0);
		assert_string_equal(out, cases[i].mutf7);
		assert_int_equal(
		    folder_mutf7_decode(cases[i].mutf7, out, sizeof(out)), 0);
		assert_string_equal(out, cases[i].utf8);
	}
}

static void test_mutf7_rejects(void **state)
{
	/* Not base64, unterminated, encoded ASCII (non-canonical), two runs
	 * in a row, a lone surrogate, 8-bit bytes, bad UTF-8 to encode. */
	static const char *const bad[] = {
	    "&Jjo!", "&U,BTFw", "&AGE-", "&U,A-&U,A-", "&2D0-", "caf\xc3\xa9"};
	char out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(folder_mutf7_decode(bad[i], out, sizeof(out)),
				 -1);
	assert_int_equal(folder_mutf7_encode("\xff", out, sizeof(out)), -1);
	assert_int_equal(folder_mutf7_encode("\xc0\xaf", out, sizeof(out)), -1);
	/* Too small an output buffer fails rather than truncating. */
	assert_int_equal(folder_mutf7_encode("Entwürfe", out, 6), -1);
}

static void test_name_valid_and_disk_names(void **state)
{
	char disk[256], back[256];
	const char *why;

	(void)state;
	assert_true(folder_name_valid("INBOX", &why));
	assert_true(folder_is_inbox("inBox"));
	assert_true(folder_name_valid("Archive/2026", &why));
	assert_int_equal(folder_disk_name("Archive/2026", disk, sizeof(disk)),
			 0);
	assert_string_equal(disk, ".Archive.2026");
	assert_int_equal(folder_disk_name("Entwürfe", disk, sizeof(disk)), 0);
	assert_string_equal(disk, ".Entw&APw-rfe");
	assert_int_equal(folder_name_from_disk(disk, back, sizeof(back)), 0);
	assert_string_equal(back, "Entwürfe");
	assert_int_equal(folder_name_from_disk("..Archive", back, sizeof(back)),
			 -1);
	assert_int_equal(folder_name_from_disk(".a.", back, sizeof(back)), -1);
	assert_int_equal(folder_name_from_disk(".&AGE-", back, sizeof(back)),
			 -1);
}

static void test_name_rejected(void **state)
{
	char deep[128] = "", longname[FOLDER_MAX_NAME + 2];
	static const char *const bad[] = {
	    "",	    "..",   "a/../b", "a/.b",	  "a.b",      "a\\b",
	    "a~b",  "a//b", "/a",     "a/",	  "a\tb",     "a\x7f",
	    "\xff", "a*",   "%",      "\xc0\xaf", "a\xc2\x85"};
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		why = NULL;
		assert_false(folder_name_valid(bad[i], &why));
		assert_non_null(why);
	}
	for (int i = 0; i <= FOLDER_MAX_DEPTH; i++)
		strncat(deep, i == 0 ? "a" : "/a",
			sizeof(deep) - strlen(deep) - 1);
	assert_false(folder_name_valid(deep, &why));
	assert_string_equal(why, "too many hierarchy levels");
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(folder_name_valid(longname, &why));
}

static void test_special_names(void **state)
{
	char out[128];

	(void)state;
	assert_int_equal(folder_special_from_name("\\sent"),
			 FOLDER_SPECIAL_SENT);
	assert_int_equal(folder_special_from_name("\\Bogus"), 0);
	folder_special_format(FOLDER_SPECIAL_DRAFTS | FOLDER_SPECIAL_SENT, out,
			      sizeof(out));
	assert_string_equal(out, "\\Drafts \\Sent");
}

static void test_create_list_and_layout(void **state)
{
	struct tmp_maildir *f = *state;
	struct folder_info *list;
	const struct folder_info *fi;
	char err[256];
	size_t count;
	int fd;

	fsync_log_start(NULL);
	assert_int_equal(
	    folder_create(f->root_fd, "Archive/2026", 0, err, sizeof(err)),
	    FOLDER_OK);
	fsync_log.on = false;
	/* The new entries are durable: the root and the folder synced. */
	assert_true(fsync_logged(f->root, ""));
	assert_true(fsync_logged(f->root, ".Archive.2026"));
	assert_true(exists(f, ".Archive.2026/cur"));
	assert_true(exists(f, ".Archive.2026/new"));
	assert_true(exists(f, ".Archive.2026/tmp"));
	assert_true(exists(f, ".Archive.2026/maildirfolder"));
	assert_true(exists(f, ".Archive/maildirfolder"));
	assert_int_equal(
	    folder_create(f->root_fd, "Entwürfe", 0, err, sizeof(err)),
	    FOLDER_OK);
	assert_true(exists(f, ".Entw&APw-rfe/cur"));
	assert_int_equal(
	    folder_create(f->root_fd, "Archive/2026", 0, err, sizeof(err)),
	    FOLDER_EXISTS);
	assert_int_equal(
	    folder_create(f->root_fd, "inbox", 0, err, sizeof(err)),
	    FOLDER_EXISTS);
	assert_int_equal(folder_create(f->root_fd, "../x", 0, err, sizeof(err)),
			 FOLDER_NOT_ALLOWED);

	assert_int_equal(
	    folder_list(f->root_fd, &list, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 4);
	assert_string_equal(list[0].name, "INBOX");
	assert_string_equal(list[1].name, "Archive");
	assert_true(list[1].has_children);
	assert_false(list[1].nonexistent);
	fi = find(list, count, "Archive/2026");
	assert_non_null(fi);
	assert_false(fi->has_children);
	assert_non_null(find(list, count, "Entwürfe"));
	folder_list_free(&list, count);

	assert_int_equal(
	    folder_open(f->root_fd, "Archive/2026", &fd, err, sizeof(err)),
	    FOLDER_OK);
	close(fd);
	assert_int_equal(
	    folder_open(f->root_fd, "INBOX", &fd, err, sizeof(err)), FOLDER_OK);
	close(fd);
	assert_int_equal(folder_open(f->root_fd, "Nope", &fd, err, sizeof(err)),
			 FOLDER_NOT_FOUND);
}

/* Dovecot 2.3 writes exactly this file for these subscriptions. */
static void test_subscriptions_dovecot_format(void **state)
{
	struct tmp_maildir *f = *state;
	struct folder_info *list;
	char err[256], buf[512];
	size_t count;

	assert_int_equal(
	    folder_create(f->root_fd, "Archive/2026", 0, err, sizeof(err)),
	    FOLDER_OK);
	assert_int_equal(folder_subscribe(f->root_fd, "Archive/2026", true, err,
					  sizeof(err)),
			 FOLDER_OK);
	assert_int_equal(
	    folder_subscribe(f->root_fd, "Entwürfe", true, err, sizeof(err)),
	    FOLDER_OK);
	assert_int_equal(
	    folder_subscribe(f->root_fd, "inbox", true, err, sizeof(err)),
	    FOLDER_OK);
	assert_int_equal(
	    folder_subscribe(f->root_fd, "INBOX", true, err, sizeof(err)),
	    FOLDER_OK);
	read_file(f, "subscriptions", buf, sizeof(buf));
	assert_string_equal(buf,
			    "V\t2\n\nArchive\t2026\nEntw&APw-rfe\nINBOX\n");
	assert_int_equal(
	    folder_subscribe(f->root_fd, "Entwürfe", false, err, sizeof(err)),
	    FOLDER_OK);
	read_file(f, "subscriptions", buf, sizeof(buf));
	assert_string_equal(buf, "V\t2\n\nArchive\t2026\nINBOX\n");
	assert_int_equal(
	    folder_list(f->root_fd, &list, &count, err, sizeof(err)), 0);
	assert_true(list[0].subscribed);
	assert_true(find(list, count, "Archive/2026")->subscribed);
	assert_false(find(list, count, "Archive")->subscribed);
	folder_list_free(&list, count);
}

static void test_delete(void **state)
{
	struct tmp_maildir *f = *state;
	struct folder_info *list;
	char err[256];
	size_t count;
	int fd;

	assert_int_equal(
	    folder_create(f->root_fd, "Archive/2026", 0, err, sizeof(err)),
	    FOLDER_OK);
	fd = openat(f->root_fd, ".Archive/cur/1.msg:2,S", O_CREAT | O_WRONLY,
		    0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(folder_delete(f->root_fd, "INBOX", err, sizeof(err)),
			 FOLDER_NOT_ALLOWED);
	assert_int_equal(folder_delete(f->root_fd, "Nope", err, sizeof(err)),
			 FOLDER_NOT_FOUND);
	/* With a child: the messages go, the name stays \Noselect. */
	assert_int_equal(folder_delete(f->root_fd, "Archive", err, sizeof(err)),
			 FOLDER_OK);
	assert_false(exists(f, ".Archive/cur"));
	assert_true(exists(f, ".Archive.2026/cur"));
	assert_int_equal(
	    folder_open(f->root_fd, "Archive", &fd, err, sizeof(err)),
	    FOLDER_NOT_FOUND);
	assert_int_equal(
	    folder_list(f->root_fd, &list, &count, err, sizeof(err)), 0);
	assert_true(find(list, count, "Archive")->nonexistent);
	assert_true(find(list, count, "Archive")->has_children);
	folder_list_free(&list, count);
	assert_int_equal(folder_delete(f->root_fd, "Archive", err, sizeof(err)),
			 FOLDER_HAS_CHILDREN);
	assert_int_equal(
	    folder_delete(f->root_fd, "Archive/2026", err, sizeof(err)),
	    FOLDER_OK);
	assert_false(exists(f, ".Archive.2026"));
	/* The last child gone, the \Noselect parent can go too. */
	assert_int_equal(folder_delete(f->root_fd, "Archive", err, sizeof(err)),
			 FOLDER_OK);
	assert_int_equal(
	    folder_list(f->root_fd, &list, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 1);
	folder_list_free(&list, count);
}

static void test_rename(void **state)
{
	struct tmp_maildir *f = *state;
	struct folder_info *list;
	char err[256], buf[256];
	size_t count;
	int fd;

	assert_int_equal(
	    folder_create(f->root_fd, "Archive/2026", 0, err, sizeof(err)),
	    FOLDER_OK);
	assert_int_equal(
	    folder_create(f->root_fd, "Other", 0, err, sizeof(err)), FOLDER_OK);
	assert_int_equal(folder_subscribe(f->root_fd, "Archive/2026", true, err,
					  sizeof(err)),
			 FOLDER_OK);
	assert_int_equal(
	    folder_rename(f->root_fd, "Archive", "Other", err, sizeof(err)),
	    FOLDER_EXISTS);
	assert_int_equal(
	    folder_rename(f->root_fd, "Archive", "Archive/x", err, sizeof(err)),
	    FOLDER_NOT_ALLOWED);
	assert_int_equal(
	    folder_rename(f->root_fd, "Missing", "M2", err, sizeof(err)),
	    FOLDER_NOT_FOUND);
	assert_int_equal(
	    folder_rename(f->root_fd, "Archive", "Old/Stuff", err, sizeof(err)),
	    FOLDER_OK);
	assert_true(exists(f, ".Old.Stuff/cur"));
	assert_true(exists(f, ".Old.Stuff.2026/cur"));
	assert_false(exists(f, ".Archive"));
	read_file(f, "subscriptions", buf, sizeof(buf));
	assert_string_equal(buf, "V\t2\n\nOld\tStuff\t2026\n");
	assert_int_equal(
	    folder_list(f->root_fd, &list, &count, err, sizeof(err)), 0);
	assert_true(find(list, count, "Old")->nonexistent);
	assert_non_null(find(list, count, "Old/Stuff/2026"));
	folder_list_free(&list, count);

	/* RENAME INBOX moves its messages, INBOX stays and is empty. */
	fd = openat(f->root_fd, "new/1.a,S=1", O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	fd = openat(f->root_fd, "cur/2.b:2,S", O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(
	    folder_rename(f->root_fd, "INBOX", "Saved", err, sizeof(err)),
	    FOLDER_OK);
	assert_true(exists(f, ".Saved/new/1.a,S=1"));
	assert_true(exists(f, ".Saved/cur/2.b:2,S"));
	assert_false(exists(f, "new/1.a,S=1"));
	assert_true(exists(f, "new"));
}

static void test_special_use_and_defaults(void **state)
{
	struct tmp_maildir *f = *state;
	struct folder_info *list;
	char err[256];
	size_t count, count2;

	assert_int_equal(folder_create(f->root_fd, "Sent", 0, err, sizeof(err)),
			 FOLDER_OK);
	assert_int_equal(folder_create(f->root_fd, "Important",
				       FOLDER_SPECIAL_FLAGGED, err,
				       sizeof(err)),
			 FOLDER_OK);
	/* Four folders made at once: one fsync each, one of the root, two
	 * for each of the two files (tmp, then the root after the rename),
	 * not five or six per folder. */
	fsync_log_start(NULL);
	assert_int_equal(folder_ensure_defaults(f->root_fd, err, sizeof(err)),
			 FOLDER_OK);
	fsync_log.on = false;
	assert_true(fsync_log.count <= 4 + 1 + 2 + 2);
	assert_true(fsync_logged(f->root, ".Trash"));
	assert_true(fsync_logged(f->root, ""));
	assert_int_equal(
	    folder_list(f->root_fd, &list, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 7);
	assert_int_equal(find(list, count, "Important")->special,
			 FOLDER_SPECIAL_FLAGGED);
	assert_int_equal(find(list, count, "Sent")->special,
			 FOLDER_SPECIAL_SENT);
	assert_int_equal(find(list, count, "Drafts")->special,
			 FOLDER_SPECIAL_DRAFTS);
	assert_int_equal(find(list, count, "Trash")->special,
			 FOLDER_SPECIAL_TRASH);
	assert_int_equal(find(list, count, "Junk")->special,
			 FOLDER_SPECIAL_JUNK);
	assert_int_equal(find(list, count, "Archive")->special,
			 FOLDER_SPECIAL_ARCHIVE);
	assert_true(find(list, count, "Trash")->subscribed);
	folder_list_free(&list, count);
	/* Idempotent; a renamed special folder is not recreated. */
	assert_int_equal(
	    folder_rename(f->root_fd, "Junk", "Spam", err, sizeof(err)),
	    FOLDER_OK);
	assert_int_equal(folder_ensure_defaults(f->root_fd, err, sizeof(err)),
			 FOLDER_OK);
	assert_int_equal(
	    folder_list(f->root_fd, &list, &count2, err, sizeof(err)), 0);
	assert_int_equal(count2, count);
	assert_null(find(list, count2, "Junk"));
	assert_int_equal(find(list, count2, "Spam")->special,
			 FOLDER_SPECIAL_JUNK);
	folder_list_free(&list, count2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mutf7_round_trip),
	    cmocka_unit_test(test_mutf7_rejects),
	    cmocka_unit_test(test_name_valid_and_disk_names),
	    cmocka_unit_test(test_name_rejected),
	    cmocka_unit_test(test_special_names),
	    cmocka_unit_test_setup_teardown(test_create_list_and_layout,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_subscriptions_dovecot_format,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_delete, tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_rename, tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_special_use_and_defaults,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
