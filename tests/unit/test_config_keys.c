/*
 * The key table against postd.conf(5): every key in config_keys[] has an
 * entry in the page's KEYS section, every entry there is a key, and a
 * table default is the default the page states. Also the table's own
 * rules (a summary per row, old names that lead to a current key).
 * argv[1]: the path of doc/man/postd.conf.5.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config_internal.h"

#define MAN_MAX_ENTRIES 256
#define MAN_LINE_MAX 1024

/* One .TP entry of the KEYS section: the key names its first line sets in
 * bold, and that line as plain text. */
struct man_entry {
	char names[8][96];
	size_t name_count;
	char text[MAN_LINE_MAX];
};

static const char *man_path;
static struct man_entry man_entries[MAN_MAX_ENTRIES];
static size_t man_entry_count;

static size_t roff_tokens(const char *s, char tokens[][MAN_LINE_MAX],
			  size_t max);
static void man_add_entry(const char *line);
static void man_load(const char *path);
static const struct man_entry *man_find(const char *name);
static bool has_word(const char *text, const char *word);

/* The arguments of a roff request: words, or "quoted strings". */
static size_t roff_tokens(const char *s, char tokens[][MAN_LINE_MAX],
			  size_t max)
{
	size_t n = 0;

	while (*s != '\0' && n < max) {
		const char *end;
		size_t len;

		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		if (*s == '"') {
			s++;
			end = strchr(s, '"');
			if (end == NULL)
				end = s + strlen(s);
		} else {
			end = s + strcspn(s, " ");
		}
		len = (size_t)(end - s);
		if (len >= MAN_LINE_MAX)
			len = MAN_LINE_MAX - 1;
		memcpy(tokens[n], s, len);
		tokens[n++][len] = '\0';
		s = *end == '"' ? end + 1 : end;
	}
	return n;
}

/* ".BR a \", \" b \" (type; default x)\"": a and b are key names (the
 * first bold word, and each one after a ", "); other bold words are
 * values. */
static void man_add_entry(const char *line)
{
	static char tokens[32][MAN_LINE_MAX];
	struct man_entry *e;
	size_t n;
	bool bold_alternates = strncmp(line, ".BR ", 4) == 0;

	if (!bold_alternates && strncmp(line, ".B ", 3) != 0)
		return;
	if (man_entry_count >= MAN_MAX_ENTRIES) {
		fprintf(stderr, "more than %d entries\n", MAN_MAX_ENTRIES);
		exit(1);
	}
	e = &man_entries[man_entry_count++];
	memset(e, 0, sizeof(*e));
	n = roff_tokens(line + (bold_alternates ? 4 : 3), tokens, 32);
	for (size_t i = 0, listing = 1; i < n; i++) {
		bool bold = !bold_alternates || i % 2 == 0;
		size_t used = strlen(e->text);

		if (!bold && strcmp(tokens[i], ", ") != 0)
			listing = 0;
		if (bold && listing && e->name_count < 8)
			snprintf(e->names[e->name_count++], sizeof(e->names[0]),
				 "%s", tokens[i]);
		snprintf(e->text + used, sizeof(e->text) - used, "%s",
			 tokens[i]);
	}
}

/* The .TP entries between ".SH KEYS" and the next .SH. */
static void man_load(const char *path)
{
	char line[MAN_LINE_MAX];
	bool in_keys = false, after_tp = false;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, ".SH ", 4) == 0)
			in_keys = strcmp(line, ".SH KEYS") == 0;
		else if (in_keys && after_tp)
			man_add_entry(line);
		after_tp = strcmp(line, ".TP") == 0;
	}
	fclose(f);
	if (man_entry_count == 0) {
		fprintf(stderr, "%s: no .TP entries under .SH KEYS\n", path);
		exit(1);
	}
}

/* The entry documenting a key of the table: its own name, or for a prefix
 * key a name that begins with it ("retention.DOMAIN"). */
static const struct man_entry *man_find(const char *name)
{
	size_t len = strlen(name);
	bool prefix = len > 0 && name[len - 1] == '.';

	for (size_t i = 0; i < man_entry_count; i++) {
		for (size_t j = 0; j < man_entries[i].name_count; j++) {
			const char *doc = man_entries[i].names[j];

			if (prefix ? strncmp(doc, name, len) == 0 &&
					 doc[len] != '\0'
				   : strcmp(doc, name) == 0)
				return &man_entries[i];
		}
	}
	return NULL;
}

/* word appears in text, not as part of a longer word. */
static bool has_word(const char *text, const char *word)
{
	size_t len = strlen(word);

	for (const char *s = strstr(text, word); s != NULL;
	     s = strstr(s + 1, word)) {
		char before = s == text ? ' ' : s[-1];
		char after = s[len];

		if (strchr(" (", before) != NULL &&
		    strchr(" ,;:)", after) != NULL)
			return true;
	}
	return false;
}

static void test_every_key_is_documented(void **state)
{
	int missing = 0;

	(void)state;
	for (size_t i = 0; i < config_key_count; i++) {
		if (man_find(config_keys[i].name) == NULL) {
			print_error("%s: key '%s' is not in postd.conf(5)\n",
				    man_path, config_keys[i].name);
			missing++;
		}
	}
	assert_int_equal(missing, 0);
}

static void test_every_documented_key_exists(void **state)
{
	int unknown = 0;

	(void)state;
	for (size_t i = 0; i < man_entry_count; i++) {
		for (size_t j = 0; j < man_entries[i].name_count; j++) {
			const char *suffix;

			if (config_find_key(man_entries[i].names[j], &suffix) !=
			    NULL)
				continue;
			print_error("%s: '%s' is documented but postd does not "
				    "know it\n",
				    man_path, man_entries[i].names[j]);
			unknown++;
		}
	}
	assert_int_equal(unknown, 0);
}

