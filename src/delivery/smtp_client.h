/*
 * The pure protocol pieces of the outbound SMTP client: the reply parser
 * (RFC 5321 section 4.2, multi-line replies, RFC 3463 enhanced codes),
 * the EHLO keyword parser, and the DATA encoder (LF to CRLF, dot-
 * stuffing). No sockets here: outbound_session.c does the I/O and feeds
 * bytes in, so everything below is testable and fuzzable on plain
 * buffers.
 */
#ifndef POSTD_SMTP_CLIENT_H
#define POSTD_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/postd_limits.h"

struct smtp_reply {
	unsigned code;	   /* 200..599 */
	char enhanced[16]; /* "5.1.1" from the first line, or "" */
	/* The text after "NNN-"/"NNN " of every line (enhanced code of the
	 * first line kept), joined by '\n', NUL-terminated. */
	char text[SMTP_CLIENT_MAX_REPLY_TEXT];
	size_t text_len;
	size_t line_count;
};

struct smtp_reply_parser {
	char line[SMTP_CLIENT_MAX_REPLY_LINE + 1];
	size_t line_len;
	bool in_reply; /* a continuation line was seen */
	bool failed;   /* once -1, always -1: the connection must go */
	struct smtp_reply cur;
};

void smtp_reply_parser_init(struct smtp_reply_parser *p);
/*
 * Feeds len bytes. Returns 1 when a whole reply is in *reply_r, having
 * consumed *consumed_r bytes (feed the rest again); 0 when all bytes
 * were consumed and more are needed; -1 with error_r on a malformed,
 * overlong or over-many-line reply (sticky).
 */
int smtp_reply_parse(struct smtp_reply_parser *p, const char *data, size_t len,
		     size_t *consumed_r, struct smtp_reply *reply_r,
		     const char **error_r);

/* What an EHLO reply offers (RFC 5321 section 4.1.1.1). */
struct smtp_ehlo {
	bool pipelining;   /* RFC 2920 */
	bool starttls;	   /* RFC 3207 */
	bool eightbitmime; /* RFC 6152 */
	bool smtputf8;	   /* RFC 6531 */
	bool size;	   /* RFC 1870 */
	uint64_t size_max; /* 0: no limit given */
	bool auth_plain;   /* RFC 4954 AUTH with PLAIN among the mechs */
	bool enhanced;	   /* RFC 2034 ENHANCEDSTATUSCODES */
};
/* Parses the keyword lines (all but the first) of a 250 EHLO reply.
 * Unknown keywords are ignored; never fails. */
void smtp_ehlo_parse(const struct smtp_reply *reply, struct smtp_ehlo *ehlo_r);

/* Streaming DATA encoder: stored form (LF) to wire form (CRLF), a '.'
 * at the start of a line doubled (RFC 5321 section 4.5.2). */
struct smtp_data_encoder {
	bool line_start;
	bool prev_cr;
};
void smtp_data_encoder_init(struct smtp_data_encoder *e);
/* Encodes len bytes into out (size >= 2 * len). Returns the bytes
 * written. A CR already followed by LF in the input is kept once. */
size_t smtp_data_encode(struct smtp_data_encoder *e, const char *in, size_t len,
			char *out);
/* The end: CRLF if the last line was unterminated, then ".\r\n". Writes
 * at most 5 bytes to out; returns the count. */
size_t smtp_data_encode_end(struct smtp_data_encoder *e, char *out);

/* True if s has a byte >= 0x80 (the address needs SMTPUTF8). */
bool smtp_client_needs_utf8(const char *s);
/* The RFC 3463 class from a reply: 2, 4 or 5. */
unsigned smtp_reply_class(const struct smtp_reply *r);
/* The reply as one log- and DSN-safe line: "550 5.1.1 text / more",
 * control bytes replaced, at most size - 1 bytes. Returns out. */
char *smtp_reply_format(const struct smtp_reply *r, char *out, size_t size);

#endif
