/*
 * A worker: one event loop serving connections on every listener, as the
 * unprivileged user. SIGTERM closes every session at once (telling each
 * client); SIGQUIT stops accepting and lets sessions finish (reload).
 */
#ifndef POSTD_WORKER_H
#define POSTD_WORKER_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "config/config.h"
#include "lib/srs.h"
#include "net/listener.h"

struct worker_params {
	const struct config *cfg;
	const struct listener_socket *listeners;
	size_t listener_count;
	SSL_CTX *ssl_ctx; /* NULL without tls_cert */
	int auth_fd;
	int mail_root_fd;
	int queue_fd;
	int slot;		       /* connlimit slot */
	const struct srs_secrets *srs; /* read as root; count 0: none */
};

/* Runs until told to stop; returns the exit code. */
int worker_run(const struct worker_params *params);

/* True if postd serves this protocol yet. */
bool worker_proto_supported(enum listen_proto proto);

#endif
