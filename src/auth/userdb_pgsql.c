#include "auth/userdb_pgsql.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "auth/auth_proto.h"
#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/username.h"
#include "lib/xmalloc.h"

#define PG_STATEMENT "postd_user"
/* The extra fields travel in struct auth_reply. */
#define PG_EXTRA_SIZE sizeof(((struct auth_reply *)0)->extra)

enum pg_state {
	PG_DOWN,       /* no connection; the retry timer will start one */
	PG_CONNECTING, /* PQconnectPoll() in progress */
	PG_SETUP,      /* statement_timeout and PREPARE sent */
	PG_IDLE,       /* ready for a query */
	PG_BUSY,       /* a query in flight */
};

struct pg_query {
	struct pg_query *next;
	struct userdb_pgsql *pg;
	struct pg_conn *conn; /* while in flight */
	bool aliases;	      /* pgsql_alias_query, not a user */
	char name[USERNAME_BUF_SIZE];
	userdb_found_cb *cb;
	void *arg;
	struct event *timer;
};

struct pg_conn {
	struct userdb_pgsql *pg;
	size_t index;
	PGconn *conn;
	enum pg_state state;
	bool on_failover; /* which connection string this attempt uses */
	unsigned failures;
	struct event *io;
	int io_fd;
	short io_what;
	struct event *retry;
	struct pg_query *q;
	PGresult *result; /* the first result of what is in flight */
	bool result_error;
};

struct pg_cache_entry {
	char name[USERNAME_BUF_SIZE];
	bool found;
	char *password;
	char *extra;
	uint64_t expires_ms;
};

struct userdb_pgsql {
	const struct config *cfg;
	struct event_base *base;
	struct pg_conn *conns;
	size_t conn_count;
	struct pg_query *wait_head, *wait_tail;
	size_t waiting;
	struct pg_cache_entry *cache;
	unsigned char cache_key[crypto_shorthash_KEYBYTES];
	/* The alias load in progress, if any. */
	bool aliases_running;
	void (*alias_reset)(void *ctx);
	userdb_alias_cb *alias_add;
	void (*alias_done)(void *ctx, bool ok);
	void *alias_ctx;
};

static uint64_t pg_now_ms(void);
static const char *pg_server_name(const struct pg_conn *c);
static void pg_conn_start(struct pg_conn *c);
static void pg_conn_retry(evutil_socket_t fd, short what, void *arg);
static void pg_conn_schedule(struct pg_conn *c, uint64_t delay_ms);
static void pg_conn_watch(struct pg_conn *c, short what);
static void pg_conn_io(evutil_socket_t fd, short what, void *arg);
static void pg_conn_poll_connect(struct pg_conn *c);
static void pg_conn_setup(struct pg_conn *c);
static void pg_conn_flush(struct pg_conn *c);
static void pg_conn_read(struct pg_conn *c);
static void pg_conn_finished(struct pg_conn *c);
static void pg_conn_connect_failed(struct pg_conn *c, const char *why);
static void pg_conn_broken(struct pg_conn *c, const char *why);
static void pg_conn_close(struct pg_conn *c);
static bool pg_any_alive(const struct userdb_pgsql *pg);
static void pg_dispatch(struct userdb_pgsql *pg);
static void pg_conn_send(struct pg_conn *c, struct pg_query *q);
static void pg_query_timeout(evutil_socket_t fd, short what, void *arg);
static void pg_query_enqueue(struct userdb_pgsql *pg, struct pg_query *q);
static void pg_query_unwait(struct userdb_pgsql *pg, struct pg_query *q);
static void pg_query_answer(struct pg_query *q, enum userdb_status status,
			    const struct userdb_user *user);
static void pg_query_fail(struct pg_query *q, const char *why);
static void pg_query_result(struct pg_query *q, const PGresult *res);
static void pg_aliases_result(struct userdb_pgsql *pg, const PGresult *res);
static int pg_row_user(const PGresult *res, int row, char *extra, size_t size);
static const char *pg_value(const PGresult *res, int row, const char *column);
static struct pg_cache_entry *pg_cache_slot(struct userdb_pgsql *pg,
					    const char *name);
static void pg_cache_clear(struct pg_cache_entry *e);
static void pg_cache_store(struct userdb_pgsql *pg, const char *name,
			   enum userdb_status status,
			   const struct userdb_user *user);

