/* The queue runner's schedule: which entry is due when, and starting it. */
/*
 * Entries not in flight, by due time. A hash table (open addressing)
 * holds each entry's current due time; a binary min-heap orders (due, id)
 * pairs. A heap node whose due time no longer matches the table is stale
 * and skipped when it comes to the top. Entries come in from inotify,
 * from the periodic rescan of env/ and from attempts that end with
 * recipients still pending.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "delivery/delivery_internal.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

static void delivery_schedule_wake(struct delivery *d, time_t when);
static void delivery_load_one(struct delivery *d, const char *id);
static void delivery_sched_put(struct delivery *d, const char *id,
			       uint64_t due);
static uint64_t delivery_hash(const char *id);
static struct sched_slot *sched_find(struct delivery *d, const char *id);
static void sched_rehash(struct delivery *d, size_t count);
static void sched_set(struct delivery *d, const char *id, uint64_t due);
static void heap_push(struct delivery *d, const char *id, uint64_t due);
static void heap_pop(struct delivery *d);
static bool heap_before(const struct delivery_sched *x,
			const struct delivery_sched *y);
static void heap_rebuild(struct delivery *d);
static bool delivery_in_flight(struct delivery *d, const char *id);

/* inotify names each new envelope: load just that one. Our own
 * envelope updates show up too; entries in flight are skipped. */
void delivery_inotify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;
	char buf[8192]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				delivery_scan(d);
				continue;
			}
			if (ev->len > 0 && queue_id_valid(ev->name))
				delivery_load_one(d, ev->name);
		}
	}
	delivery_run_due(d);
}

static void delivery_load_one(struct delivery *d, const char *id)
{
	struct queue_envelope *env;
	const char *error;
	int r;

	if (d->draining || delivery_in_flight(d, id))
		return;
	r = queue_entry_load(d->queue_fd, id, &env, &error);
	if (r < 0)
		log_warn("queue runner: %s: %s", id, error);
	if (r <= 0)
		return;
	delivery_scan_one(d, env);
	queue_envelope_free(&env);
}

void delivery_rescan_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	delivery_scan(arg);
}

void delivery_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;

	(void)fd;
	(void)what;
	d->next_wake = 0;
	delivery_run_due(d);
}

static void delivery_schedule_wake(struct delivery *d, time_t when)
{
	time_t now = time(NULL);
	struct timeval tv = {0, 0};

	if (d->next_wake != 0 && d->next_wake <= when &&
	    evtimer_pending(d->wake_ev, NULL))
		return;
	d->next_wake = when;
	tv.tv_sec = when > now ? when - now : 0;
	evtimer_add(d->wake_ev, &tv);
}

/* The full walk of env/: at start and every DELIVERY_RESCAN_SECS, in
 * case an inotify event was lost. */
void delivery_scan(struct delivery *d)
{
	const char *error;

	if (d->draining)
		return;
	if (queue_list(d->queue_fd, delivery_scan_one, d, NULL, &error) < 0)
		log_error("queue runner: scanning the queue: %s", error);
	delivery_run_due(d);
}

/* Puts env into the schedule at its next due time. */
int delivery_scan_one(void *ctx, const struct queue_envelope *env)
{
	struct delivery *d = ctx;
	uint64_t due = UINT64_MAX;
	size_t i;

	if (delivery_in_flight(d, env->id))
		return 0;
	for (i = 0; i < env->rcpt_count; i++) {
		if (env->rcpts[i].state == QUEUE_RCPT_PENDING &&
		    env->rcpts[i].next_try < due)
			due = env->rcpts[i].next_try;
	}
	if (due == UINT64_MAX) {
		/* Nothing pending: a crash came before the delete. */
		due = 0;
	}
	if (d->cfg->delay_warning_time > 0 && !env->delay_notified &&
	    env->sender[0] != '\0') {
		uint64_t warn = env->created + d->cfg->delay_warning_time;

		if (warn < due)
			due = warn;
	}
	delivery_sched_put(d, env->id, due);
	return 0;
}

static void delivery_sched_put(struct delivery *d, const char *id, uint64_t due)
{
	struct sched_slot *sl = sched_find(d, id);

	if (sl != NULL && sl->due == due)
		return; /* its heap node is still valid */
	sched_set(d, id, due);
	heap_push(d, id, due);
	/* Stale nodes pile up when due times change often: rebuild. */
	if (d->heap_count > 2 * d->slot_used + 1024)
		heap_rebuild(d);
}

/* Starts every scheduled entry that is due (up to the attempt cap) and
 * sets the timer for the earliest of the rest. */
