/*
 * SRS (src/lib/srs.c). The expected addresses were computed apart from
 * this code, with Python's hmac module following libsrs2 (postsrsd):
 *   base64(HMAC-SHA1("tops3cr3t", lower(TT + host + local)))[:4]
 * at now = 1700000000 (day 19675, stamp "G3").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/srs.h"

#define NOW 1700000000
#define DAY 86400
#define DOMAIN "fwd.example.org"

static void load(struct srs_secrets *s, const char *text)
{
	const char *error = NULL;

	assert_int_equal(srs_secrets_parse(s, text, strlen(text), &error), 0);
}

static enum srs_result rev(const struct srs_secrets *s, const char *addr,
			   time_t now, char *out, size_t size)
{
	const char *at = strrchr(addr, '@');

	return srs_reverse(s, addr, (size_t)(at - addr), now, out, size);
}

static void test_forward_srs0_known_vector(void **state)
{
	struct srs_secrets s;
	char out[SRS_MAX_ADDRESS];

	(void)state;
	load(&s, "tops3cr3t\n");
	assert_int_equal(
	    srs_forward(&s, "alice@example.com", DOMAIN, NOW, out, sizeof(out)),
	    SRS_OK);
	assert_string_equal(out, "SRS0=PGkz=G3=example.com=alice@" DOMAIN);
	/* The hash is over lowercased fields: same hash, case kept. */
	assert_int_equal(
	    srs_forward(&s, "Alice@Example.COM", DOMAIN, NOW, out, sizeof(out)),
	    SRS_OK);
	assert_string_equal(out, "SRS0=PGkz=G3=Example.COM=Alice@" DOMAIN);
}

static void test_forward_srs0_becomes_srs1(void **state)
{
	struct srs_secrets s;
	char out[SRS_MAX_ADDRESS];

	(void)state;
	load(&s, "tops3cr3t");
	assert_int_equal(srs_forward(&s,
				     "SRS0=abcd=XY=orig.net=bob@first.example",
				     DOMAIN, NOW, out, sizeof(out)),
			 SRS_OK);
	assert_string_equal(
	    out, "SRS1=awn9=first.example==abcd=XY=orig.net=bob@" DOMAIN);
	/* An SRS1 of another forwarder keeps its first host, signed anew. */
	assert_int_equal(
	    srs_forward(&s,
			"SRS1=zzzz=first.example==abcd=XY=orig.net=bob@"
			"second.example",
			DOMAIN, NOW, out, sizeof(out)),
	    SRS_OK);
	assert_string_equal(
	    out, "SRS1=awn9=first.example==abcd=XY=orig.net=bob@" DOMAIN);
}

static void test_forward_own_domain_unchanged(void **state)
{
	struct srs_secrets s;
	char out[SRS_MAX_ADDRESS];

	(void)state;
	load(&s, "tops3cr3t");
	assert_int_equal(srs_forward(&s,
				     "SRS0=PGkz=G3=example.com=alice@FWD."
				     "example.org",
				     DOMAIN, NOW, out, sizeof(out)),
			 SRS_OK);
	assert_string_equal(out,
			    "SRS0=PGkz=G3=example.com=alice@FWD.example.org");
}

