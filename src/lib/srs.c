/*
 * SRS forward and reverse (see srs.h and doc/internals/srs.md). Debian
 * has no libsrs2 package (postsrsd carries its own copy); the scheme is a
 * page of string handling around one HMAC-SHA1, which OpenSSL provides.
 */
#include "lib/srs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "lib/safe_open.h"

#define SRS_DAY (24 * 60 * 60)
/* Two base32 characters: the timestamp wraps every 1024 days. */
#define SRS_TIME_SLOTS 1024
#define SRS_SEP '='
/* Random octets of a new secret (base64 in the file). */
#define SRS_NEW_SECRET_BYTES 24

struct srs_span {
	const char *p;
	size_t len;
};

static const char srs_base32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
static const char srs_base64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "abcdefghijklmnopqrstuvwxyz0123456789+/";

static bool srs_hash(const struct srs_secrets *s, size_t idx,
		     const struct srs_span *fields, size_t n,
		     char out[SRS_HASH_LEN + 1]);
static bool srs_hash_valid(const struct srs_secrets *s, struct srs_span hash,
			   const struct srs_span *fields, size_t n);
static void srs_timestamp(time_t now, char out[3]);
static int srs_timestamp_days(struct srs_span stamp);
static bool srs_next_field(struct srs_span *rest, struct srs_span *field);
static bool srs_dot_atom(const char *p, size_t len);
static bool srs_host_name(struct srs_span host);
static enum srs_result srs_put(char *out, size_t out_size, size_t local_max,
			       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum srs_result srs_reverse0(const struct srs_secrets *s,
				    struct srs_span rest, time_t now, char *out,
				    size_t out_size);
static enum srs_result srs_reverse1(const struct srs_secrets *s,
				    struct srs_span rest, char *out,
				    size_t out_size);

const char *srs_result_name(enum srs_result r)
{
	switch (r) {
	case SRS_OK:
		return "ok";
	case SRS_NOT_SRS:
		return "not an SRS address";
	case SRS_MALFORMED:
		return "malformed";
	case SRS_BAD_HASH:
		return "bad hash";
	case SRS_EXPIRED:
		return "expired";
	case SRS_TOO_LONG:
		return "too long";
	case SRS_NO_SECRET:
		return "no secret";
	}
	return "?";
}

int srs_secrets_parse(struct srs_secrets *s, const char *text, size_t len,
		      const char **error_r)
{
	size_t pos = 0;

	srs_secrets_clear(s);
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : len;
		size_t n = end - pos;

		if (n > 0 && text[end - 1] == '\r')
			n--;
		if (n > 0) {
			if (s->count >= SRS_MAX_SECRETS) {
				*error_r = "more than 8 secrets";
				goto fail;
			}
			if (n > SRS_MAX_SECRET_LEN) {
				*error_r = "a secret longer than 255 octets";
				goto fail;
			}
			if (memchr(text + pos, '\0', n) != NULL) {
				*error_r = "a NUL octet in a secret";
				goto fail;
			}
			memcpy(s->key[s->count], text + pos, n);
			s->len[s->count++] = n;
		}
		pos = end + 1;
	}
	if (s->count == 0) {
		*error_r = "no secret in the file";
		return -1;
	}
	return 0;
fail:
	srs_secrets_clear(s);
	return -1;
}

