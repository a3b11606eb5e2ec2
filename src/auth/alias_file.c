/*
 * postctl alias add/del: edits the aliases file the way postctl user
 * edits the users file. Comments, other entries and their continuation
 * lines are copied byte for byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "auth/alias.h"
#include "lib/file_rewrite.h"
#include "lib/parse.h"

/* One edit: key to drop (every entry of it), targets to append. */
struct alias_edit {
	const char *key;
	const char *targets; /* NULL: delete */
	bool found;
	bool in_match; /* copying the continuation lines of a match */
	bool last_had_newline;
};

static __thread char alias_file_error_buf[512];

static bool alias_line_key_is(const char *line, size_t len, const char *key);
static int alias_edit_copy(FILE *in, FILE *out, void *ctx);
static int alias_edit_finish(FILE *out, void *ctx, const char **error_r);
static int alias_file_edit(const char *path, struct alias_edit *edit,
			   const char **error_r);
static int alias_key_canonical(const char *key, char *out, size_t size,
			       const char **error_r);

/* True if the line starts an entry whose key is key (any case). */
static bool alias_line_key_is(const char *line, size_t len, const char *key)
{
	size_t klen = 0, want = strlen(key);

	while (klen < len && strchr(" \t\r\n:#", line[klen]) == NULL)
		klen++;
	if (klen == 0 || klen != want)
		return false;
	for (size_t i = 0; i < klen; i++) {
		char ch = line[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch != key[i])
			return false;
	}
	return true;
}

static int alias_edit_copy(FILE *in, FILE *out, void *ctx)
{
	struct alias_edit *edit = ctx;
	char *line = NULL;
	size_t size = 0;
	ssize_t n;
	int ret = 0;

	edit->last_had_newline = true;
	if (in == NULL)
		return 0;
	while ((n = getline(&line, &size, in)) > 0) {
		size_t len = (size_t)n;
		bool starts_entry = line[0] != ' ' && line[0] != '\t' &&
				    line[0] != '#' && line[0] != '\n' &&
				    line[0] != '\r';

		if (starts_entry)
			edit->in_match =
			    alias_line_key_is(line, len, edit->key);
		else if (line[strspn(line, " \t\r\n")] == '#' ||
			 line[strspn(line, " \t\r\n")] == '\0')
			edit->in_match = false;
		if (edit->in_match) {
			edit->found = true;
			if (edit->targets == NULL)
				continue;
		}
		edit->last_had_newline = line[len - 1] == '\n';
		if (fwrite(line, 1, len, out) != len) {
			ret = -1;
			break;
		}
	}
	if (ferror(in))
		ret = -1;
	free(line);
	return ret;
}

/* After the copy: refuses adding a key that exists or deleting one that
 * does not, appends the new entry. */
static int alias_edit_finish(FILE *out, void *ctx, const char **error_r)
{
	struct alias_edit *edit = ctx;

	if (edit->found && edit->targets != NULL) {
		*error_r = "alias already exists (delete it first)";
		return -1;
	}
	if (!edit->found && edit->targets == NULL) {
		*error_r = "no such alias";
		return -1;
	}
	if (edit->targets != NULL) {
		if (!edit->last_had_newline && fputc('\n', out) == EOF)
			return -1;
		if (fprintf(out, "%s\t%s\n", edit->key, edit->targets) < 0)
			return -1;
	}
	return 0;
}

/* The same durable, locked rewrite as the users file gets. */
static int alias_file_edit(const char *path, struct alias_edit *edit,
			   const char **error_r)
{
	const struct file_rewrite rw = {
	    .noun = "aliases file",
	    .mode_if_new = 0644,
	    .chown_failure_warns = false,
	    .copy = alias_edit_copy,
	    .finish = alias_edit_finish,
	    .ctx = edit,
	};

	return file_rewrite_locked(path, &rw, error_r);
}

/* The key as the table stores it, checked by the table itself. */
static int alias_key_canonical(const char *key, char *out, size_t size,
			       const char **error_r)
{
	struct alias_table *t = alias_table_new();
	char *error = NULL;
	int ret = 0;

	if (alias_table_add(t, key, "check@example.invalid", &error) < 0 ||
	    (size_t)snprintf(out, size, "%s", key) >= size) {
		snprintf(alias_file_error_buf, sizeof(alias_file_error_buf),
			 "%s", error != NULL ? error : "alias too long");
		*error_r = alias_file_error_buf;
		ret = -1;
	}
	free(error);
	alias_table_free(&t);
	ascii_lowercase(out);
	return ret;
}

int alias_file_add(const char *path, const char *key, const char *targets,
		   const char **error_r)
{
	struct alias_edit edit = {.targets = targets};
	struct alias_table *t;
	char canonical[ALIAS_ADDR_SIZE], *error = NULL;
	int ret;

	if (alias_key_canonical(key, canonical, sizeof(canonical), error_r) < 0)
		return -1;
	if (strpbrk(targets, "\r\n#") != NULL) {
		*error_r = "invalid target";
		return -1;
	}
	t = alias_table_new();
	ret = alias_table_add(t, canonical, targets, &error);
	alias_table_free(&t);
	if (ret < 0) {
		snprintf(alias_file_error_buf, sizeof(alias_file_error_buf),
			 "%s", error);
		free(error);
		*error_r = alias_file_error_buf;
		return -1;
	}
	edit.key = canonical;
	return alias_file_edit(path, &edit, error_r);
}

int alias_file_delete(const char *path, const char *key, const char **error_r)
{
	struct alias_edit edit = {.targets = NULL};
	char canonical[ALIAS_ADDR_SIZE];

	if (alias_key_canonical(key, canonical, sizeof(canonical), error_r) < 0)
		return -1;
	edit.key = canonical;
	return alias_file_edit(path, &edit, error_r);
}
