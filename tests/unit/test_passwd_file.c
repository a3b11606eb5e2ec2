/* Unit tests for src/auth/passwd_file.c: the users file loader and the
 * atomic editor used by postctl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>

#include "test_files.h"

#include "auth/passwd_file.h"
#include "lib/postd_limits.h"

#define SHA512_SECRET                                                          \
	"{SHA512-CRYPT}$6$saltsalt$"                                           \
	"TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0"                          \
	"U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"
#define SSHA256_SECRET                                                         \
	"{SSHA256}feV6jwbSJmV+7uchugWsSKnF2injr7MK6FSY3UciVSMBAgMEc2FsdFk="

static char tmpdir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_passwd_file.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/users", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char p[256];

	(void)state;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", tmpdir,
				     de->d_name) < sizeof(p))
			unlink(p);
	}
	if (d != NULL)
		closedir(d);
	rmdir(tmpdir);
	return 0;
}

static void write_file(const char *data, size_t len)
{
	test_file_write(path, data, len);
}

static char *read_file(void)
{
	static char buf[65536];

	return test_file_read(path, buf, sizeof(buf));
}

static struct passwd_db *load_ok(void)
{
	struct passwd_db *db = NULL;
	const char *error = NULL;

	if (passwd_db_load(path, &db, &error) != 0)
		fail_msg("load failed: %s", error);
	assert_non_null(db);
	return db;
}

static void test_passwd_load_good_and_bad_lines(void **state)
{
	static const char data[] =
	    "# users of example.org\n"
	    "\n"
	    "alice@example.org:" SHA512_SECRET "\n"
	    "Bob@Example.ORG:{PLAIN}bobpw:1000:1000:Bob B:/home/bob:"
	    "/bin/sh:quota=1G nopop=n\r\n"
	    "carol@example.org:" SSHA256_SECRET "::::::\n"
	    "dave@example.org:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=:1:2\n"
	    "nopassword@example.org\n"
	    "no domain:{PLAIN}x\n"
	    "bare:{PLAIN}x\n"
	    "erin@example.org:{NOSUCH}abc\n"
	    "frank@example.org:{SHA}not-base64!\n"
	    "alice@example.org:{PLAIN}second-alice\n"
	    "ALICE@example.org:{PLAIN}third-alice\n"
	    "grace@example.org:{PLAIN}x:1:2:3:4:5:a=b:c=d\n"
	    "   # not a comment, a bad name\n"
	    "last@example.org:{PLAIN}no-newline";
	struct passwd_db *db;
	const struct passwd_entry *e;
	int first = 0;

	(void)state;
	write_file(data, sizeof(data) - 1);
	db = load_ok();
	assert_int_equal(passwd_db_count(db), 6);

	e = passwd_db_lookup(db, "alice@example.org");
	assert_non_null(e);
	assert_string_equal(e->password, SHA512_SECRET);
	assert_null(e->extra);
	assert_int_equal(e->line, 3);

	/* Lowercased, CR stripped, extra fields after the seventh colon. */
	e = passwd_db_lookup(db, "bob@example.org");
	assert_non_null(e);
	assert_string_equal(e->name, "bob@example.org");
	assert_string_equal(e->password, "{PLAIN}bobpw");
	assert_string_equal(e->extra, "quota=1G nopop=n");

	e = passwd_db_lookup(db, "carol@example.org");
	assert_non_null(e);
	assert_string_equal(e->password, SSHA256_SECRET);
	assert_null(e->extra); /* empty extra field */

	/* A weak scheme is kept (with a warning). */
	e = passwd_db_lookup(db, "dave@example.org");
	assert_non_null(e);
	assert_string_equal(e->password, "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=");

	/* Colons inside the extra fields belong to them. */
	e = passwd_db_lookup(db, "grace@example.org");
	assert_non_null(e);
	assert_string_equal(e->extra, "a=b:c=d");

	e = passwd_db_lookup(db, "last@example.org");
	assert_non_null(e);
	assert_string_equal(e->password, "{PLAIN}no-newline");

	assert_null(passwd_db_lookup(db, "nopassword@example.org"));
	assert_null(passwd_db_lookup(db, "erin@example.org"));
	assert_null(passwd_db_lookup(db, "frank@example.org"));
	assert_null(passwd_db_lookup(db, "bare"));
	assert_null(passwd_db_lookup(db, "Bob@Example.ORG"));
	assert_null(passwd_db_lookup(db, ""));

	/* File order. */
	assert_string_equal(passwd_db_entry(db, 0)->name, "alice@example.org");
	assert_string_equal(passwd_db_entry(db, 1)->name, "bob@example.org");
	assert_string_equal(passwd_db_entry(db, 2)->name, "carol@example.org");
	assert_string_equal(passwd_db_entry(db, 3)->name, "dave@example.org");
	assert_string_equal(passwd_db_entry(db, 4)->name, "grace@example.org");
	assert_string_equal(passwd_db_entry(db, 5)->name, "last@example.org");
	assert_null(passwd_db_entry(db, 6));

	/* Every skipped line is counted for postctl migrate, which refuses
	 * a file it cannot import whole: lines 7-13 and 15. */
	assert_int_equal(passwd_db_skipped(db, &first), 8);
	assert_int_equal(first, 7);
	passwd_db_free(&db);
	assert_null(db);
}

