/*
 * The aliases file parser and alias expansion on arbitrary files. The
 * file is written by the admin, but a typo must never crash the auth
 * process, and what expansion returns must be what the SMTP worker
 * assumes: a bounded list of distinct addresses holding '@', none on a
 * failure, the loop named on a loop. The first line of the input is
 * also expanded, as an address a client typed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/alias.h"
#include "auth/auth_proto.h"
#include "fuzz_util.h"
#include "lib/log.h"

static const char *const fuzz_addrs[] = {
    "alice@example.org",
    "info@example.org",
    "x+y@example.org",
    "postmaster@a.test",
    "abuse@example.net",
    "nobody@example.com",
    "a@b",
    "team+news@example.org",
    "@example.org",
};
#define FUZZ_ADDR_COUNT (sizeof(fuzz_addrs) / sizeof(fuzz_addrs[0]))

static int fuzz_fd = -1;
static char fuzz_path[64];
static FILE *fuzz_null;
static struct alias_result fuzz_result;

static bool fuzz_is_local_domain(const char *domain, void *ctx)
{
	(void)ctx;
	return strcmp(domain, "example.org") == 0 ||
	       strcmp(domain, "example.net") == 0 ||
	       strcmp(domain, "a.test") == 0;
}

/* Users: the names starting with 'a' or 'b', so that both kinds occur. */
static bool fuzz_is_user(const char *addr, void *ctx)
{
	(void)ctx;
	return addr[0] == 'a' || addr[0] == 'b';
}

static void fuzz_expand(const struct alias_table *t,
			const struct alias_env *env, const char *addr)
{
	struct alias_result *r = &fuzz_result;
	struct auth_reply reply;
	enum alias_status st = alias_expand(t, env, addr, r);

	FUZZ_CHECK(st == ALIAS_OK || st == ALIAS_UNKNOWN || st == ALIAS_LOOP ||
		   st == ALIAS_TOO_MANY);
	FUZZ_CHECK(r->count <= ALIAS_MAX_RESULTS);
	FUZZ_CHECK((st == ALIAS_OK) == (r->count > 0));
	if (st == ALIAS_LOOP)
		FUZZ_CHECK(strchr(r->loop, '@') != NULL);
	memset(&reply, 0, sizeof(reply));
	reply.version = AUTH_PROTO_VERSION;
	reply.result = AUTH_RESULT_OK;
	for (size_t i = 0; i < r->count; i++) {
		const char *a = r->targets[i].addr;

		FUZZ_CHECK(strchr(a, '@') != NULL && a[0] != '@');
		FUZZ_CHECK(strlen(a) < ALIAS_ADDR_SIZE);
		FUZZ_CHECK(r->targets[i].remote || fuzz_is_user(a, NULL));
		for (size_t k = 0; k < i; k++)
			FUZZ_CHECK(strcmp(r->targets[k].addr, a) != 0);
		if (auth_reply_add_target(&reply, a, r->targets[i].remote) == 0)
			FUZZ_CHECK(auth_reply_valid(&reply, sizeof(reply)));
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_fd = fuzz_memfd_open("fuzz_alias", fuzz_path, sizeof(fuzz_path));
	fuzz_null = fopen("/dev/null", "w");
	log_set_level(LOG_LEVEL_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct alias_table *t = alias_table_new();
	struct alias_env env = {
	    .is_local_domain = fuzz_is_local_domain,
	    .is_user = fuzz_is_user,
	    .delimiter = '+',
	    .max_expansions = 200,
	    .postmaster = "info@example.org",
	    .abuse = "abuse@example.org",
	};
	char first[ALIAS_ADDR_SIZE + 8];
	const char *key, *targets;
	char *error = NULL;
	size_t n = 0;

	fuzz_memfd_set(fuzz_fd, data, size);
	(void)alias_table_load_file(t, fuzz_path, &error);
	free(error);
	for (size_t i = 0; (key = alias_table_entry(t, i, &targets)) != NULL;
	     i++) {
		FUZZ_CHECK(strchr(key, '@') != NULL && targets[0] != '\0');
		fuzz_expand(t, &env, key);
	}
	for (size_t i = 0; i < FUZZ_ADDR_COUNT; i++)
		fuzz_expand(t, &env, fuzz_addrs[i]);
	while (n < size && n < sizeof(first) - 1 && data[n] != '\n') {
		first[n] = (char)data[n];
		n++;
	}
	first[n] = '\0';
	fuzz_expand(t, &env, first);
	(void)alias_table_check(t, &env, "", fuzz_null);
	alias_table_free(&t);
	return 0;
}
