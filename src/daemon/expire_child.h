/*
 * The retention pass the parent forks every expire_interval seconds: a
 * short-lived child that reads the users file (for per-user retention)
 * while root, chroots into the data folder, drops privileges, removes
 * what the policy says is due from every mailbox no session holds,
 * logs each removal, and exits.
 */
#ifndef POSTD_EXPIRE_CHILD_H
#define POSTD_EXPIRE_CHILD_H

#include <stdbool.h>

#include "config/config.h"

/* Runs in the forked child; never returns. mail_root_fd is DATA_DIR/mail. */
void expire_child_main(const struct config *cfg, int mail_root_fd,
		       bool foreground) __attribute__((noreturn));

#endif
