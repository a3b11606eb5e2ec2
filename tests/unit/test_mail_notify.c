/* Change notification for IDLE: shared inotify watches, coalesced
 * callbacks, only the files that matter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "storage/folder.h"
#include "storage/mail_notify.h"
#include "storage/maildir.h"

#include "tmp_maildir.h"

struct fixture {
	char root[64];
	int root_fd;
	struct event_base *base;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->root_fd =
	    tmp_maildir_create(f->root, sizeof(f->root), "test_mail_notify");
	f->base = event_base_new();
	assert_non_null(f->base);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	event_base_free(f->base);
	tmp_dir_remove(f->root, f->root_fd);
	free(f);
	return 0;
}

static void deliver(int fd)
{
	const char *err = NULL;
	char name[256];
	int e = 0;
	struct maildir_delivery *d = maildir_delivery_begin(fd, &err);

	assert_non_null(d);
	assert_int_equal(
	    maildir_delivery_write(d, "Subject: x\n\nx\n", 14, &err), 0);
	assert_int_equal(
	    maildir_delivery_commit(&d, name, sizeof(name), &e, &err), 0);
}

static int inotify_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char link[300], target[256];
		ssize_t len;

		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		len = readlink(link, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		n += strstr(target, "inotify") != NULL;
	}
	closedir(d);
	return n;
}

static void count_cb(void *ctx)
{
	(*(int *)ctx)++;
}

/* Runs the loop long enough for the coalescing timer to fire. */
static void run_loop(struct fixture *f)
{
	struct timeval tv = {0, 300000};

	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
}

static void touch(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_APPEND, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x\n", 2), 2);
	close(fd);
}

static void test_deliveries_coalesced_per_session(void **state)
{
	struct fixture *f = *state;
	struct mail_notify *a, *b;
	char err[256];
	int ca = 0, cb = 0;

	a = mail_notify_new(f->base, f->root_fd, count_cb, &ca, err,
			    sizeof(err));
	b = mail_notify_new(f->base, f->root_fd, count_cb, &cb, err,
			    sizeof(err));
	if (a == NULL)
		fprintf(stderr, "%s\n", err);
	assert_non_null(a);
	assert_non_null(b);
	deliver(f->root_fd);
	deliver(f->root_fd);
	deliver(f->root_fd);
	run_loop(f);
	assert_int_equal(ca, 1);
	assert_int_equal(cb, 1);
	/* Nothing changed: nothing called. */
	run_loop(f);
	assert_int_equal(ca, 1);
	mail_notify_free(&b);
	assert_null(b);
	/* A flag change (a rename in cur/) and an index write. */
	touch(f->root_fd, "cur/1.x:2,");
	assert_int_equal(
	    renameat(f->root_fd, "cur/1.x:2,", f->root_fd, "cur/1.x:2,S"), 0);
	run_loop(f);
	assert_int_equal(ca, 2);
	assert_int_equal(cb, 1);
	touch(f->root_fd, "postd-imap.log");
	run_loop(f);
	assert_int_equal(ca, 3);
	/* The cache and unrelated files wake nobody. */
	touch(f->root_fd, "postd-imap.cache");
	touch(f->root_fd, "tmp/partial");
	run_loop(f);
	assert_int_equal(ca, 3);
	mail_notify_free(&a);
}

/* One inotify descriptor per process, however many folders and
 * sessions; it goes when the last watch goes. */
static void test_one_inotify_fd_shared(void **state)
{
	struct fixture *f = *state;
	struct mail_notify *n[4];
	char err[256];
	int sub_fd, before = inotify_fds(), c = 0, c2 = 0;

	assert_int_equal(
	    folder_create(f->root_fd, "Archive", 0, err, sizeof(err)),
	    FOLDER_OK);
	assert_int_equal(
	    folder_open(f->root_fd, "Archive", &sub_fd, err, sizeof(err)),
	    FOLDER_OK);
	n[0] = mail_notify_new(f->base, f->root_fd, count_cb, &c, err,
			       sizeof(err));
	n[1] = mail_notify_new(f->base, f->root_fd, count_cb, &c, err,
			       sizeof(err));
	n[2] =
	    mail_notify_new(f->base, sub_fd, count_cb, &c2, err, sizeof(err));
	n[3] =
	    mail_notify_new(f->base, sub_fd, count_cb, &c2, err, sizeof(err));
	for (int i = 0; i < 4; i++)
		assert_non_null(n[i]);
	assert_int_equal(inotify_fds(), before + 1);
	/* A change in the sub-folder is not one in INBOX. */
	deliver(sub_fd);
	run_loop(f);
	assert_int_equal(c, 0);
	assert_int_equal(c2, 2);
	for (int i = 0; i < 4; i++)
		mail_notify_free(&n[i]);
	assert_int_equal(inotify_fds(), before);
	close(sub_fd);
}

/* A callback may free its own subscription (the session ends IDLE). */
static void free_self_cb(void *ctx)
{
	struct mail_notify **n = ctx;

	mail_notify_free(n);
}

static void test_free_inside_callback(void **state)
{
	struct fixture *f = *state;
	struct mail_notify *n;
	char err[256];

	n = mail_notify_new(f->base, f->root_fd, free_self_cb, &n, err,
			    sizeof(err));
	assert_non_null(n);
	deliver(f->root_fd);
	run_loop(f);
	assert_null(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_deliveries_coalesced_per_session, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_inotify_fd_shared, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_free_inside_callback, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
