/*
 * postd.conf parser: every key, every error kind with its line number,
 * several errors in one run, listeners, durations, the embedded default
 * and config_validate().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "config/config.h"
#include "lib/postd_limits.h"

struct loaded {
	char path[64];
	struct config *cfg;
	char *errors; /* everything printed, NUL-terminated */
	size_t errors_len;
	int rc;
};

static void load_bytes(struct loaded *l, const char *text, size_t len);
static void load(struct loaded *l, const char *text);
static void loaded_free(struct loaded *l);
static int count_lines(const char *s);
static void assert_error_at(const struct loaded *l, int line,
			    const char *needle);

static void load_bytes(struct loaded *l, const char *text, size_t len)
{
	FILE *errors;
	int fd;

	memset(l, 0, sizeof(*l));
	snprintf(l->path, sizeof(l->path), "/tmp/test_config.XXXXXX");
	fd = mkstemp(l->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	errors = open_memstream(&l->errors, &l->errors_len);
	assert_non_null(errors);
	l->rc = config_load(l->path, errors, &l->cfg);
	fclose(errors);
	unlink(l->path);
}

static void load(struct loaded *l, const char *text)
{
	load_bytes(l, text, strlen(text));
}

static void loaded_free(struct loaded *l)
{
	config_free(&l->cfg);
	assert_null(l->cfg);
	free(l->errors);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* The output holds a line "PATH:LINE: ...needle...". */
static void assert_error_at(const struct loaded *l, int line,
			    const char *needle)
{
	char prefix[128];
	const char *s = l->errors;

	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", l->path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", l->path);
	while ((s = strstr(s, prefix)) != NULL) {
		const char *eol = strchr(s, '\n');
		const char *hit = strstr(s, needle);

		if (hit != NULL && eol != NULL && hit < eol)
			return;
		s += strlen(prefix);
	}
	fail_msg("no error '%s' ... '%s' in:\n%s", prefix, needle, l->errors);
}

static const char *minimal = "domains = example.org\n"
			     "listen.pop3 = 127.0.0.1:110\n";

static void test_minimal_file_gets_defaults(void **state)
{
	struct loaded l;
	struct config *cfg;

	(void)state;
	load(&l, minimal);
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.errors_len, 0);
	cfg = l.cfg;
	assert_string_equal(cfg->path, l.path);
	assert_string_equal(cfg->data_dir, "/var/lib/postd");
	assert_string_equal(cfg->users_file, "/etc/postd/users");
	assert_string_equal(cfg->user, "postd");
	assert_null(cfg->tls_cert);
	assert_null(cfg->tls_key);
	assert_null(cfg->auth_default_domain);
	assert_non_null(cfg->hostname);
	assert_true(cfg->hostname[0] != '\0');
	assert_int_equal(cfg->domain_count, 1);
	assert_string_equal(cfg->domains[0], "example.org");
	assert_null(cfg->domains[1]);
	assert_int_equal(cfg->plaintext_auth, PLAINTEXT_AUTH_LOOPBACK);
	assert_false(cfg->apop);
	assert_int_equal(cfg->workers, 0);
	assert_int_equal(cfg->max_connections, 10000);
	assert_int_equal(cfg->max_connections_per_peer, 100);
	assert_int_equal(cfg->timeout_preauth, 60);
	assert_int_equal(cfg->timeout_idle, 600);
	assert_int_equal(cfg->auth_failure_delay_ms, 1000);
	assert_false(cfg->log_debug);
	assert_int_equal(cfg->listen_count, 1);
	assert_int_equal(cfg->listen[0].proto, LISTEN_POP3);
	assert_string_equal(cfg->listen[0].host, "127.0.0.1");
	assert_string_equal(cfg->listen[0].port, "110");
	assert_int_equal(cfg->listen[0].line, 2);
	assert_int_equal(config_validate(cfg, NULL), 0);
	loaded_free(&l);
}

