/*
 * A driver for tests/integration/test_userdb_pgsql.py: runs the auth
 * process's PostgreSQL directory (src/auth/userdb_pgsql.c) on an event
 * loop of its own, without the daemon, and prints what it answers.
 *
 *   pgsql_probe CONNINFO aliases      every alias row the callback gets
 *   pgsql_probe CONNINFO users        every user the retention pass gets
 *   pgsql_probe CONNINFO lookup NAME  one lookup, as the auth process
 *
 * Lines: "alias KEY TARGETS", "reset", "done ok|failed",
 * "user NAME EXTRA", "found HASH EXTRA", "unknown", "unavailable". Exit 0
 * when the load or the lookup succeeded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth/passwd_file.h"
#include "auth/userdb_pgsql.h"
#include "config/config.h"
#include "lib/xmalloc.h"

struct probe {
	struct event_base *base;
	bool ok, finished;
};

static void probe_reset(void *ctx);
static void probe_add(void *ctx, const char *key, const char *targets);
static void probe_done(void *ctx, bool ok);
static int probe_aliases(const struct config *cfg);
static int probe_users(const struct config *cfg);
static int probe_lookup(const struct config *cfg, const char *name);
static void probe_found(enum userdb_status status,
			const struct userdb_user *user, void *arg);

static void probe_reset(void *ctx)
{
	(void)ctx;
	printf("reset\n");
}

static void probe_add(void *ctx, const char *key, const char *targets)
{
	(void)ctx;
	printf("alias %s %s\n", key, targets);
}

static void probe_done(void *ctx, bool ok)
{
	struct probe *p = ctx;

	printf("done %s\n", ok ? "ok" : "failed");
	p->ok = ok;
	p->finished = true;
	event_base_loopbreak(p->base);
}

static int probe_aliases(const struct config *cfg)
{
	struct probe p = {.base = event_base_new()};
	struct userdb_pgsql *pg;

	if (p.base == NULL)
		return 2;
	pg = userdb_pgsql_new(cfg, p.base);
	userdb_pgsql_load_aliases(pg, probe_reset, probe_add, probe_done, &p);
	/* A load that fails at once has answered already. */
	if (!p.finished)
		event_base_dispatch(p.base);
	userdb_pgsql_free(&pg);
	event_base_free(p.base);
	return p.ok ? 0 : 1;
}

static int probe_users(const struct config *cfg)
{
	struct passwd_db *db;
	const char *error;

	if (userdb_load_all(cfg, &db, &error) < 0) {
		printf("error %s\n", error);
		return 1;
	}
	for (size_t i = 0; i < passwd_db_count(db); i++) {
		const struct passwd_entry *e = passwd_db_entry(db, i);

		printf("user %s %s\n", e->name,
		       e->extra != NULL ? e->extra : "");
	}
	passwd_db_free(&db);
	return 0;
}

static void probe_found(enum userdb_status status,
			const struct userdb_user *user, void *arg)
{
	struct probe *p = arg;

	if (status == USERDB_FOUND)
		printf("found %s %s\n", user->password, user->extra);
	else if (status == USERDB_UNKNOWN)
		printf("unknown\n");
	else
		printf("unavailable\n");
	p->ok = status != USERDB_UNAVAILABLE && status != USERDB_ABORTED;
	p->finished = true;
	event_base_loopbreak(p->base);
}

static int probe_lookup(const struct config *cfg, const char *name)
{
	struct probe p = {.base = event_base_new()};
	struct userdb_pgsql *pg;

	if (p.base == NULL)
		return 2;
	pg = userdb_pgsql_new(cfg, p.base);
	userdb_pgsql_lookup(pg, name, probe_found, &p);
	if (!p.finished)
		event_base_dispatch(p.base);
	userdb_pgsql_free(&pg);
	event_base_free(p.base);
	return p.ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct config *cfg;
	int rc;

	if (argc != 3 && !(argc == 4 && strcmp(argv[2], "lookup") == 0)) {
		fprintf(stderr, "usage: pgsql_probe CONNINFO "
				"aliases|users|lookup NAME\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	cfg = config_default("/nonexistent");
	cfg->userdb = USERDB_PGSQL;
	cfg->pgsql_conninfo = xstrdup(argv[1]);
	cfg->pgsql_pool_size = 1;
	if (strcmp(argv[2], "aliases") == 0)
		rc = probe_aliases(cfg);
	else if (strcmp(argv[2], "users") == 0)
		rc = probe_users(cfg);
	else if (strcmp(argv[2], "lookup") == 0)
		rc = probe_lookup(cfg, argv[3]);
	else
		rc = 2;
	config_free(&cfg);
	return rc;
}
