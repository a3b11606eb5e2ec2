/* The SMTP client conversation with a remote server, over the network. */
/*
 * This file does the I/O: sockets, timers, libevent callbacks and the
 * state machine from the greeting to the reply after the final dot.
 * smtp_client.c beside it holds the pure protocol pieces it calls (the
 * reply parser, the EHLO keywords, the DATA encoder), with no sockets so
 * they can be unit-tested and fuzzed. Connections kept open between
 * messages live in conn_cache.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "delivery/delivery_internal.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

static struct dest *delivery_dest(struct delivery *d, const char *key);
static void sess_resolve(struct session *s);
static void sess_dns_cb(void *ctx, const struct dns_result *res);
static void sess_connect_next(struct session *s);
static void sess_nodelay(struct session *s);
static void sess_close_conn(struct session *s);
static void sess_set_timer(struct session *s, unsigned secs);
static void sess_timer_cb(evutil_socket_t fd, short what, void *arg);
static void sess_host_failed(struct session *s, const char *why);
static void sess_send(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static bool sess_loops_back(const struct session *s,
			    const struct smtp_reply *r);
static void sess_reply(struct session *s, const struct smtp_reply *r);
static void sess_after_ehlo(struct session *s);
static void sess_tls_failed(struct session *s);
static void sess_start_tls(struct session *s);
static void sess_send_envelope(struct session *s);
static void sess_body_more(struct session *s);
static void sess_body_end(struct session *s);
static void sess_finish(struct session *s, unsigned cls, const char *reply,
			const char *status);

static struct dest *delivery_dest(struct delivery *d, const char *key)
{
	struct dest *x;

	for (x = d->dests; x != NULL; x = x->next) {
		if (strcmp(x->key, key) == 0)
			return x;
	}
	x = xcalloc(1, sizeof(*x));
	snprintf(x->key, sizeof(x->key), "%s", key);
	x->next = d->dests;
	d->dests = x;
	return x;
}

void attempt_remote(struct attempt *a, struct group *g)
{
	struct delivery *d = a->d;
	struct session *s;
	struct dest *x = delivery_dest(d, g->route.key);

	if (d->cfg->max_connections_per_destination > 0 &&
	    x->active >= d->cfg->max_connections_per_destination) {
		struct attempt **w = &d->waiting;

		while (*w != NULL)
			w = &(*w)->wait_next;
		*w = a;
		return;
	}
	x->active++;
	g->dest = x;
	s = xcalloc(1, sizeof(*s));
	s->a = a;
	s->base = d->base;
	s->timer = evtimer_new(d->base, sess_timer_cb, s);
	s->rcpt_code = xcalloc(g->count, sizeof(int));
	snprintf(s->relay, sizeof(s->relay), "%s", g->route.host);
	snprintf(s->tls_version, sizeof(s->tls_version), "no TLS");
	a->sess = s;
	if (g->route.auth && d->auth_user == NULL) {
		sess_finish(s, 4, "relay_auth has no credentials", "4.7.0");
		return;
	}
	if (sess_take_idle(s)) {
		sess_send_envelope(s);
		return;
	}
	sess_resolve(s);
}

static void sess_resolve(struct session *s)
{
	struct delivery *d = s->a->d;
	struct group *g = s->a->cur;

	if (g->route.kind == ROUTE_MX)
		s->query =
		    dns_resolve_mx(d->dns, g->route.host, sess_dns_cb, s);
	else
		s->query =
		    dns_resolve_host(d->dns, g->route.host, sess_dns_cb, s);
}

static void sess_dns_cb(void *ctx, const struct dns_result *res)
{
	struct session *s = ctx;
	char msg[512];

	s->query = NULL;
	switch (res->status) {
	case DNS_OK:
		break;
	case DNS_TEMPFAIL:
		snprintf(msg, sizeof(msg), "DNS: %s", res->error);
		sess_finish(s, 4, msg, "4.4.3");
		return;
	case DNS_NULL_MX:
		snprintf(msg, sizeof(msg),
			 "the domain accepts no mail (null MX, RFC 7505)");
		sess_finish(s, 5, msg, "5.1.10");
		return;
	case DNS_NXDOMAIN:
	case DNS_NO_ADDRESS:
	default:
		snprintf(msg, sizeof(msg), "DNS: %s", res->error);
		if (s->a->cur->route.kind != ROUTE_MX) {
			/* A transport or relay_host the admin named that does
			 * not resolve is a configuration error: the mail
			 * waits for the fix instead of bouncing. */
			log_warn("id=%s route %s for %s does not resolve: %s",
				 s->a->env->id, s->a->cur->route.host,
				 s->a->cur->domain, res->error);
			sess_finish(s, 4, msg, "4.4.4");
			return;
		}
		sess_finish(s, 5, msg, "5.1.2");
		return;
	}
	s->host_count = res->host_count;
	s->hosts = xcalloc(res->host_count + 1, sizeof(*s->hosts));
	for (size_t i = 0; i < res->host_count; i++) {
		s->hosts[i] = res->hosts[i];
		s->hosts[i].addrs = xcalloc(res->hosts[i].addr_count + 1,
					    sizeof(struct sockaddr_storage));
		memcpy(s->hosts[i].addrs, res->hosts[i].addrs,
		       res->hosts[i].addr_count *
			   sizeof(struct sockaddr_storage));
	}
	snprintf(s->last_error, sizeof(s->last_error),
		 "no address to connect to");
	sess_connect_next(s);
}

