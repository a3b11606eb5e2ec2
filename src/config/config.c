/*
 * The postd.conf parser: a small strict reader of "key = value" lines.
 * Each bad line is reported as "PATH:LINE: message" and parsing goes on,
 * so one run shows every mistake; the caller gets -1 at the end.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/log.h"
#include <libpq-fe.h>

#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"

#define CONFIG_DEFAULT_DATA_DIR "/var/lib/postd"
#define CONFIG_DEFAULT_USERS_FILE "/etc/postd/users"
#define CONFIG_DEFAULT_USER "postd"
#define CONFIG_DEFAULT_MAX_CONNECTIONS 10000
#define CONFIG_DEFAULT_MAX_CONNECTIONS_PER_PEER 100
#define CONFIG_DEFAULT_AUTH_FAILURE_DELAY_MS 1000
/* userdb = pgsql: the published schema's tables (doc/schema.sql). */
#define CONFIG_DEFAULT_PGSQL_USER_QUERY                                        \
	"SELECT password, retention, login_delay, extra FROM users "           \
	"WHERE username = $1 AND enabled"
#define CONFIG_DEFAULT_PGSQL_ALIAS_QUERY "SELECT address, targets FROM aliases"
#define CONFIG_DEFAULT_PGSQL_ITERATE_QUERY                                     \
	"SELECT username, password, retention, login_delay, extra FROM users " \
	"WHERE enabled"
#define CONFIG_DEFAULT_PGSQL_POOL_SIZE 2
#define CONFIG_MAX_PGSQL_POOL_SIZE 32
#define CONFIG_DEFAULT_PGSQL_QUERY_TIMEOUT_MS 5000
#define CONFIG_DEFAULT_USERDB_CACHE_TTL 60
#define CONFIG_DEFAULT_USERDB_NEGATIVE_CACHE_TTL 10
/* Postfix's default is 10 MB; attachments have grown since. */
#define CONFIG_DEFAULT_MAX_MESSAGE_SIZE (50u * 1024 * 1024)
#define CONFIG_EMBEDDED_NAME "embedded default"
#define CONFIG_KEY_SLOTS 96
#define CONFIG_DEFAULT_EXPIRE_INTERVAL 3600
#define CONFIG_DEFAULT_QUEUE_LIFETIME (5 * 86400)
#define CONFIG_DEFAULT_DELAY_WARNING (4 * 3600)
#define CONFIG_DEFAULT_RETRY_MIN 300
#define CONFIG_DEFAULT_RETRY_MAX 3600
/* Postfix's default_destination_concurrency_limit. */
#define CONFIG_DEFAULT_CONNECTIONS_PER_DESTINATION 20

struct config_parser;
struct config_key;

typedef int config_setter(struct config_parser *p, const struct config_key *k,
			  char *value);

/* One row per key: how to parse it and where it goes. */
struct config_key {
	const char *name;
	config_setter *set;
	size_t offset;		 /* into struct config */
	uint64_t min, max;	 /* integers: the value; durations: in ms */
	bool store_ms;		 /* durations: store ms instead of seconds */
	enum listen_proto proto; /* listen.* keys */
	bool repeatable;
	bool prefix; /* name ends in '.': "transport." matches transport.D */
	bool listener_suffix; /* prefix key for a listener, not a domain */
	bool allow_empty;     /* "key =" means "none" */
};

struct config_parser {
	const char *path; /* as given, for messages */
	char *dir;	  /* relative paths are resolved against it */
	FILE *errors;
	int error_count;
	int line;
	const char *suffix; /* the DOMAIN of a prefix key being set */
	struct config *cfg;
	/* per key: where it was first set, 0 if not */
	int first_line[CONFIG_KEY_SLOTS];
	unsigned listen_per_key[LISTEN_PROTO_COUNT];
};

static void config_set_defaults(struct config *cfg);
static void config_error(struct config_parser *p, int line, const char *fmt,
			 ...) __attribute__((format(printf, 3, 4)));
static const char *config_quote(char *dst, size_t size, const char *s);
static int config_read_line(FILE *in, char *line, size_t size, bool *too_long_r,
			    bool *nul_r);
static void config_parse_line(struct config_parser *p, char *line);
static const struct config_key *config_find_key(const char *name,
						const char **suffix_r);
static char *config_trim(char *s);
static char *config_next_word(char **cursor);
static bool config_valid_hostname(const char *s, size_t max);
static bool config_valid_account(const char *s);
static char *config_parser_dir(const char *path);
static char *config_path_join(const char *dir, const char *name);
static void config_add_listen(struct config *cfg, enum listen_proto proto,
			      const char *host, const char *port, int line);
static int config_parse_listen_addr(struct config_parser *p,
				    enum listen_proto proto, const char *word);
static int config_parse_duration(const char *s, uint64_t *ms_r);
static int config_parse_plaintext_auth(struct config_parser *p, const char *key,
				       const char *value,
				       enum plaintext_auth *r);
static int config_find_proto(const char *name, enum listen_proto *proto_r);
static bool config_proto_has_plaintext_login(enum listen_proto proto);
static bool config_has_listener(const struct config *cfg,
				enum listen_proto proto);
static char *config_default_hostname(void);
static bool config_is_loopback_host(const char *host);
static void config_check_conninfo(struct config_parser *p, const char *key,
				  const char *conninfo);
static void config_validate_pgsql(struct config_parser *p,
				  const struct config *cfg);

static config_setter config_set_hostname, config_set_domains, config_set_domain,
    config_set_path, config_set_account, config_set_listen,
    config_set_plaintext_auth, config_set_bool, config_set_uint,
    config_set_duration, config_set_log_level, config_set_retention,
    config_set_domain_retention, config_set_relay_host, config_set_transport,
    config_set_dns_servers, config_set_tls_policy, config_set_domain_tls,
    config_set_selector, config_set_dkim_key, config_set_address,
    config_set_delimiter, config_set_userdb, config_set_text;
static config_setter config_set_listener_plaintext_auth;
static config_setter config_set_listener_proxy_protocol,
    config_set_proxy_trusted;
static int config_parse_cidr(const char *word, struct config_cidr *out);
static bool config_cidr_match(const struct config_cidr *net, int family,
			      const uint8_t *addr);
static void config_validate_proxy(struct config_parser *p,
				  const struct config *cfg);

#define OFF(field) offsetof(struct config, field)

