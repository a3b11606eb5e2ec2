/*
 * The pure parsers of "postctl check" (see postctl_check_parse.h). Every input
 * here came from a server we are diagnosing, which may be broken or
 * hostile: lengths are counted, never trusted.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "lib/log.h"
#include "lib/parse.h"
#include "cli/postctl_check_parse.h"

struct check_scheme {
	const char *name;
	enum check_proto proto;
	bool implicit_tls;
	bool submission;
	uint16_t port;
};

static const struct check_scheme check_schemes[] = {
    {"pop3", CHECK_PROTO_POP3, false, false, 110},
    {"pop3s", CHECK_PROTO_POP3, true, false, 995},
    {"imap", CHECK_PROTO_IMAP, false, false, 143},
    {"imaps", CHECK_PROTO_IMAP, true, false, 993},
    {"smtp", CHECK_PROTO_SMTP, false, false, 25},
    {"submission", CHECK_PROTO_SMTP, false, true, 587},
    {"submissions", CHECK_PROTO_SMTP, true, true, 465},
};
#define CHECK_SCHEME_COUNT (sizeof(check_schemes) / sizeof(check_schemes[0]))

struct check_code_text {
	const char *code;
	const char *text;
};

static const struct check_code_text check_code_texts[] = {
    {"AUTH", "the server rejected the user name or password (RFC 3206 "
	     "[AUTH]): check both, and the form of the user name "
	     "(often the full address)"},
    {"AUTHENTICATIONFAILED",
     "the server rejected the user name or password (RFC 5530): check "
     "both, and the form of the user name (often the full address)"},
    {"AUTHORIZATIONFAILED", "the password is right but this user may not "
			    "use the account: ask the administrator"},
    {"IN-USE", "another session holds the mailbox (RFC 3206 [IN-USE]): "
	       "close other mail programs or wait for them to finish"},
    {"LOGIN-DELAY", "you logged in too soon after the last time (RFC 2449 "
		    "LOGIN-DELAY): check less often"},
    {"SYS/TEMP", "a temporary problem on the server (RFC 3206 "
		 "[SYS/TEMP]), such as a full disk: try again later, or "
		 "tell the administrator"},
    {"SYS/PERM", "a lasting problem on the server (RFC 3206 [SYS/PERM]): "
		 "tell the administrator"},
    {"UNAVAILABLE", "a temporary problem on the server (RFC 5530): try "
		    "again later"},
    {"EXPIRED", "the password or account has expired (RFC 5530): change "
		"it or ask the administrator"},
    {"PRIVACYREQUIRED", "the server wants TLS before a password (RFC "
			"5530): use an encrypted connection"},
    {"CONTACTADMIN", "the account needs attention: ask the "
		     "administrator"},
    {"LIMIT", "too many connections or commands (RFC 5530): close "
	      "other sessions and try again later"},
    {"UTF8", "the server needs UTF-8 enabled first (RFC 6856)"},
};
#define CHECK_CODE_COUNT                                                       \
	(sizeof(check_code_texts) / sizeof(check_code_texts[0]))

static const char check_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int check_hexval(char c);
static int check_url_parse_user(const char *s, size_t len, char *dst,
				size_t dstsize);
static int check_url_parse_hostport(const char *s, struct check_url *url,
				    const char **error_r);
static bool check_word_eq(const char *w, size_t len, const char *name);
static void check_caps_text_add(struct check_caps *c, const char *w,
				size_t len);
static void check_caps_sasl_mechs(struct check_caps *c, const char *p);
static void check_caps_imap_words(struct check_caps *c, const char *p,
				  char end);

static int check_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* %XX decoding; a decoded NUL, CR or LF would end up in a command. */
static int check_url_parse_user(const char *s, size_t len, char *dst,
				size_t dstsize)
{
	size_t o = 0;
	int hi, lo;
	char c;

	for (size_t i = 0; i < len; i++) {
		c = s[i];
		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			hi = check_hexval(s[i + 1]);
			lo = check_hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if ((unsigned char)c < 0x21 || c == 0x7f)
			return -1;
		if (o + 1 >= dstsize)
			return -1;
		dst[o++] = c;
	}
	if (o == 0)
		return -1;
	dst[o] = '\0';
	return 0;
}

