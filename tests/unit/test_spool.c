/* The spool: one file, hard links, group commit (INV-D1, INV-D3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "storage/maildir.h"
#include "storage/queue.h"
#include "storage/spool.h"

#define MAX_DIRS 4

struct fixture {
	char root[64];
	int root_fd;
	int md[MAX_DIRS];
	struct event_base *base;
	struct spool_pool *pool;
};

struct result {
	int calls;
	int err;
	char error[256];
	char queue_id[2 * (QUEUE_MAX_ID + 1)];
};

/* Commits still to report before the loop stops. */
static int pending;
static struct event_base *loop_base;

static void on_done(void *ctx, int err, const char *error, const char *queue_id)
{
	struct result *r = ctx;

	r->calls++;
	r->err = err;
	snprintf(r->error, sizeof(r->error), "%s", error);
	snprintf(r->queue_id, sizeof(r->queue_id), "%s",
		 queue_id != NULL ? queue_id : "");
	if (--pending == 0)
		event_base_loopbreak(loop_base);
}

static void run_until_done(struct fixture *f, int n)
{
	struct timeval tv = {20, 0};

	pending = n;
	loop_base = f->base;
	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
	assert_int_equal(pending, 0);
}

static int setup(void **state)
{
	static const char *const users[MAX_DIRS] = {
	    "a@example.com", "b@example.com", "c@example.com", "d@example.org"};
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err = NULL;

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_spool.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->root_fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->root_fd >= 0);
	for (int i = 0; i < MAX_DIRS; i++) {
		f->md[i] = maildir_open(f->root_fd, users[i], true, &err);
		assert_true(f->md[i] >= 0);
	}
	f->base = event_base_new();
	assert_non_null(f->base);
	f->pool = spool_pool_new(f->base, 0);
	assert_non_null(f->pool);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	spool_pool_free(&f->pool);
	assert_null(f->pool);
	event_base_free(f->base);
	for (int i = 0; i < MAX_DIRS; i++)
		close(f->md[i]);
	close(f->root_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Number of entries in DIR/sub (no dot files); the first name and its
 * stat go to name_r and st_r. */
static int list_dir(int dir_fd, const char *sub, char *name_r, size_t name_size,
		    struct stat *st_r)
{
	int fd = openat(dir_fd, sub, O_RDONLY | O_DIRECTORY);
	struct dirent *de;
	DIR *d;
	int n = 0;

	assert_true(fd >= 0);
	d = fdopendir(fd);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n++ == 0) {
			if (name_r != NULL)
				snprintf(name_r, name_size, "%s", de->d_name);
			if (st_r != NULL)
				assert_int_equal(
				    fstatat(fd, de->d_name, st_r, 0), 0);
		}
	}
	closedir(d);
	return n;
}

