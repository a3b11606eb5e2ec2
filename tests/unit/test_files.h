/*
 * Writing and reading back a whole small file, for the tests of the
 * users and aliases file edits. Include after <cmocka.h>.
 */
#ifndef POSTD_TEST_FILES_H
#define POSTD_TEST_FILES_H

#include <stdio.h>

/* Replaces path with the len bytes of data. */
static inline void test_file_write(const char *path, const char *data,
				   size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* The start of path (up to size - 1 bytes) in buf, NUL-terminated. */
static inline char *test_file_read(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

#endif
