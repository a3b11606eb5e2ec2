/*
 * Where mail for a recipient domain goes: a local domain is delivered
 * into its Maildir; transport.DOMAIN names a fixed host; relay_host a
 * smarthost for everything else; otherwise the domain's MX hosts on
 * cfg->mx_port (RFC 5321 section 5.1).
 */
#ifndef POSTD_ROUTE_H
#define POSTD_ROUTE_H

#include <stdbool.h>

#include "config/config.h"

enum route_kind {
	ROUTE_LOCAL,	 /* a domain of cfg->domains */
	ROUTE_TRANSPORT, /* transport.DOMAIN = HOST:PORT */
	ROUTE_RELAY,	 /* relay_host */
	ROUTE_MX,	 /* MX lookup of the domain */
};

struct route {
	enum route_kind kind;
	const char *host; /* TRANSPORT, RELAY: the host; MX: the domain */
	unsigned port;
	bool auth; /* RELAY with relay_auth: AUTH PLAIN, TLS required */
	enum tls_policy tls;
	/* The destination that connection caps count: "mx:DOMAIN" or
	 * "host:HOST:PORT". */
	char key[300];
};

/* Routes domain (lowercase). Returns 0, or -1 with error_r when the
 * configured port is not a valid number. */
int route_for_domain(const struct config *cfg, const char *domain,
		     struct route *r, const char **error_r);
const char *route_kind_name(enum route_kind kind);

#endif
