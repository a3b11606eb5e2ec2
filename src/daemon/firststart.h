/*
 * What the embedded default needs on its first start, so that a real
 * client can connect at once: a self-signed certificate, a users file
 * with a demo user (its password printed once), and a welcome message.
 */
#ifndef POSTD_FIRSTSTART_H
#define POSTD_FIRSTSTART_H

#include "config/config.h"

/* Creates what is missing; fatal on failure (this runs at start-up). */
void firststart_prepare(const struct config *cfg);

/* Creates DATA_DIR and DATA_DIR/mail if missing, owned by cfg->user when
 * running as root. Fatal on failure. */
void firststart_data_dirs(const struct config *cfg);

/* Creates srs_secret_file with a random secret if missing (0600) and
 * checks that it reads. Fatal on failure. Runs in every configuration:
 * forwarding needs it. */
void firststart_srs_secret(const struct config *cfg);

#endif