int srs_secrets_load(struct srs_secrets *s, const char *path, char *error,
		     size_t error_size)
{
	const struct safe_open_rules rules = {SRS_MAX_FILE_SIZE, false};
	char text[SRS_MAX_FILE_SIZE];
	const char *cause;
	struct stat st;
	ssize_t n;
	int fd;

	fd = safe_open_regular(AT_FDCWD, path, O_RDONLY, &rules, &st, &cause);
	if (fd < 0) {
		snprintf(error, error_size, "%s: %s", path, cause);
		return -1;
	}
	n = read(fd, text, sizeof(text));
	close(fd);
	if (n < 0) {
		snprintf(error, error_size, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (srs_secrets_parse(s, text, (size_t)n, &cause) < 0) {
		snprintf(error, error_size, "%s: %s", path, cause);
		OPENSSL_cleanse(text, sizeof(text));
		return -1;
	}
	OPENSSL_cleanse(text, sizeof(text));
	if ((st.st_mode & 077) != 0)
		snprintf(error, error_size,
			 "%s: readable by others (mode %03o): chmod 600", path,
			 (unsigned)(st.st_mode & 0777));
	else if (error_size > 0)
		error[0] = '\0';
	return 0;
}

int srs_secret_create(const char *path, char *error, size_t error_size)
{
	unsigned char raw[SRS_NEW_SECRET_BYTES];
	unsigned char line[4 * SRS_NEW_SECRET_BYTES / 3 + 2];
	int fd, len;

	if (access(path, F_OK) == 0)
		return 0;
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		snprintf(error, error_size, "no random octets for %s", path);
		return -1;
	}
	len = EVP_EncodeBlock(line, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	line[len++] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		OPENSSL_cleanse(line, sizeof(line));
		if (errno == EEXIST)
			return 0;
		snprintf(error, error_size, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (write(fd, line, (size_t)len) != len || fsync(fd) < 0 ||
	    close(fd) < 0 || safe_sync_parent(path) < 0) {
		snprintf(error, error_size, "%s: %s", path, strerror(errno));
		OPENSSL_cleanse(line, sizeof(line));
		unlink(path);
		return -1;
	}
	OPENSSL_cleanse(line, sizeof(line));
	return 1;
}

void srs_secrets_clear(struct srs_secrets *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
}

bool srs_is_srs_local(const char *local, size_t len)
{
	return len >= 5 && strncasecmp(local, "SRS", 3) == 0 &&
	       (local[3] == '0' || local[3] == '1') &&
	       strchr("=-+", local[4]) != NULL && local[4] != '\0';
}

/* HMAC-SHA1 over the fields, lowercased, then the first SRS_HASH_LEN
 * base64 characters (libsrs2's srs_hash_create). */
static bool srs_hash(const struct srs_secrets *s, size_t idx,
		     const struct srs_span *fields, size_t n,
		     char out[SRS_HASH_LEN + 1])
{
	unsigned char data[3 * SRS_MAX_ADDRESS], md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		if (fields[i].len > sizeof(data) - len)
			return false;
		for (size_t j = 0; j < fields[i].len; j++) {
			char c = fields[i].p[j];

			data[len++] =
			    (unsigned char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a'
								 : c);
		}
	}
	if (HMAC(EVP_sha1(), s->key[idx], (int)s->len[idx], data, len, md,
		 &md_len) == NULL ||
	    md_len < 3)
		return false;
	out[0] = srs_base64[md[0] >> 2];
	out[1] = srs_base64[((md[0] & 0x03) << 4) | (md[1] >> 4)];
	out[2] = srs_base64[((md[1] & 0x0f) << 2) | (md[2] >> 6)];
	out[3] = srs_base64[md[2] & 0x3f];
	out[4] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
	return true;
}

/* libsrs2 compares the first SRS_HASH_LEN characters without case; a
 * longer hash is cut, a shorter one is refused. Constant time: the
 * comparison does not tell how many characters matched. */
static bool srs_hash_valid(const struct srs_secrets *s, struct srs_span hash,
			   const struct srs_span *fields, size_t n)
{
	char given[SRS_HASH_LEN], want[SRS_HASH_LEN + 1];
	bool ok = false;

	if (hash.len < SRS_HASH_LEN)
		return false;
	for (size_t i = 0; i < SRS_HASH_LEN; i++) {
		char c = hash.p[i];

		given[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	for (size_t k = 0; k < s->count; k++) {
		if (!srs_hash(s, k, fields, n, want))
			continue;
		for (size_t i = 0; i < SRS_HASH_LEN; i++) {
			char c = want[i];

			want[i] =
			    c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		}
		if (CRYPTO_memcmp(given, want, SRS_HASH_LEN) == 0)
			ok = true;
	}
	return ok;
}

static void srs_timestamp(time_t now, char out[3])
{
	uint64_t day = (uint64_t)(now < 0 ? 0 : now) / SRS_DAY;

	out[0] = srs_base32[(day >> 5) & 31];
	out[1] = srs_base32[day & 31];
	out[2] = '\0';
}

/* The day number (mod 1024) of a stamp, or -1. */
static int srs_timestamp_days(struct srs_span stamp)
{
	int then = 0;

	if (stamp.len != 2)
		return -1;
	for (size_t i = 0; i < 2; i++) {
		char c = stamp.p[i];
		const char *at;

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		at = c != '\0' ? strchr(srs_base32, c) : NULL;
		if (at == NULL)
			return -1;
		then = (then << 5) | (int)(at - srs_base32);
	}
	return then;
}

/* Splits the next SRS_SEP-terminated field off rest. */
static bool srs_next_field(struct srs_span *rest, struct srs_span *field)
{
	const char *sep = memchr(rest->p, SRS_SEP, rest->len);

	if (sep == NULL)
		return false;
	field->p = rest->p;
	field->len = (size_t)(sep - rest->p);
	rest->len -= field->len + 1;
	rest->p = sep + 1;
	return true;
}

/* RFC 5321 Dot-string: what may stand unquoted in an SRS local part. */
static bool srs_dot_atom(const char *p, size_t len)
{
	static const char specials[] = "!#$%&'*+-/=?^_`{|}~.";

	if (len == 0 || p[0] == '.' || p[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') ||
		      (c != '\0' && strchr(specials, c) != NULL)))
			return false;
		if (c == '.' && i + 1 < len && p[i + 1] == '.')
			return false;
	}
	return true;
}

/* A host that can be a field of an SRS local part: no separator, no
 * address literal ('[' is not atext), no U-label (not in a local part
 * without SMTPUTF8). */
static bool srs_host_name(struct srs_span host)
{
	for (size_t i = 0; i < host.len; i++) {
		char c = host.p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		      c == '_'))
			return false;
	}
	return host.len > 0;
}

/* Formats the result; its local part must stay within local_max. */
static enum srs_result srs_put(char *out, size_t out_size, size_t local_max,
			       const char *fmt, ...)
{
	va_list ap;
	const char *at;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, out_size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= out_size) {
		if (out_size > 0)
			out[0] = '\0';
		return SRS_TOO_LONG;
	}
	at = strrchr(out, '@');
	if (at != NULL && (size_t)(at - out) > local_max) {
		out[0] = '\0';
		return SRS_TOO_LONG;
	}
	return SRS_OK;
}

