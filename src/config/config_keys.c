/* The postd.conf key table (name, type, bounds, default, scope, summary)
 * and the setters that parse each value into struct config. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"

static bool config_valid_account(const char *s);
static int config_parse_duration(const char *s, uint64_t *ms_r);
static int config_parse_retention(struct config_parser *p, const char *key,
				  const char *value, int64_t *secs_r);
static int config_parse_route(struct config_parser *p, const char *key,
			      const char *value, struct config_route *r);
static int config_parse_tls_policy(struct config_parser *p, const char *key,
				   const char *value, enum tls_policy *r);
static void config_uint_bounds(const struct config_key *k, uint64_t *min_r,
			       uint64_t *max_r);
static void config_duration_bounds(const struct config_key *k, uint64_t *min_r,
				   uint64_t *max_r);

static config_setter config_set_hostname, config_set_domains, config_set_domain,
    config_set_path, config_set_account, config_set_uint, config_set_workers,
    config_set_duration, config_set_log_level, config_set_retention,
    config_set_domain_retention, config_set_autoexpunge, config_set_relay_host,
    config_set_transport, config_set_dns_servers, config_set_tls_policy,
    config_set_domain_tls, config_set_selector, config_set_dkim_key,
    config_set_address, config_set_delimiter, config_set_userdb,
    config_set_text;

#define MS(seconds) ((seconds)*1000ull)
/* A limit of postd_limits.h as a default_value. */
#define CONFIG_STR(x) CONFIG_STR_(x)
#define CONFIG_STR_(x) #x
#define CONFIG_MAX_PGSQL_POOL_SIZE 32

