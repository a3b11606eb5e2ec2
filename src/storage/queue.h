/*
 * The outbound queue: DATA_DIR/queue/ with
 *   tmp/         files being written (spool tmp files, envelopes)
 *   msg/ID       the message (a hard link to the spooled file)
 *   env/ID       its envelope, written to tmp/ and renamed into place
 *   quarantine/  entries a reader refused (ID.env, ID.msg)
 *   hold/ID      envelopes put on hold (the runner ignores them)
 * An entry exists once env/ID does; msg/ID is always linked first, so a
 * visible envelope without its message is damage, not a race (INV-D2).
 *
 * Envelope (text, LF line ends, one field per line, in this order):
 *   postd-queue 2
 *   id ID
 *   created UNIXTIME
 *   size BYTES                  (size of msg/ID)
 *   skip BYTES                  (leading bytes a relay does not send)
 *   sender <ADDR>               (<> for the null reverse-path)
 *   notified delay|-            ("delay": the delayed DSN was queued)
 *   rcpt <ADDR> STATE ATTEMPTS NEXT_TRY LAST_ERROR   (1..QUEUE_MAX_RCPTS)
 *   end
 * ADDR and LAST_ERROR are escaped: bytes outside 0x21..0x7e and + < > =
 * become +HH (as RFC 3461 xtext), so no CR, LF, NUL or space reaches the
 * file (INV-S2). LAST_ERROR is "-" when there is none. STATE is pending,
 * sent or failed. Anything else makes the reader quarantine the entry.
 * Version 1 files (no "notified" line) still load, delay_notified false.
 * See doc/internals/queue.md.
 */
#ifndef POSTD_QUEUE_H
#define POSTD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/postd_limits.h"

#define QUEUE_DIR "queue"
#define QUEUE_SUBDIR_TMP "tmp"
#define QUEUE_SUBDIR_MSG "msg"
#define QUEUE_SUBDIR_ENV "env"
#define QUEUE_SUBDIR_QUARANTINE "quarantine"
#define QUEUE_SUBDIR_HOLD "hold" /* env/ID moved here by "queue hold" */
#define QUEUE_FORMAT_VERSION 2

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING,
	QUEUE_RCPT_SENT,
	QUEUE_RCPT_FAILED,
};

struct queue_rcpt {
	char *addr; /* forward-path without <> */
	enum queue_rcpt_state state;
	uint32_t attempts;
	uint64_t next_try; /* unix time; 0: as soon as possible */
	char *last_error;  /* NULL: none */
};

struct queue_envelope {
	char id[QUEUE_MAX_ID + 1];
	uint64_t created;
	uint64_t size;
	uint64_t skip;
	char *sender; /* reverse-path without <>, "" for <> */
	struct queue_rcpt *rcpts;
	size_t rcpt_count;
	bool delay_notified; /* the "delayed" DSN has been queued */
};

/*
 * Opens DATA_DIR/queue beneath data_fd (O_NOFOLLOW), creating it and its
 * four folders (mode 0700) if create is set. Returns an O_DIRECTORY
 * descriptor or -1 with error_r and errno.
 */
int queue_open(int data_fd, bool create, const char **error_r);

/* Makes a new id (hex time, microseconds and random digits) in id_r
 * (size > QUEUE_MAX_ID). */
void queue_id_new(char *id_r, size_t id_size);
/* 1..QUEUE_MAX_ID characters of [0-9A-Za-z]: safe as a file name. */
bool queue_id_valid(const char *id);

/*
 * Writes env as tmp/ID.env, fsyncs and closes it (each checked, INV-D1),
 * and renames it to env/ID without replacing anything. env/ is NOT
 * fsynced: the caller does that (the spool fsyncs each folder once per
 * batch). The message must already be at msg/ID. Returns 0, or -1 with
 * *errno_r and error_r (no file left behind).
 */
int queue_envelope_write(int queue_fd, const struct queue_envelope *env,
			 int *errno_r, const char **error_r);

/*
 * Reads and checks env/ID (INV-D2): version, field order, id equal to
 * the file name, msg/ID present with the recorded size, skip <= size,
 * bounded counts and lengths, the end marker and nothing after it.
 * Returns 1 and *env_r, 0 if env/ID does not exist, or -1 with error_r
 * when the entry was invalid: it has then been moved to quarantine/ and
 * logged. A read error (EIO, EMFILE) also returns -1 but quarantines
 * nothing; errno tells the two apart (EBADMSG: quarantined).
 */
int queue_entry_load(int queue_fd, const char *id,
		     struct queue_envelope **env_r, const char **error_r);
void queue_envelope_free(struct queue_envelope **env);

/* Moves env/ID and msg/ID (whichever exist) to quarantine/ID.env and
 * quarantine/ID.msg and logs reason. Returns 0 or -1. */
int queue_quarantine(int queue_fd, const char *id, const char *reason);

/* Called for each valid entry; a non-zero return stops the walk. */
typedef int queue_list_fn(void *ctx, const struct queue_envelope *env);
/*
 * Walks env/ and calls fn for each entry that loads, in directory order.
 * Invalid entries are quarantined and counted in *quarantined_r (may be
 * NULL). Returns 0, fn's non-zero value, or -1 with error_r.
 */
