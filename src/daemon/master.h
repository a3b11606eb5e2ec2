/*
 * The parent process: binds listeners as root, loads TLS, spawns a
 * generation (one auth process and N workers), replaces the generation
 * on SIGHUP or when a child dies, and stops everything on SIGTERM.
 */
#ifndef POSTD_MASTER_H
#define POSTD_MASTER_H

#include <stdbool.h>

#include "config/config.h"

struct master_options {
	const char *config_path; /* NULL: the embedded default */
	const char *base_dir;	 /* for the embedded default */
	bool foreground;
};

/* Takes ownership of cfg. Returns the process exit code. */
int master_run(struct config *cfg, const struct master_options *opts);

#endif
