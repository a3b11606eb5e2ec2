/* The idle-connection cache: connections kept for the next message. */
/*
 * A parked connection has said nothing since its last 250; anything the
 * server sends meanwhile (a 421, EOF) or DELIVERY_IDLE_SECS of quiet
 * ends it. outbound_session.c parks a connection after a delivered
 * message and takes one before resolving a destination.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "delivery/delivery_internal.h"
#include "lib/xmalloc.h"

static bool idle_fits(const struct idle_conn *ic, const struct session *s);
static void idle_free(struct idle_conn *ic);
static void idle_event_cb(struct bufferevent *bev, short what, void *arg);
static void idle_read_cb(struct bufferevent *bev, void *arg);
static void idle_timer_cb(evutil_socket_t fd, short what, void *arg);

/* Takes an idle connection to this group's destination, if one waits. */
bool sess_take_idle(struct session *s)
{
	struct delivery *d = s->a->d;
	struct idle_conn *ic;

	for (ic = d->idle; ic != NULL; ic = ic->next) {
		if (idle_fits(ic, s))
			break;
	}
	if (ic == NULL)
		return false;
	s->bev = ic->bev;
	ic->bev = NULL;
	s->ehlo = ic->ehlo;
	s->tls = ic->tls;
	s->verified = ic->verified;
	s->authed = ic->authed;
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", ic->tls_version);
	snprintf(s->relay, sizeof(s->relay), "%s", ic->relay);
	idle_free(ic);
	s->reused = true;
	smtp_reply_parser_init(&s->parser);
	bufferevent_setcb(s->bev, sess_read_cb, sess_write_cb, sess_event_cb,
			  s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	return true;
}

/* The key alone is not enough: transports and relay_host to one
 * HOST:PORT share it while their recipient domains' tls_policy and
 * relay_auth differ. A connection opened under "may" must not carry
 * mail that requires a verified certificate, and one that skipped AUTH
 * must not carry relay_auth mail (nor the other way round). */
static bool idle_fits(const struct idle_conn *ic, const struct session *s)
{
	return strcmp(ic->key, s->a->cur->route.key) == 0 &&
	       ic->authed == s->a->cur->route.auth &&
	       (ic->verified || !sess_must_verify(s));
}

/* After a delivered message: keeps the connection for the next one to
 * the same destination instead of QUIT. */
bool sess_park(struct session *s)
{
	struct delivery *d = s->a->d;
	struct idle_conn *ic;
	struct timeval tv = {DELIVERY_IDLE_SECS, 0};

	if (d->draining || d->idle_count >= DELIVERY_MAX_IDLE || s->bev == NULL)
		return false;
	ic = xcalloc(1, sizeof(*ic));
	ic->d = d;
	snprintf(ic->key, sizeof(ic->key), "%s", s->a->cur->route.key);
	ic->bev = s->bev;
	s->bev = NULL;
	ic->ehlo = s->ehlo;
	ic->tls = s->tls;
	ic->verified = s->verified;
	ic->authed = s->authed;
	snprintf(ic->tls_version, sizeof(ic->tls_version), "%s",
		 s->tls_version);
	snprintf(ic->relay, sizeof(ic->relay), "%s", s->relay);
	ic->timer = evtimer_new(d->base, idle_timer_cb, ic);
	evtimer_add(ic->timer, &tv);
	bufferevent_setcb(ic->bev, idle_read_cb, NULL, idle_event_cb, ic);
	ic->next = d->idle;
	if (d->idle != NULL)
		d->idle->prev = ic;
	d->idle = ic;
	d->idle_count++;
	return true;
}

static void idle_free(struct idle_conn *ic)
{
	struct delivery *d = ic->d;

	if (ic->prev != NULL)
		ic->prev->next = ic->next;
	else
		d->idle = ic->next;
	if (ic->next != NULL)
		ic->next->prev = ic->prev;
	d->idle_count--;
	if (ic->bev != NULL)
		bufferevent_free(ic->bev);
	event_free(ic->timer);
	free(ic);
}

/* Anything from an idle server (a 421, EOF) ends the connection. */
static void idle_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	idle_free(arg);
}

static void idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	idle_free(arg);
}

static void idle_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct idle_conn *ic = arg;

	(void)fd;
	(void)what;
	/* QUIT goes out best effort; the close does not wait for it. */
	bufferevent_write(ic->bev, "QUIT\r\n", 6);
	bufferevent_flush(ic->bev, EV_WRITE, BEV_FLUSH);
	idle_free(ic);
}
