#include "proto/common/login_policy.h"

bool login_plaintext_allowed(const struct conn *conn, const struct config *cfg)
{
	if (conn_is_tls(conn))
		return true;
	/* The listener's own plaintext_auth.NAME wins over the global key. */
	switch (config_plaintext_auth(cfg, conn_proto(conn))) {
	case PLAINTEXT_AUTH_YES:
		return true;
	case PLAINTEXT_AUTH_LOOPBACK:
		return conn_peer_is_loopback(conn);
	default:
		return false;
	}
}
