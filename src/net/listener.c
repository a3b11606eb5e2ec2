#include "net/listener.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "net/conn.h"
#include "net/proxy_proto.h"

/* Connections accepted per wake-up, so one busy listener cannot starve
 * the sessions already running. */
#define LISTENER_ACCEPT_BATCH 64
/* Kernel backlog of not yet accepted connections. */
#define LISTENER_BACKLOG 1024

/* Connections waiting for their PROXY header, per process: the balancer
 * opens them and sends the header at once, so a few are normal and more
 * than this means something is wrong. */
#define LISTENER_PROXY_PENDING_MAX 1024

struct listener_watch {
	struct event_base *base;
	struct event *ev;
	struct event *retry_ev;
	const struct listener_socket *ls;
	const struct config *cfg;
	listener_accept_fn *on_accept;
	void *ctx;
};

/*
 * A connection whose PROXY header is being read. It does not belong to
 * the watch: a worker that stops accepting (reload) still finishes the
 * headers that have started, so that no connection the balancer handed
 * over is dropped.
 */
struct proxy_wait {
	int fd;
	enum listen_proto proto;
	listener_accept_fn *on_accept;
	void *ctx;
	struct event *read_ev;
	struct event *deadline_ev;
	unsigned timeout;
	struct sockaddr_storage sock_peer; /* the balancer */
	socklen_t sock_peer_len;
	char sock_peer_str[64];
	uint8_t buf[PROXY_HEADER_MAX];
	size_t have;
	struct proxy_wait *prev, *next;
};

static struct proxy_wait *proxy_waits;
static size_t proxy_wait_count;

static int listener_bind_one(const struct addrinfo *ai, char *error,
			     size_t error_size);
static void listener_accept_cb(evutil_socket_t fd, short what, void *arg);
static void listener_retry_cb(evutil_socket_t fd, short what, void *arg);
static void listener_take(struct listener_watch *w, int fd,
			  const struct sockaddr *peer, socklen_t len);
static void proxy_wait_start(struct listener_watch *w, int fd,
			     const struct sockaddr *peer, socklen_t len);
static void proxy_wait_read_cb(evutil_socket_t fd, short what, void *arg);
static void proxy_wait_deadline_cb(evutil_socket_t fd, short what, void *arg);
static void proxy_wait_done(struct proxy_wait *pw,
			    const struct proxy_header *h);
static void proxy_wait_refuse(struct proxy_wait *pw, const char *cause);
static void proxy_wait_free(struct proxy_wait *pw, bool close_fd);
static void proxy_log_refusal(const char *peer, enum listen_proto proto,
			      const char *cause);

static int listener_bind_one(const struct addrinfo *ai, char *error,
			     size_t error_size)
{
	int one = 1;
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);

	if (fd < 0) {
		snprintf(error, error_size, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* IPv6 sockets take only IPv6, so "*" can bind both families. */
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(error, error_size, "bind: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, LISTENER_BACKLOG) < 0) {
		snprintf(error, error_size, "listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int listener_open(const struct listen_addr *addr, struct listener_socket *out,
		  size_t max, size_t *count_r, char *error, size_t error_size)
{
	struct addrinfo hints = {0}, *res = NULL;
	const char *host = strcmp(addr->host, "*") == 0 ? NULL : addr->host;
	size_t start = *count_r;
	int rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, addr->port, &hints, &res);
	if (rc != 0) {
		snprintf(error, error_size, "%s:%s: %s", addr->host, addr->port,
			 gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		char host_str[NI_MAXHOST], why[128];
		int fd;

		if (*count_r >= max) {
			snprintf(error, error_size, "too many listeners");
			goto fail;
		}
		getnameinfo(ai->ai_addr, ai->ai_addrlen, host_str,
			    sizeof(host_str), NULL, 0, NI_NUMERICHOST);
		fd = listener_bind_one(ai, why, sizeof(why));
		if (fd < 0) {
			snprintf(error, error_size, "%s [%s]:%s: %s",
				 config_proto_name(addr->proto), host_str,
				 addr->port, why);
			goto fail;
		}
		out[*count_r].fd = fd;
		out[*count_r].proto = addr->proto;
		snprintf(out[*count_r].label, sizeof(out[*count_r].label),
			 "%s %s%s%s:%s", config_proto_name(addr->proto),
			 ai->ai_family == AF_INET6 ? "[" : "", host_str,
			 ai->ai_family == AF_INET6 ? "]" : "", addr->port);
		(*count_r)++;
	}
	freeaddrinfo(res);
	return 0;
fail:
	freeaddrinfo(res);
	while (*count_r > start)
		close(out[--(*count_r)].fd);
	return -1;
}

struct listener_watch *listener_watch_new(struct event_base *base,
					  const struct listener_socket *ls,
					  const struct config *cfg,
					  listener_accept_fn *on_accept,
					  void *ctx)
{
	struct listener_watch *w = xcalloc(1, sizeof(*w));

	w->base = base;
	w->cfg = cfg;
	w->ls = ls;
	w->on_accept = on_accept;
	w->ctx = ctx;
	w->ev = event_new(base, ls->fd, EV_READ | EV_PERSIST,
			  listener_accept_cb, w);
	w->retry_ev = evtimer_new(base, listener_retry_cb, w);
	if (w->ev == NULL || w->retry_ev == NULL)
		fatal("listener: event_new failed");
	event_add(w->ev, NULL);
	return w;
}

void listener_watch_free(struct listener_watch **w)
{
	if (*w == NULL)
		return;
	event_free((*w)->ev);
	event_free((*w)->retry_ev);
	free(*w);
	*w = NULL;
}

static void listener_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener_watch *w = arg;

	(void)fd;
	(void)what;
	event_add(w->ev, NULL);
}

static void listener_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener_watch *w = arg;

	(void)what;
	for (int i = 0; i < LISTENER_ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int cfd = accept4(fd, (struct sockaddr *)&peer, &len,
				  SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EAGAIN || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: stop accepting for a
				 * second instead of spinning. */
				struct timeval tv = {1, 0};

				log_error("%s: accept: %s; pausing for 1s",
					  w->ls->label, strerror(errno));
				event_del(w->ev);
				evtimer_add(w->retry_ev, &tv);
				return;
			}
			log_error("%s: accept: %s", w->ls->label,
				  strerror(errno));
			return;
		}
		listener_take(w, cfd, (struct sockaddr *)&peer, len);
	}
}