static const struct config_key config_keys[] = {
    {.name = "hostname", .set = config_set_hostname, .offset = OFF(hostname)},
    {.name = "domains", .set = config_set_domains},
    {.name = "data_dir", .set = config_set_path, .offset = OFF(data_dir)},
    {.name = "users_file", .set = config_set_path, .offset = OFF(users_file)},
    {.name = "tls_cert", .set = config_set_path, .offset = OFF(tls_cert)},
    {.name = "tls_key", .set = config_set_path, .offset = OFF(tls_key)},
    {.name = "user", .set = config_set_account, .offset = OFF(user)},
    {.name = "listen.pop3",
     .set = config_set_listen,
     .proto = LISTEN_POP3,
     .repeatable = true},
    {.name = "listen.pop3s",
     .set = config_set_listen,
     .proto = LISTEN_POP3S,
     .repeatable = true},
    {.name = "listen.smtp",
     .set = config_set_listen,
     .proto = LISTEN_SMTP,
     .repeatable = true},
    {.name = "listen.submission",
     .set = config_set_listen,
     .proto = LISTEN_SUBMISSION,
     .repeatable = true},
    {.name = "listen.submissions",
     .set = config_set_listen,
     .proto = LISTEN_SUBMISSIONS,
     .repeatable = true},
    {.name = "listen.imap",
     .set = config_set_listen,
     .proto = LISTEN_IMAP,
     .repeatable = true},
    {.name = "listen.imaps",
     .set = config_set_listen,
     .proto = LISTEN_IMAPS,
     .repeatable = true},
    {.name = "auth_default_domain",
     .set = config_set_domain,
     .offset = OFF(auth_default_domain)},
    {.name = "plaintext_auth",
     .set = config_set_plaintext_auth,
     .offset = OFF(plaintext_auth)},
    {.name = "plaintext_auth.",
     .set = config_set_listener_plaintext_auth,
     .prefix = true,
     .repeatable = true,
     .listener_suffix = true},
    {.name = "apop", .set = config_set_bool, .offset = OFF(apop)},
    {.name = "workers",
     .set = config_set_uint,
     .offset = OFF(workers),
     .max = CONFIG_MAX_WORKERS},
    {.name = "max_connections",
     .set = config_set_uint,
     .offset = OFF(max_connections),
     .min = 1,
     .max = CONFIG_MAX_CONNECTIONS},
    {.name = "max_connections_per_peer",
     .set = config_set_uint,
     .offset = OFF(max_connections_per_peer),
     .min = 1,
     .max = CONFIG_MAX_CONNECTIONS},
    {.name = "timeout_preauth",
     .set = config_set_duration,
     .offset = OFF(timeout_preauth),
     .min = 1000,
     .max = CONFIG_MAX_TIMEOUT * 1000ull},
    /* RFC 1939 section 3: at least 10 minutes once authenticated. */
    {.name = "timeout_idle",
     .set = config_set_duration,
     .offset = OFF(timeout_idle),
     .min = POP3_TIMEOUT_AUTHENTICATED_MIN * 1000ull,
     .max = CONFIG_MAX_TIMEOUT * 1000ull},
    /* RFC 5321 section 4.5.3.2.7 asks for at least 5 minutes; less is
     * allowed (under attack, in tests) and postd.conf(5) says so. */
    {.name = "timeout_smtp",
     .set = config_set_duration,
     .offset = OFF(timeout_smtp),
     .min = 1000,
     .max = CONFIG_MAX_TIMEOUT * 1000ull},
    {.name = "auth_failure_delay",
     .set = config_set_duration,
     .offset = OFF(auth_failure_delay_ms),
     .max = CONFIG_MAX_AUTH_FAILURE_DELAY_MS,
     .store_ms = true},
    {.name = "userdb", .set = config_set_userdb, .offset = OFF(userdb)},
    {.name = "pgsql_conninfo",
     .set = config_set_text,
     .offset = OFF(pgsql_conninfo)},
    {.name = "pgsql_conninfo_failover",
     .set = config_set_text,
     .offset = OFF(pgsql_conninfo_failover)},
    {.name = "pgsql_pool_size",
     .set = config_set_uint,
     .offset = OFF(pgsql_pool_size),
     .min = 1,
     .max = CONFIG_MAX_PGSQL_POOL_SIZE},
    {.name = "pgsql_query_timeout",
     .set = config_set_duration,
     .offset = OFF(pgsql_query_timeout_ms),
     .min = 10,
     .max = 600000,
     .store_ms = true},
    {.name = "pgsql_user_query",
     .set = config_set_text,
     .offset = OFF(pgsql_user_query)},
    {.name = "pgsql_alias_query",
     .set = config_set_text,
     .offset = OFF(pgsql_alias_query)},
    {.name = "pgsql_iterate_query",
     .set = config_set_text,
     .offset = OFF(pgsql_iterate_query)},
    {.name = "userdb_cache_ttl",
     .set = config_set_duration,
     .offset = OFF(userdb_cache_ttl),
     .max = 86400000},
    {.name = "userdb_negative_cache_ttl",
     .set = config_set_duration,
     .offset = OFF(userdb_negative_cache_ttl),
     .max = 86400000},
    {.name = "log_level",
     .set = config_set_log_level,
     .offset = OFF(log_debug)},
    {.name = "max_message_size",
     .set = config_set_uint,
     .offset = OFF(max_message_size),
     .min = 1024,
     .max = CONFIG_MAX_MESSAGE_SIZE},
    {.name = "max_recipients",
     .set = config_set_uint,
     .offset = OFF(max_recipients),
     .min = 1,
     .max = CONFIG_MAX_RECIPIENTS},
    {.name = "smtp_auth", .set = config_set_bool, .offset = OFF(smtp_auth)},
    {.name = "sender_login_match",
     .set = config_set_bool,
     .offset = OFF(sender_login_match)},
    {.name = "smtp_normalize_bare_lf",
     .set = config_set_bool,
     .offset = OFF(smtp_normalize_bare_lf)},
    {.name = "smtp_max_line_length",
     .set = config_set_uint,
     .offset = OFF(smtp_max_line_length),
     .min = SMTP_MAX_TEXT_LINE,
     .max = CONFIG_MAX_SMTP_LINE},
    {.name = "max_received_headers",
     .set = config_set_uint,
     .offset = OFF(max_received_headers),
     .min = 1,
     .max = CONFIG_MAX_RECEIVED},
    {.name = "listen.http",
     .set = config_set_listen,
     .proto = LISTEN_HTTP,
     .repeatable = true},
    {.name = "retention",
     .set = config_set_retention,
     .offset = OFF(retention)},
    {.name = "retention_unread",
     .set = config_set_retention,
     .offset = OFF(retention_unread)},
    {.name = "retention.",
     .set = config_set_domain_retention,
     .prefix = true,
     .repeatable = true},
    {.name = "retention_unread.",
     .set = config_set_domain_retention,
     .prefix = true,
     .repeatable = true},
    {.name = "login_delay",
     .set = config_set_duration,
     .offset = OFF(login_delay),
     .max = CONFIG_MAX_TIMEOUT * 1000ull},
    {.name = "expire_interval",
     .set = config_set_duration,
     .offset = OFF(expire_interval),
     .min = 1000,
     .max = CONFIG_MAX_TIMEOUT * 1000ull},
    {.name = "relay_host", .set = config_set_relay_host},
    {.name = "relay_auth", .set = config_set_path, .offset = OFF(relay_auth)},
    {.name = "relay_auth_insecure",
     .set = config_set_bool,
     .offset = OFF(relay_auth_insecure)},
    {.name = "dns_servers", .set = config_set_dns_servers},
    {.name = "transport.",
     .set = config_set_transport,
     .prefix = true,
     .repeatable = true},
    {.name = "tls_policy",
     .set = config_set_tls_policy,
     .offset = OFF(tls_policy)},
    {.name = "tls_policy.",
     .set = config_set_domain_tls,
     .prefix = true,
     .repeatable = true},
    {.name = "tls_ca_file", .set = config_set_path, .offset = OFF(tls_ca_file)},
    {.name = "queue_lifetime",
     .set = config_set_duration,
     .offset = OFF(queue_lifetime),
     .min = 1000,
     .max = CONFIG_MAX_QUEUE_TIME * 1000ull},
    {.name = "delay_warning_time",
     .set = config_set_duration,
     .offset = OFF(delay_warning_time),
     .max = CONFIG_MAX_QUEUE_TIME * 1000ull},
    {.name = "queue_retry_min",
     .set = config_set_duration,
     .offset = OFF(queue_retry_min),
     .min = 1000,
     .max = CONFIG_MAX_QUEUE_TIME * 1000ull},
    {.name = "queue_retry_max",
     .set = config_set_duration,
     .offset = OFF(queue_retry_max),
     .min = 1000,
     .max = CONFIG_MAX_QUEUE_TIME * 1000ull},
    {.name = "max_connections_per_destination",
     .set = config_set_uint,
     .offset = OFF(max_connections_per_destination),
     .min = 1,
     .max = CONFIG_MAX_CONNECTIONS},
    {.name = "mx_port",
     .set = config_set_uint,
     .offset = OFF(mx_port),
     .min = 1,
     .max = 65535},
    {.name = "dkim_selector", .set = config_set_selector},
    {.name = "dkim_key", .set = config_set_dkim_key},
    {.name = "dkim_key.",
     .set = config_set_dkim_key,
     .prefix = true,
     .repeatable = true},
    {.name = "aliases_file",
     .set = config_set_path,
     .offset = OFF(aliases_file)},
    {.name = "postmaster_address",
     .set = config_set_address,
     .offset = OFF(postmaster_address)},
    {.name = "abuse_address",
     .set = config_set_address,
     .offset = OFF(abuse_address)},
    {.name = "recipient_delimiter",
     .set = config_set_delimiter,
     .offset = OFF(recipient_delimiter),
     .allow_empty = true},
    {.name = "alias_max_expansions",
     .set = config_set_uint,
     .offset = OFF(alias_max_expansions),
     .min = 1,
     .max = ALIAS_MAX_EXPANSIONS_LIMIT},
    {.name = "srs_domain", .set = config_set_domain, .offset = OFF(srs_domain)},
    {.name = "srs_secret_file",
     .set = config_set_path,
     .offset = OFF(srs_secret_file)},
    {.name = "proxy_protocol.",
     .set = config_set_listener_proxy_protocol,
     .prefix = true,
     .repeatable = true,
     .listener_suffix = true},
    {.name = "proxy_trusted", .set = config_set_proxy_trusted},
    {.name = "proxy_protocol_timeout",
     .set = config_set_duration,
     .offset = OFF(proxy_protocol_timeout),
     .min = 1000,
     .max = CONFIG_MAX_PROXY_TIMEOUT * 1000ull},
};

