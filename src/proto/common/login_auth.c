#include "proto/common/login_auth.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/metrics.h"

void login_auth_set_user(const char *name, size_t len,
			 const char *default_domain,
			 char typed[AUTH_MAX_USER + 1],
			 char user[USERNAME_BUF_SIZE])
{
	size_t n = len < AUTH_MAX_USER ? len : AUTH_MAX_USER;

	memcpy(typed, name, n);
	typed[n] = '\0';
	if (username_normalize(name, len, default_domain, user,
			       USERNAME_BUF_SIZE) < 0)
		user[0] = '\0';
}

bool login_auth_authzid_ok(const char *authzid, const char *user,
			   const char *default_domain)
{
	char zid[USERNAME_BUF_SIZE];

	if (authzid[0] == '\0')
		return true;
	return username_normalize(authzid, strlen(authzid), default_domain, zid,
				  sizeof(zid)) >= 0 &&
	       strcmp(zid, user) == 0;
}

struct auth_client_request *
login_auth_send(struct auth_client *auth, const struct conn *conn, uint8_t type,
		const char *user, const char *secret, size_t secret_len,
		const char *challenge, auth_client_callback *done, void *ctx)
{
	struct auth_client_request *pending;
	struct auth_request req;

	memset(&req, 0, sizeof(req));
	req.type = type;
	req.service = (uint8_t)conn_proto(conn);
	snprintf(req.peer, sizeof(req.peer), "%s", conn_peer(conn));
	snprintf(req.user, sizeof(req.user), "%s", user);
	if (secret_len >= sizeof(req.secret))
		secret_len = sizeof(req.secret) - 1;
	memcpy(req.secret, secret, secret_len);
	snprintf(req.challenge, sizeof(req.challenge), "%s", challenge);
	pending = auth_client_send(auth, &req, done, ctx);
	OPENSSL_cleanse(&req, sizeof(req));
	return pending;
}

enum login_auth_verdict login_auth_verdict(const struct auth_reply *reply,
					   const char **cause_r)
{
	if (reply == NULL) {
		*cause_r = "auth process unavailable";
		return LOGIN_AUTH_TEMPFAIL;
	}
	*cause_r = auth_cause_str(reply->cause);
	if (reply->result == AUTH_RESULT_TEMPFAIL)
		return LOGIN_AUTH_TEMPFAIL;
	/* A non-canonical name from the auth process never opens a
	 * Maildir (INV-U1). */
	if (reply->result != AUTH_RESULT_OK ||
	    !username_is_canonical(reply->user))
		return LOGIN_AUTH_FAILED;
	return LOGIN_AUTH_OK;
}

bool login_auth_log_failure(const struct conn *conn, const char *user_typed,
			    const char *mech, const char *cause,
			    unsigned *failures)
{
	char user[AUTH_MAX_USER * 4 + 1];

	metrics_add(METRIC_LOGINS_FAILED, 1);
	log_escape(user, sizeof(user), user_typed, strlen(user_typed));
	log_info("auth failed user=%s peer=%s session=%s proto=%s cause=%s "
		 "mech=%s",
		 user[0] ? user : "-", conn_peer(conn), conn_id(conn),
		 config_proto_name(conn_proto(conn)), cause, mech);
	return ++*failures >= SESSION_MAX_AUTH_FAILURES;
}
