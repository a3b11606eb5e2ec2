/*
 * The IMAP command table and its dispatcher (imap_commands.c): one row per
 * enum imap_cmd value, at that value's index, naming the command, its
 * handler and the states it is valid in (RFC 9051 6). The handlers of the
 * mailbox commands are in imap_mailbox.c, FETCH and STORE in imap_fetch.c,
 * SEARCH in imap_search.c.
 */
#ifndef POSTD_IMAP_COMMANDS_H
#define POSTD_IMAP_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/imap/imap_parse.h"
#include "proto/imap/imap_session.h"

enum imap_cmd {
	IMAP_CMD_CAPABILITY,
	IMAP_CMD_NOOP,
	IMAP_CMD_LOGOUT,
	IMAP_CMD_STARTTLS,
	IMAP_CMD_LOGIN,
	IMAP_CMD_AUTHENTICATE,
	IMAP_CMD_ENABLE,
	IMAP_CMD_ID,
	IMAP_CMD_NAMESPACE,
	IMAP_CMD_CREATE,
	IMAP_CMD_DELETE,
	IMAP_CMD_RENAME,
	IMAP_CMD_SUBSCRIBE,
	IMAP_CMD_UNSUBSCRIBE,
	IMAP_CMD_LIST,
	IMAP_CMD_LSUB,
	IMAP_CMD_SELECT,
	IMAP_CMD_EXAMINE,
	IMAP_CMD_STATUS,
	IMAP_CMD_APPEND,
	IMAP_CMD_IDLE,
	IMAP_CMD_CHECK,
	IMAP_CMD_CLOSE,
	IMAP_CMD_UNSELECT,
	IMAP_CMD_EXPUNGE,
	IMAP_CMD_FETCH,
	IMAP_CMD_STORE,
	IMAP_CMD_COPY,
	IMAP_CMD_MOVE,
	IMAP_CMD_SEARCH,
	IMAP_CMD_SORT,
	IMAP_CMD_THREAD,
	IMAP_CMD_CANCELUPDATE,
	IMAP_CMD_COUNT
};

/* A command's arguments after its name (after "UID FETCH" for UID ones). */
struct imap_args {
	const struct imap_arg *v;
	size_t n;
	bool uid; /* the UID form */
};

typedef void imap_handler_fn(struct imap_session *s, const struct imap_args *a);

struct imap_command_row {
	enum imap_cmd cmd; /* equal to the row's index */
	const char *name;  /* upper case */
	imap_handler_fn *handler;
	unsigned states; /* bit (1 << enum imap_state) per allowed state */
	bool uid_form;	 /* may follow "UID" */
};

/* The table, indexed by enum imap_cmd; *count_r is IMAP_CMD_COUNT. */
const struct imap_command_row *imap_commands_table(size_t *count_r);

/* Parses one whole command (imap_parse.h wire form) and runs it, or
 * refuses it (reply and log). */
void imap_commands_dispatch(struct imap_session *s, const char *wire,
			    size_t len);
/* A line received in the middle of an AUTHENTICATE exchange. */
void imap_commands_sasl_continue(struct imap_session *s, char *line,
				 size_t len);
/* A line received during IDLE ("DONE" ends it). */
void imap_commands_idle_line(struct imap_session *s, const char *line,
			     size_t len);
/* The command in progress (SASL, IDLE, APPEND) is void: forget it. */
void imap_commands_abort(struct imap_session *s);
/* The capabilities of an authenticated session, after the common ones
 * (written with a leading space). */
void imap_commands_capabilities(const struct imap_session *s, char *out,
				size_t size);

/*
 * APPEND streaming (imap_mailbox.c). begin: the command collected so far
 * ends in the literal ann; if it is an APPEND, takes the literal (or
 * refuses the command) and returns true. data: bytes of the message.
 * end: the literal is complete. finish: the rest of the line after it,
 * which ends the command.
 */
bool imap_commands_append_begin(struct imap_session *s,
				const struct imap_literal_ann *ann);
void imap_commands_append_data(struct imap_session *s, const char *data,
			       size_t len);
void imap_commands_append_end(struct imap_session *s);
/* True while the command goes on (another literal announced). */
bool imap_commands_append_finish(struct imap_session *s, const char *line,
				 size_t len);

/* Continues a streamed response (FETCH); ends it when complete. */
void imap_commands_job_run(struct imap_session *s);
/* The connection is going: releases the mailbox, view, jobs. */
void imap_commands_session_end(struct imap_session *s);
/* imap_fetch.c: drops a FETCH in progress. */
void imap_fetch_session_end(struct imap_session *s);

#endif
