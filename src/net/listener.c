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

/* Connections accepted per wake-up, so one busy listener cannot starve
 * the sessions already running. */
#define LISTENER_ACCEPT_BATCH 64
/* Kernel backlog of not yet accepted connections. */
#define LISTENER_BACKLOG 1024

struct listener_watch {
	struct event *ev;
	struct event *retry_ev;
	const struct listener_socket *ls;
	listener_accept_fn *on_accept;
	void *ctx;
};

static int listener_bind_one(const struct addrinfo *ai, char *error,
			     size_t error_size);
static void listener_accept_cb(evutil_socket_t fd, short what, void *arg);
static void listener_retry_cb(evutil_socket_t fd, short what, void *arg);

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
					  listener_accept_fn *on_accept,
					  void *ctx)
{
	struct listener_watch *w = xcalloc(1, sizeof(*w));

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
		w->on_accept(cfd, (struct sockaddr *)&peer, len, w->ls->proto,
			     w->ctx);
	}
}
