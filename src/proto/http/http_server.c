/*
 * evhttp parses; this file decides. evhttp accepts connections itself, so
 * each one is tracked through the bufferevent we hand it (evhttp_set_bevcb):
 * we hold a reference to that bufferevent, check the connection caps right
 * after the accept, enforce a whole-request deadline (evhttp only has
 * inactivity timeouts, which a slowloris client defeats), and notice the
 * end of the connection either through evhttp's close callback or, for a
 * connection that never completed a request, through a periodic sweep
 * (evhttp clears the bufferevent's callbacks when it frees it).
 */
#include "proto/http/http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <event2/listener.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/username.h"
#include "lib/xmalloc.h"
#include "net/conn.h"
#include "net/connlimit.h"
#include "net/proxy_proto.h"
#include "proto/http/autodiscover.h"
#include "proto/http/metrics_export.h"

#define HTTP_MAX_LISTENERS 16
#define HTTP_MAX_LOG_PATH 128
/* Connections still waiting for their PROXY header, as on the other
 * listeners. */
#define HTTP_PROXY_PENDING_MAX 1024

struct http_conn {
	struct http_server *srv;
	struct bufferevent *bev; /* we hold a reference */
	struct event *timer;	 /* the caps check, then the deadline */
	struct sockaddr_storage peer;
	char peer_str[64];
	bool checked, counted, refused, timed_out, closecb_set;
	unsigned requests;
	/* proxy_protocol.http: a PROXY header comes first (see
	 * http_proxy_filter_in); checked waits until it has. */
	bool proxy, proxy_started, proxy_done;
	bool proxy_in_wait; /* counted in srv->proxy_waiting */
	size_t proxy_have;
	struct event *proxy_ev; /* reads the header */
	uint8_t proxy_buf[PROXY_HEADER_MAX];
	struct http_conn *prev, *next;
};

struct http_listener {
	struct evconnlistener *lev;
	struct evhttp_bound_socket *bound;
	struct event *retry;
	const char *label;
};

struct http_server {
	struct event_base *base;
	const struct proto_env *env;
	autoconfig_served_fn *served;
	struct evhttp *http;
	struct http_listener listeners[HTTP_MAX_LISTENERS];
	size_t listener_count;
	struct event *sweep;
	struct http_conn *conns;
	size_t conn_count;
	size_t proxy_waiting; /* connections still before their header */
	struct ev_token_bucket_cfg *proxy_gate; /* see http_proxy_gate_close */
	unsigned deadline;
	struct metrics_export metrics;
};

/* What the handler of one request needs. */
struct http_request {
	struct http_server *srv;
	struct http_conn *hc; /* NULL if not tracked */
	struct evhttp_request *req;
	const char *peer;
	const char *path;
	const char *query;
};

typedef void http_handler_fn(struct http_request *r);

struct http_route {
	const char *path;
	enum evhttp_cmd_type method;
	bool any_case;
	http_handler_fn *handler;
};

static struct bufferevent *http_bev_cb(struct event_base *base, void *arg);
static bool http_conn_gone(struct http_conn *hc);
static bool http_conn_check(struct http_conn *hc);
static bool http_conn_sock_peer(struct http_conn *hc);
static void http_proxy_gate_close(struct http_server *srv,
				  struct bufferevent *bev);
static void http_proxy_gate_open(struct http_conn *hc);
static void http_proxy_start(struct http_conn *hc);
static void http_proxy_refuse(struct http_conn *hc, const char *cause);
static void http_proxy_stop_waiting(struct http_conn *hc);
static void http_proxy_read_cb(evutil_socket_t fd, short what, void *arg);
static void http_proxy_done(struct http_conn *hc, const struct proxy_header *h);
static void http_conn_refuse_raw(struct http_conn *hc, const char *status,
				 const char *cause);
static void http_conn_arm(struct http_conn *hc);
static void http_conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void http_conn_reap(struct http_conn *hc);
static void http_close_cb(struct evhttp_connection *evcon, void *arg);
static void http_sweep_cb(evutil_socket_t fd, short what, void *arg);
static struct http_conn *http_conn_find(struct http_server *srv,
					struct bufferevent *bev);
