/*
 * The messages between a worker and the auth process. Each travels as one
 * SOCK_SEQPACKET datagram of fixed size, so a message is never split and a
 * short or long one is simply invalid. Strings are NUL-terminated inside
 * their arrays; auth_request_valid() checks that before anything is read.
 */
#ifndef POSTD_AUTH_PROTO_H
#define POSTD_AUTH_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/postd_limits.h"
#include "lib/username.h"

/* 2: LOOKUP replies carry the targets an address expands to. */
#define AUTH_PROTO_VERSION 2

/* Targets of one LOOKUP reply: at most this many addresses, packed one
 * after another, each NUL-terminated, in this many bytes. */
#define AUTH_MAX_TARGETS 64
#define AUTH_TARGETS_SIZE 4096

enum auth_request_type {
	/* Verify user + password (USER/PASS, AUTH PLAIN, AUTH LOGIN). */
	AUTH_REQUEST_PASSWORD = 1,
	/* Verify an APOP digest: secret is the hex digest, challenge the
	 * greeting's timestamp. */
	AUTH_REQUEST_APOP = 2,
	/* Does this user exist? (SMTP RCPT TO); no password. */
	AUTH_REQUEST_LOOKUP = 3,
	/* The session that sent request id has ended: drop it, answer
	 * nothing. Only version, id and type are read. */
	AUTH_REQUEST_CANCEL = 4,
};

enum auth_result {
	AUTH_RESULT_OK = 0,
	AUTH_RESULT_FAIL = 1,	  /* wrong password or unknown user */
	AUTH_RESULT_TEMPFAIL = 2, /* the auth process could not decide */
};

/* Why a request failed: for the log only, never for the client (INV-A1). */
enum auth_cause {
	AUTH_CAUSE_NONE = 0,
	AUTH_CAUSE_UNKNOWN_USER,
	AUTH_CAUSE_WRONG_PASSWORD,
	AUTH_CAUSE_BAD_HASH,	     /* the stored hash is malformed */
	AUTH_CAUSE_BAD_REQUEST,	     /* the worker sent nonsense */
	AUTH_CAUSE_APOP_UNAVAILABLE, /* APOP for a user without {PLAIN} */
	AUTH_CAUSE_INTERNAL,
	/* Refused before any check: the peer already has its share of
	 * requests in the auth process (a flood), or the process is full. */
	AUTH_CAUSE_PEER_BUSY,
	AUTH_CAUSE_BUSY,
	/* LOOKUP: the address is an alias that leads back to itself, or
	 * expands to more than the configured bound. */
	AUTH_CAUSE_ALIAS_LOOP,
	AUTH_CAUSE_ALIAS_TOO_MANY,
	/* userdb = pgsql: the database could not answer (down, timed out,
	 * an SQL error). Always a temporary failure, never "unknown user"
	 * nor "wrong password". */
	AUTH_CAUSE_USERDB_UNAVAILABLE,
};
#define AUTH_CAUSE_LAST AUTH_CAUSE_USERDB_UNAVAILABLE

struct auth_request {
	uint32_t version;
	uint32_t id;	 /* chosen by the worker, echoed in the reply */
	uint8_t type;	 /* enum auth_request_type */
	uint8_t service; /* enum listen_proto, for the log */
	char peer[64];	 /* numeric address of the client */
	char user[USERNAME_BUF_SIZE]; /* canonical */
	char secret[AUTH_MAX_PASSWORD + 1];
	char challenge[128];
};

struct auth_reply {
	uint32_t version;
	uint32_t id;
	uint8_t result;		      /* enum auth_result */
	uint8_t cause;		      /* enum auth_cause */
	uint32_t peer_failures;	      /* recent failures from this peer */
	uint32_t delay_ms;	      /* how long the reply was held back */
	char user[USERNAME_BUF_SIZE]; /* canonical name on success */
	char extra[256];	      /* the user's extra fields, on success */
	/* LOOKUP success: the final addresses (aliases expanded, a user is
	 * its own one target), packed "a@x\0b@y\0"; bit i of
	 * target_remote set: target i is at another server. Unused bytes
	 * and bits are zero. */
	uint32_t target_count;
	uint64_t target_remote;
	char targets[AUTH_TARGETS_SIZE];
};

/* True if len is the size of a request and every string field is
 * NUL-terminated and the type is known. */
bool auth_request_valid(const struct auth_request *req, size_t len);
bool auth_reply_valid(const struct auth_reply *reply, size_t len);
/* Appends addr as the next target of reply; -1 if it does not fit. */
int auth_reply_add_target(struct auth_reply *reply, const char *addr,
			  bool remote);
/* Target i of a valid reply (i < target_count), and whether it is
 * remote. */
const char *auth_reply_target(const struct auth_reply *reply, uint32_t i,
			      bool *remote_r);
const char *auth_cause_str(enum auth_cause cause);

/* Datagrams read by one auth_recv_batch() call at most. */
#define AUTH_RECV_BATCH 16

/*
 * Reads up to count (at most AUTH_RECV_BATCH) datagrams of up to size
 * bytes each into bufs, one after another, with one system call and
 * without waiting. Returns how many were read, with their sizes in lens
 * (an oversized datagram gets a size above size, so it fails the
 * validity check); 0 when the peer has closed; -1 with errno, EAGAIN
 * when nothing is waiting. One call instead of reading until EAGAIN: on
 * the login path that last, empty read was a system call per request on
 * each side.
 */
int auth_recv_batch(int fd, void *bufs, size_t size, size_t count,
		    size_t *lens);

#endif
