/*
 * IMAP command syntax (RFC 9051 section 9, RFC 3501 section 9): a whole
 * command as it came over the wire, its lines and the literals between
 * them, turned into a tag, a command name and a tree of arguments. Pure
 * (no I/O): the session collects the bytes (answering "+ " to synchronising
 * literals), the fuzzers and unit tests drive this directly. Bounded by
 * IMAP_MAX_* in lib/postd_limits.h.
 *
 * The higher-level parsers take the argument tree made here:
 *   imap_seqset.h      sequence sets ("1:*", "$"), resolve, iterate, write
 *   imap_fetch_parse.h FETCH attributes and sections; STORE/APPEND flags
 *   imap_search.h      SEARCH programs, their evaluation, ESEARCH
 *   imap_mutf7.h       modified UTF-7 mailbox names <-> UTF-8
 *   imap_date.h        date and date-time (SEARCH, APPEND, INTERNALDATE)
 */
#ifndef POSTD_IMAP_PARSE_H
#define POSTD_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/postd_limits.h"

/*
 * A line ending in a literal announcement: "{N}" (synchronising: the
 * server sends "+ " first), "{N+}" (LITERAL+ / LITERAL-), "~{N}" or
 * "~{N+}" (literal8, RFC 3516). line excludes the CRLF.
 */
struct imap_literal_ann {
	uint64_t size;
	bool nonsync; /* {N+} */
	bool binary;  /* ~{N} */
};
/* 1 with *ann filled when line ends in an announcement, 0 when not, -1
 * when it ends in a malformed one (a bad number, over 2^63). */
int imap_line_literal(const char *line, size_t len,
		      struct imap_literal_ann *ann);

enum imap_arg_type {
	IMAP_ARG_ATOM,	  /* also "1:*", "BODY.PEEK[HEADER.FIELDS (A)]<0.5>" */
	IMAP_ARG_QUOTED,  /* "..." with \\ and \" unescaped */
	IMAP_ARG_LITERAL, /* {N}: may contain NUL (literal8) */
	IMAP_ARG_LIST,	  /* ( ... ) */
	IMAP_ARG_NIL,	  /* the atom NIL */
};

struct imap_arg {
	enum imap_arg_type type;
	/* ATOM, QUOTED, LITERAL: the bytes, NUL-terminated (use len: a
	 * literal8 may hold NUL). */
	const char *str;
	size_t len;
	bool literal8;
	/* LIST */
	struct imap_arg *list;
	size_t list_count;
};

struct imap_command {
	char tag[IMAP_MAX_TAG + 1];
	char name[32]; /* upper case; "UID FETCH" etc. is "UID" + args */
	struct imap_arg *args;
	size_t arg_count;
	struct imap_arena *arena; /* owns everything above */
};

/*
 * Parses one command: wire[0..len) is the first line, and for every
 * literal the announcement, CRLF, the literal's bytes, then the rest of
 * the line, without the final CRLF. An atom containing '[' runs to the
 * matching ']' (spaces and parentheses included) and then to the next
 * space or ')', as fetch-att and section need. Returns 0, or -1 with
 * *error_r (for "BAD": safe to send) and, when the tag could be read,
 * cmd->tag set (else "*").
 *
 * What is read: tag = ASTRING-CHARs but '+'; the name = ATOM-CHARs (at
 * most 31, upper-cased); arguments separated by spaces (extra spaces are
 * tolerated, a missing one is not). Atoms may also hold '%', '*', ']'
 * and '\' (LIST patterns, sets, flags), never CTL, 8-bit, '"' or '{'.
 * Quoted strings take only \\ and \" escapes, no CR/LF/NUL, and 8-bit
 * only as valid UTF-8. A {N} literal may not hold NUL; a ~{N} literal8
 * may. Errors: a bad tag or name, unterminated quoted string or list,
 * unexpected ')', a malformed or short literal, more than IMAP_MAX_ARGS
 * arguments (lists counted) or lists deeper than IMAP_MAX_LIST_DEPTH.
 *
 * On success everything in *cmd lives until imap_command_free(); on
 * failure nothing is left allocated (imap_command_free() is harmless).
 */
int imap_parse_command(const char *wire, size_t len, struct imap_command *cmd,
		       const char **error_r);
void imap_command_free(struct imap_command *cmd);

/* astring (atom, quoted or literal) as a C string; NULL for a list, NIL,
 * or a string with NUL inside. */
const char *imap_arg_astring(const struct imap_arg *arg);
/* True for an atom equal to word, case-insensitively. A NIL argument is
 * the atom "NIL" here (its str is "NIL" too, for the few places where NIL
 * is an ordinary astring, such as a mailbox named NIL). */
bool imap_arg_is_atom(const struct imap_arg *arg, const char *word);

/*
 * The arena behind a parsed command: many small allocations freed at once.
 * The higher-level parsers (imap_fetch_parse.h, imap_search.h) use it too.
 * Allocation failure is fatal (lib/xmalloc.h), so these never return NULL.
 */
struct imap_arena *imap_arena_new(void);
void imap_arena_free(struct imap_arena **arena);
/* size bytes, zeroed, aligned for any type. */
void *imap_arena_alloc(struct imap_arena *arena, size_t size);
/* A NUL-terminated copy of s[0..len). */
char *imap_arena_strndup(struct imap_arena *arena, const char *s, size_t len);

/*
 * For responses: s[0..len) as an IMAP string, quoted ("\\" and "\"" escaped)
 * when it can be, else as a literal "{N}\r\n..." (CR, LF or NUL inside, or
 * 8-bit when !utf8_ok or not valid UTF-8). imap_write_astring() writes
 * an atom when every byte is an ASTRING-CHAR and s is not "NIL".
 * Return 0, or -1 when out is full.
 */
int imap_write_string(struct buf *out, const char *s, size_t len, bool utf8_ok);
int imap_write_astring(struct buf *out, const char *s, size_t len,
		       bool utf8_ok);

/* True when s[0..len) is valid UTF-8 (no overlong forms, no surrogates). */
bool imap_utf8_valid(const char *s, size_t len);

#endif
