/*
 * FETCH attributes (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ) and
 * STORE / APPEND flags (RFC 9051 6.4.6, 6.3.12), from the argument tree
 * of imap_parse_command(). Pure: the session decides what to read and
 * writes the responses; these only say what was asked, validated.
 */
#ifndef POSTD_IMAP_FETCH_PARSE_H
#define POSTD_IMAP_FETCH_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "mime/mime.h"
#include "proto/imap/imap_parse.h"
#include "storage/mail_index.h"

enum imap_fetch_item {
	IMAP_FETCH_FLAGS,
	IMAP_FETCH_INTERNALDATE,
	IMAP_FETCH_RFC822,	  /* = BODY[], sets \Seen */
	IMAP_FETCH_RFC822_HEADER, /* = BODY.PEEK[HEADER] */
	IMAP_FETCH_RFC822_SIZE,
	IMAP_FETCH_RFC822_TEXT, /* = BODY[TEXT], sets \Seen */
	IMAP_FETCH_ENVELOPE,
	IMAP_FETCH_BODY,	  /* BODY without a section: the structure */
	IMAP_FETCH_BODYSTRUCTURE, /* with extension data */
	IMAP_FETCH_UID,
	IMAP_FETCH_BODY_SECTION, /* BODY[...] and BODY.PEEK[...] */
	IMAP_FETCH_BINARY,	 /* BINARY[part] and BINARY.PEEK[part] */
	IMAP_FETCH_BINARY_SIZE,	 /* BINARY.SIZE[part] */
	IMAP_FETCH_MODSEQ,	 /* RFC 7162 (CONDSTORE) */
};

struct imap_fetch_att {
	enum imap_fetch_item item;
	/* BODY.PEEK / BINARY.PEEK / RFC822.HEADER: leave \Seen alone. */
	bool peek;
	/* BODY_SECTION, RFC822, RFC822_HEADER, RFC822_TEXT: the section
	 * (RFC822* get the equivalent one). BINARY, BINARY_SIZE: part and
	 * depth only (kind MIME_SECTION_ALL). */
	struct mime_section section;
	/* <offset.count>; in the response only <offset> is written. */
	bool partial;
	uint64_t offset;
	uint64_t count;
	/* The name the response gives this item, e.g. "FLAGS",
	 * "BODY[HEADER.FIELDS (DATE FROM)]<0>", "BINARY.SIZE[1]". */
	const char *label;
};

struct imap_fetch {
	struct imap_fetch_att *atts;
	size_t count;
	size_t cap; /* allocated entries of atts */
	/* Some item sets \Seen (BODY[...] without PEEK, RFC822,
	 * RFC822.TEXT, BINARY[...]): on a read-write mailbox the session
	 * sets it and answers FLAGS too. */
	bool sets_seen;
	/* Some item needs the message's bytes or structure, not just the
	 * index (ENVELOPE, BODY*, RFC822*, BINARY*). RFC822.SIZE does not. */
	bool needs_message;
	/* FETCH modifier (CHANGEDSINCE n) (RFC 7162 3.1.4.1); it implies
	 * MODSEQ, which is then among atts. */
	bool changedsince_set;
	uint64_t changedsince;
	struct imap_arena *arena; /* owns atts, labels, field names */
};

/*
 * args[0..count) after the sequence set: a macro (ALL, FAST, FULL), one
 * attribute, or a list of attributes; then optionally a modifier list
 * "(CHANGEDSINCE n)". Returns 0, or -1 with *error_r (for BAD) and *out
 * empty.
 */
int imap_fetch_parse(const struct imap_arg *args, size_t count,
		     struct imap_fetch *out, const char **error_r);
/* UID FETCH answers UID whether asked or not (RFC 9051 6.4.9). */
void imap_fetch_ensure_uid(struct imap_fetch *fetch);
void imap_fetch_free(struct imap_fetch *fetch);

/*
 * Flags as STORE and APPEND take them: system flags as enum mail_flag
 * bits (\Seen \Answered \Flagged \Deleted \Draft), keywords as atoms
 * (deduplicated case-insensitively, at most MAIL_MAX_KEYWORD_LEN long,
 * at most MAIL_MAX_KEYWORDS different ones: no folder can hold more).
 * \Recent cannot be set by a client and \* is only a PERMANENTFLAGS
 * announcement: both are refused, as is any other "\" flag.
 */
struct imap_flags {
	uint32_t system;
	const char **keywords;
	size_t keyword_count;
};

/*
 * A flag-list "(\Seen $Junk)" (one LIST argument), or, as STORE also
 * allows, flags as separate atoms. Allocates keywords in arena.
 */
int imap_flags_parse(const struct imap_arg *args, size_t count,
		     struct imap_arena *arena, struct imap_flags *out,
		     const char **error_r);

/* Writes "(\Seen \Recent $Junk)": system flags (MAIL_RECENT too) then
 * keywords. Returns 0, or -1 when out is full. */
int imap_flags_write(uint32_t system, const char *const *keywords,
		     size_t keyword_count, struct buf *out);

struct imap_store {
	enum mail_store_mode mode; /* FLAGS, +FLAGS, -FLAGS */
	bool silent;		   /* .SILENT: no untagged FETCH back */
	/* (UNCHANGEDSINCE n), RFC 7162 3.1.3 */
	bool unchangedsince_set;
	uint64_t unchangedsince;
	struct imap_flags flags;
	struct imap_arena *arena;
};

/*
 * args[0..count) after the sequence set: ["(UNCHANGEDSINCE n)"]
 * ("FLAGS" / "+FLAGS" / "-FLAGS")[".SILENT"] then the flags. Returns 0, or
 * -1 with *error_r (for BAD) and *out empty.
 */
int imap_store_parse(const struct imap_arg *args, size_t count,
		     struct imap_store *out, const char **error_r);
void imap_store_free(struct imap_store *store);

#endif
