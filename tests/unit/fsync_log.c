#include "fsync_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct fsync_log fsync_log;

int __real_fsync(int fd);
int __wrap_fsync(int fd);

static bool fsync_log_should_fail(const char *path)
{
	size_t len = strlen(path), slen;

	if (fsync_log.fail_suffix == NULL || len == 0)
		return false;
	slen = strlen(fsync_log.fail_suffix);
	return len >= slen &&
	       strcmp(path + len - slen, fsync_log.fail_suffix) == 0;
}

int __wrap_fsync(int fd)
{
	char link[64], path[256];
	ssize_t n;

	if (!fsync_log.on)
		return __real_fsync(fd);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	path[n < 0 ? 0 : n] = '\0';
	if (fsync_log.count < FSYNC_LOG_MAX)
		snprintf(fsync_log.paths[fsync_log.count++], sizeof(path), "%s",
			 path);
	if (fsync_log_should_fail(path)) {
		errno = EIO;
		return -1;
	}
	return __real_fsync(fd);
}

void fsync_log_start(const char *fail_suffix)
{
	memset(&fsync_log, 0, sizeof(fsync_log));
	fsync_log.fail_suffix = fail_suffix;
	fsync_log.on = true;
}

bool fsync_logged(const char *root, const char *rel)
{
	char want[256];
	size_t len;

	snprintf(want, sizeof(want), "%s%s%s", root, rel[0] ? "/" : "", rel);
	len = strlen(want);
	for (size_t i = 0; i < fsync_log.count; i++) {
		if (rel[0] != '\0' && want[len - 1] == '/'
			? strncmp(fsync_log.paths[i], want, len) == 0
			: strcmp(fsync_log.paths[i], want) == 0)
			return true;
	}
	return false;
}
