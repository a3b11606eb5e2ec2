/*
 * The pure parts of "postctl check": URL parsing, a bounded line splitter,
 * reply classification and capability parsing for POP3, IMAP and SMTP.
 * No sockets here, so that test_postctl_check.c and fuzz_check_reply.c
 * can drive every function with hostile bytes (pure parsers). Everything
 * a server sends is untrusted; nothing here trusts a length it did not
 * count.
 */
#ifndef POSTD_POSTCTL_CHECK_PARSE_H
#define POSTD_POSTCTL_CHECK_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/postd_limits.h"

enum check_proto {
	CHECK_PROTO_POP3,
	CHECK_PROTO_IMAP,
	CHECK_PROTO_SMTP,
};

struct check_url {
	enum check_proto proto;
	bool implicit_tls;  /* pop3s, imaps, submissions */
	bool submission;    /* submission(s): AUTH is expected */
	const char *scheme; /* static string, "pop3s" */
	bool has_user;
	char user[AUTH_MAX_USER + 1];  /* percent-decoded */
	char host[CHECK_MAX_HOST + 1]; /* without brackets */
	bool host_is_ipv6;
	uint16_t port;
};

/*
 * Parses SCHEME://[USER@]HOST[:PORT][/]. USER may contain '@' (the split
 * is at the last '@') and %XX escapes; HOST may be [IPv6]. Returns 0, or
 * -1 with *error_r set to a static sentence.
 */
int check_url_parse(const char *s, struct check_url *url_r,
		    const char **error_r);
/* The domain part of url->user, or NULL when the user has none. */
const char *check_url_user_domain(const struct check_url *url);

/*
 * Splits a byte stream into lines of at most CHECK_MAX_LINE bytes.
 * check_line_feed() consumes bytes from data until a line is complete
 * and stores the number consumed in *used_r. Returns 1 when lb->line
 * holds a line (CRLF or bare LF removed, NUL-terminated), 0 when more
 * input is needed, -1 when the line is too long or holds a NUL byte. The
 * caller resets the state with check_line_reset() after 1 or -1.
 */
struct check_line {
	char line[CHECK_MAX_LINE + 2]; /* room for the CR before LF */
	size_t len;
	bool bad; /* NUL seen: reported at the end of the line */
};
void check_line_reset(struct check_line *lb);
int check_line_feed(struct check_line *lb, const char *data, size_t len,
		    size_t *used_r);

/* What kind of server a greeting comes from. */
enum check_greeting {
	CHECK_GREET_UNKNOWN,
	CHECK_GREET_POP3_OK,	  /* +OK */
	CHECK_GREET_POP3_ERR,	  /* -ERR */
	CHECK_GREET_IMAP_OK,	  /* * OK */
	CHECK_GREET_IMAP_PREAUTH, /* * PREAUTH */
	CHECK_GREET_IMAP_BYE,	  /* * BYE */
	CHECK_GREET_SMTP_OK,	  /* 220 */
	CHECK_GREET_SMTP_REFUSED, /* 421, 554 */
	CHECK_GREET_HTTP,	  /* HTTP/1.x: a web server */
	CHECK_GREET_TLS,	  /* a TLS record: the port wants TLS */
};
enum check_greeting check_greeting_classify(const char *line, size_t len);
/* The protocol that a greeting class belongs to, or -1 when unknown. */
int check_greeting_proto(enum check_greeting g);

/* POP3: 1 for "+OK", 0 for "-ERR", -1 for anything else. *text_r points
 * after the status word and its space. */
int check_pop3_status(const char *line, const char **text_r);

/*
 * SMTP replies (RFC 5321 §4.2): feed each line; returns 1 after the last
 * line (code in r->code, the first line's text in r->text), 0 when more
 * lines follow, -1 when malformed, the code changes between lines, or
 * the reply has too many lines.
 */
