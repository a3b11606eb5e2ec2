/*
 * The IMAP index log (postd-imap.log) is read back from disk, where a
 * crash, a full disk or another program may have left anything: whatever
 * the bytes, mail_index_check() answers valid or invalid without reading
 * past the input, leaking or looping, and answers the same twice.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "storage/mail_index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int r = mail_index_check(data, size);

	FUZZ_CHECK(r == 0 || r == -1);
	FUZZ_CHECK(mail_index_check(data, size) == r);
	return 0;
}
