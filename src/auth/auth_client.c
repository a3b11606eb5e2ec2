#include "auth/auth_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"

struct auth_client_request {
	struct auth_client *client;
	uint32_t id;
	auth_client_callback *callback; /* NULL once cancelled */
	void *ctx;
	/* The packet while it waits for the socket to become writable;
	 * NULL once sent. */
	struct auth_request *packet;
	struct auth_client_request *queue_next;
	/* Only a CANCEL waiting in the queue: in no slot, freed once sent. */
	bool is_cancel;
};

struct auth_client {
	struct event_base *base;
	int fd;
	struct event *read_ev, *write_ev, *fail_ev;
	/* Requests by id % AUTH_MAX_PENDING: sent or queued. A cancelled
	 * one leaves at once (auth_client_cancel()). */
	struct auth_client_request *slots[AUTH_MAX_PENDING];
	size_t pending;
	uint32_t next_id;
	struct auth_client_request *queue_head, *queue_tail;
	bool failed;
	/* Set while callbacks run, so a callback may free the client. */
	int dispatching;
	bool free_requested;
};

static void auth_client_read_cb(evutil_socket_t fd, short what, void *arg);
static void auth_client_dispatch(struct auth_client *client,
				 const struct auth_reply *reply, size_t len);
static void auth_client_write_cb(evutil_socket_t fd, short what, void *arg);
static void auth_client_fail_cb(evutil_socket_t fd, short what, void *arg);
static void auth_client_fail(struct auth_client *client);
static void auth_client_fail_later(struct auth_client *client);
static void auth_client_request_free(struct auth_client_request *req);
static void auth_client_queue_remove(struct auth_client *client,
				     struct auth_client_request *req);
static int auth_client_flush(struct auth_client *client);
static void auth_client_destroy(struct auth_client *client);
static void auth_client_send_cancel(struct auth_client *client, uint32_t id);

struct auth_client *auth_client_new(struct event_base *base, int fd)
{
	struct auth_client *client = xcalloc(1, sizeof(*client));
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		fatal("fcntl(auth socket): %s", strerror(errno));
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	client->base = base;
	client->fd = fd;
	client->next_id = 1;
	client->read_ev = event_new(base, fd, EV_READ | EV_PERSIST,
				    auth_client_read_cb, client);
	client->write_ev =
	    event_new(base, fd, EV_WRITE, auth_client_write_cb, client);
	client->fail_ev = event_new(base, -1, 0, auth_client_fail_cb, client);
	if (client->read_ev == NULL || client->write_ev == NULL ||
	    client->fail_ev == NULL || event_add(client->read_ev, NULL) < 0)
		fatal("cannot create the auth client's events");
	return client;
}

static void auth_client_request_free(struct auth_client_request *req)
{
	if (req->packet != NULL) {
		OPENSSL_cleanse(req->packet, sizeof(*req->packet));
		free(req->packet);
	}
	free(req);
}

static void auth_client_queue_remove(struct auth_client *client,
				     struct auth_client_request *req)
{
	struct auth_client_request **pp = &client->queue_head, *prev = NULL;

	while (*pp != NULL && *pp != req) {
		prev = *pp;
		pp = &(*pp)->queue_next;
	}
	if (*pp == NULL)
		return;
	*pp = req->queue_next;
	if (client->queue_tail == req)
		client->queue_tail = prev;
	req->queue_next = NULL;
}

/* Sends queued packets. Returns 0 (all sent or the socket is full), or
 * -1 if the socket is broken. */
static int auth_client_flush(struct auth_client *client)
{
	struct auth_client_request *req;

	while ((req = client->queue_head) != NULL) {
		ssize_t n = send(client->fd, req->packet, sizeof(*req->packet),
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			      errno == ENOBUFS || errno == EINTR)) {
			if (event_add(client->write_ev, NULL) < 0)
				return -1;
			return 0;
		}
		if (n != (ssize_t)sizeof(*req->packet))
			return -1;
		auth_client_queue_remove(client, req);
		if (req->is_cancel) {
			auth_client_request_free(req);
			continue;
		}
		OPENSSL_cleanse(req->packet, sizeof(*req->packet));
		XFREE(req->packet);
	}
	return 0;
}