static uint64_t pg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pg_timeval(struct timeval *tv, uint64_t ms)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

struct userdb_pgsql *userdb_pgsql_new(const struct config *cfg,
				      struct event_base *base)
{
	struct userdb_pgsql *pg = xcalloc(1, sizeof(*pg));

	pg->cfg = cfg;
	pg->base = base;
	pg->cache = xcalloc(PG_CACHE_SLOTS, sizeof(*pg->cache));
	crypto_shorthash_keygen(pg->cache_key);
	pg->conn_count = cfg->pgsql_pool_size > 0 ? cfg->pgsql_pool_size : 1;
	pg->conns = xcalloc(pg->conn_count, sizeof(*pg->conns));
	for (size_t i = 0; i < pg->conn_count; i++) {
		struct pg_conn *c = &pg->conns[i];

		c->pg = pg;
		c->index = i;
		c->io_fd = -1;
		c->retry = evtimer_new(base, pg_conn_retry, c);
		if (c->retry == NULL)
			fatal("cannot create a timer");
		pg_conn_start(c);
	}
	return pg;
}

void userdb_pgsql_free(struct userdb_pgsql **pgp)
{
	struct userdb_pgsql *pg = *pgp;
	struct pg_query *q;

	if (pg == NULL)
		return;
	for (size_t i = 0; i < pg->conn_count; i++) {
		struct pg_conn *c = &pg->conns[i];

		if ((q = c->q) != NULL) {
			c->q = NULL;
			pg_query_answer(q, USERDB_ABORTED, NULL);
		}
		pg_conn_close(c);
		event_free(c->retry);
	}
	while ((q = pg->wait_head) != NULL) {
		pg_query_unwait(pg, q);
		pg_query_answer(q, USERDB_ABORTED, NULL);
	}
	for (size_t i = 0; i < PG_CACHE_SLOTS; i++)
		pg_cache_clear(&pg->cache[i]);
	free(pg->cache);
	free(pg->conns);
	sodium_memzero(pg->cache_key, sizeof(pg->cache_key));
	free(pg);
	*pgp = NULL;
}

static const char *pg_server_name(const struct pg_conn *c)
{
	return c->on_failover ? "failover" : "primary";
}

/* Starts a non-blocking connect (PQconnectStart/PQconnectPoll). */
static void pg_conn_start(struct pg_conn *c)
{
	const struct config *cfg = c->pg->cfg;
	const char *conninfo =
	    c->on_failover ? cfg->pgsql_conninfo_failover : cfg->pgsql_conninfo;

	if (conninfo == NULL) {
		c->on_failover = false;
		conninfo = cfg->pgsql_conninfo;
	}
	c->conn = PQconnectStart(conninfo != NULL ? conninfo : "");
	if (c->conn == NULL) {
		pg_conn_connect_failed(c, "out of memory");
		return;
	}
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		pg_conn_connect_failed(c, PQerrorMessage(c->conn));
		return;
	}
	c->state = PG_CONNECTING;
	/* As if PQconnectPoll() had said PGRES_POLLING_WRITING. */
	pg_conn_watch(c, EV_WRITE);
}

static void pg_conn_retry(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == PG_DOWN)
		pg_conn_start(c);
}

static void pg_conn_schedule(struct pg_conn *c, uint64_t delay_ms)
{
	struct timeval tv;

	pg_timeval(&tv, delay_ms);
	evtimer_add(c->retry, &tv);
}

/* Watches the connection's socket for what; the socket may change while
 * libpq tries the addresses of a host one after another. */
static void pg_conn_watch(struct pg_conn *c, short what)
{
	int fd = PQsocket(c->conn);

	if (fd < 0) {
		pg_conn_broken(c, "no socket");
		return;
	}
	if (c->io != NULL && (c->io_fd != fd || c->io_what != what)) {
		event_free(c->io);
		c->io = NULL;
	}
	if (c->io == NULL) {
		c->io = event_new(c->pg->base, fd, what | EV_PERSIST,
				  pg_conn_io, c);
		if (c->io == NULL || event_add(c->io, NULL) < 0)
			fatal("cannot watch a PostgreSQL socket");
		c->io_fd = fd;
		c->io_what = what;
	}
}

