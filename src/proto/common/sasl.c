#include "proto/common/sasl.h"

#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "lib/parse.h"

enum sasl_mech sasl_mech_from_name(const char *name)
{
	if (strlen(name) == 5 && ascii_strncaseeq(name, "PLAIN", 5))
		return SASL_MECH_PLAIN;
	if (strlen(name) == 5 && ascii_strncaseeq(name, "LOGIN", 5))
		return SASL_MECH_LOGIN;
	return SASL_MECH_UNKNOWN;
}

const char *sasl_mech_name(enum sasl_mech mech)
{
	switch (mech) {
	case SASL_MECH_PLAIN:
		return "PLAIN";
	case SASL_MECH_LOGIN:
		return "LOGIN";
	default:
		return "UNKNOWN";
	}
}

int sasl_base64_decode(const char *in, size_t inlen, char *out, size_t outsize,
		       size_t *len_r)
{
	size_t bin_len = 0;
	const char *end = NULL;

	if (inlen > SASL_MAX_RESPONSE_LINE || outsize == 0)
		return -1;
	/* An empty response ("=" in SMTP, or an empty line) decodes to
	 * nothing. */
	if (inlen == 0 || (inlen == 1 && in[0] == '=')) {
		out[0] = '\0';
		*len_r = 0;
		return 0;
	}
	/* libsodium 1.0.18 takes bytes >= 0x80 for '/': only the alphabet
	 * of RFC 4648 section 4 gets that far. */
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '/' ||
		      c == '='))
			return -1;
	}
	if (sodium_base642bin((unsigned char *)out, outsize - 1, in, inlen,
			      NULL, &bin_len, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != in + inlen)
		return -1;
	out[bin_len] = '\0';
	*len_r = bin_len;
	return 0;
}

bool sasl_is_cancel(const char *line)
{
	return line[0] == '*' && line[1] == '\0';
}

int sasl_plain_decode(const char *b64, size_t len,
		      struct sasl_credentials *creds, const char **error_r)
{
	char msg[AUTH_MAX_USER * 2 + AUTH_MAX_PASSWORD + 3];
	size_t n, zid_len, cid_len, pw_len;
	const char *cid, *pw, *nul;

	memset(creds, 0, sizeof(*creds));
	if (sasl_base64_decode(b64, len, msg, sizeof(msg), &n) < 0) {
		*error_r = "Invalid base64 data.";
		return -1;
	}
	nul = memchr(msg, '\0', n);
	if (nul == NULL) {
		*error_r = "Invalid PLAIN message: no NUL separator.";
		goto fail;
	}
	zid_len = (size_t)(nul - msg);
	cid = nul + 1;
	nul = memchr(cid, '\0', n - zid_len - 1);
	if (nul == NULL) {
		*error_r = "Invalid PLAIN message: no password.";
		goto fail;
	}
	cid_len = (size_t)(nul - cid);
	pw = nul + 1;
	pw_len = n - zid_len - cid_len - 2;
	if (memchr(pw, '\0', pw_len) != NULL) {
		*error_r = "Invalid PLAIN message: NUL in password.";
		goto fail;
	}
	if (cid_len == 0 || pw_len == 0) {
		*error_r = "Invalid PLAIN message: empty user or password.";
		goto fail;
	}
	if (zid_len > AUTH_MAX_USER || cid_len > AUTH_MAX_USER ||
	    pw_len > AUTH_MAX_PASSWORD) {
		*error_r = "Invalid PLAIN message: field too long.";
		goto fail;
	}
	memcpy(creds->authzid, msg, zid_len);
	memcpy(creds->authcid, cid, cid_len);
	memcpy(creds->password, pw, pw_len);
	OPENSSL_cleanse(msg, sizeof(msg));
	return 0;
fail:
	OPENSSL_cleanse(msg, sizeof(msg));
	memset(creds, 0, sizeof(*creds));
	return -1;
}

int sasl_login_decode(const char *b64, size_t len, char *out, size_t outsize,
		      const char **error_r)
{
	size_t n;

	if (sasl_base64_decode(b64, len, out, outsize, &n) < 0) {
		*error_r = "Invalid base64 data.";
		return -1;
	}
	if (memchr(out, '\0', n) != NULL || n == 0) {
		OPENSSL_cleanse(out, outsize);
		*error_r = "Invalid LOGIN response.";
		return -1;
	}
	return 0;
}
