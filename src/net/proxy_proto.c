#include "net/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "lib/crc32c.h"

/* Version 2 begins with these 12 bytes, chosen so that no text protocol
 * (and no version 1 line) can start with them. */
static const uint8_t proxy_v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
					 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char proxy_v1_sig[] = "PROXY ";

#define PROXY_V2_FIXED 16
#define PROXY_V2_CMD_LOCAL 0x0
#define PROXY_V2_CMD_PROXY 0x1
#define PROXY_V2_AF_UNSPEC 0x0
#define PROXY_V2_AF_INET 0x1
#define PROXY_V2_AF_INET6 0x2
#define PROXY_V2_AF_UNIX 0x3
#define PROXY_V2_TRANSPORT_UNSPEC 0x0
#define PROXY_V2_STREAM 0x1
#define PROXY_V2_DGRAM 0x2
/* Address blocks: two addresses and two ports (UNIX: two 108-byte
 * paths). */
#define PROXY_V2_INET_LEN 12
#define PROXY_V2_INET6_LEN 36
#define PROXY_V2_UNIX_LEN 216
/* PP2_TYPE_CRC32C: a big-endian CRC-32C of the whole header, computed
 * with its own 4 bytes zeroed. */
#define PROXY_V2_TLV_CRC32C 0x03
#define PROXY_V2_CRC32C_LEN 4
/* Fields of a version 1 line: PROXY, the family, two addresses, two
 * ports. */
#define PROXY_V1_FIELDS 6

static bool proxy_starts_like(const uint8_t *buf, size_t len, const void *sig,
			      size_t sig_len);
static enum proxy_parse_result proxy_parse_v1(const uint8_t *buf, size_t len,
					      struct proxy_header *out,
					      size_t *used_r,
					      const char **why_r);
static int proxy_v1_fields(char *line, char **fields);
static bool proxy_v1_port(const char *s, uint16_t *port_r);
static bool proxy_v1_addrs(char **fields, int family, struct proxy_header *out);
static enum proxy_parse_result proxy_parse_v2(const uint8_t *buf, size_t len,
					      struct proxy_header *out,
					      size_t *used_r,
					      const char **why_r);
static const char *proxy_v2_addrs(const uint8_t *block, size_t block_len,
				  uint8_t fam, struct proxy_header *out,
				  size_t *addr_len_r);
static const char *proxy_v2_tlvs(const uint8_t *hdr, size_t total,
				 size_t tlv_off);
static bool proxy_v2_crc32c_ok(const uint8_t *hdr, size_t total,
			       size_t crc_off);
static void proxy_set_inet(struct sockaddr_storage *ss, socklen_t *len_r,
			   const void *addr, uint16_t port_be);
static void proxy_set_inet6(struct sockaddr_storage *ss, socklen_t *len_r,
			    const void *addr, uint16_t port_be);

/* True if buf so far agrees with sig (it may be shorter than sig). */
static bool proxy_starts_like(const uint8_t *buf, size_t len, const void *sig,
			      size_t sig_len)
{
	return memcmp(buf, sig, len < sig_len ? len : sig_len) == 0;
}

enum proxy_parse_result proxy_proto_parse(const uint8_t *buf, size_t len,
					  struct proxy_header *out,
					  size_t *used_r, const char **why_r)
{
	memset(out, 0, sizeof(*out));
	*used_r = 0;
	*why_r = NULL;
	if (len == 0)
		return PROXY_PARSE_NEED_MORE;
	if (proxy_starts_like(buf, len, proxy_v2_sig, sizeof(proxy_v2_sig)))
		return proxy_parse_v2(buf, len, out, used_r, why_r);
	if (proxy_starts_like(buf, len, proxy_v1_sig, strlen(proxy_v1_sig)))
		return proxy_parse_v1(buf, len, out, used_r, why_r);
	*why_r = "no PROXY protocol header";
	return PROXY_PARSE_ERROR;
}