static void http_listener_error_cb(struct evconnlistener *lev, void *arg);
static void http_listener_retry_cb(evutil_socket_t fd, short what, void *arg);
static void http_request_cb(struct evhttp_request *req, void *arg);
static bool http_version_supported(struct evhttp_request *req);
static void http_reply(struct http_request *r, int code, const char *reason,
		       const char *content_type, const struct buf *body,
		       const char *refusal);
static void http_reply_text(struct http_request *r, int code,
			    const char *reason, const char *text,
			    const char *refusal);
static void http_handle_autoconfig(struct http_request *r);
static void http_handle_autodiscover(struct http_request *r);
static void http_handle_metrics(struct http_request *r);
static void http_handle_healthz(struct http_request *r);
static const char *http_method_name(enum evhttp_cmd_type method);
static const char *http_health_problem(const struct http_server *srv);

/* The one server of this worker: evconnlistener's error callback gets
 * evhttp's argument, not ours. */
static struct http_server *http_active;

static const struct http_route http_routes[] = {
    {"/.well-known/autoconfig/mail/config-v1.1.xml", EVHTTP_REQ_GET, false,
     http_handle_autoconfig},
    {"/mail/config-v1.1.xml", EVHTTP_REQ_GET, false, http_handle_autoconfig},
    /* Outlook tries both spellings. */
    {"/autodiscover/autodiscover.xml", EVHTTP_REQ_POST, true,
     http_handle_autodiscover},
    {"/metrics", EVHTTP_REQ_GET, false, http_handle_metrics},
    {"/healthz", EVHTTP_REQ_GET, false, http_handle_healthz},
};

