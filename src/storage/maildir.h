/*
 * Maildir: one per user at DATA_DIR/mail/DOMAIN/LOCAL/ with new/, cur/
 * and tmp/. Paths are always opened beneath a directory descriptor with
 * O_NOFOLLOW, from names checked by username_is_canonical() (INV-U1).
 *
 * Messages are stored with LF line ends (as mutt and Dovecot expect).
 * File names carry both sizes, as Dovecot's do:
 *   SECS.MUSECSPPIDQCOUNTERRRANDOM.HOST,S=STORED,W=WIRE
 * where WIRE is the size with CRLF line ends, the octet count POP3 shows.
 */
#ifndef POSTD_MAILDIR_H
#define POSTD_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Opens the Maildir of user (canonical) beneath root_fd (DATA_DIR/mail),
 * creating the domain and user folders and new/ cur/ tmp/ (mode 0700) if
 * create is set. Returns an O_DIRECTORY descriptor or -1 with error_r.
 */
int maildir_open(int root_fd, const char *user, bool create,
		 const char **error_r);

struct maildir_delivery;

/*
 * Starts a delivery into the Maildir at maildir_fd: creates a uniquely
 * named file in tmp/ (INV-D3). Returns NULL with error_r on failure.
 */
struct maildir_delivery *maildir_delivery_begin(int maildir_fd,
						const char **error_r);
/*
 * Appends message bytes. CRLF is stored as LF; a CR at the end of one
 * chunk is held until the next. Returns 0, or -1 with error_r (the
 * delivery must then be aborted). *enospc_r is set when the disk is full.
 */
int maildir_delivery_write(struct maildir_delivery *d, const void *data,
			   size_t len, const char **error_r);
/*
 * Makes the message durable and visible (INV-D1, INV-D3): write out,
 * fsync, close, rename tmp/NAME to new/NAME,S=..,W=.., fsync new/.
 * On success writes the final base name to name_r (size >= 256) and
 * frees *d. On failure removes the tmp file, frees *d, returns -1 with
 * error_r; errno_r gets the errno (ENOSPC, EDQUOT, EIO...).
 */
int maildir_delivery_commit(struct maildir_delivery **d, char *name_r,
			    size_t name_size, int *errno_r,
			    const char **error_r);
/* Removes the tmp file and frees *d. */
void maildir_delivery_abort(struct maildir_delivery **d);

/*
 * A new unique base name, SECS.MUSECPPIDQCOUNTERRRANDOM.HOST (INV-D3),
 * for a file in tmp/ (and then new/). Thread-safe. Returns 0, or -1 with
 * errno when out is too small.
 */
int maildir_unique_name(char *out, size_t out_size);

/* Removes files in tmp/ older than 36 hours (INV-D3). Returns the number
 * removed. */
int maildir_reap_tmp(int maildir_fd, time_t now);

/*
 * The hold folder MAILDIR/postd-pop3-hold/: where an IMAP expunge in INBOX
 * puts the file instead of unlinking it, so that a POP3 session that
 * listed it can still RETR it (INV-P2). No leading dot, so no Maildir++
 * reader takes it for a folder; only a holder of the POP3 lock empties it
 * (mailbox_hold_release(), mailbox_open(), mailbox_close()).
 */
#define MAILDIR_HOLD_DIR "postd-pop3-hold"

/* Opens the hold folder of the Maildir at maildir_fd. With create, makes
 * it when missing (0700, the Maildir fsynced). -1 with errno otherwise
 * (ENOENT: none yet). */
int maildir_hold_open(int maildir_fd, bool create);

/* Moves NAME from the folder from_fd (new/ or cur/) into the hold folder
 * under the same name. The caller fsyncs from_fd. -1 with errno. */
int maildir_hold_move(int from_fd, const char *name, int hold_fd);

/* Opens read-only the held file whose base name (the name up to ':') is
 * base[0..base_len). -1 with errno ENOENT when no such file is held. */
int maildir_hold_find(int maildir_fd, const char *base, size_t base_len);

/* Unlinks every file in the hold folder. Only for a holder of the POP3
 * lock (no session then lists what is held). Returns the number
 * removed. */
size_t maildir_hold_purge(int maildir_fd);

/*
 * Parses ",S=" and ",W=" from a Maildir base name. Returns true if W
 * was present (and sets *wire_size_r).
 */
bool maildir_name_wire_size(const char *name, uint64_t *wire_size_r);

#endif
