/*
 * The IMAP index of one folder (a Maildir: INBOX's root or a Maildir++
 * sub-folder): UIDs, system flags, keywords, modification sequences and
 * delivery times, shared by every session of every process that opens the
 * folder, and a per-session view of it (the sequence numbers a client has
 * been told about).
 *
 * The Maildir stays the truth for what exists and for the system flags
 * (":2,DFRST" in the file name, as every Maildir reader expects); the index
 * adds what Maildir cannot hold (UIDs, keywords beyond the file name,
 * modseqs) and is rebuilt from the Maildir when lost (new UIDVALIDITY).
 * UIDs strictly increase and are never reused (INV-I1). Its files live in
 * the folder's directory and are named postd-imap*; the design and the fsync
 * policy are in doc/internals/imap-index.md.
 *
 * Flags and keywords given to these calls are already validated by the
 * protocol layer; keyword names are IMAP atoms.
 */
#ifndef POSTD_MAIL_INDEX_H
#define POSTD_MAIL_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* System flags, as bits. MAIL_RECENT is per session (RFC 3501 2.3.2):
 * the index gives it to exactly one view, the first that saw the message. */
enum mail_flag {
	MAIL_SEEN = 1 << 0,
	MAIL_ANSWERED = 1 << 1,
	MAIL_FLAGGED = 1 << 2,
	MAIL_DELETED = 1 << 3,
	MAIL_DRAFT = 1 << 4,
	MAIL_RECENT = 1 << 5,
};

struct mail_msg {
	uint32_t uid;
	uint32_t flags;	     /* enum mail_flag bits (MAIL_RECENT if ours) */
	uint64_t keywords;   /* bit i: keyword i of mail_view_keyword() */
	uint64_t modseq;     /* last change (RFC 7162 ready) */
	time_t internaldate; /* delivery time: the file's mtime / APPEND date */
	uint64_t size;	     /* RFC822.SIZE: octets with CRLF line ends */
	bool expunged;	     /* gone, but not yet announced to this view */
};

enum mail_status {
	MAIL_OK = 0,
	MAIL_NOT_FOUND, /* message or folder gone: [NONEXISTENT] / NO */
	MAIL_LIMIT,	/* a bound (keywords, messages): [LIMIT] */
	MAIL_NOSPACE,	/* ENOSPC/EDQUOT: [OVERQUOTA] */
	MAIL_TEMPFAIL,	/* I/O error: [UNAVAILABLE] / [SERVERBUG] */
};

struct mail_view;

/*
 * Opens the index of the folder at folder_fd (owned by the caller; must
 * outlive the view), brings it up to date with the Maildir and makes a
 * view of every message. readonly (EXAMINE): the view never changes flags
 * and takes no \Recent; it shows as \Recent what no view has taken yet.
 */
enum mail_status mail_view_open(int folder_fd, bool readonly,
				struct mail_view **view_r, char *error,
				size_t error_size);
void mail_view_close(struct mail_view **view);

uint32_t mail_view_uidvalidity(const struct mail_view *view);
/* True once the folder's index was rebuilt under this view (a new
 * UIDVALIDITY): the UIDs and sequence numbers it told are void, and a
 * session that selected it must end (RFC 9051 2.3.1.1). */
bool mail_view_uids_void(const struct mail_view *view);
uint32_t mail_view_uidnext(const struct mail_view *view);
uint64_t mail_view_highest_modseq(const struct mail_view *view);

/* Messages in the view: sequence numbers 1..count are indexes 0..count-1. */
size_t mail_view_count(const struct mail_view *view);
const struct mail_msg *mail_view_msg(const struct mail_view *view, size_t seq0);
/* The index of uid in the view, or SIZE_MAX. */
size_t mail_view_find_uid(const struct mail_view *view, uint32_t uid);
size_t mail_view_recent_count(const struct mail_view *view);

/* Keywords of the folder (at most MAIL_MAX_KEYWORDS). */
size_t mail_view_keyword_count(const struct mail_view *view);
const char *mail_view_keyword(const struct mail_view *view, size_t i);
/* The bit of keyword name (case-insensitive), defining it if create is
 * set. Returns -1 when unknown, or MAIL_MAX_KEYWORDS are defined. */
int mail_view_keyword_bit(struct mail_view *view, const char *name,
			  bool create);

/*
 * What a sync found, in the order a client must be told (RFC 9051 7.5):
 * each expunge with the index it had at that moment (the view has already
 * dropped it, so later indexes shift), flag changes by others, then the
 * new count when messages arrived.
 */
struct mail_sync_cb {
	void (*expunged)(void *ctx, size_t seq0);
	void (*flags_changed)(void *ctx, size_t seq0);
	void (*exists)(void *ctx, size_t count);
};

/*
 * Brings the view up to date with changes made by other sessions, other
 * processes and other Maildir programs (new files, renamed flags,
 * removed files). With allow_expunge false (during FETCH, STORE, SEARCH by
 * sequence number: RFC 9051 7.5.1) expunged messages stay in the view with
 * .expunged set until a later sync may announce them.
 */
