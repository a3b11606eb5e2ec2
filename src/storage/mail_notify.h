/*
 * Change notification for IMAP IDLE and for prompt EXISTS/EXPUNGE/FETCH
 * announcements: "something in this folder changed, sync the view".
 *
 * One small interface so that another source can serve it later (a message
 * bus such as PostgreSQL LISTEN/NOTIFY for several nodes sharing Maildirs
 * over NFS, where inotify sees nothing). Today's implementation is inotify:
 * one inotify descriptor per worker process (per event_base), one watch
 * per watched directory shared by every session watching it, so that
 * thousands of idle sessions cost a list entry each, never a timer.
 */
#ifndef POSTD_MAIL_NOTIFY_H
#define POSTD_MAIL_NOTIFY_H

#include <event2/event.h>

struct mail_notify;

/* Called on the event loop, at most a few times per second per watch
 * (changes are coalesced), after something in the folder changed. */
typedef void mail_notify_callback(void *ctx);

/*
 * Watches the folder at folder_fd (new/, cur/ and the index) until
 * mail_notify_free(). Returns NULL (and the caller falls back to syncing
 * at each command) when no watch can be made; error says why.
 */
struct mail_notify *mail_notify_new(struct event_base *base, int folder_fd,
				    mail_notify_callback *callback, void *ctx,
				    char *error, size_t error_size);
void mail_notify_free(struct mail_notify **n);

#endif