struct http_server *http_server_new(struct event_base *base,
				    const struct proto_env *env,
				    autoconfig_served_fn *served)
{
	struct http_server *srv = xcalloc(1, sizeof(*srv));
	struct timeval sweep = {0, HTTP_SWEEP_MS * 1000};

	srv->base = base;
	srv->env = env;
	srv->served = served;
	srv->deadline = env->cfg->timeout_preauth < HTTP_MAX_REQUEST_SECS
			    ? env->cfg->timeout_preauth
			    : HTTP_MAX_REQUEST_SECS;
	if (srv->deadline == 0)
		srv->deadline = 1;
	srv->metrics.queue_fd = env->queue_fd;
	if (env->cfg->proxy_protocol[LISTEN_HTTP]) {
		/* One byte an hour: never refilled before the header's
		 * deadline. */
		struct timeval tick = {3600, 0};

		srv->proxy_gate = ev_token_bucket_cfg_new(
		    1, 1, EV_RATE_LIMIT_MAX, EV_RATE_LIMIT_MAX, &tick);
		if (srv->proxy_gate == NULL)
			fatal("http: cannot create the PROXY header gate");
	}
	srv->http = evhttp_new(base);
	srv->sweep = event_new(base, -1, EV_PERSIST, http_sweep_cb, srv);
	if (srv->http == NULL || srv->sweep == NULL)
		fatal("http: cannot create the server");
	evhttp_set_max_headers_size(srv->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(srv->http, HTTP_MAX_BODY);
	/* Every method evhttp knows reaches us, so that a refused one gets
	 * 405 and a log line instead of evhttp's silent 501. */
	evhttp_set_allowed_methods(
	    srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
			   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
			   EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
			   EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	/* Our deadline fires first; this only bounds a stuck write. */
	evhttp_set_timeout(srv->http, (int)srv->deadline * 2);
	evhttp_set_bevcb(srv->http, http_bev_cb, srv);
	evhttp_set_gencb(srv->http, http_request_cb, srv);
	event_add(srv->sweep, &sweep);
	http_active = srv;
	return srv;
}

void http_server_listen(struct http_server *srv,
			const struct listener_socket *ls)
{
	struct http_listener *hl;

	if (srv->listener_count == HTTP_MAX_LISTENERS)
		fatal("http: too many listeners");
	hl = &srv->listeners[srv->listener_count];
	/* No LEV_OPT_CLOSE_ON_FREE: the parent owns the socket. */
	hl->lev = evconnlistener_new(srv->base, NULL, NULL,
				     LEV_OPT_CLOSE_ON_EXEC, 0, ls->fd);
	hl->retry = evtimer_new(srv->base, http_listener_retry_cb, hl);
	if (hl->lev == NULL || hl->retry == NULL)
		fatal("http: cannot listen on %s", ls->label);
	hl->bound = evhttp_bind_listener(srv->http, hl->lev);
	if (hl->bound == NULL)
		fatal("http: cannot listen on %s", ls->label);
	hl->label = ls->label;
	evconnlistener_set_error_cb(hl->lev, http_listener_error_cb);
	srv->listener_count++;
}

void http_server_stop_accepting(struct http_server *srv)
{
	for (size_t i = 0; i < srv->listener_count; i++) {
		struct http_listener *hl = &srv->listeners[i];

		/* Frees our evconnlistener, which leaves the fd open. */
		evhttp_del_accept_socket(srv->http, hl->bound);
		event_free(hl->retry);
	}
	srv->listener_count = 0;
}

void http_server_close_all(struct http_server *srv)
{
	/* evhttp sees end of file and frees each connection itself. */
	for (struct http_conn *hc = srv->conns; hc != NULL; hc = hc->next) {
		int fd = bufferevent_getfd(hc->bev);

		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
	}
}

size_t http_server_count(const struct http_server *srv)
{
	return srv->conn_count;
}

void http_server_free(struct http_server **srvp)
{
	struct http_server *srv = *srvp;

	if (srv == NULL)
		return;
	http_server_stop_accepting(srv);
	/* Frees every evhttp connection; their close callbacks reap. */
	evhttp_free(srv->http);
	while (srv->conns != NULL)
		http_conn_reap(srv->conns);
	event_free(srv->sweep);
	/* After every connection's bufferevent is gone. */
	if (srv->proxy_gate != NULL)
		ev_token_bucket_cfg_free(srv->proxy_gate);
	if (http_active == srv)
		http_active = NULL;
	free(srv);
	*srvp = NULL;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

static struct bufferevent *http_bev_cb(struct event_base *base, void *arg)
{
	struct http_server *srv = arg;
	struct timeval now = {0, 0};
	struct http_conn *hc;
	bool proxy = srv->env->cfg->proxy_protocol[LISTEN_HTTP];
	struct bufferevent *bev =
	    bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

	if (bev == NULL) {
		/* Without the filter a PROXY header would be read as a
		 * request from the balancer itself. */
		if (proxy)
			fatal("http: bufferevent_socket_new failed");
		return NULL; /* evhttp makes its own; not tracked */
	}
	hc = xcalloc(1, sizeof(*hc));
	hc->srv = srv;
	hc->proxy = proxy;
	if (proxy)
		http_proxy_gate_close(srv, bev);
	hc->bev = bev;
	bufferevent_incref(bev);
	hc->timer = evtimer_new(base, http_conn_timer_cb, hc);
	if (hc->timer == NULL)
		fatal("http: evtimer_new failed");
	snprintf(hc->peer_str, sizeof(hc->peer_str), "-");
	/* evhttp sets the socket after this returns: check it next. */
	evtimer_add(hc->timer, &now);
	hc->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = hc;
	srv->conns = hc;
	srv->conn_count++;
	return bev;
}

/* evhttp clears the callbacks when it frees its connection. */
static bool http_conn_gone(struct http_conn *hc)
{
	bufferevent_event_cb eventcb = NULL;

	bufferevent_getcb(hc->bev, NULL, NULL, &eventcb, NULL);
	return eventcb == NULL;
}

/*
 * Counts the connection in the caps; false if it must be refused. Behind
 * a balancer this runs once the header has named the client: counted at
 * the accept, every client would share the balancer's per-peer cap.
 */
static bool http_conn_check(struct http_conn *hc)
{
	char why[160];

	if (hc->checked)
		return !hc->refused;
	hc->checked = true;
	if (!hc->proxy && !http_conn_sock_peer(hc)) {
		hc->refused = true;
		return false;
	}
	if (!connlimit_acquire((struct sockaddr *)&hc->peer, why,
			       sizeof(why))) {
		log_info("refused peer=%s session=- proto=http user=- cause=%s",
			 hc->peer_str, why);
		hc->refused = true;
		return false;
	}
	hc->counted = true;
	metrics_session_open(LISTEN_HTTP);
	return true;
}

/* The socket's own peer (the balancer's, behind one). */
static bool http_conn_sock_peer(struct http_conn *hc)
{
	socklen_t len = sizeof(hc->peer);
	int fd = bufferevent_getfd(hc->bev);

	if (fd < 0 || getpeername(fd, (struct sockaddr *)&hc->peer, &len) < 0)
		return false;
	conn_format_addr((struct sockaddr *)&hc->peer, hc->peer_str,
			 sizeof(hc->peer_str));
	return true;
}

/* Answers without evhttp (it is not writing) and ends the connection:
 * evhttp sees end of file and frees its side. */
static void http_conn_refuse_raw(struct http_conn *hc, const char *status,
				 const char *cause)
{
	char reply[256];
	int fd = bufferevent_getfd(hc->bev);
	int n = snprintf(reply, sizeof(reply),
			 "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
			 status, strlen(cause) + 1, cause);

	if (fd < 0)
		return;
	if (n > 0 && (size_t)n < sizeof(reply))
		(void)send(fd, reply, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	shutdown(fd, SHUT_RDWR);
}

static void http_conn_arm(struct http_conn *hc)
{
	struct timeval tv = {(time_t)hc->srv->deadline, 0};

	evtimer_add(hc->timer, &tv);
}

static void http_conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *hc = arg;

	(void)fd;
	(void)what;
	if (http_conn_gone(hc)) {
		http_conn_reap(hc);
		return;
	}
	if (hc->proxy && !hc->proxy_done) {
		char cause[120];

		if (!hc->proxy_started) {
			http_proxy_start(hc);
			return;
		}
		if (hc->refused)
			return;
		snprintf(cause, sizeof(cause),
			 "no complete PROXY header within %us (%zu bytes "
			 "received)",
			 hc->srv->env->cfg->proxy_protocol_timeout,
			 hc->proxy_have);
		http_proxy_refuse(hc, cause);
		return;
	}
	if (!hc->checked) {
		if (http_conn_check(hc))
			http_conn_arm(hc);
		else
			http_conn_refuse_raw(hc, "503 Service Unavailable",
					     "Too many connections; try again "
					     "later.");
		return;
	}
	if (hc->timed_out || hc->refused)
		return;
	hc->timed_out = true;
	if (hc->requests == 0) {
		log_info("refused peer=%s session=- proto=http user=- "
			 "cause=no complete request within %us",
			 hc->peer_str, hc->srv->deadline);
		http_conn_refuse_raw(hc, "408 Request Timeout",
				     "Request not complete in time.");
	} else {
		/* An idle keep-alive connection: just close it. */
		log_debug("http: peer=%s idle for %us, closing", hc->peer_str,
			  hc->srv->deadline);
		shutdown(bufferevent_getfd(hc->bev), SHUT_RDWR);
	}
}

static void http_conn_reap(struct http_conn *hc)
{
	struct http_server *srv = hc->srv;

	if (hc->counted) {
		connlimit_release((struct sockaddr *)&hc->peer);
		metrics_session_close(LISTEN_HTTP);
	}
	http_proxy_stop_waiting(hc);
	if (hc->proxy_ev != NULL)
		event_free(hc->proxy_ev);
	/* evhttp answered 400 or 413 itself, or the peer left early. */
	if (hc->requests == 0 && hc->checked && !hc->refused && !hc->timed_out)
		log_info("refused peer=%s session=- proto=http user=- "
			 "cause=no complete request (malformed, oversized or "
			 "closed early)",
			 hc->peer_str);
	event_free(hc->timer);
	if (hc->prev != NULL)
		hc->prev->next = hc->next;
	else
		srv->conns = hc->next;
	if (hc->next != NULL)
		hc->next->prev = hc->prev;
	srv->conn_count--;
	bufferevent_decref(hc->bev);
	free(hc);
}

static void http_close_cb(struct evhttp_connection *evcon, void *arg)
{
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	http_conn_reap(arg);
}

static void http_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *srv = arg;
	struct http_conn *hc = srv->conns;

	(void)fd;
	(void)what;
	while (hc != NULL) {
		struct http_conn *next = hc->next;

		if (http_conn_gone(hc))
			http_conn_reap(hc);
		hc = next;
	}
}

static struct http_conn *http_conn_find(struct http_server *srv,
					struct bufferevent *bev)
{
	for (struct http_conn *hc = srv->conns; hc != NULL; hc = hc->next) {
		if (hc->bev == bev)
			return hc;
	}
	return NULL;
}

static void http_listener_error_cb(struct evconnlistener *lev, void *arg)
{
	struct timeval tv = {1, 0};
	int err = EVUTIL_SOCKET_ERROR();

	(void)arg;
	/* Out of descriptors: pause instead of spinning on accept. */
	log_error("http: accept: %s; pausing for 1s",
		  evutil_socket_error_to_string(err));
	evconnlistener_disable(lev);
	if (http_active == NULL)
		return;
	for (size_t i = 0; i < http_active->listener_count; i++) {
		if (http_active->listeners[i].lev == lev)
			evtimer_add(http_active->listeners[i].retry, &tv);
	}
}

static void http_listener_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_listener *hl = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(hl->lev);
}

/* ------------------------------------------------------------------ */
/* PROXY protocol                                                      */
/* ------------------------------------------------------------------ */

/*
 * evhttp accepts and reads by itself, so the header must leave the socket
 * before evhttp reads a byte. Each connection's bufferevent starts with an
 * empty read allowance (a rate limit it never refills in time): evhttp's
 * reads wait while the header is peeked and taken off the socket here, as
 * the other listeners do (listener.c), then the limit is lifted. (A filter
 * bufferevent does not work: evhttp counts a reply sent once the filter
 * passed it on, and shuts the socket down before it was written.)
 */
static void http_proxy_gate_close(struct http_server *srv,
				  struct bufferevent *bev)
{
	if (bufferevent_set_rate_limit(bev, srv->proxy_gate) < 0 ||
	    bufferevent_decrement_read_limit(
		bev, bufferevent_get_read_limit(bev)) < 0)
		fatal("http: cannot hold a connection for its PROXY header");
}

static void http_proxy_gate_open(struct http_conn *hc)
{
	if (hc->proxy_ev != NULL) {
		event_free(hc->proxy_ev);
		hc->proxy_ev = NULL;
	}
	(void)bufferevent_set_rate_limit(hc->bev, NULL);
}

/*
 * As on the other listeners: only from proxy_trusted, a bounded number of
 * connections waiting, and the whole header within proxy_protocol_timeout.
 */
static void http_proxy_start(struct http_conn *hc)
{
	const struct config *cfg = hc->srv->env->cfg;
	struct timeval tv = {(time_t)cfg->proxy_protocol_timeout, 0};

	hc->proxy_started = true;
	if (!http_conn_sock_peer(hc)) {
		http_proxy_refuse(hc, NULL);
		return;
	}
	if (!config_proxy_trusted(cfg, (struct sockaddr *)&hc->peer)) {
		http_proxy_refuse(hc, "connection from outside proxy_trusted "
				      "to a PROXY protocol listener");
		return;
	}
	if (hc->srv->proxy_waiting >= HTTP_PROXY_PENDING_MAX) {
		http_proxy_refuse(hc, "too many connections waiting for their "
				      "PROXY header");
		return;
	}
	hc->srv->proxy_waiting++;
	hc->proxy_in_wait = true;
	hc->proxy_ev = event_new(hc->srv->base, bufferevent_getfd(hc->bev),
				 EV_READ | EV_PERSIST, http_proxy_read_cb, hc);
	if (hc->proxy_ev == NULL)
		fatal("http: event_new failed");
	event_add(hc->proxy_ev, NULL);
	evtimer_add(hc->timer, &tv);
}

/*
 * Ends the connection without an answer (the peer is not a client that
 * would read HTTP); cause NULL: nothing to log. The gate opens so that
 * evhttp sees the end and frees its side; a request it might still parse
 * is refused, as the connection is (http_conn_check).
 */
static void http_proxy_refuse(struct http_conn *hc, const char *cause)
{
	int fd = bufferevent_getfd(hc->bev);

	if (cause != NULL)
		log_info("refused peer=%s session=- proto=http user=- cause=%s",
			 hc->peer_str, cause);
	hc->refused = hc->checked = true;
	http_proxy_stop_waiting(hc);
	evtimer_del(hc->timer);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
	http_proxy_gate_open(hc);
}

static void http_proxy_stop_waiting(struct http_conn *hc)
{
	if (hc->proxy_in_wait) {
		hc->proxy_in_wait = false;
		hc->srv->proxy_waiting--;
	}
}

/*
 * Peeks, so that not one byte after the header is taken from evhttp: a
 * request may follow in the same packet. Bytes of an unfinished header
 * are consumed (the parser says they all belong to it; INV-S3: at most
 * PROXY_HEADER_MAX in all).
 */
static void http_proxy_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *hc = arg;
	uint8_t *room = hc->proxy_buf + hc->proxy_have;
	struct proxy_header h;
	const char *why = NULL;
	size_t used = 0;
	char cause[200];
	ssize_t n;

	(void)what;
	n = recv(fd, room, sizeof(hc->proxy_buf) - hc->proxy_have, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (n == 0 && hc->proxy_have == 0) {
			/* Connected and left: a balancer's plain TCP
			 * check, not a refusal. */
			log_debug("peer=%s proto=http: closed before the PROXY "
				  "header",
				  hc->peer_str);
			http_proxy_refuse(hc, NULL);
			return;
		}
		snprintf(cause, sizeof(cause),
			 "connection %s in the middle of the PROXY header",
			 n == 0 ? "closed" : strerror(errno));
		http_proxy_refuse(hc, cause);
		return;
	}
	switch (proxy_proto_parse(hc->proxy_buf, hc->proxy_have + (size_t)n, &h,
				  &used, &why)) {
	case PROXY_PARSE_DONE:
		if (recv(fd, room, used - hc->proxy_have, 0) !=
		    (ssize_t)(used - hc->proxy_have)) {
			http_proxy_refuse(hc, "PROXY header lost while read");
			return;
		}
		http_proxy_done(hc, &h);
		return;
	case PROXY_PARSE_NEED_MORE:
		if (recv(fd, room, (size_t)n, 0) != n) {
			http_proxy_refuse(hc, "PROXY header lost while read");
			return;
		}
		hc->proxy_have += (size_t)n;
		return;
	case PROXY_PARSE_ERROR:
		break;
	}
	snprintf(cause, sizeof(cause), "malformed PROXY header: %s",
		 why != NULL ? why : "unknown");
	http_proxy_refuse(hc, cause);
}

