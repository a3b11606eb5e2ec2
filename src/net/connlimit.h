/*
 * Connection caps shared by all workers: a table in shared memory, created
 * by the parent before it forks, with one slot per worker so that the
 * parent can forget a dead worker's connections (no count leaks when a
 * worker crashes). Counts per peer are kept in hash buckets: two peers
 * that share a bucket share its cap, which only ever makes the cap
 * stricter. Workers check, then count, without a lock, so the total may
 * overshoot by at most one connection per worker.
 */
#ifndef POSTD_CONNLIMIT_H
#define POSTD_CONNLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "lib/postd_limits.h"

/* Parent: maps the shared table. Fatal on failure. */
void connlimit_create(unsigned max_total, unsigned max_per_peer);
/* Parent, on reload. */
void connlimit_set_caps(unsigned max_total, unsigned max_per_peer);
/* Parent: a free slot for a new worker, or -1. */
int connlimit_slot_alloc(void);
/* Parent: the worker of this slot is gone; forget its counts. */
void connlimit_slot_free(int slot);

/* Worker: which slot this process counts in. */
void connlimit_attach(int slot);
/*
 * Worker: counts a new connection from peer, or refuses it (returns false
 * and writes the cause, "too many connections from 192.0.2.1 (100)", into
 * why).
 */
bool connlimit_acquire(const struct sockaddr *peer, char *why, size_t why_size);
void connlimit_release(const struct sockaddr *peer);

#endif
