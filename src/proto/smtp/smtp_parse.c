#include "proto/smtp/smtp_parse.h"

#include <arpa/inet.h>
#include <string.h>

#include "lib/parse.h"

/* Reply texts (RFC 5321 section 4.2, RFC 3463 enhanced codes). */
#define R_UNKNOWN "500 5.5.2 Syntax error, command unrecognized"
/* A NUL is a syntax error in what the client sent, not an unknown verb. */
#define R_NUL "501 5.5.2 NUL byte in command"
#define R_BARE_EOL "500 5.5.2 Bare CR or LF in command"
#define R_TOO_LONG "500 5.5.2 Line too long"
#define R_SYNTAX "501 5.5.4 Syntax error in parameters or arguments"
#define R_BAD_SENDER "501 5.1.7 Bad sender address syntax"
#define R_BAD_RCPT "501 5.1.3 Bad recipient address syntax"
#define R_LONG_SENDER "501 5.1.7 Path too long"
#define R_LONG_RCPT "501 5.1.3 Path too long"
#define R_NON_ASCII "553 5.6.7 Non-ASCII address requires SMTPUTF8"
#define R_BAD_PARAM "555 5.5.4 Unsupported parameter"
#define R_DUP_PARAM "501 5.5.4 Duplicate parameter"
#define R_TOO_BIG "552 5.3.4 Message size exceeds fixed maximum message size"

/* What the path parser found wrong; the caller picks sender or
 * recipient wording. */
enum smtp_path_error {
	SMTP_PATH_OK,
	SMTP_PATH_SYNTAX,
	SMTP_PATH_TOO_LONG,
};

/* Which MAIL/RCPT parameters were seen, to refuse duplicates. */
enum smtp_param_bit {
	SMTP_P_SIZE = 1 << 0,
	SMTP_P_BODY = 1 << 1,
	SMTP_P_SMTPUTF8 = 1 << 2,
	SMTP_P_AUTH = 1 << 3,
	SMTP_P_RET = 1 << 4,
	SMTP_P_ENVID = 1 << 5,
	SMTP_P_NOTIFY = 1 << 6,
	SMTP_P_ORCPT = 1 << 7,
};

struct smtp_param_def {
	const char *name;
	unsigned bit;
	bool mail; /* allowed on MAIL (else on RCPT) */
};

/* DSN's RET, ENVID, NOTIFY and ORCPT (RFC 3461) are not here: postd
 * does not advertise DSN, and RFC 5321 section 4.1.1.11 wants 555 for a
 * parameter whose extension was not offered. */
static const struct smtp_param_def smtp_param_defs[] = {
    {"SIZE", SMTP_P_SIZE, true},
    {"BODY", SMTP_P_BODY, true},
    {"SMTPUTF8", SMTP_P_SMTPUTF8, true},
    {"AUTH", SMTP_P_AUTH, true},
};

/* Indexed by enum smtp_cmd. */
static const char *const smtp_verbs[SMTP_CMD_COUNT] = {
    [SMTP_CMD_HELO] = "HELO",	      [SMTP_CMD_EHLO] = "EHLO",
    [SMTP_CMD_MAIL] = "MAIL",	      [SMTP_CMD_RCPT] = "RCPT",
    [SMTP_CMD_DATA] = "DATA",	      [SMTP_CMD_BDAT] = "BDAT",
    [SMTP_CMD_RSET] = "RSET",	      [SMTP_CMD_NOOP] = "NOOP",
    [SMTP_CMD_QUIT] = "QUIT",	      [SMTP_CMD_VRFY] = "VRFY",
    [SMTP_CMD_EXPN] = "EXPN",	      [SMTP_CMD_HELP] = "HELP",
    [SMTP_CMD_STARTTLS] = "STARTTLS", [SMTP_CMD_AUTH] = "AUTH",
};

static bool smtp_is_alpha(unsigned char c);
static bool smtp_is_digit(unsigned char c);
static bool smtp_is_atext(unsigned char c);
static bool smtp_is_qtext(unsigned char c);
static bool smtp_is_dcontent(unsigned char c);
static size_t smtp_utf8_seq(const unsigned char *s, size_t len);
static int smtp_find_verb(const char *word, size_t len, enum smtp_cmd *cmd_r);
static bool smtp_skip_ci(const char **p, const char *lit);
static int smtp_parse_domain(const char **p, bool allow_utf8,
			     bool allow_underscore, char *dst, size_t *len_r);
