/* Unit tests for the POP3 command parser (RFC 1939, RFC 2449). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/pop3/pop3_parse.h"

struct parse_case {
	const char *line;
	enum pop3_parse_error want;
	enum pop3_cmd cmd;
	uint32_t msg;
	uint64_t lines;
	const char *text;
	const char *arg2;
};

static const struct parse_case cases[] = {
    {"STAT", POP3_PARSE_OK, POP3_CMD_STAT, 0, 0, NULL, NULL},
    {"stat", POP3_PARSE_OK, POP3_CMD_STAT, 0, 0, NULL, NULL},
    {"StAt  ", POP3_PARSE_OK, POP3_CMD_STAT, 0, 0, NULL, NULL},
    {"STAT 1", POP3_PARSE_BAD_ARGS, POP3_CMD_STAT, 0, 0, NULL, NULL},
    {"LIST", POP3_PARSE_OK, POP3_CMD_LIST, 0, 0, NULL, NULL},
    {"LIST 7", POP3_PARSE_OK, POP3_CMD_LIST, 7, 0, NULL, NULL},
    {"LIST 0", POP3_PARSE_BAD_MSGNUM, POP3_CMD_LIST, 0, 0, NULL, NULL},
    {"LIST -1", POP3_PARSE_BAD_MSGNUM, POP3_CMD_LIST, 0, 0, NULL, NULL},
    {"LIST +1", POP3_PARSE_BAD_MSGNUM, POP3_CMD_LIST, 0, 0, NULL, NULL},
    {"LIST 1x", POP3_PARSE_BAD_MSGNUM, POP3_CMD_LIST, 0, 0, NULL, NULL},
    {"LIST 1 2", POP3_PARSE_BAD_ARGS, POP3_CMD_LIST, 0, 0, NULL, NULL},
    {"RETR 99999999999999999999", POP3_PARSE_BAD_MSGNUM, POP3_CMD_RETR, 0, 0,
     NULL, NULL},
    {"RETR 10000000", POP3_PARSE_OK, POP3_CMD_RETR, 10000000, 0, NULL, NULL},
    {"RETR 10000001", POP3_PARSE_BAD_MSGNUM, POP3_CMD_RETR, 0, 0, NULL, NULL},
    {"RETR", POP3_PARSE_BAD_ARGS, POP3_CMD_RETR, 0, 0, NULL, NULL},
    {"DELE 3", POP3_PARSE_OK, POP3_CMD_DELE, 3, 0, NULL, NULL},
    {"TOP 2 10", POP3_PARSE_OK, POP3_CMD_TOP, 2, 10, NULL, NULL},
    {"TOP 2 0", POP3_PARSE_OK, POP3_CMD_TOP, 2, 0, NULL, NULL},
    {"TOP 2", POP3_PARSE_BAD_ARGS, POP3_CMD_TOP, 0, 0, NULL, NULL},
    {"TOP 2 -1", POP3_PARSE_BAD_ARGS, POP3_CMD_TOP, 0, 0, NULL, NULL},
    {"TOP 2 5 6", POP3_PARSE_BAD_ARGS, POP3_CMD_TOP, 0, 0, NULL, NULL},
    {"USER alice", POP3_PARSE_OK, POP3_CMD_USER, 0, 0, "alice", NULL},
    {"USER", POP3_PARSE_BAD_ARGS, POP3_CMD_USER, 0, 0, NULL, NULL},
    /* a name with invisible differences is not that user: never trimmed */
    {"USER alice\t", POP3_PARSE_OK, POP3_CMD_USER, 0, 0, "alice\t", NULL},
    {"USER alice ", POP3_PARSE_OK, POP3_CMD_USER, 0, 0, "alice ", NULL},
    {"USER alice@example.org \t", POP3_PARSE_OK, POP3_CMD_USER, 0, 0,
     "alice@example.org \t", NULL},
    {"USER  alice", POP3_PARSE_OK, POP3_CMD_USER, 0, 0, " alice", NULL},
    {"USER \t", POP3_PARSE_OK, POP3_CMD_USER, 0, 0, "\t", NULL},
    {"PASS pass word ", POP3_PARSE_OK, POP3_CMD_PASS, 0, 0, "pass word ", NULL},
    {"APOP bob c4c9334bac560ecc979e58001b3e22fb", POP3_PARSE_OK, POP3_CMD_APOP,
     0, 0, "bob", "c4c9334bac560ecc979e58001b3e22fb"},
    {"APOP bob short", POP3_PARSE_BAD_ARGS, POP3_CMD_APOP, 0, 0, NULL, NULL},
    {"AUTH", POP3_PARSE_OK, POP3_CMD_AUTH, 0, 0, NULL, NULL},
    {"AUTH PLAIN", POP3_PARSE_OK, POP3_CMD_AUTH, 0, 0, "PLAIN", NULL},
    {"AUTH PLAIN AGFsaWNlAHNlY3JldA==", POP3_PARSE_OK, POP3_CMD_AUTH, 0, 0,
     "PLAIN", "AGFsaWNlAHNlY3JldA=="},
    {"AUTH PLAIN a b", POP3_PARSE_BAD_ARGS, POP3_CMD_AUTH, 0, 0, NULL, NULL},
    {"STLS", POP3_PARSE_OK, POP3_CMD_STLS, 0, 0, NULL, NULL},
    {"CAPA", POP3_PARSE_OK, POP3_CMD_CAPA, 0, 0, NULL, NULL},
    {"QUIT", POP3_PARSE_OK, POP3_CMD_QUIT, 0, 0, NULL, NULL},
    {"UIDL 4", POP3_PARSE_OK, POP3_CMD_UIDL, 4, 0, NULL, NULL},
    {"", POP3_PARSE_EMPTY, POP3_CMD_STAT, 0, 0, NULL, NULL},
    {"XYZZY", POP3_PARSE_UNKNOWN, POP3_CMD_STAT, 0, 0, NULL, NULL},
    {"STATS", POP3_PARSE_UNKNOWN, POP3_CMD_STAT, 0, 0, NULL, NULL},
    {" STAT", POP3_PARSE_UNKNOWN, POP3_CMD_STAT, 0, 0, NULL, NULL},
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		char line[128];
		struct pop3_command cmd;
		const char *error = NULL;
		enum pop3_parse_error got;

		snprintf(line, sizeof(line), "%s", c->line);
		got = pop3_parse_command(line, strlen(line), &cmd, &error);
		if (got != c->want)
			fail_msg("case '%s': got %d, want %d", c->line, got,
				 c->want);
		if (got != POP3_PARSE_OK) {
			assert_non_null(error);
			continue;
		}
		assert_int_equal(cmd.cmd, c->cmd);
		assert_int_equal(cmd.msg, c->msg);
		assert_int_equal(cmd.lines, c->lines);
		if (c->text != NULL)
			assert_string_equal(cmd.text, c->text);
		else
			assert_null(cmd.text);
		if (c->arg2 != NULL)
			assert_string_equal(cmd.arg2, c->arg2);
		else
			assert_null(cmd.arg2);
	}
}

/* A NUL in a command is an error, not a terminator. */
static void test_nul_in_command(void **state)
{
	char line[] = "DELE 1\0DELE 2";
	struct pop3_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(
	    pop3_parse_command(line, sizeof(line) - 1, &cmd, &error),
	    POP3_PARSE_NUL);
}

static void test_msgnum(void **state)
{
	uint32_t n;

	(void)state;
	assert_int_equal(pop3_parse_msgnum("1", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pop3_parse_msgnum("", &n), -1);
	assert_int_equal(pop3_parse_msgnum("0", &n), -1);
	assert_int_equal(pop3_parse_msgnum(" 1", &n), -1);
	assert_int_equal(pop3_parse_msgnum("4294967297", &n), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),
	    cmocka_unit_test(test_nul_in_command),
	    cmocka_unit_test(test_msgnum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
