/*
 * The stored-message to POP3 wire conversion, fed in chunks of sizes the
 * input chooses. Input: a 4-byte header, then the message.
 *   byte 0: bit 0 dot_stuff, bit 1 TOP (else RETR)
 *   byte 1: TOP's body line count
 *   byte 2: chunking seed; byte 3: largest chunk (0: one byte at a time)
 * Checked: each chunk's output fits in 2 * chunk (the room the header
 * promises, allocated exactly so ASan sees more), the total is at most
 * 2 * input, chunked output equals whole output, every LF leaves as CRLF,
 * a non-empty result ends with CRLF, and msg_wire_size_fd() predicts the
 * size of a RETR without dot-stuffing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "storage/msg_wire.h"

#define FUZZ_WIRE_HEADER 4
/* Whole-message conversion: one chunk as large as the input. */
#define FUZZ_WIRE_WHOLE 0

struct fuzz_out {
	char *data;
	size_t len;
};

static int fuzz_fd = -1;

static void fuzz_convert(const uint8_t *msg, size_t size, bool dot_stuff,
			 int64_t body_lines, uint32_t seed, size_t max_chunk,
			 struct fuzz_out *out);
static size_t fuzz_next_chunk(uint32_t *state, size_t max_chunk);
static void fuzz_check_wire(const struct fuzz_out *out);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[64];

	(void)argc;
	(void)argv;
	fuzz_fd = fuzz_memfd_open("fuzz_msg_wire", path, sizeof(path));
	return 0;
}

/* xorshift32: cheap, and the same seed gives the same chunking. */
static size_t fuzz_next_chunk(uint32_t *state, size_t max_chunk)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return 1 + x % max_chunk;
}

/* Converts msg in chunks of 1..max_chunk bytes, or whole, into out. */
static void fuzz_convert(const uint8_t *msg, size_t size, bool dot_stuff,
			 int64_t body_lines, uint32_t seed, size_t max_chunk,
			 struct fuzz_out *out)
{
	struct msg_wire w;
	uint32_t state = seed * 2654435761u + 1;
	size_t off = 0, n;
	char *buf;

	out->data = malloc(2 * size + 2);
	out->len = 0;
	if (out->data == NULL)
		abort();
	msg_wire_init(&w, dot_stuff, body_lines);
	while (off < size && !w.done) {
		size_t len = max_chunk == FUZZ_WIRE_WHOLE
				 ? size - off
				 : fuzz_next_chunk(&state, max_chunk);

		if (len > size - off)
			len = size - off;
		buf = malloc(2 * len);
		if (buf == NULL)
			abort();
		n = msg_wire_convert(&w, (const char *)msg + off, len, buf);
		FUZZ_CHECK(n <= 2 * len);
		memcpy(out->data + out->len, buf, n);
		out->len += n;
		free(buf);
		off += len;
	}
	buf = malloc(2);
	if (buf == NULL)
		abort();
	n = msg_wire_finish(&w, buf);
	FUZZ_CHECK(n == 0 || n == 2);
	memcpy(out->data + out->len, buf, n);
	out->len += n;
	free(buf);
	FUZZ_CHECK(out->len <= 2 * size + 2);
}

/* Every LF is part of a CRLF; the response ends at a line end so that
 * the terminating "." starts a line. */
static void fuzz_check_wire(const struct fuzz_out *out)
{
	const char *p = out->data, *end = out->data + out->len;

	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		FUZZ_CHECK(p > out->data && p[-1] == '\r');
		p++;
	}
	if (out->len > 0)
		FUZZ_CHECK(out->len >= 2 && end[-2] == '\r' && end[-1] == '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_out whole, chunked;
	const uint8_t *msg = data + FUZZ_WIRE_HEADER;
	bool dot_stuff, top;
	int64_t body_lines;
	size_t msg_len, max_chunk;

	if (size < FUZZ_WIRE_HEADER)
		return 0;
	msg_len = size - FUZZ_WIRE_HEADER;
	dot_stuff = (data[0] & 1) != 0;
	top = (data[0] & 2) != 0;
	body_lines = top ? (int64_t)data[1] : -1;
	max_chunk = data[3] == 0 ? 1 : data[3];

	fuzz_convert(msg, msg_len, dot_stuff, body_lines, 0, FUZZ_WIRE_WHOLE,
		     &whole);
	fuzz_convert(msg, msg_len, dot_stuff, body_lines, data[2], max_chunk,
		     &chunked);
	FUZZ_CHECK(whole.len <= 2 * msg_len + 2);
	FUZZ_CHECK(chunked.len == whole.len);
	FUZZ_CHECK(memcmp(chunked.data, whole.data, whole.len) == 0);
	fuzz_check_wire(&whole);

	if (!dot_stuff && !top) {
		uint64_t wire_size = 0;

		fuzz_memfd_set(fuzz_fd, msg, msg_len);
		FUZZ_CHECK(lseek(fuzz_fd, 0, SEEK_SET) == 0);
		FUZZ_CHECK(msg_wire_size_fd(fuzz_fd, &wire_size) == 0);
		FUZZ_CHECK(wire_size == whole.len);
	}
	free(whole.data);
	free(chunked.data);
	return 0;
}
