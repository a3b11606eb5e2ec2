/* Checks across keys, run after loading by postd, postd -t and postctl. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

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
	return p.error_count;
}
