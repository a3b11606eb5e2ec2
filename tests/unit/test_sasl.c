/* Unit tests for SASL PLAIN (RFC 4616) and LOGIN decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/common/sasl.h"

static void test_plain_ok(void **state)
{
	struct sasl_credentials c;
	const char *error;
	/* "\0alice\0secret" */
	const char *b64 = "AGFsaWNlAHNlY3JldA==";

	(void)state;
	assert_int_equal(sasl_plain_decode(b64, strlen(b64), &c, &error), 0);
	assert_string_equal(c.authzid, "");
	assert_string_equal(c.authcid, "alice");
	assert_string_equal(c.password, "secret");
	/* "bob\0alice\0pw d" keeps the authzid and a space in the password */
	b64 = "Ym9iAGFsaWNlAHB3IGQ=";
	assert_int_equal(sasl_plain_decode(b64, strlen(b64), &c, &error), 0);
	assert_string_equal(c.authzid, "bob");
	assert_string_equal(c.authcid, "alice");
	assert_string_equal(c.password, "pw d");
}

static void test_plain_bad(void **state)
{
	static const char *const bad[] = {
	    "",			       /* nothing */
	    "=",		       /* empty response */
	    "YWxpY2U=",		       /* "alice": no NUL */
	    "AGFsaWNl",		       /* "\0alice": no password */
	    "AGFsaWNlAA==",	       /* "\0alice\0": empty password */
	    "AABzZWNyZXQ=",	       /* "\0\0secret": empty user */
	    "AGFsaWNlAHNlY3JldABt",    /* NUL inside the password */
	    "AGFsaWNlAHNlY3JldA",      /* padding missing */
	    "AGFsaWNlAHNl Y3JldA==",   /* space inside */
	    "AGFsaWNlAHNlY3JldA==\r",  /* trailing garbage */
	    "!!!!",		       /* not base64 */
	    "AGFsaWNlAHNlY3Jld\xff==", /* 8-bit byte: libsodium took it */
	};
	struct sasl_credentials c;
	const char *error;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sasl_plain_decode(bad[i], strlen(bad[i]), &c, &error) == 0)
			fail_msg("'%s' was accepted", bad[i]);
		assert_non_null(error);
		assert_string_equal(c.authcid, "");
	}
}

/* INV-S3: a response over the cap is refused before decoding. */
static void test_plain_too_long(void **state)
{
	static char big[SASL_MAX_RESPONSE_LINE + 8];
	struct sasl_credentials c;
	const char *error;

	(void)state;
	memset(big, 'A', sizeof(big) - 1);
	assert_int_equal(sasl_plain_decode(big, sizeof(big) - 1, &c, &error),
			 -1);
}

static void test_login(void **state)
{
	char out[64];
	const char *error;

	(void)state;
	assert_int_equal(
	    sasl_login_decode("YWxpY2U=", 8, out, sizeof(out), &error), 0);
	assert_string_equal(out, "alice");
	assert_int_equal(sasl_login_decode("YQBi", 4, out, sizeof(out), &error),
			 -1);
	assert_int_equal(sasl_login_decode("", 0, out, sizeof(out), &error),
			 -1);
	assert_true(sasl_is_cancel("*"));
	assert_false(sasl_is_cancel("**"));
	assert_int_equal(sasl_mech_from_name("plain"), SASL_MECH_PLAIN);
	assert_int_equal(sasl_mech_from_name("LOGIN"), SASL_MECH_LOGIN);
	assert_int_equal(sasl_mech_from_name("CRAM-MD5"), SASL_MECH_UNKNOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_ok),
	    cmocka_unit_test(test_plain_bad),
	    cmocka_unit_test(test_plain_too_long),
	    cmocka_unit_test(test_login),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
