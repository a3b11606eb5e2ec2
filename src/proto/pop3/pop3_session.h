/*
 * A POP3 session (RFC 1939): the AUTHORIZATION, TRANSACTION and UPDATE
 * states, changed only through pop3_session_enter_state(), and the
 * per-session state the command handlers in pop3_commands.c and the
 * login and retention policy in pop3_policy.c act on.
 */
#ifndef POSTD_POP3_SESSION_H
#define POSTD_POP3_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth_client.h"
#include "lib/username.h"
#include "net/conn.h"
#include "proto/common/proto_env.h"
#include "proto/common/sasl.h"
#include "storage/expire.h"
#include "storage/mailbox.h"
#include "storage/msg_wire.h"

enum pop3_state {
	POP3_STATE_AUTHORIZATION,
	POP3_STATE_TRANSACTION,
	POP3_STATE_UPDATE,
};

/* Where an AUTH exchange stands (RFC 5034). */
enum pop3_sasl_step {
	POP3_SASL_NONE,
	POP3_SASL_PLAIN_RESPONSE, /* "+ " sent, waiting for the PLAIN blob */
	POP3_SASL_LOGIN_USER,	  /* waiting for the LOGIN user name */
	POP3_SASL_LOGIN_PASS,	  /* waiting for the LOGIN password */
};

/* A multi-line response being written: RETR/TOP stream a file, LIST and
 * UIDL walk the snapshot; both pause above the output high-water mark. */
enum pop3_job_kind { POP3_JOB_NONE, POP3_JOB_MESSAGE, POP3_JOB_LISTING };

struct pop3_job {
	enum pop3_job_kind kind;
	enum pop3_cmd_listing { POP3_LISTING_LIST, POP3_LISTING_UIDL } listing;
	size_t next; /* LIST/UIDL: next message index */
	size_t msg;  /* RETR/TOP: message index */
	int fd;	     /* RETR/TOP: the open message file */
	bool whole;  /* RETR (not TOP): counts as a retrieval */
	struct msg_wire wire;
};

/* Per-transaction state (a POP3 "transaction" is the whole TRANSACTION
 * state): what RSET forgets. */
struct pop3_marks {
	bool *deleted; /* by message index */
	size_t deleted_count;
	uint64_t deleted_bytes;
};

struct pop3_session {
	struct conn *conn;
	struct proto_env *env;
	enum pop3_state state;

	/* AUTHORIZATION */
	char user[USERNAME_BUF_SIZE];	    /* canonical, after USER or AUTH */
	char user_typed[AUTH_MAX_USER + 1]; /* as sent, for the log */
	bool have_user;			    /* USER accepted, PASS may follow */
	enum pop3_sasl_step sasl;
	const char *mech; /* "USER", "PLAIN", "LOGIN", "APOP" */
	struct auth_client_request *auth_req;
	char apop_challenge[128];
	unsigned auth_failures;
	unsigned bad_commands;

	/* TRANSACTION */
	struct expire_policy policy; /* the user's retention (EXPIRE) */
	unsigned login_delay;	     /* the user's LOGIN-DELAY, seconds */
	int maildir_fd;
	struct mailbox *box;
	struct pop3_marks marks;
	struct pop3_job job;
	uint64_t total_bytes; /* of the snapshot */
	unsigned retrieved;
	uint64_t bytes_sent;

	bool busy;	    /* a command is unfinished: read no more input */
	bool in_input_loop; /* pop3_process_input() is on the stack */
};

/* Starts a session on a new connection (sends the greeting). */
void pop3_session_start(struct conn *conn, struct proto_env *env);

/* The one place the state changes; logs "old -> new" at debug level. */
void pop3_session_enter_state(struct pop3_session *s, enum pop3_state state);

/* Replies. Each writes one line ending in CRLF. */
void pop3_reply_ok(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void pop3_reply_err(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Marks the session busy (input paused) or done with its command, in
 * which case pipelined input is processed again. */
void pop3_session_set_busy(struct pop3_session *s, bool busy);

/* Logs a refusal with the session's identity: "refused ... cause=". */
void pop3_session_log_refusal(struct pop3_session *s, const char *cause);

/* Whether USER/PASS and AUTH PLAIN/LOGIN are allowed right now
 * (plaintext_auth and TLS). */
bool pop3_session_plaintext_allowed(const struct pop3_session *s);

/* Closes the connection after the queued replies are sent. */
void pop3_session_close(struct pop3_session *s, const char *reason);

/* Continues a RETR/TOP/LIST/UIDL job; ends it when complete. */
void pop3_job_run(struct pop3_session *s);

#endif
