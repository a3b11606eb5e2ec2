/*
 * Listening sockets: bound by the parent (as root, before dropping
 * privileges), watched by every worker's event loop.
 */
#ifndef POSTD_LISTENER_H
#define POSTD_LISTENER_H

#include <stddef.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "config/config.h"

struct listener_socket {
	int fd;
	enum listen_proto proto;
	char label[96]; /* "pop3 127.0.0.1:2110", for the log */
};

/*
 * Binds every address that addr resolves to ("*" means all IPv4 and IPv6
 * addresses) and listens, non-blocking and close-on-exec. Appends to
 * out[*count_r..max). Returns 0, or -1 with the cause in error.
 */
int listener_open(const struct listen_addr *addr, struct listener_socket *out,
		  size_t max, size_t *count_r, char *error, size_t error_size);

/*
 * A new connection. peer is the client; via is the load balancer it came
 * through (its PROXY header named peer), or NULL for a direct connection.
 */
typedef void listener_accept_fn(int fd, const struct sockaddr *peer,
				socklen_t peer_len, enum listen_proto proto,
				const struct sockaddr *via, void *ctx);

struct listener_watch;

/*
 * Calls on_accept for each new connection on ls (the fd then belongs to
 * on_accept). With cfg->proxy_protocol set for ls's protocol, only peers
 * in proxy_trusted are accepted, and on_accept is called once their PROXY
 * header has been read, with the client it names; a connection from
 * elsewhere, or with a malformed or slow header, is refused, logged and
 * closed here. cfg must outlive the watch and every header being read.
 */
struct listener_watch *listener_watch_new(struct event_base *base,
					  const struct listener_socket *ls,
					  const struct config *cfg,
					  listener_accept_fn *on_accept,
					  void *ctx);
/* Stops accepting (the socket itself is not closed). Headers already
 * being read go on being read. */
void listener_watch_free(struct listener_watch **w);

/* Connections of this process still waiting for their PROXY header. */
size_t listener_proxy_pending(void);
/* Closes them (the process is exiting). */
void listener_proxy_drop_all(void);

#endif
