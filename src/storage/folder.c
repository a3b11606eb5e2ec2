/*
 * A user's IMAP folders in Dovecot's Maildir++ layout (folder.h), the
 * subscriptions file and the special-use attributes. folder_name.c maps
 * names; this file does the directory work.
 *
 * Every directory is opened beneath the Maildir root descriptor with
 * O_DIRECTORY|O_NOFOLLOW from a name that passed folder_name_valid()
 * (INV-S2, INV-U1). Changes to the folder list, the subscriptions and the
 * special-use file are serialised by an OFD lock on postd-folders.lock,
 * and every directory whose entries changed is fsynced before the call
 * returns, so an OK'd CREATE/DELETE/RENAME/SUBSCRIBE survives a crash.
 */
#include "storage/folder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "storage/mailbox.h"
#include "storage/maildir.h"

#define FOLDER_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
#define FOLDER_LOCK_FILE "postd-folders.lock"
#define FOLDER_SUBS_FILE "subscriptions"
#define FOLDER_SPECIAL_FILE "postd-special-use"
#define FOLDER_SPECIAL_MAGIC "postd-special-use 1\n"
#define FOLDER_SUBS_HEADER "V\t2\n\n"
/* Both files hold at most a line per folder. */
#define FOLDER_MAX_META_FILE                                                   \
	((size_t)FOLDER_MAX_PER_USER * (FOLDER_MAX_NAME * 4 + 128) + 64)
/* A directory name: ".x" + mUTF-7 (up to NAME_MAX). */
#define FOLDER_DISK_MAX 256
/* A deleted folder is first renamed to this (its ".." start makes it no
 * folder name), so a crash leaves no half-deleted folder visible. */
#define FOLDER_TRASH_PREFIX "..postd-deleted."

/* The lines of the subscriptions or the special-use file. */
struct folder_meta {
	char **names;
	unsigned *bits;
	size_t count;
};

static const struct {
	const char *attr;
	unsigned bit;
} folder_specials[] = {
    {"\\All", FOLDER_SPECIAL_ALL},	 {"\\Archive", FOLDER_SPECIAL_ARCHIVE},
    {"\\Drafts", FOLDER_SPECIAL_DRAFTS}, {"\\Flagged", FOLDER_SPECIAL_FLAGGED},
    {"\\Junk", FOLDER_SPECIAL_JUNK},	 {"\\Sent", FOLDER_SPECIAL_SENT},
    {"\\Trash", FOLDER_SPECIAL_TRASH},
};

static const struct {
	const char *name;
	unsigned bit;
} folder_defaults[] = {
    {"Drafts", FOLDER_SPECIAL_DRAFTS},	 {"Sent", FOLDER_SPECIAL_SENT},
    {"Trash", FOLDER_SPECIAL_TRASH},	 {"Junk", FOLDER_SPECIAL_JUNK},
    {"Archive", FOLDER_SPECIAL_ARCHIVE},
};

