/* Unit tests for the parts of src/auth/userdb_pgsql.c that need no
 * server: the extra fields made from a row, and the users table the
 * retention pass reads (the rest runs against a real PostgreSQL in
 * tests/integration/test_userdb_pgsql.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth_proto.h"
#include "auth/passwd_file.h"
#include "auth/userdb_pgsql.h"

#define EXTRA_SIZE sizeof(((struct auth_reply *)0)->extra)

static void test_userdb_extra_from_columns(void **state)
{
	char out[EXTRA_SIZE];

	(void)state;
	userdb_pgsql_extra(out, sizeof(out), NULL, NULL, NULL);
	assert_string_equal(out, "");
	userdb_pgsql_extra(out, sizeof(out), "30d", NULL, NULL);
	assert_string_equal(out, "retention=30d");
	userdb_pgsql_extra(out, sizeof(out), NULL, "600", NULL);
	assert_string_equal(out, "login_delay=600");
	userdb_pgsql_extra(out, sizeof(out), "7d", "60",
			   "retention_unread=90d");
	assert_string_equal(out,
			    "retention=7d login_delay=60 retention_unread=90d");
	userdb_pgsql_extra(out, sizeof(out), NULL, NULL, "quota=1G");
	assert_string_equal(out, "quota=1G");
	userdb_pgsql_extra(out, sizeof(out), NULL, NULL, "");
	assert_string_equal(out, "");
}

/* INV-S3: fields that do not fit the reply are refused whole ("\n"),
 * never cut (a cut "retention=300d" would read as "retention=30"). */
static void test_inv_s3_userdb_extra_too_long(void **state)
{
	char out[EXTRA_SIZE], big[EXTRA_SIZE + 16];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	userdb_pgsql_extra(out, sizeof(out), "30d", NULL, big);
	assert_string_equal(out, "\n");
	memset(big, 'x', EXTRA_SIZE - 1);
	big[EXTRA_SIZE - 1] = '\0';
	userdb_pgsql_extra(out, sizeof(out), NULL, NULL, big);
	assert_string_equal(out, big);
	userdb_pgsql_extra(out, sizeof(out), "1d", NULL, big);
	assert_string_equal(out, "\n");
}

static void test_userdb_table_from_rows(void **state)
{
	struct passwd_db *db = passwd_db_new();
	const struct passwd_entry *e;

	(void)state;
	assert_true(
	    passwd_db_add(db, "alice@example.org", "{PLAIN}a", "retention=1d"));
	assert_true(passwd_db_add(db, "bob@example.org", "{PLAIN}b", ""));
	assert_false(passwd_db_add(db, "alice@example.org", "{PLAIN}c", NULL));
	assert_int_equal(passwd_db_count(db), 2);
	e = passwd_db_lookup(db, "alice@example.org");
	assert_non_null(e);
	assert_string_equal(e->password, "{PLAIN}a");
	assert_string_equal(e->extra, "retention=1d");
	e = passwd_db_lookup(db, "bob@example.org");
	assert_non_null(e);
	assert_null(e->extra);
	assert_string_equal(passwd_db_entry(db, 1)->name, "bob@example.org");
	passwd_db_free(&db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_userdb_extra_from_columns),
	    cmocka_unit_test(test_inv_s3_userdb_extra_too_long),
	    cmocka_unit_test(test_userdb_table_from_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
