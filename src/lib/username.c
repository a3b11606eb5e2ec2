#include "username.h"

#include <string.h>

#include "postd_limits.h"

/* A DNS label is at most 63 octets (RFC 1035 section 2.3.4). */
#define USERNAME_MAX_LABEL 63

static char username_lower(char c);
static bool username_local_char(char c);
static bool username_domain_char(char c);
static int username_copy_local(const char *in, size_t len, char *out);
static int username_copy_domain(const char *in, size_t len, char *out);

static char username_lower(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (char)(c - 'A' + 'a');
	return c;
}

/* Only bytes that are safe as a directory name and in a log line
 * (INV-S2): no '/', no control bytes, no spaces, nothing above 0x7e. */
static bool username_local_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '_' || c == '-' || c == '+' || c == '=';
}

static bool username_domain_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Lowercases and checks a local part into out; returns 0 or -1. */
static int username_copy_local(const char *in, size_t len, char *out)
{
	if (len == 0 || len > MAILBOX_MAX_LOCALPART)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = username_lower(in[i]);

		if (!username_local_char(c))
			return -1;
		/* A leading dot or ".." could name "." or ".." as a path. */
		if (c == '.' && (i == 0 || i == len - 1 || out[i - 1] == '.'))
			return -1;
		out[i] = c;
	}
	return 0;
}

/* Lowercases and checks a domain into out: dot-separated non-empty
 * labels that neither start nor end with '-'. */
static int username_copy_domain(const char *in, size_t len, char *out)
{
	size_t label_start = 0;

	if (len == 0 || len > MAILBOX_MAX_DOMAIN)
		return -1;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? username_lower(in[i]) : '.';

		if (c == '.') {
			size_t label_len = i - label_start;

			if (label_len == 0 || label_len > USERNAME_MAX_LABEL)
				return -1;
			if (out[label_start] == '-' || out[i - 1] == '-')
				return -1;
			label_start = i + 1;
		} else if (!username_domain_char(c)) {
			return -1;
		}
		if (i < len)
			out[i] = c;
	}
	return 0;
}

int username_normalize(const char *in, size_t inlen, const char *default_domain,
		       char *out, size_t outsize)
{
	const char *at, *domain;
	size_t local_len, domain_len;

	if (in == NULL || out == NULL || inlen == 0 || inlen > USERNAME_MAX_LEN)
		return -1;
	at = memchr(in, '@', inlen);
	if (at != NULL) {
		local_len = (size_t)(at - in);
		domain = at + 1;
		domain_len = inlen - local_len - 1;
	} else {
		if (default_domain == NULL)
			return -1;
		local_len = inlen;
		domain = default_domain;
		domain_len = strnlen(default_domain, MAILBOX_MAX_DOMAIN + 1);
	}
	if (local_len + 1 + domain_len >= outsize)
		return -1;
	/* A second '@' is caught by the domain charset. */
	if (username_copy_local(in, local_len, out) < 0)
		return -1;
	out[local_len] = '@';
	if (username_copy_domain(domain, domain_len, out + local_len + 1) < 0)
		return -1;
	out[local_len + 1 + domain_len] = '\0';
	return 0;
}

bool username_is_canonical(const char *s)
{
	char buf[USERNAME_BUF_SIZE];
	size_t len;

	if (s == NULL)
		return false;
	len = strnlen(s, USERNAME_MAX_LEN + 1);
	if (username_normalize(s, len, NULL, buf, sizeof(buf)) < 0)
		return false;
	return strcmp(buf, s) == 0;
}

const char *username_domain(const char *canonical, size_t *local_len_r)
{
	const char *at = strchr(canonical, '@');

	if (at == NULL) {
		*local_len_r = strlen(canonical);
		return canonical + *local_len_r;
	}
	*local_len_r = (size_t)(at - canonical);
	return at + 1;
}