static void test_every_key(void **state)
{
	struct loaded l;
	struct config *cfg;

	(void)state;
	load(&l, "# a full configuration\n"
		 "hostname = mail.Example.org\n"
		 "domains = Example.ORG example.net\n"
		 "data_dir = /srv/postd\n"
		 "users_file = /srv/postd/users\n"
		 "tls_cert = /srv/postd/cert.pem\n"
		 "tls_key = /srv/postd/key.pem\n"
		 "user = mail_1\n"
		 "listen.pop3 = 127.0.0.1:110\n"
		 "listen.pop3s = 127.0.0.1:995\n"
		 "listen.smtp = 127.0.0.1:25\n"
		 "listen.submission = 127.0.0.1:587\n"
		 "listen.submissions = 127.0.0.1:465\n"
		 "listen.imap = 127.0.0.1:143\n"
		 "listen.imaps = 127.0.0.1:993\n"
		 "listen.http = 127.0.0.1:8080\n"
		 "auth_default_domain = EXAMPLE.org\n"
		 "plaintext_auth = yes\n"
		 "apop = yes\n"
		 "workers = 4\n"
		 "max_connections = 500\n"
		 "max_connections_per_peer = 7\n"
		 "timeout_preauth = 30s\n"
		 "pop3_idle_timeout = 1h\n"
		 "auth_failure_delay = 250ms\n"
		 "log_level = debug\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.errors_len, 0);
	cfg = l.cfg;
	assert_string_equal(cfg->hostname, "mail.Example.org");
	assert_int_equal(cfg->domain_count, 2);
	assert_string_equal(cfg->domains[0], "example.org");
	assert_string_equal(cfg->domains[1], "example.net");
	assert_null(cfg->domains[2]);
	assert_string_equal(cfg->data_dir, "/srv/postd");
	assert_string_equal(cfg->users_file, "/srv/postd/users");
	assert_string_equal(cfg->tls_cert, "/srv/postd/cert.pem");
	assert_string_equal(cfg->tls_key, "/srv/postd/key.pem");
	assert_string_equal(cfg->user, "mail_1");
	assert_int_equal(cfg->listen_count, 8);
	for (int i = 0; i < LISTEN_PROTO_COUNT; i++) {
		assert_int_equal(cfg->listen[i].proto, i);
		assert_int_equal(cfg->listen[i].line, 9 + i);
	}
	assert_string_equal(cfg->listen[6].port, "993");
	assert_string_equal(cfg->auth_default_domain, "example.org");
	assert_int_equal(cfg->plaintext_auth, PLAINTEXT_AUTH_YES);
	assert_true(cfg->apop);
	assert_int_equal(cfg->workers, 4);
	assert_int_equal(cfg->max_connections, 500);
	assert_int_equal(cfg->max_connections_per_peer, 7);
	assert_int_equal(cfg->timeout_preauth, 30);
	assert_int_equal(cfg->timeout_idle, 3600);
	assert_int_equal(cfg->auth_failure_delay_ms, 250);
	assert_true(cfg->log_debug);
	assert_int_equal(config_validate(cfg, NULL), 0);
	loaded_free(&l);
}

static void test_enumerations(void **state)
{
	static const struct {
		const char *line;
		size_t offset;
		int value;
	} cases[] = {
	    {"plaintext_auth = no", offsetof(struct config, plaintext_auth),
	     PLAINTEXT_AUTH_NO},
	    {"plaintext_auth = loopback",
	     offsetof(struct config, plaintext_auth), PLAINTEXT_AUTH_LOOPBACK},
	    {"plaintext_auth = yes", offsetof(struct config, plaintext_auth),
	     PLAINTEXT_AUTH_YES},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct loaded l;

		snprintf(text, sizeof(text), "%s%s\n", minimal, cases[i].line);
		load(&l, text);
		assert_int_equal(l.rc, 0);
		assert_int_equal(
		    *(enum plaintext_auth *)((char *)l.cfg + cases[i].offset),
		    cases[i].value);
		loaded_free(&l);
	}
}

static void test_comments_blank_lines_and_whitespace(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "# comment\n"
		 "\n"
		 "   \t\n"
		 "   # indented comment\n"
		 "\tdomains\t=\texample.org   \n"
		 "data_dir = /srv/a#b # the '#' inside stays, this goes\n"
		 "listen.pop3=127.0.0.1:110\r\n"
		 "hostname = mx.example.org\t# tab before the comment\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.errors_len, 0);
	assert_string_equal(l.cfg->domains[0], "example.org");
	assert_string_equal(l.cfg->data_dir, "/srv/a#b");
	assert_string_equal(l.cfg->listen[0].port, "110");
	assert_string_equal(l.cfg->hostname, "mx.example.org");
	loaded_free(&l);
}

/* The minimal config plus LINE (line 4) is refused with exactly one
 * error, at line 4, that contains NEEDLE. */
static void assert_line_refused(const char *line, const char *needle)
{
	char text[512];
	struct loaded l;

	snprintf(text, sizeof(text), "%s# line 3\n%s\n", minimal, line);
	load(&l, text);
	assert_int_equal(l.rc, -1);
	assert_null(l.cfg);
	assert_error_at(&l, 4, needle);
	assert_int_equal(count_lines(l.errors), 1);
	loaded_free(&l);
}

/* Every default of a file that sets nothing but domains and a listener,
 * field by field: the values config_set_defaults() assigned one by one
 * before the table held them as text. */
static void test_every_default_value(void **state)
{
	struct loaded l;
	const struct config *cfg;

	(void)state;
	load(&l, minimal);
	assert_int_equal(l.rc, 0);
	cfg = l.cfg;
	assert_int_equal(cfg->workers, 0);
	assert_int_equal(cfg->timeout_preauth, TIMEOUT_PREAUTH_DEFAULT);
	assert_int_equal(cfg->timeout_idle, POP3_TIMEOUT_AUTHENTICATED_MIN);
	assert_int_equal(cfg->timeout_smtp, SMTP_TIMEOUT);
	assert_int_equal(cfg->max_message_size, 50u * 1024 * 1024);
	assert_int_equal(cfg->max_recipients, SMTP_MAX_RECIPIENTS_DEFAULT);
	assert_false(cfg->smtp_auth);
	assert_true(cfg->sender_login_match);
	assert_false(cfg->smtp_normalize_bare_lf);
	assert_int_equal(cfg->smtp_max_line_length, SMTP_MAX_LINE_DEFAULT);
	assert_int_equal(cfg->max_received_headers, SMTP_MAX_RECEIVED_DEFAULT);
	assert_int_equal(cfg->retention, CONFIG_NEVER);
	assert_int_equal(cfg->retention_unread, CONFIG_NEVER);
	assert_int_equal(cfg->domain_retention_count, 0);
	assert_int_equal(cfg->login_delay, 0);
	assert_int_equal(cfg->expire_interval, 3600);
	assert_null(cfg->relay_host);
	assert_null(cfg->relay_auth);
	assert_false(cfg->relay_auth_insecure);
	assert_non_null(cfg->dns_servers);
	assert_null(cfg->dns_servers[0]);
	assert_int_equal(cfg->dns_server_count, 0);
	assert_int_equal(cfg->tls_policy, TLS_POLICY_MAY);
	assert_null(cfg->tls_ca_file);
	assert_int_equal(cfg->queue_lifetime, 5 * 86400);
	assert_int_equal(cfg->delay_warning_time, 4 * 3600);
	assert_int_equal(cfg->queue_retry_min, 300);
	assert_int_equal(cfg->queue_retry_max, 3600);
	assert_int_equal(cfg->max_connections_per_destination, 20);
	assert_int_equal(cfg->mx_port, 25);
	assert_null(cfg->dkim_selector);
	assert_int_equal(cfg->dkim_key_count, 0);
	for (int i = 0; i < LISTEN_PROTO_COUNT; i++)
		assert_int_equal(config_plaintext_auth(cfg, i),
				 PLAINTEXT_AUTH_LOOPBACK);
	/* Addressing, SRS, userdb and PROXY protocol keys. */
	assert_null(cfg->aliases_file);
	assert_null(cfg->postmaster_address);
	assert_null(cfg->abuse_address);
	assert_int_equal(cfg->recipient_delimiter, '+');
	assert_int_equal(cfg->alias_max_expansions,
			 ALIAS_MAX_EXPANSIONS_DEFAULT);
	assert_null(cfg->srs_domain);
	assert_non_null(cfg->srs_secret_file);
	assert_int_equal(cfg->userdb, USERDB_FILE);
	assert_null(cfg->pgsql_conninfo);
	assert_int_equal(cfg->pgsql_pool_size, 2);
	assert_int_equal(cfg->pgsql_query_timeout_ms, 5000);
	assert_non_null(strstr(cfg->pgsql_user_query, "$1"));
	assert_non_null(cfg->pgsql_alias_query);
	assert_non_null(cfg->pgsql_iterate_query);
	assert_int_equal(cfg->userdb_cache_ttl, 60);
	assert_int_equal(cfg->userdb_negative_cache_ttl, 10);
	for (int i = 0; i < LISTEN_PROTO_COUNT; i++)
		assert_false(cfg->proxy_protocol[i]);
	assert_int_equal(cfg->proxy_trusted_count, 0);
	assert_int_equal(cfg->proxy_protocol_timeout,
			 CONFIG_DEFAULT_PROXY_TIMEOUT);
	loaded_free(&l);
}

/* workers = auto is one per core, stored as 0; 0 itself still works. */
static void test_workers_auto(void **state)
{
	static const struct {
		const char *line;
		unsigned workers;
	} cases[] = {
	    {"workers = auto", 0},
	    {"workers = 0", 0},
	    {"workers = 3", 3},
	    {"workers = 1024", 1024},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct loaded l;

		snprintf(text, sizeof(text), "%s%s\n", minimal, cases[i].line);
		load(&l, text);
		assert_int_equal(l.rc, 0);
		assert_int_equal(l.errors_len, 0);
		assert_int_equal(l.cfg->workers, cases[i].workers);
		loaded_free(&l);
	}
	assert_line_refused("workers = Auto", "not a number");
	assert_line_refused("workers = auto4", "not a number");
}

/* A renamed key: its old name still works, with exactly one warning that
 * names the new key; the new name works without one. */
static void test_old_key_names(void **state)
{
	static const struct {
		const char *old_line, *new_line, *warning;
		size_t offset;
		unsigned value;
	} cases[] = {
	    {"timeout_idle = 1h", "pop3_idle_timeout = 1h",
	     "warning: 'timeout_idle' is deprecated; it is now called "
	     "'pop3_idle_timeout'",
	     offsetof(struct config, timeout_idle), 3600},
	    {"smtp_auth = yes", "smtp_port25_auth = yes",
	     "warning: 'smtp_auth' is deprecated; it is now called "
	     "'smtp_port25_auth'",
	     offsetof(struct config, smtp_auth), 1},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct loaded l;
		unsigned got;

		snprintf(text, sizeof(text), "%s# 3\n%s\n", minimal,
			 cases[i].old_line);
		load(&l, text);
		assert_int_equal(l.rc, 0);
		assert_error_at(&l, 4, cases[i].warning);
		assert_int_equal(count_lines(l.errors), 1);
		got = cases[i].offset == offsetof(struct config, smtp_auth)
			  ? (unsigned)l.cfg->smtp_auth
			  : l.cfg->timeout_idle;
		assert_int_equal(got, cases[i].value);
		loaded_free(&l);

		snprintf(text, sizeof(text), "%s%s\n", minimal,
			 cases[i].new_line);
		load(&l, text);
		assert_int_equal(l.rc, 0);
		assert_int_equal(l.errors_len, 0);
		got = cases[i].offset == offsetof(struct config, smtp_auth)
			  ? (unsigned)l.cfg->smtp_auth
			  : l.cfg->timeout_idle;
		assert_int_equal(got, cases[i].value);
		loaded_free(&l);
	}
}

/* Old and new name in one file: the same key set twice, an error (as any
 * duplicate is), whichever comes first. A bad value under the old name is
 * an error that names the new key, after the warning. */
static void test_old_and_new_key_name_together(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = example.org\n"
		 "listen.smtp = 127.0.0.1:25\n"
		 "smtp_port25_auth = yes\n"
		 "smtp_auth = no\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 4, "warning: 'smtp_auth' is deprecated");
	assert_error_at(
	    &l, 4, "duplicate key 'smtp_port25_auth' (first set on line 3)");
	loaded_free(&l);

	load(&l, "domains = example.org\n"
		 "listen.pop3 = 127.0.0.1:110\n"
		 "timeout_idle = 1h\n"
		 "pop3_idle_timeout = 2h\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 4,
			"duplicate key 'pop3_idle_timeout' (first set on line "
			"3)");
	loaded_free(&l);

	load(&l, "domains = example.org\n"
		 "listen.pop3 = 127.0.0.1:110\n"
		 "timeout_idle = 9m\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 3, "warning: 'timeout_idle' is deprecated");
	assert_error_at(&l, 3,
			"pop3_idle_timeout: '9m' is too small: RFC 1939");
	assert_int_equal(count_lines(l.errors), 2);
	loaded_free(&l);
}

static void test_error_kinds_with_line_numbers(void **state)
{
	static const struct {
		const char *line;
		const char *needle;
	} cases[] = {
	    {"no_such_key = 1", "unknown key 'no_such_key'"},
	    {"hostname", "missing '='"},
	    {"hostname =", "hostname: empty value"},
	    {"hostname = # only a comment", "hostname: empty value"},
	    {"= value", "missing key"},
	    {"hostname = bad_name", "invalid host name"},
	    {"hostname = -a.example", "invalid host name"},
	    {"auth_default_domain = a..b", "invalid domain"},
	    {"auth_default_domain = a b", "invalid domain"},
	    {"user = a/b", "invalid account name"},
	    {"user = root", "must not be root"},
	    {"apop = maybe", "not yes or no"},
	    {"apop = YES", "not yes or no"},
	    {"plaintext_auth = always", "not one of no, loopback, yes"},
	    {"log_level = trace", "not info or debug"},
	    {"workers = -1", "not a number"},
	    {"workers = +1", "not a number"},
	    {"workers = 4x", "not a number"},
	    {"workers = 99999999999999999999999", "not a number"},
	    {"workers = 1025", "out of range"},
	    {"max_connections = 0", "out of range"},
	    {"max_connections_per_peer = 0", "out of range"},
	    {"timeout_preauth = soon", "not a duration"},
	    {"timeout_preauth = 0", "too small"},
	    {"timeout_preauth = 1500ms", "whole number of seconds"},
	    {"pop3_idle_timeout = 9m", "RFC 1939"},
	    {"pop3_idle_timeout = 599", "RFC 1939"},
	    {"pop3_idle_timeout = 8d", "too large"},
	    {"auth_failure_delay = 61s", "too large"},
	    {"domains = example.org", "duplicate key 'domains'"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_line_refused(cases[i].line, cases[i].needle);
}

static void test_duplicate_names_first_line(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = a.example\n"
		 "workers = 1\n"
		 "listen.pop3 = *:110\n"
		 "workers = 2\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 4, "duplicate key 'workers' (first set on line 2)");
	loaded_free(&l);
}

static void test_several_errors_all_reported(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = example.org\n"
		 "bogus = 1\n"
		 "listen.pop3 = 127.0.0.1:110\n"
		 "workers = many\n"
		 "no equals sign here\n"
		 "apop =\n"
		 "hostname = ok.example\n"
		 "hostname = again.example\n");
	assert_int_equal(l.rc, -1);
	assert_null(l.cfg);
	assert_error_at(&l, 2, "unknown key");
	assert_error_at(&l, 4, "workers");
	assert_error_at(&l, 5, "missing '='");
	assert_error_at(&l, 6, "empty value");
	assert_error_at(&l, 8, "duplicate key 'hostname'");
	assert_int_equal(count_lines(l.errors), 5);
	loaded_free(&l);
}

static void test_domains_required(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "listen.pop3 = 127.0.0.1:110\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 0, "domains is required");
	loaded_free(&l);
}

static void test_domains_lowercased_validated(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = A.Example  b-1.example\tc.EXAMPLE\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.cfg->domain_count, 3);
	assert_string_equal(l.cfg->domains[0], "a.example");
	assert_string_equal(l.cfg->domains[1], "b-1.example");
	assert_string_equal(l.cfg->domains[2], "c.example");
	assert_true(config_is_local_domain(l.cfg, "B-1.Example"));
	assert_false(config_is_local_domain(l.cfg, "b-1.example.org"));
	assert_false(config_is_local_domain(l.cfg, "example"));
	assert_false(config_is_local_domain(l.cfg, ""));
	loaded_free(&l);

	load(&l, "domains = good.example bad_domain.example -x.example a. "
		 "good.example\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 1, "'bad_domain.example'");
	assert_error_at(&l, 1, "'-x.example'");
	assert_error_at(&l, 1, "'a.'");
	assert_error_at(&l, 1, "listed twice");
	assert_int_equal(count_lines(l.errors), 4);
	loaded_free(&l);
}

/* A line over CONFIG_MAX_LINE is one error; its tail is not a line. */
static void test_long_line_is_one_error(void **state)
{
	size_t n = CONFIG_MAX_LINE + 100;
	char *text = malloc(n + 128);
	struct loaded l;
	size_t len;

	(void)state;
	assert_non_null(text);
	len = (size_t)snprintf(text, 64, "domains = example.org\n");
	memcpy(text + len, "hostname = ", 11);
	len += 11;
	/* The tail would be a valid "workers = 1" line if it were split. */
	memset(text + len, 'a', n - 11 - 11);
	len += n - 11 - 11;
	memcpy(text + len, "workers = 1\n", 12);
	len += 12;
	len += (size_t)snprintf(text + len, 64, "workers = x\n");
	load_bytes(&l, text, len);
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 2, "line too long");
	assert_error_at(&l, 3, "not a number");
	assert_int_equal(count_lines(l.errors), 2);
	loaded_free(&l);

	/* Exactly CONFIG_MAX_LINE bytes is fine. */
	memset(text, ' ', CONFIG_MAX_LINE);
	memcpy(text, "domains = example.org", 21);
	text[CONFIG_MAX_LINE] = '\n';
	load_bytes(&l, text, CONFIG_MAX_LINE + 1);
	assert_int_equal(l.rc, 0);
	loaded_free(&l);
	free(text);
}

static void test_nul_byte_is_an_error(void **state)
{
	static const char text[] = "domains = example.org\nhostname = a\0b\n";
	struct loaded l;

	(void)state;
	load_bytes(&l, text, sizeof(text) - 1);
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 2, "NUL");
	loaded_free(&l);
}

static void test_missing_file(void **state)
{
	struct config *cfg = (struct config *)1;
	char *out = NULL;
	size_t len = 0;
	FILE *errors = open_memstream(&out, &len);

	(void)state;
	assert_int_equal(config_load("/nonexistent/postd.conf", errors, &cfg),
			 -1);
	fclose(errors);
	assert_null(cfg);
	assert_non_null(strstr(out, "/nonexistent/postd.conf: cannot open: "
				    "No such file or directory"));
	free(out);
}

static void test_listen_forms(void **state)
{
	struct loaded l;
	const struct listen_addr *a;

	(void)state;
	load(&l, "domains = example.org\n"
		 "listen.pop3 = 127.0.0.1:2110 [::1]:2110 *:0110\n"
		 "listen.pop3s = localhost:995 [2001:db8::1]:995\n"
		 "listen.pop3 = mail.example.org:110 [::]:110\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.errors_len, 0);
	assert_int_equal(l.cfg->listen_count, 7);
	a = l.cfg->listen;
	assert_string_equal(a[0].host, "127.0.0.1");
	assert_string_equal(a[0].port, "2110");
	assert_string_equal(a[1].host, "::1");
	assert_string_equal(a[1].port, "2110");
	assert_string_equal(a[2].host, "*");
	assert_string_equal(a[2].port, "110");
	assert_int_equal(a[2].line, 2);
	assert_int_equal(a[3].proto, LISTEN_POP3S);
	assert_string_equal(a[3].host, "localhost");
	assert_string_equal(a[4].host, "2001:db8::1");
	assert_int_equal(a[5].proto, LISTEN_POP3);
	assert_string_equal(a[5].host, "mail.example.org");
	assert_int_equal(a[5].line, 4);
	assert_string_equal(a[6].host, "::");
	loaded_free(&l);
}

static void test_listen_errors(void **state)
{
	static const struct {
		const char *value;
		const char *needle;
	} cases[] = {
	    {"127.0.0.1", "missing ':PORT'"},
	    {"127.0.0.1:", "port must be"},
	    {"127.0.0.1:0", "port must be"},
	    {"127.0.0.1:65536", "port must be"},
	    {"127.0.0.1:-1", "port must be"},
	    {"127.0.0.1:+1", "port must be"},
	    {"127.0.0.1:11x", "port must be"},
	    {"::1:110", "brackets"},
	    {"[::1]110", "expected [IPV6]:PORT"},
	    {"[::1:110", "expected [IPV6]:PORT"},
	    {"[1.2.3.4]:110", "invalid IPv6"},
	    {"[zz::1]:110", "invalid IPv6"},
	    {"bad_host:110", "invalid address or host name"},
	    {":110", "invalid address or host name"},
	    {"127.0.0.1:110 127.0.0.1:110", "already used by listen.pop3 "
					    "on line 4"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512];
		struct loaded l;

		snprintf(text, sizeof(text),
			 "domains = example.org\n\n\nlisten.pop3 = %s\n",
			 cases[i].value);
		load(&l, text);
		assert_int_equal(l.rc, -1);
		assert_error_at(&l, 4, cases[i].needle);
		assert_int_equal(count_lines(l.errors), 1);
		loaded_free(&l);
	}
}

static void test_listen_at_most_max_per_key(void **state)
{
	char text[4096];
	size_t len;
	struct loaded l;

	(void)state;
	len = (size_t)snprintf(text, sizeof(text), "domains = example.org\n");
	/* Spread over two lines: the cap counts the key, not the line. */
	for (int i = 0; i < CONFIG_MAX_LISTEN_ADDRESSES; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"%slisten.pop3 = 127.0.0.1:%d\n", "",
					1000 + i);
	load(&l, text);
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.cfg->listen_count, CONFIG_MAX_LISTEN_ADDRESSES);
	loaded_free(&l);

	snprintf(text + len, sizeof(text) - len,
		 "listen.pop3s = 127.0.0.1:2000\nlisten.pop3 = *:3000\n");
	load(&l, text);
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, CONFIG_MAX_LISTEN_ADDRESSES + 3,
			"more than 16 addresses");
	assert_int_equal(count_lines(l.errors), 1);
	loaded_free(&l);
}