static int check_url_parse_hostport(const char *s, struct check_url *url,
				    const char **error_r)
{
	const char *end, *port = NULL;
	size_t hlen;
	uint32_t v;

	if (*s == '[') {
		end = strchr(s, ']');
		if (end == NULL) {
			*error_r = "an IPv6 address needs a closing ']'";
			return -1;
		}
		s++;
		hlen = (size_t)(end - s);
		url->host_is_ipv6 = true;
		end++;
		if (*end == ':')
			port = end + 1;
		else if (*end != '\0') {
			*error_r = "unexpected text after the IPv6 address";
			return -1;
		}
	} else {
		end = strchr(s, ':');
		hlen = end != NULL ? (size_t)(end - s) : strlen(s);
		if (end != NULL)
			port = end + 1;
	}
	if (hlen == 0 || hlen > CHECK_MAX_HOST) {
		*error_r = "the host name is missing or too long";
		return -1;
	}
	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_' ||
		      (url->host_is_ipv6 && (c == ':' || c == '%')))) {
			*error_r = "the host name holds a character that no "
				   "host name has";
			return -1;
		}
	}
	memcpy(url->host, s, hlen);
	url->host[hlen] = '\0';
	if (port != NULL) {
		if (parse_uint32(&port, 65535, &v) < 0 || v == 0 ||
		    parse_end(&port) < 0) {
			*error_r = "the port must be a number from 1 to 65535";
			return -1;
		}
		url->port = (uint16_t)v;
	}
	return 0;
}

int check_url_parse(const char *s, struct check_url *url_r,
		    const char **error_r)
{
	const struct check_scheme *sc = NULL;
	char hostport[CHECK_MAX_HOST + 16];
	const char *sep, *auth, *at = NULL, *slash;
	size_t alen;

	memset(url_r, 0, sizeof(*url_r));
	sep = strstr(s, "://");
	if (sep == NULL) {
		*error_r = "expected SCHEME://USER@HOST, e.g. "
			   "pop3s://alice@example.org";
		return -1;
	}
	for (size_t i = 0; i < CHECK_SCHEME_COUNT; i++) {
		size_t n = strlen(check_schemes[i].name);

		if ((size_t)(sep - s) == n &&
		    ascii_strncaseeq(s, check_schemes[i].name, n))
			sc = &check_schemes[i];
	}
	if (sc == NULL) {
		*error_r = "unknown scheme: use pop3, pop3s, imap, imaps, "
			   "smtp, submission or submissions";
		return -1;
	}
	url_r->proto = sc->proto;
	url_r->implicit_tls = sc->implicit_tls;
	url_r->submission = sc->submission;
	url_r->scheme = sc->name;
	url_r->port = sc->port;
	auth = sep + 3;
	/* The authority ends at the first '/' after the last '@'; a path is
	 * allowed only as a lone "/". */
	for (const char *p = auth; *p != '\0'; p++)
		if (*p == '@')
			at = p;
	slash = strchr(at != NULL ? at : auth, '/');
	alen = slash != NULL ? (size_t)(slash - auth) : strlen(auth);
	if (slash != NULL && slash[1] != '\0') {
		*error_r = "a path after the host is not supported";
		return -1;
	}
	if (at != NULL) {
		if (check_url_parse_user(auth, (size_t)(at - auth), url_r->user,
					 sizeof(url_r->user)) < 0) {
			*error_r = "the user name is empty, too long, or holds "
				   "a space, control byte or bad %XX escape";
			return -1;
		}
		url_r->has_user = true;
		alen -= (size_t)(at + 1 - auth);
		auth = at + 1;
	}
	if (alen >= sizeof(hostport)) {
		*error_r = "the host name is missing or too long";
		return -1;
	}
	memcpy(hostport, auth, alen);
	hostport[alen] = '\0';
	return check_url_parse_hostport(hostport, url_r, error_r);
}