/* "default X" in the page is the table's default_value. */
static void test_documented_defaults_match(void **state)
{
	int wrong = 0;

	(void)state;
	for (size_t i = 0; i < config_key_count; i++) {
		const struct config_key *k = &config_keys[i];
		const struct man_entry *e = man_find(k->name);

		if (k->default_value == NULL || e == NULL)
			continue;
		if (strstr(e->text, "default") != NULL &&
		    has_word(e->text, k->default_value))
			continue;
		print_error("%s: '%s' says \"%s\", the default is %s\n",
			    man_path, k->name, e->text, k->default_value);
		wrong++;
	}
	assert_int_equal(wrong, 0);
}

/* Rows: a summary each, unique names, old names that lead to a current
 * key, defaults that parse. */
static void test_table_rows(void **state)
{
	struct config_parser p = {.path = "defaults"};
	struct config cfg;

	(void)state;
	for (size_t i = 0; i < config_key_count; i++) {
		const struct config_key *k = &config_keys[i];
		const char *suffix;

		assert_non_null(k->name);
		assert_non_null(k->set);
		assert_non_null(k->summary);
		assert_true(k->summary[0] != '\0');
		if (!k->prefix)
			assert_ptr_equal(config_find_key(k->name, &suffix), k);
		if (k->replaced_by != NULL) {
			const struct config_key *now =
			    config_find_key(k->replaced_by, &suffix);

			assert_non_null(now);
			assert_null(now->replaced_by);
			assert_ptr_equal(now->set, k->set);
		}
		assert_non_null(config_type_name(config_key_type(k)));
		assert_non_null(config_scope_name(config_key_scope(k)));
	}
	memset(&cfg, 0, sizeof(cfg));
	p.cfg = &cfg;
	assert_int_equal(config_apply_defaults(&p), 0);
	free(cfg.data_dir);
	free(cfg.users_file);
	free(cfg.user);
}

/* Prefix keys are per listener or per domain; listen.* per listener. */
static void test_scopes(void **state)
{
	const char *suffix;

	(void)state;
	assert_int_equal(
	    config_key_scope(config_find_key("listen.pop3", &suffix)),
	    CONFIG_SCOPE_LISTENER);
	assert_int_equal(
	    config_key_scope(config_find_key("plaintext_auth.smtp", &suffix)),
	    CONFIG_SCOPE_LISTENER);
	assert_int_equal(
	    config_key_scope(config_find_key("retention.example.org", &suffix)),
	    CONFIG_SCOPE_DOMAIN);
	assert_int_equal(
	    config_key_scope(config_find_key("transport.example.org", &suffix)),
	    CONFIG_SCOPE_DOMAIN);
	assert_int_equal(
	    config_key_scope(config_find_key("max_recipients", &suffix)),
	    CONFIG_SCOPE_GLOBAL);
}

/* A row in the old form (.name, .set, .offset only), as other branches
 * add them: it gets the setter's own bounds, not 0..0, and its type and
 * scope follow from the setter and the name. */
static void test_old_form_rows(void **state)
{
	const char *suffix;
	const struct config_key *uint_row =
	    config_find_key("max_recipients", &suffix);
	const struct config_key *duration_row =
	    config_find_key("timeout_smtp", &suffix);
	const struct config_key n = {.name = "x_number",
				     .set = uint_row->set,
				     .offset = OFF(max_recipients)};
	const struct config_key d = {.name = "x_duration",
				     .set = duration_row->set,
				     .offset = OFF(timeout_smtp)};
	const struct config_key per_domain = {
	    .name = "x_domain.", .set = uint_row->set, .prefix = true};
	struct config cfg;
	struct config_parser p = {.path = "test", .cfg = &cfg};
	char value[32];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(value, sizeof(value), "4000000000");
	assert_int_equal(n.set(&p, &n, value), 0);
	assert_int_equal(cfg.max_recipients, 4000000000u);
	snprintf(value, sizeof(value), "0");
	assert_int_equal(n.set(&p, &n, value), 0);
	assert_int_equal(cfg.max_recipients, 0);
	snprintf(value, sizeof(value), "4294967296");
	assert_int_equal(n.set(&p, &n, value), -1);
	snprintf(value, sizeof(value), "7d");
	assert_int_equal(d.set(&p, &d, value), 0);
	assert_int_equal(cfg.timeout_smtp, 7 * 86400);
	snprintf(value, sizeof(value), "0");
	assert_int_equal(d.set(&p, &d, value), 0);
	assert_int_equal(cfg.timeout_smtp, 0);
	snprintf(value, sizeof(value), "8d");
	assert_int_equal(d.set(&p, &d, value), -1);
	assert_int_equal(p.error_count, 2);
	assert_int_equal(config_key_type(&n), CONFIG_TYPE_NUMBER);
	assert_int_equal(config_key_type(&d), CONFIG_TYPE_DURATION);
	assert_int_equal(config_key_scope(&n), CONFIG_SCOPE_GLOBAL);
	assert_int_equal(config_key_scope(&per_domain), CONFIG_SCOPE_DOMAIN);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_key_is_documented),
	    cmocka_unit_test(test_every_documented_key_exists),
	    cmocka_unit_test(test_documented_defaults_match),
	    cmocka_unit_test(test_table_rows),
	    cmocka_unit_test(test_scopes),
	    cmocka_unit_test(test_old_form_rows),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/postd.conf.5\n", argv[0]);
		return 2;
	}
	man_path = argv[1];
	man_load(man_path);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