static void test_durations(void **state)
{
	static const struct {
		const char *value;
		int rc;
		unsigned ms;
	} cases[] = {
	    {"0", 0, 0},
	    {"0ms", 0, 0},
	    {"1", 0, 1000},
	    {"500ms", 0, 500},
	    {"2s", 0, 2000},
	    {"1m", 0, 60000},
	    {"60000ms", 0, 60000},
	    {"2m", -1, 0},
	    {"1h", -1, 0},
	    {"1d", -1, 0},
	    {"", -1, 0},
	    {"ms", -1, 0},
	    {"-1", -1, 0},
	    {"+1", -1, 0},
	    {"1 s", -1, 0},
	    {"1S", -1, 0},
	    {"1sec", -1, 0},
	    {"1.5s", -1, 0},
	    {"18446744073709551615", -1, 0},
	    {"18446744073709551616", -1, 0},
	    {"18446744073709551615d", -1, 0},
	    {"213503982334601d", -1, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct loaded l;

		snprintf(text, sizeof(text), "%sauth_failure_delay = %s\n",
			 minimal, cases[i].value);
		load(&l, text);
		if (l.rc != cases[i].rc)
			fail_msg("'%s': rc %d: %s", cases[i].value, l.rc,
				 l.errors);
		if (cases[i].rc == 0)
			assert_int_equal(l.cfg->auth_failure_delay_ms,
					 cases[i].ms);
		else
			assert_error_at(&l, 3, "auth_failure_delay");
		loaded_free(&l);
	}
}

static void test_durations_in_seconds(void **state)
{
	static const struct {
		const char *line;
		unsigned preauth, idle;
	} cases[] = {
	    {"timeout_preauth = 90\npop3_idle_timeout = 600", 90, 600},
	    {"timeout_preauth = 2m\npop3_idle_timeout = 10m", 120, 600},
	    {"timeout_preauth = 1h\npop3_idle_timeout = 2h", 3600, 7200},
	    {"timeout_preauth = 1d\npop3_idle_timeout = 7d", 86400, 604800},
	    {"timeout_preauth = 3000ms\npop3_idle_timeout = 600000ms", 3, 600},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct loaded l;

		snprintf(text, sizeof(text), "%s%s\n", minimal, cases[i].line);
		load(&l, text);
		assert_int_equal(l.rc, 0);
		assert_int_equal(l.cfg->timeout_preauth, cases[i].preauth);
		assert_int_equal(l.cfg->timeout_idle, cases[i].idle);
		loaded_free(&l);
	}
}

/* Relative paths are taken from the config file's directory. */
static void test_relative_paths(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = example.org\n"
		 "data_dir = data\n"
		 "users_file = ./etc/users\n");
	assert_int_equal(l.rc, 0);
	assert_string_equal(l.cfg->data_dir, "/tmp/data");
	assert_string_equal(l.cfg->users_file, "/tmp/./etc/users");
	loaded_free(&l);
}