enum srs_result srs_forward(const struct srs_secrets *s, const char *sender,
			    const char *srs_domain, time_t now, char *out,
			    size_t out_size)
{
	const char *at = strrchr(sender, '@');
	struct srs_span host, local, fields[3];
	char hash[SRS_HASH_LEN + 1], stamp[3];

	if (out_size > 0)
		out[0] = '\0';
	if (s->count == 0)
		return SRS_NO_SECRET;
	if (at == NULL || at == sender || at[1] == '\0' ||
	    strlen(sender) >= SRS_MAX_ADDRESS)
		return SRS_MALFORMED;
	local = (struct srs_span){sender, (size_t)(at - sender)};
	host = (struct srs_span){at + 1, strlen(at + 1)};
	if (strcasecmp(host.p, srs_domain) == 0)
		return srs_put(out, out_size, SIZE_MAX, "%s", sender);
	if (!srs_dot_atom(local.p, local.len) || !srs_host_name(host))
		return SRS_MALFORMED;
	if (local.len > 5 && strncasecmp(local.p, "SRS1", 4) == 0 &&
	    srs_is_srs_local(local.p, local.len)) {
		/* SRS1=HHHH=firsthost=rest: keep the first forwarder and the
		 * rest, sign them anew (libsrs2's srs_compile_guarded). */
		struct srs_span rest = {local.p + 5, local.len - 5}, old;

		if (srs_next_field(&rest, &old) &&
		    srs_next_field(&rest, &fields[0]) && fields[0].len > 0 &&
		    rest.len > 0) {
			fields[1] = rest;
			if (!srs_hash(s, 0, fields, 2, hash))
				return SRS_TOO_LONG;
			return srs_put(out, out_size, SRS_MAX_LOCALPART,
				       "SRS1=%s=%.*s=%.*s@%s", hash,
				       (int)fields[0].len, fields[0].p,
				       (int)fields[1].len, fields[1].p,
				       srs_domain);
		}
	} else if (srs_is_srs_local(local.p, local.len)) {
		/* SRS0 of another forwarder: SRS1=HHHH=itshost=<sep>rest,
		 * the SRS0 tag dropped but its separator kept. */
		fields[0] = host;
		fields[1] = (struct srs_span){local.p + 4, local.len - 4};
		if (!srs_hash(s, 0, fields, 2, hash))
			return SRS_TOO_LONG;
		return srs_put(out, out_size, SRS_MAX_LOCALPART,
			       "SRS1=%s=%.*s=%.*s@%s", hash, (int)host.len,
			       host.p, (int)fields[1].len, fields[1].p,
			       srs_domain);
	}
	srs_timestamp(now, stamp);
	fields[0] = (struct srs_span){stamp, 2};
	fields[1] = host;
	fields[2] = local;
	if (!srs_hash(s, 0, fields, 3, hash))
		return SRS_TOO_LONG;
	return srs_put(out, out_size, SRS_MAX_LOCALPART,
		       "SRS0=%s=%s=%.*s=%.*s@%s", hash, stamp, (int)host.len,
		       host.p, (int)local.len, local.p, srs_domain);
}

