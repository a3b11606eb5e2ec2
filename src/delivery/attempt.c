/* One try of one queue entry: groups by domain, outcomes, bounces. */
/*
 * An attempt holds the entry's lock and runs its groups one after the
 * other from the event loop: a local domain goes to local_delivery.c, a
 * remote one to outbound_session.c. Both report each recipient through
 * attempt_result() and end with attempt_group_done(), which queues the
 * bounces and rewrites the envelope (INV-D4) before the next group.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "delivery/delivery_internal.h"
#include "delivery/dsn.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/srs.h"
#include "lib/xmalloc.h"

static int attempt_scan_msg(struct attempt *a);
static void attempt_group(struct attempt *a, time_t now);
static void attempt_step(struct attempt *a);
static void attempt_step_cb(evutil_socket_t fd, short what, void *arg);
static void attempt_delay_cb(evutil_socket_t fd, short what, void *arg);
static void attempt_delay_check(struct attempt *a, time_t now);
static void attempt_finish(struct attempt *a);
static bool attempt_pending(const struct attempt *a);
static void attempt_bounce(struct attempt *a, struct group *g);
static int delivery_dsn_queue(struct delivery *d,
			      const struct queue_envelope *env,
			      enum dsn_action action,
			      const struct dsn_rcpt *rcpts, size_t rcpt_count,
			      time_t now, char *id_r, size_t id_size,
			      const char **error_r);

void attempt_start(struct delivery *d, const char *id)
{
	struct attempt *a;
	const char *error;
	int lock_fd, r;
	struct queue_envelope *env;

	lock_fd = queue_entry_lock_at(&d->dirs, id, false, &error);
	if (lock_fd < 0) {
		if (errno != EAGAIN && errno != ENOENT)
			log_warn("queue runner: lock %s: %s", id, error);
		return;
	}
	/* Load again under the lock: postctl may have changed it. */
	r = queue_entry_load_at(&d->dirs, id, &env, &error);
	if (r <= 0) {
		if (r < 0)
			log_warn("queue runner: %s: %s", id, error);
		queue_entry_unlock(&lock_fd);
		return;
	}
	a = xcalloc(1, sizeof(*a));
	a->d = d;
	a->env = env;
	a->lock_fd = lock_fd;
	/* The lock descriptor is msg/ID itself (O_RDWR): read through it
	 * instead of opening the file a second time. */
	a->msg_fd = lock_fd;
	a->next = d->attempts;
	if (d->attempts != NULL)
		d->attempts->prev = a;
	d->attempts = a;
	d->attempt_count++;
	a->fail_status = xcalloc(env->rcpt_count, sizeof(char *));
	a->step_ev = evtimer_new(d->base, attempt_step_cb, a);
	a->delay_ev = evtimer_new(d->base, attempt_delay_cb, a);
	if (attempt_scan_msg(a) < 0) {
		a->msg_unreadable = true;
		log_error("queue runner: %s: cannot read the message: %s", id,
			  strerror(errno));
		attempt_finish(a);
		return;
	}
	attempt_group(a, time(NULL));
	attempt_delay_check(a, time(NULL));
	attempt_step(a);
}

/* One pass over the message: 8-bit bytes (BODY=8BITMIME) and the size
 * on the wire (SIZE=). */
static int attempt_scan_msg(struct attempt *a)
{
	char buf[DELIVERY_CHUNK];
	uint64_t off = a->env->skip, lines = 0;
	ssize_t n;

	while (off < a->env->size) {
		size_t want = sizeof(buf);

		if (a->env->size - off < want)
			want = (size_t)(a->env->size - off);
		n = pread(a->msg_fd, buf, want, (off_t)off);
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		for (ssize_t i = 0; i < n; i++) {
			if ((unsigned char)buf[i] >= 0x80)
				a->eightbit = true;
			else if (buf[i] == '\n')
				lines++;
		}
		off += (uint64_t)n;
	}
	a->wire_size = a->env->size - a->env->skip + lines;
	a->needs_utf8 = smtp_client_needs_utf8(a->env->sender);
	return 0;
}