static void test_embedded_default(void **state)
{
	struct config *cfg = config_default("/base/dir");

	(void)state;
	assert_null(cfg->path);
	assert_string_equal(cfg->data_dir, "/base/dir/postd-data");
	assert_string_equal(cfg->users_file, "/base/dir/postd-data/users");
	assert_string_equal(cfg->tls_cert, "/base/dir/postd-data/tls/cert.pem");
	assert_string_equal(cfg->tls_key, "/base/dir/postd-data/tls/key.pem");
	assert_true(strcmp(cfg->user, "postd") == 0 ||
		    strcmp(cfg->user, "nobody") == 0);
	assert_non_null(cfg->hostname);
	assert_int_equal(cfg->domain_count, 1);
	/* dotted: git send-email refuses demo@localhost */
	assert_string_equal(cfg->domains[0], "postd.localhost");
	assert_null(cfg->domains[1]);
	assert_string_equal(cfg->auth_default_domain, "postd.localhost");
	/* POP3, POP3S, SMTP, submission, submissions, HTTP, IMAP, IMAPS */
	assert_int_equal(cfg->listen_count, 8);
	assert_int_equal(cfg->listen[6].proto, LISTEN_IMAP);
	assert_string_equal(cfg->listen[6].port, "2143");
	assert_int_equal(cfg->listen[7].proto, LISTEN_IMAPS);
	assert_string_equal(cfg->listen[7].port, "2993");
	assert_int_equal(cfg->listen[5].proto, LISTEN_HTTP);
	assert_string_equal(cfg->listen[5].port, "2080");
	assert_int_equal(cfg->listen[0].proto, LISTEN_POP3);
	assert_string_equal(cfg->listen[0].host, "127.0.0.1");
	assert_string_equal(cfg->listen[0].port, "2110");
	assert_int_equal(cfg->listen[1].proto, LISTEN_POP3S);
	assert_string_equal(cfg->listen[1].host, "127.0.0.1");
	assert_string_equal(cfg->listen[1].port, "2995");
	assert_int_equal(cfg->plaintext_auth, PLAINTEXT_AUTH_LOOPBACK);
	assert_false(cfg->apop);
	assert_int_equal(cfg->timeout_idle, 600);
	assert_int_equal(cfg->timeout_preauth, 60);
	assert_int_equal(cfg->auth_failure_delay_ms, 1000);
	assert_int_equal(cfg->max_connections, 10000);
	assert_int_equal(config_validate(cfg, NULL), 0);
	config_free(&cfg);
	assert_null(cfg);

	/* A trailing slash does not double. */
	cfg = config_default("/");
	assert_string_equal(cfg->data_dir, "/postd-data");
	config_free(&cfg);
	config_free(&cfg); /* NULL is fine */
}

