#include "lib/file_rewrite.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/safe_open.h"

/* One rewrite in progress. */
struct file_rewrite_run {
	char lock_path[4096], tmp_path[4096];
	FILE *in;  /* NULL: the file does not exist yet */
	FILE *out; /* the temporary file, until it is closed */
	bool tmp_created;
	bool renamed;
};

static __thread char file_rewrite_error_buf[512];

static const char *file_rewrite_error(const char *fmt, const char *path,
				      int err);
static int file_rewrite_lock(const char *lock_path, const char **error_r);
static int file_rewrite_open_tmp(struct file_rewrite_run *run,
				 const struct file_rewrite *rw,
				 const char **error_r);
static int file_rewrite_fill(struct file_rewrite_run *run, const char *path,
			     const struct file_rewrite *rw,
			     const char **error_r);
static int file_rewrite_commit(struct file_rewrite_run *run, const char *path,
			       const char **error_r);

static const char *file_rewrite_error(const char *fmt, const char *path,
				      int err)
{
	int n = snprintf(file_rewrite_error_buf, sizeof(file_rewrite_error_buf),
			 fmt, path, strerror(err));

	/* A cut message is still useful; mark it as cut. */
	if (n < 0 || (size_t)n >= sizeof(file_rewrite_error_buf))
		memcpy(file_rewrite_error_buf + sizeof(file_rewrite_error_buf) -
			   4,
		       "...", 4);
	return file_rewrite_error_buf;
}

/* The lock file outlives the edit: removing it would let a second
 * postctl lock a new inode while a third still holds the old one. */
static int file_rewrite_lock(const char *lock_path, const char **error_r)
{
	int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		*error_r = file_rewrite_error("open(%s): %s", lock_path, errno);
		return -1;
	}
	if (flock(fd, LOCK_EX) < 0) {
		*error_r =
		    file_rewrite_error("flock(%s): %s", lock_path, errno);
		close(fd);
		return -1;
	}
	return fd;
}

/* Creates path.tmp.PID with the mode and owner of the file it replaces
 * (root:postd for the users file; only root may keep an owner, which is
 * who normally runs postctl). */
static int file_rewrite_open_tmp(struct file_rewrite_run *run,
				 const struct file_rewrite *rw,
				 const char **error_r)
{
	const char *tmp_path = run->tmp_path;
	struct stat st;
	mode_t mode = rw->mode_if_new;
	bool have_st = false;
	int fd;

	if (run->in != NULL && fstat(fileno(run->in), &st) == 0) {
		have_st = true;
		mode = st.st_mode & 07777;
	}
	fd = open(tmp_path,
		  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		*error_r = file_rewrite_error("open(%s): %s", tmp_path, errno);
		return -1;
	}
	run->tmp_created = true;
	if (have_st && fchown(fd, st.st_uid, st.st_gid) < 0 && errno != EPERM) {
		if (!rw->chown_failure_warns) {
			*error_r = file_rewrite_error("fchown(%s): %s",
						      tmp_path, errno);
			close(fd);
			return -1;
		}
		log_warn("fchown(%s): %s", tmp_path, strerror(errno));
	}
	if (fchmod(fd, mode) < 0) {
		*error_r =
		    file_rewrite_error("fchmod(%s): %s", tmp_path, errno);
		close(fd);
		return -1;
	}
	run->out = fdopen(fd, "w");
	if (run->out == NULL) {
		*error_r =
		    file_rewrite_error("fdopen(%s): %s", tmp_path, errno);
		close(fd);
		return -1;
	}
	return 0;
}

/* The caller's copy with the change, then its checks and appends. */
static int file_rewrite_fill(struct file_rewrite_run *run, const char *path,
			     const struct file_rewrite *rw,
			     const char **error_r)
{
	const char *refusal = NULL;

	if (rw->copy(run->in, run->out, rw->ctx) < 0) {
		*error_r = file_rewrite_error("copying %s: %s", path, errno);
		return -1;
	}
	if (rw->finish(run->out, rw->ctx, &refusal) < 0) {
		*error_r = refusal != NULL
			       ? refusal
			       : file_rewrite_error("write(%s): %s",
						    run->tmp_path, errno);
		return -1;
	}
	return 0;
}

/* fsync, rename over path, fsync the folder: INV-D1 style durability for
 * the file, and a crash leaves the old file or the new one. */
static int file_rewrite_commit(struct file_rewrite_run *run, const char *path,
			       const char **error_r)
{
	int r;

	if (fflush(run->out) != 0 || fsync(fileno(run->out)) != 0) {
		*error_r =
		    file_rewrite_error("write(%s): %s", run->tmp_path, errno);
		return -1;
	}
	r = fclose(run->out);
	run->out = NULL;
	if (r != 0) {
		*error_r =
		    file_rewrite_error("write(%s): %s", run->tmp_path, errno);
		return -1;
	}
	if (rename(run->tmp_path, path) < 0) {
		*error_r = file_rewrite_error("rename(%s): %s", path, errno);
		return -1;
	}
	run->renamed = true;
	if (safe_sync_parent(path) < 0) {
		/* The rename happened; the caller still has to know the
		 * change may not survive a crash. */
		*error_r =
		    file_rewrite_error("fsync(dir of %s): %s", path, errno);
		return -1;
	}
	return 0;
}

int file_rewrite_locked(const char *path, const struct file_rewrite *rw,
			const char **error_r)
{
	struct file_rewrite_run run = {.in = NULL};
	int lock_fd, ret = -1;

	if ((size_t)snprintf(run.lock_path, sizeof(run.lock_path), "%s.lock",
			     path) >= sizeof(run.lock_path) ||
	    (size_t)snprintf(run.tmp_path, sizeof(run.tmp_path), "%s.tmp.%ld",
			     path, (long)getpid()) >= sizeof(run.tmp_path)) {
		snprintf(file_rewrite_error_buf, sizeof(file_rewrite_error_buf),
			 "%s path too long", rw->noun);
		*error_r = file_rewrite_error_buf;
		return -1;
	}
	lock_fd = file_rewrite_lock(run.lock_path, error_r);
	if (lock_fd < 0)
		return -1;
	run.in = fopen(path, "re");
	if (run.in == NULL && errno != ENOENT)
		*error_r = file_rewrite_error("open(%s): %s", path, errno);
	else if (file_rewrite_open_tmp(&run, rw, error_r) == 0 &&
		 file_rewrite_fill(&run, path, rw, error_r) == 0)
		ret = file_rewrite_commit(&run, path, error_r);
	if (ret < 0 && run.tmp_created && !run.renamed)
		unlink(run.tmp_path);
	if (run.out != NULL)
		fclose(run.out);
	if (run.in != NULL)
		fclose(run.in);
	close(lock_fd);
	return ret;
}
