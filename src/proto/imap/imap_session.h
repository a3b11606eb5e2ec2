/*
 * An IMAP session (RFC 9051, RFC 3501): the not-authenticated,
 * authenticated, selected and logout states, changed only through
 * imap_session_enter_state(); the command collector that gathers a
 * command's lines and literals before imap_commands.c runs it; replies,
 * refusal logging and the streamed (resumable) long responses. The design
 * is in doc/internals/imap.md.
 */
#ifndef POSTD_IMAP_SESSION_H
#define POSTD_IMAP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth_client.h"
#include "lib/buf.h"
#include "lib/postd_limits.h"
#include "lib/username.h"
#include "net/conn.h"
#include "proto/common/proto_env.h"

enum imap_state {
	IMAP_STATE_NOT_AUTH,
	IMAP_STATE_AUTH,
	IMAP_STATE_SELECTED,
	IMAP_STATE_LOGOUT,
};

/* Where an AUTHENTICATE exchange stands (RFC 9051 6.2.2). */
enum imap_sasl_step {
	IMAP_SASL_NONE,
	IMAP_SASL_PLAIN_RESPONSE, /* "+ " sent, waiting for the PLAIN blob */
	IMAP_SASL_LOGIN_USER,	  /* waiting for the LOGIN user name */
	IMAP_SASL_LOGIN_PASS,	  /* waiting for the LOGIN password */
};

/* What the collector does with the bytes of a literal being received. */
enum imap_literal_sink {
	IMAP_LITERAL_COMMAND, /* into the command buffer */
	IMAP_LITERAL_APPEND,  /* streamed into a message being appended */
	IMAP_LITERAL_DISCARD, /* a refused command's non-synchronising data */
};

struct mail_view;
struct mail_notify;
struct imap_append_cmd;
struct imap_job;

struct imap_session {
	struct conn *conn;
	struct proto_env *env;
	enum imap_state state;

	/* login */
	char user[USERNAME_BUF_SIZE];	    /* canonical, after LOGIN/AUTH */
	char user_typed[AUTH_MAX_USER + 1]; /* as sent, for the log */
	const char *mech;		    /* "LOGIN", "PLAIN" */
	enum imap_sasl_step sasl;
	struct auth_client_request *auth_req;
	unsigned auth_failures;
	unsigned bad_commands;

	/* the command being collected or run */
	char tag[IMAP_MAX_TAG + 1];
	struct buf *cmd;       /* lines and literals (imap_parse.h) */
	uint64_t literal_left; /* octets of the current literal to come */
	enum imap_literal_sink sink;

	/* ENABLE (RFC 5161) */
	bool rev2;	  /* IMAP4rev2 */
	bool utf8_accept; /* UTF8=ACCEPT (RFC 6855) */
	bool condstore;	  /* CONDSTORE (RFC 7162): MODSEQ in FETCH replies */

	/* authenticated */
	int maildir_fd; /* the user's Maildir root (INBOX) */

	/* selected */
	int folder_fd;
	struct mail_view *view;
	/* keywords the client was told of in FLAGS (RFC 9051 7.3.5) */
	size_t keywords_told;
	bool readonly;
	char *selected; /* the selected folder's name (UTF-8) */
	struct mail_notify *notify;
	bool changed;		 /* notify said: sync before the next reply */
	bool allow_expunge;	 /* the running command may announce EXPUNGE */
	bool idling;		 /* IDLE: waiting for DONE */
	struct event *idle_poll; /* IDLE without a notification watch */
	/* SEARCHRES (RFC 5182): UIDs of the last SEARCH ... SAVE */
	uint32_t *saved_uids;
	size_t saved_count;
	/* CONTEXT=SEARCH (RFC 5267): live searches, NULL when none */
	struct imap_search_updates *updates;

	/* APPEND being received */
	struct imap_append_cmd *append_cmd; /* imap_append.c */

	/* a long response being written (FETCH) */
	struct imap_job *job;

	uint64_t bytes_sent;
	unsigned fetched;
	bool busy;	    /* a command is unfinished: read no more input */
	bool in_input_loop; /* imap_process_input() is on the stack */
};

/* Starts a session on a new connection (sends the greeting). */
void imap_session_start(struct conn *conn, struct proto_env *env);

/* The one place the state changes; logs "old -> new" at debug level. */
void imap_session_enter_state(struct imap_session *s, enum imap_state state);

/*
 * Replies. status is "OK", "NO" or "BAD"; code is an RFC 5530 response
 * code without brackets ("AUTHENTICATIONFAILED"), or NULL. text is
 * constant or already safe (never raw network bytes).
 */
void imap_reply_tagged(struct imap_session *s, const char *status,
		       const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void imap_reply_untagged(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A tagged NO or BAD plus the one log line of the refusal. */
void imap_refuse(struct imap_session *s, const char *status, const char *code,
		 const char *reply, const char *cause);

/* Logs a refusal with the session's identity: "refused ... cause=". */
void imap_session_log_refusal(struct imap_session *s, const char *cause);

/* Whether LOGIN and AUTHENTICATE may carry a password right now
 * (plaintext_auth of the listener, and TLS). */
bool imap_session_plaintext_allowed(const struct imap_session *s);

/* Marks the session busy (input paused) or done with its command, in
 * which case pipelined input is processed again. */
void imap_session_set_busy(struct imap_session *s, bool busy);

/* Closes the connection after the queued replies are sent. */
void imap_session_close(struct imap_session *s, const char *reason);

/* The capability list for the current state (no "* CAPABILITY "). */
void imap_session_capabilities(const struct imap_session *s, char *out,
			       size_t size);

/* The timeout and input limit of an authenticated session. */
void imap_session_authenticated(struct imap_session *s);

#endif