static int smtp_parse_literal(const char **p, char *dst, size_t *len_r);
static bool smtp_ipv4_valid(const char *s, size_t len);
static int smtp_parse_local(const char **p, struct smtp_path *path);
static enum smtp_path_error smtp_parse_path(const char **p, bool mail,
					    struct smtp_path *path);
static enum smtp_parse_error smtp_parse_params(const char *p, bool mail,
					       struct smtp_params *params,
					       const char **error_r);
static enum smtp_parse_error
smtp_parse_param(const char *kw, size_t kw_len, const char *val, size_t val_len,
		 bool has_val, bool mail, unsigned *seen,
		 struct smtp_params *params, const char **error_r);
static enum smtp_parse_error smtp_parse_mail_rcpt(char *args, unsigned flags,
						  struct smtp_command *cmd,
						  const char **error_r);
static enum smtp_parse_error
smtp_parse_helo(char *args, struct smtp_command *cmd, const char **error_r);
static enum smtp_parse_error
smtp_parse_bdat(char *args, struct smtp_command *cmd, const char **error_r);
static enum smtp_parse_error
smtp_parse_auth(char *args, struct smtp_command *cmd, const char **error_r);
static enum smtp_parse_error smtp_parse_args(char *args, unsigned flags,
					     struct smtp_command *cmd,
					     const char **error_r);
static bool smtp_is_dot_string(const char *s, size_t len);

const char *smtp_cmd_name(enum smtp_cmd cmd)
{
	return cmd < SMTP_CMD_COUNT ? smtp_verbs[cmd] : "?";
}

static bool smtp_is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool smtp_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5321 atext (via RFC 5322 section 3.2.3), plus the first and
 * continuation bytes of UTF-8 (RFC 6531 section 3.3: atext =/
 * UTF8-non-ascii); the path as a whole is checked to be valid UTF-8. */
static bool smtp_is_atext(unsigned char c)
{
	if (smtp_is_alpha(c) || smtp_is_digit(c) || c >= 0x80)
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF-8 (RFC 6531). */
static bool smtp_is_qtext(unsigned char c)
{
	return (c >= 32 && c <= 126 && c != '"' && c != '\\') || c >= 0x80;
}

/* dcontent = %d33-90 / %d94-126 (RFC 5321 section 4.1.3). */
static bool smtp_is_dcontent(unsigned char c)
{
	return (c >= 33 && c <= 90) || (c >= 94 && c <= 126);
}

/* The length of the well-formed UTF-8 sequence at s (RFC 3629 section
 * 4's table, which leaves out overlongs and surrogates), or 0. */
static size_t smtp_utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (n > len)
		return 0;
	if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	/* C1 controls U+0080..U+009F are 0xc2 0x80..0x9f. */
	if (c == 0xc2 && s[1] < 0xa0)
		return 0;
	return n;
}

