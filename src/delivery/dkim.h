/*
 * DKIM signatures (RFC 6376, RFC 8463 ed25519-sha256) for mail the queue
 * sends out: relaxed/relaxed canonicalisation, the usual header set
 * (From, To, Cc, Subject, Date, Message-ID, MIME headers, Reply-To,
 * In-Reply-To, References), l= never used.
 */
#ifndef POSTD_DKIM_H
#define POSTD_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct dkim_signer;

/*
 * Loads every key of cfg (dkim_key, dkim_key.DOMAIN; PEM, RSA or
 * Ed25519, the algorithm taken from the key) while still root. Returns
 * NULL with error if a configured key cannot be used; a config without
 * keys gives a signer that signs nothing.
 */
struct dkim_signer *dkim_signer_load(const struct config *cfg, char *error,
				     size_t error_size);
void dkim_signer_free(struct dkim_signer **s);

/*
 * Signs the message in msg_fd (stored form: LF line ends), bytes
 * [skip, size), as sent on the wire (CRLF), for the sender domain
 * (d=domain, s=cfg->dkim_selector). On success returns 1 and
 * *header_r: "DKIM-Signature: ...\r\n" (folded, CRLF, malloc'ed) to
 * send before the message; 0 when there is no key for domain; -1 with
 * error_r on a read or crypto error. Reads with pread: the file offset
 * is left alone.
 */
int dkim_sign(const struct dkim_signer *s, const char *domain, int msg_fd,
	      uint64_t skip, uint64_t size, char **header_r,
	      const char **error_r);

#endif
