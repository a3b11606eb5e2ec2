/*
 * The message body readers: DATA (RFC 5321 sections 4.1.1.4 and 4.5.2,
 * dot-stuffed, ended by <CRLF>.<CRLF>) and BDAT (RFC 3030, counted raw
 * chunks). Pure state machines: they take wire bytes in chunks of any
 * size and give back message bytes; no I/O, no allocation.
 *
 * Both pass the message content through one checker (struct
 * smtp_content) that measures lines, counts the size and notes bare CR
 * and bare LF, so DATA and BDAT enforce the same rules.
 *
 * INV-S1 (SMTP smuggling, CVE-2023-51764/51765/51766): DATA ends only at
 * <CR><LF>.<CR><LF>. A bare CR or bare LF is never a line end: "\n.\n",
 * "\r.\r", "\r\n.\n" and "\n.\r\n" are message content. A message that
 * holds a bare LF is marked, and refused after its end (or, with
 * SMTP_DATA_F_NORMALIZE, stored with CRLF in its place). A bare CR inside
 * a line (old Mac text, "\r\r\n" from a double conversion) is stored as
 * a space, always: no later reader can take it for a line end or a new
 * header field. A lone "." next to a bare CR is the shape of a smuggled
 * end of data and keeps the message refused.
 * Limits never stop the reader mid-stream: a message that is too big or
 * has an overlong line is read and discarded to its end, so that the
 * session answers after the final dot and the client stays in sync.
 * See doc/internals/smtp-parsing.md.
 */
#ifndef POSTD_SMTP_DATA_H
#define POSTD_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Output bare LF and bare CR as CRLF (each still counts as seen). */
#define SMTP_DATA_F_NORMALIZE (1u << 0)
/* BODY=BINARYMIME over BDAT (RFC 3030 section 3): no line length limit,
 * bare CR and LF are data. */
#define SMTP_DATA_F_BINARY (1u << 1)
/* Read and count only, output nothing (a BDAT chunk that is refused
 * still has to be read, RFC 3030 section 2). */
#define SMTP_DATA_F_DISCARD (1u << 2)

/* No message size limit. */
#define SMTP_DATA_NO_LIMIT UINT64_MAX

/*
 * The checker both readers share. Read-only for callers; the results are
 * final once the reader reports the end of the message.
 */
struct smtp_content {
	uint64_t max_size;
	unsigned flags;
	/* Message octets so far, as output (after dot-unstuffing and
	 * normalising), counted on even when discarding. */
	uint64_t size;
	size_t max_line; /* longest line allowed, with its CRLF */
	size_t line_len; /* octets in the current line, CRLF not counted */
	bool cr_pending; /* a CR whose meaning waits for the next byte */
	bool bare_cr;	 /* a CR not followed by LF was seen (stored as
			  * a space) */
	bool bare_lf;	 /* an LF not preceded by CR was seen */
	/* A lone "." between two line breaks of any kind (CRLF, bare CR,
	 * bare LF, or a dot removed by unstuffing), one of them a bare CR:
	 * what a reader that ends lines at CR takes for the end of data. */
	bool dot_bare_cr;
	bool line_too_long; /* a line over max_line with CRLF */
	/* Since the last line break of any kind: no octet, one ".", or
	 * anything else; and whether that break was a bare CR. */
	bool loose_empty, loose_dot, after_bare_cr;
	bool too_big; /* size went over max_size */
	/* Too big (or SMTP_DATA_F_DISCARD): no more output is produced;
	 * the caller drops what it wrote. Other reasons to refuse do not
	 * stop the output: a session that does not want to store a
	 * message it will refuse checks smtp_content_refusal() as it goes. */
	bool discard;
};

/*
 * The reply to give after the end of the message if it must be refused,
 * or NULL if it may be accepted: "552 5.3.4 ..." when too big (RFC 1870
 * section 6.2), "550 5.6.0 ..." for a bare LF (unless normalised) or a
 * lone dot next to a bare CR, "554 5.6.0 ..." for a line over max_line
 * (unless binary). Static storage, no CRLF.
 */