#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))
_Static_assert(CONFIG_KEY_COUNT <= CONFIG_KEY_SLOTS, "raise CONFIG_KEY_SLOTS");

static const char *const config_proto_names[LISTEN_PROTO_COUNT] = {
    [LISTEN_POP3] = "pop3",
    [LISTEN_POP3S] = "pop3s",
    [LISTEN_SMTP] = "smtp",
    [LISTEN_SUBMISSION] = "submission",
    [LISTEN_SUBMISSIONS] = "submissions",
    [LISTEN_IMAP] = "imap",
    [LISTEN_IMAPS] = "imaps",
    [LISTEN_HTTP] = "http",
};

const char *config_proto_name(enum listen_proto proto)
{
	if ((unsigned)proto >= LISTEN_PROTO_COUNT)
		return "unknown";
	return config_proto_names[proto];
}

bool config_proto_implicit_tls(enum listen_proto proto)
{
	return proto == LISTEN_POP3S || proto == LISTEN_SUBMISSIONS ||
	       proto == LISTEN_IMAPS;
}

/* What a file gets for every key it does not set (postd.conf(5)). */
static void config_set_defaults(struct config *cfg)
{
	cfg->hostname = config_default_hostname();
	cfg->data_dir = xstrdup(CONFIG_DEFAULT_DATA_DIR);
	cfg->users_file = xstrdup(CONFIG_DEFAULT_USERS_FILE);
	cfg->user = xstrdup(CONFIG_DEFAULT_USER);
	cfg->domains = xcalloc(1, sizeof(*cfg->domains));
	cfg->plaintext_auth = PLAINTEXT_AUTH_LOOPBACK;
	for (size_t i = 0; i < LISTEN_PROTO_COUNT; i++)
		cfg->plaintext_auth_listener[i] = PLAINTEXT_AUTH_UNSET;
	cfg->apop = false;
	cfg->workers = 0;
	cfg->max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS;
	cfg->max_connections_per_peer = CONFIG_DEFAULT_MAX_CONNECTIONS_PER_PEER;
	cfg->timeout_preauth = TIMEOUT_PREAUTH_DEFAULT;
	cfg->timeout_idle = POP3_TIMEOUT_AUTHENTICATED_MIN;
	cfg->timeout_smtp = SMTP_TIMEOUT;
	cfg->auth_failure_delay_ms = CONFIG_DEFAULT_AUTH_FAILURE_DELAY_MS;
	cfg->userdb = USERDB_FILE;
	cfg->pgsql_pool_size = CONFIG_DEFAULT_PGSQL_POOL_SIZE;
	cfg->pgsql_query_timeout_ms = CONFIG_DEFAULT_PGSQL_QUERY_TIMEOUT_MS;
	cfg->pgsql_user_query = xstrdup(CONFIG_DEFAULT_PGSQL_USER_QUERY);
	cfg->pgsql_alias_query = xstrdup(CONFIG_DEFAULT_PGSQL_ALIAS_QUERY);
	cfg->pgsql_iterate_query = xstrdup(CONFIG_DEFAULT_PGSQL_ITERATE_QUERY);
	cfg->userdb_cache_ttl = CONFIG_DEFAULT_USERDB_CACHE_TTL;
	cfg->userdb_negative_cache_ttl =
	    CONFIG_DEFAULT_USERDB_NEGATIVE_CACHE_TTL;
	cfg->log_debug = false;
	cfg->max_message_size = CONFIG_DEFAULT_MAX_MESSAGE_SIZE;
	cfg->max_recipients = SMTP_MAX_RECIPIENTS_DEFAULT;
	cfg->smtp_auth = false;
	cfg->sender_login_match = true;
	cfg->smtp_normalize_bare_lf = false;
	cfg->smtp_max_line_length = SMTP_MAX_LINE_DEFAULT;
	cfg->max_received_headers = SMTP_MAX_RECEIVED_DEFAULT;
	cfg->retention = CONFIG_NEVER;
	cfg->retention_unread = CONFIG_NEVER;
	cfg->login_delay = 0;
	cfg->expire_interval = CONFIG_DEFAULT_EXPIRE_INTERVAL;
	cfg->dns_servers = xcalloc(1, sizeof(*cfg->dns_servers));
	cfg->tls_policy = TLS_POLICY_MAY;
	cfg->queue_lifetime = CONFIG_DEFAULT_QUEUE_LIFETIME;
	cfg->delay_warning_time = CONFIG_DEFAULT_DELAY_WARNING;
	cfg->queue_retry_min = CONFIG_DEFAULT_RETRY_MIN;
	cfg->queue_retry_max = CONFIG_DEFAULT_RETRY_MAX;
	cfg->max_connections_per_destination =
	    CONFIG_DEFAULT_CONNECTIONS_PER_DESTINATION;
	cfg->mx_port = 25;
	cfg->recipient_delimiter = '+';
	cfg->alias_max_expansions = ALIAS_MAX_EXPANSIONS_DEFAULT;
	cfg->proxy_protocol_timeout = CONFIG_DEFAULT_PROXY_TIMEOUT;
}

