/*
 * The DATA and BDAT readers on arbitrary wire bytes (fuzz every parser).
 * The first byte picks the mode (bit 0: normalise; bit 1: a small size
 * limit from the second byte; bit 2: BDAT instead of DATA). Checks:
 * whole, byte-by-byte and randomly chunked feeding agree exactly;
 * output never exceeds input (twice it when normalising); and, in plain
 * DATA mode, the result matches a direct reading of RFC 5321: the message
 * ends at the first <CRLF>.<CRLF> (the DATA line's CRLF counting as the
 * first), a leading dot is removed from each line, a bare CR is stored as
 * a space, and bare CR/LF, a lone dot next to a bare CR and long lines
 * are reported exactly (INV-S1). BDAT output is the input with each bare
 * CR a space.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "lib/postd_limits.h"
#include "proto/smtp/smtp_data.h"

struct fuzz_result {
	unsigned char *out;
	size_t out_len;
	size_t consumed;
	bool done;
	struct smtp_content content;
};

static size_t fuzz_next_chunk(uint32_t *seed, size_t mode);
static void fuzz_run_data(const uint8_t *in, size_t len, unsigned flags,
			  uint64_t max, size_t mode, struct fuzz_result *r);
static void fuzz_run_bdat(const uint8_t *in, size_t len, unsigned flags,
			  uint64_t max, size_t mode, struct fuzz_result *r);
static void fuzz_same(const struct fuzz_result *a, const struct fuzz_result *b);
static void fuzz_reference(const uint8_t *in, size_t len,
			   const struct fuzz_result *r);
static bool fuzz_dot_next_to_bare_cr(const unsigned char *c, size_t n);
static void fuzz_check_bdat_output(const uint8_t *in, size_t len,
				   const struct fuzz_result *r);

/* mode 0: whole; 1: one byte; else pseudo-random pieces of 1..mode. */
static size_t fuzz_next_chunk(uint32_t *seed, size_t mode)
{
	if (mode == 0)
		return SIZE_MAX;
	if (mode == 1)
		return 1;
	*seed ^= *seed << 13;
	*seed ^= *seed >> 17;
	*seed ^= *seed << 5;
	return 1 + *seed % mode;
}

static void fuzz_run_data(const uint8_t *in, size_t len, unsigned flags,
			  uint64_t max, size_t mode, struct fuzz_result *r)
{
	struct smtp_data d;
	uint32_t seed = 2463534242u ^ (uint32_t)len;
	size_t pos = 0;

	memset(r, 0, sizeof(*r));
	r->out = malloc(2 * len + 8);
	if (r->out == NULL)
		abort();
	smtp_data_init(&d, max, flags);
	while (pos < len && !d.done) {
		size_t piece = fuzz_next_chunk(&seed, mode);
		size_t room, used, olen;
		unsigned char *o;

		if (piece > len - pos)
			piece = len - pos;
		room = smtp_data_out_max(flags, piece);
		o = malloc(room);
		if (o == NULL)
			abort();
		FUZZ_CHECK(smtp_data_feed(&d, in + pos, piece, &used, o, room,
					  &olen) == (d.done ? 1 : 0));
		/* The promised room is enough to take the whole piece. */
		FUZZ_CHECK(used == piece || d.done);
		FUZZ_CHECK(olen <= room);
		memcpy(r->out + r->out_len, o, olen);
		r->out_len += olen;
		pos += used;
		free(o);
	}
	r->consumed = pos;
	r->done = d.done;
	r->content = d.content;
	if ((flags & SMTP_DATA_F_NORMALIZE) != 0)
		FUZZ_CHECK(r->out_len <= 2 * r->consumed);
	else
		FUZZ_CHECK(r->out_len <= r->consumed);
}

