/*
 * Aliases: addresses that stand for other addresses. The table is filled
 * from a file in the format of Postfix's virtual(5), so that an admin can
 * bring theirs, or (by another backend) entry by entry with
 * alias_table_add():
 *
 *   info@example.org   alice@example.org, bob@example.org
 *   @example.net       @example.org          (domain alias)
 *   @example.org       catchall@example.org  (catch-all)
 *
 * '#' comments, blank lines, and a line starting with white space
 * continues the one before. Keys and targets are lowercased. A key
 * without '@' (Postfix's "virtual alias domain" line) is ignored: the
 * local domains are the `domains` key.
 *
 * alias_expand() resolves one address, recursively, to the final
 * mailboxes (local users) and remote addresses. Precedence as Postfix:
 * the exact address, then the address without its subaddress
 * (RFC 5233), then @domain; a real user is found after the first two but
 * before @domain, so a catch-all takes only addresses nobody has. An
 * address found without its subaddress passes it on to the targets of
 * its alias or domain alias ("info+x@" -> "bob+x@"), as Postfix's
 * propagate_unmatched_extensions.
 * Every bound is explicit: line length, targets per entry, entries,
 * expansions, results.
 */
#ifndef POSTD_ALIAS_H
#define POSTD_ALIAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "lib/postd_limits.h"

/* One address: RFC 5321's path limit, and its NUL. */
#define ALIAS_ADDR_SIZE (SMTP_MAX_PATH + 1)

struct alias_table;

struct alias_target {
	char addr[ALIAS_ADDR_SIZE];
	bool remote; /* not a local domain: to another server */
};

enum alias_status {
	ALIAS_OK = 0,
	ALIAS_UNKNOWN,	/* neither an alias nor a user */
	ALIAS_LOOP,	/* an alias leads back to itself */
	ALIAS_TOO_MANY, /* over max_expansions, ALIAS_MAX_DEPTH or
			 * ALIAS_MAX_RESULTS */
};

struct alias_result {
	size_t count;
	struct alias_target targets[ALIAS_MAX_RESULTS];
	/* Local targets that are nobody (skipped), and the first of them. */
	size_t unknown_count;
	char unknown[ALIAS_ADDR_SIZE];
	/* ALIAS_LOOP: the address met a second time. */
	char loop[ALIAS_ADDR_SIZE];
};

/* What expansion needs to know about the server. */
struct alias_env {
	bool (*is_local_domain)(const char *domain, void *ctx);
	bool (*is_user)(const char *addr, void *ctx);
	void *ctx;
	/* recipient_delimiter: '\0' disables subaddresses. */
	char delimiter;
	unsigned max_expansions; /* 0: ALIAS_MAX_EXPANSIONS_DEFAULT */
	/* Where postmaster@ and abuse@ of every local domain go when
	 * neither an alias nor a user has that name; NULL: not built in. */
	const char *postmaster;
	const char *abuse;
};

struct alias_table *alias_table_new(void);
void alias_table_free(struct alias_table **t);
/*
 * Adds key ("user@domain" or "@domain") standing for targets (addresses
 * separated by commas and/or white space; for an "@domain" key also one
 * "@domain": a domain alias). Returns 0, or -1 with *error set to a
 * malloc'd message (the caller frees it): bad syntax, duplicate key, a
 * bound exceeded.
 */
int alias_table_add(struct alias_table *t, const char *key, const char *targets,
		    char **error);
/*
 * Adds every entry of the file at path. A bad line is skipped and named
 * ("PATH:LINE: message") in *error, a malloc'd text of one problem per
 * line; the good ones are kept. Returns 0, or -1 with *error if the file
 * could not be read or a line was bad.
 */
int alias_table_load_file(struct alias_table *t, const char *path,
			  char **error);
size_t alias_table_count(const struct alias_table *t);
/* Entry i in the order added, for listing and checks; NULL past the end.
 * targets_r gets the targets joined by ", ". */
const char *alias_table_entry(const struct alias_table *t, size_t i,
			      const char **targets_r);

/*
 * Resolves addr (any case), an address of a local domain (the caller
 * decides which addresses are local), to final addresses in out,
 * duplicates removed. ALIAS_OK also for a plain user (one target:
 * itself).
 */
enum alias_status alias_expand(const struct alias_table *t,
			       const struct alias_env *env, const char *addr,
			       struct alias_result *out);

/*
 * For postd -t: expands every key and prints each loop, expansion over
 * the bound, and local target that is nobody to out, prefixed with
 * prefix. Returns the number of problems.
 */
unsigned alias_table_check(const struct alias_table *t,
			   const struct alias_env *env, const char *prefix,
			   FILE *out);

/*
 * postctl alias: adds key -> targets (fails if key exists) or deletes
 * every entry of key, atomically (lock, new file, fsync, rename, fsync
 * the folder). A missing file is created, mode 0644. Returns 0 or -1
 * with *error_r (static or thread-local text).
 */
int alias_file_add(const char *path, const char *key, const char *targets,
		   const char **error_r);
int alias_file_delete(const char *path, const char *key, const char **error_r);

#endif