/* Connects to the next address (host by host, address by address). */
static void sess_connect_next(struct session *s)
{
	struct attempt *a = s->a;
	struct group *g = a->cur;

	sess_close_conn(s);
	while (s->host_i < s->host_count) {
		struct dns_host *h = &s->hosts[s->host_i];

		if (s->addr_i >= h->addr_count) {
			s->host_i++;
			s->addr_i = 0;
			s->no_tls = false;
			continue;
		}
		struct sockaddr_storage ss = h->addrs[s->addr_i];
		socklen_t len;
		char addr[INET6_ADDRSTRLEN] = "?";

		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			sin6->sin6_port = htons((uint16_t)g->route.port);
			inet_ntop(AF_INET6, &sin6->sin6_addr, addr,
				  sizeof(addr));
			len = sizeof(*sin6);
		} else {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			sin->sin_port = htons((uint16_t)g->route.port);
			inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
			len = sizeof(*sin);
		}
		snprintf(s->relay, sizeof(s->relay), "%s[%s]:%u", h->name, addr,
			 g->route.port);
		snprintf(s->tls_version, sizeof(s->tls_version), "no TLS");
		s->tls = false;
		s->verified = false;
		s->authed = false;
		s->ehlo_tls = false;
		s->replies_expected = s->replies_seen = 0;
		s->rcpt_accepted = 0;
		smtp_reply_parser_init(&s->parser);
		s->bev =
		    bufferevent_socket_new(s->base, -1, BEV_OPT_CLOSE_ON_FREE);
		if (s->bev == NULL)
			fatal("bufferevent_socket_new failed");
		bufferevent_setcb(s->bev, sess_read_cb, sess_write_cb,
				  sess_event_cb, s);
		s->state = S_CONNECT;
		sess_set_timer(s, DELIVERY_CONNECT_TIMEOUT);
		if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss,
					       (int)len) < 0) {
			snprintf(s->last_error, sizeof(s->last_error),
				 "connect to %s: %s", s->relay,
				 strerror(errno));
			s->addr_i++;
			sess_close_conn(s);
			continue;
		}
		sess_nodelay(s);
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
		return;
	}
	/* Every host failed: a temporary failure (RFC 5321 section 5.1). */
	sess_finish(s, 4, s->last_error, "4.4.1");
}

/*
 * Without TCP_NODELAY, Nagle holds a small segment (the final dot, a
 * pipelined command group) until the peer ACKs the previous one, and the
 * peer delays that ACK (~40 ms on Linux) while it waits for the rest:
 * one message per 40 ms per connection. The runner writes whole command
 * groups and body chunks at once, so it has no tinygrams to coalesce.
 */
static void sess_nodelay(struct session *s)
{
	int one = 1;
	evutil_socket_t fd = bufferevent_getfd(s->bev);

	if (fd >= 0 &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		log_warn("queue runner: TCP_NODELAY: %s", strerror(errno));
}

static void sess_close_conn(struct session *s)
{
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->timer != NULL)
		evtimer_del(s->timer);
}