bool smtp_utf8_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		if (u[i] < 0x80) {
			if (u[i] < 0x20 || u[i] == 0x7f)
				return false;
			i++;
			continue;
		}
		size_t n = smtp_utf8_seq(u + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static int smtp_find_verb(const char *word, size_t len, enum smtp_cmd *cmd_r)
{
	for (int i = 0; i < SMTP_CMD_COUNT; i++) {
		if (strlen(smtp_verbs[i]) == len &&
		    ascii_strncaseeq(word, smtp_verbs[i], len)) {
			*cmd_r = (enum smtp_cmd)i;
			return 0;
		}
	}
	return -1;
}

/* Advances past lit (ASCII, case-insensitive) if *p starts with it. */
static bool smtp_skip_ci(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (!ascii_strncaseeq(*p, lit, n))
		return false;
	*p += n;
	return true;
}

/*
 * Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]
 * (RFC 5321 section 4.1.2), with U-labels as UTF-8 bytes when allow_utf8
 * (RFC 6531 section 3.3) and '_' when allow_underscore (HELO names in the
 * wild). Copies it to dst (SMTP_MAX_DOMAIN + 1 bytes) when dst is not
 * NULL. Returns 0 and advances, or -1.
 */
static int smtp_parse_domain(const char **p, bool allow_utf8,
			     bool allow_underscore, char *dst, size_t *len_r)
{
	const unsigned char *s = (const unsigned char *)*p;
	size_t n = 0;

	for (;;) {
		size_t label = 0;
		bool ascii = true;

		while (smtp_is_alpha(s[n]) || smtp_is_digit(s[n]) ||
		       s[n] == '-' || (allow_underscore && s[n] == '_') ||
		       (allow_utf8 && s[n] >= 0x80)) {
			if (s[n] >= 0x80)
				ascii = false;
			n++;
			label++;
		}
		/* A label neither starts nor ends with '-'. */
		if (label == 0 || s[n - label] == '-' || s[n - 1] == '-')
			return -1;
		/* A U-label's octets are not its A-label's: only the
		 * domain cap applies to it. */
		if (ascii && label > SMTP_MAX_LABEL)
			return -1;
		if (n > SMTP_MAX_DOMAIN)
			return -1;
		if (s[n] != '.')
			break;
		n++;
	}
	if (dst != NULL) {
		memcpy(dst, s, n);
		dst[n] = '\0';
	}
	if (len_r != NULL)
		*len_r = n;
	*p += n;
	return 0;
}

/* IPv4-address-literal = Snum 3("." Snum); Snum = 1*3DIGIT, 0..255. */
static bool smtp_ipv4_valid(const char *s, size_t len)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t digits = 0;

		if (part > 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
		while (i < len && smtp_is_digit((unsigned char)s[i]) &&
		       digits < 3) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0 || v > 255)
			return false;
	}
	return i == len;
}

/*
 * address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 * General-address-literal ) "]" (RFC 5321 section 4.1.3). IPv6 is checked
 * with inet_pton(), which accepts exactly the RFC's IPv6-full, -comp and
 * the v4 forms. A General-address-literal is refused: IANA registers no
 * tag but IPv6. Copies the literal with its brackets to dst.
 */
