/*
 * postctl against PostgreSQL (userdb = pgsql, see doc/pgsql.md): user
 * add/passwd/del/list and alias add/del/list on the tables of
 * doc/schema.sql, and migrate, which imports a users file and a
 * virtual(5) aliases file into them.
 *
 * A command-line tool may block, so libpq is used synchronously. Every
 * value travels as a query parameter, never inside the SQL text, and a
 * change of more than one row runs in one transaction: it lands whole or
 * not at all.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "auth/passwd_file.h"
#include "auth/password.h"
#include "cli/postctl.h"
#include "config/config.h"
#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/username.h"
#include "lib/xmalloc.h"
#include "storage/expire.h"

/* An alias address: "local@domain" or "@domain". */
#define PDB_ADDRESS_SIZE USERNAME_BUF_SIZE
/* The targets of one alias, joined with commas. */
#define PDB_MAX_TARGETS_LEN 4096
/* One logical line of an aliases file (continuation lines included). */
#define PDB_MAX_ALIAS_LINE (4 * PDB_MAX_TARGETS_LEN)

struct pdb_alias {
	char *address;
	char *targets;
	int line;
};

struct pdb_aliases {
	struct pdb_alias *v;
	size_t count, alloc;
	size_t domain_lines; /* virtual alias domain lines, not imported */
	int errors;
};

/* What an import added, changed or found as it was. */
struct pdb_counts {
	size_t added, changed, unchanged;
};

/* One user row as migrate writes it. */
struct pdb_user_row {
	const char *name, *password;
	char retention[64];
	char login_delay[24];
	char *extra; /* the fields with no column of their own, or NULL */
	bool has_retention, has_login_delay;
};

static PGconn *pdb_connect(const struct config *cfg);
static void pdb_print_error(const char *what, const char *msg);
static PGresult *pdb_exec(PGconn *conn, const char *what, const char *sql,
			  int nparams, const char *const *params);
static int pdb_command(PGconn *conn, const char *sql);
static int pdb_rows(PGconn *conn, const char *what, const char *sql,
		    int nparams, const char *const *params);
static int pdb_user_exists(PGconn *conn, const char *name, bool *exists_r);
static void pdb_print_user_exists(const char *name);
static void pdb_print_no_user(const char *name);
static int pdb_open_user(const struct config *cfg, const char *arg, char *name,
			 size_t name_size, PGconn **conn_r);
static int pdb_user_change(PGconn *conn, const char *name, const char *what,
			   const char *sql, int nparams,
			   const char *const *params);
static int pdb_list(const struct config *cfg, const char *what, const char *sql,
		    void (*print_row)(PGresult *res, int i));
static void pdb_print_user_row(PGresult *res, int i);
static void pdb_print_alias_row(PGresult *res, int i);
static void pdb_print_not_imported(const char *path, int bad);
static char *pdb_read_hash(void);
static void pdb_free_hash(char *hash);
static int pdb_user_add(const struct config *cfg, const char *arg);
static int pdb_user_passwd(const struct config *cfg, const char *arg);
static int pdb_user_del(const struct config *cfg, const char *arg);
static int pdb_user_list(const struct config *cfg);
static int pdb_alias_address(const char *in, size_t len,
			     const char *default_domain, char *out,
			     size_t outsize);
static int pdb_add_targets(const char *in, const char *default_domain,
			   char *out, size_t outsize, size_t *len_r,
			   const char **error_r);
