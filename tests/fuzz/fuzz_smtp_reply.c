/*
 * The outbound SMTP client's reply and EHLO parsers on bytes from a
 * hostile server (fuzz every parser). Checks, besides memory errors: the
 * input is parsed the same whole and one byte at a time; every reply has
 * a code 200..599, at most SMTP_CLIENT_MAX_REPLY_LINES lines and text
 * within its cap (INV-S3); an enhanced code starts with the code's class;
 * the formatted reply holds no CR or LF (INV-S2); and the DATA encoder
 * never writes a lone "." line before the end marker.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/smtp_client.h"
#include "fuzz_util.h"

#define FUZZ_MAX_REPLIES 64

static void fuzz_check_reply(const struct smtp_reply *r);
static bool fuzz_parse_all(const uint8_t *data, size_t size, bool trickle,
			   unsigned *codes, size_t *count_r);
static void fuzz_check_encoder(const uint8_t *data, size_t size);

static void fuzz_check_reply(const struct smtp_reply *r)
{
	char out[SMTP_CLIENT_MAX_REPLY_TEXT + 64];
	struct smtp_ehlo e;

	FUZZ_CHECK(r->code >= 200 && r->code <= 599);
	FUZZ_CHECK(r->line_count >= 1 &&
		   r->line_count <= SMTP_CLIENT_MAX_REPLY_LINES);
	FUZZ_CHECK(r->text_len < sizeof(r->text));
	FUZZ_CHECK(strlen(r->text) <= r->text_len);
	if (r->enhanced[0] != '\0') {
		FUZZ_CHECK(r->enhanced[0] == (char)('0' + r->code / 100));
		FUZZ_CHECK(strncmp(r->enhanced, r->text, strlen(r->enhanced)) ==
			   0);
	}
	smtp_reply_format(r, out, sizeof(out));
	FUZZ_CHECK(strpbrk(out, "\r\n") == NULL);
	smtp_ehlo_parse(r, &e);
	FUZZ_CHECK(e.size || e.size_max == 0);
}

/* Returns true if the parser refused the input. */
static bool fuzz_parse_all(const uint8_t *data, size_t size, bool trickle,
			   unsigned *codes, size_t *count_r)
{
	bool failed = false;
	struct smtp_reply_parser *p = malloc(sizeof(*p));
	struct smtp_reply *r = malloc(sizeof(*r));
	size_t off = 0, n = 0;

	if (p == NULL || r == NULL)
		abort();
	smtp_reply_parser_init(p);
	while (off < size) {
		size_t len = trickle ? 1 : size - off, used;
		const char *error = NULL;
		int rv = smtp_reply_parse(p, (const char *)data + off, len,
					  &used, r, &error);

		if (rv < 0) {
			FUZZ_CHECK(error != NULL);
			failed = true;
			break;
		}
		FUZZ_CHECK(used <= len);
		off += used;
		if (rv == 1) {
			FUZZ_CHECK(used >= 1 && data[off - 1] == '\n');
			fuzz_check_reply(r);
			if (n < FUZZ_MAX_REPLIES)
				codes[n] = r->code;
			n++;
		} else {
			FUZZ_CHECK(used == len);
		}
	}
	free(p);
	free(r);
	*count_r = n;
	return failed;
}

static void fuzz_check_encoder(const uint8_t *data, size_t size)
{
	struct smtp_data_encoder e;
	char *out = malloc(2 * size + 8);
	size_t o;

	if (out == NULL)
		abort();
	smtp_data_encoder_init(&e);
	o = smtp_data_encode(&e, (const char *)data, size, out);
	FUZZ_CHECK(o <= 2 * size);
	o += smtp_data_encode_end(&e, out + o);
	FUZZ_CHECK(o >= 3 && memcmp(out + o - 3, ".\r\n", 3) == 0);
	/* The only "\n.\r\n" (or leading ".\r\n") is the end marker. */
	if (o > 3)
		FUZZ_CHECK(memcmp(out, ".\r\n", 3) != 0);
	for (size_t i = 0; i + 4 <= o; i++) {
		if (out[i] == '\n' && memcmp(out + i + 1, ".\r\n", 3) == 0)
			FUZZ_CHECK(i + 4 == o);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned codes1[FUZZ_MAX_REPLIES], codes2[FUZZ_MAX_REPLIES];
	size_t n1, n2;
	bool f1, f2;

	f1 = fuzz_parse_all(data, size, false, codes1, &n1);
	f2 = fuzz_parse_all(data, size, true, codes2, &n2);
	FUZZ_CHECK(n1 == n2);
	FUZZ_CHECK(f1 == f2);
	for (size_t i = 0; i < n1 && i < FUZZ_MAX_REPLIES; i++)
		FUZZ_CHECK(codes1[i] == codes2[i]);
	fuzz_check_encoder(data, size);
	return 0;
}