static void pg_conn_io(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *c = arg;

	(void)fd;
	switch (c->state) {
	case PG_CONNECTING:
		pg_conn_poll_connect(c);
		break;
	case PG_SETUP:
	case PG_BUSY:
		if (what & EV_WRITE)
			pg_conn_flush(c);
		if (c->state != PG_DOWN && (what & EV_READ))
			pg_conn_read(c);
		break;
	case PG_IDLE:
		/* Nothing asked: the server is closing on us (a restart,
		 * an administrator's pg_terminate_backend). */
		if (!PQconsumeInput(c->conn) ||
		    PQstatus(c->conn) == CONNECTION_BAD)
			pg_conn_broken(c, PQerrorMessage(c->conn));
		break;
	case PG_DOWN:
		break;
	}
}

static void pg_conn_poll_connect(struct pg_conn *c)
{
	switch (PQconnectPoll(c->conn)) {
	case PGRES_POLLING_READING:
		pg_conn_watch(c, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		pg_conn_watch(c, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		pg_conn_setup(c);
		break;
	case PGRES_POLLING_FAILED:
	default:
		pg_conn_connect_failed(c, PQerrorMessage(c->conn));
		break;
	}
}

/*
 * One round trip before the first query: the server cancels a statement
 * that outlives pgsql_query_timeout on its own (the client has answered
 * by then), and the user query is prepared once per connection.
 */
static void pg_conn_setup(struct pg_conn *c)
{
	const struct config *cfg = c->pg->cfg;
	size_t size = strlen(cfg->pgsql_user_query) + 128;
	char *sql = xmalloc(size);

	snprintf(sql, size,
		 "SET statement_timeout = %u; PREPARE " PG_STATEMENT
		 "(text) AS %s",
		 cfg->pgsql_query_timeout_ms, cfg->pgsql_user_query);
	if (PQsetnonblocking(c->conn, 1) < 0 || !PQsendQuery(c->conn, sql)) {
		free(sql);
		pg_conn_connect_failed(c, PQerrorMessage(c->conn));
		return;
	}
	free(sql);
	c->state = PG_SETUP;
	pg_conn_flush(c);
}

static void pg_conn_flush(struct pg_conn *c)
{
	int r = PQflush(c->conn);

	if (r < 0)
		pg_conn_broken(c, PQerrorMessage(c->conn));
	else
		pg_conn_watch(c, r == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/* Reads what has come; the first result is kept, an error remembered,
 * until PQgetResult() says the command is over. */
static void pg_conn_read(struct pg_conn *c)
{
	PGresult *res;

	if (!PQconsumeInput(c->conn)) {
		pg_conn_broken(c, PQerrorMessage(c->conn));
		return;
	}
	while (!PQisBusy(c->conn)) {
		res = PQgetResult(c->conn);
		if (res == NULL) {
			pg_conn_finished(c);
			return;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		    PQresultStatus(res) != PGRES_TUPLES_OK &&
		    !c->result_error) {
			/* The error is what the log needs to show. */
			PQclear(c->result);
			c->result = NULL;
			c->result_error = true;
		}
		if (c->result == NULL)
			c->result = res;
		else
			PQclear(res);
	}
}

/* The command in flight is over: c->result holds its answer. */
static void pg_conn_finished(struct pg_conn *c)
{
	PGresult *res = c->result;
	struct pg_query *q = c->q;
	bool error = c->result_error;

	c->result = NULL;
	c->result_error = false;
	c->q = NULL;
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		c->q = q;
		PQclear(res);
		pg_conn_broken(c, PQerrorMessage(c->conn));
		return;
	}
	if (c->state == PG_SETUP) {
		if (error) {
			char why[512];

			snprintf(why, sizeof(why), "setting up the session: %s",
				 res != NULL ? PQresultErrorMessage(res) : "");
			PQclear(res);
			pg_conn_connect_failed(c, why);
			return;
		}
		PQclear(res);
		log_info("userdb: connection %zu to the %s PostgreSQL server "
			 "ready",
			 c->index, pg_server_name(c));
		c->failures = 0;
	} else if (q != NULL && q->aliases && res != NULL) {
		event_free(q->timer);
		free(q);
		pg_aliases_result(c->pg, res);
		PQclear(res);
	} else if (q != NULL) {
		if (res == NULL)
			pg_query_fail(q, "no result");
		else
			pg_query_result(q, res);
		PQclear(res);
	} else {
		PQclear(res);
	}
	c->state = PG_IDLE;
	pg_conn_watch(c, EV_READ);
	pg_dispatch(c->pg);
}

/*
 * A connection could not be made (or set up). Lookups waiting are
 * answered at once if no connection is left that might serve them. The
 * next attempt goes to the other server when a failover is configured.
 */
static void pg_conn_connect_failed(struct pg_conn *c, const char *why)
{
	char esc[512];
	uint64_t delay = PG_BACKOFF_MIN_MS;

	log_warn("userdb: connection %zu to the %s PostgreSQL server "
		 "failed: %s",
		 c->index, pg_server_name(c),
		 log_escape(esc, sizeof(esc), why, strcspn(why, "\n")));
	pg_conn_close(c);
	for (unsigned i = 0; i < c->failures && delay < PG_BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > PG_BACKOFF_MAX_MS)
		delay = PG_BACKOFF_MAX_MS;
	c->failures++;
	if (c->pg->cfg->pgsql_conninfo_failover != NULL) {
		c->on_failover = !c->on_failover;
		/* The other server may well be up: try it at once, so that
		 * the lookups waiting need not fail. */
		if (c->failures % 2 == 1)
			pg_conn_start(c);
		else
			pg_conn_schedule(c, delay);
	} else {
		pg_conn_schedule(c, delay);
	}
	if (!pg_any_alive(c->pg)) {
		struct pg_query *q;

		while ((q = c->pg->wait_head) != NULL) {
			pg_query_unwait(c->pg, q);
			pg_query_fail(q, "no connection to the database");
		}
	}
}

/* A working connection ended: its query fails, a new one starts at once
 * (then with growing delays if that fails). */
static void pg_conn_broken(struct pg_conn *c, const char *why)
{
	struct pg_query *q = c->q;
	char esc[512];

	c->q = NULL;
	if (c->state == PG_CONNECTING || c->state == PG_SETUP) {
		pg_conn_connect_failed(c, why);
		return;
	}
	log_warn("userdb: connection %zu to the %s PostgreSQL server lost: %s",
		 c->index, pg_server_name(c),
		 log_escape(esc, sizeof(esc), why, strcspn(why, "\n")));
	pg_conn_close(c);
	if (q != NULL)
		pg_query_fail(q, "connection lost");
	/* Back to the primary first, when the failover was in use. */
	c->on_failover = false;
	pg_conn_schedule(c, 0);
}

static void pg_conn_close(struct pg_conn *c)
{
	if (c->io != NULL)
		event_free(c->io);
	c->io = NULL;
	c->io_fd = -1;
	PQclear(c->result);
	c->result = NULL;
	c->result_error = false;
	if (c->conn != NULL)
		PQfinish(c->conn);
	c->conn = NULL;
	c->state = PG_DOWN;
}

static bool pg_any_alive(const struct userdb_pgsql *pg)
{
	for (size_t i = 0; i < pg->conn_count; i++) {
		if (pg->conns[i].state != PG_DOWN)
			return true;
	}
	return false;
}

static void pg_dispatch(struct userdb_pgsql *pg)
{
	for (size_t i = 0; i < pg->conn_count && pg->wait_head != NULL; i++) {
		struct pg_conn *c = &pg->conns[i];
		struct pg_query *q;

		if (c->state != PG_IDLE)
			continue;
		q = pg->wait_head;
		pg_query_unwait(pg, q);
		pg_conn_send(c, q);
	}
}

static void pg_conn_send(struct pg_conn *c, struct pg_query *q)
{
	const char *values[1] = {q->name};
	int ok;

	if (q->aliases)
		ok = PQsendQuery(c->conn, c->pg->cfg->pgsql_alias_query);
	else
		ok = PQsendQueryPrepared(c->conn, PG_STATEMENT, 1, values, NULL,
					 NULL, 0);
	c->q = q;
	q->conn = c;
	if (!ok) {
		pg_conn_broken(c, PQerrorMessage(c->conn));
		return;
	}
	c->state = PG_BUSY;
	pg_conn_flush(c);
}

static void pg_query_unwait(struct userdb_pgsql *pg, struct pg_query *q)
{
	struct pg_query **pp = &pg->wait_head, *prev = NULL;

	while (*pp != NULL && *pp != q) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == NULL)
		return;
	*pp = q->next;
	if (pg->wait_tail == q)
		pg->wait_tail = prev;
	q->next = NULL;
	pg->waiting--;
}

/*
 * pgsql_query_timeout passed: the lookup is answered "unavailable"; a
 * query in flight also takes its connection down (libpq 15 has no
 * non-blocking cancel, and the server's statement_timeout ends the
 * statement on its side).
 */
static void pg_query_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pg_query *q = arg;
	struct pg_conn *c = q->conn;

	(void)fd;
	(void)what;
	if (c != NULL) {
		c->q = NULL;
		pg_conn_close(c);
		pg_conn_schedule(c, 0);
	} else {
		pg_query_unwait(q->pg, q);
	}
	pg_query_fail(q, "query timed out");
}

static void pg_query_fail(struct pg_query *q, const char *why)
{
	char esc[USERNAME_BUF_SIZE * 4], wesc[512];

	log_warn("userdb: %s%s: %s", q->aliases ? "loading aliases" : "user ",
		 q->aliases
		     ? ""
		     : log_escape(esc, sizeof(esc), q->name, strlen(q->name)),
		 log_escape(wesc, sizeof(wesc), why, strcspn(why, "\n")));
	if (q->aliases) {
		struct userdb_pgsql *pg = q->pg;

		if (q->timer != NULL)
			event_free(q->timer);
		free(q);
		pg->aliases_running = false;
		if (pg->alias_done != NULL)
			pg->alias_done(pg->alias_ctx, false);
		return;
	}
	pg_query_answer(q, USERDB_UNAVAILABLE, NULL);
}

/* Calls back and frees a user lookup (an alias load frees itself). */
static void pg_query_answer(struct pg_query *q, enum userdb_status status,
			    const struct userdb_user *user)
{
	if (q->timer != NULL)
		event_free(q->timer);
	q->timer = NULL;
	if (q->aliases) {
		q->pg->aliases_running = false;
		if (status == USERDB_ABORTED)
			free(q);
		return;
	}
	q->cb(status, user, q->arg);
	OPENSSL_cleanse(q, sizeof(*q));
	free(q);
}

static void pg_query_result(struct pg_query *q, const PGresult *res)
{
	char extra[PG_EXTRA_SIZE], why[512];
	struct userdb_user user;
	int rows;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(why, sizeof(why), "%s", PQresultErrorMessage(res));
		pg_query_fail(q, why);
		return;
	}
	rows = PQntuples(res);
	if (rows > 1) {
		snprintf(why, sizeof(why),
			 "pgsql_user_query returned %d rows, not one", rows);
		pg_query_fail(q, why);
		return;
	}
	if (rows == 0 || pg_value(res, 0, "password") == NULL) {
		pg_cache_store(q->pg, q->name, USERDB_UNKNOWN, NULL);
		pg_query_answer(q, USERDB_UNKNOWN, NULL);
		return;
	}
	if (pg_row_user(res, 0, extra, sizeof(extra)) < 0) {
		pg_query_fail(q, "the extra fields are too long");
		return;
	}
	user.password = pg_value(res, 0, "password");
	user.extra = extra;
	pg_cache_store(q->pg, q->name, USERDB_FOUND, &user);
	pg_query_answer(q, USERDB_FOUND, &user);
	OPENSSL_cleanse(extra, sizeof(extra));
}

