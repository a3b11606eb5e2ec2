/*
 * Opening a file that someone less trusted can plant: what a root
 * process reads or writes beneath a folder the run user owns (the queue,
 * the Maildirs). The name is looked at without following it, opened with
 * O_NOFOLLOW | O_NONBLOCK (a FIFO or a device never blocks the open), and
 * only a regular file of bounded size, optionally with no other hard link
 * (a link to a root-only file), is handed back.
 */
#ifndef POSTD_SAFE_OPEN_H
#define POSTD_SAFE_OPEN_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

struct safe_open_rules {
	off_t max_size;	  /* larger files are refused (EFBIG) */
	bool single_link; /* st_nlink must be 1 (else EMLINK) */
};

/*
 * Opens name beneath dir_fd with flags | O_NOFOLLOW | O_NONBLOCK |
 * O_NOCTTY | O_CLOEXEC (flags: O_RDONLY or O_RDWR; never O_CREAT).
 * Returns the descriptor and fills *st_r (may be NULL), or -1 with errno:
 * ENOENT (missing), ELOOP (a symbolic link), ENODEV (not a regular file:
 * FIFO, socket, device, folder), EMLINK (another hard link exists), EFBIG
 * (bigger than max_size), ESTALE (replaced while it was opened), or what
 * openat/fstat said. *cause_r says which in words, for the log line.
 */
int safe_open_regular(int dir_fd, const char *name, int flags,
		      const struct safe_open_rules *rules, struct stat *st_r,
		      const char **cause_r);

/* True for the errno values that mean "refused as planted", as opposed to
 * an I/O error or a missing file. */
bool safe_open_refused(int err);

/*
 * fsync()s the folder that holds path (its last component named by path
 * itself), for a folder just made there: a new entry is durable only once
 * its parent is synced. Returns 0, or -1 with errno.
 */
int safe_sync_parent(const char *path);

#endif
