/*
 * postctl alias add/del: edits the aliases file the way postctl user
 * edits the users file. Comments, other entries and their continuation
 * lines are copied byte for byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/alias.h"
#include "lib/parse.h"
#include "lib/xmalloc.h"

/* One edit: key to drop (every entry of it), targets to append. */
struct alias_edit {
	const char *key;
	const char *targets; /* NULL: delete */
	bool found;
	bool in_match; /* copying the continuation lines of a match */
	bool last_had_newline;
};

static __thread char alias_file_error_buf[512];

static const char *alias_file_error(const char *fmt, const char *path, int err);
static bool alias_line_key_is(const char *line, size_t len, const char *key);
static int alias_edit_copy(FILE *in, FILE *out, struct alias_edit *edit);
static int alias_fsync_dir(const char *path);
static int alias_file_edit(const char *path, struct alias_edit *edit,
			   const char **error_r);
static int alias_key_canonical(const char *key, char *out, size_t size,
			       const char **error_r);

static const char *alias_file_error(const char *fmt, const char *path, int err)
{
	snprintf(alias_file_error_buf, sizeof(alias_file_error_buf), fmt, path,
		 strerror(err));
	return alias_file_error_buf;
}

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

static int alias_edit_copy(FILE *in, FILE *out, struct alias_edit *edit)
{
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

static int alias_fsync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, ret;

	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

/* Lock, copy into path.tmp.PID with the change, fsync, rename over path,
 * fsync the folder: a crash leaves the old file or the new one. */
static int alias_file_edit(const char *path, struct alias_edit *edit,
			   const char **error_r)
{
	char lock_path[4096], tmp_path[4096];
	struct stat st;
	FILE *in = NULL, *out = NULL;
	int lock_fd, fd = -1, ret = -1;
	mode_t mode = 0644;
	bool have_st = false, tmp_created = false;

	if ((size_t)snprintf(lock_path, sizeof(lock_path), "%s.lock", path) >=
		sizeof(lock_path) ||
	    (size_t)snprintf(tmp_path, sizeof(tmp_path), "%s.tmp.%ld", path,
			     (long)getpid()) >= sizeof(tmp_path)) {
		*error_r = "aliases file path too long";
		return -1;
	}
	lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0) {
		*error_r = alias_file_error("open(%s): %s", lock_path, errno);
		return -1;
	}
	if (flock(lock_fd, LOCK_EX) < 0) {
		*error_r = alias_file_error("flock(%s): %s", lock_path, errno);
		close(lock_fd);
		return -1;
	}
	in = fopen(path, "re");
	if (in == NULL && errno != ENOENT) {
		*error_r = alias_file_error("open(%s): %s", path, errno);
		goto out;
	}
	if (in != NULL && fstat(fileno(in), &st) == 0) {
		have_st = true;
		mode = st.st_mode & 07777;
	}
	fd = open(tmp_path,
		  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		*error_r = alias_file_error("open(%s): %s", tmp_path, errno);
		goto out;
	}
	tmp_created = true;
	if (have_st && fchown(fd, st.st_uid, st.st_gid) < 0 && errno != EPERM) {
		*error_r = alias_file_error("fchown(%s): %s", tmp_path, errno);
		goto out;
	}
	if (fchmod(fd, mode) < 0) {
		*error_r = alias_file_error("fchmod(%s): %s", tmp_path, errno);
		goto out;
	}
	out = fdopen(fd, "w");
	if (out == NULL) {
		*error_r = alias_file_error("fdopen(%s): %s", tmp_path, errno);
		goto out;
	}
	fd = -1;
	if (alias_edit_copy(in, out, edit) < 0) {
		*error_r = alias_file_error("copying %s: %s", path, errno);
		goto out;
	}
	if (edit->found && edit->targets != NULL) {
		*error_r = "alias already exists (delete it first)";
		goto out;
	}
	if (!edit->found && edit->targets == NULL) {
		*error_r = "no such alias";
		goto out;
	}
	if (edit->targets != NULL) {
		if (!edit->last_had_newline && fputc('\n', out) == EOF)
			goto write_error;
		if (fprintf(out, "%s\t%s\n", edit->key, edit->targets) < 0)
			goto write_error;
	}
	if (fflush(out) != 0 || fsync(fileno(out)) != 0)
		goto write_error;
	if (fclose(out) != 0) {
		out = NULL;
		goto write_error;
	}
	out = NULL;
	if (rename(tmp_path, path) < 0) {
		*error_r = alias_file_error("rename(%s): %s", path, errno);
		goto out;
	}
	if (alias_fsync_dir(path) < 0) {
		*error_r =
		    alias_file_error("fsync(dir of %s): %s", path, errno);
		goto out_renamed;
	}
	ret = 0;
	goto out_renamed;
write_error:
	*error_r = alias_file_error("write(%s): %s", tmp_path, errno);
out:
	if (tmp_created)
		unlink(tmp_path);
out_renamed:
	if (out != NULL)
		fclose(out);
	if (fd >= 0)
		close(fd);
	if (in != NULL)
		fclose(in);
	close(lock_fd);
	return ret;
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