static void read_file(int dir_fd, const char *sub, const char *name, char *buf,
		      size_t size, size_t *len_r)
{
	char path[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", sub, name);
	fd = openat(dir_fd, path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, size);
	assert_true(n >= 0);
	*len_r = (size_t)n;
	close(fd);
}

static struct spool_msg *make_msg(int dir_fd, const char *const *chunks)
{
	const char *err = NULL;
	struct spool_msg *m = spool_msg_begin(dir_fd, &err);

	assert_non_null(m);
	for (size_t i = 0; chunks[i] != NULL; i++)
		assert_int_equal(
		    spool_msg_write(m, chunks[i], strlen(chunks[i]), &err), 0);
	return m;
}

/* One message to three Maildirs: one inode, three names, each with the
 * sizes POP3 needs, LF line ends, and no tmp/ file left (INV-D3). */
static void test_inv_d3_one_inode_three_maildirs(void **state)
{
	struct fixture *f = *state;
	/* A CRLF split between chunks, a lone CR kept, no final line end. */
	static const char *const chunks[] = {"Subject: x\r", "\n\r\nhello\r",
					     "\nbare\rcr\nworld", NULL};
	static const char stored[] = "Subject: x\n\nhello\nbare\rcr\nworld";
	struct spool_target t = {0};
	struct result r = {0};
	struct spool_msg *m = make_msg(f->md[0], chunks);
	struct stat st[3];
	char name[3][256], data[256], expect_suffix[64];
	int fds[3];
	size_t len;

	/* W: stored bytes + one CR per bare LF (4) + the final CRLF. */
	snprintf(expect_suffix, sizeof(expect_suffix), ",S=%zu,W=%zu",
		 sizeof(stored) - 1, sizeof(stored) - 1 + 4 + 2);
	assert_int_equal(spool_msg_size(m), sizeof(stored) - 1);
	/* The caller's descriptors may close at once: the pool has its
	 * own. */
	for (int i = 0; i < 3; i++)
		fds[i] = dup(f->md[i]);
	t.maildir_fds = fds;
	t.maildir_count = 3;
	t.queue_fd = -1;
	assert_non_null(spool_commit(f->pool, &m, &t, on_done, &r));
	assert_null(m);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	run_until_done(f, 1);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.queue_id, "");
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
		    list_dir(f->md[i], "new", name[i], sizeof(name[i]), &st[i]),
		    1);
		assert_int_equal(list_dir(f->md[i], "tmp", NULL, 0, NULL), 0);
		assert_true(strlen(name[i]) > strlen(expect_suffix));
		assert_string_equal(name[i] + strlen(name[i]) -
					strlen(expect_suffix),
				    expect_suffix);
		assert_int_equal(st[i].st_ino, st[0].st_ino);
		assert_int_equal(st[i].st_nlink, 3);
		read_file(f->md[i], "new", name[i], data, sizeof(data), &len);
		assert_int_equal(len, sizeof(stored) - 1);
		assert_memory_equal(data, stored, len);
	}
	/* Unique base names per folder. */
	assert_string_not_equal(name[0], name[1]);
	assert_string_not_equal(name[1], name[2]);
	/* The name's W= is what the POP3 side reads. */
	{
		uint64_t w = 0;

		assert_true(maildir_name_wire_size(name[0], &w));
		assert_int_equal(w, sizeof(stored) - 1 + 6);
	}
	assert_int_equal(list_dir(f->md[3], "new", NULL, 0, NULL), 0);
}

/* INV-D1: a commit that cannot reach one Maildir fails as a whole and
 * leaves nothing visible anywhere. */
static void check_missing_new(struct fixture *f, int missing)
{
	static const char *const chunks[] = {"Subject: y\r\n\r\nbody\r\n",
					     NULL};
	struct spool_target t = {0};
	struct result r = {0};
	struct spool_msg *m;
	int fds[3] = {f->md[0], f->md[1], f->md[2]};

	assert_int_equal(unlinkat(f->md[missing], "new", AT_REMOVEDIR), 0);
	m = make_msg(f->md[0], chunks);
	t.maildir_fds = fds;
	t.maildir_count = 3;
	t.queue_fd = -1;
	spool_commit(f->pool, &m, &t, on_done, &r);
	run_until_done(f, 1);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, ENOENT);
	assert_non_null(strstr(r.error, "new/"));
	for (int i = 0; i < 3; i++) {
		if (i != missing)
			assert_int_equal(
			    list_dir(f->md[i], "new", NULL, 0, NULL), 0);
		assert_int_equal(list_dir(f->md[i], "tmp", NULL, 0, NULL), 0);
	}
	assert_int_equal(mkdirat(f->md[missing], "new", 0700), 0);
}

static void test_inv_d1_missing_new_last_leaves_nothing(void **state)
{
	check_missing_new(*state, 2);
}

static void test_inv_d1_missing_new_middle_leaves_nothing(void **state)
{
	check_missing_new(*state, 1);
}

/* new/ replaced by a file: the link fails after the first Maildir was
 * linked, and that link is taken back. */