struct auth_client_request *auth_client_send(struct auth_client *client,
					     struct auth_request *req,
					     auth_client_callback *callback,
					     void *ctx)
{
	struct auth_client_request *r;
	uint32_t slot;

	if (client->failed || client->free_requested ||
	    client->pending >= AUTH_MAX_PENDING) {
		OPENSSL_cleanse(req->secret, sizeof(req->secret));
		return NULL;
	}
	/* Skip ids whose slot is still taken by an older request. */
	while (client->slots[client->next_id % AUTH_MAX_PENDING] != NULL)
		client->next_id++;
	slot = client->next_id % AUTH_MAX_PENDING;
	r = xcalloc(1, sizeof(*r));
	r->client = client;
	r->id = client->next_id++;
	r->callback = callback;
	r->ctx = ctx;
	req->version = AUTH_PROTO_VERSION;
	req->id = r->id;
	r->packet = xmalloc(sizeof(*r->packet));
	memcpy(r->packet, req, sizeof(*req));
	OPENSSL_cleanse(req->secret, sizeof(req->secret));

	if (client->queue_tail != NULL)
		client->queue_tail->queue_next = r;
	else
		client->queue_head = r;
	client->queue_tail = r;
	client->slots[slot] = r;
	client->pending++;
	if (client->queue_head == r && auth_client_flush(client) < 0) {
		/* This request fails here (NULL, no callback); the others
		 * learn it from the loop, not from inside this call. */
		client->slots[slot] = NULL;
		client->pending--;
		auth_client_queue_remove(client, r);
		auth_client_request_free(r);
		log_error("send to the auth process: %s", strerror(errno));
		auth_client_fail_later(client);
		return NULL;
	}
	return r;
}

void auth_client_cancel(struct auth_client_request **reqp)
{
	struct auth_client_request *req = *reqp;
	struct auth_client *client;

	if (req == NULL)
		return;
	*reqp = NULL;
	client = req->client;
	req->callback = NULL;
	req->ctx = NULL;
	if (req->packet != NULL) {
		/* Never sent: no reply will come, forget it now. */
		auth_client_queue_remove(client, req);
	} else {
		/* Sent: the auth process drops it too, so that it stops
		 * holding the peer's share and our slot is free at once. A
		 * reply already on its way finds no request and is ignored
		 * (ids grow, so a new request never takes an old one's). */
		auth_client_send_cancel(client, req->id);
	}
	client->slots[req->id % AUTH_MAX_PENDING] = NULL;
	client->pending--;
	auth_client_request_free(req);
}

/* Queued like a request when the socket is full: a dropped cancel would
 * leave the request holding its peer's share in the auth process until
 * it is checked, which for a penalised peer can be a long while. */
static void auth_client_send_cancel(struct auth_client *client, uint32_t id)
{
	struct auth_client_request *r;

	if (client->failed)
		return;
	r = xcalloc(1, sizeof(*r));
	r->client = client;
	r->id = id;
	r->is_cancel = true;
	r->packet = xcalloc(1, sizeof(*r->packet));
	r->packet->version = AUTH_PROTO_VERSION;
	r->packet->id = id;
	r->packet->type = AUTH_REQUEST_CANCEL;
	if (client->queue_tail != NULL)
		client->queue_tail->queue_next = r;
	else
		client->queue_head = r;
	client->queue_tail = r;
	/* A broken socket is reported from the loop, not from here: the
	 * caller may be inside a callback. */
	if (client->queue_head == r && auth_client_flush(client) < 0) {
		log_error("send to the auth process: %s", strerror(errno));
		auth_client_fail_later(client);
	}
}

static void auth_client_fail_later(struct auth_client *client)
{
	client->failed = true;
	event_active(client->fail_ev, 0, 0);
}

static void auth_client_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	auth_client_fail(arg);
}

