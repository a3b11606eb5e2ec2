#include "auth/password.h"

#include <crypt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"

enum password_kind {
	PASSWORD_KIND_PLAIN,
	PASSWORD_KIND_CRYPT,
	PASSWORD_KIND_DIGEST,
	PASSWORD_KIND_ARGON2,
};

enum password_encoding {
	PASSWORD_ENC_DEFAULT,
	PASSWORD_ENC_HEX,
	PASSWORD_ENC_B64,
};

struct password_scheme {
	const char *name;
	enum password_kind kind;
	/* For crypt and Argon2: the prefix the data must start with. */
	const char *prefix;
	/* For digests. */
	const EVP_MD *(*md)(void);
	bool salted;
	bool hex_default;
	bool weak;
};

struct password_parsed {
	const struct password_scheme *scheme;
	enum password_encoding encoding;
	const char *data;
};

static const struct password_scheme password_schemes[] = {
    {"PLAIN", PASSWORD_KIND_PLAIN, NULL, NULL, false, false, true},
    {"CLEAR", PASSWORD_KIND_PLAIN, NULL, NULL, false, false, true},
    /* CRYPT is weak only for DES and MD5; see password_crypt_weak(). */
    {"CRYPT", PASSWORD_KIND_CRYPT, "", NULL, false, false, false},
    {"MD5-CRYPT", PASSWORD_KIND_CRYPT, "$1$", NULL, false, false, true},
    {"SHA256-CRYPT", PASSWORD_KIND_CRYPT, "$5$", NULL, false, false, false},
    {"SHA512-CRYPT", PASSWORD_KIND_CRYPT, "$6$", NULL, false, false, false},
    {"BLF-CRYPT", PASSWORD_KIND_CRYPT, "$2", NULL, false, false, false},
    {"SHA", PASSWORD_KIND_DIGEST, NULL, EVP_sha1, false, false, true},
    {"SHA1", PASSWORD_KIND_DIGEST, NULL, EVP_sha1, false, false, true},
    {"SSHA", PASSWORD_KIND_DIGEST, NULL, EVP_sha1, true, false, true},
    {"SHA256", PASSWORD_KIND_DIGEST, NULL, EVP_sha256, false, false, true},
    {"SSHA256", PASSWORD_KIND_DIGEST, NULL, EVP_sha256, true, false, false},
    {"SHA512", PASSWORD_KIND_DIGEST, NULL, EVP_sha512, false, false, true},
    {"SSHA512", PASSWORD_KIND_DIGEST, NULL, EVP_sha512, true, false, false},
    {"PLAIN-MD5", PASSWORD_KIND_DIGEST, NULL, EVP_md5, false, true, true},
    {"LDAP-MD5", PASSWORD_KIND_DIGEST, NULL, EVP_md5, false, false, true},
    {"SMD5", PASSWORD_KIND_DIGEST, NULL, EVP_md5, true, false, true},
    {"ARGON2I", PASSWORD_KIND_ARGON2, "$argon2i$", NULL, false, false, false},
    {"ARGON2ID", PASSWORD_KIND_ARGON2, "$argon2id$", NULL, false, false, false},
};

static pthread_once_t password_dummy_once = PTHREAD_ONCE_INIT;
static char *password_dummy;

static int password_parse(const char *stored, struct password_parsed *p_r,
			  const char **error_r);
static const struct password_scheme *password_scheme_find(const char *name,
							  size_t len);
static bool password_crypt_char(char c);
static int password_crypt_check(const struct password_parsed *p,
				const char **error_r);
static bool password_crypt_weak(const struct password_parsed *p);
static int password_crypt_verify(const struct password_parsed *p,
				 const char *password, size_t password_len,
				 const char **error_r);
static int password_digest_decode(const struct password_parsed *p,
				  unsigned char *out, size_t outsize,
				  size_t *len_r);
static int password_digest_check(const struct password_parsed *p,
				 const char **error_r);
static int password_digest_verify(const struct password_parsed *p,
				  const char *password, size_t password_len,
				  const char **error_r);
static int password_argon2_check(const struct password_parsed *p,
				 const char **error_r);