static void test_inv_d1_new_not_a_directory(void **state)
{
	struct fixture *f = *state;
	static const char *const chunks[] = {"x\n", NULL};
	struct spool_target t = {0};
	struct result r = {0};
	struct spool_msg *m;
	int fds[2] = {f->md[0], f->md[1]}, fd;

	assert_int_equal(unlinkat(f->md[1], "new", AT_REMOVEDIR), 0);
	fd = openat(f->md[1], "new", O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	m = make_msg(f->md[1], chunks);
	t.maildir_fds = fds;
	t.maildir_count = 2;
	t.queue_fd = -1;
	spool_commit(f->pool, &m, &t, on_done, &r);
	run_until_done(f, 1);
	assert_int_equal(r.err, ENOTDIR);
	assert_int_equal(list_dir(f->md[0], "new", NULL, 0, NULL), 0);
	assert_int_equal(list_dir(f->md[1], "tmp", NULL, 0, NULL), 0);
}

/* spool_forget: no callback, but the message is delivered all the same
 * (a loss is never allowed, a duplicate is). */
static void test_inv_d1_forget_suppresses_callback_only(void **state)
{
	struct fixture *f = *state;
	static const char *const chunks[] = {"Subject: z\r\n\r\nhi\r\n", NULL};
	struct spool_target t = {0};
	struct result r = {0};
	struct spool_msg *m = make_msg(f->md[0], chunks);
	struct spool_job *job;

	t.maildir_fds = &f->md[0];
	t.maildir_count = 1;
	t.queue_fd = -1;
	job = spool_commit(f->pool, &m, &t, on_done, &r);
	spool_forget(&job);
	assert_null(job);
	/* Waits for the commit; done must not run. */
	spool_pool_free(&f->pool);
	assert_int_equal(r.calls, 0);
	assert_int_equal(list_dir(f->md[0], "new", NULL, 0, NULL), 1);
	assert_int_equal(list_dir(f->md[0], "tmp", NULL, 0, NULL), 0);
	/* The loop may still hold the wake-up byte: it must do nothing. */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(r.calls, 0);
	f->pool = spool_pool_new(f->base, 2);
}

/* INV-D1 under load: 200 commits submitted at once, to overlapping
 * Maildirs, all complete and all are there (group commit must not lose
 * or mix up any of them). */
static void test_inv_d1_many_concurrent_commits(void **state)
{
	enum { N = 200 };
	struct fixture *f = *state;
	static struct result r[N];
	struct spool_target t = {0};
	int fds[2];
	char body[64];

	memset(r, 0, sizeof(r));
	for (int i = 0; i < N; i++) {
		const char *chunks[] = {body, NULL};
		struct spool_msg *m;

		snprintf(body, sizeof(body), "Subject: %d\r\n\r\n%d\r\n", i, i);
		m = make_msg(f->md[i % 2], chunks);
		fds[0] = f->md[i % 2];
		fds[1] = f->md[2 + i % 2];
		t.maildir_fds = fds;
		t.maildir_count = 2;
		t.queue_fd = -1;
		spool_commit(f->pool, &m, &t, on_done, &r[i]);
	}
	run_until_done(f, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, 0);
	}
	for (int i = 0; i < MAX_DIRS; i++) {
		assert_int_equal(list_dir(f->md[i], "new", NULL, 0, NULL),
				 N / 2);
		assert_int_equal(list_dir(f->md[i], "tmp", NULL, 0, NULL), 0);
	}
}

/* A local and a remote recipient: the queue entry shares the inode and
 * its envelope loads back (INV-D2). */
static void test_inv_d2_commit_to_maildir_and_queue(void **state)
{
	struct fixture *f = *state;
	static const char *const chunks[] = {
	    "Return-Path: <s@example.com>\r\nSubject: q\r\n\r\nq\r\n", NULL};
	static const char *const rcpts[] = {"x@remote.example",
					    "y z@remote.example"};
	struct spool_target t = {0};
	struct result r = {0};
	struct queue_envelope *env = NULL;
	struct stat md_st, q_st;
	const char *err = NULL;
	struct spool_msg *m;
	int qfd, msg_fd;

	qfd = queue_open(f->root_fd, true, &err);
	assert_true(qfd >= 0);
	m = make_msg(qfd, chunks);
	t.maildir_fds = &f->md[0];
	t.maildir_count = 1;
	t.queue_fd = qfd;
	t.sender = "s@example.com";
	t.remote_rcpts = rcpts;
	t.remote_count = 2;
	t.skip = strlen("Return-Path: <s@example.com>\n");
	spool_commit(f->pool, &m, &t, on_done, &r);
	run_until_done(f, 1);
	assert_int_equal(r.err, 0);
	assert_true(queue_id_valid(r.queue_id));
	assert_int_equal(queue_entry_load(qfd, r.queue_id, &env, &err), 1);
	assert_string_equal(env->sender, "s@example.com");
	assert_int_equal(env->rcpt_count, 2);
	assert_string_equal(env->rcpts[1].addr, "y z@remote.example");
	assert_int_equal(env->skip, t.skip);
	assert_int_equal(env->size,
			 strlen("Return-Path: <s@example.com>\nSubject: "
				"q\n\nq\n"));
	assert_int_equal(list_dir(f->md[0], "new", NULL, 0, &md_st), 1);
	msg_fd = openat(qfd, "msg", O_RDONLY | O_DIRECTORY);
	assert_int_equal(fstatat(msg_fd, r.queue_id, &q_st, 0), 0);
	assert_int_equal(md_st.st_ino, q_st.st_ino);
	assert_int_equal(q_st.st_nlink, 2);
	assert_int_equal(list_dir(qfd, "tmp", NULL, 0, NULL), 0);
	queue_envelope_free(&env);
	close(msg_fd);
	close(qfd);
}

