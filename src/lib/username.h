/*
 * Login names and mailbox owners. A user is "local@domain", lowercase,
 * from a strict character set so that it can name a Maildir beneath
 * data_dir without escaping (INV-S2, INV-U1).
 */
#ifndef POSTD_USERNAME_H
#define POSTD_USERNAME_H

#include <stdbool.h>
#include <stddef.h>

/* Room for the longest valid "local@domain" and its NUL. */
#define USERNAME_MAX_LEN (64 + 1 + 190)
#define USERNAME_BUF_SIZE (USERNAME_MAX_LEN + 1)

/*
 * Turns a login name typed by a user (or read from the users file) into
 * the canonical form: lowercase, and "@default_domain" appended when it has
 * no '@' and default_domain is not NULL. The local part may hold
 * a-z 0-9 and . _ - + = (no leading or trailing dot, no "..");
 * the domain holds dot-separated labels of a-z 0-9 and -.
 * Returns 0 and writes out (size >= USERNAME_BUF_SIZE), or -1 if the
 * name is not acceptable (empty, too long, bad character, no domain).
 */
int username_normalize(const char *in, size_t inlen, const char *default_domain,
		       char *out, size_t outsize);

/* True if s is already canonical (what username_normalize would return
 * unchanged with no default domain). */
bool username_is_canonical(const char *s);

/* Splits a canonical name: *local_len is the length of the local part
 * and the domain starts at the returned pointer. */
const char *username_domain(const char *canonical, size_t *local_len_r);

#endif
