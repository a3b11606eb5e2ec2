#include "auth/passwd_file.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth_proto.h"
#include "auth/password.h"
#include "lib/file_rewrite.h"
#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/username.h"
#include "lib/xmalloc.h"

/* Fields before the extra fields: name:password:uid:gid:gecos:home:shell */
#define PASSWD_FIXED_FIELDS 7
/* The extra fields travel in struct auth_reply. */
#define PASSWD_MAX_EXTRA (sizeof(((struct auth_reply *)0)->extra) - 1)

struct passwd_db {
	struct passwd_entry *entries;
	size_t count, alloc;
	/* Open addressing: index + 1 into entries, 0 for an empty slot. */
	size_t *slots;
	size_t slot_count; /* a power of two, kept at most half full */
	size_t weak_count; /* users with a weak scheme, for one summary */
	size_t skipped_count;
	int first_skipped_line;
};

/* Weak schemes are named line by line up to this many; a file of
 * thousands of {PLAIN} users gets one summary line for the rest. */
#define PASSWD_WEAK_WARNINGS 10

enum passwd_read {
	PASSWD_READ_EOF,
	PASSWD_READ_LINE,
	PASSWD_READ_TOO_LONG,
	PASSWD_READ_ERROR,
};

/* State of one passwd_file_set/delete edit. */
struct passwd_edit {
	const char *name;
	const char *hash; /* NULL: delete */
	bool create;	  /* a missing user is added */
	bool replace;	  /* an existing user gets the new hash */
	bool found;
	bool last_had_newline;
};

static __thread char passwd_error_buf[512];

static uint64_t passwd_hash(const char *s);
static void passwd_db_grow_slots(struct passwd_db *db);
static void passwd_db_append(struct passwd_db *db, size_t *slot,
			     const char *name, const char *password,
			     const char *extra, int lineno);
static size_t *passwd_db_slot(const struct passwd_db *db, const char *name);
static enum passwd_read passwd_read_line(FILE *f, char *buf, size_t size,
					 size_t *len_r);
static void passwd_db_parse_line(struct passwd_db *db, const char *path,
				 int lineno, char *line);
static const char *passwd_field_end(const char *s);
static const char *passwd_set_error(const char *fmt, const char *path, int err);
static int passwd_line_name(const char *line, size_t len, char *out,
			    size_t outsize);
static int passwd_edit_copy(FILE *in, FILE *out, void *ctx);
static int passwd_edit_write_line(FILE *out, const char *line, size_t len,
				  struct passwd_edit *edit);
static int passwd_edit_finish(FILE *out, void *ctx, const char **error_r);
static int passwd_file_edit(const char *path, struct passwd_edit *edit,
			    const char **error_r);
static void passwd_db_note_skipped(struct passwd_db *db, int lineno);

static void passwd_db_note_skipped(struct passwd_db *db, int lineno)
{
	if (db->skipped_count++ == 0)
		db->first_skipped_line = lineno;
}

/* FNV-1a: the file is written by the administrator, not by peers, so
 * a keyed hash against flooding is not needed. */
static uint64_t passwd_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* Returns the slot holding name, or the empty slot where it belongs. */
static size_t *passwd_db_slot(const struct passwd_db *db, const char *name)
{
	size_t mask = db->slot_count - 1;
	size_t i = (size_t)passwd_hash(name) & mask;

	while (db->slots[i] != 0 &&
	       strcmp(db->entries[db->slots[i] - 1].name, name) != 0)
		i = (i + 1) & mask;
	return &db->slots[i];
}

static void passwd_db_grow_slots(struct passwd_db *db)
{
	size_t old_count = db->slot_count;

	if (old_count != 0 && db->count < old_count / 2)
		return;
	db->slot_count = old_count == 0 ? 64 : old_count * 2;
	free(db->slots);
	db->slots = xcalloc(db->slot_count, sizeof(*db->slots));
	for (size_t i = 0; i < db->count; i++)
		*passwd_db_slot(db, db->entries[i].name) = i + 1;
}

/*
 * Reads one line (without its LF) into buf. A line that does not fit is
 * consumed to its end and reported, so the next line starts in the right
 * place.
 */