static void pg_aliases_result(struct userdb_pgsql *pg, const PGresult *res)
{
	int rows = PQntuples(res);

	pg->aliases_running = false;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) < 2) {
		char esc[512];
		const char *why = PQresultStatus(res) == PGRES_TUPLES_OK
				      ? "pgsql_alias_query must return two "
					"columns (address, targets)"
				      : PQresultErrorMessage(res);

		log_warn("userdb: loading aliases: %s",
			 log_escape(esc, sizeof(esc), why, strcspn(why, "\n")));
		if (pg->alias_done != NULL)
			pg->alias_done(pg->alias_ctx, false);
		return;
	}
	if (pg->alias_reset != NULL)
		pg->alias_reset(pg->alias_ctx);
	for (int i = 0; i < rows && pg->alias_add != NULL; i++) {
		if (PQgetisnull(res, i, 0) || PQgetisnull(res, i, 1))
			continue;
		pg->alias_add(pg->alias_ctx, PQgetvalue(res, i, 0),
			      PQgetvalue(res, i, 1));
	}
	log_info("userdb: %d aliases loaded from the database", rows);
	if (pg->alias_done != NULL)
		pg->alias_done(pg->alias_ctx, true);
}

/* A column by name (a custom query names its columns with AS); the
 * password may also be simply the first column. NULL for SQL NULL. */
