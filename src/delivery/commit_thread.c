/* Group commit: one fsync of env/ and msg/ for many queue removals. */
/*
 * (INV-D4) The runner unlinks env/ID and msg/ID on the loop at once and
 * only marks the folders dirty; this thread fsyncs env/ and msg/ once for
 * everything removed since its last round, so no connection waits for
 * the disk. A removal that a power loss undoes only means one more
 * delivery of that entry.
 */
#include <pthread.h>
#include <string.h>

#include "delivery/delivery_internal.h"
#include "lib/log.h"

static void *commit_thread(void *arg);

void commit_start(struct delivery *d)
{
	struct delivery_commit *c = &d->commit;
	int r;

	c->dirs = &d->dirs;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	r = pthread_create(&c->thread, NULL, commit_thread, c);
	if (r != 0)
		fatal("queue runner: pthread_create: %s", strerror(r));
	c->running = true;
}

static void *commit_thread(void *arg)
{
	struct delivery_commit *c = arg;
	const char *error;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->dirty && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (!c->dirty)
			break; /* stop, and nothing left to sync */
		c->dirty = false;
		pthread_mutex_unlock(&c->mu);
		/* Removals that come meanwhile set dirty again and share
		 * the next round. A failure is not retried on the same
		 * descriptor (INV-D1); it costs at most a re-delivery. */
		if (queue_dirs_sync(c->dirs, &error) < 0)
			log_error("queue runner: removals: %s", error);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* A removal happened: the thread fsyncs env/ and msg/ soon. */
void commit_mark(struct delivery *d)
{
	struct delivery_commit *c = &d->commit;
	const char *error;

	if (!c->running) {
		if (queue_dirs_sync(&d->dirs, &error) < 0)
			log_error("queue runner: removals: %s", error);
		return;
	}
	pthread_mutex_lock(&c->mu);
	c->dirty = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* Waits for the last round: every removal is durable afterwards. */
void commit_stop(struct delivery *d)
{
	struct delivery_commit *c = &d->commit;

	if (!c->running)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	c->running = false;
}