/* postd.conf(5) documents every row (tests/unit/test_config_keys.c). */
const struct config_key config_keys[] = {
    {.name = "hostname",
     .set = config_set_hostname,
     .offset = OFF(hostname),
     .type = CONFIG_TYPE_TEXT,
     .summary = "the name in greetings and Received: fields (default: the "
		"system's host name)"},
    {.name = "domains",
     .set = config_set_domains,
     .type = CONFIG_TYPE_LIST,
     .summary = "the local mail domains (required)"},
    {.name = "data_dir",
     .set = config_set_path,
     .offset = OFF(data_dir),
     .default_value = "/var/lib/postd",
     .summary = "mailboxes, queue and state"},
    {.name = "users_file",
     .set = config_set_path,
     .offset = OFF(users_file),
     .default_value = "/etc/postd/users",
     .summary = "the accounts and their password hashes"},
    {.name = "tls_cert",
     .set = config_set_path,
     .offset = OFF(tls_cert),
     .summary = "the certificate chain (PEM)"},
    {.name = "tls_key",
     .set = config_set_path,
     .offset = OFF(tls_key),
     .summary = "the private key of tls_cert (PEM)"},
    {.name = "user",
     .set = config_set_account,
     .offset = OFF(user),
     .type = CONFIG_TYPE_TEXT,
     .default_value = "postd",
     .summary = "the unprivileged account workers run as"},
    {.name = "listen.pop3",
     .set = config_set_listen,
     .type = CONFIG_TYPE_LIST,
     .scope = CONFIG_SCOPE_LISTENER,
     .proto = LISTEN_POP3,
     .repeatable = true,
     .summary = "POP3 addresses (STARTTLS)"},
    {.name = "listen.pop3s",
     .set = config_set_listen,
     .type = CONFIG_TYPE_LIST,
     .scope = CONFIG_SCOPE_LISTENER,
     .proto = LISTEN_POP3S,
     .repeatable = true,
     .summary = "POP3 addresses with TLS from the first byte"},
    {.name = "listen.smtp",
     .set = config_set_listen,
     .type = CONFIG_TYPE_LIST,
     .scope = CONFIG_SCOPE_LISTENER,
     .proto = LISTEN_SMTP,
     .repeatable = true,
     .summary = "SMTP addresses for mail from other servers (port 25)"},
    {.name = "listen.submission",
     .set = config_set_listen,
     .type = CONFIG_TYPE_LIST,
     .scope = CONFIG_SCOPE_LISTENER,
     .proto = LISTEN_SUBMISSION,
     .repeatable = true,
     .summary = "submission addresses (port 587, STARTTLS)"},
    {.name = "listen.submissions",
     .set = config_set_listen,
     .type = CONFIG_TYPE_LIST,
     .scope = CONFIG_SCOPE_LISTENER,
     .proto = LISTEN_SUBMISSIONS,
     .repeatable = true,
     .summary = "submission addresses with TLS from the first byte (465)"},
    {.name = "listen.imap",
     .set = config_set_listen,
     .type = CONFIG_TYPE_LIST,
     .scope = CONFIG_SCOPE_LISTENER,
     .proto = LISTEN_IMAP,
     .repeatable = true,
     .summary = "IMAP addresses (port 143, STARTTLS)"},
    {.name = "listen.imaps",
     .set = config_set_listen,
     .type = CONFIG_TYPE_LIST,
     .scope = CONFIG_SCOPE_LISTENER,
     .proto = LISTEN_IMAPS,
     .repeatable = true,
     .summary = "IMAP addresses with TLS from the first byte (993)"},
    {.name = "auth_default_domain",
     .set = config_set_domain,
     .offset = OFF(auth_default_domain),
     .type = CONFIG_TYPE_TEXT,
     .summary = "the domain of a login name given without one"},
    {.name = "plaintext_auth",
     .set = config_set_plaintext_auth,
     .offset = OFF(plaintext_auth),
     .type = CONFIG_TYPE_CHOICE,
     .default_value = "loopback",
     .summary = "passwords before TLS: no, loopback or yes"},
    {.name = "plaintext_auth.",
     .set = config_set_listener_plaintext_auth,
     .type = CONFIG_TYPE_CHOICE,
     .scope = CONFIG_SCOPE_LISTENER,
     .prefix = true,
     .repeatable = true,
     .summary = "plaintext_auth for one listener"},
    {.name = "apop",
     .set = config_set_bool,
     .offset = OFF(apop),
     .default_value = "no",
     .summary = "offer POP3 APOP"},
    {.name = "workers",
     .set = config_set_workers,
     .offset = OFF(workers),
     .type = CONFIG_TYPE_NUMBER,
     .max = CONFIG_MAX_WORKERS,
     .default_value = "auto",
     .summary = "worker processes; auto (or 0): one per core"},
    {.name = "max_connections",
     .set = config_set_uint,
     .offset = OFF(max_connections),
     .min = 1,
     .max = CONFIG_MAX_CONNECTIONS,
     .default_value = "10000",
     .summary = "connections at once, all protocols"},
    {.name = "max_connections_per_peer",
     .set = config_set_uint,
     .offset = OFF(max_connections_per_peer),
     .min = 1,
     .max = CONFIG_MAX_CONNECTIONS,
     .default_value = "100",
     .summary = "connections at once from one address"},
    {.name = "timeout_preauth",
     .set = config_set_duration,
     .offset = OFF(timeout_preauth),
     .min = MS(1),
     .max = MS(CONFIG_MAX_TIMEOUT),
     .default_value = "60s",
     .summary = "idle time allowed before login"},
    {.name = "pop3_idle_timeout",
     .set = config_set_duration,
     .offset = OFF(timeout_idle),
     .min = MS(POP3_TIMEOUT_AUTHENTICATED_MIN),
     .max = MS(CONFIG_MAX_TIMEOUT),
     /* RFC 1939 section 3: at least 10 minutes once authenticated. */
     .min_why = "RFC 1939 section 3 requires at least 10 minutes (10m)",
     .default_value = "10m",
     .summary = "POP3 idle time allowed after login"},
    {.name = "timeout_idle",
     .set = config_set_duration,
     .replaced_by = "pop3_idle_timeout",
     .summary = "old name of pop3_idle_timeout"},
    /* RFC 5321 section 4.5.3.2.7 asks for at least 5 minutes; less is
     * allowed (under attack, in tests) and postd.conf(5) says so. */
    {.name = "timeout_smtp",
     .set = config_set_duration,
     .offset = OFF(timeout_smtp),
     .min = MS(1),
     .max = MS(CONFIG_MAX_TIMEOUT),
     .default_value = "5m",
     .summary = "SMTP idle time allowed"},
    {.name = "auth_failure_delay",
     .set = config_set_duration,
     .offset = OFF(auth_failure_delay_ms),
     .max = CONFIG_MAX_AUTH_FAILURE_DELAY_MS,
     .default_value = "1s",
     .store_ms = true,
     .summary = "base delay after a failed login"},
    {.name = "userdb",
     .set = config_set_userdb,
     .offset = OFF(userdb),
     .type = CONFIG_TYPE_CHOICE,
     .default_value = "file",
     .summary = "where users live: file (users_file) or pgsql"},
    {.name = "pgsql_conninfo",
     .set = config_set_text,
     .offset = OFF(pgsql_conninfo),
     .summary = "libpq connection string (required with userdb = pgsql)"},
    {.name = "pgsql_conninfo_failover",
     .set = config_set_text,
     .offset = OFF(pgsql_conninfo_failover),
     .summary = "libpq connection string tried when the first is down"},
    {.name = "pgsql_pool_size",
     .set = config_set_uint,
     .offset = OFF(pgsql_pool_size),
     .min = 1,
     .max = CONFIG_MAX_PGSQL_POOL_SIZE,
     .default_value = "2",
     .summary = "database connections of the auth process"},
    {.name = "pgsql_query_timeout",
     .set = config_set_duration,
     .offset = OFF(pgsql_query_timeout_ms),
     .min = 10,
     .max = MS(600),
     .default_value = "5s",
     .store_ms = true,
     .summary = "longest wait for one database query"},
    /* The three queries' defaults are set in code (config.c): SQL does
     * not fit a one-line default. */
    {.name = "pgsql_user_query",
     .set = config_set_text,
     .offset = OFF(pgsql_user_query),
     .summary = "SQL that finds one user, the name as $1"},
    {.name = "pgsql_alias_query",
     .set = config_set_text,
     .offset = OFF(pgsql_alias_query),
     .summary = "SQL that lists every alias: address, targets"},
    {.name = "pgsql_iterate_query",
     .set = config_set_text,
     .offset = OFF(pgsql_iterate_query),
     .summary = "SQL that lists every user, for the retention pass"},
    {.name = "userdb_cache_ttl",
     .set = config_set_duration,
     .offset = OFF(userdb_cache_ttl),
     .max = MS(86400),
     .default_value = "60s",
     .summary = "time a found user is cached (0: no cache)"},
    {.name = "userdb_negative_cache_ttl",
     .set = config_set_duration,
     .offset = OFF(userdb_negative_cache_ttl),
     .max = MS(86400),
     .default_value = "10s",
     .summary = "time an unknown user is cached (0: none)"},
    {.name = "log_level",
     .set = config_set_log_level,
     .offset = OFF(log_debug),
     .type = CONFIG_TYPE_CHOICE,
     .default_value = "info",
     .summary = "info or debug"},
    {.name = "max_message_size",
     .set = config_set_uint,
     .offset = OFF(max_message_size),
     .min = 1024,
     .max = CONFIG_MAX_MESSAGE_SIZE,
     /* Postfix's default is 10 MB; attachments have grown since. */
     .default_value = "52428800",
     .summary = "largest message accepted, octets (SIZE)"},
    {.name = "max_recipients",
     .set = config_set_uint,
     .offset = OFF(max_recipients),
     .min = 1,
     .max = CONFIG_MAX_RECIPIENTS,
     .default_value = "100",
     .summary = "recipients per message"},
    {.name = "smtp_port25_auth",
     .set = config_set_bool,
     .offset = OFF(smtp_auth),
     .default_value = "no",
     .summary = "offer AUTH on listen.smtp (port 25) too, not only on "
		"submission"},
    {.name = "smtp_auth",
     .set = config_set_bool,
     .replaced_by = "smtp_port25_auth",
     .summary = "old name of smtp_port25_auth"},
    {.name = "sender_login_match",
     .set = config_set_bool,
     .offset = OFF(sender_login_match),
     .default_value = "yes",
     .summary = "submission: MAIL FROM and From: must be the user's own"},
    {.name = "smtp_normalize_bare_lf",
     .set = config_set_bool,
     .offset = OFF(smtp_normalize_bare_lf),
     .default_value = "no",
     .summary = "store a bare LF as CRLF instead of refusing the message"},
    {.name = "smtp_max_line_length",
     .set = config_set_uint,
     .offset = OFF(smtp_max_line_length),
     .min = SMTP_MAX_TEXT_LINE,
     .max = CONFIG_MAX_SMTP_LINE,
     .default_value = "65536",
     .summary = "longest line in a message, octets with CRLF"},
    {.name = "max_received_headers",
     .set = config_set_uint,
     .offset = OFF(max_received_headers),
     .min = 1,
     .max = CONFIG_MAX_RECEIVED,
     .default_value = "50",
     .summary = "Received: fields a message may carry (more: a loop)"},
    {.name = "listen.http",
     .set = config_set_listen,
     .type = CONFIG_TYPE_LIST,
     .scope = CONFIG_SCOPE_LISTENER,
     .proto = LISTEN_HTTP,
     .repeatable = true,
     .summary = "HTTP addresses (autoconfig, /metrics, /healthz)"},
    {.name = "retention",
     .set = config_set_retention,
     .offset = OFF(retention),
     .type = CONFIG_TYPE_DURATION,
     .default_value = "never",
     .summary = "delete mail this long after first retrieval"},
    {.name = "retention_unread",
     .set = config_set_retention,
     .offset = OFF(retention_unread),
     .type = CONFIG_TYPE_DURATION,
     .default_value = "never",
     .summary = "delete unread mail this long after delivery"},
    {.name = "retention.",
     .set = config_set_domain_retention,
     .type = CONFIG_TYPE_DURATION,
     .scope = CONFIG_SCOPE_DOMAIN,
     .prefix = true,
     .repeatable = true,
     .summary = "retention for one domain"},
    {.name = "retention_unread.",
     .set = config_set_domain_retention,
     .type = CONFIG_TYPE_DURATION,
     .scope = CONFIG_SCOPE_DOMAIN,
     .prefix = true,
     .repeatable = true,
     .summary = "retention_unread for one domain"},
    {.name = "autoexpunge.",
     .set = config_set_autoexpunge,
     .type = CONFIG_TYPE_DURATION,
     .scope = CONFIG_SCOPE_FOLDER,
     .prefix = true,
     .repeatable = true,
     .summary = "remove mail from one IMAP folder this long after "
		"delivery"},
    {.name = "login_delay",
     .set = config_set_duration,
     .offset = OFF(login_delay),
     .max = MS(CONFIG_MAX_TIMEOUT),
     .default_value = "0",
     .summary = "least time between two POP3 logins (LOGIN-DELAY)"},
    {.name = "expire_interval",
     .set = config_set_duration,
     .offset = OFF(expire_interval),
     .min = MS(1),
     .max = MS(CONFIG_MAX_TIMEOUT),
     .default_value = "1h",
     .summary = "time between retention passes"},
    {.name = "relay_host",
     .set = config_set_relay_host,
     .type = CONFIG_TYPE_TEXT,
     .summary = "send all outbound mail to this smarthost"},
    {.name = "relay_auth",
     .set = config_set_path,
     .offset = OFF(relay_auth),
     .summary = "file with the smarthost's user and password"},
    {.name = "relay_auth_insecure",
     .set = config_set_bool,
     .offset = OFF(relay_auth_insecure),
     .default_value = "no",
     .summary = "AUTH to a loopback smarthost over unverified TLS"},
    {.name = "dns_servers",
     .set = config_set_dns_servers,
     .type = CONFIG_TYPE_LIST,
     .summary = "resolvers (default: /etc/resolv.conf)"},
    {.name = "transport.",
     .set = config_set_transport,
     .type = CONFIG_TYPE_TEXT,
     .scope = CONFIG_SCOPE_DOMAIN,
     .prefix = true,
     .repeatable = true,
     .summary = "fixed next hop for one destination domain"},
    {.name = "tls_policy",
     .set = config_set_tls_policy,
     .offset = OFF(tls_policy),
     .type = CONFIG_TYPE_CHOICE,
     .default_value = "may",
     .summary = "outbound TLS: may or verify"},
    {.name = "tls_policy.",
     .set = config_set_domain_tls,
     .type = CONFIG_TYPE_CHOICE,
     .scope = CONFIG_SCOPE_DOMAIN,
     .prefix = true,
     .repeatable = true,
     .summary = "tls_policy for one destination domain"},
    {.name = "tls_ca_file",
     .set = config_set_path,
     .offset = OFF(tls_ca_file),
     .summary = "CA bundle for verify (default: the system's)"},
    {.name = "queue_lifetime",
     .set = config_set_duration,
     .offset = OFF(queue_lifetime),
     .min = MS(1),
     .max = MS(CONFIG_MAX_QUEUE_TIME),
     .default_value = "5d",
     .summary = "time in the queue before a bounce"},
    {.name = "delay_warning_time",
     .set = config_set_duration,
     .offset = OFF(delay_warning_time),
     .max = MS(CONFIG_MAX_QUEUE_TIME),
     .default_value = "4h",
     .summary = "time in the queue before a delay notice (0: none)"},
    {.name = "queue_retry_min",
     .set = config_set_duration,
     .offset = OFF(queue_retry_min),
     .min = MS(1),
     .max = MS(CONFIG_MAX_QUEUE_TIME),
     .default_value = "5m",
     .summary = "first retry of a deferred message"},
    {.name = "queue_retry_max",
     .set = config_set_duration,
     .offset = OFF(queue_retry_max),
     .min = MS(1),
     .max = MS(CONFIG_MAX_QUEUE_TIME),
     .default_value = "1h",
     .summary = "longest time between retries"},
    /* Postfix's default_destination_concurrency_limit. */
    {.name = "max_connections_per_destination",
     .set = config_set_uint,
     .offset = OFF(max_connections_per_destination),
     .min = 1,
     .max = CONFIG_MAX_CONNECTIONS,
     .default_value = "20",
     .summary = "outbound connections at once to one domain"},
    {.name = "mx_port",
     .set = config_set_uint,
     .offset = OFF(mx_port),
     .min = 1,
     .max = 65535,
     .default_value = "25",
     .summary = "port for MX delivery (tests only)"},
    {.name = "dkim_selector",
     .set = config_set_selector,
     .type = CONFIG_TYPE_TEXT,
     .summary = "DKIM selector of the signing key"},
    {.name = "dkim_key",
     .set = config_set_dkim_key,
     .type = CONFIG_TYPE_PATH,
     .summary = "DKIM private key for every sender domain"},
    {.name = "dkim_key.",
     .set = config_set_dkim_key,
     .type = CONFIG_TYPE_PATH,
     .scope = CONFIG_SCOPE_DOMAIN,
     .prefix = true,
     .repeatable = true,
     .summary = "DKIM private key for one sender domain"},
    {.name = "aliases_file",
     .set = config_set_path,
     .offset = OFF(aliases_file),
     .summary = "aliases in Postfix virtual(5) form"},
    {.name = "postmaster_address",
     .set = config_set_address,
     .offset = OFF(postmaster_address),
     .type = CONFIG_TYPE_TEXT,
     .summary = "where postmaster@ goes (default: the first user)"},
    {.name = "abuse_address",
     .set = config_set_address,
     .offset = OFF(abuse_address),
     .type = CONFIG_TYPE_TEXT,
     .summary = "where abuse@ goes (default: nowhere)"},
    {.name = "recipient_delimiter",
     .set = config_set_delimiter,
     .offset = OFF(recipient_delimiter),
     .type = CONFIG_TYPE_CHOICE,
     .default_value = "+",
     .allow_empty = true,
     .summary = "starts a subaddress (RFC 5233): + - = _ or empty"},
    {.name = "alias_max_expansions",
     .set = config_set_uint,
     .offset = OFF(alias_max_expansions),
     .min = 1,
     .max = ALIAS_MAX_EXPANSIONS_LIMIT,
     .default_value = CONFIG_STR(ALIAS_MAX_EXPANSIONS_DEFAULT),
     .summary = "addresses one alias may expand to"},
    {.name = "srs_domain",
     .set = config_set_domain,
     .offset = OFF(srs_domain),
     .type = CONFIG_TYPE_TEXT,
     .summary = "domain of SRS addresses (default: the first of domains)"},
    /* Default DATA_DIR/srs.secret, set after loading (config.c). */
    {.name = "srs_secret_file",
     .set = config_set_path,
     .offset = OFF(srs_secret_file),
     .summary = "the SRS secrets, one a line"},
    {.name = "proxy_protocol.",
     .set = config_set_listener_proxy_protocol,
     .type = CONFIG_TYPE_BOOL,
     .scope = CONFIG_SCOPE_LISTENER,
     .prefix = true,
     .repeatable = true,
     .listener_suffix = true,
     .summary = "connections to one listener start with a PROXY header"},
    {.name = "proxy_trusted",
     .set = config_set_proxy_trusted,
     .type = CONFIG_TYPE_LIST,
     .summary = "networks PROXY headers may come from"},
    {.name = "proxy_protocol_timeout",
     .set = config_set_duration,
     .offset = OFF(proxy_protocol_timeout),
     .min = MS(1),
     .max = MS(CONFIG_MAX_PROXY_TIMEOUT),
     .default_value = CONFIG_STR(CONFIG_DEFAULT_PROXY_TIMEOUT) "s",
     .summary = "time a PROXY header may take to arrive"},
};