/* The header named the client: the connection is now its, for the caps,
 * the log and every request. A header without an address (LOCAL,
 * UNKNOWN: the balancer's own check) keeps the balancer as the peer. */
static void http_proxy_done(struct http_conn *hc, const struct proxy_header *h)
{
	char via[sizeof(hc->peer_str)];

	http_proxy_stop_waiting(hc);
	hc->proxy_done = true;
	if (h->has_addr) {
		memcpy(via, hc->peer_str, sizeof(via));
		memcpy(&hc->peer, &h->src, sizeof(hc->peer));
		conn_format_addr((struct sockaddr *)&hc->peer, hc->peer_str,
				 sizeof(hc->peer_str));
		log_info("proxied peer=%s session=- proto=http via=%s (peer "
			 "%s via proxy %s)",
			 hc->peer_str, via, hc->peer_str, via);
	}
	if (http_conn_check(hc))
		http_conn_arm(hc);
	else
		http_conn_refuse_raw(hc, "503 Service Unavailable",
				     "Too many connections; try again later.");
	http_proxy_gate_open(hc);
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static const char *http_method_name(enum evhttp_cmd_type method)
{
	switch (method) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return "OTHER";
	}
}

static void http_request_cb(struct evhttp_request *req, void *arg)
{
	struct http_server *srv = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	struct http_request r = {.srv = srv, .req = req, .peer = "-"};
	bool path_known = false;

	r.hc = http_conn_find(srv, evhttp_connection_get_bufferevent(evcon));
	if (r.hc != NULL) {
		if (!r.hc->closecb_set) {
			evhttp_connection_set_closecb(evcon, http_close_cb,
						      r.hc);
			r.hc->closecb_set = true;
		}
		r.hc->requests++;
		r.peer = r.hc->peer_str;
		if (!http_conn_check(r.hc)) {
			http_reply_text(&r, 503, "Service Unavailable",
					"Too many connections; try again "
					"later.",
					NULL);
			return;
		}
		if (!r.hc->timed_out)
			http_conn_arm(r.hc);
	}
	r.path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	r.query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	if (r.path == NULL || r.path[0] == '\0')
		r.path = "/";
	if (!http_version_supported(req)) {
		http_reply_text(&r, 505, "HTTP Version Not Supported",
				"Only HTTP/1.0 and HTTP/1.1.",
				"unsupported HTTP version");
		return;
	}
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Allow", "GET, POST");
		http_reply_text(&r, 405, "Method Not Allowed",
				"Only GET and POST.", "method not allowed");
		return;
	}
	for (size_t i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]);
	     i++) {
		const struct http_route *rt = &http_routes[i];
		size_t n = strlen(rt->path);
		bool match =
		    strlen(r.path) == n &&
		    (rt->any_case ? ascii_strncaseeq(r.path, rt->path, n)
				  : strcmp(r.path, rt->path) == 0);

		if (!match)
			continue;
		path_known = true;
		if (rt->method == method) {
			rt->handler(&r);
			return;
		}
	}
	if (path_known) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Allow",
				  method == EVHTTP_REQ_GET ? "POST" : "GET");
		http_reply_text(&r, 405, "Method Not Allowed",
				"Wrong method for this path.",
				"wrong method for the path");
		return;
	}
	http_reply_text(&r, 404, "Not Found", "No such page.", "no such path");
}