static int password_argon2_verify(const struct password_parsed *p,
				  const char *password, size_t password_len,
				  const char **error_r);
static int password_plain_verify(const struct password_parsed *p,
				 const char *password, size_t password_len);
static int password_check_parsed(const struct password_parsed *p,
				 const char **error_r);
static void password_dummy_init(void);

static const struct password_scheme *password_scheme_find(const char *name,
							  size_t len)
{
	for (size_t i = 0;
	     i < sizeof(password_schemes) / sizeof(password_schemes[0]); i++) {
		const char *sname = password_schemes[i].name;

		if (strlen(sname) == len && strncasecmp(sname, name, len) == 0)
			return &password_schemes[i];
	}
	return NULL;
}

/*
 * Splits "{SCHEME[.ENC]}data". Dovecot treats scheme names without
 * regard to case and lets ".HEX" / ".B64" override a digest's encoding.
 */
static int password_parse(const char *stored, struct password_parsed *p_r,
			  const char **error_r)
{
	const char *end, *dot;
	size_t name_len;

	memset(p_r, 0, sizeof(*p_r));
	if (stored == NULL || stored[0] != '{') {
		p_r->scheme = password_scheme_find("CRYPT", 5);
		p_r->data = stored == NULL ? "" : stored;
		return 0;
	}
	/* Look for '}' without reading past the string's NUL. */
	end = NULL;
	for (size_t i = 1; i <= PASSWORD_MAX_SCHEME + 1 && stored[i] != '\0';
	     i++) {
		if (stored[i] == '}') {
			end = stored + i;
			break;
		}
	}
	if (end == NULL) {
		*error_r = "malformed password hash: no end of {SCHEME}";
		return -1;
	}
	name_len = (size_t)(end - stored - 1);
	dot = memchr(stored + 1, '.', name_len);
	if (dot != NULL) {
		const char *enc = dot + 1;
		size_t enc_len = (size_t)(end - enc);

		if (enc_len == 3 && strncasecmp(enc, "HEX", 3) == 0)
			p_r->encoding = PASSWORD_ENC_HEX;
		else if ((enc_len == 3 && strncasecmp(enc, "B64", 3) == 0) ||
			 (enc_len == 6 && strncasecmp(enc, "BASE64", 6) == 0))
			p_r->encoding = PASSWORD_ENC_B64;
		else {
			*error_r = "unknown password encoding suffix";
			return -1;
		}
		name_len = (size_t)(dot - stored - 1);
	}
	p_r->scheme = password_scheme_find(stored + 1, name_len);
	if (p_r->scheme == NULL) {
		*error_r = "unknown password scheme";
		return -1;
	}
	if (p_r->encoding != PASSWORD_ENC_DEFAULT &&
	    p_r->scheme->kind != PASSWORD_KIND_DIGEST) {
		*error_r = "encoding suffix on a scheme that has none";
		return -1;
	}
	p_r->data = end + 1;
	return 0;
}

/* The crypt(3) alphabet plus the separators of modular formats. */
static bool password_crypt_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '/' || c == '$' ||
	       c == '=' || c == ',';
}

/*
 * A cheap syntax check, so that loading a million users does not run a
 * million slow hashes; crypt_r() has the last word at verification.
 */
static int password_crypt_check(const struct password_parsed *p,
				const char **error_r)
{
	const char *data = p->data;
	size_t len = strlen(data);

	if (len == 0 || len > PASSWORD_MAX_DATA) {
		*error_r = "malformed password hash: bad crypt length";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (!password_crypt_char(data[i])) {
			*error_r = "malformed password hash: bad crypt byte";
			return -1;
		}
	}
	if (strncmp(data, p->scheme->prefix, strlen(p->scheme->prefix)) != 0) {
		*error_r = "malformed password hash: wrong crypt prefix";
		return -1;
	}
	if (data[0] != '$') {
		/* Traditional DES: two salt bytes and eleven of hash. */
		if (len != 13 || strchr(data, '$') != NULL) {
			*error_r = "malformed password hash: bad DES crypt";
			return -1;
		}
		return 0;
	}
	/* "$id$...$hash": the hash part must not be empty. */
	if (len < 4 || data[len - 1] == '$' || strchr(data + 1, '$') == NULL) {
		*error_r = "malformed password hash: bad crypt format";
		return -1;
	}
	return 0;
}

