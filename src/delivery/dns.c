/*
 * Asynchronous DNS for the queue runner (see dns.h and
 * doc/internals/dns.md). c-ares does the protocol work; this file watches
 * its sockets with libevent events, drives its retries with one timer,
 * and turns MX, A and AAAA answers into the list of hosts to try.
 *
 * Everything in an answer is hostile: names are copied with a bound and
 * validated before use, and the number of hosts and addresses is capped.
 */
#include "delivery/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>

#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"

enum dns_sub_kind { DNS_SUB_MX, DNS_SUB_A, DNS_SUB_AAAA };

/* A host being resolved; becomes a struct dns_host if it has addresses. */
struct dns_work {
	char name[DNS_MAX_NAME + 1];
	unsigned preference;
	uint32_t order; /* random: shuffles equal preferences */
	struct sockaddr_in6 v6[DNS_MAX_ADDRS_PER_FAMILY];
	size_t v6_count;
	struct sockaddr_in v4[DNS_MAX_ADDRS_PER_FAMILY];
	size_t v4_count;
	int a_status; /* ARES_* of the A and AAAA lookups */
	int aaaa_status;
};

/* One c-ares query in flight; owns nothing, points at its dns_query. */
struct dns_sub {
	struct dns_query *q;
	size_t host;
	enum dns_sub_kind kind;
};

struct dns_query {
	struct dns_resolver *r;
	struct dns_query *prev, *next; /* r->queries */
	dns_result_fn *fn;
	void *ctx;
	char domain[DNS_MAX_NAME + 1];
	bool host_mode;	  /* dns_resolve_host(), not an MX lookup */
	bool cancelled;	  /* free when the last sub-query returns */
	bool finishing;	  /* the result is ready, finish event added */
	bool in_callback; /* fn is running: cancel is a no-op */
	unsigned pending; /* c-ares queries not yet called back */
	struct event *finish;
	bool decided; /* status and error are final */
	enum dns_status status;
	char error[256];
	bool implicit_mx;
	struct dns_work *hosts;
	size_t host_count;
};

struct dns_socket {
	ares_socket_t fd;
	struct event *ev;
};

struct dns_resolver {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct dns_socket *socks;
	size_t sock_count;
	struct dns_query *queries;
	bool destroying;
};

static void dns_sock_state(void *data, ares_socket_t fd, int readable,
			   int writable);
static void dns_sock_cb(evutil_socket_t fd, short what, void *arg);
static void dns_timer_cb(evutil_socket_t fd, short what, void *arg);
static void dns_schedule(struct dns_resolver *r);
static int dns_set_servers(struct dns_resolver *r, const struct config *cfg,
			   char *error, size_t error_size);
static struct dns_query *dns_query_new(struct dns_resolver *r, const char *name,
				       dns_result_fn *fn, void *ctx);
static void dns_query_free(struct dns_query *q);
static void dns_query_lookup(struct dns_query *q, size_t host,
			     enum dns_sub_kind kind);
