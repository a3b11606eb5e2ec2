/*
 * Outlook Autodiscover, the plain-old-XML flavour: Outlook POSTs
 *   <Autodiscover xmlns="...outlook/requestschema/2006"><Request>
 *     <EMailAddress>a@b</EMailAddress>
 *     <AcceptableResponseSchema>...2006a</AcceptableResponseSchema>
 *   </Request></Autodiscover>
 * and expects the 2006a Account/Protocol settings. The request comes from
 * anyone on the network, so the parser is a bounded hand-written scanner
 * that understands only what this shape needs: no DTDs, no entities in
 * the fields, no CDATA, nothing that can expand (INV-S3).
 */
#include "proto/http/autodiscover.h"

#include <string.h>

enum autodiscover_field {
	AD_FIELD_NONE,
	AD_FIELD_EMAIL,
	AD_FIELD_SCHEMA,
};

struct autodiscover_parser {
	const char *p, *end;
	char stack[AUTODISCOVER_MAX_DEPTH][AUTODISCOVER_MAX_NAME + 1];
	size_t depth;
	size_t elements;
	bool root_seen, root_done, have_request, have_email, have_schema;
	enum autodiscover_field field;
	size_t field_len;
	struct autodiscover_request *req;
	const char *error;
};

static bool ad_starts(const struct autodiscover_parser *ps, const char *s);
static bool ad_is_space(char c);
static bool ad_is_name_char(char c);
static int ad_fail(struct autodiscover_parser *ps, const char *why);
static int ad_skip_past(struct autodiscover_parser *ps, const char *end_mark);
static int ad_name(struct autodiscover_parser *ps, char *name);
static const char *ad_local(const char *name);
static int ad_attributes(struct autodiscover_parser *ps, bool *self_close_r);
static int ad_open_tag(struct autodiscover_parser *ps);
static int ad_close_tag(struct autodiscover_parser *ps);
static int ad_text(struct autodiscover_parser *ps);
static int ad_field_end(struct autodiscover_parser *ps);
static int ad_protocol(struct buf *out, const struct config *cfg,
		       const struct autoconfig_server *s, const char *email);

static bool ad_starts(const struct autodiscover_parser *ps, const char *s)
{
	size_t n = strlen(s);

	return (size_t)(ps->end - ps->p) >= n && memcmp(ps->p, s, n) == 0;
}

static bool ad_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool ad_is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
	       c == ':';
}

static int ad_fail(struct autodiscover_parser *ps, const char *why)
{
	ps->error = why;
	return -1;
}

static int ad_skip_past(struct autodiscover_parser *ps, const char *end_mark)
{
	size_t n = strlen(end_mark);

	for (; ps->p < ps->end; ps->p++) {
		if (ad_starts(ps, end_mark)) {
			ps->p += n;
			return 0;
		}
	}
	return ad_fail(ps, "unterminated comment or declaration");
}

/* name has room for AUTODISCOVER_MAX_NAME bytes and a NUL. */
static int ad_name(struct autodiscover_parser *ps, char *name)
{
	size_t n = 0;

	while (ps->p < ps->end && ad_is_name_char(*ps->p)) {
		if (n == AUTODISCOVER_MAX_NAME)
			return ad_fail(ps, "element name too long");
		name[n++] = *ps->p++;
	}
	name[n] = '\0';
	return n == 0 ? ad_fail(ps, "bad element name") : 0;
}

/* Namespace prefixes do not matter: Outlook's come in both forms. */
static const char *ad_local(const char *name)
{
	const char *colon = strrchr(name, ':');

	return colon != NULL ? colon + 1 : name;
}

/* Skips attributes up to '>' or "/>"; their values are never used. */
static int ad_attributes(struct autodiscover_parser *ps, bool *self_close_r)
{
	char name[AUTODISCOVER_MAX_NAME + 1];

	*self_close_r = false;
	for (;;) {
		char quote;

		while (ps->p < ps->end && ad_is_space(*ps->p))
			ps->p++;
		if (ps->p >= ps->end)
			return ad_fail(ps, "unterminated tag");
		if (*ps->p == '>') {
			ps->p++;
			return 0;
		}
		if (ad_starts(ps, "/>")) {
			ps->p += 2;
			*self_close_r = true;
			return 0;
		}
		if (ad_name(ps, name) < 0)
			return ad_fail(ps, "bad attribute");
		while (ps->p < ps->end && ad_is_space(*ps->p))
			ps->p++;
		if (ps->p >= ps->end || *ps->p != '=')
			return ad_fail(ps, "attribute without a value");
		ps->p++;
		while (ps->p < ps->end && ad_is_space(*ps->p))
			ps->p++;
		if (ps->p >= ps->end || (*ps->p != '"' && *ps->p != '\''))
			return ad_fail(ps, "unquoted attribute value");
		quote = *ps->p++;
		while (ps->p < ps->end && *ps->p != quote) {
			if (*ps->p == '<')
				return ad_fail(ps, "'<' in an attribute");
			ps->p++;
		}
		if (ps->p >= ps->end)
			return ad_fail(ps, "unterminated attribute value");
		ps->p++;
	}
}

