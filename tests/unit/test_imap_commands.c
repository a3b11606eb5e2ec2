/*
 * The IMAP command table cannot drift from enum imap_cmd: every value has
 * a row at its own index with a name and a handler of its own and the
 * states it may run in (never logout), and the names are distinct.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/imap_commands.h"

#define STATES_ANY                                                             \
	((1u << IMAP_STATE_NOT_AUTH) | (1u << IMAP_STATE_AUTH) |               \
	 (1u << IMAP_STATE_SELECTED))

static void test_every_command_has_its_own_row(void **state)
{
	size_t count;
	const struct imap_command_row *rows = imap_commands_table(&count);

	(void)state;
	assert_int_equal(count, IMAP_CMD_COUNT);
	for (size_t i = 0; i < count; i++) {
		/* A row missing from a designated table is all zero. */
		assert_int_equal(rows[i].cmd, i);
		assert_non_null(rows[i].name);
		assert_non_null(rows[i].handler);
		assert_true(rows[i].states != 0);
		assert_int_equal(rows[i].states & ~STATES_ANY, 0);
		for (size_t j = 0; j < i; j++) {
			assert_string_not_equal(rows[i].name, rows[j].name);
			assert_ptr_not_equal(rows[i].handler, rows[j].handler);
		}
	}
}

/* Only what a UID prefix may precede (RFC 9051 6.4.9, RFC 4315, 6851),
 * and no command that changes the login state after login. */
static void test_uid_forms_and_login_states(void **state)
{
	static const char *const uid_forms[] = {"COPY",	 "EXPUNGE", "FETCH",
						"MOVE",	 "SEARCH",  "SORT",
						"STORE", "THREAD"};
	size_t count;
	const struct imap_command_row *rows = imap_commands_table(&count);

	(void)state;
	for (size_t i = 0; i < count; i++) {
		bool want = false;

		for (size_t k = 0; k < sizeof(uid_forms) / sizeof(uid_forms[0]);
		     k++)
			want = want || strcmp(rows[i].name, uid_forms[k]) == 0;
		assert_int_equal(rows[i].uid_form, want);
		if (strcmp(rows[i].name, "LOGIN") == 0 ||
		    strcmp(rows[i].name, "AUTHENTICATE") == 0 ||
		    strcmp(rows[i].name, "STARTTLS") == 0)
			assert_int_equal(rows[i].states,
					 1u << IMAP_STATE_NOT_AUTH);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_command_has_its_own_row),
	    cmocka_unit_test(test_uid_forms_and_login_states),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
