/*
 * SASL decoding (PLAIN, LOGIN, strict base64) on arbitrary client lines.
 * The first byte picks the output buffer size for the base64 and LOGIN
 * decoders, so that the "too long for out" edge is reached; the buffer is
 * allocated at exactly that size so ASan sees any overflow. Decoding is
 * strict, so whatever decodes must encode back to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fuzz_util.h"
#include "lib/postd_limits.h"
#include "proto/common/sasl.h"

/* Output sizes up to this are tried; larger inputs use a full buffer. */
#define FUZZ_SASL_SMALL_OUT 64

static void fuzz_base64(const char *in, size_t len, size_t outsize);
static void fuzz_plain(const char *in, size_t len);
static void fuzz_login(const char *in, size_t len, size_t outsize);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	return 0;
}

static void fuzz_base64(const char *in, size_t len, size_t outsize)
{
	char *out = malloc(outsize);
	size_t n = 0;

	if (out == NULL)
		abort();
	if (sasl_base64_decode(in, len, out, outsize, &n) == 0) {
		FUZZ_CHECK(len <= SASL_MAX_RESPONSE_LINE);
		FUZZ_CHECK(n < outsize && out[n] == '\0');
		/* Strict: no other text decodes to the same bytes ("=" is
		 * the one spelling of an empty response besides ""). */
		if (n > 0) {
			size_t b64_size = sodium_base64_ENCODED_LEN(
			    n, sodium_base64_VARIANT_ORIGINAL);
			char *again = malloc(b64_size);

			if (again == NULL)
				abort();
			sodium_bin2base64(again, b64_size,
					  (const unsigned char *)out, n,
					  sodium_base64_VARIANT_ORIGINAL);
			FUZZ_CHECK(strlen(again) == len &&
				   memcmp(again, in, len) == 0);
			free(again);
		} else {
			FUZZ_CHECK(len == 0 || (len == 1 && in[0] == '='));
		}
	}
	free(out);
}

static void fuzz_plain(const char *in, size_t len)
{
	struct sasl_credentials creds;
	const char *error = NULL;

	if (sasl_plain_decode(in, len, &creds, &error) == 0) {
		size_t cid = strnlen(creds.authcid, sizeof(creds.authcid));
		size_t pw = strnlen(creds.password, sizeof(creds.password));
		size_t zid = strnlen(creds.authzid, sizeof(creds.authzid));

		/* Every field is terminated inside its array and the two
		 * that RFC 4616 requires are non-empty. */
		FUZZ_CHECK(cid > 0 && cid <= AUTH_MAX_USER);
		FUZZ_CHECK(pw > 0 && pw <= AUTH_MAX_PASSWORD);
		FUZZ_CHECK(zid <= AUTH_MAX_USER);
	} else {
		FUZZ_CHECK(error != NULL);
		/* A failure leaves nothing of the secret behind. */
		for (size_t i = 0; i < sizeof(creds); i++)
			FUZZ_CHECK(((const unsigned char *)&creds)[i] == 0);
	}
}

static void fuzz_login(const char *in, size_t len, size_t outsize)
{
	char *out = malloc(outsize);
	const char *error = NULL;

	if (out == NULL)
		abort();
	if (sasl_login_decode(in, len, out, outsize, &error) == 0) {
		size_t n = strnlen(out, outsize);

		FUZZ_CHECK(n > 0 && n < outsize);
	} else {
		FUZZ_CHECK(error != NULL);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t outsize, len;
	char *in;

	if (size < 1)
		return 0;
	/* 1..FUZZ_SASL_SMALL_OUT, or the size the callers really use. */
	outsize = data[0] % (FUZZ_SASL_SMALL_OUT + 1);
	if (outsize == 0)
		outsize = SASL_MAX_RESPONSE_LINE + 1;
	len = size - 1;
	/* A copy of exactly len bytes: the decoders must not need a NUL. */
	in = malloc(len > 0 ? len : 1);
	if (in == NULL)
		abort();
	memcpy(in, data + 1, len);

	fuzz_base64(in, len, outsize);
	fuzz_plain(in, len);
	fuzz_login(in, len, outsize);
	free(in);
	return 0;
}