static const char *pg_value(const PGresult *res, int row, const char *column)
{
	int col = PQfnumber(res, column);

	if (col < 0 && strcmp(column, "password") == 0 && PQnfields(res) > 0)
		col = 0;
	if (col < 0 || PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

static int pg_row_user(const PGresult *res, int row, char *extra, size_t size)
{
	userdb_pgsql_extra(extra, size, pg_value(res, row, "retention"),
			   pg_value(res, row, "login_delay"),
			   pg_value(res, row, "extra"));
	return extra[0] == '\n' ? -1 : 0;
}

void userdb_pgsql_extra(char *out, size_t size, const char *retention,
			const char *login_delay, const char *extra)
{
	int n = snprintf(out, size, "%s%s%s%s%s%s",
			 retention != NULL ? "retention=" : "",
			 retention != NULL ? retention : "",
			 retention != NULL && login_delay != NULL ? " " : "",
			 login_delay != NULL ? "login_delay=" : "",
			 login_delay != NULL ? login_delay : "", "");
	if (n >= 0 && (size_t)n < size && extra != NULL && extra[0] != '\0')
		n += snprintf(out + n, size - (size_t)n, "%s%s",
			      n > 0 ? " " : "", extra);
	/* Cut fields would change their meaning: "\n" marks the row as
	 * unusable (a newline is never in a field). */
	if (n < 0 || (size_t)n >= size)
		snprintf(out, size, "\n");
}

void userdb_pgsql_lookup(struct userdb_pgsql *pg, const char *name,
			 userdb_found_cb *cb, void *arg)
{
	struct pg_cache_entry *e = pg_cache_slot(pg, name);
	struct pg_query *q;

	if (e->name[0] != '\0' && strcmp(e->name, name) == 0 &&
	    e->expires_ms > pg_now_ms()) {
		struct userdb_user user = {e->password, e->extra};

		cb(e->found ? USERDB_FOUND : USERDB_UNKNOWN,
		   e->found ? &user : NULL, arg);
		return;
	}
	q = xcalloc(1, sizeof(*q));
	q->pg = pg;
	q->cb = cb;
	q->arg = arg;
	snprintf(q->name, sizeof(q->name), "%s", name);
	if (!pg_any_alive(pg)) {
		pg_query_fail(q, "no connection to the database");
		return;
	}
	if (pg->waiting >= PG_MAX_WAITING) {
		pg_query_fail(q, "too many lookups waiting for a connection");
		return;
	}
	pg_query_enqueue(pg, q);
}

void userdb_pgsql_load_aliases(struct userdb_pgsql *pg,
			       void (*reset)(void *ctx), userdb_alias_cb *add,
			       void (*done)(void *ctx, bool ok), void *ctx)
{
	struct pg_query *q;

	if (pg->aliases_running)
		return;
	pg->alias_reset = reset;
	pg->alias_add = add;
	pg->alias_done = done;
	pg->alias_ctx = ctx;
	pg->aliases_running = true;
	q = xcalloc(1, sizeof(*q));
	q->pg = pg;
	q->aliases = true;
	if (!pg_any_alive(pg)) {
		pg_query_fail(q, "no connection to the database");
		return;
	}
	pg_query_enqueue(pg, q);
}

/* Queues q for the next free connection, with its query timeout armed
 * from now: the time spent waiting counts. */
static void pg_query_enqueue(struct userdb_pgsql *pg, struct pg_query *q)
{
	struct timeval tv;

	q->timer = evtimer_new(pg->base, pg_query_timeout, q);
	if (q->timer == NULL)
		fatal("cannot create a timer");
	pg_timeval(&tv, pg->cfg->pgsql_query_timeout_ms);
	evtimer_add(q->timer, &tv);
	if (pg->wait_tail != NULL)
		pg->wait_tail->next = q;
	else
		pg->wait_head = q;
	pg->wait_tail = q;
	pg->waiting++;
	pg_dispatch(pg);
}

static struct pg_cache_entry *pg_cache_slot(struct userdb_pgsql *pg,
					    const char *name)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, (const unsigned char *)name, strlen(name),
			 pg->cache_key);
	memcpy(&v, h, sizeof(v));
	return &pg->cache[v % PG_CACHE_SLOTS];
}

