/*
 * Change notification for IMAP IDLE (mail_notify.h), with inotify.
 *
 * One inotify descriptor per event_base (per worker process), one group of
 * three watches per folder (new/, cur/ and the folder itself, where
 * postd-imap.log changes) shared by every session watching that folder,
 * and one timer per group that is armed only after an event: a burst of
 * changes (a delivery is a create and a rename; an EXPUNGE of 100
 * messages is 100 unlinks) becomes one callback per session, 50 ms after
 * the first. An idle session costs a list entry; an idle folder three
 * kernel watches and an unarmed timer.
 *
 * inotify has no descriptor-based call, so the directories are named
 * relative to the session's own folder descriptor: fchdir() into it, add
 * "new", "cur" and ".", fchdir() back to the working directory kept open.
 * No path string from outside (INV-U1), and no /proc, which the chrooted
 * workers do not have. The worker's event loop is single-threaded and
 * nothing else in it resolves relative paths, so the brief change of the
 * working directory is seen by no one. Past the kernel's watch limit
 * mail_notify_new() returns NULL and the session falls back to syncing
 * at each command (and IDLE to a short poll).
 *
 * Single-threaded per event_base, as libevent is.
 */
#include "storage/mail_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"

/* The coalescing delay: long enough to gather one delivery's or one
 * EXPUNGE's events, short enough that a client sees new mail at once. */
#define NOTIFY_DELAY_USEC 50000
#define NOTIFY_READ_BUF 16384
#define NOTIFY_DIR_MASK                                                        \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR |    \
	 IN_DONT_FOLLOW)
#define NOTIFY_ROOT_MASK                                                       \
	(IN_CREATE | IN_MODIFY | IN_MOVED_TO | IN_DELETE | IN_ONLYDIR |        \
	 IN_DONT_FOLLOW)
/* The file in the folder itself whose changes matter. */
#define NOTIFY_INDEX_FILE "postd-imap.log"

struct notify_base;

/* The sessions watching one folder. */
struct notify_group {
	struct notify_base *nb;
	struct notify_group *next;
	int wd[3]; /* new/, cur/, the folder; -1 once removed */
	struct event *timer;
	struct mail_notify *subs;
	bool dispatching;
};

/* One inotify descriptor per event_base. */
struct notify_base {
	struct notify_base *next;
	struct event_base *base;
	int ifd;
	struct event *ev;
	struct notify_group *groups;
};

struct mail_notify {
	struct notify_group *g;
	struct mail_notify *next;
	mail_notify_callback *callback;
	void *ctx;
	bool dead; /* freed while its group was dispatching */
};

static struct notify_base *notify_bases;

static struct notify_base *notify_base_get(struct event_base *base, char *error,
					   size_t error_size);
static void notify_base_put(struct notify_base *nb);
static void notify_read_cb(evutil_socket_t fd, short what, void *arg);
static void notify_fire_cb(evutil_socket_t fd, short what, void *arg);
static void notify_schedule(struct notify_group *g);
static struct notify_group *notify_group_by_wd(struct notify_base *nb, int wd);
static int notify_add_watches(struct notify_base *nb, int folder_fd, int wd[3],
			      char *error, size_t error_size);
static int notify_add_watches_here(struct notify_base *nb, int wd[3],
				   char *error, size_t error_size);
static void notify_group_free(struct notify_group *g);
static void notify_sweep(struct notify_group *g);

static struct notify_base *notify_base_get(struct event_base *base, char *error,
					   size_t error_size)
{
	struct notify_base *nb;

	for (nb = notify_bases; nb != NULL; nb = nb->next) {
		if (nb->base == base)
			return nb;
	}
	nb = xcalloc(1, sizeof(*nb));
	nb->base = base;
	nb->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (nb->ifd < 0) {
		snprintf(error, error_size, "inotify_init1: %s",
			 strerror(errno));
		free(nb);
		return NULL;
	}
	nb->ev =
	    event_new(base, nb->ifd, EV_READ | EV_PERSIST, notify_read_cb, nb);
	if (nb->ev == NULL || event_add(nb->ev, NULL) < 0) {
		snprintf(error, error_size, "cannot watch the inotify fd");
		if (nb->ev != NULL)
			event_free(nb->ev);
		close(nb->ifd);
		free(nb);
		return NULL;
	}
	nb->next = notify_bases;
	notify_bases = nb;
	return nb;
}

/* Frees the base's inotify descriptor once no folder is watched. */
static void notify_base_put(struct notify_base *nb)
{
	struct notify_base **pp;

	if (nb->groups != NULL)
		return;
	for (pp = &notify_bases; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == nb) {
			*pp = nb->next;
			break;
		}
	}
	event_free(nb->ev);
	close(nb->ifd);
	free(nb);
}

static struct notify_group *notify_group_by_wd(struct notify_base *nb, int wd)
{
	for (struct notify_group *g = nb->groups; g != NULL; g = g->next) {
		if (g->wd[0] == wd || g->wd[1] == wd || g->wd[2] == wd)
			return g;
	}
	return NULL;
}

static void notify_schedule(struct notify_group *g)
{
	struct timeval tv = {0, NOTIFY_DELAY_USEC};

	if (!evtimer_pending(g->timer, NULL))
		evtimer_add(g->timer, &tv);
}