static int ad_open_tag(struct autodiscover_parser *ps)
{
	char name[AUTODISCOVER_MAX_NAME + 1];
	const char *local;
	bool self_close;

	ps->p++; /* '<' */
	if (ad_name(ps, name) < 0 || ad_attributes(ps, &self_close) < 0)
		return -1;
	local = ad_local(name);
	if (++ps->elements > AUTODISCOVER_MAX_ELEMENTS)
		return ad_fail(ps, "too many elements");
	if (ps->root_done)
		return ad_fail(ps, "a second root element");
	if (ps->field != AD_FIELD_NONE)
		return ad_fail(ps, "an element inside EMailAddress or "
				   "AcceptableResponseSchema");
	if (ps->depth == AUTODISCOVER_MAX_DEPTH)
		return ad_fail(ps, "elements nested too deeply");
	if (ps->depth == 0) {
		if (strcmp(local, "Autodiscover") != 0)
			return ad_fail(ps, "the root is not Autodiscover");
		ps->root_seen = true;
	} else if (ps->depth == 1 && strcmp(local, "Request") == 0) {
		if (ps->have_request)
			return ad_fail(ps, "a second Request");
		ps->have_request = true;
	} else if (ps->depth == 2 &&
		   strcmp(ad_local(ps->stack[1]), "Request") == 0) {
		if (strcmp(local, "EMailAddress") == 0) {
			if (ps->have_email)
				return ad_fail(ps, "a second EMailAddress");
			ps->field = AD_FIELD_EMAIL;
		} else if (strcmp(local, "AcceptableResponseSchema") == 0) {
			if (ps->have_schema)
				return ad_fail(ps, "a second "
						   "AcceptableResponseSchema");
			ps->field = AD_FIELD_SCHEMA;
		}
		ps->field_len = 0;
	}
	if (self_close) {
		if (ps->depth == 0)
			ps->root_done = true;
		return ps->field != AD_FIELD_NONE ? ad_field_end(ps) : 0;
	}
	memcpy(ps->stack[ps->depth++], name, strlen(name) + 1);
	return 0;
}

static int ad_close_tag(struct autodiscover_parser *ps)
{
	char name[AUTODISCOVER_MAX_NAME + 1];

	ps->p += 2; /* "</" */
	if (ad_name(ps, name) < 0)
		return -1;
	while (ps->p < ps->end && ad_is_space(*ps->p))
		ps->p++;
	if (ps->p >= ps->end || *ps->p != '>')
		return ad_fail(ps, "bad end tag");
	ps->p++;
	if (ps->depth == 0 || strcmp(ps->stack[ps->depth - 1], name) != 0)
		return ad_fail(ps, "mismatched end tag");
	ps->depth--;
	if (ps->depth == 0)
		ps->root_done = true;
	if (ps->depth == 2 && ps->field != AD_FIELD_NONE)
		return ad_field_end(ps);
	return 0;
}

/* Trims trailing whitespace (leading whitespace was never stored). */
static int ad_field_end(struct autodiscover_parser *ps)
{
	char *dst =
	    ps->field == AD_FIELD_EMAIL ? ps->req->email : ps->req->schema;

	while (ps->field_len > 0 && ad_is_space(dst[ps->field_len - 1]))
		ps->field_len--;
	dst[ps->field_len] = '\0';
	if (ps->field == AD_FIELD_EMAIL)
		ps->have_email = true;
	else
		ps->have_schema = true;
	ps->field = AD_FIELD_NONE;
	return 0;
}

static int ad_text(struct autodiscover_parser *ps)
{
	char *dst =
	    ps->field == AD_FIELD_EMAIL ? ps->req->email : ps->req->schema;
	size_t max = ps->field == AD_FIELD_EMAIL ? AUTODISCOVER_MAX_EMAIL
						 : AUTODISCOVER_MAX_SCHEMA;

	for (; ps->p < ps->end && *ps->p != '<'; ps->p++) {
		char c = *ps->p;

		if (ps->field == AD_FIELD_NONE) {
			if (ps->depth == 0 && !ad_is_space(c))
				return ad_fail(ps, "text outside the root");
			continue;
		}
		/* Entities could spell anything; no client needs them in
		 * an address or a schema URL. */
		if (c == '&')
			return ad_fail(ps, "entity reference in a field");
		if ((unsigned char)c < 0x20 && !ad_is_space(c))
			return ad_fail(ps, "control character in a field");
		if (ps->field_len == 0 && ad_is_space(c))
			continue;
		if (ps->field_len == max)
			return ad_fail(ps, ps->field == AD_FIELD_EMAIL
					       ? "EMailAddress too long"
					       : "schema too long");
		dst[ps->field_len++] = c;
	}
	return 0;
}

int autodiscover_parse(const char *body, size_t len,
		       struct autodiscover_request *req, const char **error_r)
{
	struct autodiscover_parser ps;
	int rc = 0;

