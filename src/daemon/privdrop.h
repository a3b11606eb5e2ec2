/*
 * Giving up root: the parent keeps it (to bind ports and spawn), every
 * child that touches network bytes, passwords or mail drops it first.
 */
#ifndef POSTD_PRIVDROP_H
#define POSTD_PRIVDROP_H

#include <stdbool.h>
#include <sys/types.h>

/* Looks up user; returns 0 with uid/gid, or -1 with error. */
int privdrop_lookup(const char *user, uid_t *uid_r, gid_t *gid_r, char *error,
		    size_t error_size);
/*
 * When running as root: optionally chroot to chroot_dir, then set groups,
 * gid and uid to user's, and check that root cannot be regained. Not
 * root: nothing to drop (returns 0). Fatal on any failure: a child that
 * cannot drop privileges must not run.
 */
void privdrop_to(const char *user, const char *chroot_dir);
bool privdrop_is_root(void);
/* The last step of privdrop_to(), for a caller that looked the ids up
 * before a chroot (after which the account database is out of reach). */
void privdrop_ids(uid_t uid, gid_t gid);
/*
 * In a child of the parent whose pid is parent: SIGTERM when that parent
 * dies, now and after privdrop_ids() (which would otherwise clear it), so
 * that a kill -9 of the parent takes its children down with it. Exits at
 * once if the parent is already gone.
 */
void privdrop_follow_parent(pid_t parent);

#endif
