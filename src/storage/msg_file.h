/*
 * A message file being written in the Maildir convention, shared by
 * postctl's delivery (maildir.c) and SMTP's spool (spool.c): CRLF is
 * stored as LF, any other CR is kept, and both sizes Dovecot puts in a
 * Maildir name are counted on the way: the stored size (,S=) and the wire
 * size with CRLF line ends (,W=), which is what msg_wire sends and POP3
 * LIST shows. Writes go through a buffer.
 */
#ifndef POSTD_MSG_FILE_H
#define POSTD_MSG_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/postd_limits.h"

struct msg_file {
	int fd;	     /* the file being written, -1 once closed */
	bool failed; /* a write failed: saved_errno says why */
	int saved_errno;
	bool held_cr; /* the input so far ended with CR: it may start CRLF */
	char last;    /* the last stored byte */
	uint64_t stored;
	uint64_t wire;
	size_t buf_len;
	char buf[MAILDIR_IO_BUFFER];
};

void msg_file_init(struct msg_file *f, int fd);
/* Appends message bytes. Returns 0, or -1 with f->saved_errno (and
 * every later call fails the same way). */
int msg_file_write(struct msg_file *f, const void *data, size_t len);
/* Writes out the buffer. Returns 0 or -1 as msg_file_write(). */
int msg_file_flush(struct msg_file *f);
/* The end of the message: stores a held CR, writes everything out, and
 * counts the CRLF that msg_wire_finish() adds to a message that does not
 * end with a line end. The caller then fsyncs and closes f->fd. */
int msg_file_finish(struct msg_file *f);

#endif
