/* Unit tests for src/auth/alias.c and alias_file.c: the virtual(5)
 * parser, expansion (precedence, subaddresses, role addresses, loops,
 * bounds), the postd -t check, postctl's atomic edits, and the targets
 * of an auth reply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_files.h"

#include "auth/alias.h"
#include "auth/auth_proto.h"

static char tmpdir[64];
static char path[128];

/* Local domains and users of the tests. */
static const char *const local_domains[] = {"example.org", "example.net",
					    "example.com", NULL};
static const char *const users[] = {"alice@example.org", "bob@example.org",
				    "carol@example.org", "al+x@example.org",
				    "dave@example.com",	 NULL};

static bool is_local_domain(const char *domain, void *ctx)
{
	(void)ctx;
	for (size_t i = 0; local_domains[i] != NULL; i++)
		if (strcmp(local_domains[i], domain) == 0)
			return true;
	return false;
}

static bool is_user(const char *addr, void *ctx)
{
	(void)ctx;
	for (size_t i = 0; users[i] != NULL; i++)
		if (strcmp(users[i], addr) == 0)
			return true;
	return false;
}

static struct alias_env test_env(void)
{
	struct alias_env env = {
	    .is_local_domain = is_local_domain,
	    .is_user = is_user,
	    .delimiter = '+',
	    .max_expansions = 100,
	};
	return env;
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_alias.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/aliases", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	char lock[160];

	(void)state;
	snprintf(lock, sizeof(lock), "%s.lock", path);
	unlink(path);
	unlink(lock);
	rmdir(tmpdir);
	return 0;
}

static void write_file(const char *text)
{
	test_file_write(path, text, strlen(text));
}

static char *read_file(void)
{
	static char buf[8192];

	return test_file_read(path, buf, sizeof(buf));
}

static struct alias_table *table_of(const char *text)
{
	struct alias_table *t = alias_table_new();
	char *error = NULL;

	write_file(text);
	if (alias_table_load_file(t, path, &error) < 0) {
		fprintf(stderr, "unexpected: %s\n", error);
		fail();
	}
	return t;
}

/* The targets of addr, joined by ",", or the status name. */
static const char *expand(const struct alias_table *t,
			  const struct alias_env *env, const char *addr)
{
	static char out[4096];
	static struct alias_result r;
	size_t len = 0;

	switch (alias_expand(t, env, addr, &r)) {
	case ALIAS_UNKNOWN:
		return "UNKNOWN";
	case ALIAS_LOOP:
		return "LOOP";
	case ALIAS_TOO_MANY:
		return "TOO_MANY";
	case ALIAS_OK:
		break;
	}
	out[0] = '\0';
	for (size_t i = 0; i < r.count; i++)
		len += (size_t)snprintf(
		    out + len, sizeof(out) - len, "%s%s%s", i > 0 ? "," : "",
		    r.targets[i].remote ? "R:" : "", r.targets[i].addr);
	return out;
}

static void test_alias_file_syntax(void **state)
{
	struct alias_table *t;
	const char *targets;

	(void)state;
	t = table_of("# comment\n"
		     "\n"
		     "Team@Example.ORG  alice@example.org,bob@example.org\n"
		     "   carol@example.org\n"
		     "  # an indented comment ends the entry\n"
		     "@example.net\t@example.org\n"
		     "example.net  virtual-alias-domain-line-is-ignored\n"
		     "info@example.org: alice@example.org\n");
	assert_int_equal(alias_table_count(t), 3);
	assert_string_equal(alias_table_entry(t, 0, &targets),
			    "team@example.org");
	assert_string_equal(
	    targets, "alice@example.org, bob@example.org, carol@example.org");
	assert_string_equal(alias_table_entry(t, 1, &targets), "@example.net");
	assert_string_equal(targets, "@example.org");
	assert_string_equal(alias_table_entry(t, 2, &targets),
			    "info@example.org");
	assert_null(alias_table_entry(t, 3, &targets));
	alias_table_free(&t);
	assert_null(t);
}