/* INV-S3: an overlong line is skipped whole; its tail is never read as
 * a line of its own, and the next line is parsed normally. */
static size_t append(char *dst, size_t n, const char *s)
{
	memcpy(dst + n, s, strlen(s));
	return n + strlen(s);
}

static void test_inv_s3_passwd_overlong_line(void **state)
{
	char *data = malloc(3 * PASSWD_MAX_LINE);
	struct passwd_db *db;
	size_t n = 0;

	(void)state;
	assert_non_null(data);
	n = append(data, n, "a@x.org:{PLAIN}");
	memset(data + n, 'p', PASSWD_MAX_LINE - n);
	n = PASSWD_MAX_LINE;
	/* Right after the maximum: what would be a valid line if the reader
	 * lost its place. */
	n = append(data, n, "tail@x.org:{PLAIN}t\n");
	n = append(data, n, "next@x.org:{PLAIN}n\n");
	/* A line of exactly the maximum is accepted. */
	n = append(data, n, "max@x.org:{PLAIN}");
	memset(data + n, 'm', PASSWD_MAX_LINE - strlen("max@x.org:{PLAIN}"));
	n += PASSWD_MAX_LINE - strlen("max@x.org:{PLAIN}");
	data[n++] = '\n';
	/* NUL inside a line: skipped. */
	memcpy(data + n, "nul@x.org:{PLAIN}a\0b\n", 21);
	n += 21;
	write_file(data, n);
	free(data);

	db = load_ok();
	assert_null(passwd_db_lookup(db, "a@x.org"));
	assert_null(passwd_db_lookup(db, "tail@x.org"));
	assert_null(passwd_db_lookup(db, "nul@x.org"));
	assert_non_null(passwd_db_lookup(db, "next@x.org"));
	assert_int_equal(passwd_db_lookup(db, "next@x.org")->line, 2);
	assert_non_null(passwd_db_lookup(db, "max@x.org"));
	assert_int_equal(passwd_db_count(db), 2);
	passwd_db_free(&db);
}

static void test_passwd_many_users(void **state)
{
	FILE *f;
	struct passwd_db *db;
	char name[64];

	(void)state;
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 20000; i++)
		fprintf(f, "user%d@example.org:{SSHA256.HEX}%072x\n", i, i);
	assert_int_equal(fclose(f), 0);
	db = load_ok();
	assert_int_equal(passwd_db_count(db), 20000);
	for (int i = 0; i < 20000; i += 7) {
		const struct passwd_entry *e;
		char pw[128];

		snprintf(name, sizeof(name), "user%d@example.org", i);
		snprintf(pw, sizeof(pw), "{SSHA256.HEX}%072x", i);
		e = passwd_db_lookup(db, name);
		assert_non_null(e);
		assert_string_equal(e->password, pw);
		assert_ptr_equal(passwd_db_entry(db, (size_t)i), e);
	}
	assert_null(passwd_db_lookup(db, "user20000@example.org"));
	passwd_db_free(&db);
}

static void test_passwd_load_missing(void **state)
{
	struct passwd_db *db = (struct passwd_db *)1;
	const char *error = NULL;

	(void)state;
	assert_int_equal(passwd_db_load(path, &db, &error), -1);
	assert_null(db);
	assert_non_null(error);
	assert_non_null(strstr(error, path));
	/* A directory cannot be read as a file. */
	assert_int_equal(passwd_db_load(tmpdir, &db, &error), -1);
	assert_null(db);
	/* NULL databases are empty. */
	assert_null(passwd_db_lookup(NULL, "a@b"));
	assert_int_equal(passwd_db_count(NULL), 0);
	passwd_db_free(&db);
}