/* Due pending recipients, grouped by domain (lowercase). */
static void attempt_group(struct attempt *a, time_t now)
{
	struct queue_envelope *env = a->env;
	struct group **tail = &a->groups;

	for (size_t i = 0; i < env->rcpt_count; i++) {
		struct queue_rcpt *rc = &env->rcpts[i];
		const char *at = strrchr(rc->addr, '@');
		char dom[SMTP_MAX_DOMAIN + 1];
		struct group *g;

		if (rc->state != QUEUE_RCPT_PENDING ||
		    rc->next_try > (uint64_t)now)
			continue;
		snprintf(dom, sizeof(dom), "%s", at != NULL ? at + 1 : "");
		ascii_lowercase(dom);
		for (g = a->groups; g != NULL; g = g->next) {
			if (strcmp(g->domain, dom) == 0)
				break;
		}
		if (g == NULL) {
			g = xcalloc(1, sizeof(*g));
			snprintf(g->domain, sizeof(g->domain), "%s", dom);
			g->idx = xcalloc(env->rcpt_count, sizeof(size_t));
			*tail = g;
			tail = &g->next;
		}
		g->idx[g->count++] = i;
		if (smtp_client_needs_utf8(rc->addr))
			a->needs_utf8 = true;
	}
	a->cur = NULL;
}

/*
 * A DSN for a forwarded message goes to its SRS reverse-path; decoded
 * here, it goes straight to the original sender, as the bounce of a
 * remote server does through smtp_rcpt_srs. The envelope is our own, so
 * the age check uses the time the entry was made, not now: a message may
 * stay queued for all of queue_lifetime.
 */
static int delivery_dsn_queue(struct delivery *d,
			      const struct queue_envelope *env,
			      enum dsn_action action,
			      const struct dsn_rcpt *rcpts, size_t rcpt_count,
			      time_t now, char *id_r, size_t id_size,
			      const char **error_r)
{
	struct queue_envelope decoded = *env;
	char addr[SRS_MAX_ADDRESS], logged[SRS_MAX_ADDRESS * 4];
	char logged_to[SRS_MAX_ADDRESS * 4];
	const char *at = strrchr(env->sender, '@');
	enum srs_result r;

	if (at != NULL && strcasecmp(at + 1, config_srs_domain(d->cfg)) == 0 &&
	    srs_is_srs_local(env->sender, (size_t)(at - env->sender))) {
		r = srs_reverse(&d->srs, env->sender,
				(size_t)(at - env->sender),
				(time_t)env->created, addr, sizeof(addr));
		if (r == SRS_OK) {
			log_info("id=%s DSN to SRS <%s> goes to <%s>", env->id,
				 log_escape_word(logged, sizeof(logged),
						 env->sender),
				 log_escape_word(logged_to, sizeof(logged_to),
						 addr));
			decoded.sender = addr;
		} else {
			log_warn("id=%s DSN to SRS <%s>: not decoded (%s)",
				 env->id,
				 log_escape_word(logged, sizeof(logged),
						 env->sender),
				 srs_result_name(r));
		}
	}
	return dsn_queue(d->queue_fd, d->cfg, &decoded, action, rcpts,
			 rcpt_count, now, id_r, id_size, error_r);
}

/* The delayed DSN (RFC 3464 Action: delayed) once per entry, when it
 * has waited delay_warning_time; also while an attempt hangs. */
