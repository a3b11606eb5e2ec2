/*
 * The Sender Rewriting Scheme (SRS, Shu Wang and Meng Weng Wong, "Sender
 * Rewriting Scheme", 2004), as libsrs2 and postsrsd implement it, so that
 * addresses this server makes are read by them and theirs by us:
 *
 *   SRS0=HHHH=TT=orighost=origlocal@srs_domain
 *   SRS1=HHHH=firsthost==HHHH=TT=orighost=origlocal@srs_domain
 *
 * HHHH is the first 4 base64 characters of HMAC-SHA1(secret, the fields
 * after it, lowercased, concatenated); TT the day number mod 1024 in two
 * base32 characters. A bounce to an SRS0 address is valid for
 * SRS_MAX_AGE_DAYS. Hashes compare without case (a relay may fold it).
 * Pure functions of their arguments (the time is one): no I/O but
 * srs_secrets_load() and srs_secret_create(). See doc/internals/srs.md.
 */
#ifndef POSTD_SRS_H
#define POSTD_SRS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "lib/postd_limits.h"

#define SRS_HASH_LEN 4

struct srs_secrets {
	size_t count;
	size_t len[SRS_MAX_SECRETS];
	unsigned char key[SRS_MAX_SECRETS][SRS_MAX_SECRET_LEN];
};

enum srs_result {
	SRS_OK,
	SRS_NOT_SRS,   /* reverse: not an SRS0/SRS1 local part */
	SRS_MALFORMED, /* a field is missing or a character is wrong */
	SRS_BAD_HASH,  /* no secret makes this hash */
	SRS_EXPIRED,   /* the SRS0 timestamp is older than the maximum age */
	SRS_TOO_LONG,  /* the result does not fit (or exceeds 64 octets) */
	SRS_NO_SECRET, /* no secret loaded */
};

/* "bad hash", "expired", ... for a log line. */
const char *srs_result_name(enum srs_result r);

/*
 * Reads secrets from text: one per line, empty lines skipped, each at
 * most SRS_MAX_SECRET_LEN octets, at most SRS_MAX_SECRETS. Returns 0, or
 * -1 with error_r (nothing of a secret in the message).
 */
int srs_secrets_parse(struct srs_secrets *s, const char *text, size_t len,
		      const char **error_r);
/* Reads path (a regular file, not a link). Returns 0 or -1 with error. */
int srs_secrets_load(struct srs_secrets *s, const char *path, char *error,
		     size_t error_size);
/*
 * Makes path with a new random secret (mode 0600, fsynced with its
 * folder) unless it exists. Returns 1 when made, 0 when it existed, -1
 * with error.
 */
int srs_secret_create(const char *path, char *error, size_t error_size);
/* Wipes the keys. */
void srs_secrets_clear(struct srs_secrets *s);

/* True if the local part starts with "SRS0" or "SRS1" and a separator
 * ('=', '-' or '+'), in any case. */
bool srs_is_srs_local(const char *local, size_t len);

/*
 * Rewrites sender ("local@domain", a dot-atom local part) for sending on
 * from srs_domain at time now. A sender already at srs_domain comes back
 * unchanged; an SRS0/SRS1 address of another forwarder becomes SRS1.
 * Returns SRS_OK with out, or SRS_MALFORMED (no '@', a quoted local part),
 * SRS_TOO_LONG or SRS_NO_SECRET.
 */
enum srs_result srs_forward(const struct srs_secrets *s, const char *sender,
			    const char *srs_domain, time_t now, char *out,
			    size_t out_size);

/*
 * Decodes the local part of an address at srs_domain: SRS0 to the
 * original sender (after checking its hash and age), SRS1 to the SRS0
 * address at the forwarder before us (hash only, as libsrs2 does).
 */
enum srs_result srs_reverse(const struct srs_secrets *s, const char *local,
			    size_t local_len, time_t now, char *out,
			    size_t out_size);

#endif
