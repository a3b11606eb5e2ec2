/*
 * The Autodiscover request parser on arbitrary bodies (what anyone on the
 * network may POST to /autodiscover/autodiscover.xml). The input is copied
 * to a buffer of exactly its size, so ASan sees any read past the end.
 * Whatever parses must yield bounded, trimmed, NUL-terminated fields
 * without '&' or control bytes, and must also parse from a copy that has
 * trailing whitespace added (the parser is not position dependent).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proto/http/autodiscover.h"

static void fuzz_check_field(const char *s, size_t max);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void fuzz_check_field(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	FUZZ_CHECK(n > 0 && n <= max);
	FUZZ_CHECK(s[0] != ' ' && s[0] != '\t' && s[0] != '\r' && s[0] != '\n');
	FUZZ_CHECK(s[n - 1] != ' ' && s[n - 1] != '\t' && s[n - 1] != '\r' &&
		   s[n - 1] != '\n');
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(s[i] != '&' && s[i] != '<');
		FUZZ_CHECK((unsigned char)s[i] >= 0x20 || s[i] == '\t' ||
			   s[i] == '\r' || s[i] == '\n');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct autodiscover_request req, again;
	const char *error = NULL;
	char *in = malloc(size > 0 ? size : 1);
	int rc;

	if (in == NULL)
		abort();
	memcpy(in, data, size);
	rc = autodiscover_parse(in, size, &req, &error);
	if (rc == 0) {
		fuzz_check_field(req.email, AUTODISCOVER_MAX_EMAIL);
		fuzz_check_field(req.schema, AUTODISCOVER_MAX_SCHEMA);
		FUZZ_CHECK(size <= AUTODISCOVER_MAX_REQUEST);
		if (size < AUTODISCOVER_MAX_REQUEST) {
			char *more = malloc(size + 1);

			if (more == NULL)
				abort();
			memcpy(more, data, size);
			more[size] = '\n';
			FUZZ_CHECK(autodiscover_parse(more, size + 1, &again,
						      &error) == 0);
			FUZZ_CHECK(strcmp(again.email, req.email) == 0);
			FUZZ_CHECK(strcmp(again.schema, req.schema) == 0);
			free(more);
		}
	} else {
		FUZZ_CHECK(rc == -1 && error != NULL);
		FUZZ_CHECK(req.email[0] == '\0' && req.schema[0] == '\0');
	}
	free(in);
	return 0;
}
