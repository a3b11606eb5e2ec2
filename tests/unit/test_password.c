/*
 * Unit tests for src/auth/password.c. The fixed vectors below were made
 * with independent tools and pasted in literally:
 *   openssl passwd -1/-5/-6 -salt saltsalt secret       (MD5/SHA*-CRYPT)
 *   python3 hashlib + base64, salt b"\x01\x02\x03\x04saltY" (digests)
 *   python3 crypt.crypt("secret", "ab" / "$2b$05$abc...")  (DES, bcrypt)
 *   Openwall crypt_blowfish's published "U*U" vector       (bcrypt)
 *   libsodium's and node-argon2's published test vectors   (Argon2)
 * Other vectors are generated at run time with crypt_r() and EVP.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <crypt.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>

#include "auth/password.h"

struct vector {
	const char *stored;
	const char *password;
	const char *scheme;
	bool weak;
};

static const struct vector vectors[] = {
    {"{PLAIN}secret", "secret", "PLAIN", true},
    {"{CLEAR}secret", "secret", "CLEAR", true},
    {"{plain}secret", "secret", "PLAIN", true},
    {"{PLAIN}", "", "PLAIN", true},
    {"{PLAIN}pa:ss wo{r}d", "pa:ss wo{r}d", "PLAIN", true},
    {"{CRYPT}abNANd1rDfiNc", "secret", "CRYPT", true},
    {"abNANd1rDfiNc", "secret", "CRYPT", true},
    {"{CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0"
     "S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
     "secret", "CRYPT", false},
    {"{MD5-CRYPT}$1$saltsalt$9xy1btjgzLYfb7hivXtC//", "secret", "MD5-CRYPT",
     true},
    {"$1$saltsalt$9xy1btjgzLYfb7hivXtC//", "secret", "CRYPT", true},
    {"{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA",
     "secret", "SHA256-CRYPT", false},
    {"{SHA256-CRYPT}$5$rounds=5000$abc$qsg6EHbUzHQzF1POlD7zUwBINSELQxypPae"
     "DcZe6vH0",
     "secret", "SHA256-CRYPT", false},
    {"{SHA512-CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0"
     "U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
     "secret", "SHA512-CRYPT", false},
    {"{BLF-CRYPT}$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a",
     "secret", "BLF-CRYPT", false},
    {"{BLF-CRYPT}$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
     "U*U", "BLF-CRYPT", false},
    {"{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "secret", "SHA", true},
    {"{sha}5en6G6MezRroT3XKqkdPOmY/BfQ=", "secret", "SHA", true},
    {"{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4", "secret", "SHA", true},
    {"{SHA.HEX}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4", "secret", "SHA",
     true},
    {"{SSHA}m1t4+F9O+fobTKcGO5HJRKpovNUBAgMEc2FsdFk=", "secret", "SSHA", true},
    {"{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=", "secret", "SHA256",
     true},
    {"{SSHA256}feV6jwbSJmV+7uchugWsSKnF2injr7MK6FSY3UciVSMBAgMEc2FsdFk=",
     "secret", "SSHA256", false},
    {"{SHA512}vSsar3708Jvp9Szi2NWZZ02Bqp1qRCFpbcTZPdBhnWgs5WtNZKnvCXdhztmeD"
     "2cmW192CF5bDufKRpayrW/isg==",
     "secret", "SHA512", true},
    {"{SSHA512}QEH4l2aIjKrUyu/tuTUxky8x4mKwR9dmVCBNJFyfevReS9OefyU0bfclbL+h"
     "VxZkXxwMfYSdA4zed2n33kc0LAECAwRzYWx0WQ==",
     "secret", "SSHA512", false},
    {"{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee69", "secret", "PLAIN-MD5",
     true},
    {"{LDAP-MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==", "secret", "LDAP-MD5", true},
    {"{SMD5}ltF87rthF0ONF5Zx0Mu9NQECAwRzYWx0WQ==", "secret", "SMD5", true},
    {"{ARGON2ID}$argon2id$v=19$m=256,t=3,p=1$MDEyMzQ1Njc$G5ajKFCoUzaXRLdz7UJ"
     "b5wGkb2Xt+X5/GQjUYtS2+TE",
     "password", "ARGON2ID", false},
    {"{ARGON2I}$argon2i$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6"
     "FXWiCX4K6pW6Ue1Bnzz07Z8A",
     "password", "ARGON2I", false},
};

static const char *const malformed[] = {
    "{UNKNOWN}abc",
    "{SHA",
    "{}abc",
    "{SHA.ROT13}5en6G6MezRroT3XKqkdPOmY/BfQ=",
    "{PLAIN.HEX}abc",
    "{SHA}",
    "{SHA}not base64!",
    "{SHA}5en6G6MezRroT3XKqkdPOmY/Bf==",    /* 19 bytes */
    "{SHA256}5en6G6MezRroT3XKqkdPOmY/BfQ=", /* SHA-1 length */
    "{SSHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",   /* no salt */
    "{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee6",
    "{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee6x",
    "{MD5-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA",
    "{SHA512-CRYPT}$1$saltsalt$9xy1btjgzLYfb7hivXtC//",
    "{BLF-CRYPT}abNANd1rDfiNc",
    "{CRYPT}",
    "",
    "abNANd1rDfiN",
    "abNANd1rDfiNc!",
    "{CRYPT}$1$saltsalt$",
    "{CRYPT}$6$salt:salt$abc",
    /* an ARGON2I string under the ARGON2ID scheme */
    ("{ARGON2ID}$argon2i$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6"
     "FXWiCX4K6pW6Ue1Bnzz07Z8A"),
    "{ARGON2ID}$argon2id$v=19$m=256,t=3,p=1$MDEyMzQ1Njc",
    "{ARGON2ID}$argon2id$v=19$m=256,t=3$MDEyMzQ1Njc$G5ajKFCoUzaXRLdz7UJ",
    "{ARGON2ID}$argon2id$v=16$m=256,t=3,p=1$MDEyMzQ1Njc$G5ajKFCoUzaXRLdz7UJ",
    "{ARGON2ID}$argon2id$v=19$m=99999999,t=3,p=1$MDEyMzQ1Njc$G5ajKFCoUzaXRL",
    "{ARGON2ID}$argon2id$v=19$m=256,t=3,p=1$MD!yMzQ1Njc$G5ajKFCoUzaXRLdz7UJ",
};

