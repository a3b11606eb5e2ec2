/*
 * Unit tests for listen.http's documents: Thunderbird autoconfig and
 * Outlook Autodiscover generated from a config, the Autodiscover request
 * parser (table-driven, hostile input included), and the Prometheus
 * exposition.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/metrics.h"
#include "lib/xmalloc.h"
#include "proto/http/autoconfig.h"
#include "proto/http/autodiscover.h"
#include "proto/http/metrics_export.h"

#define DAY 86400

static struct config *test_config(void);
static void test_config_add_listen(struct config *cfg, enum listen_proto p,
				   const char *port);
static char *test_thunderbird(const struct config *cfg,
			      autoconfig_served_fn *served, const char *email);
static bool test_no_imap(enum listen_proto proto);

/* config_default() with a real host name, two domains and an HTTP
 * listener: pop3 2110, pop3s 2995, smtp 2525, submission 2587,
 * submissions 2465, TLS configured. */
static struct config *test_config(void)
{
	struct config *cfg = config_default("/nonexistent");

	/* The embedded default's IMAP listeners (the last two) are added
	 * back by the tests that want them. */
	while (cfg->listen_count > 0 &&
	       (cfg->listen[cfg->listen_count - 1].proto == LISTEN_IMAP ||
		cfg->listen[cfg->listen_count - 1].proto == LISTEN_IMAPS)) {
		cfg->listen_count--;
		free(cfg->listen[cfg->listen_count].host);
		free(cfg->listen[cfg->listen_count].port);
	}
	free(cfg->hostname);
	cfg->hostname = xstrdup("mail.example.org");
	free(cfg->domains[0]);
	free(cfg->domains);
	cfg->domains = xcalloc(3, sizeof(*cfg->domains));
	cfg->domains[0] = xstrdup("example.org");
	cfg->domains[1] = xstrdup("example.net");
	cfg->domain_count = 2;
	test_config_add_listen(cfg, LISTEN_HTTP, "8080");
	return cfg;
}

static void test_config_add_listen(struct config *cfg, enum listen_proto p,
				   const char *port)
{
	cfg->listen = xreallocarray(cfg->listen, cfg->listen_count + 1,
				    sizeof(*cfg->listen));
	cfg->listen[cfg->listen_count].proto = p;
	cfg->listen[cfg->listen_count].host = xstrdup("*");
	cfg->listen[cfg->listen_count].port = xstrdup(port);
	cfg->listen[cfg->listen_count].line = 0;
	cfg->listen_count++;
}

static char *test_thunderbird(const struct config *cfg,
			      autoconfig_served_fn *served, const char *email)
{
	struct buf *b = buf_new(AUTOCONFIG_MAX_DOCUMENT);
	char *s;

	assert_int_equal(autoconfig_thunderbird(cfg, served, email, b), 0);
	s = xstrdup(buf_data(b));
	buf_free(&b);
	return s;
}

static bool test_no_imap(enum listen_proto proto)
{
	return proto != LISTEN_IMAP && proto != LISTEN_IMAPS;
}

