/*
 * Delivery status notifications (RFC 3464, RFC 3462 multipart/report):
 * the message a sender gets back when the queue gives up on a recipient
 * ("failed") or has not delivered it for delay_warning_time ("delayed").
 * Never sent for a message with the null reverse-path <> (RFC 5321
 * section 4.5.5: never bounce a bounce).
 */
#ifndef POSTD_DSN_H
#define POSTD_DSN_H

#include <stddef.h>
#include <time.h>

#include "config/config.h"
#include "storage/queue.h"

enum dsn_action {
	DSN_FAILED,  /* Action: failed, Status 5.x.x */
	DSN_DELAYED, /* Action: delayed, Status 4.x.x, still trying */
};

struct dsn_rcpt {
	const char *addr;	/* Final-Recipient: rfc822; ADDR */
	const char *status;	/* "5.1.1", "4.4.1", ... (RFC 3463) */
	const char *diagnostic; /* the remote reply "550 5.1.1 No such user",
				 * or NULL (no reply: a local cause) */
	const char *remote_mta; /* host name the reply came from, or NULL */
	const char *reason;	/* plain words for the human-readable part,
				 * as "the remote server said the mailbox
				 * does not exist" */
};

/*
 * Builds the DSN for rcpts of env (whose message is queue msg/ID) and
 * puts it into the queue as a new entry from <> to env->sender, written
 * as durably as a received message (INV-D1): file fsynced, msg/ linked,
 * envelope renamed into env/, both folders fsynced. It attaches the
 * original message's header section (text/rfc822-headers). Its first
 * bytes are "Return-Path: <>" (the entry's skip), as for mail received
 * by SMTP. The runner delivers it like any entry (into the local Maildir
 * when the sender is local).
 *
 * Returns 1 and the new id in id_r, 0 when nothing was queued because
 * env->sender is <>, or -1 with error_r.
 */
int dsn_queue(int queue_fd, const struct config *cfg,
	      const struct queue_envelope *env, enum dsn_action action,
	      const struct dsn_rcpt *rcpts, size_t rcpt_count, time_t now,
	      char *id_r, size_t id_size, const char **error_r);

#endif