static void test_password_fixed_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		const char *error = NULL, *scheme = NULL;
		bool weak = !v->weak;
		char wrong[64];
		int r;

		r = password_verify(v->stored, v->password, strlen(v->password),
				    &error);
		if (r != 1)
			fail_msg("vector %zu (%s): %d %s", i, v->stored, r,
				 error != NULL ? error : "");
		snprintf(wrong, sizeof(wrong), "%sx", v->password);
		assert_int_equal(
		    password_verify(v->stored, wrong, strlen(wrong), &error),
		    0);
		if (v->password[0] != '\0') {
			/* One byte shorter, and one byte changed. */
			assert_int_equal(
			    password_verify(v->stored, v->password,
					    strlen(v->password) - 1, &error),
			    0);
			snprintf(wrong, sizeof(wrong), "%s", v->password);
			wrong[0] ^= 1;
			assert_int_equal(password_verify(v->stored, wrong,
							 strlen(wrong), &error),
					 0);
		}
		if (password_check_stored(v->stored, &weak, &scheme, &error) !=
		    0)
			fail_msg("vector %zu (%s) not well formed: %s", i,
				 v->stored, error);
		assert_string_equal(scheme, v->scheme);
		if (weak != v->weak)
			fail_msg("vector %zu (%s): weak %d", i, v->stored,
				 weak);
	}
}

static void test_password_malformed(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		const char *error = NULL;
		bool weak;
		const char *scheme;

		if (password_verify(malformed[i], "secret", 6, &error) != -1)
			fail_msg("malformed %zu (%s) verified", i,
				 malformed[i]);
		assert_non_null(error);
		error = NULL;
		if (password_check_stored(malformed[i], &weak, &scheme,
					  &error) != -1)
			fail_msg("malformed %zu (%s) accepted", i,
				 malformed[i]);
		assert_non_null(error);
	}
}

static void test_password_unknown_scheme_error(void **state)
{
	const char *error = NULL;

	(void)state;
	assert_int_equal(password_verify("{NOPE}x", "x", 1, &error), -1);
	assert_string_equal(error, "unknown password scheme");
	assert_int_equal(password_check_stored(NULL, NULL, NULL, &error), -1);
}

/* crypt() takes a C string: a NUL inside the password must not let its
 * prefix match. */
static void test_password_crypt_embedded_nul(void **state)
{
	(void)state;
	assert_int_equal(password_verify("{MD5-CRYPT}$1$saltsalt$9xy1btjgzLYfb7"
					 "hivXtC//",
					 "secret\0x", 8, NULL),
			 0);
	assert_int_equal(password_verify("{PLAIN}secret", "secret\0", 7, NULL),
			 0);
}

/* Vectors made here with libxcrypt's own salt generator, for every
 * prefix, including yescrypt through {CRYPT}. */
static void test_password_crypt_runtime(void **state)
{
	static const struct {
		const char *prefix;
		const char *scheme;
	} kinds[] = {
	    {"$1$", "MD5-CRYPT"},    {"$5$", "SHA256-CRYPT"},
	    {"$6$", "SHA512-CRYPT"}, {"$2b$", "BLF-CRYPT"},
	    {"$y$", "CRYPT"},	     {"$6$", "CRYPT"},
	};
	struct crypt_data *cd = calloc(1, sizeof(*cd));

	(void)state;
	assert_non_null(cd);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		/* Default cost, but the lowest bcrypt cost to stay fast. */
		unsigned long cost = kinds[i].prefix[1] == '2' ? 4 : 0;
		char *setting =
		    crypt_gensalt_ra(kinds[i].prefix, cost, NULL, 0);
		char stored[512];
		const char *out, *error = NULL;

		assert_non_null(setting);
		out = crypt_r("hunter2", setting, cd);
		assert_non_null(out);
		assert_true(out[0] != '*');
		snprintf(stored, sizeof(stored), "{%s}%s", kinds[i].scheme,
			 out);
		if (password_verify(stored, "hunter2", 7, &error) != 1)
			fail_msg("%s: %s", stored, error ? error : "");
		assert_int_equal(password_verify(stored, "hunter3", 7, &error),
				 0);
		assert_int_equal(
		    password_check_stored(stored, NULL, NULL, &error), 0);
		free(setting);
	}
	free(cd);
}

