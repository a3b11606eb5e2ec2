/*
 * The queue runner: the "postd-queue" process, one per generation, that
 * delivers DATA_DIR/queue to its destinations (MX lookup with c-ares,
 * SMTP with STARTTLS, retries with backoff, bounces as RFC 3464 DSNs,
 * DKIM signatures). One libevent loop, no process per message.
 *
 * The parent forks it and calls, in this order:
 *   delivery_prepare()  as root, before the chroot: reads what only root
 *                       may read (relay_auth file, DKIM keys, the CA
 *                       bundle) and what the chroot hides (resolv.conf)
 *   privdrop to cfg->user, chrooted into cfg->data_dir
 *   delivery_run()      until SIGTERM (stop now; entries stay queued) or
 *                       SIGQUIT (reload: finish the attempts in flight,
 *                       start no new one, then exit)
 */
#ifndef POSTD_DELIVERY_H
#define POSTD_DELIVERY_H

#include <stddef.h>

#include "config/config.h"

struct delivery;

/* Returns NULL with error (for the log) on failure. queue_fd is
 * DATA_DIR/queue, mail_root_fd DATA_DIR/mail (for bounces and mail to
 * local domains found in the queue); both are borrowed. */
struct delivery *delivery_prepare(const struct config *cfg, int queue_fd,
				  int mail_root_fd, char *error,
				  size_t error_size);
/* Returns the process exit code; frees d. */
int delivery_run(struct delivery *d);

#endif
