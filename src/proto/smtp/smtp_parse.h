/*
 * The SMTP command parser (RFC 5321 sections 4.1.1 and 4.1.2, with the
 * ESMTP parameters of RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 3030
 * BINARYMIME, RFC 6531 SMTPUTF8 and RFC 4954 AUTH): pure, no I/O, so that
 * unit tests and the fuzzer drive it directly. It checks a command's
 * arguments; which state a command is allowed in, and whether the
 * extension behind a parameter was advertised, is the session's business.
 *
 * Every error comes with the complete reply line to send (without CRLF),
 * enhanced status code included (RFC 2034, RFC 3463).
 *
 * INV-R1: the parser does not interpret '%', '!' or a quoted '@' in a
 * local part, and drops source routes after checking their syntax. It
 * reports the local part literally; the session must never relay, or pick
 * a mailbox, based on anything in it but an exact match.
 * INV-S2: CR, LF and NUL never appear in a parsed path or argument.
 * See doc/internals/smtp-parsing.md.
 */
#ifndef POSTD_SMTP_PARSE_H
#define POSTD_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/postd_limits.h"

enum smtp_cmd {
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_BDAT,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,
	SMTP_CMD_COUNT
};

/* BODY= on MAIL (RFC 6152, RFC 3030). */
enum smtp_body {
	SMTP_BODY_NONE, /* no BODY parameter: 7bit by default */
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME, /* only with BDAT (RFC 3030 section 3) */
};

/* Room for the canonical "local@domain" of any path smtp_parse_command()
 * accepts, and its NUL (see smtp_path_canonical()). */
#define SMTP_MAILBOX_BUF_SIZE (SMTP_MAX_LOCALPART + 1 + SMTP_MAX_DOMAIN + 1)

/*
 * A reverse-path (MAIL) or forward-path (RCPT). A source route is
 * checked and dropped (RFC 5321 section 4.1.2 and appendix C).
 */
struct smtp_path {
	/* The local part without its quotes and quoting backslashes, as
	 * sent (case kept). May hold '@', '%', '!', space and, with
	 * SMTPUTF8, UTF-8; never CR, LF, NUL or other controls. */
	char local[SMTP_MAX_LOCALPART + 1];
	size_t local_len;
	/* The domain as sent (case kept; U-labels as UTF-8 when utf8), or
	 * an address literal with its brackets ("[192.0.2.1]",
	 * "[IPv6:2001:db8::1]"). Empty for a null path and for the bare
	 * "<Postmaster>". */
	char domain[SMTP_MAX_DOMAIN + 1];
	size_t domain_len;
	bool null;	 /* "<>" (MAIL only) */
	bool postmaster; /* "<Postmaster>" without a domain (RCPT only) */
	bool quoted;	 /* the local part was a quoted string */
	bool literal;	 /* the domain is an address literal */
	bool utf8;	 /* non-ASCII in the local part or domain */
	bool routed;	 /* a source route was given (and dropped) */
};

/* MAIL / RCPT parameters. Unknown ones are an error, so these are all a
 * session has to honour. RET, ENVID (MAIL), NOTIFY, ORCPT (RCPT) and
 * AUTH= (MAIL, RFC 4954 section 5) are checked for a value and ignored. */
struct smtp_params {
	bool size_set;	     /* SIZE= given (MAIL) */
	uint64_t size;	     /* its value */
	enum smtp_body body; /* BODY= (MAIL) */
	bool smtputf8;	     /* SMTPUTF8 (MAIL) */
};

struct smtp_command {
	enum smtp_cmd cmd;
	/* MAIL, RCPT */
	struct smtp_path path;
	struct smtp_params params;
	/*
	 * Pointers into the line given to smtp_parse_command(), NUL-
	 * terminated in place, or NULL with length 0 when absent:
	 * HELO/EHLO: the domain or address literal (arg_literal tells);
	 * VRFY/EXPN: the argument (required); NOOP/HELP: the argument or
	 * NULL; AUTH: the mechanism name in arg (case as sent) and the
	 * initial response (base64 or "=") in arg2.
	 */
	const char *arg;
	size_t arg_len;
	bool arg_literal;
	const char *arg2;
	size_t arg2_len;
	/* BDAT */
	uint64_t bdat_size;
	bool bdat_last;
};