static enum passwd_read passwd_read_line(FILE *f, char *buf, size_t size,
					 size_t *len_r)
{
	size_t len = 0;
	bool too_long = false;
	int c;

	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (len + 1 < size)
			buf[len++] = (char)c;
		else
			too_long = true;
	}
	if (c == EOF && ferror(f))
		return PASSWD_READ_ERROR;
	if (c == EOF && len == 0 && !too_long)
		return PASSWD_READ_EOF;
	buf[len] = '\0';
	*len_r = len;
	return too_long ? PASSWD_READ_TOO_LONG : PASSWD_READ_LINE;
}

static const char *passwd_field_end(const char *s)
{
	const char *colon = strchr(s, ':');

	return colon != NULL ? colon : s + strlen(s);
}

static void passwd_db_parse_line(struct passwd_db *db, const char *path,
				 int lineno, char *line)
{
	char name[USERNAME_BUF_SIZE];
	const char *p, *name_end, *pw_end, *extra = NULL, *scheme, *error;
	size_t *slot;
	bool weak;

	name_end = passwd_field_end(line);
	if (*name_end != ':') {
		log_warn("%s:%d: no password field, line skipped", path,
			 lineno);
		return;
	}
	if (username_normalize(line, (size_t)(name_end - line), NULL, name,
			       sizeof(name)) < 0) {
		log_warn("%s:%d: invalid user name, line skipped", path,
			 lineno);
		return;
	}
	pw_end = passwd_field_end(name_end + 1);
	/* Extra fields: everything after the seventh colon. */
	p = pw_end;
	for (int field = 2; *p == ':' && field <= PASSWD_FIXED_FIELDS;
	     field++) {
		if (field == PASSWD_FIXED_FIELDS) {
			extra = p + 1;
			break;
		}
		p = passwd_field_end(p + 1);
	}
	if (extra != NULL && strlen(extra) > PASSWD_MAX_EXTRA) {
		log_warn("%s:%d: extra fields longer than %zu bytes, line "
			 "skipped",
			 path, lineno, PASSWD_MAX_EXTRA);
		return;
	}
	if (db->count >= PASSWD_MAX_USERS) {
		log_warn("%s:%d: more than %d users, line skipped", path,
			 lineno, PASSWD_MAX_USERS);
		return;
	}
	slot = passwd_db_slot(db, name);
	if (*slot != 0) {
		log_warn("%s:%d: duplicate user %s (first on line %d), line "
			 "skipped",
			 path, lineno, name, db->entries[*slot - 1].line);
		return;
	}
	line[pw_end - line] = '\0';
	if (password_check_stored(name_end + 1, &weak, &scheme, &error) < 0) {
		log_warn("%s:%d: user %s: %s, line skipped", path, lineno, name,
			 error);
		return;
	}
	if (weak && ++db->weak_count <= PASSWD_WEAK_WARNINGS)
		log_warn("%s:%d: user %s has a weak password scheme {%s}; "
			 "set a new password with postctl user passwd",
			 path, lineno, name, scheme);
	passwd_db_append(db, slot, name, name_end + 1, extra, lineno);
}

static void passwd_db_append(struct passwd_db *db, size_t *slot,
			     const char *name, const char *password,
			     const char *extra, int lineno)
{
	struct passwd_entry *e;

	if (db->count == db->alloc) {
		db->alloc = db->alloc == 0 ? 64 : db->alloc * 2;
		db->entries =
		    xreallocarray(db->entries, db->alloc, sizeof(*db->entries));
	}
	e = &db->entries[db->count++];
	e->name = xstrdup(name);
	e->password = xstrdup(password);
	e->extra = extra != NULL && *extra != '\0' ? xstrdup(extra) : NULL;
	e->line = lineno;
	*slot = db->count;
	passwd_db_grow_slots(db);
}

struct passwd_db *passwd_db_new(void)
{
	struct passwd_db *db = xcalloc(1, sizeof(*db));

	passwd_db_grow_slots(db);
	return db;
}

bool passwd_db_add(struct passwd_db *db, const char *name, const char *password,
		   const char *extra)
{
	size_t *slot = passwd_db_slot(db, name);

	if (*slot != 0)
		return false;
	passwd_db_append(db, slot, name, password, extra, (int)db->count + 1);
	return true;
}