/* The auth process is gone: every waiting request gets reply NULL. */
static void auth_client_fail(struct auth_client *client)
{
	client->failed = true;
	event_del(client->read_ev);
	event_del(client->write_ev);
	client->dispatching++;
	for (size_t i = 0; i < AUTH_MAX_PENDING; i++) {
		struct auth_client_request *req = client->slots[i];
		auth_client_callback *cb;
		void *ctx;

		if (req == NULL)
			continue;
		client->slots[i] = NULL;
		client->pending--;
		auth_client_queue_remove(client, req);
		cb = req->callback;
		ctx = req->ctx;
		auth_client_request_free(req);
		if (cb != NULL)
			cb(NULL, ctx);
	}
	client->dispatching--;
	if (client->free_requested && client->dispatching == 0)
		auth_client_destroy(client);
}

static void auth_client_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_client *client = arg;
	struct auth_reply replies[AUTH_RECV_BATCH];
	size_t lens[AUTH_RECV_BATCH];

	(void)what;
	client->dispatching++;
	for (int got = 0;
	     got < AUTH_CLIENT_MAX_READS && !client->free_requested;) {
		int n = auth_recv_batch(fd, replies, sizeof(replies[0]),
					AUTH_RECV_BATCH, lens);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			if (n < 0)
				log_error("recv from the auth process: %s",
					  strerror(errno));
			else
				log_error("the auth process closed its socket");
			client->dispatching--;
			auth_client_fail(client);
			return;
		}
		for (int i = 0; i < n && !client->free_requested; i++)
			auth_client_dispatch(client, &replies[i], lens[i]);
		got += n;
		/* Fewer than asked: nothing more is waiting. */
		if (n < AUTH_RECV_BATCH)
			break;
	}
	client->dispatching--;
	/* A callback freed the client: the rest still get their NULL. */
	if (client->free_requested && client->dispatching == 0)
		auth_client_fail(client);
}

/* One reply (len: its real size) to the request it answers. */
static void auth_client_dispatch(struct auth_client *client,
				 const struct auth_reply *reply, size_t len)
{
	struct auth_client_request *req;
	auth_client_callback *cb;
	void *ctx;
	uint32_t slot;

	if (!auth_reply_valid(reply, len)) {
		log_error("invalid reply from the auth process (%zu bytes), "
			  "ignored",
			  len);
		return;
	}
	slot = reply->id % AUTH_MAX_PENDING;
	req = client->slots[slot];
	if (req == NULL || req->id != reply->id || req->packet != NULL) {
		/* Mostly a cancelled request's reply that crossed the
		 * cancel. */
		log_debug("auth reply for unknown request %u ignored",
			  reply->id);
		return;
	}
	client->slots[slot] = NULL;
	client->pending--;
	/* The handle is gone before the callback runs (header). */
	cb = req->callback;
	ctx = req->ctx;
	auth_client_request_free(req);
	if (cb != NULL)
		cb(reply, ctx);
}

static void auth_client_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_client *client = arg;

	(void)fd;
	(void)what;
	if (auth_client_flush(client) < 0) {
		log_error("send to the auth process: %s", strerror(errno));
		auth_client_fail(client);
	}
}

static void auth_client_destroy(struct auth_client *client)
{
	struct auth_client_request *r, *next;

	/* Cancels never sent; the requests are freed from their slots. */
	for (r = client->queue_head; r != NULL; r = next) {
		next = r->queue_next;
		if (r->is_cancel)
			auth_client_request_free(r);
	}
	for (size_t i = 0; i < AUTH_MAX_PENDING; i++) {
		if (client->slots[i] != NULL)
			auth_client_request_free(client->slots[i]);
	}
	event_free(client->read_ev);
	event_free(client->write_ev);
	event_free(client->fail_ev);
	close(client->fd);
	free(client);
}

/*
 * Requests still waiting get their callback with reply NULL, as the
 * header promises one call per request; a callback that frees the
 * client from inside a callback is handled by deferring the destroy.
 */
void auth_client_free(struct auth_client **clientp)
{
	struct auth_client *client = *clientp;

	if (client == NULL)
		return;
	*clientp = NULL;
	if (client->free_requested)
		return;
	client->free_requested = true;
	if (client->dispatching > 0)
		return;
	auth_client_fail(client);
}