const size_t config_key_count = sizeof(config_keys) / sizeof(config_keys[0]);
_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) <= CONFIG_KEY_SLOTS,
	       "raise CONFIG_KEY_SLOTS");

/* A Unix account name: what useradd accepts by default. */
static bool config_valid_account(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > CONFIG_MAX_ACCOUNT_NAME || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return false;
	}
	return true;
}

#define FIELD(p, k, type) ((type *)((char *)(p)->cfg + (k)->offset))

static int config_set_hostname(struct config_parser *p,
			       const struct config_key *k, char *value)
{
	char quoted[CONFIG_MAX_HOSTNAME + 64];
	char **field = FIELD(p, k, char *);

	if (!config_valid_hostname(value, CONFIG_MAX_HOSTNAME)) {
		config_error(p, p->line,
			     "%s: invalid host name '%s' (letters, digits, "
			     "'-' and '.', at most %d bytes)",
			     k->name,
			     config_quote(quoted, sizeof(quoted), value),
			     CONFIG_MAX_HOSTNAME);
		return -1;
	}
	free(*field);
	*field = xstrdup(value);
	return 0;
}

static int config_set_domains(struct config_parser *p,
			      const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	char quoted[MAILBOX_MAX_DOMAIN + 64];
	char *word;
	int rc = 0;

	while ((word = config_next_word(&value)) != NULL) {
		ascii_lowercase(word);
		if (!config_valid_hostname(word, MAILBOX_MAX_DOMAIN)) {
			config_error(p, p->line,
				     "%s: invalid domain '%s' (letters, "
				     "digits, '-' and '.', at most %d bytes)",
				     k->name,
				     config_quote(quoted, sizeof(quoted), word),
				     MAILBOX_MAX_DOMAIN);
			rc = -1;
			continue;
		}
		if (config_is_local_domain(cfg, word)) {
			config_error(p, p->line, "%s: '%s' listed twice",
				     k->name, word);
			rc = -1;
			continue;
		}
		cfg->domains = xreallocarray(
		    cfg->domains, cfg->domain_count + 2, sizeof(*cfg->domains));
		cfg->domains[cfg->domain_count++] = xstrdup(word);
		cfg->domains[cfg->domain_count] = NULL;
	}
	return rc;
}