enum smtp_parse_error {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_NUL,	       /* 501 5.5.2: NUL byte in the line */
	SMTP_PARSE_BARE_EOL,   /* 500 5.5.2: CR or LF inside the line */
	SMTP_PARSE_TOO_LONG,   /* 500 5.5.2: over SMTP_MAX_COMMAND_LINE */
	SMTP_PARSE_UNKNOWN,    /* 500 5.5.2: empty line or unknown verb */
	SMTP_PARSE_SYNTAX,     /* 501 5.5.4: bad arguments */
	SMTP_PARSE_BAD_SENDER, /* 501 5.1.7: bad reverse-path */
	SMTP_PARSE_BAD_RCPT,   /* 501 5.1.3: bad forward-path */
	SMTP_PARSE_NON_ASCII,  /* 553 5.6.7: UTF-8 address without SMTPUTF8 */
	SMTP_PARSE_BAD_PARAM,  /* 555 5.5.4: unknown or misplaced parameter */
	SMTP_PARSE_TOO_BIG,    /* 552 5.3.4: SIZE beyond any limit */
};

/* Flags for smtp_parse_command(). */
/* The transaction's MAIL carried SMTPUTF8: RCPT paths may hold UTF-8.
 * (A MAIL command's own SMTPUTF8 parameter allows it for that MAIL.) */
#define SMTP_PARSE_F_UTF8 (1u << 0)

/*
 * Parses one command line of len bytes, without its CRLF (it may hold
 * NUL, CR or LF, which are errors). line must have len + 1 bytes, as
 * conn_read_line() leaves it: line[len] is set to NUL. The line is
 * modified in place and cmd_r's pointers point into it, so it must
 * outlive cmd_r. Trailing spaces and
 * tabs are ignored (some clients send them). An AUTH line may be up to
 * SASL_MAX_RESPONSE_LINE octets with CRLF, any other line
 * SMTP_MAX_COMMAND_LINE; the session's line reader must allow the larger
 * cap only until it sees the verb, or simply for every line.
 *
 * Returns SMTP_PARSE_OK with *error_r NULL, or an error with *error_r the
 * complete reply line to send (static storage, no CRLF). On error
 * everything in *cmd_r is zeroed except cmd: the verb if it was
 * recognised (so the session can tell a bad RCPT from a bad MAIL), else
 * SMTP_CMD_COUNT. No partial path or parameter survives an error.
 */
enum smtp_parse_error smtp_parse_command(char *line, size_t len, unsigned flags,
					 struct smtp_command *cmd_r,
					 const char **error_r);

/*
 * True if a command line (without CRLF) is an HTTP request line: a
 * method, one space, a request target and "HTTP/x.y", or any "CONNECT
 * target". A browser or proxy tricked into talking to the SMTP port
 * (ALPACA-style cross-protocol attacks) sends these; none is an SMTP
 * command, so the session replies once and closes.
 */
bool smtp_is_http_request(const char *line, size_t len);

/* The verb of a command ("RCPT"). */
const char *smtp_cmd_name(enum smtp_cmd cmd);

/*
 * Writes the canonical mailbox of a parsed path into out: "local@domain"
 * with the domain in ASCII lowercase (U-labels are not case-folded or
 * converted). The local part is lowercased only if lowercase_local (RFC
 * 5321 section 2.4: only the receiving host may decide it is
 * case-insensitive). A quoted local part that is a valid dot-string is
 * written bare ("\"alice\""@x becomes alice@x, RFC 5321 section 4.1.2);
 * any other is written quoted again, escaping only '"' and '\', so the
 * result is never longer than the path as sent. A null path gives "", the
 * bare <Postmaster> gives "postmaster".
 *
 * Returns the length written (NUL not counted), or -1 if outsize is too
 * small (SMTP_MAILBOX_BUF_SIZE is always enough).
 */
int smtp_path_canonical(const struct smtp_path *path, bool lowercase_local,
			char *out, size_t outsize);

/*
 * True if s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) and holds no control character
 * (C0, DEL or C1), so that it is safe in a log line or a header.
 */
bool smtp_utf8_valid(const char *s, size_t len);

#endif
