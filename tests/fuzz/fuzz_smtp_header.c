/*
 * Fuzz target for the submission header checks: the input goes through
 * whole and in chunks whose sizes come from its first byte; the output
 * the verdict and the Received: count must not depend on the chunking,
 * every input byte must come out (lines longer than the scanner holds
 * included), and the end hook must run exactly once.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proto/smtp/smtp_header.h"

struct sink {
	char *buf;
	size_t len, cap;
	int ends;
	unsigned received; /* Received: fields counted */
};

static void sink_out(void *ctx, const char *data, size_t len)
{
	struct sink *s = ctx;

	FUZZ_CHECK(s->len + len <= s->cap);
	memcpy(s->buf + s->len, data, len);
	s->len += len;
}

static void sink_end(void *ctx, bool have_id, bool have_date)
{
	struct sink *s = ctx;

	(void)have_id;
	(void)have_date;
	s->ends++;
}

static bool run(const char *in, size_t len, size_t step, struct sink *s)
{
	struct smtp_header_scan h;

	smtp_header_init(&h, "alice@example.org", sink_out, sink_end, s);
	for (size_t i = 0; i < len; i += step)
		smtp_header_feed(&h, in + i, len - i < step ? len - i : step);
	smtp_header_finish(&h);
	FUZZ_CHECK(s->ends == 1);
	s->received = h.received_count;
	return h.from_mismatch;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sink a = {0}, b = {0};
	size_t step;
	bool ma, mb;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 17 + 1;
	a.cap = b.cap = size;
	a.buf = malloc(size);
	b.buf = malloc(size);
	if (a.buf == NULL || b.buf == NULL)
		abort();
	ma = run((const char *)data + 1, size - 1, size, &a);
	mb = run((const char *)data + 1, size - 1, step, &b);
	FUZZ_CHECK(ma == mb);
	FUZZ_CHECK(a.received == b.received);
	FUZZ_CHECK(a.len == size - 1 && b.len == size - 1);
	FUZZ_CHECK(memcmp(a.buf, data + 1, a.len) == 0);
	FUZZ_CHECK(memcmp(b.buf, data + 1, b.len) == 0);
	smtp_header_from_is((const char *)data + 1, size - 1,
			    "alice@example.org");
	free(a.buf);
	free(b.buf);
	return 0;
}
