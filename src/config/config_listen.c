/* Listeners: listen.NAME addresses, the per-listener plaintext_auth and
 * PROXY protocol, and the networks PROXY headers may come from. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"

static int config_parse_listen_addr(struct config_parser *p,
				    enum listen_proto proto, const char *word);
static int config_parse_plaintext_auth(struct config_parser *p, const char *key,
				       const char *value,
				       enum plaintext_auth *r);
static int config_find_proto(const char *name, enum listen_proto *proto_r);
static bool config_proto_has_plaintext_login(enum listen_proto proto);
static bool config_has_listener(const struct config *cfg,
				enum listen_proto proto);
static int config_parse_cidr(const char *word, struct config_cidr *out);
static bool config_cidr_match(const struct config_cidr *net, int family,
			      const uint8_t *addr);

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

void config_add_listen(struct config *cfg, enum listen_proto proto,
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
int config_split_hostport(struct config_parser *p, const char *key,
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

int config_set_listen(struct config_parser *p, const struct config_key *k,
		      char *value)
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

int config_set_plaintext_auth(struct config_parser *p,
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
int config_set_listener_plaintext_auth(struct config_parser *p,
				       const struct config_key *k, char *value)
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

/*
 * proxy_protocol.NAME = yes: connections to that listener start with a
 * PROXY header (from a load balancer). On http, evhttp's reading is held
 * back until the header is read (http_server.c); imap has no PROXY
 * support yet.
 */
int config_set_listener_proxy_protocol(struct config_parser *p,
				       const struct config_key *k, char *value)
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
int config_set_proxy_trusted(struct config_parser *p,
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
