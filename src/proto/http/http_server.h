/*
 * listen.http: a small HTTP/1.1 server on a worker's event loop (libevent's
 * evhttp) for client set-up and monitoring:
 *   GET  /.well-known/autoconfig/mail/config-v1.1.xml, /mail/config-v1.1.xml
 *   POST /autodiscover/autodiscover.xml (any case)
 *   GET  /metrics, /healthz
 * Requests are bounded (HTTP_MAX_HEADERS, HTTP_MAX_BODY) and must arrive
 * within a deadline; connections count in the shared connection caps and
 * in the postd_sessions{protocol="http"} gauge.
 */
#ifndef POSTD_HTTP_SERVER_H
#define POSTD_HTTP_SERVER_H

#include <stddef.h>

#include <event2/event.h>

#include "net/listener.h"
#include "proto/common/proto_env.h"
#include "proto/http/autoconfig.h"

/* Request line plus headers: a browser sends under 2 KiB, a mail client
 * far less. */
#define HTTP_MAX_HEADERS (8 * 1024)
/* Only Autodiscover has a body, a few hundred bytes. */
#define HTTP_MAX_BODY (64 * 1024)
/* A request must be complete this long after the connection opened (or
 * after the previous response): min(timeout_preauth, this). A slowloris
 * client gets 408 and is closed. */
#define HTTP_MAX_REQUEST_SECS 30
/* How often connections closed by evhttp are reaped (their counts in
 * the caps released). */
#define HTTP_SWEEP_MS 250

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
