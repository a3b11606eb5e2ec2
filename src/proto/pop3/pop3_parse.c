#include "proto/pop3/pop3_parse.h"

#include <string.h>

#include "lib/parse.h"
#include "lib/postd_limits.h"

struct pop3_keyword {
	const char *name;
	enum pop3_args args;
};

/* Indexed by enum pop3_cmd. */
static const struct pop3_keyword pop3_keywords[POP3_CMD_COUNT] = {
    [POP3_CMD_USER] = {"USER", POP3_ARGS_TEXT},
    [POP3_CMD_PASS] = {"PASS", POP3_ARGS_TEXT},
    [POP3_CMD_APOP] = {"APOP", POP3_ARGS_APOP},
    [POP3_CMD_AUTH] = {"AUTH", POP3_ARGS_OPT_AUTH},
    [POP3_CMD_STLS] = {"STLS", POP3_ARGS_NONE},
    [POP3_CMD_CAPA] = {"CAPA", POP3_ARGS_NONE},
    [POP3_CMD_QUIT] = {"QUIT", POP3_ARGS_NONE},
    [POP3_CMD_STAT] = {"STAT", POP3_ARGS_NONE},
    [POP3_CMD_LIST] = {"LIST", POP3_ARGS_OPT_MSG},
    [POP3_CMD_RETR] = {"RETR", POP3_ARGS_MSG},
    [POP3_CMD_DELE] = {"DELE", POP3_ARGS_MSG},
    [POP3_CMD_NOOP] = {"NOOP", POP3_ARGS_NONE},
    [POP3_CMD_RSET] = {"RSET", POP3_ARGS_NONE},
    [POP3_CMD_TOP] = {"TOP", POP3_ARGS_MSG_N},
    [POP3_CMD_UIDL] = {"UIDL", POP3_ARGS_OPT_MSG},
};

static int pop3_find_keyword(const char *word, size_t len,
			     enum pop3_cmd *cmd_r);
static enum pop3_parse_error pop3_parse_args(char *args, size_t len,
					     enum pop3_args shape,
					     struct pop3_command *cmd,
					     const char **error_r);
static char *pop3_split(char *s, size_t *len_r, char **rest_r);

const char *pop3_cmd_name(enum pop3_cmd cmd)
{
	return cmd < POP3_CMD_COUNT ? pop3_keywords[cmd].name : "?";
}

enum pop3_args pop3_cmd_args(enum pop3_cmd cmd)
{
	return pop3_keywords[cmd].args;
}

static int pop3_find_keyword(const char *word, size_t len, enum pop3_cmd *cmd_r)
{
	for (int i = 0; i < POP3_CMD_COUNT; i++) {
		const char *name = pop3_keywords[i].name;

		if (strlen(name) == len && ascii_strncaseeq(word, name, len)) {
			*cmd_r = (enum pop3_cmd)i;
			return 0;
		}
	}
	return -1;
}

int pop3_parse_msgnum(const char *s, uint32_t *msg_r)
{
	const char *p = s;
	uint32_t v;

	if (parse_uint32(&p, POP3_MAX_MESSAGES, &v) < 0 || parse_end(&p) < 0 ||
	    v == 0)
		return -1;
	*msg_r = v;
	return 0;
}

/* Cuts the first space-separated word off s: returns it NUL-terminated,
 * with its length, and the rest after one space (or NULL). */
static char *pop3_split(char *s, size_t *len_r, char **rest_r)
{
	char *sp = strchr(s, ' ');

	if (sp == NULL) {
		*len_r = strlen(s);
		*rest_r = NULL;
	} else {
		*sp = '\0';
		*len_r = (size_t)(sp - s);
		*rest_r = sp + 1;
	}
	return s;
}