/*
 * evhttp answers in the version the request named, "HTTP/0.9 200 OK" or
 * "HTTP/1.9 200 OK", a status line no HTTP/1.x client reads. Anything but
 * 1.0 and 1.1 is answered as HTTP/1.1 (RFC 9110 section 6.2).
 */
static bool http_version_supported(struct evhttp_request *req)
{
	if (req->major == 1 && (req->minor == 0 || req->minor == 1))
		return true;
	req->major = 1;
	req->minor = 1;
	return false;
}

/* refusal: the cause for the log when the request is refused (one info
 * line), NULL when it was served (a debug line). */
static void http_reply(struct http_request *r, int code, const char *reason,
		       const char *content_type, const struct buf *body,
		       const char *refusal)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(r->req);
	char path[HTTP_MAX_LOG_PATH];

	log_escape_word(path, sizeof(path), r->path != NULL ? r->path : "-");
	evhttp_add_header(headers, "Content-Type", content_type);
	evhttp_add_header(headers, "Cache-Control", "no-store");
	evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
	if (code >= 500 || (r->hc != NULL && r->hc->refused))
		evhttp_add_header(headers, "Connection", "close");
	evbuffer_add(evhttp_request_get_output_buffer(r->req), buf_data(body),
		     buf_len(body));
	if (refusal != NULL)
		log_info("refused peer=%s session=- proto=http user=- "
			 "method=%s path=%s status=%d cause=%s",
			 r->peer,
			 http_method_name(evhttp_request_get_command(r->req)),
			 path, code, refusal);
	else
		log_debug("http: peer=%s method=%s path=%s status=%d bytes=%zu",
			  r->peer,
			  http_method_name(evhttp_request_get_command(r->req)),
			  path, code, buf_len(body));
	evhttp_send_reply(r->req, code, reason, NULL);
}