static void pg_cache_clear(struct pg_cache_entry *e)
{
	if (e->password != NULL) {
		OPENSSL_cleanse(e->password, strlen(e->password));
		free(e->password);
	}
	free(e->extra);
	memset(e, 0, sizeof(*e));
}

static void pg_cache_store(struct userdb_pgsql *pg, const char *name,
			   enum userdb_status status,
			   const struct userdb_user *user)
{
	unsigned ttl = status == USERDB_FOUND
			   ? pg->cfg->userdb_cache_ttl
			   : pg->cfg->userdb_negative_cache_ttl;
	struct pg_cache_entry *e;

	if (ttl == 0)
		return;
	e = pg_cache_slot(pg, name);
	pg_cache_clear(e);
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->found = status == USERDB_FOUND;
	if (e->found) {
		e->password = xstrdup(user->password);
		e->extra = xstrdup(user->extra);
	}
	e->expires_ms = pg_now_ms() + (uint64_t)ttl * 1000;
}

void userdb_pgsql_flush(struct userdb_pgsql *pg)
{
	for (size_t i = 0; i < PG_CACHE_SLOTS; i++)
		pg_cache_clear(&pg->cache[i]);
}

/* Synchronous, for the retention pass and postctl. */
static PGconn *pg_connect_sync(const struct config *cfg, const char **error_r)
{
	static char error[512];
	const char *infos[2] = {cfg->pgsql_conninfo,
				cfg->pgsql_conninfo_failover};
	PGconn *conn;

	error[0] = '\0';
	for (size_t i = 0; i < 2; i++) {
		if (infos[i] == NULL)
			continue;
		conn = PQconnectdb(infos[i]);
		if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
			return conn;
		snprintf(error, sizeof(error), "%.*s",
			 (int)strcspn(conn != NULL ? PQerrorMessage(conn)
						   : "out of memory",
				      "\n"),
			 conn != NULL ? PQerrorMessage(conn) : "out of memory");
		PQfinish(conn);
	}
	*error_r = error[0] != '\0' ? error : "no pgsql_conninfo";
	return NULL;
}