static void test_forward_refuses(void **state)
{
	struct srs_secrets s, none;
	char out[SRS_MAX_ADDRESS], lp[80], addr[120];

	(void)state;
	memset(&none, 0, sizeof(none));
	load(&s, "tops3cr3t");
	assert_int_equal(
	    srs_forward(&none, "a@b.example", DOMAIN, NOW, out, sizeof(out)),
	    SRS_NO_SECRET);
	assert_int_equal(
	    srs_forward(&s, "no-at-sign", DOMAIN, NOW, out, sizeof(out)),
	    SRS_MALFORMED);
	assert_int_equal(
	    srs_forward(&s, "\"a b\"@b.example", DOMAIN, NOW, out, sizeof(out)),
	    SRS_MALFORMED);
	assert_int_equal(
	    srs_forward(&s, "a..b@b.example", DOMAIN, NOW, out, sizeof(out)),
	    SRS_MALFORMED);
	/* A host that would break the fields or the local part. */
	assert_int_equal(
	    srs_forward(&s, "a@b=c.example", DOMAIN, NOW, out, sizeof(out)),
	    SRS_MALFORMED);
	assert_int_equal(
	    srs_forward(&s, "a@[192.0.2.1]", DOMAIN, NOW, out, sizeof(out)),
	    SRS_MALFORMED);
	/* 64 octets at most: the bounce must come back through RCPT. */
	memset(lp, 'x', 50);
	lp[50] = '\0';
	snprintf(addr, sizeof(addr), "%s@b.example", lp);
	assert_int_equal(srs_forward(&s, addr, DOMAIN, NOW, out, sizeof(out)),
			 SRS_TOO_LONG);
	assert_string_equal(out, "");
	/* Output buffer too small. */
	assert_int_equal(
	    srs_forward(&s, "alice@example.com", DOMAIN, NOW, out, 20),
	    SRS_TOO_LONG);
}

static void test_reverse_srs0(void **state)
{
	struct srs_secrets s;
	char out[SRS_MAX_ADDRESS], fwd[SRS_MAX_ADDRESS];

	(void)state;
	load(&s, "tops3cr3t");
	assert_int_equal(rev(&s, "SRS0=PGkz=G3=example.com=alice@" DOMAIN, NOW,
			     out, sizeof(out)),
			 SRS_OK);
	assert_string_equal(out, "alice@example.com");
	/* Case-insensitive hash, tag and stamp (a relay may fold case). */
	assert_int_equal(rev(&s, "srs0=pgkz=g3=example.com=alice@" DOMAIN, NOW,
			     out, sizeof(out)),
			 SRS_OK);
	assert_string_equal(out, "alice@example.com");
	/* The local part may hold the separator. */
	assert_int_equal(
	    srs_forward(&s, "a=b=c@x.example", DOMAIN, NOW, fwd, sizeof(fwd)),
	    SRS_OK);
	assert_int_equal(rev(&s, fwd, NOW, out, sizeof(out)), SRS_OK);
	assert_string_equal(out, "a=b=c@x.example");
}

static void test_reverse_srs1(void **state)
{
	struct srs_secrets s;
	char out[SRS_MAX_ADDRESS];

	(void)state;
	load(&s, "tops3cr3t");
	/* SRS1 has no stamp: only the hash, then back to the forwarder
	 * before us, whose SRS0 it was. */
	assert_int_equal(
	    rev(&s, "SRS1=awn9=first.example==abcd=XY=orig.net=bob@" DOMAIN,
		NOW + 400 * DAY, out, sizeof(out)),
	    SRS_OK);
	assert_string_equal(out, "SRS0=abcd=XY=orig.net=bob@first.example");
	assert_int_equal(
	    rev(&s, "SRS1=awn8=first.example==abcd=XY=orig.net=bob@" DOMAIN,
		NOW, out, sizeof(out)),
	    SRS_BAD_HASH);
}

static void test_reverse_age(void **state)
{
	struct srs_secrets s;
	char out[SRS_MAX_ADDRESS], fwd[SRS_MAX_ADDRESS];
	const char *a = "SRS0=PGkz=G3=example.com=alice@" DOMAIN;

	(void)state;
	load(&s, "tops3cr3t");
	assert_int_equal(
	    rev(&s, a, NOW + SRS_MAX_AGE_DAYS * DAY, out, sizeof(out)), SRS_OK);
	assert_int_equal(
	    rev(&s, a, NOW + (SRS_MAX_AGE_DAYS + 1) * DAY, out, sizeof(out)),
	    SRS_EXPIRED);
	assert_string_equal(out, "");
	/* A stamp from "tomorrow" is one that wrapped: 1023 days old. */
	assert_int_equal(rev(&s, a, NOW - DAY, out, sizeof(out)), SRS_EXPIRED);
	/* Across the 1024-day wrap: made on day 1023, read on day 1024+3. */
	assert_int_equal(srs_forward(&s, "alice@example.com", DOMAIN,
				     (time_t)1023 * DAY, fwd, sizeof(fwd)),
			 SRS_OK);
	assert_int_equal(rev(&s, fwd, (time_t)1027 * DAY, out, sizeof(out)),
			 SRS_OK);
	assert_string_equal(out, "alice@example.com");
}