void delivery_run_due(struct delivery *d)
{
	time_t now = time(NULL);
	uint64_t next = UINT64_MAX;

	if (d->draining)
		return;
	while (d->heap_count > 0) {
		struct delivery_sched e = d->heap[0];
		struct sched_slot *sl = sched_find(d, e.id);

		if (sl == NULL || sl->due != e.due) {
			heap_pop(d); /* stale */
			continue;
		}
		if (e.due > (uint64_t)now ||
		    d->attempt_count >= DELIVERY_MAX_ATTEMPTS) {
			next = e.due;
			break;
		}
		heap_pop(d);
		sl->state = SLOT_GONE;
		d->slot_used--;
		d->slot_gone++;
		if (!delivery_in_flight(d, e.id))
			attempt_start(d, e.id);
	}
	if (next != UINT64_MAX)
		delivery_schedule_wake(d, next > (uint64_t)now ? (time_t)next
							       : now + 1);
}

/* FNV-1a: ids are random hex, any cheap hash spreads them. */
static uint64_t delivery_hash(const char *id)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return h;
}

static struct sched_slot *sched_find(struct delivery *d, const char *id)
{
	size_t mask = d->slot_count - 1, i;

	if (d->slot_count == 0)
		return NULL;
	for (i = delivery_hash(id) & mask;; i = (i + 1) & mask) {
		struct sched_slot *sl = &d->slots[i];

		if (sl->state == SLOT_EMPTY)
			return NULL;
		if (sl->state == SLOT_USED && strcmp(sl->id, id) == 0)
			return sl;
	}
}

static void sched_rehash(struct delivery *d, size_t count)
{
	struct sched_slot *old = d->slots;
	size_t old_count = d->slot_count;

	d->slots = xcalloc(count, sizeof(*d->slots));
	d->slot_count = count;
	d->slot_used = d->slot_gone = 0;
	for (size_t i = 0; i < old_count; i++) {
		if (old[i].state == SLOT_USED)
			sched_set(d, old[i].id, old[i].due);
	}
	free(old);
}

static void sched_set(struct delivery *d, const char *id, uint64_t due)
{
	struct sched_slot *sl = sched_find(d, id);
	size_t mask, i;

	if (sl != NULL) {
		sl->due = due;
		return;
	}
	/* At most 3/4 full, counting removed slots (they lengthen probes
	 * and an unbounded number would leave no empty slot). */
	if ((d->slot_used + d->slot_gone + 1) * 4 > d->slot_count * 3) {
		size_t n = 64;

		while (n < (d->slot_used + 1) * 4)
			n *= 2;
		sched_rehash(d, n);
	}
	mask = d->slot_count - 1;
	for (i = delivery_hash(id) & mask; d->slots[i].state == SLOT_USED;
	     i = (i + 1) & mask)
		;
	sl = &d->slots[i];
	if (sl->state == SLOT_GONE)
		d->slot_gone--;
	snprintf(sl->id, sizeof(sl->id), "%s", id);
	sl->state = SLOT_USED;
	sl->due = due;
	d->slot_used++;
}

/* Earlier due first; among equals the older entry (ids begin with the
 * creation time in hex, fixed width), so a queue drains in FIFO order
 * and entries a crash interrupted, being the oldest, go first. */
static bool heap_before(const struct delivery_sched *x,
			const struct delivery_sched *y)
{
	return x->due < y->due ||
	       (x->due == y->due && strcmp(x->id, y->id) < 0);
}

static void heap_push(struct delivery *d, const char *id, uint64_t due)
{
	struct delivery_sched e;
	size_t i;

	if (d->heap_count == d->heap_alloc) {
		d->heap_alloc = d->heap_alloc ? 2 * d->heap_alloc : 64;
		d->heap =
		    xreallocarray(d->heap, d->heap_alloc, sizeof(*d->heap));
	}
	snprintf(e.id, sizeof(e.id), "%s", id);
	e.due = due;
	i = d->heap_count++;
	while (i > 0 && heap_before(&e, &d->heap[(i - 1) / 2])) {
		d->heap[i] = d->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	d->heap[i] = e;
}

static void heap_pop(struct delivery *d)
{
	struct delivery_sched last = d->heap[--d->heap_count];
	size_t i = 0, n = d->heap_count;

	if (n == 0)
		return;
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && heap_before(&d->heap[c + 1], &d->heap[c]))
			c++;
		if (!heap_before(&d->heap[c], &last))
			break;
		d->heap[i] = d->heap[c];
		i = c;
	}
	d->heap[i] = last;
}

/* Only the valid nodes, from the table. */
static void heap_rebuild(struct delivery *d)
{
	d->heap_count = 0;
	for (size_t i = 0; i < d->slot_count; i++) {
		if (d->slots[i].state == SLOT_USED)
			heap_push(d, d->slots[i].id, d->slots[i].due);
	}
}

static bool delivery_in_flight(struct delivery *d, const char *id)
{
	for (struct attempt *a = d->attempts; a != NULL; a = a->next) {
		if (strcmp(a->env->id, id) == 0)
			return true;
	}
	return false;
}
