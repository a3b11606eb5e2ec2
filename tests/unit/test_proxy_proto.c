/*
 * The PROXY protocol parser: the examples of HAProxy's specification,
 * every way a header can be cut short, and the malformed ones it must
 * refuse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "lib/crc32c.h"
#include "net/proxy_proto.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static size_t v2_build(uint8_t *out, uint8_t ver_cmd, uint8_t fam,
		       const uint8_t *body, size_t body_len);
static enum proxy_parse_result parse_text(const char *text,
					  struct proxy_header *h,
					  size_t *used_r, const char **why_r);
static void assert_src(const struct proxy_header *h, int family,
		       const char *addr, uint16_t port);
static void assert_every_prefix_needs_more(const uint8_t *buf, size_t len);

static size_t v2_build(uint8_t *out, uint8_t ver_cmd, uint8_t fam,
		       const uint8_t *body, size_t body_len)
{
	memcpy(out, v2_sig, sizeof(v2_sig));
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (uint8_t)(body_len >> 8);
	out[15] = (uint8_t)body_len;
	if (body_len > 0)
		memcpy(out + 16, body, body_len);
	return 16 + body_len;
}

static enum proxy_parse_result parse_text(const char *text,
					  struct proxy_header *h,
					  size_t *used_r, const char **why_r)
{
	return proxy_proto_parse((const uint8_t *)text, strlen(text), h, used_r,
				 why_r);
}

static void assert_src(const struct proxy_header *h, int family,
		       const char *addr, uint16_t port)
{
	char text[INET6_ADDRSTRLEN];

	assert_true(h->has_addr);
	assert_int_equal(h->src.ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)&h->src;

		inet_ntop(AF_INET, &s4->sin_addr, text, sizeof(text));
		assert_int_equal(ntohs(s4->sin_port), port);
		assert_int_equal(h->src_len, sizeof(*s4));
	} else {
		const struct sockaddr_in6 *s6 = (const void *)&h->src;

		inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof(text));
		assert_int_equal(ntohs(s6->sin6_port), port);
		assert_int_equal(h->src_len, sizeof(*s6));
	}
	assert_string_equal(text, addr);
}

/* A header that arrives a byte at a time is never refused early, and
 * every byte of an unfinished header is the header's. */
static void assert_every_prefix_needs_more(const uint8_t *buf, size_t len)
{
	struct proxy_header h;
	const char *why;
	size_t used;

	for (size_t i = 0; i < len; i++)
		assert_int_equal(proxy_proto_parse(buf, i, &h, &used, &why),
				 PROXY_PARSE_NEED_MORE);
}

static void test_v1_tcp4(void **state)
{
	const char *text = "PROXY TCP4 203.0.113.5 192.0.2.10 56324 110\r\n"
			   "USER alice\r\n";
	struct proxy_header h;
	const char *why;
	size_t used;

	(void)state;
	assert_int_equal(parse_text(text, &h, &used, &why), PROXY_PARSE_DONE);
	assert_int_equal(h.version, 1);
	assert_int_equal(used, strlen(text) - strlen("USER alice\r\n"));
	assert_src(&h, AF_INET, "203.0.113.5", 56324);
}

/* The specification's worst cases: the longest TCP4 and TCP6 lines, and
 * the longest UNKNOWN one at exactly 107 bytes. */
static void test_v1_spec_worst_cases(void **state)
{
	static const char *const ok[] = {
	    "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
	    "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	    "PROXY UNKNOWN\r\n",
	    "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	};
	struct proxy_header h;
	const char *why;
	size_t used;

	(void)state;
	assert_int_equal(strlen(ok[3]), PROXY_V1_MAX);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(parse_text(ok[i], &h, &used, &why),
				 PROXY_PARSE_DONE);
		assert_int_equal(used, strlen(ok[i]));
		assert_every_prefix_needs_more((const uint8_t *)ok[i],
					       strlen(ok[i]));
	}
	assert_int_equal(parse_text(ok[0], &h, &used, &why), PROXY_PARSE_DONE);
	assert_src(&h, AF_INET, "255.255.255.255", 65535);
	assert_int_equal(parse_text(ok[1], &h, &used, &why), PROXY_PARSE_DONE);
	assert_src(&h, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		   65535);
	/* UNKNOWN: the connection keeps its socket peer. */
	assert_int_equal(parse_text(ok[2], &h, &used, &why), PROXY_PARSE_DONE);
	assert_false(h.has_addr);
}

