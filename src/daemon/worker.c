#include "daemon/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/auth_client.h"
#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "net/conn.h"
#include "net/connlimit.h"
#include "proto/common/proto_env.h"
#include "proto/http/http_server.h"
#include "proto/imap/imap_session.h"
#include "proto/pop3/pop3_session.h"
#include "proto/smtp/smtp_session.h"

struct worker {
	struct event_base *base;
	struct proto_env env;
	struct listener_watch **watches;
	struct http_server *http; /* NULL without listen.http */
	size_t watch_count;
	struct event *sig_term, *sig_quit, *sig_int, *check;
	bool stopping;
	time_t stop_deadline;
};

static void worker_on_accept(int fd, const struct sockaddr *peer,
			     socklen_t peer_len, enum listen_proto proto,
			     const struct sockaddr *via, void *ctx);
static void worker_refuse(int fd, const char *peer, enum listen_proto proto,
			  const char *why);
static void worker_stop_accepting(struct worker *w);
static void worker_sigterm_cb(evutil_socket_t sig, short what, void *arg);
static void worker_sigquit_cb(evutil_socket_t sig, short what, void *arg);
static void worker_check_cb(evutil_socket_t fd, short what, void *arg);
static void worker_begin_stopping(struct worker *w);

bool worker_proto_supported(enum listen_proto proto)
{
	return proto == LISTEN_POP3 || proto == LISTEN_POP3S ||
	       proto == LISTEN_SMTP || proto == LISTEN_SUBMISSION ||
	       proto == LISTEN_SUBMISSIONS || proto == LISTEN_HTTP ||
	       proto == LISTEN_IMAP || proto == LISTEN_IMAPS;
}

static void worker_refuse(int fd, const char *peer, enum listen_proto proto,
			  const char *why)
{
	static const char pop3_reply[] = "-ERR [SYS/TEMP] Too many "
					 "connections; try again later.\r\n";
	/* RFC 5321 section 3.8: a server may open with 421. */
	static const char smtp_reply[] = "421 4.7.0 Too many connections; "
					 "try again later\r\n";
	/* RFC 9051 section 7.1.5: BYE may be the greeting. */
	static const char imap_reply[] = "* BYE [UNAVAILABLE] Too many "
					 "connections; try again later.\r\n";
	const char *reply = proto == LISTEN_POP3   ? pop3_reply
			    : proto == LISTEN_IMAP ? imap_reply
						   : smtp_reply;

	/* A plaintext listener can say why; a TLS one can only close. */
	if (!config_proto_implicit_tls(proto))
		(void)send(fd, reply, strlen(reply),
			   MSG_DONTWAIT | MSG_NOSIGNAL);
	log_info("refused peer=%s session=- proto=%s user=- cause=%s", peer,
		 config_proto_name(proto), why);
	close(fd);
}

/*
 * peer is the client: for a PROXY protocol listener, the one its header
 * named, so the caps below count clients, not the balancer.
 */
static void worker_on_accept(int fd, const struct sockaddr *peer,
			     socklen_t peer_len, enum listen_proto proto,
			     const struct sockaddr *via, void *ctx)
{
	struct worker *w = ctx;
	char why[160];
	struct conn *conn;

	/* Retiring (reload) still serves a connection whose PROXY header
	 * was being read when accepting stopped; shutting down does not. */
	if (w->stopping && (via == NULL || w->stop_deadline != 0)) {
		close(fd);
		return;
	}
	if (!connlimit_acquire(peer, why, sizeof(why))) {
		char peer_str[64];

		conn_format_addr(peer, peer_str, sizeof(peer_str));
		worker_refuse(fd, peer_str, proto, why);
		return;
	}
	conn =
	    conn_new(w->base, fd, peer, peer_len, proto,
		     config_proto_implicit_tls(proto) ? w->env.ssl_ctx : NULL);
	if (via != NULL)
		conn_set_via(conn, via);
	if (proto == LISTEN_POP3 || proto == LISTEN_POP3S)
		pop3_session_start(conn, &w->env);
	else if (proto == LISTEN_IMAP || proto == LISTEN_IMAPS)
		imap_session_start(conn, &w->env);
	else
		smtp_session_start(conn, &w->env);
}

