/*
 * A user's Maildir folders and one delivery at a time into them (postctl
 * deliver, the first-start welcome, local mail from the queue runner);
 * spool.c delivers SMTP mail in batches, and mailbox.c reads the folders
 * as POP3 sees them.
 *
 * Every name is opened beneath a directory descriptor with O_NOFOLLOW
 * (INV-U1); the only names that come from outside are the user's domain
 * and local part, and those are checked by username_is_canonical() first.
 */
#include "storage/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <sodium.h>

#include "lib/log.h"
#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/username.h"
#include "lib/xmalloc.h"
#include "storage/msg_file.h"

#define MAILDIR_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

struct maildir_delivery {
	int tmp_fd; /* tmp/ */
	int new_fd; /* new/ */
	char name[MAILDIR_MAX_NAME + 1];
	struct msg_file file; /* the message in tmp/ */
};

static const char *maildir_error(const char *what, int err);
static bool maildir_safe_component(const char *s, size_t len);
static int maildir_open_sub(int dir_fd, const char *name, bool create,
			    bool *made_r, const char **error_r);
static int maildir_sync_made(int dir_fd, bool made, int fd,
			     const char **error_r);
static size_t maildir_host(char *out, size_t out_size);
static void maildir_delivery_free(struct maildir_delivery **d, bool unlink_tmp);
static bool maildir_base_is(const char *name, const char *base,
			    size_t base_len);

/* Error strings live in a per-thread buffer until the next call. */
static __thread char maildir_errbuf[256];

static const char *maildir_error(const char *what, int err)
{
	char sbuf[128];
	const char *s = strerror_r(err, sbuf, sizeof(sbuf));

	snprintf(maildir_errbuf, sizeof(maildir_errbuf), "%s: %s", what, s);
	return maildir_errbuf;
}

/* Belt and braces after username_is_canonical(): a single path component
 * that cannot be "." or "..". */
static bool maildir_safe_component(const char *s, size_t len)
{
	if (len == 0 || len > MAILDIR_MAX_NAME || s[0] == '.')
		return false;
	return memchr(s, '/', len) == NULL && memchr(s, '\0', len) == NULL;
}

/* *made_r is set when the folder was missing (made here, or by a
 * concurrent delivery that may not have synced its parent yet). */
static int maildir_open_sub(int dir_fd, const char *name, bool create,
			    bool *made_r, const char **error_r)
{
	/* Opened first: the folder exists on every login but the first, and
	 * a mkdir that fails with EEXIST costs a system call for nothing. */
	int fd = openat(dir_fd, name, MAILDIR_DIR_FLAGS);

	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dir_fd, name, 0700) < 0 && errno != EEXIST) {
			*error_r = maildir_error("mkdir", errno);
			return -1;
		}
		*made_r = true;
		fd = openat(dir_fd, name, MAILDIR_DIR_FLAGS);
	}
	if (fd < 0)
		*error_r = maildir_error("open directory", errno);
	return fd;
}

/*
 * INV-D1: a folder made for a new Maildir is an entry of its parent, and
 * that entry is only durable once the parent is fsynced; without it a
 * power loss can take the new Maildir, and the acknowledged message in
 * it, away. On failure fd (the folder just opened, or -1) is closed.
 */
static int maildir_sync_made(int dir_fd, bool made, int fd,
			     const char **error_r)
{
	int saved;

	if (!made || fsync(dir_fd) == 0)
		return 0;
	saved = errno;
	*error_r = maildir_error("fsync the parent of a new folder", saved);
	if (fd >= 0)
		close(fd);
	errno = saved;
	return -1;
}

