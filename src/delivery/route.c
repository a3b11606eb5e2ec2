/* Routing a recipient domain to its next hop (see route.h). */
#include "delivery/route.h"

#include <stdio.h>
#include <string.h>

#include "lib/parse.h"

static int route_fixed(const struct config_route *cr, enum route_kind kind,
		       const char *domain, const struct config *cfg,
		       struct route *r, const char **error_r);

static int route_fixed(const struct config_route *cr, enum route_kind kind,
		       const char *domain, const struct config *cfg,
		       struct route *r, const char **error_r)
{
	const char *p = cr->port;
	uint32_t port;
	int n;

	if (parse_uint32(&p, 65535, &port) < 0 || parse_end(&p) < 0 ||
	    port == 0) {
		*error_r = "invalid port in the route";
		return -1;
	}
	r->kind = kind;
	r->host = cr->host;
	r->port = port;
	r->auth = kind == ROUTE_RELAY && cfg->relay_auth != NULL;
	/* The TLS policy follows the recipient domain; AUTH needs TLS
	 * whatever the policy says (checked by the runner). */
	r->tls = config_tls_policy(cfg, domain);
	n = snprintf(r->key, sizeof(r->key), "host:%s:%u", cr->host, port);
	if (n < 0 || (size_t)n >= sizeof(r->key)) {
		*error_r = "route host name too long";
		return -1;
	}
	return 0;
}

int route_for_domain(const struct config *cfg, const char *domain,
		     struct route *r, const char **error_r)
{
	const struct config_route *cr;
	int n;

	memset(r, 0, sizeof(*r));
	if (config_is_local_domain(cfg, domain)) {
		r->kind = ROUTE_LOCAL;
		r->host = domain;
		snprintf(r->key, sizeof(r->key), "local");
		return 0;
	}
	cr = config_transport(cfg, domain);
	if (cr != NULL)
		return route_fixed(cr, ROUTE_TRANSPORT, domain, cfg, r,
				   error_r);
	if (cfg->relay_host != NULL)
		return route_fixed(cfg->relay_host, ROUTE_RELAY, domain, cfg, r,
				   error_r);
	r->kind = ROUTE_MX;
	r->host = domain;
	r->port = cfg->mx_port;
	r->tls = config_tls_policy(cfg, domain);
	n = snprintf(r->key, sizeof(r->key), "mx:%s", domain);
	if (n < 0 || (size_t)n >= sizeof(r->key)) {
		*error_r = "domain too long";
		return -1;
	}
	return 0;
}

const char *route_kind_name(enum route_kind kind)
{
	switch (kind) {
	case ROUTE_LOCAL:
		return "local";
	case ROUTE_TRANSPORT:
		return "transport";
	case ROUTE_RELAY:
		return "relay";
	case ROUTE_MX:
		return "mx";
	}
	return "?";
}
