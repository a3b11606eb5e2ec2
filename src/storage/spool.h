/*
 * Receiving a message for local Maildirs and the outbound queue (SMTP):
 * the message is written once, to a file in tmp/, and then committed -
 * fsynced, hard-linked into every recipient's new/ (and into the queue),
 * and the directories fsynced - by a small pool of threads, so the event
 * loop never waits for a disk flush. Concurrent commits overlap in the
 * kernel's journal (group commit); a directory named by several commits
 * of one batch is fsynced once for all of them (INV-D1, INV-D3).
 *
 * One copy per message on disk: local recipients share the file through
 * hard links; a copy is made only where a link is impossible (EXDEV).
 */
#ifndef POSTD_SPOOL_H
#define POSTD_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct spool_msg;
struct spool_pool;
struct spool_job;

/*
 * Starts a message in the tmp/ folder beneath dir_fd: a Maildir (the
 * first local recipient's) or the queue folder (see queue.h). Returns
 * NULL with error_r on failure.
 */
struct spool_msg *spool_msg_begin(int dir_fd, const char **error_r);
/* Appends bytes; CRLF is stored as LF (Maildir convention). Returns 0 or
 * -1 with error_r (the message must then be aborted). */
int spool_msg_write(struct spool_msg *m, const void *data, size_t len,
		    const char **error_r);
/* Bytes stored so far. */
uint64_t spool_msg_size(const struct spool_msg *m);
/* Removes the tmp file and frees *m. */
void spool_msg_abort(struct spool_msg **m);

/* Where a committed message goes. */
struct spool_target {
	const int *maildir_fds; /* local recipients' Maildirs (duplicated) */
	size_t maildir_count;
	int queue_fd; /* the queue folder, or -1 if nothing is queued */
	/* For the queue envelope: */
	const char *sender;		 /* reverse-path, "" for <> */
	const char *const *remote_rcpts; /* forward-paths */
	size_t remote_count;
	/* Leading bytes of the stored file that final delivery adds
	 * (Return-Path) and a relay must not send on. */
	size_t skip;
	/* Forwarded recipients (an alias to another server): a second queue
	 * entry of the same file, with the SRS-rewritten reverse-path. Both
	 * entries are durable before done reports success (INV-D1). */
	const char *forward_sender;
	const char *const *forward_rcpts;
	size_t forward_count;
};

/*
 * Called on the event loop thread when a commit ends. err is 0 when the
 * message is durable everywhere, else an errno (ENOSPC, EDQUOT, EIO, ...)
 * with error naming what failed; then nothing of it is visible.
 * queue_id is the queue entry's id, "ID,ID" with a forward entry (or
 * NULL).
 */
typedef void spool_done_fn(void *ctx, int err, const char *error,
			   const char *queue_id);

/* threads: 0 means a default (4): more threads overlap more fsyncs. */
struct spool_pool *spool_pool_new(struct event_base *base, unsigned threads);
/* Waits for running commits to finish. */
void spool_pool_free(struct spool_pool **pool);

/*
 * Hands *m to the pool (sets *m to NULL). done runs exactly once unless
 * the job is forgotten first. Returns the job handle.
 */
struct spool_job *spool_commit(struct spool_pool *pool, struct spool_msg **m,
			       const struct spool_target *target,
			       spool_done_fn *done, void *ctx);
/* The session went away: the commit still completes (the client may have
 * seen nothing, a duplicate is allowed, a loss is not), but done is not
 * called. Sets *job to NULL. */
void spool_forget(struct spool_job **job);

#endif