int maildir_open(int root_fd, const char *user, bool create,
		 const char **error_r)
{
	static const char *const subdirs[] = {"new", "cur", "tmp"};
	char local[MAILBOX_MAX_LOCALPART + 1];
	const char *domain;
	size_t local_len;
	int domain_fd, fd, saved;
	bool made = false;

	/* INV-U1: only checked names become path components. */
	if (!username_is_canonical(user)) {
		*error_r = "invalid user name";
		errno = EINVAL;
		return -1;
	}
	domain = username_domain(user, &local_len);
	if (local_len > MAILBOX_MAX_LOCALPART ||
	    !maildir_safe_component(user, local_len) ||
	    !maildir_safe_component(domain, strlen(domain))) {
		*error_r = "invalid user name";
		errno = EINVAL;
		return -1;
	}
	memcpy(local, user, local_len);
	local[local_len] = '\0';

	/* Each level's parent is synced when a folder was made in it:
	 * DATA_DIR/mail for DOMAIN, DOMAIN for LOCAL, LOCAL for new cur
	 * tmp (new/ itself is synced by every delivery). */
	domain_fd = maildir_open_sub(root_fd, domain, create, &made, error_r);
	if (domain_fd < 0 ||
	    maildir_sync_made(root_fd, made, domain_fd, error_r) < 0)
		return -1;
	made = false;
	fd = maildir_open_sub(domain_fd, local, create, &made, error_r);
	if (fd >= 0 && maildir_sync_made(domain_fd, made, fd, error_r) < 0)
		fd = -1;
	saved = errno;
	close(domain_fd);
	errno = saved;
	if (fd < 0)
		return -1;
	made = false;
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		struct stat st;
		int sub;

		/* The usual case, all three present, takes one stat each. */
		if (fstatat(fd, subdirs[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			continue;
		sub = maildir_open_sub(fd, subdirs[i], create, &made, error_r);
		if (sub < 0) {
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		close(sub);
	}
	if (maildir_sync_made(fd, made, fd, error_r) < 0)
		return -1;
	return fd;
}

/* gethostname() with the bytes that would break a Maildir name escaped
 * as \ooo ('/' and ':' per the Maildir specification; ',' because it
 * starts our ",S=" fields; anything unprintable so the UIDL stays
 * printable). */
static size_t maildir_host(char *out, size_t out_size)
{
	char host[256];
	size_t n = 0;

	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (const char *p = host; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		bool plain = c > 0x20 && c < 0x7f && c != '/' && c != ':' &&
			     c != ',' && c != '\\';

		if (n + (plain ? 1 : 4) >= out_size || n >= MAILDIR_MAX_HOST)
			break;
		if (plain) {
			out[n++] = (char)c;
		} else {
			snprintf(out + n, out_size - n, "\\%03o", c);
			n += 4;
		}
	}
	out[n] = '\0';
	return n;
}

/* SECS.MUSECPPIDQCOUNTERRRANDOM.HOST (INV-D3): time, pid and a
 * per-process counter make it unique on this host; the random part
 * guards against a recycled pid after a clock step. */
int maildir_unique_name(char *out, size_t out_size)
{
	static unsigned long counter;
	unsigned char rnd[8];
	char hex[sizeof(rnd) * 2 + 1];
	char host[MAILDIR_MAX_HOST + 8];
	struct timeval tv;
	unsigned long q;
	int n;

	if (sodium_init() < 0) {
		errno = EIO;
		return -1;
	}
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	gettimeofday(&tv, NULL);
	q = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
	maildir_host(host, sizeof(host));
	n = snprintf(out, out_size, "%lld.M%ldP%ldQ%luR%s.%s",
		     (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(), q,
		     hex, host);
	if (n < 0 || (size_t)n >= out_size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

struct maildir_delivery *maildir_delivery_begin(int maildir_fd,
						const char **error_r)
{
	struct maildir_delivery *d = xmalloc(sizeof(*d));
	int saved;

	d->new_fd = -1;
	msg_file_init(&d->file, -1);
	d->name[0] = '\0';
	d->tmp_fd = openat(maildir_fd, "tmp", MAILDIR_DIR_FLAGS);
	if (d->tmp_fd < 0) {
		*error_r = maildir_error("open tmp/", errno);
		goto fail;
	}
	d->new_fd = openat(maildir_fd, "new", MAILDIR_DIR_FLAGS);
	if (d->new_fd < 0) {
		*error_r = maildir_error("open new/", errno);
		goto fail;
	}
	if (maildir_unique_name(d->name, sizeof(d->name)) < 0) {
		*error_r = maildir_error("make a unique name", errno);
		goto fail;
	}
	d->file.fd =
	    openat(d->tmp_fd, d->name,
		   O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (d->file.fd < 0) {
		*error_r = maildir_error("create tmp file", errno);
		d->name[0] = '\0';
		goto fail;
	}
	return d;
fail:
	saved = errno;
	maildir_delivery_free(&d, false);
	errno = saved;
	return NULL;
}

int maildir_delivery_write(struct maildir_delivery *d, const void *data,
			   size_t len, const char **error_r)
{
	if (msg_file_write(&d->file, data, len) < 0) {
		*error_r = maildir_error("write", d->file.saved_errno);
		errno = d->file.saved_errno;
		return -1;
	}
	return 0;
}

int maildir_delivery_commit(struct maildir_delivery **dp, char *name_r,
			    size_t name_size, int *errno_r,
			    const char **error_r)
{
	struct maildir_delivery *d = *dp;
	char final[MAILDIR_MAX_NAME + 1];
	int n, r, fd;

	*errno_r = 0;
	if (msg_file_finish(&d->file) < 0)
		goto write_fail;
	/* INV-D1: fsync, close, each checked; a failed fsync is never
	 * retried, the file is thrown away. */
	if (fsync(d->file.fd) < 0) {
		*errno_r = errno;
		*error_r = maildir_error("fsync", errno);
		goto fail;
	}
	fd = d->file.fd;
	d->file.fd = -1;
	if (close(fd) < 0) {
		*errno_r = errno;
		*error_r = maildir_error("close", errno);
		goto fail;
	}
	n = snprintf(final, sizeof(final), "%s,S=%" PRIu64 ",W=%" PRIu64,
		     d->name, d->file.stored, d->file.wire);
	if (n < 0 || (size_t)n >= sizeof(final) || (size_t)n >= name_size) {
		*errno_r = ENAMETOOLONG;
		*error_r = maildir_error("final name", ENAMETOOLONG);
		goto fail;
	}
	/* INV-D3: never replace an existing message. */
	r = renameat2(d->tmp_fd, d->name, d->new_fd, final, RENAME_NOREPLACE);
	if (r < 0 && (errno == EINVAL || errno == ENOSYS))
		r = renameat(d->tmp_fd, d->name, d->new_fd, final);
	if (r < 0) {
		*errno_r = errno;
		*error_r = maildir_error("rename into new/", errno);
		goto fail;
	}
	if (fsync(d->new_fd) < 0) {
		/* Not durable, so not accepted: the sender will retry, and
		 * a copy left here would become a duplicate. */
		*errno_r = errno;
		*error_r = maildir_error("fsync new/", errno);
		unlinkat(d->new_fd, final, 0);
		d->name[0] = '\0';
		goto fail;
	}
	memcpy(name_r, final, (size_t)n + 1);
	d->name[0] = '\0';
	maildir_delivery_free(dp, false);
	return 0;
write_fail:
	*errno_r = d->file.saved_errno;
	*error_r = maildir_error("write", d->file.saved_errno);
fail:
	maildir_delivery_free(dp, true);
	errno = *errno_r;
	return -1;
}

void maildir_delivery_abort(struct maildir_delivery **d)
{
	if (*d != NULL)
		maildir_delivery_free(d, true);
}

static void maildir_delivery_free(struct maildir_delivery **dp, bool unlink_tmp)
{
	struct maildir_delivery *d = *dp;

	if (d->file.fd >= 0)
		close(d->file.fd);
	if (unlink_tmp && d->name[0] != '\0' && d->tmp_fd >= 0)
		unlinkat(d->tmp_fd, d->name, 0);
	if (d->tmp_fd >= 0)
		close(d->tmp_fd);
	if (d->new_fd >= 0)
		close(d->new_fd);
	XFREE(*dp);
}

int maildir_reap_tmp(int maildir_fd, time_t now)
{
	struct dirent *de;
	DIR *dir;
	int fd, removed = 0;

	fd = openat(maildir_fd, "tmp", MAILDIR_DIR_FLAGS);
	if (fd < 0)
		return 0;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return 0;
	}
	while ((de = readdir(dir)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode))
			continue;
		/* INV-D3: a delivery never takes 36 hours. */
		if (st.st_mtime < now - MAILDIR_TMP_MAX_AGE &&
		    unlinkat(fd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	if (removed > 0)
		log_info("maildir: removed %d stale tmp/ files", removed);
	return removed;
}

int maildir_hold_open(int maildir_fd, bool create)
{
	const char *error;
	bool made = false;
	int fd = maildir_open_sub(maildir_fd, MAILDIR_HOLD_DIR, create, &made,
				  &error);

	/* The folder must survive a crash as an entry of the Maildir, or
	 * a file moved into it could vanish with it unaccounted. */
	if (fd >= 0 && maildir_sync_made(maildir_fd, made, fd, &error) < 0)
		return -1;
	return fd;
}

int maildir_hold_move(int from_fd, const char *name, int hold_fd)
{
	/* A name is unique in a Maildir, so a held file of the same name
	 * is the same message held before: replacing it loses nothing. */
	return renameat(from_fd, name, hold_fd, name);
}

/* name is base, alone or followed by ":flags". */
static bool maildir_base_is(const char *name, const char *base, size_t base_len)
{
	return strncmp(name, base, base_len) == 0 &&
	       (name[base_len] == ':' || name[base_len] == '\0');
}

int maildir_hold_find(int maildir_fd, const char *base, size_t base_len)
{
	struct dirent *de;
	DIR *dir;
	int fd = maildir_hold_open(maildir_fd, false), found = -1, saved;

	if (fd < 0)
		return -1;
	dir = fdopendir(fd);
	if (dir == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	errno = ENOENT;
	while (found < 0 && (de = readdir(dir)) != NULL) {
		if (de->d_name[0] != '.' &&
		    maildir_base_is(de->d_name, base, base_len))
			found = openat(fd, de->d_name,
				       O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	saved = found >= 0 ? 0 : errno != 0 ? errno : ENOENT;
	closedir(dir);
	errno = saved;
	return found;
}

size_t maildir_hold_purge(int maildir_fd)
{
	struct dirent *de;
	DIR *dir;
	size_t removed = 0;
	int fd = maildir_hold_open(maildir_fd, false);

	if (fd < 0)
		return 0;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return 0;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			removed++;
		else if (errno != ENOENT)
			log_warn("maildir: cannot remove a held message: %s",
				 strerror(errno));
	}
	/* Not fsynced: after a crash a file still held is removed by the
	 * next holder of the lock, and no reader ever sees it. */
	closedir(dir);
	return removed;
}

bool maildir_name_wire_size(const char *name, uint64_t *wire_size_r)
{
	const char *p = name;

	/* Fields follow the unique part, each after a ','; flags after
	 * ':' are not part of the base name. */
	while ((p = strpbrk(p, ",:")) != NULL && *p == ',') {
		const char *q = ++p;
		uint64_t v;

		if (q[0] == 'W' && q[1] == '=') {
			q += 2;
			if (parse_uint64(&q, UINT64_MAX, &v) == 0 &&
			    (*q == '\0' || *q == ',' || *q == ':')) {
				*wire_size_r = v;
				return true;
			}
		}
	}
	return false;
}
