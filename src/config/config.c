/*
 * The postd.conf parser: a small strict reader of "key = value" lines.
 * Each bad line is reported as "PATH:LINE: message" and parsing goes on,
 * so one run shows every mistake; the caller gets -1 at the end.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"

#define CONFIG_DEFAULT_DATA_DIR "/var/lib/postd"
#define CONFIG_DEFAULT_USERS_FILE "/etc/postd/users"
#define CONFIG_DEFAULT_USER "postd"
#define CONFIG_DEFAULT_MAX_CONNECTIONS 10000
#define CONFIG_DEFAULT_MAX_CONNECTIONS_PER_PEER 100
#define CONFIG_DEFAULT_AUTH_FAILURE_DELAY_MS 1000
/* Postfix's default is 10 MB; attachments have grown since. */
#define CONFIG_DEFAULT_MAX_MESSAGE_SIZE (50u * 1024 * 1024)
#define CONFIG_EMBEDDED_NAME "embedded default"
#define CONFIG_KEY_SLOTS 32

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
};

struct config_parser {
	const char *path; /* as given, for messages */
	char *dir;	  /* relative paths are resolved against it */
	FILE *errors;
	int error_count;
	int line;
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
static const struct config_key *config_find_key(const char *name);
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
static char *config_default_hostname(void);

static config_setter config_set_hostname, config_set_domains, config_set_domain,
    config_set_path, config_set_account, config_set_listen,
    config_set_plaintext_auth, config_set_bool, config_set_uint,
    config_set_duration, config_set_log_level;

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
    {.name = "auth_failure_delay",
     .set = config_set_duration,
     .offset = OFF(auth_failure_delay_ms),
     .max = CONFIG_MAX_AUTH_FAILURE_DELAY_MS,
     .store_ms = true},
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
	cfg->apop = false;
	cfg->workers = 0;
	cfg->max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS;
	cfg->max_connections_per_peer = CONFIG_DEFAULT_MAX_CONNECTIONS_PER_PEER;
	cfg->timeout_preauth = TIMEOUT_PREAUTH_DEFAULT;
	cfg->timeout_idle = POP3_TIMEOUT_AUTHENTICATED_MIN;
	cfg->auth_failure_delay_ms = CONFIG_DEFAULT_AUTH_FAILURE_DELAY_MS;
	cfg->log_debug = false;
	cfg->max_message_size = CONFIG_DEFAULT_MAX_MESSAGE_SIZE;
	cfg->max_recipients = SMTP_MAX_RECIPIENTS_DEFAULT;
	cfg->smtp_auth = false;
	cfg->sender_login_match = true;
	cfg->smtp_normalize_bare_lf = false;
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

