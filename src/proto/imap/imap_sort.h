/*
 * SORT and UID SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO, RFC 5267
 * ESORT and PARTIAL) and THREAD / UID THREAD (RFC 5256 ORDEREDSUBJECT and
 * REFERENCES), in imap_sort.c. The keys come from imap_sortkeys.h, the
 * threading from imap_thread.h.
 */
#ifndef POSTD_IMAP_SORT_H
#define POSTD_IMAP_SORT_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/imap/imap_commands.h"

imap_handler_fn imap_cmd_sort, imap_cmd_thread;

/*
 * imap_search_cmd.c: runs the search program v[0..n) (what follows the
 * charset) on the view: the matching messages' indexes in *seq0s_r
 * (ascending; free() it) and their number. False after a BAD reply.
 */
bool imap_search_collect(struct imap_session *s, const struct imap_arg *v,
			 size_t n, size_t **seq0s_r, size_t *count_r);

#endif
