#include "auth/addressing.h"

#include <stdlib.h>
#include <string.h>

#include "auth/alias.h"
#include "auth/passwd_file.h"
#include "lib/username.h"

struct addressing_ctx {
	const struct config *cfg;
	const struct passwd_db *db; /* NULL: the users file was unreadable */
};

static bool addressing_is_local_domain(const char *domain, void *ctx);
static bool addressing_is_user(const char *addr, void *ctx);
static unsigned addressing_check_role(const struct alias_table *t,
				      const struct alias_env *env,
				      const char *key, const char *value,
				      FILE *out);

static bool addressing_is_local_domain(const char *domain, void *ctx)
{
	const struct addressing_ctx *c = ctx;

	return config_is_local_domain(c->cfg, domain);
}

/* Without the users file every local name counts as a user, so that
 * only loops and bounds are reported. */
static bool addressing_is_user(const char *addr, void *ctx)
{
	const struct addressing_ctx *c = ctx;

	if (c->db == NULL)
		return true;
	return username_is_canonical(addr) &&
	       passwd_db_lookup(c->db, addr) != NULL;
}

/* A role address must lead somewhere. */
static unsigned addressing_check_role(const struct alias_table *t,
				      const struct alias_env *env,
				      const char *key, const char *value,
				      FILE *out)
{
	struct alias_result *r;
	enum alias_status st;

	if (value == NULL)
		return 0;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return 1;
	st = alias_expand(t, env, value, r);
	free(r);
	if (st == ALIAS_OK)
		return 0;
	fprintf(out, "postd: error: %s %s %s\n", key, value,
		st == ALIAS_LOOP       ? "is part of an alias loop"
		: st == ALIAS_TOO_MANY ? "expands to too many addresses"
				       : "is no user, alias or remote address");
	return 1;
}

unsigned addressing_check(const struct config *cfg, FILE *out)
{
	struct addressing_ctx c = {.cfg = cfg};
	struct passwd_db *db = NULL;
	struct alias_table *t = alias_table_new();
	struct alias_env env = {
	    .is_local_domain = addressing_is_local_domain,
	    .is_user = addressing_is_user,
	    .ctx = &c,
	    .delimiter = cfg->recipient_delimiter,
	    .max_expansions = cfg->alias_max_expansions,
	    .postmaster = cfg->postmaster_address,
	    .abuse = cfg->abuse_address,
	};
	const char *error = NULL;
	char *alias_error = NULL;
	unsigned errors = 0;

	if (cfg->users_file != NULL &&
	    passwd_db_load(cfg->users_file, &db, &error) == 0)
		c.db = db;
	if (c.db == NULL)
		fprintf(out,
			"postd: warning: cannot read users file (%s): alias "
			"targets are not checked against the users\n",
			error != NULL ? error : "not set");
	if (cfg->aliases_file != NULL &&
	    alias_table_load_file(t, cfg->aliases_file, &alias_error) < 0) {
		for (char *line = alias_error; line != NULL;) {
			char *nl = strchr(line, '\n');

			if (nl != NULL)
				*nl = '\0';
			fprintf(out, "postd: error: aliases file: %s\n", line);
			errors++;
			line = nl != NULL ? nl + 1 : NULL;
		}
	}
	free(alias_error);
	errors += alias_table_check(t, &env, "postd: error: ", out);
	if (cfg->postmaster_address == NULL)
		fprintf(out,
			"postd: warning: postmaster_address is not set: mail "
			"to postmaster@ goes to the first user of users_file "
			"(%s)\n",
			c.db != NULL && passwd_db_count(c.db) > 0
			    ? passwd_db_entry(c.db, 0)->name
			    : "none yet");
	errors += addressing_check_role(t, &env, "postmaster_address",
					cfg->postmaster_address, out);
	errors += addressing_check_role(t, &env, "abuse_address",
					cfg->abuse_address, out);
	alias_table_free(&t);
	passwd_db_free(&db);
	return errors;
}
