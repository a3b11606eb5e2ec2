/*
 * Password hashes in Dovecot's "{SCHEME}data" notation. Verification is
 * constant-time in the compared bytes; new hashes use the strongest
 * scheme we have (ARGON2ID).
 */
#ifndef POSTD_PASSWORD_H
#define POSTD_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Checks password against stored ("{SCHEME}data"; a value without a
 * scheme prefix is treated as {CRYPT}, as Dovecot does).
 * Returns 1 on a match, 0 on a mismatch, -1 if stored is malformed or its
 * scheme unsupported (error_r says which).
 * Thread-safe (the auth process calls it from a thread pool).
 */
int password_verify(const char *stored, const char *password,
		    size_t password_len, const char **error_r);

/*
 * Returns 0 if stored names a scheme we can verify and is well formed,
 * -1 otherwise with error_r set. *weak_r is set for schemes that should
 * be replaced (PLAIN, CLEAR, PLAIN-MD5, MD5-CRYPT, SHA, SSHA, ...), and
 * *scheme_r points to a static scheme name.
 */
int password_check_stored(const char *stored, bool *weak_r,
			  const char **scheme_r, const char **error_r);

/* A new hash of password in the strongest scheme ("{ARGON2ID}$argon2id$..."),
 * malloc'd; NULL only if the library fails. */
char *password_hash_new(const char *password, size_t password_len);

/* A valid hash of a random password, in the default scheme, verified
 * against for unknown users so that they cost the same time as a wrong
 * password (INV-A1). Computed once. */
const char *password_dummy_hash(void);

/* If stored is {PLAIN} or {CLEAR}, returns a pointer to the plaintext
 * (used only for APOP); NULL otherwise. */
const char *password_plaintext(const char *stored);

#endif