static void assert_no_temp_files(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		assert_null(strstr(de->d_name, ".tmp."));
	closedir(d);
}

static void test_passwd_set_delete_round_trip(void **state)
{
	const char *error = NULL;
	struct passwd_db *db;
	struct stat st;

	(void)state;
	/* A missing file is created, mode 0600: root's alone. */
	assert_int_equal(passwd_file_set(path, "alice@example.org",
					 SHA512_SECRET, true, false, &error),
			 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_string_equal(read_file(),
			    "alice@example.org:" SHA512_SECRET "\n");

	/* Existing users: add refused, replace allowed. */
	assert_int_equal(passwd_file_set(path, "alice@example.org", "{PLAIN}x",
					 true, false, &error),
			 -1);
	assert_string_equal(error, "user already exists");
	/* Missing user without create. */
	assert_int_equal(passwd_file_set(path, "bob@example.org", "{PLAIN}x",
					 false, true, &error),
			 -1);
	assert_string_equal(error, "no such user");
	/* Bad input. */
	assert_int_equal(passwd_file_set(path, "Bob@example.org", "{PLAIN}x",
					 true, true, &error),
			 -1);
	assert_int_equal(passwd_file_set(path, "bob@example.org",
					 "{PLAIN}x\nevil@x.org:{PLAIN}y", true,
					 true, &error),
			 -1);
	assert_int_equal(passwd_file_set(path, "bob@example.org", "{NOPE}x",
					 true, true, &error),
			 -1);

	/* Replace keeps comments, other lines, fields and line ends. */
	write_file("# comment\r\n"
		   "alice@example.org:{PLAIN}old:1:2:g:/h:/s:quota=1\r\n"
		   "bob@example.org:{PLAIN}bob\n"
		   "alice@example.org:{PLAIN}dup\n"
		   "weird line kept\n"
		   "carol@example.org:{PLAIN}c",
		   strlen("# comment\r\n"
			  "alice@example.org:{PLAIN}old:1:2:g:/h:/s:quota=1\r\n"
			  "bob@example.org:{PLAIN}bob\n"
			  "alice@example.org:{PLAIN}dup\n"
			  "weird line kept\n"
			  "carol@example.org:{PLAIN}c"));
	chmod(path, 0600);
	assert_int_equal(passwd_file_set(path, "alice@example.org",
					 SSHA256_SECRET, false, true, &error),
			 0);
	assert_string_equal(read_file(), "# comment\r\n"
					 "alice@example.org:" SSHA256_SECRET
					 ":1:2:g:/h:/s:quota=1\r\n"
					 "bob@example.org:{PLAIN}bob\n"
					 "alice@example.org:{PLAIN}dup\n"
					 "weird line kept\n"
					 "carol@example.org:{PLAIN}c");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600); /* mode kept */

	/* Replacing a line without more fields; adding after a last line
	 * without a newline. */
	assert_int_equal(passwd_file_set(path, "carol@example.org", "{PLAIN}c2",
					 false, true, &error),
			 0);
	assert_int_equal(passwd_file_set(path, "dave@example.org", "{PLAIN}d",
					 true, false, &error),
			 0);
	assert_non_null(strstr(read_file(), "weird line kept\n"
					    "carol@example.org:{PLAIN}c2\n"
					    "dave@example.org:{PLAIN}d\n"));

	/* Delete removes every line of the user. */
	assert_int_equal(passwd_file_delete(path, "alice@example.org", &error),
			 0);
	assert_string_equal(read_file(), "# comment\r\n"
					 "bob@example.org:{PLAIN}bob\n"
					 "weird line kept\n"
					 "carol@example.org:{PLAIN}c2\n"
					 "dave@example.org:{PLAIN}d\n");
	assert_int_equal(passwd_file_delete(path, "alice@example.org", &error),
			 -1);
	assert_string_equal(error, "no such user");

	db = load_ok();
	assert_int_equal(passwd_db_count(db), 3);
	assert_string_equal(passwd_db_lookup(db, "carol@example.org")->password,
			    "{PLAIN}c2");
	passwd_db_free(&db);
	assert_no_temp_files();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_passwd_load_good_and_bad_lines,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inv_s3_passwd_overlong_line,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_passwd_many_users, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_passwd_load_missing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_passwd_set_delete_round_trip,
					    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
