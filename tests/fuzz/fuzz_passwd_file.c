/*
 * The users file parser on arbitrary files. The file is trusted input
 * (written by the administrator), but a typo must never crash the auth
 * process, and whatever is loaded must be what the auth process assumes:
 * canonical names, found again by lookup, a hash it can verify, extra
 * fields that fit in a reply. Cheap schemes are verified too, which
 * exercises their base64/hex decoding; slow ones (crypt, Argon2) are
 * left out so that a cost parameter in the input cannot stall the run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_proto.h"
#include "auth/passwd_file.h"
#include "auth/password.h"
#include "fuzz_util.h"
#include "lib/log.h"
#include "lib/username.h"

static const char *const fuzz_cheap_schemes[] = {
    "PLAIN",   "CLEAR",	 "SHA",	    "SHA1",	 "SSHA",     "SHA256",
    "SSHA256", "SHA512", "SSHA512", "PLAIN-MD5", "LDAP-MD5", "SMD5",
};
#define FUZZ_CHEAP_COUNT                                                       \
	(sizeof(fuzz_cheap_schemes) / sizeof(fuzz_cheap_schemes[0]))

static const char *const fuzz_lookups[] = {
    "alice@example.org", "bob@example.org", "", "@", "nobody@localhost",
};
#define FUZZ_LOOKUP_COUNT (sizeof(fuzz_lookups) / sizeof(fuzz_lookups[0]))

static int fuzz_fd = -1;
static char fuzz_path[64];

static bool fuzz_is_cheap(const char *scheme);
static void fuzz_check_entry(const struct passwd_db *db, size_t i);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_fd =
	    fuzz_memfd_open("fuzz_passwd_file", fuzz_path, sizeof(fuzz_path));
	/* Every skipped line is a warning: keep the fuzzer's output
	 * readable. */
	log_set_level(LOG_LEVEL_ERROR);
	return 0;
}

static bool fuzz_is_cheap(const char *scheme)
{
	for (size_t i = 0; i < FUZZ_CHEAP_COUNT; i++)
		if (strcmp(scheme, fuzz_cheap_schemes[i]) == 0)
			return true;
	return false;
}

static void fuzz_check_entry(const struct passwd_db *db, size_t i)
{
	const struct passwd_entry *e = passwd_db_entry(db, i);
	const char *scheme = NULL, *error = NULL;
	bool weak = false;
	int r;

	FUZZ_CHECK(e != NULL && e->name != NULL && e->password != NULL);
	FUZZ_CHECK(username_is_canonical(e->name));
	FUZZ_CHECK(passwd_db_lookup(db, e->name) == e);
	FUZZ_CHECK(strchr(e->password, ':') == NULL);
	FUZZ_CHECK(strchr(e->password, '\n') == NULL);
	if (e->extra != NULL)
		FUZZ_CHECK(strlen(e->extra) <
			   sizeof(((struct auth_reply *)0)->extra));
	FUZZ_CHECK(e->line >= 1);
	if (i > 0)
		FUZZ_CHECK(passwd_db_entry(db, i - 1)->line < e->line);
	FUZZ_CHECK(password_check_stored(e->password, &weak, &scheme, &error) ==
		   0);
	if (fuzz_is_cheap(scheme)) {
		r = password_verify(e->password, "secret", 6, &error);
		FUZZ_CHECK(r == 0 || r == 1);
	}
	(void)password_plaintext(e->password);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct passwd_db *db = NULL;
	const char *error = NULL;
	size_t count;

	fuzz_memfd_set(fuzz_fd, data, size);
	FUZZ_CHECK(passwd_db_load(fuzz_path, &db, &error) == 0);
	FUZZ_CHECK(db != NULL);
	count = passwd_db_count(db);
	for (size_t i = 0; i < count; i++)
		fuzz_check_entry(db, i);
	FUZZ_CHECK(passwd_db_entry(db, count) == NULL);
	for (size_t i = 0; i < FUZZ_LOOKUP_COUNT; i++) {
		const struct passwd_entry *e =
		    passwd_db_lookup(db, fuzz_lookups[i]);

		FUZZ_CHECK(e == NULL || strcmp(e->name, fuzz_lookups[i]) == 0);
	}
	passwd_db_free(&db);
	FUZZ_CHECK(db == NULL);
	return 0;
}