static void attempt_delay_check(struct attempt *a, time_t now)
{
	const struct config *cfg = a->d->cfg;
	struct queue_envelope *env = a->env;
	struct dsn_rcpt *dr;
	size_t n = 0;
	char id[QUEUE_MAX_ID + 1];
	const char *error;
	uint64_t warn = env->created + cfg->delay_warning_time;
	int r;

	if (cfg->delay_warning_time == 0 || env->delay_notified ||
	    env->sender[0] == '\0')
		return;
	if ((uint64_t)now < warn) {
		struct timeval tv = {(time_t)(warn - (uint64_t)now), 0};

		evtimer_add(a->delay_ev, &tv);
		return;
	}
	dr = xcalloc(env->rcpt_count, sizeof(*dr));
	for (size_t i = 0; i < env->rcpt_count; i++) {
		if (env->rcpts[i].state != QUEUE_RCPT_PENDING)
			continue;
		dr[n].addr = env->rcpts[i].addr;
		dr[n].status = "4.4.7";
		dr[n].diagnostic = env->rcpts[i].last_error;
		dr[n].reason = "the message could not be delivered yet; "
			       "delivery will be retried";
		n++;
	}
	r = n > 0 ? delivery_dsn_queue(a->d, env, DSN_DELAYED, dr, n, now, id,
				       sizeof(id), &error)
		  : 0;
	free(dr);
	if (r < 0) {
		log_error("queue runner: %s: delayed DSN: %s", env->id, error);
		return;
	}
	if (r > 0)
		log_info("id=%s delayed DSN queued as %s", env->id, id);
	env->delay_notified = true;
	if (queue_envelope_update(a->d->queue_fd, env, &error) < 0)
		log_error("queue runner: %s: update: %s", env->id, error);
}

static void attempt_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	attempt_delay_check(arg, time(NULL));
}

/* Runs the next group from the event loop, never from inside a
 * bufferevent callback of the session that just ended. */
static void attempt_step(struct attempt *a)
{
	struct timeval tv = {0, 0};

	evtimer_add(a->step_ev, &tv);
}

static void attempt_step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *a = arg;
	const char *error;

	(void)fd;
	(void)what;
	if (a->sess != NULL)
		sess_free(&a->sess);
	a->cur = a->cur == NULL ? a->groups : a->cur->next;
	if (a->cur == NULL) {
		attempt_finish(a);
		return;
	}
	if (a->d->draining && a->d->attempt_count > 0 && a->cur != a->groups) {
		/* SIGQUIT: the group in flight is done; start no other. */
		attempt_finish(a);
		return;
	}
	if (route_for_domain(a->d->cfg, a->cur->domain, &a->cur->route,
			     &error) < 0) {
		for (size_t i = 0; i < a->cur->count; i++)
			attempt_result(a, a->cur->idx[i], 4, error, "4.3.5",
				       "none", "no TLS");
		attempt_group_done(a);
		return;
	}
	if (a->cur->route.kind == ROUTE_LOCAL)
		attempt_local(a, a->cur);
	else
		attempt_remote(a, a->cur);
}

/* After every group: bounces first, then the envelope (INV-D4). */
void attempt_group_done(struct attempt *a)
{
	const char *error;

	attempt_bounce(a, a->cur);
	/* INV-D4: a partial result (some recipients still pending) is made
	 * durable before the runner goes on. When none is pending the entry
	 * is removed right away (attempt_finish) and the rewrite would be
	 * wasted: a crash before the removal repeats the entry once, which
	 * the rewrite could not prevent either (it comes after the 250 too).
	 * A bounce's DSN is already durable (dsn_queue fsyncs it). */
	if (attempt_pending(a) &&
	    queue_envelope_update(a->d->queue_fd, a->env, &error) < 0)
		log_error("queue runner: %s: envelope update: %s", a->env->id,
			  error);
	if (a->cur->dest != NULL) {
		struct dest *x = a->cur->dest;

		a->cur->dest = NULL;
		x->active--;
		/* Wake the first attempt waiting for this destination. */
		for (struct attempt **w = &a->d->waiting; *w != NULL;
		     w = &(*w)->wait_next) {
			if (strcmp((*w)->cur->route.key, x->key) == 0) {
				struct attempt *n = *w;

				*w = n->wait_next;
				n->wait_next = NULL;
				attempt_remote(n, n->cur);
				break;
			}
		}
	}
	attempt_step(a);
}

