/*
 * Asynchronous DNS for the queue runner, with c-ares driven by the
 * runner's libevent loop. Finds where mail for a domain goes (RFC 5321
 * section 5.1): the MX records sorted by preference (equal preferences in
 * random order), each with its A and AAAA addresses; no MX record means
 * the domain itself is the one exchanger (implicit MX); a single MX "."
 * is RFC 7505's null MX: the domain accepts no mail.
 */
#ifndef POSTD_DNS_H
#define POSTD_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "config/config.h"

enum dns_status {
	DNS_OK = 0,
	DNS_TEMPFAIL,	/* timeout, SERVFAIL, no answer yet: retry later */
	DNS_NXDOMAIN,	/* the domain does not exist: bounce (5.1.2) */
	DNS_NULL_MX,	/* RFC 7505: bounce (5.1.10) */
	DNS_NO_ADDRESS, /* no MX and no A/AAAA, or MX hosts without any
			 * address: bounce (5.1.2) unless it was a TEMPFAIL */
};

struct dns_host {
	char name[256];			/* the MX host name (or the domain) */
	unsigned preference;		/* MX preference; 0 for implicit MX */
	struct sockaddr_storage *addrs; /* port 0; IPv6 and IPv4 */
	size_t addr_count;
};

struct dns_result {
	enum dns_status status;
	char error[256]; /* what went wrong, for the log and the DSN */
	bool implicit_mx;
	struct dns_host *hosts; /* in the order to try */
	size_t host_count;
};

struct dns_resolver;
struct dns_query;

/* Called once from the event loop, never from inside dns_resolve_*().
 * res is valid only during the call. */
typedef void dns_result_fn(void *ctx, const struct dns_result *res);

/*
 * Creates a resolver on base. It uses cfg->dns_servers if set, else
 * /etc/resolv.conf (read now: create it before a chroot). Returns NULL
 * with error on failure.
 */
struct dns_resolver *dns_resolver_new(struct event_base *base,
				      const struct config *cfg, char *error,
				      size_t error_size);
/* Cancels every pending query (their callbacks are not called). */
void dns_resolver_free(struct dns_resolver **r);

/* Where mail for domain goes (MX, then A/AAAA). */
struct dns_query *dns_resolve_mx(struct dns_resolver *r, const char *domain,
				 dns_result_fn *fn, void *ctx);
/* The addresses of one host name (a transport or relay_host target); a
 * numeric address is answered without a query. The result has one host
 * with preference 0. */
struct dns_query *dns_resolve_host(struct dns_resolver *r, const char *host,
				   dns_result_fn *fn, void *ctx);
/* Stops a pending query; its callback is not called. Sets *q to NULL. */
void dns_query_cancel(struct dns_query **q);

#endif