/* SRS0=HHHH=TT=host=local: the original sender. */
static enum srs_result srs_reverse0(const struct srs_secrets *s,
				    struct srs_span rest, time_t now, char *out,
				    size_t out_size)
{
	struct srs_span hash, fields[3];
	int then, today;

	if (!srs_next_field(&rest, &hash) ||
	    !srs_next_field(&rest, &fields[0]) ||
	    !srs_next_field(&rest, &fields[1]) || hash.len == 0 ||
	    fields[1].len == 0 || rest.len == 0)
		return SRS_MALFORMED;
	fields[2] = rest;
	then = srs_timestamp_days(fields[0]);
	if (then < 0)
		return SRS_MALFORMED;
	if (!srs_hash_valid(s, hash, fields, 3))
		return SRS_BAD_HASH;
	today =
	    (int)(((uint64_t)(now < 0 ? 0 : now) / SRS_DAY) % SRS_TIME_SLOTS);
	/* libsrs2's srs_timestamp_check: a stamp "after" today wrapped. */
	while (today < then)
		today += SRS_TIME_SLOTS;
	if (today > then + SRS_MAX_AGE_DAYS)
		return SRS_EXPIRED;
	return srs_put(out, out_size, SIZE_MAX, "%.*s@%.*s", (int)rest.len,
		       rest.p, (int)fields[1].len, fields[1].p);
}

/* SRS1=HHHH=host=rest: SRS0<rest>@host, the forwarder before us, which
 * checks its own hash and age. */
static enum srs_result srs_reverse1(const struct srs_secrets *s,
				    struct srs_span rest, char *out,
				    size_t out_size)
{
	struct srs_span hash, fields[2];

	if (!srs_next_field(&rest, &hash) ||
	    !srs_next_field(&rest, &fields[0]) || hash.len == 0 ||
	    fields[0].len == 0 || rest.len == 0)
		return SRS_MALFORMED;
	fields[1] = rest;
	if (!srs_hash_valid(s, hash, fields, 2))
		return SRS_BAD_HASH;
	return srs_put(out, out_size, SIZE_MAX, "SRS0%.*s@%.*s", (int)rest.len,
		       rest.p, (int)fields[0].len, fields[0].p);
}

enum srs_result srs_reverse(const struct srs_secrets *s, const char *local,
			    size_t local_len, time_t now, char *out,
			    size_t out_size)
{
	struct srs_span rest;

	if (out_size > 0)
		out[0] = '\0';
	if (!srs_is_srs_local(local, local_len))
		return SRS_NOT_SRS;
	if (s->count == 0)
		return SRS_NO_SECRET;
	if (local_len >= SRS_MAX_ADDRESS || memchr(local, '\0', local_len))
		return SRS_MALFORMED;
	rest = (struct srs_span){local + 5, local_len - 5};
	if (local[3] == '0')
		return srs_reverse0(s, rest, now, out, out_size);
	return srs_reverse1(s, rest, out, out_size);
}