static void test_alias_file_errors_named_with_line(void **state)
{
	struct alias_table *t = alias_table_new();
	char long_line[ALIAS_MAX_LINE + 100];
	char *error = NULL;

	(void)state;
	memset(long_line, 'a', sizeof(long_line) - 2);
	long_line[sizeof(long_line) - 2] = '\n';
	long_line[sizeof(long_line) - 1] = '\0';
	write_file("ok@example.org alice@example.org\n"
		   "  continued@example.org\n"
		   "bad,key@example.org alice@example.org\n"
		   "nobody@example.org\n"
		   "x@example.org alice@\n"
		   "ok@example.org bob@example.org\n"
		   "y@example.org @example.org\n"
		   "@example.net @example.org, bob@example.org\n");
	assert_int_equal(alias_table_load_file(t, path, &error), -1);
	assert_non_null(error);
	assert_non_null(strstr(error, ":3: invalid alias address"));
	assert_non_null(strstr(error, ":4: no target"));
	assert_non_null(strstr(error, ":5: invalid target"));
	assert_non_null(strstr(error, ":6: duplicate alias ok@example.org"));
	assert_non_null(strstr(error, ":7: y@example.org: a target"));
	assert_non_null(strstr(error, ":8: @example.net: a target"));
	/* the good entry stays, continuation and all */
	assert_int_equal(alias_table_count(t), 1);
	free(error);
	alias_table_free(&t);

	t = alias_table_new();
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fputs("a@example.org alice@example.org\n", f);
		fputs(long_line, f);
		fputs("b@example.org bob@example.org\n", f);
		fclose(f);
	}
	assert_int_equal(alias_table_load_file(t, path, &error), -1);
	assert_non_null(strstr(error, ":2: line too long"));
	assert_int_equal(alias_table_count(t), 2);
	free(error);
	alias_table_free(&t);

	t = alias_table_new();
	assert_int_equal(
	    alias_table_load_file(t, "/nonexistent/aliases", &error), -1);
	assert_non_null(strstr(error, "cannot open"));
	free(error);
	alias_table_free(&t);
}

static void test_alias_table_add_checks(void **state)
{
	struct alias_table *t = alias_table_new();
	char *error = NULL;

	(void)state;
	assert_int_equal(alias_table_add(t, "list@example.org",
					 "alice@example.org bob@example.org",
					 &error),
			 0);
	assert_null(error);
	assert_int_equal(
	    alias_table_add(t, "LIST@example.org", "carol@example.org", &error),
	    -1);
	assert_non_null(strstr(error, "duplicate"));
	free(error);
	assert_int_equal(
	    alias_table_add(t, "a@b@", "carol@example.org", &error), -1);
	free(error);
	assert_int_equal(alias_table_add(t, "q@example.org", "", &error), -1);
	free(error);
	assert_int_equal(
	    alias_table_add(t, ".a@example.org", "carol@example.org", &error),
	    -1);
	free(error);
	assert_int_equal(
	    alias_table_add(t, "a@-x.org", "carol@example.org", &error), -1);
	free(error);
	assert_int_equal(alias_table_count(t), 1);
	alias_table_free(&t);
}

static void test_alias_expand_precedence(void **state)
{
	struct alias_env env = test_env();
	struct alias_table *t;

	(void)state;
	t = table_of(
	    "team@example.org alice@example.org, bob@example.org, "
	    "carol@example.org\n"
	    "all@example.org team@example.org, Alice@example.org\n"
	    "bob@example.org bob@example.org, carol@example.org\n"
	    "team+x@example.org dave@example.com\n"
	    "@example.com carol@example.org\n"
	    "@example.net @example.org\n"
	    "fwd@example.org alice@example.org, Someone@Remote.Test\n");
	/* a plain user is its own target */
	assert_string_equal(expand(t, &env, "alice@example.org"),
			    "alice@example.org");
	/* a list, nested, duplicates collapsed */
	assert_string_equal(expand(t, &env, "TEAM@example.org"),
			    "alice@example.org,bob@example.org,"
			    "carol@example.org");
	assert_string_equal(expand(t, &env, "all@example.org"),
			    "alice@example.org,bob@example.org,"
			    "carol@example.org");
	/* a real user listed as a key follows the alias; its own name in
	 * the targets keeps its copy */
	assert_string_equal(expand(t, &env, "bob@example.org"),
			    "bob@example.org,carol@example.org");
	/* exact key before the address without its subaddress */
	assert_string_equal(expand(t, &env, "team+x@example.org"),
			    "dave@example.com");
	assert_string_equal(expand(t, &env, "team+y@example.org"),
			    "alice@example.org,bob@example.org,"
			    "carol@example.org");
	assert_string_equal(expand(t, &env, "alice+news@example.org"),
			    "alice@example.org");
	/* a user whose name holds the delimiter is found as is */
	assert_string_equal(expand(t, &env, "al+x@example.org"),
			    "al+x@example.org");
	/* catch-all: only names nobody has */
	assert_string_equal(expand(t, &env, "dave@example.com"),
			    "dave@example.com");
	assert_string_equal(expand(t, &env, "whoever@example.com"),
			    "carol@example.org");
	/* domain alias keeps the local part */
	assert_string_equal(expand(t, &env, "alice@example.net"),
			    "alice@example.org");
	assert_string_equal(expand(t, &env, "nobody@example.net"), "UNKNOWN");
	assert_string_equal(expand(t, &env, "nobody@example.org"), "UNKNOWN");
	/* remote targets are marked and keep no case */
	assert_string_equal(expand(t, &env, "fwd@example.org"),
			    "alice@example.org,R:someone@remote.test");
	/* without a delimiter there are no subaddresses */
	env.delimiter = '\0';
	assert_string_equal(expand(t, &env, "alice+news@example.org"),
			    "UNKNOWN");
	alias_table_free(&t);
	/* no table at all: users only */
	env = test_env();
	assert_string_equal(expand(NULL, &env, "bob@example.org"),
			    "bob@example.org");
}

