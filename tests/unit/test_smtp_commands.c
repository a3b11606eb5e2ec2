/*
 * The SMTP command table cannot drift from enum smtp_cmd: every value has
 * a row at its own index with a handler of its own, and every verb
 * parses back to its value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/parse.h"
#include "proto/smtp/smtp_commands.h"

static void test_every_command_has_its_own_row(void **state)
{
	size_t count;
	const struct smtp_command_row *rows = smtp_commands_table(&count);

	(void)state;
	assert_int_equal(count, SMTP_CMD_COUNT);
	for (size_t i = 0; i < count; i++) {
		/* A row missing from a designated table is all zero: cmd 0
		 * and no handler. */
		assert_int_equal(rows[i].cmd, i);
		assert_non_null(rows[i].handler);
		/* One handler per command: a copied row shows here. */
		for (size_t j = 0; j < i; j++)
			assert_ptr_not_equal(rows[i].handler, rows[j].handler);
	}
}

static void test_every_verb_parses_back(void **state)
{
	(void)state;
	for (int i = 0; i < SMTP_CMD_COUNT; i++) {
		enum smtp_cmd cmd = (enum smtp_cmd)i;
		char line[64];
		struct smtp_command parsed;
		const char *error = NULL;
		int len;

		assert_string_not_equal(smtp_cmd_name(cmd), "?");
		/* The verb alone, as named and in lower case: the parser
		 * names the command even when its arguments are missing. */
		for (int lower = 0; lower < 2; lower++) {
			len = snprintf(line, sizeof(line), "%s",
				       smtp_cmd_name(cmd));
			if (lower)
				ascii_lowercase(line);
			(void)smtp_parse_command(line, (size_t)len, 0, &parsed,
						 &error);
			assert_int_equal(parsed.cmd, cmd);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_command_has_its_own_row),
	    cmocka_unit_test(test_every_verb_parses_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