static void test_reverse_forged(void **state)
{
	struct srs_secrets s, other;
	char out[SRS_MAX_ADDRESS];

	(void)state;
	load(&s, "tops3cr3t");
	load(&other, "another");
	/* Another key, a changed field, a short hash. */
	assert_int_equal(rev(&other, "SRS0=PGkz=G3=example.com=alice@" DOMAIN,
			     NOW, out, sizeof(out)),
			 SRS_BAD_HASH);
	assert_int_equal(rev(&s, "SRS0=PGkz=G3=example.com=mallory@" DOMAIN,
			     NOW, out, sizeof(out)),
			 SRS_BAD_HASH);
	assert_int_equal(rev(&s, "SRS0=PGk=G3=example.com=alice@" DOMAIN, NOW,
			     out, sizeof(out)),
			 SRS_BAD_HASH);
	/* A longer hash is cut to 4 (libsrs2). */
	assert_int_equal(rev(&s, "SRS0=PGkzXX=G3=example.com=alice@" DOMAIN,
			     NOW, out, sizeof(out)),
			 SRS_OK);
}

static void test_key_rotation(void **state)
{
	struct srs_secrets s;
	char out[SRS_MAX_ADDRESS];

	(void)state;
	/* The new key signs; the old one still verifies. */
	load(&s, "newkey\n\ntops3cr3t\n");
	assert_int_equal(s.count, 2);
	assert_int_equal(rev(&s, "SRS0=PGkz=G3=example.com=alice@" DOMAIN, NOW,
			     out, sizeof(out)),
			 SRS_OK);
	assert_int_equal(
	    srs_forward(&s, "alice@example.com", DOMAIN, NOW, out, sizeof(out)),
	    SRS_OK);
	assert_string_not_equal(out, "SRS0=PGkz=G3=example.com=alice@" DOMAIN);
}

static void test_reverse_malformed(void **state)
{
	static const char *const bad[] = {
	    "SRS0=PGkz@" DOMAIN,
	    "SRS0=PGkz=G3@" DOMAIN,
	    "SRS0=PGkz=G3=example.com@" DOMAIN,
	    "SRS0=PGkz=G3=example.com=@" DOMAIN,
	    "SRS0==G3=example.com=alice@" DOMAIN,
	    "SRS0=PGkz=G=example.com=alice@" DOMAIN,
	    "SRS0=PGkz=G1=example.com=alice@" DOMAIN,
	    "SRS0=PGkz=G3==alice@" DOMAIN,
	    "SRS1=awn9@" DOMAIN,
	    "SRS1=awn9=first.example@" DOMAIN,
	    "SRS1=awn9==x@" DOMAIN,
	};
	struct srs_secrets s;
	char out[SRS_MAX_ADDRESS];

	(void)state;
	load(&s, "tops3cr3t");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(rev(&s, bad[i], NOW, out, sizeof(out)),
				 SRS_MALFORMED);
	assert_int_equal(rev(&s, "alice@" DOMAIN, NOW, out, sizeof(out)),
			 SRS_NOT_SRS);
	assert_int_equal(rev(&s, "SRS2=a=b=c=d@" DOMAIN, NOW, out, sizeof(out)),
			 SRS_NOT_SRS);
	assert_int_equal(rev(&s, "SRS0@" DOMAIN, NOW, out, sizeof(out)),
			 SRS_NOT_SRS);
	/* Output too small for the decoded address. */
	assert_int_equal(
	    rev(&s, "SRS0=PGkz=G3=example.com=alice@" DOMAIN, NOW, out, 8),
	    SRS_TOO_LONG);
}