static void http_reply_text(struct http_request *r, int code,
			    const char *reason, const char *text,
			    const char *refusal)
{
	struct buf *body = buf_new(strlen(text) + 1);

	(void)buf_append_str(body, text);
	(void)buf_append_str(body, "\n");
	http_reply(r, code, reason, "text/plain; charset=utf-8", body, refusal);
	buf_free(&body);
}

static void http_handle_autoconfig(struct http_request *r)
{
	const struct config *cfg = r->srv->env->cfg;
	struct evkeyvalq params;
	const char *email = NULL;
	struct buf *body;

	TAILQ_INIT(&params);
	if (r->query != NULL) {
		if (evhttp_parse_query_str(r->query, &params) < 0) {
			evhttp_clear_headers(&params);
			http_reply_text(r, 400, "Bad Request",
					"Malformed query.", "malformed query");
			return;
		}
		email = evhttp_find_header(&params, "emailaddress");
	}
	if (email != NULL && autoconfig_domain(cfg, email) == NULL) {
		evhttp_clear_headers(&params);
		http_reply_text(r, 404, "Not Found",
				"No mail service for this address here.",
				"emailaddress not in a local domain");
		return;
	}
	body = buf_new(AUTOCONFIG_MAX_DOCUMENT);
	if (autoconfig_thunderbird(cfg, r->srv->served, email, body) < 0)
		http_reply_text(r, 500, "Internal Server Error",
				"Configuration too large.",
				"autoconfig document too large");
	else
		http_reply(r, 200, "OK", "text/xml; charset=utf-8", body, NULL);
	buf_free(&body);
	evhttp_clear_headers(&params);
}