/*
 * "PROXY TCP4 192.0.2.1 198.51.100.1 56324 110\r\n": one line, CRLF
 * within PROXY_V1_MAX bytes, fields separated by exactly one space.
 */
static enum proxy_parse_result proxy_parse_v1(const uint8_t *buf, size_t len,
					      struct proxy_header *out,
					      size_t *used_r,
					      const char **why_r)
{
	size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
	const uint8_t *lf = memchr(buf, '\n', scan);
	char line[PROXY_V1_MAX + 1];
	char *fields[PROXY_V1_FIELDS] = {NULL};
	size_t line_len;
	int n;

	out->version = 1;
	if (lf == NULL) {
		if (len >= PROXY_V1_MAX) {
			*why_r = "PROXY v1 line longer than 107 bytes";
			return PROXY_PARSE_ERROR;
		}
		return PROXY_PARSE_NEED_MORE;
	}
	line_len = (size_t)(lf - buf);
	if (line_len == 0 || buf[line_len - 1] != '\r') {
		*why_r = "PROXY v1 line not ended by CRLF";
		return PROXY_PARSE_ERROR;
	}
	line_len--;
	for (size_t i = 0; i < line_len; i++) {
		if (buf[i] < 0x20 || buf[i] > 0x7e) {
			*why_r = "PROXY v1 line with a control or 8-bit byte";
			return PROXY_PARSE_ERROR;
		}
	}
	memcpy(line, buf, line_len);
	line[line_len] = '\0';
	*used_r = line_len + 2;
	n = proxy_v1_fields(line, fields);
	/* UNKNOWN: the rest of the line is to be ignored (the spec). */
	if (fields[1] != NULL && strcmp(fields[1], "UNKNOWN") == 0)
		return PROXY_PARSE_DONE;
	if (n != PROXY_V1_FIELDS) {
		*why_r = "PROXY v1 line without exactly 6 fields";
		return PROXY_PARSE_ERROR;
	}
	if (strcmp(fields[1], "TCP4") != 0 && strcmp(fields[1], "TCP6") != 0) {
		*why_r = "PROXY v1 family not TCP4, TCP6 or UNKNOWN";
		return PROXY_PARSE_ERROR;
	}
	if (!proxy_v1_addrs(fields, fields[1][3] == '4' ? AF_INET : AF_INET6,
			    out)) {
		*why_r = "PROXY v1 address or port malformed";
		return PROXY_PARSE_ERROR;
	}
	out->has_addr = true;
	return PROXY_PARSE_DONE;
}

/* Splits at single spaces; an empty field (two spaces, a leading or
 * trailing space) makes the count wrong on purpose. Returns the number of
 * fields, more than PROXY_V1_FIELDS meaning "too many". */
static int proxy_v1_fields(char *line, char **fields)
{
	int n = 0;
	char *p = line;

	for (;;) {
		char *sp = strchr(p, ' ');

		if (*p == ' ' || *p == '\0')
			return PROXY_V1_FIELDS + 1;
		if (n == PROXY_V1_FIELDS)
			return PROXY_V1_FIELDS + 1;
		fields[n++] = p;
		if (sp == NULL)
			return n;
		*sp = '\0';
		p = sp + 1;
	}
}

/* Decimal, 0..65535, no sign and no leading zero (the spec). */
static bool proxy_v1_port(const char *s, uint16_t *port_r)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port_r = (uint16_t)v;
	return true;
}

static bool proxy_v1_addrs(char **fields, int family, struct proxy_header *out)
{
	unsigned char src[sizeof(struct in6_addr)], dst[sizeof(src)];
	uint16_t sport, dport;

	if (inet_pton(family, fields[2], src) != 1 ||
	    inet_pton(family, fields[3], dst) != 1 ||
	    !proxy_v1_port(fields[4], &sport) ||
	    !proxy_v1_port(fields[5], &dport))
		return false;
	if (family == AF_INET) {
		proxy_set_inet(&out->src, &out->src_len, src, htons(sport));
		proxy_set_inet(&out->dst, &out->dst_len, dst, htons(dport));
	} else {
		proxy_set_inet6(&out->src, &out->src_len, src, htons(sport));
		proxy_set_inet6(&out->dst, &out->dst_len, dst, htons(dport));
	}
	return true;
}

