/*
 * A user's IMAP folders, in Dovecot's Maildir++ layout, so that a site can
 * move between Dovecot and postd with the same files: INBOX is the user's
 * Maildir root (the one POP3 serves); every other folder is a Maildir in a
 * sub-directory of the root named "." + the folder name with the hierarchy
 * separator '/' written as '.', in modified UTF-7 (RFC 3501 5.1.3), e.g.
 * "Archive/2026" -> ".Archive.2026", "Entwürfe" -> ".Entw&APw-rfe".
 *
 * Names here are IMAP names in UTF-8 with '/' as separator, already
 * validated by folder_name_valid(); no function turns an unvalidated name
 * into a path (INV-S2, INV-U1). Every directory is opened beneath the
 * Maildir root descriptor with O_NOFOLLOW.
 *
 * Also kept at the root, as Dovecot keeps them: "subscriptions" (one name
 * per line, with a "V\t2" header) and the special-use attributes of
 * folders made with CREATE-SPECIAL-USE (postd-special-use).
 */
#ifndef POSTD_FOLDER_H
#define POSTD_FOLDER_H

#include <stdbool.h>
#include <stddef.h>

/* SPECIAL-USE attributes (RFC 6154), as bits. */
enum folder_special {
	FOLDER_SPECIAL_NONE = 0,
	FOLDER_SPECIAL_ALL = 1 << 0,
	FOLDER_SPECIAL_ARCHIVE = 1 << 1,
	FOLDER_SPECIAL_DRAFTS = 1 << 2,
	FOLDER_SPECIAL_FLAGGED = 1 << 3,
	FOLDER_SPECIAL_JUNK = 1 << 4,
	FOLDER_SPECIAL_SENT = 1 << 5,
	FOLDER_SPECIAL_TRASH = 1 << 6,
};

/* "\\Sent" -> FOLDER_SPECIAL_SENT (case-insensitive); 0 if unknown. */
unsigned folder_special_from_name(const char *attr);
/* Writes the attributes of bits as "\\Drafts \\Sent" (no leading space). */
void folder_special_format(unsigned bits, char *out, size_t out_size);

/*
 * True when name (UTF-8, '/' separated) may name a folder: 1..FOLDER_MAX_NAME
 * bytes, valid UTF-8, no control characters, no empty component, no
 * component "." or "..", no component starting with '.', no '.' or '\\' or
 * '~' inside a component (they cannot be written in Maildir++), at most
 * FOLDER_MAX_DEPTH components. "INBOX" in any case is INBOX. On false,
 * *why_r says why (for the client and the log).
 */
bool folder_name_valid(const char *name, const char **why_r);

/* True for "INBOX" in any case (RFC 3501 5.1). */
bool folder_is_inbox(const char *name);

/*
 * Modified UTF-7 (RFC 3501 5.1.3), for clients that did not ENABLE
 * UTF8=ACCEPT and for the names on disk. encode: UTF-8 -> mUTF-7;
 * decode: mUTF-7 -> UTF-8, accepting only the canonical spelling (so a
 * name has one form). Return 0, or -1 for invalid input or when out is too
 * small.
 */
int folder_mutf7_encode(const char *utf8, char *out, size_t out_size);
int folder_mutf7_decode(const char *mutf7, char *out, size_t out_size);

/* The Maildir++ directory of a valid non-INBOX name ("Archive/2026" ->
 * ".Archive.2026"), and back (-1 for a directory that is no folder). */
int folder_disk_name(const char *name, char *out, size_t out_size);
int folder_name_from_disk(const char *disk, char *out, size_t out_size);

struct folder_info {
	char *name;	  /* UTF-8, '/' separated; "INBOX" for the root */
	unsigned special; /* enum folder_special bits */
	bool subscribed;
	bool has_children; /* some folder below it exists */
	bool nonexistent;  /* only a parent of existing folders (no dir) */
	/* Not on disk and no parent of a folder: only subscribed (RFC 3501
	 * 6.3.6 keeps a subscription when its folder goes). nonexistent
	 * too. Plain LIST skips these; LSUB and LIST (SUBSCRIBED) show them. */
	bool only_subscribed;
};

/*
 * Every folder of the Maildir at root_fd, INBOX first, then the others
 * sorted by name, at most FOLDER_MAX_PER_USER. Returns 0 with a list the
 * caller frees with folder_list_free(), or -1 with error (size error_size).
 */
int folder_list(int root_fd, struct folder_info **list_r, size_t *count_r,
		char *error, size_t error_size);
void folder_list_free(struct folder_info **list, size_t count);

/* Results of the changing calls, each with a cause in error. */
enum folder_status {
	FOLDER_OK = 0,
	FOLDER_EXISTS,	     /* [ALREADYEXISTS] */
	FOLDER_NOT_FOUND,    /* [NONEXISTENT] */
	FOLDER_NOT_ALLOWED,  /* INBOX rename/delete rules, bad name: [CANNOT] */
	FOLDER_LIMIT,	     /* too many folders: [LIMIT] */
	FOLDER_HAS_CHILDREN, /* delete of a folder with children: see RFC 3501
			      */
	FOLDER_TEMPFAIL,     /* I/O: [UNAVAILABLE] / [SERVERBUG] */
};

/*
 * Opens the folder's Maildir (the root for INBOX) as an O_DIRECTORY
 * descriptor; FOLDER_NOT_FOUND if it does not exist.
 */
enum folder_status folder_open(int root_fd, const char *name, int *fd_r,
			       char *error, size_t error_size);

/*
 * CREATE: makes the folder (new/ cur/ tmp/, and the "maildirfolder" file
 * Maildir++ readers expect), parents included, fsyncing each parent whose
 * entries changed. special: enum folder_special bits to record (0: none).
 */
enum folder_status folder_create(int root_fd, const char *name,
				 unsigned special, char *error,
				 size_t error_size);
/* DELETE (RFC 3501 6.3.4): removes the folder's messages and directory;
 * with children, only the messages (the name stays, \Noselect). INBOX
 * cannot be deleted. */
enum folder_status folder_delete(int root_fd, const char *name, char *error,
				 size_t error_size);
/* RENAME (RFC 3501 6.3.5): renames the folder and its children; renaming
 * INBOX moves its messages into a new folder and leaves INBOX empty. */
enum folder_status folder_rename(int root_fd, const char *from, const char *to,
				 char *error, size_t error_size);

/* SUBSCRIBE / UNSUBSCRIBE: rewrites the subscriptions file atomically. */
enum folder_status folder_subscribe(int root_fd, const char *name, bool on,
				    char *error, size_t error_size);

/*
 * The first login: creates Drafts, Sent, Trash, Junk and Archive with their
 * SPECIAL-USE attributes and subscribes them, if missing. Idempotent.
 */
enum folder_status folder_ensure_defaults(int root_fd, char *error,
					  size_t error_size);

#endif