static int config_set_domain(struct config_parser *p,
			     const struct config_key *k, char *value)
{
	char quoted[MAILBOX_MAX_DOMAIN + 64];
	char **field = FIELD(p, k, char *);

	ascii_lowercase(value);
	if (!config_valid_hostname(value, MAILBOX_MAX_DOMAIN)) {
		config_error(p, p->line,
			     "%s: invalid domain '%s' (one domain: letters, "
			     "digits, '-' and '.', at most %d bytes)",
			     k->name,
			     config_quote(quoted, sizeof(quoted), value),
			     MAILBOX_MAX_DOMAIN);
		return -1;
	}
	free(*field);
	*field = xstrdup(value);
	return 0;
}

/* Stores value in *field (freeing what was there), a relative path
 * resolved against the config file's folder. */
int config_store_path(struct config_parser *p, const char *key,
		      const char *value, char **field)
{
	if (strlen(value) >= PATH_MAX) {
		config_error(p, p->line, "%s: path longer than %d bytes", key,
			     PATH_MAX - 1);
		return -1;
	}
	free(*field);
	if (value[0] == '/' || p->dir == NULL)
		*field = xstrdup(value);
	else
		*field = config_path_join(p->dir, value);
	return 0;
}

static int config_set_path(struct config_parser *p, const struct config_key *k,
			   char *value)
{
	return config_store_path(p, k->name, value, FIELD(p, k, char *));
}