static void sess_set_timer(struct session *s, unsigned secs)
{
	struct timeval tv = {attempt_timeout(s->a, secs), 0};

	evtimer_add(s->timer, &tv);
}

static void sess_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	if (s->data_sent)
		/* No answer to the final dot: it may have been delivered;
		 * retrying risks a duplicate, which beats a loss. */
		sess_finish(s, 4, "timeout waiting for the reply to DATA",
			    "4.4.2");
	else
		sess_host_failed(s, "timeout");
}

/* This address failed before any recipient got an answer: the next. */
static void sess_host_failed(struct session *s, const char *why)
{
	snprintf(s->last_error, sizeof(s->last_error), "%s: %s", s->relay, why);
	if (s->reused && s->replies_seen == 0 && !s->data_sent) {
		/* The idle connection went away meanwhile: a new one. */
		s->reused = false;
		sess_close_conn(s);
		s->state = S_CONNECT;
		sess_resolve(s);
		return;
	}
	if (s->state >= S_MAIL && s->state != S_QUIT) {
		/* Lost mid-transaction: do not send again elsewhere now. */
		sess_finish(s, 4, s->last_error, "4.4.2");
		return;
	}
	s->addr_i++;
	sess_connect_next(s);
}

void sess_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == S_CONNECT) {
			s->state = S_GREETING;
			sess_set_timer(s, DELIVERY_COMMAND_TIMEOUT);
			return;
		}
		if (s->state == S_TLS) {
			SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

			s->tls = true;
			/* Checked during the handshake, or it failed. */
			s->verified = sess_must_verify(s);
			snprintf(s->tls_version, sizeof(s->tls_version), "%s",
				 SSL_get_version(ssl));
			s->state = S_EHLO;
			s->ehlo_tls = true;
			sess_send(s, "EHLO %s\r\n", s->a->d->cfg->hostname);
			return;
		}
		return;
	}
	if (s->state == S_TLS) {
		sess_tls_failed(s);
		return;
	}
	if (s->state == S_QUIT) {
		sess_close_conn(s);
		return;
	}
	if (s->data_sent) {
		sess_finish(s, 4, "connection lost after DATA", "4.4.2");
		return;
	}
	sess_host_failed(
	    s, (what & BEV_EVENT_EOF)
		   ? "connection closed"
		   : (errno != 0 ? strerror(errno) : "connection error"));
}

void sess_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (s->bev == bev && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		struct smtp_reply *r;
		const char *error;
		size_t used;
		int rv;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		r = xmalloc(sizeof(*r));
		rv = smtp_reply_parse(&s->parser, v.iov_base, v.iov_len, &used,
				      r, &error);
		evbuffer_drain(in, used);
		if (rv < 0) {
			free(r);
			sess_host_failed(s, error);
			return;
		}
		if (rv == 1) {
			sess_reply(s, r);
			free(r);
			/* The session may be gone, or the bev replaced by
			 * TLS (plaintext after STARTTLS is dropped). */
			if (s->a == NULL || s->bev != bev)
				return;
		} else {
			free(r);
		}
	}
}

void sess_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->state == S_BODY && !s->body_done)
		sess_body_more(s);
}