const char *check_url_user_domain(const struct check_url *url)
{
	const char *at;

	if (!url->has_user)
		return NULL;
	at = strrchr(url->user, '@');
	if (at == NULL || at[1] == '\0')
		return NULL;
	return at + 1;
}

void check_line_reset(struct check_line *lb)
{
	lb->len = 0;
	lb->bad = false;
	lb->line[0] = '\0';
}

int check_line_feed(struct check_line *lb, const char *data, size_t len,
		    size_t *used_r)
{
	size_t i;

	for (i = 0; i < len; i++) {
		char c = data[i];

		if (c == '\n') {
			*used_r = i + 1;
			if (lb->len > 0 && lb->line[lb->len - 1] == '\r')
				lb->len--;
			lb->line[lb->len] = '\0';
			return lb->bad || lb->len > CHECK_MAX_LINE ? -1 : 1;
		}
		if (c == '\0')
			lb->bad = true;
		if (lb->len > CHECK_MAX_LINE) {
			/* Report at once: the rest may never end. */
			*used_r = i;
			lb->line[lb->len] = '\0';
			return -1;
		}
		lb->line[lb->len++] = c;
	}
	*used_r = len;
	lb->line[lb->len] = '\0';
	return 0;
}

enum check_greeting check_greeting_classify(const char *line, size_t len)
{
	if (len >= 1 &&
	    ((unsigned char)line[0] == 0x15 || (unsigned char)line[0] == 0x16))
		return CHECK_GREET_TLS;
	if (len >= 3 && memcmp(line, "+OK", 3) == 0 &&
	    (len == 3 || line[3] == ' '))
		return CHECK_GREET_POP3_OK;
	if (len >= 4 && memcmp(line, "-ERR", 4) == 0 &&
	    (len == 4 || line[4] == ' '))
		return CHECK_GREET_POP3_ERR;
	if (len >= 5 && ascii_strncaseeq(line, "* OK ", 5))
		return CHECK_GREET_IMAP_OK;
	if (len == 4 && ascii_strncaseeq(line, "* OK", 4))
		return CHECK_GREET_IMAP_OK;
	if (len >= 9 && ascii_strncaseeq(line, "* PREAUTH", 9))
		return CHECK_GREET_IMAP_PREAUTH;
	if (len >= 5 && ascii_strncaseeq(line, "* BYE", 5))
		return CHECK_GREET_IMAP_BYE;
	if (len >= 5 && ascii_strncaseeq(line, "HTTP/", 5))
		return CHECK_GREET_HTTP;
	if (len >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' &&
	    line[1] <= '9' && line[2] >= '0' && line[2] <= '9' &&
	    (len == 3 || line[3] == ' ' || line[3] == '-')) {
		if (memcmp(line, "220", 3) == 0)
			return CHECK_GREET_SMTP_OK;
		if (memcmp(line, "421", 3) == 0 || memcmp(line, "554", 3) == 0)
			return CHECK_GREET_SMTP_REFUSED;
	}
	return CHECK_GREET_UNKNOWN;
}

int check_greeting_proto(enum check_greeting g)
{
	switch (g) {
	case CHECK_GREET_POP3_OK:
	case CHECK_GREET_POP3_ERR:
		return CHECK_PROTO_POP3;
	case CHECK_GREET_IMAP_OK:
	case CHECK_GREET_IMAP_PREAUTH:
	case CHECK_GREET_IMAP_BYE:
		return CHECK_PROTO_IMAP;
	case CHECK_GREET_SMTP_OK:
	case CHECK_GREET_SMTP_REFUSED:
		return CHECK_PROTO_SMTP;
	default:
		return -1;
	}
}

int check_pop3_status(const char *line, const char **text_r)
{
	int st;
	size_t n;

	if (strncmp(line, "+OK", 3) == 0) {
		st = 1;
		n = 3;
	} else if (strncmp(line, "-ERR", 4) == 0) {
		st = 0;
		n = 4;
	} else {
		*text_r = line;
		return -1;
	}
	if (line[n] != '\0' && line[n] != ' ') {
		*text_r = line;
		return -1;
	}
	*text_r = line[n] == ' ' ? line + n + 1 : line + n;
	return st;
}

