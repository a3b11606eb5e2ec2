/*
 * Helpers shared by the fuzz targets: a check that crashes the fuzzer on
 * a broken invariant, and a memory file for code that only takes a path.
 */
#ifndef POSTD_FUZZ_UTIL_H
#define POSTD_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* A violated invariant is a crash, so that libFuzzer keeps the input. */
#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",       \
				__FILE__, __LINE__, #cond);                    \
			__builtin_trap();                                      \
		}                                                              \
	} while (0)

/* libFuzzer's entry points: the targets define them. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * A memfd that holds one input at a time; path_r gets a name for it
 * ("/proc/self/fd/N") that fopen() opens afresh each time. Created once
 * per process: a file per input would make the fuzzer disk-bound.
 */
static inline int fuzz_memfd_open(const char *name, char *path_r,
				  size_t path_size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0) {
		perror("memfd_create");
		abort();
	}
	if ((size_t)snprintf(path_r, path_size, "/proc/self/fd/%d", fd) >=
	    path_size)
		abort();
	return fd;
}

/* Replaces the memfd's contents with data. */
static inline void fuzz_memfd_set(int fd, const uint8_t *data, size_t size)
{
	size_t off = 0;

	if (ftruncate(fd, 0) < 0)
		abort();
	while (off < size) {
		ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);

		if (n <= 0)
			abort();
		off += (size_t)n;
	}
}

#endif