/* 60 octets: a local part with room for no extension of 5 or more. */
#define A60 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* Postfix's propagate_unmatched_extensions: an address found without its
 * extension passes it on to the targets of its alias or domain alias. */
static void test_alias_expand_propagates_extension(void **state)
{
	struct alias_env env = test_env();
	struct alias_table *t;

	(void)state;
	t = table_of("@example.net @example.org\n"
		     "alice+news@example.org bob@example.org\n"
		     "@example.com @remote.test\n"
		     "fwd@example.org alice@example.org, someone@remote.test\n"
		     "sales@example.org bob+sales@remote.test\n"
		     "bob+sales@example.org carol@example.org\n"
		     "desk@example.org bob+sales@example.org\n");
	/* the domain alias keeps the extension, so alice's own
	 * alice+news@ alias applies */
	assert_string_equal(expand(t, &env, "alice+news@example.net"),
			    "bob@example.org");
	assert_string_equal(expand(t, &env, "alice+other@example.net"),
			    "alice@example.org");
	/* seen at the remote end of a domain alias */
	assert_string_equal(expand(t, &env, "ann+x@example.com"),
			    "R:ann+x@remote.test");
	/* an exact alias: each target gets the extension; a local user is
	 * still its mailbox */
	assert_string_equal(expand(t, &env, "fwd+x@example.org"),
			    "alice@example.org,R:someone+x@remote.test");
	/* a target with its own extension keeps that one alone */
	assert_string_equal(expand(t, &env, "sales+x@example.org"),
			    "R:bob+sales@remote.test");
	assert_string_equal(expand(t, &env, "desk+x@example.org"),
			    "carol@example.org");
	/* a user is the mailbox: nothing to pass on */
	assert_string_equal(expand(t, &env, "carol+x@example.org"),
			    "carol@example.org");
	alias_table_free(&t);
	/* a local part that would pass 64 octets with the extension: the
	 * target without it, delivered rather than lost */
	t = table_of("fwd@example.org " A60 "@remote.test\n"
		     "@example.com someone@remote.test\n");
	assert_string_equal(expand(t, &env, "fwd+xyzzy@example.org"),
			    "R:" A60 "@remote.test");
	/* a catch-all is about the name: nothing to pass on */
	assert_string_equal(expand(t, &env, "who+x@example.com"),
			    "R:someone@remote.test");
	alias_table_free(&t);
}

static void test_alias_expand_roles(void **state)
{
	struct alias_env env = test_env();
	struct alias_table *t;

	(void)state;
	t = table_of("postmaster@example.com dave@example.com\n"
		     "admins@example.org alice@example.org, bob@example.org\n");
	/* not built in: unknown */
	assert_string_equal(expand(t, &env, "postmaster@example.org"),
			    "UNKNOWN");
	env.postmaster = "admins@example.org";
	env.abuse = "carol@example.org";
	assert_string_equal(expand(t, &env, "PostMaster@Example.NET"),
			    "alice@example.org,bob@example.org");
	assert_string_equal(expand(t, &env, "abuse@example.org"),
			    "carol@example.org");
	/* an alias of that name wins */
	assert_string_equal(expand(t, &env, "postmaster@example.com"),
			    "dave@example.com");
	/* a role address pointing at itself is a loop, not a crash */
	env.postmaster = "postmaster@example.org";
	assert_string_equal(expand(t, &env, "postmaster@example.org"), "LOOP");
	alias_table_free(&t);
}