void check_smtp_reply_reset(struct check_smtp_reply *r)
{
	r->code = 0;
	r->lines = 0;
	r->text[0] = '\0';
}

int check_smtp_reply_line(struct check_smtp_reply *r, const char *line)
{
	size_t len = strlen(line);
	int code;

	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '9' || line[2] < '0' || line[2] > '9')
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->lines > 0 && code != r->code)
		return -1;
	if (++r->lines > CHECK_MAX_REPLY_LINES)
		return -1;
	r->code = code;
	if (len > 4)
		memcpy(r->text, line + 4, len - 4 + 1);
	else
		r->text[0] = '\0';
	return len > 3 && line[3] == '-' ? 0 : 1;
}

int check_imap_tagged(const char *line, const char *tag,
		      enum check_imap_status *status_r, const char **text_r)
{
	size_t tlen = strlen(tag);
	const char *p;

	*text_r = line;
	if (line[0] == '*' || line[0] == '+')
		return 0;
	if (strncmp(line, tag, tlen) != 0 || line[tlen] != ' ')
		return -1;
	p = line + tlen + 1;
	if (ascii_strncaseeq(p, "OK", 2))
		*status_r = CHECK_IMAP_OK;
	else if (ascii_strncaseeq(p, "NO", 2))
		*status_r = CHECK_IMAP_NO;
	else if (ascii_strncaseeq(p, "BAD", 3))
		*status_r = CHECK_IMAP_BAD;
	else
		return -1;
	p += *status_r == CHECK_IMAP_BAD ? 3 : 2;
	if (*p != '\0' && *p != ' ')
		return -1;
	*text_r = *p == ' ' ? p + 1 : p;
	return 1;
}

int check_imap_exists(const char *line, uint32_t *n_r)
{
	const char *p = line;
	uint32_t n;

	if (strncmp(p, "* ", 2) != 0)
		return 0;
	p += 2;
	if (parse_uint32(&p, UINT32_MAX, &n) < 0)
		return 0;
	if (!ascii_strncaseeq(p, " EXISTS", 7) || p[7] != '\0')
		return 0;
	*n_r = n;
	return 1;
}

int check_resp_code(const char *text, char *code, size_t codesize)
{
	size_t n = 0;

	if (codesize > 0)
		code[0] = '\0';
	if (text[0] != '[' || codesize == 0)
		return 0;
	for (const char *p = text + 1; *p != '\0' && *p != ']' && *p != ' ';
	     p++) {
		char c = *p;

		if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e ||
		    n + 1 >= codesize) {
			code[0] = '\0';
			return 0;
		}
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		code[n++] = c;
	}
	code[n] = '\0';
	return n > 0 ? 1 : 0;
}

const char *check_resp_code_explain(const char *code)
{
	for (size_t i = 0; i < CHECK_CODE_COUNT; i++)
		if (strcmp(code, check_code_texts[i].code) == 0)
			return check_code_texts[i].text;
	return NULL;
}

int check_smtp_enhanced(const char *text, char *code, size_t codesize)
{
	const char *p = text;
	uint32_t a, b, c;
	int n;

	if (codesize > 0)
		code[0] = '\0';
	if (*p < '2' || *p > '5' || p[1] != '.')
		return 0;
	a = (uint32_t)(*p - '0');
	p += 2;
	if (parse_uint32(&p, 999, &b) < 0 || *p != '.')
		return 0;
	p++;
	if (parse_uint32(&p, 999, &c) < 0 || (*p != '\0' && *p != ' '))
		return 0;
	n = snprintf(code, codesize, "%u.%u.%u", a, b, c);
	if (n < 0 || (size_t)n >= codesize) {
		if (codesize > 0)
			code[0] = '\0';
		return 0;
	}
	return 1;
}

