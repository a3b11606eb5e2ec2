/*
 * The one bounded buffer type (see doc/hacking.md): created with a maximum,
 * grows up to it, fails cleanly past it. Fields are reached only through
 * this API. The contents are always NUL-terminated so they can be used as
 * a C string when no NUL was appended.
 */
#ifndef POSTD_BUF_H
#define POSTD_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* A buffer that may hold at most max bytes (plus the terminating NUL). */
struct buf *buf_new(size_t max);
void buf_free(struct buf **b);

/* Each append returns 0, or -1 (and changes nothing) when the result
 * would exceed the maximum. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *buf_data(const struct buf *b);
size_t buf_len(const struct buf *b);
size_t buf_max(const struct buf *b);
void buf_clear(struct buf *b);
/* Forgets the contents after wiping them (for secrets). */
void buf_wipe(struct buf *b);

#endif
