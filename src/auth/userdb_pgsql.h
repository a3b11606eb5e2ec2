/*
 * Users in PostgreSQL (userdb = pgsql), for the auth process: lookups run
 * over libpq's asynchronous API on the process's own event loop, so a
 * slow or dead server never stalls it. A small pool of connections
 * (pgsql_pool_size) runs one prepared statement each; a query that takes
 * longer than pgsql_query_timeout is answered "unavailable" and its
 * connection dropped. A connection that cannot be made is retried with a
 * growing delay, alternating with pgsql_conninfo_failover when set.
 * Answers are cached: a found user for userdb_cache_ttl, an unknown one
 * for userdb_negative_cache_ttl; "unavailable" is never cached.
 */
#ifndef POSTD_USERDB_PGSQL_H
#define POSTD_USERDB_PGSQL_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "auth/passwd_file.h"
#include "config/config.h"

enum userdb_status {
	USERDB_FOUND,
	USERDB_UNKNOWN,
	/* The database could not answer (down, timed out, an SQL error):
	 * a temporary failure, never "unknown user". */
	USERDB_UNAVAILABLE,
	/* The directory is being freed: the callback frees its argument
	 * and does nothing else. */
	USERDB_ABORTED,
};

/* A found user: password is the stored hash, extra the users-file style
 * extra fields (retention=... login_delay=... and the extra column). Both
 * are valid only during the callback. */
struct userdb_user {
	const char *password;
	const char *extra;
};

typedef void userdb_found_cb(enum userdb_status status,
			     const struct userdb_user *user, void *arg);
/* One alias row: key ("info@example.org" or "@example.net") and its
 * comma-separated targets. */
typedef void userdb_alias_cb(void *ctx, const char *key, const char *targets);

struct userdb_pgsql;

/* Starts connecting (without waiting). Never fails: a server that cannot
 * be reached makes lookups answer USERDB_UNAVAILABLE until it can. */
struct userdb_pgsql *userdb_pgsql_new(const struct config *cfg,
				      struct event_base *base);
/* Answers every pending lookup with USERDB_ABORTED, then frees. */
void userdb_pgsql_free(struct userdb_pgsql **pg);

/* Looks up a canonical name; cb runs later from the loop, or at once
 * from the cache or when nothing can be queued. */
void userdb_pgsql_lookup(struct userdb_pgsql *pg, const char *name,
			 userdb_found_cb *cb, void *arg);
/* Forgets every cached answer (SIGHUP). */
void userdb_pgsql_flush(struct userdb_pgsql *pg);

/*
 * Runs pgsql_alias_query. When it succeeds, reset(ctx) is called, then
 * add(ctx, key, targets) for each row, then done(ctx, true); when it
 * fails, only done(ctx, false), so the caller keeps its old table. Any
 * callback may be NULL. A second load while one runs is ignored.
 */
void userdb_pgsql_load_aliases(struct userdb_pgsql *pg,
			       void (*reset)(void *ctx), userdb_alias_cb *add,
			       void (*done)(void *ctx, bool ok), void *ctx);

/* Builds the users-file style extra fields of a row from its retention,
 * login_delay and extra columns (each may be NULL). Exposed for tests. */
void userdb_pgsql_extra(char *out, size_t size, const char *retention,
			const char *login_delay, const char *extra);

/*
 * For the retention pass and postctl (synchronous; never in the auth
 * process): reads every user with pgsql_iterate_query into a users
 * table, as passwd_db_load() reads the file. Returns 0, or -1 with
 * error_r (static text).
 */
int userdb_pgsql_load_all(const struct config *cfg, struct passwd_db **db_r,
			  const char **error_r);

/* Every user of the configured userdb (the users file or the database),
 * for the retention pass and postctl expire. Returns 0, or -1 with
 * error_r. */
int userdb_load_all(const struct config *cfg, struct passwd_db **db_r,
		    const char **error_r);
/* "users file PATH" or "user database", for messages. */
const char *userdb_describe(const struct config *cfg, char *buf, size_t size);

#endif
