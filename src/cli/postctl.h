/*
 * What the postctl commands share: each command family lives in its own
 * file (postctl_queue.c, postctl_expire.c, postctl_check.c) and is called from
 * main() in postctl.c with the arguments after its name.
 */
#ifndef POSTD_POSTCTL_H
#define POSTD_POSTCTL_H

#include <stddef.h>

#include "config/config.h"
#include "lib/postd_limits.h"

struct postctl_password {
	char text[AUTH_MAX_PASSWORD + 2]; /* a line, its LF, a NUL */
	size_t len;
};

/* A password from the terminal (echo off) or one line of stdin. Returns
 * 0, or -1 after printing why. Wipe pw with OPENSSL_cleanse after use. */
int postctl_read_password(struct postctl_password *pw);
/* As root: become cfg->user for good (no-op when not root). Returns 0 or
 * -1 after printing why. */
int postctl_drop_privileges(const struct config *cfg);
/* DATA_DIR/mail, created if missing. Returns an fd or -1 (printed). */
int postctl_open_mail_root(const struct config *cfg);
/* Flushes stdout; EX_OK or EX_IOERR (printed) when the write failed. */
int postctl_stdout_done(void);
/* A user name from the command line, canonical (INV-S2), or -1 after
 * printing why. */
int postctl_normalize(const struct config *cfg, const char *in, char *out,
		      size_t outsize);

/* The command families. argv[0] is the family name ("queue", ...).
 * Each checks its own arguments, prints usage to stderr on a mistake
 * (EX_USAGE) and returns a sysexits(3) code. */
int postctl_queue_main(const struct config *cfg, int argc, char **argv);
int postctl_expire_main(const struct config *cfg, int argc, char **argv);
int postctl_alias_main(const struct config *cfg, int argc, char **argv);
/* userdb = pgsql (postctl_db.c): "user ..." as checked by main(), "alias
 * ...", and "migrate --users FILE --aliases FILE". */
int postctl_db_user_main(const struct config *cfg, int argc, char **argv);
int postctl_db_alias_main(const struct config *cfg, int argc, char **argv);
int postctl_migrate_main(const struct config *cfg, int argc, char **argv);
/* check needs no config: it looks at a server from the outside. */
int postctl_check_main(int argc, char **argv);

#endif