static int config_set_account(struct config_parser *p,
			      const struct config_key *k, char *value)
{
	char quoted[128];
	char **field = FIELD(p, k, char *);

	if (!config_valid_account(value)) {
		config_error(p, p->line,
			     "%s: invalid account name '%s' (letters, digits, "
			     "'.', '_' and '-', at most %d bytes)",
			     k->name,
			     config_quote(quoted, sizeof(quoted), value),
			     CONFIG_MAX_ACCOUNT_NAME);
		return -1;
	}
	if (strcmp(value, "root") == 0) {
		config_error(p, p->line,
			     "%s: must not be root (workers parse network "
			     "input and run as this account)",
			     k->name);
		return -1;
	}
	free(*field);
	*field = xstrdup(value);
	return 0;
}

int config_set_bool(struct config_parser *p, const struct config_key *k,
		    char *value)
{
	bool *field = FIELD(p, k, bool);
	char quoted[128];

	if (strcmp(value, "yes") == 0)
		*field = true;
	else if (strcmp(value, "no") == 0)
		*field = false;
	else {
		config_error(p, p->line, "%s: '%s' is not yes or no", k->name,
			     config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	return 0;
}

/* A row without bounds takes any unsigned value. */
static void config_uint_bounds(const struct config_key *k, uint64_t *min_r,
			       uint64_t *max_r)
{
	*min_r = k->min;
	*max_r = k->min == 0 && k->max == 0 ? UINT_MAX : k->max;
}

static int config_set_uint(struct config_parser *p, const struct config_key *k,
			   char *value)
{
	unsigned *field = FIELD(p, k, unsigned);
	const char *s = value;
	char quoted[128];
	uint64_t v, min, max;

	config_uint_bounds(k, &min, &max);
	if (parse_uint64(&s, UINT64_MAX, &v) < 0 || parse_end(&s) < 0) {
		config_error(p, p->line, "%s: '%s' is not a number", k->name,
			     config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	if (v < min || v > max) {
		config_error(p, p->line,
			     "%s: %s is out of range (%llu to %llu)", k->name,
			     config_quote(quoted, sizeof(quoted), value),
			     (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*field = (unsigned)v;
	return 0;
}

/* "auto" is one worker per core, stored as 0 (which is accepted too). */
static int config_set_workers(struct config_parser *p,
			      const struct config_key *k, char *value)
{
	if (strcmp(value, "auto") == 0) {
		*FIELD(p, k, unsigned) = 0;
		return 0;
	}
	return config_set_uint(p, k, value);
}

/* A number with an optional unit ms, s, m, h, d (none: seconds), in ms.
 * Returns -1 on syntax error, -2 on overflow. */
static int config_parse_duration(const char *s, uint64_t *ms_r)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
	    {"", 1000},	  {"ms", 1},	  {"s", 1000},
	    {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	uint64_t v;

	if (parse_uint64(&s, UINT64_MAX, &v) < 0) {
		/* Digits that overflow are "too large", not "not a number". */
		return *s >= '0' && *s <= '9' ? -2 : -1;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].unit) != 0)
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return -2;
		*ms_r = v * units[i].ms;
		return 0;
	}
	return -1;
}

/* A row without bounds takes 0 to CONFIG_MAX_TIMEOUT. */
static void config_duration_bounds(const struct config_key *k, uint64_t *min_r,
				   uint64_t *max_r)
{
	*min_r = k->min;
	*max_r =
	    k->min == 0 && k->max == 0 ? CONFIG_MAX_TIMEOUT * 1000ull : k->max;
}

static int config_set_duration(struct config_parser *p,
			       const struct config_key *k, char *value)
{
	unsigned *field = FIELD(p, k, unsigned);
	char quoted[128];
	uint64_t ms, min, max;
	int rc;

	config_duration_bounds(k, &min, &max);
	config_quote(quoted, sizeof(quoted), value);
	rc = config_parse_duration(value, &ms);
	if (rc == -1) {
		config_error(p, p->line,
			     "%s: '%s' is not a duration (a number with unit "
			     "ms, s, m, h or d, as 500ms or 10m)",
			     k->name, quoted);
		return -1;
	}
	if (rc == -2 || ms > max) {
		config_error(p, p->line,
			     "%s: '%s' is too large (at most %llus)", k->name,
			     quoted, (unsigned long long)(max / 1000));
		return -1;
	}
	if (ms < min) {
		if (k->min_why != NULL)
			config_error(p, p->line, "%s: '%s' is too small: %s",
				     k->name, quoted, k->min_why);
		else
			config_error(p, p->line,
				     "%s: '%s' is too small (at least %llums)",
				     k->name, quoted, (unsigned long long)min);
		return -1;
	}
	if (!k->store_ms && ms % 1000 != 0) {
		config_error(p, p->line,
			     "%s: '%s' must be a whole number of seconds",
			     k->name, quoted);
		return -1;
	}
	*field = (unsigned)(k->store_ms ? ms : ms / 1000);
	return 0;
}

static int config_set_log_level(struct config_parser *p,
				const struct config_key *k, char *value)
{
	bool *field = FIELD(p, k, bool);
	char quoted[128];

	if (strcmp(value, "info") == 0)
		*field = false;
	else if (strcmp(value, "debug") == 0)
		*field = true;
	else {
		config_error(p, p->line, "%s: '%s' is not info or debug",
			     k->name,
			     config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	return 0;
}

/* "never", or a duration in whole seconds (0 allowed: EXPIRE 0). */
static int config_parse_retention(struct config_parser *p, const char *key,
				  const char *value, int64_t *secs_r)
{
	char quoted[128];
	uint64_t ms;

	if (strcmp(value, "never") == 0) {
		*secs_r = CONFIG_NEVER;
		return 0;
	}
	if (config_parse_duration(value, &ms) < 0 || ms % 1000 != 0 ||
	    ms / 1000 > CONFIG_MAX_RETENTION) {
		config_error(p, p->line,
			     "%s: '%s' is not never or a whole number of "
			     "seconds, minutes, hours or days (as 30d), at "
			     "most %ud",
			     key, config_quote(quoted, sizeof(quoted), value),
			     CONFIG_MAX_RETENTION / 86400);
		return -1;
	}
	*secs_r = (int64_t)(ms / 1000);
	return 0;
}

static int config_set_retention(struct config_parser *p,
				const struct config_key *k, char *value)
{
	return config_parse_retention(p, k->name, value, FIELD(p, k, int64_t));
}

static int config_set_domain_retention(struct config_parser *p,
				       const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	struct config_domain_retention *d = NULL;
	bool unread = strncmp(k->name, "retention_unread.", 17) == 0;
	int64_t secs, *field;

	if (config_parse_retention(p, k->name, value, &secs) < 0)
		return -1;
	for (size_t i = 0; i < cfg->domain_retention_count; i++) {
		if (strcmp(cfg->domain_retention[i].domain, p->suffix) == 0)
			d = &cfg->domain_retention[i];
	}
	if (d == NULL) {
		cfg->domain_retention = xreallocarray(
		    cfg->domain_retention, cfg->domain_retention_count + 1,
		    sizeof(*cfg->domain_retention));
		d = &cfg->domain_retention[cfg->domain_retention_count++];
		d->domain = xstrdup(p->suffix);
		d->retention = CONFIG_UNSET;
		d->retention_unread = CONFIG_UNSET;
	}
	field = unread ? &d->retention_unread : &d->retention;
	if (*field != CONFIG_UNSET) {
		config_error(p, p->line, "%s%s: set twice", k->name, p->suffix);
		return -1;
	}
	*field = secs;
	return 0;
}

static int config_set_autoexpunge(struct config_parser *p,
				  const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	int64_t secs;

	if (config_parse_retention(p, k->name, value, &secs) < 0)
		return -1;
	for (size_t i = 0; i < cfg->autoexpunge_count; i++) {
		if (strcmp(cfg->autoexpunge[i].folder, p->suffix) == 0) {
			config_error(p, p->line, "%s%s: set twice", k->name,
				     p->suffix);
			return -1;
		}
	}
	cfg->autoexpunge =
	    xreallocarray(cfg->autoexpunge, cfg->autoexpunge_count + 1,
			  sizeof(*cfg->autoexpunge));
	cfg->autoexpunge[cfg->autoexpunge_count].folder = xstrdup(p->suffix);
	cfg->autoexpunge[cfg->autoexpunge_count++].after = secs;
	return 0;
}

static int config_parse_route(struct config_parser *p, const char *key,
			      const char *value, struct config_route *r)
{
	char host[CONFIG_MAX_HOSTNAME + 1], port[16];

	if (config_split_hostport(p, key, value, "25", host, sizeof(host), port,
				  sizeof(port)) < 0)
		return -1;
	r->host = xstrdup(host);
	r->port = xstrdup(port);
	r->line = p->line;
	return 0;
}

static int config_set_relay_host(struct config_parser *p,
				 const struct config_key *k, char *value)
{
	struct config_route r = {0};

	if (config_parse_route(p, k->name, value, &r) < 0)
		return -1;
	p->cfg->relay_host = xmalloc(sizeof(r));
	*p->cfg->relay_host = r;
	return 0;
}

static int config_set_transport(struct config_parser *p,
				const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	struct config_route r = {0};
	char key[CONFIG_MAX_HOSTNAME + 32];

	snprintf(key, sizeof(key), "%s%s", k->name, p->suffix);
	if (config_transport(cfg, p->suffix) != NULL) {
		config_error(p, p->line, "%s: set twice", key);
		return -1;
	}
	if (config_parse_route(p, key, value, &r) < 0)
		return -1;
	r.domain = xstrdup(p->suffix);
	cfg->transports =
	    xreallocarray(cfg->transports, cfg->transport_count + 1,
			  sizeof(*cfg->transports));
	cfg->transports[cfg->transport_count++] = r;
	return 0;
}

/* Numeric addresses only: the resolver must not need a resolver. */
static int config_set_dns_servers(struct config_parser *p,
				  const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	char host[CONFIG_MAX_HOSTNAME + 1], port[16], entry[96];
	struct in6_addr addr;
	char *word;
	int rc = 0;

	while ((word = config_next_word(&value)) != NULL) {
		if (config_split_hostport(p, k->name, word, "53", host,
					  sizeof(host), port,
					  sizeof(port)) < 0) {
			rc = -1;
			continue;
		}
		if (inet_pton(AF_INET, host, &addr) == 1)
			snprintf(entry, sizeof(entry), "%s:%s", host, port);
		else if (inet_pton(AF_INET6, host, &addr) == 1)
			snprintf(entry, sizeof(entry), "[%s]:%s", host, port);
		else {
			config_error(p, p->line,
				     "%s: '%s' is not a numeric address",
				     k->name, host);
			rc = -1;
			continue;
		}
		if (cfg->dns_server_count >= CONFIG_MAX_DNS_SERVERS) {
			config_error(p, p->line, "%s: more than %d servers",
				     k->name, CONFIG_MAX_DNS_SERVERS);
			return -1;
		}
		cfg->dns_servers =
		    xreallocarray(cfg->dns_servers, cfg->dns_server_count + 2,
				  sizeof(*cfg->dns_servers));
		cfg->dns_servers[cfg->dns_server_count++] = xstrdup(entry);
		cfg->dns_servers[cfg->dns_server_count] = NULL;
	}
	return rc;
}

static int config_parse_tls_policy(struct config_parser *p, const char *key,
				   const char *value, enum tls_policy *r)
{
	char quoted[128];

	if (strcmp(value, "may") == 0)
		*r = TLS_POLICY_MAY;
	else if (strcmp(value, "verify") == 0)
		*r = TLS_POLICY_VERIFY;
	else if (strcmp(value, "dane") == 0) {
		/* Refused rather than quietly run as "may": DANE needs
		 * DNSSEC-validated TLSA records, which the resolver does not
		 * fetch. */
		config_error(p, p->line,
			     "%s: 'dane' (RFC 7672) is not implemented; use "
			     "may or verify",
			     key);
		return -1;
	} else {
		config_error(p, p->line, "%s: '%s' is not one of may, verify",
			     key, config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	return 0;
}

static int config_set_tls_policy(struct config_parser *p,
				 const struct config_key *k, char *value)
{
	return config_parse_tls_policy(p, k->name, value,
				       FIELD(p, k, enum tls_policy));
}

static int config_set_domain_tls(struct config_parser *p,
				 const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	enum tls_policy policy = TLS_POLICY_MAY;
	char key[CONFIG_MAX_HOSTNAME + 32];

	snprintf(key, sizeof(key), "%s%s", k->name, p->suffix);
	for (size_t i = 0; i < cfg->domain_tls_count; i++) {
		if (strcmp(cfg->domain_tls[i].domain, p->suffix) == 0) {
			config_error(p, p->line, "%s: set twice", key);
			return -1;
		}
	}
	if (config_parse_tls_policy(p, key, value, &policy) < 0)
		return -1;
	cfg->domain_tls =
	    xreallocarray(cfg->domain_tls, cfg->domain_tls_count + 1,
			  sizeof(*cfg->domain_tls));
	cfg->domain_tls[cfg->domain_tls_count].domain = xstrdup(p->suffix);
	cfg->domain_tls[cfg->domain_tls_count++].policy = policy;
	return 0;
}

/* A DKIM selector is a DNS label sequence (RFC 6376 section 3.1). */
static int config_set_selector(struct config_parser *p,
			       const struct config_key *k, char *value)
{
	char quoted[128];

	if (!config_valid_hostname(value, 63)) {
		config_error(p, p->line,
			     "%s: '%s' is not a selector (letters, digits, "
			     "'-' and '.')",
			     k->name,
			     config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	free(p->cfg->dkim_selector);
	p->cfg->dkim_selector = xstrdup(value);
	return 0;
}

/* An address where role mail goes: "local@domain", lowercased. */
static int config_set_address(struct config_parser *p,
			      const struct config_key *k, char *value)
{
	char quoted[128];
	char **field = FIELD(p, k, char *);
	const char *at = strrchr(value, '@');
	bool printable = true;

	ascii_lowercase(value);
	for (const char *c = value; *c != '\0'; c++)
		printable &= *c > ' ' && *c < 0x7f;
	if (!printable || at == NULL || at == value ||
	    !config_valid_hostname(at + 1, MAILBOX_MAX_DOMAIN) ||
	    strlen(value) > SMTP_MAX_PATH - 2 ||
	    strpbrk(value, " \t\"<>,;:\\()[]") != NULL) {
		config_error(
		    p, p->line, "%s: '%s' is not an address (local@domain)",
		    k->name, config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	free(*field);
	*field = xstrdup(value);
	return 0;
}

static int config_set_userdb(struct config_parser *p,
			     const struct config_key *k, char *value)
{
	char quoted[128];

	if (strcmp(value, "file") == 0)
		p->cfg->userdb = USERDB_FILE;
	else if (strcmp(value, "pgsql") == 0)
		p->cfg->userdb = USERDB_PGSQL;
	else {
		config_error(p, p->line, "%s: '%s' is not file or pgsql",
			     k->name,
			     config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	return 0;
}

/* A string kept as written (a connection string, an SQL query). */
static int config_set_text(struct config_parser *p, const struct config_key *k,
			   char *value)
{
	char **field = FIELD(p, k, char *);

	free(*field);
	*field = xstrdup(value);
	return 0;
}

/* RFC 5233: one character that starts a subaddress, or none. */
static int config_set_delimiter(struct config_parser *p,
				const struct config_key *k, char *value)
{
	char quoted[64];
	char *field = FIELD(p, k, char);

	if (value[0] != '\0' &&
	    (value[1] != '\0' || strchr("+-=_", value[0]) == NULL)) {
		config_error(p, p->line,
			     "%s: '%s' is not one of + - = _ (or empty for "
			     "none)",
			     k->name,
			     config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	*field = value[0];
	return 0;
}

static int config_set_dkim_key(struct config_parser *p,
			       const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	const char *domain = p->suffix != NULL ? p->suffix : "*";
	struct config_dkim_key *key;

	for (size_t i = 0; i < cfg->dkim_key_count; i++) {
		if (strcmp(cfg->dkim_keys[i].domain, domain) == 0) {
			config_error(p, p->line, "%s%s: set twice", k->name,
				     p->suffix != NULL ? p->suffix : "");
			return -1;
		}
	}
	cfg->dkim_keys = xreallocarray(cfg->dkim_keys, cfg->dkim_key_count + 1,
				       sizeof(*cfg->dkim_keys));
	key = &cfg->dkim_keys[cfg->dkim_key_count];
	*key = (struct config_dkim_key){xstrdup(domain), NULL};
	if (config_store_path(p, k->name, value, &key->path) < 0) {
		free(key->domain);
		return -1;
	}
	cfg->dkim_key_count++;
	return 0;
}

/* The key named name, or the prefix key it begins with ("transport." for
 * "transport.example.org"); then *suffix_r is the rest. */
const struct config_key *config_find_key(const char *name,
					 const char **suffix_r)
{
	*suffix_r = NULL;
	for (size_t i = 0; i < config_key_count; i++) {
		if (!config_keys[i].prefix &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	}
	for (size_t i = 0; i < config_key_count; i++) {
		size_t len = strlen(config_keys[i].name);

		if (config_keys[i].prefix &&
		    strncmp(config_keys[i].name, name, len) == 0 &&
		    name[len] != '\0') {
			*suffix_r = name + len;
			return &config_keys[i];
		}
	}
	return NULL;
}

enum config_type config_key_type(const struct config_key *k)
{
	if (k->type != CONFIG_TYPE_AUTO)
		return k->type;
	if (k->set == config_set_uint)
		return CONFIG_TYPE_NUMBER;
	if (k->set == config_set_duration)
		return CONFIG_TYPE_DURATION;
	if (k->set == config_set_bool)
		return CONFIG_TYPE_BOOL;
	if (k->set == config_set_path)
		return CONFIG_TYPE_PATH;
	return CONFIG_TYPE_TEXT;
}

const char *config_type_name(enum config_type type)
{
	switch (type) {
	case CONFIG_TYPE_AUTO:
	case CONFIG_TYPE_TEXT:
		break;
	case CONFIG_TYPE_PATH:
		return "path";
	case CONFIG_TYPE_BOOL:
		return "boolean";
	case CONFIG_TYPE_NUMBER:
		return "number";
	case CONFIG_TYPE_DURATION:
		return "duration";
	case CONFIG_TYPE_CHOICE:
		return "choice";
	case CONFIG_TYPE_LIST:
		return "list";
	}
	return "text";
}

enum config_scope config_key_scope(const struct config_key *k)
{
	if (k->scope == CONFIG_SCOPE_GLOBAL && k->listener_suffix)
		return CONFIG_SCOPE_LISTENER;
	if (k->scope == CONFIG_SCOPE_GLOBAL && k->prefix)
		return CONFIG_SCOPE_DOMAIN;
	return k->scope;
}

const char *config_scope_name(enum config_scope scope)
{
	switch (scope) {
	case CONFIG_SCOPE_GLOBAL:
		break;
	case CONFIG_SCOPE_LISTENER:
		return "listener";
	case CONFIG_SCOPE_DOMAIN:
		return "domain";
	case CONFIG_SCOPE_FOLDER:
		return "folder";
	}
	return "global";
}

/* Each default goes through its key's setter, so a default is held to the
 * same bounds as a value in the file. */
int config_apply_defaults(struct config_parser *p)
{
	int errors = p->error_count;
	char value[256];

	for (size_t i = 0; i < config_key_count; i++) {
		const struct config_key *k = &config_keys[i];

		if (k->default_value == NULL || k->replaced_by != NULL)
			continue;
		/* Setters may edit the value (lowercasing): a copy. */
		if (strlen(k->default_value) >= sizeof(value)) {
			config_error(p, 0, "%s: default too long", k->name);
			continue;
		}
		snprintf(value, sizeof(value), "%s", k->default_value);
		p->suffix = NULL;
		(void)k->set(p, k, value);
	}
	return p->error_count - errors;
}
