/*
 * The worker's side of the auth protocol: asynchronous requests over the
 * socket to the auth process, answered through a callback on the worker's
 * event loop.
 */
#ifndef POSTD_AUTH_CLIENT_H
#define POSTD_AUTH_CLIENT_H

#include <event2/event.h>

#include "auth/auth_proto.h"

struct auth_client;
struct auth_client_request;

/*
 * Called once per request. reply is NULL if the auth process went away
 * or the request could not be sent; treat that as a temporary failure.
 * The request handle is gone when the callback runs.
 */
typedef void auth_client_callback(const struct auth_reply *reply, void *ctx);

/* Takes ownership of fd (a SOCK_SEQPACKET socket to the auth process). */
struct auth_client *auth_client_new(struct event_base *base, int fd);
void auth_client_free(struct auth_client **client);

/*
 * Sends req (its version and id are filled in here). Returns a handle, or
 * NULL if the request could not be queued (callback not called). The
 * secret in req is wiped by this call.
 */
struct auth_client_request *auth_client_send(struct auth_client *client,
					     struct auth_request *req,
					     auth_client_callback *callback,
					     void *ctx);
/* Forgets a pending request: its callback will never run. Sets *req to
 * NULL. Used when a session ends while waiting. */
void auth_client_cancel(struct auth_client_request **req);

#endif