struct check_smtp_reply {
	int code;
	unsigned int lines;
	char text[CHECK_MAX_LINE + 1]; /* text of the last line */
};
void check_smtp_reply_reset(struct check_smtp_reply *r);
int check_smtp_reply_line(struct check_smtp_reply *r, const char *line);

/*
 * IMAP: classifies a response line for the command tagged tag. Returns 1
 * for the tagged reply (*status_r "OK", "NO" or "BAD" as 0, 1, 2), 0 for
 * an untagged or continuation line, -1 for a tagged line with another tag
 * or without a status.
 */
enum check_imap_status {
	CHECK_IMAP_OK,
	CHECK_IMAP_NO,
	CHECK_IMAP_BAD,
};
int check_imap_tagged(const char *line, const char *tag,
		      enum check_imap_status *status_r, const char **text_r);
/* "* N EXISTS": 1 and *n_r, else 0. */
int check_imap_exists(const char *line, uint32_t *n_r);

/*
 * A bracketed response code at the start of text ("[AUTH] ..."): copies
 * the code word (up to the first space or ']') uppercased into code and
 * returns 1, or returns 0 when there is none (code is then "").
 */
int check_resp_code(const char *text, char *code, size_t codesize);
/* A plain-words explanation of a POP3/IMAP response code, or NULL. */
const char *check_resp_code_explain(const char *code);
/* The enhanced status code (RFC 3463) at the start of an SMTP reply text,
 * "5.7.8", copied into code: 1, or 0 when there is none. */
int check_smtp_enhanced(const char *text, char *code, size_t codesize);
/* What an SMTP AUTH reply code / enhanced code means, or NULL. */
const char *check_smtp_auth_explain(int code, const char *enhanced);

/* What the server offers, collected from CAPA, CAPABILITY or EHLO. */
struct check_caps {
	bool seen;	    /* any capability line parsed */
	bool starttls;	    /* STLS (POP3) / STARTTLS (IMAP, SMTP) */
	bool user;	    /* POP3 USER */
	bool auth_plain;    /* SASL PLAIN / AUTH=PLAIN / AUTH PLAIN */
	bool auth_login;    /* SASL LOGIN / AUTH LOGIN */
	bool auth_any;	    /* any SASL mechanism */
	bool logindisabled; /* IMAP LOGINDISABLED */
	bool imap4rev1;
	bool sasl_ir;
	char text[CHECK_MAX_CAPS_TEXT + 1]; /* escaped, space separated */
};
void check_caps_reset(struct check_caps *c);
/* One POP3 CAPA line (not the "." terminator). */
void check_caps_pop3_line(struct check_caps *c, const char *line);
/* The text of one EHLO reply line after "250-"/"250 " (the first line,
 * the greeting name, is passed with first = true and only recorded). */
void check_caps_ehlo_line(struct check_caps *c, const char *text, bool first);
/* An IMAP line: "* CAPABILITY ..." or a "[CAPABILITY ...]" response code
 * in an OK line. Returns 1 when it carried capabilities, else 0. */
int check_caps_imap_line(struct check_caps *c, const char *line);

/*
 * An IMAP quoted string (RFC 3501 §4.3) of s into dst: 0, or -1 when s
 * holds CR, LF, NUL or 8-bit bytes (those need a literal; the caller
 * then uses AUTHENTICATE PLAIN) or dst is too small.
 */
int check_imap_quote(char *dst, size_t dstsize, const char *s);
/*
 * Base64 of "\0user\0pass" (RFC 4616) into dst: its length, or -1 when
 * dst is too small. The caller wipes dst.
 */
int check_sasl_plain(char *dst, size_t dstsize, const char *user,
		     const char *pass, size_t passlen);
/* Base64 of data: its length, or -1 when dst is too small. */
int check_base64(char *dst, size_t dstsize, const void *data, size_t len);

/* Escapes untrusted text for the terminal (no control bytes), cut to fit
 * dst with "..." when long. Returns dst. */
char *check_escape(char *dst, size_t dstsize, const char *src, size_t len);

#endif
