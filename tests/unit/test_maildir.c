/* Maildir folders, delivery (INV-D1, INV-D3) and names (INV-U1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/maildir.h"
#include "storage/msg_wire.h"

#include "fsync_log.h"
#include "tmp_maildir.h"

struct fixture {
	char root[64];
	int root_fd;
	int md_fd;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err = NULL;

	assert_non_null(f);
	f->root_fd = tmp_dir_create(f->root, sizeof(f->root), "test_maildir");
	f->md_fd = maildir_open(f->root_fd, "bob@example.com", true, &err);
	assert_true(f->md_fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->md_fd);
	tmp_dir_remove(f->root, f->root_fd);
	free(f);
	return 0;
}

/* Number of entries (without dot files) in MAILDIR/sub. */
static int count_files(int md_fd, const char *sub, char *first,
		       size_t first_size)
{
	int fd = openat(md_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int n = 0;

	assert_true(fd >= 0);
	d = fdopendir(fd);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n++ == 0 && first != NULL)
			snprintf(first, first_size, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

static char *read_file_at(int dir_fd, const char *path, size_t *len_r)
{
	int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC);
	char *buf = malloc(1 << 20);
	ssize_t r;

	assert_true(fd >= 0);
	assert_non_null(buf);
	r = read(fd, buf, 1 << 20);
	assert_true(r >= 0);
	close(fd);
	*len_r = (size_t)r;
	return buf;
}

/* Delivers data in chunks of step bytes; returns the final name. */
static void deliver(int md_fd, const char *data, size_t len, size_t step,
		    char *name, size_t name_size)
{
	const char *err = NULL;
	struct maildir_delivery *d = maildir_delivery_begin(md_fd, &err);
	int err_no = -1;

	assert_non_null(d);
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;

		assert_int_equal(maildir_delivery_write(d, data + off, n, &err),
				 0);
	}
	assert_int_equal(
	    maildir_delivery_commit(&d, name, name_size, &err_no, &err), 0);
	assert_null(d);
	assert_int_equal(err_no, 0);
}

