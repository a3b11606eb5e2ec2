/*
 * What a worker hands every protocol session: the configuration, the auth
 * client, the TLS context for STARTTLS, and the directory all Maildirs
 * live beneath. Owned by the worker; sessions only borrow it.
 */
#ifndef POSTD_PROTO_ENV_H
#define POSTD_PROTO_ENV_H

#include <stdbool.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "auth/auth_client.h"
#include "config/config.h"
#include "lib/srs.h"
#include "storage/spool.h"

struct proto_env {
	const struct config *cfg;
	struct event_base *base;
	struct auth_client *auth;
	SSL_CTX *ssl_ctx;	  /* NULL: no TLS configured */
	int mail_root_fd;	  /* DATA_DIR/mail */
	int queue_fd;		  /* DATA_DIR/queue: mail for other domains */
	struct spool_pool *spool; /* commits received messages */
	/* SRS keys (read before privileges were dropped); count 0: none */
	const struct srs_secrets *srs;
};

#endif
