#include "parse.h"

#include <string.h>

int parse_uint64(const char **p, uint64_t max, uint64_t *value_r)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');

		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
		s++;
	}
	*value_r = v;
	*p = s;
	return 0;
}

int parse_uint32(const char **p, uint32_t max, uint32_t *value_r)
{
	uint64_t v;

	if (parse_uint64(p, max, &v) < 0)
		return -1;
	*value_r = (uint32_t)v;
	return 0;
}

int parse_space(const char **p)
{
	if (**p != ' ')
		return -1;
	(*p)++;
	return 0;
}

int parse_word(const char **p, char *dst, size_t dstsize, size_t max)
{
	const char *s = *p;
	size_t n = 0;

	while (s[n] > 0x20 && s[n] < 0x7f)
		n++;
	if (n == 0 || n > max || n >= dstsize)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	*p = s + n;
	return 0;
}

int parse_end(const char **p)
{
	return **p == '\0' ? 0 : -1;
}

bool ascii_strncaseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ca = a[i], cb = b[i];

		if (ca >= 'A' && ca <= 'Z')
			ca = (char)(ca - 'A' + 'a');
		if (cb >= 'A' && cb <= 'Z')
			cb = (char)(cb - 'A' + 'a');
		if (ca != cb)
			return false;
		if (ca == '\0')
			return true;
	}
	return true;
}

void ascii_lowercase(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
}