static void test_validate(void **state)
{
	struct loaded l;
	char *out = NULL;
	size_t len = 0;
	FILE *errors;

	(void)state;
	load(&l, "domains = example.org\n"
		 "auth_default_domain = example.net\n"
		 "listen.pop3 = *:110\n"
		 "listen.pop3s = *:995\n"
		 "listen.imaps = *:993\n"
		 "tls_cert = /cert.pem\n");
	assert_int_equal(l.rc, 0);
	errors = open_memstream(&out, &len);
	assert_int_equal(config_validate(l.cfg, errors), 3);
	fclose(errors);
	free(l.errors);
	l.errors = out;
	assert_error_at(&l, 4, "listen.pop3s needs tls_cert and tls_key");
	assert_error_at(&l, 5, "listen.imaps needs tls_cert and tls_key");
	assert_error_at(&l, 0,
			"auth_default_domain 'example.net' is not one "
			"of domains");
	loaded_free(&l);

	load(&l, "domains = example.org\ntls_key = /k\n");
	assert_int_equal(l.rc, 0);
	errors = open_memstream(&out, &len);
	assert_int_equal(config_validate(l.cfg, errors), 2);
	fclose(errors);
	free(l.errors);
	l.errors = out;
	assert_error_at(&l, 0, "no listeners");
	assert_error_at(&l, 0, "tls_cert and tls_key must be set together");
	loaded_free(&l);
}

static void test_proto_names(void **state)
{
	static const char *const names[] = {"pop3",	  "pop3s",	 "smtp",
					    "submission", "submissions", "imap",
					    "imaps",	  "http"};
	(void)state;
	for (int i = 0; i < LISTEN_PROTO_COUNT; i++)
		assert_string_equal(config_proto_name(i), names[i]);
	assert_false(config_proto_implicit_tls(LISTEN_POP3));
	assert_true(config_proto_implicit_tls(LISTEN_POP3S));
	assert_false(config_proto_implicit_tls(LISTEN_SMTP));
	assert_false(config_proto_implicit_tls(LISTEN_SUBMISSION));
	assert_true(config_proto_implicit_tls(LISTEN_SUBMISSIONS));
	assert_false(config_proto_implicit_tls(LISTEN_IMAP));
	assert_true(config_proto_implicit_tls(LISTEN_IMAPS));
}