int queue_list(int queue_fd, queue_list_fn *fn, void *ctx,
	       unsigned *quarantined_r, const char **error_r);

/*
 * Removes the entry: env/ID first (so it stops existing), then msg/ID,
 * then fsyncs env/ and msg/. Returns 0, or -1 with errno (ENOENT: no such
 * entry, EINVAL: bad id) and error_r.
 */
int queue_delete(int queue_fd, const char *id, const char **error_r);

struct queue_recover_stats {
	unsigned tmp_removed;
	unsigned quarantined;
};
/*
 * Start-up recovery (INV-D4): removes everything in tmp/ (nothing is
 * being written before the daemon runs), quarantines envelopes without a
 * message, invalid envelopes, and messages without an envelope whose
 * mtime is more than QUEUE_ORPHAN_AGE seconds before now. Returns 0 or
 * -1 with error_r.
 */
int queue_recover(int queue_fd, time_t now, struct queue_recover_stats *r,
		  const char **error_r);

/*
 * Locking between the queue runner and postctl: an OFD write lock on
 * msg/ID (the inode never changes while the entry lives, unlike env/ID,
 * which is replaced by rename). Whoever changes an entry holds it: the
 * runner for a whole delivery attempt, postctl for retry, hold, release
 * and delete. With wait false a held lock fails at once with EAGAIN.
 * Returns a lock descriptor, or -1 with errno (ENOENT: no such entry)
 * and error_r.
 */
int queue_entry_lock(int queue_fd, const char *id, bool wait,
		     const char **error_r);
void queue_entry_unlock(int *lock_fd);

/*
 * Replaces env/ID with env (the caller holds the entry's lock): written
 * to tmp/, fsynced, renamed over env/ID, env/ fsynced (INV-D1). Fails
 * with ENOENT, writing nothing, if env/ID no longer exists (deleted or
 * held meanwhile). Returns 0 or -1 with errno and error_r.
 */
int queue_envelope_update(int queue_fd, const struct queue_envelope *env,
			  const char **error_r);

/* Moves env/ID to hold/ID (the runner then ignores it) and back. Both
 * take the lock, waiting for an attempt in flight. Returns 0 or -1 with
 * errno (ENOENT: not in the queue, or not held) and error_r. */
int queue_hold(int queue_fd, const char *id, const char **error_r);
int queue_release(int queue_fd, const char *id, const char **error_r);

/* Makes every pending recipient of ID due now (next_try 0). Returns 0 or
 * -1 with errno and error_r. */
int queue_retry_now(int queue_fd, const char *id, const char **error_r);

/* As queue_list(), over hold/. */
int queue_list_held(int queue_fd, queue_list_fn *fn, void *ctx,
		    unsigned *quarantined_r, const char **error_r);

/*
 * Added for the queue runner, which works on thousands of entries and
 * should not reopen env/ and msg/ by name for every step: the folders'
 * descriptors, opened once. queue_fd is borrowed.
 */
struct queue_dirs {
	int queue_fd;
	int env_fd, msg_fd;
};
/* Returns 0, or -1 with errno and error_r (nothing left open). */
int queue_dirs_open(int queue_fd, struct queue_dirs *dirs_r,
		    const char **error_r);
void queue_dirs_close(struct queue_dirs *dirs);
/* queue_entry_lock() and queue_entry_load(), beneath the open folders
 * (same results, same quarantine on an invalid entry). */
int queue_entry_lock_at(const struct queue_dirs *dirs, const char *id,
			bool wait, const char **error_r);
int queue_entry_load_at(const struct queue_dirs *dirs, const char *id,
			struct queue_envelope **env_r, const char **error_r);
/*
 * Removes env/ID, then msg/ID (the caller holds the lock), like
 * queue_delete() of a queued entry but WITHOUT the folder fsyncs: the
 * caller runs queue_dirs_sync() later, once for many removals (group
 * commit). Until then a power loss may bring the entry back, which
 * means one more delivery, never a loss (INV-D4). Returns 0, or -1 with
 * errno (ENOENT: env/ID does not exist) and error_r.
 */
int queue_entry_remove(const struct queue_dirs *dirs, const char *id,
		       const char **error_r);
/* fsyncs env/, then msg/. Returns 0 or -1 with errno and error_r. */
int queue_dirs_sync(const struct queue_dirs *dirs, const char **error_r);

/*
 * Reads the header section of msg/ID (from env->skip on, stored form with
 * LF line ends) into buf, at most size bytes: *len_r bytes were read and
 * the header section is buf[0, *end_r), ending with its last LF (0 when
 * the message has no header). A header longer than size is cut after its
 * last complete line in buf; *cut_r says so. Returns 0, or -1 with errno
 * and error_r.
 */
int queue_read_header(int queue_fd, const struct queue_envelope *env, char *buf,
		      size_t size, size_t *len_r, size_t *end_r, bool *cut_r,
		      const char **error_r);

#endif