static void test_autoconfig_exact(void **state)
{
	static const char expected[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<clientConfig version=\"1.1\">\n"
	    "  <emailProvider id=\"example.org\">\n"
	    "    <domain>example.org</domain>\n"
	    "    <domain>example.net</domain>\n"
	    "    <displayName>example.org mail (postd on mail.example.org)"
	    "</displayName>\n"
	    "    <displayShortName>example.org</displayShortName>\n"
	    "    <incomingServer type=\"pop3\">\n"
	    "      <hostname>mail.example.org</hostname>\n"
	    "      <port>2995</port>\n"
	    "      <socketType>SSL</socketType>\n"
	    "      <username>%EMAILADDRESS%</username>\n"
	    "      <authentication>password-cleartext</authentication>\n"
	    "      <pop3>\n"
	    "        <leaveMessagesOnServer>false</leaveMessagesOnServer>\n"
	    "        <downloadOnBiff>true</downloadOnBiff>\n"
	    "      </pop3>\n"
	    "    </incomingServer>\n"
	    "    <incomingServer type=\"pop3\">\n"
	    "      <hostname>mail.example.org</hostname>\n"
	    "      <port>2110</port>\n"
	    "      <socketType>STARTTLS</socketType>\n"
	    "      <username>%EMAILADDRESS%</username>\n"
	    "      <authentication>password-cleartext</authentication>\n"
	    "      <pop3>\n"
	    "        <leaveMessagesOnServer>false</leaveMessagesOnServer>\n"
	    "        <downloadOnBiff>true</downloadOnBiff>\n"
	    "      </pop3>\n"
	    "    </incomingServer>\n"
	    "    <outgoingServer type=\"smtp\">\n"
	    "      <hostname>mail.example.org</hostname>\n"
	    "      <port>2465</port>\n"
	    "      <socketType>SSL</socketType>\n"
	    "      <username>%EMAILADDRESS%</username>\n"
	    "      <authentication>password-cleartext</authentication>\n"
	    "    </outgoingServer>\n"
	    "    <outgoingServer type=\"smtp\">\n"
	    "      <hostname>mail.example.org</hostname>\n"
	    "      <port>2587</port>\n"
	    "      <socketType>STARTTLS</socketType>\n"
	    "      <username>%EMAILADDRESS%</username>\n"
	    "      <authentication>password-cleartext</authentication>\n"
	    "    </outgoingServer>\n"
	    "  </emailProvider>\n"
	    "</clientConfig>\n";
	struct config *cfg = test_config();
	char *doc = test_thunderbird(cfg, NULL, NULL);

	(void)state;
	assert_string_equal(doc, expected);
	free(doc);
	/* The address picks the provider id; its case does not matter. */
	doc = test_thunderbird(cfg, NULL, "Alice@Example.NET");
	assert_non_null(strstr(doc, "<emailProvider id=\"example.net\">"));
	free(doc);
	config_free(&cfg);
}

/* The POP3 advice follows the retention of the address's domain. */
static void test_autoconfig_retention(void **state)
{
	struct config *cfg = test_config();
	char *doc;

	(void)state;
	cfg->retention = 14 * DAY;
	cfg->domain_retention = xcalloc(1, sizeof(*cfg->domain_retention));
	cfg->domain_retention[0].domain = xstrdup("example.net");
	cfg->domain_retention[0].retention = 36 * 3600;
	cfg->domain_retention[0].retention_unread = CONFIG_UNSET;
	cfg->domain_retention_count = 1;

	doc = test_thunderbird(cfg, NULL, "alice@example.org");
	assert_non_null(strstr(doc, "<leaveMessagesOnServer>true"));
	assert_non_null(strstr(doc, "<daysToLeaveMessagesOnServer>14</"));
	assert_null(strstr(doc, "<leaveMessagesOnServer>false"));
	free(doc);
	/* 36 hours: the client keeps one day, never longer than the
	 * server does. */
	doc = test_thunderbird(cfg, NULL, "bob@example.net");
	assert_non_null(strstr(doc, "<daysToLeaveMessagesOnServer>1</"));
	free(doc);
	/* EXPIRE 0: downloaded mail is removed at QUIT, so do not leave
	 * it on the server. */
	cfg->retention = 0;
	doc = test_thunderbird(cfg, NULL, NULL);
	assert_non_null(strstr(doc, "<leaveMessagesOnServer>false"));
	assert_null(strstr(doc, "daysToLeave"));
	free(doc);
	config_free(&cfg);
}

static void test_autoconfig_imap_only_when_served(void **state)
{
	struct config *cfg = test_config();
	char *doc;

	(void)state;
	doc = test_thunderbird(cfg, NULL, NULL);
	assert_null(strstr(doc, "type=\"imap\""));
	free(doc);
	test_config_add_listen(cfg, LISTEN_IMAPS, "2993");
	doc = test_thunderbird(cfg, NULL, NULL);
	/* IMAP first: Thunderbird takes the first it can reach. */
	assert_true(strstr(doc, "type=\"imap\"") != NULL &&
		    strstr(doc, "type=\"imap\"") <
			strstr(doc, "type=\"pop3\""));
	assert_non_null(strstr(doc, "<port>2993</port>"));
	free(doc);
	doc = test_thunderbird(cfg, test_no_imap, NULL);
	assert_null(strstr(doc, "imap"));
	assert_null(strstr(doc, "2993"));
	free(doc);
	config_free(&cfg);
}

static void test_autoconfig_no_tls(void **state)
{
	struct config *cfg = test_config();
	char *doc;

	(void)state;
	free(cfg->tls_cert);
	cfg->tls_cert = NULL;
	doc = test_thunderbird(cfg, NULL, NULL);
	assert_null(strstr(doc, "2995"));
	assert_null(strstr(doc, "2465"));
	assert_null(strstr(doc, "SSL"));
	assert_null(strstr(doc, "STARTTLS"));
	assert_non_null(strstr(doc, "<socketType>plain</socketType>"));
	free(doc);
	config_free(&cfg);
}

static void test_autoconfig_escape(void **state)
{
	struct config *cfg = test_config();
	struct buf *small = buf_new(8);
	char *doc;

	(void)state;
	free(cfg->hostname);
	cfg->hostname = xstrdup("a&b<c>\"d'");
	doc = test_thunderbird(cfg, NULL, NULL);
	assert_non_null(
	    strstr(doc, "<hostname>a&amp;b&lt;c&gt;&quot;d&apos;</hostname>"));
	assert_null(strstr(doc, "a&b"));
	free(doc);
	/* A full buffer fails cleanly instead of truncating silently. */
	assert_int_equal(autoconfig_xml_append(small, "&&"), -1);
	assert_int_equal(autoconfig_thunderbird(cfg, NULL, NULL, small), -1);
	buf_free(&small);
	config_free(&cfg);
}

static void test_autoconfig_domain(void **state)
{
	struct config *cfg = test_config();

	(void)state;
	assert_string_equal(autoconfig_domain(cfg, NULL), "example.org");
	assert_string_equal(autoconfig_domain(cfg, "X@EXAMPLE.net"),
			    "example.net");
	assert_null(autoconfig_domain(cfg, "x@example.com"));
	assert_null(autoconfig_domain(cfg, "no-at-sign"));
	assert_null(autoconfig_domain(cfg, "a b@example.org"));
	assert_null(autoconfig_domain(cfg, ""));
	config_free(&cfg);
}

static void test_autodiscover_response_exact(void **state)
{
	static const char expected[] =
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
	    "autodiscover/responseschema/2006\">\n"
	    "  <Response xmlns=\"http://schemas.microsoft.com/exchange/"
	    "autodiscover/outlook/responseschema/2006a\">\n"
	    "    <User>\n"
	    "      <DisplayName>alice@example.org</DisplayName>\n"
	    "    </User>\n"
	    "    <Account>\n"
	    "      <AccountType>email</AccountType>\n"
	    "      <Action>settings</Action>\n"
	    "      <Protocol>\n"
	    "        <Type>POP3</Type>\n"
	    "        <Server>mail.example.org</Server>\n"
	    "        <Port>2995</Port>\n"
	    "        <LoginName>alice@example.org</LoginName>\n"
	    "        <DomainRequired>off</DomainRequired>\n"
	    "        <SPA>off</SPA>\n"
	    "        <SSL>on</SSL>\n"
	    "        <Encryption>SSL</Encryption>\n"
	    "        <AuthRequired>on</AuthRequired>\n"
	    "      </Protocol>\n"
	    "      <Protocol>\n"
	    "        <Type>POP3</Type>\n"
	    "        <Server>mail.example.org</Server>\n"
	    "        <Port>2110</Port>\n"
	    "        <LoginName>alice@example.org</LoginName>\n"
	    "        <DomainRequired>off</DomainRequired>\n"
	    "        <SPA>off</SPA>\n"
	    "        <SSL>on</SSL>\n"
	    "        <Encryption>TLS</Encryption>\n"
	    "        <AuthRequired>on</AuthRequired>\n"
	    "      </Protocol>\n"
	    "      <Protocol>\n"
	    "        <Type>SMTP</Type>\n"
	    "        <Server>mail.example.org</Server>\n"
	    "        <Port>2465</Port>\n"
	    "        <LoginName>alice@example.org</LoginName>\n"
	    "        <DomainRequired>off</DomainRequired>\n"
	    "        <SPA>off</SPA>\n"
	    "        <SSL>on</SSL>\n"
	    "        <Encryption>SSL</Encryption>\n"
	    "        <AuthRequired>on</AuthRequired>\n"
	    "      </Protocol>\n"
	    "      <Protocol>\n"
	    "        <Type>SMTP</Type>\n"
	    "        <Server>mail.example.org</Server>\n"
	    "        <Port>2587</Port>\n"
	    "        <LoginName>alice@example.org</LoginName>\n"
	    "        <DomainRequired>off</DomainRequired>\n"
	    "        <SPA>off</SPA>\n"
	    "        <SSL>on</SSL>\n"
	    "        <Encryption>TLS</Encryption>\n"
	    "        <AuthRequired>on</AuthRequired>\n"
	    "      </Protocol>\n"
	    "    </Account>\n"
	    "  </Response>\n"
	    "</Autodiscover>\n";
	struct config *cfg = test_config();
	struct buf *b = buf_new(AUTOCONFIG_MAX_DOCUMENT);

	(void)state;
	assert_int_equal(
	    autodiscover_response(cfg, NULL, "alice@example.org", b), 0);
	assert_string_equal(buf_data(b), expected);
	buf_free(&b);
	config_free(&cfg);
}

static void test_autodiscover_error_doc(void **state)
{
	struct buf *b = buf_new(AUTOCONFIG_MAX_DOCUMENT);

	(void)state;
	assert_int_equal(autodiscover_error(AUTODISCOVER_ERROR_INVALID,
					    "Invalid <Request>", b),
			 0);
	assert_non_null(strstr(buf_data(b), "<ErrorCode>600</ErrorCode>"));
	assert_non_null(
	    strstr(buf_data(b), "<Message>Invalid &lt;Request&gt;</Message>"));
	buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* The request parser                                                  */
/* ------------------------------------------------------------------ */

#define AD_REQ_OPEN                                                            \
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"                       \
	"<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"         \
	"autodiscover/outlook/requestschema/2006\">\r\n  <Request>\r\n"
#define AD_REQ_CLOSE "\r\n  </Request>\r\n</Autodiscover>\r\n"
#define AD_SCHEMA_EL                                                           \
	"<AcceptableResponseSchema>" AUTODISCOVER_SCHEMA_2006A                 \
	"</AcceptableResponseSchema>"

struct ad_case {
	const char *name;
	const char *input; /* NULL: built by the test */
	int rc;
	const char *email;  /* expected on success */
	const char *schema; /* expected on success; NULL: 2006a */
};

static const struct ad_case ad_cases[] = {
    {"outlook",
     AD_REQ_OPEN
     "<EMailAddress>alice@example.org</EMailAddress>" AD_SCHEMA_EL AD_REQ_CLOSE,
     0, "alice@example.org", NULL},
    {"prefixes and attributes",
     "<a:Autodiscover xmlns:a='urn:x'><a:Request id=\"1\">"
     "<a:EMailAddress>bob@example.org</a:EMailAddress>"
     "<a:AcceptableResponseSchema>urn:other</a:AcceptableResponseSchema>"
     "</a:Request></a:Autodiscover>",
     0, "bob@example.org", "urn:other"},
    {"whitespace trimmed, unknown elements and comments skipped",
     "\xef\xbb\xbf<Autodiscover><!-- hi --><Request><LegacyDN/>"
     "<EMailAddress>\n  carol@example.org \t</EMailAddress>"
     "<X><Y>ignored</Y></X>" AD_SCHEMA_EL "</Request></Autodiscover>\n",
     0, "carol@example.org", NULL},
    {"missing EMailAddress", AD_REQ_OPEN AD_SCHEMA_EL AD_REQ_CLOSE, -1, NULL,
     NULL},
    {"empty EMailAddress",
     AD_REQ_OPEN "<EMailAddress/>" AD_SCHEMA_EL AD_REQ_CLOSE, -1, NULL, NULL},
    {"blank EMailAddress",
     AD_REQ_OPEN "<EMailAddress>  </EMailAddress>" AD_SCHEMA_EL AD_REQ_CLOSE,
     -1, NULL, NULL},
    {"missing schema",
     AD_REQ_OPEN "<EMailAddress>a@example.org</EMailAddress>" AD_REQ_CLOSE, -1,
     NULL, NULL},
    {"missing Request",
     "<Autodiscover><EMailAddress>a@example.org</EMailAddress>" AD_SCHEMA_EL
     "</Autodiscover>",
     -1, NULL, NULL},
    {"wrong root", "<Other><Request></Request></Other>", -1, NULL, NULL},
    {"empty", "", -1, NULL, NULL},
    {"not xml", "GET / HTTP/1.0", -1, NULL, NULL},
    {"unterminated",
     AD_REQ_OPEN "<EMailAddress>a@example.org</EMailAddress>" AD_SCHEMA_EL, -1,
     NULL, NULL},
    {"mismatched end tag",
     AD_REQ_OPEN
     "<EMailAddress>a@example.org</EMailAddres>" AD_SCHEMA_EL AD_REQ_CLOSE,
     -1, NULL, NULL},
    {"entity in the address",
     AD_REQ_OPEN "<EMailAddress>a&amp;b@example.org</EMailAddress>" AD_SCHEMA_EL
	 AD_REQ_CLOSE,
     -1, NULL, NULL},
    {"DOCTYPE with entities",
     "<!DOCTYPE a [<!ENTITY x \"y\">]>" AD_REQ_OPEN
     "<EMailAddress>&x;@example.org</EMailAddress>" AD_SCHEMA_EL AD_REQ_CLOSE,
     -1, NULL, NULL},
    {"CDATA",
     AD_REQ_OPEN
     "<EMailAddress><![CDATA[a@example.org]]></EMailAddress>" AD_SCHEMA_EL
	 AD_REQ_CLOSE,
     -1, NULL, NULL},
    {"nested tag in the address",
     AD_REQ_OPEN
     "<EMailAddress>a<b>x</b>@example.org</EMailAddress>" AD_SCHEMA_EL
	 AD_REQ_CLOSE,
     -1, NULL, NULL},
    {"two addresses",
     AD_REQ_OPEN
     "<EMailAddress>a@example.org</EMailAddress>"
     "<EMailAddress>b@example.org</EMailAddress>" AD_SCHEMA_EL AD_REQ_CLOSE,
     -1, NULL, NULL},
    {"two roots",
     "<Autodiscover/><Autodiscover><Request><EMailAddress>a@b</"
     "EMailAddress>" AD_SCHEMA_EL "</Request></Autodiscover>",
     -1, NULL, NULL},
    {"text outside the root",
     "junk" AD_REQ_OPEN
     "<EMailAddress>a@example.org</EMailAddress>" AD_SCHEMA_EL AD_REQ_CLOSE,
     -1, NULL, NULL},
    {"control character",
     AD_REQ_OPEN
     "<EMailAddress>a\x01@example.org</EMailAddress>" AD_SCHEMA_EL AD_REQ_CLOSE,
     -1, NULL, NULL},
    {"unquoted attribute", "<Autodiscover x=1><Request/></Autodiscover>", -1,
     NULL, NULL},
    {"'<' in an attribute", "<Autodiscover x='<'><Request/></Autodiscover>", -1,
     NULL, NULL},
    {"unterminated comment", "<Autodiscover><!-- ", -1, NULL, NULL},
    {"deep nesting",
     "<Autodiscover><Request><a><b><c><d><e><f><g><h></h></g></f></e></d>"
     "</c></b></a></Request></Autodiscover>",
     -1, NULL, NULL},
};

static void ad_check(const struct ad_case *c, const char *input, size_t len)
{
	struct autodiscover_request req;
	const char *error = NULL;
	/* An exact-size copy: the parser must never read past len. */
	char *copy = xmalloc(len > 0 ? len : 1);
	int rc;

	memcpy(copy, input, len);
	rc = autodiscover_parse(copy, len, &req, &error);
	free(copy);
	if (rc != c->rc)
		fail_msg("case '%s': rc %d, want %d (%s)", c->name, rc, c->rc,
			 error != NULL ? error : "-");
	if (rc == 0) {
		assert_string_equal(req.email, c->email);
		assert_string_equal(
		    req.schema,
		    c->schema != NULL ? c->schema : AUTODISCOVER_SCHEMA_2006A);
	} else {
		assert_non_null(error);
		assert_string_equal(req.email, "");
	}
}

/*
 * The parser takes the whole body (evhttp delivers it complete), so the
 * "one byte at a time" run becomes: every proper prefix of an accepted
 * request is refused, and none of them reads out of bounds.
 */
static void test_autodiscover_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ad_cases) / sizeof(ad_cases[0]); i++) {
		const struct ad_case *c = &ad_cases[i];
		size_t len = strlen(c->input);

		ad_check(c, c->input, len);
		if (c->rc != 0)
			continue;
		for (size_t cut = 0; cut < len; cut++) {
			struct ad_case prefix = {c->name, NULL, -1, NULL, NULL};
			const char *tail = c->input + cut;

			/* Only whitespace after the root may be cut. */
			if (strspn(tail, " \r\n\t") == strlen(tail))
				continue;
			ad_check(&prefix, c->input, cut);
		}
	}
}