static void runtime_digest(const char *scheme, const EVP_MD *md,
			   const unsigned char *salt, size_t salt_len)
{
	unsigned char raw[EVP_MAX_MD_SIZE + 16];
	char b64[256], stored[300];
	unsigned int len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestInit_ex(ctx, md, NULL), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, "p\xc3\xa4ss", 5), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, salt, salt_len), 1);
	assert_int_equal(EVP_DigestFinal_ex(ctx, raw, &len), 1);
	EVP_MD_CTX_free(ctx);
	if (salt_len > 0)
		memcpy(raw + len, salt, salt_len);
	sodium_bin2base64(b64, sizeof(b64), raw, len + salt_len,
			  sodium_base64_VARIANT_ORIGINAL);
	snprintf(stored, sizeof(stored), "{%s}%s", scheme, b64);
	assert_int_equal(password_verify(stored, "p\xc3\xa4ss", 5, NULL), 1);
	assert_int_equal(password_verify(stored, "p\xc3\xa4sS", 5, NULL), 0);
}

static void test_password_digest_runtime(void **state)
{
	static const unsigned char salt[16] = "0123456789abcdef";

	(void)state;
	runtime_digest("SHA", EVP_sha1(), NULL, 0);
	runtime_digest("SSHA", EVP_sha1(), salt, 4);
	runtime_digest("SHA256", EVP_sha256(), NULL, 0);
	runtime_digest("SSHA256", EVP_sha256(), salt, 16);
	runtime_digest("SHA512", EVP_sha512(), NULL, 0);
	runtime_digest("SSHA512", EVP_sha512(), salt, 8);
	runtime_digest("LDAP-MD5", EVP_md5(), NULL, 0);
	runtime_digest("SMD5", EVP_md5(), salt, 1);
}

static void test_password_hash_new(void **state)
{
	char *h = password_hash_new("correct horse", 13);
	char *h2 = password_hash_new("correct horse", 13);
	const char *scheme = NULL;
	bool weak = true;

	(void)state;
	assert_non_null(h);
	assert_non_null(h2);
	assert_true(strncmp(h, "{ARGON2ID}$argon2id$v=19$", 25) == 0);
	assert_string_not_equal(h, h2); /* random salt */
	assert_int_equal(password_verify(h, "correct horse", 13, NULL), 1);
	assert_int_equal(password_verify(h, "correct horsE", 13, NULL), 0);
	assert_int_equal(password_verify(h, "", 0, NULL), 0);
	assert_int_equal(password_check_stored(h, &weak, &scheme, NULL), 0);
	assert_false(weak);
	assert_string_equal(scheme, "ARGON2ID");
	free(h);
	free(h2);
}

static void *dummy_thread(void *arg)
{
	(void)arg;
	return (void *)password_dummy_hash();
}

/* INV-A1: the dummy hash is one valid hash in the default scheme,
 * computed once even when threads race for it. */
static void test_inv_a1_password_dummy_hash(void **state)
{
	pthread_t t[4];
	void *res[4];
	const char *d;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, dummy_thread, NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], &res[i]), 0);
	d = password_dummy_hash();
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(res[i], d);
	assert_true(strncmp(d, "{ARGON2ID}$argon2id$", 20) == 0);
	assert_int_equal(password_check_stored(d, NULL, NULL, NULL), 0);
	assert_int_equal(password_verify(d, "", 0, NULL), 0);
	assert_int_equal(password_verify(d, "password", 8, NULL), 0);
}

static void test_password_plaintext(void **state)
{
	(void)state;
	assert_string_equal(password_plaintext("{PLAIN}tanstaaf"), "tanstaaf");
	assert_string_equal(password_plaintext("{clear}x:y"), "x:y");
	assert_string_equal(password_plaintext("{PLAIN}"), "");
	assert_null(password_plaintext("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="));
	assert_null(password_plaintext("plain"));
	assert_null(password_plaintext("{PLAIN"));
	assert_null(password_plaintext(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_password_fixed_vectors),
	    cmocka_unit_test(test_password_malformed),
	    cmocka_unit_test(test_password_unknown_scheme_error),
	    cmocka_unit_test(test_password_crypt_embedded_nul),
	    cmocka_unit_test(test_password_crypt_runtime),
	    cmocka_unit_test(test_password_digest_runtime),
	    cmocka_unit_test(test_password_hash_new),
	    cmocka_unit_test(test_inv_a1_password_dummy_hash),
	    cmocka_unit_test(test_password_plaintext),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