/*
 * 12-byte signature, version and command, family and transport, the
 * length of what follows (big-endian), the address block, then TLVs,
 * which are checked to fit; a CRC32C one is verified, the others are
 * skipped.
 */
static enum proxy_parse_result proxy_parse_v2(const uint8_t *buf, size_t len,
					      struct proxy_header *out,
					      size_t *used_r,
					      const char **why_r)
{
	size_t body_len, total, addr_len = 0;
	uint8_t ver_cmd, fam;
	const char *why;

	out->version = 2;
	if (len < PROXY_V2_FIXED)
		return PROXY_PARSE_NEED_MORE;
	ver_cmd = buf[12];
	fam = buf[13];
	body_len = ((size_t)buf[14] << 8) | buf[15];
	total = PROXY_V2_FIXED + body_len;
	if ((ver_cmd >> 4) != 2) {
		*why_r = "PROXY v2 header with an unknown version";
		return PROXY_PARSE_ERROR;
	}
	if ((ver_cmd & 0x0f) != PROXY_V2_CMD_LOCAL &&
	    (ver_cmd & 0x0f) != PROXY_V2_CMD_PROXY) {
		*why_r = "PROXY v2 header with an unknown command";
		return PROXY_PARSE_ERROR;
	}
	if (total > PROXY_V2_MAX) {
		*why_r = "PROXY v2 header longer than 1024 bytes";
		return PROXY_PARSE_ERROR;
	}
	if (len < total)
		return PROXY_PARSE_NEED_MORE;
	*used_r = total;
	/* LOCAL: the balancer speaks for itself (a health check); whatever
	 * follows is to be skipped (the spec). */
	if ((ver_cmd & 0x0f) == PROXY_V2_CMD_LOCAL)
		return PROXY_PARSE_DONE;
	why =
	    proxy_v2_addrs(buf + PROXY_V2_FIXED, body_len, fam, out, &addr_len);
	if (why == NULL)
		why = proxy_v2_tlvs(buf, total, PROXY_V2_FIXED + addr_len);
	if (why != NULL) {
		*used_r = 0;
		*why_r = why;
		return PROXY_PARSE_ERROR;
	}
	return PROXY_PARSE_DONE;
}

/* The address block of a PROXY command; NULL, or why it is refused. */
static const char *proxy_v2_addrs(const uint8_t *block, size_t block_len,
				  uint8_t fam, struct proxy_header *out,
				  size_t *addr_len_r)
{
	uint8_t family = fam >> 4, transport = fam & 0x0f;
	uint16_t sport, dport;

	switch (family) {
	case PROXY_V2_AF_UNSPEC:
		/* Unknown protocol: keep the socket's peer, skip the rest. */
		*addr_len_r = block_len;
		return NULL;
	case PROXY_V2_AF_UNIX:
		/* A path is no peer address: keep the socket's. */
		if (block_len < PROXY_V2_UNIX_LEN)
			return "PROXY v2 UNIX address block too short";
		*addr_len_r = PROXY_V2_UNIX_LEN;
		return NULL;
	case PROXY_V2_AF_INET:
	case PROXY_V2_AF_INET6:
		break;
	default:
		return "PROXY v2 header with an unknown address family";
	}
	/* UDP, or an unspecified transport, over INET: the spec's fallback
	 * to UNSPEC, keeping the socket's peer. */
	if (transport == PROXY_V2_TRANSPORT_UNSPEC ||
	    transport == PROXY_V2_DGRAM) {
		*addr_len_r = block_len;
		return NULL;
	}
	if (transport != PROXY_V2_STREAM)
		return "PROXY v2 header with an unknown transport";
	if (family == PROXY_V2_AF_INET) {
		if (block_len < PROXY_V2_INET_LEN)
			return "PROXY v2 IPv4 address block too short";
		memcpy(&sport, block + 8, 2);
		memcpy(&dport, block + 10, 2);
		proxy_set_inet(&out->src, &out->src_len, block, sport);
		proxy_set_inet(&out->dst, &out->dst_len, block + 4, dport);
		*addr_len_r = PROXY_V2_INET_LEN;
	} else {
		if (block_len < PROXY_V2_INET6_LEN)
			return "PROXY v2 IPv6 address block too short";
		memcpy(&sport, block + 32, 2);
		memcpy(&dport, block + 34, 2);
		proxy_set_inet6(&out->src, &out->src_len, block, sport);
		proxy_set_inet6(&out->dst, &out->dst_len, block + 16, dport);
		*addr_len_r = PROXY_V2_INET6_LEN;
	}
	out->has_addr = true;
	return NULL;
}

