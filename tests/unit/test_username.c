/* Unit tests for src/lib/username.c: the names that become Maildir paths
 * (INV-S2, INV-U1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/username.h"

struct name_case {
	const char *in;
	const char *default_domain;
	const char *out; /* NULL: rejected */
};

static const struct name_case cases[] = {
    {"alice@example.org", NULL, "alice@example.org"},
    {"Alice@Example.ORG", NULL, "alice@example.org"},
    {"alice", "example.org", "alice@example.org"},
    {"ALICE", "Example.Org", "alice@example.org"},
    {"alice", NULL, NULL},
    {"a.b_c-d+e=f@x-y.example", NULL, "a.b_c-d+e=f@x-y.example"},
    {"0@1", NULL, "0@1"},
    {"bob@localhost", "other", "bob@localhost"},
    {"", "example.org", NULL},
    {"@example.org", NULL, NULL},
    {"alice@", NULL, NULL},
    {".alice@example.org", NULL, NULL},
    {"alice.@example.org", NULL, NULL},
    {"al..ice@example.org", NULL, NULL},
    {"..@example.org", NULL, NULL},
    {".@example.org", NULL, NULL},
    {"al ice@example.org", NULL, NULL},
    {"al/ice@example.org", NULL, NULL},
    {"al\\ice@example.org", NULL, NULL},
    {"alice\r@example.org", NULL, NULL},
    {"alice\n@example.org", NULL, NULL},
    {"al%ice@example.org", NULL, NULL},
    {"al!ice@example.org", NULL, NULL},
    {"al:ice@example.org", NULL, NULL},
    {"\xc3\xa9@example.org", NULL, NULL},
    {"a@b@example.org", NULL, NULL},
    {"alice@example..org", NULL, NULL},
    {"alice@.example.org", NULL, NULL},
    {"alice@example.org.", NULL, NULL},
    {"alice@-example.org", NULL, NULL},
    {"alice@example-.org", NULL, NULL},
    {"alice@exa_mple.org", NULL, NULL},
    {"alice@exa/mple.org", NULL, NULL},
    {"alice@[127.0.0.1]", NULL, NULL},
    {"alice", "bad..domain", NULL},
    {"alice", "", NULL},
    {"alice", "-bad.org", NULL},
};

static void test_username_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[USERNAME_BUF_SIZE];
		int r = username_normalize(cases[i].in, strlen(cases[i].in),
					   cases[i].default_domain, out,
					   sizeof(out));

		if (cases[i].out == NULL) {
			if (r != -1)
				fail_msg("case %zu (%s) accepted as %s", i,
					 cases[i].in, out);
		} else {
			if (r != 0)
				fail_msg("case %zu (%s) rejected", i,
					 cases[i].in);
			assert_string_equal(out, cases[i].out);
		}
	}
}

/* The length argument rules, not the NUL: an embedded NUL is refused. */
static void test_inv_s2_username_embedded_nul(void **state)
{
	char out[USERNAME_BUF_SIZE];

	(void)state;
	assert_int_equal(username_normalize("alice\0@example.org", 18, NULL,
					    out, sizeof(out)),
			 -1);
	assert_int_equal(username_normalize("alice@example.org\0", 18, NULL,
					    out, sizeof(out)),
			 -1);
	/* A length shorter than the string reads only that much. */
	assert_int_equal(username_normalize("alice@example.orgXX", 17, NULL,
					    out, sizeof(out)),
			 0);
	assert_string_equal(out, "alice@example.org");
}

static void test_username_lengths(void **state)
{
	char in[512], out[USERNAME_BUF_SIZE];
	size_t n;

	(void)state;
	/* 64-byte local part: the most allowed. */
	memset(in, 'a', 64);
	memcpy(in + 64, "@example.org", 13);
	assert_int_equal(
	    username_normalize(in, strlen(in), NULL, out, sizeof(out)), 0);
	memset(in, 'a', 65);
	memcpy(in + 65, "@example.org", 13);
	assert_int_equal(
	    username_normalize(in, strlen(in), NULL, out, sizeof(out)), -1);

	/* 190-byte domain of 63-byte labels: allowed; 191: not. */
	memcpy(in, "a@", 2);
	n = 2;
	for (int i = 0; i < 2; i++) {
		memset(in + n, 'b', 63);
		n += 63;
		in[n++] = '.';
	}
	memset(in + n, 'c', 190 - 2 * 64);
	n += 190 - 2 * 64;
	in[n] = '\0';
	assert_int_equal(strlen(in + 2), 190);
	assert_int_equal(username_normalize(in, n, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, in);
	in[n] = 'c';
	in[n + 1] = '\0';
	assert_int_equal(username_normalize(in, n + 1, NULL, out, sizeof(out)),
			 -1);

	/* A 64-byte DNS label is too long. */
	memcpy(in, "a@", 2);
	memset(in + 2, 'b', 64);
	in[66] = '\0';
	assert_int_equal(username_normalize(in, 66, NULL, out, sizeof(out)),
			 -1);

	/* The longest name fits USERNAME_BUF_SIZE exactly. */
	memset(in, 'a', 64);
	in[64] = '@';
	n = 65;
	for (int i = 0; i < 2; i++) {
		memset(in + n, 'b', 63);
		n += 63;
		in[n++] = '.';
	}
	memset(in + n, 'c', 190 - 2 * 64);
	n += 190 - 2 * 64;
	assert_int_equal(n, USERNAME_MAX_LEN);
	assert_int_equal(username_normalize(in, n, NULL, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), USERNAME_MAX_LEN);
	/* ... and not a smaller buffer. */
	assert_int_equal(username_normalize(in, n, NULL, out, n), -1);

	/* Empty input or output. */
	assert_int_equal(username_normalize("", 0, "x", out, sizeof(out)), -1);
	assert_int_equal(username_normalize("a@b", 3, NULL, NULL, 0), -1);
}

static void test_username_default_domain_too_long(void **state)
{
	char dom[300], out[USERNAME_BUF_SIZE];

	(void)state;
	memset(dom, 'd', 250);
	dom[250] = '\0';
	assert_int_equal(username_normalize("alice", 5, dom, out, sizeof(out)),
			 -1);
}

static void test_username_is_canonical(void **state)
{
	(void)state;
	assert_true(username_is_canonical("alice@example.org"));
	assert_false(username_is_canonical("Alice@example.org"));
	assert_false(username_is_canonical("alice"));
	assert_false(username_is_canonical(""));
	assert_false(username_is_canonical("a..b@example.org"));
	assert_false(username_is_canonical("alice@example.org\n"));
	assert_false(username_is_canonical(NULL));
}

static void test_username_domain(void **state)
{
	size_t local_len = 0;
	const char *d;

	(void)state;
	d = username_domain("alice@example.org", &local_len);
	assert_string_equal(d, "example.org");
	assert_int_equal(local_len, 5);
	d = username_domain("nodomain", &local_len);
	assert_string_equal(d, "");
	assert_int_equal(local_len, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_username_table),
	    cmocka_unit_test(test_inv_s2_username_embedded_nul),
	    cmocka_unit_test(test_username_lengths),
	    cmocka_unit_test(test_username_default_domain_too_long),
	    cmocka_unit_test(test_username_is_canonical),
	    cmocka_unit_test(test_username_domain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
