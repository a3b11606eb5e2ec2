/*
 * The users file extra fields that set retention and LOGIN-DELAY
 * (expire_parse_extra): whatever the input, a value that is set is in
 * range, and applying it to a policy gives a valid policy.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "lib/postd_limits.h"
#include "storage/expire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct expire_user_fields f;
	struct expire_policy p = {EXPIRE_NEVER, 86400};
	char error[256];
	char *s;
	int bad;

	/* The auth reply carries at most 255 bytes, NUL-terminated. */
	if (size > 255)
		return 0;
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	bad = expire_parse_extra(s, &f, error, sizeof(error));
	FUZZ_CHECK(bad >= 0);
	FUZZ_CHECK((bad > 0) == (error[0] != '\0'));
	FUZZ_CHECK(strlen(error) < sizeof(error));
	if (f.has_retention)
		FUZZ_CHECK(f.retention == EXPIRE_NEVER ||
			   (f.retention >= 0 &&
			    f.retention <= (int64_t)CONFIG_MAX_RETENTION));
	if (f.has_retention_unread)
		FUZZ_CHECK(
		    f.retention_unread == EXPIRE_NEVER ||
		    (f.retention_unread >= 0 &&
		     f.retention_unread <= (int64_t)CONFIG_MAX_RETENTION));
	if (f.has_login_delay)
		FUZZ_CHECK(f.login_delay <= CONFIG_MAX_TIMEOUT);
	expire_policy_apply(&p, &f);
	FUZZ_CHECK(expire_capa_days(&p) >= EXPIRE_NEVER);
	free(s);
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}