/* Does any recipient of the entry still wait for a delivery? */
static bool attempt_pending(const struct attempt *a)
{
	for (size_t i = 0; i < a->env->rcpt_count; i++) {
		if (a->env->rcpts[i].state == QUEUE_RCPT_PENDING)
			return true;
	}
	return false;
}

static void attempt_finish(struct attempt *a)
{
	struct delivery *d = a->d;
	struct group *g;
	const char *error;
	bool pending = attempt_pending(a);
	bool readable = a->msg_fd >= 0 && !a->msg_unreadable;

	if (!pending && readable) {
		/* Unlinked now, under the lock; the folder fsyncs follow in
		 * the commit thread (group commit, see delivery.md). */
		if (queue_entry_remove(&d->dirs, a->env->id, &error) < 0 &&
		    errno != ENOENT)
			log_error("queue runner: %s: delete: %s", a->env->id,
				  error);
		else
			log_info("id=%s removed from the queue", a->env->id);
		commit_mark(d);
	}
	if (a->sess != NULL)
		sess_free(&a->sess);
	queue_entry_unlock(&a->lock_fd);
	a->msg_fd = -1;
	while ((g = a->groups) != NULL) {
		a->groups = g->next;
		free(g->idx);
		free(g);
	}
	if (a->prev != NULL)
		a->prev->next = a->next;
	else
		d->attempts = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	d->attempt_count--;
	if (pending && readable)
		delivery_scan_one(d, a->env);
	event_free(a->step_ev);
	event_free(a->delay_ev);
	free(a->dkim_header);
	for (size_t i = 0; i < a->env->rcpt_count; i++)
		free(a->fail_status[i]);
	free(a->fail_status);
	queue_envelope_free(&a->env);
	free(a);
	/* The next due time of this entry, and those that waited for a
	 * free attempt slot. */
	if (!d->draining)
		delivery_run_due(d);
	delivery_maybe_exit(d);
}

unsigned attempt_timeout(struct attempt *a, unsigned base)
{
	/* A server that hangs must not keep an entry past its lifetime:
	 * the bounce is due then. */
	time_t now = time(NULL);
	uint64_t end = a->env->created + a->d->cfg->queue_lifetime;

	if (end > (uint64_t)now && end - (uint64_t)now + 1 < base)
		return (unsigned)(end - (uint64_t)now + 1);
	if (end <= (uint64_t)now)
		return base < 5 ? base : 5;
	return base;
}

const char *attempt_sender_domain(struct attempt *a)
{
	const char *at = strrchr(a->env->sender, '@');

	return at != NULL ? at + 1 : NULL;
}

/*
 * Records one recipient's outcome and logs it. cls 2: sent; 4: deferred
 * with backoff, or failed with 4.4.7 past queue_lifetime; 5: failed.
 * Failed recipients stay pending here and are marked failed only after
 * their DSN is queued (attempt_bounce).
 */
