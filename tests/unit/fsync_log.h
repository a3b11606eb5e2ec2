/*
 * fsync() as the storage tests see it: linked with -Wl,--wrap=fsync
 * (tests/unit/meson.build) and fsync_log.c, a test records, while
 * fsync_log.on, the path of every descriptor synced, and can make the
 * fsync of chosen paths fail (INV-D1, INV-D3).
 */
#ifndef POSTD_TEST_FSYNC_LOG_H
#define POSTD_TEST_FSYNC_LOG_H

#include <stdbool.h>
#include <stddef.h>

#define FSYNC_LOG_MAX 64

struct fsync_log {
	bool on;
	const char *fail_suffix; /* a path ending so fails with EIO */
	size_t count;
	char paths[FSYNC_LOG_MAX][256];
};
extern struct fsync_log fsync_log;

/* Forgets what was recorded and records from now on; the fsync of a path
 * ending in fail_suffix (NULL: none) fails with EIO. */
void fsync_log_start(const char *fail_suffix);
/* Whether root/rel (rel "" for root itself) was fsynced; a rel ending in
 * '/' matches anything below it. */
bool fsync_logged(const char *root, const char *rel);

#endif