/* The same bytes as BDAT chunks of pseudo-random sizes, the last LAST. */
static void fuzz_run_bdat(const uint8_t *in, size_t len, unsigned flags,
			  uint64_t max, size_t mode, struct fuzz_result *r)
{
	struct smtp_bdat b;
	uint32_t seed = 88675123u ^ (uint32_t)len;
	uint32_t cseed = 123456789u;
	size_t pos = 0;

	memset(r, 0, sizeof(*r));
	r->out = malloc(2 * len + 8);
	if (r->out == NULL)
		abort();
	smtp_bdat_init(&b, max, flags);
	while (!b.done) {
		/* Chunk boundaries do not depend on the feeding mode. */
		size_t chunk = fuzz_next_chunk(&cseed, 64);
		size_t end;

		if (chunk > len - pos)
			chunk = len - pos;
		end = pos + chunk;
		FUZZ_CHECK(smtp_bdat_chunk(&b, chunk, end == len) == 0);
		for (;;) {
			size_t piece = fuzz_next_chunk(&seed, mode);
			size_t room, used, olen;
			unsigned char *o;
			int ret;

			if (piece > end - pos)
				piece = end - pos;
			room = smtp_data_out_max(flags, piece);
			o = malloc(room);
			if (o == NULL)
				abort();
			ret = smtp_bdat_feed(&b, in + pos, piece, &used, o,
					     room, &olen);
			FUZZ_CHECK(used == piece && olen <= room);
			memcpy(r->out + r->out_len, o, olen);
			r->out_len += olen;
			pos += used;
			free(o);
			if (ret == 1)
				break;
			FUZZ_CHECK(pos < end);
		}
		FUZZ_CHECK(pos == end);
	}
	FUZZ_CHECK(pos == len);
	r->consumed = pos;
	r->done = true;
	r->content = b.content;
	if ((flags & SMTP_DATA_F_NORMALIZE) != 0)
		FUZZ_CHECK(r->out_len <= 2 * r->consumed);
	else
		FUZZ_CHECK(r->out_len <= r->consumed);
}

static void fuzz_same(const struct fuzz_result *a, const struct fuzz_result *b)
{
	FUZZ_CHECK(a->out_len == b->out_len);
	FUZZ_CHECK(memcmp(a->out, b->out, a->out_len) == 0);
	FUZZ_CHECK(a->consumed == b->consumed);
	FUZZ_CHECK(a->done == b->done);
	FUZZ_CHECK(a->content.size == b->content.size);
	FUZZ_CHECK(a->content.bare_cr == b->content.bare_cr);
	FUZZ_CHECK(a->content.bare_lf == b->content.bare_lf);
	FUZZ_CHECK(a->content.dot_bare_cr == b->content.dot_bare_cr);
	FUZZ_CHECK(a->content.line_too_long == b->content.line_too_long);
	FUZZ_CHECK(a->content.too_big == b->content.too_big);
}

/* In unstuffed content: a line that is just "." between two line breaks
 * of any kind (CRLF, bare CR, bare LF), one of them a bare CR. */
static bool fuzz_dot_next_to_bare_cr(const unsigned char *c, size_t n)
{
	size_t start = 0;
	bool start_bare_cr = false;

	for (size_t i = 0; i < n; i++) {
		bool crlf = c[i] == '\r' && i + 1 < n && c[i + 1] == '\n';
		bool bare_cr = c[i] == '\r' && !crlf;

		if (!crlf && !bare_cr && c[i] != '\n')
			continue;
		if (i - start == 1 && c[start] == '.' &&
		    (start_bare_cr || bare_cr))
			return true;
		if (crlf)
			i++;
		start = i + 1;
		start_bare_cr = bare_cr;
	}
	return false;
}

/* BDAT: the bytes unchanged but for bare CRs, which become spaces. */
static void fuzz_check_bdat_output(const uint8_t *in, size_t len,
				   const struct fuzz_result *r)
{
	FUZZ_CHECK(r->out_len == len);
	for (size_t i = 0; i < len; i++) {
		bool bare_cr =
		    in[i] == '\r' && (i + 1 == len || in[i + 1] != '\n');

		FUZZ_CHECK(r->out[i] == (bare_cr ? ' ' : in[i]));
	}
}