static void test_v1_malformed(void **state)
{
	static const char *const bad[] = {
	    "PROXY TCP4 203.0.113.5 192.0.2.10 56324 110\n",
	    "PROXY TCP4 203.0.113.5 192.0.2.10 56324\r\n",
	    "PROXY TCP4 203.0.113.5 192.0.2.10 56324 110 7\r\n",
	    "PROXY TCP4  203.0.113.5 192.0.2.10 56324 110\r\n",
	    "PROXY TCP4 203.0.113.5 192.0.2.10 56324 110 \r\n",
	    "PROXY TCP4 2001:db8::1 192.0.2.10 56324 110\r\n",
	    "PROXY TCP6 203.0.113.5 2001:db8::1 56324 110\r\n",
	    "PROXY TCP4 203.0.113.256 192.0.2.10 56324 110\r\n",
	    "PROXY TCP4 203.0.113.05 192.0.2.10 56324 110\r\n",
	    "PROXY TCP4 203.0.113.5 192.0.2.10 65536 110\r\n",
	    "PROXY TCP4 203.0.113.5 192.0.2.10 056324 110\r\n",
	    "PROXY TCP4 203.0.113.5 192.0.2.10 -1 110\r\n",
	    "PROXY TCP4 203.0.113.5 192.0.2.10 +5 110\r\n",
	    "PROXY UDP4 203.0.113.5 192.0.2.10 56324 110\r\n",
	    "PROXY tcp4 203.0.113.5 192.0.2.10 56324 110\r\n",
	    "PROXY TCP4 203.0.113.5\t192.0.2.10 56324 110\r\n",
	    "PROXY \r\n",
	    "PROXY\r\n",
	    "proxy TCP4 203.0.113.5 192.0.2.10 56324 110\r\n",
	    "USER alice\r\n",
	    "\x16\x03\x01\x02\x00\x01",
	};
	struct proxy_header h;
	const char *why;
	size_t used;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_text(bad[i], &h, &used, &why),
				 PROXY_PARSE_ERROR);
		assert_non_null(why);
	}
}

/* A line that has not ended by byte 107 never will: refused there, not
 * buffered on. */
static void test_v1_too_long(void **state)
{
	char text[300];
	struct proxy_header h;
	const char *why;
	size_t used;

	(void)state;
	memset(text, '1', sizeof(text));
	memcpy(text, "PROXY UNKNOWN ", 14);
	assert_int_equal(proxy_proto_parse((const uint8_t *)text,
					   PROXY_V1_MAX - 1, &h, &used, &why),
			 PROXY_PARSE_NEED_MORE);
	assert_int_equal(proxy_proto_parse((const uint8_t *)text, PROXY_V1_MAX,
					   &h, &used, &why),
			 PROXY_PARSE_ERROR);
	/* A CRLF beyond the limit does not rescue it. */
	memcpy(text + 200, "\r\n", 2);
	assert_int_equal(
	    proxy_proto_parse((const uint8_t *)text, 202, &h, &used, &why),
	    PROXY_PARSE_ERROR);
}

static void test_v2_inet(void **state)
{
	uint8_t body[12 + 7], buf[64];
	struct proxy_header h;
	const char *why;
	size_t used, len;

	(void)state;
	memcpy(body, (uint8_t[]){203, 0, 113, 5}, 4);
	memcpy(body + 4, (uint8_t[]){192, 0, 2, 10}, 4);
	memcpy(body + 8, (uint8_t[]){0xdc, 0x04, 0x00, 0x6e}, 4);
	/* A PP2_TYPE_UNIQUE_ID TLV of 4 bytes, skipped. */
	memcpy(body + 12, (uint8_t[]){0x05, 0x00, 0x04, 'a', 'b', 'c', 'd'}, 7);
	len = v2_build(buf, 0x21, 0x11, body, sizeof(body));
	buf[len] = 'X'; /* the session's first byte, not the header's */
	assert_int_equal(proxy_proto_parse(buf, len + 1, &h, &used, &why),
			 PROXY_PARSE_DONE);
	assert_int_equal(h.version, 2);
	assert_int_equal(used, len);
	assert_src(&h, AF_INET, "203.0.113.5", 0xdc04);
	assert_every_prefix_needs_more(buf, len);
}

static void test_v2_inet6(void **state)
{
	uint8_t body[36] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x05,
			    0x20, 0x01, 0x0d, 0xb8, [31] = 0x01,
			    0x30, 0x39, 0x00, 0x6e};
	uint8_t buf[64];
	struct proxy_header h;
	const char *why;
	size_t used, len;

	(void)state;
	len = v2_build(buf, 0x21, 0x21, body, sizeof(body));
	assert_int_equal(proxy_proto_parse(buf, len, &h, &used, &why),
			 PROXY_PARSE_DONE);
	assert_int_equal(used, len);
	assert_src(&h, AF_INET6, "2001:db8::5", 12345);
}

/* LOCAL is the balancer's own health check: done, no client address,
 * whatever the family says; UNSPEC and UNIX keep the socket peer too. */
