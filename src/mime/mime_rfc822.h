/*
 * RFC 5322 / RFC 2045 token parsing inside one unfolded header value:
 * comments, atoms, quoted strings, MIME tokens and parameters (with the
 * RFC 2231 continuations merged) and address lists with groups. It
 * follows Dovecot's lib-mail parser rule for rule, because ENVELOPE and
 * BODYSTRUCTURE must come out the same for the same (often broken) mail.
 * Internal to src/mime.
 */
#ifndef POSTD_MIME_RFC822_H
#define POSTD_MIME_RFC822_H

#include <stdbool.h>
#include <stddef.h>

/* A growable string: everything here is bounded by the header value
 * it is parsed from. */
struct mime_str {
	char *s;
	size_t len, cap;
};
void mime_str_add(struct mime_str *d, const void *p, size_t n);
void mime_str_addc(struct mime_str *d, char c);
/* The contents as a malloc'd C string (the string is reset). */
char *mime_str_take(struct mime_str *d);
void mime_str_free(struct mime_str *d);

struct mime_rp {
	const unsigned char *data, *end;
	/* The last comment's text (for "addr (Name)"), when non-NULL. */
	struct mime_str *last_comment;
	/* A NUL in a quoted string or comment becomes U+FFFD (addresses);
	 * otherwise it stays and ends the value as a C string. */
	bool nul_replace;
};

void mime_rp_init(struct mime_rp *rp, const char *s, size_t len);
/* 1: more data follows, 0: at the end, -1: unterminated comment. */
int mime_rp_skip_lwsp(struct mime_rp *rp);
int mime_rp_mime_token(struct mime_rp *rp, struct mime_str *out);
int mime_rp_atom(struct mime_rp *rp, struct mime_str *out);
/* The parameters after a value: name/value pairs, RFC 2231 merged. */
struct mime_param;
void mime_rp_params(struct mime_rp *rp, struct mime_param **params_r,
		    size_t *count_r);

/* An address (RFC 3501 ENVELOPE address: name, route, mailbox, host);
 * a group start has only mailbox set, a group end nothing. */
struct mime_addr {
	char *name, *route, *mailbox, *domain;
};
struct mime_addrs {
	struct mime_addr *a;
	size_t n, cap;
};
/* Appends the addresses of value (one header field) to list. */
void mime_addrs_parse(const char *value, size_t len, struct mime_addrs *list);
void mime_addrs_free(struct mime_addrs *list);

#endif
