/*
 * An SMTP session (RFC 5321) on the smtp (MTA, port 25), submission
 * (RFC 6409, port 587) and submissions (RFC 8314, port 465) listeners.
 * The input mode (commands, DATA body, BDAT chunk) changes only through
 * smtp_session_enter_mode(); the envelope lives in struct smtp_txn, so
 * RSET, a refused message and a finished one are one function.
 */
#ifndef POSTD_SMTP_SESSION_H
#define POSTD_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/auth_client.h"
#include "lib/buf.h"
#include "net/conn.h"
#include "proto/common/proto_env.h"
#include "proto/common/sasl.h"
#include "proto/smtp/smtp_data.h"
#include "proto/smtp/smtp_header.h"
#include "proto/smtp/smtp_parse.h"
#include "storage/spool.h"

enum smtp_mode {
	SMTP_MODE_COMMAND, /* reading command lines */
	SMTP_MODE_DATA,	   /* reading a DATA body up to <CRLF>.<CRLF> */
	SMTP_MODE_BDAT,	   /* reading a BDAT chunk */
};

enum smtp_sasl_step {
	SMTP_SASL_NONE,
	SMTP_SASL_PLAIN,      /* "334 " sent, waiting for the PLAIN blob */
	SMTP_SASL_LOGIN_USER, /* waiting for the LOGIN user name */
	SMTP_SASL_LOGIN_PASS, /* waiting for the LOGIN password */
};

struct smtp_rcpt {
	char addr[SMTP_MAILBOX_BUF_SIZE];
	bool local;
	bool forwarded; /* from an alias to another server: sent with an SRS
			   sender */
	int maildir_fd; /* local recipients: their Maildir */
};

/* The envelope and the message being received: what RSET forgets. */
struct smtp_txn {
	bool active; /* MAIL accepted */
	char sender[SMTP_MAILBOX_BUF_SIZE];
	struct smtp_params params;
	struct smtp_rcpt *rcpts;
	size_t rcpt_count;
	size_t local_count;
	struct spool_msg *msg;
	struct smtp_data data;
	struct smtp_bdat bdat;
	bool bdat_started;
	bool bdat_bogus;     /* a chunk of a refused BDAT is being dropped */
	uint64_t chunk_size; /* octets of the current BDAT chunk */
	const char *refusal; /* reply for the message, once read */
	const char *write_error; /* the spool could not take the bytes */
	int write_errno;
	struct smtp_header_scan *header; /* submission: the header checks */
	char message_id[160];		 /* for the log */
	struct spool_job *job;
	/* RCPT waiting for the auth process's answer */
	struct smtp_rcpt pending;
};

struct smtp_session {
	struct conn *conn;
	struct proto_env *env;
	enum smtp_mode mode;
	bool submission; /* submission or submissions listener */
	bool greeted;	 /* HELO or EHLO seen */
	bool esmtp;	 /* EHLO (not HELO) */
	char helo[SMTP_MAX_DOMAIN + 3];
	char id[16]; /* transaction id for Received: and the log */

	/* AUTH */
	bool authenticated;
	char user[USERNAME_BUF_SIZE];
	char user_typed[AUTH_MAX_USER + 1];
	enum smtp_sasl_step sasl;
	const char *mech;
	struct auth_client_request *auth_req;
	unsigned auth_failures;

	struct smtp_txn txn;
	unsigned errors;
	unsigned commands_before_mail;
	unsigned messages;
	bool busy;
	bool in_input_loop;
};

/* Starts a session on a new connection (sends the greeting). */
void smtp_session_start(struct conn *conn, struct proto_env *env);

void smtp_session_enter_mode(struct smtp_session *s, enum smtp_mode mode);
/* One reply line: "250 2.0.0 OK". The text must not hold CR or LF. */
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A refused command: the reply, one log line (the reply is the cause),
 * the error count, 421 past the limit. */
void smtp_reply_error(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * A refused command with the real cause for the log (the client is told
 * only what the reply says): the reply, ONE log line "refused peer=P
 * session=S proto=X user=U cause=CAUSE", the error count, 421 past the
 * limit. cause NULL: the reply text is the cause.
 */
void smtp_refuse(struct smtp_session *s, const char *cause, const char *fmt,
		 ...) __attribute__((format(printf, 3, 4)));
/* A 4xx the server caused (a lookup, the disk): the reply and one log
 * line, not counted against the client. */
void smtp_tempfail(struct smtp_session *s, const char *cause, const char *fmt,
		   ...) __attribute__((format(printf, 3, 4)));
/*
 * A client the session cannot stay in step with (cross-protocol bytes,
 * a pipelining sync error, a BDAT chunk that cannot be skipped): the
 * reply, ONE refusal log line with the cause, and the connection closes
 * at once; nothing it sent after is read.
 */
void smtp_session_drop(struct smtp_session *s, const char *cause,
		       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * RFC 2920 section 3.1, RFC 3207, RFC 4954: after DATA, STARTTLS, QUIT
 * and an AUTH prompt (334) the client must wait for the reply. Returns
 * true if no byte is waiting; else drops the session (554 5.5.0, the log
 * line names what) and returns false.
 */
bool smtp_session_in_sync(struct smtp_session *s, const char *after);
void smtp_session_set_busy(struct smtp_session *s, bool busy);
void smtp_session_log_refusal(struct smtp_session *s, const char *cause);
bool smtp_session_plaintext_allowed(const struct smtp_session *s);
bool smtp_session_auth_offered(const struct smtp_session *s);
/* Forgets the envelope and any message being received. */
void smtp_txn_reset(struct smtp_session *s);
/* The message body was read: refuse it or hand it to the spool. */
void smtp_session_message_end(struct smtp_session *s);
/* Opens the spool file and writes the trace headers (DATA, first BDAT).
 * Returns 0, or -1 after replying. */
int smtp_session_message_begin(struct smtp_session *s);

/* The command table and dispatcher (smtp_commands.c). */
void smtp_commands_dispatch(struct smtp_session *s, char *line, size_t len);
void smtp_commands_sasl_continue(struct smtp_session *s, char *line,
				 size_t len);

#endif
