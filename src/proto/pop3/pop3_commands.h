/*
 * The POP3 command table and its dispatcher (pop3_commands.c): one row per
 * enum pop3_cmd value, at that value's index, naming the handler and the
 * preconditions the dispatcher checks before calling it.
 */
#ifndef POSTD_POP3_COMMANDS_H
#define POSTD_POP3_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/pop3/pop3_parse.h"
#include "proto/pop3/pop3_session.h"

typedef void pop3_handler_fn(struct pop3_session *s,
			     const struct pop3_command *cmd);

struct pop3_command_row {
	enum pop3_cmd cmd; /* equal to the row's index */
	pop3_handler_fn *handler;
	unsigned states;      /* bit (1 << enum pop3_state) per allowed state */
	bool plaintext_login; /* refused without TLS unless the policy allows */
};

/* The table, indexed by enum pop3_cmd; *count_r is its length
 * (POP3_CMD_COUNT). For the unit test that checks every row. */
const struct pop3_command_row *pop3_commands_table(size_t *count_r);

/* Parses one command line and runs it, or refuses it (reply and log). */
void pop3_commands_dispatch(struct pop3_session *s, char *line, size_t len);
/* A line received in the middle of an AUTH exchange. */
void pop3_commands_sasl_continue(struct pop3_session *s, char *line,
				 size_t len);

#endif