/* INV-S3: oversized fields and bodies are refused while scanning. */
static void test_inv_s3_autodiscover_caps(void **state)
{
	char local[AUTODISCOVER_MAX_EMAIL + 2];
	char body[AUTODISCOVER_MAX_REQUEST + 64];
	struct autodiscover_request req;
	const char *error;
	struct buf *b = buf_new(AUTODISCOVER_MAX_REQUEST * 2);

	(void)state;
	memset(local, 'a', sizeof(local) - 1);
	local[sizeof(local) - 1] = '\0';
	/* 255 octets: one over the cap. */
	assert_int_equal(buf_printf(b,
				    AD_REQ_OPEN
				    "<EMailAddress>%s"
				    "</EMailAddress>" AD_SCHEMA_EL AD_REQ_CLOSE,
				    local),
			 0);
	error = NULL;
	assert_int_equal(
	    autodiscover_parse(buf_data(b), buf_len(b), &req, &error), -1);
	assert_string_equal(error, "EMailAddress too long");
	/* 254 octets: exactly at the cap. */
	buf_clear(b);
	local[sizeof(local) - 2] = '\0';
	assert_int_equal(buf_printf(b,
				    AD_REQ_OPEN
				    "<EMailAddress>%s"
				    "</EMailAddress>" AD_SCHEMA_EL AD_REQ_CLOSE,
				    local),
			 0);
	assert_int_equal(
	    autodiscover_parse(buf_data(b), buf_len(b), &req, &error), 0);
	assert_int_equal(strlen(req.email), AUTODISCOVER_MAX_EMAIL);
	/* A body over the cap, even one made of whitespace. */
	memset(body, ' ', sizeof(body));
	assert_int_equal(autodiscover_parse(body, sizeof(body), &req, &error),
			 -1);
	assert_string_equal(error, "request too large");
	/* Many elements. */
	buf_clear(b);
	(void)buf_append_str(b, "<Autodiscover><Request>");
	for (int i = 0; i < AUTODISCOVER_MAX_ELEMENTS; i++)
		(void)buf_append_str(b, "<x/>");
	(void)buf_append_str(b, "</Request></Autodiscover>");
	assert_int_equal(
	    autodiscover_parse(buf_data(b), buf_len(b), &req, &error), -1);
	assert_string_equal(error, "too many elements");
	/* A NUL byte. */
	assert_int_equal(autodiscover_parse("<Autodiscover>\0</Autodiscover>",
					    30, &req, &error),
			 -1);
	buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Metrics                                                             */
/* ------------------------------------------------------------------ */

static uint64_t metric_value(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *line = text; *line != '\0';) {
		const char *eol = strchr(line, '\n');

		if (strncmp(line, name, n) == 0 && line[n] == ' ')
			return strtoull(line + n + 1, NULL, 10);
		if (eol == NULL)
			break;
		line = eol + 1;
	}
	fail_msg("metric %s not found", name);
	return 0;
}

