/*
 * The THREAD algorithms of RFC 5256 as pure functions over an array of
 * messages in sequence order: ORDEREDSUBJECT (section 3, first) and
 * REFERENCES (section 3, steps 1-6: Message-ID/References linking with
 * dummies, loop refusal, pruning, merging by base subject, sorting by
 * sent date). The output is the thread list of the THREAD response
 * ("(1 2)(3 (4)(5))") without "* THREAD ". Everything is iterative and
 * proportional to the messages and their references; a tree is never
 * deeper than IMAP_MAX_THREAD_DEPTH.
 */
#ifndef POSTD_IMAP_THREAD_H
#define POSTD_IMAP_THREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"

struct imap_thread_msg {
	uint32_t id;		 /* what the response names: seq or UID */
	time_t sent;		 /* sent date, INTERNALDATE when none */
	const char *subject;	 /* base subject, casemapped ("" when none) */
	bool reply;		 /* the subject was a reply or forward */
	const char *message_id;	 /* NULL when none */
	const char *const *refs; /* References, oldest first */
	size_t ref_count;
};

/* msgs[0..n) in sequence order. Return 0, or -1 when out is full. */
int imap_thread_orderedsubject(const struct imap_thread_msg *msgs, size_t n,
			       struct buf *out);
int imap_thread_references(const struct imap_thread_msg *msgs, size_t n,
			   struct buf *out);

#endif