/* A remote and a forwarded recipient: two queue entries of one inode,
 * each with its own reverse-path, both durable before the single done
 * (INV-D1); the stored octets are the same for both (DKIM stays valid). */
static void test_inv_d1_forward_gets_second_entry(void **state)
{
	struct fixture *f = *state;
	static const char *const chunks[] = {
	    "Return-Path: <s@example.com>\r\nDKIM-Signature: v=1\r\n\r\nb\r\n",
	    NULL};
	static const char *const remote[] = {"x@remote.example"};
	static const char *const fwd[] = {"y@elsewhere.example",
					  "z@elsewhere.example"};
	struct spool_target t = {0};
	struct result r = {0};
	struct queue_envelope *a = NULL, *b = NULL;
	struct stat st_a, st_b;
	const char *err = NULL;
	char id_a[QUEUE_MAX_ID + 1], *comma;
	struct spool_msg *m;
	int qfd, msg_fd;

	qfd = queue_open(f->root_fd, true, &err);
	assert_true(qfd >= 0);
	m = make_msg(qfd, chunks);
	t.queue_fd = qfd;
	t.sender = "s@example.com";
	t.remote_rcpts = remote;
	t.remote_count = 1;
	t.forward_sender = "SRS0=abcd=G3=example.com=s@fwd.example";
	t.forward_rcpts = fwd;
	t.forward_count = 2;
	t.skip = strlen("Return-Path: <s@example.com>\n");
	spool_commit(f->pool, &m, &t, on_done, &r);
	run_until_done(f, 1);
	assert_int_equal(r.err, 0);
	comma = strchr(r.queue_id, ',');
	assert_non_null(comma);
	snprintf(id_a, sizeof(id_a), "%.*s", (int)(comma - r.queue_id),
		 r.queue_id);
	assert_int_equal(queue_entry_load(qfd, id_a, &a, &err), 1);
	assert_int_equal(queue_entry_load(qfd, comma + 1, &b, &err), 1);
	assert_string_equal(a->sender, "s@example.com");
	assert_int_equal(a->rcpt_count, 1);
	assert_string_equal(a->rcpts[0].addr, "x@remote.example");
	assert_string_equal(b->sender,
			    "SRS0=abcd=G3=example.com=s@fwd.example");
	assert_int_equal(b->rcpt_count, 2);
	assert_string_equal(b->rcpts[1].addr, "z@elsewhere.example");
	assert_int_equal(a->skip, b->skip);
	assert_int_equal(a->size, b->size);
	assert_int_equal(list_dir(qfd, "env", NULL, 0, NULL), 2);
	msg_fd = openat(qfd, "msg", O_RDONLY | O_DIRECTORY);
	assert_int_equal(fstatat(msg_fd, id_a, &st_a, 0), 0);
	assert_int_equal(fstatat(msg_fd, comma + 1, &st_b, 0), 0);
	assert_int_equal(st_a.st_ino, st_b.st_ino);
	assert_int_equal(list_dir(qfd, "tmp", NULL, 0, NULL), 0);
	queue_envelope_free(&a);
	queue_envelope_free(&b);
	close(msg_fd);
	close(qfd);
}

/* Only forwarded recipients: one entry, with the SRS sender. */
static void test_spool_forward_only(void **state)
{
	struct fixture *f = *state;
	static const char *const chunks[] = {"Return-Path: <>\r\n\r\nb\r\n",
					     NULL};
	static const char *const fwd[] = {"y@elsewhere.example"};
	struct spool_target t = {0};
	struct result r = {0};
	struct queue_envelope *env = NULL;
	const char *err = NULL;
	struct spool_msg *m;
	int qfd;

	qfd = queue_open(f->root_fd, true, &err);
	assert_true(qfd >= 0);
	m = make_msg(qfd, chunks);
	t.queue_fd = qfd;
	t.sender = "";
	t.forward_sender = "SRS0=x@fwd.example";
	t.forward_rcpts = fwd;
	t.forward_count = 1;
	spool_commit(f->pool, &m, &t, on_done, &r);
	run_until_done(f, 1);
	assert_int_equal(r.err, 0);
	assert_null(strchr(r.queue_id, ','));
	assert_int_equal(queue_entry_load(qfd, r.queue_id, &env, &err), 1);
	assert_string_equal(env->sender, "SRS0=x@fwd.example");
	assert_int_equal(list_dir(qfd, "env", NULL, 0, NULL), 1);
	queue_envelope_free(&env);
	close(qfd);
}

