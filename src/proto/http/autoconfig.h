/*
 * Client set-up documents generated from the live configuration:
 * Thunderbird's autoconfig (config-v1.1.xml) here, Outlook's Autodiscover
 * in autodiscover.h. Pure functions of a struct config, no sockets, so
 * unit tests check the XML byte for byte.
 */
#ifndef POSTD_AUTOCONFIG_H
#define POSTD_AUTOCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/postd_limits.h"

/* Which listeners this postd really serves (worker_proto_supported() in
 * the daemon); NULL: every configured one. Only served ones are
 * advertised, so a client is never sent to a dead port. */
typedef bool autoconfig_served_fn(enum listen_proto proto);

/* One advertised server: the first listener of its protocol per port. */
struct autoconfig_server {
	enum listen_proto proto;
	const char *port;  /* borrowed from cfg */
	bool implicit_tls; /* pop3s, submissions, imaps */
	bool starttls;	   /* plaintext port that offers STLS/STARTTLS */
};

/*
 * The servers a client should use, best first: incoming (IMAP over TLS,
 * IMAP, POP3 over TLS, POP3) then outgoing (submissions, submission).
 * Returns how many were written to out (at most max).
 */
size_t autoconfig_servers(const struct config *cfg,
			  autoconfig_served_fn *served,
			  struct autoconfig_server *out, size_t max);

/* True for the incoming protocols (POP3, IMAP). */
bool autoconfig_server_is_incoming(const struct autoconfig_server *s);

/* Appends text with & < > " ' escaped. Returns 0, or -1 when out is full. */
int autoconfig_xml_append(struct buf *out, const char *text);

/*
 * Thunderbird's clientConfig version 1.1 for cfg. email (may be NULL) is
 * the ?emailaddress= of the request: when its domain is local it becomes
 * the emailProvider id, and its retention the POP3 advice. Returns 0, or
 * -1 when out is too small.
 */
int autoconfig_thunderbird(const struct config *cfg,
			   autoconfig_served_fn *served, const char *email,
			   struct buf *out);

/*
 * The provider domain for a request: the domain of email if it is valid
 * and local, else NULL (when email was given) or cfg->domains[0] (when it
 * was not). Points into cfg.
 */
const char *autoconfig_domain(const struct config *cfg, const char *email);

#endif
