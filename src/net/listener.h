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

typedef void listener_accept_fn(int fd, const struct sockaddr *peer,
				socklen_t peer_len, enum listen_proto proto,
				void *ctx);

struct listener_watch;

/* Calls on_accept for each new connection on ls (the fd stays owned by
 * the caller). */
struct listener_watch *listener_watch_new(struct event_base *base,
					  const struct listener_socket *ls,
					  listener_accept_fn *on_accept,
					  void *ctx);
/* Stops accepting (the socket itself is not closed). */
void listener_watch_free(struct listener_watch **w);

#endif