static void test_alias_expand_loops_and_bounds(void **state)
{
	struct alias_env env = test_env();
	struct alias_table *t = alias_table_new();
	char key[64], target[64], *error = NULL;
	struct alias_result r;

	(void)state;
	assert_int_equal(
	    alias_table_add(t, "a@example.org", "b@example.org", &error), 0);
	assert_int_equal(
	    alias_table_add(t, "b@example.org", "a@example.org", &error), 0);
	assert_int_equal(
	    alias_table_add(t, "@example.net", "@example.com", &error), 0);
	assert_int_equal(
	    alias_table_add(t, "@example.com", "@example.net", &error), 0);
	assert_int_equal(alias_expand(t, &env, "a@example.org", &r),
			 ALIAS_LOOP);
	assert_string_equal(r.loop, "a@example.org");
	assert_int_equal(r.count, 0);
	assert_string_equal(expand(t, &env, "x@example.net"), "LOOP");
	/* a chain longer than ALIAS_MAX_DEPTH */
	for (int i = 0; i < ALIAS_MAX_DEPTH + 2; i++) {
		snprintf(key, sizeof(key), "c%d@example.org", i);
		snprintf(target, sizeof(target), "c%d@example.org", i + 1);
		assert_int_equal(alias_table_add(t, key, target, &error), 0);
	}
	assert_string_equal(expand(t, &env, "c0@example.org"), "TOO_MANY");
	/* max_expansions counts every step */
	env.max_expansions = 3;
	assert_string_equal(expand(t, &env, "c0@example.org"), "TOO_MANY");
	env.max_expansions = 100;
	assert_string_equal(expand(t, &env, "c30@example.org"), "UNKNOWN");
	/* more distinct results than one reply carries */
	{
		char list[ALIAS_MAX_RESULTS * 40];
		size_t len = 0;

		for (int i = 0; i <= ALIAS_MAX_RESULTS; i++)
			len += (size_t)snprintf(list + len, sizeof(list) - len,
						"r%d@remote.test ", i);
		assert_int_equal(
		    alias_table_add(t, "big@example.org", list, &error), 0);
		assert_string_equal(expand(t, &env, "big@example.org"),
				    "TOO_MANY");
	}
	alias_table_free(&t);
}

static void test_alias_check_reports(void **state)
{
	struct alias_env env = test_env();
	struct alias_table *t;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	t = table_of("ok@example.org alice@example.org\n"
		     "loop1@example.org loop2@example.org\n"
		     "loop2@example.org loop1@example.org\n"
		     "typo@example.org alcie@example.org, bob@example.org\n"
		     "@example.com catchall@example.com\n"
		     "@example.net @example.org\n");
	f = open_memstream(&out, &len);
	assert_non_null(f);
	assert_int_equal(alias_table_check(t, &env, "E: ", f), 4);
	fclose(f);
	assert_non_null(strstr(out, "E: alias loop1@example.org: loop"));
	assert_non_null(strstr(out, "E: alias loop2@example.org: loop"));
	assert_non_null(strstr(out, "E: alias typo@example.org: target "
				    "alcie@example.org is no user"));
	assert_non_null(strstr(out, "E: alias @example.com: loop"));
	assert_null(strstr(out, "ok@example.org"));
	assert_null(strstr(out, "@example.net"));
	free(out);
	alias_table_free(&t);
}

