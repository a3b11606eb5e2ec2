/*
 * SMTP's way in: one message written once and committed by a thread pool
 * into every recipient's Maildir and the queue; maildir.c delivers one
 * message without threads, queue.c owns the queue entries afterwards.
 *
 * The spool: a message is written once into tmp/ on the event loop
 * thread, then committed by a pool thread (fsync, links into every
 * recipient's new/ and the queue, directory fsyncs) so that the loop
 * never waits for the disk. See doc/internals/storage.md.
 *
 * Threads take a batch of waiting commits at once (group commit): each
 * file is fsynced and linked, then every distinct directory the batch
 * touched is fsynced once. Concurrent fsyncs from several threads share
 * journal commits in the kernel. Nothing is reported durable before its
 * file and every directory holding one of its names was fsynced (INV-D1).
 */
#include "storage/spool.h"
#include "storage/maildir.h"
#include "storage/msg_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "storage/queue.h"

#define SPOOL_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
/* Attempts at a fresh name when one is taken (only a broken clock and
 * a recycled pid together could do that). */
#define SPOOL_NAME_TRIES 3
#define SPOOL_ERROR_SIZE 256
/* Remote recipients with the sender as received, forwarded ones with
 * the SRS sender. */
#define SPOOL_MAX_ENVELOPES 2

struct spool_msg {
	int tmp_fd; /* the tmp/ folder */
	char name[MAILDIR_MAX_NAME + 1];
	struct msg_file file; /* the message in tmp/ */
};

/* One queue entry of a commit: a reverse-path and its recipients. */
struct spool_envelope {
	char *sender;
	char **rcpts;
	size_t rcpt_count;
};

/* A name this commit made visible, to be removed if it fails. */
struct spool_link {
	size_t dir; /* index into the batch's directories */
	char name[MAILDIR_MAX_NAME + 1];
};

struct spool_job {
	struct spool_job *next;
	struct spool_msg *msg;
	int *maildir_fds; /* our duplicates */
	size_t maildir_count;
	int queue_fd; /* our duplicate, or -1 */
	/* The queue entries: remote recipients, then forwarded ones. */
	struct spool_envelope envs[SPOOL_MAX_ENVELOPES];
	size_t env_count;
	size_t skip;
	spool_done_fn *done;
	void *ctx;
	bool forgotten; /* loop thread only */
	/* Written by a pool thread, read on the loop thread after the
	 * hand-off through the done list (under the pool mutex). */
	int err;
	bool queued;
	char error[SPOOL_ERROR_SIZE];
	char queue_id[SPOOL_MAX_ENVELOPES * (QUEUE_MAX_ID + 1)];
	struct spool_link *links;
	size_t link_count;
};

/* A directory a batch linked into, once per (device, inode). */
struct spool_dir {
	dev_t dev;
	ino_t ino;
	int fd;
	int err; /* its fsync failed with this */
	char what[16];
};

struct spool_batch {
	struct spool_dir *dirs;
	size_t count;
};

struct spool_pool {
	struct event_base *base;
	struct event *wake_ev;
	int wake_fds[2];
	pthread_t *threads;
	unsigned nthreads;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	struct spool_job *queue_head, *queue_tail;
	size_t waiting;
	struct spool_job *done_head, *done_tail;
};

static void spool_set_error(char *buf, const char *what, int err);
static void spool_msg_free(struct spool_msg **m, bool unlink_tmp);
static void spool_job_fail(struct spool_job *job, struct spool_batch *b,
			   int err, const char *what);
static int spool_finish_file(struct spool_job *job);
static int spool_batch_dir(struct spool_batch *b, int fd, const char *what,
			   size_t *idx_r);
static int spool_copy(struct spool_msg *m, int base_fd, int dst_fd,
		      const char *dst_name);
static int spool_place(struct spool_job *job, struct spool_batch *b,
		       int base_fd, size_t dir, const char *name);
static int spool_link_maildir(struct spool_job *job, struct spool_batch *b,
			      int maildir_fd);
static int spool_link_queue(struct spool_job *job, struct spool_batch *b,
			    const struct spool_envelope *e);
static void spool_add_envelope(struct spool_job *job, const char *sender,
			       const char *const *rcpts, size_t count);
static void spool_job_prepare(struct spool_job *job, struct spool_batch *b);
static void spool_batch_run(struct spool_job *jobs);
static void *spool_thread(void *arg);
static void spool_deliver_done(struct spool_pool *pool);
static void spool_wake(evutil_socket_t fd, short what, void *arg);
static void spool_job_free(struct spool_job *job);
static int spool_dup(struct spool_job *job, int fd);

