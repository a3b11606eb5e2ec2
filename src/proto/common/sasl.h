/*
 * SASL message decoding shared by POP3 AUTH (RFC 5034), SMTP AUTH
 * (RFC 4954) and, later, IMAP AUTHENTICATE. Pure functions: no I/O.
 */
#ifndef POSTD_SASL_H
#define POSTD_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/postd_limits.h"
#include "lib/username.h"

enum sasl_mech {
	SASL_MECH_UNKNOWN,
	SASL_MECH_PLAIN, /* RFC 4616 */
	SASL_MECH_LOGIN, /* draft-murchison-sasl-login */
};

/* Case-insensitive mechanism name lookup. */
enum sasl_mech sasl_mech_from_name(const char *name);
const char *sasl_mech_name(enum sasl_mech mech);

/* The client's credentials, decoded. */
struct sasl_credentials {
	char authzid[AUTH_MAX_USER + 1];
	char authcid[AUTH_MAX_USER + 1];
	char password[AUTH_MAX_PASSWORD + 1];
};

/*
 * Strict base64 (RFC 4648, padding required, no whitespace) of at most
 * SASL_MAX_RESPONSE_LINE characters into out (size outsize, NUL appended).
 * Returns 0 with *len_r, or -1 if malformed or too long for out.
 */
int sasl_base64_decode(const char *in, size_t inlen, char *out, size_t outsize,
		       size_t *len_r);
/* "*" alone cancels an exchange (RFC 4954, RFC 5034). */
bool sasl_is_cancel(const char *line);

/*
 * PLAIN: base64 of [authzid] NUL authcid NUL passwd. Rejects empty
 * authcid or password, NUL-less messages, fields over the limits.
 * Returns 0 or -1 with error_r (safe to show to the client).
 * The caller wipes creds after use.
 */
int sasl_plain_decode(const char *b64, size_t len,
		      struct sasl_credentials *creds, const char **error_r);
/*
 * LOGIN: one base64 field (user name or password). Rejects NUL inside.
 */
int sasl_login_decode(const char *b64, size_t len, char *out, size_t outsize,
		      const char **error_r);

#endif
