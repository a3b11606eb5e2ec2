/*
 * Writing one message file in the Maildir convention (CRLF stored as LF,
 * both sizes counted); which file and which folder is maildir.c's or
 * spool.c's business, and msg_wire.c reads the file back out.
 */
#include "storage/msg_file.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int msg_file_store_cr(struct msg_file *f);

void msg_file_init(struct msg_file *f, int fd)
{
	f->fd = fd;
	f->failed = false;
	f->saved_errno = 0;
	f->held_cr = false;
	f->last = '\n';
	f->stored = 0;
	f->wire = 0;
	f->buf_len = 0;
}

int msg_file_flush(struct msg_file *f)
{
	size_t off = 0;

	if (f->failed)
		return -1;
	while (off < f->buf_len) {
		ssize_t w = write(f->fd, f->buf + off, f->buf_len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			f->failed = true;
			f->saved_errno = errno;
			return -1;
		}
		off += (size_t)w;
	}
	f->buf_len = 0;
	return 0;
}

/* A CR that turned out not to start a CRLF: kept as it is. */
static int msg_file_store_cr(struct msg_file *f)
{
	if (f->buf_len == sizeof(f->buf) && msg_file_flush(f) < 0)
		return -1;
	f->buf[f->buf_len++] = '\r';
	f->stored++;
	f->wire++;
	f->last = '\r';
	return 0;
}

int msg_file_write(struct msg_file *f, const void *data, size_t len)
{
	const char *p = data;

	if (f->failed)
		return -1;
	for (size_t i = 0; i < len;) {
		const char *cr;
		size_t run;

		if (f->held_cr) {
			f->held_cr = false;
			/* CRLF is stored as LF; any other CR is kept. */
			if (p[i] != '\n' && msg_file_store_cr(f) < 0)
				return -1;
		}
		if (p[i] == '\r') {
			f->held_cr = true;
			i++;
			continue;
		}
		/* The bytes up to the next CR are stored as they are, in one
		 * copy. Every LF of the run becomes CRLF on the wire, except
		 * one that follows a kept CR ("\r\r\n" is stored as "\r\n",
		 * which the wire sends as it is). */
		cr = memchr(p + i, '\r', len - i);
		run = (cr != NULL ? (size_t)(cr - p) : len) - i;
		if (run > sizeof(f->buf) - f->buf_len) {
			if (msg_file_flush(f) < 0)
				return -1;
			if (run > sizeof(f->buf))
				run = sizeof(f->buf);
		}
		if (p[i] == '\n' && f->last == '\r')
			f->wire--;
		memcpy(f->buf + f->buf_len, p + i, run);
		f->buf_len += run;
		f->stored += run;
		f->wire += run;
		for (const char *lf = memchr(p + i, '\n', run); lf != NULL;
		     lf = memchr(lf + 1, '\n', (size_t)(p + i + run - lf - 1)))
			f->wire++;
		f->last = p[i + run - 1];
		i += run;
	}
	return 0;
}

int msg_file_finish(struct msg_file *f)
{
	if (f->held_cr) {
		f->held_cr = false;
		if (msg_file_store_cr(f) < 0)
			return -1;
	}
	if (msg_file_flush(f) < 0)
		return -1;
	if (f->stored > 0 && f->last != '\n')
		f->wire += 2;
	return 0;
}