static void notify_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct notify_base *nb = arg;
	char buf[NOTIFY_READ_BUF]
	    __attribute__((aligned(__alignof__(struct inotify_event))));

	(void)what;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ie = (void *)p;
			struct notify_group *g;

			p += sizeof(*ie) + ie->len;
			if (ie->mask & IN_Q_OVERFLOW) {
				/* Events were lost: everyone syncs. */
				for (g = nb->groups; g != NULL; g = g->next)
					notify_schedule(g);
				continue;
			}
			g = notify_group_by_wd(nb, ie->wd);
			if (g == NULL)
				continue;
			if (ie->mask & IN_IGNORED) {
				/* The directory went away (DELETE, RENAME):
				 * the session must look. */
				for (int i = 0; i < 3; i++) {
					if (g->wd[i] == ie->wd)
						g->wd[i] = -1;
				}
				notify_schedule(g);
				continue;
			}
			/* In the folder itself only the index matters (not
			 * the cache, not sub-folders). */
			if (ie->wd == g->wd[2] &&
			    (ie->len == 0 ||
			     strcmp(ie->name, NOTIFY_INDEX_FILE) != 0))
				continue;
			notify_schedule(g);
		}
	}
}

/* Removes the subscribers freed during a dispatch. */
static void notify_sweep(struct notify_group *g)
{
	struct mail_notify **pp = &g->subs;

	while (*pp != NULL) {
		struct mail_notify *n = *pp;

		if (n->dead) {
			*pp = n->next;
			free(n);
		} else {
			pp = &n->next;
		}
	}
}

static void notify_fire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct notify_group *g = arg;

	(void)fd;
	(void)what;
	g->dispatching = true;
	for (struct mail_notify *n = g->subs; n != NULL; n = n->next) {
		if (!n->dead)
			n->callback(n->ctx);
	}
	g->dispatching = false;
	notify_sweep(g);
	if (g->subs == NULL)
		notify_group_free(g);
}

/* Adds the three watches from inside the folder (see the top comment). */
static int notify_add_watches(struct notify_base *nb, int folder_fd, int wd[3],
			      char *error, size_t error_size)
{
	int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (cwd < 0) {
		snprintf(error, error_size, "open the working directory: %s",
			 strerror(errno));
		return -1;
	}
	if (fchdir(folder_fd) < 0) {
		snprintf(error, error_size, "fchdir to the folder: %s",
			 strerror(errno));
		close(cwd);
		return -1;
	}
	r = notify_add_watches_here(nb, wd, error, error_size);
	/* Staying inside a user's folder would make every later relative
	 * name resolve there: not worth surviving. */
	if (fchdir(cwd) < 0)
		fatal("mail_notify: cannot return to the working directory: "
		      "%s",
		      strerror(errno));
	close(cwd);
	return r;
}

static int notify_add_watches_here(struct notify_base *nb, int wd[3],
				   char *error, size_t error_size)
{
	static const char *const subs[] = {"new", "cur", "."};

	for (int i = 0; i < 3; i++) {
		wd[i] = inotify_add_watch(nb->ifd, subs[i],
					  i < 2 ? NOTIFY_DIR_MASK
						: NOTIFY_ROOT_MASK);
		if (wd[i] < 0) {
			snprintf(error, error_size, "inotify_add_watch: %s",
				 strerror(errno));
			for (int j = 0; j < i; j++) {
				if (notify_group_by_wd(nb, wd[j]) == NULL)
					inotify_rm_watch(nb->ifd, wd[j]);
			}
			return -1;
		}
	}
	return 0;
}

/* Drops the group's watches (the kernel shares a watch per inode within
 * one inotify descriptor, so there is exactly one group per folder). */
static void notify_group_free(struct notify_group *g)
{
	struct notify_base *nb = g->nb;
	struct notify_group **pp;

	for (pp = &nb->groups; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	for (int i = 0; i < 3; i++) {
		if (g->wd[i] >= 0)
			inotify_rm_watch(nb->ifd, g->wd[i]);
	}
	event_free(g->timer);
	free(g);
	notify_base_put(nb);
}

struct mail_notify *mail_notify_new(struct event_base *base, int folder_fd,
				    mail_notify_callback *callback, void *ctx,
				    char *error, size_t error_size)
{
	struct notify_base *nb = notify_base_get(base, error, error_size);
	struct notify_group *g;
	struct mail_notify *n;
	int wd[3];

	if (nb == NULL)
		return NULL;
	if (notify_add_watches(nb, folder_fd, wd, error, error_size) < 0) {
		notify_base_put(nb);
		return NULL;
	}
	g = notify_group_by_wd(nb, wd[2]);
	if (g == NULL) {
		g = xcalloc(1, sizeof(*g));
		g->nb = nb;
		memcpy(g->wd, wd, sizeof(wd));
		g->timer = evtimer_new(base, notify_fire_cb, g);
		if (g->timer == NULL)
			fatal("mail_notify: cannot make a timer");
		g->next = nb->groups;
		nb->groups = g;
	}
	n = xcalloc(1, sizeof(*n));
	n->g = g;
	n->callback = callback;
	n->ctx = ctx;
	n->next = g->subs;
	g->subs = n;
	return n;
}

void mail_notify_free(struct mail_notify **np)
{
	struct mail_notify *n = *np;
	struct notify_group *g;

	if (n == NULL)
		return;
	*np = NULL;
	g = n->g;
	n->dead = true;
	if (g->dispatching)
		return;
	notify_sweep(g);
	if (g->subs == NULL)
		notify_group_free(g);
}