/*
 * The TLVs of hdr[tlv_off..total): (type, 16-bit length, value), tiling
 * the rest exactly. HAProxy's specification: when a PP2_TYPE_CRC32C is
 * present, a receiver that supports it must treat a header whose checksum
 * does not match as invalid. NULL, or why the header is refused.
 */
static const char *proxy_v2_tlvs(const uint8_t *hdr, size_t total,
				 size_t tlv_off)
{
	size_t pos = tlv_off, crc_off = 0;

	while (pos < total) {
		size_t vlen;

		if (total - pos < 3)
			return "PROXY v2 TLV runs past the header";
		vlen = ((size_t)hdr[pos + 1] << 8) | hdr[pos + 2];
		if (vlen > total - pos - 3)
			return "PROXY v2 TLV runs past the header";
		if (hdr[pos] == PROXY_V2_TLV_CRC32C) {
			if (vlen != PROXY_V2_CRC32C_LEN)
				return "PROXY v2 CRC32C TLV not 4 bytes long";
			/* Two checksums, each computed with the other
			 * one zeroed or not: no single answer. */
			if (crc_off != 0)
				return "PROXY v2 header with two CRC32C TLVs";
			crc_off = pos + 3;
		}
		pos += 3 + vlen;
	}
	if (crc_off != 0 && !proxy_v2_crc32c_ok(hdr, total, crc_off))
		return "PROXY v2 CRC32C checksum mismatch";
	return NULL;
}

/* The CRC-32C of hdr[0..total) with the 4 bytes at crc_off taken as
 * zeroes, against the big-endian value stored there. hdr stays
 * untouched: the checksum is run over the pieces around the field. */
static bool proxy_v2_crc32c_ok(const uint8_t *hdr, size_t total, size_t crc_off)
{
	static const uint8_t zeroes[PROXY_V2_CRC32C_LEN] = {0};
	const uint8_t *v = hdr + crc_off;
	uint32_t sent = ((uint32_t)v[0] << 24) | ((uint32_t)v[1] << 16) |
			((uint32_t)v[2] << 8) | v[3];
	uint32_t crc = crc32c(0, hdr, crc_off);

	crc = crc32c(crc, zeroes, sizeof(zeroes));
	crc = crc32c(crc, v + PROXY_V2_CRC32C_LEN,
		     total - crc_off - PROXY_V2_CRC32C_LEN);
	return crc == sent;
}

static void proxy_set_inet(struct sockaddr_storage *ss, socklen_t *len_r,
			   const void *addr, uint16_t port_be)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_port = port_be;
	memcpy(&s4->sin_addr, addr, 4);
	*len_r = sizeof(*s4);
}

static void proxy_set_inet6(struct sockaddr_storage *ss, socklen_t *len_r,
			    const void *addr, uint16_t port_be)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	s6->sin6_family = AF_INET6;
	s6->sin6_port = port_be;
	memcpy(&s6->sin6_addr, addr, 16);
	*len_r = sizeof(*s6);
}