static void test_metrics_export(void **state)
{
	char dir[] = "/tmp/test_http.XXXXXX";
	char path[256];
	struct config *cfg = test_config();
	struct metrics_export me = {0};
	struct buf *b = buf_new(METRICS_EXPORT_MAX);
	int fd;

	(void)state;
	metrics_init();
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/env", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/env/Q%d", dir, i);
		fd = open(path, O_CREAT | O_WRONLY, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/env/.hidden", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	me.queue_fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(me.queue_fd >= 0);

	metrics_add(METRIC_LOGINS_FAILED, 5);
	metrics_add(METRIC_MESSAGES_RETRIEVED, 2);
	metrics_session_open(LISTEN_HTTP);
	metrics_session_open(LISTEN_POP3);
	metrics_session_open(LISTEN_POP3);
	assert_int_equal(metrics_export_write(&me, cfg, 1000, b), 0);
	assert_int_equal(metric_value(buf_data(b), "postd_logins_failed_total"),
			 5);
	assert_int_equal(
	    metric_value(buf_data(b), "postd_messages_retrieved_total"), 2);
	assert_int_equal(metric_value(buf_data(b), "postd_logins_ok_total"), 0);
	assert_int_equal(
	    metric_value(buf_data(b), "postd_sessions{protocol=\"pop3\"}"), 2);
	assert_int_equal(
	    metric_value(buf_data(b), "postd_sessions{protocol=\"http\"}"), 1);
	assert_int_equal(
	    metric_value(buf_data(b), "postd_sessions{protocol=\"smtp\"}"), 0);
	assert_int_equal(metric_value(buf_data(b), "postd_queue_messages"), 3);
	assert_int_equal(metric_value(buf_data(b), "postd_up"), 1);
	/* Every counter has HELP and TYPE lines. */
	for (int c = 0; c < METRIC_COUNTER_COUNT; c++) {
		char want[128];

		snprintf(want, sizeof(want), "# TYPE %s counter\n",
			 metrics_counter_name((enum metric_counter)c));
		assert_non_null(strstr(buf_data(b), want));
	}
	assert_null(strstr(buf_data(b), "imap"));

	/* The queue count (held entries too) is cached for a moment, then
	 * counted again. */
	snprintf(path, sizeof(path), "%s/hold", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/hold/Q9", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	buf_clear(b);
	assert_int_equal(metrics_export_write(&me, cfg, 1001, b), 0);
	assert_int_equal(metric_value(buf_data(b), "postd_queue_messages"), 3);
	buf_clear(b);
	assert_int_equal(
	    metrics_export_write(&me, cfg,
				 1000 + METRICS_EXPORT_QUEUE_CACHE_SECS, b),
	    0);
	assert_int_equal(metric_value(buf_data(b), "postd_queue_messages"), 4);

	/* An unreadable queue: the gauge is left out rather than 0. */
	buf_clear(b);
	close(me.queue_fd);
	me.queue_fd = open("/", O_RDONLY | O_DIRECTORY);
	assert_int_equal(metrics_export_write(&me, cfg, 5000, b), 0);
	assert_null(strstr(buf_data(b), "postd_queue_messages"));
	close(me.queue_fd);

	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/env/Q%d", dir, i);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/hold/Q9", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/hold", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/env/.hidden", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/env", dir);
	rmdir(path);
	rmdir(dir);
	buf_free(&b);
	config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_autoconfig_exact),
	    cmocka_unit_test(test_autoconfig_retention),
	    cmocka_unit_test(test_autoconfig_imap_only_when_served),
	    cmocka_unit_test(test_autoconfig_no_tls),
	    cmocka_unit_test(test_autoconfig_escape),
	    cmocka_unit_test(test_autoconfig_domain),
	    cmocka_unit_test(test_autodiscover_response_exact),
	    cmocka_unit_test(test_autodiscover_error_doc),
	    cmocka_unit_test(test_autodiscover_parse_table),
	    cmocka_unit_test(test_inv_s3_autodiscover_caps),
	    cmocka_unit_test(test_metrics_export),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