/* A Maildir on another file system gets a copy (EXDEV), fsynced like
 * the original (INV-D1). Skipped where /dev/shm is not a separate file
 * system. */
static void test_inv_d1_exdev_copy(void **state)
{
	struct fixture *f = *state;
	static const char *const chunks[] = {"Subject: c\r\n\r\ncopy\r\n",
					     NULL};
	char shm[64], name[256], data[64], cmd[128];
	struct spool_target t = {0};
	struct result r = {0};
	struct stat a, b;
	const char *err = NULL;
	struct spool_msg *m;
	int shm_fd, md, fds[2];
	size_t len;

	snprintf(shm, sizeof(shm), "/dev/shm/test_spool.XXXXXX");
	if (mkdtemp(shm) == NULL)
		skip();
	shm_fd = open(shm, O_RDONLY | O_DIRECTORY);
	assert_true(shm_fd >= 0);
	assert_int_equal(fstat(shm_fd, &a), 0);
	assert_int_equal(fstat(f->root_fd, &b), 0);
	if (a.st_dev == b.st_dev) {
		close(shm_fd);
		rmdir(shm);
		skip();
	}
	md = maildir_open(shm_fd, "e@example.com", true, &err);
	assert_true(md >= 0);
	m = make_msg(f->md[0], chunks);
	fds[0] = f->md[0];
	fds[1] = md;
	t.maildir_fds = fds;
	t.maildir_count = 2;
	t.queue_fd = -1;
	spool_commit(f->pool, &m, &t, on_done, &r);
	run_until_done(f, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(list_dir(f->md[0], "new", NULL, 0, &a), 1);
	assert_int_equal(list_dir(md, "new", name, sizeof(name), &b), 1);
	assert_int_equal(a.st_nlink, 1);
	assert_int_equal(b.st_nlink, 1);
	read_file(md, "new", name, data, sizeof(data), &len);
	assert_int_equal(len, strlen("Subject: c\n\ncopy\n"));
	assert_memory_equal(data, "Subject: c\n\ncopy\n", len);
	assert_int_equal(list_dir(md, "tmp", NULL, 0, NULL), 0);
	assert_int_equal(list_dir(f->md[0], "tmp", NULL, 0, NULL), 0);
	close(md);
	close(shm_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", shm);
	assert_int_equal(system(cmd), 0);
}

static void test_spool_abort_removes_tmp(void **state)
{
	struct fixture *f = *state;
	static const char *const chunks[] = {"partial", NULL};
	struct spool_msg *m = make_msg(f->md[0], chunks);

	assert_int_equal(list_dir(f->md[0], "tmp", NULL, 0, NULL), 1);
	spool_msg_abort(&m);
	assert_null(m);
	spool_msg_abort(&m);
	assert_int_equal(list_dir(f->md[0], "tmp", NULL, 0, NULL), 0);
	assert_int_equal(list_dir(f->md[0], "new", NULL, 0, NULL), 0);
}

static void test_spool_no_target_fails(void **state)
{
	struct fixture *f = *state;
	static const char *const chunks[] = {"x\n", NULL};
	struct spool_target t = {0};
	struct result r = {0};
	struct spool_msg *m = make_msg(f->md[0], chunks);

	t.queue_fd = -1;
	spool_commit(f->pool, &m, &t, on_done, &r);
	run_until_done(f, 1);
	assert_int_equal(r.err, EINVAL);
	assert_int_equal(list_dir(f->md[0], "tmp", NULL, 0, NULL), 0);
}

static void test_spool_begin_without_tmp_fails(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;

	assert_null(spool_msg_begin(f->root_fd, &err));
	assert_non_null(strstr(err, "tmp/"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_inv_d3_one_inode_three_maildirs, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d1_missing_new_last_leaves_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d1_missing_new_middle_leaves_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d1_new_not_a_directory,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d1_forget_suppresses_callback_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d1_many_concurrent_commits,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d2_commit_to_maildir_and_queue, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d1_forward_gets_second_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spool_forward_only, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d1_exdev_copy, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_spool_abort_removes_tmp, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_spool_no_target_fails, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_spool_begin_without_tmp_fails,
					    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
