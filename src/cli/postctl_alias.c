/*
 * postctl alias add|del|list: edits aliases_file as postctl user edits
 * the users file (one atomic rewrite per change). postd reads the new
 * file on its next reload (SIGHUP).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "auth/alias.h"
#include "cli/postctl.h"
#include "lib/xmalloc.h"

static void postctl_alias_usage(void);
static int postctl_alias_add(const struct config *cfg, int argc, char **argv);
static int postctl_alias_del(const struct config *cfg, const char *key);
static int postctl_alias_list(const struct config *cfg);

static void postctl_alias_usage(void)
{
	fprintf(stderr, "usage: postctl [-c FILE] alias add ADDRESS TARGET...\n"
			"       postctl [-c FILE] alias del ADDRESS\n"
			"       postctl [-c FILE] alias list\n"
			"ADDRESS is user@domain or @domain (domain alias or "
			"catch-all).\n");
}

/* The targets as one virtual(5) right-hand side: "a@x, b@y". */
static int postctl_alias_add(const struct config *cfg, int argc, char **argv)
{
	size_t len = 0, pos = 0;
	char *targets;
	const char *error;
	int rc = EX_OK;

	for (int i = 3; i < argc; i++)
		len += strlen(argv[i]) + 2;
	if (len > ALIAS_MAX_LOGICAL_LINE) {
		fprintf(stderr, "postctl: too many targets\n");
		return EX_USAGE;
	}
	targets = xcalloc(1, len + 1);
	for (int i = 3; i < argc; i++) {
		size_t n = strlen(argv[i]);

		if (i > 3) {
			memcpy(targets + pos, ", ", 2);
			pos += 2;
		}
		memcpy(targets + pos, argv[i], n + 1);
		pos += n;
	}
	if (alias_file_add(cfg->aliases_file, argv[2], targets, &error) < 0) {
		fprintf(stderr, "postctl: cannot add alias %s to %s: %s\n",
			argv[2], cfg->aliases_file, error);
		rc = strstr(error, "exists") != NULL ||
			     strstr(error, "invalid") != NULL ||
			     strstr(error, "target") != NULL
			 ? EX_DATAERR
			 : EX_IOERR;
	}
	free(targets);
	return rc;
}

static int postctl_alias_del(const struct config *cfg, const char *key)
{
	const char *error;

	if (alias_file_delete(cfg->aliases_file, key, &error) < 0) {
		fprintf(stderr, "postctl: cannot delete alias %s from %s: %s\n",
			key, cfg->aliases_file, error);
		return strcmp(error, "no such alias") == 0 ? EX_NOUSER
		       : strstr(error, "invalid") != NULL  ? EX_DATAERR
							   : EX_IOERR;
	}
	return EX_OK;
}

static int postctl_alias_list(const struct config *cfg)
{
	struct alias_table *t = alias_table_new();
	char *error = NULL;
	struct stat st;
	const char *key, *targets;

	if (stat(cfg->aliases_file, &st) < 0 && errno == ENOENT) {
		alias_table_free(&t);
		return EX_OK;
	}
	if (alias_table_load_file(t, cfg->aliases_file, &error) < 0) {
		/* The good lines are listed; the bad ones named. */
		fprintf(stderr, "postctl: %s\n", error);
		free(error);
	}
	for (size_t i = 0; (key = alias_table_entry(t, i, &targets)) != NULL;
	     i++)
		printf("%s\t%s\n", key, targets);
	alias_table_free(&t);
	return postctl_stdout_done();
}

int postctl_alias_main(const struct config *cfg, int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "add") == 0 && argc < 4) ||
	    (strcmp(argv[1], "del") == 0 && argc != 3) ||
	    (strcmp(argv[1], "list") == 0 && argc != 2) ||
	    (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "del") != 0 &&
	     strcmp(argv[1], "list") != 0)) {
		postctl_alias_usage();
		return EX_USAGE;
	}
	/* userdb = pgsql: the aliases table replaces aliases_file. */
	if (cfg->userdb == USERDB_PGSQL)
		return postctl_db_alias_main(cfg, argc, argv);
	if (cfg->aliases_file == NULL) {
		fprintf(stderr, "postctl: aliases_file is not set in the "
				"configuration\n");
		return EX_CONFIG;
	}
	if (strcmp(argv[1], "add") == 0)
		return postctl_alias_add(cfg, argc, argv);
	if (strcmp(argv[1], "del") == 0)
		return postctl_alias_del(cfg, argv[2]);
	return postctl_alias_list(cfg);
}