static void dns_query_release(struct dns_query *q);
static void dns_query_decide(struct dns_query *q, enum dns_status status,
			     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void dns_query_conclude(struct dns_query *q);
static void dns_finish_cb(evutil_socket_t fd, short what, void *arg);
static void dns_sub_cb(void *arg, int status, int timeouts, unsigned char *abuf,
		       int alen);
static void dns_mx_answer(struct dns_query *q, int status,
			  const unsigned char *abuf, int alen);
static void dns_addr_answer(struct dns_query *q, struct dns_sub *s, int status,
			    const unsigned char *abuf, int alen);
static struct dns_work *dns_add_host(struct dns_query *q, const char *name,
				     unsigned preference);
static void dns_lookup_hosts(struct dns_query *q);
static int dns_work_cmp(const void *a, const void *b);
static bool dns_name_copy(char *dst, const char *src);
static bool dns_numeric(const char *host, struct dns_work *w);
static bool dns_is_localhost(const char *name);
static void dns_add_localhost(struct dns_query *q);
static bool dns_is_temporary(int status);
static const char *dns_cause(int status);

/* ---- the resolver and its libevent glue ---- */

struct dns_resolver *dns_resolver_new(struct event_base *base,
				      const struct config *cfg, char *error,
				      size_t error_size)
{
	static bool library_ready;
	/* "b": DNS only; /etc/hosts may not exist after the chroot. */
	static char lookups[] = "b";
	struct ares_options o;
	struct dns_resolver *r;
	int rc;

	if (!library_ready) {
		rc = ares_library_init(ARES_LIB_INIT_ALL);
		if (rc != ARES_SUCCESS) {
			snprintf(error, error_size, "c-ares: %s",
				 ares_strerror(rc));
			return NULL;
		}
		library_ready = true;
	}
	r = xcalloc(1, sizeof(*r));
	r->base = base;
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = dns_sock_state;
	o.sock_state_cb_data = r;
	o.timeout = DNS_TIMEOUT_MS;
	o.tries = DNS_TRIES;
	o.lookups = lookups;
	/* Mail domains are absolute: never append a search domain. Keeping
	 * ARES_FLAG_NOCHECKRESP off lets c-ares try the next server after a
	 * SERVFAIL or REFUSED. */
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	/* Reads /etc/resolv.conf now, before the process chroots. */
	rc = ares_init_options(&r->channel, &o,
			       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
				   ARES_OPT_TRIES | ARES_OPT_LOOKUPS |
				   ARES_OPT_FLAGS);
	if (rc != ARES_SUCCESS) {
		snprintf(error, error_size, "c-ares: %s", ares_strerror(rc));
		free(r);
		return NULL;
	}
	if (dns_set_servers(r, cfg, error, error_size) < 0) {
		ares_destroy(r->channel);
		free(r);
		return NULL;
	}
	r->timer = evtimer_new(base, dns_timer_cb, r);
	if (r->timer == NULL)
		fatal("dns: evtimer_new failed");
	return r;
}

void dns_resolver_free(struct dns_resolver **rp)
{
	struct dns_resolver *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	/* Every sub-query is called back with ARES_EDESTRUCTION and only
	 * drops its count; the queries themselves are freed below. */
	r->destroying = true;
	ares_cancel(r->channel);
	ares_destroy(r->channel);
	while (r->queries != NULL)
		dns_query_free(r->queries);
	for (size_t i = 0; i < r->sock_count; i++)
		event_free(r->socks[i].ev);
	free(r->socks);
	event_free(r->timer);
	free(r);
}

static int dns_set_servers(struct dns_resolver *r, const struct config *cfg,
			   char *error, size_t error_size)
{
	char csv[CONFIG_MAX_DNS_SERVERS * 100];
	size_t len = 0;
	int n, rc;

	if (cfg == NULL || cfg->dns_server_count == 0)
		return 0;
	csv[0] = '\0';
	for (size_t i = 0; i < cfg->dns_server_count; i++) {
		/* config.c wrote "ADDR:PORT" or "[ADDR]:PORT". */
		n = snprintf(csv + len, sizeof(csv) - len, "%s%s",
			     i > 0 ? "," : "", cfg->dns_servers[i]);
		if (n < 0 || (size_t)n >= sizeof(csv) - len) {
			snprintf(error, error_size, "dns_servers: too long");
			return -1;
		}
		len += (size_t)n;
	}
	rc = ares_set_servers_ports_csv(r->channel, csv);
	if (rc != ARES_SUCCESS) {
		snprintf(error, error_size, "dns_servers: %s",
			 ares_strerror(rc));
		return -1;
	}
	return 0;
}

/* c-ares opens, closes and changes interest in its sockets; mirror that
 * with one persistent event per socket. */
static void dns_sock_state(void *data, ares_socket_t fd, int readable,
			   int writable)
{
	struct dns_resolver *r = data;
	struct dns_socket *s = NULL;
	short what;

	for (size_t i = 0; i < r->sock_count; i++) {
		if (r->socks[i].fd == fd) {
			s = &r->socks[i];
			break;
		}
	}
	if (s != NULL) {
		/* libevent copies the callback arguments before running a
		 * persistent event, so freeing it from inside is safe. */
		event_free(s->ev);
		s->ev = NULL;
	}
	if (!readable && !writable) {
		if (s != NULL)
			*s = r->socks[--r->sock_count];
		return;
	}
	if (s == NULL) {
		r->socks = xreallocarray(r->socks, r->sock_count + 1,
					 sizeof(*r->socks));
		s = &r->socks[r->sock_count++];
		s->fd = fd;
	}
	what =
	    EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	s->ev = event_new(r->base, fd, what, dns_sock_cb, r);
	if (s->ev == NULL || event_add(s->ev, NULL) < 0)
		fatal("dns: cannot watch a resolver socket");
}

static void dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_schedule(r);
}

