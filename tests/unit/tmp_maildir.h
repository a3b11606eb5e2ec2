/*
 * A directory of its own for each storage test, /tmp/NAME.XXXXXX, empty or
 * made a Maildir, and removed with all below it afterwards. Include after
 * <cmocka.h>; link tmp_maildir.c (tests/unit/meson.build).
 */
#ifndef POSTD_TEST_TMP_MAILDIR_H
#define POSTD_TEST_TMP_MAILDIR_H

#include <stddef.h>

/* Makes /tmp/NAME.XXXXXX, writes its path into root (root_size bytes) and
 * returns it opened as a directory. */
int tmp_dir_create(char *root, size_t root_size, const char *name);
/* As tmp_dir_create(), with new/, cur/ and tmp/ in it: an empty Maildir. */
int tmp_maildir_create(char *root, size_t root_size, const char *name);
/* Closes root_fd and removes root with everything below it. */
void tmp_dir_remove(const char *root, int root_fd);

/* A cmocka fixture: an empty Maildir of its own for each test, named
 * after the test program; *state is a struct tmp_maildir. */
struct tmp_maildir {
	char root[64];
	int root_fd;
};
int tmp_maildir_setup(void **state);
int tmp_maildir_teardown(void **state);

#endif
