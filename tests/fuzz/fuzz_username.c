/*
 * Login name canonicalisation (INV-S2, INV-U1): whatever the input, an
 * accepted name is canonical, within USERNAME_MAX_LEN, holds one '@',
 * only the allowed bytes, and normalizing it again changes nothing. The
 * first input byte picks the default domain.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "lib/username.h"

static const char *const fuzz_domains[] = {
    NULL, "example.org", "Example.ORG", "-bad.example", "a..b", "",
};
#define FUZZ_DOMAIN_COUNT (sizeof(fuzz_domains) / sizeof(fuzz_domains[0]))

static bool fuzz_allowed_byte(char c);
static void fuzz_check_canonical(const char *name);

static bool fuzz_allowed_byte(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '_' || c == '-' || c == '+' || c == '=' || c == '@';
}

/* What the Maildir path code relies on for a canonical name. */
static void fuzz_check_canonical(const char *name)
{
	char again[USERNAME_BUF_SIZE];
	const char *domain;
	size_t len = strlen(name), local_len;
	int ats = 0;

	FUZZ_CHECK(len > 0 && len <= USERNAME_MAX_LEN);
	for (size_t i = 0; i < len; i++) {
		FUZZ_CHECK(fuzz_allowed_byte(name[i]));
		ats += name[i] == '@';
	}
	FUZZ_CHECK(ats == 1);
	FUZZ_CHECK(name[0] != '.' && name[0] != '@');
	FUZZ_CHECK(strstr(name, "..") == NULL);
	FUZZ_CHECK(strstr(name, ".@") == NULL && strstr(name, "@.") == NULL);
	FUZZ_CHECK(name[len - 1] != '.' && name[len - 1] != '-');
	FUZZ_CHECK(username_is_canonical(name));
	FUZZ_CHECK(username_normalize(name, len, NULL, again, sizeof(again)) ==
		   0);
	FUZZ_CHECK(strcmp(again, name) == 0);
	domain = username_domain(name, &local_len);
	FUZZ_CHECK(local_len > 0 && name[local_len] == '@' &&
		   domain == name + local_len + 1 && *domain != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *default_domain;
	char *out;
	size_t len, outsize;
	char *in;

	if (size < 1)
		return 0;
	default_domain = fuzz_domains[data[0] % FUZZ_DOMAIN_COUNT];
	/* Sometimes a short output buffer, to reach the size check; it is
	 * allocated at exactly outsize so ASan sees a write past it. */
	outsize = data[0] >= 0xf0 ? (size_t)(data[0] & 0x0f) * 16 + 1
				  : USERNAME_BUF_SIZE;
	len = size - 1;
	in = malloc(len + 1);
	out = malloc(outsize);
	if (in == NULL || out == NULL)
		abort();
	memcpy(in, data + 1, len);
	in[len] = '\0';

	if (username_normalize(in, len, default_domain, out, outsize) == 0) {
		FUZZ_CHECK(strlen(out) < outsize);
		fuzz_check_canonical(out);
	}
	if (username_is_canonical(in))
		fuzz_check_canonical(in);
	free(out);
	free(in);
	return 0;
}