	memset(&ps, 0, sizeof(ps));
	memset(req, 0, sizeof(*req));
	ps.p = body;
	ps.end = body + len;
	ps.req = req;
	if (len > AUTODISCOVER_MAX_REQUEST)
		rc = ad_fail(&ps, "request too large");
	else if (memchr(body, '\0', len) != NULL)
		rc = ad_fail(&ps, "NUL byte in the request");
	if (rc == 0 && ad_starts(&ps, "\xef\xbb\xbf"))
		ps.p += 3; /* a UTF-8 byte order mark */
	while (rc == 0 && ps.p < ps.end) {
		if (*ps.p != '<')
			rc = ad_text(&ps);
		else if (ad_starts(&ps, "<!--"))
			rc = ad_skip_past(&ps, "-->");
		else if (ad_starts(&ps, "<?"))
			rc = ps.root_seen ? ad_fail(&ps, "misplaced <?")
					  : ad_skip_past(&ps, "?>");
		else if (ad_starts(&ps, "<!"))
			rc = ad_fail(&ps, "DOCTYPE and CDATA are not accepted");
		else if (ad_starts(&ps, "</"))
			rc = ad_close_tag(&ps);
		else
			rc = ad_open_tag(&ps);
	}
	if (rc == 0 && !ps.root_done)
		rc = ad_fail(&ps, ps.root_seen ? "unterminated element"
					       : "no Autodiscover element");
	if (rc == 0 && !ps.have_request)
		rc = ad_fail(&ps, "no Request element");
	if (rc == 0 && (!ps.have_email || req->email[0] == '\0'))
		rc = ad_fail(&ps, "no EMailAddress");
	if (rc == 0 && (!ps.have_schema || req->schema[0] == '\0'))
		rc = ad_fail(&ps, "no AcceptableResponseSchema");
	if (rc < 0) {
		memset(req, 0, sizeof(*req));
		*error_r = ps.error;
	}
	return rc;
}

static int ad_protocol(struct buf *out, const struct config *cfg,
		       const struct autoconfig_server *s, const char *email)
{
	const char *type =
	    s->proto == LISTEN_POP3 || s->proto == LISTEN_POP3S	  ? "POP3"
	    : s->proto == LISTEN_IMAP || s->proto == LISTEN_IMAPS ? "IMAP"
								  : "SMTP";
	const char *encryption = s->implicit_tls ? "SSL"
				 : s->starttls	 ? "TLS"
						 : "None";

	if (buf_printf(out,
		       "      <Protocol>\n"
		       "        <Type>%s</Type>\n"
		       "        <Server>",
		       type) < 0 ||
	    autoconfig_xml_append(out, cfg->hostname) < 0 ||
	    buf_printf(out, "</Server>\n        <Port>") < 0 ||
	    autoconfig_xml_append(out, s->port) < 0 ||
	    buf_printf(out, "</Port>\n        <LoginName>") < 0 ||
	    autoconfig_xml_append(out, email) < 0 ||
	    buf_printf(out,
		       "</LoginName>\n"
		       "        <DomainRequired>off</DomainRequired>\n"
		       "        <SPA>off</SPA>\n"
		       "        <SSL>%s</SSL>\n"
		       "        <Encryption>%s</Encryption>\n"
		       "        <AuthRequired>on</AuthRequired>\n"
		       "      </Protocol>\n",
		       s->implicit_tls || s->starttls ? "on" : "off",
		       encryption) < 0)
		return -1;
	return 0;
}

int autodiscover_response(const struct config *cfg,
			  autoconfig_served_fn *served, const char *email,
			  struct buf *out)
{
	struct autoconfig_server servers[AUTOCONFIG_MAX_SERVERS];
	size_t n =
	    autoconfig_servers(cfg, served, servers, AUTOCONFIG_MAX_SERVERS);

	if (buf_append_str(
		out,
		"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		"<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
		"autodiscover/responseschema/2006\">\n"
		"  <Response xmlns=\"" AUTODISCOVER_SCHEMA_2006A "\">\n"
		"    <User>\n"
		"      <DisplayName>") < 0 ||
	    autoconfig_xml_append(out, email) < 0 ||
	    buf_append_str(out, "</DisplayName>\n"
				"    </User>\n"
				"    <Account>\n"
				"      <AccountType>email</AccountType>\n"
				"      <Action>settings</Action>\n") < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (ad_protocol(out, cfg, &servers[i], email) < 0)
			return -1;
	}
	return buf_append_str(out, "    </Account>\n"
				   "  </Response>\n"
				   "</Autodiscover>\n");
}

int autodiscover_error(int code, const char *message, struct buf *out)
{
	if (buf_printf(out,
		       "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		       "<Autodiscover xmlns=\"http://schemas.microsoft.com/"
		       "exchange/autodiscover/responseschema/2006\">\n"
		       "  <Response>\n"
		       "    <Error Id=\"0\">\n"
		       "      <ErrorCode>%d</ErrorCode>\n"
		       "      <Message>",
		       code) < 0 ||
	    autoconfig_xml_append(out, message) < 0 ||
	    buf_append_str(out, "</Message>\n"
				"      <DebugData />\n"
				"    </Error>\n"
				"  </Response>\n"
				"</Autodiscover>\n") < 0)
		return -1;
	return 0;
}