static char *config_default_hostname(void)
{
	char name[HOST_NAME_MAX + 1];

	if (gethostname(name, sizeof(name)) < 0 || name[0] == '\0')
		return xstrdup("localhost");
	name[HOST_NAME_MAX] = '\0';
	return xstrdup(name);
}

static void config_error(struct config_parser *p, int line, const char *fmt,
			 ...)
{
	va_list ap;

	p->error_count++;
	if (p->errors == NULL)
		return;
	if (line > 0)
		fprintf(p->errors, "%s:%d: ", p->path, line);
	else
		fprintf(p->errors, "%s: ", p->path);
	va_start(ap, fmt);
	vfprintf(p->errors, fmt, ap);
	va_end(ap);
	fputc('\n', p->errors);
}

/* Config text echoed in a message, with control bytes escaped. */
static const char *config_quote(char *dst, size_t size, const char *s)
{
	return log_escape(dst, size, s, strlen(s));
}

int config_load(const char *path, FILE *errors, struct config **cfg_r)
{
	struct config_parser p = {.path = path, .errors = errors};
	char *line = xmalloc(CONFIG_MAX_LINE + 1);
	bool too_long, nul;
	FILE *in;

	*cfg_r = NULL;
	in = fopen(path, "re");
	if (in == NULL) {
		config_error(&p, 0, "cannot open: %s", strerror(errno));
		free(line);
		return -1;
	}
	p.cfg = xcalloc(1, sizeof(*p.cfg));
	p.cfg->path = xstrdup(path);
	p.dir = config_parser_dir(path);
	config_set_defaults(p.cfg);

	while (config_read_line(in, line, CONFIG_MAX_LINE + 1, &too_long,
				&nul) == 0) {
		p.line++;
		if (too_long)
			config_error(&p, p.line,
				     "line too long (more than %d bytes)",
				     CONFIG_MAX_LINE);
		else if (nul)
			config_error(&p, p.line, "NUL byte in line");
		else
			config_parse_line(&p, line);
	}
	if (ferror(in))
		config_error(&p, 0, "read error: %s", strerror(errno));
	fclose(in);
	free(line);
	free(p.dir);

	if (p.first_line[config_find_key("domains", &p.suffix) - config_keys] ==
	    0)
		config_error(&p, 0, "domains is required");
	if (p.error_count > 0) {
		config_free(&p.cfg);
		return -1;
	}
	if (p.cfg->srs_secret_file == NULL)
		p.cfg->srs_secret_file =
		    config_path_join(p.cfg->data_dir, "srs.secret");
	*cfg_r = p.cfg;
	return 0;
}

/*
 * Reads one line without its LF into line (size bytes including the NUL).
 * A longer line is consumed to its end and flagged, so its tail never
 * becomes a line of its own. Returns -1 at end of input.
 */
static int config_read_line(FILE *in, char *line, size_t size, bool *too_long_r,
			    bool *nul_r)
{
	size_t len = 0;
	int c;

	*too_long_r = false;
	*nul_r = false;
	c = getc(in);
	if (c == EOF)
		return -1;
	for (; c != EOF && c != '\n'; c = getc(in)) {
		if (c == '\0')
			*nul_r = true;
		if (len + 1 >= size) {
			*too_long_r = true;
			continue;
		}
		line[len++] = (char)c;
	}
	line[len] = '\0';
	return 0;
}