static void dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	(void)fd;
	(void)what;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_schedule(r);
}

/* One timer for the whole channel: the next c-ares retry or timeout. */
static void dns_schedule(struct dns_resolver *r)
{
	struct timeval tv, *tvp;

	if (r->destroying)
		return;
	tvp = ares_timeout(r->channel, NULL, &tv);
	if (tvp == NULL)
		evtimer_del(r->timer);
	else
		evtimer_add(r->timer, tvp);
}

/* ---- queries ---- */

struct dns_query *dns_resolve_mx(struct dns_resolver *r, const char *domain,
				 dns_result_fn *fn, void *ctx)
{
	struct dns_query *q = dns_query_new(r, domain, fn, ctx);
	struct dns_work w;

	if (domain[0] == '[') {
		/* An address literal (RFC 5321 section 4.1.3) needs no
		 * lookup: it is the one host. */
		if (!dns_numeric(domain, &w)) {
			dns_query_decide(q, DNS_NXDOMAIN,
					 "%s: not a valid address literal",
					 q->domain);
		} else {
			q->hosts = xmalloc(sizeof(*q->hosts));
			q->hosts[0] = w;
			q->host_count = 1;
			q->implicit_mx = true;
		}
	} else if (!dns_name_copy(q->domain, domain)) {
		dns_query_decide(q, DNS_NXDOMAIN, "%s: not a valid domain name",
				 q->domain);
	} else {
		dns_query_lookup(q, 0, DNS_SUB_MX);
	}
	/* Held until here so an answer given while ares_query() runs
	 * cannot finish the query early; the callback is deferred. */
	dns_query_release(q);
	return q;
}

struct dns_query *dns_resolve_host(struct dns_resolver *r, const char *host,
				   dns_result_fn *fn, void *ctx)
{
	struct dns_query *q = dns_query_new(r, host, fn, ctx);
	struct dns_work w;

	q->host_mode = true;
	if (dns_numeric(host, &w)) {
		q->hosts = xmalloc(sizeof(*q->hosts));
		q->hosts[0] = w;
		q->host_count = 1;
	} else if (!dns_name_copy(q->domain, host)) {
		dns_query_decide(q, DNS_NXDOMAIN, "%s: not a valid host name",
				 q->domain);
	} else if (dns_is_localhost(q->domain)) {
		dns_add_localhost(q);
	} else {
		dns_add_host(q, q->domain, 0);
		dns_lookup_hosts(q);
	}
	dns_query_release(q);
	return q;
}

void dns_query_cancel(struct dns_query **qp)
{
	struct dns_query *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	if (q->in_callback)
		return; /* freed when its callback returns */
	if (q->pending == 0) {
		dns_query_free(q); /* also drops a pending finish event */
		return;
	}
	/* c-ares still holds pointers to sub-queries: free on their return. */
	q->cancelled = true;
}