static void listener_take(struct listener_watch *w, int fd,
			  const struct sockaddr *peer, socklen_t len)
{
	if (w->cfg == NULL || !w->cfg->proxy_protocol[w->ls->proto]) {
		w->on_accept(fd, peer, len, w->ls->proto, NULL, w->ctx);
		return;
	}
	proxy_wait_start(w, fd, peer, len);
}

/* Refusals before there is a session, in the sessions' format. */
static void proxy_log_refusal(const char *peer, enum listen_proto proto,
			      const char *cause)
{
	log_info("refused peer=%s session=- proto=%s user=- cause=%s", peer,
		 config_proto_name(proto), cause);
}

/*
 * A PROXY protocol listener: the header comes before anything else (the
 * greeting, a TLS handshake), only from proxy_trusted, and within
 * proxy_protocol_timeout of the accept, however slowly it trickles in.
 * The connection caps are applied afterwards, by on_accept, to the client
 * the header names: counted at the accept, every client of a balancer
 * would share the balancer's per-peer cap.
 */
static void proxy_wait_start(struct listener_watch *w, int fd,
			     const struct sockaddr *peer, socklen_t len)
{
	struct timeval tv = {(time_t)w->cfg->proxy_protocol_timeout, 0};
	char peer_str[64];
	struct proxy_wait *pw;

	conn_format_addr(peer, peer_str, sizeof(peer_str));
	if (!config_proxy_trusted(w->cfg, peer)) {
		proxy_log_refusal(peer_str, w->ls->proto,
				  "connection from outside proxy_trusted to a "
				  "PROXY protocol listener");
		close(fd);
		return;
	}
	if (proxy_wait_count >= LISTENER_PROXY_PENDING_MAX) {
		proxy_log_refusal(peer_str, w->ls->proto,
				  "too many connections waiting for their "
				  "PROXY header");
		close(fd);
		return;
	}
	pw = xcalloc(1, sizeof(*pw));
	pw->fd = fd;
	pw->proto = w->ls->proto;
	pw->on_accept = w->on_accept;
	pw->ctx = w->ctx;
	pw->timeout = w->cfg->proxy_protocol_timeout;
	if (len > sizeof(pw->sock_peer))
		len = sizeof(pw->sock_peer);
	memcpy(&pw->sock_peer, peer, len);
	pw->sock_peer_len = len;
	memcpy(pw->sock_peer_str, peer_str, sizeof(peer_str));
	pw->read_ev = event_new(w->base, fd, EV_READ | EV_PERSIST,
				proxy_wait_read_cb, pw);
	pw->deadline_ev = evtimer_new(w->base, proxy_wait_deadline_cb, pw);
	if (pw->read_ev == NULL || pw->deadline_ev == NULL)
		fatal("listener: event_new failed");
	pw->next = proxy_waits;
	if (proxy_waits != NULL)
		proxy_waits->prev = pw;
	proxy_waits = pw;
	proxy_wait_count++;
	event_add(pw->read_ev, NULL);
	evtimer_add(pw->deadline_ev, &tv);
}