static bool password_crypt_weak(const struct password_parsed *p)
{
	if (p->scheme->weak)
		return true;
	return p->data[0] != '$' || strncmp(p->data, "$1$", 3) == 0;
}

static int password_crypt_verify(const struct password_parsed *p,
				 const char *password, size_t password_len,
				 const char **error_r)
{
	struct crypt_data *cd;
	char *pw;
	const char *out;
	size_t data_len = strlen(p->data);
	int ret;

	if (password_crypt_check(p, error_r) < 0)
		return -1;
	/* crypt() sees a C string: a NUL would cut the password short and
	 * let a prefix match. */
	if (memchr(password, '\0', password_len) != NULL)
		return 0;
	/* struct crypt_data is ~32 KB: too big for a pool thread's stack. */
	cd = xcalloc(1, sizeof(*cd));
	pw = xmalloc(password_len + 1);
	memcpy(pw, password, password_len);
	pw[password_len] = '\0';
	out = crypt_r(pw, p->data, cd);
	if (out == NULL || out[0] == '*') {
		*error_r = "malformed password hash: crypt() refused it";
		ret = -1;
	} else if (strlen(out) != data_len) {
		ret = 0;
	} else {
		ret = CRYPTO_memcmp(out, p->data, data_len) == 0 ? 1 : 0;
	}
	OPENSSL_cleanse(pw, password_len + 1);
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(pw);
	free(cd);
	return ret;
}

/* Decodes a digest's data (base64, or hex when asked for or when its
 * length says so, as Dovecot does) into out. */
static int password_digest_decode(const struct password_parsed *p,
				  unsigned char *out, size_t outsize,
				  size_t *len_r)
{
	const char *data = p->data, *end;
	size_t len = strlen(data);
	size_t md_len = (size_t)EVP_MD_size(p->scheme->md());
	enum password_encoding enc = p->encoding;

	if (len == 0 || len > PASSWORD_MAX_DATA)
		return -1;
	if (enc == PASSWORD_ENC_DEFAULT) {
		if (p->scheme->hex_default ||
		    (!p->scheme->salted && len == md_len * 2))
			enc = PASSWORD_ENC_HEX;
		else
			enc = PASSWORD_ENC_B64;
	}
	if (enc == PASSWORD_ENC_HEX) {
		if (sodium_hex2bin(out, outsize, data, len, NULL, len_r,
				   &end) != 0 ||
		    *end != '\0')
			return -1;
		return 0;
	}
	if (sodium_base642bin(out, outsize, data, len, NULL, len_r, &end,
			      sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    *end == '\0')
		return 0;
	if (sodium_base642bin(out, outsize, data, len, NULL, len_r, &end,
			      sodium_base64_VARIANT_ORIGINAL_NO_PADDING) == 0 &&
	    *end == '\0')
		return 0;
	return -1;
}

static int password_digest_check(const struct password_parsed *p,
				 const char **error_r)
{
	unsigned char raw[EVP_MAX_MD_SIZE + PASSWORD_MAX_SALT];
	size_t md_len = (size_t)EVP_MD_size(p->scheme->md());
	size_t len;

	if (password_digest_decode(p, raw, sizeof(raw), &len) < 0) {
		*error_r = "malformed password hash: bad digest encoding";
		return -1;
	}
	if (p->scheme->salted ? len <= md_len : len != md_len) {
		*error_r = "malformed password hash: bad digest length";
		return -1;
	}
	return 0;
}

static int password_digest_verify(const struct password_parsed *p,
				  const char *password, size_t password_len,
				  const char **error_r)
{
	unsigned char raw[EVP_MAX_MD_SIZE + PASSWORD_MAX_SALT];
	unsigned char digest[EVP_MAX_MD_SIZE];
	size_t md_len = (size_t)EVP_MD_size(p->scheme->md());
	unsigned int out_len = 0;
	size_t len;
	EVP_MD_CTX *ctx;
	int ok, ret;

	if (password_digest_check(p, error_r) < 0)
		return -1;
	(void)password_digest_decode(p, raw, sizeof(raw), &len);
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL) {
		*error_r = "out of memory for a digest";
		return -1;
	}
	/* Salted schemes hash password || salt; the salt follows the
	 * digest in the stored bytes. */
	ok = EVP_DigestInit_ex(ctx, p->scheme->md(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, password, password_len) == 1 &&
	     EVP_DigestUpdate(ctx, raw + md_len, len - md_len) == 1 &&
	     EVP_DigestFinal_ex(ctx, digest, &out_len) == 1 &&
	     out_len == md_len;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		*error_r = "digest computation failed";
		ret = -1;
	} else {
		ret = CRYPTO_memcmp(digest, raw, md_len) == 0 ? 1 : 0;
	}
	OPENSSL_cleanse(digest, sizeof(digest));
	return ret;
}