static char *config_trim(char *s)
{
	size_t len;

	while (*s == ' ' || *s == '\t')
		s++;
	len = strlen(s);
	while (len > 0 &&
	       (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
		s[--len] = '\0';
	return s;
}

/* The key named name, or the prefix key it begins with ("transport." for
 * "transport.example.org"); then *suffix_r is the rest. */
static const struct config_key *config_find_key(const char *name,
						const char **suffix_r)
{
	*suffix_r = NULL;
	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (!config_keys[i].prefix &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	}
	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
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

static void config_parse_line(struct config_parser *p, char *line)
{
	const struct config_key *k;
	char *s = config_trim(line);
	char *eq, *key, *value;
	char quoted[128];
	size_t idx;

	if (*s == '\0' || *s == '#')
		return;
	eq = strchr(s, '=');
	if (eq == NULL) {
		config_error(p, p->line, "missing '=' (expected key = value)");
		return;
	}
	*eq = '\0';
	key = config_trim(s);
	value = eq + 1;
	/* " #" after the value starts a comment. */
	for (char *c = value; *c != '\0'; c++) {
		if (*c == '#' && c > value && (c[-1] == ' ' || c[-1] == '\t')) {
			*c = '\0';
			break;
		}
	}
	value = config_trim(value);
	if (*key == '\0') {
		config_error(p, p->line, "missing key before '='");
		return;
	}
	k = config_find_key(key, &p->suffix);
	if (k == NULL) {
		config_error(p, p->line, "unknown key '%s'",
			     config_quote(quoted, sizeof(quoted), key));
		return;
	}
	if (*value == '\0' && !k->allow_empty) {
		config_error(p, p->line, "%s: empty value", k->name);
		return;
	}
	idx = (size_t)(k - config_keys);
	if (p->first_line[idx] != 0 && !k->repeatable) {
		config_error(p, p->line,
			     "duplicate key '%s' (first set on line %d)",
			     k->name, p->first_line[idx]);
		return;
	}
	if (p->first_line[idx] == 0)
		p->first_line[idx] = p->line;
	if (p->suffix != NULL && !k->listener_suffix) {
		/* The DOMAIN of a prefix key: a domain name, lowercase. */
		char *domain = strchr(key, '.') + 1;

		ascii_lowercase(domain);
		if (!config_valid_hostname(domain, MAILBOX_MAX_DOMAIN)) {
			config_error(
			    p, p->line, "%s: '%s' is not a domain", key,
			    config_quote(quoted, sizeof(quoted), domain));
			return;
		}
		p->suffix = domain;
	}
	k->set(p, k, value);
}

/* Splits off the next space-separated word; NULL when none is left. */
static char *config_next_word(char **cursor)
{
	char *s = *cursor, *word;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return NULL;
	word = s;
	while (*s != '\0' && *s != ' ' && *s != '\t')
		s++;
	if (*s != '\0')
		*s++ = '\0';
	*cursor = s;
	return word;
}

/* Dot-separated labels of letters, digits and '-' (RFC 1123 section 2.1),
 * each 1..63 bytes, no leading or trailing '-'. */
static bool config_valid_hostname(const char *s, size_t max)
{
	size_t label = 0, len = strlen(s);

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		label++;
	}
	return true;
}

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

/* The directory that relative paths in the file are resolved against:
 * the file's own, made absolute so that daemonizing does not change it. */
static char *config_parser_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir, *real;

	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	real = realpath(dir, NULL);
	if (real == NULL)
		return dir;
	free(dir);
	dir = xstrdup(real);
	free(real);
	return dir;
}

static char *config_path_join(const char *dir, const char *name)
{
	size_t dlen = strlen(dir), nlen = strlen(name);
	bool slash = dlen > 0 && dir[dlen - 1] == '/';
	char *out;

	if (dlen > SIZE_MAX / 2 || nlen > SIZE_MAX / 2)
		fatal("path too long");
	out = xmalloc(dlen + nlen + 2);
	memcpy(out, dir, dlen);
	if (!slash)
		out[dlen++] = '/';
	memcpy(out + dlen, name, nlen + 1);
	return out;
}

/* Stores value in *field (freeing what was there), a relative path
 * resolved against the config file's folder. */
static int config_store_path(struct config_parser *p, const char *key,
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

static void config_add_listen(struct config *cfg, enum listen_proto proto,
			      const char *host, const char *port, int line)
{
	struct listen_addr *l;

	cfg->listen = xreallocarray(cfg->listen, cfg->listen_count + 1,
				    sizeof(*cfg->listen));
	l = &cfg->listen[cfg->listen_count++];
	l->proto = proto;
	l->host = xstrdup(host);
	l->port = xstrdup(port);
	l->line = line;
}

/*
 * Splits "HOST:PORT", "[IPV6]:PORT" or "*:PORT" (and "HOST" alone when
 * default_port is not NULL) into host and port, checking both. key names
 * the config key in messages.
 */
static int config_split_hostport(struct config_parser *p, const char *key,
				 const char *word, const char *default_port,
				 char *host, size_t host_size, char *port,
				 size_t port_size)
{
	char quoted[CONFIG_MAX_LINE];
	const char *colon, *pp;
	struct in6_addr in6;
	uint32_t portnum;
	size_t hlen;

	config_quote(quoted, sizeof(quoted), word);
	/* A bare IPv6 address where the port may be left out. */
	if (default_port != NULL && strlen(word) < host_size &&
	    inet_pton(AF_INET6, word, &in6) == 1) {
		snprintf(host, host_size, "%s", word);
		snprintf(port, port_size, "%s", default_port);
		return 0;
	}
	if (word[0] == '[') {
		const char *close = strchr(word, ']');

		if (close == NULL ||
		    (close[1] != ':' &&
		     !(close[1] == '\0' && default_port != NULL))) {
			config_error(p, p->line,
				     "%s: '%s': expected [IPV6]:PORT", key,
				     quoted);
			return -1;
		}
		hlen = (size_t)(close - word - 1);
		colon = close[1] == ':' ? close + 1 : NULL;
		if (hlen >= host_size) {
			config_error(p, p->line, "%s: '%s': address too long",
				     key, quoted);
			return -1;
		}
		memcpy(host, word + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &in6) != 1) {
			config_error(p, p->line,
				     "%s: '%s': invalid IPv6 address", key,
				     quoted);
			return -1;
		}
	} else {
		colon = strrchr(word, ':');
		if (colon == NULL && default_port == NULL) {
			config_error(p, p->line, "%s: '%s': missing ':PORT'",
				     key, quoted);
			return -1;
		}
		hlen = colon != NULL ? (size_t)(colon - word) : strlen(word);
		if (memchr(word, ':', hlen) != NULL) {
			config_error(p, p->line,
				     "%s: '%s': write IPv6 addresses "
				     "in brackets, as [::1]:110",
				     key, quoted);
			return -1;
		}
		if (hlen >= host_size) {
			config_error(p, p->line, "%s: '%s': host name too long",
				     key, quoted);
			return -1;
		}
		memcpy(host, word, hlen);
		host[hlen] = '\0';
		if ((strcmp(host, "*") != 0 || default_port != NULL) &&
		    !config_valid_hostname(host, CONFIG_MAX_HOSTNAME)) {
			config_error(p, p->line,
				     "%s: '%s': invalid address or host name",
				     key, quoted);
			return -1;
		}
	}
	if (colon == NULL) {
		snprintf(port, port_size, "%s", default_port);
		return 0;
	}
	pp = colon + 1;
	if (parse_uint32(&pp, 65535, &portnum) < 0 || parse_end(&pp) < 0 ||
	    portnum == 0) {
		config_error(p, p->line,
			     "%s: '%s': port must be a number from 1 to 65535",
			     key, quoted);
		return -1;
	}
	snprintf(port, port_size, "%u", (unsigned)portnum);
	return 0;
}

static int config_parse_listen_addr(struct config_parser *p,
				    enum listen_proto proto, const char *word)
{
	const char *name = config_proto_name(proto);
	char host[CONFIG_MAX_HOSTNAME + 1], quoted[CONFIG_MAX_LINE];
	char key[64], port[16];

	snprintf(key, sizeof(key), "listen.%s", name);
	if (config_split_hostport(p, key, word, NULL, host, sizeof(host), port,
				  sizeof(port)) < 0)
		return -1;
	config_quote(quoted, sizeof(quoted), word);
	for (size_t i = 0; i < p->cfg->listen_count; i++) {
		const struct listen_addr *l = &p->cfg->listen[i];

		if (strcmp(l->host, host) == 0 && strcmp(l->port, port) == 0) {
			config_error(p, p->line,
				     "listen.%s: '%s' is already used by "
				     "listen.%s on line %d",
				     name, quoted, config_proto_name(l->proto),
				     l->line);
			return -1;
		}
	}
	if (p->listen_per_key[proto] >= CONFIG_MAX_LISTEN_ADDRESSES) {
		config_error(p, p->line, "listen.%s: more than %d addresses",
			     name, CONFIG_MAX_LISTEN_ADDRESSES);
		return -1;
	}
	p->listen_per_key[proto]++;
	config_add_listen(p->cfg, proto, host, port, p->line);
	return 0;
}

static int config_set_listen(struct config_parser *p,
			     const struct config_key *k, char *value)
{
	char *word;
	int rc = 0;

	while ((word = config_next_word(&value)) != NULL) {
		if (config_parse_listen_addr(p, k->proto, word) < 0)
			rc = -1;
	}
	return rc;
}

static int config_parse_plaintext_auth(struct config_parser *p, const char *key,
				       const char *value,
				       enum plaintext_auth *r)
{
	char quoted[128];

	if (strcmp(value, "no") == 0)
		*r = PLAINTEXT_AUTH_NO;
	else if (strcmp(value, "loopback") == 0)
		*r = PLAINTEXT_AUTH_LOOPBACK;
	else if (strcmp(value, "yes") == 0)
		*r = PLAINTEXT_AUTH_YES;
	else {
		config_error(p, p->line,
			     "%s: '%s' is not one of no, loopback, yes", key,
			     config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	return 0;
}

static int config_set_plaintext_auth(struct config_parser *p,
				     const struct config_key *k, char *value)
{
	return config_parse_plaintext_auth(p, k->name, value,
					   FIELD(p, k, enum plaintext_auth));
}

static int config_find_proto(const char *name, enum listen_proto *proto_r)
{
	for (int i = 0; i < LISTEN_PROTO_COUNT; i++) {
		if (strcmp(config_proto_names[i], name) == 0) {
			*proto_r = (enum listen_proto)i;
			return 0;
		}
	}
	return -1;
}

/* Listeners where a password could cross the network before TLS: the
 * implicit-TLS ones never carry one in clear, and http takes no login. */
static bool config_proto_has_plaintext_login(enum listen_proto proto)
{
	return proto != LISTEN_HTTP && !config_proto_implicit_tls(proto);
}

static bool config_has_listener(const struct config *cfg,
				enum listen_proto proto)
{
	for (size_t i = 0; i < cfg->listen_count; i++) {
		if (cfg->listen[i].proto == proto)
			return true;
	}
	return false;
}

/*
 * plaintext_auth.NAME: one listener's own policy, which wins over the
 * global key (as Postfix's per-service and Dovecot's per-protocol
 * overrides do). On a listener where it could never apply it is an
 * error rather than a silent no-op, so that a typo or a misunderstanding
 * ("plaintext_auth.submissions = no" to protect port 587) is caught.
 */
static int config_set_listener_plaintext_auth(struct config_parser *p,
					      const struct config_key *k,
					      char *value)
{
	enum plaintext_auth *field;
	enum listen_proto proto;
	char key[160], quoted[128];

	config_quote(quoted, sizeof(quoted), p->suffix);
	snprintf(key, sizeof(key), "%s%s", k->name, quoted);
	if (config_find_proto(p->suffix, &proto) < 0) {
		config_error(p, p->line,
			     "%s: '%s' is not a listener; plaintext_auth.NAME "
			     "is for pop3, smtp, submission and imap",
			     key, quoted);
		return -1;
	}
	if (!config_proto_has_plaintext_login(proto)) {
		config_error(p, p->line,
			     "%s: %s %s, so plaintext_auth does not apply; "
			     "plaintext_auth.NAME is for pop3, smtp, "
			     "submission and imap",
			     key, quoted,
			     proto == LISTEN_HTTP
				 ? "takes no logins"
				 : "is TLS from the first byte");
		return -1;
	}
	field = &p->cfg->plaintext_auth_listener[proto];
	if (*field != PLAINTEXT_AUTH_UNSET) {
		config_error(p, p->line, "%s: set twice", key);
		return -1;
	}
	return config_parse_plaintext_auth(p, key, value, field);
}

/*
 * proxy_protocol.NAME = yes: connections to that listener start with a
 * PROXY header (from a load balancer). http takes it through a filter in
 * front of evhttp (http_server.c); imap has no PROXY support yet.
 */
static int config_set_listener_proxy_protocol(struct config_parser *p,
					      const struct config_key *k,
					      char *value)
{
	struct config_key field_key = *k;
	enum listen_proto proto;
	char key[160], quoted[128];

	config_quote(quoted, sizeof(quoted), p->suffix);
	snprintf(key, sizeof(key), "%s%s", k->name, quoted);
	if (config_find_proto(p->suffix, &proto) < 0) {
		config_error(p, p->line, "%s: '%s' is not a listener", key,
			     quoted);
		return -1;
	}
	if (proto == LISTEN_IMAP || proto == LISTEN_IMAPS) {
		config_error(p, p->line,
			     "%s: not supported on %s (pop3, pop3s, smtp, "
			     "submission, submissions and http only)",
			     key, quoted);
		return -1;
	}
	field_key.name = key;
	field_key.offset = OFF(proxy_protocol) + (size_t)proto * sizeof(bool);
	return config_set_bool(p, &field_key, value);
}

/* "127.0.0.1, 10.0.0.0/8, 2001:db8::/32": where PROXY headers may come
 * from. A bare address is a /32 or /128. */
static int config_set_proxy_trusted(struct config_parser *p,
				    const struct config_key *k, char *value)
{
	struct config *cfg = p->cfg;
	char *word, quoted[128];
	int rc = 0;

	for (char *c = value; *c != '\0'; c++) {
		if (*c == ',')
			*c = ' ';
	}
	while ((word = config_next_word(&value)) != NULL) {
		struct config_cidr net;

		if (config_parse_cidr(word, &net) < 0) {
			config_error(
			    p, p->line,
			    "%s: '%s' is not a network (ADDRESS or "
			    "ADDRESS/BITS)",
			    k->name,
			    config_quote(quoted, sizeof(quoted), word));
			rc = -1;
			continue;
		}
		if (cfg->proxy_trusted_count >= CONFIG_MAX_PROXY_TRUSTED) {
			config_error(p, p->line, "%s: more than %d networks",
				     k->name, CONFIG_MAX_PROXY_TRUSTED);
			return -1;
		}
		cfg->proxy_trusted = xreallocarray(cfg->proxy_trusted,
						   cfg->proxy_trusted_count + 1,
						   sizeof(*cfg->proxy_trusted));
		cfg->proxy_trusted[cfg->proxy_trusted_count++] = net;
	}
	return rc;
}

static int config_parse_cidr(const char *word, struct config_cidr *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(word, '/');
	size_t addr_len = slash != NULL ? (size_t)(slash - word) : strlen(word);
	unsigned max, bits = 0;

	if (addr_len == 0 || addr_len >= sizeof(addr))
		return -1;
	memcpy(addr, word, addr_len);
	addr[addr_len] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, addr, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, out->addr) == 1)
		out->family = AF_INET6;
	else
		return -1;
	max = out->family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		out->prefix = max;
		return 0;
	}
	if (slash[1] == '\0' || strlen(slash + 1) > 3)
		return -1;
	for (const char *d = slash + 1; *d != '\0'; d++) {
		if (*d < '0' || *d > '9')
			return -1;
		bits = bits * 10 + (unsigned)(*d - '0');
	}
	if (bits > max)
		return -1;
	out->prefix = bits;
	return 0;
}

