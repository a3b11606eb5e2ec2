/*
 * The SMTP command table (smtp_commands.c): one row per enum smtp_cmd
 * value, at that value's index, naming the handler and the preconditions
 * the dispatcher checks before calling it. The dispatcher itself is
 * declared in smtp_session.h.
 */
#ifndef POSTD_SMTP_COMMANDS_H
#define POSTD_SMTP_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/smtp/smtp_parse.h"
#include "proto/smtp/smtp_session.h"

typedef void smtp_handler_fn(struct smtp_session *s,
			     const struct smtp_command *cmd);

struct smtp_command_row {
	enum smtp_cmd cmd; /* equal to the row's index */
	smtp_handler_fn *handler;
	bool needs_greeting; /* HELO or EHLO first (RFC 5321 4.1.4) */
	bool outside_txn;    /* not between MAIL and the end of DATA */
};

/* The table, indexed by enum smtp_cmd; *count_r is its length
 * (SMTP_CMD_COUNT). For the unit test that checks every row. */
const struct smtp_command_row *smtp_commands_table(size_t *count_r);

#endif