static void test_v2_local_unspec_unix(void **state)
{
	uint8_t buf[512], body[216 + 3] = {0};
	struct proxy_header h;
	const char *why;
	size_t used, len;

	(void)state;
	len = v2_build(buf, 0x20, 0x00, NULL, 0);
	assert_int_equal(proxy_proto_parse(buf, len, &h, &used, &why),
			 PROXY_PARSE_DONE);
	assert_false(h.has_addr);
	assert_int_equal(used, 16);
	len = v2_build(buf, 0x20, 0x11, body, 12);
	assert_int_equal(proxy_proto_parse(buf, len, &h, &used, &why),
			 PROXY_PARSE_DONE);
	assert_false(h.has_addr);
	len = v2_build(buf, 0x21, 0x00, body, 5);
	assert_int_equal(proxy_proto_parse(buf, len, &h, &used, &why),
			 PROXY_PARSE_DONE);
	assert_false(h.has_addr);
	assert_int_equal(used, 21);
	/* UDP over IPv4: the spec's fallback to UNSPEC. */
	len = v2_build(buf, 0x21, 0x12, body, 12);
	assert_int_equal(proxy_proto_parse(buf, len, &h, &used, &why),
			 PROXY_PARSE_DONE);
	assert_false(h.has_addr);
	body[216] = 0x04; /* PP2_TYPE_NOOP, empty */
	len = v2_build(buf, 0x21, 0x31, body, sizeof(body));
	assert_int_equal(proxy_proto_parse(buf, len, &h, &used, &why),
			 PROXY_PARSE_DONE);
	assert_false(h.has_addr);
	assert_int_equal(used, len);
}

static void test_v2_malformed(void **state)
{
	static const struct {
		uint8_t ver_cmd, fam;
		size_t body_len;
		uint8_t tlv[4];
	} bad[] = {
	    {0x11, 0x11, 12, {0}},		  /* version 1 in binary */
	    {0x31, 0x11, 12, {0}},		  /* version 3 */
	    {0x22, 0x11, 12, {0}},		  /* command 2 */
	    {0x21, 0x13, 12, {0}},		  /* transport 3 */
	    {0x21, 0x41, 12, {0}},		  /* family 4 */
	    {0x21, 0x11, 11, {0}},		  /* IPv4 block short */
	    {0x21, 0x21, 35, {0}},		  /* IPv6 block short */
	    {0x21, 0x31, 215, {0}},		  /* UNIX block short */
	    {0x21, 0x11, 14, {0x01, 0x00}},	  /* TLV header cut */
	    {0x21, 0x11, 16, {0x01, 0x00, 0x02}}, /* TLV value overruns */
	};
	uint8_t buf[512], body[300];
	struct proxy_header h;
	const char *why;
	size_t used, len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(body, 0, sizeof(body));
		if (bad[i].body_len > 12)
			memcpy(body + 12, bad[i].tlv, bad[i].body_len - 12);
		len = v2_build(buf, bad[i].ver_cmd, bad[i].fam, body,
			       bad[i].body_len);
		assert_int_equal(proxy_proto_parse(buf, len, &h, &used, &why),
				 PROXY_PARSE_ERROR);
		assert_non_null(why);
	}
	/* A broken signature is not a header at all. */
	len = v2_build(buf, 0x21, 0x11, body, 12);
	buf[11] = 0x0B;
	assert_int_equal(proxy_proto_parse(buf, len, &h, &used, &why),
			 PROXY_PARSE_ERROR);
}

/* RFC 3720 B.4 and the usual check value: the checksum is CRC-32C, not
 * zlib's CRC-32 (which gives 0xCBF43926 for "123456789"), and it chains
 * across pieces as the parser uses it. */
static void test_crc32c_known_vectors(void **state)
{
	static const uint8_t zeroes[32] = {0};
	uint8_t ones[32];

	(void)state;
	memset(ones, 0xff, sizeof(ones));
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, zeroes, sizeof(zeroes)), 0x8A9136AAu);
	assert_int_equal(crc32c(0, ones, sizeof(ones)), 0x62A8AB43u);
	assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
	assert_int_equal(crc32c(0, "", 0), 0);
}

/*
 * A header with a PP2_TYPE_CRC32C TLV after another TLV, its checksum
 * (0xb521fc99) computed by an independent implementation over the whole
 * header with the field zeroed. It is taken as it is; changed anywhere,
 * checksum included, it is refused.
 */
static const uint8_t v2_with_crc32c[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
    0x0a, 0x21, 0x11, 0x00, 0x1a, 0xcb, 0x00, 0x71, 0x05, 0xc0, 0x00,
    0x02, 0x0a, 0xdc, 0x04, 0x00, 0x6e, 0x05, 0x00, 0x04, 0x61, 0x62,
    0x63, 0x64, 0x03, 0x00, 0x04, 0xb5, 0x21, 0xfc, 0x99};