static int pdb_alias_add(const struct config *cfg, int argc, char **argv);
static int pdb_alias_del(const struct config *cfg, const char *arg);
static int pdb_alias_list(const struct config *cfg);
static void pdb_aliases_free(struct pdb_aliases *a);
static void pdb_alias_error(struct pdb_aliases *a, const char *path, int line,
			    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void pdb_alias_parse_logical(struct pdb_aliases *a,
				    const struct config *cfg, const char *path,
				    int line, char *text);
static int pdb_read_line(FILE *f, char *buf, size_t size, size_t *len_r,
			 bool *too_long_r);
static int pdb_aliases_load(const struct config *cfg, const char *path,
			    struct pdb_aliases *a);
static int pdb_alias_cmp(const void *x, const void *y);
static void pdb_aliases_check_duplicates(struct pdb_aliases *a,
					 const char *path);
static int pdb_user_row(const struct passwd_entry *e, const char *path,
			struct pdb_user_row *row);
static int pdb_users_check(const struct passwd_db *db, const char *path);
static int pdb_import_users(PGconn *conn, const struct passwd_db *db,
			    const char *path, struct pdb_counts *c,
			    size_t *domains_r);
static int pdb_import_aliases(PGconn *conn, const struct pdb_aliases *a,
			      struct pdb_counts *c);
static int pdb_count_upsert(PGconn *conn, const char *what, const char *sql,
			    int nparams, const char *const *params,
			    struct pdb_counts *c);
static int pdb_migrate(const struct config *cfg, const char *users_path,
		       const char *aliases_path);

/* ---- connection and queries ---------------------------------------------- */

static PGconn *pdb_connect(const struct config *cfg)
{
	PGconn *conn;

	if (cfg->pgsql_conninfo == NULL) {
		fprintf(stderr, "postctl: pgsql_conninfo is not set in %s\n",
			cfg->path != NULL ? cfg->path : "the configuration");
		return NULL;
	}
	conn = PQconnectdb(cfg->pgsql_conninfo);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		/* libpq's message names host and database, never the
		 * password; the conninfo itself is not printed. */
		pdb_print_error("cannot connect to PostgreSQL",
				conn != NULL ? PQerrorMessage(conn)
					     : "out of memory");
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* libpq messages end in a newline (sometimes several lines): printed as
 * one line, so that a script reading stderr sees one cause. */
static void pdb_print_error(const char *what, const char *msg)
{
	char line[1024];
	size_t n = 0;

	for (; *msg != '\0' && n + 1 < sizeof(line); msg++) {
		if (*msg == '\n' || *msg == '\r') {
			if (msg[1] != '\0' && n > 0 && line[n - 1] != ' ')
				line[n++] = ' ';
			continue;
		}
		line[n++] = *msg;
	}
	line[n] = '\0';
	fprintf(stderr, "postctl: %s: %s\n", what, line);
}

/* The result of a successful statement (clear it), or NULL after a
 * message naming what was being done. */
static PGresult *pdb_exec(PGconn *conn, const char *what, const char *sql,
			  int nparams, const char *const *params)
{
	PGresult *res =
	    PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	pdb_print_error(what, res != NULL ? PQresultErrorMessage(res)
					  : PQerrorMessage(conn));
	PQclear(res);
	return NULL;
}

/* BEGIN, COMMIT, ROLLBACK: 0 or -1 (printed). */
static int pdb_command(PGconn *conn, const char *sql)
{
	PGresult *res = pdb_exec(conn, sql, sql, 0, NULL);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/* The number of rows a statement returned, or -1 (printed). */
static int pdb_rows(PGconn *conn, const char *what, const char *sql,
		    int nparams, const char *const *params)
{
	PGresult *res = pdb_exec(conn, what, sql, nparams, params);
	int n;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	PQclear(res);
	return n;
}

static int pdb_user_exists(PGconn *conn, const char *name, bool *exists_r)
{
	const char *params[1] = {name};
	int n = pdb_rows(conn, "cannot look up the user",
			 "SELECT 1 FROM users WHERE username = $1", 1, params);

	*exists_r = n > 0;
	return n < 0 ? -1 : 0;
}

static void pdb_print_user_exists(const char *name)
{
	fprintf(stderr, "postctl: user %s already exists in the database\n",
		name);
}

static void pdb_print_no_user(const char *name)
{
	fprintf(stderr, "postctl: no user %s in the database\n", name);
}

/* The canonical name of arg, then a connection: EX_OK with *conn_r, or
 * the exit code (printed). */
static int pdb_open_user(const struct config *cfg, const char *arg, char *name,
			 size_t name_size, PGconn **conn_r)
{
	if (postctl_normalize(cfg, arg, name, name_size) < 0)
		return EX_USAGE;
	*conn_r = pdb_connect(cfg);
	return *conn_r == NULL ? EX_UNAVAILABLE : EX_OK;
}

/* One statement on the user's row ("... RETURNING 1"), its own
 * transaction: EX_OK, EX_NOUSER or EX_IOERR (printed). */
static int pdb_user_change(PGconn *conn, const char *name, const char *what,
			   const char *sql, int nparams,
			   const char *const *params)
{
	int n = pdb_rows(conn, what, sql, nparams, params);

	if (n == 0) {
		pdb_print_no_user(name);
		return EX_NOUSER;
	}
	return n < 0 ? EX_IOERR : EX_OK;
}

/* A SELECT printed one line a row, as the file variants print them. */
static int pdb_list(const struct config *cfg, const char *what, const char *sql,
		    void (*print_row)(PGresult *res, int i))
{
	PGresult *res;
	PGconn *conn;

	conn = pdb_connect(cfg);
	if (conn == NULL)
		return EX_UNAVAILABLE;
	res = pdb_exec(conn, what, sql, 0, NULL);
	if (res == NULL) {
		PQfinish(conn);
		return EX_IOERR;
	}
	for (int i = 0; i < PQntuples(res); i++)
		print_row(res, i);
	PQclear(res);
	PQfinish(conn);
	return postctl_stdout_done();
}

/* A new password from the terminal or stdin, hashed; NULL after a
 * message. The clear text is wiped before returning. */
static char *pdb_read_hash(void)
{
	struct postctl_password pw;
	char *hash;

	if (postctl_read_password(&pw) < 0)
		return NULL;
	hash = password_hash_new(pw.text, pw.len);
	OPENSSL_cleanse(&pw, sizeof(pw));
	if (hash == NULL)
		fprintf(stderr, "postctl: cannot hash the password\n");
	return hash;
}

static void pdb_free_hash(char *hash)
{
	if (hash == NULL)
		return;
	OPENSSL_cleanse(hash, strlen(hash));
	free(hash);
}

/* ---- postctl user ---------------------------------------------------------
 */

int postctl_db_user_main(const struct config *cfg, int argc, char **argv)
{
	/* postctl.c checked the arguments: "user list" or "user CMD NAME". */
	if (strcmp(argv[1], "list") == 0)
		return pdb_user_list(cfg);
	if (argc != 3)
		return EX_USAGE;
	if (strcmp(argv[1], "add") == 0)
		return pdb_user_add(cfg, argv[2]);
	if (strcmp(argv[1], "passwd") == 0)
		return pdb_user_passwd(cfg, argv[2]);
	return pdb_user_del(cfg, argv[2]);
}

static int pdb_user_add(const struct config *cfg, const char *arg)
{
	static const char insert_domain[] =
	    "INSERT INTO domains (domain) VALUES ($1) "
	    "ON CONFLICT (domain) DO NOTHING";
	static const char insert_user[] =
	    "INSERT INTO users (username, password) VALUES ($1, $2) "
	    "ON CONFLICT (username) DO NOTHING RETURNING 1";
	char name[USERNAME_BUF_SIZE];
	const char *domain, *params[2];
	size_t local_len;
	PGconn *conn;
	bool exists;
	char *hash = NULL;
	int n, rc = EX_IOERR;

	if (postctl_normalize(cfg, arg, name, sizeof(name)) < 0)
		return EX_USAGE;
	domain = username_domain(name, &local_len);
	if (!config_is_local_domain(cfg, domain)) {
		fprintf(stderr,
			"postctl: cannot add %s: its domain is not in "
			"domains\n",
			name);
		return EX_USAGE;
	}
	conn = pdb_connect(cfg);
	if (conn == NULL)
		return EX_UNAVAILABLE;
	if (pdb_user_exists(conn, name, &exists) < 0)
		goto out;
	if (exists) {
		pdb_print_user_exists(name);
		rc = 1;
		goto out;
	}
	hash = pdb_read_hash();
	if (hash == NULL) {
		rc = EX_DATAERR;
		goto out;
	}
	if (pdb_command(conn, "BEGIN") < 0)
		goto out;
	params[0] = domain;
	if (pdb_rows(conn, "cannot add the domain", insert_domain, 1, params) <
	    0)
		goto rollback;
	params[0] = name;
	params[1] = hash;
	n = pdb_rows(conn, "cannot add the user", insert_user, 2, params);
	if (n < 0)
		goto rollback;
	if (n == 0) {
		/* Added by someone else since the check above. */
		pdb_print_user_exists(name);
		rc = 1;
		goto rollback;
	}
	if (pdb_command(conn, "COMMIT") == 0)
		rc = EX_OK;
	goto out;
rollback:
	pdb_command(conn, "ROLLBACK");
out:
	pdb_free_hash(hash);
	PQfinish(conn);
	return rc;
}

static int pdb_user_passwd(const struct config *cfg, const char *arg)
{
	char name[USERNAME_BUF_SIZE];
	const char *params[2];
	PGconn *conn;
	bool exists;
	char *hash = NULL;
	int rc;

	rc = pdb_open_user(cfg, arg, name, sizeof(name), &conn);
	if (rc != EX_OK)
		return rc;
	rc = EX_IOERR;
	if (pdb_user_exists(conn, name, &exists) < 0)
		goto out;
	if (!exists) {
		pdb_print_no_user(name);
		rc = EX_NOUSER;
		goto out;
	}
	hash = pdb_read_hash();
	if (hash == NULL) {
		rc = EX_DATAERR;
		goto out;
	}
	params[0] = name;
	params[1] = hash;
	rc = pdb_user_change(
	    conn, name, "cannot set the password",
	    "UPDATE users SET password = $2 WHERE username = $1 "
	    "RETURNING 1",
	    2, params);
out:
	pdb_free_hash(hash);
	PQfinish(conn);
	return rc;
}

static int pdb_user_del(const struct config *cfg, const char *arg)
{
	char name[USERNAME_BUF_SIZE];
	const char *params[1] = {name};
	PGconn *conn;
	int rc;

	rc = pdb_open_user(cfg, arg, name, sizeof(name), &conn);
	if (rc != EX_OK)
		return rc;
	rc = pdb_user_change(
	    conn, name, "cannot delete the user",
	    "DELETE FROM users WHERE username = $1 RETURNING 1", 1, params);
	PQfinish(conn);
	return rc;
}

/* As the file variant prints it: "NAME SCHEME", and " disabled" for a
 * user whose enabled column is false. */
static int pdb_user_list(const struct config *cfg)
{
	return pdb_list(cfg, "cannot list the users",
			"SELECT username, password, enabled FROM users "
			"ORDER BY username",
			pdb_print_user_row);
}

static void pdb_print_user_row(PGresult *res, int i)
{
	const char *error, *scheme;
	bool weak;

	if (password_check_stored(PQgetvalue(res, i, 1), &weak, &scheme,
				  &error) < 0)
		scheme = "INVALID";
	printf("%s %s%s\n", PQgetvalue(res, i, 0), scheme,
	       strcmp(PQgetvalue(res, i, 2), "t") == 0 ? "" : " disabled");
}

/* ---- aliases --------------------------------------------------------------
 */

/*
 * "local@domain" (canonical, as a user name) or "@domain" (every other
 * address of that domain). Returns 0, or -1 if it is neither.
 */
static int pdb_alias_address(const char *in, size_t len,
			     const char *default_domain, char *out,
			     size_t outsize)
{
	char probe[USERNAME_BUF_SIZE + 1];
	const char *at;
	size_t local_len;

	if (len == 0 || in[0] != '@')
		return username_normalize(in, len, default_domain, out,
					  outsize);
	/* A domain is valid when "x@domain" is a valid name. */
	if (len + 1 >= sizeof(probe) || outsize < USERNAME_BUF_SIZE)
		return -1;
	probe[0] = 'x';
	memcpy(probe + 1, in, len);
	probe[len + 1] = '\0';
	if (username_normalize(probe, len + 1, NULL, out, outsize) < 0)
		return -1;
	at = username_domain(out, &local_len) - 1;
	memmove(out, at, strlen(at) + 1);
	return 0;
}

/*
 * Appends the targets in `in` (separated by commas and/or white space,
 * as in virtual(5)) to out as "a@x,b@y". A target without a domain gets
 * default_domain. Returns 0, or -1 with error_r.
 */
static int pdb_add_targets(const char *in, const char *default_domain,
			   char *out, size_t outsize, size_t *len_r,
			   const char **error_r)
{
	static const char seps[] = ", \t";
	char name[USERNAME_BUF_SIZE];
	size_t tok, n;

	for (in += strspn(in, seps); *in != '\0'; in += strspn(in, seps)) {
		tok = strcspn(in, seps);
		if (username_normalize(in, tok, default_domain, name,
				       sizeof(name)) < 0) {
			*error_r = default_domain == NULL &&
					   memchr(in, '@', tok) == NULL
				       ? "a target without @domain (and no "
					 "auth_default_domain)"
				       : "a target that is not local@domain "
					 "(a-z 0-9 . _ - + =)";
			return -1;
		}
		n = strlen(name);
		if (*len_r + n + 2 > outsize) {
			*error_r = "targets longer than 4096 bytes";
			return -1;
		}
		if (*len_r > 0)
			out[(*len_r)++] = ',';
		memcpy(out + *len_r, name, n + 1);
		*len_r += n;
		in += tok;
	}
	return 0;
}

int postctl_db_alias_main(const struct config *cfg, int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "list") == 0)
		return pdb_alias_list(cfg);
	if (argc == 3 && strcmp(argv[1], "del") == 0)
		return pdb_alias_del(cfg, argv[2]);
	if (argc >= 4 && strcmp(argv[1], "add") == 0)
		return pdb_alias_add(cfg, argc - 2, argv + 2);
	fprintf(stderr, "usage: postctl [-c FILE] alias add ADDRESS TARGET...\n"
			"       postctl [-c FILE] alias del ADDRESS\n"
			"       postctl [-c FILE] alias list\n");
	return EX_USAGE;
}

/* argv[0] is the address, the rest its targets. */
static int pdb_alias_add(const struct config *cfg, int argc, char **argv)
{
	char address[PDB_ADDRESS_SIZE], targets[PDB_MAX_TARGETS_LEN + 1];
	char escaped[4 * AUTH_MAX_USER + 1];
	const char *params[2] = {address, targets}, *error, *domain;
	size_t len = 0, local_len;
	PGconn *conn;
	int n, rc;

	if (pdb_alias_address(argv[0], strlen(argv[0]),
			      cfg->auth_default_domain, address,
			      sizeof(address)) < 0) {
		log_escape(escaped, sizeof(escaped), argv[0], strlen(argv[0]));
		fprintf(stderr,
			"postctl: invalid alias address '%s': expected "
			"local@domain or @domain\n",
			escaped);
		return EX_USAGE;
	}
	domain = address[0] == '@' ? address + 1
				   : username_domain(address, &local_len);
	if (!config_is_local_domain(cfg, domain)) {
		fprintf(stderr,
			"postctl: cannot add %s: its domain is not in "
			"domains\n",
			address);
		return EX_USAGE;
	}
	targets[0] = '\0';
	for (int i = 1; i < argc; i++) {
		if (pdb_add_targets(argv[i], cfg->auth_default_domain, targets,
				    sizeof(targets), &len, &error) < 0) {
			log_escape(escaped, sizeof(escaped), argv[i],
				   strlen(argv[i]));
			fprintf(stderr, "postctl: '%s': %s\n", escaped, error);
			return EX_USAGE;
		}
	}
	if (len == 0) {
		fprintf(stderr, "postctl: alias %s has no target\n", address);
		return EX_USAGE;
	}
	conn = pdb_connect(cfg);
	if (conn == NULL)
		return EX_UNAVAILABLE;
	n = pdb_rows(conn, "cannot add the alias",
		     "INSERT INTO aliases (address, targets) VALUES ($1, $2) "
		     "ON CONFLICT (address) DO NOTHING RETURNING 1",
		     2, params);
	rc = n < 0 ? EX_IOERR : EX_OK;
	if (n == 0) {
		fprintf(stderr, "postctl: alias %s already exists\n", address);
		rc = 1;
	}
	PQfinish(conn);
	return rc;
}

static int pdb_alias_del(const struct config *cfg, const char *arg)
{
	char address[PDB_ADDRESS_SIZE], escaped[4 * AUTH_MAX_USER + 1];
	const char *params[1] = {address};
	PGconn *conn;
	int n, rc;

	if (pdb_alias_address(arg, strlen(arg), cfg->auth_default_domain,
			      address, sizeof(address)) < 0) {
		log_escape(escaped, sizeof(escaped), arg, strlen(arg));
		fprintf(stderr, "postctl: invalid alias address '%s'\n",
			escaped);
		return EX_USAGE;
	}
	conn = pdb_connect(cfg);
	if (conn == NULL)
		return EX_UNAVAILABLE;
	n = pdb_rows(conn, "cannot delete the alias",
		     "DELETE FROM aliases WHERE address = $1 RETURNING 1", 1,
		     params);
	rc = n < 0 ? EX_IOERR : EX_OK;
	if (n == 0) {
		fprintf(stderr, "postctl: no alias %s\n", address);
		rc = EX_NOUSER;
	}
	PQfinish(conn);
	return rc;
}

static int pdb_alias_list(const struct config *cfg)
{
	return pdb_list(cfg, "cannot list the aliases",
			"SELECT address, targets FROM aliases ORDER BY address",
			pdb_print_alias_row);
}

static void pdb_print_alias_row(PGresult *res, int i)
{
	printf("%s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
}

/* ---- the virtual(5) aliases file ------------------------------------------
 */

static void pdb_aliases_free(struct pdb_aliases *a)
{
	for (size_t i = 0; i < a->count; i++) {
		free(a->v[i].address);
		free(a->v[i].targets);
	}
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static void pdb_alias_error(struct pdb_aliases *a, const char *path, int line,
			    const char *fmt, ...)
{
	va_list ap;

	a->errors++;
	fprintf(stderr, "postctl: %s:%d: ", path, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* One logical line: "PATTERN TARGET, TARGET ...". */
static void pdb_alias_parse_logical(struct pdb_aliases *a,
				    const struct config *cfg, const char *path,
				    int line, char *text)
{
	char address[PDB_ADDRESS_SIZE], targets[PDB_MAX_TARGETS_LEN + 1];
	char escaped[4 * 64 + 1];
	size_t pat_len = strcspn(text, " \t"), len = 0;
	const char *error;
	struct pdb_alias *al;

	if (text[pat_len] == '\0') {
		pdb_alias_error(a, path, line, "no target after the address");
		return;
	}
	/* "example.net anything": Postfix's way to declare a virtual alias
	 * domain; postd's domains come from its own configuration. */
	if (memchr(text, '@', pat_len) == NULL &&
	    memchr(text, '.', pat_len) != NULL) {
		a->domain_lines++;
		return;
	}
	if (pdb_alias_address(text, pat_len, NULL, address, sizeof(address)) <
	    0) {
		log_escape(escaped, sizeof(escaped), text,
			   pat_len < 64 ? pat_len : 64);
		pdb_alias_error(a, path, line,
				"'%s' is not local@domain or @domain", escaped);
		return;
	}
	targets[0] = '\0';
	if (pdb_add_targets(text + pat_len, cfg->auth_default_domain, targets,
			    sizeof(targets), &len, &error) < 0) {
		pdb_alias_error(a, path, line, "%s: %s", address, error);
		return;
	}
	if (len == 0) {
		pdb_alias_error(a, path, line, "no target after the address");
		return;
	}
	if (a->count >= PASSWD_MAX_USERS) {
		pdb_alias_error(a, path, line, "more than %d aliases",
				PASSWD_MAX_USERS);
		return;
	}
	if (a->count == a->alloc) {
		a->alloc = a->alloc == 0 ? 64 : a->alloc * 2;
		a->v = xreallocarray(a->v, a->alloc, sizeof(*a->v));
	}
	al = &a->v[a->count++];
	al->address = xstrdup(address);
	al->targets = xstrdup(targets);
	al->line = line;
}

/*
 * One line without its LF into buf (size bytes with the NUL). A longer
 * line is read to its end and only its start kept, *too_long_r set, so
 * the next line starts in the right place. Returns 0, -1 at the end of
 * the file, -2 on a read error.
 */
static int pdb_read_line(FILE *f, char *buf, size_t size, size_t *len_r,
			 bool *too_long_r)
{
	size_t len = 0;
	int c;

	*too_long_r = false;
	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (len + 1 < size)
			buf[len++] = (char)c;
		else
			*too_long_r = true;
	}
	if (c == EOF && ferror(f))
		return -2;
	if (c == EOF && len == 0 && !*too_long_r)
		return -1;
	buf[len] = '\0';
	*len_r = len;
	return 0;
}

/*
 * Reads a Postfix virtual(5) table: "PATTERN RESULT" lines, '#' comments
 * and blank lines ignored, a line starting with white space continuing
 * the one before. Every bad line is reported with its number; returns the
 * number of bad lines (0: all usable), or -1 if the file cannot be read.
 */
static int pdb_aliases_load(const struct config *cfg, const char *path,
			    struct pdb_aliases *a)
{
	char *logical = xmalloc(PDB_MAX_ALIAS_LINE + 1);
	char *line = xmalloc(PDB_MAX_ALIAS_LINE + 1);
	size_t len, llen = 0;
	int lineno = 0, start = 0, r;
	bool too_long = false, line_too_long;
	FILE *f = fopen(path, "re");

	if (f == NULL) {
		fprintf(stderr, "postctl: cannot open %s: %s\n", path,
			strerror(errno));
		free(logical);
		free(line);
		return -1;
	}
	while ((r = pdb_read_line(f, line, PDB_MAX_ALIAS_LINE + 1, &len,
				  &line_too_long)) == 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (line_too_long) {
			pdb_alias_error(a, path, lineno, "longer than %d bytes",
					PDB_MAX_ALIAS_LINE);
			continue;
		}
		if (memchr(line, '\0', len) != NULL) {
			pdb_alias_error(a, path, lineno, "NUL byte in line");
			continue;
		}
		if (line[strspn(line, " \t")] == '#' ||
		    line[strspn(line, " \t")] == '\0')
			continue;
		if (line[0] == ' ' || line[0] == '\t') {
			if (start == 0) {
				pdb_alias_error(a, path, lineno,
						"continuation line with "
						"nothing to continue");
				continue;
			}
		} else {
			if (start != 0 && !too_long)
				pdb_alias_parse_logical(a, cfg, path, start,
							logical);
			start = lineno;
			llen = 0;
			too_long = false;
		}
		if (too_long)
			continue;
		if (llen + 1 + len > PDB_MAX_ALIAS_LINE) {
			pdb_alias_error(a, path, start, "longer than %d bytes",
					PDB_MAX_ALIAS_LINE);
			too_long = true;
			continue;
		}
		if (llen > 0)
			logical[llen++] = ' ';
		memcpy(logical + llen, line, len + 1);
		llen += len;
	}
	if (r < -1) {
		fprintf(stderr, "postctl: cannot read %s: %s\n", path,
			strerror(errno));
		a->errors = -1;
	} else if (start != 0 && !too_long) {
		pdb_alias_parse_logical(a, cfg, path, start, logical);
	}
	fclose(f);
	free(line);
	free(logical);
	if (a->errors >= 0)
		pdb_aliases_check_duplicates(a, path);
	return a->errors;
}

static int pdb_alias_cmp(const void *x, const void *y)
{
	const struct pdb_alias *p = x, *q = y;
	int c = strcmp(p->address, q->address);

	return c != 0 ? c : (p->line > q->line) - (p->line < q->line);
}

/* One address twice is refused: which one would win is a guess. */
static void pdb_aliases_check_duplicates(struct pdb_aliases *a,
					 const char *path)
{
	qsort(a->v, a->count, sizeof(*a->v), pdb_alias_cmp);
	for (size_t i = 1; i < a->count; i++) {
		if (strcmp(a->v[i].address, a->v[i - 1].address) == 0)
			pdb_alias_error(a, path, a->v[i].line,
					"duplicate address %s (first on line "
					"%d)",
					a->v[i].address, a->v[i - 1].line);
	}
}

/* ---- migrate ------------------------------------------------------------- */

int postctl_migrate_main(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"users", required_argument, NULL, 'u'},
	    {"aliases", required_argument, NULL, 'a'},
	    {NULL, 0, NULL, 0},
	};
	const char *users = NULL, *aliases = NULL;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (opt == 'u')
			users = optarg;
		else if (opt == 'a')
			aliases = optarg;
		else
			goto usage;
	}
	if (optind != argc || (users == NULL && aliases == NULL))
		goto usage;
	return pdb_migrate(cfg, users, aliases);
usage:
	fprintf(stderr, "usage: postctl [-c FILE] migrate [--users FILE] "
			"[--aliases FILE]\n");
	return EX_USAGE;
}

/*
 * Splits a users file entry into its row: retention and login_delay
 * (also with the userdb_ prefix) get their columns, every other extra
 * field stays in extra as written. A bad retention or login_delay value
 * refuses the line, as the server would ignore it.
 */
static int pdb_user_row(const struct passwd_entry *e, const char *path,
			struct pdb_user_row *row)
{
	struct expire_user_fields f;
	char error[256];
	const char *p = e->extra;
	size_t extra_len = 0;

	memset(row, 0, sizeof(*row));
	row->name = e->name;
	row->password = e->password;
	if (p == NULL)
		return 0;
	if (expire_parse_extra(p, &f, error, sizeof(error)) > 0) {
		fprintf(stderr, "postctl: %s:%d: user %s: %s\n", path, e->line,
			e->name, error);
		return -1;
	}
	row->extra = xmalloc(strlen(p) + 1);
	while (*p != '\0') {
		size_t tok, skip;
		const char *key;

		p += strspn(p, " \t");
		tok = strcspn(p, " \t");
		if (tok == 0)
			break;
		key = p;
		skip = tok > 7 && memcmp(key, "userdb_", 7) == 0 ? 7 : 0;
		if (tok - skip > 10 &&
		    memcmp(key + skip, "retention=", 10) == 0) {
			snprintf(row->retention, sizeof(row->retention), "%.*s",
				 (int)(tok - skip - 10), key + skip + 10);
			row->has_retention = true;
		} else if (tok - skip > 12 &&
			   memcmp(key + skip, "login_delay=", 12) == 0) {
			row->has_login_delay = true;
		} else {
			if (extra_len > 0)
				row->extra[extra_len++] = ' ';
			memcpy(row->extra + extra_len, key, tok);
			extra_len += tok;
		}
		p += tok;
	}
	row->extra[extra_len] = '\0';
	if (row->has_login_delay)
		snprintf(row->login_delay, sizeof(row->login_delay), "%u",
			 f.login_delay);
	if (extra_len == 0) {
		free(row->extra);
		row->extra = NULL;
	}
	return 0;
}

/* The number of entries whose extra fields cannot be imported (each
 * printed with its line number). */
static int pdb_users_check(const struct passwd_db *db, const char *path)
{
	struct pdb_user_row row;
	int bad = 0;

	for (size_t i = 0; i < passwd_db_count(db); i++) {
		if (pdb_user_row(passwd_db_entry(db, i), path, &row) < 0)
			bad++;
		else
			free(row.extra);
	}
	return bad;
}

/*
 * An upsert that returns one row "inserted" (true/false) when it added
 * or changed a row, and none when the row was already as given.
 */
static int pdb_count_upsert(PGconn *conn, const char *what, const char *sql,
			    int nparams, const char *const *params,
			    struct pdb_counts *c)
{
	PGresult *res = pdb_exec(conn, what, sql, nparams, params);

	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		c->unchanged++;
	else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		c->added++;
	else
		c->changed++;
	PQclear(res);
	return 0;
}

static int pdb_import_users(PGconn *conn, const struct passwd_db *db,
			    const char *path, struct pdb_counts *c,
			    size_t *domains_r)
{
	/* enabled is not in the users file: a re-import keeps what the
	 * administrator set in the database. */
	static const char upsert[] =
	    "INSERT INTO users (username, password, retention, login_delay, "
	    "extra) VALUES ($1, $2, $3, $4::integer, $5) "
	    "ON CONFLICT (username) DO UPDATE SET password = "
	    "EXCLUDED.password, retention = EXCLUDED.retention, login_delay = "
	    "EXCLUDED.login_delay, extra = EXCLUDED.extra "
	    "WHERE (users.password, users.retention, users.login_delay, "
	    "users.extra) IS DISTINCT FROM (EXCLUDED.password, "
	    "EXCLUDED.retention, EXCLUDED.login_delay, EXCLUDED.extra) "
	    "RETURNING (xmax = 0)";
	static const char insert_domain[] =
	    "INSERT INTO domains (domain) VALUES ($1) "
	    "ON CONFLICT (domain) DO NOTHING RETURNING 1";

	for (size_t i = 0; i < passwd_db_count(db); i++) {
		const struct passwd_entry *e = passwd_db_entry(db, i);
		struct pdb_user_row row;
		const char *params[5];
		size_t local_len;
		int n, rc;

		if (pdb_user_row(e, path, &row) < 0)
			return -1;
		params[0] = username_domain(e->name, &local_len);
		n = pdb_rows(conn, "cannot add a domain", insert_domain, 1,
			     params);
		if (n > 0)
			(*domains_r)++;
		params[0] = row.name;
		params[1] = row.password;
		params[2] = row.has_retention ? row.retention : NULL;
		params[3] = row.has_login_delay ? row.login_delay : NULL;
		params[4] = row.extra;
		rc = n < 0 ? -1
			   : pdb_count_upsert(conn, "cannot import a user",
					      upsert, 5, params, c);
		free(row.extra);
		if (rc < 0) {
			fprintf(stderr,
				"postctl: %s:%d: user %s not imported\n", path,
				e->line, e->name);
			return -1;
		}
	}
	return 0;
}

static int pdb_import_aliases(PGconn *conn, const struct pdb_aliases *a,
			      struct pdb_counts *c)
{
	static const char upsert[] =
	    "INSERT INTO aliases (address, targets) VALUES ($1, $2) "
	    "ON CONFLICT (address) DO UPDATE SET targets = EXCLUDED.targets "
	    "WHERE aliases.targets IS DISTINCT FROM EXCLUDED.targets "
	    "RETURNING (xmax = 0)";

	for (size_t i = 0; i < a->count; i++) {
		const char *params[2] = {a->v[i].address, a->v[i].targets};

		if (pdb_count_upsert(conn, "cannot import an alias", upsert, 2,
				     params, c) < 0)
			return -1;
	}
	return 0;
}

static void pdb_print_not_imported(const char *path, int bad)
{
	fprintf(stderr,
		"postctl: %s: %d line%s cannot be imported (see above); "
		"nothing imported\n",
		path, bad, bad == 1 ? "" : "s");
}

/*
 * Both files are read and checked before the database is touched; then
 * everything is written in one transaction. Rows already there are
 * updated (upsert), so running it again changes nothing; rows in the
 * database but not in the files are left alone.
 */
static int pdb_migrate(const struct config *cfg, const char *users_path,
		       const char *aliases_path)
{
	struct pdb_counts uc = {0, 0, 0}, ac = {0, 0, 0};
	struct pdb_aliases aliases;
	struct passwd_db *db = NULL;
	size_t skipped, domains = 0;
	const char *error;
	PGconn *conn = NULL;
	int first, bad, rc = EX_DATAERR;

	memset(&aliases, 0, sizeof(aliases));
	if (users_path != NULL) {
		if (passwd_db_load(users_path, &db, &error) < 0) {
			fprintf(stderr, "postctl: cannot read %s: %s\n",
				users_path, error);
			return EX_NOINPUT;
		}
		skipped = passwd_db_skipped(db, &first);
		bad = pdb_users_check(db, users_path);
		if (skipped > 0) {
			fprintf(stderr,
				"postctl: %s: %zu line%s cannot be imported "
				"(the first is line %d, see above); nothing "
				"imported\n",
				users_path, skipped, skipped == 1 ? "" : "s",
				first);
			goto out;
		}
		if (bad > 0) {
			pdb_print_not_imported(users_path, bad);
			goto out;
		}
	}
	if (aliases_path != NULL) {
		bad = pdb_aliases_load(cfg, aliases_path, &aliases);

		if (bad < 0) {
			rc = EX_NOINPUT;
			goto out;
		}
		if (bad > 0) {
			pdb_print_not_imported(aliases_path, bad);
			goto out;
		}
	}
	conn = pdb_connect(cfg);
	if (conn == NULL) {
		rc = EX_UNAVAILABLE;
		goto out;
	}
	rc = EX_IOERR;
	if (pdb_command(conn, "BEGIN") < 0)
		goto out;
	if ((db != NULL &&
	     pdb_import_users(conn, db, users_path, &uc, &domains) < 0) ||
	    pdb_import_aliases(conn, &aliases, &ac) < 0) {
		pdb_command(conn, "ROLLBACK");
		fprintf(stderr, "postctl: nothing imported\n");
		goto out;
	}
	if (pdb_command(conn, "COMMIT") < 0)
		goto out;
	if (users_path != NULL)
		printf("users: %zu added, %zu changed, %zu unchanged; "
		       "domains: %zu added\n",
		       uc.added, uc.changed, uc.unchanged, domains);
	if (aliases_path != NULL)
		printf("aliases: %zu added, %zu changed, %zu unchanged; "
		       "%zu domain lines not imported\n",
		       ac.added, ac.changed, ac.unchanged,
		       aliases.domain_lines);
	rc = postctl_stdout_done();
out:
	PQfinish(conn);
	passwd_db_free(&db);
	pdb_aliases_free(&aliases);
	return rc;
}
