/*
 * The PROXY protocol header (v1 and v2), straight from a load balancer's
 * socket: whatever the bytes, the parser reads only inside them (ASan),
 * a finished header's length is within the input and the limits, an
 * unfinished one is never longer than a header may be, and feeding the
 * same bytes again gives the same verdict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz_util.h"
#include "net/proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_header h, again;
	const char *why = NULL;
	size_t used = 0, used_again = 0;
	uint8_t *copy = malloc(size > 0 ? size : 1);
	enum proxy_parse_result rc;

	if (copy == NULL)
		abort();
	/* An exact-size copy, so ASan sees any read past the end. */
	memcpy(copy, data, size);
	rc = proxy_proto_parse(copy, size, &h, &used, &why);
	switch (rc) {
	case PROXY_PARSE_DONE:
		FUZZ_CHECK(used > 0 && used <= size);
		FUZZ_CHECK(used <= PROXY_HEADER_MAX);
		FUZZ_CHECK(h.version == 1 || h.version == 2);
		FUZZ_CHECK(h.version != 1 || used <= PROXY_V1_MAX);
		FUZZ_CHECK(!h.has_addr || h.src.ss_family == AF_INET ||
			   h.src.ss_family == AF_INET6);
		/* The header alone parses to the same thing. */
		FUZZ_CHECK(proxy_proto_parse(copy, used, &again, &used_again,
					     &why) == PROXY_PARSE_DONE);
		FUZZ_CHECK(used_again == used && again.has_addr == h.has_addr);
		FUZZ_CHECK(!h.has_addr ||
			   memcmp(&again.src, &h.src, sizeof(h.src)) == 0);
		break;
	case PROXY_PARSE_NEED_MORE:
		FUZZ_CHECK(size < PROXY_HEADER_MAX);
		break;
	case PROXY_PARSE_ERROR:
		FUZZ_CHECK(why != NULL);
		break;
	}
	free(copy);
	return 0;
}
