/*
 * listen.http: a small HTTP/1.1 server on a worker's event loop (libevent's
 * evhttp) for client set-up and monitoring:
 *   GET  /.well-known/autoconfig/mail/config-v1.1.xml, /mail/config-v1.1.xml
 *   POST /autodiscover/autodiscover.xml (any case)
 *   GET  /metrics, /healthz
 * Requests are bounded (HTTP_MAX_HEADERS, HTTP_MAX_BODY, in
 * lib/postd_limits.h) and must arrive within a deadline; connections
 * count in the shared connection caps and in the
 * postd_sessions{protocol="http"} gauge.
 */
#ifndef POSTD_HTTP_SERVER_H
#define POSTD_HTTP_SERVER_H

#include <stddef.h>

#include <event2/event.h>

#include "lib/postd_limits.h"
#include "net/listener.h"
#include "proto/common/proto_env.h"
#include "proto/http/autoconfig.h"

struct http_server;

/*
 * A server on base that answers from env (borrowed, must outlive it);
 * served tells which protocols are really served (for the set-up
 * documents). Fatal on setup failure.
 */
struct http_server *http_server_new(struct event_base *base,
				    const struct proto_env *env,
				    autoconfig_served_fn *served);
/* Accepts on ls (a listen.http socket bound by the parent; the fd stays
 * owned by the caller). Fatal on setup failure. */
void http_server_listen(struct http_server *srv,
			const struct listener_socket *ls);
/* Stops accepting; open connections finish. */
void http_server_stop_accepting(struct http_server *srv);
/* SIGTERM: closes every connection now. */
void http_server_close_all(struct http_server *srv);
/* Open HTTP connections. */
size_t http_server_count(const struct http_server *srv);
void http_server_free(struct http_server **srv);

#endif
