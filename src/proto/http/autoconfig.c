/*
 * Thunderbird autoconfig
 * (https://wiki.mozilla.org/Thunderbird:Autoconfiguration :ConfigFileFormat):
 * one emailProvider with every local domain, the incoming servers (IMAP only
 * when served, then POP3) and the outgoing submission servers, all on
 * cfg->hostname. User names are the full address: that is the canonical postd
 * login.
 */
#include "proto/http/autoconfig.h"

#include <string.h>

#include "lib/username.h"

/* Thunderbird's POP3 advice counts whole days. */
#define AUTOCONFIG_SECONDS_PER_DAY 86400

static bool autoconfig_has_server(const struct autoconfig_server *out, size_t n,
				  enum listen_proto proto, const char *port);
static int autoconfig_element(struct buf *out, const char *indent,
			      const char *name, const char *text);
static const char *autoconfig_socket_type(const struct autoconfig_server *s);
static const char *autoconfig_type(enum listen_proto proto);
static int autoconfig_pop3_advice(struct buf *out, const struct config *cfg,
				  const char *domain);
static int autoconfig_server(struct buf *out, const struct config *cfg,
			     const struct autoconfig_server *s,
			     const char *domain);

/* Best first: Thunderbird takes the first server it can reach. */
static const enum listen_proto autoconfig_order[] = {
    LISTEN_IMAPS, LISTEN_IMAP,	      LISTEN_POP3S,
    LISTEN_POP3,  LISTEN_SUBMISSIONS, LISTEN_SUBMISSION,
};

static bool autoconfig_has_server(const struct autoconfig_server *out, size_t n,
				  enum listen_proto proto, const char *port)
{
	for (size_t i = 0; i < n; i++) {
		if (out[i].proto == proto && strcmp(out[i].port, port) == 0)
			return true;
	}
	return false;
}

size_t autoconfig_servers(const struct config *cfg,
			  autoconfig_served_fn *served,
			  struct autoconfig_server *out, size_t max)
{
	size_t n = 0;
	bool tls = cfg->tls_cert != NULL && cfg->tls_key != NULL;

	for (size_t o = 0;
	     o < sizeof(autoconfig_order) / sizeof(autoconfig_order[0]); o++) {
		enum listen_proto proto = autoconfig_order[o];

		if (served != NULL && !served(proto))
			continue;
		for (size_t i = 0; i < cfg->listen_count && n < max; i++) {
			const struct listen_addr *a = &cfg->listen[i];

			if (a->proto != proto ||
			    autoconfig_has_server(out, n, proto, a->port))
				continue;
			/* An implicit-TLS port without a certificate is
			 * refused by config_validate; never advertise one. */
			if (config_proto_implicit_tls(proto) && !tls)
				continue;
			out[n].proto = proto;
			out[n].port = a->port;
			out[n].implicit_tls = config_proto_implicit_tls(proto);
			out[n].starttls = !out[n].implicit_tls && tls;
			n++;
		}
	}
	return n;
}

bool autoconfig_server_is_incoming(const struct autoconfig_server *s)
{
	return s->proto == LISTEN_POP3 || s->proto == LISTEN_POP3S ||
	       s->proto == LISTEN_IMAP || s->proto == LISTEN_IMAPS;
}

int autoconfig_xml_append(struct buf *out, const char *text)
{
	for (const char *p = text; *p != '\0'; p++) {
		const char *rep = NULL;

		switch (*p) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&apos;";
			break;
		default:
			break;
		}
		if (rep != NULL ? buf_append_str(out, rep)
				: buf_append(out, p, 1))
			return -1;
	}
	return 0;
}

static int autoconfig_element(struct buf *out, const char *indent,
			      const char *name, const char *text)
{
	if (buf_printf(out, "%s<%s>", indent, name) < 0 ||
	    autoconfig_xml_append(out, text) < 0 ||
	    buf_printf(out, "</%s>\n", name) < 0)
		return -1;
	return 0;
}

static const char *autoconfig_socket_type(const struct autoconfig_server *s)
{
	if (s->implicit_tls)
		return "SSL";
	return s->starttls ? "STARTTLS" : "plain";
}

static const char *autoconfig_type(enum listen_proto proto)
{
	switch (proto) {
	case LISTEN_IMAP:
	case LISTEN_IMAPS:
		return "imap";
	case LISTEN_POP3:
	case LISTEN_POP3S:
		return "pop3";
	default:
		return "smtp";
	}
}