const char *check_smtp_auth_explain(int code, const char *enhanced)
{
	if (strcmp(enhanced, "5.7.8") == 0 || code == 535)
		return "the server rejected the user name or password "
		       "(535 5.7.8): check both, and the form of the user "
		       "name (often the full address)";
	if (strcmp(enhanced, "5.7.0") == 0 || code == 530)
		return "the server wants encryption or another step before "
		       "login (530): use submissions:// or STARTTLS";
	if (strcmp(enhanced, "5.7.9") == 0 || code == 534)
		return "the login method is too weak for this account (534 "
		       "5.7.9)";
	if (strcmp(enhanced, "4.7.0") == 0 || code == 454)
		return "a temporary problem on the server (454): try again "
		       "later, or tell the administrator";
	if (code == 504)
		return "the server does not support this login method (504)";
	if (code == 503)
		return "the server refused AUTH at this point (503): perhaps "
		       "AUTH is not offered on this port";
	if (code == 538)
		return "the server wants encryption before a password (538)";
	if (code >= 400 && code < 500)
		return "a temporary problem on the server: try again later";
	return NULL;
}

void check_caps_reset(struct check_caps *c)
{
	memset(c, 0, sizeof(*c));
}

static bool check_word_eq(const char *w, size_t len, const char *name)
{
	return strlen(name) == len && ascii_strncaseeq(w, name, len);
}

static void check_caps_text_add(struct check_caps *c, const char *w, size_t len)
{
	char esc[CHECK_MAX_ESCAPED];
	size_t have = strlen(c->text), add;

	check_escape(esc, sizeof(esc), w, len);
	add = strlen(esc);
	if (have + (have > 0) + add > CHECK_MAX_CAPS_TEXT)
		return;
	if (have > 0)
		c->text[have++] = ' ';
	memcpy(c->text + have, esc, add + 1);
}

/* Space-separated SASL mechanisms. */
static void check_caps_sasl_mechs(struct check_caps *c, const char *p)
{
	while (*p != '\0') {
		const char *w;
		size_t n;

		while (*p == ' ')
			p++;
		w = p;
		while (*p != '\0' && *p != ' ')
			p++;
		n = (size_t)(p - w);
		if (n == 0)
			break;
		c->auth_any = true;
		if (check_word_eq(w, n, "PLAIN"))
			c->auth_plain = true;
		else if (check_word_eq(w, n, "LOGIN"))
			c->auth_login = true;
	}
}

void check_caps_pop3_line(struct check_caps *c, const char *line)
{
	const char *sp = strchr(line, ' ');
	size_t n = sp != NULL ? (size_t)(sp - line) : strlen(line);

	c->seen = true;
	if (n == 0)
		return;
	check_caps_text_add(c, line, strlen(line));
	if (check_word_eq(line, n, "STLS"))
		c->starttls = true;
	else if (check_word_eq(line, n, "USER"))
		c->user = true;
	else if (check_word_eq(line, n, "SASL") && sp != NULL)
		check_caps_sasl_mechs(c, sp + 1);
}

void check_caps_ehlo_line(struct check_caps *c, const char *text, bool first)
{
	const char *sp = strchr(text, ' ');
	size_t n = sp != NULL ? (size_t)(sp - text) : strlen(text);

	c->seen = true;
	if (first || n == 0)
		return;
	check_caps_text_add(c, text, strlen(text));
	if (check_word_eq(text, n, "STARTTLS"))
		c->starttls = true;
	else if (check_word_eq(text, n, "AUTH") && sp != NULL)
		check_caps_sasl_mechs(c, sp + 1);
}

/* Words up to end ('\0' or ']'). */
static void check_caps_imap_words(struct check_caps *c, const char *p, char end)
{
	while (*p != '\0' && *p != end) {
		const char *w;
		size_t n;

		while (*p == ' ')
			p++;
		w = p;
		while (*p != '\0' && *p != ' ' && *p != end)
			p++;
		n = (size_t)(p - w);
		if (n == 0)
			break;
		check_caps_text_add(c, w, n);
		if (check_word_eq(w, n, "STARTTLS"))
			c->starttls = true;
		else if (check_word_eq(w, n, "LOGINDISABLED"))
			c->logindisabled = true;
		else if (check_word_eq(w, n, "IMAP4rev1"))
			c->imap4rev1 = true;
		else if (check_word_eq(w, n, "SASL-IR"))
			c->sasl_ir = true;
		else if (n > 5 && ascii_strncaseeq(w, "AUTH=", 5)) {
			c->auth_any = true;
			if (check_word_eq(w + 5, n - 5, "PLAIN"))
				c->auth_plain = true;
			else if (check_word_eq(w + 5, n - 5, "LOGIN"))
				c->auth_login = true;
		}
	}
}

