/*
 * A user's mailbox as a POP3 session sees it: a fixed snapshot (INV-P2)
 * taken under an exclusive lock, read from a small index that is brought
 * up to date with one readdir of new/ and cur/ per open.
 *
 * The index (MAILDIR/postd-index) records per message: IMAP UID (strictly
 * increasing, never reused, INV-I1), wire size, delivery time (the file's
 * mtime), first retrieval time, and base name. It is a cache: deleting it
 * loses only UIDs (UIDVALIDITY changes), and it is rebuilt from the
 * Maildir. POP3 UIDLs come from the Maildir base name, so they survive a
 * lost index too.
 *
 * The POP3 lock is an OFD lock (fcntl F_OFD_SETLK) on MAILDIR/postd-pop3.lock,
 * which conflicts between sessions of one process, between processes, and
 * over NFS between machines. The lock file names its holder.
 */
#ifndef POSTD_MAILBOX_H
#define POSTD_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct mailbox_msg {
	uint32_t uid;
	uint64_t size;	  /* octets on the wire (CRLF line ends) */
	time_t delivered; /* the file's mtime */
	time_t retrieved; /* first retrieval recorded, 0 if never */
	const char *uidl; /* 1..70 chars of 0x21..0x7e, unique, stable */
	const char *name; /* base name as found: "new/..." or "cur/..." */
};

/* Who holds the lock: written into the lock file for the IN-USE log. */
struct mailbox_owner {
	const char *session_id;
	const char *peer;
	const char *user;
};

enum mailbox_status {
	MAILBOX_OK = 0,
	MAILBOX_IN_USE,	  /* another session holds the lock: -ERR [IN-USE] */
	MAILBOX_TEMPFAIL, /* I/O error: -ERR [SYS/TEMP] */
};

struct mailbox;

/*
 * Locks and snapshots the Maildir at maildir_fd (the descriptor stays
 * owned by the caller and must outlive the mailbox). On MAILBOX_IN_USE or
 * MAILBOX_TEMPFAIL, writes the cause into error (for the log: for IN-USE
 * it names the holder's session, peer and since when).
 */
enum mailbox_status mailbox_open(int maildir_fd,
				 const struct mailbox_owner *owner,
				 struct mailbox **box_r, char *error,
				 size_t error_size);

size_t mailbox_count(const struct mailbox *box);
/* i is 0-based. */
const struct mailbox_msg *mailbox_msg(const struct mailbox *box, size_t i);
uint32_t mailbox_uidvalidity(const struct mailbox *box);

/*
 * Opens message i for reading. Finds it in new/ or cur/ even if another
 * program renamed it (flags changed) since the snapshot, and in the hold
 * folder if IMAP expunged it since (maildir.h). Returns an fd, or -1 if
 * the message is gone (then error says so).
 */
int mailbox_msg_open(struct mailbox *box, size_t i, char *error,
		     size_t error_size);

/* Records the first retrieval of message i (kept in the index). */
void mailbox_mark_retrieved(struct mailbox *box, size_t i, time_t now);

/* Who removes messages: there are exactly two callers. */
enum mailbox_expunger {
	/* A POP3 session after QUIT, in the UPDATE state (INV-P1). */
	MAILBOX_EXPUNGE_POP3_UPDATE,
	/* The retention pass (expire_mailbox()), on a mailbox that no
	 * session held when it took the lock (INV-P2). */
	MAILBOX_EXPUNGE_RETENTION,
};

/*
 * Removes the messages whose deleted[i] is set, fsyncs the directories,
 * and updates the index; by says which of the two callers asks. The
 * caller holds the lock (an open mailbox), so no session's snapshot
 * changes under it. A message already gone counts as removed. Returns
 * the number that could not be removed (0 on full success), with the
 * first cause in error.
 */
size_t mailbox_expunge(struct mailbox *box, const bool *deleted,
		       enum mailbox_expunger by, char *error,
		       size_t error_size);

/*
 * For IMAP after it moved expunged INBOX files into the hold folder
 * (maildir.h): takes the POP3 lock without waiting and, if no session
 * holds it, empties the hold folder and releases the lock. If a session
 * holds it, that session empties the folder when it closes; a crash
 * leaves it to the next mailbox_open(). Never waits for a POP3 session.
 */
void mailbox_hold_release(int maildir_fd);

/* Empties the hold folder, writes the index if it changed and releases
 * the lock. */
void mailbox_close(struct mailbox **box);

#endif
