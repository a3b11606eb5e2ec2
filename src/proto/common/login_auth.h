/*
 * The protocol-neutral half of a password login through the auth process,
 * shared by POP3 (USER/PASS, APOP, AUTH) and IMAP (LOGIN, AUTHENTICATE):
 * remembering the name the client typed, refusing a foreign authorization
 * identity, sending the check, reading its verdict and logging a refused
 * login. Each protocol keeps its own replies (RFC 3206 codes in POP3,
 * RFC 5530 codes in IMAP); the auth process applies the failure delay, so
 * an unknown user and a wrong password look the same (INV-A1).
 */
#ifndef POSTD_LOGIN_AUTH_H
#define POSTD_LOGIN_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth_client.h"
#include "lib/postd_limits.h"
#include "lib/username.h"
#include "net/conn.h"

/*
 * Keeps name as typed (for the log, cut to AUTH_MAX_USER bytes) in typed
 * and its canonical form in user. A name that cannot be a user becomes ""
 * and goes on to the auth process, so it fails with the same reply and
 * timing as an unknown user (INV-A1).
 */
void login_auth_set_user(const char *name, size_t len,
			 const char *default_domain,
			 char typed[AUTH_MAX_USER + 1],
			 char user[USERNAME_BUF_SIZE]);

/* INV-A1: acting as somebody else is not offered. True when authzid is
 * empty or names the canonical user itself. */
bool login_auth_authzid_ok(const char *authzid, const char *user,
			   const char *default_domain);

/*
 * Asks the auth process to check secret (a password, or an APOP digest
 * with challenge) for user on conn's behalf; done runs with ctx when it
 * answers. The copy of the secret is wiped here. Returns the pending
 * request, or NULL when the auth process cannot be reached (done will not
 * run: the caller refuses with its protocol's temporary failure).
 */
struct auth_client_request *
login_auth_send(struct auth_client *auth, const struct conn *conn, uint8_t type,
		const char *user, const char *secret, size_t secret_len,
		const char *challenge, auth_client_callback *done, void *ctx);

enum login_auth_verdict {
	LOGIN_AUTH_OK,	     /* reply->user is the canonical user */
	LOGIN_AUTH_FAILED,   /* wrong password or unknown user */
	LOGIN_AUTH_TEMPFAIL, /* no answer, or the auth process could not
				decide */
};

/* What the auth process's reply (NULL: it went away) means, with the
 * cause for the log in *cause_r (except for LOGIN_AUTH_OK). */
enum login_auth_verdict login_auth_verdict(const struct auth_reply *reply,
					   const char **cause_r);

/*
 * Counts a refused password and writes its one log line ("auth failed
 * user=... cause=... mech=..."). Returns true when *failures has reached
 * SESSION_MAX_AUTH_FAILURES: the caller says so and closes the session.
 */
bool login_auth_log_failure(const struct conn *conn, const char *user_typed,
			    const char *mech, const char *cause,
			    unsigned *failures);

#endif