static void worker_stop_accepting(struct worker *w)
{
	for (size_t i = 0; i < w->watch_count; i++)
		listener_watch_free(&w->watches[i]);
	w->watch_count = 0;
	if (w->http != NULL)
		http_server_stop_accepting(w->http);
}

static void worker_sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;

	(void)sig;
	(void)what;
	if (w->stopping && w->stop_deadline != 0)
		return;
	w->stop_deadline = time(NULL) + WORKER_SHUTDOWN_GRACE_SECS;
	worker_begin_stopping(w);
	conn_shutdown_all();
	if (w->http != NULL)
		http_server_close_all(w->http);
}

static void worker_sigquit_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;

	(void)sig;
	(void)what;
	log_debug("worker: retiring, %zu sessions left", conn_count());
	worker_begin_stopping(w);
}

/*
 * Stops accepting and starts polling for the last session to go. The
 * poll runs only from here on: an idle worker has no timer, so thousands
 * of idle IMAP sessions cost no wake-ups at all.
 */
static void worker_begin_stopping(struct worker *w)
{
	struct timeval tick = {0, 200 * 1000};

	worker_stop_accepting(w);
	if (!w->stopping)
		event_add(w->check, &tick);
	w->stopping = true;
}

static void worker_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if ((conn_count() == 0 && listener_proxy_pending() == 0) ||
	    (w->stop_deadline != 0 && time(NULL) >= w->stop_deadline))
		event_base_loopexit(w->base, NULL);
}

int worker_run(const struct worker_params *params)
{
	struct worker w;

	memset(&w, 0, sizeof(w));
	signal(SIGPIPE, SIG_IGN);
	w.base = event_base_new();
	if (w.base == NULL)
		fatal("worker: event_base_new failed");
	connlimit_attach(params->slot);
	w.env.cfg = params->cfg;
	w.env.base = w.base;
	w.env.ssl_ctx = params->ssl_ctx;
	w.env.mail_root_fd = params->mail_root_fd;
	w.env.queue_fd = params->queue_fd;
	w.env.srs = params->srs;
	w.env.spool = spool_pool_new(w.base, 0);
	w.env.auth = auth_client_new(w.base, params->auth_fd);
	w.watches = xcalloc(params->listener_count, sizeof(*w.watches));
	for (size_t i = 0; i < params->listener_count; i++) {
		if (!worker_proto_supported(params->listeners[i].proto))
			continue;
		if (params->listeners[i].proto == LISTEN_HTTP) {
			/* evhttp accepts on its own; it counts its
			 * connections in the caps itself. */
			if (w.http == NULL)
				w.http = http_server_new(
				    w.base, &w.env, worker_proto_supported);
			http_server_listen(w.http, &params->listeners[i]);
			continue;
		}
		w.watches[w.watch_count++] =
		    listener_watch_new(w.base, &params->listeners[i],
				       params->cfg, worker_on_accept, &w);
	}
	w.sig_term = evsignal_new(w.base, SIGTERM, worker_sigterm_cb, &w);
	w.sig_int = evsignal_new(w.base, SIGINT, worker_sigterm_cb, &w);
	w.sig_quit = evsignal_new(w.base, SIGQUIT, worker_sigquit_cb, &w);
	w.check = event_new(w.base, -1, EV_PERSIST, worker_check_cb, &w);
	event_add(w.sig_term, NULL);
	event_add(w.sig_int, NULL);
	event_add(w.sig_quit, NULL);
	event_base_dispatch(w.base);
	worker_stop_accepting(&w);
	listener_proxy_drop_all();
	http_server_free(&w.http);
	/* Commits in flight finish before the process goes (INV-D1). */
	spool_pool_free(&w.env.spool);
	log_debug("worker: exiting with %zu sessions", conn_count());
	return 0;
}