/* The query starts with pending = 1, a hold that dns_resolve_* drops. */
static struct dns_query *dns_query_new(struct dns_resolver *r, const char *name,
				       dns_result_fn *fn, void *ctx)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));

	q->r = r;
	q->fn = fn;
	q->ctx = ctx;
	q->pending = 1;
	/* For error messages until validated; hostile bytes escaped. */
	log_escape(q->domain, sizeof(q->domain), name, strnlen(name, 300));
	q->finish = evtimer_new(r->base, dns_finish_cb, q);
	if (q->finish == NULL)
		fatal("dns: evtimer_new failed");
	q->next = r->queries;
	if (r->queries != NULL)
		r->queries->prev = q;
	r->queries = q;
	return q;
}

static void dns_query_unlink(struct dns_query *q)
{
	struct dns_resolver *r = q->r;

	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		r->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void dns_query_free(struct dns_query *q)
{
	dns_query_unlink(q);
	event_free(q->finish);
	free(q->hosts);
	free(q);
}

static void dns_query_lookup(struct dns_query *q, size_t host,
			     enum dns_sub_kind kind)
{
	struct dns_sub *s = xmalloc(sizeof(*s));
	const char *name = kind == DNS_SUB_MX ? q->domain : q->hosts[host].name;
	int type = kind == DNS_SUB_MX  ? ns_t_mx
		   : kind == DNS_SUB_A ? ns_t_a
				       : ns_t_aaaa;

	s->q = q;
	s->host = host;
	s->kind = kind;
	q->pending++;
	/* May call dns_sub_cb() at once (no servers, no memory). */
	ares_query(q->r->channel, name, ns_c_in, type, dns_sub_cb, s);
	dns_schedule(q->r);
}

static void dns_sub_cb(void *arg, int status, int timeouts, unsigned char *abuf,
		       int alen)
{
	struct dns_sub *s = arg;
	struct dns_query *q = s->q;

	(void)timeouts;
	if (!q->cancelled && !q->r->destroying && status != ARES_ECANCELLED &&
	    status != ARES_EDESTRUCTION && !q->decided) {
		if (s->kind == DNS_SUB_MX)
			dns_mx_answer(q, status, abuf, alen);
		else
			dns_addr_answer(q, s, status, abuf, alen);
	}
	free(s);
	dns_query_release(q);
}

/* Drops one pending count; the last one makes the result ready. */
static void dns_query_release(struct dns_query *q)
{
	static const struct timeval now = {0, 0};

	if (--q->pending > 0 || q->r->destroying)
		return;
	if (q->cancelled) {
		dns_query_free(q);
		return;
	}
	dns_query_conclude(q);
	/* Never call back from inside dns_resolve_*(): defer by a zero
	 * timer, which dns_query_cancel() can still delete. */
	q->finishing = true;
	evtimer_add(q->finish, &now);
}

static void dns_query_decide(struct dns_query *q, enum dns_status status,
			     const char *fmt, ...)
{
	va_list ap;

	if (q->decided)
		return;
	q->decided = true;
	q->status = status;
	va_start(ap, fmt);
	vsnprintf(q->error, sizeof(q->error), fmt, ap);
	va_end(ap);
}

static void dns_mx_answer(struct dns_query *q, int status,
			  const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *mx = NULL, *m;
	size_t seen = 0;

	if (status == ARES_SUCCESS)
		status = ares_parse_mx_reply(abuf, alen, &mx);
	if (status == ARES_ENODATA) {
		/* No MX: the domain is its own exchanger (RFC 5321 5.1). */
		q->implicit_mx = true;
		dns_add_host(q, q->domain, 0);
		dns_lookup_hosts(q);
		return;
	}
	if (status == ARES_ENOTFOUND) {
		dns_query_decide(q, DNS_NXDOMAIN,
				 "%s: domain does not exist (NXDOMAIN)",
				 q->domain);
		return;
	}
	if (status != ARES_SUCCESS && !dns_is_temporary(status)) {
		dns_query_decide(q, DNS_NO_ADDRESS, "%s: MX lookup: %s",
				 q->domain, dns_cause(status));
		return;
	}
	if (status != ARES_SUCCESS) {
		dns_query_decide(q, DNS_TEMPFAIL,
				 "%s: MX lookup: %s (temporary)", q->domain,
				 dns_cause(status));
		return;
	}
	/* RFC 7505 section 3: a single MX of preference 0 and host ".". */
	if (mx != NULL && mx->next == NULL && mx->priority == 0 &&
	    (mx->host[0] == '\0' || strcmp(mx->host, ".") == 0)) {
		dns_query_decide(q, DNS_NULL_MX,
				 "%s: null MX: the domain accepts no mail "
				 "(RFC 7505)",
				 q->domain);
		ares_free_data(mx);
		return;
	}
	for (m = mx; m != NULL && seen < DNS_MAX_MX_RECORDS; m = m->next) {
		char name[DNS_MAX_NAME + 1];
		bool dup = false;

		seen++;
		if (!dns_name_copy(name, m->host))
			continue;
		for (size_t i = 0; i < q->host_count && !dup; i++)
			dup = strcmp(q->hosts[i].name, name) == 0;
		if (!dup)
			dns_add_host(q, name, m->priority);
	}
	ares_free_data(mx);
	if (q->host_count == 0) {
		dns_query_decide(q, DNS_NO_ADDRESS, "%s: no valid MX host name",
				 q->domain);
		return;
	}
	qsort(q->hosts, q->host_count, sizeof(*q->hosts), dns_work_cmp);
	if (q->host_count > DNS_MAX_MX_HOSTS)
		q->host_count = DNS_MAX_MX_HOSTS;
	dns_lookup_hosts(q);
}

static void dns_addr_answer(struct dns_query *q, struct dns_sub *s, int status,
			    const unsigned char *abuf, int alen)
{
	struct dns_work *w = &q->hosts[s->host];
	int n = DNS_MAX_ADDRS_PER_FAMILY;

	if (s->kind == DNS_SUB_A) {
		struct ares_addrttl a[DNS_MAX_ADDRS_PER_FAMILY];

		if (status == ARES_SUCCESS)
			status = ares_parse_a_reply(abuf, alen, NULL, a, &n);
		for (int i = 0; status == ARES_SUCCESS && i < n; i++) {
			struct sockaddr_in *sin = &w->v4[w->v4_count++];

			memset(sin, 0, sizeof(*sin));
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, &a[i].ipaddr,
			       sizeof(sin->sin_addr));
		}
		w->a_status = status;
	} else {
		struct ares_addr6ttl a[DNS_MAX_ADDRS_PER_FAMILY];

		if (status == ARES_SUCCESS)
			status = ares_parse_aaaa_reply(abuf, alen, NULL, a, &n);
		for (int i = 0; status == ARES_SUCCESS && i < n; i++) {
			struct sockaddr_in6 *sin6 = &w->v6[w->v6_count++];

			memset(sin6, 0, sizeof(*sin6));
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, &a[i].ip6addr,
			       sizeof(sin6->sin6_addr));
		}
		w->aaaa_status = status;
	}
}

