/*
 * The POP3 command parser on arbitrary lines (fuzz every parser). Besides
 * memory errors it checks what the session code relies on: every pointer
 * in the parsed command lies inside the line, lengths match the
 * NUL-terminated strings, and numbers are in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "lib/postd_limits.h"
#include "proto/pop3/pop3_parse.h"

static void fuzz_check_field(const char *line, size_t len, const char *s,
			     size_t s_len);

/* A field points into the line and is NUL-terminated at its length. */
static void fuzz_check_field(const char *line, size_t len, const char *s,
			     size_t s_len)
{
	if (s == NULL) {
		FUZZ_CHECK(s_len == 0);
		return;
	}
	FUZZ_CHECK(s >= line && s + s_len <= line + len);
	FUZZ_CHECK(strlen(s) == s_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly size + 1 bytes, so ASan sees any read past the NUL. */
	char *line = malloc(size + 1);
	char *copy = malloc(size + 1);
	struct pop3_command cmd;
	const char *error = NULL;
	enum pop3_parse_error r;
	uint32_t msg = 0;

	if (line == NULL || copy == NULL)
		abort();
	memcpy(line, data, size);
	line[size] = '\0';
	memcpy(copy, line, size + 1);

	r = pop3_parse_command(line, size, &cmd, &error);
	if (r == POP3_PARSE_OK) {
		FUZZ_CHECK(cmd.cmd < POP3_CMD_COUNT);
		FUZZ_CHECK(error == NULL);
		fuzz_check_field(line, size, cmd.text, cmd.text_len);
		fuzz_check_field(line, size, cmd.arg2, cmd.arg2_len);
		FUZZ_CHECK(cmd.msg <= POP3_MAX_MESSAGES);
		FUZZ_CHECK(cmd.lines <= UINT32_MAX);
		switch (pop3_cmd_args(cmd.cmd)) {
		case POP3_ARGS_NONE:
			FUZZ_CHECK(cmd.text == NULL && cmd.msg == 0);
			break;
		case POP3_ARGS_MSG:
		case POP3_ARGS_MSG_N:
			FUZZ_CHECK(cmd.msg >= 1);
			break;
		case POP3_ARGS_TEXT:
			FUZZ_CHECK(cmd.text != NULL && cmd.text_len > 0);
			break;
		case POP3_ARGS_APOP:
			FUZZ_CHECK(cmd.text_len > 0 && cmd.arg2_len == 32);
			break;
		default:
			break;
		}
		/* The keyword is the line's first word, in any case. */
		FUZZ_CHECK(strncasecmp(copy, pop3_cmd_name(cmd.cmd),
				       strlen(pop3_cmd_name(cmd.cmd))) == 0);
	} else {
		FUZZ_CHECK(error != NULL);
		/* A NUL anywhere is reported as such, never parsed past. */
		FUZZ_CHECK((r == POP3_PARSE_NUL) ==
			   (memchr(data, '\0', size) != NULL));
	}

	if (pop3_parse_msgnum(copy, &msg) == 0) {
		FUZZ_CHECK(msg >= 1 && msg <= POP3_MAX_MESSAGES);
		FUZZ_CHECK(copy[0] >= '0' && copy[0] <= '9');
	}
	free(line);
	free(copy);
	return 0;
}