const char *smtp_content_refusal(const struct smtp_content *c);

/* True when the reply smtp_content_refusal() gives is the one for a line
 * over max_line, so that a log adds that detail only to that refusal. */
bool smtp_content_refused_for_long_line(const struct smtp_content *c);

/*
 * The longest line a message may hold, in octets with its CRLF (at least
 * SMTP_MAX_TEXT_LINE, RFC 5321's limit, which is the default). Real mail
 * breaks that limit every day (long To: lists, machine-made HTML), so
 * the session sets a generous bound here; the line is stored unchanged.
 * Call after init, before the first byte.
 */
void smtp_content_set_max_line(struct smtp_content *c, size_t max_line);

/* The DATA reader. */
struct smtp_data {
	struct smtp_content content;
	int state; /* private */
	bool done; /* the end marker has been read */
};

/*
 * Starts a message: max_size is the configured limit in octets
 * (SMTP_DATA_NO_LIMIT for none), flags SMTP_DATA_F_*. The reader is at
 * the start of a line, so a first line of "." ends the message at once.
 */
void smtp_data_init(struct smtp_data *d, uint64_t max_size, unsigned flags);

/*
 * The output room that guarantees feed() consumes all in_len input bytes
 * in one call (unless the message ends first): in_len + 4, or
 * 2 * in_len + 4 with SMTP_DATA_F_NORMALIZE (SIZE_MAX on overflow).
 * Over a whole message, output never exceeds the input consumed, or
 * twice it with SMTP_DATA_F_NORMALIZE (each bare LF becomes two
 * octets); a call may release up to one octet held from the last call.
 */
size_t smtp_data_out_max(unsigned flags, size_t in_len);

/*
 * Reads wire bytes: removes the leading dot of stuffed lines (RFC 5321
 * section 4.5.2) and writes message bytes to out, stopping at the end
 * marker, at the end of the input, or when out has fewer than 3 octets
 * of room. *consumed_r is the number of input bytes used: bytes after
 * the end marker are not consumed (they are the next pipelined command).
 * *out_len_r is the number of octets written. The message content ends
 * with the CRLF before the final dot.
 *
 * Returns 1 when the end marker has been consumed (d->done; further
 * calls return 1 and consume nothing), or 0 when it needs more input (or
 * more output room, when *consumed_r < in_len). Never fails: every
 * problem is recorded in d->content for smtp_content_refusal().
 */
int smtp_data_feed(struct smtp_data *d, const void *in, size_t in_len,
		   size_t *consumed_r, void *out, size_t out_size,
		   size_t *out_len_r);

/* The BDAT reader: one per message, across all its chunks. */
struct smtp_bdat {
	struct smtp_content content;
	uint64_t remaining; /* octets of the current chunk still to read */
	bool in_chunk;	    /* a chunk was started and is not read yet */
	bool last;	    /* the current chunk is the LAST one */
	bool done;	    /* the LAST chunk has been read */
};

void smtp_bdat_init(struct smtp_bdat *b, uint64_t max_size, unsigned flags);

/*
 * Starts a chunk of size octets after a BDAT command (LAST if last).
 * Returns 0, or -1 if a chunk is still being read or the LAST one was
 * already read (the session's mistake; nothing changes).
 */
int smtp_bdat_chunk(struct smtp_bdat *b, uint64_t size, bool last);

/*
 * Reads up to the rest of the current chunk from in, like
 * smtp_data_feed() (same output room rule, smtp_data_out_max()). Bytes
 * past the chunk are not consumed. Returns 1 when the chunk is complete
 * (and, for the LAST chunk, the message: b->done), 0 when it needs more
 * input or output room. A CR at the very end of the message is a bare
 * CR.
 */
int smtp_bdat_feed(struct smtp_bdat *b, const void *in, size_t in_len,
		   size_t *consumed_r, void *out, size_t out_size,
		   size_t *out_len_r);

#endif