static struct dns_work *dns_add_host(struct dns_query *q, const char *name,
				     unsigned preference)
{
	struct dns_work *w;

	q->hosts =
	    xreallocarray(q->hosts, q->host_count + 1, sizeof(*q->hosts));
	w = &q->hosts[q->host_count++];
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->preference = preference;
	w->order = arc4random();
	w->a_status = w->aaaa_status = ARES_ENODATA;
	return w;
}

static void dns_lookup_hosts(struct dns_query *q)
{
	for (size_t i = 0; i < q->host_count; i++) {
		dns_query_lookup(q, i, DNS_SUB_AAAA);
		dns_query_lookup(q, i, DNS_SUB_A);
	}
}

/* By preference, equal preferences in the random order drawn per host. */
static int dns_work_cmp(const void *a, const void *b)
{
	const struct dns_work *x = a, *y = b;

	if (x->preference != y->preference)
		return x->preference < y->preference ? -1 : 1;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return 0;
}

/* Every lookup has returned: decide the status unless already decided. */
static void dns_query_conclude(struct dns_query *q)
{
	const struct dns_work *temp = NULL;
	bool nxdomain = true;

	if (q->decided)
		return;
	for (size_t i = 0; i < q->host_count; i++) {
		const struct dns_work *w = &q->hosts[i];

		if (w->v4_count + w->v6_count > 0) {
			q->status = DNS_OK;
			q->decided = true;
			return;
		}
		if (temp == NULL && (dns_is_temporary(w->aaaa_status) ||
				     dns_is_temporary(w->a_status)))
			temp = w;
		if (w->a_status != ARES_ENOTFOUND ||
		    w->aaaa_status != ARES_ENOTFOUND)
			nxdomain = false;
	}
	if (temp != NULL) {
		int st = dns_is_temporary(temp->aaaa_status) ? temp->aaaa_status
							     : temp->a_status;
		const char *type =
		    dns_is_temporary(temp->aaaa_status) ? "AAAA" : "A";

		if (q->host_mode || q->implicit_mx)
			dns_query_decide(q, DNS_TEMPFAIL,
					 "%s: %s lookup: %s (temporary)",
					 q->domain, type, dns_cause(st));
		else
			dns_query_decide(q, DNS_TEMPFAIL,
					 "%s: %s: %s lookup: %s (temporary)",
					 q->domain, temp->name, type,
					 dns_cause(st));
	} else if (q->host_mode && nxdomain) {
		dns_query_decide(q, DNS_NXDOMAIN,
				 "%s: host does not exist (NXDOMAIN)",
				 q->domain);
	} else if (q->host_mode) {
		dns_query_decide(q, DNS_NO_ADDRESS, "%s: no A or AAAA record",
				 q->domain);
	} else if (q->implicit_mx) {
		dns_query_decide(q, DNS_NO_ADDRESS,
				 "%s: no MX and no A or AAAA record",
				 q->domain);
	} else {
		dns_query_decide(q, DNS_NO_ADDRESS,
				 "%s: no MX host has an address (%s: %s)",
				 q->domain, q->hosts[0].name,
				 nxdomain ? "NXDOMAIN" : "no A or AAAA record");
	}
}

