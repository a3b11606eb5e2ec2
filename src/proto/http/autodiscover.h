/*
 * Outlook Autodiscover (POX, the "outlook" 2006 request and 2006a
 * response schemas): a small bounded parser for the request and the
 * response generators. Pure: no sockets, no allocation by the parser.
 */
#ifndef POSTD_AUTODISCOVER_H
#define POSTD_AUTODISCOVER_H

#include <stddef.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/postd_limits.h"
#include "proto/http/autoconfig.h"

/* The one response schema postd answers. */
#define AUTODISCOVER_SCHEMA_2006A                                              \
	"http://schemas.microsoft.com/exchange/autodiscover/outlook/"          \
	"responseschema/2006a"

struct autodiscover_request {
	char email[AUTODISCOVER_MAX_EMAIL + 1];
	char schema[AUTODISCOVER_MAX_SCHEMA + 1];
};

/*
 * Parses an Autodiscover request body (len bytes, no NUL needed): the root
 * Autodiscover holds Request, which holds EMailAddress and
 * AcceptableResponseSchema (each once, text only); other elements are
 * skipped, namespace prefixes ignored. DOCTYPE, CDATA, entity references
 * inside the two fields, unbalanced or too deep tags, and fields over their
 * caps are refused. Returns 0 with req filled (whitespace trimmed), or -1
 * with a static reason in *error_r (req then holds nothing useful).
 */
int autodiscover_parse(const char *body, size_t len,
		       struct autodiscover_request *req, const char **error_r);

/*
 * The 2006a settings for email (already checked: valid address of a local
 * domain): one Protocol per advertised POP3, IMAP and SMTP server.
 * Returns 0, or -1 when out is too small.
 */
int autodiscover_response(const struct config *cfg,
			  autoconfig_served_fn *served, const char *email,
			  struct buf *out);

/* Exchange's error codes (sent with HTTP 200, as Exchange does). */
#define AUTODISCOVER_ERROR_NOT_FOUND 500 /* address not known here */
#define AUTODISCOVER_ERROR_INVALID 600	 /* bad request XML */
#define AUTODISCOVER_ERROR_PROVIDER 601	 /* schema not available */

/* An Autodiscover Error response. Returns 0, or -1 when out is full. */
int autodiscover_error(int code, const char *message, struct buf *out);

#endif
