/* Local-domain recipients: the queued message into their Maildirs. */
/*
 * A queue entry can hold recipients in a local domain (a DSN to a local
 * sender, for one); route_for_domain() sends their group here instead of
 * to outbound_session.c. The Return-Path the spool wrote is kept; each
 * copy is a Maildir delivery (INV-D3).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "delivery/delivery_internal.h"
#include "lib/parse.h"
#include "lib/username.h"
#include "storage/maildir.h"

/* Local domains: straight into the Maildir, Return-Path kept. */
void attempt_local(struct attempt *a, struct group *g)
{
	char buf[DELIVERY_CHUNK];

	for (size_t k = 0; k < g->count; k++) {
		size_t ri = g->idx[k];
		char lower[SMTP_MAX_PATH + 1];
		const char *error = NULL;
		struct maildir_delivery *md = NULL;
		char name[256];
		int fd = -1, err = 0;
		uint64_t off = 0;

		snprintf(lower, sizeof(lower), "%s", a->env->rcpts[ri].addr);
		ascii_lowercase(lower);
		if (!username_is_canonical(lower)) {
			attempt_result(a, ri, 5, "invalid mailbox name",
				       "5.1.3", "local", "no TLS");
			continue;
		}
		fd = maildir_open(a->d->mail_root_fd, lower, true, &error);
		if (fd >= 0)
			md = maildir_delivery_begin(fd, &error);
		while (md != NULL && off < a->env->size) {
			size_t want = sizeof(buf);
			ssize_t n;

			if (a->env->size - off < want)
				want = (size_t)(a->env->size - off);
			n = pread(a->msg_fd, buf, want, (off_t)off);
			if (n <= 0) {
				error = "read error on the queued message";
				maildir_delivery_abort(&md);
				break;
			}
			if (maildir_delivery_write(md, buf, (size_t)n, &error) <
			    0) {
				maildir_delivery_abort(&md);
				break;
			}
			off += (uint64_t)n;
		}
		if (md != NULL &&
		    maildir_delivery_commit(&md, name, sizeof(name), &err,
					    &error) == 0)
			error = NULL;
		else if (error == NULL)
			error = "cannot open the mailbox";
		if (fd >= 0)
			close(fd);
		if (error == NULL) {
			attempt_result(a, ri, 2, "250 2.0.0 delivered", "2.0.0",
				       "local", "no TLS");
		} else {
			char msg[QUEUE_MAX_ERROR];

			snprintf(msg, sizeof(msg), "451 4.3.0 %s", error);
			attempt_result(a, ri, 4, msg, "4.3.0", "local",
				       "no TLS");
		}
	}
	attempt_group_done(a);
}
