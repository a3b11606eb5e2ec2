#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmp_maildir.h"

int tmp_dir_create(char *root, size_t root_size, const char *name)
{
	int fd;

	snprintf(root, root_size, "/tmp/%s.XXXXXX", name);
	assert_non_null(mkdtemp(root));
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

int tmp_maildir_create(char *root, size_t root_size, const char *name)
{
	int fd = tmp_dir_create(root, root_size, name);

	assert_int_equal(mkdirat(fd, "new", 0700), 0);
	assert_int_equal(mkdirat(fd, "cur", 0700), 0);
	assert_int_equal(mkdirat(fd, "tmp", 0700), 0);
	return fd;
}

void tmp_dir_remove(const char *root, int root_fd)
{
	char cmd[128];

	close(root_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

int tmp_maildir_setup(void **state)
{
	struct tmp_maildir *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->root_fd = tmp_maildir_create(m->root, sizeof(m->root),
					program_invocation_short_name);
	*state = m;
	return 0;
}

int tmp_maildir_teardown(void **state)
{
	struct tmp_maildir *m = *state;

	tmp_dir_remove(m->root, m->root_fd);
	free(m);
	return 0;
}
