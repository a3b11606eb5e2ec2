/*
 * The POP3 command table cannot drift from enum pop3_cmd: every value has
 * a row at its own index with a handler of its own and the states it may
 * run in, and every keyword parses back to its value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/parse.h"
#include "proto/pop3/pop3_commands.h"

#define STATES_ANY                                                             \
	((1u << POP3_STATE_AUTHORIZATION) | (1u << POP3_STATE_TRANSACTION))

static void test_every_command_has_its_own_row(void **state)
{
	size_t count;
	const struct pop3_command_row *rows = pop3_commands_table(&count);

	(void)state;
	assert_int_equal(count, POP3_CMD_COUNT);
	for (size_t i = 0; i < count; i++) {
		/* A row missing from a designated table is all zero: cmd 0
		 * and no handler. */
		assert_int_equal(rows[i].cmd, i);
		assert_non_null(rows[i].handler);
		/* Runs somewhere, and never in UPDATE (no input then). */
		assert_true(rows[i].states != 0);
		assert_int_equal(rows[i].states & ~STATES_ANY, 0);
		/* One handler per command: a copied row shows here. */
		for (size_t j = 0; j < i; j++)
			assert_ptr_not_equal(rows[i].handler, rows[j].handler);
	}
}

/* The shortest arguments that fit a command's shape. */
static const char *minimal_args(enum pop3_args shape)
{
	switch (shape) {
	case POP3_ARGS_MSG:
		return " 1";
	case POP3_ARGS_MSG_N:
		return " 1 0";
	case POP3_ARGS_TEXT:
		return " x";
	case POP3_ARGS_APOP:
		return " x 0123456789abcdef0123456789abcdef";
	default:
		return "";
	}
}

static void test_every_keyword_parses_back(void **state)
{
	(void)state;
	for (int i = 0; i < POP3_CMD_COUNT; i++) {
		enum pop3_cmd cmd = (enum pop3_cmd)i;
		char line[128];
		struct pop3_command parsed;
		const char *error = NULL;
		int len;

		assert_string_not_equal(pop3_cmd_name(cmd), "?");
		/* Exactly as named, then in lower case. */
		for (int lower = 0; lower < 2; lower++) {
			len = snprintf(line, sizeof(line), "%s%s",
				       pop3_cmd_name(cmd),
				       minimal_args(pop3_cmd_args(cmd)));
			if (lower)
				ascii_lowercase(line);
			assert_int_equal(pop3_parse_command(line, (size_t)len,
							    &parsed, &error),
					 POP3_PARSE_OK);
			assert_int_equal(parsed.cmd, cmd);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_command_has_its_own_row),
	    cmocka_unit_test(test_every_keyword_parses_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