static void test_is_srs_local(void **state)
{
	(void)state;
	assert_true(srs_is_srs_local("SRS0=x", 6));
	assert_true(srs_is_srs_local("srs1-x", 6));
	assert_true(srs_is_srs_local("Srs0+", 5));
	assert_false(srs_is_srs_local("SRS0", 4));
	assert_false(srs_is_srs_local("SRS0x", 5));
	assert_false(srs_is_srs_local("SRS3=", 5));
	assert_false(srs_is_srs_local("SRT0=", 5));
}

static void test_secrets_parse_limits(void **state)
{
	struct srs_secrets s;
	const char *error = NULL;
	char big[SRS_MAX_SECRET_LEN + 3];

	(void)state;
	assert_int_equal(srs_secrets_parse(&s, "\n\n", 2, &error), -1);
	assert_int_equal(
	    srs_secrets_parse(&s, "1\n2\n3\n4\n5\n6\n7\n8\n9\n", 18, &error),
	    -1);
	assert_int_equal(s.count, 0);
	memset(big, 'k', sizeof(big));
	assert_int_equal(
	    srs_secrets_parse(&s, big, SRS_MAX_SECRET_LEN + 1, &error), -1);
	assert_int_equal(srs_secrets_parse(&s, big, SRS_MAX_SECRET_LEN, &error),
			 0);
	assert_int_equal(srs_secrets_parse(&s, "a\0b", 3, &error), -1);
	/* CRLF line ends do not become part of the key. */
	assert_int_equal(srs_secrets_parse(&s, "tops3cr3t\r\n", 11, &error), 0);
	assert_int_equal(s.len[0], 9);
}

static void test_secret_create_and_load(void **state)
{
	char dir[] = "/tmp/test_srs.XXXXXX", path[64], error[256];
	struct srs_secrets a, b;
	char out_a[SRS_MAX_ADDRESS], out_b[SRS_MAX_ADDRESS];
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/srs.secret", dir);
	assert_int_equal(srs_secret_create(path, error, sizeof(error)), 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* A second start keeps the key: addresses already out stay valid. */
	assert_int_equal(srs_secrets_load(&a, path, error, sizeof(error)), 0);
	assert_string_equal(error, "");
	assert_int_equal(srs_secret_create(path, error, sizeof(error)), 0);
	assert_int_equal(srs_secrets_load(&b, path, error, sizeof(error)), 0);
	assert_int_equal(
	    srs_forward(&a, "x@y.example", DOMAIN, NOW, out_a, sizeof(out_a)),
	    SRS_OK);
	assert_int_equal(
	    srs_forward(&b, "x@y.example", DOMAIN, NOW, out_b, sizeof(out_b)),
	    SRS_OK);
	assert_string_equal(out_a, out_b);
	/* Readable by others: loaded, with a warning. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(srs_secrets_load(&b, path, error, sizeof(error)), 0);
	assert_non_null(strstr(error, "chmod 600"));
	unlink(path);
	assert_int_equal(srs_secrets_load(&b, path, error, sizeof(error)), -1);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_forward_srs0_known_vector),
	    cmocka_unit_test(test_forward_srs0_becomes_srs1),
	    cmocka_unit_test(test_forward_own_domain_unchanged),
	    cmocka_unit_test(test_forward_refuses),
	    cmocka_unit_test(test_reverse_srs0),
	    cmocka_unit_test(test_reverse_srs1),
	    cmocka_unit_test(test_reverse_age),
	    cmocka_unit_test(test_reverse_forged),
	    cmocka_unit_test(test_key_rotation),
	    cmocka_unit_test(test_reverse_malformed),
	    cmocka_unit_test(test_is_srs_local),
	    cmocka_unit_test(test_secrets_parse_limits),
	    cmocka_unit_test(test_secret_create_and_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
