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
	bool debug; /* -d: debug logging whatever log_level says */
};

/* Sets the log level from log_level (or -d); children inherit it. */
void master_apply_log_level(const struct config *cfg,
			    const struct master_options *opts);

/* For postd -t: the keys a reload (SIGHUP) does not apply. */
void master_print_restart_keys(FILE *out);

/* Takes ownership of cfg. Returns the process exit code. */
int master_run(struct config *cfg, const struct master_options *opts);

#endif
