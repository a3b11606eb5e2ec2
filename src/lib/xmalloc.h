/*
 * Allocation that cannot fail: running out of memory is fatal (see
 * doc/hacking.md). Size arithmetic is overflow-checked here, not at call sites.
 */
#ifndef POSTD_XMALLOC_H
#define POSTD_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
/* Grows an array of nmemb elements of size bytes; fatal on overflow. */
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Frees *p and sets it to NULL. */
#define XFREE(p)                                                               \
	do {                                                                   \
		free(p);                                                       \
		(p) = NULL;                                                    \
	} while (0)

#endif