	if (p.first_line[config_find_key("domains") - config_keys] == 0)
		config_error(&p, 0, "domains is required");
	if (p.error_count > 0) {
		config_free(&p.cfg);
		return -1;
	}
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

static const struct config_key *config_find_key(const char *name)
{
	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
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
	k = config_find_key(key);
	if (k == NULL) {
		config_error(p, p->line, "unknown key '%s'",
			     config_quote(quoted, sizeof(quoted), key));
		return;
	}
	if (*value == '\0') {
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

static int config_set_path(struct config_parser *p, const struct config_key *k,
			   char *value)
{
	char **field = FIELD(p, k, char *);

	if (strlen(value) >= PATH_MAX) {
		config_error(p, p->line, "%s: path longer than %d bytes",
			     k->name, PATH_MAX - 1);
		return -1;
	}
	free(*field);
	if (value[0] == '/' || p->dir == NULL)
		*field = xstrdup(value);
	else
		*field = config_path_join(p->dir, value);
	return 0;
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

/* "HOST:PORT", "[IPV6]:PORT" or "*:PORT". */
static int config_parse_listen_addr(struct config_parser *p,
				    enum listen_proto proto, const char *word)
{
	const char *name = config_proto_name(proto);
	char host[CONFIG_MAX_HOSTNAME + 1], quoted[CONFIG_MAX_LINE];
	char port[16];
	const char *colon, *pp;
	struct in6_addr in6;
	uint32_t portnum;
	size_t hlen;

	config_quote(quoted, sizeof(quoted), word);
	if (word[0] == '[') {
		const char *close = strchr(word, ']');

		if (close == NULL || close[1] != ':') {
			config_error(p, p->line,
				     "listen.%s: '%s': expected [IPV6]:PORT",
				     name, quoted);
			return -1;
		}
		hlen = (size_t)(close - word - 1);
		colon = close + 1;
		if (hlen >= sizeof(host)) {
			config_error(p, p->line,
				     "listen.%s: '%s': address too long", name,
				     quoted);
			return -1;
		}
		memcpy(host, word + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &in6) != 1) {
			config_error(p, p->line,
				     "listen.%s: '%s': invalid IPv6 address",
				     name, quoted);
			return -1;
		}
	} else {
		colon = strrchr(word, ':');
		if (colon == NULL) {
			config_error(p, p->line,
				     "listen.%s: '%s': missing ':PORT'", name,
				     quoted);
			return -1;
		}
		if (memchr(word, ':', (size_t)(colon - word)) != NULL) {
			config_error(p, p->line,
				     "listen.%s: '%s': write IPv6 addresses "
				     "in brackets, as [::1]:110",
				     name, quoted);
			return -1;
		}
		hlen = (size_t)(colon - word);
		if (hlen >= sizeof(host)) {
			config_error(p, p->line,
				     "listen.%s: '%s': host name too long",
				     name, quoted);
			return -1;
		}
		memcpy(host, word, hlen);
		host[hlen] = '\0';
		if (strcmp(host, "*") != 0 &&
		    !config_valid_hostname(host, CONFIG_MAX_HOSTNAME)) {
			config_error(p, p->line,
				     "listen.%s: '%s': invalid address or host "
				     "name",
				     name, quoted);
			return -1;
		}
	}
	pp = colon + 1;
	if (parse_uint32(&pp, 65535, &portnum) < 0 || parse_end(&pp) < 0 ||
	    portnum == 0) {
		config_error(p, p->line,
			     "listen.%s: '%s': port must be a number from 1 "
			     "to 65535",
			     name, quoted);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", (unsigned)portnum);
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

static int config_set_plaintext_auth(struct config_parser *p,
				     const struct config_key *k, char *value)
{
	enum plaintext_auth *field = FIELD(p, k, enum plaintext_auth);
	char quoted[128];

	if (strcmp(value, "no") == 0)
		*field = PLAINTEXT_AUTH_NO;
	else if (strcmp(value, "loopback") == 0)
		*field = PLAINTEXT_AUTH_LOOPBACK;
	else if (strcmp(value, "yes") == 0)
		*field = PLAINTEXT_AUTH_YES;
	else {
		config_error(
		    p, p->line, "%s: '%s' is not one of no, loopback, yes",
		    k->name, config_quote(quoted, sizeof(quoted), value));
		return -1;
	}
	return 0;
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
	cfg->user =
	    xstrdup(getpwnam(CONFIG_DEFAULT_USER) != NULL ? CONFIG_DEFAULT_USER
							  : "nobody");
	cfg->domains = xreallocarray(cfg->domains, 2, sizeof(*cfg->domains));
	cfg->domains[0] = xstrdup("localhost");
	cfg->domains[1] = NULL;
	cfg->domain_count = 1;
	cfg->auth_default_domain = xstrdup("localhost");
	config_add_listen(cfg, LISTEN_POP3, "127.0.0.1", "2110", 0);
	config_add_listen(cfg, LISTEN_POP3S, "127.0.0.1", "2995", 0);
	config_add_listen(cfg, LISTEN_SMTP, "127.0.0.1", "2525", 0);
	config_add_listen(cfg, LISTEN_SUBMISSION, "127.0.0.1", "2587", 0);
	config_add_listen(cfg, LISTEN_SUBMISSIONS, "127.0.0.1", "2465", 0);
	return cfg;
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
	return p.error_count;
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
	free(cfg);
	*cfgp = NULL;
}