static int smtp_parse_literal(const char **p, char *dst, size_t *len_r)
{
	const char *s = *p;
	char tmp[SMTP_MAX_DOMAIN + 1];
	struct in6_addr a6;
	size_t n = 1, inner;

	if (s[0] != '[')
		return -1;
	while (smtp_is_dcontent((unsigned char)s[n]))
		n++;
	if (s[n] != ']')
		return -1;
	inner = n - 1;
	n++;
	if (n > SMTP_MAX_DOMAIN || inner == 0)
		return -1;
	if (inner > 5 && ascii_strncaseeq(s + 1, "IPv6:", 5)) {
		memcpy(tmp, s + 6, inner - 5);
		tmp[inner - 5] = '\0';
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return -1;
	} else if (!smtp_ipv4_valid(s + 1, inner)) {
		return -1;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
	*len_r = n;
	*p += n;
	return 0;
}

/*
 * Local-part = Dot-string / Quoted-string. Copies the unquoted form to
 * path->local. The cap applies to the local part as sent (RFC 5321
 * section 4.5.3.1.1), so the copy always fits.
 */
static int smtp_parse_local(const char **p, struct smtp_path *path)
{
	const unsigned char *s = (const unsigned char *)*p;
	size_t n = 0, out = 0;

	if (s[0] == '"') {
		path->quoted = true;
		n = 1;
		for (;;) {
			if (n > SMTP_MAX_LOCALPART)
				return -1;
			if (s[n] == '"')
				break;
			if (s[n] == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (s[n + 1] < 32 || s[n + 1] > 126)
					return -1;
				n++;
			} else if (!smtp_is_qtext(s[n])) {
				return -1;
			}
			path->local[out++] = (char)s[n++];
		}
		n++;
	} else {
		for (;;) {
			size_t atom = 0;

			while (smtp_is_atext(s[n])) {
				if (n >= SMTP_MAX_LOCALPART)
					return -1;
				path->local[out++] = (char)s[n++];
				atom++;
			}
			if (atom == 0)
				return -1;
			if (s[n] != '.')
				break;
			if (n >= SMTP_MAX_LOCALPART)
				return -1;
			path->local[out++] = (char)s[n++];
		}
	}
	if (n > SMTP_MAX_LOCALPART)
		return -1;
	path->local[out] = '\0';
	path->local_len = out;
	*p += n;
	return 0;
}

/*
 * Path = "<" [ A-d-l ":" ] Mailbox ">", plus "<>" for MAIL and
 * "<Postmaster>" for RCPT (RFC 5321 section 4.1.1.3). Bytes >= 0x80 are
 * accepted by the grammar here and checked to be UTF-8 afterwards; the
 * caller decides whether UTF-8 is allowed.
 */
static enum smtp_path_error smtp_parse_path(const char **p, bool mail,
					    struct smtp_path *path)
{
	const char *start = *p, *s = *p;
	size_t span;

	if (*s != '<')
		return SMTP_PATH_SYNTAX;
	s++;
	if (mail && *s == '>') {
		path->null = true;
		*p = s + 1;
		return SMTP_PATH_OK;
	}
	if (!mail && ascii_strncaseeq(s, "postmaster>", 11)) {
		memcpy(path->local, s, 10);
		path->local[10] = '\0';
		path->local_len = 10;
		path->postmaster = true;
		*p = s + 11;
		return SMTP_PATH_OK;
	}
	/* A-d-l: checked, then dropped (RFC 5321 appendix C). INV-R1 */
	if (*s == '@') {
		path->routed = true;
		for (;;) {
			if (*s != '@')
				return SMTP_PATH_SYNTAX;
			s++;
			if (smtp_parse_domain(&s, true, false, NULL, NULL) < 0)
				return SMTP_PATH_SYNTAX;
			if ((size_t)(s - start) > SMTP_MAX_PATH)
				return SMTP_PATH_TOO_LONG;
			if (*s != ',')
				break;
			s++;
		}
		if (*s != ':')
			return SMTP_PATH_SYNTAX;
		s++;
	}
	if (smtp_parse_local(&s, path) < 0 || *s != '@')
		return SMTP_PATH_SYNTAX;
	s++;
	if (*s == '[') {
		if (smtp_parse_literal(&s, path->domain, &path->domain_len) < 0)
			return SMTP_PATH_SYNTAX;
		path->literal = true;
	} else if (smtp_parse_domain(&s, true, false, path->domain,
				     &path->domain_len) < 0) {
		return SMTP_PATH_SYNTAX;
	}
	if (*s != '>')
		return SMTP_PATH_SYNTAX;
	s++;
	span = (size_t)(s - start);
	if (span > SMTP_MAX_PATH)
		return SMTP_PATH_TOO_LONG;
	for (size_t i = 0; i < span; i++) {
		if ((unsigned char)start[i] >= 0x80)
			path->utf8 = true;
	}
	if (path->utf8 && !smtp_utf8_valid(start, span))
		return SMTP_PATH_SYNTAX;
	*p = s;
	return SMTP_PATH_OK;
}

static enum smtp_parse_error
smtp_parse_param(const char *kw, size_t kw_len, const char *val, size_t val_len,
		 bool has_val, bool mail, unsigned *seen,
		 struct smtp_params *params, const char **error_r)
{
	const struct smtp_param_def *def = NULL;

	for (size_t i = 0; i < sizeof(smtp_param_defs) / sizeof(*def); i++) {
		const struct smtp_param_def *d = &smtp_param_defs[i];

		if (strlen(d->name) == kw_len &&
		    ascii_strncaseeq(kw, d->name, kw_len) && d->mail == mail)
			def = d;
	}
	if (def == NULL) {
		*error_r = R_BAD_PARAM;
		return SMTP_PARSE_BAD_PARAM;
	}
	if ((*seen & def->bit) != 0) {
		*error_r = R_DUP_PARAM;
		return SMTP_PARSE_SYNTAX;
	}
	*seen |= def->bit;
	*error_r = R_SYNTAX;
	/* Only SMTPUTF8 is a bare keyword (RFC 6531 section 3.4). */
	if (has_val != (def->bit != SMTP_P_SMTPUTF8))
		return SMTP_PARSE_SYNTAX;
	switch (def->bit) {
	case SMTP_P_SIZE: {
		uint64_t v = 0;

		/* size-value = 1*20DIGIT (RFC 1870 section 3) */
		if (val_len > SMTP_MAX_SIZE_DIGITS)
			return SMTP_PARSE_SYNTAX;
		for (size_t i = 0; i < val_len; i++) {
			unsigned d = (unsigned)(val[i] - '0');

			if (!smtp_is_digit((unsigned char)val[i]))
				return SMTP_PARSE_SYNTAX;
			/* Twenty digits can exceed 2^64: no real limit
			 * is that large, so it is simply too big. */
			if (v > (UINT64_MAX - d) / 10) {
				*error_r = R_TOO_BIG;
				return SMTP_PARSE_TOO_BIG;
			}
			v = v * 10 + d;
		}
		params->size_set = true;
		params->size = v;
		break;
	}
	case SMTP_P_BODY:
		if (val_len == 4 && ascii_strncaseeq(val, "7BIT", 4))
			params->body = SMTP_BODY_7BIT;
		else if (val_len == 8 && ascii_strncaseeq(val, "8BITMIME", 8))
			params->body = SMTP_BODY_8BITMIME;
		else if (val_len == 10 &&
			 ascii_strncaseeq(val, "BINARYMIME", 10))
			params->body = SMTP_BODY_BINARYMIME;
		else
			return SMTP_PARSE_SYNTAX;
		break;
	case SMTP_P_SMTPUTF8:
		params->smtputf8 = true;
		break;
	default:
		/* AUTH= (RFC 4954 section 5): accepted, ignored. */
		break;
	}
	*error_r = NULL;
	return SMTP_PARSE_OK;
}

/*
 * Mail-parameters = esmtp-param *(SP esmtp-param);
 * esmtp-param = esmtp-keyword ["=" esmtp-value];
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
 * esmtp-value = 1*(%d33-60 / %d62-126) (RFC 5321 section 4.1.2).
 * p is at the end of the line or at a space after the path. Extra spaces
 * between parameters are forgiven.
 */
static enum smtp_parse_error smtp_parse_params(const char *p, bool mail,
					       struct smtp_params *params,
					       const char **error_r)
{
	unsigned seen = 0;

	while (*p != '\0') {
		const char *kw, *val = NULL;
		size_t kw_len, val_len = 0;
		bool has_val = false;
		enum smtp_parse_error r;

		if (*p != ' ') {
			*error_r = R_SYNTAX;
			return SMTP_PARSE_SYNTAX;
		}
		while (*p == ' ')
			p++;
		kw = p;
		if (!smtp_is_alpha((unsigned char)*p) &&
		    !smtp_is_digit((unsigned char)*p)) {
			*error_r = R_SYNTAX;
			return SMTP_PARSE_SYNTAX;
		}
		while (smtp_is_alpha((unsigned char)*p) ||
		       smtp_is_digit((unsigned char)*p) || *p == '-')
			p++;
		kw_len = (size_t)(p - kw);
		if (*p == '=') {
			p++;
			has_val = true;
			val = p;
			while (*p >= 33 && *p <= 126 && *p != '=')
				p++;
			val_len = (size_t)(p - val);
			if (val_len == 0) {
				*error_r = R_SYNTAX;
				return SMTP_PARSE_SYNTAX;
			}
		}
		if (*p != ' ' && *p != '\0') {
			*error_r = R_SYNTAX;
			return SMTP_PARSE_SYNTAX;
		}
		r = smtp_parse_param(kw, kw_len, val, val_len, has_val, mail,
				     &seen, params, error_r);
		if (r != SMTP_PARSE_OK)
			return r;
	}
	return SMTP_PARSE_OK;
}

/* "MAIL FROM:" Reverse-path [SP Mail-parameters] and
 * "RCPT TO:" Forward-path [SP Rcpt-parameters]; a space after the colon
 * is forgiven, as many clients send one. */
static enum smtp_parse_error smtp_parse_mail_rcpt(char *args, unsigned flags,
						  struct smtp_command *cmd,
						  const char **error_r)
{
	bool mail = cmd->cmd == SMTP_CMD_MAIL;
	const char *p = args;
	enum smtp_path_error pe;
	enum smtp_parse_error r;
	bool utf8_ok;

	if (!smtp_skip_ci(&p, mail ? "FROM:" : "TO:")) {
		*error_r = R_SYNTAX;
		return SMTP_PARSE_SYNTAX;
	}
	while (*p == ' ')
		p++;
	pe = smtp_parse_path(&p, mail, &cmd->path);
	if (pe == SMTP_PATH_OK && *p != ' ' && *p != '\0')
		pe = SMTP_PATH_SYNTAX;
	if (pe != SMTP_PATH_OK) {
		if (pe == SMTP_PATH_TOO_LONG)
			*error_r = mail ? R_LONG_SENDER : R_LONG_RCPT;
		else
			*error_r = mail ? R_BAD_SENDER : R_BAD_RCPT;
		return mail ? SMTP_PARSE_BAD_SENDER : SMTP_PARSE_BAD_RCPT;
	}
	r = smtp_parse_params(p, mail, &cmd->params, error_r);
	if (r != SMTP_PARSE_OK)
		return r;
	/* RFC 6531 section 3.5: UTF-8 in an address only in a transaction
	 * that declared SMTPUTF8. */
	utf8_ok = (flags & SMTP_PARSE_F_UTF8) != 0 || cmd->params.smtputf8;
	if (cmd->path.utf8 && !utf8_ok) {
		*error_r = R_NON_ASCII;
		return SMTP_PARSE_NON_ASCII;
	}
	return SMTP_PARSE_OK;
}

/* "EHLO" SP ( Domain / address-literal ); HELO takes the same, as many
 * clients send a literal there too. */
static enum smtp_parse_error
smtp_parse_helo(char *args, struct smtp_command *cmd, const char **error_r)
{
	const char *p = args;
	char tmp[SMTP_MAX_DOMAIN + 1];
	size_t len;
	int r;

	if (*p == '[') {
		r = smtp_parse_literal(&p, tmp, &len);
		cmd->arg_literal = true;
	} else {
		r = smtp_parse_domain(&p, false, true, tmp, &len);
	}
	if (r < 0 || *p != '\0') {
		*error_r = R_SYNTAX;
		return SMTP_PARSE_SYNTAX;
	}
	cmd->arg = args;
	cmd->arg_len = len;
	return SMTP_PARSE_OK;
}

/* "BDAT" SP chunk-size [SP end-marker]; chunk-size = 1*DIGIT;
 * end-marker = "LAST" (RFC 3030 section 2). */
static enum smtp_parse_error
smtp_parse_bdat(char *args, struct smtp_command *cmd, const char **error_r)
{
	const char *p = args;
	size_t digits = 0;

	*error_r = R_SYNTAX;
	while (smtp_is_digit((unsigned char)p[digits]))
		digits++;
	if (digits == 0 || digits > SMTP_MAX_SIZE_DIGITS ||
	    parse_uint64(&p, UINT64_MAX, &cmd->bdat_size) < 0)
		return SMTP_PARSE_SYNTAX;
	if (*p == ' ') {
		p++;
		if (!smtp_skip_ci(&p, "LAST"))
			return SMTP_PARSE_SYNTAX;
		cmd->bdat_last = true;
	}
	if (*p != '\0')
		return SMTP_PARSE_SYNTAX;
	*error_r = NULL;
	return SMTP_PARSE_OK;
}

/* "AUTH" SP mechanism [SP initial-response] (RFC 4954 section 4);
 * sasl-mech = 1*20(UPPER-ALPHA / DIGIT / "-" / "_") (RFC 4422 section
 * 3.1), in any case; the response is base64 or "=". */
static enum smtp_parse_error
smtp_parse_auth(char *args, struct smtp_command *cmd, const char **error_r)
{
	char *p = args, *resp;
	size_t n = 0, m = 0;

	*error_r = R_SYNTAX;
	while (smtp_is_alpha((unsigned char)p[n]) ||
	       smtp_is_digit((unsigned char)p[n]) || p[n] == '-' || p[n] == '_')
		n++;
	if (n == 0 || n > SMTP_MAX_SASL_MECH || (p[n] != ' ' && p[n] != '\0'))
		return SMTP_PARSE_SYNTAX;
	cmd->arg = p;
	cmd->arg_len = n;
	if (p[n] == '\0')
		goto ok;
	p[n] = '\0';
	resp = p + n + 1;
	if (strcmp(resp, "=") != 0) {
		while (smtp_is_alpha((unsigned char)resp[m]) ||
		       smtp_is_digit((unsigned char)resp[m]) ||
		       resp[m] == '+' || resp[m] == '/')
			m++;
		while (resp[m] == '=')
			m++;
		if (m == 0 || resp[m] != '\0')
			return SMTP_PARSE_SYNTAX;
	}
	cmd->arg2 = resp;
	cmd->arg2_len = strlen(resp);
ok:
	*error_r = NULL;
	return SMTP_PARSE_OK;
}

static enum smtp_parse_error smtp_parse_args(char *args, unsigned flags,
					     struct smtp_command *cmd,
					     const char **error_r)
{
	bool empty = *args == '\0';

	switch (cmd->cmd) {
	case SMTP_CMD_DATA:
	case SMTP_CMD_RSET:
	case SMTP_CMD_QUIT:
	case SMTP_CMD_STARTTLS:
		break;
	case SMTP_CMD_NOOP:
	case SMTP_CMD_HELP:
		if (!empty) {
			cmd->arg = args;
			cmd->arg_len = strlen(args);
		}
		return SMTP_PARSE_OK;
	case SMTP_CMD_VRFY:
	case SMTP_CMD_EXPN:
		if (empty)
			break;
		cmd->arg = args;
		cmd->arg_len = strlen(args);
		return SMTP_PARSE_OK;
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		if (empty)
			break;
		return smtp_parse_helo(args, cmd, error_r);
	case SMTP_CMD_MAIL:
	case SMTP_CMD_RCPT:
		return smtp_parse_mail_rcpt(args, flags, cmd, error_r);
	case SMTP_CMD_BDAT:
		return smtp_parse_bdat(args, cmd, error_r);
	case SMTP_CMD_AUTH:
		return smtp_parse_auth(args, cmd, error_r);
	default:
		break;
	}
	/* Commands without arguments refuse them; those that need one
	 * refuse its absence. */
	if (empty == (cmd->cmd == SMTP_CMD_DATA || cmd->cmd == SMTP_CMD_RSET ||
		      cmd->cmd == SMTP_CMD_QUIT ||
		      cmd->cmd == SMTP_CMD_STARTTLS))
		return SMTP_PARSE_OK;
	*error_r = R_SYNTAX;
	return SMTP_PARSE_SYNTAX;
}

enum smtp_parse_error smtp_parse_command(char *line, size_t len, unsigned flags,
					 struct smtp_command *cmd_r,
					 const char **error_r)
{
	enum smtp_parse_error r;
	size_t verb_len = 0;
	char *args;

	memset(cmd_r, 0, sizeof(*cmd_r));
	cmd_r->cmd = SMTP_CMD_COUNT;
	*error_r = NULL;
	/* The verb first, so that every error below still names it: a BDAT
	 * line that is refused must end the session (its chunk follows). */
	while (verb_len < len && line[verb_len] != ' ')
		verb_len++;
	if (smtp_find_verb(line, verb_len, &cmd_r->cmd) < 0)
		cmd_r->cmd = SMTP_CMD_COUNT;
	/* NUL is an error, never a string end. */
	if (memchr(line, '\0', len) != NULL) {
		*error_r = R_NUL;
		return SMTP_PARSE_NUL;
	}
	/* INV-S1: a bare CR or LF never separates two commands. */
	if (memchr(line, '\r', len) != NULL || memchr(line, '\n', len)) {
		*error_r = R_BARE_EOL;
		return SMTP_PARSE_BARE_EOL;
	}
	if (len > SASL_MAX_RESPONSE_LINE - 2) {
		*error_r = R_TOO_LONG;
		return SMTP_PARSE_TOO_LONG;
	}
	line[len] = '\0';
	if (cmd_r->cmd == SMTP_CMD_COUNT) {
		*error_r = R_UNKNOWN;
		return SMTP_PARSE_UNKNOWN;
	}
	if (cmd_r->cmd != SMTP_CMD_AUTH && len > SMTP_MAX_COMMAND_LINE - 2) {
		*error_r = R_TOO_LONG;
		return SMTP_PARSE_TOO_LONG;
	}
	/* Trailing blanks are forgiven; extra spaces after the verb too. */
	while (len > verb_len &&
	       (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	args = line + verb_len;
	while (*args == ' ')
		args++;
	r = smtp_parse_args(args, flags, cmd_r, error_r);
	if (r != SMTP_PARSE_OK) {
		/* Nothing half-parsed survives; the verb does. */
		enum smtp_cmd cmd = cmd_r->cmd;

		memset(cmd_r, 0, sizeof(*cmd_r));
		cmd_r->cmd = cmd;
	}
	return r;
}

/* HTTP methods (RFC 9110 section 9, RFC 5789, and the HTTP/2 preface's
 * "PRI"); case-sensitive, as HTTP defines them. */
static const char *const smtp_http_methods[] = {
    "GET",     "HEAD",	  "POST",  "PUT",   "DELETE",
    "CONNECT", "OPTIONS", "TRACE", "PATCH", "PRI",
};

bool smtp_is_http_request(const char *line, size_t len)
{
	size_t m = 0, t, v;

	while (m < len && line[m] != ' ')
		m++;
	for (size_t i = 0; i < sizeof(smtp_http_methods) / sizeof(char *);
	     i++) {
		if (strlen(smtp_http_methods[i]) != m ||
		    memcmp(line, smtp_http_methods[i], m) != 0)
			continue;
		/* "CONNECT host:port" is a proxy request with or without
		 * a version. */
		if (m == 7 && memcmp(line, "CONNECT", 7) == 0 && m + 1 < len)
			return true;
		/* method SP request-target SP "HTTP/" DIGIT "." DIGIT */
		t = m + 1;
		v = t;
		while (v < len && (unsigned char)line[v] > ' ' &&
		       (unsigned char)line[v] < 0x7f)
			v++;
		if (m >= len || v == t || len - v != 9 || line[v] != ' ')
			return false;
		return memcmp(line + v + 1, "HTTP/", 5) == 0 &&
		       smtp_is_digit((unsigned char)line[v + 6]) &&
		       line[v + 7] == '.' &&
		       smtp_is_digit((unsigned char)line[v + 8]);
	}
	return false;
}

/* Dot-string = Atom *("." Atom) */
static bool smtp_is_dot_string(const char *s, size_t len)
{
	bool prev_dot = true;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (prev_dot)
				return false;
			prev_dot = true;
		} else if (smtp_is_atext(c)) {
			prev_dot = false;
		} else {
			return false;
		}
	}
	return !prev_dot;
}

int smtp_path_canonical(const struct smtp_path *path, bool lowercase_local,
			char *out, size_t outsize)
{
	size_t n = 0, need;
	bool quote;

	if (outsize == 0)
		return -1;
	if (path->null) {
		out[0] = '\0';
		return 0;
	}
	if (path->postmaster) {
		if (outsize < 11)
			return -1;
		memcpy(out, "postmaster", 11);
		return 10;
	}
	quote = !smtp_is_dot_string(path->local, path->local_len);
	need = path->local_len + 1 + path->domain_len;
	if (quote) {
		need += 2;
		for (size_t i = 0; i < path->local_len; i++) {
			if (path->local[i] == '"' || path->local[i] == '\\')
				need++;
		}
	}
	if (need >= outsize)
		return -1;
	if (quote)
		out[n++] = '"';
	for (size_t i = 0; i < path->local_len; i++) {
		char c = path->local[i];

		if (quote && (c == '"' || c == '\\'))
			out[n++] = '\\';
		if (lowercase_local && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		out[n++] = c;
	}
	if (quote)
		out[n++] = '"';
	out[n++] = '@';
	memcpy(out + n, path->domain, path->domain_len);
	out[n + path->domain_len] = '\0';
	ascii_lowercase(out + n);
	n += path->domain_len;
	return (int)n;
}
