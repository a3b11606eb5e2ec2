/*
 * The wire form of a stored message: bare LF becomes CRLF, and for POP3
 * a line starting with '.' gets another '.' (RFC 1939 section 3). TOP
 * stops after the header and N body lines. Pure and incremental: feed the
 * file in chunks of any size, the output is the same.
 */
#ifndef POSTD_MSG_WIRE_H
#define POSTD_MSG_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg_wire {
	bool dot_stuff;
	bool at_line_start;
	bool prev_cr;
	bool in_body;		/* past the empty line that ends the header */
	bool header_empty_line; /* current line is empty so far */
	int64_t body_lines;	/* body lines still to send; -1: all */
	bool done;		/* TOP limit reached: stop feeding */
};

/* body_lines < 0: the whole message (RETR); otherwise TOP n. */
void msg_wire_init(struct msg_wire *w, bool dot_stuff, int64_t body_lines);

/*
 * Converts in[0..len) into out, which must have room for 2 * len bytes.
 * Returns the number of bytes written to out. Stops early once w->done.
 */
size_t msg_wire_convert(struct msg_wire *w, const char *in, size_t len,
			char *out);
/*
 * Call after the last chunk: writes CRLF to out (room for 2 bytes) if the
 * message did not end with a line end, so that the terminating "." line
 * of a POP3 multi-line response starts a line. Returns bytes written.
 */
size_t msg_wire_finish(struct msg_wire *w, char *out);

/*
 * The wire size (no dot-stuffing, with the CRLF msg_wire_finish adds) of
 * the file open on fd, read from its current offset to the end. Returns
 * 0 and sets *size_r, or -1 on a read error.
 */
int msg_wire_size_fd(int fd, uint64_t *size_r);

#endif
