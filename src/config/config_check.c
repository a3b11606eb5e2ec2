/* Checks across keys, run after loading by postd, postd -t and postctl. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "config/config_internal.h"

static void config_check_conninfo(struct config_parser *p, const char *key,
				  const char *conninfo);
static void config_validate_pgsql(struct config_parser *p,
				  const struct config *cfg);
static void config_validate_proxy(struct config_parser *p,
				  const struct config *cfg);

/* Only a smarthost on this machine may get credentials over TLS that is
 * not verified: nobody else is on that path. */
bool config_is_loopback_host(const char *host)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &v6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&v6);
	return false;
}

/* A connection string libpq cannot read would only fail at the first
 * login; say so at postd -t instead. */
static void config_check_conninfo(struct config_parser *p, const char *key,
				  const char *conninfo)
{
	PQconninfoOption *opts;
	char *error = NULL;

	if (conninfo == NULL)
		return;
	opts = PQconninfoParse(conninfo, &error);
	if (opts == NULL)
		config_error(p, 0, "%s: %s", key,
			     error != NULL ? error : "cannot be parsed");
	PQconninfoFree(opts);
	PQfreemem(error);
}

static void config_validate_pgsql(struct config_parser *p,
				  const struct config *cfg)
{
	if (cfg->pgsql_conninfo == NULL)
		config_error(p, 0, "userdb = pgsql needs pgsql_conninfo");
	config_check_conninfo(p, "pgsql_conninfo", cfg->pgsql_conninfo);
	config_check_conninfo(p, "pgsql_conninfo_failover",
			      cfg->pgsql_conninfo_failover);
	/* The name travels as a parameter, never inside the SQL text. */
	if (strstr(cfg->pgsql_user_query, "$1") == NULL)
		config_error(p, 0,
			     "pgsql_user_query must take the user name as $1");
}

int config_validate(const struct config *cfg, FILE *errors)
{
	struct config_parser p = {
	    .path = cfg->path != NULL ? cfg->path : CONFIG_EMBEDDED_NAME,
	    .errors = errors,
	};
	bool need_tls = false;

	for (size_t i = 0; i < cfg->listen_count; i++) {
		if (config_proto_implicit_tls(cfg->listen[i].proto) &&
		    (cfg->tls_cert == NULL || cfg->tls_key == NULL)) {
			config_error(&p, cfg->listen[i].line,
				     "listen.%s needs tls_cert and tls_key",
				     config_proto_name(cfg->listen[i].proto));
			need_tls = true;
		}
	}
	if (!need_tls && (cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
		config_error(&p, 0,
			     "tls_cert and tls_key must be set together");
	if (cfg->listen_count == 0)
		config_error(&p, 0,
			     "no listeners: set at least one listen.* key");
	if (cfg->domain_count == 0)
		config_error(&p, 0, "domains is required");
	if (cfg->auth_default_domain != NULL &&
	    !config_is_local_domain(cfg, cfg->auth_default_domain))
		config_error(&p, 0,
			     "auth_default_domain '%s' is not one of domains",
			     cfg->auth_default_domain);
	if (cfg->relay_auth != NULL && cfg->relay_host == NULL)
		config_error(&p, 0, "relay_auth needs relay_host");
	if (cfg->relay_auth_insecure &&
	    (cfg->relay_auth == NULL || cfg->relay_host == NULL ||
	     !config_is_loopback_host(cfg->relay_host->host)))
		config_error(&p, 0,
			     "relay_auth_insecure needs relay_auth and a "
			     "relay_host on this machine (localhost, "
			     "127.0.0.0/8 or ::1)");
	if (cfg->dkim_key_count > 0 && cfg->dkim_selector == NULL)
		config_error(&p, 0, "dkim_key needs dkim_selector");
	if (cfg->queue_retry_max < cfg->queue_retry_min)
		config_error(&p, 0,
			     "queue_retry_max (%us) is less than "
			     "queue_retry_min (%us)",
			     cfg->queue_retry_max, cfg->queue_retry_min);
	for (size_t i = 0; i < cfg->domain_retention_count; i++) {
		if (!config_is_local_domain(cfg,
					    cfg->domain_retention[i].domain))
			config_error(&p, 0,
				     "retention for '%s': not one of domains",
				     cfg->domain_retention[i].domain);
	}
	if (cfg->userdb == USERDB_PGSQL)
		config_validate_pgsql(&p, cfg);
	config_validate_proxy(&p, cfg);
	return p.error_count;
}

/* A listener that expects PROXY headers from nowhere would refuse every
 * connection: say so at postd -t, not in the log of a running server. */
static void config_validate_proxy(struct config_parser *p,
				  const struct config *cfg)
{
	for (int proto = 0; proto < LISTEN_PROTO_COUNT; proto++) {
		if (cfg->proxy_protocol[proto] && cfg->proxy_trusted_count == 0)
			config_error(
			    p, 0,
			    "proxy_protocol.%s = yes needs "
			    "proxy_trusted (the load balancers' "
			    "addresses)",
			    config_proto_name((enum listen_proto)proto));
	}
}