/*
 * Answers every Autodiscover outcome with HTTP 200 and an Autodiscover
 * document, as Exchange does: Outlook shows the Error element's message
 * and moves on, where an HTTP error makes it retry other URLs first.
 */
static void http_handle_autodiscover(struct http_request *r)
{
	const struct config *cfg = r->srv->env->cfg;
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	struct autodiscover_request ad;
	char canon[USERNAME_BUF_SIZE];
	const char *error = NULL, *refusal = NULL;
	const char *body_text;
	struct buf *body = buf_new(AUTOCONFIG_MAX_DOCUMENT);
	size_t local_len;

	body_text = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
	if (body_text == NULL ||
	    autodiscover_parse(body_text, len, &ad, &error) < 0) {
		refusal = error != NULL ? error : "empty request";
		(void)autodiscover_error(AUTODISCOVER_ERROR_INVALID,
					 "Invalid Request", body);
	} else if (strcmp(ad.schema, AUTODISCOVER_SCHEMA_2006A) != 0) {
		refusal = "unsupported AcceptableResponseSchema";
		(void)autodiscover_error(AUTODISCOVER_ERROR_PROVIDER,
					 "Provider is not available", body);
	} else if (username_normalize(ad.email, strlen(ad.email), NULL, canon,
				      sizeof(canon)) < 0) {
		refusal = "invalid EMailAddress";
		(void)autodiscover_error(AUTODISCOVER_ERROR_INVALID,
					 "Invalid Request", body);
	} else if (!config_is_local_domain(
		       cfg, username_domain(canon, &local_len))) {
		refusal = "EMailAddress not in a local domain";
		(void)autodiscover_error(AUTODISCOVER_ERROR_NOT_FOUND,
					 "The e-mail address cannot be found.",
					 body);
	} else if (autodiscover_response(cfg, r->srv->served, canon, body) <
		   0) {
		buf_clear(body);
		refusal = "response too large";
		(void)autodiscover_error(AUTODISCOVER_ERROR_PROVIDER,
					 "Provider is not available", body);
	}
	http_reply(r, 200, "OK", "text/xml; charset=utf-8", body, refusal);
	buf_free(&body);
}

