/*
 * Rewriting a small administrator file in place, as postctl user and
 * postctl alias do: lock path.lock, copy path into path.tmp.PID with the
 * change, keep the mode and owner, fsync, rename over path, fsync the
 * folder. A crash leaves the old file or the new one, never half of one,
 * and two postctl runs never lose each other's edit.
 */
#ifndef POSTD_FILE_REWRITE_H
#define POSTD_FILE_REWRITE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

struct file_rewrite {
	/* Names the file in "<noun> path too long", e.g. "users file". */
	const char *noun;
	/* Mode of a file that does not exist yet (else its own is kept). */
	mode_t mode_if_new;
	/* Failing to keep the owner (other than EPERM, which only root
	 * avoids) is logged as a warning instead of failing the edit. */
	bool chown_failure_warns;
	/* Copies in (NULL if path does not exist yet) into out with the
	 * change. -1 with errno if reading or writing failed. */
	int (*copy)(FILE *in, FILE *out, void *ctx);
	/* Called after copy: -1 with *error_r set refuses the edit (the
	 * message is returned as it is); -1 with *error_r left NULL means
	 * writing out failed (errno set); 0 goes on. */
	int (*finish)(FILE *out, void *ctx, const char **error_r);
	void *ctx;
};

/*
 * Applies the edit to path. Returns 0, or -1 with *error_r saying why
 * (a static string or a per-thread buffer valid until the next call).
 * After a failure the old file is unchanged, except for a failed fsync
 * of the folder: the new file is in place but may not survive a crash.
 */
int file_rewrite_locked(const char *path, const struct file_rewrite *rw,
			const char **error_r);

#endif