/*
 * The client keeps a copy for as many whole days as the server keeps a
 * retrieved message (rounded down, at least one), so it never expects a
 * message the server already expired. With no retention or EXPIRE 0 the
 * post office is temporary storage: the client takes the mail away.
 */
static int autoconfig_pop3_advice(struct buf *out, const struct config *cfg,
				  const char *domain)
{
	int64_t keep = config_retention(cfg, domain, false);
	bool leave = keep > 0;

	if (buf_printf(out,
		       "      <pop3>\n"
		       "        <leaveMessagesOnServer>%s"
		       "</leaveMessagesOnServer>\n"
		       "        <downloadOnBiff>true</downloadOnBiff>\n",
		       leave ? "true" : "false") < 0)
		return -1;
	if (leave) {
		int64_t days = keep / AUTOCONFIG_SECONDS_PER_DAY;

		if (buf_printf(out,
			       "        <daysToLeaveMessagesOnServer>%lld"
			       "</daysToLeaveMessagesOnServer>\n",
			       (long long)(days > 0 ? days : 1)) < 0)
			return -1;
	}
	return buf_append_str(out, "      </pop3>\n");
}

static int autoconfig_server(struct buf *out, const struct config *cfg,
			     const struct autoconfig_server *s,
			     const char *domain)
{
	bool incoming = autoconfig_server_is_incoming(s);
	const char *tag = incoming ? "incomingServer" : "outgoingServer";

	if (buf_printf(out, "    <%s type=\"%s\">\n", tag,
		       autoconfig_type(s->proto)) < 0 ||
	    autoconfig_element(out, "      ", "hostname", cfg->hostname) ||
	    autoconfig_element(out, "      ", "port", s->port) ||
	    autoconfig_element(out, "      ", "socketType",
			       autoconfig_socket_type(s)) ||
	    /* postd logins are full addresses (auth_default_domain only
	     * lets a bare local part work too). */
	    autoconfig_element(out, "      ", "username", "%EMAILADDRESS%") ||
	    autoconfig_element(out, "      ", "authentication",
			       "password-cleartext"))
		return -1;
	if ((s->proto == LISTEN_POP3 || s->proto == LISTEN_POP3S) &&
	    autoconfig_pop3_advice(out, cfg, domain) < 0)
		return -1;
	return buf_printf(out, "    </%s>\n", tag) < 0 ? -1 : 0;
}

const char *autoconfig_domain(const struct config *cfg, const char *email)
{
	char canon[USERNAME_BUF_SIZE];
	const char *domain;
	size_t local_len;

	if (email == NULL)
		return cfg->domain_count > 0 ? cfg->domains[0] : NULL;
	if (username_normalize(email, strlen(email), NULL, canon,
			       sizeof(canon)) < 0)
		return NULL;
	domain = username_domain(canon, &local_len);
	for (size_t i = 0; i < cfg->domain_count; i++) {
		if (strcmp(cfg->domains[i], domain) == 0)
			return cfg->domains[i];
	}
	return NULL;
}

int autoconfig_thunderbird(const struct config *cfg,
			   autoconfig_served_fn *served, const char *email,
			   struct buf *out)
{
	struct autoconfig_server servers[AUTOCONFIG_MAX_SERVERS];
	const char *domain = autoconfig_domain(cfg, email);
	size_t n =
	    autoconfig_servers(cfg, served, servers, AUTOCONFIG_MAX_SERVERS);

	if (domain == NULL)
		domain = cfg->hostname;
	if (buf_append_str(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				"<clientConfig version=\"1.1\">\n"
				"  <emailProvider id=\"") < 0 ||
	    autoconfig_xml_append(out, domain) < 0 ||
	    buf_append_str(out, "\">\n") < 0)
		return -1;
	for (size_t i = 0; i < cfg->domain_count; i++) {
		if (autoconfig_element(out, "    ", "domain", cfg->domains[i]))
			return -1;
	}
	if (buf_append_str(out, "    <displayName>") < 0 ||
	    autoconfig_xml_append(out, domain) < 0 ||
	    buf_append_str(out, " mail (postd on ") < 0 ||
	    autoconfig_xml_append(out, cfg->hostname) < 0 ||
	    buf_append_str(out, ")</displayName>\n") < 0 ||
	    autoconfig_element(out, "    ", "displayShortName", domain))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (autoconfig_server(out, cfg, &servers[i], domain) < 0)
			return -1;
	}
	return buf_append_str(out, "  </emailProvider>\n</clientConfig>\n");
}