void attempt_result(struct attempt *a, size_t ri, unsigned cls,
		    const char *reply, const char *status, const char *relay,
		    const char *tls)
{
	const struct config *cfg = a->d->cfg;
	struct queue_rcpt *rc = &a->env->rcpts[ri];
	time_t now = time(NULL);
	char addr[SMTP_MAX_PATH * 4], rep[QUEUE_MAX_ERROR * 4];
	char outcome[64];
	long delay = (long)((uint64_t)now - a->env->created);
	struct group *g = a->cur;

	log_escape_word(addr, sizeof(addr), rc->addr);
	log_escape(rep, sizeof(rep), reply, strlen(reply));
	free(rc->last_error);
	rc->last_error = xstrndup(reply, QUEUE_MAX_ERROR);
	rc->attempts++;
	if (cls == 2) {
		rc->state = QUEUE_RCPT_SENT;
		snprintf(outcome, sizeof(outcome), "sent");
		metrics_add(g != NULL && g->route.kind == ROUTE_LOCAL
				? METRIC_MESSAGES_DELIVERED
				: METRIC_MESSAGES_RELAYED,
			    1);
	} else if (cls == 4 &&
		   (uint64_t)now < a->env->created + cfg->queue_lifetime) {
		uint64_t wait =
		    cfg->queue_retry_min > 0 ? cfg->queue_retry_min : 1;
		struct tm tm;
		time_t next;

		for (uint32_t i = 1;
		     i < rc->attempts && wait < cfg->queue_retry_max; i++)
			wait *= 2;
		if (wait > cfg->queue_retry_max)
			wait = cfg->queue_retry_max;
		/* Up to 10% jitter, so entries that failed together do not
		 * all come back in the same second. */
		wait += (uint64_t)random() % (wait / 10 + 1);
		next = now + (time_t)wait;
		rc->next_try = (uint64_t)next;
		gmtime_r(&next, &tm);
		strftime(outcome, sizeof(outcome),
			 "deferred until %Y-%m-%dT%H:%M:%SZ", &tm);
	} else {
		/* Bounced: marked failed once the DSN is queued. */
		rc->next_try = 0;
		snprintf(outcome, sizeof(outcome), "bounced");
		free(a->fail_status[ri]);
		a->fail_status[ri] = xstrdup(cls == 4 ? "4.4.7" : status);
	}
	log_info("id=%s rcpt=%s relay=%s tls=\"%s\" delay=%lds reply=\"%s\" "
		 "status=%s",
		 a->env->id, addr, relay, tls, delay, rep, outcome);
}

/* Queues one DSN for the group's failed recipients, then marks them
 * failed for good; if the DSN cannot be queued they stay pending and
 * come back soon (a crash in between: at most a second bounce). */
static void attempt_bounce(struct attempt *a, struct group *g)
{
	struct queue_envelope *env = a->env;
	struct dsn_rcpt *dr = xcalloc(g->count, sizeof(*dr));
	size_t n = 0;
	char id[QUEUE_MAX_ID + 1];
	const char *error = "";
	int r;

	for (size_t k = 0; k < g->count; k++) {
		size_t ri = g->idx[k];
		struct queue_rcpt *rc = &env->rcpts[ri];
		const char *le = rc->last_error != NULL ? rc->last_error : "";

		if (a->fail_status[ri] == NULL)
			continue;
		dr[n].addr = rc->addr;
		dr[n].status = a->fail_status[ri];
		/* A remote reply is the Diagnostic-Code; a local cause
		 * (DNS, timeouts) is only described. */
		dr[n].diagnostic = (le[0] >= '2' && le[0] <= '5' &&
				    le[1] >= '0' && le[1] <= '9')
				       ? le
				       : NULL;
		dr[n].remote_mta =
		    g->route.kind == ROUTE_LOCAL ? NULL : g->route.host;
		dr[n].reason = le;
		n++;
	}
	if (n == 0) {
		free(dr);
		return;
	}
	r = delivery_dsn_queue(a->d, env, DSN_FAILED, dr, n, time(NULL), id,
			       sizeof(id), &error);
	for (size_t k = 0; k < g->count; k++) {
		size_t ri = g->idx[k];
		struct queue_rcpt *rc = &env->rcpts[ri];

		if (a->fail_status[ri] == NULL)
			continue;
		free(a->fail_status[ri]);
		a->fail_status[ri] = NULL;
		if (r < 0) {
			rc->next_try =
			    (uint64_t)time(NULL) + DELIVERY_DSN_RETRY;
		} else {
			rc->state = QUEUE_RCPT_FAILED;
			metrics_add(METRIC_MESSAGES_BOUNCED, 1);
		}
	}
	if (r < 0)
		log_error("queue runner: %s: cannot queue the DSN: %s", env->id,
			  error);
	else if (r > 0)
		log_info("id=%s DSN for %zu recipients queued as %s", env->id,
			 n, id);
	else
		log_info("id=%s null sender: no DSN for %zu recipients",
			 env->id, n);
	free(dr);
}