static const char *passwd_set_error(const char *fmt, const char *path, int err)
{
	int n = snprintf(passwd_error_buf, sizeof(passwd_error_buf), fmt, path,
			 strerror(err));

	/* A cut message is still useful; mark it as cut. */
	if (n < 0 || (size_t)n >= sizeof(passwd_error_buf))
		memcpy(passwd_error_buf + sizeof(passwd_error_buf) - 4, "...",
		       4);
	return passwd_error_buf;
}

int passwd_db_load(const char *path, struct passwd_db **db_r,
		   const char **error_r)
{
	char *line = xmalloc(PASSWD_MAX_LINE + 1);
	struct passwd_db *db;
	enum passwd_read r;
	size_t len, count;
	int lineno = 0;
	FILE *f;

	*db_r = NULL;
	f = fopen(path, "re");
	if (f == NULL) {
		*error_r = passwd_set_error("open(%s): %s", path, errno);
		free(line);
		return -1;
	}
	db = xcalloc(1, sizeof(*db));
	passwd_db_grow_slots(db);
	while ((r = passwd_read_line(f, line, PASSWD_MAX_LINE + 1, &len)) !=
	       PASSWD_READ_EOF) {
		if (lineno < INT32_MAX)
			lineno++;
		if (r == PASSWD_READ_ERROR)
			break;
		if (r == PASSWD_READ_TOO_LONG) {
			log_warn("%s:%d: line longer than %d bytes, skipped",
				 path, lineno, PASSWD_MAX_LINE);
			passwd_db_note_skipped(db, lineno);
			continue;
		}
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (memchr(line, '\0', len) != NULL) {
			log_warn("%s:%d: NUL byte in line, skipped", path,
				 lineno);
			passwd_db_note_skipped(db, lineno);
			continue;
		}
		if (len == 0 || line[0] == '#')
			continue;
		count = db->count;
		passwd_db_parse_line(db, path, lineno, line);
		if (db->count == count)
			passwd_db_note_skipped(db, lineno);
	}
	if (r == PASSWD_READ_ERROR) {
		*error_r = passwd_set_error("read(%s): %s", path, errno);
		fclose(f);
		free(line);
		passwd_db_free(&db);
		return -1;
	}
	fclose(f);
	free(line);
	if (db->weak_count > PASSWD_WEAK_WARNINGS)
		log_warn("%s: %zu users in all have a weak password scheme "
			 "(only the first %d are named)",
			 path, db->weak_count, PASSWD_WEAK_WARNINGS);
	*db_r = db;
	return 0;
}

const struct passwd_entry *passwd_db_lookup(const struct passwd_db *db,
					    const char *name)
{
	size_t idx;

	if (db == NULL || name == NULL)
		return NULL;
	idx = *passwd_db_slot(db, name);
	return idx == 0 ? NULL : &db->entries[idx - 1];
}

size_t passwd_db_count(const struct passwd_db *db)
{
	return db == NULL ? 0 : db->count;
}

size_t passwd_db_skipped(const struct passwd_db *db, int *first_line_r)
{
	*first_line_r = db == NULL ? 0 : db->first_skipped_line;
	return db == NULL ? 0 : db->skipped_count;
}

const struct passwd_entry *passwd_db_entry(const struct passwd_db *db, size_t i)
{
	if (db == NULL || i >= db->count)
		return NULL;
	return &db->entries[i];
}

void passwd_db_free(struct passwd_db **dbp)
{
	struct passwd_db *db = *dbp;

	if (db == NULL)
		return;
	for (size_t i = 0; i < db->count; i++) {
		struct passwd_entry *e = &db->entries[i];

		free(e->name);
		/* Hashes (and {PLAIN} passwords) should not linger in freed
		 * memory. */
		explicit_bzero(e->password, strlen(e->password));
		free(e->password);
		free(e->extra);
	}
	free(db->entries);
	free(db->slots);
	free(db);
	*dbp = NULL;
}

/* Canonical name of a users file line, or -1 for comments, blank lines
 * and lines whose name cannot be used. */
static int passwd_line_name(const char *line, size_t len, char *out,
			    size_t outsize)
{
	const char *colon;

	if (len == 0 || line[0] == '#')
		return -1;
	colon = memchr(line, ':', len);
	if (colon == NULL)
		return -1;
	return username_normalize(line, (size_t)(colon - line), NULL, out,
				  outsize);
}

