/*
 * The PROXY protocol (HAProxy's specification, versions 1 and 2): the
 * header a load balancer sends before anything else on a connection, to
 * say whose connection it is. A pure parser: bytes in, a verdict out, no
 * I/O, so that it can be unit-tested and fuzzed.
 *
 * The header is hostile input like any other (INV-S3): a version 1 line is
 * at most PROXY_V1_MAX bytes, a version 2 header at most PROXY_V2_MAX, and
 * the parser never reads past the length it was given.
 */
#ifndef POSTD_PROXY_PROTO_H
#define POSTD_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "PROXY TCP6 " + two full IPv6 addresses + two ports + CRLF. */
#define PROXY_V1_MAX 107
/* The fixed 16 bytes, an IPv6 address block (36) and room for TLVs the
 * balancer may add (unique id, TLS details); a longer header is refused
 * rather than buffered. */
#define PROXY_V2_MAX 1024
/* The most bytes a header may take: what a reader must be able to hold. */
#define PROXY_HEADER_MAX PROXY_V2_MAX

struct proxy_header {
	int version; /* 1 or 2 */
	/*
	 * False when the header carries no usable client address: v1
	 * "UNKNOWN", v2 LOCAL (the balancer's own health check), v2 UNSPEC
	 * or UNIX. The connection then keeps its socket peer.
	 */
	bool has_addr;
	struct sockaddr_storage src; /* the client, when has_addr */
	socklen_t src_len;
	struct sockaddr_storage dst; /* the address the client connected to */
	socklen_t dst_len;
};

enum proxy_parse_result {
	PROXY_PARSE_ERROR = -1,
	PROXY_PARSE_NEED_MORE = 0,
	PROXY_PARSE_DONE = 1,
};

/*
 * Parses the header at the start of buf[0..len). DONE: *out is filled and
 * *used_r is the header's length (what follows belongs to the session).
 * NEED_MORE: every byte of buf belongs to an unfinished header, so the
 * caller may consume all of them and wait for more. ERROR: *why_r says why
 * (a static string).
 */
enum proxy_parse_result proxy_proto_parse(const uint8_t *buf, size_t len,
					  struct proxy_header *out,
					  size_t *used_r, const char **why_r);

#endif