static void test_v2_crc32c(void **state)
{
	uint8_t buf[sizeof(v2_with_crc32c)];
	struct proxy_header h;
	const char *why;
	size_t used;

	(void)state;
	memcpy(buf, v2_with_crc32c, sizeof(buf));
	assert_int_equal(proxy_proto_parse(buf, sizeof(buf), &h, &used, &why),
			 PROXY_PARSE_DONE);
	assert_int_equal(used, sizeof(buf));
	assert_src(&h, AF_INET, "203.0.113.5", 0xdc04);
	assert_every_prefix_needs_more(buf, sizeof(buf));
	/* The parser checked without writing: the field is still there. */
	assert_memory_equal(buf, v2_with_crc32c, sizeof(buf));
	/* From the client address to the last byte of the checksum. */
	for (size_t i = 16; i < sizeof(buf); i++) {
		/* TLV lengths: a framing error instead; the checksum's
		 * own type: then there is no checksum to check. */
		if (i == 29 || i == 30 || i == 35 || i == 36 || i == 37)
			continue;
		memcpy(buf, v2_with_crc32c, sizeof(buf));
		buf[i] ^= 0x01;
		assert_int_equal(
		    proxy_proto_parse(buf, sizeof(buf), &h, &used, &why),
		    PROXY_PARSE_ERROR);
		assert_string_equal(why, "PROXY v2 CRC32C checksum mismatch");
		assert_int_equal(used, 0);
	}
}

/* A checksum TLV of another length, or two of them, cannot be checked:
 * refused rather than skipped. */
static void test_v2_crc32c_malformed(void **state)
{
	uint8_t body[12 + 7 + 7] = {203, 0, 113, 5, 192, 0, 2, 10, 0, 1, 0, 2};
	uint8_t buf[64];
	struct proxy_header h;
	const char *why;
	size_t used, len;

	(void)state;
	memcpy(body + 12, (uint8_t[]){0x03, 0x00, 0x03, 0, 0, 0}, 6);
	len = v2_build(buf, 0x21, 0x11, body, 12 + 6);
	assert_int_equal(proxy_proto_parse(buf, len, &h, &used, &why),
			 PROXY_PARSE_ERROR);
	assert_string_equal(why, "PROXY v2 CRC32C TLV not 4 bytes long");
	memcpy(body + 12, (uint8_t[]){0x03, 0x00, 0x04, 0, 0, 0, 0}, 7);
	memcpy(body + 19, (uint8_t[]){0x03, 0x00, 0x04, 0, 0, 0, 0}, 7);
	len = v2_build(buf, 0x21, 0x11, body, sizeof(body));
	assert_int_equal(proxy_proto_parse(buf, len, &h, &used, &why),
			 PROXY_PARSE_ERROR);
	assert_string_equal(why, "PROXY v2 header with two CRC32C TLVs");
}

/* The length field is checked before any waiting: a header claiming 64 KiB
 * is refused at its 16th byte, not buffered. */
static void test_v2_too_long(void **state)
{
	uint8_t buf[16];
	struct proxy_header h;
	const char *why;
	size_t used;

	(void)state;
	v2_build(buf, 0x21, 0x11, NULL, 0);
	buf[14] = 0xff;
	buf[15] = 0xff;
	assert_int_equal(proxy_proto_parse(buf, sizeof(buf), &h, &used, &why),
			 PROXY_PARSE_ERROR);
	buf[14] = (PROXY_V2_MAX - 16) >> 8;
	buf[15] = (PROXY_V2_MAX - 16) & 0xff;
	assert_int_equal(proxy_proto_parse(buf, sizeof(buf), &h, &used, &why),
			 PROXY_PARSE_NEED_MORE);
	buf[15]++;
	assert_int_equal(proxy_proto_parse(buf, sizeof(buf), &h, &used, &why),
			 PROXY_PARSE_ERROR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v1_tcp4),
	    cmocka_unit_test(test_v1_spec_worst_cases),
	    cmocka_unit_test(test_v1_malformed),
	    cmocka_unit_test(test_v1_too_long),
	    cmocka_unit_test(test_v2_inet),
	    cmocka_unit_test(test_v2_inet6),
	    cmocka_unit_test(test_v2_local_unspec_unix),
	    cmocka_unit_test(test_v2_malformed),
	    cmocka_unit_test(test_v2_too_long),
	    cmocka_unit_test(test_crc32c_known_vectors),
	    cmocka_unit_test(test_v2_crc32c),
	    cmocka_unit_test(test_v2_crc32c_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