static void test_alias_file_edit(void **state)
{
	const char *error = NULL;
	const char *before = "# keep me\n"
			     "team@example.org alice@example.org,\n"
			     "    bob@example.org\n"
			     "info@example.org carol@example.org\n";

	(void)state;
	/* a missing file is created */
	assert_int_equal(
	    alias_file_add(path, "x@example.org", "alice@example.org", &error),
	    0);
	assert_string_equal(read_file(), "x@example.org\talice@example.org\n");
	write_file(before);
	assert_int_equal(alias_file_add(path, "Sales@example.org",
					"alice@example.org, bob@example.org",
					&error),
			 0);
	assert_string_equal(read_file(),
			    "# keep me\n"
			    "team@example.org alice@example.org,\n"
			    "    bob@example.org\n"
			    "info@example.org carol@example.org\n"
			    "sales@example.org\talice@example.org, "
			    "bob@example.org\n");
	assert_int_equal(alias_file_add(path, "team@EXAMPLE.org",
					"carol@example.org", &error),
			 -1);
	assert_non_null(strstr(error, "exists"));
	assert_int_equal(
	    alias_file_add(path, "new@example.org", "not an address", &error),
	    -1);
	assert_int_equal(alias_file_add(path, "new@example.org",
					"a@example.org\nevil@x.org", &error),
			 -1);
	/* delete takes the continuation lines with the entry */
	assert_int_equal(alias_file_delete(path, "TEAM@example.org", &error),
			 0);
	assert_string_equal(read_file(),
			    "# keep me\n"
			    "info@example.org carol@example.org\n"
			    "sales@example.org\talice@example.org, "
			    "bob@example.org\n");
	assert_int_equal(alias_file_delete(path, "team@example.org", &error),
			 -1);
	assert_string_equal(error, "no such alias");
	/* no temporary file left behind */
	{
		char tmp[200];

		snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
		assert_int_equal(access(tmp, F_OK), -1);
	}
}

static void test_auth_reply_targets(void **state)
{
	struct auth_reply reply;
	bool remote;

	(void)state;
	memset(&reply, 0, sizeof(reply));
	reply.version = AUTH_PROTO_VERSION;
	reply.result = AUTH_RESULT_OK;
	assert_int_equal(
	    auth_reply_add_target(&reply, "alice@example.org", false), 0);
	assert_int_equal(auth_reply_add_target(&reply, "x@remote.test", true),
			 0);
	assert_true(auth_reply_valid(&reply, sizeof(reply)));
	assert_string_equal(auth_reply_target(&reply, 0, &remote),
			    "alice@example.org");
	assert_false(remote);
	assert_string_equal(auth_reply_target(&reply, 1, &remote),
			    "x@remote.test");
	assert_true(remote);
	/* a count that does not match the strings */
	reply.target_count = 3;
	assert_false(auth_reply_valid(&reply, sizeof(reply)));
	reply.target_count = 2;
	/* garbage after the last target */
	reply.targets[sizeof(reply.targets) - 1] = 'x';
	assert_false(auth_reply_valid(&reply, sizeof(reply)));
	reply.targets[sizeof(reply.targets) - 1] = '\0';
	/* a remote bit past the last target */
	reply.target_remote |= 1u << 5;
	assert_false(auth_reply_valid(&reply, sizeof(reply)));
	reply.target_remote = 2;
	/* a control character inside an address */
	reply.targets[2] = '\n';
	assert_false(auth_reply_valid(&reply, sizeof(reply)));
	reply.targets[2] = 'i';
	/* targets on a failure */
	reply.result = AUTH_RESULT_FAIL;
	assert_false(auth_reply_valid(&reply, sizeof(reply)));
	reply.result = AUTH_RESULT_OK;
	assert_true(auth_reply_valid(&reply, sizeof(reply)));
	/* the packed space is bounded */
	memset(&reply, 0, sizeof(reply));
	reply.version = AUTH_PROTO_VERSION;
	for (int i = 0; i < AUTH_MAX_TARGETS; i++) {
		char addr[64];

		snprintf(addr, sizeof(addr), "user%d@example.org", i);
		assert_int_equal(auth_reply_add_target(&reply, addr, false), 0);
	}
	assert_int_equal(auth_reply_add_target(&reply, "one@more.test", true),
			 -1);
	assert_true(auth_reply_valid(&reply, sizeof(reply)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_alias_file_syntax, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_alias_file_errors_named_with_line, setup, teardown),
	    cmocka_unit_test(test_alias_table_add_checks),
	    cmocka_unit_test_setup_teardown(test_alias_expand_precedence, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_alias_expand_propagates_extension, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alias_expand_roles, setup,
					    teardown),
	    cmocka_unit_test(test_alias_expand_loops_and_bounds),
	    cmocka_unit_test_setup_teardown(test_alias_check_reports, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_alias_file_edit, setup,
					    teardown),
	    cmocka_unit_test(test_auth_reply_targets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