static void folder_err(char *error, size_t error_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum folder_status folder_io(char *error, size_t error_size,
				    const char *what);
static int folder_lock(int root_fd);
static bool folder_check(const char *name, char *error, size_t error_size);
static int folder_read_file(int root_fd, const char *file, char **data_r,
			    size_t *len_r);
static int folder_write_file(int root_fd, const char *file, const char *data,
			     size_t len);
static void folder_meta_free(struct folder_meta *m);
static ssize_t folder_meta_find(const struct folder_meta *m, const char *name);
static void folder_meta_set(struct folder_meta *m, const char *name,
			    unsigned bits);
static void folder_meta_del(struct folder_meta *m, size_t i);
static int folder_subs_read(int root_fd, struct folder_meta *m);
static int folder_subs_write(int root_fd, const struct folder_meta *m);
static int folder_special_read(int root_fd, struct folder_meta *m);
static int folder_special_write(int root_fd, const struct folder_meta *m);
static int folder_dir_kind(int root_fd, const char *disk);
static int folder_scan(int root_fd, struct folder_meta *dirs);
static int folder_make_maildir(int root_fd, const char *disk, bool *made_r);
static int folder_remove_tree(int parent_fd, const char *name, int depth);
static int folder_empty_maildir(int root_fd, const char *disk);
static int folder_move_messages(int from_fd, int to_fd);
static int folder_move_linked(int src, int dst, int hold);
static enum folder_status folder_create_locked(int root_fd, const char *name,
					       unsigned special, char *error,
					       size_t error_size);
static enum folder_status folder_subscribe_locked(int root_fd, const char *name,
						  bool on, char *error,
						  size_t error_size);
static void folder_meta_rename(struct folder_meta *m, const char *from,
			       const char *to);
static int folder_info_cmp(const void *a, const void *b);

static void folder_err(char *error, size_t error_size, const char *fmt, ...)
{
	va_list ap;

	if (error_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(error, error_size, fmt, ap);
	va_end(ap);
}

static enum folder_status folder_io(char *error, size_t error_size,
				    const char *what)
{
	char sbuf[128];
	const char *s = strerror_r(errno, sbuf, sizeof(sbuf));

	folder_err(error, error_size, "%s: %s", what, s);
	return FOLDER_TEMPFAIL;
}

/* OFD lock: conflicts between any two opens, also within one process. */
static int folder_lock(int root_fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd = openat(root_fd, FOLDER_LOCK_FILE,
			O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	while (fcntl(fd, F_OFD_SETLKW, &fl) < 0) {
		if (errno != EINTR) {
			int saved = errno;

			close(fd);
			errno = saved;
			return -1;
		}
	}
	return fd;
}

static bool folder_check(const char *name, char *error, size_t error_size)
{
	const char *why;

	if (folder_name_valid(name, &why))
		return true;
	folder_err(error, error_size, "invalid folder name: %s", why);
	return false;
}

unsigned folder_special_from_name(const char *attr)
{
	for (size_t i = 0;
	     i < sizeof(folder_specials) / sizeof(*folder_specials); i++) {
		size_t len = strlen(folder_specials[i].attr);

		if (strlen(attr) == len &&
		    ascii_strncaseeq(attr, folder_specials[i].attr, len))
			return folder_specials[i].bit;
	}
	return 0;
}

void folder_special_format(unsigned bits, char *out, size_t out_size)
{
	size_t n = 0;

	if (out_size == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0;
	     i < sizeof(folder_specials) / sizeof(*folder_specials); i++) {
		int w;

		if ((bits & folder_specials[i].bit) == 0)
			continue;
		w = snprintf(out + n, out_size - n, "%s%s", n > 0 ? " " : "",
			     folder_specials[i].attr);
		if (w < 0 || (size_t)w >= out_size - n) {
			out[n] = '\0';
			return;
		}
		n += (size_t)w;
	}
}

/* Reads a small file beneath root_fd: 0 (with *data_r NULL if missing),
 * or -1 with errno (EFBIG when longer than any valid file). */
static int folder_read_file(int root_fd, const char *file, char **data_r,
			    size_t *len_r)
{
	struct stat st;
	char *data;
	size_t got = 0;
	int fd = openat(root_fd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	*data_r = NULL;
	*len_r = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &st) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	if (!S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > FOLDER_MAX_META_FILE) {
		close(fd);
		errno = S_ISREG(st.st_mode) ? EFBIG : ENODEV;
		return -1;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	data[got] = '\0';
	*data_r = data;
	*len_r = got;
	return 0;
}

/* tmp file, fsync, rename, fsync of the root (called under the lock, so
 * one tmp name is enough). */
static int folder_write_file(int root_fd, const char *file, const char *data,
			     size_t len)
{
	char tmp[64];
	size_t done = 0;
	int fd, saved;

	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	fd =
	    openat(root_fd, tmp,
		   O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	while (done < len) {
		ssize_t w = write(fd, data + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		done += (size_t)w;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(root_fd, tmp, root_fd, file) < 0)
		goto fail;
	return fsync(root_fd);
fail:
	saved = errno == 0 ? EIO : errno;
	if (fd >= 0)
		close(fd);
	unlinkat(root_fd, tmp, 0);
	errno = saved;
	return -1;
}

static void folder_meta_free(struct folder_meta *m)
{
	for (size_t i = 0; i < m->count; i++)
		free(m->names[i]);
	XFREE(m->names);
	XFREE(m->bits);
	m->count = 0;
}

static ssize_t folder_meta_find(const struct folder_meta *m, const char *name)
{
	for (size_t i = 0; i < m->count; i++) {
		if (strcmp(m->names[i], name) == 0)
			return (ssize_t)i;
	}
	return -1;
}

static void folder_meta_set(struct folder_meta *m, const char *name,
			    unsigned bits)
{
	ssize_t i = folder_meta_find(m, name);

	if (i >= 0) {
		m->bits[i] = bits;
		return;
	}
	m->names = xreallocarray(m->names, m->count + 1, sizeof(*m->names));
	m->bits = xreallocarray(m->bits, m->count + 1, sizeof(*m->bits));
	m->names[m->count] = xstrdup(name);
	m->bits[m->count] = bits;
	m->count++;
}

static void folder_meta_del(struct folder_meta *m, size_t i)
{
	free(m->names[i]);
	memmove(m->names + i, m->names + i + 1,
		(m->count - i - 1) * sizeof(*m->names));
	memmove(m->bits + i, m->bits + i + 1,
		(m->count - i - 1) * sizeof(*m->bits));
	m->count--;
}

/*
 * Dovecot's format: "V\t2\n\n", then one folder per line, its levels
 * separated by TAB, each in modified UTF-7 as on disk. Lines that do not
 * decode to a valid name are dropped (and vanish at the next write).
 */
static int folder_subs_read(int root_fd, struct folder_meta *m)
{
	char *data, *line, *next;
	size_t len;

	memset(m, 0, sizeof(*m));
	if (folder_read_file(root_fd, FOLDER_SUBS_FILE, &data, &len) < 0)
		return -1;
	if (data == NULL)
		return 0;
	line = data;
	if (strncmp(data, FOLDER_SUBS_HEADER, strlen(FOLDER_SUBS_HEADER)) == 0)
		line += strlen(FOLDER_SUBS_HEADER);
	for (; *line != '\0' && m->count < FOLDER_MAX_PER_USER; line = next) {
		char utf8[FOLDER_MAX_NAME + 1];
		char comp[FOLDER_MAX_NAME + 1];
		const char *why;
		size_t n = 0;
		bool ok = true;

		next = strchr(line, '\n');
		if (next == NULL)
			next = line + strlen(line);
		else
			*next++ = '\0';
		for (char *c = line; ok && c != NULL;) {
			char *tab = strchr(c, '\t');

			if (tab != NULL)
				*tab = '\0';
			ok = folder_mutf7_decode(c, comp, sizeof(comp)) == 0 &&
			     n + strlen(comp) + 1 < sizeof(utf8);
			if (ok) {
				n += (size_t)snprintf(utf8 + n,
						      sizeof(utf8) - n, "%s%s",
						      n > 0 ? "/" : "", comp);
			}
			c = tab == NULL ? NULL : tab + 1;
		}
		if (ok && n > 0 && folder_name_valid(utf8, &why))
			folder_meta_set(
			    m, folder_is_inbox(utf8) ? "INBOX" : utf8, 1);
	}
	free(data);
	return 0;
}

static int folder_subs_write(int root_fd, const struct folder_meta *m)
{
	size_t cap = strlen(FOLDER_SUBS_HEADER) + 1, n;
	char *buf;
	int r;

	for (size_t i = 0; i < m->count; i++)
		cap += strlen(m->names[i]) * 4 + 2;
	buf = xmalloc(cap);
	n = (size_t)snprintf(buf, cap, "%s", FOLDER_SUBS_HEADER);
	for (size_t i = 0; i < m->count; i++) {
		const char *c = m->names[i];

		for (;;) {
			char comp[FOLDER_MAX_NAME + 1];
			const char *slash = strchr(c, '/');
			size_t clen =
			    slash == NULL ? strlen(c) : (size_t)(slash - c);

			memcpy(comp, c, clen);
			comp[clen] = '\0';
			if (folder_mutf7_encode(comp, buf + n, cap - n) < 0)
				break;
			n += strlen(buf + n);
			if (slash == NULL)
				break;
			buf[n++] = '\t';
			c = slash + 1;
		}
		buf[n++] = '\n';
	}
	r = folder_write_file(root_fd, FOLDER_SUBS_FILE, buf, n);
	free(buf);
	return r;
}

/* "postd-special-use 1\n" then "NAME\tATTR ATTR\n" per folder (UTF-8
 * names, '/' separated: ours alone, Dovecot keeps these in its config). */
static int folder_special_read(int root_fd, struct folder_meta *m)
{
	char *data, *line, *next;
	size_t len;

	memset(m, 0, sizeof(*m));
	if (folder_read_file(root_fd, FOLDER_SPECIAL_FILE, &data, &len) < 0)
		return -1;
	if (data == NULL)
		return 0;
	if (strncmp(data, FOLDER_SPECIAL_MAGIC, strlen(FOLDER_SPECIAL_MAGIC)) !=
	    0) {
		free(data);
		return 0;
	}
	for (line = data + strlen(FOLDER_SPECIAL_MAGIC);
	     *line != '\0' && m->count < FOLDER_MAX_PER_USER; line = next) {
		char *tab, *attr;
		unsigned bits = 0;
		const char *why;

		next = strchr(line, '\n');
		if (next == NULL)
			next = line + strlen(line);
		else
			*next++ = '\0';
		tab = strchr(line, '\t');
		if (tab == NULL)
			continue;
		*tab = '\0';
		for (attr = tab + 1; *attr != '\0';) {
			char *sp = strchr(attr, ' ');

			if (sp != NULL)
				*sp = '\0';
			bits |= folder_special_from_name(attr);
			attr = sp == NULL ? attr + strlen(attr) : sp + 1;
		}
		if (bits != 0 && folder_name_valid(line, &why) &&
		    !folder_is_inbox(line))
			folder_meta_set(m, line, bits);
	}
	free(data);
	return 0;
}

static int folder_special_write(int root_fd, const struct folder_meta *m)
{
	size_t cap = strlen(FOLDER_SPECIAL_MAGIC) + 1, n;
	char *buf;
	int r;

	for (size_t i = 0; i < m->count; i++)
		cap += strlen(m->names[i]) + 80;
	buf = xmalloc(cap);
	n = (size_t)snprintf(buf, cap, "%s", FOLDER_SPECIAL_MAGIC);
	for (size_t i = 0; i < m->count; i++) {
		char attrs[80];

		folder_special_format(m->bits[i], attrs, sizeof(attrs));
		n += (size_t)snprintf(buf + n, cap - n, "%s\t%s\n", m->names[i],
				      attrs);
	}
	r = folder_write_file(root_fd, FOLDER_SPECIAL_FILE, buf, n);
	free(buf);
	return r;
}

/* 0: no such directory; 1: a directory without cur/ (\Noselect); 2: a
 * Maildir; -1: error. */
static int folder_dir_kind(int root_fd, const char *disk)
{
	struct stat st;
	int fd = openat(root_fd, disk, FOLDER_DIR_FLAGS);
	int kind;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	kind = fstatat(fd, "cur", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		       S_ISDIR(st.st_mode)
		   ? 2
		   : 1;
	close(fd);
	return kind;
}

/* Every folder directory beneath the root: names (UTF-8) with bits 2 for
 * a Maildir, 1 for a directory without cur/. */
static int folder_scan(int root_fd, struct folder_meta *dirs)
{
	struct dirent *de;
	DIR *dir;
	int fd = openat(root_fd, ".", FOLDER_DIR_FLAGS);

	memset(dirs, 0, sizeof(*dirs));
	if (fd < 0)
		return -1;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL &&
	       dirs->count < FOLDER_MAX_PER_USER) {
		char name[FOLDER_MAX_NAME + 1];
		int kind;

		if (de->d_name[0] != '.' ||
		    (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
			continue;
		if (folder_name_from_disk(de->d_name, name, sizeof(name)) < 0)
			continue;
		kind = folder_dir_kind(root_fd, de->d_name);
		if (kind > 0)
			folder_meta_set(dirs, name, (unsigned)kind);
	}
	closedir(dir);
	return 0;
}

static int folder_info_cmp(const void *a, const void *b)
{
	const struct folder_info *x = a, *y = b;

	return strcmp(x->name, y->name);
}

int folder_list(int root_fd, struct folder_info **list_r, size_t *count_r,
		char *error, size_t error_size)
{
	struct folder_meta dirs, subs, special;
	struct folder_info *list;
	size_t count = 0, cap;

	*list_r = NULL;
	*count_r = 0;
	if (folder_scan(root_fd, &dirs) < 0) {
		folder_io(error, error_size, "read the folder list");
		return -1;
	}
	if (folder_subs_read(root_fd, &subs) < 0)
		memset(&subs, 0, sizeof(subs));
	if (folder_special_read(root_fd, &special) < 0)
		memset(&special, 0, sizeof(special));
	/* Missing parents are added as \NonExistent below. */
	for (size_t i = 0, n = dirs.count; i < n; i++) {
		char parent[FOLDER_MAX_NAME + 1];
		char *slash;

		snprintf(parent, sizeof(parent), "%s", dirs.names[i]);
		while ((slash = strrchr(parent, '/')) != NULL) {
			*slash = '\0';
			if (!folder_is_inbox(parent) &&
			    folder_meta_find(&dirs, parent) < 0)
				folder_meta_set(&dirs, parent, 0);
		}
	}
	cap = dirs.count + subs.count + 1;
	list = xcalloc(cap, sizeof(*list));
	list[count].name = xstrdup("INBOX");
	list[count].subscribed = folder_meta_find(&subs, "INBOX") >= 0;
	count++;
	for (size_t i = 0; i < dirs.count; i++) {
		ssize_t sp = folder_meta_find(&special, dirs.names[i]);

		list[count].name = xstrdup(dirs.names[i]);
		list[count].subscribed =
		    folder_meta_find(&subs, dirs.names[i]) >= 0;
		list[count].special = sp >= 0 ? special.bits[sp] : 0;
		list[count].nonexistent = dirs.bits[i] != 2;
		count++;
	}
	for (size_t i = 0; i < subs.count; i++) {
		if (folder_is_inbox(subs.names[i]) ||
		    folder_meta_find(&dirs, subs.names[i]) >= 0)
			continue;
		list[count].name = xstrdup(subs.names[i]);
		list[count].subscribed = true;
		list[count].nonexistent = true;
		list[count].only_subscribed = true;
		count++;
	}
	qsort(list + 1, count - 1, sizeof(*list), folder_info_cmp);
	for (size_t i = 1; i < count; i++) {
		char parent[FOLDER_MAX_NAME + 1];
		char *slash;
		struct folder_info key = {.name = parent}, *hit;

		/* children are folders, not bare subscriptions */
		if (list[i].only_subscribed)
			continue;
		snprintf(parent, sizeof(parent), "%s", list[i].name);
		slash = strrchr(parent, '/');
		if (slash == NULL)
			continue;
		*slash = '\0';
		if (folder_is_inbox(parent)) {
			list[0].has_children = true;
			continue;
		}
		hit = bsearch(&key, list + 1, count - 1, sizeof(*list),
			      folder_info_cmp);
		if (hit != NULL)
			hit->has_children = true;
	}
	folder_meta_free(&dirs);
	folder_meta_free(&subs);
	folder_meta_free(&special);
	*list_r = list;
	*count_r = count;
	return 0;
}

void folder_list_free(struct folder_info **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*list)[i].name);
	XFREE(*list);
}

enum folder_status folder_open(int root_fd, const char *name, int *fd_r,
			       char *error, size_t error_size)
{
	char disk[FOLDER_DISK_MAX];
	struct stat st;
	int fd;

	*fd_r = -1;
	if (!folder_check(name, error, error_size))
		return FOLDER_NOT_ALLOWED;
	if (folder_is_inbox(name)) {
		fd = openat(root_fd, ".", FOLDER_DIR_FLAGS);
		if (fd < 0)
			return folder_io(error, error_size, "open INBOX");
		*fd_r = fd;
		return FOLDER_OK;
	}
	if (folder_disk_name(name, disk, sizeof(disk)) < 0) {
		folder_err(error, error_size, "folder name too long");
		return FOLDER_NOT_ALLOWED;
	}
	fd = openat(root_fd, disk, FOLDER_DIR_FLAGS);
	if (fd < 0 && errno == ENOENT) {
		folder_err(error, error_size, "no such folder");
		return FOLDER_NOT_FOUND;
	}
	if (fd < 0)
		return folder_io(error, error_size, "open folder");
	if (fstatat(fd, "cur", &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISDIR(st.st_mode)) {
		close(fd);
		folder_err(error, error_size, "folder cannot be selected");
		return FOLDER_NOT_FOUND;
	}
	*fd_r = fd;
	return FOLDER_OK;
}

/* mkdir disk, its cur new tmp and "maildirfolder", fsync of the folder;
 * the caller fsyncs the root once. *made_r: the folder's cur/ was made. */
static int folder_make_maildir(int root_fd, const char *disk, bool *made_r)
{
	static const char *const subdirs[] = {"cur", "new", "tmp"};
	int fd, mf, saved;
	bool made = false;

	if (mkdirat(root_fd, disk, 0700) < 0 && errno != EEXIST)
		return -1;
	fd = openat(root_fd, disk, FOLDER_DIR_FLAGS);
	if (fd < 0)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		if (mkdirat(fd, subdirs[i], 0700) == 0) {
			made = true;
		} else if (errno != EEXIST) {
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
	}
	mf = openat(fd, "maildirfolder",
		    O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (mf >= 0)
		close(mf);
	if (mf < 0 || (made && fsync(fd) < 0)) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	*made_r = made;
	return 0;
}

static enum folder_status folder_create_locked(int root_fd, const char *name,
					       unsigned special, char *error,
					       size_t error_size)
{
	char disk[FOLDER_DISK_MAX];
	char part[FOLDER_MAX_NAME + 1];
	struct folder_meta dirs;
	const char *slash = name;
	bool made = false, any = false;
	int kind;

	if (folder_disk_name(name, disk, sizeof(disk)) < 0) {
		folder_err(error, error_size, "folder name too long");
		return FOLDER_NOT_ALLOWED;
	}
	kind = folder_dir_kind(root_fd, disk);
	if (kind < 0)
		return folder_io(error, error_size, "look up folder");
	if (kind == 2) {
		folder_err(error, error_size, "folder already exists");
		return FOLDER_EXISTS;
	}
	if (folder_scan(root_fd, &dirs) < 0)
		return folder_io(error, error_size, "read the folder list");
	kind = dirs.count >= FOLDER_MAX_PER_USER;
	folder_meta_free(&dirs);
	if (kind) {
		folder_err(error, error_size, "too many folders (at most %d)",
			   FOLDER_MAX_PER_USER);
		return FOLDER_LIMIT;
	}
	/* Parents first (RFC 3501 6.3.3), each a folder of its own. */
	do {
		slash = strchr(slash, '/');
		snprintf(part, sizeof(part), "%.*s",
			 slash == NULL ? (int)strlen(name)
				       : (int)(slash - name),
			 name);
		if (slash != NULL)
			slash++;
		if (folder_is_inbox(part))
			continue;
		if (folder_disk_name(part, disk, sizeof(disk)) < 0 ||
		    (slash != NULL && folder_dir_kind(root_fd, disk) != 0))
			continue;
		if (folder_make_maildir(root_fd, disk, &made) < 0)
			return folder_io(error, error_size, "create folder");
		any = true;
	} while (slash != NULL);
	if (any && fsync(root_fd) < 0)
		return folder_io(error, error_size, "fsync the Maildir");
	if (special != 0) {
		struct folder_meta sp;

		if (folder_special_read(root_fd, &sp) < 0)
			return folder_io(error, error_size, "read special-use");
		folder_meta_set(&sp, name, special);
		if (folder_special_write(root_fd, &sp) < 0) {
			folder_meta_free(&sp);
			return folder_io(error, error_size,
					 "write special-use");
		}
		folder_meta_free(&sp);
	}
	return FOLDER_OK;
}

enum folder_status folder_create(int root_fd, const char *name,
				 unsigned special, char *error,
				 size_t error_size)
{
	enum folder_status st;
	int lock;

	if (!folder_check(name, error, error_size))
		return FOLDER_NOT_ALLOWED;
	if (folder_is_inbox(name)) {
		folder_err(error, error_size, "INBOX always exists");
		return FOLDER_EXISTS;
	}
	lock = folder_lock(root_fd);
	if (lock < 0)
		return folder_io(error, error_size, "lock the folder list");
	st = folder_create_locked(root_fd, name, special, error, error_size);
	close(lock);
	return st;
}

/* Removes a folder directory: its files, and the files of its cur new tmp
 * (no deeper: a Maildir has nothing deeper). */
static int folder_remove_tree(int parent_fd, const char *name, int depth)
{
	struct dirent *de;
	DIR *dir;
	int fd = openat(parent_fd, name, FOLDER_DIR_FLAGS);

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			continue;
		if ((errno == EISDIR || errno == EPERM) && depth < 1)
			folder_remove_tree(fd, de->d_name, depth + 1);
	}
	closedir(dir);
	return unlinkat(parent_fd, name, AT_REMOVEDIR);
}

/* DELETE of a folder with children: its messages and index go, the
 * directory stays without cur/ (so it lists as \Noselect). */
static int folder_empty_maildir(int root_fd, const char *disk)
{
	static const char *const subdirs[] = {"cur", "new", "tmp"};
	struct dirent *de;
	DIR *dir;
	int fd = openat(root_fd, disk, FOLDER_DIR_FLAGS), dup_fd, r = 0;

	if (fd < 0)
		return -1;
	/* cur/ first: from then on the folder is not selectable. */
	for (size_t i = 0; i < 3; i++) {
		if (folder_remove_tree(fd, subdirs[i], 0) < 0 &&
		    errno != ENOENT)
			r = -1;
	}
	dup_fd = dup(fd);
	dir = dup_fd < 0 ? NULL : fdopendir(dup_fd);
	if (dir == NULL) {
		if (dup_fd >= 0)
			close(dup_fd);
		close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_type != DT_DIR)
			unlinkat(fd, de->d_name, 0);
	}
	closedir(dir);
	if (fsync(fd) < 0)
		r = -1;
	close(fd);
	return r;
}

enum folder_status folder_delete(int root_fd, const char *name, char *error,
				 size_t error_size)
{
	char disk[FOLDER_DISK_MAX], trash[FOLDER_DISK_MAX + 64];
	struct folder_meta dirs, sp;
	static unsigned long counter;
	enum folder_status st = FOLDER_OK;
	bool children = false;
	size_t nlen = strlen(name);
	int lock, kind;

	if (!folder_check(name, error, error_size))
		return FOLDER_NOT_ALLOWED;
	if (folder_is_inbox(name)) {
		folder_err(error, error_size, "INBOX cannot be deleted");
		return FOLDER_NOT_ALLOWED;
	}
	if (folder_disk_name(name, disk, sizeof(disk)) < 0) {
		folder_err(error, error_size, "no such folder");
		return FOLDER_NOT_FOUND;
	}
	lock = folder_lock(root_fd);
	if (lock < 0)
		return folder_io(error, error_size, "lock the folder list");
	kind = folder_dir_kind(root_fd, disk);
	if (kind <= 0 || folder_scan(root_fd, &dirs) < 0) {
		if (kind == 0)
			folder_err(error, error_size, "no such folder");
		st = kind == 0 ? FOLDER_NOT_FOUND
			       : folder_io(error, error_size, "look up folder");
		goto out;
	}
	for (size_t i = 0; i < dirs.count; i++) {
		if (strncmp(dirs.names[i], name, nlen) == 0 &&
		    dirs.names[i][nlen] == '/')
			children = true;
	}
	folder_meta_free(&dirs);
	if (children && kind == 1) {
		folder_err(error, error_size,
			   "folder has children and no messages");
		st = FOLDER_HAS_CHILDREN;
		goto out;
	}
	if (children) {
		if (folder_empty_maildir(root_fd, disk) < 0)
			st = folder_io(error, error_size, "empty folder");
		goto out;
	}
	snprintf(trash, sizeof(trash), FOLDER_TRASH_PREFIX "%ld.%lu.%lld",
		 (long)getpid(), ++counter, (long long)time(NULL));
	if (renameat(root_fd, disk, root_fd, trash) < 0 || fsync(root_fd) < 0) {
		st = folder_io(error, error_size, "delete folder");
		goto out;
	}
	folder_remove_tree(root_fd, trash, 0);
	if (folder_special_read(root_fd, &sp) == 0) {
		ssize_t i = folder_meta_find(&sp, name);

		if (i >= 0) {
			folder_meta_del(&sp, (size_t)i);
			folder_special_write(root_fd, &sp);
		}
		folder_meta_free(&sp);
	}
out:
	close(lock);
	return st;
}

/* Renames name and its children in m ("a" -> "b" also moves "a/x"). */
static void folder_meta_rename(struct folder_meta *m, const char *from,
			       const char *to)
{
	size_t flen = strlen(from);

	for (size_t i = 0; i < m->count; i++) {
		char renamed[FOLDER_MAX_NAME * 2 + 2];
		const char *rest = m->names[i] + flen;

		if (strncmp(m->names[i], from, flen) != 0 ||
		    (*rest != '\0' && *rest != '/'))
			continue;
		snprintf(renamed, sizeof(renamed), "%s%s", to, rest);
		if (strlen(renamed) > FOLDER_MAX_NAME)
			continue;
		free(m->names[i]);
		m->names[i] = xstrdup(renamed);
	}
}

/*
 * Moves every message of new/ and cur/ (RENAME INBOX). A POP3 session may
 * have listed them (INV-P2): each is linked into the target, the target
 * fsynced, and only then its INBOX name moved into the POP3 hold folder
 * (doc/internals/storage.md), which the POP3 lock's holder empties.
 */
static int folder_move_messages(int from_fd, int to_fd)
{
	static const char *const subdirs[] = {"new", "cur"};
	int hold = maildir_hold_open(from_fd, true);
	int r = hold < 0 ? -1 : 0;

	for (size_t i = 0; r == 0 && i < 2; i++) {
		int src = openat(from_fd, subdirs[i], FOLDER_DIR_FLAGS);
		int dst = openat(to_fd, subdirs[i], FOLDER_DIR_FLAGS);

		if (src < 0 || dst < 0 ||
		    folder_move_linked(src, dst, hold) < 0)
			r = -1;
		if (src >= 0)
			close(src);
		if (dst >= 0)
			close(dst);
	}
	if (hold >= 0) {
		close(hold);
		mailbox_hold_release(from_fd);
	}
	return r;
}

/* One folder of folder_move_messages(): only what was linked, and made
 * durable in the target, leaves the source, so a crash leaves a message
 * in both, never in neither. */
static int folder_move_linked(int src, int dst, int hold)
{
	int dup_fd = dup(src), r = 0;
	DIR *dir = dup_fd < 0 ? NULL : fdopendir(dup_fd);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	bool synced;

	if (dir == NULL) {
		if (dup_fd >= 0)
			close(dup_fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		/* EEXIST too: that name in the target is another file. */
		if (linkat(src, de->d_name, dst, de->d_name, 0) < 0) {
			r = -1;
			continue;
		}
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(dir);
	synced = n == 0 || fsync(dst) == 0;
	for (size_t k = 0; k < n; k++) {
		if (!synced || (maildir_hold_move(src, names[k], hold) < 0 &&
				errno != ENOENT))
			r = -1;
		free(names[k]);
	}
	free(names);
	if (fsync(src) < 0)
		r = -1;
	return r;
}

static enum folder_status folder_rename_inbox(int root_fd, const char *to,
					      char *error, size_t error_size)
{
	enum folder_status st;
	int to_fd;

	st = folder_create_locked(root_fd, to, 0, error, error_size);
	if (st != FOLDER_OK)
		return st;
	st = folder_open(root_fd, to, &to_fd, error, error_size);
	if (st != FOLDER_OK)
		return st;
	if (folder_move_messages(root_fd, to_fd) < 0)
		st = folder_io(error, error_size, "move INBOX messages");
	close(to_fd);
	return st;
}

enum folder_status folder_rename(int root_fd, const char *from, const char *to,
				 char *error, size_t error_size)
{
	char fdisk[FOLDER_DISK_MAX], tdisk[FOLDER_DISK_MAX];
	struct folder_meta dirs = {0}, meta;
	enum folder_status st = FOLDER_OK;
	size_t flen = strlen(from);
	int lock, kind;

	if (!folder_check(from, error, error_size) ||
	    !folder_check(to, error, error_size))
		return FOLDER_NOT_ALLOWED;
	if (folder_is_inbox(to)) {
		folder_err(error, error_size, "INBOX already exists");
		return FOLDER_EXISTS;
	}
	if (!folder_is_inbox(from) && strncmp(to, from, flen) == 0 &&
	    to[flen] == '/') {
		folder_err(error, error_size, "cannot rename into itself");
		return FOLDER_NOT_ALLOWED;
	}
	if (folder_disk_name(to, tdisk, sizeof(tdisk)) < 0) {
		folder_err(error, error_size, "folder name too long");
		return FOLDER_NOT_ALLOWED;
	}
	lock = folder_lock(root_fd);
	if (lock < 0)
		return folder_io(error, error_size, "lock the folder list");
	kind = folder_dir_kind(root_fd, tdisk);
	if (kind != 0) {
		st = kind < 0 ? folder_io(error, error_size, "look up folder")
			      : FOLDER_EXISTS;
		if (kind > 0)
			folder_err(error, error_size, "target exists");
		goto out;
	}
	if (folder_is_inbox(from)) {
		st = folder_rename_inbox(root_fd, to, error, error_size);
		goto out;
	}
	if (folder_disk_name(from, fdisk, sizeof(fdisk)) < 0 ||
	    folder_dir_kind(root_fd, fdisk) <= 0) {
		folder_err(error, error_size, "no such folder");
		st = FOLDER_NOT_FOUND;
		goto out;
	}
	if (folder_scan(root_fd, &dirs) < 0) {
		st = folder_io(error, error_size, "read the folder list");
		goto out;
	}
	/* Check every new name first, then rename: the folder and each
	 * child is one rename(2) of its directory. */
	for (int pass = 0; pass < 2 && st == FOLDER_OK; pass++) {
		for (size_t i = 0; i < dirs.count; i++) {
			char newname[FOLDER_MAX_NAME * 2 + 2];
			char od[FOLDER_DISK_MAX], nd[FOLDER_DISK_MAX];
			const char *rest = dirs.names[i] + flen;
			const char *why;

			if (strncmp(dirs.names[i], from, flen) != 0 ||
			    (*rest != '\0' && *rest != '/'))
				continue;
			snprintf(newname, sizeof(newname), "%s%s", to, rest);
			if (!folder_name_valid(newname, &why) ||
			    folder_disk_name(newname, nd, sizeof(nd)) < 0 ||
			    folder_disk_name(dirs.names[i], od, sizeof(od)) <
				0) {
				folder_err(error, error_size,
					   "a child's new name is invalid");
				st = FOLDER_NOT_ALLOWED;
				break;
			}
			if (pass == 1 &&
			    renameat2(root_fd, od, root_fd, nd,
				      RENAME_NOREPLACE) < 0 &&
			    (errno != EINVAL ||
			     renameat(root_fd, od, root_fd, nd) < 0)) {
				st = folder_io(error, error_size,
					       "rename folder");
				break;
			}
		}
	}
	if (fsync(root_fd) < 0 && st == FOLDER_OK)
		st = folder_io(error, error_size, "fsync the Maildir");
	if (st != FOLDER_OK)
		goto out;
	if (folder_special_read(root_fd, &meta) == 0) {
		folder_meta_rename(&meta, from, to);
		folder_special_write(root_fd, &meta);
		folder_meta_free(&meta);
	}
	if (folder_subs_read(root_fd, &meta) == 0) {
		folder_meta_rename(&meta, from, to);
		folder_subs_write(root_fd, &meta);
		folder_meta_free(&meta);
	}
out:
	folder_meta_free(&dirs);
	close(lock);
	return st;
}

static enum folder_status folder_subscribe_locked(int root_fd, const char *name,
						  bool on, char *error,
						  size_t error_size)
{
	struct folder_meta subs;
	ssize_t i;
	bool changed = false;

	if (folder_is_inbox(name))
		name = "INBOX";
	if (folder_subs_read(root_fd, &subs) < 0)
		return folder_io(error, error_size, "read subscriptions");
	i = folder_meta_find(&subs, name);
	if (on && i < 0) {
		if (subs.count >= FOLDER_MAX_PER_USER) {
			folder_meta_free(&subs);
			folder_err(error, error_size, "too many subscriptions");
			return FOLDER_LIMIT;
		}
		folder_meta_set(&subs, name, 1);
		changed = true;
	} else if (!on && i >= 0) {
		folder_meta_del(&subs, (size_t)i);
		changed = true;
	}
	if (changed && folder_subs_write(root_fd, &subs) < 0) {
		folder_meta_free(&subs);
		return folder_io(error, error_size, "write subscriptions");
	}
	folder_meta_free(&subs);
	return FOLDER_OK;
}

enum folder_status folder_subscribe(int root_fd, const char *name, bool on,
				    char *error, size_t error_size)
{
	enum folder_status st;
	int lock;

	if (!folder_check(name, error, error_size))
		return FOLDER_NOT_ALLOWED;
	lock = folder_lock(root_fd);
	if (lock < 0)
		return folder_io(error, error_size, "lock the folder list");
	st = folder_subscribe_locked(root_fd, name, on, error, error_size);
	close(lock);
	return st;
}

/*
 * The first login makes five folders: each Maildir made (and fsynced),
 * then one fsync of the root, one write of the special-use file and one
 * of the subscriptions, where making them one by one took about thirty
 * fsyncs and showed as a slow first login.
 */
enum folder_status folder_ensure_defaults(int root_fd, char *error,
					  size_t error_size)
{
	struct folder_meta sp, subs;
	enum folder_status st = FOLDER_OK;
	bool made_any = false, sp_changed = false, subs_changed = false;
	unsigned have = 0;
	int lock = folder_lock(root_fd);

	if (lock < 0)
		return folder_io(error, error_size, "lock the folder list");
	if (folder_special_read(root_fd, &sp) < 0) {
		close(lock);
		return folder_io(error, error_size, "read special-use");
	}
	if (folder_subs_read(root_fd, &subs) < 0) {
		folder_meta_free(&sp);
		close(lock);
		return folder_io(error, error_size, "read subscriptions");
	}
	for (size_t i = 0; i < sp.count; i++)
		have |= sp.bits[i];
	for (size_t i = 0;
	     i < sizeof(folder_defaults) / sizeof(*folder_defaults); i++) {
		const char *name = folder_defaults[i].name;
		char disk[FOLDER_DISK_MAX];
		bool made = false;

		/* Another folder with the attribute (a renamed "Sent") is
		 * the user's choice: nothing to do. */
		if ((have & folder_defaults[i].bit) != 0)
			continue;
		folder_disk_name(name, disk, sizeof(disk));
		/* The user's own "Sent" only gets the attribute. */
		if (folder_dir_kind(root_fd, disk) != 2) {
			if (folder_make_maildir(root_fd, disk, &made) < 0) {
				st = folder_io(error, error_size,
					       "create folder");
				break;
			}
			made_any = true;
			if (folder_meta_find(&subs, name) < 0) {
				folder_meta_set(&subs, name, 1);
				subs_changed = true;
			}
		}
		folder_meta_set(&sp, name, folder_defaults[i].bit);
		sp_changed = true;
	}
	if (st == FOLDER_OK && made_any && fsync(root_fd) < 0)
		st = folder_io(error, error_size, "fsync the Maildir");
	if (st == FOLDER_OK && sp_changed &&
	    folder_special_write(root_fd, &sp) < 0)
		st = folder_io(error, error_size, "write special-use");
	if (st == FOLDER_OK && subs_changed &&
	    folder_subs_write(root_fd, &subs) < 0)
		st = folder_io(error, error_size, "write subscriptions");
	folder_meta_free(&sp);
	folder_meta_free(&subs);
	close(lock);
	return st;
}
