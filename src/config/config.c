/*
 * The postd.conf parser: a small strict reader of "key = value" lines.
 * Each bad line is reported as "PATH:LINE: message" and parsing goes on,
 * so one run shows every mistake; the caller gets -1 at the end. The keys
 * themselves are in config_keys.c.
 */
#include "config/config.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config/config_internal.h"
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "storage/folder.h"

#define CONFIG_DEFAULT_USER "postd"
/* userdb = pgsql: the published schema's tables (doc/schema.sql). Set in
 * code, not in the table: SQL does not fit a one-line default. */
#define CONFIG_DEFAULT_PGSQL_USER_QUERY                                        \
	"SELECT password, retention, login_delay, extra FROM users "           \
	"WHERE username = $1 AND enabled"
#define CONFIG_DEFAULT_PGSQL_ALIAS_QUERY "SELECT address, targets FROM aliases"
#define CONFIG_DEFAULT_PGSQL_ITERATE_QUERY                                     \
	"SELECT username, password, retention, login_delay, extra FROM users " \
	"WHERE enabled"

static void config_set_defaults(struct config *cfg);
static void config_report(struct config_parser *p, int line, const char *kind,
			  const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static int config_read_line(FILE *in, char *line, size_t size, bool *too_long_r,
			    bool *nul_r);
static void config_parse_line(struct config_parser *p, char *line);
static const struct config_key *
config_resolve_old_name(struct config_parser *p, const struct config_key *k);
static char *config_trim(char *s);
static int config_check_folder(struct config_parser *p, const char *key,
			       const char *folder);
static char *config_parser_dir(const char *path);
static char *config_default_hostname(void);

/* What a file gets for every key it does not set (postd.conf(5)): the
 * table's defaults, and here what cannot be written as a value. */
static void config_set_defaults(struct config *cfg)
{
	struct config_parser p = {.path = "built-in defaults", .cfg = cfg};

	cfg->hostname = config_default_hostname();
	cfg->domains = xcalloc(1, sizeof(*cfg->domains));
	cfg->dns_servers = xcalloc(1, sizeof(*cfg->dns_servers));
	for (size_t i = 0; i < LISTEN_PROTO_COUNT; i++)
		cfg->plaintext_auth_listener[i] = PLAINTEXT_AUTH_UNSET;
	cfg->pgsql_user_query = xstrdup(CONFIG_DEFAULT_PGSQL_USER_QUERY);
	cfg->pgsql_alias_query = xstrdup(CONFIG_DEFAULT_PGSQL_ALIAS_QUERY);
	cfg->pgsql_iterate_query = xstrdup(CONFIG_DEFAULT_PGSQL_ITERATE_QUERY);
	if (config_apply_defaults(&p) > 0)
		fatal("config: a default in config_keys[] does not parse");
}

static char *config_default_hostname(void)
{
	char name[HOST_NAME_MAX + 1];

	if (gethostname(name, sizeof(name)) < 0 || name[0] == '\0')
		return xstrdup("localhost");
	name[HOST_NAME_MAX] = '\0';
	return xstrdup(name);
}

/* "PATH:LINE: KIND message", KIND "" for an error. */
static void config_report(struct config_parser *p, int line, const char *kind,
			  const char *fmt, va_list ap)
{
	if (p->errors == NULL)
		return;
	if (line > 0)
		fprintf(p->errors, "%s:%d: %s", p->path, line, kind);
	else
		fprintf(p->errors, "%s: %s", p->path, kind);
	vfprintf(p->errors, fmt, ap);
	fputc('\n', p->errors);
}

void config_error(struct config_parser *p, int line, const char *fmt, ...)
{
	va_list ap;

	p->error_count++;
	va_start(ap, fmt);
	config_report(p, line, "", fmt, ap);
	va_end(ap);
}

void config_warning(struct config_parser *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_report(p, line, "warning: ", fmt, ap);
	va_end(ap);
}

/* Config text echoed in a message, with control bytes escaped. */
const char *config_quote(char *dst, size_t size, const char *s)
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
	k = config_resolve_old_name(p, k);
	if (*value == '\0' && !k->allow_empty) {
		config_error(p, p->line, "%s: empty value", k->name);
		return;
	}
	idx = (size_t)(k - config_keys);
	/* An old name and its new one both set is a duplicate too. */
	if (p->first_line[idx] != 0 && !k->repeatable) {
		config_error(p, p->line,
			     "duplicate key '%s' (first set on line %d)",
			     k->name, p->first_line[idx]);
		return;
	}
	if (p->first_line[idx] == 0)
		p->first_line[idx] = p->line;
	if (p->suffix != NULL && config_key_scope(k) == CONFIG_SCOPE_FOLDER) {
		if (config_check_folder(p, key, p->suffix) < 0)
			return;
	} else if (p->suffix != NULL &&
		   config_key_scope(k) != CONFIG_SCOPE_LISTENER) {
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

/* The FOLDER of autoexpunge.FOLDER: an IMAP name as a client would give
 * it (UTF-8, '/' separated; INV-S2: it becomes a path only through
 * folder_disk_name()). INBOX is retention's, not autoexpunge's. */
static int config_check_folder(struct config_parser *p, const char *key,
			       const char *folder)
{
	char quoted[128];
	const char *why = NULL;

	if (!folder_name_valid(folder, &why)) {
		config_error(p, p->line, "%s: '%s' is not a folder name: %s",
			     key, config_quote(quoted, sizeof(quoted), folder),
			     why);
		return -1;
	}
	if (folder_is_inbox(folder)) {
		config_error(p, p->line,
			     "%s: INBOX is governed by retention and "
			     "retention_unread, not autoexpunge",
			     config_quote(quoted, sizeof(quoted), key));
		return -1;
	}
	return 0;
}

/*
 * A deprecated name (a row with replaced_by) is parsed as the key that
 * replaced it, after one warning naming that key. A renamed key keeps its
 * meaning, so old files go on working.
 */
static const struct config_key *
config_resolve_old_name(struct config_parser *p, const struct config_key *k)
{
	const struct config_key *now;
	const char *suffix;

	if (k->replaced_by == NULL)
		return k;
	now = config_find_key(k->replaced_by, &suffix);
	if (now == NULL || now->replaced_by != NULL)
		fatal("config: %s is replaced by unknown key %s", k->name,
		      k->replaced_by);
	config_warning(p, p->line, "'%s' is deprecated; it is now called '%s'",
		       k->name, now->name);
	return now;
}

/* Splits off the next space-separated word; NULL when none is left. */
char *config_next_word(char **cursor)
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
bool config_valid_hostname(const char *s, size_t max)
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

char *config_path_join(const char *dir, const char *name)
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
	/* After the others, so that their places in the list stay. */
	config_add_listen(cfg, LISTEN_IMAP, "127.0.0.1", "2143", 0);
	config_add_listen(cfg, LISTEN_IMAPS, "127.0.0.1", "2993", 0);
	return cfg;
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
	for (size_t i = 0; i < cfg->domain_retention_count; i++)
		free(cfg->domain_retention[i].domain);
	free(cfg->domain_retention);
	for (size_t i = 0; i < cfg->autoexpunge_count; i++)
		free(cfg->autoexpunge[i].folder);
	free(cfg->autoexpunge);
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
	free(cfg->srs_domain);
	free(cfg->srs_secret_file);
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
	for (size_t i = 0; i < config_key_count; i++) {
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