/*
 * "$argon2id$v=19$m=N,t=N,p=N$salt$hash". libsodium returns -1 both for
 * a mismatch and for a malformed string, so the syntax is checked here
 * first; afterwards -1 means a mismatch.
 */
static int password_argon2_check(const struct password_parsed *p,
				 const char **error_r)
{
	const char *s = p->data + strlen(p->scheme->prefix);
	unsigned long m, t, par;
	char *end;
	size_t len = strlen(p->data);

	if (len > PASSWORD_MAX_DATA ||
	    strncmp(p->data, p->scheme->prefix, strlen(p->scheme->prefix)) !=
		0) {
		*error_r = "malformed password hash: bad Argon2 prefix";
		return -1;
	}
	if (strncmp(s, "v=19$m=", 7) != 0)
		goto bad;
	s += 7;
	if (*s < '0' || *s > '9')
		goto bad;
	m = strtoul(s, &end, 10);
	if (strncmp(end, ",t=", 3) != 0 || end[3] < '0' || end[3] > '9')
		goto bad;
	t = strtoul(end + 3, &end, 10);
	if (strncmp(end, ",p=", 3) != 0 || end[3] < '0' || end[3] > '9')
		goto bad;
	par = strtoul(end + 3, &end, 10);
	if (*end != '$' || m == 0 || t == 0 || par == 0 || par > 255)
		goto bad;
	if (m > PASSWORD_MAX_ARGON2_MEM) {
		*error_r = "Argon2 memory cost too high";
		return -1;
	}
	s = end + 1;
	/* salt$hash, both unpadded base64. */
	end = strchr(s, '$');
	if (end == NULL || end == s || end[1] == '\0' ||
	    strchr(end + 1, '$') != NULL)
		goto bad;
	for (const char *q = s; *q != '\0'; q++) {
		if (*q != '$' && *q != '+' && *q != '/' &&
		    !(*q >= 'a' && *q <= 'z') && !(*q >= 'A' && *q <= 'Z') &&
		    !(*q >= '0' && *q <= '9'))
			goto bad;
	}
	return 0;
bad:
	*error_r = "malformed password hash: bad Argon2 string";
	return -1;
}

static int password_argon2_verify(const struct password_parsed *p,
				  const char *password, size_t password_len,
				  const char **error_r)
{
	if (password_argon2_check(p, error_r) < 0)
		return -1;
	if (sodium_init() < 0) {
		*error_r = "libsodium failed to initialise";
		return -1;
	}
	return crypto_pwhash_str_verify(p->data, password,
					(unsigned long long)password_len) == 0
		   ? 1
		   : 0;
}

/*
 * Compares digests of both sides so that the time taken does not depend
 * on where they differ, nor on the stored password's length.
 */
static int password_plain_verify(const struct password_parsed *p,
				 const char *password, size_t password_len)
{
	unsigned char a[crypto_hash_sha256_BYTES];
	unsigned char b[crypto_hash_sha256_BYTES];
	size_t stored_len = strlen(p->data);
	int ret;

	crypto_hash_sha256(a, (const unsigned char *)p->data, stored_len);
	crypto_hash_sha256(b, (const unsigned char *)password, password_len);
	ret = (CRYPTO_memcmp(a, b, sizeof(a)) == 0) &
	      (stored_len == password_len);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return ret;
}