static bool config_cidr_match(const struct config_cidr *net, int family,
			      const uint8_t *addr)
{
	unsigned whole = net->prefix / 8, rest = net->prefix % 8;

	if (net->family != family)
		return false;
	if (memcmp(net->addr, addr, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((net->addr[whole] ^ addr[whole]) &
		(uint8_t)(0xff << (8 - rest))) == 0;
}

bool config_proxy_trusted(const struct config *cfg, const struct sockaddr *sa)
{
	const uint8_t *addr;
	int family = sa->sa_family;

	if (family == AF_INET) {
		addr = (const uint8_t *)&(
			   (const struct sockaddr_in *)(const void *)sa)
			   ->sin_addr;
	} else if (family == AF_INET6) {
		addr = ((const struct sockaddr_in6 *)(const void *)sa)
			   ->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr)) {
			family = AF_INET;
			addr += 12;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < cfg->proxy_trusted_count; i++) {
		if (config_cidr_match(&cfg->proxy_trusted[i], family, addr))
			return true;
	}
	return false;
}

static int config_set_bool(struct config_parser *p, const struct config_key *k,
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

static int config_set_uint(struct config_parser *p, const struct config_key *k,
			   char *value)
{
	unsigned *field = FIELD(p, k, unsigned);
	const char *s = value;
	char quoted[128];
	uint64_t v;

	if (parse_uint64(&s, UINT64_MAX, &v) < 0 || parse_end(&s) < 0) {
		config_error(p, p->line, "%s: '%s' is not a number", k->name,
			     config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	if (v < k->min || v > k->max) {
		config_error(
		    p, p->line, "%s: %s is out of range (%llu to %llu)",
		    k->name, config_quote(quoted, sizeof(quoted), value),
		    (unsigned long long)k->min, (unsigned long long)k->max);
		return -1;
	}
	*field = (unsigned)v;
	return 0;
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

static int config_set_duration(struct config_parser *p,
			       const struct config_key *k, char *value)
{
	unsigned *field = FIELD(p, k, unsigned);
	char quoted[128];
	uint64_t ms;
	int rc;

	config_quote(quoted, sizeof(quoted), value);
	rc = config_parse_duration(value, &ms);
	if (rc == -1) {
		config_error(p, p->line,
			     "%s: '%s' is not a duration (a number with unit "
			     "ms, s, m, h or d, as 500ms or 10m)",
			     k->name, quoted);
		return -1;
	}
	if (rc == -2 || ms > k->max) {
		config_error(p, p->line,
			     "%s: '%s' is too large (at most %llus)", k->name,
			     quoted, (unsigned long long)(k->max / 1000));
		return -1;
	}
	if (ms < k->min) {
		if (k->offset == offsetof(struct config, timeout_idle))
			config_error(p, p->line,
				     "%s: '%s' is too small: RFC 1939 section "
				     "3 requires at least 10 minutes (10m)",
				     k->name, quoted);
		else
			config_error(p, p->line,
				     "%s: '%s' is too small (at least %llums)",
				     k->name, quoted,
				     (unsigned long long)k->min);
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

/* Only a smarthost on this machine may get credentials over TLS that is
 * not verified: nobody else is on that path. */
static bool config_is_loopback_host(const char *host)
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

struct config *config_default(const char *base_dir)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	char *data_dir = config_path_join(base_dir, "postd-data");

	config_set_defaults(cfg);
	free(cfg->data_dir);
	free(cfg->users_file);
	free(cfg->user);
	cfg->data_dir = data_dir;
	cfg->users_file = config_path_join(data_dir, "users");
	cfg->tls_cert = config_path_join(data_dir, "tls/cert.pem");
	cfg->tls_key = config_path_join(data_dir, "tls/key.pem");
	cfg->srs_secret_file = config_path_join(data_dir, "srs.secret");
	cfg->user =
	    xstrdup(getpwnam(CONFIG_DEFAULT_USER) != NULL ? CONFIG_DEFAULT_USER
							  : "nobody");
	cfg->domains = xreallocarray(cfg->domains, 2, sizeof(*cfg->domains));
	cfg->domains[0] = xstrdup(CONFIG_EMBEDDED_DOMAIN);
	cfg->domains[1] = NULL;
	cfg->domain_count = 1;
	cfg->auth_default_domain = xstrdup(CONFIG_EMBEDDED_DOMAIN);
	config_add_listen(cfg, LISTEN_POP3, "127.0.0.1", "2110", 0);
	config_add_listen(cfg, LISTEN_POP3S, "127.0.0.1", "2995", 0);
	config_add_listen(cfg, LISTEN_SMTP, "127.0.0.1", "2525", 0);
	config_add_listen(cfg, LISTEN_SUBMISSION, "127.0.0.1", "2587", 0);
	config_add_listen(cfg, LISTEN_SUBMISSIONS, "127.0.0.1", "2465", 0);
	config_add_listen(cfg, LISTEN_HTTP, "127.0.0.1", "2080", 0);
	return cfg;
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

enum plaintext_auth config_plaintext_auth(const struct config *cfg,
					  enum listen_proto proto)
{
	if ((unsigned)proto < LISTEN_PROTO_COUNT &&
	    cfg->plaintext_auth_listener[proto] != PLAINTEXT_AUTH_UNSET)
		return cfg->plaintext_auth_listener[proto];
	return cfg->plaintext_auth;
}

const char *config_plaintext_auth_name(enum plaintext_auth value)
{
	switch (value) {
	case PLAINTEXT_AUTH_NO:
		return "no";
	case PLAINTEXT_AUTH_LOOPBACK:
		return "loopback";
	case PLAINTEXT_AUTH_YES:
		return "yes";
	case PLAINTEXT_AUTH_UNSET:
		break;
	}
	return "unset";
}

void config_print_plaintext_auth(const struct config *cfg, FILE *out)
{
	bool any = false;

	fputs("plaintext_auth:", out);
	for (int proto = 0; proto < LISTEN_PROTO_COUNT; proto++) {
		if (!config_proto_has_plaintext_login(proto) ||
		    !config_has_listener(cfg, proto))
			continue;
		fprintf(out, " %s=%s", config_proto_name(proto),
			config_plaintext_auth_name(
			    config_plaintext_auth(cfg, proto)));
		any = true;
	}
	fputs(any ? "\n" : " no listener takes a password before TLS\n", out);
}

bool config_is_local_domain(const struct config *cfg, const char *domain)
{
	size_t len = strlen(domain);

	for (size_t i = 0; i < cfg->domain_count; i++) {
		if (strlen(cfg->domains[i]) == len &&
		    ascii_strncaseeq(cfg->domains[i], domain, len))
			return true;
	}
	return false;
}

int64_t config_retention(const struct config *cfg, const char *domain,
			 bool unread)
{
	for (size_t i = 0; i < cfg->domain_retention_count; i++) {
		const struct config_domain_retention *d =
		    &cfg->domain_retention[i];
		int64_t v = unread ? d->retention_unread : d->retention;

		if (v != CONFIG_UNSET && strcasecmp(d->domain, domain) == 0)
			return v;
	}
	return unread ? cfg->retention_unread : cfg->retention;
}

bool config_retention_varies(const struct config *cfg)
{
	return cfg->domain_retention_count > 0;
}

const struct config_route *config_transport(const struct config *cfg,
					    const char *domain)
{
	for (size_t i = 0; i < cfg->transport_count; i++) {
		if (strcasecmp(cfg->transports[i].domain, domain) == 0)
			return &cfg->transports[i];
	}
	return NULL;
}

enum tls_policy config_tls_policy(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->domain_tls_count; i++) {
		if (strcasecmp(cfg->domain_tls[i].domain, domain) == 0)
			return cfg->domain_tls[i].policy;
	}
	return cfg->tls_policy;
}

const char *config_tls_policy_name(enum tls_policy policy)
{
	switch (policy) {
	case TLS_POLICY_MAY:
		return "may";
	case TLS_POLICY_VERIFY:
		return "verify";
	}
	return "unknown";
}

const char *config_dkim_key(const struct config *cfg, const char *domain)
{
	const char *fallback = NULL;

	for (size_t i = 0; i < cfg->dkim_key_count; i++) {
		if (strcmp(cfg->dkim_keys[i].domain, "*") == 0)
			fallback = cfg->dkim_keys[i].path;
		else if (strcasecmp(cfg->dkim_keys[i].domain, domain) == 0)
			return cfg->dkim_keys[i].path;
	}
	return fallback;
}

const char *config_srs_domain(const struct config *cfg)
{
	if (cfg->srs_domain != NULL)
		return cfg->srs_domain;
	return cfg->domain_count > 0 ? cfg->domains[0] : "localhost";
}

static void config_route_free(struct config_route *r)
{
	free(r->domain);
	free(r->host);
	free(r->port);
}

void config_free(struct config **cfgp)
{
	struct config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->hostname);
	for (size_t i = 0; i < cfg->domain_count; i++)
		free(cfg->domains[i]);
	free(cfg->domains);
	free(cfg->data_dir);
	free(cfg->users_file);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->user);
	for (size_t i = 0; i < cfg->listen_count; i++) {
		free(cfg->listen[i].host);
		free(cfg->listen[i].port);
	}
	free(cfg->listen);
	free(cfg->auth_default_domain);
	free(cfg->srs_domain);
	free(cfg->srs_secret_file);
	for (size_t i = 0; i < cfg->domain_retention_count; i++)
		free(cfg->domain_retention[i].domain);
	free(cfg->domain_retention);
	if (cfg->relay_host != NULL)
		config_route_free(cfg->relay_host);
	free(cfg->relay_host);
	free(cfg->relay_auth);
	for (size_t i = 0; i < cfg->dns_server_count; i++)
		free(cfg->dns_servers[i]);
	free(cfg->dns_servers);
	for (size_t i = 0; i < cfg->transport_count; i++)
		config_route_free(&cfg->transports[i]);
	free(cfg->transports);
	for (size_t i = 0; i < cfg->domain_tls_count; i++)
		free(cfg->domain_tls[i].domain);
	free(cfg->domain_tls);
	free(cfg->tls_ca_file);
	free(cfg->dkim_selector);
	for (size_t i = 0; i < cfg->dkim_key_count; i++) {
		free(cfg->dkim_keys[i].domain);
		free(cfg->dkim_keys[i].path);
	}
	free(cfg->dkim_keys);
	free(cfg->aliases_file);
	free(cfg->postmaster_address);
	free(cfg->abuse_address);
	free(cfg->pgsql_conninfo);
	free(cfg->pgsql_conninfo_failover);
	free(cfg->pgsql_user_query);
	free(cfg->pgsql_alias_query);
	free(cfg->pgsql_iterate_query);
	free(cfg->proxy_trusted);
	free(cfg);
	*cfgp = NULL;
}

const char *const config_restart_keys[] = {"data_dir", "user", NULL};

static const struct config_key *config_key_named(const char *name)
{
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]);
	     i++) {
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	}
	return NULL;
}

unsigned config_keep_restart_keys(
    struct config *fresh, const struct config *running,
    void (*changed)(const char *key, const char *running_value,
		    const char *fresh_value, void *arg),
    void *arg)
{
	unsigned n = 0;

	for (size_t i = 0; config_restart_keys[i] != NULL; i++) {
		const struct config_key *k =
		    config_key_named(config_restart_keys[i]);
		char **now, *const *was;

		/* Every restart key is a string (a path or an account). */
		if (k == NULL)
			fatal("config: restart key %s is not a string key",
			      config_restart_keys[i]);
		now = (char **)((char *)fresh + k->offset);
		was = (char *const *)((const char *)running + k->offset);
		if (*now == *was ||
		    (*now != NULL && *was != NULL && strcmp(*now, *was) == 0))
			continue;
		n++;
		changed(k->name, *was != NULL ? *was : "(unset)",
			*now != NULL ? *now : "(unset)", arg);
		free(*now);
		*now = *was != NULL ? xstrdup(*was) : NULL;
	}
	return n;
}
