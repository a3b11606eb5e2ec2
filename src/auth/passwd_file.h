/*
 * The users file, in Dovecot's passwd-file form:
 *   name:{SCHEME}hash[:uid:gid:gecos:home:shell:extra_fields]
 * One user per line, '#' comments and blank lines ignored. Names are
 * canonicalised with username_normalize(); a line that cannot be used is
 * skipped with a warning naming its line number.
 */
#ifndef POSTD_PASSWD_FILE_H
#define POSTD_PASSWD_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct passwd_entry {
	char *name;	/* canonical "local@domain" */
	char *password; /* "{SCHEME}data" */
	char *extra;	/* extra fields (space separated key=value), or NULL */
	int line;
};

struct passwd_db;

/*
 * Loads path. Problems with single lines (syntax, unknown scheme, weak
 * scheme, duplicate name) are logged with log_warn() naming path:line and
 * the line is skipped (a weak scheme is kept). Returns 0, or -1 with
 * error_r set if the file cannot be read at all.
 */
int passwd_db_load(const char *path, struct passwd_db **db_r,
		   const char **error_r);
/* An empty table, filled by passwd_db_add(): users from elsewhere than
 * the file (userdb = pgsql) for the retention pass. */
struct passwd_db *passwd_db_new(void);
/* Adds a canonical name; false if it is there already. extra may be NULL
 * or empty. */
bool passwd_db_add(struct passwd_db *db, const char *name, const char *password,
		   const char *extra);
/* Looks up a canonical name; NULL if absent. O(1). */
const struct passwd_entry *passwd_db_lookup(const struct passwd_db *db,
					    const char *name);
size_t passwd_db_count(const struct passwd_db *db);
/* Lines skipped by passwd_db_load() (each already logged), and the first
 * one's number: an import refuses a file that is not wholly usable. */
size_t passwd_db_skipped(const struct passwd_db *db, int *first_line_r);
/* Entries in file order, for postctl user list. */
const struct passwd_entry *passwd_db_entry(const struct passwd_db *db,
					   size_t i);
void passwd_db_free(struct passwd_db **db);

/*
 * Edits the file for postctl: adds name with hash (fails if it exists
 * and replace is false; fails if it does not exist and create is false).
 * The edit is atomic: an exclusive lock on path.lock, a new file written
 * next to it, fsynced, renamed over path, directory fsynced. Other lines,
 * comments and extra fields are kept as they were. A missing file is
 * created with mode 0600. Returns 0 or -1 with error_r (static or
 * thread-local text).
 */
int passwd_file_set(const char *path, const char *name, const char *hash,
		    bool create, bool replace, const char **error_r);
int passwd_file_delete(const char *path, const char *name,
		       const char **error_r);

#endif
