/*
 * The POP3 command parser (RFC 1939 section 3, RFC 2449 section 3): pure,
 * no I/O, so that unit tests and the fuzzer drive it directly. It checks
 * each command's arguments against the command's argument shape; which
 * state a command is allowed in is the command table's business
 * (pop3_commands.c).
 */
#ifndef POSTD_POP3_PARSE_H
#define POSTD_POP3_PARSE_H

#include <stddef.h>
#include <stdint.h>

enum pop3_cmd {
	POP3_CMD_USER,
	POP3_CMD_PASS,
	POP3_CMD_APOP,
	POP3_CMD_AUTH,
	POP3_CMD_STLS,
	POP3_CMD_CAPA,
	POP3_CMD_QUIT,
	POP3_CMD_STAT,
	POP3_CMD_LIST,
	POP3_CMD_RETR,
	POP3_CMD_DELE,
	POP3_CMD_NOOP,
	POP3_CMD_RSET,
	POP3_CMD_TOP,
	POP3_CMD_UIDL,
	POP3_CMD_COUNT
};

/* The shape of a command's arguments. */
enum pop3_args {
	POP3_ARGS_NONE,	    /* STAT, QUIT, ... */
	POP3_ARGS_OPT_MSG,  /* LIST [msg], UIDL [msg] */
	POP3_ARGS_MSG,	    /* RETR msg, DELE msg */
	POP3_ARGS_MSG_N,    /* TOP msg n */
	POP3_ARGS_TEXT,	    /* USER name, PASS secret: the rest of the line */
	POP3_ARGS_APOP,	    /* APOP name digest */
	POP3_ARGS_OPT_AUTH, /* AUTH [mechanism [initial-response]] */
};

/* Longest argument RFC 2449 section 4 allows, plus slack for the AUTH
 * initial response, which is bounded by the line length instead. */
#define POP3_MAX_ARG 40

struct pop3_command {
	enum pop3_cmd cmd;
	uint32_t msg;	  /* message number, 0 when absent */
	uint64_t lines;	  /* TOP's line count */
	const char *text; /* USER/PASS text, APOP name, AUTH mechanism */
	size_t text_len;
	const char *arg2; /* APOP digest, AUTH initial response, or NULL */
	size_t arg2_len;
};

enum pop3_parse_error {
	POP3_PARSE_OK = 0,
	POP3_PARSE_EMPTY,
	POP3_PARSE_NUL,
	POP3_PARSE_UNKNOWN,
	POP3_PARSE_BAD_ARGS,
	POP3_PARSE_BAD_MSGNUM,
};

/*
 * Parses one command line (without its CRLF; len bytes, possibly holding
 * NUL). The line is modified in place (arguments are NUL-terminated) and
 * cmd_r points into it. Returns POP3_PARSE_OK or an error, with a reply
 * text for the client in *error_r.
 */
enum pop3_parse_error pop3_parse_command(char *line, size_t len,
					 struct pop3_command *cmd_r,
					 const char **error_r);

/* The keyword of a command ("RETR"). */
const char *pop3_cmd_name(enum pop3_cmd cmd);
enum pop3_args pop3_cmd_args(enum pop3_cmd cmd);

/* A message number: 1..POP3_MAX_MESSAGES, digits only, no leading '+',
 * '-' or whitespace. Returns 0 or -1. */
int pop3_parse_msgnum(const char *s, uint32_t *msg_r);

#endif