static void http_handle_metrics(struct http_request *r)
{
	struct buf *body = buf_new(METRICS_EXPORT_MAX);

	if (metrics_export_write(&r->srv->metrics, r->srv->env->cfg, time(NULL),
				 body) < 0)
		http_reply_text(r, 500, "Internal Server Error",
				"Metrics too large.", "metrics too large");
	else
		http_reply(r, 200, "OK",
			   "text/plain; version=0.0.4; "
			   "charset=utf-8",
			   body, NULL);
	buf_free(&body);
}

/* NULL when healthy, else why not (for the 503 body and the log). */
static const char *http_health_problem(const struct http_server *srv)
{
	const struct proto_env *env = srv->env;
	struct statvfs vfs;

	if (env->mail_root_fd < 0 ||
	    faccessat(env->mail_root_fd, ".", R_OK | W_OK | X_OK, AT_EACCESS) <
		0)
		return "mail directory not accessible";
	if (env->queue_fd < 0 ||
	    faccessat(env->queue_fd, ".", R_OK | W_OK | X_OK, AT_EACCESS) < 0 ||
	    /* Not a count of env/: a probe must stay cheap, however long the
	     * queue and however often it is asked. */
	    faccessat(env->queue_fd, "env", R_OK | W_OK | X_OK, AT_EACCESS) < 0)
		return "queue directory not accessible";
	/* The same floor at which SMTP answers 452 (INV-D5). */
	if (fstatvfs(env->mail_root_fd, &vfs) == 0 &&
	    ((uint64_t)vfs.f_bavail * vfs.f_frsize < SMTP_MIN_FREE_BYTES ||
	     (vfs.f_files > 0 && vfs.f_favail < SMTP_MIN_FREE_INODES)))
		return "disk nearly full";
	return NULL;
}

static void http_handle_healthz(struct http_request *r)
{
	const char *problem = http_health_problem(r->srv);

	if (problem == NULL)
		http_reply_text(r, 200, "OK", "ok", NULL);
	else
		http_reply_text(r, 503, "Service Unavailable", problem,
				problem);
}