static void dns_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns_result res;
	size_t n = 0;

	(void)fd;
	(void)what;
	memset(&res, 0, sizeof(res));
	res.status = q->status;
	res.implicit_mx = q->implicit_mx;
	snprintf(res.error, sizeof(res.error), "%s", q->error);
	if (q->status == DNS_OK) {
		res.hosts = xcalloc(q->host_count, sizeof(*res.hosts));
		for (size_t i = 0; i < q->host_count; i++) {
			const struct dns_work *w = &q->hosts[i];
			struct dns_host *h = &res.hosts[n];
			size_t k = 0;

			if (w->v4_count + w->v6_count == 0)
				continue; /* dropped: no address */
			snprintf(h->name, sizeof(h->name), "%s", w->name);
			h->preference = w->preference;
			h->addrs = xcalloc(w->v4_count + w->v6_count,
					   sizeof(*h->addrs));
			/* IPv6 first, as RFC 6724's default policy. */
			for (size_t j = 0; j < w->v6_count; j++)
				memcpy(&h->addrs[k++], &w->v6[j],
				       sizeof(w->v6[j]));
			for (size_t j = 0; j < w->v4_count; j++)
				memcpy(&h->addrs[k++], &w->v4[j],
				       sizeof(w->v4[j]));
			h->addr_count = k;
			n++;
		}
		res.host_count = n;
	}
	/* Out of the resolver before the call: fn may cancel this query or
	 * free the whole resolver. */
	dns_query_unlink(q);
	event_free(q->finish);
	q->finish = NULL;
	q->in_callback = true;
	q->fn(q->ctx, &res);
	for (size_t i = 0; i < res.host_count; i++)
		free(res.hosts[i].addrs);
	free(res.hosts);
	free(q->hosts);
	free(q);
}

