/*
 * Fuzz target for the Maildir message writer: the input, fed in chunks
 * whose sizes come from its first byte, is stored (CRLF as LF) in a
 * memory file; the sizes counted on the way must equal the file's size
 * (,S=) and the bytes msg_wire sends for it (,W=), which POP3 LIST shows.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "storage/msg_file.h"
#include "storage/msg_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct msg_file f;
	struct stat st;
	uint64_t wire = 0;
	size_t step;
	int fd;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 13 + 1;
	fd = memfd_create("fuzz_msg_file", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	msg_file_init(&f, fd);
	for (size_t i = 1; i < size; i += step) {
		size_t n = size - i < step ? size - i : step;

		FUZZ_CHECK(msg_file_write(&f, data + i, n) == 0);
	}
	FUZZ_CHECK(msg_file_finish(&f) == 0);
	FUZZ_CHECK(fstat(fd, &st) == 0);
	FUZZ_CHECK((uint64_t)st.st_size == f.stored);
	FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	FUZZ_CHECK(msg_wire_size_fd(fd, &wire) == 0);
	FUZZ_CHECK(wire == f.wire);
	close(fd);
	return 0;
}