static void test_maildir_open_creates_folders(void **state)
{
	struct fixture *f = *state;
	static const char *const subs[] = {"new", "cur", "tmp"};
	const char *err = NULL;
	struct stat st;
	int fd;

	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(fstatat(f->md_fd, subs[i], &st, 0), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	assert_int_equal(fstatat(f->root_fd, "example.com/bob", &st, 0), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* Opening again, with or without create, finds the same folder. */
	fd = maildir_open(f->root_fd, "bob@example.com", false, &err);
	assert_true(fd >= 0);
	close(fd);
	fd = maildir_open(f->root_fd, "bob@example.com", true, &err);
	assert_true(fd >= 0);
	close(fd);
}

static void test_maildir_open_without_create(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;

	errno = 0;
	assert_int_equal(
	    maildir_open(f->root_fd, "alice@example.com", false, &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(err);
	assert_int_equal(faccessat(f->root_fd, "example.com/alice", F_OK, 0),
			 -1);
}

static void test_inv_u1_maildir_open_rejects_bad_names(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
	    "Bob@example.com",
	    "bob",
	    "../x@example.com",
	    "bob@..",
	    "bob@a/b",
	    ".bob@example.com",
	    "",
	    "bob@",
	    "a/b@example.com",
	    "bob@example.com/../../etc",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *err = NULL;

		errno = 0;
		assert_int_equal(maildir_open(f->root_fd, bad[i], true, &err),
				 -1);
		assert_int_equal(errno, EINVAL);
		assert_string_equal(err, "invalid user name");
	}
}

static void test_inv_u1_maildir_open_refuses_symlink(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;

	assert_int_equal(symlinkat("/tmp", f->root_fd, "evil.com"), 0);
	assert_int_equal(maildir_open(f->root_fd, "bob@evil.com", true, &err),
			 -1);
	assert_non_null(err);
	/* Nothing was created through the link. */
	assert_int_equal(
	    faccessat(f->root_fd, "evil.com/bob", F_OK, AT_SYMLINK_NOFOLLOW),
	    -1);
}

/* INV-D1: the first message to a user makes DOMAIN, LOCAL and new cur
 * tmp; each parent whose entries changed is fsynced before maildir_open()
 * returns, so before any 250. */
static void test_inv_d1_new_maildir_parents_fsynced(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;
	char name[256];
	int fd;

	fsync_log_start(NULL);
	fd = maildir_open(f->root_fd, "new@fresh.example", true, &err);
	fsync_log.on = false;
	assert_true(fd >= 0);
	assert_true(fsync_logged(f->root, ""));
	assert_true(fsync_logged(f->root, "fresh.example"));
	assert_true(fsync_logged(f->root, "fresh.example/new"));
	fsync_log_start(NULL);
	deliver(fd, "Subject: first\r\n\r\nhi\r\n", 22, 64, name, sizeof(name));
	fsync_log.on = false;
	assert_true(fsync_logged(f->root, "fresh.example/new/new"));
	close(fd);
}

/* A second user of an existing domain: only DOMAIN and LOCAL changed. */
static void test_inv_d1_new_local_syncs_domain_not_root(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;
	int fd;

	fsync_log_start(NULL);
	fd = maildir_open(f->root_fd, "carol@example.com", true, &err);
	fsync_log.on = false;
	assert_true(fd >= 0);
	assert_false(fsync_logged(f->root, ""));
	assert_true(fsync_logged(f->root, "example.com"));
	assert_true(fsync_logged(f->root, "example.com/carol"));
	close(fd);
}

/* An existing Maildir costs no fsync at all (every RCPT and login). */
static void test_maildir_open_existing_syncs_nothing(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;
	int fd;

	fsync_log_start(NULL);
	fd = maildir_open(f->root_fd, "bob@example.com", true, &err);
	fsync_log.on = false;
	assert_true(fd >= 0);
	assert_int_equal(fsync_log.count, 0);
	close(fd);
}

/* A parent that cannot be synced refuses the mailbox (a 4xx at RCPT). */
static void test_inv_d1_parent_fsync_failure_refuses(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;

	fsync_log_start("/fail.example");
	errno = 0;
	assert_int_equal(
	    maildir_open(f->root_fd, "dave@fail.example", true, &err), -1);
	fsync_log.on = false;
	assert_int_equal(errno, EIO);
	assert_non_null(strstr(err, "fsync"));
}

static void test_inv_d3_delivery_crlf_and_sizes(void **state)
{
	struct fixture *f = *state;
	const char *msg = "Subject: x\r\n\r\nline\r\n.dot\r\n";
	const char *stored = "Subject: x\n\nline\n.dot\n";
	char name[256], path[300];
	size_t steps[] = {1, 2, 3, 7, 1000};

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		uint64_t w = 0;
		size_t len;
		char *data;

		deliver(f->md_fd, msg, strlen(msg), steps[i], name,
			sizeof(name));
		assert_non_null(strstr(name, ",S=22,W=26"));
		assert_true(maildir_name_wire_size(name, &w));
		assert_int_equal(w, strlen(msg));
		snprintf(path, sizeof(path), "new/%s", name);
		data = read_file_at(f->md_fd, path, &len);
		assert_int_equal(len, strlen(stored));
		assert_memory_equal(data, stored, len);
		free(data);
	}
	/* tmp/ is empty: every file moved to new/ (INV-D3). */
	assert_int_equal(count_files(f->md_fd, "tmp", NULL, 0), 0);
	assert_int_equal(count_files(f->md_fd, "new", NULL, 0), 5);
}

/* The W= in the name is exactly what msg_wire sends without stuffing. */
static void test_maildir_wire_size_matches_msg_wire(void **state)
{
	struct fixture *f = *state;
	static const char *const msgs[] = {
	    "",	  "x",	    "a\nb",	 "a\r\nb\r\n", "a\rb\r",
	    "\r", "\r\r\n", "a\n\n\n",	 ".\r\n..\n",  "a\r\r\r\nb",
	    "\n", "\r\n",   "x\ry\r\nz", "end\r",      "a\n\rb",
	};

	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		for (size_t step = 1; step <= 3; step++) {
			char name[256], path[300];
			uint64_t w = 0, s_fd = 0;
			size_t len, n;
			char *data, out[64];
			struct msg_wire mw;
			int fd;

			deliver(f->md_fd, msgs[i], strlen(msgs[i]), step, name,
				sizeof(name));
			assert_true(maildir_name_wire_size(name, &w));
			snprintf(path, sizeof(path), "new/%s", name);
			data = read_file_at(f->md_fd, path, &len);
			msg_wire_init(&mw, false, -1);
			n = msg_wire_convert(&mw, data, len, out);
			n += msg_wire_finish(&mw, out + n);
			assert_int_equal(w, n);
			fd = openat(f->md_fd, path, O_RDONLY);
			assert_int_equal(msg_wire_size_fd(fd, &s_fd), 0);
			close(fd);
			assert_int_equal(s_fd, w);
			free(data);
		}
	}
}

static void test_maildir_delivery_name_format(void **state)
{
	struct fixture *f = *state;
	char a[256], b[256];
	char host[256];
	const char *p;

	deliver(f->md_fd, "x\n", 2, 2, a, sizeof(a));
	deliver(f->md_fd, "x\n", 2, 2, b, sizeof(b));
	assert_string_not_equal(a, b);
	/* SECS.MUSECPPIDQCOUNTERRRANDOM.HOST,S=2,W=3 */
	p = strchr(a, '.');
	assert_non_null(p);
	assert_int_equal(p[1], 'M');
	assert_non_null(strchr(p, 'P'));
	assert_non_null(strchr(p, 'Q'));
	assert_non_null(strchr(p, 'R'));
	assert_null(strchr(a, '/'));
	assert_null(strchr(a, ':'));
	assert_non_null(strstr(a, ",S=2,W=3"));
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	if (strchr(host, '/') == NULL && strchr(host, ':') == NULL &&
	    strchr(host, ',') == NULL && strlen(host) < 32)
		assert_non_null(strstr(a, host));
}

static void test_maildir_abort_removes_tmp(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;
	struct maildir_delivery *d = maildir_delivery_begin(f->md_fd, &err);

	assert_non_null(d);
	assert_int_equal(maildir_delivery_write(d, "hello\n", 6, &err), 0);
	assert_int_equal(count_files(f->md_fd, "tmp", NULL, 0), 1);
	maildir_delivery_abort(&d);
	assert_null(d);
	assert_int_equal(count_files(f->md_fd, "tmp", NULL, 0), 0);
	assert_int_equal(count_files(f->md_fd, "new", NULL, 0), 0);
}

/* INV-D1: a write that fails (here: over RLIMIT_FSIZE) is reported with
 * its errno, the tmp file is removed and nothing reaches new/. */
static void test_inv_d1_failed_write_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;
	struct maildir_delivery *d;
	struct rlimit old, small = {4096, 4096};
	char *big = malloc(256 * 1024);
	char name[256];
	int err_no = 0, r = 0;

	assert_non_null(big);
	memset(big, 'a', 256 * 1024);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small.rlim_max = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	d = maildir_delivery_begin(f->md_fd, &err);
	assert_non_null(d);
	for (int i = 0; i < 4 && r == 0; i++)
		r = maildir_delivery_write(d, big, 256 * 1024, &err);
	assert_int_equal(r, -1);
	assert_non_null(strstr(err, "write"));
	assert_int_equal(
	    maildir_delivery_commit(&d, name, sizeof(name), &err_no, &err), -1);
	assert_null(d);
	assert_int_equal(err_no, EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(count_files(f->md_fd, "tmp", NULL, 0), 0);
	assert_int_equal(count_files(f->md_fd, "new", NULL, 0), 0);
	free(big);
}

static void test_inv_d1_failed_commit_flush(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;
	struct maildir_delivery *d;
	struct rlimit old, small = {100, 100};
	char buf[1000], name[256];
	int err_no = 0;

	memset(buf, 'b', sizeof(buf));
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small.rlim_max = old.rlim_max;
	d = maildir_delivery_begin(f->md_fd, &err);
	assert_non_null(d);
	/* Buffered: the failure shows only when commit flushes. */
	assert_int_equal(maildir_delivery_write(d, buf, sizeof(buf), &err), 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	assert_int_equal(
	    maildir_delivery_commit(&d, name, sizeof(name), &err_no, &err), -1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(err_no, EFBIG);
	assert_non_null(err);
	assert_int_equal(count_files(f->md_fd, "tmp", NULL, 0), 0);
	assert_int_equal(count_files(f->md_fd, "new", NULL, 0), 0);
}

static void test_inv_d3_reap_tmp(void **state)
{
	struct fixture *f = *state;
	struct timespec ts[2];
	time_t now = time(NULL);
	char left[256];
	int tmp_fd, fd;

	tmp_fd = openat(f->md_fd, "tmp", O_RDONLY | O_DIRECTORY);
	assert_true(tmp_fd >= 0);
	fd = openat(tmp_fd, "old", O_CREAT | O_WRONLY, 0600);
	close(fd);
	fd = openat(tmp_fd, "young", O_CREAT | O_WRONLY, 0600);
	close(fd);
	ts[0].tv_sec = ts[1].tv_sec = now - 36 * 3600 - 10;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(utimensat(tmp_fd, "old", ts, 0), 0);
	ts[0].tv_sec = ts[1].tv_sec = now - 35 * 3600;
	assert_int_equal(utimensat(tmp_fd, "young", ts, 0), 0);
	assert_int_equal(maildir_reap_tmp(f->md_fd, now), 1);
	assert_int_equal(count_files(f->md_fd, "tmp", left, sizeof(left)), 1);
	assert_string_equal(left, "young");
	close(tmp_fd);
}

static void test_maildir_name_wire_size(void **state)
{
	static const struct {
		const char *name;
		bool found;
		uint64_t w;
	} cases[] = {
	    {"1.M1P1Q1R1.host,S=10,W=12", true, 12},
	    {"1.M1P1Q1R1.host,W=12,S=10", true, 12},
	    {"1.M1P1Q1R1.host,W=12:2,S", true, 12},
	    {"1.M1P1Q1R1.host,S=10:2,W=5", false, 0},
	    {"1.M1P1Q1R1.host,S=10", false, 0},
	    {"1.M1P1Q1R1.host", false, 0},
	    {"1.M1P1Q1R1.host,W=", false, 0},
	    {"1.M1P1Q1R1.host,W=12x", false, 0},
	    {"1.M1P1Q1R1.host,W=-1", false, 0},
	    {"1.M1P1Q1R1.host,W=99999999999999999999999", false, 0},
	    {"W=5", false, 0},
	    {"x,W=0", true, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t w = 777;

		assert_int_equal(maildir_name_wire_size(cases[i].name, &w),
				 cases[i].found);
		assert_int_equal(w, cases[i].found ? cases[i].w : 777);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_maildir_open_creates_folders,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_maildir_open_without_create,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_u1_maildir_open_rejects_bad_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_u1_maildir_open_refuses_symlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d1_new_maildir_parents_fsynced, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d1_new_local_syncs_domain_not_root, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_maildir_open_existing_syncs_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d1_parent_fsync_failure_refuses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d3_delivery_crlf_and_sizes,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_maildir_wire_size_matches_msg_wire, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_maildir_delivery_name_format,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_maildir_abort_removes_tmp,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d1_failed_write_leaves_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d1_failed_commit_flush,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d3_reap_tmp, setup,
					    teardown),
	    cmocka_unit_test(test_maildir_name_wire_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