static void test_retention_keys(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = example.org example.net\n"
		 "retention = 30d\n"
		 "retention_unread = never\n"
		 "retention.example.net = 0\n"
		 "retention_unread.EXAMPLE.net = 12h\n"
		 "login_delay = 15m\n"
		 "expire_interval = 10s\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.cfg->retention, 30 * 86400);
	assert_int_equal(l.cfg->retention_unread, CONFIG_NEVER);
	assert_int_equal(l.cfg->login_delay, 900);
	assert_int_equal(l.cfg->expire_interval, 10);
	/* The domain's own value wins; an unset one falls back. */
	assert_int_equal(config_retention(l.cfg, "example.net", false), 0);
	assert_int_equal(config_retention(l.cfg, "Example.NET", true),
			 12 * 3600);
	assert_int_equal(config_retention(l.cfg, "example.org", false),
			 30 * 86400);
	assert_int_equal(config_retention(l.cfg, "example.org", true),
			 CONFIG_NEVER);
	assert_true(config_retention_varies(l.cfg));
	loaded_free(&l);

	load(&l, "domains = example.org\nretention = 1.5d\n"
		 "retention.other.org = 1d\nretention = 2d\n"
		 "retention.example.org = 1d\nretention.example.org = 2d\n"
		 "retention.bad_domain = 1d\nretention = 500ms\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 2, "retention: '1.5d' is not never or a whole");
	assert_error_at(&l, 4, "duplicate key 'retention'");
	assert_error_at(&l, 6, "retention.example.org: set twice");
	assert_error_at(&l, 7, "'bad_domain' is not a domain");
	loaded_free(&l);
}

static void test_autoexpunge_keys(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = example.org\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.cfg->autoexpunge_count, 0); /* default: none */
	loaded_free(&l);
	load(&l, "domains = example.org\n"
		 "autoexpunge.Trash = 30d\n"
		 "autoexpunge.Archive/Entw\xc3\xbcrfe alt = never\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.cfg->autoexpunge_count, 2);
	assert_string_equal(l.cfg->autoexpunge[0].folder, "Trash");
	assert_int_equal(l.cfg->autoexpunge[0].after, 30 * 86400);
	assert_string_equal(l.cfg->autoexpunge[1].folder,
			    "Archive/Entw\xc3\xbcrfe alt");
	assert_int_equal(l.cfg->autoexpunge[1].after, CONFIG_NEVER);
	loaded_free(&l);
	load(&l, "domains = example.org\n"
		 "autoexpunge.Junk = 30d\nautoexpunge.Junk = 7d\n"
		 "autoexpunge.inbox = 1d\nautoexpunge.../x = 1d\n"
		 "autoexpunge.Trash = 1.5d\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 3, "autoexpunge.Junk: set twice");
	assert_error_at(&l, 4, "INBOX is governed by retention");
	assert_error_at(&l, 5, "is not a folder name");
	assert_error_at(&l, 6, "'1.5d' is not never or a whole");
	loaded_free(&l);
}

static void test_retention_defaults(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = example.org\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.cfg->retention, CONFIG_NEVER);
	assert_int_equal(l.cfg->retention_unread, CONFIG_NEVER);
	assert_int_equal(l.cfg->login_delay, 0);
	assert_int_equal(l.cfg->expire_interval, 3600);
	assert_false(config_retention_varies(l.cfg));
	assert_int_equal(l.cfg->queue_lifetime, 5 * 86400);
	assert_int_equal(l.cfg->delay_warning_time, 4 * 3600);
	assert_int_equal(l.cfg->queue_retry_min, 300);
	assert_int_equal(l.cfg->queue_retry_max, 3600);
	assert_int_equal(l.cfg->mx_port, 25);
	assert_int_equal(l.cfg->timeout_smtp, 300);
	assert_int_equal(l.cfg->tls_policy, TLS_POLICY_MAY);
	assert_null(l.cfg->relay_host);
	assert_int_equal(l.cfg->dns_server_count, 0);
	assert_null(l.cfg->dns_servers[0]);
	loaded_free(&l);
}

static void test_queue_keys(void **state)
{
	struct loaded l;
	const struct config_route *r;

	(void)state;
	load(&l, "domains = example.org\n"
		 "relay_host = [2001:db8::1]:587\n"
		 "relay_auth = relay.secret\n"
		 "dns_servers = 127.0.0.1:5353 ::1 [::1]:54 10.0.0.1\n"
		 "transport.Example.NET = mx.example.net:2525\n"
		 "transport.other.org = 192.0.2.7\n"
		 "tls_policy = verify\n"
		 "tls_policy.legacy.example = may\n"
		 "queue_lifetime = 2d\n"
		 "delay_warning_time = 0\n"
		 "queue_retry_min = 1s\n"
		 "queue_retry_max = 2m\n"
		 "max_connections_per_destination = 3\n"
		 "mx_port = 2526\n"
		 "timeout_smtp = 90s\n"
		 "dkim_selector = s2026\n"
		 "dkim_key = /etc/postd/dkim.pem\n"
		 "dkim_key.example.org = org.pem\n");
	assert_int_equal(l.rc, 0);
	assert_string_equal(l.cfg->relay_host->host, "2001:db8::1");
	assert_string_equal(l.cfg->relay_host->port, "587");
	assert_true(strstr(l.cfg->relay_auth, "/relay.secret") != NULL);
	assert_int_equal(l.cfg->dns_server_count, 4);
	assert_string_equal(l.cfg->dns_servers[0], "127.0.0.1:5353");
	assert_string_equal(l.cfg->dns_servers[1], "[::1]:53");
	assert_string_equal(l.cfg->dns_servers[2], "[::1]:54");
	assert_string_equal(l.cfg->dns_servers[3], "10.0.0.1:53");
	assert_null(l.cfg->dns_servers[4]);
	r = config_transport(l.cfg, "example.net");
	assert_non_null(r);
	assert_string_equal(r->host, "mx.example.net");
	assert_string_equal(r->port, "2525");
	r = config_transport(l.cfg, "OTHER.org");
	assert_non_null(r);
	assert_string_equal(r->port, "25");
	assert_null(config_transport(l.cfg, "example.org"));
	assert_int_equal(config_tls_policy(l.cfg, "x.example"),
			 TLS_POLICY_VERIFY);
	assert_int_equal(config_tls_policy(l.cfg, "legacy.example"),
			 TLS_POLICY_MAY);
	assert_string_equal(config_tls_policy_name(TLS_POLICY_VERIFY),
			    "verify");
	assert_int_equal(l.cfg->queue_lifetime, 2 * 86400);
	assert_int_equal(l.cfg->delay_warning_time, 0);
	assert_int_equal(l.cfg->queue_retry_min, 1);
	assert_int_equal(l.cfg->queue_retry_max, 120);
	assert_int_equal(l.cfg->max_connections_per_destination, 3);
	assert_int_equal(l.cfg->mx_port, 2526);
	assert_int_equal(l.cfg->timeout_smtp, 90);
	assert_string_equal(l.cfg->dkim_selector, "s2026");
	assert_string_equal(config_dkim_key(l.cfg, "other.org"),
			    "/etc/postd/dkim.pem");
	assert_true(strstr(config_dkim_key(l.cfg, "example.org"), "/org.pem") !=
		    NULL);
	loaded_free(&l);
}

static void test_queue_key_errors(void **state)
{
	struct loaded l;
	FILE *errors;
	char *out = NULL;
	size_t len = 0;

	(void)state;
	load(&l, "domains = example.org\n"
		 "dns_servers = ns.example.org\n"
		 "transport.example.net = a:b:c\n"
		 "transport.example.net = [::1\n"
		 "tls_policy = strict\n"
		 "queue_lifetime = 31d\n"
		 "dkim_selector = bad selector\n"
		 "relay_host = host:0\n"
		 "transport.x.org = h:1\ntransport.X.ORG = h:2\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 2, "'ns.example.org' is not a numeric address");
	assert_error_at(&l, 3, "write IPv6 addresses in brackets");
	assert_error_at(&l, 4, "expected [IPV6]:PORT");
	assert_error_at(&l, 5, "'strict' is not one of may, verify");
	assert_error_at(&l, 6, "queue_lifetime: '31d' is too large");
	assert_error_at(&l, 7, "is not a selector");
	assert_error_at(&l, 8, "port must be a number from 1 to 65535");
	assert_error_at(&l, 10, "transport.x.org: set twice");
	loaded_free(&l);

	load(&l, "domains = example.org\nlisten.pop3 = 127.0.0.1:110\n"
		 "relay_auth = /x\ndkim_key = /k\n"
		 "queue_retry_min = 10m\nqueue_retry_max = 1m\n"
		 "retention.example.com = 1d\n");
	assert_int_equal(l.rc, 0);
	errors = open_memstream(&out, &len);
	assert_int_equal(config_validate(l.cfg, errors), 4);
	fclose(errors);
	free(l.errors);
	l.errors = out;
	assert_error_at(&l, 0, "relay_auth needs relay_host");
	assert_error_at(&l, 0, "dkim_key needs dkim_selector");
	assert_error_at(&l, 0, "queue_retry_max (60s) is less than");
	assert_error_at(&l, 0, "retention for 'example.com': not one of");
	loaded_free(&l);
}

/* Outbound TLS: "dane" is refused (not implemented, and it must not run
 * as "may"); relay_auth_insecure only for a smarthost on this machine. */
static void test_outbound_tls_keys(void **state)
{
	static const char *const loopback[] = {"localhost", "127.0.0.1",
					       "127.1.2.3", "[::1]"};
	static const char *const remote_hosts[] = {"smarthost.example",
						   "10.0.0.1", "[2001:db8::1]"};
	char text[256];
	struct loaded l;

	(void)state;
	load(&l, "domains = example.org\ntls_policy = dane\n"
		 "tls_policy.x.org = dane\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 2,
			"tls_policy: 'dane' (RFC 7672) is not "
			"implemented; use may or verify");
	assert_error_at(&l, 3,
			"tls_policy.x.org: 'dane' (RFC 7672) is not "
			"implemented");
	loaded_free(&l);

	for (size_t i = 0; i < sizeof(loopback) / sizeof(*loopback); i++) {
		snprintf(text, sizeof(text),
			 "domains = example.org\nlisten.pop3 = 127.0.0.1:110\n"
			 "relay_host = %s:2525\nrelay_auth = /x\n"
			 "relay_auth_insecure = yes\n",
			 loopback[i]);
		load(&l, text);
		assert_int_equal(l.rc, 0);
		assert_true(l.cfg->relay_auth_insecure);
		assert_int_equal(config_validate(l.cfg, NULL), 0);
		loaded_free(&l);
	}
	for (size_t i = 0; i < sizeof(remote_hosts) / sizeof(*remote_hosts);
	     i++) {
		FILE *errors;
		char *out = NULL;
		size_t len = 0;

		snprintf(text, sizeof(text),
			 "domains = example.org\nlisten.pop3 = 127.0.0.1:110\n"
			 "relay_host = %s:2525\nrelay_auth = /x\n"
			 "relay_auth_insecure = yes\n",
			 remote_hosts[i]);
		load(&l, text);
		assert_int_equal(l.rc, 0);
		errors = open_memstream(&out, &len);
		assert_int_equal(config_validate(l.cfg, errors), 1);
		fclose(errors);
		free(l.errors);
		l.errors = out;
		assert_error_at(&l, 0,
				"relay_auth_insecure needs relay_auth "
				"and a relay_host on this machine");
		loaded_free(&l);
	}
}

/* INV-S2: text from the file is escaped before it reaches a message. */
static void test_messages_escape_control_bytes(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = example.org\nke\x1b[2Jy = 1\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 2, "unknown key 'ke\\x1b[2Jy'");
	assert_null(strchr(l.errors, 0x1b));
	loaded_free(&l);
}

static void test_errors_stream_may_be_null(void **state)
{
	char path[] = "/tmp/test_config.XXXXXX";
	struct config *cfg;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "bogus\n", 6), 6);
	close(fd);
	assert_int_equal(config_load(path, NULL, &cfg), -1);
	assert_null(cfg);
	unlink(path);
}

