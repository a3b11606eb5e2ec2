#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "xmalloc.h"

struct buf {
	char *data;
	size_t len;
	size_t cap; /* allocated bytes, including room for the NUL */
	size_t max;
};

static int buf_reserve(struct buf *b, size_t extra);

struct buf *buf_new(size_t max)
{
	struct buf *b = xcalloc(1, sizeof(*b));

	b->max = max;
	b->cap = max < 64 ? max + 1 : 64;
	b->data = xmalloc(b->cap);
	b->data[0] = '\0';
	return b;
}

void buf_free(struct buf **b)
{
	if (*b == NULL)
		return;
	free((*b)->data);
	free(*b);
	*b = NULL;
}

static int buf_reserve(struct buf *b, size_t extra)
{
	size_t need;

	if (extra > b->max - b->len)
		return -1;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap;
	while (cap < need)
		cap = cap > (b->max + 1) / 2 ? b->max + 1 : cap * 2;
	b->data = xreallocarray(b->data, cap, 1);
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
	if (buf_reserve(b, len) < 0)
		return -1;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

const char *buf_data(const struct buf *b)
{
	return b->data;
}

size_t buf_len(const struct buf *b)
{
	return b->len;
}

size_t buf_max(const struct buf *b)
{
	return b->max;
}

void buf_clear(struct buf *b)
{
	b->len = 0;
	b->data[0] = '\0';
}

void buf_wipe(struct buf *b)
{
	OPENSSL_cleanse(b->data, b->cap);
	buf_clear(b);
}