static void spool_set_error(char *buf, const char *what, int err)
{
	char sbuf[128];
	const char *s = strerror_r(err, sbuf, sizeof(sbuf));

	snprintf(buf, SPOOL_ERROR_SIZE, "%s: %s",
		 what != NULL ? what : "commit", s);
}

struct spool_msg *spool_msg_begin(int dir_fd, const char **error_r)
{
	static __thread char errbuf[SPOOL_ERROR_SIZE];
	struct spool_msg *m = xmalloc(sizeof(*m));
	int saved;

	msg_file_init(&m->file, -1);
	m->name[0] = '\0';
	m->tmp_fd = openat(dir_fd, "tmp", SPOOL_DIR_FLAGS);
	if (m->tmp_fd < 0) {
		spool_set_error(errbuf, "open tmp/", errno);
		goto fail;
	}
	if (maildir_unique_name(m->name, sizeof(m->name)) < 0) {
		spool_set_error(errbuf, "make a unique name", errno);
		m->name[0] = '\0';
		goto fail;
	}
	/* INV-D3: a fresh file, never an existing one or a symlink. */
	m->file.fd =
	    openat(m->tmp_fd, m->name,
		   O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (m->file.fd < 0) {
		spool_set_error(errbuf, "create tmp file", errno);
		m->name[0] = '\0';
		goto fail;
	}
	return m;
fail:
	saved = errno;
	*error_r = errbuf;
	spool_msg_free(&m, false);
	errno = saved;
	return NULL;
}

int spool_msg_write(struct spool_msg *m, const void *data, size_t len,
		    const char **error_r)
{
	static __thread char errbuf[SPOOL_ERROR_SIZE];

	if (msg_file_write(&m->file, data, len) < 0) {
		spool_set_error(errbuf, "write", m->file.saved_errno);
		*error_r = errbuf;
		errno = m->file.saved_errno;
		return -1;
	}
	return 0;
}

uint64_t spool_msg_size(const struct spool_msg *m)
{
	/* A held CR is stored later, as CR or as part of an LF. */
	return m->file.stored;
}

void spool_msg_abort(struct spool_msg **m)
{
	if (*m != NULL)
		spool_msg_free(m, true);
}

static void spool_msg_free(struct spool_msg **mp, bool unlink_tmp)
{
	struct spool_msg *m = *mp;

	if (m->file.fd >= 0)
		close(m->file.fd);
	if (unlink_tmp && m->name[0] != '\0' && m->tmp_fd >= 0)
		unlinkat(m->tmp_fd, m->name, 0);
	if (m->tmp_fd >= 0)
		close(m->tmp_fd);
	XFREE(*mp);
}

/* Removes every name the job made visible and its tmp file. */
static void spool_job_fail(struct spool_job *job, struct spool_batch *b,
			   int err, const char *what)
{
	if (job->err == 0) {
		job->err = err != 0 ? err : EIO;
		spool_set_error(job->error, what, job->err);
	}
	for (size_t i = 0; i < job->link_count; i++) {
		const struct spool_link *l = &job->links[i];

		if (unlinkat(b->dirs[l->dir].fd, l->name, 0) < 0 &&
		    errno != ENOENT)
			log_error("spool: cannot remove %s after a failed "
				  "commit: %s",
				  l->name, strerror(errno));
	}
	job->link_count = 0;
	job->queued = false;
	if (job->msg != NULL)
		spool_msg_free(&job->msg, true);
}

/* The rest of the data, fsync, close (INV-D1). */
static int spool_finish_file(struct spool_job *job)
{
	struct spool_msg *m = job->msg;
	int fd;

	if (msg_file_finish(&m->file) < 0)
		goto write_fail;
	/* A failed fsync is never retried: the kernel may have dropped the
	 * dirty pages and a second fsync would report success. */
	if (fsync(m->file.fd) < 0) {
		spool_set_error(job->error, "fsync", errno);
		return errno;
	}
	fd = m->file.fd;
	m->file.fd = -1;
	if (close(fd) < 0) {
		spool_set_error(job->error, "close", errno);
		return errno;
	}
	return 0;
write_fail:
	spool_set_error(job->error, "write", m->file.saved_errno);
	return m->file.saved_errno;
}

/* Takes fd; returns the index of its directory in the batch, sharing
 * one entry (and one fsync) per directory. */
static int spool_batch_dir(struct spool_batch *b, int fd, const char *what,
			   size_t *idx_r)
{
	struct spool_dir *d;
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	for (size_t i = 0; i < b->count; i++) {
		if (b->dirs[i].dev == st.st_dev &&
		    b->dirs[i].ino == st.st_ino) {
			close(fd);
			*idx_r = i;
			return 0;
		}
	}
	b->dirs = xreallocarray(b->dirs, b->count + 1, sizeof(*b->dirs));
	d = &b->dirs[b->count];
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	d->fd = fd;
	d->err = 0;
	snprintf(d->what, sizeof(d->what), "%s", what);
	*idx_r = b->count++;
	return 0;
}

/* EXDEV: a copy in base_fd/tmp/, fsynced, then linked as dst_name. */
static int spool_copy(struct spool_msg *m, int base_fd, int dst_fd,
		      const char *dst_name)
{
	char name[MAILDIR_MAX_NAME + 1];
	int src = -1, tmp_dir = -1, out = -1, saved = 0, r;
	bool created = false;

	src = openat(m->tmp_fd, m->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	tmp_dir = openat(base_fd, "tmp", SPOOL_DIR_FLAGS);
	if (src < 0 || tmp_dir < 0 ||
	    maildir_unique_name(name, sizeof(name)) < 0)
		goto fail;
	out =
	    openat(tmp_dir, name,
		   O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		goto fail;
	created = true;
	/* The message's buffer is free: its data was flushed. */
	m->file.buf_len = 0;
	for (;;) {
		ssize_t n = read(src, m->file.buf, sizeof(m->file.buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w =
			    write(out, m->file.buf + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				goto fail;
			off += w;
		}
	}
	if (fsync(out) < 0)
		goto fail;
	r = close(out);
	out = -1;
	if (r < 0 || linkat(tmp_dir, name, dst_fd, dst_name, 0) < 0)
		goto fail;
	unlinkat(tmp_dir, name, 0);
	close(src);
	close(tmp_dir);
	return 0;
fail:
	saved = errno;
	if (out >= 0)
		close(out);
	if (created)
		unlinkat(tmp_dir, name, 0);
	if (src >= 0)
		close(src);
	if (tmp_dir >= 0)
		close(tmp_dir);
	errno = saved;
	return -1;
}

/* Gives the job's file the name dir/name: a hard link, or a copy where
 * the target is on another file system. */
static int spool_place(struct spool_job *job, struct spool_batch *b,
		       int base_fd, size_t dir, const char *name)
{
	struct spool_msg *m = job->msg;
	int dir_fd = b->dirs[dir].fd;

	if (linkat(m->tmp_fd, m->name, dir_fd, name, 0) < 0 &&
	    (errno != EXDEV || spool_copy(m, base_fd, dir_fd, name) < 0))
		return -1;
	job->links =
	    xreallocarray(job->links, job->link_count + 1, sizeof(*job->links));
	job->links[job->link_count].dir = dir;
	snprintf(job->links[job->link_count].name,
		 sizeof(job->links[job->link_count].name), "%s", name);
	job->link_count++;
	return 0;
}

/* new/NAME,S=..,W=.. in one Maildir, under a name of its own (names
 * must be unique per folder; the inode is shared). */
static int spool_link_maildir(struct spool_job *job, struct spool_batch *b,
			      int maildir_fd)
{
	struct spool_msg *m = job->msg;
	char base[MAILDIR_MAX_NAME + 1], final[MAILDIR_MAX_NAME + 1];
	size_t dir;
	int fd, n;

	fd = openat(maildir_fd, "new", SPOOL_DIR_FLAGS);
	if (fd < 0 || spool_batch_dir(b, fd, "new/", &dir) < 0) {
		spool_set_error(job->error, "open new/", errno);
		return errno;
	}
	for (int tries = 0;; tries++) {
		if (maildir_unique_name(base, sizeof(base)) < 0) {
			spool_set_error(job->error, "make a unique name",
					errno);
			return errno;
		}
		n = snprintf(final, sizeof(final),
			     "%s,S=%" PRIu64 ",W=%" PRIu64, base,
			     m->file.stored, m->file.wire);
		if (n < 0 || (size_t)n >= sizeof(final)) {
			spool_set_error(job->error, "final name", ENAMETOOLONG);
			return ENAMETOOLONG;
		}
		/* INV-D3: linkat never replaces an existing message. */
		if (spool_place(job, b, maildir_fd, dir, final) == 0)
			return 0;
		if (errno != EEXIST || tries + 1 >= SPOOL_NAME_TRIES) {
			spool_set_error(job->error, "link into new/", errno);
			return errno;
		}
	}
}

/* msg/ID, then env/ID (see queue.h: the message is linked first). */
static int spool_link_queue(struct spool_job *job, struct spool_batch *b,
			    const struct spool_envelope *e)
{
	struct queue_envelope env;
	const char *error;
	size_t msg_dir, env_dir;
	int fd, err;

	fd = openat(job->queue_fd, QUEUE_SUBDIR_MSG, SPOOL_DIR_FLAGS);
	if (fd < 0 || spool_batch_dir(b, fd, "queue msg/", &msg_dir) < 0) {
		spool_set_error(job->error, "open queue msg/", errno);
		return errno;
	}
	fd = openat(job->queue_fd, QUEUE_SUBDIR_ENV, SPOOL_DIR_FLAGS);
	if (fd < 0 || spool_batch_dir(b, fd, "queue env/", &env_dir) < 0) {
		spool_set_error(job->error, "open queue env/", errno);
		return errno;
	}
	memset(&env, 0, sizeof(env));
	for (int tries = 0;; tries++) {
		queue_id_new(env.id, sizeof(env.id));
		if (spool_place(job, b, job->queue_fd, msg_dir, env.id) == 0)
			break;
		if (errno != EEXIST || tries + 1 >= SPOOL_NAME_TRIES) {
			spool_set_error(job->error, "link into queue msg/",
					errno);
			return errno;
		}
	}
	env.created = (uint64_t)time(NULL);
	env.size = job->msg->file.stored;
	env.skip = job->skip;
	env.sender = e->sender;
	env.rcpt_count = e->rcpt_count;
	env.rcpts = xcalloc(e->rcpt_count, sizeof(*env.rcpts));
	for (size_t i = 0; i < e->rcpt_count; i++) {
		env.rcpts[i].addr = e->rcpts[i];
		env.rcpts[i].state = QUEUE_RCPT_PENDING;
	}
	if (queue_envelope_write(job->queue_fd, &env, &err, &error) < 0) {
		free(env.rcpts);
		snprintf(job->error, sizeof(job->error), "queue: %s", error);
		return err != 0 ? err : EIO;
	}
	free(env.rcpts);
	/* Recorded so that a failure later (a directory fsync) removes
	 * the entry too. */
	job->links =
	    xreallocarray(job->links, job->link_count + 1, sizeof(*job->links));
	job->links[job->link_count].dir = env_dir;
	snprintf(job->links[job->link_count].name,
		 sizeof(job->links[job->link_count].name), "%s", env.id);
	job->link_count++;
	/* "ID" or "ID,ID" for the log line. */
	snprintf(job->queue_id + strlen(job->queue_id),
		 sizeof(job->queue_id) - strlen(job->queue_id), "%s%s",
		 job->queued ? "," : "", env.id);
	job->queued = true;
	return 0;
}

/* Everything but the directory fsyncs, which the batch shares. */
static void spool_job_prepare(struct spool_job *job, struct spool_batch *b)
{
	struct spool_msg *m = job->msg;
	int err;

	if (job->err != 0) {
		spool_job_fail(job, b, job->err, job->error);
		return;
	}
	err = spool_finish_file(job);
	if (err != 0)
		goto fail;
	for (size_t i = 0; i < job->maildir_count; i++) {
		err = spool_link_maildir(job, b, job->maildir_fds[i]);
		if (err != 0)
			goto fail;
	}
	/* INV-D1: every entry is linked in this batch, so the single
	 * success report covers all of them. */
	for (size_t i = 0; i < job->env_count; i++) {
		err = spool_link_queue(job, b, &job->envs[i]);
		if (err != 0)
			goto fail;
	}
	/* The tmp name goes before the directory fsyncs: a crash now
	 * leaves at most a stale tmp/ file, which is reaped (INV-D3). */
	if (unlinkat(m->tmp_fd, m->name, 0) < 0)
		log_warn("spool: cannot remove tmp file %s: %s", m->name,
			 strerror(errno));
	m->name[0] = '\0';
	spool_msg_free(&job->msg, false);
	return;
fail:
	/* job->error names the failed step; keep it. */
	job->err = err != 0 ? err : EIO;
	spool_job_fail(job, b, job->err, NULL);
}

static void spool_batch_run(struct spool_job *jobs)
{
	struct spool_batch b = {NULL, 0};

	/* Start writeback of every file at once, so that the fsyncs below
	 * find their data already on the way to the disk. */
	for (struct spool_job *j = jobs; j != NULL; j = j->next) {
		struct spool_msg *m = j->msg;

		if (j->err == 0 && msg_file_flush(&m->file) == 0)
			sync_file_range(m->file.fd, 0, 0,
					SYNC_FILE_RANGE_WRITE);
	}
	for (struct spool_job *j = jobs; j != NULL; j = j->next)
		spool_job_prepare(j, &b);
	/* INV-D1: each directory once for the whole batch. */
	for (size_t i = 0; i < b.count; i++)
		if (fsync(b.dirs[i].fd) < 0)
			b.dirs[i].err = errno;
	for (struct spool_job *j = jobs; j != NULL; j = j->next) {
		for (size_t i = 0; j->err == 0 && i < j->link_count; i++) {
			const struct spool_dir *d = &b.dirs[j->links[i].dir];
			char what[64];

			if (d->err == 0)
				continue;
			/* Not durable, so not accepted: a copy left visible
			 * would become a duplicate when the client retries. */
			snprintf(what, sizeof(what), "fsync %s", d->what);
			spool_job_fail(j, &b, d->err, what);
		}
	}
	for (size_t i = 0; i < b.count; i++)
		close(b.dirs[i].fd);
	free(b.dirs);
}

static void *spool_thread(void *arg)
{
	struct spool_pool *pool = arg;

	for (;;) {
		struct spool_job *batch = NULL, **tail = &batch, *last;
		size_t take;

		pthread_mutex_lock(&pool->lock);
		while (!pool->stopping && pool->queue_head == NULL)
			pthread_cond_wait(&pool->cond, &pool->lock);
		if (pool->queue_head == NULL) {
			/* Stopping, and nothing left to commit. */
			pthread_mutex_unlock(&pool->lock);
			return NULL;
		}
		/* A fair share of what waits, so that the other threads
		 * overlap their fsyncs with ours. */
		take = (pool->waiting + pool->nthreads - 1) / pool->nthreads;
		if (take > SPOOL_MAX_BATCH)
			take = SPOOL_MAX_BATCH;
		for (size_t i = 0; i < take && pool->queue_head != NULL; i++) {
			*tail = pool->queue_head;
			pool->queue_head = pool->queue_head->next;
			tail = &(*tail)->next;
			pool->waiting--;
		}
		*tail = NULL;
		if (pool->queue_head == NULL)
			pool->queue_tail = NULL;
		pthread_mutex_unlock(&pool->lock);

		spool_batch_run(batch);

		for (last = batch; last->next != NULL; last = last->next)
			;
		pthread_mutex_lock(&pool->lock);
		if (pool->done_tail != NULL)
			pool->done_tail->next = batch;
		else
			pool->done_head = batch;
		pool->done_tail = last;
		pthread_mutex_unlock(&pool->lock);
		/* One byte wakes the loop; if the pipe is full a wake-up is
		 * already pending. */
		if (write(pool->wake_fds[1], "", 1) < 0 && errno != EAGAIN)
			log_error("spool wake-up: %s", strerror(errno));
	}
}

/* On the loop thread: done callbacks of finished commits. */
static void spool_deliver_done(struct spool_pool *pool)
{
	struct spool_job *job, *next;

	pthread_mutex_lock(&pool->lock);
	job = pool->done_head;
	pool->done_head = pool->done_tail = NULL;
	pthread_mutex_unlock(&pool->lock);
	for (; job != NULL; job = next) {
		next = job->next;
		if (!job->forgotten && job->done != NULL)
			job->done(job->ctx, job->err,
				  job->err != 0 ? job->error : "",
				  job->err == 0 && job->queued ? job->queue_id
							       : NULL);
		spool_job_free(job);
	}
}

static void spool_wake(evutil_socket_t fd, short what, void *arg)
{
	char drain[256];

	(void)what;
	while (read(fd, drain, sizeof(drain)) > 0)
		;
	spool_deliver_done(arg);
}

struct spool_pool *spool_pool_new(struct event_base *base, unsigned threads)
{
	struct spool_pool *pool = xcalloc(1, sizeof(*pool));
	int err;

	if (threads == 0)
		threads = SPOOL_DEFAULT_THREADS;
	if (threads > SPOOL_MAX_THREADS)
		threads = SPOOL_MAX_THREADS;
	pool->base = base;
	pool->nthreads = threads;
	if (pipe2(pool->wake_fds, O_NONBLOCK | O_CLOEXEC) < 0)
		fatal("spool: pipe2: %s", strerror(errno));
	pool->wake_ev = event_new(base, pool->wake_fds[0], EV_READ | EV_PERSIST,
				  spool_wake, pool);
	if (pool->wake_ev == NULL || event_add(pool->wake_ev, NULL) < 0)
		fatal("spool: cannot watch the wake-up pipe");
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->threads = xcalloc(threads, sizeof(*pool->threads));
	for (unsigned i = 0; i < threads; i++) {
		err =
		    pthread_create(&pool->threads[i], NULL, spool_thread, pool);
		if (err != 0)
			fatal("spool: pthread_create: %s", strerror(err));
	}
	return pool;
}

void spool_pool_free(struct spool_pool **poolp)
{
	struct spool_pool *pool = *poolp;

	if (pool == NULL)
		return;
	/* Every submitted commit finishes: one may already have been
	 * promised to a client. */
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	spool_deliver_done(pool);
	event_free(pool->wake_ev);
	close(pool->wake_fds[0]);
	close(pool->wake_fds[1]);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool->threads);
	XFREE(*poolp);
}

/* A descriptor of our own, so that the caller may close its copy. */
static int spool_dup(struct spool_job *job, int fd)
{
	int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (r < 0 && job->err == 0) {
		job->err = errno;
		spool_set_error(job->error, "dup target", errno);
	}
	return r;
}

static void spool_add_envelope(struct spool_job *job, const char *sender,
			       const char *const *rcpts, size_t count)
{
	struct spool_envelope *e = &job->envs[job->env_count++];

	e->sender = xstrdup(sender != NULL ? sender : "");
	e->rcpt_count = count;
	e->rcpts = xcalloc(count + 1, sizeof(char *));
	for (size_t i = 0; i < count; i++)
		e->rcpts[i] = xstrdup(rcpts[i]);
}

struct spool_job *spool_commit(struct spool_pool *pool, struct spool_msg **m,
			       const struct spool_target *target,
			       spool_done_fn *done, void *ctx)
{
	struct spool_job *job = xcalloc(1, sizeof(*job));

	job->msg = *m;
	*m = NULL;
	job->done = done;
	job->ctx = ctx;
	job->queue_fd = -1;
	job->skip = target->skip;
	job->maildir_count = target->maildir_count;
	job->maildir_fds = xcalloc(target->maildir_count + 1, sizeof(int));
	for (size_t i = 0; i < target->maildir_count; i++)
		job->maildir_fds[i] = spool_dup(job, target->maildir_fds[i]);
	if (target->queue_fd >= 0) {
		job->queue_fd = spool_dup(job, target->queue_fd);
		if (target->remote_count > 0)
			spool_add_envelope(job, target->sender,
					   target->remote_rcpts,
					   target->remote_count);
		if (target->forward_count > 0)
			spool_add_envelope(job, target->forward_sender,
					   target->forward_rcpts,
					   target->forward_count);
		if (job->err == 0 &&
		    (job->env_count == 0 ||
		     target->remote_count > QUEUE_MAX_RCPTS ||
		     target->forward_count > QUEUE_MAX_RCPTS)) {
			job->err = EINVAL;
			spool_set_error(job->error, "queue recipients", EINVAL);
		}
	}
	if (job->err == 0 && target->maildir_count == 0 &&
	    target->queue_fd < 0) {
		job->err = EINVAL;
		spool_set_error(job->error, "no target", EINVAL);
	}
	pthread_mutex_lock(&pool->lock);
	if (pool->queue_tail != NULL)
		pool->queue_tail->next = job;
	else
		pool->queue_head = job;
	pool->queue_tail = job;
	pool->waiting++;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	return job;
}

void spool_forget(struct spool_job **job)
{
	if (*job != NULL)
		(*job)->forgotten = true;
	*job = NULL;
}

static void spool_job_free(struct spool_job *job)
{
	if (job->msg != NULL)
		spool_msg_free(&job->msg, true);
	for (size_t i = 0; i < job->maildir_count; i++)
		if (job->maildir_fds[i] >= 0)
			close(job->maildir_fds[i]);
	free(job->maildir_fds);
	if (job->queue_fd >= 0)
		close(job->queue_fd);
	for (size_t k = 0; k < job->env_count; k++) {
		for (size_t i = 0; i < job->envs[k].rcpt_count; i++)
			free(job->envs[k].rcpts[i]);
		free(job->envs[k].rcpts);
		free(job->envs[k].sender);
	}
	free(job->links);
	free(job);
}