enum mail_status mail_view_sync(struct mail_view *view, bool allow_expunge,
				const struct mail_sync_cb *cb, void *ctx,
				char *error, size_t error_size);

enum mail_store_mode { MAIL_STORE_SET, MAIL_STORE_ADD, MAIL_STORE_REMOVE };

/*
 * STORE on one message: changes its flags and keywords, gives it a new
 * modseq, renames its file to carry the system flags (new/ -> cur/ with
 * ":2,..."), and records the change so other views see it. MAIL_RECENT in
 * flags is ignored. Durable before it returns (doc/internals/imap-index.md).
 */
enum mail_status mail_view_store(struct mail_view *view, size_t seq0,
				 enum mail_store_mode mode, uint32_t flags,
				 uint64_t keywords, char *error,
				 size_t error_size);

/*
 * EXPUNGE: removes the messages of the view that have \Deleted and, when
 * uids is not NULL, whose UID is among uids[0..uid_count) (UID EXPUNGE,
 * RFC 4315). Each removal is reported through cb->expunged. Durable and
 * atomic as seen by other sessions (a message is there or gone).
 */
enum mail_status mail_view_expunge(struct mail_view *view, const uint32_t *uids,
				   size_t uid_count,
				   const struct mail_sync_cb *cb, void *ctx,
				   char *error, size_t error_size);

/*
 * The retention pass's removal (autoexpunge.FOLDER,
 * doc/internals/retention.md): the messages whose UID is among
 * uids[0..uid_count), whatever their flags, also through a read-only view
 * (the pass opens one so that it takes no \Recent from the user). As
 * durable as mail_view_expunge(); other views see EXPUNGE at their next
 * sync. This view drops them at once.
 */
enum mail_status mail_view_expunge_uids(struct mail_view *view,
					const uint32_t *uids, size_t uid_count,
					char *error, size_t error_size);

/*
 * COPY / MOVE of the messages at seq0s[0..n) into the folder at dest_fd:
 * hard links where the file system allows (a copy otherwise), flags and
 * keywords kept, new UIDs in the destination, all durable before return.
 * dest_uids_r (n entries) and *dest_uidvalidity_r give COPYUID (RFC 4315).
 * move: then expunges the sources as mail_view_expunge() does (RFC 6851),
 * reporting them through cb.
 */
enum mail_status mail_view_copy(struct mail_view *view, const size_t *seq0s,
				size_t n, int dest_fd, bool move,
				uint32_t *dest_uidvalidity_r,
				uint32_t *dest_uids_r,
				const struct mail_sync_cb *cb, void *ctx,
				char *error, size_t error_size);

/* Opens a message for reading (stored bytes, LF line ends: msg_wire.h
 * makes the wire form). Returns an fd, or -1 if gone (error says so). */
int mail_view_msg_open(struct mail_view *view, size_t seq0, char *error,
		       size_t error_size);

/*
 * The parsed structure of a message, cached per folder so that it is
 * parsed once (doc/internals/imap-index.md): an opaque blob the MIME layer
 * made. get returns MAIL_NOT_FOUND when nothing is cached, else a copy in
 * *blob_r that the caller releases with free().
 */
enum mail_status mail_view_cache_get(struct mail_view *view, size_t seq0,
				     void **blob_r, size_t *len_r);
void mail_view_cache_put(struct mail_view *view, size_t seq0, const void *blob,
			 size_t len);

/*
 * APPEND into the folder at folder_fd (selected or not): bytes arrive in
 * wire form (CRLF) and are stored as every delivery is (maildir.h);
 * commit makes them durable (file and folder fsynced, INV-D1) and gives
 * the UID for APPENDUID (RFC 4315).
 */
struct mail_append;
enum mail_status mail_append_begin(int folder_fd, struct mail_append **a_r,
				   char *error, size_t error_size);
enum mail_status mail_append_write(struct mail_append *a, const void *data,
				   size_t len, char *error, size_t error_size);
/* keywords: names (at most MAIL_MAX_KEYWORDS). internaldate 0: now. */
enum mail_status mail_append_commit(struct mail_append **a, uint32_t flags,
				    const char *const *keywords,
				    size_t keyword_count, time_t internaldate,
				    uint32_t *uidvalidity_r, uint32_t *uid_r,
				    char *error, size_t error_size);
void mail_append_abort(struct mail_append **a);

/* STATUS of a folder that need not be selected (RFC 9051 6.3.11). */
struct mail_folder_status {
	uint32_t messages, recent, unseen, deleted;
	uint32_t uidnext, uidvalidity;
	uint64_t size; /* STATUS=SIZE: sum of RFC822.SIZE */
	uint64_t highest_modseq;
};
enum mail_status mail_folder_status(int folder_fd,
				    struct mail_folder_status *st, char *error,
				    size_t error_size);

/*
 * Parses data as the contents of an index log (postd-imap.log) without
 * touching any file: 0 when every record is valid, -1 when the index
 * would be rejected and rebuilt. For the fuzz target.
 */
int mail_index_check(const void *data, size_t len);

#endif