/*
 * Peeks, so that not one byte after the header is taken from the session:
 * what follows may be a TLS ClientHello or a pipelined command. Bytes of
 * an unfinished header are consumed (the parser says they all belong to
 * it), so a partial header does not wake the loop again and again.
 */
static void proxy_wait_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_wait *pw = arg;
	uint8_t *room = pw->buf + pw->have;
	struct proxy_header h;
	const char *why = NULL;
	size_t used = 0;
	ssize_t n;
	char cause[200];

	(void)what;
	n = recv(fd, room, sizeof(pw->buf) - pw->have, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (n == 0 && pw->have == 0) {
			/* Connected and left: a balancer's plain TCP
			 * check, not a refusal. */
			log_debug("peer=%s proto=%s: closed before the PROXY "
				  "header",
				  pw->sock_peer_str,
				  config_proto_name(pw->proto));
			proxy_wait_free(pw, true);
			return;
		}
		snprintf(cause, sizeof(cause),
			 "connection %s in the middle of the PROXY header",
			 n == 0 ? "closed" : strerror(errno));
		proxy_wait_refuse(pw, cause);
		return;
	}
	switch (
	    proxy_proto_parse(pw->buf, pw->have + (size_t)n, &h, &used, &why)) {
	case PROXY_PARSE_DONE:
		/* The header's bytes are in the kernel buffer (peeked):
		 * this takes exactly them. */
		if (recv(fd, room, used - pw->have, 0) !=
		    (ssize_t)(used - pw->have)) {
			proxy_wait_refuse(pw, "PROXY header lost while read");
			return;
		}
		proxy_wait_done(pw, &h);
		return;
	case PROXY_PARSE_NEED_MORE:
		if (recv(fd, room, (size_t)n, 0) != n) {
			proxy_wait_refuse(pw, "PROXY header lost while read");
			return;
		}
		pw->have += (size_t)n;
		return;
	case PROXY_PARSE_ERROR:
		snprintf(cause, sizeof(cause), "malformed PROXY header: %s",
			 why);
		proxy_wait_refuse(pw, cause);
		return;
	}
}

static void proxy_wait_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_wait *pw = arg;
	char cause[120];

	(void)fd;
	(void)what;
	snprintf(cause, sizeof(cause),
		 "no complete PROXY header within %us (%zu bytes received)",
		 pw->timeout, pw->have);
	proxy_wait_refuse(pw, cause);
}

/* The header named the client: the connection is now its. A header
 * without an address (LOCAL, UNKNOWN) is the balancer's own connection. */
static void proxy_wait_done(struct proxy_wait *pw, const struct proxy_header *h)
{
	int fd = pw->fd;
	listener_accept_fn *on_accept = pw->on_accept;
	void *ctx = pw->ctx;
	enum listen_proto proto = pw->proto;
	struct sockaddr_storage balancer = pw->sock_peer;
	socklen_t balancer_len = pw->sock_peer_len;

	proxy_wait_free(pw, false);
	if (!h->has_addr) {
		on_accept(fd, (const struct sockaddr *)&balancer, balancer_len,
			  proto, NULL, ctx);
		return;
	}
	on_accept(fd, (const struct sockaddr *)&h->src, h->src_len, proto,
		  (const struct sockaddr *)&balancer, ctx);
}

static void proxy_wait_refuse(struct proxy_wait *pw, const char *cause)
{
	proxy_log_refusal(pw->sock_peer_str, pw->proto, cause);
	proxy_wait_free(pw, true);
}

static void proxy_wait_free(struct proxy_wait *pw, bool close_fd)
{
	event_free(pw->read_ev);
	event_free(pw->deadline_ev);
	if (close_fd)
		close(pw->fd);
	if (pw->prev != NULL)
		pw->prev->next = pw->next;
	else
		proxy_waits = pw->next;
	if (pw->next != NULL)
		pw->next->prev = pw->prev;
	proxy_wait_count--;
	free(pw);
}

size_t listener_proxy_pending(void)
{
	return proxy_wait_count;
}

void listener_proxy_drop_all(void)
{
	while (proxy_waits != NULL)
		proxy_wait_free(proxy_waits, true);
}