static enum pop3_parse_error pop3_parse_args(char *args, size_t len,
					     enum pop3_args shape,
					     struct pop3_command *cmd,
					     const char **error_r)
{
	char *word, *rest;
	size_t wlen;

	if (shape == POP3_ARGS_NONE) {
		if (len == 0)
			return POP3_PARSE_OK;
		*error_r = "This command takes no arguments.";
		return POP3_PARSE_BAD_ARGS;
	}
	if (shape == POP3_ARGS_TEXT) {
		if (len == 0) {
			*error_r = "Argument missing.";
			return POP3_PARSE_BAD_ARGS;
		}
		cmd->text = args;
		cmd->text_len = len;
		return POP3_PARSE_OK;
	}
	if (len == 0) {
		if (shape == POP3_ARGS_OPT_MSG || shape == POP3_ARGS_OPT_AUTH)
			return POP3_PARSE_OK;
		*error_r = shape == POP3_ARGS_APOP ? "Name and digest expected."
						   : "Message number expected.";
		return POP3_PARSE_BAD_ARGS;
	}
	word = pop3_split(args, &wlen, &rest);
	switch (shape) {
	case POP3_ARGS_OPT_MSG:
	case POP3_ARGS_MSG:
		if (rest != NULL) {
			*error_r = "Too many arguments.";
			return POP3_PARSE_BAD_ARGS;
		}
		if (pop3_parse_msgnum(word, &cmd->msg) < 0) {
			*error_r = "Invalid message number.";
			return POP3_PARSE_BAD_MSGNUM;
		}
		return POP3_PARSE_OK;
	case POP3_ARGS_MSG_N: {
		const char *p = rest;

		if (pop3_parse_msgnum(word, &cmd->msg) < 0) {
			*error_r = "Invalid message number.";
			return POP3_PARSE_BAD_MSGNUM;
		}
		if (p == NULL ||
		    parse_uint64(&p, UINT32_MAX, &cmd->lines) < 0 ||
		    parse_end(&p) < 0) {
			*error_r =
			    "TOP needs a message number and a line count.";
			return POP3_PARSE_BAD_ARGS;
		}
		return POP3_PARSE_OK;
	}
	case POP3_ARGS_APOP:
		if (rest == NULL || wlen == 0 || strchr(rest, ' ') != NULL ||
		    strlen(rest) != 32) {
			*error_r = "APOP needs a name and a 32-digit digest.";
			return POP3_PARSE_BAD_ARGS;
		}
		cmd->text = word;
		cmd->text_len = wlen;
		cmd->arg2 = rest;
		cmd->arg2_len = 32;
		return POP3_PARSE_OK;
	case POP3_ARGS_OPT_AUTH:
		if (wlen == 0 || wlen > POP3_MAX_ARG ||
		    (rest != NULL && (*rest == '\0' || strchr(rest, ' ')))) {
			*error_r = "AUTH needs a mechanism name.";
			return POP3_PARSE_BAD_ARGS;
		}
		cmd->text = word;
		cmd->text_len = wlen;
		if (rest != NULL) {
			cmd->arg2 = rest;
			cmd->arg2_len = strlen(rest);
		}
		return POP3_PARSE_OK;
	default:
		*error_r = "Invalid arguments.";
		return POP3_PARSE_BAD_ARGS;
	}
}

enum pop3_parse_error pop3_parse_command(char *line, size_t len,
					 struct pop3_command *cmd_r,
					 const char **error_r)
{
	char *args;
	size_t kw_len, args_len;

	memset(cmd_r, 0, sizeof(*cmd_r));
	*error_r = NULL;
	if (memchr(line, '\0', len) != NULL) {
		*error_r = "NUL byte in command.";
		return POP3_PARSE_NUL;
	}
	/* Trailing blanks are forgiven: some clients send "STAT ". USER
	 * and PASS text is kept whole: a password may end with a space, and
	 * "alice\t" is not alice. Such a name goes on as typed and fails
	 * like an unknown user (username_normalize() refuses blanks and
	 * control bytes, INV-A1); trimmed, it would log in as alice. */
	if (len == 0) {
		*error_r = "Empty command.";
		return POP3_PARSE_EMPTY;
	}
	pop3_split(line, &kw_len, &args);
	if (pop3_find_keyword(line, kw_len, &cmd_r->cmd) < 0) {
		*error_r = "Unknown command.";
		return POP3_PARSE_UNKNOWN;
	}
	if (args == NULL) {
		args = line + kw_len; /* the empty string at the end */
		args_len = 0;
	} else {
		args_len = len - kw_len - 1;
	}
	if (pop3_keywords[cmd_r->cmd].args != POP3_ARGS_TEXT) {
		while (args_len > 0 && (args[args_len - 1] == ' ' ||
					args[args_len - 1] == '\t'))
			args[--args_len] = '\0';
	}
	return pop3_parse_args(args, args_len, pop3_keywords[cmd_r->cmd].args,
			       cmd_r, error_r);
}
