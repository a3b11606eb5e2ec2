/*
 * The failure half of POSTD_ASSERT(): one log line, then abort(), unlike
 * fatal() in log.c, which exits cleanly after a setup failure.
 */
#include "lib/postd_assert.h"

#include <stdlib.h>

#include "lib/log.h"

void postd_assert_failed(const char *file, int line, const char *expr)
{
	log_error("assertion failed: %s:%d: %s", file, line, expr);
	abort();
}
