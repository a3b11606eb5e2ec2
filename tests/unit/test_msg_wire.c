/* msg_wire: each case whole and one byte at a time (pure parsers), and
 * msg_wire_size_fd agrees with what the converter sends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/msg_wire.h"

struct wire_case {
	const char *name;
	const char *in;
	bool dot_stuff;
	int64_t body_lines;
	const char *out;
};

static const struct wire_case cases[] = {
    {"empty", "", true, -1, ""},
    {"empty top", "", true, 0, ""},
    {"no final newline", "a\nb", true, -1, "a\r\nb\r\n"},
    {"crlf input", "a\r\nb\r\n", true, -1, "a\r\nb\r\n"},
    {"mixed", "a\r\nb\nc", true, -1, "a\r\nb\r\nc\r\n"},
    {"dot lines", ".a\n..b\nx.y\n", true, -1, "..a\r\n...b\r\nx.y\r\n"},
    {"lone dot line", "a\n.\nb\n", true, -1, "a\r\n..\r\nb\r\n"},
    {"lone dot at end", "a\n.", true, -1, "a\r\n..\r\n"},
    {"dot after crlf", "a\r\n.b\r\n", true, -1, "a\r\n..b\r\n"},
    {"no dot stuffing", ".a\n.\n", false, -1, ".a\r\n.\r\n"},
    {"bare cr", "a\rb\n", true, -1, "a\rb\r\n"},
    {"bare cr at end", "a\r", true, -1, "a\r\r\n"},
    {"cr dot is not line start", "a\r.b\n", true, -1, "a\r.b\r\n"},
    {"top 0", "H: 1\nH2: 2\n\nbody1\nbody2\n", true, 0,
     "H: 1\r\nH2: 2\r\n\r\n"},
    {"top 2", "H: 1\n\nb1\nb2\nb3\n", true, 2, "H: 1\r\n\r\nb1\r\nb2\r\n"},
    {"top beyond body", "H: 1\n\nb1\nb2", true, 10, "H: 1\r\n\r\nb1\r\nb2\r\n"},
    {"top header only", "H: 1\nH2: 2", true, 1, "H: 1\r\nH2: 2\r\n"},
    {"top crlf stored", "H: 1\r\n\r\nb1\r\nb2\r\n", true, 1,
     "H: 1\r\n\r\nb1\r\n"},
    {"top empty header", "\nb1\nb2\n", true, 0, "\r\n"},
    {"top dot body", "H: 1\n\n.b1\nb2\n", true, 1, "H: 1\r\n\r\n..b1\r\n"},
    {"top cr cr is not empty", "H: 1\n\r\r\nb1\n\nb2\n", true, 0,
     "H: 1\r\n\r\r\nb1\r\n\r\n"},
    {"top empty body lines", "H: 1\n\n\n\nb3\n", true, 2,
     "H: 1\r\n\r\n\r\n\r\n"},
};

/* Runs the converter feeding step bytes at a time (0: all at once). */
static char *run_case(const struct wire_case *c, size_t step, size_t *len_r)
{
	size_t inlen = strlen(c->in), off = 0, n = 0;
	char *out = malloc(2 * inlen + 3);
	struct msg_wire w;

	assert_non_null(out);
	msg_wire_init(&w, c->dot_stuff, c->body_lines);
	while (off < inlen && !w.done) {
		size_t chunk = step == 0 ? inlen : step;

		if (chunk > inlen - off)
			chunk = inlen - off;
		n += msg_wire_convert(&w, c->in + off, chunk, out + n);
		off += chunk;
	}
	n += msg_wire_finish(&w, out + n);
	*len_r = n;
	return out;
}

static void test_wire_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct wire_case *c = &cases[i];
		size_t whole_len, trickle_len;
		char *whole = run_case(c, 0, &whole_len);
		char *trickle = run_case(c, 1, &trickle_len);

		if (whole_len != strlen(c->out) ||
		    memcmp(whole, c->out, whole_len) != 0 ||
		    trickle_len != whole_len ||
		    memcmp(trickle, whole, whole_len) != 0)
			print_message("failing case: %s\n", c->name);
		assert_int_equal(whole_len, strlen(c->out));
		assert_memory_equal(whole, c->out, whole_len);
		assert_int_equal(trickle_len, whole_len);
		assert_memory_equal(trickle, whole, whole_len);
		free(whole);
		free(trickle);
	}
}

/* Every RETR case: the size from the file is the unstuffed output. */
static uint64_t size_of(const char *data, size_t len)
{
	char path[] = "/tmp/test_msg_wire.XXXXXX";
	int fd = mkstemp(path);
	uint64_t size = UINT64_MAX;

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(msg_wire_size_fd(fd, &size), 0);
	close(fd);
	return size;
}

static void test_wire_size_fd_matches(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wire_case c = cases[i];
		size_t len;
		char *out;

		if (c.body_lines >= 0)
			continue;
		c.dot_stuff = false;
		out = run_case(&c, 0, &len);
		assert_int_equal(size_of(c.in, strlen(c.in)), len);
		free(out);
	}
}

/* A CRLF split by the 64 KiB read buffer still counts once. */
static void test_wire_size_fd_buffer_boundary(void **state)
{
	size_t len = 3 * 65536 + 10;
	char *in = malloc(len), *out = malloc(2 * len + 2);
	struct msg_wire w;
	size_t n;

	(void)state;
	assert_non_null(in);
	assert_non_null(out);
	memset(in, 'a', len);
	in[65535] = '\r';
	in[65536] = '\n';
	in[2 * 65536 - 1] = '\n'; /* bare LF at the end of a buffer */
	in[2 * 65536] = '\n';	  /* bare LF at the start of the next */
	in[len - 1] = 'z';
	msg_wire_init(&w, false, -1);
	n = msg_wire_convert(&w, in, len, out);
	n += msg_wire_finish(&w, out + n);
	assert_int_equal(size_of(in, len), n);
	assert_int_equal(n, len + 2 + 2);
	free(in);
	free(out);
}

static void test_wire_done_stops(void **state)
{
	const char *in = "H: 1\n\nb1\nb2\n";
	char out[64];
	struct msg_wire w;
	size_t n;

	(void)state;
	msg_wire_init(&w, true, 1);
	n = msg_wire_convert(&w, in, strlen(in), out);
	assert_true(w.done);
	assert_int_equal(n, strlen("H: 1\r\n\r\nb1\r\n"));
	/* Feeding after done writes nothing. */
	assert_int_equal(msg_wire_convert(&w, "x\n", 2, out), 0);
	assert_int_equal(msg_wire_finish(&w, out), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wire_table),
	    cmocka_unit_test(test_wire_size_fd_matches),
	    cmocka_unit_test(test_wire_size_fd_buffer_boundary),
	    cmocka_unit_test(test_wire_done_stops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