/* Copies one line, replacing or dropping it if it is the edited user's
 * first line. */
static int passwd_edit_write_line(FILE *out, const char *line, size_t len,
				  struct passwd_edit *edit)
{
	char name[USERNAME_BUF_SIZE];
	const char *rest, *colon;

	edit->last_had_newline = len > 0 && line[len - 1] == '\n';
	if (passwd_line_name(line, len, name, sizeof(name)) < 0 ||
	    strcmp(name, edit->name) != 0 || (edit->found && edit->hash))
		return fwrite(line, 1, len, out) == len ? 0 : -1;
	edit->found = true;
	if (edit->hash == NULL)
		return 0; /* deleted (every line of that name) */
	/* Keep uid..extra fields and the line end as they were. */
	colon = memchr(line, ':', len);
	rest = memchr(colon + 1, ':', len - (size_t)(colon + 1 - line));
	if (rest == NULL) {
		rest = line + len;
		while (rest > colon + 1 &&
		       (rest[-1] == '\n' || rest[-1] == '\r'))
			rest--;
	}
	if (fprintf(out, "%s:%s", edit->name, edit->hash) < 0)
		return -1;
	len -= (size_t)(rest - line);
	return fwrite(rest, 1, len, out) == len ? 0 : -1;
}

static int passwd_edit_copy(FILE *in, FILE *out, void *ctx)
{
	struct passwd_edit *edit = ctx;
	char *line = NULL;
	size_t size = 0;
	ssize_t n;
	int ret = 0;

	edit->last_had_newline = true;
	if (in == NULL)
		return 0;
	while ((n = getline(&line, &size, in)) > 0) {
		if (passwd_edit_write_line(out, line, (size_t)n, edit) < 0) {
			ret = -1;
			break;
		}
	}
	if (ferror(in))
		ret = -1;
	if (line != NULL)
		explicit_bzero(line, size);
	free(line);
	return ret;
}

/* After the copy: refuses what the flags do not allow, appends a new
 * user. */
static int passwd_edit_finish(FILE *out, void *ctx, const char **error_r)
{
	struct passwd_edit *edit = ctx;

	if (edit->found && edit->hash != NULL && !edit->replace) {
		*error_r = "user already exists";
		return -1;
	}
	if (!edit->found && (edit->hash == NULL || !edit->create)) {
		*error_r = "no such user";
		return -1;
	}
	if (!edit->found) {
		if (!edit->last_had_newline && fputc('\n', out) == EOF)
			return -1;
		if (fprintf(out, "%s:%s\n", edit->name, edit->hash) < 0)
			return -1;
	}
	return 0;
}

/* Durable, locked rewrite of the users file; it keeps its owner
 * (root:postd) and only warns if it cannot. */
static int passwd_file_edit(const char *path, struct passwd_edit *edit,
			    const char **error_r)
{
	const struct file_rewrite rw = {
	    .noun = "users file",
	    .mode_if_new = 0600,
	    .chown_failure_warns = true,
	    .copy = passwd_edit_copy,
	    .finish = passwd_edit_finish,
	    .ctx = edit,
	};

	return file_rewrite_locked(path, &rw, error_r);
}

int passwd_file_set(const char *path, const char *name, const char *hash,
		    bool create, bool replace, const char **error_r)
{
	struct passwd_edit edit = {
	    .name = name, .hash = hash, .create = create, .replace = replace};
	const char *error;

	if (!username_is_canonical(name)) {
		*error_r = "invalid user name";
		return -1;
	}
	if (hash == NULL || strpbrk(hash, ":\r\n") != NULL ||
	    password_check_stored(hash, NULL, NULL, &error) < 0) {
		*error_r = "invalid password hash";
		return -1;
	}
	return passwd_file_edit(path, &edit, error_r);
}

int passwd_file_delete(const char *path, const char *name, const char **error_r)
{
	struct passwd_edit edit = {.name = name, .hash = NULL};

	if (!username_is_canonical(name)) {
		*error_r = "invalid user name";
		return -1;
	}
	return passwd_file_edit(path, &edit, error_r);
}