int check_caps_imap_line(struct check_caps *c, const char *line)
{
	const char *p;

	if (ascii_strncaseeq(line, "* CAPABILITY ", 13)) {
		p = line + 13;
		check_caps_reset(c);
		c->seen = true;
		check_caps_imap_words(c, p, '\0');
		return 1;
	}
	if (!ascii_strncaseeq(line, "* OK [CAPABILITY ", 17) &&
	    !ascii_strncaseeq(line, "* PREAUTH [CAPABILITY ", 22)) {
		/* A tagged OK can carry the list too: "a1 OK [CAPABILITY". */
		p = strchr(line, ' ');
		if (p == NULL || !ascii_strncaseeq(p, " OK [CAPABILITY ", 16))
			return 0;
		p += 16;
	} else {
		p = strchr(line, '[') + 12;
	}
	if (strchr(p, ']') == NULL)
		return 0;
	check_caps_reset(c);
	c->seen = true;
	check_caps_imap_words(c, p, ']');
	return 1;
}

int check_imap_quote(char *dst, size_t dstsize, const char *s)
{
	size_t o = 0;

	if (dstsize < 3)
		return -1;
	dst[o++] = '"';
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\r' || c == '\n' || c >= 0x80)
			return -1;
		if (c == '"' || c == '\\') {
			if (o + 1 >= dstsize)
				return -1;
			dst[o++] = '\\';
		}
		if (o + 2 >= dstsize)
			return -1;
		dst[o++] = (char)c;
	}
	dst[o++] = '"';
	dst[o] = '\0';
	return 0;
}

int check_base64(char *dst, size_t dstsize, const void *data, size_t len)
{
	const unsigned char *in = data;
	size_t need = (len + 2) / 3 * 4, o = 0;

	if (len > (SIZE_MAX - 2) / 4 * 3 - 3 || need + 1 > dstsize)
		return -1;
	for (size_t i = 0; i < len; i += 3) {
		unsigned int v = (unsigned int)in[i] << 16;

		if (i + 1 < len)
			v |= (unsigned int)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		dst[o++] = check_b64[(v >> 18) & 63];
		dst[o++] = check_b64[(v >> 12) & 63];
		dst[o++] = i + 1 < len ? check_b64[(v >> 6) & 63] : '=';
		dst[o++] = i + 2 < len ? check_b64[v & 63] : '=';
	}
	dst[o] = '\0';
	return (int)o;
}

int check_sasl_plain(char *dst, size_t dstsize, const char *user,
		     const char *pass, size_t passlen)
{
	unsigned char raw[AUTH_MAX_USER + AUTH_MAX_PASSWORD + 2];
	size_t ulen = strlen(user), n = 0;
	int r;

	if (ulen > AUTH_MAX_USER || passlen > AUTH_MAX_PASSWORD)
		return -1;
	raw[n++] = '\0';
	memcpy(raw + n, user, ulen);
	n += ulen;
	raw[n++] = '\0';
	memcpy(raw + n, pass, passlen);
	n += passlen;
	r = check_base64(dst, dstsize, raw, n);
	OPENSSL_cleanse(raw, sizeof(raw));
	return r;
}

char *check_escape(char *dst, size_t dstsize, const char *src, size_t len)
{
	size_t cut = len;

	if (dstsize == 0)
		return dst;
	/* log_escape writes at most 4 bytes per input byte; keep room for
	 * "..." when the text does not fit. */
	if (dstsize > 8 && len > (dstsize - 1) / 4)
		cut = (dstsize - 4) / 4;
	log_escape(dst, cut < len ? dstsize - 3 : dstsize, src, cut);
	if (cut < len) {
		size_t n = strlen(dst);

		memcpy(dst + n, "...", 4);
	}
	return dst;
}
