/*
 * Reading a stored message back out for POP3 (LF to CRLF, dot-stuffing,
 * TOP): the reverse of msg_file.c, and blind to folders and indexes.
 *
 * The input is cut into segments at each LF with memchr so that long
 * lines cost one memcpy, not a branch per byte; the state in struct
 * msg_wire carries everything a segment needs from the previous chunk, so
 * any chunking gives the same output.
 */
#include "storage/msg_wire.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lib/postd_limits.h"

static size_t msg_wire_segment(struct msg_wire *w, const char *seg, size_t len,
			       char *out);
static void msg_wire_line_end(struct msg_wire *w);

void msg_wire_init(struct msg_wire *w, bool dot_stuff, int64_t body_lines)
{
	memset(w, 0, sizeof(*w));
	w->dot_stuff = dot_stuff;
	w->at_line_start = true;
	w->header_empty_line = true;
	w->body_lines = body_lines < 0 ? -1 : body_lines;
}

/* Copies the bytes of one line (no LF) and tracks the header state. */
static size_t msg_wire_segment(struct msg_wire *w, const char *seg, size_t len,
			       char *out)
{
	size_t n = 0;

	if (len == 0)
		return 0;
	/* RFC 1939 section 3: a line starting with '.' gets another. */
	if (w->at_line_start && w->dot_stuff && seg[0] == '.')
		out[n++] = '.';
	/* A line is empty if it holds nothing or a single CR (a CRLF that
	 * another program stored as is). */
	if (w->header_empty_line && (len != 1 || seg[0] != '\r' || w->prev_cr))
		w->header_empty_line = false;
	memcpy(out + n, seg, len);
	n += len;
	w->prev_cr = seg[len - 1] == '\r';
	w->at_line_start = false;
	return n;
}

/* After an LF: the empty line ends the header; TOP counts body lines. */
static void msg_wire_line_end(struct msg_wire *w)
{
	if (!w->in_body) {
		if (w->header_empty_line) {
			w->in_body = true;
			if (w->body_lines == 0)
				w->done = true;
		}
	} else if (w->body_lines > 0) {
		if (--w->body_lines == 0)
			w->done = true;
	}
	w->header_empty_line = true;
	w->at_line_start = true;
	w->prev_cr = false;
}

size_t msg_wire_convert(struct msg_wire *w, const char *in, size_t len,
			char *out)
{
	size_t i = 0, n = 0;

	while (i < len && !w->done) {
		const char *lf = memchr(in + i, '\n', len - i);
		size_t end = lf != NULL ? (size_t)(lf - in) : len;

		n += msg_wire_segment(w, in + i, end - i, out + n);
		i = end;
		if (lf == NULL)
			break;
		/* Bare LF becomes CRLF; an existing CRLF is kept. */
		if (!w->prev_cr)
			out[n++] = '\r';
		out[n++] = '\n';
		i++;
		msg_wire_line_end(w);
	}
	return n;
}

size_t msg_wire_finish(struct msg_wire *w, char *out)
{
	if (w->at_line_start)
		return 0;
	out[0] = '\r';
	out[1] = '\n';
	w->at_line_start = true;
	w->prev_cr = false;
	return 2;
}

int msg_wire_size_fd(int fd, uint64_t *size_r)
{
	char buf[MAILDIR_IO_BUFFER];
	uint64_t size = 0;
	char last = '\n';
	bool empty = true;

	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		const char *p, *end;

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		empty = false;
		size += (uint64_t)r;
		p = buf;
		end = buf + r;
		while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			char prev = p == buf ? last : p[-1];

			if (prev != '\r')
				size++;
			p++;
		}
		last = buf[r - 1];
	}
	/* msg_wire_finish ends an unterminated last line with CRLF. */
	if (!empty && last != '\n')
		size += 2;
	*size_r = size;
	return 0;
}