/* RFC 5321 read directly, for plain DATA without a size limit. */
static void fuzz_reference(const uint8_t *in, size_t len,
			   const struct fuzz_result *r)
{
	size_t end = SIZE_MAX, n = 0, line = 0, i;
	bool bare_cr = false, bare_lf = false, too_long = false, dot_cr = false;
	unsigned char *content;

	/* The first <CRLF>.<CRLF>, the DATA command's CRLF included. */
	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		end = 3;
	for (i = 0; end == SIZE_MAX && i + 5 <= len; i++) {
		if (memcmp(in + i, "\r\n.\r\n", 5) == 0)
			end = i + 5;
	}
	FUZZ_CHECK(r->done == (end != SIZE_MAX));
	if (!r->done)
		return;
	FUZZ_CHECK(r->consumed == end);
	/* Remove the leading dot of every line. */
	content = malloc(end);
	if (content == NULL)
		abort();
	for (i = 0; i < end - 3; i++) {
		bool line_start = i == 0 || (i >= 2 && in[i - 2] == '\r' &&
					     in[i - 1] == '\n');

		if (line_start && in[i] == '.') {
			/* ".<CR>" then not LF: a dot removed, a bare CR */
			if (in[i + 1] == '\r' && in[i + 2] != '\n')
				dot_cr = true;
			continue;
		}
		content[n++] = in[i];
	}
	dot_cr = dot_cr || fuzz_dot_next_to_bare_cr(content, n);
	FUZZ_CHECK(r->out_len == n);
	for (i = 0; i < n; i++) {
		bool cr_alone = content[i] == '\r' &&
				(i + 1 == n || content[i + 1] != '\n');

		FUZZ_CHECK(r->out[i] == (cr_alone ? ' ' : content[i]));
	}
	for (i = 0; i < n; i++) {
		if (content[i] == '\r' &&
		    (i + 1 == n || content[i + 1] != '\n'))
			bare_cr = true;
		if (content[i] == '\n' && (i == 0 || content[i - 1] != '\r'))
			bare_lf = true;
		if (content[i] == '\r' && i + 1 < n && content[i + 1] == '\n') {
			line = 0;
			i++;
			continue;
		}
		if (++line > SMTP_MAX_TEXT_LINE - 2)
			too_long = true;
	}
	FUZZ_CHECK(r->content.bare_cr == bare_cr);
	FUZZ_CHECK(r->content.bare_lf == bare_lf);
	FUZZ_CHECK(r->content.line_too_long == too_long);
	FUZZ_CHECK(r->content.dot_bare_cr == dot_cr);
	FUZZ_CHECK(r->content.size == n);
	free(content);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_result whole, other;
	unsigned flags = 0;
	uint64_t max = SMTP_DATA_NO_LIMIT;
	bool bdat;
	const uint8_t *in;
	size_t len;
	/* Exactly len bytes, so ASan sees any read past the end. */
	uint8_t *copy;

	if (size < 2)
		return 0;
	if ((data[0] & 1) != 0)
		flags |= SMTP_DATA_F_NORMALIZE;
	if ((data[0] & 2) != 0)
		max = data[1];
	if ((data[0] & 8) != 0)
		flags |= SMTP_DATA_F_BINARY;
	bdat = (data[0] & 4) != 0;
	len = size - 2;
	copy = malloc(len + 1);
	if (copy == NULL)
		abort();
	memcpy(copy, data + 2, len);
	in = copy;

	if (bdat) {
		fuzz_run_bdat(in, len, flags, max, 0, &whole);
		if ((flags & SMTP_DATA_F_BINARY) != 0 && !whole.content.too_big)
			FUZZ_CHECK(whole.out_len == len &&
				   memcmp(whole.out, in, len) == 0);
		else if ((flags & SMTP_DATA_F_NORMALIZE) == 0 &&
			 !whole.content.too_big)
			fuzz_check_bdat_output(in, len, &whole);
	} else {
		fuzz_run_data(in, len, flags, max, 0, &whole);
		if (flags == 0 && max == SMTP_DATA_NO_LIMIT)
			fuzz_reference(in, len, &whole);
	}
	for (size_t mode = 1; mode <= 17; mode += 8) {
		if (bdat)
			fuzz_run_bdat(in, len, flags, max, mode, &other);
		else
			fuzz_run_data(in, len, flags, max, mode, &other);
		fuzz_same(&whole, &other);
		free(other.out);
	}
	/* Refusal follows the flags. */
	if (whole.content.too_big)
		FUZZ_CHECK(smtp_content_refusal(&whole.content)[0] == '5');
	if ((flags & SMTP_DATA_F_BINARY) != 0 && !whole.content.too_big)
		FUZZ_CHECK(smtp_content_refusal(&whole.content) == NULL);
	free(whole.out);
	free(copy);
	return 0;
}