int userdb_pgsql_load_all(const struct config *cfg, struct passwd_db **db_r,
			  const char **error_r)
{
	static char error[512];
	char extra[PG_EXTRA_SIZE], name[USERNAME_BUF_SIZE];
	struct passwd_db *db;
	PGconn *conn = pg_connect_sync(cfg, error_r);
	PGresult *res;

	if (conn == NULL)
		return -1;
	res = PQexec(conn, cfg->pgsql_iterate_query);
	if (PQresultStatus(res) != PGRES_TUPLES_OK ||
	    PQfnumber(res, "username") < 0) {
		const char *why = PQresultStatus(res) == PGRES_TUPLES_OK
				      ? "pgsql_iterate_query has no username "
					"column"
				      : PQresultErrorMessage(res);

		snprintf(error, sizeof(error), "%.*s", (int)strcspn(why, "\n"),
			 why);
		PQclear(res);
		PQfinish(conn);
		*error_r = error;
		return -1;
	}
	db = passwd_db_new();
	for (int i = 0; i < PQntuples(res); i++) {
		const char *user = pg_value(res, i, "username");
		const char *password = PQfnumber(res, "password") >= 0
					   ? pg_value(res, i, "password")
					   : "";

		if (user == NULL || password == NULL ||
		    username_normalize(user, strlen(user), NULL, name,
				       sizeof(name)) < 0) {
			log_warn("userdb: row %d: no usable user name, skipped",
				 i + 1);
			continue;
		}
		if (pg_row_user(res, i, extra, sizeof(extra)) < 0) {
			log_warn("userdb: user %s: extra fields too long, "
				 "skipped",
				 name);
			continue;
		}
		passwd_db_add(db, name, password, extra);
	}
	PQclear(res);
	PQfinish(conn);
	*db_r = db;
	return 0;
}

int userdb_load_all(const struct config *cfg, struct passwd_db **db_r,
		    const char **error_r)
{
	if (cfg->userdb == USERDB_PGSQL)
		return userdb_pgsql_load_all(cfg, db_r, error_r);
	return passwd_db_load(cfg->users_file, db_r, error_r);
}

const char *userdb_describe(const struct config *cfg, char *buf, size_t size)
{
	if (cfg->userdb == USERDB_PGSQL)
		snprintf(buf, size, "user database (PostgreSQL)");
	else
		snprintf(buf, size, "users file %s", cfg->users_file);
	return buf;
}
