/*
 * Cursor parsers (see doc/hacking.md): each takes a pointer to the cursor,
 * advances it only on success, and returns 0, or -1 leaving it unchanged.
 * Integers reject empty input, signs, overflow and leading zeros where
 * noted; trailing noise is left for the caller's next parser (typically
 * parse_end()).
 */
#ifndef POSTD_PARSE_H
#define POSTD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decimal digits only, value <= max. */
int parse_uint64(const char **p, uint64_t max, uint64_t *value_r);
int parse_uint32(const char **p, uint32_t max, uint32_t *value_r);
/* Exactly one space (0x20). */
int parse_space(const char **p);
/* A run of bytes in 0x21..0x7e, 1..max bytes long; copied to dst
 * (NUL-terminated, dstsize > max). */
int parse_word(const char **p, char *dst, size_t dstsize, size_t max);
/* Succeeds only at the end of the string. */
int parse_end(const char **p);

/* ASCII case-insensitive comparison of the first n bytes. */
bool ascii_strncaseeq(const char *a, const char *b, size_t n);
void ascii_lowercase(char *s);

#endif