static int password_check_parsed(const struct password_parsed *p,
				 const char **error_r)
{
	switch (p->scheme->kind) {
	case PASSWORD_KIND_PLAIN:
		return 0;
	case PASSWORD_KIND_CRYPT:
		return password_crypt_check(p, error_r);
	case PASSWORD_KIND_DIGEST:
		return password_digest_check(p, error_r);
	case PASSWORD_KIND_ARGON2:
		return password_argon2_check(p, error_r);
	}
	*error_r = "unknown password scheme";
	return -1;
}

int password_verify(const char *stored, const char *password,
		    size_t password_len, const char **error_r)
{
	struct password_parsed p;
	const char *dummy_error;

	if (error_r == NULL)
		error_r = &dummy_error;
	if (password == NULL)
		password_len = 0;
	if (password_parse(stored, &p, error_r) < 0)
		return -1;
	switch (p.scheme->kind) {
	case PASSWORD_KIND_PLAIN:
		return password_plain_verify(
		    &p, password == NULL ? "" : password, password_len);
	case PASSWORD_KIND_CRYPT:
		return password_crypt_verify(&p,
					     password == NULL ? "" : password,
					     password_len, error_r);
	case PASSWORD_KIND_DIGEST:
		return password_digest_verify(&p,
					      password == NULL ? "" : password,
					      password_len, error_r);
	case PASSWORD_KIND_ARGON2:
		return password_argon2_verify(&p,
					      password == NULL ? "" : password,
					      password_len, error_r);
	}
	*error_r = "unknown password scheme";
	return -1;
}

int password_check_stored(const char *stored, bool *weak_r,
			  const char **scheme_r, const char **error_r)
{
	struct password_parsed p;
	const char *dummy_error;
	bool weak;

	if (error_r == NULL)
		error_r = &dummy_error;
	if (stored == NULL) {
		*error_r = "no password hash";
		return -1;
	}
	if (password_parse(stored, &p, error_r) < 0)
		return -1;
	if (password_check_parsed(&p, error_r) < 0)
		return -1;
	weak = p.scheme->kind == PASSWORD_KIND_CRYPT ? password_crypt_weak(&p)
						     : p.scheme->weak;
	if (weak_r != NULL)
		*weak_r = weak;
	if (scheme_r != NULL)
		*scheme_r = p.scheme->name;
	return 0;
}

char *password_hash_new(const char *password, size_t password_len)
{
	static const char prefix[] = "{ARGON2ID}";
	char out[crypto_pwhash_STRBYTES];
	char *result;
	size_t len;

	if (sodium_init() < 0)
		return NULL;
	if (crypto_pwhash_str_alg(out, password,
				  (unsigned long long)password_len,
				  crypto_pwhash_OPSLIMIT_INTERACTIVE,
				  crypto_pwhash_MEMLIMIT_INTERACTIVE,
				  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return NULL;
	len = strnlen(out, sizeof(out));
	result = xmalloc(sizeof(prefix) + len);
	memcpy(result, prefix, sizeof(prefix) - 1);
	memcpy(result + sizeof(prefix) - 1, out, len + 1);
	return result;
}

static void password_dummy_init(void)
{
	unsigned char pw[PASSWORD_DUMMY_BYTES];

	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	randombytes_buf(pw, sizeof(pw));
	password_dummy = password_hash_new((const char *)pw, sizeof(pw));
	sodium_memzero(pw, sizeof(pw));
	if (password_dummy == NULL)
		fatal("cannot compute the dummy password hash");
}

const char *password_dummy_hash(void)
{
	if (pthread_once(&password_dummy_once, password_dummy_init) != 0)
		fatal("pthread_once failed");
	return password_dummy;
}

const char *password_plaintext(const char *stored)
{
	struct password_parsed p;
	const char *error;

	if (stored == NULL || stored[0] != '{')
		return NULL;
	if (password_parse(stored, &p, &error) < 0 ||
	    p.scheme->kind != PASSWORD_KIND_PLAIN)
		return NULL;
	return p.data;
}
