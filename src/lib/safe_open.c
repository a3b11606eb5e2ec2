/*
 * safe_open_regular(): see safe_open.h. The name is checked with
 * fstatat(AT_SYMLINK_NOFOLLOW) before it is opened, so a FIFO or a device
 * is refused without ever being opened (an open of a device can have side
 * effects), and checked again on the descriptor, so a swap between the two
 * is noticed (same device and inode, or ESTALE).
 */
#include "lib/safe_open.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

static int safe_open_check(const struct stat *st,
			   const struct safe_open_rules *rules,
			   const char **cause_r);

static int safe_open_check(const struct stat *st,
			   const struct safe_open_rules *rules,
			   const char **cause_r)
{
	if (S_ISLNK(st->st_mode)) {
		*cause_r = "is a symbolic link";
		return ELOOP;
	}
	if (S_ISFIFO(st->st_mode)) {
		*cause_r = "is a FIFO, not a regular file";
		return ENODEV;
	}
	if (!S_ISREG(st->st_mode)) {
		*cause_r = "is not a regular file";
		return ENODEV;
	}
	if (rules->single_link && st->st_nlink != 1) {
		*cause_r = "has another hard link";
		return EMLINK;
	}
	if (st->st_size < 0 || st->st_size > rules->max_size) {
		*cause_r = "is too big";
		return EFBIG;
	}
	return 0;
}

int safe_open_regular(int dir_fd, const char *name, int flags,
		      const struct safe_open_rules *rules, struct stat *st_r,
		      const char **cause_r)
{
	struct stat before, after;
	int fd, err;

	if (fstatat(dir_fd, name, &before, AT_SYMLINK_NOFOLLOW) < 0) {
		*cause_r = errno == ENOENT ? "does not exist" : "cannot stat";
		return -1;
	}
	err = safe_open_check(&before, rules, cause_r);
	if (err != 0) {
		errno = err;
		return -1;
	}
	fd = openat(dir_fd, name,
		    (flags & O_ACCMODE) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
			O_CLOEXEC);
	if (fd < 0) {
		*cause_r =
		    errno == ELOOP ? "is a symbolic link" : "cannot open";
		return -1;
	}
	if (fstat(fd, &after) < 0) {
		err = errno;
		*cause_r = "cannot stat";
		goto fail;
	}
	err = safe_open_check(&after, rules, cause_r);
	if (err == 0 &&
	    (after.st_dev != before.st_dev || after.st_ino != before.st_ino)) {
		*cause_r = "was replaced while it was opened";
		err = ESTALE;
	}
	if (err != 0)
		goto fail;
	if (st_r != NULL)
		*st_r = after;
	return fd;
fail:
	close(fd);
	errno = err;
	return -1;
}

int safe_sync_parent(const char *path)
{
	char parent[4096];
	const char *slash = strrchr(path, '/');
	size_t len;
	int fd, r, saved;

	if (slash == NULL) {
		len = 1;
		parent[0] = '.';
	} else {
		len = slash == path ? 1 : (size_t)(slash - path);
		if (len >= sizeof(parent)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(parent, path, len);
	}
	parent[len] = '\0';
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

bool safe_open_refused(int err)
{
	return err == ELOOP || err == ENODEV || err == EMLINK || err == EFBIG ||
	       err == ESTALE;
}