/* plaintext_auth.NAME wins over plaintext_auth for its listener, wherever
 * either line stands; the others keep the global value. */
static void test_plaintext_auth_per_listener(void **state)
{
	struct loaded l;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	load(&l, "domains = example.org\n"
		 "listen.pop3 = 127.0.0.1:110\n"
		 "listen.pop3s = 127.0.0.1:995\n"
		 "listen.submission = 127.0.0.1:587\n"
		 "listen.smtp = 127.0.0.1:25\n"
		 "plaintext_auth.submission = no\n"
		 "plaintext_auth = yes\n"
		 "plaintext_auth.pop3 = loopback\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.errors_len, 0);
	assert_int_equal(l.cfg->plaintext_auth, PLAINTEXT_AUTH_YES);
	assert_int_equal(config_plaintext_auth(l.cfg, LISTEN_SUBMISSION),
			 PLAINTEXT_AUTH_NO);
	assert_int_equal(config_plaintext_auth(l.cfg, LISTEN_POP3),
			 PLAINTEXT_AUTH_LOOPBACK);
	assert_int_equal(config_plaintext_auth(l.cfg, LISTEN_SMTP),
			 PLAINTEXT_AUTH_YES);
	assert_int_equal(config_plaintext_auth(l.cfg, LISTEN_IMAP),
			 PLAINTEXT_AUTH_YES);
	/* postd -t prints what wins, for the listeners that exist */
	f = open_memstream(&out, &len);
	assert_non_null(f);
	config_print_plaintext_auth(l.cfg, f);
	fclose(f);
	assert_string_equal(out, "plaintext_auth: pop3=loopback smtp=yes "
				 "submission=no\n");
	free(out);
	loaded_free(&l);

	load(&l, "domains = example.org\nlisten.pop3s = 127.0.0.1:995\n");
	assert_int_equal(l.rc, 0);
	assert_int_equal(config_plaintext_auth(l.cfg, LISTEN_SUBMISSION),
			 PLAINTEXT_AUTH_LOOPBACK);
	out = NULL;
	f = open_memstream(&out, &len);
	assert_non_null(f);
	config_print_plaintext_auth(l.cfg, f);
	fclose(f);
	assert_string_equal(out, "plaintext_auth: no listener takes a password "
				 "before TLS\n");
	free(out);
	loaded_free(&l);
}

static void test_plaintext_auth_per_listener_errors(void **state)
{
	static const struct {
		const char *line;
		const char *needle;
	} cases[] = {
	    {"plaintext_auth.pop3s = no",
	     "plaintext_auth.pop3s: pop3s is TLS from the first byte"},
	    {"plaintext_auth.submissions = no",
	     "submissions is TLS from the first byte"},
	    {"plaintext_auth.imaps = yes", "imaps is TLS from the first byte"},
	    {"plaintext_auth.http = no", "http takes no logins"},
	    {"plaintext_auth.pop = no", "'pop' is not a listener"},
	    {"plaintext_auth.POP3 = no", "'POP3' is not a listener"},
	    {"plaintext_auth.example.org = no",
	     "'example.org' is not a listener"},
	    {"plaintext_auth.po\x01p3 = no", "'po\\x01p3' is not a listener"},
	    {"plaintext_auth. = no", "unknown key 'plaintext_auth.'"},
	    {"plaintext_auth.pop3 = always",
	     "plaintext_auth.pop3: 'always' is not one of no, loopback, yes"},
	    {"plaintext_auth.pop3 =", "empty value"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_line_refused(cases[i].line, cases[i].needle);
}

static void test_plaintext_auth_per_listener_twice(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = example.org\n"
		 "plaintext_auth.pop3 = no\n"
		 "plaintext_auth.smtp = no\n"
		 "plaintext_auth.pop3 = yes\n");
	assert_int_equal(l.rc, -1);
	assert_error_at(&l, 4, "plaintext_auth.pop3: set twice");
	assert_int_equal(count_lines(l.errors), 1);
	loaded_free(&l);
}

static bool proxy_trusted_addr(const struct config *cfg, const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	return config_proxy_trusted(cfg, (struct sockaddr *)&ss);
}

/* proxy_trusted: networks with prefixes that end inside a byte, bare
 * addresses, IPv6, and IPv4-mapped peers matched as IPv4. */
static void test_proxy_protocol_keys(void **state)
{
	struct loaded l;

	(void)state;
	load(&l, "domains = example.org\n"
		 "proxy_protocol.pop3 = yes\n"
		 "proxy_protocol.submissions = no\n"
		 "proxy_trusted = 10.0.0.0/12, 192.0.2.7 2001:db8::/33\n");
	assert_int_equal(l.rc, 0);
	assert_true(l.cfg->proxy_protocol[LISTEN_POP3]);
	assert_false(l.cfg->proxy_protocol[LISTEN_SUBMISSIONS]);
	assert_false(l.cfg->proxy_protocol[LISTEN_SMTP]);
	assert_int_equal(l.cfg->proxy_protocol_timeout, 5);
	assert_true(proxy_trusted_addr(l.cfg, "10.15.255.255"));
	assert_false(proxy_trusted_addr(l.cfg, "10.16.0.0"));
	assert_true(proxy_trusted_addr(l.cfg, "192.0.2.7"));
	assert_false(proxy_trusted_addr(l.cfg, "192.0.2.8"));
	assert_true(proxy_trusted_addr(l.cfg, "::ffff:192.0.2.7"));
	assert_true(proxy_trusted_addr(l.cfg, "2001:db8:7fff::1"));
	assert_false(proxy_trusted_addr(l.cfg, "2001:db8:8000::1"));
	assert_false(proxy_trusted_addr(l.cfg, "::ffff:10.16.0.1"));
	loaded_free(&l);
	/* Empty: nothing is trusted. */
	load(&l, minimal);
	assert_false(proxy_trusted_addr(l.cfg, "127.0.0.1"));
	loaded_free(&l);
}

static void test_proxy_protocol_errors(void **state)
{
	(void)state;
	assert_line_refused("proxy_trusted = 10.0.0.0/33",
			    "'10.0.0.0/33' is not a network");
	assert_line_refused("proxy_trusted = 2001:db8::/129",
			    "is not a network");
	assert_line_refused("proxy_trusted = 10.0.0.0/", "is not a network");
	assert_line_refused("proxy_trusted = example.org", "is not a network");
	assert_line_refused("proxy_protocol.imap = yes",
			    "not supported on imap");
	assert_line_refused("proxy_protocol.pop4 = yes", "is not a listener");
	assert_line_refused("proxy_protocol_timeout = 61s", "too large");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal_file_gets_defaults),
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_enumerations),
	    cmocka_unit_test(test_comments_blank_lines_and_whitespace),
	    cmocka_unit_test(test_error_kinds_with_line_numbers),
	    cmocka_unit_test(test_duplicate_names_first_line),
	    cmocka_unit_test(test_several_errors_all_reported),
	    cmocka_unit_test(test_domains_required),
	    cmocka_unit_test(test_domains_lowercased_validated),
	    cmocka_unit_test(test_long_line_is_one_error),
	    cmocka_unit_test(test_nul_byte_is_an_error),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_listen_forms),
	    cmocka_unit_test(test_listen_errors),
	    cmocka_unit_test(test_listen_at_most_max_per_key),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_durations_in_seconds),
	    cmocka_unit_test(test_relative_paths),
	    cmocka_unit_test(test_embedded_default),
	    cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_proto_names),
	    cmocka_unit_test(test_messages_escape_control_bytes),
	    cmocka_unit_test(test_errors_stream_may_be_null),
	    cmocka_unit_test(test_retention_keys),
	    cmocka_unit_test(test_retention_defaults),
	    cmocka_unit_test(test_autoexpunge_keys),
	    cmocka_unit_test(test_queue_keys),
	    cmocka_unit_test(test_queue_key_errors),
	    cmocka_unit_test(test_outbound_tls_keys),
	    cmocka_unit_test(test_plaintext_auth_per_listener),
	    cmocka_unit_test(test_plaintext_auth_per_listener_errors),
	    cmocka_unit_test(test_plaintext_auth_per_listener_twice),
	    cmocka_unit_test(test_proxy_protocol_keys),
	    cmocka_unit_test(test_proxy_protocol_errors),
	    cmocka_unit_test(test_every_default_value),
	    cmocka_unit_test(test_workers_auto),
	    cmocka_unit_test(test_old_key_names),
	    cmocka_unit_test(test_old_and_new_key_name_together),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
