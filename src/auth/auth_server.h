/*
 * The auth process: the only process that reads the users file and sees
 * password hashes. It answers each worker over its own socket, verifies
 * hashes in a small thread pool so that slow schemes (bcrypt, Argon2)
 * never stall its loop, and runs the tarpit (INV-A1): a peer with recent
 * failures waits before its next password is checked, longer for every
 * failure, and each failure reply is held back a fixed delay with
 * jitter; a peer has a bounded share of the process. The process exits
 * when every worker socket has closed.
 *
 * The daemon's reload (SIGHUP to the parent) replaces this process with a
 * new one, which reads the users file and the aliases file as root
 * (auth_server_preload()). A SIGHUP sent to this process itself re-reads
 * both in place, but as the run user inside the chroot: with a file
 * readable by root alone that fails and the old contents stay (logged).
 */
#ifndef POSTD_AUTH_SERVER_H
#define POSTD_AUTH_SERVER_H

#include <stddef.h>

#include "auth/userdb_pgsql.h"
#include "config/config.h"

/*
 * Loads the users file now, while the process still runs as root, so
 * that the file can stay readable by root alone (0600): the run user,
 * which the workers share, never reads a hash. auth_server_run() then
 * starts from these users. A new generation of processes reads the file
 * afresh on the parent's SIGHUP. Returns 0, or -1 (logged).
 */
int auth_server_preload(const struct config *cfg);

/*
 * Loads aliases_file (if set) now, before the chroot into the users
 * file's folder hides it; auth_server_run() starts from these aliases
 * when it also starts from preloaded users. Returns 0, or -1 (logged).
 */
int auth_server_preload_aliases(const struct config *cfg);

/* The users file's path as configured, for log lines written after a
 * chroot has shortened cfg->users_file. */
void auth_server_set_users_path(const char *configured);

/* Runs the auth process until all worker_fds have closed or SIGTERM.
 * Returns the process exit code. */
int auth_server_run(const struct config *cfg, const int *worker_fds,
		    size_t worker_count);

/*
 * userdb = pgsql: where the rows of the aliases table go (see
 * userdb_pgsql_load_aliases()): loaded when the auth process starts, on
 * SIGHUP and every userdb_cache_ttl. Set before auth_server_run(); NULL
 * (the default): aliases are not loaded from the database.
 */
struct auth_alias_sink {
	void (*reset)(void *ctx);
	userdb_alias_cb *add;
	void (*done)(void *ctx, bool ok);
	void *ctx;
};
extern const struct auth_alias_sink *auth_server_alias_sink;

/* The size of the secret the tarpit table is keyed with. */
#define AUTH_PEER_SECRET_SIZE 16

/* For tests: when not NULL, auth_server_run() keys the tarpit table with
 * this secret (AUTH_PEER_SECRET_SIZE bytes) instead of a random one. */
extern const unsigned char *auth_server_peer_secret;

/* The tarpit slot a peer key (see auth_peer_key()) is looked for from,
 * under secret: exposed so that a test can fill a peer's slots. */
size_t auth_peer_slot(const unsigned char *secret, const char *key);

#endif