static void sess_send(struct session *s, const char *fmt, ...)
{
	char line[SMTP_MAX_PATH * 2 + 1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		fatal("queue runner: command too long");
	bufferevent_write(s->bev, line, (size_t)n);
	sess_set_timer(s, DELIVERY_COMMAND_TIMEOUT);
}

/* True when the EHLO reply names this server (its first word is our
 * hostname, RFC 5321 section 4.1.1.1). */
static bool sess_loops_back(const struct session *s, const struct smtp_reply *r)
{
	const char *name = s->a->d->cfg->hostname;
	size_t len = strlen(name);

	return r->text_len >= len && strncasecmp(r->text, name, len) == 0 &&
	       (r->text[len] == '\0' || r->text[len] == ' ' ||
		r->text[len] == '\n');
}

static void sess_reply(struct session *s, const struct smtp_reply *r)
{
	struct attempt *a = s->a;
	struct group *g = a->cur;
	unsigned cls = smtp_reply_class(r);
	char text[QUEUE_MAX_ERROR];

	smtp_reply_format(r, text, sizeof(text));
	switch (s->state) {
	case S_CONNECT:
	case S_GREETING:
		if (cls != 2) {
			sess_host_failed(s, text);
			return;
		}
		s->state = S_EHLO;
		sess_send(s, "EHLO %s\r\n", a->d->cfg->hostname);
		return;
	case S_EHLO:
		if (cls == 5 && !s->ehlo_tls) {
			s->state = S_HELO;
			sess_send(s, "HELO %s\r\n", a->d->cfg->hostname);
			return;
		}
		if (cls != 2) {
			sess_host_failed(s, text);
			return;
		}
		if (g->route.kind == ROUTE_MX && sess_loops_back(s, r)) {
			char msg[QUEUE_MAX_ERROR];

			/* An MX that is this server (a DNS mistake, or
			 * a hostile MX pointing at us): Postfix's "mail
			 * for DOMAIN loops back to myself". */
			snprintf(msg, sizeof(msg),
				 "mail for %s loops back to myself: the MX "
				 "host greets as %s",
				 g->domain, a->d->cfg->hostname);
			sess_finish(s, 5, msg, "5.4.6");
			return;
		}
		smtp_ehlo_parse(r, &s->ehlo);
		sess_after_ehlo(s);
		return;
	case S_HELO:
		if (cls != 2) {
			sess_host_failed(s, text);
			return;
		}
		memset(&s->ehlo, 0, sizeof(s->ehlo));
		sess_after_ehlo(s);
		return;
	case S_STARTTLS:
		if (cls != 2) {
			if (g->route.tls == TLS_POLICY_MAY && !g->route.auth) {
				s->no_tls = true;
				sess_after_ehlo(s);
			} else {
				sess_host_failed(s, text);
			}
			return;
		}
		sess_start_tls(s);
		return;
	case S_AUTH:
		if (cls != 2) {
			/* Wrong credentials are the admin's to fix; the
			 * mail waits (RFC 4954 535 is a 5xx, but a bounce
			 * for a config error helps nobody). */
			log_warn("id=%s %s refused AUTH: %s", a->env->id,
				 s->relay, text);
			sess_finish(s, 4, text, "4.7.0");
			return;
		}
		s->authed = true;
		sess_send_envelope(s);
		return;
	case S_MAIL:
		s->replies_seen++;
		if (s->replies_seen == 1) {
			if (cls != 2) {
				sess_finish(
				    s, cls == 5 ? 5 : 4, text,
				    r->enhanced[0]
					? r->enhanced
					: (cls == 5 ? "5.0.0" : "4.0.0"));
				return;
			}
		} else {
			size_t k = s->replies_seen - 2;

			s->rcpt_code[k] = (int)cls;
			if (cls == 2) {
				s->rcpt_accepted++;
			} else {
				attempt_result(
				    a, g->idx[k], cls == 5 ? 5 : 4, text,
				    r->enhanced[0]
					? r->enhanced
					: (cls == 5 ? "5.0.0" : "4.0.0"),
				    s->relay, s->tls_version);
			}
			if (!s->ehlo.pipelining && k + 1 < g->count) {
				const char *ra =
				    a->env->rcpts[g->idx[k + 1]].addr;

				sess_send(s, "RCPT TO:<%s>\r\n", ra);
				return;
			}
		}
		if (s->replies_seen == 1 && !s->ehlo.pipelining) {
			sess_send(s, "RCPT TO:<%s>\r\n",
				  a->env->rcpts[g->idx[0]].addr);
			return;
		}
		if (s->replies_seen < g->count + 1)
			return;
		if (s->rcpt_accepted == 0) {
			/* Every RCPT answered and refused. */
			s->state = S_QUIT;
			sess_send(s, "QUIT\r\n");
			sess_finish(s, 0, NULL, NULL);
			return;
		}
		s->state = S_DATA;
		sess_send(s, "DATA\r\n");
		return;
	case S_DATA:
		if (r->code != 354) {
			sess_finish(s, cls == 5 ? 5 : 4, text,
				    r->enhanced[0]
					? r->enhanced
					: (cls == 5 ? "5.0.0" : "4.0.0"));
			return;
		}
		s->state = S_BODY;
		smtp_data_encoder_init(&s->enc);
		s->body_off = a->env->skip;
		s->body_done = false;
		if (a->dkim_header != NULL)
			bufferevent_write(s->bev, a->dkim_header, a->dkim_len);
		bufferevent_setwatermark(s->bev, EV_WRITE, DELIVERY_CHUNK, 0);
		sess_body_more(s);
		return;
	case S_BODY:
	case S_DOT:
		s->data_sent = false;
		sess_finish(s, cls == 5 ? 5 : (cls == 2 ? 2 : 4), text,
			    r->enhanced[0] ? r->enhanced
					   : (cls == 5 ? "5.0.0" : "4.0.0"));
		return;
	case S_TLS:
	case S_QUIT:
		return;
	}
}

static void sess_after_ehlo(struct session *s)
{
	struct attempt *a = s->a;
	struct group *g = a->cur;

	if (!s->tls && !s->no_tls && s->ehlo.starttls) {
		s->state = S_STARTTLS;
		sess_send(s, "STARTTLS\r\n");
		return;
	}
	if (!s->tls && (g->route.tls == TLS_POLICY_VERIFY || g->route.auth)) {
		if (g->route.auth)
			log_warn("id=%s relay_host %s: no TLS; relay_auth "
				 "credentials not sent, mail deferred; fix: "
				 "enable STARTTLS on the smarthost",
				 a->env->id, s->relay);
		sess_host_failed(s, g->route.auth
					? "refusing AUTH without TLS"
					: "TLS required (tls_policy verify) "
					  "but not available");
		return;
	}
	if (g->route.auth) {
		/* AUTH PLAIN: "\0user\0password" in base64. */
		if (a->d->cfg->relay_auth_insecure)
			log_warn("id=%s %s: relay_auth_insecure: AUTH over TLS "
				 "that is not verified",
				 a->env->id, s->relay);
		size_t ul = strlen(a->d->auth_user),
		       pl = strlen(a->d->auth_pass);
		unsigned char raw[1024];
		unsigned char b64[1400];

		if (ul + pl + 2 > sizeof(raw)) {
			sess_finish(s, 4, "relay_auth too long", "4.7.0");
			return;
		}
		raw[0] = '\0';
		memcpy(raw + 1, a->d->auth_user, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, a->d->auth_pass, pl);
		EVP_EncodeBlock(b64, raw, (int)(ul + pl + 2));
		OPENSSL_cleanse(raw, sizeof(raw));
		s->state = S_AUTH;
		sess_send(s, "AUTH PLAIN %s\r\n", (char *)b64);
		OPENSSL_cleanse(b64, sizeof(b64));
		return;
	}
	sess_send_envelope(s);
}

/* The certificate is checked under tls_policy verify, and always before
 * relay_auth credentials go out (unless relay_auth_insecure allows a
 * smarthost on this machine): an unverified peer may be anyone on the
 * path, or whoever answers DNS for relay_host. */
bool sess_must_verify(const struct session *s)
{
	const struct route *r = &s->a->cur->route;

	return r->tls == TLS_POLICY_VERIFY ||
	       (r->auth && !s->a->d->cfg->relay_auth_insecure);
}

/* The handshake failed: opportunistic TLS retries in plaintext, anything
 * that needed TLS fails this host. A relay_auth route says why and what
 * to change, as the mail waits until the admin acts. */
static void sess_tls_failed(struct session *s)
{
	const struct route *r = &s->a->cur->route;
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
	/* Without SSL_VERIFY_PEER the result is recorded but did not end
	 * the handshake. */
	long vr = ssl != NULL && sess_must_verify(s)
		      ? SSL_get_verify_result(ssl)
		      : X509_V_OK;
	unsigned long e = bufferevent_get_openssl_error(s->bev);
	bool name = vr == X509_V_ERR_HOSTNAME_MISMATCH ||
		    vr == X509_V_ERR_IP_ADDRESS_MISMATCH;
	char msg[256];

	if (vr != X509_V_OK)
		snprintf(msg, sizeof(msg), "TLS handshake failed: %s: %s",
			 name ? "name mismatch" : "certificate not trusted",
			 X509_verify_cert_error_string(vr));
	else
		snprintf(msg, sizeof(msg), "TLS handshake failed: %s",
			 e != 0 ? ERR_reason_error_string(e) : "closed");
	ERR_clear_error();
	if (r->tls == TLS_POLICY_MAY && !r->auth) {
		/* Opportunistic: this host again, in plaintext. */
		log_info("id=%s %s: %s; retrying without TLS", s->a->env->id,
			 s->relay, msg);
		s->no_tls = true;
		sess_connect_next(s);
		return;
	}
	if (r->auth)
		log_warn("id=%s relay_host %s: %s; relay_auth credentials not "
			 "sent, mail deferred; fix: %s",
			 s->a->env->id, s->relay, msg,
			 name ? "set relay_host to a name the certificate "
				"carries"
			 : vr != X509_V_OK
			     ? "put the CA that signed the certificate in "
			       "tls_ca_file (or, for a smarthost on this "
			       "machine, set relay_auth_insecure = yes)"
			     : "check TLS on the smarthost");
	sess_host_failed(s, msg);
}

/* STARTTLS (RFC 3207): drop any plaintext that came after the 220
 * (INV-S1), then handshake over the same socket. */
static void sess_start_tls(struct session *s)
{
	bool verify = sess_must_verify(s);
	SSL *ssl = SSL_new(verify ? s->a->d->ctx_verify : s->a->d->ctx_may);
	evutil_socket_t fd = bufferevent_getfd(s->bev);
	struct dns_host *h = &s->hosts[s->host_i];

	if (ssl == NULL)
		fatal("SSL_new failed");
	/* SNI is for names only (RFC 6066 section 3). */
	if (strchr(h->name, ':') == NULL &&
	    strspn(h->name, "0123456789.") != strlen(h->name))
		SSL_set_tlsext_host_name(ssl, h->name);
	if (verify) {
		/* An address literal as next hop (a transport to
		 * 127.0.0.1) matches an IP subjectAltName instead. */
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

		if (X509_VERIFY_PARAM_set1_ip_asc(vp, h->name) != 1) {
			ERR_clear_error();
			SSL_set1_host(ssl, h->name);
		}
	}
	evbuffer_drain(bufferevent_get_input(s->bev),
		       evbuffer_get_length(bufferevent_get_input(s->bev)));
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	bufferevent_setfd(s->bev, -1);
	bufferevent_free(s->bev);
	s->bev = bufferevent_openssl_socket_new(s->base, fd, ssl,
						BUFFEREVENT_SSL_CONNECTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		fatal("bufferevent_openssl_socket_new failed");
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	bufferevent_setcb(s->bev, sess_read_cb, sess_write_cb, sess_event_cb,
			  s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	smtp_reply_parser_init(&s->parser);
	memset(&s->ehlo, 0, sizeof(s->ehlo));
	s->state = S_TLS;
	sess_set_timer(s, DELIVERY_COMMAND_TIMEOUT);
}

static void sess_send_envelope(struct session *s)
{
	struct attempt *a = s->a;
	struct group *g = a->cur;
	char params[128] = "";
	size_t pl = 0;

	if (a->needs_utf8 && !s->ehlo.smtputf8) {
		sess_finish(s, 5,
			    "the remote server does not offer SMTPUTF8, "
			    "needed for these addresses",
			    "5.6.7");
		return;
	}
	if (s->ehlo.size) {
		if (s->ehlo.size_max != 0 && a->wire_size > s->ehlo.size_max) {
			sess_finish(s, 5,
				    "the message is larger than the remote "
				    "server's SIZE limit",
				    "5.3.4");
			return;
		}
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl,
				       " SIZE=%llu",
				       (unsigned long long)a->wire_size);
	}
	/* 8-bit without 8BITMIME is sent as it is (see delivery.md). */
	if (a->eightbit && s->ehlo.eightbitmime)
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl,
				       " BODY=8BITMIME");
	if (a->needs_utf8)
		snprintf(params + pl, sizeof(params) - pl, " SMTPUTF8");
	if (a->dkim_header == NULL && a->env->sender[0] != '\0') {
		const char *dom = attempt_sender_domain(a);
		const char *error;

		if (dom != NULL &&
		    dkim_sign(a->d->dkim, dom, a->msg_fd, a->env->skip,
			      a->env->size, &a->dkim_header, &error) < 0)
			log_warn("id=%s DKIM signing failed: %s", a->env->id,
				 error);
		if (a->dkim_header != NULL)
			a->dkim_len = strlen(a->dkim_header);
	}
	s->state = S_MAIL;
	s->replies_seen = 0;
	s->rcpt_accepted = 0;
	s->replies_expected = g->count + 1;
	sess_send(s, "MAIL FROM:<%s>%s\r\n", a->env->sender, params);
	if (s->ehlo.pipelining) {
		for (size_t k = 0; k < g->count; k++)
			sess_send(s, "RCPT TO:<%s>\r\n",
				  a->env->rcpts[g->idx[k]].addr);
	}
}

/* Streams the message from msg/ID: one chunk whenever the output falls
 * below the watermark, so a big message never sits in memory. */
static void sess_body_more(struct session *s)
{
	struct attempt *a = s->a;
	char in[DELIVERY_CHUNK];
	char *out;
	size_t want, n;
	ssize_t got;

	if (a->env->size <= s->body_off) {
		char end[8];

		n = smtp_data_encode_end(&s->enc, end);
		bufferevent_write(s->bev, end, n);
		sess_body_end(s);
		return;
	}
	want = sizeof(in);
	if (a->env->size - s->body_off < want)
		want = (size_t)(a->env->size - s->body_off);
	got = pread(a->msg_fd, in, want, (off_t)s->body_off);
	if (got <= 0) {
		sess_finish(s, 4, "read error on the queued message", "4.3.0");
		return;
	}
	/* Room for the end too: the last chunk and the final dot go out
	 * in one write (one segment for a small message). */
	out = xmalloc(2 * (size_t)got + 8);
	n = smtp_data_encode(&s->enc, in, (size_t)got, out);
	s->body_off += (uint64_t)got;
	if (s->body_off >= a->env->size) {
		n += smtp_data_encode_end(&s->enc, out + n);
		bufferevent_write(s->bev, out, n);
		free(out);
		sess_body_end(s);
		return;
	}
	bufferevent_write(s->bev, out, n);
	free(out);
	sess_set_timer(s, DELIVERY_COMMAND_TIMEOUT);
}

/* The final dot is written: wait for the reply to the message. */
static void sess_body_end(struct session *s)
{
	s->body_done = true;
	s->data_sent = true;
	s->state = S_DOT;
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	sess_set_timer(s, DELIVERY_DATA_END_TIMEOUT);
}

/*
 * The group's end. cls 0: every recipient already has its result (all
 * refused at RCPT). Otherwise cls/reply apply to the recipients without
 * one: all of them before RCPT, the accepted ones after DATA.
 */
static void sess_finish(struct session *s, unsigned cls, const char *reply,
			const char *status)
{
	struct attempt *a = s->a;
	struct group *g = a->cur;

	if (cls != 0) {
		for (size_t k = 0; k < g->count; k++) {
			if (s->rcpt_code[k] != 0 && s->rcpt_code[k] != 2)
				continue;
			attempt_result(a, g->idx[k], cls, reply, status,
				       s->relay, s->tls_version);
		}
	}
	evtimer_del(s->timer);
	if (cls == 2 && s->state == S_DOT && sess_park(s)) {
		s->state = S_QUIT;
		attempt_group_done(a);
		return;
	}
	if (s->bev != NULL && s->state != S_QUIT) {
		/* A polite end where the connection still works. */
		if (cls == 2 || cls == 0 ||
		    (s->state >= S_MAIL && !s->data_sent))
			bufferevent_write(s->bev, "QUIT\r\n", 6);
	}
	s->state = S_QUIT;
	if (s->bev != NULL)
		bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
	attempt_group_done(a);
}

void sess_free(struct session **sp)
{
	struct session *s = *sp;

	if (s == NULL)
		return;
	if (s->query != NULL)
		dns_query_cancel(&s->query);
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->timer != NULL)
		event_free(s->timer);
	for (size_t i = 0; i < s->host_count; i++)
		free(s->hosts[i].addrs);
	free(s->hosts);
	free(s->rcpt_code);
	free(s);
	*sp = NULL;
}