/* ---- hostile input ---- */

/*
 * Copies a host name from DNS data or a caller into dst (DNS_MAX_NAME + 1
 * bytes), lower-cased and without a trailing dot. Only letters, digits,
 * '-', '_' and '.', labels of 1 to 63 octets: anything else (escapes that
 * c-ares made of odd bytes, spaces, CR/LF) is refused, so a name is safe
 * in a log line, an SMTP greeting check and a DSN.
 */
static bool dns_name_copy(char *dst, const char *src)
{
	size_t len = strnlen(src, DNS_MAX_NAME + 2), label = 0;

	if (len > 0 && src[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = src[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			   c == '-' || c == '_') {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			c = (char)(c - 'A' + 'a');
			label++;
		} else {
			return false;
		}
		if (label > DNS_MAX_LABEL)
			return false;
		dst[i] = c;
	}
	dst[len] = '\0';
	return true;
}

/* "192.0.2.1", "2001:db8::1", "[192.0.2.1]", "[IPv6:2001:db8::1]",
 * "[2001:db8::1]": fills w with the one address. */
static bool dns_numeric(const char *host, struct dns_work *w)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len = strnlen(host, sizeof(buf));
	const char *p = buf;

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, host, len + 1);
	if (buf[0] == '[') {
		if (len < 3 || buf[len - 1] != ']')
			return false;
		buf[len - 1] = '\0';
		p = buf + 1;
		if (strncasecmp(p, "IPv6:", 5) == 0)
			p += 5;
	}
	memset(w, 0, sizeof(*w));
	if (inet_pton(AF_INET, p, &w->v4[0].sin_addr) == 1) {
		w->v4[0].sin_family = AF_INET;
		w->v4_count = 1;
	} else if (inet_pton(AF_INET6, p, &w->v6[0].sin6_addr) == 1) {
		w->v6[0].sin6_family = AF_INET6;
		w->v6_count = 1;
	} else {
		return false;
	}
	snprintf(w->name, sizeof(w->name), "%s", host);
	return true;
}

/* RFC 6761 section 6.3: "localhost" and names below it are the loopback
 * addresses without a query (/etc/hosts is not read, see
 * dns_resolver_new()). */
static bool dns_is_localhost(const char *name)
{
	size_t len = strlen(name);

	return strcmp(name, "localhost") == 0 ||
	       (len > 10 && strcmp(name + len - 10, ".localhost") == 0);
}

static void dns_add_localhost(struct dns_query *q)
{
	struct dns_work *w = dns_add_host(q, q->domain, 0);

	w->v6[0].sin6_family = AF_INET6;
	w->v6[0].sin6_addr = in6addr_loopback;
	w->v6_count = 1;
	w->v4[0].sin_family = AF_INET;
	w->v4[0].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	w->v4_count = 1;
}

/* Worth a retry later: everything but "the name or record is absent". */
static bool dns_is_temporary(int status)
{
	switch (status) {
	case ARES_SUCCESS:
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:
		return false;
	default:
		return true;
	}
}

static const char *dns_cause(int status)
{
	switch (status) {
	case ARES_ESERVFAIL:
		return "SERVFAIL";
	case ARES_ETIMEOUT:
		return "timeout";
	case ARES_EREFUSED:
		return "REFUSED";
	case ARES_ECONNREFUSED:
		/* c-ares 1.18 ends a query this way after SERVFAIL or REFUSED
		 * answers too, not only after an ICMP port unreachable. */
		return "server failure (SERVFAIL, REFUSED or unreachable)";
	case ARES_ENOTFOUND:
		return "NXDOMAIN";
	case ARES_ENODATA:
		return "no record";
	case ARES_EFORMERR:
		return "FORMERR";
	case ARES_ENOTIMP:
		return "NOTIMP";
	case ARES_EBADRESP:
		return "malformed answer";
	default:
		return ares_strerror(status);
	}
}
